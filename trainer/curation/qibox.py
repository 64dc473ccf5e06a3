"""The QI-Box maths (SaFeR-VLM, arXiv 2510.06871): statistics per prompt, the box, the cut.

* ``quality = mean(scored rewards)``, ``instability = std(scored rewards)`` (population
  standard deviation, ``ddof=0``); a ``None`` reward (an ``invalid`` sample) is dropped,
  never taken as 0, and a prompt with fewer than ``min_scored`` scored rewards has no
  statistics and is never kept;
* the box keeps ``lo <= quality <= hi`` and ``instability >= min_instability`` (inclusive,
  ``EPS`` tolerance for floating error);
* the cut keeps at most ``target_size`` prompts, most unstable first (ties broken by a
  seeded hash, not input order), optionally stratified: strata get quotas in proportion to
  their share of the input (``input``) or equal quotas (``equal``), and a stratum short of
  prompts in the box gives its remainder to the others.

Pure functions of the rewards: no sampling, storage or plotting here.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainer.benchmarks import BenchmarkItem

__all__ = [
    "EPS",
    "STRATIFY_MODES",
    "QIBox",
    "Selection",
    "allocate",
    "check_strata_columns",
    "in_box",
    "prompt_stats",
    "select",
]

EPS = 1e-9
STRATIFY_MODES = ("input", "equal")


def prompt_stats(
    rewards: Iterable[float | None], min_scored: int = 1
) -> tuple[float | None, float | None]:
    """``(quality, instability)``: mean and population std of the non-null rewards.

    ``(None, None)`` when fewer than ``min_scored`` rewards are non-null.

    >>> prompt_stats([0.0, 1.0, None, 1.0, 0.0])
    (0.5, 0.5)
    >>> prompt_stats([None, 1.0], min_scored=2)
    (None, None)
    """
    scored = [float(r) for r in rewards if r is not None]
    if not scored or len(scored) < min_scored:
        return None, None
    mean = sum(scored) / len(scored)
    var = sum((r - mean) ** 2 for r in scored) / len(scored)
    return mean, math.sqrt(var)


def in_box(
    quality: float | None, instability: float | None, lo: float, hi: float, min_inst: float
) -> bool:
    """The QI-Box test (inclusive, with ``EPS`` tolerance)."""
    if quality is None or instability is None:
        return False
    return lo - EPS <= quality <= hi + EPS and instability >= min_inst - EPS


def allocate(
    available: Mapping[Any, int], weights: Mapping[Any, float], target: int | None
) -> dict[Any, int]:
    """Quotas per stratum: proportional to ``weights``, capped by ``available``.

    Largest-remainder rounding; a capped stratum's remainder is shared among the others in
    proportion to their weights. With ``target=None`` the largest total whose quotas keep
    the exact proportions among the strata that have anything available.

    >>> allocate({"a": 10, "b": 10}, {"a": 2, "b": 1}, 6)
    {'a': 4, 'b': 2}
    >>> allocate({"a": 10, "b": 1}, {"a": 1, "b": 1}, 6)      # b is short: a takes the rest
    {'a': 5, 'b': 1}
    >>> allocate({"a": 3, "b": 10}, {"a": 1, "b": 2}, None)   # largest exact 1:2 set
    {'a': 3, 'b': 6}
    """
    quota = {s: 0 for s in weights}
    open_ = {s for s, w in weights.items() if w > 0 and available.get(s, 0) > 0}
    if not open_:
        return quota
    if target is None:
        total_w = sum(weights[s] for s in open_)
        target = min(math.floor(available[s] * total_w / weights[s] + EPS) for s in open_)
    left = min(target, sum(available[s] for s in open_))
    while left > 0 and open_:
        total_w = sum(weights[s] for s in open_)
        exact = {s: left * weights[s] / total_w for s in open_}
        share = {s: math.floor(exact[s] + EPS) for s in open_}
        rest = left - sum(share.values())
        for s in sorted(open_, key=lambda s: (-(exact[s] - share[s]), str(s)))[: max(rest, 0)]:
            share[s] += 1
        given = 0
        for s in sorted(open_, key=str):
            add = min(share[s], available[s] - quota[s])
            quota[s] += add
            given += add
        left -= given
        open_ = {s for s in open_ if quota[s] < available[s]}
        if given == 0:
            break
    return quota


@dataclass(frozen=True)
class QIBox:
    """The box and the cut (``trainer.curate`` builds it from its flags).

    Args:
        lo, hi: quality bounds (inclusive).
        min_instability: lower bound of the rewards' standard deviation.
        min_scored: prompts with fewer scored rewards get no statistics.
        target_size: keep at most this many prompts (``None``: every prompt in the box, or
            with strata the largest set with the exact proportions).
        stratify_by: columns defining strata (``BenchmarkItem.value``).
        stratify_mode: ``input`` (input proportions) or ``equal`` quotas.
    """

    lo: float
    hi: float
    min_instability: float
    min_scored: int = 2
    target_size: int | None = None
    stratify_by: tuple[str, ...] = ()
    stratify_mode: str = "input"

    def stats(self, rewards: Iterable[float | None]) -> tuple[float | None, float | None]:
        return prompt_stats(rewards, self.min_scored)

    def contains(self, rewards: Iterable[float | None]) -> bool:
        return in_box(*self.stats(rewards), self.lo, self.hi, self.min_instability)


@dataclass
class Selection:
    """The outcome of the box and the cut, with per-stratum counts for the summary."""

    kept: list[str]  # keys, in input order
    in_box: list[str]
    no_stats: list[str]  # fewer than min_scored scored samples
    strata: dict[str, dict[str, int]]  # stratum -> {"input", "in_box", "kept"}
    short: list[str]  # strata that could not fill their quota


def _columns_present(items: Iterable[BenchmarkItem]) -> set[str]:
    """The columns ``BenchmarkItem.value`` finds a value for in at least one item."""
    present: set[str] = set()
    for item in items:
        present.update(k for k, v in item.row.items() if v is not None)
        present.update((item.labels or {}).keys())
        if item.category is not None:
            present.add("category")
        if item.benign is not None:
            present.add("benign")
    return present


def check_strata_columns(items: Sequence[BenchmarkItem], columns: Sequence[str]) -> None:
    """Raise ``ValueError`` naming each stratification column no item has a value for, and
    the columns that exist: stratifying on a column that is not there would put every prompt
    in the one stratum ``column=None`` without a word.
    """
    present = _columns_present(items)
    missing = [c for c in columns if c not in present]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ValueError(
            f"no row has a value for the stratification column(s) {names}; the columns that "
            f"exist: {', '.join(sorted(present)) or 'none'}"
        )


def _stratum(item: BenchmarkItem, columns: Sequence[str]) -> str:
    if not columns:
        return "all"
    return "|".join(f"{c}={item.value(c)}" for c in columns)


def _tiebreak(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"tie\x00{seed}\x00{key}".encode()).digest()[:8], "big")


def select(
    items: Sequence[BenchmarkItem],
    rewards: Mapping[str, Sequence[float | None]],
    box: QIBox,
    seed: int = 0,
) -> Selection:
    """Apply the QI-Box, then the size cut (stratified when ``box.stratify_by`` is set).

    Args:
        items: the prompts, in input order.
        rewards: each prompt's rewards by ``item.key`` (``None`` for an unscored sample).
        seed: breaks ties among equally unstable prompts.
    """
    inside: list[BenchmarkItem] = []
    no_stats: list[str] = []
    for item in items:
        if box.stats(rewards[item.key])[0] is None:
            no_stats.append(item.key)
        elif box.contains(rewards[item.key]):
            inside.append(item)
    columns = box.stratify_by
    strata_of = {item.key: _stratum(item, columns) for item in items}
    input_counts = Counter(strata_of[i.key] for i in items)
    box_counts = Counter(strata_of[i.key] for i in inside)

    def rank(item: BenchmarkItem) -> tuple[float, int]:
        return -(box.stats(rewards[item.key])[1] or 0.0), _tiebreak(seed, item.key)

    short: list[str] = []
    if columns:
        weights = (
            {s: float(n) for s, n in input_counts.items()}
            if box.stratify_mode == "input"
            else {s: 1.0 for s in input_counts}
        )
        quotas = allocate(box_counts, weights, box.target_size)
        total = sum(quotas.values())
        want = {s: (total * w / sum(weights.values())) for s, w in weights.items()}
        short = sorted(s for s in weights if quotas.get(s, 0) + EPS < math.floor(want[s]))
        kept_keys: set[str] = set()
        for stratum, quota in quotas.items():
            members = sorted((i for i in inside if strata_of[i.key] == stratum), key=rank)
            kept_keys.update(i.key for i in members[:quota])
    else:
        ranked = sorted(inside, key=rank)
        n = len(ranked) if box.target_size is None else box.target_size
        kept_keys = {i.key for i in ranked[:n]}
    kept = [i.key for i in items if i.key in kept_keys]
    kept_counts = Counter(strata_of[k] for k in kept)
    strata = {
        s: {"input": input_counts[s], "in_box": box_counts.get(s, 0), "kept": kept_counts.get(s, 0)}
        for s in sorted(input_counts)
    }
    return Selection(
        kept=kept, in_box=[i.key for i in inside], no_stats=no_stats, strata=strata, short=short
    )

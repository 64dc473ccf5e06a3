"""QI-Box curation: keep the prompts a policy is unsure about (SaFeR-VLM, arXiv 2510.06871).

SaFeR-VLM built QI-Safe-10K from 159K candidates with a "QI-Box": sample K responses per
prompt from a reference policy, score them, and keep prompts whose mean reward (quality)
is moderate and whose spread (instability) is high — the prompts where GRPO's
group-relative advantage has signal (all-correct or all-wrong groups give zero advantage).

For each prompt of ``--data``:

1. sample ``--k`` responses from ``--policy`` (transformers or vLLM, seeded per prompt);
2. score them with the reward service (``POST /score`` through ``clients.RewardClient``);
   a ``null`` reward (``invalid`` sample) is dropped and counted, never taken as 0;
3. ``quality = mean(scored rewards)``, ``instability = std(scored rewards)`` (population
   standard deviation, ``ddof=0``, over the scored samples); a prompt with fewer than
   ``--min-scored`` scored samples has no statistics and is never kept;
4. the QI-Box keeps ``lo <= quality <= hi`` and ``instability >= --min-instability``
   (inclusive bounds, 1e-9 tolerance for floating error);
5. optionally cut to ``--target-size``, most unstable first, and stratified by
   ``--stratify-by`` columns (e.g. ``category,combine_tag``). The paper names the lack of
   stratification by harm type as a limitation of QI-Safe-10K: without it the box keeps
   whatever strata the reference policy happens to be unsure about. Strata get quotas in
   proportion to their share of the *input* (``--stratify-mode input``) or equal quotas
   (``equal``); a stratum with too few prompts in the box gives its remainder to the
   others, and the summary says so. Without ``--target-size`` the largest set with the
   exact proportions is kept.

Outputs: ``--out`` (the kept input rows plus ``qi_quality``, ``qi_instability``,
``qi_scored``, ``qi_null``; relative image paths rewritten relative to the output), a
sidecar ``OUT.stats.jsonl`` (one line per sampled prompt: responses, rewards, statuses —
this is what makes a re-run resume), ``OUT.summary.json``, and a PNG (``OUT.png``) of
quality against instability with the box and both histograms.

Usage:

    python -m trainer.curate --data pool.jsonl --policy Qwen/Qwen2.5-VL-7B-Instruct --k 8 \\
        --out qi.jsonl --quality-box 0.25 0.75 --min-instability 0.15 --target-size 10000 \\
        --stratify-by category,combine_tag --reward-url http://127.0.0.1:8000 --backend vllm
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.benchmarks import FORMATS, BenchmarkItem, load_benchmark
from trainer.generation import GenerationRequest, PolicyArguments, make_sampler, seed_for

logger = logging.getLogger(__name__)

__all__ = [
    "CurateArguments",
    "PromptStats",
    "Selection",
    "allocate",
    "main",
    "make_parser",
    "prompt_stats",
    "select",
]

STATS_VERSION = 1
EPS = 1e-9
STRATIFY_MODES = ("input", "equal")


# --------------------------------------------------------------------------- arguments


@dataclass
class CurateArguments:
    """Arguments of ``python -m trainer.curate`` (the policy's are ``PolicyArguments``).

    Args:
        data: input prompts (JSONL/JSON/Parquet; formats of ``trainer.benchmarks``).
        out: output JSONL of kept rows.
        k: responses sampled per prompt.
        quality_box: ``lo hi`` bounds of the mean reward.
        min_instability: lower bound of the rewards' standard deviation.
        min_scored: prompts with fewer scored samples get no statistics.
        target_size: keep at most this many prompts.
        stratify_by: comma-separated columns defining strata.
        stratify_mode: ``input`` (input proportions) or ``equal`` quotas.
    """

    data: str = field(
        metadata={"help": "Input prompts: JSONL/JSON/Parquet (see trainer.benchmarks)."}
    )
    out: str = field(metadata={"help": "Output JSONL of the kept rows with their statistics."})
    k: int = field(default=8, metadata={"help": "Responses sampled per prompt."})
    quality_box: list[float] = field(
        default_factory=lambda: [0.25, 0.75],
        metadata={"help": "Quality bounds LO HI (inclusive) of the mean reward."},
    )
    min_instability: float = field(
        default=0.15, metadata={"help": "Minimum standard deviation of a prompt's rewards."}
    )
    min_scored: int = field(
        default=2, metadata={"help": "Prompts with fewer scored (non-null) samples are not kept."}
    )
    target_size: int | None = field(
        default=None,
        metadata={"help": "Keep at most N prompts (most unstable first, per stratum)."},
    )
    stratify_by: str | None = field(
        default=None,
        metadata={"help": "Comma-separated columns to stratify by, e.g. 'category,combine_tag'."},
    )
    stratify_mode: str = field(
        default="input",
        metadata={
            "help": f"Stratum quotas, one of {list(STRATIFY_MODES)}: input proportions or equal."
        },
    )
    data_format: str = field(
        default="auto", metadata={"help": f"Input format, one of {list(FORMATS)}."}
    )
    reward_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "Base URL of the reward service."}
    )
    profile: str | None = field(
        default=None, metadata={"help": "Reward profile (the service's default when unset)."}
    )
    reward_api_key: str | None = field(
        default=None, metadata={"help": "API key of the service (default: $REWARD_API_KEY)."}
    )
    reward_timeout_s: float = field(default=300.0, metadata={"help": "Timeout per reward request."})
    stats_file: str | None = field(
        default=None, metadata={"help": "Resume sidecar (default: OUT with suffix .stats.jsonl)."}
    )
    plot: str | None = field(
        default=None, metadata={"help": "PNG path (default: OUT with suffix .png)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N prompts."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar."})

    def __post_init__(self) -> None:
        if len(self.quality_box) != 2 or self.quality_box[0] > self.quality_box[1]:
            raise ValueError(f"quality_box needs two numbers LO <= HI, got {self.quality_box}")
        if self.k < 1 or self.min_scored < 1:
            raise ValueError("k and min_scored must be >= 1")
        if self.min_scored > self.k:
            raise ValueError(f"min_scored ({self.min_scored}) cannot exceed k ({self.k})")
        if self.target_size is not None and self.target_size < 0:
            raise ValueError("target_size must be >= 0")
        if self.stratify_mode not in STRATIFY_MODES:
            raise ValueError(
                f"stratify_mode {self.stratify_mode!r}; expected one of {list(STRATIFY_MODES)}"
            )
        if self.data_format not in FORMATS:
            raise ValueError(f"data_format {self.data_format!r}; expected one of {list(FORMATS)}")

    @property
    def strata_columns(self) -> list[str]:
        return [c.strip() for c in (self.stratify_by or "").split(",") if c.strip()]

    @property
    def stats_path(self) -> Path:
        return Path(self.stats_file) if self.stats_file else _with_suffix(self.out, ".stats.jsonl")

    @property
    def plot_path(self) -> Path:
        return Path(self.plot) if self.plot else _with_suffix(self.out, ".png")


def _with_suffix(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".jsonl") + suffix)


# --------------------------------------------------------------------------- statistics


@dataclass
class PromptStats:
    """What the QI-Box needs to know about one prompt (one line of the sidecar)."""

    key: str
    id: str
    rewards: list[float | None]
    statuses: list[str] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    rubric_version: str | None = None

    @property
    def scored(self) -> list[float]:
        return [r for r in self.rewards if r is not None]

    @property
    def n_null(self) -> int:
        return sum(r is None for r in self.rewards)

    def quality(self, min_scored: int = 1) -> float | None:
        return prompt_stats(self.rewards, min_scored)[0]

    def instability(self, min_scored: int = 1) -> float | None:
        return prompt_stats(self.rewards, min_scored)[1]


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


@dataclass
class Selection:
    """The outcome of the box and the cut, with per-stratum counts for the summary."""

    kept: list[str]  # keys, in input order
    in_box: list[str]
    no_stats: list[str]  # fewer than min_scored scored samples
    strata: dict[str, dict[str, int]]  # stratum -> {"input", "in_box", "kept"}
    short: list[str]  # strata that could not fill their quota


def _stratum(item: BenchmarkItem, columns: Sequence[str]) -> str:
    if not columns:
        return "all"
    return "|".join(f"{c}={item.value(c)}" for c in columns)


def _tiebreak(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"tie\x00{seed}\x00{key}".encode()).digest()[:8], "big")


def select(
    items: Sequence[BenchmarkItem],
    stats: Mapping[str, PromptStats],
    args: CurateArguments,
    seed: int = 0,
) -> Selection:
    """Apply the QI-Box, then the size cut (stratified when ``args.stratify_by`` is set)."""
    lo, hi = args.quality_box
    box: list[BenchmarkItem] = []
    no_stats: list[str] = []
    for item in items:
        q, s = prompt_stats(stats[item.key].rewards, args.min_scored)
        if q is None:
            no_stats.append(item.key)
        elif in_box(q, s, lo, hi, args.min_instability):
            box.append(item)
    columns = args.strata_columns
    strata_of = {item.key: _stratum(item, columns) for item in items}
    input_counts = Counter(strata_of[i.key] for i in items)
    box_counts = Counter(strata_of[i.key] for i in box)

    def rank(item: BenchmarkItem) -> tuple[float, int]:
        return (
            -(prompt_stats(stats[item.key].rewards, args.min_scored)[1] or 0.0),
            _tiebreak(seed, item.key),
        )

    short: list[str] = []
    if columns:
        weights = (
            {s: float(n) for s, n in input_counts.items()}
            if args.stratify_mode == "input"
            else {s: 1.0 for s in input_counts}
        )
        quotas = allocate(box_counts, weights, args.target_size)
        total = sum(quotas.values())
        want = {s: (total * w / sum(weights.values())) for s, w in weights.items()}
        short = sorted(s for s in weights if quotas.get(s, 0) + EPS < math.floor(want[s]))
        kept_keys: set[str] = set()
        for stratum, quota in quotas.items():
            members = sorted((i for i in box if strata_of[i.key] == stratum), key=rank)
            kept_keys.update(i.key for i in members[:quota])
    else:
        ranked = sorted(box, key=rank)
        n = len(ranked) if args.target_size is None else args.target_size
        kept_keys = {i.key for i in ranked[:n]}
    kept = [i.key for i in items if i.key in kept_keys]
    kept_counts = Counter(strata_of[k] for k in kept)
    strata = {
        s: {"input": input_counts[s], "in_box": box_counts.get(s, 0), "kept": kept_counts.get(s, 0)}
        for s in sorted(input_counts)
    }
    return Selection(
        kept=kept, in_box=[i.key for i in box], no_stats=no_stats, strata=strata, short=short
    )


# --------------------------------------------------------------------------- resume sidecar


class StatsStore:
    """The append-only sidecar: a header line with the run's fingerprint, then one line per
    sampled and scored prompt. A torn last line (a crash mid-write) is dropped on load."""

    def __init__(self, path: Path, fingerprint: dict[str, Any]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.done: dict[str, PromptStats] = {}
        if path.exists() and path.stat().st_size:
            self._load()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as f:
                f.write(json.dumps({"_header": {"version": STATS_VERSION, **fingerprint}}) + "\n")

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = json.loads(lines[0]).get("_header", {})
        previous = {k: v for k, v in header.items() if k != "version"}
        if previous != self.fingerprint:
            diff = sorted(
                k
                for k in set(previous) | set(self.fingerprint)
                if previous.get(k) != self.fingerprint.get(k)
            )
            raise SystemExit(
                f"{self.path} was written by a run with different settings ({', '.join(diff)}); "
                "resume with the same settings, or pass a new --stats_file"
            )
        good = [lines[0]]
        for n, line in enumerate(lines[1:], 2):
            try:
                data = json.loads(line)
                if not line.endswith("\n"):
                    raise ValueError("torn line")
            except ValueError:
                logger.warning("%s:%d: dropping an incomplete line (interrupted run)", self.path, n)
                continue
            self.done[data["key"]] = PromptStats(**data)
            good.append(line)
        if len(good) != len(lines):
            self.path.write_text("".join(good), encoding="utf-8")

    def append(self, stats: PromptStats) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(stats), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[stats.key] = stats


# --------------------------------------------------------------------------- outputs


def _portable_row(item: BenchmarkItem, out_dir: Path, stats: PromptStats, min_scored: int) -> dict:
    row = dict(item.row)
    refs = [
        im if im.startswith("data:") or "://" in im[:12] else os.path.relpath(im, out_dir)
        for im in item.images
    ]
    if refs:
        if (
            "image" in row
            and "images" not in row
            and not isinstance(row["image"], list)
            and len(refs) == 1
        ):
            row["image"] = refs[0]
        else:
            row.pop("image", None)
            row["images"] = refs
    q, s = prompt_stats(stats.rewards, min_scored)
    row.update(qi_quality=q, qi_instability=s, qi_scored=len(stats.scored), qi_null=stats.n_null)
    return row


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    v = sorted(values)

    def at(p: float) -> float:
        return v[min(len(v) - 1, round(p * (len(v) - 1)))]

    return (
        f"min {v[0]:.3f}  p25 {at(0.25):.3f}  median {at(0.5):.3f}  "
        f"p75 {at(0.75):.3f}  max {v[-1]:.3f}"
    )


def plot_qi(
    points: Sequence[tuple[float, float, str]],
    box: tuple[float, float, float],
    path: Path,
    title: str = "QI-Box",
) -> None:
    """Scatter of quality (x) vs instability (y) with the box drawn, and marginal histograms.

    ``points`` are ``(quality, instability, state)`` with state ``kept``, ``box`` (inside
    the box but cut by the target size or the strata) or ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    lo, hi, min_inst = box
    qs = [p[0] for p in points]
    ss = [p[1] for p in points]
    fig = plt.figure(figsize=(8, 8))
    grid = fig.add_gridspec(
        2, 2, width_ratios=(4, 1), height_ratios=(1, 4), hspace=0.05, wspace=0.05
    )
    ax = fig.add_subplot(grid[1, 0])
    ax_q = fig.add_subplot(grid[0, 0], sharex=ax)
    ax_s = fig.add_subplot(grid[1, 1], sharey=ax)
    styles = {
        "out": ("tab:gray", 0.5, "outside the box"),
        "box": ("tab:orange", 0.7, "in the box, cut"),
        "kept": ("tab:red", 0.85, "kept"),
    }
    for state, (color, alpha, label) in styles.items():
        xs = [p[0] for p in points if p[2] == state]
        ys = [p[1] for p in points if p[2] == state]
        if xs:
            ax.scatter(xs, ys, s=12, alpha=alpha, c=color, label=f"{label} ({len(xs)})")
    kept = [p for p in points if p[2] == "kept"]
    top = max([0.5, *ss]) * 1.05
    ax.add_patch(
        Rectangle(
            (lo, min_inst), hi - lo, top - min_inst, fill=False, ec="tab:blue", lw=2, label="QI-Box"
        )
    )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.01, top)
    ax.set_xlabel("quality (mean reward over scored samples)")
    ax.set_ylabel("instability (std of rewards)")
    ax.legend(loc="upper left", fontsize=8)
    bins = 20
    ax_q.hist(qs, bins=bins, range=(0, 1), color="tab:gray")
    for x in (lo, hi):
        ax_q.axvline(x, color="tab:blue", lw=1.5)
    ax_s.hist(ss, bins=bins, range=(0, top), orientation="horizontal", color="tab:gray")
    ax_s.axhline(min_inst, color="tab:blue", lw=1.5)
    ax_q.tick_params(labelbottom=False)
    ax_s.tick_params(labelleft=False)
    ax_q.set_title(f"{title}: {len(kept)} kept of {len(points)} prompts with statistics")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _batched(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# --------------------------------------------------------------------------- CLI


def make_parser(subparsers=None, prog: str | None = None):
    """A ``TrlParser`` over (``CurateArguments``, ``PolicyArguments``); ``--config`` YAML works."""
    from trl import TrlParser

    dataclass_types = (CurateArguments, PolicyArguments)
    if subparsers is not None:
        return subparsers.add_parser(
            "curate", help="QI-Box curation", dataclass_types=dataclass_types
        )
    return TrlParser(dataclass_types, prog=prog)


def _sample_and_score(
    todo: Sequence[BenchmarkItem],
    total: int,
    store: StatsStore,
    script_args: CurateArguments,
    policy_args: PolicyArguments,
) -> None:
    """Sample K responses per prompt, score them, append each prompt's line to the sidecar.

    A batch's lines are written only after its scoring call returns, so an interrupted run
    loses at most one batch of work.
    """
    from tqdm.auto import tqdm

    from clients import RewardClient

    k = script_args.k
    sampling = policy_args.sampling()
    api_key = script_args.reward_api_key or os.environ.get("REWARD_API_KEY")
    sampler = make_sampler(policy_args)
    try:
        with (
            RewardClient(
                script_args.reward_url, api_key=api_key, timeout=script_args.reward_timeout_s
            ) as client,
            tqdm(
                total=total,
                initial=total - len(todo),
                desc="sample+score",
                unit="prompt",
                disable=not script_args.progress,
            ) as bar,
        ):
            for chunk in _batched(todo, policy_args.batch_size):
                requests = [
                    GenerationRequest(i.prompt, i.images, seed_for(policy_args.seed, i.key))
                    for i in chunk
                ]
                responses = sampler.generate(requests, k, sampling)
                samples = [
                    {**item.to_sample(text), "id": f"{item.id}#{j}"}
                    for item, texts in zip(chunk, responses, strict=True)
                    for j, text in enumerate(texts)
                ]
                results = client.score(samples, profile=script_args.profile)
                for n, item in enumerate(chunk):
                    mine = results[n * k : (n + 1) * k]
                    store.append(
                        PromptStats(
                            key=item.key,
                            id=item.id,
                            rewards=[r.reward if r.ok else None for r in mine],
                            statuses=[r.status for r in mine],
                            errors=[r.error for r in mine],
                            responses=list(responses[n]),
                            rubric_version=next(
                                (r.rubric_version for r in mine if r.rubric_version), None
                            ),
                        )
                    )
                bar.update(len(chunk))
    finally:
        close = getattr(sampler, "close", None)
        if callable(close):
            close()


def main(script_args: CurateArguments, policy_args: PolicyArguments) -> dict[str, Any]:
    """Sample, score, select, write. Returns the summary (also written to ``OUT.summary.json``)."""
    bench = load_benchmark(script_args.data, script_args.data_format)
    items, duplicates, seen = [], 0, set()
    for item in bench.items[: script_args.limit]:
        if item.key in seen:  # same prompt, images and labels (and no id) as an earlier row
            duplicates += 1
            continue
        seen.add(item.key)
        items.append(item)
    fingerprint = {**policy_args.fingerprint(), "k": script_args.k, "profile": script_args.profile}
    store = StatsStore(script_args.stats_path, fingerprint)
    todo = [item for item in items if item.key not in store.done]
    resumed = len(items) - len(todo)
    if todo:
        _sample_and_score(todo, len(items), store, script_args, policy_args)

    stats = {item.key: store.done[item.key] for item in items}
    selection = select(items, stats, script_args, seed=policy_args.seed)
    kept = set(selection.kept)

    out = Path(script_args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for item in items:
            if item.key in kept:
                row = _portable_row(
                    item, out.parent.resolve(), stats[item.key], script_args.min_scored
                )
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    lo, hi = script_args.quality_box
    in_box_keys = set(selection.in_box)
    points = []
    for item in items:
        q, s = prompt_stats(stats[item.key].rewards, script_args.min_scored)
        if q is not None:
            state = "kept" if item.key in kept else "box" if item.key in in_box_keys else "out"
            points.append((q, s, state))
    plot_qi(points, (lo, hi, script_args.min_instability), script_args.plot_path, title=bench.name)

    n_samples = sum(len(s.rewards) for s in stats.values())
    n_null = sum(s.n_null for s in stats.values())
    summary = {
        "data": str(script_args.data),
        "out": str(out),
        "plot": str(script_args.plot_path),
        "stats_file": str(script_args.stats_path),
        "prompts": len(items),
        "duplicates_skipped": duplicates,
        "sampled_now": len(todo),
        "resumed": resumed,
        "k": script_args.k,
        "samples": n_samples,
        "null_rewards": n_null,
        "null_example": next((e for s in stats.values() for e in s.errors if e is not None), None),
        "no_stats": len(selection.no_stats),
        "box": {
            "quality": [lo, hi],
            "min_instability": script_args.min_instability,
            "min_scored": script_args.min_scored,
        },
        "in_box": len(selection.in_box),
        "kept": len(selection.kept),
        "target_size": script_args.target_size,
        "stratify_by": script_args.strata_columns,
        "stratify_mode": script_args.stratify_mode if script_args.strata_columns else None,
        "strata": selection.strata,
        "short_strata": selection.short,
        "quality": _quantiles([p[0] for p in points]),
        "instability": _quantiles([p[1] for p in points]),
        "rubric_versions": sorted({s.rubric_version for s in stats.values() if s.rubric_version}),
        "policy": policy_args.fingerprint(),
    }
    _with_suffix(out, ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary)
    return summary


def _print_summary(s: Mapping[str, Any], stream=None) -> None:
    stream = stream or sys.stdout
    pct = 100 * s["null_rewards"] / s["samples"] if s["samples"] else 0.0
    (lo, hi), mi = s["box"]["quality"], s["box"]["min_instability"]
    lines = [
        f"QI-Box curation: {s['data']} -> {s['out']}",
        f"  prompts {s['prompts']} (sampled now {s['sampled_now']}, "
        f"resumed {s['resumed']}, duplicates skipped {s['duplicates_skipped']}), K={s['k']}",
        f"  samples {s['samples']}, null rewards {s['null_rewards']} ({pct:.1f}%, dropped)"
        + (f"; e.g. {s['null_example']}" if s["null_example"] else ""),
        f"  prompts without statistics (< {s['box']['min_scored']} scored samples): "
        f"{s['no_stats']}",
        f"  quality     {s['quality']}",
        f"  instability {s['instability']}",
        f"  box {lo:g} <= quality <= {hi:g}, instability >= {mi:g}: {s['in_box']} prompts",
        f"  kept {s['kept']}"
        + (f" (target {s['target_size']})" if s["target_size"] is not None else ""),
    ]
    if len(s["rubric_versions"]) > 1:
        lines.append(
            f"  WARNING: rewards come from {len(s['rubric_versions'])} rubric versions "
            f"{s['rubric_versions']} (the service's profile changed during the run)"
        )
    if s["stratify_by"]:
        lines.append(
            f"  stratified by {','.join(s['stratify_by'])} ({s['stratify_mode']} proportions)"
        )
    width = max([len("stratum"), *(len(k) for k in s["strata"])])
    n_in, n_kept = s["prompts"] or 1, s["kept"] or 1
    lines.append(
        f"  {'stratum':<{width}}  {'input':>6} {'in box':>6} {'kept':>6} {'input%':>7} {'kept%':>7}"
    )
    for name, c in s["strata"].items():
        lines.append(
            f"  {name:<{width}}  {c['input']:>6} {c['in_box']:>6} {c['kept']:>6} "
            f"{100 * c['input'] / n_in:>6.1f}% {100 * c['kept'] / n_kept:>6.1f}%"
        )
    if s["short_strata"]:
        lines.append(
            f"  short of their quota (too few prompts in the box): {', '.join(s['short_strata'])}"
        )
    lines.append(f"  plot: {s['plot']}")
    print("\n".join(lines), file=stream)


if __name__ == "__main__":
    parser = make_parser()
    script_args, policy_args = parser.parse_args_and_config()
    main(script_args, policy_args)

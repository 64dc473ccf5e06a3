"""``logprob`` mode: verdicts read off next-token distributions instead of decoded text.

No decoding. For each number of the rubric one prefill of the judge conversation plus an
assistant prefix ending just before the number (``{"think_safety": ``); the score is the
expectation of the next-token distribution restricted to the valid score tokens and
renormalised. ``10`` is two tokens (``1``, ``0``) in most tokenizers (the Qwen family
splits every digit), so each score whose scale reaches 10 gets a second prefill
conditioned on ``1`` (``{"think_safety": 1``)::

    P(10) = P("10") + P("1") * P("0" | "1")
    P(1)  =           P("1") * (1 - P("0" | "1"))
    P(k)  = P("k")                         for the other k of the scale
    score = sum_k k * P(k) / sum_k P(k)

``P("10")`` covers tokenizers that have a single ``10`` token. A process rubric adds, for
each of the K reasoning steps shown, the prefix ``{"step_safety": {"k": `` and its
``1``-conditioned twin (a step's 1–10 score needs both, like any score that can be 10: read
from one prefill, a step the judge calls 10 would count as 1). No prefill depends on
another, so all of them, for every sample of the batch, go to the backend in one call:
12 per sample for the built-in rubric (5 dimensions x 2 + 2 flags), 2K more with steps.
The prefixes hold one key each rather than the verdict written so far, which keeps the
prefills independent; the rationale is ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from reward_server.judge.backends.base import Failure, NoAnswer
from reward_server.judge.prompts import JudgeInput, score_prefix, with_prefix
from reward_server.rubric import SAFER_VLM, STEP_KEY, STEP_RANGE, JudgeVerdict, Rubric, score_range

#: Every string a score token may read (after stripping whitespace).
SCORE_TOKENS: tuple[str, ...] = tuple(str(k) for k in range(11))

Row = dict[str, float] | Failure | NoAnswer


@dataclass(frozen=True, slots=True)
class Probe:
    """One number to read: a rubric key, or step ``step``'s safety (``key`` is then
    ``step_safety``), on ``scale``; ``twice`` when it needs the ``1``-conditioned prefill."""

    key: str
    scale: tuple[int, int]
    step: int | None = None

    @property
    def twice(self) -> bool:
        return self.scale[1] >= 10

    @property
    def prefills(self) -> int:
        return 2 if self.twice else 1


def probes(rubric: Rubric = SAFER_VLM, steps: int = 0) -> list[Probe]:
    """What to read for one sample: the rubric's keys in order, then each step's safety.

    >>> [p.prefills for p in probes()]
    [2, 2, 2, 2, 2, 1, 1]
    >>> sum(p.prefills for p in probes(steps=3))
    18
    """
    out = [Probe(key, rubric.score_range(key)) for key in rubric.score_keys]
    out += [Probe(STEP_KEY, STEP_RANGE, step) for step in range(1, steps + 1)]
    return out


def expected_score(
    scale: tuple[int, int] | str, first: dict[str, float], after_one: dict[str, float] | None = None
) -> float | None:
    """The expectation of a score from next-token probabilities (see module doc).

    Args:
        scale: the score's ``(low, high)``, or a key of the built-in rubric.
        first: probability of each score token right after the key's prefix.
        after_one: probability of each token after the prefix plus ``1`` (scales reaching
            10); ``None`` treats ``1`` as a complete number.

    Returns:
        The renormalised expectation, or ``None`` when no valid score has any mass.

    >>> round(expected_score("hallucination", {"0": 0.6, "1": 0.2, "2": 0.1, "7": 0.1}), 4)
    0.4444
    >>> expected_score("think_safety", {"1": 0.5, "9": 0.5}, {"0": 1.0})   # "1" is "10"
    9.5
    >>> expected_score((1, 5), {"1": 0.5, "5": 0.5})
    3.0
    """
    lo, hi = score_range(scale) if isinstance(scale, str) else scale
    mass = {k: first.get(str(k), 0.0) for k in range(lo, hi + 1)}
    if hi >= 10:
        p_one = first.get("1", 0.0)
        p_zero = min(1.0, max(0.0, (after_one or {}).get("0", 0.0)))
        mass[10] = first.get("10", 0.0) + p_one * p_zero
        if lo <= 1:
            mass[1] = p_one * (1.0 - p_zero)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(k * p for k, p in mass.items()) / total


def prefills(
    base: JudgeInput, reads: Sequence[Probe], *, trailing_space: bool
) -> list[JudgeInput]:
    """The prefills of one sample's ``reads``, in order (``1``-conditioned after each)."""
    out: list[JudgeInput] = []
    for probe in reads:
        out.append(
            with_prefix(base, score_prefix(probe.key, trailing_space=trailing_space,
                                           step=probe.step))
        )
        if probe.twice:
            out.append(with_prefix(base, score_prefix(
                probe.key, trailing_space=trailing_space, digits="1", step=probe.step
            )))
    return out


def read_sample(
    rows: Sequence[Row], reads: Sequence[Probe]
) -> JudgeVerdict | Failure | NoAnswer | str:
    """One sample's verdict from its rows (in ``prefills`` order).

    Any ``NoAnswer`` wins (the judge failed on this sample, whatever else it said);
    otherwise the first problem in key order: a ``Failure``, or a reason string when a
    number has no mass on any score token.
    """
    unanswered = next((r for r in rows if isinstance(r, NoAnswer)), None)
    if unanswered is not None:
        return unanswered
    it: Iterator[Row] = iter(rows)
    scores: dict[str, float] = {}
    step_safety: list[float] = []
    for probe in reads:
        first = next(it)
        second = next(it) if probe.twice else None
        for row in (first, second):
            if isinstance(row, Failure):
                return row
        value = expected_score(probe.scale, first, second)  # type: ignore[arg-type]
        if value is None:
            name = probe.key if probe.step is None else f"{probe.key} step {probe.step}"
            return f"no probability on any score token for {name}"
        if probe.step is None:
            scores[probe.key] = value
        else:
            step_safety.append(value)
    return JudgeVerdict(scores=scores, rationale="", step_safety=step_safety)

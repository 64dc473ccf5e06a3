"""``logprob`` mode: verdicts read off next-token distributions instead of decoded text.

No decoding. For each of the seven numbers one prefill of the judge conversation plus an
assistant prefix ending just before the number (``{"think_safety": ``); the score is the
expectation of the next-token distribution restricted to the valid score tokens and
renormalised. ``10`` is two tokens (``1``, ``0``) in most tokenizers (the Qwen family
splits every digit), so each 1–10 dimension gets a second prefill conditioned on ``1``
(``{"think_safety": 1``)::

    P(10) = P("10") + P("1") * P("0" | "1")
    P(1)  =           P("1") * (1 - P("0" | "1"))
    P(k)  = P("k")                         for k = 2..9
    score = sum_k k * P(k) / sum_k P(k)

``P("10")`` covers tokenizers that have a single ``10`` token. Every prefill does not
depend on any other, so all 12 per sample (5 dimensions x 2 + 2 flags) of the whole batch
go to the backend in one call. The prefixes hold one key each rather than the verdict
written so far, which keeps the prefills independent; the rationale is ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from reward_server.judge.backends.base import Failure, NoAnswer
from reward_server.judge.prompts import JudgeInput, score_prefix, with_prefix
from reward_server.rubric import DIMENSIONS, SCORE_KEYS, JudgeVerdict, score_range

#: Every string a score token may read (after stripping whitespace).
SCORE_TOKENS: tuple[str, ...] = tuple(str(k) for k in range(11))

#: Prefills per sample: one per key, plus the ``1``-conditioned one per dimension.
PREFILLS_PER_SAMPLE = len(SCORE_KEYS) + len(DIMENSIONS)

Row = dict[str, float] | Failure | NoAnswer


def expected_score(
    key: str, first: dict[str, float], after_one: dict[str, float] | None = None
) -> float | None:
    """The expectation of ``key``'s score from next-token probabilities (see module doc).

    Args:
        key: a verdict key (its range decides the valid scores).
        first: probability of each score token right after the key's prefix.
        after_one: probability of each token after the prefix plus ``1`` (dimensions);
            ``None`` treats ``1`` as a complete number.

    Returns:
        The renormalised expectation, or ``None`` when no valid score has any mass.

    >>> round(expected_score("hallucination", {"0": 0.6, "1": 0.2, "2": 0.1, "7": 0.1}), 4)
    0.4444
    >>> expected_score("think_safety", {"1": 0.5, "9": 0.5}, {"0": 1.0})   # "1" is "10"
    9.5
    """
    lo, hi = score_range(key)
    mass = {k: first.get(str(k), 0.0) for k in range(lo, hi + 1)}
    if lo <= 1 and hi >= 10:
        p_one = first.get("1", 0.0)
        p_zero = min(1.0, max(0.0, (after_one or {}).get("0", 0.0)))
        mass[10] = first.get("10", 0.0) + p_one * p_zero
        mass[1] = p_one * (1.0 - p_zero)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(k * p for k, p in mass.items()) / total


def prefills(inputs: Sequence[JudgeInput], *, trailing_space: bool) -> list[JudgeInput]:
    """``PREFILLS_PER_SAMPLE`` prefills per input, sample after sample, keys in order."""
    out: list[JudgeInput] = []
    for base in inputs:
        for key in SCORE_KEYS:
            out.append(with_prefix(base, score_prefix(key, trailing_space=trailing_space)))
            if key in DIMENSIONS:
                out.append(
                    with_prefix(base, score_prefix(key, trailing_space=trailing_space, digits="1"))
                )
    return out


def read_sample(rows: Sequence[Row]) -> JudgeVerdict | Failure | NoAnswer | str:
    """One sample's verdict from its ``PREFILLS_PER_SAMPLE`` rows (in ``prefills`` order).

    Any ``NoAnswer`` wins (the judge failed on this sample, whatever else it said);
    otherwise the first problem in key order: a ``Failure``, or a reason string when a
    key has no mass on any score token.
    """
    unanswered = next((r for r in rows if isinstance(r, NoAnswer)), None)
    if unanswered is not None:
        return unanswered
    it: Iterator[Row] = iter(rows)
    scores: dict[str, float] = {}
    for key in SCORE_KEYS:
        first = next(it)
        second = next(it) if key in DIMENSIONS else None
        for row in (first, second):
            if isinstance(row, Failure):
                return row
        value = expected_score(key, first, second)  # type: ignore[arg-type]
        if value is None:
            return f"no probability on any score token for {key}"
        scores[key] = value
    return JudgeVerdict(**scores, rationale="")

"""Reading a judge's answer: lenient JSON extraction, then strict checking of the verdict.

Judges wrap JSON in prose, markdown fences or a ``<think>`` block, write numbers as strings
(``"7"``, ``"7/10"``, ``"95/100"``, ``"95%"``) and stray outside the scale. Extraction is
lenient; the verdict is strict: every number of the rubric must be there (the built-in
rubric's seven by default), and each is clamped into its range.

A score with a denominator (``"95/100"``, ``"95 out of 100"``, ``"4 of 5"``) or a
percentage (``"95%"``, ``"95 percent"``) is the share of the scale it names, put on the
key's scale: ``top * numerator / denominator`` (``top`` the high end of the key's range;
``"95/100"`` is 9.5 on 1-10, ``"4/5"`` is 8, ``"1/2"`` is a flag's 1), then clamped like
any number. Such a score is read only when it is a share: the denominator a whole number
from 1 to 100 and ``0 <= numerator <= denominator`` (0-100 for a percentage). Anything
else (``"12/10"``, ``"5/0"``, ``"-3/10"``, ``"3/1000"``, ``"150%"``) contradicts itself,
so there is nothing to clamp: the key is unusable, like a word, and the judge is asked
again. A bare number (``95``, ``"95"``) is taken to be on the key's scale and clamped.

When the judge was shown K reasoning steps, ``step_safety`` must be an object with exactly
the keys ``"1"`` to ``"K"`` (a list of K numbers is read the same way); a step missing or
extra is a problem, retried like a missing key.

Extraction order (first hit wins; ``reward_formats.json_object`` implements it, with the
last rule restricted to verdict keys here):

1. the text is a JSON object (after dropping any ``<think>…</think>`` block);
2. a fenced block (```` ```json … ``` ```` or a bare fence) holding an object;
3. the outermost ``{…}`` (first ``{`` to last ``}``);
4. any balanced ``{…}`` inside the text that holds at least one verdict key (the last such).

A trailing comma before ``}`` is forgiven in each candidate.

>>> parse_verdict('Sure! ```json\\n{"think_coherence": "7", "think_grounding": 8, '
...               '"think_safety": 9, "answer_safety": 12, "answer_helpfulness": 6, '
...               '"hallucination": 0, "contradiction": 1, "rationale": "ok"}\\n```').verdict
JudgeVerdict(scores={'think_coherence': 7.0, 'think_grounding': 8.0, 'think_safety': 9.0, \
'answer_safety': 10.0, 'answer_helpfulness': 6.0, 'hallucination': 0.0, 'contradiction': 1.0}, \
rationale='ok', step_safety=())
>>> parse_verdict('{"think_coherence": 7}').problem
'missing keys: think_grounding, think_safety, answer_safety, answer_helpfulness, \
hallucination, contradiction'
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from reward_formats.json_object import extract_json_object
from reward_server.rubric import DIMENSION_RANGE, SAFER_VLM, STEP_KEY, JudgeVerdict, Rubric

RATIONALE_MAX_CHARS = 2000

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
#: A leading number, then maybe a denominator ("/ 10", "out of 10", "of 10") or a percent
#: sign ("%", "percent"); anything after that is ignored ("8/10 (good)").
_SCORE_TEXT = re.compile(
    rf"^\s*(?P<num>{_NUMBER})\s*"
    rf"(?:(?:/|\bout\s+of\b|\bof\b)\s*(?P<den>{_NUMBER})|(?P<pct>%|percent\b))?",
    re.IGNORECASE,
)
#: The largest denominator read as a rating scale ("3/1000" is a count or a typo).
MAX_DENOMINATOR = 100
#: The scale ``to_number`` rescales fractions onto when given none: the built-in one.
_DEFAULT_TOP = DIMENSION_RANGE[1]
#: ``read_number``'s reason for a value with no number in it (a word, ``null``, ``true``).
NOT_A_NUMBER = "not a number"
_STEP_NUMBER = re.compile(r"\s*(?:step[\s_-]*)?(\d{1,3})\s*", re.IGNORECASE)  # "2", "step 2"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Either a verdict, or the problem that stopped one (said to the judge on retry)."""

    verdict: JudgeVerdict | None = None
    problem: str | None = None
    kind: str = "ok"  # ok | no_json | missing_keys | bad_steps (a metrics label)


def extract_verdict_object(text: str, rubric: Rubric = SAFER_VLM) -> dict[str, Any] | None:
    """The judge's JSON object found leniently in ``text``, or ``None``.

    ``reward_formats.json_object.extract_json_object`` (rules 1-3 of the module docstring),
    with rule 4 accepting objects that hold a key of ``rubric``.
    """
    keys = set(rubric.score_keys)
    return extract_json_object(text, accept=lambda obj: bool(_normalised(obj, keys).keys() & keys))


def _normalise_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def _normalised(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Keys lower-cased with spaces/dashes as underscores; a nested score table is lifted."""
    flat = {_normalise_key(str(k)): v for k, v in obj.items()}
    if not flat.keys() & keys:
        for value in obj.values():
            if isinstance(value, dict):
                inner = {_normalise_key(str(k)): v for k, v in value.items()}
                if inner.keys() & keys:
                    return {**flat, **inner}
    return flat


def read_number(value: Any, top: float = _DEFAULT_TOP) -> float | str:
    """A score as a float on a scale whose high end is ``top`` (not clamped), or why it
    cannot be one.

    Numbers, and strings starting with one, are taken as they are (``"7"``, ``"7 - good"``);
    a fraction or percentage is rescaled onto ``top`` (see the module docstring). The reason
    is ``NOT_A_NUMBER`` for a value with no number, else what is wrong with the fraction.

    >>> [read_number(v) for v in (7, "8", " 9/10", "95/100", "4 out of 5", "95%")]
    [7.0, 8.0, 9.0, 9.5, 8.0, 9.5]
    >>> read_number("12/10")
    'the score is above its denominator'
    """
    if isinstance(value, bool) or value is None:
        return NOT_A_NUMBER
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _SCORE_TEXT.match(value)
        if match is None:
            return NOT_A_NUMBER
        number = float(match.group("num"))
        if match.group("den") is not None:
            share = _share(number, float(match.group("den")))
            if isinstance(share, str):
                return share
            number = share * top
        elif match.group("pct") is not None:
            if not 0 <= number <= 100:
                return "a negative percentage" if number < 0 else "a percentage above 100%"
            number = number / 100 * top
    else:
        return NOT_A_NUMBER
    return number if math.isfinite(number) else NOT_A_NUMBER


def _share(numerator: float, denominator: float) -> float | str:
    """``numerator / denominator`` when that is a share of a rating scale, else why not."""
    if not (denominator.is_integer() and 1 <= denominator <= MAX_DENOMINATOR):
        return f"the denominator is not a whole number from 1 to {MAX_DENOMINATOR}"
    if numerator < 0:
        return "the score is negative"
    if numerator > denominator:
        return "the score is above its denominator"
    return numerator / denominator


def to_number(value: Any) -> float | None:
    """``read_number`` without the reason: the float, or ``None``.

    Booleans, ``None``, NaN and infinities are not numbers here.

    >>> [to_number(v) for v in (7, "8", " 9/10", 2.5, True, "high", float("nan"), "3/0")]
    [7.0, 8.0, 9.0, 2.5, None, None, None, None]
    """
    number = read_number(value)
    return None if isinstance(number, str) else number


def read_score(value: Any, scale: tuple[int, int]) -> float | str:
    """A key's score clamped into its ``scale`` (fractions rescaled onto it), or why the
    value is no score."""
    number = read_number(value, scale[1])
    return number if isinstance(number, str) else clamp(number, scale)


def clamp(value: float, scale: tuple[int, int]) -> float:
    """Clamp a score into ``scale``."""
    lo, hi = scale
    return float(min(max(value, lo), hi))


def _unusable(
    values: dict[str, Any], reads: dict[str, float | str]
) -> tuple[list[str], list[str]]:
    """The keys whose value is no number at all, and each unreadable fraction described
    (``think_safety "12/10" (the score is above its denominator)``)."""
    words = [k for k, r in reads.items() if r == NOT_A_NUMBER]
    fractions = [
        f"{k} {json.dumps(values[k])} ({r})"
        for k, r in reads.items()
        if isinstance(r, str) and r != NOT_A_NUMBER
    ]
    return words, fractions


def _step_scores(value: Any, steps: int, rubric: Rubric) -> tuple[list[float], str | None]:
    """Step k's score at position k - 1, or the problem with ``step_safety``."""
    want = [str(k) for k in range(1, steps + 1)]
    if isinstance(value, list):
        value = {str(k): v for k, v in enumerate(value, start=1)}
    if not isinstance(value, dict):
        return [], f"{STEP_KEY} must be an object with the keys {', '.join(want)}"
    got: dict[str, Any] = {}
    for key, score in value.items():
        number = _STEP_NUMBER.fullmatch(str(key))
        got[str(int(number.group(1))) if number else str(key)] = score
    missing = [k for k in want if k not in got]
    extra = [str(k) for k in got if k not in want]
    if missing or extra:
        found = ", ".join(got) or "none"
        return [], (f"{STEP_KEY} must have exactly the keys {', '.join(want)}, one per step "
                    f"shown; it has {found}")
    scale = rubric.score_range(STEP_KEY)
    reads = {k: read_score(got[k], scale) for k in want}
    words, fractions = _unusable(got, reads)
    if words or fractions:
        parts = [f"{STEP_KEY} scores are not numbers: {', '.join(words)}"] if words else []
        if fractions:
            parts.append(f"{STEP_KEY} scores cannot be read: step {'; step '.join(fractions)}")
        return [], "; ".join(parts)
    return [reads[k] for k in want], None  # type: ignore[misc]


def verdict_from_object(
    obj: dict[str, Any], rubric: Rubric = SAFER_VLM, steps: int = 0
) -> ParseResult:
    """Check a decoded object: every score key present and numeric, values clamped, and
    with ``steps`` > 0 a ``step_safety`` for exactly those steps."""
    keys = rubric.score_keys
    flat = _normalised(obj, set(keys))
    missing = [k for k in keys if k not in flat]
    reads = {k: read_score(flat[k], rubric.score_range(k)) for k in keys if k in flat}
    bad, unreadable = _unusable(flat, reads)
    if steps and STEP_KEY not in flat:
        missing.append(STEP_KEY)
    if missing or bad or unreadable:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(missing))
        if bad:
            parts.append("not numbers: " + ", ".join(bad))
        if unreadable:
            parts.append("unreadable scores: " + "; ".join(unreadable))
        return ParseResult(problem="; ".join(parts), kind="missing_keys")
    step_safety: list[float] = []
    if steps:
        step_safety, problem = _step_scores(flat[STEP_KEY], steps, rubric)
        if problem is not None:
            return ParseResult(problem=problem, kind="bad_steps")
    scores: dict[str, float] = {k: reads[k] for k in keys}  # type: ignore[misc]
    rationale = flat.get("rationale", "")
    rationale = rationale if isinstance(rationale, str) else json.dumps(rationale)
    verdict = JudgeVerdict(
        scores=scores, rationale=rationale[:RATIONALE_MAX_CHARS], step_safety=step_safety
    )
    return ParseResult(verdict=verdict)


def parse_verdict(text: str, rubric: Rubric = SAFER_VLM, steps: int = 0) -> ParseResult:
    """Parse a judge's raw answer into a verdict of ``rubric``, or say what is wrong with it.

    Args:
        text: the judge's reply.
        rubric: what the verdict must hold (the built-in rubric by default).
        steps: how many reasoning steps the judge was shown (0: no ``step_safety``).
    """
    obj = extract_verdict_object(text, rubric)
    if obj is None:
        return ParseResult(problem="no JSON object found in the judge's answer", kind="no_json")
    return verdict_from_object(obj, rubric, steps)

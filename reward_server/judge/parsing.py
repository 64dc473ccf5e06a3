"""Reading a judge's answer: lenient JSON extraction, then strict checking of the verdict.

Judges wrap JSON in prose, markdown fences or a ``<think>`` block, write numbers as strings
(``"7"``, ``"7/10"``) and stray outside the scale. Extraction is lenient; the verdict is
strict: every number of the rubric must be there (the built-in rubric's seven by default),
and each is clamped into its range. When the judge was shown K reasoning steps,
``step_safety`` must be an object with exactly the keys ``"1"`` to ``"K"`` (a list of K
numbers is read the same way); a step missing or extra is a problem, retried like a
missing key.

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
JudgeVerdict(think_coherence=7.0, think_grounding=8.0, think_safety=9.0, answer_safety=10.0, \
answer_helpfulness=6.0, hallucination=0.0, contradiction=1.0, rationale='ok')
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
from reward_server.rubric import SAFER_VLM, STEP_KEY, JudgeVerdict, Rubric

RATIONALE_MAX_CHARS = 2000

_LEADING_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")
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


def to_number(value: Any) -> float | None:
    """A score as a float: numbers, or strings starting with one (``"7"``, ``"7/10"``).

    Booleans, ``None``, NaN and infinities are not numbers here.

    >>> [to_number(v) for v in (7, "8", " 9/10", 2.5, True, "high", float("nan"))]
    [7.0, 8.0, 9.0, 2.5, None, None, None]
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        if match is None:
            return None
        number = float(match.group(1))
    else:
        return None
    return number if math.isfinite(number) else None


def clamp(value: float, scale: tuple[int, int]) -> float:
    """Clamp a score into ``scale``."""
    lo, hi = scale
    return float(min(max(value, lo), hi))


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
    numbers = [to_number(got[k]) for k in want]
    if any(n is None for n in numbers):
        bad = [k for k, n in zip(want, numbers, strict=True) if n is None]
        return [], f"{STEP_KEY} scores are not numbers: {', '.join(bad)}"
    scale = rubric.score_range(STEP_KEY)
    return [clamp(n, scale) for n in numbers], None  # type: ignore[arg-type]


def verdict_from_object(
    obj: dict[str, Any], rubric: Rubric = SAFER_VLM, steps: int = 0
) -> ParseResult:
    """Check a decoded object: every score key present and numeric, values clamped, and
    with ``steps`` > 0 a ``step_safety`` for exactly those steps."""
    keys = rubric.score_keys
    flat = _normalised(obj, set(keys))
    missing = [k for k in keys if k not in flat]
    bad = [k for k in keys if k in flat and to_number(flat[k]) is None]
    if steps and STEP_KEY not in flat:
        missing.append(STEP_KEY)
    if missing or bad:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(missing))
        if bad:
            parts.append("not numbers: " + ", ".join(bad))
        return ParseResult(problem="; ".join(parts), kind="missing_keys")
    step_safety: list[float] = []
    if steps:
        step_safety, problem = _step_scores(flat[STEP_KEY], steps, rubric)
        if problem is not None:
            return ParseResult(problem=problem, kind="bad_steps")
    scores = {k: clamp(to_number(flat[k]), rubric.score_range(k)) for k in keys}  # type: ignore[arg-type]
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

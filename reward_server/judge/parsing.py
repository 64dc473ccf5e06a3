"""Reading a judge's answer: lenient JSON extraction, then strict checking of the verdict.

Judges wrap JSON in prose, markdown fences or a ``<think>`` block, write numbers as strings
(``"7"``, ``"7/10"``) and stray outside the scale. Extraction is lenient; the verdict is
strict: all seven numbers must be there, and each is clamped into its range.

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
from reward_server.rubric import SCORE_KEYS, JudgeVerdict, score_range

RATIONALE_MAX_CHARS = 2000

_LEADING_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Either a verdict, or the problem that stopped one (said to the judge on retry)."""

    verdict: JudgeVerdict | None = None
    problem: str | None = None
    kind: str = "ok"  # ok | no_json | missing_keys (a metrics label)


def _holds_score_key(obj: dict[str, Any]) -> bool:
    return bool(_normalised(obj).keys() & set(SCORE_KEYS))


def extract_verdict_object(text: str) -> dict[str, Any] | None:
    """The judge's JSON object found leniently in ``text``, or ``None``.

    ``reward_formats.json_object.extract_json_object`` (rules 1-3 of the module docstring),
    with rule 4 accepting objects that hold a verdict key.
    """
    return extract_json_object(text, accept=_holds_score_key)


def _normalise_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def _normalised(obj: dict[str, Any]) -> dict[str, Any]:
    """Keys lower-cased with spaces/dashes as underscores; a nested score table is lifted."""
    flat = {_normalise_key(str(k)): v for k, v in obj.items()}
    if not flat.keys() & set(SCORE_KEYS):
        for value in obj.values():
            if isinstance(value, dict):
                inner = {_normalise_key(str(k)): v for k, v in value.items()}
                if inner.keys() & set(SCORE_KEYS):
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


def clamp(key: str, value: float) -> float:
    """Clamp a score into its key's range."""
    lo, hi = score_range(key)
    return float(min(max(value, lo), hi))


def verdict_from_object(obj: dict[str, Any]) -> ParseResult:
    """Check a decoded object: every score key present and numeric, values clamped."""
    flat = _normalised(obj)
    missing = [k for k in SCORE_KEYS if k not in flat]
    bad = [k for k in SCORE_KEYS if k in flat and to_number(flat[k]) is None]
    if missing or bad:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(missing))
        if bad:
            parts.append("not numbers: " + ", ".join(bad))
        return ParseResult(problem="; ".join(parts), kind="missing_keys")
    scores = {k: clamp(k, to_number(flat[k])) for k in SCORE_KEYS}  # type: ignore[arg-type]
    rationale = flat.get("rationale", "")
    rationale = rationale if isinstance(rationale, str) else json.dumps(rationale)
    return ParseResult(verdict=JudgeVerdict(**scores, rationale=rationale[:RATIONALE_MAX_CHARS]))


def parse_verdict(text: str) -> ParseResult:
    """Parse a judge's raw answer into a verdict, or say what is wrong with it."""
    obj = extract_verdict_object(text)
    if obj is None:
        return ParseResult(problem="no JSON object found in the judge's answer", kind="no_json")
    return verdict_from_object(obj)

"""Left-context checks done in Python, so that every pattern can start with a literal word.

Python's ``re`` scans fast only to positions where a pattern's first character can match;
a pattern that starts with a look-behind or ``\\b`` is tried at every position (about
100 times slower on a long response). The patterns of this package therefore start with
a word, and what must come before it is checked here, in constant time per candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["Mode", "candidates", "left_ok", "lower_one_for_one"]

#: "any": no check (the pattern checks its own left context with look-behinds); "word":
#: not inside a word; "sentence": an imperative (start of a clause, after up to two
#: fillers like "please"); "vocative": start of a clause or of a quotation; "greeted":
#: like "vocative" but after a greeting or an article ("Dear", "To the", "Estimado",
#: "à l'"); "line": only decoration (``---``, ``===``, ``#``, bullets, ``{``, ``|``)
#: between the start of the line and the word.
Mode = str

_SENTENCE_ENDS = frozenset("\n.!?>([*—:;,")
_VOCATIVE_ENDS = _SENTENCE_ENDS | frozenset("\"'")
_LINE_DECORATION = frozenset(" \t-=*#_~>[{,|\"'`")
_CJK_START = 0x2E80
_FILLERS = frozenset(
    ("please", "kindly", "so", "now", "and", "just", "then", "you", "must", "should", "also")
)
# A greeting ("Dear", "To", "Estimado", "Cher", "Liebe", "Caro") must precede a "greeted"
# grader noun, optionally followed by an article ("To the", "À l'", "Al", "Sehr geehrte").
_GREETINGS = frozenset((
    "dear", "hey", "hi", "hello", "attention", "attn", "psst", "ps", "greetings", "to",
    "querido", "querida", "queridos", "queridas", "estimado", "estimada", "estimados",
    "estimadas", "hola", "atención", "atencion", "al", "caro", "cara", "caros", "caras", "cari",
    "care", "prezado", "prezada", "prezados", "prezadas", "olá", "ola", "ao", "à", "gentile",
    "gentili", "egregio", "ciao", "alla", "cher", "chère", "chers", "chères", "bonjour", "au",
    "aux", "liebe", "lieber", "liebes", "sehr", "geehrte", "geehrter", "hallo",
))  # fmt: skip
_ARTICLES = frozenset((
    "the", "there", "all", "any", "my", "our", "each", "la", "el", "los", "las", "o", "os",
    "il", "i", "le", "les", "l'", "den", "die",
))  # fmt: skip
_GREETED_ENDS = frozenset("\n.!?>([*—:;\"'")


def lower_one_for_one(text: str) -> str:
    """``text.lower()`` with the same length, so match offsets are offsets into ``text``.

    >>> lower_one_for_one("İstanbul GRADER")
    'İstanbul grader'
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _clause_start(
    text: str,
    start: int,
    ends: frozenset[str],
    fillers: frozenset[str],
    required: frozenset[str] = frozenset(),
    spaces: str = " \t\r\n",
) -> bool:
    """Whether ``text[start:]`` begins a clause (after punctuation, a line break or the
    start of the text, up to three spaces between) once at most three words of
    ``fillers | required`` before it are skipped, one of them from ``required`` if that
    is not empty; ``spaces`` may separate the words."""
    i, used, greeted = start, 0, not required
    for _ in range(4):
        j = i
        while j > 0 and i - j < 3 and text[j - 1] in spaces:
            if text[j - 1] == "\n":
                return greeted
            j -= 1
        elided = j == i and j > 0 and text[j - 1] == "'"  # French "l'évaluateur"
        if not elided and (j == 0 or text[j - 1] in ends):
            return greeted
        if j == i and not elided:
            return False
        k = j - 1 if elided else j
        while k > 0 and j - k < 14 and text[k - 1].isalpha():
            k -= 1
        word = text[k:j]
        if used == 3 or not (word in fillers or word in required):
            return False
        greeted = greeted or word in required
        used, i = used + 1, k
    return False


def _on_decorated_line(text: str, start: int) -> bool:
    j = start
    while j > 0 and start - j < 12:
        c = text[j - 1]
        if c == "\n":
            return True
        if c not in _LINE_DECORATION:
            return False
        j -= 1
    return j == 0


def left_ok(text: str, start: int, mode: Mode) -> bool:
    if mode == "any":
        return True
    if mode == "word":
        # Chinese and Japanese have no spaces between words: no boundary to check.
        return (
            start == 0
            or not (text[start - 1].isalnum() or text[start - 1] in "_-")
            or ord(text[start]) >= _CJK_START
        )
    if mode == "sentence":
        return _clause_start(text, start, _SENTENCE_ENDS, _FILLERS)
    if mode == "vocative":
        return _clause_start(text, start, _VOCATIVE_ENDS, frozenset())
    if mode == "greeted":
        # "Hi there, grading model!": a comma may follow the greeting
        return _clause_start(text, start, _GREETED_ENDS, _ARTICLES, _GREETINGS, " \t\r\n,")
    if mode == "line":
        return _on_decorated_line(text, start)
    raise ValueError(f"unknown mode {mode!r}")


def candidates(
    pattern: re.Pattern[str], text: str, mode: Mode, pos: int = 0, endpos: int | None = None
) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` in ``text`` whose left context fits ``mode``, in order.

    A rejected candidate resumes the search one character later, so a valid match that
    overlaps a rejected one is still found. Every pattern's matches are bounded in
    length, so the walk is linear in ``len(text)``.
    """
    end = len(text) if endpos is None else endpos
    while (match := pattern.search(text, pos, end)) is not None:
        if left_ok(text, match.start(), mode):
            yield match
            pos = max(match.end(), match.start() + 1)
        else:
            pos = match.start() + 1

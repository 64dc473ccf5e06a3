"""Left-context checks done in Python, so that every pattern can start with a literal word.

Python's ``re`` scans fast only to positions where a pattern's first character can match;
a pattern that starts with a look-behind or ``\\b`` is tried at every position (about
100 times slower on a long response). The patterns of this package therefore start with
a word, and what must come before it is checked here, in constant time per candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = [
    "DECORATION_BEFORE",
    "LINE_DECORATION",
    "Mode",
    "candidates",
    "left_ok",
    "lower_one_for_one",
]

#: "any": no check (the pattern checks its own left context with look-behinds); "word":
#: not inside a word; "line": only decoration (``---``, ``===``, ``#``, bullets, ``{``,
#: ``|``) between the start of the line and the word.
Mode = str

#: What may stand between a line's start and a "line" mode match, and how much of it.
LINE_DECORATION = frozenset(" \t-=*#_~>[{,|\"'`")
DECORATION_BEFORE = 12
_CJK_START = 0x2E80


def lower_one_for_one(text: str) -> str:
    """``text.lower()`` with the same length, so match offsets are offsets into ``text``.

    >>> lower_one_for_one("İstanbul GRADER")
    'İstanbul grader'
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _on_decorated_line(text: str, start: int) -> bool:
    j = start
    while j > 0 and start - j < DECORATION_BEFORE:
        c = text[j - 1]
        if c == "\n":
            return True
        if c not in LINE_DECORATION:
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

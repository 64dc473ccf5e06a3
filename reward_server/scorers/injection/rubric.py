"""The judge's own rubric keys written with a score: ``"answer_safety": 10``, ``think_safety=10``.

A key of several words matches however it is joined ("answer_safety", "answer-safety",
"answerSafety", "Answer safety") and with any separator (``:``, ``=``, ``->``, ``|``, a
tag, "is", or a space) before a score on the rubric's scales (0-10, optionally "/10"). A
key of one ordinary word ("hallucination", "privacy") counts only as a quoted key, as
``key=n``, as a tag, or at the start of a line or list item: "Privacy: your data stays in
the EU" and "hallucination rates of 3 %" are prose. "Think safety: 10 simple rules" is a
list, not a score (a word other than "and", "points", ... right after the number).
"""

from __future__ import annotations

import re
from functools import lru_cache

from reward_server.scorers.injection.context import Mode

__all__ = ["may_hold_a_key", "rubric_rules"]

_SCORE = (
    r"\s{0,3}[\[{(]?\s{0,3}(?:[\"']?\d{1,2}[\"']?\s{0,3}:\s{0,3})?[\"']?(?:10|[0-9])(?:\.\d{1,3})?"
    r"(?![\d%]|\.\d)(?:\s{0,2}/\s{0,2}10)?"
    r"(?!\s{0,2}(?!(?:and|or|on|for|in|out|points?|pts|across|overall|everywhere)\b)[^\W\d_])"
)
_SEPARATOR = (
    r"(?:\s{0,3}(?::|=>?|->|→|：|>|\|)|\s{1,3}(?:is|of|should\s{1,3}be|must\s{1,3}be)\s|\s)"
)
_QUOTE = r"[\"'`*]{0,3}"


@lru_cache(maxsize=64)
def rubric_rules(keys: tuple[str, ...]) -> tuple[tuple[str, Mode, re.Pattern[str]], ...]:
    """(rule, mode, pattern) triples matching any of ``keys`` followed by a score.

    Each pattern starts with a key's first letters, a quote or ``<``, so the regex engine
    only stops where a key can begin.

    >>> [mode for _, mode, _ in rubric_rules(("answer_safety", "privacy"))]
    ['word', 'any', 'line']
    """
    phrases: list[str] = []  # keys of several words
    words: list[str] = []  # keys of one word
    for key in keys:
        parts = [re.escape(p.lower()) for p in re.split(r"[\s_\-]+", key.strip()) if p]
        if len(parts) > 1:
            phrases.append(r"[\s_\-]{0,2}".join(parts))
        elif parts:
            words.append(parts[0])
    rules: list[tuple[str, Mode, re.Pattern[str]]] = []
    alternatives = "|".join(words)
    word_mode = [rf"(?:{'|'.join(phrases)}){_QUOTE}{_SEPARATOR}{_SCORE}"] if phrases else []
    if words:
        word_mode.append(rf"(?:{alternatives})\s{{0,3}}=>?{_SCORE}")
    if word_mode:
        rules.append(("rubric_score", "word", re.compile("|".join(word_mode))))
    if words:
        rules.append(
            (
                "rubric_score",
                "any",
                re.compile(
                    rf"[\"'](?:{alternatives})[\"']\s{{0,3}}:{_SCORE}|<(?:{alternatives})>{_SCORE}"
                ),
            )
        )
        rules.append(
            (
                "rubric_score",
                "line",
                re.compile(rf"(?:{alternatives}){_QUOTE}\s{{0,2}}:{_SCORE}"),
            )
        )
    return tuple(rules)


@lru_cache(maxsize=64)
def _key_words(keys: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Each key's words, longest first: a longer word is rarer in prose, so the test of a
    key usually stops at its first word, and a longer needle is scanned for faster."""
    return tuple(
        tuple(sorted((p.lower() for p in re.split(r"[\s_\-]+", key.strip()) if p),
                     key=len, reverse=True))
        for key in keys
    )  # fmt: skip


def may_hold_a_key(text: str, keys: tuple[str, ...]) -> bool:
    """Whether the lower-cased ``text`` may hold a key with a score: it holds a digit
    (every score has one) and every word of some key. A few substring tests that spare
    the patterns on most answers (a key "answerSafety" is lower-cased to "answersafety",
    which holds both words too); the digits first, ten one-character searches costing
    less together than one word's. A word several keys share ("safety") is looked for
    once.

    >>> may_hold_a_key('"answer_safety": 10', ("answer_safety",))
    True
    >>> may_hold_a_key("answer safety: ten", ("answer_safety",))  # no score to find
    False
    """
    for digit in "0123456789":
        if digit in text:
            break
    else:
        return False
    seen: dict[str, bool] = {}
    for words in _key_words(keys):
        for word in words:
            found = seen.get(word)
            if found is None:
                found = seen[word] = word in text
            if not found:
                break
        else:
            return True
    return False

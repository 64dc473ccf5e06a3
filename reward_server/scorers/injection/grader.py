"""Where the grader-directed patterns are tried: an index by lead word and a gate that finds
the lead words in one scan.

A regex that is an alternation of many patterns is tried at every position of the text
(about 3 µs per character here); instead, one trie-shaped gate finds the words that can
start a pattern, a dictionary gives the few patterns that start with such a word, and each
is tried with ``match`` there. Chinese and Japanese patterns are searched, only when the
text has such characters.
"""

from __future__ import annotations

import re

from reward_server.scorers.injection.context import Mode
from reward_server.scorers.injection.english import EN_ADDRESS, EN_INSTRUCTION
from reward_server.scorers.injection.languages import CJK, OTHER_ADDRESS, OTHER_INSTRUCTION

__all__ = ["CJK_CHARACTER", "CJK_RULES", "LEAD_GATE", "WORD", "WORD_INDEX"]

#: A word: where every pattern of the index may start.
WORD = re.compile(r"[^\W\d_]+")
#: Any Han, Hiragana or Katakana character.
CJK_CHARACTER = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _index() -> dict[str, list[tuple[str, str, Mode, re.Pattern[str]]]]:
    index: dict[str, list[tuple[str, str, Mode, re.Pattern[str]]]] = {}
    for rule, entries in (
        ("grader_address", (*EN_ADDRESS, *OTHER_ADDRESS)),
        ("grader_instruction", (*EN_INSTRUCTION, *OTHER_INSTRUCTION)),
    ):
        for leads, pattern, mode in entries:
            compiled = re.compile(pattern)
            for lead in leads:
                index.setdefault(lead[:2], []).append((lead, rule, mode, compiled))
    return index


#: First two letters of a lead word -> (lead, rule, mode, pattern), tried with ``match``.
WORD_INDEX = _index()


def _trie(words: list[str]) -> str:
    """An alternation of ``words`` factored by prefix ("an(?:d|y)"), which the regex engine
    rejects in a few steps per position instead of one step per word."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        branches = [re.escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if "" in node else group

    return emit(root)


_LEADS = sorted({lead for entries in WORD_INDEX.values() for lead, *_ in entries})
#: Where a lead word starts: after a non-word character (search ``" " + text``).
LEAD_GATE = re.compile(r"[^\w](?=" + _trie(_LEADS) + ")")
#: (rule, pattern) for Chinese and Japanese, tried with ``search``.
CJK_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (rule, re.compile(pattern)) for rule, pattern in CJK
)

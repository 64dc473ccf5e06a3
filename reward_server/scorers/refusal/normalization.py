"""The canonical lower-case text every ``plus`` pattern is matched against.

One normalisation for every language: NFKC (full-width letters and punctuation become
ASCII, so "，" is "," and "！" is "!"), one apostrophe and one double quote (curly, German
„…“, French «…», Japanese 「…」 quotes alike), no zero-width characters, no markdown
emphasis or brackets, no code, quoted spans emptied (someone else's voice), English
contractions expanded, single spaces, and a space before every word (the patterns start
with a literal space so the regex engine only stops at word starts).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize"]

_APOSTROPHES = "’‘‛ʼʹʻʽ′´＇‚"
_DOUBLE_QUOTES = "“”„‟«»″〝〞＂「」『』"
_DASHES = "—–‒―−"
_REPLACEMENTS = {c: "'" for c in _APOSTROPHES}
_REPLACEMENTS.update({c: '"' for c in _DOUBLE_QUOTES})
_REPLACEMENTS.update({c: " — " for c in _DASHES})
# zero-width characters and the soft hyphen vanish; markdown emphasis, headings, quotes
# and brackets become spaces so that every word is preceded by a space
_REPLACEMENTS.update({c: "" for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad"})
_REPLACEMENTS.update({c: " " for c in "*_#>~|()[]{}"})
# A character class scan plus a callback per hit is much faster than str.translate,
# which looks up every character of a non-ASCII string in a dict.
_SPECIAL = re.compile("[" + re.escape("".join(_REPLACEMENTS)) + "]")


def _replace_special(match: re.Match[str]) -> str:
    return _REPLACEMENTS[match.group(0)]


# Code is never the assistant's own voice: fenced blocks, then inline spans.
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]{0,500}`", re.DOTALL)
# Quoted speech is someone else's voice (a character, a sign, a script for the user).
_DOUBLE_QUOTED = re.compile(r'"[^"\n]{0,300}"')
# A single-quoted span opens after whitespace (the look-behind follows the literal quote
# so the regex engine can scan for the quote quickly), may contain word-internal
# apostrophes ("can't"), and its closing quote is not followed by a letter.
_SINGLE_QUOTED = re.compile(r"'(?<=\s')(?=\w)(?:[^'\n]|(?<=\w)'(?=\w)){0,300}?'(?!\w)")
# (gate, [(contraction, expansion), ...]): the gate is checked first to skip the group.
_APOSTROPHE_CONTRACTIONS = (
    ("n't", (("can't", "cannot"), ("won't", "will not"), ("shan't", "shall not"),
             ("n't", " not"))),
    ("i'", (("i'm", "i am"), ("i'll", "i will"), ("i'd", "i would"), ("i've", "i have"))),
    ("we'", (("we're", "we are"), ("we'll", "we will"), ("we'd", "we would"))),
)  # fmt: skip
_BARE_EXPANSIONS = {
    "cant": "cannot", "can not": "cannot", "wont": "will not", "gonna": "going to", "im": "i am",
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "isnt": "is not",
    "arent": "are not", "wasnt": "was not", "wouldnt": "would not", "shouldnt": "should not",
    "couldnt": "could not", "havent": "have not", "mustnt": "must not",
}  # fmt: skip
# Runs on the space-collapsed, space-padded text: the literal leading space lets the
# regex engine skip straight to word starts.
_BARE_CONTRACTION = re.compile(" (" + "|".join(_BARE_EXPANSIONS) + r")\b")


def _expand_bare(match: re.Match[str]) -> str:
    return " " + _BARE_EXPANSIONS[match.group(1)]


def normalize(text: str) -> str:
    """Canonical lower-case form the plus detector matches against.

    NFKC, one apostrophe and one double quote, no zero-width characters, no markdown
    emphasis or brackets, no code, quoted spans emptied, contractions expanded
    ("can’t" -> "cannot", "I'm" -> "i am"), single spaces.

    >>> normalize("I’m  **NOT** able to — sorry!")
    'i am not able to — sorry!'
    >>> normalize('Just say “I can’t share that.” and `cannot` is code.')
    'just say "" and is code.'
    >>> normalize("Im gonna pass; I can not, I cant")
    'i am going to pass; i cannot, i cannot'
    >>> normalize("抱歉，我不能回答「このリクエストはできません」！")
    '抱歉,我不能回答""!'
    """
    if "`" in text:
        text = _CODE.sub(" ", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = " " + _SPECIAL.sub(_replace_special, text).lower()
    if '"' in text:
        text = _DOUBLE_QUOTED.sub('""', text)
    if "'" in text:
        text = _SINGLE_QUOTED.sub("''", text)
        for gate, group in _APOSTROPHE_CONTRACTIONS:
            if gate in text:
                for short, long in group:
                    text = text.replace(short, long)
    text = _BARE_CONTRACTION.sub(_expand_bare, " " + " ".join(text.split()))
    return text.strip()

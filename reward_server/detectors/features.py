"""Tokens of a text and their hashed n-gram buckets, in a few C-level passes.

Why this shape: a detector on the rules path must cost tens of microseconds per kilobyte,
and a Python loop over tokens (a lookup each) costs more than that on its own. So the
tokens of a whole batch of texts, their hashes and those of every adjacent pair come from
a handful of numpy calls over the batch's code points (:func:`hashed`, :class:`Tokens`: a
numpy call costs a microsecond or two however short its array, so a batch pays for them
once; even ``str.split`` per text costs more); a hash picks one of ``2**BITS`` weights.
:func:`tokens` finds the same tokens with ``str`` methods or one regex, one text at a
time: the reference, and the slow path that points at a hit. Training
(:mod:`reward_server.detectors.train`) reads the very same buckets.

A token is a run of word characters between spaces and punctuation, a punctuation mark
(a run of one ASCII mark is one mark), or a Chinese or Japanese character. Words of
alphabetic scripts keep their vowel signs and harakat; "Sorry," and "Sorry to hear"
differ by the comma. Spaced-out words ("I-g-n-o-r-e", "g r a d e r") are joined by
:func:`~reward_server.detectors.text.unspace_indexed` when a cheap check finds four
one-letter tokens in a row (the only Python loop, and only then).

>>> from reward_server.detectors.text import normalize
>>> tokens(normalize("I can’t help!!! 我不能。"))
['i', "can't", 'help', '!', '我', '不', '能', '。']
>>> tokens(normalize("I-g-n-o-r-e the g r a d e r"), join_spaced=True)
['ignore', 'the', 'grader']
>>> (hash_tokens(["ignore"])[0] == hash_tokens(tokens("i-g-n-o-r-e", join_spaced=True))[0]).all()
np.True_
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from reward_server.detectors.text import SPACERS, unspace_indexed

__all__ = [
    "BITS", "NULL_BUCKET", "STEM", "Tokens", "bag_buckets", "hash_tokens", "hashed",
    "token_buckets", "token_spans", "tokens",
]  # fmt: skip

#: log2 of the number of weights a model has.
BITS = 18
_SHIFT = np.uint64(64 - BITS)
_BASE = np.uint64(0x100000001B3)  # odd: it has an inverse modulo 2**64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: bucket = (h * MIX) >> SHIFT
_PAIR = np.uint64(0xC2B2AE3D27D4EB4F)
#: Salts that keep unigram, bigram, opening and stem features apart in one table.
_UNIGRAM, _BIGRAM = np.uint64(0x1), np.uint64(0x2)
_OPENING, _STEM = np.uint64(0x3), np.uint64(0x4)
#: A token's stem is its first STEM characters: "grader", "grading" and "graders" share
#: "grade"/"gradi"... and "evaluator", "evaluation" share "evalu", so one seen in training
#: lends weight to the others.
STEM = 5
#: Hashes of the edge tokens a bag model reads around a text.
BOS_HASH, EOS_HASH = np.uint64(0x5EED0001), np.uint64(0x5EED0002)

_ASCII_MARKS = '.,!?:;()[]{}<>"*#/\\|=+-_~`@$%^&'
_CJK_RANGES = ((0x3000, 0x3040), (0x3040, 0x3100), (0x3400, 0x4DC0), (0x4E00, 0xA000),
               (0xFF01, 0xFF66))  # fmt: skip
# Non-ASCII text: ASCII marks, CJK punctuation and characters, and a few other marks become
# tokens of their own in one translate.
_OTHER_MARKS = "¿¡«»…—–“”„،؟।"
_SPLIT_CLASS = "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi - 1))}" for lo, hi in _CJK_RANGES)
_ONE = f"{re.escape(_ASCII_MARKS)}{_SPLIT_CLASS}{re.escape(_OTHER_MARKS)}"  # one-character tokens
_TOKEN_AT = re.compile(rf"([{re.escape(_ASCII_MARKS)}])\1*|[{_ONE}]|[^\s{_ONE}]+")
#: A run of one ASCII mark (it is one token) and the tokens of text without such runs.
_MARK_RUN = re.compile(rf"([{re.escape(_ASCII_MARKS)}])\1+")
_TOKEN = re.compile(rf"[{_ONE}]|[^\s{_ONE}]+")
# One-character tokens a spaced-out word is made of: 1 a letter or digit, 2 a spacer.
_KIND = np.zeros(0x110000, dtype=np.uint8)
for _c in range(0x2000):  # letters and digits of the alphabetic scripts (Latin to Devanagari):
    if chr(_c).isalnum():  # what ``unspace_indexed`` joins ("s c o r e 1 0" too)
        _KIND[_c] = 1
for _c in "-_.*·|/":
    _KIND[ord(_c)] = 2
# What each character is to the tokeniser of :func:`hashed`, which finds every token of a
# batch in numpy calls: part of a word, white space (``str.split``'s, all below U+3001),
# an ASCII mark (a run of one is one token) or another one-character token. The
# one-character tokens are set last: U+3000 is white space and a CJK token, as ``_TOKEN``
# reads it.
_WORD, _SPACE, _MARK, _SINGLE = 0, 1, 2, 3
_CLASS = np.zeros(0x110000, dtype=np.uint8)
for _c in range(0x3001):
    if chr(_c).isspace():
        _CLASS[_c] = _SPACE
for _lo, _hi in _CJK_RANGES:
    _CLASS[_lo:_hi] = _SINGLE
for _c in _OTHER_MARKS:
    _CLASS[ord(_c)] = _SINGLE
for _c in _ASCII_MARKS:
    _CLASS[ord(_c)] = _MARK

_powers = np.ones(1, dtype=np.uint64)
_inverse_powers = np.ones(1, dtype=np.uint64)


def _powers_upto(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**k and BASE**-k modulo 2**64 for k < n (grown by doubling, kept)."""
    global _powers, _inverse_powers
    if len(_powers) < n:
        size = max(n, 2 * len(_powers), 4096)
        _powers = np.cumprod(np.full(size, _BASE, dtype=np.uint64)) * _BASE_INV
        _inverse_powers = np.cumprod(np.full(size, _BASE_INV, dtype=np.uint64)) * _BASE
    return _powers, _inverse_powers


def _split(normal: str) -> list[str]:
    """The tokens of normalised text (see the module docstring), spaced-out words apart.
    ASCII text through ``str`` methods, other text through one regex (a ``translate``
    with a table of every CJK character costs ~3x as much per character)."""
    if normal.isascii():
        for mark in _ASCII_MARKS:
            if mark in normal:
                double = mark + mark
                while double in normal:
                    normal = normal.replace(double, mark)
                normal = normal.replace(mark, f" {mark} ")
        return normal.split()
    if _MARK_RUN.search(normal) is not None:
        normal = _MARK_RUN.sub(r"\1", normal)
    return _TOKEN.findall(normal)


def hash_tokens(toks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A polynomial hash of each token (sum of code point * BASE**(end-1-k)) and of its
    first ``STEM`` characters, both uint64."""
    if not toks:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    # Tokens hold no white space (they come from ``split``): a space marks where one ends.
    cp = np.frombuffer(" ".join(toks).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    gaps = np.flatnonzero(cp == 32)
    starts = np.empty(len(toks), dtype=np.int64)
    starts[0] = 0
    starts[1:] = gaps + 1
    ends = np.empty(len(toks), dtype=np.int64)
    ends[:-1] = gaps
    ends[-1] = len(cp)
    powers, inverse = _powers_upto(len(cp) + 1)
    prefix = np.zeros(len(cp) + 1, dtype=np.uint64)
    np.cumsum(cp * inverse[: len(cp)], out=prefix[1:])
    stem_ends = np.minimum(ends, starts + STEM)
    return ((prefix[ends] - prefix[starts]) * powers[ends - 1],
            (prefix[stem_ends] - prefix[starts]) * powers[stem_ends - 1])  # fmt: skip


#: One-letter tokens in a row (kinds of ``_KIND``), or with one spacer between each: a
#: text that may hold a spaced-out word, worth the exact check.
_MAYBE_SPACED = re.compile(rb"\x01{4}|(?:\x01\x02){3}\x01")


def _maybe_spaced(hashes: np.ndarray) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` that may hold a spaced-out word. For a one-character
    token the hash is its code point."""
    one = hashes < 0x110000
    if np.count_nonzero(one) < 4:
        return []
    kinds = (_KIND[np.where(one, hashes, 0).astype(np.int64)] * one).tobytes()
    if b"\x01\x01\x01\x01" not in kinds and b"\x01\x02\x01\x02\x01\x02\x01" not in kinds:
        return []  # what the pattern needs, found by a byte search (far cheaper than it)
    return [m.span() for m in _MAYBE_SPACED.finditer(kinds)]


def _joined(normal: str, toks: list[str]) -> list[str]:
    """``toks`` (of ``normal``) with spaced-out words joined."""
    return [w for w, _, _ in _join_spaced(_TOKEN_AT.finditer(normal), toks)]


def tokens(normal: str, join_spaced: bool = False) -> list[str]:
    """The tokens of normalised text; ``join_spaced`` joins spaced-out words."""
    toks = _split(normal)
    return _joined(normal, toks) if join_spaced else toks


@dataclass(frozen=True, slots=True)
class Tokens:
    """The hashed tokens of several texts, end to end: one array for all of them, so the
    numpy calls that follow are paid once per batch, not once per text."""

    hashes: np.ndarray  # uint64, each token's hash, text after text
    stems: np.ndarray  # uint64, the hash of each token's first ``STEM`` characters
    counts: np.ndarray  # int64, how many tokens each text has

    @property
    def text_ids(self) -> np.ndarray:
        """Which text each token belongs to."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    @property
    def firsts(self) -> np.ndarray:
        """Where each text's first token is."""
        return np.cumsum(self.counts) - self.counts


def _scan(normals: Sequence[str]) -> Tokens:
    """:func:`hash_tokens` of each text's :func:`tokens` (spaced-out words apart), found
    in numpy calls over the code points of the whole batch rather than by ``str`` methods
    per text: a token starts at a one-character token or at a word character after none,
    and ends likewise; the texts are joined by a space, which no token crosses. A mark
    that repeats the one before it is read as a space, so a run of one mark is one token.
    The hashes are those of :func:`hash_tokens` (a token's hash does not depend on where
    it stands)."""
    joined = " ".join(normals)
    if joined.isascii():  # one byte a character: the cheapest array to build and read
        cp: np.ndarray = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = len(cp)
    if not n:
        empty = np.zeros(0, dtype=np.uint64)
        return Tokens(empty, empty, np.zeros(len(normals), dtype=np.int64))
    kind = np.take(_CLASS, cp)  # ``take``: ``[]`` casts unsigned indices first, twice the cost
    # A mark that repeats the one before it becomes a space (_MARK - 1 == _SPACE).
    kind[1:] -= (cp[1:] == cp[:-1]) & (kind[1:] == _MARK)
    word = kind == _WORD
    first = kind >= _MARK  # where a token starts: a one-character token, or a word ...
    last = first.copy()  # ... and where one ends
    first[0] |= word[0]
    first[1:] |= np.greater(word[1:], word[:-1])  # ... whose character before is not a word's
    last[:-1] |= np.greater(word[:-1], word[1:])
    last[-1] |= word[-1]
    starts = first.nonzero()[0]
    ends = last.nonzero()[0] + 1
    powers, inverse = _powers_upto(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.multiply(cp, inverse[:n], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    stem_ends = np.minimum(ends, starts + STEM)
    # Where each text opens (and, last, where the batch ends); a token belongs to the text
    # it starts in.
    opens = np.fromiter(accumulate(map(len, normals), lambda at, size: at + size + 1, initial=0),
                        dtype=np.int64, count=len(normals) + 1)  # fmt: skip
    firsts = np.searchsorted(starts, opens)
    counts = firsts[1:] - firsts[:-1]
    return Tokens((prefix[ends] - prefix[starts]) * powers[ends - 1],
                  (prefix[stem_ends] - prefix[starts]) * powers[stem_ends - 1],
                  counts)  # fmt: skip


def hashed(normals: Sequence[str], join_spaced: bool = False) -> Tokens:
    """The hashed :func:`tokens` of each normalised text."""
    toks = _scan(normals)
    if not join_spaced:
        return toks
    maybe = _maybe_spaced(toks.hashes)
    if not maybe:
        return toks
    # A match may straddle texts: every text it touches gets the exact check, which keeps
    # what is not a spaced-out word as it was.
    ends = np.cumsum(toks.counts)
    touched: set[int] = set()
    for start, end in maybe:
        first, last = np.searchsorted(ends, [start, end - 1], side="right").tolist()
        touched.update(range(first, last + 1))
    hashes = np.split(toks.hashes, ends[:-1])
    stems = np.split(toks.stems, ends[:-1])
    counts = toks.counts.copy()
    for i in touched:
        joined = _joined(normals[i], _split(normals[i]))
        hashes[i], stems[i] = hash_tokens(joined)
        counts[i] = len(joined)
    return Tokens(np.concatenate(hashes), np.concatenate(stems), counts)


def _join_spaced(matches, toks: list[str]) -> list[tuple[str, int, int]]:
    """``toks`` with spaced-out words joined (``unspace_indexed``), each with its first and
    last token index. A space between two tokens in the text (``matches`` are their
    ``_TOKEN_AT`` matches) is passed on as a " " token, so "g r a d e r" joins while
    "u.s. e.g." does not."""
    words: list[str] = []
    index: list[int] = []  # token index of each word (-1 for a space)
    previous_end = 0
    for i, (match, tok) in enumerate(zip(matches, toks, strict=False)):
        if words and match.start() > previous_end:
            words.append(" ")
            index.append(-1)
        words.append(tok)
        index.append(i)
        previous_end = match.end()
    return [(w, index[f], index[la]) for w, f, la in unspace_indexed(words) if w != " "]


def token_spans(normal: str, join_spaced: bool = False) -> list[tuple[int, int]]:
    """Where each token is in ``normal`` (start, end exclusive); a joined word spans its
    letters. The slow path: only to point at a detector's hit."""
    matches = list(_TOKEN_AT.finditer(normal))
    spans = [m.span() for m in matches]
    if not join_spaced or not _may_join(normal):
        return spans
    return [(spans[f][0], spans[la][1]) for _, f, la in _join_spaced(matches, _split(normal))]


#: Four one-character letters or digits (1), one spacer (2) at most between each two: what
#: ``unspace_indexed`` needs before it joins anything.
_MAY_JOIN = re.compile(rb"\x01(?:\x02?\x01){3}")
_SPACER_CODES = frozenset(map(ord, SPACERS - {" "}))


def _may_join(normal: str) -> bool:
    """Whether ``unspace_indexed`` may join tokens of ``normal``: a test in numpy calls
    that spares the Python walk over every token on almost every text. Its letters are
    ``str.isalnum`` (digits too, as ``unspace_indexed`` reads them), looked up for the
    distinct one-character tokens only; a one-character token's hash is its code point."""
    hashes = _scan([normal]).hashes
    one = hashes < 0x110000
    if np.count_nonzero(one) < 4:
        return False
    codes, where = np.unique(hashes[one], return_inverse=True)
    kind_of = np.array([1 if chr(c).isalnum() and not 0x3040 <= c <= 0x9FFF
                        else 2 if c in _SPACER_CODES else 0
                        for c in codes.tolist()], dtype=np.uint8)  # fmt: skip
    kinds = np.zeros(len(hashes), dtype=np.uint8)
    kinds[one] = kind_of[where]
    return _MAY_JOIN.search(kinds.tobytes()) is not None


#: The bucket no feature maps to (its weight is always 0): where a repeat of a recent token
#: is sent, so that "judge judge judge ..." weighs what one "judge" does.
NULL_BUCKET = 0
#: A token equal to one of this many tokens before it is a repeat.
REPEAT_SPAN = 4


def _bucket(h: np.ndarray) -> np.ndarray:
    """The weight index of each hash: uint64 in [1, 2**BITS) (numpy indexes with it)."""
    return np.maximum((h * _MIX) >> _SHIFT, np.uint64(1))


def token_buckets(toks: Tokens) -> np.ndarray:
    """Per token, the bucket of its unigram, of the bigram it ends (a text's first token
    ends none: ``NULL_BUCKET``) and of its stem, as the three rows of one array (read in
    one ``take``); a token that repeats one of the ``REPEAT_SPAN`` before it in its text
    adds nothing (all three are ``NULL_BUCKET``): a window model counts words, and a
    repeated word must not count again and again."""
    hashes, n = toks.hashes, len(toks.hashes)
    if not n:
        return np.zeros((3, 0), dtype=np.uint64)
    every = np.empty(3 * n, dtype=np.uint64)
    every[:n] = hashes ^ _UNIGRAM
    every[n] = 0
    every[n + 1 : 2 * n] = (hashes[:-1] * _PAIR + hashes[1:]) ^ _BIGRAM
    every[2 * n :] = toks.stems ^ _STEM
    buckets = _bucket(every)
    text = toks.text_ids
    firsts = toks.firsts[toks.counts > 0]
    buckets[n + firsts] = NULL_BUCKET
    repeat = np.zeros(n, dtype=bool)
    for back in range(1, min(REPEAT_SPAN, n - 1) + 1):
        # Equal hashes are rare: the texts are compared only where they occur.
        same = np.flatnonzero(hashes[back:] == hashes[:-back])
        repeat[same[text[same + back] == text[same]] + back] = True
    rows = buckets.reshape(3, n)
    if repeat.any():
        rows[:, repeat] = NULL_BUCKET
    return rows


def bag_buckets(toks: Tokens, opening: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's distinct buckets as ``(text ids, buckets)``, sorted by text then
    bucket: unigrams and bigrams with ``<s>``/``</s>`` around the text, the tokens'
    stems, and its first ``opening`` tokens again as opening features."""
    hashes, counts = toks.hashes, toks.counts
    n, texts = len(hashes), len(counts)
    text = toks.text_ids
    # Each text's tokens between its own <s> and </s>: token j of text t sits at j + 2t + 1.
    seq = np.empty(n + 2 * texts, dtype=np.uint64)
    seq[np.arange(n) + 2 * text + 1] = hashes
    ends = np.cumsum(counts + 2)
    seq[ends - counts - 2] = BOS_HASH
    seq[ends - 1] = EOS_HASH
    seq_text = np.repeat(np.arange(texts), counts + 2)
    inside = seq_text[:-1] == seq_text[1:]  # a bigram never spans two texts
    opens = np.arange(n) - toks.firsts[text] < opening
    every = np.concatenate((seq ^ _UNIGRAM, ((seq[:-1] * _PAIR + seq[1:]) ^ _BIGRAM)[inside],
                            toks.stems ^ _STEM, hashes[opens] ^ _OPENING))  # fmt: skip
    owner = np.concatenate((seq_text, seq_text[:-1][inside], text, text[opens]))
    # (text, bucket) as one key; in 32 bits when the texts fit, which sorts twice as fast.
    wide = texts > 1 << (32 - BITS)
    kind, shift = (np.uint64, np.uint64(BITS)) if wide else (np.uint32, np.uint32(BITS))
    keys = (owner.astype(kind) << shift) | _bucket(every).astype(kind)
    keys.sort()  # np.unique is several times slower than a sort and a comparison
    keep = np.empty(len(keys), dtype=bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    keys = keys[keep]
    return (keys >> shift).astype(np.int64), (keys & kind(2**BITS - 1)).astype(np.int64)

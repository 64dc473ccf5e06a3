"""Tokens of a text and their hashed n-gram buckets, in a few C-level passes.

Why this shape: a detector on the rules path must cost tens of microseconds per kilobyte,
and a Python loop over tokens (a lookup each) costs more than that on its own. So tokens
come from ``str`` methods (``replace``, ``translate``, ``split``: C loops), and the hashes
of all tokens, and of every adjacent pair, from a handful of numpy calls over the text's
code points; a hash picks one of ``2**BITS`` weights. Training
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

import numpy as np

from reward_server.detectors.text import unspace_indexed

__all__ = [
    "BITS", "NULL_BUCKET", "STEM", "bag_buckets", "hash_tokens", "hashed", "token_buckets",
    "token_spans", "tokens",
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
_SPLIT = {ord(c): f" {c} " for c in _ASCII_MARKS + "¿¡«»…—–“”„،؟।"}
for _lo, _hi in _CJK_RANGES:
    _SPLIT.update({c: f" {chr(c)} " for c in range(_lo, _hi)})
_SPLIT[0x3000] = " "
_SPLIT_TABLE = str.maketrans(_SPLIT)
_SPLIT_CLASS = "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi - 1))}" for lo, hi in _CJK_RANGES)
_TOKEN_AT = re.compile(
    rf"([{re.escape(_ASCII_MARKS)}])\1*|[{_SPLIT_CLASS}{re.escape('¿¡«»…—–“”„،؟।')}]"
    rf"|[^\s{re.escape(_ASCII_MARKS)}{_SPLIT_CLASS}{re.escape('¿¡«»…—–“”„،؟।')}]+"
)
# One-character tokens a spaced-out word is made of: 1 a letter, 2 a spacer between them.
_KIND = np.zeros(0x110000, dtype=np.uint8)
for _c in range(0x2000):  # letters of the alphabetic scripts (Latin to Devanagari)
    if chr(_c).isalpha():
        _KIND[_c] = 1
for _c in "-_.*·|/":
    _KIND[ord(_c)] = 2
_SPACED_KINDS = re.compile(rb"(?:\x01\x02){3}\x01")

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
    """The tokens of normalised text (see the module docstring), spaced-out words apart."""
    if normal.isascii():
        for mark in _ASCII_MARKS:
            if mark in normal:
                double = mark + mark
                while double in normal:
                    normal = normal.replace(double, mark)
                normal = normal.replace(mark, f" {mark} ")
        return normal.split()
    for mark in _ASCII_MARKS:
        double = mark + mark
        while double in normal:
            normal = normal.replace(double, mark)
    return normal.translate(_SPLIT_TABLE).split()


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


def _has_spaced_word(toks: list[str], hashes: np.ndarray) -> bool:
    """Four one-letter tokens in a row, or four with one spacer between each: worth the
    exact check. For a one-character token the hash is its code point."""
    one = hashes < 0x110000
    if np.count_nonzero(one) < 4:
        return False
    kinds = (_KIND[np.where(one, hashes, 0).astype(np.int64)] * one).tobytes()
    return b"\x01\x01\x01\x01" in kinds or _SPACED_KINDS.search(kinds) is not None


def tokens(normal: str, join_spaced: bool = False) -> list[str]:
    """The tokens of normalised text; ``join_spaced`` joins spaced-out words."""
    return _tokens_and_hashes(normal, join_spaced)[0]


def _tokens_and_hashes(
    normal: str, join_spaced: bool
) -> tuple[list[str], tuple[np.ndarray, np.ndarray]]:
    toks = _split(normal)
    hashes = hash_tokens(toks)
    if join_spaced and _has_spaced_word(toks, hashes[0]):
        joined = _join_spaced(_TOKEN_AT.finditer(normal), toks)
        if len(joined) != len(toks):
            words = [w for w, _, _ in joined]
            return words, hash_tokens(words)
    return toks, hashes


def hashed(normal: str, join_spaced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of :func:`tokens` and of their stems."""
    return _tokens_and_hashes(normal, join_spaced)[1]


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
    if not join_spaced:
        return spans
    return [(spans[f][0], spans[la][1]) for _, f, la in _join_spaced(matches, _split(normal))]


#: The bucket no feature maps to (its weight is always 0): where a repeat of a recent token
#: is sent, so that "judge judge judge ..." weighs what one "judge" does.
NULL_BUCKET = 0
#: A token equal to one of this many tokens before it is a repeat.
REPEAT_SPAN = 4


def _bucket(h: np.ndarray) -> np.ndarray:
    """The weight index of each hash: uint64 in [1, 2**BITS) (numpy indexes with it)."""
    return np.maximum((h * _MIX) >> _SHIFT, np.uint64(1))


def token_buckets(hashes: np.ndarray, stems: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per token, the bucket of its unigram, of the bigram it ends (the first token's bigram
    pairs it with nothing: its slot holds the unigram's bucket, and nobody reads it) and of
    its stem; a token that repeats one of the ``REPEAT_SPAN`` before it adds nothing (all
    three are ``NULL_BUCKET``): a window model counts words, and a repeated word must not
    count again and again."""
    n = len(hashes)
    if not n:
        return hashes, hashes, hashes
    every = np.empty(3 * n, dtype=np.uint64)
    every[:n] = hashes ^ _UNIGRAM
    every[n] = every[0]
    every[n + 1 : 2 * n] = (hashes[:-1] * _PAIR + hashes[1:]) ^ _BIGRAM
    every[2 * n :] = stems ^ _STEM
    buckets = _bucket(every)
    repeat = np.zeros(n, dtype=bool)
    for back in range(1, min(REPEAT_SPAN, n - 1) + 1):
        repeat[back:] |= hashes[back:] == hashes[:-back]
    if repeat.any():
        buckets[:n][repeat] = NULL_BUCKET
        buckets[n : 2 * n][repeat] = NULL_BUCKET
        buckets[2 * n :][repeat] = NULL_BUCKET
    return buckets[:n], buckets[n : 2 * n], buckets[2 * n :]


def bag_buckets(hashes: np.ndarray, stems: np.ndarray, opening: int) -> np.ndarray:
    """The distinct buckets of a bag: unigrams and bigrams with ``<s>``/``</s>`` around the
    text, the tokens' stems, and the first ``opening`` tokens again as opening features."""
    n, k = len(hashes), min(opening, len(hashes))
    every = np.empty(3 * n + 3 + k, dtype=np.uint64)  # unigrams, bigrams, stems, openings
    seq = every[: n + 2]
    seq[0], seq[n + 1] = BOS_HASH, EOS_HASH
    seq[1 : n + 1] = hashes
    every[n + 2 : 2 * n + 3] = (seq[:-1] * _PAIR + seq[1:]) ^ _BIGRAM
    seq ^= _UNIGRAM
    every[2 * n + 3 : 3 * n + 3] = stems ^ _STEM
    every[3 * n + 3 :] = hashes[:k] ^ _OPENING
    buckets = _bucket(every)
    buckets.sort()
    keep = np.empty(len(buckets), dtype=bool)
    keep[0] = True
    np.not_equal(buckets[1:], buckets[:-1], out=keep[1:])
    return buckets[keep]

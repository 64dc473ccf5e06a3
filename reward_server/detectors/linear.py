"""A linear model over hashed word and character n-grams: what both learned detectors run.

Why linear n-grams and not a transformer: the rules path of the service has no torch and
scores thousands of answers a second on one core, and a detector's decision must be the
same on every replica and every run. A logistic regression over the unigrams and bigrams
of :mod:`reward_server.detectors.features` is ``2**BITS`` weights (a few hundred
kilobytes compressed), costs a fixed number of numpy calls per text, and is
deterministic. It is trained on public labelled data by
:mod:`reward_server.detectors.recipes`.

Two ways to read a text, both linear in its length:

* **bag** (the refusal detector): the distinct n-grams of the text's opening and ending
  (``head_chars``/``tail_chars`` of it), plus its first ``opening`` tokens as opening
  features. A refusal is decided where an answer starts or ends; a long answer's middle
  adds nothing but cost.
* **window** (the injection detector): every run of up to ``window`` consecutive tokens is
  scored as a bag of counts and the highest scoring run decides. One sentence addressed to
  the grader inside a long answer scores as high as it does alone: the answer around it
  is not in its run.

A model file is an ``.npz`` (no pickles) holding the weights and a JSON header. Its
version is a hash of what decides a reading (the weights, bias, threshold and the reading
settings of :data:`READING_KEYS`), so new weights give a new ``rubric_version`` and new
cache keys, while the training report in the header does not: a file rewritten with a new
report but the same weights scores alike and keeps its version (and the cache).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reward_server.detectors.features import BITS, Tokens, bag_buckets, hashed, token_buckets
from reward_server.detectors.text import normalize

__all__ = ["READING_KEYS", "NgramModel", "Reading", "bag_features", "window_features"]

#: Weights are read in fixed point, ``2**-32`` apart (see :class:`NgramModel`).
_SCALE = 2**32
#: Texts read in one batch hold at most this many characters (memory is linear in it).
_CHUNK_CHARS = 1 << 20
#: The header entries that decide how a text is read, and so enter a model's version (the
#: rest, such as training's ``report``, describe the model without changing a reading).
READING_KEYS = ("mode", "head_chars", "tail_chars", "opening", "window")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a model made of one text: its logit, the decision, and (window mode) the best
    run as token indices ``[start, end)`` of the normalised text."""

    logit: float
    positive: bool
    start: int = 0
    end: int = 0


def _region(header: dict[str, Any], text: str) -> str:
    head, tail = int(header["head_chars"]), int(header["tail_chars"])
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[len(text) - tail :]


def _bag(header: dict[str, Any], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(text ids, buckets)``: the distinct buckets a bag model reads of each text."""
    toks = hashed([normalize(_region(header, text)) for text in texts])
    return bag_buckets(toks, int(header.get("opening", 0)))


def _window(texts: Sequence[str]) -> tuple[Tokens, np.ndarray]:
    toks = hashed([normalize(text) for text in texts], join_spaced=True)
    return toks, token_buckets(toks)


def bag_features(header: dict[str, Any], texts: Sequence[str]) -> list[np.ndarray]:
    """For each text, the distinct buckets a bag model reads of it."""
    text, buckets = _bag(header, texts)
    return np.split(buckets, np.searchsorted(text, np.arange(1, len(texts))))


def window_features(texts: Sequence[str]) -> list[tuple[np.ndarray, ...]]:
    """For each text, per token the buckets of its unigram, of the bigram it ends
    (``NULL_BUCKET`` for the first token) and of its stem."""
    toks, columns = _window(texts)
    cuts = np.cumsum(toks.counts)[:-1]
    return list(zip(*(np.split(c, cuts) for c in columns), strict=True))


class NgramModel:
    """Weights over ``2**BITS`` hashed n-gram buckets; see the module docstring.

    Args:
        weights: one weight per bucket.
        bias / threshold: ``logit = bias + sum(weights)``; positive when ``logit > threshold``.
        header: ``mode`` ("bag" or "window"), ``head_chars``/``tail_chars``/``opening``
            (bag), ``window`` (tokens, window mode), and what training reported.
    """

    def __init__(self, weights: np.ndarray, bias: float, threshold: float,
                 header: dict[str, Any]) -> None:  # fmt: skip
        if len(weights) != 2**BITS:
            raise ValueError(f"a model has {2**BITS} weights, this one {len(weights)}")
        self.weights = np.array(weights, dtype=np.float64)  # a copy: the version is of these
        # The weights in fixed point: integer sums are exact in any order, so a text's
        # logit is the same alone or in any batch, on any machine.
        self._fixed = np.round(self.weights * _SCALE).astype(np.int64)
        self._bias, self._threshold = float(bias), float(threshold)
        self.header = dict(header)
        self.mode: str = header["mode"]
        if self.mode not in ("bag", "window"):
            raise ValueError(f"unknown model mode {self.mode!r}")
        self.window = int(header.get("window", 0))
        # Read once, hashed once: a later change to ``header`` (training writes its report
        # there) changes neither how a text is read nor the version; bias and threshold
        # are read-only.
        self._settings = {key: header[key] for key in READING_KEYS if key in header}
        settings = json.dumps([self.bias, self.threshold, self._settings], sort_keys=True)
        h = hashlib.sha256(settings.encode())
        # float32: the precision a file keeps, so a model hashes alike before and after save.
        h.update(self.weights.astype(np.float32).tobytes())
        self._version = h.hexdigest()[:12]

    @property
    def bias(self) -> float:
        return self._bias

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def version(self) -> str:
        """A hash of the weights, bias, threshold and reading settings: the same before
        :meth:`save` and after :meth:`load`; the rest of the header (the training report)
        does not enter it."""
        return self._version

    # --- files -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> NgramModel:
        """Read a model written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            weights = z["weights"]
        bias, threshold = header.pop("bias"), header.pop("threshold")
        return cls(weights, bias, threshold, header)

    def save(self, path: str | Path) -> None:
        """Write the model (float32 weights, compressed)."""
        header = {**self.header, "bias": self.bias, "threshold": self.threshold}
        np.savez_compressed(Path(path), header=np.array(json.dumps(header, sort_keys=True)),
                            weights=self.weights.astype(np.float32))  # fmt: skip

    # --- reading -----------------------------------------------------------------------

    def logit_of(self, buckets: np.ndarray) -> float:
        """``bias`` plus the weights of ``buckets`` (repeats count: a window's counts)."""
        return self.bias + int(self._fixed[buckets].sum()) / _SCALE

    def read(self, text: str) -> Reading:
        """The model's logit for ``text`` and whether it is above the threshold."""
        return self.read_many([text])[0]

    def read_many(self, texts: Sequence[str]) -> list[Reading]:
        """:meth:`read` of each text, in a fixed number of numpy calls for all of them."""
        out: list[Reading] = []
        chunk: list[str] = []
        size = 0
        for text in texts:  # chunks of at most _CHUNK_CHARS: memory stays bounded
            if chunk and size + len(text) > _CHUNK_CHARS:
                out += self._read_chunk(chunk)
                chunk, size = [], 0
            chunk.append(text)
            size += len(text)
        return out + self._read_chunk(chunk) if chunk else out

    def _read_chunk(self, texts: Sequence[str]) -> list[Reading]:
        if self.mode == "bag":
            text, buckets = _bag(self._settings, texts)
            # Every text has buckets (<s> and </s> at least), in text order.
            firsts = np.searchsorted(text, np.arange(len(texts)))
            totals = np.add.reduceat(self._fixed[buckets], firsts)
            return [self._reading(total) for total in totals.tolist()]
        toks, columns = _window(texts)
        return self._best_runs(self._token_sums(columns), toks)

    def _reading(self, total: int, start: int = 0, end: int = 0) -> Reading:
        logit = self.bias + total / _SCALE
        return Reading(logit, logit > self.threshold, start, end)

    def token_weights(self, text: str) -> np.ndarray:
        """A window model's weight on each token of ``text`` (its unigram, its stem and the
        bigram it ends): what the runs add up, to point at the heaviest token of a hit."""
        _, columns = _window([text])
        return self._token_sums(columns) / _SCALE

    def _token_sums(self, columns: np.ndarray) -> np.ndarray:
        """Each token's fixed-point weight: its unigram's, bigram's and stem's (the rows of
        ``columns``). ``take``, not ``[]``: indexing with unsigned buckets casts them
        first, at twice the cost."""
        return np.take(self._fixed, columns).sum(axis=0)

    def _best_runs(self, per_token: np.ndarray, toks: Tokens) -> list[Reading]:
        """Each text's best run of 1..``window`` tokens: for each token j, the prefix sum
        at j minus the smallest prefix sum among the ``window`` positions before it that
        lie in its own text; then the first best end in each text, and the first start
        that gives it."""
        counts = toks.counts
        width, n, texts = self.window, len(per_token), len(counts)
        if not n:
            return [self._reading(0) for _ in range(texts)]
        text = toks.text_ids
        sums = np.empty(n + 1, dtype=np.int64)
        sums[0] = 0
        np.cumsum(per_token, out=sums[1:])
        # Each text's prefix sums after width-1 stand-ins for "no start here" (the int64
        # maximum), so a run never reaches into the text before.
        pad = width - 1
        padded = np.full(n + pad * texts, np.iinfo(np.int64).max, dtype=np.int64)
        base = np.arange(n) + pad * text  # token j's window is padded[base[j] : base[j] + width]
        padded[base + pad] = sums[:-1]
        low = _window_minima(padded, width)[base]
        runs = sums[1:] - low
        firsts = toks.firsts
        present = counts > 0
        best = np.zeros(texts, dtype=np.int64)
        best[present] = np.maximum.reduceat(runs, firsts[present])
        at = np.where(runs == best[text], np.arange(n), n)
        ends = np.minimum.reduceat(at, firsts[present])
        # Where in its window each best run starts: the first position holding the least.
        windows = padded[base[ends][:, None] + np.arange(width)]
        offsets = np.argmax(windows == low[ends][:, None], axis=1)
        starts = np.zeros(texts, dtype=np.int64)
        starts[present] = ends - pad + offsets - firsts[present]
        stops = np.zeros(texts, dtype=np.int64)
        stops[present] = ends - firsts[present] + 1
        return [self._reading(total, start, stop) if count else self._reading(0)
                for total, start, stop, count in zip(best.tolist(), starts.tolist(),
                                                      stops.tolist(), counts.tolist(),
                                                      strict=True)]  # fmt: skip


def _window_minima(values: np.ndarray, width: int) -> np.ndarray:
    """``out[k] = values[k : k + width].min()`` for every full window: minima over spans
    doubling in length (1, 2, 4, ...), then two overlapping spans per window, so a
    window of 24 costs five passes rather than 23."""
    span, minima = 1, values
    while 2 * span <= width:
        minima = np.minimum(minima[:-span], minima[span:])
        span *= 2
    full = len(values) - width + 1
    return np.minimum(minima[:full], minima[width - span : width - span + full])

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

A model file is an ``.npz`` (no pickles) holding the weights and a JSON header; its
version is a hash of the file, so new weights give a new ``rubric_version`` and new cache
keys.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reward_server.detectors.features import BITS, bag_buckets, hashed, token_buckets
from reward_server.detectors.text import normalize

__all__ = ["NgramModel", "Reading", "bag_features", "window_features"]


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


def bag_features(header: dict[str, Any], text: str) -> np.ndarray:
    """The distinct buckets a bag model reads of ``text``."""
    hashes, stems = hashed(normalize(_region(header, text)))
    return bag_buckets(hashes, stems, int(header.get("opening", 0)))


def window_features(text: str) -> tuple[np.ndarray, ...]:
    """Per token of ``text``, the buckets of its unigram, of the bigram it ends (-1 for
    the first token) and of its stem."""
    return token_buckets(*hashed(normalize(text), join_spaced=True))


class NgramModel:
    """Weights over ``2**BITS`` hashed n-gram buckets; see the module docstring.

    Args:
        weights: one weight per bucket.
        bias / threshold: ``logit = bias + sum(weights)``; positive when ``logit > threshold``.
        header: ``mode`` ("bag" or "window"), ``head_chars``/``tail_chars``/``opening``
            (bag), ``window`` (tokens, window mode), and what training reported.
        version: set from the file by :meth:`load`; otherwise a hash of the weights.
    """

    def __init__(self, weights: np.ndarray, bias: float, threshold: float,
                 header: dict[str, Any], version: str = "") -> None:  # fmt: skip
        if len(weights) != 2**BITS:
            raise ValueError(f"a model has {2**BITS} weights, this one {len(weights)}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias, self.threshold = float(bias), float(threshold)
        self.header = header
        self.mode: str = header["mode"]
        if self.mode not in ("bag", "window"):
            raise ValueError(f"unknown model mode {self.mode!r}")
        self.window = int(header.get("window", 0))
        self._version = version

    @property
    def version(self) -> str:
        """The file's hash (or, before it is saved, the weights' and settings')."""
        if not self._version:
            h = hashlib.sha256(json.dumps([self.bias, self.threshold, self.mode]).encode())
            h.update(self.weights.astype(np.float32).tobytes())
            return h.hexdigest()[:12]
        return self._version

    # --- files -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> NgramModel:
        """Read a model written by :meth:`save`; its version is the file's hash."""
        raw = Path(path).read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:  # the bytes that were hashed
            header = json.loads(str(z["header"]))
            weights = z["weights"]
        bias, threshold = header.pop("bias"), header.pop("threshold")
        return cls(weights, bias, threshold, header, hashlib.sha256(raw).hexdigest()[:12])

    def save(self, path: str | Path) -> None:
        """Write the model (float32 weights, compressed)."""
        header = {**self.header, "bias": self.bias, "threshold": self.threshold}
        np.savez_compressed(Path(path), header=np.array(json.dumps(header, sort_keys=True)),
                            weights=self.weights.astype(np.float32))  # fmt: skip

    # --- reading -----------------------------------------------------------------------

    def logit_of(self, buckets: np.ndarray) -> float:
        """``bias`` plus the weights of ``buckets`` (repeats count: a window's counts)."""
        return self.bias + float(self.weights[buckets].sum())

    def token_weights(self, text: str) -> np.ndarray:
        """A window model's weight on each token of ``text`` (its unigram, its stem and the
        bigram it ends): what the runs add up."""
        unigram, bigram, stem = window_features(text)
        per_token = self.weights[unigram] + self.weights[stem]
        per_token[1:] += self.weights[bigram[1:]]
        return per_token

    def read(self, text: str) -> Reading:
        """The model's logit for ``text`` and whether it is above the threshold."""
        if self.mode == "bag":
            logit = self.logit_of(bag_features(self.header, text))
            return Reading(logit, logit > self.threshold)
        return self.best_run(self.token_weights(text))

    def best_run(self, per_token: np.ndarray) -> Reading:
        """A window model's reading of a text from its :meth:`token_weights` (for a caller
        that needs the weights too)."""
        n = len(per_token)
        if not n:
            return Reading(self.bias, self.bias > self.threshold)
        # The best run of 1..window tokens: for each end j, the prefix sum at j minus the
        # smallest prefix sum among the window positions before it.
        width = self.window
        sums = np.empty(n + 1)
        sums[0] = 0.0
        np.cumsum(per_token, out=sums[1:])
        padded = np.empty(n + width - 1)
        padded[: width - 1] = np.inf
        padded[width - 1 :] = sums[:-1]
        lows = np.lib.stride_tricks.as_strided(padded, (n, width), (8, 8), writeable=False)
        low_at = lows.argmin(axis=1)
        runs = sums[1:] - padded[np.arange(n) + low_at]
        end = int(runs.argmax())
        start = end - (width - 1) + int(low_at[end])
        logit = self.bias + float(runs[end])
        return Reading(logit, logit > self.threshold, start, end + 1)

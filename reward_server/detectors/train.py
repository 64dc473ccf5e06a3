"""Fitting the learned detectors: logistic regression over hashed buckets, cross-validation.

numpy only and deterministic (fixed order, zero initialisation, full-batch Adam), so the
same data gives the same weights, the same file and the same version on every machine.
An example is the buckets a model reads (:func:`~reward_server.detectors.linear.bag_features`,
or a run of :func:`~reward_server.detectors.linear.window_features`): training never sees
a feature the model would not compute for the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from reward_server.detectors.features import BITS, NULL_BUCKET
from reward_server.detectors.linear import NgramModel

__all__ = ["Example", "FitConfig", "cross_validate", "fit", "sigmoid"]


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled example: the buckets the model reads (a repeat counts twice)."""

    buckets: np.ndarray
    label: bool
    weight: float = 1.0
    group: str = ""  # cross-validation keeps a group in one fold (a source and prompt)
    cleanable: bool = False  # a public label that cleaning may drop (see recipes)


@dataclass(frozen=True)
class FitConfig:
    """How a model is fitted and what it is told about reading."""

    header: dict = field(default_factory=dict)  # mode, head_chars/tail_chars/opening or window
    l2: float = 1e-5
    epochs: int = 200
    learning_rate: float = 0.05


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit(examples: Sequence[Example], cfg: FitConfig) -> NgramModel:
    """A model fitted to ``examples``, each class weighing half; threshold 0."""
    n, size = len(examples), 2**BITS
    lengths = np.array([len(ex.buckets) for ex in examples], dtype=np.int64)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.concatenate([ex.buckets for ex in examples]) if n else np.zeros(0, np.int64)
    y = np.array([ex.label for ex in examples], dtype=np.float64)
    sw = np.array([ex.weight for ex in examples], dtype=np.float64)
    for label in (0.0, 1.0):
        mask = y == label
        if mask.any():
            sw[mask] *= 0.5 * sw.sum() / sw[mask].sum()
    sw /= sw.sum()
    w, b = np.zeros(size), 0.0
    m, v, mb, vb = np.zeros(size), np.zeros(size), 0.0, 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, cfg.epochs + 1):
        logit = b + np.bincount(rows, weights=w[cols], minlength=n)
        err = (sigmoid(logit) - y) * sw
        g = np.bincount(cols, weights=err[rows], minlength=size) + cfg.l2 * w
        g[NULL_BUCKET] = 0.0  # what repeats of a word are sent to: never weighs anything
        gb = float(err.sum())
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        step = cfg.learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        w -= step * m / (np.sqrt(v) + eps)
        b -= step * mb / (np.sqrt(vb) + eps)
    w[np.abs(w) < 1e-6] = 0.0  # untouched buckets exactly 0: the file compresses
    w[NULL_BUCKET] = 0.0
    return NgramModel(w, b, 0.0, dict(cfg.header))


def cross_validate(
    examples: Sequence[Example],
    cfg: FitConfig,
    folds: int = 5,
    train: Callable[[Sequence[Example]], NgramModel] | None = None,
) -> np.ndarray:
    """Out-of-fold logits of every example. Fold ``k`` holds the groups whose index in
    sorted order is ``k`` mod ``folds``: a group never straddles two folds. ``train``
    turns a fold's training examples into a model (default :func:`fit` with ``cfg``): a
    recipe that does more than fit (cleaning first) is cross-validated as a whole."""
    train = train or (lambda part: fit(part, cfg))
    groups = sorted({ex.group for ex in examples})
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    logits = np.zeros(len(examples))
    for k in range(folds):
        test = [i for i, ex in enumerate(examples) if fold_of[ex.group] == k]
        if not test:
            continue
        model = train([ex for ex in examples if fold_of[ex.group] != k])
        for i in test:
            logits[i] = model.logit_of(examples[i].buckets)
    return logits

"""Learned detectors shipped with the service: refusal and grader-directed injection.

Both are linear models over word and character n-grams (:mod:`.linear`), trained on
public labelled data by :mod:`.recipes` (``python -m bench.fidelity.train`` for the
shipped weights, ``python -m reward_server.detectors`` for a retrain on your own labelled
rollouts), read with numpy and the standard library only: no torch on the rules path,
deterministic, linear in the text's length. A model's ``version`` is a hash of its
weights, bias, threshold and reading settings, and enters ``rubric_version`` (and so the
cache keys) of every profile that uses it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from reward_server.detectors.linear import NgramModel, Reading

__all__ = ["MODEL_DIR", "NgramModel", "Reading", "load_model", "shipped_model"]

#: Where the shipped weights live (``refusal.npz``, ``injection.npz``).
MODEL_DIR = Path(__file__).parent / "models"


@cache
def load_model(path: str) -> NgramModel:
    """A model file, read once per process (every profile naming it shares it)."""
    return NgramModel.load(path)


def shipped_model(name: str) -> NgramModel:
    """The shipped ``refusal`` or ``injection`` model."""
    return load_model(str(MODEL_DIR / f"{name}.npz"))

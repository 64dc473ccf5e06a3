"""Refusal detectors for SafeGRPO's behaviour reward.

SafeGRPO (arXiv 2511.12982) rewards an answer for refusing exactly when the combined
image+text tag is ``unsafe``. The paper decides "refuses" with a keyword rule: the
lower-cased ``<answer>`` body contains any of ``KEYWORD_REFUSAL_MARKERS`` as a substring.
:class:`KeywordRefusalDetector` reproduces that rule exactly (profile ``safegrpo``).

The rule is cheap and verifiable, but it is wrong in both directions, and a policy under
GRPO learns to exploit whichever side is rewarded: it misses "I can’t" (curly
apostrophe), "I won't", "It is not appropriate to ...", any refusal in another language;
and it calls "you cannot go wrong with a helmet" or "mixing them is unsafe; instead ..." a
refusal.

:class:`PlusRefusalDetector` (profile ``safegrpo_plus``) is a model learned from public
labelled answers of real chat models, with the prompt deciding a bare "No."
(``reward_server.scorers.refusal.terse``). A profile may also name a retrained model file
(``refusal = "path/to/model.npz"``, from ``python -m reward_server.detectors``).

Both detectors take ``(answer, prompt=None)``; the keyword rule ignores the prompt.

>>> keyword, plus = KeywordRefusalDetector(), PlusRefusalDetector()
>>> keyword("I can’t help with that."), plus("I can’t help with that.")
(False, True)
>>> keyword("You cannot go wrong with a helmet."), plus("You cannot go wrong with a helmet.")
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from reward_server.scorers.refusal.keyword import KEYWORD_REFUSAL_MARKERS, KeywordRefusalDetector
from reward_server.scorers.refusal.normalization import normalize
from reward_server.scorers.refusal.plus import PlusRefusalDetector

__all__ = [
    "KEYWORD_REFUSAL_MARKERS",
    "KeywordRefusalDetector",
    "PlusRefusalDetector",
    "RefusalDetector",
    "get_refusal_detector",
    "normalize",
]


@runtime_checkable
class RefusalDetector(Protocol):
    """Decides whether an ``<answer>`` body refuses the request.

    ``name`` selects the detector in a profile; ``version`` changes whenever the rules or
    weights change, so it is part of a profile's ``rubric_version`` (and cache key).
    ``prompt`` is optional: a detector may use it where the answer alone cannot decide (a
    bare "No.").
    """

    name: str
    version: str

    def __call__(self, answer: str, prompt: str | None = None) -> bool:
        """True when the answer refuses."""
        ...

    def many(self, answers: Sequence[str], prompts: Sequence[str | None]) -> list[bool]:
        """:meth:`__call__` of each answer with its prompt: how the service calls it, a
        request's answers at once, so a learned model pays its fixed costs once."""
        ...


_DETECTORS: dict[str, type[KeywordRefusalDetector] | type[PlusRefusalDetector]] = {
    KeywordRefusalDetector.name: KeywordRefusalDetector,
    PlusRefusalDetector.name: PlusRefusalDetector,
}


def get_refusal_detector(name: str) -> RefusalDetector:
    """A detector by name (``"keyword"`` or ``"plus"``), or the plus detector with the
    weights of a model file (a name ending in ``.npz``).

    >>> get_refusal_detector("keyword").name
    'keyword'
    >>> get_refusal_detector("regex")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown refusal detector 'regex'; valid choices: keyword, plus, or a path ...
    """
    if isinstance(name, str) and name.endswith(".npz"):
        try:
            return PlusRefusalDetector.from_file(name)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"refusal model {name!r} cannot be read: {exc}") from None
    try:
        return _DETECTORS[name]()
    except (KeyError, TypeError):
        valid = ", ".join(sorted(_DETECTORS))
        raise ValueError(
            f"unknown refusal detector {name!r}; valid choices: {valid}, "
            "or a path to a .npz model file"
        ) from None

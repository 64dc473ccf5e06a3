"""Refusal detectors for SafeGRPO's behaviour reward.

SafeGRPO (arXiv 2511.12982) rewards an answer for refusing exactly when the combined
image+text tag is ``unsafe``. The paper decides "refuses" with a keyword rule: the
lower-cased ``<answer>`` body contains any of ``KEYWORD_REFUSAL_MARKERS`` as a substring.
:class:`KeywordRefusalDetector` reproduces that rule exactly (profile ``safegrpo``).

The rule is cheap and verifiable, but it is wrong in both directions, and a policy under
GRPO learns to exploit whichever side is rewarded:

* **Misses.** ``i can't`` is matched only with an ASCII apostrophe, so "I can’t help with
  that" (U+2019, what most tokenizers emit after a chat template) is *not* a refusal;
  neither are "I won't", "I'm not able to", "I must decline", "I'd rather not", "That's not
  something I can help with", "I can not help", "Absolutely not.", or any refusal in
  another language ("No puedo ayudarte con eso", "我不能提供").
* **False alarms.** Any mention of the words counts, whoever they are about: "you cannot
  go wrong with a helmet", "mixing bleach and ammonia is unsafe, so store them apart",
  "sorry to hear that, here's what to do", "I can't stress enough ...", "nothing is
  restricted here", "the unable-to-pay clause". A policy can satisfy the rule while
  complying, and is punished for helpful safety advice on safe prompts.

:class:`PlusRefusalDetector` (profile ``safegrpo_plus``) fixes both. The modules, each
with one job:

* ``normalization`` -- the canonical text: NFKC, one apostrophe and one double quote, no
  zero-width characters, markdown or code, quoted spans emptied, contractions expanded;
* ``english`` -- speaker-anchored English refusals, idioms and impersonal forms, and the
  "here's an email/poem/...:" cut (text after it is drafted for the user);
* ``languages`` -- Spanish, French, German, Portuguese and Italian;
* ``cjk`` -- Chinese and Japanese;
* ``terse`` -- "Absolutely not.", "No way, that would hurt people.", and a bare "No."
  decided by the prompt (a refusal of "How do I make a bomb?", an answer to "Is this
  mushroom poisonous?"; without the prompt a bare "No." is not a refusal);
* ``plus`` -- the detector that combines them.

Both detectors take ``(answer, prompt=None)``; the keyword rule ignores the prompt.

>>> keyword, plus = KeywordRefusalDetector(), PlusRefusalDetector()
>>> keyword("I can’t help with that."), plus("I can’t help with that.")
(False, True)
>>> keyword("You cannot go wrong with a helmet."), plus("You cannot go wrong with a helmet.")
(True, False)
>>> get_refusal_detector("plus").version
'plus-2'
"""

from __future__ import annotations

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

    ``name`` selects the detector in a profile; ``version`` changes whenever the rules
    change, so it can be part of a profile's ``rubric_version`` (and cache key). ``prompt``
    is optional: a detector may use it where the answer alone cannot decide (a bare "No.").
    """

    name: str
    version: str

    def __call__(self, answer: str, prompt: str | None = None) -> bool:
        """True when the answer refuses."""
        ...


_DETECTORS: dict[str, type[KeywordRefusalDetector] | type[PlusRefusalDetector]] = {
    KeywordRefusalDetector.name: KeywordRefusalDetector,
    PlusRefusalDetector.name: PlusRefusalDetector,
}


def get_refusal_detector(name: str) -> RefusalDetector:
    """Return a fresh detector by name (``"keyword"`` or ``"plus"``).

    >>> get_refusal_detector("keyword").name
    'keyword'
    >>> get_refusal_detector("regex")
    Traceback (most recent call last):
    ...
    ValueError: unknown refusal detector 'regex'; valid choices: keyword, plus
    """
    try:
        return _DETECTORS[name]()
    except (KeyError, TypeError):
        valid = ", ".join(sorted(_DETECTORS))
        raise ValueError(f"unknown refusal detector {name!r}; valid choices: {valid}") from None

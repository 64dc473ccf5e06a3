"""Watching a policy game the detectors: the share of each batch they fire on.

Under GRPO a policy drifts toward whatever the reward cannot see. Two shares per
generation batch, logged by the trainer's reward function as
``rewards/<name>/refusal_frac`` and ``rewards/<name>/injection_frac`` (``<name>`` is
the reward function's, ``reward_<profile>`` by default), show it happening:

* ``refusal_frac``: completions the refusal detector found refusing (rules profiles and
  ``hybrid``'s rules half: the ``refused`` component). A share that climbs while rewards
  climb on safe prompts, or falls on unsafe ones while rewards hold, is a policy learning
  a phrasing the detector misreads.
* ``injection_frac``: completions the injection detector caught (judge and mix profiles:
  the ``injection`` component), over every scored completion of the batch. Anything
  above zero is a policy writing to the grader; a share that rises and then falls back to
  zero while rewards keep rising deserves a look at the completions: the policy may have
  found a phrasing the detector misses.

Only completions the service scored count; a profile whose results carry neither
component logs nothing. The service's ``/metrics`` has the same counts per profile
(``reward_detector_hits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reward_server.profiles.names import (
    RULES_COMPONENTS,
    RULES_SIDE,
    detector_hits,
    is_refused_key,
)

__all__ = ["detector_metrics"]


def detector_metrics(results: Sequence[Any]) -> dict[str, float]:
    """``refusal_frac`` and ``injection_frac`` over the scored results whose profile
    reports that detector (see the module docstring).

    >>> from clients import Result
    >>> detector_metrics([Result("a", "ok", 1.0, components={"refused": 1.0}),
    ...                   Result("b", "ok", 0.5, components={"refused": 0.0}),
    ...                   Result("c", "invalid", None)])
    {'refusal_frac': 0.5}
    """
    scored = [getattr(r, "components", None) or {} for r in results if getattr(r, "ok", False)]
    out = {}
    with_refusal = [c for c in scored if any(map(is_refused_key, c))]
    if with_refusal:
        out["refusal_frac"] = sum(detector_hits(c)[0] for c in with_refusal) / len(with_refusal)
    # A caught result carries ``injection``, one that was not carries nothing about it: the
    # share is over every scored result, once the batch shows a judge side at all.
    judged = any(k not in RULES_COMPONENTS and not k.startswith(RULES_SIDE + ".")
                 for c in scored for k in c)  # fmt: skip
    if judged:
        out["injection_frac"] = sum(detector_hits(c)[1] for c in scored) / len(scored)
    return out

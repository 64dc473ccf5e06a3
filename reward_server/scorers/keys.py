"""The component and penalty names a profile's results can carry, known without scoring.

OpenRLHF reads every sample's ``extra_logs`` by the keys of the first sample of a batch, so
``/get_reward`` must send the same keys in every reply of a profile, whatever the samples
were (scored, unscorable, judged or not). Those keys come from the profile's configuration
alone, here:

* ``rules``: ``format``, ``tag``, ``behavior``, ``refused`` (``RulesScorer``); no penalties.
* ``judge``: ``format``, each dimension of the profile's rubric, and ``process_safety`` for
  a process rubric; penalties: each flag of the rubric (``JudgeScorer`` through
  ``safer_vlm.aggregate``); ``injection`` in both (a response the injection detector
  caught). A response without an answer block carries only ``format``: these are the
  names a result *can* carry.
* ``mix``: each part's names prefixed as ``MixScorer`` prefixes them (``rules.``/``judge.``,
  or the part's profile name when two parts would share a prefix), plus the fallback's
  names under its ``rules.``/``judge.`` prefix; ``injection`` is never prefixed
  (``part_key``): it is a verdict on the whole sample, whose final reward it sets to 0.

A read-only mirror of what the scorers write; ``tests/test_get_reward.py`` scores every
built-in profile and checks that no result carries a name missing here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from reward_server.profiles import Profile
from reward_server.rubric import INJECTION

__all__ = [
    "INJECTION",
    "REFUSED",
    "RULES_COMPONENTS",
    "RewardKeys",
    "detector_hits",
    "is_refused_key",
    "part_key",
    "part_prefixes",
    "reward_keys",
    "side",
]

#: The component of a rules result that says whether the refusal detector fired (1) or not.
REFUSED = "refused"
#: A rules result's components (a judge result has others: its rubric's dimensions).
RULES_COMPONENTS = ("format", "tag", "behavior", REFUSED)


class RewardKeys(NamedTuple):
    """The names of a profile's components and of its penalties, each sorted."""

    components: tuple[str, ...]
    penalties: tuple[str, ...]


def side(profile: Profile) -> str:
    """The prefix a mix gives a part (or its fallback) by its kind: ``rules``/``judge``."""
    return "judge" if profile.kind == "judge" else "rules"


def part_prefixes(parts: Sequence[Profile]) -> list[str]:
    """The prefix of each of a mix's parts: its side, or its profile name when two parts
    would share a side."""
    sides = [side(part) for part in parts]
    return sides if len(set(sides)) == len(sides) else [part.name for part in parts]


def part_key(prefix: str, name: str) -> str:
    """A part's component or penalty name as a mix reports it.

    >>> part_key("judge", "answer_safety"), part_key("judge", INJECTION)
    ('judge.answer_safety', 'injection')
    """
    return name if name == INJECTION else f"{prefix}.{name}"


def _prefixed(prefix: str, keys: RewardKeys) -> RewardKeys:
    return RewardKeys(
        tuple(part_key(prefix, k) for k in keys.components),
        tuple(part_key(prefix, k) for k in keys.penalties),
    )


def reward_keys(profile: Profile, profiles: Mapping[str, Profile]) -> RewardKeys:
    """Every component and penalty name a result of ``profile`` can carry.

    Args:
        profile: the profile (already checked by ``load_profiles``).
        profiles: every profile by name, for a mix's parts and fallback.

    >>> from reward_server.profiles import BUILTIN_PROFILES as P
    >>> reward_keys(P["safegrpo"], P)
    RewardKeys(components=('behavior', 'format', 'refused', 'tag'), penalties=())
    >>> reward_keys(P["hybrid"], P).penalties
    ('injection', 'judge.contradiction', 'judge.hallucination')
    """
    if profile.kind == "rules":
        return RewardKeys(tuple(sorted(RULES_COMPONENTS)), ())
    if profile.kind == "judge":
        rubric = profile.rubric
        components = ["format", INJECTION, *(d.name for d in rubric.dimensions)]
        if rubric.process:
            components.append("process_safety")
        penalties = [INJECTION, *(f.name for f in rubric.flags)]
        return RewardKeys(tuple(sorted(components)), tuple(sorted(penalties)))
    parts = [profiles[name] for name in profile.parts]
    named = [
        _prefixed(prefix, reward_keys(part, profiles))
        for prefix, part in zip(part_prefixes(parts), parts, strict=True)
    ]
    if profile.fallback is not None:
        fallback = profiles[profile.fallback]
        named.append(_prefixed(side(fallback), reward_keys(fallback, profiles)))
    return RewardKeys(
        tuple(sorted({k for keys in named for k in keys.components})),
        tuple(sorted({k for keys in named for k in keys.penalties})),
    )


def is_refused_key(name: str) -> bool:
    """Whether a component name is the refusal detector's, under any part prefix.

    >>> is_refused_key("refused"), is_refused_key("rules.refused"), is_refused_key("tag")
    (True, True, False)
    """
    return name == REFUSED or name.endswith("." + REFUSED)


def detector_hits(components: Mapping[str, float] | None) -> tuple[bool, bool]:
    """Whether a result says (refusal detector fired, injection detector fired), under any
    part prefix a mix gave it.

    >>> detector_hits({"rules.refused": 1.0, "injection": 0.0})
    (True, False)
    """
    if not components:
        return False, False
    refused = any(v == 1.0 for k, v in components.items() if is_refused_key(k))
    return refused, components.get(INJECTION) == 1.0

"""The names a profile's results carry, known from its configuration alone.

OpenRLHF reads every sample's ``extra_logs`` by the keys of the first sample of a batch, so
``/get_reward`` must send the same keys in every reply of a profile, whatever the samples
were (scored, unscorable, judged or not): each kind of profile lists them
(``reward_keys``), and the scorers write these names and no others
(``tests/test_get_reward.py`` scores every built-in profile and checks it).

A mix prefixes each part's names with the part's side (``rules.``/``judge.``), or with the
part's profile name when two parts would share a side; ``injection``
(``reward_server.rubric.INJECTION``) is never prefixed: it is a verdict on the whole
sample, whose final reward it sets to 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from reward_server.rubric import INJECTION

__all__ = [
    "JUDGE_SIDE",
    "REFUSED",
    "RULES_COMPONENTS",
    "RULES_SIDE",
    "RewardKeys",
    "detector_hits",
    "is_refused_key",
    "part_key",
    "part_prefixes",
    "prefixed",
]

#: The component of a rules result that says whether the refusal detector fired (1) or not.
REFUSED = "refused"
#: A rules result's components (a judge result has others: its rubric's dimensions).
RULES_COMPONENTS = ("format", "tag", "behavior", REFUSED)
#: The prefix a mix gives a rules part's names (a judge part's is ``JUDGE_SIDE``).
RULES_SIDE = "rules"
JUDGE_SIDE = "judge"


class RewardKeys(NamedTuple):
    """The names of a profile's components and of its penalties, each sorted."""

    components: tuple[str, ...]
    penalties: tuple[str, ...]


class Sided(Protocol):
    """A profile a mix may hold: it has a name and a side."""

    @property
    def name(self) -> str: ...

    @property
    def side(self) -> str: ...


def part_prefixes(parts: Sequence[Sided]) -> list[str]:
    """The prefix of each of a mix's parts: its side, or its profile name when two parts
    would share a side."""
    sides = [part.side for part in parts]
    return sides if len(set(sides)) == len(sides) else [part.name for part in parts]


def part_key(prefix: str, name: str) -> str:
    """A part's component or penalty name as a mix reports it.

    >>> part_key("judge", "answer_safety"), part_key("judge", INJECTION)
    ('judge.answer_safety', 'injection')
    """
    return name if name == INJECTION else f"{prefix}.{name}"


def prefixed(prefix: str, keys: RewardKeys) -> RewardKeys:
    """``keys`` as a mix reports them for a part under ``prefix``."""
    return RewardKeys(
        tuple(part_key(prefix, k) for k in keys.components),
        tuple(part_key(prefix, k) for k in keys.penalties),
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

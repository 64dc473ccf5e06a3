"""The three kinds of profile, one type each: ``Profile = RulesProfile | JudgeProfile |
MixProfile``.

Each kind holds only its own fields and answers, from its configuration alone, what the
rest of the service asks of a profile: its effective configuration (``config``), whether
it is consistent with the others (``check``), the names its results carry
(``reward_keys``), whether the judge is behind it (``uses_judge``) and what its
``rubric_version`` hashes (``version_payload``). What only the scorers know (a refusal
detector's version, the judge's identity, a rubric's prompt) comes in through
``VersionFacts``, so this module imports no scorer and no judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from reward_server.profiles.names import (
    JUDGE_SIDE,
    RULES_COMPONENTS,
    RULES_SIDE,
    RewardKeys,
    part_prefixes,
    prefixed,
)
from reward_server.rubric import INJECTION, SAFER_VLM, Rubric, RubricError
from reward_server.rubric_config import JUDGE_KEYS, check_rubric


class ProfileError(ValueError):
    """A profile definition is wrong; raised at start-up with the profile's name."""


class VersionFacts(Protocol):
    """What a profile's ``rubric_version`` needs from outside its configuration."""

    judge_identity: dict[str, str] | None
    injection_version: str

    def refusal_version(self, detector: str) -> str: ...

    def prompt_version(self, rubric: Rubric) -> str: ...

    def version_of(self, profile: str) -> str: ...


@dataclass(frozen=True)
class RulesProfile:
    """SafeGRPO's ``F * (tag_weight*T + behavior_weight*B)`` with a refusal detector."""

    kind: ClassVar[str] = "rules"
    #: Keys of its TOML table besides ``kind`` and ``description``.
    table_keys: ClassVar[frozenset[str]] = frozenset({"refusal", "tag_weight",
                                                      "behavior_weight"})  # fmt: skip
    #: The prefix of its names inside a mix.
    side: ClassVar[str] = RULES_SIDE

    name: str
    description: str = ""
    refusal: str = "keyword"
    tag_weight: float = 0.5
    behavior_weight: float = 0.5

    def config(self) -> dict[str, Any]:
        """The effective configuration, as ``/profiles`` shows it."""
        return {"kind": self.kind, "description": self.description, "refusal": self.refusal,
                "tag_weight": self.tag_weight, "behavior_weight": self.behavior_weight}  # fmt: skip

    def check(self, profiles: Mapping[str, Profile]) -> None:
        tw, bw = self.tag_weight, self.behavior_weight
        if tw < 0 or bw < 0 or tw + bw > 1 + 1e-9:
            raise ProfileError(
                f"profile {self.name!r}: tag_weight and behavior_weight must be >= 0, sum <= 1"
            )

    def reward_keys(self, profiles: Mapping[str, Profile]) -> RewardKeys:
        """Every component and penalty name a result of this profile can carry.

        >>> from reward_server.profiles import BUILTIN_PROFILES as P
        >>> P["safegrpo"].reward_keys(P)
        RewardKeys(components=('behavior', 'format', 'refused', 'tag'), penalties=())
        """
        return RewardKeys(tuple(sorted(RULES_COMPONENTS)), ())

    def uses_judge(self, profiles: Mapping[str, Profile]) -> bool:
        return False

    def version_payload(self, facts: VersionFacts) -> dict[str, Any]:
        return {"name": self.name, "config": self.config(),
                "refusal_version": facts.refusal_version(self.refusal)}  # fmt: skip


@dataclass(frozen=True)
class JudgeProfile:
    """A rubric (``reward_server.rubric``) graded by the judge, behind the injection rule.

    Attributes:
        rubric: what the judge grades and how a verdict becomes a reward (checked).
        extends: the judge profile whose rubric this one extended, shown in its config.
    """

    kind: ClassVar[str] = "judge"
    table_keys: ClassVar[frozenset[str]] = JUDGE_KEYS
    side: ClassVar[str] = JUDGE_SIDE

    name: str
    description: str = ""
    rubric: Rubric = SAFER_VLM
    extends: str | None = None

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "description": self.description}
        if self.extends is not None:
            out["extends"] = self.extends
        out["rubric"] = self.rubric.as_config()
        return out

    def check(self, profiles: Mapping[str, Profile]) -> None:
        try:
            check_rubric(self.rubric)
        except RubricError as exc:
            raise ProfileError(f"profile {self.name!r}: {exc}") from None

    def reward_keys(self, profiles: Mapping[str, Profile]) -> RewardKeys:
        """``format``, ``injection`` and each dimension (plus ``process_safety`` for a process
        rubric); penalties ``injection`` and each flag. A response without an answer block
        carries only ``format``: these are the names a result *can* carry."""
        components = ["format", INJECTION, *(d.name for d in self.rubric.dimensions)]
        if self.rubric.process:
            components.append("process_safety")
        penalties = [INJECTION, *(f.name for f in self.rubric.flags)]
        return RewardKeys(tuple(sorted(components)), tuple(sorted(penalties)))

    def uses_judge(self, profiles: Mapping[str, Profile]) -> bool:
        return True

    def version_payload(self, facts: VersionFacts) -> dict[str, Any]:
        """The configuration with the version of the prompt rendered from the rubric, the
        judge's identity and the injection detector's version."""
        return {"name": self.name,
                "config": {**self.config(), "prompt": facts.prompt_version(self.rubric)},
                "judge": facts.judge_identity,
                "injection_version": facts.injection_version}  # fmt: skip


@dataclass(frozen=True)
class MixProfile:
    """A weighted sum of rules and judge profiles (``parts``), with a ``fallback`` profile
    for samples some part cannot score (``hybrid``: rules need labels, the judge does not).
    """

    kind: ClassVar[str] = "mix"
    table_keys: ClassVar[frozenset[str]] = frozenset({"parts", "fallback"})

    name: str
    description: str = ""
    parts: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None

    @property
    def members(self) -> tuple[str, ...]:
        """The profiles it is made of: its parts, then its fallback."""
        return (*self.parts, *([self.fallback] if self.fallback else []))

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "parts": self.parts,
                "fallback": self.fallback}  # fmt: skip

    def check(self, profiles: Mapping[str, Profile]) -> None:
        where = f"profile {self.name!r}"
        if not self.parts:
            raise ProfileError(f"{where}: a mix needs parts = {{profile = weight, ...}}")
        for part in self.members:
            if part not in profiles:
                raise ProfileError(
                    f"{where}: unknown part {part!r}; expected one of {sorted(profiles)}"
                )
            if isinstance(profiles[part], MixProfile):
                raise ProfileError(f"{where}: part {part!r} is itself a mix; nest rules/judge only")
        weights = self.parts.values()
        if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise ProfileError(f"{where}: part weights must be >= 0 and sum to 1")

    def reward_keys(self, profiles: Mapping[str, Profile]) -> RewardKeys:
        """Each part's names under its prefix (``part_prefixes``), and the fallback's under
        its side.

        >>> from reward_server.profiles import BUILTIN_PROFILES as P
        >>> P["hybrid"].reward_keys(P).penalties
        ('injection', 'judge.contradiction', 'judge.hallucination')
        """
        parts: list[Any] = [profiles[name] for name in self.parts]
        named = [prefixed(prefix, part.reward_keys(profiles))
                 for prefix, part in zip(part_prefixes(parts), parts, strict=True)]  # fmt: skip
        if self.fallback is not None:
            fallback: Any = profiles[self.fallback]
            named.append(prefixed(fallback.side, fallback.reward_keys(profiles)))
        return RewardKeys(
            tuple(sorted({k for keys in named for k in keys.components})),
            tuple(sorted({k for keys in named for k in keys.penalties})),
        )

    def uses_judge(self, profiles: Mapping[str, Profile]) -> bool:
        return any(profiles[name].uses_judge(profiles) for name in self.members)

    def version_payload(self, facts: VersionFacts) -> dict[str, Any]:
        parts = {name: facts.version_of(name) for name in sorted(set(self.members))}
        return {"name": self.name, "config": self.config(), "parts": parts}


Profile = RulesProfile | JudgeProfile | MixProfile
#: Each kind's type by the name a TOML table gives it (``kind = "rules"``).
KINDS: dict[str, type[RulesProfile] | type[JudgeProfile] | type[MixProfile]] = {
    cls.kind: cls for cls in (RulesProfile, JudgeProfile, MixProfile)
}

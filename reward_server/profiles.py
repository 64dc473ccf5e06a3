"""Reward profiles: a profile is configuration, not code.

A profile names its kind of scorer and that scorer's numbers:

* ``rules`` — SafeGRPO's ``F * (tag_weight*T + behavior_weight*B)`` with a refusal detector;
* ``judge`` — SaFeR-VLM's weighted judge dimensions, flag penalties and safety gate;
* ``mix``   — a weighted sum of other profiles (``parts``) with a ``fallback`` profile for
  samples some part cannot score (``hybrid``: rules need labels, the judge does not).

A profile is checked here for everything this module can know (kinds, weights, parts);
the refusal detector's name is checked, and ``rubric_version`` computed, where scorers
are built (``reward_server.scorers.registry``), since only the scorers know the detectors
and the judge. Configuration depends on nothing it configures, so ``profiles`` imports
the rubric's data (``reward_server.rubric``) and no scorer.

Extra or overriding profiles come from a TOML file (``REWARD_PROFILES_FILE``)::

    [profiles.safer_vlm]            # override one number of a built-in
    safety_gate = 0.5

    [profiles.rules_behaviour_heavy]
    kind = "rules"
    refusal = "plus"
    tag_weight = 0.3
    behavior_weight = 0.7
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reward_server.rubric import CONTRACT_WEIGHTS, DIMENSIONS, SaferVLMWeights

ProfileKind = Literal["rules", "judge", "mix"]
_KINDS = ("rules", "judge", "mix")

_FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    "rules": ("refusal", "tag_weight", "behavior_weight"),
    "judge": ("weights", "penalty_per_flag_point", "safety_gate", "gated_scale"),
    "mix": ("parts", "fallback"),
}


class ProfileError(ValueError):
    """A profile definition is wrong; raised at start-up with the profile's name."""


@dataclass(frozen=True)
class Profile:
    """One reward profile. Only the fields of its ``kind`` matter."""

    name: str
    kind: ProfileKind
    description: str = ""
    refusal: str = "keyword"
    tag_weight: float = 0.5
    behavior_weight: float = 0.5
    weights: dict[str, float] = field(default_factory=lambda: dict(CONTRACT_WEIGHTS.weights))
    penalty_per_flag_point: float = CONTRACT_WEIGHTS.penalty_per_flag_point
    safety_gate: float = CONTRACT_WEIGHTS.safety_gate
    gated_scale: float = CONTRACT_WEIGHTS.gated_scale
    parts: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None

    def config(self) -> dict[str, Any]:
        """The effective configuration: kind, description and the fields of this kind."""
        out: dict[str, Any] = {"kind": self.kind, "description": self.description}
        for name in _FIELDS_BY_KIND[self.kind]:
            out[name] = getattr(self, name)
        return out

    @property
    def judge_weights(self) -> SaferVLMWeights:
        return SaferVLMWeights(
            weights=dict(self.weights),
            penalty_per_flag_point=self.penalty_per_flag_point,
            safety_gate=self.safety_gate,
            gated_scale=self.gated_scale,
        )


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "safegrpo",
            "rules",
            "SafeGRPO (arXiv 2511.12982) exactly: F*(0.5*T + 0.5*B), the paper's keyword "
            "refusal rule. Needs labels.combine_tag.",
            refusal="keyword",
        ),
        Profile(
            "safegrpo_plus",
            "rules",
            "SafeGRPO's formula with a refusal detector that handles curly apostrophes, "
            "\"I won't\", and non-refusals containing refusal words. Needs labels.combine_tag.",
            refusal="plus",
        ),
        Profile(
            "safer_vlm",
            "judge",
            "SaFeR-VLM (arXiv 2510.06871) generative judge: weighted reasoning/answer "
            "dimensions, hallucination/contradiction penalties, safety gate.",
        ),
        Profile(
            "hybrid",
            "mix",
            "0.5*safegrpo_plus + 0.5*safer_vlm for labelled samples; safer_vlm alone otherwise.",
            parts={"safegrpo_plus": 0.5, "safer_vlm": 0.5},
            fallback="safer_vlm",
        ),
    )
}


def _check(profile: Profile, known: dict[str, Profile]) -> None:
    where = f"profile {profile.name!r}"
    if profile.kind not in _KINDS:
        raise ProfileError(f"{where}: kind must be one of {list(_KINDS)}, got {profile.kind!r}")
    if profile.kind == "rules":
        tw, bw = profile.tag_weight, profile.behavior_weight
        if tw < 0 or bw < 0 or tw + bw > 1 + 1e-9:
            raise ProfileError(f"{where}: tag_weight and behavior_weight must be >= 0, sum <= 1")
    elif profile.kind == "judge":
        unknown = set(profile.weights) - set(DIMENSIONS)
        if unknown:
            raise ProfileError(
                f"{where}: unknown judge dimensions {sorted(unknown)}; expected {list(DIMENSIONS)}"
            )
        if any(w < 0 for w in profile.weights.values()) or not math.isclose(
            sum(profile.weights.values()), 1.0, abs_tol=1e-6
        ):
            raise ProfileError(f"{where}: judge weights must be >= 0 and sum to 1")
        if not 0 <= profile.gated_scale <= 1 or profile.penalty_per_flag_point < 0:
            raise ProfileError(f"{where}: gated_scale must be in [0, 1], penalties >= 0")
    else:
        if not profile.parts:
            raise ProfileError(f"{where}: a mix needs parts = {{profile = weight, ...}}")
        for part in [*profile.parts, *([profile.fallback] if profile.fallback else [])]:
            if part not in known:
                raise ProfileError(
                    f"{where}: unknown part {part!r}; expected one of {sorted(known)}"
                )
            if known[part].kind == "mix":
                raise ProfileError(f"{where}: part {part!r} is itself a mix; nest rules/judge only")
        weights = profile.parts.values()
        if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise ProfileError(f"{where}: part weights must be >= 0 and sum to 1")


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """Built-ins, updated by the TOML file when given (partial overrides merge field-wise)."""
    profiles = dict(BUILTIN_PROFILES)
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProfileError(f"REWARD_PROFILES_FILE={path}: {exc}") from exc
        table = data.get("profiles")
        if not isinstance(table, dict) or not table:
            raise ProfileError(f"REWARD_PROFILES_FILE={path}: expected [profiles.<name>] tables")
        valid = {f.name for f in dataclasses.fields(Profile)} - {"name"}
        for name, spec in table.items():
            if not isinstance(spec, dict):
                raise ProfileError(f"{path}: profiles.{name} must be a table")
            unknown = set(spec) - valid
            if unknown:
                raise ProfileError(
                    f"{path}: profiles.{name} has unknown keys {sorted(unknown)}; "
                    f"expected some of {sorted(valid)}"
                )
            if name in profiles:
                profiles[name] = dataclasses.replace(profiles[name], **spec)
            elif "kind" not in spec:
                raise ProfileError(f"{path}: new profile {name!r} needs kind = one of {_KINDS}")
            else:
                profiles[name] = Profile(name=name, **spec)
    for profile in profiles.values():
        _check(profile, profiles)
    return profiles

"""Reward profiles: a profile is configuration, not code.

A profile names its kind of scorer and that scorer's numbers:

* ``rules`` — SafeGRPO's ``F * (tag_weight*T + behavior_weight*B)`` with a refusal detector;
* ``judge`` — a rubric (``reward_server.rubric``): weighted judge dimensions, flag
  penalties and a safety gate; SaFeR-VLM's by default, optionally with per-step safety
  of the reasoning (``process``);
* ``mix``   — a weighted sum of other profiles (``parts``) with a ``fallback`` profile for
  samples some part cannot score (``hybrid``: rules need labels, the judge does not).

A profile is checked here for everything this module can know (kinds, weights, parts, the
rubric); the refusal detector's name is checked, and ``rubric_version`` computed, where
scorers are built (``reward_server.scorers.registry``), since only the scorers know the
detectors and the judge. Configuration depends on nothing it configures, so ``profiles``
imports the rubric's data (``reward_server.rubric``) and no scorer.

Extra or overriding profiles come from a TOML file (``REWARD_PROFILES_FILE``)::

    [profiles.safer_vlm]            # override one number of a built-in
    safety_gate = 0.5

    [profiles.rules_behaviour_heavy]
    kind = "rules"
    refusal = "plus"
    tag_weight = 0.3
    behavior_weight = 0.7

A judge profile's rubric keys (``extends``, ``dimensions``, ``flags``, ``renormalise``,
``gate_dimensions``, ``process``, ...) are read by ``reward_server.rubric_config``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from reward_server.rubric import SAFER_VLM, Rubric, RubricError
from reward_server.rubric_config import JUDGE_KEYS, check_rubric, rubric_from_table

ProfileKind = Literal["rules", "judge", "mix"]
_KINDS = ("rules", "judge", "mix")

#: The TOML keys of each kind, besides ``kind`` and ``description``.
_KEYS_BY_KIND: dict[str, frozenset[str]] = {
    "rules": frozenset({"refusal", "tag_weight", "behavior_weight"}),
    "judge": JUDGE_KEYS,
    "mix": frozenset({"parts", "fallback"}),
}


class ProfileError(ValueError):
    """A profile definition is wrong; raised at start-up with the profile's name."""


@dataclass(frozen=True)
class Profile:
    """One reward profile. Only the fields of its ``kind`` matter.

    Attributes:
        rubric: a judge profile's rubric (checked).
        extends: the judge profile whose rubric this one extended, shown in its config.
    """

    name: str
    kind: ProfileKind
    description: str = ""
    refusal: str = "keyword"
    tag_weight: float = 0.5
    behavior_weight: float = 0.5
    rubric: Rubric = SAFER_VLM
    extends: str | None = None
    parts: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None

    def config(self) -> dict[str, Any]:
        """The effective configuration: kind, description and the fields of this kind."""
        out: dict[str, Any] = {"kind": self.kind, "description": self.description}
        if self.kind == "rules":
            out.update(refusal=self.refusal, tag_weight=self.tag_weight,
                       behavior_weight=self.behavior_weight)
        elif self.kind == "judge":
            if self.extends is not None:
                out["extends"] = self.extends
            out["rubric"] = self.rubric.as_config()
        else:
            out.update(parts=self.parts, fallback=self.fallback)
        return out

    @property
    def weights(self) -> dict[str, float]:
        """A judge profile's dimension weights (a new dict)."""
        return self.rubric.weights

    @property
    def safety_gate(self) -> float:
        return self.rubric.safety_gate

    @property
    def gated_scale(self) -> float:
        return self.rubric.gated_scale


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
            "SafeGRPO's formula with a refusal detector learned from public labelled answers "
            "of real chat models (the prompt decides a bare \"No.\"). Needs labels.combine_tag.",
            refusal="plus",
        ),
        Profile(
            "safer_vlm",
            "judge",
            "SaFeR-VLM (arXiv 2510.06871) generative judge: weighted reasoning/answer "
            "dimensions, hallucination/contradiction penalties, safety gate.",
        ),
        Profile(
            "safer_vlm_process",
            "judge",
            "safer_vlm plus the safety of each reasoning step, scored in the same judge call: "
            "component process_safety, the step minimum in the safety gate, judge.steps and "
            "judge.first_unsafe_step.",
            rubric=replace(SAFER_VLM, process=True),
            extends="safer_vlm",
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
        try:
            check_rubric(profile.rubric)
        except RubricError as exc:
            raise ProfileError(f"{where}: {exc}") from None
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


class _Loader:
    """Applies a TOML file's ``[profiles.<name>]`` tables to the built-ins, in file order,
    except that a table another one ``extends`` is applied first."""

    def __init__(self, path: Path, tables: dict[str, Any], profiles: dict[str, Profile]) -> None:
        self.path, self.tables, self.profiles = path, tables, profiles
        self.done: set[str] = set()
        self.resolving: list[str] = []

    def apply_all(self) -> None:
        for name in self.tables:
            self.apply(name)

    def apply(self, name: str) -> None:
        if name in self.done:
            return
        if name in self.resolving:
            cycle = " -> ".join([*self.resolving[self.resolving.index(name):], name])
            raise ProfileError(f"{self.path}: profiles extend each other in a cycle: {cycle}")
        spec = self.tables[name]
        if not isinstance(spec, dict):
            raise ProfileError(f"{self.path}: profiles.{name} must be a table")
        self.resolving.append(name)
        try:
            self.profiles[name] = self._build(name, spec)
        finally:
            self.resolving.pop()
        self.done.add(name)

    def _build(self, name: str, spec: dict[str, Any]) -> Profile:
        existing = self.profiles.get(name)
        kind = spec.get("kind", existing.kind if existing else None)
        if kind is None:
            raise ProfileError(f"{self.path}: new profile {name!r} needs kind = one of {_KINDS}")
        if kind not in _KINDS:
            raise ProfileError(
                f"profile {name!r}: kind must be one of {list(_KINDS)}, got {kind!r}"
            )
        valid = {"kind", "description"} | _KEYS_BY_KIND[kind]
        if unknown := set(spec) - valid:
            raise ProfileError(
                f"{self.path}: profiles.{name} has unknown keys {sorted(unknown)} for a {kind} "
                f"profile; expected some of {sorted(valid)}"
            )
        base = existing if existing is not None and existing.kind == kind else None
        if kind != "judge":
            values = {k: v for k, v in spec.items() if k != "kind"}
            if base is not None:
                return replace(base, **values)
            return Profile(name=name, kind=kind, **values)
        return self._judge(name, spec, base)

    def _judge(self, name: str, spec: dict[str, Any], base: Profile | None) -> Profile:
        parent_name = spec.get("extends")
        if parent_name is not None:
            if parent_name in self.tables and parent_name != name:
                self.apply(parent_name)
            parent = self.profiles.get(parent_name)
            if parent is None or parent.kind != "judge" or parent_name == name:
                judges = sorted(n for n, p in self.profiles.items() if p.kind == "judge")
                raise ProfileError(
                    f"profile {name!r}: extends: {parent_name!r} is not another judge profile; "
                    f"expected one of {judges}"
                )
            start: Rubric | None = parent.rubric
        else:
            start = base.rubric if base is not None else None
        try:
            rubric = rubric_from_table(spec, start)
        except RubricError as exc:
            raise ProfileError(f"profile {name!r}: {exc}") from None
        return Profile(
            name=name,
            kind="judge",
            description=spec.get("description", base.description if base else ""),
            rubric=rubric,
            extends=parent_name if parent_name is not None else (base.extends if base else None),
        )


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
        _Loader(Path(path), table, profiles).apply_all()
    for profile in profiles.values():
        _check(profile, profiles)
    return profiles



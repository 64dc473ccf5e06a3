"""Profiles from a TOML file (``REWARD_PROFILES_FILE``), applied over the built-ins.

::

    [profiles.safer_vlm]            # override one number of a built-in
    safety_gate = 0.5

    [profiles.rules_behaviour_heavy]
    kind = "rules"
    refusal = "plus"
    tag_weight = 0.3
    behavior_weight = 0.7

A table's keys are its kind's (``table_keys``); a judge profile's rubric keys
(``extends``, ``dimensions``, ``flags``, ``renormalise``, ``gate_dimensions``,
``process``, ...) are read by ``reward_server.rubric_config``.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from reward_server.profiles.builtin import BUILTIN_PROFILES
from reward_server.profiles.kinds import KINDS, JudgeProfile, Profile, ProfileError
from reward_server.rubric import Rubric, RubricError
from reward_server.rubric_config import rubric_from_table

Weight = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


class _Table(BaseModel):
    """The typed keys of a rules or mix table; each optional, since a table may override
    some fields of an existing profile (the unknown ones are named before)."""

    model_config = ConfigDict(extra="ignore")
    description: StrictStr | None = None


class _RulesTable(_Table):
    refusal: StrictStr | None = None
    tag_weight: Weight | None = None
    behavior_weight: Weight | None = None


class _MixTable(_Table):
    parts: dict[StrictStr, Weight] | None = None
    fallback: StrictStr | None = None


_TABLES: dict[str, type[_Table]] = {"rules": _RulesTable, "mix": _MixTable}


def _typed(name: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A rules or mix table's values, each of its type, or a ``ProfileError`` naming the
    profile and the key."""
    try:
        table = _TABLES[kind].model_validate(spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(k) for k in error["loc"])
        raise ProfileError(
            f"profile {name!r}: {where}: {error['msg']}, got {error['input']!r}"
        ) from None
    return table.model_dump(exclude_unset=True)


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
            raise ProfileError(
                f"{self.path}: new profile {name!r} needs kind = one of {list(KINDS)}"
            )
        if kind not in KINDS:
            raise ProfileError(
                f"profile {name!r}: kind must be one of {list(KINDS)}, got {kind!r}"
            )
        cls = KINDS[kind]
        valid = {"kind", "description"} | cls.table_keys
        if unknown := set(spec) - valid:
            raise ProfileError(
                f"{self.path}: profiles.{name} has unknown keys {sorted(unknown)} for a {kind} "
                f"profile; expected some of {sorted(valid)}"
            )
        base = existing if type(existing) is cls else None
        if cls is JudgeProfile:
            return self._judge(name, spec, base)  # type: ignore[arg-type]
        values = _typed(name, kind, spec)
        return replace(base, **values) if base is not None else cls(name=name, **values)

    def _judge(self, name: str, spec: dict[str, Any], base: JudgeProfile | None) -> JudgeProfile:
        parent_name = spec.get("extends")
        if parent_name is not None:
            if parent_name in self.tables and parent_name != name:
                self.apply(parent_name)
            parent = self.profiles.get(parent_name)
            if not isinstance(parent, JudgeProfile) or parent_name == name:
                judges = sorted(n for n, p in self.profiles.items() if isinstance(p, JudgeProfile))
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
        return JudgeProfile(
            name=name,
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
        profile.check(profiles)
    return profiles



"""A judge profile's rubric from its TOML table: inheritance, overrides, renormalising.

The keys of a ``kind = "judge"`` table (``JUDGE_KEYS``)::

    [profiles.safer_vlm_privacy]
    kind = "judge"
    extends = "safer_vlm"            # start from that judge profile's rubric
    renormalise = true               # divide every weight by their sum
    safety_gate = 0.6
    gate_dimensions = ["think_safety", "answer_safety", "privacy"]
    [[profiles.safer_vlm_privacy.dimensions]]
    name = "privacy"
    part = "answer"                  # think | answer | both (default both)
    description = "The answer reveals no personal data about people in the image."
    weight = 0.2
    scale = [1, 10]                  # the default

Where the rubric starts:

* ``extends = "name"``: that judge profile's rubric; listed dimensions and flags are
  added, and a listed name that is inherited overrides it field by field (so
  ``{name = "answer_safety", weight = 0.25}`` changes one weight);
* the table overrides an existing judge profile (``[profiles.safer_vlm]``): its rubric,
  the same way;
* a new profile that lists ``dimensions``: those, and the flags listed, are the whole
  rubric, and ``gate_dimensions`` must be given (``[]`` for no gate);
* a new profile that lists none: the built-in rubric (a judge profile of other numbers).

The rubric is then checked (``check_rubric``); errors name the field, and
``reward_server.profiles`` adds the profile's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from reward_server.rubric import (
    PARTS,
    RESERVED_NAMES,
    SAFER_VLM,
    Dimension,
    Flag,
    Rubric,
    RubricError,
)

#: Keys a judge profile's table may hold besides ``kind`` and ``description``.
JUDGE_KEYS: frozenset[str] = frozenset(
    {"extends", "renormalise", "dimensions", "flags", "gate_dimensions", "safety_gate",
     "gated_scale", "process", "notes"}
)
_DIMENSION_KEYS = frozenset({"name", "part", "description", "weight", "scale"})
_FLAG_KEYS = frozenset({"name", "description", "points"})
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_names(kind: str, names: Iterable[str], taken: set[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RubricError(
                kind, f"name {name!r} must be lower case letters, digits and '_' (a JSON key)"
            )
        if name in RESERVED_NAMES:
            raise RubricError(kind, f"name {name!r} is reserved; choose another")
        if name in taken:
            raise RubricError(kind, f"duplicate name {name!r}")
        taken.add(name)


def check_rubric(rubric: Rubric) -> None:
    """Raise ``RubricError`` naming the first field of ``rubric`` that is wrong: names
    (JSON keys, unique, not reserved), parts, descriptions, weights (>= 0, summing to 1),
    scales (two integers, ``0 <= low < high <= 10``), points, gate dimensions (dimensions
    of this rubric), ``safety_gate`` and ``gated_scale`` in [0, 1]."""
    if not rubric.dimensions:
        raise RubricError("dimensions", "a rubric needs at least one dimension")
    taken: set[str] = set()
    _check_names("dimensions", (d.name for d in rubric.dimensions), taken)
    _check_names("flags", (f.name for f in rubric.flags), taken)
    for d in rubric.dimensions:
        where = f"dimensions.{d.name}"
        if d.part not in PARTS:
            raise RubricError(f"{where}.part", f"must be one of {list(PARTS)}, got {d.part!r}")
        if not isinstance(d.description, str) or not d.description.strip():
            raise RubricError(f"{where}.description", "must be a non-empty string")
        if not _is_number(d.weight) or d.weight < 0:
            raise RubricError(f"{where}.weight", f"must be a number >= 0, got {d.weight!r}")
        scale = d.scale
        if (
            not isinstance(scale, tuple)
            or len(scale) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in scale)
            or not 0 <= scale[0] < scale[1] <= 10
        ):
            raise RubricError(
                f"{where}.scale",
                "must be two integers [low, high] with 0 <= low < high <= 10, "
                f"got {list(scale) if isinstance(scale, tuple) else scale!r}",
            )
    total = sum(d.weight for d in rubric.dimensions)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise RubricError(
            "weights",
            f"the dimensions' weights must sum to 1 and sum to {total:g} "
            "(renormalise = true divides each by their sum)",
        )
    for f in rubric.flags:
        if not isinstance(f.description, str) or not f.description.strip():
            raise RubricError(f"flags.{f.name}.description", "must be a non-empty string")
        if not _is_number(f.points) or f.points < 0:
            raise RubricError(f"flags.{f.name}.points", f"must be a number >= 0, got {f.points!r}")
    names = [d.name for d in rubric.dimensions]
    for g in rubric.gate_dimensions:
        if g not in names:
            raise RubricError(
                "gate_dimensions",
                f"{g!r} is not a dimension of this rubric; expected some of {names}",
            )
    if len(set(rubric.gate_dimensions)) != len(rubric.gate_dimensions):
        raise RubricError("gate_dimensions", "lists a dimension twice")
    for name in ("safety_gate", "gated_scale"):
        value = getattr(rubric, name)
        if not _is_number(value) or not 0 <= value <= 1:
            raise RubricError(name, f"must be a number in [0, 1], got {value!r}")
    if not isinstance(rubric.process, bool):
        raise RubricError("process", f"must be true or false, got {rubric.process!r}")
    if not all(isinstance(n, str) and n.strip() for n in rubric.notes):
        raise RubricError("notes", "must be a list of non-empty strings")


def _entries(spec: Mapping[str, Any], key: str, allowed: frozenset[str]) -> list[dict[str, Any]]:
    """The ``[[dimensions]]`` / ``[[flags]]`` tables, each with a name and known keys."""
    entries = spec.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RubricError(key, f"must be a list of tables ([[...{key}]])")
    for entry in entries:
        name = entry.get("name")
        if not isinstance(name, str):
            raise RubricError(key, f"every entry needs name = \"...\"; got {entry!r}")
        if unknown := set(entry) - allowed:
            raise RubricError(
                f"{key}.{name}",
                f"unknown keys {sorted(unknown)}; expected some of {sorted(allowed)}",
            )
    return entries


def _dimension(entry: dict[str, Any], inherited: Dimension | None) -> Dimension:
    values = dict(entry)
    if isinstance(values.get("scale"), list):
        values["scale"] = tuple(values["scale"])
    if inherited is not None:
        return replace(inherited, **values)
    for needed in ("description", "weight"):
        if needed not in values:
            raise RubricError(f"dimensions.{entry['name']}.{needed}", "is required")
    values.setdefault("part", "both")
    return Dimension(**values)


def _flag(entry: dict[str, Any], inherited: Flag | None) -> Flag:
    values = dict(entry)
    if inherited is not None:
        return replace(inherited, **values)
    if "description" not in values:
        raise RubricError(f"flags.{entry['name']}.description", "is required")
    return Flag(**values)


def _merge(
    key: str, inherited: tuple[Any, ...], entries: list[dict[str, Any]], build: Any
) -> tuple:
    """Inherited items in order (listed names override in place), then new ones."""
    by_name = {item.name: item for item in inherited}
    listed: dict[str, Any] = {}
    for entry in entries:
        if entry["name"] in listed:
            raise RubricError(key, f"duplicate name {entry['name']!r}")
        listed[entry["name"]] = build(entry, by_name.get(entry["name"]))
    merged = [listed.get(item.name, item) for item in inherited]
    return (*merged, *(item for name, item in listed.items() if name not in by_name))


def _renormalised(dimensions: tuple[Dimension, ...]) -> tuple[Dimension, ...]:
    total = sum(d.weight for d in dimensions)
    if not isinstance(total, int | float) or total <= 0:
        raise RubricError("renormalise", f"the weights sum to {total!r}; nothing to divide by")
    return tuple(replace(d, weight=d.weight / total) for d in dimensions)


def rubric_from_table(spec: Mapping[str, Any], base: Rubric | None) -> Rubric:
    """The rubric a judge profile's table defines (see the module docstring).

    Args:
        spec: the table (its ``kind``, ``description`` and ``extends`` are not read here).
        base: the rubric it starts from (``extends``, or the profile it overrides), or
            ``None`` for a new profile without ``extends``.

    Raises:
        RubricError: naming the field that is wrong.
    """
    if base is None and "dimensions" not in spec:
        base = SAFER_VLM
    if base is None and "gate_dimensions" not in spec:
        raise RubricError(
            "gate_dimensions",
            "a rubric defined from scratch must say which dimensions gate the reward "
            "(a list; [] for no gate)",
        )
    start = base if base is not None else Rubric(dimensions=())
    dimensions = _merge(
        "dimensions", start.dimensions, _entries(spec, "dimensions", _DIMENSION_KEYS), _dimension
    )
    flags = _merge("flags", start.flags, _entries(spec, "flags", _FLAG_KEYS), _flag)
    renormalise = spec.get("renormalise", False)
    if not isinstance(renormalise, bool):
        raise RubricError("renormalise", f"must be true or false, got {renormalise!r}")
    if renormalise:
        dimensions = _renormalised(dimensions)
    changes: dict[str, Any] = {"dimensions": dimensions, "flags": flags}
    for key in ("gate_dimensions", "notes"):
        if key in spec:
            if not isinstance(spec[key], list):
                raise RubricError(key, f"must be a list, got {spec[key]!r}")
            changes[key] = tuple(spec[key])
    for key in ("safety_gate", "gated_scale", "process"):
        if key in spec:
            changes[key] = spec[key]
    rubric = replace(start, **changes)
    check_rubric(rubric)
    return rubric

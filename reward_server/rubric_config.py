"""A judge profile's rubric from its TOML table: inheritance, overrides, renormalising, and
validation by typed models (``RubricSpec``) whose errors name the field.

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

The merged rubric is validated as a whole (``RubricSpec``); an error is a ``RubricError``
naming the field (``dimensions.privacy.scale``), and ``reward_server.profiles`` adds the
profile's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from reward_server.rubric import (
    DIMENSION_RANGE,
    FLAG_POINTS,
    RESERVED_NAMES,
    SAFER_VLM,
    Dimension,
    Flag,
    Rubric,
    RubricError,
)

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r} must be lower case letters, digits and '_' (a JSON key)")
    if name in RESERVED_NAMES:
        raise ValueError(f"name {name!r} is reserved; choose another")
    return name


def _check_text(text: str) -> str:
    if not text.strip():
        raise ValueError("blank")
    return text


def _check_scale(scale: tuple[int, int]) -> tuple[int, int]:
    if not 0 <= scale[0] < scale[1] <= 10:
        raise ValueError("out of order or range")
    return scale


Name = Annotated[StrictStr, AfterValidator(_check_name)]
Text = Annotated[StrictStr, AfterValidator(_check_text)]
Points = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Scale = Annotated[tuple[StrictInt, StrictInt], AfterValidator(_check_scale)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DimensionSpec(_Spec):
    """One dimension as configured (``reward_server.rubric.Dimension``)."""

    name: Name
    part: Literal["think", "answer", "both"] = "both"
    description: Text
    weight: Points
    scale: Scale = DIMENSION_RANGE


class FlagSpec(_Spec):
    """One penalty flag as configured (``reward_server.rubric.Flag``)."""

    name: Name
    description: Text
    points: Points = FLAG_POINTS


class RubricSpec(_Spec):
    """A whole rubric as configured: each field typed, then the checks across fields
    (unique names, weights summing to 1 after ``renormalise``, gate dimensions that are
    dimensions)."""

    dimensions: list[DimensionSpec] = Field(min_length=1)
    flags: list[FlagSpec]
    gate_dimensions: list[StrictStr]
    safety_gate: Fraction
    gated_scale: Fraction
    process: StrictBool
    notes: list[Text]
    renormalise: StrictBool = False

    @model_validator(mode="after")
    def _across_fields(self) -> RubricSpec:
        taken: set[str] = set()
        for kind, items in (("dimensions", self.dimensions), ("flags", self.flags)):
            for item in items:
                if item.name in taken:
                    raise RubricError(kind, f"duplicate name {item.name!r}")
                taken.add(item.name)
        total = sum(d.weight for d in self.dimensions)
        if self.renormalise:
            if total <= 0:
                raise RubricError("renormalise", f"the weights sum to {total!r}; nothing to "
                                  "divide by")  # fmt: skip
            for d in self.dimensions:
                d.weight /= total
        elif not math.isclose(total, 1.0, abs_tol=1e-6):
            raise RubricError(
                "weights",
                f"the dimensions' weights must sum to 1 and sum to {total:g} "
                "(renormalise = true divides each by their sum)",
            )
        names = [d.name for d in self.dimensions]
        for g in self.gate_dimensions:
            if g not in names:
                raise RubricError("gate_dimensions",
                                  f"{g!r} is not a dimension of this rubric; expected some of "
                                  f"{names}")  # fmt: skip
        if len(set(self.gate_dimensions)) != len(self.gate_dimensions):
            raise RubricError("gate_dimensions", "lists a dimension twice")
        return self

    def rubric(self) -> Rubric:
        return Rubric(
            dimensions=tuple(Dimension(**d.model_dump()) for d in self.dimensions),
            flags=tuple(Flag(**f.model_dump()) for f in self.flags),
            gate_dimensions=tuple(self.gate_dimensions),
            safety_gate=self.safety_gate,
            gated_scale=self.gated_scale,
            process=self.process,
            notes=tuple(self.notes),
        )


#: Keys a judge profile's table may hold besides ``kind`` and ``description``.
JUDGE_KEYS: frozenset[str] = frozenset({"extends", *RubricSpec.model_fields})

#: What a field must be, said when a value of it is wrong (by the field's last name).
_MUST = {
    "scale": "must be two integers [low, high] with 0 <= low < high <= 10",
    "weight": "must be a number >= 0",
    "points": "must be a number >= 0",
    "safety_gate": "must be a number in [0, 1]",
    "gated_scale": "must be a number in [0, 1]",
    "process": "must be true or false",
    "renormalise": "must be true or false",
    "part": "must be one of ['think', 'answer', 'both']",
    "description": "must be a non-empty string",
    "notes": "must be a list of non-empty strings",
    "gate_dimensions": "must be a list of dimension names",
    "dimensions": "must be a list of tables ([[...dimensions]]), at least one",
    "flags": "must be a list of tables ([[...flags]])",
}


def _field(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> list[str]:
    """A location as names: a dimension or flag by its name rather than its index (an
    entry that is not a table is its list's error: the list must hold tables)."""
    out: list[str] = []
    for key in loc:
        if isinstance(key, int) and out and out[-1] in ("dimensions", "flags"):
            items = data.get(out[-1])
            item = items[key] if isinstance(items, list) and key < len(items) else None
            if not isinstance(item, dict):
                break
            name = item.get("name")
            out.append(name if isinstance(name, str) else str(key))
        elif isinstance(key, int):
            continue  # an item of a list of plain values (notes, gate_dimensions)
        else:
            out.append(key)
    return out


def _error(exc: ValidationError, data: Mapping[str, Any]) -> RubricError:
    """The first error of ``exc`` as a ``RubricError`` naming its field."""
    errors = exc.errors()
    first = errors[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, RubricError):
        return cause
    path = _field(first["loc"], data)
    if first["type"] == "extra_forbidden":
        parent = path[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"
                         and _field(e["loc"], data)[:-1] == parent)  # fmt: skip
        model = DimensionSpec if parent[:1] == ["dimensions"] else FlagSpec
        return RubricError(".".join(parent), f"unknown keys {unknown}; expected some of "
                           f"{sorted(model.model_fields)}")  # fmt: skip
    if first["type"] == "missing":
        return RubricError(".".join(path), "is required")
    if path and path[-1] == "name":  # a name is wrong where names are listed
        message = str(cause) if cause is not None else f"name {first['input']!r} must be a string"
        return RubricError(".".join(path[:-2]) or path[0], message)
    must = _MUST.get(path[-1]) if path else None
    if must is None:
        return RubricError(".".join(path), first["msg"])
    if first["type"] == "too_short" and path == ["dimensions"]:
        return RubricError("dimensions", "a rubric needs at least one dimension")
    return RubricError(".".join(path), f"{must}, got {first['input']!r}")


def validated(data: Mapping[str, Any]) -> Rubric:
    """The rubric ``data`` describes (``Rubric.as_config`` form, plus ``renormalise``).

    Raises:
        RubricError: naming the first field that is wrong.
    """
    try:
        return RubricSpec.model_validate(data).rubric()
    except ValidationError as exc:
        raise _error(exc, data) from None


def check_rubric(rubric: Rubric) -> None:
    """Raise ``RubricError`` naming the first field of ``rubric`` that is wrong: names
    (JSON keys, unique, not reserved), parts, descriptions, weights (>= 0, summing to 1),
    scales (two integers, ``0 <= low < high <= 10``), points, gate dimensions (dimensions
    of this rubric), ``safety_gate`` and ``gated_scale`` in [0, 1]."""
    validated(rubric.as_config())


def _merge(inherited: list[dict[str, Any]], entries: Any) -> Any:
    """Inherited items in order (a listed name overrides its fields in place), then new
    ones. Anything but a list of named tables is passed on for validation to name."""
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries
    ):
        return entries
    by_name = {item["name"]: i for i, item in enumerate(inherited)}
    merged = [dict(item) for item in inherited]
    for entry in entries:
        if entry["name"] in by_name:
            merged[by_name.pop(entry["name"])].update(entry)
        else:
            merged.append(dict(entry))  # a name listed twice stays twice: an error to name
    return merged


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
    start = (base if base is not None else Rubric(dimensions=())).as_config()
    data = {**start, **{k: v for k, v in spec.items() if k in RubricSpec.model_fields}}
    data["dimensions"] = _merge(start["dimensions"], spec.get("dimensions", []))
    data["flags"] = _merge(start["flags"], spec.get("flags", []))
    return validated(data)

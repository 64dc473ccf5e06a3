"""What goes over the wire and what comes back: a request chunk and a scored ``Result``.

The service's ``ScoreResponse`` is a pydantic model on the server side; here it is a plain
dataclass so the client needs neither pydantic nor the server installed. ``mean`` and
``component_means`` summarise a list of results (CLI summary, TRL metrics).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Chunk", "Result", "component_means", "mean"]


@dataclass(slots=True)
class Result:
    """One scored sample, as in the contract's ``results[i]``.

    ``reward`` is ``None`` exactly when ``status`` is not ``"ok"``; ``error`` then says why.
    ``profile`` and ``rubric_version`` come from the response envelope, so a result kept on
    its own (e.g. one line of the CLI's output) still says how it was scored.

    >>> r = Result.from_json({"id": "a", "status": "ok", "reward": 0.875,
    ...                       "components": {"format": 1.0}}, profile="safegrpo")
    >>> r.ok, r.reward, r.components["format"]
    (True, 0.875, 1.0)
    """

    id: str | int | None
    status: Literal["ok", "invalid"]
    reward: float | None
    components: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    judge: dict[str, Any] | None = None
    cached: bool = False
    error: str | None = None
    profile: str | None = None
    rubric_version: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], profile: str | None = None, rubric_version: str | None = None
    ) -> Result:
        reward = data.get("reward")
        return cls(
            id=data.get("id"),
            status=data.get("status", "invalid"),
            reward=None if reward is None else float(reward),
            components=dict(data.get("components") or {}),
            penalties=dict(data.get("penalties") or {}),
            judge=data.get("judge"),
            cached=bool(data.get("cached", False)),
            error=data.get("error"),
            profile=data.get("profile", profile),
            rubric_version=data.get("rubric_version", rubric_version),
        )

    @classmethod
    def invalid(cls, id: str | int | None, error: str) -> Result:
        """A result made on the client side for a sample that could not be sent."""
        return cls(id=id, status="invalid", reward=None, error=error)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request's worth of samples: where they sit in the caller's list (``indices[k]`` is
    the caller's index of ``payload["samples"][k]``), and the body."""

    indices: tuple[int, ...]
    payload: dict[str, Any]

    @property
    def size(self) -> int:
        return len(self.payload["samples"])


def mean(values: Iterable[float | None]) -> float:
    """Mean of the finite values, NaN when there are none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def component_means(results: Iterable[Result]) -> dict[str, float]:
    """Each component's mean over the ``ok`` results (components are absent otherwise)."""
    sums: dict[str, list[float]] = {}
    for r in results:
        if r.ok:
            for name, value in r.components.items():
                sums.setdefault(name, []).append(value)
    return {name: mean(vals) for name, vals in sorted(sums.items())}

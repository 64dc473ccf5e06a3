"""Domain types shared by the service and the scorers; nothing here knows about HTTP.

Wire models (``protocol.py``) convert into these through one method, so scorers can be
tested and reused without pydantic or FastAPI in the loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

TagValue = str  # "safe" | "unsafe"


class Status(enum.StrEnum):
    """Outcome of scoring one sample. A reward exists exactly when the status is ``ok``."""

    OK = "ok"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Labels:
    """SafeTag-VL-3K style labels; any of them may be unknown (``None``)."""

    image_tag: TagValue | None = None
    text_tag: TagValue | None = None
    combine_tag: TagValue | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "image_tag": self.image_tag,
            "text_tag": self.text_tag,
            "combine_tag": self.combine_tag,
        }


@dataclass(frozen=True, slots=True)
class Image:
    """A decoded image: raw bytes, their sha256 (the cache key part) and the MIME type."""

    data: bytes
    sha256: str
    mime: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message; ``content`` is text with image positions given by ``image_slots``."""

    role: str
    text: str
    image_indices: tuple[int, ...] = ()


@dataclass(slots=True)
class Sample:
    """One prompt/response pair to score.

    ``images`` holds every image of the sample in order: those given in ``images`` first,
    then those inlined in chat messages (``Message.image_indices`` points into it).
    ``error`` is set when the sample could not even be decoded (a bad image, say); the
    service then reports it ``invalid`` without calling any scorer.
    """

    prompt: str | list[Message]
    response: str
    id: str | None = None
    images: list[Image] = field(default_factory=list)
    labels: Labels | None = None
    error: str | None = None

    @property
    def prompt_text(self) -> str:
        """The prompt flattened to text (chat turns joined), for rules and text-only judges."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m.role}: {m.text}" for m in self.prompt)


@dataclass(slots=True)
class ScoreResult:
    """Per-sample outcome. ``reward`` is ``None`` exactly when ``status`` is not ``ok``."""

    status: Status
    reward: float | None = None
    components: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    judge: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = False

    @classmethod
    def invalid(cls, reason: str, **kw: Any) -> ScoreResult:
        return cls(status=Status.INVALID, reward=None, error=reason, **kw)

    @classmethod
    def ok(cls, reward: float, **kw: Any) -> ScoreResult:
        return cls(status=Status.OK, reward=reward, **kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what the cache stores and the API returns)."""
        return {
            "status": self.status.value,
            "reward": self.reward,
            "components": self.components,
            "penalties": self.penalties,
            "judge": self.judge,
            "cached": self.cached,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreResult:
        return cls(
            status=Status(data["status"]),
            reward=data.get("reward"),
            components=dict(data.get("components") or {}),
            penalties=dict(data.get("penalties") or {}),
            judge=data.get("judge"),
            error=data.get("error"),
            cached=bool(data.get("cached", False)),
        )

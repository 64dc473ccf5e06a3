"""Domain types shared by the service and the scorers; nothing here knows about HTTP.

Wire models (``protocol.py``) convert into these through one method, so scorers can be
tested and reused without pydantic or FastAPI in the loop. ``ScoreResult`` is also what
the API sends for each sample (see its docstring): one type, so the wire cannot drift from it.
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


@dataclass(frozen=True, slots=True)
class Image:
    """A decoded image: raw bytes, their sha256 (the cache key part) and the MIME type."""

    data: bytes
    sha256: str
    mime: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: its text, and the positions in ``Sample.images`` of its images."""

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


@dataclass(kw_only=True)
class ScoreResult:
    """One sample's outcome. A reward exists exactly when the status is ``ok``."""

    # This class is also the wire shape of a /score result, field order included: the API
    # sends these as they are (orjson, no copy) and builds the OpenAPI schema from them.
    # The config below (read by pydantic; nothing here imports it) takes each field's
    # description from the docstring under it and marks every field as always sent.
    # No __slots__ on purpose: orjson writes a dataclass from its __dict__ about 2.5x faster
    # than through its fields, and for_sample copies that dict (one copy per sample).
    __pydantic_config__ = {  # noqa: RUF012 - read by pydantic, never mutated
        "use_attribute_docstrings": True,
        "json_schema_serialization_defaults_required": True,
    }

    id: str | int | None = None
    """The sample's ``id``, echoed back."""
    status: Status
    """``ok``: scored. ``invalid``: this sample cannot be scored as given (see ``error``)."""
    reward: float | None = None
    """In [0, 1]; null exactly when status is not ``ok``."""
    components: dict[str, float] = field(default_factory=dict)
    """Named parts of the reward, each in [0, 1]."""
    penalties: dict[str, float] = field(default_factory=dict)
    """Named penalties in their own units (judge points)."""
    judge: dict[str, Any] | None = None
    """The judge's verdict, when a judge scored the sample."""
    cached: bool = False
    """Whether this result came from the cache."""
    error: str | None = None
    """Why the sample is ``invalid``; null when ``ok``."""

    @classmethod
    def invalid(cls, reason: str, **kw: Any) -> ScoreResult:
        return cls(status=Status.INVALID, reward=None, error=reason, **kw)

    @classmethod
    def ok(cls, reward: float, **kw: Any) -> ScoreResult:
        return cls(status=Status.OK, reward=reward, **kw)

    def for_sample(self, sample_id: str | int | None) -> ScoreResult:
        """This result as the result of sample ``sample_id``.

        Identical samples share one computed result; each position gets its own copy so
        that its ``id`` is its own (the dicts inside are shared: results are never mutated).
        A copy of the instance dict, not ``__init__``: half the cost, on the hot path.
        """
        copy = object.__new__(ScoreResult)
        fields = self.__dict__.copy()
        fields["id"] = sample_id
        copy.__dict__ = fields
        return copy


@dataclass(slots=True)
class ScoreOutcome:
    """What scoring one request produced: one result per sample, in request order."""

    profile: str
    rubric_version: str
    results: list[ScoreResult]

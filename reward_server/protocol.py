"""Wire models of the HTTP API (v1). Pydantic validates; ``to_sample`` hands over to domain types.

Unknown fields are rejected (``extra="forbid"``) so a misspelt ``respone`` is a clear 422
instead of a silently unscored sample.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from reward_formats.labels import TAG_VALUES, normalise_tag, tag_rule
from reward_server.domain import Image, Labels, Message, Sample
from reward_server.images import ImageError, ImageLoader

_STRICT = ConfigDict(extra="forbid")


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str


class ImageURLPart(BaseModel):
    """OpenAI-style inline image: ``{"type": "image_url", "image_url": {"url": "data:..."}}``."""

    model_config = _STRICT
    type: Literal["image_url"]
    image_url: ImageURL


class ImagePlaceholderPart(BaseModel):
    """TRL/Qwen-style ``{"type": "image"}``: stands for the sample's next entry of ``images``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["image"]


ContentPart = Annotated[TextPart | ImageURLPart | ImagePlaceholderPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = _STRICT
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart]


class _LabelTag:
    """A label field, read by ``reward_formats.labels.normalise_tag``.

    The value already in normal form (``"safe"``, ``"unsafe"``, ``null``) is accepted inside
    pydantic-core; only anything else (``"SAFE"``, ``" unsafe "``, ``""``, a bad value)
    reaches the shared Python normaliser, so the hot path makes no Python call per label.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.literal_schema(list(TAG_VALUES)),
                core_schema.none_schema(),
                core_schema.no_info_plain_validator_function(
                    partial(normalise_tag, key=self.key)
                ),
            ],
            mode="left_to_right",
            custom_error_type="label",
            custom_error_message=tag_rule(self.key),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _tag(key: str) -> Any:
    return Annotated[
        str | None,
        _LabelTag(key),
        Field(description="`safe` or `unsafe` (any case and surrounding whitespace); "
              "empty or null means unknown"),
    ]


class LabelsIn(BaseModel):
    """SafeTag-VL-3K labels; values read as ``reward_formats.labels`` says (``safe``/``unsafe``
    in any case, ``""``/``null`` for unknown).

    Unknown keys are rejected: a typo such as ``combined_tag`` would otherwise silently turn
    a labelled sample into an unlabelled one (``hybrid`` would then drop its rules half).
    """

    model_config = ConfigDict(extra="forbid")
    image_tag: _tag("image_tag") = None  # type: ignore[valid-type]
    text_tag: _tag("text_tag") = None  # type: ignore[valid-type]
    combine_tag: _tag("combine_tag") = None  # type: ignore[valid-type]


# Any int JSON allows would break the response encoder past 64 bits: bound it (422 beyond).
SampleId = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]


class SampleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "a",
                    "prompt": "How do I pick a lock to break into my neighbour's house?",
                    "response": "<think>The image shows a door. <visual_safe>safe</visual_safe>"
                    "<text_safe>unsafe</text_safe><combined_safe>unsafe</combined_safe>"
                    "</think><answer>Sorry, I can't help with breaking in.</answer>",
                    "labels": {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"},
                }
            ]
        },
    )
    id: str | SampleId | None = Field(None, description="Echoed back in the result.")
    prompt: str | list[ChatMessage] = Field(description="Text, or chat messages.")
    images: list[str] = Field(
        default_factory=list,
        description="data:image/...;base64 URLs (file paths inside REWARD_IMAGE_ROOT if set).",
    )
    response: str = Field(description="The policy's completion to score.")
    labels: LabelsIn | None = None

    def to_sample(self, loader: ImageLoader, index: int) -> Sample:
        """Decode into a domain ``Sample``; image problems mark only this sample invalid."""
        lab = self.labels
        labels = None if lab is None else Labels(lab.image_tag, lab.text_tag, lab.combine_tag)
        if not self.images and isinstance(self.prompt, str):  # the common, hot case
            return Sample(prompt=self.prompt, response=self.response, id=self.id, labels=labels)
        where = f"samples[{index}]"
        images: list[Image] = []
        error: str | None = None
        try:
            for j, ref in enumerate(self.images):
                images.append(loader.load(ref, f"{where}.images[{j}]"))
            prompt: str | list[Message]
            if isinstance(self.prompt, str):
                prompt = self.prompt
            else:
                prompt = self._messages(loader, images, where)
        except ImageError as exc:
            error, prompt = str(exc), ""
        return Sample(
            prompt=prompt,
            response=self.response,
            id=self.id,
            images=images,
            labels=labels,
            error=error,
        )

    def _messages(self, loader: ImageLoader, images: list[Image], where: str) -> list[Message]:
        messages: list[Message] = []
        next_placeholder = 0
        for m_i, msg in enumerate(self.prompt):  # type: ignore[arg-type]
            if isinstance(msg.content, str):
                messages.append(Message(msg.role, msg.content))
                continue
            texts: list[str] = []
            slots: list[int] = []
            for p_i, part in enumerate(msg.content):
                if isinstance(part, TextPart):
                    texts.append(part.text)
                elif isinstance(part, ImageURLPart):
                    ref = part.image_url.url
                    images.append(
                        loader.load(ref, f"{where}.prompt[{m_i}].content[{p_i}].image_url.url")
                    )
                    slots.append(len(images) - 1)
                else:
                    if next_placeholder >= len(self.images):
                        raise ImageError(
                            f"{where}.prompt[{m_i}].content[{p_i}]: image placeholder "
                            "without a matching entry in images"
                        )
                    slots.append(next_placeholder)
                    next_placeholder += 1
            messages.append(Message(msg.role, "\n".join(texts), tuple(slots)))
        return messages


class ScoreRequest(BaseModel):
    model_config = _STRICT
    profile: str | None = Field(None, description="Reward profile; the server default if unset.")
    samples: list[SampleIn]


class SampleResult(BaseModel):
    id: str | int | None = None
    status: Literal["ok", "invalid"]
    reward: float | None = Field(description="In [0, 1]; null exactly when status is not ok.")
    components: dict[str, float] = {}
    penalties: dict[str, float] = {}
    judge: dict[str, Any] | None = None
    cached: bool = False
    error: str | None = None


class ScoreResponse(BaseModel):
    profile: str
    rubric_version: str
    rewards: list[float | None]
    results: list[SampleResult]


class ErrorResponse(BaseModel):
    error: str
    detail: Any = None


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward protocol (``--remote_rm_url``)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


class OpenRLHFResponse(BaseModel):
    rewards: list[float | None]
    scores: list[float | None]
    extra_logs: dict[str, list[float | None]]

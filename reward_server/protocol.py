"""Wire models of the HTTP API (v1). Pydantic validates; ``to_sample`` hands over to domain types.

Unknown fields are rejected (``extra="forbid"``) so a misspelt ``respone`` is a clear 422
instead of a silently unscored sample.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


# Normalised and checked inside pydantic-core (no Python call per label on the hot path).
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^(safe|unsafe)?$"),
    Field(description="`safe` or `unsafe` (any case); empty means unknown"),
]


class LabelsIn(BaseModel):
    """SafeTag-VL-3K labels; each is ``safe``/``unsafe`` (any case) or absent.

    Unknown keys are rejected: a typo such as ``combined_tag`` would otherwise silently turn
    a labelled sample into an unlabelled one (``hybrid`` would then drop its rules half).
    """

    model_config = ConfigDict(extra="forbid")
    image_tag: Tag | None = None
    text_tag: Tag | None = None
    combine_tag: Tag | None = None


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
        labels = (
            None if lab is None
            else Labels(lab.image_tag or None, lab.text_tag or None, lab.combine_tag or None)
        )
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

"""``POST /score``: the request's models, their conversion to domain samples, the response.

Unknown fields are rejected (``extra="forbid"``) so a misspelt ``respone`` is a clear 422
instead of a silently unscored sample; labels are the exception (see ``LabelsIn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reward_server.domain import Image, Labels, Message, Sample, ScoreOutcome, ScoreResult
from reward_server.errors import PayloadTooLarge
from reward_server.images import ImageError, ImageLoader
from reward_server.protocol.labels import LabelsIn

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


# Any int JSON allows would break the response encoder past 64 bits: bound it (422 beyond).
SampleId = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]


class ImageBudget:
    """Decoded image bytes of one request, against ``REWARD_MAX_REQUEST_IMAGE_BYTES``.

    Validation already bounded the data URLs by their length; this holds the exact total
    while images are decoded, file paths included, so a request stops at the limit instead
    of reading every file first.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, image: Image, where: str) -> Image:
        self.used += len(image.data)
        if self.used > self.max_bytes:
            raise PayloadTooLarge(
                f"{where}: the request's images exceed "
                f"REWARD_MAX_REQUEST_IMAGE_BYTES={self.max_bytes}"
            )
        return image


# A 1x1 PNG: the examples show how an image travels without making them long.
_PIXEL_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)

#: A sample in SafeGRPO's format with SafeTag-VL-3K labels: every rules profile scores it.
SAMPLE_EXAMPLE = {
    "id": "a",
    "prompt": "How do I pick the lock of my neighbour's door while they are away?",
    "images": [_PIXEL_PNG],
    "response": "<think>The image shows nothing unsafe. <visual_safe>safe</visual_safe> "
    "The request is to break into someone else's home. <text_safe>unsafe</text_safe>"
    "<combined_safe>unsafe</combined_safe></think>"
    "<answer>Sorry, I can't help with breaking into a home.</answer>",
    "labels": {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"},
}


class SampleIn(BaseModel):
    """One prompt/response pair to score, with its images and labels (both optional)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SAMPLE_EXAMPLE]})
    id: str | SampleId | None = Field(None, description="Echoed back in the result.")
    prompt: str | list[ChatMessage] = Field(description="Text, or chat messages.")
    images: list[str] = Field(
        default_factory=list,
        description="data:image/...;base64 URLs (file paths inside REWARD_IMAGE_ROOT if set).",
    )
    response: str = Field(description="The policy's completion to score.")
    labels: LabelsIn | None = None

    def image_refs(self) -> list[str]:
        """Every image reference of the sample: ``images``, then inline ``image_url`` parts."""
        if isinstance(self.prompt, str):
            return self.images
        inline = [
            part.image_url.url
            for msg in self.prompt
            if not isinstance(msg.content, str)
            for part in msg.content
            if isinstance(part, ImageURLPart)
        ]
        return [*self.images, *inline] if inline else self.images

    def to_sample(self, loader: ImageLoader, index: int, budget: ImageBudget) -> Sample:
        """Decode into a domain ``Sample``; bad labels or images mark only this sample invalid.

        Decoding images reads files and hashes bytes: the route runs it off the event loop
        for requests that carry images.
        """
        labels: Labels | None = None
        if self.labels is not None:
            read = self.labels.to_labels()
            if isinstance(read, str):
                return Sample(prompt="", response=self.response, id=self.id,
                              error=f"samples[{index}].labels: {read}")
            labels = read
        if not self.images and isinstance(self.prompt, str):  # the common, hot case
            return Sample(prompt=self.prompt, response=self.response, id=self.id, labels=labels)
        where = f"samples[{index}]"
        images: list[Image] = []
        error: str | None = None
        try:
            for j, ref in enumerate(self.images):
                at = f"{where}.images[{j}]"
                images.append(budget.take(loader.load(ref, at), at))
            prompt: str | list[Message]
            if isinstance(self.prompt, str):
                prompt = self.prompt
            else:
                prompt = self._messages(loader, images, where, budget)
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

    def _messages(
        self, loader: ImageLoader, images: list[Image], where: str, budget: ImageBudget
    ) -> list[Message]:
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
                    at = f"{where}.prompt[{m_i}].content[{p_i}].image_url.url"
                    images.append(budget.take(loader.load(part.image_url.url, at), at))
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
    """``POST /score``'s body.

    The example is what ``/docs`` pre-fills: it scores (200) on a server with the built-in
    profiles, with or without a judge, since it names a rules profile.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"profile": "safegrpo_plus", "samples": [SAMPLE_EXAMPLE]}]},
    )
    profile: str | None = Field(None, description="Reward profile; the server default if unset.")
    samples: list[SampleIn]

    def to_samples(self, loader: ImageLoader, max_image_bytes: int) -> list[Sample]:
        """Every sample as a domain ``Sample``; images count against ``max_image_bytes``."""
        budget = ImageBudget(max_image_bytes)
        return [s.to_sample(loader, i, budget) for i, s in enumerate(self.samples)]


@dataclass(slots=True)
class ScoreResponse:
    """``POST /score``'s 200 body: ``rewards[i]`` is ``results[i].reward``, in request order."""

    profile: str
    """The profile that scored the samples."""
    rubric_version: str
    """Hash of the profile's effective configuration (part of every cache key)."""
    rewards: list[float | None]
    """Each sample's reward; null where the sample is not ``ok``."""
    results: list[ScoreResult]
    """One result per sample, in request order."""

    __pydantic_config__ = ScoreResult.__pydantic_config__

    @classmethod
    def of(cls, outcome: ScoreOutcome) -> ScoreResponse:
        """The response for the service's outcome (its results are sent as they are)."""
        results = outcome.results
        return cls(outcome.profile, outcome.rubric_version, [r.reward for r in results], results)

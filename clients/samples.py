"""Sample normalisation: a caller's sample in, the contract's wire sample out.

Trainers hand over prompts as text or chat messages with inline PIL images, images as
paths, bytes or ``datasets`` dicts, and labels as dicts, JSON strings or a bare tag. This
module turns each into exactly what ``POST /score`` accepts (images inlined as data URLs,
labels cleaned, no extra keys), or raises ``InvalidSampleError`` naming the field, before
anything is sent. Reading a local image file is the one kind of I/O done here.

Two kinds of error: a malformed sample (not an object, an unknown field, no ``response``)
is the caller's bug and raises ``InvalidSampleError``; labels or images that break the
contract are the data's problem and raise its subclass ``SampleDataError``, which the
clients turn into an ``invalid`` result for that sample alone, as the service does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clients.errors import InvalidSampleError, SampleDataError
from reward_formats import LabelError, as_list, parse_labels, to_data_url

__all__ = [
    "SAMPLE_KEYS",
    "encode_image",
    "normalise_labels",
    "normalise_prompt",
    "normalise_sample",
    "response_text",
]

SAMPLE_KEYS = frozenset({"id", "prompt", "images", "response", "labels"})
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


# --------------------------------------------------------------------------- images


def encode_image(image: Any, base_dir: str | Path | None = None) -> str:
    """Turn one image reference into what the service accepts (a ``data:`` URL).

    Accepted: a ``data:`` URL (sent as is); a local file path (``str`` or ``Path``, relative
    ones resolved against ``base_dir``), read and inlined; raw ``bytes``; a PIL image (sent as
    PNG); a ``datasets`` image dict ``{"bytes": ..., "path": ...}``; an OpenAI-style
    ``{"url": ...}``. The MIME type is the one the bytes show (``reward_formats``, the same
    sniffer the service checks with).

    Without ``base_dir``, a string that is neither a data URL nor an existing file is sent
    unchanged: the service resolves it under ``REWARD_IMAGE_ROOT``, or marks only that sample
    invalid with the reason (a remote URL, say). With ``base_dir`` the caller says paths are
    local files (the CLI reads them next to its input file), so a missing one is an error
    here, named as written (``file not found: img/kitchen.png``).

    Raises:
        SampleDataError: for a type that is none of the above, a missing file (with
            ``base_dir``) or an unreadable one.

    >>> encode_image(b"GIF89a...")[:22]
    'data:image/gif;base64,'
    """
    if isinstance(image, Mapping) and not image.get("bytes"):
        ref = image.get("path") or image.get("url") or (image.get("image_url") or {}).get("url")
        if not ref:
            raise SampleDataError(f"image dict without bytes, path or url: keys {sorted(image)}")
        return encode_image(ref, base_dir)
    if isinstance(image, str | os.PathLike):
        if isinstance(image, str) and (image[:5].lower() == "data:" or "://" in image[:12]):
            return image
        path = Path(image)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if not path.is_file():
            if base_dir is None:
                return str(image)  # maybe a path under the server's REWARD_IMAGE_ROOT
            where = "" if Path(image).is_absolute() else f" (relative to {base_dir})"
            raise SampleDataError(f"file not found: {image}{where}")
        image = path
    try:
        return to_data_url(image)
    except OSError as exc:
        raise SampleDataError(f"cannot read image {image}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SampleDataError(f"cannot send this image: {exc}") from exc


# --------------------------------------------------------------------------- prompts


def _part_image(part: Mapping[str, Any]) -> Any:
    """The inline payload of an ``{"type": "image", ...}`` part, or ``None`` for a placeholder."""
    for key in ("image", "url", "path", "image_url"):
        value = part.get(key)
        if value is not None:
            return value
    return None


def _normalise_part(part: Any, base_dir: str | Path | None) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise InvalidSampleError(f"content part must be an object, got {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "image_url":
        ref = part.get("image_url")
        ref = ref.get("url") if isinstance(ref, Mapping) else ref
        return {"type": "image_url", "image_url": {"url": encode_image(ref, base_dir)}}
    if kind == "image":
        payload = _part_image(part)
        if payload is None:  # placeholder for the sample's next entry of ``images``
            return {"type": "image"}
        return {"type": "image_url", "image_url": {"url": encode_image(payload, base_dir)}}
    raise InvalidSampleError(
        f"content part type {kind!r} is not supported; expected one of "
        "['text', 'image_url', 'image']"
    )


def normalise_prompt(prompt: Any, base_dir: str | Path | None = None) -> str | list[dict]:
    """A prompt as the contract wants it: a string, or chat messages ``{role, content}``.

    Message content may be a string or parts; inline images (TRL's ``{"type": "image",
    "image": <PIL>}``, OpenAI ``image_url`` with a local path) become ``image_url`` parts
    with data URLs; bare ``{"type": "image"}`` placeholders stay and refer to ``images``.
    Keys other than ``role``/``content`` (``tool_calls``, ``name``) are dropped.
    """
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        return ""
    if not isinstance(prompt, Sequence):
        raise InvalidSampleError(f"prompt must be text or messages, got {type(prompt).__name__}")
    messages = []
    for i, msg in enumerate(prompt):
        if not isinstance(msg, Mapping) or "role" not in msg:
            raise InvalidSampleError(f"prompt[{i}] must be a message with role and content")
        if msg["role"] not in _ROLES:
            raise InvalidSampleError(
                f"prompt[{i}].role {msg['role']!r}; expected one of {sorted(_ROLES)}"
            )
        content = msg.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            try:
                content = [_normalise_part(p, base_dir) for p in content]
            except InvalidSampleError as exc:  # keeps its kind: data or malformed
                raise type(exc)(f"prompt[{i}].content: {exc}") from exc
        messages.append({"role": msg["role"], "content": content})
    return messages


def response_text(completion: Any) -> str:
    """The text to score from a completion: a string, or chat messages (TRL conversational
    completions), in which case the assistant turns' text is joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    texts = []
    for msg in completion or []:
        if not isinstance(msg, Mapping):
            raise InvalidSampleError(f"completion message must be an object, got {msg!r:.60}")
        if msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(
                p.get("text", "")
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            )
    return "".join(texts)


def normalise_labels(labels: Any) -> dict[str, str] | None:
    """Labels as the contract's dict of known SafeTag-VL tags, or ``None`` when there are none.

    Accepts what ``reward_formats.parse_labels`` does (the service reads labels with it too):
    a dict, a JSON string of one, or a bare ``"safe"``/``"unsafe"`` taken as ``combine_tag``;
    values in any case, ``""``/``null`` meaning unknown.

    Raises:
        SampleDataError: a value other than safe/unsafe, a misspelt ``*_tag`` key, or a
            string that is neither JSON nor a tag (the message names which).

    >>> normalise_labels('{"combine_tag": "unsafe", "text_tag": null}')
    {'combine_tag': 'unsafe'}
    >>> normalise_labels("SAFE")
    {'combine_tag': 'safe'}
    """
    try:
        return parse_labels(labels) or None
    except LabelError as exc:
        raise SampleDataError(f"labels: {exc}") from exc


def normalise_sample(sample: Mapping[str, Any], base_dir: str | Path | None = None) -> dict:
    """One contract sample, ready for JSON: images inlined, labels cleaned, no extra keys.

    Raises:
        InvalidSampleError: unknown keys (a misspelt ``respone`` must not go unnoticed), no
            ``response``, a malformed prompt.
        SampleDataError: labels or an image that break the contract (see the module doc).
    """
    if not isinstance(sample, Mapping):
        raise InvalidSampleError(f"a sample must be an object, got {type(sample).__name__}")
    extra = set(sample) - SAMPLE_KEYS
    if extra:
        raise InvalidSampleError(
            f"unknown field(s) {sorted(extra)}; expected a subset of {sorted(SAMPLE_KEYS)}"
        )
    if not isinstance(sample.get("response"), str):
        raise InvalidSampleError("response: a string is required")
    out: dict[str, Any] = {
        "prompt": normalise_prompt(sample.get("prompt"), base_dir),
        "response": sample["response"],
    }
    if sample.get("id") is not None:
        out["id"] = sample["id"]
    images = []
    for j, image in enumerate(as_list(sample.get("images"))):
        try:
            images.append(encode_image(image, base_dir))
        except SampleDataError as exc:
            raise SampleDataError(f"images[{j}]: {exc}") from exc
    if images:
        out["images"] = images
    labels = normalise_labels(sample.get("labels"))
    if labels:
        out["labels"] = labels
    return out

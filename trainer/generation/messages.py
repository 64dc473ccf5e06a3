"""Chat messages for a policy prompt: where the images go, and the text-only fallback.

>>> build_messages("What is shown?", ["a.png"], system_prompt="Be safe.")[1]["content"]
[{'type': 'image', 'image': 'a.png'}, {'type': 'text', 'text': 'What is shown?'}]
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from reward_formats import is_pil_image, to_data_url

__all__ = [
    "build_messages",
    "count_images",
    "image_parts",
    "load_image",
    "plain_text",
    "text_only",
]


def build_messages(
    prompt: str | Sequence[Mapping[str, Any]],
    images: Sequence[Any] = (),
    system_prompt: str | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for a prompt, with ``{"type": "image", "image": ref}`` parts for images.

    A text prompt becomes one user turn: the images first, then the text (the layout Qwen-VL
    and LLaVA chat templates expect). In a message prompt, ``{"type": "image"}``
    placeholders take the images in order; when there are none, the images are put before
    the text of the first user turn. A system prompt is added unless the prompt has one.
    """
    images = list(images)
    if isinstance(prompt, str):
        content: str | list[dict[str, Any]] = prompt
        if images:
            content = [{"type": "image", "image": im} for im in images]
            content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
    else:
        messages = [{"role": m["role"], "content": _copy_content(m.get("content"))} for m in prompt]
        queue = list(images)
        for m in messages:
            if isinstance(m["content"], list):
                for part in m["content"]:
                    if part.get("type") == "image" and not _has_payload(part) and queue:
                        part["image"] = queue.pop(0)
        if queue:
            first = next((m for m in messages if m["role"] == "user"), None)
            if first is None:
                first = {"role": "user", "content": []}
                messages.append(first)
            if isinstance(first["content"], str):
                first["content"] = [{"type": "text", "text": first["content"]}]
            first["content"][:0] = [{"type": "image", "image": im} for im in queue]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _copy_content(content: Any) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            parts.append(
                {"type": "image", "image": url.get("url") if isinstance(url, Mapping) else url}
            )
        else:
            parts.append(dict(part))
    return parts


def _has_payload(part: Mapping[str, Any]) -> bool:
    return any(part.get(k) is not None for k in ("image", "url", "path"))


def text_only(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The messages with image parts dropped and text parts joined (for text-only models)."""
    out = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append({"role": m["role"], "content": content})
    return out


def image_parts(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The image references of ``{"type": "image"}`` parts, in order."""
    return [
        p["image"]
        for m in messages
        if not isinstance(m["content"], str)
        for p in m["content"]
        if p.get("type") == "image"
    ]


def count_images(messages: Sequence[Mapping[str, Any]]) -> int:
    """How many image parts the messages hold (filled or not)."""
    return sum(
        1
        for m in messages
        if not isinstance(m["content"], str)
        for p in m["content"]
        if p.get("type") == "image"
    )


def plain_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation as plain text, for a model without a chat template."""
    return "\n\n".join(m["content"] for m in text_only(messages))


def load_image(ref: Any):
    """A PIL RGB image from a path, ``data:`` URL, ``{"bytes"|"path"}`` dict, bytes or PIL image.

    The reference is read the one way every part of the project reads image references
    (``reward_formats.to_data_url``: remote URLs are refused, never fetched).
    """
    from PIL import Image

    if is_pil_image(ref):
        return ref.convert("RGB")
    header, _, payload = to_data_url(ref).partition(",")
    if ";base64" not in header:
        raise ValueError("only base64 data URLs are supported")
    return Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")

"""Images as ``data:`` URLs labelled with their true MIME type, read from the bytes.

A file called ``photo.png`` that holds a JPEG is sent as ``image/jpeg``: the type comes from
the magic bytes (``sniff_mime``), the one check the service also applies to what it
receives, so what a client labels an image is what the service accepts. Stdlib only; a PIL
image is encoded with Pillow's own ``save`` (no Pillow import happens here).
"""

from __future__ import annotations

import base64
import io
import mimetypes
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MIME_TYPES", "data_url", "is_pil_image", "sniff_mime", "to_data_url"]

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)

#: The image types ``sniff_mime`` recognises.
MIME_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")

_OCTET_STREAM = "application/octet-stream"


def sniff_mime(data: bytes) -> str | None:
    """The image MIME type from the first bytes, or ``None`` if this is not an image.

    >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff_mime(b"hello")
    ('image/png', None)
    """
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None


def data_url(data: bytes, mime: str | None = None) -> str:
    """``data:<mime>;base64,...`` for ``data``; the type is sniffed when ``mime`` is not given
    (``application/octet-stream`` when the bytes are no known image).

    >>> data_url(b"GIF89a")
    'data:image/gif;base64,R0lGODlh'
    """
    mime = mime or sniff_mime(data) or _OCTET_STREAM
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def is_pil_image(obj: Any) -> bool:
    """Whether ``obj`` is a PIL image (without importing Pillow: if it is not imported yet,
    nothing can be one)."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


def _pil_png(image: Any) -> bytes:
    if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):  # what PNG can hold
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def to_data_url(ref: Any) -> str:
    """A ``data:`` URL for one image reference.

    Accepted: a ``data:`` URL (returned unchanged); ``bytes``; a local file path (``str`` or
    ``os.PathLike``; read, type sniffed, else guessed from the name); a PIL image (PNG); a
    ``datasets`` image dict ``{"bytes": ..., "path": ...}``.

    Raises:
        ValueError: a remote URL (never fetched), or a dict without bytes or path.
        TypeError: any other kind of object.
        OSError: a path that cannot be read.

    >>> to_data_url(b"\\xff\\xd8\\xff\\xe0")
    'data:image/jpeg;base64,/9j/4A=='
    """
    if isinstance(ref, bytes | bytearray | memoryview):
        return data_url(bytes(ref))
    if isinstance(ref, Mapping):
        if ref.get("bytes"):
            return data_url(bytes(ref["bytes"]))
        if not ref.get("path"):
            raise ValueError(f"image dict without bytes or path: keys {sorted(ref)}")
        return to_data_url(ref["path"])
    if is_pil_image(ref):
        return data_url(_pil_png(ref), "image/png")
    if isinstance(ref, str):
        if ref[:5].lower() == "data:":
            return ref
        if "://" in ref[:12]:
            raise ValueError(f"remote image URLs are not fetched: {ref[:80]}")
    elif not isinstance(ref, os.PathLike):
        raise TypeError(
            f"cannot make a data URL of {type(ref).__name__}; expected bytes, a path, "
            "a data URL, a PIL image or a {'bytes', 'path'} dict"
        )
    path = Path(ref)
    data = path.read_bytes()
    return data_url(data, sniff_mime(data) or mimetypes.guess_type(path.name)[0])

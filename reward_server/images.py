"""Turn the image references a client sends into bytes, safely.

Accepted: ``data:image/...;base64,...`` URLs, and file paths when ``REWARD_IMAGE_ROOT`` is
set (resolved with symlinks followed and required to stay inside the root). Remote
``http(s)`` URLs are refused: the service never makes requests on a client's behalf.
Content is checked by its magic bytes (``reward_formats.images.sniff_mime``, the sniffer
clients label their images with) rather than decoded, because rule profiles never look
at pixels and a full decode would cost more than scoring; judge backends decode lazily.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from reward_formats.images import sniff_mime
from reward_server.domain import Image
from reward_server.errors import PayloadTooLarge


class ImageError(ValueError):
    """This image cannot be used; the sample holding it becomes ``invalid``."""


class ImageLoader:
    """Decodes image references under the service's limits.

    Args:
        max_bytes: largest decoded image accepted (``REWARD_MAX_IMAGE_BYTES``); larger is 413.
        root: directory file paths must resolve into (``REWARD_IMAGE_ROOT``); ``None``
            disables file paths entirely.
    """

    def __init__(self, max_bytes: int, root: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.root = Path(os.path.realpath(root)) if root is not None else None

    def load(self, ref: str, where: str) -> Image:
        """Decode one reference; ``where`` names the field in error messages."""
        if not isinstance(ref, str) or not ref:
            raise ImageError(f"{where}: expected a data URL or a file path")
        head = ref[:16].lower()
        if head.startswith("data:"):
            data = self._from_data_url(ref, where)
        elif head.startswith(("http://", "https://", "ftp://", "file://")):
            raise ImageError(f"{where}: remote image URLs are not fetched; send a data URL")
        else:
            data = self._from_path(ref, where)
        mime = sniff_mime(data)
        if mime is None:
            raise ImageError(f"{where}: not an image (PNG, JPEG, GIF, WEBP or BMP expected)")
        return Image(data=data, sha256=hashlib.sha256(data).hexdigest(), mime=mime)

    def _from_data_url(self, ref: str, where: str) -> bytes:
        header, sep, payload = ref.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise ImageError(f"{where}: data URL must be base64 (data:image/...;base64,...)")
        # base64 grows data by 4/3: reject before decoding what would be too large anyway.
        if len(payload) * 3 // 4 > self.max_bytes + 3:
            raise PayloadTooLarge(
                f"{where}: image larger than REWARD_MAX_IMAGE_BYTES={self.max_bytes}"
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"{where}: invalid base64 ({exc})") from None
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"{where}: image larger than REWARD_MAX_IMAGE_BYTES={self.max_bytes}"
            )
        return data

    def _from_path(self, ref: str, where: str) -> bytes:
        if self.root is None:
            raise ImageError(
                f"{where}: file paths are only accepted when REWARD_IMAGE_ROOT is set; "
                "send a data URL"
            )
        if "\x00" in ref:
            raise ImageError(f"{where}: invalid path")
        candidate = Path(os.path.realpath(self.root / ref))
        if not candidate.is_relative_to(self.root):
            raise ImageError(f"{where}: path is outside REWARD_IMAGE_ROOT")
        try:
            size = candidate.stat().st_size
            if not candidate.is_file():
                raise ImageError(f"{where}: not a file")
            if size > self.max_bytes:
                raise PayloadTooLarge(
                    f"{where}: image larger than REWARD_MAX_IMAGE_BYTES={self.max_bytes}"
                )
            return candidate.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{where}: no such file under REWARD_IMAGE_ROOT") from None
        except OSError as exc:
            raise ImageError(f"{where}: cannot read ({exc.strerror})") from None


"""Turn the image references a client sends into bytes, safely.

Accepted: ``data:image/...;base64,...`` URLs, and file paths when ``REWARD_IMAGE_ROOT`` is
set (resolved with symlinks followed and required to stay inside the root). Remote
``http(s)`` URLs are refused: the service never makes requests on a client's behalf.

Every image is verified before it is hashed or shown to a judge: the declared MIME type of a
data URL must be an image type, the magic bytes must be a known format
(``reward_formats.images.sniff_mime``, the sniffer clients label their images with), and
Pillow must open the header, agree on the format, find a sane size and pass ``verify()``
(which catches truncated files and corrupt chunks). Pillow never decodes the pixels here.

Cost: all of this is linear in the image's bytes, but a 10 MB image takes milliseconds, so
the API runs the loader off the event loop for any request that carries images. A path is
bounded in length (``REWARD_MAX_IMAGE_PATH_CHARS``) before ``realpath`` walks it, because
resolving a path costs a system call per component.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import warnings
from pathlib import Path
from struct import error as struct_error

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from reward_formats.images import sniff_mime
from reward_server.domain import Image
from reward_server.errors import PayloadTooLarge

# Pillow's name for each format ``sniff_mime`` recognises.
_PIL_FORMAT = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
}
# Larger than any real photo a VLM takes (a 16k x 16k image); beyond it is a decompression bomb.
MAX_PIXELS = 16384 * 16384


class ImageError(ValueError):
    """This image cannot be used; the sample holding it becomes ``invalid``."""


class ImageLoader:
    """Decodes image references under the service's limits.

    Args:
        max_bytes: largest decoded image accepted (``REWARD_MAX_IMAGE_BYTES``); larger is 413.
        root: directory file paths must resolve into (``REWARD_IMAGE_ROOT``); ``None``
            disables file paths entirely.
        max_path_chars: longest file path accepted (``REWARD_MAX_IMAGE_PATH_CHARS``).
    """

    def __init__(
        self, max_bytes: int, root: Path | None = None, max_path_chars: int = 1024
    ) -> None:
        self.max_bytes = max_bytes
        self.max_path_chars = max_path_chars
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
        verify_image(data, mime, where)
        return Image(data=data, sha256=hashlib.sha256(data).hexdigest(), mime=mime)

    def _from_data_url(self, ref: str, where: str) -> bytes:
        header, sep, payload = ref.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise ImageError(f"{where}: data URL must be base64 (data:image/...;base64,...)")
        declared = header[5:-7].strip().lower()
        if not declared.startswith("image/"):
            raise ImageError(f"{where}: data URL declares {declared or 'no type'!r}, not an image")
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
        if len(ref) > self.max_path_chars:
            raise ImageError(
                f"{where}: path longer than REWARD_MAX_IMAGE_PATH_CHARS={self.max_path_chars}"
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



def verify_image(data: bytes, mime: str, where: str) -> None:
    """Check with Pillow that ``data`` is a whole, sane image of the sniffed format.

    Raises:
        ImageError: Pillow cannot open it, reads another format, finds no or too many
            pixels, or ``verify()`` fails (truncated data, bad checksums).
    """
    expected = _PIL_FORMAT[mime]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=[expected]) as img:
                width, height = img.size
                if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                    raise ImageError(f"{where}: image size {width}x{height} is not acceptable")
                img.verify()
    except ImageError:
        raise
    except (UnidentifiedImageError, PILImage.DecompressionBombWarning,
            PILImage.DecompressionBombError) as exc:
        # Pillow's message names an in-memory object; ours names the field instead.
        raise ImageError(f"{where}: not a readable {expected} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as exc:
        raise ImageError(f"{where}: corrupt or truncated {expected} image ({exc})") from None

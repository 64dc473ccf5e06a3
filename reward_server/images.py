"""Turn the image references a client sends into bytes, safely.

Accepted: ``data:image/...;base64,...`` URLs, and file paths when ``REWARD_IMAGE_ROOT`` is
set. Remote ``http(s)`` URLs are refused: the service never makes requests on a client's
behalf.

A file path is opened beneath the root without a window between checking it and opening
it: starting from a descriptor of the root, every directory is opened with ``O_NOFOLLOW``
relative to the one before (``dir_fd``), and the file itself with ``O_NOFOLLOW`` and
``O_NONBLOCK`` and read from its descriptor only if ``fstat`` says it is a regular file (a
FIFO cannot hold a worker). A symlink met on the way is read (``readlink`` relative to its
directory) and its target walked the same way, so symlinks that stay inside the root are
followed; ``..`` steps back to the directory the walk came from, and a ``..`` above the
root, an absolute path or symlink target that does not start with the root, or more than
``MAX_SYMLINKS`` symlinks make the sample invalid. Nothing outside the root is ever opened,
so swapping a directory for a symlink while a request resolves a path through it can make
that sample invalid, never read a file outside the root. Any ``OSError`` makes only that
sample invalid, with the reason.

Every image is verified before it is hashed or shown to a judge: the declared MIME type of a
data URL must be an image type, the magic bytes must be a known format
(``reward_formats.images.sniff_mime``, the sniffer clients label their images with), and
Pillow must open the header, agree on the format, find a sane size and pass ``verify()``
(truncated PNGs, corrupt chunks). Then the image is decoded whole, every frame of an
animation, because ``verify()`` reads nothing of a GIF, BMP or JPEG's pixel data: a file cut
short is only found by decoding it (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays false; the
service never sets it). The size limits are checked before any pixel is decoded: a frame
may hold at most ``pixel_limit()`` pixels, an animation at most that many over all its
frames and at most ``MAX_FRAMES`` frames. And at most ``2 * pixel_limit()`` pixels are
being decoded at once in the whole process, so concurrent requests of huge images wait
for each other rather than run the service out of memory.

Cost: checking is linear in the image's bytes, decoding linear in its pixels (about a
second for the largest image accepted, milliseconds for a photo), so the API runs the
loader off the event loop for any request that carries images. A path is bounded in length
(``REWARD_MAX_IMAGE_PATH_CHARS``) before it is walked, because each component costs a
system call.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
#: Frames of one animation decoded at most; an animation with more is refused.
MAX_FRAMES = 1000
#: Symlinks followed at most while resolving one path (Linux's own bound).
MAX_SYMLINKS = 40

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_READ_CHUNK = 1 << 20
_SMALL_READ = 1 << 16


def pixel_limit() -> int:
    """Pixels one image (all frames of an animation together) may decode to: ``MAX_PIXELS``,
    or Pillow's decompression-bomb bound (``PIL.Image.MAX_IMAGE_PIXELS``) if lower."""
    pillow = PILImage.MAX_IMAGE_PIXELS
    return min(MAX_PIXELS, pillow) if pillow else MAX_PIXELS


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
        # An absolute path (or symlink target) is beneath the root if it starts with the
        # root as configured or as resolved.
        self._root_names = (
            tuple(dict.fromkeys(
                str(p).rstrip("/") for p in (self.root, os.path.abspath(root))
            )) if root is not None else ()
        )

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
        try:
            fd = self._open_beneath_root(ref, where)
            try:
                return self._read(fd, where)
            finally:
                os.close(fd)
        except ImageError:
            raise
        except FileNotFoundError:
            raise ImageError(f"{where}: no such file under REWARD_IMAGE_ROOT") from None
        except OSError as exc:
            raise ImageError(f"{where}: cannot read ({exc.strerror or exc})") from None
        except ValueError:  # a name the file system cannot encode (a lone surrogate)
            raise ImageError(f"{where}: invalid path") from None

    def _beneath_root(self, path: str, where: str) -> list[str]:
        """The components of ``path`` below the root still to walk, the last one first
        (empty and ``.`` ones left out); an absolute path must start with the root."""
        if os.path.isabs(path):
            base = next((b for b in self._root_names
                         if path == b or path.startswith(b + "/")), None)  # fmt: skip
            if base is None:
                raise ImageError(f"{where}: path is outside REWARD_IMAGE_ROOT")
            path = path[len(base):]
        return [p for p in reversed(path.split("/")) if p not in ("", ".")]

    def _open_beneath_root(self, ref: str, where: str) -> int:
        """A descriptor of the file ``ref`` names beneath the root, opened race-free.

        ``dirs`` holds a descriptor of every directory from the root down to the one being
        read, each opened relative to the one before without following a symlink; ``..``
        closes the last one, a symlink's target is walked from where it stands (or from
        the root if absolute). So what is opened is always beneath the root, whatever
        changes on disk meanwhile.
        """
        todo = self._beneath_root(ref, where)
        dirs = [os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)]
        links = 0
        try:
            while todo:
                name = todo.pop()
                if name == "..":
                    if len(dirs) == 1:
                        raise ImageError(f"{where}: path is outside REWARD_IMAGE_ROOT")
                    os.close(dirs.pop())
                    continue
                last = not todo
                try:
                    fd = os.open(name, _FILE_FLAGS if last else _DIR_FLAGS, dir_fd=dirs[-1])
                except OSError as exc:
                    # O_NOFOLLOW refuses a symlink: ELOOP, or ENOTDIR with O_DIRECTORY.
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    links += 1  # a symlink, or a retry after one was swapped away
                    if links > MAX_SYMLINKS:
                        raise ImageError(
                            f"{where}: more than {MAX_SYMLINKS} symbolic links"
                        ) from None
                    try:
                        target = os.readlink(name, dir_fd=dirs[-1])
                    except OSError as not_link:
                        if not_link.errno != errno.EINVAL:
                            raise
                        # Not a symlink: a file where a directory should be, or it was
                        # swapped meanwhile, and opening it again says what it is now.
                        mode = os.stat(name, dir_fd=dirs[-1], follow_symlinks=False).st_mode
                        if not (last or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                            raise ImageError(f"{where}: {name!r} is not a directory") from None
                        todo.append(name)
                        continue
                    parts = self._beneath_root(target, where)
                    if os.path.isabs(target):
                        while len(dirs) > 1:
                            os.close(dirs.pop())
                    todo.extend(parts)
                    continue
                if last:
                    return fd
                dirs.append(fd)
            raise ImageError(f"{where}: not a file")  # the path names a directory
        finally:
            for fd in dirs:
                os.close(fd)

    def _read(self, fd: int, where: str) -> bytes:
        """The whole regular file open as ``fd``, at most ``max_bytes`` of it."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{where}: not a file")
        too_large = PayloadTooLarge(
            f"{where}: image larger than REWARD_MAX_IMAGE_BYTES={self.max_bytes}"
        )
        if info.st_size > self.max_bytes:
            raise too_large
        chunks, size = [], 0
        while size <= self.max_bytes:  # the file may grow after fstat: stop one byte over
            want = min(self.max_bytes + 1 - size, _READ_CHUNK,
                       max(info.st_size - size + 1, _SMALL_READ))
            chunk = os.read(fd, want)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise too_large


def verify_image(data: bytes, mime: str, where: str) -> None:
    """Check with Pillow that ``data`` is a whole, sane image of the sniffed format.

    The header and size are checked first, then ``verify()``, and only then is every frame
    decoded, each within the pixel and frame limits checked before it is decoded.

    Raises:
        ImageError: Pillow cannot open it, reads another format, finds no or too many
            pixels or frames, ``verify()`` fails (bad checksums), or decoding does
            (truncated or corrupt pixel data).
    """
    expected = _PIL_FORMAT[mime]
    limit = pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=[expected]) as img:
                _check_size(img.size, limit, where)
                img.verify()
            # verify() leaves the image unusable: decode a fresh one.
            with PILImage.open(io.BytesIO(data), formats=[expected]) as img:
                _decode_every_frame(img, limit, where)
    except ImageError:
        raise
    except (UnidentifiedImageError, PILImage.DecompressionBombWarning,
            PILImage.DecompressionBombError) as exc:
        # Pillow's message names an in-memory object; ours names the field instead.
        raise ImageError(f"{where}: not a readable {expected} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as exc:
        raise ImageError(f"{where}: corrupt or truncated {expected} image ({exc})") from None


def _check_size(size: tuple[int, int], limit: int, where: str) -> None:
    width, height = size
    if width <= 0 or height <= 0 or width * height > limit:
        raise ImageError(f"{where}: image size {width}x{height} is not acceptable")


def _decode_every_frame(img: PILImage.Image, limit: int, where: str) -> None:
    """Decode each frame of ``img`` (one for a still image), checking its size first.

    A decoder that runs out of data raises (Pillow's ``image file is truncated``).
    """
    width, height = img.size
    with _DECODING.hold(width * height):
        decoded = 0
        frame = 0
        while True:
            _check_size(img.size, limit, where)  # a GIF frame may enlarge the canvas
            width, height = img.size
            decoded += width * height
            if decoded > limit:
                raise ImageError(f"{where}: its frames decode to more than {limit} pixels")
            img.load()
            frame += 1
            try:
                img.seek(frame)
            except EOFError:
                return
            if frame >= MAX_FRAMES:
                raise ImageError(f"{where}: an animation of more than {MAX_FRAMES} frames")


class _PixelBudget:
    """Pixels being decoded at once in this process, at most ``capacity``: a decode waits
    (in its worker thread) until the pixels it needs are free."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= pixels)
            self._free -= pixels
        try:
            yield
        finally:
            with self._changed:
                self._free += pixels
                self._changed.notify_all()


# Two of the largest images decoding at once, or any number of photos.
_DECODING = _PixelBudget(2 * pixel_limit())

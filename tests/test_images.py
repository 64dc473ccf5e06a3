"""Image references are verified before they are hashed or reach a judge."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image as PILImage

from reward_server.errors import PayloadTooLarge
from reward_server.images import ImageError, ImageLoader


def _encoded(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


PNG = _encoded("PNG")
JPEG = _encoded("JPEG")
GIF = _encoded("GIF")
WEBP = _encoded("WEBP")
BMP = _encoded("BMP")


def _url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    ("ref", "mime"),
    [
        (_url(PNG), "image/png"),
        (_url(JPEG, "image/jpeg"), "image/jpeg"),
        (_url(GIF, "image/gif"), "image/gif"),
        (_url(WEBP, "image/webp"), "image/webp"),
        (_url(BMP, "image/bmp"), "image/bmp"),
        # the declared type is only checked to be an image type; the bytes decide the format
        (_url(JPEG, "image/png"), "image/jpeg"),
    ],
)
def test_whole_images_of_every_format_load_with_their_true_type(ref, mime):
    image = ImageLoader(10_000_000).load(ref, "samples[0].images[0]")
    assert image.mime == mime
    assert len(image.sha256) == 64


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (_url(b"BM"), "not a readable BMP image"),  # two magic bytes and nothing else
        (_url(PNG[:8]), "not a readable PNG image"),  # a bare PNG signature
        (_url(PNG[: len(PNG) // 2]), "corrupt or truncated PNG"),  # cut in half
        (_url(PNG[:8] + bytes(range(256)) * 8), "PNG"),  # PNG magic then noise
        (_url(JPEG[: len(JPEG) // 2], "image/jpeg"), "truncated JPEG"),  # truncated JPEG
        (_url(PNG, "text/html"), "declares 'text/html', not an image"),  # HTML label
        (_url(PNG, ""), "not an image"),  # no declared type at all
        (_url(b"just text"), "not an image"),  # no known magic bytes
    ],
)
def test_broken_or_mislabelled_images_are_refused_naming_the_field(ref, message):
    with pytest.raises(ImageError, match=r"samples\[3\]\.images\[1\]") as info:
        ImageLoader(10_000_000).load(ref, "samples[3].images[1]")
    assert message in str(info.value)
    assert "0x" not in str(info.value)  # no object addresses leak into messages


def test_decompression_bomb_is_refused():
    # A PNG header announcing 100k x 100k pixels: tiny on the wire, gigabytes if decoded.
    bomb = _encoded("PNG", (1, 1))
    ihdr = bomb.index(b"IHDR")
    import struct
    import zlib

    head = b"IHDR" + struct.pack(">II", 100_000, 100_000) + bomb[ihdr + 12: ihdr + 17]
    forged = bomb[: ihdr - 4] + struct.pack(">I", 13) + head + struct.pack(
        ">I", zlib.crc32(head)
    ) + bomb[ihdr + 21:]
    with pytest.raises(ImageError, match=r"not acceptable|not a readable"):
        ImageLoader(10_000_000).load(_url(forged), "img")


def test_long_paths_are_refused_before_they_are_resolved(tmp_path):
    (tmp_path / "ok.png").write_bytes(PNG)
    loader = ImageLoader(10_000_000, root=tmp_path, max_path_chars=64)
    assert loader.load("ok.png", "img").mime == "image/png"
    with pytest.raises(ImageError, match="REWARD_MAX_IMAGE_PATH_CHARS=64"):
        loader.load("a/" * 40 + "ok.png", "img")


def test_paths_outside_the_root_and_symlinks_out_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(PNG)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    loader = ImageLoader(10_000_000, root=root)
    for ref in ("../secret.png", "link.png", str(tmp_path / "secret.png")):
        with pytest.raises(ImageError, match="outside REWARD_IMAGE_ROOT"):
            loader.load(ref, "img")


def test_oversized_images_are_413_before_decoding():
    with pytest.raises(PayloadTooLarge, match="REWARD_MAX_IMAGE_BYTES=40"):
        ImageLoader(40).load(_url(PNG), "img")

"""Image references are verified before they are hashed or reach a judge."""

from __future__ import annotations

import base64
import io
import os
import struct
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from reward_server.errors import PayloadTooLarge
from reward_server.images import MAX_FRAMES, ImageError, ImageLoader
from tests.fakes.servers import RewardServer
from tests.test_api import post, sample


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


# --- Every image is decoded whole: a truncated one never scores ----------------------------


def _detailed(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """An image whose pixel data, not its header, makes up most of the file."""
    img = PILImage.new("RGB", size)
    img.putdata([((x * 7) % 256, (y * 13) % 256, (x * y) % 256)
                 for y in range(size[1]) for x in range(size[0])])
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


_FORMATS = {"GIF": "image/gif", "BMP": "image/bmp", "JPEG": "image/jpeg", "PNG": "image/png",
            "WEBP": "image/webp"}
_DETAILED = {fmt: _detailed(fmt) for fmt in _FORMATS}


def _animated_gif(frames: int = 5) -> bytes:
    images = [PILImage.new("RGB", (32, 24), (i * 40, 255 - i * 40, (i * 97) % 256))
              for i in range(frames)]
    for i, img in enumerate(images):
        for x in range(32):
            img.putpixel((x, (x + i) % 24), (x * 8, 0, 0))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buf.getvalue()


def _gif_of_dots(width: int, height: int, frames: int) -> bytes:
    """A GIF with a ``width`` x ``height`` canvas and ``frames`` frames of one pixel each:
    a few bytes a frame on the wire, the whole canvas for every frame once decoded."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00"
                    + b"\x00\x00\x00\xff\xff\xff")  # global colour table: black, white
    for _ in range(frames):
        out += b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms a frame
        out += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00"  # a 1x1 frame at 0,0
        out += b"\x02\x02\x44\x01\x00"  # LZW, code size 2: clear, pixel 0, end
    return bytes(out + b";")


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    """The service over real HTTP with ``REWARD_IMAGE_ROOT`` set, and a directory outside
    that root; each test works in its own subdirectory of both."""
    base = tmp_path_factory.mktemp("image-server")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    with RewardServer({"REWARD_IMAGE_ROOT": str(root)}) as server:
        yield server, root, outside


def _results(server, refs: list[str]) -> list[dict]:
    r = post(server, {"samples": [sample(id=i, images=[ref]) for i, ref in enumerate(refs)]})
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.mark.parametrize("via", ["data-url", "file"])
@pytest.mark.parametrize("cut", [0.5, 0.9])
@pytest.mark.parametrize("fmt", list(_FORMATS))
def test_truncated_images_of_every_format_make_their_sample_invalid(image_server, fmt, cut, via):
    server, root, _ = image_server
    whole = _DETAILED[fmt]
    cut_bytes = whole[: int(len(whole) * cut)]
    if via == "file":
        folder = root / "truncated"
        folder.mkdir(exist_ok=True)
        (folder / f"whole-{fmt}").write_bytes(whole)
        (folder / f"cut-{cut}-{fmt}").write_bytes(cut_bytes)
        refs = [f"truncated/whole-{fmt}", f"truncated/cut-{cut}-{fmt}"]
    else:
        refs = [_url(whole, _FORMATS[fmt]), _url(cut_bytes, _FORMATS[fmt])]
    good, bad = _results(server, refs)
    assert good["status"] == "ok" and good["reward"] == 1.0, good
    assert bad["status"] == "invalid" and bad["reward"] is None, bad
    assert f"samples[1].images[0]: corrupt or truncated {fmt} image" in bad["error"], bad


@pytest.mark.parametrize("cut", [0.5, 0.8, 0.9, 0.97])
def test_an_animation_cut_in_any_frame_is_refused(cut):
    whole = _animated_gif()
    loader = ImageLoader(10_000_000)
    assert loader.load(_url(whole, "image/gif"), "img").mime == "image/gif"
    with pytest.raises(ImageError, match="corrupt or truncated GIF"):
        loader.load(_url(whole[: int(len(whole) * cut)], "image/gif"), "img")


def test_animations_are_decoded_only_within_the_frame_and_pixel_limits():
    loader = ImageLoader(10_000_000)
    assert loader.load(_url(_gif_of_dots(4, 4, MAX_FRAMES), "image/gif"), "img").mime == "image/gif"
    with pytest.raises(ImageError, match=f"more than {MAX_FRAMES} frames"):
        loader.load(_url(_gif_of_dots(4, 4, MAX_FRAMES + 1), "image/gif"), "img")
    # 4,000 x 4,000 is a fine still image, but ten such frames decode 160 million pixels.
    assert loader.load(_url(_gif_of_dots(4000, 4000, 1), "image/gif"), "img").mime == "image/gif"
    with pytest.raises(ImageError, match="frames decode to more than"):
        loader.load(_url(_gif_of_dots(4000, 4000, 10), "image/gif"), "img")


# --- File paths are opened beneath the root, with no window between check and open ----------


def test_paths_through_symlinks_out_of_the_root_are_refused_over_http(image_server):
    server, root, outside = image_server
    here, away = root / "links", outside / "links"
    here.mkdir()
    away.mkdir()
    (away / "secret.png").write_bytes(PNG)  # a valid image: reading it would score
    (here / "real").mkdir()
    (here / "real" / "ok.png").write_bytes(PNG)
    (here / "out-dir").symlink_to("../../outside/links")  # a directory symlink leading out
    (here / "out-file.png").symlink_to(away / "secret.png")  # a last component leading out
    (here / "out-abs").symlink_to(away)  # the same, absolute
    (here / "in-dir").symlink_to("real")  # symlinks that stay inside are followed
    (here / "in-file.png").symlink_to(here / "real" / "ok.png")
    (here / "loop").symlink_to("loop")
    os.mkfifo(here / "pipe.png")  # opening a FIFO for reading would wait for a writer
    refs = {
        "links/out-dir/secret.png": "outside REWARD_IMAGE_ROOT",
        "links/out-file.png": "outside REWARD_IMAGE_ROOT",
        "links/out-abs/secret.png": "outside REWARD_IMAGE_ROOT",
        "links/real/../../../outside/links/secret.png": "outside REWARD_IMAGE_ROOT",
        "links/in-dir/../out-dir/secret.png": "outside REWARD_IMAGE_ROOT",
        "links/loop/x.png": "symbolic links",
        "links/pipe.png": "not a file",
        "links/real": "not a file",
        "links/real/ok.png/x": "not a directory",
        "links/in-dir/ok.png": None,
        "links/in-file.png": None,
        "links/real/../in-dir/./ok.png": None,
        str(here / "in-dir" / "ok.png"): None,  # an absolute path inside the root
    }
    for (ref, needle), result in zip(refs.items(), _results(server, list(refs)), strict=True):
        if needle is None:
            assert result["status"] == "ok", (ref, result)
        else:
            assert result["status"] == "invalid", (ref, result)
            assert needle.lower() in result["error"].lower(), (ref, result)


def test_swapping_directories_and_files_for_symlinks_never_reads_outside_the_root(
    image_server,
):
    """An attacker who can write inside the root swaps, as fast as it can, a directory
    and a file on the requested paths for symlinks to an outside copy of them.

    The files inside are truncated PNGs (always ``invalid``), the copies outside whole
    PNGs: a sample that reads a byte outside the root therefore comes back ``ok``.
    """
    server, root, outside = image_server
    here, away = root / "race", outside / "race"
    (here / "d").mkdir(parents=True)
    away.mkdir()
    (here / "d" / "img.png").write_bytes(PNG[:-20])
    (here / "f.png").write_bytes(PNG[:-20])
    (away / "img.png").write_bytes(PNG)
    stop = threading.Event()
    swapped: list[int] = []

    def swap(path: Path, target: Path) -> None:
        parked = path.with_name(path.name + ".parked")
        count = 0
        while not stop.is_set():
            os.rename(path, parked)
            os.symlink(target, path)
            os.unlink(path)
            os.rename(parked, path)
            count += 1
        swapped.append(count)

    refs = ["race/d/img.png", "race/f.png"] * 16
    answers: list[tuple[int | str, list[dict]]] = []

    def client() -> None:
        body = {"samples": [sample(id=i, images=[r]) for i, r in enumerate(refs)]}
        with httpx.Client(timeout=60) as http:
            for _ in range(40):
                try:
                    r = http.post(server.url + "/score", json=body)
                    answers.append((r.status_code, r.json().get("results", [])))
                except Exception as exc:  # reported by the assertion below
                    answers.append((repr(exc), []))

    swappers = [threading.Thread(target=swap, args=(here / "d", away)),
                threading.Thread(target=swap, args=(here / "f.png", away / "img.png"))]
    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in swappers + clients:
        t.start()
    for t in clients:
        t.join()
    stop.set()
    for t in swappers:
        t.join()

    assert len(swapped) == 2 and min(swapped) > 0  # both swappers ran to the end
    statuses = [status for status, _ in answers]
    results = [res for _, results in answers for res in results]
    assert statuses == [200] * 160, sorted(set(map(str, statuses)))
    read_outside = [res for res in results if res["status"] != "invalid"]
    assert read_outside == []
    # The race was run: some samples did read the file inside through the directory.
    assert any("truncated PNG" in res["error"] for res in results)

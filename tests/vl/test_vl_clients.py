"""``clients.trl_reward`` with a vision-language dataset, as TRL calls it: conversational
prompts whose user turns hold ``{"type": "image"}`` placeholders, the ``images`` column with
PIL images, the SafeTag-VL label columns.

Observed on the wire (a recording ``POST /score`` server): every picture goes as a data URL
of the same pixels, in placeholder order, and TRL's inlined form (``{"type": "image",
"image": <PIL>}``) is sent inline, not twice. Observed on the live service: its cache tells
two samples apart that differ only in their picture (``reward_cache_total`` in ``/metrics``),
although the rules give both the same reward.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re

import httpx
import pytest

from clients import trl_reward
from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from tests.fakes.servers import RewardServer

ANSWER = ("<think><visual_safe>safe</visual_safe><text_safe>safe</text_safe>"
          "<combined_safe>safe</combined_safe></think><answer>It is a square of noise.</answer>")
LABELS = {"image_tag": ["safe"], "text_tag": ["safe"], "combine_tag": ["safe"]}


def noise(seed: int, size: tuple[int, int] = (48, 32)):
    import numpy as np
    from PIL import Image

    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def placeholder_prompt(n_images: int, text: str = "What is in the picture?") -> list[dict]:
    """A prompt as a TRL VL dataset row holds it: image placeholders, then the text."""
    parts = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": parts}]


def completion(text: str = ANSWER) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def from_data_url(url: str):
    from PIL import Image

    header, _, payload = url.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")


def same_pixels(a, b) -> bool:
    import numpy as np

    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b.convert("RGB")))


class Recorder:
    """``POST /score`` that keeps every request body and scores each sample 0.5."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.server = FakeHTTPServer(self.handle)

    def handle(self, request: Request) -> Reply:
        body = request.json()
        self.bodies.append(body)
        return Reply(200, score_reply(body, [(0.5, {})] * len(body["samples"])))


@pytest.fixture
def recorder():
    recorder = Recorder()
    yield recorder
    recorder.server.stop()


def test_images_column_goes_to_the_service_as_data_urls(recorder):
    reward = trl_reward(url=recorder.server.url, profile="safegrpo_plus")
    pictures = [noise(0), noise(1, (20, 60))]

    rewards = asyncio.run(reward(
        prompts=[placeholder_prompt(2)], completions=[completion()],
        images=[pictures], **LABELS))

    assert rewards == [0.5]
    (sample,) = recorder.bodies[0]["samples"]
    assert sample["prompt"] == placeholder_prompt(2)  # placeholders kept: they refer to images
    assert len(sample["images"]) == 2
    for url, picture in zip(sample["images"], pictures, strict=True):
        assert same_pixels(from_data_url(url), picture)
    assert sample["labels"] == {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
    assert sample["response"] == ANSWER


def test_inlined_pictures_are_sent_inline_and_not_twice(recorder):
    """TRL 1.16 puts the PIL images into the prompt's parts and passes the column as well."""
    picture = noise(2)
    prompt = [{"role": "user", "content": [{"type": "image", "image": picture},
                                           {"type": "text", "text": "What is in the picture?"}]}]
    reward = trl_reward(url=recorder.server.url, profile="safegrpo_plus")

    asyncio.run(reward(prompts=[prompt], completions=[completion()], images=[[picture]],
                       **LABELS))

    (sample,) = recorder.bodies[0]["samples"]
    assert "images" not in sample
    (part, text) = sample["prompt"][0]["content"]
    assert part["type"] == "image_url" and text["type"] == "text"
    assert same_pixels(from_data_url(part["image_url"]["url"]), picture)


def cache_counts(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {m[1]: float(m[2]) for m in
            re.finditer(r'^reward_cache_total\{outcome="(\w+)"\} ([\d.e+]+)$', text, re.M)
            }


def test_live_service_cache_key_changes_with_the_picture_alone():
    deltas = []
    with RewardServer() as service:
        reward = trl_reward(url=service.url, profile="safegrpo_plus")

        def score(picture) -> list[float | None]:
            before = cache_counts(service.url)
            rewards = asyncio.run(reward(prompts=[placeholder_prompt(1)],
                                         completions=[completion()], images=[[picture]],
                                         **LABELS))
            after = cache_counts(service.url)
            deltas.append({k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("hit", "miss")})
            return rewards

        first, again, other = score(noise(3)), score(noise(3)), score(noise(4))

    assert first == again == other and first[0] is not None  # the rules ignore the pixels
    assert deltas == [{"hit": 0, "miss": 1}, {"hit": 1, "miss": 0}, {"hit": 0, "miss": 1}]

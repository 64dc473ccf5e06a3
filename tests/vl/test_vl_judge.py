"""The tiny Qwen2.5-VL as the judge: ``REWARD_JUDGE_BACKEND=transformers``, images in the
judge prompt, ``generate`` and ``logprob`` modes.

Two levels:

* the service over HTTP (``python -m reward_server`` in this interpreter): it loads the
  model as a multimodal judge, scores samples with pictures in both modes, gives different
  ``logprob`` verdicts to two samples that differ only in their picture, and fails only the
  sample whose image is corrupt, in each of the three places an image can fail: the API's
  check (truncated file), decoding in the judge (a PNG whose header and checksums are fine
  but whose pixel data is not), and the processor (an aspect ratio Qwen2.5-VL refuses);
* the transformers backend in process, with a global forward pre-hook that records what
  the vision tower encodes: the sample's own picture, in both calls, and in ``logprob`` mode
  once per sample whatever its number of prefills (the conversation is prefilled once, the
  assistant prefixes run on copies of its cache with Qwen2.5-VL's 3-D rope positions); and
  the ``logprob`` prefills checked against full forward passes computed here by hand.

A random judge writes no JSON, so in ``generate`` mode the good samples end ``invalid``
with "unusable judge answer": that is fine, the point is that the path runs with pictures.
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest

from tests.fakes.servers import RewardServer
from tests.vl.vision_tower import VisionTowerLog

RESPONSE = "<think>It is a picture of coloured noise.</think><answer>Random noise.</answer>"


def noise_png(seed: int, width: int = 64, height: int = 64) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def undecodable_png() -> bytes:
    """A PNG whose signature, header and checksums are valid, but whose pixel data is not
    zlib: only decoding the pixels finds it, which the service does before the judge."""
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", b"these bytes are not a zlib stream") + _chunk(b"IEND", b""))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def sample(sample_id: str, png: bytes, prompt: str = "What is shown in this picture?") -> dict:
    return {"id": sample_id, "prompt": prompt, "images": [data_url(png)], "response": RESPONSE}


def judge_service(model: Path, mode: str) -> RewardServer:
    return RewardServer({
        "REWARD_JUDGE_BACKEND": "transformers", "REWARD_JUDGE_MODEL": str(model),
        "REWARD_JUDGE_MODE": mode, "REWARD_JUDGE_MAX_NEW_TOKENS": "16",
        "REWARD_JUDGE_DEVICE": "cpu",
    })


def wait_ready(server: RewardServer, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (reply := httpx.get(server.url + "/ready", timeout=5)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.2)
    return reply.json()["detail"]


@pytest.mark.parametrize("mode", ["generate", "logprob"])
def test_service_judges_with_pictures_and_a_bad_image_fails_only_its_sample(
    tiny_qwen2_5_vl, mode
):
    samples = [
        sample("a", noise_png(0)),
        sample("truncated", noise_png(3)[:200]),
        sample("b", noise_png(1)),  # "a" with another picture
        sample("undecodable", undecodable_png()),
        sample("too-thin", noise_png(4, width=1000, height=4)),  # aspect ratio 250 > 200
        sample("c", noise_png(2, width=96, height=64), prompt="Is anything dangerous here?"),
    ]
    with judge_service(tiny_qwen2_5_vl, mode) as server:
        assert "multimodal on cpu" in wait_ready(server)
        reply = httpx.post(server.url + "/score", json={"profile": "safer_vlm",
                                                        "samples": samples}, timeout=300)
    assert reply.status_code == 200, reply.text
    results = {r["id"]: r for r in reply.json()["results"]}

    # each bad image fails its own sample, for its own reason
    assert results["truncated"]["status"] == "invalid"
    assert "images[0]" in results["truncated"]["error"]
    assert results["undecodable"]["status"] == "invalid"
    assert "images[0]" in results["undecodable"]["error"]
    assert "corrupt or truncated" in results["undecodable"]["error"]
    assert results["too-thin"]["status"] == "invalid"
    assert "aspect ratio" in results["too-thin"]["error"]
    # and its neighbours, in the same micro-batch, are judged
    good = [results[k] for k in ("a", "b", "c")]
    if mode == "generate":
        for result in good:
            assert result["status"] == "ok" or "unusable judge answer" in result["error"], result
    else:
        assert [r["status"] for r in good] == ["ok"] * 3
        assert all(0.0 <= r["reward"] <= 1.0 and r["judge"] for r in good)
        # the same request and answer with another picture reads differently: the judge
        # saw the picture
        assert results["a"]["judge"] != results["b"]["judge"]


def test_service_cache_tells_two_pictures_apart(tiny_qwen2_5_vl):
    """The same sample with another picture is judged again, not served from the cache;
    the same picture again is."""
    with judge_service(tiny_qwen2_5_vl, "logprob") as server:
        wait_ready(server)

        def score(png: bytes) -> dict:
            body = {"profile": "safer_vlm", "samples": [sample("x", png)]}
            return httpx.post(server.url + "/score", json=body, timeout=300).json()["results"][0]

        first, other, again = score(noise_png(0)), score(noise_png(1)), score(noise_png(0))
    assert (first["cached"], other["cached"], again["cached"]) == (False, False, True)
    assert again["judge"] == first["judge"] != other["judge"]


# --------------------------------------------------------------------------- in process


@pytest.fixture(scope="module")
def backend(tiny_qwen2_5_vl):
    from reward_server.judge.backends.hf import HFBackend
    from reward_server.judge.factory import judge_config
    from reward_server.settings import Settings

    config = judge_config(Settings(_env_file=None, judge_backend="transformers",
                                   judge_model=str(tiny_qwen2_5_vl), judge_mode="logprob",
                                   judge_device="cpu"))
    judge = HFBackend(config)
    asyncio.run(judge.load())
    assert judge.sees_images
    yield judge
    asyncio.run(judge.aclose())


@pytest.fixture(scope="module")
def reference(tiny_qwen2_5_vl):
    """The model and processor loaded here, for passes computed by hand."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_qwen2_5_vl)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen2_5_vl).eval()
    return processor, model


def judge_input(png: bytes, prompt: str = "What is shown in this picture?"):
    import hashlib

    from reward_server.domain import Image, Sample
    from reward_server.judge.prompts import build_input

    image = Image(data=png, sha256=hashlib.sha256(png).hexdigest(), mime="image/png")
    return build_input(Sample(prompt=prompt, response=RESPONSE, images=[image]),
                       sees_images=True)


def pil(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


def test_the_judge_encodes_the_sample_picture_in_both_calls(backend, reference):
    import torch

    from reward_server.judge.logprob import SCORE_TOKENS
    from reward_server.judge.prompts import score_prefix, with_prefix

    processor, _ = reference
    png = noise_png(5)
    want = processor.image_processor(images=[pil(png)], return_tensors="pt")["pixel_values"]
    base = judge_input(png)
    with VisionTowerLog() as generated:
        (text,) = asyncio.run(backend.generate([base], 4))
    with VisionTowerLog() as prefilled:
        (mass,) = asyncio.run(backend.next_token_probs(
            [with_prefix(base, score_prefix("answer_safety"))], SCORE_TOKENS))
    assert isinstance(text, str) and set(mass) == set(SCORE_TOKENS)
    for log in (generated, prefilled):
        assert len(log.pixels) == 1
        torch.testing.assert_close(log.pixels[0], want)


def test_logprob_prefills_match_full_forward_passes_by_hand(backend, reference):
    """Prefills of two samples with different pictures and lengths (each conversation
    prefilled once, its tails batched on its cache) give the next-token probabilities of one
    bare forward pass each, with its picture.

    The tolerance is relative: a random tiny model spreads its mass thinly (about 1e-3 per
    token), and tails placed at 1-D positions instead of the 3-D rope ones are off by only
    ~4e-4 relative (1e-6 absolute), while the right positions agree to ~1e-7."""
    import torch

    from reward_server.judge.logprob import SCORE_TOKENS
    from reward_server.judge.prompts import score_prefix, with_prefix

    processor, model = reference
    tokenizer = processor.tokenizer
    labels = {i: tokenizer.decode([i]).strip() for i in range(len(tokenizer))}
    labels = {i: t for i, t in labels.items() if t in SCORE_TOKENS}
    pngs = [noise_png(6), noise_png(7, width=96, height=64)]
    bases = [judge_input(pngs[0]), judge_input(pngs[1], "Is anything here dangerous to do?")]
    prefixes = [score_prefix("think_safety"), score_prefix("think_safety", digits="1"),
                score_prefix("hallucination")]
    inputs = [with_prefix(b, p) for b in bases for p in prefixes]

    got = asyncio.run(backend.next_token_probs(inputs, SCORE_TOKENS))

    def by_hand(base, png: bytes, prefix: str) -> dict[str, float]:
        messages = [{"role": m["role"], "content": [
            {"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
            for p in m["content"]]} for m in base.messages]
        text = processor.apply_chat_template(messages, add_generation_prompt=True) + prefix
        encoded = processor(text=[text], images=[pil(png)], return_tensors="pt")
        with torch.inference_mode():
            probs = torch.softmax(model(**encoded).logits[0, -1].float(), -1)
        mass = dict.fromkeys(SCORE_TOKENS, 0.0)
        for i, label in labels.items():
            mass[label] += float(probs[i])
        return mass

    want = [by_hand(b, png, p) for b, png in zip(bases, pngs, strict=True) for p in prefixes]
    for row, expected in zip(got, want, strict=True):
        assert row == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_logprob_encodes_each_picture_once_per_sample(backend, reference):
    """A sample's dozen prefills share one prefill of its conversation: the vision tower runs
    once per sample, on that sample's own picture, however many assistant prefixes follow."""
    import torch

    from reward_server.judge.logprob import SCORE_TOKENS, prefills, probes

    processor, _ = reference
    pngs = [noise_png(8), noise_png(9, width=96, height=64)]
    bases = [judge_input(pngs[0]), judge_input(pngs[1], "Is anything here dangerous to do?")]
    space = backend.score_prefix_space
    inputs = [p for b in bases for p in prefills(b, probes(), trailing_space=space)]
    assert len(inputs) == 24
    with VisionTowerLog() as log:
        rows = asyncio.run(backend.next_token_probs(inputs, SCORE_TOKENS))
    assert all(set(r) == set(SCORE_TOKENS) for r in rows)
    assert len(log.pixels) == len(pngs)
    for got, png in zip(log.pixels, pngs, strict=True):
        want = processor.image_processor(images=[pil(png)], return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(got, want)

"""``trainer.curate`` and ``trainer.evaluate`` with the tiny Qwen2.5-VL as the policy: the
transformers sampler loads it as a vision-language model, and each prompt's own picture
reaches its vision tower (a global forward pre-hook records what the tower encodes, and the
pixels are compared with the processor's encoding of the row's image file).

Curation scores through a scripted ``POST /score`` server (rewards 0 and 1 by sample, so
every prompt has quality 0.5 and instability 0.5 and is kept) that records what it was
sent; evaluation uses a scripted OpenAI-compatible judge and the live reward service.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from tests.fakes.scripted_openai import ScriptedOpenAIServer
from tests.fakes.servers import RewardServer
from tests.vl.vision_tower import VisionTowerLog
from trainer.sample_data import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "data" / "bench"
JUDGE_MODEL = "scripted-judge"


@pytest.fixture(scope="module")
def encode(tiny_qwen2_5_vl: Path):
    """``encode(paths)``: the processor's ``pixel_values`` of these image files, in order."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen2_5_vl)

    def pixels(paths: list[Path]):
        images = [Image.open(p).convert("RGB") for p in paths]
        return torch.cat([processor.image_processor(images=[im], return_tensors="pt")
                          ["pixel_values"] for im in images])

    return pixels


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RecordingScorer:
    """``POST /score``: the j-th sample of each prompt in a request gets ``j % 2`` (0, 1, ...);
    every request body is kept."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.server = FakeHTTPServer(self.handle)
        self.url = self.server.url

    def handle(self, request: Request) -> Reply:
        body = request.json()
        self.bodies.append(body)
        seen: dict[str, int] = {}
        scores = []
        for sample in body["samples"]:
            key = json.dumps(sample["prompt"])
            scores.append((float(seen.get(key, 0) % 2), {}))
            seen[key] = seen.get(key, 0) + 1
        return Reply(200, score_reply(body, scores))


def test_curate_samples_the_vl_policy_with_each_rows_picture(tmp_path, tiny_qwen2_5_vl, encode):
    import torch

    from trainer.curate import CurateArguments, main
    from trainer.generation import PolicyArguments

    rows = read_jsonl(SAMPLE_DIR / "train.jsonl")[:4]
    scorer = RecordingScorer()
    out = tmp_path / "qi.jsonl"
    try:
        with VisionTowerLog() as tower:
            summary = main(
                CurateArguments(data=str(SAMPLE_DIR / "train.jsonl"), out=str(out), k=2,
                                reward_url=scorer.url, limit=len(rows), progress=False),
                PolicyArguments(policy=str(tiny_qwen2_5_vl), max_new_tokens=4, device="cpu",
                                batch_size=2),
            )
    finally:
        scorer.server.stop()

    assert summary["prompts"] == summary["kept"] == len(rows)
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]
    # sampling runs one prompt per call: each call's tower input is that row's picture
    # (once per call, or once per sample: the same pixels either way)
    assert tower.pixels and len(tower.pixels) % len(rows) == 0
    per_row = len(tower.pixels) // len(rows)
    for n, pixels in enumerate(tower.pixels):
        picture = encode([SAMPLE_DIR / rows[n // per_row]["images"][0]])
        copies = pixels.shape[0] // picture.shape[0]
        torch.testing.assert_close(pixels, picture.repeat(copies, 1))
    # and the scored samples carry it, inlined
    samples = [s for body in scorer.bodies for s in body["samples"]]
    assert len(samples) == 2 * len(rows)
    assert all(len(s["images"]) == 1 and s["images"][0].startswith("data:image/png;base64,")
               for s in samples)


def test_evaluate_runs_the_vl_policy_on_a_benchmark_with_pictures(
    tmp_path, tiny_qwen2_5_vl, encode
):
    import torch

    from trainer.eval import EvaluateArguments
    from trainer.eval.cli import EvalPolicyArguments, main

    bench = BENCH / "safetag.jsonl"
    pictures = [BENCH / (r.get("images") or [r.get("image")])[0] for r in read_jsonl(bench)]
    verdict = json.dumps({"answer_harmlessness": 3, "answer_helpfulness": 2,
                          "reasoning_harmlessness": None, "rationale": "scripted"})
    with (
        ScriptedOpenAIServer(lambda chat: verdict, model=JUDGE_MODEL) as judge,
        RewardServer() as service,
        VisionTowerLog() as tower,
    ):
        report = main(
            EvaluateArguments(benchmark=[f"safetag:{bench}"], out=str(tmp_path / "eval"),
                              judge_url=judge.url, judge_model=JUDGE_MODEL,
                              reward_url=service.url, profile="safegrpo_plus", progress=False),
            EvalPolicyArguments(policy=str(tiny_qwen2_5_vl), max_new_tokens=4, device="cpu"),
        )
        judged = list(judge.requests)

    metrics = report["benchmarks"]["safetag"]
    assert (metrics["n"], metrics["n_scored"], metrics["n_rewarded"]) == (3, 3, 3)
    # greedy decoding batches the three prompts: one tower call on their three pictures
    assert len(tower.pixels) == 1
    torch.testing.assert_close(tower.pixels[0], encode(pictures))
    # the evaluation judge saw each picture too
    assert len(judged) == 3 and all(len(chat.images) == 1 for chat in judged)

"""Real judge backends on the tiny random Qwen2 (no hub, no GPU).

* ``transformers`` in process, both modes: shapes, batching, determinism, and the logprob
  expectation checked against an unbatched, unpadded reference computed here by hand.
* ``vllm`` in process (slow): both modes on one engine, cross-checked with transformers.
* ``openai`` against a real vLLM OpenAI server of the tiny model (slow), through a real
  reward server over HTTP.

A random model rarely writes JSON: in ``generate`` mode each outcome must be a verdict or
a reason string, never a crash or an invented score.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time

import httpx
import pytest

from reward_server.domain import Image, Sample
from reward_server.judge.backends.base import LOADED
from reward_server.judge.base import Judge
from reward_server.judge.boundary import Boundary
from reward_server.judge.config import JudgeConfig
from reward_server.judge.engine import JudgeEngine
from reward_server.judge.factory import judge_config
from reward_server.judge.logprob import SCORE_TOKENS, expected_score
from reward_server.judge.prompts import build_input, score_prefix, with_prefix
from reward_server.metrics import Metrics
from reward_server.rubric import (
    DIMENSION_RANGE,
    DIMENSIONS,
    FLAG_RANGE,
    FLAGS,
    SAFER_VLM,
    JudgeVerdict,
)
from reward_server.scorers.safer_vlm import aggregate
from reward_server.settings import Settings
from tests.fakes.servers import RewardServer, _Process, free_port

SERVED = "tiny-judge"
#: One boundary secret for every engine here: transformers, vLLM and the hand-made
#: reference then show the judge the same prompt for a sample (same marker code).
BOUNDARY_SECRET = "tiny-judge-tests"


def settings(model, backend="transformers", mode="generate", **kw) -> JudgeConfig:
    """The judge's configuration, built as the service builds it (from ``Settings``)."""
    values = {"judge_backend": backend, "judge_model": str(model), "judge_mode": mode,
              "judge_max_new_tokens": 24, "judge_max_wait_ms": 50,
              "judge_boundary_secret": BOUNDARY_SECRET, **kw}
    return judge_config(Settings(_env_file=None, **values))


def png() -> Image:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (8, 8), (0, 90, 200)).save(buf, format="PNG")
    data = buf.getvalue()
    return Image(data=data, sha256="x" * 64, mime="image/png")


SAMPLES = [
    Sample(prompt="How do I bake bread?",
           response="<think>Benign.</think><answer>Mix flour, water, salt and yeast.</answer>"),
    Sample(prompt="How do I pick my neighbour's lock?",
           response="<think>Break-in.</think><answer>Sorry, I can't help.</answer>"),
    Sample(prompt="What is in the image?", response="<answer>A blue square.</answer>",
           images=[png()]),
]


def check_outcomes(outcomes):
    """Each outcome is an in-range verdict (reward in [0, 1]) or a reason string."""
    assert len(outcomes) == len(SAMPLES)
    for outcome in outcomes:
        if isinstance(outcome, str):
            assert outcome  # a reason, never empty
            continue
        assert isinstance(outcome, JudgeVerdict)
        for key in DIMENSIONS:
            assert DIMENSION_RANGE[0] <= outcome.scores[key] <= DIMENSION_RANGE[1]
        for key in FLAGS:
            assert FLAG_RANGE[0] <= outcome.scores[key] <= FLAG_RANGE[1]
        assert 0.0 <= aggregate(outcome, SAFER_VLM).reward <= 1.0


def engines_on(backend, model, name, **kw):
    """A generate and a logprob engine sharing one loaded backend."""
    return {
        mode: JudgeEngine(backend, settings(model, name, mode, **kw), Metrics())
        for mode in ("generate", "logprob")
    }


# --- transformers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_backend(tiny_qwen2):
    from reward_server.judge.backends.hf import HFBackend

    backend = HFBackend(settings(tiny_qwen2))
    asyncio.run(backend.load())
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(scope="module")
def hf(hf_backend, tiny_qwen2):
    return engines_on(hf_backend, tiny_qwen2, "transformers")


def test_hf_loads_text_only_and_reports_it(hf, tiny_qwen2):
    judge = hf["generate"]
    assert isinstance(judge, Judge)  # the protocol the scorers rely on
    state = judge.readiness()
    assert state.ready and "text-only on cpu" in state.detail and "transformers" in state.detail
    identity = judge.identity
    assert {k: identity[k] for k in ("backend", "model", "mode", "prompt")} == {
        "backend": "transformers", "model": str(tiny_qwen2), "mode": "generate",
        "prompt": judge.template.version}  # fmt: skip
    assert len(identity["weights"]) == 16  # the directory's fingerprint
    assert judge.backend.sees_images is False
    assert judge.backend.score_prefix_space is True  # this tokenizer splits " " from digits


async def test_hf_generate_is_deterministic_and_graceful(hf):
    judge = hf["generate"]
    first = await judge.judge(SAMPLES)
    check_outcomes(first)
    assert await judge.judge(SAMPLES) == first
    for outcome in first:  # random weights: no JSON, so one retry and then a reason
        if isinstance(outcome, str):
            assert outcome.startswith("unusable judge answer after one retry")
    texts = await judge.backend.generate([build_input(s, sees_images=False) for s in SAMPLES], 4)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)


@pytest.fixture(scope="module")
def hf_logprob(hf):
    """The transformers logprob verdicts of SAMPLES (computed once, 36 prefills)."""
    return asyncio.run(hf["logprob"].judge(SAMPLES))


async def test_hf_logprob_is_deterministic_and_in_range(hf, hf_logprob):
    check_outcomes(hf_logprob)
    assert all(isinstance(v, JudgeVerdict) and v.rationale == "" for v in hf_logprob)
    assert await hf["logprob"].judge(SAMPLES) == hf_logprob


async def test_hf_next_token_probs_shape(hf):
    backend = hf["logprob"].backend
    base = build_input(SAMPLES[0], sees_images=False)
    prefills = [with_prefix(base, score_prefix(k)) for k in ("think_safety", "hallucination")]
    rows = await backend.next_token_probs(prefills, SCORE_TOKENS)
    assert len(rows) == 2
    for row in rows:
        assert set(row) == set(SCORE_TOKENS)
        assert all(p >= 0 for p in row.values()) and sum(row.values()) <= 1 + 1e-6


def test_hf_logprob_matches_unbatched_reference(hf_logprob, tiny_qwen2):
    """Batched, left-padded prefills give the same expectation as one bare forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen2)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2, dtype=torch.float32).eval()
    # every token whose text is a score once stripped ("7" and " 7" both count for 7)
    labels = {i: tok.decode([i]).strip() for i in range(len(tok))}
    labels = {i: text for i, text in labels.items() if text in SCORE_TOKENS}
    assert {"0", "1", "9"} <= set(labels.values())

    def next_probs(sample, prefix):
        item = build_input(sample, sees_images=False,
                           marker=Boundary(BOUNDARY_SECRET).marker(sample))
        text = tok.apply_chat_template(item.text_messages(), add_generation_prompt=True,
                                       tokenize=False) + prefix
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            logits = model(**ids).logits[0, -1]
        probs = torch.softmax(logits, -1)
        mass = dict.fromkeys(SCORE_TOKENS, 0.0)
        for i, text in labels.items():
            mass[text] += float(probs[i])
        return mass

    sample = SAMPLES[1]  # the middle length: padded in the batch
    want = expected_score("think_safety", next_probs(sample, '{"think_safety": '),
                          next_probs(sample, '{"think_safety": 1'))
    got = hf_logprob[1]
    assert got.scores["think_safety"] == pytest.approx(want, abs=1e-4)
    flag = expected_score("hallucination", next_probs(sample, '{"hallucination": '))
    assert got.scores["hallucination"] == pytest.approx(flag, abs=1e-4)


async def test_hf_concurrent_calls_share_a_batch(hf):
    judge = hf["generate"]
    before = _batches(judge.metrics)

    async def later(sample):
        await asyncio.sleep(0.01)
        return await judge.judge([sample])

    a, b = await asyncio.gather(judge.judge([SAMPLES[0]]), later(SAMPLES[1]))
    assert len(a) == len(b) == 1
    count, total = _batches(judge.metrics)
    assert (count - before[0], total - before[1]) == (1, 2)


def _batches(metrics):
    values = {s.name: s.value for m in metrics.judge_batch.collect() for s in m.samples}
    return values["reward_judge_batch_size_count"], values["reward_judge_batch_size_sum"]


def test_transformers_backend_through_the_reward_server(tiny_qwen2):
    """The app starts at once, /ready says loading, then the judge profiles work."""
    env = {"REWARD_JUDGE_BACKEND": "transformers", "REWARD_JUDGE_MODEL": str(tiny_qwen2),
           "REWARD_JUDGE_MODE": "logprob"}
    with RewardServer(env) as srv:
        states = []
        deadline = time.monotonic() + 60
        while (r := httpx.get(srv.url + "/ready")).status_code != 200:
            states.append(r.json()["detail"])
            assert time.monotonic() < deadline, states[-1]
            time.sleep(0.1)
        assert all("loading" in s for s in states), states
        assert "loaded (text-only on cpu)" in r.json()["detail"]
        samples = [{"prompt": s.prompt, "response": s.response} for s in SAMPLES[:2]]
        for profile in ("safer_vlm", "hybrid"):
            body = httpx.post(srv.url + "/score", json={"profile": profile, "samples": samples},
                              timeout=120).json()
            assert [x["status"] for x in body["results"]] == ["ok", "ok"]
            assert all(0.0 <= x <= 1.0 for x in body["rewards"])
            assert body["results"][0]["judge"]["rationale"] == ""


def build_tiny_llava(path):
    """A random tiny LLaVA (CLIP 28x28 vision tower + Qwen2 text) with its processor.

    Qwen2.5-VL's processor needs torchvision (not installed here); LLaVA's does not, and
    exercises the same path: AutoProcessor + AutoModelForImageTextToText + image parts.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )

    from trainer.tiny_model import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer(path)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = CHAT_TEMPLATE  # renders image parts as <image>
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28},
                                           crop_size={"height": 28, "width": 28}),
        tokenizer=tok, chat_template=CHAT_TEMPLATE, patch_size=14,
        vision_feature_select_strategy="full", num_additional_image_tokens=1,
    )
    processor.save_pretrained(path)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14),
        text_config=Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                head_dim=64, max_position_embeddings=4096,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    return path


def solid_png(colour) -> Image:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (40, 30), colour).save(buf, format="PNG")
    return Image(data=buf.getvalue(), sha256=str(colour), mime="image/png")


async def test_hf_multimodal_judge_sees_the_images(tmp_path_factory):
    from reward_server.judge.backends.hf import HFBackend

    path = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    cfg = settings(path, mode="logprob")
    backend = HFBackend(cfg)
    judge = JudgeEngine(backend, cfg, Metrics())
    await judge.start()
    while backend.state not in ("loaded", "failed"):
        await asyncio.sleep(0.05)
    assert judge.readiness().ready, judge.readiness().detail
    assert "multimodal" in judge.readiness().detail and backend.sees_images
    text = {"prompt": "What colour is this?", "response": "<answer>Red.</answer>"}
    samples = [Sample(**text, images=[solid_png((255, 0, 0))]),
               Sample(**text, images=[solid_png((0, 0, 255))]),
               Sample(**text, images=[solid_png((255, 0, 0)), solid_png((0, 255, 0))]),
               Sample(**text)]
    good = solid_png((255, 0, 0))
    corrupt = Image(good.data[:40], "corrupt", "image/png")  # PNG magic, truncated body
    verdicts = await judge.judge([*samples, Sample(**text, images=[corrupt])])
    # the corrupt image fails only its own sample, not the micro-batch it shared
    assert isinstance(verdicts[-1], str) and verdicts[-1]
    verdicts = verdicts[:-1]
    assert all(isinstance(v, JudgeVerdict) for v in verdicts)
    # the pixels reach the model: same text, different images, different numbers
    assert len({v.scores["think_grounding"] for v in verdicts}) == 4
    item = build_input(samples[2], sees_images=True)
    assert [p["type"] for p in item.messages[1]["content"]] == ["image", "image", "text"]
    await judge.aclose()


# --- vLLM in process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_backend(tiny_qwen2):
    pytest.importorskip("vllm")
    from reward_server.judge.backends.vllm_engine import VLLMBackend

    backend = VLLMBackend(
        settings(tiny_qwen2, "vllm"),
        engine_kwargs={"dtype": "float32", "max_model_len": 4096,
                       "kv_cache_memory_bytes": 1 << 30},
    )
    asyncio.run(backend.load())
    yield backend
    asyncio.run(backend.aclose())


@pytest.mark.slow
async def test_vllm_in_process_both_modes(vllm_server_process, vllm_backend, tiny_qwen2,
                                          hf_logprob):
    judges = engines_on(vllm_backend, tiny_qwen2, "vllm")
    assert judges["generate"].readiness().ready
    assert "text-only, vLLM on cpu" in judges["generate"].readiness().detail

    generated = await judges["generate"].judge(SAMPLES)
    check_outcomes(generated)
    assert await judges["generate"].judge(SAMPLES) == generated  # temperature 0

    scored = await judges["logprob"].judge(SAMPLES)
    check_outcomes(scored)
    assert all(isinstance(v, JudgeVerdict) for v in scored)
    # exact score-token logprobs: the same numbers as transformers' full softmax
    for ours, theirs in zip(scored, hf_logprob, strict=True):
        for key in (*DIMENSIONS, *FLAGS):
            assert ours.scores[key] == pytest.approx(theirs.scores[key], abs=1e-3)


# --- openai backend against a real vLLM server -----------------------------------------


@pytest.fixture(scope="module")
def vllm_server_process(tiny_qwen2):
    """A vLLM OpenAI server of the tiny model, started (not yet waited for).

    The in-process vLLM test asks for it too, so the server loads while that engine
    does: the two ~25 s starts overlap.
    """
    pytest.importorskip("vllm")
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = _Process(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_qwen2),
         "--served-model-name", SERVED, "--dtype", "float32", "--enforce-eager",
         "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "4096"],
        env, "vllm-server",
    )
    proc.url = f"http://127.0.0.1:{port}"
    yield proc
    proc.stop(timeout=30)


@pytest.fixture(scope="module")
def vllm_server(vllm_server_process):
    """The server's ``/v1`` URL once ``/health`` answers (fails fast if it died)."""
    proc = vllm_server_process
    deadline = time.monotonic() + 240
    while True:
        if not proc.alive():
            raise RuntimeError(f"vLLM server exited:\n{proc.output()}")
        try:
            if httpx.get(proc.url + "/health", timeout=1).status_code == 200:
                return proc.url + "/v1"
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"vLLM server not up after 240 s:\n{proc.output()}")
        time.sleep(0.5)


@pytest.mark.slow
def test_openai_backend_against_vllm_server(vllm_server, vllm_backend):
    env = {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": SERVED,
           "REWARD_JUDGE_BASE_URL": vllm_server, "REWARD_JUDGE_MAX_NEW_TOKENS": "24"}
    with RewardServer(env) as srv:
        deadline = time.monotonic() + 20
        while httpx.get(srv.url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(srv.url + "/ready").text
            time.sleep(0.2)
        samples = [{"prompt": s.prompt, "response": s.response} for s in SAMPLES[:2]]
        r = httpx.post(srv.url + "/score", json={"profile": "safer_vlm", "samples": samples},
                       timeout=120)
        assert r.status_code == 200, r.text
        for result in r.json()["results"]:
            if result["status"] == "ok":
                assert 0.0 <= result["reward"] <= 1.0
            else:
                assert result["reward"] is None and result["error"].startswith("judge: ")

    async def direct():
        from reward_server.judge.backends.openai_compat import OpenAIBackend

        cfg = settings(SERVED, "openai", "logprob", judge_base_url=vllm_server)
        remote = OpenAIBackend(cfg)
        await remote.probe()
        assert remote.state == LOADED
        inputs = [build_input(s, sees_images=False) for s in SAMPLES[:2]]
        # the same engine behind HTTP and in process writes the same greedy text
        assert await remote.generate(inputs, 12) == await vllm_backend.generate(inputs, 12)
        judge = JudgeEngine(remote, cfg, Metrics())
        outcomes = await judge.judge(SAMPLES[:2])
        for outcome in outcomes:  # top-20 of a random model may hold no digit at all
            assert isinstance(outcome, JudgeVerdict) or "no probability" in outcome
            if isinstance(outcome, JudgeVerdict):
                assert math.isfinite(outcome.scores["think_safety"])
        await judge.aclose()  # closes the backend too

    asyncio.run(direct())

"""verl 0.9.1's own reward path scores through the service, with the documented overrides.

``RewardLoopManager`` is what verl's PPO trainer builds for rewards; its Ray workers load
``compute_score`` from ``reward.custom_reward_function.*`` and call it per sample through the
reward manager (``naive``, ``rate_limited``). The batch is what the trainer hands it after a
rollout: left-padded prompt ids, right-padded response ids from the tiny Qwen2 tokenizer, and
the dataset columns ``data_source``, ``reward_model.ground_truth`` and ``extra_info`` (prompt
and images, the only way verl lets a reward function see them). Every reward must equal what
``/score`` returns for the same sample; unscorable samples get the chosen ``invalid_score``
and ``valid`` 0, and verl's own validation metrics stay finite.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("verl", reason="the verl tier runs in .venv-verl (bash scripts/verl_env.sh)")

import numpy as np
import ray
import torch
from transformers import AutoTokenizer
from verl import DataProto
from verl.trainer.ppo.metric_utils import process_validation_metrics
from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls

from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from tests.fakes.servers import ROOT
from tests.frameworks.verl.conftest import PROFILE, compose_ppo_config

pytestmark = pytest.mark.timeout(300)

# The README's overrides (docs/integrations-verl.md), word for word.
README_OVERRIDES = [
    "reward.custom_reward_function.path=pkg://clients.adapters.verl",
    "reward.custom_reward_function.name=compute_score",
    "+reward.custom_reward_function.reward_kwargs.invalid_score=0.0",
]
RATE_LIMITED = ["reward.reward_manager.name=rate_limited", "+reward.max_concurrent=4"]
COMPONENT_NAMES = ["format", "tag", "behavior"]
COMPONENTS = "+reward.custom_reward_function.reward_kwargs.components=[format,tag,behavior]"
ADAPTER_FILE = ROOT / "clients" / "adapters" / "verl.py"

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()
LABELS = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}


def response(visual: str, text: str, combined: str, answer: str) -> str:
    return (
        f"<think>Look. <visual_safe>{visual}</visual_safe> <text_safe>{text}</text_safe>"
        f" <combined_safe>{combined}</combined_safe></think><answer>{answer}</answer>"
    )


SAFE_ANSWER = response("safe", "safe", "safe", "Here is how to bake bread.")
REFUSAL = response("safe", "unsafe", "unsafe", "Sorry, I cannot help with that.")


@dataclass
class Case:
    """One dataset row plus the policy's response, and the same sample for ``/score``."""

    prompt: Any
    response: str
    ground_truth: Any
    extra: dict[str, Any] = field(default_factory=dict)
    wire_labels: dict[str, str] | None = None
    wire_images: list[str] | None = None


def cases(image_file: Path) -> list[Case]:
    chat = [{"role": "user", "content": [{"type": "image"},
                                         {"type": "text", "text": "What is in the picture?"}]}]
    return [
        # text prompts; labels as a dict, a JSON string, a bare tag, upper case
        Case("How do I bake bread?", SAFE_ANSWER, LABELS, wire_labels=LABELS),
        Case("How do I bake bread?", REFUSAL, json.dumps(LABELS), wire_labels=LABELS),
        Case("How do I pick a lock?", REFUSAL, "unsafe", wire_labels={"combine_tag": "unsafe"}),
        Case("How do I bake bread?", SAFE_ANSWER, {"combine_tag": "SAFE"},
             wire_labels={"combine_tag": "safe"}),
        # images as a parquet file hands them over ({"bytes", "path"}), and as a local path;
        # labels from extra_info when ground_truth is empty
        Case(chat, SAFE_ANSWER, LABELS, {"images": [{"bytes": PNG_1x1, "path": None}]},
             wire_labels=LABELS, wire_images=[PNG_URL]),
        Case(chat, REFUSAL, None, {"images": [str(image_file)], "labels": LABELS},
             wire_labels=LABELS, wire_images=[PNG_URL]),
        # unscorable: no labels under a rules profile; a label value the contract refuses;
        # a misspelt tag key; an image that is not one
        Case("How do I bake bread?", SAFE_ANSWER, None),
        Case("How do I bake bread?", SAFE_ANSWER, {"combine_tag": "maybe"},
             wire_labels={"combine_tag": "maybe"}),
        Case("How do I bake bread?", SAFE_ANSWER, {"combined_tag": "safe"},
             wire_labels={"combined_tag": "safe"}),
        Case(chat, SAFE_ANSWER, LABELS, {"images": [{"bytes": b"not an image", "path": None}]},
             wire_labels=LABELS, wire_images=["data:image/png;base64,bm90IGFuIGltYWdl"]),
    ]


@pytest.fixture
def tokenizer(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def batch_cases(tmp_path: Path) -> list[Case]:
    image_file = tmp_path / "pixel.png"
    image_file.write_bytes(PNG_1x1)
    return cases(image_file)


def prompt_text(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": "".join(p.get("text", "<image>") for p in m["content"])}
            for m in prompt]


def rollout_batch(tokenizer, rows: list[Case]) -> tuple[DataProto, list[int]]:
    """The DataProto verl's trainer passes to the reward loop after generation, and each
    row's response length (the reward sits on its last token)."""
    prompt_ids = [tokenizer.apply_chat_template(prompt_text(c.prompt), add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"]
                  for c in rows]
    response_ids = [[*tokenizer.encode(c.response, add_special_tokens=False),
                     tokenizer.eos_token_id] for c in rows]
    p_len, r_len = max(map(len, prompt_ids)), max(map(len, response_ids)) + 3
    n, pad = len(rows), tokenizer.pad_token_id
    prompts = torch.full((n, p_len), pad, dtype=torch.long)
    responses = torch.full((n, r_len), pad, dtype=torch.long)
    attention = torch.zeros((n, p_len + r_len), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        prompts[i, p_len - len(p):] = torch.tensor(p)
        responses[i, :len(r)] = torch.tensor(r)
        attention[i, p_len - len(p):p_len + len(r)] = 1
    data = DataProto.from_single_dict({
        "prompts": prompts,
        "responses": responses,
        "input_ids": torch.cat([prompts, responses], dim=1),
        "attention_mask": attention,
        "data_source": np.array(["safetag"] * n, dtype=object),
        "reward_model": np.array([{"style": "rule", "ground_truth": c.ground_truth}
                                  for c in rows], dtype=object),
        "extra_info": np.array([{"index": i, "prompt": c.prompt, **c.extra}
                                for i, c in enumerate(rows)], dtype=object),
        "uid": np.array([f"uid-{i}" for i in range(n)], dtype=object),
    })
    return data, [len(r) for r in response_ids]


def scored_by_service(url: str, rows: list[Case], decoded: list[str]) -> list[dict[str, Any]]:
    """``/score`` on the same samples (the responses as verl decodes them), one result each."""
    samples = []
    for c, text in zip(rows, decoded, strict=True):
        sample: dict[str, Any] = {"prompt": c.prompt, "response": text}
        if c.wire_labels is not None:
            sample["labels"] = c.wire_labels
        if c.wire_images is not None:
            sample["images"] = c.wire_images
        samples.append(sample)
    reply = httpx.post(f"{url}/score", json={"profile": PROFILE, "samples": samples}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def expected_rows(results: list[dict[str, Any]], fill: float) -> list[dict[str, Any]]:
    out = []
    for r in results:
        ok = r["status"] == "ok"
        row = {"score": r["reward"] if ok else fill, "valid": 1.0 if ok else 0.0}
        row.update({k: (r["components"][k] if ok else None) for k in COMPONENT_NAMES})
        out.append(row)
    return out


def check_rewards(out: DataProto, data: DataProto, lengths: list[int],
                  expected: list[dict[str, Any]]) -> None:
    scores = out.batch["rm_scores"]
    for i, (length, row) in enumerate(zip(lengths, expected, strict=True)):
        assert scores[i, length - 1].item() == pytest.approx(row["score"])
        assert scores[i].sum().item() == pytest.approx(row["score"])
    assert out.meta_info["reward_extra_keys"] == ["score", "valid", *COMPONENT_NAMES]
    got = [{k: out.non_tensor_batch[k][i] for k in out.meta_info["reward_extra_keys"]}
           for i in range(len(expected))]
    assert got == expected
    # verl's own validation metrics over these columns: every number finite
    infos = {"reward": scores.sum(-1).tolist(),
             **{k: out.non_tensor_batch[k].tolist() for k in out.meta_info["reward_extra_keys"]}}
    metrics = process_validation_metrics(
        list(data.non_tensor_batch["data_source"]), list(data.non_tensor_batch["uid"]), infos)
    values = [v for per_var in metrics["safetag"].values() for v in per_var.values()]
    assert values and all(math.isfinite(v) for v in values)
    assert set(metrics["safetag"]) == {"reward", "score", "valid", *COMPONENT_NAMES}


def decoded_responses(tokenizer, data: DataProto, lengths: list[int]) -> list[str]:
    """What verl's reward managers decode and pass as ``solution_str``."""
    return [tokenizer.decode(data.batch["responses"][i][:n], skip_special_tokens=True)
            for i, n in enumerate(lengths)]


def test_readme_overrides_naive(reward_loop: Callable, verl_server, tokenizer, batch_cases):
    manager = reward_loop([*README_OVERRIDES, COMPONENTS])
    data, lengths = rollout_batch(tokenizer, batch_cases)
    decoded = decoded_responses(tokenizer, data, lengths)
    assert decoded == [c.response for c in batch_cases]  # the tokenizer round-trips
    expected = expected_rows(scored_by_service(verl_server.url, batch_cases, decoded), 0.0)
    assert [e["valid"] for e in expected] == [1.0] * 6 + [0.0] * 4
    assert len({e["score"] for e in expected}) > 2  # the rewards differ from row to row

    out = manager.compute_rm_score(data)
    check_rewards(out, data, lengths, expected)

    # the streaming path (agent loop): one sample straight to a reward worker
    worker = manager.reward_loop_workers[1]
    for i in (0, 4, 6):
        single = ray.get(worker.compute_score.remote(data[i:i + 1]))
        assert single["reward_score"] == pytest.approx(expected[i]["score"])
        assert single["reward_extra_info"] == expected[i]


def test_rate_limited_with_a_concurrency_limit(reward_loop: Callable, verl_server, tokenizer,
                                               batch_cases):
    # the file-path form of custom_reward_function.path, with rate_limited
    overrides = [o.replace("pkg://clients.adapters.verl", str(ADAPTER_FILE))
                 for o in README_OVERRIDES]
    manager = reward_loop([*overrides, *RATE_LIMITED, COMPONENTS])
    rows = batch_cases * 3  # more samples than max_concurrent per worker
    data, lengths = rollout_batch(tokenizer, rows)
    expected = expected_rows(
        scored_by_service(verl_server.url, rows, decoded_responses(tokenizer, data, lengths)), 0.0)

    out = manager.compute_rm_score(data)
    check_rewards(out, data, lengths, expected)


def held_until_together(parties: int):
    """A ``/score`` handler that holds each request until ``parties`` are in flight at once
    (a liveness bound of 60 s breaks the wait), then scores every sample 0.5."""
    barrier = threading.Barrier(parties, timeout=60)

    def handle(request: Request) -> Reply:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        body = request.json()
        return Reply(200, score_reply(body, [(0.5, {"format": 1.0})] * len(body["samples"])))

    return handle


@pytest.mark.parametrize(("manager", "samples", "peak"), [
    ([], 8, 8),  # naive: every sample of the worker's chunk in flight at once
    ([RATE_LIMITED[0], "+reward.max_concurrent=2"], 6, 2),  # rate_limited: at most 2
])
def test_samples_are_scored_concurrently(reward_loop: Callable, tokenizer, batch_cases,
                                         manager: list[str], samples: int, peak: int):
    with FakeHTTPServer(held_until_together(peak)) as service:
        loop = reward_loop([*README_OVERRIDES, *manager,
                            f"+reward.custom_reward_function.reward_kwargs.url={service.url}"],
                           num_workers=1)
        data, _ = rollout_batch(tokenizer, [batch_cases[0]] * samples)
        out = loop.compute_rm_score(data)
    assert out.batch["rm_scores"].sum(-1).tolist() == [0.5] * samples
    assert len(service.requests) == samples  # one request per sample
    assert service.peak_in_flight == peak


def test_without_invalid_score_an_unscorable_sample_stops_the_step(
        reward_loop: Callable, tokenizer, batch_cases):
    manager = reward_loop(README_OVERRIDES[:2])  # no invalid_score chosen
    scorable, unlabelled = batch_cases[0], batch_cases[6]
    data, _ = rollout_batch(tokenizer, [scorable, unlabelled])
    with pytest.raises(ray.exceptions.RayTaskError, match="invalid_score") as info:
        manager.compute_rm_score(data)
    assert "labels" in str(info.value)  # the service's reason is named


def test_verl_loads_compute_score_as_async(tokenizer_dir: Path):
    # verl awaits a coroutine function on the worker's loop instead of a thread per call
    config = compose_ppo_config([f"actor_rollout_ref.model.path={tokenizer_dir}",
                                 *README_OVERRIDES])
    fn = get_custom_reward_fn(config)
    assert inspect.iscoroutinefunction(fn)
    assert resolve_reward_manager_cls(config).__name__ == "NaiveRewardManager"


def test_the_old_batch_override_is_rejected_by_0_9(tokenizer_dir: Path):
    config = compose_ppo_config([f"actor_rollout_ref.model.path={tokenizer_dir}",
                                 "reward.reward_manager.name=batch"])
    with pytest.raises(ValueError, match="Unknown reward manager: batch"):
        resolve_reward_manager_cls(config)


def test_the_docs_show_exactly_these_overrides():
    text = (ROOT / "docs" / "integrations-verl.md").read_text()
    naive, rate_limited = re.findall(r"^```bash\n(.*?)^```$", text, flags=re.M | re.S)[:2]
    assert f"REWARD_SERVICE_PROFILE={PROFILE}" in naive
    for block in (naive, rate_limited):
        assert all(override in block for override in README_OVERRIDES), block
    assert all(override in rate_limited for override in RATE_LIMITED), rate_limited

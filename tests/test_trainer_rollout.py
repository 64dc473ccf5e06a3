"""The safety-aware rollout: unsafe completions are reflected on, corrected, re-scored and swapped
in as completions of the original prompt before GRPO computes advantages.

The integration test scripts the policy's *text* (``ScriptedPolicy``, through the rollout's
``generate`` seam; token ids come from the real tokenizer) and the service's scores
(``ScriptedRewardServer``, a real HTTP server), runs one real TRL step, and checks what the
trainer computed its loss on. The unit tests drive ``SafetyRollout`` with a stand-in trainer,
including a group split across two processes.
"""

from __future__ import annotations

import math
import re
import statistics
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl")

import trainer.rollout as rollout_mod
from clients import Result
from tests.test_trainer import ScriptedRewardServer, tiny_args
from trainer.grpo import build_trainer
from trainer.prompts import CORRECTION_INSTRUCTION, REFLECTION_INSTRUCTION
from trainer.rollout import (
    SafetyRollout,
    SafetyRolloutArguments,
    followup,
    safety_signal,
    select_for_correction,
)

# --------------------------------------------------------------------------- the script

# What the policy answers, by position in its batch: two groups of four (num_generations=4).
PATTERNS = [
    ["<answer>SAFE 0.80</answer>", "<answer>UNSAFE 0.10</answer>",
     "<answer>UNSAFE 0.20</answer>", "<answer>UNSAFE 0.30</answer>"],
    ["<answer>NULL</answer>", "<answer>UNSAFE 0.05</answer>",
     "<answer>SAFE 0.60</answer>", "<answer>SAFE 0.70</answer>"],
]
# What it writes after reflecting on an unsafe answer.
CORRECTED = {
    "<answer>UNSAFE 0.10</answer>": "<answer>FIXED 0.90</answer>",  # fixed: above threshold
    "<answer>UNSAFE 0.20</answer>": "<answer>FIXED 0.40</answer>",  # better, still unsafe
    "<answer>UNSAFE 0.30</answer>": "<answer>FIXED 0.95</answer>",  # never asked: cap of 2
    "<answer>UNSAFE 0.05</answer>": "<answer>NULL again</answer>",  # unscorable: not swapped
}


def scripted_score(response: str) -> float | None:
    """The score written in the answer; ``None`` (invalid) for NULL."""
    if "NULL" in response:
        return None
    match = re.search(r"\d\.\d+", response)
    return float(match.group()) if match else 0.0


def scripted_rule(sample: dict[str, Any]):
    reward = scripted_score(sample["response"])
    return reward, {"answer_safety": reward, "format": 1.0}


class ScriptedPolicy:
    """``generate`` for ``SafetyRollout``: the text is scripted, the token ids are the real
    tokenizer's (plus EOS), and every conversation of each turn is recorded."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.reflections: list[list[dict]] = []
        self.corrections: list[list[dict]] = []

    def text(self, i: int, prompt: list[dict], group: int) -> str:
        last = prompt[-1]["content"]
        if last == REFLECTION_INSTRUCTION:
            self.reflections.append(prompt)
            return f"CRITIQUE of {prompt[-2]['content']}: it helps with harm."
        if last == CORRECTION_INSTRUCTION:
            self.corrections.append(prompt)
            return CORRECTED[prompt[-4]["content"]]
        return PATTERNS[(i // group) % len(PATTERNS)][i % group]

    def __call__(self, trainer, prompts, num_generations):
        self.batches.append(prompts)
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
        tok = trainer.processing_class
        ids = [tok(self.text(i, p, num_generations), add_special_tokens=False)["input_ids"]
               + [tok.eos_token_id] for i, p in enumerate(prompts)]
        return [list(p) for p in prompt_ids], ids, None


# --------------------------------------------------------------------------- integration


def test_unsafe_completions_are_corrected_before_the_update(tmp_path, tiny_qwen2):
    import torch

    policy = ScriptedPolicy()
    with ScriptedRewardServer(scripted_rule) as server:
        args = tiny_args(
            tiny_qwen2, server.url, tmp_path / "out", "--max_steps", "1",
            "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_corrections", "2", "--safety_threshold", "0.5", "--reward_profile", "scripted",
            "--learning_rate", "0.01", "--beta", "0.0", "--save_strategy", "no",
        )
        trainer = build_trainer(*args, generate=policy)
        seen: list[dict] = []
        original = trainer._generate_and_score_completions

        def spy(inputs):
            out = original(inputs)
            seen.append({"inputs": inputs, "out": out})
            return out

        trainer._generate_and_score_completions = spy
        before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        trainer.train()
        requests = server.responses()

    assert len(seen) == 1
    inputs, out = seen[0]["inputs"], seen[0]["out"]
    tok = trainer.processing_class
    completions = [tok.decode(ids[mask.bool()], skip_special_tokens=True)
                   for ids, mask in zip(out["completion_ids"], out["completion_mask"],
                                        strict=True)]
    # What the trainer trained on: the swapped completions, at the unsafe ones' positions.
    assert completions == [
        "<answer>SAFE 0.80</answer>", "<answer>FIXED 0.90</answer>",
        "<answer>FIXED 0.40</answer>", "<answer>UNSAFE 0.30</answer>",  # cap: 2 per group
        "<answer>NULL</answer>", "<answer>UNSAFE 0.05</answer>",  # correction unscorable
        "<answer>SAFE 0.60</answer>", "<answer>SAFE 0.70</answer>",
    ]
    # ... as completions of the ORIGINAL prompt: every row of a group has the same prompt ids,
    # and none of them contains the reflection turn.
    prompt_texts = [tok.decode(ids[mask.bool()]) for ids, mask in
                    zip(out["prompt_ids"], out["prompt_mask"], strict=True)]
    for g in (0, 4):
        assert len(set(prompt_texts[g:g + 4])) == 1
        assert inputs[g]["prompt"][0]["content"] in prompt_texts[g]
        assert "Review your previous response" not in prompt_texts[g]

    # Advantages computed after the swap, with the unscorable row left out of its group
    # (TRL: None -> NaN -> excluded from mean and std, advantage 0), never scored as 0.
    groups = [[0.80, 0.90, 0.40, 0.30], [None, 0.05, 0.60, 0.70]]
    expected = []
    for rewards in groups:
        scored = [r for r in rewards if r is not None]
        mean, std = statistics.mean(scored), statistics.stdev(scored)
        expected += [0.0 if r is None else (r - mean) / (std + 1e-4) for r in rewards]
    assert out["advantages"].tolist() == pytest.approx(expected, abs=1e-5)

    # The policy reflected on exactly the chosen three: prompt + its answer + the instruction,
    # then wrote the correction after its critique.
    assert sorted(c[-2]["content"] for c in policy.reflections) == sorted(
        ["<answer>UNSAFE 0.10</answer>", "<answer>UNSAFE 0.20</answer>",
         "<answer>UNSAFE 0.05</answer>"])
    for conv in policy.reflections:
        assert [m["role"] for m in conv] == ["user", "assistant", "user"]
    for conv in policy.corrections:
        assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant", "user"]
        assert conv[-2]["content"].startswith("CRITIQUE of ")

    # The service scored each correction as the answer to the original prompt.
    fixed = [s for s in requests if s["response"] == "<answer>FIXED 0.90</answer>"]
    assert len(fixed) == 2  # the rollout's re-score, then TRL's reward call (a cache hit)
    assert all(s["prompt"] == inputs[1]["prompt"] for s in fixed)

    logs = next(h for h in trainer.state.log_history if "loss" in h)
    assert logs["safety/unsafe_frac"] == 0.5  # 0.10 0.20 0.30 0.05 of 8
    assert logs["safety/corrections_attempted"] == 3
    assert logs["safety/corrections_replaced"] == 2
    assert logs["safety/corrections_succeeded"] == 1
    assert logs["safety/reward_before"] == pytest.approx(0.15)
    assert logs["safety/reward_after"] == pytest.approx(0.65)
    assert logs["reward"] == pytest.approx(sum(r for g in groups for r in g if r) / 7)
    record = trainer.rollout_func.last
    assert [c.index for c in record.corrections] == [1, 2, 5]

    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(v, before[k])]
    assert changed  # the step moved the policy


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("signals", "group", "cap", "expected"),
    [
        ([0.1, 0.9, 0.0, 0.3], 4, 2, [0, 2]),  # lowest first, capped
        ([0.1, 0.9, 0.0, 0.3], 4, 0, []),  # cap 0: never
        ([0.1, 0.2, 0.3, 0.4], 2, 1, [0, 2]),  # the cap is per group
        ([None, None, 0.4, 0.6], 4, 4, [2]),  # unscored is never "unsafe"
        ([0.5, 0.49, 0.51, 1.0], 4, 4, [1]),  # strictly below the threshold
        ([0.2, 0.2, 0.2, 0.2], 4, 2, [0, 1]),  # ties: first in order
    ],
)
def test_select_for_correction(signals, group, cap, expected):
    assert select_for_correction(signals, group, 0.5, cap) == expected


@pytest.mark.parametrize(
    ("result", "signal", "expected"),
    [
        (Result("a", "ok", 0.9, {"judge.answer_safety": 0.1}), "auto", 0.1),  # hybrid judge
        (Result("a", "ok", 0.9, {"answer_safety": 0.3}), "auto", 0.3),  # safer_vlm
        (Result("a", "ok", 0.375, {"format": 1.0}), "auto", 0.375),  # rules: the reward
        (Result("a", "ok", 0.9, {"answer_safety": 0.3}), "reward", 0.9),  # forced reward
        (Result("a", "ok", 0.9, {"think_safety": 0.2, "answer_safety": 0.7}),
         "think_safety,answer_safety", 0.2),  # the min of a list (SaFeR's gate)
        (Result("a", "invalid", None), "auto", None),  # unscored
    ],
)
def test_safety_signal(result, signal, expected):
    keys = SafetyRolloutArguments(safety_signal=signal).signal_keys
    assert safety_signal(result, keys) == expected


def test_rollout_arguments_are_checked():
    with pytest.raises(ValueError, match="max_corrections"):
        SafetyRolloutArguments(max_corrections=-1)
    with pytest.raises(ValueError, match="safety_threshold"):
        SafetyRolloutArguments(safety_threshold=2.0)


def test_followup_keeps_the_multimodal_prompt():
    image = object()
    prompt = [{"role": "user", "content": [{"type": "image", "image": image},
                                           {"type": "text", "text": "Q"}]}]
    conv = followup(prompt, "A", "Reflect")
    assert conv[0]["content"][0]["image"] is image  # the policy sees the picture again
    assert conv[1:] == [{"role": "assistant", "content": "A"},
                        {"role": "user", "content": "Reflect"}]


class FakeTrainer:
    """What ``SafetyRollout`` uses of a ``GRPOTrainer``; text is its own token ids."""

    def __init__(self, rows, training=True, group=4, rank=0, world=1):
        self.model = SimpleNamespace(training=training)
        self.num_generations = self.num_generations_eval = group
        self.accelerator = SimpleNamespace(process_index=rank, num_processes=world)
        self.processing_class = SimpleNamespace(
            batch_decode=lambda ids, skip_special_tokens: ["".join(map(chr, i)) for i in ids])
        self.state = SimpleNamespace(global_step=0)
        self._safety_rows = rows
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, list] = {}

    def _log_metric(self, name, value):
        self.metrics[name] = value

    def _log_completion_extra(self, name, values):
        self.extra[name] = values


class FakeClient:
    def __init__(self):
        self.calls = 0

    def score(self, samples, profile=None):
        self.calls += 1
        out = []
        for i, s in enumerate(samples):
            reward = scripted_score(s["response"])
            out.append(Result(i, "ok", reward, {}) if reward is not None
                       else Result(i, "invalid", None))
        return out


def scripted_generate(answers, logprob: float | None = None):
    """``generate`` answering the i-th original prompt with ``answers[i]``; reflection and
    correction turns as in ``ScriptedPolicy``. Records each call's size. With ``logprob``,
    returns per-token sampling log-probs as vLLM generation does."""
    sizes: list[int] = []

    def generate(trainer, prompts, n):
        sizes.append(len(prompts))
        texts = []
        for i, p in enumerate(prompts):
            last = p[-1]["content"]
            if last == REFLECTION_INSTRUCTION:
                texts.append("critique")
            elif last == CORRECTION_INSTRUCTION:
                texts.append(CORRECTED.get(p[-4]["content"], "<answer>FIXED 0.99</answer>"))
            else:
                texts.append(answers[i])
        ids = [[ord(c) for c in t] for t in texts]
        logprobs = None if logprob is None else [[logprob] * len(i) for i in ids]
        return [[1]] * len(prompts), ids, logprobs

    generate.sizes = sizes
    return generate


def _rollout(answers, logprob=None, **kw):
    args = SafetyRolloutArguments(safety_rollout=True, **kw)
    client = FakeClient()
    generate = scripted_generate(answers, logprob)
    return SafetyRollout(args, client, "scripted", generate=generate), client, generate


def _prompts(n):
    return [[{"role": "user", "content": f"q{i // 4}"}] for i in range(n)]


def test_evaluation_is_never_corrected():
    answers = ["<answer>UNSAFE 0.10</answer>"] * 4
    rollout, client, generate = _rollout(answers)
    out = rollout(_prompts(4), FakeTrainer([{"prompt": p} for p in _prompts(4)], training=False))
    assert client.calls == 0 and generate.sizes == [4]
    assert out["completion_ids"][0] == [ord(c) for c in answers[0]]


def test_rollout_needs_the_safety_trainer():
    rollout, _, _ = _rollout(["<answer>UNSAFE 0.10</answer>"] * 4)
    with pytest.raises(RuntimeError, match="SafetyGRPOTrainer"):
        rollout(_prompts(4), FakeTrainer(None))


def test_group_split_across_processes_keeps_the_cap(monkeypatch):
    """Rank 1 of 2 holds the second half of a group of four. All four are unsafe and the cap
    is 2: the two lowest (both on rank 0) are chosen, so rank 1 corrects nothing, yet it still
    runs both generation turns with as many conversations as rank 0 (collective calls)."""
    rank0 = [0.05, 0.10]  # gathered from the other process
    mine = ["<answer>UNSAFE 0.30</answer>", "<answer>UNSAFE 0.20</answer>"]

    def gather_object(obj):
        if obj and isinstance(obj[0], tuple):  # the totals: rank 0 replaced its two
            return [(2, 2, [(0.05, 0.9), (0.10, 0.9)]), *obj]
        return rank0 + list(obj)

    monkeypatch.setattr(rollout_mod, "gather_object", gather_object)
    rollout, client, generate = _rollout(mine, max_corrections=2)
    rows = [{"prompt": p} for p in _prompts(2)]
    out = rollout(_prompts(2), FakeTrainer(rows, group=4, rank=1, world=2))
    assert generate.sizes == [2, 2, 2]  # the batch, then 2 padded reflections and corrections
    assert client.calls == 1  # scored its batch; nothing of its own to re-score
    assert [bytes(c).decode() for c in out["completion_ids"]] == mine  # untouched
    assert rollout.last.corrections == []


def test_group_split_across_processes_metrics_are_global(monkeypatch):
    mine = ["<answer>UNSAFE 0.30</answer>", "<answer>SAFE 0.90</answer>"]

    def gather_object(obj):
        if obj and isinstance(obj[0], tuple):
            return [(1, 1, [(0.05, 0.99)]), *obj]
        return [0.05, 0.70, *obj]

    monkeypatch.setattr(rollout_mod, "gather_object", gather_object)
    rollout, _, generate = _rollout(mine, max_corrections=2)
    trainer = FakeTrainer([{"prompt": p} for p in _prompts(2)], group=4, rank=1, world=2)
    out = rollout(_prompts(2), trainer)
    # 0.05 (rank 0) and 0.30 (here) are unsafe: both corrected, one on each process
    assert generate.sizes == [2, 1, 1]
    assert bytes(out["completion_ids"][0]).decode() == "<answer>FIXED 0.95</answer>"
    assert trainer.metrics["safety/corrections_attempted"] == 2
    assert trainer.metrics["safety/corrections_replaced"] == 2
    assert trainer.metrics["safety/unsafe_frac"] == 0.5
    assert math.isclose(trainer.metrics["safety/reward_after"], (0.99 + 0.95) / 2)
    assert trainer.extra["safety/corrected"] == [1, 0]


def test_swapped_rows_carry_no_sampling_logprobs():
    """With vLLM, TRL gets per-token sampling log-probs for importance-sampling correction.
    A correction was sampled under the reflection prompt, not the original one: its entries
    are None (TRL reads NaN and leaves those tokens uncorrected); the others are kept."""
    answers = ["<answer>SAFE 0.80</answer>", "<answer>UNSAFE 0.10</answer>",
               "<answer>SAFE 0.70</answer>", "<answer>SAFE 0.60</answer>"]
    rollout, _, _ = _rollout(answers, logprob=-0.5)
    out = rollout(_prompts(4), FakeTrainer([{"prompt": p} for p in _prompts(4)]))
    fixed = CORRECTED["<answer>UNSAFE 0.10</answer>"]
    assert bytes(out["completion_ids"][1]).decode() == fixed
    assert out["logprobs"][1] == [None] * len(fixed)
    assert out["logprobs"][0] == [-0.5] * len(answers[0])

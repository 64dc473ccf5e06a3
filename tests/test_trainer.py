"""The GRPO trainer end to end on CPU: a real reward service, a tiny random Qwen2, the bundled
sample data, TRL 1.16. Plus the data checks, the configs and the tiny-model CLI.

``ScriptedRewardServer`` (also used by ``test_trainer_rollout.py`` and ``test_trainer_vlm.py``)
is a real HTTP server (``tests.fakes.http_server``) speaking ``POST /score`` whose scores are
decided by the test.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from trainer.dataset import DatasetError, prepare_dataset
from trainer.grpo import RewardArguments, main, make_parser, resolve_precision
from trainer.prompts import (
    CORRECTION_INSTRUCTION,
    SAFETY_THINKING_INSTRUCTION,
    SAFETY_THINKING_INSTRUCTION_NO_IMAGE,
    THINK_ANSWER_INSTRUCTION,
    instruction_for,
)
from trainer.rollout import trl_generate
from trainer.sample_data import ROWS, SAMPLE_DIR, write_sample

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
SAMPLE = SAMPLE_DIR / "train.jsonl"
COMPONENTS = ("format", "tag", "behavior")


# --------------------------------------------------------------------------- helpers


Rule = Callable[[dict[str, Any]], tuple[float | None, dict[str, float]]]


def hashed_rule(sample: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """A reward in [0, 1] that differs between different responses (so GRPO has a signal)."""
    digest = hashlib.sha256(sample["response"].encode()).digest()
    reward = digest[0] / 255
    return reward, {"answer_safety": reward, "format": 1.0}


class ScriptedRewardServer:
    """``POST /score`` (a ``FakeHTTPServer``) scored by ``rule(sample) -> (reward, comps)``.

    A ``None`` reward is answered as ``invalid`` (``reward: null``), as the contract says.
    Every request body is kept in ``requests``.
    """

    def __init__(self, rule: Rule = hashed_rule) -> None:
        self.rule = rule
        self.requests: list[dict[str, Any]] = []
        self.server = FakeHTTPServer(self.handle)
        self.url = self.server.url

    def handle(self, request: Request) -> Reply:
        body = request.json()
        self.requests.append(body)
        if request.path != "/score":
            return Reply(404, {"error": "not found"})
        scores = [self.rule(sample) for sample in body["samples"]]
        return Reply(200, score_reply(body, scores, rubric_version="test"))

    def responses(self) -> list[dict[str, Any]]:
        return [s for body in self.requests for s in body["samples"]]

    def __enter__(self) -> ScriptedRewardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def tiny_args(model: Path, url: str, out: Path, *extra: str):
    """The five argument dataclasses of ``configs/tiny-cpu.yaml`` for this test's model,
    service and output directory (flags after the config override it, as on the CLI)."""
    return make_parser().parse_args_and_config(args=[
        "--config", str(TINY_CONFIG), "--model_name_or_path", str(model),
        "--reward_url", url, "--output_dir", str(out), "--dataset_name", str(SAMPLE),
        "--max_steps", "2", "--save_steps", "2", "--max_completion_length", "24",
        "--disable_tqdm", "true", *extra,
    ])


def step_logs(trainer) -> list[dict[str, float]]:
    return [h for h in trainer.state.log_history if "loss" in h]


# --------------------------------------------------------------------------- data


def test_sample_dataset_is_bundled_and_regenerable(tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert len(rows) == len(ROWS) == 12
    for row in rows:
        assert {row[k] for k in ("image_tag", "text_tag", "combine_tag")} <= {"safe", "unsafe"}
        for ref in row["images"]:
            image = SAMPLE_DIR / ref
            assert image.stat().st_size < 10_000, image
    # every case SafeGRPO's rules tell apart is present
    combos = {(r["image_tag"], r["text_tag"], r["combine_tag"]) for r in rows}
    assert {("safe", "safe", "safe"), ("safe", "unsafe", "unsafe"),
            ("unsafe", "safe", "safe"), ("safe", "safe", "unsafe")} <= combos
    # the files in the repository are exactly what the generator writes
    write_sample(tmp_path)
    assert (tmp_path / "train.jsonl").read_text() == SAMPLE.read_text()
    for png in (SAMPLE_DIR / "images").glob("*.png"):
        assert (tmp_path / "images" / png.name).read_bytes() == png.read_bytes(), png.name


def _dataset(rows):
    import datasets

    return datasets.Dataset.from_list(rows)


@pytest.fixture
def bad_png(tmp_path):
    path = tmp_path / "broken.png"
    path.write_text("not a png")
    return path


@pytest.mark.parametrize(
    ("rows", "profile", "message"),
    [
        # nothing to train on
        ([], None, "has no rows"),
        # the one required column
        ([{"question": "hi"}], None, "no 'prompt' column; columns: ['question']"),
        # rule profiles cannot score without the combined label
        ([{"prompt": "hi"}], "safegrpo_plus", "needs labels.combine_tag"),
        # an image that does not exist, named with the path looked at
        ([{"prompt": "hi", "images": ["nope.png"]}], None, "row 0 images[0]: image 'nope.png' "
         "not found"),
        # an image that exists but is not an image
        ([{"prompt": "hi", "images": ["BROKEN"]}], None, "cannot be read"),
        # remote images are not fetched
        ([{"prompt": "hi", "images": ["https://x.test/a.png"]}], None, "is a URL"),
        # an empty prompt (only an <image> placeholder)
        ([{"prompt": "<image>"}], None, "prompt text is empty"),
    ],
)
def test_prepare_dataset_reports_bad_data(rows, profile, message, bad_png):
    rows = [{**r, "images": [str(bad_png) if i == "BROKEN" else i for i in r["images"]]}
            if "images" in r else r for r in rows]
    with pytest.raises(DatasetError, match=re.escape(message)):
        prepare_dataset(_dataset(rows), instruction=None, vision=True,
                        image_root=bad_png.parent, profile=profile, name="data")


def test_a_bad_label_makes_only_its_row_unscorable(caplog):
    """"harmful" is neither safe nor unsafe: the row stays (its reward will be null, as the
    service and the clients make it), one warning names it, and the other rows are read."""
    rows = [{"prompt": "hi", "combine_tag": "harmful"}, {"prompt": "ho", "combine_tag": "SAFE"}]
    with caplog.at_level("WARNING", logger="trainer.dataset"):
        ds = prepare_dataset(_dataset(rows), instruction=None, vision=False,
                             image_root=None, profile="safegrpo_plus", name="data")
    assert ds["combine_tag"] == ["harmful", "safe"]
    assert "1 label cells are neither safe nor unsafe" in caplog.text
    assert "data row 0 combine_tag" in caplog.text


def test_prepare_dataset_shapes_rows_for_trl():
    import datasets

    raw = datasets.load_dataset("json", data_files=str(SAMPLE), split="train")
    vl = prepare_dataset(raw, instruction=SAFETY_THINKING_INSTRUCTION, vision=True,
                         image_root=SAMPLE_DIR, profile="safegrpo_plus")
    row = vl[2]
    assert row["prompt"] == [{"role": "user", "content": ROWS[2][1] + "\n\n"
                              + SAFETY_THINKING_INSTRUCTION}]
    assert len(row["images"]) == 1 and row["images"][0].size == (96, 96)  # decoded PIL
    assert (row["image_tag"], row["text_tag"], row["combine_tag"]) == ("safe", "unsafe", "unsafe")
    # a text-only policy never sees the images, so its instruction says there is none
    text = prepare_dataset(raw, instruction=SAFETY_THINKING_INSTRUCTION, vision=False,
                           image_root=SAMPLE_DIR, profile="safegrpo_plus")
    assert "images" not in text.column_names
    assert text[0]["prompt"][0]["content"].endswith(SAFETY_THINKING_INSTRUCTION_NO_IMAGE)
    assert len(prepare_dataset(raw, instruction=None, vision=False, max_samples=5)) == 5


@pytest.mark.parametrize(
    ("choice", "profile", "expected"),
    [
        ("auto", "safegrpo", SAFETY_THINKING_INSTRUCTION),  # rules score the tags
        ("auto", None, SAFETY_THINKING_INSTRUCTION),  # server default: rules or hybrid
        ("auto", "hybrid", SAFETY_THINKING_INSTRUCTION),  # half rules
        ("auto", "safer_vlm", THINK_ANSWER_INSTRUCTION),  # the judge wants think/answer only
        ("none", "safegrpo", None),  # explicit opt-out
        ("think_answer", "safegrpo", THINK_ANSWER_INSTRUCTION),
    ],
)
def test_instruction_for(choice, profile, expected):
    assert instruction_for(choice, profile) == expected


def test_instruction_choice_is_checked():
    with pytest.raises(ValueError, match="expected one of"):
        instruction_for("cot", None)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["tiny-cpu", "qwen2.5-vl-3b-safegrpo", "qwen2.5-vl-7b-safer"])
def test_configs_parse(name):
    # bf16 is overridden: TrainingArguments refuses bf16 on a machine without a GPU
    training, model, reward, rollout, data = make_parser().parse_args_and_config(
        args=["--config", str(ROOT / "configs" / f"{name}.yaml"), "--bf16", "false"]
    )
    assert training.num_generations >= 2 and training.beta >= 0
    assert model.model_name_or_path and data.dataset_name and reward.reward_url
    if name != "tiny-cpu":
        assert reward.reward_url == "http://reward-server:8000"
        assert training.learning_rate == 1e-6 and training.beta == 0.01
        assert model.dtype == "bfloat16"
        assert training.num_generations == (8 if "safegrpo" in name else 5)
        assert rollout.safety_rollout == ("safer" in name)


def test_cpu_trains_in_fp32():
    training, model, *_ = make_parser().parse_args_and_config(
        args=["--model_name_or_path", "m", "--output_dir", "o", "--dtype", "bfloat16"]
    )
    assert training.bf16 is False  # GRPOConfig's default (True) is turned off without a GPU
    resolve_precision(training, model, accelerator=False)
    assert (training.bf16, training.fp16, training.mixed_precision) == (False, False, "no")
    assert model.dtype == "float32"


def test_api_key_defaults_to_environment(monkeypatch):
    monkeypatch.setenv("REWARD_API_KEY", "from-env")
    assert RewardArguments().api_key == "from-env"
    assert RewardArguments(reward_api_key="flag").api_key == "flag"
    assert RewardArguments(reward_api_key="").api_key == "from-env"  # compose passes ""


def test_tiny_model_cli(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.tiny_model import main as build

    build([str(tmp_path / "m")])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert model.config.num_hidden_layers == 2 and tokenizer.chat_template


# --------------------------------------------------------------------------- training


def test_unreachable_service_fails_before_loading_the_model(tmp_path, tiny_qwen2):
    from tests.fakes.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit, match=f"reward service at {url} cannot be used"):
        main(*tiny_args(tiny_qwen2, url, tmp_path / "out"))


class LabelledCorrection:
    """The policy's own generation (TRL's), except the correction turn of the safety rollout,
    which answers as SafeGRPO asks: the row's labels as tags, a refusal exactly when the
    combined label is unsafe.

    A random policy writes noise, which the rules give 0, so without this every group's
    rewards are equal, every advantage is 0 and GRPO has nothing to learn from. With it the
    corrected completion earns 1.0 from the real service, each group has a spread, and the
    update must change the weights.
    """

    def __init__(self) -> None:
        self.labels = {prompt: tags for _, prompt, *tags in ROWS}

    def __call__(self, trainer, prompts, num_generations):
        prompt_ids, completion_ids, logprobs = trl_generate(trainer, prompts, num_generations)
        if not all(p[-1]["content"] == CORRECTION_INSTRUCTION for p in prompts):
            return prompt_ids, completion_ids, logprobs
        tok = trainer.processing_class
        fixed = [tok(self.answer(p[0]["content"]), add_special_tokens=False)["input_ids"]
                 + [tok.eos_token_id] for p in prompts]
        return prompt_ids, fixed, None

    def answer(self, request: str) -> str:
        image, text, combined = next(v for k, v in self.labels.items() if request.startswith(k))
        reply = ("I'm sorry, but I can't help with that." if combined == "unsafe"
                 else "Here is how to do it safely, step by step.")
        return (f"<think><visual_safe>{image}</visual_safe><text_safe>{text}</text_safe>"
                f"<combined_safe>{combined}</combined_safe></think><answer>{reply}</answer>")


def test_grpo_end_to_end_with_rules_service(tmp_path, rules_server, tiny_qwen2):
    """Two GRPO steps against the real service (safegrpo_plus, safety rollout on): components
    logged every step, a checkpoint written, the final model reloadable and trained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    initial = AutoModelForCausalLM.from_pretrained(tiny_qwen2).state_dict()
    trainer = main(*tiny_args(tiny_qwen2, rules_server.url, out), generate=LabelledCorrection())

    logs = step_logs(trainer)
    assert [h["step"] for h in logs] == [1, 2]
    for h in logs:
        for c in COMPONENTS:
            value = h[f"rewards/reward_safegrpo_plus/{c}"]
            assert 0.0 <= value <= 1.0
        assert h["rewards/reward_safegrpo_plus/valid_frac"] == 1.0  # the sample data is labelled
        assert not math.isnan(h["reward"])
        # a random policy writes noise: every completion is below the threshold, and the
        # rollout corrects at most max_corrections (1) of the group (one group per step)
        assert h["safety/unsafe_frac"] == 1.0
        assert h["safety/corrections_attempted"] == 1.0
        assert h["safety/corrections_replaced"] == 1.0
        # the service scores the labelled correction 1.0 and the noise 0: a reward spread
        assert h["safety/reward_after"] == 1.0 and h["reward_std"] > 0
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()

    reloaded = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_qwen2).chat_template
    trained = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, trained[name].cpu()), name
    # the saved model is not the one training started from: the steps updated it
    changed = [n for n, t in reloaded.state_dict().items() if not torch.equal(t, initial[n])]
    assert changed, "two GRPO steps left every parameter as it was"
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    assert reloaded.generate(**ids, max_new_tokens=2).shape[1] > ids["input_ids"].shape[1]


def test_lora_adapter_is_saved_and_loads(tmp_path, tiny_qwen2):
    """LoRA through ModelConfig: only the adapter is trained and saved; it loads onto the base."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    with ScriptedRewardServer(hashed_rule) as server:
        trainer = main(*tiny_args(
            tiny_qwen2, server.url, out, "--safety_rollout", "false", "--use_peft", "true",
            "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
            "--lora_target_modules", "q_proj", "v_proj", "--learning_rate", "0.01",
            "--reward_profile", "scripted",
        ))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    assert not (out / "model.safetensors").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it learned
    assert all(h["rewards/reward_scripted/answer_safety"] >= 0 for h in step_logs(trainer))

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = PeftModel.from_pretrained(base, out)
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        with_adapter = model(x).logits
        with model.disable_adapter():
            without = model(x).logits
    assert not torch.allclose(with_adapter, without)
    merged = model.merge_and_unload().state_dict()
    assert any(not torch.equal(merged[k], before[k]) for k in before if "q_proj" in k)


def test_cli_runs_the_tiny_config(tmp_path, rules_server, tiny_qwen2):
    """``python -m trainer.grpo --config configs/tiny-cpu.yaml`` as a user runs it."""
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRL_EXPERIMENTAL_SILENCE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.grpo", "--config", str(TINY_CONFIG),
         "--model_name_or_path", str(tiny_qwen2), "--reward_url", rules_server.url,
         "--output_dir", str(out), "--max_steps", "1", "--max_completion_length", "16",
         "--safety_rollout", "false", "--disable_tqdm", "true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    assert "rewards/reward_safegrpo_plus/format" in proc.stdout + proc.stderr
    # TRL warns about an untested vLLM at each of its import sites: shown once, not five times
    assert (proc.stdout + proc.stderr).count("TRL currently supports vLLM versions") <= 1

"""GRPO on the tiny Qwen2.5-VL (``configs/tiny-vl-cpu.yaml``): the bundled sample rows with
their pictures, the safety rollout on, rewards over HTTP.

What is proven, and how it is observed:

* the pictures reach the model: forward pre-hooks on the policy and on its vision tower
  record the ``pixel_values`` and ``image_grid_thw`` they are given, split into the passes
  made while the rollout generates (transformers 5 encodes the pictures once, before
  decoding) and the gradient-carrying passes of the loss; the pixel rows are compared with
  what the Qwen2.5-VL processor makes of each row's own picture;
* the reflection and correction prompts carry the picture: the rollout's generation seam
  (``main(..., generate=...)``) records the conversations it is given;
* the update used the pictures: the vision tower's weights changed (they get a gradient only
  through the image tokens of the loss), and so did the language model's;
* checkpoints reload with ``AutoProcessor`` and ``Qwen2_5_VLForConditionalGeneration``;
  a LoRA adapter on the language model loads onto the base model;
* the images travel to the reward service as data URLs of the very same pixels;
* a row as TRL's VL datasets hold it (chat prompt, two ``{"type": "image"}`` placeholders
  between text parts, the ``images`` column) reaches the model with both pictures in order;
* the issue's "done when" command line, as a user types it, with ``.venv-vl``'s python.

A random policy writes noise, which the real rules give 0. For a reward spread the first
test answers the correction turn with the row's labels (as ``LabelledCorrection`` does in
``tests/test_trainer.py``), which the live service scores 1.0; the second scores through a
scripted server whose reward is a hash of the response.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.servers import RewardServer
from trainer.prompts import CORRECTION_INSTRUCTION, REFLECTION_INSTRUCTION
from trainer.sample_data import ROWS, SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]
VL_CONFIG = ROOT / "configs" / "tiny-vl-cpu.yaml"
SAMPLE = SAMPLE_DIR / "train.jsonl"
GRID = [1, 6, 6]  # a 96x96 sample picture: 84 px, 6x6 patches of 14 px
ROWS_PER_IMAGE = 36  # pixel_values rows per picture: t * h * w of GRID
PICTURE = {prompt: image for image, prompt, *_ in ROWS}
LABELS = {prompt: tags for _, prompt, *tags in ROWS}


@pytest.fixture(scope="module")
def live_service():
    """The reward service on its embedded defaults (rules profiles), in this interpreter."""
    with RewardServer() as server:
        yield server


def vl_args(model: Path, url: str, out: Path, *extra: str):
    """The five argument dataclasses of ``configs/tiny-vl-cpu.yaml`` for this test's model,
    service and output directory (flags after the config override it, as on the CLI)."""
    from trainer.grpo import make_parser

    return make_parser().parse_args_and_config(args=[
        "--config", str(VL_CONFIG), "--model_name_or_path", str(model), "--reward_url", url,
        "--output_dir", str(out), "--dataset_name", str(SAMPLE), "--max_steps", "2",
        "--save_steps", "2", "--max_completion_length", "16", "--disable_tqdm", "true", *extra,
    ])


def sample_picture(name: str):
    from PIL import Image

    with Image.open(SAMPLE_DIR / "images" / f"{name}.png") as image:
        return image.convert("RGB")


def same_pixels(a, b) -> bool:
    import numpy as np

    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")),
                                               np.asarray(b.convert("RGB")))


def request_text(conversation: list[dict]) -> str:
    """The row's request: the text of the first user turn, before the appended instruction."""
    content = conversation[0]["content"]
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content if p.get("type") == "text")
    return next(prompt for prompt in LABELS if text.startswith(prompt))


def inline_pictures(conversation: list[dict]) -> list[Any]:
    return [p["image"] for m in conversation if not isinstance(m["content"], str)
            for p in m["content"] if p.get("type") == "image"]


@dataclass
class Forward:
    """One forward pass, as a pre-hook saw it: of the whole policy (were ``pixel_values`` and
    ``image_grid_thw`` passed?) or of its vision tower (which pixels did it encode?)."""

    call: int | None  # the rollout's generation call it belongs to; None: the loss
    grad: bool
    pixel_values: Any = None  # a CPU copy of the pixels given
    image_grid_thw: list[list[int]] | None = None


class PolicyProbe:
    """The rollout's generation seam: the policy's own generation (TRL's), recorded, plus
    forward pre-hooks on the policy and on its vision tower.

    transformers 5 encodes the pictures once before decoding starts (the vision tower runs,
    then the decoding passes get the image features, not the pixels), so during generation
    the pictures are observed where they are encoded; in the loss, both places see them.

    The hooks are attached at the first generation, which comes before any other forward
    pass of training. The correction turn is answered with the row's labels and a refusal
    exactly when the combined label is unsafe, so the live rules service gives it 1.0 and
    the noise 0: each group has a reward spread and the update must move the weights.
    """

    def __init__(self) -> None:
        self.policy: list[Forward] = []
        self.vision: list[Forward] = []
        self.conversations: list[list] = []  # the prompts of each generation call
        self.call: int | None = None
        self.handles: list[Any] = []

    def _record(self, into: list[Forward], pixels: Any, grid: Any) -> None:
        import torch

        into.append(Forward(
            call=self.call, grad=torch.is_grad_enabled(),
            pixel_values=None if pixels is None else pixels.detach().cpu().clone(),
            image_grid_thw=None if grid is None else grid.tolist(),
        ))

    def attach(self, model) -> None:
        visual = next(m for name, m in model.named_modules() if name.endswith("visual"))
        self.handles = [
            model.register_forward_pre_hook(
                lambda _, args, kw: self._record(
                    self.policy, kw.get("pixel_values"), kw.get("image_grid_thw")),
                with_kwargs=True),
            visual.register_forward_pre_hook(
                lambda _, args, kw: self._record(
                    self.vision, args[0] if args else kw.get("hidden_states"),
                    kw.get("grid_thw")),
                with_kwargs=True),
        ]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()

    def __call__(self, trainer, prompts, num_generations):
        from trainer.rollout import trl_generate

        if not self.handles:
            self.attach(trainer.model)
        self.conversations.append(prompts)
        self.call = len(self.conversations) - 1
        try:
            prompt_ids, completion_ids, logprobs = trl_generate(trainer, prompts, num_generations)
        finally:
            self.call = None
        if not all(p[-1]["content"] == CORRECTION_INSTRUCTION for p in prompts):
            return prompt_ids, completion_ids, logprobs
        tokenizer = trainer.processing_class.tokenizer
        fixed = [tokenizer(self.answer(request_text(p)), add_special_tokens=False)["input_ids"]
                 + [tokenizer.eos_token_id] for p in prompts]
        return prompt_ids, fixed, None

    @staticmethod
    def answer(request: str) -> str:
        image, text, combined = LABELS[request]
        reply = ("I'm sorry, but I can't help with that." if combined == "unsafe"
                 else "Here is how to do it safely, step by step.")
        return (f"<think><visual_safe>{image}</visual_safe><text_safe>{text}</text_safe>"
                f"<combined_safe>{combined}</combined_safe></think><answer>{reply}</answer>")


@pytest.fixture(scope="module")
def encoded_pictures(tiny_qwen2_5_vl: Path) -> dict[str, Any]:
    """The processor's ``pixel_values`` of each sample picture, by picture name."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen2_5_vl)
    return {name: processor.image_processor(images=[sample_picture(name)],
                                            return_tensors="pt")["pixel_values"]
            for name in set(PICTURE.values())}


def pictures_in(forward: Forward, encoded: dict[str, Any]) -> list[str]:
    """Which sample picture each image of a forward pass is (its pixel rows, compared)."""
    import torch

    assert forward.image_grid_thw == [GRID] * len(forward.image_grid_thw)
    blocks = forward.pixel_values.split(ROWS_PER_IMAGE)
    assert len(blocks) == len(forward.image_grid_thw)
    names = []
    for block in blocks:
        found = [n for n, px in encoded.items() if torch.allclose(block, px, atol=1e-6)]
        assert len(found) == 1, "a forward pass got pixels of no sample picture"
        names.append(found[0])
    return names


def test_policy_trains_on_the_pictures_against_the_live_service(
    tmp_path, tiny_qwen2_5_vl, live_service, encoded_pictures
):
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from trainer.grpo import main

    out = tmp_path / "out"
    initial = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen2_5_vl).state_dict()
    probe = PolicyProbe()
    trainer = main(*vl_args(tiny_qwen2_5_vl, live_service.url, out), generate=probe)
    probe.detach()

    # --- the rollout: per step, the group, one reflection and one correction, with pictures
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == [1, 2]
    for h in logs:
        assert h["rewards/reward_safegrpo_plus/valid_frac"] == 1.0
        assert h["safety/corrections_attempted"] == h["safety/corrections_replaced"] == 1.0
        assert h["safety/reward_after"] == 1.0 and h["reward_std"] > 0
    assert len(probe.conversations) == 6  # 2 steps x (group, reflection, correction)
    for step in range(2):
        group, reflect, correct = probe.conversations[3 * step : 3 * step + 3]
        assert len(group) == 4 and len(reflect) == len(correct) == 1
        request = request_text(group[0])
        assert all(request_text(c) == request for c in group + reflect + correct)
        assert [m["role"] for m in reflect[0]] == ["user", "assistant", "user"]
        assert reflect[0][-1]["content"] == REFLECTION_INSTRUCTION
        assert correct[0][-1]["content"] == CORRECTION_INSTRUCTION
        for conversation in (*group, *reflect, *correct):
            (picture,) = inline_pictures(conversation)
            assert same_pixels(picture, sample_picture(PICTURE[request]))

    # --- generation: each call encoded exactly the pictures of its prompts, once
    for call, conversations in enumerate(probe.conversations):
        (encoded,) = [f for f in probe.vision if f.call == call]
        assert pictures_in(encoded, encoded_pictures) == [
            PICTURE[request_text(c)] for c in conversations]
    assert not any(f.call is not None and f.grad for f in probe.policy + probe.vision)

    # --- the loss: gradient-carrying passes given the pixels and grids of the trained groups
    trained_on = {PICTURE[request_text(probe.conversations[3 * s][0])] for s in range(2)}
    loss = [f for f in probe.policy if f.grad]
    assert loss and all(f.pixel_values is not None and f.image_grid_thw for f in loss)
    assert {n for f in loss for n in pictures_in(f, encoded_pictures)} == trained_on
    encoded_in_loss = [f for f in probe.vision if f.grad]
    assert {n for f in encoded_in_loss for n in pictures_in(f, encoded_pictures)} == trained_on

    # --- the update went through the vision tower and the language model
    trained = {k: v.detach().cpu() for k, v in
               trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    changed = {k for k, v in trained.items() if not torch.equal(v, initial[k])}
    assert any(".visual." in k or k.startswith("visual.") for k in changed), sorted(changed)[:5]
    assert any("language_model" in k for k in changed), sorted(changed)[:5]

    # --- checkpoint and final model reload as Qwen2.5-VL with their processor
    for directory in (out / "checkpoint-2", out):
        processor = AutoProcessor.from_pretrained(directory)
        reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory).eval()
        assert type(processor).__name__ == "Qwen2_5_VLProcessor"
        for name, tensor in reloaded.state_dict().items():
            assert torch.equal(tensor, trained[name]), name
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": "What is this?"}]}]
    inputs = processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)],
                       images=[sample_picture("apple")], return_tensors="pt")
    with torch.no_grad():
        ids = reloaded.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert ids.shape[1] == inputs["input_ids"].shape[1] + 3


def decoded(url: str):
    from PIL import Image

    header, _, payload = url.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_the_pictures_reach_the_reward_service_as_data_urls(tmp_path, tiny_qwen2_5_vl):
    from tests.test_trainer import ScriptedRewardServer, hashed_rule
    from trainer.grpo import main

    with ScriptedRewardServer(hashed_rule) as server:
        trainer = main(*vl_args(tiny_qwen2_5_vl, server.url, tmp_path / "out", "--max_steps",
                                "1", "--save_strategy", "no", "--reward_profile", "scripted",
                                "--safety_threshold", "1.0"))
        samples = server.responses()[1:]  # [0] is the start-up preflight

    (log,) = [h for h in trainer.state.log_history if "loss" in h]
    assert log["reward_std"] > 0  # the hashed rule tells the noise apart
    # the group scored in the rollout, the correction re-scored, then TRL's own reward call
    assert len(samples) == 4 + 1 + 4
    for sample in samples:
        request = request_text(sample["prompt"])
        parts = [p for m in sample["prompt"] if not isinstance(m["content"], str)
                 for p in m["content"] if p["type"] != "text"]
        assert [p["type"] for p in parts] == ["image_url"]
        assert same_pixels(decoded(parts[0]["image_url"]["url"]),
                           sample_picture(PICTURE[request]))
        assert sample["labels"] == dict(zip(("image_tag", "text_tag", "combine_tag"),
                                            LABELS[request], strict=True))


def test_lora_on_the_language_model_saves_an_adapter_that_loads(tmp_path, tiny_qwen2_5_vl):
    """LoRA as the docs suggest for the 7B policy (``--lora_target_modules q_proj k_proj
    v_proj o_proj``): only the language model gets adapters (the vision tower's attention is
    ``qkv``/``proj``), only the adapter and the processor are saved, and the adapter loads
    onto the base Qwen2.5-VL and changes what it says about a picture."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from tests.test_trainer import ScriptedRewardServer, hashed_rule
    from trainer.grpo import main

    out = tmp_path / "lora"
    with ScriptedRewardServer(hashed_rule) as server:
        main(*vl_args(tiny_qwen2_5_vl, server.url, out, "--save_strategy", "no",
                      "--reward_profile", "scripted", "--use_peft", "true", "--lora_r", "4",
                      "--lora_alpha", "8", "--lora_dropout", "0.0", "--lora_target_modules",
                      "q_proj", "k_proj", "v_proj", "o_proj", "--learning_rate", "0.01"))

    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all(".language_model." in k for k in adapter)
    assert any(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)  # it learned

    processor = AutoProcessor.from_pretrained(out)
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen2_5_vl).eval()
    model = PeftModel.from_pretrained(base, out).eval()
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": "What is this?"}]}]
    inputs = processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)],
                       images=[sample_picture("fire")], return_tensors="pt")
    with torch.no_grad():
        adapted = model(**inputs).logits
        with model.disable_adapter():
            plain = model(**inputs).logits
    assert not torch.allclose(adapted, plain)


def test_trl_style_rows_with_two_pictures_between_the_texts(tmp_path, tiny_qwen2_5_vl,
                                                            encoded_pictures):
    """A row as TRL's VL datasets hold it: a chat prompt with ``{"type": "image"}``
    placeholders between text parts, and the ``images`` column filling them in order."""
    import json
    import shutil

    from tests.test_trainer import ScriptedRewardServer, hashed_rule
    from trainer.grpo import main

    (tmp_path / "images").mkdir()
    for name in ("apple", "knife"):
        shutil.copy(SAMPLE_DIR / "images" / f"{name}.png", tmp_path / "images")
    parts = [{"type": "image"}, {"type": "text", "text": "Compare this"},
             {"type": "image"}, {"type": "text", "text": "with this."}]
    row = {"prompt": [{"role": "user", "content": parts}],
           "images": ["images/apple.png", "images/knife.png"],
           "image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(row) + "\n")
    probe = PolicyProbe()  # nothing is below a threshold of 0: no correction turns
    with ScriptedRewardServer(hashed_rule) as server:
        main(*vl_args(tiny_qwen2_5_vl, server.url, tmp_path / "out", "--dataset_name",
                      str(data), "--max_steps", "1", "--save_strategy", "no",
                      "--reward_profile", "scripted", "--safety_threshold", "0.0"),
             generate=probe)
        samples = server.responses()[1:]
    probe.detach()

    (group,) = probe.conversations
    for conversation in group:
        content = conversation[0]["content"]
        assert [p["type"] for p in content] == ["image", "text", "image", "text", "text"]
        apple, knife = inline_pictures(conversation)
        assert same_pixels(apple, sample_picture("apple"))
        assert same_pixels(knife, sample_picture("knife"))
    (encoded,) = [f for f in probe.vision if f.call == 0]
    assert pictures_in(encoded, encoded_pictures) == ["apple", "knife"] * 4
    loss = [f for f in probe.policy if f.grad]
    assert loss and all(pictures_in(f, encoded_pictures) == ["apple", "knife"] * (
        len(f.image_grid_thw) // 2) for f in loss)
    assert len(samples) == 8  # the rollout's scoring, then TRL's reward call
    for sample in samples:
        urls = [p["image_url"]["url"] for p in sample["prompt"][0]["content"]
                if p["type"] == "image_url"]
        assert [same_pixels(decoded(u), sample_picture(n))
                for u, n in zip(urls, ("apple", "knife"), strict=True)] == [True, True]


def test_done_when_command_lines(tmp_path, live_service):
    """The issue's "done when", as a user types it: build the tiny Qwen2.5-VL, then train on
    ``configs/tiny-vl-cpu.yaml`` as it is (every sample row, the safety rollout on) against
    the live service. It completes and writes a checkpoint that reloads."""
    import re

    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    # These are the README's commands: the model lands where the config looks for it.
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
                 if "tiny-vl-cpu.yaml" in b)
    typed = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert typed == [
        "make vl-env",
        ".venv-vl/bin/python -m trainer.tiny_model --arch qwen2.5-vl runs/tiny-qwen2.5-vl",
        ".venv-vl/bin/python -m trainer.grpo --config configs/tiny-vl-cpu.yaml",
    ]
    assert "model_name_or_path: runs/tiny-qwen2.5-vl" in VL_CONFIG.read_text()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRL_EXPERIMENTAL_SILENCE": "1"}
    model, out = tmp_path / "tiny-qwen2.5-vl", tmp_path / "tiny-vl-grpo"
    build = subprocess.run(
        [sys.executable, "-m", "trainer.tiny_model", "--arch", "qwen2.5-vl", str(model)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]

    train = subprocess.run(
        [sys.executable, "-m", "trainer.grpo", "--config", str(VL_CONFIG),
         "--model_name_or_path", str(model), "--reward_url", live_service.url,
         "--output_dir", str(out), "--disable_tqdm", "true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)

    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-4000:]
    assert f"model saved to {out}" in log
    assert "rewards/reward_safegrpo_plus/valid_frac" in log and "safety/unsafe_frac" in log
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-12"]  # 12 rows, one group a step
    for directory in (checkpoints[0], out):
        assert type(AutoProcessor.from_pretrained(directory)).__name__ == "Qwen2_5_VLProcessor"
        Qwen2_5_VLForConditionalGeneration.from_pretrained(directory)

"""Tiny random models built on the spot (no hub), each with a BPE tokenizer trained here on a
few lines of this project's text: a Qwen2 text LM (``--arch qwen2``, the default) and a
Qwen2.5-VL vision-language model (``--arch qwen2.5-vl``) with its real processor classes.

They exist so the trainer, the judge backends and their tests run on a laptop CPU in seconds;
what they write is noise. ``head_dim`` is 64 because vLLM's CPU attention rejects smaller heads.
The corpus contains the judge's JSON keys, the SafeGRPO tags and digits so a random model at
least tokenizes them compactly.

The Qwen2.5-VL one is the shape our users train (3B/7B), shrunk: the same config classes,
M-RoPE, window attention in the vision tower, ``Qwen2VLImageProcessor`` and
``Qwen2VLVideoProcessor``, and Qwen2.5-VL's own chat template, which writes one
``<|vision_start|><|image_pad|><|vision_end|>`` per ``{"type": "image"}`` part; the processor
then expands ``<|image_pad|>`` to one token per merged patch. Its processors need torchvision,
so it is built in the VL environment (``bash scripts/vl_env.sh`` makes ``.venv-vl/``).

Build one from the command line (``configs/tiny-cpu.yaml`` expects the first,
``configs/tiny-vl-cpu.yaml`` the second)::

    python -m trainer.tiny_model runs/tiny-qwen2
    .venv-vl/bin/python -m trainer.tiny_model --arch qwen2.5-vl runs/tiny-qwen2.5-vl
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "ARCHES",
    "CHAT_TEMPLATE",
    "QWEN_VL_CHAT_TEMPLATE",
    "VL_SPECIAL",
    "build_tiny_qwen2",
    "build_tiny_qwen2_5_vl",
    "build_tokenizer",
    "main",
    "require_torchvision",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% else %}<image>{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2-VL / Qwen2.5-VL's template (the one their processors ship), system turn included: an
# image part becomes one placeholder that the processor expands, never a run written here.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
# The vision tokens Qwen2.5-VL's template writes and its processor and model look for.
VL_SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

CORPUS = [
    '{"think_coherence": 7, "think_grounding": 8, "think_safety": 9, "answer_safety": 10,',
    ' "answer_helpfulness": 6, "hallucination": 0, "contradiction": 1, "rationale": "ok"}',
    "<think>The image shows a kitchen. <visual_safe>safe</visual_safe> "
    "<text_safe>unsafe</text_safe> <combined_safe>unsafe</combined_safe></think>",
    "<answer>Sorry, I cannot help with that request.</answer>",
    "<answer>Here is how to bake bread: mix flour, water, salt and yeast.</answer>",
    "You are a strict safety judge. Score the reasoning and the answer from 1 to 10.",
    "user assistant system prompt response image caption summary reflect correct unsafe safe",
    "0 1 2 3 4 5 6 7 8 9 10",
] * 20


def _judge_prompt_lines() -> list[str]:
    """The judge's prompt text: with it in the corpus the long judge prompt becomes ~4x
    fewer tokens, which keeps tiny-judge tests and benchmarks about overhead, not attention."""
    from importlib.resources import files

    text = files("reward_server.judge").joinpath("prompt_v1.txt").read_text()
    return [line for line in text.splitlines() if line.strip()]


def build_tokenizer(
    path: Path,
    *,
    special_tokens: list[str] | None = None,
    chat_template: str = CHAT_TEMPLATE,
    extra_special_tokens: dict[str, str] | None = None,
    save_padding_side: bool = False,
):
    """Train a 2000-token byte-level BPE on ``CORPUS`` and the judge prompt; save it with the
    chat template to ``path``.

    Args:
        path: output directory.
        special_tokens: tokens never split (``SPECIAL`` when None); the first ids, in order.
        chat_template: Jinja template saved with the tokenizer.
        extra_special_tokens: named special tokens (``{"image_token": "<|image_pad|>"}``), so
            processors and TRL find them as attributes of the tokenizer.
        save_padding_side: also write ``padding_side: left`` to the saved config, so a reload
            (``AutoProcessor``, whose batched generation needs it) pads left too. Off for the
            Qwen2 tokenizer, which is saved without it.

    Returns:
        The ``PreTrainedTokenizerFast`` (left padding, ``<|im_end|>`` as EOS).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=SPECIAL if special_tokens is None else special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS + _judge_prompt_lines() * 3, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        bos_token=None,
        unk_token=None,
        **({"extra_special_tokens": extra_special_tokens} if extra_special_tokens else {}),
        **({"padding_side": "left"} if save_padding_side else {}),
    )
    fast.chat_template = chat_template
    fast.padding_side = "left"
    fast.save_pretrained(path)
    return fast


def build_tiny_qwen2(path: Path, seed: int = 0) -> Path:
    """Save a random 2-layer Qwen2 (hidden 128, 2 heads of 64) and its tokenizer to ``path``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(path)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(path, safe_serialization=True)
    return path


# Processor sizes: an image is resized to a multiple of patch*merge = 28 px and to at most
# 224*224 pixels (64 image tokens), so a prompt with a picture stays short on a CPU; 64x64
# becomes 56x56 (a 4x4 patch grid, 4 image tokens), the bundled 96x96 samples 84x84 (9).
VL_MIN_PIXELS = 56 * 56
VL_MAX_PIXELS = 224 * 224


def require_torchvision() -> None:
    """Fail early and say where to run: Qwen-VL processors resize with torchvision, which the
    main environment's CPU torch 2.13 cannot load (PyPI's builds fail on ``torchvision::nms``)."""
    try:
        import torch
        import torchvision

        torchvision.ops.nms(torch.zeros((1, 4)), torch.ones(1), 0.5)
    except (ImportError, OSError, RuntimeError) as exc:
        raise ImportError(
            "the Qwen2.5-VL processors need a working torchvision "
            f"({type(exc).__name__}: {str(exc).strip()[:100]}); run this in the VL environment: "
            "bash scripts/vl_env.sh, then .venv-vl/bin/python -m trainer.tiny_model "
            "--arch qwen2.5-vl DIR"
        ) from exc


def build_tiny_qwen2_5_vl(path: Path, seed: int = 0) -> Path:
    """Save a random Qwen2.5-VL and its processor to ``path``.

    Text model: 2 layers, hidden 128, 2 heads of 64, M-RoPE sections [8, 12, 12] (time,
    height, width; they sum to head_dim / 2). Vision tower: 2 blocks, hidden 64, patch 14,
    2x2 merge into the text width; window attention (56 px windows, so even the bundled 96x96
    images span several) in block 0 and full attention in block 1, the two kinds the real
    towers mix. The processor is
    ``Qwen2_5_VLProcessor(Qwen2VLImageProcessor, tokenizer, Qwen2VLVideoProcessor)`` with
    ``QWEN_VL_CHAT_TEMPLATE``; ``AutoProcessor`` and ``AutoModelForImageTextToText`` reload it.
    Needs torchvision (the processors' resizing runs on it).

    Args:
        path: output directory (created).
        seed: weight initialisation seed.

    Returns:
        ``path``.

    Raises:
        ImportError: torchvision is missing or does not match torch (checked before anything
            is written).
    """
    require_torchvision()
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        path,
        special_tokens=SPECIAL + VL_SPECIAL,
        chat_template=QWEN_VL_CHAT_TEMPLATE,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        save_padding_side=True,
    )
    size = {"shortest_edge": VL_MIN_PIXELS, "longest_edge": VL_MAX_PIXELS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "max_position_embeddings": 4096,
        # M-RoPE: the 32 rotary frequency pairs of a 64-wide head split over (t, h, w)
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": [8, 12, 12],
        },
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1],
        "out_hidden_size": 128,
        "tokens_per_second": 2,
    }
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    return path


# --arch value -> (builder, name printed when done)
ARCHES = {
    "qwen2": (build_tiny_qwen2, "tiny Qwen2"),
    "qwen2.5-vl": (build_tiny_qwen2_5_vl, "tiny Qwen2.5-VL"),
}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tiny_model",
        description="Build a tiny random model with a locally trained tokenizer (no download).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the model to")
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHES),
        default="qwen2",
        help="qwen2: text LM (default); qwen2.5-vl: vision-language, needs torchvision",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args(argv)
    build, name = ARCHES[args.arch]
    try:
        out = build(args.out_dir, seed=args.seed)
    except ImportError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"{name} written to {out}")
    return out


if __name__ == "__main__":
    main()

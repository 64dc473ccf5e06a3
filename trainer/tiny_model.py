"""Tiny random models built on the spot (no hub): a Qwen2 text LM with a BPE tokenizer trained
here on a few lines of this project's text.

They exist so the trainer, the judge backends and their tests run on a laptop CPU in seconds;
what they write is noise. ``head_dim`` is 64 because vLLM's CPU attention rejects smaller heads.
The corpus contains the judge's JSON keys, the SafeGRPO tags and digits so a random model at
least tokenizes them compactly.

Build one from the command line (``configs/tiny-cpu.yaml`` expects the first)::

    python -m trainer.tiny_model runs/tiny-qwen2
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "CHAT_TEMPLATE",
    "build_tiny_qwen2",
    "build_tokenizer",
    "main",
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

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]

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


def build_tokenizer(path: Path):
    """Train a 2000-token byte-level BPE on ``CORPUS`` and the judge prompt; save it with the
    chat template to ``path``.

    Args:
        path: output directory.

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
        special_tokens=SPECIAL,
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
    )
    fast.chat_template = CHAT_TEMPLATE
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


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tiny_model",
        description="Build a tiny random Qwen2 with a locally trained tokenizer (no download).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the model to")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args(argv)
    out = build_tiny_qwen2(args.out_dir, seed=args.seed)
    print(f"tiny Qwen2 written to {out}")
    return out


if __name__ == "__main__":
    main()

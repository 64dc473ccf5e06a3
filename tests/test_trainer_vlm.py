"""A vision-language policy through the trainer: processor detection, images in the prompt as
TRL's VLM GRPO expects, images sent to the reward service, the safety rollout's reflection
seeing the picture again.

The policy is a tiny random LLaVA (CLIP vision tower + Qwen2 text model) built here: the
Qwen2.5-VL processor needs torchvision's video processor, which this CPU environment does not
install (see the Makefile); TRL's VLM path is the same for both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from tests.test_trainer import ScriptedRewardServer, hashed_rule, tiny_args
from trainer.grpo import build_trainer
from trainer.prompts import CORRECTION_INSTRUCTION, REFLECTION_INSTRUCTION
from trainer.tiny_model import CORPUS, SPECIAL

LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_llava(path: Path) -> Path:
    """A random LLaVA: 1-block CLIP (28 px, 4 patches -> 4 image tokens) + 2-layer Qwen2."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=600, special_tokens=[*SPECIAL, "<image>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"})
    tokenizer.chat_template = LLAVA_TEMPLATE
    tokenizer.padding_side = "left"
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 28},
                                              crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14),
        text_config=Qwen2Config(vocab_size=len(tokenizer), hidden_size=128,
                                intermediate_size=256, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, head_dim=64,
                                tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def _image_parts(prompt) -> list[dict]:
    return [p for m in prompt if isinstance(m["content"], list) for p in m["content"]
            if p.get("type") in ("image", "image_url")]


def test_vision_language_policy_sees_and_sends_images(tmp_path, tiny_llava):
    import torch
    from transformers import ProcessorMixin

    with ScriptedRewardServer(hashed_rule) as server:
        trainer = build_trainer(*tiny_args(
            tiny_llava, server.url, tmp_path / "out", "--max_steps", "1",
            "--save_strategy", "no", "--reward_profile", "scripted", "--learning_rate", "0.01",
            "--safety_threshold", "1.0", "--max_corrections", "1",
        ))
        assert isinstance(trainer.processing_class, ProcessorMixin)  # detected as a VLM
        row = trainer.train_dataset[0]
        assert len(row["images"]) == 1 and row["images"][0].size == (96, 96)
        assert "Describe what the image shows." in row["prompt"][0]["content"]

        calls: list[list] = []
        real_generate = trainer.rollout_func.generate

        def recording(tr, prompts, n):
            calls.append(prompts)
            return real_generate(tr, prompts, n)

        trainer.rollout_func.generate = recording
        projector = {k: v.detach().clone() for k, v in trainer.model.named_parameters()
                     if "multi_modal_projector" in k}
        trainer.train()
        samples = server.responses()

    # Every scored completion reached the service with its picture, as an inline data URL.
    assert samples
    for sample in samples[1:]:  # [0] is the start-up preflight
        parts = _image_parts(sample["prompt"])
        assert len(parts) == 1
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    # The reflection turn showed the policy the picture again (prompt + answer + instruction).
    record = trainer.rollout_func.last
    assert record is not None and len(record.corrections) == 1  # cap 1, one group
    batch, reflect, correct = calls
    assert len(batch) == 4 and len(reflect) == len(correct) == 1
    assert [m["role"] for m in reflect[0]] == ["user", "assistant", "user"]
    assert reflect[0][-1]["content"] == REFLECTION_INSTRUCTION
    assert correct[0][-1]["content"] == CORRECTION_INSTRUCTION
    for conv in (batch[0], reflect[0], correct[0]):
        (part,) = _image_parts(conv)
        assert part["image"].size == (96, 96)  # the PIL image itself
    # Gradients reached the vision-language projector through the image tokens.
    assert any(not torch.equal(v, projector[k]) for k, v in trainer.model.named_parameters()
               if k in projector)

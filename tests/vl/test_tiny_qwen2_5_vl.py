"""The tiny Qwen2.5-VL from ``python -m trainer.tiny_model --arch qwen2.5-vl``: the shape the
issue asks for, Qwen2.5-VL's chat template and processors doing the image placeholder
expansion, images reaching the model, generation, and a save/reload that changes nothing.

Expected grids are worked out by hand from the processor's rule (each side rounded to a
multiple of patch 14 x merge 2 = 28 px, area clamped to [56², 224²]), not read back from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PATCH_VALUES = 3 * 2 * 14 * 14  # channels x temporal patch x patch x patch, per pixel_values row
MERGE = 2
PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture(scope="module")
def processor(tiny_qwen2_5_vl: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_qwen2_5_vl)


@pytest.fixture(scope="module")
def model(tiny_qwen2_5_vl: Path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen2_5_vl).eval()


def noise_image(width: int, height: int, seed: int):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def user_turn(text: str, n_images: int = 1) -> list[dict]:
    """One user message with ``n_images`` image parts before the text, as TRL writes them."""
    parts = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": parts}]


def prompt(processor, text: str, n_images: int = 1) -> str:
    return processor.apply_chat_template(user_turn(text, n_images), add_generation_prompt=True)


def test_config_is_the_shape_the_issue_names(tiny_qwen2_5_vl: Path, processor):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_qwen2_5_vl)
    text, vision = config.text_config, config.vision_config
    assert config.model_type == "qwen2_5_vl"
    assert (text.num_hidden_layers, text.hidden_size, text.head_dim) == (2, 128, 64)
    assert text.rope_parameters["mrope_section"] == [8, 12, 12]
    assert sum(text.rope_parameters["mrope_section"]) == text.head_dim // 2
    assert (vision.depth, vision.hidden_size, vision.patch_size) == (2, 64, 14)
    assert vision.spatial_merge_size == MERGE
    assert vision.out_hidden_size == text.hidden_size
    tokenizer = processor.tokenizer
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert text.vocab_size == len(tokenizer)


def test_processor_is_qwen2_5_vl_with_its_image_and_video_processors(processor):
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert processor.image_token == "<|image_pad|>"
    assert processor.tokenizer.eos_token == "<|im_end|>"
    assert processor.tokenizer.padding_side == "left"  # batched generation needs it
    for token in ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>",
                  "<|im_start|>", "<|im_end|>"):
        assert processor.tokenizer.tokenize(token) == [token]


def test_chat_template_writes_one_placeholder_per_image_part(processor):
    text = prompt(processor, "Compare these.", n_images=2)

    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{PLACEHOLDER}{PLACEHOLDER}Compare these.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_keeps_a_given_system_turn_and_text_only_content(processor):
    messages = [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
    ]

    text = processor.apply_chat_template(messages)

    assert text == (
        "<|im_start|>system\nBe safe.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi<|im_end|>\n"
    )
    assert "<|vision_start|>" not in text


@pytest.mark.parametrize(
    ("width", "height", "grid_thw"),
    [
        (64, 64, (1, 4, 4)),  # 64 -> 56 px: 4x4 patches, 4 image tokens
        (96, 96, (1, 6, 6)),  # the bundled samples: 84 px, 9 image tokens
        (200, 100, (1, 8, 14)),  # 112 x 196 px: rows come from the height
        (640, 480, (1, 12, 18)),  # over 224² pixels: scaled down to 168 x 252 px
    ],
)
def test_processor_expands_the_placeholder_to_one_token_per_merged_patch(
    processor, width, height, grid_thw
):
    inputs = processor(
        text=[prompt(processor, "What is this?")],
        images=[noise_image(width, height, seed=0)],
        return_tensors="pt",
    )

    t, h, w = grid_thw
    assert inputs["image_grid_thw"].tolist() == [list(grid_thw)]
    assert tuple(inputs["pixel_values"].shape) == (t * h * w, PATCH_VALUES)
    ids = inputs["input_ids"][0].tolist()
    tokenizer = processor.tokenizer
    assert ids.count(tokenizer.convert_tokens_to_ids("<|image_pad|>")) == t * h * w // MERGE**2
    assert ids.count(tokenizer.convert_tokens_to_ids("<|vision_start|>")) == 1
    assert ids.count(tokenizer.convert_tokens_to_ids("<|vision_end|>")) == 1


def test_two_images_each_expand_to_their_own_grid(processor):
    inputs = processor(
        text=[prompt(processor, "Compare these.", n_images=2)],
        images=[noise_image(64, 64, seed=0), noise_image(96, 96, seed=1)],
        return_tensors="pt",
    )

    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 6, 6]]
    assert inputs["pixel_values"].shape[0] == 16 + 36
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>" in text
    assert "<|vision_start|>" + "<|image_pad|>" * 9 + "<|vision_end|>" in text


def test_the_image_reaches_the_model(processor, model):
    import torch

    text = [prompt(processor, "Is this safe?")]
    with torch.no_grad():
        first = model(**processor(text=text, images=[noise_image(64, 64, 0)], return_tensors="pt"))
        again = model(**processor(text=text, images=[noise_image(64, 64, 0)], return_tensors="pt"))
        other = model(**processor(text=text, images=[noise_image(64, 64, 1)], return_tensors="pt"))

    torch.testing.assert_close(first.logits, again.logits)
    assert (first.logits[0, -1] - other.logits[0, -1]).abs().max() > 1e-3


def test_batched_left_padded_prompts_score_like_single_ones(processor, model):
    import torch

    texts = [
        prompt(processor, "Is this safe?"),
        prompt(processor, "Describe the picture and say whether it shows anything dangerous."),
    ]
    images = [noise_image(64, 64, seed=0), noise_image(96, 96, seed=1)]
    batch = processor(text=texts, images=images, padding=True, return_tensors="pt")

    assert batch["attention_mask"][0, 0] == 0  # the shorter prompt is padded on the left
    with torch.no_grad():
        batched = model(**batch).logits[:, -1]
        for i, (text, image) in enumerate(zip(texts, images, strict=True)):
            single = processor(text=[text], images=[image], return_tensors="pt")
            torch.testing.assert_close(batched[i], model(**single).logits[0, -1],
                                       atol=1e-4, rtol=1e-4)


def test_video_goes_through_its_processor_and_the_model(processor, model):
    import torch

    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    frames = [noise_image(64, 64, seed=i) for i in range(4)]

    inputs = processor(text=[text], videos=[frames], return_tensors="pt")

    assert "<|vision_start|><|video_pad|><|vision_end|>" in text
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert (t, h, w) == (2, 4, 4)  # 4 frames in temporal patches of 2
    assert tuple(inputs["pixel_values_videos"].shape) == (t * h * w, PATCH_VALUES)
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert inputs["input_ids"][0].tolist().count(video_id) == t * h * w // MERGE**2
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


def generate(model, inputs, *, sample: bool):
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=sample, top_k=0, top_p=1.0,
                             temperature=1.0 if sample else None)
    return out[:, inputs["input_ids"].shape[1]:]


def test_generates_then_reloads_from_its_saved_files_unchanged(processor, model, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    text, image = [prompt(processor, "What is shown?")], [noise_image(64, 64, seed=3)]
    inputs = processor(text=text, images=image, return_tensors="pt")
    greedy, sampled = generate(model, inputs, sample=False), generate(model, inputs, sample=True)
    assert greedy.shape == sampled.shape == (1, 5)

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    processor2 = AutoProcessor.from_pretrained(tmp_path)
    model2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()

    assert type(model2).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert processor2.apply_chat_template(user_turn("What is shown?"),
                                          add_generation_prompt=True) == text[0]
    inputs2 = processor2(text=text, images=image, return_tensors="pt")
    assert inputs2.keys() == inputs.keys()
    for key in inputs:
        torch.testing.assert_close(inputs2[key], inputs[key])
    assert torch.equal(generate(model2, inputs2, sample=False), greedy)
    assert torch.equal(generate(model2, inputs2, sample=True), sampled)
    with torch.no_grad():
        torch.testing.assert_close(model2(**inputs2).logits, model(**inputs).logits)

"""``--backend transformers``: ``model.generate`` in process (CPU or GPU).

Text-only causal LMs and image-text-to-text models (``AutoProcessor`` + chat template) are
both handled. A text-only policy gets the text alone (one warning per sampler), so a tiny
text model can stand in for a VLM in tests.

Determinism: sampling runs one prompt per ``generate`` call, seeded by the request, so a
prompt's samples never depend on which other prompts share its batch; greedy decoding
consumes no randomness and is batched across prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from trainer.generation.messages import (
    build_messages,
    image_parts,
    load_image,
    plain_text,
    text_only,
)
from trainer.generation.sampling import GenerationRequest, SamplingConfig

logger = logging.getLogger(__name__)

__all__ = ["TransformersSampler"]


class TransformersSampler:
    """``model.generate`` in process.

    Args:
        model: model directory or hub id.
        device: torch device; default CUDA when available, else CPU.
        dtype: ``auto`` or a torch dtype name.
        batch_size: prompts per ``generate`` call when decoding greedily.
    """

    def __init__(
        self, model: str, device: str | None = None, dtype: str = "auto", batch_size: int = 8
    ) -> None:
        import torch
        from transformers import AutoConfig

        self.torch = torch
        self.name = model
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        config = AutoConfig.from_pretrained(model)
        self.multimodal = getattr(config, "vision_config", None) is not None
        if self.multimodal:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self.processor = AutoProcessor.from_pretrained(model)
            self.tokenizer = self.processor.tokenizer
            self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.to(self.device).eval()
        self._warned_images = False

    # -- prompt rendering

    def _render(self, request: GenerationRequest, sampling: SamplingConfig) -> tuple[str, list]:
        messages = build_messages(request.prompt, request.images, sampling.system_prompt)
        images = image_parts(messages)
        if not self.multimodal:
            if images and not self._warned_images:
                logger.warning("%s is a text-only model: prompt images are dropped", self.name)
                self._warned_images = True
            messages, images = text_only(messages), []
        template_owner = self.processor or self.tokenizer
        if getattr(template_owner, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None
        ):
            text = template_owner.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        else:
            text = plain_text(messages)
        return text, [load_image(im) for im in images]

    def _encode(self, texts: list[str], images: list[list]) -> dict:
        if self.processor is not None:
            flat = [im for ims in images for im in ims]
            enc = self.processor(text=texts, images=flat or None, padding=True, return_tensors="pt")
        else:
            enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in enc.items()}

    def _decode(self, out, prompt_len: int) -> list[str]:
        return self.tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)

    # -- generation

    def generate(
        self, requests: Sequence[GenerationRequest], n: int, sampling: SamplingConfig
    ) -> list[list[str]]:
        torch = self.torch
        gen_kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens}
        if sampling.greedy:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            gen_kwargs.update(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p
            )
        pad = self.tokenizer.pad_token_id
        results: list[list[str]] = []
        with torch.inference_mode():
            if sampling.greedy:
                # Greedy decoding does not consume randomness: batch prompts, copy for n > 1.
                for start in range(0, len(requests), self.batch_size):
                    chunk = requests[start : start + self.batch_size]
                    rendered = [self._render(r, sampling) for r in chunk]
                    enc = self._encode([t for t, _ in rendered], [ims for _, ims in rendered])
                    out = self.model.generate(**enc, **gen_kwargs, pad_token_id=pad)
                    texts = self._decode(out, enc["input_ids"].shape[1])
                    results.extend([t] * n for t in texts)
            else:
                # One prompt per call, seeded by the prompt: its samples never depend on batching.
                for request in requests:
                    text, images = self._render(request, sampling)
                    enc = self._encode([text], [images])
                    torch.manual_seed(request.seed)
                    out = self.model.generate(
                        **enc, **gen_kwargs, num_return_sequences=n, pad_token_id=pad
                    )
                    results.append(self._decode(out, enc["input_ids"].shape[1]))
        return results

    def close(self) -> None:
        del self.model

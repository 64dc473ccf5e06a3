"""``RewardJudge``: the judge's model on replicas of its own (made a deployment by
``application``).

A replica builds the backend ``REWARD_JUDGE_BACKEND`` names (``transformers`` or ``vllm``)
from the same ``REWARD_JUDGE_*`` variables the ingress reads, loads it in its constructor
(Serve sends it nothing until then, so a replica added by the autoscaler takes work only
once its model is in memory), and serves the backend's two batch calls to the ingress's
``RayJudgeBackend``. Prompts, parsing and micro-batching stay in the ingress: this
deployment only runs the model, so it can sit on the GPU nodes and scale with them.

``check_health`` fails when the model is not servable, and Serve replaces the replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reward_server.judge.backends.base import LOADED, Failure, JudgeBackend, NoAnswer
from reward_server.judge.factory import build_backend, judge_config
from reward_server.judge.prompts import JudgeInput
from reward_server.settings import Settings


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
        node_id: the Ray node the replica runs on (for operators and the placement test).
    """

    name: str
    model: str
    state: str
    detail: str
    sees_images: bool
    score_prefix_space: bool
    identity: dict[str, str]
    node_id: str


class RewardJudge:
    """One judge replica: a loaded backend and its batch calls.

    Args:
        backend: the backend to serve; ``None`` builds the one the ``REWARD_JUDGE_*``
            environment names (what the Serve application does).
    """

    async def __init__(self, backend: JudgeBackend | None = None) -> None:
        self.backend = backend or build_backend(judge_config(Settings()))
        await self.backend.load()

    def describe(self) -> JudgeDescription:
        import ray

        b = self.backend
        return JudgeDescription(
            name=b.name, model=b.model, state=b.state, detail=b.detail,
            sees_images=b.sees_images, score_prefix_space=b.score_prefix_space,
            identity=b.served_identity(), node_id=ray.get_runtime_context().get_node_id(),
        )

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure | NoAnswer]:
        """The backend's ``generate`` on one batch the ingress formed."""
        return await self.backend.generate(inputs, max_new_tokens)

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure | NoAnswer]:
        """The backend's ``next_token_probs`` on one batch the ingress formed."""
        return await self.backend.next_token_probs(inputs, candidates)

    def check_health(self) -> None:
        """Serve's periodic probe: a replica whose model is not servable is replaced."""
        if self.backend.state != LOADED:
            raise RuntimeError(f"judge {self.backend.model}: {self.backend.state} "
                               f"({self.backend.detail})")

    async def __del__(self) -> None:
        await self.backend.aclose()

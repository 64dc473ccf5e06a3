"""The Serve application: ``RewardIngress`` (+ ``RewardJudge``), and its defaults.

``configs/ray-serve.yaml`` names ``build_app`` as its ``import_path``; ``serve run`` /
``serve deploy`` call it with the config's ``args``. Every option below is a default the
config may override per deployment (``deployments:``): replicas, autoscaling, resources.

Defaults, and why:

* ``RewardIngress``: 1 CPU a replica, autoscaling 1 to 4 replicas on
  ``target_ongoing_requests=16`` with up to 128 requests in a replica. A rules request takes
  milliseconds of CPU; a judge request mostly waits for the judge, so a replica holds many,
  and the more it holds the fuller the judge's micro-batches are.
* ``RewardJudge``: ``num_gpus`` a replica (0 on a CPU cluster), autoscaling 1 to 2 replicas
  on ``target_ongoing_requests=2`` batches (one running, one queued behind it: a model runs
  one batch at a time), at most 16 calls in a replica. The replica runs one batch at a time
  behind a lock of its own, so the calls it holds beyond that wait outside the model and the
  ingress's readiness probe (``describe``) never queues behind a batch.

Micro-batching is the service's own (``reward_server.batching`` inside the ingress's judge
engine), not ``@serve.batch``: it is the code path uvicorn runs, it batches samples (not
requests) under a monotonic deadline, mixes rubrics in one batch, bounds the queue with the
contract's 503 and reports the ``reward_judge_*`` metrics. ``@serve.batch`` on the judge would
form a second batch out of the ingress's batches and add its wait to every call.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from reward_server.ray_serve.ingress import RewardIngressApp
from reward_server.ray_serve.judge_server import RewardJudge
from reward_server.settings import Settings

INGRESS = "RewardIngress"
JUDGE = "RewardJudge"

INGRESS_AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16,
    "upscale_delay_s": 10, "downscale_delay_s": 120,
}
JUDGE_AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
    "upscale_delay_s": 10, "downscale_delay_s": 300,
}


class AppArgs(BaseModel):
    """The config's ``args`` (all optional).

    Attributes:
        judge_deployment: run the judge as its own deployment (``auto``: when
            ``REWARD_JUDGE_BACKEND`` is ``transformers`` or ``vllm``; an ``openai`` judge is
            already a server of its own, which the ingress calls directly).
        judge_gpus: ``num_gpus`` of each judge replica (also settable in ``deployments:``).
    """

    judge_deployment: bool | None = Field(None, description="None: auto")
    judge_gpus: float = 0.0


def _wants_judge(args: AppArgs, settings: Settings) -> bool:
    if args.judge_deployment is not None:
        return args.judge_deployment and settings.has_judge
    return settings.judge_backend in ("transformers", "vllm")


def ingress_deployment() -> Any:
    """``RewardIngress`` with the defaults above (``.options(...)`` to change them)."""
    from ray import serve

    return serve.deployment(
        serve.ingress()(RewardIngressApp),
        name=INGRESS,
        ray_actor_options={"num_cpus": 1},
        max_ongoing_requests=128,
        autoscaling_config=INGRESS_AUTOSCALING,
    )


def judge_deployment(gpus: float = 0.0) -> Any:
    """``RewardJudge`` with the defaults above, ``gpus`` GPUs a replica."""
    from ray import serve

    return serve.deployment(
        RewardJudge,
        name=JUDGE,
        ray_actor_options={"num_cpus": 1, "num_gpus": gpus},
        max_ongoing_requests=16,
        autoscaling_config=JUDGE_AUTOSCALING,
        health_check_period_s=10,
    )


def build_app(args: dict[str, Any] | None = None) -> Any:
    """The application for ``serve run`` / ``serve deploy`` (``import_path`` of the config).

    Args:
        args: the config's ``args`` (``AppArgs``).

    Returns:
        A bound Serve ``Application``: the ingress, with the judge bound into it when the
        application has a judge deployment.
    """
    parsed = AppArgs(**(args or {}))
    settings = Settings()  # the application's runtime_env carries the REWARD_* variables
    if not _wants_judge(parsed, settings):
        return ingress_deployment().bind()
    return ingress_deployment().bind(judge_deployment(parsed.judge_gpus).bind())

"""Case ``ray_serve``: what Ray Serve costs over plain uvicorn, on the same machine, same run.

Two paths, each against the same service under both servers:

* rules ``/score``, batch 256 (``safegrpo``, cache off): ``python -m reward_server`` vs the
  ``RewardIngress`` deployment behind Serve's proxy;
* the judge path (8-sample ``safer_vlm`` requests, the tiny random Qwen2 judge in
  ``logprob`` mode, cache off): the judge in the uvicorn process vs the ``RewardJudge``
  deployment called by the ingress through a ``DeploymentHandle``.

Serve runs on a local Ray (2 CPUs, 127.0.0.1), one replica each, ``num_cpus=0`` so Ray's
accounting never holds a replica back. Serve adds a process hop on every request (proxy to
replica; and ingress to judge on the judge path), which is what the ratios measure. Each
path runs two rounds against uvicorn, then two against Serve, and the better round of each
counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import httpx

from bench.judge_cases import _bodies, _judge_env
from bench.load import LoadResult, run_load
from bench.servers import RewardServer, free_port
from bench.workload import bodies

RULES_BATCH = 256


def _serve_apps(port: int, judge_env: dict[str, str]) -> None:
    """Start Ray and Serve here, and deploy the rules app at ``/rules`` and the judge app
    (ingress + judge deployment) at ``/judge``."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every address 127.0.0.1
    import ray
    from ray import serve

    from reward_server.ray_serve.application import ingress_deployment, judge_deployment

    # a Ray of its own even when another runs on this machine (ray.init() would join it)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")

    def actor(env: dict[str, str]) -> dict[str, Any]:
        return {"num_cpus": 0, "runtime_env": {"env_vars": env}}

    fixed = {"num_replicas": 1, "autoscaling_config": None}
    rules = ingress_deployment().options(ray_actor_options=actor({"REWARD_CACHE_SIZE": "0"}),
                                         **fixed)
    serve.run(rules.bind(), name="rules", route_prefix="/rules")
    judge = judge_deployment().options(ray_actor_options=actor(judge_env), **fixed)
    ingress = ingress_deployment().options(ray_actor_options=actor(judge_env), **fixed)
    serve.run(ingress.bind(judge.bind()), name="judge", route_prefix="/judge")
    _wait_judge_ready(f"http://127.0.0.1:{port}/judge")


def _wait_judge_ready(url: str, timeout: float = 180) -> None:
    """Until the ingress has heard from its judge deployment (its first probe)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if httpx.get(url + "/profiles", timeout=5).json()["profiles"]["safer_vlm"]["ready"]:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Serve judge app at {url} was not ready after {timeout} s")


def _stop_serve() -> None:
    """Serve (if it started), then Ray (if it started); Ray even when Serve's stop raised."""
    import ray
    from ray import serve

    try:
        if ray.is_initialized():
            serve.shutdown()
    finally:
        ray.shutdown()


def _best(url: str, data: list[bytes], per_body: int, clients: int, seconds: float,
          rounds: int = 2) -> list[LoadResult]:
    return [asyncio.run(run_load(url, data, per_body, clients, seconds, warmup=2))
            for _ in range(rounds)]


def _row(label: str, plain: list[LoadResult], serve: list[LoadResult]) -> dict[str, Any]:
    p = max(plain, key=lambda r: r.samples_per_s)
    s = max(serve, key=lambda r: r.samples_per_s)
    return {
        "label": label,
        "uvicorn": p.as_dict(),
        "serve": s.as_dict(),
        "throughput_ratio": round(s.samples_per_s / p.samples_per_s, 3)
        if p.samples_per_s else None,
        "p50_ratio": round(s.p50_ms / p.p50_ms, 3) if p.p50_ms else None,
    }


def case_ray_serve(cfg: dict[str, Any]) -> dict[str, Any]:
    """Serve / uvicorn throughput and p50 ratios, rules batch 256 and the judge path."""
    # One torch thread on both sides, set explicitly (the replicas get it through their
    # runtime_env): a tiny model on two contended cores is faster on one thread than on two,
    # and a thread count that differed would credit Serve with a difference that is torch's.
    judge_env = _judge_env("logprob", REWARD_JUDGE_MAX_BATCH=str(cfg["judge_batch"]),
                           OMP_NUM_THREADS="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rules_data = bodies(max(4, cfg["bodies"] // 16), RULES_BATCH, salt="ray-rules")
    judge_data = _bodies(cfg["judge_bodies"], 8, "ray-judge")  # safer_vlm, no labels
    rows = []
    try:
        _serve_apps(port, judge_env)  # inside: a deployment that fails still stops Ray
        with RewardServer({"REWARD_CACHE_SIZE": "0"}) as plain:
            a = _best(plain.url + "/score", rules_data, RULES_BATCH, cfg["concurrency"],
                      cfg["seconds"])
            b = _best(base + "/rules/score", rules_data, RULES_BATCH, cfg["concurrency"],
                      cfg["seconds"])
            rows.append(_row(f"rules /score, batch {RULES_BATCH}", a, b))
        with RewardServer(judge_env, ready_path="/ready", timeout=180) as plain:
            # a judge request takes seconds here: windows of several of them
            window = 5 * cfg["seconds"]
            a = _best(plain.url + "/score", judge_data, 8, cfg["judge_clients"], window)
            b = _best(base + "/judge/score", judge_data, 8, cfg["judge_clients"], window)
            rows.append(_row("judge path, 8 samples/request", a, b))
    finally:
        _stop_serve()
    return {"case": "ray_serve", "rows": rows}

"""A Ray cluster of simulated nodes on this machine, and the reward service on it.

One cluster serves the whole module set (starting one takes ~10 s; each Serve application
10–30 s more), always torn down, on failure too:

* ``head``: 1 CPU, resource ``svc`` (the service's node; the proxy runs here);
* ``gpu-less judge node``: 1 CPU, resource ``judge`` (``RewardJudge`` is pinned to it).

Two CPUs in all, everything on 127.0.0.1; the proxy binds a free port. Serve's proxies get
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` (a lost replica answers 503 + Retry-After)
and short autoscaling intervals from the environment the nodes start in.

``reward_app`` deploys the committed ``configs/ray-serve.yaml`` with the ``serve run`` CLI,
changed only where a test must: the port, ``proxy_location: HeadOnly`` (every simulated
node shares 127.0.0.1, so one proxy per node would collide), the cache's Redis, the tiny
judge, and node pinning through custom resources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Ray's address resolution as on a laptop: every node, the GCS and every driver on 127.0.0.1
# (on Linux Ray otherwise swaps a loopback address for the machine's IP). Ray reads it when
# it is imported, so it is set before the import below; the nodes inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

pytest.importorskip("ray.serve", reason="the Ray tier needs the ray extra (make test-ray)")

from tests.fakes.servers import ROOT, RedisServer, RewardServer, free_port

CONFIG = ROOT / "configs" / "ray-serve.yaml"
APP = "reward"
#: A boundary secret shared by the Serve app and the uvicorn reference, so the judge sees
#: the same prompts in both (random per process otherwise).
SECRET = "ray-tier-boundary-secret"

NODE_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "reward_server.ray_serve.proxy:middlewares",
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_DEDUP_LOGS": "0",
}


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at ``timeout``
    (a bound on a hung cluster, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


class RayCluster:
    """The simulated cluster: ``ray.cluster_utils.Cluster`` plus Serve's proxy on a port."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "resources": {"svc": 8}, "include_dashboard": True,
                            "dashboard_port": free_port()},
        )
        try:
            self.judge_node = self.cluster.add_node(num_cpus=1, resources={"judge": 1})
            self.cluster.wait_for_nodes()
        except BaseException:
            self.cluster.shutdown()  # the head is running: stop it before failing
            raise
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.cluster.address

    def shutdown(self) -> None:
        """Serve, the driver, then the nodes: each step runs even when one before raised."""
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                serve.shutdown()
        finally:
            try:
                ray.shutdown()
            finally:
                self.cluster.shutdown()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    import ray
    from ray import serve

    with pytest.MonkeyPatch.context() as env:
        for key, value in NODE_ENV.items():
            env.setenv(key, value)
        env.setenv("PYTHONPATH", str(ROOT))
        cluster = RayCluster()
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            serve.start(http_options={"host": "127.0.0.1", "port": cluster.port},
                        proxy_location="HeadOnly")
            yield cluster
        finally:
            cluster.shutdown()


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


def judge_env(model: Path) -> dict[str, str]:
    """The tiny transformers judge, deterministic (``logprob``) with a fixed boundary."""
    return {"REWARD_JUDGE_BACKEND": "transformers", "REWARD_JUDGE_MODEL": str(model),
            "REWARD_JUDGE_MODE": "logprob", "REWARD_JUDGE_BOUNDARY_SECRET": SECRET,
            "REWARD_JUDGE_DEVICE": "cpu"}


def cluster_config(port: int, env: dict[str, str], path: Path) -> Path:
    """The committed config with what the test cluster needs changed (see the module)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = port
    [app] = config["applications"]
    app["runtime_env"]["env_vars"] = env
    [ingress] = app["deployments"]
    ingress["ray_actor_options"] = {"num_cpus": 0, "resources": {"svc": 1}}
    app["deployments"].append({
        "name": "RewardJudge",
        "ray_actor_options": {"num_cpus": 1, "num_gpus": 0, "resources": {"judge": 1}},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
    })
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def reward_app(ray_cluster: RayCluster, redis: RedisServer, tiny_qwen2: Path,
               tmp_path_factory: pytest.TempPathFactory) -> str:
    """``serve run --non-blocking`` of the committed config (ingress + tiny judge, Redis
    cache, default profile ``safegrpo_plus``); returns the proxy's URL once ``/ready``."""
    env = {"REWARD_REDIS_URL": redis.url, "REWARD_PROFILE": "safegrpo_plus",
           **judge_env(tiny_qwen2)}
    config = cluster_config(ray_cluster.port, env, tmp_path_factory.mktemp("serve") / "app.yaml")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "serve"), "run", "--non-blocking",
         "--address", ray_cluster.address, str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **NODE_ENV, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    url = ray_cluster.url

    wait_for(lambda: judge_ready(url), 240, "the Serve app's judge profiles")
    return url


def judge_ready(url: str) -> bool:
    """Whether the service at ``url`` can score ``safer_vlm`` now (its judge loaded).

    urllib, not httpx: the suite's wire check reads ``/openapi.json`` of every server an
    httpx answer came from, and must not read it before the Serve app is up.
    """
    try:
        with urllib.request.urlopen(url + "/profiles", timeout=5) as reply:
            return json.load(reply)["profiles"]["safer_vlm"]["ready"] is True
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="session")
def reference(redis: RedisServer, tiny_qwen2: Path) -> Iterator[RewardServer]:
    """``python -m reward_server`` with the same settings (its own Redis database, so the
    two never answer from each other's cache)."""
    env = {"REWARD_REDIS_URL": redis.url[:-1] + "1", "REWARD_PROFILE": "safegrpo_plus",
           **judge_env(tiny_qwen2)}
    with RewardServer(env, ready_path="/ready", timeout=120) as server:
        wait_for(lambda: judge_ready(server.url), 120, "the reference's judge")
        yield server


def replicas(app: str, deployment: str) -> dict[str, int]:
    """Replica counts by state of one deployment, from ``serve.status()``."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return {}
    return {str(k): v for k, v in status.deployments[deployment].replica_states.items()}


def rules_ingress(**options: Any) -> Any:
    """The committed ingress deployment for a rules-only test application (embedded
    defaults), on a ``svc`` node and with ``options`` changed."""
    from reward_server.ray_serve.application import ingress_deployment

    actor = {"num_cpus": 0, "resources": {"svc": 1}}
    return ingress_deployment().options(ray_actor_options=actor, **options)


def replica_nodes(app: str, deployment: str) -> list[str]:
    """Node ids of the live replicas of one deployment (Ray's state API)."""
    from ray.util.state import list_actors

    return [a.node_id for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if a.class_name == f"ServeReplica:{app}:{deployment}"]


def replica_names(app: str, deployment: str) -> list[str]:
    from ray.util.state import list_actors

    return [a.name for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if a.class_name == f"ServeReplica:{app}:{deployment}"]


def rules_samples(n: int, tag: str = "") -> list[dict[str, Any]]:
    """``n`` distinct labelled samples (distinct responses: nothing is a cache hit)."""
    out = []
    for i in range(n):
        unsafe = i % 3 == 0
        combined = "unsafe" if unsafe else "safe"
        answer = "Sorry, I cannot help." if i % 2 else f"Here is how, step {i}{tag}."
        out.append({
            "id": f"{tag}{i}", "prompt": f"question {i}",
            "response": (f"<think>{tag} {i} <visual_safe>safe</visual_safe><text_safe>"
                         f"{combined}</text_safe><combined_safe>{combined}</combined_safe>"
                         f"</think><answer>{answer}</answer>"),
            "labels": {"image_tag": "safe", "text_tag": combined, "combine_tag": combined},
        })
    return out

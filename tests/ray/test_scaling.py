"""Serve scales the ingress on load and replaces what dies, and no sample is lost.

* a node is removed while bounded load runs against replicas on two nodes: every request
  gets its full, correct results (the proxy answers the requests that lost their replica
  503 + Retry-After and the client sends them again), and Serve brings the deployment back
  to two replicas when a node joins;
* the judge's replica is killed under judge load: every sample is still scored, equal to
  its score before;
* a bounded burst scales the ingress from 1 to 2 replicas, and quiet scales it back.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from clients import RewardClient
from tests.fakes.servers import RewardServer
from tests.ray.conftest import (
    APP,
    replica_names,
    replica_nodes,
    replicas,
    rules_ingress,
    rules_samples,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)


def scores(results: list) -> list[tuple[Any, str, float | None]]:
    return [(r.id, r.status, r.reward) for r in results]


def test_a_node_removed_under_load_loses_no_sample(ray_cluster, reward_app: str) -> None:
    """(``reward_app`` serves ``/`` beside these prefixed apps, so the suite's wire check
    can read the service's ``/openapi.json`` at the proxy's root.)"""
    from ray import serve

    spare = ray_cluster.cluster.add_node(num_cpus=0, resources={"svc": 8})
    app = rules_ingress(num_replicas=2, autoscaling_config=None, max_replicas_per_node=1)
    serve.run(app.bind(), name="spread", route_prefix="/spread")
    try:
        wait_for(lambda: replicas("spread", "RewardIngress") == {"RUNNING": 2}, 120,
                 "two ingress replicas")
        assert spare.node_id in replica_nodes("spread", "RewardIngress")

        # the client as the docs leave it: default retries (3, honouring Retry-After)
        client = RewardClient(ray_cluster.url + "/spread", timeout=60)
        batches = [rules_samples(128, f"n{i}-") for i in range(48)]
        expected = [scores(client.score(b, "safegrpo")) for b in batches[:2]]
        assert all(s == "ok" for e in expected for _, s, _ in e)

        done = threading.Semaphore(0)

        def send(batch: list[dict]) -> list:
            try:
                return client.score(batch, "safegrpo")
            finally:
                done.release()

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(send, b) for b in batches]
            for _ in range(8):  # the load is running: some requests answered, most not
                done.acquire()
            ray_cluster.cluster.remove_node(spare, allow_graceful=False)
            results = [f.result() for f in futures]  # a lost sample raises here

        assert [len(r) for r in results] == [len(b) for b in batches]
        assert scores(results[0]) == expected[0] and scores(results[1]) == expected[1]
        assert all(r.ok for batch in results for r in batch)
        assert [r.id for batch in results for r in batch] == [
            s["id"] for b in batches for s in b]

        # Serve replaces the lost replica once a node can hold it
        ray_cluster.cluster.add_node(num_cpus=0, resources={"svc": 8})
        wait_for(lambda: replicas("spread", "RewardIngress") == {"RUNNING": 2}, 180,
                 "the lost replica replaced")
    finally:
        serve.delete("spread")


def test_the_judge_replica_killed_under_load_loses_no_sample(reward_app: str,
                                                            reference: RewardServer) -> None:
    import ray

    samples = rules_samples(6, "judge-kill-")
    client = RewardClient(reward_app, max_retries=8, timeout=120)
    before = scores(client.score(samples, "safer_vlm"))
    assert all(s == "ok" for _, s, _ in before)

    fresh = [rules_samples(6, f"judge-kill-{i}-") for i in range(6)]
    expected_ids = [[s["id"] for s in b] for b in fresh]
    [victim] = replica_names(APP, "RewardJudge")
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(client.score, b, "safer_vlm") for b in fresh]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        results = [f.result() for f in futures]
    assert [[r.id for r in b] for b in results] == expected_ids
    assert all(r.ok and r.reward is not None for b in results for r in b)
    # every score, whichever judge replica (the killed one or its replacement) computed it,
    # is the one uvicorn's in-process judge gives (its own Redis database: nothing cached)
    # (to 1e-6: a batch formed of other samples may pad differently)
    plain = RewardClient(reference.url, timeout=120)
    for served, batch in zip(results, fresh, strict=True):
        expected = scores(plain.score(batch, "safer_vlm"))
        assert [(i, s) for i, s, _ in scores(served)] == [(i, s) for i, s, _ in expected]
        assert [r for *_, r in scores(served)] == pytest.approx([r for *_, r in expected],
                                                                abs=1e-6)
    wait_for(lambda: replicas(APP, "RewardJudge") == {"RUNNING": 1}, 120, "a judge replica")


def test_a_burst_scales_the_ingress_to_two_replicas_and_back(ray_cluster,
                                                            reward_app: str) -> None:
    from ray import serve

    app = rules_ingress(max_ongoing_requests=4, autoscaling_config={
        "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1,
        "upscale_delay_s": 0, "downscale_delay_s": 2,
        "metrics_interval_s": 0.5, "look_back_period_s": 2,
    })
    serve.run(app.bind(), name="scale", route_prefix="/scale")
    try:
        wait_for(lambda: replicas("scale", "RewardIngress") == {"RUNNING": 1}, 120,
                 "one ingress replica")
        client = RewardClient(ray_cluster.url + "/scale", max_retries=8, timeout=60,
                              chunk_size=512)
        scaled = threading.Event()
        sent: list[int] = []

        def burst(worker: int) -> bool:
            """Requests until the deployment has two replicas, at most 60 of them."""
            for i in range(60):
                if scaled.is_set():
                    break
                results = client.score(rules_samples(512, f"b{worker}-{i}-"), "safegrpo_plus")
                assert all(r.ok for r in results)
                sent.append(len(results))
                if replicas("scale", "RewardIngress").get("RUNNING") == 2:
                    scaled.set()
            return scaled.is_set()

        with ThreadPoolExecutor(6) as pool:
            assert any(pool.map(burst, range(6))), f"no scale-up after {len(sent)} requests"
        wait_for(lambda: replicas("scale", "RewardIngress") == {"RUNNING": 1}, 180,
                 "the scale-down to one replica")
    finally:
        serve.delete("scale")

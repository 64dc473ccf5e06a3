"""The judge stack on a CPU: two replicas of the EXTRA=hf image, each with the judge in
process (transformers, a tiny random Qwen2 built here), behind `lb`, sharing a Redis that
requires a password (REDIS_PASSWORD). `safer_vlm` is scored through the published port."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.compose.stack import Stack

SAMPLES = [
    {"prompt": "How do I pick a lock?",
     "response": "<think>A lock.</think><answer>Sorry, I can't help with that.</answer>"},
    {"prompt": "How do I store apples?",
     "response": "<think>Fruit.</think><answer>Keep them cool and dry.</answer>"},
    {"prompt": "Is bleach safe to drink?", "response": "<answer>No, never.</answer>"},
]


@pytest.fixture(scope="module")
def stack(models_dir, static_nginx_conf):
    s = Stack(["docker-compose.rules.yml", "tests/compose/judge-cpu.yml"],
              {"SERVICE_REPLICAS": "2", "NGINX_CONF": str(static_nginx_conf),
               "MODELS_DIR": str(models_dir), "REDIS_PASSWORD": "tier0secret"})
    try:
        s.up()
        s.wait_ready(300)
        yield s
    finally:
        s.down()


def test_replicas_load_the_judge_and_reach_redis_with_its_password(stack):
    for container in stack.containers("reward-server"):
        body = json.loads(stack.in_container(container, "/ready")["text"])
        assert body["status"] == "ready" and body["profile"] == "safer_vlm", body
        assert body["judge"]["backend"] == "transformers" and body["judge"]["ready"], body
        assert body["cache"]["reachable"] is True, body
    # Redis really requires it: a client without the password is refused.
    redis = stack.containers("redis")[0]
    out = subprocess.run(["docker", "exec", redis, "redis-cli", "ping"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "NOAUTH" in out, out


def test_safer_vlm_scored_through_lb_and_cached_for_every_replica(stack):
    body = {"profile": "safer_vlm", "samples": SAMPLES}
    first = stack.post("/score", body, timeout=300)
    assert first.status_code == 200, first.text
    results = first.json()["results"]
    assert [r["status"] for r in results] == ["ok"] * len(SAMPLES), results
    assert all(0.0 <= r["reward"] <= 1.0 for r in results)
    assert all(r["judge"] is not None and r["cached"] is False for r in results), results
    # Every replica now answers it from the shared (password-protected) Redis.
    for container in stack.containers("reward-server"):
        again = json.loads(stack.in_container(container, "/score", body, timeout=120)["text"])
        assert [r["cached"] for r in again["results"]] == [True] * len(SAMPLES), again
        assert again["rewards"] == first.json()["rewards"]

"""The contract through Serve's proxy equals ``python -m reward_server``'s, on the same
requests: rules and the tiny transformers judge (its own deployment, on its own node),
errors, OpenRLHF's route and the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ray.conftest import APP, replicas

pytestmark = pytest.mark.timeout(600)

LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
REFUSAL = ("<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
           "<combined_safe>unsafe</combined_safe></think><answer>Sorry, I cannot help.</answer>")
HELPFUL = ("<think>Step 1: fine. <visual_safe>safe</visual_safe><text_safe>safe</text_safe>"
           "<combined_safe>safe</combined_safe></think><answer>Knead, rest, bake.</answer>")
SAMPLES = [
    {"id": "a", "prompt": "How do I pick a lock?", "response": REFUSAL, "labels": LABELS},
    {"id": "b", "prompt": "Bread?", "response": HELPFUL, "labels": {"combine_tag": "safe"}},
    {"id": "c", "prompt": "Bread?", "response": "no tags at all"},           # unlabelled
    {"id": "d", "prompt": "x", "response": HELPFUL, "labels": {"combined_tag": "safe"}},  # typo
]
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

# (method, path, body): every route, and each kind of whole-request error.
REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/score", {"profile": "safegrpo", "samples": SAMPLES}),
    ("POST", "/score", {"samples": SAMPLES}),                                # default profile
    ("POST", "/score", {"profile": "safegrpo_plus",
                        "samples": [{**SAMPLES[0], "images": [PNG]}]}),    # an image
    ("POST", "/score", {"profile": "nope", "samples": SAMPLES}),             # 400
    ("POST", "/score", {"samples": [{"prompt": "x"}]}),                      # 422
    ("POST", "/score", {"samples": [SAMPLES[0]] * 1025}),                    # 413
    ("POST", "/get_reward", {"query": ["Q? " + REFUSAL], "prompts": ["Q? "],
                             "labels": [LABELS]}),
    ("GET", "/health", None),
    ("GET", "/profiles", None),
    ("GET", "/openapi.json", None),
    # the judge, on its deployment: generate nothing, read scores (logprob), gate, penalties
    ("POST", "/score", {"profile": "safer_vlm", "samples": SAMPLES[:3]}),
    ("POST", "/score", {"profile": "hybrid", "samples": SAMPLES[:2]}),
]


def answer(url: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    reply = httpx.request(method, url + path, json=body, timeout=120)
    return reply.status_code, reply.json()


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two JSON values differ, as paths (a readable failure for large bodies)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(k), b.get(k), f"{at}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{at}/{i}")]
    return [] if a == b else [f"{at}: {a!r:.150} != {b!r:.150}"]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS,
                         ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(REQUESTS)])
def test_serve_answers_as_uvicorn_does(reward_app: str, reference, method: str, path: str,
                                       body: Any) -> None:
    served = answer(reward_app, method, path, body)
    plain = answer(reference.url, method, path, body)
    assert served[0] == plain[0]
    assert not differences(served[1], plain[1])


def test_ready_through_the_proxy_names_the_judge_deployment(reward_app: str) -> None:
    body = httpx.get(reward_app + "/ready", timeout=10).json()
    assert body["status"] == "ready" or httpx.get(reward_app + "/ready").status_code == 200
    assert "RewardJudge replica" in str(body)


def test_service_and_judge_run_on_different_nodes(reward_app: str, ray_cluster) -> None:
    from ray.util.state import list_actors

    nodes: dict[str, set[str]] = {}
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
        for deployment in ("RewardIngress", "RewardJudge"):
            if actor.class_name == f"ServeReplica:{APP}:{deployment}":
                nodes.setdefault(deployment, set()).add(actor.node_id)
    assert nodes["RewardJudge"] == {ray_cluster.judge_node.node_id}
    assert nodes["RewardIngress"] and not nodes["RewardIngress"] & nodes["RewardJudge"]
    assert replicas(APP, "RewardJudge") == {"RUNNING": 1}


def test_a_judge_result_is_shared_through_redis(reward_app: str) -> None:
    """A second identical request is answered from the shared cache."""
    body = {"profile": "safer_vlm", "samples": [{**SAMPLES[1], "id": "cache-probe"}]}
    first = httpx.post(reward_app + "/score", json=body, timeout=120).json()
    second = httpx.post(reward_app + "/score", json=body, timeout=120).json()
    assert second["rewards"] == first["rewards"]
    assert second["results"][0]["cached"] is True

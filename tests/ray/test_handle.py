"""The handle path equals the HTTP path: the same requests through a ``DeploymentHandle``
(``clients.ray_handle``) and through Serve's proxy get the same answers, for the raw call,
the sync and async clients, and the OpenRLHF and verl adapters (the verl reward loop itself
scores through the handle in the verl tier)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest

from clients import AsyncRewardClient, RewardClient
from clients.adapters import verl
from clients.adapters.openrlhf import make_reward_func
from clients.models import Result
from clients.ray_handle import HANDLE_URL, ServeHandleTransport, app_handle
from tests.ray.conftest import APP, rules_samples
from tests.ray.test_contract import REFUSAL, REQUESTS, SAMPLES, differences

pytestmark = pytest.mark.timeout(600)


def uncached(value: Any) -> Any:
    """``value`` without the ``cached`` flags: the second of two identical requests is
    answered from the shared Redis (``cached: true``), which is the point of sharing it."""
    if isinstance(value, dict):
        return {k: uncached(v) for k, v in value.items() if k != "cached"}
    if isinstance(value, list):
        return [uncached(v) for v in value]
    if isinstance(value, Result):
        return dataclasses.replace(value, cached=False)
    return value


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS,
                         ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(REQUESTS)])
def test_handle_request_answers_as_the_proxy_does(reward_app: str, method: str, path: str,
                                                  body: Any) -> None:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = [("content-type", "application/json")]
    status, _, content = app_handle(APP).handle_request.remote(
        method, path, headers, raw).result(timeout_s=120)
    reply = httpx.request(method, reward_app + path, json=body, timeout=120)
    assert status == reply.status_code
    assert not differences(uncached(json.loads(content)), uncached(reply.json()))


def test_clients_score_the_same_through_the_handle(reward_app: str) -> None:
    samples = [*SAMPLES, *rules_samples(300, "handle")]  # 300 > chunk size: two requests
    for profile in ("safegrpo", "safer_vlm"):
        over_http = RewardClient(reward_app, chunk_size=256).score(samples, profile)
        handle = RewardClient(HANDLE_URL, chunk_size=256,
                              transport=ServeHandleTransport(app_handle(APP)))
        assert uncached(handle.score(samples, profile)) == uncached(over_http)

        async def through_async(profile: str = profile) -> list:
            client = AsyncRewardClient(HANDLE_URL, transport=ServeHandleTransport(APP))
            try:
                return await client.score(samples, profile)
            finally:
                await client.aclose()

        assert uncached(asyncio.run(through_async())) == uncached(over_http)
        assert sum(r.ok for r in over_http) >= len(samples) - 2  # c and d are invalid


def test_openrlhf_reward_func_through_the_handle(reward_app: str) -> None:
    queries = ["Q? " + REFUSAL, "Q? no answer tags", "other prompt"]
    prompts = ["Q? ", "Q? ", "missing"]
    labels = [json.dumps(SAMPLES[0]["labels"]), {"combine_tag": "safe"}, None]
    http = make_reward_func(reward_app, invalid_reward=0.0, components=["format", "tag"])
    handle = make_reward_func(invalid_reward=0.0, components=["format", "tag"], handle=APP)
    a, b = http(queries, prompts, labels), handle(queries, prompts, labels)
    assert b["rewards"].tolist() == a["rewards"].tolist()
    assert {k: v.tolist() for k, v in b["extra_logs"].items()} == {
        k: v.tolist() for k, v in a["extra_logs"].items()}
    assert a["extra_logs"]["valid"].tolist() == [1.0, 1.0, 0.0]


def test_verl_compute_score_through_the_handle(reward_app: str) -> None:
    sample = SAMPLES[0]
    common = {"invalid_score": 0.0, "components": ["format", "tag", "behavior"],
              "profile": "safegrpo"}

    async def both() -> tuple[dict, dict]:
        http = await verl.compute_score("safetag", sample["response"], sample["labels"],
                                        {"prompt": sample["prompt"]}, url=reward_app, **common)
        handle = await verl.compute_score("safetag", sample["response"], sample["labels"],
                                          {"prompt": sample["prompt"]}, ray_app=APP, **common)
        return http, handle

    http, handle = asyncio.run(both())
    assert handle == http
    assert http["score"] == 1.0 and http["valid"] == 1.0

"""A healthy sample's reward does not wait for other samples' hung judge calls.

Four requests whose judge calls hang take all four of the openai backend's batch slots;
a healthy sample sent a second later is answered without waiting for them to time out. The real
service and a real HTTP judge here; the bound is a liveness bound (half the judge timeout,
which the hung calls need to time out), not a speed target.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from reward_server.elastic import ElasticSlots
from tests.fakes.scripted_openai import ChatRequest, Delayed, ScriptedOpenAIServer, verdict_json
from tests.fakes.servers import RewardServer

MODEL = "scripted-judge"
TIMEOUT_S = 16.0


def responder(request: ChatRequest):
    if "HANG" in request.text:
        return Delayed(120, verdict_json())  # longer than the timeout: never answers in time
    return verdict_json()


def sample(text: str) -> dict:
    return {"prompt": "What is shown here?",
            "response": f"<think>ok</think><answer>{text}</answer>"}  # fmt: skip


def score(server: RewardServer, text: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + "/score", timeout=timeout,
                      json={"profile": "safer_vlm", "samples": [sample(text)]})  # fmt: skip


@pytest.mark.parametrize("hung_requests", [4, 12])
def test_a_healthy_sample_is_not_held_behind_hung_judge_calls(hung_requests):
    with ScriptedOpenAIServer(responder, model=MODEL) as judge, RewardServer(
        {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": MODEL,
         "REWARD_JUDGE_BASE_URL": judge.url, "REWARD_JUDGE_TIMEOUT_S": str(TIMEOUT_S),
         "REWARD_JUDGE_MAX_WAIT_MS": "5"},
        ready_path="/ready",
    ) as server:  # fmt: skip
        hung: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda i=i: hung.append(score(server, f"HANG {i}")))
                   for i in range(hung_requests)]  # fmt: skip
        for thread in threads:  # apart, so that each is a batch of its own
            thread.start()
            time.sleep(0.2)
        deadline = time.monotonic() + 15
        while len(judge.matching("HANG")) < hung_requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(judge.matching("HANG")) == hung_requests  # every hung call is in flight
        time.sleep(1.0)

        start = time.monotonic()
        healthy = score(server, "A red door.")
        waited = time.monotonic() - start
        assert healthy.status_code == 200, healthy.text
        assert healthy.json()["results"][0]["status"] == "ok"
        assert waited < TIMEOUT_S / 2, f"the healthy sample waited {waited:.1f} s"

        for thread in threads:
            thread.join(timeout=TIMEOUT_S * 3)
        # The hung ones end as the contract says: a 503 with Retry-After, never a reward.
        assert [r.status_code for r in hung] == [503] * hung_requests
        assert all("Retry-After" in r.headers for r in hung)


async def test_stalled_holders_are_bounded():
    """A judge that hangs every call costs at most ``size + max_stalled`` in flight."""
    import asyncio

    slots = ElasticSlots(size=2, max_stalled=3, floor_s=0.01, ceiling_s=0.01)
    forever = asyncio.Event()
    holding = 0

    async def hang() -> None:
        nonlocal holding
        async with slots.held():
            holding += 1
            await forever.wait()

    tasks = [asyncio.create_task(hang()) for _ in range(10)]
    await asyncio.sleep(0.5)
    assert holding == 5  # 2 slots + 3 stalled; the other 5 wait
    forever.set()
    await asyncio.gather(*tasks)
    assert holding == 10 and slots.stalled == 0

"""A cached reward is served only for the judge that made it, and no credential of the
judge's reaches a response.

Real services, a real Redis and real HTTP judges: two replicas share one Redis and one
``REWARD_JUDGE_MODEL`` name but call different judges, a judge restarts on another
checkpoint behind the same name, a user pins a revision; and a judge URL with a password
in it must not show it in ``/ready`` or a 503.
"""

from __future__ import annotations

import time

import httpx

from tests.fakes.scripted_openai import ScriptedOpenAIServer, verdict_json
from tests.fakes.servers import RewardServer

MODEL = "judge"
SAMPLE = {"prompt": "What is shown here?", "response": "<think>ok</think><answer>A door.</answer>"}
HIGH, LOW = verdict_json(9, 9, 9, 9, 9), verdict_json(3, 3, 3, 3, 3)


def replica(judge_url: str, redis_url: str, **extra: str) -> RewardServer:
    env = {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": MODEL,
           "REWARD_JUDGE_BASE_URL": judge_url, "REWARD_REDIS_URL": redis_url,
           "REWARD_JUDGE_MAX_WAIT_MS": "5", **extra}  # fmt: skip
    return RewardServer(env, ready_path="/ready")


def score(server: RewardServer) -> dict:
    reply = httpx.post(server.url + "/score", timeout=30,
                       json={"profile": "safer_vlm", "samples": [SAMPLE]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return {**reply.json()["results"][0], "rubric_version": reply.json()["rubric_version"]}


def test_replicas_calling_different_judges_do_not_share_rewards(redis_server):
    with ScriptedOpenAIServer(lambda r: HIGH, model=MODEL) as a, \
            ScriptedOpenAIServer(lambda r: LOW, model=MODEL) as b, \
            replica(a.url, redis_server.url) as first, replica(b.url, redis_server.url) as second:
        by_a, by_b = score(first), score(second)
        assert by_a["cached"] is False and by_b["cached"] is False
        assert by_b["reward"] < by_a["reward"]
        assert by_a["rubric_version"] != by_b["rubric_version"]
        assert score(first)["cached"] is True  # each replica still hits its own judge's
        assert score(second)["reward"] == by_b["reward"]


def test_a_new_checkpoint_behind_the_same_name_is_a_new_judge(redis_server):
    with ScriptedOpenAIServer(lambda r: HIGH, model=MODEL) as judge:
        judge.root = "/ckpt/step-100"
        with replica(judge.url, redis_server.url, REWARD_JUDGE_REVISION="test-a") as server:
            before = score(server)
            assert score(server)["cached"] is True
            judge.root, judge.responder = "/ckpt/step-200", (lambda r: LOW)
            deadline = time.monotonic() + 20  # the judge is probed every 5 s
            while "step-200" not in httpx.get(server.url + "/ready").text:
                assert time.monotonic() < deadline, httpx.get(server.url + "/ready").text
                time.sleep(0.2)
            after = score(server)
            assert after["cached"] is False and after["reward"] < before["reward"]
            assert after["rubric_version"] != before["rubric_version"]


def test_the_revision_setting_separates_judges_that_look_alike(redis_server):
    with ScriptedOpenAIServer(lambda r: HIGH, model=MODEL) as judge:
        with replica(judge.url, redis_server.url, REWARD_JUDGE_REVISION="step-1") as one:
            assert score(one)["cached"] is False
            assert score(one)["cached"] is True
        with replica(judge.url, redis_server.url, REWARD_JUDGE_REVISION="step-2") as two:
            assert score(two)["cached"] is False


def test_judge_credentials_never_reach_a_response(redis_server):
    password, key = "pw-7f3a91", "sk-key-52be0c"
    with ScriptedOpenAIServer(lambda r: HIGH, model=MODEL) as judge:
        url = judge.url.replace("http://", f"http://ann:{password}@")
        with replica(url, redis_server.url, REWARD_JUDGE_API_KEY=key) as server:
            assert score(server)["status"] == "ok"  # the credentials still reach the judge
            assert judge.requests[-1].headers["authorization"] == f"Bearer {key}"
            judge.stop()  # now every message is about an unreachable judge at that URL
            deadline = time.monotonic() + 20
            while httpx.get(server.url + "/ready").status_code == 200:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            ready = httpx.get(server.url + "/ready").text
            failed = httpx.post(server.url + "/score", timeout=30, json={
                "profile": "safer_vlm", "samples": [{**SAMPLE, "response": "other"}]})
            assert failed.status_code == 503
            assert "unreachable" in ready or "Connect" in ready
            for text in (ready, failed.text, httpx.get(server.url + "/profiles").text):
                assert password not in text and key not in text
                assert "ann:" not in text

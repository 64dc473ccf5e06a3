"""Graceful shutdown: SIGTERM lets in-flight requests finish and their results reach the cache."""

from __future__ import annotations

import json
import threading
import time

import httpx
import redis

from tests.scripted_openai import Delayed, ScriptedOpenAIServer, verdict_json
from tests.servers import RewardServer
from tests.test_judge_scripted import MODEL, judge_env, wait_ready


def test_sigterm_finishes_in_flight_judge_requests(redis_server):
    slow = ScriptedOpenAIServer(lambda request: Delayed(1.5, verdict_json()), model=MODEL)
    try:
        env = judge_env(slow.url, REWARD_REDIS_URL=redis_server.url, REWARD_JUDGE_MAX_WAIT_MS=1)
        server = RewardServer(env)
        wait_ready(server)
        sample = {"prompt": "shutdown-test", "response": "<think>x</think><answer>y</answer>"}
        box: dict = {}

        def call():
            box["r"] = httpx.post(server.url + "/score",
                                  json={"profile": "safer_vlm", "samples": [sample]}, timeout=30)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.5)  # the request is now waiting on the judge
        server.stop(timeout=20)  # SIGTERM, then wait for the process to exit
        t.join()
        assert box["r"].status_code == 200, box["r"].text
        result = box["r"].json()["results"][0]
        assert result["status"] == "ok" and 0.0 <= result["reward"] <= 1.0
        assert server.proc.returncode is not None
        stored = [json.loads(redis.Redis.from_url(redis_server.url).get(k))
                  for k in redis.Redis.from_url(redis_server.url).keys("rwd:v1:*")]
        assert any(s["reward"] == result["reward"] and s["judge"] for s in stored)
    finally:
        slow.stop()

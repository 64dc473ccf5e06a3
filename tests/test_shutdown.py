"""Graceful shutdown: SIGTERM lets in-flight requests finish and their results reach the cache."""

from __future__ import annotations

import json
import threading
import time

import httpx
import redis

from reward_server.cache import KEY_PREFIX, cache_key
from reward_server.domain import Sample
from tests.fakes.scripted_openai import Delayed, ScriptedOpenAIServer, verdict_json
from tests.fakes.servers import RewardServer
from tests.test_judge_scripted import MODEL, judge_env, wait_ready


def test_sigterm_finishes_in_flight_judge_requests(redis_server):
    slow = ScriptedOpenAIServer(lambda request: Delayed(1.5, verdict_json()), model=MODEL)
    try:
        env = judge_env(slow.url, REWARD_REDIS_URL=redis_server.url, REWARD_JUDGE_MAX_WAIT_MS=1)
        server = RewardServer(env)
        wait_ready(server)
        judge_identity = httpx.get(server.url + "/ready").json()["judge"]
        sample = {"prompt": "shutdown-test", "response": "<think>x</think><answer>y</answer>"}
        box: dict = {}

        def call():
            box["r"] = httpx.post(server.url + "/score",
                                  json={"profile": "safer_vlm", "samples": [sample]}, timeout=30)

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 20  # until the judge holds the request (a bound, not a pace)
        while not slow.matching("shutdown-test") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.matching("shutdown-test"), "the request never reached the judge"
        server.stop(timeout=20)  # SIGTERM, then wait for the process to exit
        t.join()
        assert box["r"].status_code == 200, box["r"].text
        body = box["r"].json()
        result = body["results"][0]
        assert result["status"] == "ok" and 0.0 <= result["reward"] <= 1.0
        assert server.proc.returncode is not None
        # Exactly this sample's entry, in a Redis other tests share.
        key = cache_key(Sample(prompt=sample["prompt"], response=sample["response"]),
                        body["rubric_version"], judge_identity)
        stored = redis.Redis.from_url(redis_server.url).get(KEY_PREFIX + key)
        assert stored is not None, "the finished result did not reach the cache"
        record = json.loads(stored)
        assert record["reward"] == result["reward"] and record["judge"] == result["judge"]
        assert "cached" not in record  # set when read back, never stored
    finally:
        slow.stop()

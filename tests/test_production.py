"""Production behaviour over real HTTP: Redis cache, outages, auth, request ids.

``/get_reward`` (OpenRLHF's protocol) has its own file, ``tests/test_get_reward.py``.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import redis

from reward_server.cache import KEY_PREFIX, cache_key
from reward_server.domain import Labels, Sample
from tests.fakes.servers import RedisServer, RewardServer

LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}


def response(answer: str) -> str:
    return (
        "<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
        f"<combined_safe>unsafe</combined_safe></think><answer>{answer}</answer>"
    )


def score(server, samples, profile="safegrpo", **kw):
    return httpx.post(server.url + "/score", json={"profile": profile, "samples": samples},
                      timeout=30, **kw)


def test_redis_cache_survives_server_restart_and_keys_have_ttl(redis_server):
    env = {"REWARD_REDIS_URL": redis_server.url, "REWARD_CACHE_TTL_S": "3600"}
    s = {"prompt": "restart", "response": response("I cannot do that."), "labels": LABELS}
    with RewardServer(env) as server:
        first_body = score(server, [s]).json()
        first = first_body["results"][0]
        assert first["cached"] is False and first["reward"] == 1.0
        ready = httpx.get(server.url + "/ready").json()
        assert ready["cache"] == {"backend": "redis", "reachable": True}
    with RewardServer(env) as server:
        again = score(server, [s]).json()["results"][0]
        assert again["cached"] is True and again["reward"] == 1.0
        other_body = score(server, [s], profile="safegrpo_plus").json()
        assert other_body["results"][0]["cached"] is False
    # Exactly this test's two entries (the Redis is shared with other tests).
    sample = Sample(prompt=s["prompt"], response=s["response"], labels=Labels(**LABELS))
    client = redis.Redis.from_url(redis_server.url)
    for body in (first_body, other_body):
        key = KEY_PREFIX + cache_key(sample, body["rubric_version"], None)
        assert 0 < client.ttl(key) <= 3600
        stored = json.loads(client.get(key))
        assert stored["status"] == "ok" and stored["reward"] == 1.0 and "components" in stored
        assert "cached" not in stored  # set when read back, never stored


def test_short_ttl_expires(redis_server):
    env = {"REWARD_REDIS_URL": redis_server.url, "REWARD_CACHE_TTL_S": "1"}
    s = {"prompt": "ttl", "response": response("No."), "labels": LABELS}
    with RewardServer(env) as server:
        score(server, [s])
        assert score(server, [s]).json()["results"][0]["cached"] is True
        time.sleep(2.2)
        assert score(server, [s]).json()["results"][0]["cached"] is False


def test_redis_killed_mid_load_and_restarted():
    red = RedisServer()
    port = red.port
    env = {"REWARD_REDIS_URL": red.url}
    errors: list[str] = []
    done = threading.Event()
    counts = [0]

    def load(worker: int):
        with httpx.Client(timeout=30) as client:
            i = 0
            while not done.is_set():
                refuse = i % 2 == 0
                answer = "Sorry, I can't." if refuse else "Sure, here is how."
                s = {"prompt": f"w{worker}-{i % 7}", "response": response(answer),
                     "labels": LABELS}
                r = client.post(server.url + "/score",
                                json={"profile": "safegrpo", "samples": [s]})
                expected = 1.0 if refuse else 0.5
                if r.status_code != 200 or r.json()["rewards"] != [expected]:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                counts[0] += 1
                i += 1

    with RewardServer(env) as server:
        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        red.kill()
        time.sleep(1.0)
        down = httpx.get(server.url + "/ready").json()["cache"]
        red = RedisServer(port=port)  # back on the same port: recovery must be automatic
        time.sleep(1.5)
        done.set()
        for t in threads:
            t.join()
        up = httpx.get(server.url + "/ready").json()["cache"]
        metrics = httpx.get(server.url + "/metrics").text
    red.stop()
    assert errors == []
    assert counts[0] > 20
    assert down["reachable"] is False and up["reachable"] is True
    assert "reward_cache_errors_total" in metrics


@pytest.fixture(scope="module")
def keyed_server():
    with RewardServer({"REWARD_API_KEY": "s3cret"}) as server:
        yield server


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic s3cret"}, 401),
        ({"Authorization": "Bearer s3cret"}, 200),
    ],
)
def test_api_key_on_scoring_routes(keyed_server, headers, status):
    s = {"prompt": "p", "response": response("No."), "labels": LABELS}
    assert score(keyed_server, [s], headers=headers).status_code == status
    r = httpx.post(keyed_server.url + "/get_reward", json={"query": ["x"]}, headers=headers)
    assert r.status_code == status
    if status == 401:
        assert "API key" in r.json()["error"]


def test_open_routes_need_no_key(keyed_server):
    for path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json", "/profiles"):
        assert httpx.get(keyed_server.url + path).status_code == 200, path


def test_request_id_is_echoed_or_generated(rules_server):
    r = httpx.get(rules_server.url + "/health", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert len(httpx.get(rules_server.url + "/health").headers["x-request-id"]) == 16


def test_logs_are_json_lines_with_request_id():
    with RewardServer({"REWARD_LOG_LEVEL": "info"}) as server:
        httpx.post(server.url + "/score", json={"samples": []}, headers={"X-Request-ID": "r-77"})
        time.sleep(0.3)
        lines = [json.loads(line) for line in server.output().splitlines()
                 if line.startswith("{")]
    entries = [e for e in lines if e.get("request_id") == "r-77"]
    assert entries and entries[0]["route"] == "/score" and entries[0]["status"] == 200
    assert {"ts", "level", "logger", "msg", "duration_ms"} <= set(entries[0])


def test_quiet_by_default(rules_server):
    httpx.get(rules_server.url + "/health")
    assert "request" not in rules_server.output()


def test_metrics_count_samples_rewards_and_cache():
    with RewardServer() as server:
        ok = {"prompt": "m", "response": response("No."), "labels": LABELS}
        bad = {"prompt": "m", "response": response("No.")}
        score(server, [ok, ok, bad])
        score(server, [ok])
        text = httpx.get(server.url + "/metrics").text
    assert 'reward_samples_total{profile="safegrpo",status="ok"} 3.0' in text
    assert 'reward_samples_total{profile="safegrpo",status="invalid"} 1.0' in text
    assert 'reward_value_count{profile="safegrpo"} 3.0' in text
    assert 'reward_value_bucket{le="1.0",profile="safegrpo"} 3.0' in text
    assert 'reward_cache_total{outcome="hit"} 1.0' in text
    assert 'reward_cache_total{outcome="miss"} 1.0' in text
    assert 'reward_cache_total{outcome="dedup"} 1.0' in text
    assert 'reward_requests_total{route="/score",status="200"} 2.0' in text

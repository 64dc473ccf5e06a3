"""A frozen Redis (SIGSTOP: connections are accepted, nothing is answered) costs one
timeout per breaker interval, not one or two per request; once it answers again and the
interval has passed, the cache is used again. Rewards are the same either way.

Each test freezes its own redis-server (never the session's shared one) and resumes it
in teardown. The in-process tests drive the breaker's interval with a ``ManualClock``;
the HTTP test runs the service as deployed (default interval) over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import httpx
import pytest
import redis

from reward_server.cache import KEY_PREFIX, CacheRecord, LRUCache, RedisCache
from reward_server.domain import Labels, Sample, Status
from reward_server.metrics import Metrics
from reward_server.profiles import BUILTIN_PROFILES
from reward_server.service import ScoringService
from tests.fakes.manual_clock import ManualClock
from tests.fakes.metrics import metric
from tests.fakes.servers import RedisServer, RewardServer

TIMEOUT_S = 0.5  # RedisCache's socket timeout: what each operation on a frozen Redis costs
INTERVAL_S = 5.0
N = 20
LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}


def response(i: int) -> str:
    answer = "Sorry, I can't help with that." if i % 2 == 0 else "Sure, here is how."
    return ("<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
            f"<combined_safe>unsafe</combined_safe></think><answer>{answer}</answer>")


def sample(i: int) -> Sample:
    return Sample(prompt=f"breaker-{i}", response=response(i), labels=Labels(**LABELS))


@pytest.fixture
def red():
    server = RedisServer()
    yield server
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def freeze(server: RedisServer) -> None:
    os.kill(server.proc.pid, signal.SIGSTOP)


def resume(server: RedisServer) -> None:
    os.kill(server.proc.pid, signal.SIGCONT)


class Setup:
    """The service in-process on a ``RedisCache`` with a manual clock, and a reference
    service without any cache (what every reward must be)."""

    def __init__(self, url: str) -> None:
        self.clock = ManualClock()
        self.metrics = Metrics()
        self.cache = RedisCache(
            url, 60, on_error=lambda op: self.metrics.cache_errors.labels(op).inc(),
            socket_timeout_s=TIMEOUT_S, breaker_s=INTERVAL_S, now=self.clock.now,
        )
        self.svc = ScoringService(BUILTIN_PROFILES, "safegrpo", self.cache, None, self.metrics)
        self.ref = ScoringService(BUILTIN_PROFILES, "safegrpo", LRUCache(0), None)

    def redis_failures(self) -> float:
        """Reads and writes that reached Redis and failed (each one a timeout when frozen)."""
        get = self.metrics.registry.get_sample_value
        return sum(get("reward_cache_errors_total", {"op": op}) or 0.0 for op in ("get", "set"))

    async def score(self, i: int) -> bool:
        """Score sample ``i``; check its reward against the reference; was it cached?"""
        got = (await self.svc.score(None, [sample(i)])).results[0]
        want = (await self.ref.score(None, [sample(i)])).results[0]
        assert got.status == Status.OK and got.reward == want.reward, (got, want)
        return got.cached


async def test_frozen_redis_costs_one_timeout_per_interval_then_recovers(red):
    s = Setup(red.url)
    assert await s.score(0) is False and await s.score(0) is True  # Redis in use
    freeze(red)

    started = time.monotonic()
    cached = [await s.score(i) for i in range(1, N + 1)]
    elapsed = time.monotonic() - started
    assert cached == [False] * N
    assert s.redis_failures() == 1  # the first read timed out; the rest never asked Redis
    assert elapsed < 5 * TIMEOUT_S  # without the breaker: a read and a write timeout each
    state = await s.cache.status()
    assert state["reachable"] is False and state["breaker"] == "open"

    # After the interval one call probes Redis; it times out too and the breaker re-opens.
    s.clock.advance(INTERVAL_S)
    assert [await s.score(i) for i in range(N + 1, 2 * N + 1)] == [False] * N
    assert s.redis_failures() == 2

    # Redis answers again, but until the interval has passed the cache is skipped: a miss,
    # and nothing is written (the repeat is not a hit).
    resume(red)
    assert await s.score(100) is False and await s.score(100) is False
    assert (await s.cache.status())["breaker"] == "open"
    s.clock.advance(INTERVAL_S)
    assert await s.score(100) is False  # the probe: answered (a miss), breaker closed, stored
    assert await s.score(100) is True
    assert await s.score(0) is True  # what was cached before the outage is there again
    assert await s.cache.status() == {"backend": "redis", "reachable": True}
    assert s.redis_failures() == 2
    await s.cache.aclose()


async def test_one_probe_at_a_time_and_a_cancelled_probe_frees_the_next(red):
    s = Setup(red.url)
    record = CacheRecord(0.25, {"x": 1.0}, {}, None)
    redis.Redis.from_url(red.url).set(KEY_PREFIX + "probe-key", record.dumps())
    assert await s.cache.get_many(["probe-key"]) == [record]
    freeze(red)
    assert await s.cache.get_many(["probe-key"]) == [None]  # times out: breaker opens
    assert s.redis_failures() == 1

    s.clock.advance(INTERVAL_S)
    probe = asyncio.create_task(s.cache.get_many(["probe-key"]))
    await asyncio.sleep(0.05)  # the probe is now waiting on the frozen Redis
    assert not probe.done()
    # While the probe is out, other calls skip Redis (at once, no failure counted).
    assert await s.cache.get_many(["probe-key"]) == [None]
    await s.cache.set_many([("written-while-probing", record.result())])
    assert s.redis_failures() == 1
    probe.cancel()  # e.g. the client went away mid-request
    with contextlib.suppress(asyncio.CancelledError):
        await probe

    resume(red)
    # The cancelled probe decided nothing: the next call probes, and Redis is read again.
    assert await s.cache.get_many(["probe-key"]) == [record]
    assert await s.cache.get_many(["probe-key"]) == [record]
    assert await s.cache.get_many(["written-while-probing"]) == [None]  # skipped, not queued
    assert s.redis_failures() == 1
    await s.cache.aclose()


def test_frozen_redis_over_http_costs_one_timeout_not_one_per_request(red):
    with RewardServer({"REWARD_REDIS_URL": red.url}) as server, httpx.Client(
        base_url=server.url, timeout=60
    ) as client:
        def score(i: int) -> dict:
            s = {"prompt": f"http-breaker-{i}", "response": response(i), "labels": LABELS}
            r = client.post("/score", json={"profile": "safegrpo", "samples": [s]})
            assert r.status_code == 200, r.text
            return r.json()["results"][0]

        assert score(0)["cached"] is False and score(0)["cached"] is True
        freeze(red)
        started = time.monotonic()
        results = [score(i) for i in range(1, N + 1)]
        elapsed = time.monotonic() - started
        assert [r["reward"] for r in results] == [1.0 if i % 2 == 0 else 0.5
                                                  for i in range(1, N + 1)]
        assert all(r["status"] == "ok" and r["cached"] is False for r in results)
        failures = sum(metric(server.url, "reward_cache_errors_total", op=op)
                       for op in ("get", "set"))
        # Without the breaker every request paid a read and a write timeout: 2N failures.
        assert failures < 5, failures
        assert elapsed < 8 * TIMEOUT_S, elapsed  # generous: 2N timeouts without the breaker
        cache = client.get("/ready").json()["cache"]
        assert cache["reachable"] is False and cache["breaker"] == "open", cache

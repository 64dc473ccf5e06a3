"""The scoring pipeline without HTTP: in-flight dedup, cancellation, cache outages."""

from __future__ import annotations

import asyncio

import pytest

from reward_server.cache import LRUCache, RedisCache, cache_key
from reward_server.domain import Image, Labels, Message, Sample
from reward_server.metrics import Metrics
from reward_server.profiles import BUILTIN_PROFILES
from reward_server.scorers.safer_vlm import JudgeVerdict
from reward_server.service import ScoringService
from tests.scripted_judge import ScriptedJudge

VERDICT = JudgeVerdict(9, 9, 9, 9, 9, 0, 0, "fine")
ANSWER = "<think>ok</think><answer>Sorry, I can't help with that.</answer>"


def service(judge, cache=None, **kw):
    return ScoringService(BUILTIN_PROFILES, "safer_vlm", cache or LRUCache(100), judge, **kw)


async def test_concurrent_identical_samples_are_judged_once():
    judge = ScriptedJudge(VERDICT, delay_s=0.05)
    svc = service(judge)
    same = Sample(prompt="p", response=ANSWER)
    outs = await asyncio.gather(*[svc.score("safer_vlm", [same, same]) for _ in range(20)])
    assert judge.calls == 1  # 40 identical samples in 20 concurrent requests
    rewards = {o.results[0]["reward"] for o in outs} | {o.results[1]["reward"] for o in outs}
    assert len(rewards) == 1
    assert svc._inflight == {}


async def test_cancelled_owner_does_not_strand_waiters_and_result_is_cached():
    judge = ScriptedJudge(VERDICT, delay_s=0.1)
    svc = service(judge)
    s = Sample(prompt="p", response=ANSWER)
    owner = asyncio.create_task(svc.score("safer_vlm", [s]))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(svc.score("safer_vlm", [s]))
    await asyncio.sleep(0.01)
    owner.cancel()  # the client that started the computation disconnects
    result = await waiter
    assert result.results[0]["status"] == "ok" and judge.calls == 1
    await svc.drain()
    again = await svc.score("safer_vlm", [s])
    assert again.results[0]["cached"] is True and judge.calls == 1
    assert svc._inflight == {} and not svc._tasks


async def test_no_answer_skips_the_judge():
    judge = ScriptedJudge(VERDICT)
    out = await service(judge).score("safer_vlm", [Sample(prompt="p", response="no tags")])
    assert out.results[0]["reward"] == 0.0 and out.results[0]["components"] == {"format": 0.0}
    assert judge.calls == 0


def _image(b: bytes) -> Image:
    import hashlib

    return Image(b, hashlib.sha256(b).hexdigest(), "image/png")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s, r, j: (s, "other", j), "rubric version"),
        (lambda s, r, j: (s, r, {**j, "model": "m2"}), "judge model"),
        (lambda s, r, j: (s, r, {**j, "mode": "logprob"}), "judge mode"),
        (lambda s, r, j: (Sample(prompt="q", response=s.response, images=s.images,
                                 labels=s.labels), r, j), "prompt"),
        (lambda s, r, j: (Sample(prompt=s.prompt, response=s.response,
                                 images=[_image(b"y")], labels=s.labels), r, j), "image bytes"),
        (lambda s, r, j: (Sample(prompt=s.prompt, response="x", images=s.images,
                                 labels=s.labels), r, j), "response"),
        (lambda s, r, j: (Sample(prompt=s.prompt, response=s.response, images=s.images,
                                 labels=Labels(combine_tag="safe")), r, j), "labels"),
        (lambda s, r, j: (Sample(prompt=[Message("user", "p")], response=s.response,
                                 images=s.images, labels=s.labels), r, j), "chat vs text"),
    ],
)
def test_cache_key_covers_everything_that_decides_the_reward(change, why):
    base = Sample(prompt="p", response=ANSWER, images=[_image(b"x")],
                  labels=Labels(combine_tag="unsafe"))
    judge = {"model": "m", "mode": "generate", "prompt": "v1"}
    key = cache_key(base, "r", judge)
    assert cache_key(base, "r", dict(judge)) == key
    assert cache_key(*change(base, "r", judge)) != key, why


async def test_redis_outage_means_uncached_not_failed():
    metrics = Metrics()
    # nothing listens on port 1: every Redis call fails fast
    cache = RedisCache("redis://127.0.0.1:1/0", 60,
                       on_error=lambda op: metrics.cache_errors.labels(op).inc())
    svc = ScoringService(BUILTIN_PROFILES, "safegrpo_plus", cache, None, metrics)
    s = Sample(prompt="p", response=ANSWER, labels=Labels(combine_tag="unsafe"))
    out = await svc.score(None, [s, s])
    assert [r["status"] for r in out.results] == ["ok", "ok"]
    assert (await cache.status())["reachable"] is False
    assert metrics.cache_errors.labels("get")._value.get() >= 1
    await cache.aclose()

"""The scoring pipeline without HTTP: in-flight dedup, cancellation, cache outages."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from reward_server.availability import PartialOutage
from reward_server.cache import CacheRecord, LRUCache, RedisCache, cache_key
from reward_server.domain import Image, Labels, Message, Sample, ScoreResult, Status
from reward_server.errors import ScorerUnavailable
from reward_server.metrics import Metrics
from reward_server.profiles import BUILTIN_PROFILES
from reward_server.rubric import SAFER_VLM, JudgeVerdict
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.safer_vlm import aggregate
from reward_server.service import ScoringService
from tests.fakes.fixed_verdict_judge import FixedVerdictJudge

VERDICT = JudgeVerdict.of(9, 9, 9, 9, 9, 0, 0, rationale="fine")
ANSWER = "<think>ok</think><answer>Sorry, I can't help with that.</answer>"
VERDICT_REWARD = aggregate(VERDICT, SAFER_VLM).reward


def service(judge, cache=None, **kw):
    return ScoringService(BUILTIN_PROFILES, "safer_vlm", cache or LRUCache(100), judge, **kw)


async def test_concurrent_identical_samples_are_judged_once():
    judge = FixedVerdictJudge(VERDICT, delay_s=0.05)
    svc = service(judge, cache=LRUCache(0))  # no cache: only in-flight sharing can dedupe
    same = Sample(prompt="p", response=ANSWER)
    outs = await asyncio.gather(*[svc.score("safer_vlm", [same, same]) for _ in range(20)])
    assert judge.calls == 1  # 40 identical samples in 20 concurrent requests
    rewards = {o.results[0].reward for o in outs} | {o.results[1].reward for o in outs}
    assert len(rewards) == 1
    # Once answered, the computation is no longer shared: a later request (the cache is
    # off) asks the judge again instead of reading a stale in-flight entry.
    await svc.score("safer_vlm", [same])
    assert judge.calls == 2


async def test_results_are_typed_and_each_carries_its_own_sample_id():
    judge = FixedVerdictJudge(VERDICT)
    a = Sample(prompt="p", response=ANSWER, id="a")
    b = Sample(prompt="p", response=ANSWER, id=7)  # same content: computed once
    bad = Sample(prompt="p", response=ANSWER, id="bad", error="samples[2]: not an image")
    out = await service(judge).score("safer_vlm", [a, b, bad])
    assert all(isinstance(r, ScoreResult) for r in out.results)
    assert [r.id for r in out.results] == ["a", 7, "bad"]
    assert [r.status for r in out.results] == [Status.OK, Status.OK, Status.INVALID]
    assert out.results[0].reward == out.results[1].reward and judge.calls == 1
    assert out.results[2].reward is None and out.results[2].error == "samples[2]: not an image"


async def test_cancelled_owner_does_not_strand_waiters_and_result_is_cached():
    judge = FixedVerdictJudge(VERDICT, delay_s=0.1)
    svc = service(judge)
    s = Sample(prompt="p", response=ANSWER)
    owner = asyncio.create_task(svc.score("safer_vlm", [s]))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(svc.score("safer_vlm", [s]))
    await asyncio.sleep(0.01)
    owner.cancel()  # the client that started the computation disconnects
    result = await waiter
    assert result.results[0].status == Status.OK and judge.calls == 1
    again = await svc.score("safer_vlm", [s])
    assert again.results[0].cached is True and judge.calls == 1


async def test_drain_waits_for_computations_nobody_awaits_any_more():
    judge = FixedVerdictJudge(VERDICT, delay_s=0.1)
    cache = LRUCache(100)
    svc = service(judge, cache=cache)
    s = Sample(prompt="p", response=ANSWER)
    key = cache_key(s, svc.scorer("safer_vlm").rubric_version, judge.identity)
    request = asyncio.create_task(svc.score("safer_vlm", [s]))
    for _ in range(1000):  # until the judge has the sample
        if judge.calls:
            break
        await asyncio.sleep(0)
    assert judge.calls == 1
    request.cancel()  # its only client went away (shutdown, or a disconnect)
    assert await cache.get_many([key]) == [None]
    await svc.drain()
    [record] = await cache.get_many([key])
    assert record is not None and record.result().reward == VERDICT_REWARD


async def test_no_answer_skips_the_judge():
    judge = FixedVerdictJudge(VERDICT)
    out = await service(judge).score("safer_vlm", [Sample(prompt="p", response="no tags")])
    assert out.results[0].reward == 0.0 and out.results[0].components == {"format": 0.0}
    assert judge.calls == 0


class _PartlyAnsweringScorer(ProfileScorer):
    """Answers every sample but the one whose response is ``"hangs"`` (a judge outage)."""

    async def score(self, samples):
        answered = [None if s.response == "hangs" else ScoreResult.ok(0.5) for s in samples]
        raise PartialOutage("judge: 1 call timed out", answered, retry_after=3)


async def test_a_partial_outage_is_a_503_but_caches_what_was_answered():
    cache = LRUCache(100)
    svc = ScoringService(BUILTIN_PROFILES, "safegrpo", cache)
    scorer = _PartlyAnsweringScorer(BUILTIN_PROFILES["safer_vlm"], "r1")
    svc.scorers["partly"] = scorer
    fine, hangs = Sample(prompt="p", response="fine"), Sample(prompt="p", response="hangs")
    with pytest.raises(ScorerUnavailable) as raised:
        await svc.score("partly", [fine, hangs])
    assert raised.value.retry_after == 3
    records = await cache.get_many([cache_key(fine, "r1", None), cache_key(hangs, "r1", None)])
    assert records[0] is not None and records[0].reward == 0.5
    assert records[1] is None
    again = await svc.score("partly", [fine])  # the retry of what was answered is a hit
    assert again.results[0].cached is True and again.results[0].reward == 0.5


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


def test_cache_record_stores_the_result_without_its_request_fields():
    result = ScoreResult.ok(0.75, id="a", components={"tag": 0.5}, penalties={"judge.x": -2.0},
                            judge={"rationale": "ok"})
    blob = CacheRecord.of(result).dumps()
    assert orjson.loads(blob) == {"status": "ok", "reward": 0.75, "components": {"tag": 0.5},
                                  "penalties": {"judge.x": -2.0}, "judge": {"rationale": "ok"}}
    read = CacheRecord.loads(blob).result("b")  # read back for another sample
    assert read == ScoreResult.ok(0.75, id="b", components={"tag": 0.5},
                                  penalties={"judge.x": -2.0}, judge={"rationale": "ok"},
                                  cached=True)
    with pytest.raises(ValueError):
        CacheRecord.of(ScoreResult.invalid("labels missing"))  # only ok results are cached


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b'{"status":"ok","reward":1,"components":{},"penalties":{},"judge":null}',
         CacheRecord(1.0, {}, {}, None)),
        # a key a record does not have: not a record
        (b'{"status":"ok","reward":1,"components":{},"penalties":{},"judge":null,'
         b'"cached":false,"error":null}', None),
        (b'{"status":"ok","reward":1,"components":{},"penalties":{}}', None),  # one missing
        (b"not json", None),
        (b"[1, 2]", None),  # not an object
        (b'{"status":"invalid","reward":null}', None),  # never stored, never trusted
        (b'{"status":"ok","reward":"1","components":{},"penalties":{},"judge":null}', None),
        (b'{"status":"ok","reward":true,"components":{},"penalties":{},"judge":null}', None),
        (b'{"status":"ok","reward":1,"components":[],"penalties":{},"judge":null}', None),
    ],
    ids=["record", "extra-key", "missing-key", "not-json", "not-object", "invalid",
         "text-reward", "bool-reward", "bad-components"],
)
def test_cache_record_reads_anything_else_as_a_miss(blob, expected):
    assert CacheRecord.loads(blob) == expected


async def test_redis_outage_means_uncached_not_failed():
    metrics = Metrics()
    # nothing listens on port 1: every Redis call fails fast
    cache = RedisCache("redis://127.0.0.1:1/0", 60,
                       on_error=lambda op: metrics.cache_errors.labels(op).inc())
    svc = ScoringService(BUILTIN_PROFILES, "safegrpo_plus", cache, None, metrics)
    s = Sample(prompt="p", response=ANSWER, labels=Labels(combine_tag="unsafe"))
    out = await svc.score(None, [s, s])
    assert [r.status for r in out.results] == [Status.OK, Status.OK]
    assert (await cache.status())["reachable"] is False
    assert metrics.registry.get_sample_value("reward_cache_errors_total", {"op": "get"}) >= 1
    await cache.aclose()

"""The judge path under concurrent HTTP load, end to end: in-flight dedup, backpressure,
and a judge that hangs while the scoring pool is full."""

from __future__ import annotations

import threading
import time

import httpx

from tests.fakes.scripted_openai import Delayed, ScriptedOpenAIServer, verdict_json
from tests.fakes.servers import RewardServer
from tests.test_judge_scripted import MODEL, judge_env, wait_ready

ANSWER = "<think>ok</think><answer>Sorry, I can't help with that.</answer>"


def post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
    out: list[httpx.Response | None] = [None] * len(bodies)

    def call(k: int) -> None:
        out[k] = httpx.post(url + "/score", json=bodies[k], timeout=60)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


def test_concurrent_identical_requests_call_the_judge_once():
    judge = ScriptedOpenAIServer(lambda r: Delayed(0.5, verdict_json()), model=MODEL)
    with judge, RewardServer(judge_env(judge.url)) as server:
        wait_ready(server)
        body = {"profile": "safer_vlm",
                "samples": [{"prompt": "same refusal", "response": ANSWER}] * 3}
        responses = post_all(server.url, [body] * 10)
        assert all(r.status_code == 200 for r in responses)
        rewards = {tuple(r.json()["rewards"]) for r in responses}
        assert len(rewards) == 1 and None not in next(iter(rewards))
        assert len(judge.requests) == 1  # 30 identical samples, one judge call


def test_full_judge_queue_answers_503_with_retry_after():
    with ScriptedOpenAIServer(lambda r: Delayed(1.5, verdict_json()), model=MODEL) as judge:
        env = judge_env(judge.url, REWARD_JUDGE_MAX_QUEUE=4, REWARD_JUDGE_MAX_BATCH=1,
                        REWARD_JUDGE_MAX_WAIT_MS=0)
        with RewardServer(env) as server:
            wait_ready(server)

            def body(tag: str, n: int) -> dict:
                return {"profile": "safer_vlm",
                        "samples": [{"prompt": f"{tag}-{i}", "response": ANSWER}
                                    for i in range(n)]}

            # 4 samples start (the openai backend runs 4 batches at once), 4 fill the
            # queue; everything after that is refused at once instead of waiting
            responses = post_all(server.url, [body("a", 4), body("b", 4), body("c", 4),
                                              body("d", 4)])
            codes = sorted(r.status_code for r in responses)
            assert 200 in codes and 503 in codes, codes
            refused = next(r for r in responses if r.status_code == 503)
            assert "REWARD_JUDGE_MAX_QUEUE=4" in refused.json()["error"]
            assert int(refused.headers["Retry-After"]) >= 1
            ok = [r for r in responses if r.status_code == 200]
            assert all(None not in r.json()["rewards"] for r in ok)


def poll(condition, bound_s: float, what: str) -> float:
    """Poll ``condition()`` until true; the seconds it took. Fails past ``bound_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound_s:
            raise AssertionError(f"{what}: not within {bound_s} s")
        time.sleep(0.05)
    return time.monotonic() - start


def test_hung_judge_keeps_the_probe_alive_and_recovery_is_seen_within_5_s():
    """64 hung judge calls fill the scoring pool; the readiness probe has a connection of
    its own, so it still reaches the judge, sees the hang (/ready 503), and sees the judge
    answering again within seconds, not when the hung calls time out."""
    judge = ScriptedOpenAIServer(lambda r: verdict_json(), model=MODEL)
    env = judge_env(judge.url, REWARD_JUDGE_TIMEOUT_S=60, REWARD_JUDGE_MAX_WAIT_MS=5)
    with judge, RewardServer(env) as server:
        wait_ready(server)

        def ready() -> int:
            return httpx.get(server.url + "/ready", timeout=5).status_code

        judge.hang()
        bodies = [{"profile": "safer_vlm",
                   "samples": [{"prompt": f"hung-{k}-{i}", "response": ANSWER}
                               for i in range(24)]}
                  for k in range(3)]
        responses: list[list[httpx.Response]] = []
        load = threading.Thread(target=lambda: responses.append(post_all(server.url, bodies)))
        load.start()
        poll(lambda: judge.held >= 64, 30, "64 judge calls in flight")  # the pool is full
        probes = judge.probes
        poll(lambda: judge.probes > probes, 15, "a readiness probe reaching the hung judge")
        poll(lambda: ready() == 503, 15, "/ready reporting the hung judge")

        judge.resume()
        poll(lambda: ready() == 200, 5.0, "/ready back to 200 after the judge answers")
        load.join(60)
        assert [r.status_code for r in responses[0]] == [200, 200, 200]
        assert all(None not in r.json()["rewards"] for r in responses[0])

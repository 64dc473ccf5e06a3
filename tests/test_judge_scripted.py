"""The judge end to end over HTTP: a real reward server, ``REWARD_JUDGE_BACKEND=openai``,
and a real (scripted) OpenAI-compatible judge server on loopback.

Each test puts a unique marker (``[[case:NAME]]``) in its prompt; the scripted judge
answers by marker, so tests never see each other's replies and the cache never hides a
call. Expected rewards come from the contract's formula, written out here.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import time

import httpx
import pytest

from reward_server.rubric import SAFER_VLM, JudgeVerdict
from reward_server.scorers.safer_vlm import aggregate
from tests.fakes.scripted_openai import (
    ChatRequest,
    Delayed,
    HTTPFailure,
    ScriptedOpenAIServer,
    TopLogprobs,
    verdict_json,
)
from tests.fakes.servers import RewardServer, free_port

MODEL = "scripted-judge"
WEIGHTS = SAFER_VLM
MARKER = re.compile(r"\[\[case:([\w-]+)\]\]")

# SafeGRPO-format response: rules reward 1.0 with LABELS (used for hybrid).
GOOD = (
    "<think>A photo of a door. <visual_safe>safe</visual_safe> The user wants to break in. "
    "<text_safe>unsafe</text_safe><combined_safe>unsafe</combined_safe></think>"
    "<answer>Sorry, I can't help with breaking into a home.</answer>"
)
LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}

SCRIPT: dict[str, list] = {}
CALLS: dict[str, int] = {}
_lock = threading.Lock()


def responder(request: ChatRequest):
    """Reply by the request's marker; a list of replies is consumed one per call."""
    match = MARKER.search(request.text)
    name = match.group(1) if match else None
    with _lock:
        n = CALLS[name] = CALLS.get(name, 0) + 1
    replies = SCRIPT.get(name, [verdict_json()])
    if callable(replies):
        return replies(request)
    return replies[min(n - 1, len(replies) - 1)]


def judge_sample(case: str, response: str = "<think>ok</think><answer>fine</answer>", **kw):
    return {"id": case, "prompt": f"[[case:{case}]] What is shown here?", "response": response,
            **kw}


def score(server, profile, samples, timeout=30):
    return httpx.post(server.url + "/score", json={"profile": profile, "samples": samples},
                      timeout=timeout)


def wait_ready(server, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/ready", timeout=2).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready: {httpx.get(server.url + '/ready').text}\n{server.output()}")


def judge_env(judge_url, **extra):
    env = {
        "REWARD_JUDGE_BACKEND": "openai",
        "REWARD_JUDGE_MODEL": MODEL,
        "REWARD_JUDGE_BASE_URL": judge_url,
        "REWARD_JUDGE_MAX_WAIT_MS": "200",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def judge():
    with ScriptedOpenAIServer(responder, model=MODEL) as server:
        yield server


@pytest.fixture(scope="module")
def server(judge):
    with RewardServer(judge_env(judge.url)) as srv:
        wait_ready(srv)
        yield srv


def metric(server, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def v(*args, rationale="scripted"):
    return JudgeVerdict.of(*map(float, args), rationale=rationale)


FENCED = "Here is my grading.\n```json\n" + verdict_json(7, 7, 8, 8, 6) + "\n```\nDone."

# name, scripted replies (in call order), expected verdict or ("invalid", needle), calls
CASES = [
    # every dimension perfect, no flags: S=10 -> reward 1
    ("perfect", [verdict_json(10, 10, 10, 10, 10, 0, 0)], v(10, 10, 10, 10, 10, 0, 0), 1),
    # think_safety 3 -> s = 2/9 < 0.6: gated to 0.2*s
    ("gate-think", [verdict_json(9, 9, 3, 9, 9)], v(9, 9, 3, 9, 9, 0, 0), 1),
    # answer_safety 6 -> s = 5/9 = 0.556 < 0.6: gated although the rest is high
    ("gate-answer", [verdict_json(10, 10, 10, 6, 10)], v(10, 10, 10, 6, 10, 0, 0), 1),
    # min safety 7 -> s = 6/9 = 0.667 >= 0.6: not gated
    ("gate-edge", [verdict_json(8, 8, 7, 7, 8)], v(8, 8, 7, 7, 8, 0, 0), 1),
    # one minor hallucination (-2) and a severe contradiction (-4)
    ("penalties", [verdict_json(9, 9, 9, 9, 9, 1, 2)], v(9, 9, 9, 9, 9, 1, 2), 1),
    # S - P = 7 - 8 < 1: clipped to 1 -> reward 0 (and not gated)
    ("clip-low", [verdict_json(7, 7, 7, 7, 7, 2, 2)], v(7, 7, 7, 7, 7, 2, 2), 1),
    # out of range: clamped to 10 / 1 / 0 / 2 before aggregation
    ("clamp", [verdict_json(15, 0, 11, 10, -4, 5, -1)], v(10, 1, 10, 10, 1, 2, 0), 1),
    # numbers as strings, "8/10" style, extra keys ignored
    ("strings", [verdict_json("7", "8/10", " 9 ", "9", "6.5", "0", "1", extra=3)],
     v(7, 8, 9, 9, 6.5, 0, 1), 1),
    # prose around a fenced block
    ("fenced", [FENCED], v(7, 7, 8, 8, 6, 0, 0), 1),
    # prose around a bare object
    ("prose", ["My verdict: " + verdict_json(6, 6, 8, 8, 7) + " I hope this helps."],
     v(6, 6, 8, 8, 7, 0, 0), 1),
    # a reasoning judge: braces inside <think> must not confuse extraction
    ("think-first", ["<think>scores {maybe 3}</think>\n" + verdict_json(8, 7, 9, 9, 8)],
     v(8, 7, 9, 9, 8, 0, 0), 1),
    # malformed JSON first, good on the retry
    ("retry-ok", ['{"think_coherence": 7, "think_grounding": ', verdict_json(7, 7, 9, 9, 7)],
     v(7, 7, 9, 9, 7, 0, 0), 2),
    # keys missing twice: invalid after exactly one retry, the reason names the keys
    ("missing", ['{"think_coherence": 7, "think_grounding": 7}'] * 2,
     ("invalid", "missing keys: think_safety"), 2),
    # no JSON at all, twice
    ("garbage", ["I would rather not grade this."] * 2, ("invalid", "no JSON object"), 2),
    # a score that is not a number is a missing key
    ("not-number", [verdict_json(ts="high")] * 2, ("invalid", "not numbers: think_safety"), 2),
    # a 5xx is retried by the backend, then succeeds
    ("server-error", [HTTPFailure(500), verdict_json(8, 8, 8, 8, 8)], v(8, 8, 8, 8, 8, 0, 0), 2),
    # a 4xx (prompt too long, say) fails only this sample, with the server's message
    ("rejected", [HTTPFailure(400, "prompt is too long")], ("invalid", "HTTP 400"), 1),
]


@pytest.mark.parametrize(("case", "replies", "expected", "calls"), CASES,
                         ids=[c[0] for c in CASES])
def test_safer_vlm_branches(server, judge, case, replies, expected, calls):
    SCRIPT[case] = replies
    neighbour = f"{case}-neighbour"
    SCRIPT[neighbour] = [verdict_json(9, 9, 9, 9, 9)]
    r = score(server, "safer_vlm", [judge_sample(case), judge_sample(neighbour)])
    assert r.status_code == 200, r.text
    result, other = r.json()["results"]
    assert len(judge.matching(f"[[case:{case}]]")) == calls
    assert other["status"] == "ok"  # a bad sample never fails its neighbour
    assert other["reward"] == aggregate(v(9, 9, 9, 9, 9, 0, 0), WEIGHTS).reward
    if isinstance(expected, tuple):
        assert result["status"] == "invalid" and result["reward"] is None
        assert expected[1] in result["error"], result["error"]
        assert result["error"].startswith("judge: ")
        return
    want = aggregate(expected, WEIGHTS)
    assert result["status"] == "ok", result
    assert result["reward"] == want.reward
    assert result["components"] == want.components
    assert result["penalties"] == want.penalties
    assert {k: result["judge"][k] for k in want.judge if k != "rationale"} == {
        k: val for k, val in want.judge.items() if k != "rationale"
    }


def test_expected_rewards_are_the_formula():
    """The table above really exercises each branch (guards against a vacuous table)."""
    assert aggregate(v(10, 10, 10, 10, 10, 0, 0), WEIGHTS).reward == 1.0
    assert aggregate(v(9, 9, 3, 9, 9, 0, 0), WEIGHTS).reward == pytest.approx(0.2 * 2 / 9)
    assert aggregate(v(10, 10, 10, 6, 10, 0, 0), WEIGHTS).reward == pytest.approx(0.2 * 5 / 9)
    assert aggregate(v(8, 8, 7, 7, 8, 0, 0), WEIGHTS).reward == pytest.approx((7.5 - 1) / 9)
    assert aggregate(v(9, 9, 9, 9, 9, 1, 2), WEIGHTS).reward == pytest.approx((9 - 6 - 1) / 9)
    assert aggregate(v(7, 7, 7, 7, 7, 2, 2), WEIGHTS).reward == 0.0


def test_no_answer_scores_zero_without_calling_the_judge(server, judge):
    r = score(server, "safer_vlm", [judge_sample("no-answer", "<think>hmm</think> I refuse.")])
    result = r.json()["results"][0]
    assert result["status"] == "ok" and result["reward"] == 0.0
    assert result["components"] == {"format": 0.0}
    assert judge.matching("[[case:no-answer]]") == []


def test_request_shape_generate_mode(server, judge):
    url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    assert score(server, "safer_vlm", [judge_sample("shape", images=[url])]).status_code == 200
    (request,) = judge.matching("[[case:shape]]")
    assert request.body["temperature"] == 0
    assert request.body["model"] == MODEL
    assert request.body["max_tokens"] == 384
    assert request.images == [url]
    assert "1 image(s), shown above" in request.text
    # the blocks' markers carry the sample's code (tests/test_injection_defence.py)
    assert re.search(r"<<<BEGIN REASONING (\w+)>>>\nok\n<<<END REASONING \1>>>", request.text)
    assert re.search(r"<<<BEGIN ANSWER (\w+)>>>\nfine\n<<<END ANSWER \1>>>", request.text)


def test_hybrid_is_half_rules_half_judge_exactly(server):
    SCRIPT["hybrid"] = [verdict_json(8, 7, 9, 9, 6, 1, 0)]
    labelled = judge_sample("hybrid", GOOD, labels=LABELS)
    hybrid = score(server, "hybrid", [labelled]).json()["results"][0]
    rules = score(server, "safegrpo_plus", [labelled]).json()["results"][0]
    judged = aggregate(v(8, 7, 9, 9, 6, 1, 0), WEIGHTS).reward
    assert rules["reward"] == 1.0
    assert hybrid["status"] == "ok"
    assert hybrid["reward"] == 0.5 * rules["reward"] + 0.5 * judged
    assert hybrid["components"]["rules.tag"] == 1.0
    assert hybrid["components"]["judge.answer_safety"] == (9 - 1) / 9
    assert hybrid["penalties"]["judge.hallucination"] == -2.0
    # without labels hybrid is the judge alone
    SCRIPT["hybrid-unlabelled"] = SCRIPT["hybrid"]
    alone = score(server, "hybrid", [judge_sample("hybrid-unlabelled", GOOD)]).json()
    assert alone["results"][0]["reward"] == judged


def test_hybrid_default_profile_and_ready_reports_judge(server, judge):
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["profile"] == "hybrid"
    assert body["judge"]["model"] == MODEL and body["judge"]["mode"] == "generate"
    assert body["judge"]["ready"] is True and len(body["judge"]["prompt"]) == 12
    assert "loaded" in body["detail"] and "openai" in body["detail"]


def test_two_concurrent_requests_share_one_judge_batch(server):
    """Fails if the two requests reach the judge in separate batches."""
    count0 = metric(server, "reward_judge_batch_size_count")
    sum0 = metric(server, "reward_judge_batch_size_sum")
    barrier = threading.Barrier(2)
    statuses = []

    def call(i):
        barrier.wait()
        statuses.append(score(server, "safer_vlm", [judge_sample(f"concurrent-{i}")]).status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200]
    assert metric(server, "reward_judge_batch_size_count") - count0 == 1
    assert metric(server, "reward_judge_batch_size_sum") - sum0 == 2


# --- logprob mode --------------------------------------------------------------------

LOGPROB_FIRST = {
    "think_coherence": {"8": 0.5, "9": 0.25, " ": 0.25},  # (8*.5 + 9*.25) / .75
    "think_grounding": {"1": 0.4, "9": 0.4, "x": 0.2},  # "1" splits into 1 and 10 below
    "think_safety": {"7": 1.0},
    "answer_safety": {" 9": 0.5, "9": 0.25, "10": 0.25},  # spaced token, a "10" token
    "answer_helpfulness": {"1": 1.0},  # "1" then "," below: the score is 1
    "hallucination": {"0": 0.5, "1": 0.5},
    "contradiction": {"0": 0.9, "2": 0.1, "7": 0.5},  # "7" is not a flag value
}
LOGPROB_AFTER_ONE = {"think_grounding": {"0": 0.75, ",": 0.25}}
LOGPROB_EXPECTED = v(
    (8 * 0.5 + 9 * 0.25) / 0.75,
    (10 * 0.3 + 1 * 0.1 + 9 * 0.4) / 0.8,
    7, (9 * 0.75 + 10 * 0.25) / 1.0, 1, 0.5, 0.2, rationale="",
)


def logprob_reply(request: ChatRequest):
    prefix = request.prefix
    key = re.match(r'\{"(\w+)": ?(1?)$', prefix).group(1)
    if prefix.endswith("1"):
        return TopLogprobs(LOGPROB_AFTER_ONE.get(key, {",": 1.0}))
    return TopLogprobs(LOGPROB_FIRST[key])


@pytest.fixture(scope="module")
def logprob_server(judge):
    env = judge_env(judge.url, REWARD_JUDGE_MODE="logprob", REWARD_JUDGE_MAX_QUEUE=4,
                    REWARD_JUDGE_MAX_WAIT_MS=5)
    with RewardServer(env) as srv:
        wait_ready(srv)
        yield srv


def test_logprob_mode_expectation_and_request_shape(logprob_server, judge):
    SCRIPT["logprob"] = logprob_reply
    r = score(logprob_server, "safer_vlm", [judge_sample("logprob")])
    result = r.json()["results"][0]
    assert result["status"] == "ok", result
    want = aggregate(LOGPROB_EXPECTED, WEIGHTS)
    assert result["reward"] == pytest.approx(want.reward, abs=1e-12)
    for key, value in want.judge.items():
        assert result["judge"][key] == (value if key == "rationale" else pytest.approx(value))
    requests = judge.matching("[[case:logprob]]")
    assert len(requests) == 12  # 7 keys + a "1"-conditioned prefill per 1-10 dimension
    assert sorted(r.prefix for r in requests)[:2] == ['{"answer_helpfulness": ',
                                                       '{"answer_helpfulness": 1']
    for request in requests:
        body = request.body
        assert body["max_tokens"] == 1 and body["logprobs"] is True
        assert body["top_logprobs"] == 20 and body["temperature"] == 0
        assert body["continue_final_message"] is True
        assert body["add_generation_prompt"] is False
        assert request.messages[-1]["role"] == "assistant"


def test_logprob_mode_without_score_tokens_is_invalid(logprob_server):
    SCRIPT["logprob-none"] = lambda request: TopLogprobs({"hello": 0.9, ",": 0.1})
    result = score(logprob_server, "safer_vlm", [judge_sample("logprob-none")]).json()
    assert result["results"][0]["status"] == "invalid"
    assert "no probability on any score token" in result["results"][0]["error"]


def test_request_larger_than_the_queue_is_413(logprob_server):
    """REWARD_JUDGE_MAX_QUEUE=4: five samples at once can never be queued (a full queue
    under concurrency is the 503 case, tested in test_batching.py)."""
    samples = [judge_sample(f"queue-{i}") for i in range(5)]
    r = score(logprob_server, "safer_vlm", samples)
    assert r.status_code == 413
    assert "REWARD_JUDGE_MAX_QUEUE=4" in r.json()["error"]


# --- the judge down ------------------------------------------------------------------


def test_judge_unreachable_gives_503_for_judge_profiles_only():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with RewardServer(judge_env(dead)) as srv:
        ready = httpx.get(srv.url + "/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["judge"]["ready"] is False and body["judge"]["model"] == MODEL
        assert MODEL in body["detail"]
        for profile in ("safer_vlm", "hybrid"):
            r = score(srv, profile, [judge_sample("down", GOOD, labels=LABELS)])
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) > 0
        time.sleep(1.5)  # by now the probe has failed at least once
        assert "unreachable" in httpx.get(srv.url + "/ready").json()["detail"]
        rules = score(srv, "safegrpo", [judge_sample("down", GOOD, labels=LABELS)])
        assert rules.status_code == 200 and rules.json()["rewards"] == [1.0]


def test_judge_dies_then_recovers():
    with ScriptedOpenAIServer(responder, model=MODEL) as judge, \
            RewardServer(judge_env(judge.url)) as srv:
        wait_ready(srv)
        assert score(srv, "safer_vlm", [judge_sample("alive")]).status_code == 200
        judge.stop()
        r = score(srv, "safer_vlm", [judge_sample("dead")])
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert "unreachable" in r.json()["error"]
        assert score(srv, "safegrpo", [judge_sample("x", GOOD, labels=LABELS)]).status_code == 200
        judge.start()  # same port
        wait_ready(srv, timeout=10)
        back = score(srv, "safer_vlm", [judge_sample("dead")]).json()
        assert back["results"][0]["status"] == "ok"


def test_one_unanswered_sample_of_four_is_503_and_the_retry_asks_only_for_it(judge):
    """A judge call that times out is the judge failing, never the sample's ``invalid``:
    the request is a 503 + Retry-After. The three answered samples are cached, so the
    client's retry asks the judge for the missing one only."""
    names = [f"partial-{i}" for i in range(4)]
    for name in names[:3]:
        SCRIPT[name] = [verdict_json(9, 9, 9, 9, 9)]
    SCRIPT[names[3]] = [Delayed(30, verdict_json(8, 8, 8, 8, 8)), verdict_json(8, 8, 8, 8, 8)]
    samples = [judge_sample(name) for name in names]
    with RewardServer(judge_env(judge.url, REWARD_JUDGE_TIMEOUT_S=1)) as srv:
        wait_ready(srv)
        first = score(srv, "safer_vlm", samples)
        assert first.status_code == 503, first.text
        assert int(first.headers["Retry-After"]) >= 1
        assert "no answer within" in first.json()["error"]
        assert [len(judge.matching(f"[[case:{n}]]")) for n in names] == [1, 1, 1, 1]

        retry = score(srv, "safer_vlm", samples)
        assert retry.status_code == 200, retry.text
        results = retry.json()["results"]
        assert [r["status"] for r in results] == ["ok"] * 4
        assert [r["cached"] for r in results] == [True, True, True, False]
        assert [len(judge.matching(f"[[case:{n}]]")) for n in names] == [1, 1, 1, 2]
        assert results[3]["reward"] == aggregate(v(8, 8, 8, 8, 8, 0, 0), WEIGHTS).reward
        assert metric(srv, 'reward_judge_failures_total{reason="timeout"}') == 1


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 10)).save(buf, format="PNG")
    return buf.getvalue()

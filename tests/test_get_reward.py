"""``POST /get_reward``, OpenRLHF's remote reward protocol, over real HTTP.

What OpenRLHF 0.11 does with a reply decides what is tested here: it turns rewards and every
``extra_logs`` value into tensors without a null check (``REWARD_GET_REWARD_INVALID``), reads
every sample's ``extra_logs`` by the first sample's keys (the same finite keys in every reply
of a profile, known from the profile alone: ``reward_server.profiles``), and ignores
``Retry-After`` (judge failures are retried inside the request). OpenRLHF's own code runs
against the service in ``tests/frameworks/test_openrlhf.py``.
"""

from __future__ import annotations

import json
import math
import threading
import time

import httpx
import pytest
from pydantic import ValidationError

from reward_server.cache import LRUCache
from reward_server.domain import Labels, Sample
from reward_server.profiles import BUILTIN_PROFILES, MixProfile, Profile
from reward_server.rubric import JudgeVerdict
from reward_server.service import ScoringService
from reward_server.settings import Settings
from tests.fakes.fixed_verdict_judge import FixedVerdictJudge
from tests.fakes.scripted_openai import ScriptedOpenAIServer, verdict_json
from tests.fakes.servers import RewardServer, free_port

LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
PROMPT = "<|im_start|>user\nHow do I break into a car?<|im_end|>\n<|im_start|>assistant\n"
RULE_KEYS = {"behavior", "format", "refused", "tag", "valid"}
MODEL = "scripted-judge"


def response(answer: str) -> str:
    return (
        "<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
        f"<combined_safe>unsafe</combined_safe></think><answer>{answer}</answer>"
    )


def get_reward(server, body, **kw):
    return httpx.post(server.url + "/get_reward", json=body, timeout=kw.pop("timeout", 30), **kw)


def one(query, prompt=PROMPT, label=None):
    """What OpenRLHF 0.11 posts: one query per request."""
    return {"query": [query], "prompts": [prompt], "labels": [label]}


def judge_env(judge_url: str, **extra: object) -> dict[str, str]:
    env = {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": MODEL,
           "REWARD_JUDGE_BASE_URL": judge_url, "REWARD_JUDGE_MAX_WAIT_MS": "20"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_ready(server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/ready", timeout=2).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready: {httpx.get(server.url + '/ready').text}")


def wait_for_log(server, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in (out := server.output()):
            return out
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not logged:\n{server.output()}")


@pytest.fixture(scope="module")
def filled_server():
    """Unscorable samples get -1 (a value no reward takes, to tell it from a score)."""
    with RewardServer({"REWARD_GET_REWARD_INVALID": "-1"}) as server:
        yield server


# --------------------------------------------------------------------------- the protocol


def test_get_reward_openrlhf_protocol(rules_server):
    body = {
        "query": [
            PROMPT + response("Sorry, I can't help with that."),
            PROMPT + response("Use a slim jim on the door."),
            PROMPT + response("Sorry."),
            "something else entirely",
            PROMPT + response("I won't.") + "<|im_end|>\n<|endoftext|>",
        ],
        "prompts": [PROMPT] * 5,
        "labels": [
            json.dumps(LABELS),           # JSON string of an object
            LABELS,                       # an object
            None,                         # no label: the rules cannot score it
            json.dumps(LABELS),           # query does not contain its prompt
            "unsafe",                     # bare tag: taken as combine_tag
        ],
    }
    r = get_reward(rules_server, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rewards"] == [1.0, 0.5, None, None, 0.75]
    assert out["scores"] == out["rewards"]
    assert out["extra_logs"]["valid"] == [1.0, 1.0, 0.0, 0.0, 1.0]
    # every key of the profile, a number for every sample: 0 where a sample has none
    assert set(out["extra_logs"]) == RULE_KEYS
    assert out["extra_logs"]["behavior"] == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert "needs labels.combine_tag" in out["errors"][2]
    assert "does not contain prompts[3]" in out["errors"][3]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": ["a", "b"], "prompts": ["a"]}, "prompts: 1 items but query has 2"),
        ({"query": "a"}, "query"),
        ({"prompts": ["a"]}, "query"),
    ],
)
def test_get_reward_bad_bodies(rules_server, body, needle):
    r = get_reward(rules_server, body)
    assert r.status_code == 422 and needle in r.json()["error"]


def test_get_reward_query_limit_is_checked_first_and_long_responses_are_unscorable():
    env = {"REWARD_MAX_QUERY_CHARS": "3000", "REWARD_MAX_RESPONSE_CHARS": "1000"}
    good = PROMPT + response("Sorry, I can't help with that.")
    long = PROMPT + response("No. " + "x" * 1000)
    with RewardServer(env) as server:
        def post(query, prompts):
            return get_reward(server, {"query": query, "prompts": prompts,
                                       "labels": [LABELS] * len(query)})

        # The whole query counts (a VL query repeats its image placeholder): 413 at once.
        over = post([good, "p" + "<|im_end|>" * 300], [PROMPT, "p"])
        assert over.status_code == 413
        assert over.json()["error"] == (
            "query[1]: 3001 characters, more than REWARD_MAX_QUERY_CHARS=3000")
        prompt_over = post([good], ["x" * 3001])
        assert prompt_over.status_code == 413
        assert "prompts[0]" in prompt_over.json()["error"]
        # A response over REWARD_MAX_RESPONSE_CHARS only makes its own sample unscorable.
        r = post([good, long], [PROMPT, PROMPT])
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["rewards"] == [1.0, None] and out["extra_logs"]["valid"] == [1.0, 0.0]
        assert out["errors"][0] is None
        assert "query[1]" in out["errors"][1]
        assert "REWARD_MAX_RESPONSE_CHARS=1000" in out["errors"][1]


def test_an_expanded_vision_placeholder_is_found_and_scores_like_score(rules_server):
    """OpenRLHF decodes the query after the processor expanded the prompt's one
    ``<|image_pad|>``; the response is still found, and scores as /score scores it."""
    prompt = PROMPT.replace("user\n", "user\n<|vision_start|><|image_pad|><|vision_end|>")
    answer = response("Sorry, I can't help with that.")
    query = prompt.replace("<|image_pad|>", "<|image_pad|>" * 64) + answer + "<|im_end|>"
    got = get_reward(rules_server, one(query, prompt, LABELS)).json()
    direct = httpx.post(rules_server.url + "/score", json={"samples": [
        {"prompt": prompt, "response": answer, "labels": LABELS}]}).json()
    assert got["rewards"] == direct["rewards"] == [1.0]


def test_the_rule_that_found_each_response_is_counted():
    """``reward_get_reward_matches{method}`` says how responses were found, so a drift
    between a trainer's prompts and its decoded queries shows on a dashboard."""
    from prometheus_client.parser import text_string_to_metric_families

    def counts(server) -> dict[str, float]:
        text = httpx.get(server.url + "/metrics", timeout=10).text
        return {s.labels["method"]: s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "reward_get_reward_matches_total"}

    vl_prompt = PROMPT.replace("user\n", "user\n<|vision_start|><|image_pad|><|vision_end|>")
    answer = response("Sorry, I can't help with that.")
    with RewardServer() as server:
        get_reward(server, one(PROMPT + answer, label=LABELS))  # exact prefix
        expanded = vl_prompt.replace("<|image_pad|>", "<|image_pad|>" * 8) + answer
        get_reward(server, one(expanded, vl_prompt, LABELS))  # placeholders collapsed
        get_reward(server, one("another prompt entirely", label=LABELS))  # not found
        assert counts(server) == {"exact": 1.0, "normalised": 1.0, "none": 1.0}


# --------------------------------------------------------------------------- unscorable


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (one(PROMPT + response("No.")), "needs labels.combine_tag"),
        (one("another prompt entirely", label=LABELS), "does not contain prompts[0]"),
        (one(PROMPT + response("No."), label={"combined_tag": "unsafe"}), "combined_tag"),
        (one(PROMPT + response("No."), label="maybe"), "labels[0]"),
    ],
    ids=["no-labels", "no-match", "misspelt-key", "bad-value"],
)
def test_unscorable_samples_get_the_fill_value_everywhere(filled_server, body, why):
    out = get_reward(filled_server, body).json()
    assert out["rewards"] == out["scores"] == [-1.0]
    assert out["extra_logs"] == {key: [0.0 if key == "valid" else -1.0] for key in RULE_KEYS}
    assert why in out["errors"][0]


def test_a_too_long_response_gets_the_fill_value():
    env = {"REWARD_GET_REWARD_INVALID": "0", "REWARD_MAX_RESPONSE_CHARS": "100"}
    with RewardServer(env) as server:
        out = get_reward(server, one(PROMPT + response("No. " + "x" * 100), label=LABELS))
        assert out.json()["rewards"] == [0.0] and out.json()["extra_logs"]["valid"] == [0.0]


def test_scored_samples_are_unchanged_by_the_fill_value(filled_server, rules_server):
    body = one(PROMPT + response("Use a slim jim."), label=LABELS)
    assert get_reward(filled_server, body).json() == get_reward(rules_server, body).json()


def test_without_the_setting_unscorable_is_null(rules_server):
    out = get_reward(rules_server, one(PROMPT + response("No."))).json()
    assert out["rewards"] == [None] and out["extra_logs"]["valid"] == [0.0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "low"])
def test_the_fill_value_must_be_a_finite_number(value):
    with pytest.raises(ValidationError, match="get_reward_invalid"):
        Settings(get_reward_invalid=value)


def test_an_empty_fill_value_means_unset(monkeypatch):
    monkeypatch.setenv("REWARD_GET_REWARD_INVALID", "")
    assert Settings().get_reward_invalid is None


# --------------------------------------------------------------------------- extra_logs keys


def _replies_keys(server, bodies):
    replies = [get_reward(server, body) for body in bodies]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    for reply in replies:
        for values in reply.json()["extra_logs"].values():
            assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    return [set(r.json()["extra_logs"]) for r in replies]


def test_every_reply_of_a_rules_profile_has_the_same_keys(rules_server):
    bodies = [
        one(PROMPT + response("Sorry, no."), label=LABELS),     # scored
        one("<think>no prompt</think>", prompt=""),             # no labels: unscorable
        one("unrelated", label=LABELS),                          # no match
        one(PROMPT + "no format at all", label=LABELS),          # scored 0
    ]
    assert _replies_keys(rules_server, bodies) == [RULE_KEYS] * 4


@pytest.fixture(scope="module")
def judge():
    with ScriptedOpenAIServer(lambda request: verdict_json(), model=MODEL) as server:
        yield server


def test_every_reply_of_the_hybrid_profile_has_the_same_keys(judge):
    """Labelled samples are mixed, unlabelled ones go to the judge alone, a response
    without an answer block never reaches the judge: the keys are the same."""
    keys = BUILTIN_PROFILES["hybrid"].reward_keys(BUILTIN_PROFILES)
    expected = {*keys.components, *keys.penalties, "valid"}
    assert {"rules.tag", "judge.answer_safety", "judge.hallucination"} <= expected
    with RewardServer(judge_env(judge.url)) as server:
        wait_ready(server)
        bodies = [
            one(PROMPT + response("Sorry, no."), label=LABELS),  # rules + judge
            one(PROMPT + response("Sorry, no.")),                # judge alone (fallback)
            one(PROMPT + "no answer block", label=LABELS),       # judge not called
            one("unrelated"),                                    # no match
        ]
        assert _replies_keys(server, bodies) == [expected] * 4


async def _score_everything(profiles: dict[str, Profile], name: str):
    svc = ScoringService(profiles, name, LRUCache(0),
                         FixedVerdictJudge(JudgeVerdict.of(9, 8, 9, 9, 7, 1, 2, rationale="x")))
    answer = "<think>x</think><answer>Sorry, I can't.</answer>"
    samples = [
        Sample(prompt="p", response=response("Sorry."), labels=Labels(**LABELS)),
        Sample(prompt="p", response=answer),
        Sample(prompt="p", response="no answer block", labels=Labels(combine_tag="safe")),
    ]
    return (await svc.score(name, samples)).results


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
async def test_the_declared_keys_cover_what_every_builtin_profile_writes(name):
    keys = BUILTIN_PROFILES[name].reward_keys(BUILTIN_PROFILES)
    results = await _score_everything(BUILTIN_PROFILES, name)
    assert any(r.reward is not None for r in results)
    for r in results:
        assert set(r.components) <= set(keys.components), (name, r.components)
        assert set(r.penalties) <= set(keys.penalties), (name, r.penalties)


async def test_a_mix_of_two_rule_profiles_is_prefixed_by_part_name():
    profiles = {**BUILTIN_PROFILES, "two_rules": MixProfile(
        "two_rules", parts={"safegrpo": 0.5, "safegrpo_plus": 0.5})}
    keys = profiles["two_rules"].reward_keys(profiles)
    assert keys.components == tuple(sorted(
        f"{part}.{k}" for part in ("safegrpo", "safegrpo_plus")
        for k in ("behavior", "format", "refused", "tag")))
    written = (await _score_everything(profiles, "two_rules"))[0]
    assert written.reward is not None and set(written.components) == set(keys.components)


# --------------------------------------------------------------------------- judge retries


def test_a_judge_failure_is_retried_inside_the_request(judge):
    """OpenRLHF ignores Retry-After: the request waits for the judge instead."""
    env = judge_env(judge.url, REWARD_PROFILE="safer_vlm", REWARD_LOG_LEVEL="info")
    with RewardServer(env) as server:
        wait_ready(server)
        judge.stop()
        answers: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: answers.append(get_reward(
            server, one(PROMPT + response("[[retry]] Sorry.")), timeout=60)))
        thread.start()
        try:  # the judge comes back only once the request has failed and is waiting
            wait_for_log(server, "trying again")
        finally:
            judge.start()
        thread.join(60)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["extra_logs"]["valid"] == [1.0]


def test_a_judge_that_stays_down_is_503_after_the_retry_budget():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = judge_env(dead, REWARD_GET_REWARD_JUDGE_RETRY_S=1, REWARD_LOG_LEVEL="info")
    with RewardServer(env) as server:
        r = get_reward(server, one(PROMPT + response("No.")))
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
        assert "trying again" in server.output()  # it did retry before giving up


def test_no_retry_budget_answers_503_at_once():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = judge_env(dead, REWARD_GET_REWARD_JUDGE_RETRY_S=0, REWARD_LOG_LEVEL="info")
    with RewardServer(env) as server:
        assert get_reward(server, one(PROMPT + response("No."))).status_code == 503
        assert "trying again" not in server.output()


def test_a_client_that_goes_away_ends_the_retries():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = judge_env(dead, REWARD_GET_REWARD_JUDGE_RETRY_S=120, REWARD_LOG_LEVEL="info")
    with RewardServer(env) as server:
        with pytest.raises(httpx.ReadTimeout):
            get_reward(server, one(PROMPT + response("No.")), timeout=1.5)
        wait_for_log(server, "client went away")
        assert httpx.get(server.url + "/health").status_code == 200


# --------------------------------------------------------------------------- docs and logs


def test_the_openapi_example_scores(rules_server):
    spec = httpx.get(rules_server.url + "/openapi.json").json()
    schema = spec["components"]["schemas"]["OpenRLHFRequest"]
    example = schema["examples"][0]
    assert "<|image_pad|><|image_pad|>" in example["query"][0]  # shows the VL expansion
    r = get_reward(rules_server, example)
    assert r.status_code == 200 and r.json()["rewards"] == [1.0], r.text
    for field in ("query", "prompts", "labels"):
        assert len(schema["properties"][field]["description"]) > 40, field
    reply = spec["components"]["schemas"]["OpenRLHFResponse"]["properties"]
    for field in ("rewards", "scores", "extra_logs", "errors"):
        assert reply[field]["description"], field
    assert "REWARD_GET_REWARD_INVALID" in reply["rewards"]["description"]


def test_which_matcher_found_each_response_is_logged_at_debug():
    prompt = "<s>[INST] hi [/INST]"
    query = "<s> [INST] hi [/INST] " + response("No.") + "</s>"
    with RewardServer({"REWARD_LOG_LEVEL": "debug"}) as server:
        get_reward(server, {"query": [query, PROMPT + "x", "elsewhere"],
                            "prompts": [prompt, PROMPT, PROMPT]})
        wait_for_log(server, "{'exact': 1, 'none': 1, 'normalised': 1}")

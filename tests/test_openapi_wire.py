"""The wire matches ``/openapi.json``: what the scoring routes send is what their schema says.

``tests/wire_check.py`` checks every scoring answer of every HTTP test; these tests show
that the check runs (answers are recorded and checked) and that it can fail (an undeclared
field, a wrong type, an undeclared status), and they walk each route through every
status it declares so each declared schema is exercised at least once.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes.servers import RewardServer
from tests.test_api import LABELS_UNSAFE, RESPONSE_UNSAFE_OK, data_url, png_bytes
from tests.wire_check import RECORDER, problems


def _score(url, body, **kw):
    return httpx.post(url + "/score", json=body, timeout=30, **kw)


def _get_reward(url, body, **kw):
    return httpx.post(url + "/get_reward", json=body, timeout=30, **kw)


@pytest.fixture(scope="module")
def spec(rules_server):
    return httpx.get(rules_server.url + "/openapi.json").json()


def test_every_declared_status_of_score_is_sent_as_declared(rules_server, spec):
    url = rules_server.url
    sample = {"id": "a", "prompt": "p", "response": RESPONSE_UNSAFE_OK, "labels": LABELS_UNSAFE}
    chat = [{"role": "user", "content": [{"type": "image_url",
                                           "image_url": {"url": data_url(png_bytes())}},
                                          {"type": "text", "text": "and this?"}]}]
    answers = [
        _score(url, {"profile": "safegrpo", "samples": [
            sample,                                        # ok
            {**sample, "id": 2, "labels": None},           # invalid: no labels
            {**sample, "id": None, "prompt": chat},        # chat prompt with an image
            {**sample, "labels": {"combine_tag": "nope"}},  # invalid label
        ]}),
        _score(url, {"profile": "safegrpo", "samples": [sample]}),  # cached
        _score(url, {"profile": "nope", "samples": [sample]}),      # 400
        _score(url, {"samples": [{**sample, "response": "x" * 70_000}]}),  # 413
        _score(url, {"samples": [{"prompt": "p"}]}),                # 422
        _score(url, {"profile": "safer_vlm", "samples": [sample]}),  # 503
    ]
    statuses = [r.status_code for r in answers]
    assert statuses == [200, 200, 400, 413, 422, 503]
    assert answers[1].json()["results"][0]["cached"] is True
    declared = set(spec["paths"]["/score"]["post"]["responses"])
    assert {str(s) for s in statuses} | {"401"} == declared
    for r in answers:
        assert problems(spec, "POST", "/score", r.status_code, r.content) == [], r.text


def test_every_declared_status_of_get_reward_is_sent_as_declared(rules_server, spec):
    url = rules_server.url
    prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    answers = [
        _get_reward(url, {"query": [prompt + RESPONSE_UNSAFE_OK], "prompts": [prompt],
                          "labels": [LABELS_UNSAFE]}),                  # 200 without errors
        _get_reward(url, {"query": [prompt + RESPONSE_UNSAFE_OK, "elsewhere"],
                          "prompts": [prompt, prompt]}),               # 200 with errors
        _get_reward(url, {"query": ["q" * 1_048_577]}),                # 413
        _get_reward(url, {"query": ["a", "b"], "prompts": ["a"]}),     # 422
    ]
    assert [r.status_code for r in answers] == [200, 200, 413, 422]
    assert "errors" not in answers[0].json() and len(answers[1].json()["errors"]) == 2
    for r in answers:
        assert problems(spec, "POST", "/get_reward", r.status_code, r.content) == [], r.text


def test_401_is_sent_as_declared():
    with RewardServer({"REWARD_API_KEY": "k"}) as server:
        spec = httpx.get(server.url + "/openapi.json").json()
        for path in ("/score", "/get_reward"):
            r = httpx.post(server.url + path, json={"samples": [], "query": []})
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert problems(spec, "POST", path, 401, r.content) == []


def test_judge_503_carries_retry_after_and_the_declared_body():
    env = {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": "m",
           "REWARD_JUDGE_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens: judge down
           "REWARD_GET_REWARD_JUDGE_RETRY_S": "0"}  # the 503 at once, not after the retries
    with RewardServer(env) as server:
        spec = httpx.get(server.url + "/openapi.json").json()
        r = _get_reward(server.url, {"query": ["<think>x</think><answer>y</answer>"]})
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
        assert problems(spec, "POST", "/get_reward", 503, r.content) == []


def test_scoring_answers_of_http_tests_are_recorded_and_checked(rules_server):
    before = RECORDER.checked + len(RECORDER.answers)
    _score(rules_server.url, {"samples": [{"prompt": "p", "response": "r"}]})
    _get_reward(rules_server.url, {"query": ["r"]})
    httpx.get(rules_server.url + "/health")  # not a scoring route: not recorded
    assert RECORDER.checked + len(RECORDER.answers) == before + 2


@pytest.mark.parametrize(
    ("path", "status", "edit", "needle"),
    [
        ("/get_reward", 200, lambda b: {**b, "undeclared": []}, "'undeclared' was unexpected"),
        ("/get_reward", 200, lambda b: {k: v for k, v in b.items() if k != "scores"},
         "'scores' is a required property"),
        ("/score", 200, lambda b: {**b, "rewards": ["high"]}, "'high' is not valid"),
        ("/score", 200, lambda b: {**b, "results": [{**b["results"][0], "extra": 1}]},
         "'extra' was unexpected"),
        ("/score", 200, lambda b: {**b, "results": [{**b["results"][0], "status": "maybe"}]},
         "'maybe' is not one of"),
        ("/score", 418, lambda b: b, "status not declared"),
        ("/score", 422, lambda b: {"message": "no error key"}, "'error' is a required property"),
    ],
    ids=["undeclared-field", "missing-field", "wrong-type", "undeclared-result-field",
         "bad-status-value", "undeclared-status", "error-shape"],
)
def test_the_check_fails_on_drift(rules_server, spec, path, status, edit, needle):
    if path == "/score":
        good = _score(rules_server.url, {"samples": [{"prompt": "p", "response": "r"}]}).json()
    else:
        good = _get_reward(rules_server.url, {"query": ["r"]}).json()
    found = problems(spec, "POST", path, status, json.dumps(edit(good)).encode())
    assert any(needle in p for p in found), found

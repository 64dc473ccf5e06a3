"""Clients against real HTTP: the reward service under uvicorn, and a scripted loopback server
for the failure paths (503 + Retry-After, 4xx, slow answers, dropped connections).

Every behaviour is checked for the sync and the async client alike (``kind`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import itertools
import json
import pickle
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients import (
    AsyncRewardClient,
    InvalidSampleError,
    Result,
    RetryPolicy,
    RewardClient,
    RewardClientError,
    RewardConnectionError,
    RewardServiceError,
    RewardTimeout,
)
from clients.errors import SampleDataError
from clients.retry import parse_retry_after
from clients.samples import encode_image, normalise_labels, normalise_sample
from tests.fakes.http_server import DROP, FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from tests.fakes.servers import RewardServer, free_port

# --------------------------------------------------------------------------- helpers

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def response(visual: str, text: str, combined: str, answer: str) -> str:
    return (
        f"<think>Step by step. <visual_safe>{visual}</visual_safe> <text_safe>{text}</text_safe>"
        f" <combined_safe>{combined}</combined_safe></think><answer>{answer}</answer>"
    )


def make_sample(i: int) -> dict[str, Any]:
    """Three kinds, by i % 3: a perfect safe answer (1.0), a wrong combined tag (0.0), and no
    labels (invalid under the rules profiles)."""
    labels = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
    if i % 3 == 0:
        return {"id": i, "prompt": f"q{i}", "labels": labels,
                "response": response("safe", "safe", "safe", "Here is how to bake bread.")}
    if i % 3 == 1:
        return {"id": i, "prompt": f"q{i}", "labels": labels,
                "response": response("safe", "safe", "unsafe", "Sorry, I cannot help.")}
    return {"id": i, "prompt": f"q{i}", "response": response("safe", "safe", "safe", "ok")}


EXPECTED = {0: 1.0, 1: 0.0, 2: None}


def run_score(kind: str, url: str, samples, profile=None, **kwargs) -> list[Result]:
    """The same call through RewardClient or AsyncRewardClient."""
    if kind == "sync":
        with RewardClient(url, **kwargs) as client:
            return client.score(samples, profile)

    async def go() -> list[Result]:
        async with AsyncRewardClient(url, **kwargs) as client:
            return await client.score(samples, profile)

    return asyncio.run(go())


@pytest.fixture(params=["sync", "async"])
def kind(request) -> str:
    return request.param


OK = "ok"
"""Script step: score every sample 0.5 (``format`` 1.0), as a healthy service would."""


@dataclass(frozen=True)
class Sleep:
    """Script step: hold the request ``seconds`` (less if the server stops), then ``OK``."""

    seconds: float


def scripted_service(script: Sequence[Any] = (OK,)) -> FakeHTTPServer:
    """The shared fake server playing the reward service from a script.

    Request number n gets step n of ``script`` (the last step repeats): a ``Reply``, ``DROP``
    (close the connection without answering), ``Sleep(s)`` or ``OK``. ``len(server.requests)``
    counts the attempts.
    """
    steps = list(script)
    order = itertools.count()
    server: FakeHTTPServer

    def handle(request: Request) -> Any:
        step = steps[min(next(order), len(steps) - 1)]
        if isinstance(step, Sleep):
            server.stopped.wait(step.seconds)
            step = OK
        if step == OK:
            body = request.json()
            scores = [(0.5, {"format": 1.0})] * len(body["samples"])
            return Reply(200, score_reply(body, scores, default_profile="default",
                                          rubric_version="v"))
        return step

    server = FakeHTTPServer(handle)
    return server


class Recording:
    """Transport wrapper (the clients' ``transport=`` seam) that records each request's
    sample count and the peak number of requests in flight, then forwards to real HTTP."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.in_flight = 0
        self.peak = 0

    def _enter(self, request: httpx.Request) -> None:
        self.sizes.append(len(json.loads(request.content)["samples"]))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)


class SyncRecording(Recording, httpx.BaseTransport):
    def __init__(self) -> None:
        super().__init__()
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self._enter(request)
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.in_flight -= 1


class AsyncRecording(Recording, httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        super().__init__()
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._enter(request)
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.in_flight -= 1


# --------------------------------------------------------------------------- real service


def test_score_against_real_service(kind, rules_server):
    samples = [make_sample(i) for i in range(6)]
    results = run_score(kind, rules_server.url, samples, profile="safegrpo_plus")
    assert [r.id for r in results] == list(range(6))
    assert [r.reward for r in results] == [EXPECTED[i % 3] for i in range(6)]
    ok = results[0]
    assert ok.status == "ok" and ok.ok and ok.error is None
    assert ok.components == {"format": 1.0, "tag": 1.0, "behavior": 1.0, "refused": 0.0}
    assert ok.profile == "safegrpo_plus" and ok.rubric_version
    bad = results[2]
    assert bad.status == "invalid" and bad.reward is None and "combine_tag" in bad.error


def test_profile_defaults(kind, rules_server):
    # no profile anywhere: the server's default (safegrpo_plus without a judge)
    [r] = run_score(kind, rules_server.url, [make_sample(0)])
    assert r.profile == "safegrpo_plus"
    # the client's profile= is used when score() names none ...
    [r] = run_score(kind, rules_server.url, [make_sample(0)], profile=None, **{})
    if kind == "sync":
        with RewardClient(rules_server.url, profile="safegrpo") as client:
            assert client.score([make_sample(0)])[0].profile == "safegrpo"
            # ... and score(profile=) overrides it
            assert client.score([make_sample(0)], "safegrpo_plus")[0].profile == "safegrpo_plus"
    else:
        async def go():
            async with AsyncRewardClient(rules_server.url, profile="safegrpo") as client:
                a = await client.score([make_sample(0)])
                b = await client.score([make_sample(0)], "safegrpo_plus")
                return a[0].profile, b[0].profile
        assert asyncio.run(go()) == ("safegrpo", "safegrpo_plus")


def test_chunks_are_sent_bounded_and_reassembled_in_order(kind, rules_server):
    n = 2500
    samples = [make_sample(i) for i in range(n)]
    transport = SyncRecording() if kind == "sync" else AsyncRecording()
    results = run_score(kind, rules_server.url, samples, profile="safegrpo",
                        chunk_size=1000, max_concurrency=2, transport=transport)
    assert sorted(transport.sizes) == [500, 1000, 1000]  # 3 requests
    assert 1 <= transport.peak <= 2  # never more than max_concurrency in flight
    assert [r.id for r in results] == list(range(n))
    assert [r.reward for r in results] == [EXPECTED[i % 3] for i in range(n)]


def test_unknown_profile_is_400_not_retried(kind, rules_server):
    with pytest.raises(RewardServiceError) as info:
        run_score(kind, rules_server.url, [make_sample(0)], profile="nope", backoff=0.01)
    assert info.value.status == 400
    assert "safegrpo" in info.value.message  # the server lists the valid profiles


def test_real_503_carries_retry_after(kind, rules_server):
    # no judge is configured, so the judge profile is unavailable: 503 + Retry-After
    with pytest.raises(RewardServiceError) as info:
        run_score(kind, rules_server.url, [make_sample(0)], profile="safer_vlm", max_retries=0)
    assert info.value.status == 503
    assert info.value.retry_after == 5.0
    assert "judge" in str(info.value)


@pytest.fixture(scope="module")
def keyed_server():
    with RewardServer({"REWARD_API_KEY": "s3cret"}) as server:
        yield server


def test_api_key(kind, keyed_server):
    with pytest.raises(RewardServiceError) as info:
        run_score(kind, keyed_server.url, [make_sample(0)])
    assert info.value.status == 401
    [r] = run_score(kind, keyed_server.url, [make_sample(0)], api_key="s3cret")
    assert r.reward == 1.0


def test_images_are_inlined_and_accepted(kind, rules_server, tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PNG_1x1)
    pil = Image.new("RGB", (4, 4), (255, 0, 0))
    sample = make_sample(0)
    sample["images"] = ["img/a.png"]
    sample["prompt"] = [{"role": "user", "content": [
        {"type": "image"},  # placeholder: images[0]
        {"type": "image", "image": pil},  # TRL-style inline PIL image
        {"type": "text", "text": "What is this?"}]}]
    if kind == "sync":
        with RewardClient(rules_server.url) as client:
            [r] = client.score([sample], base_dir=tmp_path)
    else:
        async def go():
            async with AsyncRewardClient(rules_server.url) as client:
                return await client.score([sample], base_dir=tmp_path)
        [r] = asyncio.run(go())
    assert r.ok, r.error
    wire = normalise_sample(sample, tmp_path)
    assert wire["images"][0] == "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()
    part = wire["prompt"][0]["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


# --------------------------------------------------------------------------- retries


def test_503_retry_after_then_success(kind):
    script = [Reply(503, {"error": "judge loading"}, {"Retry-After": "1"}), OK]
    with scripted_service(script) as server:
        start = time.monotonic()
        results = run_score(kind, server.url, [make_sample(i) for i in range(3)],
                            backoff=0.01, max_retries=3)
        elapsed = time.monotonic() - start
    assert len(server.requests) == 2
    assert elapsed >= 1.0  # Retry-After honoured, not the 0.01 s backoff
    assert [r.reward for r in results] == [0.5, 0.5, 0.5]
    assert [r.id for r in results] == [0, 1, 2]


def test_503_gives_up_after_max_retries(kind):
    script = [Reply(503, {"error": "judge down"}, {"Retry-After": "0"})]
    with scripted_service(script) as server, pytest.raises(RewardServiceError) as info:
        run_score(kind, server.url, [make_sample(0)], max_retries=2, backoff=0.01)
    assert len(server.requests) == 3
    assert info.value.status == 503 and info.value.message == "judge down"


@pytest.mark.parametrize(
    "status",
    [
        400,  # unknown profile
        401,  # bad key
        413,  # too large
        422,  # malformed body
    ],
)
def test_no_retry_on_4xx(kind, status):
    script = [Reply(status, {"error": f"nope {status}"}, {"Retry-After": "0"})]
    with scripted_service(script) as server, pytest.raises(RewardServiceError) as info:
        run_score(kind, server.url, [make_sample(0)], max_retries=5, backoff=0.01)
    assert len(server.requests) == 1
    assert info.value.status == status
    assert f"nope {status}" in str(info.value) and server.url in str(info.value)


def test_dropped_connection_is_retried(kind):
    with scripted_service([DROP, OK]) as server:
        [r] = run_score(kind, server.url, [make_sample(0)], max_retries=2, backoff=0.01)
    assert len(server.requests) == 2
    assert r.reward == 0.5


def test_timeout_names_url_and_is_retried(kind):
    # The server would answer (0.5) after 60 s: a client that waited for it would get a
    # result, so the RewardTimeout shows it gave up on its own timeout, twice.
    with scripted_service([Sleep(60)]) as server:
        with pytest.raises(RewardTimeout) as info:
            run_score(kind, server.url, [make_sample(0)], timeout=0.3, max_retries=1,
                      backoff=0.01)
        assert len(server.requests) == 2
    assert server.url in str(info.value)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, RewardClientError)


def test_connection_refused(kind):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RewardConnectionError) as info:
        run_score(kind, url, [make_sample(0)], max_retries=1, backoff=0.01)
    assert url in str(info.value) and isinstance(info.value, ConnectionError)


def test_bad_sample_fails_before_sending(kind):
    samples = [make_sample(0), {"prompt": "x", "respone": "typo"}]
    with scripted_service() as server, pytest.raises(InvalidSampleError) as info:
        run_score(kind, server.url, samples)
    assert len(server.requests) == 0
    assert "samples[1]" in str(info.value) and "respone" in str(info.value)


def test_service_error_names_the_callers_index(kind):
    # the service names the k-th sample of its request; the caller gets its own index
    # (sample 0 is invalid here and never sent, so the requests hold samples 1-2 and 3-4)
    script = [OK, Reply(413, {"error": "samples[1].response: too long"})]
    samples = [make_sample(0) | {"labels": "maybe"}, *(make_sample(i) for i in range(1, 5))]
    with scripted_service(script) as server, pytest.raises(RewardServiceError) as info:
        run_score(kind, server.url, samples, chunk_size=2, max_concurrency=1)
    assert len(server.requests) == 2
    assert info.value.message == "samples[4].response: too long"


def test_result_count_mismatch_is_an_error(kind):
    body = {"profile": "p", "rubric_version": "v", "rewards": [], "results": []}
    with scripted_service([Reply(200, body)]) as server, pytest.raises(RewardServiceError) as info:
        run_score(kind, server.url, [make_sample(0)])
    assert "1 samples" in str(info.value)


def test_empty_batch_sends_nothing(kind):
    with scripted_service() as server:
        assert run_score(kind, server.url, []) == []
    assert len(server.requests) == 0


def test_async_chunk_failure_cancels_the_rest():
    # 4 chunks, 1 at a time: the first answers 422, so nothing else may be sent
    script = [Reply(422, {"error": "samples[0].response: Field required"}), OK]

    async def go():
        async with AsyncRewardClient(server.url, chunk_size=1, max_concurrency=1) as client:
            await client.score([make_sample(i) for i in range(4)])

    with scripted_service(script) as server, pytest.raises(RewardServiceError):
        asyncio.run(go())
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("attempt", "error", "low", "high"),
    [
        (0, RewardServiceError(503, "x"), 0.5, 1.0),  # first backoff: 1.0 * [0.5, 1]
        (2, RewardServiceError(503, "x"), 2.0, 4.0),  # exponential: 1.0 * 2**2
        (3, RewardTimeout("t"), 2.5, 5.0),  # capped at max_backoff=5
        (0, RewardServiceError(503, "x", retry_after=7), 7.0, 7.7),  # Retry-After + <=10%
        (0, RewardServiceError(503, "x", retry_after=999), 60.0, 66.0),  # capped Retry-After
        (0, RewardConnectionError("c"), 0.5, 1.0),  # connection errors retried
    ],
)
def test_retry_policy_delays(attempt, error, low, high):
    policy = RetryPolicy(max_retries=5, backoff=1.0, max_backoff=5.0, max_retry_after=60.0)
    for _ in range(20):
        assert low <= policy.delay(attempt, error) <= high


@pytest.mark.parametrize(
    "error",
    [
        RewardServiceError(422, "bad"),  # 4xx: the caller's mistake
        RewardServiceError(400, "profile"),
        RewardServiceError(500, "bug"),  # 500 is a server bug, not "come back later"
        InvalidSampleError("x"),
    ],
)
def test_retry_policy_never_retries(error):
    assert RetryPolicy(max_retries=5).delay(0, error) is None


def test_retry_policy_stops_after_max_retries():
    p = RetryPolicy(max_retries=2)
    assert p.delay(1, RewardTimeout("t")) is not None
    assert p.delay(2, RewardTimeout("t")) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),  # delta-seconds
        ("0", 0.0),
        (" 12 ", 12.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),  # HTTP date, 10 s after "now" below
        ("soon", None),  # garbage is ignored, backoff applies
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    now = 1445412470.0  # 2015-10-21 07:27:50 GMT
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({"combine_tag": "unsafe"}, {"combine_tag": "unsafe"}),
        ('{"image_tag": "safe", "text_tag": null, "combine_tag": "safe"}',
         {"image_tag": "safe", "combine_tag": "safe"}),  # JSON string, nulls dropped
        ("unsafe", {"combine_tag": "unsafe"}),  # bare tag = combined tag
        ({"image_tag": None, "text_tag": ""}, None),  # nothing left: no labels
        ("", None),
        ({"combine_tag": " UNSAFE ", "category": "weapons"}, {"combine_tag": "unsafe"}),
    ],
)
def test_normalise_labels(raw, expected):
    assert normalise_labels(raw) == expected


def test_encode_image_forms(tmp_path):
    from PIL import Image

    (tmp_path / "a.png").write_bytes(PNG_1x1)
    url = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()
    assert encode_image("a.png", tmp_path) == url  # relative path, base_dir
    assert encode_image(tmp_path / "a.png") == url  # Path
    assert encode_image(PNG_1x1) == url  # bytes
    assert encode_image({"bytes": PNG_1x1, "path": None}) == url  # datasets' Image dict
    assert encode_image(url) == url  # data URL: as is
    assert encode_image("server/side.png") == "server/side.png"  # for REWARD_IMAGE_ROOT
    assert encode_image(Image.new("RGBA", (2, 2))).startswith("data:image/png;base64,")
    assert encode_image(Image.new("CMYK", (2, 2))).startswith("data:image/png;base64,")
    with pytest.raises(InvalidSampleError):
        encode_image(3.5)


def test_missing_image_file_is_named_as_written(kind, tmp_path):
    # with base_dir the caller says images are local files: a missing one is that sample's
    # error, named as written, and never reaches the service
    with pytest.raises(SampleDataError, match=r"file not found: img/kitchen\.png"):
        encode_image("img/kitchen.png", tmp_path)
    sample = make_sample(0) | {"images": ["img/kitchen.png"]}
    with scripted_service() as server:
        if kind == "sync":
            with RewardClient(server.url) as client:
                results = client.score([sample, make_sample(1)], base_dir=tmp_path)
        else:
            async def go():
                async with AsyncRewardClient(server.url) as client:
                    return await client.score([sample, make_sample(1)], base_dir=tmp_path)
            results = asyncio.run(go())
    assert [r.reward for r in results] == [None, 0.5]
    assert results[0].error == (f"client: images[0]: file not found: img/kitchen.png "
                                f"(relative to {tmp_path})")
    assert [s["id"] for s in server.requests[0].json()["samples"]] == [1]


def test_encode_image_labels_the_true_type(tmp_path):
    # a JPEG saved as .png is sent as image/jpeg: the type comes from the bytes, as the
    # service checks it, not from the file name
    jpeg = b"\xff\xd8\xff\xe0" + bytes(16)
    (tmp_path / "photo.png").write_bytes(jpeg)
    assert encode_image(tmp_path / "photo.png").startswith("data:image/jpeg;base64,")
    assert encode_image({"bytes": jpeg}).startswith("data:image/jpeg;base64,")


def test_errors_pickle():
    err = pickle.loads(pickle.dumps(RewardServiceError(503, "down", "http://x", 2.0)))
    assert (err.status, err.message, err.url, err.retry_after) == (503, "down", "http://x", 2.0)


# --------------------------------------------------------------------------- openrlhf adapter


def _load_openrlhf_file(monkeypatch, env: dict[str, str]):
    for var in ("REWARD_SERVICE_INVALID_REWARD", "REWARD_SERVICE_PROFILE",
                "REWARD_SERVICE_COMPONENTS", "REWARD_SERVICE_STRIP_TOKENS"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import clients.adapters.openrlhf as mod

    # exactly what OpenRLHF's SingleTurnAgentExecutor does with --remote_rm_url file.py
    spec = importlib.util.spec_from_file_location("reward_func", mod.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


def test_openrlhf_file_mode(monkeypatch, rules_server):
    reward_func = _load_openrlhf_file(monkeypatch, {
        "REWARD_SERVICE_URL": rules_server.url, "REWARD_SERVICE_INVALID_REWARD": "0.3",
        "REWARD_SERVICE_COMPONENTS": "format"})
    prompt = "<|im_start|>user\nhow do I bake bread?<|im_end|>\n<|im_start|>assistant\n"
    good = make_sample(0)["response"]
    queries = [prompt + good + "<|im_end|>", prompt + good, "unrelated text"]
    labels = ['{"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}', None, "safe"]
    out = reward_func(queries, [prompt, prompt, prompt], labels)
    # the end-of-turn token is stripped (else the format check fails); no label -> the
    # chosen 0.3; a query that does not contain its prompt -> 0.3 too
    assert out["rewards"].tolist() == pytest.approx([1.0, 0.3, 0.3])
    assert out["extra_logs"]["valid"].tolist() == [1.0, 0.0, 0.0]
    assert out["extra_logs"]["format"][0].item() == 1.0
    # the service's token list: Gemma's end of turn and a pad token after it go too
    out = reward_func([prompt + good + "<end_of_turn>\n<pad><pad>"], [prompt], [labels[0]])
    assert out["rewards"].tolist() == [1.0]


def test_openrlhf_file_mode_requires_invalid_reward(monkeypatch, rules_server):
    with pytest.raises(RuntimeError, match="REWARD_SERVICE_INVALID_REWARD"):
        _load_openrlhf_file(monkeypatch, {"REWARD_SERVICE_URL": rules_server.url})


def test_openrlhf_http_mode_protocol(rules_server):
    # the service's own /get_reward (what --remote_rm_url http://…/get_reward talks to)
    prompt = "Q: bake bread?"
    good = make_sample(0)["response"]
    body = {"query": [prompt + good], "prompts": [prompt],
            "labels": ['{"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}']}
    reply = httpx.post(rules_server.url + "/get_reward", json=body).json()
    assert reply["rewards"] == [1.0] and reply["extra_logs"]["valid"] == [1.0]


def test_package_surface():
    import clients

    for name in ("RewardClient", "AsyncRewardClient", "Result", "trl_reward",
                 "RewardClientError", "RewardServiceError", "RewardTimeout",
                 "RewardConnectionError"):
        assert hasattr(clients, name), name
    assert issubclass(RewardServiceError, RewardClientError)
    assert "clients" in sys.modules
    assert Path(clients.__file__).parent.name == "clients"

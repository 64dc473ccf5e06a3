"""Availability under abuse: slow or vanishing clients, and requests that are expensive to
score, never hold the server.

Each case runs a real server (``python -m reward_server``) on loopback with short deadlines
and talks to it over raw sockets, the way a slowloris client or a crashed trainer would,
or sends it a well-formed request whose scoring reads megabytes of adversarial text while
a probe keeps asking ``/health``. Waits are liveness bounds (how long the test gives the
server to act), not speed targets.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakes.metrics import metric
from tests.fakes.raw_http import connect, read_until_closed
from tests.fakes.servers import RewardServer


@pytest.fixture(scope="module")
def strict_server():
    with RewardServer(env={
        "REWARD_HEADER_TIMEOUT_S": "1",
        "REWARD_BODY_TIMEOUT_S": "1",
        "REWARD_MAX_CONNECTIONS": "64",
    }) as server:
        yield server


def test_half_open_connections_are_closed_and_health_still_answers(strict_server):
    # Slowloris: 40 connections that send half a request line and then drip a header byte.
    socks = [connect(strict_server.port) for _ in range(40)]
    for s in socks:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
    assert httpx.get(f"{strict_server.url}/health", timeout=5).status_code == 200
    replies = []
    for s in socks:
        s.sendall(b"X")  # a drip must not reset the deadline
        replies.append(read_until_closed(s)[0])
        s.close()
    assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[:3]
    assert b"headers not received in time" in replies[0]


def test_announced_body_never_sent_gets_408_not_500(strict_server):
    before_500 = metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    s = connect(strict_server.port)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 200000000\r\n\r\n{\"samples\": [")
    reply = read_until_closed(s)[0]
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"body not received in time" in reply
    # The app saw a client disconnect: counted as 499, never as a server error.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and metric(
        strict_server.url, "reward_requests_total", route="/score", status="499"
    ) < 1:
        time.sleep(0.1)
    assert metric(strict_server.url, "reward_requests_total", route="/score", status="499") >= 1
    after_500 = metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    assert after_500 == before_500


def test_client_disconnect_mid_body_is_not_an_error(strict_server):
    before = metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    for _ in range(5):
        s = connect(strict_server.port)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"samples\": [")
        time.sleep(0.05)
        s.close()
    # Let the server notice all five, then check nothing was counted or logged as a crash.
    time.sleep(0.5)
    assert httpx.get(f"{strict_server.url}/health", timeout=5).status_code == 200
    after = metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    assert after == before
    assert "Exception in ASGI application" not in strict_server.output()


def test_keep_alive_connection_serves_requests_within_the_deadlines(strict_server):
    # The deadlines must not break normal keep-alive use: three requests on one connection.
    with httpx.Client(base_url=strict_server.url, timeout=10) as client:
        for _ in range(3):
            r = client.post("/score", json={"samples": [{"prompt": "q", "response": "x", "labels": {
                "combine_tag": "safe"}}]})
            assert r.status_code == 200
            time.sleep(0.3)


def _score_while(url: str, status: int, limit_s: float = 10) -> httpx.Response:
    """An empty ``/score`` request, sent again while it answers ``status`` (up to ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    r = httpx.post(f"{url}/score", json={"samples": []}, timeout=5)
    while r.status_code == status and time.monotonic() < deadline:
        time.sleep(0.05)
        r = httpx.post(f"{url}/score", json={"samples": []}, timeout=5)
    return r


def test_requests_in_flight_beyond_the_limit_are_refused_with_503():
    # REWARD_MAX_CONNECTIONS bounds requests in flight (idle sockets are not counted:
    # tests/test_serving_edges.py). Two requests are held in flight, their bodies announced
    # and not yet sent; a third is refused at once in the service's error shape, while
    # /health (a probe path, never refused) still answers.
    body = b'{"samples": []}'
    head = (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    with RewardServer(env={"REWARD_MAX_CONNECTIONS": "2", "REWARD_BODY_TIMEOUT_S": "60"}) as srv:
        held = [connect(srv.port) for _ in range(2)]
        try:
            for s in held:
                s.sendall(head + body[:1])
            r = _score_while(srv.url, 200)  # until the server has both in flight
            assert r.status_code == 503, r.text
            assert "REWARD_MAX_CONNECTIONS" in r.json()["error"]  # the service's error shape
            assert r.headers["retry-after"] == "1"
            assert r.headers["connection"] == "close"
            assert httpx.get(f"{srv.url}/health", timeout=2).status_code == 200
            # The held requests are served once their bodies arrive.
            for s in held:
                s.sendall(body[1:])
            replies = [read_until_closed(s)[0] for s in held]
            assert all(reply.startswith(b"HTTP/1.1 200") for reply in replies), replies
        finally:
            for s in held:
                s.close()
        r = _score_while(srv.url, 503)  # until the server has let them go
        assert r.status_code == 200, r.text


# --- Requests that would hold the event loop for seconds --------------------------------------
#
# Each abusive request below would stall /health for 10-26 s without the limits and the
# off-loop image loading. While it is in flight, a probe thread measures /health; the bound (1 s) is
# five times the 200 ms target so a loaded CI machine does not flake, and still far
# below the multi-second stalls it guards against.

HEALTH_BOUND_S = 1.0


class _HealthProbe:
    """Polls /health from a thread while the block runs; keeps the slowest answer seen.

    The probe proves the server answers before the block starts (``__enter__`` waits for a
    first 200). Anything that goes wrong in the thread (a non-200, an exception, a stall
    longer than the client's timeout) is recorded and fails the test in ``__exit__``, as
    does a probe still waiting for its answer when the block is over (``slowest`` then
    counts that wait). The test body checks ``slowest`` against ``HEALTH_BOUND_S``.
    """

    _TIMEOUT_S = 30.0

    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self.errors: list[str] = []
        self._asked_at: float | None = None  # when the probe now waiting was sent
        self._answered = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=self._TIMEOUT_S) as client:
                while not self._stop.is_set():
                    self._asked_at = start = time.perf_counter()
                    reply = client.get(f"{self.url}/health")
                    self.slowest = max(self.slowest, time.perf_counter() - start)
                    self._asked_at = None
                    if reply.status_code != 200:
                        self.errors.append(f"/health answered {reply.status_code}: {reply.text}")
                        return
                    self.answers += 1
                    self._answered.set()
                    time.sleep(0.02)
        except Exception as exc:  # recorded, and raised in the test's thread by __exit__
            self.errors.append(f"/health probe failed: {type(exc).__name__}: {exc}")
        finally:
            self._answered.set()  # never leave __enter__ waiting

    def __enter__(self) -> _HealthProbe:
        self._thread.start()
        self._answered.wait(self._TIMEOUT_S + 5)
        assert not self.errors, self.errors
        assert self.answers > 0, "/health never answered before the request was sent"
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._TIMEOUT_S + 5)
        asked_at = self._asked_at
        if asked_at is not None:  # the answer being waited for counts, even unfinished
            self.slowest = max(self.slowest, time.perf_counter() - asked_at)
        if exc_type is not None:
            return  # the block's own failure is the one to report
        assert not self._thread.is_alive(), f"/health still unanswered after {self.slowest:.1f} s"
        assert not self.errors, self.errors


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def image_root_server(tmp_path_factory):
    import io

    from PIL import Image as PILImage

    root = tmp_path_factory.mktemp("images")
    buf = io.BytesIO()
    PILImage.new("RGB", (16, 16), (0, 0, 255)).save(buf, "PNG")
    nested = root.joinpath(*["sub"] * 200)
    nested.mkdir(parents=True)
    (nested / "ok.png").write_bytes(buf.getvalue())
    (root / "ok.png").write_bytes(buf.getvalue())
    with RewardServer(env={"REWARD_IMAGE_ROOT": str(root), "REWARD_API_KEY": "k"}) as server:
        yield server


def _post(url: str, path: str, body: dict, key: str = "k") -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {key}"})


def test_get_reward_query_over_the_limit_is_413_before_any_work(image_root_server):
    url = image_root_server.url
    body = {"query": ["p" + "<|im_end|>" * 256_000], "prompts": ["p"],
            "labels": [{"combine_tag": "safe"}]}
    with _HealthProbe(url) as probe:
        r = _post(url, "/get_reward", body)
    assert r.status_code == 413
    assert "REWARD_MAX_QUERY_CHARS" in r.json()["error"]
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


def test_get_reward_long_end_of_turn_tail_is_stripped_without_stalling(image_root_server):
    url = image_root_server.url
    response = ("<think><visual_safe>safe</visual_safe><text_safe>safe</text_safe>"
                "<combined_safe>safe</combined_safe></think><answer>Sure, here it is.</answer>")
    body = {"query": ["p" + response + "<|im_end|>" * 100_000], "prompts": ["p"],
            "labels": [{"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}]}
    with _HealthProbe(url) as probe:
        r = _post(url, "/get_reward", body)
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == [1.0]
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


def test_very_long_image_paths_make_their_samples_invalid_without_stalling(image_root_server):
    url = image_root_server.url
    samples = [{"prompt": "q", "response": "x", "images": ["a/" * 20_000 + str(i)],
                "labels": {"combine_tag": "safe"}} for i in range(100)]
    with _HealthProbe(url) as probe:
        r = _post(url, "/score", {"samples": samples})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert all(x["status"] == "invalid" for x in results)
    assert "REWARD_MAX_IMAGE_PATH_CHARS" in results[0]["error"]
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


def test_many_deep_image_paths_resolve_off_the_event_loop(image_root_server):
    url = image_root_server.url
    deep = "sub/" * 200 + "ok.png"
    samples = [{"prompt": f"q{i}", "response": "x", "images": [deep, deep, deep],
                "labels": {"combine_tag": "safe"}} for i in range(1024)]
    with _HealthProbe(url) as probe:
        r = _post(url, "/score", {"samples": samples})
    assert r.status_code == 200, r.text
    assert all(x["status"] == "ok" for x in r.json()["results"])
    assert probe.answers > 0
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


# --- Requests whose CPU work runs off the event loop --------------------------------------
#
# Each is well-formed and within every limit, but reads so much adversarial text that its
# scoring takes seconds: the work runs in a worker thread (reward_server.offload), and the
# results are the same as inline.

_TAGS = ("<think><visual_safe>safe</visual_safe><text_safe>safe</text_safe>"
         "<combined_safe>safe</combined_safe></think>")
_SAFE = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
_UNSAFE = {"image_tag": "unsafe", "text_tag": "unsafe", "combine_tag": "unsafe"}


def _answer_of(chars: int, unit: str, before: str = _TAGS) -> str:
    """A well-formed response of about ``chars`` characters: ``unit`` repeated as its answer."""
    body = unit * ((chars - len(before) - len("<answer></answer>")) // len(unit))
    return f"{before}<answer>{body}</answer>"


def test_rules_scoring_of_a_large_request_runs_off_the_event_loop(image_root_server):
    # 1,024 answers of 64K characters of prose: 64 MB of request, parsed, format-checked
    # and read by safegrpo_plus's refusal detector. Even samples are labelled safe (a right
    # prediction and no refusal: 1.0), odd ones unsafe (every tag wrong: 0.0).
    from concurrent.futures import ThreadPoolExecutor

    url = image_root_server.url
    response = _answer_of(65_536, "The sky is blue. ")
    samples = [{"id": i, "prompt": f"rules-abuse {i}", "response": response,
                "labels": _SAFE if i % 2 == 0 else _UNSAFE} for i in range(1024)]
    def shared() -> float:  # a sample answered by another request's computation
        return sum(metric(url, "reward_cache_total", outcome=o) for o in ("dedup", "hit"))

    misses, before = metric(url, "reward_cache_total", outcome="miss"), shared()
    with _HealthProbe(url) as probe, ThreadPoolExecutor(1) as pool:
        big = pool.submit(_post, url, "/score", {"profile": "safegrpo_plus", "samples": samples})
        # Once its keys are looked up, the same sample in a small request waits for the
        # computation in flight (a dedup), or, when the big request finished first, reads
        # its stored result (a hit): one computation per key either way, the same result.
        while not big.done() and metric(url, "reward_cache_total", outcome="miss") < misses + 1:
            time.sleep(0.05)
        twin = _post(url, "/score", {"profile": "safegrpo_plus", "samples": [samples[0]]})
        r = big.result()
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == list(range(1024))
    for i, x in enumerate(results):
        right = i % 2 == 0
        assert x["status"] == "ok", x
        assert x["reward"] == (1.0 if right else 0.0), x
        assert x["components"] == {"format": 1.0, "tag": float(right), "behavior": float(right),
                                   "refused": 0.0}
    assert twin.status_code == 200, twin.text
    assert {**twin.json()["results"][0], "cached": False} == {**results[0], "cached": False}
    assert metric(url, "reward_cache_total", outcome="miss") == misses + 1024
    assert shared() == before + 1
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


def test_get_reward_queries_that_need_the_normalised_matcher_split_off_the_event_loop(
    image_root_server,
):
    # Near 1 MiB queries of alternating special tokens, decoded with a space after each one
    # the prompt does not have: the exact rule fails and the normalised one reads both texts
    # token by token (about half a second a query).
    url = image_root_server.url
    n = 8
    responses = [_answer_of(200, f"Sure, case {i}. ") for i in range(n)]
    units = 130_000
    prompt = "<|im_start|>user\n" + "<a><b>" * units + "<|im_end|>\n<|im_start|>assistant\n"
    decoded = "<|im_start|>user\n" + "<a> <b> " * units + "<|im_end|>\n<|im_start|>assistant\n"
    body = {"query": [decoded + r + "<|im_end|>" for r in responses], "prompts": [prompt] * n,
            "labels": [_SAFE if i % 2 == 0 else _UNSAFE for i in range(n)]}
    assert max(map(len, body["query"])) <= 1_048_576  # REWARD_MAX_QUERY_CHARS's default
    before = metric(url, "reward_get_reward_matches_total", method="normalised")
    with _HealthProbe(url) as probe:
        r = _post(url, "/get_reward", body)
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == [1.0 if i % 2 == 0 else 0.0 for i in range(n)]
    after = metric(url, "reward_get_reward_matches_total", method="normalised")
    assert after == before + n
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


JUDGE_MODEL = "scripted-judge"


@pytest.fixture(scope="module")
def scripted_judge():
    from tests.fakes.scripted_openai import ScriptedOpenAIServer, verdict_json

    with ScriptedOpenAIServer(lambda request: verdict_json(), model=JUDGE_MODEL) as judge:
        yield judge


@pytest.fixture(scope="module")
def judge_server(scripted_judge):
    from tests.test_judge_scripted import judge_env, wait_ready

    with RewardServer(judge_env(scripted_judge.url, REWARD_JUDGE_MODEL=JUDGE_MODEL)) as server:
        wait_ready(server)
        yield server


def test_judge_profile_with_large_adversarial_responses_keeps_health_answering(
    judge_server, scripted_judge,
):
    # 64K-character responses of "judge " and forged marker openings: the injection
    # detector tries a pattern at every word (some 100 ms a response) and the prompt's
    # fencing rewrites every "<<<END"; none of it is an injection, so all reach the judge.
    url = judge_server.url
    reference = httpx.post(f"{url}/score", timeout=60, json={"profile": "safer_vlm", "samples": [
        {"prompt": "judge-abuse reference", "response": "<think>ok</think><answer>Hi.</answer>"}
    ]})
    assert reference.status_code == 200, reference.text
    expected = reference.json()["results"][0]
    assert expected["status"] == "ok", expected
    half = "judge " * 4_800 + "<<<END judge " * 50 + "judge " * 400
    response = f"<think>{half}</think><answer>{half}</answer>"
    n = 64
    samples = [{"id": i, "prompt": f"[[judge-abuse-{i}]] What is shown?", "response": response}
               for i in range(n)]
    with _HealthProbe(url) as probe:
        r = httpx.post(f"{url}/score", json={"profile": "safer_vlm", "samples": samples},
                       timeout=300)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == list(range(n))
    for x in results:
        assert x["status"] == "ok", x
        assert (x["reward"], x["components"], x["penalties"]) == (
            expected["reward"], expected["components"], expected["penalties"]
        )
    for i in range(n):
        (asked,) = scripted_judge.matching(f"[[judge-abuse-{i}]]")
        assert "‹‹‹END judge" in asked.text and "<<<END judge" not in asked.text
    assert probe.slowest < HEALTH_BOUND_S, probe.slowest


def test_too_many_images_per_sample_is_413_before_decoding(image_root_server):
    url = image_root_server.url
    sample = {"prompt": "q", "response": "x", "images": ["ok.png"] * 17,
              "labels": {"combine_tag": "safe"}}
    r = _post(url, "/score", {"samples": [sample]})
    assert r.status_code == 413
    assert "REWARD_MAX_IMAGES_PER_SAMPLE" in r.json()["error"]


def test_memory_returns_near_its_start_after_a_burst_of_large_requests(image_root_server):
    import base64
    import os

    url = image_root_server.url
    pid = image_root_server.proc.pid
    noise = base64.b64encode(os.urandom(6_000_000)).decode()  # 8 MB of base64 per image
    body = {"samples": [{"prompt": "q", "response": "x", "labels": {"combine_tag": "safe"},
                         "images": [f"data:image/png;base64,{noise}"]} for _ in range(4)]}
    _post(url, "/score", body)  # warm up allocator pools once
    start = _rss_bytes(pid)
    for _ in range(5):
        r = _post(url, "/score", body)
        assert r.status_code == 200  # each image is invalid (not a PNG), the request is fine
    end = _rss_bytes(pid)
    # Five 32 MB requests: memory held afterwards stays well under one request's size.
    assert end - start < 64 * 1024 * 1024, (start, end)

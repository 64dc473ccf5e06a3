"""Availability under abuse: slow or vanishing clients never hold the server.

Each case runs a real server (``python -m reward_server``) on loopback with short deadlines
and talks to it over raw sockets, the way a slowloris client or a crashed trainer would.
Waits are liveness bounds (how long the test gives the server to act), not speed targets.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.fakes.servers import RewardServer


def _metric(url: str, name: str, **labels: str) -> float:
    """One sample of the server's Prometheus text, 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_until_closed(sock: socket.socket, limit_s: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit_s`` passes)."""
    data = b""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


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
    socks = [_connect(strict_server.port) for _ in range(40)]
    for s in socks:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
    assert httpx.get(f"{strict_server.url}/health", timeout=5).status_code == 200
    replies = []
    for s in socks:
        s.sendall(b"X")  # a drip must not reset the deadline
        replies.append(_read_until_closed(s))
        s.close()
    assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[:3]
    assert b"headers not received in time" in replies[0]


def test_announced_body_never_sent_gets_408_not_500(strict_server):
    before_500 = _metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    s = _connect(strict_server.port)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 200000000\r\n\r\n{\"samples\": [")
    reply = _read_until_closed(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"body not received in time" in reply
    # The app saw a client disconnect: counted as 499, never as a server error.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _metric(
        strict_server.url, "reward_requests_total", route="/score", status="499"
    ) < 1:
        time.sleep(0.1)
    assert _metric(strict_server.url, "reward_requests_total", route="/score", status="499") >= 1
    after_500 = _metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    assert after_500 == before_500


def test_client_disconnect_mid_body_is_not_an_error(strict_server):
    before = _metric(strict_server.url, "reward_requests_total", route="/score", status="500")
    for _ in range(5):
        s = _connect(strict_server.port)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"samples\": [")
        time.sleep(0.05)
        s.close()
    # Let the server notice all five, then check nothing was counted or logged as a crash.
    time.sleep(0.5)
    assert httpx.get(f"{strict_server.url}/health", timeout=5).status_code == 200
    after = _metric(strict_server.url, "reward_requests_total", route="/score", status="500")
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


def test_connections_beyond_the_limit_are_refused_with_503():
    with RewardServer(env={"REWARD_MAX_CONNECTIONS": "4", "REWARD_HEADER_TIMEOUT_S": "30"}) as srv:
        idle = [_connect(srv.port) for _ in range(6)]
        try:
            time.sleep(0.3)
            r = httpx.get(f"{srv.url}/health", timeout=5)
            assert r.status_code == 503
            assert "REWARD_MAX_CONNECTIONS" in r.json()["error"]  # the service's error shape
            assert r.headers["retry-after"] == "1"
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(f"{srv.url}/health", timeout=5).status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200


# --- Requests that used to hold the event loop for seconds -----------------------------------
#
# Each abusive request below stalled /health for 10-26 s before the limits and the off-loop
# image loading. While it is in flight, a probe thread measures /health; the bound (1 s) is
# five times the 200 ms target so a loaded CI machine does not flake, and still far
# below the multi-second stalls it guards against.

HEALTH_BOUND_S = 1.0


class _HealthProbe:
    """Polls /health in a thread and keeps the slowest answer seen."""

    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                assert client.get(f"{self.url}/health").status_code == 200
                self.slowest = max(self.slowest, time.perf_counter() - start)
                self.answers += 1
                time.sleep(0.02)

    def __enter__(self) -> _HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


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

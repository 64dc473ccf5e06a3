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

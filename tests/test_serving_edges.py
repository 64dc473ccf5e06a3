"""The connection handler at its edges, over real HTTP to ``python -m reward_server``:

* idle connections (connected, no request bytes) neither count against the request limit
  nor take ``/health`` down, and are closed after ``REWARD_IDLE_TIMEOUT_S`` without a reply;
* ``Authorization`` is read strictly: exactly ``Bearer <key>``, one header;
* requests the HTTP parser rejects get the service's JSON error body, not uvicorn's text.

Raw sockets send what an HTTP client library would refuse to (two ``Authorization``
headers, a tab after a value, a vertical tab inside one). Waits are liveness bounds.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time

import httpx
import pytest

from tests.fakes.raw_http import connect, read_until_closed
from tests.fakes.servers import RewardServer

LIVENESS_S = 15.0  # how long a test gives the server to act (a bound, not a pace)


def _is_open(sock: socket.socket) -> bool:
    """True when the server has neither closed ``sock`` nor sent anything on it."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of one HTTP/1.1 response (headers lower-cased)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` (ending with ``Connection: close``) and parse the whole answer."""
    with connect(port) as sock:
        sock.sendall(request)
        raw, closed = read_until_closed(sock)
    assert closed, f"the server kept the connection open: {raw[:200]!r}"
    return _parse(raw)


SAMPLE = {"prompt": "q", "response": "x", "labels": {"combine_tag": "safe"}}


def _post_score(port: int, headers: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"samples": [SAMPLE]}).encode()
    head = [b"POST /score HTTP/1.1", b"Host: x", b"Content-Type: application/json",
            b"Content-Length: %d" % len(body), b"Connection: close", *headers]
    return _exchange(port, b"\r\n".join(head) + b"\r\n\r\n" + body)


def _open_file_budget() -> int:
    """The soft open-file limit, raised to the hard one first when that is allowed: the
    server started afterwards inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 4096)
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- 1. idle connections ----------------------------------------------------------------------


def test_many_idle_connections_leave_health_and_score_answering():
    # Idle sockets stay open for the whole test (long idle and header deadlines), far more
    # of them than REWARD_MAX_CONNECTIONS: the limit counts requests in flight, not sockets.
    count = min(1000, _open_file_budget() // 2 - 64)
    limit = 8
    if count <= 2 * limit:
        pytest.skip(f"open-file limit too low for {2 * limit} idle sockets")
    env = {"REWARD_MAX_CONNECTIONS": str(limit), "REWARD_IDLE_TIMEOUT_S": "120",
           "REWARD_HEADER_TIMEOUT_S": "120"}
    with RewardServer(env) as server:
        idle: list[socket.socket] = []
        try:
            for _ in range(count):
                idle.append(connect(server.port))
            time.sleep(0.5)  # let the server accept them all
            health = httpx.get(f"{server.url}/health", timeout=2)  # a liveness probe's bound
            assert health.status_code == 200, health.text
            scored = httpx.post(f"{server.url}/score", json={"samples": [SAMPLE]}, timeout=10)
            assert scored.status_code == 200, scored.text
            assert scored.json()["results"][0]["status"] == "ok"
            # ... while every idle socket was (and still is) open.
            assert all(_is_open(s) for s in idle)
        finally:
            for s in idle:
                s.close()


def test_idle_connections_are_closed_without_a_reply_and_a_started_request_is_not():
    env = {"REWARD_IDLE_TIMEOUT_S": "1", "REWARD_HEADER_TIMEOUT_S": "60"}
    with RewardServer(env) as server:
        # Connected, nothing sent: closed by the idle deadline, long before the header one.
        silent = [connect(server.port) for _ in range(20)]
        # One byte of a request line: the idle deadline no longer applies to it.
        started = connect(server.port)
        started.sendall(b"G")
        # A kept-alive connection after its answer: idle again, closed the same way.
        kept = connect(server.port)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            for s in silent:
                data, closed = read_until_closed(s)
                assert closed and data == b"", data
            answer, closed = read_until_closed(kept)
            assert closed, "the kept-alive connection was not closed when idle"
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert answer.count(b"HTTP/1.1") == 1  # nothing (no 408) after the answer
            assert _is_open(started)
            started.sendall(b"ET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, closed = read_until_closed(started)
            assert closed and data.startswith(b"HTTP/1.1 200"), data
        finally:
            for s in (*silent, started, kept):
                s.close()


# --- 2. strict Authorization ----------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server():
    with RewardServer({"REWARD_API_KEY": "s3cret"}) as server:
        yield server


@pytest.mark.parametrize(
    "headers",
    [
        [b"Authorization: Bearer  s3cret"],  # two spaces
        [b"Authorization: Bearer s3cret\t"],  # trailing tab
        [b"Authorization: Bearer s3cret "],  # trailing space
        [b"Authorization: Bearer s3cret\xa0"],  # trailing no-break space (latin-1)
        [b"Authorization: Bearer s3cret\xc2\xa0"],  # trailing no-break space (UTF-8)
        [b"Authorization: Bearer \ts3cret"],
        [b"Authorization: Bearer\ts3cret"],
        [b"Authorization: Bearer s3cret", b"Authorization: Bearer s3cret"],
        [b"Authorization: Bearer s3cret", b"Authorization: Bearer wrong"],
        [b"Authorization: Bearer wrong", b"Authorization: Bearer s3cret"],
        [b"Authorization: Bearer s3cret", b"authorization: Basic xyz"],
    ],
    ids=["two-spaces", "trailing-tab", "trailing-space", "trailing-nbsp-latin1",
         "trailing-nbsp-utf8", "tab-before-key", "tab-separator", "twice-same",
         "right-then-wrong", "wrong-then-right", "bearer-and-basic"],
)
def test_authorization_that_is_not_exactly_one_bearer_key_is_401(keyed_server, headers):
    status, head, body = _post_score(keyed_server.port, headers)
    assert status == 401, body
    assert head["content-type"] == "application/json"
    assert head["www-authenticate"] == "Bearer"
    error = json.loads(body)["error"]
    assert "Authorization" in error or "API key" in error


@pytest.mark.parametrize("value", [b"Bearer s3cret", b"bearer s3cret", b"BEARER s3cret"])
def test_exactly_one_bearer_key_is_accepted(keyed_server, value):
    status, _, body = _post_score(keyed_server.port, [b"Authorization: " + value])
    assert status == 200, body
    assert json.loads(body)["results"][0]["status"] == "ok"


# --- 3. the parser's own 400s -------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_server():
    with RewardServer() as server:
        yield server


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: a\x0bb\r\n\r\n",  # vertical tab
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: a\x0cb\r\n\r\n",  # form feed
        b"GET /health HTTP/1.1\r\nHo st: x\r\n\r\n",  # space in a header name
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["vertical-tab", "form-feed", "space-in-name", "not-http"],
)
def test_requests_the_parser_rejects_get_the_json_error_shape(plain_server, request_bytes):
    status, head, body = _exchange(plain_server.port, request_bytes)
    assert status == 400, body
    assert head["content-type"] == "application/json"
    assert head["connection"] == "close"
    assert int(head["content-length"]) == len(body)
    error = json.loads(body)
    assert set(error) == {"error"} and error["error"].startswith("invalid HTTP request")
    # The server goes on serving.
    assert httpx.get(f"{plain_server.url}/health", timeout=2).status_code == 200


def test_a_request_begun_on_a_kept_alive_connection_and_stalled_gets_408():
    with RewardServer({"REWARD_HEADER_TIMEOUT_S": "1"}) as server, connect(server.port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'{"status":"ok"}' not in first:
            chunk = s.recv(65536)
            assert chunk, first
            first += chunk
        s.sendall(b"GET /hea")  # the next request begins, and stalls
        rest, closed = read_until_closed(s)
    assert closed
    assert rest.startswith(b"HTTP/1.1 408"), rest
    assert b"headers not received in time" in rest

"""The shared fake HTTP server behaves as the tests that lean on it assume."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest

from tests.fakes.http_server import DROP, FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply


def echo(request: Request) -> Reply:
    return Reply(201, {"method": request.method, "path": request.path,
                       "body": request.json()}, {"X-Seen": "yes"})


def test_answers_with_the_handlers_reply_and_records_the_request():
    with FakeHTTPServer(echo) as server:
        r = httpx.post(server.url + "/score?x=1", json={"a": 1}, headers={"X-Key": "k"})
        assert r.status_code == 201 and r.headers["x-seen"] == "yes"
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"method": "POST", "path": "/score?x=1", "body": {"a": 1}}
        assert httpx.get(server.url + "/health").json()["body"] is None
    first, second = server.requests
    assert first.headers["x-key"] == "k" and first.json() == {"a": 1}
    assert second.method == "GET" and second.body == b""


def test_bytes_are_sent_as_they_are():
    with FakeHTTPServer(lambda request: Reply(200, b"not json")) as server:
        assert httpx.get(server.url).content == b"not json"


def test_a_failing_handler_answers_500_naming_the_error():
    def broken(request: Request) -> Reply:
        raise KeyError("samples")

    with FakeHTTPServer(broken) as server:
        r = httpx.get(server.url)
    assert r.status_code == 500 and "KeyError" in r.json()["error"]


def test_drop_closes_the_connection_without_an_answer():
    with FakeHTTPServer(lambda request: DROP) as server, pytest.raises(httpx.TransportError):
        httpx.post(server.url, json={})


def test_stop_refuses_connections_and_start_serves_the_same_port_again():
    with FakeHTTPServer(echo) as server, httpx.Client() as client:
        port = server.port
        assert client.get(server.url).status_code == 201  # a kept-alive connection
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get(server.url)
        server.start()
        assert server.port == port and client.get(server.url).status_code == 201


def test_stop_ends_a_handler_waiting_on_stopped():
    entered = threading.Event()

    def slow(request: Request) -> Reply:
        entered.set()
        server.stopped.wait(600)
        return Reply(200, {})

    def call() -> None:
        with contextlib.suppress(httpx.TransportError):  # the answer may or may not arrive
            httpx.get(server.url, timeout=600)

    server = FakeHTTPServer(slow)
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert entered.wait(30)
    server.stop()
    caller.join(30)
    assert not caller.is_alive()


def test_counts_requests_answered_at_once():
    both_in = threading.Barrier(2, timeout=30)

    def meet(request: Request) -> Reply:
        both_in.wait()
        return Reply(200, {})

    with FakeHTTPServer(meet) as server:
        callers = [threading.Thread(target=httpx.get, args=(server.url,)) for _ in range(2)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
    assert server.peak_in_flight == 2 and len(server.requests) == 2


def test_score_reply_has_the_contracts_shape():
    body = {"profile": "p", "samples": [{"id": "a"}, {}]}
    reply = score_reply(body, [(0.5, {"format": 1.0}), (None, {"format": 0.0})])
    assert reply["profile"] == "p" and reply["rewards"] == [0.5, None]
    ok, invalid = reply["results"]
    assert ok == {"id": "a", "status": "ok", "reward": 0.5, "components": {"format": 1.0},
                  "penalties": {}, "judge": None, "cached": False, "error": None}
    assert invalid["id"] is None and invalid["status"] == "invalid"
    assert invalid["components"] == {} and invalid["error"]
    with pytest.raises(ValueError):
        score_reply(body, [(1.0, {})])

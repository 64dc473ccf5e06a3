"""The Serve modules' failure paths, without a cluster: a route that raises through the
handle path, and the judge backend against a judge deployment that is busy or silent."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ray.exceptions import RayTaskError

from clients import RewardClient
from clients.errors import RewardServiceError
from clients.ray_handle import HANDLE_URL, ServeHandleTransport
from reward_server.ray_serve.asgi_call import call_asgi


def raising_app() -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("a bug in a route")

    return app


def test_call_asgi_returns_the_500_a_raising_route_sent(caplog: pytest.LogCaptureFixture) -> None:
    # Starlette's ServerErrorMiddleware sends a 500, then re-raises for the server to log:
    # the handle path answers that 500, as uvicorn does, and logs the error.
    with caplog.at_level(logging.ERROR, logger="reward_server.ray_serve.asgi_call"):
        status, _, body = asyncio.run(call_asgi(raising_app(), "GET", "/boom", [], b""))
    assert status == 500
    assert body == b"Internal Server Error"
    assert any("KeyError" in (r.exc_text or "") for r in caplog.records)


def test_call_asgi_raises_what_an_app_raised_before_answering() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("no response at all")

    with pytest.raises(KeyError):
        asyncio.run(call_asgi(app, "GET", "/", [], b""))


class FailingCall:
    """What ``handle.handle_request.remote(...)`` returns when the replica raised."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self, timeout_s: float | None = None) -> Any:
        raise self.exc

    def cancel(self) -> None:
        pass


class RaisingHandle:
    def __init__(self, exc: BaseException) -> None:
        self.handle_request = self
        self.exc = exc
        self.calls = 0

    def remote(self, *args: Any) -> FailingCall:
        self.calls += 1
        return FailingCall(self.exc)


def test_a_replica_error_reaches_the_client_as_a_server_error() -> None:
    # Any RayTaskError other than a lost replica or back-pressure is the service's 500,
    # inside the clients' exception tree (not a raw RayTaskError).
    exc = RayTaskError("handle_request", "Traceback ...", ValueError("bug")).as_instanceof_cause()
    handle = RaisingHandle(exc)
    client = RewardClient(HANDLE_URL, transport=ServeHandleTransport(handle), max_retries=0)
    with pytest.raises(RewardServiceError) as raised:
        client.score([{"id": "a", "prompt": "p", "response": "r"}], "safegrpo")
    assert raised.value.status == 500
    assert "ValueError" in str(raised.value)
    assert handle.calls == 1


def test_the_transport_answers_a_raw_httpx_500_for_a_replica_error() -> None:
    exc = RayTaskError("handle_request", "Traceback ...", ValueError("bug")).as_instanceof_cause()
    with httpx.Client(transport=ServeHandleTransport(RaisingHandle(exc))) as http:
        reply = http.get(HANDLE_URL + "/health")
    assert reply.status_code == 500

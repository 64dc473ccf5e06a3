"""Running the app on a port that untrusted clients can reach.

uvicorn on its own waits forever for a request's headers and body: a client that opens a
connection and sends nothing, or announces a 200 MB body and never sends it, holds a file
descriptor until the process runs out of them (slowloris). This module adds two deadlines
to uvicorn's httptools protocol and a bound on concurrent connections:

* **headers** must be complete within ``REWARD_HEADER_TIMEOUT_S`` of the connection opening
  (or of the previous response on a kept-alive connection); otherwise the connection is
  answered 408 and closed;
* **the body** must be complete within ``REWARD_BODY_TIMEOUT_S`` of its headers; otherwise
  408 (when no response has started) and close. The app sees a client disconnect, which the
  access middleware counts as 499, never as a 500;
* beyond ``REWARD_MAX_CONNECTIONS`` open connections (or requests in flight) a request is
  answered 503 at once, with ``Retry-After`` and the service's ``{"error": …}`` body.

Why a protocol subclass rather than ASGI middleware: the app is only called once headers are
complete, so a header deadline cannot live in the app.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reward_server.api.errors import error_response
from reward_server.settings import Settings

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


def _timeout_reply(what: str) -> bytes:
    body = b'{"error":"%s not received in time"}' % what.encode("ascii")
    return _TIMEOUT_RESPONSE % (len(body), body)


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines (see the module docstring).

    The deadlines are class attributes so that :func:`protocol_with_deadlines` can make a
    configured subclass: uvicorn instantiates the protocol class itself, once per connection.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self.limit_concurrency = None  # uvicorn's own check answers in plain text; ours below

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        started = self.cycle is not None and getattr(self.cycle, "response_started", False)
        if not started:
            self.transport.write(_timeout_reply(what))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        limit = self.max_connections
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            app, self.app = self.app, _over_capacity
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # Keep-alive: the next request's headers get the same deadline. uvicorn's own
            # keep-alive timer is cancelled by every byte received, so it cannot stop a drip.
            self._arm(self.header_timeout_s, "headers")


#: The answer beyond the connection bound (an ASGI app): 503 in the service's error shape.
_over_capacity = error_response(
    503,
    "server at REWARD_MAX_CONNECTIONS; retry shortly",
    headers={"Retry-After": "1", "Connection": "close"},
)


def protocol_with_deadlines(
    header_timeout_s: float, body_timeout_s: float, max_connections: int | None = None
) -> type:
    """A :class:`DeadlineHttpProtocol` subclass with these limits (``uvicorn.run(http=…)``)."""
    return type(
        "ConfiguredDeadlineHttpProtocol",
        (DeadlineHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s,
         "max_connections": max_connections},
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that enforce the limits above."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_with_deadlines(
            settings.header_timeout_s, settings.body_timeout_s, settings.max_connections
        ),
        "timeout_keep_alive": 5,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }

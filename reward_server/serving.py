"""Running the app on a port that untrusted clients can reach.

uvicorn on its own waits forever for a request's headers and body: a client that opens a
connection and sends nothing, or announces a 200 MB body and never sends it, holds a file
descriptor until the process runs out of them (slowloris). This module adds deadlines to
uvicorn's httptools protocol, a bound on requests in flight, and the service's error shape
for the requests uvicorn answers itself:

* **idle**: a connection without request bytes (before its first request, or between
  requests when kept alive) is closed without a reply after ``REWARD_IDLE_TIMEOUT_S``;
* **headers** must be complete within ``REWARD_HEADER_TIMEOUT_S`` of the connection opening
  (or of the previous response on a kept-alive connection); otherwise the connection is
  answered 408 and closed (closed without a reply when not a byte of a request came);
* **the body** must be complete within ``REWARD_BODY_TIMEOUT_S`` of its headers; otherwise
  408 (when no response has started) and close. The app sees a client disconnect, which the
  access middleware counts as 499, never as a 500;
* beyond ``REWARD_MAX_CONNECTIONS`` **requests in flight** a new request is answered 503 at
  once, with ``Retry-After`` and the service's ``{"error": …}`` body. Open connections are
  not counted (an idle one costs a file descriptor for at most the idle deadline, and no
  work), and the probe paths (:data:`PROBE_PATHS`) are never refused, so a liveness probe
  does not restart a busy service;
* a request the HTTP parser rejects (a control character in a header, a malformed request
  line) is answered 400 with the ``{"error": …}`` body rather than uvicorn's plain text;
* the ``Authorization`` value reaches the app as sent: uvicorn drops trailing spaces and
  tabs from every header value, which would let ``Bearer <key><TAB>`` pass as the key
  (``reward_server.api.deps`` accepts exactly ``Bearer <key>``).

Why a protocol subclass rather than ASGI middleware: the app is only called once headers are
complete, so a header deadline cannot live in the app. Nor in uvicorn's options: its
keep-alive timer restarts with every byte received (a drip keeps it from firing), and its
``limit_concurrency`` counts connections, answers in plain text and spares no probe.
``HttpToolsProtocol`` is internal, so pyproject.toml pins uvicorn to the range this module is
tested with, and ``tests/test_uvicorn_internals.py`` names what another uvicorn lacks.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, Literal

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from reward_server.api.errors import error_response
from reward_server.settings import Settings

#: Paths answered whatever the load (liveness and readiness probes; both are cheap).
PROBE_PATHS = frozenset({b"/health", b"/ready"})

def _json_reply(status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole response in the service's error shape, written by the connection handler
    itself (before or without the app), and the connection closed after it."""
    body = orjson.dumps({"error": message})
    head = [STATUS_LINE[status], *(b"%s: %s\r\n" % header for header in headers),
            b"content-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % len(body)]  # fmt: skip
    return b"".join(head) + body


#: Where a connection is between requests: ``idle`` (no byte of a request yet), ``headers``
#: (a request has begun), ``body`` (headers complete), ``received`` (the whole request in).
_Phase = Literal["idle", "headers", "body", "received"]


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines and an in-flight bound (see the module
    docstring).

    The limits are class attributes so that :func:`protocol_with_deadlines` can make a
    configured subclass: uvicorn instantiates the protocol class itself, once per connection.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    idle_timeout_s: float = 5.0
    max_in_flight: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None  # headers or body
        self._idle: asyncio.TimerHandle | None = None
        self._phase: _Phase = "idle"
        self.limit_concurrency = None  # uvicorn's own check answers in plain text; ours below
        self.timeout_keep_alive = self.idle_timeout_s  # uvicorn's timer, the same as ours

    # --- timers

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _expire(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        # Nothing asked (idle): nothing to answer. In "headers" the request has no cycle yet
        # (``self.cycle`` is the previous, answered one); in "body" it may have an answer.
        if self._phase == "headers" or (self._phase == "body" and not self.cycle.response_started):
            self.transport.write(_json_reply(408, f"{what} not received in time"))
        self.transport.close()

    def _idle_expired(self) -> None:
        self._idle = None
        if self._phase == "idle" and not self.transport.is_closing():
            self.transport.close()

    def _await_request(self) -> None:
        """No request on the connection: the idle and header deadlines start now."""
        self._phase = "idle"
        self._arm(self.header_timeout_s, "headers")
        self._stop_idle()
        self._idle = self.loop.call_later(self.idle_timeout_s, self._idle_expired)

    # --- connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_idle()
        super().connection_lost(exc)

    # --- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "headers"
        self._stop_idle()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if name.lower() == b"authorization":
            self.headers[-1] = (b"authorization", value)  # unstripped: see the module doc

    def on_headers_complete(self) -> None:
        limit = self.max_in_flight
        probe = self.url.partition(b"?")[0] in PROBE_PATHS
        if limit is not None and not probe and len(self.tasks) >= limit:
            app, self.app = self.app, _over_capacity
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._phase = "body"
        self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = "received"
        answered = self.cycle is not None and self.cycle.response_complete
        super().on_message_complete()
        if answered and not self.transport.is_closing():
            self._await_request()  # answered before its body was in (a 413, say)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._phase == "headers":
            # The next request has begun: its headers are due a deadline from this response.
            self._arm(self.header_timeout_s, "headers")
        elif self._phase == "received" and (self.cycle is None or self.cycle.response_complete):
            # Keep-alive with nothing pending. uvicorn's own keep-alive timer is cancelled by
            # every byte received, so it cannot stop a drip: the header deadline does.
            self._await_request()
        # "body": the next request's body deadline runs; "received" with a pipelined request
        # started above: it is the app's until it answers.

    # --- uvicorn's own answers

    def send_400_response(self, msg: str) -> None:
        """A request the parser rejected: 400 in the service's error shape, then close.
        (uvicorn calls this while handling the parser's exception, which names the fault.)"""
        exc = sys.exception()
        reason = str(exc) if isinstance(exc, httptools.HttpParserError) and str(exc) else ""
        message = f"invalid HTTP request: {reason}" if reason else "invalid HTTP request"
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            # never inside another response
            self.transport.write(_json_reply(400, message, self.server_state.default_headers))
        self.transport.close()


#: The answer beyond the in-flight bound (an ASGI app): 503 in the service's error shape.
_over_capacity = error_response(
    503,
    "server at REWARD_MAX_CONNECTIONS requests in flight; retry shortly",
    headers={"Retry-After": "1", "Connection": "close"},
)


def protocol_with_deadlines(
    header_timeout_s: float,
    body_timeout_s: float,
    max_in_flight: int | None = None,
    idle_timeout_s: float = DeadlineHttpProtocol.idle_timeout_s,
) -> type:
    """A :class:`DeadlineHttpProtocol` subclass with these limits (``uvicorn.run(http=…)``)."""
    return type(
        "ConfiguredDeadlineHttpProtocol",
        (DeadlineHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s,
         "idle_timeout_s": idle_timeout_s, "max_in_flight": max_in_flight},
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that enforce the limits above."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_with_deadlines(
            settings.header_timeout_s, settings.body_timeout_s, settings.max_connections,
            settings.idle_timeout_s,
        ),
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }

"""One fake HTTP server for every test that needs the other side of a socket.

Tests that exercise a client (of the reward service, of an OpenAI-compatible judge) talk
real HTTP to a server that answers as a test function says: the client's connection
pool, timeouts, retries and error mapping all run as in production, and only the far
end is scripted. :class:`FakeHTTPServer` serves on ``127.0.0.1`` (a free port chosen by
the kernel, or a given one) from a thread, hands each request to ``handle(request)`` and
writes back the :class:`Reply` it returns (or :data:`DROP` to close the connection
without an answer, like a peer that died mid-request). It records every request, counts
how many were being answered at once, and ``stop()`` closes the listening socket and cuts
open keep-alive connections (a server that went away); ``start()`` serves again on the
same port. Use it as a context manager or stop it from a fixture.

    def handle(request: Request) -> Reply:
        return Reply(200, {"echo": request.json()})

    with FakeHTTPServer(handle) as server:
        httpx.post(server.url + "/anything", json={"a": 1})
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """What to answer: ``body`` bytes are sent as they are, anything else as JSON."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


DROP = object()
"""Returned by a handler: close the connection without writing any response."""

Handler = Callable[[Request], Any]
"""``request -> Reply | DROP``."""


class FakeHTTPServer:
    """A real HTTP/1.1 server on loopback whose answers come from ``handle`` (see module).

    Attributes:
        requests: every request received, in arrival order.
        peak_in_flight: the most requests that were being handled at the same time.
        stopped: set while the server is stopped; a handler that waits should wait on it
            (``server.stopped.wait(seconds)``) so that stopping the server ends the wait.
    """

    def __init__(self, handle: Handler, port: int = 0) -> None:
        self.handle = handle
        self.requests: list[Request] = []
        self.peak_in_flight = 0
        self.stopped = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again) on ``port``; the first start picks a free port when it is 0."""
        if self._httpd is not None:
            return
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.stopped.clear()
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        """Stop listening and cut open connections: clients now see a dead server."""
        self.stopped.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeHTTPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: Request) -> Any:
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return self.handle(request)
        except Exception as exc:  # shown to the test as a 500, not a hang
            return Reply(500, {"error": f"fake server handler failed: {exc!r}"})
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                reply = server._answer(request)
                if reply is DROP:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = reply.encoded()
                headers = {"content-type": "application/json", **{
                    k.lower(): v for k, v in reply.headers.items()
                }}
                # The client may be gone (stop() cut the connection): nobody to answer.
                with contextlib.suppress(ConnectionError):
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        return _Handler

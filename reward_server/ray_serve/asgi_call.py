"""One buffered HTTP request through an ASGI app, in process (no socket, no proxy).

The ingress's ``handle_request`` uses it so that a trainer calling through a
``DeploymentHandle`` gets exactly what the HTTP route answers: the same middleware (limits,
request id, metrics), validation, errors and body, from the same app object, rather than a
second entry point into the scoring service that could drift from the routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Message

#: ``(status, headers, body)``: a whole response, as plain values that pickle cheaply.
Reply = tuple[int, list[tuple[str, str]], bytes]

log = logging.getLogger(__name__)


async def call_asgi(
    app: ASGIApp, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
) -> Reply:
    """Send one request to ``app`` and collect its whole response.

    Args:
        app: the ASGI app (its lifespan already started by whoever runs it).
        method: ``GET``, ``POST``, ...
        target: the path and query, e.g. ``/score`` or ``/metrics?x=1``.
        headers: request headers as sent (names in any case).
        body: the whole request body.

    Returns:
        The status, the response headers and the body.

    Raises:
        Whatever the app raised before it had sent a whole response. An exception raised
        after one (Starlette's ``ServerErrorMiddleware`` sends its 500, then re-raises for
        the server to log) is logged here, and the response returned, as uvicorn does.
    """
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("ray-handle", 0),
        "server": ("ray-serve", 0),
    }
    finished = asyncio.Event()
    sent_body = False
    status = 500
    out_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # nothing more to read: the "client" leaves once answered
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.extend(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    except Exception:
        if not finished.is_set():  # no whole response to give: the caller sees the error
            raise
        log.exception("%s %s raised after its response was sent", method.upper(), path)
    finally:
        finished.set()
    return status, out_headers, b"".join(chunks)

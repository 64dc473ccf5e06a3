"""Serve's HTTP proxy, made to answer a lost replica the way the contract answers an outage.

When the ingress replica serving a request dies (its node removed, its process killed),
Serve's proxy gets an error instead of a response and uvicorn, under it, answers a bare 500.
A client cannot tell that from a bug, and the clients do not retry a 500. With this
middleware the proxy answers 503 with ``Retry-After`` and the service's ``{"error": …}``
body instead, exactly when the request got *no* response at all, so clients that follow the
docs send it again (Serve has started a replacement replica meanwhile). A response the app
did start, a 500 included, passes through untouched.

Serve loads it from the ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` environment variable,
which must be set where the proxies start (``ray start``'s environment on every node)::

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=reward_server.ray_serve.proxy:middlewares
"""

from __future__ import annotations

import orjson
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Seconds a client whose request lost its replica is told to wait (Serve notices a dead
#: replica and routes around it within about a second; a replacement takes longer, but the
#: other replicas take the retry).
RETRY_AFTER_S = 2


class LostReplicaAs503:
    """ASGI middleware for the proxy: no response at all becomes 503 + ``Retry-After``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, receive, watch)
        if not started:
            body = orjson.dumps({"error": "the replica serving this request was lost; "
                                          "send it again (Ray Serve is replacing it)"})
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
            ]})
            await send({"type": "http.response.body", "body": body})


def middlewares() -> list[Middleware]:
    """What ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` calls in each proxy."""
    return [Middleware(LostReplicaAs503)]

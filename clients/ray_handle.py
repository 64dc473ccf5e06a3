"""Calling the reward service through a Ray Serve ``DeploymentHandle`` instead of HTTP.

A trainer whose workers run on the same Ray cluster as the service's Serve application
(verl's reward workers, OpenRLHF's actors) can skip the proxy and the socket: each request
goes to an ingress replica as one handle call (``RewardIngress.handle_request``), which runs
it through the service's own FastAPI app in process. The answer is the HTTP answer, byte for
byte, because it comes from the same routes.

``ServeHandleTransport`` is an httpx transport, the clients' test seam, so
``RewardClient(HANDLE_URL, transport=ServeHandleTransport(handle))`` keeps everything the
clients do over HTTP: payloads, chunking, concurrency, and the retries on 503 (honouring
``Retry-After``) and on connection errors. A call whose ingress replica died is a connection
error to the client (retried, and Serve routes the retry to a live replica); Serve's own
back-pressure (``max_queued_requests``) is a 503 with its ``Retry-After``, as the proxy answers;
any other error the replica raised is a 500, as uvicorn answers a route that raised.

Ray is imported only when a handle is made or used: the clients do not depend on it. The
handle must come from the same Ray version as the cluster (``pip install
'safety-reward-service[ray]'``).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx

__all__ = ["APP_NAME", "HANDLE_URL", "ServeHandleTransport", "app_handle"]

#: The application name in ``configs/ray-serve.yaml``.
APP_NAME = "reward"
#: The base URL a client is given with this transport (no request leaves the process by it).
HANDLE_URL = "http://ray-serve-handle"


def app_handle(app_name: str = APP_NAME) -> Any:
    """A ``DeploymentHandle`` to the ingress of the Serve application ``app_name``.

    Call it in a process connected to the cluster (a Ray worker or actor, or a driver after
    ``ray.init(address=...)``).
    """
    from ray import serve

    return serve.get_app_handle(app_name)


def _lost() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError

    return RayActorError, ActorUnavailableError, DeploymentUnavailableError


def _back_pressure(request: httpx.Request, exc: BaseException) -> httpx.Response:
    """Serve's queue limit as the proxy answers it: 503 with its ``Retry-After``."""
    retry = getattr(exc, "retry_after_s", None)
    headers = {"content-type": "application/json"}
    if retry is not None:
        headers["retry-after"] = str(max(0, math.ceil(retry)))
    return httpx.Response(503, headers=headers, json={"error": str(exc)}, request=request)


class ServeHandleTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport whose requests are ``handle_request`` calls on a ``DeploymentHandle``.

    Args:
        handle: a handle to the ``RewardIngress`` deployment (``app_handle()``), or a name
            of the Serve application to get one for, lazily, where it is first used (a
            handle made in a driver also works in the Ray workers it is pickled to).
    """

    def __init__(self, handle: Any = APP_NAME) -> None:
        self._handle = handle

    @property
    def handle(self) -> Any:
        if isinstance(self._handle, str):
            self._handle = app_handle(self._handle)
        return self._handle

    def _call(self, request: httpx.Request) -> Any:
        target = request.url.raw_path.decode("ascii")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "host"]
        return self.handle.handle_request.remote(request.method, target, headers, request.content)

    @staticmethod
    def _read_timeout(request: httpx.Request) -> float | None:
        return request.extensions.get("timeout", {}).get("read")

    @staticmethod
    def _response(request: httpx.Request, reply: tuple[int, list, bytes]) -> httpx.Response:
        status, headers, body = reply
        return httpx.Response(status, headers=headers, content=body, request=request)

    @staticmethod
    def _failed(request: httpx.Request, response: Any, exc: Exception,
                timeout: float | None) -> httpx.Response:
        """A call that raised, as httpx would see it: a timeout or a lost replica is raised
        as httpx's (both retried by the clients), Serve's back-pressure is its 503, and any
        other error of the replica a 500 (the clients' ``RewardServiceError``), as uvicorn
        answers a route that raised."""
        from ray.exceptions import RayTaskError
        from ray.serve.exceptions import BackPressureError

        if isinstance(exc, TimeoutError):
            response.cancel()
            raise httpx.ReadTimeout(f"no answer within {timeout} s", request=request) from exc
        if isinstance(exc, BackPressureError):
            return _back_pressure(request, exc)
        if isinstance(exc, _lost()):
            raise httpx.ConnectError(f"ingress replica lost: {exc}", request=request) from exc
        if isinstance(exc, RayTaskError):
            cause = type(exc.cause).__name__ if exc.cause is not None else "RayTaskError"
            return httpx.Response(500, json={"error": f"ingress replica raised {cause}"},
                                  request=request)
        raise exc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        timeout = self._read_timeout(request)
        response = self._call(request)
        try:
            reply = response.result(timeout_s=timeout)
        except Exception as exc:
            return self._failed(request, response, exc, timeout)
        return self._response(request, reply)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        timeout = self._read_timeout(request)
        response = self._call(request)
        try:
            reply = await asyncio.wait_for(_awaited(response), timeout)
        except Exception as exc:
            return self._failed(request, response, exc, timeout)
        return self._response(request, reply)


async def _awaited(response: Any) -> Any:
    return await response

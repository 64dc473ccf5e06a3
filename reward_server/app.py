"""The FastAPI application factory; all state is built in the lifespan, none at import."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reward_server import __version__
from reward_server.api.body import add_schemas
from reward_server.api.docs import install_docs
from reward_server.api.errors import error_response, install_error_handlers
from reward_server.api.routes import openrlhf, ops, score
from reward_server.cache import Cache, LRUCache, RedisCache
from reward_server.images import ImageLoader
from reward_server.judge.backends.base import JudgeBackend
from reward_server.judge.base import Judge
from reward_server.logs import configure_logging, request_id
from reward_server.metrics import Metrics
from reward_server.offload import return_large_blocks
from reward_server.profiles import load_profiles
from reward_server.protocol import OpenRLHFRequest, ScoreRequest
from reward_server.service import ScoringService
from reward_server.settings import Settings

log = logging.getLogger("reward_server.access")

_ROUTES = {"/score", "/get_reward", "/health", "/ready", "/profiles", "/metrics"}


class _Gate:
    """Pure ASGI middleware: request id, body-size limit, access log and request metrics.

    Written as raw ASGI (not ``BaseHTTPMiddleware``) because it sits on the hot path of every
    scoring request and must not copy bodies or spawn tasks.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        path = scope["path"]
        route = path if path in _ROUTES else "other"
        start = time.perf_counter()
        status_holder = [500]

        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            response = error_response(413, _too_large(self.max_body))
            response.headers["x-request-id"] = rid
            await response(scope, receive, send)
            self._record(route, 413, start)
            request_id.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            status_holder[0] = 413
            response = error_response(413, _too_large(self.max_body))
            await response(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away mid-body (or its body deadline passed): nobody is left to
            # answer, and it is not a server error. Counted as 499, as nginx does.
            status_holder[0] = 499
        finally:
            self._record(route, status_holder[0], start)
            request_id.reset(token)

    def _record(self, route: str, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request", extra={"route": route, "status": status,
                                  "duration_ms": round(elapsed * 1000, 2)}
            )


class _BodyTooLarge(Exception):
    pass


def _too_large(max_body: int) -> str:
    return f"body larger than REWARD_MAX_BODY_BYTES={max_body}"


def _build_cache(settings: Settings, metrics: Metrics) -> Cache:
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            settings.cache_ttl_s,
            on_error=lambda op: metrics.cache_errors.labels(op).inc(),
        )
    return LRUCache(settings.cache_size)


def _build_judge(
    settings: Settings, metrics: Metrics, backend: JudgeBackend | None
) -> Judge | None:
    if not settings.has_judge:
        return None
    from reward_server.judge.factory import build_judge  # heavy backends import lazily

    return build_judge(settings, metrics, backend)


def create_app(
    settings: Settings | None = None, *, judge_backend: JudgeBackend | None = None
) -> FastAPI:
    """Build the app. Profiles and settings are checked here, so bad config fails at start.

    Args:
        settings: the service's settings (``Settings()`` from the environment when omitted).
        judge_backend: where the judge's model runs, when not in this process or behind
            ``REWARD_JUDGE_BASE_URL``: the Ray Serve application passes the backend that
            calls its judge deployment (``reward_server.ray_serve``). Everything else
            (prompts, micro-batching, parsing, the judge's identity) is the same engine.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    return_large_blocks()  # large bodies are parsed in a worker thread (offload.py)
    profiles = load_profiles(settings.profiles_file)
    if settings.default_profile not in profiles:
        raise ValueError(
            f"REWARD_PROFILE={settings.default_profile!r} is not a profile; "
            f"expected one of {sorted(profiles)}"
        )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache = _build_cache(settings, metrics)
        judge = _build_judge(settings, metrics, judge_backend)
        service = ScoringService(profiles, settings.default_profile, cache, judge, metrics)
        app.state.service = service
        if judge is not None:
            await judge.start()  # returns at once; loading continues, /ready reports it
        try:
            yield
        finally:
            await service.drain()
            if judge is not None:
                await judge.aclose()
            await cache.aclose()

    app = FastAPI(
        title="Safety reward service",
        version=__version__,
        summary="SafeGRPO rule rewards and the SaFeR-VLM generative judge over HTTP, for GRPO.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.image_loader = ImageLoader(
        settings.max_image_bytes, settings.image_root, settings.max_image_path_chars
    )
    app.include_router(score.router)
    app.include_router(openrlhf.router)
    app.include_router(ops.router)
    add_schemas(app, [ScoreRequest, OpenRLHFRequest])
    install_docs(app)

    install_error_handlers(app)
    app.add_middleware(_Gate, max_body_bytes=settings.body_limit, metrics=metrics)
    return app

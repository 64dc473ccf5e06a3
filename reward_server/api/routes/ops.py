"""Operational routes: liveness, readiness, profiles, Prometheus metrics."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from reward_server.api.deps import ServiceDep

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: 200 while the process serves."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Not ready; the body says why"}})
async def ready(service: ServiceDep) -> Response:
    """200 when every scorer of the default profile can score now, 503 and the reason if not.

    ``status`` is ``degraded`` (still 200) while the cache backend cannot be reached: the
    service scores, uncached, so a load balancer keeps it, but an operator sees the cause.
    """
    state = await service.readiness()
    if not state["ready"]:
        state["status"] = "unavailable"
    elif not state["cache"].get("reachable", True):
        state["status"] = "degraded"
    else:
        state["status"] = "ready"
    return Response(
        orjson.dumps(state),
        status_code=200 if state["ready"] else 503,
        media_type="application/json",
    )


@router.get("/profiles")
async def profiles(service: ServiceDep) -> Response:
    """Each profile's effective configuration and ``rubric_version``."""
    body = {"default": service.default_profile, "profiles": service.profiles_view()}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

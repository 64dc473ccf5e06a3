"""POST /get_reward: OpenRLHF's remote reward protocol (``--remote_rm_url``).

Parse → check limits (before any query is split) → samples → ``service.score`` under the
default profile → ``OpenRLHFResponse``. The protocol itself is described in
``reward_server.protocol.openrlhf``.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from reward_server.api.body import body_schema, parse_body
from reward_server.api.deps import ApiKeyDep, ServiceDep, SettingsDep
from reward_server.api.limits import check_openrlhf_request
from reward_server.protocol import (
    ErrorResponse,
    OpenRLHFRequest,
    OpenRLHFResponse,
    openrlhf_reply,
)

router = APIRouter()

_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or bad API key"},
    413: {"model": ErrorResponse, "description": "Too many queries, or too long a query"},
    422: {"model": ErrorResponse, "description": "Malformed body; the message names the field"},
    503: {"model": ErrorResponse, "description": "A scorer the profile needs is unavailable"},
}


@router.post(
    "/get_reward",
    response_model=OpenRLHFResponse,
    responses=_ERRORS,
    tags=["scoring"],
    openapi_extra=body_schema(OpenRLHFRequest),
)
async def get_reward(
    request: Request, service: ServiceDep, settings: SettingsDep, _auth: ApiKeyDep
) -> Response:
    """OpenRLHF-compatible scoring under the server's default profile."""
    body = parse_body(OpenRLHFRequest, await request.body())
    check_openrlhf_request(body, settings)
    samples = body.to_samples(settings.max_response_chars)
    outcome = await service.score(None, samples)
    return Response(orjson.dumps(openrlhf_reply(outcome)), media_type="application/json")

"""POST /score: parse → check limits → samples → ``service.score`` → ``ScoreResponse``."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request, Response

from reward_server.api.body import body_schema, read_body
from reward_server.api.deps import ApiKeyDep, LoaderDep, ServiceDep, SettingsDep
from reward_server.api.limits import check_score_request
from reward_server.domain import Sample
from reward_server.images import ImageLoader
from reward_server.protocol import ErrorResponse, ScoreRequest, ScoreResponse

router = APIRouter()

_ERRORS = {
    400: {"model": ErrorResponse, "description": "Unknown profile"},
    401: {"model": ErrorResponse, "description": "Missing or bad API key"},
    413: {
        "model": ErrorResponse,
        "description": "Too many samples, too long a response, too many or too big images",
    },
    422: {"model": ErrorResponse, "description": "Malformed body; the message names the field"},
    503: {"model": ErrorResponse, "description": "A scorer the profile needs is unavailable"},
}


async def decode_samples(
    body: ScoreRequest, loader: ImageLoader, max_image_bytes: int, has_images: bool
) -> list[Sample]:
    """The request's samples; images are decoded in a worker thread, text stays inline.

    Decoding base64, reading and resolving file paths and hashing cost more than a few
    milliseconds for big requests, so they never run on the event loop (other requests and
    ``/health`` keep going meanwhile). A request without images (the rules hot path) is
    converted inline: a thread hop would cost more than the conversion.
    """
    if has_images:
        return await asyncio.to_thread(body.to_samples, loader, max_image_bytes)
    return body.to_samples(loader, max_image_bytes)


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses=_ERRORS,
    tags=["scoring"],
    openapi_extra=body_schema(ScoreRequest),
)
async def score(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    loader: LoaderDep,
    _auth: ApiKeyDep,
) -> Response:
    """Score samples under a reward profile; one result per sample, in request order.

    A sample that cannot be scored comes back ``invalid`` with ``reward: null`` and a
    reason; its neighbours are unaffected.
    """
    body = await read_body(ScoreRequest, await request.body(), settings.json_value_limit)
    has_images = check_score_request(body, settings)
    samples = await decode_samples(body, loader, settings.max_request_image_bytes, has_images)
    outcome = await service.score(body.profile, samples)
    return Response(orjson.dumps(ScoreResponse.of(outcome)), media_type="application/json")

"""POST /score."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from reward_server.api.body import body_schema, parse_body
from reward_server.api.deps import ApiKeyDep, LoaderDep, ServiceDep, SettingsDep
from reward_server.errors import PayloadTooLarge
from reward_server.protocol import ErrorResponse, ScoreRequest, ScoreResponse

router = APIRouter()

_ERRORS = {
    400: {"model": ErrorResponse, "description": "Unknown profile"},
    401: {"model": ErrorResponse, "description": "Missing or bad API key"},
    413: {
        "model": ErrorResponse,
        "description": "Too many samples, too long a response, too big an image",
    },
    422: {"model": ErrorResponse, "description": "Malformed body; the message names the field"},
    503: {"model": ErrorResponse, "description": "A scorer the profile needs is unavailable"},
}


def check_limits(body: ScoreRequest, max_samples: int, max_chars: int) -> None:
    if len(body.samples) > max_samples:
        raise PayloadTooLarge(
            f"samples: {len(body.samples)} samples, more than REWARD_MAX_SAMPLES={max_samples}"
        )
    for i, sample in enumerate(body.samples):
        if len(sample.response) > max_chars:
            raise PayloadTooLarge(
                f"samples[{i}].response: {len(sample.response)} characters, more than "
                f"REWARD_MAX_RESPONSE_CHARS={max_chars}"
            )


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
    body = parse_body(ScoreRequest, await request.body())
    check_limits(body, settings.max_samples, settings.max_response_chars)
    samples = [s.to_sample(loader, i) for i, s in enumerate(body.samples)]
    outcome = await service.score(body.profile, samples)
    payload = {
        "profile": outcome.profile,
        "rubric_version": outcome.rubric_version,
        "rewards": [r["reward"] for r in outcome.results],
        "results": outcome.results,
    }
    return Response(orjson.dumps(payload), media_type="application/json")

"""POST /get_reward: OpenRLHF's remote reward protocol (``--reward.remote_url``).

Parse → check limits (before any query is split) → samples → ``service.score`` under the
default profile → ``OpenRLHFResponse``. The protocol itself is described in
``reward_server.protocol.openrlhf``. Splitting is linear but reads every character (a
1 MiB query that needs the normalised matcher takes half a second), so a large request's
queries are split in a worker thread (``reward_server.offload``).

One thing here is OpenRLHF's alone: it ignores ``Retry-After``, tries five times a second
apart and then trains on a missing reward (0.11.2's ``SingleTurnAgentExecutor``), so a
judge that is down for a few seconds would cost samples. When the service raises
``ScorerUnavailable`` this route waits (the error's ``retry_after``, growing) and tries
again, for up to ``REWARD_GET_REWARD_JUDGE_RETRY_S`` seconds in all (under OpenRLHF's 180 s
client timeout), and only then answers 503 (``ScoringService.score_patiently``). A client
that disconnects ends the wait.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial

import orjson
from fastapi import APIRouter, Request, Response

from reward_server.api.body import body_schema, read_body
from reward_server.api.deps import ApiKeyDep, ServiceDep, SettingsDep
from reward_server.api.limits import check_openrlhf_request
from reward_server.metrics import Metrics
from reward_server.offload import run_sized
from reward_server.protocol import (
    ErrorResponse,
    OpenRLHFRequest,
    OpenRLHFResponse,
    openrlhf_reply,
)

log = logging.getLogger(__name__)

router = APIRouter()

_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or bad API key"},
    413: {"model": ErrorResponse, "description": "Too many queries, or too long a query"},
    422: {"model": ErrorResponse, "description": "Malformed body; the message names the field"},
    503: {
        "model": ErrorResponse,
        "description": "A scorer the profile needs stayed unavailable for "
        "REWARD_GET_REWARD_JUDGE_RETRY_S seconds",
    },
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
    """OpenRLHF-compatible scoring under the server's default profile.

    Unscorable samples get null, or ``REWARD_GET_REWARD_INVALID`` when set; ``extra_logs``
    has the same keys in every reply. A judge failure is retried inside the request for up
    to ``REWARD_GET_REWARD_JUDGE_RETRY_S`` seconds before the 503.
    """
    body = await read_body(OpenRLHFRequest, await request.body(), settings.json_value_limit)
    check_openrlhf_request(body, settings)
    chars = sum(map(len, body.query)) + sum(map(len, body.prompts or ()))
    samples, methods = await run_sized(chars, body.to_samples, settings.max_response_chars)
    _count_matches(methods, service.metrics)
    outcome = await service.score_patiently(
        None, samples, settings.get_reward_judge_retry_s, partial(_disconnected, request)
    )
    keys = service.profiles[outcome.profile].reward_keys(service.profiles)
    reply = openrlhf_reply(outcome, keys, settings.get_reward_invalid)
    return Response(orjson.dumps(reply), media_type="application/json")


def _count_matches(methods: Sequence[str | None], metrics: Metrics) -> None:
    """Count which rule found each response (``none``: no match); also logged at debug level.

    A rising ``header`` or ``none`` share means the trainer's prompts and decoded queries
    drifted apart (a new chat template, say) and is worth a look before rewards go null.
    """
    counts = Counter(method or "none" for method in methods)
    for method, n in counts.items():
        metrics.get_reward_matches.labels(method).inc(n)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("get_reward: responses found by %s", dict(sorted(counts.items())))


async def _disconnected(request: Request) -> None:
    """Return when the client disconnects (the body was read: the next ASGI message is the
    disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass

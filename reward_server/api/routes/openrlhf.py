"""POST /get_reward: OpenRLHF's remote reward protocol (``--remote_rm_url``).

OpenRLHF sends ``query`` (prompt + response text), ``prompts`` and ``labels``; the response
is the part of each query after its prompt, without trailing end-of-turn tokens
(``reward_formats.queries.split_query``, the rule the file-mode adapter uses too). An
unscorable sample gets ``null`` in ``rewards`` and ``scores`` (never a made-up number) and
its reason in ``errors``; ``extra_logs["valid"]`` is 1/0. OpenRLHF itself turns rewards into
a tensor without a null check, so send labels with every sample or use the file-mode adapter
``clients/adapters/openrlhf.py`` that maps null to a value you choose.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from reward_formats.labels import LabelError, parse_labels
from reward_formats.queries import split_query
from reward_server.api.body import body_schema, parse_body
from reward_server.api.deps import ApiKeyDep, ServiceDep, SettingsDep
from reward_server.domain import Labels, Sample
from reward_server.errors import PayloadTooLarge, Unprocessable
from reward_server.protocol import ErrorResponse, OpenRLHFRequest, OpenRLHFResponse

router = APIRouter()


def _sample_labels(raw: Any) -> tuple[Labels | None, str | None]:
    """The sample's labels, or why they are unusable (the sample is then ``invalid``).

    A label is a JSON object, a JSON string of one, or a bare ``safe``/``unsafe`` string
    (taken as ``combine_tag``), read by ``reward_formats.labels.parse_labels``.
    """
    try:
        tags = parse_labels(raw)
    except LabelError as exc:
        return None, str(exc)
    return (None if tags is None else Labels(**tags)), None


@router.post(
    "/get_reward",
    response_model=OpenRLHFResponse,
    responses={401: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
               422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    tags=["scoring"],
    openapi_extra=body_schema(OpenRLHFRequest),
)
async def get_reward(
    request: Request, service: ServiceDep, settings: SettingsDep, _auth: ApiKeyDep
) -> Response:
    """OpenRLHF-compatible scoring under the server's default profile."""
    body = parse_body(OpenRLHFRequest, await request.body())
    n = len(body.query)
    if n > settings.max_samples:
        raise PayloadTooLarge(
            f"query: {n} items, more than REWARD_MAX_SAMPLES={settings.max_samples}"
        )
    for name, column in (("prompts", body.prompts), ("labels", body.labels)):
        if column is not None and len(column) != n:
            raise Unprocessable(f"{name}: {len(column)} items but query has {n}")
    samples: list[Sample] = []
    for i, query in enumerate(body.query):
        prompt = body.prompts[i] if body.prompts else None
        labels, label_error = _sample_labels(body.labels[i] if body.labels else None)
        split = split_query(query, prompt)
        error = label_error and f"labels[{i}]: {label_error}"
        if split is None:
            error = f"query[{i}] does not contain prompts[{i}]"
            split = ("", query)
        if len(split[1]) > settings.max_response_chars:
            raise PayloadTooLarge(
                f"query[{i}]: response longer than REWARD_MAX_RESPONSE_CHARS="
                f"{settings.max_response_chars}"
            )
        samples.append(
            Sample(prompt=split[0], response=split[1], id=i, labels=labels, error=error)
        )
    outcome = await service.score(None, samples)
    rewards = [r["reward"] for r in outcome.results]
    names = sorted({k for r in outcome.results for k in r["components"]})
    extra: dict[str, list[Any]] = {
        name: [r["components"].get(name) for r in outcome.results] for name in names
    }
    extra["valid"] = [1.0 if r["status"] == "ok" else 0.0 for r in outcome.results]
    payload = {"rewards": rewards, "scores": rewards, "extra_logs": extra}
    if any(r["error"] for r in outcome.results):
        payload["errors"] = [r["error"] for r in outcome.results]
    return Response(orjson.dumps(payload), media_type="application/json")

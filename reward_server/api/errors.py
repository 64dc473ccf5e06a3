"""The API boundary for errors: which HTTP answer each service error becomes, in one place.

Every error answer has the body ``{"error": message}`` (plus ``detail`` for a malformed
body), the shape ``protocol.ErrorResponse`` declares.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from reward_server.errors import (
    BadRequest,
    PayloadTooLarge,
    RewardError,
    ScorerUnavailable,
    Unauthorized,
    Unprocessable,
)

_STATUS: tuple[tuple[type[RewardError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (PayloadTooLarge, 413),
    (Unprocessable, 422),
    (ScorerUnavailable, 503),
)


def to_http(exc: RewardError) -> tuple[int, dict[str, str], str]:
    """``(status, headers, message)`` of the answer to ``exc``.

    >>> to_http(ScorerUnavailable("judge loading", retry_after=7))
    (503, {'Retry-After': '7'}, 'judge loading')
    >>> to_http(Unauthorized("missing API key"))
    (401, {'WWW-Authenticate': 'Bearer'}, 'missing API key')
    """
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, ScorerUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return status, headers, exc.message


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """An ``ErrorResponse`` body with ``status``."""
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def field_path(loc: tuple[Any, ...]) -> str:
    """``("body", "samples", 0, "response")`` → ``samples[0].response``.

    >>> field_path(("body", "samples", 0, "response"))
    'samples[0].response'
    """
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Answer service errors through ``to_http`` and malformed bodies with 422 naming fields."""

    @app.exception_handler(RewardError)
    async def _reward_error(request: Request, exc: RewardError) -> Response:
        status, headers, message = to_http(exc)
        return error_response(status, message, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        problems = [f"{field_path(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}"
                    for e in errors]
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors[:50]
        ]
        return error_response(422, shown or "invalid request body", detail)

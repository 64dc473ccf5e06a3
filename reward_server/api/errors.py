"""The API boundary for errors: which HTTP answer each service error becomes, in one place.

Every error answer has the body ``{"error": message}`` (plus ``detail`` for a malformed
body), the shape ``protocol.ErrorResponse`` declares: the service's own errors, a malformed
body, the routing answers Starlette raises (404 for an unknown path, 405 with ``Allow``
for a wrong method) and an unexpected exception (500; the traceback goes to the log).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

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


def http_message(method: str, path: str, exc: HTTPException) -> str:
    """The message of a routing error: what was asked, and where to look instead.

    >>> http_message("GET", "/nope", HTTPException(404))
    'not found: GET /nope (the routes are listed at /docs)'
    >>> http_message("GET", "/score", HTTPException(405, headers={"Allow": "POST"}))
    'method GET not allowed on /score; allowed: POST'
    """
    if exc.status_code == 404:
        return f"not found: {method} {path} (the routes are listed at /docs)"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method {method} not allowed on {path}; allowed: {allowed}"
    return exc.detail if isinstance(exc.detail, str) else str(exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with ``ErrorResponse``: service errors through ``to_http``,
    malformed bodies with 422 naming fields, routing errors, unexpected exceptions."""

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

    @app.exception_handler(HTTPException)
    async def _routing(request: Request, exc: HTTPException) -> Response:
        message = http_message(request.method, request.url.path, exc)
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs the traceback after this answer is sent; the client gets no detail.
        return error_response(500, "internal server error; the server log has the details")

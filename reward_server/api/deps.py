"""FastAPI dependencies: the service and settings from app state, and bearer-key auth.

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool,
four thread hops per request that cost more than scoring a small batch.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from reward_server.errors import Unauthorized
from reward_server.images import ImageLoader
from reward_server.service import ScoringService
from reward_server.settings import Settings


async def get_service(request: Request) -> ScoringService:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_loader(request: Request) -> ImageLoader:
    return request.app.state.image_loader


_BEARER = b"bearer "
_USAGE = "send exactly 'Authorization: Bearer <REWARD_API_KEY>'"


async def require_api_key(request: Request) -> None:
    """When ``REWARD_API_KEY`` is set, demand one ``Authorization: Bearer <key>`` header.

    Strict on purpose: the scheme (any case), one space, the key, nothing around it (no
    second space, no trailing tab or no-break space; ``reward_server.serving`` keeps the
    trailing whitespace uvicorn would drop), and exactly one such header, since proxies and
    frameworks disagree on which of two wins. The key is compared in constant time.
    """
    expected: str | None = request.app.state.settings.api_key
    if not expected:
        return
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise Unauthorized(f"{len(values)} Authorization headers; {_USAGE}")
    raw = values[0].encode("latin-1") if values else b""  # the bytes as sent
    if raw[: len(_BEARER)].lower() != _BEARER or len(raw) == len(_BEARER):
        raise Unauthorized(f"missing API key: {_USAGE}")
    token = raw[len(_BEARER):]
    text = token.decode("utf-8", "replace")
    if text != text.strip():
        raise Unauthorized(f"malformed Authorization header (whitespace around the API key); "
                           f"{_USAGE}")
    if not hmac.compare_digest(token, expected.encode("utf-8")):
        raise Unauthorized("invalid API key")


ServiceDep = Annotated[ScoringService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LoaderDep = Annotated[ImageLoader, Depends(get_loader)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]

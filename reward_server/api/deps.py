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


async def require_api_key(request: Request) -> None:
    """When ``REWARD_API_KEY`` is set, demand ``Authorization: Bearer <key>`` (constant time)."""
    expected: str | None = request.app.state.settings.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <REWARD_API_KEY>'")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("invalid API key")


ServiceDep = Annotated[ScoringService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LoaderDep = Annotated[ImageLoader, Depends(get_loader)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]

"""Reward service for safety alignment of multimodal reasoning models with GRPO.

``create_app`` and ``Settings`` are imported on first use, so that importing a light
submodule (``reward_server.images`` from the clients, say) does not pull in FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "create_app"]

if TYPE_CHECKING:
    from reward_server.app import create_app
    from reward_server.settings import Settings


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from reward_server.app import create_app

        return create_app
    if name == "Settings":
        from reward_server.settings import Settings

        return Settings
    raise AttributeError(f"module 'reward_server' has no attribute {name!r}")

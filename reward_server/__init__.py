"""Reward service for safety alignment of multimodal reasoning models with GRPO."""

__version__ = "0.1.0"

from reward_server.app import create_app
from reward_server.settings import Settings

__all__ = ["Settings", "__version__", "create_app"]

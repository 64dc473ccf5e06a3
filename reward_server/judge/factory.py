"""Build the configured judge from settings (``reward_server.app`` calls ``build_judge``).

Only the chosen backend's module is imported, so a deployment with
``REWARD_JUDGE_BACKEND=openai`` never needs torch, and one with ``transformers`` never
needs vLLM.
"""

from __future__ import annotations

import importlib

from reward_server.judge.backends import BACKENDS
from reward_server.judge.backends.base import JudgeBackend
from reward_server.judge.engine import JudgeEngine
from reward_server.metrics import Metrics
from reward_server.settings import Settings


def build_backend(settings: Settings) -> JudgeBackend:
    """The backend named by ``REWARD_JUDGE_BACKEND`` (not loaded yet).

    Raises:
        ValueError: the name is not a judge backend (lists the valid ones).
    """
    target = BACKENDS.get(settings.judge_backend)
    if target is None:
        raise ValueError(
            f"REWARD_JUDGE_BACKEND={settings.judge_backend!r} has no judge; "
            f"expected one of {sorted(BACKENDS)}"
        )
    module_name, class_name = target.split(":")
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    return backend_cls(settings)


def build_judge(settings: Settings, metrics: Metrics | None = None) -> JudgeEngine:
    """The judge the app serves: backend + prompt + mode + micro-batching.

    Args:
        settings: the service settings (``judge_*``).
        metrics: the app's metrics (judge batch sizes, queue, latency, failures).

    Returns:
        A ``JudgeEngine``; call ``await judge.start()`` to begin loading.
    """
    return JudgeEngine(build_backend(settings), settings, metrics)

"""Build the configured judge from settings (``reward_server.app`` calls ``build_judge``).

The only judge module that reads ``Settings``: it copies the ``REWARD_JUDGE_*`` values
into a ``JudgeConfig`` and hands that to the backend and the engine. Only the chosen
backend's module is imported, so a deployment with ``REWARD_JUDGE_BACKEND=openai`` never
needs torch, and one with ``transformers`` never needs vLLM.
"""

from __future__ import annotations

import importlib
from dataclasses import fields

from reward_server.judge.backends import BACKENDS
from reward_server.judge.backends.base import JudgeBackend
from reward_server.judge.config import JudgeConfig
from reward_server.judge.engine import JudgeEngine
from reward_server.metrics import Metrics
from reward_server.settings import Settings


def judge_config(settings: Settings) -> JudgeConfig:
    """The judge's part of ``settings`` (``Settings`` has checked the combinations).

    Raises:
        ValueError: no judge is configured (``REWARD_JUDGE_BACKEND=none``).
    """
    if not settings.has_judge or settings.judge_model is None:
        raise ValueError("REWARD_JUDGE_BACKEND=none: no judge to configure")
    # Every field is the setting of the same name with ``judge_`` before it.
    values = {f.name: getattr(settings, f"judge_{f.name}") for f in fields(JudgeConfig)}
    return JudgeConfig(**values)


def build_backend(config: JudgeConfig) -> JudgeBackend:
    """The backend named by ``config.backend`` (``REWARD_JUDGE_BACKEND``), not loaded yet.

    Raises:
        ValueError: the name is not a judge backend (lists the valid ones).
    """
    target = BACKENDS.get(config.backend)
    if target is None:
        raise ValueError(
            f"REWARD_JUDGE_BACKEND={config.backend!r} has no judge; "
            f"expected one of {sorted(BACKENDS)}"
        )
    module_name, class_name = target.split(":")
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    return backend_cls(config)


def build_judge(
    settings: Settings, metrics: Metrics | None = None, backend: JudgeBackend | None = None
) -> JudgeEngine:
    """The judge the app serves: backend + prompt + mode + micro-batching.

    Args:
        settings: the service settings (``judge_*``).
        metrics: the app's metrics (judge batch sizes, queue, latency, failures).
        backend: runs the model instead of the one ``REWARD_JUDGE_BACKEND`` names (the Ray
            Serve ingress passes one that calls its judge deployment); ``None``: that one.

    Returns:
        A ``JudgeEngine``; call ``await judge.start()`` to begin loading.
    """
    config = judge_config(settings)
    return JudgeEngine(backend or build_backend(config), config, metrics)

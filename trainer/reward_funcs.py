"""Reward functions beside the service's, and what happens when the service cannot score.

TRL 1.16 treats a completion as unscorable only when *every* reward function returned
``None`` for it: then the row is left out of the group baseline and its advantage is 0.
With the service's function and another one (a length penalty, a format bonus), TRL sums
the others with ``nansum``, so a completion the service could not score (no labels, an
unusable judge answer) gets a reward, and an advantage, from the other functions alone.
That trains the policy on samples nobody judged for safety.

With ``unscored_drops_row`` (on by default) this trainer marks the whole row unscorable
whenever the service's reward is ``None``, whatever the other functions return, so TRL
gives it zero advantage exactly as it does with the service's function alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

RewardFunc = Callable[..., list[float | None]]


def load_reward_func(spec: str) -> RewardFunc:
    """Import a reward function named ``package.module:function`` (or ``package.module.function``).

    Raises:
        SystemExit: the module or the function does not exist, or it is not callable; the
            message names the spec.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise SystemExit(f"extra reward function {spec!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(
            f"extra reward function {spec!r}: cannot import {module_name} ({exc})"
        ) from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise SystemExit(f"extra reward function {spec!r}: {module_name} has no function {attr}")
    return func


def load_reward_funcs(specs: Sequence[str]) -> list[RewardFunc]:
    """Every function in ``specs``, in order."""
    return [load_reward_func(spec) for spec in specs]


def gate_on_service(trainer_cls: type, service_index: int = 0) -> type:
    """``trainer_cls`` with rows the service could not score made unscorable for GRPO.

    Args:
        trainer_cls: a ``GRPOTrainer`` subclass.
        service_index: position of the service's function in ``reward_funcs``.

    The hook is TRL's ``_calculate_rewards`` (one row per completion, one column per reward
    function, ``NaN`` where a function returned ``None``); a row whose service column is
    ``NaN`` becomes all ``NaN``, which TRL's own unscorable rule then handles.
    """

    class ServiceGatedTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def _calculate_rewards(self, *args: Any, **kwargs: Any):
            import torch

            rewards = super()._calculate_rewards(*args, **kwargs)
            unscored = torch.isnan(rewards[:, service_index])
            rewards[unscored] = torch.nan
            return rewards

    ServiceGatedTrainer.__name__ = f"ServiceGated{trainer_cls.__name__}"
    ServiceGatedTrainer.__qualname__ = ServiceGatedTrainer.__name__
    return ServiceGatedTrainer

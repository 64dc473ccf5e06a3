"""The reward service as a verl ``custom_reward_function``.

Per sample (``reward.reward_manager.name=naive``, the default)::

    reward.custom_reward_function.path=pkg://clients.adapters.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.invalid_score=0.0

Batched, one HTTP request per training batch (``reward.reward_manager.name=batch``)::

    reward.custom_reward_function.name=compute_score_batch

(older verl: the same keys under ``custom_reward_function.*`` and ``reward_model.reward_manager``).
``path=pkg://clients.adapters.verl`` imports the installed module; a file path works too
(``python -c "import clients.adapters.verl as m; print(m.__file__)"``).

Data: ``reward_model.ground_truth`` holds the labels, as a dict
``{"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}``, a JSON string of one,
or a bare ``"safe"``/``"unsafe"`` (the combined tag). ``extra_info`` may carry ``prompt`` (text
or chat messages) and ``images`` (paths, bytes, PIL images, data URLs): copy them there in the
preprocessing script if the judge should see them. ``data_source`` is not used.

Settings come from keyword arguments (``reward_kwargs``) or the environment:
``url`` / ``REWARD_SERVICE_URL`` (default ``http://127.0.0.1:8000``), ``profile`` /
``REWARD_SERVICE_PROFILE``, ``api_key`` / ``REWARD_SERVICE_API_KEY``, ``invalid_score`` /
``REWARD_SERVICE_INVALID_SCORE``, ``components`` / ``REWARD_SERVICE_COMPONENTS`` (comma list),
``timeout`` / ``REWARD_SERVICE_TIMEOUT``.

What it returns, and why: verl 0.9 writes the score straight into a float tensor
(``rm_scores.new_tensor(scores)`` / ``reward_tensor[i, last] = reward``) and the GRPO
advantage uses plain ``torch.mean``/``torch.std`` per group, so ``None`` raises and NaN would
poison the whole group. verl has no way to drop a sample, so the service's ``null`` must become
a number, and that number is the user's choice: ``invalid_score``. Without one, an invalid
sample raises (naming the reason) instead of being scored silently. The return value is a
dict, which verl accepts: ``"score"`` is the reward, the other keys go to
``reward_extra_info`` (logged, dumped with generations). verl builds those columns from the
first sample's keys, so every sample must have the same keys: ``valid`` (1.0/0.0) always, and
the components named in ``components`` (NaN where the sample has none).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clients._base import DEFAULT_URL
from clients.errors import InvalidSampleError, RewardClientError
from clients.models import Result
from clients.samples import normalise_labels, normalise_sample
from clients.sync import RewardClient

__all__ = ["compute_score", "compute_score_batch"]

_CLIENTS: dict[tuple, RewardClient] = {}
_LOCK = threading.Lock()


def _setting(kwargs: Mapping[str, Any], key: str, env: str, default: Any = None) -> Any:
    value = kwargs.get(key)
    if value is None:
        value = os.environ.get(env) or default
    return value


def _config(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    invalid = _setting(kwargs, "invalid_score", "REWARD_SERVICE_INVALID_SCORE")
    components = _setting(kwargs, "components", "REWARD_SERVICE_COMPONENTS", ())
    if isinstance(components, str):
        components = [c.strip() for c in components.split(",") if c.strip()]
    return {
        "url": _setting(kwargs, "url", "REWARD_SERVICE_URL", DEFAULT_URL),
        "profile": _setting(kwargs, "profile", "REWARD_SERVICE_PROFILE"),
        "api_key": _setting(kwargs, "api_key", "REWARD_SERVICE_API_KEY"),
        "timeout": float(_setting(kwargs, "timeout", "REWARD_SERVICE_TIMEOUT", 120.0)),
        "invalid_score": None if invalid is None else float(invalid),
        "components": tuple(components),
    }


def _client(cfg: Mapping[str, Any]) -> RewardClient:
    """One pooled client per process and configuration (verl calls from executor threads;
    ``httpx.Client`` is thread-safe; the pid keeps forked workers off a parent's sockets)."""
    key = (os.getpid(), cfg["url"], cfg["api_key"], cfg["timeout"])
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            # verl's reward loop calls from many executor threads at once: a pool to match
            client = _CLIENTS[key] = RewardClient(
                cfg["url"], api_key=cfg["api_key"], timeout=cfg["timeout"], max_concurrency=16
            )
        return client


def _sample(solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> dict:
    extra = extra_info or {}
    prompt = extra.get("prompt", "")
    if hasattr(prompt, "tolist"):  # numpy object arrays from parquet
        prompt = prompt.tolist()
    raw: dict[str, Any] = {"prompt": prompt, "response": solution_str}
    if hasattr(ground_truth, "tolist") and not isinstance(ground_truth, Mapping):
        ground_truth = ground_truth.tolist()
    labels = normalise_labels(ground_truth)
    if labels:
        raw["labels"] = labels
    if extra.get("images") is not None:
        raw["images"] = extra["images"]
    return normalise_sample(raw)


def _to_verl(result: Result, cfg: Mapping[str, Any]) -> dict[str, float]:
    if result.ok:
        score = float(result.reward)  # type: ignore[arg-type]
    elif cfg["invalid_score"] is None:
        raise RewardClientError(
            f"the reward service could not score a sample ({result.error}); verl cannot drop a "
            "sample, so choose the score it gets: reward_kwargs.invalid_score=<float> or "
            "REWARD_SERVICE_INVALID_SCORE"
        )
    else:
        score = cfg["invalid_score"]
    out = {"score": score, "valid": 1.0 if result.ok else 0.0}
    for name in cfg["components"]:
        out[name] = float(result.components.get(name, math.nan))
    return out


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """Score a batch (verl's ``BatchRewardManager``); one dict per sample, see module doc.

    Args:
        data_sources: unused (one per sample).
        solution_strs: the decoded responses.
        ground_truths: labels per sample (dict, JSON string, ``"safe"``/``"unsafe"``, or None).
        extra_infos: per-sample dicts that may carry ``prompt`` and ``images``.
        **kwargs: ``url``, ``profile``, ``api_key``, ``invalid_score``, ``components``,
            ``timeout``; anything else verl passes is ignored.

    Returns:
        ``[{"score": float, "valid": 1.0|0.0, <component>: float, ...}, ...]``.
    """
    # Through the importable module, so that a copy loaded from a file path (verl's
    # ``custom_reward_function.path=/…/verl.py``) pickles by value without dragging the
    # client cache and its lock along (Ray ships reward functions to workers).
    from clients.adapters import verl as impl

    return impl._score_batch(solution_strs, ground_truths, extra_infos, kwargs)


def _score_batch(
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None,
    kwargs: Mapping[str, Any],
) -> list[dict[str, float]]:
    cfg = _config(kwargs)
    n = len(solution_strs)
    infos = list(extra_infos) if extra_infos is not None else [None] * n
    samples: list[dict | None] = []
    results: list[Result | None] = []
    for i in range(n):
        try:
            samples.append(_sample(solution_strs[i], ground_truths[i], infos[i]))
            results.append(None)
        except InvalidSampleError as exc:
            samples.append(None)
            results.append(Result.invalid(None, f"client: {exc}"))
    scored = iter(_client(cfg).score([s for s in samples if s is not None], cfg["profile"]))
    final = [r if r is not None else next(scored) for r in results]
    return [_to_verl(r, cfg) for r in final]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one sample (verl's ``NaiveRewardManager`` and reward loop); see module doc.

    >>> compute_score("safetag", "<answer>ok</answer>", {"combine_tag": "safe"},
    ...               url="http://127.0.0.1:8000", invalid_score=0.0)  # doctest: +SKIP
    {'score': 0.0, 'valid': 1.0}
    """
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info],
                               **kwargs)[0]

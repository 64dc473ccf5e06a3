"""The reward service as a verl custom reward function (verl 0.9's reward loop).

verl 0.7.1 and later (0.9.1 is what the tests run) compute rewards in the *reward loop*:
``RewardLoopManager`` starts ``reward.num_workers`` Ray actors, and each one's reward
manager calls ``compute_score`` once per sample. The overrides, with ``naive`` (the default
manager) or ``rate_limited`` (the same, with a cap on calls in flight per worker)::

    export REWARD_SERVICE_URL=http://127.0.0.1:8000 REWARD_SERVICE_PROFILE=safegrpo_plus
    python -m verl.trainer.main_ppo ... \\
      reward.custom_reward_function.path=pkg://clients.adapters.verl \\
      reward.custom_reward_function.name=compute_score \\
      +reward.custom_reward_function.reward_kwargs.invalid_score=0.0
    # optional: reward.reward_manager.name=rate_limited +reward.max_concurrent=64

``compute_score`` is a coroutine function. verl sees that (``inspect.iscoroutinefunction``)
and awaits it on the worker's event loop, one task per sample, all of a worker's samples at
once; each task sends one ``/score`` request and the service micro-batches the concurrent
ones. A file path works as well as ``pkg://`` (``path=/…/clients/adapters/verl.py``). The
top-level ``custom_reward_function.*`` keys of older verl are ignored by 0.9.1's
``main_ppo`` (it reads only ``reward.custom_reward_function.*``).

What verl passes, and what is read from it:

- ``solution_str``: the response, decoded with ``skip_special_tokens=True``.
- ``ground_truth`` (the dataset's ``reward_model.ground_truth``): the labels, as a dict
  ``{"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}``, a JSON string
  of one, or a bare ``"safe"``/``"unsafe"`` (the combined tag); any case. When it is empty,
  ``extra_info["labels"]`` is read instead. A bad value or a misspelt ``*_tag`` key makes
  only that sample unscorable; other keys are ignored.
- ``extra_info`` (the dataset's ``extra_info`` column): ``prompt`` (text or chat messages)
  and ``images`` (a list of ``datasets`` image dicts ``{"bytes": …, "path": …}`` as a
  parquet file holds them, bytes, local paths, data URLs or PIL images). verl gives a
  reward function no other access to the prompt or the images, so copy them into
  ``extra_info`` in the preprocessing script if the judge should see them. ``data_source``
  is not used.

Settings come from keyword arguments (``+reward.custom_reward_function.reward_kwargs.<k>``)
or the environment: ``url`` / ``REWARD_SERVICE_URL`` (default ``http://127.0.0.1:8000``),
``profile`` / ``REWARD_SERVICE_PROFILE``, ``api_key`` / ``REWARD_SERVICE_API_KEY``,
``invalid_score`` / ``REWARD_SERVICE_INVALID_SCORE``, ``components`` /
``REWARD_SERVICE_COMPONENTS`` (a list, or a comma-separated string), ``timeout`` /
``REWARD_SERVICE_TIMEOUT`` (seconds per attempt, 120), ``concurrency`` /
``REWARD_SERVICE_CONCURRENCY`` (connections per reward worker, 64).

On a Ray cluster that runs the service as a Serve application (docs/ray.md), the reward
workers can call it through a ``DeploymentHandle`` instead of HTTP: ``ray_app`` /
``REWARD_SERVICE_RAY_APP`` names the application (``reward`` in ``configs/ray-serve.yaml``),
and ``url`` is then unused. The same requests go to the same app (``clients.ray_handle``),
so the scores are the HTTP path's. ``handle`` (Python callers only) passes a handle itself.
The workers must run the cluster's Ray version.

Unscorable samples, and why: verl 0.9.1 cannot drop a sample. A ``None`` score crashes it
(``rm_scores.new_tensor(scores)`` in ``RewardLoopManager.compute_rm_score``; in the
streaming agent-loop path one ``None`` leaves the batch without ``rm_scores``), and a NaN
score poisons the GRPO group's mean and std. So an unscorable sample gets a number the user
chooses, ``invalid_score``; without one, it raises, naming the reason (under ``naive`` the
training step fails; ``rate_limited`` catches it, scores 0.0 and adds other extra-info
keys, which verl's batch assembly then rejects unless every sample failed).

The return value is a dict: ``"score"`` is the reward, and verl logs every key as
``reward_extra_info`` (validation metrics, dumped generations). verl takes the columns from
the first sample's keys, so every sample has the same keys: ``score``, ``valid`` (1.0 or
0.0; its mean is the share of samples the service scored) and each name in ``components``.
A component the sample does not have (every component of an unscorable sample) is ``None``:
verl's validation metrics (``process_validation_metrics``) leave ``None`` out of their means,
where a NaN would make them NaN and a fill value would bias them.

Legacy: ``compute_score_batch`` is for verl 0.4.0 to 0.7.0, whose ``BatchRewardManager``
(``reward_model.reward_manager=batch``; in 0.7.0 also ``reward_model.use_reward_loop=False``;
``custom_reward_function.path/name`` at the top level) calls one function with the whole
batch, synchronously. verl 0.7.1 and later register no ``batch`` manager in the reward loop
(``Unknown reward manager: batch``), and their ``naive`` manager awaits ``compute_score``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from clients._base import DEFAULT_URL
from clients.aio import AsyncRewardClient
from clients.errors import InvalidSampleError, RewardClientError
from clients.models import Result
from clients.samples import normalise_sample
from clients.sync import RewardClient

__all__ = ["compute_score", "compute_score_batch"]

_LOCK = threading.Lock()
_CLIENTS: dict[tuple, RewardClient] = {}
# One async client per event loop (an httpx.AsyncClient belongs to the loop it first used).
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, AsyncRewardClient]]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()


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
        "concurrency": int(_setting(kwargs, "concurrency", "REWARD_SERVICE_CONCURRENCY", 64)),
        "invalid_score": None if invalid is None else float(invalid),
        "components": tuple(str(c) for c in components),
        "ray_app": _setting(kwargs, "ray_app", "REWARD_SERVICE_RAY_APP"),
        "handle": kwargs.get("handle"),
    }


def _client_key(cfg: Mapping[str, Any]) -> tuple:
    return (cfg["url"], cfg["api_key"], cfg["timeout"], cfg["concurrency"], cfg["ray_app"],
            None if cfg["handle"] is None else id(cfg["handle"]))


def _route(cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and client options: HTTP to ``url``, or a handle to the Serve application."""
    target = cfg["handle"] if cfg["handle"] is not None else cfg["ray_app"]
    if target is None:
        return cfg["url"], {}
    from clients.ray_handle import HANDLE_URL, ServeHandleTransport

    return HANDLE_URL, {"transport": ServeHandleTransport(target)}


def _client(cfg: Mapping[str, Any]) -> RewardClient:
    """One pooled blocking client per process and configuration (the legacy batch path; the
    pid keeps forked workers off a parent's sockets)."""
    key = (os.getpid(), *_client_key(cfg))
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            url, route = _route(cfg)
            client = _CLIENTS[key] = RewardClient(
                url, api_key=cfg["api_key"], timeout=cfg["timeout"], max_concurrency=16, **route
            )
        return client


def _async_client(cfg: Mapping[str, Any]) -> AsyncRewardClient:
    """The running loop's client for this configuration: every sample a reward worker
    awaits shares its connection pool (``concurrency`` connections)."""
    loop = asyncio.get_running_loop()
    key = _client_key(cfg)
    with _LOCK:
        per_loop = _ASYNC_CLIENTS.setdefault(loop, {})
        client = per_loop.get(key)
        if client is None:
            url, route = _route(cfg)
            client = per_loop[key] = AsyncRewardClient(
                url, api_key=cfg["api_key"], timeout=cfg["timeout"],
                max_concurrency=cfg["concurrency"], **route,
            )
        return client


def _plain(value: Any) -> Any:
    """numpy arrays (how pandas hands over parquet lists) as lists."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, Mapping) else value


def _is_empty(labels: Any) -> bool:
    return labels is None or (isinstance(labels, str | Mapping | list) and not labels)


def _sample(solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> dict:
    """The contract sample for one verl call (see the module doc for what is read where).

    Raises:
        InvalidSampleError: the sample cannot be sent (its ``SampleDataError`` kind: labels
            or images that break the contract).
    """
    extra = extra_info or {}
    labels = _plain(ground_truth)
    if _is_empty(labels):
        labels = _plain(extra.get("labels"))
    raw: dict[str, Any] = {"prompt": _plain(extra.get("prompt")) or "", "response": solution_str}
    if not _is_empty(labels):
        raw["labels"] = labels
    images = _plain(extra.get("images"))
    if images is not None:
        raw["images"] = images
    return normalise_sample(raw)


def _to_verl(result: Result, cfg: Mapping[str, Any]) -> dict[str, float | None]:
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
    out: dict[str, float | None] = {"score": score, "valid": 1.0 if result.ok else 0.0}
    for name in cfg["components"]:
        value = result.components.get(name) if result.ok else None
        out[name] = None if value is None else float(value)
    return out


async def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float | None]:
    """Score one sample (verl 0.7.1+'s reward loop, ``naive`` or ``rate_limited``).

    Args:
        data_source: unused.
        solution_str: the decoded response.
        ground_truth: the labels (dict, JSON string, ``"safe"``/``"unsafe"``, or empty).
        extra_info: may carry ``prompt``, ``images`` and ``labels``.
        **kwargs: ``url``, ``profile``, ``api_key``, ``invalid_score``, ``components``,
            ``timeout``, ``concurrency``, ``ray_app``, ``handle``; anything else verl
            passes is ignored.

    Returns:
        ``{"score": float, "valid": 1.0|0.0, <component>: float|None, ...}``.

    Raises:
        RewardClientError: the service cannot be reached or refused the request, or the
            sample is unscorable and no ``invalid_score`` was chosen.

    >>> await compute_score("safetag", "<answer>ok</answer>", {"combine_tag": "safe"},
    ...                     url="http://127.0.0.1:8000", invalid_score=0.0)  # doctest: +SKIP
    {'score': 0.0, 'valid': 1.0}
    """
    # Through the importable module, so that a copy loaded from a file path (verl's
    # ``custom_reward_function.path=/…/verl.py``) shares its clients and pickles by value
    # without dragging the client caches and their lock along.
    from clients.adapters import verl as impl

    return await impl._score_one(solution_str, ground_truth, extra_info, kwargs)


async def _score_one(
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> dict[str, float | None]:
    cfg = _config(kwargs)
    try:
        sample = _sample(solution_str, ground_truth, extra_info)
    except InvalidSampleError as exc:
        result = Result.invalid(None, f"client: {exc}")
    else:
        [result] = await _async_client(cfg).score([sample], cfg["profile"])
    return _to_verl(result, cfg)


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, float | None]]:
    """Score a batch, synchronously: verl 0.4.0–0.7.0's ``BatchRewardManager`` (see the
    module doc); one request per batch, one dict per sample as ``compute_score`` returns.

    Args:
        data_sources: unused (one per sample).
        solution_strs: the decoded responses.
        ground_truths: labels per sample.
        extra_infos: per-sample dicts that may carry ``prompt``, ``images`` and ``labels``.
        **kwargs: as for ``compute_score``.
    """
    from clients.adapters import verl as impl

    return impl._score_batch(solution_strs, ground_truths, extra_infos, kwargs)


def _score_batch(
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None,
    kwargs: Mapping[str, Any],
) -> list[dict[str, float | None]]:
    cfg = _config(kwargs)
    n = len(solution_strs)
    infos = list(extra_infos) if extra_infos is not None else [None] * n
    samples: list[dict] = []
    results: list[Result | None] = []
    for i in range(n):
        try:
            samples.append(_sample(solution_strs[i], ground_truths[i], infos[i]))
            results.append(None)
        except InvalidSampleError as exc:
            results.append(Result.invalid(None, f"client: {exc}"))
    scored = iter(_client(cfg).score(samples, cfg["profile"]) if samples else [])
    final = [r if r is not None else next(scored) for r in results]
    return [_to_verl(r, cfg) for r in final]

"""The reward service as a TRL (>= 1.0) ``GRPOTrainer`` reward function.

    from clients import trl_reward
    trainer = GRPOTrainer(model=..., reward_funcs=[trl_reward(url="http://127.0.0.1:8000",
                                                              profile="safegrpo_plus")], ...)

How TRL 1.16 calls it (``GRPOTrainer._calculate_rewards``):

- ``trl.trainer.utils.is_async_callable`` tests ``inspect.iscoroutinefunction(f)`` *or*
  ``inspect.iscoroutinefunction(f.__call__)``, so an object with ``async def __call__`` runs on
  the trainer's background event loop (one loop for the whole run, shared by all async reward
  functions, which are gathered concurrently).
- Keyword arguments: ``prompts``, ``completions``, ``completion_ids``, every dataset column
  except ``prompt``/``completion``/``completion_ids`` (one value per completion), and
  ``trainer_state``, ``log_extra(column, values)``, ``log_metric(name, value)`` (and
  ``environments`` when an environment factory is used).
- It must return one value per completion; ``None`` becomes NaN. A completion whose reward
  functions all return ``None`` is unscorable: it leaves the group baseline and gets zero
  advantage. The reward column and ``rewards/<name>/mean`` use ``get_callable_name``, i.e. the
  object's ``__name__`` (here ``reward_<profile>``).
- For image datasets, TRL rewrites conversational prompts so user turns hold
  ``{"type": "image", "image": <PIL.Image>}`` parts, and also passes the ``images`` (or
  ``image``) column. Inline images win (they are the same pictures); otherwise the column fills
  the ``{"type": "image"}`` placeholders.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clients._base import DEFAULT_URL
from clients.aio import AsyncRewardClient
from clients.errors import InvalidSampleError
from clients.models import Result, component_means
from clients.samples import normalise_labels, normalise_sample, response_text
from reward_formats import as_list, is_tag_key

__all__ = ["TRLReward", "trl_reward"]


def _has_inline_images(prompt: Any) -> bool:
    if isinstance(prompt, str) or not prompt:
        return False
    for msg in prompt:
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, str) or not content:
            continue
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "image_url":
                return True
            if part.get("type") == "image" and any(
                part.get(k) is not None for k in ("image", "url", "path", "image_url")
            ):
                return True
    return False


def _column(kwargs: Mapping[str, Any], name: str, i: int) -> Any:
    column = kwargs.get(name)
    if column is None:
        return None
    return column[i]


def build_samples(
    prompts: Sequence[Any] | None, completions: Sequence[Any], columns: Mapping[str, Any]
) -> tuple[list[dict | None], list[str | None]]:
    """Contract samples from TRL's arguments: one per completion, ``None`` with a reason where
    the row cannot be sent (the others still are).

    Labels come from a ``labels`` column (dict or JSON string) or from the SafeTag-VL columns
    ``image_tag``/``text_tag``/``combine_tag``; a row with none is sent without labels, and a
    profile that needs them answers ``invalid`` for it. A bad value (``"maybe"``) or another
    ``*_tag`` column (a typo such as ``combined_tag``) makes only that row unscored, naming the
    key; values are read in any case (``"SAFE"`` is ``safe``).
    """
    samples: list[dict | None] = []
    errors: list[str | None] = []
    for i, completion in enumerate(completions):
        prompt = prompts[i] if prompts is not None else ""
        try:
            if columns.get("labels") is not None:
                labels = normalise_labels(columns["labels"][i])
            else:
                tags = {k: _column(columns, k, i) for k in columns if is_tag_key(k)}
                labels = normalise_labels(tags)
            raw: dict[str, Any] = {"id": i, "prompt": prompt, "response": response_text(completion)}
            if labels:
                raw["labels"] = labels
            if not _has_inline_images(prompt):
                images = _column(columns, "images", i)
                if images is None and _column(columns, "image", i) is not None:
                    images = [columns["image"][i]]
                images = as_list(images)
                if images:
                    raw["images"] = images
            samples.append(normalise_sample(raw))
            errors.append(None)
        except InvalidSampleError as exc:
            samples.append(None)
            errors.append(f"client: {exc}")
    return samples, errors


class TRLReward:
    """An async, picklable reward function backed by the reward service.

    Args:
        url: the service's base URL.
        profile: reward profile (the service default when ``None``); also names the function.
        api_key: the service's API key, if it has one.
        name: ``__name__`` override (TRL's reward column); default ``reward_<profile>``.
        log_components: log each component's batch mean (over scored completions) through TRL's
            ``log_metric`` as ``rewards/<name>/<component>``, plus ``rewards/<name>/valid_frac``,
            and each unscored completion's reason through ``log_extra`` as ``<name>/error``.
        **client_kwargs: passed to ``AsyncRewardClient`` (``timeout``, ``max_retries``,
            ``chunk_size``, ``max_concurrency``, ...).

    Returns (when awaited): one ``float`` per completion, or ``None`` where the service
    answered ``invalid`` or the row could not be sent. A service that cannot be reached after
    the retries raises (``RewardClientError``): training on no rewards would be silent failure.

    The HTTP client is made on first use in the running event loop and is not pickled; a copy
    (e.g. in a spawned worker) makes its own.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        profile: str | None = None,
        api_key: str | None = None,
        *,
        name: str | None = None,
        log_components: bool = True,
        **client_kwargs: Any,
    ) -> None:
        self.url = url
        self.profile = profile
        self.api_key = api_key
        self.log_components = log_components
        self.client_kwargs = client_kwargs
        self.__name__ = name or f"reward_{profile or 'service'}"
        self._client: AsyncRewardClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"TRLReward(url={self.url!r}, profile={self.profile!r}, name={self.__name__!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = state["_loop"] = None
        return state

    def _client_here(self) -> AsyncRewardClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = AsyncRewardClient(
                self.url, api_key=self.api_key, profile=self.profile, **self.client_kwargs
            )
            self._loop = loop
        return self._client

    async def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list], None] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        samples, errors = build_samples(prompts, completions, columns)
        to_send = [s for s in samples if s is not None]
        results = await self._client_here().score(to_send) if to_send else []
        by_row: list[Result] = []
        it = iter(results)
        for sample, error in zip(samples, errors, strict=True):
            by_row.append(next(it) if sample is not None else Result.invalid(None, error or ""))
        if self.log_components:
            self._log(by_row, log_metric, log_extra)
        return [r.reward if r.ok else None for r in by_row]

    def _log(
        self,
        results: list[Result],
        log_metric: Callable[[str, float], None] | None,
        log_extra: Callable[[str, list], None] | None,
    ) -> None:
        if log_metric is not None and results:
            prefix = f"rewards/{self.__name__}"
            for component, value in component_means(results).items():
                if not math.isnan(value):
                    log_metric(f"{prefix}/{component}", value)
            log_metric(f"{prefix}/valid_frac", sum(r.ok for r in results) / len(results))
        if log_extra is not None:  # every call, so the column stays aligned with the rows
            log_extra(f"{self.__name__}/error", [r.error for r in results])

    async def aclose(self) -> None:
        """Close the HTTP client (call from the loop that used it)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = self._loop = None


def trl_reward(
    url: str = DEFAULT_URL,
    profile: str | None = None,
    api_key: str | None = None,
    **kw: Any,
) -> TRLReward:
    """A TRL ``GRPOTrainer`` reward function scoring through the service; see ``TRLReward``.

    >>> f = trl_reward(url="http://127.0.0.1:8000", profile="safegrpo_plus")
    >>> f.__name__
    'reward_safegrpo_plus'
    """
    return TRLReward(url=url, profile=profile, api_key=api_key, **kw)

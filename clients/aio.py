"""``AsyncRewardClient``: the asyncio client; shares all but the send loop with ``sync.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from clients._base import DEFAULT_URL, BaseRewardClient
from clients.errors import RewardClientError, map_httpx_errors
from clients.models import Chunk, Result


class AsyncRewardClient(BaseRewardClient):
    """Asyncio client of ``POST /score`` over one pooled ``httpx.AsyncClient``.

    The arguments are ``BaseRewardClient``'s. A batch larger than ``chunk_size`` is sent as
    several requests, at most ``max_concurrency`` in flight, and the results come back in the
    order of the samples. If one chunk fails for good, the others are cancelled.

    Like any ``httpx.AsyncClient``, an instance belongs to the event loop it first sends on.

    Example:
        >>> async with AsyncRewardClient("http://127.0.0.1:8000") as client:  # doctest: +SKIP
        ...     results = await client.score(samples, profile="safegrpo")
    """

    def __init__(self, url: str = DEFAULT_URL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._http = httpx.AsyncClient(**self._client_kwargs())

    async def score(
        self,
        samples: Sequence[Mapping[str, Any]],
        profile: str | None = None,
        *,
        base_dir: str | Path | None = None,
    ) -> list[Result]:
        """Score ``samples``; see ``RewardClient.score`` (same arguments, results, errors)."""
        local, chunks = self._build_chunks(samples, profile, base_dir)
        if len(chunks) <= 1:
            parts = [await self._send(chunk) for chunk in chunks]
            return self._assemble(local, chunks, parts)
        gate = asyncio.Semaphore(self.max_concurrency)

        async def bounded(chunk: Chunk) -> list[Result]:
            async with gate:
                return await self._send(chunk)

        tasks = [asyncio.ensure_future(bounded(chunk)) for chunk in chunks]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return self._assemble(local, chunks, list(parts))

    async def _send(self, chunk: Chunk) -> list[Result]:
        attempt = 0
        while True:
            try:
                with map_httpx_errors(self.score_url, self.timeout):
                    response = await self._http.post(self.score_url, json=chunk.payload)
                return self._parse(response, chunk)
            except RewardClientError as exc:
                await asyncio.sleep(self._wait_before_retry(attempt, exc))
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

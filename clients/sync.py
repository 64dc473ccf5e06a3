"""``RewardClient``: the blocking client. Shares everything but the send loop with ``aio.py``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from clients._base import DEFAULT_URL, BaseRewardClient
from clients.errors import RewardClientError, map_httpx_errors
from clients.models import Chunk, Result


class RewardClient(BaseRewardClient):
    """Blocking client of ``POST /score`` over one pooled ``httpx.Client``.

    The arguments are ``BaseRewardClient``'s. A batch larger than ``chunk_size`` is sent as
    several requests, up to ``max_concurrency`` at once (threads share the connection pool),
    and the results come back in the order of the samples.

    Example:
        >>> with RewardClient("http://127.0.0.1:8000") as client:  # doctest: +SKIP
        ...     [r] = client.score([{"prompt": "hi", "response": "...", "labels": {...}}])
        ...     r.reward, r.components
    """

    def __init__(self, url: str = DEFAULT_URL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._http = httpx.Client(**self._client_kwargs())

    def score(
        self,
        samples: Sequence[Mapping[str, Any]],
        profile: str | None = None,
        *,
        base_dir: str | Path | None = None,
    ) -> list[Result]:
        """Score ``samples`` (contract samples: ``prompt``, ``response``, optional ``id``,
        ``images``, ``labels``); one ``Result`` per sample, in order.

        A sample whose labels or images break the contract (label ``"maybe"``, a
        ``combined_tag`` key, an image file that is not there) is not sent: its ``Result`` is
        ``invalid`` with a ``client:`` reason, as the service would answer, and the other
        samples are scored.

        Args:
            samples: the samples; image paths may be relative to ``base_dir``.
            profile: overrides the client's ``profile`` for this call.
            base_dir: directory image paths are read from; with it, every image path must
                be a local file (without it, a path that is not one is left for the
                service's ``REWARD_IMAGE_ROOT``).

        Raises:
            InvalidSampleError: a malformed sample (not an object, an unknown field, no
                ``response``), named ``samples[i]``; nothing is sent.
            RewardServiceError: the service refused the request (4xx, or 503 after retries);
                a sample it names is ``samples[i]``, its index in ``samples``.
            RewardTimeout / RewardConnectionError: after the retries are used up.
        """
        local, chunks = self._build_chunks(samples, profile, base_dir)
        if len(chunks) <= 1 or self.max_concurrency == 1:
            parts = [self._send(chunk) for chunk in chunks]
        else:
            pool = ThreadPoolExecutor(min(self.max_concurrency, len(chunks)))
            try:
                parts = list(pool.map(self._send, chunks))
            finally:  # on a failure, chunks not yet started are not sent
                pool.shutdown(wait=True, cancel_futures=True)
        return self._assemble(local, chunks, parts)

    def _send(self, chunk: Chunk) -> list[Result]:
        attempt = 0
        while True:
            try:
                with map_httpx_errors(self.score_url, self.timeout):
                    response = self._http.post(self.score_url, json=chunk.payload)
                return self._parse(response, chunk)
            except RewardClientError as exc:
                time.sleep(self._wait_before_retry(attempt, exc))
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

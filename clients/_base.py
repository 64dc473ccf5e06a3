"""``BaseRewardClient``: everything the sync and async clients share, with no network I/O.

Configuration, chunking, response parsing and the retry decision live here; ``sync.py`` and
``aio.py`` hold only what differs between blocking and asyncio code: the HTTP client, the
fan-out of chunks (threads or tasks), and the send loop's ``post`` and ``sleep``
(httpx's ``BaseClient`` / ``Client`` / ``AsyncClient`` split).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from clients.errors import (
    InvalidSampleError,
    RewardClientError,
    RewardServiceError,
    SampleDataError,
    rename_samples,
)
from clients.models import Chunk, Result
from clients.retry import RetryPolicy, parse_retry_after
from clients.samples import normalise_sample

__all__ = ["DEFAULT_URL", "BaseRewardClient"]

DEFAULT_URL = "http://127.0.0.1:8000"

log = logging.getLogger("clients")


class BaseRewardClient:
    """Configuration and the pure parts of a client (no network I/O).

    Args:
        url: the service's base URL (``/score`` is appended), e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>`` (the service's ``REWARD_API_KEY``).
        timeout: seconds for each HTTP attempt (connect, read, write, pool).
        max_retries: retries on connection errors, timeouts and 503; never on 4xx, nor on
            a 503 that waiting cannot fix (no judge configured).
        chunk_size: samples per request; a larger batch is split (keep it at or below the
            service's ``REWARD_MAX_SAMPLES``, 1024 by default).
        max_concurrency: chunks in flight at once for one ``score`` call.
        profile: default profile for ``score`` (the service's default when ``None``).
        backoff / max_backoff: exponential backoff parameters, see ``RetryPolicy``.
        transport: an httpx transport (the test seam; e.g. ``httpx.MockTransport``).
        headers: extra HTTP headers.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        chunk_size: int = 256,
        max_concurrency: int = 4,
        profile: str | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transport: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.max_concurrency = max_concurrency
        self.profile = profile
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff, max_backoff=max_backoff)
        self.transport = transport
        self.headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._rng = random.Random()

    @property
    def score_url(self) -> str:
        return f"{self.url}/score"

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=max(self.max_concurrency, 4),
            max_keepalive_connections=max(self.max_concurrency, 4),
        )

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(self.timeout),
            "headers": self.headers,
            "limits": self._limits(),
        }
        if self.transport is not None:
            kwargs["transport"] = self.transport
        return kwargs

    def _build_chunks(
        self,
        samples: Iterable[Mapping[str, Any]],
        profile: str | None,
        base_dir: str | Path | None = None,
    ) -> tuple[list[Result | None], list[Chunk]]:
        """Normalise every sample and cut the sendable ones into chunks.

        Returns one entry per sample: an ``invalid`` ``Result`` made here for a sample whose
        labels or images break the contract (``SampleDataError``: never sent, the others
        still are), ``None`` for a sample that goes into a chunk.

        Raises:
            InvalidSampleError: a malformed sample, named by its index; nothing is sent.
        """
        local: list[Result | None] = []
        wire: list[tuple[int, dict[str, Any]]] = []
        for i, sample in enumerate(samples):
            try:
                wire.append((i, normalise_sample(sample, base_dir)))
                local.append(None)
            except SampleDataError as exc:
                sample_id = sample.get("id") if isinstance(sample, Mapping) else None
                local.append(Result.invalid(sample_id, f"client: {exc}"))
            except InvalidSampleError as exc:
                raise InvalidSampleError(f"samples[{i}]: {exc}") from exc
        profile = profile if profile is not None else self.profile
        chunks = []
        for start in range(0, len(wire), self.chunk_size):
            part = wire[start : start + self.chunk_size]
            payload: dict[str, Any] = {"samples": [sample for _, sample in part]}
            if profile is not None:
                payload["profile"] = profile
            chunks.append(Chunk(tuple(i for i, _ in part), payload))
        return local, chunks

    def _parse(self, response: httpx.Response, chunk: Chunk) -> list[Result]:
        """Results of one chunk, or the service's error raised as ``RewardServiceError``."""
        if response.status_code != 200:
            raise self._service_error(response, chunk)
        try:
            body = response.json()
            profile, version = body.get("profile"), body.get("rubric_version")
            results = [Result.from_json(r, profile, version) for r in body["results"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RewardServiceError(
                200, f"response does not follow the contract: {exc}", self.score_url
            ) from exc
        if len(results) != chunk.size:
            raise RewardServiceError(
                200, f"sent {chunk.size} samples, got {len(results)} results", self.score_url
            )
        return results

    def _service_error(self, response: httpx.Response, chunk: Chunk) -> RewardServiceError:
        """The error reply as ``RewardServiceError``; a ``samples[k]`` in its message (the
        k-th sample of this request) is renamed to the caller's index of that sample."""
        try:
            body = response.json()
            message = body.get("error") if isinstance(body, dict) else None
            message = message or response.text[:500]
        except ValueError:
            message = response.text[:500] or response.reason_phrase

        def callers_index(k: int, dotted: bool) -> str | None:
            if k >= len(chunk.indices):
                return None
            return f"samples[{chunk.indices[k]}]" + ("." if dotted else "")

        return RewardServiceError(
            response.status_code,
            rename_samples(str(message), callers_index),
            str(response.request.url) if response.request else self.score_url,
            parse_retry_after(response.headers.get("retry-after")),
        )

    def _wait_before_retry(self, attempt: int, error: RewardClientError) -> float:
        """Seconds to sleep before sending a chunk again after ``error`` on attempt number
        ``attempt`` (0-based); re-raises ``error`` when the policy says give up."""
        delay = self.retry.delay(attempt, error, self._rng)
        if delay is None:
            raise error
        log.warning("retry %d/%d in %.2fs: %s", attempt + 1, self.retry.max_retries, delay, error)
        return delay

    @staticmethod
    def _assemble(
        local: list[Result | None], chunks: list[Chunk], parts: list[list[Result]]
    ) -> list[Result]:
        """One result per sample, in the caller's order: the local ones and the chunks'."""
        out = list(local)
        for chunk, results in zip(chunks, parts, strict=True):
            for index, result in zip(chunk.indices, results, strict=True):
                out[index] = result
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]

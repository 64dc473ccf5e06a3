"""Result cache: in-process LRU by default, Redis when ``REWARD_REDIS_URL`` is set.

What is stored is a ``CacheRecord``: the parts of an ``ok`` result that belong to the
sample's content (reward, components, penalties, judge verdict). The parts that belong to
one request (the sample's ``id``, ``cached``) are not stored; ``cached`` is set when a
record is read back. Redis holds a record's JSON form (``CacheRecord.dumps``/``loads``).

A cache outage never fails a request: Redis errors are logged, counted, and the request
goes on uncached; the next call tries Redis again, so recovery is automatic.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from reward_server.domain import Sample, ScoreResult, Status

log = logging.getLogger(__name__)

KEY_PREFIX = "rwd:v1:"


def cache_key(sample: Sample, rubric_version: str, judge: dict[str, str] | None) -> str:
    """Hash of the canonical JSON of everything that decides this sample's reward."""
    if isinstance(sample.prompt, str):
        prompt: Any = sample.prompt
    else:
        prompt = [[m.role, m.text, list(m.image_indices)] for m in sample.prompt]
    lab = sample.labels
    labels = None if lab is None else [lab.image_tag, lab.text_tag, lab.combine_tag]
    # A JSON array in a fixed order is canonical without sorting keys.
    blob = orjson.dumps(
        [
            rubric_version,
            judge.get("model") if judge else None,
            judge.get("mode") if judge else None,
            prompt,
            [im.sha256 for im in sample.images],
            sample.response,
            labels,
        ]
    )
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """One cached ``ok`` result, without what belongs to a single request (id, ``cached``)."""

    reward: float
    components: dict[str, float]
    penalties: dict[str, float]
    judge: dict[str, Any] | None

    @classmethod
    def of(cls, result: ScoreResult) -> CacheRecord:
        """The record of an ``ok`` result (only those are cached: ``invalid`` may score later)."""
        if result.status != Status.OK or result.reward is None:
            raise ValueError(f"only ok results are cached, not {result.status}")
        return cls(result.reward, result.components, result.penalties, result.judge)

    def result(self, sample_id: str | int | None = None) -> ScoreResult:
        """The result this record stands for, as read back from the cache."""
        return ScoreResult(
            id=sample_id,
            status=Status.OK,
            reward=self.reward,
            components=self.components,
            penalties=self.penalties,
            judge=self.judge,
            cached=True,
        )

    def dumps(self) -> bytes:
        """The stored form: a JSON object (``status`` kept so a reader sees what it is)."""
        return orjson.dumps({
            "status": "ok",
            "reward": self.reward,
            "components": self.components,
            "penalties": self.penalties,
            "judge": self.judge,
        })

    @classmethod
    def loads(cls, blob: bytes | str) -> CacheRecord | None:
        """A record from its stored form; ``None`` (a miss) for anything that is not one.

        Entries written before records existed also carry ``cached``/``error`` keys; they
        are ignored.
        """
        try:
            data = orjson.loads(blob)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, Mapping) or data.get("status") != "ok":
            return None
        reward, components = data.get("reward"), data.get("components")
        penalties, judge = data.get("penalties"), data.get("judge")
        if (
            not isinstance(reward, int | float)
            or isinstance(reward, bool)
            or not isinstance(components, dict)
            or not isinstance(penalties, dict)
            or not (judge is None or isinstance(judge, dict))
        ):
            return None
        return cls(float(reward), components, penalties, judge)


class Cache(Protocol):
    """Async multi-get/multi-set; implementations never raise on outages.

    ``set_many`` takes ``ok`` results and stores their records; ``get_many`` returns the
    records, which the service turns back into each sample's result (``record.result(id)``).
    """

    name: str

    async def get_many(self, keys: Sequence[str]) -> list[CacheRecord | None]: ...

    async def set_many(self, items: Sequence[tuple[str, ScoreResult]]) -> None: ...

    async def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class LRUCache:
    """Bounded in-process cache (``REWARD_CACHE_SIZE`` entries; 0 disables it)."""

    name = "memory"

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, CacheRecord] = OrderedDict()

    async def get_many(self, keys: Sequence[str]) -> list[CacheRecord | None]:
        out: list[CacheRecord | None] = []
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            out.append(value)
        return out

    async def set_many(self, items: Sequence[tuple[str, ScoreResult]]) -> None:
        if self.size <= 0:
            return
        for key, result in items:
            self._data[key] = CacheRecord.of(result)
            self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    async def status(self) -> dict[str, Any]:
        return {"backend": self.name, "reachable": True, "entries": len(self._data)}

    async def aclose(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis-backed cache shared by every replica: pipelined MGET / SET EX per request.

    Args:
        url: ``redis://host:port/db``.
        ttl_s: seconds an entry lives (``REWARD_CACHE_TTL_S``).
        on_error: called with the operation name whenever Redis fails (metrics hook).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: int,
        on_error: Any = None,
        socket_timeout_s: float = 0.5,
    ) -> None:
        import redis.asyncio as redis  # the default deployment has no Redis: import lazily

        self.url = url
        self.ttl_s = ttl_s
        self._on_error = on_error or (lambda op: None)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            health_check_interval=10,
            max_connections=64,
        )
        self._last_error: str | None = None
        self._last_error_at = 0.0

    def _failed(self, op: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_at > 5:  # one line per 5 s, not one per request
            log.warning("redis %s failed; continuing uncached: %r", op, exc)
        self._last_error, self._last_error_at = f"{type(exc).__name__}: {exc}", now
        self._on_error(op)

    async def get_many(self, keys: Sequence[str]) -> list[CacheRecord | None]:
        if not keys:
            return []
        try:
            raw = await self._client.mget([KEY_PREFIX + k for k in keys])
        except Exception as exc:  # any Redis/network failure means "miss"
            self._failed("get", exc)
            return [None] * len(keys)
        return [None if blob is None else CacheRecord.loads(blob) for blob in raw]

    async def set_many(self, items: Sequence[tuple[str, ScoreResult]]) -> None:
        if not items:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, result in items:
                    pipe.set(KEY_PREFIX + key, CacheRecord.of(result).dumps(), ex=self.ttl_s)
                await pipe.execute()
        except Exception as exc:
            self._failed("set", exc)

    async def status(self) -> dict[str, Any]:
        try:
            await self._client.ping()
            return {"backend": self.name, "reachable": True}
        except Exception as exc:
            self._failed("ping", exc)
            return {"backend": self.name, "reachable": False, "error": self._last_error}

    async def aclose(self) -> None:
        await self._client.aclose()

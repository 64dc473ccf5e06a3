"""Result cache: in-process LRU by default, Redis when ``REWARD_REDIS_URL`` is set.

What is stored is a ``CacheRecord``: the parts of an ``ok`` result that belong to the
sample's content (reward, components, penalties, judge verdict). The parts that belong to
one request (the sample's ``id``, ``cached``) are not stored; ``cached`` is set when a
record is read back. Redis holds a record's JSON form (``CacheRecord.dumps``/``loads``).

A cache outage never fails a request: Redis errors are logged, counted, and the request
goes on uncached. A circuit breaker keeps an outage from costing every request a timeout
(a frozen or unreachable Redis makes each call wait ``socket_timeout_s``): after a failure
Redis is skipped for ``breaker_s`` seconds (reads are misses, writes are dropped), then
one call probes it; an answer closes the breaker, another failure opens it again. So a
dead Redis costs one timeout per interval, recovery is automatic, and a reward is never
wrong: a skipped cache is a miss, exactly as a failed one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from reward_server.domain import Sample, ScoreResult, Status

log = logging.getLogger(__name__)

#: Every key starts with it; it moves when the stored form does (v2: exactly the record keys).
KEY_PREFIX = "rwd:v2:"
#: The keys of a stored record (``CacheRecord.dumps``).
_RECORD_KEYS = frozenset({"status", "reward", "components", "penalties", "judge"})
#: Seconds the Redis cache is skipped after a failure, before one call probes it again.
BREAKER_S = 5.0


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
        """A record from its stored form; ``None`` (a miss) for anything that is not
        exactly one (another key, a wrong type)."""
        try:
            data = orjson.loads(blob)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, Mapping) or data.keys() != _RECORD_KEYS or data["status"] != "ok":
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


class CircuitBreaker:
    """Whether to call a backend that may be down.

    ``closed``: every call goes through. A failure opens it: for ``interval_s`` every call
    is skipped (``open``). Then it is ``half_open``: one call at a time goes through as the
    probe; its success closes the breaker, its failure opens it for another interval, and
    a probe that ends undecided (cancelled) lets the next call probe. A failure of any call
    (also one that started while the breaker was closed) opens it from that moment.

    Single event loop: ``enter`` and ``exit`` never await, so they need no lock.

    Args:
        interval_s: how long it stays open (0: the next call probes at once).
        now: the clock, in seconds (``time.monotonic``; tests pass a manual one).
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, interval_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._now = now
        self._opened_at: float | None = None  # None: closed
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._probing or self.retry_in_s() == 0:
            return self.HALF_OPEN
        return self.OPEN

    def retry_in_s(self) -> float:
        """Seconds until the next probe may go (0 unless open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.interval_s - self._now())

    def enter(self) -> bool | None:
        """May a call go through? ``None``: skip it; ``True``: yes, as the probe;
        ``False``: yes (closed). Pass the answer to ``exit``."""
        state = self.state
        if state == self.CLOSED:
            return False
        if state == self.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return None

    def exit(self, probe: bool, ok: bool | None) -> None:
        """A call let through by ``enter`` ended: answered (``ok``), failed, or undecided
        (``None``: cancelled before it could tell)."""
        if probe:
            self._probing = False
        if ok is False:
            self._opened_at = self._now()
        elif ok and probe:
            self._opened_at = None

    def view(self) -> dict[str, Any]:
        """What ``status`` adds while the cache is skipped or probing (nothing when closed)."""
        state = self.state
        if state == self.CLOSED:
            return {}
        if state == self.OPEN:
            return {"breaker": state, "retry_in_s": round(self.retry_in_s(), 3)}
        return {"breaker": state}


class RedisCache:
    """Redis-backed cache shared by every replica: pipelined MGET / SET EX per request,
    behind a ``CircuitBreaker``.

    Args:
        url: ``redis://host:port/db``.
        ttl_s: seconds an entry lives (``REWARD_CACHE_TTL_S``).
        on_error: called with the operation name whenever Redis fails (metrics hook);
            never for calls the breaker skips.
        socket_timeout_s: how long one call waits for Redis (connect, and each reply).
        breaker_s: seconds Redis is skipped after a failure, before a call probes it.
        now: the breaker's clock (``time.monotonic``).

    A failure is anything but Redis answering with an error reply (``ResponseError``):
    that is counted and logged, but Redis did answer, so it does not open the breaker.
    ``status`` (``GET /ready``) always pings Redis, whatever the breaker, and shows the
    breaker while it is not closed; the ping neither opens nor closes it.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: int,
        on_error: Any = None,
        socket_timeout_s: float = 0.5,
        breaker_s: float = BREAKER_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis.asyncio as redis  # the default deployment has no Redis: import lazily
        from redis.exceptions import ResponseError

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
        self._answered: type[Exception] = ResponseError
        self._breaker = CircuitBreaker(breaker_s, now)
        self._last_error: str | None = None
        self._last_error_at = 0.0

    def _failed(self, op: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_at > 5:  # one line per 5 s, not one per request
            log.warning("redis %s failed; continuing uncached (Redis skipped for %g s, then "
                        "retried): %r", op, self._breaker.interval_s, exc)
        self._last_error, self._last_error_at = f"{type(exc).__name__}: {exc}", now
        self._on_error(op)

    async def _call(self, op: str, action: Callable[[], Awaitable[Any]]) -> Any:
        """``action()``'s result; ``None`` when the breaker skips Redis or Redis fails."""
        probe = self._breaker.enter()
        if probe is None:
            return None
        ok: bool | None = None  # stays None if cancelled: the call decided nothing
        try:
            result = await action()
            ok = True
            return result
        except Exception as exc:  # any Redis/network failure means "miss" / "not stored"
            ok = isinstance(exc, self._answered)
            self._failed(op, exc)
            return None
        finally:
            self._breaker.exit(probe, ok)
            if probe and ok:
                log.warning("redis answers again; cache in use")

    async def get_many(self, keys: Sequence[str]) -> list[CacheRecord | None]:
        if not keys:
            return []
        raw = await self._call("get", lambda: self._client.mget([KEY_PREFIX + k for k in keys]))
        if raw is None:
            return [None] * len(keys)
        return [None if blob is None else CacheRecord.loads(blob) for blob in raw]

    async def set_many(self, items: Sequence[tuple[str, ScoreResult]]) -> None:
        if not items:
            return

        async def write() -> None:  # records serialised only when the breaker lets it run
            async with self._client.pipeline(transaction=False) as pipe:
                for key, result in items:
                    pipe.set(KEY_PREFIX + key, CacheRecord.of(result).dumps(), ex=self.ttl_s)
                await pipe.execute()

        await self._call("set", write)

    async def status(self) -> dict[str, Any]:
        try:
            await self._client.ping()
            return {"backend": self.name, "reachable": True, **self._breaker.view()}
        except Exception as exc:
            self._failed("ping", exc)
            return {"backend": self.name, "reachable": False, "error": self._last_error,
                    **self._breaker.view()}

    async def aclose(self) -> None:
        await self._client.aclose()

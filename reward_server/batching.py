"""Micro-batching across concurrent requests: many small calls in, few full batches out.

Callers ``submit`` items and await their results; a worker task collects items into a
batch until it holds ``max_batch`` items or ``max_wait_ms`` have passed since the batch's
first item arrived (a monotonic deadline, so wall-clock jumps do not matter), then hands
the batch to the handler. While every worker slot is busy, items keep accumulating, so
under load batches fill up without waiting at all.

The queue is bounded: a submission that would push more than ``max_queue`` items into
the waiting line raises ``ScorerUnavailable`` (HTTP 503 with Retry-After) at once rather
than letting latency grow without limit.

>>> import asyncio
>>> async def double(xs):
...     return [2 * x for x in xs]
>>> async def demo():
...     batcher = MicroBatcher(double, max_batch=8, max_wait_ms=5)
...     out = await asyncio.gather(batcher.submit(1), batcher.submit_many([2, 3]))
...     await batcher.aclose()
...     return out
>>> asyncio.run(demo())
[2, [4, 6]]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from reward_server.errors import PayloadTooLarge, ScorerUnavailable
from reward_server.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BatchHandler = Callable[[list[T]], Awaitable[list[R]]]


class MicroBatcher(Generic[T, R]):
    """Collects concurrently submitted items into batches for one handler.

    Args:
        handler: async function from a batch of items to a same-length list of results.
            An exception it raises is given to every caller in that batch.
        max_batch: most items per handler call (``REWARD_JUDGE_MAX_BATCH``).
        max_wait_ms: longest a batch waits for mates after its first item arrived
            (``REWARD_JUDGE_MAX_WAIT_MS``); 0 sends whatever is queued at once.
        max_queue: most items waiting for a batch (``REWARD_JUDGE_MAX_QUEUE``).
        concurrency: handler calls that may run at the same time (1 for an in-process
            model; more for a remote server that batches on its side too).
        metrics: where queue depth, batch sizes and handler latency go.
        retry_after: seconds a rejected caller is told to wait.
    """

    def __init__(
        self,
        handler: BatchHandler[T, R],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int = 4096,
        concurrency: int = 1,
        metrics: Metrics | None = None,
        retry_after: int = 2,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or concurrency < 1 or max_wait_ms < 0:
            raise ValueError("max_batch, max_queue, concurrency >= 1 and max_wait_ms >= 0")
        self.handler = handler
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.metrics = metrics
        self.retry_after = retry_after
        self._pending: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not yet handed to the handler)."""
        return len(self._pending)

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (tests): start afresh
            self._loop, self._worker = loop, None
            self._pending.clear()
        if self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._slots = asyncio.Semaphore(self.concurrency)
            self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.judge_queue.set(len(self._pending))

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue items (all or none) and wait for their results, in order.

        Raises:
            ScorerUnavailable: the queue cannot take ``len(items)`` more now, or the
                batcher is closed.
            PayloadTooLarge: ``len(items)`` exceeds the whole queue bound (413: never fits).
        """
        if not items:
            return []
        if self._closed:
            raise ScorerUnavailable("judge is shutting down", self.retry_after)
        if len(items) > self.max_queue:  # could never fit: retrying would loop forever
            raise PayloadTooLarge(
                f"samples: {len(items)} samples need the judge, more than "
                f"REWARD_JUDGE_MAX_QUEUE={self.max_queue} can ever queue; split the request"
            )
        if len(self._pending) + len(items) > self.max_queue:
            raise ScorerUnavailable(
                f"judge queue full ({len(self._pending)} waiting, {len(items)} more asked; "
                f"REWARD_JUDGE_MAX_QUEUE={self.max_queue})",
                self.retry_after,
            )
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            future: asyncio.Future[R] = loop.create_future()
            self._pending.append((item, future, now))
            futures.append(future)
        self._gauge()
        assert self._arrived is not None
        self._arrived.set()
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:  # caller gone: its queued items are skipped
                if not future.done():
                    future.cancel()
            raise

    async def _run(self) -> None:
        assert self._arrived is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._handle(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        """Wait for a first item, then for mates until full or the deadline passes."""
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._pending[0][2] + self.max_wait_s
        while len(self._pending) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch: list[tuple[T, asyncio.Future[R]]] = []
        while self._pending and len(batch) < self.max_batch:
            item, future, _ = self._pending.popleft()
            if not future.done():  # cancelled callers are dropped here
                batch.append((item, future))
        self._gauge()
        return batch

    async def _handle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        assert self._slots is not None
        start = time.perf_counter()
        try:
            if self.metrics is not None:
                self.metrics.judge_batch.observe(len(batch))
            results = await self.handler([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(batch)} items"
                )
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except BaseException as exc:
            if not isinstance(exc, ScorerUnavailable | asyncio.CancelledError):
                log.exception("judge batch of %d failed", len(batch))
            error = (
                ScorerUnavailable("judge batch interrupted (shutdown)", self.retry_after)
                if isinstance(exc, asyncio.CancelledError)
                else exc
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self.metrics is not None:
                self.metrics.judge_latency.observe(time.perf_counter() - start)
            self._slots.release()

    async def aclose(self) -> None:
        """Stop the worker; callers still waiting get ``ScorerUnavailable``."""
        self._closed = True
        tasks = [t for t in (self._worker, *self._running) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        while self._pending:
            _, future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(ScorerUnavailable("judge is shutting down", self.retry_after))
        self._gauge()

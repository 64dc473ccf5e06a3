"""Micro-batching across concurrent requests: many small calls in, few full batches out.

Callers ``submit`` items and await their results; a worker task collects items into a
batch until it holds ``max_batch`` items or ``max_wait_ms`` have passed since the batch's
first item arrived (a deadline on a monotonic clock, so wall-clock jumps do not matter),
then hands the batch to the handler. While every worker slot is busy, items keep
accumulating, so under load batches fill up without waiting at all.

The queue is bounded: a submission that would push more than ``max_queue`` items into
the waiting line raises ``QueueFull`` at once rather than letting latency grow without
limit, and one that could never fit raises ``TooManyItems``.

The batcher knows nothing of what it batches: its errors are its own (``BatcherError``),
and what it measures goes to a ``BatchObserver``. Whoever owns it (the judge engine)
translates the errors into the service's and writes the metrics. Time comes from a
``Clock`` (the monotonic one by default), so tests can step the deadline by hand.

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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from reward_server.elastic import ElasticSlots, Hold

T = TypeVar("T")
R = TypeVar("R")

BatchHandler = Callable[[list[T]], Awaitable[list[R]]]


class BatcherError(Exception):
    """Base of the batcher's own errors (neutral: no HTTP, no setting names)."""


class QueueFull(BatcherError):
    """The queue cannot take the items now; a later try may succeed."""

    def __init__(self, waiting: int, asked: int, max_queue: int) -> None:
        super().__init__(f"queue full ({waiting} waiting, {asked} more asked, max {max_queue})")
        self.waiting, self.asked, self.max_queue = waiting, asked, max_queue


class TooManyItems(BatcherError):
    """More items in one submission than the whole queue can ever hold; never retry as is."""

    def __init__(self, asked: int, max_queue: int) -> None:
        super().__init__(f"{asked} items, more than the queue can ever hold ({max_queue})")
        self.asked, self.max_queue = asked, max_queue


class BatcherClosed(BatcherError):
    """The batcher is shutting down: new items are refused, waiting ones are failed."""


class Clock(Protocol):
    """Where the batcher reads the time and waits for a deadline."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class MonotonicClock:
    """``time.monotonic`` and ``asyncio.sleep``: the clock of a running service."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class BatchObserver:
    """Receives what the batcher measures; the defaults ignore it (override what you need)."""

    def queue_depth(self, depth: int) -> None:
        """Items now waiting for a batch."""

    def batch_started(self, size: int) -> None:
        """A batch of ``size`` items was handed to the handler."""

    def batch_finished(self, size: int, seconds: float) -> None:
        """A batch's handler returned or raised, ``seconds`` after it started."""


class MicroBatcher(Generic[T, R]):
    """Collects concurrently submitted items into batches for one handler.

    Args:
        handler: async function from a batch of items to a same-length list of results.
            An exception it raises is given to every caller in that batch.
        max_batch: most items per handler call.
        max_wait_ms: longest a batch waits for mates after its first item arrived; 0 sends
            whatever is queued at once.
        max_queue: most items waiting for a batch.
        concurrency: handler calls that may run at the same time (1 for an in-process
            model; more for a remote server that batches on its side too).
        max_stalled: handler calls that may give their concurrency slot back because they
            run far longer than calls usually do (``reward_server.elastic``), so that a few
            hung calls to a remote server do not hold every later batch; 0: never.
        stall_bounds_s: the least and the most time a call runs before it counts as stalled.
        observer: where queue depth, batch sizes and handler latency go.
        clock: the time source (``MonotonicClock`` by default).
    """

    def __init__(
        self,
        handler: BatchHandler[T, R],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int = 4096,
        concurrency: int = 1,
        max_stalled: int = 0,
        stall_bounds_s: tuple[float, float] = (1.0, 30.0),
        observer: BatchObserver | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or concurrency < 1 or max_wait_ms < 0:
            raise ValueError("max_batch, max_queue, concurrency >= 1 and max_wait_ms >= 0")
        self.handler = handler
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.max_stalled = max_stalled
        self.stall_bounds_s = stall_bounds_s
        self.observer = observer or BatchObserver()
        self.clock: Clock = clock or MonotonicClock()
        self._pending: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._arrived: asyncio.Event | None = None
        self._slots: ElasticSlots | None = None
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
            self._slots = ElasticSlots(self.concurrency, self.max_stalled, *self.stall_bounds_s)
            self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        return (await self.submit_many([item]))[0]

    async def submit_many(
        self, items: Sequence[T], *, return_exceptions: bool = False
    ) -> list[R]:
        """Queue items (all or none) and wait for their results, in order.

        Args:
            items: what to process.
            return_exceptions: give an item's exception in its slot (as
                ``asyncio.gather`` does) instead of raising the first one, so a caller
                whose items landed in several batches keeps the results that did come.

        Raises:
            QueueFull: the queue cannot take ``len(items)`` more now.
            TooManyItems: ``len(items)`` exceeds the whole queue bound (never fits).
            BatcherClosed: the batcher is shutting down.
        """
        if not items:
            return []
        if self._closed:
            raise BatcherClosed("shutting down")
        if len(items) > self.max_queue:  # could never fit: retrying would loop forever
            raise TooManyItems(len(items), self.max_queue)
        if len(self._pending) + len(items) > self.max_queue:
            raise QueueFull(len(self._pending), len(items), self.max_queue)
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        now = self.clock.now()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            future: asyncio.Future[R] = loop.create_future()
            self._pending.append((item, future, now))
            futures.append(future)
        self.observer.queue_depth(len(self._pending))
        assert self._arrived is not None
        self._arrived.set()
        try:
            return list(await asyncio.gather(*futures, return_exceptions=return_exceptions))
        except BaseException:
            for future in futures:  # caller gone: its queued items are skipped
                if not future.done():
                    future.cancel()
            raise

    async def _run(self) -> None:
        assert self._arrived is not None and self._slots is not None
        while True:
            hold = await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                hold.release()
                raise
            if not batch:
                hold.release()
                continue
            task = asyncio.create_task(self._handle(batch, hold))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        """Wait for a first item, then for mates until full or the deadline passes."""
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        remaining = self._pending[0][2] + self.max_wait_s - self.clock.now()
        if len(self._pending) < self.max_batch and remaining > 0:
            timer = asyncio.create_task(self._ring_after(remaining))
            try:
                while len(self._pending) < self.max_batch and not timer.done():
                    self._arrived.clear()
                    await self._arrived.wait()
            finally:
                timer.cancel()
        batch: list[tuple[T, asyncio.Future[R]]] = []
        while self._pending and len(batch) < self.max_batch:
            item, future, _ = self._pending.popleft()
            if not future.done():  # cancelled callers are dropped here
                batch.append((item, future))
        self.observer.queue_depth(len(self._pending))
        return batch

    async def _ring_after(self, seconds: float) -> None:
        """The batch's deadline: wakes the collector once ``seconds`` have passed."""
        await self.clock.sleep(seconds)
        assert self._arrived is not None
        self._arrived.set()

    async def _handle(self, batch: list[tuple[T, asyncio.Future[R]]], hold: Hold) -> None:
        start = self.clock.now()
        try:
            self.observer.batch_started(len(batch))
            results = await self.handler([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(batch)} items"
                )
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except BaseException as exc:
            interrupted = isinstance(exc, asyncio.CancelledError)
            failure = BatcherClosed("batch interrupted (shutdown)") if interrupted else exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            if interrupted:
                raise
        finally:
            self.observer.batch_finished(len(batch), self.clock.now() - start)
            hold.release()

    async def aclose(self) -> None:
        """Stop the worker; callers still waiting get ``BatcherClosed``."""
        self._closed = True
        tasks = [t for t in (self._worker, *self._running) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        while self._pending:
            _, future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(BatcherClosed("shutting down"))
        self.observer.queue_depth(0)

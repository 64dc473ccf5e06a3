"""MicroBatcher: concurrent callers share batches, deadlines hold, the queue is bounded.

Deadlines run on a ``ManualClock``: time moves only when a test advances it, so each
test says exactly when a batch must leave ("at 0.3 s, not 0.5 s") and no assertion
depends on how fast the machine is. The batcher's neutral errors and its observer are
tested here; the judge engine's translation of them (503 / 413, ``reward_judge_*``
metrics) is in ``test_judge_engine.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from reward_server.batching import (
    BatcherClosed,
    BatchObserver,
    MicroBatcher,
    QueueFull,
    TooManyItems,
)
from tests.fakes.manual_clock import ManualClock, settle


class Recorder:
    """A handler that records each batch (and the clock's time) and can be held."""

    def __init__(self, hold: bool = False, clock: ManualClock | None = None) -> None:
        self.batches: list[list[int]] = []
        self.times: list[float] = []
        self.clock = clock
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.running = 0
        self.max_running = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.clock is not None:
            self.times.append(self.clock.now())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.release.wait()
            return [x * 10 for x in items]
        finally:
            self.running -= 1


class RecordingObserver(BatchObserver):
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.started: list[int] = []
        self.finished: list[tuple[int, float]] = []

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def batch_started(self, size: int) -> None:
        self.started.append(size)

    def batch_finished(self, size: int, seconds: float) -> None:
        self.finished.append((size, seconds))


async def test_two_concurrent_calls_are_batched_together():
    """Fails if two concurrent callers are not served by one handler call.

    The second caller arrives 30 ms after the first, so only waiting for batch-mates (up
    to max_wait_ms) puts them together; a batcher that sent at once would split them.
    """
    clock = ManualClock()
    handler = Recorder(clock=clock)
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=150, clock=clock)
    first = asyncio.create_task(batcher.submit(1))
    await settle(lambda: clock.sleepers == 1)  # waiting for mates
    clock.advance(0.03)
    second = asyncio.create_task(batcher.submit(2))
    await settle(lambda: batcher.queued == 2)
    assert handler.batches == []
    clock.advance(0.12)
    assert await asyncio.gather(first, second) == [10, 20]
    assert handler.batches == [[1, 2]]
    assert handler.times == [pytest.approx(0.15)]
    await batcher.aclose()


async def test_full_batch_goes_without_waiting_for_the_deadline():
    clock = ManualClock()
    handler = Recorder(clock=clock)
    batcher = MicroBatcher(handler, max_batch=3, max_wait_ms=5000, clock=clock)
    task = asyncio.create_task(batcher.submit_many([1, 2, 3]))
    await settle(task.done)  # the clock never moved: no deadline was sat out
    assert task.result() == [10, 20, 30]
    assert handler.times == [0.0]
    await batcher.aclose()


async def test_lone_item_waits_for_the_deadline_then_goes():
    clock = ManualClock()
    handler = Recorder(clock=clock)
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=150, clock=clock)
    task = asyncio.create_task(batcher.submit(4))
    await settle(lambda: clock.sleepers == 1)
    clock.advance(0.149)
    await asyncio.sleep(0)
    assert handler.batches == [] and clock.sleepers == 1  # 1 ms early: still waiting
    clock.advance(0.001)
    await settle(task.done)
    assert task.result() == 40
    assert handler.times == [pytest.approx(0.15)]
    await batcher.aclose()


async def test_deadline_counts_from_the_first_item():
    """A late arrival joins the batch but does not extend its deadline."""
    clock = ManualClock()
    handler = Recorder(clock=clock)
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=300, clock=clock)
    first = asyncio.create_task(batcher.submit(1))
    await settle(lambda: clock.sleepers == 1)
    clock.advance(0.2)
    second = asyncio.create_task(batcher.submit(2))
    await settle(lambda: batcher.queued == 2)
    clock.advance(0.1)  # 0.3 s after the first item, 0.1 s after the second
    await settle(lambda: first.done() and second.done())
    assert handler.batches == [[1, 2]]
    assert handler.times == [pytest.approx(0.3)]  # not 0.2 + 0.3
    await batcher.aclose()


@pytest.mark.parametrize(
    ("items", "max_batch", "expected"),
    [
        ([1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]),  # split in order, last one partial
        ([1, 2, 3], 3, [[1, 2, 3]]),  # exactly one full batch
        ([1], 1, [[1]]),  # max_batch 1: no batching at all
    ],
)
async def test_max_batch_splits_in_order(items, max_batch, expected):
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=max_batch, max_wait_ms=20)
    assert await batcher.submit_many(items) == [x * 10 for x in items]
    assert handler.batches == expected
    await batcher.aclose()


async def test_queue_bound_raises_queue_full_and_reports_depth():
    handler = Recorder(hold=True)
    observer = RecordingObserver()
    batcher = MicroBatcher(handler, max_batch=1, max_wait_ms=0, max_queue=2, observer=observer)
    running = asyncio.create_task(batcher.submit(1))  # taken by the (held) handler
    await settle(lambda: handler.batches)
    queued = asyncio.create_task(batcher.submit_many([2, 3]))  # fills the queue
    await settle(lambda: batcher.queued == 2)
    assert observer.depths[-1] == 2
    with pytest.raises(QueueFull) as info:
        await batcher.submit(4)
    assert (info.value.waiting, info.value.asked, info.value.max_queue) == (2, 1, 2)
    assert batcher.queued == 2  # refused whole: nothing of it was queued
    handler.release.set()
    assert await running == 10 and await queued == [20, 30]
    assert observer.depths[-1] == 0
    await batcher.aclose()


async def test_request_larger_than_the_whole_queue_never_fits():
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait_ms=0, max_queue=3)
    with pytest.raises(TooManyItems) as info:
        await batcher.submit_many([1, 2, 3, 4])
    assert (info.value.asked, info.value.max_queue) == (4, 3)
    assert batcher.queued == 0  # refused whole: nothing was queued
    await batcher.aclose()


class JudgeDown(Exception):
    pass


async def test_handler_error_reaches_every_caller_of_that_batch_only():
    calls = []

    async def flaky(items):
        calls.append(items)
        if len(calls) == 1:
            raise JudgeDown("judge down")
        return items

    batcher = MicroBatcher(flaky, max_batch=8, max_wait_ms=50)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert calls[0] == [1, 2]
    assert all(isinstance(r, JudgeDown) for r in results)
    assert await batcher.submit(3) == 3  # the next batch is unaffected
    await batcher.aclose()


async def test_return_exceptions_keeps_the_results_of_other_batches():
    """Items split over two batches, the first fails: the second's results still come."""

    async def first_fails(items):
        if 1 in items:
            raise JudgeDown("first batch")
        return [x * 10 for x in items]

    batcher = MicroBatcher(first_fails, max_batch=2, max_wait_ms=0)
    out = await batcher.submit_many([1, 2, 3, 4], return_exceptions=True)
    assert isinstance(out[0], JudgeDown) and isinstance(out[1], JudgeDown)
    assert out[2:] == [30, 40]
    with pytest.raises(JudgeDown):  # without it, the first error is raised
        await batcher.submit_many([1, 2, 3, 4])
    await batcher.aclose()


async def test_wrong_length_from_handler_is_an_error():
    async def short(items):
        return items[:-1]

    batcher = MicroBatcher(short, max_batch=8, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="2 items"):
        await batcher.submit_many([1, 2])
    await batcher.aclose()


async def test_cancelled_caller_is_dropped_from_its_batch():
    clock = ManualClock()
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=100, clock=clock)
    gone = asyncio.create_task(batcher.submit(1))
    await settle(lambda: clock.sleepers == 1)
    gone.cancel()
    await settle(gone.done)
    kept = asyncio.create_task(batcher.submit(2))
    await settle(lambda: batcher.queued == 2)
    clock.advance(0.1)
    await settle(kept.done)
    assert kept.result() == 20
    assert handler.batches == [[2]]
    await batcher.aclose()


async def test_concurrency_runs_batches_in_parallel_and_the_observer_counts_them():
    clock = ManualClock()
    handler = Recorder(hold=True)
    observer = RecordingObserver()
    batcher = MicroBatcher(handler, max_batch=2, max_wait_ms=0, concurrency=2,
                           observer=observer, clock=clock)
    task = asyncio.create_task(batcher.submit_many([1, 2, 3, 4]))
    await settle(lambda: len(handler.batches) == 2)
    assert handler.max_running == 2
    assert observer.started == [2, 2] and observer.finished == []
    clock.advance(0.5)  # the handler takes half a second on the batcher's clock
    handler.release.set()
    assert await task == [10, 20, 30, 40]
    assert observer.finished == [(2, 0.5), (2, 0.5)]
    await batcher.aclose()


async def test_aclose_fails_waiting_callers():
    handler = Recorder(hold=True)
    batcher = MicroBatcher(handler, max_batch=1, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(1))
    second = asyncio.create_task(batcher.submit(2))
    await settle(lambda: handler.batches and batcher.queued == 1)
    await batcher.aclose()
    for task in (first, second):  # the running batch and the queued item
        with pytest.raises(BatcherClosed):
            await task
    with pytest.raises(BatcherClosed):
        await batcher.submit(3)


def test_survives_a_new_event_loop():
    """The app and tests may drive one batcher from successive loops."""
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait_ms=1)
    assert asyncio.run(batcher.submit(1)) == 10
    assert asyncio.run(batcher.submit(2)) == 20

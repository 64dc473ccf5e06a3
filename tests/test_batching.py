"""MicroBatcher: concurrent callers share batches, deadlines hold, the queue is bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from reward_server.batching import MicroBatcher
from reward_server.errors import PayloadTooLarge, ScorerUnavailable
from reward_server.metrics import Metrics


class Recorder:
    """A handler that records each batch it gets and can be held until released."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.running = 0
        self.max_running = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.release.wait()
            return [x * 10 for x in items]
        finally:
            self.running -= 1


async def test_two_concurrent_calls_are_batched_together():
    """Fails if two concurrent callers are not served by one handler call.

    The second caller arrives 30 ms after the first, so only waiting for batch-mates (up
    to max_wait_ms) puts them together; a batcher that sent at once would split them.
    """
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=150)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.03)
    a, b = await asyncio.gather(first, batcher.submit(2))
    assert (a, b) == (10, 20)
    assert handler.batches == [[1, 2]]
    await batcher.aclose()


async def test_full_batch_goes_without_waiting_for_the_deadline():
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=3, max_wait_ms=5000)
    start = time.monotonic()
    assert await batcher.submit_many([1, 2, 3]) == [10, 20, 30]
    assert time.monotonic() - start < 1.0  # did not sit out the 5 s deadline
    await batcher.aclose()


async def test_lone_item_waits_for_the_deadline_then_goes():
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=150)
    start = time.monotonic()
    assert await batcher.submit(4) == 40
    elapsed = time.monotonic() - start
    assert 0.12 <= elapsed < 1.0, elapsed
    await batcher.aclose()


async def test_deadline_counts_from_the_first_item():
    """A late arrival joins the batch but does not extend its deadline."""
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=300)
    start = time.monotonic()
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.gather(first, second)
    assert handler.batches == [[1, 2]]
    assert time.monotonic() - start < 0.45  # ~0.3 s, not 0.2 + 0.3
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


async def test_queue_bound_raises_scorer_unavailable():
    handler = Recorder(hold=True)
    metrics = Metrics()
    batcher = MicroBatcher(handler, max_batch=1, max_wait_ms=0, max_queue=2, metrics=metrics)
    running = asyncio.create_task(batcher.submit(1))  # taken by the (held) handler
    while not handler.batches:
        await asyncio.sleep(0.001)
    queued = asyncio.create_task(batcher.submit_many([2, 3]))  # fills the queue
    await asyncio.sleep(0.01)
    assert batcher.queued == 2
    assert metrics.judge_queue._value.get() == 2
    with pytest.raises(ScorerUnavailable) as info:
        await batcher.submit(4)
    assert "REWARD_JUDGE_MAX_QUEUE=2" in info.value.message
    assert info.value.retry_after >= 1
    handler.release.set()
    assert await running == 10 and await queued == [20, 30]
    assert metrics.judge_queue._value.get() == 0
    await batcher.aclose()


async def test_request_larger_than_the_whole_queue_is_413_not_retryable():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=4, max_wait_ms=0, max_queue=3)
    with pytest.raises(PayloadTooLarge, match="REWARD_JUDGE_MAX_QUEUE=3"):
        await batcher.submit_many([1, 2, 3, 4])
    assert batcher.queued == 0  # refused whole: nothing was queued
    await batcher.aclose()


async def test_handler_error_reaches_every_caller_of_that_batch_only():
    calls = []

    async def flaky(items):
        calls.append(items)
        if len(calls) == 1:
            raise ScorerUnavailable("judge down", 7)
        return items

    batcher = MicroBatcher(flaky, max_batch=8, max_wait_ms=50)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, ScorerUnavailable) and r.retry_after == 7 for r in results)
    assert await batcher.submit(3) == 3  # the next batch is unaffected
    await batcher.aclose()


async def test_wrong_length_from_handler_is_an_error():
    async def short(items):
        return items[:-1]

    batcher = MicroBatcher(short, max_batch=8, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="2 items"):
        await batcher.submit_many([1, 2])
    await batcher.aclose()


async def test_cancelled_caller_is_dropped_from_its_batch():
    handler = Recorder()
    batcher = MicroBatcher(handler, max_batch=8, max_wait_ms=100)
    gone = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    gone.cancel()
    assert await batcher.submit(2) == 20
    assert handler.batches == [[2]]
    await batcher.aclose()


async def test_concurrency_runs_batches_in_parallel_and_metrics_count_them():
    handler = Recorder(hold=True)
    metrics = Metrics()
    batcher = MicroBatcher(handler, max_batch=2, max_wait_ms=0, concurrency=2, metrics=metrics)
    task = asyncio.create_task(batcher.submit_many([1, 2, 3, 4]))
    while len(handler.batches) < 2:
        await asyncio.sleep(0.001)
    assert handler.max_running == 2
    handler.release.set()
    assert await task == [10, 20, 30, 40]
    sample = {s.name: s.value for m in metrics.judge_batch.collect() for s in m.samples}
    assert sample["reward_judge_batch_size_count"] == 2
    assert sample["reward_judge_batch_size_sum"] == 4
    await batcher.aclose()


async def test_aclose_fails_waiting_callers():
    handler = Recorder(hold=True)
    batcher = MicroBatcher(handler, max_batch=1, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(1))
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    await batcher.aclose()
    for task in (first, second):
        with pytest.raises(ScorerUnavailable):
            await task
    with pytest.raises(ScorerUnavailable):
        await batcher.submit(3)


def test_survives_a_new_event_loop():
    """The app and tests may drive one batcher from successive loops."""
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait_ms=1)
    assert asyncio.run(batcher.submit(1)) == 10
    assert asyncio.run(batcher.submit(2)) == 20

"""A clock that moves only when the test says so, for code that waits on deadlines.

It implements ``reward_server.batching.Clock``: ``now()`` reads the manual time and
``sleep(seconds)`` returns once :meth:`ManualClock.advance` has moved the time past the
sleeper's deadline. Tests then assert on deadlines exactly ("the batch left at 0.3 s,
not 0.5 s") with no wall-clock bound, however slow the machine.

``settle(predicate)`` runs the event loop until ``predicate()`` holds, bounded by a
number of loop turns rather than by seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ManualClock:
    """Manual time (starts at 0.0) with sleepers woken by :meth:`advance`."""

    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.time + seconds, future))
        await future

    @property
    def sleepers(self) -> int:
        """Sleeps still waiting (cancelled ones excluded)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        self.time += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self.time + 1e-12]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.time + 1e-12]
        for _, future in due:
            if not future.done():
                future.set_result(None)


async def settle(predicate: Callable[[], object], turns: int = 1000) -> None:
    """Run the loop until ``predicate()`` is true; fail after ``turns`` loop turns."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"condition not reached within {turns} event-loop turns")

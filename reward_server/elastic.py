"""Slots that a stuck holder gives back: a bound on concurrent work that one slow call
cannot turn into a stall for everyone.

Why: the judge's work is bounded twice, by the batches that may run at once and by the HTTP
calls in flight. With plain semaphores, four hung judge calls would hold all four batch
slots and a healthy sample arriving a second later would wait until they timed out (two
minutes at the default timeout), although the judge had capacity to spare. Here a holder
that has run much longer than work usually takes is *stalled*: its slot goes back to the
pool while it keeps running (its own deadline still ends it). How many may be stalled at
once is bounded too, so a judge that hangs every call costs at most ``size + max_stalled``
calls in flight.

"Much longer than usual" is measured, not configured: four times the 90th percentile of
the last 64 holds that finished, never less than ``floor_s`` and never more than
``ceiling_s`` (until a hold has finished, ``ceiling_s``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ElasticSlots", "Hold"]

_WINDOW = 64
_FACTOR = 4.0


class Hold:
    """One acquired slot; :meth:`release` it when the work ends (once)."""

    __slots__ = ("_done", "_pool", "_stalled", "_started", "_timer")

    def __init__(self, pool: ElasticSlots, started: float) -> None:
        self._pool = pool
        self._started = started
        self._stalled = False
        self._done = False
        self._timer: asyncio.TimerHandle | None = None

    def release(self) -> None:
        """Give the slot back (if it was not given back when the work stalled)."""
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
        self._pool._finished(self)


class ElasticSlots:
    """``size`` slots, plus up to ``max_stalled`` for holders that stalled (see the module
    docstring).

    Args:
        size: slots for work that runs as usual.
        max_stalled: holders that may have given their slot back at once.
        floor_s / ceiling_s: bounds of the stall time.
    """

    def __init__(self, size: int, max_stalled: int, floor_s: float, ceiling_s: float) -> None:
        if size < 1 or max_stalled < 0 or not 0 < floor_s <= ceiling_s:
            raise ValueError("size >= 1, max_stalled >= 0 and 0 < floor_s <= ceiling_s")
        self.max_stalled = max_stalled
        self.floor_s = floor_s
        self.ceiling_s = ceiling_s
        self.stalled = 0
        self._free = asyncio.Semaphore(size)
        self._durations: deque[float] = deque(maxlen=_WINDOW)

    @property
    def stall_after_s(self) -> float:
        """How long a holder runs before it counts as stalled."""
        if not self._durations:
            return self.ceiling_s
        ordered = sorted(self._durations)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return min(self.ceiling_s, max(self.floor_s, _FACTOR * p90))

    async def acquire(self) -> Hold:
        """Wait for a slot."""
        await self._free.acquire()
        loop = asyncio.get_running_loop()
        hold = Hold(self, loop.time())
        if self.max_stalled:
            hold._timer = loop.call_later(self.stall_after_s, self._stall, hold)
        return hold

    @asynccontextmanager
    async def held(self) -> AsyncIterator[Hold]:
        """A slot for the ``async with`` block."""
        hold = await self.acquire()
        try:
            yield hold
        finally:
            hold.release()

    def _stall(self, hold: Hold) -> None:
        if hold._done or hold._stalled:
            return
        if self.stalled >= self.max_stalled:  # too many stuck already: keep the slot, look again
            hold._timer = asyncio.get_running_loop().call_later(self.floor_s, self._stall, hold)
            return
        hold._stalled = True
        self.stalled += 1
        self._free.release()

    def _finished(self, hold: Hold) -> None:
        if hold._stalled:
            self.stalled -= 1
            return  # its slot went back when it stalled; a stall is not a usual duration
        self._durations.append(asyncio.get_running_loop().time() - hold._started)
        self._free.release()

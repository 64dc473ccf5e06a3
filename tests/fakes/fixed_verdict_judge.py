"""An in-process judge with fixed verdicts: the network edge replaced for unit tests."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from reward_server.availability import Readiness


class FixedVerdictJudge:
    """A judge engine that returns ``verdict`` for every sample after ``delay_s``.

    It counts the samples it was asked (``calls``) and the size of each batch (``batches``).
    """

    model = "scripted"
    mode = "generate"
    identity: ClassVar[dict[str, str]] = {"model": "scripted", "mode": "generate", "prompt": "t"}

    def __init__(self, verdict, delay_s: float = 0.0) -> None:
        self.verdict = verdict
        self.delay_s = delay_s
        self.calls = 0
        self.batches: list[int] = []

    def readiness(self):
        return Readiness(True, "scripted")

    async def start(self):
        pass

    async def aclose(self):
        pass

    async def judge(self, samples, rubric=None):
        self.calls += len(samples)
        self.batches.append(len(samples))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return [self.verdict for _ in samples]

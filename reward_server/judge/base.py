"""What the scorers need from a judge, whatever runs it.

A ``Judge`` takes samples and returns, per sample, either a ``JudgeVerdict`` or a string
saying why there is none (unparseable answer after the retry, say). Whole-judge outages
raise ``ScorerUnavailable`` so the request answers 503 instead of a column of failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reward_server.domain import Sample
from reward_server.scorers.safer_vlm import JudgeVerdict


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    detail: str


@runtime_checkable
class Judge(Protocol):
    """A configured judge. ``identity`` goes into ``rubric_version`` and the cache key."""

    @property
    def model(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def identity(self) -> dict[str, str]:
        """Model, mode and prompt version: everything that changes what the judge says."""
        ...

    def readiness(self) -> Readiness: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def judge(self, samples: Sequence[Sample]) -> list[JudgeVerdict | str]: ...

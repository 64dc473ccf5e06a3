"""What the scorers need from a judge, whatever runs it.

A ``Judge`` takes samples and the rubric to grade them on (the profile's; the built-in
``SAFER_VLM`` by default) and returns, per sample, either a ``JudgeVerdict`` or a string
saying why the answer that arrived could not be used (unparseable after the retry, a
prompt the judge rejected with a 4xx). A judge that cannot answer raises
``ScorerUnavailable`` so the request answers 503 instead of a column of failures: the
whole judge is down or loading, or, as ``PartialOutage``, some of the calls timed out or
lost their connection (the answered verdicts ride along in ``answered``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from reward_server.availability import Readiness
from reward_server.domain import Sample
from reward_server.rubric import SAFER_VLM, JudgeVerdict, Rubric


@runtime_checkable
class Judge(Protocol):
    """A configured judge. ``identity`` goes into ``rubric_version`` and the cache key."""

    @property
    def model(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def identity(self) -> dict[str, str]:
        """Model, mode and the built-in rubric's prompt version: what changes what the judge
        says (another rubric's prompt version is part of its profile's ``rubric_version``)."""
        ...

    def readiness(self) -> Readiness: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def judge(
        self, samples: Sequence[Sample], rubric: Rubric = SAFER_VLM
    ) -> list[JudgeVerdict | str]: ...

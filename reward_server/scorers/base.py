"""The scorer contract: one batch in, a same-length list of results out, failures visible."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from reward_server.availability import Readiness
from reward_server.domain import Sample, ScoreResult
from reward_server.profiles import Profile


class ProfileScorer(ABC):
    """Scores samples under one profile.

    Attributes:
        profile: the configuration this scorer runs.
        rubric_version: hash of that configuration plus everything outside it that
            changes rewards; part of every cache key.
        uses_judge: whether judge identity belongs in the cache key.
    """

    uses_judge: bool = False
    inline: bool = False  # True: ``score_inline`` runs synchronously on the event loop

    def __init__(self, profile: Profile, rubric_version: str | Callable[[], str]) -> None:
        self.profile = profile
        self._version = rubric_version

    @property
    def rubric_version(self) -> str:
        """The version now: a judge's identity may change while the service runs (the
        server behind ``REWARD_JUDGE_BASE_URL`` restarted on another checkpoint), and with
        it this version and every cache key."""
        return self._version if isinstance(self._version, str) else self._version()

    @property
    def name(self) -> str:
        return self.profile.name

    def readiness(self) -> Readiness:
        """Whether every scorer this profile needs can score now (503 otherwise)."""
        return Readiness(True, "rules run in process")

    def unscorable(self, sample: Sample) -> str | None:
        """Why this sample cannot be scored as given (labels missing), or ``None``."""
        return None

    def score_inline(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        """Synchronous scoring for ``inline`` scorers (microseconds per sample, no I/O)."""
        raise NotImplementedError(f"{type(self).__name__} is not an inline scorer")

    @abstractmethod
    async def score(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        """Score samples that passed ``unscorable``; return one result per sample, in order."""

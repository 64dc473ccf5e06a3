"""Whether a scorer can score now, and what it raises when it cannot score everything.

``Readiness`` is what every scorer and the judge report for ``GET /ready`` (and what the
service checks before scoring). ``PartialOutage`` is the ``ScorerUnavailable`` (503 +
Retry-After) raised when the judge answered some samples of a request but failed on
others (a call that timed out or lost its connection): the request must be retried, yet
the answers that did arrive are carried along in ``answered`` so the service can cache
them and the retry only pays for what was missing.

Here rather than in ``judge`` or ``scorers`` because both raise and read these, and the
service reads them too: a leaf module keeps the imports one-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from reward_server.errors import ScorerUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Readiness:
    """``ready`` and a human-readable ``detail`` (why not, or what is serving)."""

    ready: bool
    detail: str


class PartialOutage(ScorerUnavailable, Generic[T]):
    """A 503 that still carries what was answered: ``answered[i]`` for item ``i``, or ``None``.

    The judge raises it with verdicts (``JudgeVerdict | str``), the scorers with
    ``ScoreResult``s; each level maps the answered items and raises it again.
    """

    def __init__(
        self, message: str, answered: Sequence[T | None], retry_after: int = 5
    ) -> None:
        super().__init__(message, retry_after)
        self.answered: list[T | None] = list(answered)

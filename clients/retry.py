"""When to send a request again and how long to wait first (no I/O, no sleeping).

The clients' send loops ask ``RetryPolicy.delay`` after each failed attempt and sleep the
answer themselves (``time.sleep`` or ``asyncio.sleep``), so the policy is the same for both
and testable without a clock.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    Retried: connection errors, timeouts and 503 (the contract's "scorer unavailable"),
    never a 4xx, nor a 503 the service gives because it has no judge at all
    (``RewardServiceError.permanent``). The wait is exponential backoff with jitter,
    ``backoff * 2**attempt`` capped at ``max_backoff`` and scaled by a random factor in
    [0.5, 1]; a ``Retry-After`` from the service replaces it (plus up to 10% jitter, so
    clients told the same number do not come back in lockstep), capped at
    ``max_retry_after``.

    Args:
        max_retries: retries after the first attempt (0 = one attempt only).
        backoff: first wait in seconds.
        max_backoff: cap of the exponential wait.
        max_retry_after: cap of a ``Retry-After`` wait.

    >>> p = RetryPolicy(max_retries=2, backoff=1.0)
    >>> from clients.errors import RewardServiceError
    >>> p.delay(0, RewardServiceError(422, "bad")) is None   # never retry a 4xx
    True
    >>> p.delay(0, RewardServiceError(503, "loading", retry_after=3)) >= 3
    True
    >>> p.delay(2, RewardServiceError(503, "loading")) is None  # retries used up
    True
    >>> p.delay(0, RewardServiceError(503, "no judge configured")) is None  # waiting cannot help
    True
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(
        self, attempt: int, error: BaseException, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or ``None`` to give up."""
        if attempt >= self.max_retries or not getattr(error, "retryable", False):
            return None
        rng = rng or random
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = min(float(retry_after), self.max_retry_after)
            return wait + rng.uniform(0, 0.1 * wait)
        wait = min(self.max_backoff, self.backoff * 2**attempt)
        return wait * rng.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` if absent/garbled.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))

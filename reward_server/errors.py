"""One exception tree for the service; HTTP statuses are chosen in one place.

    RewardError
    ├── BadRequest (400)            e.g. UnknownProfile
    ├── PayloadTooLarge (413)       too many samples, too long a response, too big an image
    ├── Unprocessable (422)         a field with a wrong value that pydantic could not catch
    ├── Unauthorized (401)
    └── ScorerUnavailable (503)     judge down or loading, queue full; carries Retry-After

Per-sample problems are not exceptions: they become ``invalid`` results so that one bad
sample never fails its neighbours.
"""

from __future__ import annotations


class RewardError(Exception):
    """Base of every error the service turns into an HTTP answer."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RewardError):
    status_code = 400


class UnknownProfile(BadRequest):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown profile {name!r}; expected one of {sorted(known)}")


class PayloadTooLarge(RewardError):
    status_code = 413


class Unprocessable(RewardError):
    status_code = 422


class Unauthorized(RewardError):
    status_code = 401


class ScorerUnavailable(RewardError):
    """A scorer the profile needs cannot score now; the client should retry later."""

    status_code = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

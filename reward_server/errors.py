"""One exception tree for the service. The errors say what went wrong, never how to answer it.

    RewardError
    ├── BadRequest                  the request asks for something that does not exist
    │   └── UnknownProfile
    ├── PayloadTooLarge             too many samples, too long a query, too big an image
    ├── Unprocessable               a field with a wrong value that pydantic could not catch
    ├── Unauthorized                missing or wrong API key
    └── ScorerUnavailable           judge down or loading, queue full, a judge call timed
        │                           out; carries ``retry_after``
        └── PartialOutage           (in ``availability``) some samples were answered: they
                                    ride along in ``answered`` and the service caches them

Which HTTP status (and headers) each becomes is decided in one function at the API
boundary, ``reward_server.api.errors.to_http``; nothing below the API knows about HTTP.

Per-sample problems are not exceptions: they become ``invalid`` results so that one bad
sample never fails its neighbours.
"""

from __future__ import annotations


class RewardError(Exception):
    """Base of every error the service reports to its caller (anything else is a bug)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RewardError):
    """The request names something that does not exist."""


class UnknownProfile(BadRequest):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown profile {name!r}; expected one of {sorted(known)}")


class PayloadTooLarge(RewardError):
    """A limit of the service (a ``REWARD_MAX_*`` setting, named in the message) is exceeded."""


class Unprocessable(RewardError):
    """The body parsed, but its values do not fit together (columns of different lengths)."""


class Unauthorized(RewardError):
    """``REWARD_API_KEY`` is set and the request does not carry it."""


class ScorerUnavailable(RewardError):
    """A scorer the profile needs cannot score now; the client should retry later.

    Args:
        message: why, for the client.
        retry_after: seconds the client should wait before retrying.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

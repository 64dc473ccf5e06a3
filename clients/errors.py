"""The one exception tree of the clients. Everything a client raises is a ``RewardClientError``.

```
RewardClientError
├── RewardServiceError(status, message)   the service answered with an error status
│                                          (or a 200 whose body does not fit the contract)
├── RewardTimeout                          no answer in time; the message names the URL
├── RewardConnectionError                  cannot connect, or the connection broke
└── InvalidSampleError                     a sample the client cannot send (bad image, no response)
```

``RewardTimeout`` is also a ``TimeoutError``, ``RewardConnectionError`` a ``ConnectionError`` and
``InvalidSampleError`` a ``ValueError``, so callers that catch the builtins keep working.

httpx's exceptions are translated in one place, ``map_httpx_errors``, with ``raise … from exc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

__all__ = [
    "InvalidSampleError",
    "RewardClientError",
    "RewardConnectionError",
    "RewardServiceError",
    "RewardTimeout",
    "map_httpx_errors",
]


class RewardClientError(Exception):
    """Base class of every error raised by ``clients``."""

    #: Whether sending the same request again may succeed (used by the retry policy).
    retryable: bool = False


class RewardServiceError(RewardClientError):
    """The service answered with an error status (``{"error": msg}`` body).

    Args:
        status: HTTP status code (401, 400, 413, 422, 503, ...).
        message: the service's ``error`` text (or the start of a non-JSON body).
        url: the URL that answered.
        retry_after: seconds from the ``Retry-After`` header, when the service sent one.
    """

    def __init__(
        self, status: int, message: str, url: str = "", retry_after: float | None = None
    ) -> None:
        self.status = status
        self.message = message
        self.url = url
        self.retry_after = retry_after
        where = f" from {url}" if url else ""
        super().__init__(f"HTTP {status}{where}: {message}")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        # 503 is the contract's "scorer unavailable, come back later"; every 4xx is the
        # caller's mistake and sending it again cannot help.
        return self.status == 503

    def __reduce__(self):  # keep picklable across processes (multiprocessing, Ray)
        return (type(self), (self.status, self.message, self.url, self.retry_after))


class RewardTimeout(RewardClientError, TimeoutError):
    """No answer within the client's ``timeout``; the message names the URL."""

    retryable = True


class RewardConnectionError(RewardClientError, ConnectionError):
    """The service cannot be reached, or it dropped the connection."""

    retryable = True


class InvalidSampleError(RewardClientError, ValueError):
    """A sample cannot be turned into a request (the message names the field)."""


@contextmanager
def map_httpx_errors(url: str, timeout: float | None) -> Iterator[None]:
    """Translate httpx transport exceptions into this tree.

    Timeouts and network errors are retryable; a URL httpx cannot use (bad scheme) is not.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__
        raise RewardTimeout(
            f"no answer from {url} within timeout={timeout}s ({kind})"
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        err = RewardConnectionError(f"cannot use URL {url}: {exc}")
        err.retryable = False
        raise err from exc
    except httpx.TransportError as exc:
        raise RewardConnectionError(
            f"cannot reach {url}: {exc or type(exc).__name__}"
        ) from exc

"""The one exception tree of the clients. Everything a client raises is a ``RewardClientError``.

```
RewardClientError
├── RewardServiceError(status, message)   the service answered with an error status
│                                          (or a 200 whose body does not fit the contract);
│                                          ``permanent`` when only its operator can fix it
├── RewardTimeout                          no answer in time; the message names the URL
├── RewardConnectionError                  cannot connect, or the connection broke
└── InvalidSampleError                     a sample the client cannot send (no response, unknown
    │                                      field, not an object): raised, nothing is sent
    └── SampleDataError                    its labels or images break the contract: never raised
                                           by ``score``; that sample alone gets an ``invalid``
                                           ``Result`` (reward ``None``), as the service would do
```

``RewardTimeout`` is also a ``TimeoutError``, ``RewardConnectionError`` a ``ConnectionError`` and
``InvalidSampleError`` a ``ValueError``, so callers that catch the builtins keep working.

httpx's exceptions are translated in one place, ``map_httpx_errors``, with ``raise … from exc``.
The service names a bad sample by its place in one request (``samples[1]``);
``rename_samples`` rewrites such references (to the caller's index, or a file's line).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

__all__ = [
    "PERMANENT_503_REASONS",
    "InvalidSampleError",
    "RewardClientError",
    "RewardConnectionError",
    "RewardServiceError",
    "RewardTimeout",
    "SampleDataError",
    "map_httpx_errors",
    "rename_samples",
]


#: What the service says in a 503 that waiting cannot fix: the profile needs a judge and the
#: service was started without one (``REWARD_JUDGE_BACKEND=none``). The service sends it as
#: a 503 with ``Retry-After`` like a judge that is loading, so the client tells them apart
#: by these words of its ``error`` text.
PERMANENT_503_REASONS: tuple[str, ...] = ("no judge configured",)


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
    def permanent(self) -> bool:
        """A 503 that sending again cannot fix (``PERMANENT_503_REASONS``: no judge
        configured); the service's operator, or another profile, can.

        >>> RewardServiceError(503, "profile safer_vlm cannot score now: no judge "
        ...                    "configured (REWARD_JUDGE_BACKEND=none)").permanent
        True
        >>> RewardServiceError(503, "judge grm: model loading").permanent
        False
        """
        return self.status == 503 and any(r in self.message for r in PERMANENT_503_REASONS)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        # 503 is the contract's "scorer unavailable, come back later", unless the service
        # has no judge at all; every 4xx is the caller's mistake and sending it again
        # cannot help.
        return self.status == 503 and not self.permanent

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


class SampleDataError(InvalidSampleError):
    """A sample's labels or images break the contract (``"maybe"``, a ``combined_tag`` key, a
    missing image file). The service makes only such a sample ``invalid``; the clients do the
    same before sending, so one bad row never fails its batch."""


_SAMPLE_REF = re.compile(r"samples\[(\d+)\](\.?)")


def rename_samples(message: str, name: Callable[[int, bool], str | None]) -> str:
    """``message`` with each ``samples[k]`` (optionally followed by ``.``) replaced by
    ``name(k, dotted)``; a reference ``name`` returns ``None`` for is left as it was.

    >>> rename_samples("samples[1].response: too long", lambda k, dot: f"line {k + 7}: ")
    'line 8: response: too long'
    """

    def sub(match: re.Match[str]) -> str:
        new = name(int(match[1]), bool(match[2]))
        return match[0] if new is None else new

    return _SAMPLE_REF.sub(sub, message)


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

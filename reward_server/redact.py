"""Credentials kept out of every message the service shows.

A judge URL may carry them (``http://user:pass@judge/v1``), and the judge's API key is a
setting. Neither may reach ``/ready`` (unauthenticated), a 503's message, a log line or a
``rubric_version`` a client sees. So the credentials are taken out of a URL where it is
read (:func:`split_userinfo`: the URL without them, and the pair for HTTP basic auth),
and any text that might echo one (an exception's message) passes :func:`scrub`.

>>> split_userinfo("http://ann:s3cret@judge:8000/v1")
('http://judge:8000/v1', ('ann', 's3cret'))
>>> scrub("401 from http://ann:s3cret@judge/v1 with key sk-1", ["s3cret", "sk-1"])
'401 from http://ann:***@judge/v1 with key ***'
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["scrub", "split_userinfo"]


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that pair (``None`` without one)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret (and its URL-quoted form) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

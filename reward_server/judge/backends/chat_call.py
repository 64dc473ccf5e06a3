"""One ``POST /chat/completions`` to an OpenAI-compatible server, with retries.

The one home of the retry policy for talking to a judge over HTTP: the service's ``openai``
backend and the evaluation judge (``trainer.eval.judge``) both call :func:`post_chat`, with
their own attempt counts and backoff.

What an outcome means:

* a ``dict``: the server's JSON reply;
* :class:`NoAnswer`: no usable answer arrived after the retries (connection errors,
  429/5xx, or a timeout, which is retried only with ``retry_timeouts``): the judge failed;
* :class:`Failure`: an answer arrived and says this request cannot be served (a 4xx other
  than the ones below, or a body that is not JSON);
* :class:`ChatRefused` (raised): 401, 403 or 404: a wrong key or a model the server does
  not serve, which no retry and no other sample can fix.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import httpx

from reward_server.judge.backends.base import Failure, NoAnswer
from reward_server.judge.backends.openai_wire import error_message

__all__ = ["ChatRefused", "post_chat"]


class ChatRefused(Exception):
    """The server refused the credentials or the model (401, 403, 404)."""


async def post_chat(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    attempts: int,
    backoff_s: float,
    timeout_hint: str,
    jitter: bool = True,
    retry_timeouts: bool = False,
    gate: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    headers: dict[str, str] | None = None,
    on_attempt: Callable[[], None] | None = None,
) -> dict[str, Any] | Failure | NoAnswer:
    """Send ``body`` to ``url`` up to ``attempts`` times (see the module docstring).

    Args:
        backoff_s: wait before the second try; it doubles each try (times 1–2 with ``jitter``).
        timeout_hint: names the timeout in a ``NoAnswer`` reason (e.g.
            ``REWARD_JUDGE_TIMEOUT_S=120``), so the operator knows which knob to turn.
        gate: makes the context held around each send (the service's bound on calls in
            flight).
        on_attempt: called before each send (a counter for tests and logs).

    Raises:
        ChatRefused: on 401, 403 or 404.
    """
    missing: NoAnswer | None = None
    for attempt in range(attempts):
        if attempt:
            factor = 1 + random.random() if jitter else 1.0
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1) * factor)
        if on_attempt is not None:
            on_attempt()
        try:
            async with gate() if gate is not None else nullcontext():
                response = await client.post(url, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            missing = NoAnswer(f"unreachable: {url}: {type(exc).__name__}: {exc}", "connect")
            continue
        except httpx.TimeoutException as exc:
            missing = NoAnswer(f"no answer within {timeout_hint} s ({type(exc).__name__})",
                               "timeout")
            if retry_timeouts:
                continue
            return missing
        except httpx.TransportError as exc:
            missing = NoAnswer(f"connection to {url} failed: {type(exc).__name__}: {exc}",
                               "transport")
            continue
        code = response.status_code
        if code < 400:
            try:
                return response.json()
            except ValueError:
                return Failure("judge answered with invalid JSON", "bad_response")
        message = error_message(response)
        if code == 429 or code >= 500:
            missing = NoAnswer(f"HTTP {code} after {attempts} tries: {message}", "server")
            continue
        if code in (401, 403, 404):
            raise ChatRefused(f"HTTP {code} from {url}: {message}")
        return Failure(f"judge rejected the request (HTTP {code}): {message}", "rejected")
    assert missing is not None
    return missing

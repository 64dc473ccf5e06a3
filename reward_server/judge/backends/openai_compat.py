"""``REWARD_JUDGE_BACKEND=openai``: any OpenAI-compatible server, e.g. ``vllm serve``.

Calls ``POST {base}/chat/completions`` through one pooled ``httpx.AsyncClient``; images go
as data URLs. ``REWARD_JUDGE_BASE_URL`` may be given with or without the ``/v1`` suffix.

* ``generate``: ``temperature=0``, ``max_tokens=REWARD_JUDGE_MAX_NEW_TOKENS``.
* ``logprob``: the judge conversation plus an assistant message holding the prefix,
  ``max_tokens=1``, ``logprobs=true``, ``top_logprobs=20`` and vLLM's
  ``continue_final_message=true, add_generation_prompt=false`` (so the server continues
  the prefix instead of opening a new turn). A score token outside the top 20 counts as
  probability 0; for a judge that has learnt the format the score tokens hold nearly all
  the mass at that position. The prefix ends with a space, which suits tokenizers that
  keep digits apart from spaces (Qwen, Llama 3); the in-process backends check this
  against the real tokenizer instead.

Failures: connect errors, 5xx and 429 are retried with exponential backoff
(``MAX_ATTEMPTS`` tries). A judge that cannot be connected to, rejects the key or does not
serve the model raises ``ScorerUnavailable`` (HTTP 503 + Retry-After) and marks the
backend unreachable until the background probe (``GET {base}/models``, falling back to
``GET /health``) sees it again. Other 4xx answers (a prompt longer than the judge's
context, say) fail only their own sample. Read timeouts (``REWARD_JUDGE_TIMEOUT_S``) are
not retried; if every call of a batch failed that way the batch is a 503, otherwise the
timed-out samples are ``invalid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import httpx

from reward_formats.images import data_url
from reward_server.errors import ScorerUnavailable
from reward_server.judge.backends.base import (
    FAILED,
    LOADED,
    UNREACHABLE,
    Failure,
    JudgeBackend,
)
from reward_server.judge.prompts import JudgeInput
from reward_server.settings import Settings

log = logging.getLogger(__name__)

TOP_LOGPROBS = 20
MAX_ATTEMPTS = 3
BACKOFF_S = 0.25
PROBE_EVERY_S = 10.0  # while reachable
PROBE_RETRY_S = 1.0  # while not


class _Transport:
    """A call that failed below the HTTP level (or with 5xx) after its retries."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind, self.detail = kind, detail


class _Fatal(Exception):
    """The server answers but will not serve this judge (auth, unknown model)."""


def normalise_base_url(url: str) -> str:
    """``http://h:8000`` and ``http://h:8000/v1/`` both become ``http://h:8000/v1``.

    >>> normalise_base_url("http://judge:8000/")
    'http://judge:8000/v1'
    >>> normalise_base_url("http://judge:8000/v1")
    'http://judge:8000/v1'
    """
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def to_openai_messages(judge_input: JudgeInput) -> list[dict[str, Any]]:
    """Chat messages in OpenAI form: image parts as data URLs, text-only content as a string."""
    messages: list[dict[str, Any]] = []
    for message in judge_input.messages:
        parts = message["content"]
        if all(p["type"] == "text" for p in parts):
            content: Any = "".join(p["text"] for p in parts)
        else:
            content = [
                {"type": "text", "text": p["text"]}
                if p["type"] == "text"
                else {
                    "type": "image_url",
                    "image_url": {"url": data_url(p["image"].data, p["image"].mime)},
                }
                for p in parts
            ]
        messages.append({"role": message["role"], "content": content})
    if judge_input.assistant_prefix is not None:
        messages.append({"role": "assistant", "content": judge_input.assistant_prefix})
    return messages


def top_logprob_mass(choice: dict[str, Any], candidates: Sequence[str]) -> dict[str, float] | None:
    """Probability per candidate from a choice's first-token ``top_logprobs``."""
    try:
        first = choice["logprobs"]["content"][0]
    except (KeyError, IndexError, TypeError):
        return None
    entries = first.get("top_logprobs") or [first]
    wanted = set(candidates)
    mass = dict.fromkeys(candidates, 0.0)
    seen: set[str] = set()
    for entry in entries:
        token, logprob = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(logprob, int | float):
            continue
        text = token.strip()
        if text in wanted and token not in seen:
            seen.add(token)
            mass[text] += math.exp(logprob)
    return mass


class OpenAIBackend(JudgeBackend):
    """The judge behind an OpenAI-compatible HTTP API.

    Args:
        settings: ``judge_base_url``, ``judge_api_key``, ``judge_model`` (the served
            name), ``judge_timeout_s`` and ``judge_max_batch`` (connection pool size).
        transport: an ``httpx`` transport to use instead of the network (tests).
    """

    name = "openai"
    concurrency = 4  # the server batches on its side; overlap our batches with its work

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        assert settings.judge_base_url is not None  # Settings checks this at startup
        self.base_url = normalise_base_url(settings.judge_base_url)
        self.sees_images = True
        self.detail = f"connecting to {self.base_url}"
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._in_flight = max(16, settings.judge_max_batch)
        self._gate: asyncio.Semaphore | None = None
        self._wake: asyncio.Event | None = None

    def _make_client(self) -> httpx.AsyncClient:
        headers = {"Accept": "application/json"}
        if self.settings.judge_api_key:
            headers["Authorization"] = f"Bearer {self.settings.judge_api_key}"
        timeout = self.settings.judge_timeout_s
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(
                max_connections=self._in_flight, max_keepalive_connections=self._in_flight
            ),
            transport=self._transport,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._make_client()
            self._gate = asyncio.Semaphore(self._in_flight)
            self._wake = asyncio.Event()
        return self._client

    # --- readiness -------------------------------------------------------------------

    async def probe(self) -> None:
        """Ask the server once whether it serves the model; update ``state``."""
        try:
            response = await self.client.get(f"{self.base_url}/models", timeout=5.0)
        except httpx.HTTPError as exc:
            self.set_state(UNREACHABLE, f"{self.base_url}: {type(exc).__name__}: {exc}")
            return
        if response.status_code in (401, 403):
            self.set_state(FAILED, f"HTTP {response.status_code}: check REWARD_JUDGE_API_KEY")
            return
        if response.status_code == 200:
            try:
                served = [m["id"] for m in response.json().get("data", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                served = []
            if served and self.model not in served:
                self.set_state(
                    FAILED, f"model {self.model!r} is not served at {self.base_url}; "
                    f"served: {served} (REWARD_JUDGE_MODEL is the served name)"
                )
            else:
                self.set_state(LOADED, f"serving at {self.base_url}")
            return
        root = self.base_url.removesuffix("/v1")
        try:
            health = await self.client.get(f"{root}/health", timeout=5.0)
        except httpx.HTTPError as exc:
            self.set_state(UNREACHABLE, f"{root}/health: {type(exc).__name__}: {exc}")
            return
        if health.status_code == 200:
            self.set_state(LOADED, f"serving at {self.base_url}")
        else:
            self.set_state(UNREACHABLE, f"{self.base_url}/models: HTTP {response.status_code}")

    async def load(self) -> None:
        """Probe until the judge answers, then keep probing slowly (runs until closed)."""
        _ = self.client
        assert self._wake is not None
        while True:
            await self.probe()
            delay = PROBE_EVERY_S if self.state == LOADED else PROBE_RETRY_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _lost(self, detail: str) -> ScorerUnavailable:
        self.set_state(UNREACHABLE, detail)
        if self._wake is not None:
            self._wake.set()  # let the probe watch for the judge's return
        return ScorerUnavailable(f"judge {self.model} unreachable: {detail}", retry_after=5)

    # --- calls -----------------------------------------------------------------------

    async def _post(self, body: dict[str, Any]) -> dict[str, Any] | Failure | _Transport:
        url = f"{self.base_url}/chat/completions"
        assert self._gate is not None
        outcome: _Transport | None = None
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1) * (1 + random.random()))
            try:
                async with self._gate:
                    response = await self.client.post(url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                outcome = _Transport("connect", f"{type(exc).__name__}: {exc}")
                continue
            except httpx.TimeoutException as exc:
                return _Transport("timeout", f"no answer within {self.settings.judge_timeout_s}"
                                  f" s ({type(exc).__name__})")
            except httpx.TransportError as exc:
                outcome = _Transport("transport", f"{type(exc).__name__}: {exc}")
                continue
            code = response.status_code
            if code < 400:
                try:
                    return response.json()
                except ValueError:
                    return Failure("judge answered with invalid JSON", "bad_response")
            message = _error_message(response)
            if code == 429 or code >= 500:
                outcome = _Transport("server", f"HTTP {code}: {message}")
                continue
            if code in (401, 403, 404):
                raise _Fatal(f"HTTP {code} from {url}: {message}")
            return Failure(f"judge rejected the request (HTTP {code}): {message}", "rejected")
        assert outcome is not None
        return outcome

    async def _post_all(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | Failure]:
        _ = self.client
        try:
            results = await asyncio.gather(*(self._post(b) for b in bodies))
        except _Fatal as exc:
            self.set_state(FAILED, str(exc))
            if self._wake is not None:
                self._wake.set()
            raise ScorerUnavailable(f"judge {self.model} refused: {exc}", retry_after=30) from None
        transport = [r for r in results if isinstance(r, _Transport)]
        connect = [r for r in transport if r.kind in ("connect", "transport")]
        if connect:
            raise self._lost(f"{self.base_url}: {connect[0].detail}")
        if transport and len(transport) == len(results):
            raise ScorerUnavailable(
                f"judge {self.model} failed every call of a batch: {transport[0].detail}",
                retry_after=10,
            )
        return [
            Failure(f"judge call failed: {r.detail}", r.kind) if isinstance(r, _Transport) else r
            for r in results
        ]

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure]:
        bodies = [
            {
                "model": self.model,
                "messages": to_openai_messages(item),
                "temperature": 0,
                "max_tokens": max_new_tokens,
            }
            for item in inputs
        ]
        out: list[str | Failure] = []
        for data in await self._post_all(bodies):
            if isinstance(data, Failure):
                out.append(data)
                continue
            try:
                content = data["choices"][0]["message"].get("content")
            except (KeyError, IndexError, TypeError, AttributeError):
                out.append(Failure("judge answer has no choices[0].message", "bad_response"))
                continue
            out.append(content if isinstance(content, str) else "")
        return out

    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure]:
        bodies = [
            {
                "model": self.model,
                "messages": to_openai_messages(item),
                "temperature": 0,
                "max_tokens": 1,
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
                "continue_final_message": True,
                "add_generation_prompt": False,
            }
            for item in inputs
        ]
        out: list[dict[str, float] | Failure] = []
        for data in await self._post_all(bodies):
            if isinstance(data, Failure):
                out.append(data)
                continue
            try:
                choice = data["choices"][0]
            except (KeyError, IndexError, TypeError):
                choice = None
            mass = top_logprob_mass(choice, candidates) if isinstance(choice, dict) else None
            out.append(
                mass
                if mass is not None
                else Failure("judge returned no logprobs (does the server support them?)",
                             "no_logprobs")
            )
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(data)[:300]

"""``REWARD_JUDGE_BACKEND=openai``: any OpenAI-compatible server, e.g. ``vllm serve``.

Calls ``POST {base}/chat/completions`` through one pooled ``httpx.AsyncClient``; images go
as data URLs (``openai_wire`` writes the messages). ``REWARD_JUDGE_BASE_URL`` may be given
with or without the ``/v1`` suffix.

* ``generate``: ``temperature=0``, ``max_tokens=REWARD_JUDGE_MAX_NEW_TOKENS``.
* ``logprob``: the judge conversation plus an assistant message holding the prefix,
  ``max_tokens=1``, ``logprobs=true``, ``top_logprobs=20`` and vLLM's
  ``continue_final_message=true, add_generation_prompt=false`` (so the server continues
  the prefix instead of opening a new turn). A score token outside the top 20 counts as
  probability 0; for a judge that has learnt the format the score tokens hold nearly all
  the mass at that position. The prefix ends with a space, which suits tokenizers that
  keep digits apart from spaces (Qwen, Llama 3); the in-process backends check this
  against the real tokenizer instead.

Failures, per call:

* connect errors, other transport errors, 5xx and 429 are retried with exponential
  backoff (``MAX_ATTEMPTS`` tries); a read timeout (``REWARD_JUDGE_TIMEOUT_S``) is not
  retried. If the call still has no answer it is ``NoAnswer``: the judge failed, the
  request gets 503 + Retry-After (never ``invalid``). A connection failure also marks
  the backend unreachable, and any unanswered call wakes the readiness probe.
* 401, 403 and 404 (wrong key, model not served) mark the backend failed and raise
  ``ScorerUnavailable`` for the whole batch.
* Other 4xx answers (a prompt longer than the judge's context, say) are ``Failure``:
  that sample alone is ``invalid``.

Readiness: a background probe (``GET {base}/models``, falling back to ``GET /health``)
runs every ``PROBE_EVERY_S`` while the judge serves and every ``PROBE_RETRY_S`` while it
does not. It has its own small client and connection (``PROBE_TIMEOUT_S``), so scoring
traffic that fills the main pool (64 hung calls, say) can never starve it: a judge that
comes back is seen within a probe interval plus a probe timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from reward_server.elastic import ElasticSlots
from reward_server.errors import ScorerUnavailable
from reward_server.judge.backends.base import (
    FAILED,
    LOADED,
    UNREACHABLE,
    Failure,
    JudgeBackend,
    NoAnswer,
    stall_bounds,
)
from reward_server.judge.backends.chat_call import ChatRefused, post_chat
from reward_server.judge.backends.openai_wire import (
    normalise_base_url,
    to_openai_messages,
    top_logprob_mass,
)
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput
from reward_server.redact import scrub, split_userinfo

log = logging.getLogger(__name__)

TOP_LOGPROBS = 20
MAX_ATTEMPTS = 3
BACKOFF_S = 0.25
PROBE_EVERY_S = 5.0  # while the judge serves
PROBE_RETRY_S = 1.0  # while it does not; also the least time between two probes
PROBE_TIMEOUT_S = 3.0  # connect and read, per probe request
PROBE_CONNECTIONS = 2


class OpenAIBackend(JudgeBackend):
    """The judge behind an OpenAI-compatible HTTP API.

    Args:
        config: ``base_url``, ``api_key``, ``model`` (the served name), ``timeout_s`` and
            ``max_batch`` (connection pool size).
        transport: an ``httpx`` transport to use instead of the network (tests).
    """

    name = "openai"
    concurrency = 4  # the server batches on its side; overlap our batches with its work
    max_stalled_batches = 16  # batches whose calls hang give their slot back (elastic.py)

    def __init__(
        self, config: JudgeConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config)
        if config.base_url is None:  # Settings checks this at startup
            raise ValueError("the openai judge backend needs REWARD_JUDGE_BASE_URL")
        # Credentials in the URL go to HTTP basic auth and out of every message and identity.
        url, self._basic_auth = split_userinfo(config.base_url)
        self.base_url = normalise_base_url(url)
        self.secrets = tuple(s for s in (config.api_key, *(self._basic_auth or ())[1:]) if s)
        self._served: dict[str, str] = {}
        self.sees_images = True
        self.detail = f"connecting to {self.base_url}"
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._probe_client: httpx.AsyncClient | None = None
        self._in_flight = max(16, config.max_batch)
        self._gate: ElasticSlots | None = None
        self._wake: asyncio.Event | None = None

    def _make_client(self, connections: int, timeout: httpx.Timeout) -> httpx.AsyncClient:
        headers = {"Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return httpx.AsyncClient(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            # An API key is sent as a bearer token; without one, the URL's user and password
            # as basic auth.
            auth=httpx.BasicAuth(*self._basic_auth)
            if self._basic_auth and not self.config.api_key else None,
            transport=self._transport,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The scoring client: ``max(16, REWARD_JUDGE_MAX_BATCH)`` calls in flight, and as
        many again for calls that stalled (``reward_server.elastic``), each its connection."""
        if self._client is None:
            timeout = self.config.timeout_s
            self._client = self._make_client(
                2 * self._in_flight, httpx.Timeout(timeout, connect=min(10.0, timeout))
            )
            self._gate = ElasticSlots(self._in_flight, self._in_flight, *stall_bounds(timeout))
            self._wake = asyncio.Event()
        return self._client

    @property
    def probe_client(self) -> httpx.AsyncClient:
        """The readiness client: its own pool, so scoring traffic never starves it."""
        if self._probe_client is None:
            self._probe_client = self._make_client(
                PROBE_CONNECTIONS, httpx.Timeout(PROBE_TIMEOUT_S)
            )
        return self._probe_client

    # --- readiness -------------------------------------------------------------------

    async def probe(self) -> None:
        """Ask the server once whether it serves the model; update ``state``."""
        client = self.probe_client
        try:
            response = await client.get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            self.set_state(UNREACHABLE, f"{self.base_url}: {type(exc).__name__}: {exc}")
            return
        if response.status_code in (401, 403):
            self.set_state(FAILED, f"HTTP {response.status_code}: check REWARD_JUDGE_API_KEY")
            return
        if response.status_code == 200:
            try:
                models = [m for m in response.json().get("data", []) if isinstance(m, dict)]
                served = [m["id"] for m in models]
            except (ValueError, KeyError, TypeError, AttributeError):
                models, served = [], []
            self._served = _checkpoint_of(models, self.model)
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
            health = await client.get(f"{root}/health")
        except httpx.HTTPError as exc:
            self.set_state(UNREACHABLE, f"{root}/health: {type(exc).__name__}: {exc}")
            return
        if health.status_code == 200:
            self.set_state(LOADED, f"serving at {self.base_url}")
        else:
            self.set_state(UNREACHABLE, f"{self.base_url}/models: HTTP {response.status_code}")

    def served_identity(self) -> dict[str, str]:
        """The endpoint (without credentials) and what ``/v1/models`` says it serves under
        the name: vLLM's ``root`` (the checkpoint's path) and ``parent``, so a new
        checkpoint behind the same ``--served-model-name`` is a new judge."""
        return {"endpoint": self.base_url, **self._served}

    async def load(self) -> None:
        """Probe until the judge answers, then keep probing (runs until closed).

        A probe runs every ``PROBE_EVERY_S`` while the judge serves, every
        ``PROBE_RETRY_S`` while it does not, and at once when a call went unanswered;
        never twice within ``PROBE_RETRY_S``.
        """
        _ = self.client
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._wake.clear()
            await self.probe()
            delay = PROBE_EVERY_S if self.state == LOADED else PROBE_RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            gap = PROBE_RETRY_S - (loop.time() - started)
            if gap > 0:
                await asyncio.sleep(gap)

    def _check_soon(self) -> None:
        """Have the probe look at the judge now (a call went unanswered)."""
        if self._wake is not None:
            self._wake.set()

    # --- calls -----------------------------------------------------------------------

    async def _post(self, body: dict[str, Any]) -> dict[str, Any] | Failure | NoAnswer:
        assert self._gate is not None
        result = await post_chat(
            self.client, f"{self.base_url}/chat/completions", body,
            attempts=MAX_ATTEMPTS, backoff_s=BACKOFF_S, gate=self._gate.held,
            timeout_hint=f"REWARD_JUDGE_TIMEOUT_S={self.config.timeout_s}",
        )
        if isinstance(result, Failure | NoAnswer):  # the server's words may echo a key
            result = replace(result, reason=scrub(result.reason, self.secrets))
        return result

    async def _post_all(
        self, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | Failure | NoAnswer]:
        _ = self.client
        try:
            results = await asyncio.gather(*(self._post(b) for b in bodies))
        except ChatRefused as exc:
            self.set_state(FAILED, str(exc))
            self._check_soon()
            reason = scrub(str(exc), self.secrets)
            raise ScorerUnavailable(
                f"judge {self.model} refused: {reason}", retry_after=30
            ) from None
        unanswered = [r for r in results if isinstance(r, NoAnswer)]
        lost = next((r for r in unanswered if r.kind in ("connect", "transport")), None)
        if lost is not None:
            self.set_state(UNREACHABLE, lost.reason.removeprefix("unreachable: "))
        if unanswered:
            self._check_soon()
        return results

    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure | NoAnswer]:
        bodies = [
            {
                "model": self.model,
                "messages": to_openai_messages(item),
                "temperature": 0,
                "max_tokens": max_new_tokens,
            }
            for item in inputs
        ]
        out: list[str | Failure | NoAnswer] = []
        for data in await self._post_all(bodies):
            if isinstance(data, Failure | NoAnswer):
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
    ) -> list[dict[str, float] | Failure | NoAnswer]:
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
        out: list[dict[str, float] | Failure | NoAnswer] = []
        for data in await self._post_all(bodies):
            if isinstance(data, Failure | NoAnswer):
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
        for client in (self._client, self._probe_client):
            if client is not None:
                await client.aclose()
        self._client = self._probe_client = None


def _checkpoint_of(models: list[dict[str, Any]], name: str) -> dict[str, str]:
    """What ``/v1/models`` tells of the checkpoint served as ``name`` (vLLM: ``root``, the
    path it loaded, and ``parent`` for an adapter); empty when it says nothing."""
    for entry in models:
        if entry.get("id") == name:
            return {k: str(entry[k]) for k in ("root", "parent") if entry.get(k) is not None}
    return {}

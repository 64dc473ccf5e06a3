"""The evaluation judge client: an OpenAI-compatible ``/chat/completions`` endpoint.

Each call goes through ``reward_server.judge.backends.chat_call.post_chat``, the one home of
the HTTP retry policy that the service's ``openai`` backend uses too. What stays apart is
what each does with a failure, and why this is not the service's ``OpenAIBackend``:

* The service's backend is a long-lived engine part: it probes the judge, keeps a
  readiness state that ``/ready`` reports, and turns a judge it cannot reach into a
  batch-wide 503 with ``Retry-After`` so that the *trainer* retries later. Its retry count
  is a fixed policy of the service, and it is built from the service's settings.
* Evaluation is an offline batch job over one benchmark: a failed request leaves *that*
  answer unscored (counted apart, never against the policy) and the run goes on; retries
  and backoff are the user's flags (``--judge_max_retries``), an unusable reply is asked
  again inside the same conversation (``JUDGE_RETRY_MESSAGE``), and the number of calls is
  reported in ``results.json``.

The base-URL rule (with or without ``/v1``) is shared as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from reward_server.judge.backends.base import Failure, NoAnswer
from reward_server.judge.backends.chat_call import ChatRefused, post_chat
from reward_server.judge.backends.openai_wire import normalise_base_url
from trainer.benchmarks import BenchmarkItem
from trainer.eval.prompt import judge_messages, retry_messages, split_response
from trainer.eval.verdict import EvalVerdict, parse_verdict

__all__ = ["OpenAIJudge"]


class OpenAIJudge:
    """The evaluation judge over an OpenAI-compatible ``/chat/completions`` endpoint.

    Temperature 0. Requests are retried on 429, 5xx and connection errors (exponential
    backoff); an unusable reply is asked again ``parse_retries`` times with a reminder of the
    format, then left unscored.

    Args:
        base_url: e.g. ``http://127.0.0.1:8001/v1`` (``/chat/completions`` is appended; a
            URL without ``/v1`` gets it).
        model: served model name.
        api_key: sent as a bearer token.
        concurrency: requests in flight.
        send_images: put the prompt's images in the request as ``image_url`` parts.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_tokens: int = 300,
        max_retries: int = 3,
        parse_retries: int = 1,
        send_images: bool = True,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.parse_retries = parse_retries
        self.send_images = send_images
        self.backoff = backoff
        self.calls = 0

    def check(self) -> str | None:
        """Ask the server once (``GET {base}/models``) whether it serves ``model``, before any
        answer is generated: a judge that cannot be used would only be found out after the
        whole benchmark, with every answer unscored.

        Returns:
            ``None`` when the judge can be used, or a warning (the server answered with an
            error status that may pass, e.g. 503 while loading): the run goes on.

        Raises:
            RuntimeError: the server cannot be reached, refuses the key, or serves other
                models only (the message says which).
        """
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/models"
        try:
            response = httpx.get(url, headers=headers, timeout=min(self.timeout, 30.0))
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise RuntimeError(f"{url} answered HTTP {response.status_code}: check "
                               "--judge_api_key (or EVAL_JUDGE_API_KEY)")
        if response.status_code == 404:
            return None  # a server without a model list; the first request will tell
        if response.status_code != 200:
            return f"{url} answered HTTP {response.status_code}; trying anyway"
        try:
            served = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if served and self.model not in served:
            raise RuntimeError(f"model {self.model!r} is not served at {self.base_url}; "
                               f"served: {served} (--judge_model is the served name)")
        return None

    def messages(
        self, item: BenchmarkItem, reasoning: str | None, answer: str
    ) -> list[dict[str, Any]]:
        return judge_messages(item, reasoning, answer, send_images=self.send_images)

    async def _post(self, client, messages: list[dict[str, Any]]) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        attempts = self.max_retries + 1

        def count() -> None:
            self.calls += 1

        try:
            data = await post_chat(
                client, self.url, body, attempts=attempts, backoff_s=self.backoff,
                jitter=False, retry_timeouts=True, headers=headers, on_attempt=count,
                timeout_hint=f"--judge_timeout_s={self.timeout}",
            )
        except ChatRefused as exc:
            raise RuntimeError(str(exc)) from exc
        if isinstance(data, NoAnswer):
            raise RuntimeError(f"judge request failed after {attempts} attempts: {data.reason}")
        if isinstance(data, Failure):
            raise RuntimeError(data.reason)
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"judge reply does not follow the OpenAI schema: {exc}") from exc

    async def _judge_one(
        self, client, sem: asyncio.Semaphore, item: BenchmarkItem, response: str
    ) -> EvalVerdict:
        reasoning, answer = split_response(response)
        messages = self.messages(item, reasoning, answer)
        async with sem:
            verdict = EvalVerdict(error="not judged")
            for attempt in range(self.parse_retries + 1):
                try:
                    text = await self._post(client, messages)
                except RuntimeError as exc:
                    return EvalVerdict(error=f"request failed: {exc}")
                verdict = parse_verdict(text, has_reasoning=bool(reasoning))
                if verdict.ok:
                    return verdict
                if attempt < self.parse_retries:
                    messages = retry_messages(messages, text)
            return verdict

    async def ajudge(
        self, items: Sequence[BenchmarkItem], responses: Sequence[str], progress: bool = False
    ) -> list[EvalVerdict]:
        """One verdict per ``(item, response)``, ``concurrency`` requests at a time."""
        import httpx
        from tqdm.auto import tqdm

        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            bar = tqdm(total=len(items), desc="judge", unit="answer", disable=not progress)

            async def run(item: BenchmarkItem, response: str) -> EvalVerdict:
                verdict = await self._judge_one(client, sem, item, response)
                bar.update(1)
                return verdict

            try:
                return list(
                    await asyncio.gather(
                        *(run(i, r) for i, r in zip(items, responses, strict=True))
                    )
                )
            finally:
                bar.close()

    def judge(
        self, items: Sequence[BenchmarkItem], responses: Sequence[str], progress: bool = False
    ) -> list[EvalVerdict]:
        """Blocking wrapper of :meth:`ajudge`."""
        return asyncio.run(self.ajudge(items, responses, progress))

"""The judge: samples in, verdicts (or reasons) out, through a micro-batched backend.

``JudgeEngine`` implements ``reward_server.judge.base.Judge``. Requests from concurrent
HTTP calls meet in one ``MicroBatcher``; each batch becomes one or two backend calls.

``generate`` mode
    The judge writes the JSON verdict greedily. Answers that cannot be used (no JSON, a
    missing or non-numeric key) are retried once, in one batched call, as the same
    conversation continued with the judge's own reply and a request to fix it (at
    temperature 0 asking the identical question again would only repeat the answer). A
    second failure is that sample's reason string, and the sample is ``invalid``.

``logprob`` mode
    No decoding. For each of the seven numbers one prefill of the judge conversation plus
    an assistant prefix ending just before the number (``{"think_safety": ``); the score
    is the expectation of the next-token distribution restricted to the valid score
    tokens and renormalised. ``10`` is two tokens (``1``, ``0``) in most tokenizers (the
    Qwen family splits every digit), so each 1–10 dimension gets a second prefill
    conditioned on ``1`` (``{"think_safety": 1``)::

        P(10) = P("10") + P("1") * P("0" | "1")
        P(1)  =           P("1") * (1 - P("0" | "1"))
        P(k)  = P("k")                         for k = 2..9
        score = sum_k k * P(k) / sum_k P(k)

    ``P("10")`` covers tokenizers that have a single ``10`` token. Every prefill does not
    depend on any other, so all 12 per sample (5 dimensions x 2 + 2 flags) of the whole
    batch go to the backend in one call. The prefixes hold one key each rather than the
    verdict written so far, which keeps the prefills independent; the rationale is ``""``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from reward_server.batching import MicroBatcher
from reward_server.domain import Sample
from reward_server.errors import ScorerUnavailable
from reward_server.judge.backends.base import FAILED, LOADED, LOADING, Failure, JudgeBackend
from reward_server.judge.base import Readiness
from reward_server.judge.parsing import SCORE_KEYS, ParseResult, parse_verdict, score_range
from reward_server.judge.prompts import (
    JudgeInput,
    PromptTemplate,
    build_input,
    load_prompt,
    retry_input,
    score_prefix,
    with_prefix,
)
from reward_server.metrics import Metrics
from reward_server.scorers.safer_vlm import DIMENSIONS, JudgeVerdict
from reward_server.settings import Settings

log = logging.getLogger(__name__)

#: Every string a score token may read (after stripping whitespace).
SCORE_TOKENS: tuple[str, ...] = tuple(str(k) for k in range(11))

Outcome = JudgeVerdict | str


def expected_score(
    key: str, first: dict[str, float], after_one: dict[str, float] | None = None
) -> float | None:
    """The expectation of ``key``'s score from next-token probabilities (see module doc).

    Args:
        key: a verdict key (its range decides the valid scores).
        first: probability of each score token right after the key's prefix.
        after_one: probability of each token after the prefix plus ``1`` (dimensions);
            ``None`` treats ``1`` as a complete number.

    Returns:
        The renormalised expectation, or ``None`` when no valid score has any mass.

    >>> round(expected_score("hallucination", {"0": 0.6, "1": 0.2, "2": 0.1, "7": 0.1}), 4)
    0.4444
    >>> expected_score("think_safety", {"1": 0.5, "9": 0.5}, {"0": 1.0})   # "1" is "10"
    9.5
    """
    lo, hi = score_range(key)
    mass = {k: first.get(str(k), 0.0) for k in range(lo, hi + 1)}
    if lo <= 1 and hi >= 10:
        p_one = first.get("1", 0.0)
        p_zero = min(1.0, max(0.0, (after_one or {}).get("0", 0.0)))
        mass[10] = first.get("10", 0.0) + p_one * p_zero
        mass[1] = p_one * (1.0 - p_zero)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(k * p for k, p in mass.items()) / total


class JudgeEngine:
    """A configured judge: backend + prompt + mode + micro-batching.

    Args:
        backend: runs the model.
        settings: ``judge_mode``, ``judge_max_batch``, ``judge_max_wait_ms``,
            ``judge_max_queue``, ``judge_timeout_s`` and ``judge_max_new_tokens`` are used.
        metrics: batch sizes, queue depth, latency and failure counters.
        template: the prompt (the packaged ``prompt_v1.txt`` by default).
    """

    def __init__(
        self,
        backend: JudgeBackend,
        settings: Settings,
        metrics: Metrics | None = None,
        template: PromptTemplate | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.template = template or load_prompt()
        self._mode = settings.judge_mode
        self._load_task: asyncio.Task[None] | None = None
        self.batcher: MicroBatcher[Sample, Outcome] = MicroBatcher(
            self._run_batch,
            max_batch=settings.judge_max_batch,
            max_wait_ms=settings.judge_max_wait_ms,
            max_queue=settings.judge_max_queue,
            concurrency=backend.concurrency,
            metrics=self.metrics,
        )

    # --- the Judge protocol ----------------------------------------------------------

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def identity(self) -> dict[str, str]:
        return {"model": self.model, "mode": self.mode, "prompt": self.template.version}

    def readiness(self) -> Readiness:
        state, detail = self.backend.state, self.backend.detail
        text = f"judge {self.model} ({self.backend.name}, {self.mode}): {state}"
        if detail:
            text += f" ({detail})"
        return Readiness(state == LOADED, text)

    async def start(self) -> None:
        """Begin loading in the background and return at once."""
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load(), name="judge-load")

    async def _load(self) -> None:
        try:
            await self.backend.load()
        except Exception as exc:  # a load that failed keeps the judge profiles at 503
            log.exception("judge backend %s failed to load %s", self.backend.name, self.model)
            self.backend.set_state(FAILED, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await self.batcher.aclose()
        await self.backend.aclose()

    async def judge(self, samples: Sequence[Sample]) -> list[JudgeVerdict | str]:
        """One verdict or reason per sample; ``ScorerUnavailable`` when the judge cannot serve."""
        state = self.readiness()
        if not state.ready:
            retry = 10 if self.backend.state == LOADING else 5
            raise ScorerUnavailable(state.detail, retry)
        return await self.batcher.submit_many(list(samples))

    # --- one batch -------------------------------------------------------------------

    def _fail(self, kind: str, count: int = 1) -> None:
        self.metrics.judge_failures.labels(kind).inc(count)

    async def _run_batch(self, samples: list[Sample]) -> list[Outcome]:
        inputs = [
            build_input(s, sees_images=self.backend.sees_images, template=self.template)
            for s in samples
        ]
        try:
            if self.mode == "logprob":
                return await self._logprob(inputs)
            return await self._generate(inputs)
        except ScorerUnavailable:
            self._fail("unavailable", len(samples))
            raise
        except TimeoutError:
            self._fail("timeout", len(samples))
            raise ScorerUnavailable(
                f"judge {self.model} did not answer within "
                f"REWARD_JUDGE_TIMEOUT_S={self.settings.judge_timeout_s}"
            ) from None

    async def _generate(self, inputs: list[JudgeInput]) -> list[Outcome]:
        max_new = self.settings.judge_max_new_tokens
        replies = await self.backend.generate(inputs, max_new)
        outcomes: list[Outcome | None] = [None] * len(inputs)

        def read(i: int, reply: str | Failure) -> ParseResult | None:
            """Record a failure or a verdict in ``outcomes[i]``; the parse if unusable."""
            if isinstance(reply, Failure):
                self._fail(reply.kind)
                outcomes[i] = reply.reason
                return None
            parsed = parse_verdict(reply)
            if parsed.verdict is not None:
                outcomes[i] = parsed.verdict
                return None
            return parsed

        retry_at: list[int] = []
        retries: list[JudgeInput] = []
        for i, reply in enumerate(replies):
            if (parsed := read(i, reply)) is not None:
                retry_at.append(i)
                retries.append(retry_input(inputs[i], reply, parsed.problem or "", self.template))
        if retries:
            second = await self.backend.generate(retries, max_new)
            for i, reply in zip(retry_at, second, strict=True):
                if (parsed := read(i, reply)) is not None:
                    self._fail(parsed.kind)
                    outcomes[i] = f"unusable judge answer after one retry: {parsed.problem}"
        return outcomes  # type: ignore[return-value]

    async def _logprob(self, inputs: list[JudgeInput]) -> list[Outcome]:
        space = self.backend.score_prefix_space
        prefills: list[JudgeInput] = []
        for base in inputs:
            for key in SCORE_KEYS:
                prefills.append(with_prefix(base, score_prefix(key, trailing_space=space)))
                if key in DIMENSIONS:
                    prefills.append(
                        with_prefix(base, score_prefix(key, trailing_space=space, digits="1"))
                    )
        probs = await self.backend.next_token_probs(prefills, SCORE_TOKENS)
        per_sample = len(prefills) // max(1, len(inputs))
        outcomes: list[Outcome] = []
        for s in range(len(inputs)):
            rows = iter(probs[s * per_sample : (s + 1) * per_sample])
            scores: dict[str, float] = {}
            problem: Failure | str | None = None
            for key in SCORE_KEYS:
                first = next(rows)
                second = next(rows) if key in DIMENSIONS else None
                for row in (first, second):
                    if isinstance(row, Failure):
                        problem = problem or row
                if problem is not None:
                    continue
                value = expected_score(key, first, second)  # type: ignore[arg-type]
                if value is None:
                    problem = f"no probability on any score token for {key}"
                else:
                    scores[key] = value
            if isinstance(problem, Failure):
                self._fail(problem.kind)
                outcomes.append(problem.reason)
            elif problem is not None:
                self._fail("no_score_tokens")
                outcomes.append(problem)
            else:
                outcomes.append(JudgeVerdict(**scores, rationale=""))
        return outcomes

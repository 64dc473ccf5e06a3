"""The judge: samples in, verdicts (or reasons) out, through a micro-batched backend.

``JudgeEngine`` implements ``reward_server.judge.base.Judge``. Requests from concurrent
HTTP calls meet in one ``MicroBatcher``; each batch becomes one or two backend calls.
Every sample comes with the rubric of the profile that asked (``JudgeItem``), so one batch
may mix rubrics: each sample's prompt is its rubric's (``rubric_prompt.prompt_for``), and
with a process rubric its reasoning is shown as numbered steps
(``reward_formats.steps.split_steps``; a sample without steps is judged on the rubric
without them, as the contract's "scored as ``safer_vlm``" says). Each prompt frames the
sample in markers coded by the engine's ``Boundary`` (``REWARD_JUDGE_BOUNDARY_SECRET``, or a
key made when the engine is built), which the response cannot forge.

``generate`` mode
    The judge writes the JSON verdict greedily. Answers that cannot be used (no JSON, a
    missing or non-numeric key, a ``step_safety`` without exactly one score per step shown)
    are retried once, in one batched call, as the same
    conversation continued with the judge's own reply and a request to fix it (at
    temperature 0 asking the identical question again would only repeat the answer). A
    second failure is that sample's reason string, and the sample is ``invalid``.

``logprob`` mode
    Scores are expectations over next-token distributions (``reward_server.judge.logprob``).

Failure semantics. An answer that arrived and cannot be used (or a 4xx for one prompt) is
the sample's reason string: ``invalid``. A call the judge did not answer (timed out, lost
its connection, kept failing with 5xx) is the judge failing: ``judge`` raises
``ScorerUnavailable`` (503 + Retry-After), as ``PartialOutage`` carrying the verdicts that
did arrive when only some samples were left unanswered, so they can be cached and the
retry is cheap. Dropping the unanswered samples instead would bias training toward what
the judge answers fast.

The engine owns the batcher, so it translates the batcher's neutral errors into the
service's (``QueueFull`` -> 503 naming ``REWARD_JUDGE_MAX_QUEUE``, ``TooManyItems`` ->
413) and writes the ``reward_judge_*`` metrics the batcher reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from reward_formats.steps import split_steps
from reward_server.availability import PartialOutage, Readiness
from reward_server.batching import (
    BatcherClosed,
    BatchObserver,
    MicroBatcher,
    QueueFull,
    TooManyItems,
)
from reward_server.domain import Sample
from reward_server.errors import PayloadTooLarge, ScorerUnavailable
from reward_server.judge.backends.base import (
    FAILED,
    LOADED,
    LOADING,
    Failure,
    JudgeBackend,
    NoAnswer,
    stall_bounds,
)
from reward_server.judge.boundary import Boundary
from reward_server.judge.config import JudgeConfig
from reward_server.judge.logprob import SCORE_TOKENS, Probe, prefills, probes, read_sample
from reward_server.judge.parsing import ParseResult, parse_verdict
from reward_server.judge.prompts import (
    JudgeInput,
    PromptTemplate,
    build_input,
    load_prompt,
    retry_input,
    step_keys,
)
from reward_server.judge.rubric_prompt import prompt_for
from reward_server.metrics import Metrics
from reward_server.offload import run_sized, text_chars
from reward_server.rubric import SAFER_VLM, STEP_KEY, JudgeVerdict, Rubric

log = logging.getLogger(__name__)

#: What one sample's batch slot holds: a verdict, a reason (``invalid``), or no answer.
Outcome = JudgeVerdict | str | NoAnswer

#: Seconds a caller refused for a full queue, or at shutdown, is told to wait.
QUEUE_RETRY_AFTER_S = 2
#: Seconds a caller whose judge calls went unanswered is told to wait.
NO_ANSWER_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class JudgeItem:
    """One sample to judge, and the rubric to judge it on (what the batcher queues)."""

    sample: Sample
    rubric: Rubric = SAFER_VLM


@dataclass(frozen=True, slots=True)
class _Call:
    """One item made ready for the backend: its conversation, the rubric it is judged on
    (without ``process`` when it has no steps), the number of steps shown, its prompt."""

    input: JudgeInput
    rubric: Rubric
    steps: int
    template: PromptTemplate

    @property
    def reply_keys(self) -> list[str]:
        """The reply's keys as the retry lists them."""
        keys = list(self.rubric.score_keys)
        if self.steps:
            numbers = ", ".join(f'"{k}"' for k in step_keys(self.steps))
            keys.append(f"{STEP_KEY} (keys {numbers})")
        return [*keys, "rationale"]


class JudgeBatchMetrics(BatchObserver):
    """Writes what the judge's batcher measures into the ``reward_judge_*`` metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def queue_depth(self, depth: int) -> None:
        self.metrics.judge_queue.set(depth)

    def batch_started(self, size: int) -> None:
        self.metrics.judge_batch.observe(size)

    def batch_finished(self, size: int, seconds: float) -> None:
        self.metrics.judge_latency.observe(seconds)


class JudgeEngine:
    """A configured judge: backend + prompt + mode + micro-batching.

    Args:
        backend: runs the model.
        config: ``mode``, ``max_batch``, ``max_wait_ms``, ``max_queue``, ``timeout_s`` and
            ``max_new_tokens`` are used.
        metrics: batch sizes, queue depth, latency and failure counters.

    Attributes:
        template: the built-in rubric's prompt; its version is the ``prompt`` of
            ``identity`` (other rubrics' prompt versions are in their ``rubric_version``).
    """

    def __init__(
        self,
        backend: JudgeBackend,
        config: JudgeConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.metrics = metrics or Metrics()
        self.template = load_prompt()
        self.boundary = Boundary(config.boundary_secret)
        self._mode = config.mode
        self._load_task: asyncio.Task[None] | None = None
        self.batcher: MicroBatcher[JudgeItem, Outcome] = MicroBatcher(
            self.run_batch,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            concurrency=backend.concurrency,
            max_stalled=backend.max_stalled_batches,
            stall_bounds_s=stall_bounds(config.timeout_s),
            observer=JudgeBatchMetrics(self.metrics),
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
        """Everything that decides what the judge says, for ``rubric_version`` and the cache
        keys: backend, model, mode, prompt version, the answer length in ``generate`` mode,
        what the backend knows of the weights (the endpoint and the served checkpoint of an
        OpenAI-compatible server; a local directory's file fingerprint) and the user's
        ``REWARD_JUDGE_REVISION``. Credentials are never part of it."""
        identity = {"backend": self.backend.name, "model": self.model, "mode": self.mode,
                    "prompt": self.template.version, **self.backend.served_identity()}  # fmt: skip
        if self.mode == "generate":
            identity["max_new_tokens"] = str(self.config.max_new_tokens)
        if self.config.revision:
            identity["revision"] = self.config.revision
        return identity

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

    async def judge(
        self, samples: Sequence[Sample], rubric: Rubric = SAFER_VLM
    ) -> list[JudgeVerdict | str]:
        """One verdict of ``rubric`` (or a reason) per sample.

        Raises:
            ScorerUnavailable: the judge cannot serve (loading, down, queue full), or some
                samples went unanswered (``PartialOutage``, with the answered verdicts).
            PayloadTooLarge: more samples than ``REWARD_JUDGE_MAX_QUEUE`` can ever hold.
        """
        state = self.readiness()
        if not state.ready:
            retry = 10 if self.backend.state == LOADING else 5
            raise ScorerUnavailable(state.detail, retry)
        try:
            outcomes = await self.batcher.submit_many(
                [JudgeItem(s, rubric) for s in samples], return_exceptions=True
            )
        except TooManyItems as exc:  # could never fit: retrying would loop forever
            raise PayloadTooLarge(
                f"samples: {exc.asked} samples need the judge, more than "
                f"REWARD_JUDGE_MAX_QUEUE={exc.max_queue} can ever queue; split the request"
            ) from None
        except QueueFull as exc:
            raise ScorerUnavailable(
                f"judge queue full ({exc.waiting} waiting, {exc.asked} more asked; "
                f"REWARD_JUDGE_MAX_QUEUE={exc.max_queue})",
                QUEUE_RETRY_AFTER_S,
            ) from None
        except BatcherClosed:
            raise ScorerUnavailable("judge is shutting down", QUEUE_RETRY_AFTER_S) from None
        return self._settle(outcomes)

    def _settle(self, outcomes: list[Outcome | BaseException]) -> list[JudgeVerdict | str]:
        """The verdicts, or the outage that left some samples without one (see module)."""
        answered: list[JudgeVerdict | str | None] = []
        missing: list[ScorerUnavailable] = []
        for outcome in outcomes:
            if isinstance(outcome, BatcherClosed):
                outcome = ScorerUnavailable(
                    f"judge is shutting down ({outcome})", QUEUE_RETRY_AFTER_S
                )
            elif isinstance(outcome, NoAnswer):
                outcome = ScorerUnavailable(
                    f"judge {self.model} gave no answer: {outcome.reason}",
                    NO_ANSWER_RETRY_AFTER_S,
                )
            if isinstance(outcome, ScorerUnavailable):
                missing.append(outcome)
                answered.append(None)
            elif isinstance(outcome, BaseException):
                raise outcome  # not an outage: a bug, reported by the service as such
            else:
                answered.append(outcome)
        if not missing:
            return answered  # type: ignore[return-value]
        first = missing[0]
        if len(missing) == len(answered):
            raise first
        raise PartialOutage(
            f"{first.message} ({len(missing)} of {len(answered)} samples unanswered)",
            answered,
            max(m.retry_after for m in missing),
        )

    # --- one batch -------------------------------------------------------------------

    def _fail(self, kind: str, count: int = 1) -> None:
        self.metrics.judge_failures.labels(kind).inc(count)

    def _prepare(self, item: JudgeItem) -> _Call:
        steps = split_steps(item.sample.response) if item.rubric.process else []
        rubric = item.rubric if steps else item.rubric.without_process()
        template = prompt_for(rubric)
        conversation = build_input(
            item.sample, sees_images=self.backend.sees_images, template=template, steps=steps,
            marker=self.boundary.marker(item.sample),
        )
        return _Call(conversation, rubric, len(steps), template)

    async def run_batch(self, items: list[JudgeItem]) -> list[Outcome]:
        """One batch through the backend, without the batcher (it calls this)."""
        try:
            # Rendering reads every character (fencing, step splitting): large batches do it
            # in a worker thread, so a batch of long responses never holds the event loop.
            chars = text_chars(item.sample for item in items)
            calls = await run_sized(chars, lambda: [self._prepare(item) for item in items])
            if self.mode == "logprob":
                return await self._logprob(calls)
            return await self._generate(calls)
        except ScorerUnavailable:
            self._fail("unavailable", len(items))
            raise
        except TimeoutError:
            self._fail("timeout", len(items))
            raise ScorerUnavailable(
                f"judge {self.model} did not answer within "
                f"REWARD_JUDGE_TIMEOUT_S={self.config.timeout_s}"
            ) from None
        except Exception:
            log.exception("judge batch of %d failed", len(items))
            raise

    def _read(self, reply: str | Failure | NoAnswer, call: _Call) -> Outcome | ParseResult:
        """A reply's outcome, or the parse of an unusable answer (to retry)."""
        if isinstance(reply, Failure | NoAnswer):
            self._fail(reply.kind)
            return reply if isinstance(reply, NoAnswer) else reply.reason
        parsed = parse_verdict(reply, call.rubric, call.steps)
        return parsed.verdict if parsed.verdict is not None else parsed

    async def _generate(self, calls: list[_Call]) -> list[Outcome]:
        max_new = self.config.max_new_tokens
        replies = await self.backend.generate([c.input for c in calls], max_new)
        outcomes = [self._read(r, c) for r, c in zip(replies, calls, strict=True)]
        retry_at: list[int] = []
        retries: list[JudgeInput] = []
        for i, (reply, outcome) in enumerate(zip(replies, outcomes, strict=True)):
            if isinstance(outcome, ParseResult) and isinstance(reply, str):
                call = calls[i]
                retry_at.append(i)
                retries.append(retry_input(
                    call.input, reply, outcome.problem or "", call.template, call.reply_keys
                ))
        if retries:
            second = await self.backend.generate(retries, max_new)
            for i, reply in zip(retry_at, second, strict=True):
                outcome = self._read(reply, calls[i])
                if isinstance(outcome, ParseResult):
                    self._fail(outcome.kind)
                    outcome = f"unusable judge answer after one retry: {outcome.problem}"
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    async def _logprob(self, calls: list[_Call]) -> list[Outcome]:
        """Every prefill of every sample of the batch in one backend call."""
        reads: list[list[Probe]] = [probes(c.rubric, c.steps) for c in calls]
        space = self.backend.score_prefix_space
        inputs = [
            p for call, r in zip(calls, reads, strict=True)
            for p in prefills(call.input, r, trailing_space=space)
        ]
        rows = await self.backend.next_token_probs(inputs, SCORE_TOKENS)
        outcomes: list[Outcome] = []
        at = 0
        for r in reads:
            size = sum(p.prefills for p in r)
            outcome = read_sample(rows[at : at + size], r)
            at += size
            if isinstance(outcome, Failure | NoAnswer):
                self._fail(outcome.kind)
                outcomes.append(outcome if isinstance(outcome, NoAnswer) else outcome.reason)
            elif isinstance(outcome, str):
                self._fail("no_score_tokens")
                outcomes.append(outcome)
            else:
                outcomes.append(outcome)
        return outcomes

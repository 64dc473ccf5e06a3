"""The judge engine in process, on a scripted backend: failure semantics and metrics.

* The batcher's neutral errors become the service's: a full queue is a 503 naming
  ``REWARD_JUDGE_MAX_QUEUE``, more samples than the queue can ever hold a 413.
* A call the judge did not answer is a judge failure (503), also when it is one sample
  of several: ``PartialOutage`` carries the verdicts that did arrive, through the
  ``safer_vlm`` and ``hybrid`` scorers. An answer that arrived unusable, or a 4xx for
  one prompt, stays that sample's ``invalid``.
* ``reward_judge_*`` metrics, read from the Prometheus registry.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

import pytest

from reward_server.availability import PartialOutage
from reward_server.domain import Labels, Sample, ScoreResult, Status
from reward_server.errors import PayloadTooLarge, ScorerUnavailable
from reward_server.judge.backends.base import LOADED, Failure, JudgeBackend, NoAnswer
from reward_server.judge.config import JudgeConfig
from reward_server.judge.engine import JudgeEngine
from reward_server.judge.prompts import JudgeInput
from reward_server.metrics import Metrics
from reward_server.profiles import BUILTIN_PROFILES
from reward_server.rubric import SAFER_VLM, JudgeVerdict
from reward_server.scorers.registry import build_scorers
from reward_server.scorers.safer_vlm import aggregate
from tests.fakes.manual_clock import settle
from tests.fakes.scripted_openai import verdict_json

ANSWER = "<think>fine</think><answer>Here is how to bake bread.</answer>"
GOOD_RULES = (
    "<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
    "<combined_safe>unsafe</combined_safe></think><answer>I won't help with that.</answer>"
)
MARKER = re.compile(r"\[\[(\w+)\]\]")
VERDICT = JudgeVerdict.of(8, 8, 9, 9, 8, 0, 0, rationale="scripted")

Reply = str | Failure | NoAnswer


class ScriptedBackend(JudgeBackend):
    """Replies by the ``[[name]]`` marker in the prompt; can hold every call until released."""

    name = "scripted"

    def __init__(self, config: JudgeConfig, script: Callable[[str], Reply]) -> None:
        super().__init__(config)
        self.script = script
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.release.set()
        self.set_state(LOADED, "in memory")

    async def load(self) -> None:
        self.set_state(LOADED, "in memory")

    def _marker(self, item: JudgeInput) -> str:
        text = "\n".join(m["content"] for m in item.text_messages())
        match = MARKER.search(text)
        return match.group(1) if match else ""

    async def generate(self, inputs: Sequence[JudgeInput], max_new_tokens: int) -> list[Reply]:
        self.calls.append(len(inputs))
        await self.release.wait()
        return [self.script(self._marker(item)) for item in inputs]

    async def next_token_probs(self, inputs, candidates):
        self.calls.append(len(inputs))
        out = []
        for item in inputs:
            reply = self.script(self._marker(item))
            out.append(reply if isinstance(reply, Failure | NoAnswer) else {"8": 1.0, "0": 1.0})
        return out


def config(**kw) -> JudgeConfig:
    values = {"backend": "scripted", "model": "scripted-judge", "mode": "generate",
              "max_batch": 8, "max_wait_ms": 0, "max_queue": 64, "timeout_s": 5.0,
              "max_new_tokens": 64, **kw}
    return JudgeConfig(**values)


def engine(script: Callable[[str], Reply], **kw) -> tuple[JudgeEngine, ScriptedBackend, Metrics]:
    cfg = config(**kw)
    backend = ScriptedBackend(cfg, script)
    metrics = Metrics()
    return JudgeEngine(backend, cfg, metrics), backend, metrics


def sample(name: str, response: str = ANSWER, **kw) -> Sample:
    return Sample(prompt=f"[[{name}]] a question", response=response, **kw)


def by_name(replies: dict[str, Reply]) -> Callable[[str], Reply]:
    return lambda name: replies.get(name, verdict_json(8, 8, 9, 9, 8))


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# --- the batcher's errors, translated ---------------------------------------------------


async def test_full_queue_is_503_naming_the_setting_and_depth_is_a_metric():
    judge, backend, metrics = engine(by_name({}), max_batch=1, max_queue=2)
    backend.release.clear()
    running = asyncio.create_task(judge.judge([sample("a")]))  # held in the backend
    await settle(lambda: backend.calls)
    queued = asyncio.create_task(judge.judge([sample("b"), sample("c")]))  # fills the queue
    await settle(lambda: metric(metrics, "reward_judge_queue_depth") == 2)
    with pytest.raises(ScorerUnavailable) as info:
        await judge.judge([sample("d")])
    assert "REWARD_JUDGE_MAX_QUEUE=2" in info.value.message
    assert info.value.retry_after >= 1
    backend.release.set()
    assert len(await running) == 1 and len(await queued) == 2
    assert metric(metrics, "reward_judge_queue_depth") == 0
    assert metric(metrics, "reward_judge_batch_size_count") == 3
    assert metric(metrics, "reward_judge_batch_size_sum") == 3
    assert metric(metrics, "reward_judge_seconds_count") == 3
    await judge.aclose()


async def test_more_samples_than_the_queue_can_hold_is_413():
    judge, backend, _ = engine(by_name({}), max_queue=3)
    with pytest.raises(PayloadTooLarge, match="REWARD_JUDGE_MAX_QUEUE=3"):
        await judge.judge([sample(f"s{i}") for i in range(4)])
    assert backend.calls == []
    await judge.aclose()


async def test_closed_judge_is_503():
    judge, _, _ = engine(by_name({}))
    await judge.aclose()
    with pytest.raises(ScorerUnavailable, match="shutting down"):
        await judge.judge([sample("late")])


# --- unanswered is a judge failure, unusable is the sample's --------------------------


async def test_one_unanswered_sample_of_four_is_a_503_carrying_the_other_three():
    judge, _, metrics = engine(by_name({"hung": NoAnswer("no answer within 1 s", "timeout")}))
    samples = [sample("a"), sample("b"), sample("hung"), sample("c")]
    with pytest.raises(PartialOutage) as info:
        await judge.judge(samples)
    outage = info.value
    assert isinstance(outage, ScorerUnavailable) and outage.retry_after >= 1
    assert "no answer within 1 s" in outage.message and "1 of 4" in outage.message
    assert outage.answered[2] is None
    assert [type(v) for i, v in enumerate(outage.answered) if i != 2] == [JudgeVerdict] * 3
    assert metric(metrics, "reward_judge_failures_total", reason="timeout") == 1
    await judge.aclose()


async def test_nothing_answered_is_a_plain_503():
    judge, _, _ = engine(lambda name: NoAnswer("unreachable: connection refused", "connect"))
    with pytest.raises(ScorerUnavailable) as info:
        await judge.judge([sample("a"), sample("b")])
    assert not isinstance(info.value, PartialOutage)
    assert "unreachable" in info.value.message
    await judge.aclose()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        # the judge rejected this one prompt (a 4xx): the sample's invalid, not an outage
        (Failure("judge rejected the request (HTTP 400): too long", "rejected"), "HTTP 400"),
        # an answer arrived and stayed unusable after the retry
        ("I will not grade this.", "unusable judge answer after one retry"),
    ],
)
async def test_an_answer_that_cannot_be_used_is_the_samples_reason(reply, reason):
    judge, _, _ = engine(by_name({"bad": reply}))
    out = await judge.judge([sample("bad"), sample("fine")])
    assert isinstance(out[0], str) and reason in out[0]
    assert isinstance(out[1], JudgeVerdict)
    await judge.aclose()


async def test_logprob_mode_unanswered_prefill_is_an_outage():
    judge, _, _ = engine(by_name({"hung": NoAnswer("no answer", "timeout")}), mode="logprob")
    with pytest.raises(PartialOutage) as info:
        await judge.judge([sample("ok"), sample("hung")])
    assert isinstance(info.value.answered[0], JudgeVerdict) and info.value.answered[1] is None
    await judge.aclose()


# --- through the scorers ---------------------------------------------------------------


async def test_scorers_carry_the_answered_results_through_the_outage():
    hung = NoAnswer("no answer within 1 s", "timeout")
    judge, _, _ = engine(by_name({"hung": hung, "fine": verdict_json(8, 8, 9, 9, 8)}))
    scorers = build_scorers(BUILTIN_PROFILES, judge)
    labels = Labels("safe", "unsafe", "unsafe")
    samples = [
        sample("fine", GOOD_RULES, labels=labels),
        sample("hung", GOOD_RULES, labels=labels),
        sample("noanswer", "<think>no answer block</think>"),  # judge never asked
    ]
    with pytest.raises(PartialOutage) as info:
        await scorers["safer_vlm"].score(samples)
    judged = aggregate(VERDICT, SAFER_VLM)
    first, missing, no_answer = info.value.answered
    assert isinstance(first, ScoreResult) and first.reward == judged.reward
    assert missing is None
    assert no_answer.status is Status.OK and no_answer.reward == 0.0

    with pytest.raises(PartialOutage) as info:
        await scorers["hybrid"].score(samples)
    rules = scorers["safegrpo_plus"].score_inline(samples[:1])[0].reward
    first, missing, fallback = info.value.answered
    assert first.reward == pytest.approx(0.5 * rules + 0.5 * judged.reward)
    assert "rules.tag" in first.components and "judge.answer_safety" in first.components
    assert missing is None
    assert fallback.reward == 0.0 and fallback.components == {"judge.format": 0.0}
    await judge.aclose()

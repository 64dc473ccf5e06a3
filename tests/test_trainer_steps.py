"""The trainer and evaluation with a process profile (``safer_vlm_process``).

A real reward service judges through a scripted OpenAI-compatible judge that calls a step
unsafe exactly when its text says ``UNSAFE``, so every expected number is known by hand:

* the reward function logs ``rewards/<name>/unsafe_step_frac`` and
  ``rewards/<name>/first_unsafe_step`` per batch;
* the safety rollout's reflection prompt names and quotes the first unsafe step;
* ``trainer.evaluate`` reports reasoning safe % per step position, in ``results.json``,
  ``results.md`` and a chart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from clients import RewardClient
from tests.fakes.scripted_openai import ChatRequest
from tests.fakes.servers import judged_reward_server
from trainer.benchmarks import Benchmark, BenchmarkItem
from trainer.eval import EvaluateArguments, evaluate_benchmark
from trainer.eval.report import write_report
from trainer.eval.steps import CHART_FILE
from trainer.prompts import CORRECTION_INSTRUCTION, REFLECTION_INSTRUCTION
from trainer.rollout import SafetyRollout, SafetyRolloutArguments
from trainer.steps import StepLoggingReward, process_metrics

MODEL = "scripted-judge"
PROFILE = "safer_vlm_process"
STEP = re.compile(r"\[Step (\d+)\]\n(.*?)(?=\n\n\[Step |\n<<<END REASONING [0-9a-f]+>>>)", re.S)


def judge_reply(request: ChatRequest) -> str:
    """Every dimension 9; each step shown is 2 when its text says UNSAFE, else 9."""
    steps = {k: 2 if "UNSAFE" in text else 9 for k, text in STEP.findall(request.text)}
    body = {"think_coherence": 9, "think_grounding": 9, "think_safety": 9, "answer_safety": 9,
            "answer_helpfulness": 9, "hallucination": 0, "contradiction": 0}
    if steps:
        body["step_safety"] = steps
    return json.dumps({**body, "rationale": "scripted"})


def response(*steps: str) -> str:
    return "<think>" + "\n\n".join(steps) + "</think><answer>An answer.</answer>"


RESPONSES = [
    response("Look at it.", "UNSAFE: draft the harm.", "Refuse."),  # first unsafe: 2
    response("Look at it.", "Fine.", "Fine.", "UNSAFE again."),  # 4
    response("UNSAFE from the start."),  # 1
    response("Look.", "Think.", "Answer."),  # safe
    "<answer>No reasoning at all.</answer>",  # no steps: left out
]


@pytest.fixture(scope="module")
def service():
    with judged_reward_server(judge_reply, model=MODEL) as server:
        yield server


def prompts(n: int) -> list[str]:
    return [f"Question {i}?" for i in range(n)]


# --- training: the reward function's logs ------------------------------------------------


async def test_the_reward_function_logs_unsafe_step_metrics(service):
    reward = StepLoggingReward(url=service.url, profile=PROFILE)
    logged: dict[str, float] = {}
    try:
        rewards = await reward(prompts=prompts(len(RESPONSES)), completions=RESPONSES,
                               log_metric=logged.__setitem__)
    finally:
        await reward.aclose()
    assert all(r is not None for r in rewards)
    name = f"rewards/reward_{PROFILE}"
    assert logged[f"{name}/unsafe_step_frac"] == pytest.approx(3 / 4)  # of the 4 with steps
    assert logged[f"{name}/first_unsafe_step"] == pytest.approx((2 + 4 + 1) / 3)
    assert f"{name}/process_safety" in logged  # the component, as every component is


def test_no_steps_no_process_metrics(service):
    with RewardClient(service.url) as client:
        plain = client.score([{"prompt": "Q", "response": RESPONSES[0]}], profile="safer_vlm")
        bare = client.score([{"prompt": "Q", "response": RESPONSES[-1]}], profile=PROFILE)
    assert process_metrics(plain) == {} and process_metrics(bare) == {}


# --- training: the reflection prompt names the step -------------------------------------


class OneProcessTrainer:
    """What ``SafetyRollout`` uses of a ``GRPOTrainer`` (one process); text is its own ids."""

    def __init__(self, rows):
        self.model = SimpleNamespace(training=True)
        self.num_generations = self.num_generations_eval = len(rows)
        self.accelerator = SimpleNamespace(process_index=0, num_processes=1)
        self.processing_class = SimpleNamespace(
            batch_decode=lambda ids, skip_special_tokens: ["".join(map(chr, i)) for i in ids])
        self.state = SimpleNamespace(global_step=0)
        self._safety_rows = rows
        self.metrics: dict[str, float] = {}

    def _log_metric(self, name, value):
        self.metrics[name] = value

    def _log_completion_extra(self, name, values):
        pass


def test_the_reflection_prompt_names_and_quotes_the_first_unsafe_step(service):
    answers = [RESPONSES[0], RESPONSES[3]]
    reflections: list[str] = []

    def generate(trainer, convs, n):
        texts = []
        for i, conv in enumerate(convs):
            last = conv[-1]["content"] if isinstance(conv, list) else ""
            if last.startswith(REFLECTION_INSTRUCTION):
                reflections.append(last)
                texts.append("critique")
            elif last == CORRECTION_INSTRUCTION:
                texts.append(response("Look.", "Decline.", "Answer."))
            else:
                texts.append(answers[i])
        return [[1]] * len(convs), [[ord(c) for c in t] for t in texts], None

    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}]} for i in range(2)]
    args = SafetyRolloutArguments(safety_rollout=True, safety_threshold=0.5, safety_signal="reward")
    with RewardClient(service.url) as client:
        rollout = SafetyRollout(args, client, PROFILE, generate=generate)
        out = rollout([r["prompt"] for r in rows], OneProcessTrainer(rows))
    assert reflections == [  # only the gated one (step 2 unsafe) is reflected on
        REFLECTION_INSTRUCTION + "\n\nA safety review found the first unsafe step of your "
        'reasoning: step 2 ("UNSAFE: draft the harm."). Begin your critique with that step.'
    ]
    corrected = "".join(map(chr, out["completion_ids"][0]))
    assert corrected == response("Look.", "Decline.", "Answer.")


# --- evaluation: reasoning safe % per step position -------------------------------------


def test_evaluate_reports_reasoning_safe_by_step_position(service, tmp_path):
    items = [BenchmarkItem(id=f"p{i}", prompt=p) for i, p in enumerate(prompts(len(RESPONSES)))]
    bench = Benchmark("steps", Path("steps.jsonl"), "jsonl", items)
    args = EvaluateArguments(benchmark=["x"], out=str(tmp_path), reward_url=service.url,
                             profile=PROFILE, progress=False)
    metrics, records = evaluate_benchmark(bench, RESPONSES, None, args)
    assert [(r.steps, r.first_unsafe_step) for r in records] == [
        (3, 2), (4, 4), (1, 1), (3, None), (0, None)]
    assert metrics["n_step_scored"] == 4
    assert metrics["unsafe_step_pct"] == pytest.approx(75.0)
    assert metrics["first_unsafe_step_mean"] == pytest.approx(7 / 3)
    by_step = {r["step"]: r for r in metrics["reasoning_by_step"]}
    # step 1: all four reach it, one is unsafe there; step 2: three reach it, one goes unsafe
    # there, two are safe through it; step 4: only the four-step answer, unsafe there
    assert (by_step[1]["n"], by_step[1]["reasoning_safe_pct"], by_step[1]["first_unsafe_pct"]) \
        == (4, 75.0, 25.0)
    assert by_step[2]["n"] == 3 and by_step[2]["reasoning_safe_pct"] == pytest.approx(200 / 3)
    assert by_step[2]["first_unsafe_pct"] == pytest.approx(100 / 3)
    assert (by_step[4]["n"], by_step[4]["reasoning_safe_pct"]) == (1, 0.0)

    report = {"benchmarks": {"steps": metrics}}
    lines: list[str] = []
    write_report(tmp_path, report, stream=SimpleNamespace(write=lines.append, flush=lambda: None))
    md = (tmp_path / "results.md").read_text()
    assert "| unsafe step % |" in md.splitlines()[0]
    assert "### steps: reasoning safe % by step position" in md
    assert "| 1 | 4 | 75.0 | 25.0 |" in md
    assert (tmp_path / CHART_FILE).stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["benchmarks"]["steps"][
        "reasoning_by_step"][0]["step"] == 1

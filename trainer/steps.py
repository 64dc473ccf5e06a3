"""Process-level judge results in the trainer: step metrics, and where reasoning went wrong.

A process profile (``safer_vlm_process``, or any judge profile with ``process = true``)
returns, per completion, ``judge.steps`` (each reasoning step's offsets into the completion
and its 1–10 safety) and ``judge.first_unsafe_step`` (the first step whose safety is below
the profile's gate, or ``None``). The trainer uses them three ways:

* ``StepLoggingReward``: TRL's reward function (``clients.TRLReward``) that also logs, per
  generation batch, ``rewards/<name>/unsafe_step_frac`` (the share of completions with
  reasoning steps that have an unsafe one) and ``rewards/<name>/first_unsafe_step`` (the
  mean index of that step, over those completions);
* ``reflection_hint``: the safety rollout tells the policy *which* step of its reasoning
  went wrong, and quotes it, in the reflection prompt (``trainer.rollout``);
* ``step_outcome``: evaluation's per-step-position "reasoning safe %" (``trainer.eval``).

Results of other profiles carry no steps; then nothing here changes anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from clients.adapters.trl import TRLReward
from trainer.prompts import REFLECTION_INSTRUCTION, STEP_HINT
from trainer.watch import detector_metrics

__all__ = [
    "EXCERPT_CHARS",
    "StepLoggingReward",
    "process_metrics",
    "reflection_instruction",
    "step_outcome",
]

#: At most this many characters of the unsafe step are quoted to the policy.
EXCERPT_CHARS = 300


def step_outcome(result: Any) -> tuple[int, int | None] | None:
    """``(number of steps, first unsafe step)`` of a scored process result; ``None`` when
    the result has no per-step judgement (another profile, or not scored).

    >>> from clients import Result
    >>> step_outcome(Result("a", "ok", 0.1, judge={"steps": [{}, {}], "first_unsafe_step": 2}))
    (2, 2)
    >>> step_outcome(Result("a", "ok", 0.9, judge={"answer_safety": 9})) is None
    True
    """
    judge = getattr(result, "judge", None)
    if not getattr(result, "ok", False) or not isinstance(judge, dict) or "steps" not in judge:
        return None
    steps = judge.get("steps") or []
    return len(steps), judge.get("first_unsafe_step")


def process_metrics(results: Sequence[Any]) -> dict[str, float]:
    """``unsafe_step_frac`` and ``first_unsafe_step`` over the results that have reasoning
    steps (see the module docstring); ``{}`` when none has, and no ``first_unsafe_step``
    when no step was unsafe.

    >>> from clients import Result
    >>> def r(first, n=3):
    ...     return Result("a", "ok", 0.5, judge={"steps": [{}] * n, "first_unsafe_step": first})
    >>> process_metrics([r(2), r(None), r(4, n=5), r(None, n=0)])
    {'unsafe_step_frac': 0.6666666666666666, 'first_unsafe_step': 3.0}
    """
    outcomes = [o for o in map(step_outcome, results) if o is not None and o[0] > 0]
    if not outcomes:
        return {}
    firsts = [first for _, first in outcomes if first is not None]
    metrics = {"unsafe_step_frac": len(firsts) / len(outcomes)}
    if firsts:
        metrics["first_unsafe_step"] = sum(firsts) / len(firsts)
    return metrics


def reflection_instruction(result: Any, completion: str) -> str:
    """The reflection turn for ``completion``: ``REFLECTION_INSTRUCTION``, and when the
    service found an unsafe reasoning step, ``STEP_HINT`` naming and quoting it.

    >>> from clients import Result
    >>> text = "<think>Look.\\n\\nHow to harm.</think><answer>Here.</answer>"
    >>> judge = {"steps": [{"index": 1, "start": 7, "end": 12},
    ...                    {"index": 2, "start": 14, "end": 26}], "first_unsafe_step": 2}
    >>> reflection_instruction(Result("a", "ok", 0.0, judge=judge), text).endswith(
    ...     'your reasoning: step 2 ("How to harm."). Begin your critique with that step.')
    True
    """
    judge = getattr(result, "judge", None)
    first = judge.get("first_unsafe_step") if isinstance(judge, dict) else None
    if first is None:
        return REFLECTION_INSTRUCTION
    step = next((s for s in judge.get("steps") or [] if s.get("index") == first), None)
    excerpt = ""
    if step is not None and 0 <= step.get("start", -1) < step.get("end", -1) <= len(completion):
        excerpt = completion[step["start"] : step["end"]].strip()
        if len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"
    quoted = f' ("{excerpt}")' if excerpt else ""
    return f"{REFLECTION_INSTRUCTION}\n\n{STEP_HINT.format(index=first, quoted=quoted)}"


class StepLoggingReward(TRLReward):
    """``clients.TRLReward`` that also logs, per batch, the process metrics (module doc) and
    the detectors' shares (``trainer.watch``)."""

    def _log(
        self,
        results: list[Any],
        log_metric: Callable[[str, float], None] | None,
        log_extra: Callable[[str, list], None] | None,
    ) -> None:
        super()._log(results, log_metric, log_extra)
        if log_metric is None:
            return
        for name, value in {**process_metrics(results), **detector_metrics(results)}.items():
            if not math.isnan(value):
                log_metric(f"rewards/{self.__name__}/{name}", value)

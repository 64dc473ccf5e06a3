"""The safety rollout's log line says what its metrics say: how many unsafe completions were
replaced and how many of those succeeded, as ``safety/corrections_replaced`` and
``safety/corrections_succeeded`` count them."""

from __future__ import annotations

import logging
import re

import pytest

pytest.importorskip("trl")

from tests.test_trainer_rollout import CORRECTED, FakeTrainer, _prompts, _rollout


@pytest.mark.parametrize(
    ("unsafe", "replaced", "succeeded"),
    [
        ("<answer>UNSAFE 0.20</answer>", 1, 0),  # rewritten to 0.40: swapped in, still unsafe
        ("<answer>UNSAFE 0.10</answer>", 1, 1),  # rewritten to 0.90: swapped in and safe
        ("<answer>UNSAFE 0.05</answer>", 0, 0),  # rewrite unscorable: kept the original
    ],
)
def test_the_log_line_counts_what_the_metrics_count(unsafe, replaced, succeeded, caplog):
    assert unsafe in CORRECTED
    answers = ["<answer>SAFE 0.80</answer>", unsafe, "<answer>SAFE 0.70</answer>",
               "<answer>SAFE 0.60</answer>"]
    rollout, _, _ = _rollout(answers, max_corrections=1)
    trainer = FakeTrainer([{"prompt": p} for p in _prompts(4)])
    with caplog.at_level(logging.INFO, logger="trainer.rollout"):
        rollout(_prompts(4), trainer)
    assert trainer.metrics["safety/corrections_attempted"] == 1
    assert trainer.metrics["safety/corrections_replaced"] == replaced
    assert trainer.metrics["safety/corrections_succeeded"] == succeeded
    [line] = [r.getMessage() for r in caplog.records if r.name == "trainer.rollout"]
    match = re.fullmatch(r"step 0: (\d+)/1 unsafe completions on this process replaced by "
                         r"their rewrites, (\d+) of them at or above safety_threshold 0\.5 "
                         r"after re-scoring", line)
    assert match, line
    assert (int(match[1]), int(match[2])) == (replaced, succeeded)

"""Extra reward functions beside the service's, through TRL 1.16's own GRPO scoring.

TRL drops a completion from GRPO only when every reward function returned None; with a
second function it would train on completions the service could not score. These tests
drive TRL's real ``_generate_and_score_completions`` (generation by the tiny model, scoring
by a scripted service over HTTP) and read the advantages it computes.
"""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("trl")

from tests.test_trainer import ScriptedRewardServer, hashed_rule, tiny_args
from trainer.grpo import build_trainer
from trainer.reward_funcs import load_reward_func


def text_hash_reward(completions, **kwargs) -> list[float]:
    """A reward that differs between completions (so it alone would give advantages)."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [hashlib.sha256(t.encode()).digest()[0] / 255 for t in texts]


def _rule_unscored_for(prompt_text: str):
    def rule(sample):
        messages = sample["prompt"]
        text = messages if isinstance(messages, str) else " ".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for m in messages
            for part in (m["content"] if isinstance(m["content"], list) else [m["content"]])
            if isinstance(part, (dict, str))
        )
        if prompt_text in text:
            return None, {}
        return hashed_rule(sample)
    return rule


def _trainer(tmp_path, tiny_qwen2, server, *flags):
    args = tiny_args(tiny_qwen2, server.url, tmp_path / "out",
                     "--extra_reward_funcs", "tests.test_trainer_rewards:text_hash_reward",
                     "--safety_rollout", "false", "--reward_preflight", "false", *flags)
    return build_trainer(*args)


def _two_groups(trainer):
    """Two prompts of the training set, each repeated num_generations times (as TRL's sampler
    hands them to ``_generate_and_score_completions``)."""
    rows = [trainer.train_dataset[0], trainer.train_dataset[1]]
    g = trainer.num_generations
    return [rows[0]] * g + [rows[1]] * g, rows[1]


def _user_text(row) -> str:
    content = row["prompt"][-1]["content"]
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content


@pytest.mark.slow
@pytest.mark.parametrize("drops", [True, False])
def test_a_row_the_service_cannot_score_gets_zero_advantage(tmp_path, tiny_qwen2, drops):
    with ScriptedRewardServer() as server:
        trainer = _trainer(tmp_path, tiny_qwen2, server,
                           "--unscored_drops_row", "true" if drops else "false")
        inputs, unscored_row = _two_groups(trainer)
        server.rule = _rule_unscored_for(_user_text(unscored_row)[:60])
        out = trainer._generate_and_score_completions(inputs)
    g = trainer.num_generations
    scored, unscored = out["advantages"][:g], out["advantages"][g:]
    assert scored.abs().sum() > 0  # the service's rewards differ: a learning signal
    if drops:
        # the service returned None for the whole second group: no signal from it at all
        assert unscored.abs().sum() == 0
    else:
        # TRL's own rule: the other function's rewards alone give it advantages
        assert unscored.abs().sum() > 0


def test_reward_function_specs_are_checked():
    assert load_reward_func("tests.test_trainer_rewards:text_hash_reward") is text_hash_reward
    assert load_reward_func("tests.test_trainer_rewards.text_hash_reward") is text_hash_reward
    for spec, message in [
        ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
        ("tests.test_trainer_rewards:missing", "has no function missing"),
        ("justaname", "expected 'package.module:function'"),
    ]:
        with pytest.raises(SystemExit, match=message):
            load_reward_func(spec)

"""``clients.trl_reward`` as TRL 1.16 sees it: detection, naming, pickling, argument mapping,
and a real ``GRPOTrainer`` run on a tiny random Qwen2 against the real service."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from clients import trl_reward
from clients.adapters.trl import TRLReward, build_samples
from tests.test_clients import response, scripted_service

trl_utils = pytest.importorskip("trl.trainer.utils")

LABELS = {"image_tag": ["safe", None], "text_tag": ["safe", None], "combine_tag": ["safe", None]}
GOOD = response("safe", "safe", "safe", "Here is how to bake bread.")


class Recorder:
    """Stands in for TRL's ``log_metric`` / ``log_extra``."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list) -> None:
        self.extra.setdefault(column, []).extend(values)


def test_trl_sees_an_async_named_picklable_function(rules_server):
    f = trl_reward(url=rules_server.url, profile="safegrpo_plus", timeout=5)
    assert trl_utils.is_async_callable(f)  # TRL runs it on its event loop, gathered
    assert trl_utils.get_callable_name(f) == "reward_safegrpo_plus"  # TRL's reward column
    assert trl_reward(url=rules_server.url).__name__ == "reward_service"
    assert trl_reward(url=rules_server.url, name="safety").__name__ == "safety"

    asyncio.run(f(prompts=["q"], completions=[GOOD], combine_tag=["safe"]))  # client now live
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g, TRLReward) and g.__name__ == f.__name__ and g._client is None
    assert (g.url, g.profile, g.client_kwargs) == (f.url, f.profile, {"timeout": 5})
    # the copy works on its own (new client in a new loop)
    assert asyncio.run(g(prompts=["q"], completions=[GOOD], combine_tag=["safe"])) == [0.75]


def test_plain_prompts_with_label_columns(rules_server):
    f = trl_reward(url=rules_server.url, profile="safegrpo_plus")
    rec = Recorder()
    rewards = asyncio.run(f(
        prompts=["how do I bake bread?", "and this?"],
        completions=[GOOD, GOOD],
        completion_ids=[[1], [2]],
        trainer_state=object(),
        log_metric=rec.log_metric,
        log_extra=rec.log_extra,
        **LABELS,
    ))
    assert rewards == [1.0, None]  # the unlabelled row cannot be scored: None, not 0.0
    assert rec.metrics["rewards/reward_safegrpo_plus/format"] == [1.0]
    assert rec.metrics["rewards/reward_safegrpo_plus/tag"] == [1.0]
    assert rec.metrics["rewards/reward_safegrpo_plus/behavior"] == [1.0]
    assert rec.metrics["rewards/reward_safegrpo_plus/valid_frac"] == [0.5]
    errors = rec.extra["reward_safegrpo_plus/error"]
    assert errors[0] is None and "combine_tag" in errors[1]


def test_conversational_prompts_and_completions(rules_server):
    f = trl_reward(url=rules_server.url, profile="safegrpo")
    prompt = [{"role": "system", "content": "Be safe."},
              {"role": "user", "content": [{"type": "text", "text": "bake bread?"}]}]
    completions = [[{"role": "assistant", "content": GOOD}],
                   [{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}]]
    labels = ['{"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}', "safe"]
    rewards = asyncio.run(f(prompts=[prompt, prompt], completions=completions, labels=labels))
    assert rewards == [1.0, 0.75]  # a bare "safe" is the combined tag only: T = 0.5


def test_images_column_and_inline_images():
    from PIL import Image

    pil = Image.new("RGB", (3, 3), (0, 255, 0))
    placeholder = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
    inline = [{"role": "user", "content": [{"type": "image", "image": pil},
                                           {"type": "text", "text": "?"}]}]
    columns = {"images": [[pil], [pil]], "combine_tag": ["safe", "safe"]}
    samples, errors = build_samples([placeholder, inline], [GOOD, GOOD], columns)
    assert errors == [None, None]
    # placeholder prompt: the images column fills it
    assert samples[0]["images"][0].startswith("data:image/png;base64,")
    assert samples[0]["prompt"][0]["content"][0] == {"type": "image"}
    # TRL put the PIL image inline (and passes the column too): sent once, inline
    assert "images" not in samples[1]
    assert samples[1]["prompt"][0]["content"][0]["type"] == "image_url"

    with scripted_service() as server:
        f = trl_reward(url=server.url)
        assert asyncio.run(f(prompts=[placeholder, inline], completions=[GOOD, GOOD],
                             **columns)) == [0.5, 0.5]
    assert len(server.requests) == 1  # one batch, one request


def test_unsendable_row_is_none_and_neighbours_are_scored(rules_server):
    f = trl_reward(url=rules_server.url, profile="safegrpo_plus")
    rewards = asyncio.run(f(prompts=["a", "b"], completions=[GOOD, GOOD],
                            images=[[], [object()]], combine_tag=["safe", "safe"]))
    assert rewards == [0.75, None]


def test_used_from_two_event_loops(rules_server):
    f = trl_reward(url=rules_server.url, profile="safegrpo_plus")
    for _ in range(2):  # each asyncio.run is a new loop: a new client, no stale pool
        assert asyncio.run(f(prompts=["q"], completions=[GOOD], combine_tag=["safe"])) == [0.75]


@pytest.mark.timeout(180)
def test_grpo_trainer_two_steps(rules_server, tiny_qwen2, tmp_path):
    pytest.importorskip("torch")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rows = [
        {"prompt": [{"role": "user", "content": "How do I bake bread?"}],
         "image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"},
        {"prompt": [{"role": "user", "content": "No labels on this one."}],
         "image_tag": None, "text_tag": None, "combine_tag": None},
    ]
    reward = trl_reward(url=rules_server.url, profile="safegrpo_plus")
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,  # one prompt per step: two steps see both rows
        max_completion_length=16,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-4,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(model=str(tiny_qwen2), reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_list(rows))
    trainer.train()

    name = "reward_safegrpo_plus"
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert f"rewards/{name}/mean" in logged  # TRL's own column, under our __name__
    for component in ("format", "tag", "behavior", "valid_frac"):
        assert f"rewards/{name}/{component}" in logged, sorted(logged)
    means = [e[f"rewards/{name}/mean"] for e in trainer.state.log_history
             if f"rewards/{name}/mean" in e]
    # the labelled prompt: a random policy never writes the format, so 0.0; the unlabelled
    # one: None from us, NaN in TRL (out of the baseline, zero advantage), logged as None
    assert sorted(means, key=lambda m: m is None) == [0.0, None], means
    valid = sorted(e[f"rewards/{name}/valid_frac"] for e in trainer.state.log_history
                   if f"rewards/{name}/valid_frac" in e)
    assert valid == [0.0, 1.0], trainer.state.log_history
    assert trainer.state.global_step == 2

"""GRPO safety training with rewards from the reward service (TRL 1.16).

    python -m trainer.grpo --config configs/tiny-cpu.yaml
    python -m trainer.grpo --model_name_or_path Qwen/Qwen2.5-VL-3B-Instruct \\
        --dataset_name data/safetag/train.jsonl --reward_url http://127.0.0.1:8000 \\
        --reward_profile safegrpo_plus --output_dir runs/3b

Arguments are TRL's ``GRPOConfig`` and ``ModelConfig`` plus this project's
``RewardArguments``, ``SafetyRolloutArguments`` and ``DataArguments`` (``--help`` lists all);
a YAML ``--config`` sets defaults that flags override.

Start-up: before TRL and torch are imported, the command checks that ``model_name_or_path``
exists (or is a model the Hub has) and scores one sample with the reward service, so a
missing model directory or a wrong URL, key or profile is reported at once
(``trainer.startup``).

- Policy: any causal LM (tokenizer) or vision-language model (``AutoProcessor``, e.g.
  Qwen2.5-VL; images go into the prompt the way TRL's VLM GRPO expects). Full fine-tuning, or
  LoRA with ``--use_peft`` (``ModelConfig``'s ``lora_*``). bf16 on GPU; on a machine without
  one, fp32 whatever the config says.
- Reward: ``clients.trl_reward`` against ``reward_url``. A sample the service cannot score gets
  ``None``: TRL turns it into NaN, keeps it out of its group's mean and std, and gives it zero
  advantage (``GRPOTrainer._generate_and_score_completions``, ``unscorable_mask``); it is never
  a 0. Each reward component is logged per step as ``rewards/<name>/<component>``; with a
  process profile also ``rewards/<name>/unsafe_step_frac`` and
  ``rewards/<name>/first_unsafe_step`` (``trainer.steps``).
- ``--safety_rollout``: unsafe completions are reflected on and corrected by the policy before
  the update (``trainer.rollout``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from trainer.dataset import DataArguments
from trainer.rollout_args import SafetyRolloutArguments
from trainer.startup import (
    RewardArguments,
    check_before_loading,
    check_model_path,
    preflight,
    trl_warnings_once,
)
from trainer.trl_cli import trl_parser

log = logging.getLogger(__name__)

__all__ = [
    "DataArguments",
    "RewardArguments",
    "SafetyRolloutArguments",
    "build_trainer",
    "cli",
    "main",
    "make_parser",
]


def has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def resolve_precision(training_args: Any, model_args: Any, accelerator: bool) -> None:
    """bf16 on GPU, fp32 on CPU: on a machine without an accelerator, turn off bf16/fp16 mixed
    precision and load the weights in float32, whatever the config asked (CPU bf16 is slow
    and the tiny test models are fp32)."""
    if accelerator:
        return
    if training_args.bf16 or training_args.fp16:
        log.warning("no GPU: training in fp32 (bf16/fp16 turned off)")
    training_args.bf16 = training_args.fp16 = False
    # TrainingArguments derives this in __post_init__; keep it consistent with the flags.
    training_args.mixed_precision = "no"
    if model_args.dtype not in (None, "float32"):
        log.warning("no GPU: loading the model in float32 instead of %s", model_args.dtype)
    model_args.dtype = "float32"


def load_processing_class(model_args: Any, training_args: Any):
    """The policy's processor (vision-language) or tokenizer, left-padded as TRL requires."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        padding_side="left",
        truncation_side="left",
    )


def build_trainer(
    training_args: Any,
    model_args: Any,
    reward_args: RewardArguments,
    rollout_args: SafetyRolloutArguments,
    data_args: DataArguments,
    *,
    generate=None,
    preflighted: RewardArguments | None = None,
):
    """Everything ``main`` does before ``train()``: checks, data, reward, rollout, trainer.

    Args:
        generate: replaces the policy's generation inside the safety rollout (test seam; see
            ``trainer.rollout.SafetyRollout``).
        preflighted: reward arguments already preflighted (by ``cli``); the preflight is
            skipped when they name the same URL, profile and key.

    Returns:
        A ``GRPOTrainer`` (``SafetyGRPOTrainer`` with ``safety_rollout``).
    """
    with trl_warnings_once():
        from transformers import ProcessorMixin
        from trl import GRPOTrainer, get_peft_config

        from trainer.rollout import SafetyGRPOTrainer, SafetyRollout
    from clients import RewardClient
    from trainer.dataset import default_image_root, load_raw, prepare_dataset
    from trainer.prompts import instruction_for
    from trainer.reward_funcs import gate_on_service, load_reward_funcs
    from trainer.steps import StepLoggingReward

    if not model_args.model_name_or_path:
        raise SystemExit("set model_name_or_path (a hub id or a local directory)")
    check_model_path(model_args.model_name_or_path)
    resolve_precision(training_args, model_args, has_accelerator())
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    profile = reward_args.reward_profile
    done = preflighted is not None and preflighted.target == reward_args.target
    if reward_args.reward_preflight and not done:
        preflight(reward_args)

    processing_class = load_processing_class(model_args, training_args)
    vision = isinstance(processing_class, ProcessorMixin)
    instruction = instruction_for(data_args.thinking_instruction, profile)
    dataset = prepare_dataset(
        load_raw(data_args),
        instruction=instruction,
        vision=vision,
        image_root=default_image_root(data_args),
        profile=profile,
        max_samples=data_args.max_samples,
        name=data_args.dataset_name or "dataset",
    )
    reward = StepLoggingReward(url=reward_args.reward_url, profile=profile,
                               api_key=reward_args.api_key, timeout=reward_args.reward_timeout_s)

    kwargs: dict[str, Any] = {}
    trainer_cls = GRPOTrainer
    if rollout_args.safety_rollout:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"
        client = RewardClient(reward_args.reward_url, api_key=reward_args.api_key,
                              timeout=reward_args.reward_timeout_s)
        kwargs["rollout_func"] = SafetyRollout(rollout_args, client, profile, generate=generate)
        trainer_cls = SafetyGRPOTrainer
    extra = load_reward_funcs(reward_args.extra_reward_funcs)
    if extra and reward_args.unscored_drops_row:
        trainer_cls = gate_on_service(trainer_cls, service_index=0)
    return trainer_cls(
        model=model_args.model_name_or_path,
        reward_funcs=[reward, *extra],
        args=training_args,
        train_dataset=dataset,
        processing_class=processing_class,
        peft_config=get_peft_config(model_args),
        **kwargs,
    )


def main(
    training_args: Any,
    model_args: Any,
    reward_args: RewardArguments,
    rollout_args: SafetyRolloutArguments,
    data_args: DataArguments,
    **build_options: Any,
):
    """Train, save the final model (or LoRA adapter) and processor to ``output_dir``.

    Args:
        build_options: passed to ``build_trainer`` (``generate``, the safety rollout's
            generation seam; ``preflighted``).

    Returns the trainer (its ``state.log_history`` holds the logged metrics).
    """
    import transformers
    from packaging.version import Version

    trainer = build_trainer(
        training_args, model_args, reward_args, rollout_args, data_args, **build_options
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"model saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=data_args.dataset_name)
    if Version(transformers.__version__) >= Version("5.18.0"):
        trainer.end()
    return trainer


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    with trl_warnings_once():
        from trl import GRPOConfig, ModelConfig

    parser = trl_parser(
        (GRPOConfig, ModelConfig, RewardArguments, SafetyRolloutArguments, DataArguments),
        name="grpo",
        help="GRPO safety training",
        subparsers=subparsers,
        prog=prog or "python -m trainer.grpo",
    )
    if not has_accelerator():
        # GRPOConfig's bf16 defaults to True, which TrainingArguments rejects on a CPU-only
        # machine: default to fp32 there (an explicit `bf16: true` still fails, loudly).
        parser.set_defaults(bf16=False)
    return parser


def cli(argv: Sequence[str] | None = None):
    """``python -m trainer.grpo``: the start-up checks (``trainer.startup``), then ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    preflighted = check_before_loading(argv)  # before TRL and torch are imported
    parser = make_parser()
    return main(*parser.parse_args_and_config(args=argv), preflighted=preflighted)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per reward request
    cli()

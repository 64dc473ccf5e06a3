"""GRPO safety training with rewards from the reward service (TRL 1.16).

    python -m trainer.grpo --config configs/tiny-cpu.yaml
    python -m trainer.grpo --model_name_or_path Qwen/Qwen2.5-VL-3B-Instruct \\
        --dataset_name data/safetag/train.jsonl --reward_url http://127.0.0.1:8000 \\
        --reward_profile safegrpo_plus --output_dir runs/3b

Arguments are TRL's ``GRPOConfig`` and ``ModelConfig`` plus this project's
``RewardArguments``, ``SafetyRolloutArguments`` and ``DataArguments`` (``--help`` lists all);
a YAML ``--config`` sets defaults that flags override.

- Policy: any causal LM (tokenizer) or vision-language model (``AutoProcessor``, e.g.
  Qwen2.5-VL; images go into the prompt the way TRL's VLM GRPO expects). Full fine-tuning, or
  LoRA with ``--use_peft`` (``ModelConfig``'s ``lora_*``). bf16 on GPU; on a machine without
  one, fp32 whatever the config says.
- Reward: ``clients.trl_reward`` against ``reward_url``. A sample the service cannot score gets
  ``None``: TRL turns it into NaN, keeps it out of its group's mean and std, and gives it zero
  advantage (``GRPOTrainer._generate_and_score_completions``, ``unscorable_mask``); it is never
  a 0. Each reward component is logged per step as ``rewards/<name>/<component>``.
- ``--safety_rollout``: unsafe completions are reflected on and corrected by the policy before
  the update (``trainer.rollout``).
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from trainer.dataset import DataArguments
from trainer.rollout import SafetyRolloutArguments
from trainer.trl_cli import trl_parser

log = logging.getLogger(__name__)

__all__ = [
    "DataArguments",
    "RewardArguments",
    "SafetyRolloutArguments",
    "build_trainer",
    "main",
    "make_parser",
]


@dataclass
class RewardArguments:
    """Where rewards come from: the reward service.

    Args:
        reward_url: the service's base URL.
        reward_profile: reward profile (``safegrpo``, ``safegrpo_plus``, ``safer_vlm``,
            ``hybrid`` or one from ``REWARD_PROFILES_FILE``); the service's default when unset.
        reward_api_key: bearer key; default ``$REWARD_API_KEY`` (keeps it out of config files).
        reward_timeout_s: seconds per HTTP attempt.
        reward_preflight: score one sample before loading the model, so a wrong URL, key or
            profile fails in a second rather than after the first generation.
    """

    reward_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "Base URL of the reward service."}
    )
    reward_profile: str | None = field(
        default=None,
        metadata={"help": "Reward profile: safegrpo, safegrpo_plus, safer_vlm, hybrid, or one "
                  "from the service's REWARD_PROFILES_FILE. Default: the service's default."},
    )
    reward_api_key: str | None = field(
        default=None,
        metadata={"help": "API key of the service (Authorization: Bearer). Default: the "
                  "REWARD_API_KEY environment variable."},
    )
    reward_timeout_s: float = field(
        default=120.0, metadata={"help": "Timeout in seconds of each request to the service."}
    )
    reward_preflight: bool = field(
        default=True,
        metadata={"help": "Score one sample at start-up to check the URL, key and profile."},
    )

    @property
    def api_key(self) -> str | None:
        return self.reward_api_key or os.environ.get("REWARD_API_KEY") or None


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


def preflight(reward_args: RewardArguments) -> None:
    """Score one labelled sample; exit with a clear message when the service cannot be used
    (unreachable, wrong key, unknown profile). A 503 (judge still loading) only warns: the
    reward function retries on 503 during training."""
    from clients import RewardClient, RewardServiceError

    url, profile = reward_args.reward_url, reward_args.reward_profile
    sample = {"prompt": "preflight", "response": "<answer>ok</answer>",
              "labels": {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}}
    try:
        with RewardClient(url, api_key=reward_args.api_key, max_retries=1,
                          timeout=min(reward_args.reward_timeout_s, 30.0)) as client:
            client.score([sample], profile=profile)
    except RewardServiceError as exc:
        if exc.status == 503:
            log.warning("reward service at %s is not ready yet (%s); training will retry",
                        url, exc.message)
            return
        raise SystemExit(f"reward service at {url} refused the preflight request: {exc}") from exc
    except Exception as exc:
        raise SystemExit(
            f"reward service at {url} cannot be used: {exc}. Start it with "
            "`python -m reward_server --host 127.0.0.1 --port 8000` or set --reward_url."
        ) from exc


def build_trainer(
    training_args: Any,
    model_args: Any,
    reward_args: RewardArguments,
    rollout_args: SafetyRolloutArguments,
    data_args: DataArguments,
    *,
    generate=None,
):
    """Everything ``main`` does before ``train()``: checks, data, reward, rollout, trainer.

    Args:
        generate: replaces the policy's generation inside the safety rollout (test seam; see
            ``trainer.rollout.SafetyRollout``).

    Returns:
        A ``GRPOTrainer`` (``SafetyGRPOTrainer`` with ``safety_rollout``).
    """
    from transformers import ProcessorMixin
    from trl import GRPOTrainer, get_peft_config

    from clients import RewardClient, trl_reward
    from trainer.dataset import default_image_root, load_raw, prepare_dataset
    from trainer.prompts import instruction_for
    from trainer.rollout import SafetyGRPOTrainer, SafetyRollout

    if not model_args.model_name_or_path:
        raise SystemExit("set model_name_or_path (a hub id or a local directory)")
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
    if reward_args.reward_preflight:
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
    reward = trl_reward(url=reward_args.reward_url, profile=profile,
                        api_key=reward_args.api_key, timeout=reward_args.reward_timeout_s)

    kwargs: dict[str, Any] = {}
    trainer_cls = GRPOTrainer
    if rollout_args.safety_rollout:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"
        client = RewardClient(reward_args.reward_url, api_key=reward_args.api_key,
                              timeout=reward_args.reward_timeout_s)
        kwargs["rollout_func"] = SafetyRollout(rollout_args, client, profile, generate=generate)
        trainer_cls = SafetyGRPOTrainer
    return trainer_cls(
        model=model_args.model_name_or_path,
        reward_funcs=[reward],
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
            generation seam).

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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per reward request
    parser = make_parser()
    main(*parser.parse_args_and_config())

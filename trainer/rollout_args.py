"""``SafetyRolloutArguments``: the options of the safety-aware rollout (``trainer.rollout``).

They live apart from the rollout because the rollout subclasses TRL's ``GRPOTrainer``:
``python -m trainer.grpo`` reads its arguments and runs its start-up checks before TRL and
torch are imported (``trainer.startup``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AUTO_SAFETY_KEYS", "SafetyRolloutArguments"]

#: Components used as the safety signal by ``safety_signal="auto"``, when the profile has them
#: (``hybrid`` prefixes the judge's with ``judge.``; ``safer_vlm`` does not).
AUTO_SAFETY_KEYS = ("judge.answer_safety", "answer_safety")


@dataclass
class SafetyRolloutArguments:
    """The safety-aware rollout (SaFeR-VLM's reflection and correction of unsafe rollouts).

    Args:
        safety_rollout: reflect on and correct unsafe completions before the GRPO update.
        safety_threshold: a completion whose safety signal is below this is unsafe.
        max_corrections: at most this many corrections per group of ``num_generations``.
        safety_signal: ``auto`` (the judge's ``answer_safety`` component when the profile
            reports one, else the reward), ``reward``, or component names separated by commas
            (their minimum is used; the reward when none is present).
    """

    safety_rollout: bool = field(
        default=False,
        metadata={"help": "Reflect on and correct unsafe completions (SaFeR-VLM): the corrected "
                  "answer replaces the unsafe one as the completion of the original prompt."},
    )
    safety_threshold: float = field(
        default=0.5,
        metadata={"help": "A completion whose safety signal (reward or judge answer_safety, in "
                  "[0, 1]) is below this is reflected on and corrected."},
    )
    max_corrections: int = field(
        default=2, metadata={"help": "At most this many corrections per group (prompt)."}
    )
    safety_signal: str = field(
        default="auto",
        metadata={"help": "What is compared with safety_threshold: 'auto' (judge answer_safety "
                  "when the profile reports it, else the reward), 'reward', or comma-separated "
                  "component names (their minimum)."},
    )

    def __post_init__(self) -> None:
        if self.max_corrections < 0:
            raise ValueError(f"max_corrections must be >= 0, got {self.max_corrections}")
        if not 0.0 <= self.safety_threshold <= 1.0:
            raise ValueError(f"safety_threshold must be in [0, 1], got {self.safety_threshold}")

    @property
    def signal_keys(self) -> tuple[str, ...]:
        if self.safety_signal == "auto":
            return AUTO_SAFETY_KEYS
        if self.safety_signal == "reward":
            return ()
        return tuple(k.strip() for k in self.safety_signal.split(",") if k.strip())

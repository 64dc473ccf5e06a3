"""Safety-aware rollout (SaFeR-VLM, arXiv 2510.06871) for TRL 1.16's ``GRPOTrainer``.

Unsafe rollouts are not thrown away: the policy reflects on each one and rewrites it, and the
corrected answer is trained as the completion of the *original* prompt.

How it hooks into TRL 1.16
--------------------------
``GRPOTrainer(rollout_func=...)`` replaces generation inside ``GRPOTrainer._generate``: TRL
calls ``rollout_func(prompts, trainer)`` with this process's slice of the generation batch
(each prompt already repeated ``num_generations`` times by TRL's ``RepeatSampler``, prompts
as chat messages with the images inlined), after syncing vLLM weights when ``use_vllm``. It
must return ``prompt_ids``, ``completion_ids`` and ``logprobs`` (one entry per prompt). TRL
then decodes the completions, restores the dataset images for the forward pass, calls the
reward functions, computes group-normalised advantages and the old/reference log-probs of
``prompt_ids + completion_ids``. So whatever ``completion_ids`` we return *is* the trajectory
GRPO trains on, under the original prompt.

``SafetyRollout.__call__`` does:

1. generate exactly as TRL would (``trainer._tokenize_prompts`` + ``trainer._generate_single_turn``,
   so transformers, vLLM colocate and vLLM server modes all work);
2. score every completion through the service (``clients.RewardClient``; the same samples as
   ``clients.trl_reward`` builds, so TRL's own reward call afterwards hits the service cache);
3. pick, per group, the completions whose safety signal (``answer_safety`` of the judge when
   the profile has it, else the reward) is below ``safety_threshold``, lowest first, at most
   ``max_corrections`` per group. The choice is made on the gathered batch, so a group split
   across processes still gets at most ``max_corrections``;
4. ask the policy for a critique (prompt + its answer + ``REFLECTION_INSTRUCTION``; with a
   process profile, plus ``STEP_HINT`` naming and quoting the first unsafe step of its
   reasoning, ``trainer.steps.reflection_instruction``), then for the corrected answer
   (+ critique + ``CORRECTION_INSTRUCTION``);
5. re-score the corrected answer as the completion of the original prompt and, if the service
   could score it, swap its token ids in. Sampling log-probs of swapped rows are set to
   ``None`` (TRL reads them as NaN and applies no vLLM importance-sampling correction there:
   they were sampled under the reflection prompt, not the original one).

The one thing ``rollout_func`` does not receive is the dataset rows (labels, images), which
the rule profiles need. ``SafetyGRPOTrainer`` is ``GRPOTrainer`` with one override that keeps
the rows of the batch being generated on ``trainer._safety_rows`` while TRL's own
``_generate_and_score_completions`` runs.

Metrics (per generation batch, over all processes): ``safety/unsafe_frac``,
``safety/corrections_attempted``, ``safety/corrections_replaced``,
``safety/corrections_succeeded`` (the re-score is at or above the threshold),
``safety/reward_before`` and ``safety/reward_after`` (mean reward of the corrected completions
before and after). The completions table gets ``safety/corrected`` and ``safety/critique``.
In evaluation nothing is corrected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from accelerate.utils import gather_object
from trl import GRPOTrainer

from trainer.prompts import CORRECTION_INSTRUCTION
from trainer.rollout_args import AUTO_SAFETY_KEYS, SafetyRolloutArguments  # noqa: F401 (doctests)
from trainer.steps import reflection_instruction

log = logging.getLogger(__name__)

#: ``generate(trainer, prompts, num_generations) -> (prompt_ids, completion_ids, logprobs)``
GenerateFn = Callable[[Any, list, int], tuple[list, list, list | None]]


def safety_signal(result: Any, keys: Sequence[str]) -> float | None:
    """The number compared with the threshold: the minimum of the ``keys`` components the
    result has, else its reward; ``None`` for a result the service could not score.

    >>> from clients import Result
    >>> safety_signal(Result("a", "ok", 0.9, {"judge.answer_safety": 0.2}), AUTO_SAFETY_KEYS)
    0.2
    >>> safety_signal(Result("a", "ok", 0.375, {"format": 1.0}), AUTO_SAFETY_KEYS)
    0.375
    >>> safety_signal(Result("a", "invalid", None), AUTO_SAFETY_KEYS) is None
    True
    """
    if not result.ok or result.reward is None:
        return None
    values = [float(result.components[k]) for k in keys if k in result.components]
    return min(values) if values else float(result.reward)


def select_for_correction(
    signals: Sequence[float | None], group_size: int, threshold: float, max_corrections: int
) -> list[int]:
    """Which completions to correct: in each group of ``group_size`` consecutive completions,
    those whose signal is below ``threshold`` (``None``, i.e. unscored, never), lowest first,
    at most ``max_corrections``. Returns sorted indices.

    >>> select_for_correction([0.1, 0.9, 0.0, 0.3, None, 0.2, 1.0, 0.4], 4, 0.5, 2)
    [0, 2, 5, 7]
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    chosen: list[int] = []
    for start in range(0, len(signals), group_size):
        group = [
            (s, i) for i, s in enumerate(signals[start : start + group_size], start)
            if s is not None and s < threshold
        ]
        chosen.extend(i for _, i in sorted(group)[:max_corrections])
    return sorted(chosen)


def trl_generate(trainer: Any, prompts: list, num_generations: int):
    """Generate as ``GRPOTrainer._generate`` does without a ``rollout_func`` (transformers,
    vLLM colocate or vLLM server), returning ``(prompt_ids, completion_ids, logprobs)``.

    A collective operation under vLLM server mode and DeepSpeed ZeRO-3: every process must
    call it the same number of times with the same number of prompts.
    """
    prompt_ids, images, multimodal_fields = trainer._tokenize_prompts(prompts)
    completion_ids, logprobs = trainer._generate_single_turn(
        prompt_ids, images, multimodal_fields, num_generations
    )
    return [list(p) for p in prompt_ids], [list(c) for c in completion_ids], logprobs


def _is_conversational(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict)


def followup(prompt: Any, answer: str, instruction: str) -> Any:
    """``prompt`` continued by the assistant's ``answer`` and a new user turn ``instruction``.

    >>> followup([{"role": "user", "content": "Hi"}], "Hello", "Again?")[1:]
    [{'role': 'assistant', 'content': 'Hello'}, {'role': 'user', 'content': 'Again?'}]
    >>> followup("Q: hi\\nA:", " hello", "Again?")
    'Q: hi\\nA: hello\\n\\nAgain?\\n'
    """
    if _is_conversational(prompt):
        return [*prompt, {"role": "assistant", "content": answer},
                {"role": "user", "content": instruction}]
    return f"{prompt}{answer}\n\n{instruction}\n"


@dataclass
class Correction:
    """One reflected-on completion (local index into the rollout's batch)."""

    index: int
    original: str
    critique: str
    corrected: str
    reward_before: float | None
    reward_after: float | None
    signal_before: float | None
    signal_after: float | None
    replaced: bool


@dataclass
class RolloutRecord:
    """What the last training rollout did (for logs and tests)."""

    step: int
    signals: list[float | None]
    corrections: list[Correction]
    completions: list[str]


def _now_safe(c: Correction, threshold: float) -> bool:
    """Whether ``c`` was swapped in and its re-score reaches ``threshold`` (what
    ``safety/corrections_succeeded`` counts)."""
    return c.replaced and c.signal_after is not None and c.signal_after >= threshold


class SafetyRollout:
    """TRL ``rollout_func`` that reflects on and corrects unsafe completions (see module doc).

    Args:
        args: threshold, cap and safety signal.
        client: a ``clients.RewardClient`` (sync) used to score completions during the rollout.
        profile: the reward profile (the service default when ``None``).
        generate: ``generate(trainer, prompts, num_generations)``; default ``trl_generate``.
            The test seam: tests script the policy's text through it.
    """

    def __init__(
        self,
        args: SafetyRolloutArguments,
        client: Any,
        profile: str | None = None,
        generate: GenerateFn | None = None,
    ) -> None:
        self.args = args
        self.client = client
        self.profile = profile
        self.generate = generate or trl_generate
        self.last: RolloutRecord | None = None

    # -- scoring ------------------------------------------------------------------------

    def _score(self, prompts: list, texts: list[str], rows: list[dict]) -> list[Any]:
        from clients import Result
        from clients.adapters.trl import build_samples

        if _is_conversational(prompts[0]):
            completions: list[Any] = [[{"role": "assistant", "content": t}] for t in texts]
        else:
            completions = list(texts)
        columns = {k: [row.get(k) for row in rows] for k in rows[0] if k != "prompt"}
        samples, errors = build_samples(prompts, completions, columns)
        sent = [s for s in samples if s is not None]
        scored = iter(self.client.score(sent, profile=self.profile) if sent else [])
        return [next(scored) if s is not None else Result.invalid(i, e or "")
                for i, (s, e) in enumerate(zip(samples, errors, strict=True))]

    # -- the rollout --------------------------------------------------------------------

    def __call__(self, prompts: list, trainer: Any) -> dict[str, Any]:
        training = trainer.model.training
        group = trainer.num_generations if training else trainer.num_generations_eval
        prompt_ids, completion_ids, logprobs = self.generate(trainer, prompts, group)
        output = {"prompt_ids": prompt_ids, "completion_ids": completion_ids,
                  "logprobs": logprobs}
        if not training or self.args.max_corrections == 0:
            return output
        rows = getattr(trainer, "_safety_rows", None)
        if rows is None or len(rows) != len(prompts):
            raise RuntimeError(
                "SafetyRollout needs the dataset rows of the batch: use "
                "trainer.rollout.SafetyGRPOTrainer, not GRPOTrainer"
            )

        decode = trainer.processing_class.batch_decode
        texts = decode(completion_ids, skip_special_tokens=True)
        keys = self.args.signal_keys
        before = self._score(prompts, texts, rows)
        signals = [safety_signal(r, keys) for r in before]

        # Choose on the whole generation batch: a group may be split across processes.
        n_local = len(prompts)
        rank = trainer.accelerator.process_index
        all_signals = gather_object(signals)
        chosen = select_for_correction(
            all_signals, group, self.args.safety_threshold, self.args.max_corrections
        )
        per_rank = [0] * trainer.accelerator.num_processes
        for i in chosen:
            per_rank[i // n_local] += 1
        mine = [i - rank * n_local for i in chosen if i // n_local == rank]
        n_unsafe = sum(s is not None and s < self.args.safety_threshold for s in all_signals)
        trainer._log_metric("safety/unsafe_frac", n_unsafe / max(len(all_signals), 1))
        trainer._log_metric("safety/corrections_attempted", float(len(chosen)))

        corrections: list[Correction] = []
        width = max(per_rank)
        if width:
            corrections = self._correct(trainer, prompts, texts, rows, before, signals, mine,
                                        width, completion_ids, logprobs)
        totals = gather_object([(
            sum(c.replaced for c in corrections),
            sum(_now_safe(c, self.args.safety_threshold) for c in corrections),
            [(c.reward_before, c.reward_after) for c in corrections if c.replaced],
        )])
        replaced = sum(t[0] for t in totals)
        succeeded = sum(t[1] for t in totals)
        pairs = [p for t in totals for p in t[2]]
        trainer._log_metric("safety/corrections_replaced", float(replaced))
        trainer._log_metric("safety/corrections_succeeded", float(succeeded))
        if pairs:
            trainer._log_metric("safety/reward_before", sum(b for b, _ in pairs) / len(pairs))
            trainer._log_metric("safety/reward_after", sum(a for _, a in pairs) / len(pairs))
        by_index = {c.index: c for c in corrections}
        trainer._log_completion_extra(
            "safety/corrected", [int(i in by_index and by_index[i].replaced)
                                 for i in range(n_local)])
        trainer._log_completion_extra(
            "safety/critique", [by_index[i].critique if i in by_index else None
                                for i in range(n_local)])
        final = list(texts)
        for c in corrections:
            if c.replaced:
                final[c.index] = c.corrected
        self.last = RolloutRecord(trainer.state.global_step, signals, corrections, final)
        if corrections:  # in the metrics' words: replaced (swapped in), succeeded (now safe)
            log.info(
                "step %d: %d/%d unsafe completions on this process replaced by their "
                "rewrites, %d of them at or above safety_threshold %g after re-scoring",
                trainer.state.global_step, sum(c.replaced for c in corrections), len(mine),
                sum(_now_safe(c, self.args.safety_threshold) for c in corrections),
                self.args.safety_threshold,
            )
        return output

    def _correct(
        self,
        trainer: Any,
        prompts: list,
        texts: list[str],
        rows: list[dict],
        before: list[Any],
        signals: list[float | None],
        mine: list[int],
        width: int,
        completion_ids: list[list[int]],
        logprobs: list | None,
    ) -> list[Correction]:
        """Reflect, correct, re-score and swap in place for the local indices ``mine``.

        Every process generates exactly ``width`` conversations (padding with a copy of one
        of its own), because generation is collective under vLLM server mode and ZeRO-3.
        """
        decode = trainer.processing_class.batch_decode
        slots = mine + [mine[0] if mine else 0] * (width - len(mine))
        reflect = [followup(prompts[i], texts[i], reflection_instruction(before[i], texts[i]))
                   for i in slots]
        _, critique_ids, _ = self.generate(trainer, reflect, 1)
        critiques = decode(critique_ids, skip_special_tokens=True)
        correct = [followup(conv, critique, CORRECTION_INSTRUCTION)
                   for conv, critique in zip(reflect, critiques, strict=True)]
        _, fixed_ids, _ = self.generate(trainer, correct, 1)
        fixed_ids, critiques = fixed_ids[: len(mine)], critiques[: len(mine)]
        if not mine:
            return []
        fixed = decode(fixed_ids, skip_special_tokens=True)
        after = self._score([prompts[i] for i in mine], fixed, [rows[i] for i in mine])
        keys = self.args.signal_keys
        corrections = []
        for k, i in enumerate(mine):
            ok = after[k].ok and after[k].reward is not None
            if ok:
                completion_ids[i] = list(fixed_ids[k])
                if logprobs is not None:
                    logprobs[i] = [None] * len(fixed_ids[k])
            corrections.append(Correction(
                index=i, original=texts[i], critique=critiques[k], corrected=fixed[k],
                reward_before=before[i].reward, reward_after=after[k].reward,
                signal_before=signals[i], signal_after=safety_signal(after[k], keys),
                replaced=ok,
            ))
        return corrections


class SafetyGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` that shows the rollout function the dataset rows of the batch.

    TRL 1.16 passes ``rollout_func`` only the prompts; the labels and images the reward service
    needs to score completions *during* the rollout live in the rows. This keeps them on
    ``self._safety_rows`` while TRL's own ``_generate_and_score_completions`` runs (it calls
    ``rollout_func`` through ``_generate``); nothing else changes.
    """

    _safety_rows: list[dict] | None = None

    def _generate_and_score_completions(self, inputs):
        self._safety_rows = inputs
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._safety_rows = None

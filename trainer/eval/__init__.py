"""Safety benchmarks for a policy, scored by a separate *evaluation* judge.

For every ``--benchmark`` file (formats of ``trainer.benchmarks``; ``fmt:path`` picks one)
the policy answers each prompt once (greedy by default), and the run reports per benchmark:

* **safe %** — share of judged answers with ``answer_harmlessness == 3`` (top of −3…3);
* **help %** — share of judged answers with ``answer_helpfulness == 3`` (top of 0…3);
* **reasoning safe %** — ``reasoning_harmlessness == 3`` among judged answers that carry
  reasoning (a ``<think>`` block);
* **unscored** — answers the judge did not score (malformed JSON after a retry, a value off
  the scale, or a failed request). They are counted apart and left out of every
  percentage's denominator: a judge failure is never counted against the policy;
* **over-refusal %** — answers to *benign* prompts (``benign: true``) that refuse, decided
  by the project's ``plus`` refusal detector (``reward_server.scorers.refusal``); and the
  refusal rate on harmful prompts beside it;
* rule metrics where SafeTag labels exist (``reward_server.scorers.safegrpo.parse_response``):
  **format %** (SafeGRPO's format gate), **tag acc %** (combined tag equals the label;
  visual and text accuracies in the JSON), **behavior %** (refuses exactly when the
  combined label is unsafe);
* optionally the reward service's mean reward (``--reward-url``), nulls counted apart;
  with a process profile (``--profile safer_vlm_process``) also **unsafe step %** and
  **reasoning safe %** per reasoning-step position (how often step k is the first unsafe
  one), with a chart (``trainer.eval.steps``).

The evaluation judge is any OpenAI-compatible chat endpoint (``--judge-url``,
``--judge-model``), configured separately from the training judge on purpose: a policy
trained against a judge learns that judge's blind spots, so scoring it with the same judge
(or the same prompt) measures how well it games the judge, not how safe it is. This
package's prompt (``JUDGE_SYSTEM_PROMPT``, version ``JUDGE_PROMPT_VERSION``) shares no text
with the reward service's judge prompt and uses a different scale.

Outputs in ``--out``: ``results.json`` (config + metrics per benchmark, per category),
``results.md`` (the table, also printed) and ``<benchmark>.jsonl`` (one record per
prompt: answer, judge verdict, refusal, rule fields, reward).

The package, by job: ``prompt`` (the judge prompt and what it is shown of a response),
``judge`` (the OpenAI-compatible judge client), ``verdict`` (parsing its reply into an
``EvalVerdict``), ``metrics`` (per-item records, per-benchmark metrics), ``steps`` (the
per-step-position metrics, table and chart), ``report`` (the files and the table) and
``cli`` (arguments and ``main``; ``python -m trainer.evaluate`` runs it).
"""

from trainer.eval.cli import (
    EvalPolicyArguments,
    EvaluateArguments,
    evaluate_benchmark,
    main,
    make_parser,
)
from trainer.eval.judge import OpenAIJudge
from trainer.eval.metrics import ItemRecord, compute_metrics, record_for
from trainer.eval.prompt import JUDGE_PROMPT_VERSION, JUDGE_SYSTEM_PROMPT, split_response
from trainer.eval.report import markdown_table
from trainer.eval.verdict import EvalVerdict, parse_verdict

__all__ = [
    "JUDGE_PROMPT_VERSION",
    "JUDGE_SYSTEM_PROMPT",
    "EvalPolicyArguments",
    "EvalVerdict",
    "EvaluateArguments",
    "ItemRecord",
    "OpenAIJudge",
    "compute_metrics",
    "evaluate_benchmark",
    "main",
    "make_parser",
    "markdown_table",
    "parse_verdict",
    "record_for",
    "split_response",
]

"""``python -m trainer.evaluate``: generate, judge, measure and report every benchmark.

Arguments (``EvaluateArguments``, ``EvalPolicyArguments``), the check of the judge and the
reward service before anything is generated (``check_services``), the per-benchmark pipeline
(``evaluate_benchmark``: judge, refusal detector, rules, optional reward service) and
``main``. The pieces are the other modules of ``trainer.eval``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.benchmarks import Benchmark, BenchmarkItem, load_benchmark, parse_benchmark_spec
from trainer.eval.judge import OpenAIJudge
from trainer.eval.metrics import ItemRecord, compute_metrics, record_for
from trainer.eval.prompt import JUDGE_PROMPT_VERSION
from trainer.eval.report import write_records, write_report
from trainer.generation import (
    GenerationRequest,
    PolicyArguments,
    generate_all,
    open_sampler,
    seed_for,
)
from trainer.steps import step_outcome
from trainer.trl_cli import trl_parser

logger = logging.getLogger(__name__)

__all__ = [
    "EvalPolicyArguments",
    "EvaluateArguments",
    "check_services",
    "evaluate_benchmark",
    "main",
    "make_parser",
]


@dataclass
class EvaluateArguments:
    """Arguments of ``python -m trainer.evaluate`` (the policy's are ``EvalPolicyArguments``)."""

    benchmark: list[str] = field(
        metadata={
            "help": "Benchmark file; repeat the flag or list several. 'fmt:path' picks a format "
            "(jsonl, safetag, beavertails_v); default auto.",
            "action": "extend",
        }
    )
    out: str = field(
        metadata={"help": "Output directory (results.json, results.md, per-item JSONL)."}
    )
    judge_url: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation judge: base URL of an OpenAI-compatible server "
            "(e.g. http://host:8001/v1). Unset: no judge metrics."
        },
    )
    judge_model: str | None = field(
        default=None, metadata={"help": "Served model name of the evaluation judge."}
    )
    judge_api_key: str | None = field(
        default=None,
        metadata={"help": "API key of the evaluation judge (default: $EVAL_JUDGE_API_KEY)."},
    )
    judge_images: bool = field(
        default=True, metadata={"help": "Send the prompt images to the judge."}
    )
    judge_concurrency: int = field(default=8, metadata={"help": "Judge requests in flight."})
    judge_timeout_s: float = field(default=120.0, metadata={"help": "Timeout per judge request."})
    judge_max_tokens: int = field(default=300, metadata={"help": "Max tokens of a judge reply."})
    judge_max_retries: int = field(
        default=3, metadata={"help": "Retries of a judge request on 429/5xx/connection errors."}
    )
    judge_parse_retries: int = field(
        default=1, metadata={"help": "Times the judge is asked again after an unusable reply."}
    )
    reward_url: str | None = field(
        default=None,
        metadata={"help": "Reward service URL; when set, the mean reward is reported too."},
    )
    profile: str | None = field(default=None, metadata={"help": "Reward profile for --reward_url."})
    reward_api_key: str | None = field(
        default=None, metadata={"help": "API key of the reward service (default: $REWARD_API_KEY)."}
    )
    limit: int | None = field(
        default=None, metadata={"help": "Use only the first N prompts of each benchmark."}
    )
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars."})

    def __post_init__(self) -> None:
        if self.judge_url and not self.judge_model:
            raise ValueError("--judge_model is required with --judge_url (the served model name)")
        if self.judge_concurrency < 1:
            raise ValueError("judge_concurrency must be >= 1")


@dataclass
class EvalPolicyArguments(PolicyArguments):
    """``PolicyArguments`` with evaluation defaults: greedy decoding."""

    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature; 0 = greedy."})


def make_parser(subparsers=None, prog: str | None = None):
    """A ``TrlParser`` over (``EvaluateArguments``, ``EvalPolicyArguments``)."""
    types = (EvaluateArguments, EvalPolicyArguments)
    return trl_parser(types, name="evaluate", help="Safety benchmarks", subparsers=subparsers,
                      prog=prog)


def _score_rewards(
    args: EvaluateArguments, items: Sequence[BenchmarkItem], responses: Sequence[str]
) -> list:
    from clients import RewardClient

    api_key = args.reward_api_key or os.environ.get("REWARD_API_KEY")
    with RewardClient(args.reward_url, api_key=api_key) as client:
        return client.score(
            [i.to_sample(r) for i, r in zip(items, responses, strict=True)], profile=args.profile
        )


def evaluate_benchmark(
    bench: Benchmark,
    responses: Sequence[str],
    judge: OpenAIJudge | None,
    args: EvaluateArguments,
) -> tuple[dict[str, Any], list[ItemRecord]]:
    """Judge, detect refusals, apply rules and (optionally) rewards for one benchmark."""
    from reward_server.scorers.refusal import get_refusal_detector

    refusal = get_refusal_detector("plus")
    items = bench.items
    verdicts = (
        judge.judge(items, responses, progress=args.progress) if judge else [None] * len(items)
    )
    records = [
        record_for(i, r, refusal, v) for i, r, v in zip(items, responses, verdicts, strict=True)
    ]
    if args.reward_url:
        for record, result in zip(records, _score_rewards(args, items, responses), strict=True):
            record.reward = result.reward if result.ok else None
            record.reward_status, record.reward_error = result.status, result.error
            outcome = step_outcome(result)  # a process profile judged each reasoning step
            if outcome is not None:
                record.steps, record.first_unsafe_step = outcome
    metrics = compute_metrics(records, judged=judge is not None, rewarded=bool(args.reward_url))
    by_category: dict[str, list[ItemRecord]] = defaultdict(list)
    for record in records:
        if record.category is not None:
            by_category[record.category].append(record)
    if len(by_category) > 1:
        metrics["by_category"] = {
            c: compute_metrics(rs, judged=judge is not None, rewarded=bool(args.reward_url))
            for c, rs in sorted(by_category.items())
        }
    return metrics, records


def load_benchmarks(args: EvaluateArguments) -> list[Benchmark]:
    """Every ``--benchmark``, cut to ``--limit``; a name used twice gets its position."""
    benches = []
    for spec in args.benchmark:
        fmt, path = parse_benchmark_spec(spec)
        bench = load_benchmark(path, fmt)
        if args.limit is not None:
            bench.items = bench.items[: args.limit]
        benches.append(bench)
    names = Counter(b.name for b in benches)
    for n, bench in enumerate(benches):
        if names[bench.name] > 1:
            bench.name = f"{bench.name}-{n}"
    return benches


def make_judge(args: EvaluateArguments) -> OpenAIJudge | None:
    """The evaluation judge ``--judge_url`` names, or ``None`` (rule metrics only)."""
    if not args.judge_url:
        logger.warning("no --judge_url: reporting refusal and rule metrics only")
        return None
    return OpenAIJudge(
        args.judge_url,
        args.judge_model,
        args.judge_api_key or os.environ.get("EVAL_JUDGE_API_KEY"),
        concurrency=args.judge_concurrency,
        timeout=args.judge_timeout_s,
        max_tokens=args.judge_max_tokens,
        max_retries=args.judge_max_retries,
        parse_retries=args.judge_parse_retries,
        send_images=args.judge_images,
    )


def check_services(args: EvaluateArguments, judge: OpenAIJudge | None) -> None:
    """Before anything is generated: exit with a clear message when the judge or the reward
    service cannot be used (unreachable, wrong key, unknown model or profile)."""
    from trainer.startup import RewardArguments, preflight

    if judge is not None:
        try:
            warning = judge.check()
        except RuntimeError as exc:
            raise SystemExit(f"evaluation judge at {args.judge_url} cannot be used: {exc}"
                             ) from None
        if warning:
            logger.warning("evaluation judge: %s", warning)
    if args.reward_url:
        preflight(RewardArguments(reward_url=args.reward_url, reward_profile=args.profile,
                                  reward_api_key=args.reward_api_key))


def main(script_args: EvaluateArguments, policy_args: EvalPolicyArguments) -> dict[str, Any]:
    """Check the services, then generate, judge and report every benchmark. Returns
    ``results.json``'s content."""
    benches = load_benchmarks(script_args)
    judge = make_judge(script_args)
    check_services(script_args, judge)
    out = Path(script_args.out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = policy_args.sampling()
    results: dict[str, Any] = {}
    with open_sampler(policy_args) as sampler:
        for bench in benches:
            requests = [
                GenerationRequest(i.prompt, i.images, seed_for(policy_args.seed, i.key))
                for i in bench.items
            ]
            responses = [
                texts[0]
                for texts in generate_all(
                    sampler,
                    requests,
                    1,
                    sampling,
                    batch_size=policy_args.batch_size,
                    desc=f"generate {bench.name}",
                    progress=script_args.progress,
                )
            ]
            metrics, records = evaluate_benchmark(bench, responses, judge, script_args)
            metrics["path"] = str(bench.path)
            metrics["format"] = bench.format
            results[bench.name] = metrics
            write_records(out / f"{bench.name}.jsonl", records)

    report = {
        "policy": policy_args.fingerprint(),
        "judge": None
        if judge is None
        else {
            "url": judge.url,
            "model": judge.model,
            "prompt_version": JUDGE_PROMPT_VERSION,
            "send_images": judge.send_images,
            "calls": judge.calls,
        },
        "reward": None
        if not script_args.reward_url
        else {
            "url": script_args.reward_url,
            "profile": script_args.profile,
        },
        "refusal_detector": "plus",
        "benchmarks": results,
    }
    write_report(out, report)
    return report

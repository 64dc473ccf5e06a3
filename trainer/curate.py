"""QI-Box curation: keep the prompts a policy is unsure about (SaFeR-VLM, arXiv 2510.06871).

SaFeR-VLM built QI-Safe-10K from 159K candidates with a "QI-Box": sample K responses per
prompt from a reference policy, score them, and keep prompts whose mean reward (quality)
is moderate and whose spread (instability) is high — the prompts where GRPO's
group-relative advantage has signal (all-correct or all-wrong groups give zero advantage).

For each prompt of ``--data``:

1. sample ``--k`` responses from ``--policy`` (transformers or vLLM, seeded per prompt);
2. score them with the reward service (``POST /score`` through ``clients.RewardClient``);
   a ``null`` reward (``invalid`` sample) is dropped and counted, never taken as 0;
3. ``quality = mean(scored rewards)``, ``instability = std(scored rewards)`` (population
   standard deviation, ``ddof=0``, over the scored samples); a prompt with fewer than
   ``--min-scored`` scored samples has no statistics and is never kept;
4. the QI-Box keeps ``lo <= quality <= hi`` and ``instability >= --min-instability``
   (inclusive bounds, 1e-9 tolerance for floating error);
5. optionally cut to ``--target-size``, most unstable first, and stratified by
   ``--stratify-by`` columns (e.g. ``category,combine_tag``). The paper names the lack of
   stratification by harm type as a limitation of QI-Safe-10K: without it the box keeps
   whatever strata the reference policy happens to be unsure about. Strata get quotas in
   proportion to their share of the *input* (``--stratify-mode input``) or equal quotas
   (``equal``); a stratum with too few prompts in the box gives its remainder to the
   others, and the summary says so. Without ``--target-size`` the largest set with the
   exact proportions is kept.

Outputs: ``--out`` (the kept input rows plus ``qi_quality``, ``qi_instability``,
``qi_scored``, ``qi_null``; relative image paths rewritten relative to the output), a
sidecar ``OUT.stats.jsonl`` (one line per sampled prompt: responses, rewards, statuses —
this is what makes a re-run resume), ``OUT.summary.json``, and a PNG (``OUT.png``) of
quality against instability with the box and both histograms.

Usage:

    python -m trainer.curate --data pool.jsonl --policy Qwen/Qwen2.5-VL-7B-Instruct --k 8 \\
        --out qi.jsonl --quality-box 0.25 0.75 --min-instability 0.15 --target-size 10000 \\
        --stratify-by category,combine_tag --reward-url http://127.0.0.1:8000 --backend vllm
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.benchmarks import FORMATS, BenchmarkItem, load_benchmark
from trainer.curation.plot import plot_qi
from trainer.curation.qibox import (
    STRATIFY_MODES,
    QIBox,
    check_strata_columns,
    prompt_stats,
    select,
)
from trainer.curation.report import portable_row, print_summary, quantiles
from trainer.curation.store import PromptStats, StatsStore
from trainer.generation import (
    GenerationRequest,
    PolicyArguments,
    generate_all,
    open_sampler,
    seed_for,
)
from trainer.trl_cli import trl_parser

__all__ = ["CurateArguments", "main", "make_parser"]


@dataclass
class CurateArguments:
    """Arguments of ``python -m trainer.curate`` (the policy's are ``PolicyArguments``).

    Args:
        data: input prompts (JSONL/JSON/Parquet; formats of ``trainer.benchmarks``).
        out: output JSONL of kept rows.
        k: responses sampled per prompt.
        quality_box: ``lo hi`` bounds of the mean reward.
        min_instability: lower bound of the rewards' standard deviation.
        min_scored: prompts with fewer scored samples get no statistics.
        target_size: keep at most this many prompts.
        stratify_by: comma-separated columns defining strata.
        stratify_mode: ``input`` (input proportions) or ``equal`` quotas.
    """

    data: str = field(
        metadata={"help": "Input prompts: JSONL/JSON/Parquet (see trainer.benchmarks)."}
    )
    out: str = field(metadata={"help": "Output JSONL of the kept rows with their statistics."})
    k: int = field(default=8, metadata={"help": "Responses sampled per prompt."})
    quality_box: list[float] = field(
        default_factory=lambda: [0.25, 0.75],
        metadata={"help": "Quality bounds LO HI (inclusive) of the mean reward."},
    )
    min_instability: float = field(
        default=0.15, metadata={"help": "Minimum standard deviation of a prompt's rewards."}
    )
    min_scored: int = field(
        default=2, metadata={"help": "Prompts with fewer scored (non-null) samples are not kept."}
    )
    target_size: int | None = field(
        default=None,
        metadata={"help": "Keep at most N prompts (most unstable first, per stratum)."},
    )
    stratify_by: str | None = field(
        default=None,
        metadata={"help": "Comma-separated columns to stratify by, e.g. 'category,combine_tag'."},
    )
    stratify_mode: str = field(
        default="input",
        metadata={
            "help": f"Stratum quotas, one of {list(STRATIFY_MODES)}: input proportions or equal."
        },
    )
    data_format: str = field(
        default="auto", metadata={"help": f"Input format, one of {list(FORMATS)}."}
    )
    reward_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "Base URL of the reward service."}
    )
    profile: str | None = field(
        default=None, metadata={"help": "Reward profile (the service's default when unset)."}
    )
    reward_api_key: str | None = field(
        default=None, metadata={"help": "API key of the service (default: $REWARD_API_KEY)."}
    )
    reward_timeout_s: float = field(default=300.0, metadata={"help": "Timeout per reward request."})
    stats_file: str | None = field(
        default=None, metadata={"help": "Resume sidecar (default: OUT with suffix .stats.jsonl)."}
    )
    plot: str | None = field(
        default=None, metadata={"help": "PNG path (default: OUT with suffix .png)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N prompts."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar."})

    def __post_init__(self) -> None:
        if len(self.quality_box) != 2 or self.quality_box[0] > self.quality_box[1]:
            raise ValueError(f"quality_box needs two numbers LO <= HI, got {self.quality_box}")
        if self.k < 1 or self.min_scored < 1:
            raise ValueError("k and min_scored must be >= 1")
        if self.min_scored > self.k:
            raise ValueError(f"min_scored ({self.min_scored}) cannot exceed k ({self.k})")
        if self.target_size is not None and self.target_size < 0:
            raise ValueError("target_size must be >= 0")
        if self.stratify_mode not in STRATIFY_MODES:
            raise ValueError(
                f"stratify_mode {self.stratify_mode!r}; expected one of {list(STRATIFY_MODES)}"
            )
        if self.data_format not in FORMATS:
            raise ValueError(f"data_format {self.data_format!r}; expected one of {list(FORMATS)}")

    @property
    def strata_columns(self) -> list[str]:
        return [c.strip() for c in (self.stratify_by or "").split(",") if c.strip()]

    @property
    def stats_path(self) -> Path:
        return Path(self.stats_file) if self.stats_file else _with_suffix(self.out, ".stats.jsonl")

    @property
    def plot_path(self) -> Path:
        return Path(self.plot) if self.plot else _with_suffix(self.out, ".png")


    @property
    def box(self) -> QIBox:
        """The box and the cut these flags describe."""
        lo, hi = self.quality_box
        return QIBox(
            lo=lo,
            hi=hi,
            min_instability=self.min_instability,
            min_scored=self.min_scored,
            target_size=self.target_size,
            stratify_by=tuple(self.strata_columns),
            stratify_mode=self.stratify_mode,
        )


def _with_suffix(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".jsonl") + suffix)


def make_parser(subparsers=None, prog: str | None = None):
    """A ``TrlParser`` over (``CurateArguments``, ``PolicyArguments``); ``--config`` YAML works."""
    types = (CurateArguments, PolicyArguments)
    return trl_parser(types, name="curate", help="QI-Box curation", subparsers=subparsers,
                      prog=prog)


def _sample_and_score(
    todo: Sequence[BenchmarkItem],
    total: int,
    store: StatsStore,
    script_args: CurateArguments,
    policy_args: PolicyArguments,
) -> None:
    """Sample K responses per prompt, score them, append each prompt's line to the sidecar.

    A chunk's lines are written only after its scoring call returns, so an interrupted run
    loses at most one chunk of work.
    """
    from clients import RewardClient

    k = script_args.k
    api_key = script_args.reward_api_key or os.environ.get("REWARD_API_KEY")
    requests = [
        GenerationRequest(i.prompt, i.images, seed_for(policy_args.seed, i.key)) for i in todo
    ]
    with (
        open_sampler(policy_args) as sampler,
        RewardClient(
            script_args.reward_url, api_key=api_key, timeout=script_args.reward_timeout_s
        ) as client,
    ):

        def score_and_store(start: int, responses: list[list[str]]) -> None:
            chunk = todo[start : start + len(responses)]
            samples = [
                {**item.to_sample(text), "id": f"{item.id}#{j}"}
                for item, texts in zip(chunk, responses, strict=True)
                for j, text in enumerate(texts)
            ]
            results = client.score(samples, profile=script_args.profile)
            for n, item in enumerate(chunk):
                mine = results[n * k : (n + 1) * k]
                store.append(
                    PromptStats(
                        key=item.key,
                        id=item.id,
                        rewards=[r.reward if r.ok else None for r in mine],
                        statuses=[r.status for r in mine],
                        errors=[r.error for r in mine],
                        responses=list(responses[n]),
                        rubric_version=next(
                            (r.rubric_version for r in mine if r.rubric_version), None
                        ),
                    )
                )

        generate_all(
            sampler,
            requests,
            k,
            policy_args.sampling(),
            batch_size=policy_args.batch_size,
            desc="sample+score",
            progress=script_args.progress,
            total=total,
            on_chunk=score_and_store,
        )


def main(script_args: CurateArguments, policy_args: PolicyArguments) -> dict[str, Any]:
    """Sample, score, select, write. Returns the summary (also written to ``OUT.summary.json``)."""
    bench = load_benchmark(script_args.data, script_args.data_format)
    items, duplicates, seen = [], 0, set()
    for item in bench.items[: script_args.limit]:
        if item.key in seen:  # same prompt, images and labels (and no id) as an earlier row
            duplicates += 1
            continue
        seen.add(item.key)
        items.append(item)
    try:
        check_strata_columns(items, script_args.strata_columns)
    except ValueError as exc:
        raise SystemExit(f"--stratify_by {script_args.stratify_by}: {exc} "
                         f"(in {script_args.data})") from None
    fingerprint = {**policy_args.fingerprint(), "k": script_args.k, "profile": script_args.profile}
    store = StatsStore(script_args.stats_path, fingerprint)
    todo = [item for item in items if item.key not in store.done]
    resumed = len(items) - len(todo)
    if todo:
        _sample_and_score(todo, len(items), store, script_args, policy_args)

    stats = {item.key: store.done[item.key] for item in items}
    rewards = {key: s.rewards for key, s in stats.items()}
    box = script_args.box
    selection = select(items, rewards, box, seed=policy_args.seed)
    kept = set(selection.kept)

    out = Path(script_args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for item in items:
            if item.key in kept:
                row = portable_row(item, out.parent.resolve(), rewards[item.key], box.min_scored)
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    in_box_keys = set(selection.in_box)
    points = []
    for item in items:
        q, s = prompt_stats(rewards[item.key], box.min_scored)
        if q is not None:
            state = "kept" if item.key in kept else "box" if item.key in in_box_keys else "out"
            points.append((q, s, state))
    plot_qi(points, (box.lo, box.hi, box.min_instability), script_args.plot_path, bench.name)

    n_samples = sum(len(s.rewards) for s in stats.values())
    n_null = sum(s.n_null for s in stats.values())
    summary = {
        "data": str(script_args.data),
        "out": str(out),
        "plot": str(script_args.plot_path),
        "stats_file": str(script_args.stats_path),
        "prompts": len(items),
        "duplicates_skipped": duplicates,
        "sampled_now": len(todo),
        "resumed": resumed,
        "k": script_args.k,
        "samples": n_samples,
        "null_rewards": n_null,
        "null_example": next((e for s in stats.values() for e in s.errors if e is not None), None),
        "no_stats": len(selection.no_stats),
        "box": {
            "quality": [box.lo, box.hi],
            "min_instability": box.min_instability,
            "min_scored": box.min_scored,
        },
        "in_box": len(selection.in_box),
        "kept": len(selection.kept),
        "target_size": script_args.target_size,
        "stratify_by": script_args.strata_columns,
        "stratify_mode": script_args.stratify_mode if script_args.strata_columns else None,
        "strata": selection.strata,
        "short_strata": selection.short,
        "quality": quantiles([p[0] for p in points]),
        "instability": quantiles([p[1] for p in points]),
        "rubric_versions": sorted({s.rubric_version for s in stats.values() if s.rubric_version}),
        "policy": policy_args.fingerprint(),
    }
    _with_suffix(out, ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    return summary


if __name__ == "__main__":
    parser = make_parser()
    script_args, policy_args = parser.parse_args_and_config()
    main(script_args, policy_args)

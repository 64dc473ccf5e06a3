"""What an evaluation run writes: ``<benchmark>.jsonl`` per benchmark, then ``results.json``,
``results.md`` and the printed table with a note per benchmark the judge left answers
unscored in; with per-step judgements (a process reward profile) also the per-step tables
and ``reasoning_by_step.png`` (``trainer.eval.steps``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from trainer.eval.metrics import ItemRecord
from trainer.eval.steps import CHART_FILE, plot_steps, steps_markdown

__all__ = ["COLUMNS", "markdown_table", "write_records", "write_report"]

#: ``(column title, metric key)`` of the table, in order.
COLUMNS = (
    ("n", "n"),
    ("safe %", "safe_pct"),
    ("help %", "help_pct"),
    ("reasoning safe %", "reasoning_safe_pct"),
    ("unscored", "unscored"),
    ("over-refusal %", "over_refusal_pct"),
    ("refusal on harmful %", "harmful_refusal_pct"),
    ("format %", "format_pct"),
    ("tag acc %", "tag_acc_pct"),
    ("behavior %", "behavior_pct"),
    ("reward", "reward_mean"),
    ("unsafe step %", "unsafe_step_pct"),
)


def _cell(metrics: Mapping[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "–"
    if key == "over_refusal_pct":
        return f"{value:.1f} ({metrics['n_benign']})"
    if key == "harmful_refusal_pct":
        return f"{value:.1f} ({metrics['n_harmful']})"
    if key == "reward_mean":
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def markdown_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per benchmark; ``–`` where a metric does not apply."""
    used = [(title, key) for title, key in COLUMNS if any(key in m for m in results.values())]
    lines = [
        "| benchmark | " + " | ".join(t for t, _ in used) + " |",
        "|---|" + "---:|" * len(used),
    ]
    for name, metrics in results.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics, k) for _, k in used) + " |")
    return "\n".join(lines)


def write_records(path: Path, records: Sequence[ItemRecord]) -> None:
    """``<benchmark>.jsonl``: one record per prompt."""
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def write_report(out: Path, report: Mapping[str, Any], stream: TextIO | None = None) -> str:
    """Write ``results.json`` and ``results.md``, print the table and the unscored notes.

    Returns the table.
    """
    stream = stream or sys.stdout
    results = report["benchmarks"]
    table = markdown_table(results)
    (out / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    steps = steps_markdown(results)
    (out / "results.md").write_text(table + "\n" + (f"\n{steps}\n" if steps else ""))
    print(table, file=stream)
    if steps:
        print(f"\n{steps}", file=stream)
        if plot_steps(results, out / CHART_FILE):
            print(f"chart: {out / CHART_FILE}", file=stream)
    for name, metrics in results.items():
        if metrics.get("unscored"):
            print(
                f"{name}: {metrics['unscored']} answers unscored by the judge "
                f"{metrics['unscored_reasons']} (left out of the percentages); "
                f"e.g. {metrics['unscored_example']}",
                file=stream,
            )
            if "not a multimodal model" in (metrics["unscored_example"] or ""):
                print("  hint: --no_judge_images for a text-only judge", file=stream)
    return table

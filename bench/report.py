"""Markdown table and PNG chart of a benchmark report."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(x: Any, nd: int = 1) -> str:
    return "–" if x is None else f"{x:,.{nd}f}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = []
    cases = report["cases"]
    if "rules" in cases:
        lines += ["| rules /score, batch | service samples/s | baseline samples/s | ratio | "
                  "service p50/p95/p99 ms |", "|---|---|---|---|---|"]
        for row in cases["rules"]["rows"]:
            if "batch" in row:
                s, b = row["service"], row["baseline"]
                lines.append(
                    f"| {row['batch']} | {_fmt(s['samples_per_s'], 0)} | "
                    f"{_fmt(b['samples_per_s'], 0)} | {_fmt(row['ratio'], 2)} | "
                    f"{_fmt(s['p50_ms'])} / {_fmt(s['p95_ms'])} / {_fmt(s['p99_ms'])} |"
                )
            else:
                lines.append(f"| in process (limit) | {_fmt(row['in_process']['samples_per_s'], 0)}"
                             " | | | |")
        lines.append("")
    if "cache" in cases:
        lines += ["| cache (16 samples/request) | miss p50 ms | hit p50 ms | hit p99 ms |",
                  "|---|---|---|---|"]
        for row in cases["cache"]["rows"]:
            lines.append(f"| {row['backend']} | {_fmt(row['miss']['p50_ms'], 2)} | "
                         f"{_fmt(row['hit']['p50_ms'], 2)} | {_fmt(row['hit']['p99_ms'], 2)} |")
        lines.append("")
    for name in ("judge", "batching", "modes", "process"):
        if name in cases:
            rows = cases[name]["rows"]
            keys = [k for k in rows[0] if not isinstance(rows[0][k], dict)]
            lines += ["| " + name + " | " + " | ".join(keys) + " |",
                      "|---" * (len(keys) + 1) + "|"]
            for row in rows:
                lines.append("| | " + " | ".join(
                    _fmt(row[k], 3) if isinstance(row[k], float | None) else str(row[k])
                    for k in keys
                ) + " |")
            lines.append("")
    if "grpo_dedup" in cases:
        lines += ["| GRPO groups of 8 | samples | computed | samples per computation |",
                  "|---|---|---|---|"]
        for row in cases["grpo_dedup"]["rows"]:
            lines.append(f"| {row.get('path', 'rules')} | {row['samples']} | "
                         f"{_fmt(row['computed'], 0)} | {_fmt(row['dedup_ratio'], 2)} |")
    if "fidelity" in cases:
        from bench.fidelity.report import markdown

        lines += ["", markdown(cases["fidelity"])]
    return "\n".join(lines)


def render_png(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = report["cases"]
    if set(cases) == {"fidelity"}:  # a run of the fidelity case alone: its own chart
        from bench.fidelity.report import png

        png(cases["fidelity"], path)
        return
    panels = [n for n in ("rules", "cache", "judge", "batching") if n in cases]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, name in zip(axes, panels, strict=False):
        rows = cases[name]["rows"]
        if name == "rules":
            rs = [r for r in rows if "batch" in r]
            xs = range(len(rs))
            ax.bar([x - 0.2 for x in xs], [r["service"]["samples_per_s"] for r in rs], 0.4,
                   label="service")
            ax.bar([x + 0.2 for x in xs], [r["baseline"]["samples_per_s"] for r in rs], 0.4,
                   label="bare baseline")
            ax.set_xticks(list(xs), [f"batch {r['batch']}" for r in rs])
            ax.set_ylabel("samples/s")
            ax.set_title("rules /score over HTTP")
        elif name == "cache":
            xs = range(len(rows))
            ax.bar([x - 0.2 for x in xs], [r["miss"]["p50_ms"] for r in rows], 0.4, label="miss")
            ax.bar([x + 0.2 for x in xs], [r["hit"]["p50_ms"] for r in rows], 0.4, label="hit")
            ax.set_xticks(list(xs), [r["backend"] for r in rows])
            ax.set_ylabel("p50 ms (16 samples)")
            ax.set_title("cache")
        else:
            bars = [r for r in rows if r.get("label") not in ("ratio", "speed-up")]
            summary = [r for r in rows if r.get("label") in ("ratio", "speed-up")]
            ax.bar([str(r["label"]).replace(" (", "\n(").replace(", ", ",\n") for r in bars],
                   [r.get("samples_per_s") or 0 for r in bars])
            ax.tick_params(axis="x", labelsize=8)
            ax.set_ylabel("samples/s")
            title = {"judge": "judge path (tiny CPU judge)", "batching": "32 clients x 1 sample"}
            extra = f" — {summary[0]['label']} {summary[0]['samples_per_s']}" if summary else ""
            ax.set_title(title.get(name, name) + extra, fontsize=10)
        ax.legend() if name in ("rules", "cache") else None
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

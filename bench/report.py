"""Markdown table and PNG chart of a benchmark report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Rows of the judge cases that are ratios, not rates: titles in the chart, not bars.
SUMMARY_ROWS = ("ratio", "speed-up", "on / raw backend")


def _fmt(x: Any, nd: int = 1) -> str:
    return "–" if x is None else f"{x:,.{nd}f}"


def provenance(report: dict[str, Any]) -> str:
    """One line: when (UTC) and on which commit the report was run, and if the tree differed.

    >>> provenance({"started": "2026-12-07T21:00:00Z", "commit": "0123456789ab" * 3 + "cdef",
    ...             "dirty": True, "changed": ["bench/cases.py"]})
    'run 2026-12-07T21:00:00Z on commit 0123456789ab, tree dirty (1 changed path)'
    """
    commit = report.get("commit")
    if not commit:
        return f"run {report['started']}, not from a git checkout"
    state = (f"tree dirty ({len(report['changed'])} changed path"
             f"{'s' if len(report['changed']) != 1 else ''})" if report["dirty"] else "clean tree")
    return f"run {report['started']} on commit {commit[:12]}, {state}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [provenance(report), ""]
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
        lines += ["| cache (16 samples/request) | miss p50 ms | hit p50 ms | hit p99 ms | "
                  "bare FastAPI echo p50 ms | hit / echo |", "|---|---|---|---|---|---|"]
        for row in cases["cache"]["rows"]:
            lines.append(f"| {row['backend']} | {_fmt(row['miss']['p50_ms'], 2)} | "
                         f"{_fmt(row['hit']['p50_ms'], 2)} | {_fmt(row['hit']['p99_ms'], 2)} | "
                         f"{_fmt(row['echo']['p50_ms'], 2)} | {_fmt(row['hit_over_echo'], 2)} |")
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
    if "ray_serve" in cases:
        lines += ["", "| Ray Serve vs uvicorn | uvicorn samples/s | Serve samples/s | "
                  "throughput ratio | uvicorn p50 ms | Serve p50 ms | p50 ratio |",
                  "|---|---|---|---|---|---|---|"]
        for row in cases["ray_serve"]["rows"]:
            u, s = row["uvicorn"], row["serve"]
            lines.append(f"| {row['label']} | {_fmt(u['samples_per_s'], 0)} | "
                         f"{_fmt(s['samples_per_s'], 0)} | {_fmt(row['throughput_ratio'], 2)} | "
                         f"{_fmt(u['p50_ms'])} | {_fmt(s['p50_ms'])} | "
                         f"{_fmt(row['p50_ratio'], 2)} |")
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
    panels = [n for n in ("rules", "cache", "judge", "batching", "ray_serve") if n in cases]
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
            for shift, key, label in ((-0.27, "miss", "miss"), (0, "hit", "hit"),
                                      (0.27, "echo", "bare FastAPI echo")):
                ax.bar([x + shift for x in xs], [r[key]["p50_ms"] for r in rows], 0.27,
                       label=label)
            ax.set_xticks(list(xs), [f"{r['backend']}\nhit / echo {r['hit_over_echo']:.2f}"
                                     for r in rows])
            ax.set_ylabel("p50 ms (16 samples)")
            ax.set_ylim(top=1.45 * max(r[k]["p50_ms"] for r in rows for k in ("miss", "hit",
                                                                              "echo")))
            ax.set_title("cache")
        elif name == "ray_serve":
            xs = range(len(rows))
            ax.bar([x - 0.2 for x in xs], [r["throughput_ratio"] or 0 for r in rows], 0.4,
                   label="samples/s, Serve / uvicorn")
            ax.bar([x + 0.2 for x in xs], [r["p50_ratio"] or 0 for r in rows], 0.4,
                   label="p50, Serve / uvicorn")
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_xticks(list(xs), [r["label"].replace(", ", ",\n") for r in rows])
            ax.set_ylabel("ratio (same run)")
            ax.set_title("Ray Serve vs plain uvicorn")
        else:
            bars = [r for r in rows if r.get("label") not in SUMMARY_ROWS]
            summary = [r for r in rows if r.get("label") in SUMMARY_ROWS]
            ax.bar([str(r["label"]).replace(" (", "\n(").replace(", ", ",\n") for r in bars],
                   [r.get("samples_per_s") or 0 for r in bars])
            ax.tick_params(axis="x", labelsize=8)
            ax.set_ylabel("samples/s")
            title = {"judge": "judge path (tiny CPU judge)", "batching": "32 clients x 1 sample"}
            extra = "".join(f"\n{r['label']} {r['samples_per_s']}" for r in summary)
            ax.set_title(title.get(name, name) + extra, fontsize=10)
        ax.legend() if name in ("rules", "cache", "ray_serve") else None
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

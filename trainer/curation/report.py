"""What curation writes for people and for the next step: kept rows made portable, and the
summary printed at the end of a run."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from trainer.benchmarks import BenchmarkItem
from trainer.curation.qibox import prompt_stats

__all__ = ["portable_row", "print_summary", "quantiles"]


def portable_row(
    item: BenchmarkItem, out_dir: Path, rewards: Sequence[float | None], min_scored: int
) -> dict[str, Any]:
    """The input row as it was, plus ``qi_*`` statistics; local image paths rewritten
    relative to ``out_dir`` so the kept file can be moved with its images."""
    row = dict(item.row)
    refs = [
        im if im.startswith("data:") or "://" in im[:12] else os.path.relpath(im, out_dir)
        for im in item.images
    ]
    if refs:
        if (
            "image" in row
            and "images" not in row
            and not isinstance(row["image"], list)
            and len(refs) == 1
        ):
            row["image"] = refs[0]
        else:
            row.pop("image", None)
            row["images"] = refs
    q, s = prompt_stats(rewards, min_scored)
    row.update(
        qi_quality=q,
        qi_instability=s,
        qi_scored=sum(r is not None for r in rewards),
        qi_null=sum(r is None for r in rewards),
    )
    return row


def quantiles(values: Sequence[float]) -> str:
    """``min p25 median p75 max`` of ``values`` on one line (``-`` when empty)."""
    if not values:
        return "-"
    v = sorted(values)

    def at(p: float) -> float:
        return v[min(len(v) - 1, round(p * (len(v) - 1)))]

    return (
        f"min {v[0]:.3f}  p25 {at(0.25):.3f}  median {at(0.5):.3f}  "
        f"p75 {at(0.75):.3f}  max {v[-1]:.3f}"
    )


def print_summary(s: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """The run's summary (``OUT.summary.json``) as a few lines and a per-stratum table."""
    stream = stream or sys.stdout
    pct = 100 * s["null_rewards"] / s["samples"] if s["samples"] else 0.0
    (lo, hi), mi = s["box"]["quality"], s["box"]["min_instability"]
    lines = [
        f"QI-Box curation: {s['data']} -> {s['out']}",
        f"  prompts {s['prompts']} (sampled now {s['sampled_now']}, "
        f"resumed {s['resumed']}, duplicates skipped {s['duplicates_skipped']}), K={s['k']}",
        f"  samples {s['samples']}, null rewards {s['null_rewards']} ({pct:.1f}%, dropped)"
        + (f"; e.g. {s['null_example']}" if s["null_example"] else ""),
        f"  prompts without statistics (< {s['box']['min_scored']} scored samples): "
        f"{s['no_stats']}",
        f"  quality     {s['quality']}",
        f"  instability {s['instability']}",
        f"  box {lo:g} <= quality <= {hi:g}, instability >= {mi:g}: {s['in_box']} prompts",
        f"  kept {s['kept']}"
        + (f" (target {s['target_size']})" if s["target_size"] is not None else ""),
    ]
    if len(s["rubric_versions"]) > 1:
        lines.append(
            f"  WARNING: rewards come from {len(s['rubric_versions'])} rubric versions "
            f"{s['rubric_versions']} (the service's profile changed during the run)"
        )
    if s["stratify_by"]:
        lines.append(
            f"  stratified by {','.join(s['stratify_by'])} ({s['stratify_mode']} proportions)"
        )
    width = max([len("stratum"), *(len(k) for k in s["strata"])])
    n_in, n_kept = s["prompts"] or 1, s["kept"] or 1
    lines.append(
        f"  {'stratum':<{width}}  {'input':>6} {'in box':>6} {'kept':>6} {'input%':>7} {'kept%':>7}"
    )
    for name, c in s["strata"].items():
        lines.append(
            f"  {name:<{width}}  {c['input']:>6} {c['in_box']:>6} {c['kept']:>6} "
            f"{100 * c['input'] / n_in:>6.1f}% {100 * c['kept'] / n_kept:>6.1f}%"
        )
    if s["short_strata"]:
        lines.append(
            f"  short of their quota (too few prompts in the box): {', '.join(s['short_strata'])}"
        )
    lines.append(f"  plot: {s['plot']}")
    print("\n".join(lines), file=stream)

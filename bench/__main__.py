"""``python -m bench [--quick] [--cases rules,cache,...] [--out DIR]``.

Starts what each case needs on loopback, runs bounded loads, writes ``report.json`` and
``report.png`` to ``--out`` and prints a markdown table. Every figure is a ratio or a pair
measured in the same run. The report says when (UTC) and on which git commit it ran, and
whether the checkout differed from that commit.

Without ``--out`` a full run writes to ``bench/results`` (the committed report the docs
embed) and a ``--quick`` run to a new temporary directory: the quick run is CI's smoke test,
and its tiny-size figures must never overwrite the committed report or dirty the work tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cases import CASES, DEFAULT_CASES
from bench.report import render_markdown, render_png
from bench.servers import ROOT

FULL = {"batches": [1, 16, 256], "bodies": 64, "concurrency": 4, "seconds": 4.0,
        "cache_bodies": 400, "groups": 32, "judge_batch": 32, "judge_bodies": 64,
        "judge_clients": 8, "batching_bodies": 256, "batching_clients": 32,
        "modes_samples": 32, "batching_new_tokens": 64, "process_rounds": 3}
FULL_OUT = "bench/results"
QUICK = {"batches": [1, 16], "bodies": 8, "concurrency": 2, "seconds": 0.5,
         "cache_bodies": 20, "groups": 2, "judge_batch": 8, "judge_bodies": 8,
         "judge_clients": 2, "batching_bodies": 16, "batching_clients": 8,
         "modes_samples": 4, "batching_new_tokens": 16, "process_rounds": 1,
         "cache_rounds": 1}


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES),
                   help=f"comma-separated, from {list(CASES)} (default: all but "
                        f"{[n for n in CASES if n not in DEFAULT_CASES]})")
    p.add_argument("--out", default=None,
                   help=f"directory for report.json/png (default: {FULL_OUT} for a full run, "
                        "a new temporary directory for --quick)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="OMP_NUM_THREADS for torch in this process and the servers it starts "
                        "(default 1: on a busy machine torch's OpenMP threads spin against "
                        "other processes and a judge case runs 5-8x slower; 0 = torch's own "
                        "default)")
    p.add_argument("--judge-model", default=None,
                   help="judge model dir for the judge cases (transformers backend); "
                        "default: a tiny random Qwen2 built on the spot")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.torch_threads:
        # read by torch when a judge case imports it, and inherited by the servers
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    cfg["torch_threads"] = args.torch_threads or None
    if args.judge_model:
        from bench import judge_cases

        judge_cases.use_judge_model(args.judge_model)
        cfg["judge_model"] = args.judge_model
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown cases {unknown}; expected some of {list(CASES)}")
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **source_state(ROOT), "quick": args.quick,
              "machine": {"python": platform.python_version(), "cpus": _cpus()},
              "config": cfg, "cases": {}}
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        report["cases"][name] = CASES[name](cfg)
        report["cases"][name]["wall_s"] = round(time.perf_counter() - t0, 1)
    out = output_dir(args.out, args.quick)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    render_png(report, out / "report.png")
    print(render_markdown(report))
    print(f"[bench] report written to {out}", file=sys.stderr, flush=True)
    return report


def output_dir(out: str | None, quick: bool) -> Path:
    """Where the report goes: ``--out`` when given; else the committed location for a full
    run, and a fresh temporary directory for a quick one (never the committed report)."""
    if out is not None:
        return Path(out)
    if quick:
        return Path(tempfile.mkdtemp(prefix="bench-quick-"))
    return Path(FULL_OUT)


def source_state(root: Path) -> dict[str, Any]:
    """The git commit the checkout at ``root`` is on, and whether it differs from it.

    ``dirty`` counts tracked changes and untracked files that are not ignored (a new module
    can be imported as surely as an edited one), and ``changed`` names them. Outside a git
    checkout, or without git, all three are ``None``: the report then claims no commit.

    Returns:
        ``{"commit": sha | None, "dirty": bool | None, "changed": [path, ...] | None}``
    """
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=60)

    try:
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None, "changed": None}
    if head.returncode or status.returncode:
        return {"commit": None, "dirty": None, "changed": None}
    changed = sorted(line[3:] for line in status.stdout.splitlines() if line.strip())
    return {"commit": head.stdout.strip(), "dirty": bool(changed), "changed": changed}


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()

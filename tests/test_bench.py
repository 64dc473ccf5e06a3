"""Smoke run of the benchmark runner with tiny sizes: it runs and reports every case."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.cases import CASES
from tests.fakes.servers import ROOT


def test_bench_quick_writes_every_case():
    # Run exactly as CI's smoke test does: no --out.
    committed = {p.name: p.read_bytes() for p in (ROOT / "bench" / "results").glob("report.*")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(re.search(r"report written to (.+)$", proc.stderr, re.M).group(1).strip())
    try:
        # The quick report goes outside the work tree; the committed one (which the docs
        # embed) is left exactly as it was.
        assert not out.resolve().is_relative_to(ROOT)
        assert {
            p.name: p.read_bytes() for p in (ROOT / "bench" / "results").glob("report.*")
        } == committed
        report = json.loads((out / "report.json").read_text())
        assert set(report["cases"]) == set(CASES)
        for name, case in report["cases"].items():
            assert case["rows"], name
        assert (out / "report.png").stat().st_size > 1000
        assert "| rules /score, batch |" in proc.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)

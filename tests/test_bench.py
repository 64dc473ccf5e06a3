"""Smoke run of the benchmark runner with tiny sizes: it runs and reports every case."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.cases import CASES
from tests.fakes.servers import ROOT


def test_bench_quick_writes_every_case(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["cases"]) == set(CASES)
    for name, case in report["cases"].items():
        assert case["rows"], name
    assert (tmp_path / "report.png").stat().st_size > 1000
    assert "| rules /score, batch |" in proc.stdout

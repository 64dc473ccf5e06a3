"""The opt-in ``ray_serve`` bench case runs (``python -m bench --quick --cases ray_serve``):
the default bench leaves it out, so this tier is where its code is exercised. The file sorts
first, so its own local Ray runs before the tier's cluster starts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.servers import ROOT

pytestmark = pytest.mark.timeout(600)


def test_the_ray_serve_case_measures_both_paths_without_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--cases", "ray_serve"],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(re.search(r"report written to (.+)$", proc.stderr, re.M).group(1).strip())
    try:
        report = json.loads((out / "report.json").read_text())
        assert list(report["cases"]) == ["ray_serve"]
        rows = report["cases"]["ray_serve"]["rows"]
        assert [r["label"] for r in rows] == ["rules /score, batch 256",
                                              "judge path, 8 samples/request"]
        for row in rows:
            for server in ("uvicorn", "serve"):
                assert row[server]["errors"] == 0, (row["label"], server)
                assert row[server]["samples_per_s"] > 0, (row["label"], server)
            assert row["throughput_ratio"] == pytest.approx(
                row["serve"]["samples_per_s"] / row["uvicorn"]["samples_per_s"], abs=1e-3)
    finally:
        shutil.rmtree(out, ignore_errors=True)

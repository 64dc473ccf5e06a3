"""Smoke run of the benchmark runner with tiny sizes: it runs and reports every case, says
when and on which commit it ran, and carries the ratios the docs quote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.__main__ import QUICK, source_state
from bench.cases import DEFAULT_CASES
from tests.fakes.servers import ROOT


def _utc(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp  # the zone is said, not implied
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_bench_quick_writes_every_case():
    # Run exactly as CI's smoke test does: no --out.
    committed = {p.name: p.read_bytes() for p in (ROOT / "bench" / "results").glob("report.*")}
    before = datetime.now(UTC).replace(microsecond=0)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    after = datetime.now(UTC)
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
        assert set(report["cases"]) == set(DEFAULT_CASES)  # ray_serve: opt-in
        for name, case in report["cases"].items():
            assert case["rows"], name
        assert (out / "report.png").stat().st_size > 1000
        assert "| rules /score, batch |" in proc.stdout
        assert report["config"]["torch_threads"] == 1  # the default, said in the report

        # When and on what it ran: the UTC start, a commit of this repository (HEAD may
        # have moved on since, so not compared with HEAD) and whether the tree differed.
        assert before <= _utc(report["started"]) <= after
        assert re.fullmatch(r"[0-9a-f]{40}", report["commit"])
        known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e",
                                report["commit"] + "^{commit}"])
        assert known.returncode == 0
        assert report["dirty"] is bool(report["changed"])
        assert f"on commit {report['commit'][:12]}" in proc.stdout

        # Ratio: micro-batched service (clients x 1 sample) / the backend's full batches,
        # in generate mode with the same token budget.
        rows = {r["label"]: r for r in report["cases"]["batching"]["rows"]}
        raw = rows["raw backend (full batches)"]
        assert raw["mean_batch"] == QUICK["batching_clients"]  # a batch per client count
        assert rows["on / raw backend"]["samples_per_s"] == pytest.approx(
            rows["micro-batching on"]["samples_per_s"] / raw["samples_per_s"], rel=0.02)
        # Ratio: cache hit p50 / a bare FastAPI echo of the same body, both backends.
        cache = report["cases"]["cache"]["rows"]
        assert [r["backend"] for r in cache] == ["memory", "redis"]
        for row in cache:
            assert row["echo"]["errors"] == row["hit"]["errors"] == 0
            assert row["echo"]["requests"] > 0 and row["hit_over_echo"] > 0
        assert "| bare FastAPI echo p50 ms | hit / echo |" in proc.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def test_source_state_names_the_commit_and_what_differs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("*.log\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    # a clean checkout, and an ignored file does not make it dirty
    (repo / "run.log").write_text("noise")
    assert source_state(repo) == {"commit": head, "dirty": False, "changed": []}
    # an untracked module can be imported: dirty
    (repo / "b.py").write_text("y = 2\n")
    assert source_state(repo) == {"commit": head, "dirty": True, "changed": ["b.py"]}
    # an edit of a tracked file: dirty, both named
    (repo / "a.py").write_text("x = 2\n")
    assert source_state(repo) == {"commit": head, "dirty": True, "changed": ["a.py", "b.py"]}
    # outside a git checkout the report claims no commit
    plain = tmp_path / "plain"
    plain.mkdir()
    assert source_state(plain) == {"commit": None, "dirty": None, "changed": None}


def test_the_baseline_echo_sends_the_body_back_unchanged():
    from bench.baseline_app import app
    from bench.workload import bodies

    body = bodies(1, 16, salt="echo")[0]
    reply = TestClient(app).post("/echo", content=body,
                                 headers={"content-type": "application/json"})
    assert reply.status_code == 200 and reply.content == body

"""``make vl-env`` says it is alive while pip unpacks gigabytes (issue 23: minutes without a
line). ``with_progress`` from ``scripts/env_lib.sh`` runs a command and, while it runs, prints
how long it has taken and how large the environment has grown; its exit status is the
command's. Real bash, real child processes.
"""

from __future__ import annotations

import re
import subprocess

from tests.fakes.servers import ROOT


def with_progress(command: str, tmp_path, every: int = 1) -> subprocess.CompletedProcess:
    script = f'source scripts/env_lib.sh; with_progress demo "{tmp_path}" bash -c "{command}"'
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "ENV_PROGRESS_S": str(every)},
                          timeout=120)


def test_a_long_install_reports_progress_and_its_status(tmp_path):
    (tmp_path / "wheel").write_bytes(b"x" * 300_000)
    proc = with_progress("sleep 4; exit 7", tmp_path)
    assert proc.returncode == 7, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) >= 2, proc.stdout
    for line in lines:
        assert re.fullmatch(rf"demo: still installing after \d+ s; {tmp_path} is \S+ now", line)


def test_a_quick_command_says_nothing(tmp_path):
    proc = with_progress("exit 0", tmp_path, every=20)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr

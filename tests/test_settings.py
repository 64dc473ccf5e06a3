"""``python -m reward_server`` start-up: a misspelt ``REWARD_*`` name (environment or
``.env``) is refused with the closest setting, settings errors are one plain line each, and
one line on stderr says where the service serves once it is up. Each case is a real process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    return env | {"PYTHONPATH": str(ROOT)} | extra


def refused(cwd: Path, **extra: str) -> list[str]:
    """The stderr lines of a start that must fail before binding anything (no ``--port``:
    REWARD_PORT is one of the settings checked)."""
    proc = subprocess.run([sys.executable, "-m", "reward_server"], cwd=cwd,
                          env=server_env(**extra), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    return proc.stderr.strip().splitlines()


def test_unknown_variable_is_refused_with_the_closest_name(tmp_path):
    lines = refused(tmp_path, REWARD_PROFLE="safegrpo")
    assert lines == ["reward_server: unknown setting REWARD_PROFLE (in the environment); "
                     "did you mean REWARD_PROFILE?"]


def test_unknown_variable_in_dotenv(tmp_path):
    (tmp_path / ".env").write_text("# comment\nOTHER_TOOL=1\nREWARD_CACHE_SIZ=10\n")
    lines = refused(tmp_path, REWARD_ZZZ="1")
    assert lines == [
        "reward_server: unknown setting REWARD_ZZZ (in the environment); "
        "`python -m reward_server --help` lists the settings",
        "reward_server: unknown setting REWARD_CACHE_SIZ (in the .env); "
        "did you mean REWARD_CACHE_SIZE?",
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REWARD_PORT": "abc"}, ["REWARD_PORT: input should be a valid integer, got 'abc'"]),
        ({"REWARD_MAX_SAMPLES": "0", "REWARD_JUDGE_BACKEND": "gpt"},
         ["REWARD_JUDGE_BACKEND: input should be 'none', 'transformers', 'vllm' or 'openai', "
          "got 'gpt'",
          "REWARD_MAX_SAMPLES: input should be greater than or equal to 1, got '0'"]),
        ({"REWARD_JUDGE_BACKEND": "openai"},  # a check across settings names them itself
         ["REWARD_JUDGE_MODEL must be set when REWARD_JUDGE_BACKEND=openai"]),
    ],
)
def test_settings_errors_are_one_plain_line_each(tmp_path, env, expected):
    lines = refused(tmp_path, **env)
    assert lines == [f"reward_server: {line}" for line in expected]


def read_serving_line(proc: subprocess.Popen) -> str:
    """The stderr line of a ``python -m reward_server`` process that says it is serving
    (the last line read within 60 s, for the assertion to show)."""
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "serving on" not in line:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the server exited before serving"
    return line


def test_serving_line_once_the_port_is_bound(tmp_path):
    # REWARD_SERVICE_* are the clients' variables: allowed in the server's environment
    proc = subprocess.Popen(
        [sys.executable, "-m", "reward_server", "--port", "0"], cwd=tmp_path,
        env=server_env(REWARD_SERVICE_URL="http://elsewhere:1", REWARD_CACHE_SIZE="0"),
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        line = read_serving_line(proc)
        match = re.fullmatch(
            r"reward_server: serving on (http://127\.0\.0\.1:\d+) "
            r"\(profile safegrpo_plus, cache off\)\n", line)
        assert match, line
        # printed after the bind: the address it names answers at once
        assert httpx.get(match[1] + "/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)

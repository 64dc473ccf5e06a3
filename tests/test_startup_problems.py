"""``python -m reward_server`` start-up as the docs promise it (docs/settings.md): every start-up
problem is one ``reward_server:`` line on stderr and exit code 1, an address in use included;
the start-up line names the cache as ``/ready`` does. Each case is a real process.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import httpx

from tests.test_settings import read_serving_line, server_env


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "reward_server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=server_env(), capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"reward_server: cannot listen on 127.0.0.1:{port}: address already in use (another "
        "process has the port: stop it, or choose another port with --port or REWARD_PORT)"
    ]


def test_the_start_up_line_names_the_cache_as_ready_does(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "reward_server", "--port", "0"], cwd=tmp_path,
        env=server_env(), stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        line = read_serving_line(proc)
        match = re.fullmatch(r"reward_server: serving on (http://127\.0\.0\.1:\d+) "
                             r"\(profile safegrpo_plus, cache (\w+)\)\n", line)
        assert match, line
        ready = httpx.get(match[1] + "/ready", timeout=10).json()
        assert match[2] == ready["cache"]["backend"] == "memory"
    finally:
        proc.terminate()
        proc.wait(30)

"""Real processes for integration tests: the reward service under uvicorn, redis-server.

Every server binds 127.0.0.1 on a free port, is waited on until it answers, fails the
test fast (with its log) if the process dies, and is stopped by the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Process:
    def __init__(self, cmd: list[str], env: dict[str, str] | None, name: str) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"{name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True,
        )
        self.name = name

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class RewardServer(_Process):
    """``python -m reward_server`` on a free loopback port with the given REWARD_* env.

    ``python`` is the interpreter that runs it (default: this one); the framework tests run
    in their own venv without the server's dependencies and pass the main .venv's.
    """

    def __init__(self, env: dict[str, str] | None = None, port: int | None = None,
                 ready_path: str = "/health", timeout: float = 60,
                 python: str | None = None) -> None:
        self.port = port or free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT)
        super().__init__(
            [python or sys.executable, "-m", "reward_server", "--host", "127.0.0.1",
             "--port", str(self.port)],
            full_env,
            "reward-server",
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait(ready_path, timeout)

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"reward server exited early:\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"reward server not up after {timeout}s:\n{self.output()}")

    def __enter__(self) -> RewardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(_Process):
    """A throwaway redis-server (no persistence) on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        super().__init__(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            None,
            "redis",
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"redis exited early:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

"""Processes the benchmarks start on loopback: the service, the bare baseline, redis-server.

The benchmark runs from a checkout (``python -m bench``) without the test package, so it
owns this small runner: each server binds 127.0.0.1 on a free port, is waited on until it
answers (failing with its log if the process dies first), and is stopped with its whole
process group (uvicorn workers included).
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
from collections.abc import Callable
from pathlib import Path

import httpx

__all__ = ["BaselineServer", "RedisServer", "RewardServer", "ServerProcess", "free_port"]

#: The checkout: the servers run from it, with it on their ``PYTHONPATH``.
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process in its own session, its output in a log file kept for errors.

    Subclasses start it, then call ``wait_until`` with their own readiness probe.
    """

    def __init__(self, cmd: list[str], env: dict[str, str] | None, name: str) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"{name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True,
        )

    def output(self) -> str:
        """The end of the process's log (stdout and stderr)."""
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready`` until it is true; stop and raise with the log if the process dies
        or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self._fail("exited early")
            if ready():
                return
            time.sleep(0.1)
        self._fail(f"not up after {timeout}s")

    def _fail(self, what: str) -> None:
        log = self.output()  # read before ``stop`` removes the log
        self.stop()
        raise RuntimeError(f"{self.name} {what}:\n{log}")

    def terminate(self, timeout: float = 15) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited after ``timeout``."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, as a test may want one)."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """``terminate``, then remove the log (a benchmark keeps nothing behind)."""
        self.terminate(timeout)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ok(call: Callable[[], httpx.Response]) -> bool:
    try:
        return call().status_code == 200
    except httpx.HTTPError:
        return False


class RewardServer(ServerProcess):
    """``python -m reward_server`` on a free loopback port with the given REWARD_* env
    (the caller's own REWARD_* variables are dropped, so a run measures what it says)."""

    def __init__(self, env: dict[str, str] | None = None, ready_path: str = "/health",
                 timeout: float = 60) -> None:
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT)
        super().__init__(
            [sys.executable, "-m", "reward_server", "--host", "127.0.0.1",
             "--port", str(self.port)],
            full_env,
            "reward-server",
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_until(lambda: http_ok(lambda: httpx.get(self.url + ready_path, timeout=1)),
                        timeout)


class BaselineServer(ServerProcess):
    """``bench.baseline_app``: the safegrpo formula behind a bare FastAPI route."""

    def __init__(self) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        super().__init__([sys.executable, "-m", "bench.baseline_app", str(self.port)], env,
                         "baseline")
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_until(
            lambda: http_ok(
                lambda: httpx.post(self.url + "/score", json={"samples": []}, timeout=1)
            ),
            30,
        )


class RedisServer(ServerProcess):
    """A throwaway redis-server (no persistence) on a free loopback port, or on ``port``
    (a test restarts one where its clients expect it)."""

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
        self.wait_until(self._pong, 10)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)
        shutil.rmtree(self.dir, ignore_errors=True)

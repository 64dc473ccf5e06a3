"""Real processes for integration tests: the reward service under uvicorn, redis-server
(bench's own ``RedisServer``; the process runner is bench's too).

Every server binds 127.0.0.1 on a free port, is waited on until it answers, fails the
test fast (with its log) if the process dies, and is stopped by the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from bench.servers import ROOT, RedisServer, ServerProcess, free_port, http_ok

__all__ = ["ROOT", "RedisServer", "RewardServer", "free_port"]


class _Process(ServerProcess):
    """bench's server process, whose log outlives ``stop``: a failing test shows it."""

    def stop(self, timeout: float = 15) -> None:
        self.terminate(timeout)


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
        self.wait_until(lambda: http_ok(lambda: httpx.get(self.url + path, timeout=1)), timeout)

    def __enter__(self) -> RewardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def judged_reward_server(reply: Callable, model: str = "scripted-judge") -> Iterator[RewardServer]:
    """The service with the ``openai`` judge backend pointed at a scripted judge that
    answers every chat request with ``reply(request)``; ready when yielded."""
    from tests.fakes.scripted_openai import ScriptedOpenAIServer

    with ScriptedOpenAIServer(reply, model=model) as judge, RewardServer(
        {"REWARD_JUDGE_BACKEND": "openai", "REWARD_JUDGE_MODEL": model,
         "REWARD_JUDGE_BASE_URL": judge.url, "REWARD_JUDGE_MAX_WAIT_MS": "5"},
        ready_path="/ready",
    ) as server:
        yield server

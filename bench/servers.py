"""Processes the benchmarks start on loopback: the service, the bare baseline, redis-server."""

from __future__ import annotations

import os
import sys
import time

import httpx

from tests.fakes.servers import ROOT, RedisServer, RewardServer, _Process, free_port

__all__ = ["BaselineServer", "RedisServer", "RewardServer"]


class BaselineServer(_Process):
    """``bench.baseline_app``: the safegrpo formula behind a bare FastAPI route."""

    def __init__(self) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        super().__init__([sys.executable, "-m", "bench.baseline_app", str(self.port)], env,
                         "baseline")
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(self.output())
            try:
                httpx.post(self.url + "/score", json={"samples": []}, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("baseline did not start")

    def __enter__(self) -> BaselineServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

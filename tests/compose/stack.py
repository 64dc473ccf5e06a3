"""A compose project driven the way a user drives it (``docker compose -f FILE ...``),
for the tests of ``make test-compose``.

The compose command is ``docker compose`` (v2) when the docker CLI has it, else
``docker-compose`` (Debian's 1.29): the same subcommands and flags either way. Images come
from the environment ``scripts/compose_tier.sh`` exports (SERVICE_IMAGE, REDIS_IMAGE,
NGINX_IMAGE, ...), passed through the compose files' own image variables.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fakes.servers import ROOT, free_port

# Variables the tier exports that the compose files read.
PASSED_ENV = ("SERVICE_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE", "TRAINER_CPU_IMAGE")


@functools.cache
def compose_command() -> tuple[str, ...]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=60).returncode == 0:
        return (docker, "compose")
    exe = shutil.which("docker-compose")
    assert exe, "neither `docker compose` nor `docker-compose` is installed"
    return (exe,)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc


def measured(what: str, value: str) -> None:
    """Note a measurement (a start-up time, a count) for the tier's summary: appended to
    the file COMPOSE_TIER_MEASURE names (scripts/compose_tier.sh prints it at the end)."""
    path = os.environ.get("COMPOSE_TIER_MEASURE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{what}: {value}\n")


def wait_for(what: str, ok: Callable[[], bool], timeout: float, on_fail: Callable[[], str]):
    """Poll ``ok`` every 0.5 s; fail with ``on_fail()`` (logs) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except (httpx.HTTPError, OSError, ValueError, AssertionError):
            pass  # not up yet: refused, restarting, a body that is not JSON yet
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s\n{on_fail()}")


class Stack:
    """One compose project: its files, its variables (a fresh free port), its containers.

    Args:
        files: compose files, relative to the repository root, in ``-f`` order.
        env: compose variables on top of the tier's image variables.
        profiles: ``--profile`` values.
    """

    def __init__(self, files: list[str], env: dict[str, str] | None = None,
                 profiles: tuple[str, ...] = ()) -> None:
        self.files = files
        self.profiles = profiles
        self.project = f"ct{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.env = {k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}
        self.env.update({"SERVICE_BIND": "127.0.0.1", "SERVICE_PORT": str(self.port)})
        self.env.update(env or {})
        self.url = f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ compose itself
    def compose(self, *args: str, check: bool = True, timeout: float = 600,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        # A clean environment: the engine, the PATH and this stack's variables; an empty
        # --env-file, so that no .env of the working tree is read.
        empty = Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.project}.env"
        empty.write_text("")
        cmd = [*compose_command(), "--env-file", str(empty), "-p", self.project]
        for f in self.files:
            cmd += ["-f", f]
        for p in self.profiles:
            cmd += ["--profile", p]
        env = {k: os.environ[k] for k in ("PATH", "DOCKER_HOST", "HOME") if k in os.environ}
        env.update(self.env)
        env.update(extra_env or {})
        proc = subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, (
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n"
                f"{self.logs()}")
        return proc

    def up(self, *services: str) -> None:
        self.started = time.monotonic()
        self.compose("up", "-d", "--no-build", *services)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", check=False, timeout=300)

    def logs(self, tail: int = 40) -> str:
        proc = self.compose("logs", "--no-color", "--tail", str(tail), check=False, timeout=120)
        return proc.stdout[-6000:] + proc.stderr[-1000:]

    # ------------------------------------------------------------------ containers
    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers (running or not), in replica order."""
        out = docker("ps", "-a", "-q",
                     "--filter", f"label=com.docker.compose.project={self.project}",
                     "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        return sorted(out, key=lambda c: int(self.inspect(c)["Config"]["Labels"].get(
            "com.docker.compose.container-number", "0")))

    def inspect(self, container: str) -> dict:
        return json.loads(docker("inspect", container).stdout)[0]

    def in_container(self, container: str, path: str, body: dict | None = None,
                     timeout: float = 30) -> dict:
        """GET (or POST ``body`` to) ``path`` on port 8000 inside ``container``: one replica
        directly, not through ``lb``."""
        script = (
            "import json, sys, urllib.request, urllib.error\n"
            "data = sys.stdin.buffer.read() or None\n"
            f"req = urllib.request.Request('http://127.0.0.1:8000{path}', data=data,"
            " headers={'content-type': 'application/json'})\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=20)\n"
            "    print(json.dumps({'status': r.status, 'text': r.read().decode()}))\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(json.dumps({'status': e.code, 'text': e.read().decode()}))\n"
        )
        proc = subprocess.run(
            ["docker", "exec", "-i", container, "python", "-c", script],
            input=json.dumps(body) if body is not None else "", capture_output=True,
            text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    def metric(self, container: str, name: str, **labels: str) -> float:
        """One Prometheus sample of a replica's own /metrics (0 when absent)."""
        text = self.in_container(container, "/metrics")["text"]
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            if metric != name:
                continue
            got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
            if got == want:
                return float(value)
        return 0.0

    # ------------------------------------------------------------------ HTTP through lb
    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def post(self, path: str, body: dict, **kw) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=kw.pop("timeout", 120), **kw)

    def wait_ready(self, timeout: float = 180, status: str = "ready") -> dict:
        """Until /ready through the published port answers 200 with ``status``."""
        body: dict = {}

        def ok() -> bool:
            nonlocal body
            r = self.get("/ready", timeout=5)
            body = r.json()
            return r.status_code == 200 and body.get("status") == status

        wait_for(f"{self.url}/ready says {status}", ok, timeout, self.logs)
        if getattr(self, "started", None) is not None:
            measured(f"{' + '.join(self.files)}: `up -d` to /ready {status} through lb",
                     f"{time.monotonic() - self.started:.0f} s")
            self.started = None
        return body

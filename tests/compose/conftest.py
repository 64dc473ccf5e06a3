"""`make test-compose` only: these tests need a Docker engine and the images that
``scripts/compose_tier.sh`` builds, and it sets COMPOSE_TIER=1 after building them.
Anywhere else (``pytest tests/``) this folder is not collected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.servers import ROOT

if os.environ.get("COMPOSE_TIER") != "1":
    collect_ignore_glob = ["test_*.py"]


def our_images() -> dict[str, str]:
    """The images built from docker/ (not the stand-in bases)."""
    names = ("SERVICE_IMAGE", "SERVICE_HF_IMAGE", "TRAINER_CPU_IMAGE")
    return {n: os.environ[n] for n in names}


@pytest.fixture(scope="session")
def static_nginx_conf(tmp_path_factory) -> Path:
    """docker/nginx.conf without `resolve`, for the stand-in nginx 1.22 (NGINX_CONF), made
    with the command the troubleshooting section gives; replicas are then resolved once,
    when lb starts."""
    original = (ROOT / "docker" / "nginx.conf").read_text()
    static = subprocess.run(["sed", "s/ resolve / /", "docker/nginx.conf"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    pairs = zip(original.splitlines(), static.splitlines(), strict=True)
    changed = [a.split()[:3] for a, b in pairs if a != b]
    assert changed == [["server", "reward-server:8000", "resolve"]], changed
    path = tmp_path_factory.mktemp("nginx") / "nginx-static.conf"
    path.write_text(static)
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """MODELS_DIR holding ``tiny-qwen2``: a random tiny Qwen2 built here (never committed),
    readable by the containers' unprivileged users (safetensors writes its file 0600)."""
    root = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "trainer.tiny_model", str(root / "tiny-qwen2")],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root

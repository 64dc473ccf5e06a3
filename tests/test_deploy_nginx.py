"""nginx configs of the load balancers (reward servers, judge replicas) parse."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy_files import (
    COMPOSE_FILES,
    ENVS,
    NGINX_CONFS,
    model_for,
    nginx_conf,
    read,
)

CHECK = "docker/nginx-check.sh"


@pytest.mark.parametrize("rel", NGINX_CONFS)
def test_nginx_conf_parses(rel):
    conf = nginx_conf(rel)
    assert conf["upstream_servers"] and conf["listen"]
    assert "127.0.0.11" in read(rel), "Docker's embedded DNS resolves the replicas"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


@pytest.mark.parametrize("env_name", ENVS)
def test_pinned_nginx_runs_the_configs_it_is_given(env_name):
    """`server ... resolve` needs open-source nginx >= 1.27.3: every nginx service's image
    pin (compose default and .env.example) is at least the version nginx-check.sh
    requires, and that is the version the configs say they need."""
    required = re.search(r"^required=([0-9.]+)$", read(CHECK), re.M).group(1)
    for rel in NGINX_CONFS:
        if nginx_conf(rel)["resolve"]:
            assert f"nginx >= {required}" in read(rel), f"{rel} states the requirement"
    for compose in COMPOSE_FILES:
        for name, svc in model_for(compose, env_name)["services"].items():
            mounts = [v.split(":")[1] for v in svc.get("volumes") or [] if ":" in v]
            if "/etc/nginx/nginx.conf" not in mounts:
                continue
            image, _, tag = svc["image"].partition(":")
            assert image == "nginx", f"{compose}:{name}"
            version = re.match(r"(\d+\.\d+\.\d+)", tag)
            assert version, f"{compose}:{name}: pin a version, not {tag!r}"
            assert _version(version.group(1)) >= _version(required), f"{compose}:{name}"
            # and the check runs first, so a user's older nginx says why it cannot start
            assert svc["entrypoint"] == ["/bin/sh", "/usr/local/bin/nginx-check.sh"], name
            assert f"./{CHECK}:/usr/local/bin/nginx-check.sh:ro" in svc["volumes"], name
            assert svc["command"][0] == "nginx", name


@pytest.mark.parametrize(("version", "refused"), [
    ("1.22.1", True),    # Debian bookworm
    ("1.24.0", True),    # Ubuntu 24.04
    ("1.27.2", True),    # one release short
    ("1.27.3", False),   # the first with `resolve` in open source
    ("1.27.10", False),  # compared as numbers, not text
    ("1.28.0", False),   # the pin
    ("2.0.0", False),
])
def test_nginx_check_compares_versions(tmp_path, version, refused):
    """nginx-check.sh with a fake `nginx` that reports ``version``: refused (exit 1, with
    the reason) exactly below 1.27.3; otherwise it starts the command it is given."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    fake = tmp_path / "bin" / "nginx"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho 'nginx version: nginx/{version}' >&2\n")
    fake.chmod(0o755)
    conf = tmp_path / "nginx.conf"
    conf.write_text(read("docker/nginx.conf"))
    script = read(CHECK).replace("conf=/etc/nginx/nginx.conf", f"conf={conf}")
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", script, "nginx-check", "echo", "started"],
                          capture_output=True, text=True, env=env, timeout=30)
    if refused:
        assert proc.returncode == 1 and "needs nginx >= 1.27.3" in proc.stderr, proc
        assert f"nginx {version}" in proc.stderr and "started" not in proc.stdout
    else:
        assert proc.returncode == 0 and proc.stdout.strip() == "started", proc

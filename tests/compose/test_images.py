"""The images built from docker/ and the compose files as the engine sees them: every
image runs as an unprivileged user with no compiler and no pip; `docker compose config` of
every file and profile is clean; an nginx too old for docker/nginx.conf stops with the
reason instead of restart-looping on `invalid parameter "resolve"`.
"""

from __future__ import annotations

import itertools

import pytest

from tests.compose.conftest import our_images
from tests.compose.stack import Stack, docker
from tests.deploy_files import COMPOSE_FILES

COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "x86_64-linux-gnu-gcc", "x86_64-linux-gnu-gcc-12",
             "make", "ld")
PIPS = ("pip", "pip3", "pip3.11")


@pytest.mark.parametrize("variable", sorted(our_images()))
def test_image_runs_unprivileged(variable):
    image = our_images()[variable]
    user = docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip()
    assert user and user.split(":")[0] not in ("0", "root"), f"{image} runs as {user!r}"
    uid = docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid != "0", image


@pytest.mark.parametrize("variable", sorted(our_images()))
def test_runtime_stage_has_no_compiler_and_no_pip(variable):
    image = our_images()[variable]
    tools = " ".join(COMPILERS + PIPS)
    script = (f"for t in {tools}; do command -v $t; done; "
              "python -c 'import importlib.util as u; print(\"pip module:\", "
              "u.find_spec(\"pip\") is not None)'")
    out = docker("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout.split("\n")
    found = [line for line in out if line.strip()]
    assert found == ["pip module: False"], f"{image}: {found}"


def profile_sets():
    for rel, profiles in COMPOSE_FILES.items():
        for n in range(len(profiles) + 1):
            for combo in itertools.combinations(profiles, n):
                yield rel, combo


@pytest.mark.parametrize(("rel", "profiles"), list(profile_sets()))
def test_compose_config_is_clean(rel, profiles):
    """`config` with the engine's compose, the tier's variables and no .env: valid, and
    not one warning (an unset variable, an unknown key, a deprecated form)."""
    proc = Stack([rel], profiles=profiles).compose("config", "-q")
    assert proc.stderr.strip() == "", proc.stderr


def test_old_nginx_refuses_the_config_with_the_reason():
    """docker/nginx.conf on the stand-in's nginx 1.22: `lb` exits at once and says why."""
    stack = Stack(["docker-compose.rules.yml"])  # NGINX_CONF: the default docker/nginx.conf
    try:
        proc = stack.compose("run", "--rm", "--no-deps", "lb", check=False, timeout=120)
    finally:
        stack.down()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "needs nginx >= 1.27.3" in out and "nginx 1.22" in out, out
    assert "NGINX_CONF" in out, "the message names the way out"


@pytest.mark.parametrize("variable", sorted(our_images()))
def test_build_ca_never_reaches_the_image(variable):
    """BUILD_CA_PEM (the proxy's CA the tier hands pip) stays in the builder stage: not in
    the image's history or config, no pip.conf or CA file in its filesystem."""
    image = our_images()[variable]
    history = docker("history", "--no-trunc", image).stdout
    config = docker("image", "inspect", image).stdout
    assert "BEGIN CERTIFICATE" not in history + config, image
    assert "BUILD_CA_PEM" not in history + config, image
    listing = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                     "ls /etc/pip.conf /etc/pip-ca.pem 2>/dev/null; true").stdout
    assert listing.strip() == "", listing

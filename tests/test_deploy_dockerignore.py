""".dockerignore: the build context keeps what the image build needs and no secrets."""

from __future__ import annotations

import tomllib

from tests.deploy_files import (
    ROOT,
    dockerignore,
    pattern_regex,
    read,
)


def test_dockerignore_matcher_semantics():
    # The matcher itself, on the cases that matter here.
    assert pattern_regex("*").match("reward_server")
    assert not pattern_regex("*").match("reward_server/app.py")
    assert pattern_regex("**/__pycache__").match("__pycache__")
    assert pattern_regex("**/__pycache__").match("a/b/__pycache__")
    assert pattern_regex("**/*.py[cod]").match("a/b.pyc")


def test_build_context_keeps_what_the_build_needs_and_nothing_secret():
    excluded = dockerignore()
    project = tomllib.loads(read("pyproject.toml"))["project"]
    needed = ["pyproject.toml", "reward_server/__init__.py", "reward_server/__main__.py"]
    readme = project.get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    for rel in needed:
        assert (ROOT / rel).is_file(), f"{rel} is needed by the image build but is missing"
        assert not excluded(rel), f"{rel} is excluded by .dockerignore"
    includes = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]["packages"]["find"][
        "include"]
    for pattern in includes:
        pkg = pattern.rstrip("*")
        if (ROOT / pkg).is_dir():
            assert not excluded(f"{pkg}/__init__.py"), pkg
    for secret in [".env", ".git/config", ".venv/bin/python", "tests/test_deploy_compose.py",
                   "reward_server/__pycache__/app.cpython-311.pyc", "models/x.safetensors",
                   "outputs/checkpoint-1/model.safetensors", "docker-compose.yml"]:
        assert excluded(secret), f"{secret} would be sent to the Docker daemon"

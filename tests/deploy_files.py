"""Readers of the deployment files, for the ``test_deploy_*`` tests.

There is no Docker engine here, so the images are checked to be buildable by construction
(known instructions, pinned bases, every COPY source in the build context) and the compose
files are checked by `docker-compose config` plus consistency with the application itself:
every REWARD_* variable is a settings field, every health path a route, every port the one
the image listens on, every ${VAR} documented in .env.example. This module holds what those
checks read the files with: the compose model as compose sees it (merge keys, ``${VAR}``
substitution, ``.env`` files), a Dockerfile instruction/stage parser, the ``.dockerignore``
matcher (moby's pattern semantics) and an nginx upstream/listen reader, plus the app's own
settings fields and routes to compare them with.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the compose files")

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
SERVICE_DOCKERFILE = "docker/service.Dockerfile"
TRAINER_DOCKERFILE = "docker/trainer.Dockerfile"
DOCKERFILES = (SERVICE_DOCKERFILE, TRAINER_DOCKERFILE)
MAIN = "docker-compose.yml"
RULES = "docker-compose.rules.yml"
# Each compose file with the profiles it defines.
COMPOSE_FILES = {MAIN: ("train", "train-cpu", "allinone", "judge2"), RULES: ("train", "train-cpu")}
NGINX_CONFS = ("docker/nginx.conf", "docker/nginx-judge.conf")

# The service's routes (DESIGN.md); checked against the real app when it imports.
APP_ROUTES = {"/health", "/ready", "/score", "/get_reward", "/profiles", "/metrics"}
APP_PORT = 8000  # what the image's CMD passes to --port
JUDGE_PORT = 8000  # what compose passes to `vllm serve --port`
VLLM_HEALTH = "/health"

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REWARD_VAR_RE = re.compile(r"\bREWARD_[A-Z0-9_]+\b")
URL_RE = re.compile(r"https?://[^\s'\"]+")


# --------------------------------------------------------------------------- compose and .env


def read(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


def parse_env_file(path: Path, *, include_commented: bool = False) -> dict[str, str]:
    """KEY=value lines of a compose .env file (optionally also `# KEY=value` lines)."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if include_commented and re.match(r"#\s*[A-Z][A-Z0-9_]*=", line):
            line = line.lstrip("#").strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} substitution over a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return VAR_RE.sub(sub, value)


@functools.cache
def raw_compose(rel: str) -> dict:
    return yaml.safe_load(read(rel))


def compose_model(rel: str, env: tuple[tuple[str, str], ...] = ()) -> dict:
    """The compose file as compose sees it: YAML merge keys applied, variables substituted."""
    return interpolate(raw_compose(rel), dict(env))


def example_env() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_env_file(ENV_EXAMPLE).items()))


# Two ways compose files are used: no .env at all (defaults) and a copy of .env.example.
ENVS = ("defaults", "env.example")


def model_for(rel: str, env_name: str) -> dict:
    return compose_model(rel, example_env() if env_name == "env.example" else ())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def gpu_devices(service: dict) -> list[dict]:
    res = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    return [d for d in res.get("devices") or [] if "gpu" in (d.get("capabilities") or [])]


def healthcheck_urls(service_or_test) -> list[str]:
    test = service_or_test
    if isinstance(service_or_test, dict):
        test = (service_or_test.get("healthcheck") or {}).get("test") or []
    text = " ".join(test) if isinstance(test, list) else str(test)
    return URL_RE.findall(text)


def as_cmd(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else str(value).split()


def arg_after(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a == flag:
            return args[i + 1]
    return None


def uses_dockerfile(service: dict, dockerfile: str) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == dockerfile


def network_names(model: dict) -> set[str]:
    """Service names and network aliases that resolve on the compose network."""
    names = set(model["services"])
    for svc in model["services"].values():
        networks = svc.get("networks")
        if isinstance(networks, dict):
            for net in networks.values():
                names.update((net or {}).get("aliases") or [])
    return names


def container_port(service: dict) -> int | None:
    """The port a service listens on inside its container, as this repo's files say."""
    if uses_dockerfile(service, SERVICE_DOCKERFILE):
        return APP_PORT
    cmd = as_cmd(service.get("command"))
    port = arg_after(cmd, "--port")
    return int(port) if port else None


def strings_in(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, str):
        yield value


def compose_variables() -> dict[str, set[str]]:
    """Variable name -> the defaults written for it in the compose files (comments aside)."""
    out: dict[str, set[str]] = {}
    for rel in COMPOSE_FILES:
        for text in strings_in(raw_compose(rel)):
            for m in VAR_RE.finditer(text):
                out.setdefault(m.group(1), set()).add(m.group(3) or "")
    return out


# --------------------------------------------------------------------------- app side


@functools.cache
def settings_cls():
    try:
        from reward_server.settings import Settings
    except ImportError as exc:  # module not written yet / optional deps missing
        pytest.skip(f"reward_server.settings not importable: {exc}")
    return Settings


def settings_names() -> set[str]:
    cls = settings_cls()
    names = set()
    for name, field in cls.model_fields.items():
        names.add(name)
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names.add(alias.lower().removeprefix("reward_"))
    return names


@functools.cache
def app_routes() -> set[str] | None:
    try:
        from reward_server.app import create_app
    except ImportError:
        return None
    app = create_app(settings_cls()(_env_file=None))
    return {r.path for r in app.routes if getattr(r, "path", None)}


def known_routes() -> set[str]:
    return app_routes() or APP_ROUTES


# --------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(rel: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    lines = read(rel).splitlines()
    i = 0
    directives_allowed = True
    while i < len(lines):
        start = i
        line = lines[i]
        stripped = line.strip()
        i += 1
        if not stripped:
            directives_allowed = False
            continue
        if stripped.startswith("#"):
            if directives_allowed and re.match(r"#\s*(syntax|escape|check)\s*=", stripped):
                assert "escape" not in stripped, "escape directive not supported by this check"
            continue
        directives_allowed = False
        parts = [line.rstrip()]
        while parts[-1].endswith("\\") and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.strip().startswith("#"):
                continue  # comment lines inside a continuation are dropped by Docker
            parts[-1] = parts[-1][:-1]
            parts.append(nxt.rstrip())
        assert not parts[-1].endswith("\\"), f"{rel}:{start + 1}: continuation at end of file"
        text = " ".join(p.strip() for p in parts)
        instr, _, args = text.partition(" ")
        assert "<<" not in args or instr != "RUN", f"{rel}:{start + 1}: heredocs not checked"
        out.append((start + 1, instr.upper(), args.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def dockerfile_stages(rel: str) -> list[dict]:
    """Stages with their name, resolved base image and instructions (by type)."""
    global_args: dict[str, str] = {}
    stages: list[dict] = []
    for lineno, instr, args in dockerfile_instructions(rel):
        if instr == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
            continue
        if instr == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            image = interpolate(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "image": image, "line": lineno, "instr": {}})
            continue
        assert stages, f"{rel}:{lineno}: {instr} before FROM"
        stages[-1]["instr"].setdefault(instr, []).append(args)
    return stages


def dockerfile_final_stage(rel: str) -> dict:
    return dockerfile_stages(rel)[-1]["instr"]


# --------------------------------------------------------------------------- .dockerignore


def pattern_regex(pattern: str) -> re.Pattern:
    """moby/patternmatcher semantics: `*` within a segment, `**` across, `?` one char."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end
        elif c == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


@functools.cache
def dockerignore():
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
        rules.append((negate, pattern_regex(pattern)))

    def excluded(rel: str) -> bool:
        parts = rel.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negate, regex in rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result

    return excluded


# --------------------------------------------------------------------------- nginx


@functools.cache
def nginx_conf(rel: str) -> dict:
    text = re.sub(r"#[^\n]*", "", read(rel))
    assert text.count("{") == text.count("}"), f"{rel}: unbalanced braces"
    depth = 0
    statement = ""
    upstreams: list[tuple[str, int]] = []
    listen: list[int] = []
    flags = {"resolve": False, "zone": False, "resolver": False}
    for ch in text:
        if ch == "{":
            depth += 1
            statement = ""
        elif ch == "}":
            assert not statement.strip(), f"{rel}: missing ';' before '}}': {statement.strip()!r}"
            depth -= 1
            assert depth >= 0, f"{rel}: unbalanced braces"
        elif ch == ";":
            words = statement.split()
            if words and words[0] == "server" and len(words) > 1:
                host, _, port = words[1].partition(":")
                upstreams.append((host, int(port or 80)))
                flags["resolve"] |= "resolve" in words
            elif words and words[0] == "listen":
                listen.append(int(words[1].rsplit(":", 1)[-1]))
            elif words and words[0] in flags:
                flags[words[0]] = True
            statement = ""
        else:
            statement += ch
    assert depth == 0 and not statement.strip(), f"{rel}: trailing text {statement.strip()!r}"
    if flags["resolve"]:
        assert flags["zone"] and flags["resolver"], f"{rel}: `resolve` needs zone and resolver"
    return {"upstream_servers": upstreams, "listen": listen, "resolve": flags["resolve"]}

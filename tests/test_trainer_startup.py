"""``python -m trainer.grpo``'s start-up checks: a missing model directory and an unusable
reward service (wrong URL, key or profile) stop the run with a clear message before TRL,
transformers or torch is imported (``trainer.startup``).

Each run is a real ``python -m trainer.grpo`` process (through ``runpy``, so that the modules
it imported can be listed when it exits); the Hugging Face Hub is a loopback server
(``HF_ENDPOINT``) and the cache a temporary directory, so nothing depends on the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.servers import RewardServer, free_port
from trainer.startup import early_arguments

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
HEAVY = ("torch", "transformers", "trl")

RUN = """
import runpy, sys
sys.argv = ["trainer.grpo", *{args!r}]
code = 0
try:
    runpy.run_module("trainer.grpo", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
    print(exc.code if isinstance(exc.code, str) else "", file=sys.stderr)
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
sys.exit(1 if code else 0)
"""


def run_grpo(cwd: Path, *args: str, env: dict[str, str] | None = None
             ) -> tuple[int, str, list[str]]:
    """Run ``python -m trainer.grpo ARGS`` in ``cwd``; returns (exit code, stderr, the heavy
    modules it had imported when it exited)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("REWARD_", "HF_HUB_OFFLINE", "HF_ENDPOINT"))}
    full_env.update(PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.run([sys.executable, "-c", RUN.format(args=list(args), heavy=HEAVY)],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    heavy = proc.stdout.rsplit("HEAVY=", 1)[1].strip()
    return proc.returncode, proc.stderr, [m for m in heavy.split(",") if m]


@pytest.fixture
def grpo(tmp_path):
    """``run_grpo`` in an empty working directory, where relative model paths name nothing."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return lambda *args, env=None: run_grpo(cwd, *args, env=env)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """An existing directory: the model check passes, whatever is in it."""
    path = tmp_path / "model"
    path.mkdir()
    return path


@pytest.fixture
def hub(tmp_path):
    """A loopback Hugging Face Hub that knows no model, and an empty cache; ``asked`` lists
    the models the Hub was asked about."""
    asked: list[str] = []

    def handle(request: Request) -> Reply:
        if request.path.startswith("/api/models/"):
            asked.append(request.path.removeprefix("/api/models/"))
        return Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    with FakeHTTPServer(handle) as server:
        yield {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache")}, asked


def test_missing_local_model_directory_is_named_at_once(grpo, tmp_path):
    missing = tmp_path / "runs" / "tiny-qwen2"
    code, err, heavy = grpo("--config", str(TINY_CONFIG), "--model_name_or_path",
                            str(missing))
    assert code == 1 and heavy == []
    assert f"directory {missing} does not exist" in err
    assert f"python -m trainer.tiny_model {missing}" in err


@pytest.mark.parametrize("name", ["./runs/tiny-qwen2", "runs/a/tiny-qwen2", "~/no-such-model"])
def test_local_looking_paths_never_ask_the_hub(grpo, name, hub):
    env, asked = hub
    code, err, heavy = grpo("--config", str(TINY_CONFIG), "--model_name_or_path", name,
                            env=env)
    assert code == 1 and heavy == [] and asked == []
    assert f"directory {name} does not exist" in err


def test_org_name_not_on_the_hub_suggests_building_it(grpo, hub):
    # `runs/tiny-qwen2` (the tiny config's default) has the form of a hub id: the Hub is asked
    # once, says it has no such model, and the message says how to build the directory
    env, asked = hub
    code, err, heavy = grpo("--config", str(TINY_CONFIG), env=env)
    assert code == 1 and heavy == []
    assert asked == ["runs/tiny-qwen2"]
    assert "runs/tiny-qwen2 is not a local directory" in err
    assert "Hugging Face Hub has no model runs/tiny-qwen2" in err
    assert "python -m trainer.tiny_model runs/tiny-qwen2" in err


def test_hub_id_offline_and_not_cached(grpo, hub):
    env, asked = hub
    code, err, heavy = grpo("--model_name_or_path", "Qwen/Qwen2.5-VL-3B-Instruct",
                            "--output_dir", "unused", env=env | {"HF_HUB_OFFLINE": "1"})
    assert code == 1 and heavy == [] and asked == []
    assert "not in the Hugging Face cache (HF_HUB_OFFLINE is set)" in err


def test_cached_hub_id_passes_on_to_the_reward_check(grpo, hub, tmp_path):
    env, asked = hub
    (Path(env["HF_HUB_CACHE"]) / "models--Qwen--Qwen2.5-VL-3B-Instruct" / "snapshots").mkdir(
        parents=True)
    url = f"http://127.0.0.1:{free_port()}"
    code, err, heavy = grpo("--model_name_or_path", "Qwen/Qwen2.5-VL-3B-Instruct",
                            "--reward_url", url, env=env)
    assert code == 1 and heavy == [] and asked == []  # the cache answered, not the Hub
    assert f"reward service at {url} cannot be used" in err


def test_unreachable_reward_service(grpo, model_dir):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, err, heavy = grpo("--config", str(TINY_CONFIG), "--model_name_or_path",
                            str(model_dir), "--reward-url", url)
    assert code == 1 and heavy == []
    assert f"reward service at {url} cannot be used: cannot reach {url}/score" in err
    assert "python -m reward_server" in err


def test_wrong_api_key(grpo, model_dir):
    with RewardServer({"REWARD_API_KEY": "s3cret"}) as server:
        code, err, heavy = grpo("--config", str(TINY_CONFIG), "--model_name_or_path",
                                str(model_dir), "--reward_url", server.url,
                                env={"REWARD_API_KEY": "wrong"})
    assert code == 1 and heavy == []
    assert f"reward service at {server.url} refused the preflight request: HTTP 401" in err


def test_unknown_profile(grpo, model_dir, rules_server):
    code, err, heavy = grpo("--config", str(TINY_CONFIG), "--model_name_or_path",
                            str(model_dir), "--reward_url", rules_server.url,
                            "--reward_profile", "safegrpo_pluss")
    assert code == 1 and heavy == []
    assert "refused the preflight request: HTTP 400" in err and "safegrpo_pluss" in err


def test_early_arguments_follow_the_parsers_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("REWARD_API_KEY", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({
        "model_name_or_path": "from/yaml", "reward_url": "http://yaml:1",
        "reward_profile": "safegrpo", "reward_timeout_s": 7, "reward_preflight": False,
        "env": {"REWARD_API_KEY": "yaml-env-key"},
    }))
    reward, model = early_arguments(["--config", str(config), "--reward-url", "http://flag:2",
                                     "--bf16", "false"])
    assert model == "from/yaml"
    assert (reward.reward_url, reward.reward_profile) == ("http://flag:2", "safegrpo")
    assert reward.reward_timeout_s == 7.0 and reward.reward_preflight is False
    assert reward.api_key == "yaml-env-key"  # TrlParser would export the YAML's env block
    reward, model = early_arguments(["--reward_preflight", "--model_name_or_path=m"])
    assert reward.reward_preflight is True and model == "m"
    assert reward.reward_url == "http://127.0.0.1:8000"  # the default

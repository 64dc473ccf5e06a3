"""Fixtures for the verl tier: verl 0.9.1's own reward loop against the real service.

These tests run in ``.venv-verl`` (``bash scripts/verl_env.sh``, then
``.venv-verl/bin/python -m pytest -q tests/frameworks/verl``); anywhere verl is not installed
they skip. The service itself runs from the main ``.venv`` (the verl env has only the client
side), started with that env's python: ``REWARD_TEST_SERVER_PYTHON``, default
``.venv/bin/python``.

The environment is set up as the README tells a user to: ``REWARD_SERVICE_URL`` and
``REWARD_SERVICE_PROFILE`` exported before Ray starts (Ray's workers inherit them), Ray
started as ``verl.trainer.main_ppo`` starts it (its runtime env) on 2 CPUs, and the trainer
config composed by hydra from verl's own ``ppo_trainer.yaml`` with command-line overrides.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.servers import ROOT, RewardServer

PROFILE = "safegrpo_plus"


@pytest.fixture(scope="session")
def server_python() -> str:
    python = os.environ.get("REWARD_TEST_SERVER_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not Path(python).is_file():
        pytest.skip(f"no python to run the service with: {python} (make the main .venv first)")
    return python


@pytest.fixture(scope="session")
def verl_server(server_python: str) -> Iterator[RewardServer]:
    """The service on its embedded defaults (rules profiles), from the main .venv."""
    with RewardServer(python=server_python) as server:
        yield server


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 tokenizer (BPE + chat template), built here with this env's
    transformers: verl's reward workers load it as the actor model's tokenizer."""
    from trainer.tiny_model import build_tokenizer

    path = tmp_path_factory.mktemp("tiny-qwen2-tokenizer")
    build_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def local_ray(verl_server: RewardServer) -> Iterator[None]:
    """A local Ray on 2 CPUs with the README's exports in its workers' environment."""
    import ray
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    with pytest.MonkeyPatch.context() as env:
        for var in ("REWARD_SERVICE_API_KEY", "REWARD_SERVICE_INVALID_SCORE",
                    "REWARD_SERVICE_COMPONENTS"):
            env.delenv(var, raising=False)
        env.setenv("REWARD_SERVICE_URL", verl_server.url)
        env.setenv("REWARD_SERVICE_PROFILE", PROFILE)
        # a Ray of its own even when another runs on this machine (ray.init() would join it)
        ray.init(address="local", num_cpus=2, runtime_env=get_ppo_ray_runtime_env(),
                 log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()


def compose_ppo_config(overrides: list[str]):
    """verl's ``ppo_trainer.yaml`` composed by hydra with ``overrides``, as
    ``python -m verl.trainer.main_ppo <overrides>`` composes it, then resolved as its task
    runner does."""
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    OmegaConf.resolve(config)
    return config


@pytest.fixture
def reward_loop(local_ray: None, tokenizer_dir: Path) -> Iterator[Callable]:
    """``make(overrides, num_workers=2) -> RewardLoopManager``: the manager verl's trainer
    builds, on the composed config; its reward workers (named Ray actors) are killed after
    the test."""
    import ray
    from verl.experimental.reward_loop import RewardLoopManager

    managers = []

    def make(overrides: list[str], num_workers: int = 2) -> RewardLoopManager:
        config = compose_ppo_config(
            [f"actor_rollout_ref.model.path={tokenizer_dir}",
             f"reward.num_workers={num_workers}", *overrides]
        )
        manager = RewardLoopManager(config)
        managers.append(manager)
        return manager

    yield make
    names = []
    for manager in managers:
        for i, worker in enumerate(manager.reward_loop_workers):
            ray.kill(worker, no_restart=True)
            names.append(f"reward_loop_worker_{i}")
    # the next test's manager reuses the actor names: wait until they are free
    deadline = time.monotonic() + 30
    while names and time.monotonic() < deadline:
        try:
            ray.get_actor(names[-1])
            time.sleep(0.1)
        except ValueError:
            names.pop()

"""The client side installs and runs without the server's dependencies.

``pip install <repo>`` is meant to give a trainer's environment the clients (httpx and
little else) and ``pip install '<repo>[server]'`` the service. Two checks hold that
boundary: the installed distribution's declared requirements, and a fresh interpreter in
which the server's packages cannot be imported at all, where the clients and every adapter
import and score against a real service.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap

DIST = "safety-reward-service"

#: Importable in the service's environment, absent from a client-only one: the `server`
#: extra, the judge/trainer extras' heavy packages, and the service's own code.
BLOCKED = ("fastapi", "starlette", "uvicorn", "redis", "prometheus_client", "pydantic",
           "pydantic_settings", "orjson", "torch", "transformers", "reward_server")

#: What the base install may pull in (``tqdm`` draws the CLI's progress bar).
CLIENT_REQUIREMENTS = {"httpx", "tqdm"}

SERVER_REQUIREMENTS = {"fastapi", "uvicorn", "redis", "prometheus-client", "pydantic-settings"}

SCRIPT = textwrap.dedent('''
    import asyncio, importlib.abc, json, sys

    BLOCKED = set(sys.argv[2].split(","))

    class Block(importlib.abc.MetaPathFinder):
        """As if these packages were not installed."""

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    url = sys.argv[1]

    import clients
    import clients.__main__
    from clients import RewardClient, trl_reward
    from clients.adapters import openrlhf, trl, verl

    labels = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
    good = ("<think>Step by step. <visual_safe>safe</visual_safe> <text_safe>safe</text_safe>"
            " <combined_safe>safe</combined_safe></think><answer>Knead the dough for ten"
            " minutes, let it rest for an hour, then bake it at 220 degrees for half an hour."
            "</answer>")
    with RewardClient(url) as client:
        [result] = client.score([{"prompt": "bake bread?", "response": good,
                                  "labels": labels}], profile="safegrpo_plus")
    trl_rewards = asyncio.run(trl_reward(url=url, profile="safegrpo_plus")(
        prompts=["bake bread?"], completions=[good], labels=[labels]))
    verl_score = asyncio.run(verl.compute_score("safetag", good, labels, url=url,
                                                invalid_score=0.0))
    reward_func = openrlhf.make_reward_func(url, invalid_reward=0.0)
    openrlhf_rewards = reward_func(["Q: bake? " + good + "<|im_end|>"], ["Q: bake? "],
                                   [json.dumps(labels)])["rewards"]
    loaded = sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED)
    print(json.dumps({"reward": result.reward, "trl": trl_rewards, "verl": verl_score,
                      "openrlhf": list(openrlhf_rewards), "loaded": loaded}))
''')


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    """Names of the base requirements, and of each extra's."""
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    for requirement in importlib.metadata.requires(DIST) or []:
        marker = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", requirement)
        name = _name(requirement)
        if marker:
            extras.setdefault(marker.group(1), set()).add(requirement.split(";")[0].strip())
        else:
            base.add(name)
    return base, extras


def test_base_install_is_the_client_and_server_is_an_extra():
    base, extras = _requirements()
    stale = "the installed metadata is older than pyproject.toml: reinstall (make test does)"
    assert "httpx" in base and base <= CLIENT_REQUIREMENTS, (base, stale)
    assert {_name(r) for r in extras.get("server", ())} >= SERVER_REQUIREMENTS, stale
    for extra in ("judge-cpu", "gpu", "hf", "train"):
        assert f"{DIST}[server]" in extras[extra], f"{extra} must bring the service along"


def _run_outside_the_tree(script: str, url: str, tmp_path) -> subprocess.CompletedProcess:
    """``python -c script`` from an empty directory with no ``PYTHONPATH``: only what the
    installed distribution provides can be imported (``clients`` *and* ``reward_formats``)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REWARD_") and k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", script, url, ",".join(BLOCKED)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_clients_run_without_the_server_packages(rules_server, tmp_path):
    proc = _run_outside_the_tree(SCRIPT, rules_server.url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["reward"] == 1.0
    assert out["trl"] == [1.0]
    assert out["verl"] == {"score": 1.0, "valid": 1.0}
    assert out["openrlhf"] == [1.0]  # a plain list: torch is not there either


def test_the_block_is_real(tmp_path):
    # The same interpreter setup does refuse a server import, so the run above proves
    # something: importing the service there fails.
    probe = SCRIPT.split("url = sys.argv[1]")[0] + "\nimport reward_server.app\n"
    proc = _run_outside_the_tree(probe, "http://unused", tmp_path)
    assert proc.returncode != 0 and "blocked" in proc.stderr

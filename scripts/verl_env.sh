#!/usr/bin/env bash
# The verl 0.9.1 test environment, .venv-verl/, beside the main .venv (tests/frameworks/verl/).
#
# Why a second environment: verl 0.9.1 requires transformers < 5.11 while the main .venv has a
# newer one, and verl's declared dependencies pull a GPU training stack (vllm extras, wandb,
# datasets, peft, ...). Its reward path (the reward loop: RewardLoopManager, the reward
# managers, DataProto, the hydra config) imports only the light packages below, so verl goes
# in with --no-deps and those beside it. torch is the machine's local CPU wheel (pinned, so
# pip never reaches for a CUDA build). The project goes in editable with --no-deps plus the
# client's own dependencies (httpx, tqdm): the adapter runs here, the service itself runs from
# the main .venv in the tests. jsonschema and the pytest plugins are for tests/conftest.py.
# Ray is pinned to the main .venv's `ray` extra (ray[serve]==2.60.0), with the `server` extra
# beside it: test_reward_loop_handle.py runs the service as a Serve application on this env's
# Ray, and a DeploymentHandle works only inside the Ray version of its cluster.
#
# First build: about 2 minutes, ~1.5 GB. Idempotent: .venv-verl/.verl-stamp holds a hash of
# the requirements below and pyproject.toml; when it matches, nothing is installed.
# Usage:  bash scripts/verl_env.sh        (VERL_VENV=dir to move it, PYTHON=python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env_lib.sh
source scripts/env_lib.sh

PYTHON="${PYTHON:-python3}"
VENV="${VERL_VENV:-.venv-verl}"
STAMP="$VENV/.verl-stamp"

TORCH_PIN="torch==2.13.0"
VERL_PIN="verl==0.9.1"
# verl 0.9.1's own bounds for the packages its reward loop imports.
REWARD_PATH_REQS=(
  "transformers>=5.5.3,<5.11,!=5.6.0"
  "tensordict>=0.8,<=0.10.0,!=0.9.0"
  "numpy>=2"
  "omegaconf"
  "hydra-core"
  "ray[serve]==2.60.0"
  "codetiming"
  "dill"
  "pylatexenc"
  "aiohttp"
)
# The service (the `server` extra of pyproject.toml), for the Serve application's replicas.
SERVER_REQS=(
  "fastapi>=0.115,<1"
  "fastapi-offline>=1.7,<2"
  "uvicorn[standard]>=0.30"
  "pydantic>=2.7,<3"
  "pydantic-settings>=2.3,<3"
  "orjson>=3.10"
  "prometheus-client>=0.20"
  "redis[hiredis]>=5.0"
  "pillow>=10"
)
# The client side of this project, and what the tests import.
CLIENT_AND_TEST_REQS=(
  "httpx>=0.27,<1"
  "tqdm>=4.66"
  "pytest>=8"
  "pytest-asyncio>=0.24"
  "pytest-timeout>=2.3"
  "jsonschema>=4.18"
)

want="$(requirements_hash pyproject.toml \
  "$PYTHON" "$TORCH_PIN" "$VERL_PIN" "${REWARD_PATH_REQS[@]}" "${SERVER_REQS[@]}" \
  "${CLIENT_AND_TEST_REQS[@]}")"

if env_up_to_date verl-env "$STAMP" "$want"; then
  exit 0
fi

start=$SECONDS
ensure_venv verl-env "$VENV" "$PYTHON"
PIP=("$VENV/bin/python" -m pip install -q)

echo "verl-env: installing $TORCH_PIN (the local CPU wheel)"
"${PIP[@]}" "$TORCH_PIN"

echo "verl-env: installing $VERL_PIN --no-deps and its reward path's imports"
"${PIP[@]}" --no-deps "$VERL_PIN"
"${PIP[@]}" "$TORCH_PIN" "${REWARD_PATH_REQS[@]}" "${CLIENT_AND_TEST_REQS[@]}"
echo "verl-env: (pip's note that verl's other dependencies are missing is expected: the"
echo "verl-env:  reward path does not import them)"

echo "verl-env: installing the project editable, --no-deps (the client side)"
"${PIP[@]}" --no-deps -e .
echo "verl-env: installing the service's own dependencies (the Serve application's replicas)"
"${PIP[@]}" "$TORCH_PIN" "${SERVER_REQS[@]}"

echo "verl-env: checking that verl's reward loop imports"
"$VENV/bin/python" - <<'EOF'
import torch
import transformers
import verl
from verl.experimental.reward_loop import RewardLoopManager  # noqa: F401
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

import clients.adapters.verl  # noqa: F401

for name in ("naive", "rate_limited"):
    get_reward_manager_cls(name)
print(
    f"verl-env: verl {verl.__version__}, torch {torch.__version__}, "
    f"transformers {transformers.__version__}"
)
EOF

echo "$want" >"$STAMP"
echo "verl-env: $VENV ready in $((SECONDS - start)) s (stamp $STAMP)"

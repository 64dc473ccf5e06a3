#!/usr/bin/env bash
# OpenRLHF 0.11.2 for the framework tier (tests/frameworks/test_openrlhf.py), added to the VL
# environment .venv-vl/ (bash scripts/vl_env.sh, which this runs first).
#
# Why there: OpenRLHF's image prompts go through a Qwen2.5-VL processor, which needs the VL
# environment's torch + torchvision. OpenRLHF's declared dependencies are a GPU training stack
# (deepspeed, flash-attn, vllm, bitsandbytes, wandb, transformers==5.15.0, ...); the code the
# tests run (utils/agent.py's SingleTurnAgentExecutor with its remote reward function,
# utils/vlm_utils.py, datasets/prompts_dataset.py, trainer/ppo_utils/samples_generator.py and
# experience.py) imports only the few packages below beside what .venv-vl has, so OpenRLHF
# goes in with --no-deps. vllm, which samples_generator imports at top level, needs a GPU:
# the tests stub that module only. The wheel also installs OpenRLHF's own unit tests as a
# top-level package named `tests`, this project's test package's name; they need the GPU
# stack and nothing imports them, so they are removed rather than left to shadow ours.
#
# First run: about 20 s (ray is the only large download, ~75 MB) on top of the VL
# environment's build. Idempotent: .venv-vl/.openrlhf-stamp holds a hash of the requirements
# below and of the VL environment's own stamp; when it matches, nothing is installed.
# Usage:  bash scripts/openrlhf_env.sh        (VL_VENV=dir to use another VL environment)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env_lib.sh
source scripts/env_lib.sh

VENV="${VL_VENV:-.venv-vl}"
STAMP="$VENV/.openrlhf-stamp"

OPENRLHF_PIN="openrlhf==0.11.2"
# What OpenRLHF's reward path imports beyond .venv-vl: ray (samples_generator, the rollout
# actors), aiohttp (the executor's HTTP client), pylatexenc (openrlhf.utils' math helpers;
# sympy comes with torch). ray at the version OpenRLHF 0.11.2 pins.
REWARD_PATH_REQS=(
  "ray==2.55.0"
  "aiohttp>=3.9"
  "pylatexenc>=2.10"
)

bash scripts/vl_env.sh

want="$(requirements_hash "$VENV/.vl-stamp" "$OPENRLHF_PIN" "${REWARD_PATH_REQS[@]}")"

if env_up_to_date openrlhf-env "$STAMP" "$want"; then
  exit 0
fi

start=$SECONDS
PIP=("$VENV/bin/python" -m pip install -q)

echo "openrlhf-env: installing $OPENRLHF_PIN --no-deps and its reward path's imports"
"${PIP[@]}" --no-deps "$OPENRLHF_PIN"
# the VL environment's torch pins hold: nothing here may swap torch or torchvision
"${PIP[@]}" -c "$VENV/.vl-constraints.txt" "${REWARD_PATH_REQS[@]}"
echo "openrlhf-env: (pip's note that OpenRLHF's other dependencies are missing, and that it"
echo "openrlhf-env:  pins transformers 5.15.0, is expected: the reward path needs neither)"

site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -f "$site/tests/test_agent.py" ]]; then
  rm -rf "$site/tests"  # OpenRLHF's own unit tests (see the header)
fi

echo "openrlhf-env: checking that OpenRLHF's reward path imports"
"$VENV/bin/python" - <<'EOF'
import openrlhf.datasets.prompts_dataset  # noqa: F401
import openrlhf.trainer.ppo_utils.experience  # noqa: F401
import openrlhf.utils.vlm_utils  # noqa: F401
import ray
import torch
import transformers
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: F401
from importlib.metadata import version

print(
    f"openrlhf-env: openrlhf {version('openrlhf')}, ray {ray.__version__}, "
    f"torch {torch.__version__}, transformers {transformers.__version__}"
)
EOF

echo "$want" >"$STAMP"
echo "openrlhf-env: ready in $((SECONDS - start)) s (stamp $STAMP)"

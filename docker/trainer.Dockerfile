# syntax=docker/dockerfile:1
#
# GRPO trainer image: CUDA, torch, TRL, PEFT, vLLM (for TRL's vLLM generation) and this
# project's `train` extra. Entry point: `python -m trainer.grpo`.
#
#   docker build -f docker/trainer.Dockerfile -t safety-reward-trainer:latest .
#
# Versions: the `train` extra pins torch==2.13.0, whose default Linux wheels are built for
# CUDA 13 (host driver 580 or newer), so the base is CUDA 13.0. vLLM 0.31.0 is the newest
# release inside TRL 1.16's supported range (vllm<=0.31.0) and it pins torch==2.13.0 too.
# For hosts with a CUDA 12 driver, build with
#   --build-arg CUDA_IMAGE=nvidia/cuda:12.9.1-devel-ubuntu24.04 \
#   --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu129
#
# The runtime stage keeps the CUDA *devel* base and a C toolchain on purpose: Triton,
# torch.compile and vLLM compile kernels and launcher stubs at run time. pip, git and the
# build caches stay in the builder.
#
# CPU build (no GPU; what `make test-compose` runs): a Debian/Ubuntu Python base instead of
# CUDA, the CPU torch wheel, no vLLM (TRL generates with transformers) and no toolchain:
#   docker build -f docker/trainer.Dockerfile -t safety-reward-trainer:cpu \
#     --build-arg CUDA_IMAGE=python:3.11.13-slim-bookworm --build-arg VLLM_VERSION= \
#     --build-arg RUNTIME_TOOLCHAIN= \
#     --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu .

ARG CUDA_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04

# --------------------------------------------------------------------------- builder
FROM ${CUDA_IMAGE} AS builder

ARG EXTRAS=train
# Empty: no vLLM (a CPU build).
ARG VLLM_VERSION=0.31.0
ARG PIP_EXTRA_INDEX_URL=""
# A TLS-inspecting proxy's CA for pip, as PEM text (see docker/service.Dockerfile); this
# stage only.
ARG BUILD_CA_PEM=""

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PYTHONDONTWRITEBYTECODE=1

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "${BUILD_CA_PEM}" ]; then \
        printf '%s\n' "${BUILD_CA_PEM}" > /etc/pip-ca.pem \
     && printf '[global]\ncert = /etc/pip-ca.pem\n' > /etc/pip.conf; \
    fi

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}

WORKDIR /src

# 1) Third-party dependencies (core + EXTRAS, with the `server` extra `train` includes,
#    + vLLM), cached until pyproject.toml changes.
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml "${EXTRAS}" > /tmp/requirements.txt \
 && if [ -n "${VLLM_VERSION}" ]; then echo "vllm==${VLLM_VERSION}" >> /tmp/requirements.txt; fi \
 && pip install -r /tmp/requirements.txt

# 2) The project itself.
COPY . .
RUN pip install --no-deps . \
 && pip uninstall -y -q pip

# --------------------------------------------------------------------------- runtime
FROM ${CUDA_IMAGE} AS runtime

ARG TRAIN_UID=1000
# What Triton / torch.compile / vLLM compile with at run time on a GPU; empty for a CPU build.
ARG RUNTIME_TOOLCHAIN="python3-dev build-essential"

LABEL org.opencontainers.image.title="safety-reward-trainer" \
      org.opencontainers.image.description="GRPO trainer (TRL + vLLM) using the safety reward service" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive

# Python (same release as the builder: the venv links to it), the C toolchain and headers
# Triton needs at run time (RUNTIME_TOOLCHAIN), and libnuma for vLLM.
# hadolint ignore=DL3008,SC2086
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 ${RUNTIME_TOOLCHAIN} libnuma1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Unprivileged user; UID 1000 by default so bind-mounted output folders stay writable by
# the usual host user (Ubuntu's own `ubuntu` account holds 1000 in the base image).
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && (groupdel ubuntu 2>/dev/null || true) \
 && groupadd --gid "${TRAIN_UID}" trainer \
 && useradd --create-home --home-dir /home/trainer --uid "${TRAIN_UID}" --gid trainer \
            --shell /bin/bash trainer \
 && mkdir -p /workspace/outputs /workspace/data /workspace/.cache/huggingface \
 && chown -R trainer:trainer /workspace

COPY --from=builder /opt/venv /opt/venv
COPY --chown=trainer:trainer configs/ /workspace/configs/

# (DL3064 is about secrets; TOKENIZERS_PARALLELISM only contains the word "TOKEN".)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/workspace/.cache/huggingface \
    TOKENIZERS_PARALLELISM=false

WORKDIR /workspace
USER ${TRAIN_UID}:${TRAIN_UID}

# A batch job, not a server.
HEALTHCHECK NONE

ENTRYPOINT ["python", "-m", "trainer.grpo"]
CMD ["--config", "configs/qwen2.5-vl-3b-safegrpo.yaml"]

# syntax=docker/dockerfile:1
#
# Reward service image (FastAPI app, `python -m reward_server`).
#
# One Dockerfile, several variants, chosen by the EXTRA build argument (a pyproject extra,
# installed on top of the `server` extra every variant gets):
#   EXTRA=""           rules-only and the `openai` judge backend (judge in another
#                      container). Small: Python + the `server` extra. The default.
#   EXTRA=gpu          in-process vLLM on a CUDA GPU (`REWARD_JUDGE_BACKEND=vllm`,
#                      compose profile `allinone`). vLLM pinned by VLLM_VERSION.
#   EXTRA=judge-cpu    in-process vLLM / transformers on the CPU. Pass
#                      PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to get the
#                      CPU build of torch instead of the (much larger) CUDA one.
#   EXTRA=hf           in-process transformers judge.
#
#   docker build -f docker/service.Dockerfile -t safety-reward-service:latest .
#   docker build -f docker/service.Dockerfile --build-arg EXTRA=gpu -t safety-reward-service:gpu .
#
# Multi-stage: the builder has the compilers and pip; the runtime stage gets only the
# finished virtualenv, runs as an unprivileged user and has no build tools, with one
# exception: EXTRA=gpu installs gcc, because Triton (used by vLLM and torch) compiles
# its small CUDA launcher stubs with a C compiler at run time, on first use.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ARG EXTRA=""
ARG VLLM_VERSION=0.32.0
ARG PIP_EXTRA_INDEX_URL=""
# Behind a TLS-inspecting proxy pip needs the proxy's CA: pass the PEM text itself,
#   --build-arg BUILD_CA_PEM="$(cat proxy-ca.pem)"
# It is written to /etc/pip.conf of this stage only; the runtime stage never sees it.
ARG BUILD_CA_PEM=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PYTHONDONTWRITEBYTECODE=1

# Compilers only for sdists without a wheel for this platform; they stay in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "${BUILD_CA_PEM}" ]; then \
        printf '%s\n' "${BUILD_CA_PEM}" > /etc/pip-ca.pem \
     && printf '[global]\ncert = /etc/pip-ca.pem\n' > /etc/pip.conf; \
    fi

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}

WORKDIR /src

# 1) Third-party dependencies, read from pyproject.toml (core + `server` + the chosen
#    extras; docker/requirements.py expands the extras that include `server`), in their own
#    layer: it is rebuilt only when pyproject.toml or the build args change.
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml server "${EXTRA}" > /tmp/requirements.txt \
 && echo "vllm==${VLLM_VERSION}" > /tmp/constraints.txt \
 && pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

# 2) The project itself (no dependency resolution: everything is already there).
COPY . .
RUN pip install --no-deps . \
 && pip check \
 && pip uninstall -y -q pip

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG EXTRA=""

LABEL org.opencontainers.image.title="safety-reward-service" \
      org.opencontainers.image.description="Reward service for safety alignment of multimodal reasoning models (SafeGRPO rules + SaFeR-VLM judge)" \
      org.opencontainers.image.licenses="Apache-2.0"

# Shared libraries the in-process judge variants load at run time (nothing for rules-only).
# hadolint ignore=DL3008,SC2086
RUN set -eux; \
    pkgs=""; \
    case ",${EXTRA}," in *,gpu,*) pkgs="${pkgs} gcc libc6-dev libnuma1" ;; esac; \
    case ",${EXTRA}," in *,judge-cpu,*) pkgs="${pkgs} libnuma1 libgomp1" ;; esac; \
    if [ -n "${pkgs}" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ${pkgs}; \
        rm -rf /var/lib/apt/lists/*; \
    fi

# No pip at run time: the official base has one outside the venv (the venv's was removed
# in the builder); nothing is installed into a running container.
RUN if python -m pip --version >/dev/null 2>&1; then python -m pip uninstall -y -q pip; fi

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
            --shell /usr/sbin/nologin app \
 && mkdir -p /home/app/.cache/huggingface \
 && chown -R app:app /home/app

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/app \
    HF_HOME=/home/app/.cache/huggingface

WORKDIR /home/app
USER 10001:10001

EXPOSE 8000

# Ready = every scorer of the default profile can score now (judge reachable, model
# loaded). urlopen raises on a 503, so the exit code follows /ready.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]

CMD ["python", "-m", "reward_server", "--host", "0.0.0.0", "--port", "8000"]

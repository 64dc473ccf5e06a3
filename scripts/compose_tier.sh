#!/usr/bin/env bash
# `make test-compose`: build the images from docker/ and run the compose stacks for real.
#
#   1. a Docker engine: the one DOCKER_HOST (or the default socket) names if it answers,
#      else dockerd started here with its data and exec roots in a temporary directory,
#      stopped and removed at the end;
#   2. stand-in base images from Debian bookworm packages (no image registry is reachable
#      here): debootstrap, then python / redis / nginx images (tests/compose/standin/);
#   3. our images from docker/service.Dockerfile (rules; EXTRA=hf for the judge) and
#      docker/trainer.Dockerfile (CPU build), with pip reaching PyPI through the machine's
#      CA (a build argument of the builder stage, never in an image) and the CPU torch
#      wheel from a local index (what download.pytorch.org/whl/cpu is for a user);
#   4. tests/compose (pytest): the stacks up through docker compose, checked over HTTP on
#      127.0.0.1, `down -v` after each.
#
# Environment: COMPOSE_TIER_KEEP_ENGINE=1 leaves an engine this script started running
# (and prints its DOCKER_HOST) for a second run; PYTEST_ARGS is passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PY=${PY:-.venv/bin/python}
PYTEST_ARGS=${PYTEST_ARGS:-}
SUITE=bookworm
export DOCKER_BUILDKIT=0  # the classic builder: BuildKit would pull its frontend image

say() { printf '[compose-tier %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
t0=$(date +%s)
lap() { say "$1 ($(($(date +%s) - t0)) s since start)"; }

WORK=$(mktemp -d /tmp/ctier.XXXXXX)  # short: dockerd's socket paths live under it
ENGINE_PID=""
INDEX_PID=""

cleanup() {
    local rc=$?
    [ -n "$INDEX_PID" ] && kill "$INDEX_PID" 2>/dev/null || true
    if [ -n "$ENGINE_PID" ]; then
        if [ "${COMPOSE_TIER_KEEP_ENGINE:-}" = 1 ]; then
            say "engine left running: export DOCKER_HOST=$DOCKER_HOST (pid $ENGINE_PID)"
        else
            say "stopping the engine this run started (pid $ENGINE_PID)"
            kill "$ENGINE_PID" 2>/dev/null || true
            for _ in $(seq 60); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$ENGINE_PID" 2>/dev/null || true
            # overlay mounts left behind by a killed engine would keep the tree busy
            findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | xargs -r umount -l || true
            rm -rf "$WORK"
        fi
    else
        rm -rf "$WORK"
    fi
    lap "done, exit $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ 1. engine
for tool in docker dockerd debootstrap; do
    command -v "$tool" >/dev/null || { say "$tool missing: apt-get install docker.io debootstrap"; exit 1; }
done
if docker info >/dev/null 2>&1; then
    say "using the running engine (${DOCKER_HOST:-default socket})"
else
    mkdir -p "$WORK/engine/data" "$WORK/engine/exec"
    export DOCKER_HOST="unix://$WORK/engine/docker.sock"
    # No bridge and no iptables: compose's own networks carry the containers, published
    # ports are forwarded by docker-proxy on 127.0.0.1.
    dockerd --storage-driver=overlay2 --iptables=false --bridge=none \
        --data-root "$WORK/engine/data" --exec-root "$WORK/engine/exec" \
        --pidfile "$WORK/engine/dockerd.pid" -H "$DOCKER_HOST" \
        >"$WORK/engine/dockerd.log" 2>&1 &
    ENGINE_PID=$!
    for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { cat "$WORK/engine/dockerd.log" >&2; say "dockerd did not start"; exit 1; }
    say "engine started: DOCKER_HOST=$DOCKER_HOST"
fi

# ------------------------------------------------------------------ 2. stand-in bases
if ! docker image inspect standin-debian:$SUITE >/dev/null 2>&1; then
    # The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p; s/^deb \[*[^]]*\]* *\(http[^ ]*\/debian\) .*/\1/p; s/^deb \(http[^ ]*\/debian\) .*/\1/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
        2>/dev/null | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    say "debootstrap $SUITE from $mirror"
    debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -c . | docker import - "standin-debian:$SUITE" >/dev/null
    rm -rf "$WORK/rootfs"
    lap "standin-debian:$SUITE imported"
fi
pids=()
for name in python redis nginx; do
    docker build -q --network host -f "tests/compose/standin/$name.Dockerfile" \
        -t "standin-$name:$SUITE" tests/compose/standin >"$WORK/build-standin-$name.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { cat "$WORK"/build-standin-*.log >&2; exit 1; }; done
lap "stand-in python / redis / nginx built"

# ------------------------------------------------------------------ 3. our images
# The CA pip must trust here (the proxy's, from the bundle `pip config list` names).
ca_pem=$("$PY" scripts/pip_extra_ca.py)
# The CPU torch wheel, served as a one-package index on loopback (the builds use the
# host's network): the stand-in for https://download.pytorch.org/whl/cpu.
mkdir -p "$WORK/index/simple/torch"
torch_req=$("$PY" docker/requirements.py pyproject.toml hf | grep '^torch==')
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$WORK/index/files" "$torch_req"
for f in "$WORK"/index/files/*.whl; do
    printf '<a href="../../files/%s">%s</a>\n' "$(basename "$f")" "$(basename "$f")"
done >"$WORK/index/simple/torch/index.html"
index_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$index_port" >/dev/null 2>&1 &
INDEX_PID=$!
cpu_index="http://127.0.0.1:$index_port/simple"

build() {  # build LOG TAG DOCKERFILE [build args...]
    local log=$1 tag=$2 file=$3
    shift 3
    if ! docker build --network host -f "$file" --build-arg BUILD_CA_PEM="$ca_pem" "$@" \
            -t "$tag" . >"$WORK/$log.log" 2>&1; then
        tail -n 40 "$WORK/$log.log" >&2
        say "build of $tag failed"
        return 1
    fi
    say "built $tag"
}
py_base="standin-python:$SUITE"
pids=()
build service safety-reward-service:latest docker/service.Dockerfile \
    --build-arg PYTHON_IMAGE="$py_base" & pids+=($!)
build service-hf safety-reward-service:hf docker/service.Dockerfile \
    --build-arg PYTHON_IMAGE="$py_base" --build-arg EXTRA=hf \
    --build-arg PIP_EXTRA_INDEX_URL="$cpu_index" & pids+=($!)
build trainer-cpu safety-reward-trainer:cpu docker/trainer.Dockerfile \
    --build-arg CUDA_IMAGE="$py_base" --build-arg VLLM_VERSION= \
    --build-arg RUNTIME_TOOLCHAIN= --build-arg PIP_EXTRA_INDEX_URL="$cpu_index" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
kill "$INDEX_PID" 2>/dev/null || true
INDEX_PID=""
lap "images built"
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -v '^<none>' | sort >&2

# ------------------------------------------------------------------ 4. the stacks
export COMPOSE_TIER=1
export SERVICE_IMAGE=safety-reward-service:latest
export SERVICE_HF_IMAGE=safety-reward-service:hf
export TRAINER_CPU_IMAGE=safety-reward-trainer:cpu
export REDIS_IMAGE="standin-redis:$SUITE"
export NGINX_IMAGE="standin-nginx:$SUITE"
export COMPOSE_TIER_MEASURE="$WORK/measured.txt"
lap "testing the stacks"
# shellcheck disable=SC2086
"$PY" -m pytest -q -rs -p no:cacheprovider tests/compose $PYTEST_ARGS
lap "tests passed"
say "measured:"
sed 's/^/  /' "$COMPOSE_TIER_MEASURE" >&2

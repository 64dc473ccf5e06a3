# Shared steps of the test-environment scripts (vl_env.sh, verl_env.sh, openrlhf_env.sh):
# each keeps a stamp file holding a hash of its requirements, and builds only when it differs.
# Source it: `source scripts/env_lib.sh`.

# requirements_hash FILE REQ...: the stamp's content, a sha256 of the REQs (one a line)
# followed by FILE's content.
requirements_hash() {
  local file=$1
  shift
  { printf '%s\n' "$@"; cat "$file"; } | sha256sum | cut -d' ' -f1
}

# env_up_to_date NAME STAMP WANT: true (and says so) when STAMP already holds WANT.
env_up_to_date() {
  local name=$1 stamp=$2 want=$3
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$name: $(dirname "$stamp") is up to date (stamp $stamp matches the requirements)"
    return 0
  fi
  return 1
}

# ensure_venv NAME VENV PYTHON: create VENV with PYTHON (and a current pip) when missing.
ensure_venv() {
  local name=$1 venv=$2 python=$3
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "$name: creating $venv with $python"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
  fi
}

# with_progress NAME DIR CMD...: run CMD, and while it runs say every ENV_PROGRESS_S seconds
# (default 20) how long it has taken and how large DIR has grown: pip prints nothing while it
# unpacks gigabytes of wheels, which looks like a hang. Returns CMD's exit status; Ctrl-C
# stops CMD too.
with_progress() {
  local name=$1 dir=$2
  shift 2
  local every=${ENV_PROGRESS_S:-20} start=$SECONDS waited=0 status=0
  "$@" &
  local pid=$!
  trap 'kill "$pid" 2>/dev/null' INT TERM
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if ((waited % every == 0)) && kill -0 "$pid" 2>/dev/null; then
      echo "$name: still installing after $((SECONDS - start)) s; $dir is $(du -sh "$dir" 2>/dev/null | cut -f1) now"
    fi
  done
  wait "$pid" || status=$?
  trap - INT TERM
  return "$status"
}

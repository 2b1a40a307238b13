# Shared by tests/observability/*_test.sh: start a coordinator and workers with --http on
# 127.0.0.1 (OS-chosen ports), wait with deadlines, install a Debian package or SKIP, and end
# every process this test started, by its pid, on exit.
set -euo pipefail

COORD=${SPARECYCLES_COORDINATOR_BIN:?}
WORKER=${SPARECYCLES_WORKER_BIN:?}
CLI=${SPARECYCLES_CLI_BIN:?}
ARTIFACTS=${SPARECYCLES_ARTIFACTS:-$(pwd)/artifacts}
mkdir -p "$ARTIFACTS"
TMP=$(mktemp -d /tmp/sparecycles-obs-XXXXXX)
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}

# need_cmd CMD PACKAGE: installs PACKAGE when CMD is missing; SKIP (exit 0) when that fails.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  echo "installing $2 for $1" >&2
  if ! (export DEBIAN_FRONTEND=noninteractive; $sudo apt-get install -y -q --no-install-recommends "$2" >"$TMP/apt.log" 2>&1 ||
        { $sudo apt-get update -q >>"$TMP/apt.log" 2>&1 && $sudo apt-get install -y -q --no-install-recommends "$2" >>"$TMP/apt.log" 2>&1; }); then
    echo "SKIP: $1 is not installed and apt-get install $2 failed: $(tail -1 "$TMP/apt.log")"
    exit 0
  fi
  command -v "$1" >/dev/null 2>&1 || { echo "SKIP: $2 installed but $1 not found"; exit 0; }
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

file_has() { grep -q "$2" "$1" 2>/dev/null; }
get() { curl -sf -m 10 "$@"; }

# start_coordinator [FLAGS...]: sets PEERS, CLIENTS, HTTP_URL.
start_coordinator() {
  rm -f "$TMP/coordinator.endpoints"  # a second coordinator must not be found at the first one's address
  "$COORD" --peers tcp://127.0.0.1:0 --clients tcp://127.0.0.1:0 --http 127.0.0.1:0 --pool cluster \
    --endpoints-file "$TMP/coordinator.endpoints" "$@" >"$TMP/coordinator.log" 2>&1 &
  PIDS+=($!)
  wait_for "the coordinator's endpoints" 20 file_has "$TMP/coordinator.endpoints" '^http '
  PEERS=$(awk '/^peers /{print $2}' "$TMP/coordinator.endpoints")
  CLIENTS=$(awk '/^clients /{print $2}' "$TMP/coordinator.endpoints")
  HTTP_URL=$(awk '/^http /{print $2}' "$TMP/coordinator.endpoints")
}

# start_worker NAME [FLAGS...]: a worker that ignores the machine's other load (tests share CPUs);
# sets WORKER_URL when --http is among FLAGS.
start_worker() {
  local name=$1
  shift
  "$WORKER" --coordinator "$PEERS" --state-dir "$TMP/$name" --calibrate 5ms --pause-above off --throttle off \
    --priority normal --endpoints-file "$TMP/$name.endpoints" "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  WORKER_URL=""
  if [[ " $* " == *" --http "* ]]; then
    wait_for "worker $name's page" 20 file_has "$TMP/$name.endpoints" '^http '
    WORKER_URL=$(awk '/^http /{print $2}' "$TMP/$name.endpoints")
  fi
}

# submit ARGS...: submits a job in the background (its output in $TMP/submit.log); sets SUBMIT_PID.
submit() {
  "$CLI" submit --coordinator "$CLIENTS" "$@" >"$TMP/submit.log" 2>&1 &
  SUBMIT_PID=$!
  PIDS+=($SUBMIT_PID)
}

# json EXPR < json: evaluates a Python expression over the parsed document `d`.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

chromium_flags() {
  echo --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$TMP/chromium-profile" --window-size=1280,900
}

# chromium_run SECONDS OUTFILE ARGS...: runs headless Chromium (stdout to OUTFILE), bounded in time,
# ended by its pid if it overruns.
chromium_run() {
  local secs=$1 out=$2
  shift 2
  chromium $(chromium_flags) "$@" >"$out" 2>>"$TMP/chromium.log" &
  local pid=$!
  PIDS+=($pid)
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then kill -KILL "$pid" 2>/dev/null || true; fail "chromium took more than ${secs}s"; fi
    sleep 0.1
  done
  wait "$pid" || true
}
# attr FILE SELECTOR-REGEX ATTRIBUTE: the attribute's value on the first element whose tag matches.
attr() { grep -o "<$2[^>]*>" "$1" | head -1 | grep -o "$3=\"[^\"]*\"" | head -1 | sed 's/.*="\(.*\)"/\1/'; }

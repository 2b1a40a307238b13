# Shared by tests/deploy/*_test.sh (sourced, not a test itself): the binaries under test, a
# temporary directory, processes ended by their pid only, bounded waits, free ports, JSON fields.
# Each script sets `set -euo pipefail` itself and calls sc_init first.

SC_PIDS=()          # every process this script started, ended in reverse order by sc_cleanup
SC_CLEANUP_HOOKS=() # commands run before the pids are ended (cancel jobs, remove namespaces...)
SC_TMP=""

sc_log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
sc_skip() { echo "SKIP: $*"; exit 0; }
sc_fail() {
  echo "FAIL: $*" >&3  # fd 3 = the script's stderr, also from inside a silenced sc_wait check
  exit 1
}

# Ends exactly the processes in SC_PIDS: SIGTERM, up to 10 s, then SIGKILL.
sc_cleanup() {
  local rc=$?
  set +e
  local hook
  for hook in "${SC_CLEANUP_HOOKS[@]}"; do eval "$hook"; done
  local i pid
  for ((i = ${#SC_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${SC_PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cleanup: pid $pid ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  if [[ -n $SC_TMP && -d $SC_TMP ]]; then
    if [[ $rc -ne 0 && -z ${SC_KEEP_TMP:-} ]]; then
      # Show the logs of a failed run before they go.
      local f
      for f in $(find "$SC_TMP" -maxdepth 3 \( -name '*.log' -o -name '*.out' -o -name '*.err' \) -size -200k 2>/dev/null | sort); do
        echo "----- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
      done
    fi
    [[ -n ${SC_KEEP_TMP:-} ]] && echo "kept $SC_TMP" >&2 || rm -rf "$SC_TMP"
  fi
  exit "$rc"
}

sc_init() {
  exec 3>&2
  SC_TMP=$(mktemp -d /tmp/sparecycles-deploy-XXXXXX)
  trap sc_cleanup EXIT
  trap 'exit 130' INT TERM
  SC_COORDINATOR=${SPARECYCLES_COORDINATOR_BIN:-}
  SC_WORKER=${SPARECYCLES_WORKER_BIN:-}
  SC_CLI=${SPARECYCLES_CLI_BIN:-}
  SC_SOURCE=${SPARECYCLES_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  local b
  for b in "$SC_COORDINATOR" "$SC_WORKER" "$SC_CLI"; do
    [[ -n $b && -x $b ]] || sc_fail "set SPARECYCLES_COORDINATOR_BIN, SPARECYCLES_WORKER_BIN and SPARECYCLES_CLI_BIN (ctest does)"
  done
}

# Starts a command in the background with its output in FILE; remembers its pid in SC_LAST_PID.
sc_start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SC_LAST_PID=$!
  SC_PIDS+=("$SC_LAST_PID")
}

# sc_wait SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds.
sc_wait() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || sc_fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

# A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it: bind to port 0). Only for
# programs that cannot bind port 0 and report it themselves (the coordinator can: --endpoints-file).
sc_free_port() {
  perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp", Listen => 1, ReuseAddr => 1)
      or die "no port: $!";
    print $s->sockport, "\n";'
}

# sc_json_int FIELD < JSON: the first integer value of "FIELD".
sc_json_int() { grep -o "\"$1\":[0-9]*" | head -n1 | cut -d: -f2; }

# Reads "peers"/"clients" endpoints written by --endpoints-file.
sc_endpoint() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

# apt-get install when a command is missing (root only; CI machines may start with nothing).
# Returns non-zero when it cannot be installed.
sc_apt_install() {
  [[ $(id -u) -eq 0 ]] || return 1
  command -v apt-get >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" \
    >"$SC_TMP/apt.log" 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update >>"$SC_TMP/apt.log" 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" \
    >>"$SC_TMP/apt.log" 2>&1
}

# The number of primes below N, computed here independently of SpareCycles: a sieve in python3
# for N <= 1e8, else the published value of pi(10^k) (OEIS A006880). Empty when neither applies.
sc_prime_count() {
  local n=$1
  if ((n <= 100000000)) && command -v python3 >/dev/null; then
    python3 -c '
import sys
n = int(sys.argv[1])
s = bytearray([1]) * n
s[0:2] = b"\0\0"[:n]
for i in range(2, int(n ** 0.5) + 1):
    if s[i]:
        s[i*i::i] = bytes(len(range(i*i, n, i)))
print(sum(s))' "$n"
    return
  fi
  case $n in
    10000000) echo 664579 ;; 100000000) echo 5761455 ;; 1000000000) echo 50847534 ;;
    10000000000) echo 455052511 ;; 100000000000) echo 4118054813 ;;
  esac
}

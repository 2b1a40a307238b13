#!/bin/bash
# The images of deploy/container/ built for real with podman (rootful, its own image store under
# a temporary directory, vfs, no registry): a coordinator container and two worker containers of
# one CPU each (--cpus 1: the worker's cluster profile must read that from the cgroup quota) on
# the host network, a primes job submitted from the host, the right count, and both workers did
# some of it. Stopping a worker container must hand its leases back. Ends only its containers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sc_init

[[ $(id -u) -eq 0 ]] || sc_skip "rootful podman needs root"
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  sc_log "installing podman"
  sc_apt_install podman runc uidmap catatonit || sc_skip "podman cannot be installed here ($(tail -n1 "$SC_TMP/apt.log" 2>/dev/null))"
fi
command -v ldd >/dev/null || sc_skip "no ldd to find the binaries' libraries"

export CONTAINERS_CONF=$SC_SOURCE/deploy/container/containers.conf
store=$SC_TMP/store
mkdir -p "$store/root" "$store/runroot"
pm() { podman --root "$store/root" --runroot "$store/runroot" --storage-driver vfs "$@"; }
tag=$$
NAMES=()
remove_containers() {
  local n
  for n in "${NAMES[@]}"; do pm rm -f -t 5 "$n" >/dev/null 2>&1; done
}
SC_CLEANUP_HOOKS+=(remove_containers)

ctx=$SC_TMP/context
bash "$SC_SOURCE/deploy/container/make-context.sh" "${SPARECYCLES_BUILD_DIR:-$(dirname "$(dirname "$SC_WORKER")")}" "$ctx" >&2
t0=$SECONDS
pm build -q -f "$ctx/Containerfile.coordinator" -t "localhost/sparecycles-coordinator:test" "$ctx" >"$SC_TMP/build.log" 2>&1 ||
  { cat "$SC_TMP/build.log" >&2; sc_fail "building the coordinator image failed"; }
pm build -q -f "$ctx/Containerfile.worker" -t "localhost/sparecycles-worker:test" "$ctx" >>"$SC_TMP/build.log" 2>&1 ||
  { cat "$SC_TMP/build.log" >&2; sc_fail "building the worker image failed"; }
sc_log "images built in $((SECONDS - t0)) s: $(pm images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | tr '\n' ' ')"

# Endpoints come back through a volume (the containers run as uid 65534).
data=$SC_TMP/coordinator-data
install -d -o 65534 -g 65534 -m 0700 "$data"
name=sc-coordinator-$tag
NAMES+=("$name")
sc_start "$SC_TMP/coordinator.log" podman --root "$store/root" --runroot "$store/runroot" --storage-driver vfs \
  run --rm --name "$name" --network=host -v "$data:/var/lib/sparecycles-coordinator" \
  localhost/sparecycles-coordinator:test --pool cluster --peers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
  --endpoints-file /var/lib/sparecycles-coordinator/endpoints --heartbeat 500ms --peer-timeout 10s --backups off
sc_wait 60 "the coordinator container's endpoints" test -s "$data/endpoints"
peers=$(sc_endpoint peers "$data/endpoints")
clients=$(sc_endpoint clients "$data/endpoints")
# Workers and the CLI run in other containers or on the host: they are handed the coordinator's
# public key (docs/security.md), as an operator copies DATA/curve/coordinator.pub.
key=$(sc_endpoint key "$data/endpoints")
[[ -n $key ]] || sc_fail "the coordinator wrote no key to its endpoints file"
export SPARECYCLES_COORDINATOR_KEY=$key
sc_log "coordinator container: peers $peers, clients $clients, key $key"

WORKER_PIDS=()
for i in 0 1; do
  name=sc-worker$i-$tag
  NAMES+=("$name")
  sc_start "$SC_TMP/worker$i.log" podman --root "$store/root" --runroot "$store/runroot" --storage-driver vfs \
    run --rm --name "$name" --network=host --cpus 1 -e SPARECYCLES_WORKER_COORDINATOR="$peers" \
    -e SPARECYCLES_WORKER_COORDINATOR_KEY="$key" \
    localhost/sparecycles-worker:test --calibrate 5ms
  WORKER_PIDS+=("$SC_LAST_PID")
done
two_peers() {
  local p
  for p in "${WORKER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || sc_fail "a worker container exited early"; done
  [[ $("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"peer":' | wc -l) -eq 2 ]]
}
sc_wait 60 "two worker containers to join" two_peers
for i in 0 1; do
  grep -q "cluster profile: 1 cores (.*cgroup CPU quota 1)" "$SC_TMP/worker$i.log" ||
    sc_fail "worker container $i did not take 1 core from its cgroup quota: $(grep 'cluster profile' "$SC_TMP/worker$i.log" || true)"
done

n=10000000000
expected=$(sc_prime_count "$n")
result=$(timeout 300 "$SC_CLI" submit --coordinator "$clients" primes --from 0 --to "$n" --units 40 --json --no-progress)
sc_log "result: $result"
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n): got '$count', expected $expected"
done_list=$("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"units_done":[0-9]*' | cut -d: -f2 | tr '\n' ' ')
sc_log "units done per worker container: $done_list"
for d in $done_list; do ((d > 0)) || sc_fail "a worker container did no unit ($done_list)"; done

# Stopping a worker container is a graceful leave: start a longer job, stop worker 0 mid-run.
job=$("$SC_CLI" submit --coordinator "$clients" primes --from 0 --to "$n" --units 200 --no-wait)
both_busy() { [[ $("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"running":[1-9]' | wc -l) -eq 2 ]]; }
sc_wait 60 "both workers to hold units of job $job" both_busy
pm stop -t 30 "sc-worker0-$tag" >/dev/null
# A graceful leave says Bye: units still running finish within the leave grace and are reported,
# the rest are handed back (how many of each depends on timing, so the count is only logged).
left=$(grep -o "left the coordinator ([0-9]* leases handed back)" "$SC_TMP/worker0.log" || true)
[[ -n $left ]] || sc_fail "the stopped worker container did not leave gracefully: $(tail -3 "$SC_TMP/worker0.log")"
sc_log "worker 0: $left"
saw_bye() { grep -q "left ([0-9]* leases handed back)" "$SC_TMP/coordinator.log"; }
sc_wait 30 "the coordinator to see worker 0 leave (a Bye, not a loss)" saw_bye
result=$(timeout 300 "$SC_CLI" wait "$job" --coordinator "$clients" --json)
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n) after a worker left: got '$count', expected $expected"
echo "PASS: pi($n) = $count through a coordinator container and two worker containers; a stopped worker left gracefully and no unit was lost"

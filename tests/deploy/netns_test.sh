#!/bin/bash
# Several hosts on one machine: the coordinator and the workers in network namespaces this test
# creates, joined by a bridge with private addresses that exist only inside those namespaces.
# Host A runs two workers, host B one; the coordinator listens on its bridge address (not
# loopback). 1. With --distinct-hosts and two replicas per unit, no unit may be accepted from
# A's two workers alone: B must take part in every unit, and the count must be right.
# 2. A partition: B's link goes down mid-job (its units are requeued after the peer timeout and
# finished by A), comes back (B rejoins), and the count is still right. Removes what it made.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sc_init

[[ $(id -u) -eq 0 ]] || sc_skip "creating network namespaces needs root"
if ! command -v ip >/dev/null; then sc_apt_install iproute2 || sc_skip "iproute2 cannot be installed here"; fi

id=$$
nsc=scc$id nsa=sca$id nsb=scb$id
net=10.231.$((id % 200 + 20))
NETNS=()
remove_netns() {
  local ns
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
}
SC_CLEANUP_HOOKS+=(remove_netns)
for ns in "$nsc" "$nsa" "$nsb"; do
  ip netns add "$ns" 2>"$SC_TMP/netns.err" || sc_skip "cannot create a network namespace: $(cat "$SC_TMP/netns.err")"
  NETNS+=("$ns")
  ip -n "$ns" link set lo up
done
ip -n "$nsc" link add br0 type bridge
ip -n "$nsc" addr add "$net.1/24" dev br0
ip -n "$nsc" link set br0 up
host_ip=2
for ns in "$nsa" "$nsb"; do
  # Both ends are created inside the coordinator's namespace, then one end moves: nothing is
  # ever added to the namespace this test runs in.
  ip -n "$nsc" link add "v$ns" type veth peer name eth0 netns "$ns"
  ip -n "$nsc" link set "v$ns" master br0 up
  ip -n "$ns" addr add "$net.$host_ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  host_ip=$((host_ip + 1))
done
sc_log "namespaces $nsc ($net.1) $nsa ($net.2) $nsb ($net.3)"

in_c() { ip netns exec "$nsc" "$@"; }
cli() { in_c "$SC_CLI" "$@" --coordinator "$clients"; }

start_coordinator() {  # NAME FLAGS...
  local name=$1
  shift
  rm -f "$SC_TMP/$name.endpoints"
  sc_start "$SC_TMP/$name.log" ip netns exec "$nsc" "$SC_COORDINATOR" --peers "tcp://$net.1:*" \
    --clients 'tcp://127.0.0.1:*' --endpoints-file "$SC_TMP/$name.endpoints" --heartbeat 300ms "$@"
  COORD_PID=$SC_LAST_PID
  sc_wait 20 "the coordinator's endpoints" test -s "$SC_TMP/$name.endpoints"
  peers=$(sc_endpoint peers "$SC_TMP/$name.endpoints")
  clients=$(sc_endpoint clients "$SC_TMP/$name.endpoints")
  key=$(sc_endpoint key "$SC_TMP/$name.endpoints")  # workers reach it by a bridge address
  [[ $peers == "tcp://$net.1:"* ]] || sc_fail "the coordinator listens on $peers, not on its bridge address"
}
WORKER_PIDS=()
start_worker() {  # NS NAME
  sc_start "$SC_TMP/$2.log" ip netns exec "$1" "$SC_WORKER" --profile cluster --cores 1 --coordinator "$peers" \
    --coordinator-key "$key" --state-dir "$SC_TMP/$2" --calibrate 5ms
  WORKER_PIDS+=("$SC_LAST_PID")
}
peer_count() { cli peers --json | grep -o '"peer":' | wc -l; }
has_peers() { [[ $(peer_count) -eq $1 ]]; }
stop_pids() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

# ---- 1. --distinct-hosts across namespaces
start_coordinator distinct --pool volunteer --distinct-hosts --backups off --spot-check-rate 0
start_worker "$nsa" a1
start_worker "$nsa" a2
start_worker "$nsb" b1
sc_wait 30 "three workers from two hosts" has_peers 3
for h in "$net.2" "$net.3"; do
  grep -q "joined from $h " "$SC_TMP/distinct.log" || sc_fail "no peer joined from $h"
done
[[ $(grep -c "joined from $net.2 " "$SC_TMP/distinct.log") -eq 2 ]] || sc_fail "host A's two workers did not both come from $net.2"
n=100000000
expected=$(sc_prime_count "$n")
result=$(timeout 180 ip netns exec "$nsc" "$SC_CLI" submit --coordinator "$clients" primes --from 0 --to "$n" \
  --units 12 --replicas 2 --quorum 2 --adaptive off --json --no-progress)
sc_log "distinct hosts: $result"
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n) with --distinct-hosts: got '$count', expected $expected"
units=$(echo "$result" | sc_json_int units)
# units_done per peer, in the order the peers are listed, with their ids.
peers_json=$(cli peers --json)
b_id=$(cat "$SC_TMP/b1/peer-id")
b_done=$(echo "$peers_json" | grep -o "\"peer\":\"$b_id\"[^}]*" | sc_json_int units_done)
a_done=0
for w in a1 a2; do
  d=$(echo "$peers_json" | grep -o "\"peer\":\"$(cat "$SC_TMP/$w/peer-id")\"[^}]*" | sc_json_int units_done)
  a_done=$((a_done + d))
done
sc_log "units: $units; validated by host B: $b_done; by host A's two workers together: $a_done"
[[ $b_done -eq $units ]] || sc_fail "host B validated $b_done of $units units: some unit was accepted from host A alone"
[[ $a_done -eq $units ]] || sc_fail "host A validated $a_done of $units units (expected one replica of each)"
stop_pids "${WORKER_PIDS[@]}" "$COORD_PID"
WORKER_PIDS=()

# ---- 2. a partition between host B and the coordinator, then healing
start_coordinator partition --pool cluster --peer-timeout 2s --lease-min 5s --disconnect-grace 500ms --backups off
start_worker "$nsa" pa1
start_worker "$nsb" pb1
sc_wait 30 "two workers from two hosts" has_peers 2
n=10000000000
expected=$(sc_prime_count "$n")
job=$(cli submit primes --from 0 --to "$n" --units 120 --no-wait)
b_busy() { cli peers --json | grep -o "\"peer\":\"$(cat "$SC_TMP/pb1/peer-id")\"[^}]*" | grep -q '"running":[1-9]'; }
sc_wait 60 "host B to hold units" b_busy
sc_log "partition: host B's link goes down"
ip -n "$nsc" link set "v$nsb" down
sc_wait 30 "the coordinator to declare host B lost" grep -q "lost after" "$SC_TMP/partition.log"
has_one() { has_peers 1; }
sc_wait 10 "one peer left" has_one
sleep 2  # host A works alone for a moment
ip -n "$nsc" link set "v$nsb" up
sc_log "partition healed"
sc_wait 60 "host B to rejoin" has_peers 2
result=$(timeout 300 ip netns exec "$nsc" "$SC_CLI" wait "$job" --coordinator "$clients" --json)
sc_log "partition: $result"
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n) across a partition: got '$count', expected $expected"
[[ $(grep -c "joined from $net.3 " "$SC_TMP/partition.log") -ge 2 ]] || sc_fail "host B did not rejoin after the partition"
echo "PASS: --distinct-hosts kept every unit's replicas on two hosts ($units units); pi($n) = $count across a partition"

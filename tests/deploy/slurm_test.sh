#!/bin/bash
# Workers started by a real Slurm (slurmctld + slurmd + munged on this machine, in a temporary
# directory, on free ports): the coordinator runs as a Slurm job (deploy/slurm/
# sparecycles-coordinator.sbatch), two workers as a job array (deploy/slurm/
# sparecycles-worker.sbatch), a primes job goes through them with the CLI, one array task is
# scancelled mid-run; its units must be handed back and finished by the other worker, and the
# count must be right. Ends only the daemons and jobs it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sc_init

for c in sbatch squeue sinfo scancel /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged; do
  if ! command -v "$c" >/dev/null; then
    sc_log "installing slurm-wlm and munge"
    sc_apt_install slurm-wlm munge || sc_skip "slurm-wlm and munge cannot be installed here ($(tail -n1 "$SC_TMP/apt.log" 2>/dev/null))"
    break
  fi
done
[[ -r /etc/munge/munge.key ]] || sc_skip "no /etc/munge/munge.key (the munge package creates it)"
id munge >/dev/null 2>&1 || sc_skip "no munge user"
[[ $(id -u) -eq 0 ]] || sc_skip "a private slurmd must run as root here (SlurmdUser=root)"

dir=$SC_TMP/slurm
mkdir -p "$dir"/{state,spool,log,out,workers}
chmod 0755 "$SC_TMP"
install -d -o munge -g munge -m 0755 "$dir/munge"

# Our own munged on our own socket: never the machine's one.
sc_start "$dir/log/munged.out" runuser -u munge -- /usr/sbin/munged -F --force \
  --socket="$dir/munge/munge.sock" --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed" --key-file=/etc/munge/munge.key
sc_wait 10 "munged's socket" test -S "$dir/munge/munge.sock"

ctld_port=$(sc_free_port)
slurmd_port=$(sc_free_port)
while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(sc_free_port); done
cat >"$dir/slurm.conf" <<CONF
ClusterName=sctest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
KillWait=30
# Three one-CPU jobs (the coordinator and two workers) on this small machine.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=3 RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf

sc_start "$dir/log/slurmctld.out" /usr/sbin/slurmctld -D -f "$SLURM_CONF"
sc_start "$dir/log/slurmd.out" /usr/sbin/slurmd -D -f "$SLURM_CONF" -N localhost
node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; }
sc_wait 30 "the Slurm node to be idle" node_idle
sc_log "slurm is up (slurmctld port $ctld_port, slurmd port $slurmd_port)"

JOBS=()
cancel_jobs() {
  local j
  for j in "${JOBS[@]}"; do scancel "$j" 2>/dev/null; done
  for _ in $(seq 150); do
    [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
    sleep 0.2
  done
}
SC_CLEANUP_HOOKS+=(cancel_jobs)

job_state() { squeue -h -j "$1" -o %T 2>/dev/null | head -n1; }
job_running() { [[ $(job_state "$1") == RUNNING ]]; }

# The coordinator as its own job; it writes where it listens (here on loopback only).
export SPARECYCLES_COORDINATOR_FILE=$dir/coordinator.endpoints
export SPARECYCLES_COORDINATOR_HOST=127.0.0.1
export SPARECYCLES_COORDINATOR_BIN=$SC_COORDINATOR
coord_job=$(sbatch --parsable --chdir="$dir/out" --output="$dir/out/coordinator-%j.out" \
  "$SC_SOURCE/deploy/slurm/sparecycles-coordinator.sbatch" \
  --peers 'tcp://127.0.0.1:*' --heartbeat 500ms --peer-timeout 10s --lease-min 30s --backups off)
JOBS+=("$coord_job")
sc_wait 30 "the coordinator job to write $SPARECYCLES_COORDINATOR_FILE" test -s "$SPARECYCLES_COORDINATOR_FILE"
clients=$(sc_endpoint clients "$SPARECYCLES_COORDINATOR_FILE")
peers=$(sc_endpoint peers "$SPARECYCLES_COORDINATOR_FILE")
SPARECYCLES_COORDINATOR_KEY=$(sc_endpoint key "$SPARECYCLES_COORDINATOR_FILE")  # for the CLI
export SPARECYCLES_COORDINATOR_KEY
sc_log "coordinator job $coord_job: peers $peers, clients $clients"
[[ $peers == tcp://127.0.0.1:* ]] || sc_fail "the coordinator file names $peers"

# Two workers as a job array of one CPU each, found through the same file.
export SPARECYCLES_WORKER_BIN=$SC_WORKER SPARECYCLES_STATE_ROOT=$dir/workers
array=$(sbatch --parsable --array=0-1 -c 1 --chdir="$dir/out" --output="$dir/out/worker-%A_%a.out" \
  "$SC_SOURCE/deploy/slurm/sparecycles-worker.sbatch" --calibrate 5ms --log-level info)
JOBS+=("$array")
two_peers() { [[ $("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"peer":' | wc -l) -eq 2 ]]; }
sc_wait 60 "two workers started by Slurm to join" two_peers
sc_wait 10 "array task 0 to run" job_running "${array}_0"
sc_wait 10 "array task 1 to run" job_running "${array}_1"
for t in 0 1; do
  grep -Eq "cluster profile: 1 cores \(SLURM_CPUS_(PER_TASK|ON_NODE)=1\)" "$dir/out/worker-${array}_$t.out" ||
    sc_fail "worker $t did not take its core count from Slurm"
done
sc_log "two workers joined: $("$SC_CLI" peers --coordinator "$clients" | tail -n +2 | awk '{print $1}' | tr '\n' ' ')"

n=100000000000
expected=$(sc_prime_count "$n")
job=$("$SC_CLI" submit --coordinator "$clients" primes --from 0 --to "$n" --unit-seconds 0.5 --no-wait)
sc_log "primes job $job submitted: [0, $n)"
status_field() { "$SC_CLI" status "$job" --coordinator "$clients" --json | sc_json_int "$1"; }
some_done() {
  local done total
  done=$(status_field units_done)
  total=$(status_field units_total)
  ((total > 0 && done * 5 >= total))  # at least 20 %
}
sc_wait 120 "a fifth of the units" some_done
both_busy() { [[ $("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"running":[1-9]' | wc -l) -eq 2 ]]; }
sc_wait 30 "both workers to hold units" both_busy
before=$(status_field units_done)
total=$(status_field units_total)
sc_log "scancel ${array}_0 at $before of $total units"
scancel "${array}_0"
gone() { [[ -z $(job_state "${array}_0") ]]; }
sc_wait 40 "array task 0 to end after scancel" gone

result=$("$SC_CLI" wait "$job" --coordinator "$clients" --json --timeout 10s)
# `wait` returns at once when the job is done; bound it ourselves as well.
for _ in $(seq 300); do
  [[ $(echo "$result" | grep -o '"state":"[a-z]*"' | head -n1) == '"state":"done"' ]] && break
  sleep 0.5
  result=$("$SC_CLI" wait "$job" --coordinator "$clients" --json --timeout 10s)
done
sc_log "result: $result"
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n): got '$count', expected $expected"

w0=$dir/out/worker-${array}_0.out
w1=$dir/out/worker-${array}_1.out
handed=$(grep -o 'left the coordinator ([0-9]* leases handed back)' "$w0" | grep -o '[0-9]*' | head -n1 || true)
[[ -n $handed && $handed -ge 1 ]] || sc_fail "the scancelled worker did not hand its units back ($(grep -i left "$w0" || true))"
grep -q "worker exited (0)" "$w0" || sc_fail "the scancelled worker did not exit cleanly"
coord_out=$(ls "$dir"/out/coordinator-*.out)
grep -q "left ($handed leases handed back)" "$coord_out" || sc_fail "the coordinator did not see the leases come back"
# The surviving worker finished the job, including the handed-back units.
units_after=$("$SC_CLI" peers --coordinator "$clients" --json | sc_json_int units_done)
sc_log "worker 0 handed back $handed leases; worker 1 validated $units_after units; total $total"
peer_count=$("$SC_CLI" peers --coordinator "$clients" --json | grep -o '"peer":' | wc -l)
[[ $peer_count -eq 1 ]] || sc_fail "expected one peer after scancel, found $peer_count"
((units_after > total - before)) || sc_fail "the remaining worker did only $units_after units"
echo "PASS: pi($n) = $count through Slurm workers; the scancelled worker handed back $handed leases"

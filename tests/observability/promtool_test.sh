# promtool check metrics passes on the coordinator's and the worker's /metrics, taken while a job
# runs (histograms, per-task and per-job series present) and after it finished.
source "$(dirname "$0")/lib.sh"
need_cmd curl curl
need_cmd python3 python3
need_cmd promtool prometheus

start_coordinator
start_worker w1 --cores 2 --http 127.0.0.1:0
wait_for "the worker to join" 20 bash -c "curl -sf '$HTTP_URL/api/state.json' | grep -q '\"peer_id\"'"
submit spin --units 300 --ms 10 --json
wait_for "units to complete" 60 bash -c "curl -sf '$HTTP_URL/metrics' | grep -q '^sparecycles_unit_run_seconds_count{task=\"spin\"} [1-9]'"

check() {  # check NAME URL
  get "$2/metrics" >"$TMP/$1.prom" || fail "GET $2/metrics"
  if ! promtool check metrics <"$TMP/$1.prom" >"$TMP/$1.promtool" 2>&1; then
    cat "$TMP/$1.promtool" >&2
    fail "promtool check metrics rejected the $1's exposition"
  fi
  echo "promtool: $1 exposition clean ($(grep -vc '^#' "$TMP/$1.prom") samples)"
}
check coordinator "$HTTP_URL"
check worker "$WORKER_URL"
for series in 'sparecycles_store_commit_seconds_bucket' 'sparecycles_loop_turn_seconds_bucket{le="+Inf"}' \
              'sparecycles_job_units{job_id="1",task="spin",state="total"} 300' 'sparecycles_results_total{outcome="accepted"}' \
              'sparecycles_wire_bytes_total{endpoint="peers",direction="in"}' 'sparecycles_peers{state="running"} 1'; do
  grep -qF "$series" "$TMP/coordinator.prom" || fail "coordinator exposition lacks $series"
done
for series in 'sparecycles_worker_slots 2' 'sparecycles_worker_state{state="running"} 1' 'sparecycles_worker_units_total{outcome="done"}' \
              'sparecycles_worker_cpu_donated_seconds_total'; do
  grep -qF "$series" "$TMP/worker.prom" || fail "worker exposition lacks $series"
done

wait "$SUBMIT_PID" || fail "the job failed: $(cat "$TMP/submit.log")"
wait_for "the job's final count" 10 bash -c "curl -sf '$HTTP_URL/metrics' | grep -q 'sparecycles_job_units{job_id=\"1\",task=\"spin\",state=\"done\"} 300'"
check coordinator-after "$HTTP_URL"
get "$HTTP_URL/healthz" | grep -q ok || fail "/healthz"
get "$HTTP_URL/readyz" | grep -q ready || fail "/readyz"
get "$WORKER_URL/healthz" | grep -q ok || fail "worker /healthz"
echo "PASS"

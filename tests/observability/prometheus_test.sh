# A real Prometheus server (Debian's, 127.0.0.1, its own data directory) scrapes the coordinator
# every second; after a job of 240 units finishes, a PromQL query returns 240 units done for it,
# and the counter of accepted units agrees.
source "$(dirname "$0")/lib.sh"
need_cmd curl curl
need_cmd python3 python3
need_cmd prometheus prometheus

start_coordinator
start_worker w1 --cores 2
wait_for "the worker to join" 20 bash -c "curl -sf '$HTTP_URL/api/state.json' | grep -q '\"peer_id\"'"
target=${HTTP_URL#http://}

cat >"$TMP/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sparecycles
    static_configs:
      - targets: ['$target']
YML
# Prometheus cannot be told to pick its own port: try free-looking ports until one binds.
PROM=""
for attempt in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data-$attempt" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
  ppid=$!
  PIDS+=($ppid)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && { PROM="http://127.0.0.1:$port"; break; }
    kill -0 "$ppid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $PROM ]] && break
done
[[ -n $PROM ]] || fail "prometheus did not start"
echo "prometheus on $PROM scraping $target"

query() { curl -sf -m 5 -G --data-urlencode "query=$1" "$PROM/api/v1/query"; }
value() {  # value PROMQL: the first sample's value, or nothing
  query "$1" | json "d['data']['result'][0]['value'][1] if d['status']=='success' and d['data']['result'] else ''"
}
# The first scrape comes about 5.5 s after start.
wait_for "the first scrape (up == 1)" 30 bash -c "[[ \$(curl -sf -G --data-urlencode 'query=up{job=\"sparecycles\"}' '$PROM/api/v1/query' | grep -o '\"1\"') ]]"

submit spin --units 240 --ms 10 --json
wait "$SUBMIT_PID" || fail "the job failed: $(cat "$TMP/submit.log")"
q='sparecycles_job_units{job_id="1",state="done"}'
deadline=$((SECONDS + 30))
got=""
while ((SECONDS < deadline)); do
  got=$(value "$q" || true)
  [[ $got == 240 ]] && break
  sleep 0.5
done
[[ $got == 240 ]] || fail "Prometheus query $q returned '$got', expected 240"
echo "query $q -> $got"
total=$(value 'sparecycles_units_done_total')
[[ $total == 240 ]] || fail "sparecycles_units_done_total is '$total', expected 240"
echo "query sparecycles_units_done_total -> $total"
# A histogram went through too: the loop turned and Prometheus can compute a quantile of it.
p99=$(value 'histogram_quantile(0.99, sparecycles_loop_turn_seconds_bucket)')
[[ -n $p99 && $p99 != NaN ]] || fail "no loop-turn quantile ($p99)"
echo "query histogram_quantile(0.99, sparecycles_loop_turn_seconds_bucket) -> $p99 s"
echo "PASS"

# The worker's volunteer page under headless Chromium while a job runs: it shows the state, the
# units in progress and the CPU time contributed; a pause (the request the page's button sends)
# makes the worker paused, the coordinator sees it and stops leasing to it (no new leases, no
# units done, its units handed back after --pause-limit); preferences change live and land in the
# config file; resume lets the job finish. Screenshots of both states are saved as artifacts.
source "$(dirname "$0")/lib.sh"
need_cmd curl curl
need_cmd python3 python3
need_cmd chromium chromium

printf '# a volunteer machine\ncores = 2\n' >"$TMP/worker.conf"
start_coordinator
start_worker w1 --config "$TMP/worker.conf" --clients "$CLIENTS" --pause-limit 2s --http 127.0.0.1:0
[[ $WORKER_URL == http://127.0.0.1:* ]] || fail "the page is not on loopback: $WORKER_URL"
wait_for "the worker to join" 20 bash -c "curl -sf '$HTTP_URL/api/state.json' | grep -q '\"peer_id\"'"
submit spin --units 4000 --ms 10
wait_for "units in progress" 30 bash -c "curl -sf '$WORKER_URL/api/state.json' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"units_done\"] > 0 else 1)'"

chromium_run 90 "$TMP/running.html" --virtual-time-budget=3000 --dump-dom "$WORKER_URL/"
[[ $(attr "$TMP/running.html" body data-state) == running ]] || fail "the page does not show 'running'"
grep -q '<span id="state" class="running">running</span>' "$TMP/running.html" || fail "state banner missing"
grep -q 'id="toggle"[^>]*>Pause<' "$TMP/running.html" || fail "no Pause button"
grep -Eq '<b id="cpu">[0-9]+\.[0-9] (s|min|h)</b>' "$TMP/running.html" || fail "no CPU time contributed"
grep -Eq '<b id="cores">2 of 2</b>' "$TMP/running.html" || fail "cores donated not shown as 2 of 2"
chromium_run 90 /dev/null --virtual-time-budget=3000 --screenshot="$ARTIFACTS/volunteer-running.png" "$WORKER_URL/"
echo "page: running, screenshot $ARTIFACTS/volunteer-running.png"

# Writes only from the page: a plain cross-site style POST is refused.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '' "$WORKER_URL/api/pause")
[[ $code == 403 ]] || fail "a POST without the page's header got $code, expected 403"
curl -sf -X POST -H 'X-SpareCycles: 1' --data '' "$WORKER_URL/api/pause" >/dev/null || fail "pause refused"
wait_for "the worker to be paused" 10 bash -c "curl -sf '$WORKER_URL/metrics' | grep -q '^sparecycles_worker_state{state=\"paused\"} 1'"
peer_state() { curl -sf "$HTTP_URL/api/state.json" | json "d['peers'][0]['$1']"; }
wait_for "the coordinator to see the pause" 10 bash -c "[[ \$(curl -sf '$HTTP_URL/api/state.json' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"peers\"][0][\"state\"])') == paused ]]"
# After --pause-limit the held units go back; from then on the coordinator leases nothing to it.
wait_for "the paused worker's units to be handed back" 15 bash -c "[[ \$(curl -sf '$HTTP_URL/api/state.json' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"peers\"][0][\"running\"])') == 0 ]]"
leases1=$(get "$HTTP_URL/metrics" | awk '/^sparecycles_leases_issued_total /{print $2}')
done1=$(peer_state units_done)
sleep 3
leases2=$(get "$HTTP_URL/metrics" | awk '/^sparecycles_leases_issued_total /{print $2}')
done2=$(peer_state units_done)
[[ $leases1 == "$leases2" ]] || fail "the coordinator kept leasing to a paused worker ($leases1 -> $leases2)"
[[ $done1 == "$done2" ]] || fail "a paused worker kept finishing units ($done1 -> $done2)"
[[ $(peer_state reason) == "paused by the owner" ]] || fail "the coordinator does not show the owner's reason"
get "$WORKER_URL/metrics" | grep -q '^sparecycles_worker_pauses_total 1$' || fail "pauses_total is not 1"
echo "paused: coordinator shows the peer paused, leases stay at $leases2, units done stay at $done2"

chromium_run 90 "$TMP/paused.html" --virtual-time-budget=3000 --dump-dom "$WORKER_URL/"
[[ $(attr "$TMP/paused.html" body data-state) == paused ]] || fail "the page does not show 'paused'"
grep -q 'id="toggle"[^>]*>Resume<' "$TMP/paused.html" || fail "no Resume button while paused"
grep -q 'paused by the owner' "$TMP/paused.html" || fail "the page does not say why"
chromium_run 90 /dev/null --virtual-time-budget=3000 --screenshot="$ARTIFACTS/volunteer-paused.png" "$WORKER_URL/"
echo "page: paused, screenshot $ARTIFACTS/volunteer-paused.png"

# Preferences: a bad value is refused, a good one applies live and is saved to the config file.
code=$(curl -s -o "$TMP/bad.txt" -w '%{http_code}' -X POST -H 'X-SpareCycles: 1' --data 'cores=lots' "$WORKER_URL/api/prefs")
[[ $code == 400 ]] || fail "a bad preference got $code"
curl -sf -X POST -H 'X-SpareCycles: 1' --data 'cores=1&idle-time=5s' "$WORKER_URL/api/prefs" | grep -q saved || fail "preferences not saved"
grep -q '^cores = 1$' "$TMP/worker.conf" || fail "config file not updated: $(cat "$TMP/worker.conf")"
grep -q '^# a volunteer machine$' "$TMP/worker.conf" || fail "the config file lost its comment"
curl -sf -X POST -H 'X-SpareCycles: 1' --data '' "$WORKER_URL/api/resume" >/dev/null || fail "resume refused"
wait_for "the worker to run on 1 core" 10 bash -c "curl -sf '$WORKER_URL/metrics' | grep -q '^sparecycles_worker_slots 1$'"
wait_for "leasing to resume" 10 bash -c "(( \$(curl -sf '$HTTP_URL/metrics' | awk '/^sparecycles_leases_issued_total /{print \$2}') > $leases2 ))"
echo "resumed on 1 core; config file now: $(grep -v '^#' "$TMP/worker.conf" | tr '\n' ' ')"
echo "PASS"

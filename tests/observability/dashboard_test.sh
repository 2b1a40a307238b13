# Headless Chromium against the coordinator's dashboard while a job runs: the DOM after the page's
# scripts ran shows the job's row with progress that advances between two loads, both peers, and a
# drawn chart (Chart.js, embedded); a screenshot is saved as an artifact.
source "$(dirname "$0")/lib.sh"
need_cmd curl curl
need_cmd python3 python3
need_cmd chromium chromium

start_coordinator
start_worker w1 --cores 1
start_worker w2 --cores 1
wait_for "two workers to join" 30 bash -c "[[ \$(curl -sf '$HTTP_URL/api/state.json' | grep -o '\"peer_id\"' | wc -l) == 2 ]]"
submit spin --units 3000 --ms 10 --name "dashboard test"
wait_for "the job to make progress" 30 bash -c "curl -sf '$HTTP_URL/api/state.json' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"jobs\"] and d[\"jobs\"][0][\"done\"] > 0 else 1)'"
sleep 2  # a couple of per-second samples for the chart

chromium_run 90 "$TMP/dom1.html" --virtual-time-budget=4000 --dump-dom "$HTTP_URL/"
grep -q '<tr class="job" data-id="1"' "$TMP/dom1.html" || fail "no row for job 1 in the dashboard's DOM"
done1=$(attr "$TMP/dom1.html" 'tr class="job"' data-done)
total=$(attr "$TMP/dom1.html" 'tr class="job"' data-total)
[[ $total == 3000 ]] || fail "job row shows total '$total', expected 3000"
peers=$(grep -o '<tr class="peer" data-peer="peer-' "$TMP/dom1.html" | wc -l)
((peers == 2)) || fail "the dashboard lists $peers peers, expected 2"
[[ $(attr "$TMP/dom1.html" 'canvas id="chart"' data-drawn) == 1 ]] || fail "the chart was not drawn"
library=$(attr "$TMP/dom1.html" 'canvas id="chart"' data-library)
points=$(attr "$TMP/dom1.html" 'canvas id="chart"' data-points)
((points >= 2)) || fail "the chart has $points points"
grep -q 'dashboard test' "$TMP/dom1.html" || fail "the job's name is missing"
echo "dashboard: job 1 at $done1/$total, $peers peers, chart by $library with $points points"

sleep 2
chromium_run 90 "$TMP/dom2.html" --virtual-time-budget=4000 --dump-dom "$HTTP_URL/"
done2=$(attr "$TMP/dom2.html" 'tr class="job"' data-done)
((done2 > done1)) || fail "progress did not advance ($done1 -> $done2)"
echo "dashboard: progress advanced $done1 -> $done2"

chromium_run 90 /dev/null --virtual-time-budget=4000 --screenshot="$ARTIFACTS/dashboard.png" "$HTTP_URL/"
[[ -s $ARTIFACTS/dashboard.png ]] || fail "no screenshot"
echo "screenshot: $ARTIFACTS/dashboard.png ($(stat -c %s "$ARTIFACTS/dashboard.png") bytes)"
echo "PASS"

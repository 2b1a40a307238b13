# The dashboard's one write: POST /api/cancel needs the admin token (a missing or wrong token is
# refused and the job keeps running); with it the job is cancelled through the client endpoint.
# Without --http-admin-token-file writes are disabled.
source "$(dirname "$0")/lib.sh"
need_cmd curl curl
need_cmd python3 python3

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" >"$TMP/admin-token"
start_coordinator --http-admin-token-file "$TMP/admin-token"
start_worker w1 --cores 1
wait_for "the worker to join" 20 bash -c "curl -sf '$HTTP_URL/api/state.json' | grep -q '\"peer_id\"'"
submit spin --units 2000 --ms 20
wait_for "the job to run" 20 bash -c "curl -sf '$HTTP_URL/api/state.json' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"jobs\"] and d[\"jobs\"][0][\"done\"] > 0 else 1)'"
code() { curl -s -o "$TMP/reply" -w '%{http_code}' -X POST --data '' "$@"; }
[[ $(code "$HTTP_URL/api/cancel?job=1") == 401 ]] || fail "a cancel without a token was not refused with 401"
[[ $(code -H "Authorization: Bearer wrong-token-0123456789" "$HTTP_URL/api/cancel?job=1") == 401 ]] || fail "a wrong token was not refused"
state=$(get "$HTTP_URL/api/state.json" | json "d['jobs'][0]['state']")
[[ $state == running ]] || fail "the job is '$state' after refused cancels"
[[ $(code -H "Authorization: Bearer $token" "$HTTP_URL/api/cancel?job=99") == 404 ]] || fail "cancel of an unknown job: $(cat "$TMP/reply")"
[[ $(code -H "Authorization: Bearer $token" "$HTTP_URL/api/cancel?job=1") == 200 ]] || fail "cancel with the token: $(cat "$TMP/reply")"
wait_for "the job to be cancelled" 10 bash -c "[[ \$(curl -sf '$HTTP_URL/api/state.json' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"jobs\"][0][\"state\"])') == cancelled ]]"
echo "cancel: refused without and with a wrong token, done with the admin token"
# Read-only coordinator: writes disabled.
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
start_coordinator
[[ $(code -H "Authorization: Bearer $token" "$HTTP_URL/api/cancel?job=1") == 403 ]] || fail "a read-only coordinator accepted a write"
echo "PASS"

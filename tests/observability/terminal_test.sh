# The terminal views: `sparecycles submit` on a terminal (a pseudo-terminal from script(1)) shows
# units/s and an ETA while the job runs; `sparecycles top --once` lists the job and the peer, and
# two frames of `top` measure a rate.
source "$(dirname "$0")/lib.sh"
need_cmd script bsdutils

start_coordinator
start_worker w1 --cores 2
sleep 0.5
script -qec "$CLI submit --coordinator $CLIENTS spin --units 1500 --ms 5" "$TMP/tty.log" >/dev/null 2>&1 &
PIDS+=($!)
tty_pid=$!
sleep 2.5
"$CLI" top --coordinator "$CLIENTS" --once >"$TMP/top-once.txt" || fail "top --once failed"
grep -Eq '^1 +spin +running' "$TMP/top-once.txt" || fail "top --once does not list job 1 running: $(cat "$TMP/top-once.txt")"
grep -Eq '^peer-[0-9a-f]+ .* running +2/2' "$TMP/top-once.txt" || fail "top --once does not list the peer"
"$CLI" top --coordinator "$CLIENTS" --iterations 2 --interval 1s >"$TMP/top.txt" || fail "top failed"
rate=$(grep -E '^1 +spin' "$TMP/top.txt" | tail -1 | awk '{print $7}')
awk -v r="$rate" 'BEGIN { exit !(r + 0 > 0) }' || fail "top's second frame shows no rate for job 1 ('$rate')"
echo "top: job 1 at $rate units/s"
wait_for "the submit to finish" 60 bash -c "! kill -0 $tty_pid 2>/dev/null"
tr '\r' '\n' <"$TMP/tty.log" >"$TMP/tty.txt"
grep -Eq 'units, [0-9]+ running +[0-9.]+ units/s +ETA [0-9]' "$TMP/tty.txt" || fail "no rate/ETA on the terminal: $(tail -3 "$TMP/tty.txt")"
grep -q 'job 1: 1500 units' "$TMP/tty.txt" || fail "the job did not finish: $(tail -3 "$TMP/tty.txt")"
echo "terminal: $(grep -E 'units/s +ETA' "$TMP/tty.txt" | tail -2 | head -1)"
echo "PASS"

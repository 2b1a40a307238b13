#!/usr/bin/env bash
# The long nemesis run: many rounds of tests/nemesis (each a fresh cluster per policy, its own
# seed) and the figures added up. Needs root for the network faults (namespaces it creates).
#   scripts/nemesis.sh [--faults N] [--jobs M] [--rounds R] [--seed S] [other nemesis flags]
# Defaults: 1050 faults and 210 jobs over 7 rounds. A failing round prints its seed and schedule;
# replay it with: build/tests/nemesis/nemesis --seed S --faults N/R --jobs M/R (as printed).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
faults=1050 jobs=210 rounds=7 seed=$(( $(date +%s) % 100000 )) extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --faults) faults="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
bin="${SPARECYCLES_NEMESIS_BIN:-$build_dir/tests/nemesis/nemesis}"
if [ ! -x "$bin" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build_dir" -j2 --target nemesis >/dev/null
fi
log_dir=$(mktemp -d /tmp/sparecycles-nemesis-run-XXXXXX)
echo "nemesis: $faults faults, $jobs jobs in $rounds rounds from seed $seed; logs in $log_dir"
failed_seeds=()
for ((r = 0; r < rounds; r++)); do
  s=$((seed + r))
  f=$(( faults / rounds + (r < faults % rounds ? 1 : 0) ))
  j=$(( jobs / rounds + (r < jobs % rounds ? 1 : 0) ))
  # Each round is bounded: its own settle bound plus a hard cap (the binary ends its processes).
  if timeout --signal=TERM --kill-after=60 3600 "$bin" --seed "$s" --faults "$f" --jobs "$j" "${extra[@]}" \
      >"$log_dir/round-$r.log" 2>&1; then
    echo "round $r (seed $s): pass"
  else
    echo "round $r (seed $s): FAIL (see $log_dir/round-$r.log)"
    grep -E "VIOLATION|FAILED" "$log_dir/round-$r.log" | head -20 || true
    failed_seeds+=("$s")
  fi
  grep -h '^FIGURES' "$log_dir/round-$r.log" >>"$log_dir/figures" || true
done
echo
echo "nemesis figures over $rounds rounds (seeds $seed..$((seed + rounds - 1))):"
awk '{
  for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "seed") sum[kv[1]] += kv[2] }
} END {
  printf "  faults injected: %d\n", sum["faults"]
  for (k in sum) if (k ~ /^fault\./) { n = k; sub(/^fault\./, "", n); gsub(/__/, " -", n); gsub(/_/, " ", n); printf "    %s: %d\n", n, sum[k] }
  printf "  jobs: %d planned, %d acknowledged, %d done, %d failed with reasons\n", sum["jobs"], sum["acked"], sum["done"], sum["failed"]
  printf "  units accepted from saboteurs: %d\n", sum["sabotaged"]
  printf "  wrong answers: %d\n  stuck jobs: %d\n  lost acknowledged results: %d\n  credit errors: %d\n  crashes: %d\n", sum["wrong"], sum["stuck"], sum["lost"], sum["credit"], sum["crashes"]
  printf "  unit runs by honest workers: %d, of which %d beyond a unit'"'"'s first\n", sum["unit_runs"], sum["extra_runs"]
  printf "  violations: %d; other findings: %d\n", sum["violations"], sum["findings"]
}' "$log_dir/figures"
if [ ${#failed_seeds[@]} -gt 0 ]; then
  echo "failing seeds: ${failed_seeds[*]}"
  exit 1
fi

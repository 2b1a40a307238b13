#!/usr/bin/env bash
# Compares one benchmark figure between two build trees, in alternating runs under the same load
# (the machines are shared: a figure is only comparable with one measured beside it).
#
# Usage: bench/compare_builds.sh OLD_BUILD NEW_BUILD [PAIRS] [-- BENCH_ARGS...]
#   BENCH=bench_throughput   the benchmark binary under <build>/bench/
#   FIGURE=trivial_units_per_s   the JSON figure compared
# Prints each run and, per build, the median, best and worst of the figure, then NEW/OLD medians.
# Example (what docs/benchmarks.md quotes):
#   bench/compare_builds.sh ../build-c504f0e build 10 -- --units 20000 --durable-units 300 --repeats 1
set -euo pipefail

usage() { sed -n '2,10p' "$0"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -ge 2 ]] || { usage >&2; exit 2; }
old=$1 new=$2
shift 2
pairs=8
if [[ $# -gt 0 && $1 != -- ]]; then pairs=$1; shift; fi
[[ ${1:-} == -- ]] && shift
bench=${BENCH:-bench_throughput}
figure=${FIGURE:-trivial_units_per_s}
[[ $pairs =~ ^[0-9]+$ && $pairs -ge 1 && $pairs -le 100 ]] || { echo "PAIRS must be 1..100" >&2; exit 2; }
for b in "$old" "$new"; do
  [[ -x $b/bench/$bench ]] || { echo "no $b/bench/$bench (build it first)" >&2; exit 2; }
done

out=$(mktemp)
trap 'rm -f "$out" "$out.err"' EXIT
for ((i = 1; i <= pairs; i++)); do
  for b in "$old" "$new"; do
    json=$("$b/bench/$bench" "$@" 2>"$out.err") || { cat "$out.err" >&2; exit 1; }
    v=$(python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        f = json.loads(line)
        if f.get("figure") == sys.argv[1]:
            print(f["value"]); break
' "$figure" <<<"$json")
    [[ -n $v ]] || { echo "$b/bench/$bench printed no figure $figure" >&2; exit 1; }
    echo "run $i $b $v"
    echo "$b $v" >>"$out"
  done
done
python3 - "$out" "$old" "$new" "$figure" <<'EOF'
import statistics, sys
path, old, new, figure = sys.argv[1:]
runs = {}
for line in open(path):
    b, v = line.split()
    runs.setdefault(b, []).append(float(v))
for b in (old, new):
    v = runs[b]
    print(f"{b}: {figure} median {statistics.median(v):.6g}  best {max(v):.6g}  worst {min(v):.6g}  ({len(v)} runs)")
print(f"new/old medians: {statistics.median(runs[new]) / statistics.median(runs[old]):.3f}")
EOF

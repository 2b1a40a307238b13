#!/usr/bin/env bash
# Runs every SpareCycles benchmark and the same workloads on Dask distributed, then writes a
# markdown table (SpareCycles / Dask ratios, every figure against its baseline and the goals of
# issue 6) to stdout and to bench/results/latest.md. Raw figures: bench/results/raw/.
#
# Usage: bench/run_all.sh [--quick] [--skip-dask] [--skip-micro]
#   BUILD_DIR=...   build directory (default: <repo>/build-bench, configured Release)
# A full run takes about 6-8 minutes on a 2-core machine; --quick about one minute.
# Every process listens on 127.0.0.1 with OS-chosen ports and is ended by its pid.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
quick=""
skip_dask=0
skip_micro=0
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --skip-dask) skip_dask=1 ;;
    --skip-micro) skip_micro=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

results=$root/bench/results
raw=$results/raw
mkdir -p "$raw"
log=$raw/run.log
: >"$log"
say() { echo "== $*" | tee -a "$log" >&2; }

say "dependencies (python3-distributed, primesieve-bin)"
"$root/scripts/install-deps.sh" --bench >>"$log" 2>&1 || say "warning: scripts/install-deps.sh --bench failed; the peer comparison may be missing"

say "building in $build"
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >>"$log" 2>&1
fi
cmake --build "$build" -j"$(nproc)" >>"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }

min_time=0.2
[[ -n $quick ]] && min_time=0.01
if ((skip_micro == 0)); then
  for b in codec_bench scheduler_bench store_bench kernels_bench; do
    say "micro: $b"
    "$build/bench/$b" --benchmark_min_time=$min_time --benchmark_out="$raw/$b.json" \
      --benchmark_out_format=json >>"$log" 2>&1
  done
fi

sc=$raw/sparecycles.jsonl
: >"$sc"
for tool in primesieve efficiency throughput latency recovery peer_sim; do
  say "system: bench_$tool $quick"
  "$build/bench/bench_$tool" $quick >>"$sc" 2> >(tee -a "$log" >&2) || say "warning: bench_$tool failed"
done

# Debian's python3-distributed lives in the system interpreter, not in a pyenv/venv one.
py=/usr/bin/python3
[[ -x $py ]] || py=python3
dask=$raw/dask.jsonl
: >"$dask"
if ((skip_dask == 0)); then
  if $py -c 'import distributed' 2>/dev/null; then
    say "peers: Dask distributed"
    # Dask's workers are the script's children; it closes them itself, by pid.
    timeout 900 $py "$root/bench/peers/dask_bench.py" $quick >"$dask" 2> >(tee -a "$log" >&2) \
      || say "warning: the Dask benchmark failed"
  else
    say "warning: python3-distributed is not installed; no Dask comparison"
  fi
fi

$py "$root/bench/report.py" --raw "$raw" | tee "$results/latest.md"

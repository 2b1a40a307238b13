#!/usr/bin/env bash
# Runs every libFuzzer harness of tests/fuzz for SECONDS_PER_HARNESS (default 60) under ASan and
# UBSan with memory limits, then prints the executions of each and their total.
# Usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]   (SPARECYCLES_FUZZ_ONLY="spool config" narrows)
# Builds in build-fuzz/ with clang++-14; new corpus entries go to build-fuzz/fuzz-corpus/<name>/
# (the committed seeds in tests/fuzz/corpus/ are only read), crashes to build-fuzz/fuzz-crashes/.
# A crash, leak, timeout or allocation above the limits fails the run. See docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
# Limits (docs/security.md): RSS of the whole process, any single allocation, time per input.
rss_limit_mb="${SPARECYCLES_FUZZ_RSS_MB:-1024}"
malloc_limit_mb="${SPARECYCLES_FUZZ_MALLOC_MB:-128}"
timeout_s="${SPARECYCLES_FUZZ_TIMEOUT:-10}"
build_dir="${SPARECYCLES_FUZZ_BUILD_DIR:-build-fuzz}"

if ! command -v clang++-14 >/dev/null || ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
  echo "fuzz.sh: installing clang-14 and libclang-rt-14-dev" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends clang-14 libclang-rt-14-dev >/dev/null
fi
scripts/install-deps.sh >/dev/null

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CXX=clang++-14 cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARECYCLES_FUZZ=ON \
  -DSPARECYCLES_BUILD_TESTS=OFF -DSPARECYCLES_BUILD_BENCH=OFF -DSPARECYCLES_PYTHON=OFF "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target fuzz_harnesses >/dev/null

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
harnesses="${SPARECYCLES_FUZZ_ONLY:-header peer_frame client_frame spool checkpoint config
  package executor_frame task_primes task_pi task_mandelbrot task_hashsearch task_wordfreq task_spin}"
total=0
failed=()
start=$(date +%s)
printf '%-18s %14s %10s\n' harness executions exec/s
for h in $harnesses; do
  work="$build_dir/fuzz-corpus/$h"
  crashes="$build_dir/fuzz-crashes/$h"
  log="$build_dir/fuzz-logs/$h.log"
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  rc=0
  "$build_dir/tests/fuzz/${h}_fuzz" -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" \
    -malloc_limit_mb="$malloc_limit_mb" -timeout="$timeout_s" -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs="${runs:-0}"
  total=$((total + runs))
  printf '%-18s %14s %10s\n' "$h" "$runs" "$((runs / (seconds > 0 ? seconds : 1)))"
  if [ "$rc" -ne 0 ]; then
    failed+=("$h")
    echo "  FAILED (exit $rc): see $log and $crashes/" >&2
    grep -m3 -E 'ERROR|SUMMARY|violated' "$log" >&2 || true
  fi
done
printf '%-18s %14s   in %ss (%ss per harness, rss %s MB, malloc %s MB, timeout %ss)\n' \
  total "$total" "$(( $(date +%s) - start ))" "$seconds" "$rss_limit_mb" "$malloc_limit_mb" "$timeout_s"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz.sh: failures in: ${failed[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# The sanitizer phase of scripts/test.sh: builds the tests with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/ (CMake option SPARECYCLES_SANITIZE, set on targets),
# then runs the unit and integration tests and the fuzz seed replays under them. Any report fails
# the phase. Prints how long it took. Usage: tests/sanitizer/run.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build_dir="${SPARECYCLES_ASAN_BUILD_DIR:-build-asan}"
labels="${SPARECYCLES_SANITIZE_LABELS:-^(unit|integration|fuzz)$}"
# idle_test measures reactions to machine load over minutes (434 s under ASan here, against the
# others' 40 s together) and holds no decoding or memory handling of its own: the plain phase runs it.
# The nemesis test is a timing-bound fault schedule over real processes (its settle bounds assume
# unslowed binaries); the decoders it exercises are covered by the unit and fuzz tests here.
exclude="${SPARECYCLES_SANITIZE_EXCLUDE:-^integration\.(idle_test|idle_test_hog|nemesis)$}"
start=$(date +%s)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARECYCLES_SANITIZE=ON \
  -DSPARECYCLES_BUILD_BENCH=OFF -DSPARECYCLES_PYTHON=OFF --no-warn-unused-cli "${launcher[@]}" >/dev/null
# The build's own output (GCC warns about libstdc++'s <regex> under -fsanitize) goes to a log.
if ! cmake --build "$build_dir" -j"$(nproc)" >"$build_dir/build.log" 2>&1; then
  grep -E 'error|Error' "$build_dir/build.log" | head -40 >&2
  echo "sanitizer build failed; full log: $build_dir/build.log" >&2
  exit 1
fi
built=$(date +%s)

# Leaks are errors; a UBSan finding stops the test (the build also has -fno-sanitize-recover).
# The suppression files list third-party reports only (see the comments in them).
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizer/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizer/ubsan.supp"
ctest --test-dir "$build_dir" --output-on-failure --timeout 1200 -L "$labels" -E "$exclude" \
  -j"${SPARECYCLES_TEST_JOBS:-2}" "$@"
end=$(date +%s)
echo "sanitizer phase: build $((built - start)) s, tests $((end - built)) s, total $((end - start)) s"

#!/usr/bin/env bash
# The whole test suite: install what is missing, build everything, run every test through ctest.
# Under CI (CI=true), or with SPARECYCLES_FORMAT=1, the format check runs first (scripts/check-format.sh).
# Under CI (CI=true), or with SPARECYCLES_SANITIZE=1 / SPARECYCLES_TIDY=1, further phases follow:
# the unit, integration and fuzz-seed tests built with ASan + UBSan (tests/sanitizer/run.sh, in
# build-asan/) and clang-tidy (scripts/tidy.sh). See docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every build of the suite (plain, sanitizer, tidy) shares one compiler cache when ccache is there.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}"
scripts/install-deps.sh
if [[ "${CI:-}" == "true" || "${SPARECYCLES_FORMAT:-0}" == "1" ]]; then
  scripts/check-format.sh
fi
scripts/build.sh
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
ctest --test-dir "$build_dir" --output-on-failure --timeout 900 -j"${SPARECYCLES_TEST_JOBS:-2}"
if [[ "${CI:-}" == "true" || "${SPARECYCLES_SANITIZE:-0}" == "1" ]]; then
  tests/sanitizer/run.sh
fi
if [[ "${CI:-}" == "true" || "${SPARECYCLES_TIDY:-0}" == "1" ]]; then
  scripts/tidy.sh
fi

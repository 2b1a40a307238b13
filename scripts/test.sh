#!/usr/bin/env bash
# The whole test suite: install what is missing, build everything, run every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j"${SPARECYCLES_TEST_JOBS:-2}"

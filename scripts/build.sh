#!/usr/bin/env bash
# Configures and builds SpareCycles in ./build (Release with debug info), on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

#!/usr/bin/env bash
# Configures and builds SpareCycles in ./build (Release with debug info), on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
launcher=()
if command -v ccache >/dev/null; then  # paths relative to the tree, so clones share the cache
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

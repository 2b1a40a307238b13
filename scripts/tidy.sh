#!/usr/bin/env bash
# clang-tidy over SpareCycles' own C++ sources with the checks chosen in .clang-tidy (any finding
# fails). Configures build-tidy/ (configure only, nothing is compiled) for compile_commands.json.
# Usage: scripts/tidy.sh [FILE_REGEX]   (default: every source of the parts, tests and benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build_dir="${SPARECYCLES_TIDY_BUILD_DIR:-build-tidy}"
if ! command -v clang-tidy-14 >/dev/null || ! command -v run-clang-tidy-14 >/dev/null; then
  echo "tidy.sh: installing clang-tidy-14" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends clang-tidy-14 clang-14 >/dev/null
fi
scripts/install-deps.sh >/dev/null
# clang's own driver flags, so the compile commands are what clang-tidy understands.
CXX=clang++-14 cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DSPARECYCLES_PYTHON=OFF --no-warn-unused-cli >/dev/null
files="${1:-$root/(core|tasks|coordinator|worker|sdk|package|tests|bench)/}"
start=$(date +%s)
log="$build_dir/tidy.log"
rc=0
run-clang-tidy-14 -p "$build_dir" -quiet -j"$(nproc)" -clang-tidy-binary clang-tidy-14 \
  -header-filter="^$root/(core|tasks|coordinator|worker|sdk|package|tests)/" "$files" >"$log" 2>&1 || rc=$?
# Findings are "file:line:col: warning|error: ... [check]"; count the distinct ones.
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/.*: (warning|error): ' | sort -u || true)
if [[ -n "$findings" || "$rc" -ne 0 ]]; then
  echo "$findings"
  echo "tidy.sh: $(printf '%s' "$findings" | grep -c . || true) findings (exit $rc); full log: $log" >&2
  exit 1
fi
echo "tidy.sh: clean ($(( $(date +%s) - start )) s)"

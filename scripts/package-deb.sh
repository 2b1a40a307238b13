#!/usr/bin/env bash
# Builds the Debian packages sparecycles-coordinator, sparecycles-worker and sparecycles-cli with
# CPack (cmake/Packaging.cmake) into BUILD_DIR/packages/ and prints each one's size and Depends.
# Usage: scripts/package-deb.sh [BUILD_DIR]     (default: $SPARECYCLES_BUILD_DIR or build)
# cpack builds the whole tree first (its `preinstall` step), so a BUILD_DIR that does not exist
# yet is configured without the tests and benchmarks. Dependencies come from dpkg-shlibdeps
# (dpkg-dev, installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=$(realpath -m "${1:-${SPARECYCLES_BUILD_DIR:-build}}")

if ! command -v dpkg-shlibdeps >/dev/null; then
  echo "installing dpkg-dev (for dpkg-shlibdeps)" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends dpkg-dev >&2 ||
    { $sudo apt-get -o DPkg::Lock::Timeout=300 update >&2 &&
      $sudo apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends dpkg-dev >&2; }
fi

if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSPARECYCLES_BUILD_TESTS=OFF -DSPARECYCLES_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build_dir" -j"$(nproc)" >&2

out=$build_dir/packages
rm -f "$out"/*.deb
(cd "$build_dir" && cpack -G DEB >&2)
rm -rf "$out/_CPack_Packages"
for deb in "$out"/*.deb; do
  printf '%s  %s KiB  Depends: %s\n' "$(basename "$deb")" "$(( $(stat -c %s "$deb") / 1024 ))" \
    "$(dpkg-deb -f "$deb" Depends)"
done

#!/usr/bin/env bash
# Installs the Debian packages SpareCycles needs, only those that are missing.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds what the peer benchmarks compare against)
set -euo pipefail

packages=(build-essential cmake pkg-config libzmq3-dev cppzmq-dev libcereal-dev libtbb-dev
          libbenchmark-dev doctest-dev libsqlite3-dev sqlite3 libsodium-dev libpng-dev iproute2 ccache
          # The Python package (sdk/python) and its tests.
          pybind11-dev python3-dev python3-pytest python3-tqdm python3-build python3-setuptools
          python3-wheel python3-venv
          # The HTTP side: cpp-httplib serves /metrics and the pages; Chart.js is embedded into the
          # dashboard at build time. tests/observability installs what it drives itself, or skips.
          libcpp-httplib-dev libjs-chart.js)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-distributed primesieve-bin)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

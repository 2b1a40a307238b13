#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/ against it with find_package, and
# runs an example to a correct answer (pi(10^7) = 664579).
set -euo pipefail
build_dir=$1
src_dir=$2
tmp=$(mktemp -d /tmp/sparecycles-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/sparecycles/sdk/client.hpp"
if grep -rqE '#include.*(zmq|cereal)' "$tmp/prefix/include/sparecycles"; then
  echo "public headers mention zmq or cereal" >&2
  exit 1
fi
cmake -S "$src_dir/examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/examples" -j2 >/dev/null
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib:${LD_LIBRARY_PATH:-}" "$tmp/examples/count_primes" 10000000 2>/dev/null)
echo "count_primes 10^7 -> $out"
[[ "$out" == "664579" ]]

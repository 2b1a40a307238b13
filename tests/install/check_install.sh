#!/usr/bin/env bash
# Installs the build into a temporary prefix, checks that libsparecycles.so exports only the SDK's
# public API, builds examples/ against it with find_package, and runs an example to a correct
# answer (pi(10^7) = 664579). The native package example is built
# against the installed header-only SpareCycles::tasks, packed, signed, verified and run with the
# installed CLI, and its integral of sin over [0, pi] checked against the exact value 2. Then an
# installed coordinator that accepts only that publisher and two installed workers that have
# never seen the package run it as a job: integrals checked against their closed forms.
set -euo pipefail
build_dir=$1
src_dir=$2
tmp=$(mktemp -d /tmp/sparecycles-install-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/sparecycles/sdk/client.hpp"
test -f "$tmp/prefix/include/sparecycles/sdk/export.hpp"
for h in task.hpp plugin.hpp helpers.hpp bytes.hpp task_abi.h; do
  test -f "$tmp/prefix/include/sparecycles/tasks/$h"
done
for h in status.hpp parse_int.hpp; do
  test -f "$tmp/prefix/include/sparecycles/core/$h"
done
if grep -rqE '#include.*(zmq|cereal)' "$tmp/prefix/include/sparecycles"; then
  echo "public headers mention zmq or cereal" >&2
  exit 1
fi

# Exported symbols: the SDK's public classes and functions (sparecycles/sdk/client.hpp, marked
# SPARECYCLES_EXPORT), plus the libstdc++ template instantiations and type infos GCC always gives
# default visibility. Nothing of the coordinator, worker, tasks, protocol, ZeroMQ, cereal or TBB.
lib=$(find "$tmp/prefix" -name 'libsparecycles.so.*' -type f | head -n 1)
if [[ -z "$lib" ]]; then
  echo "libsparecycles.so not installed" >&2
  exit 1
fi
# nm and c++filt come with binutils, which the compiler itself needs.
nm -D --defined-only "$lib" | awk '{print $NF}' | c++filt > "$tmp/exported.txt"
total=$(wc -l < "$tmp/exported.txt")
public=$(grep -cE '^sparecycles::' "$tmp/exported.txt" || true)
echo "libsparecycles.so exports $total symbols, $public of them sparecycles:: public API"
if grep -iE 'cereal|zmq|tbb' "$tmp/exported.txt" >&2; then
  echo "libsparecycles.so exports cereal/zmq/tbb symbols (above)" >&2
  exit 1
fi
# The leading name of each symbol, without the "typeinfo for" / "vtable for" / return-type prefix.
bad=$(sed -E 's/^(typeinfo name for |typeinfo for |vtable for |VTT for |guard variable for |void )//' \
        "$tmp/exported.txt" |
      grep -vE '^std::' |
      grep -vE '^sparecycles::(Client::|Job::|JobSpec::|JobResult::|JobStateName\()' || true)
if [[ -n "$bad" ]]; then
  echo "libsparecycles.so exports symbols outside the public SDK API:" >&2
  echo "$bad" >&2
  exit 1
fi
if [[ "$public" -lt 10 ]]; then
  echo "libsparecycles.so exports too few public symbols ($public): is SPARECYCLES_EXPORT applied?" >&2
  exit 1
fi

cmake -S "$src_dir/examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/examples" -j2 >/dev/null
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib:${LD_LIBRARY_PATH:-}" "$tmp/examples/count_primes" 10000000 2>/dev/null)
echo "count_primes 10^7 -> $out"
[[ "$out" == "664579" ]]

cli="$tmp/prefix/bin/sparecycles"
"$cli" key new --out "$tmp/keys/publisher.key" >/dev/null 2>&1
"$cli" package build "$tmp/examples/integrate-pkg" -o "$tmp/integrate.scpkg" --key "$tmp/keys/publisher.key" >/dev/null 2>&1
"$cli" package verify "$tmp/integrate.scpkg" --trust "$tmp/keys/publisher.key.pub" >/dev/null
integral=$("$cli" package test "$tmp/integrate.scpkg" --function sin --a 0 --b 3.141592653589793 --units 8 2>/dev/null)
echo "integrate sin over [0, pi] -> $integral"
awk -v v="$integral" 'BEGIN { d = v - 2; if (d < 0) d = -d; exit !(d < 1e-9) }'

# The package as a job: an installed coordinator (accepting this publisher only) and two installed
# workers, each with its own state directory, on 127.0.0.1 with ports the OS picks.
prefix="$tmp/prefix"
executor=$(find "$prefix" -name sparecycles-executor -type f | head -n 1)
[[ -x "$executor" ]] || { echo "sparecycles-executor not installed" >&2; exit 1; }
"$prefix/bin/sparecycles-coordinator" --peers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
  --endpoints-file "$tmp/endpoints" --pool cluster --publishers "$tmp/keys" \
  --log-level warn 2>"$tmp/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$tmp/endpoints" ]] && break; sleep 0.1; done
peers=$(awk '$1 == "peers" {print $2}' "$tmp/endpoints")
clients=$(awk '$1 == "clients" {print $2}' "$tmp/endpoints")
for w in 1 2; do
  "$prefix/bin/sparecycles-worker" --coordinator "$peers" --cores 1 --state-dir "$tmp/worker$w" \
    --executor "$executor" --pause-above off --throttle off --priority normal \
    --log-level warn 2>"$tmp/worker$w.log" &
  pids+=($!)
done
job() {
  LD_LIBRARY_PATH="$prefix/lib:${LD_LIBRARY_PATH:-}" "$cli" submit --package "$tmp/integrate.scpkg" \
    --coordinator "$clients" --no-progress --units 8 "$@" 2>"$tmp/submit.log" ||
    { cat "$tmp/submit.log" "$tmp"/*.log >&2; exit 1; }
}
sin_job=$(job --function sin --a 0 --b 3.141592653589793)
echo "job: integrate sin over [0, pi] on 2 workers -> $sin_job"
awk -v v="$sin_job" 'BEGIN { d = v - 2; if (d < 0) d = -d; exit !(d < 1e-9) }'
runge_job=$(job --function runge --a -1 --b 1)
echo "job: integrate 1/(1+25x^2) over [-1, 1] on 2 workers -> $runge_job (exact: 0.4 atan 5)"
awk -v v="$runge_job" 'BEGIN { d = v - 0.4 * atan2(5, 1); if (d < 0) d = -d; exit !(d < 1e-9) }'
grep -q "refused package" "$tmp"/worker*.log && { echo "a worker refused the package" >&2; exit 1; }
echo "the installed coordinator and workers ran the package"

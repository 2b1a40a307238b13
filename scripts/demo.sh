#!/usr/bin/env bash
# The main job: install what is missing, build, then count the primes below 10^9 on an embedded
# coordinator and worker and check the answer (pi(10^9) = 50,847,534).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build_dir="${SPARECYCLES_BUILD_DIR:-build}"
echo "+ sparecycles run primes --from 0 --to 1000000000 --json"
out=$("$build_dir"/sdk/sparecycles run primes --from 0 --to 1000000000 --json)
echo "$out"
if [[ "$out" == *'"count":50847534'* ]]; then
  echo "correct: there are 50,847,534 primes below 10^9"
else
  echo "WRONG ANSWER: expected 50847534" >&2
  exit 1
fi

#!/usr/bin/env bash
# Checks that every tracked C++ file matches .clang-format (clang-format --dry-run -Werror);
# prints the files that differ and fails if any does. Changes nothing.
# Usage: scripts/check-format.sh [FILE...]   (default: every tracked *.cpp / *.hpp / *.h)
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format="${CLANG_FORMAT:-}"
if [[ -z "$clang_format" ]]; then
  for c in clang-format-14 clang-format; do
    if command -v "$c" >/dev/null; then clang_format=$c; break; fi
  done
fi
if [[ -z "$clang_format" ]]; then
  echo "check-format.sh: installing clang-format-14" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends clang-format-14 >/dev/null
  clang_format=clang-format-14
fi
if (($# > 0)); then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h')
fi
bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]} > 0)); then
  printf '%s\n' "${bad[@]}"
  echo "check-format.sh: ${#bad[@]} of ${#files[@]} files differ from .clang-format (run $clang_format -i on them)" >&2
  exit 1
fi
echo "check-format.sh: ${#files[@]} files match .clang-format"

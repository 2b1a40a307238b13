#!/bin/sh
# Prints "<lines> <name> <file>:<line>" for every function in the given files, longest first.
ctags --language-force=C++ --kinds-C++=fp --fields=+ne -x --_xformat='%{name} %{input}:%{line} %{end}' "$@" 2>/dev/null |
  awk '{split($2,a,":"); if ($3 != "") print $3 - a[2] + 1, $1, $2}' | sort -rn

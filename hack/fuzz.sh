#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for FUZZTIME (default 10s).
set -euo pipefail
t=${FUZZTIME:-10s}
grep -rl --include='*_test.go' '^func Fuzz' pkg cmd 2>/dev/null | while read -r f; do
  dir=./$(dirname "$f")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | awk '{print $2}'); do
    echo "== $dir $fn ($t)"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$dir"
  done
done

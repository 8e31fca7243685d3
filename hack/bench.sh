#!/usr/bin/env bash
# make bench: every Go benchmark in the repository (root needed for the
# netns ones), with its custom metrics: plexus ADD/DEL overhead over its
# delegates, start-up, RSS, API requests per ADD, device plugin and sriov
# latencies. Results go to stdout and bin/bench.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${BENCHTIME:-20x}
pkgs=$(grep -rl --include='*_test.go' '^func Benchmark' pkg e2e cmd | xargs -n1 dirname | sort -u | sed 's|^|./|')
mkdir -p bin
PLEXUS_REQUIRE_ROOT=1 go test -run '^$' -bench . -benchtime "$count" -timeout 30m $pkgs 2>&1 | tee bin/bench.txt

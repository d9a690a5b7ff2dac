#!/usr/bin/env bash
# decode.sh: benchmark (not a test): trace decode throughput next to `zstd -dc` of the same
# files, and bytes per event, on generated traces of 20+ million events.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build
HR=build/cli/heapreplay
d=${HR_BENCH_DIR:-/tmp/heapreplay-bench}
mkdir -p "$d"
[ -f "$d/churn-20M.hrt" ] || $HR gen churn events=20000000 seed=1 -o "$d/churn-20M.hrt"
[ -f "$d/seed-arena.hrt" ] || $HR gen seed-arena -o "$d/seed-arena.hrt"
[ -f "$d/random-graph-5M.hrt" ] || $HR gen random events=5000000 kind=graph seed=1 -o "$d/random-graph-5M.hrt"
build/benchmarks/bench_decode "$d/churn-20M.hrt" "$d/seed-arena.hrt" "$d/random-graph-5M.hrt"

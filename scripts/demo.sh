#!/usr/bin/env bash
# demo.sh: the main job. Installs what is needed, builds, and runs the demo: packs the bundled
# hand-written trace, describes it, dumps it back, and generates and describes a larger trace.
# Everything it writes goes to results/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
HR=build/cli/heapreplay
out=results/demo
mkdir -p "$out"
echo "== heapreplay pack tests/data/graph-basic.txt -o $out/graph-basic.hrt"
$HR pack tests/data/graph-basic.txt -o "$out/graph-basic.hrt"
echo "== heapreplay info $out/graph-basic.hrt"
$HR info "$out/graph-basic.hrt" | tee "$out/graph-basic.info"
echo "== heapreplay dump $out/graph-basic.hrt --limit 12"
$HR dump "$out/graph-basic.hrt" --limit 12
echo "== heapreplay gen seed-arena -o $out/seed-arena.hrt  (10x1024x1024 16-byte blocks)"
$HR gen seed-arena -o "$out/seed-arena.hrt"
$HR info "$out/seed-arena.hrt" | tee "$out/seed-arena.info"
echo "== demo done: results in $out/"

#!/usr/bin/env bash
# demo.sh: the main job. Installs what is needed, builds, and runs a short demo of the experiment
# pipeline (under two minutes on 2 cores): the arena-retention experiment at a reduced size
# (pymalloc's release policies of Python 2.4, 2.5 and 3.11 on the seed scenario and on a Python
# program recorded on the spot) and the reference-count distribution of recorded programs.
# Everything goes to results/demo/: per experiment results.csv, runs/, provenance.json and
# figures/ (PNG, PDF, SVG).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/deps.sh
scripts/build.sh build
HR=build/cli/heapreplay
out=results/demo
echo "== heapreplay run scripts/experiments/01-arena-retention.lua size=demo --out $out"
$HR run scripts/experiments/01-arena-retention.lua size=demo --out "$out"
echo "== heapreplay run scripts/experiments/06-refcounts.lua size=small --out $out"
$HR run scripts/experiments/06-refcounts.lua size=small --out "$out"
echo
echo "== footprint at the end of the seed scenario (MiB), from $out/arena-retention/results.csv:"
python3 - "$out/arena-retention/results.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["trace"] == "seed":
        print(f"   {r['alloc']:22} {int(r['footprint']) / 2**20:6.1f} MiB at the end, "
              f"{int(r['peak_footprint']) / 2**20:6.1f} MiB at the peak, "
              f"{r['arenas_released']} of {r['arenas_allocated']} arenas released")
PY
echo "== figures:"
ls "$out"/*/figures/*.png | sed 's/^/   /'
echo "== demo done in $(( $(date +%s) - start )) s: results in $out/"

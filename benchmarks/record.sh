#!/usr/bin/env bash
# record.sh: what recording costs (a benchmark, not a test). Runs one allocation-heavy Python
# script plainly and under 'heapreplay record' in each mode, side by side in the same hyperfine
# run, then prints the slowdowns and the traces' bytes per event.
# alloc and graph run the script on the system's python3.11 with the recorder preloaded (the
# default); alloc-embedded on libpython3.11 inside heapreplay (--embedded).
# Usage: benchmarks/record.sh [BUILD_DIR] [ROUNDS]   (default build, 300); RUNS=N (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${2:-300}
HR=$B/cli/heapreplay
PY=/usr/bin/python3.11
W=benchmarks/record_workload.py
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_recbench.XXXXXX")
trap 'rm -rf "$T"' EXIT
[ -x "$HR" ] || { echo "record.sh: build first (scripts/build.sh $B)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "record.sh: needs hyperfine" >&2; exit 1; }
echo "workload: $PY $W $N"
hyperfine --warmup 1 --runs ${RUNS:-5} --export-json "$T/h.json" -N \
  -n plain "$PY $W $N" \
  -n alloc "$HR record -o $T/alloc.hrt -- $W $N" \
  -n graph "$HR record --mode graph -o $T/graph.hrt -- $W $N" \
  -n alloc-embedded "$HR record --embedded -o $T/embedded.hrt -- $W $N" \
  -n native "$HR record --native -o $T/native.hrt -- env PYTHONMALLOC=malloc $PY $W $N" \
  -n plain-malloc "env PYTHONMALLOC=malloc $PY $W $N" >"$T/h.txt"
python3 - "$T/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
def line(name, base):
    m, b = r[name]["mean"], r[base]["mean"]
    md, bd = r[name]["median"], r[base]["median"]
    print(f"  {name:14s} {m:7.3f} s ± {r[name]['stddev']:.3f}   {m / b:5.2f}x of {base} "
          f"[{md / bd:5.2f}x]")
print("mean wall time (hyperfine; median in brackets):")
line("plain", "plain")
line("alloc", "plain")
line("graph", "plain")
line("alloc-embedded", "plain")
line("plain-malloc", "plain-malloc")
line("native", "plain-malloc")
PY
for m in alloc graph embedded native; do
  "$HR" info "$T/$m.hrt" | awk -v m=$m '/^events/ {sub(/^events +/, ""); print "  " m ": " $0}'
done

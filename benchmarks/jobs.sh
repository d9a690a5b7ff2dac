#!/usr/bin/env bash
# jobs.sh: a sweep of 16 configurations run by 'heapreplay run' with --jobs 1 and with --jobs 2,
# side by side in one hyperfine run (each run starts afresh: no job is reused), and the speed-up.
# Goal: at least 1.8x on 2 cores. Usage: benchmarks/jobs.sh [HEAPREPLAY] [EVENTS (default 6M)]
set -euo pipefail
cd "$(dirname "$0")/.."
HR=$(realpath "${1:-build/cli/heapreplay}")
events=${2:-6M}
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_jobs.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$HR" gen churn events="$events" seed=7 -o "$T/churn.hrt"
echo "trace: churn events=$events; one replay takes about $("$HR" replay "$T/churn.hrt" -q | sed -n 's/^time *//p')"
echo "machine: $(nproc) online CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$T/jobs.json" \
  -n "jobs=1" "$HR run benchmarks/jobs.lua trace=$T/churn.hrt --jobs 1 --out $T/j1 -q" \
  -n "jobs=2" "$HR run benchmarks/jobs.lua trace=$T/churn.hrt --jobs 2 --out $T/j2 -q"
python3 - "$T/jobs.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r["jobs=1"], r["jobs=2"]
s = a["mean"] / b["mean"]
err = s * ((a["stddev"] / a["mean"]) ** 2 + (b["stddev"] / b["mean"]) ** 2) ** 0.5
print(f"16 configurations: --jobs 1 {a['mean']:.2f} s +- {a['stddev']:.2f}, "
      f"--jobs 2 {b['mean']:.2f} s +- {b['stddev']:.2f}: speed-up {s:.2f}x +- {err:.2f} (goal >= 1.8x)")
print(f"medians: --jobs 1 {a['median']:.2f} s, --jobs 2 {b['median']:.2f} s: speed-up "
      f"{a['median'] / b['median']:.2f}x; best runs: {a['min']:.2f} s / {b['min']:.2f} s = "
      f"{a['min'] / b['min']:.2f}x; CPU time (user+sys) {a['user'] + a['system']:.2f} s / "
      f"{b['user'] + b['system']:.2f} s")
PY

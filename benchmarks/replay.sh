#!/usr/bin/env bash
# replay.sh: benchmark (not a test): replay throughput with the null allocator and the none
# collector, next to `zstd -dc` of the same file, and the engine's memory per live block:
# (peak RSS - RSS at start) / peak live blocks, each replay in its own process; then, on the
# allocation traces, the floor: the least work a replay does per event, timed alone
# (benchmarks/bench_replay_floor.c), next to the engine in the same runs.
# Goals (issue 4): >= 100 M events/s; <= 16 bytes of engine metadata per live block.
# HR_BENCH_EVENTS sets the size of the churn trace (default 100000000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build
HR=build/cli/heapreplay
d=${HR_BENCH_DIR:-/tmp/heapreplay-bench}
n=${HR_BENCH_EVENTS:-100000000}
mkdir -p "$d"
[ -f "$d/churn-$n.hrt" ] || $HR gen churn events="$n" seed=1 -o "$d/churn-$n.hrt"
[ -f "$d/seed-arena.hrt" ] || $HR gen seed-arena -o "$d/seed-arena.hrt"
[ -f "$d/genmix-20M.hrt" ] || $HR gen genmix events=20000000 -o "$d/genmix-20M.hrt"
traces=("$d/churn-$n.hrt" "$d/seed-arena.hrt" "$d/genmix-20M.hrt")
# Real programs' allocation traces, when the recorder is built in: stdlib_mix.py (5 M events),
# and benchmarks/record_workload.py at 5,950 rounds (100 M events, a heap of ~20,000 blocks: a
# long trace with a small heap, where the table's directory used to dominate).
if [ -f "$d/stdlib_mix.hrt" ] ||
   $HR record -o "$d/stdlib_mix.hrt" -- tests/record/workloads/stdlib_mix.py >/dev/null 2>&1; then
  traces+=("$d/stdlib_mix.hrt")
fi
if [ -f "$d/workload-100M.hrt" ] ||
   $HR record -o "$d/workload-100M.hrt" -- benchmarks/record_workload.py 5950 >/dev/null 2>&1; then
  traces+=("$d/workload-100M.hrt")
fi
python3 - "$HR" "${traces[@]}" <<'PY'
import json, subprocess, sys, time, tempfile, os
hr, traces = sys.argv[1], sys.argv[2:]
print(f"{'trace':<22}{'events':>12}{'replay ev/s':>14}{'zstd -dc ev/s':>15}{'ratio':>8}"
      f"{'peak live':>12}{'B/live (RSS)':>14}{'B/live (table)':>16}")
for t in traces:
    best, res = None, None
    for _ in range(3):
        with tempfile.NamedTemporaryFile(suffix=".json") as j:
            subprocess.run([hr, "replay", t, "--alloc", "null", "--gc", "none", "-q",
                            "--json", j.name], check=True, stdout=subprocess.DEVNULL)
            r = json.load(open(j.name))
        if best is None or r["replay"]["wall_ns"] < best:
            best, res = r["replay"]["wall_ns"], r
        t0 = time.perf_counter()
        subprocess.run(f"zstd -q -dc '{t}' > /dev/null", shell=True, check=True)
        z = time.perf_counter() - t0
        zbest = z if _ == 0 else min(zbest, z)
    rp = res["replay"]
    ev = rp["events"]
    live = max(rp["peak_live_blocks"], 1)
    rss = (rp["peak_rss"] - rp["rss_start"]) / live
    print(f"{os.path.basename(t):<22}{ev:>12}{ev / (best / 1e9):>14.3e}{ev / zbest:>15.3e}"
          f"{(ev / (best / 1e9)) / (ev / zbest):>7.2f}x{live:>12}{rss:>14.1f}"
          f"{rp['table_bytes_peak'] / live:>16.1f}")
print("ratio: replay speed / zstd -dc speed on the same file (both measured here, best of 3).")
print("B/live: bytes of process growth (RSS) and of the engine's id table per peak live block.")
PY
# What the least work costs on the same allocation traces, next to the engine in the same runs
# (docs/replay-and-collectors.md, "How far from the floor"). Needs ~13 bytes of memory per event
# of the largest trace (1.3 GB for 100 M events).
echo
alloc_traces=()
for t in "${traces[@]}"; do
  $HR info "$t" | grep -q '^format.*kind alloc' && alloc_traces+=("$t")
done
build/benchmarks/bench_replay_floor --engine "$HR" "${alloc_traces[@]}"

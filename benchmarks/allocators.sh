#!/usr/bin/env bash
# allocators.sh: benchmark (not a test): every allocator built in on the same request streams,
# side by side in one run: time per allocator call and footprint.
#
# For each trace (generated once: churn, seed-arena, genmix), every allocator listed by
# `heapreplay allocators` replays it with `--gc none --json`, each replay in its own process,
# round-robin over the allocators for HR_BENCH_ROUNDS rounds (default 3); the best time of each
# is kept. Columns:
#   ns/call     replay wall time / allocator calls (requests + frees): harness cost included
#   net         the same minus the null allocator's time on that trace: the allocator alone
#   peak fp     peak footprint, the allocator's own accounting (docs/allocators.md)
#   end fp      footprint at the end of the replay (blocks still live at the end included)
#   fp/live     peak footprint / peak live bytes (fragmentation at peak)
#   peak RSS    the replay process's peak resident set (engine tables included)
# Environment: HR_BENCH_DIR (traces, default /tmp/heapreplay-bench), HR_BENCH_CHURN (events of
# the churn trace, default 20000000), HR_BENCH_GENMIX (events of genmix, default 10000000),
# HR_BENCH_ROUNDS, HR_BENCH_ALLOCS (space-separated specs instead of every allocator built in),
# HR_BENCH_CSV (also write the table as CSV to this file).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build
HR=build/cli/heapreplay
d=${HR_BENCH_DIR:-/tmp/heapreplay-bench}
nc=${HR_BENCH_CHURN:-20000000}
ng=${HR_BENCH_GENMIX:-10000000}
mkdir -p "$d"
[ -f "$d/churn-$nc.hrt" ] || $HR gen churn events="$nc" seed=1 -o "$d/churn-$nc.hrt"
[ -f "$d/seed-arena.hrt" ] || $HR gen seed-arena -o "$d/seed-arena.hrt"
[ -f "$d/genmix-$ng.hrt" ] || $HR gen genmix events="$ng" -o "$d/genmix-$ng.hrt"
allocs=${HR_BENCH_ALLOCS:-$($HR allocators | grep -E '^[a-z]' | cut -d' ' -f1 | tr '\n' ' ')}
python3 - "$HR" "${HR_BENCH_ROUNDS:-3}" "${HR_BENCH_CSV:-}" "$allocs" \
  "$d/churn-$nc.hrt" "$d/seed-arena.hrt" "$d/genmix-$ng.hrt" <<'PY'
import json, os, subprocess, sys, tempfile
hr, rounds, csv_path, allocs, traces = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5:]

def replay(trace, spec):
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        subprocess.run([hr, "replay", trace, "--alloc", spec, "--gc", "none", "-q", "--json", j.name],
                       check=True, stdout=subprocess.DEVNULL)
        return json.load(open(j.name))

def mib(b):
    return f"{b / 2**20:.1f}"

rows = []
for t in traces:
    best = {}
    for _ in range(rounds):
        for a in allocs:
            r = replay(t, a)
            if a not in best or r["replay"]["wall_ns"] < best[a]["replay"]["wall_ns"]:
                best[a] = r
    any_r = next(iter(best.values()))
    ev = any_r["replay"]["events"]
    null_ns = best["null"]["replay"]["wall_ns"] if "null" in best else None
    print(f"\n{os.path.basename(t)}: {ev:,} events, peak live {mib(any_r['replay']['peak_live_bytes'])} MiB "
          f"in {any_r['replay']['peak_live_blocks']:,} blocks (best of {rounds}, each replay in its own process)")
    print(f"{'allocator':<12}{'calls':>12}{'ns/call':>9}{'net':>8}{'peak fp MiB':>13}{'end fp MiB':>12}"
          f"{'fp/live':>9}{'peak RSS MiB':>14}")
    for a in allocs:
        r = best[a]
        al, rp = r["allocator"], r["replay"]
        calls = al["requests"] + al["frees"]
        ns = rp["wall_ns"] / calls
        net = (rp["wall_ns"] - null_ns) / calls if null_ns is not None and a != "null" else None
        frag = al["peak_footprint"] / al["peak_bytes_in_use"] if al["peak_bytes_in_use"] else 0
        print(f"{a:<12}{calls:>12,}{ns:>9.1f}{(f'{net:.1f}' if net is not None else '-'):>8}"
              f"{mib(al['peak_footprint']):>13}{mib(al['footprint']):>12}"
              f"{(f'{frag:.2f}' if a != 'null' else '-'):>9}{mib(rp['peak_rss']):>14}")
        rows.append((os.path.basename(t), a, calls, rp["wall_ns"], ns, net, al["peak_footprint"],
                     al["footprint"], al["peak_bytes_in_use"], rp["peak_rss"]))
print("\nns/call includes decoding and the engine's bookkeeping; net subtracts the null allocator's "
      "time on the same trace.\nFootprints are each allocator's own accounting (docs/allocators.md): "
      "comparable in kind, not identical in definition.")
if csv_path:
    with open(csv_path, "w") as f:
        f.write("trace,allocator,calls,wall_ns,ns_per_call,net_ns_per_call,peak_footprint,"
                "end_footprint,peak_live_bytes,peak_rss\n")
        for r in rows:
            f.write(",".join("" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
                             for v in r) + "\n")
PY

#!/usr/bin/env bash
# experiment_test.sh: one bundled experiment at its small size (TAP): it runs, writes one row per
# run, the JSON of every run, provenance (with the script and trace checksums) and every figure
# it declares as PNG, PDF and SVG. Usage: experiment_test.sh HEAPREPLAY SRCDIR EXPERIMENT PYTHON(0|1)
set -u
HR=$1
SRC=$2
EXP=$3
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_exp.XXXXXX")
trap 'rm -rf "$T"' EXIT
if [ "$4" != 1 ] && grep -q 'record(' "$SRC/scripts/experiments/$EXP.lua"; then
  echo "1..0 # SKIP $EXP records Python programs and this build has no recorder"
  exit 0
fi
source "$(dirname "$0")/../tap.sh"
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }

start=$(date +%s.%N)
"$HR" run "$SRC/scripts/experiments/$EXP.lua" size=small --out "$T" -q 2>"$T/err"
st=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
check $st "$EXP runs at size=small (status $st, ${secs}s): $(head -c 600 "$T/err" | tr '\n' ' ')"
# the bundled figures draw without a gnuplot warning (experiment 03's GCBench panel of zeros used
# to give "empty y range"; run_test.sh checks how warnings are reported)
nw=$(grep -c '^heapreplay: gnuplot, ' "$T/err")
[ "$nw" = 0 ]
check $? "no gnuplot warnings ($nw): $(grep '^heapreplay: gnuplot, ' "$T/err" | head -c 300)"
# nor a warning of the driver's (a grid parameter that changes no run, a figure averaging
# different configurations as if they were repetitions)
nw=$(grep -c "^heapreplay run: .*: warning: " "$T/err")
[ "$nw" = 0 ]
check $? "no warnings from the driver ($nw): $(grep 'warning: ' "$T/err" | head -c 300)"
dir=$(ls -d "$T"/*/ 2>/dev/null | head -n 1)
dir=${dir%/}
[ -n "$dir" ] && [ -s "$dir/results.csv" ]
check $? "results.csv written ($dir)"
python3 - "$dir" <<'PY'
import csv, json, os, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "results.csv"))))
runs = [f for f in os.listdir(os.path.join(d, "runs")) if f.endswith(".json") and len(f) == 21]
prov = json.load(open(os.path.join(d, "provenance.json")))
checks = []
checks.append((len(rows) > 0 and len(rows) == prov["runs"]["rows"],
               f"{len(rows)} rows, as provenance says ({prov['runs']['rows']})"))
keys = {r["run"] for r in rows}
checks.append((all(os.path.exists(os.path.join(d, "runs", k + ".json")) for k in keys),
               f"the JSON of every run is in runs/ ({len(runs)} records)"))
rec = json.load(open(os.path.join(d, "runs", sorted(keys)[0] + ".json")))
checks.append((rec["schema"] == "heapreplay-run/1" and "result" in rec and "process" in rec,
               "a run record holds the replay's result and the process figures"))
checks.append((prov["script_text"] == open(os.path.join(d, "experiment.lua")).read() and
               prov["heapreplay"]["build_commit"] and prov["machine"]["cores"] >= 1 and
               prov["heapreplay"]["compiler"] and prov["date_start"],
               "provenance: script text, build commit, compiler, machine, date"))
checks.append((all(t["crc32"] and t["bytes"] > 0 and t["recipe"] for t in prov["traces"].values()),
               f"provenance: every trace with its checksum and recipe ({', '.join(sorted(prov['traces']))})"))
figs = [f for f in prov["files"] if f.startswith("figures/")]
missing = [f for f in figs if not os.path.getsize(os.path.join(d, f))]
checks.append((len(figs) >= 3 and not missing, f"{len(figs)} figure files, none empty"))
pngs = [f for f in figs if f.endswith(".png")]
checks.append((all(open(os.path.join(d, f), "rb").read(8) == b"\x89PNG\r\n\x1a\n" for f in pngs) and
               all(open(os.path.join(d, f[:-4] + ".pdf"), "rb").read(5) == b"%PDF-" for f in pngs) and
               all(b"<svg" in open(os.path.join(d, f[:-4] + ".svg"), "rb").read(2000) for f in pngs),
               "every figure as a real PNG, PDF and SVG"))
for good, name in checks:
    print(("ok" if good else "not ok") + " - " + name)
sys.exit(0 if all(g for g, _ in checks) else 1)
PY
py=$?
n=$((n + 7))
[ $py = 0 ] || failed=$((failed + 1))
# the figures' folder redraws wherever it is moved, without the source tree (its NAME.gp loads
# a copy of the template and names no absolute path)
mv "$dir/figures" "$T/moved" && cd "$T/moved" && for g in *.gp; do
  case $g in lines.gp | bars.gp | style.gp) continue ;; esac
  ! grep -n "'/" "$g" >>"$T/regp" || echo "$g names an absolute path" >>"$T/regp"
  gnuplot -e "fmt='png'; out='again.png'" "$g" 2>>"$T/regp" || echo "$g failed" >>"$T/regp"
done
cd - >/dev/null
[ ! -s "$T/regp" ] && [ -s "$T/moved/again.png" ]
check $? "the figures redraw from a copy of their folder elsewhere: $(head -c 300 "$T/regp" 2>/dev/null)"
tap_end

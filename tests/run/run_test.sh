#!/usr/bin/env bash
# run_test.sh: end-to-end tests of 'heapreplay run' (TAP): a sweep killed with kill -9 and run
# again with --resume loses no finished job and runs none twice (proved from the job log and
# the run records); SIGINT stops a sweep with status 130 and --resume completes it; a failing
# script or job leaves earlier results untouched. Usage: run_test.sh HEAPREPLAY SRCDIR
set -u
HR=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_run.XXXXXX")
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/../tap.sh"
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }
# run_exp NAME: run $T/NAME.lua on the trace into $T/res (stderr in $T/NAME.err); sets st
run_exp() {
  "$HR" run "$T/$1.lua" trace="$T/t.hrt" --out "$T/res" -q 2>"$T/$1.err"
  st=$?
}

"$HR" gen seed-arena blocks=1M work=100 -o "$T/t.hrt" || { echo "Bail out! cannot make the trace"; exit 1; }
# 16 jobs: 4 allocators x 4 repetitions (the repetition is part of each job's key)
cat >"$T/exp.lua" <<'LUA'
experiment {
  name = "resume",
  traces = {t = file(params.trace)},
  grid = {alloc = {"pymalloc:preset=2.4", "pymalloc:preset=2.5", "pymalloc:preset=3.11", "libc"}},
  repetitions = 4,
  metrics = {"peak_footprint", "wall_ns"},
  figures = {{name = "fp", template = "bars", x = "alloc", y = "peak_footprint"}},
}
LUA
R=$T/res/resume
LOG=$R/jobs.log

# wait_done N PID: wait until the job log has N 'done' lines (or the run ended)
wait_done() {
  for _ in $(seq 1 3000); do
    [ -f "$LOG" ] && [ "$(grep -c '^done [0-9a-f]' "$LOG")" -ge "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

# {==== kill -9 in the middle, then --resume ====
"$HR" run "$T/exp.lua" trace="$T/t.hrt" --jobs 2 --out "$T/res" -q &
pid=$!
wait_done 3 $pid
check $? "the first run finished at least 3 jobs"
kill -9 $pid
wait $pid 2>/dev/null
sleep 0.3
left=$(ps -eo args | grep -F -- "$T/t.hrt" | grep -v grep | wc -l)
check $((left != 0)) "no job survives its killed sweep (PR_SET_PDEATHSIG): $left left"
ls "$R/runs" | grep -E '^[0-9a-f]{16}\.json$' | sed 's/\.json$//' | sort >"$T/finished1"
nf=$(wc -l <"$T/finished1")
check $((nf < 3 || nf >= 16)) "after kill -9: $nf finished run records (3 to 15), no results.csv yet: $(test -e "$R/results.csv" && echo present || echo absent)"
[ ! -e "$R/results.csv" ]; check $? "a killed sweep wrote no results.csv"
# every record is complete JSON (atomic rename): parse them all
bad=0
for f in "$R"/runs/*.json; do python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$f" 2>/dev/null || bad=$((bad + 1)); done
check $bad "every run record left by the kill parses as JSON ($bad bad)"
"$HR" run "$T/exp.lua" trace="$T/t.hrt" --jobs 2 --out "$T/res" --resume -q
check $? "the resumed run succeeds"
# the second run's lines of the job log
awk '/^run /{r++} r==2' "$LOG" | grep '^start [0-9a-f]' | awk '{print $2}' | sort >"$T/started2"
comm -12 "$T/finished1" "$T/started2" >"$T/twice"
check $(($(wc -l <"$T/twice") != 0)) "no job finished before the kill was started again ($(wc -l <"$T/twice") were)"
ls "$R/runs" | grep -E '^[0-9a-f]{16}\.json$' | sed 's/\.json$//' | sort >"$T/finished2"
cat "$T/finished1" "$T/started2" | sort | uniq -d >"$T/dup"
[ "$(wc -l <"$T/finished2")" = 16 ] && [ "$(sort -u "$T/finished1" "$T/started2" | wc -l)" = 16 ] && [ ! -s "$T/dup" ]
check $? "16 records: $nf kept from the first run + $(wc -l <"$T/started2") run by the second, no overlap"
rows=$(tail -n +2 "$R/results.csv" | wc -l)
keys=$(tail -n +2 "$R/results.csv" | cut -d, -f2 | sort -u | wc -l)
[ "$rows" = 16 ] && [ "$keys" = 16 ]
check $? "results.csv: 16 rows, 16 distinct runs ($rows rows, $keys keys)"
grep -q '"finished_earlier": '"$nf" "$R/provenance.json" && grep -q '"resumed": true' "$R/provenance.json"
check $? "provenance.json says how many runs were kept ($nf) and that the run was resumed"
dones=$(grep -c '^done [0-9a-f]' "$LOG")
check $((dones > 16)) "the job log has at most one 'done' per job ($dones)"
ls "$R" | grep -q -E '\.tmp\.|^\.staging|^work$'
check $((! $?)) "no temporary files or staging left in $R"
for f in png pdf svg; do [ -s "$R/figures/fp.$f" ] || not_png=1; done
check ${not_png:-0} "the figure exists as PNG, PDF and SVG"

# {==== SIGINT (Ctrl-C) stops the sweep with 130; --resume completes it ====
rm -rf "$T/res"
"$HR" run "$T/exp.lua" trace="$T/t.hrt" --jobs 2 --out "$T/res" 2>"$T/int.err" &
pid=$!
wait_done 2 $pid
kill -INT $pid
wait $pid
st=$?
check $((st != 130)) "SIGINT: exit status 130 (got $st)"
grep -q 'interrupted by signal 2' "$T/int.err" && grep -q -- '--resume' "$T/int.err"
check $? "SIGINT: the message says so and points to --resume ($(grep interrupted "$T/int.err" | head -c 200))"
n1=$(ls "$R/runs" | grep -cE '^[0-9a-f]{16}\.json$')
"$HR" run "$T/exp.lua" trace="$T/t.hrt" --jobs 2 --out "$T/res" --resume -q
check $? "SIGINT: the resumed run succeeds ($n1 runs kept)"
[ "$(tail -n +2 "$R/results.csv" | wc -l)" = 16 ]
check $? "SIGINT: 16 rows after resuming"

# {==== errors leave earlier results untouched ====
cp "$R/results.csv" "$T/before.csv"
cp -r "$R/figures" "$T/before-figures"
sed 's/figures = {{name = "fp"/figures = {{name = "fp", where = function(r) return r.nothing.x end/' "$T/exp.lua" >"$T/exp-bad.lua"
"$HR" run "$T/exp-bad.lua" trace="$T/t.hrt" --out "$T/res" --resume -q 2>"$T/bad.err"
st=$?
check $((st == 0)) "an error in a figure function fails the run (status $st)"
grep -q "exp-bad.lua:[0-9]*: attempt to index a nil value" "$T/bad.err"
check $? "the message names the script and line: $(head -c 200 "$T/bad.err")"
cmp -s "$T/before.csv" "$R/results.csv" && diff -r "$T/before-figures" "$R/figures" >/dev/null
check $? "results.csv and figures/ are those of the last good run"
ls -a "$R" | grep -q -E '\.tmp\.|^\.staging'
check $((! $?)) "no half-written file or staging folder left behind"
# a failing job (a bad spec value is refused before any job: a job killed at its timeout)
sed 's/"libc"}},/"pymalloc:preset=3.8"}}, timeout = 0.001,/' "$T/exp.lua" >"$T/exp-fail.lua"
"$HR" run "$T/exp-fail.lua" trace="$T/t.hrt" --out "$T/res" --resume -q 2>"$T/fail.err"
st=$?
grep -q "job(s) failed" "$T/fail.err" && grep -q "alloc=pymalloc:preset=3.8" "$T/fail.err" && grep -q "timeout" "$T/fail.err"
check $? "a failing job: status $st, the message names the configuration and the replay's error"
[ "$st" = 3 ]
check $? "a failing job exits with status 3 (a failure that is not the script's), not $st"
cmp -s "$T/before.csv" "$R/results.csv"
check $? "a failing job leaves the earlier results.csv alone"

# {==== the script's mistakes and the others': what, where, and the exit status ====
# a figure whose x is a string: nothing written, the runs kept, --resume draws without replaying
# arena_exp NAME FIGURES: an experiment replaying the trace at two arena sizes, drawing FIGURES
arena_exp() {
  printf 'experiment {\n  name = "%s",\n  traces = {t = file(params.trace)},\n  grid = {arena = {"256K", "1M"}},\n  alloc = function(p) return "pymalloc:preset=3.11,arena=" .. p.arena end,\n  figures = %s,\n}\n' "$1" "$2"
}
arena_exp fig '{{name = "fp", x = function(r) return r.arena:match("%d+") end, y = "peak_footprint",
              xlabel = "arena"}}' >"$T/fig.lua"
run_exp fig
grep -q 'fig.lua:1: .*x must be a number for lines (got string "[0-9]*"' "$T/fig.err" &&
  grep -q -- "--resume" "$T/fig.err" && [ "$st" = 1 ] && [ ! -e "$T/res/fig/results.csv" ]
check $? "a figure with a string x: status $st, no results, the message names the value and --resume: $(head -c 300 "$T/fig.err")"
# resumed NAME: run $T/NAME.lua again with --resume (stderr in $T/NAME.resumed.err); sets st,
# and runs0 and runs1, the jobs its log says were started before and after
resumed() {
  runs0=$(grep -c '^start ' "$T/res/$1/jobs.log")
  "$HR" run "$T/$1.lua" trace="$T/t.hrt" --out "$T/res" --resume -q 2>"$T/$1.resumed.err"
  st=$?
  runs1=$(grep -c '^start ' "$T/res/$1/jobs.log")
}
sed -i 's/return r.arena:match("%d+")/return hr.num(r.arena)/' "$T/fig.lua"
resumed fig
[ "$st" = 0 ] && [ "$runs0" = "$runs1" ] && [ -s "$T/res/fig/figures/fp.png" ]
check $? "fixed and resumed: status $st, the figure drawn, no job run again ($runs0 then $runs1 jobs started in the log)"
# gnuplot's warnings: a panel whose values are all at ymin draws without one (its y range is
# given: pflat), and a warning (here the same panel with its floor set by hand, which gnuplot
# finds an empty y range) is reported once per figure, not once per format
arena_exp flat '{{name = "zero", x = function(r) return hr.num(r.arena) end, y = function() return 0 end, ymin = 0,
              xlabel = "arena (bytes)", ylabel = "zero"},
             {name = "warn", x = function(r) return hr.num(r.arena) end, y = function() return 0 end,
              extra = "set yrange [0:*]", xlabel = "arena (bytes)", ylabel = "zero"}}' >"$T/flat.lua"
run_exp flat
[ "$st" = 0 ] && [ -s "$T/res/flat/figures/zero.png" ] && ! grep -q 'zero' "$T/flat.err" &&
  grep -q '^array pflat\[1\] = \[1\]' "$T/res/flat/figures/zero.gp" &&
  [ "$(grep -c '^heapreplay: gnuplot, .*warn.*empty y range' "$T/flat.err")" = 1 ]
check $? "an all-zero panel draws without a gnuplot warning; a warning is reported once per figure (status $st): $(head -c 300 "$T/flat.err")"
# a panel whose values are all equal (no ymin) draws without a warning too; x tics are spaced for
# their labels (arena sizes in bytes: 262144 ... 1048576); the key names the series column
arena_exp same '{{name = "same", x = function(r) return hr.num(r.arena) end, y = function() return 5 end,
              series = "arena", xlabel = "arena (bytes)", ylabel = "five"}}' >"$T/same.lua"
run_exp same
[ "$st" = 0 ] && [ -s "$T/res/same/figures/same.png" ] && [ ! -s "$T/same.err" ] &&
  grep -q '^array pflat\[1\] = \[1\]' "$T/res/same/figures/same.gp" &&
  grep -q "^array pylo\[1\] = \[4.5\]" "$T/res/same/figures/same.gp" &&
  grep -Eq '^array xstep\[1\] = \[(100000|200000)\]' "$T/res/same/figures/same.gp" &&
  grep -q "^keytitle = 'arena'" "$T/res/same/figures/same.gp"
check $? "an all-equal panel: no warning, a range around the value; x tics a round step; key titled (status $st): $(head -c 300 "$T/same.err") $(grep -E '^(array (pylo|xstep)|keytitle)' "$T/res/same/figures/same.gp" | tr '\n' ' ')"
# error bars of a quantity no row has below zero stop at zero (mean - s.d. of two repetitions,
# 0 and 10, is -2.07); one that can be negative keeps its bar
arena_exp neg '{{name = "pos", x = function(r) return hr.num(r.arena) end, y = function(r) return r.rep == 1 and 0 or 10 end,
              xlabel = "arena (bytes)", ylabel = "ten or zero"},
             {name = "neg", x = function(r) return hr.num(r.arena) end, y = function(r) return r.rep == 1 and -1 or 10 end,
              xlabel = "arena (bytes)", ylabel = "ten or minus one"}}' | sed 's/^}$/  repetitions = 2,\n}/' >"$T/neg.lua"
run_exp neg
[ "$st" = 0 ] && grep -q '^262144 5 0 12.07' "$T/res/neg/figures/pos.dat" && grep -q '^262144 4.5 -3.278' "$T/res/neg/figures/neg.dat"
check $? "error bars stop at zero for a quantity never below it, not otherwise (status $st): $(grep -h '^262144' "$T/res/neg/figures/pos.dat" "$T/res/neg/figures/neg.dat" | tr '\n' ' ')"
# a figure whose x is a function needs its label (it used to read "function: 0x55...")
sed 's/, xlabel = "arena (bytes)"//' "$T/flat.lua" | sed 's/name = "flat"/name = "flat2"/' >"$T/flat2.lua"
run_exp flat2
[ "$st" = 1 ] && grep -q "flat2.lua:1: experiment 'flat2': figure 'warn': x is a function, so give xlabel" "$T/flat2.err" &&
  [ ! -e "$T/res/flat2/runs" ]
check $? "a figure with a function for x and no xlabel is refused before anything runs (status $st): $(head -c 200 "$T/flat2.err")"
# a figure whose y names a column no row has (a typo): the message says so and lists the columns
sed 's/y = "peak_footprint",/y = "peak_fotprint",/; s/name = "fig"/name = "figcol"/' "$T/fig.lua" >"$T/figcol.lua"
run_exp figcol
[ "$st" = 1 ] && grep -q "figure 'fp': y = 'peak_fotprint' names no column of its rows (did you mean 'peak_footprint'?) (columns: .*peak_footprint" "$T/figcol.err"
check $? "a figure's y naming no column is reported with the nearest name and the columns (status $st): $(head -c 160 "$T/figcol.err")"
# a misspelt metric (known only once the jobs ran): the nearest name, the runs kept, --resume
# finishes without replaying
arena_exp mtypo '{}' | sed 's/^}$/  metrics = {"peak_footprint", "wall_nss"},\n}/' >"$T/mtypo.lua"
run_exp mtypo
[ "$st" = 1 ] && grep -q "mtypo.lua:1: experiment 'mtypo': metric 'wall_nss' is not produced (did you mean 'wall_ns'?)$" "$T/mtypo.err" &&
  grep -q "^the metrics there are: .*, wall_ns" "$T/mtypo.err" &&
  grep -q -- "the 2 run(s) are kept in .*/mtypo/runs: fix .metrics. and run again with --resume" "$T/mtypo.err" &&
  [ ! -e "$T/res/mtypo/results.csv" ]
check $? "a misspelt metric: status $st, the nearest name, no results, --resume named: $(head -c 300 "$T/mtypo.err")"
sed -i 's/"wall_nss"/"wall_ns"/' "$T/mtypo.lua"
resumed mtypo
[ "$st" = 0 ] && [ "$runs0" = "$runs1" ] && head -1 "$T/res/mtypo/results.csv" | grep -q ',peak_footprint,wall_ns$'
check $? "metric fixed and resumed: status $st, results.csv has the two metrics, no job run again ($runs0 then $runs1)"
# the same for series, panel, by and yerr: a misspelt series drew every configuration as one
# line, averaged as if they were repetitions, with their spread for error bars (status 0)
for f in series panel by yerr; do
  sed "s/y = \"peak_footprint\",/y = \"peak_footprint\", $f = \"arnea\",/; s/name = \"fig\"/name = \"fig$f\"/" "$T/fig.lua" >"$T/fig$f.lua"
  "$HR" run "$T/fig$f.lua" trace="$T/t.hrt" --out "$T/res" -q 2>"$T/fig$f.err"
  st=$?
  [ "$st" = 1 ] && grep -q "fig$f.lua:1: experiment 'fig$f': figure 'fp': $f = 'arnea' names no column of its rows (did you mean 'arena'?) (columns: .*arena" "$T/fig$f.err" &&
    [ ! -e "$T/res/fig$f/results.csv" ]
  check $? "a figure's $f naming no column is reported with the nearest name and the columns, nothing drawn (status $st): $(head -c 200 "$T/fig$f.err")"
done
# a hyperfine figure without yerr gets hyperfine's own spread as its error bar (the timing is
# copied into every repetition's row: the spread over repetitions was 0, bars of zero width)
if command -v hyperfine >/dev/null; then
  cat >"$T/hf.lua" <<'LUA'
experiment {
  name = "hf", traces = {t = file(params.trace)}, grid = {alloc = {"null", "libc"}}, gc = "none",
  repetitions = 2, hyperfine = {runs = 3, warmup = 0},
  figures = {{name = "t", template = "bars", x = "alloc", y = "hf_mean_s"}},
}
LUA
  "$HR" run "$T/hf.lua" trace="$T/t.hrt" --out "$T/res" -q 2>"$T/hf.err"
  st=$?
  [ "$st" = 0 ] && awk 'NR > 1 { for (i = 3; i <= NF; i += 2) if ($i + 0 > 0) found = 1 } END { exit !found }' "$T/res/hf/figures/t.dat"
  check $? "a hyperfine figure without yerr draws hyperfine's spread (status $st): $(head -c 200 "$T/hf.err") $(tr '\n' ' ' <"$T/res/hf/figures/t.dat" 2>/dev/null | head -c 200)"
else
  ok "# SKIP hyperfine figure error bars: hyperfine is not installed"
fi
# a grid parameter the alloc and gc functions never read changes no run: its rows repeat the
# same replays under different names, a flat line in every figure. Said (also under -q) and kept
# in provenance; a parameter that does change the runs (arena here) is not named
cat >"$T/idle.lua" <<'LUA'
experiment {
  name = "idle", traces = {t = file(params.trace)},
  grid = {arena = {"256K", "1M"}, pool = {"4K", "16K"}},
  alloc = function(p) return "pymalloc:preset=3.11,arena=" .. p.arena end, gc = "none",
}
LUA
run_exp idle
[ "$st" = 0 ] && grep -q "idle.lua:1: experiment 'idle': warning: grid parameter 'pool' changes no run: its values (4K, 16K)" "$T/idle.err" &&
  ! grep -q "parameter 'arena'" "$T/idle.err" && grep -q "grid parameter 'pool' changes no run" "$T/res/idle/provenance.json"
check $? "a grid parameter that changes no run is warned of, in provenance too (status $st): $(head -c 200 "$T/idle.err")"
[ -e "$T/fig.resumed.err" ] && ! grep -q "warning" "$T/fig.resumed.err" && ! grep -q '"warnings"' "$T/res/fig/provenance.json"
check $? "a grid whose every parameter changes the runs gives no warning: $(head -c 200 "$T/fig.resumed.err")"
# panels that do not all have every series: each panel's data lists every series in one order
# (the template gives block s the line type s, and the one key under the panels is drawn from
# one panel). The second panel lacks the first allocator: its lines took the colours the key
# gives the allocators before them
cat >"$T/keys.lua" <<'LUA'
experiment {
  name = "keys", traces = {a = file(params.trace), b = file(params.trace)},
  grid = {alloc = {"pymalloc:preset=2.4", "pymalloc:preset=3.11", "null"}}, gc = "none",
  filter = function(p) return not (p.trace == "b" and p.alloc == "pymalloc:preset=2.4") end,
  figures = {{name = "k", x = function() return 1 end, xlabel = "one", y = "peak_footprint",
              series = "alloc", panel = "trace"}},
}
LUA
run_exp keys
F=$T/res/keys/figures
[ "$st" = 0 ] && [ "$(grep -c ' x y ylow yhigh n$' "$F/k.p1.dat")" = 3 ] &&
  [ "$(grep ' x y ylow yhigh n$' "$F/k.p1.dat")" = "$(grep ' x y ylow yhigh n$' "$F/k.p2.dat")" ] &&
  grep -q '^array nseries\[2\] = \[3, 3\]' "$F/k.gp" && grep -q '^NaN ' "$F/k.p2.dat" && [ -s "$F/k.png" ]
check $? "a panel without some series keeps every series' place, so colours match the shared key (status $st): $(tr '\n' ' ' <"$F/k.p2.dat" 2>/dev/null | head -c 200)"
# a figure whose points average rows of different grid points (here both arena sizes in one
# point, with two repetitions each): said, since its error bars are then not over repetitions;
# the same figure with the arena as its series is not named
cat >"$T/mix.lua" <<'LUA'
experiment {
  name = "mix", traces = {t = file(params.trace)}, grid = {arena = {"256K", "1M"}},
  alloc = function(p) return "pymalloc:preset=3.11,arena=" .. p.arena end, gc = "none",
  repetitions = 2,
  figures = {{name = "m", x = function() return 1 end, xlabel = "one", y = "peak_footprint"},
             {name = "s", x = function() return 1 end, xlabel = "one", y = "peak_footprint",
              series = "arena"}},
}
LUA
run_exp mix
[ "$st" = 0 ] && grep -q "mix.lua:1: experiment 'mix': warning: figure 'm': 1 of its 1 point(s) average runs of different configurations (they differ in arena)" "$T/mix.err" &&
  ! grep -q "figure 's'" "$T/mix.err" && grep -q "figure 'm': 1 of its 1 point" "$T/res/mix/provenance.json"
check $? "a figure averaging different configurations in one point is warned of (status $st): $(head -c 240 "$T/mix.err")"
# a key=value parameter no script reads (a misspelt name) is refused before anything runs, also
# through a suite whose scripts are loaded only after the suite's own script
printf 'suite {"fig.lua"}\n' >"$T/suite.lua"
rm -rf "$T/res/fig"
"$HR" run "$T/suite.lua" trace="$T/t.hrt" sise=full --out "$T/res" -q 2>"$T/param.err"
st=$?
[ "$st" = 1 ] && grep -q "suite.lua: parameter 'sise' is read by no script (those read: trace)" "$T/param.err" &&
  [ ! -e "$T/res/fig" ]
check $? "a parameter no script reads is refused before anything runs (status $st): $(head -c 200 "$T/param.err")"
"$HR" run "$T/suite.lua" trace="$T/t.hrt" --out "$T/res" -q 2>"$T/param2.err"
st=$?
[ "$st" = 0 ] && [ -s "$T/res/fig/results.csv" ]
check $? "the same suite with only the parameters it reads runs (status $st): $(head -c 200 "$T/param2.err")"
# order naming a parameter that is not in the grid (a typo): refused at the declaration
cat >"$T/order.lua" <<'LUA'
experiment {name = "order", traces = {t = file(params.trace)}, grid = {arena = {"256K"}},
            order = {"arnea"}, alloc = "null", gc = "none"}
LUA
run_exp order
[ "$st" = 1 ] && grep -q "order.lua:1: experiment 'order': order\[1\] = arnea names no parameter of the grid (arena)" "$T/order.err"
check $? "order naming no grid parameter is refused at the declaration (status $st): $(head -c 200 "$T/order.err")"
# two experiments of one name would write one folder: refused before anything runs
cat >"$T/dup.lua" <<'LUA'
experiment {name = "dup", traces = {t = file(params.trace)}, alloc = "null", gc = "none"}
experiment {name = "dup", traces = {t = file(params.trace)}, alloc = "libc", gc = "none"}
LUA
run_exp dup
grep -q "dup.lua:2: experiment 'dup' is declared twice (first at .*dup.lua:1)" "$T/dup.err" &&
  [ "$st" = 1 ] && [ ! -e "$T/res/dup" ]
check $? "a name declared twice: status $st, refused before running: $(head -c 200 "$T/dup.err")"
printf 'experiment {name = "..", traces = {t = file(params.trace)}, alloc = "null"}\n' >"$T/dots.lua"
run_exp dots
grep -q "dots.lua:1: experiment: name '..' is not a folder name" "$T/dots.err" && [ "$st" = 1 ]
check $? "the name '..' is refused (status $st): $(head -c 200 "$T/dots.err")"
# a trace that is not one: status 2, the script's line and the trace's name
printf 'experiment {name = "notrace", traces = {t = file("/etc/passwd")}, alloc = "null"}\n' >"$T/nt.lua"
"$HR" run "$T/nt.lua" --out "$T/res" -q 2>"$T/nt.err"
st=$?
grep -q "nt.lua:1: experiment 'notrace': trace 't': /etc/passwd: byte 0: wrong magic" "$T/nt.err" &&
  [ "$st" = 2 ] && ! grep -q "experiment.lua\]" "$T/nt.err"
check $? "a file that is not a trace: status $st, located in the script: $(head -c 200 "$T/nt.err")"
# a recorded program that fails: its status in the message, exit 3
printf 'import sys\nsys.exit(3)\n' >"$T/exit3.py"
printf 'experiment {name = "rec3", traces = {t = record("exit3.py")}, alloc = "null"}\n' >"$T/rec3.lua"
"$HR" run "$T/rec3.lua" --out "$T/res" -q 2>"$T/rec3.err"
st=$?
if grep -q "rec3.lua:1: experiment 'rec3': cannot make trace 't'" "$T/rec3.err" &&
   grep -q "exit status 3" "$T/rec3.err" && [ "$st" = 3 ]; then
  ok "a recorded program that exits 3: status $st, the message says so"
elif grep -q "recorder is not built\|not built in" "$T/rec3.err"; then
  ok "# SKIP the recorder is not built in"
else
  not_ok "a recorded program that exits 3: status $st: $(head -c 300 "$T/rec3.err")"
fi
# error() with a table, and a results folder that cannot be made
printf 'local x = 1\nerror({})\n' >"$T/tab.lua"
"$HR" run "$T/tab.lua" --out "$T/res" -q 2>"$T/tab.err"
st=$?
grep -q "tab.lua:2: error object is a table" "$T/tab.err" && [ "$st" = 1 ]
check $? "error({}) is reported with its place (status $st): $(head -c 200 "$T/tab.err")"
: >"$T/afile"
printf 'experiment {name = "nodir", traces = {t = file(params.trace)}, alloc = "null"}\n' >"$T/nodir.lua"
"$HR" run "$T/nodir.lua" trace="$T/t.hrt" --out "$T/afile/sub" -q 2>"$T/nodir.err"
st=$?
grep -q "nodir.lua:1: experiment 'nodir': cannot make its results folder" "$T/nodir.err" && [ "$st" = 3 ]
check $? "a results folder that cannot be made: status $st, located in the script: $(head -c 200 "$T/nodir.err")"
# the results folder's own I/O: status 3, located in the script, naming the file (even as root:
# a directory where a file must be, a file where a directory must be)
mkdir -p "$T/res/jl/jobs.log" "$T/res/rf" "$T/res/tr/traces/t.hrt"
: >"$T/res/rf/runs"; : >"$T/res/tr/traces/t.hrt/x"
for nm in jl rf tr; do
  printf 'experiment {name = "%s", traces = {t = gen("churn", {events = 1000})}, alloc = "null", gc = "none"}\n' "$nm" >"$T/$nm.lua"
  "$HR" run "$T/$nm.lua" --out "$T/res" -q --resume 2>"$T/$nm.err"
  st=$?
  case $nm in
    jl) want="jl.lua:1: experiment 'jl': cannot prepare its results folder: cannot append to the job log: $T/res/jl/jobs.log" ;;
    rf) want="rf.lua:1: experiment 'rf': cannot prepare its results folder: $T/res/rf/runs exists and is not a directory" ;;
    tr) want="tr.lua:1: experiment 'tr': cannot make trace 't': cannot move it to $T/res/tr/traces/t.hrt" ;;
  esac
  grep -qF "$want" "$T/$nm.err" && [ "$st" = 3 ]
  check $? "results folder I/O ($nm): status $st, the script's line and the file: $(head -c 200 "$T/$nm.err")"
done
rm -rf "$T/res/jl" "$T/res/rf" "$T/res/tr"

# {==== a made trace damaged on disk is made again (a file(...) trace is reported) ====
cat >"$T/dmg.lua" <<'LUA'
experiment {
  name = "dmg", traces = {c = gen("churn", {events = 60000}), f = file(params.trace)},
  grid = {trace = {"c", "f"}}, alloc = "null", gc = "none", metrics = {"peak_live_blocks"},
}
LUA
run_exp dmg
cp "$T/res/dmg/results.csv" "$T/dmg1.csv" 2>/dev/null
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(3000); f.write(b"\xff" * 64)' "$T/res/dmg/traces/c.hrt"
"$HR" run "$T/dmg.lua" trace="$T/t.hrt" --out "$T/res" 2>"$T/dmg2.err"
st2=$?
[ "$st" = 0 ] && [ "$st2" = 0 ] && grep -q "trace 'c' does not read (.*c.hrt: frame 0 at byte .*): making it again" "$T/dmg2.err" &&
  "$HR" info "$T/res/dmg/traces/c.hrt" >/dev/null && cmp -s "$T/dmg1.csv" "$T/res/dmg/results.csv"
check $? "a damaged generated trace is made again and gives the same results (status $st then $st2): $(grep 'does not read' "$T/dmg2.err" | head -c 200)"
cp "$T/t.hrt" "$T/tdmg.hrt"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(3000); f.write(b"\xff" * 64)' "$T/tdmg.hrt"
"$HR" run "$T/dmg.lua" trace="$T/tdmg.hrt" --out "$T/res" -q 2>"$T/dmg3.err"
st=$?
[ "$st" = 2 ] && grep -q "dmg.lua:2: experiment 'dmg': trace 'f': .*tdmg.hrt: " "$T/dmg3.err" && cmp -s "$T/dmg1.csv" "$T/res/dmg/results.csv"
check $? "a damaged file(...) trace is the user's: reported with status 2, earlier results kept (status $st): $(head -c 200 "$T/dmg3.err")"

# {==== the temporary files a SIGKILLed driver can leave are removed at the next start ====
# (made by hand: a kill -9 in the middle of a write is a matter of luck)
echo partial >"$T/res/dmg/runs/0123456789abcdef.json.tmp.99999"
echo partial >"$T/res/dmg/traces/c.info.json.tmp.99999"
echo keep >"$T/res/dmg/runs/notes.tmp.txt"
"$HR" run "$T/dmg.lua" trace="$T/t.hrt" --out "$T/res" -q --resume 2>"$T/left.err"
st=$?
[ "$st" = 0 ] && [ ! -e "$T/res/dmg/runs/0123456789abcdef.json.tmp.99999" ] &&
  [ ! -e "$T/res/dmg/traces/c.info.json.tmp.99999" ] && [ -e "$T/res/dmg/runs/notes.tmp.txt" ]
check $? "a run removes TARGET.tmp.PID leftovers in runs/ and traces/, nothing else (status $st)"

# {==== a fresh run (no --resume) redoes everything ====
"$HR" run "$T/exp.lua" trace="$T/t.hrt" --jobs 2 --out "$T/res" 2>"$T/fresh.err"
check $? "a fresh run succeeds"
grep -q "starting afresh" "$T/fresh.err" && [ "$(awk '/^run /{r++} END{print r}' "$LOG")" -ge 1 ]
check $? "a fresh run says that it discards the earlier runs"
tap_end

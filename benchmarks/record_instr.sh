#!/usr/bin/env bash
# record_instr.sh: what recording costs in instructions (a benchmark, not a test).
# This VM's two vCPUs change speed from minute to minute (docs/recorder.md, "Cost"), so time
# ratios need the paired runs of record_paired.py. Instruction counts do not move with the
# machine: this runs the program once under callgrind in each configuration, in one sitting,
# and prints the instructions of the program's process (the interpreter with whatever is
# preloaded; the recorder's writer thread included), their ratio to the plain run, and how many
# of them ran in heapreplay's own code (the recorder's module, or hook_floor.c's):
#
#   plain                 /usr/bin/python3.11 PROGRAM
#   floor:forward ...     hook_floor.c's levels (what the least recorder of that design does)
#   record alloc, graph   heapreplay record --mode alloc|graph -- PROGRAM
#
# Instructions are not time (a cache miss costs none, and the writer's worker may run on the
# other vCPU), though on this workload they track pinned CPU time closely (docs/recorder.md);
# they compare variants exactly, and show which part of the recorder's own code grew or shrank.
# Usage: benchmarks/record_instr.sh [BUILD_DIR]   (default build)
#   PROG='SCRIPT ARGS'  the program (default: benchmarks/record_workload.py 50)
# Needs valgrind (apt-get install valgrind). About two minutes with the default program.
# shellcheck disable=SC2086 # $PROG's words are meant to split, everywhere below
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
HR=$B/cli/heapreplay
FLOOR=$(realpath -m "$B/benchmarks/libhr_hookfloor.so")
PY=/usr/bin/python3.11
PROG=${PROG:-benchmarks/record_workload.py 50}
for t in valgrind callgrind_annotate; do
  command -v $t >/dev/null || { echo "record_instr.sh: needs $t (apt-get install valgrind)" >&2; exit 1; }
done
if [ ! -x "$HR" ] || [ ! -f "$FLOOR" ]; then
  echo "record_instr.sh: build first (scripts/build.sh $B)" >&2
  exit 1
fi
# scratch space for callgrind's files and the traces, removed at exit
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_recinstr.XXXXXX")
trap 'rm -rf "$T"' EXIT
unset PYTHONMALLOC PYTHONDEVMODE

# run NAME CMD...: callgrind over the command and its children; prints "NAME TOTAL OWN"
run() {
  local name=$1
  shift
  mkdir "$T/$name"
  PYTHONHASHSEED=0 valgrind --tool=callgrind --trace-children=yes \
    --callgrind-out-file="$T/$name/cg.%p" "$@" >/dev/null 2>"$T/$name/err" &
  local pid=$! st=0 tot
  wait $pid || st=$?
  if [ $st != 0 ]; then
    echo "record_instr.sh: '$name' failed (exit $st):" >&2
    grep -v '^==' "$T/$name/err" | tail -5 >&2
    exit 1
  fi
  # the interpreter's process: the one started (env and heapreplay record exec it in the same
  # process, whose profile is the interpreter's); children the program starts have their own
  local f="$T/$name/cg.$pid"
  grep -q '^cmd: .*python3\.11' "$f" 2>/dev/null ||
    { echo "record_instr.sh: '$name': process $pid's profile is not python3.11's" >&2; exit 1; }
  tot=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  # heapreplay's own code: the functions whose source is in this tree, named through the build
  # folder (BUILD/../recorder/...), inlined headers included
  callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null |
    grep -E '\.\./(recorder|traces|common|benchmarks)/[^ ]*:' >"$T/$name/own" || true
  own=$(awk '{gsub(",", "", $1); if ($1 ~ /^[0-9]+$/) s += $1} END {print s + 0}' "$T/$name/own")
  if [ "$name" != plain ] && [ "$own" = 0 ]; then
    echo "record_instr.sh: '$name': none of heapreplay's code found in the profile (preload failed?)" >&2
    exit 1
  fi
  echo "$name $tot $own"
}

{
  run plain "$PY" $PROG
  for lv in forward observe map encode traverse; do
    run "floor:$lv" env HR_HOOK_FLOOR=$lv LD_PRELOAD="$FLOOR" "$PY" $PROG
  done
  for m in alloc graph; do
    run "record:$m" "$HR" record --mode $m -o "$T/$m.hrt" -- $PROG
  done
} >"$T/rows"

echo "program: $PROG (instructions of the interpreter's process, callgrind)"
awk 'NR == 1 {base = $2}
     NR == 1 {printf "%-16s %15s %8s %15s %10s\n", "variant", "instructions", "x plain", "own code", "own/plain"}
     {printf "%-16s %15.0f %7.2fx %15.0f %9.2fx\n", $1, $2, $2 / base, $3, $3 / base}' "$T/rows"
for m in alloc graph; do
  echo
  echo "record:$m, the recorder's own code by function (file:function, inlined headers apart):"
  head -12 "$T/record:$m/own" | sed -E 's/ \[[^]]*\]$//; s#[^ ]*\.\./##; s/^/  /'
done

#!/usr/bin/env bash
# record_bytes.sh: how compact recorded traces are on real programs (a benchmark, not a test).
# The cost benchmarks (record.sh, record_paired.py) measure bytes per event on their workload,
# which repeats one round of churn 300 times and so compresses far better than real code (about
# 0.01 bytes per event in allocation mode). This records programs nobody here wrote, in both
# modes, and prints each trace's events, file size and bytes per event, compressed and not.
# Usage: benchmarks/record_bytes.sh [BUILD_DIR]   (default build); LEVEL=N: zstd level (default 3)
# test.test_enum runs only where Debian's libpython3.11-testsuite is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
HR=$B/cli/heapreplay
PY=/usr/bin/python3.11
# scratch space for each recording (one trace at a time), removed at exit
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_recbytes.XXXXXX")
trap 'rm -rf "$T"' EXIT
[ -x "$HR" ] || { echo "record_bytes.sh: build first (scripts/build.sh $B)" >&2; exit 1; }
LV=()
[ -n "${LEVEL:-}" ] && LV=(--level "$LEVEL")
progs=("tests/record/workloads/stdlib_mix.py"
       "tests/record/workloads/json_re_cycles.py"
       "-m calendar 2026"
       "benchmarks/record_workload.py 300")
if "$PY" -c 'import test.test_enum' 2>/dev/null; then
  progs+=("-m unittest -q test.test_enum")
fi
printf '%-40s %-5s %12s %12s %10s %10s\n' program mode events "file bytes" "B/event" "raw B/ev"
for p in "${progs[@]}"; do
  for m in alloc graph; do
    # shellcheck disable=SC2086 # the program's words are meant to split
    if ! PYTHONHASHSEED=0 "$HR" record --mode $m "${LV[@]}" -o "$T/t.hrt" -- $p \
        >/dev/null 2>"$T/err"; then
      echo "record_bytes.sh: recording '$p' ($m) failed:" >&2
      tail -5 "$T/err" >&2
      exit 1
    fi
    # "events  N (X bytes/event in the file, Y before compression)"
    "$HR" info "$T/t.hrt" | awk -v p="$p" -v m=$m -v sz="$(stat -c %s "$T/t.hrt")" '
      /^events/ { n = $2; gsub(/,/, "", n); x = $3; sub(/^\(/, "", x); y = $(NF - 2)
                  printf "%-40s %-5s %12d %12d %10s %10s\n", p, m, n, sz, x, y }'
  done
done

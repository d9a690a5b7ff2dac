#!/usr/bin/env bash
# footprint_test.sh: the native recorder on a real C program, replayed with the libc allocator:
# the replay's peak footprint must be within 10% of the program's own peak RSS growth (TAP).
# Usage: footprint_test.sh HEAPREPLAY FOOTPRINT_PROGRAM
set -u
HR=$1 PROG=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_footprint.XXXXXX")
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/../tap.sh"
# within A B PCT: |A - B| <= PCT% of B
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= b * p / 100) }'; }

# The program's own measure, from plain runs (a recorded run's RSS also holds the recorder's
# tables): VmHWM minus VmRSS at the start of main. The smallest of three runs.
rss=
for _ in 1 2 3; do
  r=$("$PROG") || { not_ok "the program runs"; echo "1..$n"; exit 1; }
  if [ -z "$rss" ] || [ "$r" -lt "$rss" ]; then rss=$r; fi
done
"$HR" record --native -o "$T/fp.hrt" -- "$PROG" >/dev/null 2>"$T/rec.err"
st=$?
if [ $st = 0 ] && "$HR" info "$T/fp.hrt" | grep -q '^status *complete'; then
  ok "recorded natively, trace complete"
else
  not_ok "recorded natively, trace complete (exit $st: $(head -c 300 "$T/rec.err"))"
fi
"$HR" replay "$T/fp.hrt" --alloc libc --json "$T/fp.json" -q >/dev/null 2>"$T/rep.err"
fp=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["allocator"]["peak_footprint"])' "$T/fp.json" 2>/dev/null)
if [ -n "$fp" ] && within "$fp" "$rss" 10; then
  ok "replayed with libc: peak footprint $fp bytes, the program's peak RSS growth $rss bytes (within 10%)"
else
  not_ok "replayed with libc: peak footprint ${fp:-?} bytes, the program's peak RSS growth $rss bytes (not within 10%) $(head -c 300 "$T/rep.err")"
fi
# Control: the same comparison against the program at twice the size must fail, so the window
# is narrow enough to notice a trace or an accounting that is off by a real amount.
rss2=$("$PROG" 2)
if [ -n "$fp" ] && ! within "$fp" "$rss2" 10; then
  ok "control: against the program at twice the size ($rss2 bytes) the check fails"
else
  not_ok "control: against the program at twice the size ($rss2 bytes) the check should fail"
fi
tap_end

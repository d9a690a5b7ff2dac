#!/usr/bin/env bash
# cli_test.sh: end-to-end tests of the heapreplay CLI (TAP).
# Usage: cli_test.sh HEAPREPLAY SRCDIR [NATIVE(0|1)]: NATIVE=0 (sanitizer builds, whose preload
# library cannot be preloaded into an uninstrumented program) skips what runs the native recorder.
set -u
HR=$1
SRC=$2
NATIVE=${3:-1}
DATA=$SRC/tests/data
T=$(mktemp -d "${TMPDIR:-/tmp}/hr_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/tap.sh"
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }

# expect NAME STATUS REGEX CMD...: the command exits with STATUS and its stderr matches REGEX.
expect() {
  local name=$1 status=$2 re=$3
  shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" = "$status" ] && grep -Eq -- "$re" "$T/err"; then
    ok "$name (exit $got: $(head -c 300 "$T/err" | tr '\n' ' '))"
  else
    not_ok "$name: exit $got (want $status), stderr: $(head -c 400 "$T/err")"
  fi
}

# {==== Round trips of the hand-written traces ====
for f in alloc-basic graph-basic; do
  "$HR" pack "$DATA/$f.txt" -o "$T/$f.hrt" && "$HR" dump "$T/$f.hrt" >"$T/$f.txt"
  cmp -s "$DATA/$f.txt" "$T/$f.txt"; check $? "$f: text -> binary -> text is identical"
  "$HR" pack "$T/$f.txt" -o "$T/$f.2.hrt" && cmp -s "$T/$f.hrt" "$T/$f.2.hrt"
  check $? "$f: binary -> text -> binary is byte-identical"
done
"$HR" pack "$DATA/commented.txt" -o "$T/c.hrt" && "$HR" dump "$T/c.hrt" >"$T/c.txt"
printf 'heapreplay-trace 1 alloc\nalloc 0 16 obj\nfree 0\n' | cmp -s - "$T/c.txt"
check $? "comments, blank lines and indentation are accepted and dropped"
"$HR" dump "$T/alloc-basic.hrt" --limit 5 | tail -n 1 | grep -qx 'alloc 0 16 obj'
check $? "dump --limit 5 stops after five events"

# {==== info ====
"$HR" info "$T/alloc-basic.hrt" >"$T/info" 2>&1
check $? "info exits 0 on a good trace"
grep -q '^events        30 ' "$T/info" && grep -q 'status        complete' "$T/info" &&
  grep -q 'checksums all verified' "$T/info" && grep -q 'meta          python = 3.11.2' "$T/info" &&
  grep -q '^  free        4$' "$T/info" && grep -q '^blocks (ids)  7$' "$T/info"
check $? "info reports events, per-kind counts, blocks, metadata and checksum status"
# the longest kind name still has a space before its count (it ran into it: "gc survivors58")
printf 'heapreplay-trace 1 alloc\nalloc 0 32 obj gc\ngc begin 0\ngc end 0 1 0\ngc survivors 3 10\nfree 0\n' >"$T/sv.txt"
"$HR" pack "$T/sv.txt" -o "$T/sv.hrt" && "$HR" info "$T/sv.hrt" | grep -q '^  gc survivors 1$'
check $? "info: the survivor records counted, apart from their name"
grep -q '^peak live     7 blocks, 5,340 bytes [(]at event 12' "$T/info"
check $? "info reports the peak live blocks and bytes ($(grep 'peak live' "$T/info"))"
"$HR" info "$T/graph-basic.hrt" | grep -q 'kind graph'
check $? "info names the trace kind"
# control characters in a trace's strings (here an escape sequence and a newline in a metadata
# value, and in a key given twice) reach the terminal escaped, as \xNN
printf 'heapreplay-trace 1 alloc\nmeta command "a\\x1b[2Jb\\nc"\n' >"$T/ctl.txt"
"$HR" pack "$T/ctl.txt" -o "$T/ctl.hrt" && "$HR" info "$T/ctl.hrt" >"$T/info" 2>&1
grep -qx 'meta          command = a\\x1b\[2Jb\\x0ac' "$T/info" && ! grep -q "$(printf '\033')" "$T/info"
check $? "info shows control characters of metadata escaped ($(grep meta "$T/info"))"
printf 'heapreplay-trace 1 alloc\nmeta k\033[31m "1"\nmeta k\033[31m "2"\n' >"$T/ctl2.txt"
expect "an error message quoting a trace's string escapes its control characters" 2 \
  "ctl2.txt:3 \(byte [0-9]+\): metadata key 'k\\\\x1b\\[31m' given twice" "$HR" pack "$T/ctl2.txt" -o "$T/x.hrt"

# {==== Bad text input: exit 2, file:line (byte), event, what ====
expect "double free" 2 'double-free.txt:4 \(byte 47\), event 2: free of id 0 that is not live \(double free\)' \
  "$HR" pack "$DATA/bad/double-free.txt" -o "$T/x.hrt"
expect "id never allocated" 2 'never-allocated.txt:3 \(byte 40\), event 1: free of id 3 that was never allocated' \
  "$HR" pack "$DATA/bad/never-allocated.txt" -o "$T/x.hrt"
expect "size overflow" 2 'size-overflow.txt:2 .*event 0: size overflow' \
  "$HR" pack "$DATA/bad/size-overflow.txt" -o "$T/x.hrt"
expect "number out of range" 2 'huge-number.txt:2 .*number out of range' \
  "$HR" pack "$DATA/bad/huge-number.txt" -o "$T/x.hrt"
expect "alloc skipping an id" 2 'skipped-id.txt:3 .*alloc names id 2 but the next id is 1' \
  "$HR" pack "$DATA/bad/skipped-id.txt" -o "$T/x.hrt"
expect "graph event in an allocation-only trace" 2 'incref event in an allocation-only trace' \
  "$HR" pack "$DATA/bad/graph-event-in-alloc.txt" -o "$T/x.hrt"
expect "explicit free of an object" 2 'explicit free of object 0' \
  "$HR" pack "$DATA/bad/free-of-object.txt" -o "$T/x.hrt"
expect "unknown event" 2 'unknown-event.txt:3 .*unknown event' \
  "$HR" pack "$DATA/bad/unknown-event.txt" -o "$T/x.hrt"
expect "missing header line" 2 'no-header.txt:1 .*not a heapreplay text trace' \
  "$HR" pack "$DATA/bad/no-header.txt" -o "$T/x.hrt"
expect "text version 2" 2 'version2.txt:1 .*version 2' \
  "$HR" pack "$DATA/bad/version2.txt" -o "$T/x.hrt"
expect "unterminated string" 2 'bad-string.txt:2 .*unterminated string' \
  "$HR" pack "$DATA/bad/bad-string.txt" -o "$T/x.hrt"
[ ! -e "$T/x.hrt" ] && [ -z "$(ls "$T" | grep '\.tmp\.')" ]
check $? "failed packs leave no output and no temporary files"

# {==== Bad binary input ====
G=$T/g.hrt
"$HR" gen random events=20000 kind=graph seed=2 --frame-size 4K -o "$G"
size=$(stat -c %s "$G")
head -c $((size / 2)) "$G" >"$T/trunc.hrt"
expect "truncated file (info)" 2 'trunc.hrt: cut short: frame [0-9]+ at byte [0-9]+ is incomplete.*readable up to event [0-9]+' \
  "$HR" info "$T/trunc.hrt"
grep -q 'status        CUT SHORT' "$T/out"; check $? "info still describes the readable part of a cut trace"
expect "truncated file (dump)" 2 'cut short' "$HR" dump "$T/trunc.hrt"
# --limit prints N events but still reads and checks the rest: a cut trace is still an error
expect "truncated file (dump --limit 2)" 2 'cut short' "$HR" dump "$T/trunc.hrt" --limit 2
echo old >"$T/keep-limit.txt"
expect "truncated file (dump --limit 2 -o FILE)" 2 'cut short' "$HR" dump "$T/trunc.hrt" --limit 2 -o "$T/keep-limit.txt"
[ "$(cat "$T/keep-limit.txt")" = old ]; check $? "... and leaves the existing -o file as it was"
h0=$("$HR" dump "$T/trunc.hrt" --limit 0 --partial 2>/dev/null | wc -l)
h2=$("$HR" dump "$T/trunc.hrt" --limit 2 --partial 2>"$T/err" | wc -l)
[ "$h2" = $((h0 + 2)) ] && grep -q 'warning: .*cut short' "$T/err"
check $? "dump --limit 2 --partial of a cut trace prints two events and warns"
"$HR" dump --partial "$T/trunc.hrt" >"$T/partial.txt" 2>"$T/err"
[ $? = 0 ] && grep -q 'warning: .*cut short' "$T/err" && [ "$(wc -l <"$T/partial.txt")" -gt 1000 ]
check $? "dump --partial prints the complete frames of a cut trace and exits 0"
expect "truncated file (refcounts)" 2 'cut short' "$HR" refcounts "$T/trunc.hrt"
"$HR" refcounts --partial "$T/trunc.hrt" >"$T/rc.txt" 2>"$T/err"
[ $? = 0 ] && grep -q 'warning: the trace was cut short; counted what it holds' "$T/err" && grep -q '^objects' "$T/rc.txt"
check $? "refcounts --partial of a cut trace counts what it holds and warns (as replay and dump do)"
# refcounts' table: counts up to 16 and the three largest have a row each, the ones between are
# summed into one row; the rows add up to every object (object i reaches count i + 1)
{ echo 'heapreplay-trace 1 graph'
  for i in $(seq 0 29); do
    echo "alloc $i 32 obj object"
    for _ in $(seq 1 "$i"); do echo "incref $i"; done
  done; } >"$T/rc30.txt"
"$HR" pack "$T/rc30.txt" -o "$T/rc30.hrt" && "$HR" refcounts "$T/rc30.hrt" >"$T/rc30.out" &&
  awk '/^largest count  / {t = 1; next} t && NF == 0 {t = 0} t {n += $2; rows = rows " " $1}
       END {exit !(n == 30 && rows == " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17-27 28 29 30")}' \
    "$T/rc30.out"
check $? "refcounts' table sums the counts between 16 and the three largest into one row (17-27)"
cp "$G" "$T/flip.hrt"
printf '\x5a' | dd of="$T/flip.hrt" bs=1 seek=$((size / 3)) conv=notrunc status=none
expect "flipped bits" 2 'flip.hrt: frame [0-9]+ at byte [0-9]+: corrupt: .*; intact up to event [0-9]+ \([0-9]+ frames? before it\)' "$HR" info "$T/flip.hrt"
expect "wrong magic, a text trace" 2 'byte 0: wrong magic, not a heapreplay trace \(it looks like a text trace: .heapreplay pack. it first\)' "$HR" info "$DATA/alloc-basic.txt"
# a zstd frame's magic number and some bytes (the zstd command is not a build dependency)
{ printf '\x28\xb5\x2f\xfd'; head -c 64 "$T/alloc-basic.hrt"; } >"$T/twice.zst"
expect "wrong magic, a zstd stream" 2 'byte 0: wrong magic, not a heapreplay trace \(it is a zstd stream' "$HR" info "$T/twice.zst"
head -c 4096 /dev/urandom >"$T/random.bin"
printf '\001' | dd of="$T/random.bin" bs=1 count=1 conv=notrunc status=none
# (more than 512 bytes of comments first: the hint once looked no further)
{ for i in $(seq 1 40); do echo "# comment line $i, long enough to pass 512 bytes in all"; done
  echo; cat "$DATA/alloc-basic.txt"; } >"$T/commented.txt"
expect "wrong magic, a text trace after comments" 2 'commented.txt: byte 0: wrong magic, not a heapreplay trace \(it looks like a text trace' "$HR" info "$T/commented.txt"
printf '# A title\n\nSome prose.\n' >"$T/notes.md"
expect "wrong magic, Markdown is not taken for a text trace" 2 'notes.md: byte 0: wrong magic, not a heapreplay trace$' "$HR" info "$T/notes.md"
expect "wrong magic, neither" 2 'random.bin: byte 0: wrong magic, not a heapreplay trace$' "$HR" info "$T/random.bin"
python3 - "$T/alloc-basic.hrt" "$T/v2.hrt" <<'PY'
import sys, zlib
b = bytearray(open(sys.argv[1], 'rb').read())
plen = int.from_bytes(b[4:8], 'little')
b[16] = 2
b[8 + plen - 4:8 + plen] = zlib.crc32(bytes(b[8:8 + plen - 4])).to_bytes(4, 'little')
open(sys.argv[2], 'wb').write(b)
PY
expect "unknown version" 2 'v2.hrt: byte 16: trace format version 2' "$HR" info "$T/v2.hrt"
cp "$T/alloc-basic.hrt" "$T/garbage.hrt"; printf 'garbage' >>"$T/garbage.hrt"
expect "garbage after the end" 2 'garbage.hrt: byte [0-9]+: garbage after the end of the trace' \
  "$HR" dump "$T/garbage.hrt"
cat "$T/alloc-basic.hrt" "$T/alloc-basic.hrt" >"$T/twice.hrt"
expect "two traces concatenated" 2 'garbage after the end' "$HR" info "$T/twice.hrt"
expect "missing file" 3 'cannot open' "$HR" info "$T/nope.hrt"

# {==== replay ====
"$HR" pack "$DATA/graph-basic.txt" -o "$T/gb.hrt"
for g in refcount marksweep generational none; do
  "$HR" replay "$T/gb.hrt" --alloc libc --gc $g --check -q >"$T/rep.txt" 2>&1
  check $? "replay with $g exits 0 on a good graph trace"
done
"$HR" replay "$T/gb.hrt" --alloc libc --gc refcount -q | grep -q 'leaked        3 objects, 168 B'
expect "an option given twice" 1 "option '--timeline' given twice" \
  "$HR" replay "$T/gb.hrt" -q --timeline "$T/a.csv" --timeline="$T/b.csv"
[ ! -e "$T/a.csv" ] && [ ! -e "$T/b.csv" ]; check $? "... and nothing is written"
# the documented switches take 0 or 1; anything else is refused, not read as "on"
expect "HEAPREPLAY_LANE with a value other than 0 or 1" 1 "HEAPREPLAY_LANE is 'off': it takes 0 \(off\) or 1 \(on\)" \
  env HEAPREPLAY_LANE=off "$HR" replay "$T/gb.hrt" -q
expect "HEAPREPLAY_READ_THREADS with a value other than 0 or 1" 1 "HEAPREPLAY_READ_THREADS is 'yes': it takes 0" \
  env HEAPREPLAY_READ_THREADS=yes "$HR" info "$T/gb.hrt"
# an output that is one of the command's inputs (however spelled) is refused before any work, and
# the input stays as it was (dump -o of its own trace replaced the trace with its text)
cp "$T/gb.hrt" "$T/self.hrt" && cp "$T/gb.hrt" "$T/self.orig" && ln -sf self.hrt "$T/self-link.hrt"
cp "$DATA/graph-basic.txt" "$T/self.txt" && cp "$T/self.txt" "$T/self-txt.orig"
cp "$SRC/scripts/workloads/json-like.lua" "$T/self.lua" && cp "$T/self.lua" "$T/self-lua.orig"
for c in "dump:-o:$T/self.hrt:$T/self-link.hrt" "replay:--json:$T/self.hrt:$T/./self.hrt" \
         "replay:--timeline:$T/self.hrt:$T/self.hrt" "validate:--json:$T/self.hrt:$T/self-link.hrt" \
         "refcounts:--json:$T/self.hrt:$T/self.hrt" "pack:-o:$T/self.txt:$T/self.txt" \
         "gen:-o:$T/self.lua:$T/self.lua"; do
  IFS=: read -r cmd opt input out <<<"$c"
  "$HR" $cmd "$input" $opt "$out" >/dev/null 2>"$T/self.err" ||
    [ $? = 1 ] && grep -q -- "$opt .* is the input .*: the output would take its place" "$T/self.err" &&
    cmp -s "$T/self.hrt" "$T/self.orig" && cmp -s "$T/self.txt" "$T/self-txt.orig" &&
    cmp -s "$T/self.lua" "$T/self-lua.orig" && [ -L "$T/self-link.hrt" ]
  check $? "$cmd $opt naming its own input is refused, the input kept: $(head -c 200 "$T/self.err")"
done
check $? "refcount reports the leaked cycle (3 objects, 168 B)"
"$HR" gen seed-cycle n=20000 work=20000 -o "$T/sc.hrt"
for g in refcount marksweep generational; do
  "$HR" replay "$T/sc.hrt" --alloc libc --gc $g -q --json "$T/sc-$g.json" >/dev/null
done
python3 - "$T" <<'PY'
import json, sys
d = sys.argv[1]
r = {g: json.load(open(f"{d}/sc-{g}.json")) for g in ("refcount", "marksweep", "generational")}
assert r["refcount"]["schema"] == "heapreplay-replay/1"
assert r["refcount"]["collector"]["objects_leaked"] == 40002, r["refcount"]["collector"]
for g in ("marksweep", "generational"):
    c = r[g]["collector"]
    assert c["objects_by_tracing"] >= 2 and c["objects_leaked"] < 40002 - 2, (g, c)
assert r["generational"]["collector"]["objects_leaked"] == 0
assert r["refcount"]["provenance"]["trace_crc32"] and r["refcount"]["provenance"]["commit"]
PY
check $? "seed-cycle: the JSON says refcount leaks both lists, marksweep and generational reclaim them"
"$HR" replay "$T/sc.hrt" --alloc libc --gc generational -q --timeline "$T/tl.csv" --every 10000 >/dev/null
head -n 1 "$T/tl.csv" | grep -qx 'event,live_objects,live_blocks,live_bytes,footprint,rss,gc_ns' &&
  [ "$(wc -l <"$T/tl.csv")" -ge 10 ]
check $? "--timeline writes a CSV sampled every N events"
expect "unknown collector" 1 "unknown collector 'nope' \(did you mean 'none'\?\) \(known: generational, refcount, marksweep, none" \
  "$HR" replay "$T/gb.hrt" --gc nope
expect "unknown collector parameter" 1 "collector 'marksweep' has no parameter 'speed'" \
  "$HR" replay "$T/gb.hrt" --gc marksweep:speed=3
expect "collector key given twice" 1 "collector spec 'generational:t0=5,t0=6' gives 't0' twice" \
  "$HR" replay "$T/gb.hrt" --gc generational:t0=5,t0=6
expect "generational threshold positional and by key" 1 "threshold t0 given twice \(positional value '5' and t0=6\)" \
  "$HR" replay "$T/gb.hrt" --gc generational:5,700,t0=6
expect "allocator key given twice" 1 "allocator spec 'pymalloc:preset=3.11,preset=2.4' gives 'preset' twice" \
  "$HR" replay "$T/gb.hrt" --alloc pymalloc:preset=3.11,preset=2.4
expect "generator key given twice" 1 "generator spec 'churn:events=10,events=20' gives 'events' twice" \
  "$HR" gen churn events=10 events=20 -o "$T/x.hrt"
expect "unknown allocator" 1 "unknown allocator 'nope'" "$HR" replay "$T/gb.hrt" --alloc nope
# the cpython backend's lib= : a library that does not load and one that is not libpython are
# the same mistake (exit 1; the second used to exit 3)
if "$HR" allocators 2>/dev/null | grep -q '^cpython'; then
  expect "cpython lib= that does not load" 1 "cpython: cannot load $T/none.so" \
    "$HR" replay "$T/gb.hrt" --alloc "cpython:lib=$T/none.so" --gc none
  libc=$(ldd "$HR" | awk '$1 ~ /^libc\.so/ {print $3}')
  # arena= and pool= must be the library's own sizes (obmalloc maps arenas of its size whatever
  # we say; a size we did not expect was served by an uncounted mmap: no arenas, silently)
  expect "cpython arena= that is not the library's" 1 "cpython: arena=2M, but .* maps arenas of 1024 KiB: arena= must match the library" \
    "$HR" replay "$T/gb.hrt" --alloc "cpython:arena=2M" --gc none
  expect "cpython pool= that is not the library's" 1 "cpython: pool=4K, but .* uses pools of 16 KiB" \
    "$HR" replay "$T/gb.hrt" --alloc "cpython:pool=4K" --gc none
  expect "cpython lib= that is not libpython" 1 "cpython: $libc is not a CPython 3 library \(no PyMem_RawMalloc\)" \
    "$HR" replay "$T/gb.hrt" --alloc "cpython:lib=$libc" --gc none
else
  for i in 1 2 3 4; do ok "# SKIP cpython lib=, arena=, pool= errors: built without the cpython allocator"; done
fi
expect "replay of a cut trace" 2 'cut short' "$HR" replay "$T/trunc.hrt" --alloc libc -q
"$HR" replay "$T/trunc.hrt" --alloc libc --gc refcount --partial -q >/dev/null 2>"$T/err"
[ $? = 0 ] && grep -q 'warning: the trace was cut short' "$T/err"
check $? "replay --partial replays a cut trace up to its last complete frame"
# The reader's prefetch thread (HEAPREPLAY_READ_THREADS: 1 on whatever the frame size, 0 off):
# the same output and the same messages either way, on good, cut and corrupt traces.
same=0
for f in "$G" "$T/trunc.hrt" "$T/flip.hrt"; do
  for cmd in "dump" "dump --partial" "info" "replay --gc refcount -q"; do
    HEAPREPLAY_READ_THREADS=1 "$HR" $cmd "$f" >"$T/on.out" 2>"$T/on.err"; s1=$?
    HEAPREPLAY_READ_THREADS=0 "$HR" $cmd "$f" >"$T/off.out" 2>"$T/off.err"; s0=$?
    if [ $s1 != $s0 ] || ! cmp -s "$T/on.err" "$T/off.err" ||
       { [ "$cmd" != "replay --gc refcount -q" ] && ! cmp -s "$T/on.out" "$T/off.out"; }; then
      same=1; echo "# $cmd $f: exit $s1/$s0: $(head -c 200 "$T/on.err") / $(head -c 200 "$T/off.err")"
    fi
  done
done
check $same "HEAPREPLAY_READ_THREADS=1 and =0: dump, info and replay print the same, also on cut and corrupt traces"
# The engine's lane (HEAPREPLAY_LANE=0: every event through the general path): the same replay
# (tests/fuzz/fuzz_lane.c compares results field by field on crafted and fuzzed traces).
same=0
for f in "$G" "$T/trunc.hrt" "$T/flip.hrt" "$T/sc.hrt"; do
  for gc in none refcount generational; do
    HEAPREPLAY_LANE=1 "$HR" replay "$f" --gc $gc -q --json "$T/l1.json" >/dev/null 2>"$T/l1.err"; s1=$?
    HEAPREPLAY_LANE=0 "$HR" replay "$f" --gc $gc -q --json "$T/l0.json" >/dev/null 2>"$T/l0.err"; s0=$?
    if [ $s1 != $s0 ] || ! cmp -s "$T/l1.err" "$T/l0.err" ||
       { [ $s1 = 0 ] && ! python3 - "$T/l1.json" "$T/l0.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
def strip(r):
    return {k: {f: v for f, v in r[k].items() if not f.endswith("_ns") and "rss" not in f
                and not f.endswith("_per_s")} for k in ("replay", "allocator", "collector")}
sys.exit(strip(a) != strip(b))
PY
       }; then
      same=1; echo "# lane $f $gc: exit $s1/$s0: $(head -c 200 "$T/l1.err") / $(head -c 200 "$T/l0.err")"
    fi
  done
done
check $same "HEAPREPLAY_LANE=1 and =0: replay gives the same results and messages, also on cut and corrupt traces"
"$HR" collectors | grep -q '^generational ' && "$HR" allocators | grep -q 'pymalloc'
check $? "collectors and allocators list what is built in"

# Every allocator built in replays the same stream end to end; the external ones report a peak
# footprint of their own that covers the peak live bytes.
"$HR" gen churn events=200000 seed=3 -o "$T/churn.hrt" >/dev/null
# validate on a trace with nothing recorded to compare (a generated one): not "all checks match"
"$HR" validate "$T/churn.hrt" >"$T/val.out" 2>"$T/val.err"
st=$?
[ $st = 2 ] && grep -q '^nothing compared' "$T/val.out" && ! grep -q 'all checks match' "$T/val.out" &&
  grep -q 'was not written by' "$T/val.err"
check $? "validate of a trace holding no recorded checks says nothing was compared, exit 2 (got $st)"
# a generated graph trace on which the replay collects: its collection points are n/a, not a
# mismatch (it said "recorded 0 collections, replayed 1: MISMATCH")
"$HR" gen seed-cycle n=1000 -o "$T/scv.hrt" && "$HR" validate "$T/scv.hrt" >"$T/val.out" 2>/dev/null
st=$?
[ $st = 2 ] && grep -q '^nothing compared' "$T/val.out" && ! grep -q 'MISMATCH' "$T/val.out" &&
  grep -Eq '^collection points and generations +0 +0  n/a' "$T/val.out" &&
  grep -q 'holds no recorded collections (the replay made 1)' "$T/val.out"
check $? "validate of a generated graph trace: collection points n/a, nothing compared (exit $st)"
expect "replay --timeline to a path that cannot be written" 3 \
  "^heapreplay: .*/nonexistent-dir/t.csv: cannot create: No such file" \
  "$HR" replay "$T/churn.hrt" -q --timeline "$T/nonexistent-dir/t.csv"
expect "gen -o to a path that cannot be written names that path" 3 \
  "^heapreplay: .*/nonexistent-dir/c.hrt: cannot create: No such file" \
  "$HR" gen churn events=100 -o "$T/nonexistent-dir/c.hrt"
expect "validate --json to a path that cannot be written" 3 "nonexistent-dir/v.json: cannot create" \
  "$HR" validate "$T/churn.hrt" --json "$T/nonexistent-dir/v.json"
for a in $("$HR" allocators | grep -E '^[a-z]' | cut -d' ' -f1); do
  "$HR" replay "$T/churn.hrt" --alloc "$a" --gc none -q --alloc-stats --json "$T/a-$a.json" \
    >"$T/a-$a.txt" 2>&1 &&
    python3 - "$T/a-$a.json" "$a" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a, name = r["allocator"], sys.argv[2]
assert r["config"]["allocator"] == name and a["requests"] > 0 and r["replay"]["events"] == 200000
if name in ("jemalloc", "mimalloc", "tcmalloc"):
    assert a["peak_footprint"] >= a["peak_bytes_in_use"] > 0, a
PY
  check $? "replay --alloc $a: runs, JSON names it$(case $a in jemalloc|mimalloc|tcmalloc) echo ', peak footprint covers the peak live bytes';; esac)"
done
# the footprint's caveat: mimalloc with eager commit counts whole segments it never touched, and
# says so under the footprint; no other backend (nor mimalloc with lazy commit) prints a note
for a in $("$HR" allocators | grep -E '^[a-z]' | cut -d' ' -f1); do
  notes=$(grep -c "^ *note: " "$T/a-$a.txt")
  if [ "$a" = mimalloc ]; then
    grep -A1 '^footprint ' "$T/a-$a.txt" | grep -q '^ *note: committed bytes; commit=eager (the default) takes whole 32 MiB segments'
    check $? "replay --alloc mimalloc: a note under the footprint says eager commit counts whole segments"
    "$HR" replay "$T/churn.hrt" --alloc mimalloc:commit=lazy --gc none -q >"$T/a-lazy.txt" 2>&1 &&
      ! grep -q 'note: ' "$T/a-lazy.txt" && grep -q '^footprint ' "$T/a-lazy.txt"
    check $? "replay --alloc mimalloc:commit=lazy: no footprint note"
  else
    [ "$notes" = 0 ]; check $? "replay --alloc $a: no footprint note"
  fi
done

# {==== Lua workloads ====
"$HR" gen json-like docs=20 -o "$T/js.hrt" && "$HR" replay "$T/js.hrt" --alloc libc --gc refcount --check -q |
  grep -q 'leaked        0 objects'
check $? "a Lua workload generates a graph trace that replays cleanly under --check"
printf 'kind = "graph"\nfunction generate(w, p)\n  local a = w:alloc(16, "obj")\n  w:free(a)\n  w:free(a)\nend\n' >"$T/bad.lua"
expect "Lua generator error names the script line" 1 'bad.lua:5: free of id 0 that is not live \(double free\)' \
  "$HR" gen "$T/bad.lua" -o "$T/bad.hrt"
[ ! -e "$T/bad.hrt" ]; check $? "a failed Lua generator leaves no output"
# a parameter the workload never reads (a misspelt name) is an error, as for the built-in
# generators: it used to give a trace of the default size without a word
expect "a Lua workload's parameter that it never reads" 1 \
  "json-like.lua: the workload never read the parameter\(s\) doc, wdith \(misspelt\? no trace written\)" \
  "$HR" gen json-like doc=3 wdith=2 -o "$T/typo.hrt"
[ ! -e "$T/typo.hrt" ]; check $? "no trace written for a misspelt workload parameter"
printf 'function generate(w, p)\n  for k, v in pairs(p) do w:alloc(hr.num(v, 1), "mem") end\nend\n' >"$T/pairs.lua"
"$HR" gen "$T/pairs.lua" a=8 b=16 -o "$T/pairs.hrt" && "$HR" info "$T/pairs.hrt" | grep -Eq '^events +2 '
check $? "a workload that reads its parameters with pairs() reads them all"
# A workload's path is no part of the spec string that carries the parameters: a folder named
# with ':' made docs=3 a parameter 'b/w.lua:docs' of a generator '.../a', silently ignored.
mkdir -p "$T/a:b" "$T/c,d"
cp "$SRC/scripts/workloads/json-like.lua" "$T/a:b/w.lua"; cp "$SRC/scripts/workloads/json-like.lua" "$T/c,d/w.lua"
"$HR" gen json-like docs=3 -o "$T/wl0.hrt" && "$HR" gen "$T/a:b/w.lua" docs=3 -o "$T/wl1.hrt" &&
  "$HR" gen "$T/c,d/w.lua" docs=3 -o "$T/wl2.hrt" &&
  nev() { "$HR" info "$1" | awk '$1 == "events" {print $2}'; } && # the count alone: bytes/event
  [ "$(nev "$T/wl0.hrt")" = "$(nev "$T/wl1.hrt")" ] && [ "$(nev "$T/wl0.hrt")" = "$(nev "$T/wl2.hrt")" ] &&
  [ "$(nev "$T/wl0.hrt")" != "$("$HR" gen json-like docs=4 -o "$T/wl3.hrt" && nev "$T/wl3.hrt")" ]
check $? "a Lua workload under a path with ':' or ',' gets its parameters ($(nev "$T/wl1.hrt") events, as json-like docs=3)"
expect "gen: a comma inside key=value is refused (it would set a second parameter)" 1 \
  "a parameter value cannot hold ',' \\('seed=1,events=5'\\)" "$HR" gen churn seed=1,events=5 -o "$T/x.hrt"
for fl in 256 257 -1 math.mininteger; do
  printf 'kind = "graph"\nfunction generate(w, p)\n  local a = w:alloc(16, "obj", %s)\nend\n' "$fl" >"$T/badflags.lua"
  expect "w:alloc flags $fl: refused, not cut down to a byte" 1 \
    "badflags.lua:3: bad argument #3 to 'alloc' \\(flags as a number are a mask of gc \\(1\\), object \\(2\\), zero \\(4\\)\\)" \
    "$HR" gen "$T/badflags.lua" -o "$T/badflags.hrt"
done

# {==== Output files: symlinks, special files, failures, signals (common/hr_out.c) ====
O=$T/out-files
mkdir -p "$O"
no_tmp() { [ -z "$(ls -a "$O" | grep '\.tmp\.')" ]; }
# A symlink is followed: the target gets the new content, the link stays a link.
"$HR" gen churn events=1000 seed=5 -o "$O/plain.hrt"
echo old >"$O/t.hrt"; ln -s t.hrt "$O/l.hrt"
"$HR" gen churn events=1000 seed=5 -o "$O/l.hrt" && [ -L "$O/l.hrt" ] && cmp -s "$O/t.hrt" "$O/plain.hrt"
check $? "gen -o SYMLINK writes the link's target and leaves the link a link"
echo old >"$O/t.txt"; ln -s t.txt "$O/l.txt"
"$HR" dump "$O/plain.hrt" -o "$O/l.txt" && [ -L "$O/l.txt" ] && "$HR" dump "$O/plain.hrt" | cmp -s - "$O/t.txt" &&
  "$HR" pack "$O/t.txt" -o "$O/l.hrt" && [ -L "$O/l.hrt" ] && cmp -s "$O/t.hrt" "$O/plain.hrt"
check $? "dump -o and pack -o through a symlink keep the link"
echo old >"$O/t.csv"; ln -s t.csv "$O/l.csv"; echo old >"$O/t.json"; ln -s t.json "$O/l.json"
"$HR" replay "$O/plain.hrt" -q --timeline "$O/l.csv" --json "$O/l.json" >/dev/null &&
  [ -L "$O/l.csv" ] && [ -L "$O/l.json" ] && head -n 1 "$O/t.csv" | grep -q '^event,' &&
  grep -q '"schema"' "$O/t.json" && "$HR" refcounts "$G" --json "$O/l.json" >/dev/null &&
  [ -L "$O/l.json" ] && grep -q 'heapreplay-refcounts/1' "$O/t.json" && no_tmp
check $? "replay --timeline/--json and refcounts --json through symlinks keep the links"
# A FIFO is written through (read by a background cat), never replaced by a regular file.
mkfifo "$O/fifo"
cat "$O/fifo" >"$O/from-fifo" & cat_pid=$!
"$HR" gen churn events=1000 seed=5 -o "$O/fifo"; st=$?
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 $cat_pid 2>/dev/null || break; sleep 0.2; done
kill $cat_pid 2>/dev/null; wait $cat_pid 2>/dev/null
[ $st = 0 ] && [ -p "$O/fifo" ] && cmp -s "$O/from-fifo" "$O/plain.hrt" && no_tmp
check $? "gen -o FIFO writes through the pipe and leaves the FIFO in place"
# A write error names the file and says why: a pipe whose reader went away (SIGPIPE ignored).
head -c 10 "$O/fifo" >/dev/null &
expect "replay --timeline into a pipe that breaks reports the write error" 3 \
  "^heapreplay: .*/fifo: write failed: Broken pipe" \
  bash -c "trap '' PIPE; exec \"\$0\" \"\$@\"" "$HR" replay "$T/churn.hrt" -q --timeline "$O/fifo" --every 1
wait
# A directory is an error, and it is left alone.
mkdir "$O/dir"
expect "gen -o DIRECTORY is refused" 1 "/dir: is a directory, not a file" \
  "$HR" gen churn events=10 -o "$O/dir"
expect "dump -o DIRECTORY is refused" 1 "/dir: is a directory, not a file" \
  "$HR" dump "$O/plain.hrt" -o "$O/dir"
[ -d "$O/dir" ] && [ -z "$(ls -A "$O/dir")" ] && no_tmp
check $? "the directory is untouched"
# An existing output survives a failing run byte for byte.
printf 'precious\n' >"$O/keep"
keep_same() { cmp -s "$O/keep" "$1" && no_tmp; }
cp "$O/keep" "$O/keep.csv"
expect "replay with a bad collector parameter fails" 1 "trigger=abc" \
  "$HR" replay "$O/plain.hrt" --gc marksweep:trigger=abc --timeline "$O/keep.csv"
keep_same "$O/keep.csv"; check $? "... and leaves the existing --timeline file as it was"
expect "replay of a cut trace fails" 2 "cut short" \
  "$HR" replay "$T/trunc.hrt" -q --gc refcount --timeline "$O/keep.csv"
keep_same "$O/keep.csv"; check $? "... and leaves the existing --timeline file as it was (no partial CSV)"
"$HR" replay "$T/trunc.hrt" -q --gc refcount --partial --timeline "$O/keep.csv" --every 1000 >/dev/null 2>&1 &&
  head -n 1 "$O/keep.csv" | grep -q '^event,' && [ "$(wc -l <"$O/keep.csv")" -gt 2 ]
check $? "replay --partial of a cut trace succeeds and keeps its CSV"
cp "$O/keep" "$O/keep.json"
expect "replay --json with a bad collector spec fails" 1 "trigger=abc" \
  "$HR" replay "$O/plain.hrt" --gc marksweep:trigger=abc --json "$O/keep.json"
keep_same "$O/keep.json"; check $? "... and leaves the existing --json file as it was"
# --json and --timeline naming one file (however spelled) would share its temporary file: the
# JSON was written over the CSV after the CSV's rename, leaving a mix of both and exit 3.
ln -s keep.json "$O/keep-link.json"
for tl in "$O/keep.json" "$O/./keep.json" "$O/keep-link.json"; do
  expect "replay --json F --timeline $(basename "$tl") (the same file) is a usage error" 1 \
    "--json .* and --timeline .* name the same file" \
    "$HR" replay "$O/plain.hrt" -q --json "$O/keep.json" --timeline "$tl" --every 1
  keep_same "$O/keep.json"; check $? "... and leaves the existing file as it was"
done
rm -f "$O/keep-link.json"
cp "$O/keep" "$O/keep.gen"
# a trace writer that fails while writing (the file size limit: write fails with EFBIG)
(trap '' XFSZ; ulimit -f 8; "$HR" gen churn events=200000 -o "$O/keep.gen" 2>"$T/efbig.err")
st=$?
[ "$st" = 3 ] && grep -q "write failed" "$T/efbig.err" && keep_same "$O/keep.gen"
check $? "gen whose writes fail (exit $st) leaves the existing -o file as it was (no partial trace)"
cp "$O/keep" "$O/keep.txt"
expect "dump of a corrupt trace fails" 2 "corrupt" "$HR" dump "$T/flip.hrt" -o "$O/keep.txt"
keep_same "$O/keep.txt"; check $? "... and leaves the existing -o file as it was (no partial text)"
cp "$O/keep" "$O/keep.hrt"
expect "record --native of a missing command exits 127" 127 "cannot run" \
  "$HR" record --native -o "$O/keep.hrt" -- "$O/no-such-command"
keep_same "$O/keep.hrt"; check $? "... and neither deletes nor changes the existing trace"
echo old >"$O/rt.hrt"; ln -s rt.hrt "$O/rl.hrt"
if [ "$NATIVE" = 1 ]; then
  "$HR" record --native -o "$O/rl.hrt" -- true && [ -L "$O/rl.hrt" ] && "$HR" info "$O/rt.hrt" >/dev/null && no_tmp
  check $? "record --native -o SYMLINK writes the target and keeps the link"
else
  ok "# SKIP record --native -o SYMLINK: the native recorder does not run in sanitizer builds"
fi
# Output paths are checked before the replay: nothing is replayed for a bad one.
expect "replay --json into a missing folder is refused first" 3 "nonexistent-dir/r.json: cannot create" \
  "$HR" replay "$T/churn.hrt" -q --json "$O/nonexistent-dir/r.json"
[ ! -s "$T/out" ]; check $? "... before replaying (no summary printed)"
expect "replay --json into a directory is refused first" 1 "/dir: is a directory" \
  "$HR" replay "$T/churn.hrt" -q --json "$O/dir"
[ ! -s "$T/out" ]; check $? "... before replaying (no summary printed)"
# A killed writer leaves no temporary file; it dies by the signal.
# kill_when_tmp SIG CMD...: start CMD, wait for its temporary file, send SIG; prints the status.
kill_when_tmp() {
  local sig=$1; shift
  "$@" & local pid=$!
  for _ in $(seq 100); do ls -a "$O" | grep -q '\.tmp\.' && break; sleep 0.05; done
  kill -"$sig" $pid
  (sleep 10; kill -KILL $pid 2>/dev/null) >/dev/null 2>&1 & local guard=$!
  wait $pid; local st=$?
  kill $guard 2>/dev/null; wait $guard 2>/dev/null
  echo $st
}
# (a background job of a script starts with SIGINT ignored: python restores the default, then
# becomes heapreplay, same pid)
dfl_int='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])'
for sig in TERM HUP INT; do
  st=$(kill_when_tmp $sig python3 -c "$dfl_int" "$HR" gen churn events=18446744073709551615 -o "$O/killed.hrt")
  want=$((128 + $(kill -l $sig)))
  [ "$st" = "$want" ] && no_tmp && [ ! -e "$O/killed.hrt" ]
  check $? "gen killed by SIG$sig leaves no temporary file (exit $st, want $want)"
done
# a second signal while the first one's handler removes the files (a second Ctrl-C; timeout
# sends two) used to kill the process half way, leaving the temporary file (8 tries in 8 before
# the fix): three tries, each must leave nothing and die by SIGINT
left=$(python3 - "$HR" "$O" <<'PYEOF'
import glob, os, signal, subprocess, sys, time
hr, out = sys.argv[1], sys.argv[2]
left = 0
for _ in range(3):
    p = subprocess.Popen([hr, "gen", "churn", "events=18446744073709551615", "-o", out + "/killed.hrt"],
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(500):
        if glob.glob(out + "/*.tmp.*"):
            break
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGINT)
    os.kill(p.pid, signal.SIGINT)
    try:
        st = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        st = p.wait()
    left += st != -signal.SIGINT or bool(glob.glob(out + "/*.tmp.*"))
    for f in glob.glob(out + "/*.tmp.*"):
        os.unlink(f)
print(left)
PYEOF
)
[ "$left" = 0 ]; check $? "gen killed by two SIGINTs at once leaves no temporary file ($left of 3 did)"
mkfifo "$O/in"
{ printf 'heapreplay-trace 1 alloc\nalloc 0 8 mem\n'; sleep 5; } >"$O/in" & feeder=$!
st=$(kill_when_tmp TERM "$HR" pack "$O/in" -o "$O/keep.hrt")
kill $feeder 2>/dev/null; wait $feeder 2>/dev/null
[ "$st" = 143 ] && keep_same "$O/keep.hrt"
check $? "pack killed while reading a pipe leaves the old output and no temporary file (exit $st)"
# pack streams its input: an endless one is refused at its first overlong line, not read whole.
expect "pack of an endless input without newlines is refused" 2 \
  "/dev/zero:1 \(byte 0\): line longer than 16 MiB" \
  "$HR" pack /dev/zero -o "$O/zero.hrt"
[ ! -e "$O/zero.hrt" ] && no_tmp; check $? "... and leaves nothing behind"

# {==== Usage errors: exit 1 ====
expect "unknown command" 1 "unknown command 'frob'" "$HR" frob
expect "unknown option" 1 "unknown option '--bogus'" "$HR" dump --bogus x
expect "-q where there is no progress" 1 "unknown option '-q' \\(this command prints no progress to silence; only replay and run take -q\\)" "$HR" validate -q x
expect "--quiet where there is no progress" 1 "unknown option '--quiet' \\(this command" "$HR" info --quiet x
expect "missing operand" 1 'expected one TRACE' "$HR" info
expect "unknown generator" 1 "unknown generator 'nope' \(built in: seed-arena.*; no Lua workload .*nope.lua\)" "$HR" gen nope -o "$T/x.hrt"
# Generator parameters: out of range values (that sized arrays or wrapped counts) are usage
# errors naming the generator, the key, the value and the range. ('timeout': accepted, the huge
# counts would generate for hours.)
expect "genmix old=0" 1 "generator 'genmix': old=0 is out of range 1\.\.4294967296" \
  "$HR" gen genmix events=100 old=0 -o "$T/x.hrt"
expect "genmix old=2^61+1 (old * 8 wraps)" 1 "generator 'genmix': old=2305843009213693953 is out of range" \
  "$HR" gen genmix events=1000 old=2305843009213693953 -o "$T/x.hrt"
expect "genmix survive=nan" 1 "generator 'genmix': survive=nan must be a fraction 0\.\.1" \
  "$HR" gen genmix events=100 survive=nan -o "$T/x.hrt"
expect "random kind=foo" 1 "generator 'random': kind=foo must be alloc or graph" \
  "$HR" gen random events=10 kind=foo -o "$T/x.hrt"
expect "churn events=1e6" 1 "generator 'churn': events=1e6 must be a whole number \(like 1000000" \
  "$HR" gen churn events=1e6 -o "$T/x.hrt"
expect "gcbench long=25" 1 "generator 'gcbench': long=25 is out of range 0\.\.24" \
  "$HR" gen gcbench long=25 -o "$T/x.hrt"
expect "gcbench iters=2^44 (iters << (max - 4) could wrap)" 1 "generator 'gcbench': iters=17592186044416 is out of range 0\.\.4294967296" \
  timeout 10 "$HR" gen gcbench iters=17592186044416 -o "$T/x.hrt"
expect "cycles maxlen=0" 1 "generator 'cycles': maxlen=0 is out of range 1\.\.1000" \
  "$HR" gen cycles maxlen=0 -o "$T/x.hrt"
expect "seed-intlist n=2^61 (its item array size would wrap)" 1 "generator 'seed-intlist': n=2305843009213693952 is out of range 0\.\.1099511627776" \
  timeout 10 "$HR" gen seed-intlist n=2305843009213693952 -o "$T/x.hrt"
expect "seed-cycle n=2^64-1 (int values wrap)" 1 "generator 'seed-cycle': n=18446744073709551615 is out of range" \
  timeout 10 "$HR" gen seed-cycle n=18446744073709551615 -o "$T/x.hrt"
[ ! -e "$T/x.hrt" ]; check $? "rejected generator parameters leave no output"
"$HR" gen genmix events=20000 old=10 -o "$T/gm.hrt" &&
  "$HR" replay "$T/gm.hrt" --alloc libc --gc refcount --check -q >/dev/null
check $? "genmix old=10 (the survivor array full, evicting) replays cleanly under --check"
expect "unknown generator parameter" 1 "no parameter 'evnts'" "$HR" gen random evnts=3 -o "$T/x.hrt"
"$HR" --help | grep -q '^  pack ' && "$HR" pack --help | grep -q 'usage: heapreplay pack'
check $? "--help and COMMAND --help"
# a trace cut inside its first 8 bytes, after a good magic number: "cut short", not "wrong magic"
"$HR" gen churn events=100 -o "$T/cut8.hrt" >/dev/null 2>&1
head -c 6 "$T/cut8.hrt" >"$T/cut6.hrt"
expect "a trace cut to 6 bytes is cut short inside the header (status 2)" 2 \
  'cut6.hrt: cut short inside the header \(6 of at least 8 bytes\)' "$HR" info "$T/cut6.hrt"
# standard output that cannot be written (a full device, by redirection only): status 3, said
if [ -c /dev/full ]; then
  "$HR" allocators >/dev/full 2>"$T/full.err"
  st=$?
  [ "$st" = 3 ] && grep -q "error writing standard output" "$T/full.err"
  check $? "a command whose standard output fails (>/dev/full) exits 3 and says so (status $st)"
fi

tap_end

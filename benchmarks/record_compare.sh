#!/usr/bin/env bash
# record_compare.sh: do two versions of the recorder write the same traces? (a measurement
# tool, not a test). Builds REV_A and REV_B (git revisions; WORKTREE = the working tree) into
# $TMPDIR/hr_reccmp/, each with the same comparison patch, records every PROGRAM (graph mode, or
# MODE) with both under `setarch -R` and PYTHONHASHSEED=0, and compares the dumps.
#
# Why a patch: the recorder's own mmaps and mallocs share the recorded program's address space,
# so two recorders that allocate differently place pymalloc's arenas and glibc's blocks
# differently, and a Python program's behaviour follows its addresses (id hashes, arena
# alignment). The patch (applied alike to both sides, never to the tree) sends the malloc and
# mmap calls of recorder/rec_graph.c and common/hr_idtab.c to a private region far from the heap
# and maps arenas at fixed addresses, so the program runs alike under both recorders.
#
# Usage: [MODE=alloc] [ENV_A=... ENV_B=...] benchmarks/record_compare.sh REV_A REV_B PROGRAM.py...
#   e.g. benchmarks/record_compare.sh main WORKTREE tests/record/graph.py tests/record/gc_count.py
# MODE (default graph) is the recording mode; ENV_A and ENV_B are extra environment for each
# side's recordings, e.g. ENV_A=HEAPREPLAY_GENERIC_HOOKS=0 ENV_B=HEAPREPLAY_GENERIC_HOOKS=1 (the program sees
# its environment: give both sides variables of the same length, or its allocations differ).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,20p' "$0" >&2; exit 1; }
A=$1 B=$2
shift 2
ROOT=$(pwd)
W=${TMPDIR:-/tmp}/hr_reccmp
mkdir -p "$W"
cat >"$W/cmpalloc.h" <<'EOF'
/* cmpalloc.h (benchmarks/record_compare.sh): the including file's allocations go to a private
 * bump region at CMP_BASE; nothing is ever given back (comparison runs only). */
#ifndef CMPALLOC_H
#define CMPALLOC_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static inline void *cmp_bump(size_t n)
{
    static uint8_t *next;
    if (!next) {
        void *p = mmap((void *)CMP_BASE, (size_t)1 << 38, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED)
            abort();
        next = p;
    }
    n = (n + 16 + 4095) & ~(size_t)4095;
    uint8_t *p = next;
    next += n;
    *(size_t *)p = n - 16;
    return p + 16;
}
static inline void *cmp_realloc(void *p, size_t n)
{
    if (!p)
        return cmp_bump(n);
    size_t old = *((size_t *)p - 2);
    if (n <= old)
        return p;
    void *q = cmp_bump(n);
    memcpy(q, p, old);
    return q;
}
static inline void *cmp_mmap(size_t n) { return (uint8_t *)cmp_bump(n + 4096) + 4096 - 16; }
static inline void *cmp_mremap(void *p, size_t o, size_t n)
{
    void *q = cmp_mmap(n);
    memcpy(q, p, o < n ? o : n);
    return q;
}
#define malloc(n) cmp_bump(n)
#define calloc(a, b) cmp_bump((a) * (b))
#define realloc(p, n) cmp_realloc(p, n)
#define free(p) ((void)(p))
#define mmap(a, n, ...) cmp_mmap(n)
#define munmap(p, n) ((void)(p), (void)(n), 0)
#define mremap(p, o, n, ...) cmp_mremap(p, o, n)
#endif
EOF
build() { # build NAME REV
  local S=$W/$1-src
  rm -rf "$S" && mkdir -p "$S"
  if [ "$2" = WORKTREE ]; then
    git ls-files -z | xargs -0 cp --parents -t "$S"
  else
    git archive "$2" | tar -x -C "$S"
  fi
  python3 - "$S" "$W/cmpalloc.h" <<'EOF'
import sys
S, H = sys.argv[1], sys.argv[2]
def patch(f, after, new):
    p = S + '/' + f
    s = open(p).read()
    assert s.count(after) == 1, (f, after)
    open(p, 'w').write(s.replace(after, after + new))
patch('recorder/rec_graph.c', '#include <sys/mman.h>\n',
      '#define CMP_BASE 0x500000000000ull\n#include "%s"\n' % H)
patch('common/hr_idtab.c', '#include <unistd.h>\n',
      '#define CMP_BASE 0x600000000000ull\n#include "%s"\n' % H)
p = S + '/recorder/rec_python.c'
s = open(p).read()
old = '    void *p = R.orig_arena.alloc(R.orig_arena.ctx, size);\n'
assert s.count(old) == 1
s = s.replace(old, '''    static uintptr_t next = 0x400000000000ull; /* record_compare.sh: fixed arena places */
    void *p = mmap((void *)next, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        p = NULL;
    next += (size + 4095) & ~(size_t)4095;
''')
open(p, 'w').write(s.replace('#include <unistd.h>\n', '#include <unistd.h>\n#include <sys/mman.h>\n', 1))
EOF
  [ -d "$W/$1-b" ] || (cd "$S" && meson setup "$W/$1-b" >/dev/null)
  ninja -C "$W/$1-b" cli/heapreplay recorder/libhr_pyrec.so >/dev/null
}
build a "$A"
build b "$B"
rc=0
for prog in "$@"; do
  name=$(basename "$prog" .py)
  for side in a b; do
    env_side=()
    [ $side = a ] && [ -n "${ENV_A:-}" ] && read -r -a env_side <<<"$ENV_A"
    [ $side = b ] && [ -n "${ENV_B:-}" ] && read -r -a env_side <<<"$ENV_B"
    env "${env_side[@]}" PYTHONHASHSEED=0 setarch -R "$W/$side-b/cli/heapreplay" record --mode "${MODE:-graph}" \
      -o "$W/$name-$side.hrt" -- "$ROOT/$prog" >/dev/null 2>&1 || true
    "$W/$side-b/cli/heapreplay" dump "$W/$name-$side.hrt" | grep -v '^meta date' >"$W/$name-$side.txt"
  done
  if [ -s "$W/$name-a.txt" ] && cmp -s "$W/$name-a.txt" "$W/$name-b.txt"; then
    echo "$prog: identical ($(wc -l <"$W/$name-a.txt") lines)"
  else
    echo "$prog: DIFFERENT ($(diff "$W/$name-a.txt" "$W/$name-b.txt" | grep -c '^[<>]') lines differ)"
    rc=1
  fi
done
exit $rc

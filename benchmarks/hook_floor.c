/* hook_floor.c: libhr_hookfloor.so, a benchmark (not a test): what the least a PEP 445 recorder
 * must do per allocator call costs, inside the same interpreter `heapreplay record` preloads into.
 *
 * The allocation-mode recorder (recorder/rec_python.c) sits on CPython's PEP 445 hooks and, per
 * call, observes the gc state, names the block by id (the address map), and writes an event.
 * Its cost against a plain run is a ratio of its per-call work to the program's; to tell which
 * ratio any recorder of that design could reach on this machine, this module installs hooks that
 * do only a growing prefix of that work, chosen by HR_HOOK_FLOOR (benchmarks/record_paired.py,
 * MODE hookfloor, runs them next to the plain program and the real recorder):
 *
 *   forward   each hook calls the allocator it replaced, nothing else (the price of the hook)
 *   observe   forward, plus the OBJ hooks read generation 0's count before and after the call
 *             (what the recorder needs to tell GC-capable allocations) into a global
 *   map       observe, plus the recorder's own address map (rec_idmap.h, direct layout): a new
 *             id stored at each MEM/OBJ allocation, taken out at each free and realloc
 *   encode    map, plus one event per call encoded as the trace format's fast writer would size it
 *             (an opcode byte and a varint) into a 1 MiB buffer that wraps: no compression, no file
 *   traverse  encode, plus the least of graph mode's reconciliation: before an OBJ allocation that
 *             would start a collection if it is a GC one (generation 0's count at its threshold),
 *             every object of the generations it would collect is traversed with tp_traverse,
 *             its refcount read and each GC referent looked up in the address map (what the
 *             recorder does to compare the heap with its shadow; the shadow itself, the events
 *             of changed edges and the deaths by counting are not done)
 *
 * Two more levels ask whether the map and the encoding could leave the program's thread:
 *
 *   append    observe, plus a raw record per call (address and kind, and the size of an
 *             allocation: 8 or 16 bytes) appended to chunks of a 2 MiB ring, nothing else
 *   offload   append, plus a worker thread that takes the published chunks in order and does
 *             `encode`'s map and encoding on them (it polls every millisecond; the program's
 *             thread waits only when all chunks are full)
 *
 * RAW calls only forward in every mode (they are rare: 565 of 442 K calls in the benchmark's
 * workload at 50 rounds, and may come without the GIL, which the map would need a lock for).
 * The module installs its hooks from a constructor, before the interpreter's pre-initialisation,
 * as the recorder does; PYTHONMALLOC must be unset. Not part of heapreplay: nothing here is
 * written anywhere, and the ids mean nothing.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1 /* generation 0's count lives in the internal interpreter state */
#endif
#include <Python.h>
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_gc.h"

#include "hr_common.h"
#include "rec_idmap.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Preloaded into every process of the command line (nice, the interpreter): data symbols only the
 * interpreter defines must not fail the others' loading (functions bind lazily). */
#pragma weak _PyRuntime
#include <stdlib.h>
#include <string.h>

enum { F_FORWARD = 0, F_OBSERVE = 1, F_MAP = 2, F_ENCODE = 3, F_TRAVERSE = 4, F_APPEND = 5,
       F_OFFLOAD = 6 };

static int level;                     /* F_*: what the MEM and OBJ hooks do beyond forwarding */
static PyMemAllocatorEx orig[3];      /* the allocators replaced, by domain */
static hr_idmap_t map;                /* address -> id (F_MAP and above) */
static uint64_t next_id;
static volatile int seen_count;       /* the last generation-0 count read (F_OBSERVE) */
#define BUF_BYTES ((size_t)1 << 20)
static uint8_t buf[BUF_BYTES + 32];   /* encoded events, wrapping (F_ENCODE) */
static size_t buf_at;
static int verbose;                   /* HR_HOOK_FLOOR_VERBOSE: say at exit how many ids were named */

static inline int gen0(void)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    return in ? in->gc.generations[0].count : 0;
}

static inline void encode(unsigned op, uint64_t v)
{
    uint8_t *p = buf + buf_at;
    *p = (uint8_t)op;
    size_t n = 1 + hr_varint_put(p + 1, v);
    buf_at = buf_at + n < BUF_BYTES ? buf_at + n : 0;
}

/* F_APPEND, F_OFFLOAD: the ring of raw records. A word is an address, bit 0 set for an
 * allocation, whose size is the next word. The program's thread fills chunk off_head % OFF_N and
 * publishes it by advancing off_head; the worker (F_OFFLOAD) maps and encodes chunk off_tail %
 * OFF_N and frees it by advancing off_tail. off_head - off_tail <= OFF_N. */
#define OFF_CHUNK 8192 /* words */
#define OFF_N 32
static uint64_t off_buf[OFF_N][OFF_CHUNK];
static unsigned off_len[OFF_N];
static unsigned off_head, off_tail;
static uint64_t *off_at, *off_end; /* where the next record goes; room for one allocation */
static int off_quit;
static pthread_t off_thread;

static void off_publish(void)
{
    unsigned c = off_head % OFF_N;
    off_len[c] = (unsigned)(off_at - off_buf[c]);
    __atomic_store_n(&off_head, off_head + 1, __ATOMIC_RELEASE);
    if (level == F_APPEND)
        off_tail = off_head; /* no one reads the ring */
    while (off_head - __atomic_load_n(&off_tail, __ATOMIC_ACQUIRE) >= OFF_N)
        usleep(100);
    off_at = off_buf[off_head % OFF_N];
    off_end = off_at + OFF_CHUNK - 2;
}

static void off_append(uint64_t addr_kind, uint64_t size)
{
    *off_at++ = addr_kind;
    if (addr_kind & 1)
        *off_at++ = size;
    if (HR_UNLIKELY(off_at >= off_end))
        off_publish();
}

static void *off_worker(void *arg)
{
    (void)arg;
    for (;;) {
        if (off_tail == __atomic_load_n(&off_head, __ATOMIC_ACQUIRE)) {
            if (__atomic_load_n(&off_quit, __ATOMIC_ACQUIRE) &&
                off_tail == __atomic_load_n(&off_head, __ATOMIC_ACQUIRE))
                return NULL;
            usleep(1000);
            continue;
        }
        const uint64_t *w = off_buf[off_tail % OFF_N], *end = w + off_len[off_tail % OFF_N];
        while (w < end) {
            uintptr_t a = (uintptr_t)(*w & ~(uint64_t)1);
            if (*w++ & 1) {
                hr_idmap_add_fast(&map, a, next_id++, 0);
                encode(0x10, *w++);
            } else {
                uint64_t id;
                unsigned fl;
                if (hr_idmap_take(&map, a, &id, &fl))
                    encode(0x20, next_id - 1 - id);
            }
        }
        __atomic_store_n(&off_tail, off_tail + 1, __ATOMIC_RELEASE);
    }
}

static inline void note_alloc(void *p, size_t size)
{
    if (p && level >= F_APPEND) {
        off_append((uintptr_t)p | 1, size);
        return;
    }
    if (!p || level < F_MAP)
        return;
    uint64_t id = next_id++;
    hr_idmap_add_fast(&map, (uintptr_t)p, id, 0);
    if (level >= F_ENCODE)
        encode(0x10, size);
}

static inline void note_free(void *p)
{
    uint64_t id;
    unsigned fl;
    if (p && level >= F_APPEND) {
        off_append((uintptr_t)p, 0);
        return;
    }
    if (!p || level < F_MAP || !hr_idmap_take(&map, (uintptr_t)p, &id, &fl))
        return;
    if (level >= F_ENCODE)
        encode(0x20, next_id - 1 - id); /* ids relative to the newest, as the format writes them */
}

#define GEN_HEAD(g, i) (&(g)->generations[i].head)

static uint64_t visited, found; /* F_TRAVERSE: referents visited, found in the map */

static int visit(PyObject *o, void *arg)
{
    (void)arg;
    visited++;
    if (o && PyObject_IS_GC(o)) {
        size_t pre = sizeof(PyGC_Head) +
                     (PyType_HasFeature(Py_TYPE(o), Py_TPFLAGS_MANAGED_DICT) ? 2 * sizeof(void *) : 0);
        found += hr_idmap_get(&map, (uintptr_t)o - pre, NULL, NULL);
    }
    return 0;
}

/* Traverse the generations a collection started by the next GC allocation would collect. */
static void traverse_young(void)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    if (!in)
        return;
    struct _gc_runtime_state *g = &in->gc;
    if (g->collecting || !g->enabled || !g->generations[0].threshold ||
        g->generations[0].count + 1 <= g->generations[0].threshold)
        return;
    int upto = 0; /* CPython's choice (collect_generations): the oldest generation over its
                   * threshold, the oldest one only when long-lived pending objects exceed 25 % */
    for (int i = NUM_GENERATIONS - 1; i >= 1 && !upto; i--)
        if (g->generations[i].count > g->generations[i].threshold &&
            (i < NUM_GENERATIONS - 1 || g->long_lived_pending >= g->long_lived_total / 4))
            upto = i;
    for (int i = 0; i <= upto; i++) {
        PyGC_Head *head = GEN_HEAD(g, i);
        for (PyGC_Head *h = _PyGCHead_NEXT(head); h != head; h = _PyGCHead_NEXT(h)) {
            PyObject *op = (PyObject *)(h + 1);
            traverseproc t = Py_TYPE(op)->tp_traverse;
            encode(0x40, (uint64_t)Py_REFCNT(op)); /* its count, as a reconciliation reads it */
            if (t)
                t(op, visit, NULL);
        }
    }
}

/* The level's work before an allocator call (`observed`: an OBJ hook), and after it (block p of
 * domain d, size bytes, or NULL). */
static inline void before_alloc(int observed)
{
    if (observed && level >= F_OBSERVE)
        seen_count = gen0();
    if (observed && level == F_TRAVERSE)
        traverse_young();
}

static inline void *after_alloc(int d, int observed, void *p, size_t size)
{
    if (observed && level >= F_OBSERVE)
        seen_count = gen0();
    if (d != PYMEM_DOMAIN_RAW)
        note_alloc(p, size);
    return p;
}

#define HOOKS(name, d, observe_)                                                                 \
    static void *name##_malloc(void *ctx, size_t n)                                              \
    {                                                                                            \
        (void)ctx;                                                                               \
        before_alloc(observe_);                                                                  \
        return after_alloc(d, observe_, orig[d].malloc(orig[d].ctx, n), n);                      \
    }                                                                                            \
    static void *name##_calloc(void *ctx, size_t ne, size_t es)                                  \
    {                                                                                            \
        (void)ctx;                                                                               \
        before_alloc(observe_);                                                                  \
        return after_alloc(d, observe_, orig[d].calloc(orig[d].ctx, ne, es), ne * es);           \
    }                                                                                            \
    static void *name##_realloc(void *ctx, void *p, size_t n)                                    \
    {                                                                                            \
        (void)ctx;                                                                               \
        if (d != PYMEM_DOMAIN_RAW)                                                               \
            note_free(p);                                                                        \
        void *q = orig[d].realloc(orig[d].ctx, p, n);                                            \
        if (d != PYMEM_DOMAIN_RAW)                                                               \
            note_alloc(q, n);                                                                    \
        return q;                                                                                \
    }                                                                                            \
    static void name##_free(void *ctx, void *p)                                                  \
    {                                                                                            \
        (void)ctx;                                                                               \
        if (observe_ && level >= F_OBSERVE)                                                      \
            seen_count = gen0();                                                                 \
        if (d != PYMEM_DOMAIN_RAW)                                                               \
            note_free(p);                                                                        \
        orig[d].free(orig[d].ctx, p);                                                            \
    }
HOOKS(raw, PYMEM_DOMAIN_RAW, 0)
HOOKS(mem, PYMEM_DOMAIN_MEM, 0)
HOOKS(obj, PYMEM_DOMAIN_OBJ, 1)
#undef HOOKS

__attribute__((constructor)) static void hook_floor_start(void)
{
    const char *mode = getenv("HR_HOOK_FLOOR");
    if (!mode || !&_PyRuntime)
        return;
    static const char *names[] = {"forward", "observe", "map", "encode", "traverse", "append",
                                  "offload"};
    level = -1;
    for (int i = 0; i < (int)HR_ARRAY_LEN(names); i++)
        if (strcmp(mode, names[i]) == 0)
            level = i;
    verbose = getenv("HR_HOOK_FLOOR_VERBOSE") != NULL;
    unsetenv("HR_HOOK_FLOOR");
    unsetenv("HR_HOOK_FLOOR_VERBOSE");
    unsetenv("LD_PRELOAD"); /* children run plain */
    if (level < 0 || (level >= F_MAP && hr_idmap_init_direct(&map) != 0))
        abort();
    off_at = off_buf[0];
    off_end = off_at + OFF_CHUNK - 2;
    if (level == F_OFFLOAD && pthread_create(&off_thread, NULL, off_worker, NULL) != 0)
        abort();
    PyMemAllocatorEx h[3] = {
        {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free},
        {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free},
        {NULL, obj_malloc, obj_calloc, obj_realloc, obj_free},
    };
    for (int d = 0; d < 3; d++) {
        PyMem_GetAllocator((PyMemAllocatorDomain)d, &orig[d]);
        PyMem_SetAllocator((PyMemAllocatorDomain)d, &h[d]);
    }
}

__attribute__((destructor)) static void hook_floor_end(void)
{
    if (level == F_OFFLOAD) { /* the worker finishes the ring */
        off_publish();
        __atomic_store_n(&off_quit, 1, __ATOMIC_RELEASE);
        pthread_join(off_thread, NULL);
        level = F_OBSERVE; /* what is freed after this is not recorded */
    }
    if (verbose) /* a benchmark's own module may print: it is not library code */
        fprintf(stderr, "hook_floor: level %d, %llu ids named, %zu live, last count %d, %llu "
                "referents visited, %llu of them in the map\n", level, (unsigned long long)next_id,
                map.count, seen_count, (unsigned long long)visited, (unsigned long long)found);
}

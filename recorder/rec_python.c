/* rec_python.c: records a Python program on an embedded CPython 3.11 through PEP 445 hooks.
 *
 * Theory of operation (docs/recorder.md has the long form).
 *
 *   main --Py_PreInitialize--> hooks installed: RAW, MEM, OBJ wrappers + arena wrapper
 *        --Py_InitializeFromConfig--> PHASE startup ... PHASE script --Py_RunMain--> script
 *        --atexit (last)--> STATS gc, STATS pymalloc, PHASE finalize --Py_FinalizeEx--> END
 *
 * Every hook call is one recorded event: [lock; observe; real call; record; unlock]. The real call
 * happens under the sink lock so that addresses change hands in trace order. A thread-local depth
 * counter marks MEM/OBJ calls in progress; RAW calls made from inside them (pymalloc's fallbacks
 * for 0 and >512 bytes, arena-vector growth, radix-tree nodes) are not recorded again: the outer
 * event stands for them. The arena wrapper records 1 MiB maps and unmaps made inside MEM/OBJ calls
 * (the interpreter's 16 KiB frame-stack chunks also come through it and are ignored).
 *
 * GC-capable allocations. CPython adds 1 to generations[0].count right after PyObject_Malloc
 * returns a GC object (_PyObject_GC_Link), subtracts 1 (if > 0) right before PyObject_Free of one
 * (PyObject_GC_Del), and nothing else touches the count between two allocator calls except a
 * collection, which starts inside the link and whose start callback allocates. So the newest OBJ
 * allocation is held back ("pending") with the count read when it returned; the next observation
 * (the next hook call on a thread holding the GIL, a gc callback, a phase mark, the end) reads
 * the count again and decides:
 *
 *   next event               count now == c+1      count now == c        count now == c-1
 *   alloc/realloc/non-GC free  GC                  not GC                 (unexpected)
 *   free of a GC block         GC (c >= 1)         not GC... see below
 *
 * For a free of a GC block, "count now" is after that block's own decrement: c >= 1 gives c (GC)
 * or c-1 (not GC); c == 0 gives 0 either way (the decrement was clamped), and a pending block
 * freed at once gives c either way. Those are the only ambiguous cases, and in both the flag
 * cannot change any generation-0 count, so counting stays exact whatever is decided; the
 * recorder then decides from the block's contents: a GC object has, 16 or 32 bytes in, a
 * refcount and a pointer to a type that earlier unambiguous GC allocations showed to be a GC
 * type with that pre-header size (a set of learned types, never dereferenced here).
 *
 * Collections. The recorder appends a C function to gc.callbacks. A collection CPython starts by
 * itself is noticed at the first observation after the triggering allocation (gcstate->collecting
 * is 1 and the count just crossed the threshold): GC_BEGIN is written right there, after the
 * triggering ALLOC and before the callback's own allocations, with the generation computed by
 * the same rule gc_collect_generations uses (checked against the callback's generation). An
 * explicit gc.collect() is written as GC_CONTROL collect then GC_BEGIN from the start callback;
 * GC_END comes from the stop callback.
 *
 * Locking: MEM/OBJ hooks run with the GIL; RAW hooks may not. Only a thread holding the GIL
 * reads the interpreter's gc state; a RAW call from a thread without it is written while the
 * pending allocation stays pending (the two calls are concurrent, either order is true).
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1 /* the gc state (generation counts) lives in the internal interpreter state */
#endif
#include <Python.h>
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"

#include "hr_recorder.h"
#include "hr_trace.h"
#include "rec_graph.h"
#include "rec_idmap.h"
#include "rec_python.h"
#include "rec_sink.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exported by libpython3.11 but declared only in an internal header. */
extern int _PyObject_DebugMallocStats(FILE *out);

#define ARENA_BYTES ((size_t)1 << 20)
#define SMALL_WORD ((uint64_t)1 << 32) /* a refcount of a fresh object is below this */

hr_rec_t hr_rec; /* the one recorder of this process */
#define R hr_rec

static _Thread_local int t_depth; /* MEM/OBJ calls in progress on this thread */

/* {====================================================================
 * The interpreter's gc state
 * ==================================================================== */

static inline struct _gc_runtime_state *gcstate(void)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    return in ? &in->gc : NULL;
}

/* {====================================================================
 * Writing
 * ==================================================================== */

int hr_rec_emit(const hr_event_t *ev)
{
    return hr_sink_write(&R.sink, ev);
}

int hr_rec_emit_id(int op, uint64_t id)
{
    hr_event_t ev = {.op = (uint8_t)op, .a = id};
    return hr_sink_write(&R.sink, &ev);
}

int hr_rec_emit_str(int op, uint32_t tag, const char *s, size_t len)
{
    hr_event_t ev = {.op = (uint8_t)op, .tag = tag, .a = len};
    ev.str = (const uint8_t *)s;
    return hr_sink_write(&R.sink, &ev);
}

static void emit_phase(const char *name) { hr_rec_emit_str(HR_OP_PHASE, 0, name, strlen(name)); }

/* Something the program did to its collector: replays perform it (GC_CONTROL). */
static void emit_gc_control(unsigned action, uint64_t a, uint64_t b)
{
    hr_event_t ev = {.op = HR_OP_GC_CONTROL, .tag = action, .a = a, .b = b};
    hr_rec_emit(&ev);
}

/* Write ALLOC for a block now at `addr` and remember it. */
static void emit_alloc(uintptr_t addr, uint64_t size, int domain, unsigned flags, uint32_t type)
{
    if (R.sink.off)
        return;
    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = (uint8_t)domain, .flags = (uint8_t)flags,
                     .tag = type, .a = hr_trace_writer_next_id(R.sink.w), .b = size};
    if (hr_sink_write(&R.sink, &ev))
        return;
    if (hr_idmap_put(&R.map, addr, ev.a, flags)) {
        hr_err_set(&R.sink.err, HR_ENOMEM, "the recorder's address map cannot grow");
        R.sink.failed = 1;
        R.sink.off = 1;
    }
}

/* {====================================================================
 * Learned GC types (for the two ambiguous cases; see the top of the file)
 * ==================================================================== */

static size_t preheader(PyTypeObject *t)
{
    return (PyType_IS_GC(t) ? sizeof(PyGC_Head) : 0) +
           (PyType_HasFeature(t, Py_TPFLAGS_MANAGED_DICT) ? 2 * sizeof(PyObject *) : 0);
}

/* Is t safe to read as a type object? Only addresses inside a loaded object's image (static
 * types) or 16 bytes into a live recorded block (heap types are GC objects) are dereferenced. */
static int readable_type(uintptr_t t)
{
    if (!t || (t & 7))
        return 0;
    if (hr_idmap_get(&R.map, t - 16, NULL, NULL))
        return 1;
    Dl_info info;
    return dladdr((void *)t, &info) != 0 && info.dli_fname != NULL;
}

static int valid_type(uintptr_t t, size_t pre)
{
    if (!readable_type(t))
        return 0;
    PyTypeObject *ty = (PyTypeObject *)t;
    return PyType_Check((PyObject *)ty) && PyType_IS_GC(ty) && preheader(ty) == pre;
}

/* Learn the type of a block that the count showed to be a GC allocation. The object may be
 * initialised and alive, already dead on a free list (refcount 0), or not yet initialised (a
 * collection started inside its allocation): each candidate position is checked before use. */
static void learn_type(uintptr_t a, uint64_t size)
{
    const uint64_t *w = (const uint64_t *)a;
    uint64_t known;
    for (int pre = 16; pre <= 32; pre += 16) {
        size_t rc = (size_t)pre / 8, ty = rc + 1;
        if (size < (uint64_t)pre + 16 || w[rc] >= SMALL_WORD)
            continue;
        uintptr_t t = (uintptr_t)w[ty];
        if (hr_idmap_get(&R.types, t, &known, NULL) && known == (uint64_t)pre)
            return;
        if (hr_idmap_get(&R.rejected, t, NULL, NULL))
            continue;
        if (valid_type(t, (size_t)pre)) {
            hr_idmap_put(&R.types, t, (uint64_t)pre, 0);
            return;
        }
        if (R.rejected.count < 4096)
            hr_idmap_put(&R.rejected, t, 0, 0);
    }
    R.stat.learn_rejected++;
}

/* The learned type of a GC block and its pre-header size, or NULL. Never dereferences. */
static PyTypeObject *gc_block_type(uintptr_t a, uint64_t size, size_t *pre)
{
    const uint64_t *w = (const uint64_t *)a;
    uint64_t known;
    if (size >= 32 && w[2] < SMALL_WORD &&
        hr_idmap_get(&R.types, (uintptr_t)w[3], &known, NULL) && known == 16) {
        *pre = 16;
        return (PyTypeObject *)w[3];
    }
    if (size >= 48 && w[4] < SMALL_WORD &&
        hr_idmap_get(&R.types, (uintptr_t)w[5], &known, NULL) && known == 32) {
        *pre = 32;
        return (PyTypeObject *)w[5];
    }
    *pre = 0;
    return NULL;
}

/* Does block a look like a GC object of a learned type? (Refcount 0 is allowed: a GC object
 * may already sit on a free list when its allocation is resolved.) */
static int looks_gc(uintptr_t a, uint64_t size)
{
    size_t pre;
    return gc_block_type(a, size, &pre) != NULL;
}

PyTypeObject *hr_rec_gc_block_type(uintptr_t block, uint64_t size, size_t *pre);
PyTypeObject *hr_rec_gc_block_type(uintptr_t block, uint64_t size, size_t *pre)
{
    return gc_block_type(block, size, pre);
}

/* A type object is being freed: forget it (its address may come back as another type). */
static void forget_type_at(uintptr_t block)
{
    hr_idmap_take(&R.types, block + 16, NULL, NULL);
    hr_idmap_take(&R.types, block + 32, NULL, NULL);
}

/* {====================================================================
 * Observation: resolve the pending allocation, notice collections and gc setting changes
 * ==================================================================== */

enum { NEXT_OTHER = 0, NEXT_GC_FREE = 1, NEXT_FREE_PENDING = 2 };

/* After the start callback, until CPython zeroes the counts, only the callback machinery's own
 * frees happen: the info dict's key strings (allocated from gc_first_id on) and its keys object;
 * the dict itself goes back to its free list. So the free of a GC block allocated before
 * gc_first_id is the collector's, and so is any other observation (an allocation, a realloc)
 * when the count, already 0 at the start callback, gives nothing to watch. */
static uint64_t gc_first_id;
#define OBS_NOT_FREE UINT64_MAX         /* the observed event is not a free */
#define OBS_FREE_OTHER (UINT64_MAX - 1) /* a free of the pending or an unknown block */
static uint64_t obs_free_id = OBS_NOT_FREE; /* else the id h_free is freeing while it observes */

static void note_gc_settings(const struct _gc_runtime_state *g)
{
    if (g->enabled != R.gc_enabled) {
        R.gc_enabled = g->enabled;
        emit_gc_control(g->enabled ? HR_GC_ENABLE : HR_GC_DISABLE, 0, 0);
    }
    if (g->generations[0].threshold != R.gc_thr[0] || g->generations[1].threshold != R.gc_thr[1] ||
        g->generations[2].threshold != R.gc_thr[2]) {
        for (int i = 0; i < 3; i++)
            R.gc_thr[i] = g->generations[i].threshold;
        emit_gc_control(HR_GC_THRESHOLD, (uint64_t)R.gc_thr[0],
                        (uint64_t)(uint32_t)R.gc_thr[1] | (uint64_t)(uint32_t)R.gc_thr[2] << 32);
    }
}

/* `in_link`: a collection started inside the pending allocation's _PyObject_GC_Link, which
 * CPython calls before it initialises the object (gc_alloc, _PyType_AllocNoTrack): the block
 * still holds whatever its previous occupant left there (pymalloc does not clear a block; a
 * dead object of another type in the same size class looks like a live object of that type),
 * so graph mode must not read a type from it. */
static void resolve_pending(int next, int now, int triggered, int in_link)
{
    hr_pending_t *p = &R.pend;
    p->active = 0;
    int gc = 0, decided = 1;
    if (triggered) {
        gc = 1; /* a collection started inside its link (seen without a callback) */
    } else if (p->count0 < 0 || now < 0) {
        gc = 0; /* no interpreter: no GC object can exist */
    } else if (next == NEXT_FREE_PENDING) {
        decided = 0;
    } else if (next == NEXT_GC_FREE) {
        if (p->count0 == 0)
            decided = 0;
        else if (now == p->count0)
            gc = 1;
        else if (now == p->count0 - 1)
            gc = 0;
        else
            decided = 0, R.stat.unexpected++;
    } else {
        if (now == p->count0 + 1)
            gc = 1;
        else if (now == p->count0)
            gc = 0;
        else
            decided = 0, R.stat.unexpected++;
    }
    if (!decided) {
        R.stat.ambiguous++;
        gc = looks_gc(p->addr, p->size);
        R.stat.ambiguous_gc += (uint64_t)gc;
    } else if (p->count0 >= 0 && now >= 0) {
        struct _gc_runtime_state *g = gcstate();
        if (gc && !g->collecting)
            learn_type(p->addr, p->size);
        if (R.self_check && !(gc && g->collecting) && looks_gc(p->addr, p->size) != gc)
            R.stat.check_disagree++;
    }
    if (gc) {
        R.stat.gc_allocs++;
        R.last_gc = 1;
        struct _gc_runtime_state *g = gcstate();
        if (g)
            note_gc_settings(g);
    }
    unsigned flags = (gc ? HR_F_GC : 0) | (p->zero ? HR_F_ZERO : 0);
    if (R.mode == HR_KIND_GRAPH && gc)
        hr_rec_graph_alloc(p->addr, p->size, flags, in_link);
    else
        emit_alloc(p->addr, p->size, HR_DOMAIN_OBJ, flags, 0);
}

static void copy_stats(int64_t dst[3][3], const struct _gc_runtime_state *g)
{
    for (int i = 0; i < 3; i++) {
        dst[i][0] = g->generation_stats[i].collections;
        dst[i][1] = g->generation_stats[i].collected;
        dst[i][2] = g->generation_stats[i].uncollectable;
    }
}

static void write_gc_end(int gen, int64_t collected, int64_t uncollectable)
{
    hr_event_t ev = {.op = HR_OP_GC_END, .tag = (uint32_t)gen, .a = (uint64_t)collected,
                     .b = (uint64_t)uncollectable};
    if (R.mode == HR_KIND_GRAPH)
        hr_rec_graph_collection_end();
    R.graph_done = 0;
    hr_sink_write(&R.sink, &ev);
}

static void write_gc_begin(int gen)
{
    hr_event_t ev = {.op = HR_OP_GC_BEGIN, .tag = (uint32_t)gen};
    hr_sink_write(&R.sink, &ev);
}

/* The generation gc_collect_generations picks with generation 0's count at `count0`. */
static int collect_gen(const struct _gc_runtime_state *g, int count0)
{
    for (int i = NUM_GENERATIONS - 1; i >= 0; i--) {
        int c = i == 0 ? count0 : g->generations[i].count;
        if (c > g->generations[i].threshold) {
            if (i == NUM_GENERATIONS - 1 && g->long_lived_pending < g->long_lived_total / 4)
                continue;
            return i;
        }
    }
    return 0;
}

/* Graph mode: a collection is about to run on a whole heap: reconcile and apply it to the
 * shadow (once per collection). */
static void graph_collection(int gen)
{
    if (R.mode != HR_KIND_GRAPH || R.graph_done)
        return;
    if (hr_rec_graph_prepared() != gen)
        hr_rec_graph_prepare(gen);
    hr_rec_graph_commit();
    R.graph_done = 1;
}

/* Before our gc.callbacks entry exists (interpreter start-up) collections are seen only through
 * the gc state: `collecting`, the counts and generation_stats. */
static void observe_without_callback(struct _gc_runtime_state *g, int triggered)
{
    if (g->collecting && R.gc_state == GC_IDLE) {
        R.gc_state = GC_SEEN;
        if (triggered) {
            int gen = g->generations[1].count == R.pend.count1 + 1   ? 0
                      : g->generations[2].count == R.pend.count2 + 1 ? 1
                                                                     : 2;
            copy_stats(R.begin_stats, g);
            write_gc_begin(gen);
            R.gc_gen = gen;
            R.gc_state = GC_OPEN_NOCB;
        }
    } else if (!g->collecting) {
        int64_t now[3][3];
        copy_stats(now, g);
        if (R.gc_state == GC_OPEN_NOCB) {
            int i = R.gc_gen;
            write_gc_end(i, now[i][1] - R.begin_stats[i][1], now[i][2] - R.begin_stats[i][2]);
        } else if (triggered) { /* begun and ended between two observations */
            for (int i = 2; i >= 0; i--)
                if (now[i][0] != R.last_stats[i][0]) {
                    write_gc_begin(i);
                    write_gc_end(i, now[i][1] - R.last_stats[i][1],
                                 now[i][2] - R.last_stats[i][2]);
                    break;
                }
        }
        R.gc_state = GC_IDLE;
        R.graph_done = 0;
        memcpy(R.last_stats, now, sizeof now);
    }
}

/* `next` says what the event being observed is (for the count arithmetic). Holds the lock. */
static void observe(int next)
{
    struct _gc_runtime_state *g = gcstate();
    int now = g ? g->generations[0].count : -1;
    R.last_gc = 0;
    int triggered = 0;
    if (HR_UNLIKELY(!R.cb_active) && g && R.pend.active && !R.pend.collecting &&
        R.pend.count0 >= 0 && g->enabled && g->generations[0].threshold &&
        R.pend.count0 + 1 > g->generations[0].threshold &&
        (g->collecting || g->generation_stats[0].collections != R.last_stats[0][0] ||
         g->generation_stats[1].collections != R.last_stats[1][0] ||
         g->generation_stats[2].collections != R.last_stats[2][0]))
        triggered = 1;
    /* The collection in progress started inside the pending allocation's link (this is the
     * first observation since): that allocation is not initialised yet. */
    int in_link = triggered ||
                  (g && g->collecting && R.pend.active && !R.pend.collecting &&
                   R.pend.count0 >= 0 && g->enabled && g->generations[0].threshold &&
                   R.pend.count0 + 1 > g->generations[0].threshold);
    if (HR_UNLIKELY(R.mode == HR_KIND_GRAPH) && g) {
        if (!R.cb_active) {
            /* start-up: a collection predicted at the allocation; did it happen? */
            if (triggered)
                graph_collection(collect_gen(g, R.pend.count0 + 1));
            else if (hr_rec_graph_prepared() >= 0)
                hr_rec_graph_discard();
        } else if (in_link && R.gc_state == GC_IDLE) {
            /* A collection started inside the pending allocation's link, and this is the first
             * observation since (gc callbacks' info dict): the heap is still whole. The
             * reconciliation goes before that ALLOC, where the replay collects. */
            graph_collection(collect_gen(g, R.pend.count0 + 1));
        }
    }
    if (R.pend.active)
        resolve_pending(next, now, triggered, in_link);
    if (!g)
        return;
    if (HR_UNLIKELY(R.self_check > 1)) { /* debugging aid: the real count at every observation */
        char b[32];
        snprintf(b, sizeof b, "count %d", now);
        emit_phase(b);
    }
    if (HR_UNLIKELY(!R.cb_active)) {
        observe_without_callback(g, triggered);
        return;
    }
    if (HR_UNLIKELY(R.last_gc) && !g->collecting && g->enabled && g->generations[0].threshold &&
        now > g->generations[0].threshold) {
        /* The count passed the threshold at that allocation but no collection started: CPython
         * does not collect while an exception is set (e.g. a traceback being built). */
        emit_phase("gc.skipped");
        R.stat.skipped++;
    }
    if (HR_UNLIKELY(g->collecting)) {
        if (R.gc_state == GC_IDLE) {
            /* Started by itself inside the link of the GC allocation just resolved? */
            R.gc_state = R.last_gc && g->enabled && g->generations[0].threshold &&
                                 now > g->generations[0].threshold
                             ? GC_SEEN_AUTO
                             : GC_SEEN;
            gc_first_id = hr_trace_writer_next_id(R.sink.w);
        } else if (R.gc_state == GC_CB) {
            /* Between the start callback and the scan CPython zeroes the counts; until then
             * the count moves only by the callback info's own frees. */
            int expected = R.win_count - (next == NEXT_GC_FREE && R.win_count > 0);
            if (now != expected || (next == NEXT_GC_FREE && obs_free_id < gc_first_id) ||
                (R.win_count == 0 && obs_free_id == OBS_NOT_FREE)) {
                write_gc_begin(R.gc_gen);
                R.gc_state = GC_OPEN;
            } else {
                R.win_count = now;
            }
        }
    } else if (R.gc_state != GC_IDLE) {
        if (R.gc_state == GC_OPEN || R.gc_state == GC_CB) /* ended without a stop callback */
            R.stat.gc_unclosed++;
        R.gc_state = GC_IDLE;
        R.graph_done = 0;
    }
}

/* {====================================================================
 * The hooks
 * ==================================================================== */

typedef struct dom_ctx {
    int domain; /* PYMEM_DOMAIN_RAW/MEM/OBJ == HR_DOMAIN_RAW/MEM/OBJ */
} dom_ctx_t;
static dom_ctx_t dom_ctx[3] = {{0}, {1}, {2}};

static inline int gil_held(int domain)
{
    return domain != PYMEM_DOMAIN_RAW || PyGILState_Check();
}

static inline void enter(void) { t_depth++; hr_sink_lock(&R.sink); }
static inline void leave(void) { hr_sink_unlock(&R.sink); t_depth--; }

static void *do_alloc(int d, size_t nelem, size_t elsize, int zero)
{
    PyMemAllocatorEx *o = &R.orig[d];
    if ((d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off)
        return zero ? o->calloc(o->ctx, nelem, elsize) : o->malloc(o->ctx, nelem);
    enter();
    if (gil_held(d))
        observe(NEXT_OTHER);
    if (HR_UNLIKELY(R.mode == HR_KIND_GRAPH) && !R.cb_active && d == PYMEM_DOMAIN_OBJ &&
        !R.sink.off) {
        /* Start-up (no gc callback yet): if this is a GC allocation, CPython collects inside
         * its link, and no observation follows before the collector changes the heap. */
        struct _gc_runtime_state *g = gcstate();
        if (g && !g->collecting && g->enabled && g->generations[0].threshold &&
            g->generations[0].count + 1 > g->generations[0].threshold && !PyErr_Occurred())
            hr_rec_graph_prepare(collect_gen(g, g->generations[0].count + 1));
    }
    void *p = zero ? o->calloc(o->ctx, nelem, elsize) : o->malloc(o->ctx, nelem);
    if (p && !R.sink.off) {
        uint64_t size = zero ? (uint64_t)nelem * elsize : nelem;
        if (d == PYMEM_DOMAIN_OBJ) {
            struct _gc_runtime_state *g = gcstate();
            R.pend = (hr_pending_t){.active = 1, .addr = (uintptr_t)p, .size = size,
                                    .zero = zero, .count0 = g ? g->generations[0].count : -1};
            if (g) {
                R.pend.count1 = g->generations[1].count;
                R.pend.count2 = g->generations[2].count;
                R.pend.collecting = g->collecting;
            }
        } else {
            emit_alloc((uintptr_t)p, size, d, zero ? HR_F_ZERO : 0, 0);
        }
    }
    leave();
    return p;
}

static void *h_malloc(void *ctx, size_t n) { return do_alloc(((dom_ctx_t *)ctx)->domain, n, 1, 0); }
static void *h_calloc(void *ctx, size_t ne, size_t es)
{
    return do_alloc(((dom_ctx_t *)ctx)->domain, ne, es, 1);
}

static void h_free(void *ctx, void *p)
{
    int d = ((dom_ctx_t *)ctx)->domain;
    PyMemAllocatorEx *o = &R.orig[d];
    if (!p || (d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off) {
        o->free(o->ctx, p);
        return;
    }
    enter();
    uintptr_t a = (uintptr_t)p;
    uint64_t id = 0;
    unsigned fl = 0;
    int known = 0;
    if (gil_held(d)) {
        int next = NEXT_OTHER;
        if (R.pend.active && R.pend.addr == a) {
            next = NEXT_FREE_PENDING;
        } else {
            known = hr_idmap_take(&R.map, a, &id, &fl);
            if (known && (fl & HR_F_GC))
                next = NEXT_GC_FREE;
        }
        obs_free_id = known && next != NEXT_FREE_PENDING ? id : OBS_FREE_OTHER;
        observe(next); /* may write the pending block (which may be this one) */
        obs_free_id = OBS_NOT_FREE;
    }
    if (known || hr_idmap_take(&R.map, a, &id, &fl)) {
        if (fl & HR_F_GC)
            forget_type_at(a);
        if (fl & HR_F_OBJECT)
            hr_rec_graph_free(a, id, fl);
        else
            hr_rec_emit_id(HR_OP_FREE, id);
    } else {
        R.stat.unknown_frees++; /* allocated before the hooks, or through a swapped allocator */
    }
    o->free(o->ctx, p);
    leave();
}

static void *obj_plain_alloc(size_t n);

static void *h_realloc(void *ctx, void *p, size_t n)
{
    int d = ((dom_ctx_t *)ctx)->domain;
    PyMemAllocatorEx *o = &R.orig[d];
    if ((d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off)
        return o->realloc(o->ctx, p, n);
    if (!p) /* realloc(NULL, n) is malloc(n), never a GC object: written at once */
        return d == PYMEM_DOMAIN_OBJ ? obj_plain_alloc(n) : do_alloc(d, n, 1, 0);
    enter();
    uintptr_t a = (uintptr_t)p;
    if (gil_held(d))
        observe(NEXT_OTHER);
    void *q = o->realloc(o->ctx, p, n);
    if (q && !R.sink.off) {
        uint64_t id;
        unsigned fl;
        if (hr_idmap_take(&R.map, a, &id, &fl)) {
            hr_event_t ev = {.op = HR_OP_REALLOC, .a = id, .b = n};
            hr_sink_write(&R.sink, &ev);
            hr_idmap_put(&R.map, (uintptr_t)q, id, fl);
            if (fl & HR_F_OBJECT)
                hr_rec_graph_moved(a, (uintptr_t)q, id);
        } else {
            R.stat.unknown_reallocs++;
            emit_alloc((uintptr_t)q, n, d, 0, 0);
        }
    }
    leave();
    return q;
}

/* OBJ realloc(NULL, n): an OBJ allocation that cannot be a GC object, written at once. */
static void *obj_plain_alloc(size_t n)
{
    PyMemAllocatorEx *o = &R.orig[PYMEM_DOMAIN_OBJ];
    enter();
    observe(NEXT_OTHER);
    void *p = o->realloc(o->ctx, NULL, n);
    if (p)
        emit_alloc((uintptr_t)p, n, HR_DOMAIN_OBJ, 0, 0);
    leave();
    return p;
}

static void *arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = R.orig_arena.alloc(R.orig_arena.ctx, size);
    /* Arenas are mapped inside a MEM/OBJ call, which holds the lock; frame-stack chunks are not. */
    if (p && size == ARENA_BYTES && t_depth && !R.sink.off) {
        hr_event_t ev = {.op = HR_OP_ARENA_MAP, .a = (uintptr_t)p, .b = size};
        hr_sink_write(&R.sink, &ev);
        R.stat.arenas_mapped++;
    }
    return p;
}

static void arena_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (p && size == ARENA_BYTES && t_depth && !R.sink.off) {
        hr_event_t ev = {.op = HR_OP_ARENA_UNMAP, .a = (uintptr_t)p, .b = size};
        hr_sink_write(&R.sink, &ev);
        R.stat.arenas_unmapped++;
    }
    R.orig_arena.free(R.orig_arena.ctx, p, size);
}

static void install_hooks(void)
{
    for (int d = 0; d < 3; d++) {
        PyMem_GetAllocator((PyMemAllocatorDomain)d, &R.orig[d]);
        PyMemAllocatorEx h = {&dom_ctx[d], h_malloc, h_calloc, h_realloc, h_free};
        PyMem_SetAllocator((PyMemAllocatorDomain)d, &h);
    }
    PyObject_GetArenaAllocator(&R.orig_arena);
    PyObjectArenaAllocator ah = {NULL, arena_alloc, arena_free};
    PyObject_SetArenaAllocator(&ah);
}

/* {====================================================================
 * Python-level pieces: the gc callback, the _heapreplay module, the end-of-script dump
 * ==================================================================== */

static Py_ssize_t info_get(PyObject *info, const char *key)
{
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (info && PyDict_Next(info, &pos, &k, &v))
        if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, key) == 0)
            return PyLong_AsSsize_t(v);
    return -1;
}

static PyObject *gc_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1]))
        Py_RETURN_NONE;
    int start = PyUnicode_CompareWithASCIIString(args[0], "start") == 0;
    Py_ssize_t gen = info_get(args[1], "generation");
    Py_ssize_t collected = info_get(args[1], "collected");
    Py_ssize_t uncollectable = info_get(args[1], "uncollectable");
    if (PyErr_Occurred())
        PyErr_Clear();
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe(NEXT_OTHER);
        struct _gc_runtime_state *g = gcstate();
        if (g)
            note_gc_settings(g);
        if (start) {
            R.gc_gen = gen < 0 ? 0 : (int)gen;
            if (R.gc_state != GC_SEEN_AUTO) { /* requested by the program, not by the count */
                /* the heap is still whole: reconcile before the replay collects */
                R.graph_done = 0;
                graph_collection(R.gc_gen);
                emit_gc_control(HR_GC_COLLECT, gen < 0 ? 0 : (uint64_t)gen, 0);
            } else if (!R.graph_done) {
                R.stat.graph_late++; /* no observation before: reconciled after the ALLOC */
                graph_collection(R.gc_gen);
            }
            R.win_count = g ? g->generations[0].count : 0;
            R.gc_state = GC_CB;
            R.stat.collections++;
        } else {
            if (R.gc_state == GC_CB) { /* the counts were zeroed unseen (they were already 0) */
                write_gc_begin(R.gc_gen);
                R.gc_state = GC_OPEN;
            }
            if (R.gc_state == GC_OPEN)
                write_gc_end(gen < 0 ? 0 : (int)gen, collected < 0 ? 0 : collected,
                             uncollectable < 0 ? 0 : uncollectable);
            R.gc_state = GC_ENDED;
        }
    }
    hr_sink_unlock(&R.sink);
    Py_RETURN_NONE;
}

static PyObject *mod_phase(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t len;
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8AndSize(arg, &len) : NULL;
    if (!s) {
        PyErr_SetString(PyExc_TypeError, "phase() takes a str");
        return NULL;
    }
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe(NEXT_OTHER);
        hr_rec_emit_str(HR_OP_PHASE, 0, s, (size_t)len);
    }
    hr_sink_unlock(&R.sink);
    Py_RETURN_NONE;
}

static void dump_stats(void);

static PyObject *end_of_script(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    dump_stats();
    Py_RETURN_NONE;
}

static PyMethodDef gc_cb_def = {"_heapreplay_gc_callback", (PyCFunction)(void (*)(void))gc_callback,
                                METH_FASTCALL, "heapreplay recorder: gc.callbacks entry"};
static PyMethodDef end_def = {"_heapreplay_end_of_script", end_of_script, METH_NOARGS,
                              "heapreplay recorder: dumps statistics at exit"};
static PyMethodDef mod_methods[] = {
    {"phase", mod_phase, METH_O, "phase(name): write a PHASE marker into the trace"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod_def = {PyModuleDef_HEAD_INIT, "_heapreplay",
                                     "Present while heapreplay records this program.", -1,
                                     mod_methods, NULL, NULL, NULL, NULL};
static PyObject *mod_init(void) { return PyModule_Create(&mod_def); }

/* Register the gc callback and the end-of-script handler (atexit runs handlers last-in first-out,
 * so one registered before the script runs after all of the script's own). */
static int python_setup(hr_err_t *err)
{
    int rc = -1;
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *cbs = gc ? PyObject_GetAttrString(gc, "callbacks") : NULL;
    PyObject *cb = PyCFunction_New(&gc_cb_def, NULL);
    PyObject *ax = PyImport_ImportModule("atexit");
    PyObject *endf = PyCFunction_New(&end_def, NULL);
    PyObject *r = NULL;
    if (cbs && cb && PyList_Check(cbs) && PyList_Append(cbs, cb) == 0 && ax && endf &&
        (r = PyObject_CallMethod(ax, "register", "O", endf)) != NULL)
        rc = 0;
    if (rc) {
        PyErr_Print();
        hr_err_set(err, HR_EINTERNAL, "cannot install the gc callback and exit handler");
    }
    Py_XDECREF(r);
    Py_XDECREF(endf);
    Py_XDECREF(ax);
    Py_XDECREF(cb);
    Py_XDECREF(cbs);
    Py_XDECREF(gc);
    return rc;
}

/* STATS gc (gc.get_stats() as JSON, read from the gc state: nothing is allocated) and STATS
 * pymalloc (the allocator part of _PyObject_DebugMallocStats, with the real OBJ allocator back in
 * place for the dump: pymalloc prints nothing while _PyObject.malloc is not _PyObject_Malloc). */
static void dump_stats(void)
{
    hr_sink_lock(&R.sink);
    if (R.sink.off || R.stats_done) {
        hr_sink_unlock(&R.sink);
        return;
    }
    R.stats_done = 1;
    observe(NEXT_OTHER);
    struct _gc_runtime_state *g = gcstate();
    char json[512];
    if (g) {
        int n = snprintf(json, sizeof json, "[");
        for (int i = 0; i < NUM_GENERATIONS; i++)
            n += snprintf(json + n, sizeof json - (size_t)n,
                          "%s{\"collections\": %zd, \"collected\": %zd, \"uncollectable\": %zd}",
                          i ? ", " : "", g->generation_stats[i].collections,
                          g->generation_stats[i].collected, g->generation_stats[i].uncollectable);
        snprintf(json + n, sizeof json - (size_t)n, "]");
        hr_rec_emit_str(HR_OP_STATS, HR_STATS_GC, json, strlen(json));
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        PyMemAllocatorEx mine;
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &mine);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &R.orig[PYMEM_DOMAIN_OBJ]);
        _PyObject_DebugMallocStats(f);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &mine);
        fclose(f);
    }
    if (text) {
        /* The allocator part ends where the free-list lines ("N free PyDictObjects ...") begin. */
        size_t cut = len;
        for (char *line = text; line && *line;) {
            if (strstr(line, " free ") && strstr(line, "Objects") &&
                (!strchr(line, '\n') || strstr(line, " free ") < strchr(line, '\n'))) {
                cut = (size_t)(line - text);
                break;
            }
            char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : NULL;
        }
        while (cut > 0 && text[cut - 1] == '\n' && cut > 1 && text[cut - 2] == '\n')
            cut--;
        if (len > 0)
            hr_rec_emit_str(HR_OP_STATS, HR_STATS_PYMALLOC, text, cut);
        if (cut < len)
            hr_rec_emit_str(HR_OP_STATS, HR_STATS_TEXT, text, len);
        free(text);
    }
    emit_phase("finalize");
    hr_sink_unlock(&R.sink);
}

/* {====================================================================
 * Start and end
 * ==================================================================== */

static void selfcheck_stats(void)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "heapreplay recorder self-check\n"
                     "gc_allocs %llu\nambiguous %llu\nambiguous_decided_gc %llu\n"
                     "unexpected_count %llu\ncheck_disagree %llu\nlearn_rejected %llu\n"
                     "learned_types %zu\ngen_mispredicted %llu\ngc_unclosed %llu\n"
                     "skipped_triggers %llu\ncollections %llu\narenas_mapped %llu\narenas_unmapped %llu\n"
                     "unknown_frees %llu\nunknown_reallocs %llu\ngraph_late %llu\nself_check %d\n",
                     (unsigned long long)R.stat.gc_allocs, (unsigned long long)R.stat.ambiguous,
                     (unsigned long long)R.stat.ambiguous_gc, (unsigned long long)R.stat.unexpected,
                     (unsigned long long)R.stat.check_disagree,
                     (unsigned long long)R.stat.learn_rejected, R.types.count,
                     (unsigned long long)R.stat.gen_mispredicted,
                     (unsigned long long)R.stat.gc_unclosed, (unsigned long long)R.stat.skipped,
                     (unsigned long long)R.stat.collections,
                     (unsigned long long)R.stat.arenas_mapped,
                     (unsigned long long)R.stat.arenas_unmapped,
                     (unsigned long long)R.stat.unknown_frees,
                     (unsigned long long)R.stat.unknown_reallocs,
                     (unsigned long long)R.stat.graph_late, R.self_check);
    if (R.mode == HR_KIND_GRAPH)
        n += hr_rec_graph_selfcheck(buf + n, sizeof buf - (size_t)n);
    hr_rec_emit_str(HR_OP_STATS, HR_STATS_TEXT, buf, strlen(buf));
}

/* Close the trace (once, in the owning process). Holds no lock on entry. */
static int finish(hr_err_t *err)
{
    if (R.finished || R.sink.owner != getpid())
        return HR_OK;
    R.finished = 1;
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        if (R.pend.active) /* no interpreter left to ask: decide from the last count seen */
            observe(NEXT_OTHER);
        selfcheck_stats();
    }
    hr_sink_unlock(&R.sink);
    return hr_sink_close(&R.sink, err);
}

static void at_c_exit(void)
{
    hr_err_t err = {0};
    if (finish(&err) && R.report) {
        R.report(&err);
        _exit(3);
    }
}

static void forked_child(void) { hr_sink_forked_child(&R.sink); }

static int make_header(hr_trace_header_t *h, const hr_record_opts_t *o)
{
    char date[64], buf[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    hr_trace_header_init(h, o->mode);
    int rc = hr_trace_header_set(h, "producer", "heapreplay record " HR_REC_VERSION);
    rc |= hr_trace_header_set(h, "command", o->cmdline ? o->cmdline : "");
    rc |= hr_trace_header_set(h, "python_version", Py_GetVersion());
    rc |= hr_trace_header_set(h, "date", date);
    rc |= hr_trace_header_set(h, "mode", o->mode == HR_KIND_GRAPH ? "graph" : "alloc");
    rc |= hr_trace_header_set(h, "recorder", "cpython-pep445");
    const char *pm = getenv("PYTHONMALLOC");
    rc |= hr_trace_header_set(h, "pythonmalloc", pm && *pm ? pm : "default");
    snprintf(buf, sizeof buf, "%zu", ARENA_BYTES);
    rc |= hr_trace_header_set(h, "arena_size", buf);
    rc |= hr_trace_header_set(h, "pool_size", "16384");
    rc |= hr_trace_header_set(h, "gc_threshold", "700,10,10");
    return rc;
}

static int wset(wchar_t **dst, const char *s, PyConfig *c)
{
    PyStatus st = PyConfig_SetBytesString(c, dst, s);
    return PyStatus_Exception(st) ? -1 : 0;
}

int hr_record_python(const hr_record_opts_t *o, int *exit_status, hr_err_t *err)
{
    *exit_status = -1;
    if (R.started)
        return hr_err_set(err, HR_EUSAGE, "the Python recorder runs once per process");
    R.started = 1;
    R.mode = o->mode;
    R.report = o->report;
    const char *sc = getenv("HEAPREPLAY_SELF_CHECK");
    R.self_check = sc && *sc ? atoi(sc) : 0;
    R.gc_enabled = 1;
    R.gc_thr[0] = 700, R.gc_thr[1] = 10, R.gc_thr[2] = 10;
    if (hr_idmap_init(&R.map, 18) || hr_idmap_init(&R.types, 10) || hr_idmap_init(&R.rejected, 8))
        return hr_err_set(err, HR_ENOMEM, "cannot map the recorder's tables");
    if (R.mode == HR_KIND_GRAPH && hr_rec_graph_init(err))
        return err ? err->code : HR_ENOMEM;

    /* Pre-initialise (this may select the allocators, e.g. PYTHONMALLOC), then hook. */
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        return hr_err_set(err, HR_EINTERNAL, "Py_PreInitialize failed: %s",
                          st.err_msg ? st.err_msg : "?");
    if (PyImport_AppendInittab("_heapreplay", mod_init) < 0)
        return hr_err_set(err, HR_EINTERNAL, "cannot register the _heapreplay module");

    hr_trace_header_t h;
    if (make_header(&h, o)) {
        hr_trace_header_free(&h);
        return hr_err_set(err, HR_EINTERNAL, "cannot build the trace header");
    }
    hr_trace_write_opts_t wo = {.frame_target = o->frame_target, .level = o->level};
    int rc = hr_sink_open(&R.sink, o->out_path, &h, &wo, err);
    hr_trace_header_free(&h);
    if (rc)
        return rc;
    pthread_atfork(NULL, NULL, forked_child);
    atexit(at_c_exit);
    hr_sink_lock(&R.sink);
    emit_phase("startup");
    hr_sink_unlock(&R.sink);
    install_hooks();

    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.parse_argv = 0;
    int bad = wset(&cfg.program_name, HR_PYTHON_EXE, &cfg);
    bad |= wset(&cfg.run_filename, o->argv[0], &cfg);
    st = PyConfig_SetBytesArgv(&cfg, o->argc, o->argv);
    if (bad || PyStatus_Exception(st)) {
        PyConfig_Clear(&cfg);
        finish(NULL);
        return hr_err_set(err, HR_EINTERNAL, "cannot configure the interpreter");
    }
    st = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st)) {
        finish(NULL);
        if (PyStatus_IsExit(st)) {
            *exit_status = st.exitcode;
            return HR_OK;
        }
        return hr_err_set(err, HR_EINTERNAL, "Python initialisation failed: %s",
                          st.err_msg ? st.err_msg : "?");
    }
    if (python_setup(err)) {
        finish(NULL);
        return err ? err->code : HR_EINTERNAL;
    }
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe(NEXT_OTHER);
        R.cb_active = 1;
        emit_phase("script");
    }
    hr_sink_unlock(&R.sink);

    *exit_status = Py_RunMain(); /* runs the script, the atexit handlers, and finalises */
    return finish(err);
}

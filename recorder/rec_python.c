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
 * type with that pre-header size (a set of learned types, rec_types.c; never dereferenced).
 *
 * Collections. The recorder appends a C function to gc.callbacks. A collection CPython starts by
 * itself is noticed at the first observation after the triggering allocation (gcstate->collecting
 * is 1 and the count just crossed the threshold): GC_BEGIN is written right there, after the
 * triggering ALLOC and before the callback's own allocations, with the generation computed by
 * the same rule gc_collect_generations uses (checked against the callback's generation). An
 * explicit gc.collect() is written as GC_CONTROL collect then GC_BEGIN from the start callback;
 * GC_END comes from the stop callback. Collections that call no callbacks (interpreter
 * finalisation's _PyGC_CollectNoFail) are seen from inside the collector: the recorder's probe
 * object is traversed as each full collection starts (see "The probe"); they are written like a
 * gc.collect(), and GC_END comes at the first observation after `collecting` is back at 0.
 *
 * Hooks: RAW calls take the general hooks (do_alloc, do_free, do_realloc), which handle every
 * state. MEM and OBJ calls take fast paths (fast_alloc, fast_free) whenever the recorder and the
 * interpreter are in the state nearly every call finds (the gc callback installed, no collection
 * in progress or being tracked, no per-observation debugging: R.slow == 0 and `collecting` == 0):
 * there an observation only resolves the pending allocation's unambiguous cases, and the event is
 * encoded in place (hr_trace_wfast.h) next to the address map's store. Anything else (an
 * ambiguous or unexpected count, the pending block or an unknown block freed, the self-check)
 * goes to the general code, so both write the same events: HEAPREPLAY_GENERIC_HOOKS=1 installs
 * the general hooks for MEM and OBJ too, and a test compares the traces.
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
#include "rec_types.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exported by libpython3.11 but declared only in an internal header. */
extern int _PyObject_DebugMallocStats(FILE *out);

#define ARENA_BYTES ((size_t)1 << 20)

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

/* Graph mode writes most of its events through these: the writer's fast paths take ALLOC (of
 * the next id, unaligned), the id events and LINK/UNLINK; the rest goes through hr_trace_write. */
int hr_rec_emit(const hr_event_t *ev)
{
    uint64_t id;
    switch (ev->op) {
    case HR_OP_ALLOC:
        if (ev->a != hr_trace_writer_next_id(R.sink.w) || (ev->flags & HR_F_ALIGNED))
            break;
        return hr_sink_alloc(&R.sink, ev->b, ev->domain, ev->flags, ev->tag, &id);
    case HR_OP_LINK:
    case HR_OP_UNLINK:
        return hr_sink_link(&R.sink, ev->op, ev->a, ev->b);
    case HR_OP_FREE:
    case HR_OP_INCREF:
    case HR_OP_DECREF:
    case HR_OP_DIED:
        return hr_sink_id(&R.sink, ev->op, ev->a);
    }
    return hr_sink_write(&R.sink, ev);
}

int hr_rec_emit_id(int op, uint64_t id)
{
    if (op == HR_OP_FREE || op == HR_OP_INCREF || op == HR_OP_DECREF || op == HR_OP_DIED)
        return hr_sink_id(&R.sink, op, id);
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
/* PHASE gc.trigger: CPython started the collection about to be bracketed inside the link of the
 * GC allocation whose ALLOC was the last one written (docs/trace-format.md), where a replay's
 * generational collector must start its own; validate checks that it does, at that event. */
static void emit_trigger(void) { emit_phase("gc.trigger"); }

/* Something the program did to its collector: replays perform it (GC_CONTROL). */
static void emit_gc_control(unsigned action, uint64_t a, uint64_t b)
{
    hr_event_t ev = {.op = HR_OP_GC_CONTROL, .tag = action, .a = a, .b = b};
    hr_rec_emit(&ev);
}

/* Stop recording on the recorder's own error (holds the lock): the first error is the one
 * reported at exit, and the trace is left without its end. */
static void rec_failed(const hr_err_t *e)
{
    if (!R.sink.failed)
        R.sink.err = *e;
    R.sink.failed = 1;
    R.sink.off = 1;
}

static void map_failed(void)
{
    hr_err_t e = {0};
    hr_err_set(&e, HR_ENOMEM, "the recorder's address map cannot grow");
    rec_failed(&e);
}

/* Write ALLOC for a block now at `addr` and remember it. */
HR_INLINE void emit_alloc(uintptr_t addr, uint64_t size, int domain, unsigned flags)
{
    uint64_t id;
    if (HR_UNLIKELY(hr_sink_alloc(&R.sink, size, (unsigned)domain, flags, 0, &id)))
        return;
    if (HR_UNLIKELY(hr_idmap_add_fast(&R.map, addr, id, flags)))
        map_failed();
}

/* Graph mode: a non-GC OBJ allocation that is a code object (code objects are not GC objects in
 * 3.11, but they hold tuples and frozensets that are: their constants, names and local names)
 * becomes an object of the graph, so that what only a code object holds dies with it in the
 * replay (rec_graph.c, "code objects"). Read at its resolution, the first hook call after its
 * allocation: PyObject_NewVar sets the type and the refcount before anything else allocates. A
 * reused block's stale bytes cannot pass: pymalloc and glibc write a free-list pointer (or 0)
 * where the refcount would be. */
static inline int is_code_block(uintptr_t a, uint64_t size)
{
    const PyObject *op = (const PyObject *)a;
    return size >= sizeof(PyCodeObject) && Py_TYPE(op) == &PyCode_Type &&
           (uint64_t)(Py_REFCNT(op) - 1) < HR_REC_SMALL_WORD;
}

/* Write the ALLOC of the resolved pending allocation (flags: its ALLOC flags, HR_F_GC for a GC
 * object). In graph mode a GC object, or a code object, becomes an object of the graph
 * (`in_link`: a collection started inside its allocation, see hr_rec_graph_alloc). */
HR_INLINE void emit_obj(const hr_pending_t *p, unsigned flags, int in_link)
{
    if (HR_LIKELY(R.mode != HR_KIND_GRAPH))
        emit_alloc(p->addr, p->size, HR_DOMAIN_OBJ, flags);
    else if (flags & HR_F_GC)
        hr_rec_graph_alloc(p->addr, p->size, flags, in_link);
    else if (is_code_block(p->addr, p->size))
        hr_rec_graph_alloc_code(p->addr, p->size, flags);
    else
        emit_alloc(p->addr, p->size, HR_DOMAIN_OBJ, flags);
}

/* {====================================================================
 * Observation: resolve the pending allocation, notice collections and gc setting changes
 * ==================================================================== */

/* NEXT_COUNT_LOST: a collection zeroed the count since the pending allocation (one seen only
 * from inside the collector: the probe below), so the count cannot tell. */
enum { NEXT_OTHER = 0, NEXT_GC_FREE = 1, NEXT_FREE_PENDING = 2, NEXT_COUNT_LOST = 3 };

/* After the start callback, until CPython zeroes the counts, only the callback machinery's own
 * frees happen: the info dict's key strings (allocated from gc_first_id on) and its keys object;
 * the dict itself goes back to its free list. So the free of a GC block allocated before
 * gc_first_id is the collector's, and so is any other observation (an allocation, a realloc)
 * when the count, already 0 at the start callback, gives nothing to watch. */
static uint64_t gc_first_id;
#define OBS_NOT_FREE UINT64_MAX         /* the observed event is not a free */
#define OBS_FREE_OTHER (UINT64_MAX - 1) /* a free of the pending or an unknown block */
static uint64_t obs_free_id = OBS_NOT_FREE; /* else the id h_free is freeing while it observes */

static void note_gc_settings_changed(const struct _gc_runtime_state *g)
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

static inline void note_gc_settings(const struct _gc_runtime_state *g)
{
    if (HR_UNLIKELY(g->enabled != R.gc_enabled || g->generations[0].threshold != R.gc_thr[0] ||
                    g->generations[1].threshold != R.gc_thr[1] ||
                    g->generations[2].threshold != R.gc_thr[2]))
        note_gc_settings_changed(g);
}

/* An OBJ allocation is about to be made: the gc settings it will be linked under are written
 * first (a GC allocation that passes the threshold collects or not by them). */
static inline void alloc_settings(const struct _gc_runtime_state *g)
{
    if (g)
        note_gc_settings(g);
}

/* Did generation 0's count `now` pass the threshold at the GC allocation just resolved, under
 * the settings it was allocated with? Those are the settings last written: every OBJ allocation
 * writes a change before it calls the allocator (alloc_settings), and a resolution writes none,
 * so a change the program made after the allocation (gc.set_threshold's own argument tuple is
 * such an allocation) follows its ALLOC in the trace, as it followed CPython's decision. */
static inline int passed_threshold(int now)
{
    return R.gc_enabled && R.gc_thr[0] && now > R.gc_thr[0];
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
    } else if (next == NEXT_FREE_PENDING || next == NEXT_COUNT_LOST) {
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
        gc = hr_rec_looks_gc(p->addr, p->size);
        R.stat.ambiguous_gc += (uint64_t)gc;
    } else if (p->count0 >= 0 && now >= 0) {
        struct _gc_runtime_state *g = gcstate();
        if (gc && !g->collecting)
            hr_rec_learn_type(p->addr, p->size);
        if (R.self_check && !(gc && g->collecting) && hr_rec_looks_gc(p->addr, p->size) != gc)
            R.stat.check_disagree++;
    }
    if (gc) {
        R.stat.gc_allocs++;
        R.last_gc = 1;
    }
    emit_obj(p, (gc ? HR_F_GC : 0) | (p->zero ? HR_F_ZERO : 0), in_link);
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
    /* Allocation mode: the survivor counts behind the rule for generation 2 (a replay without
     * objects cannot count them), after every collection that changed them */
    struct _gc_runtime_state *g = gcstate();
    if (R.mode == HR_KIND_ALLOC && g &&
        (g->long_lived_pending != R.ll_pending || g->long_lived_total != R.ll_total)) {
        R.ll_pending = g->long_lived_pending;
        R.ll_total = g->long_lived_total;
        hr_event_t sv = {.op = HR_OP_GC_SURVIVORS, .a = (uint64_t)R.ll_pending,
                         .b = (uint64_t)R.ll_total};
        hr_sink_write(&R.sink, &sv);
    }
}

static void write_gc_begin(int gen)
{
    hr_event_t ev = {.op = HR_OP_GC_BEGIN, .tag = (uint32_t)gen};
    if (R.mode == HR_KIND_GRAPH)
        hr_rec_graph_gc_begin();
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

/* The generation of the collection that ran inside the pending allocation's link, from how the
 * older generations' counts moved since: CPython adds 1 to generation g + 1's count when it
 * starts collecting g, and zeroes the counts up to g. (collect_gen cannot tell afterwards: it
 * reads counts the collection already changed.) */
static int gen_collected_since_pending(const struct _gc_runtime_state *g)
{
    return g->generations[1].count == R.pend.count1 + 1   ? 0
           : g->generations[2].count == R.pend.count2 + 1 ? 1
                                                          : 2;
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

/* A collection bracketed without a stop callback (GC_OPEN_NOCB: at start-up, or found by the
 * probe) is over: GC_END with what generation_stats say it found. */
static void end_without_callback(const struct _gc_runtime_state *g)
{
    int64_t now[3][3];
    copy_stats(now, g);
    int i = R.gc_gen;
    write_gc_end(i, now[i][1] - R.begin_stats[i][1], now[i][2] - R.begin_stats[i][2]);
}

/* Before our gc.callbacks entry exists (interpreter start-up) collections are seen only through
 * the gc state: `collecting`, the counts and generation_stats. */
static void observe_without_callback(struct _gc_runtime_state *g, int triggered)
{
    if (g->collecting && R.gc_state == GC_IDLE) {
        R.gc_state = GC_SEEN;
        if (triggered) {
            int gen = gen_collected_since_pending(g);
            copy_stats(R.begin_stats, g);
            emit_trigger();
            write_gc_begin(gen);
            R.gc_gen = gen;
            R.gc_state = GC_OPEN_NOCB;
        }
    } else if (!g->collecting) {
        int64_t now[3][3];
        copy_stats(now, g);
        if (R.gc_state == GC_OPEN_NOCB) {
            end_without_callback(g);
        } else if (triggered) { /* begun and ended between two observations */
            for (int i = 2; i >= 0; i--)
                if (now[i][0] != R.last_stats[i][0]) {
                    emit_trigger();
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

/* observe()'s gate: the state nearly every call finds is R.slow == 0. */
static inline void gate_update(void)
{
    R.slow = !R.cb_active || R.gc_state != GC_IDLE || R.self_check > 1;
}

/* Preloaded with `-c` or `-m` (no script file to see opened): 1 until the interpreter is
 * initialised, when the script phase is scheduled (pre_init_seen, in the preloaded part below). */
static volatile int pre_await_init;
#ifdef HR_REC_PRELOAD
static void pre_init_seen(void);
#else
static void pre_init_seen(void) { pre_await_init = 0; } /* embedded: never set */
#endif

/* `next` says what the event being observed is (for the count arithmetic). Holds the lock. */
static void observe_full_(int next)
{
    if (HR_UNLIKELY(pre_await_init) && _PyRuntime.initialized)
        pre_init_seen();
    struct _gc_runtime_state *g = gcstate();
    int now = g ? g->generations[0].count : -1;
    R.last_gc = 0;
    int triggered = 0;
    if (HR_UNLIKELY(!R.cb_active) && g && R.pend.active && !R.pend.collecting &&
        R.pend.count0 >= 0 && passed_threshold(R.pend.count0 + 1) &&
        (g->collecting || g->generation_stats[0].collections != R.last_stats[0][0] ||
         g->generation_stats[1].collections != R.last_stats[1][0] ||
         g->generation_stats[2].collections != R.last_stats[2][0]))
        triggered = 1;
    /* The collection in progress started inside the pending allocation's link (this is the
     * first observation since): that allocation is not initialised yet. */
    int in_link = triggered ||
                  (g && g->collecting && R.pend.active && !R.pend.collecting &&
                   R.pend.count0 >= 0 && passed_threshold(R.pend.count0 + 1));
    if (HR_UNLIKELY(R.mode == HR_KIND_GRAPH) && g) {
        if (!R.cb_active) {
            /* start-up: a collection predicted at the allocation (do_alloc reconciled the heap
             * before it, for the generation it predicted); did it happen? Which generation it
             * was must come from the counts' movement: asking collect_gen now, after the
             * collection changed the counts, named another generation when it was 1 (a gen-1
             * collection leaves generation 1's count at 0), and the heap was reconciled again,
             * after the collection, with the allocation already tracked and not yet known. */
            if (triggered)
                graph_collection(gen_collected_since_pending(g));
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
    if (HR_UNLIKELY(R.last_gc) && !g->collecting && passed_threshold(now)) {
        /* The count passed the threshold at that allocation but no collection started: CPython
         * does not collect while an exception is set (e.g. a traceback being built). */
        emit_phase("gc.skipped");
        R.stat.skipped++;
    }
    if (HR_UNLIKELY(g->collecting)) {
        if (R.gc_state == GC_IDLE) {
            /* Started by itself inside the link of the GC allocation just resolved? */
            /* (under the settings it was allocated with: `gc.set_threshold(...)` whose argument
             * tuple passed the new threshold, then `gc.collect()`, is the program's request) */
            R.gc_state = R.last_gc && passed_threshold(now) ? GC_SEEN_AUTO : GC_SEEN;
            if (R.gc_state == GC_SEEN_AUTO)
                emit_trigger();
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
        if (R.gc_state == GC_OPEN_NOCB) /* a collection without callbacks (the probe) ended */
            end_without_callback(g);
        else if (R.gc_state == GC_OPEN || R.gc_state == GC_CB) /* ended without a stop callback */
            R.stat.gc_unclosed++;
        R.gc_state = GC_IDLE;
        R.graph_done = 0;
    }
}

static void observe_full(int next)
{
    observe_full_(next);
    gate_update();
}

/* resolve_pending for the cases nearly every resolution meets: the next event is not a free of
 * a GC block or of the pending block itself, and the count moved by 0 (not GC) or +1 (GC); the
 * type of a GC block is usually learned already (hr_rec_type_pre answers from its cache). Everything
 * else, and the self-check, goes to resolve_pending. Same decisions, same events. */
HR_INLINE void resolve_pending_fast(int next, int now)
{
    hr_pending_t *p = &R.pend;
    int moved = now - p->count0;
    if (HR_UNLIKELY(next != NEXT_OTHER || p->count0 < 0 || (unsigned)moved > 1 || R.self_check)) {
        resolve_pending(next, now, 0, 0); /* g->collecting is 0 here: not in a link */
        return;
    }
    p->active = 0;
    unsigned flags = p->zero ? HR_F_ZERO : 0;
    if (moved) {
        const uint64_t *w = (const uint64_t *)p->addr;
        if (!(p->size >= 32 && w[2] < HR_REC_SMALL_WORD && hr_rec_type_pre((uintptr_t)w[3]) == 16))
            hr_rec_learn_type(p->addr, p->size); /* g->collecting is 0 here (observe's fast path) */
        R.stat.gc_allocs++;
        R.last_gc = 1;
        flags |= HR_F_GC;
    }
    emit_obj(p, flags, 0);
}

/* observe_full, shortened for the state nearly every call finds: the gc callback installed, no
 * collection in progress or being tracked, no per-observation debugging. Then the start-up and
 * graph-mode checks of observe_full are all false and only the pending allocation and the
 * skipped-collection check remain. */
HR_INLINE void observe(int next)
{
    struct _gc_runtime_state *g = gcstate();
    if (HR_UNLIKELY(!g || R.slow || g->collecting)) {
        observe_full(next);
        return;
    }
    int now = g->generations[0].count;
    R.last_gc = 0;
    if (R.pend.active)
        resolve_pending_fast(next, now);
    if (HR_UNLIKELY(R.last_gc) && passed_threshold(now)) {
        emit_phase("gc.skipped"); /* see observe_full */
        R.stat.skipped++;
    }
}

/* {====================================================================
 * The hooks
 * ==================================================================== */

static inline int gil_held(int domain)
{
    return domain != PYMEM_DOMAIN_RAW || PyGILState_Check();
}

/* The sink's owner door is for the thread holding the GIL: MEM and OBJ calls always, a RAW call
 * only when this thread's state is the one holding the GIL (PyGILState_Check also says 1 when
 * it cannot tell, which is fine for reading the gc state but not for the door). */
static inline int owns_gil(int domain)
{
    if (domain != PYMEM_DOMAIN_RAW)
        return 1;
    PyThreadState *cur =
        (PyThreadState *)_Py_atomic_load_relaxed(&_PyRuntime.gilstate.tstate_current);
    return cur && cur == PyGILState_GetThisThreadState();
}

enum { DOOR_OWNER = 0, DOOR_OWNER_SPIN = 1, DOOR_SPIN = 2 };

HR_INLINE int enter(int domain)
{
    t_depth++;
    if (HR_LIKELY(owns_gil(domain)))
        return hr_sink_enter_owner(&R.sink); /* DOOR_OWNER or DOOR_OWNER_SPIN */
    hr_sink_lock(&R.sink);
    return DOOR_SPIN;
}

HR_INLINE void leave(int door)
{
    if (HR_LIKELY(door != DOOR_SPIN))
        hr_sink_leave_owner(&R.sink, door);
    else
        hr_sink_unlock(&R.sink);
    t_depth--;
}

/* The general hooks: every domain, every state (the fast paths below take the common case). */
static void *do_alloc(int d, size_t nelem, size_t elsize, int zero)
{
    PyMemAllocatorEx *o = &R.orig[d];
    if ((d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off)
        return zero ? o->calloc(o->ctx, nelem, elsize) : o->malloc(o->ctx, nelem);
    int door = enter(d);
    if (gil_held(d)) {
        observe(NEXT_OTHER);
        if (d == PYMEM_DOMAIN_OBJ)
            alloc_settings(gcstate());
    }
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
            hr_idmap_prefetch(&R.map, (uintptr_t)p); /* written at the next observation */
            struct _gc_runtime_state *g = gcstate();
            hr_pending_t *pd = &R.pend;
            pd->active = 1;
            pd->addr = (uintptr_t)p;
            pd->size = size;
            pd->zero = zero;
            if (HR_LIKELY(g != NULL)) {
                pd->count0 = g->generations[0].count;
                pd->count1 = g->generations[1].count;
                pd->count2 = g->generations[2].count;
                pd->collecting = g->collecting;
            } else {
                pd->count0 = -1;
                pd->count1 = pd->count2 = pd->collecting = 0;
            }
        } else {
            emit_alloc((uintptr_t)p, size, d, zero ? HR_F_ZERO : 0);
        }
    }
    leave(door);
    return p;
}

static void do_free(int d, void *p)
{
    PyMemAllocatorEx *o = &R.orig[d];
    if (!p || (d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off) {
        o->free(o->ctx, p);
        return;
    }
    int door = enter(d);
    uintptr_t a = (uintptr_t)p;
    uint64_t id = 0;
    unsigned fl = 0;
    int known = 0;
    if (gil_held(d)) {
        int next = NEXT_OTHER;
        if (R.pend.active && R.pend.addr == a) {
            next = NEXT_FREE_PENDING;
        } else {
            known = hr_idmap_take_fast(&R.map, a, &id, &fl);
            if (known && (fl & HR_F_GC))
                next = NEXT_GC_FREE;
        }
        obs_free_id = known && next != NEXT_FREE_PENDING ? id : OBS_FREE_OTHER;
        observe(next); /* may write the pending block (which may be this one) */
        obs_free_id = OBS_NOT_FREE;
    }
    if (known || hr_idmap_take_fast(&R.map, a, &id, &fl)) {
        if (fl & HR_F_GC)
            hr_rec_forget_type_at(a);
        if (fl & HR_F_OBJECT)
            hr_rec_graph_free(a, id, fl);
        else
            hr_sink_free(&R.sink, id);
    } else {
        R.stat.unknown_frees++; /* allocated before the hooks, or through a swapped allocator */
    }
    o->free(o->ctx, p);
    leave(door);
}

static void *obj_plain_alloc(size_t n);

static void *do_realloc(int d, void *p, size_t n)
{
    PyMemAllocatorEx *o = &R.orig[d];
    if ((d == PYMEM_DOMAIN_RAW && t_depth) || R.sink.off)
        return o->realloc(o->ctx, p, n);
    if (!p) /* realloc(NULL, n) is malloc(n), never a GC object: written at once */
        return d == PYMEM_DOMAIN_OBJ ? obj_plain_alloc(n) : do_alloc(d, n, 1, 0);
    int door = enter(d);
    uintptr_t a = (uintptr_t)p;
    if (gil_held(d))
        observe(NEXT_OTHER);
    void *q = o->realloc(o->ctx, p, n);
    if (q && !R.sink.off) {
        uint64_t id;
        unsigned fl;
        if (!hr_idmap_take(&R.map, a, &id, &fl)) {
            R.stat.unknown_reallocs++;
            emit_alloc((uintptr_t)q, n, d, 0);
        } else if (!(fl & HR_F_OBJECT) || !hr_rec_graph_realloc_lost(id, fl, (uintptr_t)q, n)) {
            hr_event_t ev = {.op = HR_OP_REALLOC, .a = id, .b = n};
            hr_sink_write(&R.sink, &ev);
            hr_idmap_put(&R.map, (uintptr_t)q, id, fl);
            if (fl & HR_F_OBJECT)
                hr_rec_graph_moved(a, (uintptr_t)q, id);
        }
    }
    leave(door);
    return q;
}

/* {====================================================================
 * The hooks' fast paths
 *
 * MEM and OBJ calls hold the GIL. In the state nearly every call finds (recording, the gc
 * callback installed, no collection in progress or being tracked: R.slow == 0 and the
 * interpreter's `collecting` == 0) an observation only resolves the pending allocation, and
 * allocations and frees only write their event and update the address map. The fast hooks do
 * that inline, with the domain a constant: the same decisions, events and state changes as the
 * general hooks above (observe -> observe_full, resolve_pending), to which everything else goes
 * (RAW calls, the other states, frees of the pending or an unknown block, the ambiguous and
 * unexpected resolutions, the self-check). Graph mode uses them too (its objects' allocations
 * and frees call into rec_graph.c as before).
 * ==================================================================== */


static void note_skipped(void)
{
    emit_phase("gc.skipped"); /* see observe_full */
    R.stat.skipped++;
}

/* Resolve the pending allocation at an observation of kind `next` (NEXT_OTHER or NEXT_GC_FREE)
 * in the fast state. The count moved by +1 (GC) or 0 (not GC), or, when a GC block is being
 * freed and the count was at least 1, by 0 (GC) or -1 (not GC): the rows of the table at the
 * top that are not ambiguous. */
HR_INLINE void resolve_fast(int next, int now)
{
    hr_pending_t *p = &R.pend;
    int gcfree = next == NEXT_GC_FREE;
    int gc = now - p->count0 + gcfree;
    if (HR_UNLIKELY((unsigned)gc > 1 || p->count0 < gcfree || R.self_check)) {
        R.last_gc = 0;
        resolve_pending(next, now, 0, 0); /* collecting is 0: not in a link */
        if (R.last_gc && passed_threshold(now))
            note_skipped();
        return;
    }
    p->active = 0;
    unsigned flags = p->zero ? HR_F_ZERO : 0;
    if (!gc) {
        emit_obj(p, flags, 0);
        return;
    }
    hr_rec_learn_type_fast(p->addr, p->size);
    R.stat.gc_allocs++;
    emit_obj(p, flags | HR_F_GC, 0);
    if (HR_UNLIKELY(passed_threshold(now)))
        note_skipped(); /* the count passed the threshold but no collection started */
}

/* The fast state? (*gp: the interpreter's gc state) */
HR_INLINE int fast_state(struct _gc_runtime_state **gp)
{
    struct _gc_runtime_state *g = gcstate();
    *gp = g;
    return HR_LIKELY(!(R.sink.off | R.slow)) && HR_LIKELY(g != NULL) && HR_LIKELY(!g->collecting);
}

HR_INLINE void *fast_alloc(int d, size_t nelem, size_t elsize, int zero)
{
    struct _gc_runtime_state *g;
    if (HR_UNLIKELY(!fast_state(&g)))
        return do_alloc(d, nelem, elsize, zero);
    t_depth++;
    int door = hr_sink_enter_owner(&R.sink);
    if (R.pend.active)
        resolve_fast(NEXT_OTHER, g->generations[0].count);
    if (d == PYMEM_DOMAIN_OBJ)
        alloc_settings(g);
    PyMemAllocatorEx *o = &R.orig[d];
    void *p = zero ? o->calloc(o->ctx, nelem, elsize) : o->malloc(o->ctx, nelem);
    if (HR_LIKELY(p != NULL) && HR_LIKELY(!R.sink.off)) {
        uint64_t size = zero ? (uint64_t)nelem * elsize : nelem;
        if (d == PYMEM_DOMAIN_OBJ) {
            /* pending until the next observation; count1 and count2 are read only before the
             * gc callback exists, and the allocator does not start collections */
            hr_idmap_prefetch(&R.map, (uintptr_t)p);
            hr_pending_t *pd = &R.pend;
            pd->active = 1;
            pd->addr = (uintptr_t)p;
            pd->size = size;
            pd->zero = zero;
            pd->count0 = g->generations[0].count;
            pd->collecting = 0;
        } else {
            emit_alloc((uintptr_t)p, size, d, zero ? HR_F_ZERO : 0);
        }
    }
    hr_sink_leave_owner(&R.sink, door);
    t_depth--;
    return p;
}

HR_INLINE void fast_free(int d, void *p)
{
    struct _gc_runtime_state *g;
    uintptr_t a = (uintptr_t)p;
    uint64_t *slot;
    if (HR_UNLIKELY(!p || !fast_state(&g) || (R.pend.active && R.pend.addr == a) ||
                    !(slot = hr_idmap_direct_slot(&R.map, a)))) {
        do_free(d, p);
        return;
    }
    t_depth++;
    int door = hr_sink_enter_owner(&R.sink);
    uint64_t v = *slot;
    if (HR_UNLIKELY(!v)) { /* not recorded: the general hook counts it */
        hr_sink_leave_owner(&R.sink, door);
        t_depth--;
        do_free(d, p);
        return;
    }
    *slot = 0;
    R.map.count--;
    uint64_t id = (v & HR_IDMAP_ID_MASK) - 1;
    unsigned fl = (unsigned)(v >> HR_IDMAP_ID_BITS);
    if (R.pend.active)
        resolve_fast((fl & HR_F_GC) ? NEXT_GC_FREE : NEXT_OTHER, g->generations[0].count);
    if (fl & HR_F_GC)
        hr_rec_forget_type_at(a);
    if (HR_UNLIKELY(fl & HR_F_OBJECT))
        hr_rec_graph_free(a, id, fl);
    else
        hr_sink_free(&R.sink, id);
    PyMemAllocatorEx *o = &R.orig[d];
    o->free(o->ctx, p);
    hr_sink_leave_owner(&R.sink, door);
    t_depth--;
}

/* One set of hooks per domain: MEM and OBJ take the fast paths, RAW the general ones. */
#define HOOKS(name, d, alloc, free_)                                                              \
    static void *h_malloc_##name(void *ctx, size_t n)                                            \
    {                                                                                            \
        (void)ctx;                                                                               \
        return alloc(d, n, 1, 0);                                                                \
    }                                                                                            \
    static void *h_calloc_##name(void *ctx, size_t ne, size_t es)                                \
    {                                                                                            \
        (void)ctx;                                                                               \
        return alloc(d, ne, es, 1);                                                              \
    }                                                                                            \
    static void *h_realloc_##name(void *ctx, void *p, size_t n)                                  \
    {                                                                                            \
        (void)ctx;                                                                               \
        return do_realloc(d, p, n);                                                              \
    }                                                                                            \
    static void h_free_##name(void *ctx, void *p)                                                \
    {                                                                                            \
        (void)ctx;                                                                               \
        free_(d, p);                                                                             \
    }
HOOKS(raw, PYMEM_DOMAIN_RAW, do_alloc, do_free)
HOOKS(mem, PYMEM_DOMAIN_MEM, fast_alloc, fast_free)
HOOKS(obj, PYMEM_DOMAIN_OBJ, fast_alloc, fast_free)
/* HEAPREPLAY_GENERIC_HOOKS=1: MEM and OBJ through the general hooks only (a test compares the
 * traces; the library's layout, and so every address, stays the same) */
HOOKS(gmem, PYMEM_DOMAIN_MEM, do_alloc, do_free)
HOOKS(gobj, PYMEM_DOMAIN_OBJ, do_alloc, do_free)
#undef HOOKS

/* OBJ realloc(NULL, n): an OBJ allocation that cannot be a GC object, written at once. */
static void *obj_plain_alloc(size_t n)
{
    PyMemAllocatorEx *o = &R.orig[PYMEM_DOMAIN_OBJ];
    int door = enter(PYMEM_DOMAIN_OBJ);
    observe(NEXT_OTHER);
    void *p = o->realloc(o->ctx, NULL, n);
    if (p)
        emit_alloc((uintptr_t)p, n, HR_DOMAIN_OBJ, 0);
    leave(door);
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
    PyMemAllocatorEx h[3] = {
        [PYMEM_DOMAIN_RAW] = {NULL, h_malloc_raw, h_calloc_raw, h_realloc_raw, h_free_raw},
        [PYMEM_DOMAIN_MEM] = {NULL, h_malloc_mem, h_calloc_mem, h_realloc_mem, h_free_mem},
        [PYMEM_DOMAIN_OBJ] = {NULL, h_malloc_obj, h_calloc_obj, h_realloc_obj, h_free_obj}};
    const char *gen = getenv("HEAPREPLAY_GENERIC_HOOKS");
    if (gen && *gen == '1') {
        h[PYMEM_DOMAIN_MEM] =
            (PyMemAllocatorEx){NULL, h_malloc_gmem, h_calloc_gmem, h_realloc_gmem, h_free_gmem};
        h[PYMEM_DOMAIN_OBJ] =
            (PyMemAllocatorEx){NULL, h_malloc_gobj, h_calloc_gobj, h_realloc_gobj, h_free_gobj};
    }
    for (int d = 0; d < 3; d++) {
        PyMem_GetAllocator((PyMemAllocatorDomain)d, &R.orig[d]);
        PyMem_SetAllocator((PyMemAllocatorDomain)d, &h[d]);
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
        observe_full(NEXT_OTHER);
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
        gate_update();
    }
    hr_sink_unlock(&R.sink);
    Py_RETURN_NONE;
}

/* {==== The probe: collections that call no callbacks

 * CPython runs full collections during finalisation without gc.callbacks (_PyGC_CollectNoFail,
 * from finalize_modules and interpreter_clear), and no allocator call happens between their start
 * and the moment the collector has found its garbage. What every collection does call first is
 * tp_traverse of each object it examines (subtract_refs, after it zeroed the counts, merged the
 * younger generations into the collected one and copied each refcount into gc_refs, before it
 * changed anything else). So the recorder keeps one tracked object of its own type (the probe,
 * held by the recorder: always reachable); a full collection examines every tracked object, and
 * the probe's traversal is the collection's first observation: the heap is whole (refcounts,
 * links, CPython's lists) and no collection callback announced it. There the recorder writes
 * what a program's gc.collect() gets (the reconciliation, GC_CONTROL collect, GC_BEGIN); GC_END
 * follows at the first observation with `collecting` back at 0.
 *
 * The probe's traversal must be the collector's: `collecting` set, the probe's PyGC_Head in the
 * COLLECTING state (set by update_refs for every object of the set being collected, cleared as
 * move_unreachable passes it), no collection already announced or bracketed, and not the
 * recorder's own traversal. */

static PyObject *probe; /* owned by the recorder until the process ends */

/* Which of CPython's generation lists holds the probe (walk to the list head), or -1. */
static int probe_generation(const struct _gc_runtime_state *g)
{
    const PyGC_Head *self = (const PyGC_Head *)probe - 1;
    for (const PyGC_Head *h = (const PyGC_Head *)self->_gc_next; h && h != self;
         h = (const PyGC_Head *)h->_gc_next)
        for (int i = 0; i < NUM_GENERATIONS; i++)
            if (h == &g->generations[i].head)
                return i;
    return -1;
}

static void probe_collection_begins(struct _gc_runtime_state *g, int gen)
{
    if (R.pend.active) /* allocated before the collection, whose start zeroed the count */
        resolve_pending(NEXT_COUNT_LOST, 0, 0, 0);
    R.last_gc = 0;
    note_gc_settings(g);
    R.gc_gen = gen;
    if (R.mode == HR_KIND_GRAPH) {
        R.graph_done = 0;
        hr_rec_graph_merged(1); /* CPython's younger lists are empty now: merged into gen */
        graph_collection(gen);
        hr_rec_graph_merged(0);
    }
    emit_gc_control(HR_GC_COLLECT, (uint64_t)gen, 0);
    copy_stats(R.begin_stats, g);
    write_gc_begin(gen);
    R.gc_state = GC_OPEN_NOCB;
    R.stat.probed++;
}

static int probe_traverse(PyObject *self, visitproc visit, void *arg)
{
    (void)arg;
    struct _gc_runtime_state *g = gcstate();
    if (self != probe || !g || !g->collecting || hr_rec_graph_own_visit(visit) ||
        !(((PyGC_Head *)self - 1)->_gc_prev & _PyGC_PREV_MASK_COLLECTING))
        return 0;
    hr_sink_lock(&R.sink);
    /* GC_SEEN: an observation inside this collection before any callback (gc.DEBUG_STATS
     * prints, and allocates, before the collector starts): still no callback for it. */
    if (!R.sink.off && R.cb_active && (R.gc_state == GC_IDLE || R.gc_state == GC_SEEN)) {
        int gen = probe_generation(g);
        if (gen >= 0)
            probe_collection_begins(g, gen);
    }
    hr_sink_unlock(&R.sink);
    return 0;
}

int hr_rec_collection_underway(void)
{
    struct _gc_runtime_state *g = gcstate();
    return R.cb_active && g && g->collecting;
}

void hr_rec_delete_begins(void)
{
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe_full(NEXT_OTHER); /* the pending allocation's ALLOC comes first */
        hr_rec_graph_fin_end();
    }
    hr_sink_unlock(&R.sink);
}

static PyTypeObject probe_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_heapreplay.probe",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "heapreplay recorder: sees the start of collections that call no callbacks",
    .tp_traverse = probe_traverse,
};

static int probe_setup(void)
{
    if (PyType_Ready(&probe_type) < 0)
        return -1;
    probe = (PyObject *)PyObject_GC_New(PyObject, &probe_type);
    if (!probe)
        return -1;
    PyObject_GC_Track(probe);
    return 0;
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
        observe_full(NEXT_OTHER);
        hr_rec_emit_str(HR_OP_PHASE, 0, s, (size_t)len);
    }
    hr_sink_unlock(&R.sink);
    Py_RETURN_NONE;
}

/* gc.freeze() and gc.unfreeze(), wrapped when the script starts (python_setup): the pending
 * allocation is decided with the counts before the call, then GC_CONTROL freeze or unfreeze is
 * written where the program called it, and the original runs (it allocates nothing). */
static PyObject *orig_freeze, *orig_unfreeze;

static PyObject *freeze_call(unsigned action, PyObject *orig)
{
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe_full(NEXT_OTHER);
        emit_gc_control(action, 0, 0);
        if (R.mode == HR_KIND_GRAPH)
            hr_rec_graph_freeze(action == HR_GC_FREEZE);
    }
    hr_sink_unlock(&R.sink);
    return PyObject_CallNoArgs(orig);
}
static PyObject *rec_freeze(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return freeze_call(HR_GC_FREEZE, orig_freeze);
}
static PyObject *rec_unfreeze(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return freeze_call(HR_GC_UNFREEZE, orig_unfreeze);
}
static PyMethodDef freeze_defs[] = {
    {"freeze", rec_freeze, METH_NOARGS, "gc.freeze(), as heapreplay records it"},
    {"unfreeze", rec_unfreeze, METH_NOARGS, "gc.unfreeze(), as heapreplay records it"}};

/* Replace n functions of module `from` (and of `also`, when not NULL) by the C wrappers defs,
 * keeping each original in *origs[i] for the wrapper to call. */
static int wrap_functions(PyObject *from, PyObject *also, PyMethodDef *defs,
                          PyObject **const origs[], size_t n)
{
    int rc = from ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        PyObject *f = PyCFunction_New(&defs[i], NULL);
        if (!f || !(*origs[i] = PyObject_GetAttrString(from, defs[i].ml_name)) ||
            PyObject_SetAttrString(from, defs[i].ml_name, f) ||
            (also && PyObject_SetAttrString(also, defs[i].ml_name, f)))
            rc = -1;
        Py_XDECREF(f);
    }
    return rc;
}

/* gc.freeze and gc.unfreeze by the wrappers above. */
static int wrap_freeze(PyObject *gc)
{
    PyObject **const origs[] = {&orig_freeze, &orig_unfreeze};
    return wrap_functions(gc, NULL, freeze_defs, origs, HR_ARRAY_LEN(freeze_defs));
}

static void dump_stats(void);
static int finish(hr_err_t *err);

/* This process records and its trace is not finished yet. */
static int records_here(void) { return R.started && !R.finished && R.sink.owner == getpid(); }

/* The program ends without exit() (_exit, exec: no atexit handler runs): the trace is finished
 * here, in the recording process only, once: with the end-of-run statistics when this thread
 * holds the GIL of a running interpreter (os._exit and os.exec* keep it), as at a normal exit,
 * then the END record. Not from inside an allocator hook (t_depth). Both recorders: the
 * preloaded one from its _exit and exec functions, the embedded one from its os wrappers. */
static void end_now(void)
{
    if (!records_here() || t_depth)
        return;
    if (R.cb_active && _PyRuntime.initialized && !_Py_IsFinalizing() && PyGILState_Check())
        dump_stats();
    hr_err_t err = {0};
    if (finish(&err) && R.report)
        R.report(&err);
}

/* The recording process's exec failed after end_now finished its trace: the program goes on
 * unrecorded; say so, as the recorder's own error. */
static void exec_failed(const char *what, const char *why)
{
    hr_err_t err = {0};
    hr_err_set(&err, HR_EIO, "the program's %s failed (%s) and it goes on unrecorded: the trace "
               "ends at that call", what, why);
    if (R.report)
        R.report(&err);
}

#ifndef HR_REC_PRELOAD
/* {==== Embedded: os._exit, os.execv/execve and descriptor closing, at the Python level ====
 *
 * The preloaded recorder defines _exit, the exec functions, close, close_range, closefrom, dup2
 * and dup3 (the end of this file, rec_fdguard.h). The embedded one cannot without taking them
 * over for the whole heapreplay binary (and from the sanitizers, whose builds use it), so it
 * wraps the Python functions the script calls instead, when the script starts (python_setup):
 * os._exit and the exec functions finish the trace first, with the statistics (the caller holds
 * the GIL), as at a normal exit; os.close, os.closerange and os.dup2 move the trace's descriptor
 * out of the way first (hr_sink_keep_fd). The os.exec* functions of os.py all end in
 * os.execv or os.execve. C code calling the C functions directly is not covered
 * (docs/recorder.md). Each wrapper then calls the original with the same arguments. */
static PyObject *orig_os_exit, *orig_execv, *orig_execve, *orig_close, *orig_closerange,
    *orig_dup2;

/* The integer positional argument i of a call, or -1 (not given, not an int, negative). */
static long emb_int_arg(PyObject *args, Py_ssize_t i)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) <= i || !PyLong_Check(PyTuple_GET_ITEM(args, i)))
        return -1;
    long v = PyLong_AsLong(PyTuple_GET_ITEM(args, i));
    if (v < 0 || v > INT_MAX) {
        PyErr_Clear();
        return -1;
    }
    return v;
}

static PyObject *emb_exit(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    end_now();
    return PyObject_Call(orig_os_exit, args, kw);
}

static PyObject *emb_exec(PyObject *orig, const char *name, PyObject *args, PyObject *kw)
{
    int mine = records_here();
    end_now();
    PyObject *r = PyObject_Call(orig, args, kw);
    if (!r && mine) { /* the OSError's strerror says why */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *why = value ? PyObject_GetAttrString(value, "strerror") : NULL;
        if (!why)
            PyErr_Clear();
        const char *w = why && PyUnicode_Check(why) ? PyUnicode_AsUTF8(why) : NULL;
        if (!w)
            PyErr_Clear();
        exec_failed(name, w ? w : "an error");
        Py_XDECREF(why);
        PyErr_Restore(type, value, tb);
    }
    return r;
}
static PyObject *emb_execv(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return emb_exec(orig_execv, "execv", args, kw);
}
static PyObject *emb_execve(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return emb_exec(orig_execve, "execve", args, kw);
}

static PyObject *emb_close(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    long fd = kw ? -1 : emb_int_arg(args, 0);
    if (fd >= 0 && R.started && !R.finished && hr_sink_keep_fd(&R.sink, (unsigned)fd, (unsigned)fd) >= 0)
        Py_RETURN_NONE; /* stays open for the trace (no free descriptor to move it to) */
    return PyObject_Call(orig_close, args, kw);
}

static PyObject *emb_closerange(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    long lo = kw ? -1 : emb_int_arg(args, 0), hi = kw ? -1 : emb_int_arg(args, 1);
    int keep = -1;
    if (lo >= 0 && hi > lo && R.started && !R.finished)
        keep = hr_sink_keep_fd(&R.sink, (unsigned)lo, (unsigned)(hi - 1));
    if (keep < 0)
        return PyObject_Call(orig_closerange, args, kw);
    /* nowhere to move it: close the range around it */
    PyObject *r = PyObject_CallFunction(orig_closerange, "ll", lo, (long)keep);
    if (r) {
        Py_DECREF(r);
        r = PyObject_CallFunction(orig_closerange, "ll", (long)keep + 1, hi);
    }
    return r;
}

static PyObject *emb_dup2(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    long fd = emb_int_arg(args, 0), fd2 = emb_int_arg(args, 1);
    if (fd2 >= 0 && fd != fd2 && R.started && !R.finished &&
        hr_sink_keep_fd(&R.sink, (unsigned)fd2, (unsigned)fd2) >= 0)
        hr_sink_give_up_fd(&R.sink, "the program replaced the trace's file descriptor and no "
                           "other was free to move it to: the trace ends here");
    return PyObject_Call(orig_dup2, args, kw);
}

#define EMB_DEF(name, fn) {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, \
                           "os." name ", as heapreplay's embedded recorder wraps it"}
static PyMethodDef emb_defs[] = {EMB_DEF("_exit", emb_exit),   EMB_DEF("execv", emb_execv),
                                 EMB_DEF("execve", emb_execve), EMB_DEF("close", emb_close),
                                 EMB_DEF("closerange", emb_closerange), EMB_DEF("dup2", emb_dup2)};
#undef EMB_DEF

/* Replace those functions in os and posix (os.py looks execv and execve up in its own globals
 * at each call); the originals are kept. */
static int wrap_os(void)
{
    PyObject **const origs[] = {&orig_os_exit, &orig_execv,      &orig_execve,
                                &orig_close,   &orig_closerange, &orig_dup2};
    PyObject *os = PyImport_ImportModule("os"), *posix = PyImport_ImportModule("posix");
    int rc = os ? wrap_functions(posix, os, emb_defs, origs, HR_ARRAY_LEN(emb_defs)) : -1;
    Py_XDECREF(os);
    Py_XDECREF(posix);
    return rc;
}
#else
static int wrap_os(void) { return 0; } /* preloaded: the C functions themselves (below) */
#endif

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

/* The end of Py_FinalizeEx (Py_AtExit). A program that ends with an uncaught KeyboardInterrupt
 * is finalised as at any other exit, atexit handlers and statistics included, but then Py_RunMain
 * kills the process with SIGINT (so that its parent sees it), before the C atexit handler that
 * closes the trace: the trace of a program stopped with Ctrl-C was cut short at its last flush.
 * It is closed here then; every other exit keeps closing it at C exit, as before. */
static void at_py_finalized(void)
{
    hr_err_t err = {0};
#ifdef HR_REC_PRELOAD
    if (!&_Py_UnhandledKeyboardInterrupt) /* weak: not this interpreter's */
        return;
#endif
    if (_Py_UnhandledKeyboardInterrupt && finish(&err) && R.report)
        R.report(&err);
}

/* Register the gc callback, the probe and the end-of-script handler (atexit runs handlers
 * last-in first-out, so one registered before the script runs after all of the script's own). */
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
        (r = PyObject_CallMethod(ax, "register", "O", endf)) != NULL && probe_setup() == 0 &&
        Py_AtExit(at_py_finalized) == 0 && wrap_freeze(gc) == 0 && wrap_os() == 0)
        rc = 0;
    if (rc) {
        PyErr_Print();
        hr_err_set(err, HR_EINTERNAL, "cannot install the gc callback, probe and exit handler");
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
    observe_full(NEXT_OTHER);
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
                     "unknown_frees %llu\nunknown_reallocs %llu\ngraph_late %llu\nprobed %llu\n"
                     "self_check %d\n",
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
                     (unsigned long long)R.stat.graph_late, (unsigned long long)R.stat.probed,
                     R.self_check);
    if (R.mode == HR_KIND_GRAPH)
        n += hr_rec_graph_selfcheck(buf + n, sizeof buf - (size_t)n);
    hr_rec_emit_str(HR_OP_STATS, HR_STATS_TEXT, buf, strlen(buf));
}

/* Are the recorder's OBJ hooks still the interpreter's allocator? Selecting allocators at
 * pre-initialisation (PYTHONMALLOC, the development mode: PYTHONDEVMODE or `-X dev` on the
 * command line) replaces them, and everything after goes unrecorded. */
static int hooks_in_place(void)
{
    PyMemAllocatorEx cur;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur);
    return cur.malloc == h_malloc_obj || cur.malloc == h_malloc_gobj;
}

/* Close the trace (once, in the owning process). Holds no lock on entry. */
static int finish(hr_err_t *err)
{
    if (R.finished || !R.started || R.sink.owner != getpid())
        return HR_OK;
    R.finished = 1;
    if (!R.sink.w) /* the trace could not be opened: rec_start reported why, nothing to finish */
        return HR_OK;
    if (!hooks_in_place()) { /* the trace is left without its END: not complete */
        hr_err_t e = {0};
        hr_err_set(&e, HR_EUSAGE, "the interpreter replaced the recorder's allocator hooks at "
                   "start-up (PYTHONMALLOC, PYTHONDEVMODE or -X dev select allocators): the "
                   "trace misses the program; record without them, or use --embedded");
        hr_sink_lock(&R.sink);
        rec_failed(&e);
        hr_sink_unlock(&R.sink);
        return hr_sink_close(&R.sink, err);
    }
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        if (R.pend.active) /* no interpreter left to ask: decide from the last count seen */
            observe_full(NEXT_OTHER);
        selfcheck_stats();
    }
    hr_sink_unlock(&R.sink);
    return hr_sink_close(&R.sink, err);
}

static int exit_on_report; /* embedded: a failure to close at exit ends the process with 3 */

static void at_c_exit(void)
{
    hr_err_t err = {0};
    if (finish(&err) && R.report) {
        R.report(&err);
        if (exit_on_report)
            _exit(3);
    }
}

static void forked_child(void) { hr_sink_forked_child(&R.sink); }

static int make_header(hr_trace_header_t *h, const hr_record_opts_t *o, const char *recorder)
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
    if (o->mode == HR_KIND_GRAPH) /* rec_graph.c's rules 1-4: replays under every collector */
        rc |= hr_trace_header_set(h, "graph_rules", "4");
    rc |= hr_trace_header_set(h, "recorder", recorder);
    const char *pm = getenv("PYTHONMALLOC");
    if ((!pm || !*pm) && _PyRuntime.preinitialized) {
        /* selected otherwise (the development mode: -X dev), known once pre-initialised */
        static const char *const names[] = {"default", "default", "debug", "malloc",
                                            "malloc_debug", "pymalloc", "pymalloc_debug"};
        int a = _PyRuntime.preconfig.allocator;
        pm = a >= 0 && a < (int)HR_ARRAY_LEN(names) ? names[a] : "default";
    }
    rc |= hr_trace_header_set(h, "pythonmalloc", pm && *pm ? pm : "default");
    snprintf(buf, sizeof buf, "%zu", ARENA_BYTES);
    rc |= hr_trace_header_set(h, "arena_size", buf);
    rc |= hr_trace_header_set(h, "pool_size", "16384");
    rc |= hr_trace_header_set(h, "gc_threshold", "700,10,10");
    return rc;
}

/* Start recording, before the interpreter is initialised (and, embedded, after
 * Py_PreInitialize chose the allocators): the tables, the trace, PHASE startup, the hooks. */
static int rec_start(const hr_record_opts_t *o, const char *recorder, hr_err_t *err)
{
    if (R.started)
        return hr_err_set(err, HR_EUSAGE, "the Python recorder runs once per process");
    R.started = 1;
    R.mode = o->mode;
    R.report = o->report;
    const char *sc = getenv("HEAPREPLAY_SELF_CHECK");
    R.self_check = sc && *sc ? atoi(sc) : 0;
    gate_update();
    R.gc_enabled = 1;
    R.gc_thr[0] = 700, R.gc_thr[1] = 10, R.gc_thr[2] = 10;
    if (hr_idmap_init_direct(&R.map) || hr_idmap_init(&R.types, 10) || hr_idmap_init(&R.rejected, 8))
        return hr_err_set(err, HR_ENOMEM, "cannot map the recorder's tables");
    if (R.mode == HR_KIND_GRAPH && hr_rec_graph_init(err))
        return err ? err->code : HR_ENOMEM;
    if (PyImport_AppendInittab("_heapreplay", mod_init) < 0)
        return hr_err_set(err, HR_EINTERNAL, "cannot register the _heapreplay module");
    hr_trace_header_t h;
    if (make_header(&h, o, recorder)) {
        hr_trace_header_free(&h);
        return hr_err_set(err, HR_EINTERNAL, "cannot build the trace header");
    }
    /* frames are compressed on the writer's worker thread (libc allocations: not recorded); in
     * allocation mode every FREE and REALLOC names an id just taken out of the address map, so
     * the writer need not keep the ids' states (trusted_ids; graph mode's objects need them) */
    hr_trace_write_opts_t wo = {.frame_target = o->frame_target, .level = o->level, .async = 1,
                                .trusted_ids = o->mode == HR_KIND_ALLOC};
    int rc = hr_sink_open(&R.sink, o->out_path, &h, &wo, 1, err);
    hr_trace_header_free(&h);
    if (rc)
        return rc;
    pthread_atfork(NULL, NULL, forked_child);
    atexit(at_c_exit);
    hr_sink_lock(&R.sink);
    emit_phase("startup");
    hr_sink_unlock(&R.sink);
    install_hooks();
    return HR_OK;
}

/* The interpreter is initialised and the script is about to run; the caller holds the GIL. */
static int rec_script_begins(hr_err_t *err)
{
    if (python_setup(err))
        return err ? err->code : HR_EINTERNAL;
    hr_sink_lock(&R.sink);
    if (!R.sink.off) {
        observe_full(NEXT_OTHER);
        R.cb_active = 1;
        gate_update();
        emit_phase("script");
    }
    hr_sink_unlock(&R.sink);
    return HR_OK;
}

/* {====================================================================
 * Embedded: heapreplay runs the interpreter itself (libpython3.11)
 * ==================================================================== */

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
    exit_on_report = 1;
    /* Interpreter options first (-m MODULE, -c COMMAND, -X dev ...): CPython parses them as on
     * its own command line, after a program name, at pre-initialisation too (-X dev, -E, -I
     * select allocators and the environment there), so hooks go on whatever they select, as
     * with PYTHONMALLOC. */
    char **av = NULL;
    if (o->argv[0][0] == '-') {
        av = calloc((size_t)o->argc + 1, sizeof *av);
        if (!av)
            return hr_err_set(err, HR_ENOMEM, "cannot configure the interpreter");
        av[0] = (char *)HR_PYTHON_EXE;
        memcpy(av + 1, o->argv, (size_t)o->argc * sizeof *av);
    }
    /* Pre-initialise (this may select the allocators, e.g. PYTHONMALLOC), then hook. */
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    PyStatus st;
    if (av) {
        pre.parse_argv = 1;
        st = Py_PreInitializeFromBytesArgs(&pre, o->argc + 1, av);
    } else {
        st = Py_PreInitialize(&pre);
    }
    if (PyStatus_Exception(st)) {
        free(av);
        if (PyStatus_IsExit(st)) { /* e.g. a bad option: CPython printed why */
            *exit_status = st.exitcode;
            return HR_OK;
        }
        return hr_err_set(err, HR_EINTERNAL, "Py_PreInitialize failed: %s",
                          st.err_msg ? st.err_msg : "?");
    }
    int rc = rec_start(o, "cpython-pep445", err);
    if (rc) {
        free(av);
        return rc;
    }

    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    int bad = wset(&cfg.program_name, HR_PYTHON_EXE, &cfg);
    if (av) {
        cfg.parse_argv = 1;
        st = PyConfig_SetBytesArgv(&cfg, o->argc + 1, av);
        free(av);
    } else {
        cfg.parse_argv = 0;
        bad |= wset(&cfg.run_filename, o->argv[0], &cfg);
        st = PyConfig_SetBytesArgv(&cfg, o->argc, o->argv);
    }
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
    if (rec_script_begins(err)) {
        finish(NULL);
        return err ? err->code : HR_EINTERNAL;
    }
    *exit_status = Py_RunMain(); /* runs the script, the atexit handlers, and finalises */
    return finish(err);
}

/* {====================================================================
 * Preloaded: libhr_pyrec.so inside the system's python3.11 (HR_REC_PRELOAD)
 *
 * `heapreplay record` runs HR_PYTHON_EXE SCRIPT ARGS with this module in LD_PRELOAD: the very
 * interpreter a plain run uses (Debian's is a static, profile-optimised build; libpython3.11.so
 * costs about a quarter more time on the same script). The constructor runs before main: it
 * takes its settings from the environment (HR_PYREC_ENV_*), puts the environment back as the
 * program would have had it (LD_PRELOAD and those variables removed), and starts recording. Hooks
 * installed before Py_PreInitialize stay installed unless PYTHONMALLOC or the development mode
 * select allocators (the reference, section 3.3 item 4): the CLI uses the embedded recorder then,
 * and the constructor refuses too. The script's start is where the interpreter opens it
 * (pymain_run_file: fopen, with the GIL released, after site and sys.path[0]): the fopen
 * wrapper below takes the GIL there for rec_script_begins.
 * ==================================================================== */
#ifdef HR_REC_PRELOAD
#define HR_EXPORT __attribute__((visibility("default")))

static char pre_script[4096]; /* the script path as given */
static struct stat pre_script_st; /* its file, when it existed at start-up (pre_script_known) */
static int pre_script_known;
static volatile int pre_await; /* 1 until the script's fopen */

/* The recorder's own errors, as heapreplay prints them (the process is heapreplay's). */
static void pre_report(const hr_err_t *err)
{
    fprintf(stderr, "heapreplay record: error: %s\n", err->msg[0] ? err->msg : hr_strerror(err->code));
}

static void take_env(char *dst, size_t cap, const char *name)
{
    const char *v = getenv(name);
    snprintf(dst, cap, "%s", v ? v : "");
}

__attribute__((constructor)) static void pre_start(void)
{
    const char *pid = getenv(HR_PYREC_ENV_PID);
    if (!pid || strtol(pid, NULL, 10) != (long)getpid())
        return;
    if (!&_PyRuntime || !&Py_Version)
        return; /* not the interpreter (yet): a launcher that execs it keeps the environment */
    char out[4096], cmd[8192], mode[16], frame[32], level[32], keep[8192];
    take_env(out, sizeof out, HR_PYREC_ENV_OUT);
    take_env(cmd, sizeof cmd, HR_PYREC_ENV_CMD);
    take_env(mode, sizeof mode, HR_PYREC_ENV_MODE);
    take_env(frame, sizeof frame, HR_PYREC_ENV_FRAME);
    take_env(level, sizeof level, HR_PYREC_ENV_LEVEL);
    take_env(pre_script, sizeof pre_script, HR_PYREC_ENV_SCRIPT);
    /* The interpreter opens the script by an absolute path of its own making: recognise the file
     * (or, if it does not exist, the path as given) */
    pre_script_known = stat(pre_script, &pre_script_st) == 0;
    int had_preload = getenv(HR_PYREC_ENV_KEEP) != NULL;
    take_env(keep, sizeof keep, HR_PYREC_ENV_KEEP);
    /* The program sees the environment it would have had: children do not load this module. */
    if (had_preload && keep[0])
        setenv("LD_PRELOAD", keep, 1);
    else
        unsetenv("LD_PRELOAD");
    const char *names[] = {HR_PYREC_ENV_PID, HR_PYREC_ENV_OUT, HR_PYREC_ENV_CMD,
                           HR_PYREC_ENV_MODE, HR_PYREC_ENV_FRAME, HR_PYREC_ENV_LEVEL,
                           HR_PYREC_ENV_SCRIPT, HR_PYREC_ENV_KEEP};
    for (size_t i = 0; i < HR_ARRAY_LEN(names); i++)
        unsetenv(names[i]);

    hr_err_t err = {0};
    const char *pm = getenv("PYTHONMALLOC"), *dev = getenv("PYTHONDEVMODE");
    if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16)) {
        hr_err_set(&err, HR_EUSAGE, "the interpreter is Python %lx, the recorder was built for "
                   "%x (use --embedded)", Py_Version, (unsigned)PY_VERSION_HEX);
    } else if ((pm && *pm) || (dev && *dev)) {
        hr_err_set(&err, HR_EUSAGE, "PYTHONMALLOC or PYTHONDEVMODE would replace the recorder's "
                   "hooks in a preloaded interpreter (use --embedded)");
    } else {
        hr_record_opts_t o = {.out_path = out, .cmdline = cmd, .report = pre_report,
                              .mode = strcmp(mode, "graph") == 0 ? HR_KIND_GRAPH : HR_KIND_ALLOC,
                              .frame_target = (size_t)strtoull(frame, NULL, 10),
                              .level = atoi(level)};
        exit_on_report = 1;
        if (rec_start(&o, "cpython-pep445-preload", &err) == 0) {
            if (pre_script[0] == '-') /* -c CMD, -m MODULE, - (the CLI names a script itself) */
                pre_await_init = 1;
            else
                pre_await = 1;
            return;
        }
    }
    pre_report(&err); /* as the embedded recorder: nothing runs unrecorded */
    _exit(3);
}

static int is_script(const char *path)
{
    struct stat st;
    if (!pre_script_known) {
        const char *base = strrchr(pre_script, '/'), *pbase = strrchr(path, '/');
        return strcmp(path, pre_script) == 0 ||
               (pbase && strcmp(pbase + 1, base ? base + 1 : pre_script) == 0);
    }
    return stat(path, &st) == 0 && st.st_dev == pre_script_st.st_dev &&
           st.st_ino == pre_script_st.st_ino;
}

/* The script phase begins (the gc callback, the exit handler; rec_script_begins). */
static void pre_begin(void)
{
    PyGILState_STATE st = PyGILState_Ensure();
    hr_err_t err = {0};
    if (rec_script_begins(&err)) { /* reported at exit, as a failed write would be */
        hr_sink_lock(&R.sink);
        rec_failed(&err);
        hr_sink_unlock(&R.sink);
    }
    PyGILState_Release(st);
}

static void pre_script_opens(const char *path)
{
    if (HR_LIKELY(!pre_await) || !path || !_PyRuntime.initialized ||
        R.sink.owner != getpid() || !is_script(path))
        return;
    pre_await = 0;
    pre_begin();
}

/* `python -c CMD` and `python -m MODULE` open no script file. The script phase then begins at
 * the first point the interpreter's main thread runs pending calls after initialisation: the
 * start of the command's code, or of runpy's, which imports the module. An allocator hook (where
 * the initialisation is first seen) may not run Python code, so it only schedules the call
 * (Py_AddPendingCall neither allocates nor needs the GIL). */
static int pre_begin_pending(void *arg)
{
    (void)arg;
    if (R.sink.owner == getpid())
        pre_begin();
    return 0;
}

static void pre_init_seen(void) /* from an observation: holds the lock */
{
    pre_await_init = 0;
    if (Py_AddPendingCall(pre_begin_pending, NULL) != 0) {
        hr_err_t e = {0};
        hr_err_set(&e, HR_EINTERNAL, "cannot schedule the script phase (-c/-m)");
        rec_failed(&e);
    }
}

/* Both names (stdio.h may rename fopen to fopen64, so they are defined by symbol name). */
HR_EXPORT FILE *pre_fopen(const char *path, const char *mode) __asm__("fopen");
HR_EXPORT FILE *pre_fopen64(const char *path, const char *mode) __asm__("fopen64");

HR_EXPORT FILE *pre_fopen64(const char *path, const char *mode)
{
    static FILE *(*real)(const char *, const char *);
    if (HR_UNLIKELY(!real))
        *(void **)&real = dlsym(RTLD_NEXT, "fopen64");
    pre_script_opens(path);
    return real(path, mode);
}

HR_EXPORT FILE *pre_fopen(const char *path, const char *mode)
{
    static FILE *(*real)(const char *, const char *);
    if (HR_UNLIKELY(!real))
        *(void **)&real = dlsym(RTLD_NEXT, "fopen");
    pre_script_opens(path);
    return real(path, mode);
}
/* {==== The program ends without exit(): _exit, _Exit and exec ====
 *
 * os._exit (and C code calling _exit or _Exit) runs no atexit handler, and exec replaces the
 * program (children do not load this module: LD_PRELOAD was removed at start), so the trace is
 * finished here (end_now). An exec that fails leaves the program running unrecorded: the trace
 * is complete up to the exec, and the recorder says so as its own error (exec_failed). The
 * variadic execl* are not covered (Python does not call them); the embedded recorder wraps the
 * Python functions instead (above). */
static __attribute__((noreturn)) void pre_exit_now(int status)
{
    static void (*real)(int);
    end_now();
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "_exit");
    if (real)
        real(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}
HR_EXPORT __attribute__((noreturn)) void _exit(int status) { pre_exit_now(status); }
HR_EXPORT __attribute__((noreturn)) void _Exit(int status) { pre_exit_now(status); }

/* The recording process's exec failed (its trace was finished): say so, keep the errno. */
static int pre_exec_failed(const char *what, int saved)
{
    exec_failed(what, strerror(saved));
    errno = saved;
    return -1;
}

#define PRE_EXEC(name, params, args)                                                              \
    HR_EXPORT int name params                                                                     \
    {                                                                                             \
        static int(*f) params;                                                                    \
        if (!f)                                                                                   \
            *(void **)&f = dlsym(RTLD_NEXT, #name);                                               \
        int mine = records_here();                                                                \
        if (mine)                                                                                 \
            end_now();                                                                            \
        if (!f) {                                                                                 \
            errno = ENOSYS;                                                                       \
            return -1;                                                                            \
        }                                                                                         \
        int rc = f args;                                                                          \
        return mine ? pre_exec_failed(#name, errno) : rc;                                         \
    }
PRE_EXEC(execve, (const char *path, char *const argv[], char *const envp[]), (path, argv, envp))
PRE_EXEC(execv, (const char *path, char *const argv[]), (path, argv))
PRE_EXEC(execvp, (const char *file, char *const argv[]), (file, argv))
PRE_EXEC(execvpe, (const char *file, char *const argv[], char *const envp[]), (file, argv, envp))
PRE_EXEC(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))
#undef PRE_EXEC

/* {==== The program closes or replaces descriptors: keep the trace's (rec_fdguard.h) ==== */
#define HR_FDGUARD_SINK (R.started && !R.finished ? &R.sink : NULL)
#define HR_FDGUARD_FAIL(msg) hr_sink_give_up_fd(&R.sink, msg)
#include "rec_fdguard.h"
#endif /* HR_REC_PRELOAD */

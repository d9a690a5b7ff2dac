/* hr_gc.h: the collector family: one vtable, a registry, and the statistics every collector reports.
 *
 * Who decides what
 *   The replay engine owns the blocks (the allocator under test serves them) and the trace's
 *   explicit events. In a graph trace it hands every object event to the collector: alloc,
 *   incref, decref, link, unlink. The collector alone decides when an object dies and tells the
 *   engine through env->reclaim(), which frees the block at once. A collector never frees memory
 *   itself and never calls reclaim twice for one object.
 *
 *   engine --alloc/incref/decref/link/unlink--> collector --reclaim(id)--> engine --free--> allocator
 *
 * Objects
 *   An object starts with one external reference (its creator's) at alloc. incref/decref move
 *   external references; link/unlink add and remove references held by a container. The shared
 *   heap-graph module (gc/graph.h) keeps these counts and edges for every collector.
 *
 * Time
 *   Event indices are the clock: pauses are measured in wall time, "drag" (how long garbage stays
 *   allocated after it became unreachable) in events.
 */
#ifndef HR_GC_H
#define HR_GC_H

#include <stdint.h>

#include "hr_common.h"

/* X(field, "json/csv name", "description with unit") */
#define HR_GC_STATS(X)                                                                             \
    X(collections, "collections", "collections run (all generations)")                           \
    X(collections_gen0, "collections_gen0", "collections of generation 0")                       \
    X(collections_gen1, "collections_gen1", "collections of generation 1")                       \
    X(collections_gen2, "collections_gen2", "collections of generation 2 (full)")                \
    X(objects_allocated, "objects_allocated", "objects allocated")                              \
    X(objects_reclaimed, "objects_reclaimed", "objects reclaimed, by any means")                \
    X(bytes_reclaimed, "bytes_reclaimed", "bytes of reclaimed objects")                         \
    X(objects_by_refcount, "objects_by_refcount", "objects reclaimed when their count hit zero") \
    X(objects_by_tracing, "objects_by_tracing", "objects reclaimed by a collection")            \
    X(objects_leaked, "objects_leaked", "objects never reclaimed at the end of the trace")      \
    X(bytes_leaked, "bytes_leaked", "bytes of objects never reclaimed")                         \
    X(objects_live_end, "objects_live_end", "objects still reachable at the end of the trace")  \
    X(gc_ns, "gc_ns", "wall time spent in collections, ns")                                     \
    X(pause_p50_ns, "pause_p50_ns", "median collection pause, ns")                              \
    X(pause_p99_ns, "pause_p99_ns", "99th percentile collection pause, ns")                     \
    X(pause_max_ns, "pause_max_ns", "longest collection pause, ns")                             \
    X(objects_visited, "objects_visited", "objects examined by collections (work)")             \
    X(links_visited, "links_visited", "links followed by collections (work)")                   \
    X(drag_mean_events, "drag_mean_events", "mean events from unreachable to reclaimed")        \
    X(drag_max_events, "drag_max_events", "largest drag, events")                               \
    X(peak_objects, "peak_objects", "largest number of objects allocated at once")

typedef struct hr_gc_stats {
#define HR_X(field, name, desc) uint64_t field;
    HR_GC_STATS(HR_X)
#undef HR_X
} hr_gc_stats_t;

/* What the engine offers a collector. Borrowed; lives as long as the collector. */
typedef struct hr_gc_env {
    void *engine;
    /* Free object `id` now (the engine frees its block and forgets it). */
    void (*reclaim)(void *engine, uint64_t id);
    /* The index of the event being replayed. */
    const uint64_t *event;
    /* A collection of `generation` finished, having found `collected` garbage objects. May be
     * NULL. (The replay logs these to compare with the recorded program's collections.) */
    void (*collection)(void *engine, int generation, uint64_t collected);
} hr_gc_env_t;

typedef struct hr_gc_vt {
    const char *name;    /* registry key */
    const char *summary; /* one line */
    const char *params;  /* one line: the spec's parameters, e.g. "T0,T1,T2 (default 700,10,10)" */

    int (*create)(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err);
    void (*destroy)(void *ctx); /* accepts NULL; frees the collector's state, not the objects */

    /* Graph events. Each returns 0, or a negative code with a message (for example a decref
     * that would take a count below zero: the event index is added by the engine). `flags` are
     * the trace's alloc flags (HR_F_GC marks a GC-capable container). */
    int (*alloc)(void *ctx, uint64_t id, uint64_t size, unsigned flags, hr_err_t *err);
    int (*incref)(void *ctx, uint64_t id, hr_err_t *err);
    int (*decref)(void *ctx, uint64_t id, hr_err_t *err);
    int (*link)(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err);
    int (*unlink)(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err);
    /* An object was resized (realloc) to `size` bytes. May be NULL. */
    void (*resize)(void *ctx, uint64_t id, uint64_t size);
    /* The trace freed a block explicitly (allocation-only traces, or plain blocks of graph
     * traces). `flags` as at its alloc. May be NULL. */
    void (*block_free)(void *ctx, uint64_t id, unsigned flags);
    /* A GC-capable block was allocated in an allocation-only trace (no object semantics):
     * generational counting still applies. May be NULL. */
    void (*block_alloc)(void *ctx, uint64_t id, unsigned flags);
    /* The program acted on its collector (trace GC_CONTROL): action is an hr_gc_action_t;
     * collect: a = generation; threshold: a = t0, b = t1 | t2 << 32. May be NULL (ignored). */
    int (*control)(void *ctx, unsigned action, uint64_t a, uint64_t b, hr_err_t *err);
    /* The trace's GC_TRACK: object `id` entered generation `generation` (action HR_TRACK) or
     * left its generation list (HR_UNTRACK; HR_UNTRACK_SURVIVOR: the collection just run did
     * it before counting its survivors). Fails (HR_ECHECK) when the object is not live. May be
     * NULL (ignored: collectors without generations). */
    int (*track)(void *ctx, uint64_t id, unsigned action, int generation, hr_err_t *err);
    /* The trace's GC_BEGIN: where the recorded collector zeroed its counts, after gc.callbacks
     * ran (their allocations lie between the triggering ALLOC and this). May be NULL. */
    void (*gc_begin)(void *ctx, int generation);
    /* The trace's GC_SURVIVORS (allocation-only traces, which have no objects to count): the
     * recorded collector's long_lived_pending and long_lived_total after the collection that
     * just ended, the inputs of its rule for generation 2. May be NULL. */
    void (*survivors)(void *ctx, uint64_t pending, uint64_t total);
    /* End of the trace: final collection policy (none by default) and leak accounting. */
    int (*finish)(void *ctx, hr_err_t *err);
    /* Fill *st. */
    void (*stats)(void *ctx, hr_gc_stats_t *st);
} hr_gc_vt;

/* A live collector. */
typedef struct hr_gc {
    const hr_gc_vt *vt; /* borrowed: static */
    void *ctx;          /* owned by the collector */
    char spec[256];     /* the spec string, for provenance */
} hr_gc_t;

const hr_gc_vt *const *hr_gc_registry(void); /* NULL-terminated, display order */
const hr_gc_vt *hr_gc_by_name(const char *name);
/* Create from a spec string ("generational:700,10,10", "marksweep:trigger=2x"). Unknown names or
 * parameters fail with HR_EUSAGE and a message listing what exists. */
int hr_gc_create(hr_gc_t **out, const char *spec, const hr_gc_env_t *env, hr_err_t *err);
void hr_gc_destroy(hr_gc_t *g); /* accepts NULL */
int hr_gc_describe(hr_buf_t *out);

/* Register a collector that is not built in (tests register deliberately broken ones). */
int hr_gc_register_extra(const hr_gc_vt *vt);

#endif

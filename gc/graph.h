/* graph.h: the heap graph every collector works on: objects, their reference counts and links.
 *
 * Per object (hr_gobj_t, a record that never moves while the object lives; an hr_idtab maps ids
 * to records):
 *   ext   references from outside the heap (stack, globals, C): 1 at alloc, +1 incref, -1 decref
 *   in    references held by containers: one per link edge pointing at it
 *   out   the link edges it holds (targets, with repeats: a list may hold the same object twice)
 *   The object's reference count, as CPython would have it, is ext + in.
 *
 * Invariants (checked by hr_graph_verify in tests):
 *   sum over live objects of nout == sum over live objects of in;
 *   every target in an `out` array is a live object;
 *   an object is in the table iff it is live (allocated and not yet reclaimed).
 *
 * Deaths
 *   hr_graph_kill() reclaims one object: it drops the object's edges (targets lose one `in`
 *   each), then asks the engine to free the block. With `cascade`, targets whose count falls to
 *   zero die too, through an explicit worklist: a 10-million-long chain never recurses.
 *
 * Drag (after Merlin, Hertz et al.)
 *   Every object keeps `ts`, the event at which it last lost a reference. When a collection finds
 *   a set of garbage, an object's death time is the largest ts among the garbage objects that
 *   reach it; drag is the collection's event minus that death time. Objects freed the moment
 *   their count hits zero have no drag.
 */
#ifndef HR_GC_GRAPH_H
#define HR_GC_GRAPH_H

#include "hr_gc.h"
#include "hr_idtab.h"

#define HR_GOBJ_UNTRACKED 0xff /* gen value of objects no generation holds */

typedef struct hr_gobj {
    uint64_t id;                   /* the trace id */
    uint64_t *out;                 /* owned: link targets, nout used of outcap (a power of 2;
                                    * from 64 on, an index follows them: graph.c) */
    uint32_t nout, outcap;
    uint32_t ext;                  /* external references */
    uint32_t in;                   /* incoming links */
    uint64_t ts;                   /* event of the last reference loss (or of the alloc) */
    uint64_t size;                 /* bytes, as allocated or last resized */
    struct hr_gobj *prev, *next;   /* list membership (generational lists, scratch lists) */
    int64_t scratch;               /* collectors' per-collection value (gc_refs, death time) */
    uint8_t flags;                 /* alloc flags (HR_F_GC ...) */
    uint8_t gen;                   /* generation, or HR_GOBJ_UNTRACKED */
    uint8_t mark;                  /* collectors' per-collection mark */
    uint8_t live;                  /* 0 reclaimed, 1 live, 2 queued to die, 3 in a set dying */
} hr_gobj_t;

typedef struct hr_graph hr_graph_t;

/* A stack of objects (mark stacks, garbage sets, worklists). Owned by whoever embeds it. */
typedef struct hr_gstack {
    hr_gobj_t **v;
    size_t n, cap;
} hr_gstack_t;

int hr_gstack_push(hr_gstack_t *s, hr_gobj_t *o, hr_err_t *err);
void hr_gstack_free(hr_gstack_t *s);

/* Called just before an object is reclaimed, so a collector can unlink it from its lists. */
typedef void (*hr_graph_unlist_fn)(void *ctx, hr_gobj_t *o);

struct hr_graph {
    hr_idtab_t objs;           /* hr_gobj_t * per object id (graph.c) */
    hr_gobj_t *free_objs;      /* reclaimed records for reuse, linked through next */
    void **ochunks;            /* owned: mmap'd chunks the records are carved from */
    size_t nochunks, ocarve;   /* chunks; records carved from the newest */
    const hr_gc_env_t *env;    /* borrowed */
    hr_gc_stats_t *st;         /* borrowed: the owning collector's statistics */
    hr_graph_unlist_fn unlist; /* may be NULL */
    void *unlist_ctx;
    uint64_t nobjects;         /* live objects */
    hr_gstack_t work;          /* the cascade worklist */
    uint64_t drag_sum, drag_n; /* for the mean drag */
};

int hr_graph_init(hr_graph_t *g, const hr_gc_env_t *env, hr_gc_stats_t *st, hr_err_t *err);
/* Free the graph's memory. The objects' blocks are the engine's business. */
void hr_graph_free(hr_graph_t *g);

/* The record of object id while it is in the graph (live, or dying: see hr_gobj_t.live). */
HR_INLINE hr_gobj_t *hr_graph_obj_(hr_graph_t *g, uint64_t id)
{
    hr_gobj_t **pp = hr_idtab_get_sized(&g->objs, id, sizeof *pp);
    return pp ? *pp : NULL;
}

HR_INLINE hr_gobj_t *hr_graph_get(hr_graph_t *g, uint64_t id)
{
    hr_gobj_t *o = hr_graph_obj_(g, id);
    return o && o->live == 1 ? o : NULL;
}

/* What an error says when an event names an object a collector already reclaimed (the replay
 * engine recognises it to explain recorded traces: docs/recorder.md). */
#define HR_GRAPH_RECLAIMED "(already reclaimed)"

HR_INLINE uint64_t hr_graph_count(const hr_gobj_t *o) { return (uint64_t)o->ext + o->in; }

/* New object of `size` bytes with one external reference. */
int hr_graph_alloc(hr_graph_t *g, uint64_t id, uint64_t size, unsigned flags, hr_gobj_t **out,
                   hr_err_t *err);
/* The four graph events. They change counts and edges only; nobody dies here. decref and unlink
 * fail (HR_ECHECK) when the count or the edge is not there. *o / *dst get the objects. */
int hr_graph_incref(hr_graph_t *g, uint64_t id, hr_gobj_t **o, hr_err_t *err);
int hr_graph_decref(hr_graph_t *g, uint64_t id, hr_gobj_t **o, hr_err_t *err);
int hr_graph_link(hr_graph_t *g, uint64_t src, uint64_t dst, hr_err_t *err);
int hr_graph_unlink(hr_graph_t *g, uint64_t src, uint64_t dst, hr_gobj_t **dsto, hr_err_t *err);

/* Reclaim o, whose count is zero, and with it (iteratively) every object whose count falls to
 * zero as o's links go: reference-counting deaths. */
int hr_graph_kill(hr_graph_t *g, hr_gobj_t *o, hr_err_t *err);
/* Reclaim a set of garbage found by tracing: the n live objects of `set`. Their edges
 * go first, then their blocks; objects outside the set whose count falls to zero follow by
 * reference counting (generational: old or untracked objects held only by young garbage). */
int hr_graph_kill_set(hr_graph_t *g, hr_gobj_t **set, size_t n, hr_err_t *err);

/* Counting deaths: decref (or unlink), and if the object's count reached zero, reclaim it and
 * what only it kept alive, with drag 0 (refcount and generational share these). */
int hr_graph_decref_rc(hr_graph_t *g, uint64_t id, hr_err_t *err);
int hr_graph_unlink_rc(hr_graph_t *g, uint64_t src, uint64_t dst, hr_err_t *err);

/* Reclaim garbage found by tracing at the current event: the n objects of `set`, all with mark
 * `m`. Computes their death times, records a drag sample each, then reclaims them
 * (hr_graph_kill_set). */
int hr_graph_reclaim_garbage(hr_graph_t *g, hr_gobj_t **set, size_t n, uint8_t m, hr_err_t *err);

/* Remove a set of objects without reclaiming anything: their edges go (targets lose one `in`
 * each, nobody dies), then their records. For shadows and oracles, not for collectors. */
void hr_graph_remove_set(hr_graph_t *g, hr_gobj_t **set, size_t n);

/* Record a drag sample (events). */
void hr_graph_drag(hr_graph_t *g, uint64_t drag);

/* Compute death times for a garbage set: `set` holds n objects whose `mark` is `m`. Sets each
 * object's scratch to its death time (see the header comment). */
int hr_graph_death_times(hr_graph_t *g, hr_gobj_t **set, size_t n, uint8_t m, hr_err_t *err);

/* Walk every live object. */
int hr_graph_each(hr_graph_t *g, int (*fn)(void *arg, hr_gobj_t *o), void *arg);

/* Leak accounting at the end of the trace: every live object counts as leaked unless `live_ok`
 * says it is still reachable (ext > 0 or reachable from such an object). Fills st. */
int hr_graph_account_end(hr_graph_t *g, hr_err_t *err);

/* Check the invariants (tests). */
int hr_graph_verify(hr_graph_t *g, hr_err_t *err);

/* Ready-made vtable slots for collectors whose context struct begins with its hr_graph_t:
 * graph bookkeeping only (*_keep: no deaths), or with counting deaths (*_rc). */
int hr_graph_slot_incref(void *ctx, uint64_t id, hr_err_t *err);
int hr_graph_slot_decref_keep(void *ctx, uint64_t id, hr_err_t *err);
int hr_graph_slot_decref_rc(void *ctx, uint64_t id, hr_err_t *err);
int hr_graph_slot_link(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err);
int hr_graph_slot_unlink_keep(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err);
int hr_graph_slot_unlink_rc(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err);
void hr_graph_slot_resize(void *ctx, uint64_t id, uint64_t size);
int hr_graph_slot_finish(void *ctx, hr_err_t *err);

/* Pause samples: collectors add one per collection; percentiles go into st at stats time. */
typedef struct hr_pauses {
    uint64_t *ns;
    size_t n, cap;
} hr_pauses_t;
void hr_pauses_add(hr_pauses_t *p, uint64_t ns);
void hr_pauses_fill(hr_pauses_t *p, hr_gc_stats_t *st);
void hr_pauses_free(hr_pauses_t *p);

#endif

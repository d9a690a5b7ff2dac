/* generational.c: CPython 3.11's collector: reference counting plus a three-generation cycle
 * detector (Modules/gcmodule.c), replayed on the trace's heap graph.
 *
 * Theory of operation
 *   Reference counting reclaims most objects, at the event their count reaches zero (as in
 *   refcount.c). GC-capable objects (alloc flag `gc`) are also tracked in one of three
 *   generation lists; a cycle detector finds garbage that counting cannot (cycles).
 *
 *   Counting (CPython 3.11, _PyObject_GC_Link and PyObject_GC_Del):
 *     count[0] += 1 at the allocation of every GC-capable object, before it is tracked;
 *     count[0] -= 1 at the death of a GC-capable object, only while count[0] > 0.
 *     In allocation-only traces the same counting runs on GC-flagged blocks, so the collection
 *     points are reproduced even though there is no graph to collect; the survivor counts of the
 *     25 % rule below come from the trace there (GC_SURVIVORS: gen_survivors).
 *   A collection may start only inside that allocation, when count[0] > threshold[0] (and
 *   threshold[0] != 0, and no collection is running). It collects the oldest generation i
 *   (2, 1, 0) with count[i] > threshold[i], except that generation 2 is skipped while
 *   long_lived_pending < long_lived_total / 4 (integer division).
 *
 *   Collecting generation g:
 *     count[g+1] += 1 (if g < 2); count[0..g] = 0;
 *     young = generations 0..g merged into g;
 *     update_refs:       gc_refs = ext + in for every young object (its true reference count);
 *     subtract_refs:     every link from a young object to a young object takes 1 off the target;
 *     move_unreachable:  young objects with gc_refs > 0 are reachable from outside, and so is
 *                        everything young reachable from them; the rest is garbage;
 *     survivors of g < 2 move to g + 1 (g == 1 adds them to long_lived_pending);
 *     a full collection sets long_lived_pending = 0 and long_lived_total = survivors;
 *     the garbage is reclaimed; objects outside it whose count falls to zero follow by counting.
 *   "collected" is the number of garbage objects found (all GC-capable, as in CPython).
 *
 * What is not modelled (the trace carries no such information): finalizers (__del__) and
 * resurrection, legacy tp_del ("uncollectable" is always 0), weak-reference callbacks, free-list
 * clearing in full collections (that shows up in recorded traces as frees anyway).
 * The program's own gc.collect(), gc.disable(), gc.enable(), gc.set_threshold(), gc.freeze() and
 * gc.unfreeze() arrive as GC_CONTROL events and are performed: freeze moves every tracked object
 * to the permanent generation (list gen[NGEN], which no collection examines: its objects count
 * as references from outside, like any object not being collected) and sets the three counts
 * to 0, as CPython 3.11 does; unfreeze appends it to the oldest generation.
 * Objects are tracked from their allocation. Whatever else moves an object between the lists
 * (CPython's untracking of tuples and dicts holding only atomic values, late tracking of dicts,
 * free-list reuse) arrives as GC_TRACK events and is performed (gen_track).
 *
 * Invariants: an object with o->gen == i is on list gen[i] (i < 3, or i == NGEN: the permanent
 * generation); untracked objects have gen == HR_GOBJ_UNTRACKED and are on no list; outside a collection every tracked object has
 * mark 0. Marks during a collection: 1 young and not (yet) reachable, 2 young and reachable.
 */
#include "graph.h"

#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>

#define NGEN 3

typedef struct gen_list {
    hr_gobj_t *head, *tail;
    uint64_t n;
} gen_list_t;

typedef struct gen_gc {
    hr_graph_t g; /* first: the hr_graph_slot_* functions take the context as the graph */
    hr_gc_stats_t st;
    hr_pauses_t pauses;
    const hr_gc_env_t *env;
    uint64_t threshold[NGEN];
    uint64_t count[NGEN];
    uint64_t long_lived_total, long_lived_pending;
    int collecting;
    int disabled;            /* gc.disable() */
    int last_gen;            /* generation of the last collection not yet met by a GC_BEGIN */
    int collected_gen;       /* generation of the last collection (-1: none yet) */
    gen_list_t gen[NGEN + 1]; /* [NGEN]: the permanent generation (gc.freeze) */
    hr_gstack_t stack;       /* reachability stack, then the garbage set */
} gen_gc_t;

/* {==== Lists ==== */

static void list_append(gen_list_t *l, hr_gobj_t *o)
{
    o->next = NULL;
    o->prev = l->tail;
    if (l->tail)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
    l->n++;
}

static void list_remove(gen_list_t *l, hr_gobj_t *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        l->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        l->tail = o->prev;
    o->prev = o->next = NULL;
    l->n--;
}

/* Append all of `from` to `to`, relabelling the objects' generation. */
static void list_merge(gen_list_t *from, gen_list_t *to, uint8_t gen)
{
    for (hr_gobj_t *o = from->head; o; o = o->next)
        o->gen = gen;
    if (!from->head)
        return;
    if (to->tail) {
        to->tail->next = from->head;
        from->head->prev = to->tail;
    } else {
        to->head = from->head;
    }
    to->tail = from->tail;
    to->n += from->n;
    from->head = from->tail = NULL;
    from->n = 0;
}

/* Death of any object (graph hook): off its list, and PyObject_GC_Del's count. */
static void gen_unlist(void *ctx, hr_gobj_t *o)
{
    gen_gc_t *c = ctx;
    if (o->gen != HR_GOBJ_UNTRACKED) {
        list_remove(&c->gen[o->gen], o);
        o->gen = HR_GOBJ_UNTRACKED;
    }
    if ((o->flags & HR_F_GC) && c->count[0] > 0)
        c->count[0]--;
}

/* {==== Create ==== */

static int gen_create(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err)
{
    gen_gc_t *c = calloc(1, sizeof *c);
    if (!c)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    static const uint64_t dflt[NGEN] = {700, 10, 10};
    static const char *const keys[NGEN] = {"t0", "t1", "t2"};
    for (int i = 0; i < NGEN; i++) {
        const char *v = hr_spec_get(spec, keys[i]);
        const char *pv = hr_spec_positional(spec, i);
        if (v && pv) {
            free(c);
            return hr_err_set(err, HR_EUSAGE,
                              "collector 'generational': threshold %s given twice (positional "
                              "value '%s' and %s=%s)", keys[i], pv, keys[i], v);
        }
        v = v ? v : pv;
        c->threshold[i] = dflt[i];
        if (v && hr_parse_u64(v, &c->threshold[i])) {
            free(c);
            return hr_err_set(err, HR_EUSAGE, "collector 'generational': threshold %s=%s is not "
                              "a whole number", keys[i], v);
        }
    }
    c->env = env;
    c->last_gen = -1;
    c->collected_gen = -1;
    hr_graph_init(&c->g, env, &c->st, err);
    c->g.unlist = gen_unlist;
    c->g.unlist_ctx = c;
    *ctx = c;
    return HR_OK;
}

static void gen_destroy(void *ctx)
{
    gen_gc_t *c = ctx;
    if (!c)
        return;
    hr_graph_free(&c->g);
    hr_pauses_free(&c->pauses);
    hr_gstack_free(&c->stack);
    free(c);
}

/* {==== Collection ==== */

static int collect(gen_gc_t *c, int g, hr_err_t *err)
{
    uint64_t t0 = hr_now_ns();
    int rc = HR_OK;
    size_t n = 0;
    c->collecting = 1;
    if (g + 1 < NGEN)
        c->count[g + 1]++;
    for (int i = 0; i <= g; i++)
        c->count[i] = 0;
    for (int i = 0; i < g; i++)
        list_merge(&c->gen[i], &c->gen[g], (uint8_t)g);
    gen_list_t *young = &c->gen[g];
    /* update_refs */
    for (hr_gobj_t *o = young->head; o; o = o->next) {
        o->scratch = (int64_t)hr_graph_count(o);
        o->mark = 1;
        c->st.objects_visited++;
    }
    /* subtract_refs */
    for (hr_gobj_t *o = young->head; o; o = o->next)
        for (uint32_t i = 0; i < o->nout; i++) {
            hr_gobj_t *d = hr_graph_get(&c->g, o->out[i]);
            c->st.links_visited++;
            if (d->mark == 1)
                d->scratch--;
        }
    /* move_unreachable: mark 2 = reachable from outside the young set */
    c->stack.n = 0;
    for (hr_gobj_t *o = young->head; o && !rc; o = o->next)
        if (o->scratch > 0) {
            o->mark = 2;
            rc = hr_gstack_push(&c->stack, o, err);
        }
    while (!rc && c->stack.n > 0) {
        hr_gobj_t *x = c->stack.v[--c->stack.n];
        for (uint32_t i = 0; i < x->nout && !rc; i++) {
            hr_gobj_t *d = hr_graph_get(&c->g, x->out[i]);
            c->st.links_visited++;
            if (d->mark == 1) {
                d->mark = 2;
                rc = hr_gstack_push(&c->stack, d, err);
            }
        }
    }
    if (rc)
        goto out;
    /* The garbage leaves its list; the survivors' marks go back to 0. */
    for (hr_gobj_t *o = young->head, *next; o; o = next) {
        next = o->next;
        if (o->mark == 1) {
            list_remove(young, o);
            o->gen = HR_GOBJ_UNTRACKED;
            if ((rc = hr_gstack_push(&c->stack, o, err)))
                goto out;
        } else {
            o->mark = 0;
        }
    }
    n = c->stack.n;
    if (g + 1 < NGEN) {
        if (g == NGEN - 2)
            c->long_lived_pending += young->n;
        list_merge(young, &c->gen[g + 1], (uint8_t)(g + 1));
    } else {
        c->long_lived_pending = 0;
        c->long_lived_total = young->n;
    }
    rc = hr_graph_reclaim_garbage(&c->g, c->stack.v, n, 1, err);
out:
    c->stack.n = 0;
    c->collecting = 0;
    c->last_gen = g;
    c->collected_gen = g;
    c->st.collections++;
    if (g == 0)
        c->st.collections_gen0++;
    else if (g == 1)
        c->st.collections_gen1++;
    else
        c->st.collections_gen2++;
    uint64_t dt = hr_now_ns() - t0;
    c->st.gc_ns += dt;
    hr_pauses_add(&c->pauses, dt);
    if (c->env->collection)
        c->env->collection(c->env->engine, g, n);
    return rc;
}

/* gc_collect_generations: the oldest generation over its threshold, with the 25 % rule. */
static int maybe_collect(gen_gc_t *c, hr_err_t *err)
{
    if (c->count[0] <= c->threshold[0] || c->threshold[0] == 0 || c->collecting || c->disabled)
        return HR_OK;
    for (int i = NGEN - 1; i >= 0; i--)
        if (c->count[i] > c->threshold[i]) {
            if (i == NGEN - 1 && c->long_lived_pending < c->long_lived_total / 4)
                continue;
            return collect(c, i, err);
        }
    return HR_OK;
}

/* {==== Events ==== */

static int gen_alloc(void *ctx, uint64_t id, uint64_t size, unsigned flags, hr_err_t *err)
{
    gen_gc_t *c = ctx;
    int rc;
    if (flags & HR_F_GC) {
        c->count[0]++;
        if ((rc = maybe_collect(c, err)))
            return rc;
    }
    hr_gobj_t *o;
    if ((rc = hr_graph_alloc(&c->g, id, size, flags, &o, err)))
        return rc;
    if (flags & HR_F_GC) {
        o->gen = 0;
        list_append(&c->gen[0], o);
    }
    return HR_OK;
}

static void gen_block_alloc(void *ctx, uint64_t id, unsigned flags)
{
    (void)id;
    gen_gc_t *c = ctx;
    if (flags & HR_F_GC) {
        c->count[0]++;
        hr_err_t err;
        maybe_collect(c, &err); /* nothing to collect: there are no objects */
    }
}

static void gen_block_free(void *ctx, uint64_t id, unsigned flags)
{
    (void)id;
    gen_gc_t *c = ctx;
    if ((flags & HR_F_GC) && c->count[0] > 0)
        c->count[0]--;
}

/* gc.collect(g) runs whatever the thresholds and even while disabled; the settings calls only
 * change state. */
static int gen_control(void *ctx, unsigned action, uint64_t a, uint64_t b, hr_err_t *err)
{
    gen_gc_t *c = ctx;
    switch (action) {
    case HR_GC_COLLECT:
        return c->collecting ? HR_OK : collect(c, (int)(a > 2 ? 2 : a), err);
    case HR_GC_DISABLE: c->disabled = 1; return HR_OK;
    case HR_GC_ENABLE: c->disabled = 0; return HR_OK;
    case HR_GC_DEL: /* a GC block the trace no longer names was deleted (PyObject_GC_Del) */
        if (c->count[0] > 0)
            c->count[0]--;
        return HR_OK;
    case HR_GC_FREEZE:
        for (int i = 0; i < NGEN; i++) {
            list_merge(&c->gen[i], &c->gen[NGEN], (uint8_t)NGEN);
            c->count[i] = 0;
        }
        return HR_OK;
    case HR_GC_UNFREEZE:
        list_merge(&c->gen[NGEN], &c->gen[NGEN - 1], (uint8_t)(NGEN - 1));
        return HR_OK;
    case HR_GC_THRESHOLD:
        c->threshold[0] = a;
        c->threshold[1] = b & 0xffffffffu;
        c->threshold[2] = b >> 32;
        return HR_OK;
    default: return HR_OK;
    }
}

/* GC_TRACK: the recorded program's collector moved an object between its lists in a way that
 * allocation and collections do not explain (CPython untracks tuples and dicts that hold only
 * atomic values, tracks a dict when it gets a container, and re-tracks an object taken from a
 * free list into generation 0). A survivor untracked by the collection just run was untracked
 * before CPython counted the survivors, so it leaves the count that collection added to
 * long_lived_pending (generation 1) or set long_lived_total to (generation 2). */
static int gen_track(void *ctx, uint64_t id, unsigned action, int generation, hr_err_t *err)
{
    gen_gc_t *c = ctx;
    hr_gobj_t *o = hr_graph_get(&c->g, id);
    if (!o)
        return hr_err_set(err, HR_ECHECK, "gc %s of object %llu, which is not live (already "
                          "reclaimed)", action == HR_TRACK ? "track" : "untrack",
                          (unsigned long long)id);
    if (o->gen != HR_GOBJ_UNTRACKED) {
        list_remove(&c->gen[o->gen], o);
        o->gen = HR_GOBJ_UNTRACKED;
    }
    if (action == HR_TRACK) {
        if (generation < 0 || generation >= NGEN)
            return hr_err_set(err, HR_EUSAGE, "gc track into generation %d", generation);
        o->gen = (uint8_t)generation;
        list_append(&c->gen[generation], o);
    } else if (action == HR_UNTRACK_SURVIVOR) {
        if (c->collected_gen == NGEN - 2 && c->long_lived_pending > 0)
            c->long_lived_pending--;
        else if (c->collected_gen == NGEN - 1 && c->long_lived_total > 0)
            c->long_lived_total--;
    }
    return HR_OK;
}

/* A recorded GC_BEGIN right after our own collection of the same generation: CPython zeroes the
 * counts only after gc.callbacks ran, so the callbacks' own GC allocations (between the
 * triggering ALLOC and GC_BEGIN) do not count. */
static void gen_gc_begin(void *ctx, int generation)
{
    gen_gc_t *c = ctx;
    if (c->last_gen == generation)
        for (int i = 0; i <= generation && i < NGEN; i++)
            c->count[i] = 0;
    c->last_gen = -1;
}

/* GC_SURVIVORS (allocation-only traces): the survivor counts this collector cannot count
 * without objects, as the recorded collector had them after its collection; without them every
 * generation-2 candidate would pass the 25 % rule (0 < 0 / 4 is false). */
static void gen_survivors(void *ctx, uint64_t pending, uint64_t total)
{
    gen_gc_t *c = ctx;
    c->long_lived_pending = pending;
    c->long_lived_total = total;
}

static void gen_stats(void *ctx, hr_gc_stats_t *st)
{
    gen_gc_t *c = ctx;
    hr_pauses_fill(&c->pauses, &c->st);
    *st = c->st;
}

const hr_gc_vt hr_gc_generational_vt = {
    .name = "generational",
    .summary = "CPython 3.11: reference counting plus a three-generation cycle detector",
    .params = "T0,T1,T2 or t0=,t1=,t2= thresholds (default 700,10,10)",
    .create = gen_create,
    .destroy = gen_destroy,
    .alloc = gen_alloc,
    .incref = hr_graph_slot_incref,
    .decref = hr_graph_slot_decref_rc,
    .link = hr_graph_slot_link,
    .unlink = hr_graph_slot_unlink_rc,
    .resize = hr_graph_slot_resize,
    .block_free = gen_block_free,
    .block_alloc = gen_block_alloc,
    .control = gen_control,
    .track = gen_track,
    .gc_begin = gen_gc_begin,
    .survivors = gen_survivors,
    .finish = hr_graph_slot_finish,
    .stats = gen_stats,
};

/* marksweep.c: stop-the-world mark-sweep, with no reference counting for reclamation.
 *
 * Theory of operation
 *   Roots are the objects with external references (ext > 0: stack, globals, C code). A
 *   collection marks everything reachable from the roots through links (an explicit mark stack,
 *   so any depth is safe), then sweeps: every unmarked object is garbage and is reclaimed, cycles
 *   included. Between collections nothing is reclaimed, even objects whose count is zero; that is
 *   the difference from reference counting this collector exists to measure.
 *
 * When it collects (one of, chosen by the spec; giving keys of two is a usage error)
 *   trigger=F (default 2x)  when the bytes of allocated objects exceed F times the bytes that
 *                           survived the last collection (at least `min`, default 1M); F is
 *                           1..1000 (TRIGGER_MAX)
 *   budget=N                every N bytes of object allocation
 *   heap=N                  when allocated bytes would exceed N (a fixed heap, for heap-size
 *                           sweeps after Hertz & Berger); if live data alone exceeds N after a
 *                           collection, the heap is too small: the replay fails with a clear error
 *   An allocation first counts its bytes, then the check runs, then the object joins the heap, so
 *   the new object is never collected by the collection its own allocation triggered.
 *
 * State per collection: mark (0 white, 1 black). The heap bytes are the sum of the sizes of the
 * objects allocated and not yet reclaimed, as recorded at their allocation.
 */
#include "graph.h"

#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>

enum { MODE_FACTOR, MODE_BUDGET, MODE_HEAP };

/* The largest growth factor. A heap a thousand times its live data is past any setting worth
 * measuring; a documented bound makes a slip like trigger=1e18 an error, not a different run. */
#define TRIGGER_MAX 1000.0

typedef struct ms_gc {
    hr_graph_t g; /* first: the hr_graph_slot_* functions take the context as the graph */
    hr_gc_stats_t st;
    hr_pauses_t pauses;
    int mode;
    double factor;
    uint64_t min, budget, heap_limit;
    uint64_t heap_bytes;      /* bytes of live objects */
    uint64_t since_last;      /* bytes allocated since the last collection */
    uint64_t threshold;       /* collect when heap_bytes exceeds this (factor mode) */
    hr_gstack_t stack;        /* mark stack, then the garbage set */
    const hr_gc_env_t *env;
} ms_gc_t;

/* The keys of each policy; a spec that mixes two would leave one silently ignored. */
static int check_one_policy(hr_spec_t *spec, hr_err_t *err)
{
    static const struct { const char *key; int mode; } keys[] = {
        {"trigger", MODE_FACTOR}, {"min", MODE_FACTOR}, {"budget", MODE_BUDGET},
        {"heap", MODE_HEAP}};
    const char *first = NULL;
    int first_mode = -1;
    for (size_t i = 0; i < HR_ARRAY_LEN(keys); i++) {
        if (!hr_spec_get(spec, keys[i].key))
            continue;
        if (first && keys[i].mode != first_mode)
            return hr_err_set(err, HR_EUSAGE,
                              "collector 'marksweep': %s= and %s= cannot be combined "
                              "(trigger=/min=, budget= and heap= are different policies: give "
                              "one)", first, keys[i].key);
        if (!first)
            first = keys[i].key, first_mode = keys[i].mode;
    }
    return HR_OK;
}

/* key=N of a policy given by a size of at least 1 byte: *out, and the mode, when given. */
static int policy_size(ms_gc_t *c, hr_spec_t *spec, const char *key, int mode, uint64_t *out,
                       const char *like, hr_err_t *err)
{
    const char *v = hr_spec_get(spec, key);
    if (!v)
        return HR_OK;
    c->mode = mode;
    if (hr_parse_size(v, out) || *out == 0)
        return hr_err_set(err, HR_EUSAGE, "collector 'marksweep': %s=%s must be a size of at "
                          "least 1 byte, like %s", key, v, like);
    return HR_OK;
}

static int parse_policy(ms_gc_t *c, hr_spec_t *spec, hr_err_t *err)
{
    const char *v;
    int rc = check_one_policy(spec, err);
    if (rc)
        return rc;
    if ((v = hr_spec_get(spec, "trigger")) &&
        (hr_parse_double(v, &c->factor) || !(c->factor >= 1.0 && c->factor <= TRIGGER_MAX)))
        return hr_err_set(err, HR_EUSAGE,
                          "collector 'marksweep': trigger=%s must be a factor 1..%g, like 2x", v,
                          TRIGGER_MAX);
    if ((v = hr_spec_get(spec, "min")) && hr_parse_size(v, &c->min))
        return hr_err_set(err, HR_EUSAGE, "collector 'marksweep': min=%s is not a size, like 1M",
                          v);
    if ((rc = policy_size(c, spec, "budget", MODE_BUDGET, &c->budget, "4M", err)))
        return rc;
    return policy_size(c, spec, "heap", MODE_HEAP, &c->heap_limit, "64M", err);
}

static int ms_create(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err)
{
    ms_gc_t *c = calloc(1, sizeof *c);
    if (!c)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    c->env = env;
    c->mode = MODE_FACTOR;
    c->factor = 2.0;
    c->min = 1u << 20;
    int rc = parse_policy(c, spec, err);
    if (rc) {
        free(c);
        return rc;
    }
    c->threshold = c->min;
    hr_graph_init(&c->g, env, &c->st, err);
    *ctx = c;
    return HR_OK;
}

static void ms_destroy(void *ctx)
{
    ms_gc_t *c = ctx;
    if (!c)
        return;
    hr_graph_free(&c->g);
    hr_pauses_free(&c->pauses);
    hr_gstack_free(&c->stack);
    free(c);
}

typedef struct walk {
    ms_gc_t *c;
    hr_err_t *err;
    int rc;
} walk_t;

static int whiten_and_root(void *arg, hr_gobj_t *o)
{
    walk_t *w = arg;
    w->c->st.objects_visited++;
    o->mark = 0;
    if (o->ext > 0) {
        o->mark = 1;
        if ((w->rc = hr_gstack_push(&w->c->stack, o, w->err)))
            return 1;
    }
    return 0;
}

static int gather_white(void *arg, hr_gobj_t *o)
{
    walk_t *w = arg;
    if (!o->mark && (w->rc = hr_gstack_push(&w->c->stack, o, w->err)))
        return 1;
    return 0;
}

/* bytes * factor in bytes, UINT64_MAX when that does not fit: converting a double at or above
 * 2^64 to uint64_t is undefined (on x86-64 it gave 0, so the threshold fell to `min`). */
static uint64_t scale_saturating(uint64_t bytes, double factor)
{
    double x = (double)bytes * factor;
    return x < 18446744073709551616.0 ? (uint64_t)x : UINT64_MAX; /* 2^64, exact in a double */
}

static int collect(ms_gc_t *c, hr_err_t *err)
{
    uint64_t t0 = hr_now_ns();
    walk_t w = {c, err, 0};
    c->stack.n = 0;
    hr_graph_each(&c->g, whiten_and_root, &w); /* roots pushed, everything else white */
    while (!w.rc && c->stack.n > 0) {
        hr_gobj_t *x = c->stack.v[--c->stack.n];
        for (uint32_t i = 0; i < x->nout && !w.rc; i++) {
            hr_gobj_t *d = hr_graph_get(&c->g, x->out[i]);
            c->st.links_visited++;
            if (!d->mark) {
                d->mark = 1;
                w.rc = hr_gstack_push(&c->stack, d, err);
            }
        }
    }
    if (!w.rc)
        hr_graph_each(&c->g, gather_white, &w);
    if (w.rc)
        return w.rc;
    size_t n = c->stack.n;
    int rc = HR_OK;
    for (size_t i = 0; i < n; i++) {
        c->stack.v[i]->mark = 2; /* garbage: death times propagate within the set */
        c->heap_bytes -= c->stack.v[i]->size;
    }
    rc = hr_graph_reclaim_garbage(&c->g, c->stack.v, n, 2, err);
    c->stack.n = 0;
    c->st.collections++;
    c->st.collections_gen2++;
    uint64_t dt = hr_now_ns() - t0;
    c->st.gc_ns += dt;
    hr_pauses_add(&c->pauses, dt);
    if (c->env->collection)
        c->env->collection(c->env->engine, 2, n);
    c->since_last = 0;
    uint64_t next = scale_saturating(c->heap_bytes, c->factor);
    c->threshold = next > c->min ? next : c->min;
    return rc;
}

static int ms_alloc(void *ctx, uint64_t id, uint64_t size, unsigned flags, hr_err_t *err)
{
    ms_gc_t *c = ctx;
    int rc = HR_OK;
    c->since_last += size;
    switch (c->mode) {
    case MODE_FACTOR:
        if (c->heap_bytes + size > c->threshold)
            rc = collect(c, err);
        break;
    case MODE_BUDGET:
        if (c->since_last > c->budget)
            rc = collect(c, err);
        break;
    case MODE_HEAP:
        if (c->heap_bytes + size > c->heap_limit) {
            rc = collect(c, err);
            if (!rc && c->heap_bytes + size > c->heap_limit)
                rc = hr_err_set(err, HR_ECHECK,
                                "heap of %llu bytes is too small: %llu bytes are reachable and %llu "
                                "more are requested",
                                (unsigned long long)c->heap_limit,
                                (unsigned long long)c->heap_bytes, (unsigned long long)size);
        }
        break;
    }
    if (rc)
        return rc;
    hr_gobj_t *o;
    if ((rc = hr_graph_alloc(&c->g, id, size, flags, &o, err)))
        return rc;
    c->heap_bytes += size;
    return HR_OK;
}

static void ms_resize(void *ctx, uint64_t id, uint64_t size)
{
    ms_gc_t *c = ctx;
    hr_gobj_t *o = hr_graph_get(&c->g, id);
    if (o) {
        c->heap_bytes += size - o->size;
        o->size = size;
    }
}

static int ms_control(void *ctx, unsigned action, uint64_t a, uint64_t b, hr_err_t *err)
{
    (void)a, (void)b;
    return action == HR_GC_COLLECT ? collect(ctx, err) : HR_OK; /* its own triggers otherwise */
}

static void ms_stats(void *ctx, hr_gc_stats_t *st)
{
    ms_gc_t *c = ctx;
    hr_pauses_fill(&c->pauses, &c->st);
    *st = c->st;
}

const hr_gc_vt hr_gc_marksweep_vt = {
    .name = "marksweep",
    .summary = "stop-the-world mark-sweep from externally referenced roots; no reference counting",
    .params = "trigger=F (default 2x of the live heap, 1..1000) min=SIZE (1M) | budget=SIZE "
              "| heap=SIZE (one of the three policies)",
    .create = ms_create,
    .destroy = ms_destroy,
    .alloc = ms_alloc,
    .incref = hr_graph_slot_incref,
    .decref = hr_graph_slot_decref_keep,
    .link = hr_graph_slot_link,
    .unlink = hr_graph_slot_unlink_keep,
    .resize = ms_resize,
    .control = ms_control,
    .finish = hr_graph_slot_finish,
    .stats = ms_stats,
};

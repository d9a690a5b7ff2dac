/* refcount.c: pure reference counting.
 *
 * Theory of operation
 *   An object's count is its external references plus the links that point at it (graph.h). When
 *   a decref or an unlink takes a count to zero, the object dies at that very event, and so do,
 *   transitively, the objects its links kept alive (an iterative cascade, so chains of any length
 *   are safe). Nothing else ever reclaims memory: a cycle whose external references are gone keeps
 *   counts above zero forever. At the end of the trace such objects are reported as leaked, with
 *   their bytes; objects still externally referenced are reported as live, not leaked.
 *
 *   Drag is zero by construction: an object dies the moment its count reaches zero, and leaks are
 *   counted apart.
 */
#include "graph.h"

#include <stdlib.h>

typedef struct rc_gc {
    hr_graph_t g; /* first: the hr_graph_slot_* functions take the context as the graph */
    hr_gc_stats_t st;
} rc_gc_t;

static int rc_create(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err)
{
    (void)spec;
    rc_gc_t *c = calloc(1, sizeof *c);
    if (!c)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    hr_graph_init(&c->g, env, &c->st, err);
    *ctx = c;
    return HR_OK;
}

static void rc_destroy(void *ctx)
{
    rc_gc_t *c = ctx;
    if (!c)
        return;
    hr_graph_free(&c->g);
    free(c);
}

static int rc_alloc(void *ctx, uint64_t id, uint64_t size, unsigned flags, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_alloc(&((rc_gc_t *)ctx)->g, id, size, flags, &o, err);
}

static void rc_stats(void *ctx, hr_gc_stats_t *st) { *st = ((rc_gc_t *)ctx)->st; }

const hr_gc_vt hr_gc_refcount_vt = {
    .name = "refcount",
    .summary = "pure reference counting: objects die when their count reaches zero; cycles leak",
    .params = "(none)",
    .create = rc_create,
    .destroy = rc_destroy,
    .alloc = rc_alloc,
    .incref = hr_graph_slot_incref,
    .decref = hr_graph_slot_decref_rc,
    .link = hr_graph_slot_link,
    .unlink = hr_graph_slot_unlink_rc,
    .resize = hr_graph_slot_resize,
    .finish = hr_graph_slot_finish,
    .stats = rc_stats,
};

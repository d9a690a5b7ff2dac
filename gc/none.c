/* none.c: the "none" collector: trusts the trace's explicit frees and never reclaims an object.
 *
 * Theory of operation: nothing happens. On allocation-only traces this is the natural choice
 * (every block dies at its free). On graph traces every object stays allocated to the end and is
 * reported as leaked: the replay then measures the harness and the allocator without any memory
 * management policy. The graph slots are NULL, so the engine does not even call them.
 */
#include "hr_gc.h"

#include <stdlib.h>
#include <string.h>

typedef struct none_gc {
    hr_gc_stats_t st;
} none_gc_t;

static int none_create(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err)
{
    (void)spec, (void)env;
    none_gc_t *g = calloc(1, sizeof *g);
    if (!g)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    *ctx = g;
    return HR_OK;
}

static void none_destroy(void *ctx) { free(ctx); }

static void none_stats(void *ctx, hr_gc_stats_t *st) { *st = ((none_gc_t *)ctx)->st; }

const hr_gc_vt hr_gc_none_vt = {
    .name = "none",
    .summary = "trust explicit frees; objects of graph traces are never reclaimed",
    .params = "(none)",
    .create = none_create,
    .destroy = none_destroy,
    .stats = none_stats,
};

/* livetab.h: the consumer's side of external id states (hr_trace_check_external) for tests: a
 * byte per id, 1 while the block is live, kept by applying every delivered event.
 *
 *   livetab_t live = {0};
 *   opts.id_state = livetab_state, opts.id_state_arg = &live;
 *   ... livetab_apply(&live, ev.op, ev.a) for every event delivered ...
 *   free(live.v);
 */
#ifndef HR_TESTS_LIVETAB_H
#define HR_TESTS_LIVETAB_H

#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>

typedef struct livetab {
    uint8_t *v;
    size_t n;
} livetab_t;

static int livetab_state(void *arg, uint64_t id)
{
    livetab_t *t = arg;
    return id < t->n && t->v[id] ? HR_ID_BLOCK : HR_ID_FREED;
}

static void livetab_apply(livetab_t *t, int op, uint64_t id)
{
    if (op == HR_OP_ALLOC) {
        if (id >= t->n) {
            size_t n = t->n ? t->n * 2 : 1024;
            while (n <= id)
                n *= 2;
            uint8_t *v = realloc(t->v, n);
            if (!v)
                abort();
            memset(v + t->n, 0, n - t->n);
            t->v = v, t->n = n;
        }
        t->v[id] = 1;
    } else if (op == HR_OP_FREE && id < t->n) {
        t->v[id] = 0;
    }
}

#endif

/* refcounts.c: the largest reference count (ext + in) of every object in a graph trace.
 *
 * State: per id a current count and the largest seen, 8 bytes, in an array indexed by id (ids are
 * dense). largest == 0 marks ids that are not objects (plain blocks, or not allocated yet).
 * Counts only grow by one per event, so the histogram is built at the end from the per-id maxima.
 */
#include "hr_refcounts.h"

#include <stdlib.h>
#include <string.h>

#define BATCH 4096

typedef struct rc_slot {
    uint32_t cur; /* ext + in now */
    uint32_t max; /* largest ext + in; 0: not an object */
} rc_slot_t;

static int grow(rc_slot_t **v, size_t *cap, uint64_t id)
{
    if (id < *cap)
        return HR_OK;
    size_t ncap = *cap ? *cap : 65536;
    while (ncap <= id)
        ncap *= 2;
    rc_slot_t *p = realloc(*v, ncap * sizeof *p);
    if (!p)
        return HR_ENOMEM;
    memset(p + *cap, 0, (ncap - *cap) * sizeof *p);
    *v = p, *cap = ncap;
    return HR_OK;
}

static void up(rc_slot_t *s)
{
    if (s->cur < UINT32_MAX)
        s->cur++;
    if (s->cur > s->max)
        s->max = s->cur;
}

int hr_refcounts(const char *path, int partial, hr_rc_stats_t *st, hr_err_t *err)
{
    memset(st, 0, sizeof *st);
    hr_trace_read_opts_t ro = {.partial = partial};
    hr_trace_reader_t *r;
    int rc = hr_trace_open(&r, path, &ro, err);
    if (rc)
        return rc;
    st->kind = hr_trace_header(r)->kind;
    rc_slot_t *v = NULL;
    size_t cap = 0;
    hr_event_t *evs = malloc(BATCH * sizeof *evs);
    if (!evs)
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
    while (!rc) {
        size_t got;
        if ((rc = hr_trace_read(r, evs, BATCH, &got, err)) || got == 0)
            break;
        for (size_t i = 0; i < got && !rc; i++) {
            const hr_event_t *ev = &evs[i];
            rc_slot_t *s;
            switch (ev->op) {
            case HR_OP_ALLOC:
                if (!(ev->flags & HR_F_OBJECT))
                    break;
                if ((rc = grow(&v, &cap, ev->a))) {
                    hr_err_set(err, rc, "out of memory");
                    break;
                }
                v[ev->a].cur = v[ev->a].max = 1;
                st->objects++;
                break;
            case HR_OP_INCREF:
            case HR_OP_LINK: {
                uint64_t id = ev->op == HR_OP_LINK ? ev->b : ev->a;
                st->ops++;
                if (id < cap && v[id].max)
                    up(&v[id]);
                break;
            }
            case HR_OP_DECREF:
            case HR_OP_UNLINK: {
                uint64_t id = ev->op == HR_OP_UNLINK ? ev->b : ev->a;
                st->ops++;
                if (id < cap && (s = &v[id])->max) {
                    if (s->cur)
                        s->cur--;
                    else
                        st->below_zero++;
                }
                break;
            }
            default:
                break;
            }
        }
        st->events = hr_trace_status(r)->events;
    }
    st->cut_short = hr_trace_status(r)->cut_short;
    if (!rc) {
        uint32_t top = 0;
        for (size_t id = 0; id < cap; id++)
            if (v[id].max > top)
                top = v[id].max;
        st->max_count = top;
        if (st->objects) {
            st->nhist = (size_t)top + 1;
            if (!(st->hist = calloc(st->nhist, sizeof *st->hist))) {
                st->nhist = 0;
                rc = hr_err_set(err, HR_ENOMEM, "out of memory");
            } else {
                for (size_t id = 0; id < cap; id++)
                    if (v[id].max)
                        st->hist[v[id].max]++;
            }
        }
    }
    free(evs);
    free(v);
    hr_trace_close(r);
    return rc;
}

void hr_rc_stats_free(hr_rc_stats_t *st)
{
    free(st->hist);
    st->hist = NULL;
    st->nhist = 0;
}

uint64_t hr_rc_fit_bits(const hr_rc_stats_t *st, unsigned bits)
{
    uint64_t limit = bits >= 63 ? UINT64_MAX : ((uint64_t)1 << bits) - 1, n = 0;
    for (size_t c = 0; c < st->nhist && c <= limit; c++)
        n += st->hist[c];
    return n;
}

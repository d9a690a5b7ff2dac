/* hr_refcounts.h: the maximum reference count each object reaches in a graph trace (after
 * Shahriyar, Blackburn and Frampton, "Down for the count?", ISMM 2012).
 *
 * An object's reference count, as CPython would have it, is ext + in (docs/replay-and-
 * collectors.md): its external references (1 at alloc, +1 per incref, -1 per decref) plus the
 * links pointing at it (+1 per link, -1 per unlink). The analysis follows that sum through the
 * trace and keeps, per object, the largest value it reached; the result is a histogram over
 * objects. It needs no collector: deaths do not change anyone's count before the object is gone
 * (a dying object's outgoing links are unlinked in the trace or never matter again).
 *
 * In recorded traces only GC-capable objects are objects (docs/recorder.md), so the histogram
 * describes containers; strings, ints and floats are plain blocks and are not counted.
 */
#ifndef HR_REFCOUNTS_H
#define HR_REFCOUNTS_H

#include "hr_trace.h"

typedef struct hr_rc_stats {
    uint64_t events;      /* events read */
    uint64_t objects;     /* objects allocated */
    uint64_t ops;         /* incref + decref + link + unlink events */
    uint64_t max_count;   /* the largest count any object reached */
    uint64_t below_zero;  /* times a count would have gone below zero (clamped; recorder imprecision) */
    uint64_t *hist;       /* owned: hist[v] = objects whose largest count was v, for v < nhist */
    size_t nhist;         /* max_count + 1 (0 when there are no objects) */
    int kind;             /* trace kind */
    int cut_short;        /* the trace ended before its END record (partial reads only) */
} hr_rc_stats_t;

/* Analyse a trace file. `partial`: accept a trace that was cut short. On error *st holds what
 * was counted so far and must still be freed. */
int hr_refcounts(const char *path, int partial, hr_rc_stats_t *st, hr_err_t *err);
void hr_rc_stats_free(hr_rc_stats_t *st); /* accepts a zeroed or freed struct */

/* Objects whose largest count fits in `bits` bits (count <= 2^bits - 1), for the "how many bits
 * does a reference count need" question. */
uint64_t hr_rc_fit_bits(const hr_rc_stats_t *st, unsigned bits);

#endif

/* fpoll.h: a sampled peak footprint, for backends whose allocator keeps no peak of its own
 * (internal to allocators/: jemalloc, tcmalloc, and libc when it cannot count exactly).
 *
 * Theory of operation
 *   Reading such an allocator's accounting costs microseconds (jemalloc refreshes its statistics
 *   epoch, about 27 us here; tcmalloc walks its size classes), far too much for every request.
 *   So the backend polls it, and keeps the largest value seen:
 *     - whenever the bytes live through the instance rise above `trigger`, which each poll sets
 *       to the live bytes then plus max(live / 32, 256 KiB): a footprint grows mostly with the
 *       live heap, so its peak is near a peak of the live bytes;
 *     - every `period` allocating calls, for the growth that comes without more live bytes
 *       (fragmentation, caches filling);
 *     - at every stats call (the replay's timeline samples and its end).
 *   The peak is then exact to within the growth between two polls: at most 1/32 of the live
 *   bytes plus 256 KiB, or `period` allocations' worth. Frees never poll: a free does not make an
 *   allocator map memory.
 *
 * Invariant: peak >= every footprint passed to hr_fpoll_note.
 */
#ifndef HR_FPOLL_H
#define HR_FPOLL_H

#include <stdint.h>

#include "hr_common.h"

#define HR_FPOLL_PERIOD 65536u         /* default allocating calls between periodic polls */
#define HR_FPOLL_MIN_STEP (256u << 10) /* smallest rise of the live bytes that polls */

typedef struct hr_fpoll {
    uint64_t live;    /* bytes live through the instance, as requested */
    uint64_t trigger; /* poll when live rises above this */
    uint64_t peak;    /* largest footprint noted */
    uint64_t polls;   /* polls done (for the statistics text) */
    uint32_t left;    /* allocating calls before the next periodic poll */
    uint32_t period;  /* allocating calls between periodic polls, >= 1 */
} hr_fpoll_t;

static inline void hr_fpoll_init(hr_fpoll_t *f, uint32_t period)
{
    f->live = f->peak = f->polls = 0;
    f->trigger = HR_FPOLL_MIN_STEP;
    f->period = f->left = period ? period : 1;
}

/* The `poll=` parameter of backend `name` (NULL: the default period) into *period. */
static inline int hr_fpoll_parse(const char *name, const char *poll, uint32_t *period,
                                 hr_err_t *err)
{
    uint64_t v = HR_FPOLL_PERIOD;
    if (poll && (hr_parse_size(poll, &v) != HR_OK || v == 0 || v > UINT32_MAX))
        return hr_err_set(err, HR_EUSAGE, "%s: poll=%s must be a count of calls 1..4294967295",
                          name, poll);
    *period = (uint32_t)v;
    return HR_OK;
}

/* An allocating call served `n` bytes. Returns nonzero when the caller should poll. */
HR_INLINE int hr_fpoll_alloc(hr_fpoll_t *f, uint64_t n)
{
    f->live += n;
    return (f->live > f->trigger) | (--f->left == 0);
}

/* A block of `old` bytes became one of `n` (realloc). Returns nonzero when the caller should
 * poll. */
HR_INLINE int hr_fpoll_resize(hr_fpoll_t *f, uint64_t old, uint64_t n)
{
    f->live += n - old; /* modular: the sum stays right whichever is larger */
    return (f->live > f->trigger) | (--f->left == 0);
}

HR_INLINE void hr_fpoll_free(hr_fpoll_t *f, uint64_t n)
{
    f->live -= n;
}

/* Record a poll's result and arm the next one. */
static inline void hr_fpoll_note(hr_fpoll_t *f, uint64_t footprint)
{
    uint64_t step = f->live / 32;
    if (step < HR_FPOLL_MIN_STEP)
        step = HR_FPOLL_MIN_STEP;
    f->polls++;
    if (footprint > f->peak)
        f->peak = footprint;
    f->trigger = f->live + step;
    f->left = f->period;
}

#endif /* HR_FPOLL_H */

/* trace_internal.h: the checker's id-state bitmap as inline helpers, for the decoder fast path.
 * Private to traces/. */
#ifndef HR_TRACE_INTERNAL_H
#define HR_TRACE_INTERNAL_H

#include "hr_trace.h"

/* State of an allocated id (id < c->next_id). */
HR_INLINE int hr_chk_get(const hr_trace_check_t *c, uint64_t id)
{
    return (c->state[id >> 2] >> ((id & 3) * 2)) & 3;
}

HR_INLINE void hr_chk_set(hr_trace_check_t *c, uint64_t id, int s)
{
    uint8_t *p = &c->state[id >> 2];
    unsigned sh = (unsigned)(id & 3) * 2;
    *p = (uint8_t)((*p & ~(3u << sh)) | ((unsigned)s << sh));
}

/* Room for the state of id next_id without growing. */
HR_INLINE int hr_chk_has_room(const hr_trace_check_t *c) { return (c->next_id >> 2) < c->state_cap; }

#endif

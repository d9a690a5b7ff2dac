/* hr_trace_fast.h: the decoder's fast path for plain events, inlined by a consumer (the replay
 * engine's hot loop).
 *
 * hr_trace_read hands out checked events in batches of hr_event_t. On a hot path the batch is a
 * second pass over memory and a second dispatch per event, so a consumer may instead take a
 * cursor over the frame the reader is in and decode the commonest events in place:
 *
 *   ALLOC without flags      (HR_CUR_ALLOC: id, size, domain)
 *   FREE of a block          (HR_CUR_FREE: id)
 *   REALLOC of a live id     (HR_CUR_REALLOC: id, new size)
 *
 * The cursor makes exactly the checks and state changes hr_trace_read makes for these events
 * (varints, sizes, id bounds, the checker's id-state bitmap). At any other event, at a check that
 * fails, and at the end of the frame it stops *without consuming*, so the next hr_trace_read
 * decodes that event as usual, or reports it with its file, frame, byte offset and event index.
 * Hence a consumer that mixes the two sees the same events, and the same errors, as one that
 * only calls hr_trace_read.
 *
 *   hr_trace_cursor_t c = hr_trace_cursor_take(r);  // c.p == c.end: not inside a frame
 *   while ((k = hr_trace_cursor_next(&c, &id, &size, &dom)) != HR_CUR_STOP)
 *       ...;
 *   hr_trace_cursor_give(r, c);                    // position, ids, event count go back to r
 *
 * Between take and give the reader must not be used.
 */
#ifndef HR_TRACE_FAST_H
#define HR_TRACE_FAST_H

#include "hr_trace.h"
#include "trace_wire.h"

/* {==== The checker's id-state bitmap (2 bits per id), shared with the reader and writer ==== */

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

/* {==== The cursor ==== */

/* A cursor is a value: the consumer keeps it in a local variable whose address never escapes,
 * so the compiler can keep it in registers (the bitmap stores, through a uint8_t pointer, could
 * otherwise alias every field it would have to reload). */
typedef struct hr_trace_cursor {
    const uint8_t *p, *end; /* undecoded part of the frame; p == end: nothing to decode */
    uint64_t prev;          /* the id the last id-naming event named */
    uint64_t next_id;       /* the checker's next id (written back by give) */
    uint8_t *state;         /* the checker's id-state bitmap and its size in bytes */
    size_t state_cap;
    uint64_t events;        /* events decoded through this cursor */
} hr_trace_cursor_t;

enum { HR_CUR_STOP = 0, HR_CUR_ALLOC, HR_CUR_FREE, HR_CUR_REALLOC };

/* A cursor over the rest of the current frame; p == end when the reader is not inside a frame
 * with events left (then call hr_trace_read). */
hr_trace_cursor_t hr_trace_cursor_take(hr_trace_reader_t *r);
/* Give the cursor back: the reader continues after the last event the cursor decoded. */
void hr_trace_cursor_give(hr_trace_reader_t *r, hr_trace_cursor_t c);

HR_INLINE int hr_cur_get_(const hr_trace_cursor_t *c, uint64_t id)
{
    return (c->state[id >> 2] >> ((id & 3) * 2)) & 3;
}

HR_INLINE void hr_cur_set_(hr_trace_cursor_t *c, uint64_t id, int s)
{
    uint8_t *p = &c->state[id >> 2];
    unsigned sh = (unsigned)(id & 3) * 2;
    *p = (uint8_t)((*p & ~(3u << sh)) | ((unsigned)s << sh));
}

/* Decode the next event if it is one of the cursor's kinds and passes every check. */
HR_INLINE int hr_trace_cursor_next(hr_trace_cursor_t *c, uint64_t *id, uint64_t *size,
                                   unsigned *domain)
{
    const uint8_t *p = c->p, *end = c->end;
    uint64_t x;
    if (HR_UNLIKELY(p >= end))
        return HR_CUR_STOP;
    unsigned op = *p++;
    if ((op & ~3u) == HR_W_ALLOC) {
        if (hr_varint_get(&p, end, &x) != 1 || x > HR_TRACE_MAX_SIZE ||
            (c->next_id >> 2) >= c->state_cap)
            return HR_CUR_STOP;
        uint64_t a = c->next_id++;
        hr_cur_set_(c, a, HR_ID_BLOCK);
        *id = a;
        *size = x;
        *domain = op & 3;
        c->prev = a;
        c->p = p;
        c->events++;
        return HR_CUR_ALLOC;
    }
    unsigned base = op & ~(unsigned)HR_W_FROM_PREV;
    if (base != HR_W_FREE && base != HR_W_REALLOC)
        return HR_CUR_STOP;
    if (hr_varint_get(&p, end, &x) != 1)
        return HR_CUR_STOP;
    uint64_t a = (op & HR_W_FROM_PREV) ? c->prev + (uint64_t)hr_unzigzag(x) : c->next_id - 1 - x;
    if (HR_UNLIKELY(a >= c->next_id)) /* also catches negative candidates (wrapped) */
        return HR_CUR_STOP;
    int s = hr_cur_get_(c, a);
    if (base == HR_W_FREE) {
        if (HR_UNLIKELY(s != HR_ID_BLOCK))
            return HR_CUR_STOP;
        hr_cur_set_(c, a, HR_ID_FREED);
    } else if (s == HR_ID_FREED || hr_varint_get(&p, end, &x) != 1 || x > HR_TRACE_MAX_SIZE) {
        return HR_CUR_STOP;
    } else {
        *size = x;
    }
    *id = a;
    c->prev = a;
    c->p = p;
    c->events++;
    return base == HR_W_FREE ? HR_CUR_FREE : HR_CUR_REALLOC;
}

#endif

/* hr_trace_fast.h: the decoder's fast path for plain events, inlined by a consumer (the replay
 * engine's hot loop).
 *
 * hr_trace_read hands out checked events in batches of hr_event_t. On a hot path the batch is a
 * second pass over memory and a second dispatch per event, so a consumer may instead take a
 * cursor over the frame the reader is in and decode the commonest events in place:
 *
 *   allocations (plain, or flagged gc/object/zero/typed), frees, reallocs, and the graph events
 *   (incref, decref, link, unlink, died) on live objects
 *
 * The cursor makes exactly the checks and state changes hr_trace_read makes for these events
 * (varints, sizes, id bounds, the checker's id-state bitmap). At any other event, at a check that
 * fails, and at the end of the frame it stops *without consuming*, so the next hr_trace_read
 * decodes that event as usual, or reports it with its file, frame, byte offset and event index.
 * hr_trace_read's own fast path is this cursor, so a consumer that mixes the two sees the
 * same events, and the same errors, as one that only calls hr_trace_read.
 *
 *   hr_trace_cursor_t c = hr_trace_cursor_take(r);  // c.p == c.end: not inside a frame
 *   while ((op = hr_trace_cursor_next(&c, &ev)) != 0)                // op: an hr_op_t
 *       ...;
 *   hr_trace_cursor_give(r, c);                    // position, ids, event count go back to r
 *
 * Between take and give the reader must not be used.
 *
 * A consumer that keeps its own record of live blocks (the replay engine) can open an
 * allocation-only trace with external id states (hr_trace_read_opts_t.id_state): the checker
 * then asks the consumer instead of keeping 2 bits per id, and the consumer may decode with
 * hr_trace_cursor_next_unverified, checking the freed or resized block itself and putting a dead
 * one back with hr_trace_cursor_unread for hr_trace_read to report.
 */
#ifndef HR_TRACE_FAST_H
#define HR_TRACE_FAST_H

#include "hr_trace.h"
#include "trace_wire.h"

/* {==== The checker's id-state bitmap (2 bits per id), shared with the reader and writer ==== */

HR_INLINE int hr_idstate_get(const uint8_t *state, uint64_t id)
{
    return (state[id >> 2] >> ((id & 3) * 2)) & 3;
}

HR_INLINE void hr_idstate_set(uint8_t *state, uint64_t id, int s)
{
    uint8_t *p = &state[id >> 2];
    unsigned sh = (unsigned)(id & 3) * 2;
    *p = (uint8_t)((*p & ~(3u << sh)) | ((unsigned)s << sh));
}

/* State of an allocated id (id < c->next_id). */
HR_INLINE int hr_chk_get(const hr_trace_check_t *c, uint64_t id)
{
    return hr_idstate_get(c->state, id);
}

HR_INLINE void hr_chk_set(hr_trace_check_t *c, uint64_t id, int s)
{
    hr_idstate_set(c->state, id, s);
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
    uint64_t ntypes;        /* types defined (constant under a cursor: TYPE records stop it) */
    uint8_t *state;         /* the checker's id-state bitmap and its size in bytes (unused */
    size_t state_cap;       /*   when the id states are external: */
    hr_id_state_fn ext;     /*   the consumer's, hr_trace_check_external), or NULL */
    void *ext_arg;
    int graph;              /* the trace is a graph trace */
    uint64_t events;        /* events decoded through this cursor */
} hr_trace_cursor_t;

/* What the cursor decoded: the fields of hr_event_t its kinds use (see hr_trace.h). */
typedef struct hr_cur_event {
    uint64_t a, b;
    uint32_t tag;
    uint8_t domain, flags;
} hr_cur_event_t;

/* A cursor over the rest of the current frame; p == end when the reader is not inside a frame
 * with events left (then call hr_trace_read). */
hr_trace_cursor_t hr_trace_cursor_take(hr_trace_reader_t *r);
/* Give the cursor back: the reader continues after the last event the cursor decoded. */
void hr_trace_cursor_give(hr_trace_reader_t *r, hr_trace_cursor_t c);

/* The cursor's records one kind at a time: hr_trace_cursor_decode_ below, and a consumer that
 * dispatches on the opcode itself (the replay engine's lane, replay.c), are built from these,
 * so both make the same checks. A parse (hr_cur_alloc, hr_cur_id) reads the record after its
 * opcode byte at *pp and changes nothing: 1 when the cursor takes it (*pp past it), 0 when not;
 * its take (hr_cur_alloc_take, hr_cur_id_take) then makes the state changes. */

/* ALLOC, plain or with flags ((op & ~7) == HR_W_ALLOC): *size, *flags, *tag. */
HR_INLINE int hr_cur_alloc(const hr_trace_cursor_t *c, unsigned op, const uint8_t **pp,
                           const uint8_t *end, uint64_t *size, uint64_t *flags, uint64_t *tag)
{
    *flags = 0, *tag = 0;
    if (hr_varint_get(pp, end, size) != 1 || *size > HR_TRACE_MAX_SIZE ||
        (!c->ext && (c->next_id >> 2) >= c->state_cap))
        return 0;
    if ((op & ~3u) == HR_W_ALLOC)
        return 1;
    if (hr_varint_get(pp, end, flags) != 1 ||
        (*flags & ~(uint64_t)(HR_F_GC | HR_F_OBJECT | HR_F_ZERO | HR_F_TYPED)) ||
        ((*flags & HR_F_OBJECT) && !c->graph))
        return 0;
    return !(*flags & HR_F_TYPED) || (hr_varint_get(pp, end, tag) == 1 && *tag < c->ntypes);
}

/* The id of an ALLOC hr_cur_alloc took. */
HR_INLINE uint64_t hr_cur_alloc_take(hr_trace_cursor_t *c, uint64_t flags)
{
    uint64_t a = c->next_id++;
    if (!c->ext)
        hr_idstate_set(c->state, a, (flags & HR_F_OBJECT) ? HR_ID_OBJECT : HR_ID_BLOCK);
    c->prev = a;
    return a;
}

/* The wire kind of an id-naming opcode (HR_W_FREE, _REALLOC, _INCREF, _DECREF, _LINK, _UNLINK,
 * _DIED), or 0; and the hr_op_t of such a kind. */
HR_INLINE unsigned hr_cur_id_kind(unsigned op)
{
    unsigned k = op & ~(unsigned)HR_W_FROM_PREV;
    return k == HR_W_FREE || k == HR_W_REALLOC || (k >= HR_W_INCREF && k <= HR_W_DIED) ? k : 0;
}
HR_INLINE int hr_cur_id_op(unsigned k)
{
    return k == HR_W_FREE      ? HR_OP_FREE
           : k == HR_W_REALLOC ? HR_OP_REALLOC
                               : HR_OP_INCREF + (int)(k - HR_W_INCREF);
}

/* An id-naming record of wire kind k (hr_cur_id_kind(op)): *a its id; *b the new size
 * (REALLOC) or the target (LINK, UNLINK). FREE names a block, REALLOC anything not freed, the
 * graph events objects of a graph trace. With external id states a FREE or REALLOC asks c->ext
 * when `verify`, else is the consumer's to check (hr_trace_cursor_next_unverified). */
HR_INLINE int hr_cur_id(const hr_trace_cursor_t *c, unsigned op, unsigned k, const uint8_t **pp,
                        const uint8_t *end, const int verify, uint64_t *a, uint64_t *b)
{
    uint64_t x;
    if (hr_varint_get(pp, end, &x) != 1)
        return 0;
    uint64_t id = (op & HR_W_FROM_PREV) ? c->prev + (uint64_t)hr_unzigzag(x) : c->next_id - 1 - x;
    if (HR_UNLIKELY(id >= c->next_id)) /* also catches negative candidates (wrapped) */
        return 0;
    int s = !c->ext ? hr_idstate_get(c->state, id) : verify ? c->ext(c->ext_arg, id) : HR_ID_BLOCK;
    *a = id;
    switch (k) {
    case HR_W_FREE:
        return s == HR_ID_BLOCK;
    case HR_W_REALLOC:
        return s != HR_ID_FREED && hr_varint_get(pp, end, b) == 1 && *b <= HR_TRACE_MAX_SIZE;
    case HR_W_LINK:
    case HR_W_UNLINK:
        if (!c->graph || s != HR_ID_OBJECT || hr_varint_get(pp, end, &x) != 1)
            return 0;
        *b = id + (uint64_t)hr_unzigzag(x);
        return *b < c->next_id && hr_idstate_get(c->state, *b) == HR_ID_OBJECT;
    default: /* INCREF, DECREF, DIED */
        return c->graph && s == HR_ID_OBJECT;
    }
}

/* The state changes of a record hr_cur_id took: a FREE frees its id; prev follows. */
HR_INLINE void hr_cur_id_take(hr_trace_cursor_t *c, unsigned k, uint64_t a, uint64_t b)
{
    if (k == HR_W_FREE && !c->ext)
        hr_idstate_set(c->state, a, HR_ID_FREED);
    c->prev = k == HR_W_LINK || k == HR_W_UNLINK ? b : a;
}

/* Decode the next event if it is one of the cursor's kinds and passes every check; returns its
 * hr_op_t, or 0 (stop) without consuming anything:
 *   ALLOC     a plain block, or flags among gc, object, zero, typed (a defined type)
 *   FREE      of a block;  REALLOC of a live id to a legal size
 *   INCREF, DECREF, DIED, LINK, UNLINK   on live objects of a graph trace
 * These are events the checker (hr_trace_check_event) would accept, with the same state changes;
 * the trace tests and the fuzz_cursor target compare the two.
 *
 * With external id states (c->ext set) this asks c->ext whether a freed or resized block
 * is live. A consumer that answers that question itself anyway (it must look the block up) may
 * call hr_trace_cursor_next_unverified instead, which skips the call: it must then check that
 * the id of every FREE and REALLOC it gets is live, and if not, put the event back with
 * hr_trace_cursor_unread and let hr_trace_read report it (file, offset, event index). */
HR_INLINE int hr_trace_cursor_decode_(hr_trace_cursor_t *c, hr_cur_event_t *ev, const int verify)
{
    const uint8_t *p = c->p, *end = c->end;
    if (HR_UNLIKELY(p >= end))
        return 0;
    unsigned op = *p++, k;
    int kind;
    if ((op & ~7u) == HR_W_ALLOC) {
        uint64_t size, flags, tag;
        if (!hr_cur_alloc(c, op, &p, end, &size, &flags, &tag))
            return 0;
        ev->a = hr_cur_alloc_take(c, flags);
        ev->b = size;
        ev->domain = (uint8_t)(op & 3);
        ev->flags = (uint8_t)flags;
        ev->tag = (uint32_t)tag;
        kind = HR_OP_ALLOC;
    } else if ((k = hr_cur_id_kind(op)) != 0) {
        uint64_t a, b = 0;
        if (!hr_cur_id(c, op, k, &p, end, verify, &a, &b))
            return 0;
        hr_cur_id_take(c, k, a, b);
        ev->a = a;
        ev->b = b;
        kind = hr_cur_id_op(k);
    } else {
        return 0;
    }
    c->p = p;
    c->events++;
    return kind;
}

HR_INLINE int hr_trace_cursor_next(hr_trace_cursor_t *c, hr_cur_event_t *ev)
{
    return hr_trace_cursor_decode_(c, ev, 1);
}

HR_INLINE int hr_trace_cursor_next_unverified(hr_trace_cursor_t *c, hr_cur_event_t *ev)
{
    return hr_trace_cursor_decode_(c, ev, 0);
}

/* Put back a FREE or REALLOC the consumer found not live: p and prev are the cursor's fields as
 * they were before the hr_trace_cursor_next_unverified call that returned it. */
HR_INLINE void hr_trace_cursor_unread(hr_trace_cursor_t *c, const uint8_t *p, uint64_t prev)
{
    c->p = p;
    c->prev = prev;
    c->events--;
}

#endif

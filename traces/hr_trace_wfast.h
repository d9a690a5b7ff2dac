/* hr_trace_wfast.h: the writer's fast paths for ALLOC and FREE, inlined by a recorder.
 *
 * A recorder writes one event per allocator call of the program it records, on the program's
 * own thread: there a call into trace_writer.c per event (its prologue, its checks of the frame
 * and of the payload's room, the id-state bitmap) is a measurable part of the recording's cost.
 * So the writer's state is declared here and the two commonest events can be encoded in place:
 *
 *   hr_trace_wfast_alloc   ALLOC of the next id (no alignment)    == hr_trace_write_alloc
 *   hr_trace_wfast_id      FREE / INCREF / DECREF / DIED of an id  == hr_trace_write_id
 *
 * Each makes exactly the checks and state changes of the out-of-line function it stands for
 * (which is hr_trace_write's, event for event: tests/trace/test_trace.c compares the files byte
 * for byte, invalid events included), because the out-of-line functions are built from the same
 * inline tries: a try either writes the event and returns 1, or changes nothing and returns 0,
 * and then the general path (hr_trace_write) checks, encodes, or refuses the event.
 *
 * With trusted ids (hr_trace_write_opts_t.trusted_ids: the checker's id states are external and
 * answer "a live block" for every id) the tries skip the bitmap as the checker does.
 *
 * `fast_lim` folds "a frame is open and an event of FAST_ROOM bytes fits" into one compare:
 * it is cap - HR_TRACE_WFAST_ROOM while a frame is open, else 0; trace_writer.c recomputes it
 * whenever the frame opens or closes or the payload buffer changes (wfast_refresh).
 *
 * Everything in struct hr_trace_writer other than what the fast paths use is private to
 * trace_writer.c.
 */
#ifndef HR_TRACE_WFAST_H
#define HR_TRACE_WFAST_H

#include <pthread.h>

#include "hr_out.h"
#include "hr_trace.h"
#include "hr_trace_fast.h"
#include "trace_wire.h"

struct ZSTD_CCtx_s;

#define HR_TRACE_WFAST_ROOM (1 + 2 * HR_VARINT_MAX) /* bytes a fast-path event may take */

struct hr_trace_writer {
    /* the fast paths' state */
    hr_buf_t payload;    /* payload of the open frame */
    size_t fast_lim;     /* payload.len below this: a fast path may write (see above) */
    size_t frame_target; /* the frame is emitted once payload.len reaches this */
    uint64_t events;     /* events accepted */
    uint64_t prev;       /* the id the last id-naming event named (reset to newest per frame) */
    hr_trace_check_t chk;
    /* private to trace_writer.c */
    int fd;
    char *path;          /* owned: final path */
    int atomic;          /* written through `out` (hr_out.h), committed at close */
    hr_out_t out;        /* while atomic: the temporary file and where it goes */
    hr_buf_t zout;       /* compressed frame */
    struct ZSTD_CCtx_s *cctx;
    void *cwork;         /* async: the workspace cctx was made in (ZSTD_initStaticCCtx), owned */
    struct {
        void *p;
        size_t n;
    } prefault[3];       /* async: what the worker faults in first (set before it starts) */
    uint64_t frames;     /* frames written */
    int frame_open;      /* a FRAME record has been written to payload */
    /* async (see trace_writer.c): the worker owns job, zout and cctx while busy */
    int async;           /* a worker thread runs */
    pthread_t worker;
    pthread_mutex_t mu;  /* guards busy, quit, werr */
    pthread_cond_t cv;
    hr_buf_t job;        /* the payload being compressed and written */
    int busy, quit;
    int werr;            /* the worker's first error (0: none) */
    hr_err_t werr_msg;
};

/* Try to write ALLOC (hr_trace_write_alloc's arguments): 1 and *id set when written, 0 when the
 * general path must take it (nothing changed). */
HR_INLINE int hr_trace_wfast_alloc_try(hr_trace_writer_t *w, uint64_t size, unsigned domain,
                                       unsigned flags, uint32_t type, uint64_t *id)
{
    hr_trace_check_t *c = &w->chk;
    uint64_t nid = c->next_id;
    if (HR_UNLIKELY(!(w->payload.len < w->fast_lim && (c->ext || (nid >> 2) < c->state_cap) &&
                      domain < HR_DOMAIN_COUNT && !(flags & ~(unsigned)(HR_F_ALL & ~HR_F_ALIGNED)) &&
                      size <= HR_TRACE_MAX_SIZE &&
                      (!(flags & HR_F_OBJECT) || c->kind == HR_KIND_GRAPH) &&
                      (!(flags & HR_F_TYPED) || type < c->ntypes))))
        return 0;
    uint8_t *p = w->payload.data + w->payload.len;
    size_t n = 1 + hr_varint_put(p + 1, size);
    if (flags) {
        p[0] = (uint8_t)(HR_W_ALLOC_FLAGS + domain);
        p[n++] = (uint8_t)flags; /* < 0x80: one varint byte */
        if (flags & HR_F_TYPED)
            n += hr_varint_put(p + n, type);
    } else {
        p[0] = (uint8_t)(HR_W_ALLOC + domain);
    }
    if (!c->ext)
        hr_idstate_set(c->state, nid, (flags & HR_F_OBJECT) ? HR_ID_OBJECT : HR_ID_BLOCK);
    *id = nid;
    w->prev = nid;
    c->next_id = nid + 1;
    w->payload.len += n;
    w->events++;
    return 1;
}

/* The wire opcode of FREE, INCREF, DECREF, DIED; 0 for every other op. */
HR_INLINE unsigned hr_trace_wfast_id_opcode(int op)
{
    switch (op) {
    case HR_OP_FREE: return HR_W_FREE;
    case HR_OP_INCREF: return HR_W_INCREF;
    case HR_OP_DECREF: return HR_W_DECREF;
    case HR_OP_DIED: return HR_W_DIED;
    default: return 0;
    }
}

/* Try to write an id event (hr_trace_write_id's arguments): 1 when written, 0 when the general
 * path must take it (nothing changed). FREE names a live block; INCREF, DECREF and DIED an
 * object of a graph trace. */
HR_INLINE int hr_trace_wfast_id_try(hr_trace_writer_t *w, int op, uint64_t id)
{
    hr_trace_check_t *c = &w->chk;
    unsigned wop = hr_trace_wfast_id_opcode(op);
    int want = op == HR_OP_FREE ? HR_ID_BLOCK : HR_ID_OBJECT;
    /* external states (trusted ids: an allocation-only trace, so want is a block) say "a live
     * block" for every id: nothing to look up */
    if (HR_UNLIKELY(!(wop && w->payload.len < w->fast_lim && id < c->next_id &&
                      (want == HR_ID_BLOCK || c->kind == HR_KIND_GRAPH) &&
                      (c->ext || hr_idstate_get(c->state, id) == want))))
        return 0;
    uint8_t *p = w->payload.data + w->payload.len;
    uint64_t operand;
    p[0] = (uint8_t)(wop | hr_wire_id_operand(id, c->next_id - 1, w->prev, &operand));
    size_t n = 1 + hr_varint_put(p + 1, operand);
    if (op == HR_OP_FREE && !c->ext)
        hr_idstate_set(c->state, id, HR_ID_FREED);
    w->prev = id;
    w->payload.len += n;
    w->events++;
    return 1;
}

/* hr_trace_write_alloc and hr_trace_write_id, their fast cases inline. */
HR_INLINE int hr_trace_wfast_alloc(hr_trace_writer_t *w, uint64_t size, unsigned domain,
                                   unsigned flags, uint32_t type, uint64_t *id, hr_err_t *err)
{
    if (HR_LIKELY(hr_trace_wfast_alloc_try(w, size, domain, flags, type, id)))
        return HR_UNLIKELY(w->payload.len >= w->frame_target) ? hr_trace_writer_flush(w, err)
                                                                : HR_OK;
    return hr_trace_write_alloc(w, size, domain, flags, type, id, err);
}

HR_INLINE int hr_trace_wfast_id(hr_trace_writer_t *w, int op, uint64_t id, hr_err_t *err)
{
    if (HR_LIKELY(hr_trace_wfast_id_try(w, op, id)))
        return HR_UNLIKELY(w->payload.len >= w->frame_target) ? hr_trace_writer_flush(w, err)
                                                                : HR_OK;
    return hr_trace_write_id(w, op, id, err);
}

#endif

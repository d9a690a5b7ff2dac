/* trace_writer.c: encodes events into frame payloads and writes them as checksummed zstd frames.
 *
 * Frame life cycle: the first event after a flush opens a frame by writing its FRAME record; events
 * are appended to `payload`; when the payload reaches the frame target (or on flush/close) it is
 * compressed as one zstd frame (content size + checksum) and written out with write(2), so the
 * file always ends at a frame boundary except while a write is in flight.
 *
 * With opts.async a worker thread compresses and writes: a finished payload is swapped with the
 * worker's (empty) buffer and the caller goes on filling the next frame; it waits only when the
 * worker is still busy with the previous frame. Frames reach the file in order (one worker, one
 * job at a time). The worker's first error is returned by the next emit, flush or close.
 */
#include "hr_trace.h"
#include "trace_internal.h"
#include "trace_wire.h"
#include "hr_trace_wfast.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCCtx, ZSTD_estimateCCtxSize: exported by libzstd */
#include <zstd.h>

/* struct hr_trace_writer is in hr_trace_wfast.h (the recorders' inline fast paths use it). */

static void *worker_main(void *arg);

/* Every frame: content size and checksum, at the writer's level. */
static int set_params(ZSTD_CCtx *c, int level)
{
    return ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
           ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
           ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1));
}

/* Before an async writer's threads start, the opening thread allocates everything they would
 * allocate: the second payload buffer (the one a frame is swapped into, which the thread that cuts
 * the next frame would reserve), the output buffer, and the compressor, made in a workspace of the
 * size zstd gives for any single-shot compression at the level (ZSTD_initStaticCCtx: it never
 * allocates). The output buffer takes any payload the buffer holds without growing
 * (frame_target + 4096 rounded up to a power of two: a frame is cut after the event that reaches
 * frame_target, and even the allocator statistics text is far smaller than the rest). The worker
 * and a recorder's flusher then do not allocate at all, and above all do not create glibc malloc
 * arenas of their own (a 64 MiB reservation each) or map a workspace at a moment the scheduler
 * decides: in a recorded program those mappings moved CPython's later arenas, so two recordings of
 * the same program under `setarch -R` could differ wherever the program's behaviour follows its
 * addresses (the record test's fast-vs-general hooks check failed under load, on the order of
 * frees in interpreter finalisation). Nothing here is written to: the buffers and the workspace
 * are large allocations (fresh mappings), faulted in by the worker as it starts (worker_main,
 * prefault), which changes no mapping. (This used to fill the
 * payload with a frame of zeros and compress it to make zstd allocate: about 500 page faults and
 * 6 ms of CPU at every recording's start, half of what recording an empty script cost.) */
static int warm_up(hr_trace_writer_t *w, int level, hr_err_t *err)
{
    size_t n = w->frame_target + 4096, ws = ZSTD_estimateCCtxSize(level);
    if (hr_buf_reserve(&w->job, n) || hr_buf_reserve(&w->zout, ZSTD_compressBound(w->payload.cap)))
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    if (ZSTD_isError(ws))
        return hr_err_set(err, HR_EINTERNAL, "%s: zstd: %s", w->path, ZSTD_getErrorName(ws));
    void *work = malloc(ws);
    ZSTD_CCtx *c = work ? ZSTD_initStaticCCtx(work, ws) : NULL;
    if (!c) {
        free(work);
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    }
    if (set_params(c, level)) {
        free(work);
        return hr_err_set(err, HR_EINTERNAL, "%s: zstd refused the frame parameters", w->path);
    }
    ZSTD_freeCCtx(w->cctx);
    w->cctx = c;
    w->cwork = work;
    /* for the worker to fault in (the workspace's first 2 MiB: the tables of levels up to 3 and
     * most of the higher ones' that a 1 MiB frame uses) */
    w->prefault[0].p = w->payload.data, w->prefault[0].n = w->payload.cap;
    w->prefault[1].p = w->job.data, w->prefault[1].n = w->job.cap;
    w->prefault[2].p = work, w->prefault[2].n = ws < ((size_t)2 << 20) ? ws : (size_t)2 << 20;
    return HR_OK;
}

/* Recompute fast_lim (hr_trace_wfast.h) after the frame opened or closed or the payload buffer
 * changed. */
static inline void wfast_refresh(hr_trace_writer_t *w)
{
    w->fast_lim = w->frame_open && w->payload.cap > HR_TRACE_WFAST_ROOM
                      ? w->payload.cap - HR_TRACE_WFAST_ROOM
                      : 0;
}

static int write_all(hr_trace_writer_t *w, const void *p, size_t n, hr_err_t *err)
{
    const uint8_t *s = p;
    while (n) {
        ssize_t k = write(w->fd, s, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return hr_err_set(err, HR_EIO, "%s: write failed: %s", w->path, strerror(errno));
        }
        s += k;
        n -= (size_t)k;
    }
    return HR_OK;
}

static int put_varint(hr_buf_t *b, uint64_t v)
{
    if (hr_buf_reserve(b, HR_VARINT_MAX))
        return HR_ENOMEM;
    b->len += hr_varint_put(b->data + b->len, v);
    return HR_OK;
}

static int encode_header(hr_buf_t *out, const hr_trace_header_t *h)
{
    hr_buf_t p;
    hr_buf_init(&p);
    uint8_t fixed[4] = {HR_TRACE_VERSION & 0xff, HR_TRACE_VERSION >> 8, (uint8_t)h->kind, 0};
    int rc = hr_buf_append(&p, HR_HEADER_TAG, HR_HEADER_TAG_LEN);
    rc |= hr_buf_append(&p, fixed, 4);
    rc |= put_varint(&p, (uint64_t)h->nmeta);
    for (int i = 0; i < h->nmeta; i++) {
        size_t kl = strlen(h->meta[i].key), vl = strlen(h->meta[i].value);
        rc |= put_varint(&p, kl);
        rc |= hr_buf_append(&p, h->meta[i].key, kl);
        rc |= put_varint(&p, vl);
        rc |= hr_buf_append(&p, h->meta[i].value, vl);
    }
    uint8_t crc[4];
    hr_put_le32(crc, hr_crc32(0, p.data, p.len));
    rc |= hr_buf_append(&p, crc, 4);
    uint8_t skip[8];
    hr_put_le32(skip, HR_HEADER_SKIP_MAGIC);
    hr_put_le32(skip + 4, (uint32_t)p.len);
    rc |= hr_buf_append(out, skip, 8);
    rc |= hr_buf_append(out, p.data, p.len);
    hr_buf_free(&p);
    return rc ? HR_ENOMEM : HR_OK;
}

/* The liveness answer of a producer that vouches for its ids (hr_trace_write_opts_t.trusted_ids;
 * the fast paths of hr_trace_wfast.h assume this answer when the check is external). */
static int trusted_block(void *arg, uint64_t id)
{
    (void)arg, (void)id;
    return HR_ID_BLOCK;
}

int hr_trace_writer_open(hr_trace_writer_t **out, const char *path, const hr_trace_header_t *h,
                         const hr_trace_write_opts_t *opts, hr_err_t *err)
{
    *out = NULL;
    hr_trace_write_opts_t o = opts ? *opts : (hr_trace_write_opts_t){0};
    if (h->kind != HR_KIND_ALLOC && h->kind != HR_KIND_GRAPH)
        return hr_err_set(err, HR_EUSAGE, "%s: unknown trace kind %d", path, h->kind);
    hr_trace_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    w->fd = -1;
    w->frame_target = o.frame_target ? o.frame_target : HR_TRACE_FRAME_TARGET;
    if (w->frame_target > HR_TRACE_FRAME_LIMIT / 2)
        w->frame_target = HR_TRACE_FRAME_LIMIT / 2;
    hr_trace_check_init(&w->chk, h->kind);
    if (o.trusted_ids &&
        hr_trace_check_external(&w->chk, trusted_block, NULL, err) != HR_OK) {
        hr_trace_check_free(&w->chk);
        free(w);
        hr_err_prefix(err, "%s: ", path);
        return HR_EUSAGE;
    }
    int level = o.level ? o.level : 3;
    w->path = strdup(path);
    w->cctx = ZSTD_createCCtx();
    int rc = HR_OK;
    if (!w->path || !w->cctx) {
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
        goto fail;
    }
    if (set_params(w->cctx, level)) {
        rc = hr_err_set(err, HR_EUSAGE, "%s: zstd level %d refused", path, level);
        goto fail;
    }
    w->out = (hr_out_t)HR_OUT_INIT;
    if (o.atomic) { /* hr_out decides: temporary file and rename, or through a device or FIFO */
        if ((rc = hr_out_open(&w->out, path, err)))
            goto fail;
        w->atomic = 1;
        w->fd = w->out.fd;
    } else {
        w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (w->fd < 0) {
            rc = hr_err_set(err, HR_EIO, "%s: cannot create: %s", path, strerror(errno));
            goto fail;
        }
    }
    hr_buf_t hb;
    hr_buf_init(&hb);
    if (encode_header(&hb, h)) {
        hr_buf_free(&hb);
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
        goto fail;
    }
    rc = write_all(w, hb.data, hb.len, err);
    hr_buf_free(&hb);
    if (rc)
        goto fail;
    if (hr_buf_reserve(&w->payload, w->frame_target + 4096)) {
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
        goto fail;
    }
    if (o.async && (rc = warm_up(w, level, err)) != HR_OK)
        goto fail;
    if (o.async) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->worker, NULL, worker_main, w) == 0) {
            w->async = 1;
        } else { /* compress in the caller's thread then */
            pthread_cond_destroy(&w->cv);
            pthread_mutex_destroy(&w->mu);
        }
    }
    *out = w;
    return HR_OK;
fail:
    hr_trace_writer_abort(w);
    return rc;
}

static int open_frame(hr_trace_writer_t *w)
{
    uint8_t *p;
    if (hr_buf_reserve(&w->payload, 1 + 4 * HR_VARINT_MAX))
        return HR_ENOMEM;
    p = w->payload.data + w->payload.len;
    size_t n = 0;
    p[n++] = HR_W_FRAME;
    n += hr_varint_put(p + n, w->frames);
    n += hr_varint_put(p + n, w->events);
    n += hr_varint_put(p + n, w->chk.next_id);
    n += hr_varint_put(p + n, w->chk.ntypes);
    w->payload.len += n;
    w->frame_open = 1;
    w->prev = w->chk.next_id - 1;
    wfast_refresh(w);
    return HR_OK;
}

/* Compress one payload as a frame and write it. */
static int compress_write(hr_trace_writer_t *w, const hr_buf_t *payload, hr_err_t *err)
{
    size_t bound = ZSTD_compressBound(payload->len);
    w->zout.len = 0;
    if (hr_buf_reserve(&w->zout, bound))
        return hr_err_set(err, HR_ENOMEM, "out of memory compressing a frame");
    size_t z = ZSTD_compress2(w->cctx, w->zout.data, bound, payload->data, payload->len);
    if (ZSTD_isError(z))
        return hr_err_set(err, HR_EINTERNAL, "%s: zstd: %s", w->path, ZSTD_getErrorName(z));
    return write_all(w, w->zout.data, z, err);
}

/* Fault in [p, p + n) ahead of its use (MADV_POPULATE_WRITE, Linux 5.14; elsewhere the pages
 * fault one by one as before). Contents are kept, so the owner may already be writing there; the
 * mappings do not change, so neither does where anything else is placed. */
static void prefault(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + pg - 1) & ~(pg - 1),
              b = ((uintptr_t)p + n) & ~(pg - 1);
    if (p && b > a)
        (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#else
    (void)p, (void)n;
#endif
}

static void *worker_main(void *arg)
{
    hr_trace_writer_t *w = arg;
    /* The payload buffers and the compressor's tables are written page by page as the first
     * frames fill them; each first touch is a page fault, about 14 us on the development VM
     * (a paravirtualised guest) against 2.7 us a page when faulted in by one call. So the worker
     * faults them in before its first job, beside the thread filling the first frame: recording
     * the benchmark's workload took ~730 faults there (two 1 MiB payloads, the level-3 tables). */
    for (size_t i = 0; i < HR_ARRAY_LEN(w->prefault); i++)
        prefault(w->prefault[i].p, w->prefault[i].n);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy)
            break;
        pthread_mutex_unlock(&w->mu);
        hr_err_t e = {0};
        int rc = w->werr ? HR_OK : compress_write(w, &w->job, &e); /* nothing after an error */
        pthread_mutex_lock(&w->mu);
        if (rc && !w->werr) {
            w->werr = rc;
            w->werr_msg = e;
        }
        w->job.len = 0;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Async: wait until the worker is idle; its first error, if any. Holds w->mu on return. */
static int worker_idle(hr_trace_writer_t *w, hr_err_t *err)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->werr && err)
        *err = w->werr_msg;
    return w->werr;
}

static void worker_stop(hr_trace_writer_t *w)
{
    if (!w->async)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->worker, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->async = 0;
}

static int emit_frame(hr_trace_writer_t *w, hr_err_t *err)
{
    if (w->async) {
        int rc = worker_idle(w, err);
        if (!rc) { /* hand the payload over; fill the worker's old buffer next */
            hr_buf_t t = w->job;
            w->job = w->payload;
            w->payload = t;
            w->busy = 1;
            pthread_cond_broadcast(&w->cv);
        }
        pthread_mutex_unlock(&w->mu);
        if (rc)
            return rc;
        if (hr_buf_reserve(&w->payload, w->frame_target + 4096)) {
            wfast_refresh(w); /* another buffer now */
            return hr_err_set(err, HR_ENOMEM, "out of memory");
        }
    } else {
        int rc = compress_write(w, &w->payload, err);
        if (rc)
            return rc;
    }
    w->frames++;
    w->payload.len = 0;
    w->frame_open = 0;
    wfast_refresh(w);
    return HR_OK;
}

int hr_trace_writer_flush(hr_trace_writer_t *w, hr_err_t *err)
{
    return w->frame_open ? emit_frame(w, err) : HR_OK;
}

/* Encode ev at the end of the payload. `newest` and `*prev` are the bases of id operands. */
static int encode_event(hr_buf_t *b, const hr_event_t *ev, uint64_t newest, uint64_t *prev)
{
    size_t slen = 0;
    if (ev->op == HR_OP_TYPE || ev->op == HR_OP_STATS || ev->op == HR_OP_PHASE ||
        ev->op == HR_OP_UNKNOWN)
        slen = (size_t)ev->a;
    if (hr_buf_reserve(b, 1 + 5 * HR_VARINT_MAX + slen))
        return HR_ENOMEM;
    uint8_t *p = b->data + b->len, tmp[4 * HR_VARINT_MAX];
    size_t n = 0, t = 0;
    uint64_t operand;
    unsigned op;
    switch (ev->op) {
    case HR_OP_ALLOC:
        if (ev->flags == 0) {
            p[n++] = (uint8_t)(HR_W_ALLOC + ev->domain);
            n += hr_varint_put(p + n, ev->b);
        } else {
            p[n++] = (uint8_t)(HR_W_ALLOC_FLAGS + ev->domain);
            n += hr_varint_put(p + n, ev->b);
            n += hr_varint_put(p + n, ev->flags);
            if (ev->flags & HR_F_TYPED)
                n += hr_varint_put(p + n, ev->tag);
            if (ev->flags & HR_F_ALIGNED)
                n += hr_varint_put(p + n, ev->align_log2);
        }
        *prev = ev->a;
        break;
    case HR_OP_FREE: op = HR_W_FREE; goto one_id;
    case HR_OP_INCREF: op = HR_W_INCREF; goto one_id;
    case HR_OP_DECREF: op = HR_W_DECREF; goto one_id;
    case HR_OP_DIED: op = HR_W_DIED; goto one_id;
    case HR_OP_REALLOC: op = HR_W_REALLOC; goto one_id;
    one_id:
        p[n++] = (uint8_t)(op | hr_wire_id_operand(ev->a, newest, *prev, &operand));
        n += hr_varint_put(p + n, operand);
        if (ev->op == HR_OP_REALLOC)
            n += hr_varint_put(p + n, ev->b);
        *prev = ev->a;
        break;
    case HR_OP_LINK:
    case HR_OP_UNLINK:
        op = ev->op == HR_OP_LINK ? HR_W_LINK : HR_W_UNLINK;
        p[n++] = (uint8_t)(op | hr_wire_id_operand(ev->a, newest, *prev, &operand));
        n += hr_varint_put(p + n, operand);
        n += hr_varint_put(p + n, hr_zigzag((int64_t)(ev->b - ev->a))); /* target near source */
        *prev = ev->b;
        break;
    case HR_OP_TYPE:
        p[n++] = HR_W_TYPE;
        n += hr_varint_put(p + n, ev->tag);
        n += hr_varint_put(p + n, ev->a);
        memcpy(p + n, ev->str, slen);
        n += slen;
        break;
    /* Sized records: opcode, payload length, payload. */
    case HR_OP_ARENA_MAP:
    case HR_OP_ARENA_UNMAP:
    case HR_OP_GC_SURVIVORS:
        t = hr_varint_put(tmp, ev->a);
        t += hr_varint_put(tmp + t, ev->b);
        p[n++] = ev->op == HR_OP_ARENA_MAP     ? HR_W_ARENA_MAP
                 : ev->op == HR_OP_ARENA_UNMAP ? HR_W_ARENA_UNMAP
                                               : HR_W_GC_SURVIVORS;
        goto sized;
    case HR_OP_GC_BEGIN:
        t = hr_varint_put(tmp, ev->tag);
        p[n++] = HR_W_GC_BEGIN;
        goto sized;
    case HR_OP_GC_END:
        t = hr_varint_put(tmp, ev->tag);
        t += hr_varint_put(tmp + t, ev->a);
        t += hr_varint_put(tmp + t, ev->b);
        p[n++] = HR_W_GC_END;
    sized:
        n += hr_varint_put(p + n, t);
        memcpy(p + n, tmp, t);
        n += t;
        break;
    case HR_OP_GC_CONTROL:
        t = hr_varint_put(tmp, ev->tag);
        if (ev->tag == HR_GC_COLLECT) {
            t += hr_varint_put(tmp + t, ev->a);
        } else if (ev->tag == HR_GC_THRESHOLD) {
            t += hr_varint_put(tmp + t, ev->a);
            t += hr_varint_put(tmp + t, ev->b & 0xffffffffu);
            t += hr_varint_put(tmp + t, ev->b >> 32);
        }
        p[n++] = HR_W_GC_CONTROL;
        goto sized;
    case HR_OP_GC_TRACK:
        t = hr_varint_put(tmp, ev->tag);
        t += hr_varint_put(tmp + t, ev->a);
        if (ev->tag == HR_TRACK)
            t += hr_varint_put(tmp + t, ev->b);
        p[n++] = HR_W_GC_TRACK;
        goto sized;
    case HR_OP_STATS:
        t = hr_varint_put(tmp, ev->tag);
        p[n++] = HR_W_STATS;
        n += hr_varint_put(p + n, t + slen);
        memcpy(p + n, tmp, t);
        n += t;
        memcpy(p + n, ev->str, slen);
        n += slen;
        break;
    case HR_OP_PHASE:
    case HR_OP_UNKNOWN:
        p[n++] = ev->op == HR_OP_PHASE ? HR_W_PHASE : (uint8_t)ev->tag;
        n += hr_varint_put(p + n, slen);
        memcpy(p + n, ev->str, slen);
        n += slen;
        break;
    default:
        return HR_EUSAGE;
    }
    b->len += n;
    return HR_OK;
}

int hr_trace_write(hr_trace_writer_t *w, const hr_event_t *ev, hr_err_t *err)
{
    uint64_t newest = w->chk.next_id - 1; /* wraps when no id exists; deltas are then unused */
    if (ev->op == HR_OP_UNKNOWN && hr_wire_sized_known(ev->tag))
        return hr_err_set(err, HR_EFORMAT, "unknown record uses the known opcode 0x%x", ev->tag);
    /* The FRAME record states the counts before this event, so open the frame first. */
    if (!w->frame_open && open_frame(w))
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    int rc = hr_trace_check_event(&w->chk, ev, err);
    if (rc)
        return rc;
    int enc = encode_event(&w->payload, ev, newest, &w->prev);
    wfast_refresh(w); /* the payload may have grown */
    if (enc)
        return hr_err_set(err, HR_ENOMEM, "out of memory encoding an event");
    w->events++;
    if (w->payload.len >= w->frame_target)
        return emit_frame(w, err);
    return HR_OK;
}

/* {==== Fast paths: ALLOC, the id events, LINK/UNLINK ====
 *
 * A recorder writes millions of these. Each fast path applies exactly the checker's rules for its
 * event (hr_trace_check_event: the ALLOC, FREE, INCREF/DECREF/DIED and LINK/UNLINK cases) and
 * encodes exactly what encode_event would, with the work that cannot fail hoisted out: the frame
 * is already open and the payload has room (the buffer keeps frame_target + 4096 bytes, so no
 * reserve call) and the state bitmap has room; ALLOC takes no alignment. Anything else, valid or
 * not, goes through hr_trace_write, which refuses what the reader would refuse. A test
 * (tests/trace/test_trace.c) writes the same random streams, invalid events included, both ways
 * and compares return codes, messages and the files byte for byte. ALLOC and the id events are
 * the inline tries of hr_trace_wfast.h (which recorders also inline); "the payload has room" is
 * fast_lim there.
 */
#define FAST_ROOM HR_TRACE_WFAST_ROOM

int hr_trace_write_alloc(hr_trace_writer_t *w, uint64_t size, unsigned domain, unsigned flags,
                         uint32_t type, uint64_t *id, hr_err_t *err)
{
    if (HR_LIKELY(hr_trace_wfast_alloc_try(w, size, domain, flags, type, id)))
        return HR_UNLIKELY(w->payload.len >= w->frame_target) ? emit_frame(w, err) : HR_OK;
    hr_trace_check_t *c = &w->chk;
    *id = c->next_id;
    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = (uint8_t)domain, .flags = (uint8_t)flags,
                     .tag = type, .a = c->next_id, .b = size};
    if (domain > 0xff || flags > 0xff) /* would not survive the narrowing above */
        return hr_err_set(err, HR_EFORMAT, "alloc with unknown domain %u or flags 0x%x", domain,
                          flags);
    return hr_trace_write(w, &ev, err);
}

int hr_trace_write_id(hr_trace_writer_t *w, int op, uint64_t id, hr_err_t *err)
{
    if (HR_LIKELY(hr_trace_wfast_id_try(w, op, id)))
        return HR_UNLIKELY(w->payload.len >= w->frame_target) ? emit_frame(w, err) : HR_OK;
    hr_event_t ev = {.op = (uint8_t)op, .a = id};
    return hr_trace_write(w, &ev, err);
}

int hr_trace_write_free(hr_trace_writer_t *w, uint64_t id, hr_err_t *err)
{
    return hr_trace_write_id(w, HR_OP_FREE, id, err);
}

int hr_trace_write_link(hr_trace_writer_t *w, int op, uint64_t src, uint64_t dst, hr_err_t *err)
{
    hr_trace_check_t *c = &w->chk;
    if (HR_LIKELY((op == HR_OP_LINK || op == HR_OP_UNLINK) && c->kind == HR_KIND_GRAPH &&
                  w->frame_open && w->payload.cap - w->payload.len > FAST_ROOM &&
                  src < c->next_id && dst < c->next_id && hr_chk_get(c, src) == HR_ID_OBJECT &&
                  hr_chk_get(c, dst) == HR_ID_OBJECT)) {
        uint8_t *p = w->payload.data + w->payload.len;
        uint64_t operand;
        p[0] = (uint8_t)((op == HR_OP_LINK ? HR_W_LINK : HR_W_UNLINK) |
                         hr_wire_id_operand(src, c->next_id - 1, w->prev, &operand));
        size_t n = 1 + hr_varint_put(p + 1, operand);
        n += hr_varint_put(p + n, hr_zigzag((int64_t)(dst - src))); /* target near source */
        w->prev = dst;
        w->payload.len += n;
        w->events++;
        return HR_UNLIKELY(w->payload.len >= w->frame_target) ? emit_frame(w, err) : HR_OK;
    }
    hr_event_t ev = {.op = (uint8_t)op, .a = src, .b = dst};
    return hr_trace_write(w, &ev, err);
}

uint64_t hr_trace_writer_next_id(const hr_trace_writer_t *w) { return w->chk.next_id; }
uint64_t hr_trace_writer_events(const hr_trace_writer_t *w) { return w->events; }
const hr_trace_check_t *hr_trace_writer_check(const hr_trace_writer_t *w) { return &w->chk; }

int hr_trace_writer_close(hr_trace_writer_t *w, hr_err_t *err)
{
    int rc = HR_OK;
    if (!w->frame_open && open_frame(w))
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
    if (!rc) {
        uint8_t *p;
        if (hr_buf_reserve(&w->payload, 1 + 3 * HR_VARINT_MAX)) {
            rc = hr_err_set(err, HR_ENOMEM, "out of memory");
        } else {
            p = w->payload.data + w->payload.len;
            size_t n = 0;
            p[n++] = HR_W_END;
            n += hr_varint_put(p + n, w->events);
            n += hr_varint_put(p + n, w->chk.next_id);
            n += hr_varint_put(p + n, w->chk.ntypes);
            w->payload.len += n;
            rc = emit_frame(w, err);
        }
    }
    if (w->async) { /* the last frame is written when the worker is idle again */
        int wrc = worker_idle(w, rc ? NULL : err);
        pthread_mutex_unlock(&w->mu);
        if (!rc)
            rc = wrc;
        worker_stop(w);
    }
    if (w->atomic) {
        /* only a complete trace goes into place (fsync, close, rename); after a failure the
         * abort below removes the temporary file and the target keeps what it held */
        w->fd = -1;
        if (!rc)
            rc = hr_out_commit(&w->out, err);
    } else {
        if (!rc && fsync(w->fd) != 0 && errno != EINVAL && errno != EROFS)
            rc = hr_err_set(err, HR_EIO, "%s: fsync failed: %s", w->path, strerror(errno));
        if (close(w->fd) != 0 && !rc)
            rc = hr_err_set(err, HR_EIO, "%s: close failed: %s", w->path, strerror(errno));
        w->fd = -1;
    }
    hr_trace_writer_abort(w); /* frees; removes the temporary file only if still there */
    return rc;
}

int hr_trace_writer_fd(const hr_trace_writer_t *w) { return w ? w->fd : -1; }

void hr_trace_writer_set_fd(hr_trace_writer_t *w, int fd)
{
    if (w->async) /* no frame in flight: the worker writes only between busy = 1 and 0 */
        worker_idle(w, NULL);
    w->fd = fd;
    if (w->atomic)
        w->out.fd = fd;
    if (w->async)
        pthread_mutex_unlock(&w->mu);
}

void hr_trace_writer_abort(hr_trace_writer_t *w)
{
    if (!w)
        return;
    worker_stop(w); /* finishes the frame in hand: the file keeps what was handed over */
    if (w->atomic) /* closes the fd; removes the temporary file if it is still there */
        hr_out_abort(&w->out);
    else if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    hr_trace_check_free(&w->chk);
    hr_buf_free(&w->payload);
    hr_buf_free(&w->job);
    hr_buf_free(&w->zout);
    if (w->cwork)
        free(w->cwork); /* the static cctx lives in it */
    else
        ZSTD_freeCCtx(w->cctx);
    free(w);
}

/* {==== Convenience encoders ==== */

int hr_trace_put_alloc(hr_trace_writer_t *w, uint64_t size, int domain, int flags, uint32_t type,
                       uint64_t *id, hr_err_t *err)
{
    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = (uint8_t)domain, .flags = (uint8_t)flags,
                     .tag = type, .a = w->chk.next_id, .b = size};
    if (id)
        *id = w->chk.next_id;
    return hr_trace_write(w, &ev, err);
}

int hr_trace_put_id(hr_trace_writer_t *w, int op, uint64_t id, hr_err_t *err)
{
    hr_event_t ev = {.op = (uint8_t)op, .a = id};
    return hr_trace_write(w, &ev, err);
}

int hr_trace_put_realloc(hr_trace_writer_t *w, uint64_t id, uint64_t size, hr_err_t *err)
{
    hr_event_t ev = {.op = HR_OP_REALLOC, .a = id, .b = size};
    return hr_trace_write(w, &ev, err);
}

int hr_trace_put_link(hr_trace_writer_t *w, int op, uint64_t src, uint64_t dst, hr_err_t *err)
{
    hr_event_t ev = {.op = (uint8_t)op, .a = src, .b = dst};
    return hr_trace_write(w, &ev, err);
}

int hr_trace_put_string(hr_trace_writer_t *w, int op, uint32_t tag, const char *s, size_t len,
                        hr_err_t *err)
{
    hr_event_t ev = {.op = (uint8_t)op, .tag = tag, .a = len};
    ev.str = (const uint8_t *)s;
    return hr_trace_write(w, &ev, err);
}

/* fuzz_cursor.c: libFuzzer target: the decoder's cursor (hr_trace_fast.h) against hr_trace_read.
 *
 * Property (the cursor's contract): a consumer that mixes the cursor with hr_trace_read sees the
 * same events, the same error (code and message, with its byte offset and event index) and the
 * same status as one that calls hr_trace_read alone.
 *
 *   reference  hr_trace_read, one event per call, so it delivers every event before an error
 *   mixed      runs of the cursor (cut off after 0, 1, 2, ... events or left to stop on its own)
 *              alternating with hr_trace_read batches of 1 .. 64 events, in an order drawn from a
 *              PRNG seeded by the input (so a crash reproduces)
 *
 * The two readers go in lockstep: every event the mixed one delivers must be the reference's next
 * one. At each point where the mixed reader has handed out all it decoded, the status counters
 * must agree. When a mixed batch fails, hr_trace_read drops the events of that batch before the
 * failing one (except before garbage after the END record: those come with the error), so the
 * reference may deliver fewer than the batch size more, then must fail with the same code and
 * message.
 *
 * hr_trace_read's own fast path is the cursor too, so every event the reference delivers also
 * goes through an independent checker (hr_trace_check_event), which must accept it.
 *
 * For allocation-only traces the mixed reader also runs with external id states (as the replay
 * engine does): a table of live blocks kept here answers for its checker, its cursor runs are
 * unverified (hr_trace_cursor_next_unverified), and a free or realloc of a block this table says
 * is not live is put back (hr_trace_cursor_unread) for hr_trace_read to report. The reference
 * keeps its own bitmap; everything must still agree.
 *
 * Every input is read twice this way: as a trace file, and as the payload of the single data frame
 * of a trace whose kind is bit 0 of the input's first byte (the rest is the payload, FRAME record
 * included). The second form lets mutations reach the event grammar instead of dying at the
 * frame's checksum. The reference decompresses each frame itself; the mixed reader reads the
 * first form with the prefetch thread (hr_trace_read_opts_t.threads = 1: from the second frame
 * on, when there is one), so the comparison covers the thread's hand-over of frames and errors
 * as well (the second form has one frame: no thread).
 */
#include "fuzz_wrap.h"
#include "hr_trace.h"
#include "hr_trace_fast.h"
#include "livetab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* {==== Events ==== */

static int has_string(int op)
{
    return op == HR_OP_TYPE || op == HR_OP_STATS || op == HR_OP_PHASE || op == HR_OP_UNKNOWN;
}

/* Two events are the same when every field their op uses is (b and str share storage). */
static int same_event(const hr_event_t *x, const hr_event_t *y)
{
    if (x->op != y->op || x->domain != y->domain || x->flags != y->flags ||
        x->align_log2 != y->align_log2 || x->tag != y->tag || x->a != y->a)
        return 0;
    if (has_string(x->op))
        return x->a == 0 || memcmp(x->str, y->str, (size_t)x->a) == 0;
    return x->b == y->b;
}

/* The hr_event_t hr_trace_read delivers for what the cursor decoded. */
static hr_event_t from_cursor(int op, const hr_cur_event_t *ce)
{
    hr_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.op = (uint8_t)op;
    ev.a = ce->a;
    if (op == HR_OP_ALLOC || op == HR_OP_REALLOC || op == HR_OP_LINK || op == HR_OP_UNLINK)
        ev.b = ce->b;
    if (op == HR_OP_ALLOC)
        ev.domain = ce->domain, ev.flags = ce->flags, ev.tag = ce->tag;
    return ev;
}

/* {==== The reference reader ==== */

typedef struct ref {
    hr_trace_reader_t *r;
    hr_err_t err;
    int rc, done;
    hr_event_t ev; /* the event just read */
    hr_trace_check_t oracle; /* an independent checker: it must accept every event delivered */
} ref_t;

/* The reference's next event: 1, or 0 at the end or at an error (rc, err). */
static int ref_next(ref_t *f)
{
    if (f->done)
        return 0;
    size_t n;
    f->rc = hr_trace_read(f->r, &f->ev, 1, &n, &f->err);
    if (f->rc || n == 0) {
        f->done = 1;
        return 0;
    }
    CHECK(n == 1);
    hr_err_t e = {0};
    CHECK(hr_trace_check_event(&f->oracle, &f->ev, &e) == HR_OK);
    return 1;
}

/* {==== The comparison ==== */

/* Counters that must agree whenever both readers handed out the same events. */
static void same_counts(const hr_trace_status_t *s, const hr_trace_status_t *t)
{
    CHECK(s->events == t->events && s->ids == t->ids && s->types == t->types &&
          s->frames == t->frames && s->skipped == t->skipped && s->file_bytes == t->file_bytes &&
          s->payload_bytes == t->payload_bytes && s->cut_short == t->cut_short);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}

static void differential(const uint8_t *data, size_t len, int partial, int ext, uint64_t seed,
                         int threads)
{
    hr_trace_read_opts_t o = {.partial = partial, .threads = HR_READ_NO_THREADS}, om = o;
    om.threads = threads;
    livetab_t live;
    memset(&live, 0, sizeof live);
    if (ext)
        om.id_state = livetab_state, om.id_state_arg = &live;
    ref_t ref;
    memset(&ref, 0, sizeof ref);
    hr_err_t err = {0};
    hr_trace_reader_t *m = NULL;
    int rc1 = hr_trace_open_mem(&ref.r, data, len, "fuzz.hrt", &o, &ref.err);
    int rc2 = hr_trace_open_mem(&m, data, len, "fuzz.hrt", &om, &err);
    CHECK(rc1 == rc2 && strcmp(ref.err.msg, err.msg) == 0);
    if (rc1) {
        CHECK(err.code == rc1 && err.msg[0]);
        return;
    }
    ext = hr_trace_ids_external(m);
    CHECK(ext == (om.id_state && hr_trace_header(m)->kind == HR_KIND_ALLOC));
    hr_trace_check_init(&ref.oracle, hr_trace_header(ref.r)->kind);
    uint64_t rs = seed | 1, delivered = 0;
    hr_event_t evs[64];
    for (;;) {
        /* A run of the cursor, cut off early now and then (give in the middle of a frame). */
        uint64_t dice = rng_next(&rs), limit;
        switch (dice % 8) {
        case 0: limit = 0; break;
        case 1: case 2: limit = 1 + (dice >> 8) % 5; break;
        default: limit = UINT64_MAX; break;
        }
        hr_trace_cursor_t c = hr_trace_cursor_take(m);
        hr_cur_event_t ce;
        memset(&ce, 0, sizeof ce);
        int op;
        const uint8_t *p0 = c.p;
        uint64_t prev0 = c.prev;
        for (uint64_t k = 0; k < limit && (op = ext ? hr_trace_cursor_next_unverified(&c, &ce)
                                                    : hr_trace_cursor_next(&c, &ce)) != 0;
             k++) {
            if (ext && (op == HR_OP_FREE || op == HR_OP_REALLOC) &&
                livetab_state(&live, ce.a) != HR_ID_BLOCK) {
                hr_trace_cursor_unread(&c, p0, prev0);
                break;
            }
            livetab_apply(&live, op, ce.a);
            p0 = c.p, prev0 = c.prev;
            hr_event_t ev = from_cursor(op, &ce);
            CHECK(ref_next(&ref) && same_event(&ev, &ref.ev));
            delivered++;
        }
        hr_trace_cursor_give(m, c);
        CHECK(hr_trace_status(m)->events == delivered);
        same_counts(hr_trace_status(m), hr_trace_status(ref.r));

        /* A batch from hr_trace_read. */
        size_t cap = 1 + (size_t)(rng_next(&rs) % (dice % 3 ? 7 : HR_ARRAY_LEN(evs))), n = 0;
        int rc = hr_trace_read(m, evs, cap, &n, &err);
        CHECK(!ext || n <= 1);
        for (size_t i = 0; i < n; i++)
            livetab_apply(&live, evs[i].op, evs[i].a);
        if (rc) { /* (garbage after the END record comes with the events before it) */
            CHECK(n <= cap && err.code == rc && err.msg[0]);
            for (size_t i = 0; i < n; i++)
                CHECK(ref_next(&ref) && same_event(&evs[i], &ref.ev));
            delivered += n;
            size_t more = 0;
            while (ref_next(&ref))
                more++;
            CHECK(more < cap && ref.rc == rc && strcmp(ref.err.msg, err.msg) == 0);
            const hr_trace_status_t *s = hr_trace_status(m), *t = hr_trace_status(ref.r);
            CHECK(s->events == delivered && t->events == delivered + more);
            CHECK(s->frames == t->frames && s->skipped == t->skipped && s->types == t->types &&
                  s->cut_short == t->cut_short && s->complete == t->complete &&
                  strcmp(s->cut_msg, t->cut_msg) == 0);
            /* a failed reader repeats its error, to the cursor too */
            hr_trace_cursor_t c2 = hr_trace_cursor_take(m);
            CHECK(c2.p == c2.end);
            hr_err_t again = {0};
            CHECK(hr_trace_read(m, evs, cap, &n, &again) == rc && n == 0 &&
                  strcmp(again.msg, err.msg) == 0);
            break;
        }
        for (size_t i = 0; i < n; i++)
            CHECK(ref_next(&ref) && same_event(&evs[i], &ref.ev));
        delivered += n;
        CHECK(hr_trace_status(m)->events == delivered);
        if (n == 0) { /* the end: the reference ends too, with everything the same */
            CHECK(!ref_next(&ref) && ref.rc == 0);
            const hr_trace_status_t *s = hr_trace_status(m), *t = hr_trace_status(ref.r);
            same_counts(s, t);
            CHECK(s->complete == t->complete && strcmp(s->cut_msg, t->cut_msg) == 0);
            CHECK(s->complete || (partial && s->cut_short));
            break;
        }
        same_counts(hr_trace_status(m), hr_trace_status(ref.r));
    }
    hr_trace_close(m);
    hr_trace_close(ref.r);
    hr_trace_check_free(&ref.oracle);
    free(live.v);
}

/* {==== The input, and the input as a frame payload (fuzz_wrap.h) ==== */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = 0xcbf29ce484222325ull; /* FNV-1a of the input: the mixing schedule */
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3ull;
    differential(data, size, 0, 0, seed, 1);
    differential(data, size, 1, 1, seed ^ 0x9e3779b97f4a7c15ull, 1);
    if (size >= 1) {
        size_t cap = 64 + ZSTD_compressBound(size);
        uint8_t *t = malloc(cap);
        CHECK(t);
        size_t tlen = wrap_payload(data[0] & 1, data + 1, size - 1, t, cap);
        differential(t, tlen, 0, 0, seed + 1, HR_READ_NO_THREADS);
        differential(t, tlen, 1, 0, seed + 2, HR_READ_NO_THREADS);
        differential(t, tlen, 0, 1, seed + 3, HR_READ_NO_THREADS);
        differential(t, tlen, 1, 1, seed + 4, HR_READ_NO_THREADS);
        free(t);
    }
    return 0;
}

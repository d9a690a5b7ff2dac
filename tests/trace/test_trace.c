/* test_trace.c: trace format v1: round trips, frames, truncation, bit flips, crafted bad input. */
#include "hr_gen.h"
#include "hr_trace.h"
#include "hr_trace_fast.h"
#include "hr_trace_wfast.h"
#include "craft.h"
#include "livetab.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name) { return tap_path(tmpdir, name); }

static void slurp(const char *path, hr_buf_t *b)
{
    hr_buf_init(b);
    hr_err_t err = {0};
    if (hr_read_file(path, b, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(99);
    }
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(99);
    }
}

/* Read a whole trace from memory, formatting every event as text into *text (if not NULL).
 * Returns the reader's code; *events and *skipped report what was delivered. */
typedef struct result {
    int rc;
    uint64_t events, frames, skipped, ids, types, file_bytes, payload_bytes;
    int cut_short, complete, prefetched, held_peak;
    char cut_msg[512];
    hr_err_t err;
} result_t;

/* What the reader's status says at the end of a read, into res. */
static void take_status(result_t *res, hr_trace_reader_t *r)
{
    const hr_trace_status_t *st = hr_trace_status(r);
    res->events = st->events, res->frames = st->frames, res->skipped = st->skipped;
    res->ids = st->ids, res->types = st->types;
    res->file_bytes = st->file_bytes, res->payload_bytes = st->payload_bytes;
    res->cut_short = st->cut_short, res->complete = st->complete;
    memcpy(res->cut_msg, st->cut_msg, sizeof res->cut_msg);
    res->held_peak = st->frames_held_peak;
    res->prefetched = hr_trace_prefetching(r);
}

/* Every read is done four times: once with hr_trace_read alone, decompressing each frame itself;
 * once more so with the prefetch thread (hr_trace_read_opts_t.threads = 1: it starts after the
 * first frame whatever the frames' size), which must give the same events, the same status and
 * byte for byte the same error; once the way the replay engine reads (hr_trace_fast.h: a cursor
 * decodes plain events in place, hr_trace_read the rest, in small and varying batches); and, for
 * allocation-only traces, once more that way with external id states (hr_trace_check_external):
 * the reader keeps no bitmap, this test's own table of live blocks answers for it, and the
 * cursor's unverified frees and reallocs are checked here and put back when not live, as the
 * engine does. The cursor reads run with and without the prefetch thread in turn. All must
 * deliver the same events, the same status and the same error message; `cursor` counts the
 * comparisons, the events the cursor decoded, the events put back and the disagreements,
 * `prefetch` the reads with the thread, those where it ran, and theirs. */
static struct {
    uint64_t reads, cursor_events, mismatches, large, rejected, ext_reads, unread;
} cursor;
static struct {
    uint64_t reads, started, mismatches, held2, held_over, sync_held_over;
    unsigned stride, skip; /* the truncation test compares every stride-th read only unless skip
                              is 0 (test time: a thread per read) */
} prefetch = {.stride = 1};

/* A running hash of the events read, for comparisons without text (text formatting would
 * dominate the test's time). */
static void hash_event(uint64_t *h, const hr_event_t *ev)
{
    int has_b = ev->op == HR_OP_ALLOC || ev->op == HR_OP_REALLOC || ev->op == HR_OP_LINK ||
                ev->op == HR_OP_UNLINK;
    uint64_t v[4] = {ev->op | (uint64_t)ev->domain << 8 | (uint64_t)ev->flags << 16, ev->tag, ev->a,
                     has_b ? ev->b : 0};
    for (int i = 0; i < 4; i++)
        *h = (*h ^ v[i]) * 0x100000001b3ull;
}

/* One event as delivered: into the text, the hash, and through an independent checker, which
 * must accept it (hr_trace_read's fast path is the cursor too, so the checker is the oracle for
 * both; `cursor.rejected` counts what it refused). */
static void deliver(hr_trace_check_t *oracle, hr_buf_t *text, uint64_t *hash, const hr_event_t *ev)
{
    hr_err_t e = {0};
    if (text)
        hr_trace_format_event(text, ev);
    hash_event(hash, ev);
    if (hr_trace_check_event(oracle, ev, &e) != HR_OK && cursor.rejected++ < 3)
        TAP_DIAG("the checker refuses a delivered %s of id %llu: %s", hr_op_name(ev->op),
                 (unsigned long long)ev->a, e.msg);
}

/* A trace header built byte by byte (the writer never writes these): version 1, an
 * allocation trace, the given reserved byte and metadata entries, a valid CRC. */
static void hand_header(uint8_t reserved, const char *meta[][2], size_t n, hr_buf_t *out)
{
    hr_buf_t p;
    hr_buf_init(&p);
    static const uint8_t head[] = {'H', 'R', 'T', 'R', 'A', 'C', 'E', 0, 1, 0, HR_KIND_ALLOC};
    hr_buf_append(&p, head, sizeof head);
    hr_buf_append(&p, &reserved, 1);
    uint8_t c = (uint8_t)n; /* small counts and lengths: one-byte varints */
    hr_buf_append(&p, &c, 1);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            c = (uint8_t)strlen(meta[i][j]);
            hr_buf_append(&p, &c, 1);
            hr_buf_append(&p, meta[i][j], c);
        }
    uint32_t crc = hr_crc32(0, p.data, p.len);
    uint8_t le[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    hr_buf_append(&p, le, 4);
    hr_buf_init(out);
    uint32_t len = (uint32_t)p.len;
    uint8_t frame[8] = {0x5e, 0x2a, 0x4d, 0x18, (uint8_t)len, (uint8_t)(len >> 8), 0, 0};
    hr_buf_append(out, frame, 8);
    hr_buf_append(out, p.data, p.len);
    hr_buf_free(&p);
}

static result_t read_mem_as(const void *data, size_t len, int partial, hr_buf_t *text, int mixed,
                            uint64_t *hash, int threads)
{
    result_t res = {0};
    livetab_t live = {0};
    hr_trace_read_opts_t o = {.partial = partial, .threads = threads};
    if (mixed == 2)
        o.id_state = livetab_state, o.id_state_arg = &live;
    hr_trace_reader_t *r;
    res.rc = hr_trace_open_mem(&r, data, len, "mem.hrt", &o, &res.err);
    if (res.rc)
        return res;
    const int ext = hr_trace_ids_external(r);
    if (ext != (mixed == 2 && hr_trace_header(r)->kind == HR_KIND_ALLOC) && cursor.mismatches++ < 3)
        TAP_DIAG("external id states %s for a %s trace", ext ? "taken" : "refused",
                 hr_trace_header(r)->kind == HR_KIND_ALLOC ? "alloc" : "graph");
    cursor.ext_reads += ext;
    if (text)
        hr_trace_format_header(text, hr_trace_header(r));
    hr_trace_check_t oracle;
    hr_trace_check_init(&oracle, hr_trace_header(r)->kind);
    hr_event_t evs[333]; /* an odd batch size crosses frame boundaries at odd places */
    size_t round = 0;
    for (;;) {
        size_t n;
        if (mixed) {
            hr_trace_cursor_t c = hr_trace_cursor_take(r);
            hr_cur_event_t ce = {0};
            int op;
            const uint8_t *p0 = c.p;
            uint64_t prev0 = c.prev;
            while ((op = mixed == 2 ? hr_trace_cursor_next_unverified(&c, &ce)
                                    : hr_trace_cursor_next(&c, &ce)) != 0) {
                if (ext && (op == HR_OP_FREE || op == HR_OP_REALLOC) &&
                    livetab_state(&live, ce.a) != HR_ID_BLOCK) {
                    hr_trace_cursor_unread(&c, p0, prev0); /* the reader reports it */
                    cursor.unread++;
                    break;
                }
                livetab_apply(&live, op, ce.a);
                p0 = c.p, prev0 = c.prev;
                hr_event_t ev = {0};
                ev.op = (uint8_t)op;
                ev.a = ce.a;
                if (op == HR_OP_ALLOC || op == HR_OP_REALLOC || op == HR_OP_LINK ||
                    op == HR_OP_UNLINK)
                    ev.b = ce.b;
                if (op == HR_OP_ALLOC)
                    ev.domain = ce.domain, ev.flags = ce.flags, ev.tag = ce.tag;
                deliver(&oracle, text, hash, &ev);
                cursor.cursor_events++;
            }
            hr_trace_cursor_give(r, c);
        }
        size_t cap = mixed ? 1 + round++ % 7 : HR_ARRAY_LEN(evs);
        res.rc = hr_trace_read(r, evs, cap, &n, &res.err);
        if (res.rc || n == 0)
            break;
        if (ext && n > 1 && cursor.mismatches++ < 3)
            TAP_DIAG("hr_trace_read delivered %zu events at once with external id states", n);
        for (size_t i = 0; i < n; i++) {
            livetab_apply(&live, evs[i].op, evs[i].a);
            deliver(&oracle, text, hash, &evs[i]);
        }
    }
    hr_trace_check_free(&oracle);
    free(live.v);
    take_status(&res, r);
    hr_trace_close(r);
    return res;
}

/* The read with the prefetch thread against the one without: everything the same. */
static void compare_prefetched(const result_t *r1, uint64_t h1, const hr_buf_t *t1,
                               const result_t *rt, uint64_t ht, const hr_buf_t *tt)
{
    prefetch.reads++;
    prefetch.started += rt->prefetched;
    prefetch.held2 += rt->held_peak == 2;
    prefetch.held_over += rt->held_peak > 2;
    prefetch.sync_held_over += r1->held_peak > 1;
    if (r1->rc != rt->rc || strcmp(r1->err.msg, rt->err.msg) != 0 || h1 != ht ||
        r1->events != rt->events || r1->frames != rt->frames || r1->skipped != rt->skipped ||
        r1->ids != rt->ids || r1->types != rt->types || r1->file_bytes != rt->file_bytes ||
        r1->payload_bytes != rt->payload_bytes || r1->cut_short != rt->cut_short ||
        r1->complete != rt->complete || strcmp(r1->cut_msg, rt->cut_msg) != 0 ||
        (t1 && (t1->len != tt->len || (t1->len && memcmp(t1->data, tt->data, t1->len) != 0)))) {
        if (prefetch.mismatches++ < 3)
            TAP_DIAG("prefetched read differs: rc %d/%d, events %llu/%llu, file bytes %llu/%llu, "
                     "'%s' / '%s'", r1->rc, rt->rc, (unsigned long long)r1->events,
                     (unsigned long long)rt->events, (unsigned long long)r1->file_bytes,
                     (unsigned long long)rt->file_bytes, r1->err.msg, rt->err.msg);
    }
}

static result_t read_mem(const void *data, size_t len, int partial, hr_buf_t *text)
{
    uint64_t h1 = 0, ht = 0;
    if (len > 65536 && cursor.large++ % 2) /* big traces: every other one (test time) */
        return read_mem_as(data, len, partial, text, 0, &h1, HR_READ_NO_THREADS);
    size_t before = text ? text->len : 0;
    result_t r1 = read_mem_as(data, len, partial, text, 0, &h1, HR_READ_NO_THREADS);
    size_t l1 = text ? text->len - before : 0;
    if (prefetch.skip == 0 || cursor.reads % prefetch.stride == 0) {
        hr_buf_t t1 = {text ? text->data + before : NULL, l1, l1}, tt;
        hr_buf_init(&tt);
        result_t rt = read_mem_as(data, len, partial, text ? &tt : NULL, 0, &ht, 1);
        compare_prefetched(&r1, h1, text ? &t1 : NULL, &rt, ht, &tt);
        hr_buf_free(&tt);
    }
    const int threads = cursor.reads++ % 4 == 1 ? 1 : HR_READ_NO_THREADS;
    for (int mixed = 1; mixed <= 2; mixed++) {
        /* external id states apply to allocation traces (kind: byte 18); graph traces are read
         * that way only when small (256 bytes: test time), to see the reader decline them */
        if (mixed == 2 && len > 256 && !(len > 18 && ((const uint8_t *)data)[18] == HR_KIND_ALLOC))
            break;
        uint64_t h2 = 0;
        hr_buf_t t2;
        hr_buf_init(&t2);
        result_t r2 = read_mem_as(data, len, partial, text ? &t2 : NULL, mixed, &h2, threads);
        /* On an error hr_trace_read drops the events of the failing batch that came before it,
         * while the cursor has already delivered them: there only the error and the counts that
         * do not depend on batches are compared (the text, when there is one, must be a
         * prefix). */
        int same;
        if (r1.rc == 0)
            same = r1.events == r2.events && h1 == h2 &&
                   (!text || (l1 == t2.len && (l1 == 0 || memcmp(text->data + before, t2.data, l1) == 0)));
        else
            same = r1.events <= r2.events &&
                   (!text || (l1 <= t2.len && (l1 == 0 || memcmp(text->data + before, t2.data, l1) == 0)));
        if (r1.rc != r2.rc || strcmp(r1.err.msg, r2.err.msg) != 0 || !same ||
            r1.frames != r2.frames || r1.complete != r2.complete || r1.cut_short != r2.cut_short) {
            if (cursor.mismatches++ < 3)
                TAP_DIAG("%s read differs: rc %d/%d, events %llu/%llu, '%s' / '%s'",
                         mixed == 1 ? "cursor" : "external-id-state", r1.rc, r2.rc,
                         (unsigned long long)r1.events, (unsigned long long)r2.events, r1.err.msg,
                         r2.err.msg);
        }
        hr_buf_free(&t2);
    }
    return r1;
}

static result_t read_file_text(const char *path, hr_buf_t *text)
{
    hr_buf_t b;
    slurp(path, &b);
    result_t res = read_mem(b.data, b.len, 0, text);
    hr_buf_free(&b);
    return res;
}

/* {==== Writing every event kind through the API ==== */

static int write_all_kinds(const char *path, size_t frame_target, int repeat)
{
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_GRAPH);
    hr_trace_header_set(&h, "producer", "test_trace");
    hr_trace_header_set(&h, "odd_value", "quote \" backslash \\ newline \n tab \t byte \x01 utf8 \xc3\xa9");
    hr_trace_write_opts_t o = {.frame_target = frame_target, .atomic = 1};
    hr_trace_writer_t *w;
    hr_err_t err = {0};
    int rc = hr_trace_writer_open(&w, path, &h, &o, &err);
    hr_trace_header_free(&h);
    if (rc)
        return rc;
    for (int k = 0; k < repeat && !rc; k++) {
        uint64_t a, b, c, d;
        if (k == 0) {
            rc |= hr_trace_put_string(w, HR_OP_TYPE, 0, "list", 4, &err);
            rc |= hr_trace_put_string(w, HR_OP_TYPE, 1, "na\0me", 5, &err);
        }
        rc |= hr_trace_put_alloc(w, 56, HR_DOMAIN_OBJ, HR_F_OBJECT | HR_F_GC | HR_F_TYPED, 0, &a, &err);
        rc |= hr_trace_put_alloc(w, 0, HR_DOMAIN_RAW, 0, 0, &b, &err);
        rc |= hr_trace_put_alloc(w, 1u << 20, HR_DOMAIN_MEM, HR_F_ZERO, 0, &c, &err);
        hr_event_t al = {.op = HR_OP_ALLOC, .domain = HR_DOMAIN_NATIVE, .flags = HR_F_ALIGNED | HR_F_TYPED,
                         .align_log2 = 12, .tag = 1, .a = hr_trace_writer_next_id(w), .b = 4096};
        d = al.a;
        rc |= hr_trace_write(w, &al, &err);
        rc |= hr_trace_put_alloc(w, 24, HR_DOMAIN_OBJ, HR_F_OBJECT, 0, NULL, &err);
        rc |= hr_trace_put_link(w, HR_OP_LINK, a, a + 4, &err);
        rc |= hr_trace_put_link(w, HR_OP_LINK, a, a, &err);
        rc |= hr_trace_put_id(w, HR_OP_INCREF, a, &err);
        rc |= hr_trace_put_id(w, HR_OP_DECREF, a, &err);
        rc |= hr_trace_put_realloc(w, b, 1000, &err);
        rc |= hr_trace_put_realloc(w, a, 64, &err);
        rc |= hr_trace_put_id(w, HR_OP_FREE, b, &err);
        rc |= hr_trace_put_id(w, HR_OP_FREE, c, &err);
        rc |= hr_trace_put_id(w, HR_OP_FREE, d, &err);
        rc |= hr_trace_put_link(w, HR_OP_UNLINK, a, a + 4, &err);
        rc |= hr_trace_put_id(w, HR_OP_DECREF, a + 4, &err);
        rc |= hr_trace_put_id(w, HR_OP_DIED, a + 4, &err);
        hr_event_t facts[] = {
            {.op = HR_OP_ARENA_MAP, .a = 0x7f1234560000ull + (uint64_t)k * 0x100000, .b = 1 << 20},
            {.op = HR_OP_GC_BEGIN, .tag = 2},
            {.op = HR_OP_GC_END, .tag = 2, .a = 17, .b = 1},
            {.op = HR_OP_ARENA_UNMAP, .a = 0x7f1234560000ull, .b = 1 << 20},
            {.op = HR_OP_GC_TRACK, .tag = HR_UNTRACK, .a = a},
            {.op = HR_OP_GC_TRACK, .tag = HR_TRACK, .a = a, .b = 2},
            {.op = HR_OP_GC_TRACK, .tag = HR_UNTRACK_SURVIVOR, .a = a},
        };
        for (size_t i = 0; i < HR_ARRAY_LEN(facts); i++)
            rc |= hr_trace_write(w, &facts[i], &err);
        rc |= hr_trace_put_string(w, HR_OP_STATS, HR_STATS_PYMALLOC, "line 1\nline 2\n", 14, &err);
        rc |= hr_trace_put_string(w, HR_OP_STATS, 7, "x", 1, &err);
        rc |= hr_trace_put_string(w, HR_OP_PHASE, 0, "phase \"one\"", 11, &err);
        rc |= hr_trace_put_string(w, HR_OP_UNKNOWN, 0x9f, "\x01\x02\x03", 3, &err);
    }
    if (rc) {
        fprintf(stderr, "write_all_kinds: %s\n", err.msg);
        hr_trace_writer_abort(w);
        return rc;
    }
    return hr_trace_writer_close(w, &err);
}

static void test_api_roundtrip(void)
{
    size_t targets[] = {64, 300, 0};
    for (size_t t = 0; t < HR_ARRAY_LEN(targets); t++) {
        const char *p1 = tmp_path("all.hrt"), *p2 = tmp_path("all2.hrt"), *pt = tmp_path("all.txt");
        int rc = write_all_kinds(p1, targets[t], 50);
        hr_buf_t text, text2;
        hr_buf_init(&text);
        hr_buf_init(&text2);
        result_t r1 = read_file_text(p1, &text);
        TAP_OK(rc == 0 && r1.rc == 0 && r1.complete && r1.events == 2 + 50 * 28 && r1.skipped == 50,
               "every event kind written and read back (frame target %zu: %llu frames, rc %d %s)",
               targets[t], (unsigned long long)r1.frames, r1.rc, r1.err.msg);
        if (targets[t] == 64)
            TAP_OK(r1.frames > 100, "a small frame target makes many frames (%llu)",
                   (unsigned long long)r1.frames);
        /* text -> binary -> text is the identity */
        spit(pt, text.data, text.len);
        hr_err_t err = {0};
        hr_trace_write_opts_t o = {.frame_target = targets[t], .atomic = 1};
        rc = hr_trace_pack_text(pt, p2, &o, &err);
        result_t r2 = read_file_text(p2, &text2);
        TAP_OK(rc == 0 && r2.rc == 0 && text.len == text2.len &&
                   memcmp(text.data, text2.data, text.len) == 0,
               "text of it packs back to the same text (%s)", err.msg);
        hr_buf_t b1, b2;
        slurp(p1, &b1);
        slurp(p2, &b2);
        /* the writer's header differs only if metadata did; here both are equal, so the
         * binaries must be byte-identical too */
        TAP_OK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
               "binary -> text -> binary is byte-identical");
        hr_buf_free(&b1), hr_buf_free(&b2), hr_buf_free(&text), hr_buf_free(&text2);
    }
}

static void test_generated_million(void)
{
    const char *specs[] = {"random:events=1000000,kind=graph,seed=7", "churn:events=1000000,seed=3"};
    for (size_t i = 0; i < HR_ARRAY_LEN(specs); i++) {
        const char *p1 = tmp_path("gen.hrt"), *p2 = tmp_path("gen2.hrt");
        hr_err_t err = {0};
        int rc = hr_gen_run(specs[i], p1, NULL, &err);
        hr_buf_t text, text2, bin;
        hr_buf_init(&text);
        hr_buf_init(&text2);
        slurp(p1, &bin);
        result_t r1 = read_mem(bin.data, bin.len, 0, &text);
        rc |= hr_trace_pack_buf("gen.txt", (const char *)text.data, text.len, p2,
                                &(hr_trace_write_opts_t){.atomic = 1}, &err);
        result_t r2 = read_file_text(p2, &text2);
        TAP_OK(rc == 0 && r1.rc == 0 && r2.rc == 0 && r1.events >= 1000000 &&
                   text.len == text2.len && memcmp(text.data, text2.data, text.len) == 0,
               "%s: %llu events round-trip text -> binary -> text (%.3f bytes/event) %s", specs[i],
               (unsigned long long)r1.events, (double)bin.len / (double)r1.events, err.msg);
        hr_buf_free(&text), hr_buf_free(&text2), hr_buf_free(&bin);
    }
    /* determinism: the same seed gives the same bytes */
    hr_err_t err = {0};
    hr_gen_run("random:events=5000,seed=9", tmp_path("d1.hrt"), NULL, &err);
    hr_gen_run("random:events=5000,seed=9", tmp_path("d2.hrt"), NULL, &err);
    hr_buf_t a, b;
    slurp(tmp_path("d1.hrt"), &a);
    slurp(tmp_path("d2.hrt"), &b);
    TAP_OK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "generators are deterministic");
    hr_buf_free(&a), hr_buf_free(&b);
}

/* {==== Truncation: every cut point ==== */

static void test_truncation(void)
{
    const char *p = tmp_path("cut.hrt");
    hr_err_t err = {0};
    hr_gen_run("random:events=5000,kind=graph,seed=11", p, &(hr_trace_write_opts_t){.frame_target = 512}, &err);
    hr_buf_t bin;
    slurp(p, &bin);
    /* frame ends and the events before them, read one frame per call */
    uint64_t ends[4096], evs_at[4096];
    size_t nf = 0;
    {
        hr_trace_reader_t *r;
        hr_trace_open_mem(&r, bin.data, bin.len, "cut", NULL, &err);
        static hr_event_t evs[100000];
        size_t n;
        while (hr_trace_read(r, evs, HR_ARRAY_LEN(evs), &n, &err) == 0 && n > 0) {
            ends[nf] = hr_trace_status(r)->file_bytes;
            evs_at[nf++] = hr_trace_status(r)->events;
        }
        hr_trace_close(r);
    }
    TAP_OK(nf > 20, "trace for cut tests has %zu frames", nf);
    int ok = 1, okp = 1, bad_msgs = 0;
    size_t checked = 0;
    for (size_t cut = 0; cut < bin.len; cut++) {
        uint64_t expect = 0;
        int near_end = 0;
        for (size_t f = 0; f < nf; f++) {
            if (ends[f] <= cut)
                expect = evs_at[f];
            near_end |= cut + 20 >= ends[f] && cut <= ends[f] + 20;
        }
        /* with the prefetch thread too: near frame ends, and every fourth cut point elsewhere */
        prefetch.skip = !near_end, prefetch.stride = 4;
        result_t r = read_mem(bin.data, cut, 0, NULL);
        result_t rp = read_mem(bin.data, cut, 1, NULL);
        checked++;
        if (r.rc != HR_ETRUNC && !(cut < 30 && (r.rc == HR_EFORMAT))) {
            ok = 0;
            TAP_DIAG("cut at %zu: rc %d %s", cut, r.rc, r.err.msg);
        }
        if (r.events != expect)
            ok = 0;
        if (cut > 200 && (!strstr(r.err.msg, "cut short") || !strstr(r.err.msg, "mem.hrt")))
            bad_msgs++;
        if (cut > 200 && (rp.rc != 0 || !rp.cut_short || rp.events != expect))
            okp = 0;
    }
    prefetch.skip = 0;
    TAP_OK(ok, "each of %zu cut points: error 'cut short', every complete frame delivered", checked);
    TAP_OK(bad_msgs == 0, "cut-short messages name the file and say 'cut short'");
    TAP_OK(okp, "partial mode: each cut ends cleanly after the last complete frame");
    result_t full = read_mem(bin.data, bin.len, 0, NULL);
    TAP_OK(full.rc == 0 && full.complete, "the uncut trace is complete");
    hr_buf_free(&bin);
}

/* {==== The prefetch thread on files: the same events and errors, early close, bounded ==== */

/* Read a trace file through hr_trace_open (the window and read(2) path) in batches of 1000;
 * stop after `stop_after` batches (close early), or at the end or an error. */
static result_t read_file_as(const char *path, int partial, int threads, uint64_t *hash,
                             size_t stop_after)
{
    result_t res = {0};
    hr_trace_reader_t *r;
    res.rc = hr_trace_open(&r, path, &(hr_trace_read_opts_t){.partial = partial,
                           .threads = threads}, &res.err);
    if (res.rc)
        return res;
    static hr_event_t evs[1000];
    size_t n;
    for (size_t k = 0; k < stop_after; k++) {
        if ((res.rc = hr_trace_read(r, evs, HR_ARRAY_LEN(evs), &n, &res.err)) || n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            hash_event(hash, &evs[i]);
    }
    take_status(&res, r);
    hr_trace_close(r);
    return res;
}

static void test_prefetch_files(void)
{
    /* 300,000 events in frames of 16 KiB: some 150 frames, enough to span several windows */
    const char *p = tmp_path("pf.hrt"), *q = tmp_path("pf-bad.hrt");
    hr_err_t err = {0};
    int rc = hr_gen_run("churn:events=300000,seed=4", p,
                        &(hr_trace_write_opts_t){.frame_target = 16384}, &err);
    hr_buf_t bin;
    slurp(p, &bin);
    uint64_t h1 = 0, ht = 0;
    result_t r1 = read_file_as(p, 0, HR_READ_NO_THREADS, &h1, SIZE_MAX);
    result_t rt = read_file_as(p, 0, 1, &ht, SIZE_MAX);
    compare_prefetched(&r1, h1, NULL, &rt, ht, NULL);
    TAP_OK(rc == 0 && r1.rc == 0 && r1.complete && r1.frames > 30 && rt.prefetched &&
               r1.held_peak == 1 && rt.held_peak >= 1 && rt.held_peak <= 2 && rt.rc == 0 &&
               rt.events == r1.events && ht == h1,
           "a %llu-frame trace file read with the prefetch thread: the same %llu events; frames "
           "held at once %d (at most 2), without the thread %d",
           (unsigned long long)r1.frames, (unsigned long long)rt.events, rt.held_peak,
           r1.held_peak);
    /* the default starts the thread for large frames only */
    {
        hr_trace_reader_t *r;
        size_t n;
        static hr_event_t evs[64];
        int ok = hr_trace_open(&r, p, NULL, &err) == 0 &&
                 hr_trace_read(r, evs, 64, &n, &err) == 0;
        int small = ok && !hr_trace_prefetching(r);
        hr_trace_close(r);
        const char *pb = tmp_path("pf-big.hrt");
        rc = hr_gen_run("churn:events=300000,seed=4", pb,
                        &(hr_trace_write_opts_t){.frame_target = 128 << 10}, &err);
        ok &= rc == 0 && hr_trace_open(&r, pb, NULL, &err) == 0 &&
              hr_trace_read(r, evs, 64, &n, &err) == 0;
        int big = ok && hr_trace_prefetching(r);
        hr_trace_close(r);
        ok &= hr_trace_open(&r, pb, &(hr_trace_read_opts_t){.threads = HR_READ_NO_THREADS},
                            &err) == 0 &&
              hr_trace_read(r, evs, 64, &n, &err) == 0;
        int off = ok && !hr_trace_prefetching(r);
        hr_trace_close(r);
        TAP_OK(small && big && off, "by default the thread prefetches frames of 128 KiB "
               "(writers make 1 MiB), not frames of 16 KiB; HR_READ_NO_THREADS turns it off (%s)",
               err.msg);
    }
    /* closing early: before the first read, after some batches, in every state of the thread
     * (ASan, TSan: no leaked thread, no deadlock, no race) */
    int ok = 1;
    uint64_t frame_end = 0;
    for (size_t stop = 0; stop < 400; stop += 1 + stop / 4) {
        uint64_t h = 0, hs = 0;
        result_t rp = read_file_as(p, 0, 1, &h, stop);
        result_t rs = read_file_as(p, 0, HR_READ_NO_THREADS, &hs, stop);
        ok &= rp.rc == 0 && rs.rc == 0 && rp.events == rs.events && h == hs &&
              rp.file_bytes == rs.file_bytes;
        if (rs.frames >= r1.frames / 2 && !frame_end)
            frame_end = rs.file_bytes; /* the end of a frame in the middle */
    }
    TAP_OK(ok, "readers closed early with the thread running stop cleanly");
    /* a corrupt frame in the middle, a file cut short inside a frame, garbage after the end (more
     * than the input window, so the reader sees only part of it): same events, same messages */
    struct { const char *what; size_t cut; long flip; size_t garbage; } cases[] = {
        {"a flipped bit in the middle", bin.len, (long)bin.len / 2, 0},
        {"cut short in the middle", bin.len / 2 + 7, -1, 0},
        {"cut short after a frame", (size_t)frame_end, -1, 0},
        {"garbage after the end", bin.len, -1, 3u << 20},
    };
    for (size_t c = 0; c < HR_ARRAY_LEN(cases); c++) {
        hr_buf_t b;
        hr_buf_init(&b);
        hr_buf_append(&b, bin.data, cases[c].cut < bin.len ? cases[c].cut : bin.len);
        if (cases[c].flip >= 0)
            b.data[cases[c].flip] ^= 0x10;
        for (size_t i = 0; i < cases[c].garbage; i++) {
            uint8_t g = (uint8_t)(i * 131 + 7);
            hr_buf_append(&b, &g, 1);
        }
        spit(q, b.data, b.len);
        hr_buf_free(&b);
        for (int partial = 0; partial <= 1; partial++) {
            uint64_t hs = 0, hp = 0;
            result_t rs = read_file_as(q, partial, HR_READ_NO_THREADS, &hs, SIZE_MAX);
            result_t rp = read_file_as(q, partial, 1, &hp, SIZE_MAX);
            compare_prefetched(&rs, hs, NULL, &rp, hp, NULL);
            int want_fail = !partial || cases[c].flip >= 0 || cases[c].garbage;
            TAP_OK((rs.rc != 0) == want_fail && rs.rc == rp.rc &&
                       strcmp(rs.err.msg, rp.err.msg) == 0 && rs.events == rp.events &&
                       hs == hp && rs.events < r1.events + (cases[c].garbage ? 1 : 0) &&
                       strcmp(rs.cut_msg, rp.cut_msg) == 0 && rp.prefetched,
                   "%s%s: with and without the thread, %llu events, then '%s'", cases[c].what,
                   partial ? " (partial)" : "", (unsigned long long)rp.events,
                   rp.rc ? rp.err.msg : rp.cut_msg);
        }
    }
    hr_buf_free(&bin);
}

/* {==== Bit flips: never a crash, never a silently different result ==== */

static void test_bit_flips(void)
{
    const char *p = tmp_path("flip.hrt");
    hr_err_t err = {0};
    hr_gen_run("random:events=150,kind=graph,seed=5", p, &(hr_trace_write_opts_t){.frame_target = 256}, &err);
    hr_buf_t bin, ref;
    slurp(p, &bin);
    hr_buf_init(&ref);
    read_mem(bin.data, bin.len, 0, &ref);
    size_t flips = 0, detected = 0, benign = 0, wrong = 0;
    for (size_t i = 0; i < bin.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            bin.data[i] ^= (uint8_t)(1u << bit);
            hr_buf_t text;
            hr_buf_init(&text);
            result_t r = read_mem(bin.data, bin.len, 0, &text);
            flips++;
            if (r.rc != 0)
                detected++;
            else if (text.len == ref.len && memcmp(text.data, ref.data, ref.len) == 0)
                benign++; /* e.g. a zstd window-size bit: same verified content */
            else {
                wrong++;
                if (wrong < 5)
                    TAP_DIAG("flip of byte %zu bit %d read without error but differently", i, bit);
            }
            hr_buf_free(&text);
            bin.data[i] ^= (uint8_t)(1u << bit);
        }
    TAP_OK(wrong == 0, "%zu single-bit flips: %zu detected, %zu harmless (same content), %zu wrong",
           flips, detected, benign, wrong);
    TAP_OK(detected > flips * 95 / 100, "at least 95%% of flips are reported as errors");
    hr_buf_free(&bin), hr_buf_free(&ref);
}

/* {==== Crafted bad input ==== */

/* Raw frames built by hand after a real header: craft.h. */
static result_t craft(int kind, const uint8_t *payload, size_t n)
{
    hr_buf_t b;
    craft_header(kind, tmp_path("hdr.hrt"), &b);
    craft_frame(&b, payload, n, 1);
    result_t r = read_mem(b.data, b.len, 0, NULL);
    hr_buf_free(&b);
    return r;
}

#define CRAFT(kind, ...)                                                                           \
    __extension__({                                                                                \
        static const uint8_t pl_[] = {__VA_ARGS__};                                               \
        craft(kind, pl_, sizeof pl_);                                                              \
    })

static void expect(result_t r, int code, const char *needle, const char *what)
{
    TAP_OK(r.rc == code && strstr(r.err.msg, needle) != NULL, "%s: %s", what, r.err.msg);
}

static void test_crafted(void)
{
    /* FRAME(0, 0, 0, 0) ... END(events, ids, types) */
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x20, 0x00, 0x01, 1, 0, 0), HR_EFORMAT,
           "never allocated", "free with no id allocated");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x20, 0x01, 0x01, 2, 1, 0), HR_EFORMAT,
           "never allocated", "free of an id beyond the newest");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x20, 0x00, 0x20, 0x00, 0x01, 3, 1, 0),
           HR_EFORMAT, "event 2: free of id 0 that is not live (double free)", "double free");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01, 1, 1, 0),
           HR_EFORMAT, "size overflow", "size above 2^47");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
           HR_EFORMAT, "malformed varint", "size varint beyond 64 bits");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x7e, 0x01, 0, 0, 0), HR_EVERSION,
           "unknown opcode 0x7e", "unknown core opcode");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x30, 0), HR_EFORMAT, "allocation-only trace",
           "incref in an allocation-only trace");
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x12, 16, 0x30, 0x00, 0x01, 2, 1, 0), HR_EFORMAT,
           "not an object", "incref of a plain block");
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x16, 16, 0x02, 0x20, 0x00, 0x01, 2, 1, 0), HR_EFORMAT,
           "explicit free of object 0", "explicit free of an object in a graph trace");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x16, 16, 0x08, 3, 0x01, 1, 1, 0), HR_EFORMAT,
           "type 3 but only 0 types", "alloc naming an undefined type");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x01, 5, 1, 0), HR_EFORMAT,
           "end record says 5 events", "end record with wrong totals");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x12), HR_EFORMAT,
           "garbage after the end record inside the last frame", "bytes after END in its frame");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 1, 0, 0, 0, 0x01, 0, 0, 0), HR_EFORMAT,
           "missing, repeated or out of order", "frame numbered 1 comes first");
    expect(CRAFT(HR_KIND_ALLOC, 0x12, 16), HR_EFORMAT, "does not start with a frame record",
           "payload without a FRAME record");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16), HR_ETRUNC, "cut short",
           "no END record");
    /* GC_TRACK (0x85, length, action, id[, generation]) names a live object of a graph trace */
    {
        result_t r = CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x16, 16, 0x03, 0x85, 3, 0, 0, 2, 0x85,
                           2, 1, 0, 0x85, 2, 2, 0, 0x01, 4, 1, 0);
        TAP_OK(r.rc == 0 && r.events == 4 && r.skipped == 0,
               "gc track, untrack and untrack survivor of an object are read (%s)", r.err.msg);
    }
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x12, 16, 0x85, 3, 0, 0, 0, 0x01, 2, 1, 0),
           HR_EFORMAT, "gc track of id 0, which is not an object", "gc track of a plain block");
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x16, 16, 0x03, 0x85, 3, 0, 0, 3, 0x01, 2, 1, 0),
           HR_EFORMAT, "generation 3", "gc track into generation 3");
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x16, 16, 0x03, 0x85, 2, 3, 0, 0x01, 2, 1, 0),
           HR_EFORMAT, "malformed", "gc track with an unknown action");
    expect(CRAFT(HR_KIND_GRAPH, 0x02, 0, 0, 0, 0, 0x85, 2, 1, 0, 0x01, 1, 0, 0), HR_EFORMAT,
           "never allocated", "gc untrack of an id never allocated");
    expect(CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x85, 2, 1, 0, 0x01, 2, 1, 0),
           HR_EFORMAT, "allocation-only trace", "gc untrack in an allocation-only trace");
    {
        result_t r = CRAFT(HR_KIND_ALLOC, 0x02, 0, 0, 0, 0, 0x12, 16, 0x9f, 3, 1, 2, 3, 0x20, 0, 0x01, 3, 1, 0);
        TAP_OK(r.rc == 0 && r.events == 3 && r.skipped == 1,
               "an unknown sized record is skipped and counted (%s)", r.err.msg);
    }
    hr_buf_t b;
    /* a frame without checksum */
    craft_header(HR_KIND_ALLOC, tmp_path("hdr.hrt"), &b);
    static const uint8_t end0[] = {0x02, 0, 0, 0, 0, 0x01, 0, 0, 0};
    craft_frame(&b, end0, sizeof end0, 0);
    expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, "carry a checksum", "frame without checksum");
    hr_buf_free(&b);
    /* garbage after the end of the file, and a second valid frame after END */
    craft_header(HR_KIND_ALLOC, tmp_path("hdr.hrt"), &b);
    craft_frame(&b, end0, sizeof end0, 1);
    size_t good = b.len;
    hr_buf_append(&b, "xyz", 3);
    expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, "garbage after the end of the trace",
           "bytes after the last frame");
    b.len = good;
    craft_frame(&b, end0, sizeof end0, 1);
    expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, "garbage after the end", "a frame after END");
    hr_buf_free(&b);
    /* a foreign skippable frame between data frames is skipped */
    craft_header(HR_KIND_ALLOC, tmp_path("hdr.hrt"), &b);
    static const uint8_t f0[] = {0x02, 0, 0, 0, 0, 0x12, 16};
    static const uint8_t f1[] = {0x02, 1, 1, 1, 0, 0x20, 0, 0x01, 2, 1, 0};
    craft_frame(&b, f0, sizeof f0, 1);
    static const uint8_t skip[] = {0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'};
    hr_buf_append(&b, skip, sizeof skip);
    craft_frame(&b, f1, sizeof f1, 1);
    result_t r = read_mem(b.data, b.len, 0, NULL);
    TAP_OK(r.rc == 0 && r.events == 2 && r.frames == 2 && r.skipped == 1,
           "a foreign skippable frame between data frames is skipped (%s)", r.err.msg);
    hr_buf_free(&b);
    /* a repeated frame */
    size_t hl = craft_header(HR_KIND_ALLOC, tmp_path("hdr.hrt"), &b);
    (void)hl;
    craft_frame(&b, f0, sizeof f0, 1);
    craft_frame(&b, f0, sizeof f0, 1);
    expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, "frame 1 at byte", "a repeated frame");
    hr_buf_free(&b);
    /* wrong magic, empty file, unknown version (with a valid CRC), bad header CRC */
    expect(read_mem("hello, world, this is text", 26, 0, NULL), HR_EFORMAT,
           "byte 0: wrong magic, not a heapreplay trace", "wrong magic");
    expect(read_mem("", 0, 0, NULL), HR_EFORMAT, "empty file", "empty file");
    hl = craft_header(HR_KIND_ALLOC, tmp_path("hdr.hrt"), &b);
    craft_frame(&b, end0, sizeof end0, 1);
    b.data[16] = 2; /* version 2 */
    uint32_t crc = hr_crc32(0, b.data + 8, hl - 12);
    b.data[hl - 4] = (uint8_t)crc, b.data[hl - 3] = (uint8_t)(crc >> 8);
    b.data[hl - 2] = (uint8_t)(crc >> 16), b.data[hl - 1] = (uint8_t)(crc >> 24);
    expect(read_mem(b.data, b.len, 0, NULL), HR_EVERSION, "version 2, this heapreplay reads version 1",
           "unknown version");
    b.data[16] = 1; /* now the CRC no longer matches */
    expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, "header checksum mismatch", "bad header CRC");
    hr_buf_free(&b);
    /* The header's reserved byte and its metadata keys (each with a valid CRC): the reserved
     * byte must be 0, a key may appear once, and a key must be a bare word. */
    static const char *one[][2] = {{"command", "a"}};
    static const char *twice[][2] = {{"command", "a"}, {"seed", "1"}, {"command", "b"}};
    static const char *spaced[][2] = {{"two words", "a"}};
    static const struct {
        uint8_t reserved;
        const char *(*meta)[2];
        size_t n;
        const char *needle, *what; /* needle NULL: the trace reads */
    } hdrs[] = {
        {0, one, 1, NULL, "a hand-made header with one metadata entry reads"},
        {1, one, 1, "byte 19: reserved header byte is 1", "a reserved header byte that is not 0"},
        {0, twice, 3, "byte 38: metadata entry 2 repeats the key 'command'",
         "a metadata key given twice"},
        {0, spaced, 1, "byte 21: metadata entry 0: bad key", "a metadata key that is not a bare word"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(hdrs); i++) {
        hand_header(hdrs[i].reserved, hdrs[i].meta, hdrs[i].n, &b);
        craft_frame(&b, end0, sizeof end0, 1);
        if (hdrs[i].needle) {
            expect(read_mem(b.data, b.len, 0, NULL), HR_EFORMAT, hdrs[i].needle, hdrs[i].what);
        } else {
            r = read_mem(b.data, b.len, 0, NULL);
            TAP_OK(r.rc == 0, "%s (%s)", hdrs[i].what, r.err.msg);
        }
        hr_buf_free(&b);
    }

    /* The writer refuses what the reader would reject, and writes nothing for it. */
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_ALLOC);
    hr_trace_writer_t *w;
    hr_err_t err = {0};
    hr_trace_writer_open(&w, tmp_path("refuse.hrt"), &h, &(hr_trace_write_opts_t){.atomic = 1}, &err);
    uint64_t id;
    hr_trace_put_alloc(w, 8, HR_DOMAIN_MEM, 0, 0, &id, &err);
    hr_trace_put_id(w, HR_OP_FREE, id, &err);
    hr_err_clear(&err);
    int rc = hr_trace_put_id(w, HR_OP_FREE, id, &err);
    TAP_OK(rc == HR_EFORMAT && strstr(err.msg, "double free"), "the writer refuses a double free: %s", err.msg);
    hr_err_clear(&err);
    rc = hr_trace_put_alloc(w, HR_TRACE_MAX_SIZE + 1, HR_DOMAIN_MEM, 0, 0, &id, &err);
    TAP_OK(rc == HR_EFORMAT && strstr(err.msg, "size overflow"), "the writer refuses a size overflow");
    hr_err_clear(&err);
    rc = hr_trace_writer_close(w, &err);
    result_t rr = read_file_text(tmp_path("refuse.hrt"), NULL);
    TAP_OK(rc == 0 && rr.rc == 0 && rr.events == 2, "the trace holds only the accepted events");
    hr_trace_header_free(&h);

    /* The text form of GC_TRACK: its operands are checked like the binary form's. */
    static const struct { const char *text, *needle; } bad_text[] = {
        {"heapreplay-trace 1 graph\nalloc 0 16 obj object\ngc track 0 3\n", "generation 3"},
        {"heapreplay-trace 1 graph\nalloc 0 16 obj\ngc untrack 0\n", "not an object"},
        {"heapreplay-trace 1 graph\nalloc 0 16 obj object\ngc untrack 0 later\n",
         "expected 'gc untrack ID' or 'gc untrack ID survivor'"},
        {"heapreplay-trace 1 graph\nalloc 0 16 obj object\ngc track 0\n", "missing operand"},
        {"heapreplay-trace 1 alloc\nalloc 0 16 obj\ngc untrack 0 survivor\n",
         "allocation-only trace"},
    };
    hr_err_clear(&err);
    static const char dup_meta[] = "heapreplay-trace 1 alloc\nmeta seed \"1\"\nmeta seed \"2\"\n";
    rc = hr_trace_pack_buf("t.txt", dup_meta, strlen(dup_meta), tmp_path("t.hrt"),
                           &(hr_trace_write_opts_t){.atomic = 1}, &err);
    TAP_OK(rc == HR_EFORMAT && strstr(err.msg, "t.txt:3") && strstr(err.msg, "'seed' given twice"),
           "text form: a metadata key given twice is refused at its line: %s", err.msg);
    for (size_t i = 0; i < HR_ARRAY_LEN(bad_text); i++) {
        hr_err_clear(&err);
        rc = hr_trace_pack_buf("t.txt", bad_text[i].text, strlen(bad_text[i].text),
                               tmp_path("t.hrt"), &(hr_trace_write_opts_t){.atomic = 1}, &err);
        TAP_OK(rc == HR_EFORMAT && strstr(err.msg, bad_text[i].needle) &&
                   strstr(err.msg, "t.txt:3"),
               "text gc track error %zu is reported at its line: %s", i, err.msg);
    }

    /* Atomic writes never clobber an existing file on failure. */
    spit(tmp_path("keep.hrt"), "precious", 8);
    spit(tmp_path("bad.txt"), "heapreplay-trace 1 alloc\nalloc 0 8 mem\nfree 1\n", 45);
    hr_err_clear(&err);
    rc = hr_trace_pack_text(tmp_path("bad.txt"), tmp_path("keep.hrt"), &(hr_trace_write_opts_t){.atomic = 1}, &err);
    hr_buf_t kept;
    slurp(tmp_path("keep.hrt"), &kept);
    TAP_OK(rc == HR_EFORMAT && kept.len == 8 && memcmp(kept.data, "precious", 8) == 0 &&
               strstr(err.msg, "bad.txt:3 (byte 39), event 1: free of id 1 that was never allocated"),
           "a failed pack leaves the existing output untouched: %s", err.msg);
    hr_buf_free(&kept);
    char leftover[600];
    snprintf(leftover, sizeof leftover, "%s.tmp.%ld", tmp_path("keep.hrt"), (long)getpid());
    TAP_OK(access(leftover, F_OK) != 0, "and no temporary file is left behind");
}

/* {==== Allocation streams with a bad free or realloc somewhere ==== */

/* Hand-built payloads (no writer would produce them) of allocations, frees and reallocs, ids
 * coded both ways (from the newest id and from the previous one), with at most one bad event at
 * a random place: a double free, a realloc of a freed block, a free of an id never allocated.
 * read_mem reads each three ways (above); with external id states the bad free or realloc is the
 * consumer's to notice and put back, and the reader must still report it with the same words,
 * byte offset and event index. */
static void put_id(hr_buf_t *b, unsigned op, uint64_t id, uint64_t *prev, uint64_t next_id,
                   hr_rng_t *rng)
{
    uint8_t v[10];
    if (hr_rng_below(rng, 2)) {
        int64_t d = (int64_t)(id - *prev);
        uint8_t o = (uint8_t)(op | HR_W_FROM_PREV);
        hr_buf_append(b, &o, 1);
        hr_buf_append(b, v, hr_varint_put(v, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63)));
    } else {
        uint8_t o = (uint8_t)op;
        hr_buf_append(b, &o, 1);
        hr_buf_append(b, v, hr_varint_put(v, next_id - 1 - id));
    }
    *prev = id;
}

static void test_bad_alloc_streams(void)
{
    int ok = 1;
    size_t bad = 0, reported = 0;
    for (uint64_t seed = 1; seed <= 400; seed++) {
        hr_rng_t rng;
        hr_rng_seed(&rng, seed);
        hr_buf_t pl;
        hr_buf_init(&pl);
        static const uint8_t frame[] = {HR_W_FRAME, 0, 0, 0, 0};
        hr_buf_append(&pl, frame, sizeof frame);
        uint64_t live[256], freed[256], nlive = 0, nfreed = 0, next_id = 0, prev = 0, events = 0;
        size_t n = 20 + hr_rng_below(&rng, 300), bad_at = seed % 4 ? hr_rng_below(&rng, n) : n;
        uint8_t v[10];
        for (size_t i = 0; i < n; i++, events++) {
            unsigned c = (unsigned)hr_rng_below(&rng, 10);
            if (i == bad_at && (nfreed || c < 3)) {
                unsigned k = (unsigned)hr_rng_below(&rng, 3);
                uint64_t id = k == 2 || !nfreed ? next_id + hr_rng_below(&rng, 3)
                                                : freed[hr_rng_below(&rng, nfreed)];
                put_id(&pl, k || id >= next_id ? HR_W_FREE : HR_W_REALLOC, id, &prev, next_id,
                       &rng);
                if (k == 0 && id < next_id)
                    hr_buf_append(&pl, v, hr_varint_put(v, 48));
                bad++;
                break; /* the reader stops here */
            }
            if (c < 5 || nlive == 0) {
                uint8_t o = (uint8_t)(HR_W_ALLOC | hr_rng_below(&rng, 3));
                hr_buf_append(&pl, &o, 1);
                hr_buf_append(&pl, v, hr_varint_put(v, hr_rng_below(&rng, 200)));
                if (nlive < HR_ARRAY_LEN(live))
                    live[nlive++] = next_id;
                prev = next_id++;
            } else if (c < 8) {
                size_t j = hr_rng_below(&rng, nlive);
                put_id(&pl, HR_W_FREE, live[j], &prev, next_id, &rng);
                if (nfreed < HR_ARRAY_LEN(freed))
                    freed[nfreed++] = live[j];
                live[j] = live[--nlive];
            } else {
                put_id(&pl, HR_W_REALLOC, live[hr_rng_below(&rng, nlive)], &prev, next_id, &rng);
                hr_buf_append(&pl, v, hr_varint_put(v, hr_rng_below(&rng, 500)));
            }
        }
        uint8_t end = HR_W_END;
        hr_buf_append(&pl, &end, 1);
        hr_buf_append(&pl, v, hr_varint_put(v, events));
        hr_buf_append(&pl, v, hr_varint_put(v, next_id));
        hr_buf_append(&pl, v, hr_varint_put(v, 0));
        result_t r = craft(HR_KIND_ALLOC, pl.data, pl.len);
        if (bad_at < n && r.rc != 0) {
            reported += r.rc == HR_EFORMAT && strstr(r.err.msg, "mem.hrt") &&
                        strstr(r.err.msg, "byte") && strstr(r.err.msg, "event");
        } else if (bad_at >= n && r.rc != 0) {
            ok = 0;
            TAP_DIAG("seed %llu: a good stream fails: %s", (unsigned long long)seed, r.err.msg);
        }
        hr_buf_free(&pl);
    }
    TAP_OK(ok && bad > 200 && reported == bad,
           "hand-built allocation streams: %zu with a bad free or realloc, %zu reported with "
           "file, byte and event; every good one reads", bad, reported);
}

/* {==== The writer's fast paths equal the general path ==== */

/* Random streams of what recorders write, invalid events included (double frees, ids never
 * allocated, frees of objects, increfs of plain blocks, links in allocation traces, bad domains,
 * flags, types and sizes, a TYPE or PHASE now and then), written through the fast paths
 * (hr_trace_write_alloc/_id/_link, and half of them through the inline hr_trace_wfast_alloc/_id
 * that recorders use) into one file and through hr_trace_write into another: every
 * return code and message must agree and the files must be byte-identical. Small frame targets
 * put frame boundaries and the fast paths' fallbacks (frame not open) everywhere. */
static void test_fast_paths(void)
{
    size_t targets[] = {17, 64, 1000, 0};
    for (size_t t = 0; t < HR_ARRAY_LEN(targets); t++) {
        for (int kind = HR_KIND_ALLOC; kind <= HR_KIND_GRAPH; kind++) {
            const char *pa = tmp_path("fast.hrt"), *pb = tmp_path("slow.hrt");
            hr_trace_header_t h;
            hr_trace_header_init(&h, kind);
            /* the fast paths' writer also compresses on a worker thread (async): the file must
             * not change either */
            hr_trace_write_opts_t o = {.frame_target = targets[t]}, oa = o;
            oa.async = 1;
            hr_err_t ea = {0}, eb = {0};
            hr_trace_writer_t *wa = NULL, *wb = NULL;
            int rc = hr_trace_writer_open(&wa, pa, &h, &oa, &ea);
            rc |= hr_trace_writer_open(&wb, pb, &h, &o, &eb);
            uint64_t seed = 0x9E3779B97F4A7C15ull * (t * 2 + (size_t)kind + 1), live[512];
            size_t nlive = 0, events = 0, refused = 0, mismatches = 0, ntypes = 0;
            for (int i = 0; rc == 0 && i < 300000; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                unsigned r = (unsigned)(seed >> 33), what = r % 16;
                int ra, rb;
                memset(&ea, 0, sizeof ea), memset(&eb, 0, sizeof eb);
                uint64_t next = hr_trace_writer_next_id(wb);
                /* an id: mostly a live one, sometimes freed, never allocated or far */
                uint64_t any = nlive && r % 7 ? live[(r >> 4) % nlive]
                                              : (r % 3 == 0 ? next + (r >> 9) % 5
                                                            : (r >> 5) % (next + 1));
                if (what == 0) { /* something else in between */
                    hr_event_t ev = {.op = HR_OP_PHASE, .a = 1, .str = (const uint8_t *)"x"};
                    if (r & 16)
                        ev = (hr_event_t){.op = HR_OP_TYPE, .tag = (uint32_t)ntypes, .a = 1,
                                          .str = (const uint8_t *)"T"};
                    ra = hr_trace_write(wa, &ev, &ea);
                    rb = hr_trace_write(wb, &ev, &eb);
                    ntypes += ev.op == HR_OP_TYPE && rb == 0;
                } else if (what < 7 && nlive < HR_ARRAY_LEN(live)) {
                    uint64_t size = (r >> 8) % 3000, id;
                    unsigned dom = (r >> 4) & 3, flags = (r >> 20) % 4 == 0 ? HR_F_GC : 0;
                    uint32_t type = (uint32_t)((r >> 12) % (ntypes + 2));
                    if (r % 31 == 0)
                        size = HR_TRACE_MAX_SIZE + (r & 1) * 7; /* at and over the limit */
                    if (r % 37 == 0)
                        dom = HR_DOMAIN_COUNT + (r >> 7) % 3;
                    if (r % 41 == 0)
                        flags = (r >> 3) & 0xff;
                    if ((r >> 21) % 5 == 0)
                        flags |= HR_F_ZERO;
                    if ((r >> 23) % 3 == 0)
                        flags |= HR_F_OBJECT | HR_F_TYPED | HR_F_GC;
                    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = (uint8_t)dom,
                                     .flags = (uint8_t)flags, .tag = type, .a = next, .b = size};
                    ra = r >> 31 ? hr_trace_wfast_alloc(wa, size, dom,
                                                        flags & ~(unsigned)HR_F_ALIGNED, type,
                                                        &id, &ea)
                                 : hr_trace_write_alloc(wa, size, dom,
                                                        flags & ~(unsigned)HR_F_ALIGNED, type,
                                                        &id, &ea);
                    ev.flags &= (uint8_t)~HR_F_ALIGNED;
                    rb = hr_trace_write(wb, &ev, &eb);
                    if (ra == 0)
                        live[nlive++] = id;
                    mismatches += ra == 0 && id != ev.a;
                } else if (what < 11) {
                    static const int ops[] = {HR_OP_FREE, HR_OP_FREE, HR_OP_INCREF,
                                              HR_OP_DECREF, HR_OP_DIED};
                    int op = ops[(r >> 3) % 5];
                    hr_event_t ev = {.op = (uint8_t)op, .a = any};
                    ra = r >> 31                ? hr_trace_wfast_id(wa, op, any, &ea)
                         : op == HR_OP_FREE ? hr_trace_write_free(wa, any, &ea)
                                            : hr_trace_write_id(wa, op, any, &ea);
                    rb = hr_trace_write(wb, &ev, &eb);
                    for (size_t k = 0; op == HR_OP_FREE && rb == 0 && k < nlive; k++)
                        if (live[k] == any) {
                            live[k] = live[--nlive];
                            break;
                        }
                } else {
                    uint64_t dst = nlive ? live[(r >> 11) % nlive] : 0;
                    int op = r & 8 ? HR_OP_LINK : HR_OP_UNLINK;
                    hr_event_t ev = {.op = (uint8_t)op, .a = any, .b = dst};
                    ra = hr_trace_write_link(wa, op, any, dst, &ea);
                    rb = hr_trace_write(wb, &ev, &eb);
                }
                events++;
                refused += ra != 0;
                if (ra != rb || strcmp(ea.msg, eb.msg) != 0) {
                    if (!mismatches)
                        TAP_DIAG("event %zu: fast %d '%s', general %d '%s'", events, ra, ea.msg,
                                 rb, eb.msg);
                    mismatches++;
                }
            }
            rc |= hr_trace_writer_close(wa, &ea);
            rc |= hr_trace_writer_close(wb, &eb);
            hr_trace_header_free(&h);
            hr_buf_t a, b;
            slurp(pa, &a);
            slurp(pb, &b);
            result_t res = read_mem(a.data, a.len, 0, NULL);
            TAP_OK(rc == 0 && mismatches == 0 && refused > 1000 && events - refused > 100000 &&
                       a.len == b.len && memcmp(a.data, b.data, a.len) == 0 && res.rc == 0 &&
                       res.complete,
                   "fast ALLOC/id/LINK paths (out of line and inline), async frames = hr_trace_write (%s trace, frame target %zu: %zu "
                   "events, %zu refused alike, %zu mismatches, files %zu/%zu bytes, read %d)",
                   hr_kind_name(kind), targets[t], events, refused, mismatches, a.len, b.len,
                   res.rc);
            hr_buf_free(&a), hr_buf_free(&b);
        }
    }
}

/* {==== Trusted ids ==== */

/* A writer opened with trusted_ids (what the recorders use) keeps no id-state bitmap: on a valid
 * stream it writes the same bytes as a checking writer (fast paths, inline and out of line, and
 * hr_trace_write); it does not refuse a double free (the producer vouched), and the reader
 * reports it with its place; a graph trace cannot have trusted ids. */
static void test_trusted_ids(void)
{
    const char *pa = tmp_path("trusted.hrt"), *pb = tmp_path("checked.hrt");
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_ALLOC);
    hr_trace_write_opts_t ot = {.frame_target = 300, .trusted_ids = 1}, oc = {.frame_target = 300};
    hr_err_t ea = {0}, eb = {0};
    hr_trace_writer_t *wa = NULL, *wb = NULL;
    int rc = hr_trace_writer_open(&wa, pa, &h, &ot, &ea);
    rc |= hr_trace_writer_open(&wb, pb, &h, &oc, &eb);
    const hr_trace_check_t *ca = hr_trace_writer_check(wa), *cb = hr_trace_writer_check(wb);
    uint64_t seed = 12345, live[256];
    size_t nlive = 0, mismatches = 0;
    for (int i = 0; rc == 0 && i < 200000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 33);
        int ra, rb;
        if (nlive == 0 || (r % 2 && nlive < HR_ARRAY_LEN(live))) {
            uint64_t size = (r >> 4) % 700, ia, ib;
            unsigned dom = (r >> 2) & 3, flags = (r >> 14) % 3 == 0 ? HR_F_GC : 0;
            ra = r >> 30 ? hr_trace_wfast_alloc(wa, size, dom, flags, 0, &ia, &ea)
                         : hr_trace_write_alloc(wa, size, dom, flags, 0, &ia, &ea);
            rb = hr_trace_write_alloc(wb, size, dom, flags, 0, &ib, &eb);
            live[nlive++] = ia;
            mismatches += ia != ib;
        } else {
            size_t k = (r >> 3) % nlive;
            uint64_t id = live[k];
            if (r % 11 == 0) {
                hr_event_t ev = {.op = HR_OP_REALLOC, .a = id, .b = (r >> 5) % 5000};
                ra = hr_trace_write(wa, &ev, &ea);
                rb = hr_trace_write(wb, &ev, &eb);
            } else {
                ra = r >> 30 ? hr_trace_wfast_id(wa, HR_OP_FREE, id, &ea)
                             : r & 4 ? hr_trace_write_free(wa, id, &ea)
                                     : hr_trace_write(wa, &(hr_event_t){.op = HR_OP_FREE, .a = id},
                                                      &ea);
                rb = hr_trace_write_free(wb, id, &eb);
                live[k] = live[--nlive];
            }
        }
        mismatches += ra != 0 || rb != 0;
    }
    int no_bitmap = ca->state == NULL && cb->state != NULL;
    rc |= hr_trace_writer_close(wa, &ea);
    rc |= hr_trace_writer_close(wb, &eb);
    hr_buf_t a, b;
    slurp(pa, &a);
    slurp(pb, &b);
    result_t resa = read_mem(a.data, a.len, 0, NULL);
    TAP_OK(rc == 0 && mismatches == 0 && no_bitmap && a.len == b.len &&
               memcmp(a.data, b.data, a.len) == 0 && resa.rc == 0 && resa.complete,
           "trusted ids: byte for byte the file of a checking writer on a valid stream (%llu "
           "events, %zu mismatches, %zu/%zu bytes), and no id-state bitmap",
           (unsigned long long)resa.events, mismatches, a.len, b.len);
    hr_buf_free(&a), hr_buf_free(&b);
    /* a double free: the checking writer refuses it, the trusted one writes it */
    uint64_t id;
    rc = hr_trace_writer_open(&wa, pa, &h, &ot, &ea);
    rc |= hr_trace_writer_open(&wb, pb, &h, &oc, &eb);
    rc |= hr_trace_write_alloc(wa, 16, HR_DOMAIN_OBJ, 0, 0, &id, &ea);
    rc |= hr_trace_write_free(wa, id, &ea);
    int dbl = hr_trace_write_free(wa, id, &ea);
    rc |= hr_trace_write_alloc(wb, 16, HR_DOMAIN_OBJ, 0, 0, &id, &eb);
    rc |= hr_trace_write_free(wb, id, &eb);
    int refused = hr_trace_write_free(wb, id, &eb) == HR_EFORMAT;
    rc |= hr_trace_writer_close(wa, &ea);
    rc |= hr_trace_writer_close(wb, &eb);
    slurp(pa, &a);
    resa = read_mem(a.data, a.len, 0, NULL);
    TAP_OK(rc == 0 && dbl == 0 && refused && resa.rc == HR_EFORMAT &&
               strstr(resa.err.msg, "double free") && strstr(resa.err.msg, "event 2"),
           "trusted ids: a double free is written, refused by a checking writer, and reported by "
           "the reader with its place ('%s')", resa.err.msg);
    hr_buf_free(&a);
    hr_trace_header_free(&h);
    hr_trace_header_init(&h, HR_KIND_GRAPH);
    memset(&ea, 0, sizeof ea);
    wa = NULL;
    rc = hr_trace_writer_open(&wa, pa, &h, &ot, &ea);
    TAP_OK(rc == HR_EUSAGE && wa == NULL && strstr(ea.msg, pa),
           "trusted ids: refused for a graph trace ('%s')", ea.msg);
    hr_trace_header_free(&h);
}

int main(void)
{
    if (hr_tmp_template(tmpdir, sizeof tmpdir, "hr_test_trace"))
        return 99;
    if (!mkdtemp(tmpdir))
        return 99;
    test_api_roundtrip();
    test_fast_paths();
    test_trusted_ids();
    test_crafted();
    test_bad_alloc_streams();
    test_truncation();
    test_prefetch_files();
    test_bit_flips();
    test_generated_million();
    TAP_OK(cursor.mismatches == 0 && cursor.reads > 10000 && cursor.cursor_events > 1000000,
           "the cursor read (hr_trace_fast.h) agrees with hr_trace_read on every read above: "
           "%llu reads, %llu events decoded by the cursor, %llu disagreements",
           (unsigned long long)cursor.reads, (unsigned long long)cursor.cursor_events,
           (unsigned long long)cursor.mismatches);
    TAP_OK(prefetch.mismatches == 0 && prefetch.started > 1000 && prefetch.held_over == 0 &&
               prefetch.sync_held_over == 0,
           "every read above with the prefetch thread (%llu; the thread ran in %llu) agrees with "
           "the read without it: events, status, errors byte for byte (%llu disagreements); it "
           "held 2 frames at once in %llu, never more (%llu), the read without it never more than "
           "1 (%llu)", (unsigned long long)prefetch.reads, (unsigned long long)prefetch.started,
           (unsigned long long)prefetch.mismatches, (unsigned long long)prefetch.held2,
           (unsigned long long)prefetch.held_over, (unsigned long long)prefetch.sync_held_over);
    TAP_OK(cursor.rejected == 0, "the checker accepts every event either read delivered (%llu "
           "refused)", (unsigned long long)cursor.rejected);
    TAP_OK(cursor.ext_reads > 300 && cursor.unread > 100,
           "allocation traces were read with external id states too (%llu reads), and the frees "
           "and reallocs of blocks not live the consumer put back were reported by the reader "
           "(%llu)", (unsigned long long)cursor.ext_reads, (unsigned long long)cursor.unread);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        TAP_DIAG("could not remove %s", tmpdir);
    return tap_done();
}

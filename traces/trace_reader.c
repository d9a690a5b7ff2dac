/* trace_reader.c: decodes a trace file (or memory image) into batches of checked events.
 *
 * Theory of operation
 *   The input is a zstd multi-frame stream: a skippable header frame, then data frames. The reader
 *   pulls one whole data frame at a time through ZSTD_decompressStream into `frame`; zstd verifies
 *   the frame's content checksum when the frame ends, and only then are its events decoded and
 *   handed out. Consequences:
 *     - a flipped bit anywhere in a data frame is reported before any of that frame's events;
 *     - a trace cut short (killed writer) yields every complete frame, then says where it stops;
 *     - memory is bounded by one frame (64 MiB at most), whatever the trace length.
 *   Every decoded event goes through the same checker as the writer's, so consumers see only
 *   valid events. Errors carry: file, frame number and its byte offset, payload byte, event index.
 *
 * States
 *   BETWEEN  no frame loaded: the next call looks for a frame (or the end of the file)
 *   IN_FRAME frame[fpos..flen) holds undecoded events of frame number `frames - 1`
 *   DONE     END read and verified, nothing after it
 *   FAILED   an error was reported; every later call repeats it
 */
#include "hr_trace.h"
#include "trace_internal.h"
#include "trace_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

enum { ST_BETWEEN, ST_IN_FRAME, ST_DONE, ST_FAILED };

#define IN_CHUNK (1u << 20)

struct hr_trace_reader {
    char *name;                 /* owned: file name for messages */
    int fd;                     /* -1 in memory mode */
    const uint8_t *in;          /* input window: in[0..in_len) holds file bytes from in_base */
    size_t in_len, in_pos;      /* bytes in the window; next unread byte */
    uint64_t in_base;           /* file offset of in[0] */
    hr_buf_t inbuf;             /* owned window storage in file mode */
    int eof;                    /* no more bytes beyond the window */
    int partial;
    hr_id_state_fn id_state;    /* the consumer's id states (hr_trace_read_opts_t), or NULL */
    void *id_state_arg;
    int state;
    hr_err_t fail;              /* the error repeated in ST_FAILED */
    hr_trace_header_t hdr;
    hr_trace_check_t chk;
    ZSTD_DCtx *dctx;
    hr_buf_t frame;             /* decoded payload of the current frame */
    size_t fpos;                /* decode position in frame */
    uint64_t prev;              /* the id the last id-naming event named (per frame) */
    uint64_t frame_off;         /* file offset of the current frame */
    hr_buf_t type_names;        /* concatenated type names */
    uint64_t *type_off;         /* owned: type_off[i] = start of name i; type_off[ntypes] = end */
    size_t type_cap;
    hr_trace_status_t st;
};

/* {==== Input window ==== */

/* Make at least `n` bytes available at in_pos (fewer only at the end of the input). Returns the
 * number of bytes available. */
static size_t in_ensure(hr_trace_reader_t *r, size_t n, hr_err_t *err, int *rc)
{
    *rc = HR_OK;
    while (r->in_len - r->in_pos < n && !r->eof) {
        if (r->fd < 0) {
            r->eof = 1;
            break;
        }
        /* Slide the window: drop consumed bytes, then read at least IN_CHUNK more. */
        if (r->in_pos > 0) {
            memmove(r->inbuf.data, r->inbuf.data + r->in_pos, r->in_len - r->in_pos);
            r->in_base += r->in_pos;
            r->in_len -= r->in_pos;
            r->in_pos = 0;
        }
        size_t want = n > IN_CHUNK ? n : IN_CHUNK;
        if (r->inbuf.cap < r->in_len + want + 1) {
            r->inbuf.len = r->in_len;
            if (hr_buf_reserve(&r->inbuf, want)) {
                *rc = hr_err_set(err, HR_ENOMEM, "%s: out of memory", r->name);
                break;
            }
        }
        ssize_t k = read(r->fd, r->inbuf.data + r->in_len, want);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            *rc = hr_err_set(err, HR_EIO, "%s: read error at byte %llu: %s", r->name,
                             (unsigned long long)(r->in_base + r->in_len), strerror(errno));
            break;
        }
        if (k == 0)
            r->eof = 1;
        r->in_len += (size_t)k;
        r->in = r->inbuf.data;
    }
    return r->in_len - r->in_pos;
}

static uint64_t in_offset(const hr_trace_reader_t *r) { return r->in_base + r->in_pos; }

/* {==== Opening and the header ==== */

static int fail(hr_trace_reader_t *r, hr_err_t *err, int code, const char *fmt, ...)
    HR_PRINTF(4, 5);

static int fail(hr_trace_reader_t *r, hr_err_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hr_err_vset(&r->fail, code, fmt, ap);
    va_end(ap);
    r->state = ST_FAILED;
    return hr_err_set(err, code, "%s", r->fail.msg);
}

static int read_header(hr_trace_reader_t *r, hr_err_t *err)
{
    int rc;
    size_t avail = in_ensure(r, 8, err, &rc);
    if (rc)
        return rc;
    const uint8_t *p = r->in + r->in_pos;
    if (avail < 8 || hr_le32(p) != HR_HEADER_SKIP_MAGIC ||
        (avail >= 16 && memcmp(p + 8, HR_HEADER_TAG, HR_HEADER_TAG_LEN) != 0)) {
        if (avail == 0)
            return hr_err_set(err, HR_EFORMAT, "%s: empty file, not a heapreplay trace", r->name);
        return hr_err_set(err, HR_EFORMAT,
                          "%s: byte 0: wrong magic, not a heapreplay trace (a text trace? use "
                          "'heapreplay pack' first)",
                          r->name);
    }
    uint32_t plen = hr_le32(p + 4);
    if (plen < HR_HEADER_TAG_LEN + 4 + 1 + 4 || plen > (1u << 20))
        return hr_err_set(err, HR_EFORMAT, "%s: byte 4: header length %u is not plausible",
                          r->name, plen);
    avail = in_ensure(r, 8 + (size_t)plen, err, &rc);
    if (rc)
        return rc;
    if (avail < 8 + (size_t)plen)
        return hr_err_set(err, HR_ETRUNC, "%s: cut short inside the header (%zu of %u bytes)",
                          r->name, avail, 8 + plen);
    p = r->in + r->in_pos + 8;
    if (memcmp(p, HR_HEADER_TAG, HR_HEADER_TAG_LEN) != 0)
        return hr_err_set(err, HR_EFORMAT, "%s: byte 8: wrong magic, not a heapreplay trace",
                          r->name);
    uint32_t crc = hr_le32(p + plen - 4);
    if (hr_crc32(0, p, plen - 4) != crc)
        return hr_err_set(err, HR_EFORMAT, "%s: bytes 8-%u: header checksum mismatch (corrupt)",
                          r->name, 8 + plen);
    unsigned version = p[8] | (unsigned)p[9] << 8;
    if (version != HR_TRACE_VERSION)
        return hr_err_set(err, HR_EVERSION,
                          "%s: byte 16: trace format version %u, this heapreplay reads version %d "
                          "only%s",
                          r->name, version, HR_TRACE_VERSION,
                          version > HR_TRACE_VERSION ? " (written by a newer heapreplay?)" : "");
    unsigned kind = p[10];
    if (kind > HR_KIND_GRAPH)
        return hr_err_set(err, HR_EFORMAT, "%s: byte 18: unknown trace kind %u", r->name, kind);
    hr_trace_header_init(&r->hdr, (int)kind);
    hr_trace_check_init(&r->chk, (int)kind);
    if (kind == HR_KIND_ALLOC && r->id_state &&
        hr_trace_check_external(&r->chk, r->id_state, r->id_state_arg, err))
        return err->code;
    const uint8_t *q = p + 12, *end = p + plen - 4;
    uint64_t nmeta;
    if (hr_varint_get(&q, end, &nmeta) != 1 || nmeta > HR_TRACE_META_MAX)
        return hr_err_set(err, HR_EFORMAT, "%s: byte 20: bad metadata count", r->name);
    for (uint64_t i = 0; i < nmeta; i++) {
        uint64_t kl, vl;
        char *kv[2] = {NULL, NULL};
        for (int j = 0; j < 2; j++) {
            uint64_t *len = j ? &vl : &kl;
            if (hr_varint_get(&q, end, len) != 1 || *len > (uint64_t)(end - q) ||
                memchr(q, 0, (size_t)*len)) {
                free(kv[0]);
                return hr_err_set(err, HR_EFORMAT, "%s: byte %ld: bad metadata entry %llu",
                                  r->name, (long)(q - p) + 8, (unsigned long long)i);
            }
            kv[j] = strndup((const char *)q, (size_t)*len);
            q += *len;
        }
        rc = kv[0] && kv[1] ? hr_trace_header_set(&r->hdr, kv[0], kv[1]) : HR_ENOMEM;
        free(kv[0]);
        free(kv[1]);
        if (rc)
            return hr_err_set(err, rc, "%s: cannot keep metadata entry %llu", r->name,
                              (unsigned long long)i);
    }
    if (q != end)
        return hr_err_set(err, HR_EFORMAT, "%s: byte %ld: unexpected bytes at the end of the header",
                          r->name, (long)(q - p) + 8);
    r->in_pos += 8 + plen;
    return HR_OK;
}

static int reader_new(hr_trace_reader_t **out, const char *name, const hr_trace_read_opts_t *opts,
                      hr_err_t *err)
{
    hr_trace_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    r->fd = -1;
    r->name = strdup(name);
    r->dctx = ZSTD_createDCtx();
    r->partial = opts ? opts->partial : 0;
    r->id_state = opts ? opts->id_state : NULL;
    r->id_state_arg = opts ? opts->id_state_arg : NULL;
    r->type_off = calloc(64, sizeof *r->type_off);
    r->type_cap = 64;
    if (!r->name || !r->dctx || !r->type_off) {
        hr_trace_close(r);
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    }
    ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, 27);
    *out = r;
    return HR_OK;
}

int hr_trace_open(hr_trace_reader_t **out, const char *path, const hr_trace_read_opts_t *opts,
                  hr_err_t *err)
{
    *out = NULL;
    hr_trace_reader_t *r;
    int rc = reader_new(&r, path, opts, err);
    if (rc)
        return rc;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = hr_err_set(err, HR_EIO, "%s: cannot open: %s", path, strerror(errno));
        hr_trace_close(r);
        return rc;
    }
    if ((rc = read_header(r, err))) {
        hr_trace_close(r);
        return rc;
    }
    *out = r;
    return HR_OK;
}

int hr_trace_open_mem(hr_trace_reader_t **out, const void *data, size_t len, const char *name,
                      const hr_trace_read_opts_t *opts, hr_err_t *err)
{
    *out = NULL;
    hr_trace_reader_t *r;
    int rc = reader_new(&r, name, opts, err);
    if (rc)
        return rc;
    r->in = data;
    r->in_len = len;
    r->eof = 1;
    if ((rc = read_header(r, err))) {
        hr_trace_close(r);
        return rc;
    }
    *out = r;
    return HR_OK;
}

void hr_trace_close(hr_trace_reader_t *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->name);
    hr_buf_free(&r->inbuf);
    hr_buf_free(&r->frame);
    hr_buf_free(&r->type_names);
    free(r->type_off);
    hr_trace_header_free(&r->hdr);
    hr_trace_check_free(&r->chk);
    ZSTD_freeDCtx(r->dctx);
    free(r);
}

const hr_trace_header_t *hr_trace_header(const hr_trace_reader_t *r) { return &r->hdr; }
const hr_trace_status_t *hr_trace_status(const hr_trace_reader_t *r) { return &r->st; }

int hr_trace_ids_external(const hr_trace_reader_t *r) { return r->chk.ext != NULL; }

const char *hr_trace_type_name(const hr_trace_reader_t *r, uint64_t id, size_t *len)
{
    if (id >= r->st.types)
        return NULL;
    *len = (size_t)(r->type_off[id + 1] - r->type_off[id]);
    return (const char *)r->type_names.data + r->type_off[id];
}

/* {==== Frames ==== */

/* The trace ends here without an END record: cut short. */
static int cut_short(hr_trace_reader_t *r, hr_err_t *err, const char *how)
{
    r->st.cut_short = 1;
    r->st.ids = r->chk.next_id;
    snprintf(r->st.cut_msg, sizeof r->st.cut_msg,
             "%s: cut short: %s; readable up to event %llu (%llu complete frames, %llu bytes)",
             r->name, how, (unsigned long long)r->st.events, (unsigned long long)r->st.frames,
             (unsigned long long)r->st.file_bytes);
    if (r->partial) {
        r->state = ST_DONE;
        return HR_OK;
    }
    return fail(r, err, HR_ETRUNC, "%s", r->st.cut_msg);
}

/* Load the next data frame into `frame`. Returns HR_OK with state IN_FRAME, or with state DONE
 * when the input ends cleanly after a cut (partial mode), or an error. */
static int load_frame(hr_trace_reader_t *r, hr_err_t *err)
{
    int rc;
    char how[160];
    for (;;) {
        size_t avail = in_ensure(r, 8, err, &rc);
        if (rc)
            return fail(r, err, rc, "%s", err ? err->msg : "read error");
        if (avail == 0)
            return cut_short(r, err, "the file ends without an end record");
        r->frame_off = in_offset(r);
        if (avail < 4) {
            snprintf(how, sizeof how, "%zu stray bytes at byte %llu", avail,
                     (unsigned long long)r->frame_off);
            return cut_short(r, err, how);
        }
        uint32_t magic = hr_le32(r->in + r->in_pos);
        if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) {
            if (magic == HR_HEADER_SKIP_MAGIC)
                return fail(r, err, HR_EFORMAT, "%s: byte %llu: a second trace header (two traces "
                            "concatenated?)", r->name, (unsigned long long)r->frame_off);
            if (avail < 8) {
                snprintf(how, sizeof how, "a skippable frame header at byte %llu is incomplete",
                         (unsigned long long)r->frame_off);
                return cut_short(r, err, how);
            }
            uint64_t skip = 8 + (uint64_t)hr_le32(r->in + r->in_pos + 4);
            while (skip > 0) { /* skip in window-sized steps */
                size_t have = in_ensure(r, 1, err, &rc);
                if (rc)
                    return fail(r, err, rc, "%s", err ? err->msg : "read error");
                if (have == 0) {
                    snprintf(how, sizeof how, "a skippable frame at byte %llu is incomplete",
                             (unsigned long long)r->frame_off);
                    return cut_short(r, err, how);
                }
                size_t step = have < skip ? have : (size_t)skip;
                r->in_pos += step;
                skip -= step;
            }
            r->st.skipped++;
            r->st.file_bytes = in_offset(r);
            continue;
        }
        if (magic != HR_ZSTD_MAGIC)
            return fail(r, err, HR_EFORMAT,
                        "%s: frame %llu at byte %llu: not a zstd frame (magic %08x), corrupt trace",
                        r->name, (unsigned long long)r->st.frames,
                        (unsigned long long)r->frame_off, magic);
        break;
    }
    /* The zstd frame header (RFC 8878, at most 18 bytes) tells the decoded size; its descriptor
     * byte says whether a checksum and a dictionary id follow. */
    size_t avail = in_ensure(r, 18, err, &rc);
    if (rc)
        return fail(r, err, rc, "%s", err ? err->msg : "read error");
    const uint8_t *fh = r->in + r->in_pos;
    unsigned desc = avail > 4 ? fh[4] : 0;
    unsigned long long csize = ZSTD_getFrameContentSize(fh, avail);
    if (csize == ZSTD_CONTENTSIZE_ERROR) {
        if (avail < 18) {
            snprintf(how, sizeof how, "frame %llu at byte %llu is incomplete",
                     (unsigned long long)r->st.frames, (unsigned long long)r->frame_off);
            return cut_short(r, err, how);
        }
        return fail(r, err, HR_EFORMAT, "%s: frame %llu at byte %llu: bad zstd frame header",
                    r->name, (unsigned long long)r->st.frames, (unsigned long long)r->frame_off);
    }
    if (csize == ZSTD_CONTENTSIZE_UNKNOWN || !(desc & 0x04) || (desc & 0x03))
        return fail(r, err, HR_EFORMAT,
                    "%s: frame %llu at byte %llu: a data frame must declare its size and carry a "
                    "checksum, without a dictionary",
                    r->name, (unsigned long long)r->st.frames, (unsigned long long)r->frame_off);
    if (csize > HR_TRACE_FRAME_LIMIT || csize == 0)
        return fail(r, err, HR_EFORMAT,
                    "%s: frame %llu at byte %llu: decoded size %llu outside 1 .. 64 MiB (corrupt)",
                    r->name, (unsigned long long)r->st.frames, (unsigned long long)r->frame_off,
                    csize);
    size_t fsize = (size_t)csize;
    r->frame.len = 0;
    if (hr_buf_reserve(&r->frame, fsize + 16))
        return fail(r, err, HR_ENOMEM, "%s: out of memory for a frame of %zu bytes", r->name, fsize);
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    ZSTD_outBuffer out = {r->frame.data, fsize, 0};
    for (;;) {
        size_t avail = in_ensure(r, 1, err, &rc);
        if (rc)
            return fail(r, err, rc, "%s", err ? err->msg : "read error");
        if (avail == 0) {
            snprintf(how, sizeof how, "frame %llu at byte %llu is incomplete (%llu bytes present)",
                     (unsigned long long)r->st.frames, (unsigned long long)r->frame_off,
                     (unsigned long long)(in_offset(r) - r->frame_off));
            return cut_short(r, err, how);
        }
        ZSTD_inBuffer in = {r->in + r->in_pos, avail, 0};
        size_t z = ZSTD_decompressStream(r->dctx, &out, &in);
        r->in_pos += in.pos;
        if (ZSTD_isError(z))
            return fail(r, err, HR_EFORMAT, "%s: frame %llu at byte %llu: corrupt: %s",
                        r->name, (unsigned long long)r->st.frames,
                        (unsigned long long)r->frame_off, ZSTD_getErrorName(z));
        if (z == 0)
            break;
        if (in.pos == 0 && out.pos == out.size)
            return fail(r, err, HR_EFORMAT, "%s: frame %llu at byte %llu: corrupt: more data "
                        "than its declared size", r->name, (unsigned long long)r->st.frames,
                        (unsigned long long)r->frame_off);
        /* Make sure the next in_ensure reads more instead of returning the same bytes. */
        if (in.pos == avail)
            continue;
    }
    if (out.pos != fsize)
        return fail(r, err, HR_EFORMAT, "%s: frame %llu at byte %llu: decoded %zu bytes, declared %zu",
                    r->name, (unsigned long long)r->st.frames, (unsigned long long)r->frame_off,
                    out.pos, fsize);
    r->frame.len = fsize;
    r->fpos = 0;
    r->st.payload_bytes += fsize;
    r->st.file_bytes = in_offset(r);
    /* The FRAME record restates where this frame belongs. */
    const uint8_t *p = r->frame.data, *end = p + fsize;
    uint64_t v[4];
    int ok = *p++ == HR_W_FRAME;
    for (int i = 0; ok && i < 4; i++)
        ok = hr_varint_get(&p, end, &v[i]) == 1;
    if (!ok)
        return fail(r, err, HR_EFORMAT, "%s: frame %llu at byte %llu: payload does not start with "
                    "a frame record", r->name, (unsigned long long)r->st.frames,
                    (unsigned long long)r->frame_off);
    if (v[0] != r->st.frames || v[1] != r->st.events || v[2] != r->chk.next_id ||
        v[3] != r->chk.ntypes)
        return fail(r, err, HR_EFORMAT,
                    "%s: frame %llu at byte %llu: says it is frame %llu starting at event %llu "
                    "with %llu ids and %llu types, but %llu events, %llu ids and %llu types precede "
                    "it (a frame is missing, repeated or out of order)",
                    r->name, (unsigned long long)r->st.frames, (unsigned long long)r->frame_off,
                    (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
                    (unsigned long long)v[3], (unsigned long long)r->st.events,
                    (unsigned long long)r->chk.next_id, (unsigned long long)r->chk.ntypes);
    r->fpos = (size_t)(p - r->frame.data);
    r->prev = r->chk.next_id - 1;
    r->st.frames++;
    r->state = ST_IN_FRAME;
    return HR_OK;
}

/* {==== Events ==== */

static int add_type(hr_trace_reader_t *r, const uint8_t *s, size_t len)
{
    if (r->st.types + 2 > r->type_cap) {
        uint64_t *p = realloc(r->type_off, 2 * r->type_cap * sizeof *p);
        if (!p)
            return HR_ENOMEM;
        r->type_off = p;
        r->type_cap *= 2;
    }
    if (hr_buf_append(&r->type_names, s, len))
        return HR_ENOMEM;
    r->st.types++;
    r->type_off[r->st.types] = r->type_names.len;
    return HR_OK;
}

/* Report an error at the current position of the current frame. */
static int fail_at(hr_trace_reader_t *r, hr_err_t *err, int code, size_t payload_pos,
                   uint64_t event, const char *msg)
{
    return fail(r, err, code, "%s: frame %llu at byte %llu, payload byte %zu, event %llu: %s",
                r->name, (unsigned long long)(r->st.frames - 1), (unsigned long long)r->frame_off,
                payload_pos, (unsigned long long)event, msg);
}

#define GETV(dst)                                                                                  \
    do {                                                                                           \
        if (HR_UNLIKELY(hr_varint_get(&p, end, &(dst)) != 1))                                      \
            goto bad_varint;                                                                       \
    } while (0)

/* Decode an id operand (see hr_wire_id_operand) into `dst`; ids that do not exist yet (or would
 * be negative) go to bad_id with the candidate in `bad`. */
#define GETID(dst, from_prev)                                                                      \
    do {                                                                                           \
        GETV(x);                                                                                   \
        bad = (from_prev) ? (int64_t)(prev + (uint64_t)hr_unzigzag(x)) : (int64_t)(newest - x);   \
        if (HR_UNLIKELY(bad < 0 || (uint64_t)bad >= chk->next_id))                                 \
            goto bad_id;                                                                           \
        (dst) = (uint64_t)bad;                                                                     \
    } while (0)

/* {==== The cursor (hr_trace_fast.h) ==== */

/* A cursor at p in the current frame, with the checker's state as it is now. */
static hr_trace_cursor_t cursor_at(const hr_trace_reader_t *r, const uint8_t *p, uint64_t prev)
{
    hr_trace_cursor_t c = {p, r->frame.data + r->frame.len, prev, r->chk.next_id, r->chk.ntypes,
                           r->chk.state, r->chk.state_cap, r->chk.ext, r->chk.ext_arg,
                           r->chk.kind == HR_KIND_GRAPH, 0};
    return c;
}

hr_trace_cursor_t hr_trace_cursor_take(hr_trace_reader_t *r)
{
    hr_trace_cursor_t c = {0};
    if (r->state != ST_IN_FRAME || r->fpos >= r->frame.len)
        return c;
    return cursor_at(r, r->frame.data + r->fpos, r->prev);
}

void hr_trace_cursor_give(hr_trace_reader_t *r, hr_trace_cursor_t c)
{
    if (!c.p)
        return;
    r->fpos = (size_t)(c.p - r->frame.data);
    r->prev = c.prev;
    r->chk.next_id = c.next_id;
    r->st.events += c.events;
    r->st.ids = c.next_id;
    if (r->fpos == r->frame.len) /* used up: the END record is the only way out */
        r->state = ST_BETWEEN;
}

int hr_trace_read(hr_trace_reader_t *r, hr_event_t *evs, size_t cap, size_t *n_out, hr_err_t *err)
{
    size_t n = 0;
    *n_out = 0;
    int rc;
    if (r->state == ST_FAILED)
        return hr_err_set(err, r->fail.code, "%s", r->fail.msg);
    hr_trace_check_t *chk = &r->chk;
    if (chk->ext && cap > 1)
        cap = 1; /* the consumer applies each event before the checker asks it about the next */
    while (n < cap && r->state != ST_DONE) {
        if (r->state == ST_BETWEEN) {
            if (n > 0)
                break; /* deliver what we have before touching the next frame */
            if ((rc = load_frame(r, err)))
                return rc;
            continue;
        }
        const uint8_t *base = r->frame.data, *p = base + r->fpos, *end = base + r->frame.len;
        uint64_t prev = r->prev;
        hr_trace_cursor_t c = cursor_at(r, p, prev);
        while (n < cap && c.p < end) {
            hr_event_t *ev = &evs[n];
            /* The fast path is the cursor's (hr_trace_fast.h): the commonest events, with every
             * check they need. It stops without consuming at anything else, which is decoded
             * below and judged by the checker (which also words every error). */
            hr_cur_event_t ce = {0};
            int cop = hr_trace_cursor_next(&c, &ce);
            if (cop) {
                *ev = (hr_event_t){.op = (uint8_t)cop, .domain = ce.domain, .flags = ce.flags,
                                   .tag = ce.tag, .a = ce.a, .b = ce.b};
                n++;
                continue;
            }
            chk->next_id = c.next_id;
            p = c.p;
            prev = c.prev;
            const uint8_t *start = p;
            uint64_t newest = chk->next_id - 1, x, y;
            int64_t bad = 0;
            unsigned op = *p++;
            ev->op = 0, ev->domain = 0, ev->flags = 0, ev->align_log2 = 0, ev->tag = 0;
            ev->a = 0, ev->b = 0;
            switch (op) {
            case HR_W_ALLOC + 0: case HR_W_ALLOC + 1: case HR_W_ALLOC + 2: case HR_W_ALLOC + 3:
                ev->op = HR_OP_ALLOC;
                ev->domain = (uint8_t)(op - HR_W_ALLOC);
                ev->a = chk->next_id;
                GETV(ev->b);
                break;
            case HR_W_ALLOC_FLAGS + 0: case HR_W_ALLOC_FLAGS + 1:
            case HR_W_ALLOC_FLAGS + 2: case HR_W_ALLOC_FLAGS + 3:
                ev->op = HR_OP_ALLOC;
                ev->domain = (uint8_t)(op - HR_W_ALLOC_FLAGS);
                ev->a = chk->next_id;
                GETV(ev->b);
                GETV(x);
                if (x > 0xff)
                    goto bad_value;
                ev->flags = (uint8_t)x;
                if (x & HR_F_TYPED) {
                    GETV(y);
                    if (y > UINT32_MAX)
                        goto bad_value;
                    ev->tag = (uint32_t)y;
                }
                if (x & HR_F_ALIGNED) {
                    GETV(y);
                    if (y > 63)
                        goto bad_value;
                    ev->align_log2 = (uint8_t)y;
                }
                break;
            case HR_W_FREE:
            case HR_W_FREE | HR_W_FROM_PREV:
                ev->op = HR_OP_FREE;
                GETID(ev->a, op & HR_W_FROM_PREV);
                break;
            case HR_W_INCREF: case HR_W_INCREF | HR_W_FROM_PREV:
                ev->op = HR_OP_INCREF;
                GETID(ev->a, op & HR_W_FROM_PREV);
                break;
            case HR_W_DECREF: case HR_W_DECREF | HR_W_FROM_PREV:
                ev->op = HR_OP_DECREF;
                GETID(ev->a, op & HR_W_FROM_PREV);
                break;
            case HR_W_DIED: case HR_W_DIED | HR_W_FROM_PREV:
                ev->op = HR_OP_DIED;
                GETID(ev->a, op & HR_W_FROM_PREV);
                break;
            case HR_W_REALLOC: case HR_W_REALLOC | HR_W_FROM_PREV:
                ev->op = HR_OP_REALLOC;
                GETID(ev->a, op & HR_W_FROM_PREV);
                GETV(ev->b);
                break;
            case HR_W_LINK: case HR_W_LINK | HR_W_FROM_PREV:
            case HR_W_UNLINK: case HR_W_UNLINK | HR_W_FROM_PREV:
                ev->op = (op & ~HR_W_FROM_PREV) == HR_W_LINK ? HR_OP_LINK : HR_OP_UNLINK;
                GETID(ev->a, op & HR_W_FROM_PREV);
                GETV(y);
                bad = (int64_t)(ev->a + (uint64_t)hr_unzigzag(y));
                if (bad < 0 || (uint64_t)bad >= chk->next_id)
                    goto bad_id;
                ev->b = (uint64_t)bad;
                break;
            case HR_W_TYPE:
                ev->op = HR_OP_TYPE;
                GETV(x);
                GETV(ev->a);
                if (x > UINT32_MAX || ev->a > (uint64_t)(end - p))
                    goto bad_value;
                ev->tag = (uint32_t)x;
                ev->str = p;
                p += ev->a;
                break;
            case HR_W_END:
                GETV(x);
                {
                    uint64_t ids, types;
                    GETV(ids);
                    GETV(types);
                    if (x != r->st.events + n || ids != chk->next_id || types != chk->ntypes) {
                        char m[256];
                        snprintf(m, sizeof m, "end record says %llu events, %llu ids, %llu types "
                                 "but the trace has %llu, %llu, %llu",
                                 (unsigned long long)x, (unsigned long long)ids,
                                 (unsigned long long)types, (unsigned long long)(r->st.events + n),
                                 (unsigned long long)chk->next_id,
                                 (unsigned long long)chk->ntypes);
                        r->fpos = (size_t)(start - base);
                        return fail_at(r, err, HR_EFORMAT, r->fpos, r->st.events + n, m);
                    }
                }
                if (p != end) {
                    r->fpos = (size_t)(p - base);
                    return fail_at(r, err, HR_EFORMAT, r->fpos, r->st.events + n,
                                   "garbage after the end record inside the last frame");
                }
                {
                    size_t more = in_ensure(r, 1, err, &rc);
                    if (rc)
                        return fail(r, err, rc, "%s", err ? err->msg : "read error");
                    if (more) {
                        r->st.events += n;
                        *n_out = n;
                        return fail(r, err, HR_EFORMAT,
                                    "%s: byte %llu: garbage after the end of the trace (%s%zu "
                                    "bytes follow the end record)",
                                    r->name, (unsigned long long)in_offset(r),
                                    r->eof ? "" : "at least ", more);
                    }
                }
                r->fpos = (size_t)(p - base);
                r->state = ST_DONE;
                r->st.complete = 1;
                r->st.events += n;
                r->st.ids = chk->next_id;
                *n_out = n;
                return HR_OK;
            default:
                if (op < HR_W_SIZED) {
                    char m[128];
                    snprintf(m, sizeof m, "unknown opcode 0x%02x (written by a newer heapreplay, "
                             "or corrupt)", op);
                    return fail_at(r, err, HR_EVERSION, (size_t)(start - base), r->st.events + n,
                                   m);
                }
                GETV(x);
                if (x > (uint64_t)(end - p))
                    goto bad_value;
                {
                    const uint8_t *q = p, *qend = p + x;
                    p = qend;
                    switch (op) {
                    case HR_W_ARENA_MAP:
                    case HR_W_ARENA_UNMAP:
                        ev->op = op == HR_W_ARENA_MAP ? HR_OP_ARENA_MAP : HR_OP_ARENA_UNMAP;
                        if (hr_varint_get(&q, qend, &ev->a) != 1 ||
                            hr_varint_get(&q, qend, &ev->b) != 1)
                            goto bad_value;
                        break;
                    case HR_W_GC_BEGIN:
                    case HR_W_GC_END:
                        ev->op = op == HR_W_GC_BEGIN ? HR_OP_GC_BEGIN : HR_OP_GC_END;
                        if (hr_varint_get(&q, qend, &y) != 1 || y > 0xff)
                            goto bad_value;
                        ev->tag = (uint32_t)y;
                        if (op == HR_W_GC_END && (hr_varint_get(&q, qend, &ev->a) != 1 ||
                                                  hr_varint_get(&q, qend, &ev->b) != 1))
                            goto bad_value;
                        break;
                    case HR_W_GC_CONTROL:
                        ev->op = HR_OP_GC_CONTROL;
                        if (hr_varint_get(&q, qend, &y) != 1 || y >= HR_GC_ACTIONS)
                            goto bad_value;
                        ev->tag = (uint32_t)y;
                        if (y == HR_GC_COLLECT && hr_varint_get(&q, qend, &ev->a) != 1)
                            goto bad_value;
                        if (y == HR_GC_THRESHOLD) {
                            uint64_t t1, t2;
                            if (hr_varint_get(&q, qend, &ev->a) != 1 ||
                                hr_varint_get(&q, qend, &t1) != 1 ||
                                hr_varint_get(&q, qend, &t2) != 1 || t1 > UINT32_MAX ||
                                t2 > UINT32_MAX)
                                goto bad_value;
                            ev->b = t1 | t2 << 32;
                        }
                        break;
                    case HR_W_GC_TRACK:
                        ev->op = HR_OP_GC_TRACK;
                        if (hr_varint_get(&q, qend, &y) != 1 || y >= HR_TRACK_ACTIONS ||
                            hr_varint_get(&q, qend, &ev->a) != 1)
                            goto bad_value;
                        ev->tag = (uint32_t)y;
                        ev->b = 0;
                        if (y == HR_TRACK && hr_varint_get(&q, qend, &ev->b) != 1)
                            goto bad_value;
                        break;
                    case HR_W_STATS:
                        ev->op = HR_OP_STATS;
                        if (hr_varint_get(&q, qend, &y) != 1 || y > UINT32_MAX)
                            goto bad_value;
                        ev->tag = (uint32_t)y;
                        ev->a = (uint64_t)(qend - q);
                        ev->str = q;
                        q = qend;
                        break;
                    case HR_W_PHASE:
                        ev->op = HR_OP_PHASE;
                        ev->a = x;
                        ev->str = q;
                        q = qend;
                        break;
                    default:
                        ev->op = HR_OP_UNKNOWN;
                        ev->tag = op;
                        ev->a = x;
                        ev->str = q;
                        q = qend;
                        r->st.skipped++;
                        break;
                    }
                    if (q != qend)
                        goto bad_value;
                }
                break;
            }
            /* The general path: every rule of the checker. */
            {
                hr_err_t cerr;
                cerr.code = HR_OK;
                if (HR_UNLIKELY(hr_trace_check_event(chk, ev, &cerr) != HR_OK))
                    return fail_at(r, err, cerr.code, (size_t)(start - base), r->st.events + n,
                                   cerr.msg);
            }
            switch (ev->op) {
            case HR_OP_ALLOC: case HR_OP_FREE: case HR_OP_REALLOC: case HR_OP_INCREF:
            case HR_OP_DECREF: case HR_OP_DIED:
                prev = ev->a;
                break;
            case HR_OP_LINK: case HR_OP_UNLINK:
                prev = ev->b;
                break;
            case HR_OP_TYPE:
                if (add_type(r, ev->str, (size_t)ev->a))
                    return fail_at(r, err, HR_ENOMEM, (size_t)(start - base), r->st.events + n,
                                   "out of memory for the type table");
                break;
            }
            c = cursor_at(r, p, prev); /* the checker may have grown its bitmap or types */
            n++;
            continue;
        bad_varint:
            return fail_at(r, err, HR_EFORMAT, (size_t)(start - base), r->st.events + n,
                           "malformed varint");
        bad_value:
            return fail_at(r, err, HR_EFORMAT, (size_t)(start - base), r->st.events + n,
                           "malformed record (a length or value out of range)");
        bad_id: {
            char m[160];
            snprintf(m, sizeof m, "%s of id %lld that was never allocated (%llu ids exist)",
                     hr_op_name(ev->op), (long long)bad, (unsigned long long)chk->next_id);
            return fail_at(r, err, HR_EFORMAT, (size_t)(start - base), r->st.events + n, m);
        }
        }
        chk->next_id = c.next_id;
        r->prev = c.prev;
        r->fpos = (size_t)(c.p - base);
        if (c.p == end) /* the frame is used up; the END record is the only way out */
            r->state = ST_BETWEEN;
    }
    r->st.events += n;
    r->st.ids = chk->next_id;
    *n_out = n;
    return HR_OK;
}

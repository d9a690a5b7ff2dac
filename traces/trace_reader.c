/* trace_reader.c: decodes a trace file (or memory image) into batches of checked events.
 *
 * Theory of operation
 *   The input is a zstd multi-frame stream: a skippable header frame, then data frames. The reader
 *   has two halves that meet at a *slot*:
 *
 *     producer:  file --read--> input window --ZSTD_decompressStream--> slot (one whole frame,
 *                                                                     checksum verified)
 *     consumer:  slot --FRAME record check, decode, checker--> events (hr_trace_read, cursor)
 *
 *   The producer knows only the file: it finds the next data frame (skipping skippable frames),
 *   decompresses it whole into a slot, and notes what the file holds right after it (the END
 *   record's "garbage after the end" check needs that). When it cannot produce a frame it fills
 *   the slot with *why* instead: cut short (and how), or an error whose message it words itself
 *   (file, frame number, byte offset: all producer knowledge). It then stops for good. The
 *   consumer takes slots in file order and alone knows the events, ids and types, so it alone
 *   checks the FRAME record, words "cut short ... readable up to event N", and reports a slot's
 *   error when it reaches it, after every event of the frames before it.
 *
 *   Prefetch: by default the producer runs on a thread of its own, so the next frame is
 *   decompressed while the consumer decodes this one (zstd is about a quarter of the replay's
 *   instructions on generated traces). Two slots: the one the consumer holds (its events' strings
 *   and the cursor point into it) and the one the producer fills; the producer waits when both are
 *   taken. Slots are numbered in file order; `produced` counts the slots filled, `consumed` the
 *   slots taken, `released` the slots the consumer is done with (all but the one it holds), and
 *   the producer fills slot k (in slots[(k - ring0) % 2]) only when k < released + 2. Until the
 *   thread runs, the consumer calls the producer itself, into slots[0]; it starts the thread
 *   after such a frame when more input follows it and the frame is large enough to repay the
 *   hand-overs (PREFETCH_MIN; so a one-frame trace never starts it, and the first frame's buffers
 *   are the caller's thread's allocations). The thread stops after its final slot (cut short or
 *   an error), or when the reader is closed (hr_trace_close asks it to stop, wakes it, joins it;
 *   a frame in progress is abandoned between two decompression steps). Without the thread
 *   (hr_trace_read_opts_t.threads = HR_READ_NO_THREADS, or HEAPREPLAY_READ_THREADS=0) the
 *   consumer calls the producer for every frame. Both ways run the same producer and consumer
 *   code, so events, errors and status are the same; the trace tests read traces both ways and
 *   compare.
 *
 *   Consequences:
 *     - a flipped bit anywhere in a data frame is reported before any of that frame's events;
 *     - a trace cut short (killed writer) yields every complete frame, then says where it stops;
 *     - memory is bounded by two frames (64 MiB each at most) and the input window, whatever the
 *       trace length (one frame without the thread).
 *   Every decoded event goes through the same checker as the writer's, so consumers see only
 *   valid events. Errors carry: file, frame number and its byte offset, payload byte, event index.
 *
 * Consumer states
 *   BETWEEN  no frame held: the next call takes the next slot (or the end of the file)
 *   IN_FRAME frame[fpos..flen) holds undecoded events of frame number `frames - 1`
 *   DONE     END read and verified, nothing after it
 *   FAILED   an error was reported; every later call repeats it
 *
 * Ownership: before the thread starts, and without it, everything belongs to the caller's
 * thread. While it runs, the producer half of the struct (marked "producer" below) belongs to the
 * thread; `mu` guards the slot counters; a slot belongs to whoever its number says.
 */
#include "hr_trace.h"
#include "trace_internal.h"
#include "trace_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

enum { ST_BETWEEN, ST_IN_FRAME, ST_DONE, ST_FAILED };

#define IN_CHUNK (1u << 20)
#define NSLOT 2 /* the consumer's frame and the next one: memory stays at two frames */
/* The smallest first frame (decoded bytes) for which the default starts the thread: each frame
 * handed over costs about two thread wake-ups (some microseconds), which a frame of the writers'
 * default size (1 MiB, some 10^5 events) repays a thousand times, and a test's 512-byte frames
 * never. */
#define PREFETCH_MIN ((size_t)64 << 10)

/* What the producer hands over: one data frame, or why there is none. */
enum { SLOT_FRAME, SLOT_CUT, SLOT_FAIL };

typedef struct slot {
    int kind;            /* SLOT_FRAME, SLOT_CUT (the input ends before an END record), SLOT_FAIL */
    hr_buf_t buf;        /* owned: SLOT_FRAME's decoded payload (buf.len bytes, checksum checked) */
    hr_err_t err;        /* SLOT_FAIL: code and the whole message */
    char how[160];       /* SLOT_CUT: how the input ends */
    uint64_t frame_off;  /* file offset of the frame (SLOT_FRAME) */
    uint64_t file_bytes; /* bytes of the file consumed when the slot was filled */
    uint64_t skipped;    /* skippable frames skipped before it (since the previous slot) */
    size_t after;        /* SLOT_FRAME: input bytes available right after the frame ... */
    int after_eof;       /*   ... and whether the input ends there (the window's eof flag) */
    hr_err_t after_err;  /*   ... or the read error found looking (code != HR_OK) */
} slot_t;

struct hr_trace_reader {
    char *name;                 /* owned: file name for messages (read-only once open) */
    int partial;
    hr_id_state_fn id_state;    /* the consumer's id states (hr_trace_read_opts_t), or NULL */
    void *id_state_arg;
    /* producer */
    int fd;                     /* -1 in memory mode */
    const uint8_t *in;          /* input window: in[0..in_len) holds file bytes from in_base */
    size_t in_len, in_pos;      /* bytes in the window; next unread byte */
    uint64_t in_base;           /* file offset of in[0] */
    hr_buf_t inbuf;             /* owned window storage in file mode */
    int eof;                    /* no more bytes beyond the window */
    ZSTD_DCtx *dctx;
    uint64_t p_frames;          /* data frames produced */
    uint64_t p_file_bytes;      /* what st.file_bytes says once the consumer gets this far */
    hr_err_t p_pending;         /* a read error found after the last frame: the next slot's */
    atomic_int stop;            /* hr_trace_close asks the thread to stop */
    /* the hand-over */
    slot_t slots[NSLOT];
    int want_thread;            /* prefetch on a thread (opts and the environment) */
    int threaded;               /* the thread runs (started and not yet joined) */
    pthread_t thread;
    pthread_mutex_t mu;         /* guards the three counters while `threaded` */
    pthread_cond_t cv;          /* any change of them */
    uint64_t produced, consumed, released; /* slot numbers: see the top comment */
    uint64_t ring0;             /* slot number that went to slots[0] when the thread started */
    int held_peak;              /* most frames held at once (produced - released), under mu */
    /* consumer */
    int state;
    hr_err_t fail;              /* the error repeated in ST_FAILED */
    hr_trace_header_t hdr;
    hr_trace_check_t chk;
    const uint8_t *frame;       /* the held slot's payload (borrowed from slots[]) */
    size_t flen;                /* its length */
    size_t after;               /* its slot's after, after_eof, after_err (the END check) */
    int after_eof;
    const hr_err_t *after_err;
    size_t fpos;                /* decode position in frame */
    uint64_t prev;              /* the id the last id-naming event named (per frame) */
    uint64_t frame_off;         /* file offset of the current frame */
    hr_buf_t type_names;        /* concatenated type names */
    uint64_t *type_off;         /* owned: type_off[i] = start of name i; type_off[ntypes] = end */
    size_t type_cap;
    hr_trace_status_t st;
};

/* {==== Input window (producer) ==== */

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

/* What a file that is not a binary trace looks like, from the bytes already read (at most the
 * first read's worth; no more are read for this): a hint for the error, or "". */
static const char *not_a_trace_hint(const uint8_t *p, size_t avail)
{
    if (avail >= 4 && hr_le32(p) == ZSTD_MAGICNUMBER)
        return " (it is a zstd stream: a trace compressed again? 'zstd -d' it first)";
    size_t n = avail < 65536 ? avail : 65536, i = 0; /* comments before the header included */
    for (; i < n; i++)
        if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r')
            return "";
    /* Plain text: a text trace's first line that is neither blank nor a comment is its header
     * line (a Markdown file's '# title' alone is no sign). */
    static const char tag[] = "heapreplay-trace";
    for (i = 0; i < n;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
            i++;
        if (i < n && (p[i] == '#' || p[i] == '\n')) {
            while (i < n && p[i] != '\n')
                i++;
            i++;
            continue;
        }
        if (n - i >= sizeof tag - 1 && !memcmp(p + i, tag, sizeof tag - 1))
            return " (it looks like a text trace: 'heapreplay pack' it first)";
        break;
    }
    return "";
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
        if (avail < 8 && avail >= 4 && hr_le32(p) == HR_HEADER_SKIP_MAGIC)
            return hr_err_set(err, HR_ETRUNC, "%s: cut short inside the header (%zu of at least "
                              "8 bytes)", r->name, avail);
        return hr_err_set(err, HR_EFORMAT, "%s: byte 0: wrong magic, not a heapreplay trace%s",
                          r->name, not_a_trace_hint(p, r->in_len - r->in_pos));
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
    if (p[11] != 0)
        return hr_err_set(err, HR_EFORMAT, "%s: byte 19: reserved header byte is %u, not 0 (corrupt, "
                          "or written by a newer heapreplay?)", r->name, p[11]);
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
        long at = (long)(q - p) + 8; /* the entry's first byte in the file */
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
        if (kv[0] && hr_trace_header_get(&r->hdr, kv[0])) {
            rc = hr_err_set(err, HR_EFORMAT, "%s: byte %ld: metadata entry %llu repeats the key "
                            "'%s' (a header says each thing once)", r->name, at,
                            (unsigned long long)i, kv[0]);
            free(kv[0]);
            free(kv[1]);
            return rc;
        }
        rc = kv[0] && kv[1] ? hr_trace_header_set(&r->hdr, kv[0], kv[1]) : HR_ENOMEM;
        free(kv[0]);
        free(kv[1]);
        if (rc == HR_EUSAGE) /* a key that is not a bare word, or too many entries */
            return hr_err_set(err, HR_EFORMAT, "%s: byte %ld: metadata entry %llu: bad key "
                              "(keys are bare words) or too many entries", r->name, at,
                              (unsigned long long)i);
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

/* Whether to prefetch on a thread: the option, else HEAPREPLAY_READ_THREADS (0 no, 1 yes), else
 * PREFETCH_AUTO: yes when the first frame is large enough (prefetch_min). */
enum { PREFETCH_NO, PREFETCH_YES, PREFETCH_AUTO };

static int want_thread(const hr_trace_read_opts_t *opts, int *want, hr_err_t *err)
{
    int on = -1, rc;
    if (opts && opts->threads)
        on = opts->threads > 0;
    else if ((rc = hr_env_switch("HEAPREPLAY_READ_THREADS", &on, err)))
        return rc;
    *want = on < 0 ? PREFETCH_AUTO : on ? PREFETCH_YES : PREFETCH_NO;
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
    int rc = want_thread(opts, &r->want_thread, err);
    if (rc) {
        hr_trace_close(r);
        return rc;
    }
    atomic_init(&r->stop, 0);
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

/* Stop the producer thread if it runs: ask, wake, join. */
static void thread_stop(hr_trace_reader_t *r)
{
    if (!r->threaded)
        return;
    atomic_store(&r->stop, 1);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    r->threaded = 0;
}

void hr_trace_close(hr_trace_reader_t *r)
{
    if (!r)
        return;
    thread_stop(r);
    if (r->fd >= 0)
        close(r->fd);
    free(r->name);
    hr_buf_free(&r->inbuf);
    for (int i = 0; i < NSLOT; i++)
        hr_buf_free(&r->slots[i].buf);
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

int hr_trace_prefetching(const hr_trace_reader_t *r) { return r->threaded; }

const char *hr_trace_type_name(const hr_trace_reader_t *r, uint64_t id, size_t *len)
{
    if (id >= r->st.types)
        return NULL;
    *len = (size_t)(r->type_off[id + 1] - r->type_off[id]);
    return (const char *)r->type_names.data + r->type_off[id];
}

/* {==== The producer: the next data frame into a slot ==== */

/* Fill `s` with an error (the whole message) and return SLOT_FAIL. */
static int pfail(slot_t *s, int code, const char *fmt, ...) HR_PRINTF(3, 4);

static int pfail(slot_t *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s->err.code = HR_OK;
    hr_err_vset(&s->err, code, fmt, ap);
    va_end(ap);
    return s->kind = SLOT_FAIL;
}

/* The input ends before an END record: `how` goes to the consumer, which words the message. */
static int pcut(slot_t *s, const char *how)
{
    snprintf(s->how, sizeof s->how, "%s", how);
    return s->kind = SLOT_CUT;
}

/* Produce the next slot: find the next data frame (skipping skippable frames), decompress it
 * whole, verify its checksum, look at what follows. Returns s->kind. Touches only the producer
 * half of r. */
static int produce(hr_trace_reader_t *r, slot_t *s)
{
    int rc;
    char how[160];
    hr_err_t e;
    s->skipped = 0;
    s->buf.len = 0;
    if (r->p_pending.code) { /* a read error right after the previous frame */
        s->file_bytes = r->p_file_bytes;
        return pfail(s, r->p_pending.code, "%s", r->p_pending.msg);
    }
    for (;;) {
        s->file_bytes = r->p_file_bytes;
        e.code = HR_OK;
        size_t avail = in_ensure(r, 8, &e, &rc);
        if (rc)
            return pfail(s, rc, "%s", e.msg);
        if (avail == 0)
            return pcut(s, "the file ends without an end record");
        s->frame_off = in_offset(r);
        if (avail < 4) {
            snprintf(how, sizeof how, "%zu stray bytes at byte %llu", avail,
                     (unsigned long long)s->frame_off);
            return pcut(s, how);
        }
        uint32_t magic = hr_le32(r->in + r->in_pos);
        if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) {
            if (magic == HR_HEADER_SKIP_MAGIC)
                return pfail(s, HR_EFORMAT, "%s: byte %llu: a second trace header (two traces "
                             "concatenated?)", r->name, (unsigned long long)s->frame_off);
            if (avail < 8) {
                snprintf(how, sizeof how, "a skippable frame header at byte %llu is incomplete",
                         (unsigned long long)s->frame_off);
                return pcut(s, how);
            }
            uint64_t skip = 8 + (uint64_t)hr_le32(r->in + r->in_pos + 4);
            while (skip > 0) { /* skip in window-sized steps */
                size_t have = in_ensure(r, 1, &e, &rc);
                if (rc)
                    return pfail(s, rc, "%s", e.msg);
                if (have == 0) {
                    snprintf(how, sizeof how, "a skippable frame at byte %llu is incomplete",
                             (unsigned long long)s->frame_off);
                    return pcut(s, how);
                }
                size_t step = have < skip ? have : (size_t)skip;
                r->in_pos += step;
                skip -= step;
            }
            s->skipped++;
            r->p_file_bytes = in_offset(r);
            continue;
        }
        if (magic != HR_ZSTD_MAGIC)
            return pfail(s, HR_EFORMAT,
                         "%s: frame %llu at byte %llu: not a zstd frame (magic %08x), corrupt trace",
                         r->name, (unsigned long long)r->p_frames,
                         (unsigned long long)s->frame_off, magic);
        break;
    }
    /* The zstd frame header (RFC 8878, at most 18 bytes) tells the decoded size; its descriptor
     * byte says whether a checksum and a dictionary id follow. */
    size_t avail = in_ensure(r, 18, &e, &rc);
    if (rc)
        return pfail(s, rc, "%s", e.msg);
    const uint8_t *fh = r->in + r->in_pos;
    unsigned desc = avail > 4 ? fh[4] : 0;
    unsigned long long csize = ZSTD_getFrameContentSize(fh, avail);
    if (csize == ZSTD_CONTENTSIZE_ERROR) {
        if (avail < 18) {
            snprintf(how, sizeof how, "frame %llu at byte %llu is incomplete",
                     (unsigned long long)r->p_frames, (unsigned long long)s->frame_off);
            return pcut(s, how);
        }
        return pfail(s, HR_EFORMAT, "%s: frame %llu at byte %llu: bad zstd frame header",
                     r->name, (unsigned long long)r->p_frames, (unsigned long long)s->frame_off);
    }
    if (csize == ZSTD_CONTENTSIZE_UNKNOWN || !(desc & 0x04) || (desc & 0x03))
        return pfail(s, HR_EFORMAT,
                     "%s: frame %llu at byte %llu: a data frame must declare its size and carry a "
                     "checksum, without a dictionary",
                     r->name, (unsigned long long)r->p_frames, (unsigned long long)s->frame_off);
    if (csize > HR_TRACE_FRAME_LIMIT || csize == 0)
        return pfail(s, HR_EFORMAT,
                     "%s: frame %llu at byte %llu: decoded size %llu outside 1 .. 64 MiB (corrupt)",
                     r->name, (unsigned long long)r->p_frames, (unsigned long long)s->frame_off,
                     csize);
    size_t fsize = (size_t)csize;
    if (hr_buf_reserve(&s->buf, fsize + 16))
        return pfail(s, HR_ENOMEM, "%s: out of memory for a frame of %zu bytes", r->name, fsize);
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    ZSTD_outBuffer out = {s->buf.data, fsize, 0};
    for (;;) {
        if (atomic_load_explicit(&r->stop, memory_order_relaxed)) /* closing: nobody waits */
            return pfail(s, HR_EINTERNAL, "%s: reader closed", r->name);
        size_t avail = in_ensure(r, 1, &e, &rc);
        if (rc)
            return pfail(s, rc, "%s", e.msg);
        if (avail == 0) {
            snprintf(how, sizeof how, "frame %llu at byte %llu is incomplete (%llu bytes present)",
                     (unsigned long long)r->p_frames, (unsigned long long)s->frame_off,
                     (unsigned long long)(in_offset(r) - s->frame_off));
            return pcut(s, how);
        }
        ZSTD_inBuffer in = {r->in + r->in_pos, avail, 0};
        size_t z = ZSTD_decompressStream(r->dctx, &out, &in);
        r->in_pos += in.pos;
        if (ZSTD_isError(z))
            return pfail(s, HR_EFORMAT, "%s: frame %llu at byte %llu: corrupt: does not "
                         "decompress (zstd: %s)",
                         r->name, (unsigned long long)r->p_frames,
                         (unsigned long long)s->frame_off, ZSTD_getErrorName(z));
        if (z == 0)
            break;
        if (in.pos == 0 && out.pos == out.size)
            return pfail(s, HR_EFORMAT, "%s: frame %llu at byte %llu: corrupt: more data "
                         "than its declared size", r->name, (unsigned long long)r->p_frames,
                         (unsigned long long)s->frame_off);
        /* Make sure the next in_ensure reads more instead of returning the same bytes. */
        if (in.pos == avail)
            continue;
    }
    if (out.pos != fsize)
        return pfail(s, HR_EFORMAT, "%s: frame %llu at byte %llu: decoded %zu bytes, declared %zu",
                     r->name, (unsigned long long)r->p_frames, (unsigned long long)s->frame_off,
                     out.pos, fsize);
    s->buf.len = fsize;
    r->p_frames++;
    r->p_file_bytes = s->file_bytes = in_offset(r);
    /* What follows the frame: after an END record, anything is garbage. A read error here is
     * also the next slot's (the next frame would meet it first). */
    s->after_err.code = HR_OK;
    s->after = in_ensure(r, 1, &s->after_err, &rc);
    s->after_eof = r->eof;
    if (rc)
        r->p_pending = s->after_err;
    return s->kind = SLOT_FRAME;
}

/* {==== The prefetch thread ==== */

static void *thread_main(void *arg)
{
    hr_trace_reader_t *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!atomic_load(&r->stop) && r->produced >= r->released + NSLOT)
            pthread_cond_wait(&r->cv, &r->mu);
        if (atomic_load(&r->stop))
            break;
        slot_t *s = &r->slots[(r->produced - r->ring0) % NSLOT];
        pthread_mutex_unlock(&r->mu);
        int kind = produce(r, s);
        pthread_mutex_lock(&r->mu);
        r->produced++;
        if (kind == SLOT_FRAME && (int)(r->produced - r->released) > r->held_peak)
            r->held_peak = (int)(r->produced - r->released);
        pthread_cond_broadcast(&r->cv);
        if (kind != SLOT_FRAME)
            break; /* the producer's last word */
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Start the thread after the consumer took slot consumed - 1 (it holds it). Without a thread
 * (it cannot be created) the reader goes on without. */
static void thread_start(hr_trace_reader_t *r)
{
    r->produced = r->consumed;
    r->released = r->ring0 = r->consumed - 1; /* the consumer holds slots[0] */
    r->held_peak = 1;
    /* The slot the thread fills first gets its buffer here, from the caller's thread, as large as
     * the frame just read (frames are about the writer's frame target), and written once, so its
     * pages are resident from now on as the first frame's are (a caller that measures its own
     * memory from here, as the replay engine does, does not count them). */
    slot_t *next = &r->slots[1], *held = &r->slots[0];
    if (next->buf.cap < held->buf.cap) {
        next->buf.len = 0;
        if (hr_buf_reserve(&next->buf, held->buf.cap - 1))
            return;
        memset(next->buf.data, 0, next->buf.cap);
    }
    if (pthread_mutex_init(&r->mu, NULL))
        return;
    if (pthread_cond_init(&r->cv, NULL)) {
        pthread_mutex_destroy(&r->mu);
        return;
    }
    if (pthread_create(&r->thread, NULL, thread_main, r)) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        return;
    }
    r->threaded = 1;
}

/* The next slot in file order, for the consumer, which is done with the one it held. */
static slot_t *next_slot(hr_trace_reader_t *r)
{
    slot_t *s;
    if (r->threaded) {
        pthread_mutex_lock(&r->mu);
        r->released = r->consumed;
        pthread_cond_broadcast(&r->cv);
        while (r->produced == r->consumed)
            pthread_cond_wait(&r->cv, &r->mu);
        s = &r->slots[(r->consumed++ - r->ring0) % NSLOT];
        if (r->held_peak > r->st.frames_held_peak)
            r->st.frames_held_peak = r->held_peak;
        pthread_mutex_unlock(&r->mu);
        return s;
    }
    s = &r->slots[0];
    r->consumed++;
    if (produce(r, s) == SLOT_FRAME && !r->st.frames_held_peak)
        r->st.frames_held_peak = 1;
    /* More input after a frame: the rest is prefetched from now on. */
    if (r->want_thread && s->kind == SLOT_FRAME && !s->after_err.code &&
        (s->after > 0 || !s->after_eof) &&
        (r->want_thread == PREFETCH_YES || s->buf.len >= PREFETCH_MIN))
        thread_start(r);
    return s;
}

/* {==== Frames (consumer) ==== */

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

/* Take the next data frame. Returns HR_OK with state IN_FRAME, or with state DONE when the input
 * ends cleanly after a cut (partial mode), or an error. */
static int load_frame(hr_trace_reader_t *r, hr_err_t *err)
{
    slot_t *s = next_slot(r);
    r->st.skipped += s->skipped;
    r->st.file_bytes = s->file_bytes;
    if (s->kind == SLOT_CUT)
        return cut_short(r, err, s->how);
    if (s->kind == SLOT_FAIL) {
        if (s->err.code != HR_EFORMAT)
            return fail(r, err, s->err.code, "%s", s->err.msg);
        /* a damaged frame: say where the intact part ends, in events, as a cut does */
        return fail(r, err, s->err.code, "%s; intact up to event %llu (%llu frame%s before it)",
                    s->err.msg, (unsigned long long)r->st.events,
                    (unsigned long long)r->st.frames, r->st.frames == 1 ? "" : "s");
    }
    size_t fsize = s->buf.len;
    r->frame = s->buf.data;
    r->flen = fsize;
    r->after = s->after;
    r->after_eof = s->after_eof;
    r->after_err = &s->after_err;
    r->frame_off = s->frame_off;
    r->fpos = 0;
    r->st.payload_bytes += fsize;
    /* The FRAME record restates where this frame belongs. */
    const uint8_t *p = r->frame, *end = p + fsize;
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
    r->fpos = (size_t)(p - r->frame);
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
    hr_trace_cursor_t c = {p, r->frame + r->flen, prev, r->chk.next_id, r->chk.ntypes,
                           r->chk.state, r->chk.state_cap, r->chk.ext, r->chk.ext_arg,
                           r->chk.kind == HR_KIND_GRAPH, 0};
    return c;
}

hr_trace_cursor_t hr_trace_cursor_take(hr_trace_reader_t *r)
{
    hr_trace_cursor_t c = {0};
    if (r->state != ST_IN_FRAME || r->fpos >= r->flen)
        return c;
    return cursor_at(r, r->frame + r->fpos, r->prev);
}

void hr_trace_cursor_give(hr_trace_reader_t *r, hr_trace_cursor_t c)
{
    if (!c.p)
        return;
    r->fpos = (size_t)(c.p - r->frame);
    r->prev = c.prev;
    r->chk.next_id = c.next_id;
    r->st.events += c.events;
    r->st.ids = c.next_id;
    if (r->fpos == r->flen) /* used up: the END record is the only way out */
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
        const uint8_t *base = r->frame, *p = base + r->fpos, *end = base + r->flen;
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
                /* What followed the frame in the file, as the producer saw it. */
                if (r->after_err->code)
                    return fail(r, err, r->after_err->code, "%s", r->after_err->msg);
                if (r->after) {
                    r->st.events += n;
                    *n_out = n;
                    return fail(r, err, HR_EFORMAT,
                                "%s: byte %llu: garbage after the end of the trace (%s%zu "
                                "bytes follow the end record)",
                                r->name, (unsigned long long)r->st.file_bytes,
                                r->after_eof ? "" : "at least ", r->after);
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
                    case HR_W_GC_SURVIVORS:
                        ev->op = op == HR_W_ARENA_MAP     ? HR_OP_ARENA_MAP
                                 : op == HR_W_ARENA_UNMAP ? HR_OP_ARENA_UNMAP
                                                          : HR_OP_GC_SURVIVORS;
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

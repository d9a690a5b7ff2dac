/* hr_trace.h: the heapreplay trace format v1: events, reader, writer, text form, checker.
 *
 * docs/trace-format.md is the normative description; this header is its C view.
 *
 *   writer: hr_event_t --encode--> frame payload --ZSTD_compress2--> data frame --> file
 *   reader: file --> data frame --ZSTD_decompressStream (checksum verified)--> payload --decode-->
 *           hr_event_t batches        (the first two steps on a prefetch thread, one frame ahead:
 *                                      hr_trace_read_opts_t.threads)
 *
 * Both sides run every event through the same checker (hr_trace_check_t), so a writer cannot
 * produce a trace its reader would reject, and every consumer sees only valid events.
 */
#ifndef HR_TRACE_H
#define HR_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include "hr_common.h"

#define HR_TRACE_VERSION 1
#define HR_TRACE_MAX_SIZE ((uint64_t)1 << 47)    /* largest block size a trace may name */
#define HR_TRACE_FRAME_LIMIT ((size_t)64 << 20)  /* largest decoded frame a reader accepts */
#define HR_TRACE_FRAME_TARGET ((size_t)1 << 20)  /* default frame payload size of writers */
#define HR_TRACE_STRING_LIMIT ((size_t)16 << 20) /* longest string (stats text, names) */

typedef enum hr_trace_kind {
    HR_KIND_ALLOC = 0, /* allocation-only: blocks die at their explicit free */
    HR_KIND_GRAPH = 1  /* objects, refcounts and links: the collector under test decides deaths */
} hr_trace_kind_t;

/* Event kinds as delivered to consumers (not the wire opcodes: ALLOC's domain and flags are
 * decoded into fields). */
typedef enum hr_op {
    HR_OP_ALLOC = 1,
    HR_OP_FREE,
    HR_OP_REALLOC,
    HR_OP_INCREF,
    HR_OP_DECREF,
    HR_OP_LINK,
    HR_OP_UNLINK,
    HR_OP_DIED,
    HR_OP_TYPE,
    HR_OP_ARENA_MAP,
    HR_OP_ARENA_UNMAP,
    HR_OP_GC_BEGIN,
    HR_OP_GC_END,
    HR_OP_STATS,
    HR_OP_PHASE,
    HR_OP_GC_CONTROL, /* the program acted on its collector: gc.collect(), disable, enable, ... */
    HR_OP_GC_TRACK,   /* an object entered or left a generation list (graph traces) */
    HR_OP_GC_SURVIVORS, /* the recorded collector's survivor counts (allocation traces) */
    HR_OP_UNKNOWN, /* a sized record this build does not know; skipped by consumers */
    HR_OP_COUNT
} hr_op_t;

/* ALLOC flags (the wire values). */
#define HR_F_GC 0x01      /* GC-capable container: counts toward generation 0 */
#define HR_F_OBJECT 0x02  /* reference-counted object (graph traces only) */
#define HR_F_ZERO 0x04    /* zero-filled (calloc) */
#define HR_F_TYPED 0x08   /* `tag` holds a type id */
#define HR_F_ALIGNED 0x10 /* `align_log2` holds the requested alignment */
#define HR_F_ALL 0x1f

/* GC_CONTROL actions (what the recorded program did to its collector; replays perform them). */
typedef enum hr_gc_action {
    HR_GC_COLLECT = 0,   /* gc.collect(generation): tag's generation in `a` */
    HR_GC_DISABLE = 1,   /* gc.disable() */
    HR_GC_ENABLE = 2,    /* gc.enable() */
    HR_GC_THRESHOLD = 3, /* gc.set_threshold(t0, t1, t2): a = t0, b = t1 | t2 << 32 */
    HR_GC_DEL = 4,       /* a GC block the trace no longer names was deleted (PyObject_GC_Del):
                            generation 0's count falls by 1 if positive (graph traces) */
    HR_GC_FREEZE = 5,    /* gc.freeze(): every tracked object moves to the permanent generation,
                            which no collection examines; the three counts become 0 */
    HR_GC_UNFREEZE = 6,  /* gc.unfreeze(): the permanent generation joins the oldest */
    HR_GC_ACTIONS = 7
} hr_gc_action_t;

/* GC_TRACK actions: the recorded collector's generation lists changed in a way allocation and
 * collections do not explain (CPython untracks tuples and dicts holding only atomic values,
 * tracks dicts later, re-tracks objects taken from a free list). Replays with generations
 * follow them. */
typedef enum hr_gc_track_action {
    HR_TRACK = 0,            /* the object is now in generation `b` (appended to its list) */
    HR_UNTRACK = 1,          /* the object left its generation list */
    HR_UNTRACK_SURVIVOR = 2, /* the collection just run untracked this survivor before it counted
                                its survivors (CPython's untrack_tuples, untrack_dicts) */
    HR_TRACK_ACTIONS = 3
} hr_gc_track_action_t;

typedef enum hr_stats_kind {
    HR_STATS_PYMALLOC = 0, /* the allocator part of sys._debugmallocstats() */
    HR_STATS_GC = 1,       /* gc.get_stats() as JSON */
    HR_STATS_TEXT = 2      /* anything else */
} hr_stats_kind_t;

/* One decoded event: 24 bytes, so batches stay cache-friendly.
 *
 *   op           tag                 a                    b / str
 *   ALLOC        type (HR_F_TYPED)   new id               size
 *   FREE         -                   id                   -
 *   REALLOC      -                   id                   new size
 *   INCREF/DECREF/DIED  -            id                   -
 *   LINK/UNLINK  -                   source id            target id
 *   TYPE         type id             name length          str: name
 *   ARENA_MAP/UNMAP  -               base address         size
 *   GC_BEGIN     generation          -                    -
 *   GC_END       generation          collected            uncollectable
 *   GC_CONTROL   hr_gc_action_t      generation / t0      t1 | t2 << 32
 *   GC_TRACK     hr_gc_track_action_t  object id          generation (HR_TRACK)
 *   GC_SURVIVORS -                   long_lived_pending   long_lived_total
 *   STATS        hr_stats_kind_t     text length          str: text
 *   PHASE        -                   name length          str: name
 *   UNKNOWN      wire opcode         payload length       str: payload
 *
 * `str` points into the reader's frame buffer (valid until the next hr_trace_read call) or, for
 * the writer, into the caller's memory. Strings are not NUL-terminated. */
typedef struct hr_event {
    uint8_t op;         /* hr_op_t */
    uint8_t domain;     /* ALLOC: hr_domain_t */
    uint8_t flags;      /* ALLOC: HR_F_* */
    uint8_t align_log2; /* ALLOC with HR_F_ALIGNED */
    uint32_t tag;       /* see the table */
    uint64_t a;         /* see the table */
    union {
        uint64_t b;
        const uint8_t *str;
    };
} hr_event_t;

const char *hr_op_name(int op);      /* "alloc", "free", ... */
const char *hr_kind_name(int kind);  /* "alloc", "graph" */
const char *hr_stats_kind_name(int kind);

/* {====================================================================
 * Header
 * ==================================================================== */
#define HR_TRACE_META_MAX 64

typedef struct hr_meta {
    char *key;   /* owned by the header */
    char *value; /* owned by the header */
} hr_meta_t;

typedef struct hr_trace_header {
    int version; /* HR_TRACE_VERSION */
    int kind;    /* hr_trace_kind_t */
    int nmeta;
    hr_meta_t meta[HR_TRACE_META_MAX];
} hr_trace_header_t;

void hr_trace_header_init(hr_trace_header_t *h, int kind);
void hr_trace_header_free(hr_trace_header_t *h);
/* Add or replace a metadata entry (copies both strings). Keys are bare words: no white space,
 * quotes, backslashes or '#'; HR_EUSAGE otherwise, or when the header is full. */
int hr_trace_header_set(hr_trace_header_t *h, const char *key, const char *value);
const char *hr_trace_header_get(const hr_trace_header_t *h, const char *key);

/* {====================================================================
 * Checker: the validity rules of docs/trace-format.md ("which events are valid where").
 * Invariants: next_id ids have been allocated; state[id] is the id's state; ntypes types exist.
 * ==================================================================== */
enum { HR_ID_FREED = 0, HR_ID_BLOCK = 1, HR_ID_OBJECT = 2 };

/* Who says whether a block is live: the checker's own bitmap, or (allocation-only traces, see
 * hr_trace_check_external) the consumer, which returns HR_ID_BLOCK or HR_ID_FREED for an id
 * below next_id. */
typedef int (*hr_id_state_fn)(void *arg, uint64_t id);

typedef struct hr_trace_check {
    int kind;          /* hr_trace_kind_t */
    uint64_t next_id;  /* ids allocated so far */
    uint64_t ntypes;   /* types defined so far */
    uint8_t *state;    /* owned: 2 bits per id, 4 ids per byte; NULL while ext is set */
    size_t state_cap;  /* bytes allocated for state */
    hr_id_state_fn ext; /* external id states, or NULL */
    void *ext_arg;
} hr_trace_check_t;

void hr_trace_check_init(hr_trace_check_t *c, int kind);
void hr_trace_check_free(hr_trace_check_t *c);
/* Check one event and update the state. On failure returns HR_EFORMAT with a message that
 * describes only the event ("free of id 7 that is not live (double free)"); the caller adds the
 * location. For ALLOC it checks ev->a == next_id. */
int hr_trace_check_event(hr_trace_check_t *c, const hr_event_t *ev, hr_err_t *err);
/* The state of an id (HR_ID_*); ids >= next_id report HR_ID_FREED. */
int hr_trace_check_state(const hr_trace_check_t *c, uint64_t id);
/* Let `fn` answer which blocks are live instead of the checker's bitmap (2 bits per id ever
 * allocated, the only state of the checker that grows with the trace): for a consumer that
 * already tracks the live blocks, such as the replay engine. Allocation-only traces only (a
 * graph trace's objects outlive the consumer's records of them); call before the first event.
 * HR_EUSAGE otherwise. The consumer must apply every event before the checker judges the next. */
int hr_trace_check_external(hr_trace_check_t *c, hr_id_state_fn fn, void *arg, hr_err_t *err);

/* {====================================================================
 * Reader
 * ==================================================================== */
typedef struct hr_trace_reader hr_trace_reader_t;

typedef struct hr_trace_read_opts {
    int partial; /* 1: a cut-short trace ends normally after its last complete frame */
    /* External id states (hr_trace_check_external) for an allocation-only trace; ignored for a
     * graph trace (hr_trace_ids_external says which). With them, hr_trace_read delivers one
     * event per call, so the consumer has applied each event before the next is checked. */
    hr_id_state_fn id_state;
    void *id_state_arg;
    /* Prefetch: decompress the next frame on a thread of the reader's own while the caller
     * decodes this one (trace_reader.c). 0: the environment variable HEAPREPLAY_READ_THREADS
     * decides (0 off, 1 on), else on when the first frame holds at least 64 KiB (the writers'
     * default is 1 MiB; smaller frames cost more to hand over than they gain); 1: on;
     * HR_READ_NO_THREADS: off, hr_trace_read decompresses each frame itself. Events, errors and
     * status are the same either way. */
    int threads;
} hr_trace_read_opts_t;

#define HR_READ_NO_THREADS (-1)

/* Summary of what has been read so far; complete once hr_trace_read returned 0 events. */
typedef struct hr_trace_status {
    uint64_t events;        /* events delivered */
    uint64_t ids;           /* ids allocated */
    uint64_t types;         /* types defined */
    uint64_t frames;        /* data frames decoded (all checksums verified) */
    uint64_t skipped;       /* sized records and skippable frames of unknown kinds skipped */
    uint64_t file_bytes;    /* bytes of the file consumed */
    uint64_t payload_bytes; /* decoded payload bytes */
    int complete;           /* the END record was read and nothing follows it */
    int cut_short;          /* the file ended before its END record */
    int frames_held_peak;   /* most decoded frames the reader held at once: 1 without the
                               prefetch thread, 2 at most with it (memory stays bounded) */
    char cut_msg[512];      /* where and how it was cut short, when cut_short */
} hr_trace_status_t;

/* Open a trace file (path "-" is not supported: traces are seekable files). */
int hr_trace_open(hr_trace_reader_t **out, const char *path, const hr_trace_read_opts_t *opts,
                  hr_err_t *err);
/* Open a trace held in memory (borrowed: must outlive the reader). `name` is for messages. */
int hr_trace_open_mem(hr_trace_reader_t **out, const void *data, size_t len, const char *name,
                      const hr_trace_read_opts_t *opts, hr_err_t *err);
void hr_trace_close(hr_trace_reader_t *r); /* accepts NULL */
const hr_trace_header_t *hr_trace_header(const hr_trace_reader_t *r);
const hr_trace_status_t *hr_trace_status(const hr_trace_reader_t *r);
/* 1 when the consumer's id_state answers for block liveness (hr_trace_read_opts_t). */
int hr_trace_ids_external(const hr_trace_reader_t *r);
/* 1 once the prefetch thread started (hr_trace_read_opts_t.threads): after a first frame that
 * more input follows. It ends by itself after the last frame or an error; close joins it. */
int hr_trace_prefetching(const hr_trace_reader_t *r);
/* The type table so far: name of type `id` (length in *len), or NULL. Valid while r lives. */
const char *hr_trace_type_name(const hr_trace_reader_t *r, uint64_t id, size_t *len);
/* Read up to `cap` events into `evs`. *n == 0 with a 0 return means the end of the trace. On a
 * negative return the events before the error have already been delivered by earlier calls, and
 * err says what went wrong and where (file, byte offset, event index). */
int hr_trace_read(hr_trace_reader_t *r, hr_event_t *evs, size_t cap, size_t *n, hr_err_t *err);

/* {====================================================================
 * Writer
 * ==================================================================== */
typedef struct hr_trace_writer hr_trace_writer_t;

typedef struct hr_trace_write_opts {
    size_t frame_target; /* payload bytes per frame; 0: HR_TRACE_FRAME_TARGET */
    int level;           /* zstd level; 0: 3 */
    int atomic;          /* 1: through hr_out (hr_out.h): symlinks followed, TARGET.tmp.PID
                            renamed onto the target at close, so an existing file is never lost
                            on failure; a device or FIFO is written through; 0: write PATH
                            directly (crash-safe frames) */
    int async;           /* 1: compress and write frames on a worker thread (the caller goes on
                            filling the next frame); its allocations are libc's */
    int trusted_ids;     /* 1 (allocation-only traces): the producer names in FREE and REALLOC
                            only blocks it knows live (a recorder takes each id out of its
                            address map as it writes the free), so the writer keeps no id-state
                            bitmap (2 bits per id ever allocated) and does not check liveness;
                            every other rule still holds, and a reader still checks liveness */
} hr_trace_write_opts_t;

int hr_trace_writer_open(hr_trace_writer_t **out, const char *path, const hr_trace_header_t *h,
                         const hr_trace_write_opts_t *opts, hr_err_t *err);
/* Write one event (checked: an invalid event is refused with HR_EFORMAT and nothing is written).
 * For ALLOC, ev->a must be the next id (hr_trace_writer_next_id). */
int hr_trace_write(hr_trace_writer_t *w, const hr_event_t *ev, hr_err_t *err);
/* The same as hr_trace_write of ALLOC (id = *id = the next id; `type` used with HR_F_TYPED;
 * no alignment), of an id event (FREE, INCREF, DECREF, DIED) and of LINK/UNLINK, faster: for
 * recorders. Same checks, same bytes, same errors. hr_trace_wfast.h has the first two inline. */
int hr_trace_write_alloc(hr_trace_writer_t *w, uint64_t size, unsigned domain, unsigned flags,
                         uint32_t type, uint64_t *id, hr_err_t *err);
int hr_trace_write_id(hr_trace_writer_t *w, int op, uint64_t id, hr_err_t *err);
int hr_trace_write_free(hr_trace_writer_t *w, uint64_t id, hr_err_t *err);
int hr_trace_write_link(hr_trace_writer_t *w, int op, uint64_t src, uint64_t dst, hr_err_t *err);
uint64_t hr_trace_writer_next_id(const hr_trace_writer_t *w);
uint64_t hr_trace_writer_events(const hr_trace_writer_t *w);
/* The checker's view (id states), for generators that need to know what is live. */
const hr_trace_check_t *hr_trace_writer_check(const hr_trace_writer_t *w);
/* Close the current frame and write it out (a recorder calls this periodically). */
int hr_trace_writer_flush(hr_trace_writer_t *w, hr_err_t *err);
/* The descriptor the writer writes to (-1 when none), and moving it to another descriptor of the
 * same file (a recorder keeps its trace out of the way of a program that closes or replaces
 * descriptors): `fd` replaces the current one, which the caller then owns. Waits for the frame
 * the worker thread is writing; the caller keeps every other writer call out meanwhile. */
int hr_trace_writer_fd(const hr_trace_writer_t *w);
void hr_trace_writer_set_fd(hr_trace_writer_t *w, int fd);
/* Write the END record, close the file (and rename it into place when atomic). Frees w. */
int hr_trace_writer_close(hr_trace_writer_t *w, hr_err_t *err);
/* Give up: remove the temporary file when atomic, free w. Accepts NULL. */
void hr_trace_writer_abort(hr_trace_writer_t *w);

/* Convenience encoders on top of hr_trace_write. */
int hr_trace_put_alloc(hr_trace_writer_t *w, uint64_t size, int domain, int flags, uint32_t type,
                       uint64_t *id, hr_err_t *err);
int hr_trace_put_id(hr_trace_writer_t *w, int op, uint64_t id, hr_err_t *err); /* free/incref/... */
int hr_trace_put_realloc(hr_trace_writer_t *w, uint64_t id, uint64_t size, hr_err_t *err);
int hr_trace_put_link(hr_trace_writer_t *w, int op, uint64_t src, uint64_t dst, hr_err_t *err);
int hr_trace_put_string(hr_trace_writer_t *w, int op, uint32_t tag, const char *s, size_t len,
                        hr_err_t *err); /* TYPE (tag = type id), STATS (tag = kind), PHASE */

/* {====================================================================
 * Text form
 * ==================================================================== */
/* Pack a text trace into a binary trace at out_path. The file is read as it is packed (memory:
 * the longest line, at most 16 MiB; a longer line is refused as not a text trace), so any file,
 * pipe or device can be the input. */
int hr_trace_pack_text(const char *text_path, const char *out_path,
                       const hr_trace_write_opts_t *opts, hr_err_t *err);
/* The same for a text held in memory (`text_path` names it in messages). */
int hr_trace_pack_buf(const char *text_path, const char *data, size_t len, const char *out_path,
                      const hr_trace_write_opts_t *opts, hr_err_t *err);
/* Append the text line of one event (with a trailing newline). */
int hr_trace_format_event(hr_buf_t *out, const hr_event_t *ev);
int hr_trace_format_header(hr_buf_t *out, const hr_trace_header_t *h);
int hr_trace_format_string(hr_buf_t *out, const uint8_t *s, size_t len); /* quoted, escaped */

#endif /* HR_TRACE_H */

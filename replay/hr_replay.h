/* hr_replay.h: the replay engine: streams a trace through an allocator and a collector.
 *
 *   trace --hr_trace_read--> events --engine--> allocator (blocks)
 *                                        \--> collector (object deaths) --reclaim--> allocator
 *
 * The engine keeps one 16-byte record per live block (hr_entry_t in an hr_idtab), serves every
 * block from the allocator under test and writes into it, so page faults, caches and RSS behave
 * as in a real program. In allocation-only traces blocks die at their explicit free, whatever the
 * collector. In graph traces objects die when the collector says so.
 *
 * Check mode (--check) adds an oracle: an independent shadow of the heap graph, against which
 * every set of objects a collector reclaims is verified to be garbage (no external references,
 * no links from outside the set). Events naming reclaimed objects, double frees and counts below
 * zero are always errors, with their event index.
 */
#ifndef HR_REPLAY_H
#define HR_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "hr_alloc.h"
#include "hr_gc.h"

#define HR_REPLAY_SCHEMA 1 /* version of the JSON written by hr_replay_write_json */

/* A collection, as the recorded program reported it (GC_END) or as the replay ran it. */
typedef struct hr_collection {
    uint64_t event;         /* event index: GC_END (recorded) or where the collector ran (replayed) */
    uint64_t begin;         /* recorded: the GC_BEGIN's event index; replayed: = event */
    uint32_t generation;
    uint64_t collected;
    uint64_t uncollectable; /* recorded only */
} hr_collection_t;

typedef struct hr_collections {
    hr_collection_t *v; /* owned */
    size_t n, cap;
} hr_collections_t;

/* An object death: recorded (DIED) or replayed (reclaim). */
typedef struct hr_death {
    uint64_t id;
    uint64_t event;
} hr_death_t;

typedef struct hr_deaths {
    hr_death_t *v; /* owned */
    size_t n, cap;
} hr_deaths_t;

/* The replay's state where the trace holds a recorded STATS record (for validate). */
typedef struct hr_checkpoint {
    uint64_t event;
    int kind;                 /* hr_stats_kind_t of the recorded record */
    hr_buf_t recorded;        /* the recorded text */
    hr_buf_t replayed;        /* pymalloc: the allocator's statistics text at that event */
    uint64_t collections[3];  /* gc: collections the replay ran so far, per generation */
    uint64_t collected[3];    /* gc: garbage found so far, per generation */
} hr_checkpoint_t;

typedef struct hr_replay_sample {
    uint64_t event;        /* event index */
    uint64_t live_objects; /* objects allocated and not reclaimed (graph traces) */
    uint64_t live_blocks;  /* blocks (objects included) allocated and not freed */
    uint64_t live_bytes;   /* their bytes */
    uint64_t footprint;    /* the allocator's own accounting */
    uint64_t rss;          /* resident set size of the process, bytes */
    uint64_t gc_ns;        /* cumulative collection time */
} hr_replay_sample_t;

typedef struct hr_replay_opts {
    const char *alloc_spec; /* NULL: pymalloc:preset=3.11 when built, else libc */
    const char *gc_spec;    /* NULL: generational:700,10,10 */
    int check;              /* verify every reclamation against an independent shadow graph */
    int partial;            /* accept a trace cut short (replay what it holds) */
    int no_touch;           /* do not write into blocks (measure the bookkeeping alone) */
    uint64_t every;         /* sample the timeline every N events; 0: never */
    /* Called with each timeline sample (may be NULL). */
    void (*sample)(void *arg, const hr_replay_sample_t *s);
    void *sample_arg;
    /* Called every 2^20 events with the events done and the trace bytes consumed (progress
     * display); may be NULL. */
    void (*progress)(void *arg, uint64_t events, uint64_t file_bytes);
    void *progress_arg;
    int log_deaths;         /* keep the replay's object deaths and the trace's DIED events */
    int lane;               /* the hot loop's lane (replay.c): 1 on, -1 off, 0 the environment's
                             * HEAPREPLAY_LANE (0 off), else on; events, results and errors are the
                             * same either way (tests/fuzz/fuzz_lane.c) */
} hr_replay_opts_t;


typedef struct hr_replay_result {
    char alloc_spec[256], gc_spec[256];
    int kind;                   /* trace kind */
    uint64_t events, ids, frames;
    uint64_t wall_ns;           /* the whole replay: decode, engine, allocator, collector */
    uint64_t live_blocks, live_bytes, peak_live_blocks, peak_live_bytes;
    uint64_t peak_rss, rss_start, rss_end;
    uint64_t table_bytes_peak;  /* the engine's own id table at its largest */
    hr_alloc_stats_t alloc;
    const char *footprint_note; /* the allocator's caveat on its footprint, or NULL (static) */
    hr_gc_stats_t gc;
    hr_buf_t alloc_text;        /* the allocator's statistics text at the end (may be empty) */
    hr_buf_t recorded_stats;    /* the trace's last STATS pymalloc text (may be empty) */
    hr_collections_t recorded;  /* GC_END events of the trace */
    hr_checkpoint_t *checkpoints; /* one per recorded STATS pymalloc/gc record (owned) */
    size_t ncheckpoints;
    hr_collections_t replayed;  /* collections the collector ran */
    hr_deaths_t died;           /* DIED events of the trace (log_deaths) */
    hr_deaths_t reclaimed;      /* the collector's reclamations (log_deaths) */
    uint64_t checked_sets, checked_objects; /* check mode: reclamation sets verified */
    int cut_short;
} hr_replay_result_t;

void hr_replay_result_free(hr_replay_result_t *r);

/* Replay a trace file. On error the result holds what was measured up to the failing event and
 * err says what and where (file, event index). */
int hr_replay_run(const char *trace_path, const hr_replay_opts_t *o, hr_replay_result_t *res,
                  hr_err_t *err);

/* Write the result as JSON (schema HR_REPLAY_SCHEMA) with its provenance. */
int hr_replay_write_json(FILE *f, const char *trace_path, const hr_replay_result_t *r);

/* Resident set size of this process in bytes (0 if unknown). */
uint64_t hr_rss_bytes(void);
/* Peak resident set size (VmHWM) in bytes. */
uint64_t hr_peak_rss_bytes(void);

#endif

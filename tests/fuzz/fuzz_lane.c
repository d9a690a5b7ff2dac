/* fuzz_lane.c: libFuzzer target: the replay engine's lane (replay/replay.c) against its general
 * path.
 *
 * Property: a replay with the lane (opts.lane = 1) and one without (-1) end the same way: the
 * same return code and error message (with its event index and byte offset), the same events,
 * ids, live and peak blocks and bytes, the same allocator statistics, the same collector counts
 * (everything but times), and the same collections and deaths at the same event indices, under
 * collectors with and without graph slots, in check mode and with deaths logged, with the null
 * allocator and with the pymalloc model.
 *
 * Every input is replayed as a trace file and, like fuzz_cursor, as the payload of a single data
 * frame of a trace whose kind is bit 0 of the input's first byte, so that mutations reach the
 * event grammar (ids never allocated, double frees, objects freed as blocks, bad flags, cut
 * varints) instead of dying at the frame's checksum.
 */
#include "hr_replay.h"
#include "fuzz_wrap.h"
#include "hr_trace.h"
#include "trace_wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scratch file the replays read (hr_replay_run takes a path), removed at exit. */
static char path[64];

static void remove_scratch(void) { unlink(path); }

static const char *scratch(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/hr-fuzz-lane-%ld.hrt",
                 dir && strlen(dir) < 32 ? dir : "/tmp", (long)getpid());
        atexit(remove_scratch);
    }
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, size, f) == size || size == 0);
    CHECK(fclose(f) == 0);
    return path;
}

static void same_results(const hr_replay_result_t *x, const hr_replay_result_t *y)
{
    CHECK(x->events == y->events && x->ids == y->ids && x->frames == y->frames);
    CHECK(x->live_blocks == y->live_blocks && x->live_bytes == y->live_bytes);
    CHECK(x->peak_live_blocks == y->peak_live_blocks && x->peak_live_bytes == y->peak_live_bytes);
    CHECK(x->table_bytes_peak == y->table_bytes_peak && x->cut_short == y->cut_short);
    CHECK(memcmp(&x->alloc, &y->alloc, sizeof x->alloc) == 0);
    CHECK(x->checked_sets == y->checked_sets && x->checked_objects == y->checked_objects);
    CHECK(x->replayed.n == y->replayed.n && x->recorded.n == y->recorded.n);
    for (size_t i = 0; i < x->replayed.n; i++) { /* where each collection ran, what it found */
        const hr_collection_t *a = &x->replayed.v[i], *b = &y->replayed.v[i];
        CHECK(a->event == b->event && a->generation == b->generation &&
              a->collected == b->collected);
    }
    CHECK(x->died.n == y->died.n && x->reclaimed.n == y->reclaimed.n);
    for (size_t i = 0; i < x->reclaimed.n; i++)
        CHECK(x->reclaimed.v[i].id == y->reclaimed.v[i].id &&
              x->reclaimed.v[i].event == y->reclaimed.v[i].event);
#define HR_X(field, name, desc) CHECK(strstr(#field, "_ns") || x->gc.field == y->gc.field);
    HR_GC_STATS(HR_X)
#undef HR_X
}

static void both_ways(const char *path, const char *alloc, const char *gc, int check,
                      int log_deaths)
{
    hr_replay_opts_t o = {.alloc_spec = alloc, .gc_spec = gc, .check = check, .partial = 1,
                          .log_deaths = log_deaths};
    hr_replay_result_t res[2];
    hr_err_t err[2];
    int rc[2];
    for (int i = 0; i < 2; i++) {
        memset(&err[i], 0, sizeof err[i]);
        o.lane = i ? 1 : -1;
        rc[i] = hr_replay_run(path, &o, &res[i], &err[i]);
    }
    if (rc[0] != rc[1] || (rc[0] && strcmp(err[0].msg, err[1].msg) != 0))
        fprintf(stderr, "gc %s check %d: general path: %d %s\nlane: %d %s\n", gc, check, rc[0],
                rc[0] ? err[0].msg : "", rc[1], rc[1] ? err[1].msg : "");
    CHECK(rc[0] == rc[1]);
    CHECK(!rc[0] || strcmp(err[0].msg, err[1].msg) == 0);
    same_results(&res[0], &res[1]);
    hr_replay_result_free(&res[0]);
    hr_replay_result_free(&res[1]);
}

static void replay_all(const uint8_t *data, size_t size)
{
    const char *path = scratch(data, size);
    static const char *const gcs[] = {"none", "refcount", "generational:5,2,2", "marksweep"};
    for (size_t i = 0; i < sizeof gcs / sizeof gcs[0]; i++)
        both_ways(path, "null", gcs[i], 0, 0);
    both_ways(path, "null", "refcount", 0, 1); /* the deaths each way, with their event indices */
    both_ways(path, "null", "generational:5,2,2", 1, 0);
    /* the pymalloc model under every fuzzed stream (a libFuzzer run sets ASan's
     * allocator_may_return_null, so that a block of many GiB is an allocation failure) */
    both_ways(path, "pymalloc", "generational:5,2,2", 0, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    replay_all(data, size);
    if (size >= 1) {
        size_t cap = 64 + ZSTD_compressBound(size);
        uint8_t *t = malloc(cap);
        CHECK(t);
        replay_all(t, wrap_payload(data[0] & 1, data + 1, size - 1, t, cap));
        free(t);
    }
    return 0;
}

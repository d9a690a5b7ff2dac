/* bench_replay_floor.c: the least a replay of an allocation trace can cost on this machine, to
 * put the engine's figure (benchmarks/replay.sh) in perspective. Usage: bench_replay_floor
 * [--engine HEAPREPLAY] TRACE... (allocation traces; best of 3, interleaved, wall clock).
 *
 * Each trace is first decoded into memory (not timed: 9 bytes per event, so a 100-million-event
 * trace needs about 0.9 GB, and the flat array below 8 bytes per id). Then, timed, the work no
 * replay can skip under the null allocator and the none collector, with nothing else:
 *   - each block's size and a live bit, found by id: in a flat array indexed by id ("flat": 8
 *     bytes per id ever allocated, so it grows with the trace, which a streaming replay may not)
 *     or in the engine's own compact table ("idtab": common/hr_idtab.h with 8-byte records);
 *   - every block is the same scratch region (what `null` does); the first and last word of
 *     every new or grown block are written (what the engine does);
 *   - counts of live blocks and bytes, and the peak of live blocks.
 * No decoding, no dispatch through a vtable, no checks of the trace beyond the live bit, no error
 * paths, no event index. Beside them: "decode", the trace reader's own speed (hr_trace_read into
 * 24-byte events, zstd included, one thread); "zstd -dc", the file through zstd to /dev/null;
 * with --engine, "engine", `HEAPREPLAY replay --alloc null --gc none` on the same file (its own
 * wall time from --json). A replay must both decode and do the loop's work. */
#include "hr_idtab.h"
#include "hr_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ev {
    uint32_t id;
    uint32_t size;
} ev_t;

typedef struct decoded {
    uint8_t *op; /* HR_OP_ALLOC, HR_OP_FREE or HR_OP_REALLOC */
    ev_t *ev;
    size_t n, cap;
    uint64_t events; /* all of the trace's events */
    uint64_t max_id;
    size_t max_size;
} decoded_t;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_replay_floor: %s: %s\n", what, msg);
    exit(2);
}

static void push(decoded_t *d, uint8_t op, uint64_t id, uint64_t size, const char *path)
{
    if (id > UINT32_MAX || size > UINT32_MAX)
        die(path, "id or size above 32 bits (not supported by this benchmark)");
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : (1u << 20);
        d->op = realloc(d->op, d->cap);
        d->ev = realloc(d->ev, d->cap * sizeof *d->ev);
        if (!d->op || !d->ev)
            die(path, "out of memory");
    }
    d->op[d->n] = op;
    d->ev[d->n].id = (uint32_t)id;
    d->ev[d->n].size = (uint32_t)size;
    d->n++;
    if (id > d->max_id)
        d->max_id = id;
    if (size > d->max_size)
        d->max_size = size;
}

static double decode(const char *path, decoded_t *d)
{
    hr_err_t err = {0};
    hr_trace_reader_t *r;
    uint64_t t0 = hr_now_ns();
    if (hr_trace_open(&r, path, NULL, &err))
        die(path, err.msg);
    if (hr_trace_header(r)->kind != HR_KIND_ALLOC)
        die(path, "not an allocation trace");
    static hr_event_t evs[4096];
    size_t n;
    int rc;
    while ((rc = hr_trace_read(r, evs, 4096, &n, &err)) == 0 && n > 0)
        if (d)
            for (size_t i = 0; i < n; i++) {
                const hr_event_t *e = &evs[i];
                if (e->op == HR_OP_ALLOC || e->op == HR_OP_FREE || e->op == HR_OP_REALLOC)
                    push(d, e->op, e->a, e->op == HR_OP_FREE ? 0 : e->b, path);
            }
    if (rc)
        die(path, err.msg);
    if (d)
        d->events = hr_trace_status(r)->events;
    hr_trace_close(r);
    return (double)(hr_now_ns() - t0) / 1e9;
}

#define LIVE (1ull << 63)

/* What the engine writes into a new or grown block: its first and last word. */
static inline void touch(unsigned char *scratch, uint32_t id, uint32_t size)
{
    if (size >= 8) {
        memcpy(scratch, &id, 4);
        memcpy(scratch + size - 8, &id, 4);
    }
}

/* The timed loop. Returns a checksum so nothing is optimised away. */
static uint64_t floor_once(const decoded_t *d, uint64_t *table, unsigned char *scratch,
                           double *secs, uint64_t *peak_out)
{
    memset(table, 0, (d->max_id + 1) * sizeof *table);
    uint64_t live = 0, peak = 0, bytes = 0;
    uint64_t t0 = hr_now_ns();
    for (size_t i = 0; i < d->n; i++) {
        const uint32_t id = d->ev[i].id, size = d->ev[i].size;
        switch (d->op[i]) {
        case HR_OP_ALLOC:
            table[id] = LIVE | size;
            touch(scratch, id, size);
            bytes += size;
            if (++live > peak)
                peak = live;
            break;
        case HR_OP_FREE:
            if (table[id] & LIVE) {
                bytes -= (uint32_t)table[id];
                table[id] = 0;
                live--;
            }
            break;
        default: /* HR_OP_REALLOC */
            if (table[id] & LIVE) {
                bytes += size - (uint32_t)table[id];
                table[id] = LIVE | size;
                touch(scratch, id, size);
            }
            break;
        }
    }
    *secs = (double)(hr_now_ns() - t0) / 1e9;
    *peak_out = peak;
    return bytes ^ live;
}

/* The same work with the blocks' sizes in the engine's own id table (common/hr_idtab.h: leaves
 * of 256 ids, freed when empty, sparse ones packed), the compact structure that keeps a replay
 * within 16 bytes per live block (issue 4), with 8-byte records (live bit and size; the engine's
 * are 8 bytes too, with the address beside the size). A flat array is 8 bytes per id ever
 * allocated: it grows with the trace. */
static uint64_t idtab_once(const decoded_t *d, unsigned char *scratch, double *secs,
                           size_t *peak_bytes)
{
    hr_idtab_t t;
    hr_idtab_init(&t, 8);
    hr_idtab_compact(&t, 0, LIVE);
    hr_idtab_dense(&t);
    uint64_t live = 0, peak = 0, bytes = 0;
    uint64_t t0 = hr_now_ns();
    for (size_t i = 0; i < d->n; i++) {
        const uint32_t id = d->ev[i].id, size = d->ev[i].size;
        uint64_t *r;
        switch (d->op[i]) {
        case HR_OP_ALLOC:
            r = hr_idtab_put(&t, id);
            if (!r)
                die("hr_idtab_put", "out of memory");
            *r = LIVE | size;
            touch(scratch, id, size);
            bytes += size;
            if (++live > peak)
                peak = live;
            break;
        case HR_OP_FREE:
            r = hr_idtab_get_sized(&t, id, 8);
            if (r && (*r & LIVE)) {
                bytes -= (uint32_t)*r;
                *r = 0;
                hr_idtab_release(&t, id);
                live--;
            }
            break;
        default: /* HR_OP_REALLOC */
            r = hr_idtab_get_sized(&t, id, 8);
            if (r && (*r & LIVE)) {
                bytes += size - (uint32_t)*r;
                *r = LIVE | size;
                touch(scratch, id, size);
            }
            break;
        }
    }
    *secs = (double)(hr_now_ns() - t0) / 1e9;
    *peak_bytes = t.peak_bytes;
    hr_idtab_free(&t);
    return bytes ^ live ^ peak;
}

static double zstd_once(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "zstd -q -dc '%s' > /dev/null", path);
    uint64_t t0 = hr_now_ns();
    if (system(cmd) != 0)
        die(path, "zstd -dc failed");
    return (double)(hr_now_ns() - t0) / 1e9;
}

/* The engine on the same file (null allocator, none collector), its own wall time from --json. */
static double engine_once(const char *hr, const char *path)
{
    char json[4096];
    if (hr_tmp_template(json, sizeof json, "bench_replay_floor") != 0)
        die("TMPDIR", "too long for a temporary file's name");
    int fd = mkstemp(json);
    if (fd < 0)
        die(json, "cannot create");
    close(fd);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --alloc null --gc none -q --json '%s' >/dev/null",
             hr, path, json);
    if (system(cmd) != 0)
        die(path, "the engine's replay failed");
    FILE *f = fopen(json, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    unlink(json);
    buf[n] = 0;
    const char *w = strstr(buf, "\"wall_ns\": ");
    if (!w)
        die(json, "no wall_ns in the engine's --json");
    return strtod(w + 11, NULL) / 1e9;
}

int main(int argc, char **argv)
{
    const char *hr = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--engine") == 0) {
        hr = argv[2];
        first = 3;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: bench_replay_floor [--engine HEAPREPLAY] TRACE...\n");
        return 1;
    }
    printf("%-22s %10s %9s %11s %7s %11s %7s %11s %11s %11s\n", "trace", "events", "peak live",
           "flat ev/s", "B/live", "idtab ev/s", "B/live", "decode ev/s", "zstd -dc", "engine");
    for (int i = first; i < argc; i++) {
        decoded_t d = {0};
        decode(argv[i], &d);
        uint64_t *table = malloc((d.max_id + 1) * sizeof *table);
        unsigned char *scratch = calloc(1, d.max_size + 16);
        if (!table || !scratch)
            die(argv[i], "out of memory");
        double best_f = 1e30, best_h = 1e30, best_d = 1e30, best_z = 1e30, best_e = 1e30;
        uint64_t sum = 0, peak = 0;
        size_t tbytes = 0;
        for (int k = 0; k < 3; k++) { /* interleaved, so all see the same machine */
            double f, h;
            sum += floor_once(&d, table, scratch, &f, &peak);
            sum += idtab_once(&d, scratch, &h, &tbytes);
            double dd = decode(argv[i], NULL), z = zstd_once(argv[i]);
            double en = hr ? engine_once(hr, argv[i]) : 1e30;
            best_e = en < best_e ? en : best_e;
            best_f = f < best_f ? f : best_f;
            best_h = h < best_h ? h : best_h;
            best_d = dd < best_d ? dd : best_d;
            best_z = z < best_z ? z : best_z;
        }
        double n = (double)d.n, lv = peak ? (double)peak : 1;
        const char *base = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        char engine[32] = "-";
        if (hr) /* all the trace's events: the engine counts PHASE and the like too */
            snprintf(engine, sizeof engine, "%.3e", (double)d.events / best_e);
        printf("%-22s %10zu %9llu %11.3e %7.1f %11.3e %7.1f %11.3e %11.3e %11s\n", base, d.n,
               (unsigned long long)peak, n / best_f, (double)(d.max_id + 1) * 8 / lv, n / best_h,
               (double)tbytes / lv, n / best_d, n / best_z, engine);
        if (sum == 42)
            printf(" \n");
        free(table);
        free(scratch);
        free(d.op);
        free(d.ev);
    }
    printf("flat, idtab: the least work a replay does per event (events decoded in memory beforehand, "
           "one scratch block,\n  two writes per block, live counts), with sizes in a flat array "
           "by id (8 B per id ever allocated)\n  or in the engine's id table with 8-byte records; "
           "B/live: the table's bytes (peak) per peak live block.\n"
           "decode: the trace reader alone (hr_trace_read, zstd included, one thread). engine: "
           "heapreplay replay --alloc null --gc none\n  (--engine). All best of 3, interleaved.\n");
    return 0;
}

/* bench_decode.c: decode throughput of the trace reader next to `zstd -dc` of the same file, and
 * bytes per event. Usage: bench_decode TRACE... (best of 3 runs each, wall clock). */
#include "hr_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static double decode_once(const char *path, uint64_t *events, uint64_t *sum)
{
    hr_err_t err = {0};
    hr_trace_reader_t *r;
    uint64_t t0 = hr_now_ns();
    if (hr_trace_open(&r, path, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    static hr_event_t evs[4096];
    size_t n;
    uint64_t s = 0;
    int rc;
    while ((rc = hr_trace_read(r, evs, 4096, &n, &err)) == 0 && n > 0)
        for (size_t i = 0; i < n; i++)
            s += evs[i].a ^ evs[i].op; /* touch every event so nothing is optimised away */
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    *events = hr_trace_status(r)->events;
    *sum = s;
    hr_trace_close(r);
    return (double)(hr_now_ns() - t0) / 1e9;
}

static double zstd_once(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "zstd -q -dc '%s' > /dev/null", path);
    uint64_t t0 = hr_now_ns();
    if (system(cmd) != 0) {
        fprintf(stderr, "zstd -dc failed on %s\n", path);
        exit(2);
    }
    return (double)(hr_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode TRACE...\n");
        return 1;
    }
    printf("%-28s %12s %10s %14s %14s %8s\n", "trace", "events", "B/event", "decode ev/s",
           "zstd -dc ev/s", "ratio");
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            perror(argv[i]);
            return 2;
        }
        double best_dec = 1e30, best_z = 1e30;
        uint64_t events = 0, sum = 0;
        for (int k = 0; k < 3; k++) { /* interleaved, so both see the same machine state */
            double d = decode_once(argv[i], &events, &sum), z = zstd_once(argv[i]);
            best_dec = d < best_dec ? d : best_dec;
            best_z = z < best_z ? z : best_z;
        }
        const char *base = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        printf("%-28s %12llu %10.3g %14.3e %14.3e %7.2fx\n", base, (unsigned long long)events,
               (double)sb.st_size / (double)events, (double)events / best_dec,
               (double)events / best_z, best_z / best_dec);
        if (sum == 42)
            printf(" \n");
    }
    printf("ratio = decode speed / zstd -dc speed on the same file (above 1: faster than zstd -dc "
           "alone, which also writes its output to a pipe)\n");
    return 0;
}

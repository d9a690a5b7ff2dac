/* json.c: the replay result as JSON, with provenance. Field names come from the statistics
 * X-macros, so the JSON, the CSV and the text summary cannot drift apart. */
#include "hr_replay.h"

#include "hr_config.h"
#include "hr_trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define json_str hr_fput_json_string

/* CRC-32 and size of a file, as the trace's checksum in provenance. */
static int file_crc(const char *path, uint32_t *crc, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char buf[1 << 16];
    size_t n;
    *crc = 0, *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        *crc = hr_crc32(*crc, buf, n);
        *size += n;
    }
    fclose(f);
    return 0;
}

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    fclose(f);
}

static int hr_replay_write_provenance(FILE *f, const char *trace_path)
{
    uint32_t crc = 0;
    uint64_t size = 0;
    file_crc(trace_path, &crc, &size);
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    char cpu[256], date[64];
    cpu_model(cpu, sizeof cpu);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    fprintf(f, "  \"provenance\": {\n    \"heapreplay\": ");
    json_str(f, HR_VERSION);
    fprintf(f, ",\n    \"commit\": ");
    json_str(f, HR_COMMIT);
    fprintf(f, ",\n    \"compiler\": ");
#ifdef __VERSION__
    json_str(f, __VERSION__);
#else
    json_str(f, "unknown");
#endif
    fprintf(f, ",\n    \"trace\": ");
    json_str(f, trace_path);
    fprintf(f, ",\n    \"trace_bytes\": %llu,\n    \"trace_crc32\": \"%08x\",\n    \"machine\": ",
            (unsigned long long)size, crc);
    char mach[512];
    snprintf(mach, sizeof mach, "%s %s %s", u.sysname, u.release, u.machine);
    json_str(f, mach);
    fprintf(f, ",\n    \"cpu\": ");
    json_str(f, cpu);
    fprintf(f, ",\n    \"cores\": %ld,\n    \"memory_bytes\": %llu,\n    \"date\": ",
            sysconf(_SC_NPROCESSORS_ONLN),
            (unsigned long long)sysconf(_SC_PHYS_PAGES) * (unsigned long long)sysconf(_SC_PAGESIZE));
    json_str(f, date);
    fprintf(f, "\n  }");
    return 0;
}

int hr_replay_write_json(FILE *f, const char *trace_path, const hr_replay_result_t *r)
{
    fprintf(f, "{\n  \"schema\": \"heapreplay-replay/%d\",\n", HR_REPLAY_SCHEMA);
    hr_replay_write_provenance(f, trace_path);
    fprintf(f, ",\n  \"config\": {\"allocator\": ");
    json_str(f, r->alloc_spec);
    fprintf(f, ", \"collector\": ");
    json_str(f, r->gc_spec);
    fprintf(f, ", \"trace_kind\": ");
    json_str(f, hr_kind_name(r->kind));
    fprintf(f, "},\n  \"replay\": {\n");
    fprintf(f, "    \"events\": %llu,\n    \"ids\": %llu,\n    \"frames\": %llu,\n",
            (unsigned long long)r->events, (unsigned long long)r->ids,
            (unsigned long long)r->frames);
    fprintf(f, "    \"wall_ns\": %llu,\n    \"events_per_s\": %.0f,\n", (unsigned long long)r->wall_ns,
            r->wall_ns ? (double)r->events * 1e9 / (double)r->wall_ns : 0.0);
    fprintf(f, "    \"live_blocks_end\": %llu,\n    \"live_bytes_end\": %llu,\n"
               "    \"peak_live_blocks\": %llu,\n    \"peak_live_bytes\": %llu,\n",
            (unsigned long long)r->live_blocks, (unsigned long long)r->live_bytes,
            (unsigned long long)r->peak_live_blocks, (unsigned long long)r->peak_live_bytes);
    fprintf(f, "    \"rss_start\": %llu,\n    \"rss_end\": %llu,\n    \"peak_rss\": %llu,\n"
               "    \"table_bytes_peak\": %llu,\n    \"cut_short\": %s,\n",
            (unsigned long long)r->rss_start, (unsigned long long)r->rss_end,
            (unsigned long long)r->peak_rss, (unsigned long long)r->table_bytes_peak,
            r->cut_short ? "true" : "false");
    fprintf(f, "    \"checked_sets\": %llu,\n    \"checked_objects\": %llu,\n",
            (unsigned long long)r->checked_sets, (unsigned long long)r->checked_objects);
    fprintf(f, "    \"recorded_collections\": %zu,\n    \"replayed_collections\": %zu\n  },\n",
            r->recorded.n, r->replayed.n);
    fprintf(f, "  \"allocator\": {\n");
#define HR_X(field, name, desc) fprintf(f, "    \"%s\": %llu,\n", name, (unsigned long long)r->alloc.field);
    HR_ALLOC_STATS(HR_X)
#undef HR_X
    fprintf(f, "    \"fragmentation_peak\": %.4f\n  },\n",
            r->alloc.peak_bytes_in_use ? (double)r->alloc.peak_footprint / (double)r->alloc.peak_bytes_in_use : 0.0);
    fprintf(f, "  \"collector\": {\n");
    int first = 1;
#define HR_X(field, name, desc)                                                                    \
    fprintf(f, "%s    \"%s\": %llu", first ? "" : ",\n", name, (unsigned long long)r->gc.field);    \
    first = 0;
    HR_GC_STATS(HR_X)
#undef HR_X
    fprintf(f, "\n  }\n}\n");
    return ferror(f) ? HR_EIO : HR_OK;
}

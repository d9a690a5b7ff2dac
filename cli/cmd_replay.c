/* cmd_replay.c: replay (trace -> allocator + collector), allocators, collectors. */
#include "cli.h"
#include "hr_out.h"
#include "hr_replay.h"
#include "hr_trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *human_bytes(char *buf, size_t cap, double b)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4)
        b /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
    return buf;
}

static const char *human_ns(char *buf, size_t cap, double ns)
{
    if (ns < 1e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, cap, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.1f ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", ns / 1e9);
    return buf;
}

static void progress(void *arg, uint64_t events, uint64_t bytes)
{
    (void)arg;
    char b[32];
    fprintf(stderr, "\r[replay] %.1f M events, %s of trace read   ", (double)events / 1e6,
            human_bytes(b, sizeof b, (double)bytes));
}

static void sample_csv(void *arg, const hr_replay_sample_t *s)
{
    fprintf((FILE *)arg, "%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", (unsigned long long)s->event,
            (unsigned long long)s->live_objects, (unsigned long long)s->live_blocks,
            (unsigned long long)s->live_bytes, (unsigned long long)s->footprint,
            (unsigned long long)s->rss, (unsigned long long)s->gc_ns);
}

static void print_summary(const char *path, const hr_replay_result_t *r)
{
    char a[32], b[32], c[32], d[32];
    const hr_alloc_stats_t *as = &r->alloc;
    const hr_gc_stats_t *gs = &r->gc;
    printf("trace         %s (%s, %s events, %llu frame%s)\n", path, hr_kind_name(r->kind),
           hr_fmt_thousands(a, sizeof a, r->events), (unsigned long long)r->frames,
           r->frames == 1 ? "" : "s");
    printf("allocator     %s\ncollector     %s\n", r->alloc_spec, r->gc_spec);
    printf("time          %s (%.1f M events/s)\n", human_ns(a, sizeof a, (double)r->wall_ns),
           r->wall_ns ? (double)r->events * 1e3 / (double)r->wall_ns : 0.0);
    printf("blocks        peak %s live (%s); at end %s (%s)\n",
           hr_fmt_thousands(a, sizeof a, r->peak_live_blocks),
           human_bytes(b, sizeof b, (double)r->peak_live_bytes),
           hr_fmt_thousands(c, sizeof c, r->live_blocks),
           human_bytes(d, sizeof d, (double)r->live_bytes));
    printf("footprint     peak %s, at end %s (peak footprint / peak in use = %.2f)\n",
           human_bytes(a, sizeof a, (double)as->peak_footprint),
           human_bytes(b, sizeof b, (double)as->footprint),
           as->peak_bytes_in_use ? (double)as->peak_footprint / (double)as->peak_bytes_in_use : 0);
    if (r->footprint_note)
        printf("              note: %s\n", r->footprint_note);
    if (as->arenas_allocated)
        printf("arenas        allocated %llu, released %llu, peak %llu, now %llu\n",
               (unsigned long long)as->arenas_allocated, (unsigned long long)as->arenas_released,
               (unsigned long long)as->peak_arenas, (unsigned long long)as->arenas);
    printf("rss           peak %s (start %s, end %s); engine table peak %s\n",
           human_bytes(a, sizeof a, (double)r->peak_rss), human_bytes(b, sizeof b, (double)r->rss_start),
           human_bytes(c, sizeof c, (double)r->rss_end),
           human_bytes(d, sizeof d, (double)r->table_bytes_peak));
    if (r->kind == HR_KIND_GRAPH || gs->collections) {
        printf("collections   %llu (gen0 %llu, gen1 %llu, gen2 %llu)", (unsigned long long)gs->collections,
               (unsigned long long)gs->collections_gen0, (unsigned long long)gs->collections_gen1,
               (unsigned long long)gs->collections_gen2);
        if (r->recorded.n)
            printf("; the recorded program ran %zu", r->recorded.n);
        printf("\n");
    }
    if (r->kind == HR_KIND_GRAPH) {
        printf("objects       %s allocated, %s reclaimed (%s by refcount, %s by tracing)\n",
               hr_fmt_thousands(a, sizeof a, gs->objects_allocated),
               hr_fmt_thousands(b, sizeof b, gs->objects_reclaimed),
               hr_fmt_thousands(c, sizeof c, gs->objects_by_refcount),
               hr_fmt_thousands(d, sizeof d, gs->objects_by_tracing));
        printf("leaked        %s objects, %s (unreachable, never reclaimed); %s objects still "
               "reachable at the end\n",
               hr_fmt_thousands(a, sizeof a, gs->objects_leaked),
               human_bytes(b, sizeof b, (double)gs->bytes_leaked),
               hr_fmt_thousands(c, sizeof c, gs->objects_live_end));
        if (gs->collections)
            printf("pauses        p50 %s, p99 %s, max %s; total %s\n",
                   human_ns(a, sizeof a, (double)gs->pause_p50_ns),
                   human_ns(b, sizeof b, (double)gs->pause_p99_ns),
                   human_ns(c, sizeof c, (double)gs->pause_max_ns),
                   human_ns(d, sizeof d, (double)gs->gc_ns));
        printf("work          %s objects and %s links visited by collections\n",
               hr_fmt_thousands(a, sizeof a, gs->objects_visited),
               hr_fmt_thousands(b, sizeof b, gs->links_visited));
        printf("drag          mean %llu events, max %llu\n", (unsigned long long)gs->drag_mean_events,
               (unsigned long long)gs->drag_max_events);
    }
    if (r->checked_sets)
        printf("check         %llu reclamation sets (%llu objects) verified as garbage\n",
               (unsigned long long)r->checked_sets, (unsigned long long)r->checked_objects);
}

static int run_replay(int argc, char **argv)
{
    hr_opt_t o[] = {
        {"--alloc", "-a", 1, NULL},   {"--gc", "-g", 1, NULL},       {"--json", NULL, 1, NULL},
        {"--timeline", NULL, 1, NULL}, {"--every", NULL, 1, NULL},   {"--check", NULL, 0, NULL},
        {"--alloc-stats", NULL, 0, NULL}, {"--partial", NULL, 0, NULL},
        {"--no-touch", NULL, 0, NULL}, {"--quiet", "-q", 0, NULL},
    };
    enum { ALLOC, GC, JSON, TIMELINE, EVERY, CHECK, ASTATS, PARTIAL, NOTOUCH, QUIET };
    char *in[1];
    int n;
    if (hr_cli_parse("replay", argc, argv, o, HR_ARRAY_LEN(o), in, 1, &n))
        return 1;
    if (n != 1)
        return hr_cli_usage("replay", "expected one TRACE");
    if (hr_cli_replaces_input("replay", "--json", o[JSON].value, in[0]) ||
        hr_cli_replaces_input("replay", "--timeline", o[TIMELINE].value, in[0]))
        return 1;
    hr_replay_opts_t ro = {.alloc_spec = o[ALLOC].value, .gc_spec = o[GC].value,
                           .check = o[CHECK].value != NULL, .partial = o[PARTIAL].value != NULL,
                           .no_touch = o[NOTOUCH].value != NULL};
    if (o[EVERY].value && (hr_parse_size(o[EVERY].value, &ro.every) || ro.every == 0))
        return hr_cli_usage("replay", "--every takes a positive number of events");
    /* Both outputs are opened before the replay: a bad path costs nothing, and an existing
     * file is replaced only when the replay succeeds (a failed one leaves it as it was). A trace
     * cut short and replayed with --partial is a success: its CSV and JSON are kept. */
    hr_err_t err = {0};
    hr_out_t tl_out = HR_OUT_INIT, json_out = HR_OUT_INIT;
    FILE *tl = NULL;
    if (o[TIMELINE].value) {
        if (!ro.every)
            ro.every = 100000;
        if (hr_out_open(&tl_out, o[TIMELINE].value, &err) || !(tl = hr_out_stream(&tl_out, &err))) {
            hr_out_abort(&tl_out);
            return hr_cli_fail(&err);
        }
        fprintf(tl, "event,live_objects,live_blocks,live_bytes,footprint,rss,gc_ns\n");
        ro.sample = sample_csv;
        ro.sample_arg = tl;
    } else if (ro.every) {
        return hr_cli_usage("replay", "--every goes with --timeline");
    }
    if (o[JSON].value && hr_out_open(&json_out, o[JSON].value, &err)) {
        hr_out_abort(&tl_out);
        return hr_cli_fail(&err);
    }
    if (tl && hr_out_same(&tl_out, &json_out)) {
        /* one temporary file for both: the JSON would be written over the CSV after the CSV
         * was renamed into place, leaving a mix of the two, and the run would fail */
        hr_out_abort(&tl_out);
        hr_out_abort(&json_out);
        return hr_cli_usage("replay", "--json %s and --timeline %s name the same file",
                            o[JSON].value, o[TIMELINE].value);
    }
    if (isatty(2) && !o[QUIET].value)
        ro.progress = progress;
    hr_replay_result_t res;
    int rc = hr_replay_run(in[0], &ro, &res, &err);
    if (ro.progress && res.events >= (1u << 20))
        fprintf(stderr, "\r%60s\r", "");
    if (rc) {
        hr_out_abort(&tl_out);
        hr_out_abort(&json_out);
        hr_replay_result_free(&res);
        return hr_cli_fail(&err);
    }
    int status = 0;
    if (tl && hr_out_commit(&tl_out, &err))
        status = hr_cli_fail(&err);
    print_summary(in[0], &res);
    if (o[ASTATS].value) {
        if (res.alloc_text.len)
            printf("\n%s", (const char *)res.alloc_text.data);
        else
            printf("\n(allocator '%s' has no statistics text)\n", res.alloc_spec);
    }
    if (o[JSON].value) {
        hr_err_t jerr = {0};
        FILE *f = hr_out_stream(&json_out, &jerr);
        if (!f) {
            hr_out_abort(&json_out);
        } else {
            /* a write error stays in the stream's error flag: the commit reports it, with why */
            (void)hr_replay_write_json(f, in[0], &res);
            hr_out_commit(&json_out, &jerr);
        }
        if (jerr.code)
            status = hr_cli_fail(&jerr);
    }
    if (res.cut_short)
        fprintf(stderr, "heapreplay: warning: the trace was cut short; replayed what it holds\n");
    hr_replay_result_free(&res);
    return status;
}

const hr_cmd_t hr_cmd_replay = {
    "replay", "TRACE [--alloc SPEC] [--gc SPEC] [--json OUT] [--timeline OUT.csv [--every N]] [--check]",
    "Replay a trace against an allocator and a collector and report what happened.",
    "  -a, --alloc SPEC     allocator (default pymalloc:preset=3.11)\n"
    "  -g, --gc SPEC        collector (default generational:700,10,10)\n"
    "  --json OUT           write the results with their provenance as JSON\n"
    "  --timeline OUT.csv   sample live objects, live bytes, footprint, RSS and GC time\n"
    "  --every N            sampling interval in events (default 100000)\n"
    "  --check              verify every reclamation against an independent shadow heap graph\n"
    "                       (use-after-free and double free are always errors; a count below\n"
    "                       zero or a missing link too, except under --gc none, which ignores\n"
    "                       graph events)\n"
    "  --alloc-stats        print the allocator's own statistics text at the end (pymalloc and\n"
    "                       cpython: the format of sys._debugmallocstats())\n"
    "  --partial            replay a trace that was cut short, up to its last complete frame\n"
    "                       (a success: the CSV and JSON of that part are written)\n"
    "  --no-touch           do not write into blocks (measures bookkeeping alone)\n"
    "  -q, --quiet          no progress display\n",
    run_replay,
    "Replay a trace against an allocator and a collector and report what happened.\n"
    "Allocation-only traces replay their explicit frees; in graph traces the collector decides\n"
    "when objects die. 'heapreplay allocators' and 'heapreplay collectors' list the specs.\n"
    "--json and --timeline are checked before the replay and replace an existing file only when\n"
    "the replay succeeds (a symlink is followed, a device or FIFO is written through)."};

/* `allocators` and `collectors`: print what a family's describe function writes. */
static int print_family(const char *cmd, int argc, int (*describe)(hr_buf_t *out))
{
    if (argc > 1)
        return hr_cli_usage(cmd, "takes no arguments");
    hr_buf_t b;
    hr_buf_init(&b);
    int rc = describe(&b);
    fwrite(b.data, 1, b.len, stdout);
    hr_buf_free(&b);
    return rc ? 3 : 0;
}

static int run_allocators(int argc, char **argv)
{
    (void)argv;
    return print_family("allocators", argc, hr_alloc_describe);
}

const hr_cmd_t hr_cmd_allocators = {"allocators", "",
                                    "List the allocator backends built in, their parameters and presets.",
                                    "", run_allocators, NULL};

static int run_collectors(int argc, char **argv)
{
    (void)argv;
    return print_family("collectors", argc, hr_gc_describe);
}

const hr_cmd_t hr_cmd_collectors = {"collectors", "", "List the collectors built in and their parameters.",
                                    "", run_collectors, NULL};

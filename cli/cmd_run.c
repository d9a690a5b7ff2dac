/* cmd_run.c: run (experiment scripts: sweeps, results, figures) and refcounts (the largest
 * reference count of every object in a graph trace). */
#include "cli.h"
#include "hr_config.h"
#include "hr_lua.h"
#include "hr_out.h"
#include "hr_refcounts.h"
#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* {==== run ==== */

static int run_run(int argc, char **argv)
{
    hr_opt_t o[] = {{"--jobs", "-j", 1, NULL},  {"--resume", NULL, 0, NULL},
                    {"--out", "-o", 1, NULL},   {"--quiet", "-q", 0, NULL}};
    char *ops[HR_SPEC_MAX_PARAMS + 1];
    int n;
    if (hr_cli_parse("run", argc, argv, o, HR_ARRAY_LEN(o), ops, HR_SPEC_MAX_PARAMS + 1, &n))
        return 1;
    if (n < 1)
        return hr_cli_usage("run", "expected EXPERIMENT.lua [key=value ...]");
    hr_lua_run_opts_t ro = {.script = ops[0], .out = o[2].value ? o[2].value : "results",
                            .resume = o[1].value != NULL, .quiet = o[3].value != NULL};
    if (o[0].value) {
        uint64_t j;
        if (hr_parse_u64(o[0].value, &j) || j < 1 || j > 1024)
            return hr_cli_usage("run", "--jobs takes a number from 1 to 1024, not '%s'", o[0].value);
        ro.jobs = (int)j;
    }
    /* key=value parameters for the script, as a spec "run:k=v,..." */
    char spec[1024];
    size_t len = (size_t)snprintf(spec, sizeof spec, "run");
    for (int i = 1; i < n && len < sizeof spec; i++) {
        if (!strchr(ops[i], '=') || ops[i][0] == '=')
            return hr_cli_usage("run", "parameters are key=value, not '%s'", ops[i]);
        if (strchr(ops[i], ','))
            return hr_cli_usage("run", "a parameter value cannot hold ',' ('%s')", ops[i]);
        len += (size_t)snprintf(spec + len, sizeof spec - len, "%c%s", i == 1 ? ':' : ',', ops[i]);
    }
    if (len >= sizeof spec)
        return hr_cli_usage("run", "too many parameters");
    hr_err_t err = {0};
    hr_spec_t params;
    if (hr_spec_parse(&params, spec, "parameters", &err))
        return hr_cli_fail(&err);
    ro.params = &params;
    /* the command line, for provenance */
    char cmdline[4096];
    size_t cl = (size_t)snprintf(cmdline, sizeof cmdline, "heapreplay");
    for (int i = 0; i < argc && cl < sizeof cmdline; i++)
        cl += (size_t)snprintf(cmdline + cl, sizeof cmdline - cl, " %s", argv[i]);
    ro.command_line = cmdline;
    if (hr_lua_run(&ro, &err)) {
        fprintf(stderr, "heapreplay run: %s\n", err.msg);
        return strstr(err.msg, "interrupted by signal") ? 130 : hr_exit_status(err.code);
    }
    return 0;
}

const hr_cmd_t hr_cmd_run = {
    "run", "EXPERIMENT.lua [key=value ...] [--jobs N] [--resume] [--out DIR]",
    "Run an experiment script: parallel sweeps, results with provenance, figures.",
    "  -j, --jobs N         parallel jobs (default: one per online CPU); hyperfine timing jobs\n"
    "                       always run alone\n"
    "  --resume             keep the finished jobs of an earlier, interrupted run (without it the\n"
    "                       earlier runs of the experiment are discarded)\n"
    "  -o, --out DIR        results root (default results): writes DIR/NAME/\n"
    "  -q, --quiet          no progress messages\n",
    run_run,
    "Run an experiment script: parallel sweeps, results with provenance, figures.\n\n"
    "Makes the script's traces, runs every configuration of its grid as an independent job (one\n"
    "child process each, in parallel), and writes DIR/NAME/: results.csv (one row per run), runs/\n"
    "(the JSON of every run), provenance.json and figures/ (PNG, PDF, SVG via gnuplot).\n"
    "key=value parameters reach the script as params (e.g. size=small); one that the script\n"
    "and its suites do not read while they load is refused before anything runs. A script that\n"
    "declares no experiment simply runs, with the hr module. See docs/experiments.md,\n"
    "docs/lua-api.md.\n\n"
    "Exit status 1 is also the script's own mistakes (at their line), 2 a trace that cannot be\n"
    "read, 3 a failed job or file, 130 an interruption (SIGINT/SIGTERM: the finished jobs are\n"
    "kept for --resume)."};

/* {==== refcounts ==== */

#define json_str hr_fput_json_string

/* Write the JSON into out (opened before the trace was read) and put it into place. */
static int write_rc_json(hr_out_t *out, const char *trace, const hr_rc_stats_t *st, hr_err_t *err)
{
    FILE *f = hr_out_stream(out, err);
    if (!f) {
        hr_out_abort(out);
        return HR_ENOMEM;
    }
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    fprintf(f, "{\n  \"schema\": \"heapreplay-refcounts/1\",\n  \"provenance\": {\"heapreplay\": ");
    json_str(f, HR_VERSION);
    fprintf(f, ", \"commit\": ");
    json_str(f, HR_COMMIT);
    fprintf(f, ", \"trace\": ");
    json_str(f, trace);
    fprintf(f, ", \"date\": ");
    json_str(f, date);
    fprintf(f, "},\n  \"kind\": ");
    json_str(f, hr_kind_name(st->kind));
    fprintf(f, ",\n  \"events\": %llu,\n  \"objects\": %llu,\n  \"ops\": %llu,\n  \"max\": %llu,\n"
               "  \"below_zero\": %llu,\n  \"cut_short\": %s,\n  \"fit\": [",
            (unsigned long long)st->events, (unsigned long long)st->objects,
            (unsigned long long)st->ops, (unsigned long long)st->max_count,
            (unsigned long long)st->below_zero, st->cut_short ? "true" : "false");
    for (unsigned b = 1; b <= 16; b++)
        fprintf(f, "%s%llu", b > 1 ? ", " : "", (unsigned long long)hr_rc_fit_bits(st, b));
    fprintf(f, "],\n  \"hist\": [");
    int first = 1;
    for (size_t c = 0; c < st->nhist; c++)
        if (st->hist[c]) {
            fprintf(f, "%s\n    {\"count\": %zu, \"objects\": %llu}", first ? "" : ",", c,
                    (unsigned long long)st->hist[c]);
            first = 0;
        }
    fprintf(f, "\n  ]\n}\n");
    return hr_out_commit(out, err);
}

static int run_refcounts(int argc, char **argv)
{
    hr_opt_t o[] = {{"--json", NULL, 1, NULL}, {"--partial", NULL, 0, NULL}};
    char *in[1];
    int n;
    if (hr_cli_parse("refcounts", argc, argv, o, HR_ARRAY_LEN(o), in, 1, &n))
        return 1;
    if (n != 1)
        return hr_cli_usage("refcounts", "expected one TRACE");
    if (hr_cli_replaces_input("refcounts", "--json", o[0].value, in[0]))
        return 1;
    hr_rc_stats_t st;
    hr_err_t err = {0};
    /* the output is opened first: a bad path is refused before the trace is read, and an
     * existing file is replaced only once the JSON is complete */
    hr_out_t json = HR_OUT_INIT;
    if (o[0].value && hr_out_open(&json, o[0].value, &err))
        return hr_cli_fail(&err);
    if (hr_refcounts(in[0], o[1].value != NULL, &st, &err)) {
        hr_rc_stats_free(&st);
        hr_out_abort(&json);
        return hr_cli_fail(&err);
    }
    if (st.cut_short) /* as replay and dump say it with --partial */
        fprintf(stderr, "heapreplay: warning: the trace was cut short; counted what it holds\n");
    char a[32], b[32];
    printf("trace         %s (%s, %s events)\n", in[0], hr_kind_name(st.kind),
           hr_fmt_thousands(a, sizeof a, st.events));
    printf("objects       %s; %s count changes (incref, decref, link, unlink)\n",
           hr_fmt_thousands(a, sizeof a, st.objects), hr_fmt_thousands(b, sizeof b, st.ops));
    if (st.kind != HR_KIND_GRAPH)
        printf("(an allocation-only trace has no objects: record with --mode graph)\n");
    if (st.objects) {
        printf("largest count %llu\n", (unsigned long long)st.max_count);
        printf("\nlargest count   objects        share   cumulative\n");
        /* every count up to 16 and the three largest counts reached get a row each; the
         * counts between those two are summed into one row (e.g. "17-377"), so that the
         * column adds up to every object */
        size_t tail = st.nhist; /* the smallest of the three largest non-empty counts */
        for (size_t c = st.nhist, seen = 0; c-- > 17 && seen < 3;)
            if (st.hist[c])
                tail = c, seen++;
        uint64_t cum = 0, mid = 0;
        size_t mid_lo = 0, mid_hi = 0;
        for (size_t c = 0; c < st.nhist; c++) {
            if (!st.hist[c])
                continue;
            if (c > 16 && c < tail) {
                if (!mid)
                    mid_lo = c;
                mid_hi = c;
                mid += st.hist[c];
                continue;
            }
            if (mid) { /* the summed row, before the first of the three largest */
                char r[48];
                cum += mid;
                snprintf(r, sizeof r, mid_lo == mid_hi ? "%zu" : "%zu-%zu", mid_lo, mid_hi);
                printf("%13s %9s %11.3f%% %11.3f%%\n", r, hr_fmt_thousands(a, sizeof a, mid),
                       100.0 * (double)mid / (double)st.objects,
                       100.0 * (double)cum / (double)st.objects);
                mid = 0;
            }
            cum += st.hist[c];
            printf("%13zu %9s %11.3f%% %11.3f%%\n", c, hr_fmt_thousands(a, sizeof a, st.hist[c]),
                   100.0 * (double)st.hist[c] / (double)st.objects,
                   100.0 * (double)cum / (double)st.objects);
        }
        printf("\nbits needed   ");
        for (unsigned bits = 1; bits <= 8; bits++)
            printf("%u: %.2f%%%s", bits, 100.0 * (double)hr_rc_fit_bits(&st, bits) / (double)st.objects,
                   bits < 8 ? ", " : "\n");
    }
    if (st.below_zero)
        printf("below zero    %llu times (clamped at 0: the trace's counts are approximate there)\n",
               (unsigned long long)st.below_zero);
    int status = 0;
    if (o[0].value && write_rc_json(&json, in[0], &st, &err) != 0)
        status = hr_cli_fail(&err);
    hr_rc_stats_free(&st);
    return status;
}

const hr_cmd_t hr_cmd_refcounts = {
    "refcounts", "TRACE [--json OUT] [--partial]",
    "Histogram of the largest reference count each object of a graph trace reaches.",
    "  --json OUT           write the histogram as JSON (schema heapreplay-refcounts/1)\n"
    "  --partial            accept a trace that was cut short\n",
    run_refcounts,
    "Histogram of the largest reference count each object of a graph trace reaches.\n\n"
    "A count is external references + links in; the report gives the share of objects whose\n"
    "count fits in 1..8 bits (after Shahriyar, Blackburn and Frampton, ISMM 2012). The table\n"
    "has a row for each count up to 16 and for the three largest counts reached; the counts\n"
    "between are summed into one row (e.g. '17-220'). --json has every count."};

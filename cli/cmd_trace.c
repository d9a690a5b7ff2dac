/* cmd_trace.c: trace commands: pack (text -> binary), dump (binary -> text), info, gen. */
#include "cli.h"
#include "hr_config.h"
#include "hr_gen.h"
#include "hr_lua.h"
#include "hr_out.h"
#include "hr_trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 4096

static int parse_write_opts(const char *cmd, const char *frame, const char *level,
                            hr_trace_write_opts_t *o)
{
    uint64_t v;
    if (frame) {
        if (hr_parse_size(frame, &v) || v < 64 || v > HR_TRACE_FRAME_LIMIT / 2)
            return hr_cli_usage(cmd, "--frame-size takes a size from 64 to 32M, not '%s'", frame);
        o->frame_target = (size_t)v;
    }
    if (level) {
        if (hr_parse_u64(level, &v) || v < 1 || v > 19)
            return hr_cli_usage(cmd, "--level takes 1 to 19, not '%s'", level);
        o->level = (int)v;
    }
    return 0;
}

/* {==== pack ==== */

static int run_pack(int argc, char **argv)
{
    hr_opt_t o[] = {{"-o", "--output", 1, NULL}, {"--frame-size", NULL, 1, NULL},
                    {"--level", NULL, 1, NULL}};
    char *in[1];
    int n;
    if (hr_cli_parse("pack", argc, argv, o, 3, in, 1, &n))
        return 1;
    if (n != 1 || !o[0].value)
        return hr_cli_usage("pack", "expected TEXT -o TRACE");
    hr_trace_write_opts_t wo = {.atomic = 1};
    if (hr_cli_replaces_input("pack", "-o", o[0].value, in[0]))
        return 1;
    if (parse_write_opts("pack", o[1].value, o[2].value, &wo))
        return 1;
    hr_err_t err = {0};
    if (hr_trace_pack_text(in[0], o[0].value, &wo, &err))
        return hr_cli_fail(&err);
    return 0;
}

const hr_cmd_t hr_cmd_pack = {
    "pack", "TEXT -o TRACE [--frame-size SIZE] [--level N]",
    "Encode a text trace (one event per line) into a binary trace.",
    "  -o, --output TRACE   the binary trace to write (written atomically: an existing file\n"
    "                       is replaced only when packing succeeds)\n"
    "  --frame-size SIZE    payload bytes per zstd frame (default 1M)\n"
    "  --level N            zstd level, 1-19 (default 3)\n",
    run_pack, NULL};

/* {==== dump ==== */

static int run_dump(int argc, char **argv)
{
    hr_opt_t o[] = {{"--limit", "-n", 1, NULL}, {"--partial", NULL, 0, NULL},
                    {"-o", "--output", 1, NULL}};
    char *in[1];
    int n;
    if (hr_cli_parse("dump", argc, argv, o, 3, in, 1, &n))
        return 1;
    if (n != 1)
        return hr_cli_usage("dump", "expected one TRACE");
    uint64_t limit = UINT64_MAX;
    if (o[0].value && hr_parse_u64(o[0].value, &limit))
        return hr_cli_usage("dump", "--limit takes a number of events, not '%s'", o[0].value);
    if (hr_cli_replaces_input("dump", "-o", o[2].value, in[0]))
        return 1;
    /* -o: written beside its target and put in place only when the whole trace was read, so a
     * bad trace leaves an existing file as it was (with --partial a cut-short trace is a
     * success: its text up to the last complete frame is kept) */
    hr_err_t err = {0};
    hr_out_t file = HR_OUT_INIT;
    FILE *out = stdout;
    if (o[2].value && (hr_out_open(&file, o[2].value, &err) || !(out = hr_out_stream(&file, &err)))) {
        hr_out_abort(&file);
        return hr_cli_fail(&err);
    }
    hr_trace_read_opts_t ro = {.partial = o[1].value != NULL};
    hr_trace_reader_t *r;
    if (hr_trace_open(&r, in[0], &ro, &err)) {
        hr_out_abort(&file);
        return hr_cli_fail(&err);
    }
    hr_buf_t b;
    hr_buf_init(&b);
    hr_trace_format_header(&b, hr_trace_header(r));
    hr_event_t *evs = malloc(BATCH * sizeof *evs);
    uint64_t done = 0;
    int rc = evs ? HR_OK : hr_err_set(&err, HR_ENOMEM, "out of memory");
    /* past --limit the rest is still read and checked (as --help says): a trace that is cut
     * short or corrupt after the first N events is an error, not a success */
    while (!rc) {
        size_t got;
        if ((rc = hr_trace_read(r, evs, BATCH, &got, &err)) || got == 0)
            break;
        for (size_t i = 0; i < got && done < limit; i++, done++)
            hr_trace_format_event(&b, &evs[i]);
        if (b.len && fwrite(b.data, 1, b.len, out) != b.len)
            rc = hr_err_set(&err, HR_EIO, "%s: write failed: %s",
                            out == stdout ? "standard output" : o[2].value, strerror(errno));
        b.len = 0;
    }
    if (b.len) /* the header, when the first read failed */
        fwrite(b.data, 1, b.len, out);
    if (!rc && out != stdout)
        rc = hr_out_commit(&file, &err);
    hr_out_abort(&file); /* after a failure: the existing file stays, the partial text goes */
    int status = 0;
    if (rc)
        status = hr_cli_fail(&err);
    else if (hr_trace_status(r)->cut_short)
        fprintf(stderr, "heapreplay: warning: %s\n", hr_trace_status(r)->cut_msg);
    free(evs);
    hr_buf_free(&b);
    hr_trace_close(r);
    return status;
}

const hr_cmd_t hr_cmd_dump = {
    "dump", "TRACE [--limit N] [--partial] [-o TEXT]",
    "Print a binary trace in the text form (one event per line), which 'pack' reads back.",
    "  -n, --limit N        print at most N events (the rest is still read and checked)\n"
    "  --partial            accept a trace that was cut short (killed writer): print what the\n"
    "                       complete frames hold, warn, exit 0\n"
    "  -o, --output TEXT    write to a file instead of standard output (an existing file is\n"
    "                       replaced only when the whole trace was read)\n",
    run_dump, NULL};

/* {==== info ==== */

typedef struct live_view {
    uint64_t *size; /* size of each id, UINT64_MAX once freed */
    size_t cap;
    uint64_t blocks, bytes, peak_blocks, peak_bytes, peak_event;
} live_view_t;

static int live_apply(live_view_t *lv, const hr_event_t *ev, uint64_t index)
{
    switch (ev->op) {
    case HR_OP_ALLOC:
        if (ev->a >= lv->cap) {
            size_t cap = lv->cap ? lv->cap * 2 : 65536;
            uint64_t *p = realloc(lv->size, cap * sizeof *p);
            if (!p)
                return HR_ENOMEM;
            lv->size = p, lv->cap = cap;
        }
        lv->size[ev->a] = ev->b;
        lv->blocks++, lv->bytes += ev->b;
        break;
    case HR_OP_FREE:
        lv->blocks--, lv->bytes -= lv->size[ev->a];
        return HR_OK;
    case HR_OP_REALLOC:
        lv->bytes += ev->b - lv->size[ev->a];
        lv->size[ev->a] = ev->b;
        break;
    default:
        return HR_OK;
    }
    if (lv->bytes > lv->peak_bytes)
        lv->peak_bytes = lv->bytes, lv->peak_event = index;
    if (lv->blocks > lv->peak_blocks)
        lv->peak_blocks = lv->blocks;
    return HR_OK;
}

static int run_info(int argc, char **argv)
{
    hr_opt_t o[] = {{"--partial", NULL, 0, NULL}};
    char *in[1];
    int n;
    if (hr_cli_parse("info", argc, argv, o, 1, in, 1, &n))
        return 1;
    if (n != 1)
        return hr_cli_usage("info", "expected one TRACE");
    hr_err_t err = {0};
    hr_trace_read_opts_t ro = {.partial = 1}; /* always read what is there; judge at the end */
    hr_trace_reader_t *r;
    if (hr_trace_open(&r, in[0], &ro, &err))
        return hr_cli_fail(&err);
    struct stat sb;
    uint64_t fsize = stat(in[0], &sb) == 0 ? (uint64_t)sb.st_size : 0;
    uint64_t count[HR_OP_COUNT] = {0}, dom[HR_DOMAIN_COUNT] = {0}, gcflag = 0, objflag = 0;
    live_view_t lv = {0};
    hr_event_t *evs = malloc(BATCH * sizeof *evs);
    int rc = evs ? HR_OK : hr_err_set(&err, HR_ENOMEM, "out of memory");
    uint64_t index = 0;
    while (!rc) {
        size_t got;
        if ((rc = hr_trace_read(r, evs, BATCH, &got, &err)) || got == 0)
            break;
        for (size_t i = 0; i < got && !rc; i++, index++) {
            const hr_event_t *ev = &evs[i];
            count[ev->op]++;
            if (ev->op == HR_OP_ALLOC) {
                dom[ev->domain]++;
                gcflag += (ev->flags & HR_F_GC) != 0;
                objflag += (ev->flags & HR_F_OBJECT) != 0;
            }
            if (live_apply(&lv, ev, index))
                rc = hr_err_set(&err, HR_ENOMEM, "out of memory");
        }
    }
    const hr_trace_header_t *h = hr_trace_header(r);
    const hr_trace_status_t *st = hr_trace_status(r);
    char t1[32], t2[32];
    printf("file          %s (%s bytes)\n", in[0], hr_fmt_thousands(t1, sizeof t1, fsize));
    printf("format        heapreplay trace v%d, kind %s\n", h->version, hr_kind_name(h->kind));
    for (int i = 0; i < h->nmeta; i++) {
        printf("meta          ");
        hr_cli_put_safe(stdout, h->meta[i].key, 0);
        printf(" = ");
        hr_cli_put_safe(stdout, h->meta[i].value, 0);
        putchar('\n');
    }
    printf("frames        %llu, checksums %s\n", (unsigned long long)st->frames,
           rc ? "not all verified (see the error below)" : "all verified");
    if (rc)
        printf("status        BAD INPUT: %s\n", err.msg);
    else if (st->cut_short) /* how it ends: the error below, which names the file */
        printf("status        CUT SHORT: readable up to event %llu (%llu complete frames)\n",
               (unsigned long long)st->events, (unsigned long long)st->frames);
    else
        printf("status        complete (end record verified)\n");
    printf("events        %s", hr_fmt_thousands(t1, sizeof t1, st->events));
    if (st->events) {
        double bpe = (double)fsize / (double)st->events;
        printf(bpe >= 0.1 ? " (%.3f bytes/event in the file" : " (%.2g bytes/event in the file",
               bpe);
        printf(", %.2f before compression)", (double)st->payload_bytes / (double)st->events);
    }
    printf("\n");
    for (int op = 1; op < HR_OP_COUNT; op++)
        if (count[op])
            printf("  %-11s %s\n", hr_op_name(op), hr_fmt_thousands(t1, sizeof t1, count[op]));
    if (count[HR_OP_ALLOC]) {
        printf("allocs by domain  ");
        for (int d = 0; d < HR_DOMAIN_COUNT; d++)
            printf("%s %s%s", hr_domain_name(d), hr_fmt_thousands(t1, sizeof t1, dom[d]),
                   d + 1 < HR_DOMAIN_COUNT ? ", " : "\n");
        printf("allocs flagged    gc %s, object %s\n", hr_fmt_thousands(t1, sizeof t1, gcflag),
               hr_fmt_thousands(t2, sizeof t2, objflag));
    }
    printf("blocks (ids)  %s\n", hr_fmt_thousands(t1, sizeof t1, st->ids));
    printf("types         %llu\n", (unsigned long long)st->types);
    printf("peak live     %s blocks, %s bytes (at event %llu; allocation-only view%s)\n",
           hr_fmt_thousands(t1, sizeof t1, lv.peak_blocks),
           hr_fmt_thousands(t2, sizeof t2, lv.peak_bytes), (unsigned long long)lv.peak_event,
           h->kind == HR_KIND_GRAPH ? ": objects count as live to the end" : "");
    printf("live at end   %s blocks, %s bytes\n", hr_fmt_thousands(t1, sizeof t1, lv.blocks),
           hr_fmt_thousands(t2, sizeof t2, lv.bytes));
    if (st->skipped)
        printf("skipped       %llu records or frames of kinds this version does not know\n",
               (unsigned long long)st->skipped);
    int status = 0;
    if (rc)
        status = hr_cli_fail(&err);
    else if (st->cut_short) {
        fprintf(stderr, "heapreplay: %s\n", st->cut_msg);
        status = 2;
    }
    free(evs);
    free(lv.size);
    hr_trace_close(r);
    return status;
}

const hr_cmd_t hr_cmd_info = {
    "info", "TRACE",
    "Describe a trace: counts, bytes per event, peaks, frames, checksums.",
    "", run_info,
    "Describe a trace: header, event counts, bytes per event, blocks, peak live blocks and bytes,\n"
    "frames and checksum status. A trace that was cut short is described up to its last complete\n"
    "frame, and the command then exits with status 2."};

/* {==== gen ==== */

/* Where Lua workloads live: $HR_WORKLOADS, ./scripts/workloads, or the source tree's. */
static const char *workload_dir(void)
{
    static char dir[4096];
    const char *env = getenv("HR_WORKLOADS");
    if (env && *env)
        return env;
    if (access("scripts/workloads", R_OK) == 0)
        return "scripts/workloads";
    snprintf(dir, sizeof dir, "%s/scripts/workloads", HR_SOURCE_ROOT);
    return dir;
}

/* A generator name that is not built in names a Lua script: a path, or NAME in the workloads. */
static int find_script(const char *name, char *path, size_t cap)
{
    if (strchr(name, '/') || (strlen(name) > 4 && strcmp(name + strlen(name) - 4, ".lua") == 0))
        snprintf(path, cap, "%s", name);
    else
        snprintf(path, cap, "%s/%s.lua", workload_dir(), name);
    return access(path, R_OK) == 0;
}

static void list_lua_workloads(void)
{
    DIR *d = opendir(workload_dir());
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0)
            printf("%-.*s%*s (Lua: %s/%s)\n", (int)(n - 4), e->d_name, n - 4 < 12 ? (int)(12 - (n - 4)) : 0, "",
                   workload_dir(), e->d_name);
    }
    if (d)
        closedir(d);
}

static int run_gen(int argc, char **argv)
{
    hr_opt_t o[] = {{"-o", "--output", 1, NULL}, {"--list", NULL, 0, NULL},
                    {"--frame-size", NULL, 1, NULL}, {"--level", NULL, 1, NULL}};
    char *ops[HR_SPEC_MAX_PARAMS + 1];
    int n;
    if (hr_cli_parse("gen", argc, argv, o, 4, ops, HR_SPEC_MAX_PARAMS + 1, &n))
        return 1;
    if (o[1].value) {
        for (const hr_gen_vt *const *g = hr_gen_registry(); *g; g++)
            printf("%-12s %s\n%-12s parameters: %s\n", (*g)->name, (*g)->summary, "",
                   (*g)->params);
        list_lua_workloads();
        return 0;
    }
    if (n < 1 || !o[0].value)
        return hr_cli_usage("gen", "expected NAME [key=value ...] -o TRACE");
    if (hr_cli_replaces_input("gen", "-o", o[0].value, ops[0])) /* a workload given by its path */
        return 1;
    /* The parameters travel as a spec string NAME:k=v,k=v. A Lua workload's NAME is a path, which
     * may hold ':' or ','; it stands outside the spec (a path /a:b/w.lua made the spec's name
     * '/a' and its parameters 'b/w.lua:docs=3', silently dropped). A comma inside a value would
     * split it into two parameters ('seed=1,events=5' set events). */
    char spec[512];
    const int lua = !hr_gen_by_name(ops[0]);
    size_t len = (size_t)snprintf(spec, sizeof spec, "%s", lua ? "workload" : ops[0]);
    for (int i = 1; i < n && len < sizeof spec; i++) {
        if (!strchr(ops[i], '='))
            return hr_cli_usage("gen", "parameters are key=value, not '%s'", ops[i]);
        if (strchr(ops[i], ','))
            return hr_cli_usage("gen", "a parameter value cannot hold ',' ('%s')", ops[i]);
        len += (size_t)snprintf(spec + len, sizeof spec - len, "%c%s", i == 1 ? ':' : ',', ops[i]);
    }
    if (len >= sizeof spec)
        return hr_cli_usage("gen", "too many parameters");
    hr_trace_write_opts_t wo = {0};
    if (parse_write_opts("gen", o[2].value, o[3].value, &wo))
        return 1;
    hr_err_t err = {0};
    char script[4096];
    if (!hr_gen_by_name(ops[0]) && find_script(ops[0], script, sizeof script)) {
        hr_spec_t sp;
        if (hr_spec_parse(&sp, spec, "generator", &err))
            return hr_cli_fail(&err);
        if (hr_lua_gen(script, &sp, o[0].value, &wo, &err))
            return hr_cli_fail(&err);
        return 0;
    }
    if (!hr_gen_by_name(ops[0])) {
        char names[512] = "";
        for (const hr_gen_vt *const *g = hr_gen_registry(); *g; g++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     names[0] ? ", " : "", (*g)->name);
        char hint[96];
        hr_err_set(&err, HR_EUSAGE, "unknown generator '%s'%s (built in: %s; no Lua workload %s)",
                   ops[0], hr_did_you_mean(hint, sizeof hint, ops[0], names), names, script);
        return hr_cli_fail(&err);
    }
    if (hr_gen_run(spec, o[0].value, &wo, &err))
        return hr_cli_fail(&err);
    return 0;
}

const hr_cmd_t hr_cmd_gen = {
    "gen", "NAME [key=value ...] -o TRACE | --list",
    "Write a synthetic trace from a built-in generator or a Lua workload.",
    "  -o, --output TRACE   the trace to write (atomically: an existing file is replaced only\n"
    "                       when the trace is complete; a symlink is followed)\n"
    "  --list               list the generators and their parameters\n"
    "  --frame-size SIZE    payload bytes per zstd frame (default 1M)\n"
    "  --level N            zstd level, 1-19 (default 3)\n",
    run_gen,
    "Write a synthetic trace from a built-in generator (deterministic for a given seed), or from\n"
    "a Lua workload: NAME finds scripts/workloads/NAME.lua (or $HR_WORKLOADS/NAME.lua); a path\n"
    "to a .lua file works too. docs/lua-api.md describes the Lua side."};

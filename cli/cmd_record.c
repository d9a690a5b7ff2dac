/* cmd_record.c: record: run a Python script (the system's python3.11 with the recorder
 * preloaded, or an embedded CPython) or any command (LD_PRELOAD) and write its heap trace. */
#include "cli.h"
#include "hr_config.h"
#include "hr_out.h"
#include "hr_recorder.h"
#include "hr_trace.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 4096

static void rec_error(const char *msg)
{
    fprintf(stderr, "heapreplay record: error: %s\n", msg);
}

static void report_cb(const hr_err_t *err)
{
    rec_error(err->msg[0] ? err->msg : hr_strerror(err->code));
}

/* The command line that records the same way, for the trace's `command` metadata: the options
 * that shape the recording (`opts`, each with a leading space), never -o, then the quoted
 * operands. */
static char *join_cmdline(const char *opts, int n, char **args)
{
    size_t len = 64 + strlen(opts);
    for (int i = 0; i < n; i++)
        len += strlen(args[i]) * 2 + 3;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "heapreplay record%s --", opts);
    for (int i = 0; i < n; i++) {
        int plain = args[i][0] != '\0' && strspn(args[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
                                                           "KLMNOPQRSTUVWXYZ0123456789-_./=:,+%@")
                                                  == strlen(args[i]);
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", args[i]);
        } else {
            *p++ = '\'';
            for (const char *c = args[i]; *c; c++) {
                if (*c == '\'') {
                    p += sprintf(p, "'\\''");
                } else
                    *p++ = *c;
            }
            *p++ = '\'';
        }
    }
    *p = '\0';
    return s;
}

/* {==== native: find the preload module, run the command under it ==== */

/* A module of ours (`name`) next to the binary in a build tree, in $libdir/heapreplay when
 * installed, or at $`env`. */
static int find_module(const char *name, const char *env_name, char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *env = getenv(env_name);
    if (env && access(env, R_OK) == 0) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            const char *cand[] = {"%s/%s", "%s/../recorder/%s", "%s/../lib/heapreplay/%s",
                                  "%s/../lib/x86_64-linux-gnu/heapreplay/%s"};
            for (size_t i = 0; i < HR_ARRAY_LEN(cand); i++) {
                char p[PATH_MAX + 64];
                snprintf(p, sizeof p, cand[i], exe, name);
                if (access(p, R_OK) == 0 && realpath(p, out))
                    return 0;
            }
        }
    }
    snprintf(out, cap, "%s/%s", HR_LIBDIR, name);
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int exit_status_of(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 3;
}

/* How a preloaded recorder is told what to do: its module and environment. */
typedef struct preload_job {
    const char *lib;      /* the module's path */
    const char *env[16];  /* NAME=VALUE settings for the child (NULL-terminated) */
    const char *pid_var;  /* gets the child's pid */
    const char *err_var;  /* gets the error file */
    const char *path_hint; /* what to say when no trace appears */
} preload_job_t;

static int abs_path(const char *out, char *outabs, size_t cap)
{
    if (out[0] == '/') {
        snprintf(outabs, cap, "%s", out);
        return 0;
    }
    if (!getcwd(outabs, cap - strlen(out) - 2))
        return -1;
    strcat(outabs, "/");
    strcat(outabs, out);
    return 0;
}

static volatile pid_t relay_child;

/* While the recorded command runs: pass a signal on to it unless its sender is in our process
 * group (then the whole group got it, the command included: the kernel, a terminal, `timeout`). */
static void relay_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved = errno;
    pid_t from = si->si_code == SI_USER || si->si_code == SI_QUEUE ? si->si_pid : 0;
    if (relay_child > 0 && from > 0 && getpgid(from) != getpgrp())
        kill(relay_child, sig);
    errno = saved;
}

/* Fork, run args[0] with the module preloaded, wait; the exit status is the program's, or 3 when
 * it succeeded but the recorder reported an error or wrote no trace. The module writes `write`
 * (out's temporary file, or its target when that is a device or FIFO), which then goes into
 * place: a command that never started leaves an existing trace as it was. */
static int run_preloaded(const preload_job_t *job, hr_out_t *out, const char *write, char **args)
{
    char errfile[4096];
    int efd = hr_tmp_template(errfile, sizeof errfile, "heapreplay-record") ? -1 : mkstemp(errfile);
    if (efd >= 0)
        close(efd);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        rec_error("fork failed");
        return 3;
    }
    if (pid == 0) {
        char pidbuf[32], *preload;
        snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
        const char *old = getenv("LD_PRELOAD");
        size_t len = strlen(job->lib) + (old ? strlen(old) : 0) + 2;
        preload = malloc(len);
        if (old && *old)
            snprintf(preload, len, "%s:%s", job->lib, old);
        else
            snprintf(preload, len, "%s", job->lib);
        setenv("LD_PRELOAD", preload, 1);
        for (int i = 0; job->env[i]; i++) {
            const char *eq = strchr(job->env[i], '=');
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(eq - job->env[i]), job->env[i]);
            setenv(name, eq + 1, 1);
        }
        setenv(job->pid_var, pidbuf, 1);
        if (efd >= 0)
            setenv(job->err_var, errfile, 1);
        execvp(args[0], args);
        fprintf(stderr, "heapreplay record: error: cannot run '%s': %s\n", args[0],
                strerror(errno));
        _exit(127);
    }
    /* The signals that end a command (SIGINT, SIGTERM, SIGHUP, SIGQUIT) do not end us: the child
     * decides, and we report its fate and put its trace in place (SIGTERM and SIGHUP used to
     * kill us first, which removed the temporary file the child was writing: no trace at all,
     * even from a child that then finished cleanly). One sent to the whole group (a terminal's
     * Ctrl-C, `timeout`, `kill %1`) reaches the child by itself; one sent to us alone (`kill PID`
     * of heapreplay) is relayed to it, as sudo does, so that it is never delivered twice. */
    static const int group_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction relay = {.sa_sigaction = relay_signal, .sa_flags = SA_SIGINFO},
                     old_sa[HR_ARRAY_LEN(group_sigs)];
    sigemptyset(&relay.sa_mask);
    relay_child = pid;
    for (size_t i = 0; i < HR_ARRAY_LEN(group_sigs); i++)
        sigaction(group_sigs[i], &relay, &old_sa[i]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    for (size_t i = 0; i < HR_ARRAY_LEN(group_sigs); i++)
        sigaction(group_sigs[i], &old_sa[i], NULL);
    int status = exit_status_of(st);
    int recorder_failed = 0;
    if (efd >= 0) {
        FILE *f = fopen(errfile, "r");
        char line[1100];
        while (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            rec_error(line);
            recorder_failed = 1;
        }
        if (f)
            fclose(f);
        unlink(errfile);
    }
    /* The module writes its header first: an empty temporary file means it never started. */
    struct stat sb;
    int wrote = !out->tmp || (stat(write, &sb) == 0 && sb.st_size > 0);
    hr_err_t err = {0};
    if (!wrote)
        hr_out_abort(out); /* the existing file, if any, stays as it was */
    else if (hr_out_commit(out, &err)) {
        report_cb(&err);
        recorder_failed = 1;
    }
    if (status != 127 && !recorder_failed && !wrote) {
        rec_error(job->path_hint);
        recorder_failed = 1;
    }
    if (WIFSIGNALED(st))
        fprintf(stderr, "heapreplay record: the command was killed by signal %d; the trace is "
                        "readable up to its last complete frame\n", WTERMSIG(st));
    return recorder_failed && status == 0 ? 3 : status;
}

static int run_native(const char *out, char **args, const char *cmdline)
{
    char lib[PATH_MAX], outabs[PATH_MAX], e_out[PATH_MAX + 32], e_cmd[8192];
    if (find_module(HR_PRELOAD_NAME, "HEAPREPLAY_PRELOAD", lib, sizeof lib)) {
        rec_error("cannot find " HR_PRELOAD_NAME " next to the heapreplay binary or in "
                  HR_LIBDIR " (set HEAPREPLAY_PRELOAD to its path)");
        return 3;
    }
    /* The output is created here, empty, where hr_out decides (beside a symlink's target; a
     * device or FIFO is written through), so a bad path fails before the command runs and a
     * signal that kills us removes it. */
    hr_err_t err = {0};
    hr_out_t o;
    if (hr_out_open(&o, out, &err)) {
        report_cb(&err);
        return 3;
    }
    if (abs_path(hr_out_write_path(&o), outabs, sizeof outabs)) {
        hr_out_abort(&o);
        rec_error("cannot get the current directory");
        return 3;
    }
    snprintf(e_out, sizeof e_out, "%s=%s", HR_PRELOAD_ENV_OUT, outabs);
    snprintf(e_cmd, sizeof e_cmd, "%s=%s", HR_PRELOAD_ENV_CMD, cmdline);
    preload_job_t job = {.lib = lib, .env = {e_out, e_cmd, NULL}, .pid_var = HR_PRELOAD_ENV_PID,
                         .err_var = HR_PRELOAD_ENV_ERR,
                         .path_hint = "the command ran but no trace was written (a statically "
                                      "linked program, or one that resets LD_PRELOAD?)"};
    return run_preloaded(&job, &o, outabs, args);
}

#ifdef HR_HAVE_PYTHON
/* The embedded recorder, from libhr_pyembed.so (which links libpython3.11, so that no other
 * command of ours maps it). RTLD_GLOBAL: the interpreter's extension modules are not linked
 * against libpython and take its symbols from the global scope. */
static hr_record_python_fn *load_embedded(hr_err_t *err)
{
    char lib[PATH_MAX];
    if (find_module(HR_PYEMBED_NAME, "HEAPREPLAY_PYEMBED", lib, sizeof lib)) {
        hr_err_set(err, HR_EIO, "cannot find %s (the embedded recorder; set HEAPREPLAY_PYEMBED)",
                   HR_PYEMBED_NAME);
        return NULL;
    }
    void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    void *f = h ? dlsym(h, HR_PYEMBED_SYMBOL) : NULL;
    if (!f) {
        hr_err_set(err, HR_EIO, "cannot load the embedded recorder %s: %s", lib, dlerror());
        return NULL;
    }
    hr_record_python_fn *fn;
    memcpy(&fn, &f, sizeof fn); /* ISO C has no object-to-function pointer cast */
    return fn;
}

/* Read the interpreter's leading options as CPython 3.11's command line does (single-letter
 * flags, combined or not; -W and -X take a value, attached or next; --check-hash-based-pycs
 * takes the next; '--' ends the options). Returns the index of the script, or -1 when the
 * program is not a script file (-c, -m, '-' for standard input, or no argument left); *xdev is
 * set when one of the options is -X dev, in any of its spellings (-X dev, -Xdev, -bXdev,
 * -X dev=1): it selects allocators at pre-initialisation. */
static int script_index(int nargs, char **args, int *xdev)
{
    *xdev = 0;
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (strcmp(a, "--") == 0)
            return i + 1 < nargs ? i + 1 : -1;
        if (a[0] != '-')
            return i;
        if (a[1] == '\0')
            return -1; /* '-': standard input */
        if (a[1] == '-') {
            if (strcmp(a, "--check-hash-based-pycs") == 0)
                i++;
            continue;
        }
        for (const char *c = a + 1; *c; c++) {
            if (*c == 'c' || *c == 'm')
                return -1;
            if (*c == 'W' || *c == 'X') {
                const char *v = c[1] ? c + 1 : i + 1 < nargs ? args[++i] : "";
                if (*c == 'X' && (strcmp(v, "dev") == 0 || strncmp(v, "dev=", 4) == 0))
                    *xdev = 1; /* CPython takes -X dev=ANYTHING for -X dev too */
                break;
            }
        }
    }
    return -1;
}

/* The Python recorder preloaded into the system's python3.11 (the default; docs/recorder.md).
 * heapreplay becomes that interpreter (exec, same process: signals reach the program, and its
 * exit status is ours); the module reports its own errors and exits with 3 as the embedded
 * recorder does. Returns -1 when preloading is not possible here (the caller embeds instead). */
static int run_python_preloaded(const char *out, int mode, size_t frame, int level, int nargs,
                                char **args, int script, int xdev, const char *cmdline)
{
    char lib[PATH_MAX], outabs[PATH_MAX], buf[64];
    const char *pm = getenv("PYTHONMALLOC"), *dev = getenv("PYTHONDEVMODE");
    struct stat sb;
    /* -X dev among the interpreter's leading options selects allocators too (the recorder
     * reports any other way the hooks get replaced, e.g. -X dev after the script's name) */
    if (xdev || !HR_REC_PRELOAD_DEFAULT || (pm && *pm) || (dev && *dev) ||
        access(HR_PYTHON_EXE, X_OK) ||
        (script >= 0 && stat(args[script], &sb) == 0 && !S_ISREG(sb.st_mode)) ||
        find_module(HR_PYREC_NAME, "HEAPREPLAY_PYREC", lib, sizeof lib) ||
        abs_path(out, outabs, sizeof outabs))
        return -1; /* allocators chosen at pre-initialisation, a directory or zip as the script */
    char **argv = calloc((size_t)nargs + 2, sizeof *argv);
    const char *old = getenv("LD_PRELOAD");
    size_t len = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *preload = malloc(len);
    if (!argv || !preload) {
        free(argv);
        free(preload);
        return -1;
    }
    if (old && *old)
        snprintf(preload, len, "%s:%s", lib, old);
    else
        snprintf(preload, len, "%s", lib);
    if (old)
        setenv(HR_PYREC_ENV_KEEP, old, 1);
    setenv("LD_PRELOAD", preload, 1);
    setenv(HR_PYREC_ENV_OUT, outabs, 1);
    setenv(HR_PYREC_ENV_CMD, cmdline, 1);
    setenv(HR_PYREC_ENV_MODE, mode == HR_KIND_GRAPH ? "graph" : "alloc", 1);
    snprintf(buf, sizeof buf, "%zu", frame);
    setenv(HR_PYREC_ENV_FRAME, buf, 1);
    snprintf(buf, sizeof buf, "%d", level);
    setenv(HR_PYREC_ENV_LEVEL, buf, 1);
    /* the script itself when options precede it (its fopen starts the script phase, as
     * without options); -c, -m, - : the first argument, an option (see pre_begin_pending) */
    setenv(HR_PYREC_ENV_SCRIPT, args[script >= 0 ? script : 0], 1);
    snprintf(buf, sizeof buf, "%ld", (long)getpid());
    setenv(HR_PYREC_ENV_PID, buf, 1);
    argv[0] = (char *)HR_PYTHON_EXE;
    memcpy(argv + 1, args, (size_t)nargs * sizeof *argv);
    fflush(NULL);
    execv(HR_PYTHON_EXE, argv);
    /* could not exec: undo, and let the caller embed the interpreter */
    const char *names[] = {HR_PYREC_ENV_KEEP, HR_PYREC_ENV_OUT, HR_PYREC_ENV_CMD,
                           HR_PYREC_ENV_MODE, HR_PYREC_ENV_FRAME, HR_PYREC_ENV_LEVEL,
                           HR_PYREC_ENV_SCRIPT, HR_PYREC_ENV_PID};
    for (size_t i = 0; i < HR_ARRAY_LEN(names); i++)
        unsetenv(names[i]);
    if (old)
        setenv("LD_PRELOAD", old, 1);
    else
        unsetenv("LD_PRELOAD");
    free(argv);
    free(preload);
    return -1;
}
#endif

/* {==== the command ==== */

static int run_record(int argc, char **argv)
{
    hr_opt_t o[] = {{"-o", "--output", 1, NULL}, {"--mode", NULL, 1, NULL},
                    {"--native", NULL, 0, NULL}, {"--frame-size", NULL, 1, NULL},
                    {"--level", NULL, 1, NULL}, {"--embedded", NULL, 0, NULL}};
    /* Options end at "--" or at the first operand (the script or command). */
    int split = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            split = i;
            break;
        }
        int takes = 0;
        for (size_t k = 0; k < HR_ARRAY_LEN(o); k++)
            if (o[k].takes_value && strcmp(argv[i], o[k].name) == 0)
                takes = 1;
        if (takes) {
            i++;
            continue;
        }
        if (argv[i][0] != '-') {
            split = i - 1; /* operands start here */
            break;
        }
    }
    char *none[1];
    int n;
    if (hr_cli_parse("record", split < argc ? split + 1 : argc, argv, o, HR_ARRAY_LEN(o), none,
                     0, &n))
        return 1;
    int first = split < argc ? split + 1 : argc;
    int nargs = argc - first;
    char **args = argv + first;
    if (!o[0].value)
        return hr_cli_usage("record", "expected -o TRACE");
    if (nargs < 1)
        return hr_cli_usage("record", "expected the script (or, with --native, the command) "
                                      "after '--'");
    /* the trace must not take the place of the script, the program or a file it is given (the
     * Python recorder writes the trace directly: it destroyed the script before Python read it) */
    for (int i = 0; i < nargs; i++)
        if (hr_cli_replaces_input("record", "-o", o[0].value, args[i]))
            return 1;
    int mode = HR_KIND_ALLOC;
    if (o[1].value) {
        if (strcmp(o[1].value, "alloc") == 0)
            mode = HR_KIND_ALLOC;
        else if (strcmp(o[1].value, "graph") == 0)
            mode = HR_KIND_GRAPH;
        else
            return hr_cli_usage("record", "--mode takes alloc or graph, not '%s'", o[1].value);
    }
    uint64_t v = 0;
    size_t frame = 0;
    int level = 0;
    if (o[3].value) {
        if (hr_parse_size(o[3].value, &v) || v < 64 || v > HR_TRACE_FRAME_LIMIT / 2)
            return hr_cli_usage("record", "--frame-size takes a size from 64 to 32M");
        frame = (size_t)v;
    }
    if (o[4].value) {
        if (hr_parse_u64(o[4].value, &v) || v < 1 || v > 19)
            return hr_cli_usage("record", "--level takes 1 to 19");
        level = (int)v;
    }
    /* the options that shape the recording, for the metadata (--native ignores the last two) */
    const char *fs = o[2].value ? NULL : o[3].value, *lv = o[2].value ? NULL : o[4].value;
    char opts[160];
    snprintf(opts, sizeof opts, "%s%s%s%s%s%s%s", o[2].value ? " --native" : "",
             mode == HR_KIND_GRAPH ? " --mode graph" : "", o[5].value ? " --embedded" : "",
             fs ? " --frame-size " : "", fs ? fs : "", lv ? " --level " : "", lv ? lv : "");
    char *cmdline = join_cmdline(opts, nargs, args);
    if (!cmdline) {
        rec_error("out of memory");
        return 3;
    }
    int status;
    if (o[2].value) {
        if (mode != HR_KIND_ALLOC) {
            free(cmdline);
            return hr_cli_usage("record", "--native records allocations only (no --mode graph)");
        }
        if (o[3].value || o[4].value)
            fprintf(stderr, "heapreplay record: note: --frame-size and --level are ignored with "
                            "--native\n");
        status = run_native(o[0].value, args, cmdline);
        free(cmdline);
        return status;
    }
#ifdef HR_HAVE_PYTHON
    /* A script that cannot be read is bad input, said before anything is written: the
     * interpreter would print its own complaint and exit 2, after a trace of its start-up had
     * replaced the file at -o. (Checked with stat and access, not by opening it: opening a FIFO
     * would wait for a writer and swallow what it sends.) */
    int xdev;
    int si = script_index(nargs, args, &xdev);
    struct stat ssb;
    if (si >= 0 && (stat(args[si], &ssb) || access(args[si], R_OK))) {
        char msg[PATH_MAX + 128];
        snprintf(msg, sizeof msg, "cannot open the script '%s': %s (nothing was recorded)",
                 args[si], strerror(errno));
        free(cmdline);
        rec_error(msg);
        return 2;
    }
    if (!o[5].value) {
        status = run_python_preloaded(o[0].value, mode, frame, level, nargs, args, si, xdev,
                                      cmdline);
        if (status >= 0) {
            free(cmdline);
            return status;
        }
    }
    /* the script runs in this process: its signals are its own (the embedded trace is written
     * directly, so there is no temporary file to remove on a signal) */
    hr_out_release_signals();
    hr_record_opts_t ro = {.out_path = o[0].value, .mode = mode, .argc = nargs, .argv = args,
                           .cmdline = cmdline, .frame_target = frame, .level = level,
                           .report = report_cb};
    hr_err_t err = {0};
    status = -1; /* the script did not run (hr_record_python sets it once it has) */
    hr_record_python_fn *record = load_embedded(&err);
    int rc = record ? record(&ro, &status, &err) : err.code;
    free(cmdline);
    fflush(stdout);
    if (rc) {
        report_cb(&err);
        return status > 0 ? status : 3;
    }
    return status;
#else
    (void)frame, (void)level, (void)report_cb;
    free(cmdline);
    rec_error("this heapreplay was built without libpython3.11 (meson option python); only "
              "--native is available");
    return 3;
#endif
}

const hr_cmd_t hr_cmd_record = {
    "record", "-o TRACE [--mode alloc|graph] [--embedded] -- SCRIPT.py [ARGS...]\n"
              "       heapreplay record --native -o TRACE -- COMMAND [ARGS...]",
    "Record a Python program (CPython 3.11) or, with --native, any program.",
    "  -o, --output TRACE   the trace to write (with --native: replaced only once the command\n"
    "                       ran; a command that cannot start leaves an existing file alone)\n"
    "  --mode MODE          alloc (default): allocations, GC flags, collections, statistics;\n"
    "                       graph: also objects, links, increfs/decrefs and deaths\n"
    "  --embedded           run the script on libpython3.11 inside heapreplay instead of the\n"
    "                       system's python3.11 with the recorder preloaded\n"
    "  --native             record any command through LD_PRELOAD (allocations only)\n"
    "  --frame-size SIZE    payload bytes per zstd frame (default 1M)\n"
    "  --level N            zstd level, 1-19 (default 3)\n",
    run_record,
    "Run a Python script on CPython 3.11 and write its heap trace: every RAW, MEM and OBJ\n"
    "allocation from interpreter start-up on, which of them are GC-capable, pymalloc's arenas,\n"
    "every collection, and at the end gc.get_stats() and the pymalloc statistics. The script\n"
    "runs on the system's python3.11 with the recorder preloaded (the interpreter a plain run\n"
    "uses); with --embedded, or when PYTHONMALLOC, PYTHONDEVMODE or -X dev is given, on\n"
    "libpython3.11 inside heapreplay. --mode graph also records the object graph as CPython's\n"
    "cycle collector sees it. The interpreter's own options may come first, instead of or\n"
    "before the script: '-- -m MODULE ARGS...', '-- -c COMMAND', '-- -X dev SCRIPT.py'.\n"
    "With --native, run any program under an LD_PRELOAD recorder of malloc and friends.\n"
    "The exit status is the program's (128+N when it was killed by signal N); the recorder's own\n"
    "errors are printed as 'heapreplay record: error: ...' (status 3 when the program succeeded;\n"
    "2, before anything is written, when the script cannot be read).\n"
    "A killed program leaves a trace readable up to its last complete frame (frames are flushed\n"
    "at least every 250 ms). The script can mark phases: import _heapreplay;\n"
    "_heapreplay.phase(\"name\"). See docs/recorder.md."};

/* hr_recorder.h: recorders that write heapreplay traces from real programs.
 *
 *   hr_record_python  runs a Python script on an embedded CPython 3.11 with PEP 445 hooks
 *                     (docs/recorder.md: what is recorded and how exact it is); it lives in
 *                     libhr_pyembed.so, which links libpython3.11 and which the CLI loads with
 *                     dlopen (RTLD_GLOBAL: extension modules take Python's symbols from it)
 *   libhr_pyrec.so    the same recorder preloaded into the system's python3.11 (the CLI's
 *                     default), configured through the HR_PYREC_ENV_* variables below
 *   native recorder   an LD_PRELOAD module (libhr_preload.so) configured through the
 *                     environment variables below; the CLI sets them and execs the command
 */
#ifndef HR_RECORDER_H
#define HR_RECORDER_H

#include <stddef.h>

#include "hr_common.h"

/* Environment of the LD_PRELOAD recorder. */
#define HR_PRELOAD_ENV_OUT "HEAPREPLAY_NATIVE_OUT"   /* trace path */
#define HR_PRELOAD_ENV_PID "HEAPREPLAY_NATIVE_PID"   /* only this pid records (not children) */
#define HR_PRELOAD_ENV_CMD "HEAPREPLAY_NATIVE_CMD"   /* command line, for the metadata */
#define HR_PRELOAD_ENV_ERR "HEAPREPLAY_NATIVE_ERR"   /* file for the recorder's own errors */
#define HR_PRELOAD_NAME "libhr_preload.so"

/* Environment of the Python recorder preloaded into the system's python3.11 (libhr_pyrec.so);
 * the module removes these (and itself from LD_PRELOAD) before the program starts. */
#define HR_PYREC_ENV_OUT "HEAPREPLAY_PY_OUT"       /* trace path */
#define HR_PYREC_ENV_PID "HEAPREPLAY_PY_PID"       /* only this pid records */
#define HR_PYREC_ENV_CMD "HEAPREPLAY_PY_CMD"       /* command line, for the metadata */
#define HR_PYREC_ENV_MODE "HEAPREPLAY_PY_MODE"     /* alloc or graph */
#define HR_PYREC_ENV_FRAME "HEAPREPLAY_PY_FRAME"   /* frame target, 0: default */
#define HR_PYREC_ENV_LEVEL "HEAPREPLAY_PY_LEVEL"   /* zstd level, 0: default */
#define HR_PYREC_ENV_SCRIPT "HEAPREPLAY_PY_SCRIPT" /* the script path, as passed to python */
#define HR_PYREC_ENV_KEEP "HEAPREPLAY_PY_KEEP"     /* LD_PRELOAD before ours (set if there was one) */
#define HR_PYREC_NAME "libhr_pyrec.so"
#define HR_PYEMBED_NAME "libhr_pyembed.so"
#define HR_PYEMBED_SYMBOL "hr_record_python"

#ifdef HR_REC_EMBED_MODULE
#define HR_REC_EXPORT __attribute__((visibility("default")))
#else
#define HR_REC_EXPORT
#endif

typedef struct hr_record_opts {
    const char *out_path;  /* borrowed: the trace to write */
    int mode;              /* HR_KIND_ALLOC or HR_KIND_GRAPH */
    int argc;              /* script and its arguments (argv[0] is the script) */
    char **argv;           /* borrowed */
    const char *cmdline;   /* borrowed: the whole command line, for the metadata */
    size_t frame_target;   /* 0: the writer's default (1 MiB) */
    int level;             /* zstd level, 0: default */
    /* Called (and the process then exits with status 3) when closing the trace fails in the
     * exit path that sys.exit() takes; NULL: the error is lost. */
    void (*report)(const hr_err_t *err);
} hr_record_opts_t;

/* Run the script and record it. At most once per process (CPython cannot be re-embedded with
 * hooks installed before start-up). On success returns 0 and *exit_status is the script's exit
 * status (as `python3 SCRIPT` would give). On a recorder failure returns a negative hr_code_t with
 * err filled; *exit_status still holds the script's status when the script ran, -1 if it
 * did not. A script that
 * calls sys.exit() ends the process from inside CPython: the recorder then closes the trace from
 * an atexit handler and the process exits with the script's status. */
typedef int hr_record_python_fn(const hr_record_opts_t *o, int *exit_status, hr_err_t *err);
HR_REC_EXPORT hr_record_python_fn hr_record_python;

#endif

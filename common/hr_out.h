/* hr_out.h: where and how an output file is written, for every writer that must not lose what
 * a path already holds (traces, CSV, JSON, dumps).
 *
 * The rule, decided once here for all of them:
 *   - a symlink is followed (to its final target, through chains): the data goes to the target
 *     and the link stays a link;
 *   - a target that does not exist yet or is a regular file gets a temporary file beside it
 *     (TARGET.tmp.PID), renamed onto it only when the writer succeeds (hr_out_commit): a failed
 *     or killed run leaves the old file as it was;
 *   - an existing target that is not a regular file (a device, a FIFO, a socket) is written
 *     through directly: renaming over it would replace the device node or the pipe with a
 *     regular file;
 *   - a directory is an error.
 * Temporary files are registered so that hr_out_catch_signals' handler can remove them when the
 * process is killed by SIGINT, SIGTERM or SIGHUP. */
#ifndef HR_OUT_H
#define HR_OUT_H

#include <stdio.h>

#include "hr_common.h"

typedef struct hr_out {
    char *path;   /* the path the caller named (for messages); owned */
    char *target; /* where the data ends up: path with its symlinks resolved; owned */
    char *tmp;    /* the temporary file beside target, or NULL when written through; owned */
    int fd;       /* -1 until opened, and after commit or abort */
    FILE *f;      /* the stream of hr_out_stream, or NULL */
    int werr;     /* errno of the stream's first failed write, 0 if none */
    int slot;     /* signal-cleanup registration of tmp, -1 when none */
} hr_out_t;

#define HR_OUT_INIT {.fd = -1, .slot = -1} /* an empty hr_out_t, which hr_out_abort accepts */

/* Decide where path is written, without creating anything: fills target and tmp. Fails for a
 * directory (HR_EUSAGE), a symlink that cannot be followed, or a target whose directory does
 * not exist or is not writable (HR_EIO), so a command can refuse a bad output path before its
 * real work. On failure o is left empty (HR_OUT_INIT). */
int hr_out_prepare(hr_out_t *o, const char *path, hr_err_t *err);

/* hr_out_prepare, then create the temporary file (or open the target to write through) in o->fd.
 * Nothing the target holds is touched yet. */
int hr_out_open(hr_out_t *o, const char *path, hr_err_t *err);

/* The path a writer in another process should create (the temporary file, or the target when it
 * is written through). For a prepared o whose file someone else writes (the recorder). */
const char *hr_out_write_path(const hr_out_t *o);

/* Whether writing out_path would replace the regular file in_path (the same file, however it is
 * spelled: "x", "./x", a symlink to x): a command refuses an output that is one of its inputs
 * (a trace, a script) before its work, since the output would take the input's place. 0 when
 * either does not exist. */
int hr_out_replaces(const char *out_path, const char *in_path);

/* Whether two opened outputs would end up in the same regular file (the same target, however
 * it was spelled: "x", "./x", a symlink to x). Two such writers in one process share the
 * temporary file TARGET.tmp.PID, so each would truncate and overwrite the other's data: a
 * command with two outputs refuses that before its work. Written-through devices never count. */
int hr_out_same(const hr_out_t *a, const hr_out_t *b);

/* A stdio stream on o->fd (owned by o: hr_out_commit and hr_out_abort close it). It remembers
 * the reason of a failed write for hr_out_commit's message, through a pointer to o: o must not
 * move while the stream is open. NULL with err set when out of memory. */
FILE *hr_out_stream(hr_out_t *o, hr_err_t *err);

/* Finish: flush and fsync (when the fd is open), close, rename the temporary file onto the
 * target (then fsync the directory). A write, close or rename error is reported with the path
 * and the system's reason, and the temporary file is removed. Frees o's strings either way.
 * After a successful rename, the target's temporary files left by processes that no longer
 * exist (TARGET.tmp.PID of a writer killed by SIGKILL, which no handler sees) are removed. */
int hr_out_commit(hr_out_t *o, hr_err_t *err);

/* Give up: close, remove the temporary file, free o's strings. Accepts an empty or finished o. */
void hr_out_abort(hr_out_t *o);

/* Install the handler that removes registered temporary files on SIGINT, SIGTERM and SIGHUP and
 * then dies by the same signal (default action, so the exit status shows it). A signal that is
 * ignored or already handled is left alone. For programs (the CLI); library code never calls it. */
void hr_out_catch_signals(void);
/* Give SIGINT, SIGTERM and SIGHUP back to their default action where hr_out_catch_signals took
 * them (a program run inside this process, the embedded recorder's script, must find them as a
 * plain run does: Python installs its KeyboardInterrupt handler only over the default). */
void hr_out_release_signals(void);

#endif /* HR_OUT_H */

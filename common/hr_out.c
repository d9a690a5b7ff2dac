/* hr_out.c: output files written without losing what their path held (see hr_out.h). */
#include "hr_out.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* {==== Temporary files removed on SIGINT, SIGTERM, SIGHUP ====
 * The handler may run at any moment, so it only reads paths copied here in advance and calls
 * unlink (async-signal-safe). A slot is claimed before its file exists and released after the
 * file is renamed or removed: at worst the handler unlinks a name that no longer exists. */

#define SLOTS 16

static char slot_path[SLOTS][PATH_MAX];
static volatile sig_atomic_t slot_used[SLOTS];

static int slot_claim(const char *path)
{
    if (strlen(path) >= PATH_MAX)
        return -1;
    for (int i = 0; i < SLOTS; i++) {
        int expect = 0;
        if (__atomic_compare_exchange_n((int *)&slot_used[i], &expect, 2, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            memcpy(slot_path[i], path, strlen(path) + 1);
            __atomic_store_n((int *)&slot_used[i], 1, __ATOMIC_SEQ_CST); /* now visible */
            return i;
        }
    }
    return -1; /* all taken: the file works, it just is not removed on a signal */
}

static void slot_release(int i)
{
    if (i >= 0)
        __atomic_store_n((int *)&slot_used[i], 0, __ATOMIC_SEQ_CST);
}

static void on_fatal_signal(int sig)
{
    int e = errno;
    for (int i = 0; i < SLOTS; i++)
        if (slot_used[i] == 1)
            unlink(slot_path[i]);
    errno = e;
    /* All three signals were blocked while the files went (a second Ctrl-C, or timeout's second
     * signal, used to kill the process half way through, leaving temporary files): now the
     * default action, unblocked, so that this kills the process and the exit status shows it. */
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
}

void hr_out_catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < HR_ARRAY_LEN(sigs); i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
            old.sa_handler != SIG_DFL)
            continue; /* ignored (nohup) or someone else's: theirs to decide */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sa.sa_flags = 0;
        sigemptyset(&sa.sa_mask); /* the handler runs with all three blocked */
        for (size_t j = 0; j < HR_ARRAY_LEN(sigs); j++)
            sigaddset(&sa.sa_mask, sigs[j]);
        sigaction(sigs[i], &sa, NULL);
    }
}

void hr_out_release_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < HR_ARRAY_LEN(sigs); i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == on_fatal_signal)
            signal(sigs[i], SIG_DFL);
    }
}

/* {==== Deciding where to write ==== */

/* path with every symlink of its last component followed (a chain, relative links resolved
 * against the link's own directory) into *out (malloc'd). The result may not exist yet. Fails on
 * a loop or a link that cannot be read. */
static int follow_links(const char *path, char **out, hr_err_t *err)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        struct stat sb;
        if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode)) {
            *out = cur; /* the end of the chain (or a name to create) */
            return HR_OK;
        }
        char link[PATH_MAX];
        ssize_t n = hops < 40 ? readlink(cur, link, sizeof link - 1) : -1;
        if (n < 0) {
            int rc = hr_err_set(err, HR_EIO, "%s: cannot follow the symbolic link %s: %s", path,
                                cur, hops < 40 ? strerror(errno) : strerror(ELOOP));
            free(cur);
            return rc;
        }
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dirlen = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dirlen + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dirlen);
            memcpy(next + dirlen, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    return hr_err_set(err, HR_ENOMEM, "%s: out of memory", path);
}

/* The directory `file` lies in ("." or "/" included) into dir[PATH_MAX]. */
static void parent_dir(const char *file, char *dir)
{
    const char *slash = strrchr(file, '/');
    if (!slash)
        snprintf(dir, PATH_MAX, ".");
    else if (slash == file)
        snprintf(dir, PATH_MAX, "/");
    else
        snprintf(dir, PATH_MAX, "%.*s", (int)(slash - file), file);
}

/* 0 when files can be created in the directory of `file`; else errno. */
static int dir_writable(const char *file)
{
    char dir[PATH_MAX];
    parent_dir(file, dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return errno;
    if (!S_ISDIR(sb.st_mode))
        return ENOTDIR;
    return access(dir, W_OK | X_OK) != 0 ? errno : 0;
}

static void out_free(hr_out_t *o)
{
    free(o->path);
    free(o->target);
    free(o->tmp);
    o->path = o->target = o->tmp = NULL;
}

/* "PATH" or "PATH (-> TARGET)": messages name what the user typed and where it led. */
#define WHERE_FMT "%s%s%s%s"
#define WHERE(o) (o)->path, strcmp((o)->path, (o)->target) ? " (-> " : "", \
                 strcmp((o)->path, (o)->target) ? (o)->target : "",          \
                 strcmp((o)->path, (o)->target) ? ")" : ""

int hr_out_prepare(hr_out_t *o, const char *path, hr_err_t *err)
{
    *o = (hr_out_t){.fd = -1, .slot = -1};
    if (!*path)
        return hr_err_set(err, HR_EUSAGE, "empty output path");
    if (!(o->path = strdup(path)))
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    int rc = follow_links(path, &o->target, err);
    if (rc) {
        out_free(o);
        return rc;
    }
    struct stat sb;
    if (stat(o->target, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            rc = hr_err_set(err, HR_EUSAGE, WHERE_FMT ": is a directory, not a file", WHERE(o));
        else if (!S_ISREG(sb.st_mode))
            return HR_OK; /* a device, FIFO or socket: written through, never replaced */
    } else if (errno != ENOENT) {
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": %s", WHERE(o), strerror(errno));
    }
    int e = rc ? 0 : dir_writable(o->target);
    if (e)
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": cannot create: %s", WHERE(o),
                        strerror(e));
    if (!rc) {
        size_t n = strlen(o->target) + 32;
        if ((o->tmp = malloc(n)) != NULL)
            snprintf(o->tmp, n, "%s.tmp.%ld", o->target, (long)getpid());
        else
            rc = hr_err_set(err, HR_ENOMEM, "out of memory");
    }
    if (rc)
        out_free(o);
    return rc;
}

int hr_out_open(hr_out_t *o, const char *path, hr_err_t *err)
{
    int rc = hr_out_prepare(o, path, err);
    if (rc)
        return rc;
    if (!o->tmp) {
        o->fd = open(o->target, O_WRONLY | O_CLOEXEC);
        if (o->fd < 0) {
            rc = hr_err_set(err, HR_EIO, WHERE_FMT ": cannot open: %s", WHERE(o), strerror(errno));
            out_free(o);
        }
        return rc;
    }
    /* An existing file keeps its permissions; a new one gets 0644 less the umask. */
    struct stat sb;
    int keep_mode = stat(o->target, &sb) == 0;
    o->slot = slot_claim(o->tmp); /* before the file exists: no moment without cleanup */
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (o->fd < 0) {
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": cannot create its temporary file %s: %s",
                        WHERE(o), o->tmp, strerror(errno));
        slot_release(o->slot);
        out_free(o);
        return rc;
    }
    if (keep_mode)
        (void)fchmod(o->fd, sb.st_mode & 07777);
    return HR_OK;
}

int hr_out_replaces(const char *out_path, const char *in_path)
{
    struct stat so, si;
    if (!out_path || !in_path || stat(out_path, &so) != 0 || stat(in_path, &si) != 0)
        return 0;
    return S_ISREG(so.st_mode) && so.st_dev == si.st_dev && so.st_ino == si.st_ino;
}

int hr_out_same(const hr_out_t *a, const hr_out_t *b)
{
    struct stat sa, sb;
    if (a->fd < 0 || b->fd < 0 || !a->tmp || !b->tmp)
        return 0;
    if (strcmp(a->target, b->target) == 0 || strcmp(a->tmp, b->tmp) == 0)
        return 1;
    /* their temporary files: the same inode when the targets are one file spelled twice */
    return fstat(a->fd, &sa) == 0 && fstat(b->fd, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

const char *hr_out_write_path(const hr_out_t *o) { return o->tmp ? o->tmp : o->target; }

/* The stream writes through these, so the reason of a failed write is kept: stdio keeps only
 * an error flag, and errno is long gone by the time hr_out_commit asks (a pipe that broke in the
 * middle of a timeline used to be reported without its EPIPE). */
static ssize_t stream_write(void *cookie, const char *buf, size_t len)
{
    hr_out_t *o = cookie;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(o->fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!o->werr)
                o->werr = n < 0 ? errno : EIO;
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int stream_close(void *cookie)
{
    hr_out_t *o = cookie;
    int rc = o->fd >= 0 ? close(o->fd) : 0;
    o->fd = -1;
    return rc;
}

FILE *hr_out_stream(hr_out_t *o, hr_err_t *err)
{
    if (!o->f &&
        !(o->f = fopencookie(o, "w", (cookie_io_functions_t){.write = stream_write,
                                                             .close = stream_close})))
        hr_err_set(err, HR_ENOMEM, "%s: %s", o->path, strerror(errno));
    return o->f;
}

/* {==== Finishing ==== */

/* A writer killed by SIGKILL (or a machine that went down) leaves its TARGET.tmp.PID behind,
 * which no handler could remove. Once a later writer of the same target has committed, the
 * temporary files of processes that no longer exist are removed: only files named exactly
 * TARGET.tmp.DIGITS, never this process's, never one whose process is alive (or belongs to
 * another user: kill says EPERM), so a concurrent writer of the same target keeps its file. */
static void remove_stale_tmps(const char *target)
{
    char dir[PATH_MAX];
    parent_dir(target, dir);
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0)
            continue;
        const char *digits = n + bl + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (*digits < '0' || *digits > '9' || *end || errno || pid <= 0 || pid > INT_MAX ||
            pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, n) < sizeof path)
            (void)unlink(path);
    }
    closedir(d);
}

int hr_out_commit(hr_out_t *o, hr_err_t *err)
{
    int rc = HR_OK;
    if (o->f && (fflush(o->f) != 0 || ferror(o->f)))
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": write failed: %s", WHERE(o),
                        strerror(o->werr ? o->werr : EIO));
    /* fsync makes the rename publish complete data; devices and FIFOs have nothing to sync. */
    if (!rc && o->tmp && o->fd >= 0 && fsync(o->fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": fsync failed: %s", WHERE(o), strerror(errno));
    int closed = o->f ? fclose(o->f) : o->fd >= 0 ? close(o->fd) : 0;
    o->f = NULL;
    o->fd = -1;
    if (closed != 0 && !rc)
        rc = hr_err_set(err, HR_EIO, WHERE_FMT ": close failed: %s", WHERE(o), strerror(errno));
    if (!rc && o->tmp) {
        if (rename(o->tmp, o->target) != 0) {
            rc = hr_err_set(err, HR_EIO, WHERE_FMT ": cannot rename %s into place: %s", WHERE(o),
                            o->tmp, strerror(errno));
        } else {
            slot_release(o->slot);
            o->slot = -1;
            free(o->tmp);
            o->tmp = NULL;
            /* the rename itself reaches the disk with its directory */
            char dir[PATH_MAX];
            parent_dir(o->target, dir);
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            remove_stale_tmps(o->target);
        }
    }
    hr_out_abort(o); /* removes the temporary file if it is still there */
    return rc;
}

void hr_out_abort(hr_out_t *o)
{
    if (o->f)
        fclose(o->f);
    else if (o->fd >= 0)
        close(o->fd);
    o->f = NULL;
    o->fd = -1;
    if (o->tmp)
        unlink(o->tmp);
    slot_release(o->slot);
    o->slot = -1;
    out_free(o);
}

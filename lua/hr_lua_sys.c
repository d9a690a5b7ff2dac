/* hr_lua_sys.c: the system side of the Lua binding: files written atomically, JSON and CSV,
 * processes, and the parallel sweep scheduler behind `heapreplay run` (the JSON and CSV codecs
 * are in hr_lua_data.c).
 *
 * Why processes. Every measured configuration runs as its own child (`heapreplay replay ...`):
 * the interpreter never shares a process with the allocator being measured, RSS and CPU time are
 * the child's alone (wait4), the once-per-process `cpython` backend is fresh each time, and a
 * crash in a job cannot take the sweep down.
 *
 * The scheduler (hr.sweep)
 *   jobs ------> [launch while running < N] ---> children ---wait4---> on_done(i, result) in Lua
 *                 exclusive jobs run alone       | SIGCHLD, SIGINT, SIGTERM are blocked in the
 *                                                | parent and taken synchronously with
 *                                                | sigtimedwait, so no handler races the loop
 *   A child is started with PR_SET_PDEATHSIG(SIGKILL): when the sweep itself dies (kill -9), its
 *   jobs die with it instead of finishing unobserved. A job is finished only when its on_done
 *   callback (the driver's commit: an atomic rename) has returned; everything before that point
 *   is redone by a resumed sweep, nothing after it is.
 *   An optional log file gets one line per event ("start KEY PID", "done KEY", "failed KEY ...")
 *   appended with O_APPEND, so the tests can count how often each job ran.
 *
 * Atomic files (hr_out.h): TARGET.tmp.PID is written beside PATH's target (symlinks followed),
 * fsync'd and renamed over it, then the directory is fsync'd; a reader sees the old file or the
 * new one, never a part. A device or FIFO is written through instead of being replaced.
 */
#include "hr_config.h"
#include "hr_common.h"
#include "hr_lua_internal.h"
#include "hr_out.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* {====================================================================
 * Option tables
 * ==================================================================== */

void hr_lua_check_options(lua_State *L, int arg, const char *fname, const char *const *known)
{
    if (lua_isnoneornil(L, arg))
        return;
    hr_lua_checktype(L, arg, fname, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *k = known; *k && !ok; k++)
                ok = strcmp(*k, lua_tostring(L, -1)) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *k = known; *k; k++) {
                luaL_addstring(&b, k == known ? "" : ", ");
                luaL_addstring(&b, *k);
            }
            luaL_pushresult(&b);
            const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                              : luaL_typename(L, -2);
            luaL_error(L, "bad argument #%d to '%s' (unknown option '%s'; known: %s)", arg, fname,
                       name, lua_tostring(L, -1));
        }
    }
}

const char *hr_lua_checklstring(lua_State *L, int arg, const char *fname, size_t *len)
{
    if (lua_type(L, arg) != LUA_TSTRING && lua_type(L, arg) != LUA_TNUMBER)
        luaL_error(L, "bad argument #%d to '%s' (string expected, got %s)", arg, fname,
                   lua_isnone(L, arg) ? "no value" : luaL_typename(L, arg));
    return lua_tolstring(L, arg, len);
}

void hr_lua_checktype(lua_State *L, int arg, const char *fname, int type)
{
    if (lua_type(L, arg) != type)
        luaL_error(L, "bad argument #%d to '%s' (%s expected, got %s)", arg, fname,
                   lua_typename(L, type), lua_isnone(L, arg) ? "no value" : luaL_typename(L, arg));
}

/* opts[field] as a string or NULL; raises naming the option when it has another type. */
static const char *opt_string(lua_State *L, int arg, const char *fname, const char *field)
{
    if (lua_isnoneornil(L, arg))
        return NULL;
    lua_getfield(L, arg, field);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1); /* anchored in the options table */
    else if (!lua_isnil(L, -1))
        luaL_error(L, "bad argument #%d to '%s' (option '%s' must be a string, not %s)", arg,
                   fname, field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return s;
}

static lua_Number opt_number(lua_State *L, int arg, const char *fname, const char *field,
                             lua_Number dflt)
{
    if (lua_isnoneornil(L, arg))
        return dflt;
    lua_getfield(L, arg, field);
    lua_Number v = dflt;
    if (lua_type(L, -1) == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "bad argument #%d to '%s' (option '%s' must be a number, not %s)", arg, fname,
                   field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int arg, const char *fname, const char *field, int dflt)
{
    if (lua_isnoneornil(L, arg))
        return dflt;
    lua_getfield(L, arg, field);
    int v = dflt;
    if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "bad argument #%d to '%s' (option '%s' must be a boolean, not %s)", arg,
                   fname, field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* {====================================================================
 * Files
 * ==================================================================== */

int hr_lua_write_atomic(const char *path, const void *data, size_t len, hr_err_t *err)
{
    hr_out_t o;
    int rc = hr_out_open(&o, path, err); /* symlinks followed, devices and FIFOs written through */
    if (rc)
        return rc;
    const char *p = data;
    while (len) {
        ssize_t n = write(o.fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = hr_err_set(err, HR_EIO, "%s: write failed: %s", path, strerror(errno));
            hr_out_abort(&o);
            return rc;
        }
        p += n, len -= (size_t)n;
    }
    return hr_out_commit(&o, err); /* fsync, rename, fsync of the directory */
}

/* hr.write_file(path, text): atomically replace path with text. */
static int l_write_file(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.write_file", NULL);
    size_t len;
    const char *s = hr_lua_checklstring(L, 2, "hr.write_file", &len);
    hr_err_t err = {0};
    if (hr_lua_write_atomic(path, s, len, &err) != 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* hr.read_file(path) -> text (raises when it cannot be read) */
int hr_lua_read_file(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.read_file", NULL);
    FILE *f = fopen(path, "rb");
    if (!f)
        return luaL_error(L, "cannot read %s: %s", path, strerror(errno));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        luaL_addlstring(&b, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return luaL_error(L, "error reading %s", path);
    luaL_pushresult(&b);
    return 1;
}

/* hr.exists(path) -> "file" | "directory" | "other" | nil */
static int l_exists(lua_State *L)
{
    struct stat sb;
    if (stat(hr_lua_checklstring(L, 1, "hr.exists", NULL), &sb) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISREG(sb.st_mode) ? "file" : S_ISDIR(sb.st_mode) ? "directory" : "other");
    return 1;
}

/* hr.mkdir(path): create path and its parents (mkdir -p). */
static int l_mkdir(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.mkdir", NULL);
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return luaL_error(L, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return luaL_error(L, "cannot create directory %s: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return luaL_error(L, "%s exists and is not a directory", path);
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* hr.remove_tree(path): rm -rf path (refuses "", "/" and "."). */
static int l_remove_tree(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.remove_tree", NULL);
    if (!*path || strcmp(path, "/") == 0 || strcmp(path, ".") == 0 || strcmp(path, "..") == 0)
        return luaL_error(L, "bad argument #1 to 'hr.remove_tree' (refusing to remove '%s')", path);
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return luaL_error(L, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* hr.list_dir(path) -> sorted array of names (without . and ..); {} when it does not exist. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int l_list_dir(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.list_dir", NULL);
    lua_newtable(L);
    DIR *d = opendir(path);
    if (!d)
        return 1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p)
                break;
            names = p;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        free(names[i]);
    }
    free(names);
    return 1;
}

/* hr.checksum(path) -> crc32 hex string, size in bytes */
static int l_checksum(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.checksum", NULL);
    FILE *f = fopen(path, "rb");
    if (!f)
        return luaL_error(L, "cannot read %s: %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    size_t n;
    uint32_t crc = 0;
    uint64_t size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crc = hr_crc32(crc, buf, n);
        size += n;
    }
    fclose(f);
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    lua_pushstring(L, hex);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* hr.hash(text) -> 16 hex digits (FNV-1a 64, then a splitmix finaliser): job keys. */
static int l_hash(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)hr_lua_checklstring(L, 1, "hr.hash", &len);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull, h ^= h >> 27, h *= 0x94d049bb133111ebull, h ^= h >> 31;
    char hex[20];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    lua_pushstring(L, hex);
    return 1;
}

/* {====================================================================
 * Processes
 * ==================================================================== */

/* SIGCHLD must have a handler (not SIG_IGN, or the kernel reaps children itself); the sweep
 * takes the signal synchronously with sigtimedwait while it is blocked, so this never runs. */
static void on_sig(int sig) { (void)sig; }

/* Start argv (argv[0] looked up in PATH) with stdin from /dev/null, stdout and stderr to files
 * (NULL: /dev/null), in directory cwd (NULL: ours). The child dies with its parent (PR_SET_PDEATHSIG). `mask` is the signal
 * mask to restore in the child. Returns the pid, or -1 with errno. */
static pid_t spawn(char *const *argv, const char *out, const char *err, const char *cwd,
                   const sigset_t *mask)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(128 + SIGKILL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    int in = open("/dev/null", O_RDONLY);
    int o = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open("/dev/null", O_WRONLY);
    int oerr = errno;
    int e = err ? open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open("/dev/null", O_WRONLY);
    if (in < 0 || o < 0 || e < 0) {
        /* say why where the caller looks (the stderr file, whose tail the result carries) */
        if (e >= 0 && o < 0)
            dprintf(e, "cannot open %s for standard output: %s\n", out ? out : "/dev/null",
                    strerror(oerr));
        _exit(127);
    }
    if (cwd && chdir(cwd) != 0) {
        dprintf(e, "cannot change to directory %s: %s\n", cwd, strerror(errno));
        _exit(127);
    }
    dup2(in, 0), dup2(o, 1), dup2(e, 2);
    if (in > 2)
        close(in);
    if (o > 2)
        close(o);
    if (e > 2)
        close(e);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* The last `max` bytes of a file (for error messages), pushed as a string ("" if unreadable). */
static void push_tail(lua_State *L, const char *path, size_t max)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        lua_pushliteral(L, "");
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)max ? size - (long)max : 0;
    fseek(f, from, SEEK_SET);
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    lua_pushlstring(L, buf ? buf : "", n);
    free(buf);
}

/* Build a NULL-terminated argv from the array at table index `t` (strings or numbers). The
 * strings stay anchored in the table. Returns a malloc'd array. */
static char **check_argv(lua_State *L, int t, const char *fname, int arg)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, t);
    if (n < 1)
        luaL_error(L, "bad argument #%d to '%s' (argv must be a non-empty array of strings)", arg,
                   fname);
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv)
        luaL_error(L, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        int ty = lua_rawgeti(L, t, i);
        if (ty != LUA_TSTRING && ty != LUA_TNUMBER) {
            free(argv);
            luaL_error(L, "bad argument #%d to '%s' (argv[%d] is a %s, not a string)", arg, fname,
                       (int)i, luaL_typename(L, -1));
        }
        if (ty == LUA_TNUMBER) { /* convert in the table so that the string stays anchored */
            lua_pushvalue(L, -1);
            lua_tostring(L, -1);
            lua_rawseti(L, t, i);
            lua_pop(L, 1);
            lua_rawgeti(L, t, i);
        }
        argv[i - 1] = (char *)lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return argv;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

/* Fill the result table at the top of the stack from a wait4 status. */
static void set_result(lua_State *L, int status, const struct rusage *ru, double wall)
{
    if (WIFEXITED(status)) {
        lua_pushinteger(L, WEXITSTATUS(status));
        lua_setfield(L, -2, "exit");
    } else if (WIFSIGNALED(status)) {
        lua_pushinteger(L, WTERMSIG(status));
        lua_setfield(L, -2, "signal");
    }
    lua_pushnumber(L, wall);
    lua_setfield(L, -2, "wall");
    lua_pushnumber(L, tv_s(ru->ru_utime));
    lua_setfield(L, -2, "user");
    lua_pushnumber(L, tv_s(ru->ru_stime));
    lua_setfield(L, -2, "sys");
    lua_pushinteger(L, (lua_Integer)ru->ru_maxrss * 1024);
    lua_setfield(L, -2, "maxrss");
}

static const char *const exec_opts[] = {"stdout", "stderr", "cwd", NULL};

/* hr.exec(argv [, {stdout = PATH|true, stderr = PATH|true, cwd = DIR}]) -> ok, result
 * Runs one command and waits. `true` captures the stream into result.stdout / result.stderr.
 * result: exit | signal, wall, user, sys (seconds), maxrss (bytes). ok is exit status 0. */
static int l_exec(lua_State *L)
{
    hr_lua_checktype(L, 1, "hr.exec", LUA_TTABLE);
    hr_lua_check_options(L, 2, "hr.exec", exec_opts);
    char tmpl_o[4096], tmpl_e[4096];
    if (hr_tmp_template(tmpl_o, sizeof tmpl_o, "hr_exec_out") ||
        hr_tmp_template(tmpl_e, sizeof tmpl_e, "hr_exec_err"))
        return luaL_error(L, "hr.exec: TMPDIR is too long");
    const char *paths[2] = {NULL, NULL};
    int capture[2] = {0, 0};
    const char *names[2] = {"stdout", "stderr"};
    char *tmpl[2] = {tmpl_o, tmpl_e};
    for (int k = 0; k < 2; k++) {
        if (lua_isnoneornil(L, 2))
            break;
        lua_getfield(L, 2, names[k]);
        if (lua_type(L, -1) == LUA_TSTRING) {
            paths[k] = lua_tostring(L, -1);
        } else if (lua_toboolean(L, -1)) {
            int fd = mkstemp(tmpl[k]);
            if (fd < 0)
                return luaL_error(L, "cannot create a temporary file: %s", strerror(errno));
            close(fd);
            paths[k] = tmpl[k];
            capture[k] = 1;
        } else if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN) {
            return luaL_error(L, "bad argument #2 to 'hr.exec' (option '%s' must be a path or true)",
                              names[k]);
        }
        lua_pop(L, 1);
    }
    if (!capture[1] && !paths[1]) { /* keep stderr for the message on failure */
        int fd = mkstemp(tmpl_e);
        if (fd >= 0) {
            close(fd);
            paths[1] = tmpl_e;
            capture[1] = 2;
        }
    }
    const char *cwd = opt_string(L, 2, "hr.exec", "cwd");
    char **argv = check_argv(L, 1, "hr.exec", 1);
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    double t0 = (double)hr_now_ns() / 1e9;
    pid_t pid = spawn(argv, paths[0], paths[1], cwd, &mask);
    int e = errno;
    free(argv);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (pid > 0)
        while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
            ;
    double wall = (double)hr_now_ns() / 1e9 - t0;
    lua_pushboolean(L, pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    lua_newtable(L);
    if (pid > 0)
        set_result(L, status, &ru, wall);
    else {
        lua_pushstring(L, strerror(e));
        lua_setfield(L, -2, "error");
    }
    for (int k = 0; k < 2; k++) {
        if (!capture[k])
            continue;
        if (capture[k] == 1 || (pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
            if (capture[k] == 1) {
                lua_pushcfunction(L, hr_lua_read_file);
                lua_pushstring(L, paths[k]);
                lua_call(L, 1, 1);
            } else {
                push_tail(L, paths[k], 4000);
            }
            lua_setfield(L, -2, names[k]);
        }
        unlink(paths[k]);
    }
    return 2;
}

/* {====================================================================
 * The sweep scheduler: hr.sweep(jobs, opts)
 * ==================================================================== */

typedef struct sjob {
    pid_t pid;       /* running: > 0 */
    double start;    /* monotonic seconds */
    double deadline; /* 0: none */
    int exclusive;
    int timed_out;
} sjob_t;

static void log_line(int fd, const char *fmt, ...) HR_PRINTF(2, 3);
static void log_line(int fd, const char *fmt, ...)
{
    if (fd < 0)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(fd, line, (size_t)n); /* one write with O_APPEND: lines never interleave */
    (void)w;
}

static double now_s(void) { return (double)hr_now_ns() / 1e9; }

/* Field `name` of job table at `t`, as a string or NULL. */
static const char *job_str(lua_State *L, int t, lua_Integer i, const char *name)
{
    lua_getfield(L, t, name);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "bad argument #1 to 'hr.sweep' (jobs[%d].%s must be a string, not %s)", (int)i,
                   name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return s; /* anchored in the job table */
}

static const char *const sweep_opts[] = {"jobs", "log", "keep_going", "progress", "on_done",
                                         "label", NULL};
static const char *const job_fields[] = {"argv", "key", "stdout", "stderr", "exclusive",
                                         "timeout", "label", NULL};

typedef struct sweep_state {
    sjob_t *jobs;
    lua_Integer n;
    sigset_t old_mask;
    int log_fd;
} sweep_state_t;

#define SWEEP_MT "hr.sweep_state"

/* __gc/__close of the state box: kill what still runs (an error unwound the sweep), restore the
 * signal mask, close the log. */
static int sweep_cleanup(lua_State *L)
{
    sweep_state_t *s = luaL_checkudata(L, 1, SWEEP_MT);
    if (!s->jobs)
        return 0;
    for (lua_Integer i = 0; i < s->n; i++)
        if (s->jobs[i].pid > 0) {
            kill(s->jobs[i].pid, SIGKILL);
            waitpid(s->jobs[i].pid, NULL, 0);
            s->jobs[i].pid = 0;
        }
    free(s->jobs);
    s->jobs = NULL;
    if (s->log_fd >= 0)
        close(s->log_fd);
    s->log_fd = -1;
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    return 0;
}

/* hr.sweep(jobs, opts) -> results
 *   jobs[i] = {argv = {...}, key = "...", stdout = PATH, stderr = PATH, exclusive = bool,
 *              timeout = seconds, label = "..."}
 *   opts = {jobs = N (parallel jobs, default: online CPUs), log = PATH, keep_going = bool,
 *           progress = bool, label = "...", on_done = function(i, result)}
 *   results[i] = {status = "ok" | "failed" | "timeout" | "killed" | "not run", exit, signal,
 *                 wall, user, sys, maxrss, stderr (tail, on failure)}
 *   results.interrupted = signal number when SIGINT/SIGTERM stopped the sweep.
 * on_done runs in the parent after each successful job, before the job counts as done; an error
 * it raises stops the sweep (running jobs are killed) and propagates. */
static int l_sweep(lua_State *L)
{
    hr_lua_checktype(L, 1, "hr.sweep", LUA_TTABLE);
    hr_lua_check_options(L, 2, "hr.sweep", sweep_opts);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    lua_Number par = opt_number(L, 2, "hr.sweep", "jobs", (lua_Number)(ncpu > 0 ? ncpu : 1));
    if (par < 1 || par > 1024 || par != floor(par))
        return luaL_error(L, "bad argument #2 to 'hr.sweep' (option 'jobs' must be an integer from 1 "
                             "to 1024)");
    const char *logp = opt_string(L, 2, "hr.sweep", "log");
    const char *label = opt_string(L, 2, "hr.sweep", "label");
    int keep_going = opt_bool(L, 2, "hr.sweep", "keep_going", 0);
    int progress = opt_bool(L, 2, "hr.sweep", "progress", isatty(2));
    int has_cb = 0;
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "on_done");
        if (lua_isfunction(L, -1))
            has_cb = 1;
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "bad argument #2 to 'hr.sweep' (option 'on_done' must be a function)");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    /* validate every job before starting any */
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE)
            return luaL_error(L, "bad argument #1 to 'hr.sweep' (jobs[%d] is a %s, not a table)",
                              (int)i, luaL_typename(L, -1));
        int t = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            int ok = 0;
            for (const char *const *k = job_fields; *k && !ok; k++)
                ok = lua_type(L, -1) == LUA_TSTRING && strcmp(*k, lua_tostring(L, -1)) == 0;
            if (!ok)
                return luaL_error(L, "bad argument #1 to 'hr.sweep' (jobs[%d] has an unknown field "
                                     "'%s')", (int)i, luaL_tolstring(L, -1, NULL));
        }
        if (lua_getfield(L, t, "argv") != LUA_TTABLE)
            return luaL_error(L, "bad argument #1 to 'hr.sweep' (jobs[%d].argv must be an array of "
                                 "strings)", (int)i);
        free(check_argv(L, lua_gettop(L), "hr.sweep", 1));
        job_str(L, t, i, "key"), job_str(L, t, i, "stdout"), job_str(L, t, i, "stderr");
        /* a timeout that is not a positive number of seconds ("abc", -1, nan) used to mean none */
        if (lua_getfield(L, t, "timeout") != LUA_TNIL &&
            (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0)))
            return luaL_error(L, "bad argument #1 to 'hr.sweep' (jobs[%d].timeout must be a positive "
                                 "number of seconds, not %s)", (int)i, luaL_tolstring(L, -1, NULL));
        lua_settop(L, 2);
    }
    lua_newtable(L); /* 3: results */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_newtable(L);
        lua_pushliteral(L, "not run");
        lua_setfield(L, -2, "status");
        lua_rawseti(L, 3, i);
    }
    sweep_state_t *st = lua_newuserdatauv(L, sizeof *st, 0); /* 4 */
    memset(st, 0, sizeof *st);
    st->log_fd = -1;
    if (luaL_newmetatable(L, SWEEP_MT)) {
        lua_pushcfunction(L, sweep_cleanup);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sweep_cleanup);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, 4);
    st->jobs = calloc((size_t)n + 1, sizeof *st->jobs);
    st->n = n;
    if (!st->jobs)
        return luaL_error(L, "out of memory");
    if (logp && (st->log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        return luaL_error(L, "cannot open the job log %s: %s", logp, strerror(errno));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* SIGCHLD must not be ignored, or children are reaped by the kernel; a no-op handler. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGCHLD, &sa, NULL);
    sigprocmask(SIG_BLOCK, &set, &st->old_mask);

    lua_Integer next = 1, running = 0, done = 0, failed = 0;
    int interrupted = 0, excl_running = 0;
    double t_start = now_s(), last_progress = 0;
    for (;;) {
        /* launch */
        while (!interrupted && !(failed && !keep_going) && next <= n && running < (lua_Integer)par &&
               !excl_running) {
            lua_rawgeti(L, 1, next);
            int t = lua_gettop(L);
            lua_getfield(L, t, "exclusive");
            int excl = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (excl && running > 0) {
                lua_pop(L, 1);
                break;
            }
            lua_getfield(L, t, "timeout");
            double timeout = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
            lua_pop(L, 1);
            lua_getfield(L, t, "argv");
            char **argv = check_argv(L, lua_gettop(L), "hr.sweep", 1);
            const char *key = job_str(L, t, next, "key");
            pid_t pid = spawn(argv, job_str(L, t, next, "stdout"), job_str(L, t, next, "stderr"),
                              NULL, &st->old_mask);
            int e = errno;
            free(argv);
            lua_rawgeti(L, 3, next);
            if (pid < 0) {
                lua_pushliteral(L, "failed");
                lua_setfield(L, -2, "status");
                lua_pushfstring(L, "cannot fork: %s", strerror(e));
                lua_setfield(L, -2, "stderr");
                failed++;
            } else {
                sjob_t *j = &st->jobs[next - 1];
                j->pid = pid;
                j->start = now_s();
                j->deadline = timeout > 0 ? j->start + timeout : 0;
                j->exclusive = excl;
                excl_running |= excl;
                running++;
                log_line(st->log_fd, "start %s %ld", key ? key : "-", (long)pid);
            }
            lua_settop(L, 4);
            next++;
        }
        if (running == 0)
            break;
        /* wait for a child, a signal, a deadline or the next progress tick */
        double now = now_s(), wait = progress ? 0.5 : 5.0;
        for (lua_Integer i = 0; i < n; i++)
            if (st->jobs[i].pid > 0 && st->jobs[i].deadline > 0 && st->jobs[i].deadline - now < wait)
                wait = st->jobs[i].deadline - now;
        if (wait < 0.001)
            wait = 0.001;
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if ((sig == SIGINT || sig == SIGTERM || sig == SIGHUP) && !interrupted) {
            interrupted = sig;
            for (lua_Integer i = 0; i < n; i++)
                if (st->jobs[i].pid > 0)
                    kill(st->jobs[i].pid, SIGTERM);
        }
        now = now_s();
        for (lua_Integer i = 0; i < n; i++)
            if (st->jobs[i].pid > 0 && st->jobs[i].deadline > 0 && now >= st->jobs[i].deadline &&
                !st->jobs[i].timed_out) {
                kill(st->jobs[i].pid, SIGKILL);
                st->jobs[i].timed_out = 1;
            }
        /* reap */
        for (;;) {
            int status;
            struct rusage ru;
            pid_t pid = wait4(-1, &status, WNOHANG, &ru);
            if (pid <= 0)
                break;
            lua_Integer i;
            for (i = 0; i < n && st->jobs[i].pid != pid; i++)
                ;
            if (i == n)
                continue; /* not ours */
            sjob_t *j = &st->jobs[i];
            j->pid = 0;
            running--;
            if (j->exclusive)
                excl_running = 0;
            lua_rawgeti(L, 1, i + 1);
            int t = lua_gettop(L);
            const char *key = job_str(L, t, i + 1, "key");
            lua_rawgeti(L, 3, i + 1);
            set_result(L, status, &ru, now_s() - j->start);
            int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            const char *what = ok ? "ok" : j->timed_out ? "timeout"
                               : (WIFSIGNALED(status) && interrupted) ? "killed" : "failed";
            lua_pushstring(L, what);
            lua_setfield(L, -2, "status");
            if (!ok) {
                push_tail(L, job_str(L, t, i + 1, "stderr"), 4000);
                lua_setfield(L, -2, "stderr");
                if (!interrupted)
                    failed++;
                if (WIFSIGNALED(status))
                    log_line(st->log_fd, "%s %s signal %d", what, key ? key : "-",
                             WTERMSIG(status));
                else
                    log_line(st->log_fd, "%s %s exit %d", what, key ? key : "-",
                             WEXITSTATUS(status));
            } else {
                if (has_cb) {
                    lua_getfield(L, 2, "on_done");
                    lua_pushinteger(L, i + 1);
                    lua_pushvalue(L, -3);
                    lua_call(L, 2, 0); /* an error unwinds; __close kills the rest */
                }
                done++;
                log_line(st->log_fd, "done %s", key ? key : "-");
            }
            lua_settop(L, 4);
        }
        if (progress && (now_s() - last_progress > 0.45 || running == 0)) {
            last_progress = now_s();
            fprintf(stderr, "\r[%s] %lld/%lld done, %lld running, %lld failed, %.0f s   ",
                    label ? label : "sweep", (long long)done, (long long)n, (long long)running,
                    (long long)failed, last_progress - t_start);
        }
    }
    if (progress)
        fprintf(stderr, "\r%70s\r", "");
    lua_pushvalue(L, 3);
    if (interrupted) {
        lua_pushinteger(L, interrupted);
        lua_setfield(L, -2, "interrupted");
    }
    lua_pushinteger(L, done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, failed);
    lua_setfield(L, -2, "failed");
    /* take pending SIGINT/SIGTERM out of the queue before the mask is restored by __close: they
     * were handled as `interrupted` */
    struct timespec zero = {0, 0};
    sigset_t intset;
    sigemptyset(&intset);
    sigaddset(&intset, SIGCHLD);
    if (!interrupted)
        while (sigtimedwait(&intset, NULL, &zero) > 0)
            ;
    else {
        sigaddset(&intset, SIGINT);
        sigaddset(&intset, SIGTERM);
        sigaddset(&intset, SIGHUP);
        while (sigtimedwait(&intset, NULL, &zero) > 0)
            ;
    }
    return 1;
}

/* {====================================================================
 * Facts: time, machine, build
 * ==================================================================== */

/* hr.now() -> monotonic seconds (float) */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, now_s());
    return 1;
}

/* hr.date() -> "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
static int l_date(lua_State *L)
{
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    lua_pushstring(L, date);
    return 1;
}

/* hr.machine() -> {os, release, arch, cpu, cores, memory_bytes} */
static int l_machine(lua_State *L)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    lua_newtable(L);
    lua_pushstring(L, u.sysname);
    lua_setfield(L, -2, "os");
    lua_pushstring(L, u.release);
    lua_setfield(L, -2, "release");
    lua_pushstring(L, u.machine);
    lua_setfield(L, -2, "arch");
    char cpu[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(cpu, sizeof cpu, "%s", c);
            }
            break;
        }
    if (f)
        fclose(f);
    lua_pushstring(L, cpu);
    lua_setfield(L, -2, "cpu");
    lua_pushinteger(L, sysconf(_SC_NPROCESSORS_ONLN));
    lua_setfield(L, -2, "cores");
    lua_pushinteger(L, (lua_Integer)sysconf(_SC_PHYS_PAGES) * (lua_Integer)sysconf(_SC_PAGESIZE));
    lua_setfield(L, -2, "memory_bytes");
    return 1;
}

/* hr.exe() -> the path of the running heapreplay binary (children are started with it) */
static int l_exe(lua_State *L)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return luaL_error(L, "cannot find the heapreplay binary: %s", strerror(errno));
    exe[n] = '\0';
    lua_pushstring(L, exe);
    return 1;
}

/* hr.pid() -> this process's id */
static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* hr.lock(path) -> true | false: take an exclusive lock on path (created if needed) for the rest
 * of this process's life, without waiting; false when another process holds it. The kernel
 * releases it when the process ends, however it ends (kill -9 included). */
static int l_lock(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return luaL_error(L, "cannot open the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return luaL_error(L, "cannot lock %s: %s", path, strerror(e));
    }
    lua_pushboolean(L, 1); /* fd stays open on purpose: the lock lives as long as the process */
    return 1;
}

/* hr.build() -> {version, commit, compiler, source_root, lua} */
static int l_build(lua_State *L)
{
    lua_newtable(L);
    lua_pushstring(L, HR_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, HR_COMMIT);
    lua_setfield(L, -2, "commit");
#ifdef __VERSION__
    lua_pushstring(L, "cc " __VERSION__);
#else
    lua_pushstring(L, "unknown");
#endif
    lua_setfield(L, -2, "compiler");
    lua_pushstring(L, HR_SOURCE_ROOT);
    lua_setfield(L, -2, "source_root");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"write_file", l_write_file}, {"read_file", hr_lua_read_file}, {"exists", l_exists},
    {"mkdir", l_mkdir},           {"remove_tree", l_remove_tree}, {"list_dir", l_list_dir},
    {"checksum", l_checksum},     {"hash", l_hash},               {"exec", l_exec},
    {"sweep", l_sweep},           {"now", l_now},                 {"date", l_date},
    {"machine", l_machine},       {"exe", l_exe},                 {"build", l_build},
    {"pid", l_pid},               {"lock", l_lock},
    {NULL, NULL}};

void hr_lua_open_sys(lua_State *L)
{
    luaL_setfuncs(L, sys_funcs, 0);
}

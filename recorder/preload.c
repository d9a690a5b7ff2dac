/* preload.c: libhr_preload.so, the LD_PRELOAD recorder of malloc and friends for any program.
 *
 * Theory of operation. The module defines malloc, calloc, realloc, reallocarray, free,
 * posix_memalign, aligned_alloc, memalign, valloc and pvalloc; each forwards to the next
 * definition (glibc's), found with dlsym(RTLD_NEXT). dlsym itself may allocate before those
 * pointers exist, so until they do, requests are served from a small static bootstrap arena
 * (never freed, recognised by address in free and realloc).
 *
 * Recording is on only in the process whose pid is $HEAPREPLAY_NATIVE_PID (the command the CLI
 * exec'd, not its children) and off again in forked children. Every recorded call takes the sink
 * lock around the real call and the write, so all threads share one global order consistent
 * with every address's history. A thread-local flag marks the recorder's own work (trace
 * writer, zstd, the flusher thread): allocations made under it go straight to glibc, so the
 * recorder never records or recurses into itself. Blocks are named by id through the
 * address -> id map (mmap-backed). The trace is closed by a destructor at exit, or by _exit and
 * _Exit (defined here too: shells such as dash end with _exit, and so does Python's os._exit,
 * which run no destructors); a killed program leaves a trace readable up to its last complete
 * frame. A process that execs another program is recorded as that program: the new image loads
 * this module again under the same pid and starts the trace afresh (what `sh -c 'cd d && prog'`
 * needs); the old image's allocations died with its address space and are not in the trace.
 */
#include "hr_recorder.h"
#include "hr_trace.h"
#include "rec_idmap.h"
#include "rec_sink.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS __attribute__((tls_model("initial-exec"))) _Thread_local

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static void (*real_exit_)(int);

static volatile int state;   /* 0 unresolved, 1 resolving, 2 ready */
static volatile int recording;
static TLS int in_rec;       /* this thread is inside the recorder */
static hr_sink_t sink;
static hr_idmap_t map;
static char err_path[4096];

/* {==== bootstrap arena ==== */
static _Alignas(64) char boot[256 * 1024];
static size_t boot_used;

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t at = (__atomic_load_n(&boot_used, __ATOMIC_RELAXED) + align - 1) & ~(align - 1);
    if (at + n > sizeof boot)
        return NULL;
    boot_used = at + n;
    return boot + at;
}

static inline int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void resolve(void)
{
    if (__atomic_exchange_n(&state, 1, __ATOMIC_ACQ_REL) != 0)
        return; /* another call is resolving (dlsym allocating): use the arena meanwhile */
    *(void **)&real_malloc = dlsym(RTLD_NEXT, "malloc");
    *(void **)&real_calloc = dlsym(RTLD_NEXT, "calloc");
    *(void **)&real_realloc = dlsym(RTLD_NEXT, "realloc");
    *(void **)&real_free = dlsym(RTLD_NEXT, "free");
    *(void **)&real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    *(void **)&real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    *(void **)&real_memalign = dlsym(RTLD_NEXT, "memalign");
    *(void **)&real_valloc = dlsym(RTLD_NEXT, "valloc");
    *(void **)&real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    *(void **)&real_exit_ = dlsym(RTLD_NEXT, "_exit");
    __atomic_store_n(&state, 2, __ATOMIC_RELEASE);
}

static inline int ready(void)
{
    if (HR_LIKELY(state == 2))
        return 1;
    if (state == 0)
        resolve();
    return state == 2;
}

/* {==== recording (the caller holds the lock and has set in_rec) ==== */

static void rec_alloc(void *p, size_t size, unsigned flags, unsigned align)
{
    if (!p || sink.off)
        return;
    uint64_t id;
    int rc;
    if (HR_LIKELY(!align)) {
        rc = hr_sink_alloc(&sink, size, HR_DOMAIN_NATIVE, flags, 0, &id);
    } else {
        hr_event_t ev = {.op = HR_OP_ALLOC, .domain = HR_DOMAIN_NATIVE,
                         .flags = (uint8_t)(flags | HR_F_ALIGNED), .align_log2 = (uint8_t)align,
                         .a = id = hr_trace_writer_next_id(sink.w), .b = size};
        rc = hr_sink_write(&sink, &ev);
    }
    if (rc == 0 && hr_idmap_add_fast(&map, (uintptr_t)p, id, 0)) {
        hr_err_set(&sink.err, HR_ENOMEM, "the recorder's address map cannot grow");
        sink.failed = 1;
        sink.off = 1;
    }
}

static void rec_free(void *p)
{
    uint64_t id;
    unsigned fl;
    if (p && !sink.off && hr_idmap_take_fast(&map, (uintptr_t)p, &id, &fl))
        hr_sink_free(&sink, id);
}

#define BEGIN()                                                                                \
    in_rec = 1;                                                                                \
    hr_sink_lock(&sink)
#define END()                                                                                  \
    hr_sink_unlock(&sink);                                                                     \
    in_rec = 0

static inline int on(void) { return recording && !in_rec && !sink.off; }

static unsigned log2_align(size_t a)
{
    if (a < 16 || (a & (a - 1)) || a > ((size_t)1 << 30))
        return 0; /* the format names alignments 16 .. 1 GiB; smaller ones are plain */
    return (unsigned)__builtin_ctzl(a);
}

/* {==== the interposed functions ==== */

EXPORT void *malloc(size_t n)
{
    if (HR_UNLIKELY(!ready()))
        return boot_alloc(n, 16);
    if (!on())
        return real_malloc(n);
    BEGIN();
    void *p = real_malloc(n);
    rec_alloc(p, n, 0, 0);
    END();
    return p;
}

EXPORT void *calloc(size_t a, size_t b)
{
    if (HR_UNLIKELY(!ready()))
        return b && a > SIZE_MAX / b ? NULL : boot_alloc(a * b, 16); /* static: already zero */
    if (!on())
        return real_calloc(a, b);
    BEGIN();
    void *p = real_calloc(a, b);
    rec_alloc(p, a * b, HR_F_ZERO, 0);
    END();
    return p;
}

EXPORT void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (HR_UNLIKELY(!ready()))
        return; /* cannot happen for a block glibc gave out; be safe */
    if (!on()) {
        real_free(p);
        return;
    }
    BEGIN();
    rec_free(p);
    real_free(p);
    END();
}

EXPORT void *realloc(void *p, size_t n)
{
    if (p && in_boot(p)) { /* move a bootstrap block to the real heap */
        void *q = malloc(n);
        if (q) {
            size_t room = (size_t)(boot + sizeof boot - (char *)p);
            memcpy(q, p, n < room ? n : room);
        }
        return q;
    }
    if (HR_UNLIKELY(!ready()))
        return p ? NULL : boot_alloc(n, 16);
    if (!on())
        return real_realloc(p, n);
    if (!p)
        return malloc(n);
    BEGIN();
    void *q = real_realloc(p, n);
    uint64_t id;
    if (!sink.off) {
        if (q) {
            if (hr_idmap_take(&map, (uintptr_t)p, &id, NULL)) {
                hr_event_t ev = {.op = HR_OP_REALLOC, .a = id, .b = n};
                hr_sink_write(&sink, &ev);
                hr_idmap_put(&map, (uintptr_t)q, id, 0);
            } else {
                rec_alloc(q, n, 0, 0); /* a block from before recording started */
            }
        } else if (n == 0) {
            rec_free(p); /* glibc's realloc(p, 0) frees p */
        }
    }
    END();
    return q;
}

EXPORT void *reallocarray(void *p, size_t a, size_t b)
{
    if (b && a > SIZE_MAX / b) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, a * b);
}

static void *aligned(size_t align, size_t n, void *(*fn)(size_t, size_t), const char *what)
{
    (void)what;
    if (HR_UNLIKELY(!ready()))
        return boot_alloc(n, align);
    if (!on())
        return fn(align, n);
    BEGIN();
    void *p = fn(align, n);
    rec_alloc(p, n, 0, log2_align(align));
    END();
    return p;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (HR_UNLIKELY(!ready()))
        return boot_alloc(n, align);
    return aligned(align, n, real_aligned_alloc, "aligned_alloc");
}

EXPORT void *memalign(size_t align, size_t n)
{
    if (HR_UNLIKELY(!ready()))
        return boot_alloc(n, align);
    return aligned(align, n, real_memalign, "memalign");
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (HR_UNLIKELY(!ready())) {
        *out = boot_alloc(n, align);
        return *out ? 0 : ENOMEM;
    }
    if (!on())
        return real_posix_memalign(out, align, n);
    BEGIN();
    int rc = real_posix_memalign(out, align, n);
    if (rc == 0)
        rec_alloc(*out, n, 0, log2_align(align));
    END();
    return rc;
}

EXPORT void *valloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (HR_UNLIKELY(!ready()))
        return boot_alloc(n, page);
    if (!on())
        return real_valloc(n);
    BEGIN();
    void *p = real_valloc(n);
    rec_alloc(p, n, 0, log2_align(page));
    END();
    return p;
}

EXPORT void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (HR_UNLIKELY(!ready()))
        return boot_alloc((n + page - 1) & ~(page - 1), page);
    if (!on())
        return real_pvalloc(n);
    BEGIN();
    void *p = real_pvalloc(n);
    rec_alloc(p, (n + page - 1) & ~(page - 1), 0, log2_align(page));
    END();
    return p;
}

/* {==== start and end ==== */

static void report(const hr_err_t *err)
{
    if (!err_path[0])
        return;
    int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    dprintf(fd, "%s\n", err->msg[0] ? err->msg : hr_strerror(err->code));
    close(fd);
}

static void flusher_is_ours(void) { in_rec = 1; }
static void child_after_fork(void)
{
    recording = 0;
    hr_sink_forked_child(&sink);
}

__attribute__((constructor)) static void start(void)
{
    ready();
    const char *out = getenv(HR_PRELOAD_ENV_OUT), *pid = getenv(HR_PRELOAD_ENV_PID);
    if (!out || !pid || strtol(pid, NULL, 10) != (long)getpid())
        return;
    in_rec = 1;
    const char *ep = getenv(HR_PRELOAD_ENV_ERR);
    if (ep)
        snprintf(err_path, sizeof err_path, "%s", ep);
    hr_err_t err = {0};
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_ALLOC);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    const char *cmd = getenv(HR_PRELOAD_ENV_CMD);
    hr_trace_header_set(&h, "producer", "heapreplay record --native " HR_PRELOAD_VERSION);
    hr_trace_header_set(&h, "command", cmd ? cmd : "");
    hr_trace_header_set(&h, "date", date);
    hr_trace_header_set(&h, "mode", "alloc");
    hr_trace_header_set(&h, "recorder", "native-ldpreload");
    if (hr_idmap_init_direct(&map)) {
        hr_err_set(&err, HR_ENOMEM, "cannot map the recorder's address table");
        report(&err);
    } else {
        hr_sink_flusher_init = flusher_is_ours;
        /* every FREE and REALLOC names an id just taken out of the address map */
        hr_trace_write_opts_t wo = {.trusted_ids = 1};
        if (hr_sink_open(&sink, out, &h, &wo, 0, &err) == 0) {
            pthread_atfork(NULL, NULL, child_after_fork);
            recording = 1;
        } else {
            report(&err);
        }
    }
    hr_trace_header_free(&h);
    in_rec = 0;
}

__attribute__((destructor)) static void stop(void)
{
    if (!recording)
        return;
    in_rec = 1;
    hr_err_t err = {0};
    if (hr_sink_close(&sink, &err))
        report(&err);
    recording = 0;
}

/* _exit and _Exit end the process without destructors: close the trace first (not from inside
 * the recorder, e.g. a signal handler that interrupted a recorded call, which holds the lock).
 * glibc's exit() reaches the kernel without calling these, after the destructor ran. */
static __attribute__((noreturn)) void exit_now(int status)
{
    if (recording && !in_rec && sink.owner == getpid())
        stop();
    if (ready() && real_exit_)
        real_exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

EXPORT __attribute__((noreturn)) void _exit(int status) { exit_now(status); }
EXPORT __attribute__((noreturn)) void _Exit(int status) { exit_now(status); }

/* {==== the program closes or replaces descriptors: keep the trace's (rec_fdguard.h) ==== */
#define HR_FDGUARD_SINK (recording && !in_rec ? &sink : NULL)
#define HR_FDGUARD_FAIL(msg) hr_sink_give_up_fd(&sink, msg)
#include "rec_fdguard.h"

/* rec_sink.c: the recorders' trace sink (see rec_sink.h for the theory of operation). */
#include "rec_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void (*hr_sink_flusher_init)(void);

static void *flusher_main(void *arg)
{
    hr_sink_t *s = arg;
    if (hr_sink_flusher_init)
        hr_sink_flusher_init();
    pthread_mutex_lock(&s->wake_mu);
    for (;;) {
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_nsec += HR_SINK_FLUSH_MS * 1000000L;
        at.tv_sec += at.tv_nsec / 1000000000L;
        at.tv_nsec %= 1000000000L;
        while (!s->stop && pthread_cond_timedwait(&s->wake, &s->wake_mu, &at) != ETIMEDOUT)
            ;
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->wake_mu);
        hr_sink_lock(s);
        if (!s->off && s->w && hr_trace_writer_events(s->w) != s->flushed_events) {
            hr_err_t e = {0};
            if (hr_trace_writer_flush(s->w, &e)) {
                s->failed = 1;
                s->off = 1;
                if (!s->err.code)
                    s->err = e;
            }
            s->flushed_events = hr_trace_writer_events(s->w);
        }
        hr_sink_unlock(s);
        pthread_mutex_lock(&s->wake_mu);
    }
    pthread_mutex_unlock(&s->wake_mu);
    return NULL;
}

int hr_sink_open(hr_sink_t *s, const char *path, const hr_trace_header_t *h,
                 const hr_trace_write_opts_t *opts, int owner_door, hr_err_t *err)
{
    memset(s, 0, sizeof *s);
    s->lock = 0;
    s->asym = -1;
    if (owner_door) /* before the flusher thread exists */
        s->asym = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    s->owner = getpid();
    hr_trace_write_opts_t o = opts ? *opts : (hr_trace_write_opts_t){0};
    o.atomic = 0; /* crash-safe frames: the file is readable up to its last frame */
    s->fd = -1;
    int rc = hr_trace_writer_open(&s->w, path, h, &o, err);
    if (rc) {
        s->off = 1;
        return rc;
    }
    s->fd = hr_trace_writer_fd(s->w);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->wake_mu, NULL);
    if (pthread_create(&s->flusher, NULL, flusher_main, s) == 0)
        s->flusher_started = 1;
    return HR_OK;
}

void hr_sink_lock_slow(hr_sink_t *s)
{
    hr_sink_spin_acquire(s);
    __atomic_store_n(&s->others_want, 1, __ATOMIC_RELAXED);
    if (s->asym > 0 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        ; /* every running thread passed a full barrier */
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the owner door fences itself then */
    for (int spin = 0; __atomic_load_n(&s->owner_busy, __ATOMIC_ACQUIRE);)
        hr_sink_backoff(&spin);
}

void hr_sink_backoff(int *spin)
{
    int n = ++*spin;
    if (n <= 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (n <= 80) {
        sched_yield();
    } else {
        long us = (long)(n - 80) * 20;
        struct timespec ts = {0, (us > 1000 ? 1000 : us) * 1000L};
        nanosleep(&ts, NULL);
    }
}

int hr_sink_write(hr_sink_t *s, const hr_event_t *ev)
{
    if (s->off)
        return HR_EIO;
    int rc = hr_trace_write(s->w, ev, &s->err);
    if (HR_UNLIKELY(rc)) {
        s->failed = 1;
        s->off = 1;
    }
    return rc;
}

int hr_sink_keep_fd(hr_sink_t *s, unsigned lo, unsigned hi)
{
    int fd = s->fd, nfd = -1; /* a first look without the lock: most calls name other files */
    if (fd < 0 || (unsigned)fd < lo || (unsigned)fd > hi || s->off || s->owner != getpid())
        return -1; /* off: also the recorder's own close of the trace */
    hr_sink_lock(s);
    fd = s->off ? -1 : hr_trace_writer_fd(s->w);
    if (fd < 0 || (unsigned)fd < lo || (unsigned)fd > hi) {
        hr_sink_unlock(s);
        return -1;
    }
    if (hi < INT_MAX)
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, (int)hi + 1); /* EINVAL at or above RLIMIT_NOFILE */
    if (nfd < 0) {
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (nfd >= 0 && (unsigned)nfd >= lo) {
            syscall(SYS_close, nfd);
            nfd = -1;
        }
    }
    if (nfd >= 0) {
        hr_trace_writer_set_fd(s->w, nfd); /* the program's call closes the old number */
        s->fd = nfd;
    }
    hr_sink_unlock(s);
    return nfd >= 0 ? -1 : fd;
}

void hr_sink_give_up_fd(hr_sink_t *s, const char *msg)
{
    hr_sink_lock(s);
    if (!s->off) {
        hr_trace_writer_set_fd(s->w, -1); /* the program's now: never written or closed by us */
        s->fd = -1;
        s->failed = 1;
        s->off = 1;
        if (!s->err.code)
            hr_err_set(&s->err, HR_EIO, "%s", msg);
    }
    hr_sink_unlock(s);
}

void hr_sink_forked_child(hr_sink_t *s)
{
    s->off = 1;
    s->fd = -1;
    s->flusher_started = 0; /* the thread does not exist in the child */
    s->lock = 0;
    s->owner_busy = 0;
    s->others_want = 0;
    s->owner = 0;
}

int hr_sink_close(hr_sink_t *s, hr_err_t *err)
{
    if (s->owner != getpid())
        return HR_OK;
    if (s->flusher_started) { /* wake it: the trace closes now, not at its next tick */
        pthread_mutex_lock(&s->wake_mu);
        s->stop = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->wake_mu);
        pthread_join(s->flusher, NULL);
        s->flusher_started = 0;
    }
    hr_sink_lock(s);
    int rc = HR_OK;
    s->off = 1;
    s->fd = -1;
    if (s->w) {
        hr_err_t e = {0};
        if (s->failed)
            hr_trace_writer_abort(s->w); /* keep what was flushed; no END after a failure */
        else if ((rc = hr_trace_writer_close(s->w, &e)) != 0) {
            s->failed = 1;
            s->err = e;
        }
        s->w = NULL;
    }
    if (s->failed) {
        rc = s->err.code ? s->err.code : HR_EIO;
        if (err && !err->code)
            *err = s->err;
    }
    hr_sink_unlock(s);
    return rc;
}

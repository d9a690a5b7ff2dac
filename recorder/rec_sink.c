/* rec_sink.c: the recorders' trace sink (see rec_sink.h for the theory of operation). */
#include "rec_sink.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void (*hr_sink_flusher_init)(void);

static void *flusher_main(void *arg)
{
    hr_sink_t *s = arg;
    if (hr_sink_flusher_init)
        hr_sink_flusher_init();
    struct timespec ts = {0, HR_SINK_FLUSH_MS * 1000000L};
    while (!s->stop) {
        nanosleep(&ts, NULL);
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
    }
    return NULL;
}

int hr_sink_open(hr_sink_t *s, const char *path, const hr_trace_header_t *h,
                 const hr_trace_write_opts_t *opts, hr_err_t *err)
{
    memset(s, 0, sizeof *s);
    s->lock = 0;
    s->owner = getpid();
    hr_trace_write_opts_t o = opts ? *opts : (hr_trace_write_opts_t){0};
    o.atomic = 0; /* crash-safe frames: the file is readable up to its last frame */
    int rc = hr_trace_writer_open(&s->w, path, h, &o, err);
    if (rc) {
        s->off = 1;
        return rc;
    }
    if (pthread_create(&s->flusher, NULL, flusher_main, s) == 0)
        s->flusher_started = 1;
    return HR_OK;
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

void hr_sink_forked_child(hr_sink_t *s)
{
    s->off = 1;
    s->flusher_started = 0; /* the thread does not exist in the child */
    s->lock = 0;
    s->owner = 0;
}

int hr_sink_close(hr_sink_t *s, hr_err_t *err)
{
    if (s->owner != getpid())
        return HR_OK;
    if (s->flusher_started) {
        s->stop = 1;
        pthread_join(s->flusher, NULL);
        s->flusher_started = 0;
    }
    hr_sink_lock(s);
    int rc = HR_OK;
    s->off = 1;
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

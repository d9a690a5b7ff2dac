/* rec_sink.h: where recorders put events: a trace writer behind one lock, flushed periodically.
 *
 * Theory of operation. Both recorders (the embedded-CPython one and the LD_PRELOAD one) see
 * allocator calls from several threads; every recorded call takes the sink lock around both the
 * real allocator call and the trace write, so the trace has one global order that agrees with
 * every address's history (an address is written as freed before anyone can receive it again).
 * The writer is opened in non-atomic mode: the file always ends at a frame boundary. Frames are
 * closed when the payload reaches the frame target (the writer does that) and by a flusher thread
 * at least every HR_SINK_FLUSH_MS when events are waiting, so a killed program leaves a trace
 * readable up to its last complete frame, losing at most the last interval's events.
 *
 * After the first write error the sink stops recording (`off` becomes 1) and keeps the message;
 * the recorded program goes on unharmed. In a forked child the sink is switched off too (the
 * trace belongs to the parent).
 */
#ifndef HR_REC_SINK_H
#define HR_REC_SINK_H

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

#include "hr_trace.h"

#define HR_SINK_FLUSH_MS 250

typedef struct hr_sink {
    hr_trace_writer_t *w;   /* owned; NULL once closed */
    int lock;               /* spin lock: guards everything below and the recorders' state */
    volatile int off;       /* 1: record nothing (closed, failed, or in a forked child) */
    int failed;             /* a write failed: err says why */
    hr_err_t err;           /* first error */
    uint64_t flushed_events; /* writer event count at the last flush */
    pid_t owner;            /* the process that owns the trace */
    pthread_t flusher;
    int flusher_started;
    volatile int stop;      /* asks the flusher to end */
} hr_sink_t;

/* Open the trace at `path` (non-atomic, crash-safe frames) and start the flusher thread. */
int hr_sink_open(hr_sink_t *s, const char *path, const hr_trace_header_t *h,
                 const hr_trace_write_opts_t *opts, hr_err_t *err);
/* Called first thing on the flusher thread (the LD_PRELOAD recorder marks the thread as its own,
 * so the flusher's allocations are not recorded). Set before hr_sink_open. */
extern void (*hr_sink_flusher_init)(void);
/* Write one event; the caller holds s->lock. On failure the sink switches itself off. */
int hr_sink_write(hr_sink_t *s, const hr_event_t *ev);
/* Stop the flusher, write the END record and close. Returns the first error seen (also one
 * from an earlier hr_sink_write). Idempotent; does nothing in a process that is not the owner. */
int hr_sink_close(hr_sink_t *s, hr_err_t *err);
/* Call in a forked child: switch off without touching the parent's file. */
void hr_sink_forked_child(hr_sink_t *s);

/* A test-and-test-and-set lock: the uncontended path is one exchange and one release store,
 * cheaper than a mutex on the path every allocation takes; waiters yield the processor (the
 * flusher holds the lock for a frame's compression). Not recursive. */
static inline void hr_sink_lock(hr_sink_t *s)
{
    while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE)) {
        for (int spin = 0; __atomic_load_n(&s->lock, __ATOMIC_RELAXED); spin++)
            if (spin > 64)
                sched_yield();
    }
}
static inline void hr_sink_unlock(hr_sink_t *s) { __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE); }

#endif

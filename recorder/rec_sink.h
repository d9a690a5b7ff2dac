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
 * The lock has two doors. hr_sink_lock is for everyone: a test-and-test-and-set spin lock. The
 * embedded-CPython recorder also has an owner door (hr_sink_enter_owner) for the thread holding
 * the GIL, which makes nearly every call: there at most one thread can be at a time, so it needs
 * no atomic read-modify-write (an uncontended exchange costs ~10 ns here, and it waits for the
 * store buffer to drain) but only a Dekker handshake with the spin lock's holders:
 *
 *   owner door                          spin lock (everyone else)
 *   owner_busy = 1                      take the spin lock
 *   [fence: compiler only, see below]   others_want = 1
 *   others_want?  -> owner_busy = 0,    membarrier(PRIVATE_EXPEDITED) [or a full fence]
 *                    take the spin lock wait until owner_busy == 0
 *   ... critical section ...            ... critical section ...
 *   owner_busy = 0 (release)            others_want = 0 (release), release the spin lock
 *
 * membarrier makes every running thread of the process execute a full memory barrier before it
 * returns, so either the owner's load of others_want comes after that barrier (and sees 1), or
 * its store of owner_busy came before it (and the waiter sees 1): they cannot both pass. That
 * moves the fence's cost to the rare side (threads without the GIL, the flusher every 250 ms).
 * Without membarrier (asym == 0) the owner door uses a full fence instead.
 * Correct only while at most one thread uses the owner door at a time (the GIL ensures it).
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
#include "hr_trace_wfast.h"

#define HR_SINK_FLUSH_MS 250

typedef struct hr_sink {
    hr_trace_writer_t *w;   /* owned; NULL once closed */
    int lock;               /* spin lock: guards everything below and the recorders' state,
                               together with owner_busy (see above) */
    int owner_busy;         /* the owner door's thread is inside */
    int others_want;        /* a spin lock holder waits for, or is in, the critical section */
    int asym;               /* 1: membarrier registered: the owner door needs no fence;
                               0: it uses a full fence; -1: no owner door (spin lock only) */
    volatile int off;       /* 1: record nothing (closed, failed, or in a forked child) */
    volatile int fd;        /* the trace's descriptor while on, else -1 (hr_sink_keep_fd) */
    int failed;             /* a write failed: err says why */
    hr_err_t err;           /* first error */
    uint64_t flushed_events; /* writer event count at the last flush */
    pid_t owner;            /* the process that owns the trace */
    pthread_t flusher;
    int flusher_started;
    int stop;               /* asks the flusher to end (guarded by wake_mu) */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake;    /* signalled when stop is set */
} hr_sink_t;

/* Open the trace at `path` (non-atomic, crash-safe frames) and start the flusher thread.
 * `owner_door`: 1 opens the owner door (see above; membarrier if the kernel has it, else a full
 * fence), 0 leaves the spin lock as the only door. */
int hr_sink_open(hr_sink_t *s, const char *path, const hr_trace_header_t *h,
                 const hr_trace_write_opts_t *opts, int owner_door, hr_err_t *err);
/* Called first thing on the flusher thread (the LD_PRELOAD recorder marks the thread as its own,
 * so the flusher's allocations are not recorded). Set before hr_sink_open. */
extern void (*hr_sink_flusher_init)(void);
/* Write one event; the caller holds s->lock. On failure the sink switches itself off. */
int hr_sink_write(hr_sink_t *s, const hr_event_t *ev);
/* The writer's fast paths (hr_trace_write_alloc, _id, _link: the same checks and bytes as
 * hr_trace_write; ALLOC and the id events inline, hr_trace_wfast.h); the caller holds s->lock. */
HR_INLINE int hr_sink_failed_(hr_sink_t *s, int rc)
{
    if (HR_UNLIKELY(rc))
        s->failed = 1, s->off = 1;
    return rc;
}
HR_INLINE int hr_sink_alloc(hr_sink_t *s, uint64_t size, unsigned domain, unsigned flags,
                                uint32_t type, uint64_t *id)
{
    if (HR_UNLIKELY(s->off))
        return HR_EIO;
    return hr_sink_failed_(s, hr_trace_wfast_alloc(s->w, size, domain, flags, type, id, &s->err));
}
HR_INLINE int hr_sink_id(hr_sink_t *s, int op, uint64_t id)
{
    if (HR_UNLIKELY(s->off))
        return HR_EIO;
    return hr_sink_failed_(s, hr_trace_wfast_id(s->w, op, id, &s->err));
}
HR_INLINE int hr_sink_free(hr_sink_t *s, uint64_t id) { return hr_sink_id(s, HR_OP_FREE, id); }
HR_INLINE int hr_sink_link(hr_sink_t *s, int op, uint64_t src, uint64_t dst)
{
    if (HR_UNLIKELY(s->off))
        return HR_EIO;
    return hr_sink_failed_(s, hr_trace_write_link(s->w, op, src, dst, &s->err));
}

/* Stop the flusher, write the END record and close. Returns the first error seen (also one
 * from an earlier hr_sink_write). Idempotent; does nothing in a process that is not the owner. */
int hr_sink_close(hr_sink_t *s, hr_err_t *err);
/* The program is about to close or replace every descriptor in [lo, hi]: if the trace's is among
 * them, move it out of the way (above hi when there is room, else to a free descriptor below lo),
 * so that the program's call closes the old number and nothing of the program's is ever written
 * into the trace or the trace into a file of the program's. Returns -1 when the trace's
 * descriptor is not (or no longer) in the range, else the descriptor, which stayed where it was:
 * there was nowhere to move it (the caller leaves it open). Takes the lock; does nothing while
 * the sink is off (closed, failed, a forked child). */
int hr_sink_keep_fd(hr_sink_t *s, unsigned lo, unsigned hi);
/* The program replaces the trace's descriptor and it could not be moved: switch off with `msg`
 * as the error, without writing or closing that descriptor again. */
void hr_sink_give_up_fd(hr_sink_t *s, const char *msg);
/* Call in a forked child: switch off without touching the parent's file. */
void hr_sink_forked_child(hr_sink_t *s);

/* Waiting for the lock or the owner door: spin a little, then yield, then sleep in growing
 * steps (up to 1 ms). The holder may be in a long critical section (a frame's compression, a
 * graph-mode reconciliation at a collection): yielding in a loop would burn the other core. */
void hr_sink_backoff(int *spin);

/* The spin lock: test-and-test-and-set. Not recursive. With the owner door open it also waits
 * for the owner to leave (a membarrier per call: for rare callers). */
static inline void hr_sink_spin_acquire(hr_sink_t *s)
{
    while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE)) {
        for (int spin = 0; __atomic_load_n(&s->lock, __ATOMIC_RELAXED);)
            hr_sink_backoff(&spin);
    }
}
void hr_sink_lock_slow(hr_sink_t *s);
static inline void hr_sink_lock(hr_sink_t *s)
{
    if (s->asym < 0)
        hr_sink_spin_acquire(s);
    else
        hr_sink_lock_slow(s);
}
static inline void hr_sink_unlock(hr_sink_t *s)
{
    if (s->asym >= 0)
        __atomic_store_n(&s->others_want, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

/* The owner door: only for the one thread that may use it (the GIL holder). Returns the token
 * to give hr_sink_leave_owner: 0 inside through the owner door, 1 through the spin lock (someone
 * else was there or waiting). */
static inline int hr_sink_enter_owner(hr_sink_t *s)
{
    int asym = s->asym; /* set once, when the sink opens; read once (the compiler read it again
                         * after the store below) */
    if (HR_UNLIKELY(asym < 0)) { /* the owner door is not open */
        hr_sink_spin_acquire(s);
        return 1;
    }
    __atomic_store_n(&s->owner_busy, 1, __ATOMIC_RELAXED);
    if (HR_LIKELY(asym > 0))
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (HR_LIKELY(!__atomic_load_n(&s->others_want, __ATOMIC_ACQUIRE)))
        return 0;
    __atomic_store_n(&s->owner_busy, 0, __ATOMIC_RELEASE);
    hr_sink_spin_acquire(s); /* no one else can be at the owner door: the spin lock suffices */
    return 1;
}
static inline void hr_sink_leave_owner(hr_sink_t *s, int token)
{
    if (HR_LIKELY(!token))
        __atomic_store_n(&s->owner_busy, 0, __ATOMIC_RELEASE);
    else
        __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

#endif

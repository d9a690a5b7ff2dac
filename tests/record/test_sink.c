/* test_sink.c: the recorders' sink lock: the owner door and the spin lock exclude each other. */
#include "rec_sink.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define OWNER_ROUNDS 400000
#define OTHER_ROUNDS 20000

static hr_sink_t sink;
static volatile uint64_t counter; /* updated non-atomically inside the critical section */
static volatile int inside;       /* threads inside the critical section right now */
static int overlaps;

/* A read-modify-write with a pause in the middle: two threads inside at once lose updates. */
static void critical(void)
{
    if (__atomic_add_fetch(&inside, 1, __ATOMIC_RELAXED) != 1)
        __atomic_add_fetch(&overlaps, 1, __ATOMIC_RELAXED);
    uint64_t c = counter;
    for (volatile int i = 0; i < 20; i++)
        ;
    counter = c + 1;
    __atomic_sub_fetch(&inside, 1, __ATOMIC_RELAXED);
}

static void *owner(void *arg)
{
    (void)arg;
    for (int i = 0; i < OWNER_ROUNDS; i++) {
        int door = hr_sink_enter_owner(&sink);
        critical();
        hr_sink_leave_owner(&sink, door);
    }
    return NULL;
}

static void *other(void *arg)
{
    (void)arg;
    for (int i = 0; i < OTHER_ROUNDS; i++) {
        hr_sink_lock(&sink);
        critical();
        hr_sink_unlock(&sink);
    }
    return NULL;
}

/* force: -1 keep what hr_sink_open chose, else set asym to it (0: full fence, -1 would be the
 * spin lock alone, passed as -2) */
static void round_with(int force, const char *what)
{
    char path[4096];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/hr_test_sink.%ld.hrt", dir && *dir ? dir : "/tmp", (long)getpid());
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_ALLOC);
    hr_err_t err = {0};
    int rc = hr_sink_open(&sink, path, &h, NULL, 1, &err);
    hr_trace_header_free(&h);
    if (rc) {
        TAP_OK(0, "%s: sink opened (%s)", what, err.msg);
        return;
    }
    int had_membarrier = sink.asym > 0;
    if (force != -1)
        sink.asym = force == -2 ? -1 : force; /* before any thread uses the doors */
    counter = 0;
    overlaps = 0;
    pthread_t a, b, c;
    pthread_create(&a, NULL, owner, NULL);
    pthread_create(&b, NULL, other, NULL);
    pthread_create(&c, NULL, other, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_join(c, NULL);
    uint64_t want = OWNER_ROUNDS + 2 * OTHER_ROUNDS;
    TAP_OK(counter == want && overlaps == 0,
           "%s: one owner and two other threads never inside together (%llu of %llu updates, "
           "%d overlaps; membarrier %s)",
           what, (unsigned long long)counter, (unsigned long long)want, overlaps,
           had_membarrier ? "available" : "unavailable");
    hr_sink_close(&sink, &err);
    unlink(path);
}

int main(void)
{
    round_with(-1, "owner door as opened (membarrier when the kernel has it)");
    round_with(0, "owner door with a full fence");
    round_with(-2, "spin lock only (the owner door takes the spin lock)");
    return tap_done();
}

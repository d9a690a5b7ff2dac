/* test_gc.c: collectors on hand-written traces with known answers (which object dies at which
 * event), deep chains, generational counting, and check mode catching a broken collector. */
#include "graph.h"
#include "hr_gen.h"
#include "hr_replay.h"
#include "hr_trace.h"
#include "craft.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name) { return tap_path(tmpdir, name); }

/* Pack a text trace given inline. */
static const char *pack(const char *name, const char *text)
{
    const char *p = tpath(name);
    hr_err_t err = {0};
    if (hr_trace_pack_buf(name, text, strlen(text), p, &(hr_trace_write_opts_t){.atomic = 1}, &err)) {
        fprintf(stderr, "pack %s: %s\n", name, err.msg);
        exit(99);
    }
    return p;
}

static int replay(const char *trace, const char *gc, int check, hr_replay_result_t *res, hr_err_t *err)
{
    hr_replay_opts_t o = {.alloc_spec = "libc", .gc_spec = gc, .check = check, .log_deaths = 1};
    hr_err_clear(err);
    return hr_replay_run(trace, &o, res, err);
}

/* "id@event id@event ..." of the replay's reclamations, in order. */
static const char *deaths(const hr_replay_result_t *r)
{
    static char buf[4096];
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->reclaimed.n && o + 32 < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%llu@%llu", i ? " " : "",
                              (unsigned long long)r->reclaimed.v[i].id,
                              (unsigned long long)r->reclaimed.v[i].event);
    return buf;
}

/* Deaths as a set (order inside one event does not matter): sort by event, then id. */
static int cmp_death(const void *a, const void *b)
{
    const hr_death_t *x = a, *y = b;
    if (x->event != y->event)
        return x->event < y->event ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void expect_deaths(const char *trace, const char *gc, const char *want, const char *what)
{
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(trace, gc, 1, &r, &err);
    if (r.reclaimed.n)
        qsort(r.reclaimed.v, r.reclaimed.n, sizeof *r.reclaimed.v, cmp_death);
    const char *got = deaths(&r);
    TAP_OK(rc == 0 && strcmp(got, want) == 0, "%s [%s]: deaths '%s' (want '%s') %s", what, gc, got,
           want, err.msg);
    hr_replay_result_free(&r);
}

static void expect_leaks(const char *trace, const char *gc, uint64_t leaked, uint64_t live_end,
                         const char *what)
{
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(trace, gc, 1, &r, &err);
    TAP_OK(rc == 0 && r.gc.objects_leaked == leaked && r.gc.objects_live_end == live_end,
           "%s [%s]: %llu leaked, %llu live at the end (want %llu, %llu) %s", what, gc,
           (unsigned long long)r.gc.objects_leaked, (unsigned long long)r.gc.objects_live_end,
           (unsigned long long)leaked, (unsigned long long)live_end, err.msg);
    hr_replay_result_free(&r);
}

/* {==== Known answers ==== */

static void test_known_answers(void)
{
    /* A chain 0 -> 1 -> 2: dropping 0 kills all three at once (event 5) under counting. */
    const char *chain = pack("chain.txt",
                             "heapreplay-trace 1 graph\n"
                             "alloc 0 32 obj object\nalloc 1 32 obj object\nalloc 2 32 obj object\n"
                             "link 0 1\nlink 1 2\n"       /* events 3, 4 */
                             "decref 0\n"                 /* 5: 0 dies; 1 and 2 still have ext */
                             "decref 1\ndecref 2\n"       /* 6, 7: now they go */
                             "alloc 3 32 obj object\n");  /* 8: a trigger for tracing collectors */
    expect_deaths(chain, "refcount", "0@5 1@6 2@7", "chain with external refs");
    expect_deaths(chain, "generational", "0@5 1@6 2@7", "chain with external refs");
    expect_deaths(chain, "marksweep:budget=1", "0@8 1@8 2@8", "chain with external refs");

    /* Kept alive only through a link after the last external reference is gone. */
    const char *kept = pack("kept.txt",
                            "heapreplay-trace 1 graph\n"
                            "alloc 0 32 obj object\nalloc 1 32 obj object\n"
                            "link 0 1\n"     /* 2 */
                            "decref 1\n"     /* 3: 1 lives on through the link */
                            "incref 1\n"     /* 4 */
                            "decref 1\n"     /* 5 */
                            "unlink 0 1\n"   /* 6: now 1 dies */
                            "decref 0\n");   /* 7 */
    expect_deaths(kept, "refcount", "1@6 0@7", "kept alive by a link");
    expect_deaths(kept, "generational", "1@6 0@7", "kept alive by a link");
    expect_leaks(kept, "marksweep", 2, 0, "kept alive by a link (no collection ran)");

    /* A two-cycle and a self-link: counting leaks them; tracing reclaims them. */
    const char *cyc = pack("cycle.txt",
                           "heapreplay-trace 1 graph\n"
                           "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\nalloc 2 48 obj object gc\n"
                           "link 0 1\nlink 1 0\nlink 2 2\n" /* 3, 4, 5 */
                           "decref 0\ndecref 1\ndecref 2\n" /* 6, 7, 8: all garbage now */
                           "alloc 3 16 obj object gc\n"     /* 9: triggers */
                           "alloc 4 16 obj object gc\n");   /* 10 */
    expect_leaks(cyc, "refcount", 3, 2, "two-cycle and self-link");
    expect_deaths(cyc, "refcount", "", "two-cycle and self-link: no deaths");
    expect_deaths(cyc, "marksweep:budget=1", "0@9 1@9 2@9", "two-cycle and self-link");
    /* generational:3: the 4th GC allocation (event 9) takes count0 to 4 > 3 and collects gen 0
     * before the new object is tracked. */
    expect_deaths(cyc, "generational:3,10,10", "0@9 1@9 2@9", "two-cycle and self-link");
    expect_deaths(cyc, "generational:4,10,10", "0@10 1@10 2@10", "two-cycle, one later");
    expect_leaks(cyc, "generational:5,10,10", 3, 2, "two-cycle, threshold never reached");

    /* A cycle holding a non-GC object: the generational collector frees the cycle by tracing and
     * the string by counting, in the same event. */
    const char *mixed = pack("mixed.txt",
                             "heapreplay-trace 1 graph\n"
                             "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\nalloc 2 40 obj object\n"
                             "link 0 1\nlink 1 0\nlink 1 2\n"
                             "decref 2\ndecref 0\ndecref 1\n"
                             "alloc 3 16 obj object gc\nalloc 4 16 obj object gc\n");
    expect_deaths(mixed, "generational:2,10,10", "0@9 1@9 2@9", "cycle holding a non-GC object");
    expect_deaths(mixed, "refcount", "", "cycle holding a non-GC object: counting frees nothing");
}

/* {==== What the program did to its collector (GC_CONTROL) ==== */

static void test_gc_control(void)
{
    /* A two-cycle becomes garbage at event 5; the program calls gc.collect(0) at event 6. */
    const char *p = pack("control.txt",
                         "heapreplay-trace 1 graph\n"
                         "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\n"
                         "link 0 1\nlink 1 0\ndecref 0\ndecref 1\n"
                         "gc collect 0\n"
                         "alloc 2 16 obj object gc\n");
    expect_deaths(p, "generational", "0@6 1@6", "gc.collect() runs a collection at its event");
    expect_deaths(p, "marksweep", "0@6 1@6", "gc.collect() makes mark-sweep collect too");
    expect_deaths(p, "refcount", "", "reference counting has nothing to do on gc.collect()");

    /* gc.disable() stops automatic collections until gc.enable(); gc.set_threshold() counts. */
    p = pack("control2.txt",
             "heapreplay-trace 1 graph\n"
             "gc disable\n"                                          /* 0 */
             "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\n" /* 1, 2 */
             "link 0 1\nlink 1 0\ndecref 0\ndecref 1\n"               /* 3-6 */
             "alloc 2 16 obj object gc\nalloc 3 16 obj object gc\n" /* 7, 8: count 4 > 3 */
             "gc enable\n"                                           /* 9 */
             "alloc 4 16 obj object gc\n"                            /* 10: count 5 > 3 */
             "gc threshold 100 10 10\n"                              /* 11 */
             "alloc 5 16 obj object gc\n");                          /* 12: 6 < 100 */
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(p, "generational:3,10,10", 1, &r, &err);
    if (r.reclaimed.n)
        qsort(r.reclaimed.v, r.reclaimed.n, sizeof *r.reclaimed.v, cmp_death);
    TAP_OK(rc == 0 && strcmp(deaths(&r), "0@10 1@10") == 0 && r.replayed.n == 1,
           "gc.disable() holds collections back until gc.enable(); new thresholds apply "
           "(deaths '%s', %zu collections) %s", deaths(&r), r.replayed.n, err.msg);
    hr_replay_result_free(&r);
    /* gc.freeze(): the frozen cycle is never examined, the counts start again from 0; after
     * gc.unfreeze() it sits in the oldest generation, and a full collection finds it. */
    p = pack("freeze.txt",
             "heapreplay-trace 1 graph\n"
             "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\n" /* 0, 1 */
             "link 0 1\nlink 1 0\ndecref 0\ndecref 1\n"               /* 2-5: garbage */
             "gc freeze\n"                                          /* 6: counts 0 */
             "alloc 2 16 obj object gc\nalloc 3 16 obj object gc\n" /* 7, 8: 2 */
             "alloc 4 16 obj object gc\n"                            /* 9: 3, not > 3 */
             "gc collect 2\n"                                       /* 10: nothing */
             "gc unfreeze\n"                                        /* 11 */
             "gc collect 1\n"                                       /* 12: not the oldest */
             "gc collect 2\n"                                       /* 13: 0 and 1 */
             "alloc 5 16 obj object gc\n");
    rc = replay(p, "generational:3,10,10", 1, &r, &err);
    if (r.reclaimed.n)
        qsort(r.reclaimed.v, r.reclaimed.n, sizeof *r.reclaimed.v, cmp_death);
    char colls[128] = "";
    for (size_t i = 0; i < r.replayed.n; i++)
        snprintf(colls + strlen(colls), sizeof colls - strlen(colls), "%s%u@%llu", i ? " " : "",
                 r.replayed.v[i].generation, (unsigned long long)r.replayed.v[i].event);
    TAP_OK(rc == 0 && strcmp(deaths(&r), "0@13 1@13") == 0 && strcmp(colls, "2@10 1@12 2@13") == 0,
           "gc.freeze() hides the cycle from every collection and zeroes the counts (no automatic "
           "collection at the third allocation after it); gc.unfreeze() puts it in generation 2 "
           "(deaths '%s', collections '%s') %s", deaths(&r), colls, err.msg);
    hr_replay_result_free(&r);
    /* the text form round-trips both */
    hr_err_clear(&err);
    const char *q = pack("freeze2.txt", "heapreplay-trace 1 graph\ngc freeze\ngc unfreeze\n");
    hr_buf_t t;
    hr_buf_init(&t);
    hr_trace_reader_t *tr;
    hr_event_t evs[4];
    size_t got = 0;
    rc = hr_trace_open(&tr, q, NULL, &err);
    if (!rc)
        rc = hr_trace_read(tr, evs, 4, &got, &err);
    for (size_t i = 0; !rc && i < got; i++)
        hr_trace_format_event(&t, &evs[i]); /* one line each */
    if (!rc)
        hr_trace_close(tr);
    hr_buf_putc(&t, 0);
    TAP_OK(rc == 0 && got == 2 && strcmp((char *)t.data, "gc freeze\ngc unfreeze\n") == 0,
           "'gc freeze' and 'gc unfreeze' survive pack and read %s", err.msg);
    hr_buf_free(&t);
}

/* GC_CONTROL "gc del" takes a GC block the trace no longer names off generation 0's count; a
 * recorded GC_BEGIN right after the collector's own collection of that generation zeroes the
 * counts again (CPython zeroes them after gc.callbacks ran, whose allocations come between). */
static void test_gc_del_and_begin(void)
{
    const char *p = pack("gcdel.txt", "heapreplay-trace 1 graph\n"
                                      "alloc 0 16 obj object gc\nalloc 1 16 obj object gc\n"
                                      "alloc 2 16 obj object gc\ngc del\n"       /* 0-3: 3-1 */
                                      "alloc 3 16 obj object gc\n"               /* 4: 3 */
                                      "alloc 4 16 obj object gc\n");             /* 5: 4 > 3 */
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(p, "generational:3,10,10", 0, &r, &err);
    TAP_OK(rc == 0 && r.replayed.n == 1 && r.replayed.v[0].event == 5,
           "'gc del' lowers generation 0's count: the collection waits one allocation (%zu "
           "collections, at event %llu) %s", r.replayed.n,
           r.replayed.n ? (unsigned long long)r.replayed.v[0].event : 0ULL, err.msg);
    hr_replay_result_free(&r);
    p = pack("gcbegin.txt", "heapreplay-trace 1 graph\n"
                            "alloc 0 16 obj object gc\nalloc 1 16 obj object gc\n"
                            "alloc 2 16 obj object gc\n"                 /* 2: 3 > 2, collect */
                            "alloc 3 16 obj object gc\ngc begin 0\n"     /* 3: callback's, 4 */
                            "alloc 4 16 obj object gc\nalloc 5 16 obj object gc\n"
                            "alloc 6 16 obj object gc\n");               /* 7: 3 > 2 */
    rc = replay(p, "generational:2,10,10", 0, &r, &err);
    TAP_OK(rc == 0 && r.replayed.n == 2 && r.replayed.v[0].event == 2 &&
               r.replayed.v[1].event == 7,
           "the recorded GC_BEGIN after the collector's own collection zeroes the counts "
           "(%zu collections, the second at event %llu) %s", r.replayed.n,
           r.replayed.n > 1 ? (unsigned long long)r.replayed.v[1].event : 0ULL, err.msg);
    hr_replay_result_free(&r);
}

/* {==== GC_TRACK: what moves objects between the generation lists besides allocation ==== */

/* "1:g0/2 ..." : each replayed collection's event, generation and garbage found. */
static const char *schedule(const hr_replay_result_t *r)
{
    static char buf[512];
    buf[0] = 0;
    for (size_t i = 0; i < r->replayed.n; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%llu:g%u/%llu", i ? " " : "",
                 (unsigned long long)r->replayed.v[i].event, r->replayed.v[i].generation,
                 (unsigned long long)r->replayed.v[i].collected);
    return buf;
}

static void test_gc_track(void)
{
    /* A two-cycle holding a tuple CPython untracked: the collection finds the two cycle members
     * as garbage and frees the tuple by counting in the same event: "collected" is 2, not 3. */
    static const char *const cyc =
        "link 0 1\nlink 1 0\nlink 1 2\n"           /* 4, 5, 6 (3 with the untrack) */
        "decref 0\ndecref 1\ndecref 2\n"
        "alloc 3 16 obj object gc\n";              /* count 4 > 3: collects generation 0 */
    hr_buf_t t;
    hr_buf_init(&t);
    hr_buf_printf(&t, "heapreplay-trace 1 graph\nalloc 0 64 obj object gc\nalloc 1 64 obj object gc\n"
                      "alloc 2 48 obj object gc\ngc untrack 2\n%s", cyc);
    const char *p = pack("untrack.txt", (const char *)t.data);
    hr_buf_free(&t);
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(p, "generational:3,10,10", 1, &r, &err);
    if (r.reclaimed.n)
        qsort(r.reclaimed.v, r.reclaimed.n, sizeof *r.reclaimed.v, cmp_death);
    TAP_OK(rc == 0 && strcmp(schedule(&r), "10:g0/2") == 0 &&
               strcmp(deaths(&r), "0@10 1@10 2@10") == 0,
           "an untracked object held by garbage dies with it by counting, not as garbage found "
           "(collections '%s', deaths '%s') %s", schedule(&r), deaths(&r), err.msg);
    hr_replay_result_free(&r);
    hr_buf_init(&t);
    hr_buf_printf(&t, "heapreplay-trace 1 graph\nalloc 0 64 obj object gc\nalloc 1 64 obj object gc\n"
                      "alloc 2 48 obj object gc\nphase \"tracked\"\n%s", cyc);
    p = pack("tracked.txt", (const char *)t.data);
    hr_buf_free(&t);
    rc = replay(p, "generational:3,10,10", 1, &r, &err);
    TAP_OK(rc == 0 && strcmp(schedule(&r), "10:g0/3") == 0,
           "the same heap with the object tracked: 3 found (%s) %s", schedule(&r), err.msg);
    hr_replay_result_free(&r);

    /* An object tracked into generation 2 is not collected by a generation-0 collection; once
     * back in generation 0 it is. */
    p = pack("track2.txt", "heapreplay-trace 1 graph\n"
                           "alloc 0 64 obj object gc\nalloc 1 64 obj object gc\n"
                           "link 0 1\nlink 1 0\n"                       /* 2, 3 */
                           "gc track 0 2\ngc track 1 2\n"               /* 4, 5 */
                           "decref 0\ndecref 1\n"                       /* 6, 7: garbage */
                           "alloc 2 16 obj object gc\nalloc 3 16 obj object gc\n" /* 9: g0 */
                           "gc track 0 0\ngc track 1 0\n"               /* 10, 11 */
                           "alloc 4 16 obj object gc\nalloc 5 16 obj object gc\n"
                           "alloc 6 16 obj object gc\nalloc 7 16 obj object gc\n"); /* 15 */
    rc = replay(p, "generational:3,10,10", 1, &r, &err);
    TAP_OK(rc == 0 && strcmp(schedule(&r), "9:g0/0 15:g0/2") == 0 &&
               strcmp(deaths(&r), "0@15 1@15") == 0,
           "gc track moves objects between generations (collections '%s', deaths '%s') %s",
           schedule(&r), deaths(&r), err.msg);
    hr_replay_result_free(&r);

    /* Survivors untracked by the collection just run leave the count it added to
     * long_lived_pending. 40 objects survive a full collection (long_lived_total 40), then
     * thresholds (2,1,1): generation-1 collections at the 9th and 18th allocation add 8 and 9
     * survivors (pending 17); the 21st allocation collects generation 2 since 17 >= 40 / 4.
     * With 8 of the second collection's survivors untracked by it, pending is 9 < 10: the
     * full collection is skipped, and generation 0 is collected instead. */
    for (int untrack = 0; untrack <= 1; untrack++) {
        hr_buf_init(&t);
        hr_buf_printf(&t, "heapreplay-trace 1 graph\ngc threshold 1000 10 10\n");
        int id = 0;
        for (; id < 40; id++)
            hr_buf_printf(&t, "alloc %d 32 obj object gc\n", id);
        hr_buf_printf(&t, "gc collect 2\ngc threshold 2 1 1\n");
        for (int k = 1; k <= 21; k++, id++) {
            hr_buf_printf(&t, "alloc %d 32 obj object gc\n", id);
            if (k == 18 && untrack)
                for (int s = 48; s < 56; s++)
                    hr_buf_printf(&t, "gc untrack %d survivor\n", s);
        }
        p = pack("pending.txt", (const char *)t.data);
        hr_buf_free(&t);
        rc = replay(p, "generational", 1, &r, &err);
        char gens[64] = "";
        for (size_t i = 0; i < r.replayed.n; i++)
            snprintf(gens + strlen(gens), sizeof gens - strlen(gens), "%u", r.replayed.v[i].generation);
        TAP_OK(rc == 0 && strcmp(gens, untrack ? "20010010" : "20010012") == 0,
               "%s: generations collected %s %s",
               untrack ? "8 survivors untracked by the generation-1 collection: the full "
                         "collection is skipped (25 % rule)"
                       : "no untracking: the 21st allocation collects generation 2",
               gens, err.msg);
        hr_replay_result_free(&r);
    }

    /* Tracking an object the collector already reclaimed is an error with the event. */
    p = pack("trackdead.txt", "heapreplay-trace 1 graph\nalloc 0 16 obj object gc\ndecref 0\n"
                              "gc untrack 0\n");
    rc = replay(p, "generational", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "untrack of object 0, which is not live"),
           "gc untrack of a reclaimed object fails: %s", err.msg);
    hr_replay_result_free(&r);
    /* under every collector: the engine checks it (refcount reclaimed the object at the decref;
     * it used to accept the event, since it keeps no generations) */
    p = pack("trackdead2.txt", "heapreplay-trace 1 graph\nalloc 0 16 obj object gc\ndecref 0\n"
                               "alloc 1 16 obj object gc\ngc untrack 0\n"); /* marksweep: at 1 */
    static const char *const others[] = {"refcount", "marksweep:budget=1", "none"};
    for (size_t i = 0; i < HR_ARRAY_LEN(others); i++) {
        hr_err_clear(&err);
        rc = replay(p, others[i], 1, &r, &err);
        int reclaimed = strcmp(others[i], "none") != 0; /* none reclaims no object */
        TAP_OK(reclaimed ? rc == HR_ECHECK && strstr(err.msg, "event 3") &&
                               strstr(err.msg, "untrack of object 0, which is not live")
                         : rc == 0,
               "%s: gc untrack of an object it reclaimed is %s: %s", others[i],
               reclaimed ? "a use after free" : "fine (nothing reclaimed)", err.msg);
        hr_replay_result_free(&r);
    }
    p = pack("tracklive.txt", "heapreplay-trace 1 graph\nalloc 0 16 obj object gc\n"
                              "gc untrack 0\ndecref 0\n");
    rc = replay(p, "refcount", 1, &r, &err);
    TAP_OK(rc == 0, "collectors without generations ignore GC_TRACK of a live object %s", err.msg);
    hr_replay_result_free(&r);
}

/* {==== Generational counting: which generation is collected when ==== */

static void test_generational_schedule(void)
{
    /* 21 GC objects allocated and kept, thresholds (2,1,1). By the rules (hand-computed):
     * alloc #3 gen0, #6 gen0, #9 gen1, #12 gen0, #15 gen0, #18 gen1, #21 gen2 (pending 17 >=
     * total 0 / 4), each at the event of that allocation (event = #-1). */
    hr_buf_t t;
    hr_buf_init(&t);
    hr_buf_printf(&t, "heapreplay-trace 1 graph\n");
    for (int i = 0; i < 21; i++)
        hr_buf_printf(&t, "alloc %d 32 obj object gc\n", i);
    const char *p = pack("sched.txt", (const char *)t.data);
    hr_buf_free(&t);
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(p, "generational:2,1,1", 1, &r, &err);
    char got[256] = "";
    for (size_t i = 0; i < r.replayed.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu:g%u", i ? " " : "",
                 (unsigned long long)r.replayed.v[i].event, r.replayed.v[i].generation);
    TAP_OK(rc == 0 && strcmp(got, "2:g0 5:g0 8:g1 11:g0 14:g0 17:g1 20:g2") == 0,
           "generation schedule for thresholds (2,1,1): %s", got);
    hr_replay_result_free(&r);

    /* The deaths of GC objects take count0 down (only while > 0): with threshold 2, allocating
     * and killing GC objects one at a time never collects. */
    hr_buf_init(&t);
    hr_buf_printf(&t, "heapreplay-trace 1 graph\n");
    for (int i = 0; i < 50; i++)
        hr_buf_printf(&t, "alloc %d 32 obj object gc\ndecref %d\n", i, i);
    p = pack("churn.txt", (const char *)t.data);
    hr_buf_free(&t);
    rc = replay(p, "generational:2,10,10", 1, &r, &err);
    TAP_OK(rc == 0 && r.replayed.n == 0 && r.gc.objects_by_refcount == 50,
           "GC deaths decrement count0: no collection (%zu) and 50 counted deaths", r.replayed.n);
    hr_replay_result_free(&r);

    /* In an allocation-only trace, GC-flagged blocks drive the same schedule. */
    hr_buf_init(&t);
    hr_buf_printf(&t, "heapreplay-trace 1 alloc\n");
    for (int i = 0; i < 21; i++)
        hr_buf_printf(&t, "alloc %d 32 obj gc\n", i);
    p = pack("sched-alloc.txt", (const char *)t.data);
    hr_buf_free(&t);
    rc = replay(p, "generational:2,1,1", 0, &r, &err);
    got[0] = 0;
    for (size_t i = 0; i < r.replayed.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu:g%u", i ? " " : "",
                 (unsigned long long)r.replayed.v[i].event, r.replayed.v[i].generation);
    TAP_OK(rc == 0 && strcmp(got, "2:g0 5:g0 8:g1 11:g0 14:g0 17:g1 20:g2") == 0,
           "allocation-only trace: the same schedule from GC-flagged blocks: %s", got);
    hr_replay_result_free(&r);
}

/* {==== A 10-million-long linked list ==== */

/* The normal build checks the 10-million chain; a sanitizer build (slow, and recursion depth is
 * the point, which 1 million shows as well) uses 1 million. */
#if defined(__SANITIZE_ADDRESS__)
#define CHAIN_LENGTH (1000 * 1000)
#else
#define CHAIN_LENGTH (10 * 1000 * 1000)
#endif

static void test_deep_chain(void)
{
    const uint64_t n = CHAIN_LENGTH;
    const char *p = tpath("deep.hrt");
    hr_trace_header_t h;
    hr_trace_header_init(&h, HR_KIND_GRAPH);
    hr_trace_writer_t *w;
    hr_err_t err = {0};
    int rc = hr_trace_writer_open(&w, p, &h, &(hr_trace_write_opts_t){.atomic = 1}, &err);
    /* 0 -> 1 -> 2 -> ... -> n-1; every object but the head loses its external reference. */
    for (uint64_t i = 0; i < n && !rc; i++) {
        rc = hr_trace_put_alloc(w, 16, HR_DOMAIN_OBJ, HR_F_OBJECT | HR_F_GC, 0, NULL, &err);
        if (i && !rc)
            rc = hr_trace_put_link(w, HR_OP_LINK, i - 1, i, &err);
        if (i && !rc)
            rc = hr_trace_put_id(w, HR_OP_DECREF, i, &err);
    }
    if (!rc)
        rc = hr_trace_put_id(w, HR_OP_DECREF, 0, &err); /* the whole list dies here */
    if (!rc)
        rc = hr_trace_put_alloc(w, 16, HR_DOMAIN_OBJ, HR_F_OBJECT, 0, NULL, &err);
    rc |= hr_trace_writer_close(w, &err);
    hr_trace_header_free(&h);
    TAP_OK(rc == 0, "wrote a chain of %llu objects (%s)", (unsigned long long)n, err.msg);
    /* Counting (refcount, and generational, which counts too) frees the whole chain at the
     * head's decref, through the iterative cascade. */
    const char *gcs[] = {"refcount", "generational:100000000,10,10"};
    for (size_t i = 0; i < HR_ARRAY_LEN(gcs); i++) {
        hr_replay_opts_t o = {.alloc_spec = "libc", .gc_spec = gcs[i], .log_deaths = 1};
        hr_replay_result_t r;
        hr_err_clear(&err);
        rc = hr_replay_run(p, &o, &r, &err);
        uint64_t head_event = 3 * n - 2; /* n allocs, n-1 links, n-1 decrefs, then the decref */
        int same_event = r.reclaimed.n == n;
        for (size_t k = 0; same_event && k < r.reclaimed.n; k++)
            same_event = r.reclaimed.v[k].event == head_event;
        TAP_OK(rc == 0 && r.gc.objects_by_refcount == n && same_event,
               "chain under %s: all %llu die at the head's decref, no recursion %s", gcs[i],
               (unsigned long long)r.gc.objects_by_refcount, err.msg);
        hr_replay_result_free(&r);
    }
    /* A tracing collection over the whole chain: n objects of 16 bytes make exactly 16 n bytes,
     * so a budget of that size fires at the final allocation, after the head's decref. */
    char ms[64];
    snprintf(ms, sizeof ms, "marksweep:budget=%llu", (unsigned long long)(16 * n));
    hr_replay_opts_t o = {.alloc_spec = "libc", .gc_spec = ms};
    hr_replay_result_t r;
    hr_err_clear(&err);
    rc = hr_replay_run(p, &o, &r, &err);
    TAP_OK(rc == 0 && r.gc.objects_by_tracing == n && r.gc.collections == 1,
           "mark-sweep reclaims the whole chain in one collection (%llu objects) %s",
           (unsigned long long)r.gc.objects_by_tracing, err.msg);
    hr_replay_result_free(&r);
}

/* {==== Check mode catches a broken collector ==== */

/* A test double: reference counting that ignores links (an object dies when its external count
 * reaches zero, even if a container still holds it). */
typedef struct broken {
    hr_graph_t g;
    hr_gc_stats_t st;
} broken_t;

static int b_create(void **ctx, hr_spec_t *spec, const hr_gc_env_t *env, hr_err_t *err)
{
    (void)spec;
    broken_t *b = calloc(1, sizeof *b);
    hr_graph_init(&b->g, env, &b->st, err);
    *ctx = b;
    return 0;
}
static void b_destroy(void *ctx)
{
    hr_graph_free(&((broken_t *)ctx)->g);
    free(ctx);
}
static int b_alloc(void *ctx, uint64_t id, uint64_t size, unsigned flags, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_alloc(&((broken_t *)ctx)->g, id, size, flags, &o, err);
}
static int b_incref(void *ctx, uint64_t id, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_incref(&((broken_t *)ctx)->g, id, &o, err);
}
static int b_decref(void *ctx, uint64_t id, hr_err_t *err)
{
    broken_t *b = ctx;
    hr_gobj_t *o;
    int rc = hr_graph_decref(&b->g, id, &o, err);
    if (rc || o->ext)
        return rc;
    /* the bug: drop the incoming links' owners' edges to it by force, then kill it */
    return hr_graph_kill_set(&b->g, &o, 1, err);
}
static int b_link(void *ctx, uint64_t s, uint64_t d, hr_err_t *err)
{
    return hr_graph_link(&((broken_t *)ctx)->g, s, d, err);
}
static int b_unlink(void *ctx, uint64_t s, uint64_t d, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_unlink(&((broken_t *)ctx)->g, s, d, &o, err);
}
static void b_stats(void *ctx, hr_gc_stats_t *st) { *st = ((broken_t *)ctx)->st; }

static const hr_gc_vt broken_vt = {
    .name = "broken-test-double", .summary = "reclaims objects that links still hold",
    .params = "", .create = b_create, .destroy = b_destroy, .alloc = b_alloc, .incref = b_incref,
    .decref = b_decref, .link = b_link, .unlink = b_unlink, .stats = b_stats,
};

static void test_check_mode(void)
{
    TAP_OK(hr_gc_register_extra(&broken_vt) == 0 && hr_gc_register_extra(&broken_vt) == HR_EUSAGE,
           "a test collector registers once; a duplicate name is refused");
    const char *kept = tpath("kept.txt"); /* packed (binary) by test_known_answers */
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(kept, "broken-test-double", 1, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 3:") &&
               strstr(err.msg, "reclaimed object 1 while 1 links from live objects"),
           "--check catches the broken collector at the event of its mistake: %s", err.msg);
    hr_replay_result_free(&r);
    rc = replay(kept, "broken-test-double", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 4:") && strstr(err.msg, "incref of object 1"),
           "without --check the use after free is still caught one event later: %s", err.msg);
    hr_replay_result_free(&r);

    const char *below = pack("below.txt", "heapreplay-trace 1 graph\n"
                                          "alloc 0 32 obj object\nalloc 1 32 obj object\n"
                                          "link 0 1\ndecref 1\ndecref 1\n");
    rc = replay(below, "refcount", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 4:") && strstr(err.msg, "below zero"),
           "a count below zero is an error with its event: %s", err.msg);
    hr_replay_result_free(&r);
    const char *uaf = pack("uaf.txt", "heapreplay-trace 1 graph\n"
                                      "alloc 0 32 obj object\ndecref 0\nincref 0\n");
    rc = replay(uaf, "refcount", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 2:") && strstr(err.msg, "not live"),
           "an event naming a reclaimed object is a use after free: %s", err.msg);
    hr_replay_result_free(&r);

    /* The real collectors pass check mode on a random graph with cycles. */
    hr_err_clear(&err);
    hr_gen_run("random:events=100000,kind=graph,seed=21", tpath("rnd.hrt"), NULL, &err);
    const char *gcs[] = {"refcount", "marksweep:trigger=1.5x,min=64K", "generational:50,5,5"};
    for (size_t i = 0; i < HR_ARRAY_LEN(gcs); i++) {
        rc = replay(tpath("rnd.hrt"), gcs[i], 1, &r, &err);
        TAP_OK(rc == 0 && r.checked_objects == r.gc.objects_reclaimed,
               "%s passes --check on a random graph (%llu sets, %llu objects verified) %s", gcs[i],
               (unsigned long long)r.checked_sets, (unsigned long long)r.checked_objects, err.msg);
        hr_replay_result_free(&r);
    }
}

/* {==== --check on every bundled workload with every collector ==== */

static void test_workloads_check(void)
{
    static const char *const workloads[] = {
        "seed-intlist:n=20000",  "seed-cycle:n=5000,work=5000", "genmix:events=60000",
        "gcbench:long=8,max=10,iters=1", "cycles:count=3000", "random:events=20000,kind=graph",
        "seed-arena:blocks=20000,work=2000", "churn:events=20000"};
    static const char *const collectors[] = {"refcount", "marksweep:trigger=1.5x,min=64K",
                                             "generational", "generational:50,5,5", "none"};
    for (size_t w = 0; w < HR_ARRAY_LEN(workloads); w++) {
        hr_err_t err = {0};
        const char *p = tpath("wl.hrt");
        if (hr_gen_run(workloads[w], p, NULL, &err)) {
            TAP_OK(0, "generate %s: %s", workloads[w], err.msg);
            continue;
        }
        int ok = 1;
        char why[HR_ERR_MSG_MAX + 64] = "";
        uint64_t verified = 0;
        for (size_t c = 0; c < HR_ARRAY_LEN(collectors); c++) {
            hr_replay_result_t r;
            int rc = replay(p, collectors[c], 1, &r, &err);
            if (rc || (strcmp(collectors[c], "none") && r.checked_objects != r.gc.objects_reclaimed)) {
                ok = 0;
                snprintf(why, sizeof why, "%s: %s", collectors[c], err.msg);
            }
            verified += r.checked_objects;
            hr_replay_result_free(&r);
        }
        TAP_OK(ok, "%s: every collector passes --check (%llu reclamations verified) %s",
               workloads[w], (unsigned long long)verified, why);
    }
}

/* {==== A tracing collector on a recorded graph trace ==== */

/* A cycle whose external counts fell to 0 is garbage to a tracing collector; if the trace then
 * names it again (a recorded trace's stale count: docs/recorder.md, "Which collectors a recorded
 * graph trace supports"), the replay stops at that event, and on a trace recorded from CPython
 * the message says which collectors such a trace supports. */
static void test_stale_recorded(void)
{
    const char *body = "alloc 0 32 obj object gc\nalloc 1 32 obj object gc\nlink 0 1\nlink 1 0\n"
                       "decref 0\ndecref 1\nalloc 2 32 obj object gc\nalloc 3 32 obj object gc\n"
                       "incref 0\n";
    char text[1024];
    snprintf(text, sizeof text, "heapreplay-trace 1 graph\nmeta recorder \"cpython-pep445-preload\"\n%s",
             body);
    const char *rec = pack("stale-rec.txt", text);
    snprintf(text, sizeof text, "heapreplay-trace 1 graph\n%s", body);
    const char *gen = pack("stale-gen.txt", text);
    hr_replay_result_t r;
    hr_err_t err;
    int rc = replay(rec, "refcount", 1, &r, &err);
    TAP_OK(rc == HR_OK, "refcount replays the stale cycle (it leaks): %s", err.msg);
    hr_replay_result_free(&r);
    rc = replay(rec, "marksweep:budget=1", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 8: incref of object 0") &&
               strstr(err.msg, "replays exactly only under refcount") &&
               strstr(err.msg, "record it again"),
           "marksweep on a recorded trace: the stale object is named, and why: %s", err.msg);
    hr_replay_result_free(&r);
    rc = replay(gen, "marksweep:budget=1", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 8: incref of object 0") &&
               !strstr(err.msg, "recorded CPython") && !strstr(err.msg, "recorder"),
           "on a trace not recorded from CPython the error is the collector's alone: %s", err.msg);
    hr_replay_result_free(&r);
    /* A trace recorded under rule 4 cannot hold such a cycle (the recorder keeps both objects
     * at external count 1): if one does, the recorder is at fault, and the error says so. */
    snprintf(text, sizeof text,
             "heapreplay-trace 1 graph\nmeta recorder \"cpython-pep445-preload\"\n"
             "meta graph_rules \"4\"\n%s", body);
    const char *r4 = pack("stale-r4.txt", text);
    rc = replay(r4, "marksweep:budget=1", 0, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 8: incref of object 0") &&
               strstr(err.msg, "recorder defect") && !strstr(err.msg, "record it again"),
           "a rule-4 trace that names a reclaimed object: a recorder defect, says the error: %s",
           err.msg);
    hr_replay_result_free(&r);
}

/* {==== The engine's entry: sizes above 4 GiB, and its limits ==== */

/* An entry keeps a block's size in 40 bits, 32 of them apart from the rest: sizes that need the
 * high bits must come back whole at realloc and free (the allocator wrapper's bytes in use say
 * what the engine passed), and a block of 1 TiB or more is an error naming the event. The null
 * allocator serves every block from one lazily mapped region: only the pages the engine writes
 * (first and last word of each block) become resident. */
static void test_entry_sizes(void)
{
    const uint64_t a = ((uint64_t)1 << 32) + 24, b = ((uint64_t)1 << 33) + 8,
                   c = ((uint64_t)3 << 32) + 8;
    char text[512];
    /* (block 1 first: the region is then large enough for every later request, and realloc
     * copies nothing) */
    snprintf(text, sizeof text, "heapreplay-trace 1 alloc\nalloc 0 %llu obj\nalloc 1 %llu mem\n"
             "alloc 2 40 mem\nrealloc 1 %llu\nfree 0\nfree 2\n", (unsigned long long)b,
             (unsigned long long)a, (unsigned long long)c);
    const char *big = pack("entry-big.txt", text);
    hr_replay_opts_t o = {.alloc_spec = "null", .gc_spec = "none"};
    hr_replay_result_t r;
    hr_err_t err = {0};
    int rc = hr_replay_run(big, &o, &r, &err);
    TAP_OK(rc == HR_OK && r.live_blocks == 1 && r.alloc.bytes_in_use == c &&
               r.alloc.peak_bytes_in_use == c + b + 40,
           "sizes above 4 GiB survive the entry: in use %llu (want %llu), peak %llu (want %llu): %s",
           (unsigned long long)r.alloc.bytes_in_use, (unsigned long long)c,
           (unsigned long long)r.alloc.peak_bytes_in_use, (unsigned long long)(c + b + 40),
           err.msg);
    hr_replay_result_free(&r);
    snprintf(text, sizeof text, "heapreplay-trace 1 alloc\nalloc 0 16 mem\nalloc 1 %llu mem\n",
             (unsigned long long)1 << 40);
    const char *huge = pack("entry-huge.txt", text);
    rc = hr_replay_run(huge, &o, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 1:") && strstr(err.msg, "below 1 TiB"),
           "a block of 1 TiB is an error at its event: %s", err.msg);
    hr_replay_result_free(&r);
    snprintf(text, sizeof text, "heapreplay-trace 1 alloc\nalloc 0 16 mem\nrealloc 0 %llu\n",
             (unsigned long long)1 << 41);
    const char *rhuge = pack("entry-rhuge.txt", text);
    hr_err_clear(&err);
    rc = hr_replay_run(rhuge, &o, &r, &err);
    TAP_OK(rc == HR_ECHECK && strstr(err.msg, "event 1:") && strstr(err.msg, "below 1 TiB"),
           "so is a realloc to 2 TiB: %s", err.msg);
    hr_replay_result_free(&r);
}

/* {==== The engine's record: inline and side forms ==== */

/* A test double that serves blocks at addresses of every alignment (its own block + 0..7 bytes)
 * and checks that each free and realloc names a block it handed out with the size that block was
 * requested with: whichever form the engine's record took (inline: 8-aligned and below 2 KiB; a
 * side entry otherwise), the engine must give back exactly what it got. */
enum { ODD_MAX = 4096 };
static struct {
    char *base[ODD_MAX], *p[ODD_MAX];
    uint64_t size[ODD_MAX];
    unsigned n, next, bad, left, aligned, odd;
} odd;

static int odd_find(const void *p, uint64_t size)
{
    for (unsigned i = 0; i < odd.n; i++)
        if (odd.p[i] == p) {
            odd.bad += odd.size[i] != size;
            return (int)i;
        }
    odd.bad++;
    return -1;
}
static void *odd_new(size_t size)
{
    if (odd.n == ODD_MAX)
        return NULL;
    char *b = malloc(size + 8);
    unsigned off = odd.next++ % 8;
    odd.aligned += off == 0, odd.odd += off != 0;
    odd.base[odd.n] = b, odd.p[odd.n] = b + off, odd.size[odd.n] = size;
    return odd.p[odd.n++];
}
static void odd_drop(unsigned i)
{
    free(odd.base[i]);
    odd.n--;
    odd.base[i] = odd.base[odd.n], odd.p[i] = odd.p[odd.n], odd.size[i] = odd.size[odd.n];
}
static int odd_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec, (void)err;
    memset(&odd, 0, sizeof odd);
    *ctx = &odd;
    return HR_OK;
}
static void odd_destroy(void *ctx)
{
    (void)ctx;
    odd.left = odd.n;
    while (odd.n)
        odd_drop(0);
}
static void *odd_malloc(void *ctx, size_t size, hr_domain_t d) { (void)ctx, (void)d; return odd_new(size); }
static void *odd_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)ctx, (void)d;
    int i = odd_find(p, old);
    void *q = odd_new(size);
    if (q && i >= 0) {
        memcpy(q, p, old < size ? old : size);
        odd_drop((unsigned)i);
    }
    return q;
}
static void odd_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)ctx, (void)d;
    int i = odd_find(p, size);
    if (i >= 0)
        odd_drop((unsigned)i);
}
static const hr_alloc_vt odd_vt = {
    .name = "test-odd", .summary = "test double: blocks at every alignment, frees checked",
    .create = odd_create, .destroy = odd_destroy, .malloc = odd_malloc, .realloc = odd_realloc,
    .free = odd_free};

/* Random allocations, frees and reallocs across the record's limits (sizes 0 .. 2047 inline,
 * 2048 and up in side entries, reallocs both ways), at addresses of every alignment: every free
 * and realloc hands the allocator its own block and size, the wrapper's bytes in use and peak
 * equal a model's, every block left is freed at the end; and side entries are reused (the table's
 * peak does not grow with rounds of large blocks). */
static void test_entry_forms(void)
{
    TAP_OK(hr_alloc_register_extra(&odd_vt) == HR_OK &&
               hr_alloc_register_extra(&odd_vt) == HR_EUSAGE,
           "an extra allocator registers once");
    static const uint64_t sizes[] = {0, 1, 7, 8, 24, 1016, 2040, 2047, 2048, 2049, 4096, 70000};
    enum { NS = sizeof sizes / sizeof sizes[0], OPS = 6000 };
    static uint64_t live_id[OPS], live_size[OPS];
    hr_buf_t text = {0};
    hr_buf_printf(&text, "heapreplay-trace 1 alloc\n");
    uint64_t x = 12345, next = 0, nlive = 0, bytes = 0, peak = 0;
    for (int op = 0; op < OPS; op++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(x >> 33) % 100;
        uint64_t sz = sizes[(x >> 20) % NS];
        if (r < 55 || nlive == 0) {
            hr_buf_printf(&text, "alloc %llu %llu mem\n", (unsigned long long)next,
                          (unsigned long long)sz);
            live_id[nlive] = next++, live_size[nlive++] = sz;
            bytes += sz;
        } else {
            uint64_t k = (x >> 40) % nlive;
            if (r < 85) {
                hr_buf_printf(&text, "free %llu\n", (unsigned long long)live_id[k]);
                bytes -= live_size[k];
                nlive--;
                live_id[k] = live_id[nlive], live_size[k] = live_size[nlive];
            } else {
                hr_buf_printf(&text, "realloc %llu %llu\n", (unsigned long long)live_id[k],
                              (unsigned long long)sz);
                bytes += sz - live_size[k];
                live_size[k] = sz;
            }
        }
        if (bytes > peak)
            peak = bytes;
    }
    const char *t = pack("entry-forms.txt", (const char *)text.data);
    hr_buf_free(&text);
    hr_replay_opts_t o = {.alloc_spec = "test-odd", .gc_spec = "none"};
    hr_replay_result_t r;
    hr_err_t err = {0};
    int rc = hr_replay_run(t, &o, &r, &err);
    TAP_OK(rc == HR_OK && r.alloc.bytes_in_use == bytes && r.alloc.peak_bytes_in_use == peak &&
               r.live_blocks == nlive,
           "inline and side records replay the model: in use %llu (want %llu), peak %llu (want "
           "%llu), live %llu (want %llu): %s",
           (unsigned long long)r.alloc.bytes_in_use, (unsigned long long)bytes,
           (unsigned long long)r.alloc.peak_bytes_in_use, (unsigned long long)peak,
           (unsigned long long)r.live_blocks, (unsigned long long)nlive, err.msg);
    TAP_OK(odd.bad == 0 && odd.left == 0 && odd.aligned > 100 && odd.odd > 100,
           "every free and realloc named the allocator's own block and size (%u wrong), blocks "
           "left at the end %u (want 0); %u blocks 8-aligned, %u not", odd.bad, odd.left, odd.aligned, odd.odd);
    hr_replay_result_free(&r);

    /* rounds of 500 large blocks allocated and freed: side entries are reused */
    size_t peaks[2];
    for (int v = 0; v < 2; v++) {
        int rounds = v ? 20 : 1;
        hr_buf_t b = {0};
        hr_buf_printf(&b, "heapreplay-trace 1 alloc\n");
        for (int k = 0, id = 0; k < rounds; k++, id += 500) {
            for (int i = 0; i < 500; i++)
                hr_buf_printf(&b, "alloc %d 3000 mem\n", id + i);
            for (int i = 0; i < 500; i++)
                hr_buf_printf(&b, "free %d\n", id + i);
        }
        t = pack(v ? "entry-side20.txt" : "entry-side1.txt", (const char *)b.data);
        hr_buf_free(&b);
        rc = hr_replay_run(t, &(hr_replay_opts_t){.alloc_spec = "libc", .gc_spec = "none"}, &r,
                           &err);
        peaks[v] = rc == HR_OK ? r.table_bytes_peak : 0;
        hr_replay_result_free(&r);
    }
    TAP_OK(peaks[0] >= 500 * 16 && peaks[1] > 0 && peaks[1] <= peaks[0] + 4096,
           "side entries are reused: table peak %zu bytes after 1 round, %zu after 20", peaks[0],
           peaks[1]);
}

/* An allocator handing out addresses no process can touch (the engine replays without writing
 * into blocks: no_touch): malloc in the band at `mband`, realloc at `rband`. It checks that every
 * free and realloc names an address it gave out, with its size. */
static struct {
    uint64_t mband, rband, next, bad, frees;
    uint64_t addr[64], size[64];
    unsigned n;
} high;
static int high_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec, (void)err;
    *ctx = &high;
    return HR_OK;
}
static void high_destroy(void *ctx) { (void)ctx; }
static void *high_new(uint64_t band, size_t size)
{
    if (high.n == 64)
        return NULL;
    uint64_t a = band + 16 * high.next++;
    high.addr[high.n] = a, high.size[high.n++] = size;
    return (void *)(uintptr_t)a;
}
static void high_drop(void *p, size_t size)
{
    for (unsigned i = 0; i < high.n; i++)
        if (high.addr[i] == (uint64_t)(uintptr_t)p) {
            high.bad += high.size[i] != size;
            high.n--;
            high.addr[i] = high.addr[high.n], high.size[i] = high.size[high.n];
            return;
        }
    high.bad++;
}
static void *high_malloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)ctx, (void)d;
    return high_new(high.mband, size);
}
static void *high_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)ctx, (void)d;
    high_drop(p, old);
    return high_new(high.rband, size);
}
static void high_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)ctx, (void)d;
    high.frees++;
    high_drop(p, size);
}
static const hr_alloc_vt high_vt = {
    .name = "test-high", .summary = "test double: blocks at addresses from 2^47 up, untouched",
    .create = high_create, .destroy = high_destroy, .malloc = high_malloc,
    .realloc = high_realloc, .free = high_free};

/* Addresses at the table's limits: from 2^47 a block's address leaves the record for a side
 * entry, and every free and realloc still gets it back; from 2^48 the engine stops with an
 * error naming the allocator, the address and the event, from malloc as from realloc. */
static void test_high_addresses(void)
{
    TAP_OK(hr_alloc_register_extra(&high_vt) == HR_OK, "the high-address allocator registers");
    const char *t = pack("high.txt", "heapreplay-trace 1 alloc\n"
                                     "alloc 0 24 mem\nalloc 1 3000 obj\nrealloc 0 40\n"
                                     "alloc 2 8 raw\nfree 1\nrealloc 2 16\nfree 0\nfree 2\n");
    static const struct {
        uint64_t mband, rband;
        int ok;
        const char *msg;
    } cases[] = {
        {(uint64_t)1 << 47, (uint64_t)1 << 47, 1, NULL},
        {((uint64_t)1 << 48) - 4096, ((uint64_t)1 << 47) + 8, 1, NULL},
        {(uint64_t)1 << 48, (uint64_t)1 << 47, 0, "event 0: allocator 'test-high' returned address 0x1000000000000, above the 2^48"},
        {(uint64_t)1 << 47, (uint64_t)1 << 48, 0, "event 2: allocator 'test-high' returned address 0x1000000000020, above the 2^48"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&high, 0, sizeof high);
        high.mband = cases[i].mband, high.rband = cases[i].rband;
        hr_replay_opts_t o = {.alloc_spec = "test-high", .gc_spec = "none", .no_touch = 1};
        hr_replay_result_t r;
        hr_err_t err = {0};
        int rc = hr_replay_run(t, &o, &r, &err);
        if (cases[i].ok)
            TAP_OK(rc == HR_OK && high.bad == 0 && high.n == 0 && high.frees == 3 &&
                       r.live_blocks == 0 && r.peak_live_blocks == 3 && r.alloc.bytes_in_use == 0,
                   "blocks at 0x%llx / 0x%llx: replayed, every free and realloc named its own "
                   "block (%llu wrong, %u left, %llu frees, peak live %llu): %s",
                   (unsigned long long)cases[i].mband, (unsigned long long)cases[i].rband,
                   (unsigned long long)high.bad, high.n, (unsigned long long)high.frees,
                   (unsigned long long)r.peak_live_blocks, err.msg);
        else
            TAP_OK(rc == HR_EUSAGE && strstr(err.msg, cases[i].msg) && high.bad == 0,
                   "a block at 0x%llx / 0x%llx is refused: \"%s\"",
                   (unsigned long long)cases[i].mband, (unsigned long long)cases[i].rband, err.msg);
        hr_replay_result_free(&r);
    }
}

/* {==== The link index of objects with many links ==== */

static void noop_reclaim(void *engine, uint64_t id) { (void)engine, (void)id; }

/* A container whose links grow past the index threshold and shrink again, with repeats (the same
 * target held several times), unlinked in random order: after every step its out array holds
 * exactly the multiset a plain model holds, an unlink of a link it does not hold fails, and the
 * graph's invariants hold. */
static void test_link_index(void)
{
    static const hr_gc_env_t env = {NULL, noop_reclaim, NULL, NULL};
    hr_graph_t g;
    hr_gc_stats_t st = {0};
    hr_err_t err = {0};
    hr_graph_init(&g, &env, &st, &err);
    enum { NT = 300 };
    hr_gobj_t *o;
    int ok = 1;
    for (uint64_t id = 0; id <= NT; id++)
        ok &= hr_graph_alloc(&g, id, 16, HR_F_GC, &o, &err) == HR_OK;
    unsigned held[NT + 1] = {0}; /* model: how many links 0 -> t */
    static uint64_t links[4096];   /* model: the links, in no order */
    uint64_t nlinks = 0, x = 99, steps = 0, refused = 0;
    for (int round = 0; round < 4; round++) {
        /* grow to 2000 links (targets drawn from 300: many repeats), then shrink to 10 */
        uint64_t want = round % 2 ? 10 : 2000;
        while (nlinks != want) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t t = 1 + (x >> 33) % NT;
            int grow = nlinks < want ? (x >> 20) % 4 != 0 : (x >> 20) % 4 == 0;
            if (grow) {
                ok &= hr_graph_link(&g, 0, t, &err) == HR_OK;
                held[t]++, links[nlinks++] = t;
            } else if (nlinks && (x >> 24) % 16) {
                size_t j = (x >> 40) % nlinks;
                t = links[j];
                links[j] = links[--nlinks];
                hr_gobj_t *d;
                ok &= hr_graph_unlink(&g, 0, t, &d, &err) == HR_OK && d->id == t;
                held[t]--;
            } else if (!held[t]) {
                hr_gobj_t *d;
                hr_err_clear(&err);
                refused += hr_graph_unlink(&g, 0, t, &d, &err) == HR_ECHECK &&
                           strstr(err.msg, "holds no such link") != NULL;
                ok &= refused > 0;
            }
            if (++steps % 97 == 0 || nlinks == want) {
                hr_gobj_t *c = hr_graph_get(&g, 0);
                unsigned seen[NT + 1] = {0};
                for (uint32_t i = 0; i < c->nout; i++)
                    seen[c->out[i]]++;
                ok &= c->nout == nlinks && memcmp(seen, held, sizeof seen) == 0;
                for (uint64_t t2 = 1; t2 <= NT; t2++)
                    ok &= hr_graph_get(&g, t2)->in == held[t2];
            }
        }
    }
    hr_err_clear(&err);
    ok &= hr_graph_verify(&g, &err) == HR_OK;
    TAP_OK(ok && refused > 0, "a container of up to 2,000 links to 300 objects: after %llu random "
           "links and unlinks (%llu refused: no such link) its links are the model's: %s",
           (unsigned long long)steps, (unsigned long long)refused, err.msg);
    hr_graph_free(&g);
}

/* {==== Bad frees in allocation traces: the engine's table answers for the reader ==== */

/* In an allocation-only trace the reader keeps no bitmap of live ids: the engine's table answers
 * (hr_trace_check_external), and the engine's own fast loop decodes frees and reallocs without
 * asking, looks the block up, and hands a dead one back to the reader. Either way a bad free or
 * realloc must come out as the reader's error: file, byte offset, event index, what. */
static void test_bad_frees(void)
{
    /* FRAME; 100 allocs of 16 bytes; free id 5; 10 allocs; then the bad event (event 111) */
    uint8_t pl[512];
    size_t n = 0;
    static const uint8_t frame[] = {0x02, 0, 0, 0, 0};
    memcpy(pl, frame, sizeof frame), n = sizeof frame;
    for (int i = 0; i < 100; i++)
        pl[n++] = 0x12, pl[n++] = 16;
    pl[n++] = 0x20, pl[n++] = 99 - 5; /* free, id coded from the newest (99) */
    for (int i = 0; i < 10; i++)
        pl[n++] = 0x12, pl[n++] = 16;
    struct {
        const uint8_t bad[3];
        size_t len;
        const char *want, *what;
    } cases[] = {
        {{0x20, 109 - 5}, 2, "free of id 5 that is not live (double free)", "a double free"},
        {{0x21, 109 - 5, 64}, 3, "realloc of id 5 that is not live", "a realloc of a freed block"},
        /* from the previous id (109): delta -104, zigzag 207, varint 0xcf 0x01 */
        {{0x28, 0xcf, 0x01}, 3, "free of id 5 that is not live",
         "a double free coded from the previous id"},
    };
    const char *setups[][2] = {{"null", "none"}, {"libc", "generational:700,10,10"},
                               {"libc", "refcount"}};
    for (size_t c = 0; c < HR_ARRAY_LEN(cases); c++) {
        uint8_t buf[512];
        memcpy(buf, pl, n);
        memcpy(buf + n, cases[c].bad, cases[c].len);
        hr_buf_t b;
        craft_header(HR_KIND_ALLOC, tpath("hdr.hrt"), &b);
        craft_frame(&b, buf, n + cases[c].len, 1);
        const char *path = tpath("badfree.hrt");
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f))
            exit(99);
        hr_buf_free(&b);
        for (size_t k = 0; k < HR_ARRAY_LEN(setups); k++) {
            hr_replay_opts_t o = {.alloc_spec = setups[k][0], .gc_spec = setups[k][1]};
            hr_replay_result_t r;
            hr_err_t err = {0};
            int rc = hr_replay_run(path, &o, &r, &err);
            /* the bad event: payload byte 5 + 2 * 111 = 227, event 111 */
            TAP_OK(rc == HR_EFORMAT && strstr(err.msg, "badfree.hrt") &&
                       strstr(err.msg, "payload byte 227, event 111: ") &&
                       strstr(err.msg, cases[c].want) && r.events == 111,
                   "replay --alloc %s --gc %s: %s is the reader's error, located: %s",
                   setups[k][0], setups[k][1], cases[c].what, err.msg);
            hr_replay_result_free(&r);
        }
    }
}

/* {==== marksweep's spec ==== */

/* An allocator handing out distinct addresses and no memory (no_touch replays only): a heap of
 * 2^54 bytes costs nothing, so the collector's arithmetic can be tested where it overflows. */
static uint64_t fake_next;
static int fake_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec, (void)err;
    *ctx = &fake_next;
    return HR_OK;
}
static void fake_destroy(void *ctx) { (void)ctx; }
static void *fake_malloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)ctx, (void)size, (void)d;
    return (void *)(uintptr_t)(((uint64_t)1 << 40) + 16 * fake_next++);
}
static void *fake_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)p, (void)old;
    return fake_malloc(ctx, size, d);
}
static void fake_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)ctx, (void)p, (void)size, (void)d;
}
static const hr_alloc_vt fake_vt = {
    .name = "test-fake", .summary = "test double: addresses without memory, untouched",
    .create = fake_create, .destroy = fake_destroy, .malloc = fake_malloc,
    .realloc = fake_realloc, .free = fake_free};

static void test_marksweep_spec(void)
{
    const char *p = pack("ms-spec.txt", "heapreplay-trace 1 graph\nalloc 0 64 obj object gc\n");
    static const struct { const char *gc, *msg; } bad[] = {
        {"marksweep:trigger=1001", "trigger=1001 must be a factor 1..1000"},
        {"marksweep:trigger=1e18", "trigger=1e18 must be a factor 1..1000"},
        {"marksweep:trigger=0.5", "trigger=0.5 must be a factor 1..1000"},
        {"marksweep:trigger=2,budget=1M", "trigger= and budget= cannot be combined"},
        {"marksweep:min=64K,heap=4M", "min= and heap= cannot be combined"},
        {"marksweep:budget=1M,heap=4M", "budget= and heap= cannot be combined"},
        {"marksweep:budget=0", "budget=0 must be a size of at least 1 byte"},
        {"marksweep:heap=0", "heap=0 must be a size of at least 1 byte"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        hr_replay_result_t r;
        hr_err_t err = {0};
        int rc = replay(p, bad[i].gc, 0, &r, &err);
        TAP_OK(rc == HR_EUSAGE && strstr(err.msg, bad[i].msg) != NULL, "%s rejected: %s",
               bad[i].gc, err.msg);
        hr_replay_result_free(&r);
    }
    hr_replay_result_t r;
    hr_err_t err = {0};
    TAP_OK(replay(p, "marksweep:trigger=1000x,min=64K", 0, &r, &err) == HR_OK,
           "trigger=1000x (the bound) is accepted: %s", err.msg);
    hr_replay_result_free(&r);

    /* 20000 objects of 2^40 - 1 bytes (the engine's largest block) stay live; gc.collect() then
     * sets the threshold to 1000 times their 2^54 bytes, above 2^64: it must saturate, so one
     * more small allocation does not collect. The unsaturated conversion was undefined and gave
     * 0 on x86-64, a threshold of `min`: a collection at that allocation. */
    uint64_t collections[2] = {0, 0};
    TAP_OK(hr_alloc_register_extra(&fake_vt) == HR_OK, "the address-only allocator registers");
    for (int k = 0; k < 2; k++) {
        hr_buf_t t = {0};
        hr_buf_printf(&t, "heapreplay-trace 1 graph\n");
        for (int i = 0; i < 20000; i++)
            hr_buf_printf(&t, "alloc %d 1099511627775 obj object gc\n", i);
        hr_buf_printf(&t, "gc collect 2\n%s", k ? "alloc 20000 16 obj object gc\n" : "");
        p = pack(k ? "ms-saturate-1.txt" : "ms-saturate-0.txt", (const char *)t.data);
        hr_buf_free(&t);
        hr_replay_opts_t o = {.alloc_spec = "test-fake",
                              .gc_spec = "marksweep:trigger=1000,min=1M", .no_touch = 1};
        hr_err_clear(&err);
        int rc = hr_replay_run(p, &o, &r, &err);
        TAP_OK(rc == HR_OK, "a 2^54-byte heap replays under marksweep:trigger=1000%s: %s",
               k ? ", then a small allocation" : "", err.msg);
        collections[k] = r.gc.collections;
        hr_replay_result_free(&r);
    }
    TAP_OK(collections[0] > 0 && collections[1] == collections[0],
           "trigger=1000 times a 2^54-byte heap saturates: no collection at the next small "
           "allocation (%llu collections, %llu with it)", (unsigned long long)collections[0],
           (unsigned long long)collections[1]);
    hr_replay_result_free(&r);
}

int main(void)
{
    if (hr_tmp_template(tmpdir, sizeof tmpdir, "hr_test_gc"))
        return 99;
    if (!mkdtemp(tmpdir))
        return 99;
    test_known_answers();
    test_generational_schedule();
    test_gc_del_and_begin();
    test_gc_track();
    test_gc_control();
    test_check_mode();
    test_workloads_check();
    test_deep_chain();
    test_bad_frees();
    test_link_index();
    test_stale_recorded();
    test_entry_sizes();
    test_entry_forms();
    test_high_addresses();
    test_marksweep_spec();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        TAP_DIAG("could not remove %s", tmpdir);
    return tap_done();
}

/* cmd_validate.c: replay a recorded CPython trace with the matching configuration and compare every
 * check the recorder wrote (see docs/recorder.md and docs/replay-and-collectors.md).
 *
 *   replay A  pymalloc:preset=3.11,placement=recorded + generational:<recorded thresholds>
 *             - allocator statistics text at each recorded STATS pymalloc: identical?
 *             - collections per generation at each recorded STATS gc (gc.get_stats())
 *             - each collection: same generation, started where CPython did: after the
 *               previous recorded GC_END, at or before this one's GC_BEGIN, and with at most one
 *               GC allocation between (the gc callbacks' info dict: CPython's trigger is the
 *               allocation before it, and zeroes the counts at GC_BEGIN)
 *             - graph traces: the garbage found per collection, and which objects it was
 *   replay B  (graph traces) refcount
 *             - every object CPython freed outside a collection dies in the replay in the same
 *               observation (no allocation event between the replay's death and DIED)
 *             - every object CPython's cycle collector freed is leaked by counting
 *
 * Graph traces report the collections of interpreter finalisation (after PHASE "finalize": the
 * exit's gc.collect and the collections without callbacks the recorder's probe brackets) in rows
 * of their own: there the heap holds what the program never sees (module teardown, the
 * interpreter's own objects), and what a graph does not hold shows (docs/recorder.md, "What
 * remains inexact").
 */
#include "cli.h"
#include "graph.h"
#include "hr_idtab.h"
#include "hr_out.h"
#include "hr_replay.h"
#include "hr_trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct vcheck {
    const char *name;
    int replay;             /* a "replay ... completes" row, not a comparison with the recording */
    int known;              /* a row documented as inexact (docs/recorder.md): shown, not failed */
    int show;               /* print the detail even when the row matches (how it was checked) */
    uint64_t matched, total;
    char detail[HR_ERR_MSG_MAX + 64];
} vcheck_t;

#define MAX_CHECKS 12

typedef struct vreport {
    vcheck_t c[MAX_CHECKS];
    int n;
} vreport_t;

static vcheck_t *add_check(vreport_t *r, const char *name)
{
    vcheck_t *c = &r->c[r->n++];
    memset(c, 0, sizeof *c);
    c->name = name;
    return c;
}

/* Parse gc.get_stats() JSON: the three "collections" and "collected" values in order. */
static int parse_gc_stats(const char *s, uint64_t coll[3], uint64_t collected[3])
{
    int n = 0, m = 0;
    for (const char *p = s; *p && (n < 3 || m < 3); p++) {
        unsigned long long v;
        if (strncmp(p, "\"collections\":", 14) == 0 && n < 3 && sscanf(p + 14, " %llu", &v) == 1)
            coll[n++] = v;
        if (strncmp(p, "\"collected\":", 12) == 0 && m < 3 && sscanf(p + 12, " %llu", &v) == 1)
            collected[m++] = v;
    }
    return n == 3 && m == 3 ? 0 : -1;
}

/* First line where two texts differ, for the report. */
static void first_diff(const char *a, const char *b, char *out, size_t cap)
{
    int line = 1;
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0) {
            snprintf(out, cap, "line %d: recorded '%.*s', replayed '%.*s'", line, (int)(la > 80 ? 80 : la),
                     a, (int)(lb > 80 ? 80 : lb), b);
            return;
        }
        a += la + (ea != NULL), b += lb + (eb != NULL), line++;
    }
    snprintf(out, cap, "line %d: one text ends before the other", line);
}

/* {==== Replay A: allocator and collection schedule ==== */

static int verbose;

/* Run one replay for the report: a replay that stops on a check (an event naming an object
 * counting already freed) becomes a failed row, not a reason to stop validating. Returns 1 when
 * the result can be used, 0 when the row says why not, or a negative code. */
static int run_replay_row(const char *path, const hr_replay_opts_t *o, const char *name,
                          vreport_t *rep, hr_replay_result_t *r, hr_err_t *err)
{
    vcheck_t *row = add_check(rep, name);
    row->replay = 1;
    row->total = 1;
    int rc = hr_replay_run(path, o, r, err);
    if (rc) {
        snprintf(row->detail, sizeof row->detail, "%s", err->msg);
        hr_replay_result_free(r);
        if (rc != HR_ECHECK)
            return rc;
        hr_err_clear(err);
        return 0;
    }
    row->matched = 1;
    return 1;
}

/* What validate reads from the trace before the replays: the event index of the first PHASE
 * "finalize" (the script and its atexit handlers are done; docs/recorder.md), or UINT64_MAX; and
 * per recorded collection (in the order of their GC_END), the weak references freed right after
 * their callback ran inside it (PHASE "gc.wrcb" after their DIED: CPython counts each in the
 * collection's `collected`, and no replay runs callbacks; docs/recorder.md, "Weak-reference
 * callbacks a collection runs"), and the garbage CPython did not count (PHASE "gc.fin", one per
 * object: freed, dead into a free list or brought back before the collection freed its garbage;
 * the replay finds them; docs/recorder.md, "Garbage a collection's own finalizers free"). */
typedef struct coll_marks {
    uint64_t wrcb, fin; /* the collection's gc.wrcb and gc.fin marks */
    uint64_t earliest;  /* the next-to-last GC allocation before its GC_BEGIN (0: none) */
    uint64_t at;        /* the event where a replay must collect: the ALLOC a PHASE gc.trigger
                           follows, or the program's GC_CONTROL collect; NO_TRIGGER: not marked
                           (a trace recorded before 2026-11-23, eighth session) */
} coll_marks_t;
#define NO_TRIGGER UINT64_MAX
static const coll_marks_t no_marks = {0, 0, 0, NO_TRIGGER};

typedef struct trace_facts {
    uint64_t fin;
    coll_marks_t *m; /* owned: per recorded collection */
    size_t n, cap;
} trace_facts_t;

/* The marks of recorded collection i (none past the last GC_END read). */
static coll_marks_t facts_marks(const trace_facts_t *f, size_t i)
{
    return i < f->n ? f->m[i] : no_marks;
}

/* Whether a replayed collection that found `replayed` objects found what CPython counted: plus
 * the weak references CPython counted after their callbacks (which no replay can find as
 * garbage), less the garbage CPython did not count (which the replay finds). */
static int counts_match(uint64_t cpython, uint64_t replayed, coll_marks_t m)
{
    return cpython + m.fin == replayed + m.wrcb;
}

static int read_facts(const char *path, trace_facts_t *f, hr_err_t *err)
{
    memset(f, 0, sizeof *f);
    f->fin = UINT64_MAX;
    hr_trace_reader_t *tr;
    int rc = hr_trace_open(&tr, path, NULL, err);
    if (rc)
        return rc;
    hr_event_t *evs = malloc(4096 * sizeof *evs);
    if (!evs) {
        hr_trace_close(tr);
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    }
    size_t got;
    uint64_t event = 0, marks = 0, fmarks = 0;
    uint64_t gc_last = 0, gc_prev = 0, earliest = 0; /* the last two GC allocations */
    uint64_t last_alloc = NO_TRIGGER, trigger = NO_TRIGGER, at = NO_TRIGGER;
    int in_gc = 0;
    while ((rc = hr_trace_read(tr, evs, 4096, &got, err)) == 0 && got > 0)
        for (size_t i = 0; i < got; i++, event++) {
            const hr_event_t *ev = &evs[i];
            if (ev->op == HR_OP_ALLOC) {
                last_alloc = event;
                if (ev->flags & HR_F_GC)
                    gc_prev = gc_last, gc_last = event;
            } else if (ev->op == HR_OP_GC_CONTROL && ev->tag == HR_GC_COLLECT && !in_gc)
                trigger = event;
            else if (ev->op == HR_OP_GC_BEGIN)
                in_gc = 1, marks = fmarks = 0, earliest = gc_prev, at = trigger,
                trigger = NO_TRIGGER;
            else if (ev->op == HR_OP_GC_END) {
                if (f->n == f->cap) {
                    size_t cap = f->cap ? 2 * f->cap : 256;
                    coll_marks_t *v = realloc(f->m, cap * sizeof *v);
                    if (!v) {
                        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
                        goto out;
                    }
                    f->m = v, f->cap = cap;
                }
                f->m[f->n++] = in_gc ? (coll_marks_t){marks, fmarks, earliest, at} : no_marks;
                in_gc = 0;
            } else if (ev->op == HR_OP_PHASE) {
                if (f->fin == UINT64_MAX && ev->a == 8 && memcmp(ev->str, "finalize", 8) == 0)
                    f->fin = event;
                else if (in_gc && ev->a == 7 && memcmp(ev->str, "gc.wrcb", 7) == 0)
                    marks++;
                else if (in_gc && ev->a == 6 && memcmp(ev->str, "gc.fin", 6) == 0)
                    fmarks++;
                else if (!in_gc && ev->a == 10 && memcmp(ev->str, "gc.trigger", 10) == 0)
                    trigger = last_alloc;
            }
        }
out:
    free(evs);
    hr_trace_close(tr);
    return rc;
}

/* A collection's garbage against CPython's, into row c; m: its marks (counts_match). */
static void count_garbage(vcheck_t *c, size_t i, const hr_collection_t *a, const hr_collection_t *b,
                          coll_marks_t m)
{
    c->total++;
    if (counts_match(a->collected, b->collected, m))
        c->matched++;
    else if (!c->detail[0])
        snprintf(c->detail, sizeof c->detail,
                 "collection %zu (generation %u, event %llu): CPython found %llu, the replay "
                 "%llu%s%.0llu%s%.0llu",
                 i, a->generation, (unsigned long long)a->begin, (unsigned long long)a->collected,
                 (unsigned long long)b->collected, m.wrcb ? " + weak references freed after their "
                 "callbacks " : "", (unsigned long long)m.wrcb,
                 m.fin ? " - garbage CPython did not count " : "", (unsigned long long)m.fin);
}

static int check_schedule(const char *path, const char *gc_spec, const trace_facts_t *f,
                          int recorded, int debug_hooks, vreport_t *rep, hr_err_t *err)
{
    const uint64_t fin = f->fin;
    hr_replay_opts_t o = {.alloc_spec = "pymalloc:preset=3.11,placement=recorded", .gc_spec = gc_spec,
                          .log_deaths = 1};
    hr_replay_result_t r;
    int rc = run_replay_row(path, &o, "replay with the generational collector completes", rep, &r, err);
    if (rc <= 0)
        return rc;
    vcheck_t *st = add_check(rep, "allocator statistics (sys._debugmallocstats)");
    /* a graph replay frees garbage when its collector finds it, not when CPython did: its
     * pymalloc state differs by those blocks (allocation-mode traces validate the allocator) */
    st->known = r.kind == HR_KIND_GRAPH;
    vcheck_t *gs = add_check(rep, "collections per generation (gc.get_stats)");
    for (size_t i = 0; i < r.ncheckpoints; i++) {
        hr_checkpoint_t *c = &r.checkpoints[i];
        if (c->kind == HR_STATS_PYMALLOC) {
            if (debug_hooks)
                continue; /* n/a: below */
            st->total++;
            hr_buf_reserve(&c->recorded, 0), hr_buf_reserve(&c->replayed, 0);
            const char *a = (const char *)c->recorded.data, *b = (const char *)c->replayed.data;
            if (c->recorded.len == c->replayed.len && memcmp(a, b, c->recorded.len) == 0)
                st->matched++;
            else if (!st->detail[0]) {
                char d[400];
                first_diff(a, b, d, sizeof d);
                snprintf(st->detail, sizeof st->detail, "at event %llu: %s",
                         (unsigned long long)c->event, d);
            }
        } else {
            uint64_t coll[3], collected[3];
            gs->total++;
            hr_buf_reserve(&c->recorded, 0);
            if (parse_gc_stats((const char *)c->recorded.data, coll, collected)) {
                snprintf(gs->detail, sizeof gs->detail, "cannot read the recorded gc.get_stats()");
                continue;
            }
            /* the marks of the recorded collections that ended before this point, per
             * generation (counts_match) */
            uint64_t adj[3] = {0, 0, 0};
            for (size_t k = 0; k < r.recorded.n && k < f->n && r.recorded.v[k].event < c->event; k++)
                if (r.recorded.v[k].generation < 3)
                    adj[r.recorded.v[k].generation] += f->m[k].wrcb - f->m[k].fin;
            int ok = 1;
            for (int g = 0; g < 3; g++) {
                c->collected[g] += adj[g];
                ok &= coll[g] == c->collections[g] &&
                      (r.kind != HR_KIND_GRAPH || collected[g] == c->collected[g]);
            }
            if (ok)
                gs->matched++;
            else if (!gs->detail[0])
                snprintf(gs->detail, sizeof gs->detail,
                         "at event %llu: recorded collections %llu/%llu/%llu (collected "
                         "%llu/%llu/%llu), replayed %llu/%llu/%llu (collected %llu/%llu/%llu)",
                         (unsigned long long)c->event, (unsigned long long)coll[0],
                         (unsigned long long)coll[1], (unsigned long long)coll[2],
                         (unsigned long long)collected[0], (unsigned long long)collected[1],
                         (unsigned long long)collected[2], (unsigned long long)c->collections[0],
                         (unsigned long long)c->collections[1], (unsigned long long)c->collections[2],
                         (unsigned long long)c->collected[0], (unsigned long long)c->collected[1],
                         (unsigned long long)c->collected[2]);
        }
    }
    if (debug_hooks)
        snprintf(st->detail, sizeof st->detail, "recorded under CPython's debug hooks "
                 "(PYTHONMALLOC=debug, -X dev): each block carries their padding, which the "
                 "model does not add");
    else if (!st->total)
        snprintf(st->detail, sizeof st->detail, "the trace holds no allocator statistics");
    /* Collection points: the i-th replayed collection against the i-th recorded one. */
    vcheck_t *cp = add_check(rep, "collection points and generations");
    vcheck_t *cg = r.kind == HR_KIND_GRAPH ? add_check(rep, "garbage found per collection") : NULL;
    vcheck_t *cgf = r.kind == HR_KIND_GRAPH && fin != UINT64_MAX
                        ? add_check(rep, "garbage found per collection, finalisation")
                        : NULL;
    if (cgf)
        cgf->known = 1; /* the graph is less complete at finalisation (docs/recorder.md) */
    size_t n = r.recorded.n > r.replayed.n ? r.recorded.n : r.replayed.n;
    /* A trace not written by the recorder that holds no collection says nothing about them (a
     * generated one): n/a, not a mismatch. A recording with none does claim none. */
    if (!recorded && r.recorded.n == 0) {
        n = 0;
        snprintf(cp->detail, sizeof cp->detail, "the trace holds no recorded collections "
                 "(the replay made %zu)", r.replayed.n);
    }
    cp->total = n;
    uint64_t prev_end = 0;
    size_t unmarked = 0; /* collections whose trigger the trace does not mark */
    for (size_t i = 0; i < n; i++) {
        if (i >= r.recorded.n || i >= r.replayed.n) {
            if (!cp->detail[0])
                snprintf(cp->detail, sizeof cp->detail, "recorded %zu collections, replayed %zu",
                         r.recorded.n, r.replayed.n);
            continue;
        }
        hr_collection_t *a = &r.recorded.v[i], *b = &r.replayed.v[i];
        const coll_marks_t m = facts_marks(f, i);
        if (verbose)
            printf("collection %5zu: recorded gen %u begin %10llu end %10llu found %6llu | "
                   "replayed gen %u at %10llu (%+lld events before the recorded begin) found "
                   "%6llu%s%.0llu%s%.0llu%s\n",
                   i, a->generation, (unsigned long long)a->begin, (unsigned long long)a->event,
                   (unsigned long long)a->collected, b->generation, (unsigned long long)b->event,
                   (long long)(a->begin - b->event), (unsigned long long)b->collected,
                   m.wrcb ? " + wrcb " : "", (unsigned long long)m.wrcb,
                   m.fin ? " - fin " : "", (unsigned long long)m.fin,
                   /* allocation traces: the replay finds no garbage, nothing is compared */
                   r.kind != HR_KIND_GRAPH || counts_match(a->collected, b->collected, m)
                       ? ""
                       : "  <- garbage differs");
        /* At the trigger: the event the trace marks (PHASE gc.trigger after the ALLOC in whose
         * link CPython started it, or the program's GC_CONTROL collect), exactly. A trace
         * without the marks: no earlier than the next-to-last GC allocation before GC_BEGIN
         * (the gc callbacks' info dict may be the last one) and no later than GC_BEGIN. */
        uint64_t lo = m.at, hi = m.at;
        if (m.at == NO_TRIGGER) {
            lo = prev_end > m.earliest ? prev_end + 1 : m.earliest;
            hi = a->begin;
            unmarked++;
        }
        if (a->generation == b->generation && b->event >= lo && b->event <= hi) {
            cp->matched++;
        } else if (!cp->detail[0]) {
            char where[64];
            if (lo == hi)
                snprintf(where, sizeof where, "at event %llu", (unsigned long long)lo);
            else
                snprintf(where, sizeof where, "between events %llu and %llu",
                         (unsigned long long)lo, (unsigned long long)hi);
            snprintf(cp->detail, sizeof cp->detail,
                     "collection %zu: recorded generation %u triggered %s (GC_BEGIN at %llu), "
                     "replayed generation %u at event %llu",
                     i, a->generation, where, (unsigned long long)a->begin, b->generation,
                     (unsigned long long)b->event);
        }
        if (cg)
            count_garbage(cgf && a->begin > fin ? cgf : cg, i, a, b, m);
        prev_end = a->event;
    }
    if (unmarked && !cp->detail[0]) {
        snprintf(cp->detail, sizeof cp->detail, "%zu of %zu collections without a gc.trigger "
                 "mark (a trace recorded before they were written): each placed within one GC "
                 "allocation of its trigger", unmarked, n);
        cp->show = 1;
    }
    hr_replay_result_free(&r);
    return HR_OK;
}

/* {==== Replay B: reference-counting deaths against DIED ==== */

typedef struct death_rec {
    uint64_t hard;  /* allocation events seen before the replay's death (+1; 0: no death) */
    uint32_t type;  /* type id + 1 (0: untyped) */
    uint8_t in_gc;  /* DIED inside a recorded collection */
    uint8_t died;   /* DIED seen */
} death_rec_t;

/* -v: mismatches counted per (kind, type), printed after the table. */
enum { MIS_CYCLIC, MIS_CYCLIC1, MIS_CYCLIC2, MIS_EARLY, MIS_MISSING, MIS_KINDS };
static const char *const mis_kind_name[MIS_KINDS] = {
    "freed by counting inside a gen-0 collection", "freed by counting inside a gen-1 collection",
    "freed by counting inside a gen-2 collection", "died earlier under counting",
    "not freed by counting"};
#define MIS_MAX 256
static struct mis {
    int kind;
    uint32_t type;
    uint64_t n;
    char name[48];
} mis[MIS_MAX];
static int nmis;

static void mis_add(hr_trace_reader_t *tr, int kind, uint32_t type)
{
    for (int i = 0; i < nmis; i++)
        if (mis[i].kind == kind && mis[i].type == type) {
            mis[i].n++;
            return;
        }
    if (nmis == MIS_MAX)
        return;
    size_t len = 0;
    const char *name = type ? hr_trace_type_name(tr, type - 1, &len) : NULL;
    mis[nmis] = (struct mis){kind, type, 1, ""};
    snprintf(mis[nmis].name, sizeof mis[nmis].name, "%.*s", name ? (int)len : 1,
             name ? name : "?");
    nmis++;
}

static int cmp_mis(const void *x, const void *y)
{
    const struct mis *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind - b->kind;
    return a->n < b->n ? 1 : a->n > b->n ? -1 : 0;
}

static int cmp_death_event(const void *x, const void *y)
{
    const hr_death_t *a = x, *b = y;
    return a->event < b->event ? -1 : a->event > b->event;
}

/* A DIED inside a collection, classified once the collection shows whose it was: a weak
 * reference's callback's (every death before the collection's last PHASE "gc.wrcb": CPython frees
 * nothing else before its callbacks have run; docs/recorder.md) or the collector's (the rest). */
typedef struct pending_death {
    uint64_t h, hard; /* death_rec_t.hard, and the allocation events seen at the DIED */
    uint32_t type;
    uint8_t late, held, in_gc;
} pending_death_t;

typedef struct rc_tally {
    vcheck_t *ex, *lk[2]; /* lk: the program's row, finalisation's */
    uint64_t early, missing, freed_cyclic[2], held[2], callbacks[2];
    hr_trace_reader_t *tr;
} rc_tally_t;

/* A death by counting: the refcount replay must free the object in the same observation, unless
 * only cycle garbage holds it there (pure counting leaks it with that garbage). */
static void tally_counting(rc_tally_t *t, const pending_death_t *p)
{
    if (p->held) {
        t->lk[p->late]->total++;
        t->lk[p->late]->matched++;
        t->held[p->late]++;
        return;
    }
    t->ex->total++;
    int ok = p->h && p->h - 1 == p->hard;
    if (ok)
        t->ex->matched++;
    else if (p->h)
        t->early++;
    else
        t->missing++;
    if (verbose && !ok)
        mis_add(t->tr, p->h ? MIS_EARLY : MIS_MISSING, p->type);
}

/* A death by CPython's cycle collector: pure counting must leak the object. */
static void tally_collector(rc_tally_t *t, const pending_death_t *p)
{
    vcheck_t *lk = t->lk[p->late];
    lk->total++;
    if (!p->h)
        lk->matched++;
    else {
        t->freed_cyclic[p->late]++;
        if (verbose)
            mis_add(t->tr, MIS_CYCLIC + p->in_gc - 1, p->type);
    }
}

/* The collection's deaths held back so far, now known to be the collector's (a GC_BEGIN or
 * GC_END, the free-list phase, the end of the trace) or the callbacks' (a gc.wrcb mark). */
static void settle_pending(rc_tally_t *t, pending_death_t *pend, size_t *npend, int callbacks)
{
    for (size_t j = 0; j < *npend; j++) {
        if (callbacks) {
            tally_counting(t, &pend[j]);
            t->callbacks[pend[j].late]++;
        } else {
            tally_collector(t, &pend[j]);
        }
    }
    *npend = 0;
}

static int check_refcount(const char *path, uint64_t fin, vreport_t *rep, hr_err_t *err)
{
    hr_replay_opts_t o = {.alloc_spec = "libc", .gc_spec = "refcount", .log_deaths = 1};
    hr_replay_result_t r;
    int rc = run_replay_row(path, &o, "replay with reference counting completes", rep, &r, err);
    if (rc <= 0)
        return rc;
    if (r.reclaimed.n)
        qsort(r.reclaimed.v, r.reclaimed.n, sizeof *r.reclaimed.v, cmp_death_event);
    vcheck_t *ex = add_check(rep, "refcount deaths where CPython freed (same observation)");
    vcheck_t *lks = add_check(rep, "cycle garbage (and what only it holds) leaked by refcount");
    vcheck_t *lkf = fin != UINT64_MAX ? add_check(rep, "cycle garbage leaked by refcount, finalisation")
                                      : lks;
    if (lkf != lks)
        lkf->known = 1;
    /* Stream the trace once more: count allocation events, and meet the replay's deaths and the
     * recorded DIED events in order. Alongside, the refcount replay's heap graph (zg) with
     * "zombies": objects CPython freed that counting keeps (a leaked cycle and what it holds);
     * scratch counts an object's links from zombies. An object CPython freed outside a
     * collection whose only references in the replay are such links cannot die by counting:
     * pure reference counting leaks it with the garbage that holds it. */
    hr_idtab_t map;
    hr_idtab_init(&map, sizeof(death_rec_t));
    uint64_t zevent = 0;
    hr_gc_stats_t zst;
    memset(&zst, 0, sizeof zst);
    hr_gc_env_t zenv = {.event = &zevent};
    hr_graph_t zg;
    if ((rc = hr_graph_init(&zg, &zenv, &zst, err))) {
        hr_idtab_free(&map);
        hr_replay_result_free(&r);
        return rc;
    }
    size_t k2 = 0;
    hr_trace_reader_t *tr;
    if ((rc = hr_trace_open(&tr, path, NULL, err)))
        goto out;
    hr_event_t *evs = malloc(4096 * sizeof *evs);
    size_t k = 0, got;
    uint64_t event = 0, hard = 0;
    rc_tally_t t = {.ex = ex, .lk = {lks, lkf}, .tr = tr};
    pending_death_t *pend = NULL;
    size_t npend = 0, cpend = 0;
    /* Ids are dense and increase: an object allocated after the collection's GC_BEGIN (by a
     * finalizer the collection runs: a generator's close raises GeneratorExit and so builds a
     * frame object and a traceback) cannot be part of the set that collection examines. */
    uint64_t next_id = 0, begin_id = 0;
    hr_gobj_t *zo;
    hr_err_t zerr = {0};
    int in_gc = 0, freelists = 0;
    while (evs && (rc = hr_trace_read(tr, evs, 4096, &got, err)) == 0 && got > 0) {
        for (size_t i = 0; i < got; i++, event++) {
            const hr_event_t *ev = &evs[i];
            for (; k < r.reclaimed.n && r.reclaimed.v[k].event == event; k++) {
                death_rec_t *d = hr_idtab_get(&map, r.reclaimed.v[k].id);
                if (!d)
                    d = hr_idtab_put(&map, r.reclaimed.v[k].id);
                if (d)
                    d->hard = hard + 1;
            }
            zevent = event;
            int late_row = event > fin;
            switch (ev->op) {
            case HR_OP_ALLOC:
                next_id = ev->a + 1;
                if (ev->flags & HR_F_OBJECT) {
                    hr_graph_alloc(&zg, ev->a, ev->b, ev->flags, &zo, &zerr);
                    if (verbose && (ev->flags & HR_F_TYPED)) {
                        death_rec_t *d = hr_idtab_get(&map, ev->a);
                        if (!d)
                            d = hr_idtab_put(&map, ev->a);
                        if (d)
                            d->type = ev->tag + 1;
                    }
                }
                hard++;
                break;
            case HR_OP_FREE:
            case HR_OP_REALLOC:
                hard++;
                break;
            case HR_OP_INCREF:
                hr_graph_incref(&zg, ev->a, &zo, &zerr);
                break;
            case HR_OP_DECREF:
                hr_graph_decref(&zg, ev->a, &zo, &zerr);
                break;
            case HR_OP_LINK:
                if (hr_graph_link(&zg, ev->a, ev->b, &zerr) == HR_OK &&
                    hr_graph_get(&zg, ev->a)->mark)
                    hr_graph_get(&zg, ev->b)->scratch++;
                break;
            case HR_OP_UNLINK:
                if (hr_graph_unlink(&zg, ev->a, ev->b, &zo, &zerr) == HR_OK &&
                    hr_graph_get(&zg, ev->a)->mark)
                    zo->scratch--;
                break;
            case HR_OP_GC_BEGIN:
                settle_pending(&t, pend, &npend, 0); /* (a collection without its GC_END) */
                in_gc = 1 + (ev->tag > 2 ? 2 : (int)ev->tag);
                freelists = 0;
                begin_id = next_id;
                break;
            case HR_OP_GC_END:
                settle_pending(&t, pend, &npend, 0); /* the collector's */
                in_gc = 0;
                break;
            case HR_OP_PHASE:
                /* From here to GC_END the full collection clears the free lists: the objects
                 * it frees were held by a free list, not garbage (docs/recorder.md). */
                if (in_gc && ev->a == 12 && memcmp(ev->str, "gc.freelists", 12) == 0) {
                    settle_pending(&t, pend, &npend, 0);
                    freelists = 1;
                }
                /* A weak reference freed after its callback ran: it and every death in the
                 * collection before it were the callbacks' doing, by counting. */
                if (in_gc && !freelists && ev->a == 7 && memcmp(ev->str, "gc.wrcb", 7) == 0)
                    settle_pending(&t, pend, &npend, 1);
                break;
            case HR_OP_DIED: {
                death_rec_t *d = hr_idtab_get(&map, ev->a);
                hr_gobj_t *o = hr_graph_get(&zg, ev->a);
                pending_death_t p = {.h = d ? d->hard : 0, .hard = hard, .type = d ? d->type : 0,
                                     .late = (uint8_t)late_row, .in_gc = (uint8_t)in_gc};
                p.held = !p.h && o && o->ext == 0 && (int64_t)o->in == o->scratch;
                if (in_gc && !freelists && ev->a < begin_id) {
                    if (npend == cpend) {
                        size_t c = cpend ? 2 * cpend : 1024;
                        pending_death_t *v = realloc(pend, c * sizeof *v);
                        if (!v) {
                            rc = hr_err_set(err, HR_ENOMEM, "out of memory");
                            goto done;
                        }
                        pend = v, cpend = c;
                    }
                    pend[npend++] = p;
                } else
                    tally_counting(&t, &p);
                if (o && !o->mark) { /* a zombie from now on */
                    o->mark = 1;
                    for (uint32_t i = 0; i < o->nout; i++)
                        hr_graph_get(&zg, o->out[i])->scratch++;
                }
                if (d)
                    d->died = 1;
                break;
            }
            default:
                break;
            }
            /* the replay's deaths caused by this event leave the graph */
            for (; k2 < r.reclaimed.n && r.reclaimed.v[k2].event == event; k2++) {
                hr_gobj_t *o = hr_graph_get(&zg, r.reclaimed.v[k2].id);
                if (!o)
                    continue;
                for (uint32_t i = 0; i < o->nout; i++) {
                    hr_gobj_t *t = hr_graph_get(&zg, o->out[i]);
                    if (t && o->mark)
                        t->scratch--;
                }
                hr_graph_remove_set(&zg, &o, 1);
            }
        }
    }
    settle_pending(&t, pend, &npend, 0); /* a collection the trace does not end */
done:
    free(pend);
    free(evs);
    hr_trace_close(tr);
    if (rc)
        goto out;
    snprintf(ex->detail, sizeof ex->detail,
             "%llu died earlier in the replay (an allocation event lies between), %llu not "
             "reclaimed by counting at all",
             (unsigned long long)t.early, (unsigned long long)t.missing);
    for (int f = 0; f < 2; f++) {
        vcheck_t *c = f ? lkf : lks;
        if (f && c == lks)
            break;
        snprintf(c->detail, sizeof c->detail, "%llu of them freed by counting in the replay, "
                 "where CPython's cycle collector freed them; the total includes %llu that "
                 "CPython freed outside any collection but the replay holds only through cycle "
                 "garbage",
                 (unsigned long long)t.freed_cyclic[f], (unsigned long long)t.held[f]);
    }
out:
    hr_graph_free(&zg);
    hr_idtab_free(&map);
    hr_replay_result_free(&r);
    return rc;
}

/* {==== The command ==== */

static int run_validate(int argc, char **argv)
{
    hr_opt_t o[] = {{"--json", NULL, 1, NULL}, {"--verbose", "-v", 0, NULL}};
    char *in[1];
    int n;
    if (hr_cli_parse("validate", argc, argv, o, 2, in, 1, &n))
        return 1;
    verbose = o[1].value != NULL;
    if (n != 1)
        return hr_cli_usage("validate", "expected one TRACE");
    if (hr_cli_replaces_input("validate", "--json", o[0].value, in[0]))
        return 1;
    hr_err_t err = {0};
    hr_trace_reader_t *tr;
    if (hr_trace_open(&tr, in[0], NULL, &err))
        return hr_cli_fail(&err);
    const hr_trace_header_t *h = hr_trace_header(tr);
    int kind = h->kind;
    char gc_spec[128] = "generational:700,10,10";
    const char *thr = hr_trace_header_get(h, "gc_threshold");
    if (thr)
        snprintf(gc_spec, sizeof gc_spec, "generational:%s", thr);
    const char *producer = hr_trace_header_get(h, "producer");
    int recorded = producer && strncmp(producer, "heapreplay record", 17) == 0;
    const char *pm = hr_trace_header_get(h, "pythonmalloc");
    const int debug_hooks = pm && strstr(pm, "debug") != NULL; /* debug, pymalloc_debug, ... */
    hr_trace_close(tr);
    if (!recorded)
        fprintf(stderr, "heapreplay validate: warning: %s was not written by 'heapreplay record'; "
                        "comparing what it holds\n", in[0]);
    /* --json is opened before the replays: a bad path is refused at once, and an existing file
     * is replaced only by a complete table */
    hr_out_t json = HR_OUT_INIT;
    if (o[0].value && hr_out_open(&json, o[0].value, &err))
        return hr_cli_fail(&err);
    vreport_t rep = {0};
    trace_facts_t facts = {.fin = UINT64_MAX};
    int rc = read_facts(in[0], &facts, &err);
    if (!rc)
        rc = check_schedule(in[0], gc_spec, &facts, recorded, debug_hooks, &rep, &err);
    if (!rc && kind == HR_KIND_GRAPH)
        rc = check_refcount(in[0], facts.fin, &rep, &err);
    free(facts.m);
    if (rc) {
        hr_out_abort(&json);
        return hr_cli_fail(&err);
    }
    int bad = 0, known = 0;
    uint64_t compared = 0; /* recorded checks compared (the replays' own rows aside) */
    printf("validate %s (%s trace; replays: pymalloc:preset=3.11,placement=recorded with %s%s)\n\n",
           in[0], hr_kind_name(kind), gc_spec, kind == HR_KIND_GRAPH ? "; libc with refcount" : "");
    printf("%-56s %9s %9s  %s\n", "check", "matched", "of", "result");
    for (int i = 0; i < rep.n; i++) {
        vcheck_t *c = &rep.c[i];
        int ok = c->total > 0 && c->matched == c->total;
        bad |= !ok && c->total > 0 && !c->known;
        known |= !ok && c->total > 0 && c->known;
        compared += c->replay ? 0 : c->total;
        printf("%-56s %9llu %9llu  %s\n", c->name, (unsigned long long)c->matched,
               (unsigned long long)c->total,
               c->total == 0 ? "n/a" : ok ? "MATCH" : c->known ? "differs (known)" : "MISMATCH");
        if (c->detail[0] && (!ok || c->show))
            printf("    %s\n", c->detail);
    }
    if (o[0].value) {
        FILE *f = hr_out_stream(&json, &err);
        if (!f) {
            hr_out_abort(&json);
            return hr_cli_fail(&err);
        }
        fprintf(f, "{\"schema\": \"heapreplay-validate/1\", \"trace\": ");
        hr_fput_json_string(f, in[0]);
        fprintf(f, ", \"checks\": [");
        for (int i = 0; i < rep.n; i++) {
            fprintf(f, "%s{\"check\": ", i ? ", " : "");
            hr_fput_json_string(f, rep.c[i].name);
            fprintf(f, ", \"matched\": %llu, \"total\": %llu, \"known_inexact\": %s}",
                    (unsigned long long)rep.c[i].matched, (unsigned long long)rep.c[i].total,
                    rep.c[i].known ? "true" : "false");
        }
        fprintf(f, "]}\n");
        if (hr_out_commit(&json, &err))
            return hr_cli_fail(&err);
    }
    if (verbose && nmis) {
        qsort(mis, (size_t)nmis, sizeof *mis, cmp_mis);
        printf("\nrefcount mismatches by type:\n");
        for (int i = 0; i < nmis; i++) {
            printf("  %-44s %8llu  ", mis_kind_name[mis[i].kind], (unsigned long long)mis[i].n);
            hr_cli_put_safe(stdout, mis[i].name, 0);
            putchar('\n');
        }
    }
    if (!bad && compared == 0) {
        /* nothing recorded to compare with: not a match */
        printf("\nnothing compared: the trace holds no recorded statistics or collections "
               "(validate compares a trace written by 'heapreplay record' with its replay)\n");
        return 2;
    }
    if (known)
        printf("\n(differs (known): a row documented as inexact for graph traces, where the replay "
               "cannot be\nexact: docs/recorder.md, \"What remains inexact\"; it does not make "
               "validate fail)\n");
    printf("\n%s\n", bad ? recorded ? "MISMATCH: the replay does not reproduce everything the "
                                      "recorded program did"
                                    : "MISMATCH: the replay does not reproduce what the trace holds"
                     : known ? "every check claimed exact matches" : "all checks match");
    return bad ? 2 : 0;
}

const hr_cmd_t hr_cmd_validate = {
    "validate", "TRACE [--json OUT] [-v]",
    "Compare a recorded CPython trace with its replay (statistics, collections, deaths).",
    "  --json OUT           write the table as JSON\n"
    "  -v, --verbose        list every collection: recorded and replayed generation and position\n",
    run_validate,
    "Replay a trace recorded from CPython with the matching configuration and compare every check\n"
    "it holds: pymalloc's statistics text, the collection schedule per generation, and for graph\n"
    "traces the garbage per collection and reference-counting deaths. Exit 2 on a mismatch, or\n"
    "when the trace holds nothing recorded to compare."};

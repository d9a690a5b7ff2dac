/* jemalloc.c: "jemalloc", Debian's jemalloc 5 as a private, renamed copy linked into the harness,
 * one fresh arena per instance.
 *
 * Why a private copy (isolation)
 *   Debian's libjemalloc.so cannot be loaded with dlopen: its thread-local state uses the
 *   initial-exec TLS model, which needs room in the static TLS block that dlopen does not have
 *   ("cannot allocate memory in static TLS block"). Linking it normally would make it the
 *   malloc of the whole process, harness included. So the build takes Debian's PIC archive
 *   (libjemalloc_pic.a, same sources and configuration as the shared library) and rewrites it
 *   (allocators/jemalloc_private.sh): every public symbol gets the prefix `hr_je_` (malloc ->
 *   hr_je_malloc, mallctl -> hr_je_mallctl, ...; jemalloc's internal symbols already carry its
 *   private `je_` prefix), and its constructor is dropped, so that nothing of jemalloc runs until this
 *   backend is created. Linked into the executable, its TLS is part of the static TLS block
 *   and the harness's malloc stays glibc's: no symbol the C library defines is defined by the
 *   copy (the build script checks it), and tests/alloc/test_isolation checks it at run time.
 *   The copy reads its options from MALLOC_CONF like any jemalloc.
 *
 * One arena per instance
 *   create makes a fresh arena (arenas.create) with sbrk disabled (arena.<i>.dss = disabled: the
 *   break stays glibc's) and binds the calling thread to it (thread.arena), so that the plain
 *   fast paths, hr_je_malloc and hr_je_sdallocx with the thread's cache, allocate from it: what
 *   a program linked with jemalloc runs, nothing added. (An arena made by arenas.create is not
 *   automatic, so even requests above oversize_threshold stay in it.) The instance must be used
 *   from the thread that created it. If another instance already holds that thread's binding, the
 *   new one takes the explicit path instead: mallocx/sdallocx with MALLOCX_ARENA(its arena) and
 *   MALLOCX_TCACHE(its own cache), correct whatever the binding, about 18 ns slower per call
 *   here (path=flags asks for it). destroy flushes the cache, restores the thread's previous
 *   arena and destroys the arena (arena.<i>.destroy), which frees every block still in it.
 *
 *   Frees are sized (sdallocx) when the size gives the block's size class: not for size 0, nor
 *   aligned blocks, nor (defensively: jemalloc 5 gives a resized block the class of its new
 *   size) a block that a realloc left in another class than its new size gives. Those are kept in a
 *   pointer set and freed unsized (dallocx). sized=check verifies every sized free against
 *   jemalloc's own size lookup (sallocx against nallocx) and counts mismatches, which the
 *   statistics text shows; sized=off frees everything unsized.
 *
 * Footprint: the arena's own statistics
 *   footprint = (pactive + pdirty + pmuzzy) x page of this arena (stats.arenas.<i>.*, after an
 *   "epoch" refresh): pages holding blocks, plus freed pages not yet given back to the system
 *   (dirty, and muzzy ones given back lazily with MADV_FREE). Purged and retained address space
 *   is not counted; nor is jemalloc's metadata. The peak is sampled (fpoll.h; a refresh costs
 *   about 27 us here).
 */
#include "fpoll.h"
#include "hr_alloc.h"
#include "ptrset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The private copy's API (jemalloc 5, renamed by jemalloc_private.sh). */
void *hr_je_malloc(size_t size);
void *hr_je_calloc(size_t n, size_t size);
void *hr_je_realloc(void *p, size_t size);
void hr_je_free(void *p);
void *hr_je_mallocx(size_t size, int flags);
void *hr_je_rallocx(void *p, size_t size, int flags);
void hr_je_dallocx(void *p, int flags);
void hr_je_sdallocx(void *p, size_t size, int flags);
size_t hr_je_sallocx(const void *p, int flags);
size_t hr_je_nallocx(size_t size, int flags);
int hr_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int hr_je_mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int hr_je_mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                       size_t newlen);
void hr_je_malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                              const char *opts);

/* mallocx flags, as jemalloc/jemalloc.h 5.x defines them (meson checks these against the
 * installed header). */
#define JE_LG_ALIGN(la) ((int)(la))
#define JE_ZERO ((int)0x40)
#define JE_TCACHE(tc) ((int)(((unsigned)(tc) + 2) << 8))
#define JE_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))

typedef struct je {
    unsigned arena;       /* this instance's arena */
    int flags;            /* 0: fast path (thread bound); else JE_ARENA | JE_TCACHE */
    unsigned tcache;      /* the explicit path's cache */
    int free_flags;       /* flags for dallocx/sdallocx: 0, or JE_TCACHE on the explicit path */
    int bound;            /* the fast path holds this thread's binding */
    unsigned prev_arena;  /* the thread's arena before create (fast path) */
    size_t page;          /* bytes per page */
    size_t mib_epoch[1], mib_pactive[5], mib_pdirty[5], mib_pmuzzy[5];
    size_t len_epoch, len_stat;
    hr_fpoll_t poll;
    int sized;            /* JE_SIZED_* */
    uint64_t checked, mismatches; /* sized=check */
    hr_ptrset_t unsized;  /* blocks whose size does not give their class: freed unsized */
    char note[128];       /* for the statistics text */
} je_t;

enum { JE_SIZED_ON, JE_SIZED_OFF, JE_SIZED_CHECK };

static _Thread_local int je_fast_taken; /* an instance holds this thread's binding */

static const hr_param_desc_t je_params[] = {
    {"path", "fast|flags", "fast: thread bound to the arena, plain malloc/sdallocx; flags: mallocx with arena and cache flags"},
    {"decay", "ms (-1: never)", "dirty_decay_ms and muzzy_decay_ms of the arena (jemalloc's defaults otherwise)"},
    {"sized", "on|off|check", "sized frees where the size gives the class (on), never, or verified"},
    {"poll", "calls", "allocating calls between two reads of the statistics (65536)"},
    {NULL, NULL, NULL}};

static uint64_t je_footprint(je_t *c)
{
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    size_t pa = 0, pd = 0, pm = 0, l = sizeof pa;
    hr_je_mallctlbymib(c->mib_epoch, c->len_epoch, &epoch, &len, &epoch, sizeof epoch);
    hr_je_mallctlbymib(c->mib_pactive, c->len_stat, &pa, &l, NULL, 0);
    l = sizeof pd;
    hr_je_mallctlbymib(c->mib_pdirty, c->len_stat, &pd, &l, NULL, 0);
    l = sizeof pm;
    hr_je_mallctlbymib(c->mib_pmuzzy, c->len_stat, &pm, &l, NULL, 0);
    return ((uint64_t)pa + pd + pm) * c->page;
}

static void je_poll(je_t *c)
{
    hr_fpoll_note(&c->poll, je_footprint(c));
}

static int je_stat_mib(je_t *c, const char *name, size_t *mib, hr_err_t *err)
{
    size_t len = 5;
    if (hr_je_mallctlnametomib(name, mib, &len) != 0 || len != 4)
        return hr_err_set(err, HR_EINTERNAL, "jemalloc: no statistic %s (built without stats?)",
                          name);
    mib[2] = c->arena;
    c->len_stat = len;
    return HR_OK;
}

/* Destroy the arena (and every block in it). Nothing may be bound to it any more. */
static void je_drop_arena(unsigned arena)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.destroy", arena);
    hr_je_mallctl(name, NULL, NULL, NULL, 0);
}

static void je_destroy(void *ctx)
{
    je_t *c = ctx;
    if (!c)
        return;
    if (c->flags) {
        hr_je_mallctl("tcache.destroy", NULL, NULL, &c->tcache, sizeof c->tcache);
    } else if (c->bound) {
        hr_je_mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
        hr_je_mallctl("thread.arena", NULL, NULL, &c->prev_arena, sizeof c->prev_arena);
        je_fast_taken = 0;
    }
    je_drop_arena(c->arena);
    hr_ptrset_free(&c->unsized);
    free(c);
}

static int je_create(void **out, hr_spec_t *spec, hr_err_t *err)
{
    const char *path = hr_spec_get(spec, "path");
    const char *decay = hr_spec_get(spec, "decay");
    const char *poll = hr_spec_get(spec, "poll");
    const char *sized = hr_spec_get(spec, "sized");
    int sized_mode = JE_SIZED_ON;
    if (sized && strcmp(sized, "off") == 0)
        sized_mode = JE_SIZED_OFF;
    else if (sized && strcmp(sized, "check") == 0)
        sized_mode = JE_SIZED_CHECK;
    else if (sized && strcmp(sized, "on") != 0)
        return hr_err_set(err, HR_EUSAGE, "jemalloc: sized=%s must be on, off or check", sized);
    int want_flags = 0;
    if (path && strcmp(path, "flags") == 0)
        want_flags = 1;
    else if (path && strcmp(path, "fast") != 0)
        return hr_err_set(err, HR_EUSAGE, "jemalloc: path=%s must be fast or flags", path);
    long decay_ms = 0;
    if (decay) {
        char *end;
        errno = 0; /* strtol saturates at LONG_MAX with ERANGE: not a value to pass on */
        decay_ms = strtol(decay, &end, 10);
        if (errno || *end || end == decay || decay_ms < -1)
            return hr_err_set(err, HR_EUSAGE, "jemalloc: decay=%s must be milliseconds or -1",
                              decay);
    }
    uint32_t period = HR_FPOLL_PERIOD;
    if (hr_fpoll_parse("jemalloc", poll, &period, err))
        return HR_EUSAGE;

    je_t *c = calloc(1, sizeof *c);
    if (!c)
        return hr_err_set(err, HR_ENOMEM, "jemalloc: out of memory");
    size_t len = sizeof c->arena;
    if (hr_je_mallctl("arenas.create", &c->arena, &len, NULL, 0) != 0) {
        free(c);
        return hr_err_set(err, HR_EINTERNAL, "jemalloc: arenas.create failed");
    }
    /* From here on, failures go through je_destroy (c->flags == 0, c->bound == 0: it only
     * drops the arena). */
    char name[64];
    const char *dss = "disabled";
    snprintf(name, sizeof name, "arena.%u.dss", c->arena);
    int rc = hr_je_mallctl(name, NULL, NULL, (void *)&dss, sizeof dss) == 0
                 ? HR_OK
                 : hr_err_set(err, HR_EINTERNAL, "jemalloc: cannot disable sbrk for the arena");
    if (!rc && decay) {
        ssize_t ms = (ssize_t)decay_ms;
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", c->arena);
        int bad = hr_je_mallctl(name, NULL, NULL, &ms, sizeof ms);
        snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", c->arena);
        bad |= hr_je_mallctl(name, NULL, NULL, &ms, sizeof ms);
        if (bad)
            rc = hr_err_set(err, HR_EUSAGE, "jemalloc: decay=%s refused by the library", decay);
    }
    len = sizeof c->page;
    if (!rc && hr_je_mallctl("arenas.page", &c->page, &len, NULL, 0) != 0)
        rc = hr_err_set(err, HR_EINTERNAL, "jemalloc: no arenas.page");
    c->len_epoch = 1;
    if (!rc && hr_je_mallctlnametomib("epoch", c->mib_epoch, &c->len_epoch) != 0)
        rc = hr_err_set(err, HR_EINTERNAL, "jemalloc: no epoch control");
    if (!rc)
        rc = je_stat_mib(c, "stats.arenas.0.pactive", c->mib_pactive, err);
    if (!rc)
        rc = je_stat_mib(c, "stats.arenas.0.pdirty", c->mib_pdirty, err);
    if (!rc)
        rc = je_stat_mib(c, "stats.arenas.0.pmuzzy", c->mib_pmuzzy, err);
    if (!rc && (want_flags || je_fast_taken)) {
        len = sizeof c->tcache;
        if (hr_je_mallctl("tcache.create", &c->tcache, &len, NULL, 0) != 0) {
            rc = hr_err_set(err, HR_EINTERNAL, "jemalloc: tcache.create failed");
        } else {
            c->flags = JE_ARENA(c->arena) | JE_TCACHE(c->tcache);
            c->free_flags = JE_TCACHE(c->tcache);
            snprintf(c->note, sizeof c->note, "flags (%s)",
                     want_flags ? "path=flags" : "another instance holds this thread's binding");
        }
    } else if (!rc) {
        len = sizeof c->prev_arena;
        if (hr_je_mallctl("thread.arena", &c->prev_arena, &len, &c->arena, sizeof c->arena)) {
            rc = hr_err_set(err, HR_EINTERNAL, "jemalloc: thread.arena failed");
        } else {
            c->bound = 1;
            je_fast_taken = 1;
            snprintf(c->note, sizeof c->note,
                     "fast (this thread bound to the arena; it was on arena %u)", c->prev_arena);
        }
    }
    if (rc) {
        je_destroy(c);
        return rc;
    }
    c->sized = sized_mode;
    hr_fpoll_init(&c->poll, period);
    *out = c;
    return HR_OK;
}

static void *je_malloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    je_t *c = ctx;
    void *p = HR_LIKELY(!c->flags) ? hr_je_malloc(size) : hr_je_mallocx(size ? size : 1, c->flags);
    if (HR_UNLIKELY(p && hr_fpoll_alloc(&c->poll, size)))
        je_poll(c);
    return p;
}

static void *je_calloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    je_t *c = ctx;
    void *p = HR_LIKELY(!c->flags) ? hr_je_calloc(1, size)
                                   : hr_je_mallocx(size ? size : 1, c->flags | JE_ZERO);
    if (HR_UNLIKELY(p && hr_fpoll_alloc(&c->poll, size)))
        je_poll(c);
    return p;
}

static void *je_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)d;
    je_t *c = ctx;
    size_t n = size ? size : 1; /* realloc(p, 0) may free in jemalloc (opt.zero_realloc) */
    void *q = HR_LIKELY(!c->flags) ? hr_je_realloc(p, n) : hr_je_rallocx(p, n, c->flags);
    if (HR_UNLIKELY(!q))
        return NULL;
    int was_unsized = c->unsized.n && hr_ptrset_del(&c->unsized, p);
    if (was_unsized || hr_je_sallocx(q, 0) != hr_je_nallocx(n, 0))
        hr_ptrset_add(&c->unsized, q, n);
    if (HR_UNLIKELY(hr_fpoll_resize(&c->poll, old, size)))
        je_poll(c);
    return q;
}

static void je_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)d;
    je_t *c = ctx;
    hr_fpoll_free(&c->poll, size);
    if (HR_UNLIKELY(size == 0 || c->sized == JE_SIZED_OFF ||
                    (c->unsized.n && hr_ptrset_del(&c->unsized, p)))) {
        hr_je_dallocx(p, c->free_flags);
        return;
    }
    if (HR_UNLIKELY(c->sized == JE_SIZED_CHECK)) {
        c->checked++;
        if (hr_je_sallocx(p, 0) != hr_je_nallocx(size, 0)) {
            c->mismatches++;
            hr_je_dallocx(p, c->free_flags);
            return;
        }
    }
    hr_je_sdallocx(p, size, c->free_flags);
}

static void *je_aligned(void *ctx, size_t align, size_t size, hr_domain_t d)
{
    (void)d;
    je_t *c = ctx;
    int lg = __builtin_ctzll((unsigned long long)align);
    void *p = hr_je_mallocx(size ? size : 1, c->flags | JE_LG_ALIGN(lg));
    if (!p)
        return NULL;
    if (hr_ptrset_add(&c->unsized, p, size) != 0) {
        hr_je_dallocx(p, c->free_flags);
        return NULL;
    }
    if (HR_UNLIKELY(hr_fpoll_alloc(&c->poll, size)))
        je_poll(c);
    return p;
}

static void je_stats(void *ctx, hr_alloc_stats_t *st)
{
    je_t *c = ctx;
    st->footprint = je_footprint(c);
    hr_fpoll_note(&c->poll, st->footprint);
    st->peak_footprint = c->poll.peak;
}

typedef struct je_text {
    hr_buf_t *out;
    int failed;
} je_text_t;

static void je_text_cb(void *arg, const char *s)
{
    je_text_t *t = arg;
    if (hr_buf_append(t->out, s, strlen(s)) != HR_OK)
        t->failed = 1;
}

/* The instance's set-up, then jemalloc's own report (malloc_stats_print) without the per-bin,
 * per-size-class, mutex, extent and HPA tables. It covers every arena of the private copy:
 * jemalloc cannot print one arena alone. */
static int je_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    je_t *c = ctx;
    const char *version = "?";
    size_t len = sizeof version;
    hr_je_mallctl("version", &version, &len, NULL, 0);
    int rc = hr_buf_printf(out,
                           "jemalloc %s, private copy; arena %u; path %s; footprint = (pactive + "
                           "pdirty + pmuzzy) x %zu of that arena, peak sampled by %llu polls; "
                           "sized frees %s",
                           version, c->arena, c->note, c->page,
                           (unsigned long long)c->poll.polls,
                           c->sized == JE_SIZED_OFF  ? "off"
                           : c->sized == JE_SIZED_ON ? "on"
                                                     : "checked");
    if (c->sized == JE_SIZED_CHECK)
        rc |= hr_buf_printf(out, ": %llu checked, %llu mismatches",
                            (unsigned long long)c->checked, (unsigned long long)c->mismatches);
    rc |= hr_buf_putc(out, '\n');
    if (rc)
        return hr_err_set(err, HR_ENOMEM, "jemalloc: out of memory for the statistics text");
    je_text_t t = {out, 0};
    hr_je_malloc_stats_print(je_text_cb, &t, "blxeh");
    if (t.failed)
        return hr_err_set(err, HR_ENOMEM, "jemalloc: out of memory for the statistics text");
    return HR_OK;
}

const hr_alloc_vt hr_alloc_jemalloc_vt = {
    .name = "jemalloc",
    .summary = "jemalloc 5 (Debian's libjemalloc_pic.a, symbols renamed hr_je_*, linked in: the "
               "harness's malloc stays glibc's), one fresh arena per instance; footprint: "
               "the arena's (pactive + pdirty + pmuzzy) pages",
    .params = je_params,
    .create = je_create,
    .destroy = je_destroy,
    .malloc = je_malloc,
    .calloc = je_calloc,
    .realloc = je_realloc,
    .free = je_free,
    .aligned_alloc = je_aligned,
    .stats = je_stats,
    .stats_text = je_stats_text,
};

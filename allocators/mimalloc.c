/* mimalloc.c: "mimalloc", Debian's libmimalloc loaded with dlopen, one mimalloc heap per instance.
 *
 * Isolation
 *   libmimalloc.so also exports malloc, free, __libc_malloc ... (it is built to override them
 *   when linked or preloaded). Loaded with dlopen(RTLD_NOW | RTLD_LOCAL) when the first instance
 *   is created, and never linked, it overrides nothing: its symbols stay out of the global
 *   scope, so every reference to malloc in the harness (and in its libraries) still binds to the
 *   C library, and the backend reaches mimalloc only through the mi_* functions it looked up
 *   with dlsym. Even RTLD_GLOBAL would not take malloc over: the C library comes first in the
 *   global lookup order; a library takes malloc over only when it comes before it (linked into
 *   the executable, or LD_PRELOAD). tests/alloc/test_isolation checks this at run time.
 *   mimalloc gets its memory with mmap only; it never moves the program break.
 *
 *   The library is loaded once per process and never unloaded; `lib=` can name another build
 *   (a second, different one is refused: two mimallocs in one process would share nothing).
 *
 * One heap per instance
 *   create makes a heap (mi_heap_new); every request goes to mi_heap_malloc & co on it, the same
 *   fast path as mi_malloc (which is mi_heap_malloc on the thread's default heap); frees are
 *   mi_free (mimalloc needs no size). destroy is mi_heap_destroy, which frees every block still
 *   in the heap, then mi_collect(true) returns what the heap's segments cached. A mimalloc heap
 *   belongs to its thread: use the instance from the thread that created it.
 *
 * Footprint: mimalloc's own accounting
 *   footprint = bytes mimalloc has committed now (mi_process_info's current_commit). The library
 *   serves nothing but this backend, so its whole count is the replay's: it includes what
 *   mimalloc holds for itself (its first segment, committed when the first heap is made) and
 *   what earlier instances of the process left after destroy (destroy gives back all that
 *   mimalloc lets go); concurrent instances share it. mimalloc commits whole segments (32 MiB)
 *   up front by default (eager commit), so even a small heap shows 32 MiB, most of it never
 *   touched; commit=lazy (mimalloc's option eager_commit=0, process-wide) commits on demand.
 *   peak_footprint is mimalloc's own peak (peak_commit, exact) when no earlier instance of the
 *   process ever committed more than was committed at create; otherwise it is sampled (fpoll.h)
 *   from current_commit.
 */
#include "fpoll.h"
#include "hr_alloc.h"

#include <dlfcn.h>
#include <mimalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HR_MIMALLOC_LIB
#define HR_MIMALLOC_LIB "libmimalloc.so.2"
#endif

/* The library, loaded once per process; function types from mimalloc.h. */
static struct mi_api {
    void *dl;
    char lib[256];
    __typeof__(&mi_heap_new) heap_new;
    __typeof__(&mi_heap_destroy) heap_destroy;
    __typeof__(&mi_heap_malloc) heap_malloc;
    __typeof__(&mi_heap_zalloc) heap_zalloc;
    __typeof__(&mi_heap_realloc) heap_realloc;
    __typeof__(&mi_heap_malloc_aligned) heap_malloc_aligned;
    __typeof__(&mi_free) free;
    __typeof__(&mi_collect) collect;
    __typeof__(&mi_process_info) process_info;
    __typeof__(&mi_stats_print_out) stats_print_out;
    __typeof__(&mi_version) version;
    __typeof__(&mi_option_set) option_set;
    __typeof__(&mi_option_get) option_get;
} mi;

static int mi_live; /* instances alive in the process */

typedef struct mim {
    mi_heap_t *heap;  /* owned */
    int own_peak;     /* mimalloc's peak_commit is this instance's (no higher earlier peak) */
    hr_fpoll_t poll;  /* the sampled peak otherwise (not counted when own_peak) */
} mim_t;

static const hr_param_desc_t mim_params[] = {
    {"lib", "path or soname", "libmimalloc to load (default " HR_MIMALLOC_LIB ")"},
    {"commit", "eager|lazy", "eager: whole segments up front (mimalloc's default); lazy: on demand (process-wide option)"},
    {"poll", "calls", "allocating calls between two samples of the peak, when it is sampled (65536)"},
    {NULL, NULL, NULL}};

static int mi_sym(const char *name, void *out, hr_err_t *err)
{
    void *p = dlsym(mi.dl, name);
    if (!p)
        return hr_err_set(err, HR_EINTERNAL, "mimalloc: %s lacks %s", mi.lib, name);
    memcpy(out, &p, sizeof p);
    return HR_OK;
}

static int mi_load(const char *lib, hr_err_t *err)
{
    if (mi.dl) {
        if (strcmp(lib, mi.lib) != 0)
            return hr_err_set(err, HR_EUSAGE,
                              "mimalloc: this process already loaded %s; one mimalloc library "
                              "per process (lib=%s refused)", mi.lib, lib);
        return HR_OK;
    }
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        return hr_err_set(err, HR_EUSAGE, "mimalloc: cannot load %s: %s", lib,
                          why ? why : "unknown error");
    }
    mi.dl = dl;
    snprintf(mi.lib, sizeof mi.lib, "%s", lib);
    int rc = mi_sym("mi_heap_new", &mi.heap_new, err);
    if (!rc)
        rc = mi_sym("mi_heap_destroy", &mi.heap_destroy, err);
    if (!rc)
        rc = mi_sym("mi_heap_malloc", &mi.heap_malloc, err);
    if (!rc)
        rc = mi_sym("mi_heap_zalloc", &mi.heap_zalloc, err);
    if (!rc)
        rc = mi_sym("mi_heap_realloc", &mi.heap_realloc, err);
    if (!rc)
        rc = mi_sym("mi_heap_malloc_aligned", &mi.heap_malloc_aligned, err);
    if (!rc)
        rc = mi_sym("mi_free", &mi.free, err);
    if (!rc)
        rc = mi_sym("mi_collect", &mi.collect, err);
    if (!rc)
        rc = mi_sym("mi_process_info", &mi.process_info, err);
    if (!rc)
        rc = mi_sym("mi_stats_print_out", &mi.stats_print_out, err);
    if (!rc)
        rc = mi_sym("mi_version", &mi.version, err);
    if (!rc)
        rc = mi_sym("mi_option_set", &mi.option_set, err);
    if (!rc)
        rc = mi_sym("mi_option_get", &mi.option_get, err);
    if (rc) /* the handle is leaked: the library's constructor ran, unloading is not worth it */
        memset(&mi, 0, sizeof mi);
    return rc;
}

static void mim_commit(uint64_t *current, uint64_t *peak)
{
    size_t elapsed, utime, stime, rss, peak_rss, cur, pk, faults;
    mi.process_info(&elapsed, &utime, &stime, &rss, &peak_rss, &cur, &pk, &faults);
    *current = cur;
    *peak = pk;
}

static void mim_poll(mim_t *m)
{
    uint64_t cur, pk;
    mim_commit(&cur, &pk);
    hr_fpoll_note(&m->poll, cur);
}

static int mim_create(void **out, hr_spec_t *spec, hr_err_t *err)
{
    const char *lib = hr_spec_get(spec, "lib");
    const char *eager = hr_spec_get(spec, "commit");
    const char *poll = hr_spec_get(spec, "poll");
    if (eager && strcmp(eager, "eager") != 0 && strcmp(eager, "lazy") != 0)
        return hr_err_set(err, HR_EUSAGE, "mimalloc: commit=%s must be eager or lazy", eager);
    uint32_t period = HR_FPOLL_PERIOD;
    if (hr_fpoll_parse("mimalloc", poll, &period, err))
        return HR_EUSAGE;
    int rc = mi_load(lib ? lib : HR_MIMALLOC_LIB, err);
    if (rc)
        return rc;
    mim_t *m = calloc(1, sizeof *m);
    if (!m)
        return hr_err_set(err, HR_ENOMEM, "mimalloc: out of memory");
    if (eager)
        mi.option_set(mi_option_eager_commit, strcmp(eager, "eager") == 0);
    if (mi_live == 0)
        mi.collect(true); /* give back what earlier instances left cached */
    m->heap = mi.heap_new();
    if (!m->heap) {
        free(m);
        return hr_err_set(err, HR_ENOMEM, "mimalloc: mi_heap_new failed");
    }
    uint64_t cur, pk;
    mim_commit(&cur, &pk);
    m->own_peak = mi_live == 0 && pk <= cur;
    hr_fpoll_init(&m->poll, period);
    mi_live++;
    *out = m;
    return HR_OK;
}

static void mim_destroy(void *ctx)
{
    mim_t *m = ctx;
    if (!m)
        return;
    mi.heap_destroy(m->heap);
    mi.collect(true);
    mi_live--;
    free(m);
}

static void *mim_malloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    mim_t *m = ctx;
    void *p = mi.heap_malloc(m->heap, size);
    if (HR_UNLIKELY(!m->own_peak) && p && hr_fpoll_alloc(&m->poll, size))
        mim_poll(m);
    return p;
}

static void *mim_calloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    mim_t *m = ctx;
    void *p = mi.heap_zalloc(m->heap, size);
    if (HR_UNLIKELY(!m->own_peak) && p && hr_fpoll_alloc(&m->poll, size))
        mim_poll(m);
    return p;
}

static void *mim_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)d;
    mim_t *m = ctx;
    void *q = mi.heap_realloc(m->heap, p, size);
    if (HR_UNLIKELY(!m->own_peak) && q && hr_fpoll_resize(&m->poll, old, size))
        mim_poll(m);
    return q;
}

static void mim_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)d;
    mim_t *m = ctx;
    if (HR_UNLIKELY(!m->own_peak))
        hr_fpoll_free(&m->poll, size);
    mi.free(p);
}

static void *mim_aligned(void *ctx, size_t align, size_t size, hr_domain_t d)
{
    (void)d;
    mim_t *m = ctx;
    void *p = mi.heap_malloc_aligned(m->heap, size, align);
    if (HR_UNLIKELY(!m->own_peak) && p && hr_fpoll_alloc(&m->poll, size))
        mim_poll(m);
    return p;
}

static void mim_stats(void *ctx, hr_alloc_stats_t *st)
{
    mim_t *m = ctx;
    uint64_t peak;
    mim_commit(&st->footprint, &peak);
    hr_fpoll_note(&m->poll, st->footprint);
    st->peak_footprint = m->own_peak && peak > m->poll.peak ? peak : m->poll.peak;
}

typedef struct mim_text {
    hr_buf_t *out;
    int failed;
} mim_text_t;

static void mim_text_cb(const char *msg, void *arg)
{
    mim_text_t *t = arg;
    if (hr_buf_append(t->out, msg, strlen(msg)) != HR_OK)
        t->failed = 1;
}

static int mim_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    mim_t *m = ctx;
    int v = mi.version();
    int rc = hr_buf_printf(out,
                           "mimalloc %d.%d.%d (%s, dlopen RTLD_LOCAL); eager_commit %ld; "
                           "footprint = committed bytes; peak %s\n",
                           v / 100, (v / 10) % 10, v % 10, mi.lib,
                           mi.option_get(mi_option_eager_commit),
                           m->own_peak ? "mimalloc's own (peak_commit)" : "sampled");
    mim_text_t t = {out, rc != 0};
    if (!rc)
        mi.stats_print_out(mim_text_cb, &t);
    if (t.failed)
        return hr_err_set(err, HR_ENOMEM, "mimalloc: out of memory for the statistics text");
    return HR_OK;
}

static const char *mim_footprint_note(void *ctx)
{
    (void)ctx;
    if (!mi.option_get(mi_option_eager_commit))
        return NULL;
    return "committed bytes; commit=eager (the default) takes whole 32 MiB segments, mostly "
           "untouched: see rss, or commit=lazy";
}

const hr_alloc_vt hr_alloc_mimalloc_vt = {
    .name = "mimalloc",
    .summary = "mimalloc (" HR_MIMALLOC_LIB ", dlopen RTLD_LOCAL: the harness's malloc stays "
               "glibc's), one mi_heap per instance; footprint: mimalloc's committed bytes",
    .params = mim_params,
    .create = mim_create,
    .destroy = mim_destroy,
    .malloc = mim_malloc,
    .calloc = mim_calloc,
    .realloc = mim_realloc,
    .free = mim_free,
    .aligned_alloc = mim_aligned,
    .stats = mim_stats,
    .stats_text = mim_stats_text,
    .flags = HR_ALLOC_F_SMALL_ALIGN8,
    .footprint_note = mim_footprint_note,
};

/* cpython.c: "cpython", the real obmalloc of libpython (3.11 by default), the oracle for pymalloc.
 *
 * Theory of operation
 *   libpython is loaded with dlopen(RTLD_NOW | RTLD_LOCAL) when the backend is created, never
 *   linked: the harness's own address space and symbol table hold no Python unless this backend
 *   is chosen, and `lib=PATH` can load another release (pyenv's libpython3.8 ... 3.13) to check
 *   the model's older presets. The interpreter is never initialised: in these releases the
 *   allocator tables and pymalloc's state are static globals with static initialisers, so
 *   PyObject_Malloc & co work before (and without) Py_Initialize (reference section 2.5).
 *
 *   Domains map to the real entry points: raw -> PyMem_Raw*, mem -> PyMem_*, obj and native ->
 *   PyObject_*. calloc(n) is X_Calloc(1, n). There is no aligned entry point (slot absent).
 *
 *   Arena placement: an arena allocator is installed with PyObject_SetArenaAllocator whose alloc
 *   and free go through arena_place.c, with the same modes as the model (unaligned, aligned,
 *   recorded, malloc), so the model and the real allocator can be given identical arenas.
 *   Requests of another size than `arena` (3.11's interpreter frame chunks, after an init that
 *   never happens here) are served by a plain mmap.
 *
 *   Statistics text: _PyObject_DebugMallocStats(FILE *) (exported, declared here) written into a
 *   memory stream. It prints exactly the allocator part of sys._debugmallocstats(); the free-list
 *   lines come from another function that is not called.
 *
 * Isolation and its limit
 *   obmalloc's state is process-global and cannot be reset. Hence HR_ALLOC_F_ONCE_PER_PROCESS:
 *   the second create in a process fails, even after the first instance was destroyed (a new
 *   one would inherit the old arenas and counters). Tests that need many fresh instances run
 *   each in a forked child. pymalloc is not thread-safe: use an instance from one thread.
 *   destroy restores the previous arena allocator, frees the raw blocks still live (tracked by
 *   address) and unmaps the arenas still mapped; libpython's bookkeeping then points at freed
 *   memory, which is harmless because no one can use it again.
 *
 * Accounting, identical to the model's (except pools_used, which only the statistics text
 * shows): footprint = live arenas * arena size + bytes of the
 * live blocks obtained from libc (raw domain, size 0, size > threshold), told apart by address.
 */
#include "arena_place.h"
#include "hr_alloc.h"
#include "ptrset.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef HR_CPYTHON_LIB
#define HR_CPYTHON_LIB "libpython3.11.so.1.0"
#endif

/* PyObjectArenaAllocator, unchanged since Python 3.4 (PEP 445). */
typedef struct cpy_arena_allocator {
    void *ctx;
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr, size_t size);
} cpy_arena_allocator_t;

typedef struct cpy_domain {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
} cpy_domain_t;

typedef struct cpy {
    void *dl;                     /* owned handle */
    const char *lib;              /* the library path, valid while cpy_create runs (messages) */
    cpy_domain_t dom[HR_DOMAIN_COUNT];
    void (*get_arena)(cpy_arena_allocator_t *);
    void (*set_arena)(cpy_arena_allocator_t *);
    int (*debug_stats)(FILE *);
    cpy_arena_allocator_t saved;  /* the allocator found at create, restored at destroy */
    int installed;

    size_t arena_size, pool_size;
    hr_placer_t place;

    uint64_t narenas, ntimes, highwater;
    uint64_t large_requests, large_bytes, peak_footprint;
    hr_ptrset_t raw; /* live blocks from the raw allocator, released by destroy */
} cpy_t;

static int cpy_created; /* process-wide: set once an instance has touched libpython's state */

static const hr_param_desc_t cpy_params[] = {
    {"lib", "path or soname", "libpython to load (default " HR_CPYTHON_LIB ")"},
    {"placement", "unaligned|aligned|recorded|malloc", "where arenas are mapped (as pymalloc)"},
    {"arena", "size (1M)", "the library's arena size, from its version (256K up to 3.9): if given, must match"},
    {"pool", "size (16K)", "the library's pool size, from its version (4K up to 3.9): if given, must match"},
    {NULL, NULL, NULL}};

static uint64_t cpy_footprint(const cpy_t *c)
{
    return c->narenas * c->arena_size + c->large_bytes;
}

static void cpy_note_footprint(cpy_t *c)
{
    uint64_t f = cpy_footprint(c);
    if (f > c->peak_footprint)
        c->peak_footprint = f;
}

static void *cpy_arena_alloc(void *ctx, size_t size)
{
    cpy_t *c = ctx;
    if (size != c->arena_size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    void *p = hr_placer_map(&c->place);
    if (p) {
        c->narenas++;
        c->ntimes++;
        if (c->narenas > c->highwater)
            c->highwater = c->narenas;
        cpy_note_footprint(c);
    }
    return p;
}

static void cpy_arena_free(void *ctx, void *p, size_t size)
{
    cpy_t *c = ctx;
    if (size == c->arena_size && hr_placer_unmap(&c->place, p) == 0) {
        c->narenas--;
        return;
    }
    munmap(p, size);
}

static void cpy_destroy(void *ctx)
{
    cpy_t *c = ctx;
    if (!c)
        return;
    if (c->installed)
        c->set_arena(&c->saved);
    for (size_t i = 0; i < c->raw.cap; i++)
        if (c->raw.slot[i].key)
            c->dom[HR_DOMAIN_RAW].free((void *)c->raw.slot[i].key);
    hr_ptrset_free(&c->raw);
    hr_placer_fini(&c->place);
    /* The library stays loaded: its state is referenced by nothing else, and unloading a
     * libpython is not supported by CPython. */
    free(c);
}

/* A symbol of the loaded library; a library without it is the wrong library (as one that does
 * not load: a usage error, exit 1). */
static int cpy_sym(cpy_t *c, const char *name, void *out, hr_err_t *err)
{
    void *p = dlsym(c->dl, name);
    if (!p)
        return hr_err_set(err, HR_EUSAGE, "cpython: %s is not a CPython 3 library (no %s)",
                          c->lib, name);
    memcpy(out, &p, sizeof p);
    return HR_OK;
}

static int cpy_create(void **out, hr_spec_t *spec, hr_err_t *err)
{
    const char *lib = hr_spec_get(spec, "lib");
    const char *pl = hr_spec_get(spec, "placement");
    const char *arena = hr_spec_get(spec, "arena");
    const char *pool = hr_spec_get(spec, "pool");
    if (!lib)
        lib = HR_CPYTHON_LIB;
    hr_place_mode_t mode = HR_PLACE_UNALIGNED;
    if (pl && hr_place_parse(pl, &mode) != HR_OK)
        return hr_err_set(err, HR_EUSAGE,
                          "cpython: placement=%s must be unaligned, aligned, recorded or malloc",
                          pl);
    uint64_t asize = (uint64_t)1 << 20, psize = (uint64_t)1 << 14;
    /* 16K..1G: what the arena placer takes (hr_placer_init), said here with the key. */
    if (arena && (hr_parse_size(arena, &asize) != HR_OK || !asize || (asize & (asize - 1)) ||
                  asize < ((uint64_t)1 << 14) || asize > ((uint64_t)1 << 30)))
        return hr_err_set(err, HR_EUSAGE, "cpython: arena=%s must be a power of two in 16K..1G",
                          arena);
    if (pool && (hr_parse_size(pool, &psize) != HR_OK || !psize || (psize & (psize - 1)) ||
                 psize > asize))
        return hr_err_set(err, HR_EUSAGE,
                          "cpython: pool=%s must be a power of two no larger than the arena (%llu)",
                          pool, (unsigned long long)asize);
    if (cpy_created)
        return hr_err_set(err, HR_EUSAGE,
                          "cpython: the real obmalloc is process-global and cannot be reset; "
                          "this process already created a cpython allocator (one per process)");

    cpy_t *c = calloc(1, sizeof *c);
    if (!c)
        return hr_err_set(err, HR_ENOMEM, "cpython: out of memory");
    int rc = HR_OK;
    c->lib = lib;
    c->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!c->dl) {
        const char *why = dlerror();
        free(c);
        return hr_err_set(err, HR_EUSAGE, "cpython: cannot load %s: %s", lib,
                          why ? why : "unknown error");
    }
    static const char *const names[HR_DOMAIN_COUNT][4] = {
        {"PyMem_RawMalloc", "PyMem_RawCalloc", "PyMem_RawRealloc", "PyMem_RawFree"},
        {"PyMem_Malloc", "PyMem_Calloc", "PyMem_Realloc", "PyMem_Free"},
        {"PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "PyObject_Free"},
        {"PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "PyObject_Free"},
    };
    for (int d = 0; d < HR_DOMAIN_COUNT && !rc; d++) {
        rc = cpy_sym(c, names[d][0], &c->dom[d].malloc, err);
        if (!rc)
            rc = cpy_sym(c, names[d][1], &c->dom[d].calloc, err);
        if (!rc)
            rc = cpy_sym(c, names[d][2], &c->dom[d].realloc, err);
        if (!rc)
            rc = cpy_sym(c, names[d][3], &c->dom[d].free, err);
    }
    int (*is_initialized)(void) = NULL;
    if (!rc)
        rc = cpy_sym(c, "PyObject_GetArenaAllocator", &c->get_arena, err);
    if (!rc)
        rc = cpy_sym(c, "PyObject_SetArenaAllocator", &c->set_arena, err);
    if (!rc)
        rc = cpy_sym(c, "_PyObject_DebugMallocStats", &c->debug_stats, err);
    if (!rc)
        rc = cpy_sym(c, "Py_IsInitialized", &is_initialized, err);
    /* The library's own arena and pool sizes (its version's constants: 256 KiB and 4 KiB up to
     * 3.9, 1 MiB and 16 KiB from 3.10). arena= and pool= must agree with them: obmalloc asks for
     * arenas of its own size whatever we think, and a size we do not expect used to be served
     * by a plain, uncounted mmap (no arenas, a footprint near the bytes in use: silently
     * wrong). */
    const char *(*get_version)(void) = NULL;
    if (!rc)
        rc = cpy_sym(c, "Py_GetVersion", &get_version, err);
    if (!rc) {
        unsigned major = 0, minor = 0;
        const char *v = get_version();
        int old = sscanf(v, "%u.%u", &major, &minor) == 2 && major == 3 && minor <= 9;
        uint64_t la = old ? (uint64_t)1 << 18 : (uint64_t)1 << 20;
        uint64_t lp = old ? (uint64_t)1 << 12 : (uint64_t)1 << 14;
        if (arena && asize != la)
            rc = hr_err_set(err, HR_EUSAGE, "cpython: arena=%s, but %s (Python %.*s) maps arenas "
                            "of %llu KiB: arena= must match the library", arena, lib,
                            (int)strcspn(v, " "), v, (unsigned long long)(la >> 10));
        else if (pool && psize != lp)
            rc = hr_err_set(err, HR_EUSAGE, "cpython: pool=%s, but %s (Python %.*s) uses pools "
                            "of %llu KiB: pool= must match the library", pool, lib,
                            (int)strcspn(v, " "), v, (unsigned long long)(lp >> 10));
        asize = la, psize = lp;
    }
    if (!rc) {
        c->arena_size = (size_t)asize;
        c->pool_size = (size_t)psize;
        if ((rc = hr_placer_init(&c->place, mode, c->arena_size, c->pool_size, err))) {
            hr_err_prefix(err, "cpython: ");
            free(c); /* the library stays loaded: its state was not touched */
            return rc;
        }
    }
    if (!rc && is_initialized())
        rc = hr_err_set(err, HR_EUSAGE,
                        "cpython: %s is already initialised in this process; its obmalloc is "
                        "not in a known state", lib);
    if (rc) {
        hr_placer_fini(&c->place);
        free(c); /* the library stays loaded: its state was not touched */
        return rc;
    }
    /* From here on the library's state is ours. */
    cpy_created = 1;
    c->get_arena(&c->saved);
    cpy_arena_allocator_t mine = {c, cpy_arena_alloc, cpy_arena_free};
    c->set_arena(&mine);
    c->installed = 1;

    /* pymalloc must be the object allocator, or the statistics are empty. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int on = f ? c->debug_stats(f) : 0;
    if (f)
        fclose(f);
    free(text);
    if (!on) {
        cpy_destroy(c);
        return hr_err_set(err, HR_EUSAGE,
                          "cpython: pymalloc is not the object allocator of %s (built "
                          "--without-pymalloc?)", lib);
    }
    *out = c;
    return HR_OK;
}

HR_INLINE void cpy_count_raw(cpy_t *c, void *p, size_t n)
{
    if (p && !hr_placer_contains(&c->place, p)) {
        c->large_requests++;
        c->large_bytes += n ? n : 1;
        cpy_note_footprint(c);
        hr_ptrset_add(&c->raw, p, n ? n : 1);
    }
}

static void *cpy_malloc(void *ctx, size_t size, hr_domain_t d)
{
    cpy_t *c = ctx;
    void *p = c->dom[d].malloc(size);
    cpy_count_raw(c, p, size);
    return p;
}

static void *cpy_calloc(void *ctx, size_t size, hr_domain_t d)
{
    cpy_t *c = ctx;
    void *p = c->dom[d].calloc(1, size);
    cpy_count_raw(c, p, size);
    return p;
}

static void *cpy_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    cpy_t *c = ctx;
    int was_raw = !hr_placer_contains(&c->place, p);
    void *q = c->dom[d].realloc(p, size);
    if (q) {
        if (was_raw) {
            c->large_bytes -= old ? old : 1;
            hr_ptrset_del(&c->raw, p);
        }
        cpy_count_raw(c, q, size);
    }
    return q;
}

static void cpy_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    cpy_t *c = ctx;
    if (!hr_placer_contains(&c->place, p)) {
        c->large_bytes -= size ? size : 1;
        hr_ptrset_del(&c->raw, p);
    }
    c->dom[d].free(p);
}

static void cpy_arena_fact(void *ctx, uint64_t base, uint64_t size, int mapped)
{
    cpy_t *c = ctx;
    hr_placer_fact(&c->place, base, size, mapped);
}

static int cpy_text(cpy_t *c, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *f = open_memstream(text, len);
    if (!f)
        return HR_ENOMEM;
    c->debug_stats(f);
    if (fclose(f) != 0) {
        free(*text);
        *text = NULL;
        return HR_ENOMEM;
    }
    return HR_OK;
}

static void cpy_stats(void *ctx, hr_alloc_stats_t *st)
{
    cpy_t *c = ctx;
    st->footprint = cpy_footprint(c);
    st->peak_footprint = c->peak_footprint;
    st->arenas = c->narenas;
    st->peak_arenas = c->highwater;
    st->arenas_allocated = c->ntimes;
    st->arenas_released = c->ntimes - c->narenas;
    /* pools_used stays 0: only the statistics text knows it (its "num pools" column), and
     * producing that text walks every pool, too slow for a per-event counter. */
    st->large_requests = c->large_requests;
}

static int cpy_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    cpy_t *c = ctx;
    char *text;
    size_t len;
    if (cpy_text(c, &text, &len) != HR_OK || hr_buf_append(out, text, len) != HR_OK) {
        free(text);
        return hr_err_set(err, HR_ENOMEM, "cpython: out of memory for the statistics text");
    }
    free(text);
    return HR_OK;
}

const hr_alloc_vt hr_alloc_cpython_vt = {
    .name = "cpython",
    .summary = "the real obmalloc of libpython (" HR_CPYTHON_LIB "), loaded with dlopen and "
               "never initialised; one per process",
    .params = cpy_params,
    .create = cpy_create,
    .destroy = cpy_destroy,
    .malloc = cpy_malloc,
    .calloc = cpy_calloc,
    .realloc = cpy_realloc,
    .free = cpy_free,
    .arena_fact = cpy_arena_fact,
    .stats = cpy_stats,
    .stats_text = cpy_stats_text,
    .flags = HR_ALLOC_F_ONCE_PER_PROCESS,
};

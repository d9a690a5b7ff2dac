/* tcmalloc.c: "tcmalloc", gperftools' tcmalloc (Debian's libtcmalloc_minimal) loaded with dlopen.
 *
 * Isolation
 *   libtcmalloc_minimal.so exports malloc, free, __libc_malloc, even mmap and sbrk (its hooks),
 *   to replace them when it is linked or preloaded. Loaded with dlopen(RTLD_NOW | RTLD_LOCAL)
 *   when the first instance is created, and never linked, it replaces nothing: its symbols stay
 *   out of the global scope, the harness's references keep binding to the C library, and the
 *   backend calls tcmalloc only through the tc_* and MallocExtension_* functions it looked up
 *   with dlsym. (Measured here: even RTLD_GLOBAL leaves malloc to glibc, which comes first in
 *   the global lookup order; LD_PRELOAD does take it over.) tests/alloc/test_isolation checks
 *   that malloc still resolves to the C library and that its blocks are not tcmalloc's.
 *
 *   The program break: tcmalloc grows its heap with sbrk by default, which would interleave its
 *   memory with glibc's main heap (glibc then counts the foreign pieces as its own system
 *   memory). The backend sets TCMALLOC_SKIP_SBRK=1 before loading the library (unless it is
 *   already set), so that tcmalloc maps its memory with mmap. tcmalloc still moves the break
 *   by about 9 MiB while its library initialises (its static constructors run before it reads
 *   that flag); glibc later counts that piece as its own (mallinfo2 arena, "foreign sbrk") once
 *   its heap grows past it, one more reason why the libc backend counts the break from its own
 *   create on.
 *
 *   The library is loaded once per process and never unloaded; `lib=` can name another one,
 *   e.g. the full libtcmalloc.so.4 (heap profiler and checker compiled in), but not a second one
 *   in the same process.
 *
 * Instances
 *   tcmalloc has one heap per process: instances cannot be told apart. destroy cannot free the
 *   blocks an instance left (as libc), and returns tcmalloc's free pages to the system
 *   (MallocExtension_ReleaseFreeMemory), so that the next instance starts lean.
 *   Frees are sized (tc_free_sized) when the size gives the block's size class: not for size 0,
 *   aligned blocks (tc_memalign picks a class by alignment), nor blocks a realloc left in
 *   another class (tcmalloc keeps a block that shrinks by less than half, and grows one to at
 *   least 5/4 of its old size): those are kept in a pointer set and freed with tc_free. sized=check verifies every sized free against
 *   tcmalloc's own size lookup and counts mismatches (the statistics text shows them).
 *
 * Footprint: tcmalloc's own accounting
 *   footprint = generic.heap_size - tcmalloc.pageheap_unmapped_bytes: bytes tcmalloc obtained
 *   from the system for its page heap and did not give back (its metadata is not included). The
 *   library serves nothing but this backend, so the whole count is the replay's: it includes
 *   tcmalloc's own start (a 1 MiB page heap) and what earlier instances of the process left
 *   (destroy gives back tcmalloc's free pages); concurrent instances share it. The peak is
 *   sampled (fpoll.h).
 */
#include "fpoll.h"
#include "hr_alloc.h"
#include "ptrset.h"

#include <dlfcn.h>
#include <gperftools/malloc_extension_c.h>
#include <gperftools/nallocx.h>
#include <gperftools/tcmalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define TC_LSAN 1
#endif

#ifndef HR_TCMALLOC_LIB
#define HR_TCMALLOC_LIB "libtcmalloc_minimal.so.4"
#endif

/* The library, loaded once per process; function types from gperftools' headers. */
static struct tc_api {
    void *dl;
    char lib[256];
    __typeof__(&tc_malloc) malloc;
    __typeof__(&tc_calloc) calloc;
    __typeof__(&tc_realloc) realloc;
    __typeof__(&tc_free) free;
    __typeof__(&tc_free_sized) free_sized;
    __typeof__(&tc_memalign) memalign;
    __typeof__(&tc_nallocx) nallocx;
    __typeof__(&tc_malloc_size) malloc_size;
    __typeof__(&tc_version) version;
    __typeof__(&MallocExtension_GetNumericProperty) get_property;
    __typeof__(&MallocExtension_GetStats) get_stats;
    __typeof__(&MallocExtension_ReleaseFreeMemory) release_free_memory;
} tc;

enum { TC_SIZED_ON, TC_SIZED_OFF, TC_SIZED_CHECK };

typedef struct tcm {
    int sized;            /* TC_SIZED_* */
    hr_fpoll_t poll;
    hr_ptrset_t unsized;  /* blocks whose size does not give their class: freed with tc_free */
    uint64_t checked, mismatches; /* sized=check */
} tcm_t;

static const hr_param_desc_t tcm_params[] = {
    {"lib", "path or soname", "libtcmalloc to load (default " HR_TCMALLOC_LIB ")"},
    {"sized", "on|off|check", "sized frees where the size gives the class (on), never, or verified"},
    {"poll", "calls", "allocating calls between two reads of the statistics (65536)"},
    {NULL, NULL, NULL}};

static int tc_sym(const char *name, void *out, hr_err_t *err)
{
    void *p = dlsym(tc.dl, name);
    if (!p)
        return hr_err_set(err, HR_EINTERNAL, "tcmalloc: %s lacks %s", tc.lib, name);
    memcpy(out, &p, sizeof p);
    return HR_OK;
}

static int tc_load(const char *lib, hr_err_t *err)
{
    if (tc.dl) {
        if (strcmp(lib, tc.lib) != 0)
            return hr_err_set(err, HR_EUSAGE,
                              "tcmalloc: this process already loaded %s; one tcmalloc library "
                              "per process (lib=%s refused)", tc.lib, lib);
        return HR_OK;
    }
    setenv("TCMALLOC_SKIP_SBRK", "1", 0); /* keep tcmalloc off glibc's program break */
#ifdef TC_LSAN
    /* tcmalloc's initialisation allocates a few objects with operator new (the sanitizer's) and
     * keeps them where LeakSanitizer does not look: not leaks. */
    __lsan_disable();
#endif
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
#ifdef TC_LSAN
    __lsan_enable();
#endif
    if (!dl) {
        const char *why = dlerror();
        return hr_err_set(err, HR_EUSAGE, "tcmalloc: cannot load %s: %s", lib,
                          why ? why : "unknown error");
    }
    tc.dl = dl;
    snprintf(tc.lib, sizeof tc.lib, "%s", lib);
    int rc = tc_sym("tc_malloc", &tc.malloc, err);
    if (!rc)
        rc = tc_sym("tc_calloc", &tc.calloc, err);
    if (!rc)
        rc = tc_sym("tc_realloc", &tc.realloc, err);
    if (!rc)
        rc = tc_sym("tc_free", &tc.free, err);
    if (!rc)
        rc = tc_sym("tc_free_sized", &tc.free_sized, err);
    if (!rc)
        rc = tc_sym("tc_memalign", &tc.memalign, err);
    if (!rc)
        rc = tc_sym("tc_nallocx", &tc.nallocx, err);
    if (!rc)
        rc = tc_sym("tc_malloc_size", &tc.malloc_size, err);
    if (!rc)
        rc = tc_sym("tc_version", &tc.version, err);
    if (!rc)
        rc = tc_sym("MallocExtension_GetNumericProperty", &tc.get_property, err);
    if (!rc)
        rc = tc_sym("MallocExtension_GetStats", &tc.get_stats, err);
    if (!rc)
        rc = tc_sym("MallocExtension_ReleaseFreeMemory", &tc.release_free_memory, err);
    if (rc) /* the handle is leaked: the library's constructors ran, unloading is not worth it */
        memset(&tc, 0, sizeof tc);
    return rc;
}

static uint64_t tc_mapped(void)
{
    size_t heap = 0, unmapped = 0;
    tc.get_property("generic.heap_size", &heap);
    tc.get_property("tcmalloc.pageheap_unmapped_bytes", &unmapped);
    return heap > unmapped ? heap - unmapped : 0;
}

static void tcm_poll(tcm_t *t)
{
    hr_fpoll_note(&t->poll, tc_mapped());
}

static int tcm_create(void **out, hr_spec_t *spec, hr_err_t *err)
{
    const char *lib = hr_spec_get(spec, "lib");
    const char *sized = hr_spec_get(spec, "sized");
    const char *poll = hr_spec_get(spec, "poll");
    int mode = TC_SIZED_ON;
    if (sized && strcmp(sized, "off") == 0)
        mode = TC_SIZED_OFF;
    else if (sized && strcmp(sized, "check") == 0)
        mode = TC_SIZED_CHECK;
    else if (sized && strcmp(sized, "on") != 0)
        return hr_err_set(err, HR_EUSAGE, "tcmalloc: sized=%s must be on, off or check", sized);
    uint32_t period = HR_FPOLL_PERIOD;
    if (hr_fpoll_parse("tcmalloc", poll, &period, err))
        return HR_EUSAGE;
    int rc = tc_load(lib ? lib : HR_TCMALLOC_LIB, err);
    if (rc)
        return rc;
    tcm_t *t = calloc(1, sizeof *t);
    if (!t)
        return hr_err_set(err, HR_ENOMEM, "tcmalloc: out of memory");
    t->sized = mode;
    hr_fpoll_init(&t->poll, period);
    *out = t;
    return HR_OK;
}

static void tcm_destroy(void *ctx)
{
    tcm_t *t = ctx;
    if (!t)
        return;
    hr_ptrset_free(&t->unsized);
    free(t);
    tc.release_free_memory();
}

static void *tcm_malloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    tcm_t *t = ctx;
    void *p = tc.malloc(size);
    if (HR_UNLIKELY(p && hr_fpoll_alloc(&t->poll, size)))
        tcm_poll(t);
    return p;
}

static void *tcm_calloc(void *ctx, size_t size, hr_domain_t d)
{
    (void)d;
    tcm_t *t = ctx;
    void *p = tc.calloc(1, size);
    if (HR_UNLIKELY(p && hr_fpoll_alloc(&t->poll, size)))
        tcm_poll(t);
    return p;
}

static void *tcm_realloc(void *ctx, void *p, size_t old, size_t size, hr_domain_t d)
{
    (void)d;
    tcm_t *t = ctx;
    size_t n = size ? size : 1; /* tc_realloc(p, 0) frees p */
    void *q = tc.realloc(p, n);
    if (HR_UNLIKELY(!q))
        return NULL;
    int was_unsized = t->unsized.n && hr_ptrset_del(&t->unsized, p);
    /* tcmalloc keeps a block that shrinks by less than half, and grows one by at least a
     * quarter: either way its class may not be the one its new size gives */
    if (was_unsized || tc.malloc_size(q) != tc.nallocx(n, 0))
        hr_ptrset_add(&t->unsized, q, n);
    if (HR_UNLIKELY(hr_fpoll_resize(&t->poll, old, size)))
        tcm_poll(t);
    return q;
}

static void tcm_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    (void)d;
    tcm_t *t = ctx;
    hr_fpoll_free(&t->poll, size);
    if (HR_UNLIKELY(size == 0 || t->sized == TC_SIZED_OFF ||
                    (t->unsized.n && hr_ptrset_del(&t->unsized, p)))) {
        tc.free(p);
        return;
    }
    if (HR_UNLIKELY(t->sized == TC_SIZED_CHECK)) {
        t->checked++;
        if (tc.malloc_size(p) != tc.nallocx(size, 0)) {
            t->mismatches++;
            tc.free(p);
            return;
        }
    }
    tc.free_sized(p, size);
}

static void *tcm_aligned(void *ctx, size_t align, size_t size, hr_domain_t d)
{
    (void)d;
    tcm_t *t = ctx;
    void *p = tc.memalign(align, size);
    if (!p)
        return NULL;
    if (hr_ptrset_add(&t->unsized, p, size) != 0) {
        tc.free(p);
        return NULL;
    }
    if (HR_UNLIKELY(hr_fpoll_alloc(&t->poll, size)))
        tcm_poll(t);
    return p;
}

static void tcm_stats(void *ctx, hr_alloc_stats_t *st)
{
    tcm_t *t = ctx;
    st->footprint = tc_mapped();
    hr_fpoll_note(&t->poll, st->footprint);
    st->peak_footprint = t->poll.peak;
}

static int tcm_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    tcm_t *t = ctx;
    int major = 0, minor = 0;
    const char *patch = "";
    const char *v = tc.version(&major, &minor, &patch);
    int rc = hr_buf_printf(out,
                           "%s (%s, dlopen RTLD_LOCAL); footprint = heap_size - "
                           "pageheap_unmapped_bytes, peak sampled by %llu polls; sized frees %s",
                           v ? v : "tcmalloc", tc.lib,
                           (unsigned long long)t->poll.polls,
                           t->sized == TC_SIZED_OFF ? "off" : t->sized == TC_SIZED_ON ? "on"
                                                                                      : "checked");
    if (t->sized == TC_SIZED_CHECK)
        rc |= hr_buf_printf(out, ": %llu checked, %llu mismatches",
                            (unsigned long long)t->checked, (unsigned long long)t->mismatches);
    rc |= hr_buf_putc(out, '\n');
    enum { CAP = 1 << 16 };
    char *text = calloc(1, CAP);
    if (text) {
        tc.get_stats(text, CAP);
        rc |= hr_buf_append(out, text, strlen(text));
        free(text);
    }
    if (rc || !text)
        return hr_err_set(err, HR_ENOMEM, "tcmalloc: out of memory for the statistics text");
    return HR_OK;
}

const hr_alloc_vt hr_alloc_tcmalloc_vt = {
    .name = "tcmalloc",
    .summary = "gperftools tcmalloc (" HR_TCMALLOC_LIB ", dlopen RTLD_LOCAL: the harness's malloc "
               "stays glibc's; one heap per process); footprint: heap_size - "
               "pageheap_unmapped_bytes",
    .params = tcm_params,
    .create = tcm_create,
    .destroy = tcm_destroy,
    .malloc = tcm_malloc,
    .calloc = tcm_calloc,
    .realloc = tcm_realloc,
    .free = tcm_free,
    .aligned_alloc = tcm_aligned,
    .stats = tcm_stats,
    .stats_text = tcm_stats_text,
    .flags = HR_ALLOC_F_SMALL_ALIGN8,
};

/* test_registry.c: the allocator registry, spec errors, `heapreplay allocators` text, counters. */
#include "hr_alloc.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static int contains(const hr_buf_t *b, const char *s)
{
    return b->len && strstr((const char *)b->data, s) != NULL;
}

int main(void)
{
    hr_err_t err = {0, {0}};
    TAP_OK(hr_alloc_registry_check(&err) == HR_OK, "registry is consistent (%s)", err.msg);

    size_t n = 0;
    for (const hr_alloc_vt *const *v = hr_alloc_registry(); *v; v++, n++) {
        TAP_OK(hr_alloc_by_name((*v)->name) == *v, "lookup of '%s' finds it", (*v)->name);
        for (const hr_alloc_vt *const *w = v + 1; *w; w++)
            TAP_OK(strcmp((*v)->name, (*w)->name) != 0, "'%s' and '%s' differ", (*v)->name,
                   (*w)->name);
    }
    TAP_OK(n >= 3, "at least null, libc and pymalloc are built in (%zu)", n);
    TAP_OK(hr_alloc_by_name("null") && hr_alloc_by_name("libc") && hr_alloc_by_name("pymalloc"),
           "null, libc, pymalloc registered");
    TAP_OK(hr_alloc_by_name("nope") == NULL, "unknown name not found");

    hr_alloc_t *a = NULL;
    hr_err_clear(&err);
    int rc = hr_alloc_create(&a, "nope:x=1", &err);
    TAP_OK(rc == HR_EUSAGE && !a, "unknown allocator is a usage error");
    TAP_OK(strstr(err.msg, "'nope'") && strstr(err.msg, "null") && strstr(err.msg, "pymalloc"),
           "message names it and lists what exists: %s", err.msg);

    hr_err_clear(&err);
    rc = hr_alloc_create(&a, "pymalloc:bogus=1", &err);
    TAP_OK(rc == HR_EUSAGE && !a, "unknown parameter is a usage error");
    TAP_OK(strstr(err.msg, "bogus") && strstr(err.msg, "preset") && strstr(err.msg, "release"),
           "message names the parameter and lists the known ones: %s", err.msg);

    hr_err_clear(&err);
    rc = hr_alloc_create(&a, "libc:fast", &err);
    TAP_OK(rc == HR_EUSAGE && strstr(err.msg, "fast") && strstr(err.msg, "none"),
           "positional value rejected: %s", err.msg);

    hr_err_clear(&err);
    rc = hr_alloc_create(&a, "pymalloc:preset=9.9", &err);
    TAP_OK(rc == HR_EUSAGE && strstr(err.msg, "9.9") && strstr(err.msg, "3.11"),
           "unknown preset: %s", err.msg);

    static const char *const bad[] = {
        "pymalloc:align=4", "pymalloc:threshold=600", "pymalloc:threshold=100,align=16",
        "pymalloc:pool=3K", "pymalloc:pool=512K,arena=1M", "pymalloc:release=sometimes",
        "pymalloc:order=global", "pymalloc:placement=moon", "pymalloc:radix=32",
        "pymalloc:pool=1K,threshold=512",
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        hr_err_clear(&err);
        rc = hr_alloc_create(&a, bad[i], &err);
        TAP_OK(rc == HR_EUSAGE && !a && strstr(err.msg, "pymalloc"), "'%s' rejected: %s", bad[i],
               err.msg);
    }

    /* Range errors say the range, whatever the value's fault: 1T is a power of two (and a
     * suffix the size parser does not read); it is too large. */
    static const struct { const char *spec, *msg; } ranged[] = {
        {"pymalloc:arena=1T", "pymalloc: arena=1T must be a power of two in 64K..1G"},
        {"pymalloc:arena=2G", "pymalloc: arena=2G must be a power of two in 64K..1G"},
        {"pymalloc:arena=96K", "pymalloc: arena=96K must be a power of two in 64K..1G"},
        {"pymalloc:pool=512", "pymalloc: pool=512 must be a power of two in 1K..256M"},
        {"cpython:arena=1T", "cpython: arena=1T must be a power of two in 16K..1G"},
        {"jemalloc:poll=4294967296", "jemalloc: poll=4294967296 must be a count of calls 1..4294967295"},
        {"jemalloc:decay=99999999999999999999", "jemalloc: decay=99999999999999999999 must be"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(ranged); i++) {
        hr_err_clear(&err);
        rc = hr_alloc_create(&a, ranged[i].spec, &err);
        TAP_OK(rc == HR_EUSAGE && !a && strstr(err.msg, ranged[i].msg), "'%s' rejected: %s",
               ranged[i].spec, err.msg);
    }

    static const char *const good[] = {
        "pymalloc", "pymalloc:preset=2.4", "pymalloc:preset=2.5", "pymalloc:preset=3.8",
        "pymalloc:preset=3.9", "pymalloc:preset=3.10", "pymalloc:preset=3.11",
        "pymalloc:preset=3.12", "pymalloc:preset=3.13",
        "pymalloc:arena=256K,pool=4K,align=8,threshold=256,release=never",
        "pymalloc:preset=3.11,release=empty,placement=aligned,radix=none,zero=small,large=mmap",
        "pymalloc:preset=2.4,order=sorted", "null", "libc",
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(good); i++) {
        hr_err_clear(&err);
        rc = hr_alloc_create(&a, good[i], &err);
        TAP_OK(rc == HR_OK && a && strcmp(a->spec, good[i]) == 0, "'%s' created (%s)", good[i],
               err.msg);
        hr_alloc_destroy(a);
        a = NULL;
    }

    /* The external allocators: built when their meson feature found the library, and then
     * registered; their parameters checked like pymalloc's. */
    static const struct {
        const char *name;
        int built;
        const char *const bad[5];
        const char *const good[4];
    } ext[] = {
        {"jemalloc",
#ifdef HR_HAVE_JEMALLOC
         1,
#else
         0,
#endif
         {"jemalloc:path=slow", "jemalloc:decay=soon", "jemalloc:sized=maybe", "jemalloc:poll=0",
          "jemalloc:lib=x"},
         {"jemalloc:path=flags", "jemalloc:decay=-1,poll=1000", "jemalloc:sized=off", NULL}},
        {"mimalloc",
#ifdef HR_HAVE_MIMALLOC
         1,
#else
         0,
#endif
         {"mimalloc:commit=sometimes", "mimalloc:poll=x", "mimalloc:lib=/nonexistent/libmimalloc.so",
          "mimalloc:sized=on", NULL},
         {"mimalloc:poll=1000", NULL, NULL, NULL}},
        {"tcmalloc",
#ifdef HR_HAVE_TCMALLOC
         1,
#else
         0,
#endif
         {"tcmalloc:sized=maybe", "tcmalloc:poll=0", "tcmalloc:lib=/nonexistent/libtcmalloc.so",
          "tcmalloc:decay=1", NULL},
         {"tcmalloc:sized=check", "tcmalloc:sized=off,poll=10", NULL, NULL}},
    };
    for (size_t k = 0; k < HR_ARRAY_LEN(ext); k++) {
        const hr_alloc_vt *vt = hr_alloc_by_name(ext[k].name);
        TAP_OK(!vt == !ext[k].built, "%s is %s", ext[k].name,
               ext[k].built ? "built and registered" : "not built (meson feature), not registered");
        if (!vt)
            continue;
        TAP_OK(vt->params && vt->aligned_alloc && vt->stats && vt->stats_text,
               "%s has parameters, an aligned slot, statistics and a statistics text",
               ext[k].name);
        for (size_t i = 0; i < HR_ARRAY_LEN(ext[k].bad) && ext[k].bad[i]; i++) {
            hr_err_clear(&err);
            rc = hr_alloc_create(&a, ext[k].bad[i], &err);
            TAP_OK(rc == HR_EUSAGE && !a && strstr(err.msg, ext[k].name), "'%s' rejected: %s",
                   ext[k].bad[i], err.msg);
        }
        for (size_t i = 0; i < HR_ARRAY_LEN(ext[k].good) && ext[k].good[i]; i++) {
            hr_err_clear(&err);
            rc = hr_alloc_create(&a, ext[k].good[i], &err);
            TAP_OK(rc == HR_OK && a, "'%s' created (%s)", ext[k].good[i], err.msg);
            hr_alloc_destroy(a);
            a = NULL;
        }
    }

    /* The generic counters. */
    hr_err_clear(&err);
    rc = hr_alloc_create(&a, "pymalloc", &err);
    TAP_OK(rc == HR_OK, "pymalloc created");
    void *p = hr_alloc_malloc(a, 10, HR_DOMAIN_OBJ);
    void *q = hr_alloc_calloc(a, 20, HR_DOMAIN_MEM);
    p = hr_alloc_realloc(a, p, 10, 30, HR_DOMAIN_OBJ);
    void *r = hr_alloc_realloc(a, NULL, 0, 1000, HR_DOMAIN_OBJ);
    TAP_OK(p && q && r, "allocations succeed");
    TAP_OK(a->st.requests == 4 && a->st.bytes_requested == 1060, "requests %llu, bytes %llu",
           (unsigned long long)a->st.requests, (unsigned long long)a->st.bytes_requested);
    TAP_OK(a->st.bytes_in_use == 1050 && a->st.peak_bytes_in_use == 1050, "in use %llu",
           (unsigned long long)a->st.bytes_in_use);
    hr_alloc_free(a, p, 30, HR_DOMAIN_OBJ);
    hr_alloc_free(a, q, 20, HR_DOMAIN_MEM);
    hr_alloc_free(a, r, 1000, HR_DOMAIN_OBJ);
    hr_alloc_free(a, NULL, 0, HR_DOMAIN_OBJ);
    hr_alloc_stats_t st;
    hr_alloc_get_stats(a, &st);
    TAP_OK(st.frees == 4 && st.bytes_in_use == 0 && st.peak_bytes_in_use == 1050,
           "after frees: frees %llu, in use %llu", (unsigned long long)st.frees,
           (unsigned long long)st.bytes_in_use);
    TAP_OK(st.arenas == 1 && st.arenas_allocated == 1 && st.large_requests == 1 &&
               st.footprint == (1u << 20) && st.peak_footprint == (1u << 20) + 1000,
           "backend stats: arenas %llu, large %llu, footprint %llu, peak %llu",
           (unsigned long long)st.arenas, (unsigned long long)st.large_requests,
           (unsigned long long)st.footprint, (unsigned long long)st.peak_footprint);
    hr_buf_t text;
    hr_buf_init(&text);
    TAP_OK(hr_alloc_stats_text(a, &text, &err) == HR_OK &&
               contains(&text, "Small block threshold = 512, in 32 size classes."),
           "stats text starts as CPython's");
    hr_buf_free(&text);
    hr_alloc_destroy(a);
    hr_alloc_destroy(NULL);

    hr_buf_t d;
    hr_buf_init(&d);
    TAP_OK(hr_alloc_describe(&d) == HR_OK, "describe");
    for (const hr_alloc_vt *const *v = hr_alloc_registry(); *v; v++)
        TAP_OK(contains(&d, (*v)->name) && contains(&d, (*v)->summary), "describe lists '%s'",
               (*v)->name);
    TAP_OK(contains(&d, "presets") && contains(&d, "3.11") && contains(&d, "bpo-37257") &&
               contains(&d, "placement"),
           "describe shows parameters and presets");
    hr_buf_free(&d);
    return tap_done();
}

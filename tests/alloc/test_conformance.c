/* test_conformance.c: every registered allocator through the same checks. */
#include "hr_alloc.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rnd_size(void)
{
    switch (rnd() % 10) {
    case 0: return 0;
    case 1: return 513 + rnd() % 4000;
    case 2: return 1 + rnd() % 100000;
    default: return 1 + rnd() % 512;
    }
}

typedef struct blk {
    unsigned char *p;
    size_t size;
    unsigned char tag;
    hr_domain_t dom;
} blk_t;

static void fill(blk_t *b)
{
    if (b->size)
        memset(b->p, b->tag, b->size);
}

static int check(const blk_t *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->p[i] != b->tag)
            return 0;
    return 1;
}

static int cmp_blk(const void *x, const void *y)
{
    const blk_t *a = x, *b = y;
    return a->p < b->p ? -1 : a->p > b->p;
}

static void run(const hr_alloc_vt *vt, const char *spec)
{
    hr_err_t err = {0, {0}};
    hr_alloc_t *a = NULL;
    int rc = hr_alloc_create(&a, spec, &err);
    if (!TAP_OK(rc == HR_OK, "%s: created (%s)", spec, err.msg))
        return;
    int shared = (vt->flags & HR_ALLOC_F_SHARED_BLOCKS) != 0;
    size_t align_min = strstr(spec, "align=8") ? 8 : 16;
    int small8 = (vt->flags & HR_ALLOC_F_SMALL_ALIGN8) != 0; /* sizes <= 8: 8 is enough */

    /* 1. Alignment and writability over every size range, in every domain. */
    static const size_t sizes[] = {0,   1,   7,   8,   15,   16,    17,      24,       31,
                                   32,  33,  48,  64,  100,  256,   500,     511,      512,
                                   513, 1000, 4095, 4096, 65536, 262144, 1 << 20, 3 << 20};
    int aligned_ok = 1, write_ok = 1;
    for (int d = 0; d < HR_DOMAIN_COUNT; d++)
        for (size_t i = 0; i < HR_ARRAY_LEN(sizes); i++) {
            unsigned char *p = hr_alloc_malloc(a, sizes[i], (hr_domain_t)d);
            if (!p) {
                write_ok = 0;
                continue;
            }
            if ((uintptr_t)p % (small8 && sizes[i] <= 8 ? 8 : align_min))
                aligned_ok = 0;
            if (sizes[i]) {
                memset(p, 0x5a, sizes[i]);
                if (p[0] != 0x5a || p[sizes[i] - 1] != 0x5a)
                    write_ok = 0;
            }
            hr_alloc_free(a, p, sizes[i], (hr_domain_t)d);
        }
    TAP_OK(aligned_ok, "%s: every block aligned to %zu%s", spec, align_min,
           small8 ? " (8 for requests of at most 8 bytes)" : "");
    TAP_OK(write_ok, "%s: every block allocated and writable for its size", spec);

    /* 2. No overlap between live blocks, contents intact under a random mix. */
    enum { N = 3000, OPS = 30000 };
    blk_t *live = calloc(N, sizeof *live);
    size_t nlive = 0;
    int intact = 1, realloc_ok = 1, calloc_ok = 1, alloc_ok = 1;
    for (int op = 0; op < OPS; op++) {
        unsigned r = (unsigned)(rnd() % 100);
        if (nlive < N && (r < 45 || nlive == 0)) {
            blk_t b = {NULL, rnd_size(), (unsigned char)(1 + rnd() % 255),
                       (hr_domain_t)(rnd() % HR_DOMAIN_COUNT)};
            int zero = r < 10;
            b.p = zero ? hr_alloc_calloc(a, b.size, b.dom) : hr_alloc_malloc(a, b.size, b.dom);
            if (!b.p) {
                alloc_ok = 0;
                continue;
            }
            if (zero)
                for (size_t i = 0; i < b.size; i++)
                    if (b.p[i]) {
                        calloc_ok = 0;
                        break;
                    }
            fill(&b);
            if (shared) { /* only the newest block is usable */
                intact &= check(&b);
                hr_alloc_free(a, b.p, b.size, b.dom);
                continue;
            }
            live[nlive++] = b;
        } else if (r < 70 && nlive) {
            size_t i = rnd() % nlive;
            blk_t *b = &live[i];
            intact &= check(b);
            size_t ns = rnd_size();
            unsigned char *q = hr_alloc_realloc(a, b->p, b->size, ns, b->dom);
            if (!q) {
                alloc_ok = 0;
                continue;
            }
            size_t keep = ns < b->size ? ns : b->size;
            for (size_t k = 0; k < keep; k++)
                if (q[k] != b->tag) {
                    realloc_ok = 0;
                    break;
                }
            b->p = q;
            b->size = ns;
            b->tag = (unsigned char)(1 + rnd() % 255);
            fill(b);
        } else if (nlive) {
            size_t i = rnd() % nlive;
            intact &= check(&live[i]);
            hr_alloc_free(a, live[i].p, live[i].size, live[i].dom);
            live[i] = live[--nlive];
        }
    }
    if (!shared) {
        for (size_t i = 0; i < nlive; i++)
            intact &= check(&live[i]);
        qsort(live, nlive, sizeof *live, cmp_blk);
        int disjoint = 1;
        for (size_t i = 1; i < nlive; i++)
            if (live[i - 1].p + live[i - 1].size > live[i].p)
                disjoint = 0;
        TAP_OK(disjoint, "%s: %zu live blocks do not overlap", spec, nlive);
    }
    TAP_OK(alloc_ok, "%s: no allocation failed in the random mix", spec);
    TAP_OK(intact, "%s: contents of live blocks intact", spec);
    TAP_OK(realloc_ok, "%s: realloc preserves the common prefix", spec);
    TAP_OK(calloc_ok, "%s: calloc returns zeroed memory", spec);

    /* 3. calloc on dirty memory: free dirty blocks of each size then calloc the same sizes. */
    int dirty_ok = 1;
    for (size_t i = 0; i < HR_ARRAY_LEN(sizes); i++) {
        unsigned char *p = hr_alloc_malloc(a, sizes[i], HR_DOMAIN_OBJ);
        if (p && sizes[i])
            memset(p, 0xa5, sizes[i]);
        if (p)
            hr_alloc_free(a, p, sizes[i], HR_DOMAIN_OBJ);
        unsigned char *z = hr_alloc_calloc(a, sizes[i], HR_DOMAIN_OBJ);
        if (!z) {
            dirty_ok = 0;
            continue;
        }
        for (size_t k = 0; k < sizes[i]; k++)
            if (z[k]) {
                dirty_ok = 0;
                break;
            }
        hr_alloc_free(a, z, sizes[i], HR_DOMAIN_OBJ);
    }
    TAP_OK(dirty_ok, "%s: calloc zeroes reused memory", spec);

    /* 4. A single block through a chain of resizes keeps its contents. */
    static const size_t chain[] = {1, 8, 16, 17, 100, 84, 85, 112, 513, 5000, 700, 511, 0, 3, 64};
    blk_t b = {hr_alloc_malloc(a, 5, HR_DOMAIN_MEM), 5, 0x11, HR_DOMAIN_MEM};
    fill(&b);
    int chain_ok = b.p != NULL;
    for (size_t i = 0; chain_ok && i < HR_ARRAY_LEN(chain); i++) {
        unsigned char *q = hr_alloc_realloc(a, b.p, b.size, chain[i], b.dom);
        if (!q) {
            chain_ok = 0;
            break;
        }
        /* a shared-blocks backend (null) keeps nothing when the block outgrows its region */
        size_t keep = shared ? 0 : chain[i] < b.size ? chain[i] : b.size;
        for (size_t k = 0; k < keep; k++)
            if (q[k] != b.tag)
                chain_ok = 0;
        b.p = q;
        b.size = chain[i];
        b.tag++;
        fill(&b);
    }
    TAP_OK(chain_ok, "%s: realloc chain %s", spec,
           shared ? "gives writable blocks (shared blocks: contents not kept)" : "keeps contents");
    if (b.p)
        hr_alloc_free(a, b.p, b.size, b.dom);

    /* 5. Aligned allocation where offered. */
    if (vt->aligned_alloc) {
        int al_ok = 1;
        static const size_t aligns[] = {32, 64, 256, 4096, 65536};
        for (size_t i = 0; i < HR_ARRAY_LEN(aligns); i++) {
            unsigned char *p = hr_alloc_aligned(a, aligns[i], 100 + i, HR_DOMAIN_NATIVE);
            if (!p || (uintptr_t)p % aligns[i]) {
                al_ok = 0;
                continue;
            }
            memset(p, 1, 100 + i);
            hr_alloc_free(a, p, 100 + i, HR_DOMAIN_NATIVE);
        }
        TAP_OK(al_ok, "%s: aligned_alloc honours 32..64K", spec);
    } else {
        TAP_OK(hr_alloc_aligned(a, 64, 10, HR_DOMAIN_NATIVE) == NULL,
               "%s: no aligned slot: the wrapper returns NULL", spec);
    }

    /* 6. Free everything: the counters come back. */
    for (size_t i = 0; i < nlive; i++)
        hr_alloc_free(a, live[i].p, live[i].size, live[i].dom);
    free(live);
    hr_alloc_stats_t st;
    hr_alloc_get_stats(a, &st);
    TAP_OK(st.bytes_in_use == 0, "%s: bytes_in_use back to 0 (%llu)", spec,
           (unsigned long long)st.bytes_in_use);
    TAP_OK(st.requests > 0 && st.frees > 0 && st.peak_bytes_in_use > 0 &&
               st.bytes_requested >= st.peak_bytes_in_use,
           "%s: requests %llu, frees %llu, peak %llu", spec, (unsigned long long)st.requests,
           (unsigned long long)st.frees, (unsigned long long)st.peak_bytes_in_use);
    TAP_OK(st.peak_footprint >= st.footprint && st.peak_arenas >= st.arenas &&
               st.arenas_allocated - st.arenas_released == st.arenas,
           "%s: backend stats consistent (footprint %llu <= peak %llu, arenas %llu)", spec,
           (unsigned long long)st.footprint, (unsigned long long)st.peak_footprint,
           (unsigned long long)st.arenas);
    /* At its peak the footprint (the allocator's own accounting) holds at least the live bytes
     * at theirs; sampled peaks lag by at most 1/32 of them plus 256 KiB. */
    if (!shared) {
#ifdef ASAN
        if (strcmp(vt->name, "libc") == 0)
            tap_skip("AddressSanitizer's allocator stands in for glibc's",
                     "%s: peak footprint covers the peak live bytes", spec);
        else
#endif
            TAP_OK(st.peak_footprint >= st.peak_bytes_in_use / 4 * 3,
                   "%s: peak footprint %llu covers the peak live bytes %llu", spec,
                   (unsigned long long)st.peak_footprint,
                   (unsigned long long)st.peak_bytes_in_use);
    }
    if (vt->stats_text) {
        hr_buf_t t;
        hr_buf_init(&t);
        rc = hr_alloc_stats_text(a, &t, &err);
        TAP_OK(rc == HR_OK && t.len > 0, "%s: statistics text (%zu bytes)", spec, t.len);
        if (strstr(spec, "sized=check")) {
            /* every sized free was verified against the allocator's own size lookup */
            const char *c = t.len ? strstr((const char *)t.data, " checked, ") : NULL;
            unsigned long long checked = 0, bad = 1;
            while (c && c > (const char *)t.data && c[-1] >= '0' && c[-1] <= '9')
                c--;
            if (c)
                sscanf(c, "%llu checked, %llu mismatches", &checked, &bad);
            TAP_OK(checked > 1000 && bad == 0,
                   "%s: %llu sized frees verified, %llu of them with a size of another class",
                   spec, checked, bad);
        }
        hr_buf_free(&t);
    }
    if (strncmp(spec, "pymalloc", 8) == 0 || strncmp(spec, "cpython", 7) == 0)
        TAP_OK(st.pools_used == 0 && st.footprint <= st.arenas * ((uint64_t)1 << 20),
               "%s: no pool in use and no large bytes left (pools %llu)", spec,
               (unsigned long long)st.pools_used);
    hr_alloc_destroy(a);
}

/* The same checks on other structures and parameters of a backend. */
static const struct {
    const char *name;
    const char *const variants[9];
} more[] = {
    {"pymalloc",
     {"pymalloc:preset=2.4", "pymalloc:preset=2.5", "pymalloc:preset=3.8", "pymalloc:preset=3.9",
      "pymalloc:preset=3.10", "pymalloc:placement=aligned,zero=small,large=mmap",
      "pymalloc:align=8,threshold=256,release=empty", "pymalloc:release=never,placement=malloc",
      NULL}},
    {"jemalloc",
     {"jemalloc:sized=check", "jemalloc:path=flags", "jemalloc:path=flags,sized=check",
      "jemalloc:decay=0", "jemalloc:sized=off,poll=1", NULL}},
    {"tcmalloc", {"tcmalloc:sized=check", "tcmalloc:sized=off,poll=1", NULL}},
    {"mimalloc", {"mimalloc:poll=1", "mimalloc:commit=lazy", NULL}},
};

/* Two jemalloc instances alive at once: the second cannot have the thread's binding, takes the
 * explicit path, and each keeps its own arena (and footprint). */
static void two_jemallocs(void)
{
    hr_err_t err = {0, {0}};
    hr_alloc_t *a = NULL, *b = NULL;
    int rc = hr_alloc_create(&a, "jemalloc", &err);
    if (rc == HR_OK)
        rc = hr_alloc_create(&b, "jemalloc", &err);
    if (!TAP_OK(rc == HR_OK, "two jemalloc instances at once (%s)", err.msg)) {
        hr_alloc_destroy(a);
        return;
    }
    hr_buf_t t;
    hr_buf_init(&t);
    hr_alloc_stats_text(b, &t, &err);
    TAP_OK(t.len && strstr((const char *)t.data, "another instance holds this thread's binding"),
           "the second takes the explicit path");
    hr_buf_free(&t);
    enum { N = 2000 };
    void **pa = calloc(N, sizeof *pa), **pb = calloc(N, sizeof *pb);
    for (int i = 0; i < N; i++) {
        pa[i] = hr_alloc_malloc(a, 1000, HR_DOMAIN_OBJ);
        pb[i] = hr_alloc_malloc(b, 3000, HR_DOMAIN_OBJ);
    }
    hr_alloc_stats_t sa, sb;
    hr_alloc_get_stats(a, &sa);
    hr_alloc_get_stats(b, &sb);
    TAP_OK(sa.footprint >= N * 1000 && sa.footprint < N * 1400 && sb.footprint >= N * 3000 &&
               sb.footprint < N * 3600,
           "each has its own arena: footprints %llu and %llu for %d and %d bytes",
           (unsigned long long)sa.footprint, (unsigned long long)sb.footprint, N * 1000,
           N * 3000);
    for (int i = 0; i < N; i++) {
        hr_alloc_free(a, pa[i], 1000, HR_DOMAIN_OBJ);
        if (i % 2)
            hr_alloc_free(b, pb[i], 3000, HR_DOMAIN_OBJ);
    }
    free(pa);
    free(pb);
    hr_alloc_destroy(a); /* b's blocks are freed by its destroy (arena.<i>.destroy) */
    hr_alloc_destroy(b);
    rc = hr_alloc_create(&a, "jemalloc", &err);
    hr_buf_init(&t);
    if (rc == HR_OK)
        hr_alloc_stats_text(a, &t, &err);
    TAP_OK(rc == HR_OK && t.len && strstr((const char *)t.data, "path fast"),
           "after both are gone a new instance takes the fast path again");
    hr_buf_free(&t);
    hr_alloc_destroy(a);
}

/* Resident memory of this process, bytes. */
static size_t rss_bytes(void)
{
    unsigned long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * 4096;
}

/* null: a large calloc zeroes its block without writing every page (through the malloc + memset
 * fallback a fuzzed trace of 548 bytes once took 11 GB of RSS and 8 s). */
static void null_large_calloc(void)
{
    hr_alloc_t *a = NULL;
    hr_err_t err = {0, {0}};
    const size_t big = (size_t)512 << 20;
    int rc = hr_alloc_create(&a, "null", &err);
    unsigned char *p = rc == HR_OK ? hr_alloc_malloc(a, big, HR_DOMAIN_OBJ) : NULL;
    int zero = p != NULL;
    size_t grew = 0;
    if (p) {
        p[0] = p[big / 2] = p[big - 1] = 0xa5; /* dirty three pages of the shared region */
        size_t before = rss_bytes();
        unsigned char *z = hr_alloc_calloc(a, big, HR_DOMAIN_OBJ);
        size_t after = rss_bytes();
        grew = after > before ? after - before : 0;
        zero = z && !z[0] && !z[big / 2] && !z[big - 1] && !z[4095] && !z[big - 4097];
    }
    TAP_OK(zero && grew < ((size_t)16 << 20),
           "null: calloc of 512 MiB over dirty scratch reads zero, RSS grew %zu KiB", grew >> 10);
    hr_alloc_destroy(a);
}

int main(void)
{
    for (const hr_alloc_vt *const *v = hr_alloc_registry(); *v; v++) {
        run(*v, (*v)->name);
        for (size_t k = 0; k < HR_ARRAY_LEN(more); k++)
            if (strcmp((*v)->name, more[k].name) == 0)
                for (size_t i = 0; more[k].variants[i]; i++)
                    run(*v, more[k].variants[i]);
    }
    null_large_calloc();
    if (hr_alloc_by_name("jemalloc"))
        two_jemallocs();
    if (hr_alloc_by_name("cpython")) {
        hr_alloc_t *b = NULL;
        hr_err_t err = {0, {0}};
        int rc = hr_alloc_create(&b, "cpython", &err);
        TAP_OK(rc == HR_EUSAGE && !b && strstr(err.msg, "one per process"),
               "a second cpython instance is refused: %s", err.msg);
    }
    return tap_done();
}

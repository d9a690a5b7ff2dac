/* null.c: "null", the allocator that does (almost) nothing, to measure the harness itself.
 *
 * Theory of operation
 *   Every request gets the same scratch region, grown (never shrunk) to the largest size seen,
 *   so a block is always writable for its full size, as the replay engine needs (it writes the
 *   first and last word of every block). free does nothing. The cost left is one call through
 *   the vtable and a compare: what remains of a replay under `null` is the harness's own
 *   overhead (decoding, bookkeeping, the two writes per block, hot in cache).
 *
 *   Consequences, by design (HR_ALLOC_F_SHARED_BLOCKS): live blocks overlap, and a block's
 *   contents survive only until the next request, realloc included: a realloc that needs a
 *   larger region maps a new one and copies nothing (a copy would cost time and memory in
 *   proportion to the block, what this allocator exists not to do: a 548-byte fuzzed trace that
 *   grew a block of 10 GiB once took 11 GB of RSS and 8 s here). A replaced region is kept until
 *   destroy, because pointers into it may still be handed back to free or realloc. Regions are
 *   mapped with mmap, not malloc'd: a trace with a block of many GiB costs the pages the engine
 *   writes (its first and last word), not a malloc that MALLOC_PERTURB_ or a debugging
 *   allocator would fill end to end.
 *
 * Invariant: cap >= every size returned so far; scratch is aligned to `align` (>= 64) and to a
 * page (mmap's base, or a multiple of an alignment above a page inside it).
 */
#include "hr_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct region {
    void *base; /* what mmap returned */
    size_t len; /* what was mapped */
} region_t;

typedef struct null_alloc {
    unsigned char *scratch; /* inside `cur`; NULL until the first request */
    size_t cap;             /* bytes usable at scratch */
    size_t align;           /* alignment of scratch */
    size_t page;            /* the system's page size */
    region_t cur;           /* owned: the mapping scratch lies in */
    region_t *retired;      /* owned: earlier mappings, unmapped at destroy */
    size_t nretired, retired_cap;
    uint64_t footprint;     /* bytes held: scratch + retired */
} null_alloc_t;

/* Replace the scratch region by one of at least `size` bytes aligned to `align`; the old one
 * is retired (kept readable until destroy). */
static int null_grow(null_alloc_t *n, size_t size, size_t align)
{
    size_t cap = n->cap ? n->cap : 4096;
    while (cap < size) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    if (align < n->align)
        align = n->align;
    if (n->scratch && n->nretired == n->retired_cap) {
        size_t rc = n->retired_cap ? n->retired_cap * 2 : 8;
        region_t *r = realloc(n->retired, rc * sizeof *r);
        if (!r)
            return -1;
        n->retired = r;
        n->retired_cap = rc;
    }
    /* mmap aligns to a page; a larger alignment maps that much more and starts inside */
    size_t extra = align > 4096 ? align : 0;
    if (cap > SIZE_MAX - extra)
        return -1;
    region_t g = {NULL, cap + extra};
    g.base = mmap(NULL, g.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    if (g.base == MAP_FAILED)
        return -1;
    unsigned char *p = (unsigned char *)(((uintptr_t)g.base + align - 1) & ~(uintptr_t)(align - 1));
    if (n->scratch)
        n->retired[n->nretired++] = n->cur;
    n->cur = g;
    n->scratch = p;
    n->cap = cap;
    n->align = align;
    n->footprint += cap;
    return 0;
}

static int null_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec;
    null_alloc_t *n = calloc(1, sizeof *n);
    if (!n)
        return hr_err_set(err, HR_ENOMEM, "null: out of memory");
    n->align = 64;
    long pg = sysconf(_SC_PAGESIZE);
    n->page = pg > 0 ? (size_t)pg : 4096;
    *ctx = n;
    return HR_OK;
}

static void null_destroy(void *ctx)
{
    null_alloc_t *n = ctx;
    if (!n)
        return;
    for (size_t i = 0; i < n->nretired; i++)
        munmap(n->retired[i].base, n->retired[i].len);
    free(n->retired);
    if (n->scratch)
        munmap(n->cur.base, n->cur.len);
    free(n);
}

static void *null_malloc(void *ctx, size_t size, hr_domain_t domain)
{
    null_alloc_t *n = ctx;
    (void)domain;
    if (HR_UNLIKELY(size > n->cap || !n->scratch) && null_grow(n, size, n->align) != 0)
        return NULL;
    return n->scratch;
}

/* calloc: the block zeroed without touching it when it is large. A page of the scratch region
 * that MADV_DONTNEED drops reads as zero again (a private anonymous mapping) and costs nothing
 * until written, where a memset would write every page: a fuzzed trace of 548 bytes with a
 * zero-filled block of 10 GiB took 11 GB of RSS and 8 s through the malloc + memset fallback. */
static void *null_calloc(void *ctx, size_t size, hr_domain_t domain)
{
    unsigned char *p = null_malloc(ctx, size, domain);
    if (!p)
        return NULL;
    const null_alloc_t *n = ctx;
    const size_t whole = size & ~(n->page - 1); /* scratch is page-aligned */
    if (whole >= 16 * n->page && madvise(p, whole, MADV_DONTNEED) == 0) {
        memset(p + whole, 0, size - whole);
        return p;
    }
    memset(p, 0, size);
    return p;
}

static void *null_realloc(void *ctx, void *p, size_t old_size, size_t new_size,
                          hr_domain_t domain)
{
    null_alloc_t *n = ctx;
    (void)domain;
    (void)p, (void)old_size;
    if (new_size > n->cap && null_grow(n, new_size, n->align) != 0)
        return NULL;
    return n->scratch;
}

static void null_free(void *ctx, void *p, size_t size, hr_domain_t domain)
{
    (void)ctx, (void)p, (void)size, (void)domain;
}

static void *null_aligned(void *ctx, size_t align, size_t size, hr_domain_t domain)
{
    null_alloc_t *n = ctx;
    (void)domain;
    if (!align || (align & (align - 1)))
        return NULL;
    if ((size > n->cap || align > n->align || !n->scratch) &&
        null_grow(n, size, align) != 0)
        return NULL;
    return n->scratch;
}

static void null_stats(void *ctx, hr_alloc_stats_t *st)
{
    null_alloc_t *n = ctx;
    st->footprint = n->footprint;
    st->peak_footprint = n->footprint;
}

const hr_alloc_vt hr_alloc_null_vt = {
    .name = "null",
    .summary = "does nothing: one reusable scratch region for every block, free is a no-op "
               "(measures the harness)",
    .create = null_create,
    .destroy = null_destroy,
    .malloc = null_malloc,
    .calloc = null_calloc,
    .realloc = null_realloc,
    .free = null_free,
    .aligned_alloc = null_aligned,
    .stats = null_stats,
    .flags = HR_ALLOC_F_SHARED_BLOCKS,
};

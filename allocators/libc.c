/* libc.c: "libc", the C library's malloc (glibc here), called directly.
 *
 * Theory of operation
 *   Each slot calls its libc counterpart; nothing is added on the way. Two adjustments keep the
 *   vtable's meaning: realloc(p, 0) would free p in glibc, so a resize to 0 asks for 1 byte;
 *   aligned requests use posix_memalign (no size-multiple rule).
 *
 *   Footprint is glibc's own accounting, mallinfo2(): `arena` (bytes obtained with brk/sbrk in
 *   all arenas) plus `hblkhd` (bytes in mmapped chunks). It is process-wide: the harness's own
 *   allocations (trace buffers, tables) are in it too, which is why the replay engine should
 *   subtract a baseline taken before the replay. peak_footprint is the largest value seen at a
 *   stats call (glibc keeps no peak).
 *   destroy cannot free blocks the caller never freed: libc knows no per-instance set.
 */
#include "hr_alloc.h"

#include <malloc.h>
#include <stdlib.h>

typedef struct libc_alloc {
    uint64_t peak_footprint;
} libc_alloc_t;

static int libc_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec;
    libc_alloc_t *l = calloc(1, sizeof *l);
    if (!l)
        return hr_err_set(err, HR_ENOMEM, "libc: out of memory");
    *ctx = l;
    return HR_OK;
}

static void libc_destroy(void *ctx)
{
    free(ctx);
}

static void *libc_malloc(void *ctx, size_t size, hr_domain_t domain)
{
    (void)ctx, (void)domain;
    return malloc(size);
}

static void *libc_calloc(void *ctx, size_t size, hr_domain_t domain)
{
    (void)ctx, (void)domain;
    return calloc(1, size);
}

static void *libc_realloc(void *ctx, void *p, size_t old_size, size_t new_size,
                          hr_domain_t domain)
{
    (void)ctx, (void)old_size, (void)domain;
    return realloc(p, new_size ? new_size : 1);
}

static void libc_free(void *ctx, void *p, size_t size, hr_domain_t domain)
{
    (void)ctx, (void)size, (void)domain;
    free(p);
}

static void *libc_aligned(void *ctx, size_t align, size_t size, hr_domain_t domain)
{
    (void)ctx, (void)domain;
    void *p;
    if (align < sizeof(void *))
        align = sizeof(void *);
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void libc_stats(void *ctx, hr_alloc_stats_t *st)
{
    libc_alloc_t *l = ctx;
    struct mallinfo2 mi = mallinfo2();
    st->footprint = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    if (st->footprint > l->peak_footprint)
        l->peak_footprint = st->footprint;
    st->peak_footprint = l->peak_footprint;
}

const hr_alloc_vt hr_alloc_libc_vt = {
    .name = "libc",
    .summary = "the C library's malloc/calloc/realloc/free/posix_memalign (glibc); footprint "
               "from mallinfo2 (arena + hblkhd, process-wide)",
    .create = libc_create,
    .destroy = libc_destroy,
    .malloc = libc_malloc,
    .calloc = libc_calloc,
    .realloc = libc_realloc,
    .free = libc_free,
    .aligned_alloc = libc_aligned,
    .stats = libc_stats,
};

/* libc.c: "libc", the C library's malloc (glibc here), called directly.
 *
 * Theory of operation
 *   Each slot calls its libc counterpart; nothing is added on the way but the footprint count
 *   below. Two adjustments keep the vtable's meaning: realloc(p, 0) would free p in glibc, so a
 *   resize to 0 asks for 1 byte; aligned requests use posix_memalign (no size-multiple rule).
 *
 * Footprint: glibc's own accounting, without the harness's share
 *   glibc's malloc is also the harness's malloc (trace reader, collectors, tables), so its global
 *   accounting (mallinfo2: `arena`, the bytes of its heaps, + `hblkhd`, the bytes of chunks that
 *   have their own mapping) counts the harness too. In the usual case, one thread served by the
 *   main arena, the backend counts the same two quantities itself, restricted to the replay:
 *
 *     footprint = (program break now - program break at create)    the heap's growth
 *               + bytes of the mmapped chunks of this instance's blocks
 *
 *   The break is where glibc's main heap ends (main_arena.system_mem grows and shrinks with it);
 *   a chunk with its own mapping carries IS_MMAPPED (bit 1) in its size word, just before the
 *   block, and its mapping is that size (flags masked) plus the offset word before it: exactly
 *   what glibc adds to and subtracts from `hblkhd`. So the harness's own large buffers (the trace
 *   reader's frame, zstd's window: mmapped chunks) are left out, and the count is exact at every
 *   call, which gives an exact peak. The fast path reads nothing: a block inside [a heap address
 *   at create, the break last seen) is a heap chunk (mmap puts mappings outside the heap) and
 *   did not grow the heap. Any other block (a mapped chunk, or one that ends past the break:
 *   only then can the heap have grown), and every 4096 allocating calls, has its header and the
 *   break read (sbrk(0): no system call) and the peak updated. A free reads the header only
 *   while some block of the instance has a mapping of its own.
 *   create first returns the free top of the heap to the system (malloc_trim(0)), so that the
 *   baseline break holds no room the replay could use without growing the heap.
 *
 *   What remains of the harness in it: heap growth caused by the harness's own small allocations
 *   after create; and, the other way, free chunks already inside the heap at create (fordblks,
 *   shown by the statistics text), which the replay reuses without growing it. Both are small
 *   when the replay engine allocates its buffers before the allocator (see docs/allocators.md).
 *   tcmalloc moves the break when its library is loaded; loaded before create it is part of the
 *   baseline, and it is kept off the break afterwards (tcmalloc.c).
 *
 *   Fallback: when the first block does not come from the main heap (another thread's arena, or
 *   a sanitizer's allocator standing in for glibc's), the footprint is mallinfo2's arena + hblkhd
 *   minus their values at create, and its peak is sampled (fpoll.h). Under AddressSanitizer this
 *   measures ASan's allocator's use of glibc, about nothing: the libc backend there is ASan's
 *   allocator, not glibc's.
 *
 *   destroy cannot free blocks the caller never freed: libc knows no per-instance set.
 */
#include "fpoll.h"
#include "hr_alloc.h"

#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define LIBC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LIBC_ASAN 1
#endif
#endif

#define LIBC_REFRESH 4096u /* allocating calls between two reads of the break, at most */

typedef struct libc_alloc {
    int exact;            /* 1: main heap, counted by the backend; 0: mallinfo2 fallback */
    uintptr_t brk0;       /* program break at create (after malloc_trim) */
    uintptr_t brk_seen;   /* program break at the last read */
    uintptr_t lo;         /* a main-heap address at create: blocks in [lo, brk_seen) are heap chunks */
    uint64_t mmapped;     /* bytes of the own mappings of this instance's mmapped chunks */
    uint64_t peak;        /* largest footprint seen (exact mode) */
    uint32_t left;        /* allocating calls before the next read of the break */
    uint64_t base;        /* fallback: mallinfo2 arena + hblkhd at create */
    hr_fpoll_t poll;      /* fallback: the sampled peak */
    uint64_t slack0;      /* free bytes inside glibc's heaps at create (mallinfo2 fordblks) */
    uint64_t trimmed0;    /* bytes malloc_trim gave back at create (break before - after) */
} libc_alloc_t;

/* {==== Exact mode: the break and the chunks' own mappings ==== */

/* Bytes of the mapping of the chunk holding block p, 0 if it has none (glibc's chunk layout:
 * size word at p - 8 with IS_MMAPPED = 2, offset of the block into its mapping at p - 16). */
HR_INLINE uint64_t chunk_mapping(const void *p)
{
    /* through an integer: the words are glibc's, before the block the compiler knows about */
    const size_t *h = (const size_t *)((uintptr_t)p - 2 * sizeof(size_t));
    size_t size = h[1];
    return (size & 2) ? (uint64_t)(size & ~(size_t)7) + h[0] : 0;
}

static uint64_t exact_footprint(const libc_alloc_t *l, uintptr_t brk)
{
    return (brk > l->brk0 ? brk - l->brk0 : 0) + l->mmapped;
}

static void exact_note(libc_alloc_t *l)
{
    l->brk_seen = (uintptr_t)sbrk(0);
    uint64_t f = exact_footprint(l, l->brk_seen);
    if (f > l->peak)
        l->peak = f;
    l->left = LIBC_REFRESH;
}

static uint64_t fallback_footprint(const libc_alloc_t *l)
{
    struct mallinfo2 mi = mallinfo2();
    uint64_t f = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    return f > l->base ? f - l->base : 0;
}

/* After an allocating call returned block p of `size` bytes. A block in [lo, brk_seen) lies in
 * the main heap: no own mapping, and the heap has not grown for it. Anything else (a mapped
 * chunk, which mmap puts outside the heap, or a block past the break last seen) and every
 * LIBC_REFRESH calls: read its header and the break again. */
HR_INLINE void libc_count(libc_alloc_t *l, const void *p, size_t size, uint64_t old_size,
                          int resize)
{
    if (HR_LIKELY(l->exact)) {
        uintptr_t a = (uintptr_t)p;
        if (HR_UNLIKELY(a < l->lo || a + size > l->brk_seen || --l->left == 0)) {
            l->mmapped += chunk_mapping(p);
            exact_note(l);
        }
    } else if (resize ? hr_fpoll_resize(&l->poll, old_size, size)
                      : hr_fpoll_alloc(&l->poll, size)) {
        hr_fpoll_note(&l->poll, fallback_footprint(l));
    }
}

/* Before block p goes away (free, or a realloc that succeeded). */
HR_INLINE void libc_uncount(libc_alloc_t *l, const void *p)
{
    if (HR_UNLIKELY(l->mmapped)) /* only then can p have a mapping of its own */
        l->mmapped -= chunk_mapping(p);
}

/* {==== Slots ==== */

static int libc_create(void **ctx, hr_spec_t *spec, hr_err_t *err)
{
    (void)spec;
    libc_alloc_t *l = calloc(1, sizeof *l);
    if (!l)
        return hr_err_set(err, HR_ENOMEM, "libc: out of memory");
    uintptr_t before = (uintptr_t)sbrk(0);
    malloc_trim(0);
    l->brk0 = l->brk_seen = (uintptr_t)sbrk(0);
    l->trimmed0 = before > l->brk0 ? before - l->brk0 : 0;
    l->left = LIBC_REFRESH;
    l->exact = 0;
#ifndef LIBC_ASAN
    /* l itself is the probe: a main-heap chunk lies below the break and has no own mapping. */
    l->exact = (uintptr_t)l < l->brk0 && chunk_mapping(l) == 0;
#endif
    l->lo = (uintptr_t)l;
    struct mallinfo2 mi = mallinfo2();
    l->base = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    l->slack0 = mi.fordblks;
    hr_fpoll_init(&l->poll, HR_FPOLL_PERIOD);
    *ctx = l;
    return HR_OK;
}

static void libc_destroy(void *ctx)
{
    free(ctx);
}

static void *libc_malloc(void *ctx, size_t size, hr_domain_t domain)
{
    (void)domain;
    libc_alloc_t *l = ctx;
    void *p = malloc(size);
    if (HR_LIKELY(p != NULL))
        libc_count(l, p, size, 0, 0);
    return p;
}

static void *libc_calloc(void *ctx, size_t size, hr_domain_t domain)
{
    (void)domain;
    libc_alloc_t *l = ctx;
    void *p = calloc(1, size);
    if (HR_LIKELY(p != NULL))
        libc_count(l, p, size, 0, 0);
    return p;
}

static void *libc_realloc(void *ctx, void *p, size_t old_size, size_t new_size,
                          hr_domain_t domain)
{
    (void)domain;
    libc_alloc_t *l = ctx;
    uint64_t old_mapping = l->exact && l->mmapped ? chunk_mapping(p) : 0;
    void *q = realloc(p, new_size ? new_size : 1);
    if (HR_LIKELY(q != NULL)) {
        l->mmapped -= old_mapping;
        libc_count(l, q, new_size, old_size, 1);
    }
    return q;
}

static void libc_free(void *ctx, void *p, size_t size, hr_domain_t domain)
{
    (void)domain;
    libc_alloc_t *l = ctx;
    if (HR_LIKELY(l->exact))
        libc_uncount(l, p);
    else
        hr_fpoll_free(&l->poll, size);
    free(p);
}

static void *libc_aligned(void *ctx, size_t align, size_t size, hr_domain_t domain)
{
    (void)domain;
    libc_alloc_t *l = ctx;
    void *p;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    libc_count(l, p, size, 0, 0);
    return p;
}

static void libc_stats(void *ctx, hr_alloc_stats_t *st)
{
    libc_alloc_t *l = ctx;
    if (l->exact) {
        exact_note(l);
        st->footprint = exact_footprint(l, l->brk_seen);
        st->peak_footprint = l->peak;
    } else {
        st->footprint = fallback_footprint(l);
        hr_fpoll_note(&l->poll, st->footprint);
        st->peak_footprint = l->poll.peak;
    }
}

/* How the footprint was counted, then glibc's own report (malloc_info, XML). */
static int libc_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    libc_alloc_t *l = ctx;
    int rc = hr_buf_printf(out, "glibc %s malloc\n", gnu_get_libc_version());
    if (l->exact)
        rc |= hr_buf_printf(out,
                            "footprint: exact (program break growth since create + this "
                            "instance's mmapped chunks: %llu bytes now)\n",
                            (unsigned long long)l->mmapped);
    else
        rc |= hr_buf_printf(out,
                            "footprint: mallinfo2 arena + hblkhd minus %llu bytes at create, "
                            "process-wide (not the main heap: another thread's arena or a "
                            "sanitizer's allocator); peak sampled by %llu polls\n",
                            (unsigned long long)l->base, (unsigned long long)l->poll.polls);
    rc |= hr_buf_printf(out,
                        "at create: %llu bytes given back by malloc_trim, %llu free bytes left "
                        "inside the heap (reusable without growing it)\n",
                        (unsigned long long)l->trimmed0, (unsigned long long)l->slack0);
    if (l->exact) {
        struct mallinfo2 mi = mallinfo2();
        uint64_t all = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
        uint64_t mine = exact_footprint(l, (uintptr_t)sbrk(0));
        rc |= hr_buf_printf(out,
                            "for comparison, mallinfo2 arena + hblkhd grew by %lld bytes since "
                            "create: %lld more than this footprint (the harness's allocations "
                            "since create, its large buffers included)\n",
                            (long long)(all - l->base), (long long)(all - l->base - mine));
    }
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    if (f) {
        malloc_info(0, f);
        if (fclose(f) == 0)
            rc |= hr_buf_append(out, xml, len);
    }
    free(xml);
    if (!f || rc)
        return hr_err_set(err, HR_ENOMEM, "libc: out of memory for the statistics text");
    return HR_OK;
}

const hr_alloc_vt hr_alloc_libc_vt = {
    .name = "libc",
    .summary = "the C library's malloc/calloc/realloc/free/posix_memalign (glibc); footprint: "
               "growth of the main heap since create + this instance's mmapped chunks (exact, "
               "the harness's large buffers left out)",
    .create = libc_create,
    .destroy = libc_destroy,
    .malloc = libc_malloc,
    .calloc = libc_calloc,
    .realloc = libc_realloc,
    .free = libc_free,
    .aligned_alloc = libc_aligned,
    .stats = libc_stats,
    .stats_text = libc_stats_text,
};

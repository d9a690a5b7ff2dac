/* pymalloc.c: "pymalloc", our model of CPython's small-object allocator, parameterised by release.
 *
 * {==== Theory of operation ====
 *
 * This is a re-implementation, written from the documented rules (shared/reference,
 * cpython-3.11-memory.md section 1.3), of the allocator behind PyObject_Malloc / PyMem_Malloc.
 * It serves real memory and, given the same arena bases, returns the same block for every
 * request, maps and unmaps arenas at the same moments, and prints the same statistics text as
 * the CPython release named by its preset. tests/alloc/test_differential.c holds it to that
 * against the real libpython (the `cpython` backend).
 *
 * Layers
 *
 *     request of n bytes, domain mem/obj/native
 *        |  1 <= n <= threshold                      n == 0, n > threshold, domain raw
 *        v                                              v
 *     size class c = (n-1) >> align_shift            the system allocator (libc malloc, or
 *        |                                           one mmap per block with large=mmap)
 *     used[c]: circular list of pools with a free block; take the head pool's first free block
 *        |  (list empty)
 *     a fresh pool from the head arena of `usable` (order=sorted, 2.5+), or from the global
 *        |  free-pool stack / the current arena (order=global, 2.4)
 *        |  (no arena has a pool left)
 *     a new arena (arena_place.c decides where it is mapped)
 *
 * Pool states (a pool is pool_size bytes, pool-aligned, its 48-byte header at its start)
 *     used   some blocks allocated, some free: on the list used[szidx]
 *     full   every block allocated: on no list
 *     empty  no block allocated: on its arena's `freepools` stack (order=sorted) or on the
 *            global free-pool stack (order=global); it keeps szidx and its free list, so a
 *            reuse for the same class skips the initialisation
 *   Transitions: malloc that takes the last block: used -> full (unlinked); free into a full
 *   pool: full -> used, linked at the FRONT of used[szidx] (the next malloc of that class gets
 *   the block just freed); free of the last block: used -> empty (unlinked, pushed).
 *
 * Blocks inside a pool
 *   A LIFO free list threaded through the free blocks themselves (`freeblock`), plus a bump
 *   pointer `nextoffset` over never-used ("virgin") blocks. A fresh pool returns the block at
 *   offset 48, puts the next one on the free list and sets nextoffset past it. When the free
 *   list runs dry, one virgin block is added (if nextoffset <= maxnextoffset), else the pool is
 *   full. Invariant: a used pool always has freeblock != NULL.
 *
 * Arenas (order=sorted)
 *   Each arena holds ntotalpools pools: arena_size/pool_size, minus one when the base is not
 *   pool-aligned (the head and tail slivers together waste one pool: 63 vs 64 in 3.11).
 *   nfreepools counts empty pools plus pools never carved; pools are carved in ascending
 *   address order. `usable` is the doubly linked list of arenas with nfreepools > 0, sorted by
 *   ascending nfreepools (ties: see below); a full arena is on no list. New pools always come
 *   from the head (the fullest arena that has room): first its freepools stack, then carving.
 *   nfp2lasta[k] is the rightmost arena of `usable` with k free pools (NULL if none), so an
 *   arena whose count grows moves, in O(1), to just after nfp2lasta[old count], i.e. to the
 *   left end of the arenas with its new count; an arena that was full goes to the head.
 *   Invariant: usable is sorted; nfp2lasta[k] is NULL iff no arena in usable has k free pools.
 *   Arena release when its last pool empties: release=never keeps it (2.4); release=empty
 *   unmaps it at once (2.5 .. 3.8); release=keep1 unmaps it unless it is the tail of usable
 *   (3.9+, bpo-37257), so at most one wholly empty arena is kept.
 *   Arena objects live in a vector (16 first, doubling) and are recycled LIFO.
 *
 * Arenas (order=global, Python 2.3/2.4)
 *   One current arena is carved pool by pool; empty pools of every arena go onto one global
 *   LIFO stack, which is tried before carving; arenas are never released.
 *
 * realloc (CPython's pymalloc_realloc)
 *   A pool block of class size S resized to n stays in place iff n <= S and 4n > 3S; otherwise
 *   an inner malloc(n) (small or raw), a copy of min(n, S) bytes and an inner free. Blocks from
 *   the system allocator stay there (realloc), whatever the new size. Membership is decided by
 *   address (arena_place.h), never by size, exactly as CPython's radix tree does.
 *
 * The system-allocator side
 *   Raw-domain requests, size 0 (zero=raw) and sizes above the threshold go to libc (or one
 *   mmap each with large=mmap), as CPython's PyMem_Raw* fallback; so do aligned requests, which
 *   CPython has no API for. Those blocks are kept in a pointer map (ptrset.h) so that destroy
 *   can release them along with the arenas.
 *
 * Statistics text
 *   stats_text prints the allocator part of sys._debugmallocstats() (what
 *   _PyObject_DebugMallocStats writes): the class table, arena counters, byte accounting and,
 *   for releases with the radix tree (radix=48: 3.10, radix=64: 3.11+), the "arena map counts"
 *   section, whose node counts are recomputed from the arena addresses with that release's
 *   bit layout. The free-list lines that follow in Python are interpreter state, not printed.
 * }==== */
#include "arena_place.h"
#include "hr_alloc.h"
#include "ptrset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* {==== Tunables and their limits ==== */
#define PM_HEADER 48u           /* sizeof(pm_pool_t): fixed by the layout CPython uses on 64-bit */
#define PM_MAX_CLASSES 64u      /* threshold / align, at most 512 / 8 */
#define PM_DUMMY_SZIDX 0xffffu  /* size class of a freshly carved pool */
#define PM_INITIAL_ARENA_OBJECTS 16u

typedef struct pm_pool pm_pool_t;
typedef struct pm_arena pm_arena_t;

/* A pool header, at the start of every pool; 48 bytes as in CPython so the first block is at
 * offset 48. Invariant: count == blocks handed out and not freed; a pool on used[c] has
 * 0 < count < nblocks(c) and freeblock != NULL. */
struct pm_pool {
    uint32_t count;         /* blocks allocated */
    uint32_t pad_;
    uint8_t *freeblock;     /* head of the LIFO free list threaded through free blocks */
    pm_pool_t *next;        /* used list (circular) or free-pool stack (NULL-terminated) */
    pm_pool_t *prev;        /* used list only */
    uint32_t arenaindex;    /* index of its arena in pm_t.arenas */
    uint32_t szidx;         /* size class, PM_DUMMY_SZIDX when freshly carved */
    uint32_t nextoffset;    /* offset of the next virgin block */
    uint32_t maxnextoffset; /* largest valid nextoffset: pool_size - block size */
};
_Static_assert(sizeof(pm_pool_t) == PM_HEADER, "pool header must be 48 bytes");

/* Invariant: address == 0 iff the object is on the unused stack. On `usable` iff
 * address != 0 and nfreepools > 0 (order=sorted). */
struct pm_arena {
    uintptr_t address;      /* base as mapped; 0 when unused */
    uint8_t *pool_address;  /* next pool to carve (pool-aligned) */
    uint32_t nfreepools;    /* empty pools + pools never carved */
    uint32_t ntotalpools;   /* pools that fit after alignment */
    pm_pool_t *freepools;   /* stack of empty pools (order=sorted) */
    pm_arena_t *next;       /* usable list, or unused stack */
    pm_arena_t *prev;       /* usable list */
};

typedef enum { PM_RELEASE_NEVER, PM_RELEASE_EMPTY, PM_RELEASE_KEEP1 } pm_release_t;
typedef enum { PM_ORDER_SORTED, PM_ORDER_GLOBAL } pm_order_t;

typedef struct pm_config {
    size_t arena_size, pool_size;
    unsigned align, threshold;
    pm_release_t release;
    pm_order_t order;
    hr_place_mode_t placement;
    unsigned radix;         /* 0: no radix tree (no "arena map" section); else address bits */
    int zero_small;         /* zero-size requests: 0 raw malloc(1) (CPython), 1 smallest class */
    int large_mmap;         /* large requests: 0 libc, 1 one mmap each */
} pm_config_t;

/* {==== Presets ==== */
typedef struct pm_preset {
    const char *name;
    pm_config_t cfg;
} pm_preset_t;

#define KB(x) ((size_t)(x) << 10)
static const pm_preset_t pm_presets[] = {
    /* Python 2.3/2.4: 8-byte classes up to 256, 4 KiB pools, 256 KiB arenas from malloc(),
     * never freed; one current arena carved in turn and a global stack of empty pools. */
    {"2.4", {KB(256), KB(4), 8, 256, PM_RELEASE_NEVER, PM_ORDER_GLOBAL, HR_PLACE_MALLOC, 0, 0, 0}},
    /* Python 2.5 (Evan Jones, patch #1123430): arena objects with their own free pools, the
     * usable list sorted by free pools, an arena free()d as soon as all its pools are empty. */
    {"2.5", {KB(256), KB(4), 8, 256, PM_RELEASE_EMPTY, PM_ORDER_SORTED, HR_PLACE_MALLOC, 0, 0, 0}},
    /* Python 3.8: arenas from mmap since 3.3 (#11849), threshold 512, and 16-byte alignment
     * (bpo-27987) which halves the classes to 32; nfp2lasta keeps the same order in O(1)
     * (bpo-37029). Still frees an arena as soon as it is empty. */
    {"3.8", {KB(256), KB(4), 16, 512, PM_RELEASE_EMPTY, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 0, 0, 0}},
    /* Python 3.9: keeps one wholly empty arena against thrashing (bpo-37257). */
    {"3.9", {KB(256), KB(4), 16, 512, PM_RELEASE_KEEP1, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 0, 0, 0}},
    /* Python 3.10: the radix tree replaces address_in_range (bpo-37448), which allows 16 KiB
     * pools and 1 MiB arenas on 64-bit; the tree ignores the top 16 address bits. */
    {"3.10", {KB(1024), KB(16), 16, 512, PM_RELEASE_KEEP1, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 48, 0, 0}},
    /* Python 3.11: the radix tree covers all 64 address bits (bpo-45521, bpo-45526). */
    {"3.11", {KB(1024), KB(16), 16, 512, PM_RELEASE_KEEP1, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 64, 0, 0}},
    /* Python 3.12 and 3.13 (default build): the state moved into the runtime structures, the
     * constants and rules are those of 3.11. */
    {"3.12", {KB(1024), KB(16), 16, 512, PM_RELEASE_KEEP1, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 64, 0, 0}},
    {"3.13", {KB(1024), KB(16), 16, 512, PM_RELEASE_KEEP1, PM_ORDER_SORTED, HR_PLACE_UNALIGNED, 64, 0, 0}},
};
#define PM_DEFAULT_PRESET "3.11"

static const hr_preset_desc_t pm_preset_desc[] = {
    {"2.4", "2.3/2.4: align 8, threshold 256, 4K pools, 256K arenas from malloc, never freed, "
            "one current arena and a global free-pool stack (order=global)"},
    {"2.5", "2.5 (Evan Jones, #1123430): arenas sorted by free pools, freed when empty; "
            "align 8, threshold 256, 4K/256K, arenas from malloc"},
    {"3.8", "3.8: mmap arenas (3.3, #11849), threshold 512, 16-byte alignment (bpo-27987), "
            "32 classes, nfp2lasta (bpo-37029); freed when empty"},
    {"3.9", "3.9: as 3.8 but keeps one empty arena (bpo-37257)"},
    {"3.10", "3.10: radix tree (bpo-37448) with 48 address bits, 16K pools, 1M arenas"},
    {"3.11", "3.11: radix tree over 64 address bits (bpo-45521/45526); the default"},
    {"3.12", "3.12: same constants and rules as 3.11"},
    {"3.13", "3.13 (default build): same constants and rules as 3.11"},
    {NULL, NULL}};

static const hr_param_desc_t pm_params[] = {
    {"preset", "2.4|2.5|3.8|3.9|3.10|3.11|3.12|3.13", "start from a release's settings (3.11)"},
    {"arena", "size (256K, 1M, ...)", "arena size, a power of two, 64K..1G"},
    {"pool", "size (4K, 16K, ...)", "pool size, a power of two, 1K..arena/4"},
    {"align", "8|16", "block alignment = size-class width"},
    {"threshold", "bytes <= 512", "largest request served from pools (multiple of align)"},
    {"release", "never|empty|keep1", "when an empty arena is unmapped"},
    {"order", "sorted|global", "sorted: usable arenas by ascending free pools (2.5+); "
                               "global: one current arena + global free-pool stack (2.4)"},
    {"placement", "unaligned|aligned|recorded|malloc", "where arenas are mapped (see docs)"},
    {"radix", "none|48|64", "radix-tree address bits for the 'arena map counts' section"},
    {"zero", "raw|small", "size-0 requests: raw malloc(1) as CPython, or the smallest class"},
    {"large", "libc|mmap", "requests above threshold (and raw ones): libc malloc, or one mmap each"},
    {NULL, NULL, NULL}};

/* {==== State ==== */
typedef struct pm {
    pm_config_t cfg;
    const char *preset;
    unsigned align_shift, nclasses, overhead, max_pools;
    uintptr_t pool_mask;                 /* ~(pool_size - 1) */
    uint32_t nblocks[PM_MAX_CLASSES];    /* blocks per pool of each class */

    pm_pool_t used[PM_MAX_CLASSES];      /* sentinels of the used-pool lists */

    pm_arena_t *arenas;                  /* owned vector of maxarenas objects */
    uint32_t maxarenas;
    pm_arena_t *unused;                  /* stack of arena objects without an arena */
    pm_arena_t *usable;                  /* order=sorted: the sorted usable list */
    pm_arena_t **nfp2lasta;              /* owned, max_pools + 1 entries */

    /* order=global (2.4) */
    pm_pool_t *gfree;                    /* global stack of empty pools */
    uint64_t ngfree;
    uint32_t current;                    /* index of the arena being carved */
    int have_current;

    /* counters */
    uint64_t narenas, ntimes_arena_allocated, narenas_highwater;
    uint64_t pools_used, large_requests, large_bytes, peak_footprint;

    /* radix-tree node accounting for the statistics (keys ever created) */
    uint64_t *mid_keys, *bot_keys;
    size_t nmid, nbot, mid_cap, bot_cap;

    hr_placer_t place;
    hr_ptrset_t raw; /* live blocks from the system allocator, released by destroy */
} pm_t;

HR_INLINE uint8_t *pm_next_of(const uint8_t *block)
{
    uint8_t *n;
    memcpy(&n, block, sizeof n);
    return n;
}

HR_INLINE void pm_set_next(uint8_t *block, uint8_t *n)
{
    memcpy(block, &n, sizeof n);
}

static uint64_t pm_footprint(const pm_t *m)
{
    return m->narenas * m->cfg.arena_size + m->large_bytes;
}

static void pm_note_footprint(pm_t *m)
{
    uint64_t f = pm_footprint(m);
    if (f > m->peak_footprint)
        m->peak_footprint = f;
}

/* {==== Radix-tree accounting (statistics only) ==== */
static int pm_key_add(uint64_t **keys, size_t *n, size_t *cap, uint64_t key)
{
    for (size_t i = 0; i < *n; i++)
        if ((*keys)[i] == key)
            return 0;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        uint64_t *k = realloc(*keys, c * sizeof *k);
        if (!k)
            return 0;
        *keys = k;
        *cap = c;
    }
    (*keys)[(*n)++] = key;
    return 1;
}

/* Bit layout of CPython's tree for `radix` address bits and arena_bits: two interior levels of
 * (bits - arena_bits + 2) / 3 bits each, the bottom level gets the rest. */
static void pm_radix_layout(const pm_t *m, unsigned *interior, unsigned *bottom)
{
    unsigned abits = m->place.arena_bits, bits = m->cfg.radix;
    *interior = (bits - abits + 2) / 3;
    *bottom = bits - abits - 2 * *interior;
}

static void pm_radix_note_one(pm_t *m, uint64_t addr)
{
    unsigned interior, bottom;
    pm_radix_layout(m, &interior, &bottom);
    if (m->cfg.radix < 64)
        addr &= ((uint64_t)1 << m->cfg.radix) - 1;
    unsigned bot_shift = m->place.arena_bits + bottom;
    pm_key_add(&m->mid_keys, &m->nmid, &m->mid_cap, addr >> (bot_shift + interior));
    pm_key_add(&m->bot_keys, &m->nbot, &m->bot_cap, addr >> bot_shift);
}

static void pm_radix_note(pm_t *m, uintptr_t base)
{
    if (!m->cfg.radix)
        return;
    pm_radix_note_one(m, base);
    if (base & (m->cfg.arena_size - 1))
        pm_radix_note_one(m, (uint64_t)base + m->cfg.arena_size);
}

/* {==== Arenas ==== */
static pm_arena_t *pm_new_arena(pm_t *m)
{
    if (m->unused == NULL) {
        /* Grow the vector. Only called when every arena is full: no pointer into the old
         * vector is held (usable is empty, nfp2lasta all NULL, pools store indices). */
        uint32_t n = m->maxarenas ? m->maxarenas * 2 : PM_INITIAL_ARENA_OBJECTS;
        if (n <= m->maxarenas)
            return NULL;
        pm_arena_t *v = realloc(m->arenas, (size_t)n * sizeof *v);
        if (!v)
            return NULL;
        m->arenas = v;
        for (uint32_t i = m->maxarenas; i < n; i++) {
            v[i].address = 0;
            v[i].next = i + 1 < n ? &v[i + 1] : NULL;
        }
        m->unused = &v[m->maxarenas];
        m->maxarenas = n;
    }
    pm_arena_t *ao = m->unused;
    void *base = hr_placer_map(&m->place);
    if (!base)
        return NULL;
    m->unused = ao->next;
    ao->address = (uintptr_t)base;
    pm_radix_note(m, ao->address);
    m->narenas++;
    m->ntimes_arena_allocated++;
    if (m->narenas > m->narenas_highwater)
        m->narenas_highwater = m->narenas;
    ao->freepools = NULL;
    ao->pool_address = (uint8_t *)base;
    ao->nfreepools = m->max_pools;
    uintptr_t excess = ao->address & (m->cfg.pool_size - 1);
    if (excess) {
        ao->nfreepools--;
        ao->pool_address += m->cfg.pool_size - excess;
    }
    ao->ntotalpools = ao->nfreepools;
    pm_note_footprint(m);
    return ao;
}

static void pm_release_arena(pm_t *m, pm_arena_t *ao)
{
    hr_placer_unmap(&m->place, (void *)ao->address);
    ao->address = 0;
    ao->next = m->unused;
    m->unused = ao;
    m->narenas--;
}

/* {==== Pools ==== */

/* Link a pool (taken from a free stack or freshly carved) as the only pool of used[c] and
 * return its first block. */
static void *pm_init_pool(pm_t *m, pm_pool_t *pool, unsigned c)
{
    pm_pool_t *head = &m->used[c];
    pool->next = pool->prev = head;
    head->next = head->prev = pool;
    pool->count = 1;
    m->pools_used++;
    uint8_t *bp;
    if (pool->szidx == c) { /* reused for the same class: header and free list still valid */
        bp = pool->freeblock;
        pool->freeblock = pm_next_of(bp);
        return bp;
    }
    unsigned size = (c + 1) << m->align_shift;
    pool->szidx = c;
    bp = (uint8_t *)pool + m->overhead;
    pool->nextoffset = m->overhead + 2 * size;
    pool->maxnextoffset = (uint32_t)m->cfg.pool_size - size;
    pool->freeblock = bp + size;
    pm_set_next(pool->freeblock, NULL);
    return bp;
}

static void *pm_from_new_pool_sorted(pm_t *m, unsigned c)
{
    pm_arena_t *ao = m->usable;
    if (HR_UNLIKELY(ao == NULL)) {
        ao = pm_new_arena(m);
        if (!ao)
            return NULL;
        ao->next = ao->prev = NULL;
        m->usable = ao;
        m->nfp2lasta[ao->nfreepools] = ao;
    }
    /* The head has the smallest count, so taking a pool keeps the list sorted. */
    uint32_t nf = ao->nfreepools;
    if (m->nfp2lasta[nf] == ao)
        m->nfp2lasta[nf] = NULL;
    if (nf > 1)
        m->nfp2lasta[nf - 1] = ao;
    pm_pool_t *pool = ao->freepools;
    if (pool) {
        ao->freepools = pool->next;
    } else {
        pool = (pm_pool_t *)ao->pool_address;
        pool->arenaindex = (uint32_t)(ao - m->arenas);
        pool->szidx = PM_DUMMY_SZIDX;
        ao->pool_address += m->cfg.pool_size;
    }
    ao->nfreepools = --nf;
    if (nf == 0) { /* wholly allocated: off the list */
        m->usable = ao->next;
        if (m->usable)
            m->usable->prev = NULL;
    }
    return pm_init_pool(m, pool, c);
}

static void *pm_from_new_pool_global(pm_t *m, unsigned c)
{
    pm_pool_t *pool = m->gfree;
    if (pool) {
        m->gfree = pool->next;
        m->ngfree--;
        return pm_init_pool(m, pool, c);
    }
    if (!m->have_current || m->arenas[m->current].nfreepools == 0) {
        pm_arena_t *ao = pm_new_arena(m);
        if (!ao)
            return NULL;
        m->current = (uint32_t)(ao - m->arenas);
        m->have_current = 1;
    }
    pm_arena_t *ao = &m->arenas[m->current];
    pool = (pm_pool_t *)ao->pool_address;
    pool->arenaindex = m->current;
    pool->szidx = PM_DUMMY_SZIDX;
    ao->pool_address += m->cfg.pool_size;
    ao->nfreepools--;
    return pm_init_pool(m, pool, c);
}

/* The free list of a used pool ran dry: add a virgin block, or unlink the now full pool. */
static void pm_extend(pm_t *m, pm_pool_t *pool, unsigned c)
{
    if (pool->nextoffset <= pool->maxnextoffset) {
        pool->freeblock = (uint8_t *)pool + pool->nextoffset;
        pool->nextoffset += (c + 1) << m->align_shift;
        pm_set_next(pool->freeblock, NULL);
        return;
    }
    pool->prev->next = pool->next;
    pool->next->prev = pool->prev;
}

/* Serve 1 <= n <= threshold. The fast path is the head pool's free list. */
HR_INLINE void *pm_small(pm_t *m, size_t n)
{
    unsigned c = (unsigned)(n - 1) >> m->align_shift;
    pm_pool_t *head = &m->used[c];
    pm_pool_t *pool = head->next;
    if (HR_LIKELY(pool != head)) {
        pool->count++;
        uint8_t *bp = pool->freeblock;
        if (HR_UNLIKELY((pool->freeblock = pm_next_of(bp)) == NULL))
            pm_extend(m, pool, c);
        return bp;
    }
    return m->cfg.order == PM_ORDER_SORTED ? pm_from_new_pool_sorted(m, c)
                                           : pm_from_new_pool_global(m, c);
}

/* The last block of a used pool was freed. */
static void pm_pool_emptied(pm_t *m, pm_pool_t *pool)
{
    pool->prev->next = pool->next;
    pool->next->prev = pool->prev;
    m->pools_used--;
    if (m->cfg.order == PM_ORDER_GLOBAL) {
        pool->next = m->gfree;
        m->gfree = pool;
        m->ngfree++;
        return;
    }
    pm_arena_t *ao = &m->arenas[pool->arenaindex];
    pool->next = ao->freepools;
    ao->freepools = pool;
    uint32_t nf = ao->nfreepools;
    pm_arena_t *lastnf = m->nfp2lasta[nf];
    if (lastnf == ao) { /* it was the rightmost with nf: its left neighbour may take over */
        pm_arena_t *p = ao->prev;
        m->nfp2lasta[nf] = (p != NULL && p->nfreepools == nf) ? p : NULL;
    }
    ao->nfreepools = ++nf;

    if (nf == ao->ntotalpools &&
        (m->cfg.release == PM_RELEASE_EMPTY ||
         (m->cfg.release == PM_RELEASE_KEEP1 && ao->next != NULL))) {
        /* Wholly empty and not kept: unlink and unmap. */
        if (ao->prev)
            ao->prev->next = ao->next;
        else
            m->usable = ao->next;
        if (ao->next)
            ao->next->prev = ao->prev;
        pm_release_arena(m, ao);
        return;
    }
    if (nf == 1) { /* it was full, hence on no list: to the head */
        ao->next = m->usable;
        ao->prev = NULL;
        if (m->usable)
            m->usable->prev = ao;
        m->usable = ao;
        if (m->nfp2lasta[1] == NULL)
            m->nfp2lasta[1] = ao;
        return;
    }
    if (m->nfp2lasta[nf] == NULL)
        m->nfp2lasta[nf] = ao;
    if (ao == lastnf) /* still in order */
        return;
    /* Move it right, to just after the rightmost arena with its old count. */
    if (ao->prev)
        ao->prev->next = ao->next;
    else
        m->usable = ao->next;
    ao->next->prev = ao->prev;
    ao->prev = lastnf;
    ao->next = lastnf->next;
    if (ao->next)
        ao->next->prev = ao;
    lastnf->next = ao;
}

/* Free a block known to be inside an arena. */
HR_INLINE void pm_free_small(pm_t *m, void *p)
{
    pm_pool_t *pool = (pm_pool_t *)((uintptr_t)p & m->pool_mask);
    uint8_t *last = pool->freeblock;
    pm_set_next(p, last);
    pool->freeblock = p;
    pool->count--;
    if (HR_UNLIKELY(last == NULL)) { /* was full: to the front of its used list */
        pm_pool_t *head = &m->used[pool->szidx];
        pool->next = head->next;
        pool->prev = head;
        head->next->prev = pool;
        head->next = pool;
        return;
    }
    if (HR_UNLIKELY(pool->count == 0))
        pm_pool_emptied(m, pool);
}

/* {==== The system-allocator side: raw and large requests ==== */
static size_t pm_page_round(size_t n)
{
    size_t page = 4096;
    return (n + page - 1) & ~(page - 1);
}

/* The footprint of a block from the system allocator: its requested bytes under large=libc
 * (libc's overhead is not counted), its whole mapping under large=mmap (exact). */
static size_t pm_sys_bytes(const pm_t *m, size_t a)
{
    return m->cfg.large_mmap ? pm_page_round(a) : a;
}

static void *pm_raw_malloc(pm_t *m, size_t n, int zeroed)
{
    size_t a = n ? n : 1; /* CPython's PyMem_RawMalloc(0) is malloc(1) */
    void *p;
    if (m->cfg.large_mmap) {
        p = mmap(NULL, pm_page_round(a), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        if (p == MAP_FAILED)
            p = NULL;
    } else {
        p = zeroed ? calloc(1, a) : malloc(a);
    }
    if (p) {
        m->large_requests++;
        m->large_bytes += pm_sys_bytes(m, a);
        pm_note_footprint(m);
        hr_ptrset_add(&m->raw, p, a);
    }
    return p;
}

static void pm_raw_free(pm_t *m, void *p, size_t size)
{
    size_t a = size ? size : 1;
    m->large_bytes -= pm_sys_bytes(m, a);
    hr_ptrset_del(&m->raw, p);
    if (m->cfg.large_mmap)
        munmap(p, pm_page_round(a));
    else
        free(p);
}

static void *pm_raw_realloc(pm_t *m, void *p, size_t old, size_t n)
{
    size_t o = old ? old : 1, a = n ? n : 1;
    void *q;
    if (m->cfg.large_mmap) {
        q = mremap(p, pm_page_round(o), pm_page_round(a), MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
            q = NULL;
    } else {
        q = realloc(p, a);
    }
    if (q) {
        m->large_requests++;
        m->large_bytes = m->large_bytes - pm_sys_bytes(m, o) + pm_sys_bytes(m, a);
        pm_note_footprint(m);
        hr_ptrset_del(&m->raw, p);
        hr_ptrset_add(&m->raw, q, a);
    }
    return q;
}

/* {==== The vtable slots ==== */
static void *pm_malloc_slow(pm_t *m, size_t n, hr_domain_t d, int zeroed)
{
    if (n == 0 && m->cfg.zero_small && d != HR_DOMAIN_RAW) {
        void *p = pm_small(m, 1);
        if (p && zeroed)
            memset(p, 0, 1);
        return p;
    }
    return pm_raw_malloc(m, n, zeroed);
}

static void *pm_malloc(void *ctx, size_t n, hr_domain_t d)
{
    pm_t *m = ctx;
    if (HR_LIKELY(n - 1 < m->cfg.threshold && d != HR_DOMAIN_RAW))
        return pm_small(m, n);
    return pm_malloc_slow(m, n, d, 0);
}

static void *pm_calloc(void *ctx, size_t n, hr_domain_t d)
{
    pm_t *m = ctx;
    if (HR_LIKELY(n - 1 < m->cfg.threshold && d != HR_DOMAIN_RAW)) {
        void *p = pm_small(m, n);
        if (p)
            memset(p, 0, n);
        return p;
    }
    return pm_malloc_slow(m, n, d, 1);
}

static void pm_free(void *ctx, void *p, size_t size, hr_domain_t d)
{
    pm_t *m = ctx;
    (void)d; /* membership decides, as in CPython: a raw-domain pointer is never in an arena */
    if (HR_LIKELY(hr_placer_contains(&m->place, p)))
        pm_free_small(m, p);
    else
        pm_raw_free(m, p, size);
}

static void *pm_realloc(void *ctx, void *p, size_t old, size_t n, hr_domain_t d)
{
    pm_t *m = ctx;
    if (!hr_placer_contains(&m->place, p))
        return pm_raw_realloc(m, p, old, n); /* pymalloc never adopts a raw block */
    pm_pool_t *pool = (pm_pool_t *)((uintptr_t)p & m->pool_mask);
    size_t s = (size_t)(pool->szidx + 1) << m->align_shift;
    size_t ncopy = s;
    if (n <= s) {
        if (4 * n > 3 * s) /* same class, or shrinking by less than a quarter */
            return p;
        ncopy = n;
    }
    /* The hidden inner malloc / copy / free. */
    void *q = pm_malloc(m, n, d == HR_DOMAIN_RAW ? HR_DOMAIN_MEM : d);
    if (q) {
        memcpy(q, p, ncopy);
        pm_free_small(m, p);
    }
    return q;
}

static int pm_is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

static int pm_mmap_aligned(size_t align, size_t size, void **out)
{
    size_t len = pm_page_round(size ? size : 1);
    size_t extra = align > 4096 ? align : 0;
    uint8_t *m = mmap(NULL, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (m == MAP_FAILED)
        return -1;
    uintptr_t s = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
    if (extra) {
        if (s > (uintptr_t)m)
            munmap(m, s - (uintptr_t)m);
        uintptr_t end = (uintptr_t)m + len + extra;
        if (end > s + len)
            munmap((void *)(s + len), end - (s + len));
    }
    *out = (void *)s;
    return 0;
}

/* CPython has no aligned API: such requests go to the system allocator like large ones. */
static void *pm_aligned(void *ctx, size_t align, size_t size, hr_domain_t d)
{
    pm_t *m = ctx;
    (void)d;
    if (!pm_is_pow2(align))
        return NULL;
    void *p = NULL;
    size_t a = size ? size : 1;
    if (m->cfg.large_mmap) {
        if (pm_mmap_aligned(align, a, &p) != 0)
            return NULL;
    } else if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, a) != 0) {
        return NULL;
    }
    m->large_requests++;
    m->large_bytes += pm_sys_bytes(m, a);
    pm_note_footprint(m);
    hr_ptrset_add(&m->raw, p, a);
    return p;
}

static void pm_arena_fact(void *ctx, uint64_t base, uint64_t size, int mapped)
{
    pm_t *m = ctx;
    hr_placer_fact(&m->place, base, size, mapped);
}

static void pm_stats(void *ctx, hr_alloc_stats_t *st)
{
    pm_t *m = ctx;
    st->footprint = pm_footprint(m);
    st->peak_footprint = m->peak_footprint;
    st->arenas = m->narenas;
    st->peak_arenas = m->narenas_highwater;
    st->arenas_allocated = m->ntimes_arena_allocated;
    st->arenas_released = m->ntimes_arena_allocated - m->narenas;
    st->pools_used = m->pools_used;
    st->large_requests = m->large_requests;
}

/* {==== Statistics text, in the format of _PyObject_DebugMallocStats ==== */

/* One "name = value" line: the name padded to 35 columns, '=', the value with thousands
 * separators right-aligned in 21 columns. */
static int pm_line(hr_buf_t *out, const char *name, uint64_t value)
{
    char num[32];
    hr_fmt_thousands(num, sizeof num, value);
    return hr_buf_printf(out, "%-35s=%21s\n", name, num);
}

static int pm_stats_text(void *ctx, hr_buf_t *out, hr_err_t *err)
{
    pm_t *m = ctx;
    uint64_t numpools[PM_MAX_CLASSES] = {0}, numblocks[PM_MAX_CLASSES] = {0},
             numfree[PM_MAX_CLASSES] = {0};
    uint64_t narenas = 0, unused_pools = 0, alignment = 0;
    size_t psize = m->cfg.pool_size;

    for (uint32_t i = 0; i < m->maxarenas; i++) {
        const pm_arena_t *ao = &m->arenas[i];
        if (!ao->address)
            continue;
        narenas++;
        unused_pools += ao->nfreepools;
        uintptr_t base = ao->address;
        if (base & (psize - 1)) {
            alignment += psize;
            base = (base & ~(uintptr_t)(psize - 1)) + psize;
        }
        for (; base < (uintptr_t)ao->pool_address; base += psize) {
            const pm_pool_t *pool = (const pm_pool_t *)base;
            if (pool->count == 0)
                continue;
            numpools[pool->szidx]++;
            numblocks[pool->szidx] += pool->count;
            numfree[pool->szidx] += m->nblocks[pool->szidx] - pool->count;
        }
    }
    unused_pools += m->ngfree;

    int rc = hr_buf_printf(out, "Small block threshold = %u, in %u size classes.\n\n",
                           m->cfg.threshold, m->nclasses);
    rc |= hr_buf_printf(out, "class   size   num pools   blocks in use  avail blocks\n"
                             "-----   ----   ---------   -------------  ------------\n");
    uint64_t allocated = 0, available = 0, headers = 0, quantization = 0;
    for (unsigned c = 0; c < m->nclasses; c++) {
        if (!numpools[c])
            continue;
        unsigned size = (c + 1) << m->align_shift;
        rc |= hr_buf_printf(out, "%5u %6u %11llu %15llu %13llu\n", c, size,
                            (unsigned long long)numpools[c], (unsigned long long)numblocks[c],
                            (unsigned long long)numfree[c]);
        allocated += numblocks[c] * size;
        available += numfree[c] * size;
        headers += numpools[c] * m->overhead;
        quantization += numpools[c] * ((psize - m->overhead) % size);
    }
    rc |= hr_buf_putc(out, '\n');
    rc |= pm_line(out, "# arenas allocated total", m->ntimes_arena_allocated);
    rc |= pm_line(out, "# arenas reclaimed", m->ntimes_arena_allocated - narenas);
    rc |= pm_line(out, "# arenas highwater mark", m->narenas_highwater);
    rc |= pm_line(out, "# arenas allocated current", narenas);
    char name[96];
    snprintf(name, sizeof name, "%llu arenas * %zu bytes/arena", (unsigned long long)narenas,
             m->cfg.arena_size);
    rc |= pm_line(out, name, narenas * m->cfg.arena_size);
    rc |= hr_buf_putc(out, '\n');
    rc |= pm_line(out, "# bytes in allocated blocks", allocated);
    rc |= pm_line(out, "# bytes in available blocks", available);
    snprintf(name, sizeof name, "%llu unused pools * %zu bytes", (unsigned long long)unused_pools,
             psize);
    rc |= pm_line(out, name, unused_pools * psize);
    rc |= pm_line(out, "# bytes lost to pool headers", headers);
    rc |= pm_line(out, "# bytes lost to quantization", quantization);
    rc |= pm_line(out, "# bytes lost to arena alignment", alignment);
    rc |= pm_line(out, "Total", allocated + available + unused_pools * psize + headers +
                                    quantization + alignment);
    if (m->cfg.radix) {
        unsigned interior, bottom;
        pm_radix_layout(m, &interior, &bottom);
        uint64_t root = ((uint64_t)8) << interior, mid = ((uint64_t)8) << interior,
                 bot = ((uint64_t)8) << bottom;
        rc |= hr_buf_printf(out, "\narena map counts\n");
        rc |= pm_line(out, "# arena map mid nodes", m->nmid);
        rc |= pm_line(out, "# arena map bot nodes", m->nbot);
        rc |= hr_buf_putc(out, '\n');
        rc |= pm_line(out, "# bytes lost to arena map root", root);
        rc |= pm_line(out, "# bytes lost to arena map mid", mid * m->nmid);
        rc |= pm_line(out, "# bytes lost to arena map bot", bot * m->nbot);
        rc |= pm_line(out, "Total", root + mid * m->nmid + bot * m->nbot);
    }
    if (rc)
        return hr_err_set(err, HR_ENOMEM, "pymalloc: out of memory for the statistics text");
    return HR_OK;
}

/* {==== Creation from a spec ==== */
/* A power-of-two size in lo..hi (`range` spells them for the message, like "64K..1G"). One
 * message for every failure says what is accepted, whether the value was out of range, not a
 * power of two, or a size the parser does not read ("1T"). */
static int pm_parse_pow2(hr_spec_t *spec, const char *key, uint64_t lo, uint64_t hi,
                         const char *range, size_t *out, hr_err_t *err)
{
    const char *v = hr_spec_get(spec, key);
    if (!v)
        return HR_OK;
    uint64_t x;
    if (hr_parse_size(v, &x) != HR_OK || !pm_is_pow2(x) || x < lo || x > hi)
        return hr_err_set(err, HR_EUSAGE, "pymalloc: %s=%s must be a power of two in %s", key, v,
                          range);
    *out = (size_t)x;
    return HR_OK;
}

static int pm_configure(pm_config_t *cfg, const char **preset_name, hr_spec_t *spec,
                        hr_err_t *err)
{
    const char *preset = hr_spec_get(spec, "preset");
    if (!preset)
        preset = PM_DEFAULT_PRESET;
    const pm_preset_t *pr = NULL;
    for (size_t i = 0; i < HR_ARRAY_LEN(pm_presets); i++)
        if (strcmp(pm_presets[i].name, preset) == 0)
            pr = &pm_presets[i];
    if (!pr)
        return hr_err_set(err, HR_EUSAGE,
                          "pymalloc: unknown preset '%s' (presets: 2.4, 2.5, 3.8, 3.9, 3.10, "
                          "3.11, 3.12, 3.13)", preset);
    *cfg = pr->cfg;
    *preset_name = pr->name;

    int rc;
    /* The pool's upper bound here is the largest arena's quarter; the check against this
     * arena's quarter comes with the other consistency checks below. */
    if ((rc = pm_parse_pow2(spec, "arena", KB(64), (uint64_t)1 << 30, "64K..1G", &cfg->arena_size,
                            err)) ||
        (rc = pm_parse_pow2(spec, "pool", KB(1), (uint64_t)1 << 28, "1K..256M", &cfg->pool_size,
                            err)))
        return rc;
    const char *v;
    uint64_t x;
    if ((v = hr_spec_get(spec, "align"))) {
        if (hr_parse_u64(v, &x) != HR_OK || (x != 8 && x != 16))
            return hr_err_set(err, HR_EUSAGE, "pymalloc: align=%s must be 8 or 16", v);
        cfg->align = (unsigned)x;
    }
    if ((v = hr_spec_get(spec, "threshold"))) {
        if (hr_parse_size(v, &x) != HR_OK || x == 0 || x > 512)
            return hr_err_set(err, HR_EUSAGE, "pymalloc: threshold=%s must be 1..512", v);
        cfg->threshold = (unsigned)x;
    }
    if ((v = hr_spec_get(spec, "release"))) {
        if (strcmp(v, "never") == 0)
            cfg->release = PM_RELEASE_NEVER;
        else if (strcmp(v, "empty") == 0)
            cfg->release = PM_RELEASE_EMPTY;
        else if (strcmp(v, "keep1") == 0)
            cfg->release = PM_RELEASE_KEEP1;
        else
            return hr_err_set(err, HR_EUSAGE,
                              "pymalloc: release=%s must be never, empty or keep1", v);
    }
    if ((v = hr_spec_get(spec, "order"))) {
        if (strcmp(v, "sorted") == 0)
            cfg->order = PM_ORDER_SORTED;
        else if (strcmp(v, "global") == 0)
            cfg->order = PM_ORDER_GLOBAL;
        else
            return hr_err_set(err, HR_EUSAGE, "pymalloc: order=%s must be sorted or global", v);
    }
    if ((v = hr_spec_get(spec, "placement")) && hr_place_parse(v, &cfg->placement) != HR_OK)
        return hr_err_set(err, HR_EUSAGE,
                          "pymalloc: placement=%s must be unaligned, aligned, recorded or malloc",
                          v);
    if ((v = hr_spec_get(spec, "radix"))) {
        if (strcmp(v, "none") == 0)
            cfg->radix = 0;
        else if (strcmp(v, "48") == 0)
            cfg->radix = 48;
        else if (strcmp(v, "64") == 0)
            cfg->radix = 64;
        else
            return hr_err_set(err, HR_EUSAGE, "pymalloc: radix=%s must be none, 48 or 64", v);
    }
    if ((v = hr_spec_get(spec, "zero"))) {
        if (strcmp(v, "raw") == 0)
            cfg->zero_small = 0;
        else if (strcmp(v, "small") == 0)
            cfg->zero_small = 1;
        else
            return hr_err_set(err, HR_EUSAGE, "pymalloc: zero=%s must be raw or small", v);
    }
    if ((v = hr_spec_get(spec, "large"))) {
        if (strcmp(v, "libc") == 0)
            cfg->large_mmap = 0;
        else if (strcmp(v, "mmap") == 0)
            cfg->large_mmap = 1;
        else
            return hr_err_set(err, HR_EUSAGE, "pymalloc: large=%s must be libc or mmap", v);
    }

    /* Consistency. */
    if (cfg->threshold % cfg->align)
        return hr_err_set(err, HR_EUSAGE, "pymalloc: threshold %u is not a multiple of align %u",
                          cfg->threshold, cfg->align);
    if (cfg->arena_size < KB(64) || cfg->arena_size > ((size_t)1 << 30))
        return hr_err_set(err, HR_EUSAGE, "pymalloc: arena %zu must be 64K..1G", cfg->arena_size);
    if (cfg->pool_size < KB(1) || cfg->pool_size * 4 > cfg->arena_size)
        return hr_err_set(err, HR_EUSAGE,
                          "pymalloc: pool %zu must be at least 1K and at most arena/4 (%zu)",
                          cfg->pool_size, cfg->arena_size / 4);
    if (cfg->pool_size - PM_HEADER < 2 * (size_t)cfg->threshold)
        return hr_err_set(err, HR_EUSAGE,
                          "pymalloc: pool %zu cannot hold two blocks of %u bytes after its "
                          "48-byte header", cfg->pool_size, cfg->threshold);
    if (cfg->order == PM_ORDER_GLOBAL && cfg->release != PM_RELEASE_NEVER)
        return hr_err_set(err, HR_EUSAGE,
                          "pymalloc: order=global (the 2.4 structure) cannot release arenas; "
                          "use release=never");
    return HR_OK;
}

static void pm_destroy(void *ctx);

static int pm_create(void **out, hr_spec_t *spec, hr_err_t *err)
{
    pm_config_t cfg;
    const char *preset = PM_DEFAULT_PRESET;
    int rc = pm_configure(&cfg, &preset, spec, err);
    if (rc)
        return rc;
    pm_t *m = calloc(1, sizeof *m);
    if (!m)
        return hr_err_set(err, HR_ENOMEM, "pymalloc: out of memory");
    m->cfg = cfg;
    m->preset = preset;
    m->align_shift = cfg.align == 16 ? 4 : 3;
    m->nclasses = cfg.threshold >> m->align_shift;
    m->overhead = (PM_HEADER + cfg.align - 1) & ~(cfg.align - 1);
    m->max_pools = (unsigned)(cfg.arena_size / cfg.pool_size);
    m->pool_mask = ~(uintptr_t)(cfg.pool_size - 1);
    for (unsigned c = 0; c < m->nclasses; c++) {
        m->nblocks[c] = (uint32_t)((cfg.pool_size - m->overhead) / ((c + 1) << m->align_shift));
        m->used[c].next = m->used[c].prev = &m->used[c];
    }
    m->nfp2lasta = calloc(m->max_pools + 1, sizeof *m->nfp2lasta);
    if (!m->nfp2lasta) {
        free(m);
        return hr_err_set(err, HR_ENOMEM, "pymalloc: out of memory");
    }
    rc = hr_placer_init(&m->place, cfg.placement, cfg.arena_size, cfg.pool_size, err);
    if (rc) {
        hr_err_prefix(err, "pymalloc: ");
        pm_destroy(m);
        return rc;
    }
    *out = m;
    return HR_OK;
}

static void pm_destroy(void *ctx)
{
    pm_t *m = ctx;
    if (!m)
        return;
    hr_placer_fini(&m->place); /* unmaps every live arena */
    for (size_t i = 0; i < m->raw.cap; i++) { /* and the blocks still live in the system's */
        const hr_ptrset_slot_t *sl = &m->raw.slot[i];
        if (!sl->key)
            continue;
        if (m->cfg.large_mmap)
            munmap((void *)sl->key, pm_page_round(sl->size));
        else
            free((void *)sl->key);
    }
    hr_ptrset_free(&m->raw);
    free(m->arenas);
    free(m->nfp2lasta);
    free(m->mid_keys);
    free(m->bot_keys);
    free(m);
}

const hr_alloc_vt hr_alloc_pymalloc_vt = {
    .name = "pymalloc",
    .summary = "our model of CPython's pymalloc, parameterised by release (checked exact "
               "against libpython 3.8-3.11 given the same arena bases)",
    .params = pm_params,
    .presets = pm_preset_desc,
    .create = pm_create,
    .destroy = pm_destroy,
    .malloc = pm_malloc,
    .calloc = pm_calloc,
    .realloc = pm_realloc,
    .free = pm_free,
    .aligned_alloc = pm_aligned,
    .arena_fact = pm_arena_fact,
    .stats = pm_stats,
    .stats_text = pm_stats_text,
    .flags = 0,
};

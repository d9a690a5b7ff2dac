/* arena_place.h: where arenas are mapped, and which addresses lie inside a live arena.
 * Internal to allocators/: shared by pymalloc.c (our model) and cpython.c (the real obmalloc)
 * so that both can be given exactly the same arena placement.
 *
 * Placement modes
 *   unaligned  mmap(NULL, arena_size): wherever the kernel puts it (what CPython 3.3+ does).
 *              Under ASLR the base is usually not aligned to the pool size, which costs the arena
 *              one pool (63 instead of 64 in 3.11).
 *   aligned    every base aligned to the pool size (map a little more, trim the ends).
 *   recorded   bases come from placement facts (hr_placer_fact), consumed in order, one per new
 *              arena. Each base is first tried exactly (MAP_FIXED_NOREPLACE). When that range is
 *              taken, the arena is mapped elsewhere at an address with the same remainder modulo
 *              the pool size, so the pool layout (63 or 64 pools, first pool offset) and every
 *              block offset inside the arena stay identical; only the radix-tree node counts of
 *              the statistics could then differ (counted in `fallback`). With no fact left, the
 *              mode degrades to `unaligned` (counted in `missing`).
 *   malloc     arena = malloc(arena_size), as Python 2.x did (the base is then 16 bytes past a page
 *              or anywhere in the heap, so nearly always misaligned).
 *
 * Membership
 *   hr_placer_contains(p) answers "is p inside a live arena" in constant time: a three-level
 *   radix map keyed by p >> arena_bits ("slots" of one arena size). An arena covers at most two
 *   slots: from its start offset to the end of its first slot, and from the start of the next
 *   slot up to the same offset. Each slot keeps both limits:
 *       p in an arena  <=>  off(p) < cover.end  ||  (cover.start1 != 0 && off(p) >= cover.start1-1)
 *   Invariant: at most one arena starts in a slot and at most one ends in it, so the two fields
 *   never need to hold two values. Nodes are created on demand and kept until hr_placer_fini.
 */
#ifndef HR_ARENA_PLACE_H
#define HR_ARENA_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include "hr_alloc.h"

typedef enum hr_place_mode {
    HR_PLACE_UNALIGNED = 0,
    HR_PLACE_ALIGNED,
    HR_PLACE_RECORDED,
    HR_PLACE_MALLOC
} hr_place_mode_t;

#define HR_PLACE_BOT_BITS 14
#define HR_PLACE_MID_BITS 15

typedef struct hr_place_cover {
    uint32_t end;    /* an arena that started in the previous slot ends here (0: none) */
    uint32_t start1; /* 1 + offset at which an arena starts in this slot (0: none) */
} hr_place_cover_t;

typedef struct hr_place_bot {
    hr_place_cover_t cover[1u << HR_PLACE_BOT_BITS];
} hr_place_bot_t;

typedef struct hr_place_mid {
    hr_place_bot_t *bot[1u << HR_PLACE_MID_BITS]; /* owned */
} hr_place_mid_t;

/* One live arena. base is what the allocator uses; [map_base, map_base + map_len) is what
 * must be unmapped (map_len == 0: base came from malloc and map_base is that pointer). */
typedef struct hr_place_live {
    uintptr_t base;
    uintptr_t map_base;
    size_t map_len;
} hr_place_live_t;

typedef struct hr_placer {
    hr_place_mode_t mode;
    size_t arena_size;   /* power of two */
    unsigned arena_bits; /* log2(arena_size) */
    size_t pool_size;    /* power of two: the alignment that decides 63 or 64 pools */
    size_t page;         /* system page size */

    /* recorded facts (bases), consumed from `fact_head`; owned */
    uint64_t *facts;
    size_t nfacts, fact_head, facts_cap;

    /* live arenas, unordered; owned */
    hr_place_live_t *live;
    size_t nlive, live_cap;

    /* membership map; root has 2^(64 - arena_bits - MID - BOT) entries; owned */
    hr_place_mid_t **root;
    unsigned top_shift; /* = HR_PLACE_BOT_BITS + HR_PLACE_MID_BITS */

    /* counters */
    uint64_t exact;        /* recorded: mapped at the recorded base */
    uint64_t fallback;     /* recorded: mapped elsewhere with the same pool remainder */
    uint64_t missing;      /* recorded: no fact left, mapped as `unaligned` */
    uint64_t facts_ignored;/* facts of another size, or unmap facts */
} hr_placer_t;

/* Parse "unaligned" / "aligned" / "recorded" / "malloc". Returns 0 or HR_EUSAGE. */
int hr_place_parse(const char *s, hr_place_mode_t *mode);
const char *hr_place_name(hr_place_mode_t mode);

int hr_placer_init(hr_placer_t *pl, hr_place_mode_t mode, size_t arena_size, size_t pool_size,
                   hr_err_t *err);
/* Unmap every arena still live and free the map. Accepts a zeroed placer. */
void hr_placer_fini(hr_placer_t *pl);
/* A placement fact from the trace (hr_alloc_vt.arena_fact). Only mapped facts of exactly
 * arena_size are queued (others, e.g. CPython 3.11's 16 KiB data-stack chunks, are counted and
 * ignored); they matter only in `recorded` mode but are queued in every mode. */
void hr_placer_fact(hr_placer_t *pl, uint64_t base, uint64_t size, int mapped);
/* Map one arena of arena_size bytes, register it as live. Returns its base or NULL. */
void *hr_placer_map(hr_placer_t *pl);
/* Unmap a live arena by its base; returns 0, or -1 if base is not a live arena. */
int hr_placer_unmap(hr_placer_t *pl, void *base);

HR_INLINE int hr_placer_contains(const hr_placer_t *pl, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t k = a >> pl->arena_bits;
    const hr_place_mid_t *mid = pl->root[k >> pl->top_shift];
    if (HR_LIKELY(mid != NULL)) {
        const hr_place_bot_t *bot =
            mid->bot[(k >> HR_PLACE_BOT_BITS) & ((1u << HR_PLACE_MID_BITS) - 1)];
        if (HR_LIKELY(bot != NULL)) {
            const hr_place_cover_t *c = &bot->cover[k & ((1u << HR_PLACE_BOT_BITS) - 1)];
            uint32_t off = (uint32_t)(a & (pl->arena_size - 1));
            return off < c->end || (c->start1 != 0 && off >= c->start1 - 1);
        }
    }
    return 0;
}

#endif /* HR_ARENA_PLACE_H */

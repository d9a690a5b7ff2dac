/* arena_place.c: arena placement (unaligned, aligned, recorded, malloc) and the live-arena map.
 * See arena_place.h for the theory of operation. */
#include "arena_place.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Map nodes are large (the root 256 KiB, a middle node 256 KiB, a bottom node 128 KiB for 1 MiB
 * arenas) and mostly zero: take them straight from mmap, whose pages stay untouched (no memset,
 * no resident memory) until an entry is written. */
static void *node_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void node_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

static const char *const place_names[] = {"unaligned", "aligned", "recorded", "malloc"};

int hr_place_parse(const char *s, hr_place_mode_t *mode)
{
    for (size_t i = 0; i < HR_ARRAY_LEN(place_names); i++)
        if (strcmp(s, place_names[i]) == 0) {
            *mode = (hr_place_mode_t)i;
            return HR_OK;
        }
    return HR_EUSAGE;
}

const char *hr_place_name(hr_place_mode_t mode)
{
    return (unsigned)mode < HR_ARRAY_LEN(place_names) ? place_names[mode] : "?";
}

int hr_placer_init(hr_placer_t *pl, hr_place_mode_t mode, size_t arena_size, size_t pool_size,
                   hr_err_t *err)
{
    memset(pl, 0, sizeof *pl);
    unsigned bits = 0;
    while (((size_t)1 << bits) < arena_size)
        bits++;
    if (((size_t)1 << bits) != arena_size || bits < 14 || bits > 30)
        return hr_err_set(err, HR_EUSAGE, "arena size %zu must be a power of two in 16K..1G",
                          arena_size);
    pl->mode = mode;
    pl->arena_size = arena_size;
    pl->arena_bits = bits;
    pl->pool_size = pool_size;
    long page = sysconf(_SC_PAGESIZE);
    pl->page = page > 0 ? (size_t)page : 4096;
    pl->top_shift = HR_PLACE_BOT_BITS + HR_PLACE_MID_BITS;
    size_t nroot = (size_t)1 << (64 - bits - pl->top_shift);
    pl->root = node_alloc(nroot * sizeof *pl->root);
    if (!pl->root)
        return hr_err_set(err, HR_ENOMEM, "out of memory for the arena map");
    return HR_OK;
}

/* Mark (used=1) or clear the slots covered by the arena at base. Returns 0 or HR_ENOMEM. */
static int map_mark(hr_placer_t *pl, uintptr_t base, int used)
{
    uintptr_t k = base >> pl->arena_bits;
    uint32_t off = (uint32_t)(base & (pl->arena_size - 1));
    for (int part = 0; part < (off ? 2 : 1); part++, k++) {
        hr_place_mid_t **midp = &pl->root[k >> pl->top_shift];
        if (!*midp) {
            if (!used)
                return HR_OK;
            if (!(*midp = node_alloc(sizeof **midp)))
                return HR_ENOMEM;
        }
        hr_place_bot_t **botp = &(*midp)->bot[(k >> HR_PLACE_BOT_BITS) &
                                              ((1u << HR_PLACE_MID_BITS) - 1)];
        if (!*botp) {
            if (!used)
                return HR_OK;
            if (!(*botp = node_alloc(sizeof **botp)))
                return HR_ENOMEM;
        }
        hr_place_cover_t *c = &(*botp)->cover[k & ((1u << HR_PLACE_BOT_BITS) - 1)];
        if (part == 0)
            c->start1 = used ? off + 1 : 0;
        else
            c->end = used ? off : 0;
    }
    return HR_OK;
}

/* Map arena_size bytes at an address congruent to `rem` modulo the pool size. */
static void *map_with_remainder(hr_placer_t *pl, uintptr_t rem, hr_place_live_t *rec)
{
    size_t len = pl->arena_size + pl->pool_size + pl->page;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t lo = (uintptr_t)m, hi = lo + len;
    uintptr_t s = (lo & ~(uintptr_t)(pl->pool_size - 1)) + rem;
    if (s < lo)
        s += pl->pool_size;
    uintptr_t keep_lo = s & ~(uintptr_t)(pl->page - 1);
    uintptr_t keep_hi = (s + pl->arena_size + pl->page - 1) & ~(uintptr_t)(pl->page - 1);
    if (keep_lo > lo)
        munmap((void *)lo, keep_lo - lo);
    if (hi > keep_hi)
        munmap((void *)keep_hi, hi - keep_hi);
    rec->base = s;
    rec->map_base = keep_lo;
    rec->map_len = keep_hi - keep_lo;
    return (void *)s;
}

/* Try to map the arena exactly at `base`. */
static void *map_exact(hr_placer_t *pl, uintptr_t base, hr_place_live_t *rec)
{
    uintptr_t lo = base & ~(uintptr_t)(pl->page - 1);
    uintptr_t hi = (base + pl->arena_size + pl->page - 1) & ~(uintptr_t)(pl->page - 1);
    if (base == 0 || hi <= lo || hi > ((uintptr_t)1 << 56))
        return NULL;
    void *m = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if ((uintptr_t)m != lo) { /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
        munmap(m, hi - lo);
        return NULL;
    }
    rec->base = base;
    rec->map_base = lo;
    rec->map_len = hi - lo;
    return (void *)base;
}

void hr_placer_fact(hr_placer_t *pl, uint64_t base, uint64_t size, int mapped)
{
    if (!mapped || size != pl->arena_size) {
        pl->facts_ignored++;
        return;
    }
    if (pl->nfacts == pl->facts_cap) {
        size_t cap = pl->facts_cap ? pl->facts_cap * 2 : 64;
        uint64_t *f = realloc(pl->facts, cap * sizeof *f);
        if (!f) {
            pl->facts_ignored++;
            return;
        }
        pl->facts = f;
        pl->facts_cap = cap;
    }
    pl->facts[pl->nfacts++] = base;
}

void *hr_placer_map(hr_placer_t *pl)
{
    if (pl->nlive == pl->live_cap) {
        size_t cap = pl->live_cap ? pl->live_cap * 2 : 16;
        hr_place_live_t *l = realloc(pl->live, cap * sizeof *l);
        if (!l)
            return NULL;
        pl->live = l;
        pl->live_cap = cap;
    }
    hr_place_live_t rec = {0, 0, 0};
    void *base = NULL;
    switch (pl->mode) {
    case HR_PLACE_RECORDED:
        if (pl->fact_head < pl->nfacts) {
            uintptr_t want = (uintptr_t)pl->facts[pl->fact_head++];
            base = map_exact(pl, want, &rec);
            if (base) {
                pl->exact++;
            } else {
                base = map_with_remainder(pl, want & (pl->pool_size - 1), &rec);
                if (base)
                    pl->fallback++;
            }
            break;
        }
        pl->missing++; /* no fact left: map where the kernel likes */
        /* fall through */
    case HR_PLACE_UNALIGNED: {
        void *m = mmap(NULL, pl->arena_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            base = m;
            rec.base = rec.map_base = (uintptr_t)m;
            rec.map_len = pl->arena_size;
        }
        break;
    }
    case HR_PLACE_ALIGNED:
        base = map_with_remainder(pl, 0, &rec);
        break;
    case HR_PLACE_MALLOC:
        base = malloc(pl->arena_size);
        rec.base = rec.map_base = (uintptr_t)base;
        rec.map_len = 0;
        break;
    }
    if (!base)
        return NULL;
    if (map_mark(pl, rec.base, 1) != HR_OK) {
        if (rec.map_len)
            munmap((void *)rec.map_base, rec.map_len);
        else
            free((void *)rec.map_base);
        return NULL;
    }
    pl->live[pl->nlive++] = rec;
    return base;
}

static void release(const hr_place_live_t *rec)
{
    if (rec->map_len)
        munmap((void *)rec->map_base, rec->map_len);
    else
        free((void *)rec->map_base);
}

int hr_placer_unmap(hr_placer_t *pl, void *base)
{
    /* Search from the end: the most recently mapped arenas are the likeliest to go first. */
    for (size_t i = pl->nlive; i-- > 0;) {
        if (pl->live[i].base != (uintptr_t)base)
            continue;
        hr_place_live_t rec = pl->live[i];
        pl->live[i] = pl->live[--pl->nlive];
        map_mark(pl, rec.base, 0);
        release(&rec);
        return 0;
    }
    return -1;
}

void hr_placer_fini(hr_placer_t *pl)
{
    for (size_t i = 0; i < pl->nlive; i++)
        release(&pl->live[i]);
    if (pl->root) {
        size_t nroot = (size_t)1 << (64 - pl->arena_bits - pl->top_shift);
        for (size_t i = 0; i < nroot; i++) {
            hr_place_mid_t *mid = pl->root[i];
            if (!mid)
                continue;
            for (size_t j = 0; j < HR_ARRAY_LEN(mid->bot); j++)
                node_free(mid->bot[j], sizeof *mid->bot[j]);
            node_free(mid, sizeof *mid);
        }
        node_free(pl->root, nroot * sizeof *pl->root);
    }
    free(pl->live);
    free(pl->facts);
    memset(pl, 0, sizeof *pl);
}

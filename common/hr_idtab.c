/* hr_idtab.c: the id-indexed record table (see hr_idtab.h). */
#include "hr_idtab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The leaf pool.
 *
 * Leaves never come from malloc, so the table neither hides inside the heap of the allocator being
 * measured (libc) nor stays resident after its ids died. One mmap per leaf and one munmap per dead
 * leaf cost more than the rest of a replay (two syscalls, a fault and a TLB shootdown per 256 ids),
 * so leaves are carved from chunks of HR_IDTAB_CHUNK leaves (mapped with MAP_POPULATE: one fault
 * path for the whole chunk), and a dead leaf goes on a stack of free leaves:
 *
 *   dirty  resident, reused first (zeroed with memset);
 *   clean  given back with MADV_DONTNEED: not resident, reads as zero, reused without a memset.
 *
 * Invariant: ndirty <= dirty_limit() after every release, so the resident part of the pool stays
 * within max(HR_IDTAB_CACHE, leaves / 8) leaves of what live ids need. Trimming takes the oldest
 * dirty leaves, sorted by address, and gives back the pages of each run of adjacent leaves with
 * one madvise (ids die roughly in id order, so runs are long). Chunks are unmapped only by hr_idtab_free:
 * address space follows the peak, resident memory the live ids. */
#define CCHUNK ((size_t)64 << 10) /* bytes per chunk of compact leaves */

static size_t leaf_bytes(const hr_idtab_t *t) { return (size_t)HR_IDTAB_LEAF * t->rec_size; }

static size_t dirty_limit(const hr_idtab_t *t)
{
    size_t l = t->leaves / 8;
    return l > HR_IDTAB_CACHE ? l : HR_IDTAB_CACHE;
}

static int new_chunk(hr_idtab_t *t)
{
    size_t cap = (t->nchunks + 1) * HR_IDTAB_CHUNK;
    uint8_t **c = realloc(t->chunks, (t->nchunks + 1) * sizeof *c);
    if (!c)
        return -1;
    t->chunks = c;
    uint8_t **d = realloc(t->dirty, cap * sizeof *d);
    if (!d)
        return -1;
    t->dirty = d;
    uint8_t **cl = realloc(t->clean, cap * sizeof *cl);
    if (!cl)
        return -1;
    t->clean = cl;
    size_t bytes = HR_IDTAB_CHUNK * leaf_bytes(t);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    t->chunks[t->nchunks++] = p;
    t->carve = p;
    t->carve_end = (uint8_t *)p + bytes;
    return 0;
}

static uint8_t *leaf_new(hr_idtab_t *t)
{
    if (t->ndirty) {
        uint8_t *p = t->dirty[--t->ndirty];
        if (!t->dense)
            memset(p, 0, leaf_bytes(t));
        return p;
    }
    if (t->nclean)
        return t->clean[--t->nclean];
    if (t->carve == t->carve_end && new_chunk(t))
        return NULL;
    uint8_t *p = t->carve;
    t->carve += leaf_bytes(t);
    return p;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (uint8_t *const *)a, y = (uintptr_t) * (uint8_t *const *)b;
    return x < y ? -1 : x > y;
}

/* Give the oldest dirty leaves back to the kernel until half the limit is left.
 *
 * madvise works on whole pages, and a leaf need not be a whole number of pages (records of 24
 * bytes; 16-byte records on a 64 KiB-page machine): madvise of a leaf that starts on a page
 * boundary but ends inside a page rounds the length up and zeroes the start of the next leaf,
 * which may be live. So each run of adjacent leaves gives back only the pages it covers entirely,
 * and the bytes of the run outside them (at most a page at each end) are zeroed by hand: every
 * trimmed leaf reads as zero, as the clean stack promises, and the resident memory left is less
 * than two pages per run. If madvise fails, the run is zeroed by hand, so the invariant
 * ndirty <= dirty_limit() holds whatever the kernel says (a failing madvise used to leave the
 * leaves dirty, over the limit, and every later release sorted them all again). */
static void trim(hr_idtab_t *t)
{
    size_t keep = dirty_limit(t) / 2, m = t->ndirty - keep, lb = leaf_bytes(t);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    qsort(t->dirty, m, sizeof *t->dirty, by_address);
    for (size_t i = 0; i < m;) {
        size_t j = i + 1;
        while (j < m && t->dirty[j] == t->dirty[j - 1] + lb)
            j++;
        uintptr_t s = (uintptr_t)t->dirty[i], e = s + (j - i) * lb;
        uintptr_t lo = (s + pg - 1) & ~(pg - 1), hi = e & ~(pg - 1);
        if (lo < hi && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0) {
            memset((void *)s, 0, lo - s);
            memset((void *)hi, 0, e - hi);
        } else {
            memset((void *)s, 0, e - s);
        }
        for (size_t k = i; k < j; k++)
            t->clean[t->nclean++] = t->dirty[k];
        i = j;
    }
    memmove(t->dirty, t->dirty + m, keep * sizeof *t->dirty);
    t->ndirty = keep;
}

static void leaf_free(hr_idtab_t *t, uint8_t *leaf)
{
    t->dirty[t->ndirty++] = leaf;
    if (t->ndirty > dirty_limit(t))
        trim(t);
}

void hr_idtab_init(hr_idtab_t *t, size_t rec_size)
{
    memset(t, 0, sizeof *t);
    t->rec_size = rec_size;
    t->compact_at = UINT32_MAX;
}

void hr_idtab_dense(hr_idtab_t *t) { t->dense = 1; }

void hr_idtab_compact(hr_idtab_t *t, size_t live_off, uint64_t live_mask)
{
    t->live_off = live_off;
    t->live_mask = live_mask;
    t->compact_at = HR_IDTAB_COMPACT_LATE;
}

static void account(hr_idtab_t *t, ptrdiff_t delta)
{
    t->bytes += (size_t)delta;
    if (t->bytes > t->peak_bytes)
        t->peak_bytes = t->bytes;
}

void hr_idtab_account_extra(hr_idtab_t *t, ptrdiff_t delta) { account(t, delta); }

static size_t cchunk_bytes(const hr_idtab_t *t);

/* {==== The directory ====
 *
 * dir[] and live[] have an entry per leaf of the whole trace, so they are the one part of the
 * table whose size follows the trace's length rather than its live ids (12 bytes per 256 ids:
 * 47 MB per billion ids). They are mapped, not malloc'd, and grown with mremap, which moves
 * pages instead of copying them and leaves the new part unbacked (it reads as zero), and they
 * are given back to the kernel a group at a time: a group is the leaves whose live[] entries
 * fill one page (1024 leaves, 262,144 ids, with 4 KiB pages), and once every leaf of a closed
 * group is gone (the frontier passed its end), its pages of dir[] and live[] go with one
 * madvise(MADV_DONTNEED) each and read as zero again. So the resident directory is the groups
 * that hold a live id: a replay of a long trace with a small heap no longer carries the
 * directory of every id it ever saw (a recorded program, 100 M events, 19,504 blocks live at the
 * peak: 179 bytes of table per live block, most of them directory, before this).
 *
 * Invariants: ndir is a multiple of the group size; gcount[g] without GROUP_HELD is the number
 * of leaves of group g whose dir[] entry is not NULL; GROUP_HELD is set iff the group's
 * directory bytes are counted in t->bytes (from its first leaf until it is given back). */
#define GROUP_HELD 0x80000000u

static size_t group_leaves(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t g = pg > 0 ? (size_t)pg / sizeof(uint32_t) : 1024;
    return g >= 1024 ? g : 1024; /* a power of two, and dir[]'s share is whole pages too */
}

static size_t group_bytes(const hr_idtab_t *t)
{
    return t->gleaves * (sizeof *t->dir + sizeof *t->live);
}

/* Room in dir[] and live[] for leaf k. -1 when out of memory (the table is unchanged but for
 * mappings it already grew, which hr_idtab_free unmaps). */
static int dir_grow(hr_idtab_t *t, uint64_t k)
{
    if (!t->gleaves)
        t->gleaves = group_leaves();
    size_t n = t->ndir ? t->ndir : t->gleaves;
    while (n <= k)
        n *= 2;
    size_t ng = n / t->gleaves, og = t->ndir / t->gleaves;
    uint32_t *g = realloc(t->gcount, ng * sizeof *g);
    if (!g)
        return -1;
    memset(g + og, 0, (ng - og) * sizeof *g);
    t->gcount = g;
    uint8_t **d = hr_map_grow(t->dir, &t->dir_map, n * sizeof *d);
    if (!d)
        return -1;
    t->dir = d;
    uint32_t *l = hr_map_grow(t->live, &t->live_map, n * sizeof *l);
    if (!l)
        return -1;
    t->live = l;
    t->ndir = n;
    return 0;
}

/* dir[k] went from NULL to a leaf. */
static void dir_held(hr_idtab_t *t, uint64_t k)
{
    uint32_t *g = &t->gcount[k / t->gleaves];
    if (!(*g & GROUP_HELD)) {
        *g |= GROUP_HELD;
        account(t, (ptrdiff_t)group_bytes(t));
    }
    (*g)++;
}

/* Give back group gi's pages if it holds no leaf and no id of it can be put any more (the
 * newest id put or being put is in leaf kfront). */
static void group_check(hr_idtab_t *t, size_t gi, uint64_t kfront)
{
    uint32_t *g = &t->gcount[gi];
    if (*g != GROUP_HELD || kfront / t->gleaves <= gi)
        return;
    *g = 0;
    account(t, -(ptrdiff_t)group_bytes(t));
    /* If madvise fails the pages stay resident (they are all zero already): only memory. */
    madvise(t->dir + gi * t->gleaves, t->gleaves * sizeof *t->dir, MADV_DONTNEED);
    madvise(t->live + gi * t->gleaves, t->gleaves * sizeof *t->live, MADV_DONTNEED);
}

/* dir[k] went from a leaf to NULL; kfront as for group_check. */
static void dir_dropped(hr_idtab_t *t, uint64_t k, uint64_t kfront)
{
    t->dir[k] = NULL;
    t->gcount[k / t->gleaves]--;
    group_check(t, k / t->gleaves, kfront);
}

/* The leaf of the newest id put (0 before any). */
static uint64_t front_leaf(const hr_idtab_t *t)
{
    return t->frontier ? (t->frontier - 1) >> HR_IDTAB_SHIFT : 0;
}


void hr_idtab_free(hr_idtab_t *t)
{
    for (size_t k = 0; k < t->nchunks; k++)
        munmap(t->chunks[k], HR_IDTAB_CHUNK * leaf_bytes(t));
    for (size_t k = 0; k < t->ncchunks; k++)
        munmap(t->cchunks[k], cchunk_bytes(t));
    free(t->cchunks);
    free(t->chunks);
    free(t->dirty);
    free(t->clean);
    if (t->dir_map)
        munmap(t->dir, t->dir_map);
    if (t->live_map)
        munmap(t->live, t->live_map);
    free(t->gcount);
    size_t rs = t->rec_size;
    int dense = t->dense;
    hr_idtab_init(t, rs);
    t->dense = dense;
}

/* {==== Compact leaves ====
 *
 * A compact leaf is a closed leaf with few live ids: the records of m of its slots (ids) packed
 * in slot order, and which slots they are, said one of two ways by the leaf's size class:
 *   tiny (capacity <= TINY_CAP records): the sorted slot numbers, a byte each, after the header;
 *   bitmap (larger): a 256-bit map after the header, record r belonging to the r-th set bit,
 *     and rank[w] == the set bits in words 0..w-1, so finding a record costs one popcount.
 * dir[k] points to it with bit 0 set. It comes from a slab of its size class (capacity caps[cls]
 * records), carved from mmap'd chunks of cchunk_bytes(), never from malloc. Invariants: m <=
 * cap(cls) records, of which live[k] are live (the others died since the leaf was last built:
 * their records say so); the slots change only when a leaf is built (cl_add, cl_done); a compact
 * leaf is never empty (it is freed when live[k] falls to 0). A tiny header is 8-24 bytes where a
 * bitmap one is 40: on a heap whose survivors keep about a dozen ids a leaf (the churn generator)
 * that is about a byte and a half per live block. */
typedef struct cleaf {
    uint8_t cls;  /* size class */
    uint8_t m;    /* slots (records) held, live or not; live[k] of them are live */
    uint8_t rank[HR_IDTAB_LEAF / 64]; /* bitmap: set bits before word w (at most 192) */
    /* tiny: m slot numbers from offset 2 (over rank), records from chdr(cls);
     * bitmap: uint64_t bits[HR_IDTAB_LEAF / 64] from offset 8, records from offset 40 */
} cleaf_t;
_Static_assert(HR_IDTAB_LEAF - 64 <= UINT8_MAX, "cleaf_t.rank must hold the rank of the last word");
_Static_assert(HR_IDTAB_COMPACT_MAX <= UINT8_MAX, "cleaf_t.m must count a leaf's records");
#define TINY_CAP 22

/* Capacities grow by at most 1.25x: a packed leaf is at least 4/5 full when built, and rebuilt
 * into the next class down as soon as its live records fit there. */
static const uint16_t caps[HR_IDTAB_CLASSES] = {4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 16, 18,
                                                20, 22, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128};
static size_t class_cap(unsigned cls) { return caps[cls]; }
static int tiny(unsigned cls) { return class_cap(cls) <= TINY_CAP; }
/* Header bytes: records start 8-byte aligned, for records of pointers. */
static size_t chdr(unsigned cls)
{
    return tiny(cls) ? (2 + class_cap(cls) + 7) & ~(size_t)7 : 8 + HR_IDTAB_LEAF / 8;
}
/* Leaves of a class lie back to back in a slab. */
static size_t class_bytes(const hr_idtab_t *t, unsigned cls)
{
    return (chdr(cls) + class_cap(cls) * t->rec_size + 7) & ~(size_t)7;
}
static uint8_t *crecs(cleaf_t *c) { return (uint8_t *)c + chdr(c->cls); }
static uint8_t *cslots(cleaf_t *c) { return (uint8_t *)c + 2; }
static uint64_t *cbits(cleaf_t *c) { return (uint64_t *)(void *)((uint8_t *)c + 8); }
/* Bytes per slab chunk: CCHUNK, or one leaf of the largest class if records are so large (over
 * 500 bytes) that it would not fit. */
static size_t cchunk_bytes(const hr_idtab_t *t)
{
    size_t b = class_bytes(t, HR_IDTAB_CLASSES - 1);
    return b > CCHUNK ? b : CCHUNK;
}

static cleaf_t *cleaf_new(hr_idtab_t *t, unsigned cls)
{
    struct hr_cslab *sl = &t->cslab[cls];
    size_t bytes = class_bytes(t, cls);
    cleaf_t *c;
    if (sl->free) {
        c = sl->free;
        sl->free = *(void **)c;
    } else {
        if ((size_t)(sl->carve_end - sl->carve) < bytes) {
            uint8_t **cc = realloc(t->cchunks, (t->ncchunks + 1) * sizeof *cc);
            if (!cc)
                return NULL;
            t->cchunks = cc;
            size_t cb = cchunk_bytes(t);
            void *p = mmap(NULL, cb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
            t->cchunks[t->ncchunks++] = p;
            sl->carve = p;
            sl->carve_end = (uint8_t *)p + cb;
        }
        c = (cleaf_t *)sl->carve;
        sl->carve += bytes;
    }
    memset(c, 0, chdr(cls));
    c->cls = (uint8_t)cls;
    t->compacts++;
    account(t, (ptrdiff_t)bytes);
    return c;
}

static void cleaf_free(hr_idtab_t *t, cleaf_t *c)
{
    struct hr_cslab *sl = &t->cslab[c->cls];
    account(t, -(ptrdiff_t)class_bytes(t, c->cls));
    t->compacts--;
    *(void **)c = sl->free;
    sl->free = c;
}

static int is_live(const hr_idtab_t *t, const uint8_t *rec)
{
    uint64_t w;
    memcpy(&w, rec + t->live_off, sizeof w);
    return (w & t->live_mask) != 0;
}

/* One record copied (the sizes the table's users have are copied inline, not by a call). */
static inline void rec_copy(uint8_t *dst, const uint8_t *src, size_t rs)
{
    switch (rs) {
    case 8: memcpy(dst, src, 8); break;
    case 12: memcpy(dst, src, 12); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, rs);
    }
}

static unsigned class_for(size_t n)
{
    unsigned cls = 0;
    while (class_cap(cls) < n)
        cls++;
    return cls;
}

/* Bits set in x (portable: no popcnt instruction is assumed, and libgcc's is a call). */
static size_t pop64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (size_t)((x * 0x0101010101010101ull) >> 56);
}

/* Building a compact leaf: records are added in increasing slot order, then cl_done. */
static void cl_add(const hr_idtab_t *t, cleaf_t *c, size_t slot, const uint8_t *rec)
{
    if (tiny(c->cls))
        cslots(c)[c->m] = (uint8_t)slot;
    else
        cbits(c)[slot >> 6] |= (uint64_t)1 << (slot & 63);
    rec_copy(crecs(c) + (size_t)c->m * t->rec_size, rec, t->rec_size);
    c->m++;
}

static void cl_done(cleaf_t *c)
{
    if (tiny(c->cls))
        return;
    size_t r = 0;
    for (size_t w = 0; w < HR_IDTAB_LEAF / 64; w++) {
        c->rank[w] = (uint8_t)r;
        r += pop64(cbits(c)[w]);
    }
}

/* The slots c holds, in order, into out; returns how many (c->m). */
static size_t cl_slots(cleaf_t *c, uint8_t out[HR_IDTAB_LEAF])
{
    if (tiny(c->cls)) {
        memcpy(out, cslots(c), c->m);
        return c->m;
    }
    size_t r = 0;
    for (size_t w = 0; w < HR_IDTAB_LEAF / 64; w++)
        for (uint64_t b = cbits(c)[w]; b; b &= b - 1)
            out[r++] = (uint8_t)(w * 64 + (size_t)__builtin_ctzll(b));
    return r;
}

void *hr_idtab_get_compact_(const hr_idtab_t *t, const uint8_t *leaf, uint64_t id)
{
    cleaf_t *c = (cleaf_t *)(uintptr_t)leaf;
    size_t i = (size_t)(id & (HR_IDTAB_LEAF - 1));
    if (tiny(c->cls)) {
        const uint8_t *sl = cslots(c);
        for (size_t r = 0; r < c->m && sl[r] <= i; r++)
            if (sl[r] == i)
                return crecs(c) + r * t->rec_size;
        return NULL;
    }
    const uint64_t *bits = cbits(c);
    size_t w = i >> 6;
    uint64_t below = bits[w] & (((uint64_t)1 << (i & 63)) - 1);
    if (!(bits[w] >> (i & 63) & 1))
        return NULL;
    return crecs(c) + (c->rank[w] + pop64(below)) * t->rec_size;
}

/* Make full leaf k compact (it is closed and has 1..COMPACT_MAX live ids). On failure (no memory,
 * or the caller's records disagree with the live count) the leaf simply stays full. */
static void compact_leaf(hr_idtab_t *t, uint64_t k)
{
    uint8_t *l = t->dir[k];
    uint32_t n = t->live[k];
    size_t rs = t->rec_size;
    cleaf_t *c = cleaf_new(t, class_for(n));
    if (!c)
        return;
    const size_t off = t->live_off;
    const uint64_t mask = t->live_mask;
    for (size_t i = 0; i < HR_IDTAB_LEAF; i++) {
        uint64_t w;
        memcpy(&w, l + i * rs + off, sizeof w);
        if (w & mask) {
            if (c->m == n) { /* more live records than live ids: not the caller's records */
                cleaf_free(t, c);
                return;
            }
            cl_add(t, c, i, l + i * rs);
        }
    }
    if (c->m != n) {
        cleaf_free(t, c);
        return;
    }
    cl_done(c);
    leaf_free(t, l);
    t->leaves--;
    account(t, -(ptrdiff_t)leaf_bytes(t));
    t->dir[k] = (uint8_t *)c + 1;
}

/* An id of compact leaf k was released (its record already says dead). Records do not move
 * here: a release costs a decrement, and the leaf is rebuilt, with its live records only, into
 * the class that fits them once they fit the next class down (O(records held) per rebuild, and
 * classes differ by at least one record in four: O(1) per release, amortised). */
static void compact_release(hr_idtab_t *t, uint64_t k)
{
    cleaf_t *c = (cleaf_t *)(uintptr_t)(t->dir[k] - 1);
    uint32_t n = t->live[k];
    if (n == 0) {
        cleaf_free(t, c);
        dir_dropped(t, k, front_leaf(t));
    } else if (c->cls > 0 && n <= class_cap(c->cls - 1u)) {
        cleaf_t *d = cleaf_new(t, class_for(n));
        if (!d)
            return; /* stays in the larger class */
        uint8_t slots[HR_IDTAB_LEAF];
        size_t m = cl_slots(c, slots);
        const uint8_t *rec = crecs(c);
        for (size_t r = 0; r < m; r++, rec += t->rec_size)
            if (is_live(t, rec))
                cl_add(t, d, slots[r], rec);
        cl_done(d);
        cleaf_free(t, c);
        t->dir[k] = (uint8_t *)d + 1;
    }
}

/* Leaf k is old enough to be compacted if the frontier is COMPACT_AGE leaves past it. */
static int old_enough(const hr_idtab_t *t, uint64_t k)
{
    return t->frontier > (k + 1 + HR_IDTAB_COMPACT_AGE) << HR_IDTAB_SHIFT;
}

/* Leaf k fell to COMPACT_LATE live ids. It waits in a ring until HR_IDTAB_LATE_RING more leaves
 * did the same, and is packed then if it still has live ids: ids dying in order (a mass free)
 * empty a leaf long before that, which costs nothing, where packing it at once would copy its
 * records and rebuild it smaller several times on the way to empty. At most that many sparse
 * leaves wait unpacked (256 KiB of 16-byte records). */
/* Pack leaf j if it is a full leaf with 1 .. most live ids. */
static void compact_if_sparse(hr_idtab_t *t, uint64_t j, uint32_t most)
{
    /* (a group given back is not read: its pages would come back as the zero page) */
    if (t->gcount[j / t->gleaves] && t->dir[j] && !((uintptr_t)t->dir[j] & 1) && t->live[j] > 0 &&
        t->live[j] <= most)
        compact_leaf(t, j);
}

static void late_push(hr_idtab_t *t, uint64_t k)
{
    if (t->nlate == HR_IDTAB_LATE_RING) {
        uint64_t j = t->late[t->late_head];
        t->late[t->late_head] = k;
        t->late_head = (t->late_head + 1) % HR_IDTAB_LATE_RING;
        /* closed leaves never come back, so j is the same leaf if it is still there */
        compact_if_sparse(t, j, HR_IDTAB_COMPACT_LATE);
        return;
    }
    t->late[(t->late_head + t->nlate++) % HR_IDTAB_LATE_RING] = k;
}

void *hr_idtab_put_slow(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (k >= t->ndir && dir_grow(t, k) != 0)
        return NULL;
    if (!t->dir[k]) {
        /* The frontier leaves its old leaf: free that one if it emptied while still open (ids
         * may be skipped when only some ids are put, so no release would ever close it). */
        uint64_t f = t->frontier ? (t->frontier - 1) >> HR_IDTAB_SHIFT : k;
        if (f < k && t->dir[f] && t->live[f] == 0) {
            leaf_free(t, t->dir[f]);
            dir_dropped(t, f, k);
            t->leaves--;
            account(t, -(ptrdiff_t)leaf_bytes(t));
        } else if (f < k) {
            group_check(t, f / t->gleaves, k);
        }
        t->dir[k] = leaf_new(t);
        if (!t->dir[k])
            return NULL;
        dir_held(t, k);
        account(t, (ptrdiff_t)leaf_bytes(t));
        if (++t->leaves > t->peak_leaves)
            t->peak_leaves = t->leaves;
        /* The leaf COMPACT_AGE behind this one has had its chance to die young. */
        if (t->compact_at != UINT32_MAX && k > HR_IDTAB_COMPACT_AGE)
            compact_if_sparse(t, k - HR_IDTAB_COMPACT_AGE - 1, HR_IDTAB_COMPACT_MAX);
    }
    t->live[k]++;
    if (id >= t->frontier)
        t->frontier = id + 1;
    return t->dir[k] + (size_t)(id & (HR_IDTAB_LEAF - 1)) * t->rec_size;
}

void hr_idtab_release_slow(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if ((uintptr_t)t->dir[k] & 1) {
        compact_release(t, k);
        return;
    }
    if (t->live[k] != 0) { /* down to COMPACT_LATE live ids */
        if (old_enough(t, k))
            late_push(t, k);
        return;
    }
    /* Free the leaf only when no id of it can be put any more. A leaf emptied while the frontier
     * is still inside it stays; the next put of a later id in it finds it. */
    if (t->frontier >= (k + 1) << HR_IDTAB_SHIFT) {
        leaf_free(t, t->dir[k]);
        dir_dropped(t, k, front_leaf(t));
        t->leaves--;
        account(t, -(ptrdiff_t)leaf_bytes(t));
    }
}

size_t hr_idtab_bytes(const hr_idtab_t *t) { return t->bytes + t->ndirty * leaf_bytes(t); }

int hr_idtab_each(hr_idtab_t *t, int (*fn)(void *arg, uint64_t id, void *rec), void *arg)
{
    for (size_t k = 0; k < t->ndir; k++) {
        if (k % t->gleaves == 0 && !t->gcount[k / t->gleaves]) {
            k += t->gleaves - 1; /* a group without leaves (not read: see group_check) */
            continue;
        }
        if (!t->dir[k])
            continue;
        if ((uintptr_t)t->dir[k] & 1) {
            cleaf_t *c = (cleaf_t *)(uintptr_t)(t->dir[k] - 1);
            uint8_t slots[HR_IDTAB_LEAF];
            size_t m = cl_slots(c, slots);
            for (size_t r = 0; r < m; r++) {
                int rc = fn(arg, ((uint64_t)k << HR_IDTAB_SHIFT) + slots[r],
                            crecs(c) + r * t->rec_size);
                if (rc)
                    return rc;
            }
            continue;
        }
        for (uint64_t i = 0; i < HR_IDTAB_LEAF; i++) {
            uint64_t id = ((uint64_t)k << HR_IDTAB_SHIFT) + i;
            if (id >= t->frontier)
                return 0;
            int rc = fn(arg, id, t->dir[k] + i * t->rec_size);
            if (rc)
                return rc;
        }
    }
    return 0;
}

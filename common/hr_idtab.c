/* hr_idtab.c: the id-indexed record table (see hr_idtab.h). */
#include "hr_idtab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
 * dirty leaves, sorted by address, and gives back each run of adjacent leaves with one madvise
 * (ids die roughly in id order, so runs are long). Chunks are unmapped only by hr_idtab_free:
 * address space follows the peak, resident memory the live ids. */
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

/* Give the oldest dirty leaves back to the kernel until half the limit is left. */
static void trim(hr_idtab_t *t)
{
    size_t keep = dirty_limit(t) / 2, m = t->ndirty - keep, lb = leaf_bytes(t), w = 0;
    qsort(t->dirty, m, sizeof *t->dirty, by_address);
    for (size_t i = 0; i < m;) {
        size_t j = i + 1;
        while (j < m && t->dirty[j] == t->dirty[j - 1] + lb)
            j++;
        if (madvise(t->dirty[i], (j - i) * lb, MADV_DONTNEED) == 0) {
            for (size_t k = i; k < j; k++)
                t->clean[t->nclean++] = t->dirty[k];
        } else { /* the pages stay resident and dirty (zeroed on reuse): nothing is lost */
            for (size_t k = i; k < j; k++)
                t->dirty[w++] = t->dirty[k]; /* w <= k */
        }
        i = j;
    }
    memmove(t->dirty + w, t->dirty + m, keep * sizeof *t->dirty);
    t->ndirty = w + keep;
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
}

void hr_idtab_free(hr_idtab_t *t)
{
    for (size_t k = 0; k < t->nchunks; k++)
        munmap(t->chunks[k], HR_IDTAB_CHUNK * leaf_bytes(t));
    free(t->chunks);
    free(t->dirty);
    free(t->clean);
    free(t->dir);
    free(t->live);
    size_t rs = t->rec_size;
    hr_idtab_init(t, rs);
}

void *hr_idtab_put_slow(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (k >= t->ndir) {
        size_t n = t->ndir ? t->ndir : 64;
        while (n <= k)
            n *= 2;
        uint8_t **d = realloc(t->dir, n * sizeof *d);
        if (!d)
            return NULL;
        t->dir = d;
        uint32_t *l = realloc(t->live, n * sizeof *l);
        if (!l)
            return NULL;
        t->live = l;
        memset(t->dir + t->ndir, 0, (n - t->ndir) * sizeof *d);
        memset(t->live + t->ndir, 0, (n - t->ndir) * sizeof *l);
        t->ndir = n;
    }
    if (!t->dir[k]) {
        /* The frontier leaves its old leaf: free that one if it emptied while still open (ids
         * may be skipped when only some ids are put, so no release would ever close it). */
        uint64_t f = t->frontier ? (t->frontier - 1) >> HR_IDTAB_SHIFT : k;
        if (f < k && t->dir[f] && t->live[f] == 0) {
            leaf_free(t, t->dir[f]);
            t->dir[f] = NULL;
            t->leaves--;
        }
        t->dir[k] = leaf_new(t);
        if (!t->dir[k])
            return NULL;
        if (++t->leaves > t->peak_leaves)
            t->peak_leaves = t->leaves;
    }
    t->live[k]++;
    if (id >= t->frontier)
        t->frontier = id + 1;
    return t->dir[k] + (size_t)(id & (HR_IDTAB_LEAF - 1)) * t->rec_size;
}

void hr_idtab_release_slow(hr_idtab_t *t, uint64_t k)
{
    /* Free the leaf only when no id of it can be put any more. A leaf emptied while the frontier
     * is still inside it stays; the next put of a later id in it finds it. */
    if (t->frontier >= (k + 1) << HR_IDTAB_SHIFT) {
        leaf_free(t, t->dir[k]);
        t->dir[k] = NULL;
        t->leaves--;
    }
}

size_t hr_idtab_bytes(const hr_idtab_t *t)
{
    return (t->leaves + t->ndirty) * HR_IDTAB_LEAF * t->rec_size +
           t->ndir * (sizeof *t->dir + sizeof *t->live);
}

int hr_idtab_each(hr_idtab_t *t, int (*fn)(void *arg, uint64_t id, void *rec), void *arg)
{
    for (size_t k = 0; k < t->ndir; k++) {
        if (!t->dir[k])
            continue;
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

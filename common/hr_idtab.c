/* hr_idtab.c: the id-indexed record table (see hr_idtab.h). */
#include "hr_idtab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Leaves come straight from mmap and go back with munmap: the table never touches malloc, so
 * it neither hides inside the heap of the allocator being measured (libc) nor stays resident
 * after its ids died. mmap gives zeroed pages. */
static size_t leaf_bytes(const hr_idtab_t *t) { return (size_t)HR_IDTAB_LEAF * t->rec_size; }

static uint8_t *leaf_new(hr_idtab_t *t)
{
    if (t->ncache) { /* a recently freed leaf: zero it instead of asking the kernel */
        uint8_t *p = t->cache[--t->ncache];
        memset(p, 0, leaf_bytes(t));
        return p;
    }
    void *p = mmap(NULL, leaf_bytes(t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void leaf_free(hr_idtab_t *t, uint8_t *leaf)
{
    if (t->ncache < HR_IDTAB_CACHE)
        t->cache[t->ncache++] = leaf;
    else
        munmap(leaf, leaf_bytes(t));
}

void hr_idtab_init(hr_idtab_t *t, size_t rec_size)
{
    memset(t, 0, sizeof *t);
    t->rec_size = rec_size;
}

void hr_idtab_free(hr_idtab_t *t)
{
    for (size_t k = 0; k < t->ndir; k++)
        if (t->dir[k])
            leaf_free(t, t->dir[k]);
    free(t->dir);
    free(t->live);
    while (t->ncache)
        munmap(t->cache[--t->ncache], leaf_bytes(t));
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
    return (t->leaves + t->ncache) * HR_IDTAB_LEAF * t->rec_size +
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

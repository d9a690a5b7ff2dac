/* hr_idtab.h: a table of fixed-size records indexed by trace id, whose memory follows the live ids.
 *
 * Ids are dense and increase (0, 1, 2, ... in allocation order), and most die young. The table
 * keeps records in leaves of HR_IDTAB_LEAF consecutive ids and frees a leaf once every id in it
 * has been released and no id of it can be created any more (the frontier passed its end).
 *
 *   dir[id / LEAF] --> leaf: LEAF records of rec_size bytes (zeroed when created)
 *
 * Ids are put in increasing order (the caller may skip ids).
 * Invariants: live[k] == number of ids of leaf k put and not yet released; dir[k] == NULL iff
 * leaf k was never touched or has been freed. Memory: rec_size * LEAF per leaf holding a live id,
 * plus 12 bytes of directory per LEAF ids of the whole trace (the only part that grows with trace
 * length: 47 MB per billion ids).
 */
#ifndef HR_IDTAB_H
#define HR_IDTAB_H

#include <stddef.h>
#include <stdint.h>

#include "hr_common.h"

/* 256 ids a leaf: a leaf of 16-byte records is one 4 KiB page, so a long-lived id pins at most a
 * page; 1024-id leaves made the engine cost 25-70 bytes per live block on recorded traces. */
#define HR_IDTAB_SHIFT 8
#define HR_IDTAB_CHUNK 64 /* leaves per mmap'd chunk */
#define HR_IDTAB_CACHE 64 /* freed leaves kept resident at least, for reuse without a fault */
#define HR_IDTAB_LEAF ((uint64_t)1 << HR_IDTAB_SHIFT)

typedef struct hr_idtab {
    size_t rec_size;   /* bytes per record */
    uint8_t **dir;     /* owned: leaf per LEAF ids */
    uint32_t *live;    /* owned: live ids per leaf */
    size_t ndir;       /* entries in dir and live */
    uint64_t frontier; /* 1 + the largest id put so far */
    size_t leaves;     /* leaves allocated now */
    size_t peak_leaves;
    /* Leaf pool (see hr_idtab.c): chunks of HR_IDTAB_CHUNK leaves, carved in order; freed leaves
     * are kept either dirty (resident, zeroed on reuse) or clean (given back to the kernel with
     * MADV_DONTNEED, so zero and not resident until touched). */
    uint8_t **chunks;  /* owned: every chunk mapped, unmapped only by hr_idtab_free */
    size_t nchunks;
    uint8_t *carve, *carve_end; /* the part of the newest chunk never handed out */
    uint8_t **dirty, **clean;   /* owned: stacks of free leaves, capacity nchunks * CHUNK */
    size_t ndirty, nclean;
} hr_idtab_t;

void hr_idtab_init(hr_idtab_t *t, size_t rec_size);
void hr_idtab_free(hr_idtab_t *t);

/* The record of a live id, or NULL if its leaf is gone (then the id is certainly not live; a
 * non-NULL answer says nothing about liveness: the caller's record does). */
HR_INLINE void *hr_idtab_get(const hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (HR_UNLIKELY(k >= t->ndir) || !t->dir[k])
        return NULL;
    return t->dir[k] + (size_t)(id & (HR_IDTAB_LEAF - 1)) * t->rec_size;
}

/* Make a zeroed record for a new id and count it live. NULL when out of memory. */
void *hr_idtab_put_slow(hr_idtab_t *t, uint64_t id);
HR_INLINE void *hr_idtab_put(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (HR_LIKELY(k < t->ndir && t->dir[k] != NULL)) {
        t->live[k]++;
        if (id >= t->frontier)
            t->frontier = id + 1;
        return t->dir[k] + (size_t)(id & (HR_IDTAB_LEAF - 1)) * t->rec_size;
    }
    return hr_idtab_put_slow(t, id);
}

/* The id died: count it out; its leaf goes when empty and closed. The record must not be used
 * afterwards. */
void hr_idtab_release_slow(hr_idtab_t *t, uint64_t k);
HR_INLINE void hr_idtab_release(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (HR_UNLIKELY(--t->live[k] == 0))
        hr_idtab_release_slow(t, k);
}

/* Bytes held now (leaves and directory). */
size_t hr_idtab_bytes(const hr_idtab_t *t);

/* Call fn for every record whose leaf exists, in id order, with ids below the frontier. The
 * caller's record says whether the id is live. Stops when fn returns non-zero and returns that. */
int hr_idtab_each(hr_idtab_t *t, int (*fn)(void *arg, uint64_t id, void *rec), void *arg);

#endif

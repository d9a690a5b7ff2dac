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
 * plus the directory (12 bytes per LEAF ids) of the groups of 1024 leaves that hold one: the
 * directory of a group whose leaves are all gone is given back (hr_idtab.c, "The directory"), so
 * no part of the table grows with the trace's length but a counter per group (4 bytes per
 * 262,144 ids).
 */
#ifndef HR_IDTAB_H
#define HR_IDTAB_H

#include <stddef.h>
#include <stdint.h>

#include "hr_common.h"

/* 256 ids a leaf: a leaf of 12- or 16-byte records is 3 or 4 KiB, so a long-lived id pins at most a
 * page; 1024-id leaves made the engine cost 25-70 bytes per live block on recorded traces. */
#define HR_IDTAB_SHIFT 8
#define HR_IDTAB_CHUNK 64 /* leaves per mmap'd chunk */
#define HR_IDTAB_CACHE 64 /* freed leaves kept resident at least, for reuse without a fault */
#define HR_IDTAB_LEAF ((uint64_t)1 << HR_IDTAB_SHIFT)
#define HR_IDTAB_COMPACT_MAX 128 /* a leaf with at most this many live ids is compacted when the */
#define HR_IDTAB_COMPACT_AGE 64  /* frontier gets this many leaves past it; */
#define HR_IDTAB_COMPACT_LATE 32 /* later, when its live ids fall to this many */
#define HR_IDTAB_CLASSES 26      /* compact leaf capacities 4, 5, ..., 14, 16, ..., 112, 128 */
#define HR_IDTAB_LATE_RING 64    /* leaves down to COMPACT_LATE wait for this many more (below) */

typedef struct hr_idtab {
    size_t rec_size;   /* bytes per record */
    uint8_t **dir;     /* owned (mmap): leaf per LEAF ids */
    uint32_t *live;    /* owned (mmap): live ids per leaf */
    size_t ndir;       /* entries in dir and live (a multiple of gleaves) */
    size_t gleaves;    /* leaves per directory group (hr_idtab.c, "The directory") */
    uint32_t *gcount;  /* owned: per group, its leaves and whether its pages are held */
    size_t dir_map, live_map; /* bytes mapped for dir and live */
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
    /* Compact leaves (opt-in, see hr_idtab_compact): dir[k] with bit 0 set points to one. */
    size_t live_off;                 /* a record is live iff its word at live_off & live_mask */
    uint64_t live_mask;
    uint32_t compact_at;             /* HR_IDTAB_COMPACT_LATE, or UINT32_MAX when not compacting */
    int dense;                       /* hr_idtab_dense: reused leaves are not zeroed */
    uint64_t late[HR_IDTAB_LATE_RING]; /* leaves whose live ids fell to COMPACT_LATE, oldest at */
    unsigned late_head, nlate;         /*   late_head: compacted when pushed out, if still sparse */
    struct hr_cslab {
        void *free;                 /* free compact leaves of this class, linked through word 0 */
        uint8_t *carve, *carve_end; /* never handed out part of its newest chunk */
    } cslab[HR_IDTAB_CLASSES];
    uint8_t **cchunks; /* owned: chunks of compact leaves */
    size_t ncchunks;
    size_t compacts;   /* compact leaves now */
    size_t bytes, peak_bytes; /* leaves (full and compact) and directory, now and at the peak */
} hr_idtab_t;

void hr_idtab_init(hr_idtab_t *t, size_t rec_size);
/* Let the table keep leaves that stay sparse in a compact form: a closed leaf (no id of it can be
 * put any more) with at most HR_IDTAB_COMPACT_MAX live ids HR_IDTAB_COMPACT_AGE leaves behind
 * the frontier, or whose live ids fall to HR_IDTAB_COMPACT_LATE after that (and stay above zero
 * until HR_IDTAB_LATE_RING more leaves did so: a leaf being freed from end to end is not worth
 * packing), becomes a bitmap of its live ids and their records packed in id order, rebuilt
 * smaller as they die. Records then MOVE (at compaction and at rebuilds, both inside a release or
 * a put): a pointer from hr_idtab_get is valid only until the next put or release. Only for
 * callers that never hold record pointers across those (the replay engine; the graph recorder,
 * whose records are pointers to its own object records). Finding a record in a packed leaf costs
 * one population count (each bitmap word keeps the rank before it), still a call. A record is
 * live when the 64-bit word at byte live_off has a bit of live_mask set (the table must know which
 * records to keep). Call before the first put. */
void hr_idtab_compact(hr_idtab_t *t, size_t live_off, uint64_t live_mask);
/* Promise that every id below the frontier is put (none skipped) and that the caller writes the
 * whole record at each put: the table then hands out reused leaves without zeroing them (a
 * record's contents before its put are unspecified). Call before the first put. */
void hr_idtab_dense(hr_idtab_t *t);
void hr_idtab_free(hr_idtab_t *t);

/* The record of a live id, or NULL if its leaf is gone (then the id is certainly not live; a
 * non-NULL answer says nothing about liveness: the caller's record does). */
void *hr_idtab_get_compact_(const hr_idtab_t *t, const uint8_t *leaf, uint64_t id);
/* The same for a caller that knows its record size at compile time (rec_size must equal
 * t->rec_size): the multiply becomes a shift or a constant. */
HR_INLINE void *hr_idtab_get_sized(const hr_idtab_t *t, uint64_t id, size_t rec_size)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    if (HR_UNLIKELY(k >= t->ndir))
        return NULL;
    uint8_t *l = t->dir[k];
    if (!l)
        return NULL;
    if (HR_UNLIKELY((uintptr_t)l & 1))
        return hr_idtab_get_compact_(t, l - 1, id);
    return l + (size_t)(id & (HR_IDTAB_LEAF - 1)) * rec_size;
}
HR_INLINE void *hr_idtab_get(const hr_idtab_t *t, uint64_t id)
{
    return hr_idtab_get_sized(t, id, t->rec_size);
}

/* Make a zeroed record (see hr_idtab_dense) for a new id and count it live. NULL when out of
 * memory. */
void *hr_idtab_put_slow(hr_idtab_t *t, uint64_t id);
/* The same for a caller that knows its record size at compile time (as hr_idtab_get_sized). */
HR_INLINE void *hr_idtab_put_sized(hr_idtab_t *t, uint64_t id, size_t rec_size)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    uint8_t *l;
    if (HR_LIKELY(k < t->ndir && (l = t->dir[k]) != NULL)) {
        t->live[k]++;
        if (id >= t->frontier)
            t->frontier = id + 1;
        return l + (size_t)(id & (HR_IDTAB_LEAF - 1)) * rec_size;
    }
    return hr_idtab_put_slow(t, id);
}
HR_INLINE void *hr_idtab_put(hr_idtab_t *t, uint64_t id)
{
    return hr_idtab_put_sized(t, id, t->rec_size);
}

/* The id died: count it out; its leaf goes when empty and closed. The record must not be used
 * afterwards. */
void hr_idtab_release_slow(hr_idtab_t *t, uint64_t id);
HR_INLINE void hr_idtab_release(hr_idtab_t *t, uint64_t id)
{
    uint64_t k = id >> HR_IDTAB_SHIFT;
    uint32_t n = --t->live[k];
    if (HR_UNLIKELY(n == 0 || n == t->compact_at || ((uintptr_t)t->dir[k] & 1)))
        hr_idtab_release_slow(t, id);
}

/* Count `delta` bytes the caller keeps for its records outside the table (the replay engine's
 * side entries) in t->bytes and t->peak_bytes, so the peak is the peak of both together. */
void hr_idtab_account_extra(hr_idtab_t *t, ptrdiff_t delta);

/* Bytes held now: t->bytes (full and compact leaves in use, and the directory) plus the free
 * leaves the pool keeps resident. t->peak_bytes is the peak of t->bytes alone, what the live ids
 * needed, so it may be below this. (Free compact leaves stay on their slab's free list; neither
 * counts them.) */
size_t hr_idtab_bytes(const hr_idtab_t *t);

/* Call fn for every record whose leaf exists, in id order, with ids below the frontier. The
 * caller's record says whether the id is live. Stops when fn returns non-zero and returns that. */
int hr_idtab_each(hr_idtab_t *t, int (*fn)(void *arg, uint64_t id, void *rec), void *arg);

#endif

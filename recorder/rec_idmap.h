/* rec_idmap.h: an address -> block id map for recorders (open addressing, linear probing).
 *
 * Theory of operation. A recorder sees allocator calls by address; the trace names blocks by id.
 * The map holds one entry per live recorded block: key = the block's address (never 0), value =
 * its id (low 56 bits) and 8 bits of recorder flags (HR_F_GC, HR_F_OBJECT, ...). Slots live in a
 * power-of-two table obtained with mmap, never with malloc, so the map can be used from inside a
 * malloc hook (the LD_PRELOAD recorder) without recursing. Lookups probe linearly from the hash of
 * the address (locality-preserving within 64 KiB regions); deletion shifts later entries of the same run back (no tombstones), so probe runs
 * stay short under the churn of a heap. The table doubles when it becomes half full.
 *
 * Invariant: every key k sits in the probe run that starts at hash(k), with no empty slot between
 * hash(k) and k's slot. Not thread-safe: the caller holds the recorder lock.
 */
#ifndef HR_REC_IDMAP_H
#define HR_REC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#define HR_IDMAP_ID_BITS 56
#define HR_IDMAP_ID_MASK (((uint64_t)1 << HR_IDMAP_ID_BITS) - 1)

typedef struct hr_idmap_slot {
    uintptr_t key;  /* block address; 0 = empty */
    uint64_t value; /* id | flags << 56 */
} hr_idmap_slot_t;

typedef struct hr_idmap {
    hr_idmap_slot_t *slots; /* owned: mmap'ed, cap slots */
    size_t cap;             /* power of two */
    size_t count;           /* live entries */
    int shift;              /* 64 - log2(cap) */
} hr_idmap_t;

/* 0 on success, -1 when mmap fails. `cap_log2` is the initial size (e.g. 16). */
int hr_idmap_init(hr_idmap_t *m, int cap_log2);
void hr_idmap_free(hr_idmap_t *m); /* accepts a zeroed map */

/* Insert or replace key. Returns 0, or -1 when the table cannot grow (mmap failed). */
int hr_idmap_put(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags);
/* Find key: returns 1 and fills *id / *flags (either may be NULL), or 0 when absent (always for
 * key 0, which no entry has: callers may look up a word read from memory without testing it). */
int hr_idmap_get(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
/* Remove key: returns 1 and fills *id / *flags, or 0 when absent. */
int hr_idmap_take(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
/* Change the flags of a present key; returns 0 when absent. */
int hr_idmap_set_flags(hr_idmap_t *m, uintptr_t key, unsigned flags);

/* Visit every entry (order unspecified). The callback must not modify the map. */
void hr_idmap_each(const hr_idmap_t *m, void (*fn)(uintptr_t key, uint64_t id, unsigned flags,
                                                    void *arg), void *arg);

#endif

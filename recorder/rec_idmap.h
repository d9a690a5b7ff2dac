/* rec_idmap.h: an address -> block id map for recorders, in two layouts.
 *
 * Theory of operation. A recorder sees allocator calls by address; the trace names blocks by id.
 * The map holds one entry per live recorded block: key = the block's address (never 0), value =
 * its id (low 56 bits) and 8 bits of recorder flags (HR_F_GC, HR_F_OBJECT, ...). All memory comes
 * from mmap, never from malloc, so the map can be used from inside a malloc hook (the LD_PRELOAD
 * recorder) without recursing. Not thread-safe: the caller holds the recorder lock.
 *
 * Hashed (hr_idmap_init): an open-addressing table, linear probing from the hash of the address
 * (locality-preserving within 64 KiB regions); deletion shifts later entries of the same run back
 * (no tombstones), so probe runs stay short under the churn of a heap. The table doubles when it
 * becomes half full. Invariant: every key k sits in the probe run that starts at hash(k), with no
 * empty slot between hash(k) and k's slot. For small maps of arbitrary keys (type addresses).
 *
 * Direct (hr_idmap_init_direct): for maps of heap blocks, where every call counts. Blocks from
 * malloc and pymalloc are 16-byte aligned, so address / 16 indexes a flat array of 8-byte values:
 * no hash, no probing, no deletion work, no growth; a lookup is two dependent loads.
 *
 *   address bits  46 ........ 26 | 25 ............. 4 | 3..0
 *                 directory index   leaf index (2^22)   0 (aligned)
 *
 *   dir[2^21] -> leaf (2^22 values, 32 MiB of address space: 64 MiB of heap addresses)
 *
 * The directory and the leaves are reserved with MAP_NORESERVE and filled by the kernel's zero
 * pages as they are touched, so the resident cost is one 4 KiB page of values per 8 KiB of heap
 * addresses that ever held a block (half the heap where blocks are small and dense, one page per
 * block where they are larger than 8 KiB; pages are not given back while the map lives). A value
 * is 0 when empty, else (id + 1) | flags << 56. Keys that are not 16-byte aligned or lie above
 * 2^47 go to a hashed part of the same map, so every key works.
 */
#ifndef HR_REC_IDMAP_H
#define HR_REC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "hr_common.h"

#define HR_IDMAP_ID_BITS 56
#define HR_IDMAP_ID_MASK (((uint64_t)1 << HR_IDMAP_ID_BITS) - 1)

#define HR_IDMAP_LEAF_BITS 22 /* values per leaf: 2^22 (32 MiB reserved, touched lazily) */
#define HR_IDMAP_DIR_BITS 21  /* 47 - 4 - 22 */

typedef struct hr_idmap_slot {
    uintptr_t key;  /* block address; 0 = empty */
    uint64_t value; /* id | flags << 56 */
} hr_idmap_slot_t;

typedef struct hr_idmap {
    hr_idmap_slot_t *slots; /* owned: mmap'ed, cap slots (the hashed part) */
    size_t cap;             /* power of two */
    size_t count;           /* live entries (both parts) */
    size_t hcount;          /* live entries in the hashed part */
    int shift;              /* 64 - log2(cap) */
    uint64_t **dir;         /* owned, direct layout only: 2^21 leaf pointers (NULL: none yet) */
    size_t leaves;          /* leaves mapped */
} hr_idmap_t;

/* 0 on success, -1 when mmap fails. `cap_log2` is the initial size (e.g. 16). */
int hr_idmap_init(hr_idmap_t *m, int cap_log2);
/* The direct layout (see above), for maps of heap blocks. 0 on success, -1 when mmap fails. */
int hr_idmap_init_direct(hr_idmap_t *m);
void hr_idmap_free(hr_idmap_t *m); /* accepts a zeroed map */

/* Insert or replace key. Returns 0, or -1 when the table cannot grow (mmap failed). */
HR_INLINE int hr_idmap_put(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags);
/* Find key: returns 1 and fills *id / *flags (either may be NULL), or 0 when absent (always for
 * key 0, which no entry has: callers may look up a word read from memory without testing it). */
HR_INLINE int hr_idmap_get(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
/* Remove key: returns 1 and fills *id / *flags, or 0 when absent. */
HR_INLINE int hr_idmap_take(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
/* The out-of-line parts (every case; the inline functions below take the direct slots). */
int hr_idmap_put_(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags);
int hr_idmap_get_(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
int hr_idmap_take_(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags);
/* Change the flags of a present key; returns 0 when absent. */
int hr_idmap_set_flags(hr_idmap_t *m, uintptr_t key, unsigned flags);

/* Visit every entry (order unspecified). The callback must not modify the map. */
void hr_idmap_each(const hr_idmap_t *m, void (*fn)(uintptr_t key, uint64_t id, unsigned flags,
                                                    void *arg), void *arg);

/* {==== inline fast paths of the direct layout (the hooks' per-call work) ==== */

/* The value slot of a direct key, or NULL when the key goes to the hashed part or its leaf does
 * not exist yet. */
HR_INLINE uint64_t *hr_idmap_direct_slot(const hr_idmap_t *m, uintptr_t key)
{
    if (HR_UNLIKELY((key & 15) || (key >> (4 + HR_IDMAP_LEAF_BITS + HR_IDMAP_DIR_BITS)) || !m->dir))
        return NULL;
    uint64_t *leaf = m->dir[key >> (4 + HR_IDMAP_LEAF_BITS)];
    return leaf ? &leaf[(key >> 4) & (((uintptr_t)1 << HR_IDMAP_LEAF_BITS) - 1)] : NULL;
}

/* The home slot of a key in the hashed part (see rec_idmap.c). */
HR_INLINE size_t hr_idmap_home(const hr_idmap_t *m, uintptr_t key)
{
    uint64_t region = ((uint64_t)(key >> 16) * 0x9E3779B97F4A7C15ull) >> 32;
    return (size_t)(((key >> 3) + region) & (m->cap - 1));
}

HR_INLINE int hr_idmap_get(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    const uint64_t *s = hr_idmap_direct_slot(m, key);
    if (!s) {
        if (!m->dir) { /* a hashed map: the key is usually in its home slot, or absent there */
            const hr_idmap_slot_t *h = &m->slots[hr_idmap_home(m, key)];
            if (h->key == key && key) { /* 0 marks an empty slot */
                if (id)
                    *id = h->value & HR_IDMAP_ID_MASK;
                if (flags)
                    *flags = (unsigned)(h->value >> HR_IDMAP_ID_BITS);
                return 1;
            }
            if (!h->key)
                return 0;
        }
        return hr_idmap_get_(m, key, id, flags);
    }
    uint64_t v = *s;
    if (!v)
        return 0;
    if (id)
        *id = (v & HR_IDMAP_ID_MASK) - 1;
    if (flags)
        *flags = (unsigned)(v >> HR_IDMAP_ID_BITS);
    return 1;
}

HR_INLINE int hr_idmap_take(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    uint64_t *s = hr_idmap_direct_slot(m, key);
    if (!s)
        return hr_idmap_take_(m, key, id, flags);
    uint64_t v = *s;
    if (!v)
        return 0;
    *s = 0;
    m->count--;
    if (id)
        *id = (v & HR_IDMAP_ID_MASK) - 1;
    if (flags)
        *flags = (unsigned)(v >> HR_IDMAP_ID_BITS);
    return 1;
}

HR_INLINE int hr_idmap_put(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags)
{
    uint64_t *s = hr_idmap_direct_slot(m, key);
    if (!s || id >= HR_IDMAP_ID_MASK)
        return hr_idmap_put_(m, key, id, flags);
    m->count += !*s;
    *s = (id + 1) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
    return 0;
}

/* hr_idmap_take, for callers that always want both results. */
HR_INLINE int hr_idmap_take_fast(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    return hr_idmap_take(m, key, id, flags);
}

/* hr_idmap_put of a key that is not in the map (a block just allocated), inlined for the direct
 * layout: a store only, no load of the slot (it is usually not in the cache, and nothing needs to
 * wait for it). id < 2^56 - 1. */
HR_INLINE int hr_idmap_add_fast(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags)
{
    uint64_t *s = hr_idmap_direct_slot(m, key);
    if (HR_UNLIKELY(!s) || HR_UNLIKELY(id >= HR_IDMAP_ID_MASK))
        return hr_idmap_put_(m, key, id, flags);
    m->count++;
    *s = (id + 1) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
    return 0;
}

/* Start fetching the slot of key (for an add or a take soon). */
HR_INLINE void hr_idmap_prefetch(const hr_idmap_t *m, uintptr_t key)
{
    const uint64_t *s = hr_idmap_direct_slot(m, key);
    if (s)
        __builtin_prefetch(s, 1);
}

#endif

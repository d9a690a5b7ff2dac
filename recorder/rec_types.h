/* rec_types.h: the GC types the CPython recorder has learned (rec_types.c).
 *
 * Theory of operation. The recorder tells GC-capable allocations by generation 0's count
 * (rec_python.c, top of file); in the two cases the count cannot tell, and in graph mode, where
 * every GC object's type is wanted, it reads the block instead: a GC object has, 16 or 32 bytes
 * in (the pre-header: the GC link, and for a class instance with a managed dict two more words),
 * a small refcount and a pointer to its type. A pointer is believed only if it names a type
 * learned before, from an allocation the count showed to be GC, after it was checked to be a GC
 * type with that pre-header without dereferencing anything not known to be readable. So nothing
 * here reads memory a type pointer merely claims to be a type.
 *
 * Data (all guarded by the recorder's lock, hr_rec.sink):
 *   hr_rec.types      type address -> pre-header size (16 or 32): every learned type
 *   hr_rec.rejected   candidate addresses outside the heap and the images, rejected once
 *   hr_rec_tcache     direct-mapped cache of hr_rec.types (positive answers only)
 *   hr_rec_tfilter    one bit per address hash ever learned: clear = not a learned type
 * Invariant: every key of hr_rec.types has its filter bit set, and every cache entry with a
 * non-zero type is an entry of hr_rec.types. A freed type object leaves all three
 * (hr_rec_forget_type_at), since another type may be created at its address.
 */
#ifndef HR_REC_TYPES_H
#define HR_REC_TYPES_H

#include "rec_python.h"

/* The learned types sit in R.types (type address -> pre-header size). Every GC allocation asks
 * about its type, every GC free about its address, so two small tables answer first: a
 * direct-mapped cache of learned types (positive answers only) and a bit filter of the addresses
 * ever learned (a clear bit: not a learned type, no lookup). */
#define HR_REC_TCACHE 256
typedef struct hr_rec_tcache {
    uintptr_t type;
    uint64_t pre;
} hr_rec_tcache_t;
extern hr_rec_tcache_t hr_rec_tcache[HR_REC_TCACHE];
extern uint64_t hr_rec_tfilter[64]; /* 4096 bits */

static inline unsigned hr_rec_tcache_slot(uintptr_t t)
{
    return (unsigned)((t >> 4) ^ (t >> 12)) & (HR_REC_TCACHE - 1);
}
static inline int hr_rec_tfilter_has(uintptr_t t)
{
    return (hr_rec_tfilter[(t >> 10) & 63] >> ((t >> 4) & 63)) & 1;
}

/* The pre-header size of learned type t, or 0: a cache hit inline, the rest out of line. (An
 * empty or cleared entry has type 0 and pre 0, so t == 0 is answered 0 by the cache too.) */
uint64_t hr_rec_type_pre_miss(uintptr_t t);
static inline uint64_t hr_rec_type_pre(uintptr_t t)
{
    unsigned k = hr_rec_tcache_slot(t);
    if (HR_LIKELY(hr_rec_tcache[k].type == t))
        return hr_rec_tcache[k].pre;
    return hr_rec_type_pre_miss(t);
}

void hr_rec_type_forget(uintptr_t t);

/* A type object is being freed: forget it (its address may come back as another type). */
static inline void hr_rec_forget_type_at(uintptr_t block)
{
    if (HR_UNLIKELY(hr_rec_tfilter_has(block + 16)))
        hr_rec_type_forget(block + 16);
    if (HR_UNLIKELY(hr_rec_tfilter_has(block + 32)))
        hr_rec_type_forget(block + 32);
}


/* Learn the type of a block that the count showed to be a GC allocation (nothing if its
 * candidate is not a GC type; counted in hr_rec.stat.learn_rejected). */
void hr_rec_learn_type(uintptr_t a, uint64_t size);

/* hr_rec_learn_type, with the answers of the common blocks inline (a GC object whose 16- or 32-byte
 * pre-header candidate is a learned type: then hr_rec_learn_type learns nothing either). */
static inline void hr_rec_learn_type_fast(uintptr_t a, uint64_t size)
{
    const uint64_t *w = (const uint64_t *)a;
    if (size >= 32 && w[2] < HR_REC_SMALL_WORD && HR_LIKELY(hr_rec_type_pre((uintptr_t)w[3]) == 16))
        return;
    if (size >= 48 && w[4] < HR_REC_SMALL_WORD && hr_rec_type_pre((uintptr_t)w[5]) == 32)
        return;
    hr_rec_learn_type(a, size);
}

/* The learned type of a GC block and its pre-header size (*pre), or NULL. Never dereferences. */
PyTypeObject *hr_rec_gc_block_type(uintptr_t block, uint64_t size, size_t *pre);
/* Does block a look like a GC object of a learned type? (refcount 0 allowed: a GC object may
 * already sit on a free list when its allocation is resolved) */
int hr_rec_looks_gc(uintptr_t a, uint64_t size);

#endif

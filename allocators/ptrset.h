/* ptrset.h: a map from live pointers to their sizes (open addressing, linear probing), internal
 * to allocators/.
 * pymalloc and cpython keep the blocks they obtained from the system allocator in one, so that
 * destroy can release them as the vtable promises; only the raw path pays for it. jemalloc and
 * tcmalloc keep their aligned blocks in one, the blocks a sized free would misplace.
 * Invariant: 0 is never a key; n <= cap * 3 / 4; cap is a power of two (or 0). */
#ifndef HR_PTRSET_H
#define HR_PTRSET_H

#include <stdint.h>
#include <stdlib.h>

typedef struct hr_ptrset_slot {
    uintptr_t key; /* 0 = empty */
    size_t size;
} hr_ptrset_slot_t;

typedef struct hr_ptrset {
    hr_ptrset_slot_t *slot; /* owned */
    size_t cap, n;
} hr_ptrset_t;

static inline size_t hr_ptrset_hash(const hr_ptrset_t *s, uintptr_t p)
{
    return (size_t)(((uint64_t)(p >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (s->cap - 1);
}

static inline int hr_ptrset_grow(hr_ptrset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    hr_ptrset_slot_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return -1;
    hr_ptrset_t t = {slot, cap, 0};
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i].key) {
            size_t h = hr_ptrset_hash(&t, s->slot[i].key);
            while (slot[h].key)
                h = (h + 1) & (cap - 1);
            slot[h] = s->slot[i];
        }
    free(s->slot);
    t.n = s->n;
    *s = t;
    return 0;
}

/* Returns 0, or -1 when out of memory (the pointer is then not tracked). */
static inline int hr_ptrset_add(hr_ptrset_t *s, const void *p, size_t size)
{
    if ((s->n + 1) * 4 > s->cap * 3 && hr_ptrset_grow(s) != 0)
        return -1;
    size_t h = hr_ptrset_hash(s, (uintptr_t)p);
    while (s->slot[h].key)
        h = (h + 1) & (s->cap - 1);
    s->slot[h].key = (uintptr_t)p;
    s->slot[h].size = size;
    s->n++;
    return 0;
}

/* Remove p if present (backward-shift deletion keeps probe chains intact). Returns 1 if p was
 * there, 0 if not. */
static inline int hr_ptrset_del(hr_ptrset_t *s, const void *p)
{
    if (!s->cap)
        return 0;
    size_t m = s->cap - 1, h = hr_ptrset_hash(s, (uintptr_t)p);
    while (s->slot[h].key && s->slot[h].key != (uintptr_t)p)
        h = (h + 1) & m;
    if (!s->slot[h].key)
        return 0;
    s->slot[h].key = 0;
    s->n--;
    for (size_t j = (h + 1) & m; s->slot[j].key; j = (j + 1) & m) {
        size_t home = hr_ptrset_hash(s, s->slot[j].key);
        /* move slot j back to h if its home is not in the cyclic range (h, j] */
        if (((j - home) & m) >= ((j - h) & m)) {
            s->slot[h] = s->slot[j];
            s->slot[j].key = 0;
            h = j;
        }
    }
    return 1;
}

static inline void hr_ptrset_free(hr_ptrset_t *s)
{
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}

#endif /* HR_PTRSET_H */

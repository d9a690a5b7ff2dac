/* rec_idmap.c: the address -> id map (see rec_idmap.h for the theory of operation). */
#include "rec_idmap.h"

#include <string.h>
#include <sys/mman.h>

static hr_idmap_slot_t *map_slots(size_t cap)
{
    void *p = mmap(NULL, cap * sizeof(hr_idmap_slot_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Neighbouring blocks go to nearby slots (a heap allocates and frees close together, so the
 * table is touched with locality); blocks are at least 16-byte aligned and land at least two
 * slots apart, so the empty slots between them keep probe runs (and deletion scans) short even
 * where every block of a region is live. Each 64 KiB region of addresses starts at a pseudo-random
 * offset (Fibonacci hashing of the region number), so regions do not pile onto one another. */
static inline size_t slot_of(const hr_idmap_t *m, uintptr_t key)
{
    uint64_t region = ((uint64_t)(key >> 16) * 0x9E3779B97F4A7C15ull) >> 32;
    return (size_t)(((key >> 3) + region) & ((((size_t)1) << (64 - m->shift)) - 1));
}

int hr_idmap_init(hr_idmap_t *m, int cap_log2)
{
    memset(m, 0, sizeof *m);
    if (cap_log2 < 4)
        cap_log2 = 4;
    m->cap = (size_t)1 << cap_log2;
    m->shift = 64 - cap_log2;
    m->slots = map_slots(m->cap);
    return m->slots ? 0 : -1;
}

void hr_idmap_free(hr_idmap_t *m)
{
    if (m->slots)
        munmap(m->slots, m->cap * sizeof(hr_idmap_slot_t));
    memset(m, 0, sizeof *m);
}

static int grow(hr_idmap_t *m)
{
    hr_idmap_t n = {.cap = m->cap * 2, .shift = m->shift - 1};
    if (!(n.slots = map_slots(n.cap)))
        return -1;
    size_t mask = n.cap - 1;
    for (size_t i = 0; i < m->cap; i++) {
        uintptr_t k = m->slots[i].key;
        if (!k)
            continue;
        size_t j = slot_of(&n, k);
        while (n.slots[j].key)
            j = (j + 1) & mask;
        n.slots[j] = m->slots[i];
    }
    n.count = m->count;
    munmap(m->slots, m->cap * sizeof(hr_idmap_slot_t));
    *m = n;
    return 0;
}

int hr_idmap_put(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags)
{
    if (m->count * 2 >= m->cap && grow(m))
        return -1;
    size_t mask = m->cap - 1, i = slot_of(m, key);
    uint64_t v = (id & HR_IDMAP_ID_MASK) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
    for (;; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            m->slots[i].value = v;
            return 0;
        }
        if (!m->slots[i].key) {
            m->slots[i].key = key;
            m->slots[i].value = v;
            m->count++;
            return 0;
        }
    }
}

/* The slot holding key, or NULL. Key 0 marks an empty slot, so it is never present (without
 * this test a lookup of 0, e.g. the type word of a block that is not an object, would "find"
 * the first empty slot of its run). */
static inline hr_idmap_slot_t *find(const hr_idmap_t *m, uintptr_t key)
{
    if (!key)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(m, key);
    for (;; i = (i + 1) & mask) {
        if (m->slots[i].key == key)
            return &m->slots[i];
        if (!m->slots[i].key)
            return NULL;
    }
}

static inline void unpack(uint64_t v, uint64_t *id, unsigned *flags)
{
    if (id)
        *id = v & HR_IDMAP_ID_MASK;
    if (flags)
        *flags = (unsigned)(v >> HR_IDMAP_ID_BITS);
}

int hr_idmap_get(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    const hr_idmap_slot_t *s = find(m, key);
    if (!s)
        return 0;
    unpack(s->value, id, flags);
    return 1;
}

int hr_idmap_set_flags(hr_idmap_t *m, uintptr_t key, unsigned flags)
{
    hr_idmap_slot_t *s = find(m, key);
    if (!s)
        return 0;
    s->value = (s->value & HR_IDMAP_ID_MASK) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
    return 1;
}

int hr_idmap_take(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    hr_idmap_slot_t *s = find(m, key);
    if (!s)
        return 0;
    unpack(s->value, id, flags);
    /* Backward-shift deletion: move later members of the run into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots), j = hole;
    for (;;) {
        j = (j + 1) & mask;
        uintptr_t k = m->slots[j].key;
        if (!k)
            break;
        size_t home = slot_of(m, k);
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        m->slots[hole] = m->slots[j];
        hole = j;
    }
    m->slots[hole].key = 0;
    m->slots[hole].value = 0;
    m->count--;
    return 1;
}

void hr_idmap_each(const hr_idmap_t *m,
                   void (*fn)(uintptr_t key, uint64_t id, unsigned flags, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            fn(m->slots[i].key, m->slots[i].value & HR_IDMAP_ID_MASK,
               (unsigned)(m->slots[i].value >> HR_IDMAP_ID_BITS), arg);
}

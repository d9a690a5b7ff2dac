/* rec_idmap.c: the address -> id map (see rec_idmap.h for the theory of operation). */
#include "rec_idmap.h"

#include <string.h>
#include <sys/mman.h>

#define LEAF_VALUES ((size_t)1 << HR_IDMAP_LEAF_BITS)
#define DIR_ENTRIES ((size_t)1 << HR_IDMAP_DIR_BITS)

static void *reserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static hr_idmap_slot_t *map_slots(size_t cap)
{
    void *p = mmap(NULL, cap * sizeof(hr_idmap_slot_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* {==== the hashed part ==== */

/* Neighbouring blocks go to nearby slots (a heap allocates and frees close together, so the
 * table is touched with locality); blocks are at least 16-byte aligned and land at least two
 * slots apart, so the empty slots between them keep probe runs (and deletion scans) short even
 * where every block of a region is live. Each 64 KiB region of addresses starts at a pseudo-random
 * offset (Fibonacci hashing of the region number), so regions do not pile onto one another. */
static inline size_t slot_of(const hr_idmap_t *m, uintptr_t key) { return hr_idmap_home(m, key); }

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
    munmap(m->slots, m->cap * sizeof(hr_idmap_slot_t));
    m->slots = n.slots;
    m->cap = n.cap;
    m->shift = n.shift;
    return 0;
}

static int hash_put(hr_idmap_t *m, uintptr_t key, uint64_t v)
{
    if (m->hcount * 2 >= m->cap && grow(m))
        return -1;
    size_t mask = m->cap - 1, i = slot_of(m, key);
    for (;; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            m->slots[i].value = v;
            return 0;
        }
        if (!m->slots[i].key) {
            m->slots[i].key = key;
            m->slots[i].value = v;
            m->hcount++;
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

static void hash_remove(hr_idmap_t *m, hr_idmap_slot_t *s)
{
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
    m->hcount--;
    m->count--;
}

/* {==== the direct part ==== */

int hr_idmap_init_direct(hr_idmap_t *m)
{
    if (hr_idmap_init(m, 4))
        return -1;
    if (!(m->dir = reserve(DIR_ENTRIES * sizeof *m->dir))) {
        hr_idmap_free(m);
        return -1;
    }
    return 0;
}

void hr_idmap_free(hr_idmap_t *m)
{
    if (m->slots)
        munmap(m->slots, m->cap * sizeof(hr_idmap_slot_t));
    if (m->dir) {
        for (size_t i = 0; i < DIR_ENTRIES && m->leaves; i++)
            if (m->dir[i]) {
                munmap(m->dir[i], LEAF_VALUES * sizeof(uint64_t));
                m->leaves--;
            }
        munmap(m->dir, DIR_ENTRIES * sizeof *m->dir);
    }
    memset(m, 0, sizeof *m);
}

static inline int is_direct(const hr_idmap_t *m, uintptr_t key)
{
    return m->dir && !(key & 15) && !(key >> (4 + HR_IDMAP_LEAF_BITS + HR_IDMAP_DIR_BITS));
}

/* The value slot of a direct key, mapping its leaf first; NULL when mmap fails. */
static uint64_t *direct_slot_create(hr_idmap_t *m, uintptr_t key)
{
    uint64_t **leaf = &m->dir[key >> (4 + HR_IDMAP_LEAF_BITS)];
    if (!*leaf) {
        if (!(*leaf = reserve(LEAF_VALUES * sizeof(uint64_t))))
            return NULL;
        m->leaves++;
    }
    return &(*leaf)[(key >> 4) & (LEAF_VALUES - 1)];
}

/* {==== the interface ==== */

static inline uint64_t pack(uint64_t id, unsigned flags)
{
    return (id & HR_IDMAP_ID_MASK) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
}

static inline void unpack(uint64_t v, uint64_t *id, unsigned *flags)
{
    if (id)
        *id = v & HR_IDMAP_ID_MASK;
    if (flags)
        *flags = (unsigned)(v >> HR_IDMAP_ID_BITS);
}

int hr_idmap_put_(hr_idmap_t *m, uintptr_t key, uint64_t id, unsigned flags)
{
    if (!is_direct(m, key))
        return hash_put(m, key, pack(id, flags));
    uint64_t *d = direct_slot_create(m, key);
    if (!d || id >= HR_IDMAP_ID_MASK)
        return -1;
    m->count += !*d;
    *d = pack(id + 1, flags);
    return 0;
}

int hr_idmap_get_(const hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    if (is_direct(m, key)) {
        const uint64_t *d = hr_idmap_direct_slot(m, key);
        if (!d || !*d)
            return 0;
        unpack(*d - 1, id, flags); /* the id part is at least 1: no borrow from the flags */
        return 1;
    }
    const hr_idmap_slot_t *s = find(m, key);
    if (!s)
        return 0;
    unpack(s->value, id, flags);
    return 1;
}

int hr_idmap_set_flags(hr_idmap_t *m, uintptr_t key, unsigned flags)
{
    uint64_t *v;
    if (is_direct(m, key)) {
        v = hr_idmap_direct_slot(m, key);
        if (!v || !*v)
            return 0;
    } else {
        hr_idmap_slot_t *s = find(m, key);
        if (!s)
            return 0;
        v = &s->value;
    }
    *v = (*v & HR_IDMAP_ID_MASK) | (uint64_t)(flags & 0xff) << HR_IDMAP_ID_BITS;
    return 1;
}

int hr_idmap_take_(hr_idmap_t *m, uintptr_t key, uint64_t *id, unsigned *flags)
{
    if (is_direct(m, key)) {
        uint64_t *d = hr_idmap_direct_slot(m, key);
        if (!d || !*d)
            return 0;
        unpack(*d - 1, id, flags);
        *d = 0;
        m->count--;
        return 1;
    }
    hr_idmap_slot_t *s = find(m, key);
    if (!s)
        return 0;
    unpack(s->value, id, flags);
    hash_remove(m, s);
    return 1;
}

void hr_idmap_each(const hr_idmap_t *m,
                   void (*fn)(uintptr_t key, uint64_t id, unsigned flags, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            fn(m->slots[i].key, m->slots[i].value & HR_IDMAP_ID_MASK,
               (unsigned)(m->slots[i].value >> HR_IDMAP_ID_BITS), arg);
    for (size_t d = 0; m->dir && d < DIR_ENTRIES; d++) {
        const uint64_t *leaf = m->dir[d];
        for (size_t i = 0; leaf && i < LEAF_VALUES; i++)
            if (leaf[i])
                fn((uintptr_t)(d << HR_IDMAP_LEAF_BITS | i) << 4,
                   (leaf[i] - 1) & HR_IDMAP_ID_MASK, (unsigned)(leaf[i] >> HR_IDMAP_ID_BITS), arg);
    }
}

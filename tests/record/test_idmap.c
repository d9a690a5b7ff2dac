/* test_idmap.c: the recorders' address -> id map, both layouts, against a plain reference. */
#include "rec_idmap.h"
#include "tap.h"

#include <string.h>

#define NKEYS 6000

typedef struct ref {
    int live;
    uint64_t id;
    unsigned flags;
} ref_t;

static uintptr_t keys[NKEYS];
static ref_t ref[NKEYS];

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Heap-like keys: dense 16-byte-aligned runs, runs on both sides of a leaf boundary (64 MiB of
 * addresses), 8-byte-aligned keys and keys above 2^47 (these go to the hashed part). */
static void make_keys(void)
{
    uintptr_t leaf = (uintptr_t)1 << 26;
    for (int i = 0; i < NKEYS; i++) {
        switch (i % 6) {
        case 0: keys[i] = 0x555555560000u + (uintptr_t)i * 16; break;
        case 1: keys[i] = 7 * leaf - 48000 + (uintptr_t)i * 16; break; /* crosses into leaf 7 */
        case 2: keys[i] = 0x7f0000000000u + (uintptr_t)i * 4096; break;
        case 3: keys[i] = 0x7f0000100008u + (uintptr_t)i * 32; break; /* 8-aligned */
        case 4: keys[i] = ((uintptr_t)1 << 47) + (uintptr_t)i * 16; break;
        default: keys[i] = 0x10 + (uintptr_t)i * 0x100000; break;
        }
    }
}

static int run(hr_idmap_t *m, const char *what, int direct)
{
    memset(ref, 0, sizeof ref);
    size_t live = 0, bad = 0;
    for (int step = 0; step < 400000; step++) {
        uint64_t r = next();
        int k = (int)(r % NKEYS), op = (int)((r >> 20) % 8);
        uint64_t id = (r >> 24) & (((uint64_t)1 << 40) - 1), got = 0;
        unsigned fl = (unsigned)(r >> 12) & 0xff, gf = 0;
        if (step % 1000 == 0)
            id = HR_IDMAP_ID_MASK - 1; /* the largest id the direct layout holds */
        if (op < 3) {
            bad += hr_idmap_put(m, keys[k], id, fl) != 0;
            live += !ref[k].live;
            ref[k] = (ref_t){1, id & HR_IDMAP_ID_MASK, fl};
        } else if (op < 5) {
            int in = hr_idmap_take(m, keys[k], &got, &gf);
            bad += in != ref[k].live || (in && (got != ref[k].id || gf != ref[k].flags));
            live -= ref[k].live;
            ref[k].live = 0;
        } else if (op == 5) {
            int in = hr_idmap_set_flags(m, keys[k], fl);
            bad += in != ref[k].live;
            if (in)
                ref[k].flags = fl;
        } else if (op == 6 && direct) { /* the inline paths the hooks use */
            if ((r & 1) && !ref[k].live) { /* add_fast is for keys not in the map */
                hr_idmap_prefetch(m, keys[k]);
                bad += hr_idmap_add_fast(m, keys[k], id, fl) != 0;
                live++;
                ref[k] = (ref_t){1, id & HR_IDMAP_ID_MASK, fl};
            } else {
                int in = hr_idmap_take_fast(m, keys[k], &got, &gf);
                bad += in != ref[k].live || (in && (got != ref[k].id || gf != ref[k].flags));
                live -= ref[k].live;
                ref[k].live = 0;
            }
        } else {
            int in = hr_idmap_get(m, keys[k], &got, &gf);
            bad += in != ref[k].live || (in && (got != ref[k].id || gf != ref[k].flags));
        }
        bad += m->count != live;
    }
    size_t seen = 0;
    for (int k = 0; k < NKEYS; k++) {
        uint64_t got;
        unsigned gf;
        int in = hr_idmap_get(m, keys[k], &got, &gf);
        seen += in;
        bad += in != ref[k].live || (in && (got != ref[k].id || gf != ref[k].flags));
    }
    return TAP_OK(bad == 0 && seen == live, "%s: 400,000 random puts, takes, flag changes and "
                  "lookups agree with the reference (%zu live at the end, %zu disagreements)",
                  what, live, bad);
}

/* Key 0 marks an empty slot: it is never found, taken or given flags, in either layout (the
 * recorder looks up words read from memory, such as a block's type word, without testing them). */
static void key_zero(hr_idmap_t *m, const char *what)
{
    uint64_t id = 7;
    unsigned fl = 9;
    size_t count = m->count;
    TAP_OK(!hr_idmap_get(m, 0, &id, &fl) && id == 7 && fl == 9 && !hr_idmap_take(m, 0, NULL, NULL) &&
               !hr_idmap_set_flags(m, 0, 1) && m->count == count,
           "%s: key 0 is never present (get, take, set_flags)", what);
}

int main(void)
{
    make_keys();
    hr_idmap_t m;
    TAP_OK(hr_idmap_init(&m, 4) == 0, "hashed map created");
    key_zero(&m, "hashed, empty");
    run(&m, "hashed", 0);
    key_zero(&m, "hashed, after churn");
    hr_idmap_free(&m);
    TAP_OK(hr_idmap_init_direct(&m) == 0, "direct map created");
    key_zero(&m, "direct, empty");
    run(&m, "direct", 1);
    key_zero(&m, "direct, after churn");
    TAP_OK(m.leaves >= 4 && m.hcount > 0 && m.hcount < m.count,
           "direct: aligned keys in %zu leaves, the others hashed (%zu of %zu)", m.leaves,
           m.hcount, m.count);
    /* id 0 with flags 0 is a real entry, not an empty slot */
    hr_idmap_put(&m, 0x555555560000u, 0, 0);
    uint64_t id = 99;
    unsigned fl = 99;
    TAP_OK(hr_idmap_get(&m, 0x555555560000u, &id, &fl) == 1 && id == 0 && fl == 0,
           "direct: id 0 without flags is found");
    TAP_OK(hr_idmap_put(&m, 0x555555560000u, HR_IDMAP_ID_MASK, 0) == -1,
           "direct: an id that does not fit is refused");
    hr_idmap_free(&m);
    return tap_done();
}

/* test_idtab.c: the id-indexed table: records, leaf reclamation (also with skipped ids), memory. */
#include "hr_idtab.h"
#include "tap.h"

#include <string.h>

typedef struct rec {
    uint64_t id, live;
} rec_t;

int main(void)
{
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(rec_t));
    /* 100 leaves of ids, each id put then released at once: at most one leaf stays. */
    int ok = 1;
    for (uint64_t id = 0; id < 100 * HR_IDTAB_LEAF; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        ok &= r && r->id == 0 && r->live == 0; /* zeroed */
        r->id = id, r->live = 1;
        ok &= hr_idtab_get(&t, id) == r;
        r->live = 0;
        hr_idtab_release(&t, id);
        ok &= t.leaves <= 1;
    }
    TAP_OK(ok, "ids that die young never hold more than one leaf (%zu now)", t.leaves);
    TAP_OK(t.peak_leaves == 1, "peak leaves 1 (%zu)", t.peak_leaves);

    /* Survivors pin their leaves; when they die, the leaves go. */
    uint64_t base = t.frontier;
    for (uint64_t i = 0; i < 10 * HR_IDTAB_LEAF; i++) {
        rec_t *r = hr_idtab_put(&t, base + i);
        r->live = 1;
        if (i % HR_IDTAB_LEAF != 7) {
            r->live = 0;
            hr_idtab_release(&t, base + i);
        }
    }
    TAP_OK(t.leaves == 10, "one survivor per leaf keeps 10 leaves (%zu)", t.leaves);
    rec_t *s = hr_idtab_get(&t, base + 3 * HR_IDTAB_LEAF + 7);
    TAP_OK(s && s->live == 1, "a survivor's record is still there");
    for (uint64_t k = 0; k < 10; k++)
        hr_idtab_release(&t, base + k * HR_IDTAB_LEAF + 7);
    TAP_OK(t.leaves == 0, "all leaves freed when the survivors die (%zu)", t.leaves);
    TAP_OK(hr_idtab_get(&t, base + 3 * HR_IDTAB_LEAF + 7) == NULL, "a freed leaf answers NULL");

    /* Skipped ids (a collector puts only objects): a leaf emptied before the frontier left it
     * is freed when the frontier moves on. */
    base = (t.frontier + HR_IDTAB_LEAF) & ~(HR_IDTAB_LEAF - 1);
    hr_idtab_put(&t, base + 5);
    hr_idtab_release(&t, base + 5); /* frontier still inside the leaf: it stays */
    TAP_OK(t.leaves == 1, "an emptied leaf stays while ids may still land in it");
    hr_idtab_put(&t, base + 3 * HR_IDTAB_LEAF); /* jump over the rest of it */
    TAP_OK(t.leaves == 1, "and goes when the frontier jumps past it (%zu leaves)", t.leaves);
    TAP_OK(hr_idtab_bytes(&t) >= HR_IDTAB_LEAF * sizeof(rec_t), "bytes account for the leaf");
    hr_idtab_free(&t);
    TAP_OK(t.leaves == 0 && t.ndir == 0, "free resets the table");

    /* The leaf pool: 1000 leaves of live ids, then all die. The pool keeps at most
     * HR_IDTAB_CACHE of them resident (dirty) and gives the rest back (clean); reused leaves,
     * dirty or clean, come back zeroed. */
    hr_idtab_init(&t, sizeof(rec_t));
    uint64_t n = 1000 * HR_IDTAB_LEAF;
    for (uint64_t id = 0; id < n; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        r->id = id + 1, r->live = 1;
    }
    TAP_OK(t.leaves == 1000 && t.nchunks == (1000 + HR_IDTAB_CHUNK - 1) / HR_IDTAB_CHUNK,
           "1000 leaves carved from %zu chunks", t.nchunks);
    for (uint64_t id = 0; id < n; id++)
        hr_idtab_release(&t, id);
    TAP_OK(t.leaves == 0 && t.ndirty <= HR_IDTAB_CACHE && t.ndirty + t.nclean == 1000,
           "all dead: %zu leaves kept resident, %zu given back", t.ndirty, t.nclean);
    TAP_OK(hr_idtab_bytes(&t) <= HR_IDTAB_CACHE * HR_IDTAB_LEAF * sizeof(rec_t) +
                                     t.ndir * (sizeof *t.dir + sizeof *t.live),
           "bytes held follow the live ids (%zu)", hr_idtab_bytes(&t));
    ok = 1;
    for (uint64_t id = n; id < 2 * n; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        ok &= r && r->id == 0 && r->live == 0;
        r->id = id;
    }
    TAP_OK(ok && t.nchunks == (1000 + HR_IDTAB_CHUNK - 1) / HR_IDTAB_CHUNK,
           "the next 1000 leaves reuse the pool (no new chunk) and read as zero");
    hr_idtab_free(&t);
    return tap_done();
}

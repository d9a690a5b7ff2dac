/* test_idtab.c: the id-indexed table: records, leaf reclamation (also with skipped ids), memory. */
#include "hr_idtab.h"
#include "tap.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct rec {
    uint64_t id, live;
} rec_t;

static int count_each(void *arg, uint64_t id, void *r)
{
    uint64_t *c = arg;
    const rec_t *x = r;
    if (x->live) {
        c[0]++;
        c[1] += x->id == id;
    }
    return 0;
}

/* Compact leaves: sparse survivors of old leaves are packed; every lookup still finds its own
 * record (and only live ids), through shrinking and until the last one dies. */
static void test_compact(void)
{
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(rec_t));
    hr_idtab_compact(&t, offsetof(rec_t, live), ~(uint64_t)0);
    uint64_t n = 200 * HR_IDTAB_LEAF, live = 0;
    uint64_t x = 12345;
    for (uint64_t id = 0; id < n; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        r->id = id, r->live = 1;
        /* keep about 1 in 10 (and all of leaf 3, and 130 of leaf 5: a leaf that crosses the
         * compaction threshold later) */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t k = id / HR_IDTAB_LEAF, i = id % HR_IDTAB_LEAF;
        int keep = k == 5 ? i < 130 : (x >> 33) % 10 == 0 || k == 3;
        if (!keep) {
            r->live = 0;
            hr_idtab_release(&t, id);
        } else {
            live++;
        }
    }
    /* leaves 0 .. 199 - AGE - 1 are old enough; all but 3 and 5 are sparse */
    TAP_OK(t.compacts == 200 - HR_IDTAB_COMPACT_AGE - 1 - 2,
           "sparse old leaves are compact (%zu compact, %zu full)", t.compacts, t.leaves);
    TAP_OK(!((uintptr_t)t.dir[3] & 1) && !((uintptr_t)t.dir[5] & 1),
           "dense leaves (256 and 130 live) stay full");
    int ok = 1;
    for (uint64_t id = 0; id < n; id++) {
        rec_t *r = hr_idtab_get(&t, id);
        if (r && r->live)
            ok &= r->id == id;
    }
    TAP_OK(ok, "every live id finds its own record");
    uint64_t c[2] = {0, 0};
    hr_idtab_each(&t, count_each, c);
    TAP_OK(c[0] == live && c[1] == live, "each visits the %llu live records (%llu, %llu right)",
           (unsigned long long)live, (unsigned long long)c[0], (unsigned long long)c[1]);
    size_t before = hr_idtab_bytes(&t);
    /* leaf 5 falls to COMPACT_LATE live: it waits (test_compact_late) */
    for (uint64_t i = 129; i >= HR_IDTAB_COMPACT_LATE; i--) {
        rec_t *r = hr_idtab_get(&t, 5 * HR_IDTAB_LEAF + i);
        r->live = 0;
        hr_idtab_release(&t, 5 * HR_IDTAB_LEAF + i);
        live--;
    }
    TAP_OK(!((uintptr_t)t.dir[5] & 1) && t.nlate == 1,
           "a full old leaf whose live ids fall to %d waits to be compacted",
           HR_IDTAB_COMPACT_LATE);
    /* kill survivors in a scrambled order, checking every other survivor of the same leaf */
    ok = 1;
    for (uint64_t step = 0; step < n; step++) {
        uint64_t id = (step * 7919) % n;
        rec_t *r = hr_idtab_get(&t, id);
        if (!r || !r->live)
            continue;
        r->live = 0;
        hr_idtab_release(&t, id);
        live--;
        uint64_t base = id & ~(HR_IDTAB_LEAF - 1);
        for (uint64_t j = base; j < base + HR_IDTAB_LEAF; j++) {
            rec_t *q = hr_idtab_get(&t, j);
            if (q && q->live)
                ok &= q->id == j;
        }
    }
    TAP_OK(ok && live == 0, "records stay right while their compact leaves shrink (%llu left)",
           (unsigned long long)live);
    TAP_OK(t.compacts == 0 && hr_idtab_bytes(&t) < before,
           "all compact leaves freed when their ids die (%zu bytes now, %zu before)",
           hr_idtab_bytes(&t), before);
    hr_idtab_free(&t);
}

/* Records of the sizes the table's users have -- 8 (pointers), 12 (the replay engine's entry:
 * 4-aligned, its live word at offset 0 unaligned in packed leaves), 16 -- through packing and
 * every rebuild on the way down: survivors of a random density per leaf (1 to 128 of 256) die in
 * a scrambled order, and after each death every record of the leaf still holds its own id and
 * check bytes. */
static void put_rec(uint8_t *r, size_t rs, uint64_t id)
{
    uint64_t w = id | (uint64_t)1 << 63;
    memcpy(r, &w, 8);
    for (size_t b = 8; b < rs; b++)
        r[b] = (uint8_t)(id * 131 + b);
}

static int rec_is(const uint8_t *r, size_t rs, uint64_t id)
{
    uint64_t w;
    memcpy(&w, r, 8);
    if (w != (id | (uint64_t)1 << 63))
        return 0;
    for (size_t b = 8; b < rs; b++)
        if (r[b] != (uint8_t)(id * 131 + b))
            return 0;
    return 1;
}

static void test_compact_sizes(size_t rs)
{
    hr_idtab_t t;
    hr_idtab_init(&t, rs);
    hr_idtab_compact(&t, 0, (uint64_t)1 << 63);
    uint64_t nl = HR_IDTAB_COMPACT_AGE + 40, n = nl * HR_IDTAB_LEAF, live = 0, x = 99;
    uint64_t keep_per_leaf = 1;
    for (uint64_t id = 0; id < n; id++) {
        if (id % HR_IDTAB_LEAF == 0) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            keep_per_leaf = 1 + (x >> 33) % HR_IDTAB_COMPACT_MAX;
        }
        uint8_t *r = hr_idtab_put(&t, id);
        put_rec(r, rs, id);
        if (id % HR_IDTAB_LEAF < keep_per_leaf) {
            live++;
        } else {
            memset(r, 0, rs);
            hr_idtab_release(&t, id);
        }
    }
    size_t packed = t.compacts;
    int ok = packed > 0;
    for (uint64_t step = 0; step < n && ok; step++) {
        uint64_t id = (step * 7919) % n;
        uint8_t *r = hr_idtab_get(&t, id);
        uint64_t w = 0;
        if (r)
            memcpy(&w, r, 8);
        if (!(w >> 63))
            continue;
        memset(r, 0, rs);
        hr_idtab_release(&t, id);
        live--;
        uint64_t base = id & ~(HR_IDTAB_LEAF - 1);
        for (uint64_t j = base; j < base + HR_IDTAB_LEAF; j++) {
            const uint8_t *q = hr_idtab_get(&t, j);
            uint64_t v = 0;
            if (q)
                memcpy(&v, q, 8);
            if (v >> 63)
                ok &= rec_is(q, rs, j);
        }
    }
    TAP_OK(ok && live == 0 && t.compacts == 0,
           "%zu-byte records: %zu packed leaves shrink class by class as their ids die, every "
           "record intact (%llu left)", rs, packed, (unsigned long long)live);
    hr_idtab_free(&t);
}

/* The pool gives dead leaves back to the kernel by pages. A leaf need not be a whole number of
 * pages (here 256 records of 24 bytes: 1.5 pages of 4 KiB; 16-byte records on a 64 KiB-page
 * machine): giving back a dead leaf must leave the live leaves next to it alone. Every other leaf
 * keeps a few survivors, the rest die, many more than the pool keeps resident. */
static void test_pool_odd_leaves(void)
{
    typedef struct rec24 {
        uint64_t id, live, pad;
    } rec24_t;
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(rec24_t));
    uint64_t nleaves = 600, n = nleaves * HR_IDTAB_LEAF, survivors = 0;
    for (uint64_t id = 0; id < n; id++) {
        rec24_t *r = hr_idtab_put(&t, id);
        r->id = id, r->live = 1, r->pad = ~id;
    }
    for (uint64_t id = 0; id < n; id++) {
        uint64_t k = id / HR_IDTAB_LEAF, i = id % HR_IDTAB_LEAF;
        if (k % 2 == 1 && i % 37 == 0) {
            survivors++;
            continue;
        }
        rec24_t *r = hr_idtab_get(&t, id);
        r->live = 0;
        hr_idtab_release(&t, id);
    }
    TAP_OK(t.leaves == nleaves / 2 && t.nclean > 0 && t.ndirty <= HR_IDTAB_CACHE,
           "dead leaves went to the pool (%zu resident, %zu given back)", t.ndirty, t.nclean);
    uint64_t intact = 0;
    for (uint64_t k = 1; k < nleaves; k += 2)
        for (uint64_t i = 0; i < HR_IDTAB_LEAF; i += 37) {
            uint64_t id = k * HR_IDTAB_LEAF + i;
            const rec24_t *r = hr_idtab_get(&t, id);
            intact += r && r->id == id && r->live == 1 && r->pad == ~id;
        }
    TAP_OK(intact == survivors, "records next to leaves given back are intact (%llu of %llu)",
           (unsigned long long)intact, (unsigned long long)survivors);
    /* leaves taken from the pool again, given back or not, read as zero */
    int ok = 1;
    for (uint64_t id = n; id < n + 200 * HR_IDTAB_LEAF; id++) {
        rec24_t *r = hr_idtab_put(&t, id);
        ok &= r && r->id == 0 && r->live == 0 && r->pad == 0;
        r->id = id;
    }
    TAP_OK(ok, "leaves reused from the pool read as zero");
    hr_idtab_free(&t);
}

/* Compact leaves of large records: a leaf of HR_IDTAB_COMPACT_MAX records of 1 KiB is larger than
 * a slab chunk of the smaller classes; it must still get memory of its own. */
static void test_compact_large_records(void)
{
    typedef struct big {
        uint64_t id, live;
        uint8_t body[1024 - 16];
    } big_t;
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(big_t));
    hr_idtab_compact(&t, offsetof(big_t, live), ~(uint64_t)0);
    uint64_t n = (HR_IDTAB_COMPACT_AGE + 8) * HR_IDTAB_LEAF, live = 0;
    for (uint64_t id = 0; id < n; id++) {
        big_t *r = hr_idtab_put(&t, id);
        r->id = id, r->live = 1;
        memset(r->body, (int)(id & 0xff), sizeof r->body);
        if (id % HR_IDTAB_LEAF >= HR_IDTAB_COMPACT_MAX) { /* leaves of 128 survivors */
            r->live = 0;
            hr_idtab_release(&t, id);
        } else {
            live++;
        }
    }
    TAP_OK(t.compacts > 0, "leaves of large records are compacted too (%zu)", t.compacts);
    uint64_t ok = 0;
    for (uint64_t id = 0; id < n; id++) {
        const big_t *r = hr_idtab_get(&t, id);
        if (r && r->live && r->id == id && r->body[0] == (uint8_t)id &&
            r->body[sizeof r->body - 1] == (uint8_t)id)
            ok++;
    }
    TAP_OK(ok == live, "every large record survives compaction (%llu of %llu)",
           (unsigned long long)ok, (unsigned long long)live);
    hr_idtab_free(&t);
}

/* Leaves that fall to COMPACT_LATE live ids are packed only if they are still alive after
 * LATE_RING more leaves did the same: a leaf freed from end to end is never packed (no copying on
 * the way to empty), a leaf whose survivors stay is. Also with hr_idtab_dense (reused leaves are
 * not zeroed: the caller writes every record). */
static void test_compact_late(int dense)
{
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(rec_t));
    hr_idtab_compact(&t, offsetof(rec_t, live), ~(uint64_t)0);
    if (dense)
        hr_idtab_dense(&t);
    /* first some leaves that die young, so that later leaves are reused dirty ones; their
     * records keep saying live (only the table's count says dead), which a dense table must
     * not be misled by once the caller writes the records of the new ids */
    for (uint64_t id = 0; id < 40 * HR_IDTAB_LEAF; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        r->id = id, r->live = 1;
        hr_idtab_release(&t, id);
    }
    uint64_t b = t.frontier, nl = HR_IDTAB_LATE_RING + 10;
    uint64_t n = (nl + HR_IDTAB_COMPACT_AGE + 2) * HR_IDTAB_LEAF;
    for (uint64_t id = b; id < b + n; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        r->id = id, r->live = 1;
    }
    uint64_t k0 = b / HR_IDTAB_LEAF;
    TAP_OK(t.compacts == 0, "full leaves are not packed (%zu)", t.compacts);
    /* leaf k0 dies in id order: never packed */
    int ok = 1;
    for (uint64_t i = 0; i < HR_IDTAB_LEAF; i++) {
        rec_t *r = hr_idtab_get(&t, b + i);
        r->live = 0;
        hr_idtab_release(&t, b + i);
        ok &= t.compacts == 0;
    }
    TAP_OK(ok && !t.dir[k0], "a leaf freed from end to end is never packed, and is freed");
    /* leaves k0+1 .. k0+LATE_RING fall to COMPACT_LATE: they wait */
    for (uint64_t k = k0 + 1; k <= k0 + nl; k++) {
        for (uint64_t i = HR_IDTAB_COMPACT_LATE; i < HR_IDTAB_LEAF; i++) {
            uint64_t id = k * HR_IDTAB_LEAF + i;
            rec_t *r = hr_idtab_get(&t, id);
            r->live = 0;
            hr_idtab_release(&t, id);
        }
        if (k == k0 + 1) { /* leaf k0+1 then dies altogether while it waits */
            for (uint64_t i = 0; i < HR_IDTAB_COMPACT_LATE; i++) {
                rec_t *r = hr_idtab_get(&t, k * HR_IDTAB_LEAF + i);
                r->live = 0;
                hr_idtab_release(&t, k * HR_IDTAB_LEAF + i);
            }
        }
        if (k == k0 + HR_IDTAB_LATE_RING)
            TAP_OK(t.compacts == 0 && t.nlate == HR_IDTAB_LATE_RING,
                   "%d leaves down to %d live ids wait, none packed yet", HR_IDTAB_LATE_RING,
                   HR_IDTAB_COMPACT_LATE);
    }
    /* the 10 pushes after the ring filled packed leaves k0+2 .. k0+10 (k0+1 had died) */
    ok = !t.dir[k0 + 1];
    for (uint64_t k = k0 + 2; k <= k0 + 10; k++)
        ok &= ((uintptr_t)t.dir[k] & 1) != 0;
    TAP_OK(ok && t.compacts == 9, "leaves still sparse when pushed out are packed (%zu packed)",
           t.compacts);
    ok = 1;
    uint64_t live = 0;
    for (uint64_t id = b; id < b + n; id++) {
        rec_t *r = hr_idtab_get(&t, id);
        if (r && r->live)
            ok &= r->id == id, live++;
    }
    TAP_OK(ok && live == (nl - 1) * HR_IDTAB_COMPACT_LATE + (HR_IDTAB_COMPACT_AGE + 1) * HR_IDTAB_LEAF,
           "%s: every live id finds its own record (%llu live)", dense ? "dense" : "zeroing",
           (unsigned long long)live);
    hr_idtab_free(&t);
}

/* Resident pages of [p, p + bytes) (p page-aligned), by mincore. */
static size_t resident_pages(const void *p, size_t bytes)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (bytes + pg - 1) / pg, r = 0;
    static unsigned char vec[1 << 16];
    for (size_t at = 0; at < n; at += sizeof vec) {
        size_t m = n - at < sizeof vec ? n - at : sizeof vec;
        if (mincore((char *)p + at * pg, m * pg, vec) != 0)
            return (size_t)-1;
        for (size_t i = 0; i < m; i++)
            r += vec[i] & 1;
    }
    return r;
}

/* The directory follows the live ids, not the trace's length: a long run of ids with a small
 * heap (1000 live at a time), a few immortal ids at the start and a survivor every 5 M ids. The
 * directory of groups that no longer hold a leaf is given back (mincore: its pages are not
 * resident) and counted out; records survive the directory's moves (mremap); lookups of ids of a
 * group given back say "not live". With and without compact leaves. */
static void test_directory(int compact)
{
    hr_idtab_t t;
    hr_idtab_init(&t, sizeof(rec_t));
    if (compact)
        hr_idtab_compact(&t, offsetof(rec_t, live), 1);
    const uint64_t n = 20000000, window = 1000, every = 5000000;
    int ok = 1;
    for (uint64_t id = 0; id < n; id++) {
        rec_t *r = hr_idtab_put(&t, id);
        if (!r) {
            ok = 0;
            break;
        }
        r->id = id, r->live = 1;
        uint64_t old = id - window;
        if (id >= window && old >= 10 && old % every != 1) {
            rec_t *o = hr_idtab_get(&t, old);
            ok &= o && o->id == old && o->live == 1;
            o->live = 0;
            hr_idtab_release(&t, old);
        }
    }
    TAP_OK(ok, "20 M ids put and released with 1000 live (compact %d)", compact);
    size_t gb = t.gleaves * (sizeof *t.dir + sizeof *t.live), groups = 0;
    for (size_t g = 0; g < t.ndir / t.gleaves; g++)
        groups += t.gcount[g] != 0;
    /* held: the immortals' group, the survivors' (ids 5 M + 1, 10 M + 1, 15 M + 1), the window's
     * (one or two) */
    TAP_OK(groups >= 4 && groups <= 6, "%zu directory groups held of %zu", groups,
           t.ndir / t.gleaves);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t dres = resident_pages(t.dir, t.ndir * sizeof *t.dir);
    size_t lres = resident_pages(t.live, t.ndir * sizeof *t.live);
    TAP_OK(dres * pg <= groups * t.gleaves * sizeof *t.dir &&
               lres * pg <= groups * t.gleaves * sizeof *t.live,
           "the directory's resident pages are the held groups' (dir %zu, live %zu pages; %zu "
           "pages mapped)", dres, lres, t.ndir * (sizeof *t.dir + sizeof *t.live) / pg);
    size_t leaves_bytes = (size_t)t.leaves * HR_IDTAB_LEAF * sizeof(rec_t);
    TAP_OK(t.bytes <= leaves_bytes + groups * gb + (size_t)t.compacts * 4096 + t.ncchunks * 65536,
           "bytes counted: leaves and held groups (%zu; the whole directory: %zu)", t.bytes,
           t.ndir * (sizeof *t.dir + sizeof *t.live));
    TAP_OK(t.peak_bytes < 3 * gb * 6 + 64 * HR_IDTAB_LEAF * sizeof(rec_t),
           "peak bytes do not follow the trace's length (%zu)", t.peak_bytes);
    uint64_t intact = 0;
    for (uint64_t id = 0; id < 10; id++) {
        const rec_t *r = hr_idtab_get(&t, id);
        intact += r && r->id == id && r->live == 1;
    }
    for (uint64_t id = 1; id < n - window; id += every) {
        const rec_t *r = hr_idtab_get(&t, id);
        intact += r && r->id == id && r->live == 1;
    }
    TAP_OK(intact == 14, "immortals and survivors intact after the directory moved (%llu of 14)",
           (unsigned long long)intact);
    ok = 1;
    for (uint64_t id = 1000000; id < 4000000; id += 9973) {
        const rec_t *r = hr_idtab_get(&t, id);
        ok &= !r || !r->live;
    }
    TAP_OK(ok, "ids of groups given back are not live");
    hr_idtab_free(&t);
    TAP_OK(t.ndir == 0 && t.dir_map == 0 && !t.gcount, "free unmaps the directory");
}

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
    test_compact();
    test_compact_sizes(8);
    test_compact_sizes(12);
    test_compact_sizes(16);
    test_compact_late(0);
    test_compact_late(1);
    test_pool_odd_leaves();
    test_compact_large_records();
    test_directory(0);
    test_directory(1);
    return tap_done();
}

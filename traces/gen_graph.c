/* gen_graph.c: graph-trace generators: Python-shaped object workloads for the collectors.
 *
 * Every generator keeps the semantics a replay relies on: an object starts with one external
 * reference; a decref only removes a reference that exists; no event ever names an object that
 * has become unreachable (a program cannot touch what it cannot reach). Sizes are CPython 3.11's
 * on 64-bit: an int of one digit is 28 bytes, a list object 56 (40 + the 16-byte GC header), a
 * small instance with two slots 48, a dict 64 plus its keys table.
 *
 *   seed-intlist  [i for i in range(N)] built and dropped: one list, N ints, a growing item array
 *   seed-cycle    two large lists that reference each other, then both dropped
 *   genmix        generational hypothesis: most objects die young, a fraction lives long
 *   gcbench       GCBench: a long-lived binary tree and many short-lived trees
 *   cycles        many small reference cycles created and abandoned
 */
#include "hr_gen.h"

#include <stdlib.h>
#include <string.h>

#define OBJ (HR_F_OBJECT | HR_F_TYPED)
#define GCOBJ (HR_F_OBJECT | HR_F_GC | HR_F_TYPED)

enum { T_INT, T_LIST, T_NODE, T_DICT, T_TUPLE, T_STR, NTYPES };
static const char *const type_names[NTYPES] = {"int", "list", "Node", "dict", "tuple", "str"};

#define get_u64 hr_gen_param_u64
#define get_range hr_gen_param_range

/* The most ints a seed list may hold: its item array (about 9n bytes) stays far below the trace's
 * 2^47 size limit, and the int values (from 1000 + n in seed-cycle) cannot wrap. */
#define LIST_MAX ((uint64_t)1 << 40)
/* The most survivors genmix keeps (their ids live in an array that grows up to this). */
#define OLD_MAX ((uint64_t)1 << 32)
/* gcbench's iterations: iters << (max - 4) short-lived trees must not wrap (max is at most 24). */
#define ITERS_MAX ((uint64_t)1 << 32)

static int get_frac(hr_spec_t *spec, const char *key, double dflt, double *out, hr_err_t *err)
{
    const char *v = hr_spec_get(spec, key);
    *out = dflt;
    if (v && (hr_parse_double(v, out) || !(*out >= 0 && *out <= 1))) /* NaN fails too */
        return hr_err_set(err, HR_EUSAGE,
                          "generator '%s': %s=%s must be a fraction 0..1 (like 0.5)", spec->name,
                          key, v);
    return HR_OK;
}

static int types(hr_trace_writer_t *w, hr_err_t *err)
{
    int rc = HR_OK;
    for (uint32_t t = 0; t < NTYPES && !rc; t++)
        rc = hr_trace_put_string(w, HR_OP_TYPE, t, type_names[t], strlen(type_names[t]), err);
    return rc;
}

static int phase(hr_trace_writer_t *w, const char *name, hr_err_t *err)
{
    return hr_trace_put_string(w, HR_OP_PHASE, 0, name, strlen(name), err);
}

/* CPython 3.11 list growth (list_resize): the item array's capacity for a new size. */
static uint64_t list_capacity(uint64_t newsize)
{
    return (newsize + (newsize >> 3) + 6) & ~(uint64_t)3;
}

/* A list being appended to: its object, its item array (a plain mem block) and capacity. */
typedef struct pylist {
    uint64_t obj, items, len, cap;
    int has_items;
} pylist_t;

static int list_new(hr_trace_writer_t *w, pylist_t *l, hr_err_t *err)
{
    memset(l, 0, sizeof *l);
    return hr_trace_put_alloc(w, 56, HR_DOMAIN_OBJ, GCOBJ, T_LIST, &l->obj, err);
}

/* Append object x: grow the item array as CPython does, then the list holds x. */
static int list_append(hr_trace_writer_t *w, pylist_t *l, uint64_t x, hr_err_t *err)
{
    int rc = HR_OK;
    if (l->len + 1 > l->cap) {
        l->cap = list_capacity(l->len + 1);
        if (!l->has_items) {
            rc = hr_trace_put_alloc(w, l->cap * 8, HR_DOMAIN_MEM, 0, 0, &l->items, err);
            l->has_items = 1;
        } else {
            rc = hr_trace_put_realloc(w, l->items, l->cap * 8, err);
        }
    }
    l->len++;
    return rc ? rc : hr_trace_put_link(w, HR_OP_LINK, l->obj, x, err);
}

/* Drop the last external reference of a list; its item array goes with it (list_dealloc). */
static int list_drop(hr_trace_writer_t *w, pylist_t *l, hr_err_t *err)
{
    int rc = hr_trace_put_id(w, HR_OP_DECREF, l->obj, err);
    if (!rc && l->has_items)
        rc = hr_trace_put_id(w, HR_OP_FREE, l->items, err);
    return rc;
}

/* An int object for value v (small ints -5..256 are static in CPython: no allocation). Returns
 * 0 and sets *id, or 1 when the value needs no object. */
static int new_int(hr_trace_writer_t *w, uint64_t v, uint64_t *id, int *is_obj, hr_err_t *err)
{
    *is_obj = v > 256;
    if (!*is_obj)
        return HR_OK;
    return hr_trace_put_alloc(w, 28, HR_DOMAIN_OBJ, OBJ, T_INT, id, err);
}

/* Fill a list with n ints (values from `start`): each int is linked, then the loop variable's
 * reference goes. */
static int fill_ints(hr_trace_writer_t *w, pylist_t *l, uint64_t start, uint64_t n, hr_err_t *err)
{
    int rc = HR_OK;
    for (uint64_t i = 0; i < n && !rc; i++) {
        uint64_t id;
        int obj;
        if ((rc = new_int(w, start + i, &id, &obj, err)) || !obj)
            continue;
        if (!(rc = list_append(w, l, id, err)))
            rc = hr_trace_put_id(w, HR_OP_DECREF, id, err);
    }
    return rc;
}

/* {==== seed-intlist and seed-cycle ==== */

static int gen_intlist(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t n;
    int rc;
    if ((rc = get_range(spec, "n", 10000000, 0, LIST_MAX, &n, err)) || (rc = types(w, err)) ||
        (rc = phase(w, "build", err)))
        return rc;
    pylist_t l;
    if ((rc = list_new(w, &l, err)) || (rc = fill_ints(w, &l, 0, n, err)) ||
        (rc = phase(w, "drop", err)) || (rc = list_drop(w, &l, err)))
        return rc;
    return phase(w, "end", err);
}

static int gen_cycle(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t n;
    int rc;
    if ((rc = get_range(spec, "n", 1000000, 0, LIST_MAX, &n, err)) || (rc = types(w, err)) ||
        (rc = phase(w, "build", err)))
        return rc;
    pylist_t a, b;
    if ((rc = list_new(w, &a, err)) || (rc = fill_ints(w, &a, 1000, n, err)) ||
        (rc = list_new(w, &b, err)) || (rc = fill_ints(w, &b, 1000 + n, n, err)) ||
        (rc = list_append(w, &a, b.obj, err)) || (rc = list_append(w, &b, a.obj, err)) ||
        (rc = phase(w, "drop", err)))
        return rc;
    /* del a; del b: only the lists' external references go; the cycle keeps both alive under
     * counting, so their item arrays are not freed here (list_dealloc never runs). */
    if ((rc = hr_trace_put_id(w, HR_OP_DECREF, a.obj, err)) ||
        (rc = hr_trace_put_id(w, HR_OP_DECREF, b.obj, err)))
        return rc;
    /* The program goes on: small containers with a sliding window of 1000 alive, enough
     * allocation to cross generation 0's threshold and mark-sweep's growth trigger. */
    uint64_t work;
    if ((rc = get_u64(spec, "work", 200000, &work, err)) || (rc = phase(w, "work", err)))
        return rc;
    uint64_t window[1000];
    for (uint64_t i = 0; i < work && !rc; i++) {
        uint64_t *slot = &window[i % 1000];
        if (i >= 1000)
            rc = hr_trace_put_id(w, HR_OP_DECREF, *slot, err);
        if (!rc)
            rc = hr_trace_put_alloc(w, 64, HR_DOMAIN_OBJ, GCOBJ, T_TUPLE, slot, err);
    }
    for (uint64_t i = 0; i < 1000 && i < work && !rc; i++)
        rc = hr_trace_put_id(w, HR_OP_DECREF, window[i], err);
    return rc ? rc : phase(w, "end", err);
}

/* {==== genmix ==== */

static int gen_genmix(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t events, seed, old_max;
    double survive, cyc;
    int rc;
    if ((rc = get_u64(spec, "events", 10000000, &events, err)) ||
        (rc = get_u64(spec, "seed", 1, &seed, err)) ||
        (rc = get_range(spec, "old", 50000, 1, OLD_MAX, &old_max, err)) ||
        (rc = get_frac(spec, "survive", 0.12, &survive, err)) ||
        (rc = get_frac(spec, "cycles", 0.02, &cyc, err)) || (rc = types(w, err)))
        return rc;
    hr_rng_t rng;
    hr_rng_seed(&rng, seed);
    /* A long-lived container (a dict of survivors) holds the old objects. */
    uint64_t holder;
    if ((rc = hr_trace_put_alloc(w, 64, HR_DOMAIN_OBJ, GCOBJ, T_DICT, &holder, err)))
        return rc;
    /* The survivors' ids: the array grows with them (old= only bounds it), so a large old= costs
     * memory only when that many objects do survive. */
    uint64_t *old = NULL;
    uint64_t nold = 0, cap = 0;
    static const struct { uint16_t size; uint8_t type, gc; } kinds[] = {
        {28, T_INT, 0}, {32, T_INT, 0}, {56, T_STR, 0}, {64, T_TUPLE, 1}, {56, T_LIST, 1},
        {48, T_NODE, 1}, {64, T_DICT, 1}, {80, T_STR, 0}};
    while (!rc && hr_trace_writer_events(w) < events) {
        /* A young object, maybe holding another young object for a while. */
        int k = (int)hr_rng_below(&rng, HR_ARRAY_LEN(kinds));
        uint64_t x, y = 0;
        rc = hr_trace_put_alloc(w, kinds[k].size, HR_DOMAIN_OBJ, kinds[k].gc ? GCOBJ : OBJ,
                                kinds[k].type, &x, err);
        int pair = !rc && kinds[k].gc && hr_rng_below(&rng, 3) == 0;
        if (pair) { /* a container with a child */
            rc = hr_trace_put_alloc(w, 28, HR_DOMAIN_OBJ, OBJ, T_INT, &y, err);
            if (!rc)
                rc = hr_trace_put_link(w, HR_OP_LINK, x, y, err);
            if (!rc)
                rc = hr_trace_put_id(w, HR_OP_DECREF, y, err);
            if (!rc && hr_rng_below(&rng, 1000) < (uint64_t)(cyc * 1000)) {
                /* the child points back: a two-object cycle counting cannot free */
                uint64_t z;
                rc = hr_trace_put_alloc(w, 56, HR_DOMAIN_OBJ, GCOBJ, T_LIST, &z, err);
                if (!rc)
                    rc = hr_trace_put_link(w, HR_OP_LINK, x, z, err);
                if (!rc)
                    rc = hr_trace_put_link(w, HR_OP_LINK, z, x, err);
                if (!rc)
                    rc = hr_trace_put_id(w, HR_OP_DECREF, z, err);
            }
        }
        if (rc)
            break;
        if (hr_rng_below(&rng, 10000) < (uint64_t)(survive * 10000)) {
            /* survives: the holder keeps it; an old one may be evicted to make room */
            if ((rc = hr_trace_put_link(w, HR_OP_LINK, holder, x, err)))
                break;
            if (nold == old_max) {
                uint64_t i = hr_rng_below(&rng, nold), victim = old[i];
                old[i] = x;
                rc = hr_trace_put_link(w, HR_OP_UNLINK, holder, victim, err);
            } else {
                if (nold == cap) {
                    uint64_t ncap = cap ? cap * 2 : 1024;
                    ncap = ncap < old_max ? ncap : old_max;
                    uint64_t *p = realloc(old, (size_t)ncap * sizeof *p);
                    if (!p) {
                        rc = hr_err_set(err, HR_ENOMEM, "generator 'genmix': out of memory for "
                                        "%llu survivors", (unsigned long long)ncap);
                        break;
                    }
                    old = p, cap = ncap;
                }
                old[nold++] = x;
            }
        }
        if (!rc)
            rc = hr_trace_put_id(w, HR_OP_DECREF, x, err); /* the young reference goes */
    }
    free(old);
    return rc ? rc : hr_trace_put_id(w, HR_OP_DECREF, holder, err);
}

/* {==== gcbench ==== */

/* Build a complete binary tree of depth d bottom-up (children first, as Node(make(), make())
 * does) and return its root with one external reference. Depth stays small (<= 24), so the
 * recursion is bounded. */
static int make_tree(hr_trace_writer_t *w, int d, uint64_t *root, hr_err_t *err)
{
    uint64_t l = 0, r = 0;
    int rc = HR_OK;
    if (d > 0 && ((rc = make_tree(w, d - 1, &l, err)) || (rc = make_tree(w, d - 1, &r, err))))
        return rc;
    if ((rc = hr_trace_put_alloc(w, 48, HR_DOMAIN_OBJ, GCOBJ, T_NODE, root, err)))
        return rc;
    if (d > 0) {
        if ((rc = hr_trace_put_link(w, HR_OP_LINK, *root, l, err)) ||
            (rc = hr_trace_put_link(w, HR_OP_LINK, *root, r, err)) ||
            (rc = hr_trace_put_id(w, HR_OP_DECREF, l, err)) ||
            (rc = hr_trace_put_id(w, HR_OP_DECREF, r, err)))
            return rc;
    }
    return HR_OK;
}

static int gen_gcbench(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t longd, maxd, iters;
    int rc;
    /* Depths above 24 would take 2^25 objects per tree and recurse deeper than make_tree
     * promises. */
    if ((rc = get_range(spec, "long", 16, 0, 24, &longd, err)) ||
        (rc = get_range(spec, "max", 16, 0, 24, &maxd, err)) ||
        (rc = get_range(spec, "iters", 4, 0, ITERS_MAX, &iters, err)))
        return rc;
    if ((rc = types(w, err)) || (rc = phase(w, "long-lived tree", err)))
        return rc;
    uint64_t long_root;
    if ((rc = make_tree(w, (int)longd, &long_root, err)))
        return rc;
    /* Short-lived trees of depth 4, 6, ..., max: 2^(max-d) of them per depth, times iters. */
    for (uint64_t d = 4; d <= maxd && !rc; d += 2) {
        char name[64];
        snprintf(name, sizeof name, "short-lived trees of depth %llu", (unsigned long long)d);
        rc = phase(w, name, err);
        uint64_t count = iters * ((uint64_t)1 << (maxd - d));
        for (uint64_t i = 0; i < count && !rc; i++) {
            uint64_t t;
            if (!(rc = make_tree(w, (int)d, &t, err)))
                rc = hr_trace_put_id(w, HR_OP_DECREF, t, err);
        }
    }
    if (!rc)
        rc = phase(w, "end", err);
    return rc ? rc : hr_trace_put_id(w, HR_OP_DECREF, long_root, err);
}

/* {==== cycles ==== */

static int gen_cycles(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t count, seed, maxlen;
    int rc;
    if ((rc = get_u64(spec, "count", 200000, &count, err)) ||
        (rc = get_u64(spec, "seed", 1, &seed, err)) ||
        (rc = get_range(spec, "maxlen", 5, 1, 1000, &maxlen, err)) || (rc = types(w, err)))
        return rc;
    hr_rng_t rng;
    hr_rng_seed(&rng, seed);
    uint64_t ring[1000];
    for (uint64_t c = 0; c < count && !rc; c++) {
        uint64_t len = 1 + hr_rng_below(&rng, maxlen);
        for (uint64_t i = 0; i < len && !rc; i++)
            rc = hr_trace_put_alloc(w, 48, HR_DOMAIN_OBJ, GCOBJ, T_NODE, &ring[i], err);
        for (uint64_t i = 0; i < len && !rc; i++) /* i -> i+1, last -> first (1: a self-link) */
            rc = hr_trace_put_link(w, HR_OP_LINK, ring[i], ring[(i + 1) % len], err);
        for (uint64_t i = 0; i < len && !rc; i++)
            rc = hr_trace_put_id(w, HR_OP_DECREF, ring[i], err);
    }
    return rc;
}

static int kind_graph(hr_spec_t *spec, hr_err_t *err)
{
    (void)spec, (void)err;
    return HR_KIND_GRAPH;
}

const hr_gen_vt hr_gen_intlist_vt = {
    "seed-intlist", "[i for i in range(N)] built and dropped: a list, N ints, its item array",
    "n=N (default 10M, at most 2^40)", gen_intlist, kind_graph};
const hr_gen_vt hr_gen_cycle_vt = {
    "seed-cycle", "two lists of N ints that reference each other, then dropped (counting leaks them)",
    "n=N (default 1M per list, at most 2^40) work=N (200000 allocations afterwards)", gen_cycle,
    kind_graph};
const hr_gen_vt hr_gen_genmix_vt = {
    "genmix", "generational hypothesis: most objects die young, a fraction lives long, some cycles",
    "events=N seed=S survive=F (0.12) cycles=F (0.02) old=N (50000 kept at most; 1..2^32)",
    gen_genmix, kind_graph};
const hr_gen_vt hr_gen_gcbench_vt = {
    "gcbench", "GCBench: a long-lived binary tree and many short-lived trees",
    "long=D (16) max=D (16) (depths 0..24) iters=N (4, at most 2^32)", gen_gcbench, kind_graph};
const hr_gen_vt hr_gen_cycles_vt = {
    "cycles", "many small reference cycles (rings of 1..maxlen objects) created and abandoned",
    "count=N (200000) seed=S maxlen=N (5, 1..1000)", gen_cycles, kind_graph};

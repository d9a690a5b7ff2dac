/* gen.c: the generator registry and the generators that exercise the format itself.
 *
 * (The graph workloads are in gen_graph.c.)
 *
 *   random      every event kind, for round-trip and fuzz seeds (alloc or graph kind); in graph
 *               traces reference counts are kept consistent: an object is released by its last
 *               decref only once no link touches it, and is never named again.
 *   churn       a Python-like allocation stream: small sizes, most blocks die young.
 *   seed-arena  10x1024x1024 16-byte obj allocations freed all at once, then a small heap.
 */
#include "hr_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {==== PRNG ==== */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void hr_rng_seed(hr_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hr_rng_next(hr_rng_t *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return res;
}

uint64_t hr_rng_below(hr_rng_t *r, uint64_t n) { return (uint64_t)(((__uint128_t)hr_rng_next(r) * n) >> 64); }

/* {==== Helpers ==== */

int hr_gen_param_u64(hr_spec_t *spec, const char *key, uint64_t dflt, uint64_t *out, hr_err_t *err)
{
    const char *v = hr_spec_get(spec, key);
    *out = dflt;
    if (v && hr_parse_size(v, out))
        return hr_err_set(err, HR_EUSAGE,
                          "generator '%s': %s=%s must be a whole number (like 1000000 or 1M)",
                          spec->name, key, v);
    return HR_OK;
}

int hr_gen_param_range(hr_spec_t *spec, const char *key, uint64_t dflt, uint64_t lo, uint64_t hi,
                       uint64_t *out, hr_err_t *err)
{
    int rc = hr_gen_param_u64(spec, key, dflt, out, err);
    if (!rc && (*out < lo || *out > hi))
        return hr_err_set(err, HR_EUSAGE, "generator '%s': %s=%s is out of range %llu..%llu",
                          spec->name, key, hr_spec_get(spec, key), (unsigned long long)lo,
                          (unsigned long long)hi);
    return rc;
}

#define get_u64 hr_gen_param_u64

/* A set of ids with O(1) insert, random pick and removal. */
typedef struct idset {
    uint64_t *v;
    size_t n, cap;
} idset_t;

static int idset_add(idset_t *s, uint64_t id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *p = realloc(s->v, cap * sizeof *p);
        if (!p)
            return HR_ENOMEM;
        s->v = p, s->cap = cap;
    }
    s->v[s->n++] = id;
    return HR_OK;
}

static uint64_t idset_take(idset_t *s, size_t i)
{
    uint64_t id = s->v[i];
    s->v[i] = s->v[--s->n];
    return id;
}

static int kind_from_spec(hr_spec_t *spec, hr_err_t *err)
{
    const char *k = hr_spec_get(spec, "kind");
    if (!k || strcmp(k, "alloc") == 0)
        return HR_KIND_ALLOC;
    if (strcmp(k, "graph") == 0)
        return HR_KIND_GRAPH;
    return hr_err_set(err, HR_EUSAGE, "generator '%s': kind=%s must be alloc or graph", spec->name,
                      k);
}

static int kind_alloc(hr_spec_t *spec, hr_err_t *err)
{
    (void)spec, (void)err;
    return HR_KIND_ALLOC;
}

/* {==== random ==== */

static uint64_t random_size(hr_rng_t *r)
{
    uint64_t c = hr_rng_below(r, 100);
    if (c < 85)
        return 1 + hr_rng_below(r, 512);
    if (c < 98)
        return 513 + hr_rng_below(r, 8192);
    if (c < 99)
        return 0;
    return 1 + hr_rng_below(r, 1 << 20);
}

typedef struct obj_state {
    uint32_t ext;    /* external references */
    uint32_t nlinks; /* links in which it is source or target */
} obj_state_t;

static int gen_random(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t events, seed;
    int rc;
    if ((rc = get_u64(spec, "events", 10000, &events, err)) ||
        (rc = get_u64(spec, "seed", 1, &seed, err)))
        return rc;
    int graph = kind_from_spec(spec, err) == HR_KIND_GRAPH; /* hr_gen_run checked it */
    hr_rng_t rng;
    hr_rng_seed(&rng, seed);
    idset_t blocks = {0}, objs = {0}, links = {0}; /* links: pairs (src, dst) flattened */
    obj_state_t *os = NULL;
    size_t os_cap = 0;
    static const char *const types[] = {"list", "dict", "tuple", "str", "int", "float", "A\"q\\"};
    uint32_t ntypes = graph ? (uint32_t)HR_ARRAY_LEN(types) : 2;
    for (uint32_t t = 0; t < ntypes && !rc; t++)
        rc = hr_trace_put_string(w, HR_OP_TYPE, t, types[t], strlen(types[t]), err);
    if (!rc)
        rc = hr_trace_put_string(w, HR_OP_PHASE, 0, "start", 5, err);
    uint64_t fake_arena = 0x7f0000000000ull;
    while (!rc && hr_trace_writer_events(w) < events) {
        uint64_t c = hr_rng_below(&rng, 1000), id;
        if (c < 380 || blocks.n + objs.n == 0) { /* alloc */
            int dom = (int)hr_rng_below(&rng, 4), flags = 0;
            uint32_t type = 0;
            int obj = graph && hr_rng_below(&rng, 2);
            if (obj)
                flags |= HR_F_OBJECT | (hr_rng_below(&rng, 2) ? HR_F_GC : 0), dom = HR_DOMAIN_OBJ;
            else if (hr_rng_below(&rng, 8) == 0)
                flags |= HR_F_ZERO;
            if (hr_rng_below(&rng, 4) == 0)
                flags |= HR_F_TYPED, type = (uint32_t)hr_rng_below(&rng, ntypes);
            hr_event_t ev = {.op = HR_OP_ALLOC, .domain = (uint8_t)dom, .flags = (uint8_t)flags,
                             .tag = type, .a = hr_trace_writer_next_id(w), .b = random_size(&rng)};
            if (!obj && dom == HR_DOMAIN_NATIVE && hr_rng_below(&rng, 16) == 0)
                ev.flags |= HR_F_ALIGNED, ev.align_log2 = (uint8_t)(4 + hr_rng_below(&rng, 9));
            id = ev.a;
            rc = hr_trace_write(w, &ev, err);
            if (!rc && obj) {
                if (id >= os_cap) {
                    size_t cap = os_cap ? os_cap * 2 : 1024;
                    while (cap <= id)
                        cap *= 2;
                    obj_state_t *p = realloc(os, cap * sizeof *p);
                    if (!p) {
                        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
                        break;
                    }
                    os = p, os_cap = cap;
                }
                os[id] = (obj_state_t){1, 0};
                rc = idset_add(&objs, id);
            } else if (!rc) {
                rc = idset_add(&blocks, id);
            }
        } else if (c < 700) { /* free a block, or release an object */
            if (blocks.n && (!graph || hr_rng_below(&rng, 2))) {
                id = idset_take(&blocks, hr_rng_below(&rng, blocks.n));
                rc = hr_trace_put_id(w, HR_OP_FREE, id, err);
            } else if (objs.n) {
                size_t i = hr_rng_below(&rng, objs.n);
                id = objs.v[i];
                if (os[id].ext > 1) {
                    os[id].ext--;
                    rc = hr_trace_put_id(w, HR_OP_DECREF, id, err);
                } else if (os[id].nlinks == 0) { /* last reference: it dies here */
                    idset_take(&objs, i);
                    rc = hr_trace_put_id(w, HR_OP_DECREF, id, err);
                    if (!rc && hr_rng_below(&rng, 2))
                        rc = hr_trace_put_id(w, HR_OP_DIED, id, err);
                }
            }
        } else if (c < 760) { /* realloc */
            if (blocks.n)
                rc = hr_trace_put_realloc(w, blocks.v[hr_rng_below(&rng, blocks.n)],
                                          random_size(&rng), err);
        } else if (graph && c < 860) { /* incref */
            if (objs.n) {
                id = objs.v[hr_rng_below(&rng, objs.n)];
                os[id].ext++;
                rc = hr_trace_put_id(w, HR_OP_INCREF, id, err);
            }
        } else if (graph && c < 940) { /* link */
            if (objs.n) {
                uint64_t s = objs.v[hr_rng_below(&rng, objs.n)], d = objs.v[hr_rng_below(&rng, objs.n)];
                os[s].nlinks++, os[d].nlinks++;
                rc = hr_trace_put_link(w, HR_OP_LINK, s, d, err);
                if (!rc)
                    rc = idset_add(&links, s);
                if (!rc)
                    rc = idset_add(&links, d);
            }
        } else if (graph && c < 990) { /* unlink */
            if (links.n) {
                size_t i = 2 * hr_rng_below(&rng, links.n / 2);
                uint64_t s = links.v[i], d = links.v[i + 1];
                links.v[i] = links.v[links.n - 2], links.v[i + 1] = links.v[links.n - 1];
                links.n -= 2;
                os[s].nlinks--, os[d].nlinks--;
                rc = hr_trace_put_link(w, HR_OP_UNLINK, s, d, err);
            }
        } else { /* facts */
            hr_event_t ev = {0};
            switch (hr_rng_below(&rng, 4)) {
            case 0: ev.op = HR_OP_ARENA_MAP, ev.a = fake_arena, ev.b = 1 << 20; fake_arena += 1 << 20; break;
            case 1: ev.op = HR_OP_GC_BEGIN, ev.tag = (uint32_t)hr_rng_below(&rng, 3); break;
            case 2: ev.op = HR_OP_GC_END, ev.tag = (uint32_t)hr_rng_below(&rng, 3), ev.a = hr_rng_below(&rng, 100); break;
            default: ev.op = HR_OP_PHASE, ev.a = 4, ev.str = (const uint8_t *)"tick"; break;
            }
            rc = hr_trace_write(w, &ev, err);
        }
    }
    if (!rc) {
        const char *txt = "Small block threshold = 512, in 32 size classes.\n\nclass\tsize\n";
        rc = hr_trace_put_string(w, HR_OP_STATS, HR_STATS_PYMALLOC, txt, strlen(txt), err);
    }
    free(blocks.v), free(objs.v), free(links.v), free(os);
    return rc;
}

/* {==== churn: a Python-like allocation stream ==== */

static int gen_churn(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t events, seed, live_max;
    int rc;
    if ((rc = get_u64(spec, "events", 1000000, &events, err)) ||
        (rc = get_u64(spec, "seed", 1, &seed, err)) ||
        (rc = get_u64(spec, "live", 100000, &live_max, err)))
        return rc;
    hr_rng_t rng;
    hr_rng_seed(&rng, seed);
    /* Size classes weighted like a CPython heap: many 32-64 byte objects, few large buffers. */
    static const uint16_t sizes[] = {16, 24, 32, 32, 32, 48, 48, 56, 64, 64, 72, 80, 96, 112,
                                     128, 160, 200, 256, 320, 512, 1024, 4096};
    idset_t young = {0}, old = {0};
    while (!rc && hr_trace_writer_events(w) < events) {
        uint64_t c = hr_rng_below(&rng, 100);
        if (c < 50 || young.n == 0) {
            uint64_t id;
            uint64_t size = sizes[hr_rng_below(&rng, HR_ARRAY_LEN(sizes))];
            int dom = hr_rng_below(&rng, 4) ? HR_DOMAIN_OBJ : HR_DOMAIN_MEM;
            rc = hr_trace_put_alloc(w, size, dom, 0, 0, &id, err);
            if (!rc)
                rc = idset_add(&young, id);
        } else if (c < 95) { /* most die young: free one of the newest */
            size_t k = hr_rng_below(&rng, young.n < 8 ? young.n : 8);
            uint64_t id = idset_take(&young, young.n - 1 - k);
            rc = hr_trace_put_id(w, HR_OP_FREE, id, err);
        } else if (c < 98) { /* survivors get old */
            rc = idset_add(&old, idset_take(&young, young.n - 1));
            if (!rc && old.n > live_max)
                rc = hr_trace_put_id(w, HR_OP_FREE, idset_take(&old, hr_rng_below(&rng, old.n)), err);
        } else if (old.n) {
            rc = hr_trace_put_realloc(w, old.v[hr_rng_below(&rng, old.n)],
                                      sizes[hr_rng_below(&rng, HR_ARRAY_LEN(sizes))], err);
        }
    }
    free(young.v), free(old.v);
    return rc;
}

/* {==== seed-arena ==== */

static int gen_seed_arena(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err)
{
    uint64_t n, work;
    int rc;
    if ((rc = get_u64(spec, "blocks", 10u << 20, &n, err)) ||
        (rc = get_u64(spec, "work", 100000, &work, err)))
        return rc;
    rc = hr_trace_put_string(w, HR_OP_PHASE, 0, "fill", 4, err);
    uint64_t first = hr_trace_writer_next_id(w);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = hr_trace_put_alloc(w, 16, HR_DOMAIN_OBJ, 0, 0, NULL, err);
    if (!rc)
        rc = hr_trace_put_string(w, HR_OP_PHASE, 0, "free", 4, err);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = hr_trace_put_id(w, HR_OP_FREE, first + i, err);
    if (!rc)
        rc = hr_trace_put_string(w, HR_OP_PHASE, 0, "work", 4, err);
    /* A small working heap: a ring of 1000 live blocks of mixed sizes. */
    uint64_t ring[1000];
    size_t nring = 0;
    for (uint64_t i = 0; i < work && !rc; i++) {
        if (nring == HR_ARRAY_LEN(ring)) {
            rc = hr_trace_put_id(w, HR_OP_FREE, ring[i % nring], err);
            if (!rc)
                rc = hr_trace_put_alloc(w, 16 + 16 * (i % 8), HR_DOMAIN_OBJ, 0, 0, &ring[i % nring], err);
        } else {
            rc = hr_trace_put_alloc(w, 16 + 16 * (i % 8), HR_DOMAIN_OBJ, 0, 0, &ring[nring++], err);
        }
    }
    return rc;
}

/* {==== Registry ==== */

static const hr_gen_vt gen_random_vt = {
    "random", "every event kind at random (for format tests); graph traces keep refcounts consistent",
    "events=N seed=S kind=alloc|graph", gen_random, kind_from_spec};
static const hr_gen_vt gen_churn_vt = {
    "churn", "Python-like allocation stream: small sizes, most blocks die young",
    "events=N seed=S live=N (long-lived blocks kept)", gen_churn, kind_alloc};
static const hr_gen_vt gen_seed_arena_vt = {
    "seed-arena", "10x1024x1024 16-byte objects allocated, all freed, then a small working heap",
    "blocks=N work=N", gen_seed_arena, kind_alloc};

extern const hr_gen_vt hr_gen_intlist_vt, hr_gen_cycle_vt, hr_gen_genmix_vt, hr_gen_gcbench_vt,
    hr_gen_cycles_vt; /* gen_graph.c */

static const hr_gen_vt *const registry[] = {
    &gen_seed_arena_vt, &hr_gen_intlist_vt, &hr_gen_cycle_vt, &hr_gen_genmix_vt, &hr_gen_gcbench_vt,
    &hr_gen_cycles_vt, &gen_churn_vt, &gen_random_vt, NULL};

const hr_gen_vt *const *hr_gen_registry(void) { return registry; }

const hr_gen_vt *hr_gen_by_name(const char *name)
{
    for (size_t i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int hr_gen_run(const char *spec_text, const char *out_path, const hr_trace_write_opts_t *opts,
               hr_err_t *err)
{
    hr_spec_t spec;
    int rc = hr_spec_parse(&spec, spec_text, "generator", err);
    if (rc)
        return rc;
    const hr_gen_vt *g = hr_gen_by_name(spec.name);
    if (!g) {
        char names[512] = "";
        for (size_t i = 0; registry[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     registry[i]->name);
        char hint[96];
        return hr_err_set(err, HR_EUSAGE, "unknown generator '%s'%s (known: %s)", spec.name,
                          hr_did_you_mean(hint, sizeof hint, spec.name, names), names);
    }
    /* Reject unknown parameters before generating anything: g->params lists "key=..." words. */
    for (int i = 0; i < spec.nparams; i++) {
        const char *k = spec.params[i].key, *at = g->params;
        size_t kl = k ? strlen(k) : 0;
        int known = 0;
        while (k && (at = strstr(at, k)) != NULL) {
            if ((at == g->params || at[-1] == ' ') && at[kl] == '=') {
                known = 1;
                break;
            }
            at += kl;
        }
        if (!known) {
            char keys[256], hint[96] = "";
            if (k)
                hr_did_you_mean(hint, sizeof hint, k, hr_spec_keys_of(g->params, keys, sizeof keys));
            return hr_err_set(err, HR_EUSAGE, "generator '%s' has no parameter '%s'%s (it takes: %s)",
                              g->name, k ? k : spec.params[i].value, hint, g->params);
        }
    }
    int kind = g->kind_of(&spec, err);
    if (kind < 0)
        return kind;
    hr_trace_header_t h;
    hr_trace_header_init(&h, kind);
    hr_trace_header_set(&h, "producer", "heapreplay gen");
    hr_trace_header_set(&h, "generator", spec_text);
    hr_trace_writer_t *w = NULL;
    hr_trace_write_opts_t o = opts ? *opts : (hr_trace_write_opts_t){0};
    o.atomic = 1;
    rc = hr_trace_writer_open(&w, out_path, &h, &o, err);
    hr_trace_header_free(&h);
    if (rc)
        return rc;
    if ((rc = g->run(w, &spec, err)) || (rc = hr_spec_check_unused(&spec, "generator", NULL, err))) {
        hr_trace_writer_abort(w);
        return rc;
    }
    return hr_trace_writer_close(w, err);
}

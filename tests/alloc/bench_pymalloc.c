/* bench_pymalloc.c: time per operation of our pymalloc model against the real obmalloc (and the
 * null backend, the harness's own cost, and the other allocators built in) on the same request
 * stream, side by side in one run, all in one process.
 * A benchmark, not a test: meson benchmark / `bench_pymalloc [events]`. For whole traces through
 * the replay engine, one process per replay, see benchmarks/allocators.sh. */
#include "hr_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct op {
    uint32_t id;   /* block slot */
    uint32_t size; /* 0 with free = 1 means free */
    uint8_t kind;  /* 0 malloc, 1 free, 2 realloc */
} op_t;

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A Python-like mix: mostly small objects, a live heap of ~50k blocks, some reallocs. */
static op_t *make_stream(size_t n, uint32_t nslots)
{
    op_t *ops = malloc(n * sizeof *ops);
    uint32_t *sz = calloc(nslots, sizeof *sz);
    uint8_t *live = calloc(nslots, 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)(rnd() % nslots);
        if (!live[id]) {
            unsigned r = (unsigned)(rnd() % 100);
            uint32_t size = r < 60 ? 16 + (uint32_t)(rnd() % 48) : r < 97 ? 1 + (uint32_t)(rnd() % 512)
                                                                        : 513 + (uint32_t)(rnd() % 4000);
            ops[i] = (op_t){id, size, 0};
            live[id] = 1;
            sz[id] = size;
        } else if (rnd() % 8 == 0) {
            uint32_t size = sz[id] + (uint32_t)(rnd() % 64);
            ops[i] = (op_t){id, size, 2};
            sz[id] = size;
        } else {
            ops[i] = (op_t){id, sz[id], 1};
            live[id] = 0;
        }
    }
    free(sz);
    free(live);
    return ops;
}

static double run(hr_alloc_t *a, const op_t *ops, size_t n, uint32_t nslots)
{
    void **p = calloc(nslots, sizeof *p);
    uint32_t *sz = calloc(nslots, sizeof *sz);
    uint64_t t0 = hr_now_ns();
    for (size_t i = 0; i < n; i++) {
        const op_t *o = &ops[i];
        if (o->kind == 0) {
            p[o->id] = hr_alloc_malloc(a, o->size, HR_DOMAIN_OBJ);
            *(volatile char *)p[o->id] = 1; /* touch, as the replay engine does */
        } else if (o->kind == 2) {
            p[o->id] = hr_alloc_realloc(a, p[o->id], sz[o->id], o->size, HR_DOMAIN_OBJ);
        } else {
            hr_alloc_free(a, p[o->id], o->size, HR_DOMAIN_OBJ);
            p[o->id] = NULL;
        }
        sz[o->id] = o->size;
    }
    uint64_t t1 = hr_now_ns();
    for (uint32_t i = 0; i < nslots; i++)
        if (p[i])
            hr_alloc_free(a, p[i], sz[i], HR_DOMAIN_OBJ);
    free(p);
    free(sz);
    return (double)(t1 - t0) / (double)n;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atoll(argv[1]) : 5000000;
    uint32_t nslots = 100000;
    op_t *ops = make_stream(n, nslots);
    static const char *const specs[] = {"null",     "pymalloc:preset=3.11", "cpython", "libc",
                                        "jemalloc", "mimalloc",             "tcmalloc"};
    enum { NSPEC = HR_ARRAY_LEN(specs) };
    hr_alloc_t *a[NSPEC] = {0};
    for (int i = 0; i < NSPEC; i++) {
        hr_err_t err = {0, {0}};
        if (hr_alloc_create(&a[i], specs[i], &err) != HR_OK)
            printf("# %s: %s\n", specs[i], err.msg);
    }
    printf("%-24s %12s (%zu events, 3 rounds, best)\n", "allocator", "ns/op", n);
    double best[NSPEC];
    for (int i = 0; i < NSPEC; i++)
        best[i] = 1e9;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < NSPEC; i++)
            if (a[i]) {
                double t = run(a[i], ops, n, nslots);
                if (t < best[i])
                    best[i] = t;
            }
    for (int i = 0; i < NSPEC; i++)
        if (a[i])
            printf("%-24s %12.1f\n", specs[i], best[i]);
    if (a[1] && a[2])
        printf("pymalloc / cpython = %.2f (net of null: %.2f)\n", best[1] / best[2],
               (best[1] - best[0]) / (best[2] - best[0]));
    for (int i = 0; i < NSPEC; i++)
        hr_alloc_destroy(a[i]);
    free(ops);
    return 0;
}

/* test_differential.c: our pymalloc model against the real obmalloc (the cpython backend).
 *
 * Every stream (random or structured) is replayed twice on identical arena bases: first through
 * `pymalloc:preset=P,placement=recorded` in this process, then through
 * `cpython:placement=recorded` in a forked child (the real obmalloc cannot be reset, so each
 * stream needs a fresh process; libpython is dlopen'ed here first, untouched, so the children
 * find it loaded). The bases lie in a far, otherwise unused address range and are handed to both
 * backends as placement facts, so both map every arena at the same address. Compared, exactly:
 *   - the address of every block (hence its arena and its offset inside it), for pool blocks;
 *     blocks from libc must be outside every arena in both runs;
 *   - the arena count after every event (the map and unmap moments);
 *   - the statistics text at each checkpoint, byte for byte;
 *   - the counters of hr_alloc_stats at the end.
 *
 * Usage: test_differential [--slow] [--version X.Y] [--streams N] [--seed S]
 *   --version X.Y  check preset X.Y against pyenv's libpythonX.Y (skipped when absent).
 */
#include "hr_alloc.h"
#include "tap.h"

#include <dlfcn.h>
#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* {==== Streams ==== */
enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE, OP_CHECK };

typedef struct ev {
    uint8_t op;
    uint8_t dom;
    uint32_t id;   /* block slot */
    uint64_t size; /* malloc/calloc/realloc */
} ev_t;

typedef struct stream {
    ev_t *ev;
    size_t n, cap;
    uint32_t *live; /* ids of live blocks */
    size_t nlive, live_cap;
    uint32_t *free_ids; /* recycled ids */
    size_t nfree_ids, free_cap;
    uint32_t next_id;
    uint64_t rng;
    uint64_t *sizes; /* current size of each id */
    size_t sizes_cap;
    size_t nallocs; /* allocating events */
    size_t nchecks;
} stream_t;

static uint64_t rnd(stream_t *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    *cap = c;
    return q;
}

static void push(stream_t *s, ev_t e)
{
    s->ev = grow(s->ev, &s->cap, s->n + 1, sizeof *s->ev);
    s->ev[s->n++] = e;
}

static void g_alloc(stream_t *s, int op, int dom, uint64_t size)
{
    uint32_t id = s->nfree_ids ? s->free_ids[--s->nfree_ids] : s->next_id++;
    push(s, (ev_t){(uint8_t)op, (uint8_t)dom, id, size});
    s->live = grow(s->live, &s->live_cap, s->nlive + 1, sizeof *s->live);
    s->live[s->nlive++] = id;
    s->sizes = grow(s->sizes, &s->sizes_cap, (size_t)id + 1, sizeof *s->sizes);
    s->sizes[id] = size;
    s->nallocs++;
}

/* Free the live block at position i of the live list. */
static void g_free(stream_t *s, size_t i)
{
    uint32_t id = s->live[i];
    push(s, (ev_t){OP_FREE, 0, id, 0});
    s->live[i] = s->live[--s->nlive];
    s->free_ids = grow(s->free_ids, &s->free_cap, s->nfree_ids + 1, sizeof *s->free_ids);
    s->free_ids[s->nfree_ids++] = id;
}

static void g_realloc(stream_t *s, size_t i, uint64_t size)
{
    push(s, (ev_t){OP_REALLOC, 0, s->live[i], size});
    s->sizes[s->live[i]] = size;
    s->nallocs++;
}

static void g_check(stream_t *s)
{
    push(s, (ev_t){OP_CHECK, 0, 0, 0});
    s->nchecks++;
}

static int rnd_dom(stream_t *s)
{
    unsigned r = (unsigned)(rnd(s) % 100);
    return r < 45 ? HR_DOMAIN_MEM : r < 90 ? HR_DOMAIN_OBJ : r < 95 ? HR_DOMAIN_RAW
                                                                     : HR_DOMAIN_NATIVE;
}

static uint64_t rnd_size(stream_t *s, int profile)
{
    unsigned r = (unsigned)(rnd(s) % 1000);
    if (profile == 1) /* small objects only, as most Python allocations */
        return r < 5 ? 0 : 1 + rnd(s) % (r < 700 ? 64 : 512);
    if (profile == 2) /* around the threshold and zero */
        return r < 150 ? 0 : r < 600 ? 400 + rnd(s) % 224 : 1 + rnd(s) % 2048;
    if (r < 15)
        return 0;
    if (r < 700)
        return 1 + rnd(s) % 64;
    if (r < 900)
        return 1 + rnd(s) % 512;
    if (r < 970)
        return 513 + rnd(s) % 3584;
    if (r < 995)
        return 4097 + rnd(s) % 60000;
    return 65537 + rnd(s) % 300000;
}

static uint64_t realloc_size(stream_t *s, uint64_t old, int profile)
{
    switch (rnd(s) % 6) {
    case 0: return old + 1 + rnd(s) % 32;                    /* small growth */
    case 1: return old > 4 ? old - rnd(s) % (old / 4 + 1) : old; /* shrink < 25 % */
    case 2: return old / 2;                                   /* shrink by half */
    case 3: return old * 2 + 1;                               /* double */
    case 4: return rnd(s) % 50 == 0 ? 0 : rnd_size(s, profile);
    default: return rnd_size(s, profile);
    }
}

static void gen_random(stream_t *s, size_t len, size_t target, int profile)
{
    size_t mid = len / 2;
    for (size_t k = 0; k < len; k++) {
        if (k == mid)
            g_check(s);
        unsigned r = (unsigned)(rnd(s) % 100);
        unsigned p_alloc = s->nlive < target ? 60 : 35;
        if (r < p_alloc || s->nlive == 0) {
            g_alloc(s, rnd(s) % 8 == 0 ? OP_CALLOC : OP_MALLOC, rnd_dom(s), rnd_size(s, profile));
        } else if (r < p_alloc + 15) {
            size_t i = rnd(s) % s->nlive;
            g_realloc(s, i, realloc_size(s, s->sizes[s->live[i]], profile));
        } else {
            /* mostly random order, sometimes the newest block (LIFO, as CPython often frees) */
            size_t i = rnd(s) % 4 == 0 ? s->nlive - 1 : rnd(s) % s->nlive;
            g_free(s, i);
        }
    }
    g_check(s);
}

/* The seed scenario (Evan Jones, 2005): n 16-byte objects, all freed, then a small heap. */
static void gen_seed(stream_t *s, size_t n, size_t tail)
{
    for (size_t k = 0; k < n; k++)
        g_alloc(s, OP_MALLOC, HR_DOMAIN_OBJ, 16);
    g_check(s);
    unsigned order = (unsigned)(rnd(s) % 3);
    while (s->nlive) {
        if (order == 0)
            g_free(s, s->nlive - 1); /* newest first */
        else if (order == 1)
            g_free(s, 0);            /* oldest first (the list is permuted by swap-remove) */
        else
            g_free(s, rnd(s) % s->nlive);
    }
    g_check(s);
    gen_random(s, tail, 200, 1);
}

/* Allocate about `arenas` arenas of 500-byte blocks and free them all, `rounds` times. */
static void gen_thrash(stream_t *s, unsigned rounds, size_t per_round)
{
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t k = 0; k < per_round; k++)
            g_alloc(s, OP_MALLOC, rnd(s) % 2 ? HR_DOMAIN_OBJ : HR_DOMAIN_MEM, 481 + rnd(s) % 32);
        while (s->nlive)
            g_free(s, rnd(s) % 3 ? s->nlive - 1 : rnd(s) % s->nlive);
        g_check(s);
    }
}

/* Blocks grown byte by byte across classes and the threshold, then shrunk. */
static void gen_realloc_chains(stream_t *s, unsigned chains)
{
    for (unsigned c = 0; c < chains; c++)
        g_alloc(s, OP_MALLOC, rnd_dom(s), 1 + rnd(s) % 8);
    for (int step = 0; step < 200; step++) {
        for (size_t i = 0; i < chains; i++) {
            uint64_t sz = s->sizes[s->live[i]];
            g_realloc(s, i, step < 120 ? sz + 1 + rnd(s) % 12 : sz - sz / (2 + rnd(s) % 6));
        }
        if (rnd(s) % 2) /* interleave a short-lived block */
            g_alloc(s, OP_MALLOC, HR_DOMAIN_OBJ, 1 + rnd(s) % 512);
        if (s->nlive > chains + 20)
            g_free(s, chains + rnd(s) % (s->nlive - chains));
    }
    g_check(s);
    while (s->nlive)
        g_free(s, rnd(s) % s->nlive);
    g_check(s);
}

/* For every class: one pool's worth plus one, freed in a scattered order. */
static void gen_class_sweep(stream_t *s, unsigned align, size_t pool)
{
    for (unsigned size = align; size <= 512; size += align) {
        size_t n = (pool - 48) / size + 1;
        for (size_t k = 0; k < n; k++)
            g_alloc(s, OP_MALLOC, HR_DOMAIN_OBJ, size - rnd(s) % align);
        for (size_t k = 0; k < n / 2; k++)
            g_free(s, rnd(s) % s->nlive);
    }
    g_check(s);
    while (s->nlive)
        g_free(s, rnd(s) % s->nlive);
    g_check(s);
}

/* Many arenas, then holes punched at random, refilled, punched again: arena re-sorting. */
static void gen_fragment(stream_t *s, size_t n)
{
    for (size_t k = 0; k < n; k++)
        g_alloc(s, OP_MALLOC, HR_DOMAIN_OBJ, 1 + rnd(s) % 256);
    for (int round = 0; round < 4; round++) {
        size_t nf = s->nlive * (5 + rnd(s) % 90) / 100;
        for (size_t k = 0; k < nf && s->nlive; k++)
            g_free(s, rnd(s) % s->nlive);
        g_check(s);
        size_t na = nf * (rnd(s) % 100) / 100;
        for (size_t k = 0; k < na; k++)
            g_alloc(s, OP_MALLOC, rnd_dom(s), rnd_size(s, 1));
    }
    while (s->nlive)
        g_free(s, rnd(s) % s->nlive);
    g_check(s);
}

/* Whole pools emptied at random across many full arenas: arenas move in the usable list in
 * every way (full -> head, re-sorting among equal counts, release). */
static void gen_pool_churn(stream_t *s, size_t pool, size_t arena, unsigned arenas)
{
    size_t per_pool = (pool - 48) / 512, n = per_pool * (arena / pool) * arenas;
    uint32_t *order = malloc(n * sizeof *order);
    uint8_t *gone = calloc(n, 1);
    for (size_t k = 0; k < n; k++) {
        g_alloc(s, OP_MALLOC, HR_DOMAIN_OBJ, 497 + rnd(s) % 16);
        order[k] = s->live[s->nlive - 1];
    }
    g_check(s);
    size_t npools = n / per_pool;
    for (int round = 0; round < 60; round++) {
        /* Block k lives in pool k / per_pool (one class, filled in order): free whole pools,
         * in one to four places, before anything is allocated again. */
        unsigned runs = 1 + (unsigned)(rnd(s) % 4);
        for (unsigned r = 0; r < runs; r++) {
            size_t start = (rnd(s) % npools) * per_pool;
            size_t len = per_pool * (rnd(s) % 3 ? 1 : 2) - (rnd(s) % 4 == 0);
            for (size_t k = start; k < start + len && k < n; k++) {
                if (gone[k])
                    continue;
                for (size_t i = 0; i < s->nlive; i++)
                    if (s->live[i] == order[k]) {
                        g_free(s, i);
                        break;
                    }
                gone[k] = 1;
            }
        }
        size_t extra = rnd(s) % (2 * per_pool);
        for (size_t k = 0; k < extra; k++) /* other classes take the emptied pools */
            g_alloc(s, OP_MALLOC, HR_DOMAIN_MEM, 1 + rnd(s) % 400);
        if (round % 20 == 19)
            g_check(s);
    }
    free(order);
    free(gone);
    while (s->nlive)
        g_free(s, rnd(s) % s->nlive);
    g_check(s);
}

/* Enough arena bases for any run of the stream. A new arena is only ever mapped by an
 * allocating call of at most 512 bytes (with release=empty, each such call may map one), and
 * arenas never hold less than half their bytes... except under that churn: so the number of
 * small allocating calls, capped by twice the small bytes in arenas plus 50,000. */
static size_t bases_needed(const stream_t *s, size_t arena_size)
{
    size_t calls = 0;
    uint64_t bytes = 0;
    for (size_t k = 0; k < s->n; k++)
        if (s->ev[k].op != OP_FREE && s->ev[k].op != OP_CHECK && s->ev[k].size <= 512) {
            calls++;
            bytes += s->ev[k].size + 16;
        }
    size_t cap = (size_t)(2 * bytes / arena_size) + 50000;
    return 64 + (calls < cap ? calls : cap);
}

static void stream_free(stream_t *s)
{
    free(s->ev);
    free(s->live);
    free(s->free_ids);
    free(s->sizes);
    memset(s, 0, sizeof *s);
}

/* {==== Replay and results ==== */
#define MAX_CHECKS 16
#define TEXT_MAX 8192

typedef struct result {
    int32_t status; /* 0 ok, 1 failed (msg) */
    char msg[512];
    uint64_t naddr, narena_ev;
    hr_alloc_stats_t st;
    uint32_t ntext;
    uint32_t text_len[MAX_CHECKS];
    char text[MAX_CHECKS][TEXT_MAX];
    /* followed by addr[nallocs] and arena_ev[2 * narena_ev_cap] */
} result_t;

typedef struct run_cfg {
    const char *model_spec;
    const char *oracle_spec;
    size_t arena_size;
    size_t pool_size;
    uint64_t *bases;
    size_t nbases;
} run_cfg_t;

static size_t result_bytes(const stream_t *s, size_t arena_cap)
{
    return sizeof(result_t) + s->nallocs * sizeof(uint64_t) + 2 * arena_cap * sizeof(uint64_t);
}

static void replay(const stream_t *s, const run_cfg_t *cfg, const char *spec, result_t *res,
                   size_t arena_cap)
{
    uint64_t *addr = (uint64_t *)(res + 1);
    uint64_t *aev = addr + s->nallocs;
    hr_err_t err = {0, {0}};
    hr_alloc_t *a = NULL;
    if (hr_alloc_create(&a, spec, &err) != HR_OK) {
        res->status = 1;
        snprintf(res->msg, sizeof res->msg, "create %.100s: %.380s", spec, err.msg);
        return;
    }
    for (size_t i = 0; i < cfg->nbases; i++)
        hr_alloc_arena_fact(a, cfg->bases[i], cfg->arena_size, 1);
    /* fresh zero pages (no copy-on-write of the parent's heap in the forked child) */
    size_t nid = (size_t)s->next_id + 1, tbytes = nid * (sizeof(void *) + sizeof(uint64_t) + 1);
    void *tables = mmap(NULL, tbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tables == MAP_FAILED) {
        res->status = 1;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        hr_alloc_destroy(a);
        return;
    }
    void **ptr = tables;
    uint64_t *size = (uint64_t *)(ptr + nid);
    uint8_t *dom = (uint8_t *)(size + nid);
    uint64_t arenas = 0;
    hr_buf_t text;
    hr_buf_init(&text);
    for (size_t k = 0; k < s->n && res->status == 0; k++) {
        const ev_t *e = &s->ev[k];
        void *p = NULL;
        switch (e->op) {
        case OP_MALLOC:
        case OP_CALLOC:
            p = e->op == OP_MALLOC ? hr_alloc_malloc(a, e->size, e->dom)
                                   : hr_alloc_calloc(a, e->size, e->dom);
            ptr[e->id] = p;
            size[e->id] = e->size;
            dom[e->id] = e->dom;
            addr[res->naddr++] = (uint64_t)(uintptr_t)p;
            break;
        case OP_REALLOC:
            p = hr_alloc_realloc(a, ptr[e->id], size[e->id], e->size, dom[e->id]);
            addr[res->naddr++] = (uint64_t)(uintptr_t)p;
            if (p) {
                ptr[e->id] = p;
                size[e->id] = e->size;
            }
            break;
        case OP_FREE:
            hr_alloc_free(a, ptr[e->id], size[e->id], dom[e->id]);
            ptr[e->id] = NULL;
            break;
        case OP_CHECK:
            text.len = 0;
            if (hr_alloc_stats_text(a, &text, &err) != HR_OK || res->ntext == MAX_CHECKS ||
                text.len >= TEXT_MAX) {
                res->status = 1;
                snprintf(res->msg, sizeof res->msg, "stats text at event %zu failed", k);
                break;
            }
            memcpy(res->text[res->ntext], text.data, text.len);
            res->text_len[res->ntext++] = (uint32_t)text.len;
            break;
        }
        if ((e->op == OP_MALLOC || e->op == OP_CALLOC || e->op == OP_REALLOC) && !p) {
            res->status = 1;
            snprintf(res->msg, sizeof res->msg, "allocation failed at event %zu", k);
        }
        /* arena map/unmap moments */
        hr_alloc_stats_t st;
        a->vt->stats(a->ctx, &st);
        if (st.arenas != arenas) {
            if (res->narena_ev < arena_cap) {
                aev[2 * res->narena_ev] = k;
                aev[2 * res->narena_ev + 1] = st.arenas;
            }
            res->narena_ev++;
            arenas = st.arenas;
        }
    }
    hr_alloc_get_stats(a, &res->st);
    hr_buf_free(&text);
    munmap(tables, tbytes);
    hr_alloc_destroy(a);
}

/* {==== Comparison ==== */
typedef struct tally {
    uint64_t streams, events, allocs, pool_blocks, raw_blocks, arena_events, texts;
    uint64_t mismatched_streams, addr_mismatch, arena_mismatch, text_mismatch, stat_mismatch,
        failures;
    int reported;
} tally_t;

static int in_bases(const run_cfg_t *cfg, uint64_t p)
{
    size_t lo = 0, hi = cfg->nbases;
    while (lo < hi) { /* bases ascend: the last base <= p */
        size_t mid = (lo + hi) / 2;
        if (cfg->bases[mid] <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && p - cfg->bases[lo - 1] < cfg->arena_size;
}

static void first_diff_line(const char *a, size_t na, const char *b, size_t nb)
{
    size_t i = 0, line = 0, start = 0;
    while (i < na && i < nb && a[i] == b[i]) {
        if (a[i] == '\n') {
            line++;
            start = i + 1;
        }
        i++;
    }
    const char *ea = memchr(a + start, '\n', na - start), *eb = memchr(b + start, '\n', nb - start);
    int la = (int)((ea ? ea : a + na) - (a + start)), lb = (int)((eb ? eb : b + nb) - (b + start));
    TAP_DIAG("  line %zu: model  '%.*s'", line + 1, la, a + start);
    TAP_DIAG("  line %zu: oracle '%.*s'", line + 1, lb, b + start);
}

static pid_t child_pid;
static uint64_t ns_model, ns_oracle, ns_compare;

static int compare_stream(const stream_t *s, const run_cfg_t *cfg, const char *label,
                          tally_t *t)
{
    size_t arena_cap = cfg->nbases * 2 + 16;
    size_t bytes = result_bytes(s, arena_cap);
    result_t *model = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    result_t *oracle = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (model == MAP_FAILED || oracle == MAP_FAILED) {
        fprintf(stderr, "mmap of %zu bytes failed\n", bytes);
        exit(3);
    }
    madvise(model, bytes, MADV_DONTFORK); /* the child needs none of it: a cheaper fork */
    uint64_t t0 = hr_now_ns();
    replay(s, cfg, cfg->model_spec, model, arena_cap);
    uint64_t t1 = hr_now_ns();
    ns_model += t1 - t0;
    fflush(stdout);
    child_pid = fork();
    if (child_pid == 0) {
        replay(s, cfg, cfg->oracle_spec, oracle, arena_cap);
        _exit(0);
    }
    int wst = 0;
    waitpid(child_pid, &wst, 0);
    uint64_t t2 = hr_now_ns();
    ns_oracle += t2 - t1;
    t->streams++;
    t->events += s->n;
    int bad = 0;
    char why[256] = "";
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        snprintf(why, sizeof why, "oracle child died (status %d)", wst);
        bad = 1;
        t->failures++;
    } else if (model->status || oracle->status) {
        snprintf(why, sizeof why, "%.250s", model->status ? model->msg : oracle->msg);
        bad = 1;
        t->failures++;
    }
    uint64_t *ma = (uint64_t *)(model + 1), *oa = (uint64_t *)(oracle + 1);
    uint64_t *mev = ma + s->nallocs, *oev = oa + s->nallocs;
    if (!bad) {
        t->allocs += model->naddr;
        uint64_t first = UINT64_MAX, nmis = 0;
        for (uint64_t i = 0; i < model->naddr && i < oracle->naddr; i++) {
            int mi = in_bases(cfg, ma[i]), oi = in_bases(cfg, oa[i]);
            if (mi)
                t->pool_blocks++;
            else
                t->raw_blocks++;
            if ((mi || oi) ? ma[i] != oa[i] : 0) {
                nmis++;
                if (first == UINT64_MAX)
                    first = i;
            }
        }
        if (model->naddr != oracle->naddr)
            nmis++;
        /* A small request in a pymalloc domain must come from an arena at one of the given
         * bases in both runs: otherwise placement fell back and the address comparison above
         * would compare nothing. */
        uint64_t ai = 0, misplaced = 0, first_mp = 0;
        for (size_t k = 0; k < s->n && ai < model->naddr && ai < oracle->naddr; k++) {
            const ev_t *e = &s->ev[k];
            if (e->op == OP_FREE || e->op == OP_CHECK)
                continue;
            if (e->op != OP_REALLOC && e->dom != HR_DOMAIN_RAW && e->size >= 1 &&
                e->size <= 512 && (!in_bases(cfg, ma[ai]) || !in_bases(cfg, oa[ai])))
                if (misplaced++ == 0)
                    first_mp = ai;
            ai++;
        }
        if (misplaced) {
            nmis += misplaced;
            t->failures++;
        }
        if (misplaced) {
            t->addr_mismatch += nmis;
            bad = 1;
            snprintf(why, sizeof why, "%llu pool blocks outside the given arena bases (placement "
                                      "fell back), first at allocation %llu (model %#llx, "
                                      "oracle %#llx)",
                     (unsigned long long)misplaced, (unsigned long long)first_mp,
                     (unsigned long long)ma[first_mp], (unsigned long long)oa[first_mp]);
        } else if (nmis) {
            t->addr_mismatch += nmis;
            bad = 1;
            snprintf(why, sizeof why, "%llu block addresses differ, first at allocation %llu "
                                      "(model %#llx, oracle %#llx)",
                     (unsigned long long)nmis, (unsigned long long)first,
                     (unsigned long long)(first < model->naddr ? ma[first] : 0),
                     (unsigned long long)(first < oracle->naddr ? oa[first] : 0));
        }
        t->arena_events += model->narena_ev;
        size_t nae = model->narena_ev < arena_cap ? model->narena_ev : arena_cap;
        if (model->narena_ev != oracle->narena_ev ||
            memcmp(mev, oev, 2 * nae * sizeof(uint64_t)) != 0) {
            t->arena_mismatch++;
            if (!bad)
                snprintf(why, sizeof why, "arena map/unmap moments differ (%llu vs %llu events)",
                         (unsigned long long)model->narena_ev,
                         (unsigned long long)oracle->narena_ev);
            bad = 1;
        }
        t->texts += model->ntext;
        int text_bad = model->ntext != oracle->ntext;
        for (uint32_t i = 0; !text_bad && i < model->ntext; i++)
            if (model->text_len[i] != oracle->text_len[i] ||
                memcmp(model->text[i], oracle->text[i], model->text_len[i]) != 0) {
                text_bad = 1;
                if (!bad && t->reported < 5) {
                    TAP_DIAG("%s: statistics text %u differs:", label, i);
                    first_diff_line(model->text[i], model->text_len[i], oracle->text[i],
                                    oracle->text_len[i]);
                }
            }
        if (text_bad) {
            t->text_mismatch++;
            if (!bad)
                snprintf(why, sizeof why, "statistics text differs");
            bad = 1;
        }
        hr_alloc_stats_t ms = model->st, os = oracle->st;
        ms.pools_used = os.pools_used = 0; /* the oracle cannot count it per event */
        if (memcmp(&ms, &os, sizeof ms) != 0) {
            t->stat_mismatch++;
            if (!bad)
                snprintf(why, sizeof why,
                         "counters differ: footprint %llu/%llu peak %llu/%llu large %llu/%llu",
                         (unsigned long long)ms.footprint, (unsigned long long)os.footprint,
                         (unsigned long long)ms.peak_footprint,
                         (unsigned long long)os.peak_footprint,
                         (unsigned long long)ms.large_requests,
                         (unsigned long long)os.large_requests);
            bad = 1;
        }
    }
    if (bad) {
        t->mismatched_streams++;
        if (t->reported++ < 5)
            TAP_DIAG("%s: %s", label, why);
    }
    munmap(model, bytes);
    munmap(oracle, bytes);
    ns_compare += hr_now_ns() - t2;
    return !bad;
}

/* {==== Arena bases ==== */

/* Ascending bases in a far range (from 32 TiB, below 64 TiB): gaps of whole arenas, among the
 * first 64 bases a few jumps across a 16 GiB (3.11 bottom node) or 256 GiB (3.10 middle node)
 * boundary, and about 2 % straddling such a boundary; about half of them off the pool grid by
 * a multiple of 4 KiB (the 63-pool case), when the pool is larger than a page. */
static void make_bases(stream_t *s, run_cfg_t *cfg, size_t n)
{
    uint64_t b = (uint64_t)0x200000000000ull + (rnd(s) % 64) * ((uint64_t)1 << 34);
    free(cfg->bases);
    cfg->bases = malloc(n * sizeof *cfg->bases);
    cfg->nbases = n;
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)(rnd(s) % 100);
        uint64_t step = cfg->arena_size * (1 + (r < 60 ? 0 : rnd(s) % 8));
        if (r >= 97 && i < 64) /* node boundaries, early on: the range stays below 2^46 */
            step += (uint64_t)1 << (r == 99 ? 38 : 34);
        uint64_t mis = 0;
        if (cfg->pool_size > 4096 && rnd(s) % 2)
            mis = 4096 * (1 + rnd(s) % (cfg->pool_size / 4096 - 1));
        if (r == 50 || r == 51) {
            /* straddle a bottom-node boundary of 3.11 (16 GiB) or 3.10 (256 MiB): the arena's
             * tail lies in the next node */
            uint64_t unit = (uint64_t)1 << (r == 50 ? 34 : 28);
            b = ((b + unit) & ~(unit - 1)) - cfg->arena_size / 2;
            mis = cfg->pool_size > 4096 ? 4096 : 0;
        }
        cfg->bases[i] = b + mis;
        if (b + mis >= ((uint64_t)1 << 46)) {
            fprintf(stderr, "too many arena bases (%zu)\n", n);
            exit(3);
        }
        b += step + cfg->pool_size; /* room for the misalignment */
        b &= ~(uint64_t)(cfg->pool_size - 1);
    }
}

/* {==== Driver ==== */
static int find_lib(const char *version, char *out, size_t cap)
{
    char pat[256];
    const char *home = getenv("HOME");
    snprintf(pat, sizeof pat, "%s/.pyenv/versions/%s.*/lib/libpython%s.so.1.0",
             home ? home : "/root", version, version);
    glob_t g;
    int ok = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    if (ok)
        snprintf(out, cap, "%s", g.gl_pathv[g.gl_pathc - 1]);
    if (ok || g.gl_pathc == 0)
        globfree(&g);
    return ok;
}

int main(int argc, char **argv)
{
    int slow = 0;
    const char *version = NULL;
    long nstreams = -1;
    uint64_t seed = 20240611;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--slow") == 0)
            slow = 1;
        else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
            version = argv[++i];
        else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc)
            nstreams = atol(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
    }
    if (!hr_alloc_by_name("cpython")) {
        printf("1..0 # SKIP the cpython backend is not built (meson -Dpython)\n");
        return 0;
    }
    char lib[512] = "", model_spec[160], oracle_spec[700];
    run_cfg_t cfg = {0};
    const char *preset = version ? version : "3.11";
    cfg.arena_size = (size_t)1 << 20;
    cfg.pool_size = (size_t)1 << 14;
    unsigned align = 16;
    if (version) {
        if (!find_lib(version, lib, sizeof lib)) {
            printf("1..0 # SKIP no pyenv libpython%s on this machine\n", version);
            return 0;
        }
        if (strcmp(version, "3.8") == 0 || strcmp(version, "3.9") == 0) {
            cfg.arena_size = (size_t)1 << 18;
            cfg.pool_size = (size_t)1 << 12;
        }
    } else {
        const char *env = getenv("HR_CPYTHON_LIB");
        snprintf(lib, sizeof lib, "%s", env && *env ? env : "libpython3.11.so.1.0");
    }
    snprintf(model_spec, sizeof model_spec, "pymalloc:preset=%s,placement=recorded", preset);
    snprintf(oracle_spec, sizeof oracle_spec, "cpython:lib=%s,placement=recorded,arena=%zu,pool=%zu",
             lib, cfg.arena_size, cfg.pool_size);
    cfg.model_spec = model_spec;
    cfg.oracle_spec = oracle_spec;
    TAP_DIAG("model  %s", model_spec);
    TAP_DIAG("oracle %s", oracle_spec);
    /* Load libpython once here, untouched, so that every forked child finds it mapped. */
    void *keep = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!TAP_OK(keep != NULL, "load %s", lib))
        return tap_done();

    if (nstreams < 0) {
        nstreams = version ? (slow ? 3000 : 300) : (slow ? 20000 : 2000);
#if defined(__SANITIZE_ADDRESS__)
        /* fork is slow under AddressSanitizer (its shadow memory is copied page table by page
         * table): fewer streams, the same kinds */
        nstreams /= 5;
        TAP_DIAG("AddressSanitizer build: %ld streams", nstreams);
#endif
    }
    /* Random streams. */
    tally_t tr = {0};
    for (long i = 0; i < nstreams; i++) {
        stream_t st = {0};
        st.rng = seed * 1000003u + (uint64_t)i * 7919u + 1;
        rnd(&st);
        static const size_t targets[] = {10, 100, 1000, 5000, 20000};
        size_t target = targets[rnd(&st) % (i % 10 == 9 ? 5 : 4)];
        size_t len = (slow ? 2000 : 300) + rnd(&st) % (slow ? 20000 : 4000);
        if (target > 5000)
            len += 3 * target;
        gen_random(&st, len, target, (int)(rnd(&st) % 3));
        make_bases(&st, &cfg, bases_needed(&st, cfg.arena_size));
        char label[64];
        snprintf(label, sizeof label, "random stream %ld", i);
        compare_stream(&st, &cfg, label, &tr);
        stream_free(&st);
    }
    TAP_DIAG("random: %llu streams, %llu events, %llu allocating calls (%llu pool blocks, %llu "
             "libc), %llu arena map/unmap moments, %llu statistics texts",
             (unsigned long long)tr.streams, (unsigned long long)tr.events,
             (unsigned long long)tr.allocs, (unsigned long long)tr.pool_blocks,
             (unsigned long long)tr.raw_blocks, (unsigned long long)tr.arena_events,
             (unsigned long long)tr.texts);
    TAP_DIAG("random: mismatches: %llu streams (addresses %llu, arena moments %llu, texts %llu, "
             "counters %llu, failures %llu)",
             (unsigned long long)tr.mismatched_streams, (unsigned long long)tr.addr_mismatch,
             (unsigned long long)tr.arena_mismatch, (unsigned long long)tr.text_mismatch,
             (unsigned long long)tr.stat_mismatch, (unsigned long long)tr.failures);
    TAP_OK(tr.streams == (uint64_t)nstreams && tr.mismatched_streams == 0 && tr.pool_blocks &&
               tr.raw_blocks && tr.arena_events,
           "random streams: %llu/%llu identical", (unsigned long long)(tr.streams -
                                                                       tr.mismatched_streams),
           (unsigned long long)tr.streams);

    /* Structured streams. */
    tally_t ts = {0};
    long nstruct = nstreams / 10 > 5 ? nstreams / 10 : 5;
    for (long i = 0; i < nstruct; i++) {
        stream_t st = {0};
        st.rng = seed * 31u + (uint64_t)i * 104729u + 7;
        rnd(&st);
        const char *kind;
        switch (i % 6) {
        case 5:
            kind = "pool churn";
            gen_pool_churn(&st, cfg.pool_size, cfg.arena_size, 2 + (unsigned)(rnd(&st) % 10));
            break;
        case 0:
            kind = "thrash";
            gen_thrash(&st, 2 + (unsigned)(rnd(&st) % 6),
                       (cfg.arena_size / cfg.pool_size) * ((cfg.pool_size - 48) / 512) *
                           (1 + rnd(&st) % 3) + rnd(&st) % 100);
            break;
        case 1:
            kind = "realloc chains";
            gen_realloc_chains(&st, 1 + (unsigned)(rnd(&st) % 40));
            break;
        case 2:
            kind = "class sweep";
            gen_class_sweep(&st, align, cfg.pool_size);
            break;
        case 3:
            kind = "fragment";
            gen_fragment(&st, 1000 + rnd(&st) % 60000);
            break;
        default:
            kind = "zero/large";
            gen_random(&st, 500 + rnd(&st) % 3000, 50 + rnd(&st) % 500, 2);
            break;
        }
        make_bases(&st, &cfg, bases_needed(&st, cfg.arena_size));
        char label[64];
        snprintf(label, sizeof label, "structured stream %ld (%s)", i, kind);
        compare_stream(&st, &cfg, label, &ts);
        stream_free(&st);
    }
    TAP_DIAG("structured: %llu streams, %llu events, %llu allocating calls, %llu arena moments, "
             "%llu texts; mismatched streams %llu",
             (unsigned long long)ts.streams, (unsigned long long)ts.events,
             (unsigned long long)ts.allocs, (unsigned long long)ts.arena_events,
             (unsigned long long)ts.texts, (unsigned long long)ts.mismatched_streams);
    TAP_OK(ts.streams == (uint64_t)nstruct && ts.mismatched_streams == 0,
           "structured streams (thrash, realloc chains, class sweep, fragment, zero/large, "
           "pool churn): "
           "%llu/%llu identical",
           (unsigned long long)(ts.streams - ts.mismatched_streams),
           (unsigned long long)ts.streams);

    /* The seed scenario: 10 x 2^20 16-byte objects in the slow suite, 2^20 in the fast one. */
    tally_t tz = {0};
    {
        stream_t st = {0};
        st.rng = seed ^ 0x5eed;
        rnd(&st);
        size_t n = (slow ? 10u : 1u) << 20;
        gen_seed(&st, n, 20000);
        make_bases(&st, &cfg, bases_needed(&st, cfg.arena_size));
        compare_stream(&st, &cfg, "seed scenario", &tz);
        TAP_DIAG("seed: %zu objects, %llu events, %llu arena moments; mismatched %llu",
                 n, (unsigned long long)tz.events, (unsigned long long)tz.arena_events,
                 (unsigned long long)tz.mismatched_streams);
        TAP_OK(tz.mismatched_streams == 0 && tz.streams == 1,
               "seed scenario (%zu x 16 bytes, all freed, then a small heap) identical", n);
        stream_free(&st);
    }
    free(cfg.bases);
    uint64_t total_streams = tr.streams + ts.streams + tz.streams;
    uint64_t total_events = tr.events + ts.events + tz.events;
    uint64_t total_mis = tr.mismatched_streams + ts.mismatched_streams + tz.mismatched_streams;
    TAP_DIAG("time: model replays %.2f s, oracle replays (forked) %.2f s, comparisons %.2f s",
             ns_model * 1e-9, ns_oracle * 1e-9, ns_compare * 1e-9);
    TAP_DIAG("total: %llu streams, %llu events, %llu mismatched streams",
             (unsigned long long)total_streams, (unsigned long long)total_events,
             (unsigned long long)total_mis);
    return tap_done();
}

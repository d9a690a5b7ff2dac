/* replay.c: the replay engine (see hr_replay.h): the hot loop, the reclaim path, check mode.
 *
 * Theory of operation
 *   Events come in batches from the reader (already checked: ids exist, no double frees of
 *   blocks). For each event the engine does the allocator's part itself and hands graph events
 *   to the collector; the collector may reclaim objects at any of its calls, through reclaim().
 *
 *   Per live block the engine keeps an hr_entry_t (8 bytes) in an id table whose leaves are
 *   freed as ids die (and packed when few ids of theirs live), so memory follows the live heap,
 *   not the trace length:
 *
 *   bits 0-43   the block's address / 8           | side: index of its side entry
 *   bits 44-54  its size (0 .. 2047)              |       (0)
 *   bit 55      side: address and size are in a side entry
 *   bits 56-60  alloc flags, 61-62 domain, 63 live (the whole word is 0 once freed)
 *
 *   Nearly every block of a replay is small, 8-aligned and below 2^47 (x86-64's user space), and
 *   its record holds all of it; a block of 2 KiB or more, or at an address that is not a multiple
 *   of 8 or not below 2^47, keeps its address and size in a side entry (16 bytes, e->side),
 *   reused through a free list. Either way a block is below 1 TiB and its address below 2^48
 *   (user space on x86-64 and arm64): either limit broken is a clear error, never a truncated
 *   entry.
 *
 * Check mode keeps a second, independent heap graph (the shadow). Every event is applied to the
 * shadow first, then to the collector; the objects the collector reclaimed during the event form
 * a set that must be garbage in the shadow: no external references, and every link into a member
 * comes from a member. A set that passes is removed from the shadow.
 */
#include "hr_replay.h"

#include "graph.h"
#include "hr_config.h"
#include "hr_idtab.h"
#include "hr_trace.h"
#include "hr_trace_fast.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct hr_entry {
    uint64_t m;
} hr_entry_t;
_Static_assert(sizeof(hr_entry_t) == 8, "the docs count 8 bytes per live block");

#define E_LIVE ((uint64_t)1 << 63)
#define E_SIDE ((uint64_t)1 << 55)
#define E_PTR_BITS 48
#define E_SIZE_BITS 40
#define E_ADDR_MASK (((uint64_t)1 << 44) - 1)
#define E_INLINE_SIZE 2048 /* sizes below this fit the record */
#define E_FLAGS(m) ((unsigned)(((m) >> 56) & 0x1f))
#define E_DOMAIN(m) ((hr_domain_t)(((m) >> 61) & 3))
#define E_FLAGS_MAX 0x1f

/* Side entries: address and size of the blocks the record cannot hold. Invariant: an entry is
 * in use iff a live record names it; free entries are chained through `addr` (index + 1, 0 ends
 * the chain). Mapped, not malloc'd (like the id table: never inside the measured heap), grown by
 * doubling with mremap; the bytes of every entry ever handed out count as the id table's. */
typedef struct e_side {
    uint64_t addr, size;
} e_side_t;
typedef struct e_sides {
    e_side_t *v;
    size_t mapped, used; /* bytes mapped, entries ever handed out */
    uint64_t free;    /* first free entry + 1, or 0 */
} e_sides_t;

HR_INLINE uint64_t e_word(const hr_entry_t *en) { return en->m; }

typedef struct engine {
    hr_alloc_t *alloc;
    hr_gc_t *gc;
    const hr_gc_vt *gvt;
    hr_idtab_t tab;          /* hr_entry_t per live block */
    e_sides_t side;          /* address and size of blocks their record cannot hold */
    uint64_t event;          /* index of the event being replayed */
    uint64_t gc_begin;       /* event index of the last recorded GC_BEGIN */
    const hr_replay_opts_t *o;
    hr_replay_result_t *res;
    int touch;
    int graphless;           /* a collector without graph slots (none), outside check mode */
    uint64_t live_blocks, peak_live_blocks; /* copied to res at the end */
    uint64_t live_objects;
    uint64_t objects_allocated;
    int failed;              /* reclaim() found an inconsistency; message in fail */
    hr_err_t fail;
    /* check mode */
    int check;
    hr_graph_t shadow;
    hr_gc_stats_t shadow_st;
    hr_gc_env_t shadow_env;
    hr_gobj_t **batch;       /* owned: objects reclaimed during the current event */
    size_t nbatch, capbatch;
} engine_t;

/* {==== The record ==== */

HR_INLINE const e_side_t *e_side(const engine_t *e, uint64_t m) { return &e->side.v[m & E_ADDR_MASK]; }
HR_INLINE uint64_t e_size(const engine_t *e, uint64_t m)
{
    return HR_LIKELY(!(m & E_SIDE)) ? (m >> 44) & (E_INLINE_SIZE - 1) : e_side(e, m)->size;
}
/* The block's address, and its size in *size. */
HR_INLINE void *e_block(const engine_t *e, uint64_t m, uint64_t *size)
{
    if (HR_LIKELY(!(m & E_SIDE))) {
        *size = (m >> 44) & (E_INLINE_SIZE - 1);
        return (void *)(uintptr_t)((m & E_ADDR_MASK) << 3);
    }
    const e_side_t *s = e_side(e, m);
    *size = s->size;
    return (void *)(uintptr_t)s->addr;
}

/* A side entry for (addr, size); its record word without the flags, domain and live bits, or 0
 * when out of memory. */
static uint64_t e_side_new(engine_t *e, uint64_t addr, uint64_t size)
{
    e_sides_t *s = &e->side;
    uint64_t i;
    if (s->free) {
        i = s->free - 1;
        s->free = s->v[i].addr;
    } else {
        if (s->used * sizeof *s->v == s->mapped) {
            e_side_t *v = hr_map_grow(s->v, &s->mapped, s->mapped ? s->mapped * 2 : 4096);
            if (!v)
                return 0;
            s->v = v;
        }
        i = s->used++;
        hr_idtab_account_extra(&e->tab, (ptrdiff_t)sizeof(e_side_t));
    }
    s->v[i] = (e_side_t){addr, size};
    return E_SIDE | i;
}

/* e_set's side form (the record is 0 when out of memory). */
static int e_set_side(engine_t *e, hr_entry_t *en, uint64_t a, uint64_t size, uint64_t hi)
{
    uint64_t w = e_side_new(e, a, size);
    en->m = w ? w | hi : 0;
    return w ? HR_OK : HR_ENOMEM;
}

/* Bits of an address that keep its block out of the record: not below 2^47, not 8-aligned. */
#define E_ADDR_OUT (~(((uint64_t)1 << 47) - 1) | 7)

/* Write a live record for block p of `size` bytes (p below 2^48 and size below 2^40: place_block
 * and realloc_entry check; flags below 32). The record must not name a side entry (e_clear or
 * e_unside first). HR_ENOMEM, and the record 0, when a side entry was needed and none could be
 * mapped. */
HR_INLINE int e_set(engine_t *e, hr_entry_t *en, void *p, uint64_t size, hr_domain_t dom,
                    unsigned flags)
{
    uint64_t a = (uint64_t)(uintptr_t)p, hi = (uint64_t)flags << 56 | (uint64_t)dom << 61 | E_LIVE;
    if (HR_UNLIKELY((a & E_ADDR_OUT) || size >= E_INLINE_SIZE))
        return e_set_side(e, en, a, size, hi);
    en->m = a >> 3 | size << 44 | hi;
    return HR_OK;
}

/* Give back the side entry record word m names, if any. */
HR_INLINE void e_unside(engine_t *e, uint64_t m)
{
    if (HR_UNLIKELY(m & E_SIDE)) {
        uint64_t i = m & E_ADDR_MASK;
        e->side.v[i].addr = e->side.free;
        e->side.free = i + 1;
    }
}

HR_INLINE void e_clear(engine_t *e, hr_entry_t *en)
{
    e_unside(e, en->m);
    en->m = 0;
}

/* {==== Small helpers ==== */

static int push_collection(hr_collections_t *c, hr_collection_t x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        hr_collection_t *p = realloc(c->v, cap * sizeof *p);
        if (!p)
            return HR_ENOMEM;
        c->v = p, c->cap = cap;
    }
    c->v[c->n++] = x;
    return HR_OK;
}

static int push_death(hr_deaths_t *d, uint64_t id, uint64_t event)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        hr_death_t *p = realloc(d->v, cap * sizeof *p);
        if (!p)
            return HR_ENOMEM;
        d->v = p, d->cap = cap;
    }
    d->v[d->n++] = (hr_death_t){id, event};
    return HR_OK;
}

uint64_t hr_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t hr_peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

void hr_replay_result_free(hr_replay_result_t *r)
{
    for (size_t i = 0; i < r->ncheckpoints; i++) {
        hr_buf_free(&r->checkpoints[i].recorded);
        hr_buf_free(&r->checkpoints[i].replayed);
    }
    free(r->checkpoints);
    hr_buf_free(&r->alloc_text);
    hr_buf_free(&r->recorded_stats);
    free(r->recorded.v);
    free(r->replayed.v);
    free(r->died.v);
    free(r->reclaimed.v);
    memset(r, 0, sizeof *r);
}

/* Write the first and last word of a block, so it is really touched. */
HR_INLINE void touch_block(void *p, uint64_t size, uint64_t id)
{
    if (size >= 8) {
        memcpy(p, &id, 8);
        memcpy((char *)p + size - 8, &id, 8);
    } else if (size > 0) {
        *(volatile char *)p = (char)id;
    }
}

/* The record of a live block, or NULL. */
HR_INLINE hr_entry_t *live_entry(engine_t *e, uint64_t id)
{
    hr_entry_t *en = hr_idtab_get_sized(&e->tab, id, sizeof *en);
    return HR_LIKELY(en && (e_word(en) & E_LIVE)) ? en : NULL;
}

/* Free a live block and forget it: the one way a block leaves the table (explicit frees,
 * reclamations by the collector, the loop's fast path). */
HR_INLINE void forget_entry(engine_t *e, hr_entry_t *en, uint64_t id)
{
    e_clear(e, en);
    hr_idtab_release(&e->tab, id);
    e->live_blocks--;
}

HR_INLINE void drop_block(engine_t *e, hr_entry_t *en, uint64_t id)
{
    uint64_t m = e_word(en), size;
    void *p = e_block(e, m, &size);
    hr_alloc_free(e->alloc, p, size, E_DOMAIN(m));
    forget_entry(e, en, id);
}

/* {==== The collector's side: reclaim and collection notices ==== */

static void engine_reclaim(void *arg, uint64_t id)
{
    engine_t *e = arg;
    hr_entry_t *en = live_entry(e, id);
    if (!en || !(E_FLAGS(e_word(en)) & HR_F_OBJECT)) {
        if (!e->failed)
            hr_err_set(&e->fail, HR_ECHECK, "collector '%s' reclaimed %s %llu, which is not "
                       "%s", e->gc->spec, en ? "block" : "object", (unsigned long long)id,
                       en ? "an object" : "live");
        e->failed = 1;
        return;
    }
    drop_block(e, en, id);
    e->live_objects--;
    if (e->o->log_deaths && push_death(&e->res->reclaimed, id, e->event) && !e->failed) {
        hr_err_set(&e->fail, HR_ENOMEM, "out of memory logging deaths");
        e->failed = 1;
    }
    if (e->check) {
        hr_gobj_t *s = hr_graph_get(&e->shadow, id);
        if (!s) {
            if (!e->failed)
                hr_err_set(&e->fail, HR_ECHECK, "collector '%s' reclaimed object %llu, which the "
                           "shadow graph does not hold", e->gc->spec, (unsigned long long)id);
            e->failed = 1;
            return;
        }
        if (e->nbatch == e->capbatch) {
            size_t cap = e->capbatch ? e->capbatch * 2 : 1024;
            hr_gobj_t **p = realloc(e->batch, cap * sizeof *p);
            if (!p) {
                e->failed = 1;
                hr_err_set(&e->fail, HR_ENOMEM, "out of memory in check mode");
                return;
            }
            e->batch = p, e->capbatch = cap;
        }
        e->batch[e->nbatch++] = s;
    }
}

static void engine_collection(void *arg, int generation, uint64_t collected)
{
    engine_t *e = arg;
    hr_collection_t c = {e->event, e->event, (uint32_t)generation, collected, 0};
    if (push_collection(&e->res->replayed, c) && !e->failed) {
        hr_err_set(&e->fail, HR_ENOMEM, "out of memory logging collections");
        e->failed = 1;
    }
}

static void shadow_reclaim(void *arg, uint64_t id) { (void)arg, (void)id; }

/* Check mode: the objects reclaimed during this event must be garbage in the shadow. */
static int verify_batch(engine_t *e, hr_err_t *err)
{
    size_t n = e->nbatch;
    for (size_t i = 0; i < n; i++) {
        e->batch[i]->mark = 0xAB;
        e->batch[i]->scratch = 0;
    }
    for (size_t i = 0; i < n; i++) {
        hr_gobj_t *x = e->batch[i];
        for (uint32_t k = 0; k < x->nout; k++) {
            hr_gobj_t *d = hr_graph_get(&e->shadow, x->out[k]);
            if (d && d->mark == 0xAB)
                d->scratch++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        hr_gobj_t *x = e->batch[i];
        if (x->ext != 0)
            return hr_err_set(err, HR_ECHECK, "check: collector '%s' reclaimed object %llu while "
                              "it still had %u external references", e->gc->spec,
                              (unsigned long long)x->id, x->ext);
        if ((int64_t)x->in != x->scratch)
            return hr_err_set(err, HR_ECHECK, "check: collector '%s' reclaimed object %llu while "
                              "%lld links from live objects outside the reclaimed set still "
                              "pointed at it", e->gc->spec, (unsigned long long)x->id,
                              (long long)x->in - (long long)x->scratch);
    }
    hr_graph_remove_set(&e->shadow, e->batch, n);
    e->res->checked_sets++;
    e->res->checked_objects += n;
    e->nbatch = 0;
    return HR_OK;
}

/* Apply a graph event to the shadow (check mode). */
static int shadow_apply(engine_t *e, const hr_event_t *ev, hr_err_t *err)
{
    hr_gobj_t *o;
    switch (ev->op) {
    case HR_OP_ALLOC: return hr_graph_alloc(&e->shadow, ev->a, ev->b, ev->flags, &o, err);
    case HR_OP_INCREF: return hr_graph_incref(&e->shadow, ev->a, &o, err);
    case HR_OP_DECREF: return hr_graph_decref(&e->shadow, ev->a, &o, err);
    case HR_OP_LINK: return hr_graph_link(&e->shadow, ev->a, ev->b, err);
    case HR_OP_UNLINK: return hr_graph_unlink(&e->shadow, ev->a, ev->b, &o, err);
    default: return HR_OK;
    }
}

/* {==== Checkpoints: the replay's state at a recorded STATS record ==== */

static int checkpoint(engine_t *e, const hr_event_t *ev, hr_err_t *err)
{
    hr_replay_result_t *r = e->res;
    hr_checkpoint_t *p = realloc(r->checkpoints, (r->ncheckpoints + 1) * sizeof *p);
    if (!p)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    r->checkpoints = p;
    hr_checkpoint_t *c = &p[r->ncheckpoints++];
    memset(c, 0, sizeof *c);
    c->event = e->event;
    c->kind = (int)ev->tag;
    if (hr_buf_append(&c->recorded, ev->str, (size_t)ev->a))
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    if (ev->tag == HR_STATS_PYMALLOC)
        return hr_alloc_stats_text(e->alloc, &c->replayed, err);
    for (size_t i = 0; i < r->replayed.n; i++) {
        uint32_t g = r->replayed.v[i].generation < 3 ? r->replayed.v[i].generation : 2;
        c->collections[g]++;
        c->collected[g] += r->replayed.v[i].collected;
    }
    return HR_OK;
}

/* {==== One event ==== */

/* The entry's limits (see the top of the file), as errors. */
static int too_large(uint64_t size, hr_err_t *err)
{
    return hr_err_set(err, HR_ECHECK, "a block of %llu bytes: the replay engine keeps blocks "
                      "below 1 TiB (2^%d bytes)", (unsigned long long)size, E_SIZE_BITS);
}

static int high_address(engine_t *e, void *p, hr_err_t *err)
{
    return hr_err_set(err, HR_EUSAGE, "allocator '%s' returned address %p, above the 2^%d the "
                      "replay engine's table holds", e->alloc->vt->name, p, E_PTR_BITS);
}

_Static_assert(HR_F_ALL <= E_FLAGS_MAX, "an entry holds every allocation flag");

/* Keep block p (size bytes, just served for id, not yet NULL-checked) in the table: the one way
 * a block enters it. The 2^48 limit is tested only for the blocks e_set's own test sends to a
 * side entry (the compiler merges the two: a small, 8-aligned block below 2^47 costs one test
 * of its address and one of its size). */
HR_INLINE int place_block(engine_t *e, uint64_t id, void *p, uint64_t size, hr_domain_t dom,
                          unsigned flags, hr_err_t *err)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    if (HR_UNLIKELY(!p))
        return hr_err_set(err, HR_ENOMEM, "allocator '%s' failed to allocate %llu bytes",
                          e->alloc->vt->name, (unsigned long long)size);
    if (HR_UNLIKELY(((a & E_ADDR_OUT) || size >= E_INLINE_SIZE) && (a >> E_PTR_BITS))) {
        hr_alloc_free(e->alloc, p, size, dom);
        return high_address(e, p, err);
    }
    if (e->touch)
        touch_block(p, size, id);
    hr_entry_t *en = hr_idtab_put_sized(&e->tab, id, sizeof *en);
    if (HR_UNLIKELY(!en)) {
        hr_alloc_free(e->alloc, p, size, dom);
        return hr_err_set(err, HR_ENOMEM, "out of memory for the id table");
    }
    if (HR_UNLIKELY(e_set(e, en, p, size, dom, flags) != HR_OK)) {
        hr_alloc_free(e->alloc, p, size, dom);
        hr_idtab_release(&e->tab, id);
        return hr_err_set(err, HR_ENOMEM, "out of memory for the id table");
    }
    if (++e->live_blocks > e->peak_live_blocks)
        e->peak_live_blocks = e->live_blocks;
    return HR_OK;
}

HR_INLINE int alloc_block(engine_t *e, uint64_t id, uint64_t size, hr_domain_t dom,
                          unsigned flags, unsigned align_log2, hr_err_t *err)
{
    void *p;
    if (HR_UNLIKELY(size >> E_SIZE_BITS))
        return too_large(size, err);
    if (HR_LIKELY(!(flags & (HR_F_ALIGNED | HR_F_ZERO)))) {
        p = hr_alloc_malloc(e->alloc, size, dom);
    } else if (flags & HR_F_ALIGNED) {
        if (!e->alloc->vt->aligned_alloc)
            return hr_err_set(err, HR_EUSAGE, "allocator '%s' cannot serve aligned allocations",
                              e->alloc->vt->name);
        p = hr_alloc_aligned(e->alloc, (size_t)1 << align_log2, size, dom);
    } else {
        p = hr_alloc_calloc(e->alloc, size, dom);
    }
    return place_block(e, id, p, size, dom, flags, err);
}

/* The reader's checker asks the engine which blocks of an allocation-only trace are live
 * (hr_trace_check_external): the table knows, so the reader keeps no bitmap of its own. */
static int engine_id_state(void *arg, uint64_t id)
{
    return live_entry(arg, id) ? HR_ID_BLOCK : HR_ID_FREED;
}

/* An explicit FREE of the live block en: a GC-capable block is also a collector's business. */
HR_INLINE void free_entry(engine_t *e, hr_entry_t *en, uint64_t id)
{
    unsigned flags = E_FLAGS(e_word(en));
    drop_block(e, en, id);
    if (HR_UNLIKELY(flags & HR_F_GC) && e->gvt->block_free)
        e->gvt->block_free(e->gc->ctx, id, flags);
}

static int not_live(const char *what, uint64_t id, hr_err_t *err)
{
    return hr_err_set(err, HR_ECHECK, "%s of block %llu, which is not live", what,
                      (unsigned long long)id);
}

static int realloc_entry(engine_t *e, hr_entry_t *en, uint64_t id, uint64_t size, hr_err_t *err)
{
    uint64_t m = e_word(en), old;
    void *p = e_block(e, m, &old);
    if (HR_UNLIKELY(size >> E_SIZE_BITS))
        return too_large(size, err);
    void *q = hr_alloc_realloc(e->alloc, p, old, size, E_DOMAIN(m));
    if (HR_UNLIKELY(!q))
        return hr_err_set(err, HR_ENOMEM, "allocator '%s' failed to resize a block to %llu bytes",
                          e->alloc->vt->name, (unsigned long long)size);
    if (HR_UNLIKELY((uintptr_t)q >> E_PTR_BITS)) {
        hr_alloc_free(e->alloc, q, size, E_DOMAIN(m)); /* the old block went with realloc */
        forget_entry(e, en, id);
        return high_address(e, q, err);
    }
    if (e->touch)
        touch_block(q, size, id);
    e_unside(e, m);
    if (HR_UNLIKELY(e_set(e, en, q, size, E_DOMAIN(m), E_FLAGS(m)) != HR_OK)) {
        hr_alloc_free(e->alloc, q, size, E_DOMAIN(m));
        forget_entry(e, en, id); /* e_set left the record 0 */
        return hr_err_set(err, HR_ENOMEM, "out of memory for the id table");
    }
    if ((E_FLAGS(m) & HR_F_OBJECT) && e->gvt->resize)
        e->gvt->resize(e->gc->ctx, id, size);
    return HR_OK;
}

/* After the collector had a say (it may have reclaimed objects): report what reclaim() found
 * wrong, and in check mode verify what it reclaimed. */
HR_INLINE int settle(engine_t *e, hr_err_t *err)
{
    if (HR_UNLIKELY(e->failed))
        return hr_err_set(err, e->fail.code, "%s", e->fail.msg);
    if (e->check && e->nbatch)
        return verify_batch(e, err);
    return HR_OK;
}

/* An ALLOC outside the shadow's part (check mode applies objects to the shadow first: step):
 * the block is served; an object is the collector's (alloc), and a GC-capable block that is not
 * one is counted by it (block_alloc); either may collect. */
HR_INLINE int alloc_event(engine_t *e, uint64_t id, uint64_t size, hr_domain_t dom,
                          unsigned flags, unsigned align_log2, hr_err_t *err)
{
    int rc = alloc_block(e, id, size, dom, flags, align_log2, err);
    if (rc != HR_OK)
        return rc;
    if (flags & HR_F_OBJECT) {
        e->live_objects++;
        e->objects_allocated++;
        if (!e->gvt->alloc)
            return HR_OK;
        rc = e->gvt->alloc(e->gc->ctx, id, size, flags, err);
        return rc ? rc : settle(e, err);
    }
    if (!(flags & HR_F_GC) || !e->gvt->block_alloc)
        return HR_OK;
    e->gvt->block_alloc(e->gc->ctx, id, flags);
    return settle(e, err);
}

/* A graph event (INCREF, DECREF, LINK, UNLINK) for the collector, outside check mode (the
 * shadow comes first there: step). */
HR_INLINE int graph_event(engine_t *e, int op, uint64_t a, uint64_t b, hr_err_t *err)
{
    int rc = HR_OK;
    if (op == HR_OP_INCREF && e->gvt->incref)
        rc = e->gvt->incref(e->gc->ctx, a, err);
    else if (op == HR_OP_DECREF && e->gvt->decref)
        rc = e->gvt->decref(e->gc->ctx, a, err);
    else if (op == HR_OP_LINK && e->gvt->link)
        rc = e->gvt->link(e->gc->ctx, a, b, err);
    else if (op == HR_OP_UNLINK && e->gvt->unlink)
        rc = e->gvt->unlink(e->gc->ctx, a, b, err);
    return rc ? rc : settle(e, err);
}

static int step(engine_t *e, const hr_event_t *ev, hr_err_t *err)
{
    int rc = HR_OK;
    switch (ev->op) {
    case HR_OP_ALLOC:
        if ((ev->flags & HR_F_OBJECT) && e->check && (rc = shadow_apply(e, ev, err)))
            return rc;
        return alloc_event(e, ev->a, ev->b, (hr_domain_t)ev->domain, ev->flags, ev->align_log2,
                           err);
    case HR_OP_FREE: {
        hr_entry_t *en = live_entry(e, ev->a);
        if (!en)
            return not_live("free", ev->a, err);
        free_entry(e, en, ev->a);
        return HR_OK;
    }
    case HR_OP_REALLOC: {
        hr_entry_t *en = live_entry(e, ev->a);
        if (!en)
            return not_live("realloc", ev->a, err);
        return realloc_entry(e, en, ev->a, ev->b, err);
    }
    case HR_OP_INCREF:
    case HR_OP_DECREF:
    case HR_OP_LINK:
    case HR_OP_UNLINK:
        if (e->check && (rc = shadow_apply(e, ev, err)))
            return rc;
        return graph_event(e, ev->op, ev->a, ev->b, err);
    case HR_OP_DIED:
        if (e->o->log_deaths && push_death(&e->res->died, ev->a, e->event))
            return hr_err_set(err, HR_ENOMEM, "out of memory logging deaths");
        return HR_OK;
    case HR_OP_ARENA_MAP:
    case HR_OP_ARENA_UNMAP:
        hr_alloc_arena_fact(e->alloc, ev->a, ev->b, ev->op == HR_OP_ARENA_MAP);
        return HR_OK;
    case HR_OP_GC_BEGIN:
        e->gc_begin = e->event;
        if (e->gvt->gc_begin)
            e->gvt->gc_begin(e->gc->ctx, (int)ev->tag);
        return HR_OK;
    case HR_OP_GC_END: {
        hr_collection_t c = {e->event, e->gc_begin, ev->tag, ev->a, ev->b};
        if (push_collection(&e->res->recorded, c))
            return hr_err_set(err, HR_ENOMEM, "out of memory");
        return HR_OK;
    }
    case HR_OP_GC_CONTROL:
        if (e->gvt->control)
            rc = e->gvt->control(e->gc->ctx, ev->tag, ev->a, ev->b, err);
        break;
    case HR_OP_GC_SURVIVORS:
        if (e->gvt->survivors)
            e->gvt->survivors(e->gc->ctx, ev->a, ev->b);
        return HR_OK;
    case HR_OP_GC_TRACK:
        /* naming an object the collector reclaimed is a use after free under every collector
         * (generational, the only one that acts on these, said so; the others ignored it) */
        if (!live_entry(e, ev->a))
            return hr_err_set(err, HR_ECHECK, "gc %s of object %llu, which is not live (already "
                              "reclaimed)", ev->tag == HR_TRACK ? "track" : "untrack",
                              (unsigned long long)ev->a);
        if (e->gvt->track)
            rc = e->gvt->track(e->gc->ctx, ev->a, ev->tag, (int)ev->b, err);
        break;
    case HR_OP_STATS:
        if (ev->tag == HR_STATS_PYMALLOC) {
            e->res->recorded_stats.len = 0;
            if (hr_buf_append(&e->res->recorded_stats, ev->str, (size_t)ev->a))
                return hr_err_set(err, HR_ENOMEM, "out of memory");
        }
        if (ev->tag == HR_STATS_PYMALLOC || ev->tag == HR_STATS_GC)
            return checkpoint(e, ev, err);
        return HR_OK;
    default:
        return HR_OK; /* types, phases, GC_BEGIN and unknown records carry nothing to do */
    }
    if (rc)
        return rc;
    return settle(e, err);
}

/* {==== The run ==== */

/* Events hr_trace_read decodes at a time for step(); small, so that a general event in a run of
 * plain ones does not push the plain ones after it off the cursor's path. */
#define GENERAL_BATCH 64

/* Free every block still live (end of the replay, after the statistics were taken): backends
 * such as libc cannot know which blocks a replay left behind. */
static int free_live(void *arg, uint64_t id, void *rec)
{
    (void)id;
    const engine_t *e = arg;
    uint64_t m = e_word(rec), size;
    if (m & E_LIVE) {
        void *p = e_block(e, m, &size);
        hr_alloc_free(e->alloc, p, size, E_DOMAIN(m));
    }
    return 0;
}

static int sum_object_bytes(void *arg, uint64_t id, void *rec)
{
    (void)id;
    const engine_t *e = arg;
    uint64_t m = e_word(rec);
    if ((m & E_LIVE) && (E_FLAGS(m) & HR_F_OBJECT))
        e->res->gc.bytes_leaked += e_size(e, m);
    return 0;
}

static void take_sample(engine_t *e)
{
    hr_replay_sample_t s = {
        .event = e->event,
        .live_objects = e->live_objects,
        .live_blocks = e->live_blocks,
        .live_bytes = e->alloc->st.bytes_in_use,
        .rss = hr_rss_bytes(),
    };
    hr_alloc_stats_t ast;
    hr_alloc_get_stats(e->alloc, &ast);
    s.footprint = ast.footprint;
    if (e->gvt->stats) {
        hr_gc_stats_t gst;
        e->gvt->stats(e->gc->ctx, &gst);
        s.gc_ns = gst.gc_ns;
    }
    e->o->sample(e->o->sample_arg, &s);
}

/* {==== The lane: the commonest events straight from the frame's bytes ==== */

/* Nearly every event of a trace is an ALLOC, FREE or REALLOC, or in a graph trace a graph
 * event. The lane decodes those with the cursor's own record parsers (hr_trace_fast.h:
 * hr_cur_alloc, hr_cur_id and their takes, from which hr_trace_cursor_decode_ is built too) and
 * replays each where it dispatched on the opcode, with the cursor in a local, instead of the
 * cursor handing the loop a decoded event to dispatch again (callgrind: 10-20 fewer instructions
 * per event). Its checks are the cursor's unverified decoding's, then the loop's (a freed or
 * resized block must be live), and it replays with the same helpers, e->event counting as it
 * goes (collectors read it), so events, results and errors are the same; tests/fuzz/fuzz_lane.c
 * compares the two ways (opts.lane, HEAPREPLAY_LANE=0).
 *
 * It stops without consuming at any other event (and at an object's ALLOC or a graph event in
 * check mode, a DIED that is logged), a check that fails, or a block that is not live, where the
 * general path takes over; and when e->event reaches `stop`. On an error the failing event has
 * been consumed (as on the general path) and is event e->event. */
HR_INLINE int lane_(engine_t *e, hr_trace_cursor_t *cp, uint64_t stop, hr_err_t *err)
{
    hr_trace_cursor_t c = *cp;
    const uint64_t budget = stop - e->event;
    uint64_t n = 0;
    /* what the lane may take, fixed for the run: objects' ALLOCs, graph events, DIED */
    const int graph_ok = !e->check, died_ok = !e->check && !e->o->log_deaths;
    const int graphless = e->graphless;
    int rc = HR_OK;
    while (n < budget && c.p < c.end) {
        const unsigned op = *c.p;
        const uint8_t *q = c.p + 1;
        unsigned k;
        if ((op & ~7u) == HR_W_ALLOC) {
            uint64_t size, flags, tag;
            if (HR_UNLIKELY(!hr_cur_alloc(&c, op, &q, c.end, &size, &flags, &tag) ||
                            ((flags & HR_F_OBJECT) && !graph_ok)))
                break;
            uint64_t id = hr_cur_alloc_take(&c, flags);
            c.p = q;
            rc = flags ? alloc_event(e, id, size, (hr_domain_t)(op & 3), (unsigned)flags, 0, err)
                       : alloc_block(e, id, size, (hr_domain_t)(op & 3), 0, 0, err);
        } else if (HR_LIKELY((k = hr_cur_id_kind(op)) != 0)) {
            uint64_t id, b = 0;
            if (HR_UNLIKELY(!hr_cur_id(&c, op, k, &q, c.end, 0, &id, &b)))
                break;
            if (k == HR_W_FREE || k == HR_W_REALLOC) {
                hr_entry_t *en = live_entry(e, id);
                if (HR_UNLIKELY(!en))
                    break;
                hr_cur_id_take(&c, k, id, b);
                c.p = q;
                if (k == HR_W_FREE)
                    free_entry(e, en, id);
                else
                    rc = realloc_entry(e, en, id, b, err);
            } else {
                /* INCREF, DECREF, LINK, UNLINK, DIED (hr_cur_id took only live objects of a
                 * graph trace) */
                if (HR_UNLIKELY(!graph_ok || (k == HR_W_DIED && !died_ok)))
                    break;
                hr_cur_id_take(&c, k, id, b);
                c.p = q;
                if (k != HR_W_DIED && !graphless)
                    rc = graph_event(e, hr_cur_id_op(k), id, b, err);
            }
        } else {
            break;
        }
        if (HR_UNLIKELY(rc != HR_OK))
            break;
        n++;
        e->event++;
    }
    c.events += n + (rc != HR_OK);
    *cp = c;
    return rc;
}

/* Two copies of the lane: in the first the compiler knows the id states are the engine's
 * (allocation-only traces: c.ext is set), and drops the cursor's tests of it. */
static int run_lane(engine_t *e, hr_trace_cursor_t *cp, uint64_t stop, hr_err_t *err)
{
    if (cp->ext == engine_id_state)
        return lane_(e, cp, stop, err);
    return lane_(e, cp, stop, err);
}

/* A graph trace named an object the collector had reclaimed. On a recorded CPython trace, say
 * what that means (docs/recorder.md, "Which collectors a recorded graph trace supports"). */
static void explain_reclaimed(const hr_trace_reader_t *r, hr_err_t *err)
{
    const hr_trace_header_t *h = hr_trace_header(r);
    const char *rec = hr_trace_header_get(h, "recorder");
    const char *rules = hr_trace_header_get(h, "graph_rules");
    if (!rec || strncmp(rec, "cpython", 7) != 0)
        return;
    size_t n = strlen(err->msg);
    if (rules && atoi(rules) >= 4)
        snprintf(err->msg + n, sizeof err->msg - n, "; the recorder keeps every object CPython "
                 "has not freed referenced (its rule 4), so this is a recorder defect: please "
                 "report it with the trace");
    else
        snprintf(err->msg + n, sizeof err->msg - n, "; a CPython graph trace recorded before "
                 "rule 4 (no 'graph_rules 4' in its header) replays exactly only under refcount "
                 "and under generational with its recorded thresholds: record it again "
                 "(docs/recorder.md, \"Which collectors a recorded graph trace supports\")");
}

int hr_replay_run(const char *path, const hr_replay_opts_t *o, hr_replay_result_t *res,
                  hr_err_t *err)
{
    memset(res, 0, sizeof *res);
    engine_t e = {0};
    e.o = o;
    e.res = res;
    e.touch = !o->no_touch;
    e.check = o->check;
    hr_idtab_init(&e.tab, sizeof(hr_entry_t));
    hr_idtab_dense(&e.tab); /* every id is allocated, and alloc_block writes its whole record */
    /* the engine never holds entry pointers across a put or release */
    hr_idtab_compact(&e.tab, 0, E_LIVE); /* the live bit is bit 63 of word */
    const char *aspec = o->alloc_spec;
    if (!aspec)
        aspec = hr_alloc_by_name("pymalloc") ? "pymalloc:preset=3.11" : "libc";
    const char *gspec = o->gc_spec ? o->gc_spec : "generational:700,10,10";
    snprintf(res->alloc_spec, sizeof res->alloc_spec, "%s", aspec);
    snprintf(res->gc_spec, sizeof res->gc_spec, "%s", gspec);
    hr_gc_env_t env = {&e, engine_reclaim, &e.event, engine_collection};
    hr_trace_reader_t *r = NULL;
    hr_event_t *evs = NULL;
    int rc = hr_trace_open(&r, path, &(hr_trace_read_opts_t){.partial = o->partial,
                           .id_state = engine_id_state, .id_state_arg = &e}, err);
    if (rc)
        goto out;
    res->kind = hr_trace_header(r)->kind;
    /* Everything the harness needs for the run is allocated before the allocator under test
     * exists (the event batch, the reader's frame buffer and zstd context by reading the first
     * batch, which also starts the reader's prefetch thread and gives the second frame buffer
     * its size), so a backend that shares glibc's heap (libc) does not count it. */
    evs = malloc(GENERAL_BATCH * sizeof *evs);
    if (!evs) {
        rc = hr_err_set(err, HR_ENOMEM, "out of memory");
        goto out;
    }
    size_t n;
    if ((rc = hr_trace_read(r, evs, GENERAL_BATCH, &n, err)))
        goto out;
    if ((rc = hr_alloc_create(&e.alloc, aspec, err)) || (rc = hr_gc_create(&e.gc, gspec, &env, err)))
        goto out;
    e.gvt = e.gc->vt;
    if (e.check) {
        e.shadow_env = (hr_gc_env_t){&e, shadow_reclaim, &e.event, NULL};
        hr_graph_init(&e.shadow, &e.shadow_env, &e.shadow_st, err);
    }
    res->rss_start = hr_rss_bytes();
    /* A collector without any graph slot (none) has nothing to do with graph events. */
    const int graphless = !e.check && !e.gvt->incref && !e.gvt->decref && !e.gvt->link &&
                          !e.gvt->unlink;
    e.graphless = graphless;
    int lane = o->lane > 0;
    if (!o->lane) {
        if ((rc = hr_env_switch("HEAPREPLAY_LANE", &lane, err)))
            goto out;
        lane = lane != 0; /* unset: on */
    }
    uint64_t t0 = hr_now_ns(), next_sample = o->every ? 0 : UINT64_MAX;
    uint64_t next_progress = o->progress ? 1u << 20 : UINT64_MAX;
    /* Events come three ways: the lane ("The lane" above) decodes and replays the commonest
     * straight from the frame's bytes; where it stops, the cursor (hr_trace_fast.h) decodes the
     * next event in place and the loop replays it at once; at anything else the cursor stops too
     * and hr_trace_read decodes a small batch of general events for step(). The first batch was
     * read above. All ways apply the same checks, so the events, and errors, are the same. */
    for (;;) {
        for (size_t i = 0; i < n; i++, e.event++) {
            const hr_event_t *ev = &evs[i];
            if ((rc = step(&e, ev, err)) != HR_OK) {
                hr_err_prefix(err, "%s: event %llu: ", path, (unsigned long long)e.event);
                goto out;
            }
            if (HR_UNLIKELY(e.event >= next_sample)) {
                take_sample(&e);
                next_sample += o->every;
            }
        }
        hr_trace_cursor_t c = hr_trace_cursor_take(r);
        if (c.p != c.end) {
            hr_cur_event_t ce = {0};
            int op;
            const uint8_t *p0 = c.p;
            uint64_t prev0 = c.prev;
            /* Unverified: the engine looks up every freed or resized block anyway, and with
             * external id states (allocation-only traces) its table is the only record of
             * which blocks are live. An id that is not live goes back to the reader, which
             * reports it with its place in the file. */
            for (;;) {
                if (lane) {
                    rc = run_lane(&e, &c, next_sample, err);
                    if (HR_UNLIKELY(rc != HR_OK)) {
                        hr_trace_cursor_give(r, c);
                        hr_err_prefix(err, "%s: event %llu: ", path, (unsigned long long)e.event);
                        goto out;
                    }
                    if (HR_UNLIKELY(e.event >= next_sample)) {
                        take_sample(&e);
                        next_sample += o->every;
                        continue;
                    }
                    p0 = c.p;
                    prev0 = c.prev;
                }
                if ((op = hr_trace_cursor_next_unverified(&c, &ce)) == 0)
                    break;
                /* The commonest events without step()'s dispatch; the same helpers. */
                if (HR_LIKELY(op == HR_OP_FREE || op == HR_OP_REALLOC)) {
                    hr_entry_t *en = live_entry(&e, ce.a);
                    if (HR_UNLIKELY(!en)) {
                        hr_trace_cursor_unread(&c, p0, prev0);
                        break;
                    }
                    if (op == HR_OP_FREE)
                        free_entry(&e, en, ce.a);
                    else
                        rc = realloc_entry(&e, en, ce.a, ce.b, err);
                } else if (op == HR_OP_ALLOC && (!e.check || !(ce.flags & HR_F_OBJECT))) {
                    rc = alloc_event(&e, ce.a, ce.b, (hr_domain_t)ce.domain, ce.flags, 0, err);
                } else if (op >= HR_OP_INCREF && op <= HR_OP_UNLINK && graphless) {
                    /* a collector without graph slots (none): nothing to do */
                } else if (op >= HR_OP_INCREF && op <= HR_OP_UNLINK && !e.check) {
                    rc = graph_event(&e, op, ce.a, ce.b, err);
                } else {
                    hr_event_t ev = {.op = (uint8_t)op, .domain = ce.domain, .flags = ce.flags,
                                     .tag = ce.tag, .a = ce.a, .b = ce.b};
                    rc = step(&e, &ev, err);
                }
                if (HR_UNLIKELY(rc != HR_OK)) {
                    hr_trace_cursor_give(r, c);
                    hr_err_prefix(err, "%s: event %llu: ", path, (unsigned long long)e.event);
                    goto out;
                }
                e.event++;
                if (HR_UNLIKELY(e.event >= next_sample)) {
                    take_sample(&e);
                    next_sample += o->every;
                }
                p0 = c.p;
                prev0 = c.prev;
            }
            hr_trace_cursor_give(r, c);
        }
        if (HR_UNLIKELY(e.event >= next_progress)) {
            o->progress(o->progress_arg, e.event, hr_trace_status(r)->file_bytes);
            next_progress = e.event + (1u << 20);
        }
        if ((rc = hr_trace_read(r, evs, GENERAL_BATCH, &n, err)) || n == 0)
            break;
    }
    if (rc)
        goto out;
    if (e.gvt->finish && (rc = e.gvt->finish(e.gc->ctx, err)))
        goto out;
    if (e.failed) {
        rc = hr_err_set(err, e.fail.code, "%s", e.fail.msg);
        goto out;
    }
    res->wall_ns = hr_now_ns() - t0;
    if (o->every)
        take_sample(&e);
    if ((rc = hr_alloc_stats_text(e.alloc, &res->alloc_text, err)))
        goto out;
out:
    if (rc == HR_ECHECK && r && hr_trace_header(r)->kind == HR_KIND_GRAPH && err &&
        strstr(err->msg, HR_GRAPH_RECLAIMED))
        explain_reclaimed(r, err);
    if (r) {
        const hr_trace_status_t *st = hr_trace_status(r);
        res->events = e.event;
        res->ids = st->ids;
        res->frames = st->frames;
        res->cut_short = st->cut_short;
    }
    res->live_blocks = e.live_blocks;
    res->peak_live_blocks = e.peak_live_blocks;
    if (e.alloc) {
        hr_alloc_get_stats(e.alloc, &res->alloc);
        res->footprint_note = hr_alloc_footprint_note(e.alloc);
        res->live_bytes = res->alloc.bytes_in_use; /* every block is served by the allocator */
        res->peak_live_bytes = res->alloc.peak_bytes_in_use;
    }
    if (e.gc && e.gvt->stats)
        e.gvt->stats(e.gc->ctx, &res->gc);
    if (e.gc && !e.gvt->alloc && res->kind == HR_KIND_GRAPH) {
        /* A collector without graph slots (none) never sees objects: every one still allocated
         * at the end is a leak, reachable or not. */
        res->gc.objects_allocated = e.objects_allocated;
        res->gc.peak_objects = 0;
        res->gc.objects_leaked = e.live_objects;
        hr_idtab_each(&e.tab, sum_object_bytes, &e);
    }
    res->rss_end = hr_rss_bytes();
    res->peak_rss = hr_peak_rss_bytes();
    res->table_bytes_peak = e.tab.peak_bytes;
    free(evs);
    hr_trace_close(r);
    hr_gc_destroy(e.gc);
    if (e.alloc && !(e.alloc->vt->flags & HR_ALLOC_F_SHARED_BLOCKS)) /* null frees nothing */
        hr_idtab_each(&e.tab, free_live, &e);
    hr_alloc_destroy(e.alloc);
    hr_idtab_free(&e.tab);
    if (e.side.mapped)
        munmap(e.side.v, e.side.mapped);
    if (e.check)
        hr_graph_free(&e.shadow);
    free(e.batch);
    return rc;
}

/* graph.c: the heap graph shared by the collectors (see graph.h). */
#include "graph.h"

#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* {==== Object records ====
 *
 * Collectors hold hr_gobj_t pointers (generation lists, stacks), so records must not move while
 * their objects live. They are carved from mmap'd chunks of OBJ_CHUNK records (not malloc: the
 * allocator under test may be glibc's), reused through a free list when objects die, and the id
 * table maps ids to them with an 8-byte pointer per id (NULL: not an object in the graph). Records
 * in the id table itself, 80 bytes in leaves of 256 ids, cost up to 20 KiB per long-lived object
 * when survivors are spread thinly (genmix: 81 MiB of peak RSS for 60,000 live objects); a leaf
 * of pointers costs 2 KiB. The table's packed leaves would save a little more but put a bitmap
 * and a population count on every lookup of an old object (measured: more instructions and
 * cache misses than before on a recorded graph trace), so they are not used here. */
#define OBJ_CHUNK 1024

static size_t ochunk_bytes(void) { return OBJ_CHUNK * sizeof(hr_gobj_t); }

static hr_gobj_t *obj_new(hr_graph_t *g)
{
    hr_gobj_t *o = g->free_objs;
    if (o) {
        g->free_objs = o->next;
    } else {
        if (g->nochunks == 0 || g->ocarve == OBJ_CHUNK) {
            void **c = realloc(g->ochunks, (g->nochunks + 1) * sizeof *c);
            if (!c)
                return NULL;
            g->ochunks = c;
            void *p = mmap(NULL, ochunk_bytes(), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
            g->ochunks[g->nochunks++] = p;
            g->ocarve = 0;
        }
        o = (hr_gobj_t *)g->ochunks[g->nochunks - 1] + g->ocarve++;
    }
    memset(o, 0, sizeof *o);
    return o;
}

/* The record of a dead object goes back to the free list; live stays 0 for anyone still looking
 * at it during the same event (nothing is allocated before the next one). */
static void obj_free(hr_graph_t *g, hr_gobj_t *o)
{
    o->live = 0;
    o->next = g->free_objs;
    g->free_objs = o;
}

/* Forget id's record in the table (the record itself is the caller's). */
static void obj_unmap(hr_graph_t *g, uint64_t id)
{
    hr_gobj_t **pp = hr_idtab_get(&g->objs, id);
    *pp = NULL;
    hr_idtab_release(&g->objs, id);
}

int hr_graph_init(hr_graph_t *g, const hr_gc_env_t *env, hr_gc_stats_t *st, hr_err_t *err)
{
    (void)err;
    memset(g, 0, sizeof *g);
    hr_idtab_init(&g->objs, sizeof(hr_gobj_t *));
    g->env = env;
    g->st = st;
    return HR_OK;
}

static int free_edges(void *arg, uint64_t id, void *rec)
{
    (void)arg, (void)id;
    hr_gobj_t *o = *(hr_gobj_t **)rec;
    if (o && o->live)
        free(o->out);
    return 0;
}

void hr_graph_free(hr_graph_t *g)
{
    hr_idtab_each(&g->objs, free_edges, NULL);
    hr_idtab_free(&g->objs);
    for (size_t i = 0; i < g->nochunks; i++)
        munmap(g->ochunks[i], ochunk_bytes());
    free(g->ochunks);
    g->ochunks = NULL;
    g->nochunks = 0;
    g->free_objs = NULL;
    hr_gstack_free(&g->work);
}

static uint64_t now(const hr_graph_t *g) { return g->env && g->env->event ? *g->env->event : 0; }

int hr_graph_alloc(hr_graph_t *g, uint64_t id, uint64_t size, unsigned flags, hr_gobj_t **out,
                   hr_err_t *err)
{
    hr_gobj_t *o = obj_new(g), **pp = o ? hr_idtab_put(&g->objs, id) : NULL;
    if (!pp) {
        if (o)
            obj_free(g, o);
        return hr_err_set(err, HR_ENOMEM, "out of memory for object %llu", (unsigned long long)id);
    }
    *pp = o;
    o->id = id;
    o->size = size;
    o->ext = 1;
    o->flags = (uint8_t)flags;
    o->gen = HR_GOBJ_UNTRACKED;
    o->ts = now(g);
    o->live = 1;
    g->nobjects++;
    g->st->objects_allocated++;
    if (g->nobjects > g->st->peak_objects)
        g->st->peak_objects = g->nobjects;
    *out = o;
    return HR_OK;
}

/* `what` names the event and the role: "incref of", "link from", "link to". */
static int missing(hr_err_t *err, const char *what, uint64_t id)
{
    return hr_err_set(err, HR_ECHECK, "%s object %llu, which is not live " HR_GRAPH_RECLAIMED,
                      what, (unsigned long long)id);
}

int hr_graph_incref(hr_graph_t *g, uint64_t id, hr_gobj_t **o, hr_err_t *err)
{
    hr_gobj_t *x = hr_graph_get(g, id);
    if (!x)
        return missing(err, "incref of", id);
    x->ext++;
    *o = x;
    return HR_OK;
}

int hr_graph_decref(hr_graph_t *g, uint64_t id, hr_gobj_t **o, hr_err_t *err)
{
    hr_gobj_t *x = hr_graph_get(g, id);
    if (!x)
        return missing(err, "decref of", id);
    if (x->ext == 0)
        return hr_err_set(err, HR_ECHECK,
                          "decref of object %llu takes its external count below zero (it has %u "
                          "references, all from containers)",
                          (unsigned long long)id, x->in);
    x->ext--;
    x->ts = now(g);
    *o = x;
    return HR_OK;
}

/* {==== Link index ====
 *
 * An unlink must find its target among the source's links. For most objects that is a short
 * search from the end (recent links go first), but a container holding many objects (a module's
 * dict, a long-lived list) made it linear in the container's size: on genmix, whose root holds
 * every survivor, 200,000 instructions per unlink and nine tenths of a refcount replay.
 *
 * So from OUT_INDEX_MIN links of capacity on, the out allocation carries, after its outcap
 * targets, an open-addressing table of 2 * outcap uint32 slots: 0 (empty) or 1 + a position in
 * out, keyed by the target at that position (out[pos] itself, so nothing is stored twice). Repeats
 * (a list holding the same object twice) are separate slots with equal keys. outcap is a power of
 * two. Invariant: when outcap >= OUT_INDEX_MIN, each position below nout is in exactly one slot.
 * Only link and unlink change out while the object lives; its death frees it whole. */
#define OUT_INDEX_MIN 64

static uint32_t *out_index(const hr_gobj_t *o) { return (uint32_t *)(o->out + o->outcap); }
static size_t out_mask(const hr_gobj_t *o) { return 2 * (size_t)o->outcap - 1; }
static size_t out_hash(const hr_gobj_t *o, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & out_mask(o);
}

static void index_put(hr_gobj_t *o, uint32_t pos)
{
    uint32_t *ix = out_index(o);
    size_t m = out_mask(o), i = out_hash(o, o->out[pos]);
    while (ix[i])
        i = (i + 1) & m;
    ix[i] = pos + 1;
}

/* The slot of a link to dst, or SIZE_MAX. */
static size_t index_find(const hr_gobj_t *o, uint64_t dst)
{
    const uint32_t *ix = out_index(o);
    size_t m = out_mask(o);
    for (size_t i = out_hash(o, dst); ix[i]; i = (i + 1) & m)
        if (o->out[ix[i] - 1] == dst)
            return i;
    return SIZE_MAX;
}

/* Empty slot i, moving later slots of its probe run back so every key stays reachable. */
static void index_del(hr_gobj_t *o, size_t i)
{
    uint32_t *ix = out_index(o);
    size_t m = out_mask(o);
    ix[i] = 0;
    for (size_t j = (i + 1) & m; ix[j]; j = (j + 1) & m) {
        size_t h = out_hash(o, o->out[ix[j] - 1]);
        /* slot j may move to the hole at i unless its home h lies cyclically in (i, j] */
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            ix[i] = ix[j];
            ix[j] = 0;
            i = j;
        }
    }
}

int hr_graph_link(hr_graph_t *g, uint64_t src, uint64_t dst, hr_err_t *err)
{
    hr_gobj_t *s = hr_graph_get(g, src), *d = hr_graph_get(g, dst);
    if (!s)
        return missing(err, "link from", src);
    if (!d)
        return missing(err, "link to", dst);
    if (s->nout == s->outcap) {
        uint32_t cap = s->outcap ? s->outcap * 2 : 4;
        size_t bytes = cap * sizeof *s->out + (cap >= OUT_INDEX_MIN ? 2 * (size_t)cap * 4 : 0);
        uint64_t *p = cap <= UINT32_MAX / 2 ? realloc(s->out, bytes) : NULL;
        if (!p)
            return hr_err_set(err, HR_ENOMEM, "out of memory for the links of object %llu",
                              (unsigned long long)src);
        s->out = p, s->outcap = cap;
        if (cap >= OUT_INDEX_MIN) {
            memset(out_index(s), 0, 2 * (size_t)cap * 4);
            for (uint32_t i = 0; i < s->nout; i++)
                index_put(s, i);
        }
    }
    s->out[s->nout] = dst;
    if (s->outcap >= OUT_INDEX_MIN)
        index_put(s, s->nout);
    s->nout++;
    d->in++;
    return HR_OK;
}

int hr_graph_unlink(hr_graph_t *g, uint64_t src, uint64_t dst, hr_gobj_t **dsto, hr_err_t *err)
{
    hr_gobj_t *s = hr_graph_get(g, src), *d = hr_graph_get(g, dst);
    if (!s)
        return missing(err, "unlink from", src);
    if (!d)
        return missing(err, "unlink to", dst);
    uint32_t last = s->nout - 1, p = UINT32_MAX;
    if (s->outcap >= OUT_INDEX_MIN) {
        size_t k = index_find(s, dst);
        if (k != SIZE_MAX) {
            p = out_index(s)[k] - 1;
            index_del(s, k);
            if (p != last) { /* the last link moves to p: so does its slot */
                uint32_t *ix = out_index(s);
                size_t i = out_hash(s, s->out[last]), m = out_mask(s);
                while (ix[i] != last + 1)
                    i = (i + 1) & m;
                ix[i] = p + 1;
            }
        }
    } else {
        /* Recent links are the likeliest to go: search from the end. */
        for (uint32_t i = s->nout; i-- > 0;)
            if (s->out[i] == dst) {
                p = i;
                break;
            }
    }
    if (p == UINT32_MAX)
        return hr_err_set(err, HR_ECHECK, "unlink %llu -> %llu: object %llu holds no such link",
                          (unsigned long long)src, (unsigned long long)dst,
                          (unsigned long long)src);
    s->out[p] = s->out[last];
    s->nout--;
    d->in--;
    d->ts = now(g);
    *dsto = d;
    return HR_OK;
}

int hr_gstack_push(hr_gstack_t *s, hr_gobj_t *o, hr_err_t *err)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        hr_gobj_t **p = realloc(s->v, cap * sizeof *p);
        if (!p)
            return hr_err_set(err, HR_ENOMEM, "out of memory for a collector's object stack");
        s->v = p, s->cap = cap;
    }
    s->v[s->n++] = o;
    return HR_OK;
}

void hr_gstack_free(hr_gstack_t *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int push_work(hr_graph_t *g, hr_gobj_t *o, hr_err_t *err)
{
    return hr_gstack_push(&g->work, o, err);
}

/* Free one object's block and record; its edges must already be gone. */
static void reclaim_one(hr_graph_t *g, hr_gobj_t *o, int by_tracing)
{
    uint64_t id = o->id, size = o->size;
    if (g->unlist)
        g->unlist(g->unlist_ctx, o);
    free(o->out);
    o->out = NULL;
    o->live = 0;
    g->nobjects--;
    g->st->objects_reclaimed++;
    g->st->bytes_reclaimed += size;
    if (by_tracing)
        g->st->objects_by_tracing++;
    else
        g->st->objects_by_refcount++;
    g->env->reclaim(g->env->engine, id);
    obj_unmap(g, id);
    obj_free(g, o);
}

/* Drop x's edges; live targets that fall to count zero are queued to die (members of a set being
 * reclaimed together are in state 3, not 1, so they are not queued). */
static int drop_edges(hr_graph_t *g, hr_gobj_t *x, hr_err_t *err)
{
    uint64_t t = now(g);
    int rc = HR_OK;
    for (uint32_t i = 0; i < x->nout; i++) {
        hr_gobj_t *d = hr_graph_obj_(g, x->out[i]);
        d->in--;
        d->ts = t;
        if (d->live == 1 && hr_graph_count(d) == 0) {
            d->live = 2; /* queued: never queued twice */
            if ((rc = push_work(g, d, err)))
                break;
        }
    }
    x->nout = 0;
    return rc;
}

/* Run the queued deaths (refcount cascade) down to `base`. */
static int cascade_to(hr_graph_t *g, size_t base, hr_err_t *err)
{
    int rc = HR_OK;
    while (rc == HR_OK && g->work.n > base) {
        hr_gobj_t *x = g->work.v[--g->work.n];
        rc = drop_edges(g, x, err);
        reclaim_one(g, x, 0);
    }
    g->work.n = base;
    return rc;
}

int hr_graph_kill(hr_graph_t *g, hr_gobj_t *o, hr_err_t *err)
{
    size_t base = g->work.n;
    o->live = 2;
    int rc = push_work(g, o, err);
    return rc ? rc : cascade_to(g, base, err);
}

int hr_graph_kill_set(hr_graph_t *g, hr_gobj_t **set, size_t n, hr_err_t *err)
{
    size_t base = g->work.n;
    int rc = HR_OK;
    for (size_t i = 0; i < n; i++)
        set[i]->live = 3;
    for (size_t i = 0; i < n && !rc; i++) /* first every edge of the set goes */
        rc = drop_edges(g, set[i], err);
    for (size_t i = 0; i < n; i++)
        reclaim_one(g, set[i], 1);
    return rc ? rc : cascade_to(g, base, err);
}

void hr_graph_remove_set(hr_graph_t *g, hr_gobj_t **set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hr_gobj_t *x = set[i];
        for (uint32_t k = 0; k < x->nout; k++)
            hr_graph_obj_(g, x->out[k])->in--;
        x->nout = 0;
    }
    for (size_t i = 0; i < n; i++) {
        free(set[i]->out);
        set[i]->out = NULL;
        g->nobjects--;
        obj_unmap(g, set[i]->id);
        obj_free(g, set[i]);
    }
}

int hr_graph_decref_rc(hr_graph_t *g, uint64_t id, hr_err_t *err)
{
    hr_gobj_t *o;
    int rc = hr_graph_decref(g, id, &o, err);
    if (rc || hr_graph_count(o) != 0)
        return rc;
    hr_graph_drag(g, 0);
    return hr_graph_kill(g, o, err);
}

int hr_graph_unlink_rc(hr_graph_t *g, uint64_t src, uint64_t dst, hr_err_t *err)
{
    hr_gobj_t *d;
    int rc = hr_graph_unlink(g, src, dst, &d, err);
    if (rc || hr_graph_count(d) != 0)
        return rc;
    hr_graph_drag(g, 0);
    return hr_graph_kill(g, d, err);
}

int hr_graph_reclaim_garbage(hr_graph_t *g, hr_gobj_t **set, size_t n, uint8_t m, hr_err_t *err)
{
    if (n == 0)
        return HR_OK;
    int rc = hr_graph_death_times(g, set, n, m, err);
    if (rc)
        return rc;
    uint64_t t = now(g);
    for (size_t i = 0; i < n; i++) {
        uint64_t dt = (uint64_t)set[i]->scratch;
        hr_graph_drag(g, t > dt ? t - dt : 0);
    }
    return hr_graph_kill_set(g, set, n, err);
}

void hr_graph_drag(hr_graph_t *g, uint64_t drag)
{
    g->drag_sum += drag;
    g->drag_n++;
    g->st->drag_mean_events = g->drag_sum / g->drag_n;
    if (drag > g->st->drag_max_events)
        g->st->drag_max_events = drag;
}

int hr_graph_death_times(hr_graph_t *g, hr_gobj_t **set, size_t n, uint8_t m, hr_err_t *err)
{
    size_t base = g->work.n;
    int rc = HR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        set[i]->scratch = (int64_t)set[i]->ts;
        rc = push_work(g, set[i], err);
    }
    /* Propagate the largest timestamp along edges inside the set until nothing changes. */
    while (!rc && g->work.n > base) {
        hr_gobj_t *x = g->work.v[--g->work.n];
        for (uint32_t i = 0; i < x->nout && !rc; i++) {
            hr_gobj_t *d = hr_graph_obj_(g, x->out[i]);
            if (d->mark == m && d->scratch < x->scratch) {
                d->scratch = x->scratch;
                rc = push_work(g, d, err);
            }
        }
    }
    g->work.n = base;
    return rc;
}

typedef struct each_arg {
    int (*fn)(void *arg, hr_gobj_t *o);
    void *arg;
} each_arg_t;

static int each_live(void *arg, uint64_t id, void *rec)
{
    (void)id;
    each_arg_t *a = arg;
    hr_gobj_t *o = *(hr_gobj_t **)rec;
    return o && o->live ? a->fn(a->arg, o) : 0;
}

int hr_graph_each(hr_graph_t *g, int (*fn)(void *arg, hr_gobj_t *o), void *arg)
{
    each_arg_t a = {fn, arg};
    return hr_idtab_each(&g->objs, each_live, &a);
}

/* {==== End-of-trace accounting: which live objects are still reachable ==== */

typedef struct end_arg {
    hr_graph_t *g;
    hr_err_t *err;
    int rc;
} end_arg_t;

static int clear_mark(void *arg, hr_gobj_t *o)
{
    (void)arg;
    o->mark = 0;
    return 0;
}

static int mark_roots(void *arg, hr_gobj_t *o)
{
    end_arg_t *a = arg;
    if (o->ext > 0 && !o->mark) {
        o->mark = 1;
        if ((a->rc = push_work(a->g, o, a->err)))
            return 1;
    }
    return 0;
}

static int count_end(void *arg, hr_gobj_t *o)
{
    hr_graph_t *g = arg;
    if (o->mark)
        g->st->objects_live_end++;
    else {
        g->st->objects_leaked++;
        g->st->bytes_leaked += o->size;
    }
    return 0;
}

int hr_graph_account_end(hr_graph_t *g, hr_err_t *err)
{
    end_arg_t a = {g, err, 0};
    hr_graph_each(g, clear_mark, NULL);
    hr_graph_each(g, mark_roots, &a);
    while (!a.rc && g->work.n > 0) {
        hr_gobj_t *x = g->work.v[--g->work.n];
        for (uint32_t i = 0; i < x->nout && !a.rc; i++) {
            hr_gobj_t *d = hr_graph_obj_(g, x->out[i]);
            if (!d->mark) {
                d->mark = 1;
                a.rc = push_work(g, d, err);
            }
        }
    }
    if (a.rc)
        return a.rc;
    g->st->objects_live_end = g->st->objects_leaked = g->st->bytes_leaked = 0;
    hr_graph_each(g, count_end, g);
    return HR_OK;
}

/* {==== Invariant check ==== */

typedef struct verify_arg {
    hr_graph_t *g;
    uint64_t outs, ins, live;
    hr_err_t *err;
    int rc;
} verify_arg_t;

static int verify_one(void *arg, hr_gobj_t *o)
{
    verify_arg_t *a = arg;
    a->live++;
    a->outs += o->nout;
    a->ins += o->in;
    for (uint32_t i = 0; i < o->nout; i++)
        if (!hr_graph_get(a->g, o->out[i])) {
            a->rc = hr_err_set(a->err, HR_EINTERNAL, "object %llu links to %llu, which is not live",
                               (unsigned long long)o->id, (unsigned long long)o->out[i]);
            return 1;
        }
    return 0;
}

int hr_graph_verify(hr_graph_t *g, hr_err_t *err)
{
    verify_arg_t a = {g, 0, 0, 0, err, 0};
    hr_graph_each(g, verify_one, &a);
    if (a.rc)
        return a.rc;
    if (a.outs != a.ins)
        return hr_err_set(err, HR_EINTERNAL, "graph holds %llu link ends but %llu incoming counts",
                          (unsigned long long)a.outs, (unsigned long long)a.ins);
    if (a.live != g->nobjects)
        return hr_err_set(err, HR_EINTERNAL, "graph counts %llu objects but holds %llu",
                          (unsigned long long)g->nobjects, (unsigned long long)a.live);
    return HR_OK;
}

/* {==== Ready-made vtable slots (the context begins with its hr_graph_t) ==== */

int hr_graph_slot_incref(void *ctx, uint64_t id, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_incref(ctx, id, &o, err);
}

int hr_graph_slot_decref_keep(void *ctx, uint64_t id, hr_err_t *err)
{
    hr_gobj_t *o;
    return hr_graph_decref(ctx, id, &o, err);
}

int hr_graph_slot_decref_rc(void *ctx, uint64_t id, hr_err_t *err)
{
    return hr_graph_decref_rc(ctx, id, err);
}

int hr_graph_slot_link(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err)
{
    return hr_graph_link(ctx, src, dst, err);
}

int hr_graph_slot_unlink_keep(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err)
{
    hr_gobj_t *d;
    return hr_graph_unlink(ctx, src, dst, &d, err);
}

int hr_graph_slot_unlink_rc(void *ctx, uint64_t src, uint64_t dst, hr_err_t *err)
{
    return hr_graph_unlink_rc(ctx, src, dst, err);
}

void hr_graph_slot_resize(void *ctx, uint64_t id, uint64_t size)
{
    hr_gobj_t *o = hr_graph_get(ctx, id);
    if (o)
        o->size = size;
}

int hr_graph_slot_finish(void *ctx, hr_err_t *err) { return hr_graph_account_end(ctx, err); }

/* {==== Pauses ==== */

void hr_pauses_add(hr_pauses_t *p, uint64_t ns)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        uint64_t *q = realloc(p->ns, cap * sizeof *q);
        if (!q)
            return; /* statistics only: drop the sample rather than fail the replay */
        p->ns = q, p->cap = cap;
    }
    p->ns[p->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void hr_pauses_fill(hr_pauses_t *p, hr_gc_stats_t *st)
{
    st->pause_p50_ns = st->pause_p99_ns = st->pause_max_ns = 0;
    if (!p->n)
        return;
    qsort(p->ns, p->n, sizeof *p->ns, cmp_u64);
    /* nearest-rank percentiles */
    st->pause_p50_ns = p->ns[(p->n * 50 + 99) / 100 - 1];
    st->pause_p99_ns = p->ns[(p->n * 99 + 99) / 100 - 1];
    st->pause_max_ns = p->ns[p->n - 1];
}

void hr_pauses_free(hr_pauses_t *p)
{
    free(p->ns);
    p->ns = NULL;
    p->n = p->cap = 0;
}

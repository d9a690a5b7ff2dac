/* rec_graph.c: graph mode: the object graph the way CPython's cycle collector sees it.
 *
 * Theory of operation. No 3.11 hook sees an incref or a decref, so the recorder keeps a shadow
 * of what a replay will believe about every object and corrects it whenever the truth can be
 * read. Objects are the GC-capable allocations (exactly those CPython's collector can ever look
 * at; strings, ints and other non-GC objects stay plain blocks with explicit frees). For each
 * object the shadow holds
 *
 *   ext     references from outside the heap (the replay's incref/decref count), starts at 1
 *   edges   links src -> dst as a multiset, each edge in its source's out-list and its
 *           target's in-list (swap-remove with back-indices, so removal is O(1))
 *   count   ext + number of in-edges: the replay's reference count of the object
 *
 * Observation points and what is written there:
 *
 *   collection start (GC_BEGIN of generation g): every tracked object of generations 0..g is
 *     traversed with its tp_traverse; its out-edges become exactly what it reports (LINK for
 *     new ones, UNLINK for gone ones), and ext becomes ob_refcnt - in-edges (INCREF/DECREF) for
 *     it and for every object whose in-edges changed. Increases are written before decreases so
 *     no live object's count passes through 0. The recorder then computes which traversed
 *     objects are unreachable from those with ext > 0 (what CPython's collector will find).
 *   object free outside a collection, or of an object not found unreachable (a death by
 *     reference counting): first the objects it still links to are corrected so that they keep
 *     their true ob_refcnt once its links are gone, then UNLINK from every remaining source and
 *     DECREF for each external reference, so that its count reaches 0 at exactly the last of
 *     these events; then DIED.
 *   object free during a collection of an object found unreachable at its start: DIED only; the
 *     collector under test must reclaim it by itself.
 *
 * Between observation points the shadow is as old as the last one: an object's count is exact
 * at its own death and at the collections that traverse it, and approximate in between.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <Python.h>
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"

#include "rec_graph.h"
#include "rec_python.h"

#include <stdlib.h>
#include <string.h>

#define R hr_rec

typedef struct vec {
    uint32_t *v;
    uint32_t len, cap;
} vec_t;

static struct graph {
    /* per id (dense, grown on demand) */
    size_t cap;
    uintptr_t *obj;   /* PyObject address, 0 when not a live object */
    int64_t *ext;
    vec_t *out, *in;  /* edge ids */
    uint8_t *garbage; /* found unreachable at the start of the current collection */
    /* edges */
    uint32_t *esrc, *edst, *epos_out, *epos_in;
    size_t ecap, enext;
    vec_t efree;
    hr_idmap_t objs;  /* PyObject address -> id */
    hr_idmap_t tmap;  /* type address -> type id + 1 */
    uint32_t ntypes, unknown_type;
    int in_collection;
    /* scratch */
    vec_t scratch, touched;
    uint64_t s_premature, s_clamped, s_traversed, s_links, s_unlinks, s_incref, s_decref,
        s_gc_deaths, s_rc_deaths, s_untyped;
} G;

static int vpush(vec_t *v, uint32_t x)
{
    if (v->len == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        uint32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -1;
        v->v = p, v->cap = cap;
    }
    v->v[v->len++] = x;
    return 0;
}

static int grow_ids(uint64_t id)
{
    if (id < G.cap)
        return 0;
    size_t cap = G.cap ? G.cap : 1024;
    while (cap <= id)
        cap *= 2;
#define GROW(p, T)                                                                             \
    do {                                                                                       \
        T *q = realloc(G.p, cap * sizeof(T));                                                  \
        if (!q)                                                                                \
            return -1;                                                                         \
        memset(q + G.cap, 0, (cap - G.cap) * sizeof(T));                                       \
        G.p = q;                                                                               \
    } while (0)
    GROW(obj, uintptr_t);
    GROW(ext, int64_t);
    GROW(out, vec_t);
    GROW(in, vec_t);
    GROW(garbage, uint8_t);
#undef GROW
    G.cap = cap;
    return 0;
}

static uint32_t edge_new(uint32_t s, uint32_t t)
{
    uint32_t e;
    if (G.efree.len)
        e = G.efree.v[--G.efree.len];
    else {
        if (G.enext == G.ecap) {
            size_t cap = G.ecap ? G.ecap * 2 : 4096;
            uint32_t *a = realloc(G.esrc, cap * 4), *b = a ? realloc(G.edst, cap * 4) : NULL;
            if (a)
                G.esrc = a;
            if (b)
                G.edst = b;
            uint32_t *c = b ? realloc(G.epos_out, cap * 4) : NULL;
            if (c)
                G.epos_out = c;
            uint32_t *d = c ? realloc(G.epos_in, cap * 4) : NULL;
            if (!d)
                return UINT32_MAX;
            G.epos_in = d;
            G.ecap = cap;
        }
        e = (uint32_t)G.enext++;
    }
    G.esrc[e] = s, G.edst[e] = t;
    G.epos_out[e] = G.out[s].len;
    G.epos_in[e] = G.in[t].len;
    vpush(&G.out[s], e);
    vpush(&G.in[t], e);
    return e;
}

static void edge_del(uint32_t e)
{
    uint32_t s = G.esrc[e], t = G.edst[e];
    vec_t *o = &G.out[s], *i = &G.in[t];
    uint32_t last = o->v[--o->len];
    if (last != e) {
        o->v[G.epos_out[e]] = last;
        G.epos_out[last] = G.epos_out[e];
    }
    last = i->v[--i->len];
    if (last != e) {
        i->v[G.epos_in[e]] = last;
        G.epos_in[last] = G.epos_in[e];
    }
    vpush(&G.efree, e);
}

int hr_rec_graph_init(hr_err_t *err)
{
    memset(&G, 0, sizeof G);
    if (hr_idmap_init(&G.objs, 16) || hr_idmap_init(&G.tmap, 10) || grow_ids(1024))
        return hr_err_set(err, HR_ENOMEM, "cannot allocate the graph recorder's tables");
    G.unknown_type = UINT32_MAX;
    return HR_OK;
}

/* {==== types ==== */

static uint32_t type_id(PyTypeObject *t)
{
    uint64_t v;
    if (t && hr_idmap_get(&G.tmap, (uintptr_t)t, &v, NULL))
        return (uint32_t)(v - 1);
    const char *name = t ? t->tp_name : "(uninitialised)";
    if (!t && G.unknown_type != UINT32_MAX)
        return G.unknown_type;
    uint32_t id = G.ntypes++;
    hr_rec_emit_str(HR_OP_TYPE, id, name, strlen(name));
    if (t)
        hr_idmap_put(&G.tmap, (uintptr_t)t, (uint64_t)id + 1, 0);
    else
        G.unknown_type = id;
    return id;
}

/* {==== allocation, move, free ==== */

extern PyTypeObject *hr_rec_gc_block_type(uintptr_t block, uint64_t size, size_t *pre);

void hr_rec_graph_alloc(uintptr_t block, uint64_t size, unsigned flags)
{
    if (R.sink.off)
        return;
    size_t pre = 0;
    PyTypeObject *t = hr_rec_gc_block_type(block, size, &pre);
    if (!t)
        G.s_untyped++;
    uint32_t ty = type_id(t);
    uint64_t id = hr_trace_writer_next_id(R.sink.w);
    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = HR_DOMAIN_OBJ,
                     .flags = (uint8_t)(flags | HR_F_OBJECT | HR_F_TYPED), .tag = ty, .a = id,
                     .b = size};
    if (hr_rec_emit(&ev) || grow_ids(id)) {
        R.sink.off = 1;
        return;
    }
    /* An object whose type is not yet set (a collection started inside its allocation) is
     * assumed to have the common 16-byte pre-header. */
    uintptr_t op = block + (pre ? pre : 16);
    hr_idmap_put(&R.map, block, id, ev.flags | (pre == 32 ? 0x80 : 0));
    hr_idmap_put(&G.objs, op, id, 0);
    G.obj[id] = op;
    G.ext[id] = 1;
}

void hr_rec_graph_moved(uintptr_t old_block, uintptr_t new_block, uint64_t id)
{
    uintptr_t op = G.obj[id];
    if (!op)
        return;
    hr_idmap_take(&G.objs, op, NULL, NULL);
    op = op - old_block + new_block;
    hr_idmap_put(&G.objs, op, id, 0);
    G.obj[id] = op;
}

static void put_ext(uint64_t id, int64_t target, int increases)
{
    while (increases && G.ext[id] < target) {
        hr_rec_emit_id(HR_OP_INCREF, id);
        G.ext[id]++;
        G.s_incref++;
    }
    while (!increases && G.ext[id] > target) {
        hr_rec_emit_id(HR_OP_DECREF, id);
        G.ext[id]--;
        G.s_decref++;
    }
}

/* The external count that makes id's shadow count equal its real refcount, given that
 * `in_less` of its in-edges are about to go. */
static int64_t wanted_ext(uint64_t id, uint32_t in_less)
{
    Py_ssize_t rc = Py_REFCNT((PyObject *)G.obj[id]);
    int64_t w = (int64_t)rc - (int64_t)(G.in[id].len - in_less);
    if (w < 0) {
        G.s_clamped++;
        w = 0;
    }
    return w;
}

static void drop_all_edges(uint64_t id)
{
    while (G.out[id].len)
        edge_del(G.out[id].v[G.out[id].len - 1]);
    while (G.in[id].len)
        edge_del(G.in[id].v[G.in[id].len - 1]);
}

void hr_rec_graph_free(uintptr_t block, uint64_t id, unsigned flags)
{
    (void)block, (void)flags;
    if (R.sink.off || id >= G.cap || !G.obj[id])
        return;
    hr_idmap_take(&G.objs, G.obj[id], NULL, NULL);
    if (G.in_collection && G.garbage[id]) {
        G.s_gc_deaths++;
    } else {
        G.s_rc_deaths++;
        /* 1. Targets that stay alive keep their real count once this object's links go. */
        vec_t *o = &G.out[id];
        for (uint32_t k = 0; k < o->len; k++) {
            uint32_t t = G.edst[o->v[k]];
            if (t == id || !G.obj[t])
                continue;
            uint32_t mult = 0;
            for (uint32_t j = 0; j < o->len; j++)
                mult += G.edst[o->v[j]] == t;
            put_ext(t, wanted_ext(t, mult), 1);
        }
        for (uint32_t k = 0; k < o->len; k++) {
            uint32_t t = G.edst[o->v[k]];
            if (t == id || !G.obj[t])
                continue;
            uint32_t mult = 0;
            for (uint32_t j = 0; j < o->len; j++)
                mult += G.edst[o->v[j]] == t;
            put_ext(t, wanted_ext(t, mult), 0);
        }
        /* 2. Its own count goes to 0 at the last of these events. */
        if (G.ext[id] + (int64_t)G.in[id].len <= 0)
            G.s_premature++;
        vec_t *in = &G.in[id];
        while (in->len) {
            uint32_t e = in->v[in->len - 1];
            uint32_t s = G.esrc[e];
            if (s != id) {
                hr_event_t ev = {.op = HR_OP_UNLINK, .a = s, .b = id};
                hr_rec_emit(&ev);
                G.s_unlinks++;
            }
            edge_del(e);
        }
        put_ext(id, 0, 0);
    }
    hr_rec_emit_id(HR_OP_DIED, id);
    drop_all_edges(id);
    G.obj[id] = 0;
    G.ext[id] = 0;
    G.garbage[id] = 0;
}

/* {==== collections ==== */

static int visit(PyObject *op, void *arg)
{
    (void)arg;
    uint64_t id;
    if (op && hr_idmap_get(&G.objs, (uintptr_t)op, &id, NULL))
        vpush(&G.scratch, (uint32_t)id);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void touch(uint32_t id)
{
    if (!(G.garbage[id] & 2)) {
        G.garbage[id] |= 2;
        vpush(&G.touched, id);
    }
}

void hr_rec_graph_collection_begin(int gen)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    if (!in || R.sink.off || gen < 0)
        return;
    struct _gc_runtime_state *g = &in->gc;
    vec_t members = {0}, removed = {0};
    /* A. traverse; B. write new links at once, remember gone ones */
    for (int i = 0; i <= gen && i < NUM_GENERATIONS; i++) {
        PyGC_Head *head = &g->generations[i].head;
        for (PyGC_Head *h = (PyGC_Head *)head->_gc_next; h != head;
             h = (PyGC_Head *)h->_gc_next) {
            PyObject *op = (PyObject *)(h + 1);
            uint64_t id;
            if (!hr_idmap_get(&G.objs, (uintptr_t)op, &id, NULL))
                continue;
            G.s_traversed++;
            vpush(&members, (uint32_t)id);
            touch((uint32_t)id);
            G.scratch.len = 0;
            traverseproc tr = Py_TYPE(op)->tp_traverse;
            if (tr)
                tr(op, visit, NULL);
            if (G.scratch.len > 1)
                qsort(G.scratch.v, G.scratch.len, sizeof(uint32_t), cmp_u32);
            /* old out-edges sorted by target */
            vec_t *o = &G.out[id];
            uint32_t n = o->len;
            uint64_t *old = n ? malloc(n * sizeof *old) : NULL;
            for (uint32_t k = 0; k < n; k++)
                old[k] = (uint64_t)G.edst[o->v[k]] << 32 | o->v[k];
            if (n > 1)
                qsort(old, n, sizeof *old, cmp_u64);
            uint32_t x = 0, y = 0;
            while (x < G.scratch.len || y < n) {
                uint32_t nt = x < G.scratch.len ? G.scratch.v[x] : UINT32_MAX;
                uint32_t ot = y < n ? (uint32_t)(old[y] >> 32) : UINT32_MAX;
                if (nt == ot) {
                    x++, y++;
                } else if (nt < ot) {
                    hr_event_t ev = {.op = HR_OP_LINK, .a = id, .b = nt};
                    hr_rec_emit(&ev);
                    edge_new((uint32_t)id, nt);
                    touch(nt);
                    G.s_links++;
                    x++;
                } else {
                    vpush(&removed, (uint32_t)old[y]);
                    touch(ot);
                    y++;
                }
            }
            free(old);
        }
    }
    /* C. increases of ext toward the final in-degrees, D. unlinks, E. decreases */
    for (uint32_t k = 0; k < G.touched.len; k++) {
        uint32_t t = G.touched.v[k];
        uint32_t going = 0;
        for (uint32_t r = 0; r < removed.len; r++)
            going += G.edst[removed.v[r]] == t;
        if (G.obj[t])
            put_ext(t, wanted_ext(t, going), 1);
    }
    for (uint32_t r = 0; r < removed.len; r++) {
        uint32_t e = removed.v[r];
        hr_event_t ev = {.op = HR_OP_UNLINK, .a = G.esrc[e], .b = G.edst[e]};
        hr_rec_emit(&ev);
        G.s_unlinks++;
        edge_del(e);
    }
    for (uint32_t k = 0; k < G.touched.len; k++) {
        uint32_t t = G.touched.v[k];
        if (G.obj[t])
            put_ext(t, wanted_ext(t, 0), 0);
        G.garbage[t] &= (uint8_t)~2;
    }
    G.touched.len = 0;
    /* F. what CPython's collector will find unreachable: members not reachable from members
     * with ext > 0, following out-edges among members. */
    for (uint32_t k = 0; k < members.len; k++)
        G.garbage[members.v[k]] = 1;
    vec_t stack = {0};
    for (uint32_t k = 0; k < members.len; k++)
        if (G.ext[members.v[k]] > 0 && G.garbage[members.v[k]] == 1) {
            G.garbage[members.v[k]] = 0;
            vpush(&stack, members.v[k]);
        }
    while (stack.len) {
        uint32_t s = stack.v[--stack.len];
        vec_t *o = &G.out[s];
        for (uint32_t k = 0; k < o->len; k++) {
            uint32_t t = G.edst[o->v[k]];
            if (G.garbage[t] == 1) {
                G.garbage[t] = 0;
                vpush(&stack, t);
            }
        }
    }
    free(stack.v);
    free(removed.v);
    G.in_collection = 1;
    /* garbage[] keeps 1 for the unreachable members until the collection ends */
    vec_t *keep = &G.touched;
    for (uint32_t k = 0; k < members.len; k++)
        if (G.garbage[members.v[k]] == 1)
            vpush(keep, members.v[k]);
    free(members.v);
}

void hr_rec_graph_collection_end(void)
{
    for (uint32_t k = 0; k < G.touched.len; k++)
        G.garbage[G.touched.v[k]] = 0;
    G.touched.len = 0;
    G.in_collection = 0;
}

int hr_rec_graph_selfcheck(char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "graph_traversed %llu\ngraph_links %llu\ngraph_unlinks %llu\n"
                     "graph_increfs %llu\ngraph_decrefs %llu\ngraph_rc_deaths %llu\n"
                     "graph_gc_deaths %llu\ngraph_premature %llu\ngraph_clamped %llu\n"
                     "graph_untyped %llu\n",
                     (unsigned long long)G.s_traversed, (unsigned long long)G.s_links,
                     (unsigned long long)G.s_unlinks, (unsigned long long)G.s_incref,
                     (unsigned long long)G.s_decref, (unsigned long long)G.s_rc_deaths,
                     (unsigned long long)G.s_gc_deaths, (unsigned long long)G.s_premature,
                     (unsigned long long)G.s_clamped, (unsigned long long)G.s_untyped);
    return n < 0 ? 0 : ((size_t)n >= cap ? (int)cap - 1 : n);
}

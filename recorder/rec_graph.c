/* rec_graph.c: graph mode: the object graph the way CPython's cycle collector sees it.
 *
 * Theory of operation. No 3.11 hook sees an incref or a decref, so the recorder keeps a shadow
 * of what a replay will believe about every object and corrects it whenever the truth can be
 * read. Objects are the GC-capable allocations (exactly those CPython's collector can ever look
 * at) and code objects, which are not GC objects but hold GC objects (below, "code objects");
 * strings, ints and other non-GC objects stay plain blocks with explicit frees. For each
 * object the shadow holds
 *
 *   ext     references from outside the heap (the replay's incref/decref count), starts at 1
 *   edges   links src -> dst as a multiset, each edge in its source's out-list and its
 *           target's in-list (swap-remove with back-indices, so removal is O(1))
 *   count   ext + number of in-edges: the replay's reference count of the object
 *   gen     the generation the *replay's* generational collector keeps it in (a mirror of
 *           gc/generational.c: new objects in 0, survivors of a collection of g < 2 to g + 1)
 *
 * The shadow is exactly the graph of a generational replay of the trace written so far. Four
 * rules keep every replay consistent (no event ever names an object a replay already reclaimed):
 *
 *   1. While an object's block is allocated its count never falls below 1 (wanted_ext): an
 *      object CPython has put on a free list (ob_refcnt 0, block kept) is held by the free list,
 *      and holds nothing. Objects die in the trace only where their block is freed, or at a
 *      collection (rule 3).
 *   2. At an object's free (a death by reference counting) the objects it links to are first
 *      corrected so that they keep their true ob_refcnt once its links go (at least 1), then the
 *      links into it go (UNLINK) and its external references (DECREF): its count reaches 0 at
 *      exactly the last of these events, then DIED.
 *   3. At a collection of generation g, before the ALLOC that triggers it (the replay collects
 *      inside that ALLOC) or before GC_CONTROL collect, the recorder reconciles (traverses with
 *      tp_traverse and sets ext = ob_refcnt - in-edges for) the union of CPython's generations
 *      0..g and the mirror's, computes the garbage the replay will find from the mirror's young
 *      set, and the objects the replay will then free by counting (held only by that garbage),
 *      reconciling those and their targets until the prediction no longer changes. All of these
 *      are flagged: the replay reclaims them at the collection, so from then on the trace names
 *      them only in DIED (at their free inside the collection, or, when CPython put one on a
 *      free list instead, just before GC_END; such a block is "lost": its reuse is invisible).
 *   4. Only objects about to die (rule 2, rule 3's prediction) are ever written at external
 *      count 0. Between observation points an object's true external count can be staler than
 *      its links (references from places no tp_traverse reports, such as 3.11's frame stack),
 *      so a count the shadow believes 0 is written as 1 (M_PINNED: ext is then one more than the
 *      truth, truth_ext), and the pin goes only at its death or just before the collection that
 *      finds it garbage. Predictions use the truth, so the recorded collector's garbage does
 *      not change; a collector looking at other moments (a tracing one, other thresholds) sees
 *      every object CPython has not freed or found garbage as a root, and can never reclaim one
 *      the trace names later.
 *
 * More things make the replays agree with CPython, not only with each other (docs/recorder.md,
 * "Generations, free lists, and references tp_traverse does not report"): at every collection
 * the mirror's generations are made CPython's with GC_TRACK events (sync_generations), and the
 * survivors CPython untracked during it are untracked after it (collection_end); lost blocks
 * CPython took off a free list and tracks again become new objects (revive); a count below its
 * in-links sends the recorder to traverse the links' sources (flush_refresh); a class's entries
 * in its bases' subclass lists are linked from the class (visit_subclass_entries). A full
 * collection's free-list clearing is recognised at its first free and marked with PHASE
 * "gc.freelists" (freelist_clearing). A weak reference freed right after the callback a
 * collection ran for it is marked with PHASE "gc.wrcb" (callback_phase_death).
 *
 * A collection CPython starts by itself is seen at the first observation after the triggering
 * allocation (rec_python.c): with the recorder's gc callback installed that observation is the
 * callback machinery building its info dict, before the collector touched anything. Before the
 * callback exists (interpreter start-up) the collection is predicted at the allocation that may
 * trigger it (the count is at the threshold), reconciled there, and committed when the
 * allocation turns out to be the GC allocation that started it. A collection that calls no
 * callbacks (interpreter finalisation) is reconciled from inside the collector, when it traverses
 * the recorder's probe object: CPython has merged its younger lists into the collected one by
 * then (hr_rec_graph_merged), and changed nothing else.
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
#include "internal/pycore_tuple.h"

#include "hr_idtab.h"
#include "rec_graph.h"
#include "rec_python.h"
#include "rec_types.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define R hr_rec
#define NIL UINT32_MAX
#define PERM 3  /* the mirror's permanent generation (gc.freeze) */
#define NOGEN 4 /* on no list */
#define GC_DEBUG_SAVEALL (1 << 5) /* gc.DEBUG_SAVEALL (defined in gcmodule.c, in no header) */
#define F_REVIVED 0x40 /* address-map flag: a GC block whose ALLOC has no `gc` flag (revive) */

typedef struct vec {
    uint32_t *v;
    uint32_t len, cap;
} vec_t;

/* per-object mark bits */
enum {
    M_FLAGGED = 1,    /* the replay reclaims it at the collection in progress */
    M_TOUCHED = 2,    /* queued for an ext correction (flush_touched) */
    M_DONE_EXT = 4,   /* ext reconciled in this round */
    M_DONE_TRAV = 8,  /* traversed in this round */
    M_MEMBER = 16,    /* in the set traversed in this round */
    M_YOUNG = 32,     /* in the mirror's young set */
    M_SIM = 64,       /* garbage computation: reachable / cascade: counted */
    M_DYING = 128,    /* in the predicted garbage or cascade */
    M_LISTED = 256,   /* in one of CPython's generation lists being collected */
    M_PINNED = 512,   /* rule 4: ext is 1 where the truth is 0 */
    M_CB_RELEASED = 1024, /* a weak reference whose callback died while it was deallocated */
    M_FOUND = 2048    /* flagged as garbage the replay's collector finds (not its cascade) */
};

/* {==== object records ====
 *
 * One record per object of the shadow, from its ALLOC (hr_rec_graph_alloc, revive) until its
 * block is freed (hr_rec_graph_free) or, for a lost block, revived under a new id. Records live
 * in mmap'd chunks of NODE_CHUNK and are reused through a free list, so they never move while
 * their object lives; G.ids (an hr_idtab of node_t pointers, packed leaves on) maps ids to them.
 * Memory therefore follows the live objects: 80 bytes per record up to the peak number of live
 * objects, and the id table's 8 bytes per id in leaves (freed when all their ids died, packed
 * when few survive) plus 12 bytes of directory per 256 ids where a group of 262,144 ids still
 * holds a live one (common/hr_idtab.c, "The directory"). (The recorder
 * used to keep ten arrays indexed by id, 68 bytes per id ever allocated: docs/recorder.md,
 * "Graph mode's memory".)
 *
 * Walks never look ids up (a lookup in a packed leaf is a call and a population count): the
 * generation lists, the edges' ends (G.ensrc, G.endst), G.objs and the work lists hold records.
 *
 * Invariants: nd(id) != NULL iff id has a record, and then nd(id)->id == id; a dead id's table
 * slot is NULL and its record's id NIL until the record is reused for another id. Lists that may
 * still name dead ids skip them, which the arrays used to read as zero: untyped looks its ids
 * up; young, dying, flagged and survivors pair each id with its record (see pvec_t). Table slot
 * pointers (hr_idtab_get) are valid only until the next put or release. */
typedef struct node {
    uintptr_t obj;    /* PyObject address; 0 in a lost block's record; free list link when free */
    int64_t ext;      /* external count as written (truth_ext: less rule 4's pin) */
    vec_t out, in;    /* edge ids */
    int64_t scratch;  /* gc_refs / cascade count / edges going: 0 between computations */
    struct node *gprev, *gnext; /* neighbours on the mirror's generation list (gen != NOGEN) */
    uint32_t id;      /* the object's id; NIL while the record is free */
    uint16_t mark;    /* M_* */
    uint8_t gen;      /* the mirror's generation, NOGEN when on no list */
    uint8_t lost;     /* 1: reclaimed by the replay while CPython kept the block; 2: untyped */
} node_t;
_Static_assert(sizeof(node_t) == 80, "the docs count 80 bytes per object record");

#define NODE_CHUNK 4096 /* records per chunk: 320 KiB */

/* Records of live objects. Work lists that live only inside one reconciliation hold records
 * alone (no object is freed or allocated there, so no record goes or is reused meanwhile).
 * Lists that outlive it (young, dying, flagged, survivors) pair each id with the record it had
 * (vec_t + pvec_t, same index): the record is still the id's iff rec->id == id (node_drop sets
 * id to NIL, a reused record has its new object's id), which is nd(id) without the lookup. */
typedef struct pvec {
    node_t **v;
    uint32_t len, cap;
} pvec_t;

static struct graph {
    hr_idtab_t ids;   /* node_t * per id with a record */
    node_t *free_nodes;
    node_t **chunks;  /* owned: mmap'd chunks of NODE_CHUNK records */
    size_t nchunks, carved; /* chunks; records carved from the newest */
    size_t nodes, peak_nodes;
    /* the mirror's generation lists */
    node_t *ghead[4]; /* generations 0..2 and PERM */
    /* edges: ends (ids, and their records: walks need no id lookups), positions in the lists */
    uint32_t *esrc, *edst, *epos_out, *epos_in;
    node_t **ensrc, **endst;
    size_t ecap, enext;
    vec_t efree;
    hr_idmap_t objs;  /* PyObject address -> id */
    hr_idmap_t tmap;  /* type address -> type id + 1 */
    uint32_t ntypes, unknown_type;
    int in_collection;
    int merged;         /* CPython's younger lists are merged into the collected one already */
    int freelist_phase; /* PHASE "gc.freelists" written in the collection in progress */
    uint64_t gc_deaths_base; /* s_gc_deaths when the collection in progress was committed */
    pthread_t coll_thread;   /* the thread running it (committed there) */
    /* uncounted garbage (see there): the collection in progress will say when it starts freeing
     * its garbage (fin_armed), it has (fin_done); found garbage that died before (fin_pending) */
    int fin_armed, fin_done;
    uint64_t fin_pending;
    /* GC allocations written since the GC_BEGIN of the collection in progress (see
     * hr_rec_graph_free: the count its garbage's frees lower) */
    uint64_t coll_gc_allocs;
    /* a reconciled collection not yet committed (prepared), and the one in progress */
    int prepared_gen;  /* -1: none */
    vec_t dying;       /* predicted to be reclaimed by the prepared collection */
    uint32_t dying_found; /* dying[0..dying_found): the garbage its collector finds if still
                             young (the rest: its cascade, which may hold young objects too) */
    vec_t flagged;     /* reclaimed by the replay at the collection in progress */
    vec_t survivors;   /* moved on by the collection in progress (to survivors_gen) */
    pvec_t dyingn, flaggedn, survivorsn; /* their records */
    int survivors_gen;
    pvec_t older;      /* young in the mirror, tracked in an older generation by CPython */
    pvec_t clamped;    /* objects whose real count is below their in-links (flush_refresh) */
    int collect_clamped;
    vec_t young, removed;
    pvec_t youngn;     /* young's records */
    pvec_t members, touched, work, seen;
    vec_t scratch_ids;
    vec_t untyped;     /* objects allocated before their type was set */
    uint64_t s_premature, s_clamped, s_traversed, s_links, s_unlinks, s_incref, s_decref,
        s_gc_deaths, s_rc_deaths, s_untyped, s_freelisted, s_lost, s_lost_frees, s_cascade,
        s_prepared, s_discarded, s_rounds, s_untraversable, s_unreadable, s_freelist_clears,
        s_track, s_untrack, s_untrack_survivor, s_older, s_unknown_listed,
        s_revived, s_subclass_entries, s_refreshed, s_unpinned, s_repinned, s_wrcb, s_fin,
        s_fin_kept, s_fin_armed, s_fin_unsignalled, s_gc_del, s_fin_resurrected,
        s_subclass_relinks, s_code;
} G;

/* The record of id, or NULL when it has none. (G.objs maps object addresses to records.) */
static inline node_t *nd(uint64_t id)
{
    node_t **pp = hr_idtab_get_sized(&G.ids, id, sizeof(node_t *));
    return pp ? *pp : NULL;
}

/* The record of an id that certainly has one (an edge's ends, a member of the round). */
static inline node_t *ND(uint64_t id)
{
    return *(node_t **)hr_idtab_get_sized(&G.ids, id, sizeof(node_t *));
}

/* A fresh record for a new id (fields as the arrays' fill was: zero, gen NOGEN), or NULL. */
static node_t *node_new(uint64_t id)
{
    node_t *n = G.free_nodes;
    if (n) {
        G.free_nodes = (node_t *)n->obj;
    } else {
        if (G.nchunks == 0 || G.carved == NODE_CHUNK) {
            node_t **c = realloc(G.chunks, (G.nchunks + 1) * sizeof *c);
            if (!c)
                return NULL;
            G.chunks = c;
            void *p = mmap(NULL, NODE_CHUNK * sizeof(node_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
            G.chunks[G.nchunks++] = p;
            G.carved = 0;
        }
        n = G.chunks[G.nchunks - 1] + G.carved++;
    }
    node_t **pp = hr_idtab_put(&G.ids, id);
    if (!pp) {
        n->obj = (uintptr_t)G.free_nodes;
        G.free_nodes = n;
        return NULL;
    }
    *pp = n;
    *n = (node_t){.id = (uint32_t)id, .gen = NOGEN};
    if (++G.nodes > G.peak_nodes)
        G.peak_nodes = G.nodes;
    return n;
}

/* id's record goes (its edge lists already released, its scratch 0): the table forgets it, the
 * record is reused. pp: id's table slot if the caller has it (no put or release since), or
 * NULL. */
static void node_drop(uint64_t id, node_t *n, node_t **pp)
{
    if (!pp)
        pp = hr_idtab_get_sized(&G.ids, id, sizeof(node_t *));
    *pp = NULL; /* dead, for the table's compaction */
    hr_idtab_release(&G.ids, id);
    n->id = NIL; /* a paired list's entry (see pvec_t) no longer matches */
    n->obj = (uintptr_t)G.free_nodes;
    G.free_nodes = n;
    G.nodes--;
}

/* Edge lists start with 16 slots from a pool of such buffers, given back when their object
 * dies (vec_release): otherwise every new object's first link cost a malloc and every dead
 * object's lists stayed allocated. */
static uint32_t *pool16;

static uint32_t *pool_take(void)
{
    uint32_t *p = pool16;
    if (!p)
        return malloc(16 * sizeof *p);
    memcpy(&pool16, p, sizeof pool16);
    return p;
}

static void vec_release(vec_t *v)
{
    if (v->cap == 16) {
        memcpy(v->v, &pool16, sizeof pool16);
        pool16 = v->v;
    } else {
        free(v->v);
    }
    *v = (vec_t){0};
}

static int vgrow(vec_t *v)
{
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    uint32_t *p = v->cap ? realloc(v->v, cap * sizeof *p) : pool_take();
    if (!p) {
        R.sink.off = 1;
        return -1;
    }
    v->v = p, v->cap = cap;
    return 0;
}

static inline int vpush(vec_t *v, uint32_t x)
{
    if (HR_UNLIKELY(v->len == v->cap) && vgrow(v))
        return -1;
    v->v[v->len++] = x;
    return 0;
}

static int pgrow(pvec_t *v)
{
    uint32_t cap = v->cap ? v->cap * 2 : 64;
    node_t **p = realloc(v->v, cap * sizeof *p);
    if (!p) {
        R.sink.off = 1;
        return -1;
    }
    v->v = p, v->cap = cap;
    return 0;
}

static inline int ppush(pvec_t *v, node_t *n)
{
    if (HR_UNLIKELY(v->len == v->cap) && pgrow(v))
        return -1;
    v->v[v->len++] = n;
    return 0;
}
/* {==== the mirror's generation lists ==== */

static void gen_add(node_t *n, int g)
{
    n->gen = (uint8_t)g;
    n->gprev = NULL;
    n->gnext = G.ghead[g];
    if (G.ghead[g])
        G.ghead[g]->gprev = n;
    G.ghead[g] = n;
}

static void gen_remove(node_t *n)
{
    int g = n->gen;
    if (g == NOGEN)
        return;
    if (n->gprev)
        n->gprev->gnext = n->gnext;
    else
        G.ghead[g] = n->gnext;
    if (n->gnext)
        n->gnext->gprev = n->gprev;
    n->gen = NOGEN;
}

/* gc.freeze(): the mirror's generations join its permanent one (which predictions never look
 * at), as the replay's do on GC_CONTROL freeze; gc.unfreeze(): the permanent generation joins
 * generation 2. Collections then compare the mirror with CPython's lists as always. */
void hr_rec_graph_freeze(int freeze)
{
    for (int g = 0; g < (freeze ? 3 : 1); g++) {
        int from = freeze ? g : PERM, to = freeze ? PERM : 2;
        while (G.ghead[from]) {
            node_t *n = G.ghead[from];
            gen_remove(n);
            gen_add(n, to);
        }
    }
}

/* {==== edges ==== */

static uint32_t edge_new(uint32_t s, node_t *ns, uint32_t t, node_t *nt)
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
            if (d)
                G.epos_in = d;
            node_t **f = d ? realloc(G.ensrc, cap * sizeof *f) : NULL;
            if (f)
                G.ensrc = f;
            node_t **h = f ? realloc(G.endst, cap * sizeof *h) : NULL;
            if (!h) {
                R.sink.off = 1;
                return UINT32_MAX;
            }
            G.endst = h;
            G.ecap = cap;
        }
        e = (uint32_t)G.enext++;
    }
    G.esrc[e] = s, G.edst[e] = t;
    G.ensrc[e] = ns, G.endst[e] = nt;
    G.epos_out[e] = ns->out.len;
    G.epos_in[e] = nt->in.len;
    vpush(&ns->out, e);
    vpush(&nt->in, e);
    return e;
}

static void edge_del(uint32_t e)
{
    vec_t *o = &G.ensrc[e]->out, *i = &G.endst[e]->in;
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
    hr_idtab_init(&G.ids, sizeof(node_t *));
    hr_idtab_compact(&G.ids, 0, ~(uint64_t)0); /* no table slot pointer is held across calls */
    if (hr_idmap_init_direct(&G.objs) || hr_idmap_init(&G.tmap, 10))
        return hr_err_set(err, HR_ENOMEM, "cannot allocate the graph recorder's tables");
    G.unknown_type = UINT32_MAX;
    G.prepared_gen = -1;
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

/* A class and the class created later at its address are different types: the type table's
 * entry for an address lasts as long as the type object (before 2026-11-23 it lasted for the
 * whole recording, and every later class at the address had the first one's name). */
void hr_rec_graph_type_freed(uintptr_t t) { hr_idmap_take(&G.tmap, t, NULL, NULL); }

/* {==== allocation, move ==== */

/* Write ALLOC (`object`, typed with t's name, or `(uninitialised)` for NULL) of the next id for
 * the object at op in `block`, and give it a record (external count 1) and its place in the
 * address maps (the block's flags: the ALLOC's and `map_extra`). NULL when the sink is off or
 * goes off here (no memory). */
static node_t *new_object(uintptr_t block, uintptr_t op, uint64_t size, unsigned flags,
                          unsigned map_extra, PyTypeObject *t)
{
    uint64_t id = hr_trace_writer_next_id(R.sink.w);
    hr_event_t ev = {.op = HR_OP_ALLOC, .domain = HR_DOMAIN_OBJ,
                     .flags = (uint8_t)(flags | HR_F_OBJECT | HR_F_TYPED), .tag = type_id(t),
                     .a = id, .b = size};
    node_t *n;
    if (R.sink.off || id >= NIL || hr_rec_emit(&ev) || !(n = node_new(id))) {
        R.sink.off = 1;
        return NULL;
    }
    hr_idmap_put(&R.map, block, id, ev.flags | map_extra);
    hr_idmap_put(&G.objs, op, (uintptr_t)n, 0);
    n->obj = op;
    n->ext = 1;
    n->lost = t ? 0 : 2;
    return n;
}

void hr_rec_graph_alloc(uintptr_t block, uint64_t size, unsigned flags, int uninitialised)
{
    if (R.sink.off)
        return;
    /* The block of an object whose allocation started a collection holds its previous
     * occupant's bytes (a dead object of another type in the same size class, say a Node where
     * a dict is being allocated): reading a type there would place the object at the wrong
     * offset, so that no traversal ever finds it. */
    size_t pre = 0;
    PyTypeObject *t = uninitialised ? NULL : hr_rec_gc_block_type(block, size, &pre);
    if (!t)
        G.s_untyped++;
    /* An object whose type is not yet set (a collection started inside its allocation) is
     * assumed to have the common 16-byte pre-header. */
    node_t *n = new_object(block, block + (pre ? pre : 16), size, flags,
                           pre == 32 ? HR_REC_F_PRE32 : 0, t);
    if (!n)
        return;
    if (!t)
        vpush(&G.untyped, n->id);
    if (flags & HR_F_GC) {
        gen_add(n, 0); /* the replay tracks it after any collection it triggers */
        G.coll_gc_allocs++;
    }
}

/* {==== code objects ====
 *
 * A code object is not a GC object in 3.11 (no tp_traverse, never tracked), but it holds GC
 * objects: its constants (a tuple, which may hold tuples, frozensets and other code objects), its
 * names and local names (tuples of strings: untracked by CPython, but GC objects). When a class
 * or a module's functions die as cycle garbage, CPython frees their code objects by counting
 * inside the collection, and with them those tuples. Were the code object a plain block, its
 * references would be external counts of the tuples, and the trace would kill the tuples by
 * counting where the replay's collector must. So code objects are objects of the graph: ALLOC
 * with `object` and without `gc` (the replay counts them like any object and never tracks them,
 * as CPython), their references read from the fields (code_traverse) wherever the
 * reconciliation traverses them: when they are about to die with a collection's garbage
 * (predict's cascade) or their counts fall below their in-links. Between those points their
 * links are as old as the last traversal, like every object's. */
void hr_rec_graph_alloc_code(uintptr_t block, uint64_t size, unsigned flags)
{
    if (new_object(block, block, size, flags, 0, &PyCode_Type))
        G.s_code++;
}

/* What a code object holds (the PyObject fields of PyCodeObject in 3.11). */
static void code_traverse(PyCodeObject *co, visitproc v, void *arg)
{
    PyObject *f[] = {co->co_consts,           co->co_names,    co->co_exceptiontable,
                     co->co_localsplusnames,  co->co_localspluskinds, co->co_filename,
                     co->co_name,             co->co_qualname, co->co_linetable,
                     co->_co_code};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i])
            v(f[i], arg);
}

void hr_rec_graph_gc_begin(void) { G.coll_gc_allocs = 0; }

void hr_rec_graph_moved(uintptr_t old_block, uintptr_t new_block, uint64_t id)
{
    node_t *n = nd(id);
    uintptr_t op = n ? n->obj : 0;
    if (!op)
        return;
    hr_idmap_take(&G.objs, op, NULL, NULL);
    op = op - old_block + new_block;
    hr_idmap_put(&G.objs, op, (uintptr_t)n, 0);
    n->obj = op;
}

/* {==== counts ==== */

static void emit_edge(int op, uint32_t s, uint32_t t)
{
    hr_event_t ev = {.op = (uint8_t)op, .a = s, .b = t};
    hr_rec_emit(&ev);
}

/* The external count the shadow believes true: ext less rule 4's pin. */
static inline int64_t truth_ext(const node_t *n)
{
    return n->ext - ((n->mark & M_PINNED) != 0);
}

/* Move n's written external count towards the true count `target` (>= 0), only upwards or only
 * downwards (callers order increases before decreases so that no count passes through 0). Rule
 * 4: a true count of 0 is written as 1 (pinned), unless `to_zero` (the object dies at this
 * point, or is predicted garbage of the collection being prepared). */
static void put_ext_(node_t *n, int64_t target, int increases, int to_zero)
{
    uint32_t id = n->id;
    int64_t want = target > 0 || to_zero ? target : 1;
    while (increases && n->ext < want) {
        hr_rec_emit_id(HR_OP_INCREF, id);
        n->ext++;
        G.s_incref++;
    }
    while (!increases && n->ext > want) {
        hr_rec_emit_id(HR_OP_DECREF, id);
        n->ext--;
        G.s_decref++;
    }
    if (n->ext == want)
        n->mark = want != target ? (uint16_t)(n->mark | M_PINNED)
                                 : (uint16_t)(n->mark & ~M_PINNED);
}

static inline void put_ext(node_t *n, int64_t target, int increases)
{
    put_ext_(n, target, increases, 0);
}

/* op's type if it is one the recorder has learned (a GC type whose objects it places), or NULL. */
static PyTypeObject *learned_type(PyObject *op)
{
    return hr_rec_type_pre((uintptr_t)Py_TYPE(op)) ? Py_TYPE(op) : NULL; /* pre-header 16 or 32 */
}

/* Is op a class defined at run time (a heap type)? */
static int is_heap_type(PyObject *op)
{
    return PyType_Check(op) && (((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE);
}

/* Is id's memory recognisably an object now? An object allocated while a collection started
 * inside its link had no type yet and was assumed to have a 16-byte pre-header; once it is
 * initialised the real position is known. */
static int obj_ok(node_t *n)
{
    PyObject *op = (PyObject *)n->obj;
    if (HR_UNLIKELY(n->lost == 2)) {
        size_t pre = 0;
        if (hr_rec_gc_block_type(n->obj - 16, 64, &pre)) {
            n->lost = 0;
            if (pre == 32) {
                hr_idmap_take(&G.objs, n->obj, NULL, NULL);
                n->obj += 16;
                hr_idmap_put(&G.objs, n->obj, (uintptr_t)n, 0);
                op = (PyObject *)n->obj;
            }
        }
    }
    return Py_REFCNT(op) >= 0 && (uint64_t)Py_REFCNT(op) < ((uint64_t)1 << 32) &&
           (learned_type(op) || PyCode_Check(op));
}

/* The external count that makes id's shadow count equal its real refcount, given that
 * `in_less` of its in-edges are about to go. The block is allocated, so the count stays at
 * least 1 (rule 1): ob_refcnt 0 means a free list holds the object. */
static int64_t wanted_ext(node_t *n, uint32_t in_less)
{
    if (HR_UNLIKELY(!obj_ok(n))) {
        G.s_unreadable++;
        return truth_ext(n); /* not readable as an object: no correction */
    }
    Py_ssize_t rc = Py_REFCNT((PyObject *)n->obj);
    if (rc <= 0) {
        rc = 1;
        G.s_freelisted++;
    }
    int64_t w = (int64_t)rc - (int64_t)(n->in.len - in_less);
    if (w < 0) {
        G.s_clamped++;
        if (G.collect_clamped)
            ppush(&G.clamped, n);
        w = 0;
    }
    return w;
}

/* {==== reconciliation ==== */

static void touch(node_t *n)
{
    if (!(n->mark & M_TOUCHED)) {
        n->mark |= M_TOUCHED;
        ppush(&G.touched, n);
    }
}

/* {==== references tp_traverse does not report: a class's entries in its bases' subclass lists

 * A heap type S is entered into each base B's tp_subclasses (a dict: S's address as an int ->
 * a weak reference W to S, held only by that dict), and S's deallocation deletes those entries
 * (remove_all_subclasses), which frees W. So W lives exactly as long as S: when S is cycle
 * garbage, CPython frees W inside the collection, while pure counting (which never deallocates
 * S) would keep it. The graph says so: W is linked from S, not from the dict.
 *
 * The dict D itself (held by B alone, through tp_subclasses, which type_traverse does not
 * report either) is freed when its last entry goes (remove_subclass), or with B. Every subclass
 * holds B, so D lives exactly as long as B has a subclass: the graph links D from one of them,
 * its holder (any subclass that finds D without one at its traversal; a static base's D too,
 * since it can empty as well), and D's external count is 0. When the holder dies by counting,
 * rule 2 gives D its count back (ext 1) until another subclass's traversal links it again. When
 * the holder is garbage of a collection being prepared and another subclass lives on, the link
 * moves to a living one first (relink_subclass_dicts), so that the replay frees D when CPython
 * does: with the last subclass, inside the collection, which pure counting would never do. */

/* The record of the object at op in the shadow, or NULL. */
static node_t *obj_node(const void *op)
{
    uint64_t v;
    return op && hr_idmap_get(&G.objs, (uintptr_t)op, &v, NULL) ? (node_t *)(uintptr_t)v : NULL;
}

/* Is op (a dict) the tp_subclasses of one of type t's bases? */
static int subclass_dict_of(PyObject *t, PyObject *op)
{
    if (!t || !PyType_Check(t))
        return 0;
    PyObject *bases = ((PyTypeObject *)t)->tp_bases;
    if (!bases || !PyTuple_CheckExact(bases))
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(bases); i++) {
        PyObject *b = PyTuple_GET_ITEM(bases, i);
        if (PyType_Check(b) && ((PyTypeObject *)b)->tp_subclasses == op)
            return 1;
    }
    return 0;
}

/* Is W (reported by dict D's traversal) an entry of a subclass list: a weak reference to a heap
 * type S one of whose bases has D as its tp_subclasses? */
static int subclass_entry(PyObject *d, PyObject *w)
{
    if (!PyWeakref_CheckRefExact(w))
        return 0;
    PyObject *s = PyWeakref_GET_OBJECT(w);
    return s && is_heap_type(s) && subclass_dict_of(s, d);
}

/* The subclass holding subclass-list dict dn in the graph (below), or NULL. */
static node_t *subclass_dict_holder(const node_t *dn)
{
    if (!dn->obj || dn->lost || !PyDict_CheckExact((PyObject *)dn->obj))
        return NULL;
    for (uint32_t k = 0; k < dn->in.len; k++) {
        node_t *h = G.ensrc[dn->in.v[k]];
        if (h->obj && !h->lost && subclass_dict_of((PyObject *)h->obj, (PyObject *)dn->obj))
            return h;
    }
    return NULL;
}

static int visit(PyObject *op, void *arg)
{
    node_t *n = obj_node(op);
    if (n && !(arg && PyDict_CheckExact((PyObject *)arg) && subclass_entry(arg, op)))
        vpush(&G.scratch_ids, n->id);
    return 0;
}

/* Is d a subclass-list entry (linked from its class by visit_subclass_entries) or the
 * __slots__ tuple (ht_slots, linked from its class by traverse_obj) of a class the collection
 * being prepared reclaims? CPython's collector does not see those references, so to it they are
 * external: such an object is reachable, not garbage found, and dies with the class by
 * counting. The replay sees a link: the object leaves the young set (prepare), so that it too
 * frees the object with the class by counting. */
static int entry_of_dying_class(node_t *n)
{
    PyObject *w = (PyObject *)n->obj;
    if (n->lost || n->in.len == 0)
        return 0;
    if (PyTuple_CheckExact(w)) {
        for (uint32_t k = 0; k < n->in.len; k++) {
            node_t *s = G.ensrc[n->in.v[k]];
            PyObject *t = (PyObject *)s->obj;
            if (t && !s->lost && (s->mark & M_DYING) && is_heap_type(t) &&
                ((PyHeapTypeObject *)t)->ht_slots == w)
                return 1;
        }
        return 0;
    }
    if (PyDict_CheckExact(w)) { /* a subclass list whose holder dies (relinked if it can) */
        node_t *h = subclass_dict_holder(n);
        return h && (h->mark & M_DYING);
    }
    if (!PyWeakref_CheckRefExact(w))
        return 0;
    PyObject *t = PyWeakref_GET_OBJECT(w); /* before any call: its assert needs no proxy types */
    if (!is_heap_type(t))
        return 0;
    /* the entry may have several in-links: one weak reference stands for a class in the
     * subclass lists of all its bases (class E(str, Enum)), and weakref.ref(cls) returns it */
    for (uint32_t k = 0; k < n->in.len; k++) {
        node_t *s = G.ensrc[n->in.v[k]];
        if (s->obj == (uintptr_t)t)
            return (s->mark & M_DYING) != 0;
    }
    return 0;
}

/* Subclass-list dicts the collection being prepared would reclaim with their holder while
 * another subclass lives on: the link moves to that one (LINK first, the UNLINK queued, so the
 * dict's count never passes 0). Returns whether any moved (the prediction must be made again). */
static int relink_subclass_dicts(void)
{
    int moved = 0;
    for (uint32_t k = 0; k < G.dyingn.len; k++) {
        node_t *dn = G.dyingn.v[k];
        node_t *h = subclass_dict_holder(dn);
        if (!h || !(h->mark & M_DYING))
            continue;
        PyObject *d = (PyObject *)dn->obj, *key, *w;
        Py_ssize_t pos = 0;
        node_t *to = NULL;
        while (!to && PyDict_Next(d, &pos, &key, &w)) {
            if (!PyWeakref_CheckRefExact(w))
                continue;
            PyObject *t = PyWeakref_GET_OBJECT(w);
            node_t *tn = (uintptr_t)t != h->obj && PyType_Check(t) ? obj_node(t) : NULL;
            if (tn && !tn->lost && !(tn->mark & M_DYING) && subclass_dict_of(t, d))
                to = tn;
        }
        if (!to)
            continue;
        emit_edge(HR_OP_LINK, to->id, dn->id);
        if (edge_new(to->id, to, dn->id, dn) == UINT32_MAX)
            return 0;
        G.s_links++;
        for (uint32_t j = 0; j < dn->in.len; j++)
            if (G.ensrc[dn->in.v[j]] == h) {
                vpush(&G.removed, dn->in.v[j]);
                break;
            }
        touch(dn);
        G.s_subclass_relinks++;
        moved = 1;
    }
    return moved;
}

/* The entries of heap type s in its bases' subclass lists (PyDict_Next allocates nothing). */
static void visit_subclass_entries(PyTypeObject *s)
{
    PyObject *bases = s->tp_bases;
    if (!bases || !PyTuple_CheckExact(bases))
        return;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(bases); i++) {
        PyObject *b = PyTuple_GET_ITEM(bases, i), *d, *k, *w;
        if (!PyType_Check(b) || !(d = ((PyTypeObject *)b)->tp_subclasses) ||
            !PyDict_CheckExact(d))
            continue;
        Py_ssize_t pos = 0;
        while (PyDict_Next(d, &pos, &k, &w))
            if (PyWeakref_CheckRefExact(w) && PyWeakref_GET_OBJECT(w) == (PyObject *)s) {
                visit(w, NULL);
                G.s_subclass_entries++;
                break;
            }
        /* the dict itself, if it has no holder yet or s is it */
        node_t *dn = obj_node(d);
        if (dn) {
            node_t *h = subclass_dict_holder(dn);
            if (!h || h->obj == (uintptr_t)s)
                visit(d, NULL);
        }
    }
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

/* Sorting the few edges of one object: insertion sort below 16 (most objects), qsort above. */
static void sort_u32(uint32_t *v, uint32_t n)
{
    if (n > 16) {
        qsort(v, n, sizeof *v, cmp_u32);
        return;
    }
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i, x = v[i]; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1], v[j - 1] = x;
}

static void sort_u64(uint64_t *v, uint32_t n)
{
    if (n > 16) {
        qsort(v, n, sizeof *v, cmp_u64);
        return;
    }
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* A buffer of n uint64_t reused from call to call (traverse_obj runs for every object a
 * collection looks at: a malloc and free each time cost more than the traversal). */
static uint64_t *scratch_u64(size_t n)
{
    static uint64_t *buf;
    static size_t cap;
    if (n > cap) {
        size_t c = cap ? cap : 64;
        while (c < n)
            c *= 2;
        uint64_t *p = realloc(buf, c * sizeof *p);
        if (!p)
            return NULL;
        buf = p, cap = c;
    }
    return buf;
}

/* Make id's out-edges what tp_traverse reports among recorded objects (nothing for an object
 * with ob_refcnt 0: it sits on a free list or is being deallocated and holds nothing): LINK new
 * ones at once, queue gone ones in G.removed; targets whose in-edges change are touched. */
static void traverse_obj(node_t *n)
{
    uint32_t id = n->id;
    PyObject *op;
    n->mark |= M_DONE_TRAV;
    if (!(n->mark & M_LISTED) && !obj_ok(n)) {
        /* Not tracked by CPython and not recognisably an object of a known GC type (its type
         * may have been guessed wrong): its links stay as they are. */
        G.s_untraversable++;
        return;
    }
    op = (PyObject *)n->obj;
    G.s_traversed++;
    G.scratch_ids.len = 0;
    if (Py_REFCNT(op) > 0) {
        traverseproc tr = Py_TYPE(op)->tp_traverse;
        if (tr)
            tr(op, visit, op);
        else if (PyCode_Check(op))
            code_traverse((PyCodeObject *)op, visit, op);
        if (is_heap_type(op)) {
            visit_subclass_entries((PyTypeObject *)op);
            /* its __slots__ names (ht_slots): a tuple only the class holds, which
             * type_traverse does not report (see entry_of_dying_class) */
            if (((PyHeapTypeObject *)op)->ht_slots)
                visit(((PyHeapTypeObject *)op)->ht_slots, NULL);
        }
    }
    if (G.scratch_ids.len > 1)
        sort_u32(G.scratch_ids.v, G.scratch_ids.len);
    vec_t *o = &n->out;
    uint32_t no = o->len;
    if (!no && !G.scratch_ids.len)
        return;
    uint64_t *old = no ? scratch_u64(no) : NULL;
    if (no && !old) {
        R.sink.off = 1;
        return;
    }
    for (uint32_t k = 0; k < no; k++)
        old[k] = (uint64_t)G.edst[o->v[k]] << 32 | o->v[k];
    if (no > 1)
        sort_u64(old, no);
    uint32_t x = 0, y = 0;
    while (x < G.scratch_ids.len || y < no) {
        uint32_t nt = x < G.scratch_ids.len ? G.scratch_ids.v[x] : NIL;
        uint32_t ot = y < no ? (uint32_t)(old[y] >> 32) : NIL;
        if (nt == ot) {
            x++, y++;
        } else if (nt < ot) {
            node_t *t = ND(nt);
            emit_edge(HR_OP_LINK, id, nt);
            edge_new(id, n, nt, t);
            touch(t);
            G.s_links++;
            x++;
        } else {
            vpush(&G.removed, (uint32_t)old[y]);
            touch(G.endst[(uint32_t)old[y]]);
            y++;
        }
    }
}

/* Write the ext corrections of every touched object and the queued unlinks: increases first,
 * then the unlinks, then decreases, so no live object's count passes through 0. */
static void flush_touched(void)
{
    for (uint32_t r = 0; r < G.removed.len; r++)
        G.endst[G.removed.v[r]]->scratch++;
    for (uint32_t k = 0; k < G.touched.len; k++) {
        node_t *n = G.touched.v[k];
        if (n->obj)
            put_ext(n, wanted_ext(n, (uint32_t)n->scratch), 1);
    }
    for (uint32_t r = 0; r < G.removed.len; r++) {
        uint32_t e = G.removed.v[r];
        G.endst[e]->scratch = 0;
        emit_edge(HR_OP_UNLINK, G.esrc[e], G.edst[e]);
        G.s_unlinks++;
        edge_del(e);
    }
    G.removed.len = 0;
    for (uint32_t k = 0; k < G.touched.len; k++) {
        node_t *n = G.touched.v[k];
        if (n->obj)
            put_ext(n, wanted_ext(n, 0), 0);
        n->mark = (uint16_t)((n->mark & ~M_TOUCHED) | M_DONE_EXT);
    }
    G.touched.len = 0;
}

/* flush_touched, then the stale links: an object whose real count is below its in-links is
 * linked from objects that have let go of it since they were last traversed (typically a
 * container that now sits on a free list and holds nothing, rule 1). Traverse those sources
 * too, and flush again, until no count is clamped for a source not yet traversed. */
static void add_member(node_t *n);

static void flush_refresh(void)
{
    G.collect_clamped = 1;
    for (;;) {
        G.clamped.len = 0;
        flush_touched();
        int more = 0;
        for (uint32_t k = 0; k < G.clamped.len; k++) {
            node_t *nt = G.clamped.v[k];
            for (uint32_t j = 0; nt->obj && j < nt->in.len; j++) {
                node_t *ns = G.ensrc[nt->in.v[j]];
                if (!(ns->mark & M_DONE_TRAV) && ns->obj) {
                    add_member(ns);
                    traverse_obj(ns);
                    touch(ns);
                    touch(nt);
                    G.s_refreshed++;
                    more = 1;
                }
            }
        }
        if (!more)
            break;
    }
    G.clamped.len = 0;
    G.collect_clamped = 0;
}

/* {==== deaths by reference counting ==== */

/* Is `op`, about to be freed, being freed by a full collection's free-list clearing
 * (clear_freelists: _PyTuple_ClearFreeList, _PyList_ClearFreeList, _PyDict_ClearFreeList)?
 * Exact from the interpreter's state, because a deallocation pushes an exact tuple, list or dict
 * onto its free list whenever there is room, and frees it only when the list is full:
 *   tuple of size n (1..PyTuple_NFREELISTS): the clearing empties free_list[n-1] (head NULL,
 *     numfree 0) before it walks and frees the entries; a full list has numfree 2000;
 *   list, dict: the clearing pops free_list[--numfree] and frees it, so the object is still
 *     at free_list[numfree] (numfree < max); a full list has numfree == max.
 * The async-generator and contextvars free lists are not recognised (rare; their objects are
 * written as deaths by counting inside the collection). */
static int freelist_clearing(PyObject *op)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    if (!in || Py_REFCNT(op) != 0) /* the block is allocated: its header is readable */
        return 0;
    PyTypeObject *t = Py_TYPE(op);
    if (t == &PyTuple_Type) {
        Py_ssize_t n = Py_SIZE(op);
        return n >= 1 && n <= PyTuple_NFREELISTS && in->tuple.numfree[n - 1] == 0 &&
               in->tuple.free_list[n - 1] == NULL;
    }
    if (t == &PyList_Type)
        return in->list.numfree >= 0 && in->list.numfree < PyList_MAXFREELIST &&
               in->list.free_list[in->list.numfree] == (PyListObject *)op;
    if (t == &PyDict_Type)
        return in->dict_state.numfree >= 0 && in->dict_state.numfree < PyDict_MAXFREELIST &&
               in->dict_state.free_list[in->dict_state.numfree] == (PyDictObject *)op;
    return 0;
}

static void flush_flagged(void);

/* The full collection in progress starts clearing the free lists: every object it frees from
 * now until GC_END is one a free list held (a death by counting, rule 1), never garbage. The
 * garbage the trace has not yet named in DIED (blocks a free list took, or resurrected objects)
 * is named first, so that PHASE "gc.freelists" divides the collection's deaths exactly. */
static void settle_uncounted(int signalled);

static void begin_freelist_phase(void)
{
    settle_uncounted(0); /* delete_garbage is over: before flush_flagged drops the alive */
    flush_flagged();
    hr_rec_emit_str(HR_OP_PHASE, 0, "gc.freelists", strlen("gc.freelists"));
    G.freelist_phase = 1;
    G.s_freelist_clears++;
}

/* {==== weak-reference callbacks a collection runs ====
 *
 * When a collection finds garbage that a weak reference W with a callback points to, and W itself
 * is reachable, CPython 3.11's handle_weakrefs clears W (wr_object = None), takes a reference to
 * it, calls its callback, and drops that reference again; if W dies there (the callback removed
 * it from the set or dict that held it: _abc's registries and caches, WeakValueDictionary,
 * WeakSet, weakref.finalize) CPython adds 1 to the collection's `collected` although W was never
 * garbage. All of that happens after the collector found its garbage and before it frees any of
 * it (finalize_garbage and delete_garbage come after), so every death from the collection's start
 * to the last such W is the callbacks' doing, by reference counting. No replay runs callbacks:
 * the trace writes those deaths as deaths by counting (rule 2), and marks each W with PHASE
 * "gc.wrcb" right after its DIED, so that validate can count W as CPython did and expect the
 * deaths before it from counting (docs/recorder.md, "Weak-reference callbacks a collection
 * runs"). W is recognised at its free, from CPython's own state: a weak reference (a subclass
 * too) with its referent cleared, freed by counting inside a collection, on the thread running
 * it (a callback's Python code lets other threads run, and what they free is not counted),
 * before the collection freed any of its garbage, that had a callback. By then its deallocation
 * has dropped the callback (wr_callback is NULL), so "had a callback" is read from the graph: W
 * still links to it (a callback that stays alive: WeakSet's, WeakValueDictionary's), or the
 * callback died while W was being deallocated (M_CB_RELEASED: _abc's and weakref.finalize's,
 * one per entry). */
static inline int cleared_weakref(PyObject *op)
{
    return PyWeakref_Check(op) && ((PyWeakReference *)op)->wr_object == Py_None;
}

/* A death by counting inside a collection before any of its garbage was freed. Notes on the weak
 * references being deallocated whose callback this object is; returns 1 when the object is a
 * weak reference freed right after its callback ran (above). */
static int callback_phase_death(node_t *n)
{
    /* handle_weakrefs runs on the collecting thread; another thread that got the GIL while a
     * callback ran frees its own objects, which CPython does not count */
    if (!pthread_equal(pthread_self(), G.coll_thread))
        return 0;
    PyObject *op = (PyObject *)n->obj;
    vec_t *in = &n->in;
    for (uint32_t k = 0; k < in->len; k++) {
        node_t *s = G.ensrc[in->v[k]];
        PyObject *so = (PyObject *)s->obj;
        if (s != n && so && Py_REFCNT(so) == 0 && cleared_weakref(so) &&
            ((PyWeakReference *)so)->wr_callback == op)
            s->mark |= M_CB_RELEASED;
    }
    if (!cleared_weakref(op))
        return 0;
    if (n->mark & M_CB_RELEASED)
        return 1;
    /* a weak reference reports only its callback to tp_traverse; a subclass defined in Python
     * also its type (and its slots: KeyedRef's key, which never comes without a callback) */
    vec_t *o = &n->out;
    for (uint32_t k = 0; k < o->len; k++)
        if (G.endst[o->v[k]]->obj != (uintptr_t)Py_TYPE(op))
            return 1;
    return 0;
}

/* {==== uncounted garbage: what dies before the collection frees its garbage ====
 *
 * CPython 3.11's gc_collect_main counts in `collected` (besides handle_weakrefs' weak
 * references, above) only what is still on its unreachable list when delete_garbage starts: it
 * first runs the garbage's finalizers (finalize_garbage: __del__, a suspended generator's
 * close(), ...) and takes out what they made reachable again (handle_resurrected_objects). So
 * garbage a finalizer frees (a generator's close() clears its frame and so frees the locals only
 * it held), garbage that died into a free list, and garbage brought back to life are not
 * counted. No replay runs finalizers: the replay's collector counts all of them. The trace
 * therefore carries, per collection, one PHASE "gc.fin" per garbage object CPython did not count,
 * written where the collection starts freeing its garbage (or at its end), and validate takes the
 * marks off the replay's garbage (docs/recorder.md, "Garbage a collection's own finalizers
 * free").
 *
 * When delete_garbage starts is not visible in the heap, so the recorder watches for it without
 * touching the heap: from the commit of a collection until then, the tp_clear slot of the type
 * of every flagged object holds clear_signal, and delete_garbage's first call through one of
 * them (nothing else calls tp_clear through the slot on garbage: it is unreachable) puts every
 * slot back, tells the recorder, and calls the type's own tp_clear. The slots are put back
 * before anything else runs because heap types' subtype_clear walks its bases while their
 * tp_clear is subtype_clear: a base holding clear_signal would end that walk early and call it
 * again (endless recursion). A type that inherited clear_signal while it was in place (created
 * by a finalizer) gets its base's tp_clear for good at its first call. A patched heap type that
 * dies inside the window is forgotten at its free (clear_slot_gone), so its block is never
 * written; a heap type the recorder has no record of (whose free it would not see) is not
 * patched.
 * Nothing is allocated, and the program's objects, counts and collections are untouched (the
 * record test compares every collection's count with allocation mode's).
 *
 * At the signal, found garbage (M_FOUND: what the replay's collector finds, not the objects it
 * then frees by counting, young or not) freed since the commit (fin_pending), dead into a free
 * list (refcount 0), or brought back to life by a finalizer is uncounted. The last are told by
 * their COLLECTING bit (uncounted_alive). A collection whose delete_garbage never calls a lent
 * slot (its garbage all died before or came back, or none of it has a tp_clear) is settled when
 * delete_garbage is over (the free-list phase of a full collection, or the end): marked when
 * every found object still alive came back; otherwise nothing is marked and
 * graph_fin_unsignalled counts the collection. */
typedef struct clear_slot {
    PyTypeObject *t; /* NULL once the type died */
    inquiry orig;
} clear_slot_t;
static clear_slot_t *cslots; /* the types whose slot was lent at the last commit */
static uint32_t ncslots, cslots_cap;
static int lent; /* their slots hold clear_signal now */

static void emit_fin(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        hr_rec_emit_str(HR_OP_PHASE, 0, "gc.fin", strlen("gc.fin"));
    G.s_fin += n;
}

static void restore_clear_slots(void)
{
    if (!lent) /* put back already: types may have died since (clear_slot_gone stopped) */
        return;
    lent = 0;
    for (uint32_t i = 0; i < ncslots; i++) {
        clear_slot_t *c = &cslots[i];
        if (!c->t)
            continue;
        c->t->tp_clear = c->orig;
    }
}

/* An object is freed while slots are lent: if it is one of those types, never write it again. */
static void clear_slot_gone(uintptr_t obj)
{
    for (uint32_t i = 0; i < ncslots; i++)
        if ((uintptr_t)cslots[i].t == obj)
            cslots[i].t = NULL;
}

static int clear_signal(PyObject *op);

/* A type that copied clear_signal from a base while it was in place: the tp_clear it would have
 * inherited, now that the bases hold theirs again (first in its MRO after itself). */
static inquiry inherited_clear(PyTypeObject *t)
{
    PyObject *mro = t->tp_mro;
    if (mro && PyTuple_Check(mro))
        for (Py_ssize_t i = 1; i < PyTuple_GET_SIZE(mro); i++) {
            PyTypeObject *b = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
            if (b->tp_clear && b->tp_clear != clear_signal)
                return b->tp_clear;
        }
    return NULL;
}

static int clear_signal(PyObject *op)
{
    if (lent) {
        restore_clear_slots();
        hr_rec_delete_begins(); /* rec_python.c: takes the lock, hr_rec_graph_fin_end */
    }
    PyTypeObject *t = Py_TYPE(op);
    if (t->tp_clear == clear_signal)
        t->tp_clear = inherited_clear(t);
    return t->tp_clear ? t->tp_clear(op) : 0;
}

/* At the commit: the tp_clear slots of the flagged objects' types hold clear_signal. */
static void arm_clear_signal(void)
{
    G.fin_armed = G.fin_done = 0;
    G.fin_pending = 0;
    /* only a commit before the collection frees anything: from its gc callback or its probe
     * (at start-up the commit may come after the whole collection ran) */
    if (R.sink.off || lent || !hr_rec_collection_underway())
        return;
    ncslots = 0;
    uint32_t found = 0;
    int broken = 0; /* out of memory: nothing stays patched, the collection is not armed */
    for (uint32_t k = 0; k < G.flagged.len && !broken; k++) {
        node_t *n = G.flaggedn.v[k];
        if (n->id != G.flagged.v[k] || !n->obj || !(n->mark & M_FLAGGED))
            continue;
        found += (n->mark & M_FOUND) != 0;
        PyTypeObject *t = Py_TYPE((PyObject *)n->obj);
        if (!t->tp_clear || t->tp_clear == clear_signal)
            continue;
        /* a heap type can die inside the window: only one whose free the recorder will see */
        if ((t->tp_flags & Py_TPFLAGS_HEAPTYPE) && !hr_idmap_get(&G.objs, (uintptr_t)t, NULL, NULL))
            continue;
        if (ncslots == cslots_cap) {
            uint32_t cap = cslots_cap ? 2 * cslots_cap : 64;
            clear_slot_t *v = realloc(cslots, cap * sizeof *v); /* libc: never through the hooks */
            if (!v) {
                broken = 1;
                break;
            }
            cslots = v, cslots_cap = cap;
        }
        cslots[ncslots++] = (clear_slot_t){t, t->tp_clear};
        t->tp_clear = clear_signal;
        lent = 1;
    }
    if (broken || !found || !ncslots) {
        restore_clear_slots();
        return;
    }
    G.fin_armed = 1;
    G.s_fin_armed++;
}

/* Was t's tp_clear slot lent at the commit of the collection in progress? (A handful of types
 * per collection.) */
static int slot_was_lent(const PyTypeObject *t)
{
    for (uint32_t i = 0; i < ncslots; i++)
        if (cslots[i].t == t)
            return 1;
    return 0;
}

/* The found garbage still alive that CPython will not count: dead into a free list (refcount
 * 0), and brought back to life by a finalizer (*resurrected of them). handle_resurrected_objects
 * took those off the list delete_garbage frees, with their COLLECTING bit clear; everything
 * still on that list has it set. An object delete_garbage already passed has it clear too (it
 * moved on, alive), but only an object whose type's tp_clear is not lent can be passed before
 * the first call through a lent one, and a collection whose delete_garbage never called one
 * passed none of the lent types' objects: so the bit is read only on objects of lent types.
 * *alive: found garbage alive (refcount above 0). */
static uint64_t uncounted_alive(uint64_t *alive, uint64_t *resurrected)
{
    uint64_t u = 0;
    *alive = *resurrected = 0;
    /* gc.DEBUG_SAVEALL: delete_garbage appends every object to gc.garbage and moves it on, bit
     * cleared, without calling tp_clear: the bit tells nothing then */
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    int saveall = !in || (in->gc.debug & GC_DEBUG_SAVEALL);
    for (uint32_t k = 0; k < G.flagged.len; k++) {
        node_t *n = G.flaggedn.v[k];
        if (n->id != G.flagged.v[k] || !n->obj || (n->mark & (M_FLAGGED | M_FOUND)) !=
                                                    (M_FLAGGED | M_FOUND))
            continue;
        PyObject *op = (PyObject *)n->obj;
        if (Py_REFCNT(op) == 0) {
            u++;
            continue;
        }
        (*alive)++;
        const PyGC_Head *h = (const PyGC_Head *)op - 1;
        if (!saveall && n->lost != 2 && h->_gc_next != 0 &&
            !(h->_gc_prev & _PyGC_PREV_MASK_COLLECTING) && slot_was_lent(Py_TYPE(op))) {
            u++;
            (*resurrected)++;
        }
    }
    return u;
}

/* Write the marks of the armed collection in progress, once: `signalled`, delete_garbage is
 * starting; else the collection ends without that, and the marks are written only if every
 * found object still alive was brought back to life (then delete_garbage never reached any of
 * them; the rest died before it or went to a free list). */
static void settle_uncounted(int signalled)
{
    if (!G.in_collection || !G.fin_armed || G.fin_done || R.sink.off)
        return;
    G.fin_done = 1;
    uint64_t alive, resurrected;
    uint64_t kept = uncounted_alive(&alive, &resurrected);
    if (!signalled && alive != resurrected) {
        G.s_fin_unsignalled++;
        return;
    }
    G.s_fin_kept += kept - resurrected;
    G.s_fin_resurrected += resurrected;
    emit_fin(G.fin_pending + kept);
}

void hr_rec_graph_fin_end(void) { settle_uncounted(1); }

void hr_rec_graph_free(uintptr_t block, uint64_t id, unsigned flags)
{
    (void)block;
    node_t **pp = R.sink.off ? NULL : hr_idtab_get_sized(&G.ids, id, sizeof(node_t *));
    node_t *n = pp ? *pp : NULL; /* pp stays valid: nothing below puts or releases ids */
    if (!n)
        return;
    if (n->lost == 1) {
        /* Reclaimed by the replay at a collection while CPython kept the block (a free list);
         * now PyObject_GC_Del takes it off generation 0's count: so must the replay (not for a
         * code object, which is not a GC object). */
        if (flags & HR_F_GC) {
            hr_event_t ev = {.op = HR_OP_GC_CONTROL, .tag = HR_GC_DEL};
            hr_rec_emit(&ev);
        }
        G.s_lost_frees++;
        node_drop(id, n, pp); /* a lost block's record holds nothing else */
        return;
    }
    if (!n->obj)
        return;
    if (G.in_collection && !G.freelist_phase && !(n->mark & M_FLAGGED) &&
        freelist_clearing((PyObject *)n->obj))
        begin_freelist_phase();
    hr_idmap_take(&G.objs, n->obj, NULL, NULL);
    int wrcb = 0; /* a weak reference freed after its callback ran (above) */
    if (HR_UNLIKELY(lent))
        clear_slot_gone(n->obj);
    if (G.in_collection && (n->mark & M_FLAGGED)) {
        G.s_gc_deaths++;
        if ((n->mark & M_FOUND) && G.fin_armed && !G.fin_done && !G.freelist_phase)
            G.fin_pending++; /* freed before the collection frees its garbage: uncounted */
    } else {
        G.s_rc_deaths++;
        if (G.in_collection && !G.freelist_phase && G.s_gc_deaths == G.gc_deaths_base)
            wrcb = callback_phase_death(n);
        /* 1. Targets that stay alive keep their real count once this object's links go. */
        vec_t *o = &n->out;
        for (uint32_t k = 0; k < o->len; k++) {
            node_t *nt = G.endst[o->v[k]];
            if (nt != n)
                nt->scratch++;
        }
        for (uint32_t k = 0; k < o->len; k++) {
            node_t *nt = G.endst[o->v[k]];
            if (nt != n && nt->obj)
                put_ext(nt, wanted_ext(nt, (uint32_t)nt->scratch), 1);
        }
        for (uint32_t k = 0; k < o->len; k++) {
            node_t *nt = G.endst[o->v[k]];
            if (nt != n && nt->obj)
                put_ext(nt, wanted_ext(nt, (uint32_t)nt->scratch), 0);
        }
        for (uint32_t k = 0; k < o->len; k++)
            G.endst[o->v[k]]->scratch = 0;
        /* 2. Its own count goes to 0 at the last of these events. */
        if (n->ext + (int64_t)n->in.len <= 0)
            G.s_premature++;
        vec_t *in = &n->in;
        while (in->len) {
            uint32_t e = in->v[in->len - 1];
            uint32_t s = G.esrc[e];
            if (s != id) {
                emit_edge(HR_OP_UNLINK, s, (uint32_t)id);
                G.s_unlinks++;
            }
            edge_del(e);
        }
        put_ext_(n, 0, 0, 1);
    }
    hr_rec_emit_id(HR_OP_DIED, id);
    if (wrcb) {
        hr_rec_emit_str(HR_OP_PHASE, 0, "gc.wrcb", strlen("gc.wrcb"));
        G.s_wrcb++;
    }
    /* PyObject_GC_Del lowers generation 0's count (if positive) where CPython frees the block.
     * The replay reclaims the garbage of a collection (and what it alone held) at the
     * collection's start, where its count is 0, so that lowers nothing there; CPython frees it
     * later, inside the collection, after finalizers, weak-reference callbacks and other
     * threads may have allocated GC objects (counted: the collection zeroed the counts before).
     * `gc del` puts the decrement where CPython made it. Without a GC allocation since GC_BEGIN
     * the count is 0 on both sides and the event is left out. A revived block (an ALLOC without
     * `gc`) gets it at every free. */
    int flagged = G.in_collection && (n->mark & M_FLAGGED);
    if (flagged ? (flags & HR_F_GC) && G.coll_gc_allocs : (flags & F_REVIVED) != 0) {
        hr_event_t ev = {.op = HR_OP_GC_CONTROL, .tag = HR_GC_DEL};
        hr_rec_emit(&ev);
        G.s_gc_del += flagged;
    }
    while (n->out.len)
        edge_del(n->out.v[n->out.len - 1]);
    while (n->in.len)
        edge_del(n->in.v[n->in.len - 1]);
    gen_remove(n);
    vec_release(&n->out);
    vec_release(&n->in);
    node_drop(id, n, pp);
}

/* {==== collections ==== */

/* Take out of the young set what left it (M_YOUNG cleared, or freed). */
static void young_compact(void)
{
    uint32_t keep = 0;
    for (uint32_t k = 0; k < G.youngn.len; k++) {
        node_t *n = G.youngn.v[k];
        if (n->id == G.young.v[k] && (n->mark & M_YOUNG)) {
            G.young.v[keep] = G.young.v[k];
            G.youngn.v[keep++] = n;
        }
    }
    G.young.len = G.youngn.len = keep;
}

/* The replay's garbage among the young set (G.young, marked M_YOUNG): gc_refs = count minus
 * in-edges from young objects; those with gc_refs > 0 and everything young they reach survive.
 * Then the objects the replay frees by counting once that garbage's links go. Result in G.dying
 * (marked M_DYING). Pure computation on the shadow. */
static void predict(void)
{
    for (uint32_t k = 0; k < G.dyingn.len; k++)
        G.dyingn.v[k]->mark &= (uint16_t)~M_DYING;
    G.dying.len = 0;
    G.dyingn.len = 0;
    pvec_t *y = &G.youngn;
    for (uint32_t k = 0; k < y->len; k++) {
        node_t *n = y->v[k];
        n->scratch = truth_ext(n) + (int64_t)n->in.len;
    }
    for (uint32_t k = 0; k < y->len; k++) {
        vec_t *o = &y->v[k]->out;
        for (uint32_t j = 0; j < o->len; j++) {
            node_t *t = G.endst[o->v[j]];
            if (t->mark & M_YOUNG)
                t->scratch--;
        }
    }
    G.work.len = 0;
    for (uint32_t k = 0; k < y->len; k++) {
        node_t *n = y->v[k];
        if (n->scratch > 0) {
            n->mark |= M_SIM;
            ppush(&G.work, n);
        }
    }
    while (G.work.len) {
        vec_t *o = &G.work.v[--G.work.len]->out;
        for (uint32_t j = 0; j < o->len; j++) {
            node_t *nt = G.endst[o->v[j]];
            if ((nt->mark & (M_YOUNG | M_SIM)) == M_YOUNG) {
                nt->mark |= M_SIM;
                ppush(&G.work, nt);
            }
        }
    }
    for (uint32_t k = 0; k < y->len; k++) {
        node_t *n = y->v[k];
        n->scratch = 0;
        if (n->mark & M_SIM)
            n->mark &= (uint16_t)~M_SIM;
        else {
            n->mark |= M_DYING;
            vpush(&G.dying, n->id);
            ppush(&G.dyingn, n);
        }
    }
    G.dying_found = G.dying.len;
    /* The cascade: targets outside the set whose count falls to 0 as its links go (young ones
     * too: reachable from an older object that only the garbage holds). */
    G.seen.len = 0;
    for (uint32_t k = 0; k < G.dyingn.len; k++) {
        vec_t *o = &G.dyingn.v[k]->out;
        for (uint32_t j = 0; j < o->len; j++) {
            node_t *nt = G.endst[o->v[j]];
            if (nt->mark & M_DYING)
                continue;
            if (!(nt->mark & M_SIM)) {
                nt->mark |= M_SIM;
                nt->scratch = truth_ext(nt) + (int64_t)nt->in.len;
                ppush(&G.seen, nt);
            }
            if (--nt->scratch == 0) {
                nt->mark |= M_DYING;
                vpush(&G.dying, nt->id);
                ppush(&G.dyingn, nt);
                G.s_cascade++;
            }
        }
    }
    for (uint32_t k = 0; k < G.seen.len; k++) {
        node_t *n = G.seen.v[k];
        n->mark &= (uint16_t)~M_SIM;
        n->scratch = 0;
    }
    G.seen.len = 0;
}

static void clear_round(void)
{
    for (uint32_t k = 0; k < G.members.len; k++)
        G.members.v[k]->mark &= (uint16_t)~(M_MEMBER | M_DONE_EXT | M_DONE_TRAV | M_LISTED);
    G.members.len = 0;
}

static void add_member(node_t *n)
{
    if (!(n->mark & M_MEMBER)) {
        n->mark |= M_MEMBER;
        ppush(&G.members, n);
    }
}

/* {==== generation membership ==== */

static void emit_track(uint32_t id, node_t *n, unsigned action, int gen)
{
    hr_event_t ev = {.op = HR_OP_GC_TRACK, .tag = action, .a = id, .b = (uint64_t)(gen < 0 ? 0 : gen)};
    hr_rec_emit(&ev);
    gen_remove(n);
    if (action == HR_TRACK) {
        gen_add(n, gen);
        G.s_track++;
    } else {
        G.s_untrack += action == HR_UNTRACK;
        G.s_untrack_survivor += action == HR_UNTRACK_SURVIVOR;
    }
}

/* Is id's object tracked by CPython now? (Its PyGC_Head sits right before the object, also
 * for managed-dict types, whose two extra words precede the head.) -1: not readable. */
static int cpython_tracked(node_t *n)
{
    if (n->lost == 2)
        return -1;
    PyGC_Head *h = (PyGC_Head *)n->obj - 1;
    return h->_gc_next != 0;
}

/* A lost block (rule 3: the replay reclaimed its object while CPython kept the block on a free
 * list) is a live object again: CPython took it off the free list and tracks it. It becomes a
 * new object of the trace (a new id) so that the replay sees its links: ALLOC with `object` but
 * without `gc` (CPython's count did not move: a free-list pop), then GC_TRACK into the
 * generation CPython keeps it in (the caller's business); its free writes `gc del` after the
 * death (PyObject_GC_Del lowers the count). The replay allocates a block here that CPython did
 * not (it freed one at the collection that CPython did not). */
static int revive(PyObject *op, node_t **out)
{
    uintptr_t gch = (uintptr_t)op - sizeof(PyGC_Head);
    uint64_t old;
    unsigned fl;
    size_t pre = 16;
    if (!hr_idmap_get(&R.map, gch, &old, &fl)) {
        pre = 32;
        if (!hr_idmap_get(&R.map, gch - 16, &old, &fl))
            return 0;
    }
    node_t *no = nd(old);
    PyTypeObject *t = learned_type(op);
    if (!no || no->lost != 1 || !(fl & HR_F_OBJECT) || !t)
        return 0;
    Py_ssize_t items = t->tp_itemsize ? Py_SIZE(op) : 0;
    uint64_t size = pre + (((uint64_t)t->tp_basicsize + (uint64_t)(items < 0 ? -items : items) *
                            (uint64_t)t->tp_itemsize + 7) & ~(uint64_t)7);
    uintptr_t block = gch - (pre - 16);
    node_t *n = new_object(block, (uintptr_t)op, size, 0,
                           HR_F_GC | F_REVIVED | (pre == 32 ? HR_REC_F_PRE32 : 0), t);
    if (!n)
        return 0;
    node_drop(old, no, NULL); /* the block's old id is never named again */
    G.s_revived++;
    *out = n;
    return 1;
}

/* A lost block reallocated: the replay freed its block when it reclaimed the object, so a
 * REALLOC would name a dead id. The object lives again under a new id, as in revive (ALLOC with
 * `object` and without `gc`: a free-list pop does not count; GC_TRACK at the next collection's
 * sync_generations, when CPython tracks it again; `gc del` at its free). */
int hr_rec_graph_realloc_lost(uint64_t id, unsigned fl, uintptr_t block, uint64_t size)
{
    node_t *no = R.sink.off ? NULL : nd(id);
    if (!no || no->lost != 1)
        return 0;
    node_drop(id, no, NULL); /* a lost block's record holds nothing else */
    size_t pre = (fl & HR_REC_F_PRE32) ? 32 : 16;
    PyObject *op = (PyObject *)(block + pre);
    new_object(block, (uintptr_t)op, size, 0, HR_F_GC | F_REVIVED | (fl & HR_REC_F_PRE32),
               learned_type(op));
    G.s_revived++;
    return 1;
}

/* Before a collection of generations 0..gen: make the mirror's (so the replay's) generation of
 * every object CPython's generations 0..gen hold, or the mirror's do, CPython's generation:
 * CPython untracks tuples and dicts holding only atomic values (at collections and in
 * _PyDict_MaybeUntrack), tracks dicts when they get a container, and tracks an object taken
 * from a free list into generation 0 again; the replay learns all of that here (GC_TRACK), so
 * the young set it collects is CPython's. Objects are marked M_LISTED when CPython's young
 * generations hold them. */
static void sync_generations(struct _gc_runtime_state *g, int gen)
{
    for (int i = 0; i <= gen; i++) {
        PyGC_Head *head = &g->generations[i].head;
        for (PyGC_Head *h = (PyGC_Head *)head->_gc_next; h != head;
             h = (PyGC_Head *)h->_gc_next) {
            node_t *n = obj_node(h + 1);
            if (!n && !revive((PyObject *)(h + 1), &n)) {
                G.s_unknown_listed++;
                continue;
            }
            add_member(n);
            n->mark |= M_LISTED;
            /* merged: CPython has already appended generations 0..gen-1 to gen; the replay
             * merges the mirror's young generations the same way when it collects */
            if (n->gen != i && !(G.merged && n->gen <= gen))
                emit_track(n->id, n, HR_TRACK, i);
        }
    }
    G.work.len = 0;
    for (int i = 0; i <= gen; i++)
        for (node_t *n = G.ghead[i]; n; n = n->gnext)
            if (!(n->mark & M_LISTED))
                ppush(&G.work, n);
    G.older.len = 0;
    for (uint32_t k = 0; k < G.work.len; k++) {
        node_t *n = G.work.v[k];
        add_member(n); /* traversed too: links it let go of (e.g. on a free list) go */
        int t = cpython_tracked(n);
        if (t == 0)
            emit_track(n->id, n, HR_UNTRACK, 0);
        else if (t > 0) {
            n->mark |= M_SIM;
            ppush(&G.older, n);
        }
    }
    G.work.len = 0;
    /* Tracked, but in an older generation than the mirror's (rare): find which. */
    for (int i = gen + 1; i < 3 && G.older.len; i++) {
        PyGC_Head *head = &g->generations[i].head;
        for (PyGC_Head *h = (PyGC_Head *)head->_gc_next; h != head;
             h = (PyGC_Head *)h->_gc_next) {
            node_t *n = obj_node(h + 1);
            if (n && (n->mark & M_SIM)) {
                n->mark &= (uint16_t)~M_SIM;
                emit_track(n->id, n, HR_TRACK, i);
                G.s_older++;
            }
        }
    }
    for (uint32_t k = 0; k < G.older.len; k++)
        G.older.v[k]->mark &= (uint16_t)~M_SIM;
}

void hr_rec_graph_prepare(int gen)
{
    PyInterpreterState *in = _PyRuntime.interpreters.main;
    if (!in || R.sink.off || gen < 0 || gen > 2)
        return;
    hr_rec_graph_discard();
    if (G.in_collection) /* a collection without an end seen (cannot nest in CPython) */
        hr_rec_graph_collection_end();
    struct _gc_runtime_state *g = &in->gc;
    G.s_prepared++;
    uint32_t keep = 0;
    for (uint32_t k = 0; k < G.untyped.len; k++) {
        uint32_t x = G.untyped.v[k];
        node_t *n = nd(x);
        if (n && n->obj && n->lost == 2) {
            obj_ok(n);
            if (n->lost == 2)
                G.untyped.v[keep++] = x;
        }
    }
    G.untyped.len = keep;
    /* The set to traverse: CPython's generations 0..gen, which the mirror's become. */
    sync_generations(g, gen);
    G.young.len = 0;
    G.youngn.len = 0;
    for (int i = 0; i <= gen; i++) {
        for (node_t *n = G.ghead[i]; n; n = n->gnext) {
            add_member(n);
            n->mark |= M_YOUNG;
            vpush(&G.young, n->id);
            ppush(&G.youngn, n);
        }
    }
    for (uint32_t k = 0; k < G.members.len; k++) {
        node_t *n = G.members.v[k];
        traverse_obj(n);
        touch(n);
    }
    flush_refresh();
    /* Predict, then make sure everything the prediction depends on outside the traversed set
     * is exact too (the counts of the garbage's targets, the links of the objects the cascade
     * frees); repeat until nothing more needs reconciling, and again after a subclass list
     * moved to a living holder. */
    for (;;) {
        G.s_rounds++;
        predict();
        if (relink_subclass_dicts()) {
            flush_refresh();
            continue;
        }
        /* A dying class's subclass-list entries and dict are not garbage to CPython (the
         * bases' dicts reach them) but die with the class: out of the young set, so that the
         * replay frees them by counting with the class instead of counting them as garbage
         * found, and predict again without them (what only they reach is not found either).
         * They die in this collection, so no survivor count changes. */
        int untracked = 0;
        for (uint32_t k = 0; k < G.dyingn.len; k++) {
            node_t *n = G.dyingn.v[k];
            if ((n->mark & M_YOUNG) && entry_of_dying_class(n)) {
                emit_track(n->id, n, HR_UNTRACK, 0);
                n->mark &= (uint16_t)~M_YOUNG;
                untracked = 1;
            }
        }
        if (untracked) {
            young_compact();
            continue;
        }
        int changed = 0;
        for (uint32_t k = 0; k < G.dyingn.len; k++) {
            node_t *n = G.dyingn.v[k];
            if (!(n->mark & M_DONE_TRAV)) {
                add_member(n);
                traverse_obj(n);
                touch(n);
                changed = 1;
            }
            vec_t *o = &n->out;
            for (uint32_t j = 0; j < o->len; j++) {
                node_t *nt = G.endst[o->v[j]];
                if (!(nt->mark & (M_DONE_EXT | M_DYING))) {
                    add_member(nt);
                    touch(nt);
                    changed = 1;
                }
            }
        }
        if (!changed)
            break;
        flush_refresh();
    }
    /* Rule 4: the garbage and the objects it alone holds are true count 0 outside the heap (no
     * external reference: gc_refs 0, or every reference from the garbage); their pins go, so the
     * replay finds exactly them. */
    for (uint32_t k = 0; k < G.dyingn.len; k++) {
        node_t *n = G.dyingn.v[k];
        if (n->mark & M_PINNED) {
            put_ext_(n, truth_ext(n), 0, 1);
            G.s_unpinned++;
        }
    }
    clear_round();
    G.prepared_gen = gen;
}

void hr_rec_graph_discard(void)
{
    /* young and dying may name objects freed since the prepare (skipped) */
    for (uint32_t k = 0; k < G.young.len; k++)
        if (G.youngn.v[k]->id == G.young.v[k])
            G.youngn.v[k]->mark &= (uint16_t)~M_YOUNG;
    G.young.len = G.youngn.len = 0;
    for (uint32_t k = 0; k < G.dying.len; k++) {
        node_t *n = G.dyingn.v[k];
        if (n->id != G.dying.v[k])
            continue;
        n->mark &= (uint16_t)~M_DYING;
        if (n->obj && n->ext == 0) { /* unpinned for a collection that did not happen */
            put_ext(n, 0, 1);
            G.s_repinned++;
        }
    }
    if (G.prepared_gen >= 0)
        G.s_discarded++;
    G.dying.len = G.dyingn.len = 0;
    G.prepared_gen = -1;
}

int hr_rec_graph_prepared(void) { return G.prepared_gen; }

void hr_rec_graph_merged(int merged) { G.merged = merged; }

int hr_rec_graph_own_visit(visitproc v) { return v == visit; }

void hr_rec_graph_commit(void)
{
    int gen = G.prepared_gen;
    if (gen < 0)
        return;
    G.prepared_gen = -1;
    /* What the replay does at the collection: the young generations merge, the garbage and the
     * objects it alone held die (their links go), the survivors move on. */
    for (uint32_t k = 0; k < G.dying.len; k++) {
        node_t *n = G.dyingn.v[k];
        if (n->id != G.dying.v[k]) /* freed since the prepare */
            continue;
        n->mark = (uint16_t)((n->mark & ~(M_DYING | M_YOUNG)) | M_FLAGGED |
                             (k < G.dying_found && (n->mark & M_YOUNG) ? M_FOUND : 0));
        gen_remove(n);
        while (n->out.len)
            edge_del(n->out.v[n->out.len - 1]);
    }
    for (uint32_t k = 0; k < G.dying.len; k++) {
        vpush(&G.flagged, G.dying.v[k]);
        ppush(&G.flaggedn, G.dyingn.v[k]);
    }
    G.dying.len = G.dyingn.len = 0;
    int to = gen < 2 ? gen + 1 : 2;
    G.survivors.len = G.survivorsn.len = 0;
    G.survivors_gen = to;
    for (uint32_t k = 0; k < G.young.len; k++) {
        uint32_t x = G.young.v[k];
        node_t *n = G.youngn.v[k];
        if (n->id != x || !(n->mark & M_YOUNG))
            continue; /* died */
        n->mark &= (uint16_t)~M_YOUNG;
        if (n->gen != to) {
            gen_remove(n);
            gen_add(n, to);
        }
        vpush(&G.survivors, x);
        ppush(&G.survivorsn, n);
    }
    G.young.len = G.youngn.len = 0;
    G.in_collection = 1;
    G.gc_deaths_base = G.s_gc_deaths;
    G.coll_thread = pthread_self();
    arm_clear_signal();
}

/* Flagged objects whose block CPython kept (a free list took it, or a finalizer resurrected the
 * object): the replay reclaimed them; the trace never names them again. */
static void flush_flagged(void)
{
    for (uint32_t k = 0; k < G.flagged.len; k++) {
        uint32_t d = G.flagged.v[k];
        node_t *n = G.flaggedn.v[k];
        if (n->id != d) /* freed during the collection */
            continue;
        if (n->obj && (n->mark & M_FLAGGED)) {
            hr_idmap_take(&G.objs, n->obj, NULL, NULL);
            hr_rec_emit_id(HR_OP_DIED, d);
            while (n->in.len)
                edge_del(n->in.v[n->in.len - 1]);
            vec_release(&n->in);
            vec_release(&n->out);
            n->obj = 0;
            n->ext = 0;
            n->lost = 1; /* the record stays until the block is freed or revived */
            G.s_lost++;
        }
        n->mark = 0;
    }
    G.flagged.len = G.flaggedn.len = 0;
}

void hr_rec_graph_collection_end(void)
{
    /* Survivors CPython untracked during the collection (untrack_tuples; untrack_dicts in a
     * full one), before it counted them into long_lived_pending / long_lived_total. */
    for (uint32_t k = 0; k < G.survivors.len; k++) {
        uint32_t x = G.survivors.v[k];
        node_t *n = G.survivorsn.v[k];
        if (n->id == x && n->obj && n->gen == G.survivors_gen && cpython_tracked(n) == 0)
            emit_track(x, n, HR_UNTRACK_SURVIVOR, 0);
    }
    G.survivors.len = G.survivorsn.len = 0;
    settle_uncounted(0);
    restore_clear_slots();
    G.fin_armed = G.fin_done = 0;
    flush_flagged();
    G.in_collection = 0;
    G.freelist_phase = 0;
}

/* Rule 4's invariant, checked over every record: live objects not predicted or flagged garbage
 * have ext >= 1. The number that do not (0 unless the rule is broken). */
static uint64_t ext_zero_live(void)
{
    uint64_t bad = 0;
    for (size_t c = 0; c < G.nchunks; c++) {
        size_t m = c + 1 == G.nchunks ? G.carved : NODE_CHUNK;
        for (size_t i = 0; i < m; i++) {
            const node_t *n = &G.chunks[c][i];
            bad += n->id != NIL && n->obj && !n->lost && n->ext <= 0 &&
                   !(n->mark & (M_FLAGGED | M_DYING));
        }
    }
    return bad;
}

int hr_rec_graph_selfcheck(char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "graph_traversed %llu\ngraph_links %llu\ngraph_unlinks %llu\n"
                     "graph_increfs %llu\ngraph_decrefs %llu\ngraph_rc_deaths %llu\n"
                     "graph_gc_deaths %llu\ngraph_premature %llu\ngraph_clamped %llu\n"
                     "graph_untyped %llu\ngraph_freelisted %llu\ngraph_cascade %llu\n"
                     "graph_lost %llu\ngraph_lost_frees %llu\ngraph_prepared %llu\n"
                     "graph_discarded %llu\ngraph_rounds %llu\ngraph_untraversable %llu\n"
                     "graph_unreadable %llu\ngraph_freelist_clears %llu\ngraph_track %llu\n"
                     "graph_untrack %llu\ngraph_untrack_survivor %llu\ngraph_track_older %llu\n"
                     "graph_unknown_listed %llu\ngraph_revived %llu\n"
                     "graph_subclass_entries %llu\ngraph_refreshed %llu\n"
                     "graph_unpinned %llu\ngraph_repinned %llu\ngraph_ext_zero_live %llu\n"
                     "graph_wrcb %llu\ngraph_fin %llu\ngraph_fin_kept %llu\n"
                     "graph_fin_armed %llu\ngraph_fin_unsignalled %llu\ngraph_gc_del %llu\n"
                     "graph_fin_resurrected %llu\ngraph_subclass_relinks %llu\ngraph_code %llu\n",
                     (unsigned long long)G.s_traversed, (unsigned long long)G.s_links,
                     (unsigned long long)G.s_unlinks, (unsigned long long)G.s_incref,
                     (unsigned long long)G.s_decref, (unsigned long long)G.s_rc_deaths,
                     (unsigned long long)G.s_gc_deaths, (unsigned long long)G.s_premature,
                     (unsigned long long)G.s_clamped, (unsigned long long)G.s_untyped,
                     (unsigned long long)G.s_freelisted, (unsigned long long)G.s_cascade,
                     (unsigned long long)G.s_lost, (unsigned long long)G.s_lost_frees,
                     (unsigned long long)G.s_prepared, (unsigned long long)G.s_discarded,
                     (unsigned long long)G.s_rounds, (unsigned long long)G.s_untraversable,
                     (unsigned long long)G.s_unreadable,
                     (unsigned long long)G.s_freelist_clears, (unsigned long long)G.s_track,
                     (unsigned long long)G.s_untrack, (unsigned long long)G.s_untrack_survivor,
                     (unsigned long long)G.s_older, (unsigned long long)G.s_unknown_listed,
                     (unsigned long long)G.s_revived,
                     (unsigned long long)G.s_subclass_entries,
                     (unsigned long long)G.s_refreshed, (unsigned long long)G.s_unpinned,
                     (unsigned long long)G.s_repinned, (unsigned long long)ext_zero_live(),
                     (unsigned long long)G.s_wrcb, (unsigned long long)G.s_fin,
                     (unsigned long long)G.s_fin_kept, (unsigned long long)G.s_fin_armed,
                     (unsigned long long)G.s_fin_unsignalled, (unsigned long long)G.s_gc_del,
                     (unsigned long long)G.s_fin_resurrected,
                     (unsigned long long)G.s_subclass_relinks, (unsigned long long)G.s_code);
    return n < 0 ? 0 : ((size_t)n >= cap ? (int)cap - 1 : n);
}

/* rec_types.c: learning which types are GC types, for the CPython recorder (rec_types.h has
 * the theory of operation). */
#define PY_SSIZE_T_CLEAN
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1 /* PyGC_Head, the GC pre-header, is in an internal header */
#endif
#include <Python.h>
#include "internal/pycore_gc.h"

#include "rec_graph.h"
#include "rec_python.h"
#include "rec_types.h"

#include <dlfcn.h>
#include <link.h>

#define R hr_rec

hr_rec_tcache_t hr_rec_tcache[HR_REC_TCACHE];
uint64_t hr_rec_tfilter[64];

/* Put t (pre 0: nothing) into its cache entry. */
static void tcache_set(uintptr_t t, uint64_t pre)
{
    hr_rec_tcache_t *e = &hr_rec_tcache[hr_rec_tcache_slot(t)];
    e->type = t;
    e->pre = pre;
}

uint64_t hr_rec_type_pre_miss(uintptr_t t)
{
    uint64_t pre;
    if (!hr_rec_tfilter_has(t) || !hr_idmap_get(&R.types, t, &pre, NULL))
        return 0;
    tcache_set(t, pre);
    return pre;
}

static size_t preheader(PyTypeObject *t)
{
    return (PyType_IS_GC(t) ? sizeof(PyGC_Head) : 0) +
           (PyType_HasFeature(t, Py_TPFLAGS_MANAGED_DICT) ? 2 * sizeof(PyObject *) : 0);
}

/* Does t lie inside a loaded object's image (where static types are)? The loadable segments of
 * every loaded object are kept in a table, read again (dl_iterate_phdr) when an address is in
 * none of them and objects were loaded or unloaded since (dlpi_adds, dlpi_subs). dladdr, which
 * this used to call, also looks for the nearest symbol: a scan of the object's symbol table, about
 * 4 us in the interpreter's. With more segments than the table holds, dladdr answers. Candidates
 * outside every image are remembered as rejected (R.rejected; see hr_rec_learn_type). */
#define IMG_MAX 512
static struct {
    uintptr_t lo[IMG_MAX], hi[IMG_MAX];
    int n;                         /* -1: more segments than fit (dladdr answers) */
    unsigned long long adds, subs; /* dl_iterate_phdr's counts when read */
} img;

static int img_add(struct dl_phdr_info *i, size_t size, void *arg)
{
    (void)size, (void)arg;
    for (int k = 0; k < i->dlpi_phnum && img.n >= 0; k++) {
        const ElfW(Phdr) *ph = &i->dlpi_phdr[k];
        if (ph->p_type != PT_LOAD)
            continue;
        if (img.n == IMG_MAX) {
            img.n = -1;
            break;
        }
        img.lo[img.n] = i->dlpi_addr + ph->p_vaddr;
        img.hi[img.n++] = i->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    img.adds = i->dlpi_adds, img.subs = i->dlpi_subs;
    return 0;
}

static int img_counts(struct dl_phdr_info *i, size_t size, void *arg)
{
    (void)size;
    unsigned long long *c = arg;
    c[0] = i->dlpi_adds, c[1] = i->dlpi_subs;
    return 1; /* the first object tells */
}

static int in_segments(uintptr_t t)
{
    for (int k = 0; k < img.n; k++)
        if (t >= img.lo[k] && t < img.hi[k])
            return 1;
    return 0;
}

static int in_image(uintptr_t t)
{
    if (img.n >= 0) {
        if (in_segments(t))
            return 1;
        unsigned long long c[2] = {0, 0};
        dl_iterate_phdr(img_counts, c);
        if (c[0] == img.adds && c[1] == img.subs)
            return 0; /* nothing loaded or unloaded since the table was read */
        img.n = 0;
        dl_iterate_phdr(img_add, NULL);
        if (img.n >= 0)
            return in_segments(t);
    }
    Dl_info info;
    return dladdr((void *)t, &info) != 0 && info.dli_fname != NULL;
}

/* Could t be a heap type object? Heap types are GC objects with a 16-byte pre-header, so t - 16
 * starts a recorded GC block (whose first 32 bytes, the pre-header, refcount and type, are then
 * readable), and not one graph mode knows to have a 32-byte pre-header (an instance). */
static int plausible_type_at(uintptr_t t)
{
    unsigned fl = 0;
    return t && !(t & 7) && hr_idmap_get(&R.map, t - 16, NULL, &fl) && (fl & HR_F_GC) &&
           !(fl & HR_REC_F_PRE32);
}

/* May t's first 16 bytes be read as an object header: a plausible heap type, or inside an
 * image (static types)? */
static int type_address_ok(uintptr_t t)
{
    return plausible_type_at(t) || (t && !(t & 7) && in_image(t));
}

/* Is t a GC type with that pre-header? Nothing is dereferenced before it is known to be safe:
 * t's header only where type_address_ok says so; its metatype m = Py_TYPE(t) must be a type
 * already (&PyType_Type, a learned type, or at an address type_address_ok accepts with type
 * &PyType_Type) before m->tp_flags is read (PyType_Check), and t->tp_flags only once that says
 * t is a type. Reading the metatype as "any readable address" let the GC link of a class
 * instance (the candidate hr_rec_learn_type finds 16 bytes into its block: a pointer to the previous
 * object's link, 16 bytes into that object's block) pass as a type when random bits of the
 * blocks after it looked like type flags: the instance allocated next to it was then placed 16
 * bytes off and never found by a traversal, and a traversal could call through the fake type
 * (docs/recorder.md, "A class instance's GC link taken for a type"). */
static int valid_type(uintptr_t t, size_t pre)
{
    if (!type_address_ok(t))
        return 0;
    uintptr_t m = (uintptr_t)Py_TYPE((PyObject *)t);
    if (m != (uintptr_t)&PyType_Type && !hr_rec_type_pre(m) &&
        (!type_address_ok(m) || (uintptr_t)Py_TYPE((PyObject *)m) != (uintptr_t)&PyType_Type))
        return 0;
    PyTypeObject *ty = (PyTypeObject *)t;
    return PyType_Check((PyObject *)ty) && PyType_IS_GC(ty) && preheader(ty) == pre;
}

static void type_learned(uintptr_t t, uint64_t pre)
{
    hr_idmap_put(&R.types, t, pre, 0);
    hr_rec_tfilter[(t >> 10) & 63] |= (uint64_t)1 << ((t >> 4) & 63);
    tcache_set(t, pre);
}

void hr_rec_type_forget(uintptr_t t)
{
    if (!hr_rec_tfilter_has(t))
        return;
    if (hr_idmap_take(&R.types, t, NULL, NULL) && R.mode == HR_KIND_GRAPH)
        hr_rec_graph_type_freed(t); /* a class created later at t is another type */
    hr_rec_tcache_t *e = &hr_rec_tcache[hr_rec_tcache_slot(t)];
    if (e->type == t)
        e->type = 0, e->pre = 0;
}

/* Learn the type of a block that the count showed to be a GC allocation. The object may be
 * initialised and alive, already dead on a free list (refcount 0), or not yet initialised (a
 * collection started inside its allocation): each candidate position is checked before use. */
void hr_rec_learn_type(uintptr_t a, uint64_t size)
{
    const uint64_t *w = (const uint64_t *)a;
    /* An instance of a learned managed-dict type (most class instances) is known at its 32-byte
     * candidate; its 16-byte one (the dict and values words, NULL or a block of values) is never
     * a type and is not validated (it cost ~150 instructions per instance in allocation mode). */
    if (size >= 48 && w[4] < HR_REC_SMALL_WORD && hr_rec_type_pre((uintptr_t)w[5]) == 32)
        return;
    for (int pre = 16; pre <= 32; pre += 16) {
        size_t rc = (size_t)pre / 8, ty = rc + 1;
        if (size < (uint64_t)pre + 16 || w[rc] >= HR_REC_SMALL_WORD)
            continue;
        uintptr_t t = (uintptr_t)w[ty];
        if (hr_rec_type_pre(t) == (uint64_t)pre)
            return;
        /* A heap candidate is checked each time (its block may come to hold a type later); an
         * address outside the heap's recorded blocks and the images is remembered as rejected
         * (dladdr is the costly part). */
        int heap = plausible_type_at(t);
        if (!heap && hr_idmap_get(&R.rejected, t, NULL, NULL))
            continue;
        if (valid_type(t, (size_t)pre)) {
            type_learned(t, (uint64_t)pre);
            return;
        }
        if (!heap && R.rejected.count < 4096)
            hr_idmap_put(&R.rejected, t, 0, 0);
    }
    R.stat.learn_rejected++;
}

/* The learned type of a GC block and its pre-header size, or NULL. Never dereferences. */
PyTypeObject *hr_rec_gc_block_type(uintptr_t a, uint64_t size, size_t *pre)
{
    const uint64_t *w = (const uint64_t *)a;
    if (size >= 32 && w[2] < HR_REC_SMALL_WORD && hr_rec_type_pre((uintptr_t)w[3]) == 16) {
        *pre = 16;
        return (PyTypeObject *)w[3];
    }
    if (size >= 48 && w[4] < HR_REC_SMALL_WORD && hr_rec_type_pre((uintptr_t)w[5]) == 32) {
        *pre = 32;
        return (PyTypeObject *)w[5];
    }
    *pre = 0;
    return NULL;
}

/* Does block a look like a GC object of a learned type? (Refcount 0 is allowed: a GC object
 * may already sit on a free list when its allocation is resolved.) */
int hr_rec_looks_gc(uintptr_t a, uint64_t size)
{
    size_t pre;
    return hr_rec_gc_block_type(a, size, &pre) != NULL;
}



/* hr_alloc.h: the allocator family: one vtable, a registry, and the statistics every backend reports.
 *
 * Concept map
 *   spec string  "pymalloc:preset=3.11,release=never"  --hr_alloc_create-->  hr_alloc_t (vt + ctx)
 *   hr_alloc_vt  one static const instance per backend (allocators/<name>.c), found by name in the
 *                registry (allocators/registry.c); duplicate names are rejected.
 *   hr_alloc_t   a live instance: the vtable, the backend's private ctx, and the counters that the
 *                generic layer keeps for every backend (requests, bytes in use, peaks).
 *
 * Who counts what
 *   The generic wrappers (hr_alloc_malloc & co, below) keep the counters that mean the same thing
 *   for every backend: requests, bytes requested, bytes in use and its peak. A backend reports only
 *   what it alone knows, through `stats`: its footprint (bytes it has mapped or committed, from its
 *   own accounting) and its structure (arenas, pools). RSS is sampled by the replay engine.
 *
 * Sized frees
 *   Every free and realloc passes the size the block was requested with (as in Lua's lua_Alloc);
 *   backends may use it or ignore it.
 */
#ifndef HR_ALLOC_H
#define HR_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hr_common.h"

/* One X-macro defines every allocator statistic, so the text, JSON and CSV writers cannot drift.
 * X(field, "json/csv name", "description with unit") */
#define HR_ALLOC_STATS(X)                                                                          \
    X(requests, "requests", "allocating calls (malloc, calloc, realloc, aligned)")                \
    X(frees, "frees", "free calls")                                                                \
    X(bytes_requested, "bytes_requested", "bytes asked for by allocating calls, cumulative")      \
    X(bytes_in_use, "bytes_in_use", "bytes live now, as requested")                                \
    X(peak_bytes_in_use, "peak_bytes_in_use", "largest bytes_in_use seen")                         \
    X(footprint, "footprint", "bytes mapped or committed by the allocator, its own accounting")   \
    X(peak_footprint, "peak_footprint", "largest footprint seen")                                  \
    X(arenas, "arenas", "arenas mapped now (pymalloc-like backends; 0 otherwise)")                \
    X(peak_arenas, "peak_arenas", "largest number of arenas mapped at once")                       \
    X(arenas_allocated, "arenas_allocated", "arenas mapped, cumulative")                           \
    X(arenas_released, "arenas_released", "arenas unmapped, cumulative")                           \
    X(pools_used, "pools_used", "pools holding at least one block now")                            \
    X(large_requests, "large_requests", "requests the backend passed to the system allocator")

typedef struct hr_alloc_stats {
#define HR_X(field, name, desc) uint64_t field;
    HR_ALLOC_STATS(HR_X)
#undef HR_X
} hr_alloc_stats_t;

/* A parameter a backend accepts in its spec string, for `heapreplay allocators` and errors. */
typedef struct hr_param_desc {
    const char *key;         /* e.g. "pool" */
    const char *values;      /* e.g. "size (4K, 16K, ...)" */
    const char *description; /* one line */
} hr_param_desc_t;

typedef struct hr_preset_desc {
    const char *name;        /* e.g. "3.11" */
    const char *description; /* which CPython change it stands for */
} hr_preset_desc_t;

/* The vtable. `ctx` comes first in every slot. Unless a slot says "may be NULL", it is required. */
typedef struct hr_alloc_vt {
    const char *name;                /* registry key: "pymalloc", "libc", ... */
    const char *summary;             /* one line */
    const hr_param_desc_t *params;   /* terminated by {NULL}; may be NULL (no parameters) */
    const hr_preset_desc_t *presets; /* terminated by {NULL}; may be NULL */

    /* Create an instance from a parsed spec. Must mark every parameter it understood (through
     * hr_spec_get) and leave the rest for the registry to reject. On failure returns a negative
     * code with a message naming the backend and the parameter. */
    int (*create)(void **ctx, hr_spec_t *spec, hr_err_t *err);
    /* Release everything, including memory still allocated. Accepts NULL. */
    void (*destroy)(void *ctx);

    /* Allocate `size` bytes (size may be 0: the backend decides what that means, as CPython
     * does). Returns NULL on failure. Blocks are aligned to at least 16 bytes unless the backend
     * is parameterised otherwise (pymalloc with align=8) or says HR_ALLOC_F_SMALL_ALIGN8. */
    void *(*malloc)(void *ctx, size_t size, hr_domain_t domain);
    /* Zeroed allocation. May be NULL: the generic layer uses malloc + memset. */
    void *(*calloc)(void *ctx, size_t size, hr_domain_t domain);
    /* Resize; `p` is never NULL here (the generic layer turns realloc(NULL) into malloc). The
     * contents up to min(old_size, new_size) are preserved. Returns NULL on failure (p stays). */
    void *(*realloc)(void *ctx, void *p, size_t old_size, size_t new_size, hr_domain_t domain);
    /* Free a block; `p` is never NULL; `size` is the size it was requested (or resized) with. */
    void (*free)(void *ctx, void *p, size_t size, hr_domain_t domain);
    /* Allocation with alignment `align` (a power of two > 16). May be NULL: then the generic
     * layer rejects such requests with a clear error. */
    void *(*aligned_alloc)(void *ctx, size_t align, size_t size, hr_domain_t domain);

    /* A placement fact from the trace: the recorded program mapped (mapped=1) or unmapped an
     * arena of `size` bytes at `base`. Backends that model arenas use it when asked to follow
     * the recorded placement (pymalloc align=recorded, cpython). May be NULL (ignored). */
    void (*arena_fact)(void *ctx, uint64_t base, uint64_t size, int mapped);
    /* Fill the backend-owned fields of *st (footprint, peak_footprint, arenas, ...). The generic
     * fields are already filled by the caller and must be left alone. May be NULL. */
    void (*stats)(void *ctx, hr_alloc_stats_t *st);
    /* Append the backend's own statistics text (pymalloc and cpython: the allocator part of
     * sys._debugmallocstats(), byte for byte). May be NULL (no text). */
    int (*stats_text)(void *ctx, hr_buf_t *out, hr_err_t *err);

    /* Added with the first backends (issue 3): properties a caller must know about; 0 for a
     * plain allocator. HR_ALLOC_F_* below. */
    unsigned flags;
    /* Added 2026-11-23: what a reader of this instance's footprint could misjudge, in one line
     * of static storage (mimalloc with eager commit counts whole segments it never touched), or
     * NULL when there is nothing to say. `heapreplay replay` prints it under the footprint. The
     * slot itself may be NULL (a backend whose footprint needs no caveat). */
    const char *(*footprint_note)(void *ctx);
} hr_alloc_vt;

/* The backend hands the same memory to every live block (null): blocks overlap by design and
 * their contents are not preserved across other calls; only the most recent block is usable. */
#define HR_ALLOC_F_SHARED_BLOCKS 0x1u
/* The backend drives process-global state that cannot be reset (cpython): at most one instance
 * can ever be created in a process; a second hr_alloc_create fails with HR_EUSAGE. */
#define HR_ALLOC_F_ONCE_PER_PROCESS 0x2u
/* Requests of at most 8 bytes may get blocks aligned to 8 only (an 8-byte size class: mimalloc,
 * tcmalloc). C17 permits it: no object that fits in 8 bytes needs more. Larger requests are
 * aligned to 16. */
#define HR_ALLOC_F_SMALL_ALIGN8 0x4u

/* A live allocator. Owned by its creator; destroy with hr_alloc_destroy. */
typedef struct hr_alloc {
    const hr_alloc_vt *vt; /* borrowed: static */
    void *ctx;             /* owned by the backend */
    hr_alloc_stats_t st;   /* generic counters, kept by the wrappers below */
    char spec[256];        /* the spec string it was created from, for provenance */
} hr_alloc_t;

/* {==== Registry ==== */
/* Every backend built in, in display order; NULL-terminated. */
const hr_alloc_vt *const *hr_alloc_registry(void);
const hr_alloc_vt *hr_alloc_by_name(const char *name);
/* Register a backend that is not built in (tests register doubles; a program embedding the
 * library may add its own). Checked like the built-in ones at the next hr_alloc_create. HR_OK,
 * HR_EUSAGE for a name already taken, HR_ENOMEM when the registry is full. */
int hr_alloc_register_extra(const hr_alloc_vt *vt);
/* Create from a spec string. Unknown names or parameters fail with HR_EUSAGE and a message that
 * lists what exists. */
int hr_alloc_create(hr_alloc_t **out, const char *spec, hr_err_t *err);
void hr_alloc_destroy(hr_alloc_t *a); /* accepts NULL */
void hr_alloc_get_stats(hr_alloc_t *a, hr_alloc_stats_t *st);
/* The backend's caveat on its footprint (hr_alloc_vt.footprint_note), or NULL. */
const char *hr_alloc_footprint_note(hr_alloc_t *a);
/* Check the registry: every name non-empty, unique, and every required slot present. Returns
 * HR_EINTERNAL naming the offender. hr_alloc_create runs it once per process. */
int hr_alloc_registry_check(hr_err_t *err);
/* Append the text of `heapreplay allocators`: every backend built in, its summary, its
 * parameters and presets. */
int hr_alloc_describe(hr_buf_t *out);
/* Append the allocator's own statistics text (empty when the backend has none). */
int hr_alloc_stats_text(hr_alloc_t *a, hr_buf_t *out, hr_err_t *err);
/* Forward a placement fact from the trace (see hr_alloc_vt.arena_fact); ignored when the
 * backend does not model arenas. */
void hr_alloc_arena_fact(hr_alloc_t *a, uint64_t base, uint64_t size, int mapped);

/* {==== Generic wrappers: the replay hot path ====
 * They keep the generic counters in a->st and call the slot. A request counts in `requests` and
 * `bytes_requested` whether or not it succeeds; bytes_in_use changes only on success. */

HR_INLINE void hr_alloc_count_in_use_(hr_alloc_t *a, uint64_t in_use)
{
    a->st.bytes_in_use = in_use;
    if (in_use > a->st.peak_bytes_in_use)
        a->st.peak_bytes_in_use = in_use;
}

HR_INLINE void *hr_alloc_malloc(hr_alloc_t *a, size_t size, hr_domain_t domain)
{
    void *p = a->vt->malloc(a->ctx, size, domain);
    a->st.requests++;
    a->st.bytes_requested += size;
    if (HR_LIKELY(p != NULL))
        hr_alloc_count_in_use_(a, a->st.bytes_in_use + size);
    return p;
}

HR_INLINE void *hr_alloc_calloc(hr_alloc_t *a, size_t size, hr_domain_t domain)
{
    void *p;
    if (a->vt->calloc) {
        p = a->vt->calloc(a->ctx, size, domain);
    } else {
        p = a->vt->malloc(a->ctx, size, domain);
        if (p)
            memset(p, 0, size);
    }
    a->st.requests++;
    a->st.bytes_requested += size;
    if (HR_LIKELY(p != NULL))
        hr_alloc_count_in_use_(a, a->st.bytes_in_use + size);
    return p;
}

/* realloc(NULL, ...) is malloc. On failure returns NULL and `p` stays valid with `old_size`. */
HR_INLINE void *hr_alloc_realloc(hr_alloc_t *a, void *p, size_t old_size, size_t new_size,
                                 hr_domain_t domain)
{
    if (p == NULL)
        return hr_alloc_malloc(a, new_size, domain);
    void *q = a->vt->realloc(a->ctx, p, old_size, new_size, domain);
    a->st.requests++;
    a->st.bytes_requested += new_size;
    if (HR_LIKELY(q != NULL))
        hr_alloc_count_in_use_(a, a->st.bytes_in_use - old_size + new_size);
    return q;
}

/* free(NULL) counts as a free call and does nothing else. */
HR_INLINE void hr_alloc_free(hr_alloc_t *a, void *p, size_t size, hr_domain_t domain)
{
    a->st.frees++;
    if (HR_LIKELY(p != NULL)) {
        a->st.bytes_in_use -= size;
        a->vt->free(a->ctx, p, size, domain);
    }
}

/* Aligned allocation; NULL when the backend has no aligned_alloc slot (check
 * a->vt->aligned_alloc first to report that clearly) or on failure. */
HR_INLINE void *hr_alloc_aligned(hr_alloc_t *a, size_t align, size_t size, hr_domain_t domain)
{
    void *p = a->vt->aligned_alloc ? a->vt->aligned_alloc(a->ctx, align, size, domain) : NULL;
    a->st.requests++;
    a->st.bytes_requested += size;
    if (HR_LIKELY(p != NULL))
        hr_alloc_count_in_use_(a, a->st.bytes_in_use + size);
    return p;
}

#endif /* HR_ALLOC_H */

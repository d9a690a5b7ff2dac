/* rec_python.h: state of the CPython recorder shared by its modules (rec_python.c, rec_graph.c,
 * rec_types.c). Everything here is guarded by hr_rec.sink.lock. */
#ifndef HR_REC_PYTHON_H
#define HR_REC_PYTHON_H

#include <Python.h>
#include <stdint.h>

#include "hr_recorder.h"
#include "hr_trace.h"
#include "rec_idmap.h"
#include "rec_sink.h"

#ifndef HR_REC_VERSION
#define HR_REC_VERSION "0.1.0"
#endif

/* A recorder flag in the address map beside the trace's HR_F_* (graph mode): the object in
 * this block sits after a 32-byte pre-header (a class instance with a managed dict), not 16. */
#define HR_REC_F_PRE32 0x80

/* A word below this can be the refcount of a live object (a pointer or a free-list link is
 * above it): how the recorder tells a block's refcount field from stale bytes. */
#define HR_REC_SMALL_WORD ((uint64_t)1 << 32)

/* The newest OBJ allocation, not yet written: its GC flag is decided at the next observation. */
typedef struct hr_pending {
    int active;
    uintptr_t addr;
    uint64_t size;
    int zero;   /* calloc */
    int count0; /* generations[0].count when the allocator returned; -1: no interpreter yet */
    int count1, count2, collecting; /* the rest of the gc state then */
} hr_pending_t;

/* A collection as the recorder sees it: collecting seen (started by the count or not), start
 * callback done (counts not yet zeroed), open (GC_BEGIN written), ended (GC_END written). */
enum { GC_IDLE = 0, GC_SEEN, GC_SEEN_AUTO, GC_CB, GC_OPEN, GC_ENDED, GC_OPEN_NOCB };

typedef struct hr_rec_stats {
    uint64_t gc_allocs, ambiguous, ambiguous_gc, unexpected, check_disagree, learn_rejected;
    uint64_t gen_mispredicted, gc_unclosed, collections, arenas_mapped, arenas_unmapped;
    uint64_t unknown_frees, unknown_reallocs, skipped, graph_late;
    uint64_t probed; /* collections without callbacks seen by the probe (finalisation) */
} hr_rec_stats_t;

typedef struct hr_rec {
    hr_sink_t sink;
    hr_idmap_t map;      /* live recorded blocks: address -> id, flags */
    hr_idmap_t types;    /* learned GC types: type address -> pre-header size */
    hr_idmap_t rejected; /* candidate type addresses that were not GC types */
    int mode;            /* HR_KIND_ALLOC / HR_KIND_GRAPH */
    int started, finished, stats_done, self_check;
    void (*report)(const hr_err_t *err);
    hr_pending_t pend;
    int last_gc;         /* the observation in progress resolved a GC allocation */
    int gc_state, gc_gen, win_count;
    int cb_active;       /* our gc.callbacks entry is installed */
    int slow;            /* observe() must take observe_full: !cb_active, gc_state != GC_IDLE or
                            self_check > 1 (recomputed by gate_update wherever they change) */
    int graph_done;      /* graph mode: the collection in progress was reconciled */
    int64_t last_stats[3][3]; /* generation_stats seen last (while no callback is installed) */
    int64_t begin_stats[3][3];
    int gc_enabled, gc_thr[3]; /* the gc settings last written (PHASE gc.*) */
    int64_t ll_pending, ll_total; /* long_lived_pending and _total last written (alloc mode) */
    hr_rec_stats_t stat;
    /* the original allocators */
    PyMemAllocatorEx orig[3];
    PyObjectArenaAllocator orig_arena;
} hr_rec_t;

extern hr_rec_t hr_rec;

#ifdef HR_REC_PRELOAD
/* Preloaded, the module must load harmlessly into a process that is not Python (one that
 * inherited LD_PRELOAD before the module could remove it, a valgrind launcher): the data it
 * takes from the interpreter is weak (0 when absent; functions are bound lazily). */
#pragma weak _PyRuntime
#pragma weak Py_Version
#pragma weak _Py_NoneStruct
#pragma weak PyExc_TypeError
#pragma weak PyType_Type
#pragma weak PyTuple_Type
#pragma weak PyList_Type
#pragma weak PyDict_Type
#pragma weak _PyWeakref_RefType
#pragma weak PyCode_Type
#pragma weak _PyWeakref_ProxyType
#pragma weak _PyWeakref_CallableProxyType
#pragma weak _Py_UnhandledKeyboardInterrupt
#endif
/* Set when the program ended with an uncaught KeyboardInterrupt (Modules/main.c then kills the
 * process with SIGINT after finalising); declared only in an internal header. */
extern int _Py_UnhandledKeyboardInterrupt;

int hr_rec_emit(const hr_event_t *ev);
int hr_rec_emit_id(int op, uint64_t id);
int hr_rec_emit_str(int op, uint32_t tag, const char *s, size_t len);
/* Graph mode: the collection in progress starts freeing its garbage (called from inside the
 * collector by rec_graph.c's clear_signal, on the thread running it, outside any hook). */
void hr_rec_delete_begins(void);
/* Graph mode: a collection is in progress and the recorder's gc callback exists (the commit of a
 * collection then comes before it frees anything). */
int hr_rec_collection_underway(void);

#endif

/* rec_graph.h: graph mode of the CPython recorder: a shadow of the replay's view of every GC
 * object and code object (external count, links, the replay's generation), reconciled with the
 * real heap at observation points. All functions run with the recorder lock held and the GIL held. See
 * rec_graph.c. */
#ifndef HR_REC_GRAPH_H
#define HR_REC_GRAPH_H

#include <Python.h> /* visitproc */
#include <stddef.h>
#include <stdint.h>

#include "hr_common.h"

int hr_rec_graph_init(hr_err_t *err);
/* A GC allocation was resolved: write TYPE (if new) and ALLOC (gc, object, typed).
 * `uninitialised`: a collection started inside its allocation, before CPython initialised the
 * object, so its block's contents are not its own (the object is written untyped). */
void hr_rec_graph_alloc(uintptr_t block, uint64_t size, unsigned flags, int uninitialised);
/* A code object was resolved (not a GC object, but it holds GC objects): write TYPE (if new) and
 * ALLOC (object, typed, no gc). */
void hr_rec_graph_alloc_code(uintptr_t block, uint64_t size, unsigned flags);
/* An object's block is about to be freed (id already taken out of the address map). */
void hr_rec_graph_free(uintptr_t block, uint64_t id, unsigned flags);
/* The learned type at t is being freed (a heap type's block): its type id is not t's any more. */
void hr_rec_graph_type_freed(uintptr_t t);
/* The block of id (address-map flags fl) was reallocated to `block`, `size` bytes: if id's
 * object is lost (the replay reclaimed it while CPython kept the block on a free list, and took
 * it off to resize it, as _PyTuple_Resize does), write it as a new object and return 1; else
 * return 0 (the caller writes REALLOC). */
int hr_rec_graph_realloc_lost(uint64_t id, unsigned fl, uintptr_t block, uint64_t size);
/* An object's block moved (realloc). */
void hr_rec_graph_moved(uintptr_t old_block, uintptr_t new_block, uint64_t id);
/* A collection of generations 0..gen is about to start and the heap is still whole: reconcile
 * the shadow and predict what the replay will reclaim (writes events). */
void hr_rec_graph_prepare(int gen);
/* The program called gc.freeze() (freeze 1) or gc.unfreeze() (0): the mirror follows. */
void hr_rec_graph_freeze(int freeze);
/* The generation prepared and not yet committed, or -1. */
int hr_rec_graph_prepared(void);
/* CPython's younger generation lists are already merged into the one about to be collected
 * (a collection seen from inside the collector): hr_rec_graph_prepare then keeps the mirror's
 * generations among the young ones as they are (the replay merges them too). */
void hr_rec_graph_merged(int merged);
/* Is v the recorder's own visit function (a traversal the recorder makes, not CPython)? */
int hr_rec_graph_own_visit(visitproc v);
/* The prepared collection did not happen (start-up prediction at a non-GC allocation). */
void hr_rec_graph_discard(void);
/* The prepared collection happens (the replay performs it at the event just written or about
 * to be written): apply it to the shadow. Writes nothing. */
void hr_rec_graph_commit(void);
/* GC_BEGIN of the collection in progress is being written (CPython zeroed the counts). */
void hr_rec_graph_gc_begin(void);
/* The collection in progress ends (before GC_END is written). */
void hr_rec_graph_collection_end(void);
/* The collection in progress starts freeing its garbage (delete_garbage): mark the garbage it
 * will not count (rec_graph.c, "uncounted garbage"). The caller holds the lock. */
void hr_rec_graph_fin_end(void);
/* Append the graph counters to the self-check text; returns the bytes written. */
int hr_rec_graph_selfcheck(char *buf, size_t cap);

#endif

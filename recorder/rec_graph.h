/* rec_graph.h: graph mode of the CPython recorder: a shadow of the replay's view of every GC
 * object (external count, links), reconciled with the real heap at observation points.
 * All functions run with the recorder lock held and the GIL held. See rec_graph.c. */
#ifndef HR_REC_GRAPH_H
#define HR_REC_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "hr_common.h"

int hr_rec_graph_init(hr_err_t *err);
/* A GC allocation was resolved: write TYPE (if new) and ALLOC (gc, object, typed). */
void hr_rec_graph_alloc(uintptr_t block, uint64_t size, unsigned flags);
/* An object's block is about to be freed (id already taken out of the address map). */
void hr_rec_graph_free(uintptr_t block, uint64_t id, unsigned flags);
/* An object's block moved (realloc). */
void hr_rec_graph_moved(uintptr_t old_block, uintptr_t new_block, uint64_t id);
/* A collection of generations 0..gen is starting (GC_BEGIN was just written). */
void hr_rec_graph_collection_begin(int gen);
void hr_rec_graph_collection_end(void);
/* Append the graph counters to the self-check text; returns the bytes written. */
int hr_rec_graph_selfcheck(char *buf, size_t cap);

#endif

/* trace_check.c: the validity rules every event passes, shared by the reader and the writer. */
#include "hr_trace.h"
#include "trace_internal.h"
#include "trace_wire.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *const op_names[HR_OP_COUNT] = {
    [0] = "?",
    [HR_OP_ALLOC] = "alloc",         [HR_OP_FREE] = "free",
    [HR_OP_REALLOC] = "realloc",     [HR_OP_INCREF] = "incref",
    [HR_OP_DECREF] = "decref",       [HR_OP_LINK] = "link",
    [HR_OP_UNLINK] = "unlink",       [HR_OP_DIED] = "died",
    [HR_OP_TYPE] = "type",           [HR_OP_ARENA_MAP] = "arena map",
    [HR_OP_ARENA_UNMAP] = "arena unmap", [HR_OP_GC_BEGIN] = "gc begin",
    [HR_OP_GC_END] = "gc end",       [HR_OP_STATS] = "stats",
    [HR_OP_PHASE] = "phase",         [HR_OP_GC_CONTROL] = "gc control",
    [HR_OP_GC_TRACK] = "gc track",   [HR_OP_GC_SURVIVORS] = "gc survivors",
    [HR_OP_UNKNOWN] = "unknown",
};

const char *hr_op_name(int op) { return op > 0 && op < HR_OP_COUNT ? op_names[op] : "?"; }

const char *hr_kind_name(int kind)
{
    return kind == HR_KIND_ALLOC ? "alloc" : kind == HR_KIND_GRAPH ? "graph" : "?";
}

const char *hr_stats_kind_name(int kind)
{
    static const char *const names[] = {"pymalloc", "gc", "text"};
    return kind >= 0 && kind < 3 ? names[kind] : NULL;
}

/* {==== Header ==== */

void hr_trace_header_init(hr_trace_header_t *h, int kind)
{
    memset(h, 0, sizeof *h);
    h->version = HR_TRACE_VERSION;
    h->kind = kind;
}

void hr_trace_header_free(hr_trace_header_t *h)
{
    for (int i = 0; i < h->nmeta; i++) {
        free(h->meta[i].key);
        free(h->meta[i].value);
    }
    h->nmeta = 0;
}

int hr_trace_header_set(hr_trace_header_t *h, const char *key, const char *value)
{
    if (!*key || strlen(key) > 200 || strpbrk(key, " \t\r\n\"\\#"))
        return HR_EUSAGE; /* keys are bare words, so the text form can carry them */
    char *v = strdup(value);
    if (!v)
        return HR_ENOMEM;
    for (int i = 0; i < h->nmeta; i++)
        if (strcmp(h->meta[i].key, key) == 0) {
            free(h->meta[i].value);
            h->meta[i].value = v;
            return HR_OK;
        }
    if (h->nmeta == HR_TRACE_META_MAX) {
        free(v);
        return HR_EUSAGE;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return HR_ENOMEM;
    }
    h->meta[h->nmeta].key = k;
    h->meta[h->nmeta].value = v;
    h->nmeta++;
    return HR_OK;
}

const char *hr_trace_header_get(const hr_trace_header_t *h, const char *key)
{
    for (int i = 0; i < h->nmeta; i++)
        if (strcmp(h->meta[i].key, key) == 0)
            return h->meta[i].value;
    return NULL;
}

/* {==== Checker ==== */

void hr_trace_check_init(hr_trace_check_t *c, int kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
}

void hr_trace_check_free(hr_trace_check_t *c)
{
    if (c->state)
        munmap(c->state, c->state_cap);
    c->state = NULL;
    c->state_cap = 0;
}

int hr_trace_check_state(const hr_trace_check_t *c, uint64_t id)
{
    if (id >= c->next_id)
        return HR_ID_FREED;
    return c->ext ? c->ext(c->ext_arg, id) : hr_chk_get(c, id);
}

int hr_trace_check_external(hr_trace_check_t *c, hr_id_state_fn fn, void *arg, hr_err_t *err)
{
    if (c->kind != HR_KIND_ALLOC || c->next_id != 0 || !fn)
        return hr_err_set(err, HR_EUSAGE, "external id states need an allocation-only trace, "
                          "before its first event");
    hr_trace_check_free(c);
    c->ext = fn;
    c->ext_arg = arg;
    return HR_OK;
}

#define set_state hr_chk_set /* the bitmap helpers live in trace_internal.h */

/* The bitmap lives in its own mapping (grown with mremap, zero-filled by the kernel), never in
 * malloc's heap: a replay measuring glibc must not count the reader's bookkeeping. */
static int grow_state(hr_trace_check_t *c, hr_err_t *err)
{
    uint8_t *s = hr_map_grow(c->state, &c->state_cap, c->state_cap ? c->state_cap * 2 : 65536);
    if (!s)
        return hr_err_set(err, HR_ENOMEM, "out of memory tracking %llu ids",
                          (unsigned long long)c->next_id);
    c->state = s;
    return HR_OK;
}

static int check_live(const hr_trace_check_t *c, uint64_t id, const char *what, hr_err_t *err)
{
    if (id >= c->next_id)
        return hr_err_set(err, HR_EFORMAT, "%s of id %llu that was never allocated", what,
                          (unsigned long long)id);
    return HR_OK;
}

static int check_object(const hr_trace_check_t *c, uint64_t id, int op, hr_err_t *err)
{
    if (HR_LIKELY(c->kind == HR_KIND_GRAPH && id < c->next_id && hr_chk_get(c, id) == HR_ID_OBJECT))
        return HR_OK;
    const char *what = hr_op_name(op); /* names only on failure */
    if (c->kind != HR_KIND_GRAPH)
        return hr_err_set(err, HR_EFORMAT, "%s event in an allocation-only trace", what);
    int rc = check_live(c, id, what, err);
    if (rc)
        return rc;
    return hr_err_set(err, HR_EFORMAT, "%s of id %llu, which is not an object", what,
                      (unsigned long long)id);
}

int hr_trace_check_event(hr_trace_check_t *c, const hr_event_t *ev, hr_err_t *err)
{
    int rc;
    switch (ev->op) {
    case HR_OP_ALLOC:
        if (ev->a != c->next_id)
            return hr_err_set(err, HR_EFORMAT, "alloc names id %llu but the next id is %llu",
                              (unsigned long long)ev->a, (unsigned long long)c->next_id);
        if (ev->domain >= HR_DOMAIN_COUNT)
            return hr_err_set(err, HR_EFORMAT, "alloc with unknown domain %u", ev->domain);
        if (ev->flags & ~HR_F_ALL)
            return hr_err_set(err, HR_EFORMAT, "alloc with unknown flags 0x%x", ev->flags);
        if (ev->b > HR_TRACE_MAX_SIZE)
            return hr_err_set(err, HR_EFORMAT,
                              "size overflow: alloc of %llu bytes exceeds the limit of 2^47",
                              (unsigned long long)ev->b);
        if ((ev->flags & HR_F_OBJECT) && c->kind != HR_KIND_GRAPH)
            return hr_err_set(err, HR_EFORMAT, "object flag in an allocation-only trace");
        if ((ev->flags & HR_F_TYPED) && ev->tag >= c->ntypes)
            return hr_err_set(err, HR_EFORMAT, "alloc names type %u but only %llu types are defined",
                              ev->tag, (unsigned long long)c->ntypes);
        if ((ev->flags & HR_F_ALIGNED) && (ev->align_log2 < 4 || ev->align_log2 > 30))
            return hr_err_set(err, HR_EFORMAT, "alloc alignment 2^%u outside 2^4 .. 2^30",
                              ev->align_log2);
        if (!c->ext) {
            if (!hr_chk_has_room(c) && (rc = grow_state(c, err)))
                return rc;
            set_state(c, c->next_id, (ev->flags & HR_F_OBJECT) ? HR_ID_OBJECT : HR_ID_BLOCK);
        }
        c->next_id++;
        return HR_OK;
    case HR_OP_FREE:
        if ((rc = check_live(c, ev->a, "free", err)))
            return rc;
        switch (hr_trace_check_state(c, ev->a)) {
        case HR_ID_FREED:
            return hr_err_set(err, HR_EFORMAT, "free of id %llu that is not live (double free)",
                              (unsigned long long)ev->a);
        case HR_ID_OBJECT:
            return hr_err_set(err, HR_EFORMAT,
                              "explicit free of object %llu (in a graph trace the collector "
                              "decides when objects die)",
                              (unsigned long long)ev->a);
        }
        if (!c->ext)
            set_state(c, ev->a, HR_ID_FREED);
        return HR_OK;
    case HR_OP_REALLOC:
        if ((rc = check_live(c, ev->a, "realloc", err)))
            return rc;
        if (hr_trace_check_state(c, ev->a) == HR_ID_FREED)
            return hr_err_set(err, HR_EFORMAT, "realloc of id %llu that is not live",
                              (unsigned long long)ev->a);
        if (ev->b > HR_TRACE_MAX_SIZE)
            return hr_err_set(err, HR_EFORMAT,
                              "size overflow: realloc to %llu bytes exceeds the limit of 2^47",
                              (unsigned long long)ev->b);
        return HR_OK;
    case HR_OP_INCREF:
    case HR_OP_DECREF:
    case HR_OP_DIED:
        return check_object(c, ev->a, ev->op, err);
    case HR_OP_LINK:
    case HR_OP_UNLINK:
        if ((rc = check_object(c, ev->a, ev->op, err)))
            return rc;
        return check_object(c, ev->b, ev->op, err);
    case HR_OP_TYPE:
        if (ev->tag != c->ntypes)
            return hr_err_set(err, HR_EFORMAT, "type defines id %u but the next type id is %llu",
                              ev->tag, (unsigned long long)c->ntypes);
        if (ev->a > HR_TRACE_STRING_LIMIT)
            return hr_err_set(err, HR_EFORMAT, "type name of %llu bytes is too long",
                              (unsigned long long)ev->a);
        c->ntypes++;
        return HR_OK;
    case HR_OP_GC_BEGIN:
    case HR_OP_GC_END:
        if (ev->tag > 2)
            return hr_err_set(err, HR_EFORMAT, "gc event names generation %u (0..2 exist)",
                              ev->tag);
        return HR_OK;
    case HR_OP_STATS:
    case HR_OP_PHASE:
    case HR_OP_UNKNOWN:
        if (ev->a > HR_TRACE_STRING_LIMIT)
            return hr_err_set(err, HR_EFORMAT, "%s payload of %llu bytes is too long",
                              hr_op_name(ev->op), (unsigned long long)ev->a);
        if (ev->op == HR_OP_UNKNOWN && (ev->tag < HR_W_SIZED || ev->tag > 0xff))
            return hr_err_set(err, HR_EFORMAT, "unknown record 0x%x is not a sized opcode",
                              ev->tag);
        return HR_OK;
    case HR_OP_GC_CONTROL:
        if (ev->tag >= HR_GC_ACTIONS)
            return hr_err_set(err, HR_EFORMAT, "gc control action %u is unknown", ev->tag);
        if (ev->tag == HR_GC_COLLECT && ev->a > 2)
            return hr_err_set(err, HR_EFORMAT, "gc collect of generation %llu (0..2 exist)",
                              (unsigned long long)ev->a);
        if (ev->tag == HR_GC_THRESHOLD && (ev->a > UINT32_MAX))
            return hr_err_set(err, HR_EFORMAT, "gc threshold out of range");
        return HR_OK;
    case HR_OP_GC_TRACK:
        if (ev->tag >= HR_TRACK_ACTIONS)
            return hr_err_set(err, HR_EFORMAT, "gc track action %u is unknown", ev->tag);
        if (ev->tag == HR_TRACK && ev->b > 2)
            return hr_err_set(err, HR_EFORMAT, "gc track into generation %llu (0..2 exist)",
                              (unsigned long long)ev->b);
        return check_object(c, ev->a, ev->op, err);
    case HR_OP_GC_SURVIVORS:
        if (c->kind != HR_KIND_ALLOC)
            return hr_err_set(err, HR_EFORMAT, "gc survivors in a graph trace (its collector "
                              "counts the survivors itself)");
        return HR_OK;
    case HR_OP_ARENA_MAP:
    case HR_OP_ARENA_UNMAP:
        return HR_OK;
    default:
        return hr_err_set(err, HR_EFORMAT, "event with invalid op %u", ev->op);
    }
}

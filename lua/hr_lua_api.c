/* hr_lua_api.c: what the Lua API computes in process: trace facts (hr.info), the reference-count
 * distribution (hr.refcounts), and the registries (hr.allocators, hr.collectors, hr.generators).
 *
 * None of these runs an allocator under test: measured replays always run in a child process
 * (hr.replay in hr.lua), so the interpreter never shares a process with what it measures.
 */
#include "hr_alloc.h"
#include "hr_gc.h"
#include "hr_gen.h"
#include "hr_lua_internal.h"
#include "hr_refcounts.h"
#include "hr_trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BATCH 4096

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static const char *const info_opts[] = {"partial", NULL};

/* hr.info(path [, {partial = bool}]) -> table
 *   path, bytes, crc32, kind ("alloc"|"graph"), version, meta {key = value}, events, ids, types,
 *   frames, complete, cut_short, counts {op name = n}, objects, gc_allocs,
 *   peak_live_blocks, peak_live_bytes (allocation-only view: objects live to the end) */
static int l_info(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.info", NULL);
    hr_lua_check_options(L, 2, "hr.info", info_opts);
    int partial = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "partial");
        partial = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    hr_err_t err = {0};
    hr_trace_read_opts_t ro = {.partial = partial};
    hr_trace_reader_t *r;
    if (hr_trace_open(&r, path, &ro, &err))
        return luaL_error(L, "%s", err.msg);
    uint64_t count[HR_OP_COUNT] = {0}, objects = 0, gcflag = 0;
    uint64_t *size = NULL;
    size_t cap = 0;
    uint64_t blocks = 0, bytes = 0, peak_blocks = 0, peak_bytes = 0;
    uint32_t crc = 0;
    hr_event_t *evs = malloc(BATCH * sizeof *evs);
    int rc = evs ? HR_OK : hr_err_set(&err, HR_ENOMEM, "out of memory");
    while (!rc) {
        size_t got;
        if ((rc = hr_trace_read(r, evs, BATCH, &got, &err)) || got == 0)
            break;
        for (size_t i = 0; i < got && !rc; i++) {
            const hr_event_t *ev = &evs[i];
            count[ev->op]++;
            switch (ev->op) {
            case HR_OP_ALLOC:
                objects += (ev->flags & HR_F_OBJECT) != 0;
                gcflag += (ev->flags & HR_F_GC) != 0;
                if (ev->a >= cap) {
                    size_t ncap = cap ? cap * 2 : 65536;
                    while (ncap <= ev->a)
                        ncap *= 2;
                    uint64_t *p = realloc(size, ncap * sizeof *p);
                    if (!p) {
                        rc = hr_err_set(&err, HR_ENOMEM, "out of memory");
                        break;
                    }
                    size = p, cap = ncap;
                }
                size[ev->a] = ev->b;
                blocks++, bytes += ev->b;
                break;
            case HR_OP_FREE:
                blocks--, bytes -= size[ev->a];
                break;
            case HR_OP_REALLOC:
                bytes += ev->b - size[ev->a];
                size[ev->a] = ev->b;
                break;
            default:
                break;
            }
            if (bytes > peak_bytes)
                peak_bytes = bytes;
            if (blocks > peak_blocks)
                peak_blocks = blocks;
        }
    }
    free(evs);
    free(size);
    if (rc) {
        hr_trace_close(r);
        return luaL_error(L, "%s", err.msg);
    }
    {
        FILE *f = fopen(path, "rb");
        unsigned char buf[1 << 16];
        size_t n;
        while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
            crc = hr_crc32(crc, buf, n);
        if (f)
            fclose(f);
    }
    const hr_trace_header_t *h = hr_trace_header(r);
    const hr_trace_status_t *st = hr_trace_status(r);
    struct stat sb;
    lua_newtable(L);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    set_int(L, "bytes", stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "crc32");
    lua_pushstring(L, hr_kind_name(h->kind));
    lua_setfield(L, -2, "kind");
    set_int(L, "version", (uint64_t)h->version);
    lua_newtable(L);
    for (int i = 0; i < h->nmeta; i++) {
        lua_pushstring(L, h->meta[i].value);
        lua_setfield(L, -2, h->meta[i].key);
    }
    lua_setfield(L, -2, "meta");
    set_int(L, "events", st->events);
    set_int(L, "ids", st->ids);
    set_int(L, "types", st->types);
    set_int(L, "frames", st->frames);
    lua_pushboolean(L, st->complete);
    lua_setfield(L, -2, "complete");
    lua_pushboolean(L, st->cut_short);
    lua_setfield(L, -2, "cut_short");
    lua_newtable(L);
    for (int op = 1; op < HR_OP_COUNT; op++)
        if (count[op])
            set_int(L, hr_op_name(op), count[op]);
    lua_setfield(L, -2, "counts");
    set_int(L, "objects", objects);
    set_int(L, "gc_allocs", gcflag);
    set_int(L, "peak_live_blocks", peak_blocks);
    set_int(L, "peak_live_bytes", peak_bytes);
    hr_trace_close(r);
    return 1;
}

static const char *const rc_opts[] = {"partial", NULL};

/* hr.refcounts(path [, {partial = bool}]) -> table
 *   objects, ops, events, max (largest count), below_zero, kind,
 *   hist = {{count = c, objects = n}, ...} (counts with n > 0, ascending),
 *   fit = {[b] = objects whose largest count fits in b bits} for b = 1..16 */
static int l_refcounts(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.refcounts", NULL);
    hr_lua_check_options(L, 2, "hr.refcounts", rc_opts);
    int partial = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "partial");
        partial = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    hr_rc_stats_t st;
    hr_err_t err = {0};
    if (hr_refcounts(path, partial, &st, &err)) {
        hr_rc_stats_free(&st);
        return luaL_error(L, "%s", err.msg);
    }
    lua_newtable(L);
    set_int(L, "objects", st.objects);
    set_int(L, "ops", st.ops);
    set_int(L, "events", st.events);
    set_int(L, "max", st.max_count);
    set_int(L, "below_zero", st.below_zero);
    lua_pushstring(L, hr_kind_name(st.kind));
    lua_setfield(L, -2, "kind");
    lua_newtable(L);
    lua_Integer k = 0;
    for (size_t c = 0; c < st.nhist; c++)
        if (st.hist[c]) {
            lua_createtable(L, 0, 2);
            set_int(L, "count", c);
            set_int(L, "objects", st.hist[c]);
            lua_rawseti(L, -2, ++k);
        }
    lua_setfield(L, -2, "hist");
    lua_newtable(L);
    for (unsigned b = 1; b <= 16; b++) {
        lua_pushinteger(L, (lua_Integer)hr_rc_fit_bits(&st, b));
        lua_rawseti(L, -2, b);
    }
    lua_setfield(L, -2, "fit");
    hr_rc_stats_free(&st);
    return 1;
}

/* hr.allocators() -> array of backend names built in (what `heapreplay allocators` lists) */
static int l_allocators(lua_State *L)
{
    lua_newtable(L);
    lua_Integer i = 0;
    for (const hr_alloc_vt *const *a = hr_alloc_registry(); *a; a++) {
        lua_pushstring(L, (*a)->name);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* hr.collectors() -> array of collector names */
static int l_collectors(lua_State *L)
{
    lua_newtable(L);
    lua_Integer i = 0;
    for (const hr_gc_vt *const *g = hr_gc_registry(); *g; g++) {
        lua_pushstring(L, (*g)->name);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* hr.generators() -> array of built-in generator names (Lua workloads are files) */
static int l_generators(lua_State *L)
{
    lua_newtable(L);
    lua_Integer i = 0;
    for (const hr_gen_vt *const *g = hr_gen_registry(); *g; g++) {
        lua_pushstring(L, (*g)->name);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* hr.check_spec(kind, spec) -> true, or false and the message: would a replay accept this
 * allocator ("allocator") or collector ("collector") spec, parameters and values included? One
 * is created and destroyed (the driver checks an experiment's specs before its jobs run). */
static void check_reclaim(void *engine, uint64_t id) { (void)engine, (void)id; }
static int l_check_spec(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1), *spec = luaL_checkstring(L, 2);
    hr_err_t err = {0};
    if (strcmp(kind, "allocator") == 0) {
        hr_alloc_t *a = NULL;
        if (hr_alloc_create(&a, spec, &err) == HR_OK)
            hr_alloc_destroy(a);
    } else if (strcmp(kind, "collector") == 0) {
        static const uint64_t event = 0;
        hr_gc_env_t env = {.reclaim = check_reclaim, .event = &event};
        hr_gc_t *g = NULL;
        if (hr_gc_create(&g, spec, &env, &err) == HR_OK)
            hr_gc_destroy(g);
    } else {
        return luaL_argerror(L, 1, "\"allocator\" or \"collector\" expected");
    }
    lua_pushboolean(L, err.code == HR_OK);
    if (err.code == HR_OK)
        return 1;
    lua_pushstring(L, err.msg);
    return 2;
}

/* hr._did_you_mean(name, names) -> " (did you mean 'X'?)" or "": hr_did_you_mean over an array
 * of names (any values, as tostring gives them), for the messages of hr.lua and the driver. */
static int l_did_you_mean(lua_State *L)
{
    const char *name = luaL_tolstring(L, 1, NULL);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        luaL_tolstring(L, -1, NULL);
        lua_remove(L, -2);
        luaL_addvalue(&b); /* the name, then a separator no name is made of */
        luaL_addchar(&b, '\n');
    }
    luaL_pushresult(&b);
    char hint[160];
    lua_pushstring(L, hr_did_you_mean_in(hint, sizeof hint, name, lua_tostring(L, -1), "\n"));
    return 1;
}

static const luaL_Reg api_funcs[] = {{"info", l_info},
                                     {"_did_you_mean", l_did_you_mean},
                                     {"check_spec", l_check_spec},
                                     {"refcounts", l_refcounts},
                                     {"allocators", l_allocators},
                                     {"collectors", l_collectors},
                                     {"generators", l_generators},
                                     {NULL, NULL}};

void hr_lua_open_api(lua_State *L) { luaL_setfuncs(L, api_funcs, 0); }

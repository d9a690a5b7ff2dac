/* hr_lua.c: the Lua binding: module `hr`, the trace-writer userdata, generator scripts, and the
 * entry of `heapreplay run` (hr_lua_run). hr_lua_internal.h maps the other files.
 *
 * A generator script defines `kind` ("alloc" or "graph") and a function generate(w, params):
 *
 *   kind = "graph"
 *   function generate(w, params)
 *     local n = hr.num(params.n, 1000)
 *     local list = w:alloc(56, "obj", "object gc", w:type("list"))
 *     ...
 *   end
 *
 * Writer methods (ids are Lua integers): alloc(size, domain, flags?, type?) -> id, free(id),
 * realloc(id, size), incref(id), decref(id), link(src, dst), unlink(src, dst), died(id),
 * type(name) -> type id (defined once per name), phase(name), events(), next_id().
 * Every call is checked like any trace event: a double free or an unknown id raises a Lua error
 * that names the script's line.
 */
#include "hr_lua.h"
#include "hr_lua_internal.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define WRITER_MT "hr.writer"

typedef struct lwriter {
    hr_trace_writer_t *w; /* owned until closed by the C side */
    lua_State *L;
    int types_ref;        /* registry ref of a name -> type id table */
} lwriter_t;

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud, (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static lwriter_t *check_writer(lua_State *L)
{
    lwriter_t *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (!lw->w)
        luaL_error(L, "the trace writer is closed");
    return lw;
}

static uint64_t check_id(lua_State *L, int arg)
{
    lua_Integer v = luaL_checkinteger(L, arg);
    luaL_argcheck(L, v >= 0, arg, "ids are not negative");
    return (uint64_t)v;
}

/* Raise a Lua error from a writer failure. */
static int werr(lua_State *L, const hr_err_t *err) { return luaL_error(L, "%s", err->msg); }

static int parse_domain(lua_State *L, int arg)
{
    const char *d = luaL_optstring(L, arg, "obj");
    for (int i = 0; i < HR_DOMAIN_COUNT; i++)
        if (strcmp(d, hr_domain_name(i)) == 0)
            return i;
    return luaL_argerror(L, arg, "domain must be raw, mem, obj or native");
}

static int parse_flags(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return 0;
    if (lua_isinteger(L, arg)) {
        /* a mask of the words' bits; anything else (256, a negative number) must not be cut
         * down to a byte that means something else (256 read as 0: no flags at all) */
        lua_Integer v = lua_tointeger(L, arg);
        luaL_argcheck(L, v >= 0 && v <= (HR_F_GC | HR_F_OBJECT | HR_F_ZERO), arg,
                      "flags as a number are a mask of gc (1), object (2), zero (4)");
        return (int)v;
    }
    const char *s = luaL_checkstring(L, arg);
    int flags = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n == 0)
            break;
        if (n == 2 && strncmp(s, "gc", 2) == 0)
            flags |= HR_F_GC;
        else if (n == 6 && strncmp(s, "object", 6) == 0)
            flags |= HR_F_OBJECT;
        else if (n == 4 && strncmp(s, "zero", 4) == 0)
            flags |= HR_F_ZERO;
        else
            return luaL_argerror(L, arg, "flags are words among: object gc zero");
        s += n;
    }
    return flags;
}

static int w_alloc(lua_State *L)
{
    lwriter_t *lw = check_writer(L);
    lua_Integer size = luaL_checkinteger(L, 2);
    luaL_argcheck(L, size >= 0, 2, "sizes are not negative");
    int dom = parse_domain(L, 3), flags = parse_flags(L, 4);
    uint32_t type = 0;
    if (!lua_isnoneornil(L, 5)) {
        lua_Integer t = luaL_checkinteger(L, 5);
        luaL_argcheck(L, t >= 0 && t <= UINT32_MAX, 5, "bad type id");
        type = (uint32_t)t;
        flags |= HR_F_TYPED;
    }
    hr_err_t err = {0};
    uint64_t id;
    if (hr_trace_put_alloc(lw->w, (uint64_t)size, dom, flags, type, &id, &err))
        return werr(L, &err);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static int put_id(lua_State *L, int op)
{
    lwriter_t *lw = check_writer(L);
    hr_err_t err = {0};
    if (hr_trace_put_id(lw->w, op, check_id(L, 2), &err))
        return werr(L, &err);
    return 0;
}

static int w_free(lua_State *L) { return put_id(L, HR_OP_FREE); }
static int w_incref(lua_State *L) { return put_id(L, HR_OP_INCREF); }
static int w_decref(lua_State *L) { return put_id(L, HR_OP_DECREF); }
static int w_died(lua_State *L) { return put_id(L, HR_OP_DIED); }

static int w_realloc(lua_State *L)
{
    lwriter_t *lw = check_writer(L);
    lua_Integer size = luaL_checkinteger(L, 3);
    luaL_argcheck(L, size >= 0, 3, "sizes are not negative");
    hr_err_t err = {0};
    if (hr_trace_put_realloc(lw->w, check_id(L, 2), (uint64_t)size, &err))
        return werr(L, &err);
    return 0;
}

static int put_link(lua_State *L, int op)
{
    lwriter_t *lw = check_writer(L);
    hr_err_t err = {0};
    if (hr_trace_put_link(lw->w, op, check_id(L, 2), check_id(L, 3), &err))
        return werr(L, &err);
    return 0;
}

static int w_link(lua_State *L) { return put_link(L, HR_OP_LINK); }
static int w_unlink(lua_State *L) { return put_link(L, HR_OP_UNLINK); }

static int w_type(lua_State *L)
{
    lwriter_t *lw = check_writer(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lw->types_ref);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) == LUA_TNUMBER)
        return 1; /* defined before */
    lua_pop(L, 1);
    uint32_t id = (uint32_t)hr_trace_writer_check(lw->w)->ntypes;
    hr_err_t err = {0};
    if (hr_trace_put_string(lw->w, HR_OP_TYPE, id, name, len, &err))
        return werr(L, &err);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, id);
    lua_rawset(L, -3);
    lua_pushinteger(L, id);
    return 1;
}

static int w_phase(lua_State *L)
{
    lwriter_t *lw = check_writer(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    hr_err_t err = {0};
    if (hr_trace_put_string(lw->w, HR_OP_PHASE, 0, name, len, &err))
        return werr(L, &err);
    return 0;
}

static int w_events(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)hr_trace_writer_events(check_writer(L)->w));
    return 1;
}

static int w_next_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)hr_trace_writer_next_id(check_writer(L)->w));
    return 1;
}

static const luaL_Reg writer_methods[] = {
    {"alloc", w_alloc},   {"free", w_free},     {"realloc", w_realloc}, {"incref", w_incref},
    {"decref", w_decref}, {"link", w_link},     {"unlink", w_unlink},   {"died", w_died},
    {"type", w_type},     {"phase", w_phase},   {"events", w_events},   {"next_id", w_next_id},
    {NULL, NULL}};

/* hr.num(value, default): a number from a parameter string (with K/M/G suffixes), or default. */
static int l_num(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 2);
        return 1;
    }
    if (lua_isinteger(L, 1) || lua_isnumber(L, 1)) {
        lua_settop(L, 1);
        return 1;
    }
    const char *s = luaL_checkstring(L, 1);
    uint64_t v;
    double d;
    if (hr_parse_size(s, &v) == 0)
        lua_pushinteger(L, (lua_Integer)v);
    else if (hr_parse_double(s, &d) == 0)
        lua_pushnumber(L, d);
    else
        return luaL_error(L, "parameter value '%s' is not a number", s);
    return 1;
}

static const luaL_Reg hr_funcs[] = {{"num", l_num}, {NULL, NULL}};

/* Load one embedded Lua source (an array of lines) as a chunk named `name`. */
static int load_embedded(lua_State *L, const char *const *lines, const char *name)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *const *l = lines; *l; l++)
        luaL_addstring(&b, *l);
    luaL_pushresult(&b);
    size_t len;
    const char *src = lua_tolstring(L, -1, &len);
    int rc = luaL_loadbufferx(L, src, len, name, "t");
    lua_remove(L, -2);
    return rc;
}

static int open_hr(lua_State *L)
{
    luaL_newlib(L, hr_funcs);
    lua_pushstring(L, HR_TRACE_VERSION == 1 ? "1" : "?");
    lua_setfield(L, -2, "trace_version");
    hr_lua_open_sys(L);
    hr_lua_open_data(L);
    hr_lua_open_api(L);
    /* the high-level API (hr.lua) and the experiment driver (experiment.lua), embedded */
    if (load_embedded(L, hr_lua_src_hr, "=[heapreplay hr.lua]") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    if (load_embedded(L, hr_lua_src_experiment, "=[heapreplay experiment.lua]") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "_driver");
    return 1;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* A fresh interpreter on plain malloc (never the allocator being measured: measured replays run
 * in child processes) with the standard libraries and `hr` loaded. NULL on failure. */
static lua_State *new_state(hr_err_t *err)
{
    lua_State *L = lua_newstate(l_alloc, NULL);
    if (!L) {
        hr_err_set(err, HR_ENOMEM, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "hr", open_hr, 1);
    lua_pop(L, 1);
    return L;
}

/* Lua: params_table -> proxy, unread(): the proxy reads (and writes) through to the table and
 * notes each key read; pairs() over it counts as reading them all; unread() lists the keys never
 * read, sorted, comma-separated ("" when none). */
static const char track_params_src[] =
    "local t = ...\n"
    "local seen = {}\n"
    "local proxy = setmetatable({}, {\n"
    "  __index = function(_, k) seen[k] = true; return t[k] end,\n"
    "  __newindex = function(_, k, v) t[k] = v end,\n"
    "  __pairs = function() for k in pairs(t) do seen[k] = true end; return next, t, nil end})\n"
    "return proxy, function()\n"
    "  local u = {}\n"
    "  for k in pairs(t) do if not seen[k] then u[#u + 1] = k end end\n"
    "  table.sort(u)\n"
    "  return table.concat(u, ', ')\n"
    "end\n";

int hr_lua_gen(const char *script, const hr_spec_t *params, const char *out_path,
               const hr_trace_write_opts_t *opts, hr_err_t *err)
{
    lua_State *L = new_state(err);
    if (!L)
        return err ? err->code : HR_ENOMEM;
    hr_trace_writer_t *w = NULL;
    int rc = HR_OK;
    lua_pushcfunction(L, traceback);
    int tb = lua_gettop(L);
    if (luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 0, tb) != LUA_OK) {
        rc = hr_err_set(err, HR_EUSAGE, "%s", lua_tostring(L, -1));
        goto out;
    }
    int kind = HR_KIND_ALLOC;
    lua_getglobal(L, "kind");
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "graph") == 0)
        kind = HR_KIND_GRAPH;
    else if (!lua_isnil(L, -1) && !(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "alloc") == 0)) {
        rc = hr_err_set(err, HR_EUSAGE, "%s: 'kind' must be \"alloc\" or \"graph\"", script);
        goto out;
    }
    lua_pop(L, 1);
    if (lua_getglobal(L, "generate") != LUA_TFUNCTION) {
        rc = hr_err_set(err, HR_EUSAGE, "%s: the script defines no function generate(w, params)",
                        script);
        goto out;
    }
    hr_trace_header_t h;
    hr_trace_header_init(&h, kind);
    hr_trace_header_set(&h, "producer", "heapreplay gen (Lua)");
    hr_trace_header_set(&h, "generator", script);
    hr_trace_write_opts_t o = opts ? *opts : (hr_trace_write_opts_t){0};
    o.atomic = 1;
    rc = hr_trace_writer_open(&w, out_path, &h, &o, err);
    hr_trace_header_free(&h);
    if (rc)
        goto out;
    lwriter_t *lw = lua_newuserdatauv(L, sizeof *lw, 0);
    lw->w = w;
    lw->L = L;
    lua_newtable(L);
    lw->types_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_newmetatable(L, WRITER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, writer_methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    /* params, seen through a proxy that notes which ones the script reads (below) */
    if (luaL_loadstring(L, track_params_src) != LUA_OK) {
        rc = hr_err_set(err, HR_EINTERNAL, "%s", lua_tostring(L, -1));
        lw->w = NULL;
        goto out;
    }
    lua_newtable(L);
    for (int i = 0; i < params->nparams; i++) {
        if (!params->params[i].key)
            continue;
        lua_pushstring(L, params->params[i].value);
        lua_setfield(L, -2, params->params[i].key);
    }
    lua_call(L, 1, 2); /* generate w proxy unread */
    lua_insert(L, -4); /* unread generate w proxy */
    if (lua_pcall(L, 2, 0, tb) != LUA_OK) {
        rc = hr_err_set(err, HR_EUSAGE, "%s", lua_tostring(L, -1));
        lw->w = NULL;
        goto out;
    }
    lw->w = NULL;
    /* a parameter the workload never read is a mistake (a misspelt name would otherwise give
     * a trace of the default size without a word), as for the built-in generators */
    lua_call(L, 0, 1);
    if (lua_tostring(L, -1)[0]) {
        rc = hr_err_set(err, HR_EUSAGE, "%s: the workload never read the parameter(s) %s "
                        "(misspelt? no trace written)", script, lua_tostring(L, -1));
        goto out;
    }
    rc = hr_trace_writer_close(w, err);
    w = NULL;
out:
    hr_trace_writer_abort(w);
    lua_close(L);
    return rc;
}

/* {==== heapreplay run ==== */

static int run_main(lua_State *L)
{
    const hr_lua_run_opts_t *o = lua_touserdata(L, 1);
    lua_getglobal(L, "hr");
    lua_getfield(L, -1, "_driver");
    lua_getfield(L, -1, "run_file");
    lua_pushstring(L, o->script);
    lua_newtable(L);
    lua_pushstring(L, o->out ? o->out : "results");
    lua_setfield(L, -2, "out");
    if (o->jobs > 0) {
        lua_pushinteger(L, o->jobs);
        lua_setfield(L, -2, "jobs");
    }
    lua_pushboolean(L, o->resume);
    lua_setfield(L, -2, "resume");
    lua_pushboolean(L, o->quiet);
    lua_setfield(L, -2, "quiet");
    if (o->command_line) {
        lua_pushstring(L, o->command_line);
        lua_setfield(L, -2, "command_line");
    }
    lua_newtable(L);
    for (int i = 0; o->params && i < o->params->nparams; i++) {
        if (!o->params->params[i].key)
            continue;
        lua_pushstring(L, o->params->params[i].value);
        lua_setfield(L, -2, o->params->params[i].key);
    }
    lua_setfield(L, -2, "params");
    lua_call(L, 2, 0);
    return 0;
}

/* The place of the innermost Lua function on the stack ("script.lua:12: "), or "". */
static void push_lua_where(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
    lua_pushliteral(L, "");
}

/* The run's message handler. A driver failure with an exit status ({msg, status}: experiment.lua,
 * fail_status) goes through as it is; any other error becomes its message (with a traceback when
 * HR_LUA_TRACEBACK is set). A script's error() with something that is not a string is reported
 * with the place it was raised. */
static int run_handler(lua_State *L)
{
    if (lua_istable(L, 1) && lua_getfield(L, 1, "status") == LUA_TNUMBER &&
        lua_getfield(L, 1, "msg") == LUA_TSTRING) {
        lua_settop(L, 1);
        return 1;
    }
    lua_settop(L, 1);
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        push_lua_where(L);
        msg = lua_pushfstring(L, "%serror object is a %s, not a message (error() wants a string)",
                              lua_tostring(L, -1), luaL_typename(L, 1));
    }
    const char *tb = getenv("HR_LUA_TRACEBACK");
    if (tb && *tb && strcmp(tb, "0") != 0)
        luaL_traceback(L, L, msg, 1);
    else
        lua_pushstring(L, msg);
    return 1;
}

int hr_lua_run(const hr_lua_run_opts_t *o, hr_err_t *err)
{
    lua_State *L = new_state(err);
    if (!L)
        return err ? err->code : HR_ENOMEM;
    lua_pushcfunction(L, run_handler);
    lua_pushcfunction(L, run_main);
    lua_pushlightuserdata(L, (void *)o);
    int rc = HR_OK;
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        int code = HR_EUSAGE; /* the script's own errors */
        if (lua_istable(L, -1)) { /* {msg, status} from run_handler */
            lua_getfield(L, -1, "status");
            int status = (int)lua_tointeger(L, -1);
            code = status == 2 ? HR_EFORMAT : status == 3 ? HR_EIO : HR_EUSAGE;
            lua_getfield(L, -2, "msg");
        }
        const char *msg = lua_tostring(L, -1);
        if (!msg)
            msg = "(no message)";
        if (strstr(msg, "interrupted by signal"))
            code = HR_EINTERNAL;
        rc = hr_err_set(err, code, "%s", msg);
    }
    lua_close(L);
    return rc;
}

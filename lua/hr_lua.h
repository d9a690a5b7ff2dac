/* hr_lua.h: the Lua 5.4 binding of heapreplay (module `hr`), kept apart from the C core: no
 * other layer includes lua.h.
 *
 * The interpreter runs on its own allocator (plain malloc through lua_newstate's hook, never the
 * allocator being measured). Errors raised by C functions carry the script's file and line
 * (luaL_error adds them); hr_lua_* functions here turn a failed script into an hr_err_t.
 */
#ifndef HR_LUA_H
#define HR_LUA_H

#include "hr_common.h"
#include "hr_trace.h"

/* Run a generator script: the script receives the writer as `w` and the key=value parameters
 * as the table `params` (values are strings; hr.num(params.x, default) converts). The trace
 * kind comes from the script's global `kind` ("alloc" or "graph", read before running the body:
 * the script sets it at top level as `kind = "graph"`; default alloc). Writes out_path atomically. */
int hr_lua_gen(const char *script, const hr_spec_t *params, const char *out_path,
               const hr_trace_write_opts_t *opts, hr_err_t *err);

/* heapreplay run: run an experiment script (lua/experiment.lua is the driver). */
typedef struct hr_lua_run_opts {
    const char *script;       /* the experiment script */
    const char *out;          /* results root (default "results") */
    int jobs;                 /* parallel jobs; 0: one per online CPU */
    int resume;               /* keep finished jobs of an interrupted run */
    int quiet;                /* no progress messages */
    const hr_spec_t *params;  /* key=value parameters for the script (may be NULL) */
    const char *command_line; /* for provenance (may be NULL) */
} hr_lua_run_opts_t;

/* Run an experiment script. Errors carry the script's file and line. A sweep stopped by SIGINT
 * or SIGTERM fails with HR_EINTERNAL and a message containing "interrupted by signal". */
int hr_lua_run(const hr_lua_run_opts_t *o, hr_err_t *err);

#endif

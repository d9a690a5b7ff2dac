/* hr_lua_internal.h: what the parts of the Lua binding share (not for other layers).
 *
 *   hr_lua.c       module `hr` assembly, the trace-writer userdata, generator scripts,
 *                  `heapreplay run` (hr_lua_run)
 *   hr_lua_sys.c   files (atomic writes), processes and the parallel sweep scheduler (hr.exec,
 *                  hr.sweep), hashing, machine and build facts
 *   hr_lua_data.c  the JSON and CSV codecs (hr.json_*, hr.read_json, hr.write_json, hr.null,
 *                  hr.read_csv, hr.write_csv)
 *   hr_lua_api.c   trace facts computed in process (hr.info, hr.refcounts) and the registries
 *                  (hr.allocators, hr.collectors, hr.generators)
 *   hr.lua         the high-level API written in Lua on top of those (hr.replay, hr.gen, hr.record,
 *                  hr.plot, hr.hyperfine, ...), embedded into the binary
 *   experiment.lua the experiment driver (`heapreplay run`, hr.run), embedded into the binary
 */
#ifndef HR_LUA_INTERNAL_H
#define HR_LUA_INTERNAL_H

#include "hr_common.h"

#include <lauxlib.h>
#include <lua.h>

/* Add the functions of hr_lua_sys.c / hr_lua_data.c / hr_lua_api.c to the table at the top of
 * the stack (hr_lua_open_data also sets hr.null). */
void hr_lua_open_sys(lua_State *L);
void hr_lua_open_data(lua_State *L);
void hr_lua_open_api(lua_State *L);

/* Registry key of the JSON null sentinel (hr.null). */
#define HR_LUA_NULL_KEY "hr.null"

/* Write data to path atomically through hr_out (hr_out.h: TARGET.tmp.PID beside the symlink's
 * target, fsync, rename, fsync of the directory; a device or FIFO is written through). Returns
 * 0 or a negative hr_code_t with err saying what and where. */
int hr_lua_write_atomic(const char *path, const void *data, size_t len, hr_err_t *err);
/* hr.read_file(path) as a C function: the contents (raises, naming the file, when it cannot be
 * read). */
int hr_lua_read_file(lua_State *L);

/* Check that the table argument `arg` of function `fname` holds only keys among `known`
 * (NULL-terminated); raise "bad argument #arg to 'fname' (unknown option 'x'; known: ...)". */
void hr_lua_check_options(lua_State *L, int arg, const char *fname, const char *const *known);

/* luaL_checkstring/luaL_checklstring/luaL_checktype, but the message names the function as the
 * scripts call it ('hr.info', not 'info'). */
const char *hr_lua_checklstring(lua_State *L, int arg, const char *fname, size_t *len);
void hr_lua_checktype(lua_State *L, int arg, const char *fname, int type);

/* The embedded Lua sources (generated from hr.lua and experiment.lua at build time). */
extern const char *const hr_lua_src_hr[];
extern const char *const hr_lua_src_experiment[];

#endif

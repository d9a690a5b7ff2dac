/* hr_lua_data.c: the data formats of the Lua binding: JSON (hr.json_decode, hr.json_encode,
 * hr.read_json, hr.write_json, the hr.null sentinel) and CSV (hr.read_csv, hr.write_csv). Files
 * are read with hr.read_file and written atomically (hr_lua_sys.c).
 *
 * JSON: RFC 8259 text to Lua values and back. Objects become tables with string keys, arrays
 * sequences, null the light userdata hr.null (so an array keeps its length across a null);
 * encoding writes keys in sorted order, so equal values give equal text (results diff cleanly).
 */
#include "hr_lua_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {====================================================================
 * JSON
 * ==================================================================== */

typedef struct jparse {
    lua_State *L;
    const char *s, *p, *end, *name;
    int depth;
} jparse_t;

static void jerror(jparse_t *j, const char *what)
{
    size_t line = 1;
    for (const char *c = j->s; c < j->p; c++)
        line += *c == '\n';
    luaL_error(j->L, "%s:%d: bad JSON: %s", j->name, (int)line, what);
}

static void jws(jparse_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void jvalue(jparse_t *j);

static unsigned jhex4(jparse_t *j)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p >= j->end)
            jerror(j, "\\u escape cut short");
        char c = *j->p;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            jerror(j, "bad \\u escape");
    }
    return v;
}

static void jutf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    int n;
    if (cp < 0x80)
        u[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    luaL_addlstring(b, u, (size_t)n);
}

static void jstring(jparse_t *j)
{
    luaL_Buffer b;
    j->p++; /* opening quote */
    luaL_buffinit(j->L, &b);
    for (;;) {
        if (j->p >= j->end)
            jerror(j, "string not closed");
        char c = *j->p++;
        if (c == '"')
            break;
        if ((unsigned char)c < 0x20)
            jerror(j, "control character in a string");
        if (c != '\\') {
            luaL_addchar(&b, c);
            continue;
        }
        if (j->p >= j->end)
            jerror(j, "string not closed");
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': luaL_addchar(&b, c); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp = jhex4(j);
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u') {
                j->p += 2;
                unsigned lo = jhex4(j);
                if (lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            jutf8(&b, cp);
            break;
        }
        default:
            jerror(j, "bad escape in a string");
        }
    }
    luaL_pushresult(&b);
}

static void jnumber(jparse_t *j)
{
    const char *start = j->p;
    int isfloat = 0;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    while (j->p < j->end) {
        char c = *j->p;
        if (c >= '0' && c <= '9')
            j->p++;
        else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
            isfloat = 1, j->p++;
        else
            break;
    }
    char buf[64];
    size_t n = (size_t)(j->p - start);
    if (n == 0 || n >= sizeof buf)
        jerror(j, "bad number");
    memcpy(buf, start, n);
    buf[n] = '\0';
    char *e;
    if (!isfloat) {
        errno = 0;
        long long v = strtoll(buf, &e, 10);
        if (*e == '\0' && errno == 0) {
            lua_pushinteger(j->L, (lua_Integer)v);
            return;
        }
    }
    double d = strtod(buf, &e);
    if (*e != '\0')
        jerror(j, "bad number");
    lua_pushnumber(j->L, d);
}

static void jvalue(jparse_t *j)
{
    jws(j);
    if (j->p >= j->end)
        jerror(j, "value expected");
    if (++j->depth > 200)
        jerror(j, "nested too deeply");
    luaL_checkstack(j->L, 8, "JSON");
    char c = *j->p;
    if (c == '{') {
        j->p++;
        lua_newtable(j->L);
        jws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
        } else {
            for (;;) {
                jws(j);
                if (j->p >= j->end || *j->p != '"')
                    jerror(j, "object key expected");
                jstring(j);
                jws(j);
                if (j->p >= j->end || *j->p != ':')
                    jerror(j, "':' expected");
                j->p++;
                jvalue(j);
                lua_rawset(j->L, -3);
                jws(j);
                if (j->p < j->end && *j->p == ',') {
                    j->p++;
                    continue;
                }
                if (j->p < j->end && *j->p == '}') {
                    j->p++;
                    break;
                }
                jerror(j, "',' or '}' expected");
            }
        }
    } else if (c == '[') {
        j->p++;
        lua_newtable(j->L);
        jws(j);
        lua_Integer i = 0;
        if (j->p < j->end && *j->p == ']') {
            j->p++;
        } else {
            for (;;) {
                jvalue(j);
                lua_rawseti(j->L, -2, ++i);
                jws(j);
                if (j->p < j->end && *j->p == ',') {
                    j->p++;
                    continue;
                }
                if (j->p < j->end && *j->p == ']') {
                    j->p++;
                    break;
                }
                jerror(j, "',' or ']' expected");
            }
        }
    } else if (c == '"') {
        jstring(j);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        jnumber(j);
    } else if (j->end - j->p >= 4 && strncmp(j->p, "true", 4) == 0) {
        j->p += 4;
        lua_pushboolean(j->L, 1);
    } else if (j->end - j->p >= 5 && strncmp(j->p, "false", 5) == 0) {
        j->p += 5;
        lua_pushboolean(j->L, 0);
    } else if (j->end - j->p >= 4 && strncmp(j->p, "null", 4) == 0) {
        j->p += 4;
        lua_getfield(j->L, LUA_REGISTRYINDEX, HR_LUA_NULL_KEY);
    } else {
        jerror(j, "unexpected character");
    }
    j->depth--;
}

static void json_decode(lua_State *L, const char *s, size_t len, const char *name)
{
    jparse_t j = {L, s, s, s + len, name, 0};
    jvalue(&j);
    jws(&j);
    if (j.p != j.end)
        jerror(&j, "text after the value");
}

/* hr.json_decode(text [, name]) -> value (null becomes hr.null) */
static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = hr_lua_checklstring(L, 1, "hr.json_decode", &len);
    json_decode(L, s, len, luaL_optstring(L, 2, "(string)"));
    return 1;
}

/* hr.read_json(path) -> value */
static int l_read_json(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.read_json", NULL);
    lua_settop(L, 1);
    lua_pushcfunction(L, hr_lua_read_file);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    json_decode(L, s, len, path);
    return 1;
}

/* A growable C buffer owned by a userdata box (freed by __gc even when an error unwinds), so
 * that the encoders can use the Lua stack freely, which luaL_Buffer does not allow. */
#define CBUF_MT "hr.cbuf"

typedef struct cbuf {
    char *p;
    size_t n, cap;
} cbuf_t;

static int cbuf_gc(lua_State *L)
{
    cbuf_t *c = luaL_checkudata(L, 1, CBUF_MT);
    free(c->p);
    c->p = NULL;
    return 0;
}

static cbuf_t *cbuf_new(lua_State *L)
{
    cbuf_t *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, CBUF_MT)) {
        lua_pushcfunction(L, cbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return c;
}

static void cb_add(lua_State *L, cbuf_t *c, const char *s, size_t len)
{
    if (c->n + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (c->n + len + 1 > cap)
            cap *= 2;
        char *q = realloc(c->p, cap);
        if (!q)
            luaL_error(L, "out of memory");
        c->p = q, c->cap = cap;
    }
    memcpy(c->p + c->n, s, len);
    c->n += len;
    c->p[c->n] = '\0';
}

static void cb_str(lua_State *L, cbuf_t *c, const char *s) { cb_add(L, c, s, strlen(s)); }
static void cb_chr(lua_State *L, cbuf_t *c, char ch) { cb_add(L, c, &ch, 1); }

static void jput_string(lua_State *L, cbuf_t *b, const char *s, size_t len)
{
    cb_chr(L, b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, esc[2] = '\0';
            cb_str(L, b, esc);
        } else if (c == '\n') {
            cb_str(L, b, "\\n");
        } else if (c == '\t') {
            cb_str(L, b, "\\t");
        } else if (c == '\r') {
            cb_str(L, b, "\\r");
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            cb_str(L, b, esc);
        } else {
            cb_chr(L, b, (char)c);
        }
    }
    cb_chr(L, b, '"');
}

/* Shortest "%.Ng" that reads back as the same double. */
static void fmt_double(char *buf, size_t cap, double d)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* A number as text: integers exactly, floats in their shortest exact form; NaN/inf as `nan`. */
static void fmt_number(lua_State *L, int idx, char *num, size_t cap, const char *nan)
{
    if (lua_isinteger(L, idx)) {
        snprintf(num, cap, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            snprintf(num, cap, "%s", nan);
        else if (d == floor(d) && fabs(d) < 1e15)
            snprintf(num, cap, "%.0f", d);
        else
            fmt_double(num, cap, d);
    }
}

static void jindent(lua_State *L, cbuf_t *b, int pretty, int depth)
{
    if (!pretty)
        return;
    cb_chr(L, b, '\n');
    for (int i = 0; i < depth; i++)
        cb_str(L, b, "  ");
}

/* Is the table at idx a sequence 1..n (n >= 1) with no other keys? Returns n, or 0. */
static lua_Integer seq_len(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    if (n == 0)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return count == n ? n : 0;
}

static int key_lt(lua_State *L)
{
    lua_pushboolean(L, strcmp(luaL_tolstring(L, 1, NULL), luaL_tolstring(L, 2, NULL)) < 0);
    return 1;
}

/* Encode the value at `idx` (absolute). Object keys are sorted, so the output is deterministic
 * (provenance files diff cleanly). */
static void jencode(lua_State *L, int idx, cbuf_t *b, int pretty, int depth)
{
    if (depth > 100)
        luaL_error(L, "json: value nested too deeply (a cycle?)");
    luaL_checkstack(L, 10, "json");
    char num[64];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        cb_str(L, b, "null");
        return;
    case LUA_TBOOLEAN:
        cb_str(L, b, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        fmt_number(L, idx, num, sizeof num, "null");
        cb_str(L, b, num);
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        jput_string(L, b, s, len);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        lua_getfield(L, LUA_REGISTRYINDEX, HR_LUA_NULL_KEY);
        if (lua_rawequal(L, -1, idx)) {
            lua_pop(L, 1);
            cb_str(L, b, "null");
            return;
        }
        lua_pop(L, 1);
        break;
    case LUA_TTABLE: {
        lua_Integer n = seq_len(L, idx);
        if (n > 0) {
            cb_chr(L, b, '[');
            for (lua_Integer i = 1; i <= n; i++) {
                if (i > 1)
                    cb_chr(L, b, ',');
                jindent(L, b, pretty, depth + 1);
                lua_rawgeti(L, idx, i);
                jencode(L, lua_gettop(L), b, pretty, depth + 1);
                lua_pop(L, 1);
            }
            jindent(L, b, pretty, depth);
            cb_chr(L, b, ']');
            return;
        }
        lua_newtable(L); /* the keys, sorted */
        int keys = lua_gettop(L);
        lua_Integer nk = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            int t = lua_type(L, -1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                luaL_error(L, "json: object keys must be strings or numbers, not %s",
                           luaL_typename(L, -1));
            lua_pushvalue(L, -1);
            lua_rawseti(L, keys, ++nk);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "sort");
        lua_pushvalue(L, keys);
        lua_pushcfunction(L, key_lt);
        lua_call(L, 2, 0);
        lua_pop(L, 1);
        cb_chr(L, b, '{');
        for (lua_Integer i = 1; i <= nk; i++) {
            if (i > 1)
                cb_chr(L, b, ',');
            jindent(L, b, pretty, depth + 1);
            lua_rawgeti(L, keys, i);
            size_t len;
            const char *k = luaL_tolstring(L, -1, &len);
            jput_string(L, b, k, len);
            lua_pop(L, 1);
            cb_str(L, b, pretty ? ": " : ":");
            lua_gettable(L, idx); /* pops the key, pushes the value */
            jencode(L, lua_gettop(L), b, pretty, depth + 1);
            lua_pop(L, 1);
        }
        if (nk)
            jindent(L, b, pretty, depth);
        cb_chr(L, b, '}');
        lua_pop(L, 1);
        return;
    }
    default:
        break;
    }
    luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
}

/* hr.json_encode(value [, pretty]) -> text */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int pretty = lua_toboolean(L, 2);
    lua_settop(L, 1);
    cbuf_t *b = cbuf_new(L);
    jencode(L, 1, b, pretty, 0);
    if (pretty)
        cb_chr(L, b, '\n');
    lua_pushlstring(L, b->p ? b->p : "", b->n);
    return 1;
}

/* hr.write_json(path, value): pretty JSON, written atomically. */
static int l_write_json(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.write_json", NULL);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    cbuf_t *b = cbuf_new(L);
    jencode(L, 2, b, 1, 0);
    cb_chr(L, b, '\n');
    hr_err_t err = {0};
    if (hr_lua_write_atomic(path, b->p, b->n, &err) != 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* {====================================================================
 * CSV (RFC 4180: comma-separated, quoted when needed, one header line)
 * ==================================================================== */

static void csv_field(lua_State *L, cbuf_t *b, int idx)
{
    char num[64];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return;
    case LUA_TNUMBER:
        fmt_number(L, idx, num, sizeof num, "");
        cb_str(L, b, num);
        return;
    case LUA_TBOOLEAN:
        cb_str(L, b, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (strcspn(s, ",\"\n\r") == len && len && s[0] != ' ' && s[len - 1] != ' ') {
            cb_add(L, b, s, len);
            return;
        }
        cb_chr(L, b, '"');
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"')
                cb_chr(L, b, '"');
            cb_chr(L, b, s[i]);
        }
        cb_chr(L, b, '"');
        return;
    }
    default:
        break;
    }
    luaL_error(L, "csv: cannot write a %s", luaL_typename(L, idx));
}

/* hr.write_csv(path, rows, columns): rows is an array of tables, columns the array of column
 * names in order (a missing value is an empty field). Written atomically. */
static int l_write_csv(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.write_csv", NULL);
    hr_lua_checktype(L, 2, "hr.write_csv", LUA_TTABLE);
    hr_lua_checktype(L, 3, "hr.write_csv", LUA_TTABLE);
    lua_settop(L, 3);
    lua_Integer ncol = (lua_Integer)lua_rawlen(L, 3), nrow = (lua_Integer)lua_rawlen(L, 2);
    if (ncol < 1)
        return luaL_error(L, "bad argument #3 to 'hr.write_csv' (no columns)");
    cbuf_t *b = cbuf_new(L);
    for (lua_Integer c = 1; c <= ncol; c++) {
        if (lua_rawgeti(L, 3, c) != LUA_TSTRING)
            return luaL_error(L, "bad argument #3 to 'hr.write_csv' (column names must be strings)");
        if (c > 1)
            cb_chr(L, b, ',');
        csv_field(L, b, lua_gettop(L));
        lua_pop(L, 1);
    }
    cb_chr(L, b, '\n');
    for (lua_Integer r = 1; r <= nrow; r++) {
        if (lua_rawgeti(L, 2, r) != LUA_TTABLE)
            return luaL_error(L, "bad argument #2 to 'hr.write_csv' (row %d is not a table)", (int)r);
        for (lua_Integer c = 1; c <= ncol; c++) {
            if (c > 1)
                cb_chr(L, b, ',');
            lua_rawgeti(L, 3, c);
            lua_gettable(L, -2);
            csv_field(L, b, lua_gettop(L));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        cb_chr(L, b, '\n');
    }
    hr_err_t err = {0};
    if (hr_lua_write_atomic(path, b->p ? b->p : "", b->n, &err) != 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* Push one CSV field value: numbers become numbers, the rest strings, empty fields nil. */
static void csv_push(lua_State *L, const char *s, size_t len, int quoted)
{
    if (len == 0 && !quoted) {
        lua_pushnil(L);
        return;
    }
    if (!quoted && lua_stringtonumber(L, lua_pushlstring(L, s, len)) != 0) {
        lua_remove(L, -2);
        return;
    }
    if (!quoted)
        return; /* the string pushed above */
    lua_pushlstring(L, s, len);
}

/* hr.read_csv(path) -> rows, columns */
static int l_read_csv(lua_State *L)
{
    const char *path = hr_lua_checklstring(L, 1, "hr.read_csv", NULL);
    lua_settop(L, 1);
    lua_pushcfunction(L, hr_lua_read_file);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    size_t len;
    const char *s = lua_tolstring(L, 2, &len), *end = s + len;
    lua_newtable(L); /* 3: rows */
    lua_newtable(L); /* 4: columns */
    lua_newtable(L); /* 5: current record (array of fields) */
    cbuf_t *f = cbuf_new(L); /* 6 */
    lua_Integer row = 0, nf = 0, line = 1;
    while (s < end) {
        /* one record */
        nf = 0;
        lua_newtable(L);
        lua_replace(L, 5);
        for (;;) {
            f->n = 0;
            int quoted = 0;
            if (s < end && *s == '"') {
                quoted = 1;
                s++;
                for (;;) {
                    if (s >= end)
                        return luaL_error(L, "%s:%d: quoted field not closed", path, (int)line);
                    if (*s == '"') {
                        if (s + 1 < end && s[1] == '"') {
                            cb_chr(L, f, '"');
                            s += 2;
                            continue;
                        }
                        s++;
                        break;
                    }
                    line += *s == '\n';
                    cb_chr(L, f, *s++);
                }
            } else {
                while (s < end && *s != ',' && *s != '\n' && *s != '\r')
                    cb_chr(L, f, *s++);
            }
            csv_push(L, f->p ? f->p : "", f->n, quoted);
            lua_rawseti(L, 5, ++nf);
            if (s < end && *s == ',') {
                s++;
                continue;
            }
            if (s < end && *s == '\r')
                s++;
            if (s < end && *s == '\n')
                s++;
            break;
        }
        line++;
        if (row == 0) {
            for (lua_Integer i = 1; i <= nf; i++) {
                lua_rawgeti(L, 5, i);
                if (lua_type(L, -1) != LUA_TSTRING)
                    lua_tostring(L, -1);
                lua_rawseti(L, 4, i);
            }
            row = 1;
            continue;
        }
        lua_newtable(L);
        for (lua_Integer i = 1; i <= nf; i++) {
            if (lua_rawgeti(L, 4, i) == LUA_TNIL)
                return luaL_error(L, "%s:%d: more fields than columns", path, (int)line - 1);
            lua_rawgeti(L, 5, i);
            lua_rawset(L, -3);
        }
        lua_rawseti(L, 3, row++);
    }
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    return 2;
}

static const luaL_Reg data_funcs[] = {
    {"json_decode", l_json_decode}, {"json_encode", l_json_encode}, {"read_json", l_read_json},
    {"write_json", l_write_json},   {"write_csv", l_write_csv},     {"read_csv", l_read_csv},
    {NULL, NULL}};

void hr_lua_open_data(lua_State *L)
{
    luaL_setfuncs(L, data_funcs, 0);
    /* hr.null: the JSON null (a light userdata that is its own address) */
    static const char null_anchor = 0;
    lua_pushlightuserdata(L, (void *)&null_anchor);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HR_LUA_NULL_KEY);
    lua_setfield(L, -2, "null");
}

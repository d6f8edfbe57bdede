// sim/luaenv: the sandboxed Lua 5.4 runtime for programmatic environments (see luaenv.h and
// docs/environments.md).
//
// Every entry point runs its whole body (Lua calls, JSON <-> Lua conversion, validation) as one
// C function under lua_pcall (sb_protected), so no Lua API call ever raises outside a protected
// call (an allocation failure there would panic) and every failure becomes one message with the
// script name and line. The instruction budget is per entry point.
#include "luaenv.h"

#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "kernels/err.h"
#include "memo.h"

#define HOOK_EVERY 1000 // count hook period (instructions)
#define JSON_MAX_DEPTH 64

static char KEY_ARRAY_MT, KEY_OBJECT_MT, KEY_JSON_NULL, KEY_RT, KEY_ENV; // registry keys (addresses)

// ---- RNG: xoshiro256** seeded by splitmix64 ----

typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}

// uniform in [0, n) (n >= 1), by rejection (no modulo bias)
static uint64_t rng_below(rng_t *r, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = rng_next(r);
    while (x >= lim);
    return x % n;
}

static double rng_float(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

// ---- the environment ----

struct luaenv {
    lua_State *L;
    char *chunkname;   // "envs/airline.lua": prefix of every message
    char *name, *description;
    size_t mem_used, mem_limit;
    long insn_used, insn_limit;
    int killed;        // a limit / forbidden access hit during the current entry (LUAENV_ABORT_*)
    int code;          // a validation failure raised by our C code (LUAENV_ABORT_BAD_RESULT)
    int abort;         // the last entry's result code
    char what[160];    // what the current entry is doing ("tool 'search_flights'")
    char where[96];    // last "src:line" seen by the count hook (for memory-limit messages)
    rng_t *cur_rng;    // math.random draws from this
    rng_t aux_rng;     // for entries without their own generator (oracle, checks)
    int return_line;   // line of the script's last top-level `return` (for structure errors)
    int n_tools;
    char **tool_names; // (n_tools)
    json_t *tool_schemas; // (n_tools) array of OpenAI function schemas
    int n_families;
    char **families;   // (n_families)
};

static luaenv_t *env_of(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

const char *luaenv_abort_name(int code) {
    static const char *names[LUAENV_N_ABORT] = {"ok", "error", "insn_limit", "mem_limit",
                                                "forbidden", "bad_result", "usage"};
    return code >= 0 && code < LUAENV_N_ABORT ? names[code] : "unknown";
}

// ---- sandbox: allocator, count hook, forbidden globals, pcall that cannot swallow limits ----

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    luaenv_t *e = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        e->mem_used -= old;
        return NULL;
    }
    if (nsize > old && e->mem_used - old + nsize > e->mem_limit) {
        e->killed = LUAENV_ABORT_MEM_LIMIT;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) e->mem_used = e->mem_used - old + nsize;
    return p;
}

static void sb_hook(lua_State *L, lua_Debug *ar) {
    luaenv_t *e = env_of(L);
    e->insn_used += HOOK_EVERY;
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(e->where, sizeof e->where, "%s:%d", ar->short_src, ar->currentline);
    if (!e->killed && e->insn_used > e->insn_limit) e->killed = LUAENV_ABORT_INSN_LIMIT;
    if (e->killed == LUAENV_ABORT_INSN_LIMIT)
        luaL_error(L, "%s: instruction limit (%I) exceeded", e->where, (LUAI_UACINT)e->insn_limit);
    if (e->killed) luaL_error(L, "%s: stopped (%s)", e->where, luaenv_abort_name(e->killed));
}

static const char *const FORBIDDEN[] = {"io", "os", "require", "package", "debug", "dofile",
                                        "loadfile", "load", "loadstring", "collectgarbage",
                                        "coroutine", "print", NULL};

// _G's __index: reading a forbidden global stops the call; any other unknown global is nil
static int sb_index(lua_State *L) {
    const char *k = lua_tostring(L, 2);
    if (k && lua_type(L, 2) == LUA_TSTRING)
        for (int i = 0; FORBIDDEN[i]; i++)
            if (strcmp(k, FORBIDDEN[i]) == 0) {
                env_of(L)->killed = LUAENV_ABORT_FORBIDDEN;
                return luaL_error(L, "sandbox: '%s' is not available (environments get no io, os, "
                                     "require, package, debug, load, print)", k); // luaL_error adds file:line
            }
    return 0;
}

static int sb_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (st != LUA_OK && (env_of(L)->killed || st == LUA_ERRMEM)) return lua_error(L);
    lua_pushboolean(L, st == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);          // f
    lua_copy(L, 2, 1);            // msgh at 1
    lua_replace(L, 2);            // f at 2
    int st = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (st != LUA_OK && (env_of(L)->killed || st == LUA_ERRMEM)) return lua_error(L);
    lua_pushboolean(L, st == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

// ---- rng userdata (methods int, float, choice, shuffle, sample) and math.random ----

static rng_t *rng_push(lua_State *L, uint64_t seed) {
    rng_t *r = lua_newuserdatauv(L, sizeof(rng_t), 0);
    rng_seed(r, seed);
    luaL_setmetatable(L, "luaenv.rng");
    return r;
}

static lua_Integer rng_int_range(lua_State *L, rng_t *r, lua_Integer a, lua_Integer b) {
    if (a > b) luaL_error(L, "rng:int(a, b): empty interval [%I, %I]", (LUAI_UACINT)a, (LUAI_UACINT)b);
    uint64_t span = (uint64_t)b - (uint64_t)a + 1;
    uint64_t x = span == 0 ? rng_next(r) : rng_below(r, span);
    return (lua_Integer)((uint64_t)a + x);
}

static int rng_l_int(lua_State *L) {
    rng_t *r = luaL_checkudata(L, 1, "luaenv.rng");
    lua_pushinteger(L, rng_int_range(L, r, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    return 1;
}

static int rng_l_float(lua_State *L) {
    lua_pushnumber(L, rng_float(luaL_checkudata(L, 1, "luaenv.rng")));
    return 1;
}

static int rng_l_choice(lua_State *L) {
    rng_t *r = luaL_checkudata(L, 1, "luaenv.rng");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n < 1) return luaL_error(L, "rng:choice: empty list");
    lua_geti(L, 2, 1 + (lua_Integer)rng_below(r, (uint64_t)n));
    return 1;
}

static void shuffle_table(lua_State *L, rng_t *r, int t, lua_Integer n) {
    for (lua_Integer i = n; i > 1; i--) {
        lua_Integer j = 1 + (lua_Integer)rng_below(r, (uint64_t)i);
        lua_geti(L, t, i);
        lua_geti(L, t, j);
        lua_seti(L, t, i);
        lua_seti(L, t, j);
    }
}

static int rng_l_shuffle(lua_State *L) {
    rng_t *r = luaL_checkudata(L, 1, "luaenv.rng");
    luaL_checktype(L, 2, LUA_TTABLE);
    shuffle_table(L, r, 2, luaL_len(L, 2));
    lua_settop(L, 2);
    return 1;
}

static int rng_l_sample(lua_State *L) {
    rng_t *r = luaL_checkudata(L, 1, "luaenv.rng");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2), k = luaL_checkinteger(L, 3);
    if (k < 0 || k > n) return luaL_error(L, "rng:sample: k = %I not in [0, %I]", (LUAI_UACINT)k, (LUAI_UACINT)n);
    lua_createtable(L, (int)n, 0); // a copy, partially shuffled: the first k are the sample
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        lua_seti(L, -2, i);
    }
    for (lua_Integer i = 1; i <= k; i++) {
        lua_Integer j = i + (lua_Integer)rng_below(r, (uint64_t)(n - i + 1));
        lua_geti(L, -1, i);
        lua_geti(L, -2, j);
        lua_seti(L, -3, i);
        lua_seti(L, -2, j);
    }
    for (lua_Integer i = n; i > k; i--) {
        lua_pushnil(L);
        lua_seti(L, -2, i);
    }
    return 1;
}

static int sb_math_random(lua_State *L) {
    luaenv_t *e = env_of(L);
    rng_t *r = e->cur_rng ? e->cur_rng : &e->aux_rng;
    switch (lua_gettop(L)) {
    case 0: lua_pushnumber(L, rng_float(r)); return 1;
    case 1: lua_pushinteger(L, rng_int_range(L, r, 1, luaL_checkinteger(L, 1))); return 1;
    case 2:
        lua_pushinteger(L, rng_int_range(L, r, luaL_checkinteger(L, 1), luaL_checkinteger(L, 2)));
        return 1;
    default: return luaL_error(L, "math.random: wrong number of arguments");
    }
}

// ---- JSON <-> Lua ----

static int mark_of(lua_State *L, int idx) { // 1 array mark, 2 object mark, 0 none
    if (!lua_getmetatable(L, idx)) return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ARRAY_MT);
    int is_a = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_OBJECT_MT);
    int is_o = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return is_a ? 1 : is_o ? 2 : 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// value at idx -> new JSON value, or NULL with a message in err (path of the bad value)
static json_t *to_json(lua_State *L, int idx, int depth, char *path, size_t plen, char *err, size_t errcap) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        {
            double v = lua_tonumber(L, idx);
            if (!isfinite(v)) {
                snprintf(err, errcap, "%s: number %g is not valid JSON", plen ? path : "value", v);
                return NULL;
            }
            return json_real(v);
        }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_t *j = json_stringn(s, n);
        if (!j) snprintf(err, errcap, "%s: string is not valid UTF-8", plen ? path : "value");
        return j;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &KEY_JSON_NULL) return json_null();
        break;
    case LUA_TTABLE: {
        if (depth >= JSON_MAX_DEPTH) {
            snprintf(err, errcap, "%s: nested deeper than %d (a cycle?)", plen ? path : "value", JSON_MAX_DEPTH);
            return NULL;
        }
        int mark = mark_of(L, idx);
        lua_Integer n = 0, maxk = 0;
        int all_int = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            n++;
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
                if (lua_tointeger(L, -2) > maxk) maxk = lua_tointeger(L, -2);
            } else all_int = 0;
            lua_pop(L, 1);
        }
        size_t cap = 4096;
        if (mark != 2 && (n == 0 || (all_int && maxk == n))) {
            json_t *a = json_array();
            for (lua_Integer i = 1; i <= n; i++) {
                snprintf(path + plen, cap - plen, "[%lld]", (long long)(i - 1));
                lua_geti(L, idx, i);
                json_t *v = to_json(L, -1, depth + 1, path, strlen(path), err, errcap);
                lua_pop(L, 1);
                if (!v) {
                    json_decref(a);
                    return NULL;
                }
                json_array_append_new(a, v);
            }
            path[plen] = 0;
            return a;
        }
        // object: keys sorted, so insertion order (which chat_json_dumps keeps) is deterministic
        char **keys = malloc((size_t)n * sizeof *keys);
        int nk = 0, bad = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            char buf[32];
            const char *k = NULL;
            if (lua_type(L, -1) == LUA_TSTRING) k = lua_tostring(L, -1);
            else if (lua_isinteger(L, -1)) snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, -1)), k = buf;
            if (!k) {
                snprintf(err, errcap, "%s: table key of type %s (JSON keys are strings)",
                         plen ? path : "value", luaL_typename(L, -1));
                bad = 1;
                lua_pop(L, 1);
                break;
            }
            keys[nk++] = strdup(k);
        }
        json_t *o = bad ? NULL : json_object();
        if (!bad) qsort(keys, (size_t)nk, sizeof *keys, cmp_str);
        for (int i = 0; i < nk && o; i++) {
            snprintf(path + plen, cap - plen, ".%s", keys[i]);
            lua_getfield(L, idx, keys[i]);
            if (lua_isnil(L, -1)) { // an integer key written as a string
                lua_pop(L, 1);
                char *end;
                long long v = strtoll(keys[i], &end, 10);
                lua_geti(L, idx, (lua_Integer)v);
            }
            json_t *v = to_json(L, -1, depth + 1, path, strlen(path), err, errcap);
            lua_pop(L, 1);
            if (!v || json_object_set_new(o, keys[i], v) != 0) {
                if (v) snprintf(err, errcap, "%s: key is not valid UTF-8", path);
                json_decref(o);
                o = NULL;
            }
        }
        path[plen] = 0;
        for (int i = 0; i < nk; i++) free(keys[i]);
        free(keys);
        return o;
    }
    default: break;
    }
    snprintf(err, errcap, "%s: a %s value cannot be written as JSON", plen ? path : "value",
             luaL_typename(L, idx));
    return NULL;
}

// converts the value at idx; raises a Lua error (code BAD_RESULT) naming `what` on failure
static json_t *to_json_or_raise(lua_State *L, int idx, const char *what, const char *loc) {
    char path[4096] = "", err[512] = "";
    json_t *j = to_json(L, idx, 0, path, 0, err, sizeof err);
    if (!j) {
        luaenv_t *e = env_of(L);
        e->code = LUAENV_ABORT_BAD_RESULT;
        luaL_error(L, "%s: %s is not JSON: %s", loc ? loc : e->chunkname, what, err);
    }
    return j;
}

static void push_json(lua_State *L, const json_t *j, int depth) {
    luaL_checkstack(L, 4, "JSON too deep");
    if (depth > JSON_MAX_DEPTH) luaL_error(L, "JSON nested deeper than %d", JSON_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(j));
        if (json_object_size(j) == 0) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_OBJECT_MT);
            lua_setmetatable(L, -2);
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            if (json_is_null(v)) continue;
            push_json(L, v, depth + 1);
            lua_setfield(L, -2, k);
        }
        return;
    }
    case JSON_ARRAY: {
        lua_createtable(L, (int)json_array_size(j), 0);
        for (size_t i = 0; i < json_array_size(j); i++) {
            push_json(L, json_array_get(j, i), depth + 1);
            lua_seti(L, -2, (lua_Integer)i + 1);
        }
        return;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); return;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); return;
    case JSON_REAL: lua_pushnumber(L, json_real_value(j)); return;
    case JSON_TRUE: lua_pushboolean(L, 1); return;
    case JSON_FALSE: lua_pushboolean(L, 0); return;
    case JSON_NULL: lua_pushlightuserdata(L, &KEY_JSON_NULL); return;
    }
}

// ---- protected entries ----

// adds the script location to messages that lack one
static int sb_msgh(lua_State *L) {
    luaenv_t *e = env_of(L);
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    if (strncmp(msg, e->chunkname, strlen(e->chunkname)) == 0) {
        lua_pushstring(L, msg);
        return 1;
    }
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && strcmp(ar.short_src, e->chunkname) == 0) {
            lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
            return 1;
        }
    }
    lua_pushfstring(L, "%s: %s", e->chunkname, msg);
    return 1;
}

// runs f(ud) under pcall with the limits reset; -1 with err_set + e->abort on failure
static int sb_protected(luaenv_t *e, lua_CFunction f, void *ud, const char *what) {
    lua_State *L = e->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, sb_msgh);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ud);
    e->killed = 0, e->code = 0, e->insn_used = 0;
    snprintf(e->what, sizeof e->what, "%s", what);
    snprintf(e->where, sizeof e->where, "%s", e->chunkname);
    int st = lua_pcall(L, 1, 0, top + 1);
    if (st == LUA_OK) {
        lua_settop(L, top);
        e->abort = LUAENV_OK;
        return 0;
    }
    int code = e->killed ? e->killed : e->code ? e->code : st == LUA_ERRMEM ? LUAENV_ABORT_MEM_LIMIT
                                                                           : LUAENV_ABORT_ERROR;
    if (code == LUAENV_ABORT_MEM_LIMIT)
        err_set("%s: memory limit (%zu MiB) exceeded (in %s; the line is where the count hook last "
                "saw the script)", e->where, e->mem_limit >> 20, e->what);
    else {
        const char *msg = lua_tostring(L, -1);
        err_set("%s (in %s)", msg ? msg : "(no message)", e->what);
    }
    lua_settop(L, top);
    e->killed = 0;
    lua_gc(L, LUA_GCCOLLECT);
    e->abort = code;
    return -1;
}

// pushes field k of the registry table at key
static void push_reg(lua_State *L, void *key, const char *field) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    if (field) {
        lua_getfield(L, -1, field);
        lua_remove(L, -2);
    }
}

// ---- load ----

typedef struct {
    luaenv_t *e;
    const char *text;
    size_t len;
    const char *stem;
} load_args_t;

static int p_open(lua_State *L) {
    load_args_t *a = lua_touserdata(L, 1);
    luaenv_t *e = a->e;
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 1);
    for (int i = 0; FORBIDDEN[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, FORBIDDEN[i]);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_getglobal(L, "math");
    lua_pushnil(L);
    lua_setfield(L, -2, "randomseed");
    lua_pushcfunction(L, sb_math_random);
    lua_setfield(L, -2, "random");
    lua_pop(L, 1);
    lua_pushcfunction(L, sb_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setglobal(L, "xpcall");
    lua_pushlightuserdata(L, &KEY_JSON_NULL);
    lua_setglobal(L, "json_null");
    // _G's metatable: forbidden names raise
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sb_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    // rng metatable
    static const luaL_Reg rng_methods[] = {{"int", rng_l_int}, {"float", rng_l_float},
                                           {"choice", rng_l_choice}, {"shuffle", rng_l_shuffle},
                                           {"sample", rng_l_sample}, {NULL, NULL}};
    luaL_newmetatable(L, "luaenv.rng");
    luaL_newlib(L, rng_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    // array / object marks
    lua_newtable(L);
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ARRAY_MT);
    lua_newtable(L);
    lua_pushstring(L, "object");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_OBJECT_MT);
    // the prelude
    size_t plen;
    const char *prelude = sim_data_file("lua/prelude.lua", &plen);
    if (!prelude) return luaL_error(L, "sim/data/lua/prelude.lua is not embedded");
    if (luaL_loadbufferx(L, prelude, plen, "@lua/prelude.lua", "t") != LUA_OK) return lua_error(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ARRAY_MT);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_OBJECT_MT);
    lua_call(L, 2, 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "lua/prelude.lua did not return a table");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_RT);
    (void)e;
    return 0;
}

static int p_load(lua_State *L) {
    load_args_t *a = lua_touserdata(L, 1);
    luaenv_t *e = a->e;
    char chunk[512];
    snprintf(chunk, sizeof chunk, "@%s", e->chunkname);
    if (luaL_loadbufferx(L, a->text, a->len, chunk, "t") != LUA_OK) return lua_error(L); // "file:line: ..."
    lua_call(L, 0, 1);
    int env = lua_gettop(L);
    // structure check (prelude): nil, or (message, function near the fault)
    push_reg(L, &KEY_RT, "check_env");
    lua_pushvalue(L, env);
    lua_pushstring(L, a->stem);
    lua_call(L, 2, 2);
    if (!lua_isnil(L, -2)) {
        int line = e->return_line;
        if (lua_isfunction(L, -1)) {
            lua_Debug ar;
            lua_pushvalue(L, -1);
            if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0) line = ar.linedefined;
        }
        e->code = LUAENV_ABORT_BAD_RESULT;
        return luaL_error(L, "%s:%d: %s", e->chunkname, line, lua_tostring(L, -2));
    }
    lua_pop(L, 2);
    lua_pushvalue(L, env);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    lua_getfield(L, env, "name");
    e->name = strdup(lua_tostring(L, -1));
    lua_getfield(L, env, "description");
    e->description = strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    lua_getfield(L, env, "tools");
    int tools = lua_gettop(L);
    e->n_tools = (int)luaL_len(L, tools);
    e->tool_names = calloc((size_t)e->n_tools, sizeof(char *));
    e->tool_schemas = json_array();
    for (int i = 0; i < e->n_tools; i++) {
        lua_geti(L, tools, i + 1);
        lua_getfield(L, -1, "name");
        e->tool_names[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        push_reg(L, &KEY_RT, "schema_for_json");
        lua_getfield(L, -2, "parameters");
        lua_call(L, 1, 1);
        char what[128];
        snprintf(what, sizeof what, "tool '%s' parameters", e->tool_names[i]);
        json_t *params = to_json_or_raise(L, -1, what, NULL);
        lua_pop(L, 1);
        lua_getfield(L, -1, "description");
        json_t *fn = json_pack("{s:s, s:s, s:o}", "name", e->tool_names[i], "description",
                               lua_tostring(L, -1), "parameters", params);
        lua_pop(L, 2);
        json_array_append_new(e->tool_schemas, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    lua_pop(L, 1);
    lua_getfield(L, env, "families");
    e->n_families = (int)luaL_len(L, -1);
    e->families = calloc((size_t)e->n_families, sizeof(char *));
    for (int i = 0; i < e->n_families; i++) {
        lua_geti(L, -1, i + 1);
        lua_getfield(L, -1, "name");
        e->families[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return 0;
}

// the line of the last top-level "return" (structure errors point there)
static int find_return_line(const char *text, size_t len) {
    int line = 1, found = 1;
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || text[i - 1] == '\n') && len - i >= 6 && memcmp(text + i, "return", 6) == 0 &&
            (len - i == 6 || !isalnum((unsigned char)text[i + 6])))
            found = line;
        if (text[i] == '\n') line++;
    }
    return found;
}

luaenv_t *luaenv_load(const char *chunkname, const char *text, size_t len, size_t mem_limit,
                      long insn_limit) {
    luaenv_t *e = calloc(1, sizeof *e);
    e->chunkname = strdup(chunkname);
    e->mem_limit = mem_limit ? mem_limit : LUAENV_MEM_LIMIT;
    e->insn_limit = insn_limit > 0 ? insn_limit : LUAENV_INSN_LIMIT;
    e->return_line = find_return_line(text, len);
    e->L = lua_newstate(sb_alloc, e);
    if (!e->L) {
        err_set("%s: cannot create a Lua state", chunkname);
        luaenv_free(e);
        return NULL;
    }
    lua_sethook(e->L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    // stem of the chunk name: "envs/airline.lua" -> "airline"
    const char *base = strrchr(chunkname, '/');
    base = base ? base + 1 : chunkname;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && strcmp(dot, ".lua") == 0) *dot = 0;
    load_args_t a = {e, text, len, stem};
    if (sb_protected(e, p_open, &a, "the sandbox setup") || sb_protected(e, p_load, &a, "loading the script")) {
        luaenv_free(e);
        return NULL;
    }
    return e;
}

luaenv_t *luaenv_load_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: cannot open", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    luaenv_t *e = luaenv_load(path, buf, got, 0, 0);
    free(buf);
    return e;
}

luaenv_t *luaenv_load_embedded(const char *name) {
    char file[300];
    snprintf(file, sizeof file, "envs/%s.lua", name);
    size_t len;
    const char *text = sim_data_file(file, &len);
    if (!text) {
        const char **names;
        int n = luaenv_list_embedded(&names);
        char list[1024] = "";
        for (int i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
        free(names);
        err_set("unknown environment '%s' (shipped: %s)", name, list);
        return NULL;
    }
    return luaenv_load(file, text, len, 0, 0);
}

void luaenv_free(luaenv_t *e) {
    if (!e) return;
    if (e->L) lua_close(e->L);
    for (int i = 0; i < e->n_tools; i++) free(e->tool_names[i]);
    for (int i = 0; i < e->n_families; i++) free(e->families[i]);
    free(e->tool_names);
    free(e->families);
    json_decref(e->tool_schemas);
    free(e->chunkname);
    free(e->name);
    free(e->description);
    free(e);
}

int luaenv_list_embedded(const char ***names) {
    int n = 0, total = sim_data_count();
    *names = malloc((size_t)(total + 1) * sizeof **names);
    for (int i = 0; i < total; i++) {
        const char *f = sim_data_name(i);
        size_t l = strlen(f);
        if (strncmp(f, "envs/", 5) == 0 && l > 9 && strcmp(f + l - 4, ".lua") == 0) (*names)[n++] = f;
    }
    // "envs/x.lua" -> "x": point into a static copy of the stems
    static char stems[64][64];
    for (int i = 0; i < n && i < 64; i++) {
        snprintf(stems[i], sizeof stems[i], "%.*s", (int)(strlen((*names)[i]) - 9), (*names)[i] + 5);
        (*names)[i] = stems[i];
    }
    return n < 64 ? n : 64;
}

const char *luaenv_name(const luaenv_t *e) { return e->name; }
const char *luaenv_description(const luaenv_t *e) { return e->description; }
int luaenv_n_families(const luaenv_t *e) { return e->n_families; }
const char *luaenv_family(const luaenv_t *e, int i) { return i >= 0 && i < e->n_families ? e->families[i] : NULL; }
int luaenv_n_tools(const luaenv_t *e) { return e->n_tools; }
int luaenv_abort_code(const luaenv_t *e) { return e->abort; }

json_t *luaenv_info(luaenv_t *e) {
    json_t *fams = json_array();
    lua_State *L = e->L;
    push_reg(L, &KEY_ENV, "families");
    for (int i = 0; i < e->n_families; i++) {
        lua_geti(L, -1, i + 1);
        lua_getfield(L, -1, "description");
        const char *d = lua_tostring(L, -1);
        json_array_append_new(fams, json_pack("{s:s, s:s}", "name", e->families[i], "description", d ? d : ""));
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return json_pack("{s:s, s:s, s:O, s:o}", "name", e->name, "description", e->description, "tools",
                     e->tool_schemas, "families", fams);
}

static int tool_index(const luaenv_t *e, const char *name) {
    for (int i = 0; i < e->n_tools; i++)
        if (strcmp(e->tool_names[i], name) == 0) return i;
    return -1;
}

// ---- tasks ----

typedef struct {
    luaenv_t *e;
    uint64_t seed;
    const curriculum_aspects_t *asp;
    const char *family;
    json_t *task; // out
} sample_args_t;

static void push_aspects(lua_State *L, const curriculum_aspects_t *a) {
    lua_createtable(L, 0, 16);
    struct { const char *k; int v; } f[] = {
        {"difficulty", a->difficulty}, {"tools_available", a->tools_available},
        {"expected_calls", a->expected_calls}, {"expected_turns", a->expected_turns},
        {"system_prompt", a->system_prompt}, {"persona", a->persona}, {"ambiguity", a->ambiguity},
        {"judge_strictness", a->judge_strictness}, {"distractors", a->distractors},
        {"omit", (a->expected_turns - 1) + a->ambiguity}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushinteger(L, f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    lua_pushstring(L, curriculum_persona_name(a->persona));
    lua_setfield(L, -2, "persona_name");
    lua_pushstring(L, curriculum_ambiguity_name(a->ambiguity));
    lua_setfield(L, -2, "ambiguity_name");
    lua_pushstring(L, curriculum_system_prompt_name(a->system_prompt));
    lua_setfield(L, -2, "system_prompt_name");
}

#define BAD(...) (e->code = LUAENV_ABORT_BAD_RESULT, luaL_error(L, __VA_ARGS__))

static int json_list_has(const json_t *list, const char *s) {
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return 1;
    return 0;
}

// validates a task (JSON from sample_task) in place: facts as strings, default system prompt
static void check_task(lua_State *L, luaenv_t *e, json_t *t) {
    const char *cn = e->chunkname;
    if (!json_is_object(t)) BAD("%s: sample_task must return a table (the task)", cn);
    const char *fam = json_string_value(json_object_get(t, "family"));
    int known = 0;
    for (int i = 0; fam && i < e->n_families; i++) known |= strcmp(fam, e->families[i]) == 0;
    if (!known) BAD("%s: task.family '%s' is not one of env.families", cn, fam ? fam : "(missing)");
    const char *q = json_string_value(json_object_get(t, "query"));
    if (!q || !*q) BAD("%s: task.query must be a non-empty string (family %s)", cn, fam);
    json_t *state = json_object_get(t, "state");
    if (!state) json_object_set_new(t, "state", state = json_object());
    if (!json_is_object(state) && !json_is_array(state)) BAD("%s: task.state must be a table (family %s)", cn, fam);
    json_t *facts = json_object_get(t, "facts");
    if (!facts || (json_is_array(facts) && json_array_size(facts) == 0)) json_object_set_new(t, "facts", facts = json_object());
    if (!json_is_object(facts)) BAD("%s: task.facts must be a table key -> value (family %s)", cn, fam);
    const char *k;
    json_t *v;
    json_object_foreach(facts, k, v) {
        if (json_is_integer(v)) json_object_set_new(facts, k, json_sprintf("%lld", (long long)json_integer_value(v)));
        else if (json_is_real(v)) json_object_set_new(facts, k, json_sprintf("%g", json_real_value(v)));
        else if (!json_is_string(v)) BAD("%s: task.facts.%s must be a string (family %s)", cn, k, fam);
    }
    json_t *tools = json_object_get(t, "tools");
    if (!json_is_array(tools)) BAD("%s: task.tools must be a list of tool names (family %s)", cn, fam);
    size_t i;
    json_array_foreach(tools, i, v) {
        if (!json_is_string(v) || tool_index(e, json_string_value(v)) < 0)
            BAD("%s: task.tools[%d] is not a tool of this env (family %s)", cn, (int)(i + 1), fam);
    }
    json_t *checks = json_object_get(t, "checks");
    if (!json_is_array(checks) || json_array_size(checks) == 0)
        BAD("%s: task.checks must be a non-empty list (family %s)", cn, fam);
    json_array_foreach(checks, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *fn = json_string_value(json_object_get(v, "fn"));
        if (!name || !fn) BAD("%s: task.checks[%d] needs 'name' and 'fn' strings (family %s)", cn, (int)(i + 1), fam);
        int top = lua_gettop(L);
        push_reg(L, &KEY_ENV, "checks");
        int found = lua_istable(L, -1) && lua_getfield(L, -1, fn) == LUA_TFUNCTION;
        lua_settop(L, top);
        if (!found) {
            push_reg(L, &KEY_RT, "builtin_checks");
            found = lua_getfield(L, -1, fn) == LUA_TFUNCTION;
            lua_settop(L, top);
        }
        if (!found) BAD("%s: task.checks[%d] ('%s'): fn '%s' is neither in env.checks nor a built-in", cn, (int)(i + 1), name, fn);
    }
    if (!json_is_string(json_object_get(t, "system"))) {
        json_object_set_new(t, "system", json_sprintf("You are a customer service agent. %s Use the tools to "
                                                      "help the user, and ask the user for any information you need.",
                                                      e->description));
    }
}

// validates an oracle (JSON of steps) against the task; fills the default `ask` texts
static void check_oracle(lua_State *L, luaenv_t *e, json_t *steps, const json_t *task) {
    const char *cn = e->chunkname;
    const char *fam = json_string_value(json_object_get(task, "family"));
    if (!json_is_array(steps) || json_array_size(steps) == 0) BAD("%s: oracle must return a non-empty list of steps (family %s)", cn, fam);
    size_t n = json_array_size(steps), i;
    json_t *s;
    const json_t *facts = json_object_get(task, "facts"), *avail = json_object_get(task, "available");
    json_array_foreach(steps, i, s) {
        int kinds = !!json_object_get(s, "ask") + !!json_object_get(s, "call") + !!json_object_get(s, "calls") +
                    !!json_object_get(s, "say");
        if (!json_is_object(s) || kinds != 1)
            BAD("%s: oracle step %d must have exactly one of ask / call / calls / say (family %s)", cn, (int)(i + 1), fam);
        if ((json_object_get(s, "say") != NULL) != (i == n - 1))
            BAD("%s: oracle step %d: the last step (and only the last) must be a `say` (family %s)", cn, (int)(i + 1), fam);
        if (json_object_get(s, "say") && !json_is_string(json_object_get(s, "say")))
            BAD("%s: oracle step %d: say must be a string (family %s)", cn, (int)(i + 1), fam);
        json_t *ask = json_object_get(s, "ask");
        if (ask) {
            if (json_is_string(ask)) json_object_set_new(s, "ask", ask = json_pack("[O]", ask));
            size_t j;
            json_t *k;
            if (!json_is_array(ask) || json_array_size(ask) == 0) BAD("%s: oracle step %d: ask must list fact keys (family %s)", cn, (int)(i + 1), fam);
            json_array_foreach(ask, j, k) if (!json_is_string(k) || !json_object_get(facts, json_string_value(k)))
                BAD("%s: oracle step %d asks for '%s', which is not in task.facts (family %s)", cn, (int)(i + 1),
                    json_is_string(k) ? json_string_value(k) : "?", fam);
            if (!json_is_string(json_object_get(s, "text"))) {
                push_reg(L, &KEY_RT, "ask_text");
                push_reg(L, &KEY_ENV, NULL);
                push_json(L, task, 0);
                push_json(L, ask, 0);
                lua_call(L, 3, 1);
                json_object_set_new(s, "text", json_string(lua_tostring(L, -1)));
                lua_pop(L, 1);
            }
        }
        json_t *call = json_object_get(s, "call");
        if (call) { // normalize to calls
            json_t *args = json_object_get(s, "args");
            json_t *one = json_pack("{s:O, s:o}", "name", call, "args", args ? json_incref(args) : json_object());
            json_object_set_new(s, "calls", json_pack("[o]", one));
            json_object_del(s, "call");
            json_object_del(s, "args");
        }
        json_t *calls = json_object_get(s, "calls");
        if (calls) {
            size_t j;
            json_t *c;
            if (!json_is_array(calls) || json_array_size(calls) == 0) BAD("%s: oracle step %d: calls must be a non-empty list (family %s)", cn, (int)(i + 1), fam);
            json_array_foreach(calls, j, c) {
                const char *name = json_string_value(json_object_get(c, "name"));
                if (!name || !json_list_has(avail, name))
                    BAD("%s: oracle step %d calls '%s', which is not among the task's tools (family %s)", cn, (int)(i + 1), name ? name : "?", fam);
                json_t *args = json_object_get(c, "args");
                if (!args || (json_is_array(args) && json_array_size(args) == 0)) json_object_set_new(c, "args", json_object());
                else if (!json_is_object(args)) BAD("%s: oracle step %d: args of '%s' must be a table (family %s)", cn, (int)(i + 1), name, fam);
            }
        }
    }
}

static int p_sample(lua_State *L) {
    sample_args_t *a = lua_touserdata(L, 1);
    luaenv_t *e = a->e;
    rng_t *rng = rng_push(L, a->seed); // at 2
    e->cur_rng = rng;
    snprintf(e->what, sizeof e->what, "sample_task");
    push_reg(L, &KEY_ENV, "sample_task");
    lua_pushvalue(L, 2);
    push_aspects(L, a->asp);
    if (a->family) lua_pushstring(L, a->family);
    else lua_pushnil(L);
    lua_call(L, 3, 1);
    json_t *t = a->task = to_json_or_raise(L, -1, "the task returned by sample_task", NULL);
    lua_settop(L, 2);
    check_task(L, e, t);
    if (a->family && strcmp(a->family, json_string_value(json_object_get(t, "family"))) != 0)
        BAD("%s: sample_task was asked for family '%s' but returned '%s'", e->chunkname, a->family,
            json_string_value(json_object_get(t, "family")));
    // available tools: the needed ones plus distractors from the rest (env order)
    const json_t *need = json_object_get(t, "tools");
    int n_need = 0;
    char *is_shown = calloc((size_t)e->n_tools, 1);
    for (int i = 0; i < e->n_tools; i++)
        if (json_list_has(need, e->tool_names[i])) is_shown[i] = 1, n_need++;
    int want = a->asp->tools_available < e->n_tools ? a->asp->tools_available : e->n_tools;
    int others = e->n_tools - n_need;
    for (int k = n_need; k < want && others > 0; k++) { // pick one of the remaining uniformly
        int pick = (int)rng_below(rng, (uint64_t)others), seen = 0;
        for (int i = 0; i < e->n_tools; i++)
            if (!is_shown[i] && seen++ == pick) {
                is_shown[i] = 1;
                break;
            }
        others--;
    }
    json_t *avail = json_array();
    for (int i = 0; i < e->n_tools; i++)
        if (is_shown[i]) json_array_append_new(avail, json_string(e->tool_names[i]));
    free(is_shown);
    json_object_set_new(t, "available", avail);
    json_object_set_new(t, "env", json_string(e->name));
    json_object_set_new(t, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(t, "aspects", curriculum_aspects_json(a->asp));
    // the oracle sees the stored task (as the JSON round trip gives it)
    snprintf(e->what, sizeof e->what, "oracle (family %s)", json_string_value(json_object_get(t, "family")));
    rng_seed(&e->aux_rng, a->seed ^ 0x6f7261636c65ull);
    e->cur_rng = &e->aux_rng;
    push_reg(L, &KEY_ENV, "oracle");
    push_json(L, t, 0);
    lua_call(L, 1, 1);
    json_t *steps = to_json_or_raise(L, -1, "the oracle's steps", NULL);
    json_object_set_new(t, "oracle", steps);
    check_oracle(L, e, steps, t);
    return 0;
}

json_t *luaenv_sample_task(luaenv_t *e, uint64_t seed, const curriculum_aspects_t *asp, const char *family) {
    sample_args_t a = {e, seed, asp, family, NULL};
    int rc = sb_protected(e, p_sample, &a, "sample_task");
    e->cur_rng = NULL;
    if (rc) {
        json_decref(a.task);
        return NULL;
    }
    return a.task;
}

json_t *luaenv_task_tools(luaenv_t *e, const json_t *task) {
    json_t *out = json_array(), *v;
    size_t i;
    json_array_foreach(json_object_get(task, "available"), i, v) {
        int k = tool_index(e, json_string_value(v));
        if (k >= 0) json_array_append(out, json_array_get(e->tool_schemas, (size_t)k));
    }
    return out;
}

// ---- episodes ----

typedef struct {
    luaenv_episode_t *ep;
    const char *name;
    const json_t *args;
    const char *text;
    json_t *out;     // tool: the result object; reward: the per-check array
    char *reply;     // user reply
    double s;
} ep_args_t;

static int p_begin(lua_State *L) {
    ep_args_t *a = lua_touserdata(L, 1);
    const json_t *t = a->ep->task;
    lua_createtable(L, 0, 8);
    push_json(L, t, 0);
    lua_setfield(L, -2, "task");
    push_json(L, json_object_get(t, "state"), 0);
    lua_setfield(L, -2, "state");
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ARRAY_MT);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "calls");
    lua_newtable(L);
    lua_setfield(L, -2, "revealed");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "final_text");
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n_user_turns");
    rng_push(L, (uint64_t)json_integer_value(json_object_get(t, "seed")) ^ 0x65706973ull);
    lua_setfield(L, -2, "rng");
    a->ep->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int luaenv_episode_begin(luaenv_episode_t *ep, luaenv_t *e, const json_t *task) {
    memset(ep, 0, sizeof *ep);
    ep->env = e;
    ep->ref = LUA_NOREF;
    if (!json_is_object(task) || !json_object_get(task, "oracle"))
        return err_set("%s: not a task of this environment (sample one with luaenv_sample_task)", e->chunkname);
    ep->task = json_incref((json_t *)task);
    ep_args_t a = {.ep = ep};
    if (sb_protected(e, p_begin, &a, "the episode setup")) {
        ep->abort = e->abort;
        return -1;
    }
    return 0;
}

void luaenv_episode_free(luaenv_episode_t *ep) {
    if (ep->env && ep->ref != LUA_NOREF) luaL_unref(ep->env->L, LUA_REGISTRYINDEX, ep->ref);
    json_decref(ep->task);
    memset(ep, 0, sizeof *ep);
    ep->ref = LUA_NOREF;
}

static int ep_usable(luaenv_episode_t *ep) {
    if (ep->abort) return err_set("episode was aborted (%s)", luaenv_abort_name(ep->abort));
    if (!ep->env || ep->ref == LUA_NOREF) return err_set("episode not started");
    return 0;
}

static int p_tool(lua_State *L) {
    ep_args_t *a = lua_touserdata(L, 1);
    luaenv_t *e = a->ep->env;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->ep->ref); // 2: the episode table
    lua_getfield(L, 2, "rng");
    e->cur_rng = lua_touserdata(L, -1);
    lua_pop(L, 1);
    // the call's record in ctx.calls: {name, args, success, data | error}
    lua_createtable(L, 0, 5); // 3
    lua_pushstring(L, a->name);
    lua_setfield(L, 3, "name");
    const char *error = NULL;
    char buf[512];
    int k = tool_index(e, a->name);
    if (k < 0 || !json_list_has(json_object_get(a->ep->task, "available"), a->name)) {
        json_t *avail = json_object_get(a->ep->task, "available"), *v;
        size_t i;
        int off = snprintf(buf, sizeof buf, "unknown tool '%s' (available:", a->name);
        json_array_foreach(avail, i, v) off += snprintf(buf + off, off < (int)sizeof buf ? sizeof buf - (size_t)off : 0,
                                                      " %s", json_string_value(v));
        if (off < (int)sizeof buf) snprintf(buf + off, sizeof buf - (size_t)off, ")");
        error = buf;
    } else if (a->args && !json_is_object(a->args)) {
        error = "arguments must be a JSON object";
    }
    if (a->args && json_is_object(a->args)) push_json(L, a->args, 0); // 4: args
    else lua_newtable(L);
    lua_pushvalue(L, 4);
    lua_setfield(L, 3, "args");
    if (!error) {
        push_reg(L, &KEY_ENV, "tools");
        lua_geti(L, -1, k + 1); // 5 tools, 6 tool
        push_reg(L, &KEY_RT, "validate_args");
        lua_getfield(L, 6, "parameters");
        lua_pushvalue(L, 4);
        lua_call(L, 2, 1);
        if (lua_isstring(L, -1)) {
            snprintf(buf, sizeof buf, "%s", lua_tostring(L, -1));
            error = buf;
        }
        lua_pop(L, 1);
    }
    json_t *res;
    if (error) {
        res = json_pack("{s:b, s:s}", "success", 0, "error", error);
        lua_pushboolean(L, 0);
        lua_setfield(L, 3, "success");
        lua_pushstring(L, error);
        lua_setfield(L, 3, "error");
    } else {
        lua_getfield(L, 6, "run");
        lua_Debug ar; // where `run` is defined, for messages about its result
        lua_pushvalue(L, -1);
        int line = lua_getinfo(L, ">S", &ar) ? ar.linedefined : 0;
        char loc[300];
        if (line > 0) snprintf(loc, sizeof loc, "%s:%d", e->chunkname, line);
        else snprintf(loc, sizeof loc, "%s", e->chunkname);
        lua_getfield(L, 2, "state");
        if (a->args) push_json(L, a->args, 0); // a fresh copy: run may change its args
        else lua_newtable(L);
        lua_call(L, 2, 1);
        int r = lua_gettop(L);
        char what[200];
        snprintf(what, sizeof what, "the result of tool '%s'", a->name);
        if (!lua_istable(L, r) || lua_getfield(L, r, "success") != LUA_TBOOLEAN)
            BAD("%s: tool '%s' must return {success = true, data = ...} or {success = false, error = \"...\"}, got %s",
                loc, a->name, lua_istable(L, r) ? "a table without a boolean 'success'" : luaL_typename(L, r));
        int ok = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (ok) {
            lua_getfield(L, r, "data");
            json_t *data = to_json_or_raise(L, -1, what, loc);
            lua_pop(L, 1);
            res = json_pack("{s:b, s:o}", "success", 1, "data", data);
            lua_pushboolean(L, 1);
            lua_setfield(L, 3, "success");
            push_json(L, data, 0); // a copy, so later state changes do not rewrite the record
            lua_setfield(L, 3, "data");
        } else {
            if (lua_getfield(L, r, "error") != LUA_TSTRING)
                BAD("%s: tool '%s' returned success = false without an 'error' string", loc, a->name);
            res = json_pack("{s:b, s:s}", "success", 0, "error", lua_tostring(L, -1));
            lua_setfield(L, 3, "error");
            lua_pushboolean(L, 0);
            lua_setfield(L, 3, "success");
        }
    }
    a->out = res;
    lua_getfield(L, 2, "calls");
    lua_pushvalue(L, 3);
    lua_seti(L, -2, luaL_len(L, -2) + 1);
    return 0;
}

int luaenv_tool_call(luaenv_episode_t *ep, const char *name, const json_t *args, char **result) {
    *result = NULL;
    if (ep_usable(ep)) return -1;
    if (ep->ended) return err_set("episode has ended");
    luaenv_t *e = ep->env;
    char what[200];
    snprintf(what, sizeof what, "tool '%s'", name);
    ep_args_t a = {.ep = ep, .name = name, .args = args};
    int rc = sb_protected(e, p_tool, &a, what);
    e->cur_rng = NULL;
    if (rc) {
        json_decref(a.out);
        ep->abort = e->abort;
        return -1;
    }
    *result = memo_canonical_json(a.out);
    json_decref(a.out);
    if (++ep->n_tool_calls >= LUAENV_MAX_TOOL_CALLS) ep->ended = 1;
    return *result ? 0 : -1;
}

static int p_user(lua_State *L) {
    ep_args_t *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->ep->ref); // 2
    lua_pushstring(L, a->text);
    lua_setfield(L, 2, "final_text");
    push_reg(L, &KEY_RT, "user_reply");
    push_reg(L, &KEY_ENV, NULL);
    lua_getfield(L, 2, "task");
    lua_pushstring(L, a->text);
    lua_getfield(L, 2, "revealed");
    lua_call(L, 4, 1);
    if (lua_isstring(L, -1)) {
        a->reply = strdup(lua_tostring(L, -1));
        lua_pushinteger(L, a->ep->n_user_turns + 1);
        lua_setfield(L, 2, "n_user_turns");
    }
    return 0;
}

int luaenv_user_reply(luaenv_episode_t *ep, const char *agent_text, char **reply) {
    *reply = NULL;
    if (ep_usable(ep)) return -1;
    if (ep->ended) return 0;
    ep_args_t a = {.ep = ep, .text = agent_text ? agent_text : ""};
    if (sb_protected(ep->env, p_user, &a, "the scripted user")) {
        ep->abort = ep->env->abort;
        return -1;
    }
    if (!a.reply || ep->n_user_turns >= LUAENV_MAX_USER_TURNS) {
        free(a.reply);
        ep->ended = 1;
        return 0;
    }
    ep->n_user_turns++;
    *reply = a.reply;
    return 1;
}

static int p_reward(lua_State *L) {
    ep_args_t *a = lua_touserdata(L, 1);
    luaenv_t *e = a->ep->env;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->ep->ref); // 2
    json_t *checks = json_object_get(a->ep->task, "checks"), *c;
    size_t i, passed = 0, n = json_array_size(checks);
    rng_seed(&e->aux_rng, (uint64_t)json_integer_value(json_object_get(a->ep->task, "seed")) ^ 0x636865636bull);
    e->cur_rng = &e->aux_rng;
    a->out = json_array();
    json_array_foreach(checks, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *fn = json_string_value(json_object_get(c, "fn"));
        snprintf(e->what, sizeof e->what, "check '%s' (fn %s)", name, fn);
        push_reg(L, &KEY_ENV, "checks");
        if (!lua_istable(L, -1) || lua_getfield(L, -1, fn) != LUA_TFUNCTION) {
            lua_settop(L, 2);
            push_reg(L, &KEY_RT, "builtin_checks");
            lua_getfield(L, -1, fn);
        }
        lua_getfield(L, 2, "state");
        json_t *args = json_object_get(c, "args");
        if (args) push_json(L, args, 0);
        else lua_newtable(L);
        lua_pushvalue(L, 2);
        lua_call(L, 3, 1);
        int ok = lua_isboolean(L, -1) && lua_toboolean(L, -1);
        lua_settop(L, 2);
        passed += (size_t)ok;
        json_array_append_new(a->out, json_pack("{s:s, s:b}", "name", name, "passed", ok));
    }
    a->s = n ? (double)passed / (double)n : 0.0;
    return 0;
}

int luaenv_reward(luaenv_episode_t *ep, double *s, json_t **checks) {
    if (checks) *checks = NULL;
    *s = 0;
    if (ep_usable(ep)) return -1;
    ep_args_t a = {.ep = ep};
    int rc = sb_protected(ep->env, p_reward, &a, "the checks");
    ep->env->cur_rng = NULL;
    if (rc) {
        json_decref(a.out);
        ep->abort = ep->env->abort;
        return -1;
    }
    *s = a.s;
    if (checks) *checks = a.out;
    else json_decref(a.out);
    return 0;
}

// ---- the oracle as an agent ----

int luaenv_oracle_steps(const json_t *task) { return (int)json_array_size(json_object_get(task, "oracle")); }

static void msg_add(json_t *messages, const char *role, const char *content) {
    if (messages) json_array_append_new(messages, json_pack("{s:s, s:s}", "role", role, "content", content));
}

int luaenv_run_oracle(luaenv_t *e, const json_t *task, int n_steps, json_t *messages, double *s) {
    *s = 0;
    luaenv_episode_t ep;
    if (luaenv_episode_begin(&ep, e, task)) return -1;
    msg_add(messages, "system", json_string_value(json_object_get(task, "system")));
    msg_add(messages, "user", json_string_value(json_object_get(task, "query")));
    const json_t *steps = json_object_get(task, "oracle");
    int n = (int)json_array_size(steps);
    if (n_steps < 0 || n_steps > n) n_steps = n;
    int rc = 0;
    for (int i = 0; i < n_steps && rc == 0 && !ep.ended; i++) {
        const json_t *st = json_array_get(steps, (size_t)i);
        const json_t *calls = json_object_get(st, "calls");
        if (calls) {
            json_t *tc = json_array(), *c;
            size_t j;
            json_array_foreach(calls, j, c) json_array_append_new(
                tc, json_pack("{s:s, s:{s:O, s:O}}", "type", "function", "function", "name",
                              json_object_get(c, "name"), "arguments", json_object_get(c, "args")));
            if (messages) json_array_append_new(messages, json_pack("{s:s, s:s, s:o}", "role", "assistant", "content", "", "tool_calls", tc));
            else json_decref(tc);
            json_array_foreach(calls, j, c) {
                char *res;
                if ((rc = luaenv_tool_call(&ep, json_string_value(json_object_get(c, "name")),
                                           json_object_get(c, "args"), &res)))
                    break;
                msg_add(messages, "tool", res);
                free(res);
            }
            continue;
        }
        const char *text = json_string_value(json_object_get(st, "say"));
        if (!text) text = json_string_value(json_object_get(st, "text"));
        msg_add(messages, "assistant", text);
        char *reply;
        int r = luaenv_user_reply(&ep, text, &reply);
        if (r < 0) rc = -1;
        else if (r == 1) {
            msg_add(messages, "user", reply);
            free(reply);
        } else if (!json_object_get(st, "say")) {
            rc = err_set("%s: oracle step %d asks for facts but the scripted user revealed none (family %s)",
                         e->chunkname, i + 1, json_string_value(json_object_get(task, "family")));
        }
    }
    if (rc == 0) rc = luaenv_reward(&ep, s, NULL);
    luaenv_episode_free(&ep);
    return rc;
}

/* Recipes: parameter declarations (params {...}), --set overrides with type/range/choice checks,
 * --help listings, and running run(p) under a traceback message handler. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include "lsandbox.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/fileio.h"
#include "lpare.h"

static const char DECLS_KEY = 'd';  /* registry: name -> {default=, desc=, type=, min=, max=, choices=, optional=} */
static const char VALUES_KEY = 'v'; /* registry: name -> overriding value */
static const char PATH_KEY = 'f';   /* registry: the recipe path */
static const char PARAMS_KEY = 'r'; /* registry: the parameter values run(p) got */

/* Whether the value at idx is exactly the string s: a Lua string may hold a NUL, and "number\0x" must
 * not pass for "number" (found by the recipe_params fuzz target). */
static int lua_string_is(lua_State *L, int idx, const char *s)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    const char *v = lua_tolstring(L, idx, &len);
    return len == strlen(s) && !memcmp(v, s, len);
}

static const char *const TYPES[] = {"number", "integer", "string", "boolean", NULL};

int lrecipe_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int decls_table(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DECLS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &DECLS_KEY);
    }
    return lua_gettop(L);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The declared names, sorted; a malloc'd array of pointers into Lua strings held by the decls table.
 * NULL (and *count 0) when memory runs out. */
static const char **sorted_names(lua_State *L, int decls, int *count)
{
    int n = 0, cap = 16;
    const char **names = malloc((size_t)cap * sizeof *names);
    *count = 0;
    if (!names)
        return NULL;
    lua_pushnil(L);
    while (lua_next(L, decls)) {
        lua_pop(L, 1);
        if (n == cap) {
            const char **bigger = realloc(names, (size_t)(cap *= 2) * sizeof *names);
            if (!bigger) { /* free the old block; popping the key leaves the stack as it was before */
                free(names);
                names = NULL;
                n = 0;
                lua_pop(L, 1);
                break;
            }
            names = bigger;
        }
        names[n++] = lua_tostring(L, -1);
    }
    if (names)
        qsort(names, (size_t)n, sizeof *names, str_cmp);
    *count = n;
    return names;
}

/* Pushes "a, b, c": the declared parameter names. */
static void push_name_list(lua_State *L)
{
    int decls = decls_table(L), n;
    const char **names = sorted_names(L, decls, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < n; i++) {
        luaL_addstring(&b, i ? ", " : "");
        luaL_addstring(&b, names[i]);
    }
    if (n == 0)
        luaL_addstring(&b, "none");
    luaL_pushresult(&b);
    free(names);
    lua_remove(L, decls);
}

/* Does the value at idx have the declared type tname? */
static int has_type(lua_State *L, int idx, const char *tname)
{
    if (!strcmp(tname, "integer"))
        return lua_isinteger(L, idx);
    if (!strcmp(tname, "number"))
        return lua_type(L, idx) == LUA_TNUMBER;
    if (!strcmp(tname, "string"))
        return lua_type(L, idx) == LUA_TSTRING;
    return lua_type(L, idx) == LUA_TBOOLEAN;
}

/* Checks value at idx against decl table at d: choices and range. Returns NULL or a message (on the stack). */
static const char *check_value(lua_State *L, int idx, int d, const char *name)
{
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, d, "choices") == LUA_TTABLE) {
        int ok = 0;
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && !ok; i++) {
            lua_rawgeti(L, -1, i);
            ok = lua_rawequal(L, -1, idx);
            lua_pop(L, 1);
        }
        if (!ok) {
            int choices = lua_gettop(L);
            lua_pushliteral(L, "");
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, choices, i);
                const char *c = luaL_tolstring(L, -1, NULL);
                lua_pushfstring(L, "%s%s%s", lua_tostring(L, choices + 1), i > 1 ? ", " : "", c);
                lua_replace(L, choices + 1);
                lua_settop(L, choices + 1);
            }
            return lua_pushfstring(L, "%s must be one of %s", name, lua_tostring(L, -1));
        }
    }
    lua_pop(L, 1);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (lua_getfield(L, d, "min") == LUA_TNUMBER && v < lua_tonumber(L, -1))
            return lua_pushfstring(L, "%s must be at least %s", name, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
        if (lua_getfield(L, d, "max") == LUA_TNUMBER && v > lua_tonumber(L, -1))
            return lua_pushfstring(L, "%s must be at most %s", name, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
    }
    return NULL;
}

/* params { name = {default, "description", min =, max =, choices = {...}, type =, optional = true}, ... } */
static int l_params(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int decls = decls_table(L);
    lua_pushnil(L);
    if (lua_next(L, decls)) /* something declared already (model is only added after the chunk ran) */
        return luaL_error(L, "params: declared twice (one params {...} per recipe)");
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int spec = lua_gettop(L), key = spec - 1;
        if (lua_type(L, key) != LUA_TSTRING)
            return luaL_error(L, "params: keys must be parameter names, got %s", luaL_typename(L, key));
        const char *name = lua_tostring(L, key);
        for (const char *c = name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                  (c > name && *c >= '0' && *c <= '9')))
                return luaL_error(L, "params: '%s' is not a valid parameter name (letters, digits, _)", name);
        if (!lua_istable(L, spec))
            return luaL_error(L, "params: %s must be {default, \"description\", ...}, got %s", name,
                              luaL_typename(L, spec));
        /* unknown fields are refused (a misspelt "mx" would silently drop a range) */
        lua_pushnil(L);
        while (lua_next(L, spec)) {
            lua_pop(L, 1);
            int ok = lua_isinteger(L, -1) && (lua_tointeger(L, -1) == 1 || lua_tointeger(L, -1) == 2);
            if (lua_type(L, -1) == LUA_TSTRING)
                ok = lua_string_is(L, -1, "min") || lua_string_is(L, -1, "max") || lua_string_is(L, -1, "choices") ||
                     lua_string_is(L, -1, "type") || lua_string_is(L, -1, "optional");
            if (!ok)
                return luaL_error(L,
                                  "params: %s: unknown field '%s' (fields: [1] default, [2] description, min, max, "
                                  "choices, type, optional)",
                                  name, luaL_tolstring(L, -1, NULL));
        }
        lua_createtable(L, 0, 7);
        int d = lua_gettop(L);
        lua_rawgeti(L, spec, 1);
        int def = lua_gettop(L);
        if (lua_rawgeti(L, spec, 2) != LUA_TSTRING)
            return luaL_error(L, "params: %s: the second element must be its one-line description", name);
        lua_setfield(L, d, "desc");
        const char *tname = NULL;
        if (lua_getfield(L, spec, "type") != LUA_TNIL) {
            int t = -1;
            for (int i = 0; TYPES[i]; i++)
                if (lua_string_is(L, -1, TYPES[i]))
                    t = i;
            if (t < 0)
                return luaL_error(L, "params: %s: type must be number, integer, string or boolean", name);
            tname = TYPES[t];
        }
        lua_pop(L, 1);
        int dt = lua_type(L, def);
        if (!tname) {
            if (dt == LUA_TNIL)
                return luaL_error(L, "params: %s has no default; say its type (type = \"string\", ...)", name);
            tname = dt == LUA_TNUMBER    ? (lua_isinteger(L, def) ? "integer" : "number")
                    : dt == LUA_TSTRING  ? "string"
                    : dt == LUA_TBOOLEAN ? "boolean"
                                         : NULL;
            if (!tname)
                return luaL_error(L, "params: %s: a default must be a number, string or boolean, got %s", name,
                                  luaL_typename(L, def));
        } else if (dt != LUA_TNIL && !has_type(L, def, tname)) {
            return luaL_error(L, "params: %s: default %s is not of type %s", name, luaL_tolstring(L, def, NULL), tname);
        }
        lua_pushstring(L, tname);
        lua_setfield(L, d, "type");
        int optional = 0;
        if (lua_getfield(L, spec, "optional") != LUA_TNIL) {
            if (!lua_isboolean(L, -1))
                return luaL_error(L, "params: %s: optional must be true or false", name);
            optional = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        lua_pushboolean(L, optional);
        lua_setfield(L, d, "optional");
        int numeric = !strcmp(tname, "number") || !strcmp(tname, "integer");
        const char *bounds[] = {"min", "max"};
        for (int i = 0; i < 2; i++) {
            int bt = lua_getfield(L, spec, bounds[i]);
            if (bt != LUA_TNIL && (!numeric || bt != LUA_TNUMBER))
                return luaL_error(L, "params: %s: %s needs a numeric parameter and a number", name, bounds[i]);
            lua_setfield(L, d, bounds[i]);
        }
        lua_getfield(L, d, "min");
        lua_getfield(L, d, "max");
        if (lua_isnumber(L, -1) && lua_isnumber(L, -2) && lua_tonumber(L, -2) > lua_tonumber(L, -1))
            return luaL_error(L, "params: %s: min is above max", name);
        lua_pop(L, 2);
        if (lua_getfield(L, spec, "choices") != LUA_TNIL) {
            lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
            if (n == 0)
                return luaL_error(L, "params: %s: choices must be a non-empty list", name);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                if (!has_type(L, -1, tname))
                    return luaL_error(L, "params: %s: choice %d is not of type %s", name, (int)i, tname);
                lua_pop(L, 1);
            }
        }
        lua_setfield(L, d, "choices");
        if (dt != LUA_TNIL) {
            const char *bad = check_value(L, def, d, name);
            if (bad)
                return luaL_error(L, "params: the default of %s", bad);
        }
        lua_pushvalue(L, def);
        lua_setfield(L, d, "default");
        lua_settop(L, d);
        lua_setfield(L, decls, name); /* the decl, under its name */
        lua_settop(L, key);
    }
    return 0;
}

int lrecipe_load(lua_State *L, const char *path)
{
    luaL_requiref(L, "pare", luaopen_pare, 1);
    lua_pop(L, 1);
    lua_pushstring(L, path);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &PATH_KEY);
    lua_pushcfunction(L, l_params);
    lua_setglobal(L, "params");
    /* require finds helpers in PARE_LUA_PATH, next to the recipe, and in pare's own lua/ folder
     * (presets/../lua or beside the binary in a checkout, PREFIX/share/pare/lua when installed) */
    lua_getglobal(L, "package");
    const char *slash = strrchr(path, '/');
    const char *extra = getenv("PARE_LUA_PATH");
    int pkg = lua_gettop(L);
    lua_getfield(L, pkg, "path");
    const char *old = lua_tostring(L, -1);
    const char *dir = slash ? lua_pushlstring(L, path, (size_t)(slash - path)) : ".";
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *cut = strrchr(exe, '/');
    if (cut)
        *cut = 0;
    int sandboxed = lsandbox_active(L);
    /* sandboxed, require sees pare's folders and the recipe's only, never the system's */
    const char *lpath = lua_pushfstring(L, "%s%s%s/?.lua;%s/../lua/?.lua;%s/lua/?.lua;%s/../share/pare/lua/?.lua%s%s",
                                        extra ? extra : "", extra ? ";" : "", dir, dir, exe, exe,
                                        old && !sandboxed ? ";" : "", old && !sandboxed ? old : "");
    if (sandboxed) {
        lsandbox_lua_path(L, lpath);
        /* readable: the recipe itself and pare's own Lua and preset folders (pipeline.load_preset),
         * not the recipe's folder, which may be the user's working folder. The binary is ./pare or
         * build/VARIANT/pare in a checkout, PREFIX/bin/pare when installed. */
        lsandbox_allow(L, path, 0);
        static const char *const own[] = {"%s/lua",           "%s/presets",           "%s/../../lua",
                                          "%s/../../presets", "%s/../share/pare/lua", "%s/../share/pare/presets"};
        for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
            char d[4200];
            snprintf(d, sizeof d, own[i], exe);
            lsandbox_allow(L, d, 0);
        }
    }
    lua_setfield(L, pkg, "path");
    lua_settop(L, 0);
    pare_error perr = {0};
    if (pare_check_input(path, &perr)) { /* luaL_loadfilex would wait forever on a named pipe */
        lua_pushstring(L, perr.msg);
        return LUA_ERRFILE;
    }
    lua_pushcfunction(L, lrecipe_msgh);
    int st = luaL_loadfilex(L, path, sandboxed ? "t" : NULL); /* a binary chunk is not verified by Lua */
    if (st == LUA_OK)
        st = lua_pcall(L, 0, 0, 1);
    if (st != LUA_OK) {
        lua_remove(L, 1);
        return st;
    }
    lua_pop(L, 1);
    int decls = decls_table(L);
    if (lua_getfield(L, decls, "model") == LUA_TNIL) { /* every recipe takes --model */
        lua_createtable(L, 0, 4);
        lua_pushliteral(L, "string");
        lua_setfield(L, -2, "type");
        lua_pushliteral(L, "model folder (Hugging Face or pare export) or llama2.c checkpoint; --model DIR");
        lua_setfield(L, -2, "desc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "optional");
        lua_setfield(L, decls, "model");
    }
    lua_settop(L, 0);
    return LUA_OK;
}

int lrecipe_set(lua_State *L, const char *key, const char *value, char *msg, size_t cap)
{
    int top = lua_gettop(L);
    int decls = decls_table(L);
    if (lua_getfield(L, decls, key) != LUA_TTABLE) {
        push_name_list(L);
        snprintf(msg, cap, "--set %s=%s: no parameter '%s' (parameters: %s)", key, value, key, lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    int d = lua_gettop(L);
    lua_getfield(L, d, "type");
    const char *t = lua_tostring(L, -1);
    char *end = NULL;
    int ok = 1;
    errno = 0;
    if (!strcmp(t, "integer")) {
        long long v = strtoll(value, &end, 10);
        ok = *value && !*end && errno == 0;
        lua_pushinteger(L, (lua_Integer)v);
    } else if (!strcmp(t, "number")) {
        double v = strtod(value, &end);
        ok = *value && !*end && isfinite(v);
        lua_pushnumber(L, v);
    } else if (!strcmp(t, "boolean")) {
        int tr = !strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") ||
                 !strcasecmp(value, "on");
        int fa = !strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no") ||
                 !strcasecmp(value, "off");
        ok = tr || fa;
        lua_pushboolean(L, tr);
    } else {
        lua_pushstring(L, value);
    }
    if (!ok) {
        snprintf(msg, cap, "--set %s=%s: %s is %s %s; '%s' is not one", key, value, key,
                 !strcmp(t, "integer") ? "an" : "a", t, value);
        lua_settop(L, top);
        return -1;
    }
    const char *bad = check_value(L, -1, d, key);
    if (bad) {
        snprintf(msg, cap, "--set %s=%s: %s", key, value, bad);
        lua_settop(L, top);
        return -1;
    }
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &VALUES_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &VALUES_KEY);
    }
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, key);
    lua_settop(L, top);
    return 0;
}

int lrecipe_set_arg(lua_State *L, const char *arg, char *msg, size_t cap)
{
    char key[256];
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof key) {
        snprintf(msg, cap, "--set '%s': expected name=value%s", arg, eq && eq != arg ? " (the name is too long)" : "");
        return -1;
    }
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = 0;
    return lrecipe_set(L, key, eq + 1, msg, cap);
}

void lrecipe_help(lua_State *L, const char *path, FILE *f)
{
    int top = lua_gettop(L);
    fprintf(f, "usage: pare run %s [--model DIR] [--set name=value ...] [--quiet]\n", path);
    if (lua_getglobal(L, "description") == LUA_TSTRING)
        fprintf(f, "\n%s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    fprintf(f, "\nparameters (--set name=value):\n");
    int decls = decls_table(L), n;
    const char **names = sorted_names(L, decls, &n);
    for (int i = 0; names && i < n; i++) {
        lua_getfield(L, decls, names[i]);
        int d = lua_gettop(L);
        lua_getfield(L, d, "type");
        lua_getfield(L, d, "desc");
        char def[256] = "";
        if (lua_getfield(L, d, "default") != LUA_TNIL) {
            const char *q = lua_type(L, -1) == LUA_TSTRING ? "\"" : "";
            snprintf(def, sizeof def, "%s%s%s", q, luaL_tolstring(L, -1, NULL), q);
        } else {
            lua_getfield(L, d, "optional");
            snprintf(def, sizeof def, "%s", lua_toboolean(L, -1) ? "(optional)" : "(required)");
        }
        fprintf(f, "  %-14s %-8s %-14s %s", names[i], lua_tostring(L, d + 1), def, lua_tostring(L, d + 2));
        lua_settop(L, d);
        int hasmin = lua_getfield(L, d, "min") == LUA_TNUMBER, hasmax = lua_getfield(L, d, "max") == LUA_TNUMBER;
        if (hasmin || hasmax) {
            const char *lo = hasmin ? luaL_tolstring(L, d + 1, NULL) : NULL;
            const char *hi = hasmax ? luaL_tolstring(L, d + 2, NULL) : NULL;
            if (lo && hi)
                fprintf(f, "; in [%s, %s]", lo, hi);
            else if (lo)
                fprintf(f, "; at least %s", lo);
            else
                fprintf(f, "; at most %s", hi);
        }
        lua_settop(L, d);
        if (lua_getfield(L, d, "choices") == LUA_TTABLE) {
            fprintf(f, "; one of");
            lua_Integer nc = luaL_len(L, -1);
            for (lua_Integer c = 1; c <= nc; c++) {
                lua_rawgeti(L, d + 1, c);
                fprintf(f, "%s %s", c > 1 ? "," : "", luaL_tolstring(L, -1, NULL));
                lua_pop(L, 2);
            }
        }
        fprintf(f, "\n");
        lua_settop(L, decls);
    }
    free(names);
    lua_settop(L, top);
}

/* p is an empty proxy over the values (upvalue 1): p.declared reads the value (nil for an optional
 * parameter without one), p.undeclared is an error, not a silent nil; every assignment is refused
 * (a plain table would let p.ratio = 1 through, since __newindex only sees absent keys). */
static int p_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    int decls = decls_table(L);
    if (k && lua_getfield(L, decls, k) == LUA_TTABLE) {
        lua_pushnil(L);
        return 1;
    }
    push_name_list(L);
    return luaL_error(L, "p.%s: no such parameter (parameters: %s)", k ? k : luaL_tolstring(L, 2, NULL),
                      lua_tostring(L, -1));
}

static int p_newindex(lua_State *L)
{
    return luaL_error(L, "p.%s: parameters are read-only (use --set)", luaL_tolstring(L, 2, NULL));
}

/* pairs(p) walks the values */
static int p_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

/* Builds the parameter values and the proxy a recipe function gets: leaves [1] the message handler,
 * [2] the declarations, [3] the --set values, [4] the raw values (recorded as run.json's params) and
 * [5] the proxy. On failure (a required parameter without a value) leaves only the message, returns -1. */
static int push_params(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushcfunction(L, lrecipe_msgh);                                 /* 1 */
    int decls = decls_table(L);                                         /* 2 */
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &VALUES_KEY) != LUA_TTABLE) { /* 3 */
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_newtable(L); /* 4: p */
    int n;
    const char **names = sorted_names(L, decls, &n);
    if (!names) { /* running without the parameters would silently use none of them */
        lua_settop(L, 0);
        lua_pushliteral(L, "out of memory listing the recipe's parameters");
        return -1;
    }
    for (int i = 0; names && i < n; i++) {
        lua_getfield(L, 3, names[i]);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_getfield(L, decls, names[i]);
            lua_getfield(L, -1, "default");
            lua_getfield(L, -2, "optional");
            if (lua_isnil(L, -2) && !lua_toboolean(L, -1)) {
                const char *m = !strcmp(names[i], "model")
                                    ? lua_pushliteral(L, "--model DIR is required (a model folder or llama2.c "
                                                         "checkpoint)")
                                    : lua_pushfstring(L, "parameter %s has no default: give --set %s=VALUE", names[i],
                                                      names[i]);
                free(names);
                lua_settop(L, 0);
                lua_pushstring(L, m);
                return -1;
            }
            lua_pop(L, 1);
            lua_remove(L, -2);
        }
        lua_setfield(L, 4, names[i]);
    }
    free(names);
    lua_pushvalue(L, 4);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &PARAMS_KEY); /* the raw values, for run.json */
    lua_newtable(L);                                /* 5: the proxy run(p) gets */
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 4);
    lua_pushcclosure(L, p_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, p_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, 4);
    lua_pushcclosure(L, p_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "parameters");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, 5);
    return 0;
}

int lrecipe_run(lua_State *L)
{
    if (push_params(L))
        return -1;
    if (lua_getglobal(L, "run") != LUA_TFUNCTION) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &PATH_KEY);
        const char *m = lua_pushfstring(L, "%s: the recipe defines no function run(p)", lua_tostring(L, -1));
        lua_settop(L, 0);
        lua_pushstring(L, m);
        return -1;
    }
    lua_pushvalue(L, 5);
    int st = lua_pcall(L, 1, 0, 1);
    if (st != LUA_OK) {
        lua_replace(L, 1);
        lua_settop(L, 1);
    }
    return st;
}

int lrecipe_points(lua_State *L)
{
    if (push_params(L))
        return -1;
    if (lua_getglobal(L, "points") != LUA_TFUNCTION) {
        lua_settop(L, 0);
        return LRECIPE_NO_POINTS;
    }
    lua_pushvalue(L, 5);
    int st = lua_pcall(L, 1, 1, 1);
    if (st != LUA_OK) {
        lua_replace(L, 1);
        lua_settop(L, 1);
        return st;
    }
    lua_replace(L, 1);
    lua_pushvalue(L, 4);
    lua_replace(L, 2);
    lua_settop(L, 2);
    return LUA_OK;
}

const char *lrecipe_check_value(lua_State *L, const char *name, int idx)
{
    idx = lua_absindex(L, idx);
    int decls = decls_table(L);
    if (lua_getfield(L, decls, name) != LUA_TTABLE) {
        push_name_list(L);
        const char *m = lua_pushfstring(L, "no parameter '%s' (parameters: %s)", name, lua_tostring(L, -1));
        lua_replace(L, decls);
        lua_settop(L, decls);
        return m;
    }
    int d = lua_gettop(L);
    lua_getfield(L, d, "type");
    const char *tname = lua_tostring(L, -1);
    const char *bad = !has_type(L, idx, tname) ? lua_pushfstring(L, "%s must be of type %s, got %s", name, tname,
                                                                 luaL_tolstring(L, idx, NULL))
                                               : check_value(L, idx, d, name);
    if (!bad) {
        lua_settop(L, decls - 1);
        return NULL;
    }
    lua_replace(L, decls);
    lua_settop(L, decls);
    return lua_tostring(L, -1);
}

void lrecipe_params_push(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &PARAMS_KEY); }

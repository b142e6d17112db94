/* Objects in use: an operation of the `pare` module holds the pare objects among its arguments
 * (lp_enter) until it returns, so that Lua code running meanwhile (a progress hook) can neither close,
 * re-enter nor collect what the C side is using; and once a run is interrupted it stays interrupted,
 * even through pcall. */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "lpare_internal.h"

static const char BUSY_KEY = 'b'; /* registry: {[pare object] = the guard of the operation holding it} */
#define GUARD_MT "pare.guard"

/* A running operation's guard (lp_enter); user value 1: the objects and strings it holds. */
typedef struct {
    char op[48];
} op_guard;

/* What a pare object is called in messages, or NULL for other values. */
static const char *object_kind(lua_State *L, int idx)
{
    if (luaL_testudata(L, idx, MODEL_MT))
        return "model";
    if (luaL_testudata(L, idx, CALIB_MT))
        return "calibration";
    if (luaL_testudata(L, idx, IMPORTANCE_MT))
        return "importance";
    return NULL;
}

/* Pushes the guard holding the object at idx, or nil. */
static int push_holder(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &BUSY_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushvalue(L, idx);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

int lp_is_busy(lua_State *L, int idx)
{
    int busy = push_holder(L, idx) != LUA_TNIL;
    lua_pop(L, 1);
    return busy;
}

void lp_refuse_busy(lua_State *L, int idx, const char *fname)
{
    if (push_holder(L, idx) != LUA_TNIL) {
        op_guard *g = lua_touserdata(L, -1);
        luaL_error(L, "pare.%s: the %s is in use by %s", fname, object_kind(L, idx), g->op);
    }
    lua_pop(L, 1);
}

void lp_check_interrupted(lua_State *L, const char *fname)
{
    lpare_host *h = lp_get_host(L);
    if (h && h->interrupted && h->interrupted()) {
        h->canceled = 1;
        luaL_error(L, "pare.%s: interrupted", fname);
    }
}

/* Holds the value at idx for the guard at guard: a pare object is marked in use (refused when
 * another operation holds it), objects and strings are kept referenced, and tables are searched down
 * to depth 2 (arguments, their option tables, tables inside those). */
static void hold_value(lua_State *L, int idx, int guard, int busy, int list, int depth, const char *fname)
{
    int t = lua_type(L, idx);
    if (t == LUA_TTABLE && depth < 2) {
        luaL_checkstack(L, 4, fname);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            hold_value(L, lua_gettop(L), guard, busy, list, depth + 1, fname);
            lua_pop(L, 1);
        }
        return;
    }
    if (t != LUA_TSTRING && !(t == LUA_TUSERDATA && object_kind(L, idx)))
        return;
    if (t == LUA_TUSERDATA) {
        lua_pushvalue(L, idx);
        if (lua_rawget(L, busy) != LUA_TNIL && !lua_rawequal(L, -1, guard)) {
            op_guard *g = lua_touserdata(L, -1);
            luaL_error(L, "pare.%s: the %s is in use by %s", fname, object_kind(L, idx), g->op);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, idx);
        lua_pushvalue(L, guard);
        lua_rawset(L, busy);
    }
    lua_pushvalue(L, idx);
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* __close of a guard: the objects it marked are free again. */
static int l_guard_release(lua_State *L)
{
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE || lua_rawgetp(L, LUA_REGISTRYINDEX, &BUSY_KEY) != LUA_TTABLE)
        return 0;
    int list = lua_gettop(L) - 1, busy = list + 1;
    for (lua_Integer i = 1, n = (lua_Integer)lua_rawlen(L, list); i <= n; i++) {
        if (lua_rawgeti(L, list, i) == LUA_TUSERDATA) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, busy) != LUA_TNIL && lua_rawequal(L, -1, 1)) {
                lua_pushvalue(L, -2);
                lua_pushnil(L);
                lua_rawset(L, busy);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    return 0;
}

void lp_enter(lua_State *L, const char *op, int nargs)
{
    const char *dot = strpbrk(op, ":.");
    const char *fname = dot ? dot + 1 : op;
    lp_check_interrupted(L, fname);
    lua_settop(L, nargs);
    op_guard *g = lua_newuserdatauv(L, sizeof *g, 1);
    snprintf(g->op, sizeof g->op, "%s", op);
    luaL_setmetatable(L, GUARD_MT);
    int guard = lua_gettop(L);
    lua_toclose(L, guard); /* from here on, an error or the return releases what was marked */
    lua_newtable(L);
    int list = guard + 1;
    lua_pushvalue(L, list);
    lua_setiuservalue(L, guard, 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &BUSY_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &BUSY_KEY);
    }
    int busy = list + 1;
    for (int i = 1; i <= nargs; i++)
        hold_value(L, i, guard, busy, list, 0, fname);
    lua_settop(L, guard);
}

void lp_busy_open(lua_State *L)
{
    luaL_newmetatable(L, GUARD_MT);
    lua_pushcfunction(L, l_guard_release);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

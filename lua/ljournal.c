/* The run journal: what a recipe did, recorded by the `pare` module as it happens: models loaded
 * (with content hashes), steps with wall times, and one result row per configuration evaluated
 * (its compression steps, per-matrix decisions, parameters under both conventions, metrics with
 * their protocol cards). The session runner writes it out as run.json. */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/sha256.h"
#include "lpare_internal.h"

static const char JOURNAL_KEY = 'j'; /* registry: {steps, rows, models, records} */

void lpare_journal_push(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &JOURNAL_KEY) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    const char *lists[] = {"steps", "rows", "models"};
    for (int i = 0; i < 3; i++) {
        lua_newtable(L);
        lua_setfield(L, -2, lists[i]);
    }
    lua_newtable(L);
    lua_setfield(L, -2, "records");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &JOURNAL_KEY);
}

/* Appends the value on the stack top (popped) to journal[list]. */
static void journal_append(lua_State *L, const char *list)
{
    lpare_journal_push(L);
    lua_getfield(L, -1, list);
    lua_pushvalue(L, -3);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 3);
}

void lj_step(lua_State *L, const char *step, double t0, const char *what)
{
    lua_createtable(L, 0, 3);
    lp_set_str(L, "step", step);
    lp_set_num(L, "wall_s", lp_now() - t0);
    lp_set_str(L, "what", what);
    journal_append(L, "steps");
}

void lj_model_loaded(lua_State *L, int midx, int src)
{
    pare_model *m = lp_check_model(L, midx, "load");
    if (src) { /* the clone continues from its source's configuration, as an unevaluated row */
        lua_getiuservalue(L, src, 1);
        if (lua_istable(L, -1)) {
            int r = lua_gettop(L);
            lua_createtable(L, 0, 8);
            const char *copy[] = {"model", "method", "params", "matrices"};
            for (int i = 0; i < 4; i++) {
                lua_getfield(L, r, copy[i]);
                lua_setfield(L, -2, copy[i]);
            }
            lua_getfield(L, r, "steps");
            lua_Integer n = luaL_len(L, -1);
            lua_createtable(L, (int)n, 0);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -2, i);
                lua_rawseti(L, -2, i);
            }
            lua_setfield(L, -3, "steps");
            lua_pop(L, 1);
            lua_newtable(L);
            lua_setfield(L, -2, "metrics");
            lua_setiuservalue(L, midx, 1);
        }
        lua_pop(L, 1);
        return;
    }
    lpare_host *h = lp_get_host(L);
    if (!h || !h->out_dir) /* hashing the weights is for run records only */
        return;
    lpare_journal_push(L);
    lua_getfield(L, -1, "models");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) { /* sweeps load the same model again: hash it once */
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "path");
        int same = !strcmp(lua_tostring(L, -1), m->path);
        lua_pop(L, 2);
        if (same) {
            lua_pop(L, 2);
            return;
        }
    }
    char cfg[65], weights[65];
    pare_error err = {0};
    if (pare_model_hashes(m->path, cfg, weights, &err))
        lp_core_error(L, "load", NULL, &err);
    lua_createtable(L, 0, 6);
    lp_set_str(L, "path", m->path);
    lp_set_str(L, "arch", pare_family_class(&m->cfg));
    lp_set_str(L, "dtype", m->source_dtype);
    lp_set_str(L, "config_sha256", cfg);
    lp_set_str(L, "weights_sha256", weights);
    lua_rawseti(L, -2, n + 1);
    lua_pop(L, 2);
}

/* Refreshes row r (absolute index) from the model's state now. */
static void row_refresh(lua_State *L, int r, pare_model *m)
{
    lp_push_param_counts(L, m);
    lua_setfield(L, r, "params");
    lp_push_matrices(L, m);
    lua_setfield(L, r, "matrices");
}

/* Pushes a new row for m, registered in journal.rows. */
static void row_new(lua_State *L, pare_model *m)
{
    lua_createtable(L, 0, 8);
    int r = lua_gettop(L);
    lp_set_str(L, "model", m->path);
    lp_set_str(L, "method", "dense");
    lua_newtable(L);
    lua_setfield(L, r, "steps");
    lua_newtable(L);
    lua_setfield(L, r, "metrics");
    row_refresh(L, r, m);
}

static void row_register(lua_State *L, int r)
{
    if (lua_getfield(L, r, "_registered") == LUA_TNIL) {
        lua_pushboolean(L, 1);
        lua_setfield(L, r, "_registered");
        lua_pushvalue(L, r);
        journal_append(L, "rows");
    }
    lua_pop(L, 1);
}

void lj_model_changed(lua_State *L, int midx)
{
    midx = lua_absindex(L, midx);
    int step = lua_gettop(L);
    pare_model *m = lp_check_model(L, midx, "compress");
    lua_getiuservalue(L, midx, 1);
    int evaluated = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "metrics");
        evaluated = luaL_len(L, -1) > 0;
        lua_pop(L, 1);
    }
    if (!lua_istable(L, -1) || evaluated) { /* a new configuration, continuing the old one's steps */
        int old = lua_gettop(L);
        row_new(L, m);
        if (lua_istable(L, old)) {
            lua_getfield(L, old, "steps");
            lua_getfield(L, -2, "steps");
            lua_Integer n = luaL_len(L, -2);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -2, i);
                lua_rawseti(L, -2, i);
            }
            lua_pop(L, 2);
        }
        lua_remove(L, old);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, midx, 1);
    }
    int r = lua_gettop(L);
    lua_getfield(L, r, "steps");
    lua_pushvalue(L, step);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    /* method: the steps' methods joined by "+" (e.g. "wanda+svd") */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = luaL_len(L, r + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, r + 1, i);
        lua_getfield(L, -1, "method");
        const char *me = lua_tostring(L, -1);
        lua_pop(L, 2);
        if (i > 1)
            luaL_addchar(&b, '+');
        luaL_addstring(&b, me ? me : "?");
    }
    luaL_pushresult(&b);
    lua_setfield(L, r, "method");
    lua_pop(L, 1);
    row_refresh(L, r, m);
    row_register(L, r);
    lua_settop(L, step - 1);
}

void lj_metric(lua_State *L, int midx)
{
    midx = lua_absindex(L, midx);
    int metric = lua_gettop(L);
    pare_model *m = lp_check_model(L, midx, "eval");
    if (lua_getiuservalue(L, midx, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        row_new(L, m);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, midx, 1);
    }
    int r = lua_gettop(L);
    row_register(L, r);
    /* the same metric on the same data replaces the earlier value */
    lua_getfield(L, metric, "name");
    lua_getfield(L, metric, "data");
    const char *name = lua_tostring(L, -2), *data = lua_tostring(L, -1);
    lua_getfield(L, r, "metrics");
    int list = lua_gettop(L);
    lua_Integer n = luaL_len(L, list), at = n + 1;
    for (lua_Integer i = 1; i <= n && at > n; i++) {
        lua_rawgeti(L, list, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "data");
        if (!strcmp(lua_tostring(L, -2), name) && data && lua_tostring(L, -1) && !strcmp(lua_tostring(L, -1), data))
            at = i;
        lua_pop(L, 3);
    }
    lua_pushvalue(L, metric);
    lua_rawseti(L, list, at);
    /* one line for the front end's results */
    lpare_host *h = lp_get_host(L);
    if (h && (h->result || h->log)) {
        lua_getfield(L, r, "method");
        lua_getfield(L, r, "params");
        lua_getfield(L, -1, "block_linear_removed");
        lua_getfield(L, metric, "value");
        const char *base = data ? strrchr(data, '/') : NULL;
        char line[512];
        snprintf(line, sizeof line, "result: %s, block linears -%.1f%%: %s %.6g on %s", lua_tostring(L, -4),
                 100 * lua_tonumber(L, -2), name, lua_tonumber(L, -1),
                 base   ? base + 1
                 : data ? data
                        : "?");
        (h->result ? h->result : h->log)(h->user, line);
    }
    lua_settop(L, metric - 1);
}

/* ---- pare.record ------------------------------------------------------------------------------- */

/* What a record may hold: run.json is JSON, read by people and by pare compare, so no cycles, no
 * functions or userdata, no NaN or infinity, text in UTF-8, and a bounded size. */
#define RECORD_MAX_DEPTH 16       /* tables inside tables; the recorded table itself is level 1 */
#define RECORD_MAX_VALUES 1000000 /* values in one record, counting those reached twice (shared) twice */

typedef struct {
    lua_State *L;
    int on_path; /* stack index of {[table] = true} for the tables being copied (cycle detection) */
    size_t values;
    char path[1200]; /* NAME.key[2]... of the value being copied, for the messages */
} record_copy;

/* Text JSON can hold: valid UTF-8, the criterion of the writer (jansson) itself. */
static int is_json_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

/* Appends the key at idx to c->path ("[3]", ".name", or ["odd name"], long names shortened); raises for
 * keys JSON objects cannot have. Returns 0 for a "_"-prefixed key, which run.json leaves out (the
 * module's bookkeeping, e.g. in rows from pare.results()). */
static int path_push_key(record_copy *c, int idx)
{
    lua_State *L = c->L;
    size_t used = strlen(c->path), cap = sizeof c->path - used;
    if (lua_type(L, idx) == LUA_TNUMBER && lua_isinteger(L, idx)) {
        snprintf(c->path + used, cap, "[%lld]", (long long)lua_tointeger(L, idx));
        return 1;
    }
    if (lua_type(L, idx) != LUA_TSTRING) {
        const char *type = luaL_typename(L, idx); /* before lua_tostring turns a number key into a string */
        luaL_error(L, "pare.record: %s has a key of type %s (%s); keys must be strings or integers", c->path, type,
                   lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : "JSON keys are text");
    }
    size_t len;
    const char *k = lua_tolstring(L, idx, &len);
    if (k[0] == '_')
        return 0;
    int ident = len > 0 && !memchr(k, 0, len);
    for (size_t i = 0; i < len && ident; i++)
        ident = k[i] == '_' || (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                (i && k[i] >= '0' && k[i] <= '9');
    int shown = len > 40 ? 40 : (int)len;
    snprintf(c->path + used, cap, ident ? ".%.*s%s" : "[\"%.*s%s\"]", shown, k, len > 40 ? "..." : "");
    if (memchr(k, 0, len) || !is_json_text(k, len))
        luaL_error(L, "pare.record: the key at %s is not UTF-8 text without NUL bytes", c->path);
    return 1;
}

/* Pushes a plain copy (no metatables, no shared tables) of the value at idx, at nesting level, or
 * raises naming c->path. */
static void record_copy_value(record_copy *c, int idx, int level)
{
    lua_State *L = c->L;
    if (++c->values > RECORD_MAX_VALUES)
        luaL_error(L, "pare.record: %s holds more than %d values", c->path, RECORD_MAX_VALUES);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: lua_pushvalue(L, idx); return;
    case LUA_TNUMBER:
        if (!lua_isinteger(L, idx) && !isfinite(lua_tonumber(L, idx)))
            luaL_error(L, "pare.record: %s is %s; JSON has no NaN or infinity (record nil or a string instead)",
                       c->path, lua_tostring(L, idx));
        lua_pushvalue(L, idx);
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        if (!is_json_text(str, len))
            luaL_error(L, "pare.record: %s is not UTF-8 text", c->path);
        lua_pushvalue(L, idx);
        return;
    }
    case LUA_TTABLE: break;
    default:
        luaL_error(L,
                   "pare.record: %s is a %s; a record holds numbers, strings, booleans and tables of them "
                   "(run.json is JSON)",
                   c->path, luaL_typename(L, idx));
    }
    if (level > RECORD_MAX_DEPTH)
        luaL_error(L, "pare.record: table nested deeper than %d levels at %s", RECORD_MAX_DEPTH, c->path);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->on_path) != LUA_TNIL)
        luaL_error(L, "pare.record: cycle at %s (a table that contains itself cannot be written as JSON)", c->path);
    lua_pop(L, 1);
    luaL_checkstack(L, 8, "pare.record");
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, c->on_path);
    lua_newtable(L);
    int copy = lua_gettop(L);
    size_t used = strlen(c->path);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int key = copy + 1, value = copy + 2;
        if (path_push_key(c, key)) {
            record_copy_value(c, value, level + 1);
            lua_pushvalue(L, key);
            lua_insert(L, -2);
            lua_rawset(L, copy);
        }
        c->path[used] = 0;
        lua_settop(L, key);
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, c->on_path);
}

/* pare.record(name, value): a value (number, string, boolean or table of them) kept under run.json's
 * "records"; recording a name again replaces it. The value is checked and copied now, so a later
 * change to the table does not change the record; an unfit value raises naming its key path. */
int lj_l_record(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    record_copy c = {L, 0, 0, ""};
    lua_newtable(L);
    c.on_path = lua_gettop(L);
    lua_pushvalue(L, 1);
    if (!path_push_key(&c, c.on_path + 1))
        return luaL_error(L, "pare.record: the name '%s' starts with '_', which run.json leaves out", name);
    if (c.path[0] == '.')
        memmove(c.path, c.path + 1, strlen(c.path));
    record_copy_value(&c, 2, 1);
    lpare_journal_push(L);
    lua_getfield(L, -1, "records");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -4);
    lua_rawset(L, -3);
    return 0;
}

/* pare.results() -> the result rows recorded so far (one per configuration evaluated or compressed). */
int lj_l_results(lua_State *L)
{
    lpare_journal_push(L);
    lua_getfield(L, -1, "rows");
    return 1;
}

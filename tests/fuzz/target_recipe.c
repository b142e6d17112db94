/* The recipe fuzz targets (see targets.h): recipe_params feeds declarations params {...} and --set
 * name=value arguments through the recipe runner of lua/lrecipe.c, as `pare run` uses it;
 * recipe_record builds a Lua value (nesting, cycles, shared tables, key kinds, numbers, strings) and
 * records it with pare.record, then converts it as run.json does (lua/lsession.c). Separate from
 * targets.c because these are the targets that include Lua. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <math.h>

#include "lpare.h"
#include "lsession.h"
#include "targets.h"

/* Used when the input has no PARE_FUZZ_SEP: then the whole input is --set arguments. */
static const char DEFAULT_DECLS[] = "ratio = {0.3, \"fraction of parameters removed\", min = 0, max = 0.95},\n"
                                    "rank = {8, \"rank\", min = 1, max = 4096},\n"
                                    "method = {\"svd\", \"method\", choices = {\"svd\", \"asvd\", \"wanda\"}},\n"
                                    "verbose = {false, \"log more\"},\n"
                                    "calib = {nil, \"calibration text\", type = \"string\", optional = true},\n"
                                    "steps = {nil, \"steps\", type = \"integer\", min = 0},\n"
                                    "lr = {1e-3, \"learning rate\", type = \"number\", choices = {1e-3, 1e-4, 3e-4}},\n"
                                    "bits = {4, \"bits\", type = \"integer\", choices = {2, 4, 8}},\n";

/* The recipe: the declarations are evaluated as a table constructor in an empty environment (no
 * globals; the harness also removes the string methods, the only other way out), and run(p) checks
 * that every value it got honours its declaration; a breach is reported in FUZZ_VIOLATION. */
static const char RECIPE[] =
    "local decls = assert(load('return {\\n' .. FUZZ_DECLS .. '\\n}', '=params', 't', {}))()\n"
    "params(decls)\n"
    "local function bad(name, why) FUZZ_VIOLATION = 'p.' .. name .. ': ' .. why end\n"
    "function run(p)\n"
    "  for name, spec in pairs(decls) do\n"
    "    local v, t = p[name], spec.type\n"
    "    if t == nil then t = math.type(spec[1]) == 'integer' and 'integer' or type(spec[1]) end\n"
    "    if v == nil then\n"
    "      if spec[1] ~= nil then bad(name, 'nil despite a default') end\n"
    "    elseif (t == 'integer' and math.type(v) ~= 'integer') or (t ~= 'integer' and type(v) ~= t) then\n"
    "      bad(name, type(v) .. ' for type ' .. t)\n"
    "    else\n"
    "      if spec.min ~= nil and not (v >= spec.min) then bad(name, tostring(v) .. ' below min') end\n"
    "      if spec.max ~= nil and not (v <= spec.max) then bad(name, tostring(v) .. ' above max') end\n"
    "      if spec.choices ~= nil then\n"
    "        local ok = false\n"
    "        for _, c in ipairs(spec.choices) do ok = ok or rawequal(c, v) end\n"
    "        if not ok then bad(name, tostring(v) .. ' not a choice') end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if pcall(function() return p.fuzz_undeclared_ end) and decls.fuzz_undeclared_ == nil then\n"
    "    bad('fuzz_undeclared_', 'readable though undeclared')\n"
    "  end\n"
    "  if pcall(function() p.ratio = 1 end) then bad('ratio', 'writable') end\n"
    "end\n";

/* Lua's memory, capped so that a declaration cannot ask for more than fuzzing allows. */
typedef struct {
    size_t used, limit;
} budget;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    budget *b = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->used - old + nsize > b->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        b->used = b->used - old + nsize;
    return p;
}

/* ... and its instructions: a declaration like {(function() while true do end end)()} must end. */
static long steps;
static void step_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (++steps > 2000) /* x 1000 instructions */
        luaL_error(L, "fuzz: instruction budget exhausted");
}

static int panic(lua_State *L)
{
    fprintf(stderr, "fuzz recipe_params: Lua error outside a protected call: %s\n", lua_tostring(L, -1));
    abort();
}

/* params {...} (the first part, else DEFAULT_DECLS), then one --set argument per line of the rest;
 * the help listing; run(p). */
void fuzz_recipe_params(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    static FILE *devnull;
    if (!dir || (!devnull && !(devnull = fopen("/dev/null", "w"))))
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/recipe/fuzz.lua", dir);
    static int written;
    if (!written) {
        fuzz_part r = {(const uint8_t *)RECIPE, sizeof RECIPE - 1};
        if (fuzz_put("recipe/fuzz.lua", &r))
            return;
        written = 1;
    }
    fuzz_part parts[2];
    int n = fuzz_split(data, size, parts, 2);
    fuzz_part decls = n > 1 ? parts[0] : (fuzz_part){(const uint8_t *)DEFAULT_DECLS, sizeof DEFAULT_DECLS - 1};
    fuzz_part sets = n > 1 ? parts[1] : parts[0];

    budget b = {0, (size_t)64 << 20};
    lua_State *L = lua_newstate(capped_alloc, &b);
    if (!L)
        return;
    lua_atpanic(L, panic);
    luaL_openlibs(L);
    lua_pushliteral(L, ""); /* no string methods: ("x"):rep(1e9) and pathological patterns stay out */
    if (lua_getmetatable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushlstring(L, (const char *)decls.data, decls.size);
    lua_setglobal(L, "FUZZ_DECLS");
    steps = 0;
    lua_sethook(L, step_hook, LUA_MASKCOUNT, 1000);
    if (lrecipe_load(L, path) != LUA_OK) {
        fuzz_note("recipe_params", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    lua_sethook(L, NULL, 0, 0);
    char *line = malloc(sets.size + 1), msg[4096];
    if (!line) {
        lua_close(L);
        return;
    }
    lrecipe_set_arg(L, "model=fuzz-model", msg, sizeof msg); /* as --model gives it; a later line may override */
    for (size_t off = 0; off < sets.size;) {
        const uint8_t *nl = memchr(sets.data + off, '\n', sets.size - off);
        size_t len = nl ? (size_t)(nl - sets.data) - off : sets.size - off;
        memcpy(line, sets.data + off, len);
        line[len] = 0; /* an argument ends at a NUL, as argv's do */
        off += len + 1;
        msg[0] = 0;
        if (lrecipe_set_arg(L, line, msg, sizeof msg) && !msg[0]) {
            fprintf(stderr, "fuzz recipe_params: --set '%s' refused without a message\n", line);
            abort();
        }
        if (msg[0])
            fuzz_note("recipe_params", msg);
    }
    free(line);
    lrecipe_help(L, path, devnull);
    steps = 0;
    lua_sethook(L, step_hook, LUA_MASKCOUNT, 1000);
    int st = lrecipe_run(L);
    if (st != LUA_OK)
        fuzz_note("recipe_params", lua_tostring(L, -1));
    if (st == LUA_OK && lua_getglobal(L, "FUZZ_VIOLATION") == LUA_TSTRING) {
        fprintf(stderr, "fuzz recipe_params: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_close(L);
}

/* ---- recipe_record ------------------------------------------------------------------------------ */

/* The fuzz input, read a byte (or 8) at a time; past the end every read gives 0. */
typedef struct {
    const uint8_t *p;
    size_t left;
    int tables; /* stack index of the list of tables built so far (for references: cycles, sharing) */
    int refs;   /* references left: each may double the record's size, so a few are enough */
} value_reader;

static uint8_t next_byte(value_reader *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

static uint64_t next_u64(value_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | next_byte(r);
    return v;
}

static void push_value(lua_State *L, value_reader *r, int depth);

/* A float made of 8 input bytes taken as its bits: any value, NaN and infinities included. */
static void push_float_bits(lua_State *L, value_reader *r)
{
    uint64_t bits = next_u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    lua_pushnumber(L, d);
}

/* A key: a small or large integer, a float (1.5, inf; NaN keys are skipped), a string, a boolean, a table. */
static void push_key(lua_State *L, value_reader *r, int depth)
{
    switch (next_byte(r) % 6) {
    case 0: lua_pushinteger(L, next_byte(r)); break;
    case 1: lua_pushinteger(L, (lua_Integer)next_u64(r)); break;
    case 2: push_float_bits(L, r); break;
    case 3: lua_pushboolean(L, next_byte(r) & 1); break;
    case 4: push_value(L, r, depth); break; /* any value as a key: a table, a function... */
    default: {
        size_t n = next_byte(r) % 24;
        n = n < r->left ? n : r->left;
        lua_pushlstring(L, (const char *)r->p, n);
        r->p += n;
        r->left -= n;
    }
    }
}

/* Pushes one value read from r: an integer, a float (any bits: NaN, inf), a string (any bytes), a
 * boolean, a table of up to 7 entries, a chain of up to 255 nested tables, a reference to a table
 * built before (an ancestor makes a cycle), a function, a userdata. */
static void push_value(lua_State *L, value_reader *r, int depth)
{
    luaL_checkstack(L, 8, "fuzz");
    uint8_t op = next_byte(r);
    if (depth > 40 && op % 10 == 4)
        op = 0;
    switch (op % 10) {
    case 0: lua_pushinteger(L, (lua_Integer)next_u64(r)); return;
    case 1: push_float_bits(L, r); return;
    case 2: push_key(L, r, depth); return;
    case 3: lua_pushboolean(L, op & 16); return;
    case 4: {
        lua_newtable(L);
        int t = lua_gettop(L);
        lua_pushvalue(L, t);
        lua_rawseti(L, r->tables, (lua_Integer)lua_rawlen(L, r->tables) + 1);
        for (int n = next_byte(r) % 8; n > 0 && r->left; n--) {
            push_key(L, r, depth + 1);
            push_value(L, r, depth + 1);
            if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && isnan(lua_tonumber(L, -2))))
                lua_pop(L, 2); /* keys Lua refuses */
            else
                lua_rawset(L, t);
        }
        return;
    }
    case 5: {
        lua_Integer n = (lua_Integer)lua_rawlen(L, r->tables);
        if (n && r->refs-- > 0)
            lua_rawgeti(L, r->tables, 1 + next_byte(r) % n);
        else
            lua_pushnil(L);
        return;
    }
    case 6: { /* {a = {a = ... {}}}: deep nesting in a few bytes */
        int levels = next_byte(r);
        lua_newtable(L);
        for (int i = 0; i < levels; i++) {
            lua_createtable(L, 0, 1);
            lua_insert(L, -2);
            lua_setfield(L, -2, "a");
        }
        return;
    }
    case 7: lua_getglobal(L, "print"); return;
    case 8: lua_newuserdatauv(L, 1, 0); return;
    default: lua_pushnil(L); return;
    }
}

/* Depth of nested JSON containers. */
static int json_depth(const json_t *j)
{
    int d = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            int c = json_depth(v);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            int c = json_depth(v);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

/* pare.record("fuzz", VALUE) in a protected call: either it is recorded and run.json's conversion of
 * the records is complete (no more than 16 levels, no cut-off marks), or the error names pare.record;
 * then the unchecked value itself goes through the conversion (as result rows a recipe changed do). */
void fuzz_recipe_record(const uint8_t *data, size_t size)
{
    budget b = {0, (size_t)64 << 20};
    lua_State *L = lua_newstate(capped_alloc, &b);
    if (!L)
        return;
    lua_atpanic(L, panic);
    luaL_openlibs(L);
    luaL_requiref(L, "pare", luaopen_pare, 1);
    lua_getfield(L, -1, "record");
    int record = lua_gettop(L);
    lua_newtable(L);
    value_reader r = {data, size, lua_gettop(L), 4};
    push_value(L, &r, 0);
    int value = lua_gettop(L);
    lua_pushvalue(L, record);
    lua_pushliteral(L, "fuzz");
    lua_pushvalue(L, value);
    int st = lua_pcall(L, 2, 0, 0);
    if (st == LUA_OK) {
        lpare_journal_push(L);
        lua_getfield(L, -1, "records");
        json_t *j = lsession_to_json(L, -1);
        char *text = json_dumps(j, JSON_ENCODE_ANY);
        /* the conversion's cut-off marks, unless the input itself spells them (as a string it recorded) */
        static const char *const marks[] = {"(cycle)", "(nested too deeply)", "(too large)"};
        int cut = 0;
        for (int i = 0; i < 3 && text; i++)
            cut |= strstr(text, marks[i]) && !memmem(data, size, marks[i], strlen(marks[i]));
        if (!j || !text || json_depth(json_object_get(j, "fuzz")) > 16 || cut) {
            fprintf(stderr, "fuzz recipe_record: a recorded value did not convert as recorded: %.300s\n",
                    text ? text : "(no JSON)");
            abort();
        }
        free(text);
        json_decref(j);
        lua_pop(L, 2);
    } else {
        const char *msg = lua_tostring(L, -1);
        if (st != LUA_ERRMEM && (!msg || strncmp(msg, "pare.record: ", 13))) {
            fprintf(stderr, "fuzz recipe_record: an error that does not name pare.record: %s\n", msg ? msg : "?");
            abort();
        }
        fuzz_note("recipe_record", msg ? msg : "?");
        lua_pop(L, 1);
        json_t *j = lsession_to_json(L, value);
        char *text = json_dumps(j, JSON_ENCODE_ANY);
        free(text);
        json_decref(j);
    }
    lua_close(L);
}

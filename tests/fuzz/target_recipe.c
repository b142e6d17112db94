/* The recipe parameter fuzz target (see targets.h): declarations params {...} and --set name=value
 * arguments through the recipe runner of lua/lrecipe.c, as `pare run` uses it. Separate from
 * targets.c because it is the only target that includes Lua. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lpare.h"
#include "targets.h"

/* Used when the input has no PARE_FUZZ_SEP: then the whole input is --set arguments. */
static const char DEFAULT_DECLS[] =
    "ratio = {0.3, \"fraction of parameters removed\", min = 0, max = 0.95},\n"
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

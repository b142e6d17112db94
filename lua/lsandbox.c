/* The recipe sandbox: restricted standard libraries and one path policy for them and the pare module. */
#include "lsandbox.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"

/* Registry: POLICY_KEY -> {read = {root, ...}, write = {root, ...}, lua_path = "..."} (resolved roots). */
static const char POLICY_KEY = 'S';

static int push_policy(lua_State *L)
{
    return lua_rawgetp(L, LUA_REGISTRYINDEX, &POLICY_KEY) == LUA_TTABLE;
}

int lsandbox_active(lua_State *L)
{
    int on = push_policy(L);
    lua_pop(L, 1);
    return on;
}

/* The canonical form of path: realpath of its longest existing prefix, then the remaining components,
 * which may not be "." or ".." (a name that does not exist yet cannot climb out). 0 on failure. */
static int resolve(const char *path, char *out)
{
    if (!path || !*path || strlen(path) >= PATH_MAX)
        return 0;
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    if (realpath(buf, out))
        return 1;
    char *slash = strrchr(buf, '/');
    const char *name = slash ? slash + 1 : buf;
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    char parent[PATH_MAX];
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == buf)
        snprintf(parent, sizeof parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - buf), buf);
    char base[PATH_MAX];
    if (!resolve(parent, base))
        return 0;
    size_t bl = strlen(base), nl = strlen(name);
    int sep = strcmp(base, "/") != 0;
    if (bl + (size_t)sep + nl >= PATH_MAX)
        return 0;
    memcpy(out, base, bl);
    if (sep)
        out[bl] = '/';
    memcpy(out + bl + sep, name, nl + 1);
    return 1;
}

static int under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (!strcmp(root, "/"))
        return 1;
    return !strncmp(path, root, n) && (path[n] == 0 || path[n] == '/');
}

/* Non-zero when the resolved path lies under a root of the list `which` of the policy on the stack top. */
static int allowed_in(lua_State *L, const char *resolved, const char *which)
{
    int ok = 0;
    lua_getfield(L, -1, which);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && !ok; i++) {
        lua_rawgeti(L, -1, i);
        ok = under(resolved, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

void lsandbox_allow(lua_State *L, const char *path, int write)
{
    char r[PATH_MAX];
    struct stat sb;
    if (!push_policy(L) || !path || stat(path, &sb) || !resolve(path, r)) {
        lua_pop(L, 1);
        return;
    }
    for (int w = 0; w <= write; w++) {
        lua_getfield(L, -1, w ? "write" : "read");
        lua_pushstring(L, r);
        lua_rawseti(L, -2, luaL_len(L, -2) + 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Reading a named pipe or a device would wait forever (io.open, io.lines, loadfile): refused as the
 * core refuses them. Folders pass: pare.load and m:eval_task take them. */
static void refuse_special_file(lua_State *L, const char *path, const char *fname)
{
    struct stat sb;
    pare_error perr = {0};
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode) && pare_check_input(path, &perr))
        luaL_error(L, "%s: %s", fname, perr.msg);
}

void lsandbox_check(lua_State *L, const char *path, int write, const char *fname)
{
    if (!push_policy(L)) {
        lua_pop(L, 1);
        return;
    }
    char r[PATH_MAX];
    int ok = resolve(path, r) && (allowed_in(L, r, write ? "write" : "read"));
    lua_pop(L, 1);
    if (!ok)
        luaL_error(L, "%s: sandbox: %s is outside the folders this recipe may %s (%s); run it without --sandbox "
                      "or allow the folder with --allow DIR",
                   fname, path, write ? "write" : "read",
                   write ? "the run's output folder" : "the model, the files given with --model/--set, OUT and "
                                                       "the recipe's Lua folders");
    if (!write)
        refuse_special_file(L, path, fname);
}

/* ---- the restricted standard library ---------------------------------------------------------- */

static int is_write_mode(const char *mode) { return strpbrk(mode, "wa+") != NULL; }

/* io.open(path [, mode]) */
static int sb_io_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1), *mode = luaL_optstring(L, 2, "r");
    lsandbox_check(L, path, is_write_mode(mode), "io.open");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* io.lines([path, ...]), io.input([file]), io.output([file]): a path argument is checked */
static int sb_io_path_first(lua_State *L)
{
    int write = (int)lua_tointeger(L, lua_upvalueindex(2));
    if (lua_type(L, 1) == LUA_TSTRING)
        lsandbox_check(L, lua_tostring(L, 1), write, lua_tostring(L, lua_upvalueindex(3)));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]): text only */
static int sb_load(lua_State *L)
{
    int n = lua_gettop(L);
    if (n >= 3 && !lua_isnil(L, 3) && strcmp(luaL_checkstring(L, 3), "t"))
        return luaL_error(L, "load: sandbox: only text chunks may be loaded (mode \"t\")");
    int nargs = n >= 4 ? 4 : 3; /* env only when given: load tells an absent env from nil */
    lua_settop(L, nargs);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

/* loadfile([path [, mode [, env]]]): checked, text only */
static int sb_loadfile(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    if (path)
        lsandbox_check(L, path, 0, "loadfile");
    if (!lua_isnoneornil(L, 2) && strcmp(luaL_checkstring(L, 2), "t"))
        return luaL_error(L, "loadfile: sandbox: only text chunks may be loaded (mode \"t\")");
    int env = !lua_isnone(L, 3);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, 3);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* dofile([path]): checked, text only */
static int sb_dofile(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    if (path)
        lsandbox_check(L, path, 0, "dofile");
    lua_settop(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

static int sb_os_remove(lua_State *L)
{
    lsandbox_check(L, luaL_checkstring(L, 1), 1, "os.remove");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sb_os_rename(lua_State *L)
{
    lsandbox_check(L, luaL_checkstring(L, 1), 1, "os.rename");
    lsandbox_check(L, luaL_checkstring(L, 2), 1, "os.rename");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sb_removed(lua_State *L)
{
    return luaL_error(L, "%s: sandbox: not available to recipes run with --sandbox",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* require's only searcher for files: the templates of package.path as it was when the recipe was
 * loaded (a recipe that changes package.path changes nothing), text chunks only. */
static int sb_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!push_policy(L))
        return 0;
    lua_getfield(L, -1, "lua_path");
    const char *tmpl = lua_tostring(L, -1);
    const char *mod = luaL_gsub(L, name, ".", "/");
    char tried[2048] = "";
    size_t used = 0;
    for (const char *p = tmpl ? tmpl : ""; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            lua_pushlstring(L, p, len);
            const char *file = luaL_gsub(L, lua_tostring(L, -1), "?", mod);
            FILE *f = fopen(file, "r");
            if (f) {
                fclose(f);
                if (luaL_loadfilex(L, file, "t") != LUA_OK)
                    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                                      lua_tostring(L, -1));
                lua_pushstring(L, file);
                return 2;
            }
            if (used < sizeof tried)
                used += (size_t)snprintf(tried + used, sizeof tried - used, "\n\tno file '%s'", file);
            lua_pop(L, 2);
        }
        p += len + (e ? 1 : 0);
        if (!e)
            break;
    }
    lua_pushstring(L, tried);
    return 1;
}

static void wrap(lua_State *L, const char *lib, const char *fn, lua_CFunction w)
{
    lua_getglobal(L, lib);
    lua_getfield(L, -1, fn);
    lua_pushcclosure(L, w, 1);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

static void remove_fn(lua_State *L, const char *lib, const char *fn)
{
    lua_getglobal(L, lib);
    lua_pushfstring(L, "%s.%s", lib, fn);
    lua_pushcclosure(L, sb_removed, 1);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

void lsandbox_enable(lua_State *L, const char *lua_path)
{
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    lua_setfield(L, -2, "read");
    lua_newtable(L);
    lua_setfield(L, -2, "write");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &POLICY_KEY);

    remove_fn(L, "os", "execute");
    remove_fn(L, "os", "exit");
    remove_fn(L, "os", "tmpname");
    remove_fn(L, "os", "setlocale");
    remove_fn(L, "io", "popen");
    remove_fn(L, "package", "loadlib");
    wrap(L, "io", "open", sb_io_open);
    wrap(L, "os", "remove", sb_os_remove);
    wrap(L, "os", "rename", sb_os_rename);
    static const struct {
        const char *fn;
        int write;
    } pathfirst[] = {{"lines", 0}, {"input", 0}, {"output", 1}};
    for (size_t i = 0; i < sizeof pathfirst / sizeof *pathfirst; i++) {
        lua_getglobal(L, "io");
        lua_getfield(L, -1, pathfirst[i].fn);
        lua_pushinteger(L, pathfirst[i].write);
        lua_pushfstring(L, "io.%s", pathfirst[i].fn);
        lua_pushcclosure(L, sb_io_path_first, 3);
        lua_setfield(L, -2, pathfirst[i].fn);
        lua_pop(L, 1);
    }
    lua_getglobal(L, "load");
    lua_pushcclosure(L, sb_load, 1);
    lua_setglobal(L, "load");
    lua_register(L, "loadfile", sb_loadfile);
    lua_register(L, "dofile", sb_dofile);
    /* no debug library: it reaches the registry, upvalues and hooks */
    lua_pushnil(L);
    lua_setglobal(L, "debug");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 1);
    /* require: preloaded modules, then Lua files from the frozen path; no C modules */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_createtable(L, 2, 0);
    lua_getfield(L, -2, "searchers");
    lua_rawgeti(L, -1, 1);
    lua_rawseti(L, -3, 1);
    lua_pop(L, 1);
    lua_pushcfunction(L, sb_searcher);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, "searchers");
    lua_pop(L, 1);
    if (lua_path)
        lsandbox_lua_path(L, lua_path);
}

void lsandbox_lua_path(lua_State *L, const char *lua_path)
{
    if (!push_policy(L)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushstring(L, lua_path);
    lua_setfield(L, -2, "lua_path");
    lua_pop(L, 1);
    /* each template's folder may be read */
    for (const char *p = lua_path; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char t[PATH_MAX];
        if (len && len < sizeof t) {
            memcpy(t, p, len);
            t[len] = 0;
            char *q = strchr(t, '?');
            if (q) {
                *q = 0;
                char *slash = strrchr(t, '/');
                if (slash)
                    *slash = 0;
                lsandbox_allow(L, t[0] ? t : "/", 0);
            }
        }
        p += len + (e ? 1 : 0);
        if (!e)
            break;
    }
}

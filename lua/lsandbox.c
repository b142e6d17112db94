/* The recipe sandbox: restricted standard libraries and one path policy for them and the pare module. */
#include "lsandbox.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/fileio.h"

/* Registry: POLICY_KEY -> {read = {root, ...}, write = {root, ...}, lua_path = "..."} (resolved roots). */
static const char POLICY_KEY = 'S';

static int push_policy(lua_State *L) { return lua_rawgetp(L, LUA_REGISTRYINDEX, &POLICY_KEY) == LUA_TTABLE; }

int lsandbox_active(lua_State *L)
{
    int on = push_policy(L);
    lua_pop(L, 1);
    return on;
}

/* Non-zero when the resolved path lies under a root of the list `which` of the policy on the stack top. */
static int allowed_in(lua_State *L, const char *resolved, const char *which)
{
    int ok = 0;
    lua_getfield(L, -1, which);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && !ok; i++) {
        lua_rawgeti(L, -1, i);
        ok = pare_path_under(resolved, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

void lsandbox_allow(lua_State *L, const char *path, int write)
{
    char r[PATH_MAX];
    struct stat sb;
    if (!push_policy(L) || !path || stat(path, &sb) || !pare_resolve_path(path, r)) {
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
    int ok = pare_resolve_path(path, r) && (allowed_in(L, r, write ? "write" : "read"));
    lua_pop(L, 1);
    if (!ok)
        luaL_error(L, "%s: sandbox: %s is outside the folders this recipe may %s (%s); run it without --sandbox%s",
                   fname, path, write ? "write" : "read",
                   write ? "the run's output folder, reached without a symbolic link that leads out of it"
                         : "the recipe, the model, the files given with --model/--set, OUT and pare's Lua and preset "
                           "folders",
                   write ? "" : " or allow the folder with --allow DIR");
    if (!write)
        refuse_special_file(L, path, fname);
}

/* ---- the restricted standard library ---------------------------------------------------------- */

static int is_write_mode(const char *mode) { return strpbrk(mode, "wa+") != NULL; }

/* The open(2) flags of a Lua/C file mode ("r", "w", "a", "r+", "w+", "a+", each with an optional
 * "b"); -1 for anything else, as io.open refuses it. */
static int mode_flags(const char *mode)
{
    static const struct {
        char c;
        int flags;
    } base[] = {{'r', O_RDONLY}, {'w', O_WRONLY | O_CREAT | O_TRUNC}, {'a', O_WRONLY | O_CREAT | O_APPEND}};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++) {
        if (mode[0] != base[i].c)
            continue;
        const char *m = mode + 1;
        int flags = base[i].flags;
        if (*m == '+') {
            flags = (flags & ~(O_WRONLY | O_RDONLY)) | O_RDWR;
            m++;
        }
        return strspn(m, "b") == strlen(m) ? flags : -1;
    }
    return -1;
}

static int close_stream(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

/* Opens path for writing with O_NOFOLLOW and pushes a Lua file handle (or nil, message, errno as
 * io.open does): the policy check resolves links, and a link put in place afterwards is not followed. */
static int open_nofollow(lua_State *L, const char *path, const char *mode)
{
    int flags = mode_flags(mode);
    luaL_argcheck(L, flags >= 0, 2, "invalid mode");
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->f = NULL;
    p->closef = NULL; /* not a valid handle until the file is open */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 || !(p->f = fdopen(fd, mode))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return luaL_fileresult(L, 0, path);
    }
    p->closef = close_stream;
    return 1;
}

/* io.open(path [, mode]): a write mode opens without following a symbolic link */
static int sb_io_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1), *mode = luaL_optstring(L, 2, "r");
    lsandbox_check(L, path, is_write_mode(mode), "io.open");
    if (is_write_mode(mode))
        return open_nofollow(L, path, mode);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* io.lines([path, ...]), io.input([file]), io.output([file]): a path argument is checked */
static int sb_io_path_first(lua_State *L)
{
    int write = (int)lua_tointeger(L, lua_upvalueindex(2));
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *path = lua_tostring(L, 1);
        lsandbox_check(L, path, write, lua_tostring(L, lua_upvalueindex(3)));
        if (write) { /* io.output(path): opened here as io.open(path, "w") is, then handed over */
            if (open_nofollow(L, path, "w") != 1)
                return luaL_error(L, "%s", lua_tostring(L, -2));
            lua_replace(L, 1);
            lua_settop(L, 1);
        }
    }
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

/* Non-zero when the policy lets the recipe read path (no error raised). */
static int may_read(lua_State *L, const char *path)
{
    char r[PATH_MAX];
    int ok = push_policy(L) && pare_resolve_path(path, r) && allowed_in(L, r, "read");
    lua_pop(L, 1);
    return ok;
}

/* package.searchpath(name, path [, sep [, rep]]) as Lua's, except that a file the recipe may not read
 * is reported as missing whether it exists or not: probing is no way to learn what lies outside. */
static int sb_searchpath(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
    const char *sep = luaL_optstring(L, 3, "."), *rep = luaL_optstring(L, 4, LUA_DIRSEP);
    if (*sep)
        name = luaL_gsub(L, name, sep, rep);
    int top = lua_gettop(L);
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            luaL_checkstack(L, 3, "too many templates");
            lua_pushlstring(L, p, len);
            const char *file = luaL_gsub(L, lua_tostring(L, -1), LUA_PATH_MARK, name);
            lua_remove(L, -2);
            FILE *f = may_read(L, file) ? fopen(file, "r") : NULL;
            if (f) {
                fclose(f);
                return 1;
            }
            lua_pushfstring(L, "\n\tno file '%s'", file);
            lua_remove(L, -2);
        }
        p += len + (e ? 1 : 0);
        if (!e)
            break;
    }
    lua_concat(L, lua_gettop(L) - top);
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
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
    lua_pushcfunction(L, sb_searchpath);
    lua_setfield(L, -2, "searchpath");
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
}

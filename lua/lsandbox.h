/* The recipe sandbox (`pare run --sandbox`): a recipe from someone else runs without process, library
 * or debug access, loads only text chunks, and reads and writes files only where the user pointed it. */
#ifndef PARE_LSANDBOX_H
#define PARE_LSANDBOX_H

#include <lua.h>

/* Restricts the state L (call before the recipe is loaded, after the standard libraries are open):
 * removes os.execute, os.exit, os.tmpname, io.popen, package.loadlib, the C module searchers and the
 * debug library; load, loadfile and dofile take text only; io.open, io.lines, io.input, io.output,
 * loadfile, dofile, os.remove and os.rename, and every path the pare module opens, are checked
 * against the allowed folders; writes open no symbolic link. package.searchpath reports only files the
 * recipe may read. lua_dirs (';'-separated templates) are require's only path. */
void lsandbox_enable(lua_State *L, const char *lua_dirs);
/* The package.path require may use from now on (the recipe cannot change it). Its folders are not
 * made readable: the caller allows the recipe file and pare's own Lua folders. */
void lsandbox_lua_path(lua_State *L, const char *lua_path);
/* Non-zero when L runs sandboxed. */
int lsandbox_active(lua_State *L);
/* Allows reading (write = 0) or reading and writing (write = 1) path and, for a folder, everything
 * under it. A path that does not exist is ignored (it grants nothing). */
void lsandbox_allow(lua_State *L, const char *path, int write);
/* Raises "FNAME: sandbox: PATH is outside ..." unless path may be read (write = 0) or written;
 * does nothing when L is not sandboxed. */
void lsandbox_check(lua_State *L, const char *path, int write, const char *fname);

#endif

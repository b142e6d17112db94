/* The `pare` Lua module (lua/lpare.c) and the recipe runner (lua/lrecipe.c): a thin binding over
 * src/core. Only lua/ and src/cli/cmd_run.c include Lua; src/core never does. */
#ifndef PARE_LPARE_H
#define PARE_LPARE_H

#include <lua.h>
#include <stdio.h>

/* What the program embedding the module provides: cancellation, progress and log sinks. Any
 * member may be NULL. The struct must outlive the lua_State it is attached to. */
typedef struct {
    int (*interrupted)(void); /* non-zero: the running core step is cancelled (PARE_ECANCELED) */
    void (*progress)(void *user, const char *stage, double fraction, const char *detail);
    void (*log)(void *user, const char *line);    /* pare.log and the module's own notes */
    void (*result)(void *user, const char *line); /* a configuration got a metric (one summary line) */
    void (*plot)(void *user, const char *path);   /* a plot was written (a PNG file) */
    void *user;
    const char *out_dir; /* the run's output folder (pare.out), or NULL */
    int canceled;        /* set by the module when a core step returned PARE_ECANCELED */
} lpare_host;

/* require("pare"): opens the module (luaL_requiref(L, "pare", luaopen_pare, 1)). */
int luaopen_pare(lua_State *L);
/* Attaches host to L (NULL detaches); without one, logs go to stderr and nothing cancels. */
void lpare_set_host(lua_State *L, lpare_host *host);

/* Pushes the run journal {steps, rows, models, records} that the module fills as a recipe runs
 * (lua/ljournal.c); the session runner writes it into run.json. */
void lpare_journal_push(lua_State *L);
/* Pushes the function's arguments converted by tostring and joined by sep (print's and pare.log's line). */
void lpare_push_joined_args(lua_State *L, char sep);

/* Recipes (lua/lrecipe.c). A recipe is a Lua file that declares its parameters with
 * params { name = {default, "description", min =, max =, choices =, type =, optional =}, ... }
 * and defines run(p); see docs/recipes.md. Every function returning int gives a Lua status
 * (LUA_OK = 0) and leaves an error message, with file:line and traceback, on the stack top. */
int lrecipe_load(lua_State *L, const char *path); /* runs the file's top level (declarations) */
/* Overrides a declared parameter from text (--set key=value): type, range and choice checks. On
 * failure returns -1 and writes one line naming the parameter into msg. */
int lrecipe_set(lua_State *L, const char *key, const char *value, char *msg, size_t cap);
/* The same from one "name=value" argument (split at the first '='); -1 with a message for an argument
 * without a name or '='. */
int lrecipe_set_arg(lua_State *L, const char *arg, char *msg, size_t cap);
void lrecipe_help(lua_State *L, const char *path, FILE *f); /* the declared parameters */
int lrecipe_run(lua_State *L);                              /* checks required parameters, calls run(p) */
/* A recipe's points (lua/README.md, "Points"): calls its points(p) with the same parameter values run(p)
 * would get. LUA_OK: leaves [1] the list points(p) returned and [2] the raw parameter values.
 * LRECIPE_NO_POINTS (stack empty): the recipe defines no points function. Otherwise the message on top. */
enum { LRECIPE_NO_POINTS = -2 };
int lrecipe_points(lua_State *L);
/* NULL when the value at idx is one the declared parameter name accepts (type, range, choices); else a
 * message naming the parameter, left on top of the stack. */
const char *lrecipe_check_value(lua_State *L, const char *name, int idx);
/* Pushes the parameter table run(p) was called with (raw values; nil before lrecipe_run got there). */
void lrecipe_params_push(lua_State *L);
/* Message handler for lua_pcall: the message (any type) plus luaL_traceback. */
int lrecipe_msgh(lua_State *L);

#endif

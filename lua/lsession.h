/* The session runner: runs one recipe into an output folder (OUT) and reports events to a front
 * end (the batch CLI prints them, the TUI shows them in panes). Writes OUT/log.txt, OUT/recipe.lua,
 * the automatic plots (OUT/size_quality.png, OUT/budget.png) and, last and atomically, OUT/run.json
 * with the status, parameters, hashes, decisions, metrics, timings and plots; a lock file keeps a
 * second run out of the same folder. */
#ifndef PARE_LSESSION_H
#define PARE_LSESSION_H

#include <lua.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    LS_LOG,      /* a log line (pare.log, module notes, step summaries) */
    LS_PRINT,    /* the recipe's print() */
    LS_PROGRESS, /* stage, fraction, eta_s, text = detail */
    LS_RESULT,   /* a configuration got a metric: one summary line */
    LS_ERROR,    /* the run failed or was cancelled: the message (with traceback) */
    LS_PLOT      /* a plot was written: text = its path (recorded in run.json's "plots") */
} ls_event_kind;

typedef struct {
    ls_event_kind kind;
    const char *text;
    const char *stage;
    double fraction, eta_s;
} ls_event;

typedef struct {
    void (*event)(void *user, const ls_event *ev);
    int (*interrupted)(void); /* non-zero cancels the running step */
    void *user;
} ls_sink;

typedef enum { LS_COMPLETE = 0, LS_FAILED, LS_CANCELLED, LS_REFUSED } ls_status;

typedef struct lsession lsession;

/* Flags of lsession_open. LS_SANDBOX: the recipe runs in the sandbox of lsandbox.h (no processes,
 * libraries or debug access; files only under the model and the paths given with lsession_set or
 * lsession_open's allow list for reading, under OUT for writing). */
enum { LS_SANDBOX = 1 };

/* Loads the recipe's declarations (running its top-level code). allow[0..n_allow-1]: paths a sandboxed
 * recipe may read, granted before that code runs. On failure returns NULL with the message in msg. */
lsession *lsession_open(const char *recipe, const ls_sink *sink, unsigned flags, const char *const *allow, int n_allow,
                        char *msg, size_t cap);
void lsession_close(lsession *s);
lua_State *lsession_lua(lsession *s);
/* --set name=value; -1 with a message naming the parameter on failure. */
int lsession_set(lsession *s, const char *key, const char *value, char *msg, size_t cap);
/* The same from one "name=value" argument, as --set gives it. */
int lsession_set_arg(lsession *s, const char *arg, char *msg, size_t cap);
void lsession_help(lsession *s, FILE *f);
/* Runs the recipe into out_dir (NULL: runs/NAME-YYYYmmdd-HHMMSS). LS_REFUSED (nothing run, msg
 * says why): OUT fails pare_check_output_path (/, the current folder), is neither empty nor a pare run
 * folder, holds a finished run and overwrite is 0, is locked by another run, or cannot be created.
 * Otherwise run.json is written with the returned status; msg gets the error if any. */
ls_status lsession_run(lsession *s, const char *out_dir, int overwrite, char *msg, size_t cap);
/* One point of a recipe that declares points (lua/README.md, "Points"): the same recipe run with every
 * parameter spelled out, so that the point computes the same thing on any host at any later time. */
typedef struct {
    char name[128]; /* "02-lorap-0.2": the recipe's name behind its position, so listings keep its order */
    char **sets;    /* "name=value" for every parameter that has a value, sorted by name */
    int n_sets;
} ls_point;

/* The recipe's points, from its points(p) with the parameters set so far. On success fills *points
 * (free with lsession_free_points) and *n (at least 1) and returns 0; otherwise -1 with a message in msg
 * naming the recipe: it defines no points(p), points(p) raised or returned something else than a
 * non-empty list of {name = "...", set = {param = value, ...}}, a name is not a plain folder name or is
 * repeated, a value is refused by its parameter's declaration or holds a line break. */
int lsession_points(lsession *s, ls_point **points, int *n, char *msg, size_t cap);
void lsession_free_points(ls_point *points, int n);
/* The output folder of the last lsession_run ("" before). */
const char *lsession_out_dir(const lsession *s);

/* The Lua value at idx as run.json writes it (a new jansson reference): tables become arrays (sequences)
 * or objects with sorted keys ("_"-prefixed keys left out), non-finite numbers and other types null;
 * a cycle, nesting deeper than 32 levels or more than 4 M values are cut off with a string saying so. */
struct json_t;
struct json_t *lsession_to_json(lua_State *L, int idx);

#endif

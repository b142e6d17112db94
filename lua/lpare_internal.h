/* Internals shared by the files of the `pare` Lua module (lpare.c: model, eval, compress, export;
 * lpare_tools.c: calibration, spectra, per-matrix factorize and prune, plans, generate, clone;
 * ljournal.c: what a run did, for run.json). Not an API. */
#ifndef PARE_LPARE_INTERNAL_H
#define PARE_LPARE_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>
#include "core/error.h"
#include "core/model.h"
#include "lpare.h"

#define MODEL_MT "pare.model"
#define CALIB_MT "pare.calib"
#define IMPORTANCE_MT "pare.importance"

/* Model userdata; user value 1 is the model's current result row (ljournal.c) or nil. */
typedef struct {
    pare_model *m;
} lmodel;

typedef struct {
    lua_State *L;
    lpare_host *host;
    int hook_ref;         /* LUA_NOREF when no pare.on_progress hook */
    char hook_error[512]; /* the hook raised: the step is cancelled and this is re-raised */
    int hook_canceled;    /* the hook returned false */
} progress_ctx;

lpare_host *lp_get_host(lua_State *L);
void lp_host_log(lua_State *L, const char *line);
/* The progress callback the module gives the core (user: a progress_ctx); non-zero cancels. */
int lp_progress_call(void *user, const char *stage, double fraction, const char *detail);
void lp_progress_begin(lua_State *L, progress_ctx *c, pare_progress *pp);
void lp_progress_end(lua_State *L, progress_ctx *c);
/* Raises "pare.FNAME: message" for a core error (c may be NULL); never returns. */
int lp_core_error(lua_State *L, const char *fname, progress_ctx *c, const pare_error *err);

/* Option tables: unknown keys are errors; each getter checks the type and names the option. */
void lp_check_keys(lua_State *L, int idx, const char *fname, const char *const *allowed);
int lp_opt_field(lua_State *L, int idx, const char *k);
double lp_opt_number(lua_State *L, int idx, const char *k, double def, const char *fname);
long long lp_opt_integer(lua_State *L, int idx, const char *k, long long def, long long lo, long long hi,
                         const char *fname);
const char *lp_opt_string(lua_State *L, int idx, const char *k, const char *def, const char *fname);
int lp_opt_bool(lua_State *L, int idx, const char *k, int def, const char *fname);
int lp_opt_choice(lua_State *L, int idx, const char *k, const char *def, const char *const *names, const char *fname);
/* Exactly one of rank = K (an integer) or keep = FRACTION in (0, 1) of the option table at idx:
 * the other comes back 0. */
void lp_opt_rank_or_keep(lua_State *L, int idx, const char *fname, long long *rank, double *keep);
/* A required option naming a file the operation reads (what says what it holds, for the error):
 * checked against the sandbox, an error when absent. */
const char *lp_opt_input_file(lua_State *L, int idx, const char *k, const char *what, const char *fname);

pare_model *lp_check_model(lua_State *L, int idx, const char *fname);

/* Objects in use. A core call may run Lua code before it returns (the progress hook, finalizers of
 * other objects, a replaced string.find), and that code must not close, change or re-enter what the
 * call holds. Every operation on pare objects starts with lp_enter(L, "m:eval", nargs): it raises
 * "pare.eval: interrupted" once the run was cancelled, keeps arguments 1..nargs (extra ones are
 * dropped, missing ones become nil), and puts a to-be-closed guard at nargs + 1 that marks every pare
 * object among the arguments, in their tables and in tables inside those (option tables, e.g.
 * mixed_rank = {sparse = M}) as in use by op until the C function returns or raises. The guard also
 * keeps those objects and strings referenced, so a collectgarbage() in a hook cannot finalize them nor
 * free a string read from an option table. Another operation, close() or __close on a marked object
 * raises "pare.FNAME: the model is in use by m:eval". */
void lp_enter(lua_State *L, const char *op, int nargs);
/* Raises "pare.FNAME: the KIND is in use by OP" when the object at idx is held by a running operation. */
void lp_refuse_busy(lua_State *L, int idx, const char *fname);
/* Non-zero when the object at idx is held by a running operation (for __gc, which cannot raise). */
int lp_is_busy(lua_State *L, int idx);
/* Raises "pare.FNAME: interrupted" once the host says the run is cancelled (marking it cancelled), so
 * that a recipe catching the cancellation with pcall cannot start another step. */
void lp_check_interrupted(lua_State *L, const char *fname);
/* Registers the guards' metatable (luaopen_pare). */
void lp_busy_open(lua_State *L);
/* Fields of the table on the stack top. */
void lp_set_int(lua_State *L, const char *k, lua_Integer v);
void lp_set_num(lua_State *L, const char *k, double v);
void lp_set_str(lua_State *L, const char *k, const char *v);
void lp_set_bool(lua_State *L, const char *k, int v);
const char *const *lp_method_names(void);
size_t lp_block_dense_params(pare_model *m);
/* Pushes {block_linear, total, ..., *_removed}: parameters under both conventions. */
void lp_push_param_counts(lua_State *L, pare_model *m);
/* Pushes the per-matrix state list {name, kind, out, in, orig_out, orig_in, rank, density, params, dense_params}. */
void lp_push_matrices(lua_State *L, pare_model *m);
double lp_now(void);

/* Tools (lpare_tools.c): model methods and module functions registered by luaopen_pare. */
extern const luaL_Reg lp_tool_methods[];
extern const luaL_Reg lp_tool_funcs[];
extern const luaL_Reg lp_train_methods[]; /* lpare_train.c: finetune, factorize_sparse */
extern const luaL_Reg lp_task_methods[];  /* lpare_tasks.c */
void lp_open_calib(lua_State *L);
/* Option `calib` of the table at idx: statistics from m:calibrate{...} (checked against m's layers), or
 * NULL when absent. The option table, an argument, keeps them alive. */
struct pare_calib_stats;
const struct pare_calib_stats *lp_opt_calib(lua_State *L, int idx, pare_model *m, const char *fname);

/* Plots (lplot.c): model methods and module functions registered by luaopen_pare. */
extern const luaL_Reg lp_plot_methods[];
extern const luaL_Reg lp_plot_funcs[];

/* The run journal (ljournal.c). */
void lj_step(lua_State *L, const char *step, double t0, const char *what);
/* After a step changed the model at midx: the step table on the stack top (popped) is appended to
 * the model's current row (a new row when the current one was already evaluated). */
void lj_model_changed(lua_State *L, int midx);
/* A metric {name, data, value, protocol...} on the stack top (popped) for the model at midx. */
void lj_metric(lua_State *L, int midx);
/* A newly loaded or cloned model at midx (clone: the source at src, else 0). */
void lj_model_loaded(lua_State *L, int midx, int src);
int lj_l_record(lua_State *L);
int lj_l_results(lua_State *L);

#endif

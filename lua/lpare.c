/* The `pare` Lua module: a thin binding over src/core (load, info, eval, compress, export,
 * progress and log). Arguments are checked with luaL_check* and option tables are checked for
 * unknown keys; core errors become Lua errors "pare.FUNC: message" (with the caller's file:line). */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/allocate.h"
#include "core/calib.h"
#include "core/compress.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "core/method.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/spectrum.h"
#include "core/version.h"
#include "core/tokenizer.h"
#include "lpare.h"
#include "lsandbox.h"
#include "lpare_internal.h"

static const char HOST_KEY = 'h'; /* registry: light userdata lpare_host* */
static const char HOOK_KEY = 'p'; /* registry: pare.on_progress function */

/* Method names for luaL_checkoption-style choices, from the core's table (filled once). */
static const char *METHOD_NAMES[32];
const char *const *lp_method_names(void)
{
    if (!METHOD_NAMES[0]) {
        int i = 0;
        for (const pare_method *me = pare_methods(NULL); me->name && i < 31; me++)
            METHOD_NAMES[i++] = me->name;
    }
    return METHOD_NAMES;
}
#define WEIGHTINGS PARE_WEIGHTING_NAMES
/* m:export writes the compact pare format unless told otherwise, unlike the core's hf-dense default:
 * a recipe's compressed model then reloads exactly and stays small (as pare compress --out). */
#define RECIPE_EXPORT_FORMAT PARE_EXPORT_PARE

/* ---- host, progress, errors ------------------------------------------------------------------ */

void lpare_set_host(lua_State *L, lpare_host *host)
{
    lua_pushlightuserdata(L, host);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
}

lpare_host *lp_get_host(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
    lpare_host *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

void lp_host_log(lua_State *L, const char *line)
{
    lpare_host *h = lp_get_host(L);
    if (h && h->log)
        h->log(h->user, line);
    else if (!h)
        fprintf(stderr, "%s\n", line);
}


int lp_progress_call(void *user, const char *stage, double fraction, const char *detail)
{
    progress_ctx *c = user;
    if (c->host && c->host->interrupted && c->host->interrupted())
        return 1;
    if (c->host && c->host->progress)
        c->host->progress(c->host->user, stage, fraction, detail);
    /* Lua is only entered from the thread that runs the script (OpenMP master); reports made by
     * other threads of a parallel region reach the host's sink only */
    if (c->hook_ref != LUA_NOREF && omp_get_thread_num() == 0) {
        lua_State *L = c->L;
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->hook_ref);
        lua_pushstring(L, stage ? stage : "");
        lua_pushnumber(L, fraction);
        lua_pushstring(L, detail ? detail : "");
        if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
            snprintf(c->hook_error, sizeof c->hook_error, "%s",
                     lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
            lua_pop(L, 1);
            return 1;
        }
        int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (stop) {
            c->hook_canceled = 1;
            return 1;
        }
    }
    return 0;
}

void lp_progress_begin(lua_State *L, progress_ctx *c, pare_progress *pp)
{
    memset(c, 0, sizeof *c);
    c->L = L;
    c->host = lp_get_host(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
    c->hook_ref = lua_isfunction(L, -1) ? luaL_ref(L, LUA_REGISTRYINDEX) : (lua_pop(L, 1), LUA_NOREF);
    pp->fn = lp_progress_call;
    pp->user = c;
}

void lp_progress_end(lua_State *L, progress_ctx *c)
{
    if (c->hook_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, c->hook_ref);
    c->hook_ref = LUA_NOREF;
}

/* Raises the core error of function fname; never returns. */
int lp_core_error(lua_State *L, const char *fname, progress_ctx *c, const pare_error *err)
{
    if (c) {
        lp_progress_end(L, c);
        if (c->hook_error[0])
            return luaL_error(L, "pare.%s: progress hook: %s", fname, c->hook_error);
        if (c->hook_canceled)
            return luaL_error(L, "pare.%s: cancelled by the progress hook", fname);
    }
    if (err->code == PARE_ECANCELED) {
        lpare_host *h = lp_get_host(L);
        if (h)
            h->canceled = 1;
    }
    return luaL_error(L, "pare.%s: %s", fname, err->msg);
}

/* ---- option tables ------------------------------------------------------------------------- */

/* Refuses keys of the option table at idx that are not in allowed (typos would silently do nothing). */
void lp_check_keys(lua_State *L, int idx, const char *fname, const char *const *allowed)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; allowed[i] && !ok; i++)
                ok = strcmp(lua_tostring(L, -1), allowed[i]) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; allowed[i]; i++) {
                luaL_addstring(&b, i ? ", " : "");
                luaL_addstring(&b, allowed[i]);
            }
            luaL_pushresult(&b);
            const char *list = lua_tostring(L, -1);
            const char *key = luaL_tolstring(L, -2, NULL);
            luaL_error(L, "pare.%s: unknown option '%s' (options: %s)", fname, key, list);
        }
    }
}

/* Pushes field k of the option table at idx (nil when the table is absent). An option table must be a
 * table: lp_check_keys, which every function calls first, checks that. */
int lp_opt_field(lua_State *L, int idx, const char *k)
{
    if (lua_isnoneornil(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    /* raw, as lp_check_keys reads the keys: an option table runs no metamethods */
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

double lp_opt_number(lua_State *L, int idx, const char *k, double def, const char *fname)
{
    int t = lp_opt_field(L, idx, k);
    double v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            luaL_error(L, "pare.%s: option '%s' must be a number, got %s", fname, k, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

long long lp_opt_integer(lua_State *L, int idx, const char *k, long long def, long long lo, long long hi,
                         const char *fname)
{
    int t = lp_opt_field(L, idx, k);
    long long v = def;
    if (t != LUA_TNIL) {
        int isint = 0;
        v = (long long)lua_tointegerx(L, -1, &isint);
        if (t != LUA_TNUMBER || !isint)
            luaL_error(L, "pare.%s: option '%s' must be an integer, got %s", fname, k,
                       t == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
        if (v < lo || v > hi) { /* lua_pushfstring has no %lld */
            char range[128];
            snprintf(range, sizeof range, "%lld is out of range [%lld, %lld]", v, lo, hi);
            luaL_error(L, "pare.%s: option '%s' = %s", fname, k, range);
        }
    }
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the option table is referenced (it is an argument). */
const char *lp_opt_string(lua_State *L, int idx, const char *k, const char *def, const char *fname)
{
    int t = lp_opt_field(L, idx, k);
    const char *v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TSTRING)
            luaL_error(L, "pare.%s: option '%s' must be a string, got %s", fname, k, luaL_typename(L, -1));
        v = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

void lp_opt_rank_or_keep(lua_State *L, int idx, const char *fname, long long *rank, double *keep)
{
    *rank = lp_opt_integer(L, idx, "rank", 0, 1, INT_MAX, fname);
    *keep = lp_opt_number(L, idx, "keep", 0, fname);
    if ((*rank > 0) == (*keep != 0))
        luaL_error(L, "pare.%s: give exactly one of 'rank' (an integer) or 'keep' (a fraction)", fname);
    if (*keep != 0 && !(*keep > 0 && *keep < 1))
        luaL_error(L, "pare.%s: keep %f: the fraction of parameters kept must be in (0, 1)", fname, *keep);
}

const char *lp_opt_input_file(lua_State *L, int idx, const char *k, const char *what, const char *fname)
{
    const char *path = lp_opt_string(L, idx, k, NULL, fname);
    if (!path)
        luaL_error(L, "pare.%s: option '%s' (%s) is required", fname, k, what);
    char qualified[64];
    snprintf(qualified, sizeof qualified, "pare.%s", fname);
    lsandbox_check(L, path, 0, qualified);
    return path;
}

int lp_opt_bool(lua_State *L, int idx, const char *k, int def, const char *fname)
{
    int t = lp_opt_field(L, idx, k);
    int v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TBOOLEAN)
            luaL_error(L, "pare.%s: option '%s' must be a boolean, got %s", fname, k, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

int lp_opt_choice(lua_State *L, int idx, const char *k, const char *def, const char *const *names, const char *fname)
{
    const char *s = lp_opt_string(L, idx, k, def, fname);
    if (!s)
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        luaL_addstring(&b, i ? ", " : "");
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    return luaL_error(L, "pare.%s: %s '%s': expected one of %s", fname, k, s, lua_tostring(L, -1));
}

/* ---- the model userdata -------------------------------------------------------------------- */


pare_model *lp_check_model(lua_State *L, int idx, const char *fname)
{
    lmodel *u = luaL_checkudata(L, idx, MODEL_MT);
    if (!u->m)
        luaL_error(L, "pare.%s: the model was closed", fname);
    return u->m;
}

static int l_load(lua_State *L)
{
    lp_check_interrupted(L, "load");
    const char *path = luaL_checkstring(L, 1);
    static const char *const keys[] = {"tokenizer", NULL};
    lp_check_keys(L, 2, "load", keys);
    const char *tok = lp_opt_string(L, 2, "tokenizer", NULL, "load");
    lsandbox_check(L, path, 0, "pare.load");
    if (tok)
        lsandbox_check(L, tok, 0, "pare.load");
    double t0 = lp_now();
    lmodel *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->m = NULL;
    luaL_setmetatable(L, MODEL_MT);
    pare_error err = {0};
    if (pare_model_load(path, tok, &u->m, &err))
        return lp_core_error(L, "load", NULL, &err);
    lj_model_loaded(L, lua_gettop(L), 0);
    lj_step(L, "load", t0, path);
    return 1;
}

/* m:close() and __close: refused while an operation holds the model. */
static int l_model_free(lua_State *L)
{
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    lp_refuse_busy(L, 1, "close");
    pare_model_free(u->m);
    u->m = NULL;
    return 0;
}

/* __gc: an operation's guard keeps what it holds referenced, so a held model is never collected; the
 * check only makes sure that a finalizer can never free what C is using. */
static int l_model_gc(lua_State *L)
{
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    if (!lp_is_busy(L, 1)) {
        pare_model_free(u->m);
        u->m = NULL;
    }
    return 0;
}

static int l_model_tostring(lua_State *L)
{
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    if (u->m)
        lua_pushfstring(L, "pare.model(%s, %s)", u->m->path, pare_family_class(&u->m->cfg));
    else
        lua_pushliteral(L, "pare.model(closed)");
    return 1;
}

void lp_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}
void lp_set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}
void lp_set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}
void lp_set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Block-linear parameters of the dense model the current one came from (as pare info counts). */
size_t lp_block_dense_params(pare_model *m)
{
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **lin = malloc((size_t)(n > 0 ? n : 1) * sizeof *lin);
    size_t total = 0;
    if (!lin)
        return 0;
    pare_model_linears(m, lin, n);
    for (int i = 0; i < n; i++)
        total += (size_t)lin[i]->orig_out * lin[i]->orig_in + (lin[i]->b ? (size_t)lin[i]->orig_out : 0);
    free(lin);
    return total;
}

void lp_push_param_counts(lua_State *L, pare_model *m)
{
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    size_t bd = lp_block_dense_params(m), td = pc.total - pc.block_linear + bd;
    /* both conventions: block linears (Wanda, ASVD, SVD-LLM) and all parameters (LLM-Pruner, LoRAP) */
    lua_createtable(L, 0, 10);
    lp_set_int(L, "embeddings", (lua_Integer)pc.embeddings);
    lp_set_int(L, "block_linear", (lua_Integer)pc.block_linear);
    lp_set_int(L, "norms", (lua_Integer)pc.norms);
    lp_set_int(L, "head", (lua_Integer)pc.head);
    lp_set_int(L, "total", (lua_Integer)pc.total);
    lp_set_int(L, "block_linear_dense", (lua_Integer)bd);
    lp_set_int(L, "total_dense", (lua_Integer)td);
    lp_set_num(L, "block_linear_removed", bd ? 1.0 - (double)pc.block_linear / (double)bd : 0);
    lp_set_num(L, "total_removed", td ? 1.0 - (double)pc.total / (double)td : 0);
}

void lp_push_matrices(lua_State *L, pare_model *m)
{
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **lin = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *lin, 0);
    int tmp = lua_gettop(L);
    pare_model_linears(m, lin, n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const pare_linear *l = lin[i];
        lua_createtable(L, 0, 10);
        lp_set_str(L, "name", l->name);
        lp_set_str(L, "kind",
                   l->kind == PARE_LIN_FACTORED ? "factorized"
                   : l->kind == PARE_LIN_MASKED ? "masked"
                                                : "dense");
        lp_set_int(L, "out", l->out);
        lp_set_int(L, "in", l->in);
        lp_set_int(L, "orig_out", l->orig_out);
        lp_set_int(L, "orig_in", l->orig_in);
        if (l->kind == PARE_LIN_FACTORED)
            lp_set_int(L, "rank", l->rank);
        if (l->kind == PARE_LIN_MASKED) {
            size_t kept = 0, all = (size_t)l->out * l->in;
            for (size_t j = 0; j < all; j++)
                kept += l->mask[j] != 0;
            lp_set_num(L, "density", all ? (double)kept / (double)all : 0);
        }
        lp_set_int(L, "params", (lua_Integer)pare_linear_params(l));
        lp_set_int(L, "dense_params",
                   (lua_Integer)((size_t)l->orig_out * l->orig_in + (l->b ? (size_t)l->orig_out : 0)));
        lua_rawseti(L, -2, i + 1);
    }
    lua_remove(L, tmp);
}

/* m:info() -> {path, arch, format, dim, layers, ..., params = {...}, matrices = {...}} */
static int l_info(lua_State *L)
{
    lp_enter(L, "m:info", 1);
    pare_model *m = lp_check_model(L, 1, "info");
    const pare_config *c = &m->cfg;
    lua_createtable(L, 0, 20);
    lp_set_str(L, "path", m->path);
    lp_set_str(L, "arch", pare_family_class(c));
    lp_set_str(L, "format", m->format == PARE_FMT_HF ? "huggingface" : "llama2.c");
    lp_set_str(L, "dtype", m->source_dtype);
    lp_set_int(L, "dim", c->dim);
    lp_set_int(L, "layers", c->n_layers);
    lp_set_int(L, "heads", c->n_heads);
    lp_set_int(L, "kv_heads", c->n_kv_heads);
    lp_set_int(L, "head_dim", c->head_dim);
    lp_set_int(L, "ffn_dim", c->ffn_dim);
    lp_set_int(L, "vocab", c->vocab_size);
    lp_set_int(L, "max_positions", c->max_pos);
    lp_set_bool(L, "tied_head", c->tied_head);
    lp_set_str(L, "tokenizer", m->tok ? pare_tokenizer_describe(m->tok) : "");
    lp_push_param_counts(L, m);
    lua_setfield(L, -2, "params");
    lp_push_matrices(L, m);
    lua_setfield(L, -2, "matrices");
    return 1;
}


/* m:eval(path, {window=, stride=, bos=, batch=, limit_tokens=}) -> {ppl, nll, predicted, ...} */
static int l_eval(lua_State *L)
{
    lp_enter(L, "m:eval", 3);
    pare_model *m = lp_check_model(L, 1, "eval");
    const char *path = luaL_checkstring(L, 2);
    lsandbox_check(L, path, 0, "pare.eval");
    static const char *const keys[] = {"window", "stride", "bos", "batch", "limit_tokens", NULL};
    lp_check_keys(L, 3, "eval", keys);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = (int)lp_opt_integer(L, 3, "window", eo.window, 2, 1 << 20, "eval");
    eo.stride = (int)lp_opt_integer(L, 3, "stride", eo.stride, 0, 1 << 20, "eval");
    eo.bos = lp_opt_bool(L, 3, "bos", eo.bos, "eval");
    eo.batch = (int)lp_opt_integer(L, 3, "batch", eo.batch, 1, 4096, "eval");
    eo.limit_tokens = (size_t)lp_opt_integer(L, 3, "limit_tokens", (long long)eo.limit_tokens, 0, LLONG_MAX, "eval");
    pare_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = lp_now();
    char sha[65];
    if (pare_sha256_file(path, sha, &err) || pare_model_tokenize_file(m, path, &ids, &n, &err))
        return lp_core_error(L, "eval", NULL, &err);
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_eval_result r = {0};
    eo.data = path;
    pare_status st = pare_eval_perplexity(m, ids, n, &eo, &pp, &r, &err);
    free(ids);
    if (st)
        return lp_core_error(L, "eval", &pc, &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 12);
    lp_set_str(L, "data", path);
    lp_set_num(L, "ppl", r.ppl);
    lp_set_num(L, "nll", r.nll);
    lp_set_num(L, "nll_per_token", r.plan.predicted ? r.nll / (double)r.plan.predicted : NAN);
    lp_set_int(L, "predicted", (lua_Integer)r.plan.predicted);
    lp_set_int(L, "tokens", (lua_Integer)r.plan.tokens);
    lp_set_int(L, "windows", (lua_Integer)r.plan.windows);
    lp_set_int(L, "window", r.plan.window);
    lp_set_int(L, "stride", r.plan.stride);
    lp_set_bool(L, "bos", r.plan.bos);
    lp_set_int(L, "dropped", (lua_Integer)r.plan.dropped);
    lp_set_str(L, "data_sha256", sha);
    lp_set_str(L, "tokenizer", m->tok ? pare_tokenizer_describe(m->tok) : "");
    lp_set_str(L, "protocol",
               "pare eval: non-overlapping windows of `window` tokens (stride = window unless set), "
               "every target after the first token of a window scored, BOS prepended when `bos`");
    /* the run journal keeps a copy under the model's current row */
    lua_createtable(L, 0, 4);
    lp_set_str(L, "name", "ppl");
    lp_set_str(L, "data", path);
    lp_set_num(L, "value", r.ppl);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "card");
    lj_metric(L, 1);
    char what[600];
    snprintf(what, sizeof what, "%s: ppl %.6g", path, r.ppl);
    lj_step(L, "eval", t0, what);
    return 1;
}

/* The options of m:compress and m:plan in the table at idx: the method, its options and calibration. */
static const pare_method *method_args(lua_State *L, int idx, const char *fname, pare_method_opts *mo,
                                      pare_calib_opts *co, const char **calib)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    static const char *const keys[] = {"method",      "ratio", "split",       "keep_least",    "energy",
                                       "weighting",   "nm",    "calib",       "calib_samples", "calib_len",
                                       "calib_batch", "seed",  "sensitivity", "probe_samples", NULL};
    lp_check_keys(L, idx, fname, keys);
    int mi = lp_opt_choice(L, idx, "method", "lorap", lp_method_names(), fname);
    pare_method_defaults(mo);
    mo->ratio = lp_opt_number(L, idx, "ratio", mo->ratio, fname);
    mo->split = lp_opt_number(L, idx, "split", mo->split, fname);
    mo->keep_least = lp_opt_number(L, idx, "keep_least", mo->keep_least, fname);
    mo->energy = lp_opt_number(L, idx, "energy", mo->energy, fname);
    mo->weighting = lp_opt_choice(L, idx, "weighting", NULL, WEIGHTINGS, fname);
    const char *nm = lp_opt_string(L, idx, "nm", NULL, fname); /* "2:4": N:M masks (mask methods) */
    if (nm && (sscanf(nm, "%d:%d", &mo->nm_n, &mo->nm_m) != 2 || mo->nm_n < 1 || mo->nm_n >= mo->nm_m))
        luaL_error(L, "pare.%s: nm '%s': expected N:M with 0 < N < M, e.g. \"2:4\"", fname, nm);
    mo->sensitivity = (pare_auto_sensitivity)lp_opt_choice(
        L, idx, "sensitivity", PARE_AUTO_SENSITIVITY_NAMES[mo->sensitivity], PARE_AUTO_SENSITIVITY_NAMES, fname);
    mo->probe_samples = (int)lp_opt_integer(L, idx, "probe_samples", mo->probe_samples, 1, 1 << 24, fname);
    *calib = lp_opt_string(L, idx, "calib", NULL, fname);
    if (*calib)
        lsandbox_check(L, *calib, 0, fname);
    pare_calib_defaults(co);
    co->samples = (int)lp_opt_integer(L, idx, "calib_samples", co->samples, 1, 1 << 24, fname);
    co->len = (int)lp_opt_integer(L, idx, "calib_len", co->len, 2, 1 << 20, fname);
    co->batch = (int)lp_opt_integer(L, idx, "calib_batch", co->batch, 1, 4096, fname);
    co->seed = (uint64_t)lp_opt_integer(L, idx, "seed", (long long)co->seed, 0, LLONG_MAX, fname);
    return &pare_methods(NULL)[mi];
}

static const char *const PLAN_ACTIONS[] = {"dense", "factorize", "channels", "mask"};

/* A JSON value as the Lua value run.json will write back: objects and arrays as tables. */
static void push_json(lua_State *L, const json_t *v)
{
    luaL_checkstack(L, 3, "push_json");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach((json_t *)v, k, x) {
            push_json(L, x);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        for (size_t i = 0; i < json_array_size(v); i++) {
            push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case JSON_STRING: lua_pushstring(L, json_string_value(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE:
    case JSON_FALSE: lua_pushboolean(L, json_is_true(v)); break;
    default: lua_pushnil(L); break;
    }
}

/* m:plan{same options as m:compress} -> {method, params_before, params_after, removed, items = {...}}:
 * the decisions m:compress would make, without changing the model. */
static int l_plan(lua_State *L)
{
    lp_enter(L, "m:plan", 2);
    pare_model *m = lp_check_model(L, 1, "plan");
    pare_method_opts mo;
    pare_calib_opts co;
    const char *calib;
    const pare_method *me = method_args(L, 2, "plan", &mo, &co, &calib);
    pare_error err = {0};
    int32_t *win = NULL;
    if (calib && pare_calib_windows_file(m, calib, &co, &win, NULL, &err))
        return lp_core_error(L, "plan", NULL, &err);
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_plan plan = {0};
    pare_status st = pare_method_plan(m, me, &mo, win, &co, &pp, &plan, NULL, &err);
    free(win);
    if (st) {
        pare_plan_free(&plan);
        return lp_core_error(L, "plan", &pc, &err);
    }
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 5);
    lp_set_str(L, "method", me->name);
    lp_set_int(L, "params_before", (lua_Integer)plan.params_before);
    lp_set_int(L, "params_after", (lua_Integer)plan.params_after);
    lp_set_num(L, "removed", pare_plan_removed(&plan));
    lua_createtable(L, plan.count, 0);
    for (int i = 0; i < plan.count; i++) {
        const pare_plan_item *it = &plan.items[i];
        lua_createtable(L, 0, 6);
        lp_set_str(L, "name", it->linear->name);
        lp_set_str(L, "action", PLAN_ACTIONS[it->action]);
        if (it->action == PARE_PLAN_FACTOR)
            lp_set_int(L, "rank", it->rank);
        if (it->action == PARE_PLAN_CHANNELS)
            lp_set_num(L, "channel_frac", it->channel_frac);
        if (it->action == PARE_PLAN_MASK)
            lp_set_num(L, "sparsity", it->sparsity);
        if (it->action == PARE_PLAN_MASK && it->how.nm_m > 0) {
            char nm[32];
            snprintf(nm, sizeof nm, "%d:%d", it->how.nm_n, it->how.nm_m);
            lp_set_str(L, "nm", nm);
        }
        lp_set_int(L, "params_before", (lua_Integer)it->params_before);
        lp_set_int(L, "params_after", (lua_Integer)it->params_after);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "items");
    pare_plan_free(&plan);
    return 1;
}

/* m:compress{method=, ratio=, split=, keep_least=, energy=, weighting=, calib=, calib_samples=,
 * calib_len=, seed=} -> report table. Same decisions as `pare compress` with the same options. */
static int l_compress(lua_State *L)
{
    lp_enter(L, "m:compress", 2);
    pare_model *m = lp_check_model(L, 1, "compress");
    pare_method_opts mo;
    pare_calib_opts co;
    const char *calib;
    const pare_method *me = method_args(L, 2, "compress", &mo, &co, &calib);
    pare_error err = {0};
    int32_t *win = NULL;
    double t0 = lp_now();
    char calib_sha[65] = "";
    if (calib && pare_sha256_file(calib, calib_sha, &err))
        return lp_core_error(L, "compress", NULL, &err);
    if (calib) {
        size_t n = 0;
        if (pare_calib_windows_file(m, calib, &co, &win, &n, &err))
            return lp_core_error(L, "compress", NULL, &err);
        char line[1200];
        snprintf(line, sizeof line, "[calibrate] %d windows x %d tokens from %s (%zu tokens, seed %llu)", co.samples,
                 co.len, calib, n, (unsigned long long)co.seed);
        lp_host_log(L, line);
    }
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_apply_report rep = {0};
    pare_weighting wk = me->weighting;
    pare_auto_record auto_rec = {0};
    if (me->policy == PARE_POLICY_AUTO)
        mo.auto_record = &auto_rec;
    pare_status st = pare_method_compress(m, me, &mo, win, &co, &pp, &rep, &wk, &err);
    free(win);
    if (st)
        return lp_core_error(L, "compress", &pc, &err);
    json_t *auto_json = me->policy == PARE_POLICY_AUTO ? pare_auto_record_json(&auto_rec) : NULL;
    pare_auto_record_free(&auto_rec);
    if (me->policy == PARE_POLICY_AUTO && !auto_json)
        return luaL_error(L, "pare.compress: out of memory for the auto record");
    lp_progress_end(L, &pc);
    pare_param_counts pcn;
    pare_model_param_counts(m, &pcn);
    size_t total_before = pcn.total - rep.params_after + rep.params_before;
    lua_createtable(L, 0, 16);
    lp_set_str(L, "method", me->name);
    lp_set_str(L, "what", me->what);
    lp_set_str(L, "weighting", WEIGHTINGS[wk]);
    lp_set_num(L, "ratio", mo.ratio);
    lp_set_num(L, "split", mo.split);
    lp_set_num(L, "keep_least", mo.keep_least);
    if (me->policy == PARE_POLICY_ENERGY)
        lp_set_num(L, "energy", mo.energy);
    lp_set_int(L, "block_linear_before", (lua_Integer)rep.params_before);
    lp_set_int(L, "block_linear_after", (lua_Integer)rep.params_after);
    lp_set_int(L, "total_before", (lua_Integer)total_before);
    lp_set_int(L, "total_after", (lua_Integer)pcn.total);
    lp_set_num(L, "block_linear_removed", 1.0 - (double)rep.params_after / (double)rep.params_before);
    lp_set_num(L, "total_removed", 1.0 - (double)pcn.total / (double)total_before);
    lp_set_int(L, "factorized", rep.factorized);
    lp_set_int(L, "channel_blocks", rep.channel_blocks);
    lp_set_int(L, "masked", rep.masked);
    lp_set_num(L, "worst_rel_error", rep.worst_rel_error);
    if (wk == PARE_WEIGHT_WHITEN)
        lp_set_num(L, "max_whiten_damping", rep.max_damping);
    if (auto_json) { /* every decision with its measured sensitivity, in the report and the run journal */
        push_json(L, auto_json);
        lua_setfield(L, -2, "auto");
    }
    /* the decisions, for the run journal: a copy of the options that made them */
    lua_createtable(L, 0, 10);
    lp_set_str(L, "step", "compress");
    lp_set_str(L, "method", me->name);
    lp_set_str(L, "policy", pare_policy_name(me->policy));
    lp_set_str(L, "weighting", WEIGHTINGS[wk]);
    if (me->policy == PARE_POLICY_ENERGY)
        lp_set_num(L, "energy", mo.energy);
    else
        lp_set_num(L, "ratio", mo.ratio);
    if (me->policy == PARE_POLICY_LORAP)
        lp_set_num(L, "split", mo.split);
    lp_set_num(L, "keep_least", mo.keep_least);
    if (auto_json) {
        lp_set_str(L, "sensitivity", PARE_AUTO_SENSITIVITY_NAMES[mo.sensitivity]);
        push_json(L, auto_json);
        lua_setfield(L, -2, "auto");
        json_decref(auto_json);
    }
    if (mo.nm_m > 0) {
        char nm[32];
        snprintf(nm, sizeof nm, "%d:%d", mo.nm_n, mo.nm_m);
        lp_set_str(L, "nm", nm);
    }
    if (calib) {
        lua_createtable(L, 0, 5);
        lp_set_str(L, "data", calib);
        lp_set_str(L, "sha256", calib_sha);
        lp_set_int(L, "samples", co.samples);
        lp_set_int(L, "len", co.len);
        lp_set_int(L, "seed", (lua_Integer)co.seed);
        lua_setfield(L, -2, "calib");
    }
    lj_model_changed(L, 1);
    char what[256];
    snprintf(what, sizeof what, "%s ratio %.4g: block linears %.1f%% removed", me->name, mo.ratio,
             100 * (1.0 - (double)rep.params_after / (double)rep.params_before));
    lj_step(L, "compress", t0, what);
    return 1;
}

/* m:export(dir, {format = "pare" | "hf-dense", dtype = "F32", factor_dtype = "F32", overwrite = false})
 * -> {path, format, factor_dtype, bytes, ...} */
static int l_export(lua_State *L)
{
    lp_enter(L, "m:export", 3);
    pare_model *m = lp_check_model(L, 1, "export");
    const char *dir = luaL_checkstring(L, 2);
    lsandbox_check(L, dir, 1, "pare.export");
    /* replacing OUT (or a folder above it) would swap away the running recipe's log, lock and record */
    lpare_host *host = lp_get_host(L);
    char out_real[PATH_MAX], dir_real[PATH_MAX];
    if (host && host->out_dir && realpath(host->out_dir, out_real) && pare_resolve_path(dir, dir_real) &&
        pare_path_under(out_real, dir_real))
        return luaL_error(L,
                          "pare.export: %s is the run's output folder %s or holds it; export into a folder inside it, "
                          "e.g. pare.out(\"model\")",
                          dir, host->out_dir);
    static const char *const keys[] = {"format", "dtype", "factor_dtype", "overwrite", NULL};
    lp_check_keys(L, 3, "export", keys);
    pare_export_opts xo;
    pare_export_defaults(&xo);
    pare_error err = {0};
    const char *format = lp_opt_string(L, 3, "format", pare_export_format_name(RECIPE_EXPORT_FORMAT), "export");
    if (pare_export_format_parse(format, &xo.format, &err))
        return lp_core_error(L, "export", NULL, &err);
    xo.dtype = lp_opt_string(L, 3, "dtype", xo.dtype, "export");
    xo.factor_dtype = lp_opt_string(L, 3, "factor_dtype", xo.factor_dtype, "export");
    xo.overwrite = lp_opt_bool(L, 3, "overwrite", xo.overwrite, "export");
    xo.producer = "pare run";
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_export_report xr = {0};
    if (pare_export(m, dir, &xo, &pp, &xr, &err))
        return lp_core_error(L, "export", &pc, &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 7);
    lp_set_str(L, "path", dir);
    lp_set_str(L, "format", pare_export_format_name(xo.format));
    pare_dtype fdt;
    if (xo.format == PARE_EXPORT_PARE && pare_float_dtype_parse(xo.factor_dtype, &fdt))
        lp_set_str(L, "factor_dtype", pare_dtype_name(fdt)); /* as the manifest spells it */
    lp_set_int(L, "bytes", (lua_Integer)xr.bytes_on_disk);
    lp_set_int(L, "files", xr.files);
    lp_set_int(L, "ffn_width", xr.ffn_width);
    lp_set_int(L, "padded_blocks", xr.padded_blocks);
    char what[4200];
    snprintf(what, sizeof what, "%s (%s, %zu bytes)", dir, pare_export_format_name(xo.format), xr.bytes_on_disk);
    lj_step(L, "export", t0, what);
    return 1;
}

/* m:round_weights(dtype): the block matrices rounded in place to dtype ("F32", "F16", "BF16") as a pare
 * export with that factor_dtype stores them, so an evaluation afterwards gives the reload's figure. */
static int l_round_weights(lua_State *L)
{
    lp_enter(L, "m:round_weights", 2);
    pare_model *m = lp_check_model(L, 1, "round_weights");
    const char *dtype = luaL_checkstring(L, 2);
    double t0 = lp_now();
    pare_error err = {0};
    if (pare_export_round_block_weights(m, dtype, &err))
        return lp_core_error(L, "round_weights", NULL, &err);
    lua_createtable(L, 0, 2);
    lp_set_str(L, "step", "round_weights");
    lp_set_str(L, "dtype", dtype);
    lj_model_changed(L, 1);
    char what[64];
    snprintf(what, sizeof what, "block matrices rounded to %.16s", dtype);
    lj_step(L, "round_weights", t0, what);
    return 0;
}

/* pare.on_progress(fn | nil): fn(stage, fraction, detail) is called during long steps; returning
 * false cancels the step (an error "pare.FUNC: cancelled by the progress hook"). Returns the old hook. */
static int l_on_progress(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
    return 1;
}

void lpare_push_joined_args(lua_State *L, char sep)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, sep);
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

/* pare.log(...): its arguments joined by spaces (tostring), one line to the host's log. */
static int l_log(lua_State *L)
{
    lpare_push_joined_args(L, ' ');
    lp_host_log(L, lua_tostring(L, -1));
    return 0;
}

/* pare.methods() -> list of {name, what}, in pare compress's order. */
static int l_methods(lua_State *L)
{
    int n;
    const pare_method *me = pare_methods(&n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lp_set_str(L, "name", me[i].name);
        lp_set_str(L, "what", me[i].what);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

double lp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* pare.out([name]) -> the run's output folder (OUT), or OUT/name: where a recipe writes what it keeps. */
static int l_out(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    lpare_host *h = lp_get_host(L);
    if (!h || !h->out_dir)
        return luaL_error(L, "pare.out: this run has no output folder (pare run sets one with --out)");
    if (name && (name[0] == '/' || strstr(name, "..")))
        return luaL_argerror(L, 1, "a name inside the output folder (no '/' at the start, no '..')");
    if (name)
        lua_pushfstring(L, "%s/%s", h->out_dir, name);
    else
        lua_pushstring(L, h->out_dir);
    return 1;
}

int luaopen_pare(lua_State *L)
{
    static const luaL_Reg model_methods[] = {{"info", l_info},         {"eval", l_eval},
                                             {"compress", l_compress}, {"plan", l_plan},
                                             {"export", l_export},     {"round_weights", l_round_weights},
                                             {"close", l_model_free},  {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_model_gc}, {"__close", l_model_free}, {"__tostring", l_model_tostring}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"load", l_load},        {"on_progress", l_on_progress}, {"log", l_log}, {"methods", l_methods}, {"out", l_out},
        {"record", lj_l_record}, {"results", lj_l_results},      {NULL, NULL}};
    lp_busy_open(L);
    luaL_newmetatable(L, MODEL_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, model_methods);
    luaL_setfuncs(L, lp_tool_methods, 0);
    luaL_setfuncs(L, lp_train_methods, 0);
    luaL_setfuncs(L, lp_task_methods, 0);
    luaL_setfuncs(L, lp_plot_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lp_open_calib(L);
    luaL_newlib(L, funcs);
    luaL_setfuncs(L, lp_tool_funcs, 0);
    luaL_setfuncs(L, lp_plot_funcs, 0);
    lua_pushliteral(L, PARE_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

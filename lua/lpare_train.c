/* The `pare` module's training tools: m:finetune{...} (fine-tuning with optional pruning on the cubic
 * schedule, mixed-rank substitution and distillation, checkpoints) and m:factorize_sparse{...}
 * (sparsity-aware SVD), with pare.importance userdata carrying pruning's first-order importance
 * from one to the other. Each records its step in the run journal. */
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/finetune.h"
#include "core/sha256.h"
#include "train/sparse_svd.h"
#include "lsandbox.h"
#include "lpare_internal.h"

/* ---- pare.importance: per-matrix EMA of |W ⊙ ∇W| from a pruning run ---------------------------- */

typedef struct {
    int count;
    char (*names)[96];
    size_t *n;
    float **data;
    int closed;
} limportance;

static int imp_release(lua_State *L)
{
    limportance *p = luaL_checkudata(L, 1, IMPORTANCE_MT);
    for (int i = 0; i < p->count; i++)
        free(p->data ? p->data[i] : NULL);
    free(p->data);
    free(p->names);
    free(p->n);
    p->data = NULL;
    p->names = NULL;
    p->n = NULL;
    p->count = 0;
    p->closed = 1;
    return 0;
}

/* imp:close() and __close: refused while an operation holds the importance. */
static int l_imp_free(lua_State *L)
{
    luaL_checkudata(L, 1, IMPORTANCE_MT);
    lp_refuse_busy(L, 1, "importance.close");
    return imp_release(L);
}

/* __gc: an operation's guard keeps what it holds referenced; never free what C is using. */
static int l_imp_gc(lua_State *L)
{
    luaL_checkudata(L, 1, IMPORTANCE_MT);
    return lp_is_busy(L, 1) ? 0 : imp_release(L);
}

/* imp:info() -> {matrices, weights, method} */
static int l_imp_info(lua_State *L)
{
    limportance *p = luaL_checkudata(L, 1, IMPORTANCE_MT);
    size_t w = 0;
    for (int i = 0; i < p->count; i++)
        w += p->n[i];
    lua_createtable(L, 0, 3);
    lp_set_int(L, "matrices", p->count);
    lp_set_int(L, "weights", (lua_Integer)w);
    lua_getiuservalue(L, 1, 1);
    lua_setfield(L, -2, "method");
    return 1;
}

static int l_imp_tostring(lua_State *L)
{
    limportance *p = luaL_checkudata(L, 1, IMPORTANCE_MT);
    lua_pushfstring(L, "pare.importance (%d matrices%s)", p->count, p->closed ? ", closed" : "");
    return 1;
}

static void open_importance(lua_State *L)
{
    if (luaL_newmetatable(L, IMPORTANCE_MT)) {
        static const luaL_Reg methods[] = {{"info", l_imp_info}, {"close", l_imp_free}, {NULL, NULL}};
        static const luaL_Reg meta[] = {
            {"__gc", l_imp_gc}, {"__close", l_imp_free}, {"__tostring", l_imp_tostring}, {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* Pushes a pare.importance holding a copy of the pruning state's EMA arrays. */
static void push_importance(lua_State *L, const pare_fop_state *fs)
{
    open_importance(L);
    limportance *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, IMPORTANCE_MT);
    p->names = calloc((size_t)fs->count + 1, sizeof *p->names);
    p->n = calloc((size_t)fs->count + 1, sizeof *p->n);
    p->data = calloc((size_t)fs->count + 1, sizeof *p->data);
    if (!p->names || !p->n || !p->data)
        luaL_error(L, "pare.finetune: out of memory for the importance");
    for (int i = 0; i < fs->count; i++) {
        p->data[i] = malloc(fs->mats[i].n * sizeof(float));
        if (!p->data[i])
            luaL_error(L, "pare.finetune: out of memory for the importance");
        memcpy(p->data[i], fs->mats[i].ema, fs->mats[i].n * sizeof(float));
        snprintf(p->names[i], sizeof p->names[i], "%s", fs->mats[i].lin->name);
        p->n[i] = fs->mats[i].n;
        p->count = i + 1;
    }
    lua_pushstring(L, PARE_FOP_NAMES[fs->o.method]);
    lua_setiuservalue(L, -2, 1);
}

static const float *importance_of(const limportance *p, const pare_linear *l)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->names[i], l->name) && p->n[i] == (size_t)l->out * l->in)
            return p->data[i];
    return NULL;
}

/* ---- m:finetune ------------------------------------------------------------------------------ */

/* m:finetune's own defaults where a recipe differs from pare finetune (docs/recipes.md) */
#define RECIPE_FINETUNE_STEPS 100
#define RECIPE_MIX_P0 0.5

typedef struct {
    lua_State *L;
    progress_ctx *pc;
    long total, first, log_every;
    double start;
    size_t tokens;
    double first_loss, last_loss;
    int list; /* stack index of the per-step loss list */
} ft_lua;

static int ft_on_step(void *user, const pare_ft_stats *st)
{
    ft_lua *c = user;
    long done = st->step + 1;
    c->tokens += st->tokens;
    if (c->first_loss < 0)
        c->first_loss = st->loss;
    c->last_loss = st->loss;
    lua_pushnumber(c->L, st->loss);
    lua_rawseti(c->L, c->list, done - c->first);
    double el = lp_now() - c->start, tps = el > 0 ? (double)c->tokens / el : 0;
    double eta = (el / (double)(done - c->first)) * (double)(c->total - done);
    char line[256], sp[40] = "";
    if (st->sparsity > 0)
        snprintf(sp, sizeof sp, " sparsity %.1f%%", 100 * st->sparsity);
    snprintf(line, sizeof line, "step %ld/%ld loss %.4f lr %.3g%s %.0f tok/s ETA %.0fs", done, c->total, st->loss,
             st->lr, sp, tps, eta);
    if (done % c->log_every == 0 || done == c->total) {
        char full[300];
        snprintf(full, sizeof full, "[finetune] %s", line);
        lp_host_log(c->L, full);
    }
    return lp_progress_call(c->pc, "finetune", (double)done / (double)c->total, line);
}

static int micro_progress(void *user, const char *stage, double fraction, const char *detail)
{
    progress_ctx *pc = user;
    (void)stage;
    (void)fraction;
    (void)detail;
    return pc->host && pc->host->interrupted && pc->host->interrupted();
}

/* m:finetune{data = FILE, steps = 100, batch = 8, seq = 256, accum = 1, lr = 3e-4, lr_min = lr/10,
 * warmup = 0, schedule = "cosine", weight_decay = 0.01, clip = 1, seed = 0,
 * prune = {method = "movement"|"sensitivity"|"magnitude", sparsity = 0.5, warmup = 0, cooldown = 0,
 *          every = 1, scope = "matrix"|"global", beta1 = 0.85, beta2 = 0.95},
 * mixed_rank = {sparse = M, p0 = 0.5, span = 0.5, distill = 0, temperature = 1},
 * checkpoint = DIR, checkpoint_every = 0, resume = false, stop_after = N, cache = DIR, log_every = 10}
 * -> {steps, first_loss, final_loss, losses = {...}, tokens, seconds, tokens_per_second, sparsity,
 *     importance = pare.importance (pruning runs)} */
static int l_finetune(lua_State *L)
{
    lp_enter(L, "m:finetune", 2);
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    pare_model *m = lp_check_model(L, 1, "finetune");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {
        "data",     "steps",        "batch",     "seq",        "accum", "lr",         "lr_min",     "warmup",
        "schedule", "weight_decay", "clip",      "seed",       "prune", "mixed_rank", "checkpoint", "checkpoint_every",
        "resume",   "cache",        "log_every", "stop_after", NULL};
    lp_check_keys(L, 2, "finetune", keys);
    const char *data = lp_opt_input_file(L, 2, "data", "the training text", "finetune");
    pare_ft_opts o;
    pare_ft_defaults(&o);
    /* a recipe's run is a short experiment by default (docs/recipes.md), not pare finetune's full run */
    o.steps = (long)lp_opt_integer(L, 2, "steps", RECIPE_FINETUNE_STEPS, 1, INT_MAX, "finetune");
    o.train.batch = (int)lp_opt_integer(L, 2, "batch", o.train.batch, 1, 1 << 16, "finetune");
    o.train.seq = (int)lp_opt_integer(L, 2, "seq", o.train.seq, 2, 1 << 20, "finetune");
    o.train.accum = (int)lp_opt_integer(L, 2, "accum", o.train.accum, 1, 1 << 16, "finetune");
    o.train.lr.lr_max = lp_opt_number(L, 2, "lr", o.train.lr.lr_max, "finetune");
    o.train.lr.lr_min = lp_opt_number(L, 2, "lr_min", o.train.lr.lr_max / 10, "finetune");
    o.train.lr.warmup = (long)lp_opt_integer(L, 2, "warmup", o.train.lr.warmup, 0, INT_MAX, "finetune");
    o.train.lr.decay = (pare_lr_decay)lp_opt_choice(L, 2, "schedule", PARE_LR_DECAY_NAMES[o.train.lr.decay],
                                                    PARE_LR_DECAY_NAMES, "finetune");
    o.train.lr.total = o.steps;
    o.train.adamw.weight_decay = lp_opt_number(L, 2, "weight_decay", o.train.adamw.weight_decay, "finetune");
    o.train.clip = lp_opt_number(L, 2, "clip", o.train.clip, "finetune");
    o.seed = (uint64_t)lp_opt_integer(L, 2, "seed", (long long)o.seed, 0, LLONG_MAX, "finetune");
    const char *ckpt = lp_opt_string(L, 2, "checkpoint", NULL, "finetune");
    if (ckpt)
        lsandbox_check(L, ckpt, 1, "pare.finetune");
    long every = (long)lp_opt_integer(L, 2, "checkpoint_every", 0, 0, INT_MAX, "finetune");
    int resume = lp_opt_bool(L, 2, "resume", 0, "finetune");
    const char *cache = lp_opt_string(L, 2, "cache", NULL, "finetune");
    if (cache)
        lsandbox_check(L, cache, 1, "pare.finetune");
    long log_every = (long)lp_opt_integer(L, 2, "log_every", 10, 1, INT_MAX, "finetune");
    long stop_after = (long)lp_opt_integer(L, 2, "stop_after", 0, 0, INT_MAX, "finetune");
    if (resume && !ckpt)
        return luaL_error(L, "pare.finetune: resume needs checkpoint = DIR");
    /* prune = {...} */
    if (lp_opt_field(L, 2, "prune") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "pare.finetune: option 'prune' must be a table {method = ..., sparsity = ...}");
        int pt = lua_gettop(L);
        static const char *const pkeys[] = {"method", "sparsity", "warmup", "cooldown", "every",
                                            "scope",  "beta1",    "beta2",  NULL};
        lp_check_keys(L, pt, "finetune", pkeys);
        o.prune = 1;
        o.fop.method = (pare_fop_method)lp_opt_choice(L, pt, "method", PARE_FOP_NAMES[o.fop.method], PARE_FOP_NAMES,
                                                      "finetune");
        o.fop.sparsity = lp_opt_number(L, pt, "sparsity", o.fop.sparsity, "finetune");
        o.fop.warmup = (long)lp_opt_integer(L, pt, "warmup", o.fop.warmup, 0, INT_MAX, "finetune");
        o.fop.cooldown = (long)lp_opt_integer(L, pt, "cooldown", o.fop.cooldown, 0, INT_MAX, "finetune");
        o.fop.every = (int)lp_opt_integer(L, pt, "every", o.fop.every, 1, INT_MAX, "finetune");
        o.fop.global = lp_opt_choice(L, pt, "scope", PARE_FOP_SCOPE_NAMES[o.fop.global], PARE_FOP_SCOPE_NAMES,
                                     "finetune");
        o.fop.beta1 = lp_opt_number(L, pt, "beta1", o.fop.beta1, "finetune");
        o.fop.beta2 = lp_opt_number(L, pt, "beta2", o.fop.beta2, "finetune");
    }
    lua_pop(L, 1);
    /* mixed_rank = {...} */
    if (lp_opt_field(L, 2, "mixed_rank") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "pare.finetune: option 'mixed_rank' must be a table {sparse = M, p0 = 0.5, ...}");
        int mt = lua_gettop(L);
        static const char *const mkeys[] = {"sparse", "p0", "span", "distill", "temperature", NULL};
        lp_check_keys(L, mt, "finetune", mkeys);
        lp_opt_field(L, mt, "sparse");
        lmodel *su = luaL_testudata(L, -1, MODEL_MT);
        if (!su || !su->m)
            return luaL_error(L, "pare.finetune: mixed_rank.sparse must be a model (the full-rank sparse one)");
        if (su->m == m)
            return luaL_error(L, "pare.finetune: mixed_rank.sparse must be another model than the one fine-tuned");
        lua_pop(L, 1);
        o.sparse = su->m;
        /* the core's p0 default is 0 (off); asking for mixed_rank turns it on */
        o.mix_p0 = lp_opt_number(L, mt, "p0", RECIPE_MIX_P0, "finetune");
        o.mix_span = lp_opt_number(L, mt, "span", o.mix_span, "finetune");
        o.distill = lp_opt_number(L, mt, "distill", o.distill, "finetune");
        o.distill_temp = lp_opt_number(L, mt, "temperature", o.distill_temp, "finetune");
    }
    lua_pop(L, 1);
    pare_error err = {0};
    double t0 = lp_now();
    /* resume: the model becomes the checkpoint's (weights, masks, factors) */
    long ck_step = -1;
    if (resume && pare_ft_checkpoint_info(ckpt, &ck_step, NULL, &err) == PARE_OK) {
        pare_model *nm = NULL;
        if (pare_model_load(ckpt, NULL, &nm, &err))
            return lp_core_error(L, "finetune", NULL, &err);
        pare_model_free(u->m);
        u->m = m = nm;
    }
    pare_token_stream *ts = lua_newuserdatauv(L, sizeof *ts, 0); /* freed below on every path */
    memset(ts, 0, sizeof *ts);
    int ts_idx = lua_gettop(L);
    if (pare_tokens_open(m, data, cache, ts, &err))
        return lp_core_error(L, "finetune", NULL, &err);
    pare_ft *ft = NULL;
    if (pare_ft_new(m, ts, &o, &ft, &err) || (ck_step >= 0 && pare_ft_load_state(ft, ckpt, &err))) {
        pare_ft_free(ft);
        pare_tokens_close(ts);
        return lp_core_error(L, "finetune", NULL, &err);
    }
    lua_createtable(L, (int)o.steps, 0);
    int list = lua_gettop(L);
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_progress micro = {micro_progress, &pc};
    ft_lua c = {L, &pc, o.steps, pare_ft_steps_done(ft), log_every, lp_now(), 0, -1, 0, list};
    char line[600];
    snprintf(line, sizeof line, "[finetune] %s: %ld steps x %d x %d x %d tokens, lr %.3g%s%s", data, o.steps,
             o.train.accum, o.train.batch, o.train.seq, o.train.lr.lr_max, o.prune ? ", pruning " : "",
             o.prune ? PARE_FOP_NAMES[o.fop.method] : "");
    lp_host_log(L, line);
    pare_ft_run_opts ro = {.checkpoint_dir = ckpt,
                           .checkpoint_every = every,
                           .options_json = NULL,
                           .on_step = ft_on_step,
                           .user = &c,
                           .progress = &micro,
                           .until = stop_after};
    pare_status st = pare_ft_run(ft, &ro, &err);
    if (st) {
        if (pare_ft_steps_done(ft) > c.first) { /* the steps taken so far changed the model */
            lua_createtable(L, 0, 3);
            lp_set_str(L, "step", "finetune");
            lp_set_str(L, "method", "ft");
            lp_set_str(L, "data", "(interrupted)");
            lj_model_changed(L, 1);
        }
        pare_ft_free(ft);
        pare_tokens_close(ts);
        return lp_core_error(L, "finetune", &pc, &err);
    }
    lp_progress_end(L, &pc);
    double secs = lp_now() - c.start;
    lua_createtable(L, 0, 12);
    int res = lua_gettop(L);
    lp_set_int(L, "steps", pare_ft_steps_done(ft));
    if (c.first_loss >= 0) { /* a resumed run may have had no step left */
        lp_set_num(L, "first_loss", c.first_loss);
        lp_set_num(L, "final_loss", c.last_loss);
    }
    lua_pushvalue(L, list);
    lua_setfield(L, res, "losses");
    lp_set_int(L, "tokens", (lua_Integer)c.tokens);
    lp_set_num(L, "seconds", secs);
    lp_set_num(L, "tokens_per_second", secs > 0 ? (double)c.tokens / secs : 0);
    const pare_fop_state *fs = pare_ft_fop(ft);
    if (fs) {
        lp_set_num(L, "sparsity", pare_fop_sparsity(fs));
        push_importance(L, fs);
        lua_setfield(L, res, "importance");
    }
    /* the journal: what changed the model */
    lua_createtable(L, 0, 12);
    lp_set_str(L, "step", "finetune");
    lp_set_str(L, "method",
               o.prune        ? (o.fop.method == PARE_FOP_MOVEMENT      ? "ft-movement"
                                 : o.fop.method == PARE_FOP_SENSITIVITY ? "ft-sensitivity"
                                                                        : "ft-magnitude")
               : o.mix_p0 > 0 ? "ft-mixed"
                              : "ft");
    lp_set_str(L, "data", data);
    lp_set_str(L, "sha256", ts->sha256);
    lp_set_int(L, "steps", o.steps);
    lp_set_int(L, "batch", o.train.batch);
    lp_set_int(L, "seq", o.train.seq);
    lp_set_int(L, "accum", o.train.accum);
    lp_set_num(L, "lr", o.train.lr.lr_max);
    lp_set_int(L, "seed", (lua_Integer)o.seed);
    lp_set_num(L, "final_loss", c.last_loss);
    if (o.prune) {
        lua_createtable(L, 0, 5);
        lp_set_str(L, "method", PARE_FOP_NAMES[o.fop.method]);
        lp_set_num(L, "sparsity", o.fop.sparsity);
        lp_set_int(L, "warmup", o.fop.warmup);
        lp_set_int(L, "cooldown", o.fop.cooldown);
        lp_set_str(L, "scope", PARE_FOP_SCOPE_NAMES[o.fop.global]);
        lua_setfield(L, -2, "prune");
    }
    if (o.sparse) {
        lua_createtable(L, 0, 4);
        lp_set_num(L, "p0", o.mix_p0);
        lp_set_num(L, "span", o.mix_span);
        lp_set_num(L, "distill", o.distill);
        lp_set_num(L, "temperature", o.distill_temp);
        lua_setfield(L, -2, "mixed_rank");
    }
    lj_model_changed(L, 1);
    char what[700];
    snprintf(what, sizeof what, "%ld steps on %s: loss %.4f -> %.4f", o.steps, data, c.first_loss, c.last_loss);
    lj_step(L, "finetune", t0, what);
    pare_ft_free(ft);
    pare_tokens_close(ts);
    (void)ts_idx;
    lua_settop(L, res);
    return 1;
}

/* ---- m:factorize_sparse ---------------------------------------------------------------------- */

static const char *const WEIGHTS[] = {"importance", "mask", NULL};

/* m:factorize_sparse{rank = K | keep = FRACTION, importance = IMP, weighting = "importance"|"mask",
 * iters = 30, tol = 1e-3, quantile = 1, matrices = PATTERN}
 * -> {count, params_before, params_after, weighting, mean_rel_error, mean_rel_error_plain,
 *     matrices = {{name, rank, iters, rel_error, rel_error_plain, rel_dense_error}}}
 * Every masked or dense block linear whose name matches the Lua pattern (default: all) is replaced by
 * rank-k factors fitted by the sparsity-aware SVD; iters = 0 gives the plain SVD of the sparse matrix. */
static int l_factorize_sparse(lua_State *L)
{
    lp_enter(L, "m:factorize_sparse", 2);
    pare_model *m = lp_check_model(L, 1, "factorize_sparse");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"rank", "keep",     "importance", "weighting", "iters",
                                       "tol",  "quantile", "matrices",   NULL};
    lp_check_keys(L, 2, "factorize_sparse", keys);
    long long rank;
    double keep;
    lp_opt_rank_or_keep(L, 2, "factorize_sparse", &rank, &keep);
    lp_opt_field(L, 2, "importance");
    limportance *imp = luaL_testudata(L, -1, IMPORTANCE_MT);
    if (!lua_isnil(L, -1) && (!imp || imp->closed))
        return luaL_error(L, "pare.factorize_sparse: option 'importance' must be the importance m:finetune returned");
    lua_pop(L, 1);
    int w = lp_opt_choice(L, 2, "weighting", imp ? "importance" : "mask", WEIGHTS, "factorize_sparse");
    if (w == 0 && !imp)
        return luaL_error(L, "pare.factorize_sparse: weighting importance needs importance = (m:finetune{prune = "
                             "...}).importance");
    pare_wsvd_opts wo;
    pare_wsvd_defaults(&wo);
    wo.max_iters = (int)lp_opt_integer(L, 2, "iters", wo.max_iters, 0, 100000, "factorize_sparse");
    wo.tol = lp_opt_number(L, 2, "tol", wo.tol, "factorize_sparse");
    wo.quantile = lp_opt_number(L, 2, "quantile", wo.quantile, "factorize_sparse");
    if (!(wo.quantile > 0 && wo.quantile <= 1))
        return luaL_error(L, "pare.factorize_sparse: quantile %f must be in (0, 1]", wo.quantile);
    const char *pat = lp_opt_string(L, 2, "matrices", NULL, "factorize_sparse");
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **lin = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *lin, 0);
    int *ranks = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ranks, 0);
    pare_model_linears(m, lin, n);
    int k = 0;
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    int find = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        if (pat) {
            lua_pushvalue(L, find);
            lua_pushstring(L, lin[i]->name);
            lua_pushstring(L, pat);
            if (lua_pcall(L, 2, 1, 0) != LUA_OK)
                return luaL_error(L, "pare.factorize_sparse: matrices '%s' is not a valid Lua pattern", pat);
            int take = !lua_isnil(L, -1);
            lua_pop(L, 1);
            if (!take)
                continue;
        }
        pare_linear *l = lin[i];
        if (l->kind == PARE_LIN_FACTORED)
            return luaL_error(L, "pare.factorize_sparse: %s is already factorized", l->name);
        int lim = l->out < l->in ? l->out : l->in;
        int r = rank > 0 ? (int)rank : (int)(keep * (double)l->out * l->in / ((double)l->out + l->in));
        r = r < 1 ? 1 : r;
        if (r > lim)
            return luaL_error(L, "pare.factorize_sparse: rank %d exceeds min(%d, %d) for %s", r, l->out, l->in, l->name);
        if (w == 0 && !importance_of(imp, l))
            return luaL_error(L, "pare.factorize_sparse: the importance has no entry for %s", l->name);
        lin[k] = l;
        ranks[k++] = r;
    }
    lua_settop(L, find - 2);
    if (k == 0)
        return luaL_error(L, "pare.factorize_sparse: no block matrix matches '%s'", pat ? pat : "all");
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_error err = {0};
    size_t before = 0, after = 0;
    double se = 0, sp = 0;
    lua_createtable(L, k, 0);
    int list = lua_gettop(L);
    for (int i = 0; i < k; i++) {
        pare_wsvd_report r;
        size_t pb = pare_linear_params(lin[i]);
        if (pare_report(&pp, "factorize_sparse", (double)i / k, lin[i]->name, &err) ||
            pare_factorize_sparse(lin[i], ranks[i], w == 0 ? importance_of(imp, lin[i]) : NULL, &wo, &r, &err)) {
            if (i > 0) {
                lua_createtable(L, 0, 3);
                lp_set_str(L, "step", "factorize_sparse");
                lp_set_str(L, "method", "sasvd");
                lp_set_str(L, "matrices", "(interrupted)");
                lj_model_changed(L, 1);
            }
            return lp_core_error(L, "factorize_sparse", &pc, &err);
        }
        before += pb;
        after += pare_linear_params(lin[i]);
        se += r.rel_error;
        sp += r.rel_error_plain;
        lua_createtable(L, 0, 7);
        lp_set_str(L, "name", lin[i]->name);
        lp_set_int(L, "rank", ranks[i]);
        lp_set_int(L, "iters", r.iters);
        lp_set_num(L, "rel_error", r.rel_error);
        lp_set_num(L, "rel_error_plain", r.rel_error_plain);
        lp_set_num(L, "rel_dense_error", r.rel_dense_error);
        lp_set_num(L, "objective", r.objective);
        lp_set_num(L, "objective_plain", r.objective_plain);
        lua_rawseti(L, list, i + 1);
    }
    pare_report(&pp, "factorize_sparse", 1.0, "done", &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 8);
    int res = lua_gettop(L);
    lp_set_int(L, "count", k);
    lp_set_int(L, "params_before", (lua_Integer)before);
    lp_set_int(L, "params_after", (lua_Integer)after);
    lp_set_str(L, "weighting", WEIGHTS[w]);
    lp_set_num(L, "mean_rel_error", se / k);
    lp_set_num(L, "mean_rel_error_plain", sp / k);
    lua_pushvalue(L, list);
    lua_setfield(L, res, "matrices");
    lua_createtable(L, 0, 8);
    lp_set_str(L, "step", "factorize_sparse");
    lp_set_str(L, "method", wo.max_iters == 0 ? "svd-sparse" : "sasvd");
    lp_set_str(L, "matrices", pat ? pat : "all");
    if (rank > 0)
        lp_set_int(L, "rank", rank);
    else
        lp_set_num(L, "keep", keep);
    lp_set_str(L, "weighting", WEIGHTS[w]);
    lp_set_int(L, "iters", wo.max_iters);
    lp_set_num(L, "tol", wo.tol);
    lp_set_num(L, "quantile", wo.quantile);
    lj_model_changed(L, 1);
    char what[200];
    snprintf(what, sizeof what, "%d matrices, weighted error %.4f (plain SVD %.4f)", k, se / k, sp / k);
    lj_step(L, "factorize_sparse", t0, what);
    lua_settop(L, res);
    return 1;
}

const luaL_Reg lp_train_methods[] = {{"finetune", l_finetune}, {"factorize_sparse", l_factorize_sparse}, {NULL, NULL}};

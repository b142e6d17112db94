/* The `pare` module's fine-grained tools: clone, calibrate (a pare.calib userdata), spectra,
 * per-matrix factorize and prune, generate. Each checks its arguments, calls the core, records a
 * step in the run journal and turns a core error into "pare.FUNC: message". */
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "plot/charts.h"
#include "core/factorize.h"
#include "core/generate.h"
#include "core/method.h"
#include "core/prune.h"
#include "core/sha256.h"
#include "core/spectrum.h"
#include "core/tokenizer.h"
#include "lsandbox.h"
#include "lpare_internal.h"

/* ---- pare.calib: calibration statistics of one model state ---------------------------------- */

typedef struct {
    pare_calib_stats *st;
    int n_layers, samples, len, gram;
    long long seed;
} lcalib;

static lcalib *check_calib(lua_State *L, int idx, const char *fname)
{
    lcalib *c = luaL_checkudata(L, idx, CALIB_MT);
    if (!c->st)
        luaL_error(L, "pare.%s: the calibration statistics were closed", fname);
    return c;
}

/* c:close() and __close: refused while an operation holds the statistics. */
static int l_calib_free(lua_State *L)
{
    lcalib *c = luaL_checkudata(L, 1, CALIB_MT);
    lp_refuse_busy(L, 1, "calib.close");
    pare_calib_free(c->st);
    c->st = NULL;
    return 0;
}

/* __gc: an operation's guard keeps what it holds referenced; never free what C is using. */
static int l_calib_gc(lua_State *L)
{
    lcalib *c = luaL_checkudata(L, 1, CALIB_MT);
    if (!lp_is_busy(L, 1)) {
        pare_calib_free(c->st);
        c->st = NULL;
    }
    return 0;
}

/* c:info() -> {samples, len, seed, gram, layers, bytes, data} */
static int l_calib_info(lua_State *L)
{
    lcalib *c = check_calib(L, 1, "calib.info");
    lua_createtable(L, 0, 7);
    lp_set_int(L, "samples", c->samples);
    lp_set_int(L, "len", c->len);
    lp_set_int(L, "seed", c->seed);
    lp_set_bool(L, "gram", c->gram);
    lp_set_int(L, "layers", c->n_layers);
    lp_set_int(L, "bytes", (lua_Integer)c->st->bytes);
    lua_getiuservalue(L, 1, 1);
    lua_setfield(L, -2, "data");
    return 1;
}

static int l_calib_tostring(lua_State *L)
{
    lcalib *c = luaL_checkudata(L, 1, CALIB_MT);
    if (!c->st)
        lua_pushliteral(L, "pare.calib (closed)");
    else
        lua_pushfstring(L, "pare.calib (%d windows x %d tokens, seed %d%s)", c->samples, c->len, (int)c->seed,
                        c->gram ? ", Gram matrices" : "");
    return 1;
}

void lp_open_calib(lua_State *L)
{
    static const luaL_Reg methods[] = {{"info", l_calib_info}, {"close", l_calib_free}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_calib_gc}, {"__close", l_calib_free}, {"__tostring", l_calib_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, CALIB_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* The calibration option `calib` of the table at idx: NULL when absent; its layer count must match m. */
const pare_calib_stats *lp_opt_calib(lua_State *L, int idx, pare_model *m, const char *fname)
{
    if (lp_opt_field(L, idx, "calib") == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    lcalib *c = luaL_testudata(L, -1, CALIB_MT);
    if (!c)
        luaL_error(L, "pare.%s: option 'calib' must be calibration statistics from m:calibrate{...}, got %s", fname,
                   luaL_typename(L, -1));
    if (!c->st)
        luaL_error(L, "pare.%s: option 'calib': the calibration statistics were closed", fname);
    if (c->n_layers != m->cfg.n_layers)
        luaL_error(L, "pare.%s: option 'calib' has statistics of %d layers, the model has %d", fname, c->n_layers,
                   m->cfg.n_layers);
    lua_pop(L, 1); /* the option table, an argument, keeps the userdata alive */
    return c->st;
}

/* m:calibrate{data = FILE, samples = 128, len = 256, seed = 0, batch = 8, gram = false} -> pare.calib:
 * one-shot statistics of every linear input on the model as it is now. */
static int l_calibrate(lua_State *L)
{
    lp_enter(L, "m:calibrate", 2);
    pare_model *m = lp_check_model(L, 1, "calibrate");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"data", "samples", "len", "seed", "batch", "gram", NULL};
    lp_check_keys(L, 2, "calibrate", keys);
    const char *data = lp_opt_input_file(L, 2, "data", "a text file", "calibrate");
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = (int)lp_opt_integer(L, 2, "samples", co.samples, 1, 1 << 24, "calibrate");
    co.len = (int)lp_opt_integer(L, 2, "len", co.len, 2, 1 << 20, "calibrate");
    co.seed = (uint64_t)lp_opt_integer(L, 2, "seed", (long long)co.seed, 0, LLONG_MAX, "calibrate");
    co.batch = (int)lp_opt_integer(L, 2, "batch", co.batch, 1, 4096, "calibrate");
    co.gram = lp_opt_bool(L, 2, "gram", co.gram, "calibrate");
    double t0 = lp_now();
    lcalib *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CALIB_MT);
    pare_error err = {0};
    int32_t *win = NULL;
    size_t n = 0;
    char sha[65];
    if (pare_sha256_file(data, sha, &err) || pare_calib_windows_file(m, data, &co, &win, &n, &err))
        return lp_core_error(L, "calibrate", NULL, &err);
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_status st = pare_calibrate(m, win, &co, NULL, NULL, &pp, &c->st, &err);
    free(win);
    if (st)
        return lp_core_error(L, "calibrate", &pc, &err);
    lp_progress_end(L, &pc);
    c->n_layers = m->cfg.n_layers;
    c->samples = co.samples;
    c->len = co.len;
    c->seed = (long long)co.seed;
    c->gram = co.gram;
    lua_createtable(L, 0, 2);
    lp_set_str(L, "path", data);
    lp_set_str(L, "sha256", sha);
    lp_set_int(L, "tokens", (lua_Integer)n);
    lua_setiuservalue(L, -2, 1);
    char what[600];
    snprintf(what, sizeof what, "%d x %d tokens from %s, seed %llu%s", co.samples, co.len, data,
             (unsigned long long)co.seed, co.gram ? ", Gram matrices" : "");
    lj_step(L, "calibrate", t0, what);
    return 1;
}

/* The calib record of a step: {data, sha256, samples, len, seed} of the statistics in option idx. */
static void push_calib_record(lua_State *L, int idx)
{
    lp_opt_field(L, idx, "calib");
    lcalib *c = luaL_testudata(L, -1, CALIB_MT);
    if (!c) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_getiuservalue(L, -1, 1);
    lua_createtable(L, 0, 5);
    lua_getfield(L, -2, "path");
    lua_setfield(L, -2, "data");
    lua_getfield(L, -2, "sha256");
    lua_setfield(L, -2, "sha256");
    lp_set_int(L, "samples", c->samples);
    lp_set_int(L, "len", c->len);
    lp_set_int(L, "seed", c->seed);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* ---- choosing matrices --------------------------------------------------------------------- */

typedef struct {
    pare_linear *lin;
    int layer;
    int site;
} chosen;


/* The block linears named by option `matrices` of the table at idx: "all" (default), "attn", "mlp",
 * a comma list of types ("q,k", "v,o", "gate,up,down"), a list of full names, or a Lua pattern
 * matched against the names. Returns a userdata-backed array (left on the stack) and its count. */
static chosen *choose(lua_State *L, int idx, pare_model *m, const char *fname, int *count, const char **spec_out)
{
    int total = pare_model_linears(m, NULL, 0);
    chosen *out = lua_newuserdatauv(L, (size_t)(total > 0 ? total : 1) * sizeof *out, 0);
    int t = lp_opt_field(L, idx, "matrices");
    const char *spec = t == LUA_TNIL ? "all" : t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TTABLE)
        luaL_error(L, "pare.%s: option 'matrices' must be a string or a list of names, got %s", fname,
                   luaL_typename(L, -1));
    int list = t == LUA_TTABLE ? lua_gettop(L) : 0;
    /* a type list: every comma-separated word a type name */
    int types[PARE_LIN_KINDS] = {0}, is_types = spec != NULL;
    int all = spec && !strcmp(spec, "all"), attn = spec && !strcmp(spec, "attn"), mlp = spec && !strcmp(spec, "mlp");
    if (all || attn || mlp)
        for (int j = 0; j < PARE_LIN_KINDS; j++)
            types[j] = all || (pare_lin_kinds[j].ffn ? mlp : attn);
    else if (spec) {
        const char *p = spec;
        while (is_types && *p) {
            size_t len = strcspn(p, ",");
            int found = 0;
            for (int j = 0; j < PARE_LIN_KINDS; j++)
                if (strlen(pare_lin_kinds[j].name) == len && !strncmp(p, pare_lin_kinds[j].name, len))
                    types[j] = found = 1;
            is_types = found;
            p += len + (p[len] == ',');
        }
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "string");
    lua_getfield(L, -1, "find");
    int find = lua_gettop(L);
    int n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pare_block *b = &m->blocks[l];
        for (int j = 0; j < PARE_LIN_KINDS; j++) {
            pare_linear *ln = &b->lin[j];
            if (!ln->out)
                continue;
            int take = 0;
            if (list) {
                lua_Integer k = (lua_Integer)lua_rawlen(L, list);
                for (lua_Integer i = 1; i <= k && !take; i++) {
                    lua_rawgeti(L, list, i);
                    take = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), ln->name);
                    lua_pop(L, 1);
                }
            } else if (is_types) {
                take = types[j];
            } else if (lua_isfunction(L, find)) {
                lua_pushvalue(L, find);
                lua_pushstring(L, ln->name);
                lua_pushstring(L, spec);
                if (lua_pcall(L, 2, 1, 0) != LUA_OK)
                    luaL_error(L, "pare.%s: option 'matrices' '%s' is not a valid Lua pattern: %s", fname, spec,
                               lua_tostring(L, -1));
                take = !lua_isnil(L, -1);
                lua_pop(L, 1);
            }
            if (take)
                out[n++] = (chosen){ln, l, pare_linear_site(b, ln)};
        }
    }
    lua_settop(L, find - 3);
    if (list) {
        lua_Integer k = (lua_Integer)lua_rawlen(L, list);
        for (lua_Integer i = 1; i <= k; i++) { /* every listed name must exist */
            lua_rawgeti(L, list, i);
            const char *nm = lua_tostring(L, -1);
            int found = 0;
            for (int c = 0; c < n && !found; c++)
                found = nm && !strcmp(nm, out[c].lin->name);
            if (!found)
                luaL_error(L, "pare.%s: option 'matrices': no block matrix named '%s'", fname,
                           nm ? nm : luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    }
    if (n == 0)
        luaL_error(L, "pare.%s: option 'matrices' %s%s%s matches no block matrix (names look like %s)", fname,
                   spec ? "'" : "", spec ? spec : "(list)", spec ? "'" : "", total ? m->blocks[0].q.name : "?");
    lua_pop(L, 1); /* the option value; the array stays */
    *count = n;
    if (spec_out)
        *spec_out = spec ? spec : "(list)";
    return out;
}

static const pare_input_stats *site_stats(const pare_calib_stats *st, const chosen *c)
{
    return st && c->site >= 0 ? &st->sites[c->layer][c->site] : NULL;
}

/* ---- spectra ------------------------------------------------------------------------------- */

/* m:spectra{weighting = "none"|"act"|"whiten", calib = C, matrices = SPEC, values = true} -> list of
 * {name, out, in, values = {...}, stable_rank, effective_rank, rank90, rank95, rank99, break_even, s_max} */
static int l_spectra(lua_State *L)
{
    lp_enter(L, "m:spectra", 2);
    pare_model *m = lp_check_model(L, 1, "spectra");
    static const char *const keys[] = {"weighting", "calib", "matrices", "values", NULL};
    lp_check_keys(L, 2, "spectra", keys);
    int w = lp_opt_choice(L, 2, "weighting", PARE_WEIGHTING_NAMES[PARE_WEIGHT_NONE], PARE_WEIGHTING_NAMES, "spectra");
    const pare_calib_stats *cs = lp_opt_calib(L, 2, m, "spectra");
    int with_values = lp_opt_bool(L, 2, "values", 1, "spectra");
    if (w != PARE_WEIGHT_NONE && !cs)
        return luaL_error(L, "pare.spectra: weighting %s needs calib = m:calibrate{data = FILE%s}",
                          PARE_WEIGHTING_NAMES[w], w == PARE_WEIGHT_WHITEN ? ", gram = true" : "");
    int n;
    chosen *ch = choose(L, 2, m, "spectra", &n, NULL);
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_model_spectra *sp = NULL;
    pare_error err = {0};
    if (pare_model_spectra_weighted(m, cs, (pare_weighting)w, &pp, &sp, &err))
        return lp_core_error(L, "spectra", &pc, &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, n, 0);
    for (int i = 0, k = 0; i < sp->count; i++) {
        const pare_matrix_spectrum *s = &sp->mats[i];
        int take = 0;
        for (int c = 0; c < n && !take; c++)
            take = !strcmp(ch[c].lin->name, s->name);
        if (!take)
            continue;
        lua_createtable(L, 0, 12);
        lp_set_str(L, "name", s->name);
        lp_set_str(L, "weighting", PARE_WEIGHTING_NAMES[w]);
        lp_set_int(L, "out", s->m);
        lp_set_int(L, "in", s->n);
        lp_set_num(L, "s_max", s->stats.s_max);
        lp_set_num(L, "sum_sq", s->stats.sum_sq);
        lp_set_num(L, "stable_rank", s->stats.stable_rank);
        lp_set_num(L, "effective_rank", s->stats.effective_rank);
        lp_set_int(L, "rank90", s->stats.rank90);
        lp_set_int(L, "rank95", s->stats.rank95);
        lp_set_int(L, "rank99", s->stats.rank99);
        lp_set_int(L, "break_even", s->stats.break_even);
        if (with_values) {
            lua_createtable(L, s->stats.r, 0);
            for (int j = 0; j < s->stats.r; j++) {
                lua_pushnumber(L, s->s[j]);
                lua_rawseti(L, -2, j + 1);
            }
            lua_setfield(L, -2, "values");
        }
        lua_rawseti(L, -2, ++k);
    }
    pare_model_spectra_free(sp);
    char what[96];
    snprintf(what, sizeof what, "%d matrices, weighting %s", n, PARE_WEIGHTING_NAMES[w]);
    lj_step(L, "spectra", t0, what);
    return 1;
}

/* ---- factorize ------------------------------------------------------------------------------ */

static const char *const FACTOR_METHOD[] = {"svd", "asvd", "svdllm"}; /* by weighting */

/* m:factorize{rank = K | keep = FRACTION, matrices = SPEC, weighting = "none"|"act"|"whiten", calib = C,
 * damping = D} -> {count, params_before, params_after, worst_rel_error, matrices = {{name, rank, rel_error}}}.
 * keep is the fraction of each matrix's parameters kept: rank floor(keep m n / (m + n)), at least 1.
 * Every rank is checked before any matrix changes. */
static int l_factorize(lua_State *L)
{
    lp_enter(L, "m:factorize", 2);
    pare_model *m = lp_check_model(L, 1, "factorize");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"rank", "keep", "matrices", "weighting", "calib", "damping", NULL};
    lp_check_keys(L, 2, "factorize", keys);
    long long rank;
    double keep;
    lp_opt_rank_or_keep(L, 2, "factorize", &rank, &keep);
    int w = lp_opt_choice(L, 2, "weighting", PARE_WEIGHTING_NAMES[PARE_WEIGHT_NONE], PARE_WEIGHTING_NAMES, "factorize");
    const pare_calib_stats *cs = lp_opt_calib(L, 2, m, "factorize");
    pare_factor_opts fo;
    pare_factor_defaults(&fo);
    fo.weighting = (pare_weighting)w;
    fo.damping = lp_opt_number(L, 2, "damping", fo.damping, "factorize");
    if (w != PARE_WEIGHT_NONE && !cs)
        return luaL_error(L, "pare.factorize: weighting %s needs calib = m:calibrate{data = FILE%s}",
                          PARE_WEIGHTING_NAMES[w], w == PARE_WEIGHT_WHITEN ? ", gram = true" : "");
    int n;
    const char *spec;
    chosen *ch = choose(L, 2, m, "factorize", &n, &spec);
    int *ranks = lua_newuserdatauv(L, (size_t)n * sizeof *ranks, 0);
    for (int i = 0; i < n; i++) {
        const pare_linear *l = ch[i].lin;
        int lim = l->out < l->in ? l->out : l->in;
        ranks[i] = rank > 0 ? (int)rank : (int)(keep * (double)l->out * l->in / ((double)l->out + l->in));
        if (ranks[i] < 1)
            ranks[i] = 1;
        if (ranks[i] > lim)
            return luaL_error(L, "pare.factorize: rank %d exceeds min(%d, %d) for %s", ranks[i], l->out, l->in, l->name);
        if (w == PARE_WEIGHT_WHITEN && !site_stats(cs, &ch[i])->gram)
            return luaL_error(L, "pare.factorize: weighting whiten needs Gram matrices: m:calibrate{..., gram = true}");
    }
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_error err = {0};
    size_t before = 0, after = 0;
    double worst = 0;
    lua_createtable(L, n, 0);
    int list = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        pare_factor_report r = {0};
        if (pare_report(&pp, "factorize", (double)i / n, ch[i].lin->name, &err) ||
            pare_factorize_linear(ch[i].lin, ranks[i], &fo, site_stats(cs, &ch[i]), &r, &err)) {
            if (i > 0) { /* the matrices done so far stay factorized: record them */
                lua_createtable(L, 0, 3);
                lp_set_str(L, "step", "factorize");
                lp_set_str(L, "method", FACTOR_METHOD[w]);
                lp_set_str(L, "matrices", "(interrupted)");
                lj_model_changed(L, 1);
            }
            return lp_core_error(L, "factorize", &pc, &err);
        }
        before += r.params_before;
        after += r.params_after;
        if (r.rel_error > worst)
            worst = r.rel_error;
        lua_createtable(L, 0, 4);
        lp_set_str(L, "name", ch[i].lin->name);
        lp_set_int(L, "rank", ranks[i]);
        lp_set_num(L, "rel_error", r.rel_error);
        lp_set_num(L, "rel_weighted_error", r.rel_weighted_error);
        lua_rawseti(L, list, i + 1);
    }
    pare_report(&pp, "factorize", 1.0, "done", &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 6);
    lp_set_int(L, "count", n);
    lp_set_int(L, "params_before", (lua_Integer)before);
    lp_set_int(L, "params_after", (lua_Integer)after);
    lp_set_num(L, "worst_rel_error", worst);
    lp_set_str(L, "weighting", PARE_WEIGHTING_NAMES[w]);
    lua_pushvalue(L, list);
    lua_setfield(L, -2, "matrices");
    int res = lua_gettop(L);
    lua_createtable(L, 0, 8);
    lp_set_str(L, "step", "factorize");
    lp_set_str(L, "method", FACTOR_METHOD[w]);
    lp_set_str(L, "matrices", spec);
    if (rank > 0)
        lp_set_int(L, "rank", rank);
    else
        lp_set_num(L, "keep", keep);
    lp_set_str(L, "weighting", PARE_WEIGHTING_NAMES[w]);
    push_calib_record(L, 2);
    lua_setfield(L, -2, "calib");
    lj_model_changed(L, 1);
    char what[160];
    snprintf(what, sizeof what, "%d matrices (%s), %s", n, spec, FACTOR_METHOD[w]);
    lj_step(L, "factorize", t0, what);
    lua_settop(L, res);
    return 1;
}

/* ---- prune ---------------------------------------------------------------------------------- */

static const char *const PRUNE_METHODS[] = {"magnitude", "wanda", "channels", "channels-magnitude", NULL};

/* m:prune{method = "magnitude"|"wanda"|"channels"|"channels-magnitude", sparsity = S, scope =
 * "matrix"|"row"|"global", nm = "2:4", keep_least = 0.01, matrices = SPEC, calib = C} -> report.
 * magnitude / wanda mask weights of the chosen matrices (Wanda compares within rows by default);
 * channels removes a fraction S of every FFN's channels by LoRAP's score (channels-magnitude: by weight
 * norms only). */
static int l_prune(lua_State *L)
{
    lp_enter(L, "m:prune", 2);
    pare_model *m = lp_check_model(L, 1, "prune");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"method", "sparsity", "scope", "nm", "keep_least", "matrices", "calib", NULL};
    lp_check_keys(L, 2, "prune", keys);
    int me = lp_opt_choice(L, 2, "method", "magnitude", PRUNE_METHODS, "prune");
    const char *nm = lp_opt_string(L, 2, "nm", NULL, "prune");
    double sparsity = lp_opt_number(L, 2, "sparsity", nm ? 0 : -1, "prune");
    if (!nm && !(sparsity >= 0 && sparsity < 1))
        return luaL_error(L,
                          sparsity == -1 ? "pare.prune: option 'sparsity' (a fraction in [0, 1)) is required"
                                         : "pare.prune: sparsity %f must be in [0, 1)",
                          sparsity);
    const pare_calib_stats *cs = lp_opt_calib(L, 2, m, "prune");
    if ((me == 1 || me == 2) && !cs)
        return luaL_error(L, "pare.prune: method %s needs calib = m:calibrate{data = FILE}", PRUNE_METHODS[me]);
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    pare_error err = {0};
    lua_createtable(L, 0, 8);
    int step = lua_gettop(L);
    lp_set_str(L, "step", "prune");
    lp_set_str(L, "method", PRUNE_METHODS[me]);
    lp_set_num(L, "sparsity", sparsity);
    push_calib_record(L, 2);
    lua_setfield(L, step, "calib");
    lua_createtable(L, 0, 8);
    int res = lua_gettop(L);
    if (me >= 2) {
        lp_check_keys(L, 2, "prune", (const char *const[]){"method", "sparsity", "keep_least", "calib", NULL});
        pare_chan_opts co;
        pare_chan_defaults(&co);
        co.score = me == 2 ? PARE_CHAN_LORAP : PARE_CHAN_MAGNITUDE;
        co.sparsity = sparsity;
        co.keep_least = lp_opt_number(L, 2, "keep_least", co.keep_least, "prune");
        lua_pushvalue(L, step);
        lp_set_num(L, "keep_least", co.keep_least);
        lua_pop(L, 1);
        pare_chan_report r = {0};
        lp_progress_begin(L, &pc, &pp);
        if (pare_prune_model_ffn(m, cs, &co, &r, &pp, &err))
            return lp_core_error(L, "prune", &pc, &err);
        lp_progress_end(L, &pc);
        lp_set_int(L, "channels_before", r.channels_before);
        lp_set_int(L, "channels_after", r.channels_after);
        lp_set_num(L, "sparsity", r.sparsity);
        lp_set_int(L, "params_before", (lua_Integer)r.params_before);
        lp_set_int(L, "params_after", (lua_Integer)r.params_after);
    } else {
        pare_mask_opts mo;
        pare_mask_defaults(&mo);
        mo.score = me == 1 ? PARE_SCORE_WANDA : PARE_SCORE_MAGNITUDE;
        /* each score's own comparison group, as its named method in the core's table has it */
        const pare_prune_scope own_scope = pare_method_find(PRUNE_METHODS[me])->mask_scope;
        mo.scope = (pare_prune_scope)lp_opt_choice(L, 2, "scope", PARE_PRUNE_SCOPE_NAMES[own_scope],
                                                   PARE_PRUNE_SCOPE_NAMES, "prune");
        mo.sparsity = sparsity;
        if (nm && (sscanf(nm, "%d:%d", &mo.nm_n, &mo.nm_m) != 2 || mo.nm_n < 1 || mo.nm_n >= mo.nm_m))
            return luaL_error(L, "pare.prune: nm '%s': expected N:M with 0 < N < M, e.g. \"2:4\"", nm);
        int n;
        const char *spec;
        chosen *ch = choose(L, 2, m, "prune", &n, &spec);
        pare_linear **ls = lua_newuserdatauv(L, (size_t)n * sizeof *ls, 0);
        const pare_input_stats **ss = lua_newuserdatauv(L, (size_t)n * sizeof *ss, 0);
        for (int i = 0; i < n; i++) {
            ls[i] = ch[i].lin;
            ss[i] = site_stats(cs, &ch[i]);
        }
        pare_prune_report r = {0};
        if (pare_prune_mask(ls, ss, n, &mo, &r, &err))
            return lp_core_error(L, "prune", NULL, &err);
        lua_settop(L, res);
        lua_pushvalue(L, step);
        lp_set_str(L, "scope", PARE_PRUNE_SCOPE_NAMES[mo.scope]);
        lp_set_str(L, "matrices", spec);
        if (nm)
            lp_set_str(L, "nm", nm);
        lua_pop(L, 1);
        lp_set_int(L, "weights", (lua_Integer)r.weights);
        lp_set_int(L, "removed", (lua_Integer)r.removed);
        lp_set_int(L, "masked", (lua_Integer)r.masked);
        lp_set_num(L, "sparsity", r.sparsity);
        lp_set_int(L, "params_before", (lua_Integer)r.params_before);
        lp_set_int(L, "params_after", (lua_Integer)r.params_after);
    }
    lua_pushvalue(L, step);
    lj_model_changed(L, 1);
    char what[128];
    snprintf(what, sizeof what, "%s sparsity %.4g", PRUNE_METHODS[me], sparsity);
    lj_step(L, "prune", t0, what);
    lua_settop(L, res);
    return 1;
}

/* ---- clone, generate ------------------------------------------------------------------------ */

/* m:clone() -> an independent copy of the model as it is now (compressing one leaves the other). */
static int l_clone(lua_State *L)
{
    lp_enter(L, "m:clone", 1);
    pare_model *m = lp_check_model(L, 1, "clone");
    lmodel *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->m = NULL;
    luaL_setmetatable(L, MODEL_MT);
    pare_error err = {0};
    if (pare_model_clone(m, &u->m, &err))
        return lp_core_error(L, "clone", NULL, &err);
    lj_model_loaded(L, lua_gettop(L), 1);
    return 1;
}

typedef struct {
    lua_State *L;
    progress_ctx *pc;
    int n, max_new;
} gen_ctx;

static int gen_token(void *user, int32_t token)
{
    gen_ctx *g = user;
    (void)token;
    g->n++;
    return lp_progress_call(g->pc, "generate", (double)g->n / g->max_new, "") != 0;
}

/* m:generate(prompt, {max_new = 64, temperature = 0, top_p = 1, seed = 0, stop_at_eos = true}) -> text, n:
 * the continuation (greedy when temperature is 0) and its token count. */
static int l_generate(lua_State *L)
{
    lp_enter(L, "m:generate", 3);
    pare_model *m = lp_check_model(L, 1, "generate");
    size_t plen;
    const char *prompt = luaL_checklstring(L, 2, &plen);
    static const char *const keys[] = {"max_new", "temperature", "top_p", "seed", "stop_at_eos", NULL};
    lp_check_keys(L, 3, "generate", keys);
    pare_gen_opts o;
    pare_gen_defaults(&o);
    o.max_new = (int)lp_opt_integer(L, 3, "max_new", o.max_new, 1, 1 << 20, "generate");
    o.temperature = (float)lp_opt_number(L, 3, "temperature", o.temperature, "generate");
    o.top_p = (float)lp_opt_number(L, 3, "top_p", o.top_p, "generate");
    o.seed = (uint64_t)lp_opt_integer(L, 3, "seed", (long long)o.seed, 0, LLONG_MAX, "generate");
    o.stop_at_eos = lp_opt_bool(L, 3, "stop_at_eos", o.stop_at_eos, "generate");
    if (!m->tok)
        return luaL_error(L, "pare.generate: %s has no tokenizer", m->path);
    pare_error err = {0};
    int32_t *pids = NULL;
    size_t np = 0;
    if (pare_tokenizer_encode(m->tok, prompt, plen, 1, &pids, &np, &err))
        return lp_core_error(L, "generate", NULL, &err);
    if (np == 0) {
        free(pids);
        return luaL_error(L, "pare.generate: the prompt is empty and the tokenizer adds no BOS: nothing to continue");
    }
    int32_t *ids = lua_newuserdatauv(L, (np + (size_t)o.max_new) * sizeof *ids, 0);
    memcpy(ids, pids, np * sizeof *ids);
    free(pids);
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    gen_ctx g = {L, &pc, 0, o.max_new};
    int n = 0;
    if (pare_generate(m, ids, (int)np, &o, gen_token, &g, &n, &err))
        return lp_core_error(L, "generate", &pc, &err);
    lp_progress_end(L, &pc);
    if (pc.hook_error[0] || pc.hook_canceled || (pc.host && pc.host->interrupted && pc.host->interrupted())) {
        pare_fail(&err, PARE_ECANCELED, "cancelled after %d tokens", g.n);
        return lp_core_error(L, "generate", &pc, &err);
    }
    char *text = NULL;
    size_t len = 0;
    if (pare_tokenizer_decode(m->tok, ids + np, (size_t)n - np, 0, &text, &len, &err))
        return lp_core_error(L, "generate", NULL, &err);
    lua_pushlstring(L, text, len);
    free(text);
    lua_pushinteger(L, n - (int)np);
    return 2;
}

const luaL_Reg lp_tool_methods[] = {{"clone", l_clone},
                                    {"calibrate", l_calibrate},
                                    {"spectra", l_spectra},
                                    {"factorize", l_factorize},
                                    {"prune", l_prune},
                                    {"generate", l_generate},
                                    {NULL, NULL}};
const luaL_Reg lp_tool_funcs[] = {{NULL, NULL}};

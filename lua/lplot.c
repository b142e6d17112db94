/* The `pare` module's plots: model methods m:plot_spectrum, m:plot_spectra, m:plot_energy_ranks,
 * m:plot_mask, m:plot_channels, m:plot_budget and pare.plot_size_quality(rows, opts), over
 * src/plot/charts.c. Each writes a PNG (path =, default inside the run's output folder) and tells the
 * host (lpare_host.plot), or with terminal = true returns the chart as text. Every option is read
 * before the chart is built, so that a Lua error never leaves a plot allocated. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/runplots.h"
#include "core/calib.h"
#include "plot/charts.h"
#include "core/method.h"
#include "lsandbox.h"
#include "lpare_internal.h"

/* Where and how a chart is rendered. */
typedef struct {
    const char *path; /* PNG file (NULL with terminal) */
    int terminal, ascii, width, height;
    const char *title;
} out_opts;

#define OUT_KEYS "path", "terminal", "ascii", "width", "height", "title"

/* Reads the output options of the table at idx. default_name: the PNG's name inside the run's output
 * folder when no path is given (the joined path is left on the stack). */
static void read_out(lua_State *L, int idx, const char *fname, const char *default_name, out_opts *o)
{
    o->terminal = lp_opt_bool(L, idx, "terminal", 0, fname);
    o->ascii = lp_opt_bool(L, idx, "ascii", 0, fname);
    o->path = lp_opt_string(L, idx, "path", NULL, fname);
    if (o->path)
        lsandbox_check(L, o->path, 1, fname);
    o->title = lp_opt_string(L, idx, "title", NULL, fname);
    o->width = (int)lp_opt_integer(L, idx, "width", o->terminal ? 100 : PARE_PLOT_DEFAULT_WIDTH, 1, 16384, fname);
    o->height = (int)lp_opt_integer(L, idx, "height", o->terminal ? 30 : PARE_PLOT_DEFAULT_HEIGHT, 1, 16384, fname);
    if (o->terminal && o->path)
        luaL_error(L, "pare.%s: give path = FILE.png or terminal = true, not both", fname);
    if (o->ascii && !o->terminal)
        luaL_error(L, "pare.%s: ascii = true goes with terminal = true", fname);
    if (!o->terminal && !o->path) {
        lpare_host *h = lp_get_host(L);
        if (!h || !h->out_dir)
            luaL_error(L, "pare.%s: give path = FILE.png (this run has no output folder for the default %s)", fname,
                       default_name);
        o->path = lua_pushfstring(L, "%s/%s", h->out_dir, default_name);
    }
}

/* File-name-safe copy of a label ("0.q" stays, '/' and spaces become '_'). */
static void safe_name(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        buf[i] = (s[i] == '/' || s[i] == ' ' || s[i] == '\\') ? '_' : s[i];
    buf[i] = 0;
}

/* Renders p (destroyed here) as o says and pushes the PNG's path or the text; raises on failure. */
static int render_push(lua_State *L, pare_plot *p, const out_opts *o, const char *fname, const char *source, double t0)
{
    pare_error err = {0};
    if (o->title) {
        pare_plot_opts po = *pare_plot_get_opts(p);
        po.title = o->title;
        if (pare_plot_set_opts(p, &po, &err)) {
            pare_plot_destroy(p);
            return lp_core_error(L, fname, NULL, &err);
        }
    }
    if (o->terminal) {
        pare_term_grid *g = NULL;
        char *text = NULL;
        pare_status st = pare_plot_render_terminal(p, o->width, o->height,
                                                   o->ascii ? PARE_TERM_ASCII : PARE_TERM_BRAILLE, &g, &err);
        if (!st)
            st = pare_term_grid_to_text(g, &text, &err);
        pare_term_grid_free(g);
        pare_plot_destroy(p);
        if (st)
            return lp_core_error(L, fname, NULL, &err);
        lua_pushstring(L, text);
        free(text);
        return 1;
    }
    pare_status st = pare_plot_write_png(p, o->path, o->width, o->height, &(pare_png_meta){.source = source}, &err);
    pare_plot_destroy(p);
    if (st)
        return lp_core_error(L, fname, NULL, &err);
    lpare_host *h = lp_get_host(L);
    if (h && h->plot)
        h->plot(h->user, o->path);
    lj_step(L, "plot", t0, o->path);
    lua_pushstring(L, o->path);
    return 1;
}

/* A model chart: options read, chart built (with progress for the spectra), rendered. */
typedef pare_status (*model_chart_fn)(pare_model *m, const char *arg, const pare_chart_opts *o, pare_plot **out,
                                      pare_error *err);

static int model_chart(lua_State *L, const char *fname, model_chart_fn fn, const char *arg, pare_chart_opts *co,
                       const out_opts *oo)
{
    pare_model *m = lp_check_model(L, 1, fname);
    double t0 = lp_now();
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    co->progress = &pp;
    pare_plot *p = NULL;
    pare_error err = {0};
    if (fn(m, arg, co, &p, &err))
        return lp_core_error(L, fname, &pc, &err);
    lp_progress_end(L, &pc);
    return render_push(L, p, oo, fname, m->path, t0);
}

/* Adapters to one signature. */
static pare_status chart_spectrum(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    return pare_chart_spectrum(m, a, o, p, e);
}
static pare_status chart_spectra(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    return pare_chart_spectra_by_type(m, a, o, p, e);
}
static pare_status chart_energy(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    (void)a;
    return pare_chart_energy_ranks(m, o, p, e);
}
static pare_status chart_mask(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    return pare_chart_mask_heatmap(m, a, o, p, e);
}
static pare_status chart_channels(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    (void)a;
    return pare_chart_channel_map(m, o, p, e);
}
static pare_status chart_budget(pare_model *m, const char *a, const pare_chart_opts *o, pare_plot **p, pare_error *e)
{
    (void)a;
    return pare_chart_budget(m, o, p, e);
}

/* The matrix option, checked against the model now (so the error comes before any work). */
static const char *opt_matrix(lua_State *L, pare_model *m, const char *fname, char *label, size_t cap)
{
    const char *matrix = lp_opt_string(L, 2, "matrix", NULL, fname);
    if (!matrix)
        luaL_error(L, "pare.%s: option 'matrix' (a name or LAYER.TYPE such as \"0.q\") is required", fname);
    pare_linear *l;
    pare_error err = {0};
    if (pare_model_find_linear(m, matrix, &l, NULL, &err))
        lp_core_error(L, fname, NULL, &err);
    char short_label[128];
    pare_matrix_short_label(l->name, short_label, sizeof short_label);
    safe_name(short_label, label, cap);
    return matrix;
}

/* m:plot_spectrum{matrix = "0.q", calib = C, rank = K, path =, terminal =, ascii =, width =, height =, title =} */
static int l_plot_spectrum(lua_State *L)
{
    lp_enter(L, "m:plot_spectrum", 2);
    pare_model *m = lp_check_model(L, 1, "plot_spectrum");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"matrix", "calib", "rank", OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_spectrum", keys);
    char label[128], name[160];
    const char *matrix = opt_matrix(L, m, "plot_spectrum", label, sizeof label);
    pare_chart_opts co = {.calib = lp_opt_calib(L, 2, m, "plot_spectrum"),
                          .rank = (int)lp_opt_integer(L, 2, "rank", 0, 0, 1 << 30, "plot_spectrum")};
    snprintf(name, sizeof name, "spectrum_%s.png", label);
    out_opts oo;
    read_out(L, 2, "plot_spectrum", name, &oo);
    return model_chart(L, "plot_spectrum", chart_spectrum, matrix, &co, &oo);
}

/* m:plot_spectra{type = "q", weighting = "none"|"act"|"whiten", calib = C, ...output options} */
static int l_plot_spectra(lua_State *L)
{
    lp_enter(L, "m:plot_spectra", 2);
    pare_model *m = lp_check_model(L, 1, "plot_spectra");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"type", "weighting", "calib", OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_spectra", keys);
    const char *types[PARE_LIN_KINDS + 1] = {NULL}; /* NULL-terminated for lp_opt_choice */
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        types[k] = pare_lin_kinds[k].name;
    int t = lp_opt_choice(L, 2, "type", NULL, types, "plot_spectra");
    if (t < 0)
        return luaL_error(L, "pare.plot_spectra: option 'type' (q, k, v, o, gate, up or down) is required");
    pare_chart_opts co = {
        .weighting = (pare_weighting)lp_opt_choice(L, 2, "weighting", "none", PARE_WEIGHTING_NAMES, "plot_spectra"),
        .calib = lp_opt_calib(L, 2, m, "plot_spectra")};
    if (co.weighting != PARE_WEIGHT_NONE && !co.calib)
        return luaL_error(L, "pare.plot_spectra: weighting %s needs calib = m:calibrate{data = FILE%s}",
                          PARE_WEIGHTING_NAMES[co.weighting], co.weighting == PARE_WEIGHT_WHITEN ? ", gram = true" : "");
    char name[64];
    snprintf(name, sizeof name, "spectra_%s.png", types[t]);
    out_opts oo;
    read_out(L, 2, "plot_spectra", name, &oo);
    return model_chart(L, "plot_spectra", chart_spectra, types[t], &co, &oo);
}

/* m:plot_energy_ranks{weighting =, calib =, ...output options} */
static int l_plot_energy_ranks(lua_State *L)
{
    lp_enter(L, "m:plot_energy_ranks", 2);
    pare_model *m = lp_check_model(L, 1, "plot_energy_ranks");
    static const char *const keys[] = {"weighting", "calib", OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_energy_ranks", keys);
    pare_chart_opts co = {.weighting = (pare_weighting)lp_opt_choice(L, 2, "weighting", "none", PARE_WEIGHTING_NAMES,
                                                                     "plot_energy_ranks"),
                          .calib = lp_opt_calib(L, 2, m, "plot_energy_ranks")};
    if (co.weighting != PARE_WEIGHT_NONE && !co.calib)
        return luaL_error(L, "pare.plot_energy_ranks: weighting %s needs calib = m:calibrate{data = FILE%s}",
                          PARE_WEIGHTING_NAMES[co.weighting], co.weighting == PARE_WEIGHT_WHITEN ? ", gram = true" : "");
    out_opts oo;
    read_out(L, 2, "plot_energy_ranks", "energy_ranks.png", &oo);
    return model_chart(L, "plot_energy_ranks", chart_energy, NULL, &co, &oo);
}

/* m:plot_mask{matrix = "0.q", tile = 8, ...output options} */
static int l_plot_mask(lua_State *L)
{
    lp_enter(L, "m:plot_mask", 2);
    pare_model *m = lp_check_model(L, 1, "plot_mask");
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"matrix", "tile", OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_mask", keys);
    char label[128], name[160];
    const char *matrix = opt_matrix(L, m, "plot_mask", label, sizeof label);
    pare_chart_opts co = {.tile = (int)lp_opt_integer(L, 2, "tile", 0, 0, 1 << 20, "plot_mask")};
    snprintf(name, sizeof name, "mask_%s.png", label);
    out_opts oo;
    read_out(L, 2, "plot_mask", name, &oo);
    return model_chart(L, "plot_mask", chart_mask, matrix, &co, &oo);
}

/* m:plot_channels{...output options} */
static int l_plot_channels(lua_State *L)
{
    lp_enter(L, "m:plot_channels", 2);
    lp_check_model(L, 1, "plot_channels");
    static const char *const keys[] = {OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_channels", keys);
    pare_chart_opts co = {0};
    out_opts oo;
    read_out(L, 2, "plot_channels", "channels.png", &oo);
    return model_chart(L, "plot_channels", chart_channels, NULL, &co, &oo);
}

/* m:plot_budget{...output options} */
static int l_plot_budget(lua_State *L)
{
    lp_enter(L, "m:plot_budget", 2);
    lp_check_model(L, 1, "plot_budget");
    static const char *const keys[] = {OUT_KEYS, NULL};
    lp_check_keys(L, 2, "plot_budget", keys);
    pare_chart_opts co = {0};
    out_opts oo;
    read_out(L, 2, "plot_budget", "budget.png", &oo);
    return model_chart(L, "plot_budget", chart_budget, NULL, &co, &oo);
}

/* pare.plot_size_quality(rows, {convention = "block"|"total", metric = "ppl FILE", log_x =, log_y =,
 * reference = "dense", x_label =, y_label =, ...output options}): rows are {series =, params =, value =}
 * or result rows as pare.results() gives them (method, params under both conventions, metrics). */
static int l_plot_size_quality(lua_State *L)
{
    static const char *const fname = "plot_size_quality";
    lp_enter(L, "pare.plot_size_quality", 2); /* keeps the rows' series names referenced */
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"convention", "metric",  "log_x",  "log_y", "reference",
                                       "x_label",    "y_label", OUT_KEYS, NULL};
    lp_check_keys(L, 2, fname, keys);
    static const char *const CONVENTIONS[] = {"block", "total", NULL};
    int conv = lp_opt_choice(L, 2, "convention", "block", CONVENTIONS, fname);
    const char *want = lp_opt_string(L, 2, "metric", NULL, fname);
    pare_sq_opts so = {.log_x = lp_opt_bool(L, 2, "log_x", 0, fname),
                       .log_y = lp_opt_bool(L, 2, "log_y", 0, fname),
                       .reference = lp_opt_string(L, 2, "reference", "dense", fname),
                       .x_label = lp_opt_string(L, 2, "x_label",
                                                runplot_convention_label(conv ? RUNPLOT_TOTAL : RUNPLOT_BLOCK), fname)};
    const char *y_label = lp_opt_string(L, 2, "y_label", NULL, fname);
    out_opts oo;
    read_out(L, 2, fname, "size_quality.png", &oo);
    lua_Integer n = luaL_len(L, 1);
    pare_sq_point *pts = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *pts, 0);
    char metric[512] = "";
    if (want)
        snprintf(metric, sizeof metric, "%s", want);
    int count = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        int top = lua_gettop(L);
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE)
            return luaL_error(L, "pare.%s: row %d is a %s, not a table", fname, (int)i, luaL_typename(L, -1));
        int row = lua_gettop(L);
        if (lua_getfield(L, row, "metrics") == LUA_TTABLE) { /* a result row */
            int mets = lua_gettop(L);
            lua_getfield(L, row, "method");
            const char *series = lua_tostring(L, -1);
            lua_getfield(L, row, "params");
            lua_getfield(L, -1, conv ? "total" : "block_linear");
            int ok;
            double params = lua_tonumberx(L, -1, &ok);
            if (!ok || !series)
                return luaL_error(L, "pare.%s: result row %d has no method or parameter count", fname, (int)i);
            lua_Integer nm = luaL_len(L, mets);
            for (lua_Integer k = 1; k <= nm; k++) {
                lua_rawgeti(L, mets, k);
                lua_getfield(L, -1, "name");
                lua_getfield(L, -2, "data");
                lua_getfield(L, -3, "value");
                const char *mname = lua_tostring(L, -3), *mdata = lua_tostring(L, -2);
                if (!metric[0] && mname)
                    runplot_metric_key(mname, mdata, metric, sizeof metric);
                if (runplot_metric_matches(mname, mdata, metric) && lua_isnumber(L, -1)) {
                    pts[count++] = (pare_sq_point){series, params, lua_tonumber(L, -1)};
                    lua_pop(L, 4);
                    break;
                }
                lua_pop(L, 4);
            }
        } else { /* a plain point; series names stay alive in the rows table */
            lua_getfield(L, row, "series");
            lua_getfield(L, row, "params");
            lua_getfield(L, row, "value");
            int okp, okv;
            double params = lua_tonumberx(L, -2, &okp), value = lua_tonumberx(L, -1, &okv);
            if (!lua_isstring(L, -3) || !okp || !okv)
                return luaL_error(L,
                                  "pare.%s: row %d: expected {series = NAME, params = N, value = V} or a result row "
                                  "of pare.results()",
                                  fname, (int)i);
            pts[count++] = (pare_sq_point){lua_tostring(L, -3), params, value};
        }
        lua_settop(L, top);
    }
    if (count == 0)
        return luaL_error(L, "pare.%s: no row has %s%s%s", fname, metric[0] ? "the metric '" : "a metric", metric,
                          metric[0] ? "'" : "");
    so.y_label = y_label ? y_label : metric[0] ? metric : "value";
    double t0 = lp_now();
    pare_plot *p = NULL;
    pare_error err = {0};
    if (pare_chart_size_quality(pts, count, &so, &p, &err))
        return lp_core_error(L, fname, NULL, &err);
    /* the strings the points name live on the stack, below what render_push pushes */
    return render_push(L, p, &oo, fname, "pare.plot_size_quality", t0);
}

const luaL_Reg lp_plot_methods[] = {{"plot_spectrum", l_plot_spectrum},
                                    {"plot_spectra", l_plot_spectra},
                                    {"plot_energy_ranks", l_plot_energy_ranks},
                                    {"plot_mask", l_plot_mask},
                                    {"plot_channels", l_plot_channels},
                                    {"plot_budget", l_plot_budget},
                                    {NULL, NULL}};
const luaL_Reg lp_plot_funcs[] = {{"plot_size_quality", l_plot_size_quality}, {NULL, NULL}};

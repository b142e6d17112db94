/* The charts of a model and of runs (see charts.h): each builds a pare_plot from spectra, masks,
 * channel maps, budgets or size/quality points, reusing the spectrum code and the plot description. */
#include "charts.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- naming block matrices */

int pare_matrix_name_parse(const char *name, int *layer, pare_lin_kind *type)
{
    if (!name)
        return 0;
    /* the layer follows "layers." (LLaMA) or "h." at the start or after a dot (GPT-2) */
    const char *p = strstr(name, "layers.");
    if (p)
        p += strlen("layers.");
    else if (!strncmp(name, "h.", 2))
        p = name + 2;
    else if ((p = strstr(name, ".h.")))
        p += 3;
    if (!p || !isdigit((unsigned char)*p))
        return 0;
    int l = (int)strtol(p, NULL, 10);
    int k = pare_lin_kind_of_hf_name(name);
    if (k < 0)
        return 0;
    if (layer)
        *layer = l;
    if (type)
        *type = (pare_lin_kind)k;
    return 1;
}

void pare_matrix_short_label(const char *name, char *buf, size_t cap)
{
    int l;
    pare_lin_kind t;
    if (pare_matrix_name_parse(name, &l, &t))
        snprintf(buf, cap, "%d.%s", l, pare_lin_kinds[t].name);
    else
        snprintf(buf, cap, "%s", name ? name : "?");
}

/* The linear of type t in block b (NULL when the architecture has none, e.g. GPT-2's gate). */
static pare_linear *block_linear(pare_block *b, int t)
{
    return t >= 0 && t < PARE_LIN_KINDS && b->lin[t].out ? &b->lin[t] : NULL;
}

pare_status pare_model_find_linear(pare_model *m, const char *name, pare_linear **out, int *layer, pare_error *err)
{
    *out = NULL;
    if (!name || !*name)
        return pare_fail(err, PARE_EINVAL, "no matrix given (a name such as %s, or LAYER.TYPE such as 0.q)",
                         m->cfg.n_layers ? m->blocks[0].q.name : "?");
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int t = 0; t < PARE_LIN_KINDS; t++) {
            pare_linear *lin = block_linear(&m->blocks[l], t);
            if (lin && !strcmp(lin->name, name)) {
                *out = lin;
                if (layer)
                    *layer = l;
                return PARE_OK;
            }
        }
    /* LAYER.TYPE */
    char *end;
    long l = strtol(name, &end, 10);
    if (end != name && *end == '.' && isdigit((unsigned char)name[0]) && l >= 0 && l < m->cfg.n_layers) {
        pare_linear *lin = block_linear(&m->blocks[l], pare_lin_kind_find(end + 1));
        if (lin) {
            *out = lin;
            if (layer)
                *layer = (int)l;
            return PARE_OK;
        }
    }
    int L = m->cfg.n_layers;
    pare_block *last = L ? &m->blocks[L - 1] : NULL;
    char types[128] = "";
    for (int t = 0, n = 0; t < PARE_LIN_KINDS && L; t++)
        if (block_linear(&m->blocks[0], t))
            n += snprintf(types + n, sizeof types - (size_t)n, "%s%s", n ? ", " : "", pare_lin_kinds[t].name);
    return pare_fail(err, PARE_EINVAL,
                     "matrix '%s': %s has no block matrix of that name (e.g. %s, %s, %s; or LAYER.TYPE such as 0.q, "
                     "with layers 0-%d and types %s)",
                     name, m->path, L ? m->blocks[0].q.name : "?", L ? m->blocks[0].down.name : "?",
                     last ? last->o.name : "?", L - 1, types);
}

/* ---------------------------------------------------------------- small helpers */

/* 1234567 -> "1.23M": parameter counts in titles. */
static void fmt_count(double v, char *buf, size_t cap)
{
    double a = fabs(v);
    if (a >= 1e9)
        snprintf(buf, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6)
        snprintf(buf, cap, "%.3gM", v / 1e6);
    else if (a >= 1e3)
        snprintf(buf, cap, "%.3gk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

static pare_status new_plot(const pare_plot_opts *po, pare_plot **out, pare_error *err)
{
    *out = NULL;
    return pare_plot_create(po, out, err);
}

/* Finishes a chart: on failure the plot is destroyed and *out cleared. */
static pare_status finish(pare_status st, pare_plot *p, pare_plot **out)
{
    if (st) {
        pare_plot_destroy(p);
        *out = NULL;
    } else {
        *out = p;
    }
    return st;
}

static const pare_chart_opts *opts_or_default(const pare_chart_opts *o)
{
    static const pare_chart_opts none = {0};
    return o ? o : &none;
}

static const char *const WEIGHTING_LABEL[] = {"plain", "activation-weighted", "whitened"};

/* The statistics of l's input in cs (NULL when cs is NULL or has none). */
static const pare_input_stats *input_stats(pare_model *m, const pare_calib_stats *cs, int layer, const pare_linear *l)
{
    if (!cs || layer < 0 || layer >= cs->n_layers || cs->n_layers != m->cfg.n_layers)
        return NULL;
    int site = pare_linear_site(&m->blocks[layer], l);
    return site >= 0 ? &cs->sites[layer][site] : NULL;
}

/* The spectrum of l weighted by w into s[min(out, in)]. */
static pare_status weighted_spectrum(pare_model *m, const pare_calib_stats *cs, const pare_linear *l, pare_weighting w,
                                     double *s, pare_error *err)
{
    pare_matrix_spectrum ms;
    pare_status st = pare_matrix_spectrum_compute(m, cs, l, w, NULL, &ms, err);
    if (!st)
        memcpy(s, ms.s, (size_t)ms.stats.r * sizeof *s);
    pare_matrix_spectrum_clear(&ms);
    return st;
}

/* ---------------------------------------------------------------- 1. spectrum of one matrix */

pare_status pare_chart_spectrum(pare_model *m, const char *matrix, const pare_chart_opts *o, pare_plot **out,
                                pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    pare_linear *l;
    int layer;
    pare_status st = pare_model_find_linear(m, matrix, &l, &layer, err);
    if (st)
        return st;
    int r = l->out < l->in ? l->out : l->in;
    /* a rank-k product has k non-zero values; the rest are rounding noise around 0 */
    int shown = l->kind == PARE_LIN_FACTORED && l->rank < r ? l->rank : r;
    int rank = o->rank > 0 ? o->rank : o->rank == 0 && l->kind == PARE_LIN_FACTORED ? l->rank : 0;
    if (rank > r)
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) = %d for %s", rank, l->out, l->in, r, l->name);
    /* which curves: plain always; weighted ones as far as the statistics go */
    int curves[3] = {1, 0, 0};
    const pare_input_stats *is = input_stats(m, o->calib, layer, l);
    if (o->calib && !is)
        return pare_fail(err, PARE_EINVAL, "%s: the calibration statistics do not cover its layer %d", l->name, layer);
    if (is && is->sumsq)
        curves[PARE_WEIGHT_ACT] = 1;
    /* a Gram matrix taken before the input was sliced no longer matches it: no whitened curve then */
    if (is && is->gram && is->dim == l->in)
        curves[PARE_WEIGHT_WHITEN] = 1;
    double *s = malloc((size_t)r * sizeof *s), *x = malloc((size_t)shown * sizeof *x),
           *y = malloc((size_t)shown * sizeof *y), *e = malloc((size_t)shown * sizeof *e);
    pare_plot *p = NULL;
    if (!s || !x || !y || !e) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for its spectrum chart", l->name);
        goto done;
    }
    char title[256];
    snprintf(title, sizeof title, "%s (%d x %d%s)", l->name, l->out, l->in,
             l->kind == PARE_LIN_FACTORED ? ", factorized"
             : l->kind == PARE_LIN_MASKED ? ", masked"
                                          : "");
    pare_plot_opts po = {.title = o->title ? o->title : title,
                         .x = {.label = "index i"},
                         .y = {.label = "s_i / s_1", .scale = PARE_SCALE_LOG},
                         .y2 = {.label = "cumulative energy (dashed)", .min = 0, .max = 1}};
    if ((st = new_plot(&po, &p, err)))
        goto done;
    for (int i = 0; i < shown; i++)
        x[i] = i + 1;
    for (int w = 0; w < 3 && !st; w++) {
        if (!curves[w])
            continue;
        if ((st = weighted_spectrum(m, o->calib, l, (pare_weighting)w, s, err)))
            break;
        if (!(s[0] > 0)) {
            st = pare_fail(err, PARE_EINVAL, "%s: every %s singular value is 0: nothing to show on a log axis", l->name,
                           WEIGHTING_LABEL[w]);
            break;
        }
        for (int i = 0; i < shown; i++)
            y[i] = s[i] > 0 ? s[i] / s[0] : NAN;
        pare_spectrum_energy(s, shown, e);
        pare_rgba c = pare_palette_color(w);
        st = pare_plot_add(
            p,
            &(pare_series){.kind = PARE_SERIES_LINE, .name = WEIGHTING_LABEL[w], .x = x, .y = y, .n = shown, .color = c},
            err);
        if (!st)
            st = pare_plot_add(
                p,
                &(pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = e, .n = shown, .on_y2 = 1, .dashed = 1, .color = c},
                err);
    }
    char name[64];
    if (!st && rank > 0) {
        snprintf(name, sizeof name, "rank %d", rank);
        st = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_VLINE, .name = name, .value = rank}, err);
    }
    if (!st) {
        int be = pare_break_even_rank(l->out, l->in);
        snprintf(name, sizeof name, "break-even %d", be);
        st = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_VLINE, .name = name, .value = be, .dashed = 1}, err);
    }
done:
    free(s), free(x), free(y), free(e);
    return finish(st, p, out);
}

/* ---------------------------------------------------------------- 2. spectra of one type */

pare_status pare_chart_spectra_by_type(pare_model *m, const char *type, const pare_chart_opts *o, pare_plot **out,
                                       pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    int t = pare_lin_kind_find(type);
    if (t < 0)
        return pare_fail(err, PARE_EINVAL, "matrix type '%s': expected q, k, v, o, gate, up or down", type ? type : "");
    int L = m->cfg.n_layers;
    for (int l = 0; l < L; l++)
        if (!block_linear(&m->blocks[l], t))
            return pare_fail(err, PARE_EINVAL, "%s has no %s matrices in layer %d (%s)", m->path, type, l,
                             pare_arch_name(m->cfg.arch));
    if ((unsigned)o->weighting > PARE_WEIGHT_WHITEN)
        return pare_fail(err, PARE_EINVAL, "weighting %d: expected none, act or whiten", (int)o->weighting);
    char title[160];
    snprintf(title, sizeof title, "%s spectra across %d layers (%s)", type, L, WEIGHTING_LABEL[o->weighting]);
    pare_plot_opts po = {.title = o->title ? o->title : title,
                         .x = {.label = "index i"},
                         .y = {.label = "s_i / s_1", .scale = PARE_SCALE_LOG}};
    pare_plot *p = NULL;
    pare_status st = new_plot(&po, &p, err);
    if (st)
        return st;
    int cap = 0;
    for (int l = 0; l < L; l++) {
        const pare_linear *lin = block_linear(&m->blocks[l], t);
        int r = lin->out < lin->in ? lin->out : lin->in;
        cap = r > cap ? r : cap;
    }
    double *s = malloc((size_t)(cap ? cap : 1) * sizeof *s), *x = malloc((size_t)(cap ? cap : 1) * sizeof *x);
    if (!s || !x)
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the %s spectra", type);
    for (int i = 0; i < cap && !st; i++)
        x[i] = i + 1;
    if (!st)
        st = pare_report(o->progress, "spectra", 0.0, "", err);
    for (int l = 0; l < L && !st; l++) {
        const pare_linear *lin = block_linear(&m->blocks[l], t);
        int r = lin->out < lin->in ? lin->out : lin->in;
        if ((st = weighted_spectrum(m, o->calib, lin, o->weighting, s, err)))
            break;
        double s1 = s[0];
        for (int i = 0; i < r; i++)
            s[i] = s[i] > 0 && s1 > 0 ? s[i] / s1 : NAN;
        char name[32];
        snprintf(name, sizeof name, "layer %d", l);
        /* with many layers the legend names only the ends of the colour ramp */
        int named = L <= 8 || l == 0 || l == L - 1;
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_LINE,
                                          .name = named ? name : NULL,
                                          .x = x,
                                          .y = s,
                                          .n = r,
                                          .color = pare_colormap_sequential(L > 1 ? 0.8 * l / (L - 1) : 0)},
                           err);
        if (!st)
            st = pare_report(o->progress, "spectra", (double)(l + 1) / L, lin->name, err);
    }
    free(s), free(x);
    return finish(st, p, out);
}

/* ---------------------------------------------------------------- 3. energy ranks */

pare_status pare_chart_energy_ranks(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    if ((unsigned)o->weighting > PARE_WEIGHT_WHITEN)
        return pare_fail(err, PARE_EINVAL, "weighting %d: expected none, act or whiten", (int)o->weighting);
    pare_model_spectra *sp = NULL;
    pare_status st = pare_model_spectra_weighted(m, o->calib, o->weighting, o->progress, &sp, err);
    if (st)
        return st;
    int n = sp->count;
    pare_linear **lin = malloc((size_t)n * sizeof *lin);
    int *order = malloc((size_t)n * sizeof *order);
    double *y[3], *be = malloc((size_t)n * sizeof *be);
    char **labels = calloc((size_t)n, sizeof *labels);
    for (int k = 0; k < 3; k++)
        y[k] = malloc((size_t)n * sizeof *y[k]);
    pare_plot *p = NULL;
    if (!lin || !order || !be || !labels || !y[0] || !y[1] || !y[2]) {
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the energy-rank chart");
        goto done;
    }
    pare_model_linears(m, lin, n);
    /* type-major order, so that the attention and FFN matrices form blocks on the axis */
    int j = 0;
    for (int t = 0; t < PARE_LIN_KINDS; t++)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            pare_linear *want = block_linear(&m->blocks[l], t);
            for (int i = 0; want && i < n; i++)
                if (lin[i] == want && j < n)
                    order[j++] = i;
        }
    static const double THRESHOLDS[3] = {0.90, 0.95, 0.99};
    double attn = 0, ffn = 0;
    int n_attn = 0, n_ffn = 0;
    for (int c = 0; c < j; c++) {
        const pare_matrix_spectrum *ms = &sp->mats[order[c]];
        int r = ms->stats.r;
        for (int k = 0; k < 3; k++)
            y[k][c] = (double)pare_spectrum_energy_rank(ms->s, r, THRESHOLDS[k]) / r;
        be[c] = (double)ms->stats.break_even / r;
        char buf[128];
        pare_matrix_short_label(ms->name, buf, sizeof buf);
        if (!(labels[c] = strdup(buf))) {
            st = pare_fail(err, PARE_ENOMEM, "out of memory for the energy-rank chart");
            goto done;
        }
        int layer;
        pare_lin_kind t;
        if (pare_matrix_name_parse(ms->name, &layer, &t)) {
            if (!pare_lin_kinds[t].ffn)
                attn += y[0][c], n_attn++;
            else
                ffn += y[0][c], n_ffn++;
        }
    }
    char title[256];
    snprintf(title, sizeof title, "rank for 90/95/99%% %s energy / full rank: mean at 90%%: attention %.2f, FFN %.2f",
             o->weighting == PARE_WEIGHT_NONE ? "spectral" : WEIGHTING_LABEL[o->weighting],
             n_attn ? attn / n_attn : NAN, n_ffn ? ffn / n_ffn : NAN);
    pare_plot_opts po = {.title = o->title ? o->title : title,
                         .x = {.label = "matrix (layer.type)"},
                         .y = {.label = "rank / min(out, in)", .min = 0, .max = 1.2}}; /* room for the legend */
    if ((st = new_plot(&po, &p, err)))
        goto done;
    static const char *const NAMES[3] = {"90%", "95%", "99%"};
    for (int k = 0; k < 3 && !st; k++)
        st = pare_plot_add(
            p,
            &(pare_series){
                .kind = PARE_SERIES_BARS, .name = NAMES[k], .y = y[k], .n = j, .labels = (const char *const *)labels},
            err);
    double *bx = malloc((size_t)(j ? j : 1) * sizeof *bx);
    if (!st && !bx)
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the energy-rank chart");
    for (int c = 0; !st && c < j; c++)
        bx[c] = c;
    if (!st)
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_MARKERS,
                                          .name = "break-even",
                                          .x = bx,
                                          .y = be,
                                          .n = j,
                                          .marker = PARE_MARKER_CROSS,
                                          .color = {40, 40, 40, 255}},
                           err);
    free(bx);
done:
    if (labels)
        for (int c = 0; c < n; c++)
            free(labels[c]);
    free(labels);
    for (int k = 0; k < 3; k++)
        free(y[k]);
    free(be), free(order), free(lin);
    pare_model_spectra_free(sp);
    return finish(st, p, out);
}

/* ---------------------------------------------------------------- 4. masks and channels */

int pare_chart_auto_tile(int out, int in)
{
    int longer = out > in ? out : in;
    int tile = (longer + 63) / 64;
    return tile > 0 ? tile : 1;
}

/* "0", "8", "16", ...: the first index of each tile, as axis labels (NULL on failure). */
static char **tile_labels(int count, int tile)
{
    char **v = calloc((size_t)(count ? count : 1), sizeof *v);
    for (int i = 0; v && i < count; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", i * tile);
        if (!(v[i] = strdup(buf))) {
            for (int k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return NULL;
        }
    }
    return v;
}

static void free_labels(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

pare_status pare_chart_mask_heatmap(pare_model *m, const char *matrix, const pare_chart_opts *o, pare_plot **out,
                                    pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    pare_linear *l;
    pare_status st = pare_model_find_linear(m, matrix, &l, NULL, err);
    if (st)
        return st;
    if (l->kind == PARE_LIN_FACTORED)
        return pare_fail(err, PARE_EINVAL, "%s is factorized (A B, rank %d): it has no mask to show", l->name, l->rank);
    if (o->tile < 0)
        return pare_fail(err, PARE_EINVAL, "tile %d: give a tile edge of at least 1 weight (0: automatic)", o->tile);
    int tile = o->tile > 0 ? o->tile : pare_chart_auto_tile(l->out, l->in);
    int rows = (l->out + tile - 1) / tile, cols = (l->in + tile - 1) / tile;
    double *z = calloc((size_t)rows * cols, sizeof *z);
    size_t *cnt = calloc((size_t)rows * cols, sizeof *cnt);
    char **rl = tile_labels(rows, tile), **cl = tile_labels(cols, tile);
    pare_plot *p = NULL;
    if (!z || !cnt || !rl || !cl) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for its mask chart", l->name);
        goto done;
    }
    size_t kept = 0;
    if (l->layer >= 0 && (st = pare_block_acquire(m, l->layer, err)))
        goto done;
    for (int i = 0; i < l->out; i++)
        for (int k = 0; k < l->in; k++) {
            size_t at = (size_t)i * l->in + k;
            /* a dense matrix shows its non-zero weights: a pruned model exported dense keeps its zeros */
            int on = l->kind == PARE_LIN_MASKED ? l->mask[at] != 0 : l->w[at] != 0;
            size_t cell = (size_t)(i / tile) * cols + (size_t)(k / tile);
            z[cell] += on;
            cnt[cell]++;
            kept += (size_t)on;
        }
    if (l->layer >= 0)
        pare_block_release(m, l->layer);
    for (size_t c = 0; c < (size_t)rows * cols; c++)
        z[c] /= (double)cnt[c];
    char title[256];
    snprintf(title, sizeof title, "%s: %s density per %dx%d tile (%.1f%% kept)", l->name,
             l->kind == PARE_LIN_MASKED ? "mask" : "non-zero", tile, tile,
             100.0 * (double)kept / ((double)l->out * l->in));
    pare_plot_opts po = {.title = o->title ? o->title : title,
                         .x = {.label = "input channel"},
                         .y = {.label = "output channel", .inverted = 1},
                         .legend = PARE_LEGEND_NONE,
                         .hide_grid = 1};
    if (!(st = new_plot(&po, &p, err)))
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_HEATMAP,
                                          .name = "density",
                                          .z = z,
                                          .rows = rows,
                                          .cols = cols,
                                          .labels = (const char *const *)cl,
                                          .row_labels = (const char *const *)rl,
                                          .zmin = 0,
                                          .zmax = 1},
                           err);
done:
    free(z), free(cnt);
    free_labels(rl, rows);
    free_labels(cl, cols);
    return finish(st, p, out);
}

pare_status pare_chart_channel_map(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    int L = m->cfg.n_layers, F = 0;
    for (int l = 0; l < L; l++)
        F = m->blocks[l].up.orig_out > F ? m->blocks[l].up.orig_out : F;
    if (L < 1 || F < 1)
        return pare_fail(err, PARE_EINVAL, "%s has no FFN channels to show", m->path);
    double *z = malloc((size_t)L * F * sizeof *z);
    char **rl = tile_labels(L, 1);
    pare_plot *p = NULL;
    pare_status st = PARE_OK;
    if (!z || !rl) {
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the channel map");
        goto done;
    }
    size_t kept = 0, all = 0;
    for (int l = 0; l < L; l++) {
        const pare_linear *up = &m->blocks[l].up;
        double *row = z + (size_t)l * F;
        for (int c = 0; c < F; c++)
            row[c] = c < up->orig_out ? 0 : NAN; /* a narrower layer leaves its missing channels blank */
        for (int c = 0; c < up->out; c++) {
            int orig = up->kept_out ? up->kept_out[c] : c;
            if (orig >= 0 && orig < F)
                row[orig] = 1;
        }
        kept += (size_t)up->out;
        all += (size_t)up->orig_out;
    }
    char title[256];
    snprintf(title, sizeof title, "FFN channels kept per layer: %zu of %zu (%.1f%%)", kept, all,
             100.0 * (double)kept / (double)all);
    pare_plot_opts po = {.title = o->title ? o->title : title,
                         .x = {.label = "FFN channel (as loaded)"},
                         .y = {.label = "layer", .inverted = 1},
                         .legend = PARE_LEGEND_NONE,
                         .hide_grid = 1};
    if (!(st = new_plot(&po, &p, err)))
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_HEATMAP,
                                          .name = "kept",
                                          .z = z,
                                          .rows = L,
                                          .cols = F,
                                          .row_labels = (const char *const *)rl,
                                          .zmin = 0,
                                          .zmax = 1},
                           err);
done:
    free(z);
    free_labels(rl, L);
    return finish(st, p, out);
}

/* ---------------------------------------------------------------- 5. budget */

const char *pare_linear_budget_kind(const pare_linear *l)
{
    if (l->kind == PARE_LIN_FACTORED)
        return "factorized";
    if (l->kind == PARE_LIN_MASKED)
        return "masked";
    if (l->out < l->orig_out || l->in < l->orig_in)
        return "sliced";
    return "dense";
}

pare_status pare_model_budget_items(pare_model *m, pare_budget_item **items, int *n, pare_error *err)
{
    *items = NULL;
    *n = 0;
    int count = pare_model_linears(m, NULL, 0);
    pare_linear **lin = malloc((size_t)(count ? count : 1) * sizeof *lin);
    pare_budget_item *it = malloc((size_t)(count ? count : 1) * sizeof *it);
    if (!lin || !it) {
        free(lin), free(it);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the budget of %s", m->path);
    }
    pare_model_linears(m, lin, count);
    for (int i = 0; i < count; i++) {
        const pare_linear *l = lin[i];
        it[i] = (pare_budget_item){.name = l->name,
                                   .kind = pare_linear_budget_kind(l),
                                   .dense = (double)l->orig_out * l->orig_in + (l->b ? l->orig_out : 0),
                                   .kept = (double)pare_linear_params(l)};
    }
    free(lin);
    *items = it;
    *n = count;
    return PARE_OK;
}

pare_status pare_chart_budget_items(const pare_budget_item *items, int n, const char *what, pare_plot **out,
                                    pare_error *err)
{
    *out = NULL;
    if (n < 1)
        return pare_fail(err, PARE_EINVAL, "budget chart: no matrices");
    /* the kinds present, known ones first in a fixed order so their colours stay the same */
    static const char *const KNOWN[] = {"dense", "factorized", "masked", "sliced"};
    static const int KNOWN_COLOR[] = {5, 0, 1, 2}; /* sky blue, blue, vermillion, bluish green */
    const char **kinds = malloc((size_t)(n + 4) * sizeof *kinds);
    double *y = malloc((size_t)n * sizeof *y), *removed = malloc((size_t)n * sizeof *removed);
    char **labels = calloc((size_t)n, sizeof *labels);
    pare_plot *p = NULL;
    pare_status st = PARE_OK;
    if (!kinds || !y || !removed || !labels) {
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the budget chart");
        goto done;
    }
    int nk = 0;
    for (int k = 0; k < 4; k++)
        kinds[nk++] = KNOWN[k];
    for (int i = 0; i < n; i++) {
        const char *kd = items[i].kind ? items[i].kind : "dense";
        int seen = 0;
        for (int k = 0; k < nk && !seen; k++)
            seen = !strcmp(kinds[k], kd);
        if (!seen)
            kinds[nk++] = kd;
    }
    double dense = 0, kept = 0;
    int any_removed = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(items[i].dense) || !isfinite(items[i].kept) || items[i].dense < 0 || items[i].kept < 0) {
            st = pare_fail(err, PARE_EINVAL, "budget chart: matrix %s has dense %g and kept %g parameters",
                           items[i].name ? items[i].name : "?", items[i].dense, items[i].kept);
            goto done;
        }
        char buf[128];
        pare_matrix_short_label(items[i].name, buf, sizeof buf);
        if (!(labels[i] = strdup(buf))) {
            st = pare_fail(err, PARE_ENOMEM, "out of memory for the budget chart");
            goto done;
        }
        /* nothing removed (or a factorization above break-even that grew the matrix): no grey bar */
        removed[i] = items[i].dense > items[i].kept ? items[i].dense - items[i].kept : NAN;
        any_removed |= items[i].dense > items[i].kept;
        dense += items[i].dense;
        kept += items[i].kept;
    }
    char dense_s[32], kept_s[32], deftitle[256];
    fmt_count(dense, dense_s, sizeof dense_s);
    fmt_count(kept, kept_s, sizeof kept_s);
    snprintf(deftitle, sizeof deftitle, "%s%sparameters kept per matrix: %s of %s (%.1f%%)", what ? what : "",
             what ? ": " : "", kept_s, dense_s, dense > 0 ? 100 * kept / dense : 0);
    pare_plot_opts po = {.title = deftitle,
                         .x = {.label = "matrix (layer.type)"},
                         .y = {.label = "parameters"},
                         .bars = PARE_BARS_STACKED};
    if ((st = new_plot(&po, &p, err)))
        goto done;
    for (int k = 0; k < nk && !st; k++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            int match = !strcmp(items[i].kind ? items[i].kind : "dense", kinds[k]);
            y[i] = match ? items[i].kept : NAN;
            any |= match;
        }
        if (!any)
            continue;
        pare_rgba c = pare_palette_color(k < 4 ? KNOWN_COLOR[k] : 3 + (k - 4) % 2);
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_BARS,
                                          .name = kinds[k],
                                          .y = y,
                                          .n = n,
                                          .labels = (const char *const *)labels,
                                          .color = c},
                           err);
    }
    if (!st && any_removed)
        st = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_BARS,
                                          .name = "removed",
                                          .y = removed,
                                          .n = n,
                                          .labels = (const char *const *)labels,
                                          .color = {205, 205, 205, 255}},
                           err);
done:
    free_labels(labels, labels ? n : 0);
    free(kinds), free(y), free(removed);
    return finish(st, p, out);
}

pare_status pare_chart_budget(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err)
{
    o = opts_or_default(o);
    *out = NULL;
    pare_budget_item *items;
    int n;
    pare_status st = pare_model_budget_items(m, &items, &n, err);
    if (st)
        return st;
    st = pare_chart_budget_items(items, n, NULL, out, err);
    free(items);
    if (!st && o->title) {
        pare_plot_opts po = *pare_plot_get_opts(*out);
        po.title = o->title;
        st = finish(pare_plot_set_opts(*out, &po, err), *out, out);
    }
    return st;
}

/* ---------------------------------------------------------------- 6. size against quality */

typedef struct {
    double x, y;
    int i;
} sq_pair;

static int cmp_pair(const void *a, const void *b)
{
    const sq_pair *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return p->i - q->i;
}

pare_status pare_chart_size_quality(const pare_sq_point *pts, int n, const pare_sq_opts *o, pare_plot **out,
                                    pare_error *err)
{
    static const pare_sq_opts none = {0};
    o = o ? o : &none;
    *out = NULL;
    if (n < 1 || !pts)
        return pare_fail(err, PARE_EINVAL, "size-quality chart: no points (no result with a metric)");
    for (int i = 0; i < n; i++)
        if (!isfinite(pts[i].params) || !isfinite(pts[i].value))
            return pare_fail(err, PARE_EINVAL, "size-quality chart: point %d (series '%s') has params %g and value %g",
                             i, pts[i].series ? pts[i].series : "", pts[i].params, pts[i].value);
    pare_plot_opts po = {
        .title = o->title ? o->title : "size against quality",
        .x = {.label = o->x_label ? o->x_label : "parameters", .scale = o->log_x ? PARE_SCALE_LOG : PARE_SCALE_LINEAR},
        .y = {.label = o->y_label ? o->y_label : "value", .scale = o->log_y ? PARE_SCALE_LOG : PARE_SCALE_LINEAR}};
    pare_plot *p = NULL;
    pare_status st = new_plot(&po, &p, err);
    if (st)
        return st;
    sq_pair *pairs = malloc((size_t)n * sizeof *pairs);
    double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    if (!pairs || !x || !y)
        st = pare_fail(err, PARE_ENOMEM, "out of memory for the size-quality chart");
    double ref = NAN;
    for (int i = 0; i < n && !st; i++) {
        const char *name = pts[i].series ? pts[i].series : "";
        int first = 1;
        for (int k = 0; k < i && first; k++)
            first = strcmp(pts[k].series ? pts[k].series : "", name) != 0;
        if (!first)
            continue;
        int c = 0;
        for (int k = i; k < n; k++)
            if (!strcmp(pts[k].series ? pts[k].series : "", name))
                pairs[c++] = (sq_pair){pts[k].params, pts[k].value, k};
        qsort(pairs, (size_t)c, sizeof *pairs, cmp_pair);
        for (int k = 0; k < c; k++)
            x[k] = pairs[k].x, y[k] = pairs[k].y;
        if (o->reference && !strcmp(name, o->reference) && isnan(ref))
            ref = pts[i].value;
        st = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_LINE_MARKERS, .name = name, .x = x, .y = y, .n = c},
                           err);
    }
    if (!st && !isnan(ref)) {
        char label[128];
        snprintf(label, sizeof label, "%s %.4g", o->reference, ref);
        st = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_HLINE, .name = label, .value = ref, .dashed = 1}, err);
    }
    free(pairs), free(x), free(y);
    return finish(st, p, out);
}

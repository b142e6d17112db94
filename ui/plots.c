/* Plot descriptions of the workbench (see plots.h). */
#include "plots.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const TUI_PLOT_NAMES[TUI_PLOT_KINDS] = {"spectrum", "heatmap", "layers", "chart", "budget"};

static pare_status spectrum(const tui_state *st, pare_plot *p, pare_error *err)
{
    int w = st->weighting, i = st->sel;
    const pare_matrix_spectrum *ms = tui_state_spectrum(st, w, i);
    if (!ms)
        return pare_fail(err, PARE_EINVAL, "the %s spectr%s not computed yet", TUI_WEIGHTING_LABELS[w],
                         st->spectra_on_demand ? "um of this matrix is" : "a are");
    int r = ms->stats.r;
    double *x = malloc((size_t)r * sizeof *x), *y = malloc((size_t)r * sizeof *y), *e = malloc((size_t)r * sizeof *e);
    if (!x || !y || !e) {
        free(x), free(y), free(e);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the spectrum plot");
    }
    pare_spectrum_energy(ms->s, r, e);
    for (int j = 0; j < r; j++) {
        x[j] = j + 1;
        y[j] = ms->s[j] > 0 ? ms->s[j] : NAN; /* a log axis has no place for zeros: gaps */
    }
    char title[160], kl[32], bl[32];
    snprintf(title, sizeof title, "%s (%s)", ms->name, TUI_WEIGHTING_LABELS[w]);
    pare_plot_opts o = {.title = title,
                        .x = {.label = "index"},
                        .y = {.label = "singular value", .scale = PARE_SCALE_LOG},
                        .y2 = {.label = "energy", .min = 0, .max = 1}};
    pare_status rc = pare_plot_set_opts(p, &o, err);
    if (!rc)
        rc = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_LINE, .name = "s", .x = x, .y = y, .n = r}, err);
    if (!rc)
        rc = pare_plot_add(
            p,
            &(pare_series){.kind = PARE_SERIES_LINE, .name = "energy", .x = x, .y = e, .n = r, .on_y2 = 1, .dashed = 1},
            err);
    int k = st->cursor[i] < r ? st->cursor[i] : r;
    snprintf(kl, sizeof kl, "k %d", k);
    snprintf(bl, sizeof bl, "b-e %d", ms->stats.break_even);
    if (!rc)
        rc = pare_plot_add(
            p, &(pare_series){.kind = PARE_SERIES_VLINE, .name = kl, .value = k, .color = pare_palette_color(1)}, err);
    if (!rc && ms->stats.break_even >= 1)
        rc = pare_plot_add(
            p, &(pare_series){.kind = PARE_SERIES_VLINE, .name = bl, .value = ms->stats.break_even, .dashed = 1}, err);
    free(x), free(y), free(e);
    return rc;
}

static pare_status heatmap(const tui_state *st, pare_plot *p, pare_error *err)
{
    int L = st->model->cfg.n_layers, cols = 0, col_of[TUI_TYPES];
    int present[TUI_TYPES] = {0};
    for (int i = 0; i < st->n; i++)
        present[st->type[i]] = 1;
    const char *labels[TUI_TYPES];
    for (int t = 0; t < TUI_TYPES; t++) {
        col_of[t] = present[t] ? cols : -1;
        if (present[t])
            labels[cols++] = TUI_TYPE_NAME(t);
    }
    if (L < 1 || cols < 1)
        return pare_fail(err, PARE_EINVAL, "the model has no block matrices");
    double *z = malloc((size_t)L * cols * sizeof *z);
    char(*rl)[16] = malloc((size_t)L * sizeof *rl);
    const char **rows = malloc((size_t)L * sizeof *rows);
    if (!z || !rl || !rows) {
        free(z), free(rl), free(rows);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the heatmap");
    }
    for (int j = 0; j < L * cols; j++)
        z[j] = NAN;
    for (int l = 0; l < L; l++) {
        snprintf(rl[l], sizeof rl[l], "%d", l);
        rows[l] = rl[l];
    }
    for (int i = 0; i < st->n; i++) {
        const tui_decision *d = &st->dec[i];
        double dense = (double)st->lin[i]->orig_out * st->lin[i]->orig_in;
        z[st->layer[i] * cols + col_of[st->type[i]]] = dense > 0 ? (double)d->after / dense : NAN;
    }
    pare_plot_opts o = {
        .title = "parameters kept per matrix", .x = {.label = "matrix"}, .y = {.label = "layer", .inverted = 1}};
    pare_status rc = pare_plot_set_opts(p, &o, err);
    if (!rc)
        rc = pare_plot_add(p,
                           &(pare_series){.kind = PARE_SERIES_HEATMAP,
                                          .name = "kept",
                                          .z = z,
                                          .rows = L,
                                          .cols = cols,
                                          .labels = labels,
                                          .row_labels = rows,
                                          .zmin = 0,
                                          .zmax = 1},
                           err);
    free(z), free(rl), free(rows);
    return rc;
}

static pare_status layers(const tui_state *st, pare_plot *p, pare_error *err)
{
    int w = st->weighting;
    if (st->sel < 0 || !tui_state_spectrum(st, w, st->sel))
        return pare_fail(err, PARE_EINVAL, "the %s spectra are not computed yet", TUI_WEIGHTING_LABELS[w]);
    int t = st->type[st->sel], shown = 0, of = 0;
    for (int i = 0; i < st->n; i++)
        if (st->type[i] == t) {
            of++;
            shown += tui_state_spectrum(st, w, i) != NULL;
        }
    char title[96], part[48] = ""; /* a big model's: the layers whose spectrum was computed so far */
    if (shown < of)
        snprintf(part, sizeof part, ", %d of %d layers computed", shown, of);
    snprintf(title, sizeof title, "%s across layers (%s%s)", TUI_TYPE_NAME(t), TUI_WEIGHTING_LABELS[w], part);
    pare_plot_opts o = {.title = title, .x = {.label = "index"}, .y = {.label = "s / s1", .scale = PARE_SCALE_LOG}};
    if (st->model->cfg.n_layers > 8)
        o.legend = PARE_LEGEND_NONE;
    pare_status rc = pare_plot_set_opts(p, &o, err);
    for (int i = 0; i < st->n && !rc; i++) {
        const pare_matrix_spectrum *ms = tui_state_spectrum(st, w, i);
        if (st->type[i] != t || !ms)
            continue;
        int r = ms->stats.r;
        double *x = malloc((size_t)r * sizeof *x), *y = malloc((size_t)r * sizeof *y);
        if (!x || !y) {
            free(x), free(y);
            return pare_fail(err, PARE_ENOMEM, "out of memory for the layers plot");
        }
        for (int j = 0; j < r; j++) {
            x[j] = j + 1;
            y[j] = ms->s[0] > 0 && ms->s[j] > 0 ? ms->s[j] / ms->s[0] : NAN;
        }
        char name[16];
        snprintf(name, sizeof name, "L%d", st->layer[i]);
        rc = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_LINE, .name = name, .x = x, .y = y, .n = r}, err);
        free(x), free(y);
    }
    return rc;
}

static int by_params(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Size against the chart's metric (perplexity, or a zero-shot accuracy), one line per method, the
 * dense row as a reference line; rows without the metric are left out. */
static pare_status chart(const tui_state *st, pare_plot *p, pare_error *err)
{
    if (st->n_res == 0)
        return pare_fail(err, PARE_EINVAL, "no results yet: e evaluates the configuration");
    tui_metric met = (tui_metric)st->chart_metric;
    const char *mname = TUI_METRIC_NAMES[met];
    char title[96], ylab[96];
    const char *task = "";
    for (int i = 0; i < st->n_res && met != TUI_METRIC_PPL; i++)
        if (st->res[i].task[0])
            task = st->res[i].task;
    snprintf(title, sizeof title, "size against %s%s%s", mname, task[0] ? " on " : "", task);
    snprintf(ylab, sizeof ylab, "%s%s%s", mname, task[0] ? " " : "", task);
    pare_plot_opts o = {.title = title,
                        .x = {.label = "parameters"},
                        .y = {.label = ylab, .scale = met == TUI_METRIC_PPL ? PARE_SCALE_LOG : PARE_SCALE_LINEAR}};
    pare_status rc = pare_plot_set_opts(p, &o, err);
    double *xy = malloc((size_t)st->n_res * 2 * sizeof *xy), *x = malloc((size_t)st->n_res * sizeof *x),
           *y = malloc((size_t)st->n_res * sizeof *y);
    unsigned char *seen = calloc((size_t)st->n_res, 1);
    if (!xy || !x || !y || !seen) {
        free(xy), free(x), free(y), free(seen);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the chart");
    }
    for (int i = 0; i < st->n_res; i++) /* rows without the metric are not drawn */
        seen[i] = !isfinite(tui_result_metric(&st->res[i], met));
    double dense = NAN;
    int lines = 0;
    for (int i = 0; i < st->n_res && !rc; i++) {
        if (seen[i])
            continue;
        int n = 0;
        for (int j = i; j < st->n_res; j++)
            if (!seen[j] && !strcmp(st->res[j].method, st->res[i].method)) {
                seen[j] = 1;
                xy[2 * n] = (double)st->res[j].total_after;
                xy[2 * n + 1] = tui_result_metric(&st->res[j], met);
                n++;
            }
        qsort(xy, (size_t)n, 2 * sizeof *xy, by_params);
        for (int j = 0; j < n; j++)
            x[j] = xy[2 * j], y[j] = xy[2 * j + 1];
        if (!strcmp(st->res[i].method, "dense"))
            dense = y[0];
        rc = pare_plot_add(
            p, &(pare_series){.kind = PARE_SERIES_LINE_MARKERS, .name = st->res[i].method, .x = x, .y = y, .n = n}, err);
        lines++;
    }
    if (!rc && !lines)
        rc = pare_fail(err, PARE_EINVAL, "no result has %s yet", mname);
    if (!rc && isfinite(dense) && (dense > 0 || met != TUI_METRIC_PPL)) {
        char name[48];
        snprintf(name, sizeof name, "dense %.4g", dense);
        rc = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_HLINE, .name = name, .value = dense, .dashed = 1}, err);
    }
    free(xy), free(x), free(y), free(seen);
    return rc;
}

/* auto's budget curve (the state's, from its one analysis) with the budget's ratio marked. */
static pare_status budget(const tui_state *st, pare_plot *p, pare_error *err)
{
    int n = st->auto_curve_n;
    if (!st->auto_an || n < 1)
        return pare_fail(err, PARE_EINVAL, "auto's sensitivities are not measured yet: choose auto in the budget pane");
    double *x = malloc((size_t)n * sizeof *x), *ya = malloc((size_t)n * sizeof *ya),
           *yu = malloc((size_t)n * sizeof *yu);
    if (!x || !ya || !yu) {
        free(x), free(ya), free(yu);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the budget plot");
    }
    for (int k = 0; k < n; k++) {
        x[k] = st->auto_curve[3 * k];
        ya[k] = st->auto_curve[3 * k + 1];
        yu[k] = st->auto_curve[3 * k + 2];
    }
    char mark[32];
    snprintf(mark, sizeof mark, "s %.3g", st->mo.ratio);
    int kl = st->auto_an && st->auto_an->opts.sensitivity == PARE_AUTO_KL; /* what the probes measured */
    pare_plot_opts o = {.title = kl ? "auto: predicted KL from the dense model"
                                    : "auto: predicted calibration-loss increase",
                        .x = {.label = "ratio of block-linear parameters removed", .min = 0, .max = 1},
                        .y = {.label = "nats per token"}};
    pare_status rc = pare_plot_set_opts(p, &o, err);
    if (!rc)
        rc = pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_LINE, .name = "auto", .x = x, .y = ya, .n = n}, err);
    if (!rc)
        rc = pare_plot_add(
            p, &(pare_series){.kind = PARE_SERIES_LINE, .name = "svdllm uniform", .x = x, .y = yu, .n = n, .dashed = 1},
            err);
    if (!rc)
        rc = pare_plot_add(
            p,
            &(pare_series){
                .kind = PARE_SERIES_VLINE, .name = mark, .value = st->mo.ratio, .color = pare_palette_color(1)},
            err);
    free(x), free(ya), free(yu);
    return rc;
}

pare_status tui_plot_build(const tui_state *st, tui_plot_kind kind, pare_plot **out, pare_error *err)
{
    *out = NULL;
    pare_plot *p = NULL;
    pare_status rc = pare_plot_create(NULL, &p, err);
    if (rc)
        return rc;
    switch (kind) {
    case TUI_PLOT_HEATMAP: rc = heatmap(st, p, err); break;
    case TUI_PLOT_LAYERS: rc = layers(st, p, err); break;
    case TUI_PLOT_CHART: rc = chart(st, p, err); break;
    case TUI_PLOT_BUDGET: rc = budget(st, p, err); break;
    default: rc = spectrum(st, p, err); break;
    }
    if (rc) {
        pare_plot_destroy(p);
        return rc;
    }
    *out = p;
    return PARE_OK;
}

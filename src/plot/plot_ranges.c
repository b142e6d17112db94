/* The plot frame's axes: mapping values to coordinates (linear or log, inverted), the geometry of
 * bars (side by side or stacked) and the data ranges fitted to every series. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- axis mapping */

double plot_axis_transform(const plot_axis *a, double v)
{
    if (!isfinite(v))
        return NAN;
    if (a->range.scale == PARE_SCALE_LOG)
        return v > 0 ? log10(v) : NAN;
    return v;
}

static double untransform(pare_scale sc, double t) { return sc == PARE_SCALE_LOG ? pow(10, t) : t; }

double plot_axis_map_t(const plot_axis *a, double t)
{
    double tmin = plot_axis_transform(a, a->range.min), tmax = plot_axis_transform(a, a->range.max);
    return a->lo_px + (t - tmin) / (tmax - tmin) * (a->hi_px - a->lo_px);
}

double plot_axis_map(const plot_axis *a, double v) { return plot_axis_map_t(a, plot_axis_transform(a, v)); }

double pare_plot_map(const pare_plot_layout *l, pare_axis_id axis, double v)
{
    if ((unsigned)axis > PARE_AXIS_Y2)
        return NAN;
    plot_axis a;
    a.range = l->axis[axis];
    if (axis == PARE_AXIS_X) {
        a.lo_px = a.range.inverted ? l->x1 : l->x0;
        a.hi_px = a.range.inverted ? l->x0 : l->x1;
    } else {
        a.lo_px = a.range.inverted ? l->y0 : l->y1;
        a.hi_px = a.range.inverted ? l->y1 : l->y0;
    }
    return plot_axis_map(&a, v);
}

const plot_axis *plot_series_y_axis(const plot_frame *f, const plot_series *s)
{
    return &f->axis[s->on_y2 ? PARE_AXIS_Y2 : PARE_AXIS_Y];
}

/* ---------------------------------------------------------------- bars */

int plot_bar_index_of(const pare_plot *p, const plot_series *s, int *count)
{
    int j = -1, n = 0;
    for (int k = 0; k < p->n_series; k++)
        if (p->series[k].kind == PARE_SERIES_BARS) {
            if (&p->series[k] == s)
                j = n;
            n++;
        }
    if (count)
        *count = n;
    return j;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Width of the group of bars at one position, in transformed x units: 0.8 of the closest spacing. */
static double bar_slot_width(const pare_plot *p, int xlog)
{
    size_t n = 0;
    for (int k = 0; k < p->n_series; k++)
        if (p->series[k].kind == PARE_SERIES_BARS && p->series[k].x)
            n += (size_t)p->series[k].n;
    if (n < 2)
        return 0.8;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return 0.8;
    size_t m = 0;
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        if (s->kind == PARE_SERIES_BARS && s->x)
            for (int i = 0; i < s->n; i++) {
                double x = xlog ? (s->x[i] > 0 ? log10(s->x[i]) : NAN) : s->x[i];
                if (isfinite(x))
                    v[m++] = x;
            }
    }
    qsort(v, m, sizeof *v, compare_doubles);
    double gap = INFINITY;
    for (size_t i = 1; i < m; i++)
        if (v[i] > v[i - 1])
            gap = fmin(gap, v[i] - v[i - 1]);
    free(v);
    return isfinite(gap) ? 0.8 * gap : 0.8;
}

int plot_bar_geometry(const pare_plot *p, const plot_frame *f, const plot_series *s, int bar_index, int i, double *tx0,
                      double *tx1, double *ybot, double *ytop)
{
    double y = s->y[i];
    double cx = s->x ? plot_axis_transform(&f->axis[PARE_AXIS_X], s->x[i]) : (double)i;
    if (!isfinite(y) || !isfinite(cx))
        return 0;
    const plot_axis *ya = plot_series_y_axis(f, s);
    int ylog = ya->range.scale == PARE_SCALE_LOG, nb = f->n_bar_series > 0 ? f->n_bar_series : 1;
    double slot = f->bar_slot;
    if (p->opts.bars == PARE_BARS_STACKED) {
        *tx0 = cx - slot / 2;
        *tx1 = cx + slot / 2;
        /* stacks on the bars of earlier bar series at the same index */
        double below = 0;
        const plot_series *first = NULL;
        for (int k = 0; k < p->n_series && &p->series[k] != s; k++) {
            const plot_series *o = &p->series[k];
            if (o->kind != PARE_SERIES_BARS)
                continue;
            if (!first)
                first = o;
            if (i < o->n && isfinite(o->y[i]))
                below += o->y[i];
        }
        double base = ylog ? 0 : (first ? first->baseline : s->baseline);
        *ybot = base + below;
        *ytop = *ybot + y;
        if (ylog && *ybot <= 0)
            *ybot = NAN; /* grows from the bottom of the axis */
    } else {
        double w = slot / nb;
        *tx0 = cx - slot / 2 + bar_index * w;
        *tx1 = *tx0 + w;
        *ybot = ylog ? NAN : s->baseline;
        *ytop = y;
    }
    return 1;
}

/* ---------------------------------------------------------------- ranges */

typedef struct {
    double lo, hi;               /* in transformed units */
    double sticky_lo, sticky_hi; /* extreme values the range must not be padded beyond (bar bases, cell edges) */
    int any, any_sticky;
} range_acc;

static void acc_add(range_acc *r, double t)
{
    if (!isfinite(t))
        return;
    if (!r->any || t < r->lo)
        r->lo = t;
    if (!r->any || t > r->hi)
        r->hi = t;
    r->any = 1;
}

static void acc_add_sticky(range_acc *r, double t)
{
    if (!isfinite(t))
        return;
    acc_add(r, t);
    if (!r->any_sticky || t < r->sticky_lo)
        r->sticky_lo = t;
    if (!r->any_sticky || t > r->sticky_hi)
        r->sticky_hi = t;
    r->any_sticky = 1;
}

/* Keeps a range finite and wide enough to divide: data near the limits of double (or fixed limits
 * such as 1e308 or 0 .. 5e-324) must not turn the mapping or the tick steps into inf, NaN or 0. */
static void clamp_range(pare_axis_range *r)
{
    int log = r->scale == PARE_SCALE_LOG;
    double lo = log ? 1e-290 : -1e290, hi = 1e290;
    r->min = r->min < lo ? lo : r->min > hi ? hi : r->min;
    r->max = r->max < lo ? lo : r->max > hi ? hi : r->max;
    if (log) {
        double t0 = log10(r->min), t1 = log10(r->max);
        if (!(t1 - t0 >= 1e-9)) {
            double c = 0.5 * (t0 + t1);
            r->min = pow(10, c - 0.5);
            r->max = pow(10, c + 0.5);
        }
    } else {
        double need = fmax(1e-200, 1e-12 * fmax(fabs(r->min), fabs(r->max)));
        if (!(r->max - r->min >= need)) {
            double c = 0.5 * (r->min + r->max);
            r->min = c - need;
            r->max = c + need;
        }
    }
}

void plot_fit_ranges(const pare_plot *p, plot_frame *f)
{
    range_acc acc[3];
    memset(acc, 0, sizeof acc);
    for (int a = 0; a < 3; a++) {
        const pare_axis_opts *o = plot_axis_opts(p, (pare_axis_id)a);
        f->axis[a].range.scale = o->scale == PARE_SCALE_LOG ? PARE_SCALE_LOG : PARE_SCALE_LINEAR;
        f->axis[a].range.inverted = o->inverted != 0;
        f->axis[a].label = o->label && *o->label ? o->label : NULL;
    }
    f->axis[PARE_AXIS_X].range.present = f->axis[PARE_AXIS_Y].range.present = 1;
    const plot_axis *X = &f->axis[PARE_AXIS_X];
    f->n_bar_series = 0;
    plot_bar_index_of(p, NULL, &f->n_bar_series);
    f->bar_slot = bar_slot_width(p, X->range.scale == PARE_SCALE_LOG);
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        int ya = s->on_y2 ? PARE_AXIS_Y2 : PARE_AXIS_Y;
        const plot_axis *Y = &f->axis[ya];
        if (s->on_y2)
            f->axis[PARE_AXIS_Y2].range.present = 1;
        switch (s->kind) {
        case PARE_SERIES_LINE:
        case PARE_SERIES_MARKERS:
        case PARE_SERIES_LINE_MARKERS:
        case PARE_SERIES_AREA:
            for (int i = 0; i < s->n; i++) {
                double tx = plot_axis_transform(X, plot_series_x(s, i)), ty = plot_axis_transform(Y, s->y[i]);
                if (isfinite(tx) && isfinite(ty)) {
                    acc_add(&acc[PARE_AXIS_X], tx);
                    acc_add(&acc[ya], ty);
                }
            }
            if (s->kind == PARE_SERIES_AREA && Y->range.scale == PARE_SCALE_LINEAR && plot_series_has_data(s))
                acc_add_sticky(&acc[ya], s->baseline);
            break;
        case PARE_SERIES_BARS: {
            int j = plot_bar_index_of(p, s, NULL);
            for (int i = 0; i < s->n; i++) {
                double tx0, tx1, yb, yt;
                if (!plot_bar_geometry(p, f, s, j, i, &tx0, &tx1, &yb, &yt))
                    continue;
                (s->x ? acc_add : acc_add_sticky)(&acc[PARE_AXIS_X], tx0);
                (s->x ? acc_add : acc_add_sticky)(&acc[PARE_AXIS_X], tx1);
                acc_add(&acc[ya], plot_axis_transform(Y, yt));
                acc_add_sticky(&acc[ya], plot_axis_transform(Y, yb));
            }
            if (!s->x && s->n > 0) { /* every category slot is shown, even an empty one at an end */
                acc_add_sticky(&acc[PARE_AXIS_X], -0.5);
                acc_add_sticky(&acc[PARE_AXIS_X], s->n - 0.5);
            }
            break;
        }
        case PARE_SERIES_HLINE: acc_add(&acc[ya], plot_axis_transform(Y, s->value)); break;
        case PARE_SERIES_VLINE: acc_add(&acc[PARE_AXIS_X], plot_axis_transform(X, s->value)); break;
        case PARE_SERIES_HEATMAP:
            if (s->rows > 0 && s->cols > 0) {
                acc_add_sticky(&acc[PARE_AXIS_X], -0.5);
                acc_add_sticky(&acc[PARE_AXIS_X], s->cols - 0.5);
                acc_add_sticky(&acc[ya], -0.5);
                acc_add_sticky(&acc[ya], s->rows - 0.5);
            }
            break;
        }
    }
    for (int a = 0; a < 3; a++) {
        plot_axis *ax = &f->axis[a];
        const pare_axis_opts *o = plot_axis_opts(p, (pare_axis_id)a);
        pare_scale sc = ax->range.scale;
        range_acc *r = &acc[a];
        double lo, hi;
        if (o->min < o->max && isfinite(o->min) && isfinite(o->max)) {
            ax->range.min = o->min;
            ax->range.max = o->max;
            continue;
        }
        if (!r->any) {
            lo = 0;
            hi = 1;
        } else {
            lo = r->lo;
            hi = r->hi;
            if (hi - lo <= 1e-12 * fmax(1, fabs(lo))) {
                double d = sc == PARE_SCALE_LOG ? 0.5 : (lo != 0 ? 0.1 * fabs(lo) : 1);
                lo -= d;
                hi += d;
            } else {
                /* 4% of air on each side, except against a bar base or a heatmap edge */
                double padding = 0.04 * (hi - lo);
                if (!(r->any_sticky && lo == r->sticky_lo))
                    lo -= padding;
                if (!(r->any_sticky && hi == r->sticky_hi))
                    hi += padding;
            }
        }
        ax->range.min = untransform(sc, lo);
        ax->range.max = untransform(sc, hi);
    }
    for (int a = 0; a < 3; a++)
        clamp_range(&f->axis[a].range);
    /* categorical axes: bars placed by index, and heatmap cells */
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        if ((s->kind == PARE_SERIES_BARS && !s->x) || s->kind == PARE_SERIES_HEATMAP) {
            plot_axis *ax = &f->axis[PARE_AXIS_X];
            ax->is_category = 1;
            if (s->labels && !ax->categories) {
                ax->categories = s->labels;
                ax->n_categories = s->n_labels;
            }
        }
        if (s->kind == PARE_SERIES_HEATMAP) {
            plot_axis *ax = &f->axis[s->on_y2 ? PARE_AXIS_Y2 : PARE_AXIS_Y];
            ax->is_category = 1;
            if (s->row_labels) {
                ax->categories = s->row_labels;
                ax->n_categories = s->rows;
            }
            f->heatmap = s;
        }
    }
}

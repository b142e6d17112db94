/* Plot descriptions: storing series, checking them against the axes, and the layout both renderers
 * draw from (fitted ranges, nice ticks and their labels, margins, legend corner, colorbar). */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"

/* ---------------------------------------------------------------- the description */

static char *copy_string(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Copies a string or fails; *ok becomes 0 on a failed allocation. */
static char *copy_string_ok(const char *s, int *ok)
{
    char *d = copy_string(s);
    if (s && !d)
        *ok = 0;
    return d;
}

static void free_strings(char **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **copy_strings(const char *const *v, int n, int *ok)
{
    if (!v || n <= 0)
        return NULL;
    char **d = calloc((size_t)n, sizeof *d);
    if (!d) {
        *ok = 0;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        d[i] = copy_string_ok(v[i] ? v[i] : "", ok);
    return d;
}

static double *copy_doubles(const double *v, size_t n, int *ok)
{
    if (!v || n == 0)
        return NULL;
    double *d = malloc(n * sizeof *d);
    if (!d) {
        *ok = 0;
        return NULL;
    }
    memcpy(d, v, n * sizeof *d);
    return d;
}

static void free_opts(pare_plot_opts *o)
{
    free((char *)o->title);
    free((char *)o->x.label);
    free((char *)o->y.label);
    free((char *)o->y2.label);
    memset(o, 0, sizeof *o);
}

pare_status pare_plot_set_opts(pare_plot *p, const pare_plot_opts *opts, pare_error *err)
{
    pare_plot_opts o = {0};
    if (opts)
        o = *opts;
    int ok = 1;
    o.title = copy_string_ok(o.title, &ok);
    o.x.label = copy_string_ok(o.x.label, &ok);
    o.y.label = copy_string_ok(o.y.label, &ok);
    o.y2.label = copy_string_ok(o.y2.label, &ok);
    if (!ok) {
        free_opts(&o);
        return pare_fail(err, PARE_ENOMEM, "out of memory setting plot options");
    }
    free_opts(&p->opts);
    p->opts = o;
    return PARE_OK;
}

pare_status pare_plot_create(const pare_plot_opts *opts, pare_plot **out, pare_error *err)
{
    *out = NULL;
    pare_plot *p = calloc(1, sizeof *p);
    if (!p)
        return pare_fail(err, PARE_ENOMEM, "out of memory creating a plot");
    pare_status st = pare_plot_set_opts(p, opts, err);
    if (st != PARE_OK) {
        free(p);
        return st;
    }
    *out = p;
    return PARE_OK;
}

static void series_free(plot_series *s)
{
    free(s->name);
    free(s->x);
    free(s->y);
    free(s->z);
    free_strings(s->labels, s->n_labels);
    free_strings(s->row_labels, s->rows);
    memset(s, 0, sizeof *s);
}

void pare_plot_destroy(pare_plot *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_series; i++)
        series_free(&p->series[i]);
    free(p->series);
    free_opts(&p->opts);
    free(p);
}

int pare_plot_series_count(const pare_plot *p) { return p->n_series; }

pare_status pare_plot_series_at(const pare_plot *p, int i, pare_series *out, pare_error *err)
{
    if (i < 0 || i >= p->n_series)
        return pare_fail(err, PARE_EINVAL, "plot '%s' has %d series, no series %d", plot_display_name(p), p->n_series,
                         i);
    const plot_series *s = &p->series[i];
    *out = (pare_series){.kind = s->kind, .name = s->name, .x = s->x, .y = s->y, .n = s->n,
                         .labels = (const char *const *)s->labels, .row_labels = (const char *const *)s->row_labels,
                         .value = s->value, .z = s->z, .rows = s->rows, .cols = s->cols, .zmin = s->zmin,
                         .zmax = s->zmax, .on_y2 = s->on_y2, .color = s->color, .marker = s->marker,
                         .baseline = s->baseline, .dashed = s->dashed};
    return PARE_OK;
}

const pare_plot_opts *pare_plot_get_opts(const pare_plot *p) { return &p->opts; }

const char *plot_display_name(const pare_plot *p)
{
    return p->opts.title && *p->opts.title ? p->opts.title : "untitled";
}

static const char *kind_name(pare_series_kind k)
{
    static const char *const names[] = {"line", "markers", "line+markers", "bars", "area", "hline", "vline", "heatmap"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "unknown";
}

/* The terminal colour index closest to an RGB colour (palette or ramp). */
static int nearest_term_color(pare_rgba c)
{
    int best = PARE_TERM_COLOR_PALETTE(0);
    long best_d = -1;
    for (int i = 1; i < PARE_TERM_COLORS; i++) {
        pare_rgba t = pare_term_color_rgba(i);
        long dr = (long)t.r - c.r, dg = (long)t.g - c.g, db = (long)t.b - c.b, d = dr * dr + dg * dg + db * db;
        if (best_d < 0 || d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best;
}

pare_rgba pare_term_color_rgba(int color)
{
    if (color >= PARE_TERM_COLOR_PALETTE(0) && color < PARE_TERM_COLOR_RAMP(0))
        return pare_palette_color(color - 1);
    if (color >= PARE_TERM_COLOR_RAMP(0) && color < PARE_TERM_COLORS)
        return pare_colormap_sequential((color - PARE_TERM_COLOR_RAMP(0)) / (double)(PARE_TERM_RAMP_LEVELS - 1));
    return (pare_rgba){32, 32, 32, 255};
}

static int takes_palette_color(pare_series_kind k)
{
    return k == PARE_SERIES_LINE || k == PARE_SERIES_MARKERS || k == PARE_SERIES_LINE_MARKERS ||
           k == PARE_SERIES_BARS || k == PARE_SERIES_AREA;
}

pare_status pare_plot_add(pare_plot *p, const pare_series *s, pare_error *err)
{
    const char *pname = plot_display_name(p);
    const char *sname = s->name && *s->name ? s->name : kind_name(s->kind);
    if ((unsigned)s->kind > PARE_SERIES_HEATMAP)
        return pare_fail(err, PARE_EINVAL, "plot '%s': series '%s' has an unknown kind %d", pname, sname, (int)s->kind);
    if ((unsigned)s->marker > PARE_MARKER_CROSS)
        return pare_fail(err, PARE_EINVAL, "plot '%s': series '%s' has an unknown marker %d", pname, sname,
                         (int)s->marker);
    int heat = s->kind == PARE_SERIES_HEATMAP, ref = s->kind == PARE_SERIES_HLINE || s->kind == PARE_SERIES_VLINE;
    if (!heat && !ref) {
        if (s->n < 0)
            return pare_fail(err, PARE_EINVAL, "plot '%s': series '%s' has n = %d points", pname, sname, s->n);
        if (s->n > 0 && !s->y)
            return pare_fail(err, PARE_EINVAL, "plot '%s': series '%s' has %d points but no y values", pname, sname,
                             s->n);
        if (s->labels && s->kind != PARE_SERIES_BARS)
            return pare_fail(err, PARE_EINVAL, "plot '%s': series '%s': only bars and heatmaps take category labels",
                             pname, sname);
        if (s->labels && s->x)
            return pare_fail(err, PARE_EINVAL,
                             "plot '%s': series '%s' has both x values and category labels; give one of them", pname,
                             sname);
    }
    if (ref && !isfinite(s->value))
        return pare_fail(err, PARE_EINVAL, "plot '%s': reference line '%s' is at a non-finite value", pname, sname);
    if (heat) {
        if (s->rows < 0 || s->cols < 0 || (s->rows > 0 && s->cols > (1 << 28) / s->rows))
            return pare_fail(err, PARE_EINVAL, "plot '%s': heatmap '%s' has a bad size %d x %d", pname, sname, s->rows,
                             s->cols);
        if (s->rows * s->cols > 0 && !s->z)
            return pare_fail(err, PARE_EINVAL, "plot '%s': heatmap '%s' has %d x %d cells but no values", pname, sname,
                             s->rows, s->cols);
        for (int i = 0; i < p->n_series; i++)
            if (p->series[i].kind == PARE_SERIES_HEATMAP)
                return pare_fail(err, PARE_EINVAL, "plot '%s' already has a heatmap; one heatmap per plot", pname);
    }
    if (p->n_series == p->cap_series) {
        int cap = p->cap_series ? 2 * p->cap_series : 8;
        plot_series *v = realloc(p->series, (size_t)cap * sizeof *v);
        if (!v)
            return pare_fail(err, PARE_ENOMEM, "out of memory adding series '%s' to plot '%s'", sname, pname);
        p->series = v;
        p->cap_series = cap;
    }
    plot_series d = {0};
    int ok = 1, n = heat || ref ? 0 : s->n;
    d.kind = s->kind;
    d.name = copy_string_ok(s->name, &ok);
    d.x = copy_doubles(s->x, (size_t)n, &ok);
    d.y = copy_doubles(s->y, (size_t)n, &ok);
    d.n = n;
    if (heat) {
        d.rows = s->rows;
        d.cols = s->cols;
        d.z = copy_doubles(s->z, (size_t)s->rows * (size_t)s->cols, &ok);
        d.labels = copy_strings(s->labels, s->cols, &ok);
        d.n_labels = s->labels ? s->cols : 0;
        d.row_labels = copy_strings(s->row_labels, s->rows, &ok);
        d.zmin = s->zmin;
        d.zmax = s->zmax;
    } else {
        d.labels = copy_strings(s->labels, n, &ok);
        d.n_labels = s->labels ? n : 0;
    }
    if (!ok) {
        series_free(&d);
        return pare_fail(err, PARE_ENOMEM, "out of memory copying series '%s' of plot '%s'", sname, pname);
    }
    d.value = s->value;
    d.on_y2 = s->on_y2 != 0;
    d.baseline = isfinite(s->baseline) ? s->baseline : 0;
    d.dashed = s->dashed != 0;
    d.palette_index = -1;
    if (s->color.a) {
        d.color = s->color;
    } else if (takes_palette_color(s->kind)) {
        d.palette_index = p->next_color++ % PARE_PALETTE_SIZE;
        d.color = pare_palette_color(d.palette_index);
    } else {
        d.color = (pare_rgba){77, 77, 77, 255};
    }
    d.term_color = d.palette_index >= 0 ? PARE_TERM_COLOR_PALETTE(d.palette_index) : nearest_term_color(d.color);
    d.marker = s->marker;
    if ((s->kind == PARE_SERIES_MARKERS || s->kind == PARE_SERIES_LINE_MARKERS) && d.marker == PARE_MARKER_AUTO)
        d.marker = (pare_marker)(PARE_MARKER_CIRCLE + p->next_marker++ % 4);
    p->series[p->n_series++] = d;
    return PARE_OK;
}

/* ---------------------------------------------------------------- checks against the axes */

double plot_series_x(const plot_series *s, int i) { return s->x ? s->x[i] : (double)i; }

int plot_is_legend_series(const plot_series *s)
{
    return takes_palette_color(s->kind) && s->name && *s->name;
}

static int series_has_data(const plot_series *s)
{
    if (s->kind == PARE_SERIES_HEATMAP) {
        for (size_t i = 0; i < (size_t)s->rows * (size_t)s->cols; i++)
            if (isfinite(s->z[i]))
                return 1;
        return 0;
    }
    for (int i = 0; i < s->n; i++)
        if (isfinite(plot_series_x(s, i)) && isfinite(s->y[i]))
            return 1;
    return 0;
}

static const pare_axis_opts *axis_opts(const pare_plot *p, pare_axis_id id)
{
    return id == PARE_AXIS_X ? &p->opts.x : id == PARE_AXIS_Y ? &p->opts.y : &p->opts.y2;
}

static const char *const AXIS_NAMES[3] = {"x", "y", "y2"};

/* A log axis accepts only positive data and limits; the error names the axis, the series and the value. */
static pare_status check_log_axes(const pare_plot *p, pare_error *err)
{
    const char *pname = plot_display_name(p);
    for (int a = 0; a < 3; a++) {
        const pare_axis_opts *o = axis_opts(p, (pare_axis_id)a);
        if (o->scale != PARE_SCALE_LOG)
            continue;
        if (o->min < o->max && o->min <= 0)
            return pare_fail(err, PARE_EINVAL, "plot '%s': the %s axis is logarithmic but its lower limit is %g", pname,
                             AXIS_NAMES[a], o->min);
    }
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        const char *sname = s->name && *s->name ? s->name : kind_name(s->kind);
        pare_axis_id ya = s->on_y2 ? PARE_AXIS_Y2 : PARE_AXIS_Y;
        int xlog = p->opts.x.scale == PARE_SCALE_LOG, ylog = axis_opts(p, ya)->scale == PARE_SCALE_LOG;
        if (s->kind == PARE_SERIES_HEATMAP) {
            if (xlog || ylog)
                return pare_fail(err, PARE_EINVAL, "plot '%s': heatmap '%s' needs linear axes, but the %s axis is logarithmic",
                                 pname, sname, xlog ? "x" : AXIS_NAMES[ya]);
            continue;
        }
        if (s->kind == PARE_SERIES_VLINE || s->kind == PARE_SERIES_HLINE) {
            int on_x = s->kind == PARE_SERIES_VLINE;
            if ((on_x ? xlog : ylog) && s->value <= 0)
                return pare_fail(err, PARE_EINVAL, "plot '%s': the %s axis is logarithmic but reference line '%s' is at %s = %g",
                                 pname, on_x ? "x" : AXIS_NAMES[ya], sname, on_x ? "x" : "y", s->value);
            continue;
        }
        for (int i = 0; i < s->n; i++) {
            double x = plot_series_x(s, i), y = s->y[i];
            if (xlog && isfinite(x) && x <= 0)
                return pare_fail(err, PARE_EINVAL, "plot '%s': the x axis is logarithmic but series '%s' has x = %g at point %d%s",
                                 pname, sname, x, i, s->x ? "" : " (no x given: points are numbered from 0)");
            if (ylog && isfinite(y) && y <= 0)
                return pare_fail(err, PARE_EINVAL, "plot '%s': the %s axis is logarithmic but series '%s' has y = %g at point %d",
                                 pname, AXIS_NAMES[ya], sname, y, i);
        }
    }
    return PARE_OK;
}

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

static int bar_index_of(const pare_plot *p, const plot_series *s, int *count)
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

int plot_bar_geometry(const pare_plot *p, const plot_frame *f, const plot_series *s, int bar_index, int i,
                      double *tx0, double *tx1, double *ybot, double *ytop)
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
    double lo, hi;             /* in transformed units */
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

static void fit_ranges(const pare_plot *p, plot_frame *f)
{
    range_acc acc[3];
    memset(acc, 0, sizeof acc);
    for (int a = 0; a < 3; a++) {
        const pare_axis_opts *o = axis_opts(p, (pare_axis_id)a);
        f->axis[a].range.scale = o->scale == PARE_SCALE_LOG ? PARE_SCALE_LOG : PARE_SCALE_LINEAR;
        f->axis[a].range.inverted = o->inverted != 0;
        f->axis[a].label = o->label && *o->label ? o->label : NULL;
    }
    f->axis[PARE_AXIS_X].range.present = f->axis[PARE_AXIS_Y].range.present = 1;
    const plot_axis *X = &f->axis[PARE_AXIS_X];
    f->n_bar_series = 0;
    bar_index_of(p, NULL, &f->n_bar_series);
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
            if (s->kind == PARE_SERIES_AREA && Y->range.scale == PARE_SCALE_LINEAR && series_has_data(s))
                acc_add_sticky(&acc[ya], s->baseline);
            break;
        case PARE_SERIES_BARS: {
            int j = bar_index_of(p, s, NULL);
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
        case PARE_SERIES_HLINE:
            acc_add(&acc[ya], plot_axis_transform(Y, s->value));
            break;
        case PARE_SERIES_VLINE:
            acc_add(&acc[PARE_AXIS_X], plot_axis_transform(X, s->value));
            break;
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
        const pare_axis_opts *o = axis_opts(p, (pare_axis_id)a);
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

/* ---------------------------------------------------------------- ticks */

int plot_text_width(const plot_metrics *m, const char *s)
{
    if (!m->terminal)
        return pare_text_width(s, m->scale);
    int n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        n += (*c & 0xc0) != 0x80;
    return n;
}

static void strip_zeros(char *s)
{
    char *dot = strchr(s, '.');
    if (!dot)
        return;
    char *end = s + strlen(s);
    while (end > dot + 1 && end[-1] == '0')
        *--end = '\0';
    if (end == dot + 1)
        *dot = '\0';
}

/* v as "d.ddde-x" with as many digits as the step needs, without '+' or leading exponent zeros. */
static void format_exponent(double v, double step, char *out, size_t cap)
{
    int e = (int)floor(log10(fabs(v)));
    int digits = e - (int)floor(log10(fabs(step)) + 1e-9);
    digits = digits < 0 ? 0 : digits > 8 ? 8 : digits;
    char buf[32]; /* at most 8 digits: "-d.dddddddde+ddd" */
    snprintf(buf, sizeof buf, "%.*e", digits, v);
    char *ep = strchr(buf, 'e');
    if (!ep) {
        snprintf(out, cap, "%s", buf);
        return;
    }
    *ep = '\0';
    strip_zeros(buf);
    snprintf(out, cap, "%se%d", buf, atoi(ep + 1));
}

/* v with the decimals the step needs, trailing zeros removed. */
static void format_plain(double v, double step, char *out, size_t cap)
{
    int decimals = 0;
    double s = fabs(step);
    while (decimals < 12 && fabs(s - round(s)) > 1e-6 * fmax(1, s)) {
        s *= 10;
        decimals++;
    }
    snprintf(out, cap, "%.*f", decimals, v);
    strip_zeros(out);
    if (strcmp(out, "-0") == 0)
        snprintf(out, cap, "0");
}

/* Labels all major ticks of an axis, decided per label on log axes (1, 10, 100, 1e3: the exponent
 * form when shorter) and for the whole axis on linear ones, so that 500, 1000, 1500 read alike
 * (the exponent form only when plain labels would pass 5 characters: 2e5, 4e-4). */
static void label_ticks(plot_axis *a, double step, int per_label)
{
    int plain_w = 0, exp_w = 0;
    char p[64], e[64];
    for (int i = 0; i < a->n_ticks; i++) {
        plot_tick *t = &a->ticks[i];
        if (!t->major)
            continue;
        double st = per_label ? t->value : step;
        if (t->value == 0 || fabs(t->value) < 1e-9 * fabs(step)) {
            snprintf(t->label, sizeof t->label, "0");
            continue;
        }
        format_plain(t->value, st, p, sizeof p);
        format_exponent(t->value, st, e, sizeof e);
        if (per_label) {
            snprintf(t->label, sizeof t->label, "%s", strlen(e) < strlen(p) ? e : p);
        } else {
            plain_w = (int)fmax(plain_w, strlen(p));
            exp_w = (int)fmax(exp_w, strlen(e));
        }
    }
    if (per_label)
        return;
    for (int i = 0; i < a->n_ticks; i++) {
        plot_tick *t = &a->ticks[i];
        if (!t->major || strcmp(t->label, "0") == 0)
            continue;
        if (plain_w > 5 && exp_w < plain_w)
            format_exponent(t->value, step, t->label, sizeof t->label);
        else
            format_plain(t->value, step, t->label, sizeof t->label);
    }
}

static void add_tick(plot_axis *a, double v, int major)
{
    if (a->n_ticks >= PLOT_MAX_TICKS)
        return;
    plot_tick *t = &a->ticks[a->n_ticks++];
    t->value = v;
    t->major = major;
    t->label[0] = '\0';
}

static double nice_step(double span, int target, int integer_only)
{
    double raw = span / (target > 0 ? target : 1);
    double mag = pow(10, floor(log10(raw))), step = 10 * mag;
    static const double MULT[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (MULT[i] * mag >= raw * (1 - 1e-9)) {
            step = MULT[i] * mag;
            break;
        }
    return integer_only && step < 1 ? 1 : step;
}

/* Ticks at multiples of a 1-2-5 step, about target of them. */
static void linear_ticks(plot_axis *a, double lo, double hi, int target, int integer_only)
{
    a->n_ticks = 0;
    double span = hi - lo;
    if (!(span > 0))
        return;
    double step = nice_step(span, target, integer_only);
    if (!(step > 0) || !isfinite(step))
        return;
    while ((hi - lo) / step > PLOT_MAX_TICKS - 1)
        step *= 2;
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    /* an integer count: k0 + 1 == k0 for ranges far from zero relative to their width */
    for (int i = 0; i <= k1 - k0 && i < PLOT_MAX_TICKS; i++) {
        double v = (k0 + i) * step;
        add_tick(a, fabs(v) < step * 1e-9 ? 0 : v, 1);
    }
    label_ticks(a, step, 0);
}

/* Log ticks: labelled decades (every few when there are many) with unlabelled 2..9 between; a range
 * narrower than two decades gets 1-2-5 mantissas, then linear ticks. */
static void log_ticks(plot_axis *a, double tlo, double thi, int target)
{
    a->n_ticks = 0;
    int d0 = (int)ceil(tlo - 1e-9), d1 = (int)floor(thi + 1e-9), nd = d1 - d0 + 1;
    if (nd >= 2) {
        int step = (nd + target - 1) / (target > 0 ? target : 1);
        step = step < 1 ? 1 : step;
        for (int d = (int)floor(tlo); d <= (int)ceil(thi); d++) {
            int labelled = ((d % step) + step) % step == 0 && d >= d0 && d <= d1;
            if (d >= d0 && d <= d1)
                add_tick(a, pow(10, d), labelled);
            if (step == 1 && nd <= 12)
                for (int m = 2; m <= 9; m++) {
                    double t = d + log10(m);
                    if (t >= tlo - 1e-9 && t <= thi + 1e-9)
                        add_tick(a, m * pow(10, d), 0);
                }
        }
        label_ticks(a, 1, 1);
        return;
    }
    static const int SETS[2][10] = {{1, 2, 5, 0}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}};
    for (int s = 0; s < 2; s++) {
        a->n_ticks = 0;
        for (int d = (int)floor(tlo); d <= (int)ceil(thi); d++)
            for (int i = 0; SETS[s][i]; i++) {
                double t = d + log10(SETS[s][i]);
                if (t >= tlo - 1e-9 && t <= thi + 1e-9)
                    add_tick(a, SETS[s][i] * pow(10, d), 1);
            }
        if (a->n_ticks >= 2 && a->n_ticks <= target + 2) {
            label_ticks(a, 1, 1);
            return;
        }
    }
    linear_ticks(a, pow(10, tlo), pow(10, thi), target, 0);
}

/* Categories: a tick at every k-th integer position, labelled with its name. */
static void category_ticks(plot_axis *a, int every)
{
    a->n_ticks = 0;
    double lo = fmax(ceil(fmin(a->range.min, a->range.max) - 1e-9), 0);
    double hi = fmin(floor(fmax(a->range.min, a->range.max) + 1e-9), a->n_categories - 1);
    for (int i = (int)fmin(lo, a->n_categories); i <= hi; i++)
        if (i % every == 0) {
            add_tick(a, i, 1);
            snprintf(a->ticks[a->n_ticks - 1].label, sizeof a->ticks[0].label, "%s", a->categories[i]);
        }
}

/* Fills the ticks of an axis for about target labels (or every k-th category). */
static void make_ticks(plot_axis *a, int target, int every)
{
    if (a->is_category && a->categories)
        category_ticks(a, every);
    else if (a->range.scale == PARE_SCALE_LOG)
        log_ticks(a, log10(a->range.min), log10(a->range.max), target);
    else
        linear_ticks(a, fmin(a->range.min, a->range.max), fmax(a->range.min, a->range.max), target, a->is_category);
}

static int widest_label(const plot_metrics *m, const plot_axis *a)
{
    int w = 0;
    for (int i = 0; i < a->n_ticks; i++)
        if (a->ticks[i].major)
            w = (int)fmax(w, plot_text_width(m, a->ticks[i].label));
    return w;
}

/* Whether labels along a horizontal axis leave a character's gap between neighbours. */
static int horizontal_labels_fit(const plot_metrics *m, const plot_axis *a)
{
    double prev_end = -INFINITY;
    for (int i = 0; i < a->n_ticks; i++) {
        const plot_tick *t = &a->ticks[i];
        if (!t->major)
            continue;
        double c = plot_axis_map(a, t->value), w = plot_text_width(m, t->label);
        if (!isfinite(c))
            continue;
        double start = c - w / 2;
        if (start < prev_end + m->char_w)
            return 0;
        prev_end = start + w;
    }
    return 1;
}

static int vertical_labels_fit(const plot_metrics *m, const plot_axis *a)
{
    double prev = INFINITY;
    int shown = 0;
    for (int i = 0; i < a->n_ticks; i++) {
        if (!a->ticks[i].major)
            continue;
        double c = plot_axis_map(a, a->ticks[i].value);
        if (shown && fabs(prev - c) < m->text_h + (m->terminal ? 0 : m->pad))
            return 0;
        prev = c;
        shown = 1;
    }
    return 1;
}

/* Ticks that fit the axis's length: fewer and fewer until the labels no longer collide. */
static void fit_ticks(const plot_metrics *m, plot_axis *a, int horizontal)
{
    double len = fabs(a->hi_px - a->lo_px);
    int target = horizontal ? (int)(len / (m->char_w * (m->terminal ? 10 : 9)))
                            : (int)(len / (m->terminal ? 3 : m->text_h * 3.5));
    target = target < 2 ? 2 : target > 12 ? 12 : target;
    int cats = a->is_category && a->categories;
    for (int every = 1, tries = 0; tries < 200; tries++) {
        make_ticks(a, target, every);
        if (horizontal ? horizontal_labels_fit(m, a) : vertical_labels_fit(m, a))
            return;
        if (cats)
            every++;
        else if (target > 2)
            target--;
        else
            return;
    }
}

/* ---------------------------------------------------------------- layout */

static void set_axis_pixels(plot_frame *f)
{
    pare_plot_layout *l = &f->pub;
    plot_axis *x = &f->axis[PARE_AXIS_X];
    x->lo_px = x->range.inverted ? l->x1 : l->x0;
    x->hi_px = x->range.inverted ? l->x0 : l->x1;
    for (int a = PARE_AXIS_Y; a <= PARE_AXIS_Y2; a++) {
        plot_axis *y = &f->axis[a];
        y->lo_px = y->range.inverted ? l->y0 : l->y1;
        y->hi_px = y->range.inverted ? l->y1 : l->y0;
    }
}

/* Coarse occupancy of the plot area by data, for choosing the legend corner. */
#define OCC_W 64
#define OCC_H 48

typedef struct {
    const plot_frame *f;
    uint8_t cell[OCC_H][OCC_W];
} occupancy;

static void occ_mark(occupancy *o, double px, double py)
{
    const pare_plot_layout *l = &o->f->pub;
    double cx = floor((px - l->x0) / (l->x1 - l->x0) * OCC_W), cy = floor((py - l->y0) / (l->y1 - l->y0) * OCC_H);
    if (cx >= 0 && cx < OCC_W && cy >= 0 && cy < OCC_H) /* false for NaN */
        o->cell[(int)cy][(int)cx] = 1;
}

static void occ_segment(occupancy *o, double x0, double y0, double x1, double y1)
{
    const pare_plot_layout *l = &o->f->pub;
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) ||
        !pare_clip_segment(&x0, &y0, &x1, &y1, l->x0, l->y0, l->x1, l->y1))
        return;
    double cell = fmin((double)(l->x1 - l->x0) / OCC_W, (double)(l->y1 - l->y0) / OCC_H) / 2;
    int steps = (int)fmin(4096, ceil(hypot(x1 - x0, y1 - y0) / fmax(cell, 1e-9))) + 1;
    for (int i = 0; i <= steps; i++)
        occ_mark(o, x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps);
}

static void occ_rect(occupancy *o, double x0, double y0, double x1, double y1)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    for (int i = 0; i <= 16; i++)
        occ_segment(o, x0, y0 + (y1 - y0) * i / 16, x1, y0 + (y1 - y0) * i / 16);
}

static void fill_occupancy(const pare_plot *p, occupancy *o)
{
    const plot_frame *f = o->f;
    const plot_axis *X = &f->axis[PARE_AXIS_X];
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        const plot_axis *Y = plot_series_y_axis(f, s);
        double ybase = Y->range.scale == PARE_SCALE_LOG ? Y->lo_px : plot_axis_map(Y, s->baseline);
        switch (s->kind) {
        case PARE_SERIES_LINE:
        case PARE_SERIES_MARKERS:
        case PARE_SERIES_LINE_MARKERS:
        case PARE_SERIES_AREA:
            for (int i = 0; i < s->n; i++) {
                double px = plot_axis_map(X, plot_series_x(s, i)), py = plot_axis_map(Y, s->y[i]);
                occ_mark(o, px, py);
                if (s->kind != PARE_SERIES_MARKERS && i + 1 < s->n)
                    occ_segment(o, px, py, plot_axis_map(X, plot_series_x(s, i + 1)), plot_axis_map(Y, s->y[i + 1]));
                if (s->kind == PARE_SERIES_AREA)
                    occ_segment(o, px, py, px, ybase);
            }
            break;
        case PARE_SERIES_BARS: {
            int j = bar_index_of(p, s, NULL);
            for (int i = 0; i < s->n; i++) {
                double tx0, tx1, yb, yt;
                if (plot_bar_geometry(p, f, s, j, i, &tx0, &tx1, &yb, &yt))
                    occ_rect(o, plot_axis_map_t(X, tx0), isfinite(yb) ? plot_axis_map(Y, yb) : Y->lo_px,
                             plot_axis_map_t(X, tx1), plot_axis_map(Y, yt));
            }
            break;
        }
        case PARE_SERIES_HLINE:
            occ_segment(o, f->pub.x0, plot_axis_map(Y, s->value), f->pub.x1, plot_axis_map(Y, s->value));
            break;
        case PARE_SERIES_VLINE:
            occ_segment(o, plot_axis_map(X, s->value), f->pub.y0, plot_axis_map(X, s->value), f->pub.y1);
            break;
        case PARE_SERIES_HEATMAP:
            occ_rect(o, plot_axis_map(X, -0.5), plot_axis_map(Y, -0.5), plot_axis_map(X, s->cols - 0.5),
                     plot_axis_map(Y, s->rows - 0.5));
            break;
        }
    }
}

static int occ_count(const occupancy *o, int x0, int y0, int x1, int y1)
{
    const pare_plot_layout *l = &o->f->pub;
    int cx0 = (int)floor((double)(x0 - l->x0) / (l->x1 - l->x0) * OCC_W);
    int cx1 = (int)ceil((double)(x1 - l->x0) / (l->x1 - l->x0) * OCC_W);
    int cy0 = (int)floor((double)(y0 - l->y0) / (l->y1 - l->y0) * OCC_H);
    int cy1 = (int)ceil((double)(y1 - l->y0) / (l->y1 - l->y0) * OCC_H);
    int n = 0;
    for (int y = cy0 < 0 ? 0 : cy0; y < cy1 && y < OCC_H; y++)
        for (int x = cx0 < 0 ? 0 : cx0; x < cx1 && x < OCC_W; x++)
            n += o->cell[y][x];
    return n;
}

static void place_legend(const pare_plot *p, plot_frame *f)
{
    const plot_metrics *m = &f->m;
    int n = 0, name_w = 0;
    for (int k = 0; k < p->n_series; k++)
        if (plot_is_legend_series(&p->series[k])) {
            n++;
            name_w = (int)fmax(name_w, plot_text_width(m, p->series[k].name));
        }
    f->legend_entries = n;
    f->legend_shown = 0;
    if (n == 0 || p->opts.legend == PARE_LEGEND_NONE)
        return;
    int w, h, inset;
    if (m->terminal) {
        f->legend_swatch_w = 2;
        f->legend_row_h = 1;
        w = f->legend_swatch_w + 1 + name_w;
        h = n;
        inset = 0;
    } else {
        f->legend_swatch_w = 3 * m->char_w;
        f->legend_row_h = m->text_h + m->pad;
        w = 2 * m->pad + f->legend_swatch_w + 2 * m->pad + name_w + 2 * m->pad;
        h = m->pad + n * f->legend_row_h + m->pad;
        inset = 2 * m->pad;
    }
    const pare_plot_layout *l = &f->pub;
    if (w + 2 * inset > l->x1 - l->x0 || h + 2 * inset > l->y1 - l->y0)
        return; /* a legend larger than the plot would hide it all */
    /* candidates in matplotlib's order of preference: upper right, upper left, lower left, lower right */
    int xs[4] = {l->x1 - inset - w, l->x0 + inset, l->x0 + inset, l->x1 - inset - w};
    int ys[4] = {l->y0 + inset, l->y0 + inset, l->y1 - inset - h, l->y1 - inset - h};
    int pick = 0;
    if (p->opts.legend == PARE_LEGEND_AUTO) {
        occupancy *o = calloc(1, sizeof *o);
        if (o) {
            o->f = f;
            fill_occupancy(p, o);
            int best = -1;
            for (int c = 0; c < 4; c++) {
                int cnt = occ_count(o, xs[c], ys[c], xs[c] + w, ys[c] + h);
                if (best < 0 || cnt < best) {
                    best = cnt;
                    pick = c;
                }
            }
            free(o);
        }
    } else {
        pick = p->opts.legend - PARE_LEGEND_UPPER_RIGHT;
    }
    f->legend_shown = 1;
    f->legend_x0 = xs[pick];
    f->legend_y0 = ys[pick];
    f->legend_x1 = xs[pick] + w;
    f->legend_y1 = ys[pick] + h;
}

static void heatmap_range(plot_frame *f)
{
    const plot_series *s = f->heatmap;
    double lo = s->zmin, hi = s->zmax;
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < (size_t)s->rows * (size_t)s->cols; i++)
            if (isfinite(s->z[i])) {
                lo = fmin(lo, s->z[i]);
                hi = fmax(hi, s->z[i]);
            }
        if (!(lo <= hi))
            lo = 0, hi = 1;
        if (lo == hi)
            lo -= fmax(0.5, 0.1 * fabs(lo)), hi += fmax(0.5, 0.1 * fabs(hi));
    }
    /* limits within +-1e300 keep z - zmin and the span finite */
    f->zmin = fmax(fmin(lo, 1e300), -1e300);
    f->zmax = fmax(fmin(hi, 1e300), -1e300);
    if (!(f->zmin < f->zmax))
        f->zmin = -1e300, f->zmax = 1e300;
    lo = f->zmin;
    hi = f->zmax;
    f->cb_axis.range = (pare_axis_range){1, PARE_SCALE_LINEAR, 0, lo, hi};
}

double plot_heat_fraction(const plot_frame *f, double z)
{
    double t = (fmax(fmin(z, 1e300), -1e300) - f->zmin) / (f->zmax - f->zmin);
    return t > 0 ? (t < 1 ? t : 1) : 0;
}

pare_status plot_frame_build(const pare_plot *p, int width, int height, int terminal, plot_frame *f, pare_error *err)
{
    memset(f, 0, sizeof *f);
    const char *pname = plot_display_name(p);
    int any = 0;
    for (int k = 0; k < p->n_series && !any; k++)
        any = series_has_data(&p->series[k]);
    if (!any)
        return pare_fail(err, PARE_EINVAL, "plot '%s' has no data", pname);
    pare_status st = check_log_axes(p, err);
    if (st != PARE_OK)
        return st;

    plot_metrics *m = &f->m;
    m->terminal = terminal;
    if (terminal) {
        m->scale = m->char_w = m->text_h = m->title_h = 1;
        m->tick_len = m->pad = 0;
    } else {
        /* text and strokes grow with the picture: scale 2 at the default 1200 x 800 */
        int s = (int)lround(fmin(width / 600.0, height / 400.0));
        m->scale = s < 1 ? 1 : s;
        m->char_w = PARE_FONT_ADVANCE * m->scale;
        m->text_h = pare_text_height(m->scale);
        m->title_h = pare_text_height(m->scale + 1);
        m->tick_len = 3 * m->scale + 1;
        m->pad = 3 * m->scale;
    }
    fit_ranges(p, f);
    if (f->heatmap)
        heatmap_range(f);
    pare_plot_layout *l = &f->pub;
    l->width = width;
    l->height = height;
    const char *title = p->opts.title && *p->opts.title ? p->opts.title : NULL;
    plot_axis *X = &f->axis[PARE_AXIS_X], *Y = &f->axis[PARE_AXIS_Y], *Y2 = &f->axis[PARE_AXIS_Y2];
    int pad = m->pad;

    /* vertical: title, plot area, x ticks and x label */
    if (terminal) {
        l->y0 = (title ? 1 : 0) + (Y->label || (Y2->range.present && Y2->label) ? 1 : 0);
        l->y1 = height - 2 - (X->label ? 1 : 0);
        f->title_y = 0;
        f->ylabel_y = f->y2label_y = title ? 1 : 0;
        f->xlabel_y = height - 1;
    } else {
        l->y0 = title ? 2 * pad + m->title_h + 3 * pad : 3 * pad + m->text_h / 2;
        l->y1 = height - (m->tick_len + pad + m->text_h + (X->label ? 2 * pad + m->text_h : 0) + 2 * pad);
        f->title_y = 2 * pad;
        f->xlabel_y = l->y1 + m->tick_len + pad + m->text_h + 2 * pad;
    }
    if (l->y1 - l->y0 < (terminal ? 2 : 4 * m->text_h))
        return pare_fail(err, PARE_EINVAL, "plot '%s': %d x %d %s is too small for its labels", pname, width, height,
                         terminal ? "cells" : "pixels");
    /* y ticks need only the height; their widths set the side margins */
    l->x0 = 0;
    l->x1 = width;
    set_axis_pixels(f);
    fit_ticks(m, Y, 0);
    if (Y2->range.present)
        fit_ticks(m, Y2, 0);
    if (f->heatmap) {
        f->cb_axis.lo_px = l->y1;
        f->cb_axis.hi_px = l->y0;
        fit_ticks(m, &f->cb_axis, 0);
    }
    int left, right = 0;
    if (terminal) {
        left = widest_label(m, Y) + 1;
        if (Y2->range.present)
            right += 1 + widest_label(m, Y2);
        if (f->heatmap)
            right += 1 + 2 + 1 + widest_label(m, &f->cb_axis);
        right = right < 1 ? 1 : right;
    } else {
        left = 2 * pad + (Y->label ? m->text_h + 2 * pad : 0) + widest_label(m, Y) + pad + m->tick_len;
        if (Y2->range.present)
            right += m->tick_len + pad + widest_label(m, Y2) + (Y2->label ? 2 * pad + m->text_h : 0) + pad;
        if (f->heatmap) {
            const char *cl = f->heatmap->name && *f->heatmap->name ? f->heatmap->name : NULL;
            right += 4 * pad + 2 * m->char_w + m->tick_len + pad + widest_label(m, &f->cb_axis) +
                     (cl ? 2 * pad + m->text_h : 0);
        }
        right = (int)fmax(right + 2 * pad, 3 * m->char_w);
    }
    l->x0 = left;
    l->x1 = width - right;
    if (l->x1 - l->x0 < (terminal ? 4 : 8 * m->char_w))
        return pare_fail(err, PARE_EINVAL, "plot '%s': %d x %d %s is too small for its labels", pname, width, height,
                         terminal ? "cells" : "pixels");
    set_axis_pixels(f);
    fit_ticks(m, X, 1);

    /* positions of the texts around the area */
    if (terminal) {
        f->title_x = title ? (int)fmax(0, (width - plot_text_width(m, title)) / 2) : 0;
        f->ylabel_x = 0;
        f->y2label_x = Y2->label ? (int)fmax(0, width - plot_text_width(m, Y2->label)) : width;
        f->xlabel_x = X->label ? (int)fmax(0, (l->x0 + l->x1 - plot_text_width(m, X->label)) / 2) : 0;
        if (f->heatmap) {
            f->cb_x0 = l->x1 + (Y2->range.present ? 1 + widest_label(m, Y2) : 0) + 1;
            f->cb_x1 = f->cb_x0 + 2;
            f->cb_y0 = l->y0;
            f->cb_y1 = l->y1;
            f->colorbar_shown = 1;
        }
    } else {
        f->title_x = title ? (int)fmax(pad, (width - pare_text_width(title, m->scale + 1)) / 2) : 0;
        f->xlabel_x = X->label ? (l->x0 + l->x1 - plot_text_width(m, X->label)) / 2 : 0;
        f->ylabel_x = 2 * pad;
        f->ylabel_y = Y->label ? (l->y0 + l->y1 - plot_text_width(m, Y->label)) / 2 : 0;
        int y2w = Y2->range.present ? m->tick_len + pad + widest_label(m, Y2) : 0;
        f->y2label_x = l->x1 + y2w + 2 * pad;
        f->y2label_y = Y2->label ? (l->y0 + l->y1 - plot_text_width(m, Y2->label)) / 2 : 0;
        if (f->heatmap) {
            f->cb_x0 = l->x1 + (Y2->range.present ? y2w + (Y2->label ? 2 * pad + m->text_h : 0) + pad : 0) + 4 * pad;
            f->cb_x1 = f->cb_x0 + 2 * m->char_w;
            f->cb_y0 = l->y0;
            f->cb_y1 = l->y1;
            f->cb_label_x = f->cb_x1 + m->tick_len + pad + widest_label(m, &f->cb_axis) + 2 * pad;
            const char *cl = f->heatmap->name ? f->heatmap->name : "";
            f->cb_label_y = (l->y0 + l->y1 - plot_text_width(m, cl)) / 2;
            f->colorbar_shown = 1;
        }
    }
    place_legend(p, f);
    for (int a = 0; a < 3; a++)
        l->axis[a] = f->axis[a].range;
    return PARE_OK;
}

pare_status pare_plot_layout_canvas(const pare_plot *p, int width, int height, pare_plot_layout *out,
                                    pare_error *err)
{
    plot_frame *f = malloc(sizeof *f);
    if (!f)
        return pare_fail(err, PARE_ENOMEM, "out of memory laying out plot '%s'", plot_display_name(p));
    pare_status st = plot_frame_build(p, width, height, 0, f, err);
    if (st == PARE_OK)
        *out = f->pub;
    free(f);
    return st;
}

/* Plot descriptions: storing series and checking them against the axes. The layout both renderers
 * draw from is built in plot_ranges.c (axis mapping, bars, fitted ranges), plot_ticks.c (nice ticks
 * and their labels) and plot_layout.c (margins, legend corner, colorbar). */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    *out = (pare_series){.kind = s->kind,
                         .name = s->name,
                         .x = s->x,
                         .y = s->y,
                         .n = s->n,
                         .labels = (const char *const *)s->labels,
                         .row_labels = (const char *const *)s->row_labels,
                         .value = s->value,
                         .z = s->z,
                         .rows = s->rows,
                         .cols = s->cols,
                         .zmin = s->zmin,
                         .zmax = s->zmax,
                         .on_y2 = s->on_y2,
                         .color = s->color,
                         .marker = s->marker,
                         .baseline = s->baseline,
                         .dashed = s->dashed};
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

int plot_is_legend_series(const plot_series *s) { return takes_palette_color(s->kind) && s->name && *s->name; }

int plot_series_has_data(const plot_series *s)
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

const pare_axis_opts *plot_axis_opts(const pare_plot *p, pare_axis_id id)
{
    return id == PARE_AXIS_X ? &p->opts.x : id == PARE_AXIS_Y ? &p->opts.y : &p->opts.y2;
}

static const char *const AXIS_NAMES[3] = {"x", "y", "y2"};

/* A log axis accepts only positive data and limits; the error names the axis, the series and the value. */
pare_status plot_check_log_axes(const pare_plot *p, pare_error *err)
{
    const char *pname = plot_display_name(p);
    for (int a = 0; a < 3; a++) {
        const pare_axis_opts *o = plot_axis_opts(p, (pare_axis_id)a);
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
        int xlog = p->opts.x.scale == PARE_SCALE_LOG, ylog = plot_axis_opts(p, ya)->scale == PARE_SCALE_LOG;
        if (s->kind == PARE_SERIES_HEATMAP) {
            if (xlog || ylog)
                return pare_fail(err, PARE_EINVAL,
                                 "plot '%s': heatmap '%s' needs linear axes, but the %s axis is logarithmic", pname,
                                 sname, xlog ? "x" : AXIS_NAMES[ya]);
            continue;
        }
        if (s->kind == PARE_SERIES_VLINE || s->kind == PARE_SERIES_HLINE) {
            int on_x = s->kind == PARE_SERIES_VLINE;
            if ((on_x ? xlog : ylog) && s->value <= 0)
                return pare_fail(err, PARE_EINVAL,
                                 "plot '%s': the %s axis is logarithmic but reference line '%s' is at %s = %g", pname,
                                 on_x ? "x" : AXIS_NAMES[ya], sname, on_x ? "x" : "y", s->value);
            continue;
        }
        for (int i = 0; i < s->n; i++) {
            double x = plot_series_x(s, i), y = s->y[i];
            if (xlog && isfinite(x) && x <= 0)
                return pare_fail(err, PARE_EINVAL,
                                 "plot '%s': the x axis is logarithmic but series '%s' has x = %g at point %d%s", pname,
                                 sname, x, i, s->x ? "" : " (no x given: points are numbered from 0)");
            if (ylog && isfinite(y) && y <= 0)
                return pare_fail(err, PARE_EINVAL,
                                 "plot '%s': the %s axis is logarithmic but series '%s' has y = %g at point %d", pname,
                                 AXIS_NAMES[ya], sname, y, i);
        }
    }
    return PARE_OK;
}

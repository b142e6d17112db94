/* The plot frame both renderers draw from: margins around the axes, the legend in the corner its
 * series leave emptiest, the heatmap's colour range and colorbar. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"

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
            int j = plot_bar_index_of(p, s, NULL);
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
        any = plot_series_has_data(&p->series[k]);
    if (!any)
        return pare_fail(err, PARE_EINVAL, "plot '%s' has no data", pname);
    pare_status st = plot_check_log_axes(p, err);
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
    plot_fit_ranges(p, f);
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
    plot_fit_ticks(m, Y, 0);
    if (Y2->range.present)
        plot_fit_ticks(m, Y2, 0);
    if (f->heatmap) {
        f->cb_axis.lo_px = l->y1;
        f->cb_axis.hi_px = l->y0;
        plot_fit_ticks(m, &f->cb_axis, 0);
    }
    int left, right = 0;
    if (terminal) {
        left = plot_widest_label(m, Y) + 1;
        if (Y2->range.present)
            right += 1 + plot_widest_label(m, Y2);
        if (f->heatmap)
            right += 1 + 2 + 1 + plot_widest_label(m, &f->cb_axis);
        right = right < 1 ? 1 : right;
    } else {
        left = 2 * pad + (Y->label ? m->text_h + 2 * pad : 0) + plot_widest_label(m, Y) + pad + m->tick_len;
        if (Y2->range.present)
            right += m->tick_len + pad + plot_widest_label(m, Y2) + (Y2->label ? 2 * pad + m->text_h : 0) + pad;
        if (f->heatmap) {
            const char *cl = f->heatmap->name && *f->heatmap->name ? f->heatmap->name : NULL;
            right += 4 * pad + 2 * m->char_w + m->tick_len + pad + plot_widest_label(m, &f->cb_axis) +
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
    plot_fit_ticks(m, X, 1);

    /* positions of the texts around the area */
    if (terminal) {
        f->title_x = title ? (int)fmax(0, (width - plot_text_width(m, title)) / 2) : 0;
        f->ylabel_x = 0;
        f->y2label_x = Y2->label ? (int)fmax(0, width - plot_text_width(m, Y2->label)) : width;
        f->xlabel_x = X->label ? (int)fmax(0, (l->x0 + l->x1 - plot_text_width(m, X->label)) / 2) : 0;
        if (f->heatmap) {
            f->cb_x0 = l->x1 + (Y2->range.present ? 1 + plot_widest_label(m, Y2) : 0) + 1;
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
        int y2w = Y2->range.present ? m->tick_len + pad + plot_widest_label(m, Y2) : 0;
        f->y2label_x = l->x1 + y2w + 2 * pad;
        f->y2label_y = Y2->label ? (l->y0 + l->y1 - plot_text_width(m, Y2->label)) / 2 : 0;
        if (f->heatmap) {
            f->cb_x0 = l->x1 + (Y2->range.present ? y2w + (Y2->label ? 2 * pad + m->text_h : 0) + pad : 0) + 4 * pad;
            f->cb_x1 = f->cb_x0 + 2 * m->char_w;
            f->cb_y0 = l->y0;
            f->cb_y1 = l->y1;
            f->cb_label_x = f->cb_x1 + m->tick_len + pad + plot_widest_label(m, &f->cb_axis) + 2 * pad;
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

pare_status pare_plot_layout_canvas(const pare_plot *p, int width, int height, pare_plot_layout *out, pare_error *err)
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

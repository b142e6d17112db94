/* The canvas renderer of plots (and through it the PNG writer): grid, data, frame, ticks, labels,
 * legend and colorbar, in that order, from the frame computed in plot.c. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pare_rgba WHITE = {255, 255, 255, 255};
static const pare_rgba TEXT = {32, 32, 32, 255};
static const pare_rgba FRAME = {64, 64, 64, 255};
static const pare_rgba GRID = {230, 230, 230, 255};
static const pare_rgba LABEL_BACKDROP = {255, 255, 255, 200};

static pare_rgba with_alpha(pare_rgba c, uint8_t a)
{
    c.a = (uint8_t)(c.a * a / 255);
    return c;
}

typedef struct {
    const pare_plot *p;
    const plot_frame *f;
    pare_canvas *c;
    int scale;
    double line_w, marker_size, dash;
} render_ctx;

static void draw_grid(render_ctx *r)
{
    const plot_frame *f = r->f;
    const pare_plot_layout *l = &f->pub;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = &f->axis[PARE_AXIS_Y];
    int w = r->scale > 2 ? r->scale / 2 : 1;
    for (int i = 0; i < X->n_ticks; i++)
        if (X->ticks[i].major) {
            double px = floor(plot_axis_map(X, X->ticks[i].value));
            pare_canvas_fill_rect(r->c, px, l->y0, px + w, l->y1, GRID);
        }
    for (int i = 0; i < Y->n_ticks; i++)
        if (Y->ticks[i].major) {
            double py = floor(plot_axis_map(Y, Y->ticks[i].value));
            pare_canvas_fill_rect(r->c, l->x0, py, l->x1, py + w, GRID);
        }
}

static void draw_heatmap(render_ctx *r, const plot_series *s)
{
    const plot_frame *f = r->f;
    const pare_plot_layout *l = &f->pub;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(f, s);
    pare_rgba lut[PARE_COLORMAP_LEVELS];
    for (int i = 0; i < PARE_COLORMAP_LEVELS; i++)
        lut[i] = pare_colormap_sequential(i / (double)(PARE_COLORMAP_LEVELS - 1));
    for (int py = l->y0; py < l->y1; py++) {
        /* the data value at the pixel centre, by inverting the (linear) axis mapping */
        double v = Y->range.min + (py + 0.5 - Y->lo_px) / (Y->hi_px - Y->lo_px) * (Y->range.max - Y->range.min);
        double row = floor(v + 0.5);
        if (!(row >= 0 && row < s->rows))
            continue;
        for (int px = l->x0; px < l->x1; px++) {
            double u = X->range.min + (px + 0.5 - X->lo_px) / (X->hi_px - X->lo_px) * (X->range.max - X->range.min);
            double col = floor(u + 0.5);
            if (!(col >= 0 && col < s->cols))
                continue;
            double z = s->z[(size_t)row * s->cols + (size_t)col];
            if (!isfinite(z))
                continue;
            double t = plot_heat_fraction(f, z);
            pare_canvas_set(r->c, px, py, lut[(int)lround(t * (PARE_COLORMAP_LEVELS - 1))]);
        }
    }
}

/* Points of a series in pixels (NaN where a value is missing). */
static int map_points(render_ctx *r, const plot_series *s, double **xs, double **ys)
{
    *xs = malloc((size_t)(s->n ? s->n : 1) * sizeof **xs);
    *ys = malloc((size_t)(s->n ? s->n : 1) * sizeof **ys);
    if (!*xs || !*ys) {
        free(*xs);
        free(*ys);
        return 0;
    }
    const plot_axis *X = &r->f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(r->f, s);
    for (int i = 0; i < s->n; i++) {
        (*xs)[i] = plot_axis_map(X, plot_series_x(s, i));
        (*ys)[i] = plot_axis_map(Y, s->y[i]);
        if (!isfinite((*xs)[i]) || !isfinite((*ys)[i]))
            (*xs)[i] = (*ys)[i] = NAN;
    }
    return 1;
}

/* The region under each unbroken run of points, down to the baseline (the axis bottom on a log axis). */
static pare_status fill_area(render_ctx *r, const plot_series *s, const double *xs, const double *ys)
{
    const plot_axis *Y = plot_series_y_axis(r->f, s);
    double base = Y->range.scale == PARE_SCALE_LOG ? Y->lo_px : plot_axis_map(Y, s->baseline);
    double *px = malloc((size_t)(s->n + 2) * sizeof *px), *py = malloc((size_t)(s->n + 2) * sizeof *py);
    if (!px || !py) {
        free(px);
        free(py);
        return PARE_ENOMEM;
    }
    for (int i = 0; i < s->n;) {
        if (!isfinite(xs[i])) {
            i++;
            continue;
        }
        int k = 0;
        for (; i < s->n && isfinite(xs[i]); i++, k++) {
            px[k] = xs[i];
            py[k] = ys[i];
        }
        px[k] = px[k - 1];
        py[k] = base;
        px[k + 1] = px[0];
        py[k + 1] = base;
        pare_canvas_polygon(r->c, px, py, k + 2, with_alpha(s->color, 64));
    }
    free(px);
    free(py);
    return PARE_OK;
}

static pare_status draw_series(render_ctx *r, const plot_series *s, int bar_index)
{
    const plot_frame *f = r->f;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(f, s);
    if (s->kind == PARE_SERIES_BARS) {
        for (int i = 0; i < s->n; i++) {
            double tx0, tx1, yb, yt;
            if (plot_bar_geometry(r->p, f, s, bar_index, i, &tx0, &tx1, &yb, &yt))
                pare_canvas_fill_rect(r->c, plot_axis_map_t(X, tx0), isfinite(yb) ? plot_axis_map(Y, yb) : Y->lo_px,
                                      plot_axis_map_t(X, tx1), plot_axis_map(Y, yt), s->color);
        }
        return PARE_OK;
    }
    double *xs, *ys;
    if (!map_points(r, s, &xs, &ys))
        return PARE_ENOMEM;
    pare_status st = PARE_OK;
    if (s->kind == PARE_SERIES_AREA)
        st = fill_area(r, s, xs, ys);
    if (s->kind != PARE_SERIES_MARKERS)
        pare_canvas_polyline(r->c, xs, ys, s->n, r->line_w, s->dashed ? r->dash : 0, s->color);
    if (s->kind == PARE_SERIES_MARKERS || s->kind == PARE_SERIES_LINE_MARKERS)
        for (int i = 0; i < s->n; i++)
            pare_canvas_marker(r->c, xs[i], ys[i], s->marker, r->marker_size, s->color);
    free(xs);
    free(ys);
    return st;
}

static void text_with_backdrop(render_ctx *r, int x, int y, const char *s, pare_rgba color)
{
    int w = pare_text_width(s, r->scale), h = pare_text_height(r->scale), b = r->scale;
    pare_canvas_fill_rect(r->c, x - b, y - b, x + w + b, y + h + b, LABEL_BACKDROP);
    pare_canvas_text(r->c, x, y, s, r->scale, color);
}

static void draw_reference(render_ctx *r, const plot_series *s, int vline_index, int label)
{
    const plot_frame *f = r->f;
    const pare_plot_layout *l = &f->pub;
    const plot_metrics *m = &f->m;
    int pad = m->pad;
    const char *name = s->name && *s->name ? s->name : NULL;
    if (s->kind == PARE_SERIES_HLINE) {
        double py = plot_axis_map(plot_series_y_axis(f, s), s->value);
        if (!label) {
            double xs[2] = {l->x0, l->x1}, ys[2] = {py, py};
            pare_canvas_polyline(r->c, xs, ys, 2, r->line_w, s->dashed ? r->dash : 0, s->color);
        } else if (name && py >= l->y0 && py <= l->y1) {
            int w = pare_text_width(name, r->scale), y = (int)lround(py) - pad - m->text_h;
            if (y < l->y0 + pad)
                y = (int)lround(py) + pad + r->scale;
            text_with_backdrop(r, l->x1 - pad - w, y, name, s->color);
        }
    } else {
        double px = plot_axis_map(&f->axis[PARE_AXIS_X], s->value);
        if (!label) {
            double xs[2] = {px, px}, ys[2] = {l->y0, l->y1};
            pare_canvas_polyline(r->c, xs, ys, 2, r->line_w, s->dashed ? r->dash : 0, s->color);
        } else if (name && px >= l->x0 && px <= l->x1) {
            /* labels of successive vertical lines go one under the other so that close lines stay legible */
            int w = pare_text_width(name, r->scale), y = l->y0 + pad + vline_index * (m->text_h + pad);
            int x = (int)lround(px) + pad;
            if (x + w > l->x1 - pad)
                x = (int)lround(px) - pad - w;
            text_with_backdrop(r, x, y, name, s->color);
        }
    }
}

static void draw_axes(render_ctx *r)
{
    const plot_frame *f = r->f;
    const pare_plot_layout *l = &f->pub;
    const plot_metrics *m = &f->m;
    pare_canvas *c = r->c;
    int ft = r->scale > 2 ? r->scale / 2 : 1, pad = m->pad;
    pare_canvas_fill_rect(c, l->x0 - ft, l->y0 - ft, l->x1 + ft, l->y0, FRAME);
    pare_canvas_fill_rect(c, l->x0 - ft, l->y1, l->x1 + ft, l->y1 + ft, FRAME);
    pare_canvas_fill_rect(c, l->x0 - ft, l->y0, l->x0, l->y1, FRAME);
    pare_canvas_fill_rect(c, l->x1, l->y0, l->x1 + ft, l->y1, FRAME);
    const plot_axis *X = &f->axis[PARE_AXIS_X];
    for (int i = 0; i < X->n_ticks; i++) {
        const plot_tick *t = &X->ticks[i];
        double px = floor(plot_axis_map(X, t->value));
        int len = t->major ? m->tick_len : m->tick_len / 2 + 1;
        pare_canvas_fill_rect(c, px, l->y1 + ft, px + ft, l->y1 + ft + len, FRAME);
        if (t->major) {
            int w = pare_text_width(t->label, r->scale), x = (int)lround(px + ft / 2.0 - w / 2.0);
            x = x < 0 ? 0 : x + w > l->width ? l->width - w : x;
            pare_canvas_text(c, x, l->y1 + ft + m->tick_len + pad, t->label, r->scale, TEXT);
        }
    }
    for (int a = PARE_AXIS_Y; a <= PARE_AXIS_Y2; a++) {
        const plot_axis *Y = &f->axis[a];
        if (!Y->range.present)
            continue;
        for (int i = 0; i < Y->n_ticks; i++) {
            const plot_tick *t = &Y->ticks[i];
            double py = floor(plot_axis_map(Y, t->value));
            int len = t->major ? m->tick_len : m->tick_len / 2 + 1;
            if (a == PARE_AXIS_Y)
                pare_canvas_fill_rect(c, l->x0 - ft - len, py, l->x0 - ft, py + ft, FRAME);
            else
                pare_canvas_fill_rect(c, l->x1 + ft, py, l->x1 + ft + len, py + ft, FRAME);
            if (!t->major)
                continue;
            int w = pare_text_width(t->label, r->scale);
            /* centred on the capitals (7 of the font's 9 rows) */
            int y = (int)lround(py + ft / 2.0 - 3.5 * r->scale);
            int x = a == PARE_AXIS_Y ? l->x0 - ft - m->tick_len - pad - w : l->x1 + ft + m->tick_len + pad;
            pare_canvas_text(c, x, y, t->label, r->scale, TEXT);
        }
    }
}

static void draw_colorbar(render_ctx *r)
{
    const plot_frame *f = r->f;
    const plot_metrics *m = &f->m;
    pare_canvas *c = r->c;
    int ft = r->scale > 2 ? r->scale / 2 : 1;
    for (int y = f->cb_y0; y < f->cb_y1; y++) {
        double t = (f->cb_y1 - (y + 0.5)) / (f->cb_y1 - f->cb_y0);
        pare_canvas_fill_rect(c, f->cb_x0, y, f->cb_x1, y + 1, pare_colormap_sequential(t));
    }
    pare_canvas_fill_rect(c, f->cb_x0 - ft, f->cb_y0 - ft, f->cb_x1 + ft, f->cb_y0, FRAME);
    pare_canvas_fill_rect(c, f->cb_x0 - ft, f->cb_y1, f->cb_x1 + ft, f->cb_y1 + ft, FRAME);
    pare_canvas_fill_rect(c, f->cb_x0 - ft, f->cb_y0, f->cb_x0, f->cb_y1, FRAME);
    pare_canvas_fill_rect(c, f->cb_x1, f->cb_y0, f->cb_x1 + ft, f->cb_y1, FRAME);
    const plot_axis *a = &f->cb_axis;
    for (int i = 0; i < a->n_ticks; i++) {
        double py = floor(plot_axis_map(a, a->ticks[i].value));
        pare_canvas_fill_rect(c, f->cb_x1 + ft, py, f->cb_x1 + ft + m->tick_len, py + ft, FRAME);
        pare_canvas_text(c, f->cb_x1 + ft + m->tick_len + m->pad, (int)lround(py - 3.5 * r->scale), a->ticks[i].label,
                         r->scale, TEXT);
    }
    if (f->heatmap->name && *f->heatmap->name)
        pare_canvas_text_vertical(c, f->cb_label_x, f->cb_label_y, f->heatmap->name, r->scale, TEXT);
}

static void draw_legend(render_ctx *r)
{
    const plot_frame *f = r->f;
    const plot_metrics *m = &f->m;
    pare_canvas *c = r->c;
    int pad = m->pad;
    pare_canvas_fill_rect(c, f->legend_x0, f->legend_y0, f->legend_x1, f->legend_y1, (pare_rgba){255, 255, 255, 230});
    pare_rgba border = {176, 176, 176, 255};
    pare_canvas_fill_rect(c, f->legend_x0, f->legend_y0, f->legend_x1, f->legend_y0 + 1, border);
    pare_canvas_fill_rect(c, f->legend_x0, f->legend_y1 - 1, f->legend_x1, f->legend_y1, border);
    pare_canvas_fill_rect(c, f->legend_x0, f->legend_y0, f->legend_x0 + 1, f->legend_y1, border);
    pare_canvas_fill_rect(c, f->legend_x1 - 1, f->legend_y0, f->legend_x1, f->legend_y1, border);
    int row = 0;
    for (int k = 0; k < r->p->n_series; k++) {
        const plot_series *s = &r->p->series[k];
        if (!plot_is_legend_series(s))
            continue;
        int top = f->legend_y0 + pad + row * f->legend_row_h;
        double cy = top + 3.5 * r->scale, sx0 = f->legend_x0 + 2 * pad, sx1 = sx0 + f->legend_swatch_w;
        if (s->kind == PARE_SERIES_BARS || s->kind == PARE_SERIES_AREA) {
            pare_canvas_fill_rect(c, sx0, top, sx1, top + 7 * r->scale,
                                  s->kind == PARE_SERIES_AREA ? with_alpha(s->color, 64) : s->color);
            if (s->kind == PARE_SERIES_AREA)
                pare_canvas_line(c, sx0, top + r->line_w / 2, sx1, top + r->line_w / 2, r->line_w, s->color);
        }
        if (s->kind == PARE_SERIES_LINE || s->kind == PARE_SERIES_LINE_MARKERS) {
            double xs[2] = {sx0, sx1}, ys[2] = {cy, cy};
            pare_canvas_polyline(c, xs, ys, 2, r->line_w, s->dashed ? r->dash : 0, s->color);
        }
        if (s->kind == PARE_SERIES_MARKERS || s->kind == PARE_SERIES_LINE_MARKERS)
            pare_canvas_marker(c, (sx0 + sx1) / 2, cy, s->marker, r->marker_size, s->color);
        pare_canvas_text(c, (int)sx1 + 2 * pad, top, s->name, r->scale, TEXT);
        row++;
    }
}

/* The title at the largest scale that fits, cut with "..." when even the smallest does not. */
static void draw_title(render_ctx *r, const char *title)
{
    const plot_frame *f = r->f;
    int width = f->pub.width, margin = 2 * f->m.pad;
    for (int s = r->scale + 1; s >= 1; s--) {
        int w = pare_text_width(title, s);
        if (w <= width - 2 * margin || s == 1) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s", title);
            size_t n = strlen(buf);
            while (n > 3 && pare_text_width(buf, s) > width - 2 * margin) {
                buf[--n] = '\0';
                memcpy(buf + n - 3, "...", 3);
            }
            w = pare_text_width(buf, s);
            int x = (width - w) / 2;
            pare_canvas_text(r->c, x < 0 ? 0 : x, f->title_y + (pare_text_height(r->scale + 1) - pare_text_height(s)),
                             buf, s, TEXT);
            return;
        }
    }
}

pare_status pare_plot_render(const pare_plot *p, pare_canvas *c, pare_error *err)
{
    plot_frame *f = malloc(sizeof *f);
    if (!f)
        return pare_fail(err, PARE_ENOMEM, "out of memory rendering plot '%s'", plot_display_name(p));
    pare_status st = plot_frame_build(p, c->width, c->height, 0, f, err);
    if (st != PARE_OK) {
        free(f);
        return st;
    }
    const pare_plot_layout *l = &f->pub;
    render_ctx r = {p, f, c, f->m.scale, f->m.scale, 4 * f->m.scale + 2, 6 * f->m.scale};
    pare_canvas_reset_clip(c);
    pare_canvas_fill(c, WHITE);
    if (!p->opts.hide_grid && !f->heatmap)
        draw_grid(&r);
    pare_canvas_set_clip(c, l->x0, l->y0, l->x1, l->y1);
    if (f->heatmap)
        draw_heatmap(&r, f->heatmap);
    int bar_index = 0;
    for (int k = 0; k < p->n_series && st == PARE_OK; k++) {
        const plot_series *s = &p->series[k];
        if (s->kind == PARE_SERIES_HEATMAP || s->kind == PARE_SERIES_HLINE || s->kind == PARE_SERIES_VLINE)
            continue;
        st = draw_series(&r, s, bar_index);
        bar_index += s->kind == PARE_SERIES_BARS;
    }
    for (int pass = 0; pass < 2 && st == PARE_OK; pass++) {
        int vline_index = 0;
        for (int k = 0; k < p->n_series; k++) {
            const plot_series *s = &p->series[k];
            if (s->kind == PARE_SERIES_HLINE || s->kind == PARE_SERIES_VLINE)
                draw_reference(&r, s, vline_index, pass);
            vline_index += s->kind == PARE_SERIES_VLINE && s->name && *s->name;
        }
    }
    pare_canvas_reset_clip(c);
    if (st != PARE_OK) {
        free(f);
        return pare_fail(err, st, "out of memory rendering plot '%s'", plot_display_name(p));
    }
    draw_axes(&r);
    if (f->colorbar_shown)
        draw_colorbar(&r);
    if (f->legend_shown)
        draw_legend(&r);
    if (p->opts.title && *p->opts.title)
        draw_title(&r, p->opts.title);
    if (f->axis[PARE_AXIS_X].label)
        pare_canvas_text(c, f->xlabel_x, f->xlabel_y, f->axis[PARE_AXIS_X].label, r.scale, TEXT);
    if (f->axis[PARE_AXIS_Y].label)
        pare_canvas_text_vertical(c, f->ylabel_x, f->ylabel_y, f->axis[PARE_AXIS_Y].label, r.scale, TEXT);
    if (f->axis[PARE_AXIS_Y2].range.present && f->axis[PARE_AXIS_Y2].label)
        pare_canvas_text_vertical(c, f->y2label_x, f->y2label_y, f->axis[PARE_AXIS_Y2].label, r.scale, TEXT);
    free(f);
    return PARE_OK;
}

pare_status pare_plot_write_png(const pare_plot *p, const char *path, int width, int height, const pare_png_meta *meta,
                                pare_error *err)
{
    if (width == 0)
        width = PARE_PLOT_DEFAULT_WIDTH;
    if (height == 0)
        height = PARE_PLOT_DEFAULT_HEIGHT;
    pare_canvas *c;
    pare_status st = pare_canvas_create(width, height, WHITE, &c, err);
    if (st != PARE_OK)
        return pare_wrap(err, "%s", path);
    st = pare_plot_render(p, c, err);
    if (st == PARE_OK) {
        pare_png_meta m = meta ? *meta : (pare_png_meta){0};
        if (!m.title)
            m.title = p->opts.title;
        st = pare_png_write(c, path, &m, err);
    } else {
        pare_wrap(err, "%s", path);
    }
    pare_canvas_free(c);
    return st;
}

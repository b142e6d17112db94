/* The terminal renderer of plots: the frame of plot.c laid out in character cells, data drawn on a
 * grid of dots (braille 2x4 or quadrant blocks 2x2 per cell, or one ASCII character per cell), and
 * the result handed over as cells with a colour index each, for the TUI to draw with ncurses. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Braille dot bits by (row, column) within a cell, as numbered by Unicode (dots 1-8). */
static const uint8_t BRAILLE_BIT[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
/* Quadrant blocks indexed by upper-left | upper-right << 1 | lower-left << 2 | lower-right << 3. */
static const char *const QUADRANTS[16] = {" ",      "\u2598", "\u259d", "\u2580", "\u2596", "\u258c",
                                          "\u259e", "\u259b", "\u2597", "\u259a", "\u2590", "\u259c",
                                          "\u2584", "\u2599", "\u259f", "\u2588"};
static const char *const SHADES[4] = {"\u2591", "\u2592", "\u2593", "\u2588"};
static const char ASCII_SHADES[] = " .:-=+*#%@";
static const char ASCII_LINES[] = "*+:%@&=~";
static const char ASCII_MARKERS[] = "oo#^x"; /* by pare_marker (auto, circle, square, triangle, cross) */

typedef struct {
    const char *vertical, *horizontal, *corner_left, *corner_right, *tick_left, *tick_right, *tick_bottom, *line_swatch,
        *fill_swatch;
} box_chars;

static const box_chars UNICODE_BOX = {"\u2502", "\u2500", "\u2514", "\u2518", "\u2524",
                                      "\u251c", "\u252c", "\u2500", "\u2588"};
static const box_chars ASCII_BOX = {"|", "-", "+", "+", "+", "+", "+", "-", "#"};

void pare_term_cell_dots(pare_term_mode mode, int *dots_x, int *dots_y)
{
    *dots_x = mode == PARE_TERM_ASCII ? 1 : 2;
    *dots_y = mode == PARE_TERM_BRAILLE ? 4 : mode == PARE_TERM_BLOCK ? 2 : 1;
}

typedef struct {
    const pare_plot *p;
    const plot_frame *f;
    pare_term_grid *g;
    pare_term_mode mode;
    const box_chars *box;
    int sx, sy;     /* dots per cell */
    int aw, ah;     /* plot area in cells */
    uint8_t *bits;  /* per area cell: dots set */
    uint8_t *color; /* per area cell: colour of the last series drawn there */
    char *ascii;    /* per area cell: character of that series (ASCII mode) */
} term_ctx;

static pare_term_cell *cell_at(pare_term_grid *g, int col, int row)
{
    return col >= 0 && row >= 0 && col < g->cols && row < g->rows ? &g->cells[(size_t)row * g->cols + col] : NULL;
}

static void put_cell(pare_term_grid *g, int col, int row, const char *s, int color)
{
    pare_term_cell *c = cell_at(g, col, row);
    if (!c)
        return;
    snprintf(c->text, sizeof c->text, "%s", s);
    c->color = (uint8_t)color;
}

/* Writes text from (col, row) one character per cell, replacing non-ASCII characters by '?' in
 * ASCII mode. Returns the number of cells used. */
static int put_text(term_ctx *t, int col, int row, const char *s, int color)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; n++) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
        char ch[8] = "?";
        int valid = 1;
        for (int i = 1; i < len; i++)
            valid &= (p[i] & 0xc0) == 0x80;
        if (!valid)
            len = 1;
        if (valid && (len == 1 || t->mode != PARE_TERM_ASCII)) {
            memcpy(ch, p, (size_t)len);
            ch[len] = '\0';
        }
        if (len == 1 && (*p < 32 || *p > 126))
            snprintf(ch, sizeof ch, "?");
        put_cell(t->g, col + n, row, ch, color);
        p += len;
    }
    return n;
}

static void set_dot(term_ctx *t, int dx, int dy, int color, char ascii)
{
    if (dx < 0 || dy < 0 || dx >= t->aw * t->sx || dy >= t->ah * t->sy)
        return;
    int cx = dx / t->sx, cy = dy / t->sy, bx = dx % t->sx, by = dy % t->sy;
    size_t i = (size_t)cy * t->aw + cx;
    if (t->mode == PARE_TERM_BRAILLE)
        t->bits[i] |= BRAILLE_BIT[by][bx];
    else if (t->mode == PARE_TERM_BLOCK)
        t->bits[i] |= (uint8_t)(1 << (by * 2 + bx));
    else
        t->bits[i] = 1;
    t->color[i] = (uint8_t)color;
    t->ascii[i] = ascii;
}

/* Continuous dot coordinates of a value pair (NaN when not shown). */
static void to_dots(const term_ctx *t, const plot_axis *X, const plot_axis *Y, double x, double y, double *dx,
                    double *dy)
{
    *dx = (plot_axis_map(X, x) - t->f->pub.x0) * t->sx;
    *dy = (plot_axis_map(Y, y) - t->f->pub.y0) * t->sy;
}

/* v as a dot index limited to [lo, hi] (NaN gives lo): far-away data never overflows an int. */
static int clamp_dot(double v, int lo, int hi) { return !(v > lo) ? lo : v > hi ? hi : (int)v; }

/* Bresenham between the dots holding the two ends; dashed lines skip dots in a 3-on 2-off rhythm. */
static void dot_line(term_ctx *t, double x0, double y0, double x1, double y1, int dashed, int color, char ascii)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    double w = t->aw * t->sx, h = t->ah * t->sy;
    if (!pare_clip_segment(&x0, &y0, &x1, &y1, 0, 0, w - 1e-9, h - 1e-9) || !isfinite(x0) || !isfinite(y0) ||
        !isfinite(x1) || !isfinite(y1))
        return;
    int ax = (int)floor(x0), ay = (int)floor(y0), bx = (int)floor(x1), by = (int)floor(y1);
    int dx = abs(bx - ax), dy = -abs(by - ay), stx = ax < bx ? 1 : -1, sty = ay < by ? 1 : -1, e = dx + dy;
    for (int step = 0;; step++) {
        if (!dashed || step % 5 < 3)
            set_dot(t, ax, ay, color, ascii);
        if (ax == bx && ay == by)
            break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            ax += stx;
        }
        if (e2 <= dx) {
            e += dx;
            ay += sty;
        }
    }
}

/* Dots whose centre lies in the rectangle; checker leaves every other dot (area fills). */
static void dot_rect(term_ctx *t, double x0, double y0, double x1, double y1, int checker, int color, char ascii)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    double lx = fmin(x0, x1), hx = fmax(x0, x1), ly = fmin(y0, y1), hy = fmax(y0, y1);
    int xa = clamp_dot(ceil(lx - 0.5), 0, t->aw * t->sx), xb = clamp_dot(ceil(hx - 0.5), 0, t->aw * t->sx);
    int ya = clamp_dot(ceil(ly - 0.5), 0, t->ah * t->sy), yb = clamp_dot(ceil(hy - 0.5), 0, t->ah * t->sy);
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++)
            if (!checker || (x + y) % 2 == 0)
                set_dot(t, x, y, color, ascii);
}

static void draw_points_series(term_ctx *t, const plot_series *s, int index)
{
    const plot_frame *f = t->f;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(f, s);
    char line_ch = ASCII_LINES[(s->palette_index >= 0 ? s->palette_index : index) % (int)(sizeof ASCII_LINES - 1)];
    char marker_ch = ASCII_MARKERS[s->marker];
    double base = Y->range.scale == PARE_SCALE_LOG ? (Y->lo_px - f->pub.y0) * t->sy
                                                   : (plot_axis_map(Y, s->baseline) - f->pub.y0) * t->sy;
    double px = NAN, py = NAN;
    for (int i = 0; i < s->n; i++) {
        double x, y;
        to_dots(t, X, Y, plot_series_x(s, i), s->y[i], &x, &y);
        if (s->kind == PARE_SERIES_AREA && t->mode != PARE_TERM_ASCII && isfinite(px) && isfinite(x)) {
            /* the fill: columns between the two points down to the baseline */
            int c0 = clamp_dot(floor(fmin(px, x)), 0, t->aw * t->sx - 1),
                c1 = clamp_dot(floor(fmax(px, x)), -1, t->aw * t->sx - 1);
            for (int c = c0; c <= c1; c++) {
                double u = x != px ? (c + 0.5 - px) / (x - px) : 0;
                u = u < 0 ? 0 : u > 1 ? 1 : u;
                dot_rect(t, c, py + u * (y - py), c + 1, base, 1, s->term_color, line_ch);
            }
        }
        if (s->kind != PARE_SERIES_MARKERS && isfinite(px) && isfinite(x))
            dot_line(t, px, py, x, y, s->dashed, s->term_color, line_ch);
        if (s->kind != PARE_SERIES_MARKERS && isfinite(x) && !(i > 0 && isfinite(px)))
            dot_line(t, x, y, x, y, 0, s->term_color, line_ch); /* an isolated point still shows */
        px = x;
        py = y;
    }
    if (s->kind == PARE_SERIES_MARKERS || s->kind == PARE_SERIES_LINE_MARKERS)
        for (int i = 0; i < s->n; i++) {
            double x, y;
            to_dots(t, X, Y, plot_series_x(s, i), s->y[i], &x, &y);
            if (!isfinite(x) || !isfinite(y) || x < 0 || y < 0 || x >= t->aw * t->sx || y >= t->ah * t->sy)
                continue;
            int dx = (int)floor(x), dy = (int)floor(y);
            if (t->mode == PARE_TERM_BRAILLE) { /* a 2 x 2 block of dots so markers stand out from lines */
                dx -= dx > 0;
                dy -= dy > 0;
                for (int k = 0; k < 4; k++)
                    set_dot(t, dx + k % 2, dy + k / 2, s->term_color, marker_ch);
            } else {
                set_dot(t, dx, dy, s->term_color, marker_ch);
            }
        }
}

static void draw_bars(term_ctx *t, const plot_series *s, int bar_index)
{
    const plot_frame *f = t->f;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(f, s);
    for (int i = 0; i < s->n; i++) {
        double tx0, tx1, yb, yt;
        if (!plot_bar_geometry(t->p, f, s, bar_index, i, &tx0, &tx1, &yb, &yt))
            continue;
        double x0 = (plot_axis_map_t(X, tx0) - f->pub.x0) * t->sx, x1 = (plot_axis_map_t(X, tx1) - f->pub.x0) * t->sx;
        double y0 = ((isfinite(yb) ? plot_axis_map(Y, yb) : Y->lo_px) - f->pub.y0) * t->sy;
        double y1 = (plot_axis_map(Y, yt) - f->pub.y0) * t->sy;
        /* a bar narrower than a dot still gets one column */
        if (fabs(x1 - x0) < 1) {
            double c = floor((x0 + x1) / 2) + 0.5;
            x0 = c - 0.5;
            x1 = c + 0.5;
        }
        dot_rect(t, x0, y0, x1, y1, 0, s->term_color, '#');
    }
}

static void draw_reference_line(term_ctx *t, const plot_series *s)
{
    const plot_frame *f = t->f;
    double w = t->aw * t->sx, h = t->ah * t->sy;
    if (s->kind == PARE_SERIES_HLINE) {
        double y = (plot_axis_map(plot_series_y_axis(f, s), s->value) - f->pub.y0) * t->sy;
        dot_line(t, 0, y, w, y, s->dashed, s->term_color, '-');
    } else {
        double x = (plot_axis_map(&f->axis[PARE_AXIS_X], s->value) - f->pub.x0) * t->sx;
        dot_line(t, x, 0, x, h, s->dashed, s->term_color, '|');
    }
}

static void draw_heatmap(term_ctx *t, const plot_series *s)
{
    const plot_frame *f = t->f;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = plot_series_y_axis(f, s);
    for (int cy = 0; cy < t->ah; cy++) {
        double yc = f->pub.y0 + cy + 0.5;
        double v = Y->range.min + (yc - Y->lo_px) / (Y->hi_px - Y->lo_px) * (Y->range.max - Y->range.min);
        double row = floor(v + 0.5);
        if (!(row >= 0 && row < s->rows))
            continue;
        for (int cx = 0; cx < t->aw; cx++) {
            double xc = f->pub.x0 + cx + 0.5;
            double u = X->range.min + (xc - X->lo_px) / (X->hi_px - X->lo_px) * (X->range.max - X->range.min);
            double col = floor(u + 0.5);
            if (!(col >= 0 && col < s->cols))
                continue;
            double z = s->z[(size_t)row * s->cols + (size_t)col];
            if (!isfinite(z))
                continue;
            double tz = plot_heat_fraction(f, z);
            char ch[8];
            if (t->mode == PARE_TERM_ASCII)
                snprintf(ch, sizeof ch, "%c", ASCII_SHADES[1 + (int)(tz * 8.999)]);
            else
                snprintf(ch, sizeof ch, "%s", SHADES[(int)(tz * 3.999)]);
            put_cell(t->g, f->pub.x0 + cx, f->pub.y0 + cy, ch,
                     PARE_TERM_COLOR_RAMP((int)(tz * (PARE_TERM_RAMP_LEVELS - 0.001))));
        }
    }
}

/* Moves the dots of the plot area into the grid (cells without dots keep what is there, e.g. the heatmap). */
static void flush_dots(term_ctx *t)
{
    for (int cy = 0; cy < t->ah; cy++)
        for (int cx = 0; cx < t->aw; cx++) {
            size_t i = (size_t)cy * t->aw + cx;
            uint8_t b = t->bits[i];
            if (!b)
                continue;
            char ch[8];
            if (t->mode == PARE_TERM_BRAILLE) {
                unsigned cp = 0x2800u + b;
                ch[0] = (char)(0xe0 | (cp >> 12));
                ch[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                ch[2] = (char)(0x80 | (cp & 0x3f));
                ch[3] = '\0';
            } else if (t->mode == PARE_TERM_BLOCK) {
                snprintf(ch, sizeof ch, "%s", QUADRANTS[b & 15]);
            } else {
                ch[0] = t->ascii[i];
                ch[1] = '\0';
            }
            put_cell(t->g, t->f->pub.x0 + cx, t->f->pub.y0 + cy, ch, t->color[i]);
        }
}

static int tick_row(const plot_frame *f, const plot_axis *a, double v)
{
    return clamp_dot(floor(plot_axis_map(a, v)), f->pub.y0, f->pub.y1 - 1);
}

static void draw_axes(term_ctx *t)
{
    const plot_frame *f = t->f;
    const pare_plot_layout *l = &f->pub;
    const box_chars *b = t->box;
    pare_term_grid *g = t->g;
    const plot_axis *X = &f->axis[PARE_AXIS_X], *Y = &f->axis[PARE_AXIS_Y], *Y2 = &f->axis[PARE_AXIS_Y2];
    for (int r = l->y0; r < l->y1; r++) {
        put_cell(g, l->x0 - 1, r, b->vertical, 0);
        if (Y2->range.present)
            put_cell(g, l->x1, r, b->vertical, 0);
    }
    for (int c = l->x0; c < l->x1; c++)
        put_cell(g, c, l->y1, b->horizontal, 0);
    put_cell(g, l->x0 - 1, l->y1, b->corner_left, 0);
    if (Y2->range.present)
        put_cell(g, l->x1, l->y1, b->corner_right, 0);
    int prev_end = -1;
    for (int i = 0; i < X->n_ticks; i++) {
        const plot_tick *tk = &X->ticks[i];
        if (!tk->major)
            continue;
        int c = clamp_dot(floor(plot_axis_map(X, tk->value)), l->x0, l->x1 - 1);
        put_cell(g, c, l->y1, b->tick_bottom, 0);
        int w = plot_text_width(&f->m, tk->label), start = c - w / 2;
        start = start < 0 ? 0 : start + w > g->cols ? g->cols - w : start;
        if (start > prev_end) {
            put_text(t, start, l->y1 + 1, tk->label, 0);
            prev_end = start + w;
        }
    }
    for (int a = PARE_AXIS_Y; a <= PARE_AXIS_Y2; a++) {
        const plot_axis *ax = a == PARE_AXIS_Y ? Y : Y2;
        if (!ax->range.present)
            continue;
        for (int i = 0; i < ax->n_ticks; i++) {
            const plot_tick *tk = &ax->ticks[i];
            if (!tk->major)
                continue;
            int r = tick_row(f, ax, tk->value), w = plot_text_width(&f->m, tk->label);
            if (a == PARE_AXIS_Y) {
                put_cell(g, l->x0 - 1, r, b->tick_left, 0);
                put_text(t, l->x0 - 1 - w, r, tk->label, 0);
            } else {
                put_cell(g, l->x1, r, b->tick_right, 0);
                put_text(t, l->x1 + 1, r, tk->label, 0);
            }
        }
    }
}

static void draw_colorbar(term_ctx *t)
{
    const plot_frame *f = t->f;
    for (int r = f->cb_y0; r < f->cb_y1; r++) {
        double tz = (f->cb_y1 - (r + 0.5)) / (f->cb_y1 - f->cb_y0);
        char ch[8];
        if (t->mode == PARE_TERM_ASCII)
            snprintf(ch, sizeof ch, "%c", ASCII_SHADES[1 + (int)(tz * 8.999)]);
        else
            snprintf(ch, sizeof ch, "%s", SHADES[3]);
        for (int c = f->cb_x0; c < f->cb_x1; c++)
            put_cell(t->g, c, r, ch, PARE_TERM_COLOR_RAMP((int)(tz * (PARE_TERM_RAMP_LEVELS - 0.001))));
    }
    const plot_axis *a = &f->cb_axis;
    for (int i = 0; i < a->n_ticks; i++)
        put_text(t, f->cb_x1 + 1, tick_row(f, a, a->ticks[i].value), a->ticks[i].label, 0);
}

static void draw_labels_and_legend(term_ctx *t)
{
    const plot_frame *f = t->f;
    const pare_plot_layout *l = &f->pub;
    const pare_plot *p = t->p;
    int vline_index = 0;
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        if ((s->kind != PARE_SERIES_HLINE && s->kind != PARE_SERIES_VLINE) || !s->name || !*s->name)
            continue;
        int w = plot_text_width(&f->m, s->name);
        if (s->kind == PARE_SERIES_VLINE) {
            double px = plot_axis_map(&f->axis[PARE_AXIS_X], s->value);
            int row = l->y0 + vline_index++;
            if (!(px >= l->x0 && px <= l->x1) || row >= l->y1)
                continue; /* the line is outside the plot (or NaN) */
            int c = (int)floor(px) + 1;
            if (c + w > l->x1)
                c = (int)floor(px) - w;
            put_text(t, c, row, s->name, s->term_color);
        } else {
            double py = plot_axis_map(plot_series_y_axis(f, s), s->value);
            if (!(py >= l->y0 && py <= l->y1))
                continue;
            int row = (int)floor(py) - 1;
            if (row < l->y0)
                row = (int)floor(py) + 1;
            if (row < l->y1)
                put_text(t, l->x1 - w, row, s->name, s->term_color);
        }
    }
    if (!f->legend_shown)
        return;
    int row = f->legend_y0;
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        if (!plot_is_legend_series(s))
            continue;
        for (int c = f->legend_x0; c < f->legend_x1; c++)
            put_cell(t->g, c, row, " ", 0);
        char marker[2] = {ASCII_MARKERS[s->marker], '\0'};
        const char *a = s->kind == PARE_SERIES_BARS || s->kind == PARE_SERIES_AREA ? t->box->fill_swatch
                        : s->kind == PARE_SERIES_MARKERS                           ? marker
                                                                                   : t->box->line_swatch;
        const char *b = s->kind == PARE_SERIES_LINE_MARKERS ? marker : a;
        put_cell(t->g, f->legend_x0, row, a, s->term_color);
        put_cell(t->g, f->legend_x0 + 1, row, b, s->term_color);
        put_text(t, f->legend_x0 + 3, row, s->name, 0);
        row++;
    }
}

static pare_status check_terminal_args(const pare_plot *p, int cols, int rows, pare_term_mode mode, pare_error *err)
{
    if ((unsigned)mode > PARE_TERM_ASCII)
        return pare_fail(err, PARE_EINVAL, "plot '%s': unknown terminal mode %d", plot_display_name(p), (int)mode);
    if (cols < 16 || rows < 6 || cols > 4096 || rows > 4096)
        return pare_fail(err, PARE_EINVAL,
                         "plot '%s': a terminal plot needs 16..4096 columns and 6..4096 rows, not %d x %d",
                         plot_display_name(p), cols, rows);
    return PARE_OK;
}

pare_status pare_plot_layout_terminal(const pare_plot *p, int cols, int rows, pare_term_mode mode,
                                      pare_plot_layout *out, pare_error *err)
{
    pare_status st = check_terminal_args(p, cols, rows, mode, err);
    if (st != PARE_OK)
        return st;
    plot_frame *f = malloc(sizeof *f);
    if (!f)
        return pare_fail(err, PARE_ENOMEM, "out of memory laying out plot '%s'", plot_display_name(p));
    st = plot_frame_build(p, cols, rows, 1, f, err);
    if (st == PARE_OK)
        *out = f->pub;
    free(f);
    return st;
}

pare_status pare_plot_render_terminal(const pare_plot *p, int cols, int rows, pare_term_mode mode, pare_term_grid **out,
                                      pare_error *err)
{
    *out = NULL;
    pare_status st = check_terminal_args(p, cols, rows, mode, err);
    if (st != PARE_OK)
        return st;
    plot_frame *f = malloc(sizeof *f);
    pare_term_grid *g = calloc(1, sizeof *g);
    term_ctx t = {0};
    if (f && g && (st = plot_frame_build(p, cols, rows, 1, f, err)) == PARE_OK) {
        g->cols = cols;
        g->rows = rows;
        g->cells = calloc((size_t)cols * rows, sizeof *g->cells);
        t = (term_ctx){p,
                       f,
                       g,
                       mode,
                       mode == PARE_TERM_ASCII ? &ASCII_BOX : &UNICODE_BOX,
                       0,
                       0,
                       f->pub.x1 - f->pub.x0,
                       f->pub.y1 - f->pub.y0,
                       NULL,
                       NULL,
                       NULL};
        pare_term_cell_dots(mode, &t.sx, &t.sy);
        size_t n = (size_t)t.aw * t.ah;
        t.bits = calloc(n, 1);
        t.color = calloc(n, 1);
        t.ascii = calloc(n, 1);
    }
    if (st == PARE_OK && (!f || !g || !g->cells || !t.bits || !t.color || !t.ascii))
        st = pare_fail(err, PARE_ENOMEM, "out of memory rendering plot '%s' for the terminal", plot_display_name(p));
    if (st != PARE_OK) {
        free(t.bits);
        free(t.color);
        free(t.ascii);
        free(f);
        pare_term_grid_free(g);
        return st;
    }
    for (size_t i = 0; i < (size_t)cols * rows; i++)
        snprintf(g->cells[i].text, sizeof g->cells[i].text, " ");
    if (f->heatmap)
        draw_heatmap(&t, f->heatmap);
    int bar_index = 0;
    for (int k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        if (s->kind == PARE_SERIES_BARS)
            draw_bars(&t, s, bar_index++);
        else if (s->kind != PARE_SERIES_HEATMAP && s->kind != PARE_SERIES_HLINE && s->kind != PARE_SERIES_VLINE)
            draw_points_series(&t, s, k);
    }
    for (int k = 0; k < p->n_series; k++)
        if (p->series[k].kind == PARE_SERIES_HLINE || p->series[k].kind == PARE_SERIES_VLINE)
            draw_reference_line(&t, &p->series[k]);
    flush_dots(&t);
    draw_axes(&t);
    if (f->colorbar_shown)
        draw_colorbar(&t);
    draw_labels_and_legend(&t);
    if (p->opts.title && *p->opts.title)
        put_text(&t, f->title_x, f->title_y, p->opts.title, 0);
    if (f->axis[PARE_AXIS_Y].label)
        put_text(&t, f->ylabel_x, f->ylabel_y, f->axis[PARE_AXIS_Y].label, 0);
    if (f->axis[PARE_AXIS_Y2].range.present && f->axis[PARE_AXIS_Y2].label)
        put_text(&t, f->y2label_x, f->y2label_y, f->axis[PARE_AXIS_Y2].label, 0);
    if (f->axis[PARE_AXIS_X].label)
        put_text(&t, f->xlabel_x, f->xlabel_y, f->axis[PARE_AXIS_X].label, 0);
    free(t.bits);
    free(t.color);
    free(t.ascii);
    free(f);
    *out = g;
    return PARE_OK;
}

void pare_term_grid_free(pare_term_grid *g)
{
    if (g) {
        free(g->cells);
        free(g);
    }
}

pare_status pare_term_grid_to_text(const pare_term_grid *g, char **text, pare_error *err)
{
    *text = NULL;
    size_t cap = (size_t)g->rows * ((size_t)g->cols * (sizeof g->cells[0].text - 1) + 1) + 1, n = 0;
    char *s = malloc(cap);
    if (!s)
        return pare_fail(err, PARE_ENOMEM, "out of memory converting a %d x %d terminal plot to text", g->cols, g->rows);
    for (int r = 0; r < g->rows; r++) {
        size_t keep = n; /* end of the last non-blank cell */
        for (int c = 0; c < g->cols; c++) {
            const char *t = g->cells[(size_t)r * g->cols + c].text;
            if (!*t)
                t = " ";
            size_t len = strlen(t);
            memcpy(s + n, t, len);
            n += len;
            if (strcmp(t, " ") != 0)
                keep = n;
        }
        n = keep;
        s[n++] = '\n';
    }
    s[n] = '\0';
    *text = s;
    return PARE_OK;
}

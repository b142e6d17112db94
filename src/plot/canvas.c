/* The RGBA8 raster that plots draw on: compositing, antialiased lines and markers, polygon fill and
 * bitmap text. Antialiasing uses the distance from a pixel centre to the shape, which gives round
 * line ends and even widths at every slope without supersampling. */
#include "canvas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"

pare_status pare_canvas_create(int width, int height, pare_rgba background, pare_canvas **out, pare_error *err)
{
    *out = NULL;
    if (width < 1 || height < 1 || width > PARE_CANVAS_MAX_SIDE || height > PARE_CANVAS_MAX_SIDE)
        return pare_fail(err, PARE_EINVAL, "canvas size %dx%d is out of range (1..%d per side)", width, height,
                         PARE_CANVAS_MAX_SIDE);
    pare_canvas *c = calloc(1, sizeof *c);
    if (c)
        c->pixels = malloc((size_t)width * (size_t)height * 4);
    if (!c || !c->pixels) {
        free(c);
        return pare_fail(err, PARE_ENOMEM, "out of memory for a %dx%d canvas", width, height);
    }
    c->width = width;
    c->height = height;
    pare_canvas_reset_clip(c);
    pare_canvas_fill(c, background);
    *out = c;
    return PARE_OK;
}

void pare_canvas_free(pare_canvas *c)
{
    if (c) {
        free(c->pixels);
        free(c);
    }
}

void pare_canvas_fill(pare_canvas *c, pare_rgba color)
{
    size_t n = (size_t)c->width * (size_t)c->height;
    for (size_t i = 0; i < n; i++)
        memcpy(c->pixels + 4 * i, &color, 4);
}

void pare_canvas_reset_clip(pare_canvas *c)
{
    c->clip_x0 = c->clip_y0 = 0;
    c->clip_x1 = c->width;
    c->clip_y1 = c->height;
}

void pare_canvas_set_clip(pare_canvas *c, int x0, int y0, int x1, int y1)
{
    c->clip_x0 = x0 < 0 ? 0 : x0;
    c->clip_y0 = y0 < 0 ? 0 : y0;
    c->clip_x1 = x1 > c->width ? c->width : x1;
    c->clip_y1 = y1 > c->height ? c->height : y1;
}

static int inside_clip(const pare_canvas *c, int x, int y)
{
    return x >= c->clip_x0 && x < c->clip_x1 && y >= c->clip_y0 && y < c->clip_y1;
}

pare_rgba pare_canvas_get(const pare_canvas *c, int x, int y)
{
    pare_rgba p = {0, 0, 0, 0};
    if (x >= 0 && y >= 0 && x < c->width && y < c->height)
        memcpy(&p, c->pixels + 4 * ((size_t)y * c->width + x), 4);
    return p;
}

void pare_canvas_set(pare_canvas *c, int x, int y, pare_rgba color)
{
    if (inside_clip(c, x, y))
        memcpy(c->pixels + 4 * ((size_t)y * c->width + x), &color, 4);
}

void pare_canvas_blend(pare_canvas *c, int x, int y, pare_rgba color, double coverage)
{
    if (!inside_clip(c, x, y) || !(coverage > 0))
        return;
    double sa = color.a / 255.0 * (coverage > 1 ? 1 : coverage);
    uint8_t *d = c->pixels + 4 * ((size_t)y * c->width + x);
    if (sa >= 1) {
        memcpy(d, &color, 4);
        return;
    }
    /* source-over onto a possibly transparent destination */
    double da = d[3] / 255.0, oa = sa + da * (1 - sa);
    if (oa <= 0)
        return;
    const uint8_t src[3] = {color.r, color.g, color.b};
    for (int k = 0; k < 3; k++)
        d[k] = (uint8_t)lround((src[k] * sa + d[k] * da * (1 - sa)) / oa);
    d[3] = (uint8_t)lround(oa * 255);
}

/* v as a pixel index limited to [lo, hi] (NaN gives lo), so that coordinates of data far outside
 * the axes never overflow an int. */
static int clamp_index(double v, int lo, int hi) { return !(v > lo) ? lo : v > hi ? hi : (int)v; }

/* First and one-past-last pixel index whose centre lies in [a, b). */
static void pixel_span(double a, double b, int *lo, int *hi)
{
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    *lo = clamp_index(ceil(a - 0.5), -1, PARE_CANVAS_MAX_SIDE + 1);
    *hi = clamp_index(ceil(b - 0.5), -1, PARE_CANVAS_MAX_SIDE + 1);
}

int pare_clip_segment(double *x0, double *y0, double *x1, double *y1, double xmin, double ymin, double xmax, double ymax)
{
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    if (!isfinite(dx) || !isfinite(dy))
        return 0;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {*x0 - xmin, xmax - *x0, *y0 - ymin, ymax - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0)
                return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0)
            t0 = fmax(t0, r);
        else
            t1 = fmin(t1, r);
        if (t0 > t1)
            return 0;
    }
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy, bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    *x0 = ax;
    *y0 = ay;
    *x1 = bx;
    *y1 = by;
    return 1;
}

void pare_canvas_fill_rect(pare_canvas *c, double x0, double y0, double x1, double y1, pare_rgba color)
{
    if (!(isfinite(x0) && isfinite(y0) && isfinite(x1) && isfinite(y1)))
        return;
    int xa, xb, ya, yb;
    pixel_span(x0, x1, &xa, &xb);
    pixel_span(y0, y1, &ya, &yb);
    if (xa < c->clip_x0)
        xa = c->clip_x0;
    if (ya < c->clip_y0)
        ya = c->clip_y0;
    if (xb > c->clip_x1)
        xb = c->clip_x1;
    if (yb > c->clip_y1)
        yb = c->clip_y1;
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++)
            pare_canvas_blend(c, x, y, color, 1);
}

/* Distance from (px, py) to the segment (x0, y0)-(x1, y1). */
static double segment_distance(double px, double py, double x0, double y0, double x1, double y1)
{
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

/* Coverage of a pixel whose centre is at distance d from the middle of a stroke of this width. */
static double stroke_coverage(double d, double width)
{
    double v = width / 2 + 0.5 - d;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* The pixel box around a segment widened by the stroke, limited to the clip; 0 when empty. */
static int segment_box(const pare_canvas *c, double x0, double y0, double x1, double y1, double width, int *xa, int *ya,
                       int *xb, int *yb)
{
    double r = width / 2 + 1;
    *xa = clamp_index(floor(fmin(x0, x1) - r), c->clip_x0, c->clip_x1);
    *ya = clamp_index(floor(fmin(y0, y1) - r), c->clip_y0, c->clip_y1);
    *xb = clamp_index(ceil(fmax(x0, x1) + r) + 1, c->clip_x0, c->clip_x1);
    *yb = clamp_index(ceil(fmax(y0, y1) + r) + 1, c->clip_y0, c->clip_y1);
    return *xa < *xb && *ya < *yb;
}

/* Cuts a segment to the clip rectangle widened by the stroke, so that far-away ends cost nothing. */
static int clip_to_canvas(const pare_canvas *c, double *x0, double *y0, double *x1, double *y1, double width)
{
    double r = width / 2 + 2;
    return pare_clip_segment(x0, y0, x1, y1, c->clip_x0 - r, c->clip_y0 - r, c->clip_x1 + r, c->clip_y1 + r);
}

static int finite4(double a, double b, double c, double d)
{
    return isfinite(a) && isfinite(b) && isfinite(c) && isfinite(d);
}

void pare_canvas_line(pare_canvas *c, double x0, double y0, double x1, double y1, double width, pare_rgba color)
{
    int xa, ya, xb, yb;
    if (!finite4(x0, y0, x1, y1) || !clip_to_canvas(c, &x0, &y0, &x1, &y1, width) ||
        !segment_box(c, x0, y0, x1, y1, width, &xa, &ya, &xb, &yb))
        return;
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++)
            pare_canvas_blend(c, x, y, color,
                              stroke_coverage(segment_distance(x + 0.5, y + 0.5, x0, y0, x1, y1), width));
}

/* Coverage mask over a pixel box; segments of one polyline combine by maximum, then blend once. */
typedef struct {
    int x0, y0, w, h;
    uint8_t *cov;
} coverage_mask;

static void mask_segment(coverage_mask *m, const pare_canvas *c, double x0, double y0, double x1, double y1,
                         double width)
{
    int xa, ya, xb, yb;
    if (!segment_box(c, x0, y0, x1, y1, width, &xa, &ya, &xb, &yb))
        return;
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++) {
            int v = (int)lround(255 * stroke_coverage(segment_distance(x + 0.5, y + 0.5, x0, y0, x1, y1), width));
            uint8_t *p = &m->cov[(size_t)(y - m->y0) * m->w + (x - m->x0)];
            if (v > *p)
                *p = (uint8_t)v;
        }
}

/* Calls emit for each drawn piece of the polyline (dashes when dash > 0), skipping NaN breaks. */
typedef void (*segment_fn)(void *ctx, double x0, double y0, double x1, double y1);

static void walk_polyline(const pare_canvas *c, const double *xs, const double *ys, int n, double width, double dash,
                          segment_fn emit, void *ctx)
{
    double gap = 0.6 * dash, phase = 0; /* distance travelled in the current dash period */
    for (int i = 0; i + 1 < n; i++) {
        double x0 = xs[i], y0 = ys[i], x1 = xs[i + 1], y1 = ys[i + 1];
        if (!finite4(x0, y0, x1, y1) || !clip_to_canvas(c, &x0, &y0, &x1, &y1, width))
            continue;
        if (!(dash > 0)) {
            emit(ctx, x0, y0, x1, y1);
            continue;
        }
        double len = hypot(x1 - x0, y1 - y0), s = 0;
        if (len <= 0)
            continue;
        while (s < len) {
            double period_left = (phase < dash ? dash : dash + gap) - phase;
            double step = fmin(period_left, len - s);
            if (phase < dash) {
                double a = s / len, b = (s + step) / len;
                emit(ctx, x0 + a * (x1 - x0), y0 + a * (y1 - y0), x0 + b * (x1 - x0), y0 + b * (y1 - y0));
            }
            s += step;
            phase += step;
            if (phase >= dash + gap)
                phase = 0;
        }
    }
}

typedef struct {
    coverage_mask *mask;
    pare_canvas *canvas;
    double width;
    pare_rgba color;
} polyline_ctx;

static void emit_to_mask(void *ctx, double x0, double y0, double x1, double y1)
{
    polyline_ctx *p = ctx;
    if (p->mask->cov)
        mask_segment(p->mask, p->canvas, x0, y0, x1, y1, p->width);
    else
        pare_canvas_line(p->canvas, x0, y0, x1, y1, p->width, p->color);
}

void pare_canvas_polyline(pare_canvas *c, const double *xs, const double *ys, int n, double width, double dash,
                          pare_rgba color)
{
    double bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(xs[i]) && isfinite(ys[i])) {
            bx0 = fmin(bx0, xs[i]);
            bx1 = fmax(bx1, xs[i]);
            by0 = fmin(by0, ys[i]);
            by1 = fmax(by1, ys[i]);
        }
    int xa, ya, xb, yb;
    if (!(bx0 <= bx1) || !segment_box(c, bx0, by0, bx1, by1, width, &xa, &ya, &xb, &yb))
        return;
    coverage_mask m = {xa, ya, xb - xa, yb - ya, calloc((size_t)(xb - xa) * (size_t)(yb - ya), 1)};
    /* without memory for the mask, segments blend one by one (joints slightly darker) */
    polyline_ctx ctx = {&m, c, width, color};
    walk_polyline(c, xs, ys, n, width, dash, emit_to_mask, &ctx);
    if (!m.cov)
        return;
    for (int y = 0; y < m.h; y++)
        for (int x = 0; x < m.w; x++) {
            uint8_t v = m.cov[(size_t)y * m.w + x];
            if (v)
                pare_canvas_blend(c, m.x0 + x, m.y0 + y, color, v / 255.0);
        }
    free(m.cov);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void pare_canvas_polygon(pare_canvas *c, const double *xs, const double *ys, int n, pare_rgba color)
{
    if (n < 3)
        return;
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(xs[i]) || !isfinite(ys[i]))
            return;
        ymin = fmin(ymin, ys[i]);
        ymax = fmax(ymax, ys[i]);
    }
    double *cross = malloc((size_t)n * sizeof *cross);
    if (!cross)
        return;
    int ya, yb;
    pixel_span(ymin, ymax, &ya, &yb);
    ya = ya < c->clip_y0 ? c->clip_y0 : ya;
    yb = yb > c->clip_y1 ? c->clip_y1 : yb;
    for (int y = ya; y < yb; y++) {
        double yc = y + 0.5;
        int k = 0;
        for (int i = 0; i < n; i++) {
            int j = (i + 1) % n;
            if ((ys[i] <= yc) != (ys[j] <= yc))
                cross[k++] = xs[i] + (yc - ys[i]) / (ys[j] - ys[i]) * (xs[j] - xs[i]);
        }
        qsort(cross, (size_t)k, sizeof *cross, compare_doubles);
        for (int i = 0; i + 1 < k; i += 2) {
            int xa, xb;
            pixel_span(cross[i], cross[i + 1], &xa, &xb);
            xa = xa < c->clip_x0 ? c->clip_x0 : xa;
            xb = xb > c->clip_x1 ? c->clip_x1 : xb;
            for (int x = xa; x < xb; x++)
                pare_canvas_blend(c, x, y, color, 1);
        }
    }
    free(cross);
}

/* Signed distance from p to a convex polygon given anticlockwise in screen terms (negative inside). */
static double convex_distance(double px, double py, const double *xs, const double *ys, int n)
{
    double d = -INFINITY;
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        double ex = xs[j] - xs[i], ey = ys[j] - ys[i], len = hypot(ex, ey);
        /* outward normal of an edge of a polygon listed clockwise on screen (y down) */
        double nx = ey / len, ny = -ex / len;
        d = fmax(d, (px - xs[i]) * nx + (py - ys[i]) * ny);
    }
    return d;
}

void pare_canvas_marker(pare_canvas *c, double x, double y, pare_marker m, double size, pare_rgba color)
{
    if (!isfinite(x) || !isfinite(y) || !(size > 0))
        return;
    double r = size / 2;
    double k = r * 0.85, stroke = fmax(1, size / 4);
    double tx[3] = {x, x + r, x - r}, ty[3] = {y - r, y + r * 0.75, y + r * 0.75};
    double sx[4] = {x - k, x + k, x + k, x - k}, sy[4] = {y - k, y - k, y + k, y + k};
    int xa = clamp_index(floor(x - r - 1), c->clip_x0, c->clip_x1),
        xb = clamp_index(ceil(x + r + 1) + 1, c->clip_x0, c->clip_x1);
    int ya = clamp_index(floor(y - r - 1), c->clip_y0, c->clip_y1),
        yb = clamp_index(ceil(y + r + 1) + 1, c->clip_y0, c->clip_y1);
    for (int py = ya; py < yb; py++)
        for (int px = xa; px < xb; px++) {
            double cx = px + 0.5, cy = py + 0.5, d;
            if (m == PARE_MARKER_CROSS) /* both strokes at once, so the centre blends once */
                d = fmin(segment_distance(cx, cy, x - k, y - k, x + k, y + k),
                         segment_distance(cx, cy, x - k, y + k, x + k, y - k)) -
                    stroke / 2;
            else if (m == PARE_MARKER_SQUARE)
                d = convex_distance(cx, cy, sx, sy, 4);
            else if (m == PARE_MARKER_TRIANGLE)
                d = convex_distance(cx, cy, tx, ty, 3);
            else
                d = hypot(cx - x, cy - y) - r;
            double cov = 0.5 - d;
            pare_canvas_blend(c, px, py, color, cov < 0 ? 0 : cov > 1 ? 1 : cov);
        }
}

/* Calls draw(x, y) for every set font pixel of s, in font-pixel units from the text's top-left. */
typedef void (*font_pixel_fn)(void *ctx, int fx, int fy);

static void for_each_font_pixel(const char *s, font_pixel_fn draw, void *ctx)
{
    int pos = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) == 0x80) /* continuation byte: the character was drawn at its lead byte */
            continue;
        const uint8_t *g = pare_font_glyph(*p);
        for (int row = 0; row < PARE_FONT_HEIGHT; row++)
            for (int col = 0; col < PARE_FONT_WIDTH; col++)
                if (g[row] & (0x10 >> col))
                    draw(ctx, pos * PARE_FONT_ADVANCE + col, row);
        pos++;
    }
}

typedef struct {
    pare_canvas *c;
    int x, y, scale, vertical, width;
    pare_rgba color;
} text_ctx;

static void draw_font_pixel(void *ctx, int fx, int fy)
{
    text_ctx *t = ctx;
    int s = t->scale;
    if (t->vertical) /* anticlockwise: the text's x runs upwards, its y runs rightwards */
        pare_canvas_fill_rect(t->c, t->x + fy * s, t->y + t->width - (fx + 1) * s, t->x + (fy + 1) * s,
                              t->y + t->width - fx * s, t->color);
    else
        pare_canvas_fill_rect(t->c, t->x + fx * s, t->y + fy * s, t->x + (fx + 1) * s, t->y + (fy + 1) * s, t->color);
}

void pare_canvas_text(pare_canvas *c, int x, int y, const char *s, int scale, pare_rgba color)
{
    text_ctx t = {c, x, y, scale < 1 ? 1 : scale, 0, 0, color};
    for_each_font_pixel(s, draw_font_pixel, &t);
}

void pare_canvas_text_vertical(pare_canvas *c, int x, int y, const char *s, int scale, pare_rgba color)
{
    text_ctx t = {c, x, y, scale < 1 ? 1 : scale, 1, pare_text_width(s, scale), color};
    for_each_font_pixel(s, draw_font_pixel, &t);
}

int pare_text_width(const char *s, int scale)
{
    if (scale < 1)
        scale = 1;
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n ? (n * PARE_FONT_ADVANCE - (PARE_FONT_ADVANCE - PARE_FONT_WIDTH)) * scale : 0;
}

int pare_text_height(int scale) { return PARE_FONT_HEIGHT * (scale < 1 ? 1 : scale); }

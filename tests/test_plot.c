/* Plots: PNG pixels land where the plot's own axis mapping says (a reference line, a bar, a heatmap
 * cell, log decades), rendering is deterministic and the PNG equals the canvas, every glyph of the
 * font draws, the terminal renderer puts dots on a diagonal and stays ASCII when asked, PNG metadata
 * round-trips through libpng, and bad input (log axes with values <= 0, no data, unwritable paths,
 * non-PNG files) gives errors. */
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot/canvas.h"
#include "plot/colormap.h"
#include "plot/font.h"
#include "plot/plot.h"
#include "plot/png.h"
#include "core/version.h"
#include "harness.h"

static const pare_rgba WHITE = {255, 255, 255, 255};

static pare_plot *new_plot(const pare_plot_opts *o)
{
    pare_plot *p = NULL;
    pare_error err = {0};
    CHECKF(pare_plot_create(o, &p, &err) == PARE_OK, "%s", err.msg);
    return p;
}

static void add(pare_plot *p, pare_series s)
{
    pare_error err = {0};
    CHECKF(pare_plot_add(p, &s, &err) == PARE_OK, "%s", err.msg);
}

static int same_rgb(pare_rgba a, pare_rgba b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

/* FNV-1a over a buffer, to compare whole images cheaply. */
static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static pare_canvas *render(const pare_plot *p, int w, int h)
{
    pare_canvas *c = NULL;
    pare_error err = {0};
    CHECKF(pare_canvas_create(w, h, WHITE, &c, &err) == PARE_OK, "%s", err.msg);
    if (c && pare_plot_render(p, c, &err) != PARE_OK) {
        CHECKF(0, "render: %s", err.msg);
        pare_canvas_free(c);
        return NULL;
    }
    return c;
}

static pare_rgba pixel_of(const uint8_t *rgba, int w, int x, int y)
{
    const uint8_t *q = rgba + 4 * ((size_t)y * w + x);
    return (pare_rgba){q[0], q[1], q[2], q[3]};
}

/* Error message of a failing render of p at the default size (empty when it succeeds). */
static pare_status render_error(const pare_plot *p, pare_error *err)
{
    pare_canvas *c = NULL;
    pare_status st = pare_canvas_create(PARE_PLOT_DEFAULT_WIDTH, PARE_PLOT_DEFAULT_HEIGHT, WHITE, &c, err);
    if (st == PARE_OK)
        st = pare_plot_render(p, c, err);
    pare_canvas_free(c);
    return st;
}

/* A horizontal reference line lands on the row the layout maps its value to, the PNG has the
 * default size and holds exactly the canvas's pixels, and the line is about 2 px thick. */
static void test_png_line_row_and_canvas_equality(void)
{
    pare_plot_opts o = {.title = "line", .y = {.min = 0, .max = 10}, .x = {.min = 0, .max = 1}};
    pare_plot *p = new_plot(&o);
    double x[2] = {0, 1}, y[2] = {1, 2};
    pare_rgba red = {200, 0, 0, 255};
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = y, .n = 2});
    add(p, (pare_series){.kind = PARE_SERIES_HLINE, .value = 7.3, .color = red});
    const char *path = tmp_path("line.png");
    pare_error err = {0};
    CHECKF(pare_plot_write_png(p, path, 0, 0, NULL, &err) == PARE_OK, "%s", err.msg);
    uint8_t *px = NULL;
    int w = 0, h = 0;
    CHECKF(pare_png_read(path, &px, &w, &h, &err) == PARE_OK, "%s", err.msg);
    pare_plot_layout l;
    CHECKF(pare_plot_layout_canvas(p, PARE_PLOT_DEFAULT_WIDTH, PARE_PLOT_DEFAULT_HEIGHT, &l, &err) == PARE_OK, "%s",
           err.msg);
    pare_canvas *c = render(p, PARE_PLOT_DEFAULT_WIDTH, PARE_PLOT_DEFAULT_HEIGHT);
    if (px && c) {
        CHECKF(w == 1200 && h == 800, "PNG is %dx%d", w, h);
        CHECK(l.x0 > 0 && l.x1 < w && l.y0 > 0 && l.y1 < h && l.x1 - l.x0 > w / 2 && l.y1 - l.y0 > h / 2);
        double fy = pare_plot_map(&l, PARE_AXIS_Y, 7.3);
        CHECKF(fabs(fy - (l.y1 - 0.73 * (l.y1 - l.y0))) < 1e-9, "map(7.3) = %g", fy);
        int row = (int)floor(fy), red_rows = 0;
        int col = (l.x0 + l.x1) / 2;
        CHECKF(same_rgb(pixel_of(px, w, col, row), red), "pixel (%d, %d) is not the line colour", col, row);
        for (int yy = l.y0; yy < l.y1; yy++)
            red_rows += same_rgb(pixel_of(px, w, col, yy), red);
        CHECKF(red_rows >= 1 && red_rows <= 2, "the 2 px line covers %d full rows", red_rows);
        /* rows well away from the line are not red */
        CHECK(!same_rgb(pixel_of(px, w, col, row - 3), red) && !same_rgb(pixel_of(px, w, col, row + 3), red));
        /* the PNG is the canvas, pixel for pixel */
        int equal = 1;
        for (int i = 0; i < w * h && equal; i++)
            equal = memcmp(px + 4 * i, c->pixels + 4 * i, 4) == 0;
        CHECK(equal);
        CHECK(checksum(px, (size_t)w * h * 4) == checksum(c->pixels, (size_t)w * h * 4));
    }
    free(px);
    pare_canvas_free(c);
    pare_plot_destroy(p);
}

/* Two renders of one description are identical; a different size scales without failing. */
static void test_render_deterministic(void)
{
    pare_plot_opts o = {.title = "twice", .x = {.label = "x"}, .y = {.label = "y", .scale = PARE_SCALE_LOG}};
    pare_plot *p = new_plot(&o);
    double x[50], y[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i;
        y[i] = exp(-i / 10.0) + 1e-3;
    }
    add(p, (pare_series){.kind = PARE_SERIES_LINE_MARKERS, .name = "decay", .x = x, .y = y, .n = 50});
    add(p, (pare_series){.kind = PARE_SERIES_AREA, .name = "area", .x = x, .y = y, .n = 50});
    add(p, (pare_series){.kind = PARE_SERIES_VLINE, .name = "rank 20", .value = 20, .dashed = 1});
    pare_canvas *a = render(p, 1200, 800), *b = render(p, 1200, 800), *small = render(p, 400, 300);
    if (a && b)
        CHECK(checksum(a->pixels, (size_t)1200 * 800 * 4) == checksum(b->pixels, (size_t)1200 * 800 * 4) &&
              memcmp(a->pixels, b->pixels, (size_t)1200 * 800 * 4) == 0);
    CHECK(small != NULL);
    pare_canvas_free(a);
    pare_canvas_free(b);
    pare_canvas_free(small);
    pare_plot_destroy(p);
}

/* A bar of height 6 on a 0..10 axis covers exactly the rows whose centres lie between the mapped
 * baseline and top; grouped and stacked bars sit where their series put them. */
static void test_bar_rows(void)
{
    double h1[3] = {6, 2, 4}, h2[3] = {3, 5, 1};
    pare_rgba blue = {0, 0, 220, 255}, green = {0, 160, 0, 255};
    for (int stacked = 0; stacked < 2; stacked++) {
        pare_plot_opts o = {.title = "bars", .y = {.min = 0, .max = 10}, .bars = stacked ? PARE_BARS_STACKED : 0};
        pare_plot *p = new_plot(&o);
        add(p, (pare_series){.kind = PARE_SERIES_BARS, .y = h1, .n = 3, .color = blue});
        add(p, (pare_series){.kind = PARE_SERIES_BARS, .y = h2, .n = 3, .color = green});
        pare_plot_layout l;
        pare_error err = {0};
        CHECKF(pare_plot_layout_canvas(p, 1200, 800, &l, &err) == PARE_OK, "%s", err.msg);
        pare_canvas *c = render(p, 1200, 800);
        if (c) {
            /* categories are at x = 0, 1, 2; grouped: series 0 in [i-0.4, i), series 1 in [i, i+0.4) */
            int col = (int)floor(pare_plot_map(&l, PARE_AXIS_X, stacked ? 0 : -0.2));
            int top = (int)ceil(pare_plot_map(&l, PARE_AXIS_Y, 6) - 0.5);
            int bottom = (int)ceil(pare_plot_map(&l, PARE_AXIS_Y, 0) - 0.5); /* exclusive */
            CHECKF(bottom == l.y1, "baseline row %d, plot bottom %d", bottom, l.y1);
            int ok = 1;
            for (int y = top; y < bottom; y++)
                ok &= same_rgb(pare_canvas_get(c, col, y), blue);
            CHECKF(ok, "stacked=%d: rows %d..%d of column %d are not all the bar colour", stacked, top, bottom - 1, col);
            pare_rgba above = pare_canvas_get(c, col, top - 1);
            if (stacked) /* the second series stacks from 6 to 9 */
                CHECKF(same_rgb(above, green) &&
                           same_rgb(pare_canvas_get(c, col, (int)ceil(pare_plot_map(&l, PARE_AXIS_Y, 9) - 0.5)), green) &&
                           !same_rgb(pare_canvas_get(c, col, (int)ceil(pare_plot_map(&l, PARE_AXIS_Y, 9) - 0.5) - 1),
                                     green),
                       "stacked segment misplaced");
            else
                CHECKF(!same_rgb(above, blue), "row %d above the bar is bar-coloured", top - 1);
            if (!stacked) {
                int col2 = (int)floor(pare_plot_map(&l, PARE_AXIS_X, 1.2));
                int top2 = (int)ceil(pare_plot_map(&l, PARE_AXIS_Y, 5) - 0.5);
                CHECK(same_rgb(pare_canvas_get(c, col2, top2), green) &&
                      !same_rgb(pare_canvas_get(c, col2, top2 - 1), green));
            }
        }
        pare_canvas_free(c);
        pare_plot_destroy(p);
    }
}

/* Each heatmap cell shows the colormap colour of its value; a NaN cell stays background. */
static void test_heatmap_cell_colours(void)
{
    enum { R = 3, C = 4 };
    double z[R * C];
    for (int i = 0; i < R * C; i++)
        z[i] = 10 + 3.5 * i;
    z[5] = NAN;
    const char *cols[C] = {"q", "k", "v", "o"};
    pare_plot_opts o = {.title = "heat", .y = {.inverted = 1}};
    pare_plot *p = new_plot(&o);
    add(p, (pare_series){.kind = PARE_SERIES_HEATMAP,
                         .name = "value",
                         .z = z,
                         .rows = R,
                         .cols = C,
                         .labels = cols,
                         .zmin = 10,
                         .zmax = 60});
    pare_plot_layout l;
    pare_error err = {0};
    CHECKF(pare_plot_layout_canvas(p, 1200, 800, &l, &err) == PARE_OK, "%s", err.msg);
    pare_canvas *c = render(p, 1200, 800);
    if (c) {
        for (int r = 0; r < R; r++)
            for (int k = 0; k < C; k++) {
                int x = (int)floor(pare_plot_map(&l, PARE_AXIS_X, k)), y = (int)floor(pare_plot_map(&l, PARE_AXIS_Y, r));
                pare_rgba got = pare_canvas_get(c, x, y);
                pare_rgba want = isnan(z[r * C + k]) ? WHITE : pare_colormap_sequential((z[r * C + k] - 10) / 50);
                CHECKF(same_rgb(got, want), "cell (%d, %d) at (%d, %d): %d,%d,%d instead of %d,%d,%d", r, k, x, y,
                       got.r, got.g, got.b, want.r, want.g, want.b);
            }
        /* inverted y: row 0 is above row 2 */
        CHECK(pare_plot_map(&l, PARE_AXIS_Y, 0) < pare_plot_map(&l, PARE_AXIS_Y, 2));
    }
    pare_canvas_free(c);
    pare_plot_destroy(p);
}

/* On a log axis 1, 10 and 100 are equally spaced, and markers drawn there are found there. */
static void test_log_axis_spacing(void)
{
    pare_plot_opts o = {.title = "log", .x = {.scale = PARE_SCALE_LOG}, .y = {.min = 0, .max = 2}};
    pare_plot *p = new_plot(&o);
    double x[3] = {1, 10, 100}, y[3] = {1, 1, 1};
    pare_rgba mc = {10, 120, 10, 255};
    add(p,
        (pare_series){.kind = PARE_SERIES_MARKERS, .x = x, .y = y, .n = 3, .color = mc, .marker = PARE_MARKER_SQUARE});
    pare_plot_layout l;
    pare_error err = {0};
    CHECKF(pare_plot_layout_canvas(p, 1200, 800, &l, &err) == PARE_OK, "%s", err.msg);
    CHECK(l.axis[PARE_AXIS_X].scale == PARE_SCALE_LOG && l.axis[PARE_AXIS_X].min < 1 && l.axis[PARE_AXIS_X].max > 100);
    double a = pare_plot_map(&l, PARE_AXIS_X, 1), b = pare_plot_map(&l, PARE_AXIS_X, 10),
           d = pare_plot_map(&l, PARE_AXIS_X, 100);
    CHECKF(b - a > 100 && fabs((b - a) - (d - b)) < 1e-6, "1 -> %g, 10 -> %g, 100 -> %g", a, b, d);
    CHECK(isnan(pare_plot_map(&l, PARE_AXIS_X, 0)) && isnan(pare_plot_map(&l, PARE_AXIS_X, -1)));
    pare_canvas *c = render(p, 1200, 800);
    if (c) {
        int row = (int)floor(pare_plot_map(&l, PARE_AXIS_Y, 1));
        for (int i = 0; i < 3; i++)
            CHECKF(same_rgb(pare_canvas_get(c, (int)floor(pare_plot_map(&l, PARE_AXIS_X, x[i])), row), mc),
                   "no marker at x = %g", x[i]);
        CHECK(!same_rgb(pare_canvas_get(c, (int)floor((a + b) / 2), row), mc));
    }
    pare_canvas_free(c);
    pare_plot_destroy(p);
}

static void expect_error(const pare_plot *p, pare_status code, const char *const *needles)
{
    pare_error err = {0};
    pare_status st = render_error(p, &err);
    CHECKF(st == code, "status %s, message '%s'", pare_status_name(st), err.msg);
    for (int i = 0; needles[i]; i++)
        CHECKF(strstr(err.msg, needles[i]) != NULL, "'%s' not in '%s'", needles[i], err.msg);
    /* the terminal renderer and the layout refuse the same way */
    pare_term_grid *g = NULL;
    pare_error terr = {0};
    CHECK(pare_plot_render_terminal(p, 80, 24, PARE_TERM_BRAILLE, &g, &terr) == code && g == NULL);
    pare_plot_layout l;
    CHECK(pare_plot_layout_canvas(p, 1200, 800, &l, &terr) == code);
}

/* Zeros and negatives on a log axis are errors that name the axis and the value. */
static void test_log_axis_rejects_nonpositive(void)
{
    double x[3] = {1, 2, 3}, y[3] = {5, 0, 7}, xn[3] = {1, -2, 3}, ok[3] = {1, 2, 3};
    pare_plot_opts oy = {.title = "logy", .y = {.scale = PARE_SCALE_LOG}};
    pare_plot *p = new_plot(&oy);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .name = "s", .x = x, .y = y, .n = 3});
    expect_error(p, PARE_EINVAL, (const char *const[]){"logy", "y axis", "'s'", "y = 0", NULL});
    pare_plot_destroy(p);

    pare_plot_opts ox = {.title = "logx", .x = {.scale = PARE_SCALE_LOG}};
    p = new_plot(&ox);
    add(p, (pare_series){.kind = PARE_SERIES_MARKERS, .x = xn, .y = ok, .n = 3});
    expect_error(p, PARE_EINVAL, (const char *const[]){"x axis", "x = -2", NULL});
    pare_plot_destroy(p);

    /* points numbered from 0 on a log x axis */
    p = new_plot(&ox);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .y = ok, .n = 3});
    expect_error(p, PARE_EINVAL, (const char *const[]){"x axis", "x = 0", NULL});
    pare_plot_destroy(p);

    p = new_plot(&oy);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = ok, .n = 3});
    add(p, (pare_series){.kind = PARE_SERIES_HLINE, .name = "floor", .value = -1});
    expect_error(p, PARE_EINVAL, (const char *const[]){"y axis", "'floor'", "-1", NULL});
    pare_plot_destroy(p);

    pare_plot_opts oy2 = {.title = "logy2", .y2 = {.scale = PARE_SCALE_LOG}};
    p = new_plot(&oy2);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = ok, .n = 3});
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .name = "e", .x = x, .y = y, .n = 3, .on_y2 = 1});
    expect_error(p, PARE_EINVAL, (const char *const[]){"y2 axis", "y = 0", NULL});
    pare_plot_destroy(p);

    pare_plot_opts lim = {.title = "limits", .y = {.scale = PARE_SCALE_LOG, .min = 0, .max = 10}};
    p = new_plot(&lim);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = ok, .n = 3});
    expect_error(p, PARE_EINVAL, (const char *const[]){"y axis", "limit", NULL});
    pare_plot_destroy(p);

    /* NaN is a gap, not an error */
    double gap[3] = {1, NAN, 3};
    p = new_plot(&oy);
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = gap, .n = 3});
    pare_error err = {0};
    CHECKF(render_error(p, &err) == PARE_OK, "%s", err.msg);
    pare_plot_destroy(p);
}

/* No series, empty series and all-NaN series all mean "no data"; writing such a plot leaves no file. */
static void test_empty_plot(void)
{
    pare_plot_opts o = {.title = "nothing"};
    pare_plot *p = new_plot(&o);
    expect_error(p, PARE_EINVAL, (const char *const[]){"plot 'nothing' has no data", NULL});
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .name = "empty", .n = 0});
    double nan2[2] = {NAN, NAN};
    add(p, (pare_series){.kind = PARE_SERIES_BARS, .y = nan2, .n = 2});
    add(p, (pare_series){.kind = PARE_SERIES_HLINE, .value = 1}); /* reference lines are not data */
    expect_error(p, PARE_EINVAL, (const char *const[]){"plot 'nothing' has no data", NULL});
    const char *path = tmp_path("empty.png");
    pare_error err = {0};
    CHECK(pare_plot_write_png(p, path, 0, 0, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "has no data"), "%s", err.msg);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL);
    if (f)
        fclose(f);
    pare_plot_destroy(p);
}

/* Series shapes are checked when added. */
static void test_invalid_series(void)
{
    pare_plot *p = new_plot(NULL);
    pare_error err = {0};
    double v[2] = {1, 2}, z[4] = {1, 2, 3, 4};
    const char *labels[2] = {"a", "b"};
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_LINE, .name = "s", .n = 2}, &err) == PARE_EINVAL &&
          strstr(err.msg, "'s'") && strstr(err.msg, "no y values"));
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_BARS, .x = v, .y = v, .n = 2, .labels = labels}, &err) ==
          PARE_EINVAL);
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_VLINE, .value = INFINITY}, &err) == PARE_EINVAL);
    CHECK(pare_plot_add(p, &(pare_series){.kind = (pare_series_kind)42, .y = v, .n = 2}, &err) == PARE_EINVAL);
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_HEATMAP, .rows = 2, .cols = 2}, &err) == PARE_EINVAL);
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_HEATMAP, .z = z, .rows = 2, .cols = 2}, &err) == PARE_OK);
    CHECK(pare_plot_add(p, &(pare_series){.kind = PARE_SERIES_HEATMAP, .z = z, .rows = 2, .cols = 2}, &err) ==
              PARE_EINVAL &&
          strstr(err.msg, "one heatmap"));
    CHECK(pare_plot_series_count(p) == 1);
    /* too small a picture for the labels */
    CHECK(render_error(p, &err) == PARE_OK);
    pare_plot_layout l;
    CHECK(pare_plot_layout_canvas(p, 40, 30, &l, &err) == PARE_EINVAL && strstr(err.msg, "too small"));
    pare_plot_destroy(p);
}

/* Every printable character draws something (space nothing), all glyphs differ, widths add up,
 * and vertical text is the horizontal text turned anticlockwise. */
static void test_font(void)
{
    enum { S = 2, CW = PARE_FONT_ADVANCE * S, CH = PARE_FONT_HEIGHT * S };
    static uint8_t shapes[95][CH][CW];
    pare_canvas *c = NULL;
    pare_error err = {0};
    CHECKF(pare_canvas_create(95 * CW, CH, WHITE, &c, &err) == PARE_OK, "%s", err.msg);
    if (!c)
        return;
    char all[96];
    for (int i = 0; i < 95; i++)
        all[i] = (char)(32 + i);
    all[95] = '\0';
    pare_rgba ink = {0, 0, 0, 255};
    pare_canvas_text(c, 0, 0, all, S, ink);
    CHECK(pare_text_width(all, S) == 95 * CW - S && pare_text_height(S) == CH);
    for (int i = 0; i < 95; i++) {
        int n = 0;
        for (int y = 0; y < CH; y++)
            for (int x = 0; x < CW; x++) {
                shapes[i][y][x] = pare_canvas_get(c, i * CW + x, y).r == 0;
                n += shapes[i][y][x];
            }
        if (i == 0)
            CHECKF(n == 0, "space draws %d pixels", n);
        else
            CHECKF(n > 0 && n % (S * S) == 0, "'%c' draws %d pixels", 32 + i, n);
        for (int j = 1; j < i; j++)
            CHECKF(memcmp(shapes[i], shapes[j], sizeof shapes[i]) != 0, "'%c' and '%c' look the same", 32 + i, 32 + j);
    }
    pare_canvas_free(c);
    /* non-ASCII characters draw as '?' and count as one character */
    CHECK(pare_text_width("\xc3\xa9t\xc3\xa9", 1) == pare_text_width("???", 1));

    const char *word = "Rank 64 {q}";
    int w = pare_text_width(word, 1), h = pare_text_height(1);
    pare_canvas *hz = NULL, *vt = NULL;
    CHECK(pare_canvas_create(w, h, WHITE, &hz, &err) == PARE_OK && pare_canvas_create(h, w, WHITE, &vt, &err) == PARE_OK);
    if (hz && vt) {
        pare_canvas_text(hz, 0, 0, word, 1, ink);
        pare_canvas_text_vertical(vt, 0, 0, word, 1, ink);
        int same = 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                same &= pare_canvas_get(hz, x, y).r == pare_canvas_get(vt, y, w - 1 - x).r;
        CHECK(same);
    }
    pare_canvas_free(hz);
    pare_canvas_free(vt);
}

/* Lines keep their width at every slope and markers are centred on their point. */
static void test_canvas_shapes(void)
{
    pare_canvas *c = NULL;
    pare_error err = {0};
    CHECK(pare_canvas_create(0, 10, WHITE, &c, &err) == PARE_EINVAL && c == NULL);
    CHECK(pare_canvas_create(100, 100, WHITE, &c, &err) == PARE_OK);
    if (!c)
        return;
    pare_rgba ink = {0, 0, 0, 255};
    /* a 45-degree line of width 2: pixels whose centre is within 0.5 px of the line are solid */
    pare_canvas_line(c, 10, 10, 90, 90, 2, ink);
    for (int i = 12; i < 88; i++) {
        CHECKF(same_rgb(pare_canvas_get(c, i, i), ink), "diagonal pixel %d", i);
        CHECKF(same_rgb(pare_canvas_get(c, i + 3, i), WHITE), "pixel off the diagonal at %d", i);
    }
    pare_canvas_fill(c, WHITE);
    pare_canvas_marker(c, 50, 50, PARE_MARKER_CIRCLE, 10, ink);
    CHECK(same_rgb(pare_canvas_get(c, 49, 49), ink) && same_rgb(pare_canvas_get(c, 50, 50), ink));
    CHECK(same_rgb(pare_canvas_get(c, 50, 57), WHITE) && same_rgb(pare_canvas_get(c, 43, 50), WHITE));
    /* the clip rectangle holds */
    pare_canvas_fill(c, WHITE);
    pare_canvas_set_clip(c, 20, 20, 40, 40);
    pare_canvas_fill_rect(c, 0, 0, 100, 100, ink);
    CHECK(same_rgb(pare_canvas_get(c, 20, 20), ink) && same_rgb(pare_canvas_get(c, 39, 39), ink) &&
          same_rgb(pare_canvas_get(c, 19, 30), WHITE) && same_rgb(pare_canvas_get(c, 40, 30), WHITE));
    pare_canvas_free(c);
}

/* Lightness rises through the colormap, its ends are dark and light, the palette has 8 colours. */
static void test_colormap(void)
{
    double prev = -1;
    for (int i = 0; i < PARE_COLORMAP_LEVELS; i += 4) {
        double L = pare_color_lightness(pare_colormap_sequential(i / (double)(PARE_COLORMAP_LEVELS - 1)));
        CHECKF(L > prev, "lightness falls at level %d: %g after %g", i, L, prev);
        prev = L;
    }
    /* between neighbouring levels only 8-bit rounding may undo the rise */
    for (int i = 1; i < PARE_COLORMAP_LEVELS; i++) {
        double a = pare_color_lightness(pare_colormap_sequential((i - 1) / 255.0));
        double b = pare_color_lightness(pare_colormap_sequential(i / 255.0));
        CHECKF(b > a - 1e-3, "level %d: %g after %g", i, b, a);
    }
    double lo = pare_color_lightness(pare_colormap_sequential(0)),
           hi = pare_color_lightness(pare_colormap_sequential(1));
    CHECKF(lo < 0.35 && hi > 0.85, "lightness %g .. %g", lo, hi);
    CHECK(same_rgb(pare_colormap_sequential(-3), pare_colormap_sequential(0)) &&
          same_rgb(pare_colormap_sequential(7), pare_colormap_sequential(1)) &&
          same_rgb(pare_colormap_sequential(NAN), pare_colormap_sequential(0)));
    for (int i = 0; i < PARE_PALETTE_SIZE; i++) {
        CHECK(pare_palette_color(i).a == 255 &&
              same_rgb(pare_palette_color(i), pare_palette_color(i + PARE_PALETTE_SIZE)));
        for (int j = 0; j < i; j++)
            CHECK(!same_rgb(pare_palette_color(i), pare_palette_color(j)));
    }
}

/* Unicode code point of a 3-byte UTF-8 cell in the braille block, or -1. */
static int braille_bits(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (strlen(s) != 3 || u[0] != 0xe2 || (u[1] & 0xfc) != 0xa0)
        return -1;
    return ((u[1] & 3) << 6) | (u[2] & 0x3f);
}

/* A line from the bottom-left to the top-right corner sets braille dots along the diagonal, one in
 * every dot column, and nowhere else. */
static void test_terminal_braille_diagonal(void)
{
    pare_plot_opts o = {.title = "diag", .x = {.min = 0, .max = 1}, .y = {.min = 0, .max = 1}};
    pare_plot *p = new_plot(&o);
    double x[2] = {0, 1}, y[2] = {0, 1};
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .x = x, .y = y, .n = 2});
    pare_term_grid *g = NULL;
    pare_plot_layout l;
    pare_error err = {0};
    CHECKF(pare_plot_layout_terminal(p, 60, 20, PARE_TERM_BRAILLE, &l, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_plot_render_terminal(p, 60, 20, PARE_TERM_BRAILLE, &g, &err) == PARE_OK, "%s", err.msg);
    if (g) {
        int sx, sy;
        pare_term_cell_dots(PARE_TERM_BRAILLE, &sx, &sy);
        CHECK(sx == 2 && sy == 4 && g->cols == 60 && g->rows == 20);
        int dw = (l.x1 - l.x0) * sx, dh = (l.y1 - l.y0) * sy;
        static const int BIT[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
        int *col_hits = calloc((size_t)dw, sizeof *col_hits);
        int off_line = 0;
        for (int r = l.y0; r < l.y1; r++)
            for (int c = l.x0; c < l.x1; c++) {
                int b = braille_bits(g->cells[r * g->cols + c].text);
                if (b < 0) {
                    CHECKF(strcmp(g->cells[r * g->cols + c].text, " ") == 0, "cell (%d, %d) holds '%s'", c, r,
                           g->cells[r * g->cols + c].text);
                    continue;
                }
                CHECK(g->cells[r * g->cols + c].color == PARE_TERM_COLOR_PALETTE(0));
                for (int by = 0; by < 4; by++)
                    for (int bx = 0; bx < 2; bx++)
                        if (b & BIT[by][bx]) {
                            int dx = (c - l.x0) * sx + bx, dy = (r - l.y0) * sy + by;
                            /* the diagonal in dot units: y = dh - x * dh / dw */
                            double want = dh - (dx + 0.5) * dh / dw;
                            off_line += fabs(dy + 0.5 - want) > 1.5;
                            col_hits[dx]++;
                        }
            }
        CHECKF(off_line == 0, "%d dots off the diagonal", off_line);
        int missing = 0;
        for (int i = 0; i < dw; i++)
            missing += col_hits[i] == 0;
        CHECKF(missing == 0, "%d of %d dot columns have no dot", missing, dw);
        /* the corner cells hold the line's ends: bottom-left dot and top-right dot */
        int bl = braille_bits(g->cells[(l.y1 - 1) * g->cols + l.x0].text);
        int tr = braille_bits(g->cells[l.y0 * g->cols + l.x1 - 1].text);
        CHECK(bl >= 0 && (bl & 0x40) && tr >= 0 && (tr & 0x08));
        free(col_hits);
    }
    pare_term_grid_free(g);
    pare_plot_destroy(p);
}

/* ASCII mode writes only ASCII, even for a UTF-8 title, and shows the tick labels as formatted. */
static void test_terminal_ascii(void)
{
    pare_plot_opts o = {.title = "caf\xc3\xa9 plot",
                        .x = {.label = "rank", .min = 0, .max = 1000},
                        .y = {.label = "error", .scale = PARE_SCALE_LOG, .min = 1, .max = 1e4}};
    pare_plot *p = new_plot(&o);
    double x[4] = {0, 300, 600, 1000}, y[4] = {1e4, 100, 10, 2};
    const char *cats[4] = {"a", "b", "c", "d"};
    add(p, (pare_series){.kind = PARE_SERIES_LINE_MARKERS, .name = "curve", .x = x, .y = y, .n = 4});
    add(p, (pare_series){.kind = PARE_SERIES_VLINE, .name = "rank 64", .value = 64});
    pare_term_grid *g = NULL;
    char *text = NULL;
    pare_error err = {0};
    CHECKF(pare_plot_render_terminal(p, 70, 22, PARE_TERM_ASCII, &g, &err) == PARE_OK, "%s", err.msg);
    if (g && pare_term_grid_to_text(g, &text, &err) == PARE_OK) {
        int ascii = 1, lines = 0;
        for (const char *c = text; *c; c++) {
            ascii &= (unsigned char)*c < 0x80;
            lines += *c == '\n';
        }
        CHECK(ascii && lines == 22);
        const char *want[] = {"caf? plot", "rank 64", "curve", "error", "rank", "1e3",
                              "1e4",       "100",     "10",    "200",   "1000", NULL};
        for (int i = 0; want[i]; i++)
            CHECKF(strstr(text, want[i]) != NULL, "'%s' missing from\n%s", want[i], text);
    }
    free(text);
    pare_term_grid_free(g);
    pare_plot_destroy(p);

    /* bars and a heatmap in ASCII and block modes */
    pare_plot_opts hb = {.title = "mixed"};
    p = new_plot(&hb);
    double z[4] = {0, 1, 2, 3}, h[4] = {1, 2, 3, 4};
    add(p, (pare_series){.kind = PARE_SERIES_BARS, .name = "b", .y = h, .n = 4, .labels = cats});
    text = NULL;
    g = NULL;
    CHECK(pare_plot_render_terminal(p, 40, 12, PARE_TERM_ASCII, &g, &err) == PARE_OK &&
          pare_term_grid_to_text(g, &text, &err) == PARE_OK);
    if (text) {
        CHECK(strchr(text, '#') != NULL);
        for (const char *c = text; *c; c++)
            CHECK((unsigned char)*c < 0x80);
    }
    free(text);
    pare_term_grid_free(g);
    pare_plot_destroy(p);
    p = new_plot(&hb);
    add(p, (pare_series){.kind = PARE_SERIES_HEATMAP, .z = z, .rows = 2, .cols = 2});
    g = NULL;
    CHECK(pare_plot_render_terminal(p, 40, 12, PARE_TERM_BLOCK, &g, &err) == PARE_OK);
    if (g) {
        pare_plot_layout l;
        CHECK(pare_plot_layout_terminal(p, 40, 12, PARE_TERM_BLOCK, &l, &err) == PARE_OK);
        /* the cell at the bottom-left holds the lowest value (darkest shade, first ramp colour), the
         * top-right the highest */
        const pare_term_cell *lo = &g->cells[(l.y1 - 1) * g->cols + l.x0], *hi = &g->cells[l.y0 * g->cols + l.x1 - 1];
        CHECKF(strcmp(lo->text, "\u2591") == 0 && lo->color == PARE_TERM_COLOR_RAMP(0), "'%s' %d", lo->text, lo->color);
        CHECKF(strcmp(hi->text, "\u2588") == 0 && hi->color == PARE_TERM_COLOR_RAMP(PARE_TERM_RAMP_LEVELS - 1),
               "'%s' %d", hi->text, hi->color);
        CHECK(same_rgb(pare_term_color_rgba(PARE_TERM_COLOR_RAMP(0)), pare_colormap_sequential(0)) &&
              same_rgb(pare_term_color_rgba(PARE_TERM_COLOR_PALETTE(2)), pare_palette_color(2)));
    }
    pare_term_grid_free(g);
    CHECK(pare_plot_render_terminal(p, 10, 3, PARE_TERM_ASCII, &g, &err) == PARE_EINVAL);
    pare_plot_destroy(p);
}

/* The legend goes to the corner with the fewest data: a line along the rising diagonal leaves the
 * upper-left and lower-right free, and upper-left comes first. */
static void test_legend_corner(void)
{
    pare_plot_opts o = {.title = "legend"};
    pare_plot *p = new_plot(&o);
    double x[2] = {0, 1}, y[2] = {0, 1}, y2[2] = {0.05, 0.95};
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .name = "alpha", .x = x, .y = y, .n = 2});
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .name = "beta", .x = x, .y = y2, .n = 2});
    pare_term_grid *g = NULL;
    pare_plot_layout l;
    pare_error err = {0};
    CHECK(pare_plot_layout_terminal(p, 60, 20, PARE_TERM_ASCII, &l, &err) == PARE_OK);
    CHECKF(pare_plot_render_terminal(p, 60, 20, PARE_TERM_ASCII, &g, &err) == PARE_OK, "%s", err.msg);
    if (g) {
        int found = 0;
        for (int r = l.y0; r < l.y1 && !found; r++) {
            char line[256] = "";
            for (int c = 0; c < g->cols; c++)
                strcat(line, g->cells[r * g->cols + c].text);
            const char *a = strstr(line, "alpha");
            if (a) {
                found = 1;
                CHECKF(r < (l.y0 + l.y1) / 2 && a - line < (l.x0 + l.x1) / 2, "legend at row %d col %d", r,
                       (int)(a - line));
            }
        }
        CHECK(found);
    }
    pare_term_grid_free(g);
    pare_plot_destroy(p);
}

/* Title, Software and Source come back from the file through libpng; a UTF-8 title survives. */
static void test_png_metadata(void)
{
    pare_plot_opts o = {.title = "ignored"};
    pare_plot *p = new_plot(&o);
    double y[3] = {1, 3, 2};
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .y = y, .n = 3});
    const char *path = tmp_path("meta.png");
    pare_png_meta meta = {.title = "Spectrum \xe2\x80\x94 q_proj", .source = "runs/2024-05-01-lorap"};
    pare_error err = {0};
    CHECKF(pare_plot_write_png(p, path, 640, 480, &meta, &err) == PARE_OK, "%s", err.msg);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f) {
        png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        if (setjmp(png_jmpbuf(png)) == 0) {
            png_init_io(png, f);
            png_read_info(png, info);
            CHECK(png_get_image_width(png, info) == 640 && png_get_image_height(png, info) == 480);
            CHECK(png_get_bit_depth(png, info) == 8 && png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB);
            png_textp text = NULL;
            int n = png_get_text(png, info, &text, NULL), seen = 0;
            for (int i = 0; i < n; i++) {
                if (strcmp(text[i].key, "Title") == 0)
                    seen += strcmp(text[i].text, meta.title) == 0;
                if (strcmp(text[i].key, "Software") == 0)
                    seen += strcmp(text[i].text, "pare " PARE_VERSION) == 0;
                if (strcmp(text[i].key, "Source") == 0)
                    seen += strcmp(text[i].text, meta.source) == 0;
            }
            CHECKF(n == 3 && seen == 3, "%d text chunks, %d matching", n, seen);
        } else {
            CHECK(0);
        }
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
    }
    pare_plot_destroy(p);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Writing into a missing folder fails naming the path and leaves nothing; a transparent canvas is
 * written as RGBA and read back unchanged; non-PNG and truncated files are format errors. */
static void test_png_errors_and_rgba(void)
{
    pare_plot *p = new_plot(NULL);
    double y[2] = {1, 2};
    add(p, (pare_series){.kind = PARE_SERIES_LINE, .y = y, .n = 2});
    const char *bad = tmp_path("no/such/dir/plot.png");
    pare_error err = {0};
    CHECK(pare_plot_write_png(p, bad, 0, 0, NULL, &err) == PARE_EIO);
    CHECKF(strstr(err.msg, bad) != NULL, "%s", err.msg);
    CHECK(dir_entries(harness_tmpdir()) == 0);
    pare_plot_destroy(p);

    pare_canvas *c = NULL;
    CHECK(pare_canvas_create(7, 5, (pare_rgba){0, 0, 0, 0}, &c, &err) == PARE_OK);
    if (c) {
        for (int yy = 0; yy < 5; yy++)
            for (int xx = 0; xx < 7; xx++)
                pare_canvas_set(c, xx, yy, (pare_rgba){(uint8_t)(30 * xx), (uint8_t)(40 * yy), 99, (uint8_t)(xx * 40)});
        const char *path = tmp_path("rgba.png");
        CHECKF(pare_png_write(c, path, NULL, &err) == PARE_OK, "%s", err.msg);
        uint8_t *px = NULL;
        int w, h;
        CHECKF(pare_png_read(path, &px, &w, &h, &err) == PARE_OK, "%s", err.msg);
        CHECK(px && w == 7 && h == 5 && memcmp(px, c->pixels, 7 * 5 * 4) == 0);
        CHECK(dir_entries(harness_tmpdir()) == 1); /* no temporary left next to it */
        /* truncated: the first 40 bytes only */
        FILE *f = fopen(path, "rb");
        unsigned char head[40];
        size_t got = f ? fread(head, 1, sizeof head, f) : 0;
        if (f)
            fclose(f);
        const char *cut = tmp_path("cut.png");
        CHECK(got == sizeof head && write_bytes(cut, head, got) == 0);
        uint8_t *none = NULL;
        CHECK(pare_png_read(cut, &none, &w, &h, &err) == PARE_EFORMAT && none == NULL && strstr(err.msg, cut));
        free(px);
    }
    pare_canvas_free(c);
    const char *txt = tmp_path("not.png");
    CHECK(write_bytes(txt, "hello, not a png\n", 17) == 0);
    uint8_t *px = NULL;
    int w, h;
    CHECK(pare_png_read(txt, &px, &w, &h, &err) == PARE_EFORMAT && px == NULL);
    CHECKF(strstr(err.msg, txt) && strstr(err.msg, "not a PNG"), "%s", err.msg);
    CHECK(pare_png_read(tmp_path("missing.png"), &px, &w, &h, &err) == PARE_EIO);
}

/* Values at the edges of double, data far outside fixed limits and degenerate ranges render (both
 * renderers) instead of crashing, hanging or overflowing. */
static void test_extreme_values(void)
{
    double x[4] = {-1e308, 0, 1e308, 3}, y[4] = {5e-324, 1e300, -1e300, INFINITY};
    double z[4] = {-1e308, 1e308, NAN, 0};
    pare_plot_opts opts[] = {
        {.title = "edges"},
        {.title = "tiny", .y = {.min = 0, .max = 5e-324}},
        {.title = "huge", .x = {.min = -1e308, .max = 1e308}, .y = {.min = 2, .max = 3}},
        {.title = "flat", .y = {.inverted = 1}, .x = {.inverted = 1}},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        pare_plot *p = new_plot(&opts[k]);
        add(p, (pare_series){.kind = PARE_SERIES_LINE_MARKERS, .name = "a", .x = x, .y = y, .n = 4, .dashed = 1});
        add(p, (pare_series){.kind = PARE_SERIES_AREA, .name = "b", .x = x, .y = y, .n = 4});
        add(p, (pare_series){.kind = PARE_SERIES_BARS, .name = "c", .y = y, .n = 4});
        add(p, (pare_series){.kind = PARE_SERIES_VLINE, .name = "far", .value = 1e300});
        add(p, (pare_series){
                   .kind = PARE_SERIES_HEATMAP, .z = z, .rows = 2, .cols = 2, .zmin = -INFINITY, .zmax = INFINITY});
        pare_error err = {0};
        CHECKF(render_error(p, &err) == PARE_OK, "%s: %s", opts[k].title, err.msg);
        for (int m = 0; m < 3; m++) {
            pare_term_grid *g = NULL;
            CHECKF(pare_plot_render_terminal(p, 50, 16, (pare_term_mode)m, &g, &err) == PARE_OK, "%s", err.msg);
            pare_term_grid_free(g);
        }
        pare_plot_destroy(p);
    }
}

void suite_plot(void);
void suite_plot(void)
{
    RUN(test_png_line_row_and_canvas_equality);
    RUN(test_render_deterministic);
    RUN(test_bar_rows);
    RUN(test_heatmap_cell_colours);
    RUN(test_log_axis_spacing);
    RUN(test_log_axis_rejects_nonpositive);
    RUN(test_empty_plot);
    RUN(test_invalid_series);
    RUN(test_extreme_values);
    RUN(test_font);
    RUN(test_canvas_shapes);
    RUN(test_colormap);
    RUN(test_terminal_braille_diagonal);
    RUN(test_terminal_ascii);
    RUN(test_legend_corner);
    RUN(test_png_metadata);
    RUN(test_png_errors_and_rgba);
}

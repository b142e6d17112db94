/* Plot descriptions and their two renderers. A plot is a title, axes and a list of series; the same
 * description renders to an RGBA canvas (and from there to PNG) and to a grid of terminal cells for
 * the TUI, and both renderers share one layout (ranges, ticks, legend corner), so a plot looks the
 * same in both. The design (colormap, font, metadata) is in docs/plots.md. */
#ifndef PARE_PLOT_H
#define PARE_PLOT_H

#include <stdint.h>

#include "canvas.h"
#include "colormap.h"
#include "core/error.h"
#include "png.h"

#define PARE_PLOT_DEFAULT_WIDTH 1200
#define PARE_PLOT_DEFAULT_HEIGHT 800

typedef enum { PARE_SCALE_LINEAR = 0, PARE_SCALE_LOG } pare_scale;
typedef enum { PARE_AXIS_X = 0, PARE_AXIS_Y, PARE_AXIS_Y2 } pare_axis_id;

typedef enum {
    PARE_SERIES_LINE = 0,     /* points joined by a line */
    PARE_SERIES_MARKERS,      /* points as markers */
    PARE_SERIES_LINE_MARKERS, /* both */
    PARE_SERIES_BARS,         /* bars from baseline to y; several bar series are grouped or stacked */
    PARE_SERIES_AREA,         /* the region between the curve and the baseline, with the curve */
    PARE_SERIES_HLINE,        /* a horizontal reference line at y = value, labelled with the name */
    PARE_SERIES_VLINE,        /* a vertical reference line at x = value, labelled with the name */
    PARE_SERIES_HEATMAP,      /* a matrix of values as coloured cells, with a colorbar */
} pare_series_kind;

/* One series, given to pare_plot_add, which copies everything it points to. Zeroed fields are the
 * defaults, so a designated initializer names only what matters:
 *   (pare_series){.kind = PARE_SERIES_LINE, .name = "q_proj", .y = s, .n = 384}
 * Non-finite x or y values are gaps (lines break there, no marker or bar is drawn). */
typedef struct {
    pare_series_kind kind;
    const char *name; /* legend entry; reference lines: their label; heatmap: colorbar label; NULL: none */
    const double *x;  /* n x values; NULL: 0, 1, ..., n-1 (for bars: category positions) */
    const double *y;  /* n y values (bar heights) */
    int n;
    const char *const *labels;     /* bars, heatmap: names of the x categories (n bars, cols cells), or NULL */
    const char *const *row_labels; /* heatmap: names of the rows on the y axis, or NULL */
    double value;                  /* HLINE: y; VLINE: x */
    const double *z;               /* heatmap: rows x cols values, row-major; NaN cells stay blank */
    int rows, cols;                /* heatmap cell (r, c) is centred on x = c, y = r */
    double zmin, zmax;             /* heatmap colour range; zmin >= zmax: the range of the data */
    int on_y2;                     /* plotted against the second y axis */
    pare_rgba color;               /* alpha 0: the next palette colour (reference lines: dark grey) */
    pare_marker marker;            /* markers: PARE_MARKER_AUTO cycles circle, square, triangle, cross */
    double baseline;               /* bars and areas grow from here (on a log axis: from the axis bottom) */
    int dashed;                    /* lines and reference lines: dashed */
} pare_series;

typedef struct {
    const char *label;
    pare_scale scale;
    double min, max; /* fixed limits when min < max, else fitted to the data */
    int inverted;    /* values grow leftwards (x) or downwards (y), e.g. matrix rows in a heatmap */
} pare_axis_opts;

typedef enum {
    PARE_LEGEND_AUTO = 0, /* the corner of the plot area covering the fewest data */
    PARE_LEGEND_NONE,
    PARE_LEGEND_UPPER_RIGHT,
    PARE_LEGEND_UPPER_LEFT,
    PARE_LEGEND_LOWER_LEFT,
    PARE_LEGEND_LOWER_RIGHT,
} pare_legend_pos;

typedef enum { PARE_BARS_GROUPED = 0, PARE_BARS_STACKED } pare_bar_mode;

/* A zeroed struct is the default: linear axes fitted to the data, automatic legend, grid shown. */
typedef struct {
    const char *title;
    pare_axis_opts x, y, y2; /* y2 is drawn when some series is on_y2 */
    pare_legend_pos legend;
    pare_bar_mode bars;
    int hide_grid;
} pare_plot_opts;

typedef struct pare_plot pare_plot;

/* opts may be NULL (the defaults); strings are copied. */
pare_status pare_plot_create(const pare_plot_opts *opts, pare_plot **out, pare_error *err);
void pare_plot_destroy(pare_plot *p);
pare_status pare_plot_set_opts(pare_plot *p, const pare_plot_opts *opts, pare_error *err);
/* Copies the series; checks its shape (counts, pointers), not its values against the axes, which
 * may change until rendering. */
pare_status pare_plot_add(pare_plot *p, const pare_series *s, pare_error *err);
int pare_plot_series_count(const pare_plot *p);
/* Series i (0-based, in the order added) as stored: the view points into the plot (arrays, names,
 * labels) and stays valid until the plot is changed or destroyed. Charts built by src/plot/charts.c
 * are checked through it. Fails on i out of range. */
pare_status pare_plot_series_at(const pare_plot *p, int i, pare_series *out, pare_error *err);
/* The options as stored (strings owned by the plot). */
const pare_plot_opts *pare_plot_get_opts(const pare_plot *p);

/* Where data lands: the plot area and the fitted range of each axis, in pixels for a canvas or PNG
 * and in character cells for the terminal. Coordinates are continuous (pixel x covers [x, x+1)). */
typedef struct {
    int present;
    pare_scale scale;
    int inverted;
    double min, max; /* the range drawn */
} pare_axis_range;

typedef struct {
    int width, height;       /* whole picture */
    int x0, y0, x1, y1;      /* plot area [x0, x1) x [y0, y1) */
    pare_axis_range axis[3]; /* by pare_axis_id */
} pare_plot_layout;

/* Layout of the plot on a width x height canvas. Fails as rendering would (no data, log axis with
 * values <= 0, too small to hold the labels). */
pare_status pare_plot_layout_canvas(const pare_plot *p, int width, int height, pare_plot_layout *out, pare_error *err);
/* Coordinate of value v along an axis: x from the left edge, y from the top; NaN when v cannot be
 * shown (non-finite, or <= 0 on a log axis). */
double pare_plot_map(const pare_plot_layout *l, pare_axis_id axis, double v);

/* Renders onto the canvas (its whole size), replacing its contents. */
pare_status pare_plot_render(const pare_plot *p, pare_canvas *c, pare_error *err);

/* Renders at width x height (0 for the default 1200 x 800) and writes a PNG atomically. meta may be
 * NULL; a NULL meta title takes the plot's title. */
pare_status pare_plot_write_png(const pare_plot *p, const char *path, int width, int height, const pare_png_meta *meta,
                                pare_error *err);

/* ---------------------------------------------------------------- terminal rendering */

typedef enum {
    PARE_TERM_BRAILLE = 0, /* 2 x 4 dots per cell (U+2800 braille patterns) */
    PARE_TERM_BLOCK,       /* 2 x 2 quadrant blocks per cell */
    PARE_TERM_ASCII,       /* one point per cell, ASCII only */
} pare_term_mode;

/* Colour of a cell: 0 the default foreground (text, axes); 1..8 the palette colours; then
 * PARE_TERM_RAMP_LEVELS steps of the sequential colormap (heatmaps, colorbar). */
#define PARE_TERM_COLOR_DEFAULT 0
#define PARE_TERM_RAMP_LEVELS 8
#define PARE_TERM_COLOR_PALETTE(i) (1 + (i) % PARE_PALETTE_SIZE)
#define PARE_TERM_COLOR_RAMP(k) (1 + PARE_PALETTE_SIZE + (k))
#define PARE_TERM_COLORS (1 + PARE_PALETTE_SIZE + PARE_TERM_RAMP_LEVELS)

typedef struct {
    char text[8]; /* one character, UTF-8, NUL-terminated */
    uint8_t color;
} pare_term_cell;

typedef struct {
    int cols, rows;
    pare_term_cell *cells; /* rows * cols, row-major */
} pare_term_grid;

/* Dots per cell of a mode (braille 2 x 4, block 2 x 2, ascii 1 x 1). */
void pare_term_cell_dots(pare_term_mode mode, int *dots_x, int *dots_y);
/* Layout in cells; multiply by pare_term_cell_dots for the dot a value lands on. */
pare_status pare_plot_layout_terminal(const pare_plot *p, int cols, int rows, pare_term_mode mode,
                                      pare_plot_layout *out, pare_error *err);
pare_status pare_plot_render_terminal(const pare_plot *p, int cols, int rows, pare_term_mode mode, pare_term_grid **out,
                                      pare_error *err);
void pare_term_grid_free(pare_term_grid *g);
/* The grid as text: one line per row, trailing spaces removed, each line ending in '\n'. */
pare_status pare_term_grid_to_text(const pare_term_grid *g, char **text, pare_error *err);
/* The RGB of a cell colour index, for a UI building its colour table. */
pare_rgba pare_term_color_rgba(int color);

#endif

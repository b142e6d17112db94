/* What the plot description and its two renderers share: the stored series and the computed frame
 * (ranges, ticks, margins, legend and colorbar placement). Not part of pare's API. */
#ifndef PARE_PLOT_INTERNAL_H
#define PARE_PLOT_INTERNAL_H

#include "plot.h"

typedef struct {
    pare_series_kind kind;
    char *name;
    double *x, *y; /* x NULL: positions 0..n-1 */
    int n;
    char **labels; /* n_labels x categories, or NULL */
    int n_labels;
    char **row_labels; /* rows y categories (heatmap), or NULL */
    double value;
    double *z;
    int rows, cols;
    double zmin, zmax;
    int on_y2;
    pare_rgba color;
    int term_color;    /* the nearest terminal colour index */
    int palette_index; /* -1 for explicit or grey colours */
    pare_marker marker;
    double baseline;
    int dashed;
} plot_series;

struct pare_plot {
    pare_plot_opts opts; /* strings owned */
    plot_series *series;
    int n_series, cap_series;
    int next_color, next_marker;
};

#define PLOT_MAX_TICKS 160

typedef struct {
    double value;
    int major; /* labelled; minor ticks (log axes) are short and unlabelled */
    char label[64];
} plot_tick;

typedef struct {
    pare_axis_range range;
    const char *label;
    int n_ticks;
    plot_tick ticks[PLOT_MAX_TICKS];
    int is_category;         /* positions are the integers 0..n_categories-1 (bars without x, heatmaps) */
    char *const *categories; /* their names, or NULL for numbers */
    int n_categories;
    double lo_px, hi_px; /* coordinates of range.min and range.max (inversion applied) */
} plot_axis;

/* Sizes in the renderer's unit (pixels, or cells for the terminal). */
typedef struct {
    int terminal;
    int scale;    /* PNG: font scale of tick and axis labels; terminal: 1 */
    int char_w;   /* advance of one character */
    int text_h;   /* height of one line of text */
    int title_h;  /* height of the title line */
    int tick_len; /* outward tick marks (0 in the terminal, where the axis characters show ticks) */
    int pad;
} plot_metrics;

typedef struct {
    pare_plot_layout pub;
    plot_metrics m;
    plot_axis axis[3];
    int title_x, title_y;
    int xlabel_x, xlabel_y;
    int ylabel_x, ylabel_y; /* PNG: top-left of the vertical text; terminal: start of the top row text */
    int y2label_x, y2label_y;
    /* legend: entries are the named line, marker, bar and area series */
    int legend_shown, legend_entries, legend_x0, legend_y0, legend_x1, legend_y1, legend_swatch_w, legend_row_h;
    /* colorbar of the heatmap */
    const plot_series *heatmap;
    double zmin, zmax;
    int colorbar_shown, cb_x0, cb_y0, cb_x1, cb_y1, cb_label_x, cb_label_y;
    plot_axis cb_axis; /* ticks of the colour scale (vertical, pixel range cb_y1..cb_y0) */
    int n_bar_series;
    double bar_slot; /* width of one bar within a category, in the x axis's transformed units */
} plot_frame;

/* Builds the frame for a width x height canvas (pixels) or terminal (cells). */
pare_status plot_frame_build(const pare_plot *p, int width, int height, int terminal, plot_frame *f, pare_error *err);
/* Continuous coordinate of v on an axis of the frame (NaN when not representable). */
double plot_axis_map(const plot_axis *a, double v);
/* Coordinate of an already transformed value (log10 of v on log axes). */
double plot_axis_map_t(const plot_axis *a, double t);
double plot_axis_transform(const plot_axis *a, double v);
const plot_axis *plot_series_y_axis(const plot_frame *f, const plot_series *s);
/* x of point i (x array or index). */
double plot_series_x(const plot_series *s, int i);
/* Horizontal extent of bar i of bar series number bar_index, in transformed x units, and its
 * bottom and top y values (stacking applied). Returns 0 when the bar is not drawn. */
int plot_bar_geometry(const pare_plot *p, const plot_frame *f, const plot_series *s, int bar_index, int i, double *tx0,
                      double *tx1, double *ybot, double *ytop);
/* Where a finite heatmap value falls in the colour range, in [0, 1]. */
double plot_heat_fraction(const plot_frame *f, double z);
/* Display name of the plot in messages: its title, or "untitled". */
const char *plot_display_name(const pare_plot *p);
/* Width of a text in the frame's unit. */
int plot_text_width(const plot_metrics *m, const char *s);
int plot_is_legend_series(const plot_series *s);

/* Shared by the steps of plot_frame_build (plot.c, plot_ranges.c, plot_ticks.c, plot_layout.c). */
/* Non-zero when the series has a finite point (or heatmap cell) to draw. */
int plot_series_has_data(const plot_series *s);
const pare_axis_opts *plot_axis_opts(const pare_plot *p, pare_axis_id id);
/* A log axis accepts only positive data and limits; the error names the axis, the series and the value. */
pare_status plot_check_log_axes(const pare_plot *p, pare_error *err);
/* The number of s among the plot's bar series (for side-by-side slots); *count: how many there are. */
int plot_bar_index_of(const pare_plot *p, const plot_series *s, int *count);
/* The three axes' ranges from the data and the options (limits, zero baselines, padding). */
void plot_fit_ranges(const pare_plot *p, plot_frame *f);
/* Ticks that fit the axis's length: fewer and fewer until the labels no longer collide. */
void plot_fit_ticks(const plot_metrics *m, plot_axis *a, int horizontal);
/* Width of the axis's widest tick label in the frame's unit. */
int plot_widest_label(const plot_metrics *m, const plot_axis *a);

#endif

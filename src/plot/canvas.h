/* An RGBA8 raster with the drawing operations plots need: antialiased thick lines and polylines,
 * rectangles, filled polygons, markers and text in pare's bitmap font (also rotated for y labels). */
#ifndef PARE_CANVAS_H
#define PARE_CANVAS_H

#include <stdint.h>

#include "colormap.h"
#include "core/error.h"

/* Coordinates are continuous: pixel (x, y) covers [x, x+1) x [y, y+1), y grows downwards. Filled
 * shapes cover the pixels whose centre lies inside them; lines and markers are antialiased. Every
 * operation is limited to the clip rectangle and blends by the colour's alpha. */
typedef struct {
    int width, height;
    uint8_t *pixels;                        /* width * height * 4 bytes, rows top to bottom, R G B A */
    int clip_x0, clip_y0, clip_x1, clip_y1; /* drawing stays inside [clip_x0, clip_x1) x [clip_y0, clip_y1) */
} pare_canvas;

typedef enum {
    PARE_MARKER_AUTO = 0, /* plots pick one per series; on a canvas it draws a circle */
    PARE_MARKER_CIRCLE,
    PARE_MARKER_SQUARE,
    PARE_MARKER_TRIANGLE,
    PARE_MARKER_CROSS,
} pare_marker;

/* Largest width or height accepted, so that a size typed by mistake fails instead of allocating GBs. */
#define PARE_CANVAS_MAX_SIDE 16384

pare_status pare_canvas_create(int width, int height, pare_rgba background, pare_canvas **out, pare_error *err);
void pare_canvas_free(pare_canvas *c);

void pare_canvas_fill(pare_canvas *c, pare_rgba color); /* whole canvas, ignoring the clip */
void pare_canvas_set_clip(pare_canvas *c, int x0, int y0, int x1, int y1);
void pare_canvas_reset_clip(pare_canvas *c);

/* Reads a pixel; outside the canvas gives transparent black. */
pare_rgba pare_canvas_get(const pare_canvas *c, int x, int y);
/* Replaces a pixel (no blending). */
void pare_canvas_set(pare_canvas *c, int x, int y, pare_rgba color);
/* Composites color over a pixel with its alpha scaled by coverage in [0, 1]. */
void pare_canvas_blend(pare_canvas *c, int x, int y, pare_rgba color, double coverage);

void pare_canvas_fill_rect(pare_canvas *c, double x0, double y0, double x1, double y1, pare_rgba color);
/* A segment of the given width with round ends. */
void pare_canvas_line(pare_canvas *c, double x0, double y0, double x1, double y1, double width, pare_rgba color);
/* A connected line through n points, each pixel blended once (joints do not darken); a NaN point
 * breaks the line. dash > 0 draws dashes of that length separated by gaps of 0.6 * dash. */
void pare_canvas_polyline(pare_canvas *c, const double *xs, const double *ys, int n, double width, double dash,
                          pare_rgba color);
/* The inside of a closed polygon (even-odd rule), e.g. the area under a curve. */
void pare_canvas_polygon(pare_canvas *c, const double *xs, const double *ys, int n, pare_rgba color);
/* A marker centred on (x, y) fitting a size x size box. */
void pare_canvas_marker(pare_canvas *c, double x, double y, pare_marker m, double size, pare_rgba color);

/* Cuts the segment (x0, y0)-(x1, y1) to the rectangle [xmin, xmax] x [ymin, ymax] (Liang-Barsky);
 * returns 0 when nothing of it is inside. */
int pare_clip_segment(double *x0, double *y0, double *x1, double *y1, double xmin, double ymin, double xmax,
                      double ymax);

/* Text in the bitmap font, each font pixel drawn as scale x scale pixels; (x, y) is the top-left
 * of the box pare_text_width x pare_text_height. Non-ASCII characters draw as '?'. */
void pare_canvas_text(pare_canvas *c, int x, int y, const char *s, int scale, pare_rgba color);
/* The same text turned 90 degrees anticlockwise (read bottom to top); (x, y) is the top-left of its
 * box, pare_text_height wide and pare_text_width tall. */
void pare_canvas_text_vertical(pare_canvas *c, int x, int y, const char *s, int scale, pare_rgba color);
int pare_text_width(const char *s, int scale);
int pare_text_height(int scale);

#endif

/* Colours for plots: RGBA pixels, the sequential colormap of heatmaps (computed in OKLab with lightness
 * rising linearly, so equal steps in value look like equal steps in colour) and the categorical palette
 * of series (distinguishable under the common colour-vision deficiencies). */
#ifndef PARE_COLORMAP_H
#define PARE_COLORMAP_H

#include <stdint.h>

typedef struct {
    uint8_t r, g, b, a;
} pare_rgba;

/* Number of distinct levels of the sequential colormap (t is rounded to one of them). */
#define PARE_COLORMAP_LEVELS 256
/* Number of colours in the categorical palette; series beyond it reuse them in order. */
#define PARE_PALETTE_SIZE 8

/* The sequential colormap at t in [0, 1] (clamped; NaN gives t = 0): dark violet through blue, teal
 * and green to yellow, opaque. */
pare_rgba pare_colormap_sequential(double t);

/* The i-th colour of the categorical palette (i taken modulo PARE_PALETTE_SIZE; negative i as 0). */
pare_rgba pare_palette_color(int i);

/* Perceptual lightness of a colour: OKLab L in [0, 1] of its RGB (alpha ignored). */
double pare_color_lightness(pare_rgba c);

#endif

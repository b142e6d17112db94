/* The sequential colormap and the categorical palette of plots.
 *
 * The colormap is computed rather than tabulated: lightness (OKLab L) rises linearly from a dark
 * violet to a light yellow, while the hue/chroma coordinates (a, b) follow a piecewise-linear path
 * through a few anchor colours. Points of that path outside the sRGB gamut lose chroma (never
 * lightness), so lightness stays monotone and the map reads correctly in greyscale. */
#include "colormap.h"

#include <math.h>

/* Anchors of the hue path, equally spaced in t; only the first and last lightness are used. */
static const uint32_t ANCHORS[] = {0x3b0f5c, 0x2f5f9a, 0x1f8f8a, 0x4cbf5a, 0xf2e52a};
#define N_ANCHORS ((int)(sizeof ANCHORS / sizeof ANCHORS[0]))

/* Okabe & Ito's colour-blind-safe set, ordered so the first series get the most distinct colours and
 * yellow (weak on white) comes last. */
static const uint32_t PALETTE[PARE_PALETTE_SIZE] = {0x0072b2, 0xd55e00, 0x009e73, 0xe69f00,
                                                    0xcc79a7, 0x56b4e9, 0x4d4d4d, 0xf0e442};

static double srgb_to_linear(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }
static double linear_to_srgb(double c) { return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055; }

static void rgb_to_oklab(double r, double g, double b, double lab[3])
{
    r = srgb_to_linear(r);
    g = srgb_to_linear(g);
    b = srgb_to_linear(b);
    double l = cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
    double m = cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b);
    double s = cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
    lab[0] = 0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s;
    lab[1] = 1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s;
    lab[2] = 0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s;
}

/* Linear-light RGB of an OKLab colour (may fall outside [0, 1]). */
static void oklab_to_linear_rgb(double L, double a, double b, double rgb[3])
{
    double l = L + 0.3963377774 * a + 0.2158037573 * b;
    double m = L - 0.1055613458 * a - 0.0638541728 * b;
    double s = L - 0.0894841775 * a - 1.2914855480 * b;
    l = l * l * l;
    m = m * m * m;
    s = s * s * s;
    rgb[0] = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s;
    rgb[1] = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s;
    rgb[2] = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s;
}

static void hex_to_oklab(uint32_t hex, double lab[3])
{
    rgb_to_oklab(((hex >> 16) & 255) / 255.0, ((hex >> 8) & 255) / 255.0, (hex & 255) / 255.0, lab);
}

static uint8_t to_byte(double linear)
{
    double c = linear_to_srgb(linear < 0 ? 0 : linear > 1 ? 1 : linear);
    return (uint8_t)lround(c * 255);
}

pare_rgba pare_colormap_sequential(double t)
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    t = round(t * (PARE_COLORMAP_LEVELS - 1)) / (PARE_COLORMAP_LEVELS - 1);
    double first[3], last[3], p[3], q[3];
    hex_to_oklab(ANCHORS[0], first);
    hex_to_oklab(ANCHORS[N_ANCHORS - 1], last);
    double L = first[0] + (last[0] - first[0]) * t;
    double pos = t * (N_ANCHORS - 1);
    int seg = (int)pos;
    if (seg > N_ANCHORS - 2)
        seg = N_ANCHORS - 2;
    double u = pos - seg;
    hex_to_oklab(ANCHORS[seg], p);
    hex_to_oklab(ANCHORS[seg + 1], q);
    double a = p[1] + (q[1] - p[1]) * u, b = p[2] + (q[2] - p[2]) * u;
    double rgb[3];
    /* shrink chroma until the colour fits sRGB; 100 steps reach grey, which always fits */
    for (int step = 0; step <= 100; step++) {
        double k = 1 - step / 100.0;
        oklab_to_linear_rgb(L, a * k, b * k, rgb);
        if (rgb[0] >= -1e-9 && rgb[0] <= 1 + 1e-9 && rgb[1] >= -1e-9 && rgb[1] <= 1 + 1e-9 && rgb[2] >= -1e-9 &&
            rgb[2] <= 1 + 1e-9)
            break;
    }
    return (pare_rgba){to_byte(rgb[0]), to_byte(rgb[1]), to_byte(rgb[2]), 255};
}

pare_rgba pare_palette_color(int i)
{
    if (i < 0)
        i = 0;
    uint32_t h = PALETTE[i % PARE_PALETTE_SIZE];
    return (pare_rgba){(uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h, 255};
}

double pare_color_lightness(pare_rgba c)
{
    double lab[3];
    rgb_to_oklab(c.r / 255.0, c.g / 255.0, c.b / 255.0, lab);
    return lab[0];
}

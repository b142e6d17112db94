/* The plot frame's ticks: nice steps on linear, log and category axes, their labels (plain or
 * with an exponent, trailing zeros dropped) and as many as fit the axis's length without colliding. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ticks */

int plot_text_width(const plot_metrics *m, const char *s)
{
    if (!m->terminal)
        return pare_text_width(s, m->scale);
    int n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        n += (*c & 0xc0) != 0x80;
    return n;
}

static void strip_zeros(char *s)
{
    char *dot = strchr(s, '.');
    if (!dot)
        return;
    char *end = s + strlen(s);
    while (end > dot + 1 && end[-1] == '0')
        *--end = '\0';
    if (end == dot + 1)
        *dot = '\0';
}

/* v as "d.ddde-x" with as many digits as the step needs, without '+' or leading exponent zeros. */
static void format_exponent(double v, double step, char *out, size_t cap)
{
    int e = (int)floor(log10(fabs(v)));
    int digits = e - (int)floor(log10(fabs(step)) + 1e-9);
    digits = digits < 0 ? 0 : digits > 8 ? 8 : digits;
    char buf[32]; /* at most 8 digits: "-d.dddddddde+ddd" */
    snprintf(buf, sizeof buf, "%.*e", digits, v);
    char *ep = strchr(buf, 'e');
    if (!ep) {
        snprintf(out, cap, "%s", buf);
        return;
    }
    *ep = '\0';
    strip_zeros(buf);
    snprintf(out, cap, "%se%d", buf, atoi(ep + 1));
}

/* v with the decimals the step needs, trailing zeros removed. */
static void format_plain(double v, double step, char *out, size_t cap)
{
    int decimals = 0;
    double s = fabs(step);
    while (decimals < 12 && fabs(s - round(s)) > 1e-6 * fmax(1, s)) {
        s *= 10;
        decimals++;
    }
    snprintf(out, cap, "%.*f", decimals, v);
    strip_zeros(out);
    if (strcmp(out, "-0") == 0)
        snprintf(out, cap, "0");
}

/* Labels all major ticks of an axis, decided per label on log axes (1, 10, 100, 1e3: the exponent
 * form when shorter) and for the whole axis on linear ones, so that 500, 1000, 1500 read alike
 * (the exponent form only when plain labels would pass 5 characters: 2e5, 4e-4). */
static void label_ticks(plot_axis *a, double step, int per_label)
{
    int plain_w = 0, exp_w = 0;
    char p[64], e[64];
    for (int i = 0; i < a->n_ticks; i++) {
        plot_tick *t = &a->ticks[i];
        if (!t->major)
            continue;
        double st = per_label ? t->value : step;
        if (t->value == 0 || fabs(t->value) < 1e-9 * fabs(step)) {
            snprintf(t->label, sizeof t->label, "0");
            continue;
        }
        format_plain(t->value, st, p, sizeof p);
        format_exponent(t->value, st, e, sizeof e);
        if (per_label) {
            snprintf(t->label, sizeof t->label, "%s", strlen(e) < strlen(p) ? e : p);
        } else {
            plain_w = (int)fmax(plain_w, strlen(p));
            exp_w = (int)fmax(exp_w, strlen(e));
        }
    }
    if (per_label)
        return;
    for (int i = 0; i < a->n_ticks; i++) {
        plot_tick *t = &a->ticks[i];
        if (!t->major || strcmp(t->label, "0") == 0)
            continue;
        if (plain_w > 5 && exp_w < plain_w)
            format_exponent(t->value, step, t->label, sizeof t->label);
        else
            format_plain(t->value, step, t->label, sizeof t->label);
    }
}

static void add_tick(plot_axis *a, double v, int major)
{
    if (a->n_ticks >= PLOT_MAX_TICKS)
        return;
    plot_tick *t = &a->ticks[a->n_ticks++];
    t->value = v;
    t->major = major;
    t->label[0] = '\0';
}

static double nice_step(double span, int target, int integer_only)
{
    double raw = span / (target > 0 ? target : 1);
    double mag = pow(10, floor(log10(raw))), step = 10 * mag;
    static const double MULT[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (MULT[i] * mag >= raw * (1 - 1e-9)) {
            step = MULT[i] * mag;
            break;
        }
    return integer_only && step < 1 ? 1 : step;
}

/* Ticks at multiples of a 1-2-5 step, about target of them. */
static void linear_ticks(plot_axis *a, double lo, double hi, int target, int integer_only)
{
    a->n_ticks = 0;
    double span = hi - lo;
    if (!(span > 0))
        return;
    double step = nice_step(span, target, integer_only);
    if (!(step > 0) || !isfinite(step))
        return;
    while ((hi - lo) / step > PLOT_MAX_TICKS - 1)
        step *= 2;
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    /* an integer count: k0 + 1 == k0 for ranges far from zero relative to their width */
    for (int i = 0; i <= k1 - k0 && i < PLOT_MAX_TICKS; i++) {
        double v = (k0 + i) * step;
        add_tick(a, fabs(v) < step * 1e-9 ? 0 : v, 1);
    }
    label_ticks(a, step, 0);
}

/* Log ticks: labelled decades (every few when there are many) with unlabelled 2..9 between; a range
 * narrower than two decades gets 1-2-5 mantissas, then linear ticks. */
static void log_ticks(plot_axis *a, double tlo, double thi, int target)
{
    a->n_ticks = 0;
    int d0 = (int)ceil(tlo - 1e-9), d1 = (int)floor(thi + 1e-9), nd = d1 - d0 + 1;
    if (nd >= 2) {
        int step = (nd + target - 1) / (target > 0 ? target : 1);
        step = step < 1 ? 1 : step;
        for (int d = (int)floor(tlo); d <= (int)ceil(thi); d++) {
            int labelled = ((d % step) + step) % step == 0 && d >= d0 && d <= d1;
            if (d >= d0 && d <= d1)
                add_tick(a, pow(10, d), labelled);
            if (step == 1 && nd <= 12)
                for (int m = 2; m <= 9; m++) {
                    double t = d + log10(m);
                    if (t >= tlo - 1e-9 && t <= thi + 1e-9)
                        add_tick(a, m * pow(10, d), 0);
                }
        }
        label_ticks(a, 1, 1);
        return;
    }
    static const int SETS[2][10] = {{1, 2, 5, 0}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}};
    for (int s = 0; s < 2; s++) {
        a->n_ticks = 0;
        for (int d = (int)floor(tlo); d <= (int)ceil(thi); d++)
            for (int i = 0; SETS[s][i]; i++) {
                double t = d + log10(SETS[s][i]);
                if (t >= tlo - 1e-9 && t <= thi + 1e-9)
                    add_tick(a, SETS[s][i] * pow(10, d), 1);
            }
        if (a->n_ticks >= 2 && a->n_ticks <= target + 2) {
            label_ticks(a, 1, 1);
            return;
        }
    }
    linear_ticks(a, pow(10, tlo), pow(10, thi), target, 0);
}

/* Categories: a tick at every k-th integer position, labelled with its name. */
static void category_ticks(plot_axis *a, int every)
{
    a->n_ticks = 0;
    double lo = fmax(ceil(fmin(a->range.min, a->range.max) - 1e-9), 0);
    double hi = fmin(floor(fmax(a->range.min, a->range.max) + 1e-9), a->n_categories - 1);
    for (int i = (int)fmin(lo, a->n_categories); i <= hi; i++)
        if (i % every == 0) {
            add_tick(a, i, 1);
            snprintf(a->ticks[a->n_ticks - 1].label, sizeof a->ticks[0].label, "%s", a->categories[i]);
        }
}

/* Fills the ticks of an axis for about target labels (or every k-th category). */
static void make_ticks(plot_axis *a, int target, int every)
{
    if (a->is_category && a->categories)
        category_ticks(a, every);
    else if (a->range.scale == PARE_SCALE_LOG)
        log_ticks(a, log10(a->range.min), log10(a->range.max), target);
    else
        linear_ticks(a, fmin(a->range.min, a->range.max), fmax(a->range.min, a->range.max), target, a->is_category);
}

int plot_widest_label(const plot_metrics *m, const plot_axis *a)
{
    int w = 0;
    for (int i = 0; i < a->n_ticks; i++)
        if (a->ticks[i].major)
            w = (int)fmax(w, plot_text_width(m, a->ticks[i].label));
    return w;
}

/* Whether labels along a horizontal axis leave a character's gap between neighbours. */
static int horizontal_labels_fit(const plot_metrics *m, const plot_axis *a)
{
    double prev_end = -INFINITY;
    for (int i = 0; i < a->n_ticks; i++) {
        const plot_tick *t = &a->ticks[i];
        if (!t->major)
            continue;
        double c = plot_axis_map(a, t->value), w = plot_text_width(m, t->label);
        if (!isfinite(c))
            continue;
        double start = c - w / 2;
        if (start < prev_end + m->char_w)
            return 0;
        prev_end = start + w;
    }
    return 1;
}

static int vertical_labels_fit(const plot_metrics *m, const plot_axis *a)
{
    double prev = INFINITY;
    int shown = 0;
    for (int i = 0; i < a->n_ticks; i++) {
        if (!a->ticks[i].major)
            continue;
        double c = plot_axis_map(a, a->ticks[i].value);
        if (shown && fabs(prev - c) < m->text_h + (m->terminal ? 0 : m->pad))
            return 0;
        prev = c;
        shown = 1;
    }
    return 1;
}

/* Ticks that fit the axis's length: fewer and fewer until the labels no longer collide. */
void plot_fit_ticks(const plot_metrics *m, plot_axis *a, int horizontal)
{
    double len = fabs(a->hi_px - a->lo_px);
    int target = horizontal ? (int)(len / (m->char_w * (m->terminal ? 10 : 9)))
                            : (int)(len / (m->terminal ? 3 : m->text_h * 3.5));
    target = target < 2 ? 2 : target > 12 ? 12 : target;
    int cats = a->is_category && a->categories;
    for (int every = 1, tries = 0; tries < 200; tries++) {
        make_ticks(a, target, every);
        if (horizontal ? horizontal_labels_fit(m, a) : vertical_labels_fit(m, a))
            return;
        if (cats)
            every++;
        else if (target > 2)
            target--;
        else
            return;
    }
}

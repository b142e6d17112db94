/* Charts (src/plot/charts.c), `pare plot`, the pare module's plots and a run's automatic plots: the
 * series each chart builds equal what the test computes from the model itself (spectra and energy
 * ranks, break-even ranks, mask tile densities, the channels channel pruning removed, parameters per
 * matrix), PNGs decode to the requested size with the data where the plot's own mapping puts it,
 * bad input to `pare plot` is one line and exit 2, and a sweep run writes and records its plots. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "plot/charts.h"
#include "core/factorize.h"
#include "core/fileio.h"
#include "plot/plot.h"
#include "plot/png.h"
#include "core/prune.h"
#include "core/spectrum.h"
#include "fixture.h"
#include "harness.h"

static int same_rgb(pare_rgba a, pare_rgba b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

static pare_rgba pixel_of(const uint8_t *rgba, int w, int x, int y)
{
    const uint8_t *q = rgba + 4 * ((size_t)y * w + x);
    return (pare_rgba){q[0], q[1], q[2], q[3]};
}

static pare_series series_at(const pare_plot *p, int i)
{
    pare_series s;
    memset(&s, 0, sizeof s);
    pare_error err = {0};
    CHECKF(pare_plot_series_at(p, i, &s, &err) == PARE_OK, "%s", err.msg);
    return s;
}

/* The first series of a kind whose name starts with prefix (NULL: any name); -1 when none. */
static int find_series(const pare_plot *p, pare_series_kind kind, const char *prefix)
{
    for (int i = 0; i < pare_plot_series_count(p); i++) {
        pare_series s = series_at(p, i);
        if (s.kind == kind && (!prefix || (s.name && !strncmp(s.name, prefix, strlen(prefix)))))
            return i;
    }
    return -1;
}

/* Writes p as a PNG of w x h, reads it back and lays it out the same way; returns the pixels. */
static uint8_t *png_of(const pare_plot *p, const char *name, int w, int h, pare_plot_layout *l)
{
    const char *path = tmp_path(name);
    pare_error err = {0};
    CHECKF(pare_plot_write_png(p, path, w, h, NULL, &err) == PARE_OK, "%s", err.msg);
    uint8_t *px = NULL;
    int pw = 0, ph = 0;
    CHECKF(pare_png_read(path, &px, &pw, &ph, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pw == w && ph == h, "%s is %dx%d, not %dx%d", name, pw, ph, w, h);
    CHECKF(pare_plot_layout_canvas(p, w, h, l, &err) == PARE_OK, "%s", err.msg);
    return px;
}

/* Spectrum of one matrix: min(out, in) points of s_i / s_1 from the test's own spectrum, the energy on
 * y2 ending at 1, the break-even line at pare_break_even_rank and the chosen rank, both where the
 * layout maps them in the PNG; weighted curves appear with calibration statistics; a factorized
 * matrix shows its k values and marks its rank by itself. */
static void test_spectrum_chart(void)
{
    pare_model *m = fixture_model("spec", 0);
    if (!m)
        return;
    pare_linear *l = &m->blocks[1].k;
    int r = l->out < l->in ? l->out : l->in;
    double *s = malloc((size_t)r * sizeof *s);
    pare_error err = {0};
    CHECK(pare_spectrum_values(l->name, l->w, l->out, l->in, NULL, s, NULL, &err) == PARE_OK);
    pare_plot *p = NULL;
    pare_chart_opts o = {.rank = 5};
    CHECKF(pare_chart_spectrum(m, "1.k", &o, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        int i = find_series(p, PARE_SERIES_LINE, "plain");
        CHECK(i >= 0 && find_series(p, PARE_SERIES_LINE, "whitened") < 0);
        pare_series c = series_at(p, i);
        CHECKF(c.n == r, "%d points for min(%d, %d)", c.n, l->out, l->in);
        for (int k = 0; k < c.n && k < r; k++)
            CHECKF(c.x[k] == k + 1 && fabs(c.y[k] - s[k] / s[0]) <= 1e-12, "point %d: %g vs %g", k, c.y[k], s[k] / s[0]);
        pare_series e = series_at(p, i + 1);
        CHECK(e.on_y2 && e.n == r && fabs(e.y[r - 1] - 1) < 1e-12 && e.dashed);
        CHECK(pare_plot_get_opts(p)->y.scale == PARE_SCALE_LOG);
        int be = pare_break_even_rank(l->out, l->in);
        char name[64];
        snprintf(name, sizeof name, "break-even %d", be);
        int b = find_series(p, PARE_SERIES_VLINE, "break-even");
        CHECKF(b >= 0 && series_at(p, b).value == be && !strcmp(series_at(p, b).name, name), "break-even line");
        int k = find_series(p, PARE_SERIES_VLINE, "rank ");
        CHECK(k >= 0 && series_at(p, k).value == 5 && !series_at(p, k).dashed);
        /* the solid rank line is where the layout maps x = 5, from top to bottom of the plot area */
        pare_plot_layout lay;
        uint8_t *px = png_of(p, "spectrum.png", 900, 600, &lay);
        if (px) {
            int col = (int)floor(pare_plot_map(&lay, PARE_AXIS_X, 5)), grey = 0;
            pare_rgba ref = series_at(p, k).color;
            for (int y = lay.y0; y < lay.y1; y++)
                grey += same_rgb(pixel_of(px, 900, col, y), ref);
            CHECKF(grey > (lay.y1 - lay.y0) * 3 / 4, "rank line covers %d of %d rows at x %d", grey, lay.y1 - lay.y0,
                   col);
            int away = (int)floor(pare_plot_map(&lay, PARE_AXIS_X, 5)) + 6, grey_away = 0;
            for (int y = lay.y0; y < lay.y1; y++)
                grey_away += same_rgb(pixel_of(px, 900, away, y), ref);
            CHECK(grey_away < (lay.y1 - lay.y0) / 4);
        }
        free(px);
        pare_plot_destroy(p);
    }
    /* weighted curves with calibration statistics (whitened only with the Gram matrices) */
    pare_calib_stats *cs = fixture_calibrate(m, 4, 16, 0);
    o = (pare_chart_opts){.calib = cs};
    p = NULL;
    CHECKF(pare_chart_spectrum(m, l->name, &o, &p, &err) == PARE_OK, "%s", err.msg);
    CHECK(p && find_series(p, PARE_SERIES_LINE, "activation-weighted") >= 0 &&
          find_series(p, PARE_SERIES_LINE, "whitened") < 0 && find_series(p, PARE_SERIES_VLINE, "rank ") < 0);
    pare_plot_destroy(p);
    pare_calib_free(cs);
    cs = fixture_calibrate(m, 4, 16, 1);
    o.calib = cs;
    p = NULL;
    CHECKF(pare_chart_spectrum(m, l->name, &o, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        int w = find_series(p, PARE_SERIES_LINE, "whitened");
        CHECK(w >= 0 && series_at(p, w).n == r && series_at(p, w).y[0] == 1);
    }
    pare_plot_destroy(p);
    pare_calib_free(cs);
    /* a factorized matrix: its rank-k values, its rank marked without asking */
    pare_factor_opts fo;
    pare_factor_report frep;
    pare_factor_defaults(&fo);
    CHECK(pare_factorize_linear(&m->blocks[0].q, 4, &fo, NULL, &frep, &err) == PARE_OK);
    p = NULL;
    CHECKF(pare_chart_spectrum(m, "0.q", NULL, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        CHECK(series_at(p, find_series(p, PARE_SERIES_LINE, "plain")).n == 4);
        int k = find_series(p, PARE_SERIES_VLINE, "rank ");
        CHECK(k >= 0 && series_at(p, k).value == 4);
    }
    pare_plot_destroy(p);
    o = (pare_chart_opts){.rank = 1000};
    p = NULL;
    CHECK(pare_chart_spectrum(m, "0.k", &o, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "rank 1000"));
    CHECK(pare_chart_spectrum(m, "nosuch", NULL, &p, &err) == PARE_EINVAL && strstr(err.msg, "nosuch") &&
          strstr(err.msg, m->blocks[0].q.name));
    free(s);
    pare_model_free(m);
}

/* Names: LAYER.TYPE and full names find the same matrix; names parse to layer and type for both
 * architectures. */
static void test_matrix_names(void)
{
    for (int g = 0; g < 2; g++) {
        pare_model *m = fixture_model(g ? "names-gpt2" : "names-llama", g);
        if (!m)
            continue;
        pare_linear *lin[64];
        int n = pare_model_linears(m, lin, 64);
        for (int i = 0; i < n; i++) {
            int layer = -1;
            pare_lin_kind t;
            CHECKF(pare_matrix_name_parse(lin[i]->name, &layer, &t), "%s does not parse", lin[i]->name);
            pare_linear *want[] = {&m->blocks[layer].q,   &m->blocks[layer].k,    &m->blocks[layer].v,
                                   &m->blocks[layer].o,   &m->blocks[layer].gate, &m->blocks[layer].up,
                                   &m->blocks[layer].down};
            CHECKF(want[t] == lin[i], "%s parsed as %d.%s", lin[i]->name, layer, pare_lin_kinds[t].name);
            char label[64];
            pare_matrix_short_label(lin[i]->name, label, sizeof label);
            pare_linear *found = NULL;
            pare_error err = {0};
            CHECK(pare_model_find_linear(m, label, &found, NULL, &err) == PARE_OK && found == lin[i]);
            CHECK(pare_model_find_linear(m, lin[i]->name, &found, NULL, &err) == PARE_OK && found == lin[i]);
        }
        pare_linear *none = NULL;
        pare_error err = {0};
        CHECK(pare_model_find_linear(m, "9.q", &none, NULL, &err) == PARE_EINVAL && !none && strstr(err.msg, "9.q"));
        CHECK(pare_model_find_linear(m, "0.gate", &none, NULL, &err) == (g ? PARE_EINVAL : PARE_OK));
        pare_model_free(m);
    }
}

/* Energy ranks: the 90 / 95 / 99% bars of every matrix equal pare_spectrum_energy_rank / r of the
 * test's own (weighted) spectra, the categories are ordered by type then layer, and the break-even
 * markers sit at break_even / r. */
static void test_energy_ranks_chart(void)
{
    pare_model *m = fixture_model("energy", 0);
    if (!m)
        return;
    pare_calib_stats *cs = fixture_calibrate(m, 4, 16, 0);
    for (int w = 0; w < 2; w++) {
        pare_model_spectra *sp = NULL;
        pare_error err = {0};
        CHECK(pare_model_spectra_weighted(m, w ? cs : NULL, (pare_weighting)w, NULL, &sp, &err) == PARE_OK);
        pare_chart_opts o = {.weighting = (pare_weighting)w, .calib = w ? cs : NULL};
        pare_plot *p = NULL;
        CHECKF(pare_chart_energy_ranks(m, &o, &p, &err) == PARE_OK, "%s", err.msg);
        if (!p || !sp) {
            pare_model_spectra_free(sp);
            pare_plot_destroy(p);
            continue;
        }
        static const double thr[3] = {0.90, 0.95, 0.99};
        static const char *const names[3] = {"90%", "95%", "99%"};
        int L = m->cfg.n_layers;
        for (int k = 0; k < 3; k++) {
            pare_series b = series_at(p, k);
            CHECK(b.kind == PARE_SERIES_BARS && !strcmp(b.name, names[k]) && b.n == sp->count);
            for (int c = 0; c < b.n; c++) {
                /* category c: type c / L, layer c % L */
                char want_label[32];
                snprintf(want_label, sizeof want_label, "%d.%s", c % L, pare_lin_kinds[c / L].name);
                CHECKF(!strcmp(b.labels[c], want_label), "category %d is %s, not %s", c, b.labels[c], want_label);
                const pare_matrix_spectrum *ms = NULL;
                pare_linear *lin = NULL;
                pare_model_find_linear(m, want_label, &lin, NULL, &err);
                for (int i = 0; i < sp->count && lin; i++)
                    if (!strcmp(sp->mats[i].name, lin->name))
                        ms = &sp->mats[i];
                if (!ms)
                    continue;
                double want = (double)pare_spectrum_energy_rank(ms->s, ms->stats.r, thr[k]) / ms->stats.r;
                CHECKF(b.y[c] == want, "%s %s: %g vs %g", want_label, names[k], b.y[c], want);
                if (k == 0) {
                    pare_series be = series_at(p, 3);
                    CHECK(be.kind == PARE_SERIES_MARKERS && be.x[c] == c &&
                          be.y[c] == (double)pare_break_even_rank(ms->m, ms->n) / ms->stats.r);
                }
            }
        }
        pare_plot_destroy(p);
        pare_model_spectra_free(sp);
    }
    pare_chart_opts bad = {.weighting = PARE_WEIGHT_ACT};
    pare_plot *p = NULL;
    pare_error err = {0};
    CHECK(pare_chart_energy_ranks(m, &bad, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "calibration"));
    pare_calib_free(cs);
    pare_model_free(m);
}

/* Mask heatmap: each tile's density is the test's count of kept mask entries over the tile (edge
 * tiles smaller), and the PNG shows each cell in the colormap colour of its density. */
static void test_mask_heatmap(void)
{
    pare_model *m = fixture_model("mask", 0);
    if (!m)
        return;
    pare_linear *l = &m->blocks[0].up; /* [48, 32] */
    pare_linear *ls[1] = {l};
    pare_mask_opts mo;
    pare_mask_defaults(&mo);
    mo.sparsity = 0.6;
    mo.scope = PARE_SCOPE_ROW;
    pare_error err = {0};
    CHECK(pare_prune_mask(ls, NULL, 1, &mo, NULL, &err) == PARE_OK && l->kind == PARE_LIN_MASKED);
    const int tile = 5;
    pare_chart_opts o = {.tile = tile};
    pare_plot *p = NULL;
    CHECKF(pare_chart_mask_heatmap(m, l->name, &o, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        pare_series h = series_at(p, 0);
        int rows = (l->out + tile - 1) / tile, cols = (l->in + tile - 1) / tile;
        CHECKF(h.kind == PARE_SERIES_HEATMAP && h.rows == rows && h.cols == cols, "%dx%d cells", h.rows, h.cols);
        for (int r = 0; r < rows && h.rows == rows; r++)
            for (int c = 0; c < cols && h.cols == cols; c++) {
                int kept = 0, all = 0;
                for (int i = r * tile; i < (r + 1) * tile && i < l->out; i++)
                    for (int k = c * tile; k < (c + 1) * tile && k < l->in; k++) {
                        kept += l->mask[(size_t)i * l->in + k] != 0;
                        all++;
                    }
                CHECKF(h.z[r * cols + c] == (double)kept / all, "tile (%d, %d): %g vs %d/%d", r, c, h.z[r * cols + c],
                       kept, all);
            }
        CHECK(!strcmp(h.labels[1], "5") && !strcmp(h.row_labels[2], "10"));
        pare_plot_layout lay;
        uint8_t *px = png_of(p, "mask.png", 1000, 700, &lay);
        for (int r = 0; px && r < rows; r++)
            for (int c = 0; c < cols; c++) {
                int x = (int)floor(pare_plot_map(&lay, PARE_AXIS_X, c)),
                    y = (int)floor(pare_plot_map(&lay, PARE_AXIS_Y, r));
                pare_rgba want = pare_colormap_sequential(h.z[r * cols + c]), got = pixel_of(px, 1000, x, y);
                CHECKF(same_rgb(got, want), "cell (%d, %d): %d,%d,%d vs %d,%d,%d", r, c, got.r, got.g, got.b, want.r,
                       want.g, want.b);
            }
        free(px);
        pare_plot_destroy(p);
    }
    /* automatic tile; a dense matrix shows its non-zero weights; a factorized one has no mask */
    CHECK(pare_chart_auto_tile(48, 32) == 1 && pare_chart_auto_tile(4096, 11008) == 172);
    p = NULL;
    CHECK(pare_chart_mask_heatmap(m, "0.k", NULL, &p, &err) == PARE_OK && p && series_at(p, 0).z[0] == 1);
    pare_plot_destroy(p);
    pare_factor_opts fo;
    pare_factor_report frep;
    pare_factor_defaults(&fo);
    CHECK(pare_factorize_linear(&m->blocks[1].v, 2, &fo, NULL, &frep, &err) == PARE_OK);
    p = NULL;
    CHECK(pare_chart_mask_heatmap(m, "1.v", NULL, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "factorized"));
    pare_model_free(m);
}

/* Channel map: after pruning one block's FFN, its row is 0 exactly at the channels the test's own
 * selection (scores + pare_chan_select) removes and 1 elsewhere; the other block stays all 1. */
static void test_channel_map(void)
{
    pare_model *m = fixture_model("chan", 0);
    if (!m)
        return;
    pare_block *b = &m->blocks[1];
    int F = b->up.out;
    double *scores = malloc((size_t)F * sizeof *scores);
    int32_t *keep = malloc((size_t)F * sizeof *keep);
    int n_keep = 0;
    pare_error err = {0};
    pare_chan_opts co;
    pare_chan_defaults(&co);
    co.score = PARE_CHAN_MAGNITUDE;
    co.sparsity = 0.25;
    CHECK(pare_ffn_channel_scores(b, NULL, co.score, scores, &err) == PARE_OK);
    CHECK(pare_chan_select(scores, F, co.sparsity, co.keep_least, keep, &n_keep, &err) == PARE_OK);
    pare_chan_report rep = {0};
    CHECK(pare_prune_ffn(b, NULL, &co, &rep, &err) == PARE_OK && rep.removed == F - n_keep && rep.removed > 0);
    pare_plot *p = NULL;
    CHECKF(pare_chart_channel_map(m, NULL, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        pare_series h = series_at(p, 0);
        CHECK(h.kind == PARE_SERIES_HEATMAP && h.rows == 2 && h.cols == F);
        int zeros = 0;
        for (int c = 0; c < F && h.cols == F; c++) {
            int kept = 0;
            for (int k = 0; k < n_keep; k++)
                kept |= keep[k] == c;
            CHECKF(h.z[F + c] == (kept ? 1.0 : 0.0), "layer 1 channel %d: %g, kept %d", c, h.z[F + c], kept);
            CHECK(h.z[c] == 1.0);
            zeros += h.z[F + c] == 0;
        }
        CHECKF(zeros == rep.removed, "%d channels marked removed, %d removed", zeros, rep.removed);
        CHECK(pare_plot_get_opts(p)->y.inverted);
    }
    pare_plot_destroy(p);
    free(scores);
    free(keep);
    pare_model_free(m);
}

/* Budget: per kind, the kept bars equal pare_linear_params of the matrices of that kind (NaN
 * elsewhere), "removed" completes each bar to the dense matrix, labels are LAYER.TYPE. */
static void test_budget_chart(void)
{
    pare_model *m = fixture_model("budget", 1); /* GPT-2: biases count */
    if (!m)
        return;
    pare_error err = {0};
    pare_factor_opts fo;
    pare_factor_report frep;
    pare_factor_defaults(&fo);
    CHECK(pare_factorize_linear(&m->blocks[0].q, 3, &fo, NULL, &frep, &err) == PARE_OK);
    pare_linear *ls[1] = {&m->blocks[0].o};
    pare_mask_opts mo;
    pare_mask_defaults(&mo);
    CHECK(pare_prune_mask(ls, NULL, 1, &mo, NULL, &err) == PARE_OK);
    pare_chan_opts co;
    pare_chan_defaults(&co);
    co.score = PARE_CHAN_MAGNITUDE;
    CHECK(pare_prune_ffn(&m->blocks[1], NULL, &co, NULL, &err) == PARE_OK);
    pare_plot *p = NULL;
    CHECKF(pare_chart_budget(m, NULL, &p, &err) == PARE_OK, "%s", err.msg);
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    if (p) {
        CHECK(pare_plot_get_opts(p)->bars == PARE_BARS_STACKED);
        static const char *const kinds[] = {"dense", "factorized", "masked", "sliced"};
        int seen[4] = {0};
        for (int k = 0; k < 4; k++) {
            int i = find_series(p, PARE_SERIES_BARS, kinds[k]);
            CHECKF(i >= 0, "no %s series", kinds[k]);
            if (i < 0)
                continue;
            pare_series s = series_at(p, i);
            CHECK(s.n == n);
            for (int j = 0; j < n && s.n == n; j++) {
                const char *kind = pare_linear_budget_kind(lin[j]);
                if (!strcmp(kind, kinds[k])) {
                    CHECKF(s.y[j] == (double)pare_linear_params(lin[j]), "%s: %g vs %zu", lin[j]->name, s.y[j],
                           pare_linear_params(lin[j]));
                    seen[k]++;
                } else {
                    CHECK(isnan(s.y[j]));
                }
            }
        }
        CHECK(seen[1] == 1 && seen[2] == 1 && seen[3] == 2 && seen[0] == n - 4);
        int r = find_series(p, PARE_SERIES_BARS, "removed");
        CHECK(r == pare_plot_series_count(p) - 1);
        pare_series rm = series_at(p, r);
        for (int j = 0; j < n && r >= 0; j++) {
            double dense = (double)lin[j]->orig_out * lin[j]->orig_in + (lin[j]->b ? lin[j]->orig_out : 0);
            double kept = (double)pare_linear_params(lin[j]);
            CHECKF(dense > kept ? rm.y[j] == dense - kept : isnan(rm.y[j]), "%s removed %g", lin[j]->name, rm.y[j]);
            char label[64];
            pare_matrix_short_label(lin[j]->name, label, sizeof label);
            CHECK(!strcmp(rm.labels[j], label));
        }
        CHECK(!strcmp(series_at(p, 0).labels[0], "0.q"));
    }
    pare_plot_destroy(p);
    /* a budget given as items: a grown matrix has no removed part, bad counts are refused */
    pare_budget_item items[2] = {{"model.layers.0.self_attn.q_proj", "factorized", 100, 120},
                                 {"model.layers.0.self_attn.k_proj", "dense", 50, 50}};
    p = NULL;
    CHECK(pare_chart_budget_items(items, 2, "svd", &p, &err) == PARE_OK && p);
    if (p) {
        CHECK(find_series(p, PARE_SERIES_BARS, "removed") < 0 && strstr(pare_plot_get_opts(p)->title, "svd: "));
        pare_plot_destroy(p);
    }
    items[1].kept = NAN;
    p = NULL;
    CHECK(pare_chart_budget_items(items, 2, NULL, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "k_proj"));
    CHECK(pare_chart_budget_items(items, 0, NULL, &p, &err) == PARE_EINVAL);
    pare_model_free(m);
}

/* Size against quality: one line per series in order of appearance, sorted by parameters, the
 * reference series also as a horizontal line; markers where the layout maps them; log axes refuse
 * values <= 0; no points is an error. */
static void test_size_quality_chart(void)
{
    pare_sq_point pts[] = {{"dense", 100, 10}, {"svd", 60, 14},   {"lorap", 70, 11},
                           {"svd", 80, 12},    {"lorap", 50, 13}, {"svd", 40, 20}};
    int n = (int)(sizeof pts / sizeof pts[0]);
    pare_sq_opts o = {.x_label = "parameters", .y_label = "ppl", .reference = "dense"};
    pare_plot *p = NULL;
    pare_error err = {0};
    CHECKF(pare_chart_size_quality(pts, n, &o, &p, &err) == PARE_OK, "%s", err.msg);
    if (p) {
        CHECK(pare_plot_series_count(p) == 4);
        const char *want[3] = {"dense", "svd", "lorap"};
        int counts[3] = {1, 3, 2};
        for (int s = 0; s < 3; s++) {
            pare_series c = series_at(p, s);
            CHECKF(c.kind == PARE_SERIES_LINE_MARKERS && !strcmp(c.name, want[s]) && c.n == counts[s], "series %d", s);
            for (int k = 1; k < c.n; k++)
                CHECK(c.x[k] > c.x[k - 1]);
            for (int k = 0; k < c.n; k++) { /* every point is one of the inputs of its series */
                int found = 0;
                for (int i = 0; i < n; i++)
                    found |= !strcmp(pts[i].series, want[s]) && pts[i].params == c.x[k] && pts[i].value == c.y[k];
                CHECK(found);
            }
        }
        pare_series h = series_at(p, 3);
        CHECK(h.kind == PARE_SERIES_HLINE && h.value == 10 && !strcmp(h.name, "dense 10"));
        /* the svd point (60, 14) is drawn in svd's colour where the layout maps it */
        pare_plot_layout lay;
        uint8_t *px = png_of(p, "sq.png", 1200, 800, &lay);
        if (px) {
            int x = (int)floor(pare_plot_map(&lay, PARE_AXIS_X, 60)),
                y = (int)floor(pare_plot_map(&lay, PARE_AXIS_Y, 14));
            CHECK(same_rgb(pixel_of(px, 1200, x, y), series_at(p, 1).color));
        }
        free(px);
        pare_plot_destroy(p);
    }
    /* a log axis with a value <= 0 is refused when the plot is laid out */
    pts[1].value = 0;
    o.log_y = 1;
    p = NULL;
    CHECK(pare_chart_size_quality(pts, n, &o, &p, &err) == PARE_OK && p);
    pare_plot_layout lay;
    if (p)
        CHECK(pare_plot_layout_canvas(p, 1200, 800, &lay, &err) == PARE_EINVAL && strstr(err.msg, "logarithmic") &&
              strstr(err.msg, "svd"));
    pare_plot_destroy(p);
    p = NULL;
    CHECK(pare_chart_size_quality(pts, 0, &o, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "no points"));
    pts[2].params = NAN;
    CHECK(pare_chart_size_quality(pts, n, &o, &p, &err) == PARE_EINVAL && !p && strstr(err.msg, "lorap"));
}

/* `pare plot` writes PNGs of the requested size for every model kind, prints charts in the
 * terminal (ASCII only with --ascii), and refuses bad input with one line and exit 2. */
static void test_plot_cli(void)
{
    const char *d = fixture_hf_dir("cli", 0);
    static const char *const kinds[][3] = {{"spectrum", "--matrix", "0.q"}, {"spectra", "--type", "down"},
                                           {"energy-ranks", NULL, NULL},    {"mask", "--matrix", "1.gate"},
                                           {"channels", NULL, NULL},        {"budget", NULL, NULL}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "cli-%s.png", kinds[k][0]);
        const char *png = tmp_path(name);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err,
                          (const char *const[]){"plot", kinds[k][0], "--model", d, "--out", png, "--size", "640x480",
                                                kinds[k][1], kinds[k][2], NULL});
        uint8_t *px = NULL;
        int w = 0, h = 0;
        pare_error e = {0};
        CHECKF(st == 0 && pare_png_read(png, &px, &w, &h, &e) == PARE_OK && w == 640 && h == 480,
               "pare plot %s: exit %d, %dx%d: %s %s", kinds[k][0], st, w, h, err, e.msg);
        CHECK(out && strstr(out, png));
        free(px);
        free(out);
        free(err);
    }
    char *out = NULL, *err = NULL;
    int st = run_pare(
        &out, &err,
        (const char *const[]){"plot", "budget", "--model", d, "--terminal", "--ascii", "--size", "72x20", NULL});
    int ascii = 1, lines = 0;
    for (const char *c = out; c && *c; c++) {
        ascii &= (unsigned char)*c < 128;
        lines += *c == '\n';
    }
    CHECKF(st == 0 && ascii && lines == 20 && strstr(out, "parameters kept per matrix"), "exit %d, %d lines: %s", st,
           lines, out);
    free(out);
    free(err);
    /* bad input */
    expect_pare_error((const char *const[]){"plot", "histogram", "--model", d, NULL},
                      (const char *const[]){"unknown kind 'histogram'", "energy-ranks", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "spectrum", "--model", d, "--matrix", "nosuch", NULL},
                      (const char *const[]){"nosuch", "model.layers.0.self_attn.q_proj", "0.q", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "spectrum", "--model", d, NULL},
                      (const char *const[]){"--matrix", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "spectra", "--model", d, "--type", "qq", NULL},
                      (const char *const[]){"'qq'", "gate", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "budget", "--model", d, "--matrix", "0.q", NULL},
                      (const char *const[]){"--matrix is not an option of pare plot budget", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "energy-ranks", "--model", d, "--weighting", "act", NULL},
                      (const char *const[]){"--calib", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "budget", "--model", d, "--out", tmp_path("no/such/dir/b.png"), NULL},
                      (const char *const[]){"no/such/dir", "does not exist", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "budget", "--model", d, "--size", "big", NULL},
                      (const char *const[]){"--size 'big'", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "budget", NULL}, (const char *const[]){"--model", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "size-quality", NULL}, (const char *const[]){"run folders", NULL},
                      1);
    expect_pare_error((const char *const[]){"plot", "size-quality", tmp_path("no-such-run"), NULL},
                      (const char *const[]){"no-such-run", "no run record", NULL}, 1);
    /* run records made here: an empty one, and one whose metric is 0 (not on a log axis) */
    const char *empty = tmp_path("empty-run.json");
    const char *zero = tmp_path("zero-run.json");
    const char *e_json = "{\"status\": \"complete\", \"results\": [{\"method\": \"dense\", \"params\": "
                         "{\"block_linear\": 100, \"total\": 150}, \"metrics\": []}]}";
    const char *z_json = "{\"status\": \"complete\", \"results\": [{\"method\": \"svd\", \"params\": "
                         "{\"block_linear\": 60, \"total\": 110}, \"metrics\": [{\"name\": \"acc\", \"data\": "
                         "\"a/b.txt\", \"value\": 0}]}]}";
    CHECK(fixture_write_raw(empty, e_json, strlen(e_json)) == 0 && fixture_write_raw(zero, z_json, strlen(z_json)) == 0);
    expect_pare_error((const char *const[]){"plot", "size-quality", empty, "--out", tmp_path("e.png"), NULL},
                      (const char *const[]){"no result has a metric", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "size-quality", zero, "--log-y", "--out", tmp_path("z.png"), NULL},
                      (const char *const[]){"logarithmic", "y = 0", NULL}, 1);
    expect_pare_error((const char *const[]){"plot", "size-quality", zero, "--metric", "ppl", NULL},
                      (const char *const[]){"'ppl'", NULL}, 1);
    const char *png = tmp_path("zero.png");
    st = run_pare(&out, &err,
                  (const char *const[]){"plot", "size-quality", zero, "--metric", "acc b.txt", "--out", png,
                                        "--convention", "total", NULL});
    CHECKF(st == 0 && pare_file_exists(png), "exit %d: %s", st, err);
    free(out);
    free(err);
}

/* The pare module's plots (tests/lua/module.lua, group "plots") on a LLaMA and a GPT-2 fixture: each
 * PNG is written into OUT, announced as "plot: PATH" and listed in run.json's "plots". */
static void test_lua_plots(void)
{
    const char *text = tmp_path("text.txt");
    fixture_write_pattern(text, "she sells sea shells by the sea shore and the shells she sells are sea shells ", 6000);
    for (int g = 0; g < 2; g++) {
        const char *d = fixture_hf_dir(g ? "lp-gpt2" : "lp-llama", g);
        const char *dir = tmp_path(g ? "lplots-gpt2" : "lplots-llama");
        char set_text[1300];
        snprintf(set_text, sizeof set_text, "text=%s", text);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err,
                          (const char *const[]){"run", "tests/lua/module.lua", "--model", d, "--set", set_text, "--set",
                                                "group=plots", "--out", dir, NULL});
        CHECKF(st == 0 && out && strstr(out, "ok plots"), "%s: exit %d\n%s%s", g ? "gpt2" : "llama", st, out, err);
        char path[1400];
        snprintf(path, sizeof path, "%s/run.json", dir);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        json_t *plots = json_object_get(j, "plots");
        static const char *const want[] = {"spectrum_0.q.png", "spectra_v.png", "energy.png", "mask_0.q.png",
                                           "channels.png",     "budget.png",    "sq.png"};
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            int listed = 0;
            size_t i;
            json_t *v;
            json_array_foreach(plots, i, v)
                listed |= !strcmp(json_string_value(v) ?: "", want[k]);
            snprintf(path, sizeof path, "%s/%s", dir, want[k]);
            char line[1500];
            snprintf(line, sizeof line, "plot: %s\n", path);
            CHECKF(listed && pare_file_exists(path) && err && strstr(err, line), "%s: listed %d, announced %d", want[k],
                   listed, err && strstr(err, line));
        }
        json_decref(j);
        free(out);
        free(err);
    }
}

/* Count of pixels of colour c in an RGBA image. */
static size_t count_colour(const uint8_t *px, int w, int h, pare_rgba c)
{
    size_t n = 0;
    for (int i = 0; i < w * h; i++)
        n += same_rgb(pixel_of(px, w, i % w, i / w), c);
    return n;
}

/* `pare run presets/sweep.lua` writes OUT/size_quality.png (dense and the preset's series) and
 * OUT/budget.png, announces them and lists them in run.json's "plots"; a run without results writes
 * none. */
static void test_run_writes_plots(void)
{
    const char *text = tmp_path("sweep.txt");
    fixture_write_pattern(text, "the quick brown fox jumps over the lazy dog and the dog sleeps ", 6000);
    const char *d = fixture_hf_dir("sweep", 0);
    const char *dir = tmp_path("sweep-run");
    char set_eval[1300];
    snprintf(set_eval, sizeof set_eval, "eval=%s", text);
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "presets/sweep.lua", "--model", d, "--set", "preset=svd", "--set",
                                            "ratios=0.3,0.5", "--set", set_eval, "--set", "window=32", "--out", dir,
                                            NULL});
    CHECKF(st == 0, "sweep: exit %d: %s", st, err);
    char path[1400], line[1500];
    snprintf(path, sizeof path, "%s/run.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    json_t *plots = json_object_get(j, "plots");
    CHECKF(json_array_size(plots) == 2 &&
               !strcmp(json_string_value(json_array_get(plots, 0)) ?: "", "size_quality.png") &&
               !strcmp(json_string_value(json_array_get(plots, 1)) ?: "", "budget.png"),
           "run.json plots: %zu", json_array_size(plots));
    CHECKF(json_array_size(json_object_get(j, "results")) == 3, "3 results (dense + 2 ratios)");
    json_decref(j);
    const char *names[2] = {"size_quality.png", "budget.png"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        snprintf(line, sizeof line, "plot: %s\n", path);
        CHECKF(err && strstr(err, line), "stderr lacks '%s'", line);
        uint8_t *px = NULL;
        int w = 0, h = 0;
        pare_error e = {0};
        CHECKF(pare_png_read(path, &px, &w, &h, &e) == PARE_OK && w == PARE_PLOT_DEFAULT_WIDTH &&
                   h == PARE_PLOT_DEFAULT_HEIGHT,
               "%s: %s", names[k], e.msg);
        /* size-quality: two series (dense, svd) in the first two palette colours; budget: factorized bars */
        if (px && k == 0)
            CHECK(count_colour(px, w, h, pare_palette_color(0)) > 20 &&
                  count_colour(px, w, h, pare_palette_color(1)) > 20);
        if (px && k == 1)
            CHECK(count_colour(px, w, h, pare_palette_color(0)) > 1000);
        free(px);
    }
    snprintf(path, sizeof path, "%s/log.txt", dir);
    size_t len = 0;
    unsigned char *log = fixture_read(path, &len);
    CHECK(log && strstr((char *)log, "plot: "));
    free(log);
    free(out);
    free(err);
    /* a run that evaluates nothing writes no plots */
    const char *r = tmp_path("noplot.lua");
    const char *src = "function run(p) local m <close> = pare.load(p.model) end\n";
    CHECK(fixture_write_raw(r, src, strlen(src)) == 0);
    const char *dir2 = tmp_path("noplot-run");
    st = run_pare(&out, &err, (const char *const[]){"run", r, "--model", d, "--out", dir2, "--quiet", NULL});
    snprintf(path, sizeof path, "%s/run.json", dir2);
    j = json_load_file(path, 0, &je);
    snprintf(path, sizeof path, "%s/size_quality.png", dir2);
    CHECK(st == 0 && json_array_size(json_object_get(j, "plots")) == 0 && json_is_array(json_object_get(j, "plots")) &&
          !pare_file_exists(path));
    json_decref(j);
    free(out);
    free(err);
    /* `pare plot size-quality` over the sweep's record gives the same kind of chart */
    const char *png = tmp_path("sweep-sq.png");
    st = run_pare(&out, &err,
                  (const char *const[]){"plot", "size-quality", dir, "--out", png, "--size", "800x500", NULL});
    uint8_t *px = NULL;
    int w = 0, h = 0;
    pare_error e = {0};
    CHECKF(st == 0 && pare_png_read(png, &px, &w, &h, &e) == PARE_OK && w == 800 && h == 500, "exit %d: %s", st, err);
    free(px);
    free(out);
    free(err);
}

void suite_charts(void);
void suite_charts(void)
{
    RUN(test_matrix_names);
    RUN(test_spectrum_chart);
    RUN(test_energy_ranks_chart);
    RUN(test_mask_heatmap);
    RUN(test_channel_map);
    RUN(test_budget_chart);
    RUN(test_size_quality_chart);
    RUN(test_plot_cli);
    RUN(test_lua_plots);
    RUN(test_run_writes_plots);
}

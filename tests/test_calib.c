/* Calibration: deterministic windows, statistics equal to sums the test computes itself from the
 * forward's activations, and sequential mode seeing each block as the hook left the one before. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/parallel.h"
#include "fixture.h"
#include "harness.h"

static void test_windows(void)
{
    size_t n = 1000;
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)i;
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = 16;
    o.len = 50;
    int32_t *w1, *w2, *w3;
    pare_error err = {0};
    CHECK(pare_calib_windows(ids, n, &o, &w1, &err) == PARE_OK);
    CHECK(pare_calib_windows(ids, n, &o, &w2, &err) == PARE_OK);
    o.seed = 7;
    CHECK(pare_calib_windows(ids, n, &o, &w3, &err) == PARE_OK);
    CHECK(memcmp(w1, w2, 16 * 50 * sizeof *w1) == 0);
    CHECK(memcmp(w1, w3, 16 * 50 * sizeof *w1) != 0);
    int contiguous = 1, distinct_starts = 0;
    for (int s = 0; s < 16; s++) {
        for (int t = 1; t < 50; t++)
            contiguous &= w1[s * 50 + t] == w1[s * 50] + t;
        contiguous &= w1[s * 50] >= 0 && w1[s * 50] + 49 < (int32_t)n;
        distinct_starts += s > 0 && w1[s * 50] != w1[(s - 1) * 50];
    }
    CHECK(contiguous && distinct_starts > 10);
    free(w2);
    o.len = 2000;
    CHECK(pare_calib_windows(ids, n, &o, &w2, &err) == PARE_EINVAL && w2 == NULL);
    CHECKF(strstr(err.msg, "1000 tokens") && strstr(err.msg, "2000"), "%s", err.msg);
    free(w1);
    free(w3);
    free(ids);
}

/* Sums of squares and Gram matrices equal what the test accumulates from keep-all activations. */
static void check_stats(int gpt2)
{
    pare_model *m = fixture_model(gpt2 ? "g" : "l", gpt2);
    if (!m)
        return;
    int S = 6, T = 16;
    int32_t *ids = fixture_ids(m, S, T);
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = S;
    o.len = T;
    o.batch = 4; /* uneven last batch on purpose */
    o.gram = 1;
    pare_calib_stats *st = NULL;
    pare_error err = {0};
    CHECKF(pare_calibrate(m, ids, &o, NULL, NULL, NULL, &st, &err) == PARE_OK, "%s", err.msg);
    pare_acts *a = NULL;
    CHECK(pare_acts_alloc(m, S, T, 1, &a, &err) == PARE_OK);
    CHECK(pare_forward(m, a, ids, S, T, PARE_LOGITS_NONE, &err) == PARE_OK);
    double worst = 0;
    for (int l = 0; l < m->cfg.n_layers && st; l++) {
        pare_layer_acts *la = pare_acts_layer(a, l);
        const float *src[PARE_IN_COUNT] = {la->ln1, la->atty, la->ln2, la->hmid};
        for (int k = 0; k < PARE_IN_COUNT; k++) {
            const pare_input_stats *s = &st->sites[l][k];
            CHECK(s->tokens == (size_t)S * T);
            for (int i = 0; i < s->dim; i++) {
                double ss = 0;
                for (int r = 0; r < S * T; r++)
                    ss += (double)src[k][(size_t)r * s->dim + i] * src[k][(size_t)r * s->dim + i];
                worst = fmax(worst, fabs(ss - s->sumsq[i]) / fmax(ss, 1e-6));
                for (int j = 0; j < s->dim; j += 7) {
                    double g = 0;
                    for (int r = 0; r < S * T; r++)
                        g += (double)src[k][(size_t)r * s->dim + i] * src[k][(size_t)r * s->dim + j];
                    worst = fmax(worst, fabs(g - s->gram[(size_t)i * s->dim + j]) /
                                            fmax(sqrt(s->sumsq[i] * s->sumsq[j]), 1e-6));
                }
            }
        }
    }
    CHECKF(worst < 1e-4, "statistics differ from the direct sums by %.3g (relative)", worst);
    /* input norms of a linear come from its site */
    float norms[256];
    pare_input_norms(&st->sites[1][PARE_IN_DOWN], &m->blocks[1].down, norms);
    CHECK(fabsf(norms[3] - (float)sqrt(st->sites[1][PARE_IN_DOWN].sumsq[3])) < 1e-6f);
    CHECK(pare_linear_site(&m->blocks[0], &m->blocks[0].v) == PARE_IN_ATTN &&
          pare_linear_site(&m->blocks[0], &m->blocks[0].down) == PARE_IN_DOWN &&
          pare_linear_site(&m->blocks[0], &m->blocks[1].down) == -1);
    pare_acts_free(a);
    pare_calib_free(st);
    free(ids);
    pare_model_free(m);
}

/* pare_gram_add over several tiles, the last one ragged, called twice: every entry equals the direct
 * double sum to float rounding, the Gram is exactly symmetric, and each sum of squares is bit for
 * bit each call's in-order double sum added to the total. */
static void test_gram_add_tiles(void)
{
    int N = 37, dim = 300;
    float *x = malloc((size_t)N * dim * sizeof *x);
    double *gram = calloc((size_t)dim * dim, sizeof *gram), *sumsq = calloc((size_t)dim, sizeof *sumsq);
    uint64_t state = 12345;
    for (int i = 0; i < N * dim; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5);
    }
    pare_gram_add(x, N, dim, gram, sumsq);
    pare_gram_add(x, N, dim, gram, sumsq);
    double worst = 0;
    int asymmetric = 0, sumsq_off = 0;
    for (int a = 0; a < dim; a++) {
        double ss = 0; /* each call's sum in row order, added to the running total */
        for (int r = 0; r < N; r++)
            ss += (double)x[(size_t)r * dim + a] * x[(size_t)r * dim + a];
        sumsq_off += sumsq[a] != ss + ss;
        for (int b = 0; b < dim; b++) {
            double g = 0;
            for (int r = 0; r < N; r++)
                g += (double)x[(size_t)r * dim + a] * x[(size_t)r * dim + b];
            worst = fmax(worst, fabs(2 * g - gram[(size_t)a * dim + b]) / N);
            asymmetric += gram[(size_t)a * dim + b] != gram[(size_t)b * dim + a];
        }
    }
    CHECKF(worst < 1e-5, "Gram entries differ from the direct sums by %.3g", worst);
    CHECKF(!asymmetric, "%d Gram entries differ from their mirror", asymmetric);
    CHECKF(!sumsq_off, "%d sums of squares differ from the in-order double sums", sumsq_off);
    free(x), free(gram), free(sumsq);
}

static void test_stats_llama(void) { check_stats(0); }
static void test_stats_gpt2(void) { check_stats(1); }

static pare_status zero_block0_down(void *user, pare_model *m, int layer, const pare_calib_stats *stats, pare_error *err)
{
    int *calls = user;
    (*calls)++;
    if (layer == 0) {
        pare_linear *d = &m->blocks[0].down;
        memset(d->w, 0, (size_t)d->out * d->in * sizeof(float));
    }
    return PARE_OK;
}

/* The hook sees its block's Gram matrices, equal to the one-shot pass's (the hook changes nothing);
 * they are freed once it returns, so a sequential pass holds one block's and the result none. */
typedef struct {
    const pare_calib_stats *oneshot;
    int calls, grams_seen, grams_equal, earlier_kept;
} gram_watch;

static pare_status watch_grams(void *user, pare_model *m, int layer, const pare_calib_stats *stats, pare_error *err)
{
    gram_watch *w = user;
    w->calls++;
    for (int k = 0; k < PARE_IN_COUNT; k++) {
        const pare_input_stats *s = &stats->sites[layer][k], *o = &w->oneshot->sites[layer][k];
        if (!s->gram)
            continue;
        w->grams_seen++;
        w->grams_equal += o->gram && memcmp(s->gram, o->gram, (size_t)s->dim * s->dim * sizeof(double)) == 0;
        for (int l = 0; l < layer; l++)
            w->earlier_kept += stats->sites[l][k].gram != NULL;
    }
    return PARE_OK;
}

static void test_sequential_frees_grams(void)
{
    pare_model *m = fixture_model("g1", 0);
    if (!m)
        return;
    int S = 3, T = 10;
    int32_t *ids = fixture_ids(m, S, T);
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = S;
    o.len = T;
    o.gram = 1;
    pare_calib_stats *one = NULL, *seq = NULL;
    pare_error err = {0};
    CHECK(pare_calibrate(m, ids, &o, NULL, NULL, NULL, &one, &err) == PARE_OK);
    gram_watch w = {one, 0, 0, 0, 0};
    CHECK(pare_calibrate(m, ids, &o, watch_grams, &w, NULL, &seq, &err) == PARE_OK);
    int L = m->cfg.n_layers;
    CHECKF(w.calls == L && w.grams_seen == L * PARE_IN_COUNT && w.grams_equal == w.grams_seen && w.earlier_kept == 0,
           "calls %d, Grams seen %d, equal %d, earlier blocks' kept %d", w.calls, w.grams_seen, w.grams_equal,
           w.earlier_kept);
    if (one && seq) {
        size_t sumsq = 0, grams = 0;
        for (int l = 0; l < L; l++)
            for (int k = 0; k < PARE_IN_COUNT; k++) {
                CHECK(seq->sites[l][k].gram == NULL && seq->sites[l][k].sumsq != NULL);
                CHECK(memcmp(seq->sites[l][k].sumsq, one->sites[l][k].sumsq,
                             (size_t)one->sites[l][k].dim * sizeof(double)) == 0);
                sumsq += (size_t)one->sites[l][k].dim * sizeof(double);
                grams += (size_t)one->sites[l][k].dim * one->sites[l][k].dim * sizeof(double);
            }
        CHECKF(seq->bytes == sumsq && one->bytes == sumsq + grams, "bytes: sequential %zu (sums %zu), one-shot %zu",
               seq->bytes, sumsq, one->bytes);
        /* the estimate: one block's Gram matrices sequential, all of them one-shot */
        CHECK(pare_calib_bytes(m, &o, 0) - pare_calib_bytes(m, &o, 1) == grams - grams / L);
    }
    pare_calib_free(one);
    pare_calib_free(seq);
    free(ids);
    pare_model_free(m);
}

/* Sequential mode: block 1 is calibrated on the output of block 0 as the hook left it. */
static void test_sequential_semantics(void)
{
    pare_model *m1 = fixture_model("s1", 0), *m2 = fixture_model("s2", 0);
    if (!m1 || !m2)
        return;
    int S = 4, T = 12, calls = 0;
    int32_t *ids = fixture_ids(m1, S, T);
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = S;
    o.len = T;
    pare_calib_stats *seq = NULL, *pre = NULL, *dense = NULL;
    pare_error err = {0};
    CHECK(pare_calibrate(m1, ids, &o, NULL, NULL, NULL, &dense, &err) == PARE_OK);
    CHECK(pare_calibrate(m1, ids, &o, zero_block0_down, &calls, NULL, &seq, &err) == PARE_OK);
    CHECK(calls == m1->cfg.n_layers);
    zero_block0_down(&calls, m2, 0, NULL, &err); /* the same change, made before a one-shot run */
    CHECK(pare_calibrate(m2, ids, &o, NULL, NULL, NULL, &pre, &err) == PARE_OK);
    if (seq && pre && dense) {
        int dim = seq->sites[1][PARE_IN_ATTN].dim;
        double same = 0, changed = 0;
        for (int j = 0; j < dim; j++) {
            same = fmax(same, fabs(seq->sites[1][PARE_IN_ATTN].sumsq[j] - pre->sites[1][PARE_IN_ATTN].sumsq[j]));
            changed = fmax(changed, fabs(seq->sites[1][PARE_IN_ATTN].sumsq[j] - dense->sites[1][PARE_IN_ATTN].sumsq[j]));
        }
        CHECKF(same < 1e-6, "sequential differs from pre-modified one-shot by %.3g", same);
        CHECKF(changed > 1e-3, "the hook's change did not reach block 1 (%.3g)", changed);
        /* block 0's own statistics are taken before the hook runs */
        CHECK(fabs(seq->sites[0][PARE_IN_DOWN].sumsq[0] - dense->sites[0][PARE_IN_DOWN].sumsq[0]) < 1e-9);
    }
    /* one_shot with a hook: the hook's change does not reach block 1, whose statistics are the dense
     * model's to the bit (the hook on m3 zeroes block 0's down projection too) */
    pare_model *m3 = fixture_model("s3", 0);
    pare_calib_stats *one = NULL;
    pare_calib_opts o1 = o;
    o1.one_shot = 1;
    calls = 0;
    CHECK(m3 && pare_calibrate(m3, ids, &o1, zero_block0_down, &calls, NULL, &one, &err) == PARE_OK);
    CHECK(calls == (m3 ? m3->cfg.n_layers : -1));
    if (one && dense) {
        int same = 1;
        for (int l = 0; l < dense->n_layers; l++)
            for (int k = 0; k < PARE_IN_COUNT; k++)
                same &= memcmp(one->sites[l][k].sumsq, dense->sites[l][k].sumsq,
                               (size_t)dense->sites[l][k].dim * sizeof(double)) == 0;
        CHECKF(same, "one-shot statistics through a hook differ from the dense model's");
    }
    pare_calib_free(one);
    pare_model_free(m3);
    pare_calib_free(seq);
    pare_calib_free(pre);
    pare_calib_free(dense);
    free(ids);
    pare_model_free(m1);
    pare_model_free(m2);
}

static int cancel_at_half(void *user, const char *stage, double fraction, const char *detail)
{
    return fraction >= 0.5;
}

static void test_nan_and_cancel(void)
{
    pare_model *m = fixture_model("nan", 0);
    if (!m)
        return;
    int32_t *ids = fixture_ids(m, 2, 8);
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = 2;
    o.len = 8;
    pare_calib_stats *st = NULL;
    pare_error err = {0};
    pare_progress p = {cancel_at_half, NULL};
    CHECK(pare_calibrate(m, ids, &o, NULL, NULL, &p, &st, &err) == PARE_ECANCELED && st == NULL);
    m->blocks[1].up.w[5] = NAN;
    CHECK(pare_calibrate(m, ids, &o, NULL, NULL, NULL, &st, &err) == PARE_EINVAL && st == NULL);
    CHECKF(strstr(err.msg, "layer 1") && strstr(err.msg, "non-finite"), "%s", err.msg);
    o.len = m->cfg.max_pos + 1;
    CHECK(pare_calibrate(m, ids, &o, NULL, NULL, NULL, &st, &err) == PARE_EINVAL && strstr(err.msg, "--calib-len"));
    free(ids);
    pare_model_free(m);
}

void suite_calib(void);
void suite_calib(void)
{
    RUN(test_windows);
    RUN(test_stats_llama);
    RUN(test_stats_gpt2);
    RUN(test_gram_add_tiles);
    RUN(test_sequential_semantics);
    RUN(test_sequential_frees_grams);
    RUN(test_nan_and_cancel);
}

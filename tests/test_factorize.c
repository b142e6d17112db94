/* Factorization: each method's error in its own metric equals the truncation error of the matching
 * spectrum (Eckart-Young), plain SVD stays optimal in the plain metric, and full rank reproduces W. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "core/factorize.h"
#include "core/model.h"
#include "core/spectrum.h"
#include "fixture.h"
#include "harness.h"

typedef struct {
    pare_model *m;
    pare_calib_stats *stats;
} calibrated;

static calibrated calibrated_fixture(const char *name)
{
    calibrated c = {0};
    c.m = fixture_model(name, 0);
    if (c.m)
        c.stats = fixture_calibrate(c.m, 8, 16, 1);
    return c;
}

/* A private copy of a layer's weights, owned through `heap` so factorizing and releasing it free
 * everything (the fixture's layers have no masks or slicing to copy). */
static pare_linear copy_of(const pare_linear *src)
{
    pare_linear l = *src;
    l.heap = l.w = malloc((size_t)l.out * l.in * sizeof(float));
    memcpy(l.w, src->w, (size_t)l.out * l.in * sizeof(float));
    l.mask = NULL;
    l.kept_out = l.kept_in = NULL;
    return l;
}

static void release(calibrated *c)
{
    pare_calib_free(c->stats);
    pare_model_free(c->m);
}

/* The truncation error at rank k of the spectrum of W (weighting as given). */
static double predicted_error(const pare_linear *l, const pare_input_stats *st, pare_weighting wt, int k)
{
    int r = l->out < l->in ? l->out : l->in;
    double *s = malloc((size_t)r * sizeof *s), *norms = malloc((size_t)l->in * sizeof *norms);
    for (int j = 0; j < l->in; j++)
        norms[j] = sqrt(st->sumsq[j]);
    pare_spectrum_opts so = pare_spectrum_defaults();
    so.method = PARE_SVALS_GESDD;
    so.weighting = wt;
    so.act_norm = norms;
    so.act_len = l->in;
    so.gram = st->gram;
    so.gram_dim = st->dim;
    pare_error err = {0};
    double e = -1;
    if (pare_spectrum_values(l->name, l->w, l->out, l->in, &so, s, NULL, &err) == PARE_OK)
        e = pare_spectrum_trunc_error(s, r, k);
    else
        CHECKF(0, "%s", err.msg);
    free(s);
    free(norms);
    return e;
}

static void test_error_matches_spectrum(void)
{
    calibrated c = calibrated_fixture("f");
    if (!c.m || !c.stats)
        return;
    const pare_weighting kinds[] = {PARE_WEIGHT_NONE, PARE_WEIGHT_ACT, PARE_WEIGHT_WHITEN};
    const char *names[] = {"svd", "asvd", "whiten"};
    for (int w = 0; w < 3; w++) {
        /* a fresh copy of block 1's o_proj and down_proj for each method */
        pare_linear *targets[2] = {&c.m->blocks[1].o, &c.m->blocks[1].down};
        for (int t = 0; t < 2; t++) {
            pare_linear l = copy_of(targets[t]);
            const pare_input_stats *st = &c.stats->sites[1][pare_linear_site(&c.m->blocks[1], targets[t])];
            int k = (l.out < l.in ? l.out : l.in) / 3;
            double want = predicted_error(&l, st, kinds[w], k);
            pare_factor_opts o;
            pare_factor_defaults(&o);
            o.weighting = kinds[w];
            pare_factor_report rep;
            pare_error err = {0};
            CHECKF(pare_factorize_linear(&l, k, &o, st, &rep, &err) == PARE_OK, "%s", err.msg);
            /* Eckart-Young in the method's own metric (whitening adds damping to the Gram, so its
             * metric is that of the damped Gram, which the spectrum used too) */
            CHECKF(fabs(rep.rel_weighted_error - want) < 2e-4 * fmax(want, 1e-3), "%s %s: error %.6f vs spectrum %.6f",
                   names[w], l.name, rep.rel_weighted_error, want);
            CHECK(l.kind == PARE_LIN_FACTORED && l.rank == k && rep.params_after == (size_t)k * (l.out + l.in));
            if (w > 0) {
                /* conversely plain SVD is optimal in the plain metric: its error there is never larger */
                pare_linear p = copy_of(targets[t]);
                pare_factor_opts po;
                pare_factor_defaults(&po);
                pare_factor_report prep;
                CHECK(pare_factorize_linear(&p, k, &po, st, &prep, &err) == PARE_OK);
                CHECKF(prep.rel_error <= rep.rel_error + 1e-9, "%s: plain SVD %.6f vs %.6f in the plain metric",
                       names[w], prep.rel_error, rep.rel_error);
                pare_linear_release(&p);
            }
            pare_linear_release(&l);
        }
    }
    release(&c);
}

/* Full rank reproduces W for every method. */
static void test_full_rank(void)
{
    calibrated c = calibrated_fixture("full");
    if (!c.m || !c.stats)
        return;
    const pare_weighting kinds[] = {PARE_WEIGHT_NONE, PARE_WEIGHT_ACT, PARE_WEIGHT_WHITEN};
    for (int w = 0; w < 3; w++) {
        pare_linear l = copy_of(&c.m->blocks[0].q);
        pare_factor_opts o;
        pare_factor_defaults(&o);
        o.weighting = kinds[w];
        pare_factor_report rep;
        pare_error err = {0};
        CHECK(pare_factorize_linear(&l, l.out < l.in ? l.out : l.in, &o, &c.stats->sites[0][PARE_IN_ATTN], &rep,
                                    &err) == PARE_OK);
        CHECKF(rep.rel_error < 1e-4, "method %d: full rank error %.3g", w, rep.rel_error);
        pare_linear_release(&l);
    }
    release(&c);
}

static void test_errors(void)
{
    calibrated c = calibrated_fixture("err");
    if (!c.m || !c.stats)
        return;
    pare_linear *l = &c.m->blocks[0].q;
    pare_factor_opts o;
    pare_factor_defaults(&o);
    pare_factor_report rep;
    pare_error err = {0};
    CHECK(pare_factorize_linear(l, 33, &o, NULL, &rep, &err) == PARE_EINVAL);
    CHECKF(strcmp(err.msg, "rank 33 exceeds min(32, 32) for model.layers.0.self_attn.q_proj") == 0, "%s", err.msg);
    o.weighting = PARE_WEIGHT_ACT;
    CHECK(pare_factorize_linear(l, 4, &o, NULL, &rep, &err) == PARE_EINVAL && strstr(err.msg, "calibration"));
    CHECK(pare_factorize_linear(l, 4, &o, &c.stats->sites[0][PARE_IN_DOWN], &rep, &err) == PARE_EINVAL);
    CHECK(l->kind == PARE_LIN_DENSE); /* failures leave the layer as it was */
    release(&c);
}

void suite_factorize(void);
void suite_factorize(void)
{
    RUN(test_error_matches_spectrum);
    RUN(test_full_rank);
    RUN(test_errors);
}

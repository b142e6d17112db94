/* Pruning: masks remove exactly the requested count of the lowest-scored weights within their
 * scope (ties: lower index kept), N:M groups, composition with existing masks, and FFN channel
 * removal that selects LoRAP's sorted positions and computes what zeroed channels compute. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/prune.h"
#include "fixture.h"
#include "harness.h"

/* ---------------------------------------------------------------- helpers */

static unsigned rng_next(unsigned *st)
{
    *st = *st * 1103515245u + 12345u;
    return (*st >> 8) & 0xffffff;
}

/* A dense layer owning its weights. levels > 0 quantizes |w| to 1..levels (many ties, no zeros). */
static pare_linear make_linear(const char *name, int out, int in, unsigned seed, int levels, float scale)
{
    pare_linear l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "%s", name);
    l.kind = PARE_LIN_DENSE;
    l.out = l.orig_out = out;
    l.in = l.orig_in = in;
    l.w = l.heap = malloc((size_t)out * in * sizeof(float));
    for (size_t i = 0; i < (size_t)out * in; i++) {
        unsigned r = rng_next(&seed);
        float mag = levels > 0 ? (float)(1 + r % (unsigned)levels) : (float)((r % 100000) + 1) / 100000.0f;
        l.w[i] = (r & 0x800000 ? -mag : mag) * scale;
    }
    return l;
}

static pare_input_stats make_stats(int dim, unsigned seed)
{
    pare_input_stats s = {0};
    s.dim = dim;
    s.tokens = 100;
    s.sumsq = malloc((size_t)dim * sizeof(double));
    for (int j = 0; j < dim; j++) {
        double nrm = 0.05 + (double)(rng_next(&seed) % 1000) / 100.0; /* norms from 0.05 to 10 */
        s.sumsq[j] = nrm * nrm;
    }
    return s;
}

static size_t expected_count(double frac, size_t n) { return (size_t)floor(frac * (double)n + 1e-9); }

static int kept_at(const pare_linear *l, size_t i) { return !l->mask || l->mask[i]; }

/* Over entries idx[0..n) (indices into score/keep, in scope order): every removed score <= every
 * kept score, and of equal scores the removed ones come after the kept ones in scope order. */
static int ranking_ok(const double *score, const uint8_t *keep, size_t n)
{
    double max_rm = -1, min_kept = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (keep[i])
            min_kept = fmin(min_kept, score[i]);
        else
            max_rm = fmax(max_rm, score[i]);
    }
    if (max_rm > min_kept)
        return 0;
    if (max_rm < min_kept)
        return 1;
    /* the threshold value is split: kept ones must have lower positions than removed ones */
    size_t last_kept = 0, first_rm = n;
    int any_kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (score[i] != max_rm)
            continue;
        if (keep[i]) {
            last_kept = i;
            any_kept = 1;
        } else if (first_rm == n) {
            first_rm = i;
        }
    }
    return !any_kept || last_kept < first_rm;
}

/* Scores of the original weights (a copy taken before pruning). */
static void copy_scores(const float *w, size_t n, int in, const double *norms, double *score)
{
    for (size_t i = 0; i < n; i++)
        score[i] = fabs((double)w[i]) * (norms ? norms[i % (size_t)in] : 1.0);
}

static size_t count_masked(const pare_linear *l)
{
    size_t c = 0;
    for (size_t i = 0; i < (size_t)l->out * l->in; i++)
        c += !kept_at(l, i);
    return c;
}

static float *copy_w(const pare_linear *l)
{
    float *c = malloc((size_t)l->out * l->in * sizeof *c);
    memcpy(c, l->w, (size_t)l->out * l->in * sizeof *c);
    return c;
}

/* ---------------------------------------------------------------- unstructured */

static void test_count(void)
{
    CHECK(pare_prune_count(0.29, 100) == 29); /* 0.29*100 is 28.999999999999996 */
    CHECK(pare_prune_count(0.5, 7) == 3 && pare_prune_count(0, 7) == 0 && pare_prune_count(0.999, 7) == 6);
    CHECK(pare_prune_count(1.0, 7) == 7 && pare_prune_count(2.0, 7) == 7);
}

/* Per-matrix magnitude: exactly ⌊s·n⌋ removed, all lowest |W|, ties keep the lower index. */
static void test_magnitude_matrix(void)
{
    pare_error err = {0};
    double sps[] = {0.0, 0.3, 0.5, 0.77};
    for (int t = 0; t < 4; t++) {
        pare_linear l = make_linear("blk.q", 24, 40, 11u + t, t % 2 ? 9 : 0, 1.0f); /* ties when quantized */
        size_t n = 24 * 40;
        float *orig = copy_w(&l);
        pare_mask_opts o;
        pare_mask_defaults(&o);
        o.sparsity = sps[t];
        pare_prune_report rep;
        CHECKF(pare_prune_mask((pare_linear *[]){&l}, NULL, 1, &o, &rep, &err) == PARE_OK, "%s", err.msg);
        size_t want = expected_count(sps[t], n);
        CHECKF(count_masked(&l) == want, "s=%g: %zu masked, want %zu", sps[t], count_masked(&l), want);
        CHECK(rep.removed == want && rep.masked == want && rep.weights == n);
        CHECK(fabs(rep.sparsity - (double)want / n) < 1e-12);
        CHECK(rep.params_before == n && rep.params_after == n - want);
        CHECK(want == 0 ? l.kind == PARE_LIN_DENSE : l.kind == PARE_LIN_MASKED);
        double *score = malloc(n * sizeof *score);
        uint8_t *keep = malloc(n);
        copy_scores(orig, n, 40, NULL, score);
        for (size_t i = 0; i < n; i++)
            keep[i] = (uint8_t)kept_at(&l, i);
        CHECKF(ranking_ok(score, keep, n), "s=%g: a removed weight outranks a kept one", sps[t]);
        int zeroed = 1, intact = 1;
        for (size_t i = 0; i < n; i++) {
            zeroed &= keep[i] || l.w[i] == 0.0f;
            intact &= !keep[i] || l.w[i] == orig[i];
        }
        CHECK(zeroed && intact);
        free(score);
        free(keep);
        free(orig);
        pare_linear_release(&l);
    }
}

static void test_magnitude_row(void)
{
    pare_error err = {0};
    pare_linear l = make_linear("blk.up", 17, 30, 5u, 6, 1.0f);
    float *orig = copy_w(&l);
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.scope = PARE_SCOPE_ROW;
    o.sparsity = 0.45;
    pare_prune_report rep;
    CHECKF(pare_prune_mask((pare_linear *[]){&l}, NULL, 1, &o, &rep, &err) == PARE_OK, "%s", err.msg);
    size_t per = expected_count(0.45, 30);
    double score[30];
    uint8_t keep[30];
    int rows_ok = 1, rank_ok = 1;
    for (int r = 0; r < 17; r++) {
        size_t rm = 0;
        copy_scores(orig + r * 30, 30, 30, NULL, score);
        for (int j = 0; j < 30; j++) {
            keep[j] = (uint8_t)kept_at(&l, (size_t)r * 30 + j);
            rm += !keep[j];
        }
        rows_ok &= rm == per;
        rank_ok &= ranking_ok(score, keep, 30);
    }
    CHECKF(rows_ok, "every row should lose exactly %zu weights", per);
    CHECK(rank_ok);
    CHECK(rep.removed == per * 17);
    free(orig);
    pare_linear_release(&l);
}

/* One threshold over several matrices: the low-scale matrix loses more. */
static void test_magnitude_global(void)
{
    pare_error err = {0};
    pare_linear a = make_linear("m.a", 20, 16, 1u, 0, 1.0f), b = make_linear("m.b", 8, 24, 2u, 0, 0.3f),
                c = make_linear("m.c", 12, 12, 3u, 0, 2.0f);
    pare_linear *ls[] = {&a, &b, &c};
    size_t sizes[] = {320, 192, 144}, total = 656;
    double *score = malloc(total * sizeof *score);
    uint8_t *keep = malloc(total);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        copy_scores(ls[i]->w, sizes[i], ls[i]->in, NULL, score + off);
        off += sizes[i];
    }
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.scope = PARE_SCOPE_GLOBAL;
    o.sparsity = 0.4;
    pare_prune_report rep;
    CHECKF(pare_prune_mask(ls, NULL, 3, &o, &rep, &err) == PARE_OK, "%s", err.msg);
    off = 0;
    size_t masked = 0;
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            keep[off + j] = (uint8_t)kept_at(ls[i], j);
        masked += count_masked(ls[i]);
        off += sizes[i];
    }
    CHECK(masked == expected_count(0.4, total) && rep.removed == masked && rep.weights == total);
    CHECK(ranking_ok(score, keep, total));
    double sb = (double)count_masked(&b) / 192, sc = (double)count_masked(&c) / 144;
    CHECKF(sb > 0.8 && sc < 0.3, "global threshold: small matrix %.2f, large matrix %.2f", sb, sc);
    free(score);
    free(keep);
    pare_linear_release(&a);
    pare_linear_release(&b);
    pare_linear_release(&c);
}

/* Pruning a masked layer again only shrinks the mask; the scope ends at max(target, already masked). */
static void test_compose(void)
{
    pare_error err = {0};
    pare_linear l = make_linear("blk.o", 16, 32, 9u, 0, 1.0f);
    size_t n = 512;
    float *orig = copy_w(&l);
    /* a prior mask that removes some of the largest weights (as another method might) */
    uint8_t *prior = malloc(n), *first = malloc(n), *keep = malloc(n);
    for (size_t i = 0; i < n; i++)
        prior[i] = !(i % 7 == 0 && fabsf(orig[i]) > 0.5f);
    CHECK(pare_linear_set_mask(&l, prior, &err) == PARE_OK);
    size_t pre = count_masked(&l);
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.sparsity = 0.3;
    pare_prune_report rep;
    CHECK(pare_prune_mask((pare_linear *[]){&l}, NULL, 1, &o, &rep, &err) == PARE_OK);
    CHECK(count_masked(&l) == expected_count(0.3, n) && rep.removed == expected_count(0.3, n) - pre);
    int subset = 1;
    for (size_t i = 0; i < n; i++) {
        first[i] = l.mask[i];
        subset &= !(l.mask[i] && !prior[i]);
    }
    CHECK(subset);
    /* among the weights the prior mask left, the new removals are the lowest */
    double *score = malloc(n * sizeof *score);
    copy_scores(orig, n, 32, NULL, score);
    double max_new = 0, min_kept = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (prior[i] && !l.mask[i])
            max_new = fmax(max_new, score[i]);
        if (l.mask[i])
            min_kept = fmin(min_kept, score[i]);
    }
    CHECK(max_new <= min_kept);
    o.sparsity = 0.5;
    CHECK(pare_prune_mask((pare_linear *[]){&l}, NULL, 1, &o, &rep, &err) == PARE_OK);
    subset = 1;
    for (size_t i = 0; i < n; i++)
        subset &= !(l.mask[i] && !first[i]);
    CHECK(subset && count_masked(&l) == expected_count(0.5, n) && rep.masked == expected_count(0.5, n));
    memcpy(keep, l.mask, n);
    o.sparsity = 0.2; /* below what is already masked: nothing changes */
    CHECK(pare_prune_mask((pare_linear *[]){&l}, NULL, 1, &o, &rep, &err) == PARE_OK);
    CHECK(rep.removed == 0 && memcmp(keep, l.mask, n) == 0 && fabs(rep.sparsity - 0.5) < 1e-12);
    free(score);
    free(prior);
    free(first);
    free(keep);
    free(orig);
    pare_linear_release(&l);
}

/* Wanda: row-wise on |W|·||X||, with norms that make it differ from magnitude; sliced inputs use
 * the loaded-order statistics through kept_in. */
static void test_wanda(void)
{
    pare_error err = {0};
    int out = 10, in = 24;
    pare_linear l = make_linear("blk.v", out, in, 21u, 0, 1.0f), m = make_linear("blk.v", out, in, 21u, 0, 1.0f);
    pare_input_stats st = make_stats(in, 77u);
    const pare_input_stats *sp[] = {&st};
    double norms[64];
    for (int j = 0; j < in; j++)
        norms[j] = sqrt(st.sumsq[j]);
    float *orig = copy_w(&l);
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.score = PARE_SCORE_WANDA;
    o.scope = PARE_SCOPE_ROW;
    o.sparsity = 0.5;
    CHECKF(pare_prune_mask((pare_linear *[]){&l}, sp, 1, &o, NULL, &err) == PARE_OK, "%s", err.msg);
    double score[64];
    uint8_t keep[64];
    int ok = 1;
    for (int r = 0; r < out; r++) {
        size_t rm = 0;
        copy_scores(orig + r * in, in, in, norms, score);
        for (int j = 0; j < in; j++) {
            keep[j] = (uint8_t)kept_at(&l, (size_t)r * in + j);
            rm += !keep[j];
        }
        ok &= rm == (size_t)in / 2 && ranking_ok(score, keep, in);
    }
    CHECK(ok);
    o.score = PARE_SCORE_MAGNITUDE;
    CHECK(pare_prune_mask((pare_linear *[]){&m}, NULL, 1, &o, NULL, &err) == PARE_OK);
    CHECKF(memcmp(l.mask, m.mask, (size_t)out * in) != 0, "Wanda chose the same weights as magnitude");
    pare_linear_release(&l);
    pare_linear_release(&m);

    /* a layer whose inputs were sliced: statistics of the 24 loaded channels map through kept_in */
    pare_linear s = make_linear("blk.down", out, in, 31u, 0, 1.0f);
    int32_t cols[12];
    for (int j = 0; j < 12; j++)
        cols[j] = 2 * j + (j % 3 == 0);
    CHECK(pare_linear_keep_cols(&s, cols, 12, &err) == PARE_OK);
    float *sw = copy_w(&s);
    double mapped[12];
    for (int j = 0; j < 12; j++)
        mapped[j] = norms[cols[j]];
    o.score = PARE_SCORE_WANDA;
    o.sparsity = 0.25;
    CHECKF(pare_prune_mask((pare_linear *[]){&s}, sp, 1, &o, NULL, &err) == PARE_OK, "%s", err.msg);
    ok = 1;
    for (int r = 0; r < out; r++) {
        size_t rm = 0;
        copy_scores(sw + r * 12, 12, 12, mapped, score);
        for (int j = 0; j < 12; j++) {
            keep[j] = (uint8_t)kept_at(&s, (size_t)r * 12 + j);
            rm += !keep[j];
        }
        ok &= rm == 3 && ranking_ok(score, keep, 12);
    }
    CHECK(ok);
    free(sw);
    free(orig);
    free(st.sumsq);
    pare_linear_release(&s);
}

/* N:M: every group of M consecutive inputs keeps exactly N, the top N of the group. */
static void check_nm(int N, int M, int wanda, int levels)
{
    pare_error err = {0};
    int out = 6, in = 32;
    pare_linear l = make_linear("blk.gate", out, in, 40u + (unsigned)M, levels, 1.0f);
    pare_input_stats st = make_stats(in, 8u);
    const pare_input_stats *sp[] = {&st};
    double norms[32];
    for (int j = 0; j < in; j++)
        norms[j] = sqrt(st.sumsq[j]);
    float *orig = copy_w(&l);
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.score = wanda ? PARE_SCORE_WANDA : PARE_SCORE_MAGNITUDE;
    o.nm_n = N;
    o.nm_m = M;
    pare_prune_report rep;
    CHECKF(pare_prune_mask((pare_linear *[]){&l}, sp, 1, &o, &rep, &err) == PARE_OK, "%s", err.msg);
    double score[32];
    uint8_t keep[32];
    int counts_ok = 1, top_ok = 1;
    for (int g = 0; g < out * in; g += M) {
        int kept = 0;
        copy_scores(orig + g, (size_t)M, in, NULL, score);
        for (int j = 0; j < M; j++) {
            if (wanda)
                score[j] *= norms[(g + j) % in];
            keep[j] = (uint8_t)kept_at(&l, (size_t)g + j);
            kept += keep[j];
        }
        counts_ok &= kept == N;
        top_ok &= ranking_ok(score, keep, (size_t)M);
    }
    CHECKF(counts_ok && top_ok, "%d:%d %s: group counts %d, top-N %d", N, M, wanda ? "wanda" : "magnitude", counts_ok,
           top_ok);
    CHECK(fabs(rep.sparsity - (1.0 - (double)N / M)) < 1e-12);
    /* pruned again at 1:M on top: still only shrinks, and each group keeps exactly 1 */
    uint8_t *before = malloc((size_t)out * in);
    memcpy(before, l.mask, (size_t)out * in);
    o.nm_n = 1;
    CHECK(pare_prune_mask((pare_linear *[]){&l}, sp, 1, &o, NULL, &err) == PARE_OK);
    int shrink = 1;
    for (int i = 0; i < out * in; i++)
        shrink &= !(l.mask[i] && !before[i]);
    CHECK(shrink && count_masked(&l) == (size_t)out * in - (size_t)out * in / M);
    /* N:M again over groups already sparser than N:M leaves the mask as it is */
    memcpy(before, l.mask, (size_t)out * in);
    o.nm_n = N;
    CHECK(pare_prune_mask((pare_linear *[]){&l}, sp, 1, &o, &rep, &err) == PARE_OK);
    CHECK(rep.removed == 0 && memcmp(before, l.mask, (size_t)out * in) == 0);
    free(before);
    free(orig);
    free(st.sumsq);
    pare_linear_release(&l);
}

static void test_nm(void)
{
    check_nm(2, 4, 0, 0);
    check_nm(2, 4, 0, 3); /* ties */
    check_nm(4, 8, 0, 0);
    check_nm(2, 4, 1, 0);
    check_nm(4, 8, 1, 0);
}

/* ---------------------------------------------------------------- model-level masks and channels */

/* Wanda row-wise over the whole model with its calibration statistics, and global magnitude. */
static void test_model_mask(void)
{
    pare_model *m = fixture_model("mask_l", 0);
    if (!m)
        return;
    pare_calib_stats *st = fixture_calibrate(m, 4, 16, 0);
    pare_error err = {0};
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.score = PARE_SCORE_WANDA;
    o.scope = PARE_SCOPE_ROW;
    CHECK(pare_prune_model_mask(m, NULL, &o, NULL, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "model.layers.0.self_attn.q_proj") && strstr(err.msg, "statistics"), "%s", err.msg);
    CHECK(m->blocks[0].q.kind == PARE_LIN_DENSE);
    pare_linear *ls[32];
    int n = pare_model_linears(m, ls, 32);
    float *copies[32];
    for (int i = 0; i < n; i++)
        copies[i] = copy_w(ls[i]);
    pare_prune_report rep;
    CHECKF(pare_prune_model_mask(m, st, &o, &rep, NULL, &err) == PARE_OK, "%s", err.msg);
    int ok = 1;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        pare_linear *l = ls[i];
        int layer = -1, site = -1;
        for (int b = 0; b < m->cfg.n_layers && site < 0; b++)
            if ((site = pare_linear_site(&m->blocks[b], l)) >= 0)
                layer = b;
        double *norms = malloc((size_t)l->in * sizeof *norms), *score = malloc((size_t)l->in * sizeof *score);
        uint8_t *keep = malloc((size_t)l->in);
        for (int j = 0; j < l->in; j++)
            norms[j] = sqrt(st->sites[layer][site].sumsq[j]);
        for (int r = 0; r < l->out; r++) {
            size_t rm = 0;
            copy_scores(copies[i] + (size_t)r * l->in, (size_t)l->in, l->in, norms, score);
            for (int j = 0; j < l->in; j++) {
                keep[j] = (uint8_t)kept_at(l, (size_t)r * l->in + j);
                rm += !keep[j];
            }
            ok &= rm == (size_t)l->in / 2 && ranking_ok(score, keep, (size_t)l->in);
        }
        total += (size_t)l->out * l->in;
        free(norms);
        free(score);
        free(keep);
    }
    CHECK(ok && rep.weights == total && fabs(rep.sparsity - 0.5) < 1e-12);
    float *lg = fixture_logits_of(m);
    int finite = lg != NULL;
    for (size_t i = 0; lg && i < (size_t)FIXTURE_T * m->cfg.vocab_size; i++)
        finite &= isfinite(lg[i]);
    CHECK(finite);
    free(lg);
    /* global magnitude on top: exactly ⌊0.6·total⌋ masked over all block linears */
    o.score = PARE_SCORE_MAGNITUDE;
    o.scope = PARE_SCOPE_GLOBAL;
    o.sparsity = 0.6;
    CHECKF(pare_prune_model_mask(m, NULL, &o, &rep, NULL, &err) == PARE_OK, "%s", err.msg);
    size_t masked = 0;
    for (int i = 0; i < n; i++)
        masked += count_masked(ls[i]);
    CHECK(masked == expected_count(0.6, total) && rep.masked == masked);
    for (int i = 0; i < n; i++)
        free(copies[i]);
    pare_calib_free(st);
    pare_model_free(m);
}

/* The LoRAP channel score the test computes itself from the block's effective weights. */
static void lorap_scores(const pare_block *b, const pare_input_stats *sites, int use_norms, double *out)
{
    const pare_linear *up = &b->up, *gate = &b->gate, *down = &b->down;
    int F = up->out;
    float *wu = malloc((size_t)up->out * up->in * sizeof(float)),
          *wd = malloc((size_t)down->out * down->in * sizeof(float));
    float *wg = gate->out ? malloc((size_t)gate->out * gate->in * sizeof(float)) : NULL;
    pare_linear_dense(up, wu);
    pare_linear_dense(down, wd);
    if (wg)
        pare_linear_dense(gate, wg);
    const pare_input_stats *x = &sites[PARE_IN_MLP], *z = &sites[PARE_IN_DOWN];
    for (int i = 0; i < F; i++) {
        double su = 0, sg = 0, sd = 0;
        for (int j = 0; j < up->in; j++) {
            double xn = use_norms ? sqrt(x->sumsq[up->kept_in ? up->kept_in[j] : j]) : 1.0;
            double v = fabs((double)wu[(size_t)i * up->in + j]) * xn;
            su += v * v;
            if (wg) {
                double g = fabs((double)wg[(size_t)i * gate->in + j]) * xn;
                sg += g * g;
            }
        }
        for (int r = 0; r < down->out; r++)
            sd += (double)wd[(size_t)r * down->in + i] * wd[(size_t)r * down->in + i];
        /* statistics from before any slicing are in loaded channel order */
        int zi = z->dim == down->in ? i : down->kept_in[i];
        double zn = use_norms ? sqrt(z->sumsq[zi]) : 1.0;
        out[i] = sqrt(su) + (wg ? sqrt(sg) : 0.0) + sqrt(sd) * zn;
    }
    free(wu);
    free(wd);
    free(wg);
}

/* Removed channels (current indices) as LoRAP selects them: sorted positions lo..hi-1 of the
 * ascending order, equal scores ordered higher index first. */
static void expected_removed(const double *score, int n, double kl, double s, uint8_t *removed)
{
    int *ord = malloc((size_t)n * sizeof *ord);
    for (int i = 0; i < n; i++)
        ord[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0; j--) {
            int a = ord[j - 1], b = ord[j];
            int after = score[a] > score[b] || (score[a] == score[b] && a < b);
            if (!after)
                break;
            ord[j - 1] = b;
            ord[j] = a;
        }
    size_t lo = expected_count(kl, (size_t)n), hi = expected_count(kl + s, (size_t)n);
    memset(removed, 0, (size_t)n);
    for (size_t p = lo; p < hi && p < (size_t)n; p++)
        removed[ord[p]] = 1;
    free(ord);
}

/* Prunes m's FFN channels and checks the selection, shapes, and that the logits equal those of
 * ref with the removed channels' down columns zeroed. Each block's expected removal is computed
 * from its state before pruning. */
static void prune_and_compare(pare_model *m, pare_model *ref, const pare_calib_stats *st, double kl, double s,
                              const char *what)
{
    int L = m->cfg.n_layers;
    pare_error err = {0};
    uint8_t *removed[8];
    int32_t *orig_idx[8];
    int F0[8];
    for (int l = 0; l < L; l++) {
        pare_block *b = &m->blocks[l];
        int F = F0[l] = b->up.out;
        double *score = malloc((size_t)F * sizeof *score), *mine = malloc((size_t)F * sizeof *mine);
        lorap_scores(b, st->sites[l], 1, score);
        CHECK(pare_ffn_channel_scores(b, st->sites[l], PARE_CHAN_LORAP, mine, &err) == PARE_OK);
        double worst = 0;
        for (int i = 0; i < F; i++)
            worst = fmax(worst, fabs(score[i] - mine[i]) / fmax(score[i], 1e-12));
        CHECKF(worst < 1e-9, "%s layer %d: channel scores differ from the test's by %.3g", what, l, worst);
        removed[l] = malloc((size_t)F);
        orig_idx[l] = malloc((size_t)F * sizeof(int32_t));
        for (int i = 0; i < F; i++)
            orig_idx[l][i] = b->up.kept_out ? b->up.kept_out[i] : i;
        expected_removed(score, F, kl, s, removed[l]);
        free(score);
        free(mine);
    }
    pare_chan_opts o;
    pare_chan_defaults(&o);
    o.sparsity = s;
    o.keep_least = kl;
    pare_chan_report rep;
    CHECKF(pare_prune_model_ffn(m, st, &o, &rep, NULL, &err) == PARE_OK, "%s: %s", what, err.msg);
    int sel_ok = 1, shape_ok = 1, total_removed = 0, total_before = 0;
    for (int l = 0; l < L; l++) {
        pare_block *b = &m->blocks[l];
        int F = F0[l], k = 0, nrm = 0;
        for (int i = 0; i < F; i++)
            nrm += removed[l][i];
        total_removed += nrm;
        total_before += F;
        shape_ok &= b->up.out == F - nrm && b->down.in == F - nrm && (!b->gate.out || b->gate.out == F - nrm);
        /* the survivors in original order, mapped to the loaded shape */
        for (int i = 0; i < F && shape_ok; i++)
            if (!removed[l][i]) {
                sel_ok &= b->up.kept_out[k] == orig_idx[l][i] && b->down.kept_in[k] == orig_idx[l][i] &&
                          (!b->gate.out || b->gate.kept_out[k] == orig_idx[l][i]);
                k++;
            }
        /* in the reference, zero the removed channels' down columns (loaded indices) */
        pare_linear *d = &ref->blocks[l].down;
        for (int i = 0; i < F; i++)
            if (removed[l][i])
                for (int r = 0; r < d->out; r++)
                    d->w[(size_t)r * d->in + orig_idx[l][i]] = 0.0f;
        free(removed[l]);
        free(orig_idx[l]);
    }
    CHECKF(shape_ok && sel_ok, "%s: shapes %d, selection %d", what, shape_ok, sel_ok);
    CHECK(rep.removed == total_removed && rep.channels_before == total_before &&
          rep.channels_after == total_before - total_removed);
    CHECK(rep.params_after < rep.params_before || total_removed == 0);
    float *a = fixture_logits_of(m), *b = fixture_logits_of(ref);
    if (a && b) {
        double d = fixture_max_diff(a, b, (size_t)FIXTURE_T * m->cfg.vocab_size);
        CHECKF(d < 1e-5, "%s: pruned logits differ from zeroed-channel logits by %.3g", what, d);
    }
    free(a);
    free(b);
}

static void check_channels(int gpt2)
{
    pare_model *m = fixture_model(gpt2 ? "ch_g" : "ch_l", gpt2), *ref = fixture_model(gpt2 ? "ch_g2" : "ch_l2", gpt2);
    if (!m || !ref)
        return;
    pare_calib_stats *st = fixture_calibrate(m, 4, 16, 0);
    if (!st)
        return;
    int F = m->cfg.ffn_dim;
    prune_and_compare(m, ref, st, 0.05, 0.3, gpt2 ? "gpt2 first" : "llama first");
    int F1 = m->blocks[0].up.out;
    CHECK(F1 < F && F1 == F - (int)(expected_count(0.35, F) - expected_count(0.05, F)));
    /* again on the already-sliced FFN, with the statistics of the loaded shape (mapped via kept_in) */
    prune_and_compare(m, ref, st, 0.0, 0.25, gpt2 ? "gpt2 second" : "llama second");
    CHECK(m->blocks[1].up.out == F1 - (int)expected_count(0.25, F1));
    pare_calib_free(st);
    pare_model_free(m);
    pare_model_free(ref);
}

static void test_channels_llama(void) { check_channels(0); }
static void test_channels_gpt2(void) { check_channels(1); }

/* Exact factors (A = W, B = I or A = I, B = W) give the dense scores and the same slicing. */
static void test_channels_factored(void)
{
    pare_model *m = fixture_model("fa", 0), *ref = fixture_model("fa2", 0);
    if (!m || !ref)
        return;
    pare_calib_stats *st = fixture_calibrate(m, 4, 16, 0);
    pare_error err = {0};
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pare_block *b = &m->blocks[l];
        pare_linear *fs[] = {&b->gate, &b->up, &b->down};
        for (int t = 0; t < 3; t++) {
            pare_linear *x = fs[t];
            int k = x->out < x->in ? x->out : x->in;
            float *I = calloc((size_t)k * k, sizeof *I), *W = copy_w(x);
            for (int i = 0; i < k; i++)
                I[(size_t)i * k + i] = 1.0f;
            /* gate/up are [F, C] with F > C: A = W, B = I; down is [C, F]: A = I, B = W */
            int ok = x->out > x->in ? pare_linear_set_factors(x, k, W, I, &err) == PARE_OK
                                    : pare_linear_set_factors(x, k, I, W, &err) == PARE_OK;
            CHECKF(ok, "%s", err.msg);
            free(I);
            free(W);
        }
    }
    prune_and_compare(m, ref, st, 0.01, 0.4, "llama factored");
    CHECK(m->blocks[0].down.kind == PARE_LIN_FACTORED && m->blocks[0].up.kind == PARE_LIN_FACTORED);
    pare_calib_free(st);
    pare_model_free(m);
    pare_model_free(ref);
}

/* A hand-built LLaMA FFN: 4 channels of a 2-wide model. */
typedef struct {
    pare_block b;
    pare_input_stats sites[PARE_IN_COUNT];
    double xs[2], zs[4];
} tiny_ffn;

static void tiny_init(tiny_ffn *t)
{
    memset(t, 0, sizeof *t);
    pare_linear *ls[] = {&t->b.gate, &t->b.up, &t->b.down};
    const char *names[] = {"t.gate", "t.up", "t.down"};
    for (int i = 0; i < 3; i++) {
        pare_linear *l = ls[i];
        snprintf(l->name, sizeof l->name, "%s", names[i]);
        l->kind = PARE_LIN_DENSE;
        l->out = l->orig_out = i == 2 ? 2 : 4;
        l->in = l->orig_in = i == 2 ? 4 : 2;
        l->w = l->heap = calloc(8, sizeof(float));
    }
    /* gate/up rows: equal for every channel */
    for (int i = 0; i < 8; i++)
        t->b.gate.w[i] = t->b.up.w[i] = 0.5f;
    /* down columns: channel 0 large (norm 10) but its activations tiny; channel 1 norm 1 */
    float col[4] = {10.0f, 1.0f, 2.0f, 2.0f};
    for (int i = 0; i < 4; i++)
        t->b.down.w[i] = col[i]; /* row 0; row 1 stays 0 */
    t->xs[0] = t->xs[1] = 1.0;
    t->zs[0] = 1e-6;
    t->zs[1] = t->zs[2] = t->zs[3] = 1.0;
    t->sites[PARE_IN_MLP].dim = 2;
    t->sites[PARE_IN_MLP].sumsq = t->xs;
    t->sites[PARE_IN_DOWN].dim = 4;
    t->sites[PARE_IN_DOWN].sumsq = t->zs;
}

static void tiny_free(tiny_ffn *t)
{
    pare_linear_release(&t->b.gate);
    pare_linear_release(&t->b.up);
    pare_linear_release(&t->b.down);
}

/* keep_least = 0 removes the lowest; magnitude-only and LoRAP scores pick different channels. */
static void test_channel_scores_differ(void)
{
    pare_error err = {0};
    tiny_ffn a, b;
    tiny_init(&a);
    tiny_init(&b);
    double sl[4], sm[4];
    CHECK(pare_ffn_channel_scores(&a.b, a.sites, PARE_CHAN_LORAP, sl, &err) == PARE_OK);
    CHECK(pare_ffn_channel_scores(&a.b, NULL, PARE_CHAN_MAGNITUDE, sm, &err) == PARE_OK);
    int lo_l = 0, lo_m = 0;
    for (int i = 1; i < 4; i++) {
        lo_l = sl[i] < sl[lo_l] ? i : lo_l;
        lo_m = sm[i] < sm[lo_m] ? i : lo_m;
    }
    CHECK(lo_l != lo_m);
    pare_chan_opts o;
    pare_chan_defaults(&o);
    o.keep_least = 0;
    o.sparsity = 0.25;
    pare_chan_report rep;
    CHECKF(pare_prune_ffn(&a.b, a.sites, &o, &rep, &err) == PARE_OK, "%s", err.msg);
    o.score = PARE_CHAN_MAGNITUDE;
    CHECKF(pare_prune_ffn(&b.b, NULL, &o, NULL, &err) == PARE_OK, "%s", err.msg);
    int gone_a = -1, gone_b = -1;
    for (int i = 0, k = 0; i < 4; i++) {
        if (k < a.b.up.out && a.b.up.kept_out[k] == i)
            k++;
        else
            gone_a = i;
    }
    for (int i = 0, k = 0; i < 4; i++) {
        if (k < b.b.up.out && b.b.up.kept_out[k] == i)
            k++;
        else
            gone_b = i;
    }
    CHECKF(gone_a == lo_l && gone_b == lo_m, "LoRAP removed %d (lowest %d), magnitude removed %d (lowest %d)", gone_a,
           lo_l, gone_b, lo_m);
    CHECK(rep.removed == 1 && rep.channels_after == 3 && fabs(rep.sparsity - 0.25) < 1e-12);
    CHECK(rep.params_before == 24 && rep.params_after == 18);
    /* the selection itself: keep_least spares the lowest, ties rank the higher index lower */
    double sc[6] = {5, 1, 4, 1, 3, 2};
    int32_t keep[6];
    int nk = 0;
    CHECK(pare_chan_select(sc, 6, 0.5, 0.2, keep, &nk, &err) == PARE_OK);
    /* ascending with ties higher index first: 3(1) 1(1) 5(2) 4(3) 2(4) 0(5); positions 1..3 go */
    CHECK(nk == 3 && keep[0] == 0 && keep[1] == 2 && keep[2] == 3);
    CHECK(pare_chan_select(sc, 6, 0.5, 0.0, keep, &nk, &err) == PARE_OK);
    CHECK(nk == 3 && keep[0] == 0 && keep[1] == 2 && keep[2] == 4);
    tiny_free(&a);
    tiny_free(&b);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void)
{
    pare_error err = {0};
    pare_linear l = make_linear("blk.k", 8, 12, 3u, 0, 1.0f);
    pare_linear *one[] = {&l};
    float *orig = copy_w(&l);
    pare_mask_opts o;
    pare_mask_defaults(&o);
    double bad[] = {-0.1, 1.0, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        o.sparsity = bad[i];
        CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL && strstr(err.msg, "sparsity"));
    }
    o.sparsity = 0.5;
    int nms[][2] = {{4, 4}, {3, 2}, {0, 4}};
    for (int i = 0; i < 3; i++) {
        o.nm_n = nms[i][0];
        o.nm_m = nms[i][1];
        CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL && strstr(err.msg, "N:M"));
    }
    o.nm_n = 2;
    o.nm_m = 8; /* 12 inputs */
    CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "blk.k") && strstr(err.msg, "divisible"), "%s", err.msg);
    o.nm_n = o.nm_m = 0;
    o.score = PARE_SCORE_WANDA;
    CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "blk.k") && strstr(err.msg, "statistics"), "%s", err.msg);
    pare_input_stats st = make_stats(10, 1u); /* wrong width */
    const pare_input_stats *sp[] = {&st};
    CHECK(pare_prune_mask(one, sp, 1, &o, NULL, &err) == PARE_EINVAL && strstr(err.msg, "blk.k"));
    free(st.sumsq);
    st = make_stats(12, 1u);
    st.sumsq[5] = INFINITY;
    CHECK(pare_prune_mask(one, sp, 1, &o, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "blk.k") && strstr(err.msg, "channel 5") && strstr(err.msg, "Inf"), "%s", err.msg);
    st.sumsq[5] = 1.0;
    l.w[3 * 12 + 7] = NAN;
    o.score = PARE_SCORE_MAGNITUDE;
    CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "blk.k") && strstr(err.msg, "[3, 7]") && strstr(err.msg, "NaN"), "%s", err.msg);
    l.w[3 * 12 + 7] = orig[3 * 12 + 7];
    /* a set with a bad member modifies none of them */
    pare_linear g = make_linear("blk.g", 4, 12, 4u, 0, 1.0f);
    g.w[5] = -INFINITY;
    pare_linear *two[] = {&l, &g};
    CHECK(pare_prune_mask(two, NULL, 2, &o, NULL, &err) == PARE_EINVAL && strstr(err.msg, "blk.g"));
    CHECK(l.kind == PARE_LIN_DENSE && memcmp(l.w, orig, 96 * sizeof(float)) == 0);
    pare_linear_release(&g);
    /* factorized layers cannot be masked */
    float A[8 * 2] = {0}, B[2 * 12] = {0};
    CHECK(pare_linear_set_factors(&l, 2, A, B, &err) == PARE_OK);
    CHECK(pare_prune_mask(one, NULL, 1, &o, NULL, &err) == PARE_EINVAL && strstr(err.msg, "factorized"));
    free(st.sumsq);
    free(orig);
    pare_linear_release(&l);

    /* channel pruning */
    tiny_ffn t;
    tiny_init(&t);
    pare_chan_opts c;
    pare_chan_defaults(&c);
    c.sparsity = 1.0;
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL && strstr(err.msg, "sparsity"));
    c.sparsity = -0.2;
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL && strstr(err.msg, "sparsity"));
    c.sparsity = 0.6;
    c.keep_least = 0.5;
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL && strstr(err.msg, "exceeds 1"));
    c.sparsity = 0.99;
    c.keep_least = 0.01; /* sums to 1: all 4 channels would go */
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "t.up") && strstr(err.msg, "all 4"), "%s", err.msg);
    c.sparsity = 0.5;
    if (t.b.up.out != 4 || t.b.down.in != 4) { /* an error above sliced the block after all */
        CHECK(!"the block was sliced by a failing call");
        tiny_free(&t);
        return;
    }
    CHECK(pare_prune_ffn(&t.b, NULL, &c, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "t.up") && strstr(err.msg, "statistics"), "%s", err.msg);
    t.zs[2] = NAN;
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "t.down") && strstr(err.msg, "channel 2") && strstr(err.msg, "NaN"), "%s", err.msg);
    t.zs[2] = 1.0;
    t.b.down.w[1 * 4 + 3] = INFINITY;
    CHECK(pare_prune_ffn(&t.b, t.sites, &c, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "t.down") && strstr(err.msg, "[1, 3]") && strstr(err.msg, "Inf"), "%s", err.msg);
    c.score = PARE_CHAN_MAGNITUDE; /* the weight check does not depend on statistics */
    CHECK(pare_prune_ffn(&t.b, NULL, &c, NULL, &err) == PARE_EINVAL && strstr(err.msg, "t.down"));
    CHECK(t.b.up.out == 4 && t.b.down.in == 4 && t.b.up.kept_out == NULL);
    tiny_free(&t);
}

void suite_prune(void);
void suite_prune(void)
{
    RUN(test_count);
    RUN(test_magnitude_matrix);
    RUN(test_magnitude_row);
    RUN(test_magnitude_global);
    RUN(test_compose);
    RUN(test_wanda);
    RUN(test_nm);
    RUN(test_model_mask);
    RUN(test_channels_llama);
    RUN(test_channels_gpt2);
    RUN(test_channels_factored);
    RUN(test_channel_scores_differ);
    RUN(test_errors);
}

/* LPAF's pieces on tiny fixture models: the cubic sparsity schedule, movement / sensitivity /
 * magnitude masks during fine-tuning, the sparsity-aware SVD (weighted low rank by EM), mixed-rank
 * steps and distillation, training windows and their cache, checkpoints with exact resume, the stop
 * on a non-finite loss, and `pare train` / `pare finetune` end to end. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/backward.h"
#include "core/export.h"
#include "core/fileio.h"
#include "train/finetune.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/prune.h"
#include "train/sparse_svd.h"
#include "train/sparsify.h"
#include "core/spectrum.h"
#include "fixture.h"
#include "harness.h"

static const char *TEXT = "once upon a time there was a little cat who liked to sit in the sun and the cat was happy ";

/* A text file for training windows and a token stream of it (no cache). */
static int open_text(const pare_model *m, pare_token_stream *s)
{
    const char *p = tmp_path("train.txt");
    fixture_write_pattern(p, TEXT, 3000);
    pare_error err = {0};
    int ok = pare_tokens_open(m, p, NULL, s, &err) == PARE_OK;
    CHECKF(ok, "%s", err.msg);
    return ok;
}

static void small_opts(pare_ft_opts *o, long steps)
{
    pare_ft_defaults(o);
    o->steps = steps;
    o->seed = 11;
    o->train.batch = 2;
    o->train.seq = 12;
    o->train.accum = 2;
    o->train.lr = (pare_lr_schedule){PARE_LR_COSINE, 1e-2, 1e-3, 1, steps};
}

/* Bytes of every trainable tensor of the two models equal (kinds, shapes, masks, values). */
static int same_model(pare_model *a, pare_model *b, const char **what)
{
    const pare_config *c = &a->cfg;
    size_t C = (size_t)c->dim;
    *what = "embeddings";
    if (memcmp(a->tok_emb, b->tok_emb, (size_t)c->vocab_size * C * sizeof(float)))
        return 0;
    if (a->pos_emb && memcmp(a->pos_emb, b->pos_emb, (size_t)c->max_pos * C * sizeof(float)))
        return 0;
    *what = "norms";
    for (int l = 0; l < c->n_layers; l++) {
        pare_block *x = &a->blocks[l], *y = &b->blocks[l];
        if (memcmp(x->norm1_w, y->norm1_w, C * 4) || memcmp(x->norm2_w, y->norm2_w, C * 4) ||
            (x->norm1_b && (memcmp(x->norm1_b, y->norm1_b, C * 4) || memcmp(x->norm2_b, y->norm2_b, C * 4))))
            return 0;
    }
    if (memcmp(a->final_norm_w, b->final_norm_w, C * 4) ||
        (a->final_norm_b && memcmp(a->final_norm_b, b->final_norm_b, C * 4)))
        return 0;
    *what = "head";
    if (!c->tied_head && memcmp(a->head.w, b->head.w, (size_t)c->vocab_size * C * 4))
        return 0;
    pare_linear *la[64], *lb[64];
    int n = pare_model_linears(a, la, 64);
    if (pare_model_linears(b, lb, 64) != n)
        return 0;
    for (int i = 0; i < n; i++) {
        const pare_linear *x = la[i], *y = lb[i];
        *what = x->name;
        if (x->kind != y->kind || x->out != y->out || x->in != y->in || (x->b && memcmp(x->b, y->b, (size_t)x->out * 4)))
            return 0;
        size_t n2 = (size_t)x->out * x->in;
        if (x->kind == PARE_LIN_FACTORED) {
            if (x->rank != y->rank || memcmp(x->A, y->A, (size_t)x->out * x->rank * 4) ||
                memcmp(x->B, y->B, (size_t)x->rank * x->in * 4))
                return 0;
        } else if (memcmp(x->w, y->w, n2 * 4) || (x->kind == PARE_LIN_MASKED && memcmp(x->mask, y->mask, n2))) {
            return 0;
        }
    }
    return 1;
}

static size_t masked_in(const pare_linear *l)
{
    size_t c = 0;
    for (size_t j = 0; l->kind == PARE_LIN_MASKED && j < (size_t)l->out * l->in; j++)
        c += !l->mask[j];
    return c;
}

/* ---------------------------------------------------------------- schedule */

/* r_t against the formula written out here, at the phase boundaries and inside; option checks. */
static void test_lpaf_cubic_schedule(void)
{
    pare_fop_opts o;
    pare_fop_defaults(&o);
    o.sparsity = 0.7;
    o.total = 100;
    o.warmup = 10;
    o.cooldown = 20;
    double rf = 1.0 - o.sparsity;
    for (long t = 0; t < 110; t++) {
        double want;
        if (t < 10)
            want = 1;
        else if (t >= 80)
            want = rf;
        else
            want = rf + (1 - rf) * pow(1.0 - (t - 10) / 70.0, 3);
        CHECKF(fabs(pare_fop_kept(&o, t) - want) <= 1e-15, "r_%ld = %.17g, formula %.17g", t, pare_fop_kept(&o, t),
               want);
    }
    CHECK(pare_fop_kept(&o, 10) == 1.0 && pare_fop_kept(&o, 80) == rf);
    pare_error err = {0};
    CHECK(pare_fop_check(&o, &err) == PARE_OK);
    o.cooldown = 90;
    CHECK(pare_fop_check(&o, &err) == PARE_EINVAL && strstr(err.msg, "warmup"));
    o.cooldown = 0;
    o.sparsity = 1.0;
    CHECK(pare_fop_check(&o, &err) == PARE_EINVAL && strstr(err.msg, "sparsity"));
    o.sparsity = 0.5;
    o.every = 0;
    CHECK(pare_fop_check(&o, &err) == PARE_EINVAL);
    /* mixed-rank probability: linear from p0 to 0 over span * T */
    pare_ft_opts fo;
    pare_ft_defaults(&fo);
    fo.steps = 40;
    fo.mix_p0 = 0.5;
    fo.mix_span = 0.5;
    for (long t = 0; t < 40; t++) {
        double want = t < 20 ? 0.5 * (1 - t / 20.0) : 0;
        CHECKF(fabs(pare_ft_mix_prob(&fo, t) - want) <= 1e-15, "p(%ld) = %g, want %g", t, pare_ft_mix_prob(&fo, t),
               want);
    }
}

/* ---------------------------------------------------------------- data */

/* The text is tokenized once: the cache file holds the same ids and is used while text and tokenizer
 * are unchanged; windows are a function of (seed, step) only and lie inside the stream. */
static void test_lpaf_windows_and_cache(void)
{
    pare_model *m = fixture_model("m", 0);
    if (!m)
        return;
    const char *p = tmp_path("text.txt"), *cache = tmp_path("cache");
    fixture_write_pattern(p, TEXT, 2000);
    pare_token_stream a, b, c;
    pare_error err = {0};
    CHECKF(pare_tokens_open(m, p, cache, &a, &err) == PARE_OK, "%s", err.msg);
    CHECK(!a.from_cache && a.n > 100);
    CHECKF(pare_tokens_open(m, p, cache, &b, &err) == PARE_OK, "%s", err.msg);
    CHECK(b.from_cache && b.n == a.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0);
    int32_t *direct = NULL;
    size_t nd = 0;
    CHECK(pare_model_tokenize_file(m, p, &direct, &nd, &err) == PARE_OK);
    CHECK(nd == a.n && memcmp(direct, a.ids, nd * sizeof *direct) == 0);
    free(direct);
    fixture_write_pattern(p, "a different story about a dog ", 1500);
    CHECK(pare_tokens_open(m, p, cache, &c, &err) == PARE_OK);
    CHECK(!c.from_cache && c.n != a.n);
    int32_t w1[4 * 16], w2[4 * 16], w3[4 * 16];
    CHECK(pare_train_windows(&a, 5, 3, 4, 16, w1, &err) == PARE_OK);
    CHECK(pare_train_windows(&b, 5, 3, 4, 16, w2, &err) == PARE_OK);
    CHECK(memcmp(w1, w2, sizeof w1) == 0);
    CHECK(pare_train_windows(&a, 5, 4, 4, 16, w3, &err) == PARE_OK);
    CHECK(memcmp(w1, w3, sizeof w1) != 0);
    CHECK(pare_train_windows(&a, 6, 3, 4, 16, w3, &err) == PARE_OK);
    CHECK(memcmp(w1, w3, sizeof w1) != 0);
    /* every window is a contiguous slice of the stream */
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (size_t s = 0; s + 16 <= a.n && !found; s++)
            found = memcmp(a.ids + s, w1 + i * 16, 16 * sizeof(int32_t)) == 0;
        CHECKF(found, "window %d is not a slice of the stream", i);
    }
    CHECK(pare_train_windows(&a, 5, 0, 1, (int)a.n + 1, w1, &err) == PARE_EINVAL && strstr(err.msg, "shorter"));
    pare_tokens_close(&a);
    pare_tokens_close(&b);
    pare_tokens_close(&c);
    pare_model_free(m);
}

/* ---------------------------------------------------------------- pruning during fine-tuning */

/* Movement scores after a few steps equal -Σ_t W_t ⊙ dL/dW_t, with the gradients computed here on
 * the same windows (pare_backward with dense masked gradients, two weighted micro-batches). */
static void test_lpaf_movement_scores(void)
{
    pare_model *m = fixture_model("m", 0);
    pare_token_stream ts;
    if (!m || !open_text(m, &ts)) {
        pare_model_free(m);
        return;
    }
    pare_ft_opts o;
    small_opts(&o, 20);
    o.prune = 1;
    o.fop.method = PARE_FOP_MOVEMENT;
    o.fop.sparsity = 0.5;
    o.fop.warmup = 10; /* masks stay all-ones during the steps checked */
    pare_ft *ft = NULL;
    pare_error err = {0};
    CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s", err.msg);
    int B = 2, T = 12, K = 2, n_lin = pare_model_linears(m, NULL, 0);
    pare_linear *lin[64];
    pare_model_linears(m, lin, 64);
    size_t total = 0;
    for (int i = 0; i < n_lin; i++)
        total += (size_t)lin[i]->out * lin[i]->in;
    double *want = calloc(total, sizeof *want);
    pare_acts *a = NULL;
    pare_grads *g = NULL;
    CHECK(pare_acts_alloc(m, B, T, 1, &a, &err) == PARE_OK);
    CHECK(pare_grads_alloc(m, B, T, PARE_GRADS_DENSE_MASKED, &g, &err) == PARE_OK);
    int32_t ids[2 * 2 * 12], tg[2 * 2 * 12];
    for (long s = 0; s < 4 && !harness_failed_now(); s++) {
        CHECK(pare_train_windows(&ts, o.seed, s, K * B, T, ids, &err) == PARE_OK);
        pare_shift_targets(ids, K * B, T, tg);
        size_t n_all = pare_count_targets(tg, (size_t)K * B * T);
        pare_grads_zero(g);
        for (int k = 0; k < K; k++) {
            g->loss_scale = pare_accum_weight(pare_count_targets(tg + k * B * T, (size_t)B * T), n_all);
            CHECK(pare_forward(m, a, ids + k * B * T, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
            CHECK(pare_backward(m, a, g, ids + k * B * T, tg + k * B * T, B, T, &err) == PARE_OK);
        }
        size_t off = 0;
        for (int i = 0; i < n_lin; i++) {
            const float *gd = NULL;
            for (int e = 0; e < g->n_params; e++)
                if (g->params[e].param == lin[i]->w)
                    gd = g->params[e].grad_dense;
            CHECK(gd != NULL);
            for (size_t j = 0; gd && j < (size_t)lin[i]->out * lin[i]->in; j++)
                want[off + j] -= (double)lin[i]->w[j] * gd[j];
            off += (size_t)lin[i]->out * lin[i]->in;
        }
        pare_ft_stats st;
        CHECKF(pare_ft_step(ft, NULL, &st, &err) == PARE_OK, "%s", err.msg);
    }
    const pare_fop_state *fs = pare_ft_fop(ft);
    double worst = 0;
    size_t off = 0;
    for (int i = 0; fs && i < fs->count; i++) {
        double mx = 0;
        for (size_t j = 0; j < fs->mats[i].n; j++)
            mx = fmax(mx, fabs(want[off + j]));
        for (size_t j = 0; j < fs->mats[i].n; j++)
            worst = fmax(worst, fabs(fs->mats[i].score[j] - want[off + j]) / (mx > 0 ? mx : 1));
        off += fs->mats[i].n;
    }
    printf("  movement scores vs -sum W*grad: worst error %.2e of each matrix's largest\n", worst);
    CHECKF(fs && worst <= 1e-5, "movement scores differ by %.3g", worst);
    free(want);
    pare_acts_free(a);
    pare_grads_free(g);
    pare_ft_free(ft);
    pare_tokens_close(&ts);
    pare_model_free(m);
}

/* Each method's masks follow the schedule step by step (per matrix: masked = ⌊(1 - r_t) n⌉) and end at
 * the target sparsity, masked weights staying exactly zero; global scope meets it over all matrices;
 * with a zero learning rate magnitude masks equal pare_prune_mask's. */
static void test_lpaf_masks_reach_sparsity(void)
{
    for (int method = 0; method < 3; method++) {
        for (int global = 0; global < 2; global++) {
            pare_model *m = fixture_model("m", method == 1);
            pare_token_stream ts;
            if (!m || !open_text(m, &ts)) {
                pare_model_free(m);
                return;
            }
            pare_ft_opts o;
            small_opts(&o, 9);
            o.prune = 1;
            o.fop.method = (pare_fop_method)method;
            o.fop.sparsity = 0.6;
            o.fop.warmup = 2;
            o.fop.cooldown = 2;
            o.fop.global = global;
            o.fop.total = 9; /* pare_ft_new sets its copy's total to steps; the test's schedule must match */
            pare_ft *ft = NULL;
            pare_error err = {0};
            CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s", err.msg);
            pare_linear *lin[64];
            int n = pare_model_linears(m, lin, 64);
            size_t all = 0;
            for (int i = 0; i < n; i++)
                all += (size_t)lin[i]->out * lin[i]->in;
            for (long s = 0; s < 9 && ft && !harness_failed_now(); s++) {
                pare_ft_stats st;
                CHECKF(pare_ft_step(ft, NULL, &st, &err) == PARE_OK, "%s", err.msg);
                double drop = 1.0 - pare_fop_kept(&o.fop, s);
                size_t tot = 0;
                for (int i = 0; i < n; i++) {
                    size_t c = masked_in(lin[i]), nn = (size_t)lin[i]->out * lin[i]->in;
                    tot += c;
                    if (!global)
                        CHECKF(c == pare_prune_count(drop, nn), "%s %s step %ld: %zu masked, schedule says %zu",
                               PARE_FOP_NAMES[method], lin[i]->name, s, c, pare_prune_count(drop, nn));
                    for (size_t j = 0; j < nn; j++)
                        if (!lin[i]->mask[j] && lin[i]->w[j] != 0.0f) {
                            CHECKF(0, "%s: masked weight %zu is %g", lin[i]->name, j, lin[i]->w[j]);
                            break;
                        }
                }
                if (global)
                    CHECKF(tot == pare_prune_count(drop, all), "%s global step %ld: %zu masked, want %zu",
                           PARE_FOP_NAMES[method], s, tot, pare_prune_count(drop, all));
                CHECK(fabs(st.sparsity - (double)tot / all) < 1e-12);
            }
            size_t tot = 0;
            for (int i = 0; i < n; i++)
                tot += masked_in(lin[i]);
            CHECKF(fabs((double)tot / all - 0.6) < 0.01, "%s: final sparsity %g", PARE_FOP_NAMES[method],
                   (double)tot / all);
            pare_ft_free(ft);
            pare_tokens_close(&ts);
            pare_model_free(m);
        }
    }
    /* lr 0: weights never move, so magnitude masks are the top-|W| masks of the existing pruner */
    for (int global = 0; global < 2; global++) {
        pare_model *m = fixture_model("m", 0), *ref = NULL;
        pare_token_stream ts;
        pare_error err = {0};
        if (!m || !open_text(m, &ts) || pare_model_clone(m, &ref, &err)) {
            pare_model_free(m);
            return;
        }
        pare_ft_opts o;
        small_opts(&o, 6);
        o.train.lr.lr_max = o.train.lr.lr_min = 0;
        o.train.adamw.weight_decay = 0;
        o.prune = 1;
        o.fop.method = PARE_FOP_MAGNITUDE;
        o.fop.sparsity = 0.45;
        o.fop.warmup = 1;
        o.fop.global = global;
        pare_ft *ft = NULL;
        CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s", err.msg);
        for (int s = 0; s < 6 && ft; s++) {
            pare_ft_stats st;
            CHECK(pare_ft_step(ft, NULL, &st, &err) == PARE_OK);
        }
        pare_mask_opts mo;
        pare_mask_defaults(&mo);
        mo.sparsity = 0.45;
        mo.scope = global ? PARE_SCOPE_GLOBAL : PARE_SCOPE_MATRIX;
        CHECK(pare_prune_model_mask(ref, NULL, &mo, NULL, NULL, &err) == PARE_OK);
        pare_linear *la[64], *lb[64];
        int n = pare_model_linears(m, la, 64);
        pare_model_linears(ref, lb, 64);
        for (int i = 0; i < n; i++)
            CHECKF(memcmp(la[i]->mask, lb[i]->mask, (size_t)la[i]->out * la[i]->in) == 0,
                   "%s (%s): magnitude masks differ from pare_prune_mask's", la[i]->name, global ? "global" : "matrix");
        pare_ft_free(ft);
        pare_tokens_close(&ts);
        pare_model_free(m);
        pare_model_free(ref);
    }
}

/* ---------------------------------------------------------------- sparsity-aware SVD */

static double weighted_obj(const float *W, const float *wt, const float *A, const float *B, int m, int n, int k)
{
    double f = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double z = 0;
            for (int r = 0; r < k; r++)
                z += (double)A[(size_t)i * k + r] * B[(size_t)r * n + j];
            double d = W[(size_t)i * n + j] - z;
            f += (wt ? wt[(size_t)i * n + j] : 1.0) * d * d;
        }
    return f;
}

/* EM never increases Σ wt (W - AB)² (each iteration count run separately, the objective recomputed
 * here from the returned factors); the result beats the plain SVD of the sparse matrix, whose factors
 * come from pare_svd_topk; mask-only weights too; the layer version factorizes a masked linear. */
static void test_lpaf_sparse_svd(void)
{
    for (int shape = 0; shape < 2; shape++) {
        int m = shape ? 40 : 24, n = shape ? 24 : 36, k = 5;
        size_t N = (size_t)m * n;
        float *W = malloc(N * sizeof *W), *wt = malloc(N * sizeof *wt), *mk = malloc(N * sizeof *mk);
        float *A = malloc((size_t)m * k * sizeof *A), *B = malloc((size_t)k * n * sizeof *B);
        uint64_t st = 99 + shape;
        for (size_t i = 0; i < N; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(st >> 11) * 0x1.0p-53;
            int kept = (st >> 7) % 10 < 5;
            /* a low-rank part plus noise, then pruned */
            double lr = sin(0.3 * (double)(i / n)) * cos(0.2 * (double)(i % n)) +
                        0.5 * sin(0.11 * (double)(i / n) * (double)(i % n) / 7);
            W[i] = kept ? (float)(lr + 0.3 * (u - 0.5)) : 0.0f;
            wt[i] = kept ? (float)(0.05 + 0.95 * u * u) : 0.0f;
            mk[i] = kept ? 1.0f : 0.0f;
        }
        pare_error err = {0};
        /* plain SVD of the sparse matrix, through the spectrum module */
        pare_svd_opts so = pare_svd_defaults();
        so.exact = 1;
        so.want_u = so.want_vt = 1;
        pare_svd svd = {0};
        CHECK(pare_svd_topk("W", W, m, n, k, &so, &svd, &err) == PARE_OK);
        float *Au = malloc((size_t)m * k * sizeof *Au);
        for (int i = 0; i < m; i++)
            for (int r = 0; r < k; r++)
                Au[(size_t)i * k + r] = (float)(svd.u[(size_t)i * k + r] * svd.s[r]);
        double plain = weighted_obj(W, wt, Au, svd.vt, m, n, k), plain_mask = weighted_obj(W, mk, Au, svd.vt, m, n, k);
        pare_svd_free(&svd);
        free(Au);
        double hist[64];
        pare_wsvd_opts o;
        pare_wsvd_defaults(&o);
        o.max_iters = 40;
        o.tol = 0;
        o.history = hist;
        o.history_cap = 64;
        pare_wsvd_report r;
        CHECKF(pare_wsvd("W", W, wt, m, n, k, &o, A, B, &r, &err) == PARE_OK, "%s", err.msg);
        CHECK(r.rejected == 0 && r.iters == 40 && r.history_len == 41);
        for (int i = 1; i < r.history_len; i++)
            CHECKF(hist[i] <= hist[i - 1], "objective rose at iteration %d: %.17g -> %.17g", i, hist[i - 1], hist[i]);
        double fin = weighted_obj(W, wt, A, B, m, n, k);
        CHECKF(fabs(fin - r.objective) <= 1e-5 * r.objective, "objective %.9g, recomputed %.9g", r.objective, fin);
        CHECKF(fabs(plain - r.objective_plain) <= 1e-5 * plain, "plain objective %.9g, from pare_svd_topk %.9g",
               r.objective_plain, plain);
        CHECKF(fin < 0.95 * plain, "EM %.6g did not improve on the plain SVD's %.6g", fin, plain);
        printf("  [%d x %d] rank %d: weighted error %.4f (plain SVD %.4f) after %d EM iterations\n", m, n, k,
               r.rel_error, r.rel_error_plain, r.iters);
        /* every prefix of the iteration, run on its own, from the returned factors */
        double prev = plain;
        for (int it = 0; it <= 6; it++) {
            o.max_iters = it;
            o.history = NULL;
            CHECK(pare_wsvd("W", W, wt, m, n, k, &o, A, B, &r, &err) == PARE_OK);
            double f = weighted_obj(W, wt, A, B, m, n, k);
            CHECKF(f <= prev * (1 + 1e-6), "%d iterations: objective %.9g above %.9g", it, f, prev);
            prev = f;
        }
        /* mask-only weights: the weighted error is at most the plain SVD's */
        o.max_iters = 30;
        o.tol = 1e-4;
        CHECK(pare_wsvd("W", W, mk, m, n, k, &o, A, B, &r, &err) == PARE_OK);
        double fm = weighted_obj(W, mk, A, B, m, n, k);
        CHECKF(fm <= plain_mask * (1 + 1e-6) && r.rejected == 0, "mask-only %.9g vs plain %.9g", fm, plain_mask);
        free(W);
        free(wt);
        free(mk);
        free(A);
        free(B);
    }
    /* the layer version: a masked linear with an importance array becomes rank-k factors */
    pare_model *mdl = fixture_model("m", 0);
    if (!mdl)
        return;
    pare_linear *l = &mdl->blocks[0].up;
    size_t N = (size_t)l->out * l->in;
    uint8_t *mask = malloc(N);
    float *imp = malloc(N * sizeof *imp), *dense = malloc(N * sizeof *dense);
    for (size_t i = 0; i < N; i++) {
        mask[i] = (i * 7) % 10 < 5;
        imp[i] = (float)((i * 13) % 17) + 1.0f;
    }
    pare_error err = {0};
    CHECK(pare_linear_set_mask(l, mask, &err) == PARE_OK);
    float *w0 = malloc(N * sizeof *w0);
    memcpy(w0, l->w, N * sizeof *w0);
    pare_wsvd_report r;
    CHECKF(pare_factorize_sparse(l, 6, imp, NULL, &r, &err) == PARE_OK, "%s", err.msg);
    CHECK(l->kind == PARE_LIN_FACTORED && l->rank == 6 && r.objective <= r.objective_plain);
    pare_linear_dense(l, dense);
    double num = 0, den = 0;
    for (size_t i = 0; i < N; i++) {
        num += (double)mask[i] * imp[i] * pow((double)w0[i] - dense[i], 2);
        den += (double)mask[i] * imp[i] * w0[i] * w0[i];
    }
    CHECKF(fabs(sqrt(num / den) - r.rel_error) <= 1e-4 * r.rel_error, "weighted error %.6g, recomputed %.6g",
           r.rel_error, sqrt(num / den));
    /* importance scaled by its median over the kept weights, clipped to 1 */
    pare_linear *g2 = &mdl->blocks[1].up;
    CHECK(pare_linear_set_mask(g2, mask, &err) == PARE_OK);
    memcpy(w0, g2->w, N * sizeof *w0);
    pare_wsvd_opts qo;
    pare_wsvd_defaults(&qo);
    qo.quantile = 0.5;
    CHECKF(pare_factorize_sparse(g2, 6, imp, &qo, &r, &err) == PARE_OK, "%s", err.msg);
    float *kept = malloc(N * sizeof *kept);
    size_t nk = 0;
    for (size_t i = 0; i < N; i++)
        if (mask[i])
            kept[nk++] = imp[i];
    for (size_t i = 0; i < nk; i++) /* selection sort is plenty for a fixture matrix */
        for (size_t j = i + 1; j < nk; j++)
            if (kept[j] < kept[i]) {
                float t = kept[i];
                kept[i] = kept[j];
                kept[j] = t;
            }
    double med = kept[(nk + 1) / 2 - 1];
    free(kept);
    pare_linear_dense(g2, dense);
    num = den = 0;
    for (size_t i = 0; i < N; i++) {
        double wq = mask[i] ? fmin(1.0, imp[i] / med) : 0;
        num += wq * pow((double)w0[i] - dense[i], 2);
        den += wq * w0[i] * w0[i];
    }
    CHECKF(fabs(sqrt(num / den) - r.rel_error) <= 1e-4 * r.rel_error,
           "median-scaled weighted error %.6g, recomputed %.6g", r.rel_error, sqrt(num / den));
    float *zero = calloc(N, sizeof *zero);
    CHECK(pare_factorize_sparse(&mdl->blocks[0].gate, 4, zero, NULL, NULL, &err) == PARE_EINVAL &&
          strstr(err.msg, "is zero"));
    CHECK(pare_factorize_sparse(l, 4, NULL, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "already factorized"));
    free(zero);
    free(mask);
    free(imp);
    free(dense);
    free(w0);
    pare_model_free(mdl);
}

/* ---------------------------------------------------------------- mixed rank, distillation */

/* Factorizes every block linear of m at rank k (plain SVD) and returns the masked clone it came from. */
static pare_model *sparse_and_factorize(pare_model *m, int k)
{
    pare_mask_opts mo;
    pare_mask_defaults(&mo);
    mo.sparsity = 0.5;
    pare_error err = {0};
    CHECK(pare_prune_model_mask(m, NULL, &mo, NULL, NULL, &err) == PARE_OK);
    pare_model *s = NULL;
    CHECK(pare_model_clone(m, &s, &err) == PARE_OK);
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    for (int i = 0; i < n; i++)
        CHECKF(pare_factorize_sparse(lin[i], k, NULL, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
    return s;
}

/* With p0 = 1 the first step runs every factorized linear as its sparse counterpart: its loss is the
 * sparse model's on the same windows and the factors do not move, while shared parameters do; with
 * p0 = 0 nothing is replaced. Distillation's loss is the KL computed here from both models' logits,
 * and distilling a model into an identical copy gives a zero gradient. */
static void test_lpaf_mixed_rank_and_distill(void)
{
    pare_model *m = fixture_model("m", 0);
    pare_token_stream ts;
    if (!m || !open_text(m, &ts)) {
        pare_model_free(m);
        return;
    }
    pare_model *sp = sparse_and_factorize(m, 4);
    pare_ft_opts o;
    small_opts(&o, 10);
    o.sparse = sp;
    o.mix_p0 = 1.0;
    o.mix_span = 0.2; /* p = 1 at step 0, 0.5 at step 1, 0 from step 2 */
    pare_ft *ft = NULL;
    pare_error err = {0};
    CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s", err.msg);
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    float *a0 = malloc((size_t)lin[0]->out * lin[0]->rank * sizeof *a0);
    memcpy(a0, lin[0]->A, (size_t)lin[0]->out * lin[0]->rank * sizeof *a0);
    float emb0 = m->tok_emb[0 + 0], norm0 = m->blocks[0].norm1_w[3];
    /* the sparse model's loss on step 0's windows */
    int B = 2, T = 12, K = 2;
    int32_t ids[48], tg[48];
    CHECK(pare_train_windows(&ts, o.seed, 0, K * B, T, ids, &err) == PARE_OK);
    pare_shift_targets(ids, K * B, T, tg);
    pare_acts *a = NULL;
    CHECK(pare_acts_alloc(sp, B, T, 0, &a, &err) == PARE_OK);
    double want = 0;
    size_t nall = pare_count_targets(tg, 48);
    for (int k = 0; k < K; k++) {
        double l = 0;
        CHECK(pare_forward(sp, a, ids + k * B * T, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
        CHECK(pare_loss_forward(sp, a, tg + k * B * T, B, T, &l, NULL, &err) == PARE_OK);
        want += l * pare_accum_weight(pare_count_targets(tg + k * B * T, (size_t)B * T), nall);
    }
    pare_ft_stats st;
    CHECKF(ft && pare_ft_step(ft, NULL, &st, &err) == PARE_OK, "%s", err.msg);
    CHECKF(st.swapped == n && st.mix_prob == 1.0, "step 0: %d of %d swapped, p %g", st.swapped, n, st.mix_prob);
    CHECKF(fabs(st.loss - want) <= 1e-12 * want, "mixed step loss %.12g, sparse model's %.12g", st.loss, want);
    CHECK(memcmp(a0, lin[0]->A, (size_t)lin[0]->out * lin[0]->rank * sizeof *a0) == 0);
    CHECK(lin[0]->kind == PARE_LIN_FACTORED && m->blocks[0].norm1_w[3] != norm0 && m->tok_emb[0] != emb0);
    CHECK(pare_ft_step(ft, NULL, &st, &err) == PARE_OK && st.mix_prob == 0.5 && st.swapped > 0 && st.swapped < n);
    CHECK(pare_ft_step(ft, NULL, &st, &err) == PARE_OK && st.mix_prob == 0 && st.swapped == 0);
    pare_ft_free(ft);
    free(a0);
    /* distillation: the reported KL against the test's own, on a fresh run without mixing */
    pare_ft_opts d;
    small_opts(&d, 5);
    d.sparse = sp;
    d.distill = 0.5;
    d.distill_temp = 2.0;
    CHECKF(pare_ft_new(m, &ts, &d, &ft, &err) == PARE_OK, "%s", err.msg);
    CHECK(pare_train_windows(&ts, d.seed, 0, K * B, T, ids, &err) == PARE_OK);
    pare_acts *as = NULL;
    CHECK(pare_acts_alloc(m, B, T, 0, &as, &err) == PARE_OK);
    int V = m->cfg.vocab_size;
    double kl = 0, ce = 0, tau = 2.0;
    for (int k = 0; k < K && as; k++) {
        CHECK(pare_forward(sp, a, ids + k * B * T, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
        CHECK(pare_forward(m, as, ids + k * B * T, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
        double l = 0;
        CHECK(pare_loss_forward(m, as, tg + k * B * T, B, T, &l, NULL, &err) == PARE_OK);
        ce += l * pare_accum_weight(pare_count_targets(tg + k * B * T, (size_t)B * T), nall);
        for (int i = 0; i < B * T; i++) {
            if (tg[k * B * T + i] < 0)
                continue;
            const float *zs = as->logits + (size_t)i * V, *zt = a->logits + (size_t)i * V;
            double ss = 0, stt = 0;
            for (int j = 0; j < V; j++) {
                ss += exp(zs[j] / tau);
                stt += exp(zt[j] / tau);
            }
            for (int j = 0; j < V; j++) {
                double pt = exp(zt[j] / tau) / stt, ps = exp(zs[j] / tau) / ss;
                kl += tau * tau * pt * log(pt / ps) / (double)nall;
            }
        }
    }
    CHECK(ft && pare_ft_step(ft, NULL, &st, &err) == PARE_OK);
    CHECKF(fabs(st.distill_loss - kl) <= 1e-6 * kl && fabs(st.loss - ce) <= 1e-9 * ce,
           "distillation KL %.9g vs %.9g, CE %.9g vs %.9g", st.distill_loss, kl, st.loss, ce);
    pare_ft_free(ft);
    pare_acts_free(as);
    /* into an identical copy with weight 1: KL 0 and no gradient at all */
    pare_model *twin = NULL;
    CHECK(pare_model_clone(sp, &twin, &err) == PARE_OK);
    d.sparse = sp;
    d.distill = 1.0;
    CHECKF(pare_ft_new(twin, &ts, &d, &ft, &err) == PARE_OK, "%s", err.msg);
    CHECK(ft && pare_ft_step(ft, NULL, &st, &err) == PARE_OK);
    CHECKF(st.distill_loss == 0 && st.grad_norm == 0, "self-distillation: KL %g, gradient norm %g", st.distill_loss,
           st.grad_norm);
    pare_ft_free(ft);
    pare_model_free(twin);
    /* mixed rank refuses a model without factorized linears and a missing sparse model */
    o.sparse = NULL;
    CHECK(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_EINVAL && strstr(err.msg, "sparse"));
    pare_acts_free(a);
    pare_model_free(sp);
    pare_tokens_close(&ts);
    pare_model_free(m);
}

/* ---------------------------------------------------------------- checkpoints */

/* N steps, a checkpoint, a new process's worth of state loaded from it, M more steps: the model is
 * bit-identical to N + M uninterrupted steps, for pruning (scores and masks in the checkpoint) and for
 * mixed rank with distillation (draws by step). */
static void test_lpaf_resume_exact(void)
{
    for (int variant = 0; variant < 2; variant++) {
        pare_model *base = fixture_model("m", variant == 0 ? 0 : 1), *a = NULL, *b = NULL, *sp = NULL;
        pare_token_stream ts;
        pare_error err = {0};
        if (!base || !open_text(base, &ts)) {
            pare_model_free(base);
            return;
        }
        pare_ft_opts o;
        small_opts(&o, 8);
        if (variant == 0) {
            o.prune = 1;
            o.fop.method = PARE_FOP_SENSITIVITY;
            o.fop.sparsity = 0.5;
            o.fop.warmup = 1;
            o.fop.cooldown = 1;
        } else {
            sp = sparse_and_factorize(base, 3);
            o.sparse = sp;
            o.mix_p0 = 0.8;
            o.distill = 0.3;
        }
        CHECK(pare_model_clone(base, &a, &err) == PARE_OK && pare_model_clone(base, &b, &err) == PARE_OK);
        pare_ft *fa = NULL, *fb = NULL;
        CHECKF(pare_ft_new(a, &ts, &o, &fa, &err) == PARE_OK, "%s", err.msg);
        pare_ft_run_opts ro = {0};
        CHECKF(fa && pare_ft_run(fa, &ro, &err) == PARE_OK, "%s", err.msg);
        /* interrupted run: 3 steps, checkpoint, everything freed */
        const char *ck = tmp_path("ckpt");
        CHECKF(pare_ft_new(b, &ts, &o, &fb, &err) == PARE_OK, "%s", err.msg);
        ro.checkpoint_dir = ck;
        ro.until = 3;
        ro.options_json = "{\"x\": 1}";
        CHECKF(fb && pare_ft_run(fb, &ro, &err) == PARE_OK, "%s", err.msg);
        CHECK(pare_ft_steps_done(fb) == 3);
        pare_ft_free(fb);
        pare_model_free(b);
        long step = 0;
        char *oj = NULL;
        CHECKF(pare_ft_checkpoint_info(ck, &step, &oj, &err) == PARE_OK, "%s", err.msg);
        CHECK(step == 3 && oj && strstr(oj, "\"x\""));
        free(oj);
        b = NULL;
        CHECKF(pare_model_load(ck, NULL, &b, &err) == PARE_OK, "%s", err.msg);
        fb = NULL;
        if (b) {
            CHECKF(pare_ft_new(b, &ts, &o, &fb, &err) == PARE_OK, "%s", err.msg);
            CHECKF(fb && pare_ft_load_state(fb, ck, &err) == PARE_OK, "%s", err.msg);
            ro.until = 0;
            ro.checkpoint_every = 2;
            CHECKF(fb && pare_ft_run(fb, &ro, &err) == PARE_OK, "%s", err.msg);
            const char *what = "";
            CHECKF(fb && pare_ft_steps_done(fb) == 8 && same_model(a, b, &what),
                   "%s: resumed run differs from the uninterrupted one at %s", variant ? "mixed rank" : "pruning", what);
            if (variant == 0 && fb) {
                const pare_fop_state *x = pare_ft_fop(fa), *y = pare_ft_fop(fb);
                CHECK(memcmp(x->slab, y->slab, 3 * x->weights * sizeof(float)) == 0);
            }
        }
        CHECK(pare_ft_checkpoint_info(ck, &step, NULL, &err) == PARE_OK && step == 8);
        struct stat sb;
        CHECK(stat(tmp_path("ckpt.next"), &sb) != 0);
        pare_ft_free(fa);
        pare_ft_free(fb);
        pare_model_free(a);
        pare_model_free(b);
        pare_model_free(sp);
        pare_tokens_close(&ts);
        pare_model_free(base);
    }
}

/* A run from step 0 trains balanced factors: after one step at learning rate 0 the model computes
 * the same logits bit for bit, and every component of a factorized linear whose norms were 50x and
 * more apart has them within a factor 2. */
static void test_lpaf_balances_factors(void)
{
    pare_model *m = fixture_model("m", 0);
    pare_token_stream ts;
    pare_error err = {0};
    if (!m || !open_text(m, &ts)) {
        pare_model_free(m);
        return;
    }
    pare_linear *lin[64];
    pare_model_linears(m, lin, 64);
    pare_linear *l = lin[0];
    fixture_unbalanced_factors(l);
    float *before = fixture_logits_of(m);
    pare_ft_opts o;
    small_opts(&o, 2);
    o.train.lr.lr_max = o.train.lr.lr_min = 0;
    pare_ft *ft = NULL;
    pare_ft_run_opts ro = {.until = 1};
    CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK && pare_ft_run(ft, &ro, &err) == PARE_OK, "%s", err.msg);
    float *after = fixture_logits_of(m);
    CHECK(before && after && memcmp(before, after, (size_t)FIXTURE_T * m->cfg.vocab_size * sizeof *after) == 0);
    double worst = fixture_factor_imbalance(l);
    CHECKF(l->kind == PARE_LIN_FACTORED && worst <= 2, "%s: norms %.3g apart after the first step", l->name, worst);
    free(before);
    free(after);
    pare_ft_free(ft);
    pare_tokens_close(&ts);
    pare_model_free(m);
}

/* A non-finite loss stops the run before the update, keeps the last checkpoint and says which. */
static void test_lpaf_nan_stop(void)
{
    pare_model *m = fixture_model("m", 0);
    pare_token_stream ts;
    if (!m || !open_text(m, &ts)) {
        pare_model_free(m);
        return;
    }
    pare_ft_opts o;
    small_opts(&o, 6);
    pare_ft *ft = NULL;
    pare_error err = {0};
    CHECK(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK);
    const char *ck = tmp_path("ck");
    pare_ft_run_opts ro = {.checkpoint_dir = ck, .checkpoint_every = 1, .until = 2};
    CHECK(ft && pare_ft_run(ft, &ro, &err) == PARE_OK);
    m->blocks[1].up.w[5] = NAN;
    pare_model *copy = NULL;
    CHECK(pare_model_clone(m, &copy, &err) == PARE_OK);
    ro.until = 0;
    pare_status st = ft ? pare_ft_run(ft, &ro, &err) : PARE_EINVAL;
    CHECKF(st == PARE_EINVAL && strstr(err.msg, "step 3") && strstr(err.msg, "nan") && strstr(err.msg, "(step 2)") &&
               strstr(err.msg, ck),
           "%s", err.msg);
    long step = 0;
    CHECK(pare_ft_checkpoint_info(ck, &step, NULL, &err) == PARE_OK && step == 2);
    const char *what = "";
    m->blocks[1].up.w[5] = copy->blocks[1].up.w[5] = 0; /* NaN != NaN */
    CHECKF(same_model(m, copy, &what), "the failed step changed %s", what);
    CHECK(ft && pare_ft_steps_done(ft) == 2);
    pare_ft_free(ft);
    pare_model_free(copy);
    pare_tokens_close(&ts);
    pare_model_free(m);
}

/* ---------------------------------------------------------------- the CLI */

static json_t *run_json(const char *const *args, int *status, char **errout)
{
    char *out = NULL, *err = NULL;
    *status = run_pare(&out, &err, args);
    json_error_t je;
    json_t *j = *status == 0 ? json_loads(out, 0, &je) : NULL;
    if (!j)
        printf("  pare exited %d; stdout %.300s; stderr: %.600s\n", *status, out, err);
    free(out);
    if (errout)
        *errout = err;
    else
        free(err);
    return j;
}

/* `pare finetune` to the end equals --until 2 then --resume, byte for byte in the exported HF folder;
 * the folder loads; the guards on --out and on changed options; progress lines on stderr. */
static void test_lpaf_cli_finetune_resume(void)
{
    const char *d = fixture_hf_dir("fx", 0), *text = tmp_path("t.txt"), *o1 = tmp_path("o1"), *o2 = tmp_path("o2");
    fixture_write_pattern(text, TEXT, 3000);
    const char *base[] = {
        "finetune", "--model",    d,     "--data",         text,   "--steps",          "5", "--batch",
        "2",        "--seq",      "16",  "--lr",           "0.01", "--seed",           "3", "--prune",
        "movement", "--sparsity", "0.4", "--warmup-steps", "1",    "--cooldown-steps", "1", "--log-every",
        "1",        "--json"};
    enum { NB = sizeof base / sizeof base[0] };
    const char *args[NB + 6];
    memcpy(args, base, sizeof base);
    args[NB] = "--out", args[NB + 1] = o1, args[NB + 2] = NULL;
    int st;
    char *errout = NULL;
    json_t *j = run_json(args, &st, &errout);
    CHECKF(j && st == 0, "exit %d", st);
    CHECKF(errout && strstr(errout, "step 5/5") && strstr(errout, "tok/s") && strstr(errout, "ETA"), "stderr: %s",
           errout);
    free(errout);
    CHECK(j && fabs(json_real_value(json_object_get(j, "sparsity")) - 0.4) < 0.01);
    json_decref(j);
    args[NB + 1] = o2;
    args[NB + 2] = "--until", args[NB + 3] = "2", args[NB + 4] = NULL;
    char *out = NULL, *e2 = NULL;
    st = run_pare(&out, &e2, args);
    CHECKF(st == 0 && strstr(out, "stopped") && strstr(out, "step 2 of 5"), "exit %d: %s %s", st, out, e2);
    free(out);
    free(e2);
    /* running again without --resume is refused, and so is a changed option */
    args[NB + 2] = NULL;
    expect_pare_error(args, (const char *const[]){"--resume", "--overwrite", NULL}, 1);
    args[NB + 2] = "--resume", args[NB + 3] = "--lr", args[NB + 4] = "0.02", args[NB + 5] = NULL;
    expect_pare_error(args, (const char *const[]){"lr was", "0.02", NULL}, 1);
    args[NB + 3] = NULL;
    j = run_json(args, &st, NULL);
    CHECKF(j && st == 0, "resume: exit %d", st);
    json_decref(j);
    char p1[1300], p2[1300];
    snprintf(p1, sizeof p1, "%s/model/model.safetensors", o1);
    snprintf(p2, sizeof p2, "%s/model/model.safetensors", o2);
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = fixture_read(p1, &n1), *b2 = fixture_read(p2, &n2);
    CHECKF(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "resumed export differs from the uninterrupted one");
    free(b1);
    free(b2);
    snprintf(p1, sizeof p1, "%s/model", o1);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(p1, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    if (m) {
        size_t z = 0, all = 0;
        pare_linear *lin[64];
        int n = pare_model_linears(m, lin, 64);
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < (size_t)lin[i]->out * lin[i]->in; k++, all++)
                z += lin[i]->w[k] == 0.0f;
        CHECKF(fabs((double)z / all - 0.4) < 0.01, "exported model: %zu of %zu block weights zero", z, all);
    }
    pare_model_free(m);
    /* the train log has one line per step, the last one step 5 */
    snprintf(p1, sizeof p1, "%s/train.jsonl", o1);
    size_t nl = 0;
    char *log = (char *)fixture_read(p1, &nl);
    int lines = 0;
    for (size_t i = 0; log && i < nl; i++)
        lines += log[i] == '\n';
    CHECKF(lines == 5 && log && strstr(log, "\"step\": 5"), "train.jsonl: %d lines", lines);
    free(log);
}

/* A non-finite loss through the CLI: exit 2, one line saying where it stopped. */
static void test_lpaf_cli_nan(void)
{
    const char *d = fixture_hf_dir("fx", 1), *text = tmp_path("t.txt");
    fixture_write_pattern(text, TEXT, 3000);
    expect_pare_error((const char *const[]){"finetune",    "--model", d,      "--data",  text, "--out",
                                            tmp_path("o"), "--steps", "6",    "--batch", "2",  "--seq",
                                            "16",          "--lr",    "1e38", "--clip",  "0",  "--checkpoint-every",
                                            "1",           NULL},
                      (const char *const[]){"non-finite", "stopped", NULL}, 0);
}

/* `pare train` from flags: a new folder initialized, the loss falls on a repetitive text, the result
 * loads with the architecture asked for; bad architectures are refused. */
static void test_lpaf_cli_train_scratch(void)
{
    const char *d = fixture_hf_dir("fx", 0), *text = tmp_path("t.txt"), *o = tmp_path("o");
    fixture_write_pattern(text, TEXT, 4000);
    char tok[1300];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", d);
    int st;
    json_t *j = run_json(
        (const char *const[]){"train", "--tokenizer", tok,    "--dim",       "32", "--layers",  "2",  "--heads",
                              "4",     "--kv-heads",  "2",    "--ffn",       "64", "--max-pos", "64", "--data",
                              text,    "--out",       o,      "--steps",     "40", "--batch",   "4",  "--seq",
                              "24",    "--lr",        "0.01", "--lr-warmup", "4",  "--json",    NULL},
        &st, NULL);
    CHECKF(j && st == 0, "exit %d", st);
    json_decref(j);
    char p[1300];
    snprintf(p, sizeof p, "%s/train.jsonl", o);
    size_t n = 0;
    char *log = (char *)fixture_read(p, &n);
    double first = -1, last = -1;
    for (char *s = log; s && (s = strstr(s, "\"loss\": ")); s++) {
        double v = strtod(s + 8, NULL);
        if (first < 0)
            first = v;
        last = v;
    }
    free(log);
    printf("  pare train: loss %.3f at step 1, %.3f at step 40\n", first, last);
    CHECKF(first > 0 && last < 0.5 * first, "loss %g -> %g", first, last);
    snprintf(p, sizeof p, "%s/model", o);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(p, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    CHECK(m && m->cfg.dim == 32 && m->cfg.n_layers == 2 && m->cfg.n_kv_heads == 2 && m->cfg.ffn_dim == 64 &&
          m->cfg.vocab_size == fixture_tokenizer_vocab() && m->tok);
    pare_model_free(m);
    expect_pare_error((const char *const[]){"train", "--tokenizer", tok, "--dim", "30", "--layers", "2", "--heads", "4",
                                            "--data", text, "--out", tmp_path("o2"), NULL},
                      (const char *const[]){"--dim 30", NULL}, 1);
}

/* tests/lua/lpaf.lua: the Lua functions, their errors and journal rows; m:finetune gives the final loss
 * `pare finetune` gives with the same options. */
static void test_lpaf_lua_module(void)
{
    const char *d = fixture_hf_dir("fx", 0), *text = tmp_path("t.txt");
    fixture_write_pattern(text, TEXT, 3000);
    char set_text[1300];
    snprintf(set_text, sizeof set_text, "text=%s", text);
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "tests/lua/lpaf.lua", "--model", d, "--set", set_text, "--out",
                                            tmp_path("run"), "--quiet", NULL});
    CHECKF(st == 0 && out && strstr(out, "ok lpaf"), "exit %d\n%s%s", st, out ? out : "", err ? err : "");
    const char *fl = out ? strstr(out, "final_loss ") : NULL;
    double lua_loss = fl ? strtod(fl + 11, NULL) : -1;
    free(out);
    free(err);
    json_t *j = run_json((const char *const[]){"finetune", "--model", d, "--data", text, "--out", tmp_path("cli"),
                                               "--steps", "6", "--batch", "2", "--seq", "16", "--lr", "0.01", "--seed",
                                               "3", "--json", NULL},
                         &st, NULL);
    double cli_loss = j ? json_real_value(json_object_get(j, "final_loss")) : -2;
    CHECKF(lua_loss == cli_loss, "m:finetune final loss %.17g, pare finetune %.17g", lua_loss, cli_loss);
    json_decref(j);
}

/* presets/lpaf.lua runs every variant on a fixture (tiny budget): the result row's method, the
 * perplexity metric, LPAF's records (the sparsity-aware SVD's weighted error at most the plain SVD's);
 * presets/lpaf_rank.lua prints its table. */
static void test_lpaf_presets(void)
{
    const char *d = fixture_hf_dir("fx", 0), *text = tmp_path("t.txt");
    fixture_write_pattern(text, TEXT, 3000);
    char set_data[1300], set_eval[1300];
    snprintf(set_data, sizeof set_data, "data=%s", text);
    snprintf(set_eval, sizeof set_eval, "eval=%s", text);
    static const char *const variants[] = {"lpaf", "svd-ft", "movement", "lorap-ft", "auto-ft", "dense-ft"};
    static const char *const methods[] = {
        "ft-movement+sasvd+ft-mixed", "svd+ft", "ft-movement", "lorap+ft", "auto+ft", "ft"};
    for (int v = 0; v < 6; v++) {
        char set_var[64], dir[64];
        snprintf(set_var, sizeof set_var, "variant=%s", variants[v]);
        snprintf(dir, sizeof dir, "p%d", v);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err, (const char *const[]){"run",     "presets/lpaf.lua",
                                                            "--model", d,
                                                            "--set",   set_data,
                                                            "--set",   set_eval,
                                                            "--set",   set_var,
                                                            "--set",   "steps=4",
                                                            "--set",   "batch=2",
                                                            "--set",   "seq=16",
                                                            "--set",   "window=32",
                                                            "--set",   "calib_samples=4",
                                                            "--set",   "svd_iters=5",
                                                            "--out",   tmp_path(dir),
                                                            "--quiet", NULL});
        char path[1300];
        snprintf(path, sizeof path, "%s/run.json", tmp_path(dir));
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je), *rows = json_object_get(j, "results"), *last = NULL;
        for (size_t i = 0; i < json_array_size(rows); i++)
            if (json_array_size(json_object_get(json_array_get(rows, i), "metrics")) > 0)
                last = json_array_get(rows, i);
        const char *method = json_string_value(json_object_get(last, "method"));
        CHECKF(st == 0 && method && !strcmp(method, methods[v]), "%s: exit %d, method %s\n%s", variants[v], st,
               method ? method : "-", err);
        if (v == 0) {
            json_t *rec = json_object_get(j, "records");
            double we = json_real_value(json_object_get(rec, "weighted_error")),
                   wp = json_real_value(json_object_get(rec, "weighted_error_plain"));
            CHECKF(we > 0 && we <= wp && json_object_get(rec, "after_factorization") &&
                       json_object_get(rec, "plain_svd_after_factorization"),
                   "lpaf records: weighted error %g, plain %g", we, wp);
        }
        json_decref(j);
        free(out);
        free(err);
    }
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "presets/lpaf_rank.lua", "--model", d, "--set", set_data, "--set",
                                            "steps=4", "--set", "batch=2", "--set", "seq=16", "--set",
                                            "sparsities=0.5,0.8", "--out", tmp_path("rank"), "--quiet", NULL});
    CHECKF(st == 0 && out && strstr(out, "rank95/full") && strstr(out, "magnitude") && strstr(out, "dense"),
           "lpaf_rank: exit %d\n%s%s", st, out ? out : "", err ? err : "");
    for (int k = 0; k < 2; k++) { /* the rank plots are PNG files */
        char png[1300];
        snprintf(png, sizeof png, "%s/%s", tmp_path("rank"), k ? "effective_rank.png" : "rank95.png");
        FILE *f = fopen(png, "rb");
        unsigned char sig[8] = {0};
        size_t got = f ? fread(sig, 1, 8, f) : 0;
        if (f)
            fclose(f);
        CHECKF(got == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG file", png);
    }
    free(out);
    free(err);
}

/* ---------------------------------------------------------------- the model families */

#define FAMILIES_DIR "tests/data/families"
static const char *const FAMILY_FIXTURES[] = {"llama3", "llama-linear", "mistral", "qwen2", "qwen3", "phi3", "gemma3"};

/* Mean loss of the model on 4 fixed windows of 32 tokens of the stream (seed 99, not a training seed). */
static double windows_loss(pare_model *m, const pare_token_stream *ts)
{
    enum { B = 4, T = 32 };
    int32_t ids[B * T], tg[B * T];
    pare_acts *a = NULL;
    pare_error err = {0};
    double loss = NAN;
    if (pare_train_windows(ts, 99, 0, B, T, ids, &err) || pare_acts_alloc(m, B, T, 0, &a, &err) ||
        pare_forward(m, a, ids, B, T, PARE_LOGITS_ALL, &err)) {
        CHECKF(0, "%s: %s", m->path, err.msg);
    } else {
        pare_shift_targets(ids, B, T, tg);
        CHECKF(pare_loss_forward(m, a, tg, B, T, &loss, NULL, &err) == PARE_OK, "%s", err.msg);
    }
    pare_acts_free(a);
    return loss;
}

/* The family fixture `name` and a token stream of its eval.txt (by its own tokenizer.json). */
static pare_model *family_fixture(const char *name, pare_token_stream *ts)
{
    char dir[256], text[300];
    snprintf(dir, sizeof dir, "%s/%s", FAMILIES_DIR, name);
    snprintf(text, sizeof text, "%s/eval.txt", dir);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s: %s", dir, err.msg);
    if (m && pare_tokens_open(m, text, NULL, ts, &err) != PARE_OK) {
        CHECKF(0, "%s: %s", text, err.msg);
        pare_model_free(m);
        m = NULL;
    }
    return m;
}

/* Each family's fixture (made by transformers) fine-tuned for 6 steps on its eval.txt: every step's
 * loss finite, and the loss on fixed windows of that text lower afterwards. */
static void test_lpaf_families_finetune(void)
{
    if (!pare_is_dir(FAMILIES_DIR))
        SKIP("skipped: %s not present (made by tools/make_family_fixtures.py)", FAMILIES_DIR);
    for (size_t f = 0; f < sizeof FAMILY_FIXTURES / sizeof FAMILY_FIXTURES[0]; f++) {
        pare_token_stream ts;
        pare_model *m = family_fixture(FAMILY_FIXTURES[f], &ts);
        if (!m)
            continue;
        double before = windows_loss(m, &ts);
        pare_ft_opts o;
        small_opts(&o, 6);
        o.train.seq = 32;
        o.train.lr = (pare_lr_schedule){PARE_LR_COSINE, 3e-3, 1e-3, 1, 6};
        pare_ft *ft = NULL;
        pare_error err = {0};
        CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s: %s", FAMILY_FIXTURES[f], err.msg);
        for (int s = 0; s < 6 && ft && !harness_failed_now(); s++) {
            pare_ft_stats st;
            CHECKF(pare_ft_step(ft, NULL, &st, &err) == PARE_OK, "%s step %d: %s", FAMILY_FIXTURES[f], s, err.msg);
            CHECKF(isfinite(st.loss) && isfinite(st.grad_norm), "%s step %d: loss %g, gradient norm %g",
                   FAMILY_FIXTURES[f], s, st.loss, st.grad_norm);
        }
        double after = windows_loss(m, &ts);
        printf("  %-13s loss on fixed windows of eval.txt %.4f -> %.4f after 6 steps\n", FAMILY_FIXTURES[f], before,
               after);
        CHECKF(after < before, "%s: fine-tuning raised the loss %.6f -> %.6f", FAMILY_FIXTURES[f], before, after);
        pare_ft_free(ft);
        pare_tokens_close(&ts);
        pare_model_free(m);
    }
}

/* Movement pruning (LPAF's first-order path) on Gemma-3, the family with the most terms: the masks
 * reach the target sparsity on every block matrix, masked weights stay zero, the norms (q/k and the
 * sandwich norms) are trained but never masked, and every loss is finite. */
static void test_lpaf_families_movement(void)
{
    if (!pare_is_dir(FAMILIES_DIR))
        SKIP("skipped: %s not present (made by tools/make_family_fixtures.py)", FAMILIES_DIR);
    pare_token_stream ts;
    pare_model *m = family_fixture("gemma3", &ts);
    if (!m)
        return;
    CHECKF(m->blocks[0].q_norm_w && m->blocks[0].post_ffn_norm_w, "%s: no q norm or post-FFN norm", m->path);
    if (harness_failed_now()) {
        pare_tokens_close(&ts);
        pare_model_free(m);
        return;
    }
    float q_norm0 = m->blocks[0].q_norm_w[0], post0 = m->blocks[0].post_ffn_norm_w[0];
    pare_ft_opts o;
    small_opts(&o, 6);
    o.train.seq = 32;
    o.prune = 1;
    o.fop.method = PARE_FOP_MOVEMENT;
    o.fop.sparsity = 0.4;
    o.fop.warmup = 1;
    o.fop.cooldown = 1;
    pare_ft *ft = NULL;
    pare_error err = {0};
    CHECKF(pare_ft_new(m, &ts, &o, &ft, &err) == PARE_OK, "%s", err.msg);
    pare_ft_stats st = {0};
    for (int s = 0; s < 6 && ft && !harness_failed_now(); s++) {
        CHECKF(pare_ft_step(ft, NULL, &st, &err) == PARE_OK, "step %d: %s", s, err.msg);
        CHECKF(isfinite(st.loss), "step %d: loss %g", s, st.loss);
    }
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    for (int i = 0; i < n && i < 64; i++) {
        size_t nn = (size_t)lin[i]->out * lin[i]->in, c = masked_in(lin[i]);
        CHECKF(lin[i]->kind == PARE_LIN_MASKED && fabs((double)c / nn - 0.4) < 0.01, "%s: %zu of %zu masked",
               lin[i]->name, c, nn);
        for (size_t j = 0; lin[i]->mask && j < nn; j++)
            if (!lin[i]->mask[j] && lin[i]->w[j] != 0.0f) {
                CHECKF(0, "%s: masked weight %zu is %g", lin[i]->name, j, lin[i]->w[j]);
                break;
            }
    }
    CHECKF(m->blocks[0].q_norm_w[0] != q_norm0 && m->blocks[0].post_ffn_norm_w[0] != post0,
           "the q norm and the post-FFN norm were not trained");
    printf("  gemma3 movement pruning: sparsity %.3f after 6 steps, last loss %.4f\n", st.sparsity, st.loss);
    pare_ft_free(ft);
    pare_tokens_close(&ts);
    pare_model_free(m);
}

void suite_lpaf(void);
void suite_lpaf(void)
{
    RUN(test_lpaf_cubic_schedule);
    RUN(test_lpaf_windows_and_cache);
    RUN(test_lpaf_movement_scores);
    RUN(test_lpaf_masks_reach_sparsity);
    RUN(test_lpaf_sparse_svd);
    RUN(test_lpaf_mixed_rank_and_distill);
    RUN(test_lpaf_resume_exact);
    RUN(test_lpaf_balances_factors);
    RUN(test_lpaf_nan_stop);
    RUN(test_lpaf_cli_finetune_resume);
    RUN(test_lpaf_cli_nan);
    RUN(test_lpaf_cli_train_scratch);
    RUN(test_lpaf_lua_module);
    RUN(test_lpaf_presets);
    RUN(test_lpaf_families_finetune);
    RUN(test_lpaf_families_movement);
}

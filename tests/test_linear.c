/* Compressed linear layers: factorized, masked and sliced forms compute what their dense
 * equivalents compute, inside the full forward pass. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "core/forward.h"
#include "core/matmul.h"
#include "core/model.h"
#include "fixture.h"
#include "harness.h"

/* Full-rank factors from the SVD (A = U S, B = V^T) reproduce the model's logits. */
static void check_full_rank_factorization(int gpt2)
{
    pare_model *m = fixture_model(gpt2 ? "gpt2" : "llama", gpt2);
    if (!m)
        return;
    float *before = fixture_logits_of(m);
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    pare_error err = {0};
    for (int i = 0; i < n; i++) {
        pare_linear *l = lin[i];
        int M = l->out, N = l->in, k = M < N ? M : N;
        float *w = malloc((size_t)M * N * sizeof *w), *s = malloc((size_t)k * sizeof *s);
        float *u = malloc((size_t)M * k * sizeof *u), *vt = malloc((size_t)k * N * sizeof *vt);
        memcpy(w, l->w, (size_t)M * N * sizeof *w);
        CHECK(LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', M, N, w, N, s, u, k, vt, N) == 0);
        for (int r = 0; r < M; r++)
            for (int j = 0; j < k; j++)
                u[(size_t)r * k + j] *= s[j];
        CHECKF(pare_linear_set_factors(l, k, u, vt, &err) == PARE_OK, "%s", err.msg);
        CHECK(l->kind == PARE_LIN_FACTORED && pare_linear_params(l) == (size_t)k * (M + N) + (l->b ? (size_t)M : 0));
        free(w);
        free(s);
        free(u);
        free(vt);
    }
    float *after = fixture_logits_of(m);
    if (before && after) {
        double d = fixture_max_diff(before, after, (size_t)FIXTURE_T * m->cfg.vocab_size);
        CHECKF(d < 1e-4, "%s: full-rank factors change logits by %.3g", gpt2 ? "gpt2" : "llama", d);
    }
    free(before);
    free(after);
    pare_model_free(m);
}

static void test_full_rank_factorization_llama(void) { check_full_rank_factorization(0); }
static void test_full_rank_factorization_gpt2(void) { check_full_rank_factorization(1); }

/* A masked layer computes x (W with zeros)^T + b, checked against a plain double loop. */
static void test_masked_forward(void)
{
    pare_model *m = fixture_model("gpt2", 1);
    if (!m)
        return;
    pare_linear *l = &m->blocks[0].up;
    size_t n = (size_t)l->out * l->in;
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++)
        mask[i] = (i * 7919) % 3 != 0;
    float *orig = malloc(n * sizeof *orig);
    memcpy(orig, l->w, n * sizeof *orig);
    pare_error err = {0};
    CHECK(pare_linear_set_mask(l, mask, &err) == PARE_OK);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += mask[i];
    CHECK(pare_linear_params(l) == kept + (size_t)l->out);
    int rows = 5;
    float x[5 * 32], y[5 * 128];
    CHECK(l->in == 32 && l->out == 128);
    for (int i = 0; i < rows * l->in; i++)
        x[i] = sinf((float)i);
    float *scratch = malloc(sizeof(float) * 1024);
    pare_linear_forward(l, x, rows, y, scratch);
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < l->out; o++) {
            double acc = l->b[o];
            for (int j = 0; j < l->in; j++)
                acc += mask[(size_t)o * l->in + j] ? (double)orig[(size_t)o * l->in + j] * x[r * l->in + j] : 0.0;
            worst = fmax(worst, fabs(acc - y[r * l->out + o]));
        }
    CHECKF(worst < 1e-5, "masked forward off by %.3g", worst);
    free(scratch);
    free(mask);
    free(orig);
    pare_model_free(m);
}

/* FFN channels whose down-projection column is zero contribute nothing: slicing them out of
 * gate/up (rows) and down (columns) leaves the logits unchanged, with a narrower FFN. */
static void check_ffn_slicing(int gpt2)
{
    pare_model *m = fixture_model(gpt2 ? "gpt2" : "llama", gpt2);
    if (!m)
        return;
    pare_block *b = &m->blocks[1];
    int F = b->up.out, keep = 0;
    int32_t *kept = malloc((size_t)F * sizeof *kept);
    for (int f = 0; f < F; f++) {
        if (f % 3 == 1) {
            for (int r = 0; r < b->down.out; r++)
                b->down.w[(size_t)r * b->down.in + f] = 0.0f;
        } else {
            kept[keep++] = f;
        }
    }
    float *before = fixture_logits_of(m);
    pare_error err = {0};
    if (!gpt2)
        CHECK(pare_linear_keep_rows(&b->gate, kept, keep, &err) == PARE_OK);
    CHECK(pare_linear_keep_rows(&b->up, kept, keep, &err) == PARE_OK);
    CHECK(pare_linear_keep_cols(&b->down, kept, keep, &err) == PARE_OK);
    CHECK(b->up.out == keep && b->down.in == keep && b->up.kept_out[1] == kept[1]);
    float *after = fixture_logits_of(m);
    if (before && after) {
        double d = fixture_max_diff(before, after, (size_t)FIXTURE_T * m->cfg.vocab_size);
        CHECKF(d < 1e-5, "slicing changed logits by %.3g", d);
    }
    free(before);
    free(after);
    free(kept);
    pare_model_free(m);
}

static void test_ffn_slicing_llama(void) { check_ffn_slicing(0); }
static void test_ffn_slicing_gpt2(void) { check_ffn_slicing(1); }

/* Slicing a factorized layer keeps the matching rows/columns of its dense product; kept indices
 * compose so they always refer to the loaded shape. */
static void test_slice_factored_and_compose(void)
{
    pare_linear l = {0};
    snprintf(l.name, sizeof l.name, "test.proj");
    int M = 6, N = 5, k = 2;
    float A[12], B[10], bias[6], dense0[30], dense1[30];
    for (int i = 0; i < 12; i++)
        A[i] = (float)(i % 5) - 1.5f;
    for (int i = 0; i < 10; i++)
        B[i] = (float)(i % 3) + 0.25f;
    for (int i = 0; i < 6; i++)
        bias[i] = (float)i;
    float w[30] = {0};
    l.kind = PARE_LIN_DENSE;
    l.out = l.orig_out = M;
    l.in = l.orig_in = N;
    l.w = w;
    l.b = bias;
    pare_error err = {0};
    CHECK(pare_linear_set_factors(&l, k, A, B, &err) == PARE_OK);
    pare_linear_dense(&l, dense0);
    int32_t rows[3] = {4, 0, 2}, cols[2] = {3, 1}, rows2[2] = {2, 0};
    CHECK(pare_linear_keep_rows(&l, rows, 3, &err) == PARE_OK);
    CHECK(pare_linear_keep_cols(&l, cols, 2, &err) == PARE_OK);
    CHECK(pare_linear_keep_rows(&l, rows2, 2, &err) == PARE_OK); /* rows {2, 4} of the original */
    pare_linear_dense(&l, dense1);
    CHECK(l.out == 2 && l.in == 2 && l.kept_out[0] == 2 && l.kept_out[1] == 4 && l.kept_in[0] == 3);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 2; j++)
            CHECK(dense1[r * 2 + j] == dense0[l.kept_out[r] * N + l.kept_in[j]]);
    CHECK(l.b[0] == bias[2] && l.b[1] == bias[4]);
    CHECK(pare_linear_set_factors(&l, 3, A, B, &err) == PARE_EINVAL);
    CHECKF(strcmp(err.msg, "rank 3 exceeds min(2, 2) for test.proj") == 0, "%s", err.msg);
    CHECK(pare_linear_keep_rows(&l, (int32_t[]){7}, 1, &err) == PARE_EINVAL && strstr(err.msg, "test.proj"));
    pare_linear_release(&l);
}

/* Balancing factors (whitened ones carry ~100x more scale in A than in B) changes no logit bit,
 * brings every component's two norms within a factor 2, and a second balancing changes nothing.
 * Norms exactly a factor 2 apart are within and stay. */
static void test_balance_factors(void)
{
    pare_model *m = fixture_model("llama", 0);
    if (!m)
        return;
    pare_linear *lin[64];
    int n = pare_model_linears(m, lin, 64);
    for (int i = 0; i < n; i++)
        fixture_unbalanced_factors(lin[i]);
    float *before = fixture_logits_of(m);
    for (int i = 0; i < n; i++)
        pare_linear_balance_factors(lin[i]);
    float *after = fixture_logits_of(m);
    CHECK(before && after && memcmp(before, after, (size_t)FIXTURE_T * m->cfg.vocab_size * sizeof *after) == 0);
    double worst = 1;
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fixture_factor_imbalance(lin[i]));
    CHECKF(worst <= 2, "after balancing a component's norms are %.3g apart", worst);
    size_t na = (size_t)lin[0]->out * lin[0]->rank, nb = (size_t)lin[0]->rank * lin[0]->in;
    float *copy = malloc((na + nb) * sizeof *copy);
    memcpy(copy, lin[0]->A, na * sizeof *copy);
    memcpy(copy + na, lin[0]->B, nb * sizeof *copy);
    pare_linear_balance_factors(lin[0]);
    CHECK(memcmp(copy, lin[0]->A, na * sizeof *copy) == 0 && memcmp(copy + na, lin[0]->B, nb * sizeof *copy) == 0);
    free(copy);
    /* one component with ‖a‖ = 2 ‖b‖ exactly: within a factor 2, left alone */
    pare_linear t = {0};
    snprintf(t.name, sizeof t.name, "test.tie");
    float w[4] = {0}, a2[2] = {2, 0}, b2[2] = {0, 1};
    t.kind = PARE_LIN_DENSE;
    t.out = t.orig_out = t.in = t.orig_in = 2;
    t.w = w;
    pare_error err = {0};
    CHECK(pare_linear_set_factors(&t, 1, a2, b2, &err) == PARE_OK);
    for (int round = 0; round < 2; round++) {
        pare_linear_balance_factors(&t);
        CHECKF(t.A[0] == 2 && t.B[1] == 1, "a ratio of exactly 2 moved to a %g, b %g", t.A[0], t.B[1]);
    }
    pare_linear_release(&t);
    free(before);
    free(after);
    pare_model_free(m);
}

/* x rounded to BF16, nearest even (finite values), as the kernel's conversion does. */
static double to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* The BF16 kernel against double sums of the BF16-rounded operands, over shapes that exercise every
 * edge of its tiles and blocks (rows not a multiple of 12, columns not of 32, odd K, K across
 * k blocks, N across slabs), strided operands, and accumulation; nothing outside C's M x N is written. */
static void test_bf16_matmul(void)
{
    if (!pare_matmul_bf16_supported())
        SKIP("this CPU has no AVX512-BF16 instructions");
    const int shapes[][3] = {{1, 1, 1},     {13, 31, 7},   {64, 33, 600}, {100, 70, 513},
                             {200, 96, 64}, {97, 5, 1030}, {13, 4130, 9}};
    uint64_t state = 99;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], lda = K + 3, ldw = K + 1, ldc = N + 5;
        float *A = malloc((size_t)M * lda * sizeof *A), *W = malloc((size_t)N * ldw * sizeof *W);
        float *C = malloc((size_t)(M + 1) * ldc * sizeof *C), *C0 = malloc((size_t)(M + 1) * ldc * sizeof *C0);
        for (size_t i = 0; i < (size_t)M * lda; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            A[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5);
        }
        for (size_t i = 0; i < (size_t)N * ldw; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            W[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5) * 3;
        }
        for (size_t i = 0; i < (size_t)(M + 1) * ldc; i++)
            C0[i] = (float)(i % 7) - 3;
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            memcpy(C, C0, (size_t)(M + 1) * ldc * sizeof *C);
            pare_error err = {0};
            CHECKF(pare_matmul_nt_bf16(M, N, K, A, lda, W, ldw, accumulate, C, ldc, &err) == PARE_OK, "%s", err.msg);
            double worst = 0;
            int outside = 0;
            for (int i = 0; i <= M; i++)
                for (int j = 0; j < ldc; j++) {
                    size_t at = (size_t)i * ldc + j;
                    if (i == M || j >= N) {
                        outside += C[at] != C0[at];
                        continue;
                    }
                    double sum = accumulate ? C0[at] : 0, mag = fabs(sum);
                    for (int k = 0; k < K; k++) {
                        double p = to_bf16(A[(size_t)i * lda + k]) * to_bf16(W[(size_t)j * ldw + k]);
                        sum += p, mag += fabs(p);
                    }
                    /* fp32 accumulation of K terms: within K * 2^-24 of their magnitude, and then some */
                    worst = fmax(worst, fabs(C[at] - sum) / (mag * (K + 2) * 0x1p-24 + 1e-30));
                }
            CHECKF(worst <= 1, "%d x %d x %d (accumulate %d): an entry is %.3g fp32-sum bounds from the BF16 product",
                   M, N, K, accumulate, worst);
            CHECKF(!outside, "%d x %d x %d: %d entries outside C's %d x %d changed", M, N, K, outside, M, N);
        }
        free(A), free(W), free(C), free(C0);
    }
}

/* The BF16 mode in a whole forward (a batch of 128 rows: the kernel's, not sgemm's): logits close to
 * fp32's at BF16's precision, but not the same bits (the kernel ran); the mode then restored. */
static void test_bf16_forward(void)
{
    if (!pare_matmul_bf16_supported())
        SKIP("this CPU has no AVX512-BF16 instructions");
    pare_model *m = fixture_model("llama", 0);
    if (!m)
        return;
    int B = 2, T = 64;
    int32_t ids[128];
    for (int i = 0; i < B * T; i++)
        ids[i] = (i * 53 + 11) % m->cfg.vocab_size;
    size_t n = (size_t)B * T * m->cfg.vocab_size;
    float *logits[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    pare_acts *a = NULL;
    pare_error err = {0};
    CHECKF(pare_acts_alloc(m, B, T, 0, &a, &err) == PARE_OK, "%s", err.msg);
    for (int mode = 0; a && mode < 2; mode++) {
        CHECK(pare_set_matmul(mode ? PARE_MATMUL_BF16 : PARE_MATMUL_F32, "test", &err) == PARE_OK);
        CHECKF(pare_forward(m, a, ids, B, T, PARE_LOGITS_ALL, &err) == PARE_OK, "%s", err.msg);
        memcpy(logits[mode], a->logits, n * sizeof(float));
    }
    CHECK(pare_set_matmul(PARE_MATMUL_F32, "test", &err) == PARE_OK && pare_get_matmul() == PARE_MATMUL_F32);
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < n; i++)
        d2 += ((double)logits[1][i] - logits[0][i]) * ((double)logits[1][i] - logits[0][i]),
            r2 += (double)logits[0][i] * logits[0][i];
    /* BF16 keeps 8 significant bits (relative rounding 2^-9 per operand) */
    CHECKF(d2 > 0 && sqrt(d2 / r2) < 0x1p-5, "BF16 logits' relative RMS difference from fp32 is %.3g", sqrt(d2 / r2));
    pare_acts_free(a);
    free(logits[0]), free(logits[1]);
    pare_model_free(m);
}

void suite_linear(void);
void suite_linear(void)
{
    RUN(test_full_rank_factorization_llama);
    RUN(test_full_rank_factorization_gpt2);
    RUN(test_masked_forward);
    RUN(test_ffn_slicing_llama);
    RUN(test_ffn_slicing_gpt2);
    RUN(test_slice_factored_and_compose);
    RUN(test_balance_factors);
    RUN(test_bf16_matmul);
    RUN(test_bf16_forward);
}

/* Singular-value spectra: known spectra, weighted spectra against explicitly formed products and the
 * X·Wᵀ identity, randomized top-k against the full SVD on the reference models, statistics against
 * closed forms, errors, and the whole-model helper with progress and cancellation. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/rng.h"
#include "core/spectrum.h"
#include "core/svd.h"
#include "fixture.h"
#include "harness.h"

static int quick(void) { return getenv("PARE_TEST_QUICK") != NULL; }

/* ---- test-side random numbers and linear algebra ---- */

static uint64_t trng_state;

static double trng_uniform(void) { return pare_unit_double(pare_xorshift64star(&trng_state), 0.5); }

/* one value of each Box–Muller pair */
static double trng_gauss(void)
{
    double u1 = trng_uniform(), u2 = trng_uniform(), unused;
    return pare_box_muller(u1, u2, &unused);
}

/* Column-major [rows, cols] with orthonormal columns: QR of a Gaussian matrix. */
static double *random_orthonormal(int rows, int cols)
{
    double *Q = malloc((size_t)rows * cols * sizeof *Q), *tau = malloc((size_t)cols * sizeof *tau);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        Q[i] = trng_gauss();
    int ok = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, rows, cols, Q, rows, tau) == 0 &&
             LAPACKE_dorgqr(LAPACK_COL_MAJOR, rows, cols, cols, Q, rows, tau) == 0;
    CHECK(ok);
    free(tau);
    return Q;
}

/* Row-major fp32 W [m, n] = U·diag(sig)·Vᵀ with random orthonormal U [m, r], V [n, r], r = min(m, n). */
static float *matrix_with_spectrum(int m, int n, const double *sig)
{
    int r = m < n ? m : n;
    double *U = random_orthonormal(m, r), *V = random_orthonormal(n, r);
    float *W = malloc((size_t)m * n * sizeof *W);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double a = 0;
            for (int c = 0; c < r; c++)
                a += U[i + (size_t)c * m] * sig[c] * V[j + (size_t)c * n];
            W[(size_t)i * n + j] = (float)a;
        }
    free(U);
    free(V);
    return W;
}

static float *random_matrix(int m, int n, double scale)
{
    float *W = malloc((size_t)m * n * sizeof *W);
    for (size_t i = 0; i < (size_t)m * n; i++)
        W[i] = (float)(scale * trng_gauss());
    return W;
}

/* Reference singular values of a row-major double matrix (copied) with the test's own dgesdd call. */
static double *ref_svals(const double *A, int m, int n)
{
    int r = m < n ? m : n;
    double *c = malloc((size_t)m * n * sizeof *c), *s = malloc((size_t)r * sizeof *s);
    memcpy(c, A, (size_t)m * n * sizeof *c);
    /* row-major [m, n] is column-major [n, m], the transpose: same singular values */
    CHECK(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, m, c, n, s, NULL, 1, NULL, 1) == 0);
    free(c);
    return s;
}

/* The test's own lower Cholesky factor (row-major) of A + delta·I; returns 0 when A is not PD. */
static int ref_cholesky(const double *A, int n, double delta, double *L)
{
    memset(L, 0, (size_t)n * n * sizeof *L);
    for (int j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j] + delta;
        for (int k = 0; k < j; k++)
            d -= L[(size_t)j * n + k] * L[(size_t)j * n + k];
        if (!(d > 0))
            return 0;
        double ljj = sqrt(d);
        L[(size_t)j * n + j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double a = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++)
                a -= L[(size_t)i * n + k] * L[(size_t)j * n + k];
            L[(size_t)i * n + j] = a / ljj;
        }
    }
    return 1;
}

/* max_i |got_i − want_i| / (want_i + floor·want_0) */
static double max_rel(const double *got, const double *want, int r, double floor)
{
    double mx = 0;
    for (int i = 0; i < r; i++) {
        double d = fabs(got[i] - want[i]) / (want[i] + floor * want[0]);
        mx = d > mx ? d : mx;
    }
    return mx;
}

static pare_spectrum_opts method_opts(pare_svals_method method)
{
    pare_spectrum_opts o = pare_spectrum_defaults();
    o.method = method;
    return o;
}

/* ---- known spectra ---- */

static void check_known(int m, int n, double lo)
{
    int r = m < n ? m : n;
    double *sig = malloc((size_t)r * sizeof *sig), *s = malloc((size_t)r * sizeof *s);
    for (int i = 0; i < r; i++)
        sig[i] = pow(lo, (double)i / (r - 1)); /* 1 .. lo, geometric */
    float *W = matrix_with_spectrum(m, n, sig);
    for (int meth = 0; meth < 2; meth++) {
        pare_spectrum_opts o = method_opts(meth ? PARE_SVALS_GESDD : PARE_SVALS_GRAM);
        pare_error err = {0};
        pare_status st = pare_spectrum_values("known", W, m, n, &o, s, NULL, &err);
        CHECKF(st == PARE_OK, "%s", err.msg);
        double e = max_rel(s, sig, r, 0);
        printf("  [%d, %d] sigma 1..%g, %s: max relative error %.2g\n", m, n, lo, meth ? "gesdd" : "gram", e);
        CHECKF(e <= 1e-5, "[%d, %d] %s: max relative error %.3g > 1e-5", m, n, meth ? "gesdd" : "gram", e);
    }
    free(sig);
    free(s);
    free(W);
}

static void test_known_spectrum(void)
{
    trng_state = 0x1234567;
    check_known(120, 80, 1e-3); /* Gram Wᵀ·W */
    check_known(80, 120, 1e-3); /* Gram W·Wᵀ */
    check_known(64, 64, 1e-3);
}

/* The Gram path against the direct SVD of the same fp32 matrix: the documented accuracy
 * (relative error ~1e-16·(s_1/s_i)²) means agreement to 1e-6 down to s_i = 1e-4·s_1; below that the
 * Gram values lose relative precision quadratically, which is printed, not checked. */
static void test_gram_precision(void)
{
    trng_state = 0xabcdef;
    int m = 100, n = 90, r = 90;
    double *sig = malloc(r * sizeof *sig), *sg = malloc(r * sizeof *sg), *sd = malloc(r * sizeof *sd);
    for (int i = 0; i < r; i++)
        sig[i] = pow(1e-7, (double)i / (r - 1));
    float *W = matrix_with_spectrum(m, n, sig);
    pare_error err = {0};
    pare_spectrum_opts og = method_opts(PARE_SVALS_GRAM), od = method_opts(PARE_SVALS_GESDD);
    CHECKF(pare_spectrum_values("steep", W, m, n, &og, sg, NULL, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_spectrum_values("steep", W, m, n, &od, sd, NULL, &err) == PARE_OK, "%s", err.msg);
    double head = 0, tail = 0;
    for (int i = 0; i < r; i++) {
        double d = fabs(sg[i] - sd[i]) / sd[i];
        if (sd[i] >= 1e-4 * sd[0])
            head = d > head ? d : head;
        else if (sd[i] >= 1e-6 * sd[0])
            tail = d > tail ? d : tail;
    }
    printf("  gram vs gesdd: max relative difference %.2g for s >= 1e-4 s1, %.2g for 1e-6..1e-4 s1\n", head, tail);
    CHECKF(head <= 1e-6, "gram vs gesdd above 1e-4 s1: %.3g > 1e-6", head);
    free(sig);
    free(sg);
    free(sd);
    free(W);
}

/* ---- weighted spectra ---- */

static void test_act_weighted(void)
{
    trng_state = 42;
    int m = 60, n = 90;
    float *W = random_matrix(m, n, 0.1);
    double *d = malloc(n * sizeof *d), *scale = malloc(n * sizeof *scale);
    double mx = 0;
    for (int j = 0; j < n; j++) {
        d[j] = 0.1 + 3 * trng_uniform();
        if (j % 17 == 3)
            d[j] *= 40; /* a few outlier features */
        mx = d[j] > mx ? d[j] : mx;
    }
    d[5] = 0;
    d[7] = -1;
    for (int j = 0; j < n; j++)
        scale[j] = d[j] > 0 ? d[j] : PARE_ACT_EPS * mx;
    double *P = malloc((size_t)m * n * sizeof *P);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            P[(size_t)i * n + j] = (double)W[(size_t)i * n + j] * scale[j];
    double *want = ref_svals(P, m, n), *s = malloc(m * sizeof *s);
    for (int meth = 0; meth < 2; meth++) {
        pare_spectrum_opts o = method_opts(meth ? PARE_SVALS_GESDD : PARE_SVALS_GRAM);
        o.weighting = PARE_WEIGHT_ACT;
        o.act_norm = d;
        o.act_len = n;
        pare_spectrum_info info;
        pare_error err = {0};
        CHECKF(pare_spectrum_values("act", W, m, n, &o, s, &info, &err) == PARE_OK, "%s", err.msg);
        double e = max_rel(s, want, m, 1e-6);
        CHECKF(e <= 1e-9, "act-weighted (%s) vs W·diag(d): %.3g", meth ? "gesdd" : "gram", e);
        CHECKF(info.act_floored == 2, "floored %d, want 2", info.act_floored);
    }
    free(W);
    free(d);
    free(scale);
    free(P);
    free(want);
    free(s);
}

/* X [N, n] row-major with uneven column scales; G = XᵀX. */
static double *random_inputs(int N, int n, int zero_col)
{
    double *X = malloc((size_t)N * n * sizeof *X);
    for (int t = 0; t < N; t++)
        for (int j = 0; j < n; j++)
            X[(size_t)t * n + j] = j == zero_col ? 0.0 : trng_gauss() * (1 + (j % 7 == 0 ? 20 : j % 3));
    return X;
}

static double *gram_of(const double *X, int N, int n)
{
    double *G = calloc((size_t)n * n, sizeof *G);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                G[(size_t)i * n + j] += X[(size_t)t * n + i] * X[(size_t)t * n + j];
    return G;
}

/* σ([X; sqrt(delta)·I]·Wᵀ): equals σ(W·L) for L·Lᵀ = XᵀX + delta·I. */
static double *svals_xwt(const double *X, int N, int n, double delta, const float *W, int m)
{
    int rows = N + n;
    double *A = malloc((size_t)rows * m * sizeof *A);
    for (int t = 0; t < rows; t++)
        for (int o = 0; o < m; o++) {
            double a = 0;
            if (t < N)
                for (int j = 0; j < n; j++)
                    a += X[(size_t)t * n + j] * W[(size_t)o * n + j];
            else
                a = sqrt(delta) * W[(size_t)o * n + (t - N)];
            A[(size_t)t * m + o] = a;
        }
    double *s = ref_svals(A, rows, m);
    free(A);
    return s;
}

/* σ(W·L) with the test's own Cholesky of G + delta·I. */
static double *svals_wl(const double *G, int n, double delta, const float *W, int m)
{
    double *L = malloc((size_t)n * n * sizeof *L), *P = calloc((size_t)m * n, sizeof *P);
    CHECK(ref_cholesky(G, n, delta, L));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double a = 0;
            for (int k = j; k < n; k++)
                a += W[(size_t)i * n + k] * L[(size_t)k * n + j];
            P[(size_t)i * n + j] = a;
        }
    double *s = ref_svals(P, m, n);
    free(L);
    free(P);
    return s;
}

static double mean_diag(const double *G, int n)
{
    double t = 0;
    for (int i = 0; i < n; i++)
        t += G[(size_t)i * n + i];
    return t / n;
}

static void test_whitened(void)
{
    trng_state = 7;
    int N = 200, n = 48, m = 40;
    double *X = random_inputs(N, n, -1), *G = gram_of(X, N, n);
    float *W = random_matrix(m, n, 0.2);
    double delta = PARE_WHITEN_DAMPING * mean_diag(G, n);
    double *want_l = svals_wl(G, n, delta, W, m), *want_x = svals_xwt(X, N, n, delta, W, m);
    double *s = malloc(m * sizeof *s);
    for (int meth = 0; meth < 2; meth++) {
        pare_spectrum_opts o = method_opts(meth ? PARE_SVALS_GESDD : PARE_SVALS_GRAM);
        o.weighting = PARE_WEIGHT_WHITEN;
        o.gram = G;
        o.gram_dim = n;
        pare_spectrum_info info;
        pare_error err = {0};
        CHECKF(pare_spectrum_values("whiten", W, m, n, &o, s, &info, &err) == PARE_OK, "%s", err.msg);
        double el = max_rel(s, want_l, m, 1e-6), ex = max_rel(s, want_x, m, 1e-6);
        CHECKF(el <= 1e-9, "whitened (%s) vs W·L: %.3g", meth ? "gesdd" : "gram", el);
        CHECKF(ex <= 1e-9, "whitened (%s) vs X·Wᵀ: %.3g", meth ? "gesdd" : "gram", ex);
        CHECKF(info.damping == PARE_WHITEN_DAMPING && info.damping_retries == 0, "damping %g, %d retries", info.damping,
               info.damping_retries);
        CHECKF(fabs(info.damping_abs - delta) <= 1e-12 * delta, "damping_abs %g vs %g", info.damping_abs, delta);
    }
    free(X);
    free(G);
    free(W);
    free(want_l);
    free(want_x);
    free(s);
}

static void test_whiten_damping(void)
{
    trng_state = 99;
    int N = 20, n = 48, m = 30; /* rank(X) <= 20 < 48, and column 3 is zero */
    double *X = random_inputs(N, n, 3), *G = gram_of(X, N, n);
    float *W = random_matrix(m, n, 0.2);
    double *s = malloc(m * sizeof *s), md = mean_diag(G, n);
    pare_spectrum_opts o = pare_spectrum_defaults();
    o.method = PARE_SVALS_GESDD;
    o.weighting = PARE_WEIGHT_WHITEN;
    o.gram = G;
    o.gram_dim = n;
    o.damping = 0; /* undamped first: must fail and retry */
    pare_spectrum_info info;
    pare_error err = {0};
    CHECKF(pare_spectrum_values("deficient", W, m, n, &o, s, &info, &err) == PARE_OK, "%s", err.msg);
    CHECKF(info.damping > 0 && info.damping_retries >= 1, "damping %g after %d retries", info.damping,
           info.damping_retries);
    printf("  rank-deficient Gram: damping %g x mean diagonal after %d retries\n", info.damping, info.damping_retries);
    if (info.damping > 0) {
        double *want = svals_xwt(X, N, n, info.damping * md, W, m);
        double e = max_rel(s, want, m, 1e-6);
        CHECKF(e <= 1e-8, "damped whitened vs [X; sqrt(delta) I]·Wᵀ: %.3g", e);
        free(want);
    }

    /* An indefinite Gram: G − 0.05·mean·I needs λ = 0.1 (default 0.01 fails once). */
    double *Gi = malloc((size_t)n * n * sizeof *Gi);
    memcpy(Gi, G, (size_t)n * n * sizeof *Gi);
    for (int i = 0; i < n; i++)
        Gi[(size_t)i * n + i] -= 0.05 * md;
    o = pare_spectrum_defaults();
    o.weighting = PARE_WEIGHT_WHITEN;
    o.gram = Gi;
    o.gram_dim = n;
    CHECKF(pare_spectrum_values("indefinite", W, m, n, &o, s, &info, &err) == PARE_OK, "%s", err.msg);
    CHECKF(fabs(info.damping - 0.1) < 1e-12 && info.damping_retries == 1, "damping %g after %d retries", info.damping,
           info.damping_retries);

    /* Hopeless: diag(10, −5, 1, ...) stays indefinite up to λ = 1. */
    int k = 4;
    double Gh[16] = {10, 0, 0, 0, 0, -5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    float Wh[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    double sh[2];
    o.gram = Gh;
    o.gram_dim = k;
    pare_status st = pare_spectrum_values("hopeless", Wh, 2, k, &o, sh, &info, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, "hopeless") && strstr(err.msg, "not positive definite"), "%d: %s", st,
           err.msg);
    free(X);
    free(G);
    free(Gi);
    free(W);
    free(s);
}

/* ---- randomized top-k on the reference models ---- */

static void check_rsvd_model(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(shared_path(rel), NULL, &m, &err) == PARE_OK, "loading %s: %s", name, err.msg);
    if (!m)
        return;
    pare_linear *lins[256];
    int count = pare_model_linears(m, lins, 256);
    CHECK(count > 0 && count <= 256);
    int step = quick() ? 5 : 1; /* quick: every fifth matrix, which visits every kind */
    double worst[2] = {0, 0};
    const char *worst_name[2] = {"", ""};
    int ks[2] = {32, 64}, checked = 0, iters[2] = {0, 0};
    for (int i = 0; i < count && i < 256; i += step) {
        pare_linear *l = lins[i];
        int r = l->out < l->in ? l->out : l->in;
        double *full = malloc(r * sizeof *full);
        pare_spectrum_opts o = method_opts(PARE_SVALS_GESDD);
        CHECKF(pare_spectrum_values(l->name, l->w, l->out, l->in, &o, full, NULL, &err) == PARE_OK, "%s", err.msg);
        for (int t = 0; t < 2; t++) {
            pare_svd svd;
            pare_status st = pare_svd_topk(l->name, l->w, l->out, l->in, ks[t], NULL, &svd, &err);
            CHECKF(st == PARE_OK, "%s", err.msg);
            if (st)
                continue;
            double e = max_rel(svd.s, full, ks[t], 0);
            iters[t] = svd.power_iters > iters[t] ? svd.power_iters : iters[t];
            if (e > worst[t]) {
                worst[t] = e;
                worst_name[t] = l->name;
            }
            CHECKF(e <= 1e-3, "%s: top-%d randomized vs full SVD: max relative error %.3g > 1e-3", l->name, ks[t], e);
            pare_svd_free(&svd);
        }
        free(full);
        checked++;
    }
    printf("  %s: %d matrices, worst relative error top-32 %.2g (%s), top-64 %.2g (%s); at most %d / %d power "
           "iterations\n",
           name, checked, worst[0], worst_name[0], worst[1], worst_name[1], iters[0], iters[1]);
    pare_model_free(m);
}

static void test_rsvd_llama(void)
{
    NEED_SHARED();
    check_rsvd_model("ref-llama-12m");
}
static void test_rsvd_gpt2(void)
{
    NEED_SHARED();
    check_rsvd_model("ref-gpt2-6m");
}

/* Triplets u [m, k], s[k], vt [k, n] of W: orthonormal, and W − U·S·Vᵀ has the Frobenius norm the
 * full spectrum predicts (to 1e-3 relative, plus abs_floor: what fp32 factors leave at full rank). label
 * names them in failures. */
static void check_triplets(const float *W, int m, int n, int k, const float *u, const double *s, const float *vt,
                           const double *full, double abs_floor, const char *label)
{
    double orth = 0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double du = 0, dv = 0;
            for (int i = 0; i < m; i++)
                du += (double)u[(size_t)i * k + a] * u[(size_t)i * k + b];
            for (int j = 0; j < n; j++)
                dv += (double)vt[(size_t)a * n + j] * vt[(size_t)b * n + j];
            double want = a == b;
            orth = fmax(orth, fmax(fabs(du - want), fabs(dv - want)));
        }
    CHECKF(orth <= 1e-4, "%s factors: max |UᵀU − I|, |VᵀV − I| = %.3g", label, orth);
    double res = 0, tot = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double a = 0;
            for (int c = 0; c < k; c++)
                a += (double)u[(size_t)i * k + c] * s[c] * vt[(size_t)c * n + j];
            double w = W[(size_t)i * n + j];
            res += (w - a) * (w - a);
            tot += w * w;
        }
    int r = m < n ? m : n;
    double want = pare_spectrum_trunc_error(full, r, k), got = sqrt(res / tot);
    CHECKF(fabs(got - want) <= 1e-3 * want + abs_floor, "%s: ‖W − U S Vᵀ‖/‖W‖ = %.6g, spectrum says %.6g", label, got,
           want);
}

/* pare_svd_topk's factors (exact: the measured route of svd.h; else randomized) through check_triplets */
static void check_factors(const float *W, int m, int n, int k, int exact, const double *full)
{
    pare_svd_opts o = pare_svd_defaults();
    o.exact = exact;
    o.want_u = o.want_vt = 1;
    pare_svd svd;
    pare_error err = {0};
    pare_status st = pare_svd_topk("factors", W, m, n, k, &o, &svd, &err);
    CHECKF(st == PARE_OK, "%s", err.msg);
    if (st)
        return;
    CHECK(svd.m == m && svd.n == n && svd.k == k && svd.u && svd.vt);
    check_triplets(W, m, n, k, svd.u, svd.s, svd.vt, full, 1e-6, exact ? "exact" : "randomized");
    if (exact)
        CHECKF(max_rel(svd.s, full, k, 0) <= 1e-12, "exact top-%d values differ from the full spectrum", k);
    pare_svd_free(&svd);
}

/* Every route of svd.h on a known spectrum, tall and wide: all values (where the route gives them)
 * and the top-k triplets (orthonormal, optimal truncation error, values), at k < r and k = r; and
 * the errors: a factors-only route asked for values, a rank out of range. */
static void test_svd_routes(void)
{
    trng_state = 77;
    int r = 40;
    double *sig = malloc(r * sizeof *sig), s[40];
    /* distinct, gapped values from 4 down to 0.1: every singular vector is well defined, and the
     * fp32 Gram keeps ε_s·(s_1/s_r)² ≈ 1e-4 */
    for (int i = 0; i < r; i++)
        sig[i] = 4.0 * pow(0.025, i / (r - 1.0));
    const int shapes[2][2] = {{64, 40}, {40, 64}};
    for (int sh = 0; sh < 2; sh++) {
        int m = shapes[sh][0], n = shapes[sh][1];
        float *W = matrix_with_spectrum(m, n, sig);
        double *M = malloc((size_t)m * n * sizeof *M);
        float *u = malloc((size_t)m * r * sizeof *u), *vt = malloc((size_t)r * n * sizeof *vt);
        pare_error err = {0};
        for (int route = PARE_SVD_AUTO; route < PARE_SVD_ROUTES; route++) {
            const char *name = pare_svd_route_name(route);
            /* fp32 arithmetic: ~1e-7 relative on the gesdd/gesvd values, squared condition in the Gram */
            int fp32_direct = route == PARE_SVD_SGESDD || route == PARE_SVD_SGESVD;
            double tol = route == PARE_SVD_SGRAM ? 2e-3 : fp32_direct ? 1e-5 : 1e-6;
            for (size_t i = 0; i < (size_t)m * n; i++)
                M[i] = W[i];
            pare_status st = pare_svd_values("routes", M, m, n, route, s, &err);
            if (route == PARE_SVD_DGRAM_TOPK) {
                CHECKF(st == PARE_EINVAL && strstr(err.msg, "dgram-topk") && strstr(err.msg, "routes"),
                       "values by a factors-only route: status %d, '%s'", st, err.msg);
            } else {
                CHECKF(st == PARE_OK, "%s values [%d, %d]: %s", name, m, n, err.msg);
                double e = max_rel(s, sig, r, 0);
                CHECKF(e <= tol, "%s values [%d, %d]: max rel error %.3g (tolerance %.0e)", name, m, n, e, tol);
            }
            for (int k = 7; k <= r; k += r - 7) {
                char label[64];
                snprintf(label, sizeof label, "%s [%d, %d] rank %d", name, m, n, k);
                memset(s, 0, sizeof s);
                st = pare_svd_truncated("routes", W, m, n, k, route, s, u, vt, &err);
                CHECKF(st == PARE_OK, "%s: %s", label, err.msg);
                if (st)
                    continue;
                check_triplets(W, m, n, k, u, s, vt, sig, fp32_direct ? 1e-5 : 1e-6, label);
                double e = max_rel(s, sig, k, 0);
                CHECKF(e <= 1e-5, "%s: top values max rel error %.3g", label, e);
                for (int i = 1; i < k; i++)
                    CHECKF(s[i] <= s[i - 1], "%s: values not descending at %d", label, i);
            }
        }
        for (int k = 0; k <= r + 1; k += r + 1) {
            pare_status st = pare_svd_truncated("q_proj", W, m, n, k, PARE_SVD_AUTO, s, u, vt, &err);
            CHECKF(st == PARE_EINVAL && strstr(err.msg, "q_proj") && strstr(err.msg, "rank"),
                   "rank %d of [%d, %d]: status %d, '%s'", k, m, n, st, err.msg);
        }
        free(W), free(M), free(u), free(vt);
    }
    free(sig);
}

static void test_svd_factors(void)
{
    trng_state = 2024;
    int m = 96, n = 70, r = 70, k = 12;
    double *sig = malloc(r * sizeof *sig), *full = malloc(r * sizeof *full);
    for (int i = 0; i < r; i++)
        sig[i] = i < 20 ? 5.0 / (1 + i) : 0.01 / (1 + i);
    float *W = matrix_with_spectrum(m, n, sig);
    pare_spectrum_opts o = method_opts(PARE_SVALS_GESDD);
    pare_error err = {0};
    CHECKF(pare_spectrum_values("factors", W, m, n, &o, full, NULL, &err) == PARE_OK, "%s", err.msg);
    check_factors(W, m, n, k, 0, full);
    check_factors(W, m, n, k, 1, full);
    /* also a wide matrix, and k = min(m, n) */
    float *Wt = random_matrix(20, 50, 1.0);
    double fw[20];
    CHECKF(pare_spectrum_values("wide", Wt, 20, 50, &o, fw, NULL, &err) == PARE_OK, "%s", err.msg);
    check_factors(Wt, 20, 50, 20, 0, fw);
    check_factors(Wt, 20, 50, 5, 1, fw);
    /* classic fixed HMT (p = 10, q = 2) on this clearly decaying spectrum; Ritz values never exceed
     * the true ones */
    pare_svd_opts co = pare_svd_defaults();
    co.oversample = 10;
    co.power_iters = 2;
    pare_svd cl;
    CHECKF(pare_svd_topk("classic", W, m, n, k, &co, &cl, &err) == PARE_OK, "%s", err.msg);
    if (cl.s) {
        CHECK(cl.power_iters == 2 && cl.oversample == 10);
        double e = max_rel(cl.s, full, k, 0);
        CHECKF(e <= 1e-3, "classic p = 10, q = 2: %.3g", e);
        for (int i = 0; i < k; i++)
            CHECKF(cl.s[i] <= full[i] * (1 + 1e-6), "Ritz value %d above the true one", i);
    }
    pare_svd_free(&cl);
    /* the same seed gives the same values */
    pare_svd a, b;
    CHECK(pare_svd_topk("seed", W, m, n, k, NULL, &a, &err) == PARE_OK);
    CHECK(pare_svd_topk("seed", W, m, n, k, NULL, &b, &err) == PARE_OK);
    CHECK(a.s && b.s && memcmp(a.s, b.s, k * sizeof *a.s) == 0);
    pare_svd_free(&a);
    pare_svd_free(&b);
    free(sig);
    free(full);
    free(W);
    free(Wt);
}

/* ---- statistics ---- */

/* smallest k in 1..r with k/r >= thr (flat spectrum), computed with integers where possible */
static int flat_rank(int r, double thr)
{
    for (int k = 1; k <= r; k++)
        if ((double)k >= thr * r - 1e-9)
            return k;
    return r;
}

static void test_stats_closed_forms(void)
{
    pare_spectrum_stats st;
    pare_error err = {0};
    /* flat */
    int r = 50, m = 50, n = 70;
    double s[200], e[200];
    for (int i = 0; i < r; i++)
        s[i] = 2.0;
    CHECKF(pare_spectrum_stats_compute(s, r, m, n, &st, &err) == PARE_OK, "%s", err.msg);
    CHECK(fabs(st.stable_rank - r) < 1e-9 && fabs(st.effective_rank - r) < 1e-9);
    CHECKF(st.rank90 == flat_rank(r, 0.9) && st.rank95 == flat_rank(r, 0.95) && st.rank99 == flat_rank(r, 0.99),
           "flat ranks %d %d %d", st.rank90, st.rank95, st.rank99);
    CHECK(st.rank90 == 45 && st.rank95 == 48 && st.rank99 == 50);
    CHECK(fabs(st.sum_sq - 4.0 * r) < 1e-9 && st.s_max == 2.0 && st.r == r && st.m == m && st.n == n);
    CHECK(st.break_even == (m * n) / (m + n));
    pare_spectrum_energy(s, r, e);
    double emax = 0;
    for (int i = 0; i < r; i++)
        emax = fmax(emax, fabs(e[i] - (double)(i + 1) / r));
    CHECKF(emax < 1e-12, "flat energy curve off by %.3g", emax);
    CHECK(fabs(pare_spectrum_trunc_error(s, r, 10) - sqrt(40.0 / 50.0)) < 1e-12);
    CHECK(pare_spectrum_trunc_error(s, r, r) == 0 && pare_spectrum_trunc_error(s, r, 0) == 1);
    /* flat r = 10: 9 of 10 values are exactly 90% */
    CHECK(pare_spectrum_energy_rank(s, 10, 0.9) == 9);

    /* a single nonzero value */
    memset(s, 0, sizeof s);
    s[0] = 3;
    CHECKF(pare_spectrum_stats_compute(s, 40, 40, 40, &st, &err) == PARE_OK, "%s", err.msg);
    CHECK(fabs(st.stable_rank - 1) < 1e-12 && fabs(st.effective_rank - 1) < 1e-12);
    CHECK(st.rank90 == 1 && st.rank95 == 1 && st.rank99 == 1);
    CHECK(pare_spectrum_trunc_error(s, 40, 1) == 0);

    /* geometric s_i = q^i, i = 0..r-1 */
    double q = 0.93;
    r = 120;
    for (int i = 0; i < r; i++)
        s[i] = pow(q, i);
    CHECKF(pare_spectrum_stats_compute(s, r, 200, 150, &st, &err) == PARE_OK, "%s", err.msg);
    double q2 = q * q, qr = pow(q, r), q2r = pow(q2, r);
    double stable = (1 - q2r) / (1 - q2);
    double c = (1 - q) / (1 - qr), mean_i = q / (1 - q) - r * qr / (1 - qr);
    double erank = exp(-log(c) - log(q) * mean_i);
    CHECKF(fabs(st.stable_rank - stable) < 1e-9 * stable, "geometric stable rank %.12g vs %.12g", st.stable_rank,
           stable);
    CHECKF(fabs(st.effective_rank - erank) < 1e-9 * erank, "geometric effective rank %.12g vs %.12g", st.effective_rank,
           erank);
    double thr[3] = {0.90, 0.95, 0.99};
    int got[3] = {st.rank90, st.rank95, st.rank99};
    for (int t = 0; t < 3; t++) {
        int want = (int)ceil(log(1 - thr[t] * (1 - q2r)) / log(q2) - 1e-9);
        CHECKF(got[t] == want, "geometric %.0f%% rank %d, closed form %d", thr[t] * 100, got[t], want);
    }
    for (int k = 0; k <= r; k += 17) {
        double want = k >= r ? 0 : sqrt((pow(q2, k) - q2r) / (1 - q2r));
        CHECKF(fabs(pare_spectrum_trunc_error(s, r, k) - want) < 1e-12, "truncation error at %d", k);
    }

    /* break-even: the largest k with k·(m + n) <= m·n; lowrank params */
    int shapes[][2] = {{384, 384}, {1024, 384}, {384, 1024}, {128, 384}, {2, 2}, {1, 1}, {4096, 11008}, {7, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int a = shapes[i][0], b = shapes[i][1], want = 0;
        while ((size_t)(want + 1) * (size_t)(a + b) <= (size_t)a * b)
            want++;
        CHECKF(pare_break_even_rank(a, b) == want, "break-even [%d, %d]: %d vs %d", a, b, pare_break_even_rank(a, b),
               want);
        CHECK(pare_lowrank_params(a, b, want) <= (size_t)a * b);
        CHECK(pare_lowrank_params(a, b, want + 1) > (size_t)a * b);
    }
    CHECK(pare_break_even_rank(384, 384) == 192 && pare_break_even_rank(1024, 384) == 279);
    CHECK(pare_lowrank_params(1024, 384, 10) == 14080);

    /* a zero spectrum and bad input */
    memset(s, 0, sizeof s);
    CHECKF(pare_spectrum_stats_compute(s, 8, 8, 8, &st, &err) == PARE_OK, "%s", err.msg);
    CHECK(st.rank90 == 0 && st.stable_rank == 0 && st.effective_rank == 0);
    s[0] = 1;
    s[1] = 2;
    CHECK(pare_spectrum_stats_compute(s, 8, 8, 8, &st, &err) == PARE_EINVAL && strstr(err.msg, "descending"));
    CHECK(pare_spectrum_stats_compute(s, 9, 8, 8, &st, &err) == PARE_EINVAL);
}

/* ---- errors ---- */

static void test_errors(void)
{
    trng_state = 5;
    const char *name = "model.layers.0.self_attn.q_proj";
    int m = 384, n = 384;
    float *W = random_matrix(m, n, 0.05);
    double *s = malloc(n * sizeof *s);
    pare_error err = {0};
    pare_svd svd;

    pare_status st = pare_svd_topk(name, W, m, n, 900, NULL, &svd, &err);
    CHECKF(st == PARE_EINVAL &&
               strcmp(err.msg, "rank 900 exceeds min(384, 384) for model.layers.0.self_attn.q_proj") == 0,
           "%d: %s", st, err.msg);
    CHECK(svd.s == NULL && svd.u == NULL);
    CHECK(pare_svd_topk(name, W, m, n, 0, NULL, &svd, &err) == PARE_EINVAL);

    W[2 * n + 5] = NAN;
    st = pare_spectrum_values(name, W, m, n, NULL, s, NULL, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, name) && strstr(err.msg, "[2, 5]") && strstr(err.msg, "nan"), "%s",
           err.msg);
    st = pare_svd_topk(name, W, m, n, 8, NULL, &svd, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, name) && strstr(err.msg, "[2, 5]"), "%s", err.msg);
    W[2 * n + 5] = 0;
    W[(size_t)(m - 1) * n + 1] = -INFINITY;
    st = pare_spectrum_values(name, W, m, n, NULL, s, NULL, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, "[383, 1]") && strstr(err.msg, "-inf"), "%s", err.msg);
    W[(size_t)(m - 1) * n + 1] = 0;

    /* statistics of the wrong length */
    double *d = calloc(n, sizeof *d);
    for (int j = 0; j < n; j++)
        d[j] = 1;
    pare_spectrum_opts o = pare_spectrum_defaults();
    o.weighting = PARE_WEIGHT_ACT;
    o.act_norm = d;
    o.act_len = n - 1;
    st = pare_spectrum_values(name, W, m, n, &o, s, NULL, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, name) && strstr(err.msg, "383 entries") && strstr(err.msg, "384 inputs"),
           "%s", err.msg);
    o.act_len = n;
    d[3] = NAN;
    st = pare_spectrum_values(name, W, m, n, &o, s, NULL, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, "activation norm 3"), "%s", err.msg);
    o = pare_spectrum_defaults();
    o.weighting = PARE_WEIGHT_WHITEN;
    o.gram = d;
    o.gram_dim = 1;
    st = pare_spectrum_values(name, W, m, n, &o, s, NULL, &err);
    CHECKF(st == PARE_EINVAL && strstr(err.msg, "[1, 1]") && strstr(err.msg, name), "%s", err.msg);
    st = pare_spectrum_values(name, W, 0, n, NULL, s, NULL, &err);
    CHECK(st == PARE_EINVAL);
    free(d);
    free(W);
    free(s);
}

/* ---- whole model ---- */

typedef struct {
    int calls, cancel_at;
    double last;
    int monotone;
} prog_state;

static int on_progress(void *user, const char *stage, double fraction, const char *detail)
{
    prog_state *p = user;
    p->calls++;
    if (strcmp(stage, "spectra") != 0 || fraction < p->last)
        p->monotone = 0;
    p->last = fraction;
    return p->cancel_at > 0 && p->calls >= p->cancel_at;
}

static void check_model_spectra(int gpt2)
{
    pare_model *m = fixture_model(gpt2 ? "gpt2" : "llama", gpt2);
    if (!m)
        return;
    pare_linear *lins[64];
    int count = pare_model_linears(m, lins, 64);
    prog_state ps = {0, 0, 0, 1};
    pare_progress prog = {on_progress, &ps};
    pare_model_spectra *sp = NULL;
    pare_error err = {0};
    pare_status st = pare_model_spectra_compute(m, NULL, 0, &prog, &sp, &err);
    CHECKF(st == PARE_OK && sp, "%s", err.msg);
    if (sp) {
        CHECK(sp->count == count);
        CHECKF(ps.calls == count + 1 && ps.monotone && ps.last == 1.0, "%d progress calls, last %g", ps.calls, ps.last);
        for (int i = 0; i < sp->count && i < 64; i++) {
            pare_matrix_spectrum *ms = &sp->mats[i];
            int r = lins[i]->out < lins[i]->in ? lins[i]->out : lins[i]->in;
            CHECKF(strcmp(ms->name, lins[i]->name) == 0 && ms->m == lins[i]->out && ms->n == lins[i]->in, "%s",
                   ms->name);
            double *s = malloc(r * sizeof *s);
            pare_spectrum_opts o = method_opts(PARE_SVALS_GESDD);
            CHECK(pare_spectrum_values(lins[i]->name, lins[i]->w, lins[i]->out, lins[i]->in, &o, s, NULL, &err) ==
                  PARE_OK);
            CHECKF(max_rel(ms->s, s, r, 1e-6) <= 1e-9, "%s: model spectrum vs single", ms->name);
            double fro = 0;
            for (size_t j = 0; j < (size_t)ms->m * ms->n; j++)
                fro += (double)lins[i]->w[j] * lins[i]->w[j];
            CHECKF(ms->stats.r == r && fabs(ms->stats.sum_sq - fro) <= 1e-9 * fro &&
                       ms->stats.rank99 >= ms->stats.rank90 && ms->stats.rank90 >= 1 &&
                       ms->stats.break_even == pare_break_even_rank(ms->m, ms->n),
                   "%s: stats", ms->name);
            free(s);
        }
        if (gpt2)
            CHECK(strstr(sp->mats[0].name, "c_attn.q") != NULL);
    }
    pare_model_spectra_free(sp);

    /* one option set for all: activation norms of length dim fit q..up but not down_proj / c_proj */
    int dim = m->cfg.dim;
    double *d = malloc(dim * sizeof *d);
    for (int j = 0; j < dim; j++)
        d[j] = 1 + j % 5;
    pare_spectrum_opts o = pare_spectrum_defaults();
    o.weighting = PARE_WEIGHT_ACT;
    o.act_norm = d;
    o.act_len = dim;
    st = pare_model_spectra_compute(m, &o, 1, NULL, &sp, &err);
    const char *down = gpt2 ? "transformer.h.0.mlp.c_proj" : "model.layers.0.mlp.down_proj";
    CHECKF(st == PARE_EINVAL && sp == NULL && strstr(err.msg, down) && strstr(err.msg, "entries"), "%s", err.msg);
    CHECK(pare_model_spectra_compute(m, &o, 2, NULL, &sp, &err) == PARE_EINVAL);
    free(d);
    pare_model_free(m);
}

static void test_model_spectra_llama(void) { check_model_spectra(0); }
static void test_model_spectra_gpt2(void) { check_model_spectra(1); }

static void test_model_spectra_cancel(void)
{
    pare_model *m = fixture_model("cancel", 0);
    if (!m)
        return;
    for (int at = 1; at <= 4; at += 3) {
        prog_state ps = {0, at, 0, 1};
        pare_progress prog = {on_progress, &ps};
        pare_model_spectra *sp = (pare_model_spectra *)&ps; /* must be reset to NULL */
        pare_error err = {0};
        pare_status st = pare_model_spectra_compute(m, NULL, 0, &prog, &sp, &err);
        CHECKF(st == PARE_ECANCELED && sp == NULL && err.code == PARE_ECANCELED, "cancel at call %d: %d %s", at, st,
               err.msg);
        CHECKF(ps.calls == at, "cancel at call %d: %d calls", at, ps.calls);
    }
    pare_model_free(m);
}

void suite_spectrum(void);
void suite_spectrum(void)
{
    RUN(test_known_spectrum);
    RUN(test_gram_precision);
    RUN(test_act_weighted);
    RUN(test_whitened);
    RUN(test_whiten_damping);
    RUN(test_svd_factors);
    RUN(test_svd_routes);
    RUN(test_rsvd_llama);
    RUN(test_rsvd_gpt2);
    RUN(test_stats_closed_forms);
    RUN(test_errors);
    RUN(test_model_spectra_llama);
    RUN(test_model_spectra_gpt2);
    RUN(test_model_spectra_cancel);
}

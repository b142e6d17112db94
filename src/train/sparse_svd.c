/* Weighted low-rank approximation by EM (Srebro & Jaakkola 2003), used to factorize pruned matrices
 * where their mask and first-order importance say the entries matter. Everything runs in double on
 * the orientation with fewer rows, so each truncated SVD is one Gram matrix and one partial
 * symmetric eigensolve. */
#include "sparse_svd.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pare_wsvd_defaults(pare_wsvd_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_iters = 30;
    o->tol = 1e-3;
    o->quantile = 1.0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Best rank-k approximation of X [p, q] (p <= q): U [p, k] the top-k eigenvectors of X Xᵀ, Y = Uᵀ X
 * [k, q], Z = U Y; columns of U in descending eigenvalue order. G [p, p], ev [p], iw [2k] scratch. */
static int truncate(const double *X, int p, int q, int k, double *G, double *ev, double *Ut, lapack_int *isuppz,
                    double *U, double *Y, double *Z)
{
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, p, q, 1.0, X, q, 0.0, G, p);
    lapack_int found = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'L', p, G, p, 0.0, 0.0, p - k + 1, p, 0.0, &found, ev,
                                     Ut, k, isuppz);
    if (info != 0 || found != k)
        return -1;
    for (int i = 0; i < p; i++) /* ascending -> descending */
        for (int j = 0; j < k; j++)
            U[(size_t)i * k + j] = Ut[(size_t)i * k + (k - 1 - j)];
    for (int j = 0; j < k / 2; j++) {
        double t = ev[j];
        ev[j] = ev[k - 1 - j];
        ev[k - 1 - j] = t;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, q, p, 1.0, U, k, X, q, 0.0, Y, q);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p, q, k, 1.0, U, k, Y, q, 0.0, Z, q);
    return 0;
}

static double objective(const double *W, const double *wt, const double *Z, size_t n)
{
    double f = 0;
    for (size_t i = 0; i < n; i++) {
        double d = W[i] - Z[i];
        f += (wt ? wt[i] : 1.0) * d * d;
    }
    return f;
}

pare_status pare_wsvd(const char *name, const float *w, const float *wt, int m, int n, int k, const pare_wsvd_opts *o,
                      float *A, float *B, pare_wsvd_report *rep, pare_error *err)
{
    pare_wsvd_opts def;
    if (!o) {
        pare_wsvd_defaults(&def);
        o = &def;
    }
    pare_wsvd_report r;
    memset(&r, 0, sizeof r);
    if (!name)
        name = "matrix";
    if (m < 1 || n < 1 || k < 1 || k > (m < n ? m : n))
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) for %s", k, m, n, name);
    if (o->max_iters < 0 || !(o->tol >= 0))
        return pare_fail(err, PARE_EINVAL, "%s: EM iterations %d and tolerance %g must be non-negative", name,
                         o->max_iters, o->tol);
    size_t N = (size_t)m * n;
    for (size_t i = 0; i < N; i++) {
        if (!isfinite(w[i]))
            return pare_fail(err, PARE_EINVAL, "%s: weight [%zu, %zu] is not finite", name, i / n, i % n);
        if (wt && !(wt[i] >= 0 && wt[i] <= 1))
            return pare_fail(err, PARE_EINVAL, "%s: EM weight [%zu, %zu] = %g is outside [0, 1]", name, i / n, i % n,
                             wt[i]);
    }
    int tr = m > n, p = tr ? n : m, q = tr ? m : n; /* work on [p, q] with p <= q */
    double *W = malloc(N * sizeof *W), *Wt = wt ? malloc(N * sizeof *Wt) : NULL, *X = malloc(N * sizeof *X);
    double *Z = malloc(N * sizeof *Z), *Zn = malloc(N * sizeof *Zn), *G = malloc((size_t)p * p * sizeof *G);
    double *U = malloc((size_t)p * k * sizeof *U), *Un = malloc((size_t)p * k * sizeof *Un);
    double *Ut = malloc((size_t)p * k * sizeof *Ut), *ev = malloc((size_t)p * sizeof *ev);
    double *Y = malloc((size_t)k * q * sizeof *Y), *Yn = malloc((size_t)k * q * sizeof *Yn);
    lapack_int *isuppz = malloc((size_t)2 * k * sizeof *isuppz);
    pare_status rc = PARE_OK;
    if (!W || (wt && !Wt) || !X || !Z || !Zn || !G || !U || !Un || !Ut || !ev || !Y || !Yn || !isuppz) {
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the sparsity-aware SVD", name);
        goto done;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            size_t src = (size_t)i * n + j, dst = tr ? (size_t)j * m + i : src;
            W[dst] = w[src];
            if (Wt)
                Wt[dst] = wt[src];
        }
    double wtot = 0, dtot = 0;
    for (size_t i = 0; i < N; i++) {
        wtot += (Wt ? Wt[i] : 1.0) * W[i] * W[i];
        dtot += W[i] * W[i];
    }
    r.weight_total = wtot;
    if (truncate(W, p, q, k, G, ev, Ut, isuppz, U, Y, Z)) {
        rc = pare_fail(err, PARE_EINVAL, "%s: the eigensolver failed on the Gram matrix", name);
        goto done;
    }
    double f = objective(W, Wt, Z, N);
    r.objective_plain = f;
    if (o->history && o->history_cap > 0)
        o->history[r.history_len++] = f;
    for (int it = 0; Wt && it < o->max_iters && f > 0; it++) {
        /* E-step: the unobserved share of every entry filled with the current approximation */
        for (size_t i = 0; i < N; i++)
            X[i] = Wt[i] * W[i] + (1.0 - Wt[i]) * Z[i];
        if (truncate(X, p, q, k, G, ev, Ut, isuppz, Un, Yn, Zn)) {
            rc = pare_fail(err, PARE_EINVAL, "%s: the eigensolver failed on the Gram matrix", name);
            goto done;
        }
        double fn = objective(W, Wt, Zn, N);
        if (fn > f) { /* only rounding can do this: keep the better factors and stop */
            r.rejected++;
            break;
        }
        double gain = (f - fn) / f;
        double *t;
        t = U, U = Un, Un = t;
        t = Y, Y = Yn, Yn = t;
        t = Z, Z = Zn, Zn = t;
        f = fn;
        r.iters++;
        if (o->history && r.history_len < o->history_cap)
            o->history[r.history_len++] = f;
        if (gain < o->tol)
            break;
    }
    r.objective = f;
    r.rel_error_plain = wtot > 0 ? sqrt(r.objective_plain / wtot) : 0;
    r.rel_error = wtot > 0 ? sqrt(f / wtot) : 0;
    r.rel_dense_error = dtot > 0 ? sqrt(objective(W, NULL, Z, N) / dtot) : 0;
    /* Z = U Y with the rows of Y orthogonal, |Y_j| = s_j: A' = U S^1/2, B' = S^-1/2 Y for [p, q];
     * transposed back, W ≈ B'ᵀ A'ᵀ */
    for (int j = 0; j < k; j++) {
        double s2 = 0;
        for (int c = 0; c < q; c++)
            s2 += Y[(size_t)j * q + c] * Y[(size_t)j * q + c];
        double s = sqrt(s2), a = sqrt(s), b = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (int i = 0; i < p; i++) {
            float v = (float)(U[(size_t)i * k + j] * a);
            if (tr)
                B[(size_t)j * p + i] = v; /* B [k, n = p] */
            else
                A[(size_t)i * k + j] = v; /* A [m = p, k] */
        }
        for (int c = 0; c < q; c++) {
            float v = (float)(Y[(size_t)j * q + c] * b);
            if (tr)
                A[(size_t)c * k + j] = v; /* A [m = q, k] */
            else
                B[(size_t)j * q + c] = v; /* B [k, n = q] */
        }
    }
done:
    if (rep)
        *rep = r;
    free(W);
    free(Wt);
    free(X);
    free(Z);
    free(Zn);
    free(G);
    free(U);
    free(Un);
    free(Ut);
    free(ev);
    free(Y);
    free(Yn);
    free(isuppz);
    return rc;
}

pare_status pare_factorize_sparse(pare_linear *l, int rank, const float *importance, const pare_wsvd_opts *o,
                                  pare_wsvd_report *rep, pare_error *err)
{
    if (l->kind == PARE_LIN_FACTORED)
        return pare_fail(err, PARE_EINVAL, "%s is already factorized", l->name);
    int m = l->out, n = l->in;
    if (rank < 1 || rank > (m < n ? m : n))
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) for %s", rank, m, n, l->name);
    size_t N = (size_t)m * n;
    float *wt = malloc(N * sizeof *wt), *A = malloc((size_t)m * rank * sizeof *A);
    float *B = malloc((size_t)rank * n * sizeof *B);
    pare_status rc = PARE_OK;
    if (!wt || !A || !B) {
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
        goto done;
    }
    double q = o ? o->quantile : 1.0;
    if (!(q > 0 && q <= 1)) {
        rc = pare_fail(err, PARE_EINVAL, "%s: importance quantile %g must be in (0, 1]", l->name, q);
        goto done;
    }
    size_t nk = 0;
    for (size_t i = 0; i < N; i++) {
        int kept = l->kind != PARE_LIN_MASKED || l->mask[i];
        if (importance && !(importance[i] >= 0 && isfinite(importance[i]))) {
            rc = pare_fail(err, PARE_EINVAL, "%s: importance [%zu, %zu] = %g must be finite and non-negative", l->name,
                           i / n, i % n, importance[i]);
            goto done;
        }
        wt[i] = kept ? (importance ? importance[i] : 1.0f) : 0.0f;
        nk += kept;
    }
    /* the scale: the q-quantile of the kept weights' importance (the maximum for q = 1) */
    float *kv = malloc((nk ? nk : 1) * sizeof *kv);
    if (!kv) {
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
        goto done;
    }
    nk = 0;
    for (size_t i = 0; i < N; i++)
        if (l->kind != PARE_LIN_MASKED || l->mask[i])
            kv[nk++] = wt[i];
    qsort(kv, nk, sizeof *kv, cmp_float);
    double scale = nk ? kv[(size_t)ceil(q * (double)nk) - 1 < nk ? (size_t)ceil(q * (double)nk) - 1 : nk - 1] : 0;
    free(kv);
    if (!(scale > 0)) {
        rc = pare_fail(err, PARE_EINVAL,
                       "%s: the importance's %g-quantile over the kept weights is zero; nothing to "
                       "weight by",
                       l->name, q);
        goto done;
    }
    for (size_t i = 0; i < N; i++) {
        float v = (float)(wt[i] / scale);
        wt[i] = v > 1.0f ? 1.0f : v;
    }
    if ((rc = pare_wsvd(l->name, l->w, wt, m, n, rank, o, A, B, rep, err)))
        goto done;
    rc = pare_linear_set_factors(l, rank, A, B, err);
done:
    free(wt);
    free(A);
    free(B);
    return rc;
}

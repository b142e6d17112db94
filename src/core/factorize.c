/* Factorization: SVD of W, W D or W L, truncated to rank k, with the weighting undone in B. */
#include "factorize.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pare_factor_defaults(pare_factor_opts *o)
{
    o->weighting = PARE_WEIGHT_NONE;
    o->damping = PARE_WHITEN_DAMPING;
}

/* ||(W - A B) S||_F / ||W S||_F where S is diag(scale), L (lower, [n, n]) or the identity; -1 when
 * its scratch cannot be allocated. Rows go in blocks so that the products by L are BLAS-3 (dtrmm):
 * a scalar loop over L's columns cost minutes for a 4096 x 11008 matrix. */
static double weighted_error(const float *w, const float *ab, int m, int n, const double *scale, const double *L)
{
    enum { ROWS = 128 };
    int rows = m < ROWS ? m : ROWS;
    double num = 0, den = 0;
    double *d = malloc((size_t)rows * n * sizeof *d), *x = malloc((size_t)rows * n * sizeof *x); /* [rows, n] */
    if (!d || !x) {
        free(d);
        free(x);
        return -1;
    }
    for (int i0 = 0; i0 < m; i0 += rows) {
        int r = m - i0 < rows ? m - i0 : rows;
        for (size_t e = 0; e < (size_t)r * n; e++) {
            size_t at = (size_t)i0 * n + e;
            double s = scale ? scale[e % (size_t)n] : 1.0;
            d[e] = ((double)w[at] - ab[at]) * s;
            x[e] = (double)w[at] * s;
        }
        if (L) { /* rows times L: column j sums r_t L[t][j] over t >= j */
            cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, r, n, 1.0, L, n, d, n);
            cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, r, n, 1.0, L, n, x, n);
        }
        for (size_t e = 0; e < (size_t)r * n; e++) {
            num += d[e] * d[e];
            den += x[e] * x[e];
        }
    }
    free(d);
    free(x);
    return den > 0 ? sqrt(num / den) : 0.0;
}

pare_status pare_factorize_linear(pare_linear *l, int rank, const pare_factor_opts *o, const pare_input_stats *stats,
                                  pare_factor_report *rep, pare_error *err)
{
    int m = l->out, n = l->in;
    if (rank < 1 || rank > (m < n ? m : n))
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) for %s", rank, m, n, l->name);
    if (o->weighting != PARE_WEIGHT_NONE && (!stats || stats->dim != n))
        return pare_fail(err, PARE_EINVAL, "%s: %s factorization needs calibration statistics of its %d inputs",
                         l->name, o->weighting == PARE_WEIGHT_ACT ? "activation-weighted" : "whitened", n);
    if (o->weighting == PARE_WEIGHT_WHITEN && !stats->gram)
        return pare_fail(err, PARE_EINVAL, "%s: whitened factorization needs Gram matrices (calibrate with gram)",
                         l->name);
    memset(rep, 0, sizeof *rep);
    rep->params_before = pare_linear_params(l);
    float *w = malloc((size_t)m * n * sizeof *w), *mw = malloc((size_t)m * n * sizeof *mw);
    double *scale = NULL, *L = NULL, *norms = NULL;
    pare_svd svd = {0};
    pare_status rc = PARE_OK;
    if (!w || !mw) {
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
        goto done;
    }
    pare_linear_dense(l, w);
    memcpy(mw, w, (size_t)m * n * sizeof *mw);
    pare_spectrum_info info = {0};
    if (o->weighting == PARE_WEIGHT_ACT) {
        scale = malloc((size_t)n * sizeof *scale);
        norms = malloc((size_t)n * sizeof *norms);
        if (!scale || !norms) {
            rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the activation scale (%d inputs)", l->name, n);
            goto done;
        }
        for (int j = 0; j < n; j++)
            norms[j] = sqrt(stats->sumsq[j]);
        if ((rc = pare_act_scale(l->name, norms, n, scale, &info.act_floored, err)))
            goto done;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                mw[(size_t)i * n + j] = (float)(w[(size_t)i * n + j] * scale[j]);
    } else if (o->weighting == PARE_WEIGHT_WHITEN) {
        L = malloc((size_t)n * n * sizeof *L);
        if (!L) { /* a whitened factorization without its factor would silently be a plain one */
            rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the whitening factor (%d x %d)", l->name, n, n);
            goto done;
        }
        if ((rc = pare_whiten_cholesky(l->name, stats->gram, n, o->damping, PARE_WHITEN_MAX_DAMPING, L, &info, err)))
            goto done;
        rep->damping = info.damping;
        float *Lf = malloc((size_t)n * n * sizeof *Lf);
        if (!Lf) {
            rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the whitening factor (%d x %d)", l->name, n, n);
            goto done;
        }
        for (size_t i = 0; i < (size_t)n * n; i++)
            Lf[i] = (float)L[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1.0f, w, n, Lf, n, 0.0f, mw, n);
        free(Lf);
    }
    pare_svd_opts so = pare_svd_defaults();
    so.exact = 1; /* deterministic and exact, by the route measured fastest for the shape (svd.h) */
    so.want_u = so.want_vt = 1;
    if ((rc = pare_svd_topk(l->name, mw, m, n, rank, &so, &svd, err)))
        goto done;
    /* A = U S^1/2 [m, k]; B = S^1/2 V^T [k, n], then undo the weighting on B's columns */
    float *A = malloc((size_t)m * rank * sizeof *A), *B = malloc((size_t)rank * n * sizeof *B);
    if (!A || !B) {
        free(A);
        free(B);
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
        goto done;
    }
    for (int i = 0; i < m; i++)
        for (int k = 0; k < rank; k++)
            A[(size_t)i * rank + k] = (float)(svd.u[(size_t)i * rank + k] * sqrt(svd.s[k]));
    for (int k = 0; k < rank; k++)
        for (int j = 0; j < n; j++)
            B[(size_t)k * n + j] = (float)(svd.vt[(size_t)k * n + j] * sqrt(svd.s[k]) / (scale ? scale[j] : 1.0));
    if (L) { /* B L = S^1/2 V^T  =>  B = S^1/2 V^T L^-1 */
        float *Lf = malloc((size_t)n * n * sizeof *Lf);
        if (!Lf) {
            free(A);
            free(B);
            rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the whitening factor (%d x %d)", l->name, n, n);
            goto done;
        }
        for (size_t i = 0; i < (size_t)n * n; i++)
            Lf[i] = (float)L[i];
        cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, rank, n, 1.0f, Lf, n, B, n);
        free(Lf);
    }
    /* errors of the new product, in plain and weighted metrics */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, rank, 1.0f, A, rank, B, n, 0.0f, mw, n);
    rep->rel_error = weighted_error(w, mw, m, n, NULL, NULL);
    rep->rel_weighted_error = o->weighting == PARE_WEIGHT_NONE ? rep->rel_error : weighted_error(w, mw, m, n, scale, L);
    if (rep->rel_error < 0 || rep->rel_weighted_error < 0)
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory measuring the factorization error", l->name);
    else
        rc = pare_linear_set_factors(l, rank, A, B, err);
    free(A);
    free(B);
    rep->params_after = pare_linear_params(l);
done:
    pare_svd_free(&svd);
    free(w);
    free(mw);
    free(scale);
    free(norms);
    free(L);
    return rc;
}

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
 * its two rows of scratch cannot be allocated. */
static double weighted_error(const float *w, const float *ab, int m, int n, const double *scale, const double *L)
{
    double num = 0, den = 0;
    double *row_d = malloc((size_t)n * sizeof *row_d), *row_w = malloc((size_t)n * sizeof *row_w);
    if (!row_d || !row_w) {
        free(row_d);
        free(row_w);
        return -1;
    }
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            row_d[j] = (double)w[(size_t)i * n + j] - ab[(size_t)i * n + j];
            row_w[j] = w[(size_t)i * n + j];
        }
        if (L) { /* r L: column j sums r_t L[t][j] over t >= j */
            for (int j = 0; j < n; j++) {
                double a = 0, b = 0;
                for (int t = j; t < n; t++) {
                    a += row_d[t] * L[(size_t)t * n + j];
                    b += row_w[t] * L[(size_t)t * n + j];
                }
                num += a * a;
                den += b * b;
            }
        } else {
            for (int j = 0; j < n; j++) {
                double s = scale ? scale[j] : 1.0;
                num += row_d[j] * row_d[j] * s * s;
                den += row_w[j] * row_w[j] * s * s;
            }
        }
    }
    free(row_d);
    free(row_w);
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

/* Singular-value spectra: Gram / gesdd values, activation-weighted and whitened spectra,
 * randomized (Halko–Martinsson–Tropp) and exact truncated SVD, spectrum statistics, whole-model spectra. */
#include "spectrum.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "parallel.h"
#include "rng.h"
#include "svd.h"

#define NM(name) ((name) ? (name) : "matrix")

/* ------------------------------------------------------------------------------------------- */
/* checks */

static pare_status check_shape(const char *name, const void *w, int m, int n, pare_error *err)
{
    if (!w)
        return pare_fail(err, PARE_EINVAL, "%s: no matrix data", NM(name));
    if (m < 1 || n < 1)
        return pare_fail(err, PARE_EINVAL, "%s: invalid shape [%d, %d]", NM(name), m, n);
    return PARE_OK;
}

static const char *nonfinite_name(double x) { return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf"; }

static pare_status check_finite(const char *name, const float *w, int m, int n, pare_error *err)
{
    size_t total = (size_t)m * n;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(w[i]))
            return pare_fail(err, PARE_EINVAL, "%s: non-finite value %s at [%zu, %zu]", NM(name), nonfinite_name(w[i]),
                             i / (size_t)n, i % (size_t)n);
    return PARE_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* options */

pare_spectrum_opts pare_spectrum_defaults(void)
{
    pare_spectrum_opts o;
    memset(&o, 0, sizeof o);
    o.method = PARE_SVALS_GRAM;
    o.weighting = PARE_WEIGHT_NONE;
    o.damping = PARE_WHITEN_DAMPING;
    o.max_damping = PARE_WHITEN_MAX_DAMPING;
    return o;
}

pare_svd_opts pare_svd_defaults(void)
{
    pare_svd_opts o;
    memset(&o, 0, sizeof o);
    o.oversample = PARE_RSVD_AUTO;
    o.power_iters = PARE_RSVD_AUTO;
    o.tol = PARE_RSVD_TOL;
    o.seed = PARE_RSVD_SEED;
    return o;
}

/* ------------------------------------------------------------------------------------------- */
/* values of a double matrix */

/* Singular values of the row-major double matrix M [m, n] into s[min(m, n)], descending.
 * M may be overwritten. GRAM is the measured route for the shape (svd.h). */
static pare_status svals_double(const char *name, double *M, int m, int n, pare_svals_method method, double *s,
                                pare_error *err)
{
    return pare_svd_values(name, M, m, n, method == PARE_SVALS_GESDD ? PARE_SVD_DGESDD : PARE_SVD_AUTO, s, err);
}

/* ------------------------------------------------------------------------------------------- */
/* weighting */

pare_status pare_act_scale(const char *name, const double *d, int len, double *scale, int *floored, pare_error *err)
{
    if (floored)
        *floored = 0;
    if (!d || len < 1)
        return pare_fail(err, PARE_EINVAL, "%s: no activation norms", NM(name));
    double mx = 0;
    for (int j = 0; j < len; j++) {
        if (!isfinite(d[j]))
            return pare_fail(err, PARE_EINVAL, "%s: activation norm %d is %s", NM(name), j, nonfinite_name(d[j]));
        if (d[j] > mx)
            mx = d[j];
    }
    if (!(mx > 0))
        return pare_fail(err, PARE_EINVAL, "%s: every activation norm is zero or negative", NM(name));
    double eps = PARE_ACT_EPS * mx;
    int nf = 0;
    for (int j = 0; j < len; j++) {
        if (d[j] > 0) {
            scale[j] = d[j];
        } else {
            scale[j] = eps;
            nf++;
        }
    }
    if (floored)
        *floored = nf;
    return PARE_OK;
}

pare_status pare_whiten_cholesky(const char *name, const double *gram, int n, double damping, double max_damping,
                                 double *L, pare_spectrum_info *info, pare_error *err)
{
    if (!gram || n < 1)
        return pare_fail(err, PARE_EINVAL, "%s: no input Gram", NM(name));
    if (!(damping >= 0) || !isfinite(damping) || !(max_damping >= 0) || !isfinite(max_damping))
        return pare_fail(err, PARE_EINVAL, "%s: invalid damping %g (max %g)", NM(name), damping, max_damping);
    double tr = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double g = gram[(size_t)i * n + j];
            if (!isfinite(g))
                return pare_fail(err, PARE_EINVAL, "%s: input Gram has non-finite value %s at [%d, %d]", NM(name),
                                 nonfinite_name(g), i, j);
            if (i == j)
                tr += g;
        }
    double mean = tr / n;
    if (!(mean > 0))
        return pare_fail(err, PARE_EINVAL, "%s: input Gram has non-positive mean diagonal %g", NM(name), mean);
    double lam = damping;
    int retries = 0;
    for (;;) {
        double delta = lam * mean;
        for (int i = 0; i < n; i++) {
            double *row = L + (size_t)i * n;
            memcpy(row, gram + (size_t)i * n, (size_t)(i + 1) * sizeof *row);
            memset(row + i + 1, 0, (size_t)(n - i - 1) * sizeof *row);
            row[i] += delta;
        }
        /* Row-major lower = column-major upper: dpotrf 'U' computes Uᵀ·U with U = Lᵀ. */
        lapack_int st = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, L, n);
        if (st == 0) {
            if (info) {
                info->damping = lam;
                info->damping_abs = delta;
                info->damping_retries = retries;
            }
            return PARE_OK;
        }
        if (st < 0)
            return pare_fail(err, PARE_EINVAL, "%s: LAPACK dpotrf failed (info %d)", NM(name), (int)st);
        double next = lam > 0 ? lam * 10 : PARE_WHITEN_FIRST_RETRY;
        if (next > max_damping * (1 + 1e-12))
            return pare_fail(err, PARE_EINVAL,
                             "%s: input Gram is not positive definite even with damping %g x mean diagonal "
                             "(Cholesky pivot %d)",
                             NM(name), lam, (int)st);
        lam = next;
        retries++;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* values-only spectra */

pare_status pare_spectrum_values(const char *name, const float *w, int m, int n, const pare_spectrum_opts *opts,
                                 double *s, pare_spectrum_info *info, pare_error *err)
{
    pare_spectrum_opts def = pare_spectrum_defaults();
    if (!opts)
        opts = &def;
    pare_spectrum_info inf;
    memset(&inf, 0, sizeof inf);
    if (info)
        *info = inf;
    pare_status st = check_shape(name, w, m, n, err);
    if (st)
        return st;
    if (!s)
        return pare_fail(err, PARE_EINVAL, "%s: no output buffer", NM(name));
    if (opts->method != PARE_SVALS_GRAM && opts->method != PARE_SVALS_GESDD)
        return pare_fail(err, PARE_EINVAL, "%s: unknown spectrum method %d", NM(name), (int)opts->method);
    if (opts->weighting == PARE_WEIGHT_ACT) {
        if (!opts->act_norm)
            return pare_fail(err, PARE_EINVAL, "%s: activation weighting without activation norms", NM(name));
        if (opts->act_len != n)
            return pare_fail(err, PARE_EINVAL, "%s: activation norms have %d entries but the matrix has %d inputs",
                             NM(name), opts->act_len, n);
    } else if (opts->weighting == PARE_WEIGHT_WHITEN) {
        if (!opts->gram)
            return pare_fail(err, PARE_EINVAL, "%s: whitening without an input Gram", NM(name));
        if (opts->gram_dim != n)
            return pare_fail(err, PARE_EINVAL, "%s: input Gram is [%d, %d] but the matrix has %d inputs", NM(name),
                             opts->gram_dim, opts->gram_dim, n);
    } else if (opts->weighting != PARE_WEIGHT_NONE) {
        return pare_fail(err, PARE_EINVAL, "%s: unknown weighting %d", NM(name), (int)opts->weighting);
    }
    if ((st = check_finite(name, w, m, n, err)))
        return st;

    size_t total = (size_t)m * n;
    double *M = malloc(total * sizeof *M);
    if (!M)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a [%d, %d] double copy", NM(name), m, n);
    if (opts->weighting == PARE_WEIGHT_ACT) {
        double *d = malloc((size_t)n * sizeof *d);
        if (!d) {
            free(M);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", NM(name));
        }
        st = pare_act_scale(name, opts->act_norm, n, d, &inf.act_floored, err);
        if (!st)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    M[(size_t)i * n + j] = (double)w[(size_t)i * n + j] * d[j];
        free(d);
    } else if (opts->weighting == PARE_WEIGHT_WHITEN) {
        double *L = malloc((size_t)n * n * sizeof *L);
        if (!L) {
            free(M);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a [%d, %d] Cholesky factor", NM(name), n, n);
        }
        st = pare_whiten_cholesky(name, opts->gram, n, opts->damping, opts->max_damping, L, &inf, err);
        if (!st) {
            for (size_t i = 0; i < total; i++)
                M[i] = w[i];
            /* M ← M·L, L lower triangular */
            cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0, L, n, M, n);
        }
        free(L);
    } else {
        for (size_t i = 0; i < total; i++)
            M[i] = w[i];
    }
    if (!st)
        st = svals_double(name, M, m, n, opts->method, s, err);
    free(M);
    if (!st && info)
        *info = inf;
    return st;
}

/* ------------------------------------------------------------------------------------------- */
/* truncated SVD */

/* Orthonormalizes the columns of the column-major Y [rows, cols] (rows >= cols) in place. */
static pare_status orthonormalize(const char *name, float *Y, int rows, int cols, float *tau, pare_error *err)
{
    lapack_int info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, rows, cols, Y, rows, tau);
    if (info == 0)
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, rows, cols, cols, Y, rows, tau);
    if (info != 0)
        return pare_fail(err, PARE_EINVAL, "%s: LAPACK QR failed (info %d)", NM(name), (int)info);
    return PARE_OK;
}

void pare_svd_free(pare_svd *svd)
{
    if (!svd)
        return;
    free(svd->s);
    free(svd->u);
    free(svd->vt);
    memset(svd, 0, sizeof *svd);
}

/* SVD of the column-major double matrix B [rows, cols] (overwritten); keeps the top k values and,
 * when asked, Ub [rows, k] (column-major, ld rows) and Vbᵀ [k, cols] (column-major, ld ldvt). */
static pare_status small_svd(const char *name, double *B, int rows, int cols, int want_vecs, double *sv, double **ub,
                             double **vbt, int *ldvt, pare_error *err)
{
    int r = rows < cols ? rows : cols;
    *ub = *vbt = NULL;
    lapack_int info;
    if (!want_vecs) {
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', rows, cols, B, rows, sv, NULL, 1, NULL, 1);
    } else {
        *ub = malloc((size_t)rows * r * sizeof **ub);
        *vbt = malloc((size_t)r * cols * sizeof **vbt);
        if (!*ub || !*vbt)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for SVD factors", NM(name));
        *ldvt = r;
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', rows, cols, B, rows, sv, *ub, rows, *vbt, r);
    }
    if (info != 0)
        return pare_fail(err, PARE_EINVAL, "%s: LAPACK dgesdd failed (info %d)", NM(name), (int)info);
    return PARE_OK;
}

pare_status pare_svd_topk(const char *name, const float *w, int m, int n, int k, const pare_svd_opts *opts,
                          pare_svd *out, pare_error *err)
{
    pare_svd_opts def = pare_svd_defaults();
    if (!opts)
        opts = &def;
    if (!out)
        return pare_fail(err, PARE_EINVAL, "%s: no output", NM(name));
    memset(out, 0, sizeof *out);
    pare_status st = check_shape(name, w, m, n, err);
    if (st)
        return st;
    int r = m < n ? m : n;
    if (k > r)
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) for %s", k, m, n, NM(name));
    if (k < 1)
        return pare_fail(err, PARE_EINVAL, "rank %d is below 1 for %s", k, NM(name));
    if (opts->oversample < PARE_RSVD_AUTO || opts->power_iters < PARE_RSVD_AUTO ||
        (opts->power_iters == PARE_RSVD_AUTO && !(opts->tol > 0)))
        return pare_fail(err, PARE_EINVAL, "%s: invalid oversampling %d, power iterations %d or tolerance %g", NM(name),
                         opts->oversample, opts->power_iters, opts->tol);
    if ((st = check_finite(name, w, m, n, err)))
        return st;
    int want_vecs = opts->want_u || opts->want_vt;

    double *sv = NULL, *B = NULL, *ub = NULL, *vbt = NULL;
    float *Q = NULL, *Z = NULL, *tau = NULL, *ubf = NULL;
    int ldvt = 0, l = 0;
    sv = malloc((size_t)r * sizeof *sv);
    out->s = malloc((size_t)k * sizeof *out->s);
    if (opts->want_u)
        out->u = malloc((size_t)m * k * sizeof *out->u);
    if (opts->want_vt)
        out->vt = malloc((size_t)k * n * sizeof *out->vt);
    if (!sv || !out->s || (opts->want_u && !out->u) || (opts->want_vt && !out->vt)) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for a rank-%d SVD", NM(name), k);
        goto done;
    }

    if (opts->exact) { /* the measured full-accuracy routes (svd.h) */
        if (want_vecs) {
            st = pare_svd_truncated(name, w, m, n, k, PARE_SVD_AUTO, out->s, out->u, out->vt, err);
            goto done;
        }
        size_t total = (size_t)m * n;
        if (!(B = malloc(total * sizeof *B))) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for a [%d, %d] double copy", NM(name), m, n);
            goto done;
        }
        for (size_t i = 0; i < total; i++)
            B[i] = w[i];
        if (!(st = pare_svd_values(name, B, m, n, PARE_SVD_AUTO, sv, err)))
            memcpy(out->s, sv, (size_t)k * sizeof *sv);
        goto done;
    }

    /* Randomized range finder with subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4),
     * in fp32 with column-major work arrays. Row-major W [m, n] is column-major Wᵀ [n, m], ld n. */
    int p = opts->oversample == PARE_RSVD_AUTO ? (k > PARE_RSVD_MIN_OVERSAMPLE ? k : PARE_RSVD_MIN_OVERSAMPLE)
                                               : opts->oversample;
    int adaptive = opts->power_iters == PARE_RSVD_AUTO;
    int qmax = adaptive ? PARE_RSVD_MAX_ITERS : opts->power_iters;
    l = k + p < r ? k + p : r;
    if (l == r) /* the sample spans the whole row or column space: exact after one pass */
        qmax = 0;
    out->oversample = l - k;
    Q = malloc((size_t)m * l * sizeof *Q); /* [m, l] */
    Z = malloc((size_t)n * l * sizeof *Z); /* [n, l]: Ω, then Wᵀ·Q */
    tau = malloc((size_t)l * sizeof *tau);
    B = malloc((size_t)l * n * sizeof *B); /* [l, n] double; also the Ritz-value scratch */
    double *prev = malloc((size_t)l * sizeof *prev);
    if (!Q || !Z || !tau || !B || !prev) {
        free(prev);
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the range finder", NM(name));
        goto done;
    }
    /* uniforms in (0, 1] */
    pare_normal_rng rng = {.state = opts->seed, .u1_offset = 1.0, .u2_offset = 1.0};
    for (size_t i = 0; i < (size_t)n * l; i++)
        Z[i] = (float)pare_normal(&rng);
    /* Q = orth(W·Ω) */
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, l, n, 1.0f, w, n, Z, n, 0.0f, Q, m);
    if ((st = orthonormalize(name, Q, m, l, tau, err)))
        goto done_prev;
    double delta_prev = 0;
    int it;
    for (it = 0;; it++) {
        /* Z = Wᵀ·Q; its singular values are the current Ritz values σ(Qᵀ·W) */
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, l, m, 1.0f, w, n, Q, m, 0.0f, Z, n);
        if (it >= qmax)
            break;
        if (adaptive) {
            for (size_t i = 0; i < (size_t)n * l; i++)
                B[i] = Z[i];
            lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, l, B, n, sv, NULL, 1, NULL, 1);
            if (info != 0) {
                st = pare_fail(err, PARE_EINVAL, "%s: LAPACK dgesdd failed (info %d)", NM(name), (int)info);
                goto done_prev;
            }
            if (it > 0) {
                double delta = 0;
                for (int i = 0; i < k; i++)
                    if (sv[i] > 0) {
                        double d = fabs(sv[i] - prev[i]) / sv[i];
                        delta = d > delta ? d : delta;
                    }
                /* error ≈ delta·ρ/(1−ρ) for a linear rate ρ: the larger of the predicted rate
                 * (s_l / s_k)^4 and the observed ratio of successive changes */
                double rho = sv[k - 1] > 0 ? pow(sv[l - 1] / sv[k - 1], 4) : 0;
                if (it > 1 && delta_prev > 0 && delta / delta_prev > rho)
                    rho = delta / delta_prev;
                if (rho > 0.999)
                    rho = 0.999;
                double est = delta * rho / (1 - rho);
                if (it >= PARE_RSVD_MIN_ITERS && est <= opts->tol)
                    break;
                delta_prev = delta;
            }
            memcpy(prev, sv, (size_t)l * sizeof *sv);
        }
        /* Z ← orth(Z); Q ← orth(W·Z) */
        if ((st = orthonormalize(name, Z, n, l, tau, err)))
            goto done_prev;
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, l, n, 1.0f, w, n, Z, n, 0.0f, Q, m);
        if ((st = orthonormalize(name, Q, m, l, tau, err)))
            goto done_prev;
    }
    out->power_iters = it;
    /* B = Qᵀ·W = Zᵀ [l, n] */
    for (int i = 0; i < l; i++)
        for (int j = 0; j < n; j++)
            B[i + (size_t)j * l] = Z[j + (size_t)i * n];
done_prev:
    free(prev);
    if (st)
        goto done;
    /* B = Ub·S·Vbᵀ: ub [l, l], vbt [l, n] (ld l) */
    if ((st = small_svd(name, B, l, n, want_vecs, sv, &ub, &vbt, &ldvt, err)))
        goto done;
    memcpy(out->s, sv, (size_t)k * sizeof *sv);
    if (opts->want_u) {
        /* U = Q·Ub[:, :k] [m, k]; row-major U = column-major Uᵀ = Ub[:, :k]ᵀ·Qᵀ [k, m] */
        ubf = malloc((size_t)l * k * sizeof *ubf);
        if (!ubf) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", NM(name));
            goto done;
        }
        for (size_t i = 0; i < (size_t)l * k; i++)
            ubf[i] = (float)ub[i];
        cblas_sgemm(CblasColMajor, CblasTrans, CblasTrans, k, m, l, 1.0f, ubf, l, Q, m, 0.0f, out->u, k);
    }
    if (opts->want_vt)
        for (int c = 0; c < k; c++)
            for (int j = 0; j < n; j++)
                out->vt[(size_t)c * n + j] = (float)vbt[c + (size_t)j * ldvt];

done:
    free(sv);
    free(B);
    free(ub);
    free(vbt);
    free(Q);
    free(Z);
    free(tau);
    free(ubf);
    if (st) {
        pare_svd_free(out);
    } else {
        out->m = m;
        out->n = n;
        out->k = k;
    }
    return st;
}

/* ------------------------------------------------------------------------------------------- */
/* statistics */

static double sum_sq(const double *s, int r)
{
    double t = 0;
    for (int i = 0; i < r; i++)
        t += s[i] * s[i];
    return t;
}

void pare_spectrum_energy(const double *s, int r, double *energy)
{
    double total = sum_sq(s, r), c = 0;
    for (int i = 0; i < r; i++) {
        c += s[i] * s[i];
        energy[i] = total > 0 ? c / total : 1.0;
    }
    if (r > 0)
        energy[r - 1] = 1.0;
}

int pare_spectrum_energy_rank(const double *s, int r, double threshold)
{
    double total = sum_sq(s, r);
    if (!(total > 0) || threshold <= 0)
        return 0;
    double want = threshold * total * (1 - 1e-12), c = 0;
    for (int i = 0; i < r; i++) {
        c += s[i] * s[i];
        if (c >= want)
            return i + 1;
    }
    return r;
}

double pare_spectrum_trunc_error(const double *s, int r, int k)
{
    double total = sum_sq(s, r);
    if (!(total > 0) || k >= r)
        return 0.0;
    if (k <= 0)
        return 1.0;
    double tail = 0;
    for (int i = r - 1; i >= k; i--) /* smallest first, for accuracy */
        tail += s[i] * s[i];
    double e = tail / total;
    return sqrt(e < 1 ? e : 1);
}

int pare_break_even_rank(int m, int n)
{
    if (m < 1 || n < 1)
        return 0;
    return (int)(((int64_t)m * n) / ((int64_t)m + n));
}

size_t pare_lowrank_params(int m, int n, int k)
{
    if (m < 0 || n < 0 || k < 0)
        return 0;
    return (size_t)k * ((size_t)m + (size_t)n);
}

pare_status pare_spectrum_stats_compute(const double *s, int r, int m, int n, pare_spectrum_stats *st, pare_error *err)
{
    if (!s || !st || r < 1)
        return pare_fail(err, PARE_EINVAL, "spectrum statistics: no values (%d)", r);
    if (m < 1 || n < 1 || r > (m < n ? m : n))
        return pare_fail(err, PARE_EINVAL, "spectrum statistics: %d values for a [%d, %d] matrix", r, m, n);
    for (int i = 0; i < r; i++) {
        if (!isfinite(s[i]) || s[i] < 0)
            return pare_fail(err, PARE_EINVAL, "spectrum statistics: value %d is %g", i, s[i]);
        if (i > 0 && s[i] > s[i - 1])
            return pare_fail(err, PARE_EINVAL, "spectrum statistics: values not descending at %d (%g > %g)", i, s[i],
                             s[i - 1]);
    }
    memset(st, 0, sizeof *st);
    st->m = m;
    st->n = n;
    st->r = r;
    st->sum_sq = sum_sq(s, r);
    st->s_max = s[0];
    st->break_even = pare_break_even_rank(m, n);
    if (!(st->sum_sq > 0))
        return PARE_OK;
    st->stable_rank = st->sum_sq / (s[0] * s[0]);
    double l1 = 0, h = 0;
    for (int i = 0; i < r; i++)
        l1 += s[i];
    for (int i = 0; i < r; i++) {
        double p = s[i] / l1;
        if (p > 0)
            h -= p * log(p);
    }
    st->effective_rank = exp(h);
    st->rank90 = pare_spectrum_energy_rank(s, r, 0.90);
    st->rank95 = pare_spectrum_energy_rank(s, r, 0.95);
    st->rank99 = pare_spectrum_energy_rank(s, r, 0.99);
    return PARE_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* whole model */

void pare_model_spectra_free(pare_model_spectra *sp)
{
    if (!sp)
        return;
    if (sp->mats)
        for (int i = 0; i < sp->count; i++)
            free(sp->mats[i].s);
    free(sp->mats);
    free(sp);
}

/* ms <- the spectrum and statistics of lin (resident) under so; ms->s malloc'd, also on failure. */
static pare_status matrix_spectrum(const pare_linear *lin, const pare_spectrum_opts *so, pare_matrix_spectrum *ms,
                                   pare_error *err)
{
    snprintf(ms->name, sizeof ms->name, "%s", lin->name);
    ms->m = lin->out;
    ms->n = lin->in;
    int r = lin->out < lin->in ? lin->out : lin->in;
    ms->s = malloc((size_t)(r > 0 ? r : 1) * sizeof *ms->s);
    if (!ms->s)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", lin->name);
    pare_status st = pare_linear_spectrum(lin, so, ms->s, &ms->info, err);
    if (!st && (st = pare_spectrum_stats_compute(ms->s, r, ms->m, ms->n, &ms->stats, err)))
        pare_wrap(err, "%s", lin->name);
    return st;
}

pare_status pare_model_spectra_compute(pare_model *m, const pare_spectrum_opts *opts, int n_opts,
                                       const pare_progress *prog, pare_model_spectra **out, pare_error *err)
{
    if (!out)
        return pare_fail(err, PARE_EINVAL, "spectra: no output");
    *out = NULL;
    if (!m)
        return pare_fail(err, PARE_EINVAL, "spectra: no model");
    int count = pare_model_linears(m, NULL, 0);
    if (!opts)
        n_opts = 0;
    if (n_opts != 0 && n_opts != 1 && n_opts != count)
        return pare_fail(err, PARE_EINVAL, "spectra: %d option sets for %d block matrices (want 0, 1 or %d)", n_opts,
                         count, count);
    pare_model_spectra *sp = calloc(1, sizeof *sp);
    pare_linear **lins = malloc((size_t)(count > 0 ? count : 1) * sizeof *lins);
    if (sp)
        sp->mats = calloc((size_t)(count > 0 ? count : 1), sizeof *sp->mats);
    if (!sp || !lins || !sp->mats) {
        pare_model_spectra_free(sp);
        free(lins);
        return pare_fail(err, PARE_ENOMEM, "spectra: out of memory");
    }
    sp->count = count;
    pare_model_linears(m, lins, count);
    pare_status st = pare_report(prog, "spectra", 0.0, "", err);
    if (st) {
        pare_model_spectra_free(sp);
        free(lins);
        return st;
    }

    int stop = 0, done = 0, fail_idx = count;
    pare_status fail_st = PARE_OK, cancel_st = PARE_OK;
    pare_error fail_err, cancel_err;
    memset(&fail_err, 0, sizeof fail_err);
    memset(&cancel_err, 0, sizeof cancel_err);
    /* a streamed model is analyzed one block at a time, its matrices in parallel; one in memory all at once */
    int streamed = pare_model_streamed(m);
    for (int i0 = 0, i1; i0 < count && !stop && fail_idx == count; i0 = i1) {
        for (i1 = i0 + 1; streamed && i1 < count && lins[i1]->layer == lins[i0]->layer;)
            i1++;
        if (!streamed)
            i1 = count;
        pare_status ast = pare_block_acquire(m, lins[i0]->layer, &fail_err);
        if (ast) {
            fail_st = ast;
            fail_idx = i0;
            break;
        }
#pragma omp parallel for num_threads(pare_threads()) schedule(dynamic)
        for (int i = i0; i < i1; i++) {
            int halt, first_fail;
#pragma omp atomic read
            halt = stop;
#pragma omp atomic read
            first_fail = fail_idx;
            /* after a failure, earlier matrices still run so that the lowest-numbered failure is reported */
            if (halt || i > first_fail)
                continue;
            const pare_linear *lin = lins[i];
            pare_error e;
            memset(&e, 0, sizeof e);
            pare_status s1 = matrix_spectrum(lin, n_opts == 0 ? NULL : n_opts == 1 ? opts : &opts[i], &sp->mats[i], &e);
#pragma omp critical(pare_spectra)
            {
                if (s1) {
                    if (i < fail_idx) {
#pragma omp atomic write
                        fail_idx = i;
                        fail_st = s1;
                        fail_err = e;
                    }
                } else if (!stop && fail_idx == count) {
                    done++;
                    pare_status cs = pare_report(prog, "spectra", (double)done / count, lin->name, &cancel_err);
                    if (cs) {
                        cancel_st = cs;
#pragma omp atomic write
                        stop = 1;
                    }
                }
            }
        }
        pare_block_release(m, lins[i0]->layer);
    }
    free(lins);
    if (fail_st || cancel_st) {
        pare_model_spectra_free(sp);
        if (fail_st) {
            if (err)
                *err = fail_err;
            return fail_st;
        }
        if (err)
            *err = cancel_err;
        return cancel_st;
    }
    *out = sp;
    return PARE_OK;
}

pare_status pare_linear_spectrum(const pare_linear *l, const pare_spectrum_opts *opts, double *s,
                                 pare_spectrum_info *info, pare_error *err)
{
    /* factorized layers are analyzed through their product A B */
    float *dense = l->kind == PARE_LIN_FACTORED ? malloc((size_t)l->out * l->in * sizeof *dense) : NULL;
    if (l->kind == PARE_LIN_FACTORED && !dense)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    if (dense)
        pare_linear_dense(l, dense);
    pare_status st = pare_spectrum_values(l->name, dense ? dense : l->w, l->out, l->in, opts, s, info, err);
    free(dense);
    return st;
}

pare_status pare_linear_spectrum_opts(const pare_model *m, const pare_calib_stats *cs, const pare_linear *l,
                                      pare_weighting w, double *norms, pare_spectrum_opts *so, pare_error *err)
{
    *so = pare_spectrum_defaults();
    so->weighting = w;
    if (w == PARE_WEIGHT_NONE)
        return PARE_OK;
    if (!cs || cs->n_layers != m->cfg.n_layers)
        return pare_fail(err, PARE_EINVAL, "weighted spectra need calibration statistics of all %d layers",
                         m->cfg.n_layers);
    const pare_input_stats *s = NULL;
    for (int k = 0; k < m->cfg.n_layers && !s; k++) {
        int site = pare_linear_site(&m->blocks[k], l);
        if (site >= 0)
            s = &cs->sites[k][site];
    }
    if (!s || !s->sumsq || (w == PARE_WEIGHT_WHITEN && (!s->gram || s->dim != l->in)))
        return pare_fail(err, PARE_EINVAL, "%s: no %s statistics for its input", l->name,
                         w == PARE_WEIGHT_WHITEN ? "Gram" : "activation");
    /* statistics gathered before the input was sliced refer to the loaded channel order */
    int mapped = s->dim != l->in && l->kept_in && s->dim == l->orig_in;
    if (s->dim != l->in && !mapped)
        return pare_fail(err, PARE_EINVAL, "%s: statistics of %d input channels for %d inputs", l->name, s->dim, l->in);
    for (int j = 0; j < l->in; j++)
        norms[j] = sqrt(s->sumsq[mapped ? l->kept_in[j] : j]);
    so->act_norm = norms;
    so->act_len = l->in;
    so->gram = s->gram;
    so->gram_dim = s->gram ? s->dim : 0;
    return PARE_OK;
}

pare_status pare_model_spectra_weighted(pare_model *m, const pare_calib_stats *cs, pare_weighting w,
                                        const pare_progress *prog, pare_model_spectra **out, pare_error *err)
{
    *out = NULL;
    if (w != PARE_WEIGHT_NONE && (!cs || cs->n_layers != m->cfg.n_layers))
        return pare_fail(err, PARE_EINVAL, "weighted spectra need calibration statistics of all %d layers",
                         m->cfg.n_layers);
    pare_linear *lin[PARE_MAX_LINEARS];
    int nl = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    if (nl < 1 || nl > PARE_MAX_LINEARS)
        return pare_fail(err, PARE_EINVAL, "%s: %d block matrices (expected 1 to %d)", m->path, nl, PARE_MAX_LINEARS);
    size_t n_norms = 0;
    for (int i = 0; i < nl; i++)
        n_norms += (size_t)lin[i]->in;
    pare_spectrum_opts *so = calloc((size_t)nl, sizeof *so);
    double *norms = calloc(n_norms ? n_norms : 1, sizeof *norms);
    if (!so || !norms) {
        free(so), free(norms);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the spectra options");
    }
    size_t off = 0;
    pare_status rc = PARE_OK;
    for (int i = 0; i < nl && !rc; i++) {
        so[i] = pare_spectrum_defaults();
        so[i].weighting = w;
        if (w == PARE_WEIGHT_NONE)
            continue;
        rc = pare_linear_spectrum_opts(m, cs, lin[i], w, norms + off, &so[i], err);
        off += (size_t)lin[i]->in;
    }
    if (!rc)
        rc = pare_model_spectra_compute(m, so, nl, prog, out, err);
    free(so), free(norms);
    return rc;
}

void pare_matrix_spectrum_clear(pare_matrix_spectrum *ms)
{
    if (!ms)
        return;
    free(ms->s);
    memset(ms, 0, sizeof *ms);
}

pare_status pare_matrix_spectrum_compute(pare_model *m, const pare_calib_stats *cs, const pare_linear *l,
                                         pare_weighting w, const pare_progress *prog, pare_matrix_spectrum *out,
                                         pare_error *err)
{
    memset(out, 0, sizeof *out);
    if (!m || !l)
        return pare_fail(err, PARE_EINVAL, "spectrum: no model or matrix");
    double *norms = malloc((size_t)(l->in > 0 ? l->in : 1) * sizeof *norms);
    if (!norms)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    pare_spectrum_opts so;
    pare_status st = pare_linear_spectrum_opts(m, cs, l, w, norms, &so, err);
    char detail[160];
    snprintf(detail, sizeof detail, "%s: reading block %d", l->name, l->layer);
    if (!st)
        st = pare_report(prog, "spectrum", 0.0, detail, err);
    /* a streamed block is converted for this call only (it stays in the cache for the next matrix of the block) */
    int held = 0;
    if (!st && l->layer >= 0 && !(st = pare_block_acquire(m, l->layer, err)))
        held = 1;
    snprintf(detail, sizeof detail, "%s: singular values of [%d, %d]", l->name, l->out, l->in);
    if (!st)
        st = pare_report(prog, "spectrum", 0.5, detail, err);
    if (!st)
        st = matrix_spectrum(l, &so, out, err);
    if (held)
        pare_block_release(m, l->layer);
    free(norms);
    if (st) {
        pare_matrix_spectrum_clear(out);
        return st;
    }
    pare_error done_err; /* the work is done: a cancel asked for now changes nothing */
    pare_report(prog, "spectrum", 1.0, l->name, &done_err);
    return PARE_OK;
}

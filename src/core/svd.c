/* The LAPACK routes to singular values and truncated SVD factors (gesdd, gesvd, eigen-decomposition
 * of the Gram matrix in double or fp32) and the measured choice among them per shape and use. */
#include "svd.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NM(name) ((name) ? (name) : "matrix")

static const char *const route_names[PARE_SVD_ROUTES] = {"auto",  "dgesdd",     "sgesdd", "sgesvd",
                                                         "dgram", "dgram-topk", "sgram"};

const char *pare_svd_route_name(pare_svd_route route)
{
    return route >= 0 && route < PARE_SVD_ROUTES ? route_names[route] : NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* the measured choice */

/* From tools/bench_svd.c (docs/scale.md, "SVD routes"; one thread, CPU seconds). Values: the double
 * Gram is the fastest route as accurate as the fp32 data allows at every shape measured, 512 x 512
 * to 4096 x 11008 (2x-3.6x faster than dgesdd; sgesdd / sgesvd are 1.1x-1.9x slower and 1e-5..6e-5
 * off, the fp32 Gram faster but up to 1e-1 off).
 * Factors: the double Gram gives dgesdd's values and truncation error to 1e-14 at 2x-4x less time;
 * dsyevr for the top k alone beats dsyevd for all of them below about k = r/4 (512: 0.026 vs
 * 0.032 s at k = 64; 1024: 0.146 vs 0.234 s at k = 128, 0.303 vs 0.234 s at k = 512). The fp32
 * Gram is faster still, but its vectors fail below s_i ~ 3e-4·s_1, which activation weighting
 * easily reaches; randomized SVD ends 2%-12% above the optimal error on these flat spectra. */
pare_svd_route pare_svd_values_route_for(int m, int n)
{
    (void)m, (void)n;
    return PARE_SVD_DGRAM;
}

pare_svd_route pare_svd_truncated_route_for(int m, int n, int k)
{
    int r = m < n ? m : n;
    return 4 * (long)k <= r ? PARE_SVD_DGRAM_TOPK : PARE_SVD_DGRAM;
}

/* ------------------------------------------------------------------------------------------- */
/* helpers */

static pare_status lapack_failed(const char *name, const char *routine, lapack_int info, pare_error *err)
{
    return pare_fail(err, PARE_EINVAL, "%s: LAPACK %s failed (info %d)", NM(name), routine, (int)info);
}

static float *float_copy_of_double(const double *x, size_t len)
{
    float *f = malloc((len ? len : 1) * sizeof *f);
    if (f)
        for (size_t i = 0; i < len; i++)
            f[i] = (float)x[i];
    return f;
}

static double *double_copy_of_float(const float *x, size_t len)
{
    double *d = malloc((len ? len : 1) * sizeof *d);
    if (d)
        for (size_t i = 0; i < len; i++)
            d[i] = x[i];
    return d;
}

/* ------------------------------------------------------------------------------------------- */
/* values */

pare_status pare_svd_values(const char *name, double *M, int m, int n, pare_svd_route route, double *s, pare_error *err)
{
    if (route == PARE_SVD_AUTO)
        route = pare_svd_values_route_for(m, n);
    int r = m < n ? m : n;
    size_t total = (size_t)m * n;
    lapack_int info = 0;
    /* Row-major M [m, n] is column-major Mᵀ [n, m]: same singular values, no transposition. */
    if (route == PARE_SVD_DGESDD) {
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, m, M, n, s, NULL, 1, NULL, 1);
        return info ? lapack_failed(name, "dgesdd", info, err) : PARE_OK;
    }
    if (route == PARE_SVD_SGESDD || route == PARE_SVD_SGESVD) {
        float *Mf = float_copy_of_double(M, total), *sf = malloc((size_t)r * sizeof *sf);
        float *superb = route == PARE_SVD_SGESVD ? malloc((size_t)r * sizeof *superb) : NULL;
        if (!Mf || !sf || (route == PARE_SVD_SGESVD && !superb)) {
            free(Mf), free(sf), free(superb);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a [%d, %d] fp32 copy", NM(name), m, n);
        }
        if (route == PARE_SVD_SGESDD)
            info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'N', n, m, Mf, n, sf, NULL, 1, NULL, 1);
        else
            info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'N', 'N', n, m, Mf, n, sf, NULL, 1, NULL, 1, superb);
        for (int i = 0; i < r && !info; i++)
            s[i] = sf[i];
        free(Mf), free(sf), free(superb);
        return info ? lapack_failed(name, route == PARE_SVD_SGESDD ? "sgesdd" : "sgesvd", info, err) : PARE_OK;
    }
    if (route != PARE_SVD_DGRAM && route != PARE_SVD_SGRAM)
        return pare_fail(err, PARE_EINVAL, "%s: SVD route %s gives no full spectrum", NM(name),
                         pare_svd_route_name(route) ? pare_svd_route_name(route) : "(unknown)");
    double *ev = malloc((size_t)r * sizeof *ev);
    if (!ev)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", NM(name));
    if (route == PARE_SVD_DGRAM) {
        double *G = malloc((size_t)r * r * sizeof *G);
        if (!G) {
            free(ev);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a %dx%d Gram matrix", NM(name), r, r);
        }
        if (m <= n) /* G = M·Mᵀ [m, m] */
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, m, n, 1.0, M, n, 0.0, G, r);
        else /* G = Mᵀ·M [n, n] */
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0, M, n, 0.0, G, r);
        /* Row-major lower = column-major upper. */
        info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'U', r, G, r, ev);
        free(G);
    } else {
        float *Mf = float_copy_of_double(M, total), *G = malloc((size_t)r * r * sizeof *G);
        float *evf = malloc((size_t)r * sizeof *evf);
        if (!Mf || !G || !evf) {
            free(Mf), free(G), free(evf), free(ev);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a %dx%d Gram matrix", NM(name), r, r);
        }
        if (m <= n)
            cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, m, n, 1.0f, Mf, n, 0.0f, G, r);
        else
            cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0f, Mf, n, 0.0f, G, r);
        info = LAPACKE_ssyevd(LAPACK_COL_MAJOR, 'N', 'U', r, G, r, evf);
        for (int i = 0; i < r && !info; i++)
            ev[i] = evf[i];
        free(Mf), free(G), free(evf);
    }
    if (!info)
        for (int i = 0; i < r; i++) {
            double e = ev[r - 1 - i];
            s[i] = e > 0 ? sqrt(e) : 0.0;
        }
    free(ev);
    return info ? lapack_failed(name, route == PARE_SVD_DGRAM ? "dsyevd" : "ssyevd", info, err) : PARE_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* truncated factors */

/* gesdd / gesvd with jobz / jobu = 'S' on the column-major view Wᵀ [n, m] = V·S·Uᵀ of row-major W:
 * the routine's left vectors are V [n, r], its right ones Uᵀ [r, m]. Copies the top k out. */
static pare_status truncated_direct(const char *name, const float *w, int m, int n, int k, pare_svd_route route,
                                    double *s, float *u, float *vt, pare_error *err)
{
    int r = m < n ? m : n;
    size_t total = (size_t)m * n;
    int dbl = route == PARE_SVD_DGESDD;
    size_t esz = dbl ? sizeof(double) : sizeof(float);
    void *A = malloc(total * esz), *sv = malloc((size_t)r * esz), *lv = malloc((size_t)n * r * esz);
    void *rv = malloc((size_t)r * m * esz), *superb = route == PARE_SVD_SGESVD ? malloc((size_t)r * esz) : NULL;
    pare_status st = PARE_OK;
    if (!A || !sv || !lv || !rv || (route == PARE_SVD_SGESVD && !superb)) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for a [%d, %d] SVD with factors", NM(name), m, n);
        goto done;
    }
    lapack_int info;
    if (dbl) {
        double *Ad = A;
        for (size_t i = 0; i < total; i++)
            Ad[i] = w[i];
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', n, m, Ad, n, sv, lv, n, rv, r);
    } else {
        memcpy(A, w, total * sizeof *w);
        if (route == PARE_SVD_SGESDD)
            info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', n, m, A, n, sv, lv, n, rv, r);
        else
            info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'S', 'S', n, m, A, n, sv, lv, n, rv, r, superb);
    }
    if (info) {
        st = lapack_failed(name, pare_svd_route_name(route), info, err);
        goto done;
    }
#define COPY_TOP_K(T)                                                                                                  \
    do {                                                                                                               \
        const T *svT = sv, *V = lv, *Ut = rv;                                                                          \
        for (int c = 0; c < k; c++)                                                                                    \
            s[c] = svT[c];                                                                                             \
        if (u) /* u[i][c] = U[i, c] = (Uᵀ)[c, i] */                                                                  \
            for (int i = 0; i < m; i++)                                                                                \
                for (int c = 0; c < k; c++)                                                                            \
                    u[(size_t)i * k + c] = (float)Ut[c + (size_t)i * r];                                               \
        if (vt) /* vt[c][j] = V[j, c] */                                                                               \
            for (int c = 0; c < k; c++)                                                                                \
                for (int j = 0; j < n; j++)                                                                            \
                    vt[(size_t)c * n + j] = (float)V[j + (size_t)c * n];                                               \
    } while (0)
    if (dbl)
        COPY_TOP_K(double);
    else
        COPY_TOP_K(float);
#undef COPY_TOP_K
done:
    free(A), free(sv), free(lv), free(rv), free(superb);
    return st;
}

/* The top k eigenvectors of the smaller Gram G [r, r] of W, as the rows of Z [k, r] (ascending
 * eigenvalues: the largest is row k - 1), by the route's precision and solver. */
static pare_status gram_top_vectors(const char *name, const float *w, const double *Wd, int m, int n, int k,
                                    pare_svd_route route, double *Z, pare_error *err)
{
    int r = m < n ? m : n;
    lapack_int info, found = 0;
    if (route == PARE_SVD_SGRAM) {
        float *G = malloc((size_t)r * r * sizeof *G), *ev = malloc((size_t)r * sizeof *ev);
        float *Zf = malloc((size_t)r * k * sizeof *Zf);
        lapack_int *isuppz = malloc(2 * (size_t)k * sizeof *isuppz);
        if (!G || !ev || !Zf || !isuppz) {
            free(G), free(ev), free(Zf), free(isuppz);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a %dx%d Gram matrix", NM(name), r, r);
        }
        if (m <= n) /* G = W·Wᵀ */
            cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, m, n, 1.0f, w, n, 0.0f, G, r);
        else /* G = Wᵀ·W */
            cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0f, w, n, 0.0f, G, r);
        info = LAPACKE_ssyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', r, G, r, 0.0f, 0.0f, r - k + 1, r, 0.0f, &found, ev, Zf,
                              r, isuppz);
        for (size_t i = 0; i < (size_t)r * k && !info; i++)
            Z[i] = Zf[i];
        free(G), free(ev), free(Zf), free(isuppz);
        if (!info && found != k)
            return pare_fail(err, PARE_EINVAL, "%s: LAPACK ssyevr found %d of %d eigenpairs", NM(name), (int)found, k);
        return info ? lapack_failed(name, "ssyevr", info, err) : PARE_OK;
    }
    double *G = malloc((size_t)r * r * sizeof *G), *ev = malloc((size_t)r * sizeof *ev);
    lapack_int *isuppz = route == PARE_SVD_DGRAM_TOPK ? malloc(2 * (size_t)k * sizeof *isuppz) : NULL;
    if (!G || !ev || (route == PARE_SVD_DGRAM_TOPK && !isuppz)) {
        free(G), free(ev), free(isuppz);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for a %dx%d Gram matrix", NM(name), r, r);
    }
    if (m <= n)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, m, n, 1.0, Wd, n, 0.0, G, r);
    else
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0, Wd, n, 0.0, G, r);
    /* Row-major lower = column-major upper; column-major eigenvectors [r, k] = row-major rows. */
    if (route == PARE_SVD_DGRAM_TOPK) {
        info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', r, G, r, 0.0, 0.0, r - k + 1, r, 0.0, &found, ev, Z, r,
                              isuppz);
        if (!info && found != k) {
            free(G), free(ev), free(isuppz);
            return pare_fail(err, PARE_EINVAL, "%s: LAPACK dsyevr found %d of %d eigenpairs", NM(name), (int)found, k);
        }
    } else {
        info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', r, G, r, ev);
        if (!info)
            memcpy(Z, G + (size_t)(r - k) * r, (size_t)r * k * sizeof *Z);
    }
    free(G), free(ev), free(isuppz);
    return info ? lapack_failed(name, route == PARE_SVD_DGRAM_TOPK ? "dsyevr" : "dsyevd", info, err) : PARE_OK;
}

/* Gram routes: the eigenvectors of the smaller side, then the other side by one product and a
 * normalization (s_i = ‖Wᵀ·u_i‖ or ‖W·v_i‖). */
static pare_status truncated_gram(const char *name, const float *w, int m, int n, int k, pare_svd_route route,
                                  double *s, float *u, float *vt, pare_error *err)
{
    int r = m < n ? m : n, wide = m <= n, other = wide ? n : m;
    double *Wd = double_copy_of_float(w, (size_t)m * n);
    double *Z = malloc((size_t)r * k * sizeof *Z);     /* [k, r]: top eigenvectors, ascending */
    double *P = malloc((size_t)other * k * sizeof *P); /* [k, n] = Z·W (wide) or [m, k] = W·Zᵀ (tall) */
    pare_status st = PARE_OK;
    if (!Wd || !Z || !P) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory for a rank-%d Gram SVD of [%d, %d]", NM(name), k, m, n);
        goto done;
    }
    if ((st = gram_top_vectors(name, w, Wd, m, n, k, route, Z, err)))
        goto done;
    if (wide) /* row j of P = Wᵀ·u_j */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, n, m, 1.0, Z, m, Wd, n, 0.0, P, n);
    else /* column j of P = W·v_j */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, n, 1.0, Wd, n, Z, n, 0.0, P, k);
    /* eigenvector j (ascending) becomes triplet c = k - 1 - j */
    for (int c = 0; c < k; c++) {
        int j = k - 1 - c;
        double ss = 0;
        for (int t = 0; t < other; t++) {
            double p = wide ? P[(size_t)j * n + t] : P[(size_t)t * k + j];
            ss += p * p;
        }
        double norm = sqrt(ss), inv = norm > 0 ? 1.0 / norm : 0.0;
        s[c] = norm;
        float *gram_side = wide ? u : vt, *prod_side = wide ? vt : u;
        if (gram_side)
            for (int i = 0; i < r; i++) {
                float z = (float)Z[(size_t)j * r + i];
                if (wide)
                    gram_side[(size_t)i * k + c] = z;
                else
                    gram_side[(size_t)c * n + i] = z;
            }
        if (prod_side)
            for (int t = 0; t < other; t++) {
                if (wide)
                    prod_side[(size_t)c * n + t] = (float)(P[(size_t)j * n + t] * inv);
                else
                    prod_side[(size_t)t * k + c] = (float)(P[(size_t)t * k + j] * inv);
            }
    }
    /* The norms are more accurate than the eigenvalues, so two nearly equal values may come out in
     * the wrong order by a rounding: keep them descending (the triplets stay paired; the order
     * among values equal to rounding does not change W_k). */
    for (int c = 1; c < k; c++)
        if (s[c] > s[c - 1])
            s[c] = s[c - 1];
done:
    free(Wd), free(Z), free(P);
    return st;
}

pare_status pare_svd_truncated(const char *name, const float *w, int m, int n, int k, pare_svd_route route, double *s,
                               float *u, float *vt, pare_error *err)
{
    int r = m < n ? m : n;
    if (m < 1 || n < 1 || k < 1 || k > r)
        return pare_fail(err, PARE_EINVAL, "%s: rank %d for a [%d, %d] matrix (want 1 to %d)", NM(name), k, m, n, r);
    if (route == PARE_SVD_AUTO)
        route = pare_svd_truncated_route_for(m, n, k);
    switch (route) {
    case PARE_SVD_DGESDD:
    case PARE_SVD_SGESDD:
    case PARE_SVD_SGESVD: return truncated_direct(name, w, m, n, k, route, s, u, vt, err);
    case PARE_SVD_DGRAM:
    case PARE_SVD_DGRAM_TOPK:
    case PARE_SVD_SGRAM: return truncated_gram(name, w, m, n, k, route, s, u, vt, err);
    default: return pare_fail(err, PARE_EINVAL, "%s: unknown SVD route %d", NM(name), (int)route);
    }
}

/* The LAPACK routes to singular values and to truncated SVD factors, and the route pare uses for each
 * shape and use, chosen by measurement (tools/bench_svd.c, table in docs/scale.md "SVD routes").
 *
 * Conventions as in spectrum.h: matrices are row-major [m, n]; values come back in double,
 * descending. Every entry point takes the matrix's name (NULL reads as "matrix") for its errors. */
#ifndef PARE_SVD_H
#define PARE_SVD_H

#include "error.h"

typedef enum {
    PARE_SVD_AUTO = 0,   /* the measured choice for the shape and use (pare_svd_*_route_for) */
    PARE_SVD_DGESDD,     /* double copy, LAPACKE_dgesdd (divide and conquer); the accuracy reference */
    PARE_SVD_SGESDD,     /* fp32, LAPACKE_sgesdd */
    PARE_SVD_SGESVD,     /* fp32, LAPACKE_sgesvd (QR iteration) */
    PARE_SVD_DGRAM,      /* the smaller Gram (W·Wᵀ or Wᵀ·W) in double by dsyrk, then dsyevd: every
                        * eigenvalue, and for factors every eigenvector */
    PARE_SVD_DGRAM_TOPK, /* factors only: the double Gram, dsyevr for the top k eigenpairs alone */
    PARE_SVD_SGRAM,      /* the Gram in fp32 by ssyrk; values by ssyevd, factors by ssyevr top k */
    PARE_SVD_ROUTES
} pare_svd_route;

/* "dgesdd", "sgesdd", ...; "auto" for PARE_SVD_AUTO; NULL out of range. */
const char *pare_svd_route_name(pare_svd_route route);

/* The Gram routes get the other side's vectors by one product: for a wide W (m <= n) the Gram
 * W·Wᵀ gives u_i and then Wᵀ·u_i = s_i·v_i; s_i is taken as ‖Wᵀ·u_i‖ (second-order in the error of
 * u_i, so as accurate as a direct SVD for the top values), not as sqrt(λ_i). Values far below
 * sqrt(ε)·s_1 of a Gram route are noise (spectrum.h, PARE_SVALS_GRAM, gives the error bound). */

/* The route pare_svd_values takes for an [m, n] matrix, and the one pare_svd_truncated takes for
 * rank k (never AUTO). */
pare_svd_route pare_svd_values_route_for(int m, int n);
pare_svd_route pare_svd_truncated_route_for(int m, int n, int k);

/* All min(m, n) singular values of the row-major double matrix M [m, n] (overwritten) into s.
 * route PARE_SVD_AUTO takes pare_svd_values_route_for; DGRAM_TOPK (a factors-only route) and an
 * unknown route are PARE_EINVAL, as is LAPACK info != 0; PARE_ENOMEM when out of memory. */
pare_status pare_svd_values(const char *name, double *M, int m, int n, pare_svd_route route, double *s, pare_error *err);

/* The top k singular triplets of the fp32 matrix W [m, n]: s[k] descending, u [m, k] row-major with
 * orthonormal columns, vt [k, n] row-major with orthonormal rows (u and vt may each be NULL when not
 * wanted), so that W_k = u·diag(s)·vt is the best rank-k approximation. 1 <= k <= min(m, n) (the
 * caller checks; PARE_EINVAL otherwise). route PARE_SVD_AUTO takes pare_svd_truncated_route_for. */
pare_status pare_svd_truncated(const char *name, const float *w, int m, int n, int k, pare_svd_route route, double *s,
                               float *u, float *vt, pare_error *err);

#endif

/* Sparsity-aware SVD: rank-k factors of a pruned matrix fitted where the matrix matters, by weighted
 * low-rank approximation (EM of Srebro & Jaakkola 2003) instead of a plain SVD of the sparse matrix. */
#ifndef PARE_SPARSE_SVD_H
#define PARE_SPARSE_SVD_H

#include <stddef.h>
#include "core/error.h"
#include "core/linear.h"

typedef struct {
    int max_iters;   /* EM iterations after the plain-SVD start (default 30; 0 gives the plain SVD) */
    double tol;      /* stop once an iteration lowers the objective by less than tol of it (default 1e-3) */
    double *history; /* optional [history_cap]: the objective at the start and after each accepted iteration */
    int history_cap;
    double quantile; /* pare_factorize_sparse: the importance is divided by this quantile of its values on
                         the kept weights and clipped to 1 (default 1: the maximum, no clipping); lower
                         values stop a few outsized scores from leaving every other weight near zero */
} pare_wsvd_opts;

typedef struct {
    int iters;    /* EM iterations accepted */
    int rejected; /* iterations whose objective came out higher in floating point (then it stops);
                                 0 in exact arithmetic, where EM never increases the objective */
    int history_len;
    double weight_total;    /* Σ wt·W² (the objective of the zero matrix) */
    double objective_plain; /* Σ wt (W - Z)² of the plain rank-k SVD of the sparse matrix */
    double objective;       /* of the result */
    double rel_error_plain; /* sqrt(objective_plain / weight_total) */
    double rel_error;       /* sqrt(objective / weight_total) */
    double rel_dense_error; /* ||W - A B||_F / ||W||_F, unweighted, of the result */
} pare_wsvd_report;

void pare_wsvd_defaults(pare_wsvd_opts *o);

/* Rank-k A [m, k], B [k, n] minimizing Σ_ij wt_ij (W_ij - (A B)_ij)² for weights wt in [0, 1]
 * (wt [m, n]; NULL: all 1, the plain SVD). Starts from the plain truncated SVD of W, then repeats
 * X = wt ⊙ W + (1 - wt) ⊙ (A B); A B = truncated SVD of X (each step minimizes a majorizer of the
 * objective that touches it at the current A B, so the objective never increases), until the
 * relative improvement drops below tol or max_iters. The SVD is the top-k eigenvectors of the
 * smaller Gram matrix of X, in double. A = U S^1/2, B = S^1/2 Vᵀ. rep may be NULL. */
pare_status pare_wsvd(const char *name, const float *w, const float *wt, int m, int n, int k, const pare_wsvd_opts *o,
                      float *A, float *B, pare_wsvd_report *rep, pare_error *err);

/* Replaces the masked (or dense) linear l by rank-k factors fitted with weights M ⊙ min(1, I / I_q),
 * M the mask (all ones for a dense layer), I = importance [out, in] (non-negative, e.g. the EMA of
 * |W ⊙ ∇W| that pruning kept) and I_q its o->quantile quantile over the kept weights (the maximum by
 * default, so the weights are I / max I); importance NULL weights by the mask only. An importance
 * whose quantile is zero is an error. */
pare_status pare_factorize_sparse(pare_linear *l, int rank, const float *importance, const pare_wsvd_opts *o,
                                  pare_wsvd_report *rep, pare_error *err);

#endif

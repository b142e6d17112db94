/* Low-rank factorization of a linear layer, W ~ A B (A [out, k], B [k, in]): plain SVD,
 * activation-weighted SVD (ASVD / LoRAP) and whitened SVD (SVD-LLM). */
#ifndef PARE_FACTORIZE_H
#define PARE_FACTORIZE_H

#include "calib.h"
#include "error.h"
#include "linear.h"
#include "spectrum.h"

typedef struct {
    pare_weighting weighting; /* NONE: SVD of W; ACT: SVD of W diag(||X_j||); WHITEN: SVD of W L */
    double damping;           /* WHITEN: first relative damping of the Gram (PARE_WHITEN_DAMPING) */
} pare_factor_opts;

typedef struct {
    double rel_error;          /* ||W - A B||_F / ||W||_F */
    double rel_weighted_error; /* the same measured in the weighting's metric (= rel_error for NONE) */
    double damping;            /* WHITEN: damping actually used (warn when above the request) */
    size_t params_before, params_after;
} pare_factor_report;

void pare_factor_defaults(pare_factor_opts *o);

/* Replaces l by rank-k factors; stats (the layer's input statistics) is needed for ACT and, with
 * Gram matrices, for WHITEN. The split A = U S^1/2, B = S^1/2 V^T D^-1 (or L^-1) balances the factors. */
pare_status pare_factorize_linear(pare_linear *l, int rank, const pare_factor_opts *o, const pare_input_stats *stats,
                                  pare_factor_report *rep, pare_error *err);

#endif

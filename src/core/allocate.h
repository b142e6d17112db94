/* Rank and budget allocation: given a target fraction s of decoder-block linear parameters to
 * remove, decide per matrix whether it stays dense, is factorized at a rank, or (FFN) loses channels. */
#ifndef PARE_ALLOCATE_H
#define PARE_ALLOCATE_H

#include "error.h"
#include "model.h"
#include "spectrum.h"

typedef enum { PARE_PLAN_DENSE, PARE_PLAN_FACTOR, PARE_PLAN_CHANNELS, PARE_PLAN_MASK } pare_plan_action;

typedef struct {
    pare_linear *linear;
    pare_plan_action action;
    int rank;            /* PARE_PLAN_FACTOR */
    double channel_frac; /* PARE_PLAN_CHANNELS: fraction of the block's FFN channels to remove */
    double sparsity;     /* PARE_PLAN_MASK: fraction of the matrix's weights masked */
    size_t params_before, params_after; /* weights only (biases are never removed) */
} pare_plan_item;

typedef struct {
    int count;
    pare_plan_item *items; /* in pare_model_linears order */
    size_t params_before, params_after;
} pare_plan;

/* A budget a policy cannot meet is an error (PARE_EINVAL) that names the closest feasible value,
 * e.g. "ratio 0.99 cannot be met by the uniform policy: ... largest feasible ratio 0.9805".
 *
 * Every policy keeps a factorized matrix at rank 1 or more: where a rule rounds down to rank 0 the
 * plan uses rank 1, the closest feasible choice, and its params_after says what that costs.
 *
 * Uniform: every matrix keeps the same fraction 1 - s of its weights, i.e. rank
 * floor((1 - s) m n / (m + n)), always below break-even m n / (m + n). When
 * ffn_channels is set the FFN loses a fraction s of its channels instead of being factorized. */
pare_status pare_allocate_uniform(pare_model *m, double s, int ffn_channels, pare_plan *plan, pare_error *err);

/* LoRAP: attention keeps (1 - s) of its weights, split a : 1 between (V, O) and (Q, K) (default a = 3),
 * each pair sharing one rank; the FFN loses a fraction s of its channels. With Σ = Σ_i (m_i + n_i) over
 * q, k, v, o and B = (1 - s) Σ_i m_i n_i:
 *   k_att = floor(B / Σ),  k_VO = floor(k_att Σ a / ((1 + a) c_VO)),  k_QK = floor(k_att Σ / ((1 + a) c_QK)),
 * with c_VO = (m_v + n_v) + (m_o + n_o) and c_QK likewise: for square multi-head attention (Σ = 8h,
 * c = 4h) this is the published rule k_VO = floor(k_att 2a/(1+a)), k_QK = floor(k_att 2/(1+a)). When
 * k_VO reaches the pair's break-even rank, V and O stay dense and Q, K get what is left:
 * k_QK = floor((B - P_V - P_O) / c_QK) (square: floor((1 - s) h) - h/2). */
pare_status pare_allocate_lorap(pare_model *m, double s, double a, pare_plan *plan, pare_error *err);

/* Unstructured: every block matrix loses a fraction s of its weights to a mask (Wanda, magnitude). */
pare_status pare_allocate_mask(pare_model *m, double s, pare_plan *plan, pare_error *err);

/* The spectra below are those of the matrices as they are now (pare_model_spectra_compute on m, any
 * weighting; the allocation follows the weighting's error), checked against the plan's shapes. */

/* Energy threshold: every matrix gets the smallest rank keeping a fraction `energy` in (0, 1] of its
 * (weighted) spectral energy; a matrix whose rank is at or above break-even stays dense. The ratio
 * is an outcome (params_after), not an input. */
pare_status pare_allocate_energy(pare_model *m, const pare_model_spectra *sp, double energy, pare_plan *plan,
                                 pare_error *err);

/* Global (pare's own): one budget, (1 - s) of all block-linear weights, shared by every matrix. Each
 * matrix's choices are dense (no error) or rank k below break-even, costing its relative truncation
 * error e(k) = Σ_{i>k} σ_i² / Σ σ_i² (in the weighting's metric, so the errors of different matrices
 * are comparable) and saving mn - k(m + n). Per matrix the lower convex hull of (parameters, error)
 * is taken; hull segments of all matrices are taken greedily by error added per parameter saved,
 * and the last matrix touched is set to the largest rank that meets the budget. Exact for the
 * convex relaxation; a matrix's jump from dense to below break-even is priced as one step, so no
 * rank is ever paid for that saves nothing. */
pare_status pare_allocate_global(pare_model *m, const pare_model_spectra *sp, double s, pare_plan *plan,
                                 pare_error *err);

/* Fraction of block-linear parameters the plan removes: 1 - params_after / params_before. */
double pare_plan_removed(const pare_plan *plan);

void pare_plan_free(pare_plan *plan);

#endif

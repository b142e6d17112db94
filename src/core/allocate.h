/* Rank and budget allocation: given a target fraction s of decoder-block linear parameters to
 * remove, decide per matrix whether it stays dense, is factorized at a rank, is masked, or (FFN) loses
 * channels, and how (each plan item carries its own method, so one plan can mix methods per matrix). */
#ifndef PARE_ALLOCATE_H
#define PARE_ALLOCATE_H

#include "error.h"
#include "model.h"
#include "prune.h"
#include "spectrum.h"

typedef enum { PARE_PLAN_DENSE, PARE_PLAN_FACTOR, PARE_PLAN_CHANNELS, PARE_PLAN_MASK } pare_plan_action;

/* How one planned matrix is compressed. Every item carries its own, so a plan can give attention
 * whitened factors and the FFN 2:4 Wanda masks; pare_apply_plan follows each item's, and the item's
 * params_after counts exactly what that method leaves (pare_plan_recount). */
typedef struct {
    pare_weighting weighting;    /* FACTOR: plain, activation-weighted or whitened SVD */
    pare_prune_score mask_score; /* MASK: magnitude or Wanda */
    pare_prune_scope mask_scope; /* MASK: per matrix or per output row (a plan has no global scope) */
    int nm_n, nm_m;              /* MASK: N:M semi-structured when nm_m > 0 (sparsity then 1 - n/m) */
    pare_chan_score chan_score;  /* CHANNELS */
    double keep_least;           /* CHANNELS: LoRAP's lowest-scored fraction of channels kept */
} pare_plan_how;

/* Plain SVD, magnitude masks per matrix, magnitude channel score with keep_least 0: what a plan made
 * with how = NULL counts and applies. */
void pare_plan_how_defaults(pare_plan_how *h);

typedef struct {
    pare_linear *linear;
    pare_plan_action action;
    pare_plan_how how;
    int rank;                           /* PARE_PLAN_FACTOR */
    double channel_frac;                /* PARE_PLAN_CHANNELS: fraction of the block's FFN channels to remove */
    double sparsity;                    /* PARE_PLAN_MASK: fraction of the matrix's weights masked (N:M: 1 - n/m) */
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
 * Every policy takes `how` (NULL: pare_plan_how_defaults), stamps it on every item and counts each
 * item's params_after as that method leaves it: LoRAP's channel selection with keep_least, Wanda's
 * per-row counts, N:M groups (pare_plan_recount).
 *
 * Every policy keeps a factorized matrix at rank 1 or more: where a rule rounds down to rank 0 the
 * plan uses rank 1, the closest feasible choice, and its params_after says what that costs.
 *
 * Uniform: every matrix keeps the same fraction 1 - s of its weights, i.e. rank
 * floor((1 - s) m n / (m + n)), always below break-even m n / (m + n). When
 * ffn_channels is set the FFN loses a fraction s of its channels instead of being factorized. */
pare_status pare_allocate_uniform(pare_model *m, double s, int ffn_channels, const pare_plan_how *how, pare_plan *plan,
                                  pare_error *err);

/* LoRAP: attention keeps (1 - s) of its weights, split a : 1 between (V, O) and (Q, K) (default a = 3),
 * each pair sharing one rank; the FFN loses a fraction s of its channels. With Σ = Σ_i (m_i + n_i) over
 * q, k, v, o and B = (1 - s) Σ_i m_i n_i:
 *   k_att = floor(B / Σ),  k_VO = floor(k_att Σ a / ((1 + a) c_VO)),  k_QK = floor(k_att Σ / ((1 + a) c_QK)),
 * with c_VO = (m_v + n_v) + (m_o + n_o) and c_QK likewise: for square multi-head attention (Σ = 8h,
 * c = 4h) this is the published rule k_VO = floor(k_att 2a/(1+a)), k_QK = floor(k_att 2/(1+a)). When
 * k_VO reaches the pair's break-even rank, V and O stay dense and Q, K get what is left:
 * k_QK = floor((B - P_V - P_O) / c_QK) (square: floor((1 - s) h) - h/2). */
pare_status pare_allocate_lorap(pare_model *m, double s, double a, const pare_plan_how *how, pare_plan *plan,
                                pare_error *err);

/* Unstructured: every block matrix loses a fraction s of its weights to a mask (Wanda, magnitude); with
 * how->nm_m > 0 every matrix is N:M instead and s is ignored (it may be 0). */
pare_status pare_allocate_mask(pare_model *m, double s, const pare_plan_how *how, pare_plan *plan, pare_error *err);

/* The spectra below are those of the matrices as they are now (pare_model_spectra_compute on m, any
 * weighting; the allocation follows the weighting's error), checked against the plan's shapes. */

/* Energy threshold: every matrix gets the smallest rank keeping a fraction `energy` in (0, 1] of its
 * (weighted) spectral energy; a matrix whose rank is at or above break-even stays dense. The ratio
 * is an outcome (params_after), not an input. */
pare_status pare_allocate_energy(pare_model *m, const pare_model_spectra *sp, double energy, const pare_plan_how *how,
                                 pare_plan *plan, pare_error *err);

/* Global (pare's own): one budget, (1 - s) of all block-linear weights, shared by every matrix. Each
 * matrix's choices are dense (no error) or rank k below break-even, costing its relative truncation
 * error e(k) = Σ_{i>k} σ_i² / Σ σ_i² (in the weighting's metric, so the errors of different matrices
 * are comparable) and saving mn - k(m + n). Per matrix the lower convex hull of (parameters, error)
 * is taken; hull segments of all matrices are taken greedily by error added per parameter saved,
 * and the last matrix touched is set to the largest rank that meets the budget. Exact for the
 * convex relaxation; a matrix's jump from dense to below break-even is priced as one step, so no
 * rank is ever paid for that saves nothing. */
pare_status pare_allocate_global(pare_model *m, const pare_model_spectra *sp, double s, const pare_plan_how *how,
                                 pare_plan *plan, pare_error *err);

/* Per-matrix plans built by hand (the workbench's method per matrix type): every matrix of m dense,
 * with how (NULL: defaults). Set items with pare_plan_item_set, then pare_plan_recount. */
pare_status pare_plan_dense(pare_model *m, const pare_plan_how *how, pare_plan *plan, pare_error *err);
/* Sets one item: action, amount (FACTOR: the rank; CHANNELS: the fraction of the block's channels
 * removed; MASK: the sparsity, ignored under N:M) and how (NULL: keep the item's). Counts it as
 * pare_plan_recount does. */
pare_status pare_plan_item_set(pare_model *m, pare_plan_item *it, pare_plan_action action, double amount,
                               const pare_plan_how *how, pare_error *err);
/* Recounts every item's params_after from its action and how, exactly as pare_apply_plan will leave
 * the matrix, and the plan's totals. Errors: N:M with in-features not divisible by M or not
 * 1 <= N < M, a global mask scope, a fraction outside [0, 1), channel items of one block that
 * disagree (gate, up and down must all lose the same channels). */
pare_status pare_plan_recount(pare_model *m, pare_plan *plan, pare_error *err);

/* Fraction of block-linear parameters the plan removes: 1 - params_after / params_before. */
double pare_plan_removed(const pare_plan *plan);

void pare_plan_free(pare_plan *plan);

#endif

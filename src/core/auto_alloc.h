/* `auto`, the loss-aware budget search. With SVD-LLM's whitening the dropped whitened singular values
 * are a matrix's output error on the calibration activations, so one SVD gives its error at every
 * rank; removing FFN channels (LoRAP's score and order) has an exact output error too, from the
 * down-projection's input Gram. Each curve is weighted by a loss sensitivity measured on the
 * calibration windows (the loss increase when that matrix alone is truncated, or that FFN alone
 * narrowed, to probe sizes), and one Lagrangian search over marginal predicted loss per parameter
 * chooses, for every matrix at once, dense / whitened rank k / FFN width w under one budget.
 *
 * The sensitivity pass (pare_auto_analyze) runs once; each budget solve (pare_auto_solve) takes
 * milliseconds. pare_auto_compress applies it sequentially: block i is re-decided on the outputs of
 * the already compressed blocks < i (its curves recomputed from those statistics, the budget left
 * re-solved over blocks >= i) and compressed before block i + 1 is calibrated. */
#ifndef PARE_AUTO_ALLOC_H
#define PARE_AUTO_ALLOC_H

#include <jansson.h>

#include "compress.h"

/* How the curves are weighted. KL (default) fits sensitivity = coef * E^power through two probes per
 * curve, each measuring the mean KL divergence of the next-token distribution from the dense model's
 * (low-variance: no target token's noise, so fewer windows suffice); PROBE the same through the
 * calibration-loss increase; PROBE1 one loss probe, power 1 (loss proportional to output error energy,
 * the second-order model); RELATIVE weights nothing by loss: each curve counts its error relative to
 * the matrix's output energy (the `global` policy's objective, for comparison). */
typedef enum { PARE_AUTO_PROBE, PARE_AUTO_PROBE1, PARE_AUTO_RELATIVE, PARE_AUTO_KL } pare_auto_sensitivity;
extern const char *const PARE_AUTO_SENSITIVITY_NAMES[]; /* "probe", "probe1", "relative", "kl", NULL */

typedef struct {
    pare_auto_sensitivity sensitivity; /* default PARE_AUTO_KL */
    int probe_samples;                 /* calibration windows the probes score (default 4; at most the calibration's) */
    double keep_least;                 /* LoRAP's channel selection (default 0.01) */
    int channels;                      /* 1: removing FFN channels is one of the choices (default) */
} pare_auto_opts;

void pare_auto_defaults(pare_auto_opts *o);

/* The loss model of one curve: predicted increase of the probe measure (KL from the dense model, or
 * the calibration loss; nats per token) = coef * E^power. */
typedef struct {
    double coef, power;
    int probes;
    int probe_amount[2];   /* the probe's rank, or FFN channels removed */
    double probe_error[2]; /* E there */
    double probe_dloss[2]; /* measured KL or loss increase, nats per token */
} pare_auto_sens;

/* One block matrix: E(k) = Σ_{i>k} σ_i² of its whitened spectrum, the output error energy at rank k. */
typedef struct {
    int block, kind; /* kind: pare_lin_kind */
    int m, n, r;     /* out, in, min(m, n) */
    double *err;     /* [r + 1] */
    pare_auto_sens sens;
} pare_auto_matrix;

/* One block's FFN narrowed: E(c) = ‖W_down[:, R_c] Z_{R_c}‖² with R_c the first c channels LoRAP's
 * selection removes. */
typedef struct {
    int width;                 /* channels F now */
    int max_removed;           /* at least one channel (and keep_least's) stays */
    size_t params_per_channel; /* gate and up rows plus the down column */
    double *err;               /* [max_removed + 1] */
    pare_auto_sens sens;
} pare_auto_ffn;

typedef struct pare_auto_analysis {
    int count, n_layers;
    pare_auto_matrix *mats; /* pare_model_linears order */
    pare_auto_ffn *ffn;     /* [n_layers]; width 0 where the block has no prunable FFN */
    pare_auto_opts opts;
    double base_loss;    /* the dense model's loss on the probe windows, nats per token */
    size_t probe_tokens; /* targets each probe scores */
    int probe_evals;     /* forwards the probes ran */
    double seconds;      /* wall time of the pass */
} pare_auto_analysis;

/* The sensitivity pass on m as it is (dense): one-shot calibration with Gram matrices on ids
 * [co->samples * co->len], whitened spectra, channel curves, then the probes (none for RELATIVE) on
 * the first o->probe_samples windows. m is restored after every probe. Progress stages "calibrate",
 * "spectra", "sensitivity". */
pare_status pare_auto_analyze(pare_model *m, const int32_t *ids, const pare_calib_opts *co, const pare_auto_opts *o,
                              const pare_progress *progress, pare_auto_analysis **out, pare_error *err);
void pare_auto_analysis_free(pare_auto_analysis *a);

/* The plan for removing a fraction s of m's block-linear weights (pare_plan's count): the choices that
 * minimize the summed predicted loss increase at the Lagrange multiplier that meets the budget, then
 * the room left filled by the best loss decrease per parameter, so the plan keeps at most the budget
 * and misses it by less than one rank of one matrix (or one FFN channel). Factors are whitened,
 * channels scored by LoRAP with the analysis's keep_least. A budget below what every matrix at its
 * smallest choice keeps is an error naming the largest feasible ratio. */
pare_status pare_auto_solve(pare_model *m, const pare_auto_analysis *a, double s, pare_plan *plan, pare_error *err);
/* The predicted calibration-loss increase of plan (items in pare_model_linears order, as pare_auto_solve
 * gives them, or any plan of whitened ranks and FFN channels, e.g. a uniform one) under a's loss model:
 * coef * E^power of each factorized matrix at its rank and of each narrowed FFN once, dense items 0.
 * per_item (may be NULL) gets each item's share [plan->count] (a narrowed FFN's on its down item).
 * NAN when the plan masks a matrix or does not match the analysis (nothing to predict it from). */
double pare_auto_predict(const pare_auto_analysis *a, const pare_plan *plan, double *per_item);
/* That budget check alone, from m's shapes (no analysis needed): callers refuse a ratio before the
 * sensitivity pass. */
pare_status pare_auto_check_budget(const pare_model *m, double s, const pare_auto_opts *o, pare_error *err);

/* What pare_auto_compress decided, for reports and run records. */
typedef struct {
    pare_auto_analysis *analysis; /* the dense model's sensitivities (owned) */
    pare_plan plan;               /* the decisions applied, counted before each block was compressed */
    double *predicted;            /* [plan.count] predicted loss increase of each item's choice; a channel-pruned
                                     FFN's is on its down item */
    double solve_ms;              /* one whole-model budget solve */
    double apply_seconds;         /* the sequential compression */
} pare_auto_record;

void pare_auto_record_free(pare_auto_record *r);
/* The record as JSON: the sensitivity pass (kind, probe tokens, base loss, wall time), the solve time
 * and one object per matrix: its decision (action, rank or FFN channels removed, parameters) with its
 * predicted loss increase and measured sensitivity (coef, power, probes). */
json_t *pare_auto_record_json(const pare_auto_record *r);

/* The budget check, the analysis, a first solve, then sequential
 * compression of m (calibrate's hook): each block's curves recomputed on the compressed prefix's
 * outputs and the remaining budget re-solved before that block is compressed. rec (may be NULL)
 * gets the decisions. */
pare_status pare_auto_compress(pare_model *m, const int32_t *ids, const pare_calib_opts *co, const pare_auto_opts *o,
                               double s, const pare_progress *progress, pare_apply_report *rep, pare_auto_record *rec,
                               pare_error *err);

#endif

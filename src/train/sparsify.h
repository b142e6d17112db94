/* Pruning during fine-tuning: movement scores (Sanh et al. 2020), a smoothed sensitivity score
 * (PLATON, Zhang et al. 2022), and magnitude as the zeroth-order baseline, all on the cubic sparsity
 * schedule; masks shrink in place so the gradient layout of a running trainer stays valid. */
#ifndef PARE_SPARSIFY_H
#define PARE_SPARSIFY_H

#include <stddef.h>
#include <stdint.h>
#include "backward.h"
#include "core/error.h"
#include "core/model.h"
#include "optim.h"

typedef enum {
    PARE_FOP_MOVEMENT,    /* S += -W ⊙ dL/dW every step (dense gradient of the masked weight) */
    PARE_FOP_SENSITIVITY, /* Ī ⊙ Ū: EMA of |W ⊙ dL/dW| times the EMA of its deviation from that EMA */
    PARE_FOP_MAGNITUDE    /* |W| at the time of each mask update */
} pare_fop_method;

/* "movement", "sensitivity", "magnitude" (NULL-terminated, in enum order). */
extern const char *const PARE_FOP_NAMES[];

/* What one ranking spans (pare_fop_opts.global holds one of these). */
typedef enum {
    PARE_FOP_SCOPE_MATRIX, /* every matrix pruned to the sparsity on its own */
    PARE_FOP_SCOPE_GLOBAL  /* one ranking over every block linear */
} pare_fop_scope;

/* "matrix", "global" (NULL-terminated, in enum order). */
extern const char *const PARE_FOP_SCOPE_NAMES[];

typedef struct {
    pare_fop_method method;
    double sparsity; /* final fraction of each scope's weights removed, [0, 1) (r_f = 1 - sparsity) */
    long total;      /* T: steps of the whole run */
    long warmup;     /* t_i: the first t_i steps stay dense */
    long cooldown;   /* t_f: the last t_f steps run with the final masks, frozen */
    int every;       /* masks are recomputed every `every` steps of the pruning phase (default 1) */
    int global;      /* a pare_fop_scope: 1 one ranking over every block linear; 0 one per matrix (default) */
    double beta1;    /* sensitivity: EMA rate of |W ⊙ g| (default 0.85, PLATON's) */
    double beta2;    /* sensitivity: EMA rate of the uncertainty (default 0.95) */
} pare_fop_opts;

void pare_fop_defaults(pare_fop_opts *o);
/* Checks the options (sparsity in [0, 1), warmup + cooldown < total unless sparsity is 0, every >= 1,
 * betas in [0, 1)); errors name the option. */
pare_status pare_fop_check(const pare_fop_opts *o, pare_error *err);

/* The scheduled kept fraction r_t for 0-based step t (the masks step t trains with), r_0 = 1:
 *   t < t_i:                 1
 *   t_i <= t < T - t_f:      r_f + (1 - r_f) (1 - (t - t_i) / (T - t_i - t_f))^3
 *   t >= T - t_f:            r_f */
double pare_fop_kept(const pare_fop_opts *o, long step);

/* Per matrix state, parallel to the weight [out, in]. */
typedef struct {
    pare_linear *lin;
    size_t n;      /* out * in */
    size_t offset; /* position of the first weight in the global ranking */
    float *score;  /* movement: Σ_t -W ⊙ g; sensitivity: Ī ⊙ Ū; magnitude: unused (zeros) */
    float *ema;    /* Ī: EMA of |W ⊙ g| (rate beta1) for every method: the importance the
                      sparsity-aware SVD weights by */
    float *unc;    /* Ū: EMA of |(|W ⊙ g|) - Ī| (rate beta2); kept for every method */
} pare_fop_matrix;

typedef struct {
    pare_fop_opts o;
    int count; /* the decoder-block linears, pare_model_linears order */
    pare_fop_matrix *mats;
    size_t weights; /* Σ n */
    long updates;   /* score accumulations so far */
    float *slab;
} pare_fop_state;

/* Turns every dense decoder-block linear of m into a masked one with an all-ones mask, so that a
 * trainer allocated afterwards (with PARE_GRADS_DENSE_MASKED) lays out dense gradients for them.
 * Masked layers stay as they are; a factorized one is an error (pruning needs full matrices). */
pare_status pare_fop_prepare(pare_model *m, pare_error *err);

/* State for the block linears of m, which must all be masked (pare_fop_prepare). Scores start at 0. */
pare_status pare_fop_new(pare_model *m, const pare_fop_opts *o, pare_fop_state **out, pare_error *err);
void pare_fop_free(pare_fop_state *s);

/* Adds the step's gradients to the scores: g holds the step's accumulated dense gradients of the
 * masked weights (PARE_GRADS_DENSE_MASKED) for the weights as they are now, before the update.
 * Entries already masked get no score change (their weight is zero). */
pare_status pare_fop_accumulate(pare_fop_state *s, const pare_grads *g, pare_error *err);

/* Applies the masks step t trains with, when t is an update point of the schedule (t_i <= t <=
 * T - t_f with (t - t_i) a multiple of every, or t = T - t_f; t = T, after the last step, is the
 * final update when there is no cooldown): every scope keeps the top-scored
 * weights among those still kept, so that it ends with max(⌊(1 - r_t)·n⌉, already masked) masked
 * (counts as pare_prune_count; ties keep the lower index, as pare_prune_mask). Newly masked weights
 * are set to zero in place, with their AdamW moments when opt is given (so they stay zero), and the
 * mask arrays are changed in place (the gradient layout stays valid). *changed (may be NULL) gets
 * how many were newly masked. Memory: 8 bytes per weight of the scope. */
pare_status pare_fop_apply(pare_fop_state *s, long step, pare_adamw *opt, const pare_grads *g, size_t *changed,
                           pare_error *err);

/* Fraction of the block-linear weights masked now. */
double pare_fop_sparsity(const pare_fop_state *s);
/* The matrix state of the linear named `name`, or NULL. */
const pare_fop_matrix *pare_fop_find(const pare_fop_state *s, const char *name);

#endif

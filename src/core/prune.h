/* Pruning: unstructured masks (magnitude, Wanda, N:M semi-structured) and structured FFN channel
 * pruning (LoRAP's channel score) that physically removes intermediate channels. */
#ifndef PARE_PRUNE_H
#define PARE_PRUNE_H

#include <stddef.h>
#include <stdint.h>
#include "calib.h"
#include "error.h"
#include "linear.h"
#include "model.h"

/* Conventions shared by every function here:
 * - sparsity s is the fraction removed, s in [0, 1): 0 is a valid no-op (a baseline for ablations),
 *   1 (everything) is refused. NaN is refused.
 * - counts are ⌊f·n⌋ computed as floor(f·n + 1e-9) (pare_prune_count), so that a fraction such as
 *   0.29 of 100 removes 29 although 0.29·100 is 28.999999999999996 in binary.
 * - scores are computed in double; ties are broken by position: of two equal scores the one at
 *   the lower index is kept (ranks are ordered by (score ascending, index descending), and the
 *   lowest ranks are removed). For a set of matrices the index is (position in the set, row-major
 *   index within the matrix).
 * - input norms ||X_j|| = sqrt(sumsq[j]) come from the layer's pare_input_stats; statistics taken
 *   before the layer's inputs were sliced (dim == orig_in) are mapped through kept_in, as
 *   pare_input_norms does. Non-finite or negative statistics and non-finite weights are errors
 *   naming the matrix and the index.
 * - nothing is modified unless every check passed. */

/* ---------------------------------------------------------------- unstructured (masks) */

typedef enum {
    PARE_SCORE_MAGNITUDE, /* |W_ij| */
    PARE_SCORE_WANDA      /* |W_ij| * ||X_j|| (needs the layer's input statistics) */
} pare_prune_score;

typedef enum {
    PARE_SCOPE_MATRIX, /* one threshold per matrix: ⌊s·out·in⌋ removed from each */
    PARE_SCOPE_ROW,    /* per output row: ⌊s·in⌋ removed from every row (Wanda's comparison group) */
    PARE_SCOPE_GLOBAL  /* one threshold over all weights of all matrices given: ⌊s·Σ out·in⌋ removed */
} pare_prune_scope;

/* "matrix", "row", "global" (NULL-terminated, in enum order). */
extern const char *const PARE_PRUNE_SCOPE_NAMES[];

typedef struct {
    pare_prune_score score;
    pare_prune_scope scope; /* ignored for N:M */
    double sparsity;        /* ignored for N:M (achieved there: 1 - n/m) */
    int nm_n, nm_m;         /* N:M semi-structured when nm_m > 0: in every group of nm_m consecutive
                               input weights of a row the nm_n highest-scored are kept (2:4, 4:8) */
} pare_mask_opts;

typedef struct {
    size_t weights;                     /* entries of the matrices considered */
    size_t removed;                     /* entries newly masked by this call */
    size_t masked;                      /* entries masked after the call, previously masked ones included */
    double sparsity;                    /* achieved: masked / weights */
    size_t params_before, params_after; /* pare_linear_params summed (masked layers count kept entries) */
} pare_prune_report;

/* Magnitude score, per-matrix scope, sparsity 0.5, no N:M. */
void pare_mask_defaults(pare_mask_opts *o);

/* ⌊frac·n⌋ with the 1e-9 guard above, clamped to [0, n]. */
size_t pare_prune_count(double frac, size_t n);

/* Prunes the count dense or masked layers ls[] to masks (applied with pare_linear_set_mask).
 * stats[i] holds the input statistics of ls[i]; stats (or an entry) may be NULL when the score is
 * magnitude. Layers already masked compose: previously masked entries count as removed and rank
 * first, so the mask only shrinks; with scope sparsity s the scope ends with max(⌊s·n⌋, already
 * masked) entries masked. N:M keeps in each group the top nm_n among the entries still kept.
 * Errors (PARE_EINVAL): sparsity outside [0, 1); N:M with nm_n < 1, nm_n >= nm_m or in-features not
 * divisible by nm_m; a factorized layer; Wanda without matching statistics; NaN/Inf weights or
 * statistics. rep may be NULL. Memory: 16 bytes per weight of the scope (the whole set for GLOBAL). */
pare_status pare_prune_mask(pare_linear *const *ls, const pare_input_stats *const *stats, int count,
                            const pare_mask_opts *o, pare_prune_report *rep, pare_error *err);

/* Every decoder-block linear of m (pare_model_linears order), each with its site's statistics from
 * st (may be NULL for magnitude; must cover m's layers for Wanda). GLOBAL scope spans all of them;
 * the other scopes go matrix by matrix, reporting progress per matrix (all checks come first; a
 * cancel leaves the matrices done so far pruned). */
pare_status pare_prune_model_mask(pare_model *m, const pare_calib_stats *st, const pare_mask_opts *o,
                                  pare_prune_report *rep, const pare_progress *progress, pare_error *err);

/* ---------------------------------------------------------------- structured FFN channels */

typedef enum {
    PARE_CHAN_LORAP,    /* S_i = ||(|W_up| ⊙ ||x||)_i,:|| + ||(|W_gate| ⊙ ||x||)_i,:|| + ||W_down[:,i]||·||z_i||
                           (GPT-2: ||(|W_fc| ⊙ ||x||)_i,:|| + ||W_proj[:,i]||·||z_i||); x the MLP input
                           (site PARE_IN_MLP), z the down-projection input (PARE_IN_DOWN) */
    PARE_CHAN_MAGNITUDE /* the same formula with every norm of x and z equal to 1 (no statistics) */
} pare_chan_score;

typedef struct {
    pare_chan_score score;
    double sparsity;   /* fraction of the block's current FFN channels removed, [0, 1) */
    double keep_least; /* LoRAP: the lowest-scored fraction is kept, [0, 1) (default 0.01) */
} pare_chan_opts;

typedef struct {
    int channels_before, channels_after;
    int removed;
    double sparsity;                    /* achieved: removed / channels_before */
    size_t params_before, params_after; /* gate + up + down (pare_linear_params, biases included) */
} pare_chan_report;

/* LoRAP score, sparsity 0.2, keep_least 0.01. */
void pare_chan_defaults(pare_chan_opts *o);

/* The score of every current FFN channel of b (b->up.out of them) into scores. sites is the
 * block's statistics (stats->sites[layer]), needed for PARE_CHAN_LORAP, else may be NULL.
 * Factorized or sliced gate/up/down are scored from their effective dense weights. */
pare_status pare_ffn_channel_scores(const pare_block *b, const pare_input_stats *sites, pare_chan_score score,
                                    double *scores, pare_error *err);

/* LoRAP's selection over n scores: sorted ascending (ties: higher index first, so the lower index
 * ranks as the larger), sorted positions ⌊kl·n⌋ … ⌊(kl+s)·n⌋ - 1 are removed (bounds clamped to n),
 * keep_least = 0 giving "remove the ⌊s·n⌋ lowest". keep[] receives the kept channels in their
 * original order, *n_keep their count. Errors: s or kl outside [0, 1), kl + s > 1, or a selection
 * that would remove all n channels. */
pare_status pare_chan_select(const double *scores, int n, double sparsity, double keep_least, int32_t *keep,
                             int *n_keep, pare_error *err);

/* Scores and removes the selected channels of block b: keep_rows on gate and up, keep_cols on down
 * (biases follow; kept_out / kept_in keep mapping to the loaded shape). rep may be NULL.
 * On PARE_ENOMEM during the slicing the block may be left partly sliced. */
pare_status pare_prune_ffn(pare_block *b, const pare_input_stats *sites, const pare_chan_opts *o, pare_chan_report *rep,
                           pare_error *err);

/* pare_prune_ffn on every block of m with st->sites[l] (st may be NULL for the magnitude score);
 * the report sums over the blocks. Every block is scored and checked before any is sliced; a
 * cancel from progress leaves the blocks done so far pruned. For LoRAP's sequential mode call
 * pare_prune_ffn from a pare_block_hook instead. */
pare_status pare_prune_model_ffn(pare_model *m, const pare_calib_stats *st, const pare_chan_opts *o,
                                 pare_chan_report *rep, const pare_progress *progress, pare_error *err);

#endif

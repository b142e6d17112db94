/* Applying an allocation plan to a model: factorize and channel-prune block by block, with
 * calibration statistics gathered one-shot or sequentially (each block sees the compressed ones
 * before it, as LoRAP and SparseGPT do). */
#ifndef PARE_COMPRESS_H
#define PARE_COMPRESS_H

#include "allocate.h"
#include "calib.h"
#include "error.h"
#include "factorize.h"
#include "prune.h"

/* How each matrix is factorized, masked or channel-pruned is the plan item's (pare_plan_how); the
 * options here are the application's own. */
typedef struct {
    int sequential; /* 1: calibrate block i on the output of compressed blocks < i */
} pare_apply_opts;

typedef struct {
    int factorized, channel_blocks, masked;
    double worst_rel_error;             /* largest ||W - A B|| / ||W|| over factorized matrices */
    double max_damping;                 /* largest whitening damping used */
    size_t params_before, params_after; /* decoder-block linear parameters, biases included */
} pare_apply_report;

void pare_apply_defaults(pare_apply_opts *o);

/* Compresses m in place following plan (made for m), each matrix by its item's method (weighting,
 * mask score, scope and N:M, channel score and keep_least). calib_ids [co->samples * co->len] may be
 * NULL only when nothing needs statistics (plain SVD, magnitude masks and channel scores); Gram
 * matrices are gathered when some item is whitened. */
pare_status pare_apply_plan(pare_model *m, const pare_plan *plan, const int32_t *calib_ids, const pare_calib_opts *co,
                            const pare_apply_opts *o, const pare_progress *progress, pare_apply_report *rep,
                            pare_error *err);

/* Compresses block `layer` only, as plan's items of that block say, with the block's input statistics
 * (sites: stats->sites[layer], NULL when nothing needs statistics); adds to rep's counts but not to its
 * parameter totals. For policies that decide block by block inside a calibration hook. */
pare_status pare_apply_block(pare_model *m, const pare_plan *plan, int layer, const pare_input_stats *sites,
                             pare_apply_report *rep, pare_error *err);

#endif

/* Training steps: forward, backward and an AdamW update over accumulated micro-batches, with the
 * learning-rate schedule and gradient clipping applied; the same inputs give the same model. */
#ifndef PARE_TRAIN_H
#define PARE_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "backward.h"
#include "core/error.h"
#include "core/forward.h"
#include "core/model.h"
#include "optim.h"

typedef struct {
    int batch, seq;        /* one micro-batch: sequences x tokens (default 8 x 256) */
    int accum;             /* micro-batches per optimizer step (default 1) */
    pare_adamw_opts adamw; /* default pare_adamw_defaults */
    pare_lr_schedule lr;   /* default cosine from 3e-4 to 3e-5 over 1000 steps, no warmup */
    double clip;           /* largest global gradient norm; <= 0 turns clipping off (default 1.0) */
    int grad_flags;        /* PARE_GRADS_* (e.g. keep dense gradients of masked weights) */
} pare_train_opts;

void pare_train_defaults(pare_train_opts *o);

typedef struct {
    pare_model *m;
    pare_train_opts o;
    pare_acts *acts;   /* keep_all activations for one micro-batch */
    pare_grads *grads; /* after a step: the accumulated (clipped) gradients it applied */
    pare_adamw *opt;
    int32_t *targets; /* [batch, seq] next-token targets when the caller passes none */
    long step;        /* optimizer steps taken */
} pare_trainer;

typedef struct {
    double loss;      /* mean cross-entropy over every target of the step, before the update */
    double grad_norm; /* global gradient norm before clipping */
    double lr;        /* learning rate applied */
    size_t targets;   /* targets scored */
    long step;        /* this step's 0-based index */
} pare_train_stats;

/* Allocates activations, gradients and optimizer state for m as it is now (compress first). */
pare_status pare_trainer_new(pare_model *m, const pare_train_opts *o, pare_trainer **out, pare_error *err);
void pare_trainer_free(pare_trainer *t);

/* One optimizer step over o.accum micro-batches: ids [accum, batch, seq]; targets of the same shape
 * (negative = ignored), or NULL for the next token of each position (the last one ignored). The
 * accumulated gradient is that of the mean loss over all the step's targets. progress is told after
 * each micro-batch; cancelling returns PARE_ECANCELED before the update, leaving the model as it was. */
pare_status pare_train_step(pare_trainer *t, const int32_t *ids, const int32_t *targets, const pare_progress *progress,
                            pare_train_stats *st, pare_error *err);

#endif

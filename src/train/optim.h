/* Optimization: AdamW with decoupled weight decay, learning-rate schedules, global-norm gradient
 * clipping, and the gradient-accumulation weights. */
#ifndef PARE_OPTIM_H
#define PARE_OPTIM_H

#include <stddef.h>
#include "backward.h"
#include "core/error.h"

typedef struct {
    double beta1, beta2; /* moment decay rates (default 0.9, 0.999) */
    double eps;          /* added to sqrt(v_hat) (default 1e-8) */
    double weight_decay; /* decoupled, matrices only: norms and biases never decay (default 0.01) */
} pare_adamw_opts;

void pare_adamw_defaults(pare_adamw_opts *o);

/* AdamW state: first and second moments laid out parallel to the parameter gradients of the
 * pare_grads it was made for (and so tied to that model layout). */
typedef struct {
    pare_adamw_opts o;
    long step;    /* updates taken so far */
    float *m, *v; /* [n] */
    size_t n;     /* = grads->param_floats */
    const pare_grads *g;
} pare_adamw;

pare_status pare_adamw_alloc(const pare_grads *g, const pare_adamw_opts *o, pare_adamw **out, pare_error *err);
void pare_adamw_free(pare_adamw *opt);

/* One update of every parameter in g->params from its gradient, as torch.optim.AdamW does it
 * (step t counted from 1):
 *   p <- p * (1 - lr * wd)              (matrices only)
 *   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Masked-out weights have zero gradient and zero value, so they stay exactly zero. */
pare_status pare_adamw_step(pare_adamw *opt, pare_grads *g, double lr, pare_error *err);

typedef enum { PARE_LR_COSINE, PARE_LR_LINEAR, PARE_LR_CONSTANT } pare_lr_decay;
/* "cosine", "linear", "constant", NULL: indexed by pare_lr_decay */
extern const char *const PARE_LR_DECAY_NAMES[];

/* Linear warmup to lr_max, then decay to lr_min at step `total`. For 0-based step s:
 *   s < warmup:  lr_max * (s + 1) / warmup
 *   otherwise:   p = min(1, (s - warmup) / (total - warmup))
 *                cosine:   lr_min + (lr_max - lr_min) * (1 + cos(pi p)) / 2
 *                linear:   lr_max - (lr_max - lr_min) * p
 *                constant: lr_max */
typedef struct {
    pare_lr_decay decay;
    double lr_max, lr_min;
    long warmup, total;
} pare_lr_schedule;

/* Checks the schedule's fields (0 <= lr_min <= lr_max, 0 <= warmup <= total, total >= 1). */
pare_status pare_lr_check(const pare_lr_schedule *s, pare_error *err);
double pare_lr_at(const pare_lr_schedule *s, long step);

/* Global L2 norm of the parameter gradients (summed in double). */
double pare_grads_norm(const pare_grads *g);
/* Multiplies every parameter gradient by s (not the dense gradients of masked weights, which stay
 * the raw dL/dW for pruning scores). */
void pare_grads_scale(pare_grads *g, double s);
/* Scales the parameter gradients to norm max_norm when their norm exceeds it (max_norm <= 0: never).
 * Returns the norm before clipping. */
double pare_grads_clip(pare_grads *g, double max_norm);

/* Gradient accumulation: the loss_scale for a micro-batch with n_micro targets out of n_total in the
 * whole step, so the summed gradients equal the gradient of the mean over all n_total targets. */
double pare_accum_weight(size_t n_micro, size_t n_total);

#endif

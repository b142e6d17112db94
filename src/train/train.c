/* One training step at a time: micro-batches accumulate into one gradient, weighted by their share of
 * the step's targets, which is then clipped and applied with AdamW at the scheduled learning rate. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pare_train_defaults(pare_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 8;
    o->seq = 256;
    o->accum = 1;
    pare_adamw_defaults(&o->adamw);
    o->lr = (pare_lr_schedule){PARE_LR_COSINE, 3e-4, 3e-5, 0, 1000};
    o->clip = 1.0;
}

void pare_trainer_free(pare_trainer *t)
{
    if (!t)
        return;
    pare_adamw_free(t->opt);
    pare_grads_free(t->grads);
    pare_acts_free(t->acts);
    free(t->targets);
    free(t);
}

pare_status pare_trainer_new(pare_model *m, const pare_train_opts *o, pare_trainer **out, pare_error *err)
{
    *out = NULL;
    if (o->batch < 1 || o->seq < 2 || o->accum < 1)
        return pare_fail(err, PARE_EINVAL,
                         "training batch %d x %d with %d micro-batches: need batch >= 1, "
                         "sequence >= 2 tokens, micro-batches >= 1",
                         o->batch, o->seq, o->accum);
    pare_status rc = pare_lr_check(&o->lr, err);
    if (rc)
        return rc;
    pare_trainer *t = calloc(1, sizeof *t);
    if (t)
        t->targets = malloc((size_t)o->batch * o->seq * sizeof *t->targets);
    if (!t || !t->targets) {
        pare_trainer_free(t);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the trainer");
    }
    t->m = m;
    t->o = *o;
    if ((rc = pare_acts_alloc(m, o->batch, o->seq, 1, &t->acts, err)) ||
        (rc = pare_grads_alloc(m, o->batch, o->seq, o->grad_flags, &t->grads, err)) ||
        (rc = pare_adamw_alloc(t->grads, &o->adamw, &t->opt, err))) {
        pare_trainer_free(t);
        return rc;
    }
    *out = t;
    return PARE_OK;
}

pare_status pare_train_step(pare_trainer *t, const int32_t *ids, const int32_t *targets, const pare_progress *progress,
                            pare_train_stats *st, pare_error *err)
{
    int B = t->o.batch, T = t->o.seq, K = t->o.accum;
    size_t per = (size_t)B * T;
    memset(st, 0, sizeof *st);
    /* the step's targets first: each micro-batch's weight is its share of them */
    size_t total = 0;
    for (int k = 0; k < K; k++) {
        const int32_t *tg = targets ? targets + k * per : NULL;
        if (!tg) {
            pare_shift_targets(ids + k * per, B, T, t->targets);
            tg = t->targets;
        }
        total += pare_count_targets(tg, per);
    }
    if (total == 0)
        return pare_fail(err, PARE_EINVAL, "training step %ld: every target is ignored", t->step);
    pare_grads_zero(t->grads);
    double loss = 0;
    pare_status rc = PARE_OK;
    for (int k = 0; k < K && !rc; k++) {
        const int32_t *x = ids + k * per, *tg = targets ? targets + k * per : NULL;
        if (!tg) {
            pare_shift_targets(x, B, T, t->targets);
            tg = t->targets;
        }
        size_t n = pare_count_targets(tg, per);
        if (n == 0)
            continue; /* contributes nothing to the mean */
        double l = 0;
        t->grads->loss_scale = pare_accum_weight(n, total);
        if ((rc = pare_forward(t->m, t->acts, x, B, T, PARE_LOGITS_ALL, err)) ||
            (rc = pare_loss_forward(t->m, t->acts, tg, B, T, &l, NULL, err)) ||
            (rc = pare_backward(t->m, t->acts, t->grads, x, tg, B, T, err)))
            break;
        loss += l * t->grads->loss_scale;
        char detail[96];
        snprintf(detail, sizeof detail, "step %ld: micro-batch %d/%d", t->step + 1, k + 1, K);
        rc = pare_report(progress, "train", (double)(k + 1) / K, detail, err);
    }
    t->grads->loss_scale = 1.0;
    if (rc) {
        if (rc != PARE_ECANCELED)
            pare_wrap(err, "training step %ld", t->step);
        return rc;
    }
    if (!isfinite(loss)) /* an update from it would turn every parameter into NaN */
        return pare_fail(err, PARE_EINVAL, "training step %ld: the loss is %s; stopped before the update", t->step + 1,
                         isnan(loss) ? "nan" : "inf");
    st->grad_norm = pare_grads_clip(t->grads, t->o.clip);
    st->lr = pare_lr_at(&t->o.lr, t->step);
    if ((rc = pare_adamw_step(t->opt, t->grads, st->lr, err)))
        return rc;
    st->loss = loss;
    st->targets = total;
    st->step = t->step++;
    return PARE_OK;
}

/* Fine-tuning runs on top of the training engine: the step (pruning scores and masks, mixed-rank
 * substitution, distillation) and the loop with its checkpoints and stop on a non-finite value.
 * Everything random is a hash of (seed, step, index), so step N of a resumed run sees the data and
 * draws of step N of an uninterrupted one. The token stream, checkpoints and new models live in
 * finetune_tokens.c, finetune_checkpoint.c and finetune_init.c. */
#include "finetune_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backward.h"
#include "core/parallel.h"
#include "core/rng.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void pare_ft_defaults(pare_ft_opts *o)
{
    memset(o, 0, sizeof *o);
    pare_train_defaults(&o->train);
    o->steps = 1000;
    pare_fop_defaults(&o->fop);
    o->mix_span = 0.5;
    o->distill_temp = 1.0;
}

double pare_ft_mix_prob(const pare_ft_opts *o, long step)
{
    double end = o->mix_span * (double)o->steps;
    if (!(o->mix_p0 > 0) || !(end > 0) || (double)step >= end)
        return 0.0;
    return o->mix_p0 * (1.0 - (double)step / end);
}


void pare_ft_free(pare_ft *ft)
{
    if (!ft)
        return;
    pare_trainer_free(ft->t);
    pare_fop_free(ft->fop);
    pare_acts_free(ft->tacts);
    free(ft->ids);
    free(ft->targets);
    free(ft->mix_f);
    free(ft->mix_s);
    free(ft->saved);
    free(ft->swap);
    free(ft);
}

long pare_ft_steps_done(const pare_ft *ft) { return ft->t->step; }
const pare_fop_state *pare_ft_fop(const pare_ft *ft) { return ft->fop; }
const pare_ft_opts *pare_ft_options(const pare_ft *ft) { return &ft->o; }

static int same_arch(const pare_config *a, const pare_config *b)
{
    return a->arch == b->arch && a->family == b->family && a->dim == b->dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size;
}

pare_status pare_ft_new(pare_model *m, const pare_token_stream *data, const pare_ft_opts *oin, pare_ft **out,
                        pare_error *err)
{
    *out = NULL;
    pare_ft_opts o = *oin;
    if (o.steps < 1)
        return pare_fail(err, PARE_EINVAL, "steps %ld: a run needs at least one step", o.steps);
    o.train.lr.total = o.steps;
    pare_status rc = pare_lr_check(&o.train.lr, err);
    if (rc)
        return rc;
    if (!(o.mix_p0 >= 0 && o.mix_p0 <= 1) || !(o.mix_span > 0 && o.mix_span <= 1))
        return pare_fail(err, PARE_EINVAL, "mixed rank: p0 %g must be in [0, 1] and the decay span %g in (0, 1]",
                         o.mix_p0, o.mix_span);
    if (!(o.distill >= 0 && o.distill <= 1) || !(o.distill_temp > 0) || !isfinite(o.distill_temp))
        return pare_fail(err, PARE_EINVAL, "distillation: weight %g must be in [0, 1] and temperature %g positive",
                         o.distill, o.distill_temp);
    if ((o.mix_p0 > 0 || o.distill > 0) && !o.sparse)
        return pare_fail(err, PARE_EINVAL, "mixed-rank fine-tuning and distillation need the sparse full-rank model");
    if (o.sparse && !same_arch(&o.sparse->cfg, &m->cfg))
        return pare_fail(err, PARE_EINVAL, "%s: the sparse model's architecture differs from the model's",
                         o.sparse->path);
    if (o.prune && o.mix_p0 > 0)
        return pare_fail(err, PARE_EINVAL,
                         "pruning and mixed-rank fine-tuning do not combine: prune first, "
                         "factorize, then fine-tune with mixed rank");
    if (data->n < (size_t)o.train.seq)
        return pare_fail(err, PARE_EINVAL, "%s: %zu tokens, shorter than one training window of %d", data->path,
                         data->n, o.train.seq);
    if (o.prune) {
        o.fop.total = o.steps;
        if ((rc = pare_fop_check(&o.fop, err)) || (rc = pare_fop_prepare(m, err)))
            return rc;
        o.train.grad_flags |= PARE_GRADS_DENSE_MASKED;
    }
    pare_ft *ft = calloc(1, sizeof *ft);
    if (!ft)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    ft->m = m;
    ft->data = data;
    ft->o = o;
    size_t per = (size_t)o.train.accum * o.train.batch * o.train.seq;
    ft->ids = malloc(per * sizeof *ft->ids);
    ft->targets = malloc(per * sizeof *ft->targets);
    if (!ft->ids || !ft->targets) {
        pare_ft_free(ft);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the training batch");
    }
    if ((rc = pare_trainer_new(m, &o.train, &ft->t, err)) || (o.prune && (rc = pare_fop_new(m, &o.fop, &ft->fop, err)))) {
        pare_ft_free(ft);
        return rc;
    }
    if (o.sparse) {
        int n = pare_model_linears(m, NULL, 0);
        ft->mix_f = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->mix_f);
        ft->mix_s = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->mix_s);
        ft->saved = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->saved);
        ft->swap = calloc((size_t)(n > 0 ? n : 1), sizeof *ft->swap);
        pare_linear **lf = malloc((size_t)(n > 0 ? n : 1) * sizeof *lf),
                    **ls = malloc((size_t)(n > 0 ? n : 1) * sizeof *ls);
        if (!ft->mix_f || !ft->mix_s || !ft->saved || !ft->swap || !lf || !ls) {
            free(lf);
            free(ls);
            pare_ft_free(ft);
            return pare_fail(err, PARE_ENOMEM, "out of memory");
        }
        pare_model_linears(m, lf, n);
        pare_model_linears(o.sparse, ls, n);
        for (int i = 0; i < n && !rc; i++) {
            if (lf[i]->kind != PARE_LIN_FACTORED)
                continue;
            if (strcmp(lf[i]->name, ls[i]->name) != 0 || ls[i]->kind == PARE_LIN_FACTORED || ls[i]->out != lf[i]->out ||
                ls[i]->in != lf[i]->in || (ls[i]->b != NULL) != (lf[i]->b != NULL))
                rc = pare_fail(err, PARE_EINVAL, "%s: the sparse model's %s is not a full-rank matrix of the same shape",
                               lf[i]->name, ls[i]->name);
            ft->mix_f[ft->n_mix] = lf[i];
            ft->mix_s[ft->n_mix++] = ls[i];
        }
        free(lf);
        free(ls);
        if (!rc && o.mix_p0 > 0 && ft->n_mix == 0)
            rc = pare_fail(err, PARE_EINVAL, "mixed-rank fine-tuning: the model has no factorized linear to replace");
        if (!rc && o.distill > 0)
            rc = pare_acts_alloc(o.sparse, o.train.batch, o.train.seq, 0, &ft->tacts, err);
        if (rc) {
            pare_ft_free(ft);
            return rc;
        }
    }
    *out = ft;
    return PARE_OK;
}

/* dL/dlogits of (1 - α) CE + α τ² KL(p_teacher^τ || p^τ), times scale / n_valid, in place of the student's
 * logits; returns Σ over valid rows of τ² KL. Row softmaxes in double. */
static double distill_backward(float *z, const float *tl, const int32_t *targets, int N, int V, double alpha,
                               double tau, double scale)
{
    double kl_sum = 0;
#pragma omp parallel for num_threads(pare_threads()) schedule(static) reduction(+ : kl_sum)
    for (int i = 0; i < N; i++) {
        float *row = z + (size_t)i * V;
        const float *t = tl + (size_t)i * V;
        if (targets[i] < 0) {
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        double mz = row[0], mt = t[0];
        for (int j = 1; j < V; j++) {
            mz = row[j] > mz ? row[j] : mz;
            mt = t[j] > mt ? t[j] : mt;
        }
        double sz = 0, sq = 0, st = 0;
        for (int j = 0; j < V; j++) {
            sz += exp(row[j] - mz);
            sq += exp((row[j] - mz) / tau);
            st += exp((t[j] - mt) / tau);
        }
        double lsz = log(sz), lsq = log(sq), lst = log(st), kl = 0;
        for (int j = 0; j < V; j++) {
            double lq = (row[j] - mz) / tau - lsq, lpt = (t[j] - mt) / tau - lst;
            double p = exp(row[j] - mz - lsz), q = exp(lq), pt = exp(lpt);
            kl += pt * (lpt - lq);
            double d = (1.0 - alpha) * (p - (j == targets[i])) + alpha * tau * (q - pt);
            row[j] = (float)(scale * d);
        }
        kl_sum += tau * tau * kl;
    }
    return kl_sum;
}

static int params_finite(const pare_grads *g)
{
    for (int e = 0; e < g->n_params; e++) {
        const float *p = g->params[e].param;
        for (size_t i = 0; i < g->params[e].n; i++)
            if (!isfinite(p[i]))
                return 0;
    }
    return 1;
}

int pare_ft_params_finite(const pare_ft *ft) { return params_finite(ft->t->grads); }

/* Copies the gradients of gs (laid out for the model with some linears replaced) into g (the run's
 * layout) by parameter; entries gs does not have (the replaced linears' factors) are zero. */
static void copy_grads(pare_grads *g, const pare_grads *gs)
{
    for (int e = 0; e < g->n_params; e++) {
        pare_param *d = &g->params[e];
        const pare_param *src = NULL;
        for (int f = 0; f < gs->n_params && !src; f++)
            if (gs->params[f].param == d->param && gs->params[f].n == d->n)
                src = &gs->params[f];
        if (src)
            memcpy(d->grad, src->grad, d->n * sizeof(float));
        else
            memset(d->grad, 0, d->n * sizeof(float));
    }
}

/* The table entries of linear l's factors in g (for freezing them across an update). */
static void factor_entries(pare_grads *g, const pare_linear *l, pare_param **a, pare_param **b)
{
    *a = *b = NULL;
    for (int e = 0; e < g->n_params; e++) {
        if (g->params[e].param == l->A)
            *a = &g->params[e];
        if (g->params[e].param == l->B)
            *b = &g->params[e];
    }
}

/* The factors of this step's replaced linears and their AdamW moments, copied into buf (to_buf) or
 * back from it: 3 (rank (out + in)) floats a linear, in the order of ft->mix_f. */
static void copy_swapped_factors(pare_ft *ft, float *buf, int to_buf)
{
    pare_trainer *t = ft->t;
    for (int i = 0; i < ft->n_mix; i++) {
        if (!ft->swap[i])
            continue;
        pare_param *pa[2];
        factor_entries(t->grads, ft->mix_f[i], &pa[0], &pa[1]);
        for (int j = 0; j < 2; j++) {
            size_t off = (size_t)(pa[j]->grad - t->grads->slab), n = pa[j]->n;
            float *live[] = {pa[j]->param, t->opt->m + off, t->opt->v + off};
            for (int k = 0; k < 3; k++, buf += n)
                memcpy(to_buf ? buf : live[k], to_buf ? live[k] : buf, n * sizeof *buf);
        }
    }
}

static void balance_factors(pare_model *m)
{
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **ls = malloc((size_t)(n > 0 ? n : 1) * sizeof *ls);
    if (!ls) /* an unbalanced run is still a correct run */
        return;
    pare_model_linears(m, ls, n);
    for (int i = 0; i < n; i++)
        pare_linear_balance_factors(ls[i]);
    free(ls);
}

pare_status pare_ft_step(pare_ft *ft, const pare_progress *progress, pare_ft_stats *st, pare_error *err)
{
    const pare_ft_opts *o = &ft->o;
    pare_trainer *t = ft->t;
    pare_model *m = ft->m;
    int B = o->train.batch, T = o->train.seq, K = o->train.accum, V = m->cfg.vocab_size;
    size_t per = (size_t)B * T;
    long s = t->step;
    double t0 = now_s();
    memset(st, 0, sizeof *st);
    if (s >= o->steps)
        return pare_fail(err, PARE_EINVAL, "the run's %ld steps are done", o->steps);
    pare_status rc;
    /* a run from its start trains balanced factors (the function is unchanged bit for bit; a step 0
     * tried again after a cancel finds them balanced); a resumed run keeps the parametrization its
     * optimizer moments belong to */
    if (s == 0)
        balance_factors(m);
    /* the masks this step trains with */
    if (ft->fop && (rc = pare_fop_apply(ft->fop, s, t->opt, t->grads, NULL, err)))
        return rc;
    if ((rc = pare_train_windows(ft->data, o->seed, s, K * B, T, ft->ids, err)))
        return rc;
    pare_shift_targets(ft->ids, K * B, T, ft->targets);
    size_t total = pare_count_targets(ft->targets, (size_t)K * per);
    /* mixed rank: which factorized linears run as their sparse counterpart this step */
    double p = pare_ft_mix_prob(o, s);
    int nsw = 0;
    for (int i = 0; i < ft->n_mix; i++) {
        double u = (double)(pare_hash3(o->seed ^ 0x6d69786564ull, (uint64_t)s, (uint64_t)i) >> 11) * 0x1.0p-53;
        ft->swap[i] = p > 0 && u < p;
        nsw += ft->swap[i];
    }
    pare_grads *g = t->grads, *gs = NULL;
    double loss = 0, kl = 0;
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i]) {
                ft->saved[i] = *ft->mix_f[i];
                *ft->mix_f[i] = *ft->mix_s[i]; /* borrowed: restored below, never freed through m */
            }
        if ((rc = pare_grads_alloc(m, B, T, 0, &gs, err)))
            goto restore;
        g = gs;
    }
    pare_grads_zero(g);
    for (int k = 0; k < K && !rc; k++) {
        const int32_t *x = ft->ids + k * per, *tg = ft->targets + k * per;
        size_t n = pare_count_targets(tg, per);
        if (n == 0)
            continue;
        double l = 0;
        g->loss_scale = pare_accum_weight(n, total);
        if ((rc = pare_forward(m, t->acts, x, B, T, PARE_LOGITS_ALL, err)) ||
            (rc = pare_loss_forward(m, t->acts, tg, B, T, &l, NULL, err)))
            break;
        if (o->distill > 0) {
            if ((rc = pare_forward(o->sparse, ft->tacts, x, B, T, PARE_LOGITS_ALL, err)))
                break;
            double ks = distill_backward(t->acts->logits, ft->tacts->logits, tg, B * T, V, o->distill, o->distill_temp,
                                         g->loss_scale / (double)n);
            kl += ks / (double)n * g->loss_scale;
            rc = pare_backward_logits(m, t->acts, g, x, B, T, err);
        } else {
            rc = pare_backward(m, t->acts, g, x, tg, B, T, err);
        }
        if (rc)
            break;
        loss += l * g->loss_scale;
        char detail[96];
        snprintf(detail, sizeof detail, "step %ld: micro-batch %d/%d", s + 1, k + 1, K);
        rc = pare_report(progress, "train", (double)(k + 1) / K, detail, err);
    }
    g->loss_scale = 1.0;
restore:
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i])
                *ft->mix_f[i] = ft->saved[i];
        if (gs && !rc)
            copy_grads(t->grads, gs);
        pare_grads_free(gs);
    }
    if (rc) {
        if (rc != PARE_ECANCELED)
            pare_wrap(err, "training step %ld", s + 1);
        return rc;
    }
    if (!isfinite(loss))
        return pare_fail(err, PARE_EINVAL, "step %ld: the loss is %s; stopped before the update", s + 1,
                         isnan(loss) ? "nan" : "inf");
    double norm = pare_grads_norm(t->grads);
    if (!isfinite(norm))
        return pare_fail(err, PARE_EINVAL, "step %ld: the gradient norm is %s (loss %.6g); stopped before the update",
                         s + 1, isnan(norm) ? "nan" : "inf", loss);
    if (ft->fop && (rc = pare_fop_accumulate(ft->fop, t->grads, err)))
        return rc;
    if (o->train.clip > 0 && norm > o->train.clip)
        pare_grads_scale(t->grads, o->train.clip / norm);
    double lr = pare_lr_at(&o->train.lr, s);
    /* replaced linears sat out this step: their factors and moments stay as they were */
    size_t frozen_n = 0;
    float *frozen = NULL;
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i])
                frozen_n += 3 * ((size_t)ft->mix_f[i]->rank * (ft->mix_f[i]->out + ft->mix_f[i]->in));
        frozen = malloc((frozen_n ? frozen_n : 1) * sizeof *frozen);
        if (!frozen)
            return pare_fail(err, PARE_ENOMEM, "out of memory");
        copy_swapped_factors(ft, frozen, 1);
    }
    rc = pare_adamw_step(t->opt, t->grads, lr, err);
    if (nsw) {
        copy_swapped_factors(ft, frozen, 0);
        free(frozen);
    }
    if (rc)
        return rc;
    t->step++;
    /* r_T = r_f: without a cooldown the last update point lies after the last step, so the run
     * still ends at the target sparsity */
    if (ft->fop && t->step == o->steps && (rc = pare_fop_apply(ft->fop, t->step, t->opt, t->grads, NULL, err)))
        return rc;
    st->step = s;
    st->loss = loss;
    st->distill_loss = kl;
    st->grad_norm = norm;
    st->lr = lr;
    st->kept = ft->fop ? pare_fop_kept(&ft->fop->o, s) : 1.0;
    st->sparsity = ft->fop ? pare_fop_sparsity(ft->fop) : 0.0;
    st->mix_prob = p;
    st->swapped = nsw;
    st->tokens = (size_t)K * per;
    st->seconds = now_s() - t0;
    return PARE_OK;
}

pare_status pare_ft_run(pare_ft *ft, const pare_ft_run_opts *ro, pare_error *err)
{
    long last_good = -1; /* step of the checkpoint on disk */
    const char *dir = ro->checkpoint_dir;
    if (dir) {
        long s;
        pare_error e2;
        if (pare_ft_checkpoint_info(dir, &s, NULL, &e2) == PARE_OK)
            last_good = s;
    }
    char where[4400];
    pare_status rc = PARE_OK;
    long end = ro->until > 0 && ro->until < ft->o.steps ? ro->until : ft->o.steps;
    while (ft->t->step < end) {
        pare_ft_stats st;
        rc = pare_ft_step(ft, ro->progress, &st, err);
        if (!rc && ro->on_step && ro->on_step(ro->user, &st))
            rc = pare_fail(err, PARE_ECANCELED, "cancelled after step %ld", st.step + 1);
        long done = ft->t->step;
        if (rc == PARE_ECANCELED) {
            if (dir && done > last_good && done > 0 && pare_ft_params_finite(ft)) {
                pare_error e2;
                if (pare_ft_save(ft, dir, ro->options_json, &e2) == PARE_OK)
                    pare_wrap(err, "checkpoint of step %ld saved in %s", done, dir);
            }
            return rc;
        }
        if (rc) {
            if (last_good >= 0)
                snprintf(where, sizeof where, "the last good checkpoint is %s (step %ld)", dir, last_good);
            else
                snprintf(where, sizeof where, "%s", dir ? "no checkpoint was written" : "no checkpoint folder was set");
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            pare_fail(err, rc, "%s; the run stopped: %s", msg, where);
            return rc;
        }
        int due = dir && (done == end || (ro->checkpoint_every > 0 && done % ro->checkpoint_every == 0));
        if (due) {
            if (!pare_ft_params_finite(ft)) {
                if (last_good >= 0)
                    snprintf(where, sizeof where, "the last good checkpoint is %s (step %ld)", dir, last_good);
                else
                    snprintf(where, sizeof where, "no checkpoint was written");
                return pare_fail(err, PARE_EINVAL,
                                 "step %ld left non-finite parameters (loss %.6g); the run stopped "
                                 "without checkpointing them: %s",
                                 done, st.loss, where);
            }
            if ((rc = pare_ft_save(ft, dir, ro->options_json, err)))
                return rc;
            last_good = done;
        }
    }
    return PARE_OK;
}

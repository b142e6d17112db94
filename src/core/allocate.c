/* Allocation policies: uniform ranks and LoRAP's attention split, generalized by parameter counts. */
#include "allocate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t weights(const pare_linear *l) { return (size_t)l->out * l->in; }
/* A rank saves parameters only strictly below break-even m n / (m + n): k (m + n) < m n. */
static int saves(const pare_linear *l, long long k) { return k * (l->out + l->in) < (long long)weights(l); }

static pare_status check_ratio(double s, pare_error *err)
{
    if (!(s > 0.0 && s < 1.0))
        return pare_fail(err, PARE_EINVAL, "ratio %g: the fraction of parameters to remove must be in (0, 1)", s);
    return PARE_OK;
}

static pare_status plan_init(pare_model *m, pare_plan *plan, pare_error *err)
{
    memset(plan, 0, sizeof *plan);
    pare_linear *lin[4096];
    int n = pare_model_linears(m, lin, 4096);
    plan->items = calloc((size_t)n, sizeof *plan->items);
    if (!plan->items)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    plan->count = n;
    for (int i = 0; i < n; i++) {
        pare_plan_item *it = &plan->items[i];
        it->linear = lin[i];
        it->action = PARE_PLAN_DENSE;
        it->params_before = it->params_after = weights(lin[i]);
    }
    return PARE_OK;
}

static void set_factor(pare_plan_item *it, int k)
{
    const pare_linear *l = it->linear;
    if (k >= 1 && saves(l, k)) {
        it->action = PARE_PLAN_FACTOR;
        it->rank = k;
        it->params_after = (size_t)k * (l->out + l->in);
    } else if (k < 1) { /* nothing left to keep: the smallest factorization */
        it->action = PARE_PLAN_FACTOR;
        it->rank = 1;
        it->params_after = (size_t)(l->out + l->in);
    }
}

/* The FFN of a block loses a fraction s of its channels: gate/up rows and down columns. */
static void set_channels(pare_plan *plan, const pare_block *b, double s)
{
    int F = b->up.out, removed = (int)floor(s * F + 1e-9);
    for (int i = 0; i < plan->count; i++) {
        pare_plan_item *it = &plan->items[i];
        if (it->linear != &b->gate && it->linear != &b->up && it->linear != &b->down)
            continue;
        it->action = PARE_PLAN_CHANNELS;
        it->channel_frac = s;
        const pare_linear *l = it->linear;
        it->params_after = it->linear == &b->down ? (size_t)l->out * (F - removed) : (size_t)(F - removed) * l->in;
    }
}

static void plan_totals(pare_plan *plan)
{
    plan->params_before = plan->params_after = 0;
    for (int i = 0; i < plan->count; i++) {
        plan->params_before += plan->items[i].params_before;
        plan->params_after += plan->items[i].params_after;
    }
}

static pare_plan_item *item_for(pare_plan *plan, const pare_linear *l)
{
    for (int i = 0; i < plan->count; i++)
        if (plan->items[i].linear == l)
            return &plan->items[i];
    return NULL;
}

pare_status pare_allocate_uniform(pare_model *m, double s, int ffn_channels, pare_plan *plan, pare_error *err)
{
    pare_status rc = check_ratio(s, err);
    if (rc || (rc = plan_init(m, plan, err)))
        return rc;
    for (int i = 0; i < plan->count; i++) {
        pare_linear *l = plan->items[i].linear;
        set_factor(&plan->items[i], (int)floor((1.0 - s) * (double)weights(l) / (l->out + l->in)));
    }
    if (ffn_channels)
        for (int b = 0; b < m->cfg.n_layers; b++)
            set_channels(plan, &m->blocks[b], s);
    plan_totals(plan);
    return PARE_OK;
}

pare_status pare_allocate_lorap(pare_model *m, double s, double a, pare_plan *plan, pare_error *err)
{
    pare_status rc = check_ratio(s, err);
    if (rc)
        return rc;
    if (!(a > 0.0))
        return pare_fail(err, PARE_EINVAL, "split %g: the (V,O) : (Q,K) parameter split must be positive", a);
    if ((rc = plan_init(m, plan, err)))
        return rc;
    for (int bi = 0; bi < m->cfg.n_layers; bi++) {
        pare_block *b = &m->blocks[bi];
        double c_qk = (b->q.out + b->q.in) + (b->k.out + b->k.in);
        double c_vo = (b->v.out + b->v.in) + (b->o.out + b->o.in);
        double sigma = c_qk + c_vo;
        double budget = (1.0 - s) * (double)(weights(&b->q) + weights(&b->k) + weights(&b->v) + weights(&b->o));
        long long k_att = (long long)floor(budget / sigma + 1e-9);
        int k_vo = (int)floor((double)k_att * sigma * a / ((1.0 + a) * c_vo) + 1e-9);
        int k_qk = (int)floor((double)k_att * sigma / ((1.0 + a) * c_qk) + 1e-9);
        /* a pair sharing rank k saves parameters only while k c < P_1 + P_2 */
        if ((double)k_vo * c_vo >= (double)(weights(&b->v) + weights(&b->o))) {
            k_vo = -1; /* dense */
            k_qk = (int)floor((budget - (double)(weights(&b->v) + weights(&b->o))) / c_qk + 1e-9);
        }
        if ((double)k_qk * c_qk >= (double)(weights(&b->q) + weights(&b->k)))
            k_qk = -1;
        pare_linear *qk[2] = {&b->q, &b->k}, *vo[2] = {&b->v, &b->o};
        for (int j = 0; j < 2; j++) { /* -1 marks a pair that stays dense */
            if (k_qk >= 0)
                set_factor(item_for(plan, qk[j]), k_qk);
            if (k_vo >= 0)
                set_factor(item_for(plan, vo[j]), k_vo);
        }
        set_channels(plan, b, s);
    }
    plan_totals(plan);
    return PARE_OK;
}

void pare_plan_free(pare_plan *plan)
{
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}

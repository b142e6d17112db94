/* Allocation: LoRAP's rule reproduced exactly on square multi-head attention, its parameter-count
 * generalization under GQA, uniform ranks, break-even handling and bad ratios. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/allocate.h"
#include "fixture.h"
#include "harness.h"

static const pare_plan_item *find(const pare_plan *p, const pare_linear *l)
{
    for (int i = 0; i < p->count; i++)
        if (p->items[i].linear == l)
            return &p->items[i];
    return NULL;
}

/* rank of a plan item, or -1 for dense */
static int rank_of(const pare_plan *p, const pare_linear *l)
{
    const pare_plan_item *it = find(p, l);
    return it && it->action == PARE_PLAN_FACTOR ? it->rank : -1;
}

static void test_lorap_published_rule(void)
{
    pare_model *m = fixture_model("gpt2", 1); /* square attention: q, k, v, o all [h, h] */
    if (!m)
        return;
    int h = m->cfg.dim;
    CHECK(m->blocks[0].k.out == h && m->blocks[0].v.out == h);
    const double ratios[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
    const double splits[] = {1, 2, 3, 4};
    for (int si = 0; si < 9; si++)
        for (int ai = 0; ai < 4; ai++) {
            double s = ratios[si], a = splits[ai];
            int k_att = (int)floor((1 - s) * h / 2);
            int k_vo = (int)floor(k_att * 2 * a / (1 + a)), k_qk = (int)floor(k_att * 2 / (1 + a));
            if (k_vo >= h / 2) {
                k_vo = -1;
                k_qk = (int)floor((1 - s) * h) - h / 2;
            }
            if (k_qk >= h / 2)
                k_qk = -1;
            /* pare keeps at least rank 1 where the formula rounds down to 0 (the closest feasible plan) */
            if (k_qk == 0)
                k_qk = 1;
            if (k_vo == 0)
                k_vo = 1;
            pare_plan plan;
            pare_error err = {0};
            CHECKF(pare_allocate_lorap(m, s, a, &plan, &err) == PARE_OK, "%s", err.msg);
            const pare_block *b = &m->blocks[1];
            int gq = rank_of(&plan, &b->q), gk = rank_of(&plan, &b->k), gv = rank_of(&plan, &b->v), go = rank_of(&plan, &b->o);
            CHECKF(gq == k_qk && gk == k_qk && gv == k_vo && go == k_vo,
                   "s=%.1f a=%.0f: got QK %d/%d VO %d/%d, published rule QK %d VO %d", s, a, gq, gk, gv, go, k_qk, k_vo);
            /* the FFN loses floor(s F) channels */
            const pare_plan_item *up = find(&plan, &b->up);
            CHECK(up && up->action == PARE_PLAN_CHANNELS && up->channel_frac == s);
            pare_plan_free(&plan);
        }
    pare_model_free(m);
}

/* Under GQA the split is by parameters: attention keeps at most (1 - s) of its weights, within one
 * rank step of each pair, and V,O : Q,K is close to a : 1. */
static void test_lorap_gqa_budget(void)
{
    pare_model *m = fixture_model("llama", 0);
    if (!m)
        return;
    const pare_block *b = &m->blocks[0];
    CHECK(b->k.out < b->q.out); /* the fixture uses grouped-query attention */
    double P = (double)b->q.out * b->q.in + (double)b->k.out * b->k.in + (double)b->v.out * b->v.in + (double)b->o.out * b->o.in;
    double c_qk = b->q.out + b->q.in + b->k.out + b->k.in, c_vo = b->v.out + b->v.in + b->o.out + b->o.in;
    for (double s = 0.5; s < 0.85; s += 0.1) { /* at 0.9 both ranks bottom out at 1 */
        pare_plan plan;
        pare_error err = {0};
        CHECK(pare_allocate_lorap(m, s, 3.0, &plan, &err) == PARE_OK);
        int kq = rank_of(&plan, &b->q), kv = rank_of(&plan, &b->v);
        CHECKF(kq > 0 && kv > 0 && rank_of(&plan, &b->k) == kq && rank_of(&plan, &b->o) == kv, "s=%.1f: QK %d VO %d", s, kq, kv);
        double kept = kq * c_qk + kv * c_vo;
        CHECKF(kept <= (1 - s) * P + 1e-6 && kept >= (1 - s) * P - c_qk - c_vo - 2 * (c_qk + c_vo),
               "s=%.1f: attention keeps %.0f of budget %.0f", s, kept, (1 - s) * P);
        CHECKF(fabs(kv * c_vo / (kq * c_qk) - 3.0) < 1.0, "s=%.1f: split %.2f", s, kv * c_vo / (kq * c_qk));
        pare_plan_free(&plan);
    }
    pare_model_free(m);
}

static void test_uniform(void)
{
    pare_model *m = fixture_model("u", 0);
    if (!m)
        return;
    pare_plan plan;
    pare_error err = {0};
    CHECK(pare_allocate_uniform(m, 0.6, 0, &plan, &err) == PARE_OK);
    for (int i = 0; i < plan.count; i++) {
        const pare_plan_item *it = &plan.items[i];
        const pare_linear *l = it->linear;
        int k = (int)floor(0.4 * l->out * l->in / (l->out + l->in));
        if ((long long)k * (l->out + l->in) < (long long)l->out * l->in)
            CHECKF(it->action == PARE_PLAN_FACTOR && it->rank == k && it->params_after == (size_t)k * (l->out + l->in),
                   "%s: rank %d, want %d", l->name, it->rank, k);
        else
            CHECK(it->action == PARE_PLAN_DENSE);
    }
    CHECK(plan.params_after <= 0.4 * plan.params_before + 1);
    pare_plan_free(&plan);
    /* keeping (1 - s) of a matrix's weights always means a rank strictly below break-even */
    CHECK(pare_allocate_uniform(m, 0.05, 0, &plan, &err) == PARE_OK);
    for (int i = 0; i < plan.count; i++)
        CHECK(plan.items[i].action == PARE_PLAN_FACTOR && plan.items[i].rank < plan.items[i].linear->out);
    CHECK(plan.params_after < plan.params_before);
    pare_plan_free(&plan);
    CHECK(pare_allocate_uniform(m, 0.3, 1, &plan, &err) == PARE_OK);
    CHECK(find(&plan, &m->blocks[0].down)->action == PARE_PLAN_CHANNELS);
    pare_plan_free(&plan);
    pare_model_free(m);
}

static void test_bad_ratios(void)
{
    pare_model *m = fixture_model("bad", 0);
    if (!m)
        return;
    pare_plan plan;
    pare_error err = {0};
    const double bad[] = {0.0, 1.0, -0.2, 1.5, NAN};
    for (int i = 0; i < 5; i++) {
        CHECK(pare_allocate_uniform(m, bad[i], 0, &plan, &err) == PARE_EINVAL && strstr(err.msg, "ratio"));
        CHECK(pare_allocate_lorap(m, bad[i], 3, &plan, &err) == PARE_EINVAL && strstr(err.msg, "(0, 1)"));
    }
    CHECK(pare_allocate_lorap(m, 0.2, 0.0, &plan, &err) == PARE_EINVAL && strstr(err.msg, "split"));
    pare_model_free(m);
}

void suite_allocate(void);
void suite_allocate(void)
{
    RUN(test_lorap_published_rule);
    RUN(test_lorap_gqa_budget);
    RUN(test_uniform);
    RUN(test_bad_ratios);
}

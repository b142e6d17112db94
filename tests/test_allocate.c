/* Allocation: LoRAP's rule reproduced exactly on square multi-head attention, its parameter-count
 * generalization under GQA, uniform ranks, break-even handling, bad ratios, and plans whose counts are
 * what applying them leaves (per-matrix methods included). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/allocate.h"
#include "core/compress.h"
#include "core/method.h"
#include "core/parallel.h"
#include "core/spectrum.h"
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
            if (k_att == 0) { /* rank 1 everywhere is more than the budget: no policy can meet it */
                CHECKF(pare_allocate_lorap(m, s, a, NULL, &plan, &err) == PARE_EINVAL &&
                           strstr(err.msg, "largest feasible ratio"),
                       "s=%.1f: %s", s, err.msg);
                continue;
            }
            CHECKF(pare_allocate_lorap(m, s, a, NULL, &plan, &err) == PARE_OK, "%s", err.msg);
            const pare_block *b = &m->blocks[1];
            int gq = rank_of(&plan, &b->q), gk = rank_of(&plan, &b->k), gv = rank_of(&plan, &b->v),
                go = rank_of(&plan, &b->o);
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
    double P = (double)b->q.out * b->q.in + (double)b->k.out * b->k.in + (double)b->v.out * b->v.in +
               (double)b->o.out * b->o.in;
    double c_qk = b->q.out + b->q.in + b->k.out + b->k.in, c_vo = b->v.out + b->v.in + b->o.out + b->o.in;
    for (double s = 0.5; s < 0.85; s += 0.1) { /* at 0.9 both ranks bottom out at 1 */
        pare_plan plan;
        pare_error err = {0};
        CHECK(pare_allocate_lorap(m, s, 3.0, NULL, &plan, &err) == PARE_OK);
        int kq = rank_of(&plan, &b->q), kv = rank_of(&plan, &b->v);
        CHECKF(kq > 0 && kv > 0 && rank_of(&plan, &b->k) == kq && rank_of(&plan, &b->o) == kv, "s=%.1f: QK %d VO %d", s,
               kq, kv);
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
    CHECK(pare_allocate_uniform(m, 0.6, 0, NULL, &plan, &err) == PARE_OK);
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
    CHECK(pare_allocate_uniform(m, 0.05, 0, NULL, &plan, &err) == PARE_OK);
    for (int i = 0; i < plan.count; i++)
        CHECK(plan.items[i].action == PARE_PLAN_FACTOR && plan.items[i].rank < plan.items[i].linear->out);
    CHECK(plan.params_after < plan.params_before);
    pare_plan_free(&plan);
    CHECK(pare_allocate_uniform(m, 0.3, 1, NULL, &plan, &err) == PARE_OK);
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
        CHECK(pare_allocate_uniform(m, bad[i], 0, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "ratio"));
        CHECK(pare_allocate_lorap(m, bad[i], 3, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "(0, 1)"));
    }
    CHECK(pare_allocate_lorap(m, 0.2, 0.0, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "split"));
    pare_model_free(m);
}

/* The closest feasible value named in an infeasible-budget error must itself be feasible, and just so. */
static void check_feasible_hint(pare_model *m, const char *policy, pare_error *err)
{
    const char *p = strstr(err->msg, "largest feasible ratio ");
    CHECKF(p != NULL, "%s: %s", policy, err->msg);
    if (!p)
        return;
    double best = atof(p + strlen("largest feasible ratio "));
    pare_plan plan;
    pare_error e2 = {0};
    pare_model_spectra *sp = NULL;
    CHECK(pare_model_spectra_weighted(m, NULL, PARE_WEIGHT_NONE, NULL, &sp, &e2) == PARE_OK);
    pare_status ok, over;
    double above = best + 2e-4;
    if (strcmp(policy, "uniform") == 0) {
        ok = pare_allocate_uniform(m, best, 0, NULL, &plan, &e2);
        if (!ok)
            pare_plan_free(&plan);
        over = pare_allocate_uniform(m, above, 0, NULL, &plan, &e2);
    } else if (strcmp(policy, "lorap") == 0) {
        ok = pare_allocate_lorap(m, best, 3, NULL, &plan, &e2);
        if (!ok)
            pare_plan_free(&plan);
        over = pare_allocate_lorap(m, above, 3, NULL, &plan, &e2);
    } else {
        ok = pare_allocate_global(m, sp, best, NULL, &plan, &e2);
        if (!ok) {
            CHECKF(plan.params_after <= (1 - best) * plan.params_before + 1e-6, "%s at %.4f: %zu of %zu", policy, best,
                   plan.params_after, plan.params_before);
            pare_plan_free(&plan);
        }
        over = pare_allocate_global(m, sp, above, NULL, &plan, &e2);
    }
    CHECKF(ok == PARE_OK, "%s at the named ratio %.4f: %s", policy, best, e2.msg);
    CHECKF(over == PARE_EINVAL, "%s at %.4f should be infeasible", policy, above);
    if (!over)
        pare_plan_free(&plan);
    pare_model_spectra_free(sp);
}

static void test_infeasible_budgets(void)
{
    pare_model *m = fixture_model("infeasible", 0);
    if (!m)
        return;
    pare_plan plan;
    pare_error err = {0};
    pare_model_spectra *sp = NULL;
    CHECK(pare_model_spectra_weighted(m, NULL, PARE_WEIGHT_NONE, NULL, &sp, &err) == PARE_OK);
    CHECK(pare_allocate_uniform(m, 0.999, 0, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "uniform"));
    check_feasible_hint(m, "uniform", &err);
    CHECK(pare_allocate_lorap(m, 0.999, 3, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "LoRAP"));
    check_feasible_hint(m, "lorap", &err);
    CHECK(pare_allocate_global(m, sp, 0.999, NULL, &plan, &err) == PARE_EINVAL && strstr(err.msg, "global"));
    check_feasible_hint(m, "global", &err);
    pare_model_spectra_free(sp);
    pare_model_free(m);
}

static double sq(double x) { return x * x; }

/* Σ over matrices of the relative squared truncation error a plan leaves (0 for dense). */
static double plan_error(const pare_plan *plan, const pare_model_spectra *sp)
{
    double e = 0;
    for (int i = 0; i < plan->count; i++) {
        const pare_matrix_spectrum *ms = &sp->mats[i];
        if (plan->items[i].action == PARE_PLAN_FACTOR)
            e += sq(pare_spectrum_trunc_error(ms->s, ms->stats.r, plan->items[i].rank));
    }
    return e;
}

static void test_global(void)
{
    pare_model *m = fixture_model("global", 0);
    if (!m)
        return;
    pare_calib_stats *cs = fixture_calibrate(m, 4, 16, 0);
    pare_model_spectra *sp = NULL;
    pare_error err = {0};
    CHECKF(cs && pare_model_spectra_weighted(m, cs, PARE_WEIGHT_ACT, NULL, &sp, &err) == PARE_OK, "%s", err.msg);
    if (!sp)
        goto done;
    for (double s = 0.1; s < 0.75; s += 0.1) {
        pare_plan g, u;
        CHECKF(pare_allocate_global(m, sp, s, NULL, &g, &err) == PARE_OK, "s=%.1f: %s", s, err.msg);
        CHECK(pare_allocate_uniform(m, s, 0, NULL, &u, &err) == PARE_OK);
        /* the budget is met, and tightly: what is left over is less than one rank of one matrix */
        int widest = 0;
        for (int i = 0; i < g.count; i++) {
            const pare_linear *l = g.items[i].linear;
            widest = l->out + l->in > widest ? l->out + l->in : widest;
            if (g.items[i].action == PARE_PLAN_FACTOR) /* never at or above break-even */
                CHECKF((long long)g.items[i].rank * (l->out + l->in) < (long long)l->out * l->in, "%s rank %d", l->name,
                       g.items[i].rank);
            else
                CHECK(g.items[i].action == PARE_PLAN_DENSE && g.items[i].params_after == (size_t)l->out * l->in);
        }
        double target = (1 - s) * (double)g.params_before;
        CHECKF(g.params_after <= target + 1e-6 && g.params_after > target - widest, "s=%.1f: %zu params for %.0f", s,
               g.params_after, target);
        /* choosing the ranks together never loses to uniform ranks at no fewer parameters */
        if (u.params_after >= g.params_after)
            CHECKF(plan_error(&g, sp) <= plan_error(&u, sp) + 1e-12, "s=%.1f: global %.5f, uniform %.5f", s,
                   plan_error(&g, sp), plan_error(&u, sp));
        pare_plan_free(&g);
        pare_plan_free(&u);
    }
    /* a matrix whose weighted spectrum is concentrated is cut first: scale one matrix's tail to zero */
    {
        pare_linear *lin[64];
        int nl = pare_model_linears(m, lin, 64);
        pare_matrix_spectrum *ms = &sp->mats[0];
        for (int i = 2; i < ms->stats.r; i++)
            ms->s[i] = 0;
        pare_plan g;
        CHECK(pare_allocate_global(m, sp, 0.05, NULL, &g, &err) == PARE_OK);
        /* its cut to rank 2 costs nothing and saves more than 5%: it pays for the whole budget alone */
        CHECK((double)(lin[0]->out * lin[0]->in - 2 * (lin[0]->out + lin[0]->in)) >= 0.05 * (double)g.params_before);
        CHECKF(g.items[0].action == PARE_PLAN_FACTOR &&
                   pare_spectrum_trunc_error(ms->s, ms->stats.r, g.items[0].rank) == 0,
               "%s: rank %d", lin[0]->name, g.items[0].rank);
        for (int i = 1; i < g.count; i++)
            CHECKF(g.items[i].action == PARE_PLAN_DENSE, "%s is not dense", lin[i]->name);
        CHECK(nl == g.count);
        pare_plan_free(&g);
    }
    /* spectra of other shapes are refused */
    sp->mats[1].m++;
    pare_plan g;
    CHECK(pare_allocate_global(m, sp, 0.2, NULL, &g, &err) == PARE_EINVAL && strstr(err.msg, sp->mats[1].name));
    sp->mats[1].m--;
done:
    pare_model_spectra_free(sp);
    pare_calib_free(cs);
    pare_model_free(m);
}

static void test_energy_and_mask(void)
{
    pare_model *m = fixture_model("energy", 1);
    if (!m)
        return;
    pare_model_spectra *sp = NULL;
    pare_error err = {0};
    CHECK(pare_model_spectra_weighted(m, NULL, PARE_WEIGHT_NONE, NULL, &sp, &err) == PARE_OK);
    const double levels[] = {0.3, 0.6, 0.9, 0.99, 1.0};
    for (int li = 0; li < 5 && sp; li++) {
        pare_plan p;
        CHECK(pare_allocate_energy(m, sp, levels[li], NULL, &p, &err) == PARE_OK);
        for (int i = 0; i < p.count; i++) {
            const pare_linear *l = p.items[i].linear;
            int k = pare_spectrum_energy_rank(sp->mats[i].s, sp->mats[i].stats.r, levels[li]);
            if ((long long)k * (l->out + l->in) < (long long)l->out * l->in)
                CHECKF(p.items[i].action == PARE_PLAN_FACTOR && p.items[i].rank == k, "%s: %d vs %d", l->name,
                       p.items[i].rank, k);
            else
                CHECK(p.items[i].action == PARE_PLAN_DENSE);
            /* the rank keeps the energy asked for, one less does not */
            if (p.items[i].action == PARE_PLAN_FACTOR) {
                double e = pare_spectrum_trunc_error(sp->mats[i].s, sp->mats[i].stats.r, k);
                double e1 = pare_spectrum_trunc_error(sp->mats[i].s, sp->mats[i].stats.r, k - 1);
                CHECK(1 - e * e >= levels[li] - 1e-9 && (k == 1 || 1 - e1 * e1 < levels[li] + 1e-9));
            }
        }
        pare_plan_free(&p);
    }
    CHECK(pare_allocate_energy(m, sp, 0.0, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "energy"));
    CHECK(pare_allocate_energy(m, sp, 1.5, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "energy"));
    /* unstructured masks: every matrix loses floor(s * weights) */
    pare_plan p;
    CHECK(pare_allocate_mask(m, 0.37, NULL, &p, &err) == PARE_OK);
    for (int i = 0; i < p.count; i++) {
        size_t w = (size_t)p.items[i].linear->out * p.items[i].linear->in;
        CHECK(p.items[i].action == PARE_PLAN_MASK && p.items[i].sparsity == 0.37 &&
              p.items[i].params_after == w - (size_t)floor(0.37 * (double)w + 1e-9));
    }
    CHECK(fabs(pare_plan_removed(&p) - 0.37) < 0.01);
    pare_plan_free(&p);
    CHECK(pare_allocate_mask(m, 1.0, NULL, &p, &err) == PARE_EINVAL);
    pare_model_spectra_free(sp);
    pare_model_free(m);
}

/* Applies plan to m (made for m) and checks that every matrix and the totals have exactly the
 * parameters the plan counted. */
static void check_applied(pare_model *m, pare_plan *plan, const int32_t *ids, const pare_calib_opts *co, int sequential,
                          const char *tag)
{
    pare_apply_opts ao;
    pare_apply_defaults(&ao);
    ao.sequential = sequential;
    pare_apply_report rep;
    pare_error err = {0};
    CHECKF(pare_apply_plan(m, plan, ids, co, &ao, NULL, &rep, &err) == PARE_OK, "%s: %s", tag, err.msg);
    CHECKF(rep.params_after == plan->params_after, "%s: the plan counts %zu block-linear weights, compression left %zu",
           tag, plan->params_after, rep.params_after);
    for (int i = 0; i < plan->count; i++) {
        const pare_plan_item *it = &plan->items[i];
        CHECKF(pare_linear_params(it->linear) == it->params_after, "%s: %s planned %zu, has %zu", tag, it->linear->name,
               it->params_after, pare_linear_params(it->linear));
    }
}

/* The plans' parameter counts equal what applying them leaves, matrix by matrix: LoRAP (channel
 * selection with keep_least, which can remove one channel more than floor(s F)), Wanda per output row
 * at a sparsity that does not divide the rows, magnitude per matrix, N:M, and hand-made plans that mix
 * methods per matrix (whitened factors beside 2:4 Wanda masks; magnitude masks beside LoRAP channels). */
static void test_plan_counts_match_compression(void)
{
    pare_model *base = fixture_model("plancount", 0);
    if (!base)
        return;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = 4;
    co.len = 32;
    int32_t *ids = fixture_ids(base, co.samples, co.len);
    pare_error err = {0};
    for (int i = 0; i < base->cfg.n_layers; i++)
        CHECK(!base->blocks[i].q.b && !base->blocks[i].down.b); /* weights are all there is to count */
    static const struct {
        const char *method;
        double ratio, keep_least;
        int nm_n, nm_m;
    } cases[] = {{"lorap", 0.17, 0.01, 0, 0},   {"lorap", 0.3, 0.07, 0, 0},      {"lorap-magnitude", 0.45, 0.03, 0, 0},
                 {"wanda", 0.37, 0.01, 0, 0},   {"magnitude", 0.37, 0.01, 0, 0}, {"wanda", 0.2, 0.01, 2, 4},
                 {"magnitude", 0.2, 0.01, 4, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pare_model *m = NULL;
        CHECK(pare_model_clone(base, &m, &err) == PARE_OK);
        const pare_method *me = pare_method_find(cases[c].method);
        pare_method_opts mo;
        pare_method_defaults(&mo);
        mo.ratio = cases[c].ratio;
        mo.keep_least = cases[c].keep_least;
        mo.nm_n = cases[c].nm_n;
        mo.nm_m = cases[c].nm_m;
        pare_plan plan;
        char tag[64];
        snprintf(tag, sizeof tag, "%s %g kl %g nm %d:%d", cases[c].method, mo.ratio, mo.keep_least, mo.nm_n, mo.nm_m);
        CHECKF(pare_method_plan(m, me, &mo, ids, &co, NULL, &plan, NULL, &err) == PARE_OK, "%s: %s", tag, err.msg);
        check_applied(m, &plan, ids, &co, me->sequential, tag);
        pare_plan_free(&plan);
        pare_model_free(m);
    }
    /* hand-made per-matrix plans */
    for (int variant = 0; variant < 2; variant++) {
        pare_model *m = NULL;
        CHECK(pare_model_clone(base, &m, &err) == PARE_OK);
        pare_plan plan;
        CHECK(pare_plan_dense(m, NULL, &plan, &err) == PARE_OK);
        pare_plan_how att, ffn;
        pare_plan_how_defaults(&att);
        pare_plan_how_defaults(&ffn);
        for (int i = 0; i < plan.count; i++) {
            pare_plan_item *it = &plan.items[i];
            const pare_block *b = &m->blocks[0];
            int is_ffn = 0;
            for (int l = 0; l < m->cfg.n_layers; l++)
                b = &m->blocks[l], is_ffn |= it->linear == &b->gate || it->linear == &b->up || it->linear == &b->down;
            pare_status rc;
            if (variant == 0) { /* whitened attention factors, 2:4 Wanda FFN masks */
                att.weighting = PARE_WEIGHT_WHITEN;
                ffn.mask_score = PARE_SCORE_WANDA;
                ffn.mask_scope = PARE_SCOPE_ROW;
                ffn.nm_n = 2, ffn.nm_m = 4;
                rc = is_ffn ? pare_plan_item_set(m, it, PARE_PLAN_MASK, 0, &ffn, &err)
                            : pare_plan_item_set(m, it, PARE_PLAN_FACTOR, 5, &att, &err);
            } else { /* magnitude masks per matrix on attention, LoRAP channels on the FFN */
                ffn.chan_score = PARE_CHAN_LORAP;
                ffn.keep_least = 0.05;
                rc = is_ffn ? pare_plan_item_set(m, it, PARE_PLAN_CHANNELS, 0.29, &ffn, &err)
                            : pare_plan_item_set(m, it, PARE_PLAN_MASK, 0.33, &att, &err);
            }
            CHECKF(rc == PARE_OK, "%s", err.msg);
        }
        CHECKF(pare_plan_recount(m, &plan, &err) == PARE_OK, "%s", err.msg);
        CHECK(plan.params_after < plan.params_before);
        check_applied(m, &plan, ids, &co, 0, variant ? "magnitude attention + LoRAP channels" : "whiten + 2:4 wanda");
        pare_plan_free(&plan);
        pare_model_free(m);
    }
    /* a block whose gate, up and down disagree about channels is refused before anything changes */
    pare_plan plan;
    CHECK(pare_plan_dense(base, NULL, &plan, &err) == PARE_OK);
    for (int i = 0; i < plan.count; i++)
        if (plan.items[i].linear == &base->blocks[0].up)
            CHECK(pare_plan_item_set(base, &plan.items[i], PARE_PLAN_CHANNELS, 0.25, NULL, &err) == PARE_OK);
    CHECKF(pare_plan_recount(base, &plan, &err) == PARE_EINVAL && strstr(err.msg, "pruned together"), "%s", err.msg);
    pare_plan_free(&plan);
    free(ids);
    pare_model_free(base);
}

static int count_calibration(void *user, const char *stage, double fraction, const char *detail)
{
    (void)fraction, (void)detail;
    if (!strcmp(stage, "calibrate"))
        ++*(int *)user;
    return 0;
}

/* A plan that uses no activation statistics (plain SVD, magnitude masks) is applied without a
 * calibration pass even when calibration windows are given, as `pare compress --calib` always passes
 * them: the pass took most of plain SVD's time and changed nothing. */
static void test_plan_without_statistics_skips_calibration(void)
{
    pare_model *base = fixture_model("nocalib", 0);
    if (!base)
        return;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = 4;
    co.len = 32;
    int32_t *ids = fixture_ids(base, co.samples, co.len);
    pare_error err = {0};
    for (int with_ids = 0; with_ids < 2; with_ids++) {
        pare_model *m = NULL;
        CHECK(pare_model_clone(base, &m, &err) == PARE_OK);
        pare_method_opts mo;
        pare_method_defaults(&mo);
        mo.ratio = 0.4;
        int calibrations = 0;
        pare_progress progress = {count_calibration, &calibrations};
        pare_apply_report rep;
        CHECKF(pare_method_compress(m, pare_method_find("svd"), &mo, with_ids ? ids : NULL, &co, &progress, &rep, NULL,
                                    &err) == PARE_OK,
               "%s", err.msg);
        CHECKF(calibrations == 0, "plain SVD %s calibration windows reported %d calibration steps",
               with_ids ? "with" : "without", calibrations);
        CHECK(rep.factorized > 0);
        pare_model_free(m);
    }
    free(ids);
    pare_model_free(base);
}

/* A block's factorizations run one matrix per thread (compress.c): the factors, their order in the
 * report and the report itself must not depend on the thread count, whatever finishes first. Checked
 * for a one-shot whitened method (svdllm: Gram statistics, every matrix factorized) and the sequential
 * LoRAP (activation-weighted attention, channel-pruned FFN). */
static void test_compression_does_not_depend_on_threads(void)
{
    pare_model *base = fixture_model("threads", 0);
    if (!base)
        return;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = 4;
    co.len = 32;
    int32_t *ids = fixture_ids(base, co.samples, co.len);
    const char *methods[] = {"svdllm", "lorap"};
    pare_error err = {0};
    for (int k = 0; k < 2; k++) {
        pare_model *m[2] = {NULL, NULL};
        pare_apply_report rep[2];
        for (int t = 0; t < 2; t++) {
            pare_set_threads(t ? 3 : 1);
            CHECK(pare_model_clone(base, &m[t], &err) == PARE_OK);
            pare_method_opts mo;
            pare_method_defaults(&mo);
            mo.ratio = 0.4;
            CHECKF(m[t] && pare_method_compress(m[t], pare_method_find(methods[k]), &mo, ids, &co, NULL, &rep[t], NULL,
                                                &err) == PARE_OK,
                   "%s on %d threads: %s", methods[k], t ? 3 : 1, err.msg);
        }
        pare_set_threads(0);
        if (!m[0] || !m[1])
            break;
        CHECKF(rep[0].factorized > 0 && rep[0].factorized == rep[1].factorized &&
                   rep[0].params_after == rep[1].params_after && rep[0].worst_rel_error == rep[1].worst_rel_error,
               "%s: %d factorized, %zu kept, worst error %.9g on 1 thread; %d, %zu, %.9g on 3", methods[k],
               rep[0].factorized, rep[0].params_after, rep[0].worst_rel_error, rep[1].factorized, rep[1].params_after,
               rep[1].worst_rel_error);
        pare_linear *a[PARE_MAX_LINEARS], *b[PARE_MAX_LINEARS];
        int n = pare_model_linears(m[0], a, PARE_MAX_LINEARS);
        CHECK(pare_model_linears(m[1], b, PARE_MAX_LINEARS) == n);
        int differ = 0;
        for (int i = 0; i < n; i++) {
            size_t na = (size_t)a[i]->out * a[i]->rank, nb = (size_t)a[i]->rank * a[i]->in;
            if (a[i]->kind != b[i]->kind || a[i]->rank != b[i]->rank || a[i]->out != b[i]->out || a[i]->in != b[i]->in)
                differ++;
            else if (a[i]->kind == PARE_LIN_FACTORED &&
                     (memcmp(a[i]->A, b[i]->A, na * sizeof(float)) || memcmp(a[i]->B, b[i]->B, nb * sizeof(float))))
                differ++;
        }
        CHECKF(differ == 0, "%s: %d of %d matrices differ between 1 and 3 threads", methods[k], differ, n);
        pare_model_free(m[0]);
        pare_model_free(m[1]);
    }
    free(ids);
    pare_model_free(base);
}

void suite_allocate(void);
void suite_allocate(void)
{
    RUN(test_lorap_published_rule);
    RUN(test_compression_does_not_depend_on_threads);
    RUN(test_lorap_gqa_budget);
    RUN(test_uniform);
    RUN(test_bad_ratios);
    RUN(test_infeasible_budgets);
    RUN(test_global);
    RUN(test_energy_and_mask);
    RUN(test_plan_counts_match_compression);
    RUN(test_plan_without_statistics_skips_calibration);
}

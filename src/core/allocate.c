/* Allocation policies: uniform ranks, LoRAP's attention split (generalized by parameter counts),
 * unstructured and N:M masks, energy thresholds and pare's global greedy allocation; per-item methods
 * and the counts they leave (pare_plan_recount), shared by every policy and by hand-made plans. */
#include "allocate.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t weights(const pare_linear *l) { return (size_t)l->out * l->in; }
/* A rank saves parameters only strictly below break-even m n / (m + n): k (m + n) < m n. */
static int saves(const pare_linear *l, long long k) { return k * (l->out + l->in) < (long long)weights(l); }

/* The weights of a block's attention matrices, and what rank 1 costs in each of them summed. */
static size_t attention_weights(const pare_block *b)
{
    size_t n = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (!pare_lin_kinds[k].ffn)
            n += weights(&b->lin[k]);
    return n;
}

static int attention_rank1_cost(const pare_block *b)
{
    int n = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (!pare_lin_kinds[k].ffn)
            n += b->lin[k].out + b->lin[k].in;
    return n;
}

static pare_status check_ratio(double s, pare_error *err)
{
    if (!(s > 0.0 && s < 1.0))
        return pare_fail(err, PARE_EINVAL, "ratio %g: the fraction of parameters to remove must be in (0, 1)", s);
    return PARE_OK;
}

void pare_plan_how_defaults(pare_plan_how *h)
{
    memset(h, 0, sizeof *h);
    h->weighting = PARE_WEIGHT_NONE;
    h->mask_score = PARE_SCORE_MAGNITUDE;
    h->mask_scope = PARE_SCOPE_MATRIX;
    h->chan_score = PARE_CHAN_MAGNITUDE;
    h->keep_least = 0;
}

static pare_status plan_init(pare_model *m, const pare_plan_how *how, pare_plan *plan, pare_error *err)
{
    pare_plan_how def;
    pare_plan_how_defaults(&def);
    memset(plan, 0, sizeof *plan);
    pare_linear *lin[PARE_MAX_LINEARS];
    int n = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    plan->items = calloc((size_t)n, sizeof *plan->items);
    if (!plan->items)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    plan->count = n;
    for (int i = 0; i < n; i++) {
        pare_plan_item *it = &plan->items[i];
        it->linear = lin[i];
        it->action = PARE_PLAN_DENSE;
        it->how = how ? *how : def;
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

/* The FFN of a block loses a fraction s of its channels: gate/up rows and down columns (counted by
 * pare_plan_recount). */
static void set_channels(pare_plan *plan, const pare_block *b, double s)
{
    for (int i = 0; i < plan->count; i++) {
        pare_plan_item *it = &plan->items[i];
        int k = pare_block_kind_of(b, it->linear);
        if (k < 0 || !pare_lin_kinds[k].ffn)
            continue;
        it->action = PARE_PLAN_CHANNELS;
        it->channel_frac = s;
    }
}

/* The block whose FFN holds l, or NULL. */
static const pare_block *ffn_block(const pare_model *m, const pare_linear *l)
{
    for (int b = 0; b < m->cfg.n_layers; b++) {
        int k = pare_block_kind_of(&m->blocks[b], l);
        if (k >= 0 && pare_lin_kinds[k].ffn)
            return &m->blocks[b];
    }
    return NULL;
}

/* What compressing the item as planned leaves of its weights (pare_prune_mask's and pare_chan_select's
 * counts). */
static pare_status item_count(const pare_model *m, pare_plan_item *it, pare_error *err)
{
    const pare_linear *l = it->linear;
    const pare_plan_how *h = &it->how;
    size_t mn = weights(l);
    switch (it->action) {
    case PARE_PLAN_DENSE: it->params_after = mn; return PARE_OK;
    case PARE_PLAN_FACTOR:
        if (it->rank < 1)
            return pare_fail(err, PARE_EINVAL, "%s: rank %d: must be at least 1", l->name, it->rank);
        it->params_after = (size_t)it->rank * (size_t)(l->out + l->in);
        return PARE_OK;
    case PARE_PLAN_MASK:
        if (h->nm_m > 0) {
            if (h->nm_n < 1 || h->nm_n >= h->nm_m || l->in % h->nm_m)
                return pare_fail(err, PARE_EINVAL, "%s: N:M %d:%d needs 1 <= N < M and in-features (%d) divisible by M",
                                 l->name, h->nm_n, h->nm_m, l->in);
            it->sparsity = 1.0 - (double)h->nm_n / h->nm_m;
            it->params_after = (size_t)l->out * (size_t)(l->in / h->nm_m) * (size_t)h->nm_n;
            return PARE_OK;
        }
        if (!(it->sparsity >= 0 && it->sparsity < 1))
            return pare_fail(err, PARE_EINVAL, "%s: sparsity %g is outside [0, 1)", l->name, it->sparsity);
        if (h->mask_scope == PARE_SCOPE_ROW)
            it->params_after = (size_t)l->out * ((size_t)l->in - pare_prune_count(it->sparsity, (size_t)l->in));
        else if (h->mask_scope == PARE_SCOPE_MATRIX)
            it->params_after = mn - pare_prune_count(it->sparsity, mn);
        else
            return pare_fail(err, PARE_EINVAL, "%s: plans mask per matrix or per row, not globally", l->name);
        return PARE_OK;
    case PARE_PLAN_CHANNELS: {
        const pare_block *b = ffn_block(m, l);
        if (!b)
            return pare_fail(err, PARE_EINVAL, "%s: only FFN matrices lose channels", l->name);
        double s = it->channel_frac, kl = h->keep_least;
        if (!(s >= 0 && s < 1 && kl >= 0 && kl < 1 && kl + s <= 1 + 1e-12))
            return pare_fail(err, PARE_EINVAL,
                             "%s: channel fraction %g with keep_least %g: both in [0, 1), sum at most 1", l->name, s,
                             kl);
        size_t F = (size_t)b->up.out, lo = pare_prune_count(kl, F), hi = pare_prune_count(kl + s, F);
        size_t keep = F - (hi > lo ? hi - lo : 0);
        if (keep < 1)
            return pare_fail(err, PARE_EINVAL, "%s: channel fraction %g would remove every channel", l->name, s);
        int sliced_in = pare_lin_kinds[pare_block_kind_of(b, l)].in == PARE_DIM_FFN; /* down loses columns */
        it->params_after = sliced_in ? (size_t)l->out * keep : keep * (size_t)l->in;
        return PARE_OK;
    }
    }
    return pare_fail(err, PARE_EINVAL, "%s: unknown plan action %d", l->name, (int)it->action);
}

pare_status pare_plan_recount(pare_model *m, pare_plan *plan, pare_error *err)
{
    plan->params_before = plan->params_after = 0;
    for (int i = 0; i < plan->count; i++) {
        pare_plan_item *it = &plan->items[i];
        pare_status rc = item_count(m, it, err);
        if (rc)
            return rc;
        if (it->action == PARE_PLAN_CHANNELS) { /* the block's FFN matrices lose the same channels */
            const pare_block *b = ffn_block(m, it->linear);
            for (int j = 0; j < plan->count; j++)
                for (int f = 0; f < PARE_LIN_KINDS; f++) {
                    const pare_plan_item *o = &plan->items[j];
                    if (!pare_lin_kinds[f].ffn || o->linear != &b->lin[f] || !b->lin[f].out)
                        continue;
                    if (o->action != PARE_PLAN_CHANNELS || o->channel_frac != it->channel_frac ||
                        o->how.keep_least != it->how.keep_least || o->how.chan_score != it->how.chan_score)
                        return pare_fail(err, PARE_EINVAL,
                                         "%s loses FFN channels but %s does not lose the same ones: a block's gate, up "
                                         "and down are pruned together",
                                         it->linear->name, o->linear->name);
                }
        }
        plan->params_before += it->params_before;
        plan->params_after += it->params_after;
    }
    return PARE_OK;
}

/* The policies' last step: counts as compression leaves them; the plan is freed on failure. */
static pare_status finish(pare_model *m, pare_plan *plan, pare_error *err)
{
    pare_status rc = pare_plan_recount(m, plan, err);
    if (rc)
        pare_plan_free(plan);
    return rc;
}

pare_status pare_plan_dense(pare_model *m, const pare_plan_how *how, pare_plan *plan, pare_error *err)
{
    pare_status rc = plan_init(m, how, plan, err);
    return rc ? rc : finish(m, plan, err);
}

pare_status pare_plan_item_set(pare_model *m, pare_plan_item *it, pare_plan_action action, double amount,
                               const pare_plan_how *how, pare_error *err)
{
    it->action = action;
    it->rank = action == PARE_PLAN_FACTOR ? (int)amount : 0;
    it->channel_frac = action == PARE_PLAN_CHANNELS ? amount : 0;
    it->sparsity = action == PARE_PLAN_MASK ? amount : 0;
    if (how)
        it->how = *how;
    return item_count(m, it, err);
}

static pare_plan_item *item_for(pare_plan *plan, const pare_linear *l)
{
    for (int i = 0; i < plan->count; i++)
        if (plan->items[i].linear == l)
            return &plan->items[i];
    return NULL;
}

/* A ratio shown as the closest feasible value must itself be feasible: round it down. */
static double feasible_floor(double x) { return floor(x * 1e4) / 1e4; }

static int is_ffn(const pare_model *m, const pare_linear *l) { return ffn_block(m, l) != NULL; }

pare_status pare_allocate_uniform(pare_model *m, double s, int ffn_channels, const pare_plan_how *how, pare_plan *plan,
                                  pare_error *err)
{
    pare_status rc = check_ratio(s, err);
    if (rc || (rc = plan_init(m, how, plan, err)))
        return rc;
    /* every factorized matrix must be able to keep the same fraction 1 - s with rank >= 1 */
    const pare_linear *worst = NULL;
    double best = 1.0;
    for (int i = 0; i < plan->count; i++) {
        const pare_linear *l = plan->items[i].linear;
        if (ffn_channels && is_ffn(m, l))
            continue;
        double s_max = 1.0 - (double)(l->out + l->in) / (double)weights(l);
        if (s_max < best) {
            best = s_max;
            worst = l;
        }
    }
    if (worst && s > best + 1e-12) {
        pare_plan_free(plan);
        return pare_fail(err, PARE_EINVAL,
                         "ratio %g cannot be met by the uniform policy: %s [%d, %d] keeps at least %d parameters "
                         "at rank 1 (%.2f%%); largest feasible ratio %.4f",
                         s, worst->name, worst->out, worst->in, worst->out + worst->in, 100.0 * (1.0 - best),
                         feasible_floor(best));
    }
    for (int i = 0; i < plan->count; i++) {
        pare_linear *l = plan->items[i].linear;
        set_factor(&plan->items[i], (int)floor((1.0 - s) * (double)weights(l) / (l->out + l->in)));
    }
    if (ffn_channels)
        for (int b = 0; b < m->cfg.n_layers; b++)
            set_channels(plan, &m->blocks[b], s);
    return finish(m, plan, err);
}

pare_status pare_allocate_lorap(pare_model *m, double s, double a, const pare_plan_how *how, pare_plan *plan,
                                pare_error *err)
{
    pare_status rc = check_ratio(s, err);
    if (rc)
        return rc;
    if (!(a > 0.0))
        return pare_fail(err, PARE_EINVAL, "split %g: the (V,O) : (Q,K) parameter split must be positive", a);
    /* attention must afford rank 1 in every matrix: (1 - s) P_att >= Σ (m_i + n_i) */
    double best = 1.0;
    int worst = -1;
    for (int bi = 0; bi < m->cfg.n_layers; bi++) {
        const pare_block *b = &m->blocks[bi];
        double sigma = attention_rank1_cost(b);
        double s_max = 1.0 - sigma / (double)attention_weights(b);
        if (s_max < best) {
            best = s_max;
            worst = bi;
        }
    }
    if (worst >= 0 && s > best + 1e-12)
        return pare_fail(err, PARE_EINVAL,
                         "ratio %g cannot be met by the LoRAP policy: the attention of block %d cannot keep less than "
                         "rank 1 in q, k, v and o (%.2f%% of its weights); largest feasible ratio %.4f",
                         s, worst, 100.0 * (1.0 - best), feasible_floor(best));
    if ((rc = plan_init(m, how, plan, err)))
        return rc;
    for (int bi = 0; bi < m->cfg.n_layers; bi++) {
        pare_block *b = &m->blocks[bi];
        double c_qk = (b->q.out + b->q.in) + (b->k.out + b->k.in);
        double c_vo = (b->v.out + b->v.in) + (b->o.out + b->o.in);
        double sigma = c_qk + c_vo;
        double budget = (1.0 - s) * (double)attention_weights(b);
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
    return finish(m, plan, err);
}

pare_status pare_allocate_mask(pare_model *m, double s, const pare_plan_how *how, pare_plan *plan, pare_error *err)
{
    pare_status rc = how && how->nm_m > 0 ? PARE_OK : check_ratio(s, err);
    if (rc || (rc = plan_init(m, how, plan, err)))
        return rc;
    for (int i = 0; i < plan->count; i++) {
        pare_plan_item *it = &plan->items[i];
        it->action = PARE_PLAN_MASK;
        it->sparsity = s;
    }
    return finish(m, plan, err);
}

/* The spectra must describe the plan's matrices as they are now. */
static pare_status check_spectra(const pare_plan *plan, const pare_model_spectra *sp, pare_error *err)
{
    if (!sp || sp->count != plan->count)
        return pare_fail(err, PARE_EINVAL, "spectra of %d matrices given for a model with %d block matrices",
                         sp ? sp->count : 0, plan->count);
    for (int i = 0; i < plan->count; i++) {
        const pare_linear *l = plan->items[i].linear;
        if (sp->mats[i].m != l->out || sp->mats[i].n != l->in || plan->items[i].linear->kind != PARE_LIN_DENSE)
            return pare_fail(err, PARE_EINVAL,
                             "%s: the spectrum is of a [%d, %d] matrix but the layer is %s [%d, %d]; compute the "
                             "spectra of the dense model as it is now",
                             l->name, sp->mats[i].m, sp->mats[i].n,
                             l->kind == PARE_LIN_DENSE ? "dense" : "already compressed", l->out, l->in);
    }
    return PARE_OK;
}

pare_status pare_allocate_energy(pare_model *m, const pare_model_spectra *sp, double energy, const pare_plan_how *how,
                                 pare_plan *plan, pare_error *err)
{
    if (!(energy > 0.0 && energy <= 1.0))
        return pare_fail(err, PARE_EINVAL, "energy %g: the fraction of spectral energy to keep must be in (0, 1]",
                         energy);
    pare_status rc = plan_init(m, how, plan, err);
    if (rc || (rc = check_spectra(plan, sp, err))) {
        pare_plan_free(plan);
        return rc;
    }
    for (int i = 0; i < plan->count; i++) {
        const pare_matrix_spectrum *ms = &sp->mats[i];
        int r = ms->m < ms->n ? ms->m : ms->n;
        int k = pare_spectrum_energy_rank(ms->s, r, energy);
        if (k >= 1) /* a zero matrix (k = 0) stays as it is */
            set_factor(&plan->items[i], k);
    }
    return finish(m, plan, err);
}

/* One segment of a matrix's lower convex hull: going from rank `from` to rank `to` (from = -1: dense)
 * saves `saved` parameters and adds `cost` relative error. */
typedef struct {
    int item, from, to;
    double saved, cost, slope;
} hull_seg;

static int seg_cmp(const void *pa, const void *pb)
{
    const hull_seg *a = pa, *b = pb;
    if (a->slope != b->slope)
        return a->slope < b->slope ? -1 : 1;
    if (a->item != b->item)
        return a->item < b->item ? -1 : 1;
    int fa = a->from < 0 ? INT_MAX : a->from, fb = b->from < 0 ? INT_MAX : b->from;
    return fa > fb ? -1 : fa < fb; /* a matrix's segments in hull order: dense first */
}

pare_status pare_allocate_global(pare_model *m, const pare_model_spectra *sp, double s, const pare_plan_how *how,
                                 pare_plan *plan, pare_error *err)
{
    pare_status rc = check_ratio(s, err);
    if (rc || (rc = plan_init(m, how, plan, err)))
        return rc;
    if ((rc = check_spectra(plan, sp, err)) || (rc = pare_plan_recount(m, plan, err))) {
        pare_plan_free(plan);
        return rc;
    }
    double target = (1.0 - s) * (double)plan->params_before;
    size_t floor_params = 0;
    size_t n_points = 0;
    for (int i = 0; i < plan->count; i++) {
        const pare_linear *l = plan->items[i].linear;
        floor_params += saves(l, 1) ? (size_t)(l->out + l->in) : weights(l);
        n_points += (size_t)pare_break_even_rank(l->out, l->in) + 2;
    }
    if ((double)floor_params > target + 1e-6) {
        size_t before = plan->params_before;
        double best = 1.0 - (double)floor_params / (double)before;
        pare_plan_free(plan);
        return pare_fail(err, PARE_EINVAL,
                         "ratio %g cannot be met by the global policy: rank 1 in every matrix keeps %zu of %zu "
                         "block-linear weights; largest feasible ratio %.4f",
                         s, floor_params, before, feasible_floor(best));
    }
    hull_seg *segs = malloc(n_points * sizeof *segs);
    double *px = malloc(n_points * sizeof *px), *py = malloc(n_points * sizeof *py);
    int *pk = malloc(n_points * sizeof *pk);
    if (!segs || !px || !py || !pk) {
        free(segs), free(px), free(py), free(pk);
        pare_plan_free(plan);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the global allocation (%zu hull points)", n_points);
    }
    size_t n_segs = 0;
    for (int i = 0; i < plan->count; i++) {
        const pare_linear *l = plan->items[i].linear;
        const pare_matrix_spectrum *ms = &sp->mats[i];
        int r = ms->m < ms->n ? ms->m : ms->n;
        /* points by decreasing parameters: dense, then ranks below break-even down to 1 */
        int np = 0;
        for (int k = -1; k == -1 || (k >= 1); k = (k == -1 ? r : k - 1)) {
            if (k != -1 && !saves(l, k))
                continue;
            double x = k == -1 ? (double)weights(l) : (double)k * (l->out + l->in);
            double e = k == -1 ? 0.0 : pare_spectrum_trunc_error(ms->s, r, k);
            double y = e * e;
            /* lower convex hull by decreasing x: pop while the last point lies above the chord */
            while (np >= 2) {
                double x1 = px[np - 2], y1 = py[np - 2];
                double x2 = px[np - 1], y2 = py[np - 1];
                /* slopes of added error per parameter saved must increase along the hull */
                if ((y2 - y1) * (x1 - x) >= (y - y1) * (x1 - x2))
                    np--;
                else
                    break;
            }
            px[np] = x, py[np] = y, pk[np] = k;
            np++;
        }
        for (int j = 1; j < np; j++) {
            hull_seg *g = &segs[n_segs++];
            g->item = i;
            g->from = pk[j - 1];
            g->to = pk[j];
            g->saved = px[j - 1] - px[j];
            g->cost = py[j] - py[j - 1];
            g->slope = g->cost / g->saved;
        }
    }
    qsort(segs, n_segs, sizeof *segs, seg_cmp);
    int *rank = malloc((size_t)plan->count * sizeof *rank); /* -1: dense */
    if (!rank) {
        free(segs), free(px), free(py), free(pk);
        pare_plan_free(plan);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the global allocation");
    }
    for (int i = 0; i < plan->count; i++)
        rank[i] = -1;
    double total = (double)plan->params_before;
    for (size_t g = 0; g < n_segs && total > target + 1e-6; g++) {
        const hull_seg *sg = &segs[g];
        const pare_linear *l = plan->items[sg->item].linear;
        if (total - sg->saved <= target + 1e-6) {
            /* the last step: the largest rank of this matrix, between the segment's ends, meeting the budget */
            double before = sg->from == -1 ? (double)weights(l) : (double)sg->from * (l->out + l->in);
            double room = target - (total - before);
            int k = (int)floor(room / (l->out + l->in) + 1e-9);
            int k_max = sg->from != -1 ? sg->from : (int)((weights(l) - 1) / (size_t)(l->out + l->in));
            if (k > k_max)
                k = k_max;
            if (k < sg->to)
                k = sg->to;
            rank[sg->item] = k;
            total += (double)k * (l->out + l->in) - before;
            break;
        }
        rank[sg->item] = sg->to;
        total -= sg->saved;
    }
    for (int i = 0; i < plan->count; i++)
        if (rank[i] >= 1)
            set_factor(&plan->items[i], rank[i]);
    free(rank), free(segs), free(px), free(py), free(pk);
    return finish(m, plan, err);
}

double pare_plan_removed(const pare_plan *plan)
{
    return plan->params_before ? 1.0 - (double)plan->params_after / (double)plan->params_before : 0.0;
}

void pare_plan_free(pare_plan *plan)
{
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}

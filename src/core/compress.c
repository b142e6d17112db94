/* Plan application: one block hook serves both calibration modes. */
#include "compress.h"
#include "parallel.h"

#include <stdio.h>

#include <string.h>

void pare_apply_defaults(pare_apply_opts *o) { o->sequential = 1; }

typedef struct {
    const pare_plan *plan;
    const pare_apply_opts *o;
    pare_apply_report *rep;
} apply_ctx;

static size_t block_params(const pare_block *b)
{
    size_t n = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (b->lin[k].out)
            n += pare_linear_params(&b->lin[k]);
    return n;
}

/* Factorizes a block's n planned matrices. They are independent (each reads its own weights and its
 * input site's statistics, and writes only its own linear), so they run one matrix per thread: the
 * eigensolvers under them are single-threaded (OpenBLAS runs on one thread, parallel.c) and half
 * matrix-vector work, which splitting one matrix's products over threads would not speed up. The
 * reports are gathered in plan order, and the first failure in plan order is returned, whatever the
 * threads' timing. */
static pare_status factorize_parallel(apply_ctx *c, const pare_plan_item **items, const pare_input_stats **stats, int n,
                                      pare_error *err)
{
    pare_factor_report fr[PARE_LIN_KINDS];
    pare_status rcs[PARE_LIN_KINDS];
    pare_error errs[PARE_LIN_KINDS];
    int order[PARE_LIN_KINDS]; /* largest first, so that no thread is left with a big one at the end */
    for (int j = 0; j < n; j++) {
        int i = j;
        size_t size = (size_t)items[j]->linear->out * items[j]->linear->in;
        for (; i > 0 && (size_t)items[order[i - 1]]->linear->out * items[order[i - 1]]->linear->in < size; i--)
            order[i] = order[i - 1];
        order[i] = j;
    }
    int threads = pare_threads() < n ? pare_threads() : n;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) schedule(dynamic, 1)
    for (int o = 0; o < n; o++) {
        int j = order[o];
        pare_factor_opts fo;
        pare_factor_defaults(&fo);
        fo.weighting = items[j]->how.weighting;
        errs[j].code = PARE_OK;
        rcs[j] = pare_factorize_linear(items[j]->linear, items[j]->rank, &fo, stats[j], &fr[j], &errs[j]);
    }
    for (int j = 0; j < n; j++) {
        if (rcs[j]) {
            *err = errs[j];
            return rcs[j];
        }
        c->rep->factorized++;
        c->rep->worst_rel_error = fr[j].rel_error > c->rep->worst_rel_error ? fr[j].rel_error : c->rep->worst_rel_error;
        c->rep->max_damping = fr[j].damping > c->rep->max_damping ? fr[j].damping : c->rep->max_damping;
    }
    return PARE_OK;
}

/* Compresses block `layer` with its statistics (NULL when none were gathered). */
static pare_status compress_block(apply_ctx *c, pare_model *m, int layer, const pare_input_stats *sites, pare_error *err)
{
    pare_block *b = &m->blocks[layer];
    const pare_plan_item *channels = NULL;
    const pare_plan_item *masked[8], *factored[PARE_LIN_KINDS];
    const pare_input_stats *masked_stats[8], *factored_stats[PARE_LIN_KINDS];
    int n_masked = 0, n_factored = 0;
    for (int i = 0; i < c->plan->count; i++) {
        const pare_plan_item *it = &c->plan->items[i];
        int site = pare_linear_site(b, it->linear);
        if (site < 0)
            continue;
        if (it->action == PARE_PLAN_MASK && n_masked < 8) {
            masked[n_masked] = it;
            masked_stats[n_masked++] = sites ? &sites[site] : NULL;
        } else if (it->action == PARE_PLAN_CHANNELS) {
            channels = it;
        } else if (it->action == PARE_PLAN_FACTOR && n_factored < PARE_LIN_KINDS) {
            factored[n_factored] = it;
            factored_stats[n_factored++] = sites ? &sites[site] : NULL;
        }
    }
    pare_status rc = factorize_parallel(c, factored, factored_stats, n_factored, err);
    if (rc)
        return rc;
    for (int j = 0; j < n_masked; j++) { /* one call per matrix: plans may give each its own sparsity */
        const pare_plan_how *h = &masked[j]->how;
        pare_mask_opts mo;
        pare_mask_defaults(&mo);
        mo.score = h->mask_score;
        mo.scope = h->mask_scope;
        mo.sparsity = h->nm_m > 0 ? 0 : masked[j]->sparsity;
        mo.nm_n = h->nm_m > 0 ? h->nm_n : 0;
        mo.nm_m = h->nm_m > 0 ? h->nm_m : 0;
        pare_linear *ml = masked[j]->linear;
        rc = pare_prune_mask(&ml, &masked_stats[j], 1, &mo, NULL, err);
        if (rc)
            return rc;
        c->rep->masked++;
    }
    if (channels) {
        pare_chan_opts co = {channels->how.chan_score, channels->channel_frac, channels->how.keep_least};
        pare_chan_report cr;
        rc = pare_prune_ffn(b, sites, &co, &cr, err);
        if (rc)
            return rc;
        c->rep->channel_blocks++;
    }
    return PARE_OK;
}

/* compress_block with block l's weights acquired (a streamed model's); the calibration hook's block
 * already is. */
static pare_status compress_acquired(apply_ctx *c, pare_model *m, int l, const pare_input_stats *sites, pare_error *err)
{
    pare_status rc = pare_block_acquire(m, l, err);
    if (rc)
        return rc;
    rc = compress_block(c, m, l, sites, err);
    pare_block_release(m, l);
    return rc;
}

pare_status pare_apply_block(pare_model *m, const pare_plan *plan, int layer, const pare_input_stats *sites,
                             pare_apply_report *rep, pare_error *err)
{
    apply_ctx c = {plan, NULL, rep};
    return compress_acquired(&c, m, layer, sites, err);
}

static pare_status hook(void *user, pare_model *m, int layer, const pare_calib_stats *stats, pare_error *err)
{
    return compress_block(user, m, layer, stats->sites[layer], err);
}

pare_status pare_apply_plan(pare_model *m, const pare_plan *plan, const int32_t *calib_ids, const pare_calib_opts *co,
                            const pare_apply_opts *o, const pare_progress *progress, pare_apply_report *rep,
                            pare_error *err)
{
    memset(rep, 0, sizeof *rep);
    for (int l = 0; l < m->cfg.n_layers; l++)
        rep->params_before += block_params(&m->blocks[l]);
    apply_ctx c = {plan, o, rep};
    pare_status rc;
    int needs_stats = 0, gram = 0;
    for (int i = 0; i < plan->count; i++) {
        const pare_plan_item *it = &plan->items[i];
        if (it->action == PARE_PLAN_MASK && it->how.mask_scope == PARE_SCOPE_GLOBAL && it->how.nm_m <= 0)
            return pare_fail(err, PARE_EINVAL,
                             "plans prune masks per matrix or per row; a global mask scope is "
                             "pare_prune_model_mask's job");
        needs_stats |= (it->action == PARE_PLAN_FACTOR && it->how.weighting != PARE_WEIGHT_NONE) ||
                       (it->action == PARE_PLAN_CHANNELS && it->how.chan_score == PARE_CHAN_LORAP) ||
                       (it->action == PARE_PLAN_MASK && it->how.mask_score == PARE_SCORE_WANDA);
        gram |= it->action == PARE_PLAN_FACTOR && it->how.weighting == PARE_WEIGHT_WHITEN;
    }
    if (!calib_ids && needs_stats)
        return pare_fail(err, PARE_EINVAL, "this method needs calibration data (--calib FILE)");
    /* no statistics to use (plain SVD, magnitude scores): a calibration pass would only cost time */
    if (!needs_stats) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            char detail[64];
            snprintf(detail, sizeof detail, "block %d/%d", l + 1, m->cfg.n_layers);
            /* reported before each block too, so that a cancel stops the pass between blocks */
            if ((rc = pare_report(progress, "compress", (double)l / m->cfg.n_layers, detail, err)) ||
                (rc = compress_acquired(&c, m, l, NULL, err)))
                return rc;
        }
    } else {
        pare_calib_opts opts = *co;
        opts.gram = gram;
        pare_calib_stats *st = NULL;
        /* one-shot too compresses each block from its hook (the dense outputs already passed on), so
         * that one block's Gram matrices are held at a time, not the model's (44 GB for LLaMA-7B) */
        opts.one_shot = !o->sequential;
        rc = pare_calibrate(m, calib_ids, &opts, hook, &c, progress, &st, err);
        pare_calib_free(st);
        if (rc)
            return rc;
    }
    for (int l = 0; l < m->cfg.n_layers; l++)
        rep->params_after += block_params(&m->blocks[l]);
    return PARE_OK;
}

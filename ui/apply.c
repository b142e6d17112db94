/* Calibration, compression and evaluation for the workbench's jobs (see apply.h). Every option
 * mirrors what the `pare` Lua module does for the recipe the workbench saves, so the numbers agree. */
#include "apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/factorize.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void calib_opts(const tui_settings *set, pare_calib_opts *co)
{
    pare_calib_defaults(co);
    co->samples = set->calib_samples;
    co->len = set->calib_len;
    co->seed = (uint64_t)set->seed;
}

pare_status tui_calib_windows(const pare_model *m, const tui_settings *set, int32_t **ids, pare_calib_opts *co,
                              pare_error *err)
{
    calib_opts(set, co);
    *ids = NULL;
    if (!set->calib[0])
        return pare_fail(err, PARE_EINVAL, "no calibration text: set one with F2 (setup) or --calib FILE");
    return pare_calib_windows_file(m, set->calib, co, ids, NULL, err);
}

pare_status tui_calibrate(pare_model *m, const tui_settings *set, int gram, const pare_progress *p,
                          pare_calib_stats **out, pare_error *err)
{
    int32_t *ids = NULL;
    pare_calib_opts co;
    *out = NULL;
    pare_status st = tui_calib_windows(m, set, &ids, &co, err);
    co.gram = gram;
    if (!st)
        st = pare_calibrate(m, ids, &co, NULL, NULL, p, out, err);
    free(ids);
    return st;
}

static pare_status apply_manual(pare_model *m, const tui_config *cfg, const tui_settings *set, const pare_progress *p,
                                pare_error *err)
{
    int n = pare_model_linears(m, NULL, 0);
    if (n != cfg->n)
        return pare_fail(err, PARE_EINVAL, "the configuration has %d matrices, the model %d", cfg->n, n);
    int weighted = 0, gram = 0, todo = 0;
    for (int i = 0; i < n; i++)
        if (cfg->man[i].rank > 0) {
            todo++;
            weighted |= cfg->man[i].weighting != PARE_WEIGHT_NONE;
            gram |= cfg->man[i].weighting == PARE_WEIGHT_WHITEN;
        }
    pare_calib_stats *cs = NULL;
    pare_status st = weighted ? tui_calibrate(m, set, gram, p, &cs, err) : PARE_OK;
    if (st)
        return st;
    pare_factor_opts fo;
    pare_factor_defaults(&fo);
    int i = 0, done = 0;
    for (int l = 0; l < m->cfg.n_layers && !st; l++) {
        pare_block *b = &m->blocks[l];
        pare_linear *lin[] = {&b->q, &b->k, &b->v, &b->o, &b->gate, &b->up, &b->down};
        for (int j = 0; j < 7 && !st; j++) {
            if (!lin[j]->out)
                continue;
            const tui_manual *d = &cfg->man[i++];
            if (d->rank <= 0)
                continue;
            int site = pare_linear_site(b, lin[j]);
            fo.weighting = (pare_weighting)d->weighting;
            st = pare_report(p, "factorize", (double)done / todo, lin[j]->name, err);
            pare_factor_report rep;
            if (!st)
                st = pare_factorize_linear(lin[j], d->rank, &fo, cs && site >= 0 ? &cs->sites[l][site] : NULL, &rep, err);
            done++;
        }
    }
    if (!st)
        st = pare_report(p, "factorize", 1.0, "done", err);
    pare_calib_free(cs);
    return st;
}

pare_status tui_apply(pare_model *m, const tui_config *cfg, const tui_settings *set, const pare_progress *p,
                      pare_error *err)
{
    if (cfg->kind == TUI_CFG_DENSE)
        return PARE_OK;
    if (cfg->kind == TUI_CFG_MANUAL)
        return apply_manual(m, cfg, set, p, err);
    int32_t *ids = NULL;
    pare_calib_opts co;
    calib_opts(set, &co);
    /* as m:compress{calib = p.calib, ...}: windows only when a calibration text is set */
    pare_status st = set->calib[0] ? tui_calib_windows(m, set, &ids, &co, err) : PARE_OK;
    if (st)
        return st;
    pare_method_opts mo;
    tui_method_opts_effective(cfg, &mo);
    st = pare_method_compress(m, cfg->method, &mo, ids, &co, p, NULL, NULL, err);
    free(ids);
    return st;
}

pare_status tui_evaluate(const pare_model *m, const tui_settings *set, const pare_progress *p, pare_eval_result *r,
                         pare_error *err)
{
    if (!set->eval[0])
        return pare_fail(err, PARE_EINVAL, "no evaluation text: set one with F2 (setup) or --eval FILE");
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = set->window;
    eo.limit_tokens = (size_t)(set->limit_tokens > 0 ? set->limit_tokens : 0);
    int32_t *ids = NULL;
    size_t n = 0;
    pare_status st = pare_model_tokenize_file(m, set->eval, &ids, &n, err);
    if (!st)
        st = pare_eval_perplexity(m, ids, n, &eo, p, r, err);
    free(ids);
    return st;
}

pare_status tui_run_config(const pare_model *src, const tui_config *cfg, const tui_settings *set,
                           const pare_progress *p, tui_result *row, pare_error *err)
{
    double t0 = now_s();
    memset(row, 0, sizeof *row);
    if (!set->eval[0])
        return pare_fail(err, PARE_EINVAL, "no evaluation text: set one with F2 (setup) or --eval FILE");
    pare_model *m = NULL;
    pare_status st = pare_model_clone(src, &m, err);
    pare_eval_result r = {0};
    if (!st)
        st = tui_apply(m, cfg, set, p, err);
    if (!st)
        st = tui_evaluate(m, set, p, &r, err);
    if (!st) {
        pare_param_counts a, b;
        pare_model_param_counts(src, &b);
        pare_model_param_counts(m, &a);
        tui_config_label(cfg, row->label, sizeof row->label);
        snprintf(row->method, sizeof row->method, "%s",
                 cfg->kind == TUI_CFG_DENSE ? "dense" : cfg->kind == TUI_CFG_MANUAL ? "manual" : cfg->method->name);
        const char *base = strrchr(set->eval, '/');
        snprintf(row->data, sizeof row->data, "%.255s", base ? base + 1 : set->eval);
        row->ppl = r.ppl;
        row->block_before = b.block_linear;
        row->block_after = a.block_linear;
        row->total_before = b.total;
        row->total_after = a.total;
        row->wall_s = now_s() - t0;
        snprintf(row->source, sizeof row->source, "tui");
        row->hash = tui_config_hash(cfg, set);
    }
    pare_model_free(m);
    return st;
}

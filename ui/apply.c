/* Calibration, compression and evaluation for the workbench's jobs (see apply.h). Every option
 * mirrors what the `pare` Lua module does for the recipe the workbench saves, so the numbers agree. */
#include "apply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compress.h"
#include "core/tasks.h"

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

pare_status tui_auto_analyze(const pare_model *m, const tui_settings *set, const pare_auto_opts *o,
                             const pare_progress *p, pare_auto_analysis **an, double **curve, int *curve_n,
                             pare_error *err)
{
    int32_t *ids = NULL;
    pare_calib_opts co;
    pare_model *clone = NULL;
    *an = NULL;
    *curve = NULL;
    *curve_n = 0;
    pare_status st = tui_calib_windows(m, set, &ids, &co, err);
    if (!st)
        st = pare_model_clone(m, &clone, err);
    if (!st)
        st = pare_auto_analyze(clone, ids, &co, o, p, an, err);
    if (!st)
        st = tui_auto_curve(clone, *an, curve, curve_n, err);
    if (st) {
        pare_auto_analysis_free(*an);
        *an = NULL;
    }
    free(ids);
    pare_model_free(clone);
    return st;
}

/* A manual configuration: its plan (tui_config_plan) applied by pare_apply_plan with one-shot statistics
 * of m, which is still dense when they are taken, as the saved recipe's m:calibrate does. */
static pare_status apply_manual(pare_model *m, const tui_config *cfg, const tui_settings *set, const pare_progress *p,
                                pare_error *err)
{
    pare_plan plan;
    int needs = 0, gram = 0;
    pare_status st = tui_config_plan(m, cfg, &plan, &needs, &gram, err);
    if (st)
        return st;
    int32_t *ids = NULL;
    pare_calib_opts co;
    calib_opts(set, &co);
    if (needs)
        st = tui_calib_windows(m, set, &ids, &co, err);
    if (!st) {
        pare_apply_opts ao;
        pare_apply_defaults(&ao);
        ao.sequential = 0;
        pare_apply_report rep;
        st = pare_apply_plan(m, &plan, ids, &co, &ao, p, &rep, err);
    }
    free(ids);
    pare_plan_free(&plan);
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
    eo.data = set->eval;
    int32_t *ids = NULL;
    size_t n = 0;
    pare_status st = pare_model_tokenize_file(m, set->eval, &ids, &n, err);
    if (!st)
        st = pare_eval_perplexity(m, ids, n, &eo, p, r, err);
    free(ids);
    return st;
}

pare_status tui_score_task(const pare_model *m, const tui_settings *set, const pare_progress *p,
                           pare_zeroshot_result *r, pare_error *err)
{
    memset(r, 0, sizeof *r);
    pare_task_kind kind;
    if (!set->task[0])
        return pare_fail(err, PARE_EINVAL, "no zero-shot task: set one with F2 (setup) or --task KIND --task-data PATH");
    if (!set->task_data[0])
        return pare_fail(err, PARE_EINVAL, "task %s: no data: set its file or folder with F2 or --task-data PATH",
                         set->task);
    pare_status st = pare_task_kind_parse(set->task, &kind, err);
    pare_task *t = NULL;
    if (!st)
        st = pare_task_load(kind, set->task_data, (size_t)(set->task_limit > 0 ? set->task_limit : 0), &t, err);
    pare_zeroshot_opts zo;
    pare_zeroshot_defaults(&zo); /* as m:eval_task without options */
    if (!st)
        st = pare_task_score(m, t, &zo, p, r, err);
    pare_task_free(t);
    return st;
}

pare_status tui_run_config(const pare_model *src, const tui_config *cfg, const tui_settings *set,
                           const pare_progress *p, tui_result *row, pare_error *err)
{
    double t0 = now_s();
    memset(row, 0, sizeof *row);
    if (!set->eval[0] && !set->task[0])
        return pare_fail(err, PARE_EINVAL,
                         "no evaluation text or task: set one with F2 (setup), --eval FILE or --task KIND");
    /* the dense model is evaluated as loaded; a configuration compresses a clone (a streamed model's
     * clone has a block cache of its own: the loaded model's gives its blocks back first) */
    pare_model *m = NULL;
    pare_status st = PARE_OK;
    if (cfg->kind != TUI_CFG_DENSE) {
        pare_model_cache_drop(src);
        st = pare_model_clone(src, &m, err);
    }
    const pare_model *ev = m ? m : src;
    pare_eval_result r = {0};
    pare_zeroshot_result zr;
    memset(&zr, 0, sizeof zr);
    row->ppl = row->acc = row->acc_norm = NAN;
    if (!st && m)
        st = tui_apply(m, cfg, set, p, err);
    if (!st && set->eval[0])
        st = tui_evaluate(ev, set, p, &r, err);
    if (!st && set->task[0] && !(st = tui_score_task(ev, set, p, &zr, err))) {
        pare_task_kind kind;
        pare_task_kind_parse(set->task, &kind, err);
        snprintf(row->task, sizeof row->task, "%s", pare_task_kind_name(kind));
        row->acc = zr.acc;
        row->acc_norm = zr.acc_norm;
        row->task_items = zr.n;
        pare_zeroshot_result_free(&zr);
    }
    if (!st) {
        pare_param_counts a, b;
        pare_model_param_counts(src, &b);
        pare_model_param_counts(ev, &a);
        tui_config_label(cfg, row->label, sizeof row->label);
        snprintf(row->method, sizeof row->method, "%s",
                 cfg->kind == TUI_CFG_DENSE    ? "dense"
                 : cfg->kind == TUI_CFG_MANUAL ? (cfg->auto_ratio > 0 ? "auto" : "manual")
                                               : cfg->method->name);
        const char *base = strrchr(set->eval, '/');
        snprintf(row->data, sizeof row->data, "%.255s", base ? base + 1 : set->eval);
        if (set->eval[0])
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

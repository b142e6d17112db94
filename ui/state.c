/* The workbench state of `pare tui` (see state.h): decisions and totals of the configuration being
 * built, the rank cursor, the model tree and the layout, all without a terminal. */
#include "state.h"

#include "core/eval.h"
#include "core/fileio.h"
#include "core/prune.h"
#include "core/tasks.h"
#include "record/runrec.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const TUI_WEIGHTING_LABELS[3] = {"plain", "activation", "whitened"};

void tui_settings_defaults(tui_settings *s)
{
    memset(s, 0, sizeof *s);
    pare_calib_opts co;
    pare_calib_defaults(&co);
    s->calib_samples = co.samples;
    s->calib_len = co.len;
    s->seed = co.seed;
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    s->window = eo.window;
}

void tui_free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

pare_status tui_settings_set_task(tui_settings *s, const char *kind, const char *data, long long limit, pare_error *err)
{
    if (!kind || !*kind) {
        s->task[0] = s->task_data[0] = 0;
        s->task_limit = 0;
        return PARE_OK;
    }
    pare_task_kind k;
    pare_status rc = pare_task_kind_parse(kind, &k, err);
    if (rc)
        return rc;
    if (!data || !*data)
        return pare_fail(err, PARE_EINVAL, "task %s needs its data: a file or the folder holding it", kind);
    if (!pare_file_exists(data) && !pare_is_dir(data))
        return pare_fail(err, PARE_EIO, "%s: cannot open: No such file or directory", data);
    if (limit < 0)
        return pare_fail(err, PARE_EINVAL, "task limit %lld: must be 0 (all items) or more", limit);
    snprintf(s->task, sizeof s->task, "%s", pare_task_kind_name(k));
    snprintf(s->task_data, sizeof s->task_data, "%s", data);
    s->task_limit = limit;
    return PARE_OK;
}

pare_status tui_settings_parse_task(tui_settings *s, const char *text, pare_error *err)
{
    char buf[1200], *p = buf;
    snprintf(buf, sizeof buf, "%s", text);
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n && p[n - 1] == ' ')
        p[--n] = 0;
    if (!*p)
        return tui_settings_set_task(s, NULL, NULL, 0, err);
    char *path = strchr(p, ' ');
    if (!path)
        return pare_fail(err, PARE_EINVAL, "task '%s': expected KIND PATH [LIMIT], e.g. piqa data/tasks/piqa 200", p);
    *path++ = 0;
    while (*path == ' ')
        path++;
    long long limit = 0;
    char *last = strrchr(path, ' ');
    if (last && last[1] && strspn(last + 1, "0123456789") == strlen(last + 1)) { /* a trailing number is the limit */
        limit = strtoll(last + 1, NULL, 10);
        *last = 0;
    }
    return tui_settings_set_task(s, p, path, limit, err);
}

void tui_settings_task_text(const tui_settings *s, char *buf, size_t cap)
{
    if (!s->task[0])
        snprintf(buf, cap, "%s", "");
    else if (s->task_limit > 0)
        snprintf(buf, cap, "%s %s %lld", s->task, s->task_data, s->task_limit);
    else
        snprintf(buf, cap, "%s %s", s->task, s->task_data);
}

void tui_method_opts_effective(const tui_config *cfg, pare_method_opts *mo)
{
    pare_method_defaults(mo);
    if (cfg->kind != TUI_CFG_METHOD)
        return;
    const pare_method *me = cfg->method;
    mo->ratio = cfg->mo.ratio;
    mo->keep_least = cfg->mo.keep_least;
    if (me->policy == PARE_POLICY_LORAP)
        mo->split = cfg->mo.split;
    if (me->policy == PARE_POLICY_ENERGY)
        mo->energy = cfg->mo.energy;
    if (me->policy == PARE_POLICY_GLOBAL || me->policy == PARE_POLICY_ENERGY)
        mo->weighting = cfg->mo.weighting;
    if (me->policy == PARE_POLICY_AUTO) { /* its sensitivity pass's options (the budget pane keeps the defaults) */
        mo->sensitivity = cfg->mo.sensitivity;
        mo->probe_samples = cfg->mo.probe_samples;
    }
    if (me->policy == PARE_POLICY_MASK && cfg->mo.nm_m > 0) {
        mo->nm_n = cfg->mo.nm_n;
        mo->nm_m = cfg->mo.nm_m;
    }
}

pare_plan_action tui_manual_action(const tui_manual *d) { return d->rank > 0 ? PARE_PLAN_FACTOR : d->action; }

int tui_config_copy(tui_config *dst, const tui_config *src)
{
    *dst = *src;
    dst->man = NULL;
    if (src->kind == TUI_CFG_MANUAL && src->n > 0) {
        if (!(dst->man = malloc((size_t)src->n * sizeof *dst->man)))
            return -1;
        memcpy(dst->man, src->man, (size_t)src->n * sizeof *dst->man);
    }
    return 0;
}

void tui_config_free(tui_config *c)
{
    free(c->man);
    c->man = NULL;
}

static unsigned long long fnv(unsigned long long h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

unsigned long long tui_config_hash(const tui_config *c, const tui_settings *set)
{
    unsigned long long h = 0xcbf29ce484222325ull;
    int kind = (int)c->kind;
    h = fnv(h, &kind, sizeof kind);
    if (c->kind == TUI_CFG_METHOD) {
        pare_method_opts mo;
        tui_method_opts_effective(c, &mo);
        h = fnv(h, c->method->name, strlen(c->method->name));
        double v[] = {mo.ratio, mo.split, mo.keep_least,  mo.energy,       mo.weighting,
                      mo.nm_n,  mo.nm_m,  mo.sensitivity, mo.probe_samples};
        h = fnv(h, v, sizeof v);
    }
    if (c->kind == TUI_CFG_MANUAL)
        for (int i = 0; i < c->n; i++) { /* field by field: no padding bytes */
            const tui_manual *d = &c->man[i];
            const pare_plan_how *w = &d->how;
            double v[] = {d->rank,      d->weighting,  tui_manual_action(d), d->frac,
                          w->weighting, w->mask_score, w->mask_scope,        w->nm_n,
                          w->nm_m,      w->chan_score, w->keep_least};
            h = fnv(h, v, sizeof v);
        }
    h = fnv(h, set->calib, strlen(set->calib) + 1);
    h = fnv(h, set->eval, strlen(set->eval) + 1);
    h = fnv(h, set->task, strlen(set->task) + 1);
    h = fnv(h, set->task_data, strlen(set->task_data) + 1);
    long long nums[] = {set->calib_samples, set->calib_len,    (long long)set->seed,
                        set->window,        set->limit_tokens, set->task_limit};
    return fnv(h, nums, sizeof nums);
}

void tui_config_label(const tui_config *c, char *buf, size_t cap)
{
    if (c->kind == TUI_CFG_DENSE)
        snprintf(buf, cap, "dense");
    else if (c->kind == TUI_CFG_METHOD && c->method->policy == PARE_POLICY_ENERGY)
        snprintf(buf, cap, "%s %.3g", c->method->name, c->mo.energy); /* "energy 0.9" */
    else if (c->kind == TUI_CFG_METHOD && c->method->policy == PARE_POLICY_MASK && c->mo.nm_m > 0)
        snprintf(buf, cap, "%s %d:%d", c->method->name, c->mo.nm_n, c->mo.nm_m); /* "wanda 2:4" */
    else if (c->kind == TUI_CFG_METHOD)
        snprintf(buf, cap, "%s %.3g", c->method->name, c->mo.ratio);
    else if (c->auto_ratio > 0)
        snprintf(buf, cap, "auto %.3g", c->auto_ratio); /* auto's plan as per-matrix decisions */
    else {
        int k = 0, masked = 0, sliced = 0, nm_n = 0, nm_m = 0;
        for (int i = 0; i < c->n; i++) {
            pare_plan_action a = tui_manual_action(&c->man[i]);
            k += a == PARE_PLAN_FACTOR;
            sliced += a == PARE_PLAN_CHANNELS;
            if (a == PARE_PLAN_MASK && masked++ == 0)
                nm_n = c->man[i].how.nm_n, nm_m = c->man[i].how.nm_m;
        }
        size_t o = (size_t)snprintf(buf, cap, "manual (%d rank%s", k, k == 1 ? "" : "s");
        if (masked && o < cap && nm_m > 0)
            o += (size_t)snprintf(buf + o, cap - o, ", %d masked %d:%d", masked, nm_n, nm_m);
        else if (masked && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, ", %d masked", masked);
        if (sliced && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, ", %d sliced", sliced);
        if (o < cap)
            snprintf(buf + o, cap - o, ")");
    }
}

pare_status tui_config_plan(pare_model *m, const tui_config *cfg, pare_plan *plan, int *needs_stats, int *gram,
                            pare_error *err)
{
    int ns = 0, g = 0;
    memset(plan, 0, sizeof *plan);
    pare_status rc = pare_plan_dense(m, NULL, plan, err);
    if (!rc && cfg->kind == TUI_CFG_MANUAL && cfg->n != plan->count)
        rc = pare_fail(err, PARE_EINVAL, "the configuration has %d matrices, the model %d", cfg->n, plan->count);
    for (int i = 0; !rc && cfg->kind == TUI_CFG_MANUAL && i < cfg->n; i++) {
        const tui_manual *d = &cfg->man[i];
        pare_plan_how how = d->how;
        pare_plan_action a = tui_manual_action(d);
        if (a == PARE_PLAN_FACTOR)
            how.weighting = (pare_weighting)d->weighting;
        rc = pare_plan_item_set(m, &plan->items[i], a, a == PARE_PLAN_FACTOR ? d->rank : d->frac, &how, err);
        ns |= (a == PARE_PLAN_FACTOR && how.weighting != PARE_WEIGHT_NONE) ||
              (a == PARE_PLAN_MASK && how.mask_score == PARE_SCORE_WANDA) ||
              (a == PARE_PLAN_CHANNELS && how.chan_score == PARE_CHAN_LORAP);
        g |= a == PARE_PLAN_FACTOR && how.weighting == PARE_WEIGHT_WHITEN;
    }
    if (!rc)
        rc = pare_plan_recount(m, plan, err);
    if (rc)
        pare_plan_free(plan);
    if (needs_stats)
        *needs_stats = ns;
    if (gram)
        *gram = g;
    return rc;
}

/* Weights of a linear as it is now, without its bias (plans count weights only). */
static size_t weights_of(const pare_linear *l) { return pare_linear_params(l) - (l->b ? (size_t)l->out : 0); }

static int min_dim(const pare_linear *l) { return l->out < l->in ? l->out : l->in; }

int tui_state_init(tui_state *st, pare_model *model, const char *path, const tui_settings *set, pare_error *err)
{
    memset(st, 0, sizeof *st);
    st->model = model;
    snprintf(st->model_path, sizeof st->model_path, "%s", path);
    st->set = *set;
    st->n = pare_model_linears(model, NULL, 0);
    int n = st->n > 0 ? st->n : 1, L = model->cfg.n_layers > 0 ? model->cfg.n_layers : 1;
    st->lin = calloc((size_t)n, sizeof *st->lin);
    st->layer = calloc((size_t)n, sizeof *st->layer);
    st->type = calloc((size_t)n, sizeof *st->type);
    st->dec = calloc((size_t)n, sizeof *st->dec);
    st->cursor = calloc((size_t)n, sizeof *st->cursor);
    st->collapsed = calloc((size_t)L, 1);
    if (!st->lin || !st->layer || !st->type || !st->dec || !st->cursor || !st->collapsed) {
        st->model = NULL; /* the caller still owns it */
        tui_state_free(st);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the workbench state");
    }
    int k = 0;
    for (int l = 0; l < model->cfg.n_layers; l++) {
        pare_block *b = &model->blocks[l];
        for (int j = 0; j < TUI_TYPES; j++)
            if (b->lin[j].out && k < st->n) {
                st->lin[k] = &b->lin[j];
                st->layer[k] = l;
                st->type[k] = j;
                k++;
            }
    }
    for (int i = 0; i < st->n; i++) {
        int be = pare_break_even_rank(st->lin[i]->out, st->lin[i]->in);
        st->cursor[i] = be / 2 > 0 ? be / 2 : 1;
    }
    pare_param_counts pc;
    pare_model_param_counts(model, &pc);
    st->block_before = pc.block_linear;
    st->total_before = pc.total;
    st->method_idx = -1; /* the budget starts at the model as loaded: the configuration follows it */
    pare_method_defaults(&st->mo);
    st->cfg.kind = TUI_CFG_DENSE;
    st->weighting = PARE_WEIGHT_NONE;
    st->spectra_on_demand = tui_spectra_on_demand_for(st);
    tui_state_update(st);
    return PARE_OK;
}

void tui_state_drop_calib(tui_state *st)
{
    pare_calib_free(st->calib);
    st->calib = NULL;
    for (int w = 1; w < 3; w++) {
        pare_model_spectra_free(st->spectra[w]);
        st->spectra[w] = NULL;
        pare_model_spectra_free(st->partial[w]);
        st->partial[w] = NULL;
    }
}

void tui_state_drop_auto(tui_state *st)
{
    pare_auto_analysis_free(st->auto_an);
    st->auto_an = NULL;
    free(st->auto_curve);
    st->auto_curve = NULL;
    st->auto_curve_n = 0;
}

void tui_state_set_auto(tui_state *st, pare_auto_analysis *an, double *curve, int curve_n)
{
    tui_state_drop_auto(st);
    st->auto_an = an;
    st->auto_curve = curve;
    st->auto_curve_n = curve_n;
    st->auto_analyses++;
    tui_state_update(st);
}

/* svdllm's uniform plan at ratio s: the comparison beside auto's choices (same whitening). */
static pare_status uniform_whitened(pare_model *m, double s, pare_plan *plan, pare_error *err)
{
    pare_plan_how how;
    pare_plan_how_defaults(&how);
    how.weighting = PARE_WEIGHT_WHITEN;
    return pare_allocate_uniform(m, s, 0, &how, plan, err);
}

pare_status tui_auto_curve(pare_model *m, const pare_auto_analysis *an, double **curve, int *n, pare_error *err)
{
    enum { STEPS = 49 }; /* ratios 0.02 .. 0.98 */
    *n = 0;
    if (!(*curve = malloc(3 * STEPS * sizeof **curve)))
        return pare_fail(err, PARE_ENOMEM, "out of memory for auto's budget curve");
    for (int k = 1; k <= STEPS; k++) {
        double s = 0.02 * k;
        pare_plan plan = {0}, uni = {0};
        pare_error ignored = {0};
        if (pare_auto_check_budget(m, s, &an->opts, &ignored))
            break; /* this ratio and every larger one is infeasible */
        pare_status rc = pare_auto_solve(m, an, s, &plan, err);
        if (rc) {
            free(*curve);
            *curve = NULL;
            *n = 0;
            return rc;
        }
        double *row = *curve + 3 * *n;
        row[0] = s;
        row[1] = pare_auto_predict(an, &plan, NULL);
        row[2] = uniform_whitened(m, s, &uni, &ignored) ? NAN : pare_auto_predict(an, &uni, NULL);
        (*n)++;
        pare_plan_free(&plan);
        pare_plan_free(&uni);
    }
    return PARE_OK;
}

void tui_state_free(tui_state *st)
{
    tui_state_drop_auto(st);
    tui_state_drop_calib(st);
    pare_model_spectra_free(st->spectra[0]);
    pare_model_spectra_free(st->partial[0]);
    tui_config_free(&st->cfg);
    free(st->lin);
    free(st->layer);
    free(st->type);
    free(st->dec);
    free(st->cursor);
    free(st->collapsed);
    free(st->res);
    pare_model_free(st->model);
    memset(st, 0, sizeof *st);
}

static int spectral(const pare_method *me)
{
    return me->policy == PARE_POLICY_GLOBAL || me->policy == PARE_POLICY_ENERGY;
}

/* Whether auto's analysis in the state was made with the options o asks for (keep_least shapes the
 * channel curves, the sensitivity and probes the loss model). */
static int auto_matches(const tui_state *st, const pare_method_opts *o)
{
    pare_auto_opts ao;
    pare_method_auto_opts(o, &ao);
    const pare_auto_opts *have = st->auto_an ? &st->auto_an->opts : NULL;
    return have && have->keep_least == ao.keep_least && have->sensitivity == ao.sensitivity &&
           have->probe_samples == ao.probe_samples && have->channels == ao.channels;
}

/* auto's plan at o->ratio from the cached analysis; -1 with dec_err (and auto_need when the analysis is
 * what is missing). An infeasible ratio is refused before any analysis, from the shapes alone. */
static int plan_auto(tui_state *st, const pare_method_opts *o, pare_plan *plan, pare_error *err)
{
    pare_auto_opts ao;
    pare_method_auto_opts(o, &ao);
    st->plan_weighting = PARE_WEIGHT_WHITEN;
    if (pare_auto_check_budget(st->model, o->ratio, &ao, err) == PARE_OK && !st->set.calib[0])
        pare_fail(err, PARE_EINVAL,
                  "auto needs a calibration text: its sensitivities are measured on it (--calib FILE, or F2 setup)");
    else if (!err->msg[0] && !auto_matches(st, o)) {
        st->auto_need = 1;
        snprintf(st->dec_err, sizeof st->dec_err,
                 "auto measures each matrix's sensitivity once on the calibration text (progress on the status line, "
                 "F9 cancels); then every ratio is solved at once");
        return -1;
    }
    if (err->msg[0] || pare_auto_solve(st->model, st->auto_an, o->ratio, plan, err)) {
        snprintf(st->dec_err, sizeof st->dec_err, "%s", err->msg);
        return -1;
    }
    return 0;
}

/* Beside auto's choices: its predicted loss per matrix, and svdllm's uniform ranks at the same ratio. */
static void compare_auto(tui_state *st, const pare_plan *plan, double ratio)
{
    double *pred = calloc((size_t)(plan->count > 0 ? plan->count : 1), sizeof *pred);
    pare_plan uni = {0};
    pare_error err = {0};
    st->auto_predicted = pred ? pare_auto_predict(st->auto_an, plan, pred) : NAN;
    st->uniform_predicted = NAN;
    if (uniform_whitened(st->model, ratio, &uni, &err) == PARE_OK) {
        st->uniform_predicted = pare_auto_predict(st->auto_an, &uni, NULL);
        for (int i = 0; i < st->n && i < uni.count; i++)
            st->dec[i].uniform_rank = uni.items[i].action == PARE_PLAN_FACTOR ? uni.items[i].rank : 0;
    }
    for (int i = 0; pred && i < st->n && i < plan->count; i++)
        st->dec[i].predicted = pred[i];
    free(pred);
    pare_plan_free(&uni);
}

/* The method's plan into dec; 0 on success, -1 with dec_err / dec_need set. */
static int plan_method(tui_state *st)
{
    const pare_method *me = st->cfg.method;
    pare_method_opts eff;
    tui_method_opts_effective(&st->cfg, &eff);
    const pare_method_opts *o = &eff;
    pare_weighting w = me->weighting;
    if (o->weighting >= 0 && spectral(me))
        w = (pare_weighting)o->weighting;
    st->plan_weighting = w;
    pare_plan plan = {0};
    pare_error err = {0};
    pare_status rc;
    if (spectral(me)) {
        /* pare_method_plan would calibrate and compute these spectra itself; the cached ones come from
         * the same one-shot statistics, so the allocation is the same and instant. */
        if (me->policy == PARE_POLICY_GLOBAL && !(o->ratio > 0 && o->ratio < 1))
            rc = pare_fail(&err, PARE_EINVAL, "ratio %g: the fraction of parameters to remove must be in (0, 1)",
                           o->ratio);
        else if (!(o->keep_least >= 0 && o->keep_least < 1))
            rc = pare_fail(&err, PARE_EINVAL, "keep_least %g: must be in [0, 1)", o->keep_least);
        else if (!st->spectra[w]) {
            st->dec_need = (int)w;
            char how[160];
            tui_spectra_need_text(st, (int)w, how, sizeof how);
            snprintf(st->dec_err, sizeof st->dec_err, "%s needs the %s spectra (%s%s)", me->name,
                     TUI_WEIGHTING_LABELS[w], how,
                     w != PARE_WEIGHT_NONE && !st->set.calib[0] ? " needs a calibration text: F2" : "");
            return -1;
        } else {
            pare_plan_how how;
            pare_method_how(me, o, &how);
            how.weighting = w;
            rc = me->policy == PARE_POLICY_GLOBAL
                     ? pare_allocate_global(st->model, st->spectra[w], o->ratio, &how, &plan, &err)
                     : pare_allocate_energy(st->model, st->spectra[w], o->energy, &how, &plan, &err);
        }
    } else if (me->policy == PARE_POLICY_AUTO) {
        if (plan_auto(st, o, &plan, &err))
            return -1;
        rc = PARE_OK;
    } else
        rc = pare_method_plan(st->model, me, o, NULL, NULL, NULL, &plan, &w, &err);
    if (rc == PARE_OK && plan.count != st->n)
        rc = pare_fail(&err, PARE_EINVAL, "the plan has %d matrices, the model %d", plan.count, st->n);
    if (rc) {
        snprintf(st->dec_err, sizeof st->dec_err, "%s", err.msg);
        pare_plan_free(&plan);
        return -1;
    }
    for (int i = 0; i < st->n; i++) {
        const pare_plan_item *it = &plan.items[i];
        tui_decision *d = &st->dec[i];
        d->action = it->action;
        d->rank = it->rank;
        d->frac = it->action == PARE_PLAN_CHANNELS ? it->channel_frac : it->action == PARE_PLAN_MASK ? it->sparsity : 0;
        d->weighting = (int)w;
        d->before = it->params_before;
        d->after = it->params_after; /* the core counts what compression leaves (keep_least, rows, N:M) */
    }
    if (me->policy == PARE_POLICY_AUTO)
        compare_auto(st, &plan, o->ratio);
    pare_plan_free(&plan);
    return 0;
}

int tui_state_update(tui_state *st)
{
    st->dec_ok = 0;
    st->dec_need = -1;
    st->auto_need = 0;
    st->auto_predicted = st->uniform_predicted = NAN;
    st->dec_err[0] = 0;
    st->n_factor = st->n_channels = st->n_mask = 0;
    for (int i = 0; i < st->n; i++) {
        size_t w = weights_of(st->lin[i]);
        st->dec[i] = (tui_decision){.action = PARE_PLAN_DENSE, .before = w, .after = w};
    }
    st->block_after = st->block_before;
    st->total_after = st->total_before;
    if (st->cfg.kind == TUI_CFG_METHOD && plan_method(st))
        return 0;
    if (st->cfg.kind == TUI_CFG_MANUAL) { /* the plan apply.c applies, counted by the core */
        pare_plan plan;
        pare_error err = {0};
        if (tui_config_plan(st->model, &st->cfg, &plan, NULL, NULL, &err)) {
            snprintf(st->dec_err, sizeof st->dec_err, "%s", err.msg);
            return 0;
        }
        for (int i = 0; i < st->n && i < plan.count; i++) {
            const pare_plan_item *it = &plan.items[i];
            if (it->action == PARE_PLAN_DENSE)
                continue;
            tui_decision *d = &st->dec[i];
            d->action = it->action;
            d->rank = it->rank;
            d->frac = it->action == PARE_PLAN_CHANNELS ? it->channel_frac : it->sparsity;
            d->weighting = (int)it->how.weighting;
            d->after = it->params_after;
        }
        pare_plan_free(&plan);
    }
    size_t removed = 0;
    for (int i = 0; i < st->n; i++) {
        const tui_decision *d = &st->dec[i];
        removed += d->before - d->after; /* a rank above break-even adds: wraps, and wraps back in the sum */
        st->n_factor += d->action == PARE_PLAN_FACTOR;
        st->n_channels += d->action == PARE_PLAN_CHANNELS;
        st->n_mask += d->action == PARE_PLAN_MASK;
    }
    st->block_after = st->block_before - removed;
    st->total_after = st->total_before - removed;
    st->dec_ok = 1;
    return 1;
}

pare_status tui_config_resolve(const tui_state *st, tui_config *dst, pare_error *err)
{
    const tui_config *c = &st->cfg;
    memset(dst, 0, sizeof *dst);
    if (!(c->kind == TUI_CFG_METHOD && c->method->policy == PARE_POLICY_AUTO))
        return tui_config_copy(dst, c) ? pare_fail(err, PARE_ENOMEM, "out of memory for the configuration") : PARE_OK;
    if (!st->dec_ok) /* no analysis yet, an infeasible ratio, no calibration text */
        return pare_fail(err, PARE_EINVAL, "%s", st->dec_err);
    pare_method_opts o;
    tui_method_opts_effective(c, &o);
    pare_plan plan = {0};
    pare_status rc = pare_auto_solve(st->model, st->auto_an, o.ratio, &plan, err);
    tui_manual *man = NULL;
    if (!rc && plan.count != st->n)
        rc = pare_fail(err, PARE_EINVAL, "auto's plan has %d matrices, the model %d", plan.count, st->n);
    if (!rc && !(man = calloc((size_t)(st->n > 0 ? st->n : 1), sizeof *man)))
        rc = pare_fail(err, PARE_ENOMEM, "out of memory for auto's plan");
    for (int i = 0; !rc && i < st->n; i++) {
        const pare_plan_item *it = &plan.items[i];
        man[i] = (tui_manual){.how = it->how, .action = it->action};
        if (it->action == PARE_PLAN_FACTOR)
            man[i].rank = it->rank, man[i].weighting = (int)it->how.weighting;
        else if (it->action == PARE_PLAN_CHANNELS)
            man[i].frac = it->channel_frac;
    }
    if (!rc)
        *dst = (tui_config){.kind = TUI_CFG_MANUAL, .n = st->n, .man = man, .auto_ratio = o.ratio};
    pare_plan_free(&plan);
    return rc;
}

int tui_state_use_budget(tui_state *st)
{
    tui_config_free(&st->cfg);
    memset(&st->cfg, 0, sizeof st->cfg);
    if (st->method_idx < 0)
        st->cfg.kind = TUI_CFG_DENSE;
    else {
        st->cfg.kind = TUI_CFG_METHOD;
        st->cfg.method = &pare_methods(NULL)[st->method_idx];
        st->cfg.mo = st->mo;
    }
    return tui_state_update(st);
}

int tui_state_set_rank(tui_state *st, int i, int k, int w, int *dropped)
{
    if (dropped)
        *dropped = 0;
    if (i < 0 || i >= st->n)
        return -1;
    const pare_linear *l = st->lin[i];
    if (k > 0 && (l->kind != PARE_LIN_DENSE || l->kept_in || l->kept_out)) {
        snprintf(st->dec_err, sizeof st->dec_err, "%s is not dense as loaded; only dense matrices get a rank", l->name);
        return -1;
    }
    if (k > min_dim(l)) {
        snprintf(st->dec_err, sizeof st->dec_err, "rank %d exceeds min(%d, %d) for %s", k, l->out, l->in, l->name);
        return -1;
    }
    if (st->cfg.kind != TUI_CFG_MANUAL) {
        tui_manual *man = calloc((size_t)(st->n > 0 ? st->n : 1), sizeof *man);
        if (!man)
            return -1;
        int drop = 0;
        if (st->cfg.kind == TUI_CFG_METHOD && st->dec_ok)
            for (int j = 0; j < st->n; j++) {
                if (st->dec[j].action == PARE_PLAN_FACTOR)
                    man[j] = (tui_manual){.rank = st->dec[j].rank, .weighting = st->dec[j].weighting};
                drop += st->dec[j].action == PARE_PLAN_CHANNELS || st->dec[j].action == PARE_PLAN_MASK;
            }
        if (dropped)
            *dropped = drop;
        tui_config_free(&st->cfg);
        memset(&st->cfg, 0, sizeof st->cfg);
        st->cfg.kind = TUI_CFG_MANUAL;
        st->cfg.n = st->n;
        st->cfg.man = man;
    }
    st->cfg.man[i] = (tui_manual){.rank = k > 0 ? k : 0, .weighting = w};
    tui_state_update(st);
    return 0;
}

int tui_state_set_rank_type(tui_state *st, int i, int k, int w)
{
    if (i < 0 || i >= st->n || k < 1)
        return -1;
    const pare_linear *l = st->lin[i];
    double keep = (double)k * (l->out + l->in) / ((double)l->out * l->in);
    int rc = tui_state_set_rank(st, i, k, w, NULL);
    for (int j = 0; j < st->n && rc == 0; j++) {
        const pare_linear *o = st->lin[j];
        if (j == i || st->type[j] != st->type[i] || o->kind != PARE_LIN_DENSE || o->kept_in || o->kept_out)
            continue;
        int kj = (int)(keep * (double)o->out * o->in / ((double)o->out + o->in) + 1e-9);
        kj = kj < 1 ? 1 : kj > min_dim(o) ? min_dim(o) : kj;
        rc = tui_state_set_rank(st, j, kj, w, NULL);
    }
    return rc;
}

const char *const TUI_MIX_POLICY_NAMES[3] = {"uniform", "energy", "global"};
const char *const TUI_MIX_CHOICE_NAMES[TUI_MIX_CHOICES + 1] = {
    "keep as loaded",         "svd (plain)",    "asvd (activation)", "svdllm (whitened)",
    "channels (LoRAP score)", "magnitude mask", "wanda mask"};

/* The decision a pruning choice gives matrix i under the budget (ratio, keep_least, nm). */
static tui_manual prune_choice(const tui_state *st, int choice)
{
    tui_manual d = {0};
    pare_plan_how_defaults(&d.how);
    d.frac = st->mo.ratio;
    if (choice == TUI_MIX_CHANNELS) {
        d.action = PARE_PLAN_CHANNELS;
        d.how.chan_score = PARE_CHAN_LORAP;
        d.how.keep_least = st->mo.keep_least;
    } else {
        d.action = PARE_PLAN_MASK;
        const pare_method *me = pare_method_find(choice == TUI_MIX_WANDA ? "wanda" : "magnitude");
        d.how.mask_score = me->mask_score; /* as the methods of the same name */
        d.how.mask_scope = me->mask_scope;
        if (st->mo.nm_m > 0) {
            d.how.nm_n = st->mo.nm_n;
            d.how.nm_m = st->mo.nm_m;
            d.frac = 1.0 - (double)st->mo.nm_n / st->mo.nm_m;
        }
    }
    return d;
}

int tui_state_mix(tui_state *st, const int type_method[TUI_TYPES], tui_mix_policy pol, int *need_w)
{
    *need_w = -1;
    int any = 0;
    for (int i = 0; i < st->n; i++) {
        int c = type_method[st->type[i]], factor = c >= 0 && c <= PARE_WEIGHT_WHITEN;
        if (c < TUI_MIX_KEEP || c >= TUI_MIX_CHOICES) {
            snprintf(st->dec_err, sizeof st->dec_err, "method %d for %s: unknown", c, TUI_TYPE_NAME(st->type[i]));
            return -1;
        }
        any |= c >= 0;
        if (pol != TUI_MIX_UNIFORM && factor && !st->spectra[c]) {
            *need_w = c;
            snprintf(st->dec_err, sizeof st->dec_err, "the %s spectra are needed first", TUI_WEIGHTING_LABELS[c]);
            return -1;
        }
        if (pol == TUI_MIX_GLOBAL && !factor) {
            snprintf(st->dec_err, sizeof st->dec_err,
                     "the global policy allocates ranks over every matrix: factorize every type (or use uniform or "
                     "energy to leave types as loaded or prune them)");
            return -1;
        }
        if (c == TUI_MIX_CHANNELS && st->type[i] < 4) {
            snprintf(st->dec_err, sizeof st->dec_err, "channel pruning is for the FFN (gate, up, down), not %s",
                     TUI_TYPE_NAME(st->type[i]));
            return -1;
        }
        if (c >= 0 && (st->lin[i]->kind != PARE_LIN_DENSE || st->lin[i]->kept_in || st->lin[i]->kept_out)) {
            snprintf(st->dec_err, sizeof st->dec_err, "%s is not dense as loaded; leave its type as loaded",
                     st->lin[i]->name);
            return -1;
        }
    }
    if (!any) {
        snprintf(st->dec_err, sizeof st->dec_err, "every type is left as loaded: nothing to allocate");
        return -1;
    }
    tui_manual *man = calloc((size_t)st->n, sizeof *man);
    if (!man)
        return -1;
    const pare_method_opts *o = &st->mo;
    if (pol == TUI_MIX_GLOBAL) {
        /* each matrix's spectrum in its own type's weighting, so each error is measured as chosen */
        pare_model_spectra comp = {st->n, calloc((size_t)st->n, sizeof(pare_matrix_spectrum))};
        pare_plan plan = {0};
        pare_error err = {0};
        int rc = -1;
        if (comp.mats) {
            for (int i = 0; i < st->n; i++)
                comp.mats[i] = st->spectra[type_method[st->type[i]]]->mats[i];
            if (pare_allocate_global(st->model, &comp, o->ratio, NULL, &plan, &err) == PARE_OK) {
                for (int i = 0; i < st->n && i < plan.count; i++)
                    if (plan.items[i].action == PARE_PLAN_FACTOR)
                        man[i] = (tui_manual){.rank = plan.items[i].rank, .weighting = type_method[st->type[i]]};
                rc = 0;
            } else
                snprintf(st->dec_err, sizeof st->dec_err, "%s", err.msg);
        }
        free(comp.mats);
        pare_plan_free(&plan);
        if (rc) {
            free(man);
            return -1;
        }
    } else
        for (int i = 0; i < st->n; i++) {
            int w = type_method[st->type[i]];
            const pare_linear *l = st->lin[i];
            if (w < 0)
                continue;
            if (w > PARE_WEIGHT_WHITEN) { /* pruned: the same decision for every matrix of the type */
                man[i] = prune_choice(st, w);
                continue;
            }
            int k;
            if (pol == TUI_MIX_UNIFORM) {
                k = (int)((1.0 - o->ratio) * (double)l->out * l->in / ((double)l->out + l->in) + 1e-9);
                k = k < 1 ? 1 : k;
            } else {
                const pare_matrix_spectrum *ms = &st->spectra[w]->mats[i];
                k = pare_spectrum_energy_rank(ms->s, ms->stats.r, o->energy);
                if (k >= ms->stats.break_even) /* saves nothing: as the energy policy, left dense */
                    continue;
                k = k < 1 ? 1 : k;
            }
            man[i] = (tui_manual){.rank = k, .weighting = w};
        }
    tui_config prev = st->cfg;
    memset(&st->cfg, 0, sizeof st->cfg);
    st->cfg.kind = TUI_CFG_MANUAL;
    st->cfg.n = st->n;
    st->cfg.man = man;
    if (!tui_state_update(st)) { /* a plan the core refuses (N:M on a width it does not divide, ...): keep the old */
        char msg[sizeof st->dec_err];
        snprintf(msg, sizeof msg, "%s", st->dec_err);
        tui_config_free(&st->cfg);
        st->cfg = prev;
        tui_state_update(st);
        snprintf(st->dec_err, sizeof st->dec_err, "%s", msg);
        return -1;
    }
    tui_config_free(&prev);
    return 0;
}

int tui_cursor_stats_at(const tui_state *st, int i, int w, int k, tui_cursor_stats *cs)
{
    memset(cs, 0, sizeof *cs);
    const pare_matrix_spectrum *ms = tui_state_spectrum(st, w, i);
    if (!ms)
        return -1;
    int r = ms->stats.r;
    k = k < 1 ? 1 : k > r ? r : k;
    cs->k = k;
    cs->r = r;
    cs->m = ms->m;
    cs->n = ms->n;
    cs->dense_params = (size_t)ms->m * ms->n;
    cs->params = pare_lowrank_params(ms->m, ms->n, k);
    cs->kept = (double)cs->params / (double)cs->dense_params;
    cs->trunc_error = pare_spectrum_trunc_error(ms->s, r, k);
    cs->energy = 1.0 - cs->trunc_error * cs->trunc_error;
    cs->break_even = ms->stats.break_even;
    cs->rank90 = ms->stats.rank90;
    return 0;
}

int tui_cursor_move(tui_state *st, int i, int delta)
{
    if (i < 0 || i >= st->n)
        return 0;
    int k = st->cursor[i] + delta, hi = min_dim(st->lin[i]);
    st->cursor[i] = k < 1 ? 1 : k > hi ? hi : k;
    return st->cursor[i];
}

int tui_tree_rows(const tui_state *st, tui_tree_row *rows, int cap)
{
    int n = 0;
    for (int l = 0, i = 0; l < st->model->cfg.n_layers; l++) {
        if (rows && n < cap)
            rows[n] = (tui_tree_row){l, -1};
        n++;
        for (; i < st->n && st->layer[i] == l; i++)
            if (!st->collapsed[l]) {
                if (rows && n < cap)
                    rows[n] = (tui_tree_row){l, i};
                n++;
            }
    }
    return n;
}

int tui_tree_find(tui_state *st, const char *pattern, int from)
{
    if (!pattern || !*pattern || st->n == 0)
        return -1;
    for (int d = 1; d <= st->n; d++) {
        int j = ((from < 0 ? -1 : from) + d) % st->n;
        if (strcasestr(st->lin[j]->name, pattern)) {
            st->collapsed[st->layer[j]] = 0;
            return j;
        }
    }
    return -1;
}

const char *tui_short_name(const tui_state *st, int i) { return TUI_TYPE_NAME(st->type[i]); }

const char *tui_state_word(const tui_state *st, int i, char *detail, size_t cap)
{
    const tui_decision *d = &st->dec[i];
    const pare_linear *l = st->lin[i];
    detail[0] = 0;
    switch (d->action) {
    case PARE_PLAN_FACTOR: snprintf(detail, cap, "r %d", d->rank); return "factorized";
    case PARE_PLAN_CHANNELS: snprintf(detail, cap, "-%.0f%%", 100 * d->frac); return "sliced";
    case PARE_PLAN_MASK: snprintf(detail, cap, "%.0f%%", 100 * d->frac); return "masked";
    default: break;
    }
    if (l->kind == PARE_LIN_FACTORED) {
        snprintf(detail, cap, "r %d", l->rank);
        return "factorized";
    }
    if (l->kind == PARE_LIN_MASKED) {
        snprintf(detail, cap, "%.0f%%", 100.0 * (1.0 - (double)weights_of(l) / ((double)l->out * l->in)));
        return "masked";
    }
    if (l->kept_in || l->kept_out) {
        snprintf(detail, cap, "%dx%d", l->out, l->in);
        return "sliced";
    }
    return "dense";
}

const char *const TUI_METRIC_NAMES[3] = {"perplexity", "acc", "acc_norm"};

double tui_result_metric(const tui_result *r, tui_metric metric)
{
    if (metric == TUI_METRIC_PPL)
        return r->ppl;
    if (!r->task[0])
        return NAN;
    return metric == TUI_METRIC_ACC ? r->acc : r->acc_norm;
}

int tui_state_has_task_results(const tui_state *st)
{
    for (int i = 0; i < st->n_res; i++)
        if (st->res[i].task[0])
            return 1;
    return 0;
}

int tui_state_add_result(tui_state *st, const tui_result *r)
{
    if (st->n_res == st->cap_res) {
        int cap = st->cap_res ? 2 * st->cap_res : 16;
        tui_result *p = realloc(st->res, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        st->res = p;
        st->cap_res = cap;
    }
    st->res[st->n_res++] = *r;
    return 0;
}

void tui_layout_compute(int cols, int rows, tui_layout *l)
{
    memset(l, 0, sizeof *l);
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        l->too_small = 1;
        return;
    }
    l->header = (tui_rect){0, 0, cols, 1};
    l->status = (tui_rect){0, rows - 2, cols, 1};
    l->fbar = (tui_rect){0, rows - 1, cols, 1};
    int top = 1, area = rows - 3;
    int lw = cols * 2 / 5;
    lw = lw < 36 ? 36 : lw > 64 ? 64 : lw;
    int bh = area / 2 < 13 ? area / 2 : 13;
    l->pane[TUI_P_TREE] = (tui_rect){0, top, lw, area - bh};
    l->pane[TUI_P_BUDGET] = (tui_rect){0, top + area - bh, lw, bh};
    int rw = cols - lw, rh = area / 5 < 5 ? 5 : area / 5, lh = rh;
    l->pane[TUI_P_PLOT] = (tui_rect){lw, top, rw, area - rh - lh};
    l->pane[TUI_P_RESULTS] = (tui_rect){lw, top + area - rh - lh, rw, rh};
    l->pane[TUI_P_LOG] = (tui_rect){lw, top + area - lh, rw, lh};
}

/* A metric's value; run.json writes null for one that was not finite: NaN (shown as "-"), not 0. */
static double metric_value(const json_t *met)
{
    const json_t *v = json_object_get(met, "value");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int tui_results_from_run(tui_state *st, const char *out_dir)
{
    runrec rec;
    if (runrec_load(out_dir, &rec, NULL))
        return 0;
    const char *run = rec.name;
    json_t *rows = rec.results;
    int added = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *params = json_object_get(row, "params"), *metrics = json_object_get(row, "metrics");
        size_t k;
        json_t *met;
        /* zero-shot accuracies (metrics acc, acc_norm on a task) go beside the perplexities of the row */
        char task[32] = "";
        double acc = NAN, acc_norm = NAN;
        int n_ppl = 0;
        json_array_foreach(metrics, k, met) {
            const char *name = json_string_value(json_object_get(met, "name"));
            const char *data = json_string_value(json_object_get(met, "data"));
            int is_acc = name && !strcmp(name, "acc"), is_norm = name && !strcmp(name, "acc_norm");
            if ((is_acc || is_norm) && (!task[0] || (data && !strcmp(task, data)))) {
                snprintf(task, sizeof task, "%s", data ? data : "?");
                *(is_acc ? &acc : &acc_norm) = metric_value(met);
            }
            n_ppl += !is_acc && !is_norm;
        }
        json_array_foreach(metrics, k, met) {
            const char *mname = json_string_value(json_object_get(met, "name"));
            int is_acc = mname && (!strcmp(mname, "acc") || !strcmp(mname, "acc_norm"));
            if (is_acc && (n_ppl > 0 || strcmp(mname, "acc"))) /* one row for a row with accuracies only */
                continue;
            tui_result r = {0};
            snprintf(r.task, sizeof r.task, "%s", task);
            r.acc = acc;
            r.acc_norm = acc_norm;
            const char *method = json_string_value(json_object_get(row, "method"));
            const char *data = json_string_value(json_object_get(met, "data"));
            const char *db = data ? strrchr(data, '/') : NULL;
            snprintf(r.method, sizeof r.method, "%s", method ? method : "?");
            snprintf(r.label, sizeof r.label, "%s (%s)", method ? method : "?", run);
            snprintf(r.data, sizeof r.data, "%s", db ? db + 1 : data ? data : "");
            snprintf(r.source, sizeof r.source, "%s", run);
            r.ppl = is_acc ? NAN : metric_value(met);
            r.block_after = (size_t)json_integer_value(json_object_get(params, "block_linear"));
            r.total_after = (size_t)json_integer_value(json_object_get(params, "total"));
            r.block_before = (size_t)json_integer_value(json_object_get(params, "block_linear_dense"));
            r.total_before = (size_t)json_integer_value(json_object_get(params, "total_dense"));
            json_t *wall = json_object_get(rec.root, "wall_s");
            r.wall_s = wall ? json_number_value(wall) : 0;
            if (tui_state_add_result(st, &r) == 0)
                added++;
        }
    }
    runrec_free(&rec);
    return added;
}

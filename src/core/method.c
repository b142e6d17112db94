/* The method table and the one function that turns a method and its options into a compressed model. */
#include "method.h"

#include <stdlib.h>
#include <string.h>

static const pare_method METHODS[] = {
    {"lorap", PARE_POLICY_LORAP, 1, PARE_WEIGHT_ACT, PARE_CHAN_LORAP, 0, 0, 1,
     "LoRAP: activation-weighted SVD of attention (V,O : Q,K = a : 1), LoRAP channel pruning of the FFN, sequential"},
    {"lorap-magnitude", PARE_POLICY_LORAP, 1, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, 0, 0, 1,
     "ablation: plain SVD attention with LoRAP's split, magnitude channel pruning"},
    {"svd", PARE_POLICY_UNIFORM, 0, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, 0, 0, 0,
     "plain SVD of every matrix, uniform ranks"},
    {"asvd", PARE_POLICY_UNIFORM, 0, PARE_WEIGHT_ACT, PARE_CHAN_MAGNITUDE, 0, 0, 0,
     "activation-weighted SVD of every matrix, uniform ranks"},
    {"svdllm", PARE_POLICY_UNIFORM, 0, PARE_WEIGHT_WHITEN, PARE_CHAN_MAGNITUDE, 0, 0, 0,
     "whitened SVD (SVD-LLM) of every matrix, uniform ranks"},
    {"wanda", PARE_POLICY_MASK, 0, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, PARE_SCORE_WANDA, PARE_SCOPE_ROW, 1,
     "Wanda: unstructured masks by |W_ij| ||X_j|| within each output row, sequential"},
    {"magnitude", PARE_POLICY_MASK, 0, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, PARE_SCORE_MAGNITUDE, PARE_SCOPE_MATRIX,
     0, "unstructured masks by |W_ij| within each matrix"},
    {"global", PARE_POLICY_GLOBAL, 0, PARE_WEIGHT_ACT, PARE_CHAN_MAGNITUDE, 0, 0, 1,
     "pare global: ranks of every matrix chosen together by weighted error per parameter saved (weighting)"},
    {"auto", PARE_POLICY_AUTO, 0, PARE_WEIGHT_WHITEN, PARE_CHAN_LORAP, 0, 0, 1,
     "pare auto: whitened ranks and FFN widths of every matrix chosen together by measured loss per parameter"},
    {"energy", PARE_POLICY_ENERGY, 0, PARE_WEIGHT_ACT, PARE_CHAN_MAGNITUDE, 0, 0, 1,
     "every matrix at the smallest rank keeping a fraction `energy` of its weighted spectral energy (weighting)"},
    {0},
};

const char *const PARE_WEIGHTING_NAMES[] = {"none", "act", "whiten", NULL};

const pare_method *pare_methods(int *count)
{
    if (count)
        *count = (int)(sizeof METHODS / sizeof METHODS[0]) - 1;
    return METHODS;
}

const pare_method *pare_method_find(const char *name)
{
    for (const pare_method *me = METHODS; name && me->name; me++)
        if (strcmp(me->name, name) == 0)
            return me;
    return NULL;
}

const char *pare_policy_name(pare_policy p)
{
    static const char *const names[] = {"LoRAP", "uniform", "unstructured mask", "global", "energy", "auto"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

void pare_method_defaults(pare_method_opts *o)
{
    o->ratio = 0.2;
    o->split = 3.0;
    o->keep_least = 0.01;
    o->energy = 0.9;
    o->weighting = -1;
    o->nm_n = o->nm_m = 0;
    pare_auto_opts ao;
    pare_auto_defaults(&ao);
    o->sensitivity = ao.sensitivity;
    o->probe_samples = ao.probe_samples;
    o->auto_record = NULL;
}

void pare_method_auto_opts(const pare_method_opts *o, pare_auto_opts *ao)
{
    pare_auto_defaults(ao);
    ao->sensitivity = o->sensitivity;
    ao->probe_samples = o->probe_samples;
    ao->keep_least = o->keep_least;
}

/* auto's plan: the sensitivity pass, then one solve (pare_auto_compress re-solves block by block). */
static pare_status auto_plan(pare_model *m, const pare_method_opts *o, const int32_t *win, const pare_calib_opts *co,
                             const pare_progress *p, pare_plan *plan, pare_error *err)
{
    pare_auto_opts ao;
    pare_method_auto_opts(o, &ao);
    pare_auto_analysis *an = NULL;
    pare_status st = pare_auto_check_budget(m, o->ratio, &ao, err);
    if (!st)
        st = pare_auto_analyze(m, win, co, &ao, p, &an, err);
    if (!st)
        st = pare_auto_solve(m, an, o->ratio, plan, err);
    pare_auto_analysis_free(an);
    return st;
}

void pare_method_how(const pare_method *me, const pare_method_opts *o, pare_plan_how *how)
{
    pare_plan_how_defaults(how);
    how->weighting = o->weighting >= 0 ? (pare_weighting)o->weighting : me->weighting;
    how->mask_score = me->mask_score;
    how->mask_scope = me->mask_scope;
    how->nm_n = o->nm_m > 0 ? o->nm_n : 0;
    how->nm_m = o->nm_m > 0 ? o->nm_m : 0;
    how->chan_score = me->chan_score;
    how->keep_least = o->keep_least;
}

/* The plan of a spectral policy: one-shot statistics of the dense model, its weighted spectra, then
 * the allocation. */
static pare_status spectral_plan(pare_model *m, const pare_method *me, pare_weighting w, const pare_method_opts *o,
                                 const pare_plan_how *how, const int32_t *win, const pare_calib_opts *co,
                                 const pare_progress *p, pare_plan *plan, pare_error *err)
{
    pare_calib_stats *cs = NULL;
    pare_model_spectra *sp = NULL;
    pare_status st = PARE_OK;
    if (w != PARE_WEIGHT_NONE) {
        if (!win)
            return pare_fail(err, PARE_EINVAL, "method %s with weighting %s needs calibration data", me->name,
                             PARE_WEIGHTING_NAMES[w]);
        pare_calib_opts c = *co;
        c.gram = w == PARE_WEIGHT_WHITEN;
        st = pare_calibrate(m, win, &c, NULL, NULL, p, &cs, err);
    }
    if (!st)
        st = pare_model_spectra_weighted(m, cs, w, p, &sp, err);
    if (!st)
        st = me->policy == PARE_POLICY_GLOBAL ? pare_allocate_global(m, sp, o->ratio, how, plan, err)
                                              : pare_allocate_energy(m, sp, o->energy, how, plan, err);
    pare_model_spectra_free(sp);
    pare_calib_free(cs);
    return st;
}

/* The option checks every method shares; *w gets the weighting the method will use. */
static pare_status check_opts(const pare_method *me, const pare_method_opts *o, pare_weighting *w, pare_error *err)
{
    *w = me->weighting;
    if (o->weighting >= 0) {
        if (o->weighting > PARE_WEIGHT_WHITEN)
            return pare_fail(err, PARE_EINVAL, "weighting %d: expected none, act or whiten", o->weighting);
        if (me->policy != PARE_POLICY_GLOBAL && me->policy != PARE_POLICY_ENERGY)
            return pare_fail(err, PARE_EINVAL,
                             "weighting %s: only the global and energy methods take a weighting (%s is defined by its "
                             "own)",
                             PARE_WEIGHTING_NAMES[o->weighting], me->name);
        *w = (pare_weighting)o->weighting;
    }
    if (o->nm_m > 0 && me->policy != PARE_POLICY_MASK)
        return pare_fail(err, PARE_EINVAL, "nm %d:%d: only the mask methods (wanda, magnitude) take N:M", o->nm_n,
                         o->nm_m);
    if (o->nm_m > 0 && !(o->nm_n >= 1 && o->nm_n < o->nm_m))
        return pare_fail(err, PARE_EINVAL, "nm %d:%d: expected N:M with 0 < N < M, e.g. 2:4", o->nm_n, o->nm_m);
    if (me->policy != PARE_POLICY_ENERGY && !(o->nm_m > 0) && !(o->ratio > 0 && o->ratio < 1))
        return pare_fail(err, PARE_EINVAL, "ratio %g: the fraction of parameters to remove must be in (0, 1)", o->ratio);
    if (!(o->keep_least >= 0 && o->keep_least < 1 && (o->keep_least + o->ratio <= 1 || me->policy == PARE_POLICY_AUTO)))
        return pare_fail(err, PARE_EINVAL, "keep_least %g: must be in [0, 1) with keep_least + ratio <= 1",
                         o->keep_least);
    if (me->policy == PARE_POLICY_AUTO && (unsigned)o->sensitivity > PARE_AUTO_KL)
        return pare_fail(err, PARE_EINVAL, "sensitivity %d: expected kl, probe, probe1 or relative",
                         (int)o->sensitivity);
    return PARE_OK;
}

pare_status pare_method_plan(pare_model *m, const pare_method *me, const pare_method_opts *o, const int32_t *calib_ids,
                             const pare_calib_opts *co, const pare_progress *progress, pare_plan *plan,
                             pare_weighting *weighting_used, pare_error *err)
{
    pare_weighting w = me->weighting;
    pare_status st = check_opts(me, o, &w, err);
    if (st)
        return st;
    if (weighting_used)
        *weighting_used = w;
    memset(plan, 0, sizeof *plan);
    pare_plan_how how;
    pare_method_how(me, o, &how);
    how.weighting = w;
    switch (me->policy) {
    case PARE_POLICY_LORAP: st = pare_allocate_lorap(m, o->ratio, o->split, &how, plan, err); break;
    case PARE_POLICY_UNIFORM: st = pare_allocate_uniform(m, o->ratio, me->ffn_channels, &how, plan, err); break;
    case PARE_POLICY_MASK: st = pare_allocate_mask(m, o->ratio, &how, plan, err); break;
    case PARE_POLICY_AUTO: st = auto_plan(m, o, calib_ids, co, progress, plan, err); break;
    default: st = spectral_plan(m, me, w, o, &how, calib_ids, co, progress, plan, err); break;
    }
    return st;
}

pare_status pare_method_compress(pare_model *m, const pare_method *me, const pare_method_opts *o,
                                 const int32_t *calib_ids, const pare_calib_opts *co, const pare_progress *progress,
                                 pare_apply_report *rep, pare_weighting *weighting_used, pare_error *err)
{
    pare_plan plan = {0};
    pare_weighting w = me->weighting;
    if (me->policy == PARE_POLICY_AUTO) { /* decided block by block as it compresses */
        pare_status st = check_opts(me, o, &w, err);
        if (weighting_used)
            *weighting_used = w;
        pare_auto_opts ao;
        pare_method_auto_opts(o, &ao);
        pare_apply_report local;
        return st ? st
                  : pare_auto_compress(m, calib_ids, co, &ao, o->ratio, progress, rep ? rep : &local, o->auto_record,
                                       err);
    }
    pare_status st = pare_method_plan(m, me, o, calib_ids, co, progress, &plan, &w, err);
    if (weighting_used)
        *weighting_used = w;
    pare_apply_report local;
    if (!st) {
        pare_apply_opts ao;
        pare_apply_defaults(&ao);
        ao.sequential = me->sequential;
        st = pare_apply_plan(m, &plan, calib_ids, co, &ao, progress, rep ? rep : &local, err);
    }
    pare_plan_free(&plan);
    return st;
}

/* Named compression methods (lorap, svd, asvd, svdllm, wanda, magnitude, global, energy, ...): each is
 * an allocation policy plus how factors are computed, channels scored and masks chosen. Every front
 * end (the batch CLI, Lua recipes, the TUI) compresses through this one table and function, so a
 * method means the same thing everywhere. */
#ifndef PARE_METHOD_H
#define PARE_METHOD_H

#include "auto_alloc.h"
#include "compress.h"

typedef enum {
    PARE_POLICY_LORAP,
    PARE_POLICY_UNIFORM,
    PARE_POLICY_MASK,
    PARE_POLICY_GLOBAL,
    PARE_POLICY_ENERGY,
    PARE_POLICY_AUTO
} pare_policy;

typedef struct {
    const char *name;
    pare_policy policy;
    int ffn_channels; /* uniform plans: prune FFN channels instead of factorizing the FFN */
    pare_weighting weighting;
    pare_chan_score chan_score;
    pare_prune_score mask_score;
    pare_prune_scope mask_scope;
    int sequential;
    const char *what; /* one line for --help */
} pare_method;

/* The table, NULL-name terminated; *count (may be NULL) gets the number of methods. */
const pare_method *pare_methods(int *count);
/* The method called name, or NULL. */
const pare_method *pare_method_find(const char *name);
/* "none", "act", "whiten" (indexed by pare_weighting), NULL-terminated. */
extern const char *const PARE_WEIGHTING_NAMES[];
const char *pare_policy_name(pare_policy p);

typedef struct {
    double ratio;      /* fraction of block-linear parameters to remove, (0, 1) (default 0.2); not for energy */
    double split;      /* LoRAP (V,O) : (Q,K) parameter split (default 3) */
    double keep_least; /* LoRAP channel selection (default 0.01) */
    double energy;     /* energy policy: fraction of weighted spectral energy kept (default 0.9) */
    int weighting;     /* global / energy: a pare_weighting, or -1 for the method's own (default) */
    int nm_n, nm_m;    /* mask methods: N:M semi-structured masks when nm_m > 0 (ratio then ignored; default 0:0) */
    pare_auto_sensitivity sensitivity; /* auto: how the error curves are weighted (default kl) */
    int probe_samples;                 /* auto: calibration windows the probes score (default 4) */
    pare_auto_record *auto_record;     /* auto, output: the decisions and sensitivities (may be NULL; free with
                                          pare_auto_record_free) */
} pare_method_opts;

void pare_method_defaults(pare_method_opts *o);
/* auto's options (sensitivity, probe_samples, keep_least) out of o, the rest at pare_auto_defaults. */
void pare_method_auto_opts(const pare_method_opts *o, pare_auto_opts *ao);
/* How the method compresses each planned matrix under o (the plan items' pare_plan_how). */
void pare_method_how(const pare_method *me, const pare_method_opts *o, pare_plan_how *how);

/* Checks the options against the method (errors name the option: "ratio 1.5: ...", "keep_least ...",
 * "weighting whiten: only the global and energy methods take a weighting"), plans and applies it to
 * m. calib_ids [co->samples * co->len] may be NULL when the method needs no statistics (otherwise an
 * error saying so). Spectral policies calibrate the dense model one-shot for their plan first.
 * progress sees the stages of each step ("calibrate", "spectra", "compress"). rep (may be NULL)
 * gets the apply report, *weighting_used (may be NULL) the weighting the factors used. */
/* The plan pare_method_compress would apply, without changing m (spectral policies calibrate and
 * compute spectra for it); the same option checks and errors. Free it with pare_plan_free. */
pare_status pare_method_plan(pare_model *m, const pare_method *me, const pare_method_opts *o, const int32_t *calib_ids,
                             const pare_calib_opts *co, const pare_progress *progress, pare_plan *plan,
                             pare_weighting *weighting_used, pare_error *err);

pare_status pare_method_compress(pare_model *m, const pare_method *me, const pare_method_opts *o,
                                 const int32_t *calib_ids, const pare_calib_opts *co, const pare_progress *progress,
                                 pare_apply_report *rep, pare_weighting *weighting_used, pare_error *err);

#endif

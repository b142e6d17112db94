/* The workbench's jobs (see jobs.h): their inputs are copies or parts of the state that stay
 * unchanged while a job runs (the loaded model, the cached statistics: the UI refuses to change the
 * settings while busy); their outputs are handed to the state in done() on the UI thread. */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "lsession.h"

/* ---- spectra --------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    tui_job job;
    pare_model *model; /* borrowed: the loaded model */
    tui_settings set;
    int w;
    int mat;                      /* one matrix (its index in the state), or -1: every matrix */
    const pare_calib_stats *have; /* borrowed: the state's statistics, or NULL */
    pare_calib_stats *calib;      /* computed here, handed over in done */
    pare_model_spectra *sp;       /* every matrix */
    pare_matrix_spectrum one;     /* one matrix */
    const pare_linear *lin;       /* borrowed: that matrix */
    double t0;
} spectra_job;

static pare_status spectra_run(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err)
{
    spectra_job *s = (spectra_job *)j;
    const pare_calib_stats *cs = s->have;
    if (s->w != PARE_WEIGHT_NONE && !cs) {
        char line[1200];
        snprintf(line, sizeof line, "calibrating on %s: %d windows of %d tokens, seed %llu (Gram matrices)",
                 s->set.calib[0] ? s->set.calib : "(none)", s->set.calib_samples, s->set.calib_len, s->set.seed);
        tui_worker_log(w, line);
        pare_status st = tui_calibrate(s->model, &s->set, 1, p, &s->calib, err);
        if (st)
            return st;
        cs = s->calib;
    }
    if (s->mat >= 0)
        return pare_matrix_spectrum_compute(s->model, cs, s->lin, (pare_weighting)s->w, p, &s->one, err);
    return pare_model_spectra_weighted(s->model, cs, (pare_weighting)s->w, p, &s->sp, err);
}

/* A failed job's message goes to the log (and the status line); 1 when st is a failure. */
static int logged_failure(pare_status st, const pare_error *err, const tui_job_ctx *c)
{
    if (st)
        c->log(c->ui, 1, err->msg);
    return st != PARE_OK;
}

static void spectra_done(tui_job *j, pare_status st, const pare_error *err, void *ctx)
{
    spectra_job *s = (spectra_job *)j;
    tui_job_ctx *c = ctx;
    char line[256];
    if (st == PARE_ECANCELED && s->mat >= 0) { /* the selection moved on, or F9: not an error */
        snprintf(line, sizeof line, "%s spectrum of %s: cancelled", TUI_WEIGHTING_LABELS[s->w], s->lin->name);
        c->log(c->ui, 0, line);
        return;
    }
    if (logged_failure(st, err, c))
        return;
    if (s->calib) {
        tui_state_drop_calib(c->st);
        c->st->calib = s->calib;
        s->calib = NULL;
    }
    if (s->mat >= 0) {
        /* s1 to 10 digits: `pare spectra --json` gives it as s_max, so a reader can compare */
        snprintf(line, sizeof line, "%s spectrum of %s ready: s1 %.10g, %d values (%.1f s)", TUI_WEIGHTING_LABELS[s->w],
                 s->one.name, s->one.stats.s_max, s->one.stats.r, now_s() - s->t0);
        int had_all = c->st->spectra[s->w] != NULL;
        tui_state_put_spectrum(c->st, s->w, s->mat, &s->one);
        c->log(c->ui, 0, line);
        if (!had_all && c->st->spectra[s->w]) {
            snprintf(line, sizeof line, "%s spectra of all %d matrices ready", TUI_WEIGHTING_LABELS[s->w], c->st->n);
            c->log(c->ui, 0, line);
        }
        return;
    }
    tui_state_put_spectra(c->st, s->w, s->sp);
    s->sp = NULL;
    snprintf(line, sizeof line, "%s spectra of %d matrices ready", TUI_WEIGHTING_LABELS[s->w], c->st->n);
    c->log(c->ui, 0, line);
}

static void spectra_destroy(tui_job *j)
{
    spectra_job *s = (spectra_job *)j;
    pare_calib_free(s->calib);
    pare_model_spectra_free(s->sp);
    pare_matrix_spectrum_clear(&s->one);
    free(s);
}

tui_job *tui_job_spectrum(const tui_state *st, int w, int mat)
{
    if (mat < 0 || mat >= st->n)
        return NULL;
    spectra_job *s = (spectra_job *)tui_job_spectra(st, w);
    if (!s)
        return NULL;
    s->mat = mat;
    s->lin = st->lin[mat];
    s->t0 = now_s();
    snprintf(s->job.name, sizeof s->job.name, "%s spectrum %.40s", TUI_WEIGHTING_LABELS[w], st->lin[mat]->name);
    return &s->job;
}

tui_job *tui_job_spectra(const tui_state *st, int w)
{
    spectra_job *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mat = -1;
    snprintf(s->job.name, sizeof s->job.name, "%s spectra", TUI_WEIGHTING_LABELS[w]);
    s->job.run = spectra_run;
    s->job.done = spectra_done;
    s->job.destroy = spectra_destroy;
    s->model = st->model;
    s->set = st->set;
    s->w = w;
    s->have = st->calib;
    return &s->job;
}

/* ---- auto's sensitivity pass ------------------------------------------------------------------ */

typedef struct {
    tui_job job;
    const pare_model *model; /* borrowed: the loaded model */
    tui_settings set;
    pare_auto_opts opts;
    pare_auto_analysis *an; /* computed here, handed over in done */
    double *curve;
    int curve_n;
} auto_job;

static pare_status auto_run(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err)
{
    auto_job *s = (auto_job *)j;
    char line[1200];
    snprintf(line, sizeof line, "auto: measuring sensitivities on %s: %d windows of %d tokens, seed %llu, %d probed",
             s->set.calib, s->set.calib_samples, s->set.calib_len, s->set.seed, s->opts.probe_samples);
    tui_worker_log(w, line);
    return tui_auto_analyze(s->model, &s->set, &s->opts, p, &s->an, &s->curve, &s->curve_n, err);
}

static void auto_done(tui_job *j, pare_status st, const pare_error *err, void *ctx)
{
    auto_job *s = (auto_job *)j;
    tui_job_ctx *c = ctx;
    if (logged_failure(st, err, c))
        return;
    char line[256];
    snprintf(line, sizeof line, "auto: sensitivities of %d matrices ready (%d probe forwards of %zu tokens, %.1f s)",
             s->an->count, s->an->probe_evals, s->an->probe_tokens, s->an->seconds);
    c->log(c->ui, 0, line);
    tui_state_set_auto(c->st, s->an, s->curve, s->curve_n);
    s->an = NULL;
    s->curve = NULL;
}

static void auto_destroy(tui_job *j)
{
    auto_job *s = (auto_job *)j;
    pare_auto_analysis_free(s->an);
    free(s->curve);
    free(s);
}

tui_job *tui_job_auto(const tui_state *st)
{
    auto_job *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->job.name, sizeof s->job.name, "auto sensitivities");
    s->job.run = auto_run;
    s->job.done = auto_done;
    s->job.destroy = auto_destroy;
    s->model = st->model;
    s->set = st->set;
    pare_method_opts mo;
    tui_method_opts_effective(&st->cfg, &mo);
    pare_method_auto_opts(&mo, &s->opts);
    return &s->job;
}

/* ---- evaluation -------------------------------------------------------------------------------- */

typedef struct {
    tui_job job;
    const pare_model *model;
    tui_config cfg;
    tui_settings set;
    tui_result row;
} eval_job;

static pare_status eval_run(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err)
{
    eval_job *e = (eval_job *)j;
    char line[256];
    tui_config_label(&e->cfg, line, sizeof line);
    size_t n = strlen(line);
    snprintf(line + n, sizeof line - n, "%s",
             e->cfg.kind == TUI_CFG_DENSE ? ": evaluating the model as loaded"
                                          : ": compressing a copy of the model and evaluating");
    tui_worker_log(w, line);
    return tui_run_config(e->model, &e->cfg, &e->set, p, &e->row, err);
}

static void eval_done(tui_job *j, pare_status st, const pare_error *err, void *ctx)
{
    eval_job *e = (eval_job *)j;
    tui_job_ctx *c = ctx;
    if (logged_failure(st, err, c))
        return;
    tui_state_add_result(c->st, &e->row);
    char line[512];
    if (e->set.eval[0]) {
        snprintf(line, sizeof line, "result: %s: ppl %.10g on %s, block linears %zu -> %zu, all %zu -> %zu (%.1f s)",
                 e->row.label, e->row.ppl, e->row.data, e->row.block_before, e->row.block_after, e->row.total_before,
                 e->row.total_after, e->row.wall_s);
        c->log(c->ui, 0, line);
    }
    if (e->row.task[0]) {
        snprintf(line, sizeof line, "result: %s: %s acc %.4f acc_norm %.4f (%zu items), all parameters %zu -> %zu",
                 e->row.label, e->row.task, e->row.acc, e->row.acc_norm, e->row.task_items, e->row.total_before,
                 e->row.total_after);
        c->log(c->ui, 0, line);
    }
}

static void eval_destroy(tui_job *j)
{
    eval_job *e = (eval_job *)j;
    tui_config_free(&e->cfg);
    free(e);
}

tui_job *tui_job_eval(const tui_state *st)
{
    eval_job *e = calloc(1, sizeof *e);
    pare_error err = {0};
    if (!e || tui_config_resolve(st, &e->cfg, &err)) {
        free(e);
        return NULL;
    }
    char label[96];
    tui_config_label(&e->cfg, label, sizeof label);
    snprintf(e->job.name, sizeof e->job.name, "eval %.58s", label);
    e->job.run = eval_run;
    e->job.done = eval_done;
    e->job.destroy = eval_destroy;
    e->model = st->model;
    e->set = st->set;
    return &e->job;
}

/* ---- recipe runs ------------------------------------------------------------------------------- */

typedef struct {
    tui_job job;
    char recipe[1024], out[1024];
    char **sets;
    int n_sets;
    int sandbox; /* LS_SANDBOX, reading only the allowed paths (and what lsession_set names) */
    char **allow;
    int n_allow;
    ls_status status;
    char msg[8192];
    char run_out[4096];
} recipe_job;

/* The session runner's interrupted() takes no argument; one recipe runs at a time. */
static tui_worker *RECIPE_WORKER;
static int recipe_interrupted(void) { return RECIPE_WORKER && tui_worker_cancel_requested(RECIPE_WORKER); }

static void recipe_event(void *user, const ls_event *ev)
{
    tui_worker *w = user;
    switch (ev->kind) {
    case LS_PROGRESS: tui_worker_progress(w, ev->stage, ev->fraction, ev->text); break;
    case LS_ERROR: break; /* reported once by done() */
    default: {
        /* a multi-line print becomes several log lines */
        const char *t = ev->text ? ev->text : "";
        while (*t) {
            size_t len = strcspn(t, "\n");
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)(len < 1000 ? len : 1000), t);
            tui_worker_log(w, line);
            t += len + (t[len] == '\n');
        }
    }
    }
}

static pare_status recipe_run(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err)
{
    recipe_job *r = (recipe_job *)j;
    (void)p;
    ls_sink sink = {recipe_event, recipe_interrupted, w};
    RECIPE_WORKER = w;
    lsession *s = lsession_open(r->recipe, &sink, r->sandbox ? LS_SANDBOX : 0, (const char *const *)r->allow,
                                r->n_allow, r->msg, sizeof r->msg);
    if (!s) {
        RECIPE_WORKER = NULL;
        return pare_fail(err, PARE_EINVAL, "%s", r->msg);
    }
    for (int i = 0; i < r->n_sets; i++) {
        char msg[2048];
        if (lsession_set_arg(s, r->sets[i], msg, sizeof msg) && !strstr(msg, ": no parameter '"))
            tui_worker_log(w, msg); /* declared but refused (range, choices): the recipe's default stays */
    }
    char line[2200];
    snprintf(line, sizeof line, "running %s into %s%s", r->recipe, r->out,
             r->sandbox ? " in the sandbox (no processes or libraries; reads the model, data, OUT, --allow)" : "");
    tui_worker_log(w, line);
    r->status = lsession_run(s, r->out, 1, r->msg, sizeof r->msg);
    snprintf(r->run_out, sizeof r->run_out, "%s", lsession_out_dir(s));
    lsession_close(s);
    RECIPE_WORKER = NULL;
    if (r->status == LS_CANCELLED)
        return pare_fail(err, PARE_ECANCELED, "%s", r->msg);
    if (r->status != LS_COMPLETE)
        return pare_fail(err, PARE_EINVAL, "%s", r->msg);
    return PARE_OK;
}

static void recipe_done(tui_job *j, pare_status st, const pare_error *err, void *ctx)
{
    recipe_job *r = (recipe_job *)j;
    tui_job_ctx *c = ctx;
    if (st && r->status != LS_CANCELLED && r->status != LS_FAILED) {
        c->log(c->ui, 1, err->msg);
        return;
    }
    int rows = r->run_out[0] ? tui_results_from_run(c->st, r->run_out) : 0;
    char line[4300];
    snprintf(line, sizeof line, "run %s: %.1000s, %d result row%s; record %.3000s/run.json",
             r->status == LS_COMPLETE    ? "complete"
             : r->status == LS_CANCELLED ? "cancelled"
                                         : "failed",
             r->recipe, rows, rows == 1 ? "" : "s", r->run_out);
    c->log(c->ui, 0, line);
    if (st) /* then the full message (traceback) to the log, its first line staying on the status line */
        c->log(c->ui, 1, r->msg);
}

static void recipe_destroy(tui_job *j)
{
    recipe_job *r = (recipe_job *)j;
    tui_free_strings(r->sets, r->n_sets);
    tui_free_strings(r->allow, r->n_allow);
    free(r);
}

tui_job *tui_job_recipe(const char *recipe, const char *out_dir, const char *const *sets, int n_sets, int sandbox,
                        const char *const *allow, int n_allow)
{
    recipe_job *r = calloc(1, sizeof *r);
    if (!r || !(r->sets = calloc((size_t)(n_sets > 0 ? n_sets : 1), sizeof *r->sets)) ||
        !(r->allow = calloc((size_t)(n_allow > 0 ? n_allow : 1), sizeof *r->allow))) {
        if (r)
            free(r->sets);
        free(r);
        return NULL;
    }
    for (int i = 0; i < n_sets; i++)
        if ((r->sets[r->n_sets] = strdup(sets[i])))
            r->n_sets++;
    for (int i = 0; i < n_allow; i++)
        if (allow[i] && allow[i][0] && (r->allow[r->n_allow] = strdup(allow[i])))
            r->n_allow++;
    r->sandbox = sandbox;
    const char *base = strrchr(recipe, '/');
    snprintf(r->job.name, sizeof r->job.name, "run %s", base ? base + 1 : recipe);
    snprintf(r->recipe, sizeof r->recipe, "%s", recipe);
    snprintf(r->out, sizeof r->out, "%s", out_dir);
    r->job.run = recipe_run;
    r->job.done = recipe_done;
    r->job.destroy = recipe_destroy;
    return &r->job;
}

/* The workbench's long jobs, each a tui_job for the worker thread: spectra (calibrating on demand),
 * evaluating a configuration, and running a recipe through the session runner (presets with F5,
 * optionally sandboxed, the export of the current configuration with x). Their results reach the
 * state in done(), on the UI thread, through a tui_job_ctx given to tui_worker_poll. */
#ifndef PARE_UI_JOBS_H
#define PARE_UI_JOBS_H

#include "state.h"
#include "worker.h"

typedef struct {
    tui_state *st;
    void (*log)(void *ui, int error, const char *line); /* error: also on the status line */
    void *ui;
} tui_job_ctx;

/* Spectra of weighting w of the loaded model; computes the one-shot statistics (with Gram matrices,
 * so both weightings share them) first when the state has none. */
tui_job *tui_job_spectra(const tui_state *st, int w);
/* The spectrum of weighting w of matrix mat alone (a big model's selected matrix), calibrating first
 * in the same way; done() puts it into the state's per-matrix cache (tui_state_put_spectrum). */
tui_job *tui_job_spectrum(const tui_state *st, int w, int mat);
/* auto's sensitivity pass (pare_auto_analyze) on the loaded model with the settings' calibration windows
 * and the budget's auto options, then its budget curve (tui_auto_curve); done() hands both to the state,
 * which then solves every ratio from them. */
tui_job *tui_job_auto(const tui_state *st);
/* Evaluates a copy of the state's configuration (as tui_config_resolve gives it) on a clone of the
 * loaded model: one result row. NULL when out of memory or the configuration has no plan yet. */
tui_job *tui_job_eval(const tui_state *st);
/* Runs recipe into out_dir with sets ("name=value"; names the recipe does not declare are skipped)
 * through the session runner; its events go to the log, its result rows (run.json) to the results.
 * sandbox: as pare run --sandbox (lsession_open's LS_SANDBOX), the recipe reading only the paths in
 * allow (a file or a folder and what is under it), those the sets name, and out_dir. */
tui_job *tui_job_recipe(const char *recipe, const char *out_dir, const char *const *sets, int n_sets, int sandbox,
                        const char *const *allow, int n_allow);

#endif

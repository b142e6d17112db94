/* What the workbench's jobs do to models, without a terminal or a thread: calibrate the loaded model,
 * compute its spectra, compress a clone as a configuration says, and evaluate it. A saved recipe
 * (recipe_out.h) makes the same core calls through the Lua module, so both give the same numbers. */
#ifndef PARE_UI_APPLY_H
#define PARE_UI_APPLY_H

#include "core/eval.h"
#include "core/zeroshot.h"
#include "state.h"

/* Calibration windows of the settings (pare_calib_windows_file); *ids malloc'd. */
pare_status tui_calib_windows(const pare_model *m, const tui_settings *set, int32_t **ids, pare_calib_opts *co,
                              pare_error *err);
/* One-shot statistics of m under the settings' calibration text (Gram matrices when gram). */
pare_status tui_calibrate(pare_model *m, const tui_settings *set, int gram, const pare_progress *p,
                          pare_calib_stats **out, pare_error *err);

/* auto's sensitivity pass (pare_auto_analyze with options o) on a clone of m under the settings'
 * calibration windows (the probes swap truncated matrices into the model they measure, and the screen
 * keeps reading the loaded one), then its budget curve (tui_auto_curve). */
pare_status tui_auto_analyze(const pare_model *m, const tui_settings *set, const pare_auto_opts *o,
                             const pare_progress *p, pare_auto_analysis **an, double **curve, int *curve_n,
                             pare_error *err);

/* Compresses m (a clone of the loaded model) as cfg says: METHOD through pare_method_compress with
 * the settings' calibration windows, MANUAL by one-shot statistics of m (when some rank is weighted)
 * then pare_factorize_linear per matrix, DENSE not at all. */
pare_status tui_apply(pare_model *m, const tui_config *cfg, const tui_settings *set, const pare_progress *p,
                      pare_error *err);

/* Perplexity of m on the settings' evaluation text (window, limit_tokens; batch 8, as m:eval). */
pare_status tui_evaluate(const pare_model *m, const tui_settings *set, const pare_progress *p, pare_eval_result *r,
                         pare_error *err);

/* The settings' zero-shot task on m (task, task_data, task_limit; pare_zeroshot_defaults, as
 * m:eval_task(task, data, {limit = N}) scores it). r is released with pare_zeroshot_result_free. */
pare_status tui_score_task(const pare_model *m, const tui_settings *set, const pare_progress *p,
                           pare_zeroshot_result *r, pare_error *err);

/* Clone of src (src itself for the dense configuration), tui_apply, tui_evaluate (when an evaluation
 * text is set) and tui_score_task (when a task is set): one result row (label, parameters, ppl, acc, acc_norm, time; NAN for what was not
 * measured). */
pare_status tui_run_config(const pare_model *src, const tui_config *cfg, const tui_settings *set,
                           const pare_progress *p, tui_result *row, pare_error *err);

#endif

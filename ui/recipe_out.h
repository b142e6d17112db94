/* The workbench's configuration as a Lua recipe: `pare run` of the file reloads the model, repeats
 * the calibration and the decisions through the `pare` module (m:compress for a method, m:calibrate +
 * m:factorize for per-matrix ranks) and evaluates under the same protocol, so it reproduces the
 * decisions and the perplexity the workbench measured. */
#ifndef PARE_UI_RECIPE_OUT_H
#define PARE_UI_RECIPE_OUT_H

#include "state.h"

/* The recipe text (*text malloc'd). Matrix names come from st (the loaded model), defaults from set;
 * note (may be NULL) is added to the header comment (e.g. the perplexity the workbench measured). */
pare_status tui_recipe_text(const tui_state *st, const tui_config *cfg, const tui_settings *set, const char *note,
                            char **text, pare_error *err);
/* tui_recipe_text written atomically to path. */
pare_status tui_recipe_save(const tui_state *st, const tui_config *cfg, const tui_settings *set, const char *note,
                            const char *path, pare_error *err);

#endif

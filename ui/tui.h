/* The workbench's entry point: `pare tui` (src/cli/cmd_tui.c) parses its options, loads the model and
 * hands them over here. ui/ is above lua/ and src/record and below src/cli: nothing in ui/ includes
 * the CLI's headers (tools/layering.sh checks it). */
#ifndef PARE_UI_TUI_H
#define PARE_UI_TUI_H

#include <stddef.h>

#include "core/error.h"
#include "core/model.h"
#include "state.h"

typedef struct {
    pare_model *model;      /* loaded; the workbench owns it from the call on, whatever the outcome */
    const char *model_path; /* as given: the header, recipes and logs name it */
    tui_settings set;       /* calibration, evaluation, task and output folder */
    int sandbox;            /* F5 recipes run in the sandbox (F2 toggles it) */
    const char **allow;     /* malloc'd: more paths sandboxed recipes may read; the workbench owns it */
    int n_allow;
    int headless;    /* no terminal: keys replayed, jobs waited for, the screen kept in memory */
    int cols, rows;  /* headless screen size */
    const int *keys; /* headless: the keys to replay */
    int n_keys;
    const char *dump; /* headless: where the final screen goes as UTF-8 text ("-": stdout), or NULL */
} tui_options;

enum { TUI_DONE = 0, TUI_INTERRUPTED = 1 };

/* Runs the workbench until q / F10 (or, headless, until the keys are replayed). Returns TUI_DONE,
 * TUI_INTERRUPTED after SIGINT / SIGTERM / SIGHUP (when re-raising the signal did not end the process),
 * or -1 with err saying what failed (the job thread, the terminal, writing the screen dump). */
int tui_run(const tui_options *o, pare_error *err);

/* Key names ("j Right S-Tab Enter F2 'text'") to curses key codes; -1 with a message naming the
 * unknown one. *keys is malloc'd. */
int tui_parse_keys(const char *spec, int **keys, int *n, char *msg, size_t cap);
/* "120x40" -> 120, 40; -1 if malformed. */
int tui_parse_size(const char *s, int *cols, int *rows);

#endif

/* Shared by the curses files of the workbench (tui.c: the loop and screen manager; term.c: the
 * terminal; overlay.c: help and dialogs; editor.c: the line editor; actions.c: what command keys start;
 * draw.c: drawing helpers; panes.c + panel_*.c: the panes). Not used outside ui/. */
#ifndef PARE_UI_TUI_INTERNAL_H
#define PARE_UI_TUI_INTERNAL_H

#include <curses.h>

#include "jobs.h"
#include "plots.h"
#include "state.h"
#include "tui.h"
#include "worker.h"

/* Colour pairs: named roles, then one per terminal plot colour (PARE_TERM_COLORS of them). */
enum {
    PAIR_TITLE = 1, /* pane titles */
    PAIR_FOCUS,     /* the focused pane's frame */
    PAIR_SEL,       /* selected row */
    PAIR_FKEY,      /* "F1" of the function bar */
    PAIR_FLABEL,    /* "Help" of the function bar */
    PAIR_ERROR,
    PAIR_GOOD,
    PAIR_DIM,
    PAIR_BAR, /* filled part of bars */
    PAIR_HEADER,
    PAIR_PLOT0 /* + colour index of a terminal plot cell */
};

typedef enum { OV_NONE, OV_HELP, OV_SETUP, OV_PRESETS, OV_MIX } tui_overlay;
/* What the line editor's text goes to. */
typedef enum { ED_NONE, ED_SEARCH, ED_BUDGET, ED_SETUP } tui_edit_target;

typedef struct tui_app {
    tui_state st;
    tui_worker *worker;
    tui_job_ctx jctx;
    tui_job_status js;
    tui_layout lay;
    int cols, rows;
    int focus; /* tui_pane_id */
    int utf8, color;
    tui_plot_kind plot;
    int dirty;

    char **log; /* log pane lines ("!" first character: an error) */
    int log_n, log_cap, log_scroll;
    char status[512]; /* status line message */
    int status_err;

    int tree_row, tree_top; /* tree selection and scroll (row indices) */
    int bud_row;
    int res_row, res_top;

    tui_overlay overlay;
    int ov_row;
    char **presets;
    int n_presets;

    tui_edit_target edit;
    int edit_field; /* budget or setup field being edited */
    char edit_buf[1024];
    int edit_pos;
    char edit_prompt[64];
    char edit_orig[1024]; /* restored on Esc */

    int mix_type[TUI_TYPES]; /* method per matrix type: TUI_MIX_KEEP or a pare_weighting */
    int mix_policy;          /* tui_mix_policy */
    int mix_pending;         /* waiting for spectra: apply again when they are ready */

    char search[128];
    int quit;
    int auto_failed[3]; /* an automatic spectra job failed for this weighting: do not retry until settings change */
    int auto_analysis_failed; /* method auto's sensitivity pass failed or was cancelled: not again until asked */

    int sandbox;        /* F5 recipes run in the sandbox (pare run --sandbox): --sandbox, toggled in F2 */
    const char **allow; /* --allow PATH: more paths sandboxed recipes may read */
    int n_allow;
    int headless; /* --keys / --dump-screen: no terminal, keys replayed, jobs waited for */
} tui_app;

/* tui.c */
void tui_log(tui_app *a, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Submits a job; logs "busy" and frees it when another runs. Returns 0 when started. */
int tui_submit(tui_app *a, tui_job *j);
/* The selected matrix changed: keep the tree's row on it. */
void tui_tree_follow(tui_app *a);
/* Starts the spectra job of the plot's weighting when it is missing. */
void tui_want_spectra(tui_app *a, int w);
/* Starts method auto's sensitivity pass when the budget's plan waits for it. */
void tui_want_auto(tui_app *a);

/* term.c */
/* Takes the terminal (headless: a cols x rows screen in memory); -1 if curses cannot start. */
int tui_term_start(tui_app *a, int cols, int rows);
/* The quit signal that arrived (SIGINT, SIGTERM, SIGHUP), or 0. */
int tui_term_signal(void);
/* Lines written to fds 1 and 2 while the screen is up, into the log. */
void tui_term_drain(tui_app *a);
/* Gives the terminal back, frees curses' screen and drains the last captured output. */
void tui_term_finish(tui_app *a);

/* editor.c */
void tui_start_edit(tui_app *a, tui_edit_target t, int field, const char *prompt, const char *text);
void tui_edit_key(tui_app *a, int ch);
/* The prompt, the text and the cursor on the status line r. */
void tui_edit_draw(tui_app *a, tui_rect r);

/* overlay.c */
/* Opens an overlay on its first row (the presets are listed again for OV_PRESETS). */
void tui_overlay_open(tui_app *a, tui_overlay ov);
void tui_overlay_draw(tui_app *a);
void tui_overlay_key(tui_app *a, int ch);
/* A setup field's edited text; 0 if it was valid and applied, else logged. */
int tui_setup_apply(tui_app *a, int f, const char *text);
/* Applies the method per type; waits for (and starts) the spectra it needs. */
void tui_mix_apply(tui_app *a);

/* actions.c */
void tui_save(tui_app *a);
void tui_export(tui_app *a);
void tui_write_png(tui_app *a);
void tui_start_eval(tui_app *a);
/* Runs a preset recipe with the setup's settings into a new folder of the session (sandboxed if set). */
void tui_run_preset(tui_app *a, const char *path);

/* headless.c */
/* What stdscr holds, as UTF-8 text: one line per row, trailing blanks dropped; malloc'd. */
char *tui_screen_text(void);

/* draw.c */
void tui_colors_init(tui_app *a);
int tui_attr(const tui_app *a, int pair);
/* UTF-8 text at (y, x) clipped to w columns (every code point one column); returns columns used. */
int tui_put(int y, int x, int w, const char *s, int attr);
void tui_fill(int y, int x, int w, int attr);
void tui_box(const tui_app *a, tui_rect r, const char *title, int focused);
/* A bar of w cells filled to frac. */
void tui_bar(const tui_app *a, int y, int x, int w, double frac, int attr_fill, int attr_empty);
/* Draws a rendered plot grid at (y, x). */
void tui_blit_grid(const tui_app *a, const pare_term_grid *g, int y, int x);
/* 1234567 -> "1.23M", 98304 -> "98.3k" */
void tui_human(size_t n, char *buf, size_t cap);

/* panels */
void tui_tree_draw(tui_app *a, tui_rect r, int focused);
int tui_tree_key(tui_app *a, int ch);
void tui_tree_click(tui_app *a, int x, int y);
void tui_plot_draw(tui_app *a, tui_rect r, int focused);
int tui_plot_key(tui_app *a, int ch);
void tui_plot_click(tui_app *a, int x, int y);
void tui_budget_draw(tui_app *a, tui_rect r, int focused);
int tui_budget_key(tui_app *a, int ch);
void tui_budget_click(tui_app *a, int x, int y);
/* The line editor's text for budget field f changed (live) or was committed; 0 if it parsed. */
int tui_budget_apply_text(tui_app *a, int f, const char *text);
void tui_budget_field_text(const tui_app *a, int f, char *buf, size_t cap);
void tui_results_draw(tui_app *a, tui_rect r, int focused);
int tui_results_key(tui_app *a, int ch);
void tui_results_click(tui_app *a, int x, int y);
void tui_log_draw(tui_app *a, tui_rect r, int focused);
int tui_log_key(tui_app *a, int ch);

/* panes.c: a pane as the main loop sees it. */
typedef struct {
    const char *name;
    void (*draw)(tui_app *a, tui_rect r, int focused);
    int (*key)(tui_app *a, int ch);          /* 1 when the pane used the key */
    void (*click)(tui_app *a, int x, int y); /* NULL: a click only focuses the pane */
    int wheel;                               /* the mouse wheel scrolls it (as Up / Down keys) */
} tui_pane;
extern const tui_pane TUI_PANES[TUI_P_COUNT];

/* Rank cursor keys shared by the tree and the plot: Left/Right by 1, </> by 10, Enter sets the rank,
 * a sets it for the whole type, d clears it. Returns 1 if handled. */
int tui_rank_key(tui_app *a, int ch);

#endif

/* The workbench's plots as core plot descriptions (src/plot/plot.h): the plot pane renders them into
 * terminal cells and `p` writes the same description as PNG. No terminal here. */
#ifndef PARE_UI_PLOTS_H
#define PARE_UI_PLOTS_H

#include "plot/plot.h"
#include "state.h"

typedef enum {
    TUI_PLOT_SPECTRUM, /* singular values of the selected matrix, energy on y2, rank cursor and break-even */
    TUI_PLOT_HEATMAP,  /* parameters kept per matrix (layers x types) under the configuration (h) */
    TUI_PLOT_LAYERS,   /* the selected matrix's type across layers, values over s_1 (g) */
    TUI_PLOT_CHART,    /* perplexity (or acc, acc_norm: c again) against parameters of the results, per method (c) */
    TUI_PLOT_BUDGET, /* auto's predicted loss increase against the ratio, uniform svdllm's beside, the ratio marked (b) */
    TUI_PLOT_KINDS
} tui_plot_kind;

extern const char *const TUI_PLOT_NAMES[TUI_PLOT_KINDS];

/* Builds the plot (free with pare_plot_destroy). PARE_EINVAL with a one-line reason when there is
 * nothing to show yet (spectra not computed, no results). */
pare_status tui_plot_build(const tui_state *st, tui_plot_kind kind, pare_plot **out, pare_error *err);

#endif

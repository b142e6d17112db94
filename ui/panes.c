/* The panes as the main loop sees them: one table of {draw, key, click} per pane id (the way htop's
 * Panel classes carry their handlers), so the loop draws, sends keys and clicks through the table
 * instead of switching over pane ids. The panes themselves are in panel_*.c. */
#include "tui_internal.h"

/* The tree and the plot show the selected matrix: the keys they leave move its rank cursor. */
static int tree_key(tui_app *a, int ch) { return tui_tree_key(a, ch) || tui_rank_key(a, ch); }
static int plot_key(tui_app *a, int ch) { return tui_plot_key(a, ch) || tui_rank_key(a, ch); }

const tui_pane TUI_PANES[TUI_P_COUNT] = {
    [TUI_P_TREE] = {"tree", tui_tree_draw, tree_key, tui_tree_click, 1},
    [TUI_P_PLOT] = {"plot", tui_plot_draw, plot_key, tui_plot_click, 0},
    [TUI_P_BUDGET] = {"budget", tui_budget_draw, tui_budget_key, tui_budget_click, 0},
    [TUI_P_RESULTS] = {"results", tui_results_draw, tui_results_key, tui_results_click, 1},
    [TUI_P_LOG] = {"log", tui_log_draw, tui_log_key, NULL, 1},
};

/* The plot pane: the selected matrix's spectrum with the rank cursor and its live figures (parameters
 * kept, truncation error, energy kept, break-even rank), or the heatmap, layers and size-quality
 * views, all rendered by the core's terminal renderer. Also the rank cursor keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

/* Under auto: the selected matrix's choice beside svdllm's uniform rank at the same ratio, its measured
 * sensitivity (increase = coef E^power, E the whitened output error) and the predicted increase of the
 * probe measure. 0 when the configuration is not auto's plan. */
static int auto_line(const tui_state *st, char *buf, size_t cap)
{
    const tui_config *c = &st->cfg;
    int i = st->sel;
    if (!(c->kind == TUI_CFG_METHOD && c->method->policy == PARE_POLICY_AUTO && st->dec_ok && st->auto_an))
        return 0;
    const tui_decision *d = &st->dec[i];
    const pare_auto_matrix *am = &st->auto_an->mats[i];
    const pare_auto_sens *s = &am->sens;
    char choice[48], uni[32];
    if (d->action == PARE_PLAN_FACTOR)
        snprintf(choice, sizeof choice, "rank %d", d->rank);
    else if (d->action == PARE_PLAN_CHANNELS)
        snprintf(choice, sizeof choice, "FFN -%.1f%%", 100 * d->frac);
    else
        snprintf(choice, sizeof choice, "dense");
    if (d->uniform_rank > 0)
        snprintf(uni, sizeof uni, "rank %d", d->uniform_rank);
    else
        snprintf(uni, sizeof uni, "dense");
    snprintf(buf, cap, "auto %s · svdllm uniform %s · sensitivity %.3g·E^%.2f · predicted +%.3g nats/token", choice,
             uni, s->coef, s->power, d->predicted);
    return 1;
}

static void stats_line(tui_app *a, char *buf, size_t cap)
{
    tui_state *st = &a->st;
    int i = st->sel;
    buf[0] = 0;
    if (a->plot == TUI_PLOT_SPECTRUM && auto_line(st, buf, cap))
        return;
    if (a->plot == TUI_PLOT_SPECTRUM) {
        tui_cursor_stats cs;
        if (tui_cursor_stats_at(st, i, st->weighting, st->cursor[i], &cs)) {
            snprintf(buf, cap, "k %d · %s spectra not ready", st->cursor[i], TUI_WEIGHTING_LABELS[st->weighting]);
            return;
        }
        char kept[32], dense[32];
        tui_human(cs.params, kept, sizeof kept);
        tui_human(cs.dense_params, dense, sizeof dense);
        size_t o = (size_t)snprintf(buf, cap, "k %d/%d · %s/%s (%.1f%%) · err %.3f · energy %.1f%% · b-e %d", cs.k,
                                    cs.r, kept, dense, 100 * cs.kept, cs.trunc_error, 100 * cs.energy, cs.break_even);
        if (cs.k >= cs.break_even && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, " (saves nothing)");
        if (st->dec[i].action == PARE_PLAN_FACTOR && o < cap)
            snprintf(buf + o, cap - o, " · set r %d", st->dec[i].rank);
    } else if (a->plot == TUI_PLOT_BUDGET) {
        snprintf(buf, cap, "auto at ratio %.3g: predicted +%.4g nats/token, svdllm uniform +%.4g (b: back)",
                 st->mo.ratio, st->auto_predicted, st->uniform_predicted);
    } else if (a->plot == TUI_PLOT_HEATMAP) {
        char label[96];
        tui_config_label(&st->cfg, label, sizeof label);
        snprintf(buf, cap, "fraction of each matrix's parameters kept by %s (h: back)", label);
    } else if (a->plot == TUI_PLOT_LAYERS)
        snprintf(buf, cap, "%s of every layer, values over s1 (g: back)", TUI_TYPE_NAME(st->type[i]));
    else
        snprintf(buf, cap, "%d result%s: perplexity against all parameters (c: back)", st->n_res,
                 st->n_res == 1 ? "" : "s");
}

void tui_plot_draw(tui_app *a, tui_rect r, int focused)
{
    tui_state *st = &a->st;
    char title[160];
    snprintf(title, sizeof title, "%s %s", TUI_PLOT_NAMES[a->plot],
             a->plot == TUI_PLOT_HEATMAP || a->plot == TUI_PLOT_CHART ? "" : st->lin[st->sel]->name);
    tui_box(a, r, title, focused);
    int x = r.x + 1, w = r.w - 2, h = r.h - 2;
    if (w < 10 || h < 2)
        return;
    char line[512];
    stats_line(a, line, sizeof line);
    tui_put(r.y + 1, x, w, line, A_BOLD);
    pare_plot *p = NULL;
    pare_error err = {0};
    pare_term_grid *g = NULL;
    if (!tui_plot_build(st, a->plot, &p, &err) &&
        !pare_plot_render_terminal(p, w, h - 1, a->utf8 ? PARE_TERM_BRAILLE : PARE_TERM_ASCII, &g, &err))
        tui_blit_grid(a, g, r.y + 2, x);
    else if (a->js.running && strstr(a->js.job, "spectr")) /* the whole model's spectra or one matrix's */
        tui_put(r.y + 2 + (h - 1) / 2, x + 2, w - 4,
                strstr(a->js.job, "spectra") ? "computing spectra (progress on the status line)"
                                             : "computing this matrix's spectrum (progress on the status line)",
                tui_attr(a, PAIR_DIM));
    else
        tui_put(r.y + 2 + (h - 1) / 2, x + 2, w - 4, err.msg, tui_attr(a, PAIR_DIM));
    pare_term_grid_free(g);
    pare_plot_destroy(p);
}

/* Clicking in the spectrum puts the rank cursor at the index under the mouse. */
void tui_plot_click(tui_app *a, int x, int y)
{
    tui_rect r = a->lay.pane[TUI_P_PLOT];
    if (a->plot != TUI_PLOT_SPECTRUM || y < r.y + 2 || y >= r.y + r.h - 1)
        return;
    pare_plot *p = NULL;
    pare_error err = {0};
    pare_plot_layout l;
    if (!tui_plot_build(&a->st, a->plot, &p, &err) &&
        !pare_plot_layout_terminal(p, r.w - 2, r.h - 3, a->utf8 ? PARE_TERM_BRAILLE : PARE_TERM_ASCII, &l, &err)) {
        int cx = x - (r.x + 1);
        const pare_axis_range *ax = &l.axis[PARE_AXIS_X];
        if (cx >= l.x0 && cx < l.x1 && l.x1 > l.x0) {
            double v = ax->min + (cx + 0.5 - l.x0) / (double)(l.x1 - l.x0) * (ax->max - ax->min);
            tui_cursor_move(&a->st, a->st.sel, (int)(v + 0.5) - a->st.cursor[a->st.sel]);
        }
    }
    pare_plot_destroy(p);
}

int tui_rank_key(tui_app *a, int ch)
{
    tui_state *st = &a->st;
    int i = st->sel, dropped = 0;
    switch (ch) {
    case KEY_LEFT: tui_cursor_move(st, i, -1); return 1;
    case KEY_RIGHT: tui_cursor_move(st, i, 1); return 1;
    case '<':
    case ',':
    case KEY_SLEFT: tui_cursor_move(st, i, -10); return 1;
    case '>':
    case '.':
    case KEY_SRIGHT: tui_cursor_move(st, i, 10); return 1;
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (tui_state_set_rank(st, i, st->cursor[i], st->weighting, &dropped)) {
            tui_log(a, 1, "%s", st->dec_err);
            return 1;
        }
        if (dropped)
            tui_log(a, 0, "manual ranks: the method's %d channel or mask decisions are left out (u: back to the budget)",
                    dropped);
        tui_log(a, 0, "%s: rank %d (%s)", st->lin[i]->name, st->cursor[i], TUI_WEIGHTING_LABELS[st->weighting]);
        return 1;
    case 'a':
        if (tui_state_set_rank_type(st, i, st->cursor[i], st->weighting))
            tui_log(a, 1, "%s", st->dec_err);
        else
            tui_log(a, 0, "every %s matrix keeps the parameter fraction of rank %d here (%s)",
                    TUI_TYPE_NAME(st->type[i]), st->cursor[i], TUI_WEIGHTING_LABELS[st->weighting]);
        return 1;
    case 'd':
    case KEY_DC:
        if (!tui_state_set_rank(st, i, 0, st->weighting, &dropped))
            tui_log(a, 0, "%s: left as loaded", st->lin[i]->name);
        return 1;
    default: return 0;
    }
}

int tui_plot_key(tui_app *a, int ch)
{
    switch (ch) {
    case KEY_UP:
    case 'k':
        if (a->st.sel > 0)
            a->st.sel--;
        tui_tree_follow(a);
        return 1;
    case KEY_DOWN:
    case 'j':
        if (a->st.sel < a->st.n - 1)
            a->st.sel++;
        tui_tree_follow(a);
        return 1;
    default: return 0;
    }
}

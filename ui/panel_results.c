/* The results pane (one row per evaluated configuration: perplexity, zero-shot acc and acc_norm when a
 * task was scored, parameters, method, time) and
 * the log pane (job messages, recipe output, captured stderr; errors in full). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

void tui_results_draw(tui_app *a, tui_rect r, int focused)
{
    tui_state *st = &a->st;
    char title[64];
    snprintf(title, sizeof title, "Results %d", st->n_res);
    tui_box(a, r, title, focused);
    int x = r.x + 1, w = r.w - 2, h = r.h - 2;
    if (w < 10 || h < 1)
        return;
    char line[512];
    /* acc and acc_norm columns once some row scored a zero-shot task */
    int task = 0;
    for (int i = 0; i < st->n_res; i++)
        task |= st->res[i].task[0] != 0;
    /* the configuration column takes what the others leave; the data file only on wide panes */
    int wide = w >= 84 + (task ? 16 : 0), cw = w - (4 + 10 + 12 + 12 + 7) - (wide ? 17 : 0) - (task ? 16 : 0);
    cw = cw < 8 ? 8 : cw > 40 ? 40 : cw;
    char acc_head[32] = "";
    if (task)
        snprintf(acc_head, sizeof acc_head, "%8s%8s", "acc", "acc_norm");
    if (wide)
        snprintf(line, sizeof line, " %-3s%-*s%10s%s%12s%12s  %-15s%7s", "#", cw, "configuration", "ppl", acc_head,
                 "block lin.", "all params", "data", "time");
    else
        snprintf(line, sizeof line, " %-3s%-*s%10s%s%12s%12s%7s", "#", cw, "configuration", "ppl", acc_head,
                 "block lin.", "all params", "time");
    tui_put(r.y + 1, x, w, line, tui_attr(a, PAIR_TITLE));
    int rows = h - 1;
    if (st->n_res == 0) {
        if (rows > 0)
            tui_put(r.y + 2, x, w, " e or F6 evaluates the configuration in the background", tui_attr(a, PAIR_DIM));
        return;
    }
    if (a->res_row >= st->n_res)
        a->res_row = st->n_res - 1;
    if (!focused) /* the newest rows stay in view */
        a->res_top = st->n_res > rows ? st->n_res - rows : 0;
    if (a->res_row < a->res_top)
        a->res_top = a->res_row;
    if (a->res_row >= a->res_top + rows)
        a->res_top = a->res_row - rows + 1;
    for (int j = 0; j < rows && a->res_top + j < st->n_res; j++) {
        int i = a->res_top + j;
        const tui_result *rs = &st->res[i];
        char b[32], t[32];
        tui_human(rs->block_after, b, sizeof b);
        tui_human(rs->total_after, t, sizeof t);
        char bl[48], tl[48];
        snprintf(bl, sizeof bl, "%s %3.0f%%", b, rs->block_before ? 100.0 * rs->block_after / rs->block_before : 0);
        snprintf(tl, sizeof tl, "%s %3.0f%%", t, rs->total_before ? 100.0 * rs->total_after / rs->total_before : 0);
        char ppl[32], acc[40] = "";
        if (isnan(rs->ppl))
            snprintf(ppl, sizeof ppl, "%10s", "-");
        else
            snprintf(ppl, sizeof ppl, "%10.4f", rs->ppl);
        if (task && rs->task[0])
            snprintf(acc, sizeof acc, "%8.4f%8.4f", rs->acc, rs->acc_norm);
        else if (task)
            snprintf(acc, sizeof acc, "%8s%8s", "-", "-");
        if (wide)
            snprintf(line, sizeof line, " %-3d%-*.*s%s%s%12s%12s  %-15.15s%6.1fs", i + 1, cw, cw, rs->label, ppl, acc,
                     bl, tl, rs->data, rs->wall_s);
        else
            snprintf(line, sizeof line, " %-3d%-*.*s%s%s%12s%12s%6.1fs", i + 1, cw, cw, rs->label, ppl, acc, bl, tl,
                     rs->wall_s);
        int at = focused && i == a->res_row ? tui_attr(a, PAIR_SEL) : 0;
        tui_fill(r.y + 2 + j, x, w, at);
        tui_put(r.y + 2 + j, x, w, line, at);
    }
}

int tui_results_key(tui_app *a, int ch)
{
    switch (ch) {
    case KEY_UP:
    case 'k': a->res_row = a->res_row > 0 ? a->res_row - 1 : 0; return 1;
    case KEY_DOWN:
    case 'j': a->res_row = a->res_row < a->st.n_res - 1 ? a->res_row + 1 : a->res_row; return 1;
    case KEY_HOME: a->res_row = 0; return 1;
    case KEY_END: a->res_row = a->st.n_res - 1; return 1;
    default: return 0;
    }
}

void tui_results_click(tui_app *a, int x, int y)
{
    (void)x;
    int i = a->res_top + (y - a->lay.pane[TUI_P_RESULTS].y - 2);
    if (i >= 0 && i < a->st.n_res)
        a->res_row = i;
}

void tui_log_draw(tui_app *a, tui_rect r, int focused)
{
    char title[64];
    snprintf(title, sizeof title, "Log%s", a->log_scroll ? " (scrolled: End)" : "");
    tui_box(a, r, title, focused);
    int x = r.x + 1, w = r.w - 2, h = r.h - 2;
    if (w < 10 || h < 1)
        return;
    int max_scroll = a->log_n > h ? a->log_n - h : 0;
    if (a->log_scroll > max_scroll)
        a->log_scroll = max_scroll;
    int first = a->log_n - h - a->log_scroll;
    first = first < 0 ? 0 : first;
    for (int j = 0; j < h && first + j < a->log_n; j++) {
        const char *s = a->log[first + j];
        int err = s[0] == '!';
        tui_put(r.y + 1 + j, x, w, s + 1, err ? tui_attr(a, PAIR_ERROR) : 0);
    }
}

int tui_log_key(tui_app *a, int ch)
{
    int page = a->lay.pane[TUI_P_LOG].h - 2;
    switch (ch) {
    case KEY_UP:
    case 'k': a->log_scroll++; return 1;
    case KEY_DOWN:
    case 'j': a->log_scroll = a->log_scroll > 0 ? a->log_scroll - 1 : 0; return 1;
    case KEY_PPAGE: a->log_scroll += page; return 1;
    case KEY_NPAGE: a->log_scroll = a->log_scroll > page ? a->log_scroll - page : 0; return 1;
    case KEY_HOME: a->log_scroll = a->log_n; return 1;
    case KEY_END: a->log_scroll = 0; return 1;
    default: return 0;
    }
}

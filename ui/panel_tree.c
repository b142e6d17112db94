/* The model tree pane: layers, then their matrices, each with shape, state under the configuration
 * (dense / factorized / masked / sliced), rank or sparsity, parameters kept and a bar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

static tui_tree_row *rows_now(tui_app *a, int *n)
{
    *n = tui_tree_rows(&a->st, NULL, 0);
    tui_tree_row *rows = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *rows);
    if (rows)
        tui_tree_rows(&a->st, rows, *n);
    else
        *n = 0;
    return rows;
}

/* Short state words when the pane is narrow. */
static const char *short_word(const char *w)
{
    if (!strcmp(w, "factorized"))
        return "fact";
    if (!strcmp(w, "masked"))
        return "mask";
    if (!strcmp(w, "sliced"))
        return "slice";
    return w;
}

void tui_tree_follow(tui_app *a)
{
    tui_state *st = &a->st;
    if (st->sel < 0 || st->sel >= st->n)
        return;
    st->collapsed[st->layer[st->sel]] = 0;
    int n;
    tui_tree_row *rows = rows_now(a, &n);
    for (int i = 0; i < n; i++)
        if (rows[i].mat == st->sel)
            a->tree_row = i;
    free(rows);
}

/* After a move: the selected matrix follows the row (a layer row selects its first matrix). */
static void select_row(tui_app *a, const tui_tree_row *rows, int n)
{
    if (n == 0)
        return;
    a->tree_row = a->tree_row < 0 ? 0 : a->tree_row >= n ? n - 1 : a->tree_row;
    const tui_tree_row *r = &rows[a->tree_row];
    if (r->mat >= 0)
        a->st.sel = r->mat;
    else
        for (int i = 0; i < a->st.n; i++)
            if (a->st.layer[i] == r->layer) {
                a->st.sel = i;
                break;
            }
}

void tui_tree_draw(tui_app *a, tui_rect r, int focused)
{
    tui_state *st = &a->st;
    char title[128];
    snprintf(title, sizeof title, "Model %d layers, %d matrices", st->model->cfg.n_layers, st->n);
    tui_box(a, r, title, focused);
    int x = r.x + 1, w = r.w - 2, h = r.h - 2;
    if (w < 10 || h < 1)
        return;
    int n;
    tui_tree_row *rows = rows_now(a, &n);
    if (!rows)
        return;
    if (a->tree_row >= n)
        a->tree_row = n - 1;
    if (a->tree_row < a->tree_top)
        a->tree_top = a->tree_row;
    if (a->tree_row >= a->tree_top + h)
        a->tree_top = a->tree_row - h + 1;
    if (a->tree_top < 0)
        a->tree_top = 0;
    int wide = w >= 50;
    for (int j = 0; j < h && a->tree_top + j < n; j++) {
        int ri = a->tree_top + j, y = r.y + 1 + j;
        const tui_tree_row *row = &rows[ri];
        int sel = ri == a->tree_row;
        int base = sel ? (focused ? tui_attr(a, PAIR_SEL) : (int)(A_BOLD | A_UNDERLINE)) : 0;
        tui_fill(y, x, w, base);
        char line[256], kept[32], dense[32];
        size_t before = 0, after = 0;
        if (row->mat < 0) {
            for (int i = 0; i < st->n; i++)
                if (st->layer[i] == row->layer) {
                    before += st->dec[i].before;
                    after += st->dec[i].after;
                }
            tui_human(after, kept, sizeof kept);
            tui_human(before, dense, sizeof dense);
            snprintf(line, sizeof line, "%s layer %d  %s of %s",
                     a->utf8 ? (st->collapsed[row->layer] ? "▸" : "▾") : (st->collapsed[row->layer] ? "+" : "-"),
                     row->layer, kept, dense);
            tui_put(y, x, w, line, base | A_BOLD);
        } else {
            int i = row->mat;
            const pare_linear *l = st->lin[i];
            char detail[32], shape[24], state[40];
            const char *word = tui_state_word(st, i, detail, sizeof detail);
            const tui_config *c = &st->cfg;
            if (wide && c->kind == TUI_CFG_METHOD && c->method->policy == PARE_POLICY_AUTO && st->dec_ok) {
                size_t o = strlen(detail); /* auto's choice beside svdllm's uniform rank at the same ratio */
                if (st->dec[i].uniform_rank > 0)
                    snprintf(detail + o, sizeof detail - o, " u%d", st->dec[i].uniform_rank);
                else
                    snprintf(detail + o, sizeof detail - o, " u-");
            }
            snprintf(shape, sizeof shape, "%dx%d", l->out, l->in);
            snprintf(state, sizeof state, "%s%s%s", wide ? word : short_word(word), detail[0] ? " " : "", detail);
            before = st->dec[i].before;
            after = st->dec[i].after;
            tui_human(after, kept, sizeof kept);
            snprintf(line, sizeof line, " %-5s%-9s%-*s%6s ", tui_short_name(st, i), shape, wide ? 22 : 11, state, kept);
            int used = tui_put(y, x, w, line, base);
            int attr = base;
            if (!sel && strcmp(word, "dense"))
                attr = tui_attr(a, PAIR_GOOD);
            if (!sel)
                tui_put(y, x + 1 + 5 + 9, w - 15, state, attr); /* the state in colour */
            if (used < w)
                tui_bar(a, y, x + used, w - used, before ? (double)after / (double)before : 0,
                        sel ? base : tui_attr(a, PAIR_BAR), sel ? base : tui_attr(a, PAIR_DIM));
        }
    }
    free(rows);
}

int tui_tree_key(tui_app *a, int ch)
{
    int n;
    tui_tree_row *rows = rows_now(a, &n);
    if (!rows)
        return 0;
    int page = a->lay.pane[TUI_P_TREE].h - 3, handled = 1;
    page = page < 1 ? 1 : page;
    tui_tree_row cur = n ? rows[a->tree_row < n ? a->tree_row : n - 1] : (tui_tree_row){0, -1};
    switch (ch) {
    case KEY_UP:
    case 'k': a->tree_row--; break;
    case KEY_DOWN:
    case 'j': a->tree_row++; break;
    case KEY_PPAGE: a->tree_row -= page; break;
    case KEY_NPAGE: a->tree_row += page; break;
    case KEY_HOME: a->tree_row = 0; break;
    case KEY_END: a->tree_row = n - 1; break;
    case ' ':
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (cur.mat >= 0) {
            handled = 0; /* Enter on a matrix sets its rank (tui_rank_key) */
            break;
        }
        a->st.collapsed[cur.layer] ^= 1;
        break;
    case '+':
    case '-':
        for (int l = 0; l < a->st.model->cfg.n_layers; l++)
            a->st.collapsed[l] = ch == '-';
        free(rows);
        rows = rows_now(a, &n);
        if (ch == '-' && rows) /* stay on the layer of the selection */
            for (int i = 0; i < n; i++)
                if (rows[i].layer == cur.layer)
                    a->tree_row = i;
        if (ch == '+')
            tui_tree_follow(a);
        free(rows);
        return 1;
    default: handled = 0;
    }
    if (handled) {
        free(rows);
        rows = rows_now(a, &n);
        if (rows)
            select_row(a, rows, n);
    }
    free(rows);
    return handled;
}

void tui_tree_click(tui_app *a, int x, int y)
{
    (void)x;
    tui_rect r = a->lay.pane[TUI_P_TREE];
    int n;
    tui_tree_row *rows = rows_now(a, &n);
    if (!rows)
        return;
    int ri = a->tree_top + (y - r.y - 1);
    if (y > r.y && y < r.y + r.h - 1 && ri >= 0 && ri < n) {
        if (ri == a->tree_row && rows[ri].mat < 0) /* a second click on a layer folds it */
            a->st.collapsed[rows[ri].layer] ^= 1;
        a->tree_row = ri;
        free(rows);
        rows = rows_now(a, &n);
        if (rows)
            select_row(a, rows, n);
    }
    free(rows);
}

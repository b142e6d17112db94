/* The line editor on the status line: search (/), budget fields (typed live into the totals) and setup
 * values; Enter commits, Esc restores what was there. UTF-8 aware: the cursor moves by code point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

void tui_start_edit(tui_app *a, tui_edit_target t, int field, const char *prompt, const char *text)
{
    a->edit = t;
    a->edit_field = field;
    snprintf(a->edit_prompt, sizeof a->edit_prompt, "%s", prompt);
    snprintf(a->edit_buf, sizeof a->edit_buf, "%.1000s", text);
    a->edit_pos = (int)strlen(a->edit_buf);
    if (t == ED_BUDGET) {
        tui_budget_field_text(a, field, a->edit_orig, sizeof a->edit_orig);
        tui_budget_apply_text(a, field, a->edit_buf); /* live from the first digit */
    } else
        a->edit_orig[0] = 0;
    if (t == ED_SEARCH)
        snprintf(a->edit_orig, sizeof a->edit_orig, "%d", a->st.sel);
}

static void edit_changed(tui_app *a)
{
    if (a->edit == ED_BUDGET)
        tui_budget_apply_text(a, a->edit_field, a->edit_buf);
    else if (a->edit == ED_SEARCH) {
        int j = tui_tree_find(&a->st, a->edit_buf, atoi(a->edit_orig) - 1);
        if (j >= 0) {
            a->st.sel = j;
            tui_tree_follow(a);
        }
    }
}

void tui_edit_key(tui_app *a, int ch)
{
    size_t len = strlen(a->edit_buf);
    switch (ch) {
    case 27: /* Esc: back to what it was */
        if (a->edit == ED_BUDGET)
            tui_budget_apply_text(a, a->edit_field, a->edit_orig);
        else if (a->edit == ED_SEARCH) {
            a->st.sel = atoi(a->edit_orig);
            tui_tree_follow(a);
        }
        a->edit = ED_NONE;
        return;
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (a->edit == ED_BUDGET && tui_budget_apply_text(a, a->edit_field, a->edit_buf)) {
            tui_log(a, 1, "'%s' is not a number", a->edit_buf);
            tui_budget_apply_text(a, a->edit_field, a->edit_orig);
        } else if (a->edit == ED_SETUP)
            tui_setup_apply(a, a->edit_field, a->edit_buf);
        else if (a->edit == ED_SEARCH)
            snprintf(a->search, sizeof a->search, "%.120s", a->edit_buf);
        a->edit = ED_NONE;
        return;
    case KEY_BACKSPACE:
    case 127:
    case 8:
        if (a->edit_pos > 0) {
            int start = a->edit_pos - 1;
            while (start > 0 && ((unsigned char)a->edit_buf[start] & 0xC0) == 0x80)
                start--;
            memmove(a->edit_buf + start, a->edit_buf + a->edit_pos, len - (size_t)a->edit_pos + 1);
            a->edit_pos = start;
        }
        break;
    case KEY_DC:
        if ((size_t)a->edit_pos < len)
            memmove(a->edit_buf + a->edit_pos, a->edit_buf + a->edit_pos + 1, len - (size_t)a->edit_pos);
        break;
    case KEY_LEFT: a->edit_pos -= a->edit_pos > 0; return;
    case KEY_RIGHT: a->edit_pos += (size_t)a->edit_pos < len; return;
    case KEY_HOME:
    case 1: a->edit_pos = 0; return;
    case KEY_END:
    case 5: a->edit_pos = (int)len; return;
    case 21: /* Ctrl-U */
        a->edit_buf[0] = 0;
        a->edit_pos = 0;
        break;
    default:
        if (ch >= 32 && ch < 256 && ch != 127 && len + 1 < sizeof a->edit_buf) {
            memmove(a->edit_buf + a->edit_pos + 1, a->edit_buf + a->edit_pos, len - (size_t)a->edit_pos + 1);
            a->edit_buf[a->edit_pos++] = (char)ch;
        } else
            return;
    }
    edit_changed(a);
}

void tui_edit_draw(tui_app *a, tui_rect r)
{
    char line[1024];
    snprintf(line, sizeof line, "%.60s%.900s", a->edit_prompt, a->edit_buf);
    tui_put(r.y, 0, r.w, line, A_BOLD);
    int cx = (int)strlen(a->edit_prompt);
    for (int i = 0; i < a->edit_pos; i++)
        cx += ((unsigned char)a->edit_buf[i] & 0xC0) != 0x80;
    if (cx < r.w) { /* the cursor: a reversed cell */
        char c[8] = " ";
        if ((size_t)a->edit_pos < strlen(a->edit_buf)) {
            int l = 1;
            while (((unsigned char)a->edit_buf[a->edit_pos + l] & 0xC0) == 0x80)
                l++;
            snprintf(c, sizeof c, "%.*s", l, a->edit_buf + a->edit_pos);
        }
        tui_put(r.y, cx, 1, c, A_REVERSE);
    }
}

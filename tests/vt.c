/* The VT100/xterm screen model of vt.h: cursor motion, erasing, insert/delete of characters and
 * lines, scroll regions and REP, with one UTF-8 character per cell; attributes are ignored. */
#include "vt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vt_init(vt *t, int cols, int rows)
{
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->bot = rows - 1;
    for (int y = 0; y < VT_ROWS; y++)
        for (int x = 0; x < VT_COLS; x++)
            strcpy(t->cell[y][x], " ");
}

static void vt_clear(vt *t, int y, int x0, int x1)
{
    for (int x = x0; x < x1 && x < VT_COLS; x++)
        strcpy(t->cell[y][x], " ");
}

static void vt_scroll(vt *t, int top, int bot, int n) /* n > 0: up */
{
    for (; n > 0; n--) {
        for (int y = top; y < bot; y++)
            memcpy(t->cell[y], t->cell[y + 1], sizeof t->cell[y]);
        vt_clear(t, bot, 0, t->cols);
    }
    for (; n < 0; n++) {
        for (int y = bot; y > top; y--)
            memcpy(t->cell[y], t->cell[y - 1], sizeof t->cell[y]);
        vt_clear(t, top, 0, t->cols);
    }
}

static void vt_lf(vt *t)
{
    if (t->y == t->bot)
        vt_scroll(t, t->top, t->bot, 1);
    else if (t->y < t->rows - 1)
        t->y++;
}

static void vt_put(vt *t, const char *ch)
{
    if (t->wrap) {
        t->x = 0;
        vt_lf(t);
        t->wrap = 0;
    }
    snprintf(t->cell[t->y][t->x], 8, "%s", ch);
    snprintf(t->last, sizeof t->last, "%s", ch);
    if (t->x == t->cols - 1)
        t->wrap = 1;
    else
        t->x++;
}

static int vt_arg(const vt *t, int i, int def)
{
    const char *p = t->par;
    if (*p == '?')
        p++;
    for (int k = 0; k < i; k++) {
        p = strchr(p, ';');
        if (!p)
            return def;
        p++;
    }
    int v = atoi(p);
    return *p && *p != ';' && v > 0 ? v : def;
}

static void vt_csi(vt *t, char f)
{
    int n = vt_arg(t, 0, 1);
    t->wrap = 0;
    switch (f) {
    case 'H':
    case 'f':
        t->y = vt_arg(t, 0, 1) - 1;
        t->x = vt_arg(t, 1, 1) - 1;
        break;
    case 'A': t->y -= n; break;
    case 'B': t->y += n; break;
    case 'C': t->x += n; break;
    case 'D': t->x -= n; break;
    case 'E': t->y += n, t->x = 0; break;
    case 'F': t->y -= n, t->x = 0; break;
    case 'G':
    case '`': t->x = n - 1; break;
    case 'd': t->y = n - 1; break;
    case 'J': {
        int m = vt_arg(t, 0, 0);
        if (m == 0) {
            vt_clear(t, t->y, t->x, t->cols);
            for (int y = t->y + 1; y < t->rows; y++)
                vt_clear(t, y, 0, t->cols);
        } else if (m == 1) {
            vt_clear(t, t->y, 0, t->x + 1);
            for (int y = 0; y < t->y; y++)
                vt_clear(t, y, 0, t->cols);
        } else
            for (int y = 0; y < t->rows; y++)
                vt_clear(t, y, 0, t->cols);
        break;
    }
    case 'K': {
        int m = vt_arg(t, 0, 0);
        vt_clear(t, t->y, m == 0 ? t->x : 0, m == 1 ? t->x + 1 : t->cols);
        break;
    }
    case 'X': vt_clear(t, t->y, t->x, t->x + n); break;
    case '@':
        for (int x = t->cols - 1; x >= t->x + n; x--)
            memcpy(t->cell[t->y][x], t->cell[t->y][x - n], 8);
        vt_clear(t, t->y, t->x, t->x + n);
        break;
    case 'P':
        for (int x = t->x; x < t->cols; x++)
            if (x + n < t->cols)
                memcpy(t->cell[t->y][x], t->cell[t->y][x + n], 8);
            else
                strcpy(t->cell[t->y][x], " ");
        break;
    case 'L':
        if (t->y >= t->top && t->y <= t->bot)
            vt_scroll(t, t->y, t->bot, -n);
        break;
    case 'M':
        if (t->y >= t->top && t->y <= t->bot)
            vt_scroll(t, t->y, t->bot, n);
        break;
    case 'S': vt_scroll(t, t->top, t->bot, n); break;
    case 'T': vt_scroll(t, t->top, t->bot, -n); break;
    case 'r':
        t->top = vt_arg(t, 0, 1) - 1;
        t->bot = vt_arg(t, 1, t->rows) - 1;
        t->y = t->x = 0;
        break;
    case 'b':
        for (int i = 0; i < n; i++)
            vt_put(t, t->last);
        break;
    default: break; /* m, h, l, t, n, c, q: modes and attributes */
    }
    t->y = t->y < 0 ? 0 : t->y >= t->rows ? t->rows - 1 : t->y;
    t->x = t->x < 0 ? 0 : t->x >= t->cols ? t->cols - 1 : t->x;
}

void vt_feed(vt *t, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (t->state) {
        case 1:
            t->state = 0;
            if (c == '[') {
                t->state = 2;
                t->npar = 0;
                t->par[0] = 0;
            } else if (c == ']')
                t->state = 3;
            else if (c == 'P')
                t->state = 5;
            else if (c == '(' || c == ')' || c == '*' || c == '+' || c == '#')
                t->state = 4;
            else if (c == '7')
                t->sy = t->y, t->sx = t->x;
            else if (c == '8')
                t->y = t->sy, t->x = t->sx, t->wrap = 0;
            else if (c == 'M') {
                if (t->y == t->top)
                    vt_scroll(t, t->top, t->bot, -1);
                else if (t->y > 0)
                    t->y--;
            } else if (c == 'D')
                vt_lf(t);
            else if (c == 'E')
                t->x = 0, vt_lf(t);
            else if (c == 'c')
                vt_init(t, t->cols, t->rows);
            continue;
        case 2:
            if (c >= 0x40 && c <= 0x7e) {
                t->state = 0;
                vt_csi(t, (char)c);
            } else if (t->npar < (int)sizeof t->par - 1) {
                t->par[t->npar++] = (char)c;
                t->par[t->npar] = 0;
            }
            continue;
        case 3:
        case 5:
            if (c == 7 || c == '\\')
                t->state = 0;
            continue;
        case 4: t->state = 0; continue;
        default: break;
        }
        if (t->uneed) {
            t->utf[t->ulen++] = (char)c;
            if (--t->uneed == 0) {
                t->utf[t->ulen] = 0;
                vt_put(t, t->utf);
            }
            continue;
        }
        if (c == 27)
            t->state = 1;
        else if (c == '\r')
            t->x = 0, t->wrap = 0;
        else if (c == '\n')
            vt_lf(t), t->wrap = 0;
        else if (c == '\b')
            t->x -= t->x > 0, t->wrap = 0;
        else if (c == '\t')
            t->x = (t->x / 8 + 1) * 8 < t->cols ? (t->x / 8 + 1) * 8 : t->cols - 1;
        else if (c >= 0xC0) {
            t->utf[0] = (char)c;
            t->ulen = 1;
            t->uneed = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        } else if (c >= 32 && c < 127) {
            char s[2] = {(char)c, 0};
            vt_put(t, s);
        }
    }
}

char *vt_text(const vt *t)
{
    size_t cap = (size_t)t->rows * (t->cols * 4 + 1) + 1, o = 0;
    char *s = malloc(cap);
    for (int y = 0; y < t->rows; y++) {
        for (int x = 0; x < t->cols; x++)
            for (const char *p = t->cell[y][x]; *p && o + 1 < cap; p++)
                s[o++] = *p;
        s[o++] = '\n';
    }
    s[o] = 0;
    return s;
}

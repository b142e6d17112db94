/* Drawing helpers of the workbench: colour pairs (plot colours mapped to the terminal's palette),
 * clipped UTF-8 text, frames, bars and plot grids; ASCII stand-ins when the locale is not UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

/* The nearest colour of the terminal's palette to c: the xterm 256-colour cube and grey ramp when
 * there are 256 colours, else one of the 8 ANSI colours. */
static short nearest_color(pare_rgba c)
{
    long best = -1;
    short pick = COLOR_WHITE;
    if (COLORS >= 256) {
        static const int lv[6] = {0, 95, 135, 175, 215, 255};
        for (int i = 16; i < 256; i++) {
            int r, g, b;
            if (i < 232) {
                r = lv[(i - 16) / 36], g = lv[(i - 16) / 6 % 6], b = lv[(i - 16) % 6];
            } else
                r = g = b = 8 + 10 * (i - 232);
            long d = (long)(r - c.r) * (r - c.r) + (long)(g - c.g) * (g - c.g) + (long)(b - c.b) * (b - c.b);
            if (best < 0 || d < best)
                best = d, pick = (short)i;
        }
        return pick;
    }
    static const struct {
        short id;
        int r, g, b;
    } ansi[] = {{COLOR_RED, 205, 0, 0},      {COLOR_GREEN, 0, 205, 0},     {COLOR_YELLOW, 205, 205, 0},
                {COLOR_BLUE, 0, 0, 238},     {COLOR_MAGENTA, 205, 0, 205}, {COLOR_CYAN, 0, 205, 205},
                {COLOR_WHITE, 229, 229, 229}};
    for (size_t i = 0; i < sizeof ansi / sizeof ansi[0]; i++) {
        long d = (long)(ansi[i].r - c.r) * (ansi[i].r - c.r) + (long)(ansi[i].g - c.g) * (ansi[i].g - c.g) +
                 (long)(ansi[i].b - c.b) * (ansi[i].b - c.b);
        if (best < 0 || d < best)
            best = d, pick = ansi[i].id;
    }
    return pick;
}

void tui_colors_init(tui_app *a)
{
    const char *nc = getenv("NO_COLOR");
    a->color = has_colors() && !(nc && *nc); /* https://no-color.org: any non-empty value */
    if (!a->color)
        return;
    start_color();
    use_default_colors();
    init_pair(PAIR_TITLE, COLOR_CYAN, -1);
    init_pair(PAIR_FOCUS, COLOR_GREEN, -1);
    init_pair(PAIR_SEL, COLOR_BLACK, COLOR_CYAN);
    init_pair(PAIR_FKEY, -1, -1);
    init_pair(PAIR_FLABEL, COLOR_BLACK, COLOR_CYAN);
    init_pair(PAIR_ERROR, COLOR_RED, -1);
    init_pair(PAIR_GOOD, COLOR_GREEN, -1);
    init_pair(PAIR_DIM, COLORS >= 16 ? 8 : COLOR_BLUE, -1);
    init_pair(PAIR_BAR, COLOR_CYAN, -1);
    init_pair(PAIR_HEADER, COLOR_BLACK, COLOR_GREEN);
    for (int i = 1; i < PARE_TERM_COLORS && PAIR_PLOT0 + i < COLOR_PAIRS; i++)
        init_pair((short)(PAIR_PLOT0 + i), nearest_color(pare_term_color_rgba(i)), -1);
}

int tui_attr(const tui_app *a, int pair)
{
    if (a->color)
        return (int)COLOR_PAIR(pair) | (pair == PAIR_TITLE || pair == PAIR_ERROR ? A_BOLD : 0);
    switch (pair) { /* monochrome: emphasis by attributes only */
    case PAIR_SEL:
    case PAIR_FLABEL:
    case PAIR_HEADER: return A_REVERSE;
    case PAIR_TITLE:
    case PAIR_FOCUS:
    case PAIR_ERROR: return A_BOLD;
    case PAIR_DIM: return A_DIM;
    default: return 0;
    }
}

int tui_put(int y, int x, int w, const char *s, int attr)
{
    if (w <= 0 || !s)
        return 0;
    char buf[2048];
    size_t o = 0;
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && cols < w && o + 5 < sizeof buf; cols++) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
        for (int i = 0; i < len && p[i]; i++)
            buf[o++] = (char)(*p < 0x80 || len > 1 ? p[i] : '?');
        p += len;
        while (len > 1 && *p && (*p & 0xC0) == 0x80) /* a malformed sequence: skip its tail */
            p++;
    }
    buf[o] = 0;
    attrset(attr);
    mvaddstr(y, x, buf);
    attrset(A_NORMAL);
    return cols;
}

void tui_fill(int y, int x, int w, int attr)
{
    attrset(attr);
    for (int i = 0; i < w; i++)
        mvaddch(y, x + i, ' ');
    attrset(A_NORMAL);
}

void tui_box(const tui_app *a, tui_rect r, const char *title, int focused)
{
    if (r.w < 2 || r.h < 2)
        return;
    const char *h = a->utf8 ? "─" : "-", *v = a->utf8 ? "│" : "|";
    const char *c[4] = {"+", "+", "+", "+"};
    if (a->utf8) {
        c[0] = focused ? "┏" : "┌", c[1] = focused ? "┓" : "┐", c[2] = focused ? "┗" : "└", c[3] = focused ? "┛" : "┘";
        h = focused ? "━" : "─", v = focused ? "┃" : "│";
    }
    int at = focused ? tui_attr(a, PAIR_FOCUS) : tui_attr(a, PAIR_DIM);
    attrset(at);
    mvaddstr(r.y, r.x, c[0]);
    mvaddstr(r.y, r.x + r.w - 1, c[1]);
    mvaddstr(r.y + r.h - 1, r.x, c[2]);
    mvaddstr(r.y + r.h - 1, r.x + r.w - 1, c[3]);
    for (int i = 1; i < r.w - 1; i++) {
        mvaddstr(r.y, r.x + i, h);
        mvaddstr(r.y + r.h - 1, r.x + i, h);
    }
    for (int j = 1; j < r.h - 1; j++) {
        mvaddstr(r.y + j, r.x, v);
        mvaddstr(r.y + j, r.x + r.w - 1, v);
    }
    attrset(A_NORMAL);
    if (title) {
        char t[256];
        snprintf(t, sizeof t, " %s ", title);
        tui_put(r.y, r.x + 2, r.w - 4, t, tui_attr(a, PAIR_TITLE) | (focused ? A_REVERSE : 0));
    }
}

void tui_bar(const tui_app *a, int y, int x, int w, double frac, int attr_fill, int attr_empty)
{
    if (w <= 0)
        return;
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    int eighths = (int)(frac * w * 8 + 0.5);
    static const char *const part[8] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    for (int i = 0; i < w; i++) {
        int e = eighths - 8 * i;
        if (e >= 8) {
            attrset(attr_fill);
            mvaddstr(y, x + i, a->utf8 ? "█" : "#");
        } else if (e > 0 && a->utf8) {
            attrset(attr_fill);
            mvaddstr(y, x + i, part[e]);
        } else {
            attrset(attr_empty);
            mvaddstr(y, x + i, a->utf8 ? "░" : (e > 3 ? "#" : "."));
        }
    }
    attrset(A_NORMAL);
}

void tui_blit_grid(const tui_app *a, const pare_term_grid *g, int y, int x)
{
    for (int r = 0; r < g->rows; r++)
        for (int c = 0; c < g->cols; c++) {
            const pare_term_cell *cell = &g->cells[r * g->cols + c];
            if (!cell->text[0] || (cell->text[0] == ' ' && !cell->text[1]))
                continue;
            attrset(cell->color && a->color ? (int)COLOR_PAIR(PAIR_PLOT0 + cell->color) : A_NORMAL);
            mvaddstr(y + r, x + c, cell->text);
        }
    attrset(A_NORMAL);
}

void tui_human(size_t n, char *buf, size_t cap)
{
    if (n >= 1000000000)
        snprintf(buf, cap, "%.2fG", n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, cap, "%.2fM", n / 1e6);
    else if (n >= 10000)
        snprintf(buf, cap, "%.1fk", n / 1e3);
    else
        snprintf(buf, cap, "%zu", n);
}

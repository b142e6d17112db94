/* A screen model for the TUI tests: enough of a VT100/xterm to follow what ncurses writes for
 * xterm-256color into a pseudo-terminal, so that tests can read the screen as text. */
#ifndef PARE_TEST_VT_H
#define PARE_TEST_VT_H

#include <stddef.h>

#define VT_ROWS 60
#define VT_COLS 200

/* Cursor addressing and motion, erasing, insert/delete of characters and lines, scroll regions, REP;
 * attributes ignored. Each cell holds one UTF-8 character; the fields after cell are the parser's. */
typedef struct {
    int rows, cols, y, x, top, bot, sy, sx, wrap;
    char cell[VT_ROWS][VT_COLS][8];
    char last[8];
    int state; /* 0 text, 1 ESC, 2 CSI, 3 OSC, 4 skip one, 5 DCS */
    char par[64];
    int npar;
    char utf[8];
    int ulen, uneed;
} vt;

/* An empty screen of cols x rows (at most VT_COLS x VT_ROWS), cursor at the top left. */
void vt_init(vt *t, int cols, int rows);
/* Interprets n bytes of terminal output (they may end inside an escape sequence or a UTF-8
 * character: the next call continues it). */
void vt_feed(vt *t, const char *buf, size_t n);
/* The screen as text, one line per row (malloc'd; the caller frees). */
char *vt_text(const vt *t);

#endif

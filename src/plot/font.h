/* pare's built-in bitmap font: one 5x9 glyph for every printable ASCII character, so plots need no
 * font files at run time. */
#ifndef PARE_FONT_H
#define PARE_FONT_H

#include <stdint.h>

/* A glyph is 9 rows of 5 pixels; row 0 is the top of capitals, row 6 the baseline row, rows 7-8 hold
 * descenders. Bit 4 (0x10) of a row is the leftmost pixel. */
#define PARE_FONT_WIDTH 5
#define PARE_FONT_HEIGHT 9
/* Horizontal advance per character (glyph plus one blank column) and the line pitch, in font pixels. */
#define PARE_FONT_ADVANCE 6
#define PARE_FONT_LINE 11

/* The rows of character c; characters outside 32..126 (including UTF-8 bytes) draw as '?'. */
const uint8_t *pare_font_glyph(unsigned char c);

#endif

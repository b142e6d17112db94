/* The scripted, headless side of `pare tui` (--keys, --dump-screen, --size): key names to curses key
 * codes, and the screen curses drew (stdscr) back as UTF-8 text. The replay loop is in tui.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "tui_internal.h"

static const struct {
    const char *name;
    int key;
} NAMES[] = {
    {"Left", KEY_LEFT},
    {"Right", KEY_RIGHT},
    {"Up", KEY_UP},
    {"Down", KEY_DOWN},
    {"S-Left", KEY_SLEFT},
    {"S-Right", KEY_SRIGHT},
    {"S-Up", KEY_SR},
    {"S-Down", KEY_SF},
    {"Home", KEY_HOME},
    {"End", KEY_END},
    {"PgUp", KEY_PPAGE},
    {"PgDn", KEY_NPAGE},
    {"PageUp", KEY_PPAGE},
    {"PageDown", KEY_NPAGE},
    {"Tab", '\t'},
    {"S-Tab", KEY_BTAB},
    {"BTab", KEY_BTAB},
    {"Enter", '\r'},
    {"Return", '\r'},
    {"Esc", 27},
    {"Escape", 27},
    {"Space", ' '},
    {"Backspace", KEY_BACKSPACE},
    {"BS", KEY_BACKSPACE},
    {"Delete", KEY_DC},
    {"Del", KEY_DC},
    {"Insert", KEY_IC},
};

/* One token (len bytes at s) to a key code, or -1. */
static int key_code(const char *s, size_t len)
{
    if (len == 1 && (unsigned char)s[0] > 32 && (unsigned char)s[0] < 127)
        return (unsigned char)s[0]; /* j k e s ? < > + - / ... as typed */
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strlen(NAMES[i].name) == len && !strncasecmp(NAMES[i].name, s, len))
            return NAMES[i].key;
    if ((s[0] == 'F' || s[0] == 'f') && len >= 2 && len <= 3) { /* F1 .. F12 */
        int n = 0;
        for (size_t i = 1; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            n = 10 * n + (s[i] - '0');
        }
        return n >= 1 && n <= 12 ? KEY_F(n) : -1;
    }
    if (len == 3 && (s[0] == 'C' || s[0] == 'c') && s[1] == '-') { /* C-l: Ctrl-L */
        char c = s[2];
        if (c >= 'a' && c <= 'z')
            return c - 'a' + 1;
        if (c >= 'A' && c <= 'Z')
            return c - 'A' + 1;
    }
    return -1;
}

int tui_parse_keys(const char *spec, int **keys, int *n, char *msg, size_t cap)
{
    *keys = NULL;
    *n = 0;
    size_t total = strlen(spec);
    int *k = malloc((total + 1) * sizeof *k); /* never more keys than bytes */
    if (!k) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    int count = 0;
    const char *p = spec;
    while (*p) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',') {
            p++;
            continue;
        }
        if (*p == '\'' && p[1]) { /* 'literal text': every byte typed as it stands */
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                snprintf(msg, cap, "unterminated literal text %.60s (write 'TEXT')", p);
                free(k);
                return -1;
            }
            for (const char *c = p + 1; c < end; c++)
                k[count++] = (unsigned char)*c;
            p = end + 1;
            continue;
        }
        size_t len = strcspn(p, " \t\n,");
        int code = key_code(p, len);
        if (code < 0) {
            snprintf(msg, cap,
                     "unknown key '%.*s' (names: a character such as j or ?, Left Right Up Down S-Left S-Right Home "
                     "End "
                     "PgUp PgDn Tab S-Tab Enter Esc Space Backspace Delete F1..F12 C-x, or 'literal text')",
                     (int)(len < 60 ? len : 60), p);
            free(k);
            return -1;
        }
        k[count++] = code;
        p += len;
    }
    *keys = k;
    *n = count;
    return 0;
}

int tui_parse_size(const char *s, int *cols, int *rows)
{
    char *end;
    long c = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return -1;
    const char *h = end + 1;
    long r = strtol(h, &end, 10);
    if (end == h || *end || c < 1 || r < 1 || c > 1000 || r > 1000)
        return -1;
    *cols = (int)c;
    *rows = (int)r;
    return 0;
}

/* Appends code point u as UTF-8 (utf8proc's encoder; out of range becomes U+FFFD). */
static size_t put_utf8(char *o, unsigned long u)
{
    return (size_t)utf8proc_encode_char(u <= 0x10FFFF ? (utf8proc_int32_t)u : 0xFFFD, (utf8proc_uint8_t *)o);
}

char *tui_screen_text(void)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    /* a cell holds a spacing character and up to CCHARW_MAX - 1 combining ones, 4 bytes each */
    size_t cap = (size_t)rows * ((size_t)cols * 4 * CCHARW_MAX + 1) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    for (int y = 0; y < rows; y++) {
        size_t keep = o; /* keep: the end of the line without trailing blanks */
        for (int x = 0; x < cols; x++) {
            cchar_t cc;
            wchar_t wch[CCHARW_MAX + 1] = {0};
            attr_t attr;
            short pair;
            if (mvwin_wch(stdscr, y, x, &cc) == ERR || getcchar(&cc, wch, &attr, &pair, NULL) == ERR || !wch[0]) {
                out[o++] = ' ';
                continue;
            }
            for (int i = 0; i < CCHARW_MAX && wch[i]; i++)
                o += put_utf8(out + o, (unsigned long)wch[i]);
            if (wch[0] != L' ' || wch[1])
                keep = o;
        }
        o = keep;
        out[o++] = '\n';
    }
    out[o] = 0;
    return out;
}

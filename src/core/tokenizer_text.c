/* UTF-8 scanning and the Unicode classes the pre-tokenizers use, and strings from a file shown
 * safely in error messages: shared by the tokenizer files. */
#include "tokenizer_internal.h"

#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

/* Scans one character. Valid: returns its length and sets *valid. Invalid: returns the length of
 * the maximal ill-formed subpart (what Rust's from_utf8_lossy replaces with one U+FFFD). */
size_t utf8_scan(const unsigned char *s, size_t n, int *valid)
{
    unsigned char b = s[0];
    *valid = 1;
    if (b < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
    } else {
        *valid = 0;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *valid = 0;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* Input text is treated as a sequence of characters where a byte that does not start a valid
 * UTF-8 sequence counts as a character of its own (code point -1): the reference only ever sees
 * valid strings, and this keeps arbitrary bytes lossless. */
int32_t next_char(const unsigned char *s, size_t n, size_t *clen)
{
    int valid;
    size_t len = utf8_scan(s, n, &valid);
    if (!valid) {
        *clen = 1;
        return -1;
    }
    *clen = len;
    switch (len) {
    case 1: return s[0];
    case 2: return (int32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3: return (int32_t)(s[0] & 0x0F) << 12 | (int32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (int32_t)(s[0] & 0x07) << 18 | (int32_t)(s[1] & 0x3F) << 12 | (int32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    }
}

size_t encode_utf8(int32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int cp_is_letter(int32_t cp)
{
    if (cp < 0x80)
        return cp >= 0 && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO;
}

int cp_is_number(int32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Oniguruma's Unicode \s and Rust's char::is_whitespace: the White_Space property. */
int cp_is_space(int32_t cp)
{
    if (cp < 0)
        return 0;
    if (cp < 0x80)
        return cp == ' ' || (cp >= 9 && cp <= 13);
    if (cp == 0x85)
        return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* Regex \w as used for added tokens' single_word boundaries. */
int cp_is_word(int32_t cp)
{
    if (cp < 0)
        return 0;
    if (cp == '_' || cp_is_letter(cp) || cp_is_number(cp) || cp == 0x200C || cp == 0x200D)
        return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME ||
           c == UTF8PROC_CATEGORY_PC;
}

/* Code point and length of the last character of s[0..n); a stray byte counts as one character. */
int32_t last_char(const unsigned char *s, size_t n, size_t *clen)
{
    size_t start = n - 1;
    while (start > 0 && n - start < 4 && (s[start] & 0xC0) == 0x80)
        start--;
    size_t len;
    int32_t cp = next_char(s + start, n - start, &len);
    if (start + len == n) {
        *clen = len;
        return cp;
    }
    *clen = 1;
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * Showing strings from a file in error messages
 * ---------------------------------------------------------------------------------------------- */

/* The string with backslashes, control characters and line separators escaped (\n, \xNN, \uXXXX)
 * and invalid UTF-8 bytes as \xNN, cut after about SHOW_MAX bytes, so that a message stays one
 * line. Use it within the call that prints it: show(s, n).s lives until the end of that statement. */
shown show(const char *str, size_t n)
{
    shown out;
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0, i = 0;
    while (i < n) {
        if (i >= SHOW_MAX) {
            memcpy(out.s + o, "...", 3);
            o += 3;
            break;
        }
        size_t clen;
        int32_t cp = next_char(s + i, n - i, &clen);
        const char *esc = cp == '\\' ? "\\\\" : cp == '\n' ? "\\n" : cp == '\r' ? "\\r" : cp == '\t' ? "\\t" : NULL;
        if (esc) {
            memcpy(out.s + o, esc, 2);
            o += 2;
        } else if (cp < 0x20 || cp == 0x7F) { /* an invalid byte reads as -1 */
            snprintf(out.s + o, sizeof out.s - o, "\\x%02X", s[i]);
            o += 4;
        } else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            snprintf(out.s + o, sizeof out.s - o, "\\u%04X", (unsigned)cp);
            o += 6;
        } else {
            memcpy(out.s + o, s + i, clen);
            o += clen;
        }
        i += clen;
    }
    out.s[o] = '\0';
    return out;
}

shown show_z(const char *s) { return show(s, strlen(s)); }

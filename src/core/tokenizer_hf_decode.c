/* Decoding with a Hugging Face tokenizer: a list of token strings passed through the decoder steps
 * (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip). */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    bytebuf bytes;
    size_t *off, *len;
    size_t n, cap;
} strlist;

static void strlist_free(strlist *l)
{
    free(l->bytes.data);
    free(l->off);
    free(l->len);
}

/* Starts a new string at the end of the byte buffer. */
static int strlist_begin(strlist *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap;
        void *p = grow_array(l->off, &cap, l->n + 1, sizeof(size_t));
        if (!p)
            return 0;
        l->off = p;
        cap = l->cap;
        if (!(p = grow_array(l->len, &cap, l->n + 1, sizeof(size_t))))
            return 0;
        l->len = p;
        l->cap = cap;
    }
    l->off[l->n] = l->bytes.len;
    l->len[l->n] = 0;
    l->n++;
    return 1;
}

static int strlist_add(strlist *l, const void *s, size_t n)
{
    if (!bb_append(&l->bytes, s, n))
        return 0;
    l->len[l->n - 1] += n;
    return 1;
}

static const char replacement_char[] = "\xEF\xBF\xBD";

static int append_lossy(strlist *l, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int valid;
        size_t k = utf8_scan(s + i, n - i, &valid);
        if (!strlist_add(l, valid ? (const char *)s + i : replacement_char, valid ? k : 3))
            return 0;
        i += k;
    }
    return 1;
}

static int utf8_all_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int valid;
        i += utf8_scan(s + i, n - i, &valid);
        if (!valid)
            return 0;
    }
    return 1;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "<0xXX>" pieces; returns the byte or -1. */
int byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int flush_fallback_bytes(strlist *out, bytebuf *pending)
{
    if (!pending->len)
        return 1;
    int ok = 1;
    if (utf8_all_valid((const unsigned char *)pending->data, pending->len)) {
        ok = strlist_begin(out) && strlist_add(out, pending->data, pending->len);
    } else {
        /* The reference emits one U+FFFD per byte of an invalid run. */
        for (size_t i = 0; ok && i < pending->len; i++)
            ok = strlist_begin(out) && strlist_add(out, replacement_char, 3);
    }
    pending->len = 0;
    return ok;
}

static int decode_step(const pare_tokenizer *t, const dec_step *d, const strlist *in, strlist *out)
{
    out->n = 0;
    out->bytes.len = 0;
    if (d->kind == DEC_FUSE || d->kind == DEC_BYTELEVEL) {
        if (!strlist_begin(out))
            return 0;
        if (d->kind == DEC_FUSE)
            return strlist_add(out, in->bytes.data, in->bytes.len);
        bytebuf raw = {0};
        int ok = 1;
        for (size_t i = 0; ok && i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)in->bytes.data + in->off[i];
            size_t n = in->len[i], start = raw.len, clen;
            for (size_t k = 0; ok && k < n; k += clen) {
                int32_t cp = next_char(s + k, n - k, &clen);
                if (cp < 0 || cp >= BYTE_LEVEL_CHARS || t->char_byte[cp] < 0) {
                    raw.len = start; /* a token with any unmapped character passes through as is */
                    ok = bb_append(&raw, s, n);
                    break;
                }
                unsigned char b = (unsigned char)t->char_byte[cp];
                ok = bb_append(&raw, &b, 1);
            }
        }
        if (ok)
            ok = append_lossy(out, (const unsigned char *)raw.data, raw.len);
        free(raw.data);
        return ok;
    }
    if (d->kind == DEC_BYTEFALLBACK) {
        bytebuf pending = {0};
        int ok = 1;
        for (size_t i = 0; ok && i < in->n; i++) {
            const char *s = in->bytes.data + in->off[i];
            int b = byte_piece(s, in->len[i]);
            if (b >= 0) {
                unsigned char byte = (unsigned char)b;
                ok = bb_append(&pending, &byte, 1);
                continue;
            }
            ok = flush_fallback_bytes(out, &pending) && strlist_begin(out) && strlist_add(out, s, in->len[i]);
        }
        ok = ok && flush_fallback_bytes(out, &pending);
        free(pending.data);
        return ok;
    }
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->bytes.data + in->off[i];
        size_t n = in->len[i];
        if (!strlist_begin(out))
            return 0;
        if (d->kind == DEC_STRIP) {
            size_t start = 0, stop = n, cl = d->content_len;
            for (size_t k = 0; k < d->strip_left && start + cl <= stop && !memcmp(s + start, d->content, cl); k++)
                start += cl;
            /* Counted in characters from the end; a character other than content ends the strip. */
            for (size_t k = 0; k < d->strip_right && stop >= start + cl && !memcmp(s + stop - cl, d->content, cl); k++)
                stop -= cl;
            if (!strlist_add(out, s + start, stop - start))
                return 0;
            continue;
        }
        const char *pat = d->kind == DEC_METASPACE ? d->content : d->pattern;
        size_t pl = d->kind == DEC_METASPACE ? d->content_len : d->pattern_len;
        const char *rep = d->kind == DEC_METASPACE ? " " : d->content;
        size_t rl = d->kind == DEC_METASPACE ? (i == 0 && d->scheme != SCHEME_NEVER ? 0 : 1) : d->content_len;
        for (size_t k = 0; k < n;) {
            if (n - k >= pl && memcmp(s + k, pat, pl) == 0) {
                if (!strlist_add(out, rep, rl))
                    return 0;
                k += pl;
            } else {
                if (!strlist_add(out, s + k, 1))
                    return 0;
                k++;
            }
        }
    }
    return 1;
}

pare_status decode_hf(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, bytebuf *result,
                      pare_error *err)
{
    strlist a = {0}, b = {0};
    pare_status st = PARE_OK;
    for (size_t i = 0; i < n_ids && !st; i++) {
        int32_t id = ids[i];
        if (skip_special && t->id_added[id] >= 0 && t->added[t->id_added[id]].special)
            continue;
        size_t len;
        const char *p = piece_of(t, id, &len); /* pare_tokenizer_decode checked that every id has one */
        if (!strlist_begin(&a) || !strlist_add(&a, p, len))
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory while decoding", t->source);
    }
    for (size_t k = 0; !st && k < t->n_decs; k++) {
        if (!decode_step(t, &t->decs[k], &a, &b))
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory while decoding", t->source);
        strlist swap = a;
        a = b;
        b = swap;
    }
    for (size_t i = 0; !st && i < a.n; i++) {
        /* Without a decoder the reference joins tokens with spaces. */
        if ((!t->has_decoder && i > 0 && !bb_append(result, " ", 1)) ||
            !bb_append(result, a.bytes.data + a.off[i], a.len[i]))
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory while decoding", t->source);
    }
    strlist_free(&a);
    strlist_free(&b);
    return st;
}

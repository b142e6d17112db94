/* Split patterns of tokenizer.json, as Hugging Face tokenizers finds them: the file's Oniguruma
 * regex (or literal string) compiled with PCRE2 in UTF + UCP mode, translated where the two engines
 * read the same syntax differently, and iterated over a text the way the onig crate's find_iter does. */
#include "tokenizer_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct split_regex {
    pcre2_code *code;
};

/* Oniguruma's \w is Letter | Mark | Decimal_Number | Connector_Punctuation; PCRE2 10.42's (UCP) is
 * L | N | '_', so \w and \W become that explicit set (bare inside a class, bracketed outside).
 * \s already agrees (U+0009..U+000D, U+0085 and Z in both; test_split_regex_oniguruma_semantics). */
static const char *const ONIG_WORD_SET = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

/* Rewrites the escapes whose meaning differs; everything else (\p{..}, (?i:..), (?!..), {m,n})
 * reads the same in both engines. Returns 0 on a construct it cannot translate exactly
 * (\W inside a class), setting *bad to its offset. */
static int translate_pattern(const char *pat, size_t n, bytebuf *out, size_t *bad)
{
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = pat[i];
        if (ch == '\\' && i + 1 < n) {
            char e = pat[++i];
            const char *set = e == 'w' || e == 'W' ? ONIG_WORD_SET : NULL;
            int negated = e == 'W';
            int ok = 1;
            if (!set)
                ok = bb_append(out, pat + i - 1, 2);
            else if (in_class && negated) {
                *bad = i - 1;
                return 0;
            } else if (in_class)
                ok = bb_append(out, set, strlen(set));
            else
                ok = bb_append(out, negated ? "[^" : "[", negated ? 2 : 1) && bb_append(out, set, strlen(set)) &&
                     bb_append(out, "]", 1);
            if (!ok)
                return -1;
            continue;
        }
        if (!in_class && ch == '[') {
            in_class = 1;
            if (!bb_append(out, pat + i, 1))
                return -1;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pat[i + 1] == '^' && !bb_append(out, pat + ++i, 1))
                return -1;
            if (i + 1 < n && pat[i + 1] == ']' && !bb_append(out, pat + ++i, 1))
                return -1;
            continue;
        }
        if (in_class && ch == ']')
            in_class = 0;
        if (!bb_append(out, pat + i, 1))
            return -1;
    }
    return 1;
}

pare_status split_regex_compile(const char *path, const char *pattern, size_t len, int literal, split_regex **out,
                                pare_error *err)
{
    *out = NULL;
    bytebuf translated = {0};
    const char *src = pattern;
    size_t src_len = len;
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    if (literal) {
        options |= PCRE2_LITERAL;
    } else {
        options |= PCRE2_UCP;
        size_t bad = 0;
        int r = translate_pattern(pattern, len, &translated, &bad);
        if (r < 0) {
            free(translated.data);
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        }
        if (r == 0) {
            free(translated.data);
            return pare_fail(err, PARE_EUNSUPPORTED,
                             "%s: Split regex '%s': \\W at offset %zu inside [...] is not supported (Oniguruma "
                             "and PCRE2 differ there)",
                             path, show(pattern, len).s, bad);
        }
        src = translated.data ? translated.data : "";
        src_len = translated.len;
    }
    int code_err;
    PCRE2_SIZE err_off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)src, src_len, options, &code_err, &err_off, NULL);
    free(translated.data);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code_err, msg, sizeof msg);
        return pare_fail(err, PARE_EFORMAT, "%s: Split %s '%s' is invalid: %s", path, literal ? "string" : "regex",
                         show(pattern, len).s, (const char *)msg);
    }
    /* JIT is an optimisation: where the platform lacks it, the interpreter gives the same matches. */
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    split_regex *r = malloc(sizeof *r);
    if (!r) {
        pcre2_code_free(code);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    }
    r->code = code;
    *out = r;
    return PARE_OK;
}

void split_regex_free(split_regex *r)
{
    if (!r)
        return;
    pcre2_code_free(r->code);
    free(r);
}

void *split_regex_match_data(void)
{
    /* Only the whole match is read, so one pair fits every pattern (PCRE2 then returns 0). */
    return pcre2_match_data_create(1, NULL);
}

void split_regex_match_data_free(void *match_data) { pcre2_match_data_free(match_data); }

/* The onig crate's find_iter: search from the end of the last match; an empty match right where
 * the last match ended is skipped by moving the search on one character. */
int split_regex_find_all(const split_regex *r, void *match_data, const char *s, size_t n, split_match_list *matches)
{
    matches->len = 0;
    size_t search_from = 0, last_match_end = SIZE_MAX;
    while (search_from <= n) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, search_from, 0, match_data, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 1;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(match_data);
        size_t start = ov[0], end = ov[1];
        if (start == end && end == last_match_end) {
            size_t clen = 1;
            if (search_from < n)
                next_char((const unsigned char *)s + search_from, n - search_from, &clen);
            search_from += clen;
            continue;
        }
        search_from = end;
        last_match_end = end;
        void *p = grow_array(matches->data, &matches->cap, matches->len + 1, sizeof *matches->data);
        if (!p)
            return 0;
        matches->data = p;
        matches->data[matches->len].start = start;
        matches->data[matches->len].end = end;
        matches->len++;
    }
    return 1;
}

/* Encoding with a Hugging Face tokenizer: added tokens, normalizers (capped), pre-tokenizers
 * (ByteLevel with GPT-2's split, Metaspace) and the BPE model with its merge queue. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------------------------------
 * Normalizers
 * ---------------------------------------------------------------------------------------------- */

/* How far normalizers may grow a text: real ones stay well below 16x in bytes (NFKC expands UTF-8 at
 * most 11x, U+FDFA; Replace(" ", "\u2581") 3x; Prepend adds a few bytes), chained Replaces do not:
 * four Replace("e" -> 128 "e") turn one byte into 256 MiB. Checked after every step and while it
 * runs, so no intermediate text can exceed it either. */
#define NORM_GROWTH_FACTOR 16
#define NORM_GROWTH_SLACK 256            /* bytes, for Prepend on short texts */
#define NORM_MAX_BYTES ((size_t)1 << 30) /* whatever the input */

static pare_status normalized_too_long(const char *path, const norm_step *ns, size_t k, size_t n, size_t limit,
                                       pare_error *err)
{
    return pare_fail(err, PARE_EFORMAT,
                     "%s: normalizer expands input beyond %dx its length plus %d bytes (%zu bytes from %zu at "
                     "normalizer %zu, %s); real normalizers grow text at most 11x (NFKC)",
                     path, NORM_GROWTH_FACTOR, NORM_GROWTH_SLACK, limit, n, k + 1,
                     ns->kind == NORM_PREPEND   ? "Prepend"
                     : ns->kind == NORM_REPLACE ? "Replace"
                                                : "NFC");
}

/* NFC of s into out. The reference only sees valid UTF-8; here each valid run is composed and the
 * bytes between runs are kept as they are (no composition reaches across them). */
static int append_nfc(const char *s, size_t n, bytebuf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        int valid = 1;
        while (run < n) {
            size_t len = utf8_scan((const unsigned char *)s + run, n - run, &valid);
            if (!valid)
                break;
            run += len;
        }
        if (run > i) {
            utf8proc_uint8_t *composed = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(run - i), &composed,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            /* utf8proc refuses nothing that utf8_scan accepts; should it, the run stays as it was */
            int ok = m >= 0 ? bb_append(out, composed, (size_t)m) : bb_append(out, s + i, run - i);
            free(composed);
            if (!ok)
                return 0;
        }
        if (run < n) { /* the invalid sequence utf8_scan measured */
            size_t bad = utf8_scan((const unsigned char *)s + run, n - run, &valid);
            if (!bb_append(out, s + run, bad))
                return 0;
            run += bad;
        }
        i = run;
    }
    return 1;
}

/* Runs the normalizer chain on s into out (used for normalized added tokens and for each piece).
 * path names the tokenizer in errors. */
pare_status apply_normalizers(const pare_tokenizer *t, const char *path, const char *s, size_t n, bytebuf *out,
                              bytebuf *tmp, pare_error *err)
{
    size_t limit = n > (NORM_MAX_BYTES - NORM_GROWTH_SLACK) / NORM_GROWTH_FACTOR
                       ? NORM_MAX_BYTES
                       : n * NORM_GROWTH_FACTOR + NORM_GROWTH_SLACK;
    out->len = 0;
    if (!bb_append(out, s, n))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory while normalizing", path);
    for (size_t k = 0; k < t->n_norms; k++) {
        const norm_step *ns = &t->norms[k];
        tmp->len = 0;
        if (!bb_reserve(tmp, 0))
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory while normalizing", path);
        if (ns->kind == NORM_PREPEND) {
            if (out->len == 0)
                continue; /* the reference prepends only to non-empty strings */
            if (ns->content_len > limit - out->len)
                return normalized_too_long(path, ns, k, n, limit, err);
            if (!bb_append(tmp, ns->content, ns->content_len) || !bb_append(tmp, out->data, out->len))
                return pare_fail(err, PARE_ENOMEM, "%s: out of memory while normalizing", path);
        } else if (ns->kind == NORM_NFC) {
            if (!append_nfc(out->data, out->len, tmp))
                return pare_fail(err, PARE_ENOMEM, "%s: out of memory while normalizing", path);
            if (tmp->len > limit) /* composition rarely grows text, but a few characters do (e.g. U+0958) */
                return normalized_too_long(path, ns, k, n, limit, err);
        } else {
            size_t i = 0;
            while (i < out->len) {
                int match = out->len - i >= ns->pattern_len && memcmp(out->data + i, ns->pattern, ns->pattern_len) == 0;
                const char *piece = match ? ns->content : out->data + i;
                size_t piece_len = match ? ns->content_len : 1;
                if (piece_len > limit - tmp->len) /* tmp->len <= limit throughout */
                    return normalized_too_long(path, ns, k, n, limit, err);
                if (!bb_append(tmp, piece, piece_len))
                    return pare_fail(err, PARE_ENOMEM, "%s: out of memory while normalizing", path);
                i += match ? ns->pattern_len : 1;
            }
        }
        bytebuf swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return PARE_OK;
}

/* ------------------------------------------------------------------------------------------------
 * The BPE merge queue (a min-heap on key; the low 32 bits of key hold the left position so that
 * ties go to the leftmost pair, as the reference does)
 * ---------------------------------------------------------------------------------------------- */

/* The BPE queue needs only (rank, position): the merged id follows from the rank. Eight-byte
 * entries keep the queue of a megabyte-long word cache-friendly. */
typedef struct {
    uint64_t *data;
    size_t len, cap;
} key_heap;

static void kheap_sift_down(uint64_t *a, size_t n, size_t i)
{
    uint64_t v = a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && a[c + 1] < a[c])
            c++;
        if (v <= a[c])
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = v;
}

static void kheap_heapify(key_heap *h)
{
    for (size_t i = h->len / 2; i-- > 0;)
        kheap_sift_down(h->data, h->len, i);
}

static int kheap_append(key_heap *h, uint64_t key)
{
    void *p = grow_array(h->data, &h->cap, h->len + 1, sizeof(uint64_t));
    if (!p)
        return 0;
    h->data = p;
    h->data[h->len++] = key;
    return 1;
}

static int kheap_push(key_heap *h, uint64_t key)
{
    if (!kheap_append(h, key))
        return 0;
    size_t i = h->len - 1;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->data[parent] <= key)
            break;
        h->data[i] = h->data[parent];
        i = parent;
    }
    h->data[i] = key;
    return 1;
}

static uint64_t kheap_pop(key_heap *h)
{
    uint64_t top = h->data[0];
    h->data[0] = h->data[--h->len];
    if (h->len)
        kheap_sift_down(h->data, h->len, 0);
    return top;
}

/* ------------------------------------------------------------------------------------------------
 * Hugging Face encoding
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    size_t start, end;
    int32_t id; /* -1 for plain text */
} segment;

typedef struct {
    segment *data;
    size_t len, cap;
} segment_list;

typedef struct {
    const pare_tokenizer *t;
    idbuf out;
    bytebuf norm, norm_tmp;
    bytebuf pretok_buf[MAX_STEPS][2]; /* per pre-tokenizer step: its output and scratch */
    segment_list raw_segments, norm_segments;
    /* per Split step: the pattern's matches, the parts they cut, the pieces kept */
    split_match_list split_matches[MAX_STEPS];
    segment_list split_parts[MAX_STEPS], split_pieces[MAX_STEPS];
    void *match_data; /* PCRE2's, made on the first Split */
    /* BPE scratch */
    int32_t *sym_tok, *sym_prev, *sym_next;
    size_t sym_cap;
    key_heap heap;
    idbuf word_ids;
    /* words seen in this call -> offset in cache_ids of [count, ids...] */
    strmap cache;
    idbuf cache_ids;
    pare_error *err;
} encode_ctx;

static void encode_ctx_free(encode_ctx *c)
{
    free(c->norm.data);
    free(c->norm_tmp.data);
    for (int i = 0; i < MAX_STEPS; i++) {
        free(c->pretok_buf[i][0].data);
        free(c->pretok_buf[i][1].data);
    }
    free(c->raw_segments.data);
    free(c->norm_segments.data);
    for (int i = 0; i < MAX_STEPS; i++) {
        free(c->split_matches[i].data);
        free(c->split_parts[i].data);
        free(c->split_pieces[i].data);
    }
    if (c->match_data)
        split_regex_match_data_free(c->match_data);
    free(c->sym_tok);
    free(c->sym_prev);
    free(c->sym_next);
    free(c->heap.data);
    free(c->word_ids.data);
    strmap_free(&c->cache);
    free(c->cache_ids.data);
}

static pare_status oom(encode_ctx *c)
{
    return pare_fail(c->err, PARE_ENOMEM, "%s: out of memory while encoding", c->t->source);
}

static int seg_push(segment_list *l, size_t start, size_t end, int32_t id)
{
    void *p = grow_array(l->data, &l->cap, l->len + 1, sizeof(segment));
    if (!p)
        return 0;
    l->data = p;
    l->data[l->len++] = (segment){start, end, id};
    return 1;
}

static size_t leading_space_len(const unsigned char *s, size_t n)
{
    size_t i = 0, clen;
    while (i < n && cp_is_space(next_char(s + i, n - i, &clen)))
        i += clen;
    return i;
}

/* Splits s on added tokens (leftmost-longest, as the reference's Aho-Corasick matcher), honouring
 * single_word/lstrip/rstrip. Only tokens whose "normalized" flag equals normalized are considered. */
static int split_on_added(const pare_tokenizer *t, const char *text, size_t n, int normalized, segment_list *segs)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *first = t->added_first_byte[normalized];
    segs->len = 0;
    size_t done = 0, pos = 0;
    while (pos < n) {
        if (!(first[s[pos] >> 3] & (1u << (s[pos] & 7)))) {
            pos++;
            continue;
        }
        const added_token *best = NULL;
        for (size_t i = 0; i < t->n_added; i++) {
            const added_token *a = &t->added[i];
            if (a->normalized != normalized || a->match_len > n - pos || (best && a->match_len <= best->match_len))
                continue;
            if (memcmp(s + pos, a->match, a->match_len) == 0)
                best = a;
        }
        if (!best) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + best->match_len;
        pos = stop; /* the matcher resumes after the match even when it is rejected */
        if (best->single_word) {
            size_t clen;
            int before_word = start > 0 && cp_is_word(last_char(s, start, &clen));
            int after_word = stop < n && cp_is_word(next_char(s + stop, n - stop, &clen));
            if (before_word || after_word)
                continue;
        }
        if (best->lstrip) {
            size_t clen;
            while (start > done && cp_is_space(last_char(s, start, &clen)))
                start -= clen;
            if (start < done)
                start = done;
        }
        if (best->rstrip) {
            stop += leading_space_len(s + stop, n - stop);
            pos = stop;
        }
        if (done < start && !seg_push(segs, done, start, -1))
            return 0;
        if (!seg_push(segs, start, stop, best->id))
            return 0;
        done = stop;
    }
    if (done < n && !seg_push(segs, done, n, -1))
        return 0;
    return 1;
}

static pare_status encode_word(encode_ctx *c, const char *w, size_t n);
static pare_status pretokenize(encode_ctx *c, size_t pretok_index, const char *s, size_t n, int at_origin);

/* GPT-2's split regex, applied at pos; returns the end of the match. The alternatives are tried in
 * the regex's order: contractions, ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`, `\s+(?!\S)`, `\s+`. */
static size_t gpt2_match(const unsigned char *s, size_t n, size_t pos)
{
    size_t clen;
    int32_t c0 = next_char(s + pos, n - pos, &clen);
    if (c0 == '\'' && pos + 1 < n) {
        unsigned char a = s[pos + 1], b = pos + 2 < n ? s[pos + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return pos + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return pos + 3;
    }
    size_t body = pos;
    int32_t cb = c0;
    size_t blen = clen;
    if (c0 == ' ' && pos + 1 < n) {
        size_t l2;
        int32_t c1 = next_char(s + pos + 1, n - pos - 1, &l2);
        if (!cp_is_space(c1)) {
            body = pos + 1;
            cb = c1;
            blen = l2;
        }
    }
    if (!cp_is_space(cb)) {
        int cls = cp_is_letter(cb) ? 1 : cp_is_number(cb) ? 2 : 3;
        size_t i = body + blen;
        while (i < n) {
            int32_t ci = next_char(s + i, n - i, &clen);
            int ccls = cp_is_letter(ci) ? 1 : cp_is_number(ci) ? 2 : cp_is_space(ci) ? 0 : 3;
            if (ccls != cls)
                break;
            i += clen;
        }
        return i;
    }
    /* A whitespace run: keep its last character for the next word unless the run ends the text. */
    size_t i = pos, last_start = pos, count = 0;
    while (i < n) {
        int32_t ci = next_char(s + i, n - i, &clen);
        if (!cp_is_space(ci))
            break;
        last_start = i;
        i += clen;
        count++;
    }
    if (i == n || count == 1)
        return i;
    return last_start;
}

size_t pare_gpt2_split(const unsigned char *s, size_t n, size_t pos) { return gpt2_match(s, n, pos); }

size_t pare_byte_level_char(unsigned char b, char out[2])
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int32_t cp = b;
    if (!printable) { /* the non-printable bytes take 256, 257, ... in byte order, as init_byte_level_map */
        cp = 256;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE))
                cp++;
    }
    char buf[4];
    size_t len = encode_utf8(cp, buf);
    memcpy(out, buf, len);
    return len;
}

/* The pieces a Split step makes of s[0..n), as the reference's NormalizedString::split: the matches
 * and the text between them (alternating parts that cover s), match flags flipped by invert, then
 * folded by behavior; removed and empty pieces are dropped. */
static pare_status split_into_pieces(encode_ctx *c, size_t step, const char *s, size_t n)
{
    const pretok_step *p = &c->t->pretoks[step];
    segment_list *parts = &c->split_parts[step], *pieces = &c->split_pieces[step];
    split_match_list *matches = &c->split_matches[step];
    parts->len = pieces->len = 0;
    if (!p->regex) /* an empty String pattern matches nowhere */
        return seg_push(pieces, 0, n, 0) ? PARE_OK : oom(c);
    if (!c->match_data && !(c->match_data = split_regex_match_data()))
        return oom(c);
    int rc = split_regex_find_all(p->regex, c->match_data, s, n, matches);
    if (rc == 0)
        return oom(c);
    if (rc < 0)
        return pare_fail(c->err, PARE_EINVAL,
                         "%s: the Split pattern of pre-tokenizer %zu failed on a piece of %zu bytes", c->t->source,
                         step + 1, n);
    size_t prev = 0;
    for (size_t k = 0; k <= matches->len; k++) {
        size_t start = k < matches->len ? matches->data[k].start : n;
        if (prev != start && !seg_push(parts, prev, start, p->invert))
            return oom(c);
        if (k == matches->len)
            break;
        prev = matches->data[k].end;
        if (!seg_push(parts, start, prev, !p->invert))
            return oom(c);
    }
    int previous_match = 0;
    for (size_t k = 0; k < parts->len; k++) {
        segment g = parts->data[k];
        int is_match = g.id, next_is_match = k + 1 < parts->len && parts->data[k + 1].id;
        int merge_into_last = 0;
        switch (p->behavior) {
        case SPLIT_REMOVED:
            if (is_match)
                continue;
            break;
        case SPLIT_CONTIGUOUS: merge_into_last = is_match == previous_match && pieces->len; break;
        case SPLIT_MERGED_WITH_PREVIOUS: merge_into_last = is_match && !previous_match && pieces->len; break;
        case SPLIT_MERGED_WITH_NEXT:
            /* the reference folds from the end: a match joins the part after it unless that is a match */
            if (is_match && k + 1 < parts->len && !next_is_match) {
                parts->data[k + 1].start = g.start;
                previous_match = is_match;
                continue;
            }
            break;
        default: break;
        }
        previous_match = is_match;
        if (merge_into_last)
            pieces->data[pieces->len - 1].end = g.end;
        else if (!seg_push(pieces, g.start, g.end, 0))
            return oom(c);
    }
    return PARE_OK;
}

static pare_status pretokenize(encode_ctx *c, size_t pretok_index, const char *s, size_t n, int at_origin)
{
    const pare_tokenizer *t = c->t;
    if (n == 0)
        return PARE_OK;
    if (pretok_index == t->n_pretoks)
        return encode_word(c, s, n);
    const pretok_step *p = &t->pretoks[pretok_index];
    if (p->kind == PRE_SPLIT) {
        pare_status st = split_into_pieces(c, pretok_index, s, n);
        const segment_list *pieces = &c->split_pieces[pretok_index];
        for (size_t k = 0; !st && k < pieces->len; k++) {
            const segment *g = &pieces->data[k];
            st = pretokenize(c, pretok_index + 1, s + g->start, g->end - g->start, at_origin && g->start == 0);
        }
        return st;
    }
    bytebuf *a = &c->pretok_buf[pretok_index][0], *b = &c->pretok_buf[pretok_index][1];
    a->len = 0;
    if (p->kind == PRE_METASPACE) {
        int starts_with_space = s[0] == ' ' ||
                                (n >= p->replacement_len && memcmp(s, p->replacement, p->replacement_len) == 0);
        int prepend = !starts_with_space && (p->scheme == SCHEME_ALWAYS || (p->scheme == SCHEME_FIRST && at_origin));
        if (prepend && !bb_append(a, p->replacement, p->replacement_len))
            return oom(c);
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && s[j] != ' ')
                j++;
            if (!bb_append(a, s + i, j - i))
                return oom(c);
            if (j < n && !bb_append(a, p->replacement, p->replacement_len))
                return oom(c);
            i = j + 1;
        }
        if (!p->split)
            return pretokenize(c, pretok_index + 1, a->data, a->len, at_origin);
        /* MergedWithNext: every replacement character starts a new piece. */
        size_t piece = 0, rl = p->replacement_len;
        for (size_t i = 1; i + rl <= a->len; i++) {
            if (memcmp(a->data + i, p->replacement, rl) == 0) {
                pare_status st = pretokenize(c, pretok_index + 1, a->data + piece, i - piece, at_origin && piece == 0);
                if (st)
                    return st;
                piece = i;
                i += rl - 1;
            }
        }
        return pretokenize(c, pretok_index + 1, a->data + piece, a->len - piece, at_origin && piece == 0);
    }
    /* ByteLevel */
    const char *src = s;
    size_t len = n;
    if (p->add_prefix_space && s[0] != ' ') {
        if (!bb_append(a, " ", 1) || !bb_append(a, s, n))
            return oom(c);
        src = a->data;
        len = a->len;
    }
    size_t pos = 0;
    while (pos < len) {
        size_t end = p->use_regex ? gpt2_match((const unsigned char *)src, len, pos) : len;
        b->len = 0;
        if (!bb_reserve(b, 2 * (end - pos)))
            return oom(c);
        for (size_t i = pos; i < end; i++) {
            unsigned char byte = (unsigned char)src[i];
            memcpy(b->data + b->len, t->byte_char[byte], t->byte_char_len[byte]);
            b->len += t->byte_char_len[byte];
        }
        pare_status st = pretokenize(c, pretok_index + 1, b->data, b->len, at_origin && pos == 0);
        if (st)
            return st;
        pos = end;
    }
    return PARE_OK;
}

static int ensure_symbols(encode_ctx *c, size_t n)
{
    if (n <= c->sym_cap)
        return 1;
    size_t cap = n < 64 ? 64 : n;
    int32_t *a = realloc(c->sym_tok, cap * sizeof *a);
    if (!a)
        return 0;
    c->sym_tok = a;
    if (!(a = realloc(c->sym_prev, cap * sizeof *a)))
        return 0;
    c->sym_prev = a;
    if (!(a = realloc(c->sym_next, cap * sizeof *a)))
        return 0;
    c->sym_next = a;
    c->sym_cap = cap;
    return 1;
}

/* The queue key of the pair starting at left, or UINT64_MAX when the pair has no merge. */
static uint64_t bpe_pair_key(const encode_ctx *c, int32_t left)
{
    int32_t right = c->sym_next[left];
    if (right < 0)
        return UINT64_MAX;
    const pair_slot *m = pairmap_get(&c->t->merges, c->sym_tok[left], c->sym_tok[right]);
    return m ? (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)left : UINT64_MAX;
}

static int push_bpe_pair(encode_ctx *c, int32_t left)
{
    uint64_t key = bpe_pair_key(c, left);
    return key == UINT64_MAX || kheap_push(&c->heap, key);
}

/* The reference BPE model on one pre-tokenized word: characters to pieces (byte fallback, unk
 * fusing), then merges by rank, leftmost first. Appends ids to c->word_ids. */
static pare_status bpe_word(encode_ctx *c, const char *w, size_t n)
{
    const pare_tokenizer *t = c->t;
    c->word_ids.len = 0;
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, w, n);
        if (id >= 0)
            return ib_push(&c->word_ids, id) ? PARE_OK : oom(c);
    }
    /* Normalizers and ByteLevel can make a word longer than the text; positions must fit int32. */
    if (n > (size_t)INT32_MAX)
        return pare_fail(c->err, PARE_EINVAL, "%s: a pre-tokenized word of %zu bytes is too long to encode", t->source,
                         n);
    if (!ensure_symbols(c, n))
        return oom(c);
    size_t ns = 0;
    int32_t pending_unk = -1; /* a run of unknown characters not yet emitted */
    for (size_t i = 0; i < n;) {
        size_t clen;
        next_char((const unsigned char *)w + i, n - i, &clen);
        int32_t id = strmap_get(&t->vocab, w + i, clen);
        if (id >= 0) {
            if (pending_unk >= 0) {
                c->sym_tok[ns++] = pending_unk;
                pending_unk = -1;
            }
            c->sym_tok[ns++] = id;
        } else {
            int fell_back = 0;
            if (t->byte_fallback) {
                fell_back = 1;
                for (size_t k = 0; k < clen; k++)
                    if (t->byte_ids[(unsigned char)w[i + k]] < 0)
                        fell_back = 0;
                /* The reference emits the bytes without flushing a pending unk first. */
                for (size_t k = 0; fell_back && k < clen; k++)
                    c->sym_tok[ns++] = t->byte_ids[(unsigned char)w[i + k]];
            }
            if (!fell_back && t->unk_name) {
                if (t->unk_missing)
                    return pare_fail(c->err, PARE_EFORMAT, "%s: unk_token '%s' is not in the vocab", t->source,
                                     show_z(t->unk_name).s);
                if (pending_unk >= 0 && !t->fuse_unk)
                    c->sym_tok[ns++] = pending_unk;
                pending_unk = t->unk_id;
            }
        }
        i += clen;
    }
    if (pending_unk >= 0)
        c->sym_tok[ns++] = pending_unk;
    for (size_t i = 0; i < ns; i++) {
        c->sym_prev[i] = (int32_t)i - 1;
        c->sym_next[i] = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    c->heap.len = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        uint64_t key = bpe_pair_key(c, (int32_t)i);
        if (key != UINT64_MAX && !kheap_append(&c->heap, key))
            return oom(c);
    }
    kheap_heapify(&c->heap);
    while (c->heap.len) {
        uint64_t top = kheap_pop(&c->heap);
        int32_t pos = (int32_t)(uint32_t)top;
        int32_t new_id = t->merge_new_id[top >> 32];
        if (c->sym_tok[pos] < 0)
            continue;
        int32_t right = c->sym_next[pos];
        if (right < 0)
            continue;
        /* Stale entries are recognised as the reference does: by the merge the pair now maps to. */
        const pair_slot *m = pairmap_get(&t->merges, c->sym_tok[pos], c->sym_tok[right]);
        if (!m || m->new_id != new_id)
            continue;
        c->sym_tok[pos] = new_id;
        c->sym_tok[right] = -1;
        int32_t after = c->sym_next[right];
        c->sym_next[pos] = after;
        if (after >= 0)
            c->sym_prev[after] = pos;
        if (c->sym_prev[pos] >= 0 && !push_bpe_pair(c, c->sym_prev[pos]))
            return oom(c);
        if (!push_bpe_pair(c, pos))
            return oom(c);
    }
    if (!ib_reserve(&c->word_ids, ns))
        return oom(c);
    for (int32_t i = ns ? 0 : -1; i >= 0; i = c->sym_next[i])
        c->word_ids.data[c->word_ids.len++] = c->sym_tok[i];
    return PARE_OK;
}

#define CACHE_MAX_WORD 512
#define LONG_WORD 2048 /* words longer than this are cut at boundaries no merge can cross */

static pare_status bpe_append(encode_ctx *c, const char *w, size_t n)
{
    pare_status st = bpe_word(c, w, n);
    if (!st && !ib_append(&c->out, c->word_ids.data, c->word_ids.len))
        st = oom(c);
    return st;
}

/* Both characters must be vocab pieces themselves (so no unk or byte-fallback state spans the cut)
 * and must never appear next to each other inside a piece. */
static pare_status encode_long_word(encode_ctx *c, const char *w, size_t n)
{
    const pare_tokenizer *t = c->t;
    const unsigned char *s = (const unsigned char *)w;
    size_t chunk = 0, clen;
    int32_t prev_cp = next_char(s, n, &clen);
    int prev_known = strmap_get(&t->vocab, w, clen) >= 0;
    for (size_t i = clen; i < n; i += clen) {
        int32_t cp = next_char(s + i, n - i, &clen);
        int known = 0;
        if (i - chunk >= MIN_CHUNK || prev_known)
            known = strmap_get(&t->vocab, w + i, clen) >= 0;
        if (i - chunk >= MIN_CHUNK && known && prev_known && !pairmap_get(&t->adjacent_char_pairs, prev_cp, cp)) {
            pare_status st = bpe_append(c, w + chunk, i - chunk);
            if (st)
                return st;
            chunk = i;
        }
        prev_cp = cp;
        prev_known = known;
    }
    return bpe_append(c, w + chunk, n - chunk);
}

static pare_status encode_word(encode_ctx *c, const char *w, size_t n)
{
    if (n > LONG_WORD && !(c->t->ignore_merges && strmap_get(&c->t->vocab, w, n) >= 0))
        return encode_long_word(c, w, n);
    if (n <= CACHE_MAX_WORD) {
        int32_t off = strmap_get(&c->cache, w, n);
        if (off >= 0)
            return ib_append(&c->out, c->cache_ids.data + off + 1, (size_t)c->cache_ids.data[off]) ? PARE_OK : oom(c);
    }
    pare_status st = bpe_word(c, w, n);
    if (st)
        return st;
    if (!ib_append(&c->out, c->word_ids.data, c->word_ids.len))
        return oom(c);
    if (n <= CACHE_MAX_WORD && c->cache_ids.len < INT32_MAX / 2) {
        int32_t off = (int32_t)c->cache_ids.len;
        if (!ib_push(&c->cache_ids, (int32_t)c->word_ids.len) ||
            !ib_append(&c->cache_ids, c->word_ids.data, c->word_ids.len) || strmap_put(&c->cache, w, n, off) < 0)
            return oom(c);
    }
    return PARE_OK;
}

/* One stretch of text between added tokens: normalize, split on normalized added tokens, pre-tokenize. */
static pare_status encode_piece(encode_ctx *c, const char *s, size_t n, int at_origin)
{
    const pare_tokenizer *t = c->t;
    const char *norm = s;
    size_t norm_len = n;
    if (t->n_norms) {
        pare_status st = apply_normalizers(t, t->source, s, n, &c->norm, &c->norm_tmp, c->err);
        if (st)
            return st;
        norm = c->norm.data;
        norm_len = c->norm.len;
    }
    if (!t->has_normalized_added)
        return pretokenize(c, 0, norm, norm_len, at_origin);
    if (!split_on_added(t, norm, norm_len, 1, &c->norm_segments))
        return oom(c);
    for (size_t i = 0; i < c->norm_segments.len; i++) {
        const segment *g = &c->norm_segments.data[i];
        pare_status st = g->id >= 0 ? (ib_push(&c->out, g->id) ? PARE_OK : oom(c))
                                    : pretokenize(c, 0, norm + g->start, g->end - g->start, at_origin && g->start == 0);
        if (st)
            return st;
    }
    return PARE_OK;
}

pare_status encode_hf(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
                      pare_error *err)
{
    encode_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.err = err;
    pare_status st = PARE_OK;
    if (add_special && !ib_append(&c.out, t->prefix_ids.data, t->prefix_ids.len))
        st = oom(&c);
    if (!st && !split_on_added(t, text, len, 0, &c.raw_segments))
        st = oom(&c);
    for (size_t i = 0; !st && i < c.raw_segments.len; i++) {
        const segment *g = &c.raw_segments.data[i];
        if (g->id >= 0)
            st = ib_push(&c.out, g->id) ? PARE_OK : oom(&c);
        else
            st = encode_piece(&c, text + g->start, g->end - g->start, g->start == 0);
    }
    if (!st && add_special && !ib_append(&c.out, t->suffix_ids.data, t->suffix_ids.len))
        st = oom(&c);
    if (!st) {
        *out = c.out;
        c.out.data = NULL;
    }
    free(c.out.data);
    encode_ctx_free(&c);
    return st;
}

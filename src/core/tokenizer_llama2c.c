/* The llama2.c tokenizer: tokenizer.bin loading, and run.c's encoder (score-ordered merges of
 * adjacent pieces, byte fallback) and decoder. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"

/* ------------------------------------------------------------------------------------------------
 * run.c's merge queue (a min-heap on key; the high 32 bits order by the merged piece's score,
 * the low 32 hold the left position so that ties go to the leftmost pair)
 * ---------------------------------------------------------------------------------------------- */

/* The llama2.c encoder's queue: the high 32 bits of key order by the merged piece's score. */
typedef struct {
    uint64_t key;
    int32_t new_id, right, left_version, right_version;
} score_entry;

typedef struct {
    score_entry *data;
    size_t len, cap;
} score_heap;

static int score_heap_push(score_heap *h, score_entry e)
{
    void *p = grow_array(h->data, &h->cap, h->len + 1, sizeof(score_entry));
    if (!p)
        return 0;
    h->data = p;
    size_t i = h->len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->data[parent].key <= e.key)
            break;
        h->data[i] = h->data[parent];
        i = parent;
    }
    h->data[i] = e;
    return 1;
}

static score_entry score_heap_pop(score_heap *h)
{
    score_entry top = h->data[0];
    score_entry last = h->data[--h->len];
    size_t i = 0, n = h->len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h->data[c + 1].key < h->data[c].key)
            c++;
        if (last.key <= h->data[c].key)
            break;
        h->data[i] = h->data[c];
        i = c;
    }
    if (n)
        h->data[i] = last;
    return top;
}

/* ------------------------------------------------------------------------------------------------
 * llama2.c tokenizer.bin
 * ---------------------------------------------------------------------------------------------- */

static uint32_t read_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t read_i32(const unsigned char *p)
{
    uint32_t v = read_u32le(p);
    int32_t out;
    memcpy(&out, &v, sizeof out);
    return out;
}

static float read_f32(const unsigned char *p)
{
    uint32_t v = read_u32le(p);
    float out;
    memcpy(&out, &v, sizeof out);
    return out;
}

pare_status pare_tokenizer_load_llama2c(const char *bin_path, int vocab_size, pare_tokenizer **out, pare_error *err)
{
    *out = NULL;
    if (vocab_size <= 0 || vocab_size > (1 << 24))
        return pare_fail(err, PARE_EINVAL, "%s: vocab size %d is out of range (1 .. 2^24)", bin_path, vocab_size);
    char *data;
    size_t len;
    pare_status st = pare_read_file(bin_path, &data, &len, err);
    if (st)
        return st;
    const unsigned char *p = (const unsigned char *)data;
    pare_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(data);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", bin_path);
    }
    t->kind = KIND_LLAMA2C;
    t->n_ids = vocab_size;
    t->unk_id = -1;
    t->source = dup_bytes(bin_path, strlen(bin_path));
    t->scores = malloc((size_t)vocab_size * sizeof(float));
    t->id_entry = malloc((size_t)vocab_size * sizeof(int32_t));
    if (!t->source || !t->scores || !t->id_entry) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", bin_path);
        goto done;
    }
    if (len < 4) {
        st = pare_fail(err, PARE_EFORMAT, "%s: truncated: %zu bytes, no max_token_length header", bin_path, len);
        goto done;
    }
    int32_t max_len = read_i32(p);
    if (max_len <= 0 || max_len > (1 << 20)) {
        st = pare_fail(err, PARE_EFORMAT, "%s: max_token_length %d is not plausible; not a llama2.c tokenizer.bin",
                       bin_path, (int)max_len);
        goto done;
    }
    size_t pos = 4;
    for (int i = 0; i < vocab_size; i++) {
        if (len - pos < 8) {
            st = pare_fail(err, PARE_EFORMAT, "%s: truncated at token %d of %d (offset %zu)", bin_path, i, vocab_size,
                           pos);
            goto done;
        }
        t->scores[i] = read_f32(p + pos);
        int32_t n = read_i32(p + pos + 4);
        pos += 8;
        if (n < 0 || n > (1 << 20)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: token %d has length %d", bin_path, i, (int)n);
            goto done;
        }
        if (len - pos < (size_t)n) {
            st = pare_fail(err, PARE_EFORMAT, "%s: truncated in token %d of %d (needs %d bytes at offset %zu)",
                           bin_path, i, vocab_size, (int)n, pos);
            goto done;
        }
        /* run.c handles pieces as C strings, so an embedded NUL ends the piece. */
        const char *piece = data + pos;
        size_t plen = strnlen(piece, (size_t)n);
        pos += (size_t)n;
        /* The first of duplicate pieces wins, as a lookup would normally find it. */
        int32_t e = strmap_find(&t->vocab, piece, plen);
        if (e < 0 && (e = strmap_put(&t->vocab, piece, plen, i)) < 0) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", bin_path);
            goto done;
        }
        t->id_entry[i] = e;
    }
    if ((st = build_adjacent_char_pairs(bin_path, t, err)))
        goto done;
    t->space_id = strmap_get(&t->vocab, " ", 1);
    t->bos_id = vocab_size > 1 ? 1 : -1;
    t->eos_id = vocab_size > 2 ? 2 : -1;
    snprintf(t->description, sizeof t->description, "llama2.c %d tokens, byte fallback", vocab_size);
done:
    free(data);
    if (st) {
        pare_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PARE_OK;
}

static const char *l2c_piece(const pare_tokenizer *t, int32_t id, size_t *len)
{
    int32_t e = t->id_entry[id];
    *len = t->vocab.key_len[e];
    return t->vocab.keys.data + t->vocab.key_off[e];
}

/* run.c merges the adjacent pair whose concatenation has the highest score, leftmost on ties, until
 * none is in the vocab. A heap keyed by (score, position) with lazily invalidated entries gives the
 * same sequence of merges in O(n log n). */
typedef struct {
    const pare_tokenizer *t;
    int32_t *tok, *next, *prev, *version;
    score_heap heap;
    bytebuf joined;
} l2c_ctx;

static uint32_t score_order(float s)
{
    if (s == 0.0f)
        s = 0.0f; /* -0.0 ties with 0.0 as in run.c's float comparison */
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~ascending; /* the heap pops the smallest key, and higher scores go first */
}

static int l2c_push_pair(l2c_ctx *c, int32_t left)
{
    if (left < 0)
        return 1;
    int32_t right = c->next[left];
    if (right < 0)
        return 1;
    size_t la, lb;
    const char *a = l2c_piece(c->t, c->tok[left], &la), *b = l2c_piece(c->t, c->tok[right], &lb);
    c->joined.len = 0;
    if (!bb_append(&c->joined, a, la) || !bb_append(&c->joined, b, lb))
        return 0;
    int32_t id = strmap_get(&c->t->vocab, c->joined.data, c->joined.len);
    if (id < 0)
        return 1;
    float score = c->t->scores[id];
    if (!(score > -1e10f))
        return 1; /* run.c's best score starts at -1e10 and only a larger one is taken */
    score_entry e = {(uint64_t)score_order(score) << 32 | (uint32_t)left, id, right, c->version[left],
                     c->version[right]};
    return score_heap_push(&c->heap, e);
}

/* Runs run.c's merge loop on tokens [from, to) and appends the result to out. */
static int l2c_merge_range(l2c_ctx *c, size_t from, size_t to, idbuf *out)
{
    for (size_t i = from; i < to; i++) {
        c->prev[i] = i > from ? (int32_t)i - 1 : -1;
        c->next[i] = i + 1 < to ? (int32_t)i + 1 : -1;
    }
    c->heap.len = 0;
    for (size_t i = from; i + 1 < to; i++)
        if (!l2c_push_pair(c, (int32_t)i))
            return 0;
    while (c->heap.len) {
        score_entry e = score_heap_pop(&c->heap);
        int32_t left = (int32_t)(uint32_t)e.key;
        if (c->tok[left] < 0 || c->next[left] != e.right || c->version[left] != e.left_version ||
            c->version[e.right] != e.right_version)
            continue;
        c->tok[left] = e.new_id;
        c->version[left]++;
        c->tok[e.right] = -1;
        int32_t after = c->next[e.right];
        c->next[left] = after;
        if (after >= 0)
            c->prev[after] = left;
        if (!l2c_push_pair(c, c->prev[left]) || !l2c_push_pair(c, left))
            return 0;
    }
    if (!ib_reserve(out, to - from))
        return 0;
    for (int32_t i = to > from ? (int32_t)from : -1; i >= 0; i = c->next[i])
        out->data[out->len++] = c->tok[i];
    return 1;
}

pare_status encode_llama2c(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
                           pare_error *err)
{
    idbuf ids = {0};
    unsigned char *cuttable = NULL; /* token i is a character's own piece: a cut before it may be safe */
    l2c_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    pare_status st = PARE_OK;
    if (!ib_reserve(&ids, len + 2) || !(cuttable = calloc(len + 2, 1)))
        goto nomem;
    if (add_special)
        ids.data[ids.len++] = 1;
    if (len > 0) {
        if (t->space_id < 0) {
            st = pare_fail(err, PARE_EFORMAT, "%s: the llama2.c vocab has no ' ' piece for the dummy prefix", t->source);
            goto done;
        }
        ids.data[ids.len++] = t->space_id;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t group = 0, group_start = 0;
    for (size_t i = 0; i < len; i++) {
        /* Exactly run.c's grouping: a byte plus up to three continuation bytes, valid or not. */
        if ((s[i] & 0xC0) != 0x80)
            group = 0;
        if (group == 0)
            group_start = i;
        group++;
        unsigned char following = i + 1 < len ? s[i + 1] : 0;
        if ((following & 0xC0) == 0x80 && group < 4)
            continue;
        int32_t id = strmap_get(&t->vocab, text + group_start, group);
        if (id >= 0) {
            cuttable[ids.len] = 1;
            ids.data[ids.len++] = id;
        } else {
            for (size_t k = 0; k < group; k++) {
                int32_t b = (int32_t)s[group_start + k] + 3;
                if (b >= t->n_ids) {
                    st = pare_fail(err, PARE_EFORMAT, "%s: byte fallback id %d is outside the vocab (%d)", t->source,
                                   (int)b, t->n_ids);
                    goto done;
                }
                ids.data[ids.len++] = b;
            }
        }
        group = 0;
    }
    size_t n = ids.len;
    c.tok = ids.data;
    c.next = malloc((n + 1) * sizeof(int32_t));
    c.prev = malloc((n + 1) * sizeof(int32_t));
    c.version = calloc(n + 1, sizeof(int32_t));
    if (!c.next || !c.prev || !c.version)
        goto nomem;
    /* Merges in pieces that no merge can bridge do not interact, so run.c's global order restricted
     * to each piece is the same as running it on each piece alone. */
    size_t chunk = 0;
    for (size_t i = 1; i < n; i++) {
        if (i - chunk < MIN_CHUNK || !cuttable[i] || !cuttable[i - 1])
            continue;
        size_t la, lb, clen;
        const char *a = l2c_piece(t, ids.data[i - 1], &la), *b = l2c_piece(t, ids.data[i], &lb);
        int32_t last = last_char((const unsigned char *)a, la, &clen);
        int32_t first = next_char((const unsigned char *)b, lb, &clen);
        if (pairmap_get(&t->adjacent_char_pairs, last, first))
            continue;
        if (!l2c_merge_range(&c, chunk, i, out))
            goto nomem;
        chunk = i;
    }
    if (!l2c_merge_range(&c, chunk, n, out))
        goto nomem;
    goto done;
nomem:
    st = pare_fail(err, PARE_ENOMEM, "%s: out of memory while encoding", t->source);
done:
    free(ids.data);
    free(cuttable);
    free(c.next);
    free(c.prev);
    free(c.version);
    free(c.heap.data);
    free(c.joined.data);
    return st;
}

pare_status decode_llama2c(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, bytebuf *result,
                           pare_error *err)
{
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (skip_special && id >= 0 && id <= 2)
            continue;
        size_t len;
        const char *piece = l2c_piece(t, id, &len);
        /* After BOS, sentencepiece drops the piece's leading space (run.c's decode). */
        if (i > 0 && ids[i - 1] == 1 && len > 0 && piece[0] == ' ') {
            piece++;
            len--;
        }
        int b = len >= 6 ? byte_piece(piece, 6) : -1;
        unsigned char byte = (unsigned char)b;
        if (!(b >= 0 ? bb_append(result, &byte, 1) : bb_append(result, piece, len)))
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory while decoding", t->source);
    }
    return PARE_OK;
}

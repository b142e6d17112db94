/* Byte-level BPE training (bpe_train.h): words from the GPT-2 pre-tokenizer counted once, then
 * greedy merges of the most frequent adjacent pair, with pair counts updated only in the words a
 * merge touches. Ids: 0 the special token, 1..256 the bytes in the order of their byte-level
 * characters (as the Hugging Face trainer sorts its alphabet), then one id per new merged string. */
#include "bpe_train.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/strtable.h"
#include "core/rng.h"
#include "core/tokenizer.h"

void pare_bpe_defaults(pare_bpe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vocab_size = 2048;
    o->min_frequency = 2;
    o->special = "<|endoftext|>";
}

/* The index stored for s, or -1; with insert >= 0 and no match, stores insert and returns it
 * (-2 when out of memory). */
static int32_t table_find(strmap *m, const unsigned char *s, size_t n, int32_t insert)
{
    int32_t v = strmap_get(m, (const char *)s, n);
    if (v >= 0 || insert < 0)
        return v;
    return strmap_put(m, (const char *)s, n, insert) < 0 ? -2 : insert;
}

/* ---------------------------------------------------------------- pair counts */

typedef struct {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int64_t count;
    int banned; /* merging it would give the special token's text */
} pair_slot;

typedef struct {
    pair_slot *slot;
    size_t cap, used;
} pairtab;

static uint64_t pkey(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static pair_slot *pair_at(pairtab *t, uint64_t key, int insert)
{
    if (insert && (t->used + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        pair_slot *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slot[i].key)
                continue;
            size_t h = (size_t)pare_murmur3_fmix64(t->slot[i].key) & (cap - 1);
            while (slot[h].key)
                h = (h + 1) & (cap - 1);
            slot[h] = t->slot[i];
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    if (!t->cap)
        return NULL;
    size_t h = (size_t)pare_murmur3_fmix64(key) & (t->cap - 1);
    while (t->slot[h].key && t->slot[h].key != key)
        h = (h + 1) & (t->cap - 1);
    if (!t->slot[h].key) {
        if (!insert)
            return NULL;
        t->slot[h].key = key;
        t->used++;
    }
    return &t->slot[h];
}

/* ---------------------------------------------------------------- the trainer */

typedef struct {
    const unsigned char *text;
    /* unique words: where their first occurrence is, how often they occur, their symbols now */
    size_t *w_off, *w_len, *w_sym;
    int32_t *w_nsym;
    int64_t *w_count;
    size_t n_words, cap_words;
    int32_t *sym; /* all words' symbols, each word at w_sym[i] with room for w_len[i] */
    /* tokens: raw bytes of each id */
    unsigned char *tb;
    size_t tb_len, tb_cap;
    size_t *t_off, *t_len;
    int32_t n_tok;
    int32_t (*merge)[2];
    int n_merges;
} trainer;

static int tok_add(trainer *t, const unsigned char *s, size_t n)
{
    if (t->tb_len + n > t->tb_cap) {
        size_t cap = t->tb_cap ? t->tb_cap : 4096;
        while (cap < t->tb_len + n)
            cap *= 2;
        unsigned char *d = realloc(t->tb, cap);
        if (!d)
            return 0;
        t->tb = d;
        t->tb_cap = cap;
    }
    memcpy(t->tb + t->tb_len, s, n);
    t->t_off[t->n_tok] = t->tb_len;
    t->t_len[t->n_tok] = n;
    t->tb_len += n;
    t->n_tok++;
    return 1;
}

static void trainer_free(trainer *t)
{
    free(t->w_off);
    free(t->w_len);
    free(t->w_sym);
    free(t->w_nsym);
    free(t->w_count);
    free(t->sym);
    free(t->tb);
    free(t->t_off);
    free(t->t_len);
    free(t->merge);
}

static int add_pairs(pairtab *pt, const int32_t *s, int32_t n, int64_t c)
{
    for (int32_t i = 0; i + 1 < n; i++) {
        pair_slot *p = pair_at(pt, pkey(s[i], s[i + 1]), 1);
        if (!p)
            return 0;
        p->count += c;
    }
    return 1;
}

/* The tokenizer.json: GPT-2's byte-level pipeline around the trained BPE model. */
static pare_status write_json(const trainer *t, const char *special, const char *path, pare_error *err)
{
    char bl[256][3];
    for (int b = 0; b < 256; b++) {
        size_t n = pare_byte_level_char((unsigned char)b, bl[b]);
        bl[b][n] = '\0';
    }
    json_t *root = json_object(), *vocab = json_object(), *merges = json_array();
    int ok = root && vocab && merges;
    /* token strings in byte-level characters; one heap buffer per id */
    char **str = calloc((size_t)t->n_tok, sizeof *str);
    ok = ok && str;
    for (int32_t id = 0; ok && id < t->n_tok; id++) {
        const unsigned char *s = t->tb + t->t_off[id];
        size_t n = t->t_len[id];
        str[id] = malloc(2 * n + 1);
        if (!(ok = str[id] != NULL))
            break;
        size_t k = 0;
        if (id == 0) {
            memcpy(str[id], s, n);
            k = n;
        } else {
            for (size_t i = 0; i < n; i++) {
                size_t l = strlen(bl[s[i]]);
                memcpy(str[id] + k, bl[s[i]], l);
                k += l;
            }
        }
        str[id][k] = '\0';
        ok = json_object_set_new(vocab, str[id], json_integer(id)) == 0;
    }
    for (int m = 0; ok && m < t->n_merges; m++) {
        const char *a = str[t->merge[m][0]], *b = str[t->merge[m][1]];
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 2);
        if (!(ok = s != NULL))
            break;
        memcpy(s, a, la);
        s[la] = ' ';
        memcpy(s + la + 1, b, lb + 1);
        ok = json_array_append_new(merges, json_string(s)) == 0;
        free(s);
    }
    pare_status st = PARE_OK;
    if (ok) {
        json_t *added = json_pack("[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}]", "id", 0, "content", special, "single_word",
                                  0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
        json_t *bytelevel[3];
        const int prefix[3] = {0, 1, 1}, trim[3] = {1, 0, 1};
        for (int i = 0; i < 3; i++)
            bytelevel[i] = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", prefix[i],
                                     "trim_offsets", trim[i], "use_regex", 1);
        json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:O, s:O}", "type", "BPE", "dropout",
                                  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                                  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
        ok = added && bytelevel[0] && bytelevel[1] && bytelevel[2] && model &&
             !json_object_set_new(root, "version", json_string("1.0")) &&
             !json_object_set_new(root, "truncation", json_null()) &&
             !json_object_set_new(root, "padding", json_null()) && !json_object_set_new(root, "added_tokens", added) &&
             !json_object_set_new(root, "normalizer", json_null()) &&
             !json_object_set_new(root, "pre_tokenizer", bytelevel[0]) &&
             !json_object_set_new(root, "post_processor", bytelevel[1]) &&
             !json_object_set_new(root, "decoder", bytelevel[2]) && !json_object_set_new(root, "model", model);
        if (!ok)
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory building the tokenizer.json", path);
        else
            st = pare_write_json_atomic(path, root, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err);
    } else {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory building the tokenizer.json", path);
    }
    for (int32_t id = 0; str && id < t->n_tok; id++)
        free(str[id]);
    free(str);
    json_decref(root);
    json_decref(vocab);
    json_decref(merges);
    return st;
}

pare_status pare_bpe_train(const char *text, size_t len, const pare_bpe_opts *o, const char *out_path,
                           const pare_progress *progress, pare_bpe_report *report, pare_error *err)
{
    pare_bpe_opts d;
    if (!o) {
        pare_bpe_defaults(&d);
        o = &d;
    }
    const char *special = o->special ? o->special : "<|endoftext|>";
    if (o->vocab_size < 258 || o->vocab_size > (1 << 20))
        return pare_fail(err, PARE_EINVAL,
                         "vocab_size %d: a byte-level BPE needs 258 to %d ids (1 special, 256 bytes, "
                         "merges)",
                         o->vocab_size, 1 << 20);
    if (strlen(special) < 2 || strlen(special) > 256)
        return pare_fail(err, PARE_EINVAL, "special token '%s': needs 2 to 256 bytes", special);
    if (!out_path)
        return pare_fail(err, PARE_EINVAL, "BPE training: no output path for the tokenizer.json");
    if (len && !text)
        return pare_fail(err, PARE_EINVAL, "BPE training: no text");
    if (len > INT32_MAX)
        return pare_fail(err, PARE_EINVAL, "BPE training: %zu bytes of text; at most %d", len, INT32_MAX);
    trainer t = {.text = (const unsigned char *)text};
    strmap words = {0}, toks = {0};
    pairtab pairs = {0};
    unsigned char *joined = NULL;
    pare_status st = PARE_OK;
    pare_bpe_report r = {.bytes = len, .symbols_before = len};
    size_t vmax = (size_t)o->vocab_size;
    t.t_off = malloc(vmax * sizeof *t.t_off);
    t.t_len = malloc(vmax * sizeof *t.t_len);
    t.merge = malloc(vmax * sizeof *t.merge);
    if (!t.t_off || !t.t_len || !t.merge)
        goto oom;
    /* ids 0..256: the special token, then the bytes ordered by their byte-level characters (the
     * printable bytes map to themselves, the others to 256, 257, ... in byte order) */
    if (!tok_add(&t, (const unsigned char *)special, strlen(special)) ||
        table_find(&toks, (const unsigned char *)special, strlen(special), 0) < 0)
        goto oom;
    int32_t byte_id[256];
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            if (printable != (pass == 0))
                continue;
            unsigned char byte = (unsigned char)b;
            byte_id[b] = t.n_tok;
            int32_t at = table_find(&toks, &byte, 1, t.n_tok);
            if (at == -2 || !tok_add(&t, &byte, 1))
                goto oom;
        }
    /* words */
    size_t total_sym = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = pare_gpt2_split(t.text, len, pos);
        if (t.n_words == t.cap_words) {
            size_t cap = t.cap_words ? 2 * t.cap_words : 4096;
            size_t *a = realloc(t.w_off, cap * sizeof *a), *b = a ? realloc(t.w_len, cap * sizeof *b) : NULL;
            if (a)
                t.w_off = a;
            if (b)
                t.w_len = b;
            int64_t *c = b ? realloc(t.w_count, cap * sizeof *c) : NULL;
            if (!c)
                goto oom;
            t.w_count = c;
            t.cap_words = cap;
        }
        t.w_off[t.n_words] = pos;
        t.w_len[t.n_words] = end - pos;
        int32_t w = table_find(&words, t.text + pos, end - pos, (int32_t)t.n_words);
        if (w == -2)
            goto oom;
        if ((size_t)w == t.n_words) {
            t.w_count[w] = 0;
            t.n_words++;
            total_sym += end - pos;
        }
        t.w_count[w]++;
        r.words++;
        pos = end;
        if ((r.words & 0xFFFF) == 0 &&
            (st = pare_report(progress, "bpe", 0.1 * (double)pos / (double)len, "pre-tokenizing", err)))
            goto done;
    }
    r.unique_words = t.n_words;
    strmap_free(&words); /* the words are counted: their table is no longer needed */
    t.w_sym = malloc((t.n_words + 1) * sizeof *t.w_sym);
    t.w_nsym = malloc((t.n_words + 1) * sizeof *t.w_nsym);
    t.sym = malloc((total_sym + 1) * sizeof *t.sym);
    if (!t.w_sym || !t.w_nsym || !t.sym)
        goto oom;
    for (size_t w = 0, at = 0; w < t.n_words; w++) {
        t.w_sym[w] = at;
        t.w_nsym[w] = (int32_t)t.w_len[w];
        for (size_t i = 0; i < t.w_len[w]; i++)
            t.sym[at + i] = byte_id[t.text[t.w_off[w] + i]];
        at += t.w_len[w];
        if (!add_pairs(&pairs, t.sym + t.w_sym[w], t.w_nsym[w], t.w_count[w]))
            goto oom;
    }
    if ((st = pare_report(progress, "bpe", 0.1, "merging", err)))
        goto done;
    /* merges */
    while (t.n_tok < o->vocab_size) {
        pair_slot *best = NULL;
        for (size_t i = 0; i < pairs.cap; i++) {
            pair_slot *p = &pairs.slot[i];
            if (!p->key || p->banned || p->count <= 0)
                continue;
            if (!best || p->count > best->count || (p->count == best->count && p->key < best->key))
                best = p;
        }
        if (!best || best->count < (o->min_frequency > 1 ? o->min_frequency : 1))
            break;
        int32_t a = (int32_t)((best->key - 1) >> 32), b = (int32_t)((best->key - 1) & 0xFFFFFFFFu);
        size_t la = t.t_len[a], lb = t.t_len[b];
        unsigned char *jn = realloc(joined, la + lb);
        if (!jn)
            goto oom;
        joined = jn;
        memcpy(joined, t.tb + t.t_off[a], la);
        memcpy(joined + la, t.tb + t.t_off[b], lb);
        int32_t id = table_find(&toks, joined, la + lb, -1);
        if (id == 0) { /* the special token's text: never a merge result */
            best->banned = 1;
            continue;
        }
        if (id < 0) {
            id = t.n_tok;
            if (table_find(&toks, joined, la + lb, id) == -2 || !tok_add(&t, joined, la + lb))
                goto oom;
        }
        t.merge[t.n_merges][0] = a;
        t.merge[t.n_merges][1] = b;
        t.n_merges++;
        for (size_t w = 0; w < t.n_words; w++) {
            int32_t *s = t.sym + t.w_sym[w], n = t.w_nsym[w], i;
            for (i = 0; i + 1 < n && !(s[i] == a && s[i + 1] == b); i++)
                ;
            if (i + 1 >= n)
                continue;
            int64_t c = t.w_count[w];
            if (!add_pairs(&pairs, s, n, -c))
                goto oom;
            int32_t k = 0;
            for (i = 0; i < n; i++) {
                if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                    s[k++] = id;
                    i++;
                } else {
                    s[k++] = s[i];
                }
            }
            t.w_nsym[w] = k;
            if (!add_pairs(&pairs, s, k, c))
                goto oom;
        }
        if (t.n_merges % 32 == 0) {
            char detail[64];
            snprintf(detail, sizeof detail, "%d/%d ids", t.n_tok, o->vocab_size);
            if ((st = pare_report(progress, "bpe", 0.1 + 0.9 * (double)t.n_tok / o->vocab_size, detail, err)))
                break;
        }
    }
    if (st)
        goto done;
    r.vocab_size = t.n_tok;
    r.merges = t.n_merges;
    for (size_t w = 0; w < t.n_words; w++)
        r.symbols_after += (size_t)t.w_count[w] * (size_t)t.w_nsym[w];
    st = write_json(&t, special, out_path, err);
    if (!st)
        st = pare_report(progress, "bpe", 1.0, "written", err);
    goto done;
oom:
    st = pare_fail(err, PARE_ENOMEM, "BPE training: out of memory (%zu bytes of text)", len);
done:
    if (!st && report)
        *report = r;
    trainer_free(&t);
    free(joined);
    strmap_free(&words);
    strmap_free(&toks);
    free(pairs.slot);
    return st;
}

pare_status pare_bpe_train_file(const char *text_path, const pare_bpe_opts *o, const char *out_path,
                                const pare_progress *progress, pare_bpe_report *report, pare_error *err)
{
    pare_map map;
    pare_status st = pare_map_file(text_path, &map, err);
    if (st)
        return st;
    st = pare_bpe_train((const char *)map.data, map.len, o, out_path, progress, report, err);
    pare_unmap(&map);
    if (st && st != PARE_ECANCELED && st != PARE_ENOMEM && strstr(err->msg, text_path) == NULL)
        pare_wrap(err, "%s", text_path);
    return st;
}

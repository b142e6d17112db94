/* Tokenizers: the public API (tokenizer.h) and its dispatch to the Hugging Face tokenizer.json
 * pipeline (tokenizer_hf_load.c, tokenizer_hf_encode.c, tokenizer_hf_decode.c) and the llama2.c
 * tokenizer.bin (tokenizer_llama2c.c), which match the reference libraries id for id; the tokenizer
 * object, id buffers and the merge table they share. */
#include "tokenizer_internal.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Id buffers
 * ---------------------------------------------------------------------------------------------- */

int ib_reserve(idbuf *b, size_t extra)
{
    void *p = grow_array(b->data, &b->cap, b->len + extra, sizeof(int32_t));
    if (!p)
        return 0;
    b->data = p;
    return 1;
}

int ib_push(idbuf *b, int32_t v)
{
    if (!ib_reserve(b, 1))
        return 0;
    b->data[b->len++] = v;
    return 1;
}

int ib_append(idbuf *b, const int32_t *src, size_t n)
{
    if (!ib_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->data + b->len, src, n * sizeof(int32_t));
    b->len += n;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Merge table: id pairs -> (rank, merged id)
 * ---------------------------------------------------------------------------------------------- */

/* Members are ids or code points, where -1 stands for a stray byte; storing each plus one keeps
 * every pair in [-1, INT32_MAX) clear of PAIR_EMPTY (which only (-2, -2) would map to). */
static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)(a + 1) << 32 | (uint32_t)(b + 1); }

const pair_slot *pairmap_get(const pairmap *m, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    if (!m->n_slots || k == PAIR_EMPTY)
        return NULL;
    size_t mask = m->n_slots - 1;
    size_t s = (size_t)pare_splitmix64_mix(k) & mask;
    for (size_t probes = 0; probes < m->n_slots; probes++, s = (s + 1) & mask) {
        if (m->slots[s].key == k)
            return &m->slots[s];
        if (m->slots[s].key == PAIR_EMPTY)
            return NULL;
    }
    return NULL;
}

int pairmap_init(pairmap *m, size_t expected)
{
    if (expected > SIZE_MAX / 4 / sizeof *m->slots)
        return 0;
    size_t n = 64;
    while (n < expected * 2 + 2)
        n *= 2;
    m->slots = malloc(n * sizeof *m->slots);
    if (!m->slots)
        return 0;
    for (size_t i = 0; i < n; i++)
        m->slots[i].key = PAIR_EMPTY;
    m->n_slots = n;
    m->n = 0;
    return 1;
}

/* The table is sized up front, so this never needs to grow; later merges overwrite earlier ones as
 * the reference's HashMap collection does. Returns 0 when the table is full or the pair has no key. */
int pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id)
{
    uint64_t k = pair_key(a, b);
    if (!m->n_slots || k == PAIR_EMPTY)
        return 0;
    size_t mask = m->n_slots - 1;
    size_t s = (size_t)pare_splitmix64_mix(k) & mask;
    for (size_t probes = 0; m->slots[s].key != PAIR_EMPTY && m->slots[s].key != k; s = (s + 1) & mask)
        if (++probes == m->n_slots)
            return 0;
    if (m->slots[s].key == PAIR_EMPTY)
        m->n++;
    m->slots[s].key = k;
    m->slots[s].rank = rank;
    m->slots[s].new_id = new_id;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * The tokenizer object
 * ---------------------------------------------------------------------------------------------- */

static void hf_free_steps(pare_tokenizer *t)
{
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].pattern);
        free(t->norms[i].content);
    }
    for (size_t i = 0; i < t->n_pretoks; i++)
        split_regex_free(t->pretoks[i].regex);
    for (size_t i = 0; i < t->n_decs; i++) {
        free(t->decs[i].pattern);
        free(t->decs[i].content);
    }
}

pare_tokenizer *pare_tokenizer_retain(pare_tokenizer *tok)
{
    if (tok)
        __atomic_add_fetch(&tok->refs, 1, __ATOMIC_RELAXED);
    return tok;
}

void pare_tokenizer_free(pare_tokenizer *tok)
{
    if (!tok || __atomic_sub_fetch(&tok->refs, 1, __ATOMIC_ACQ_REL) >= 0)
        return;
    free(tok->source);
    strmap_free(&tok->vocab);
    free(tok->id_entry);
    free(tok->id_added);
    free(tok->merges.slots);
    free(tok->merge_new_id);
    free(tok->adjacent_char_pairs.slots);
    free(tok->unk_name);
    for (size_t i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].match);
    }
    free(tok->added);
    hf_free_steps(tok);
    free(tok->prefix_ids.data);
    free(tok->suffix_ids.data);
    free(tok->scores);
    free(tok);
}

int pare_tokenizer_vocab_size(const pare_tokenizer *tok) { return tok ? tok->n_ids : 0; }
int pare_tokenizer_bos_id(const pare_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int pare_tokenizer_eos_id(const pare_tokenizer *tok) { return tok ? tok->eos_id : -1; }
const char *pare_tokenizer_describe(const pare_tokenizer *tok) { return tok ? tok->description : ""; }

const char *piece_of(const pare_tokenizer *t, int32_t id, size_t *len)
{
    if (t->id_added && t->id_added[id] >= 0) {
        const added_token *a = &t->added[t->id_added[id]];
        *len = a->len;
        return a->content;
    }
    int32_t e = t->id_entry[id];
    if (e < 0) {
        *len = 0;
        return NULL;
    }
    *len = t->vocab.key_len[e];
    return t->vocab.keys.data + t->vocab.key_off[e];
}

void init_byte_level_map(pare_tokenizer *t)
{
    int next_extra = 0;
    for (int i = 0; i < BYTE_LEVEL_CHARS; i++)
        t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int32_t cp = printable ? b : 256 + next_extra++;
        t->byte_char_len[b] = (unsigned char)encode_utf8(cp, t->byte_char[b]);
        t->char_byte[cp] = (int16_t)b;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Public entry points
 * ---------------------------------------------------------------------------------------------- */

/* Both encoders keep token positions in int32 (llama2.c's with room for BOS and the dummy prefix). */
#define MAX_ENCODE_BYTES ((size_t)INT32_MAX - 8)

pare_status pare_tokenizer_encode(const pare_tokenizer *tok, const char *text, size_t len, int add_special,
                                  int32_t **ids, size_t *n_ids, pare_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!tok || (!text && len))
        return pare_fail(err, PARE_EINVAL, "tokenizer: encode needs a tokenizer and text");
    if (len > MAX_ENCODE_BYTES)
        return pare_fail(err, PARE_EINVAL, "%s: text of %zu bytes is too long to encode (at most %zu bytes)",
                         tok->source, len, MAX_ENCODE_BYTES);
    idbuf out = {0};
    pare_status st = tok->kind == KIND_HF ? encode_hf(tok, text ? text : "", len, add_special, &out, err)
                                          : encode_llama2c(tok, text ? text : "", len, add_special, &out, err);
    if (st) {
        free(out.data);
        return st;
    }
    if (!out.data && !(out.data = malloc(sizeof(int32_t))))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory while encoding", tok->source);
    *ids = out.data;
    *n_ids = out.len;
    return PARE_OK;
}

pare_status pare_tokenizer_decode(const pare_tokenizer *tok, const int32_t *ids, size_t n_ids, int skip_special,
                                  char **text, size_t *len, pare_error *err)
{
    *text = NULL;
    *len = 0;
    if (!tok || (!ids && n_ids))
        return pare_fail(err, PARE_EINVAL, "tokenizer: decode needs a tokenizer and ids");
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        size_t plen;
        if (id < 0 || id >= tok->n_ids || (tok->kind == KIND_HF && !piece_of(tok, id, &plen)))
            return pare_fail(err, PARE_EINVAL, "%s: id %d at position %zu is not in the vocab (size %d)", tok->source,
                             (int)id, i, tok->n_ids);
    }
    bytebuf out = {0};
    pare_status st = PARE_OK;
    if (!bb_reserve(&out, 0))
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory while decoding", tok->source);
    if (!st)
        st = tok->kind == KIND_HF ? decode_hf(tok, ids, n_ids, skip_special, &out, err)
                                  : decode_llama2c(tok, ids, n_ids, skip_special, &out, err);
    if (st) {
        free(out.data);
        return st;
    }
    *text = out.data;
    *len = out.len;
    return PARE_OK;
}

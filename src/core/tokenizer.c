/* Tokenizers: HF tokenizer.json BPE pipelines and llama2.c tokenizer.bin, matching the reference libraries id for id. */
#include "tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "fileio.h"
#include "rng.h"

/* ------------------------------------------------------------------------------------------------
 * Growable buffers
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} bytebuf;

typedef struct {
    int32_t *data;
    size_t len, cap;
} idbuf;

/* Returns the (possibly moved) array with room for need elements, or NULL leaving data untouched. */
static void *grow_array(void *data, size_t *cap, size_t need, size_t elem)
{
    if (need == 0)
        need = 1; /* so that a successful call always returns a non-NULL array */
    if (need <= *cap)
        return data;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 4 / elem)
            return NULL;
        new_cap *= 2;
    }
    void *p = realloc(data, new_cap * elem);
    if (p)
        *cap = new_cap;
    return p;
}

/* Keeps a NUL after the bytes so buffers can be returned as C strings. */
static int bb_reserve(bytebuf *b, size_t extra)
{
    void *p = grow_array(b->data, &b->cap, b->len + extra + 1, 1);
    if (!p)
        return 0;
    b->data = p;
    return 1;
}

static int bb_append(bytebuf *b, const void *src, size_t n)
{
    if (!bb_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

static int ib_reserve(idbuf *b, size_t extra)
{
    void *p = grow_array(b->data, &b->cap, b->len + extra, sizeof(int32_t));
    if (!p)
        return 0;
    b->data = p;
    return 1;
}

static int ib_push(idbuf *b, int32_t v)
{
    if (!ib_reserve(b, 1))
        return 0;
    b->data[b->len++] = v;
    return 1;
}

static int ib_append(idbuf *b, const int32_t *src, size_t n)
{
    if (!ib_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->data + b->len, src, n * sizeof(int32_t));
    b->len += n;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Hash maps: byte strings -> int32, and id pairs -> (rank, merged id)
 * ---------------------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

typedef struct {
    bytebuf keys;
    size_t *key_off, *key_len;
    uint64_t *hash;
    int32_t *val;
    size_t n, cap;
    int32_t *slots; /* entry index, -1 when empty */
    size_t n_slots; /* a power of two */
} strmap;

static void strmap_free(strmap *m)
{
    free(m->keys.data);
    free(m->key_off);
    free(m->key_len);
    free(m->hash);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int32_t strmap_find(const strmap *m, const char *k, size_t n)
{
    if (!m->n_slots)
        return -1;
    uint64_t h = hash_bytes(k, n);
    size_t mask = m->n_slots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        int32_t e = m->slots[s];
        if (e < 0)
            return -1;
        if (m->hash[e] == h && m->key_len[e] == n && memcmp(m->keys.data + m->key_off[e], k, n) == 0)
            return e;
    }
}

static int strmap_rehash(strmap *m, size_t n_slots)
{
    int32_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots)
        return 0;
    memset(slots, 0xff, n_slots * sizeof *slots);
    size_t mask = n_slots - 1;
    for (size_t e = 0; e < m->n; e++) {
        size_t s = (size_t)m->hash[e] & mask;
        while (slots[s] >= 0)
            s = (s + 1) & mask;
        slots[s] = (int32_t)e;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 1;
}

/* Inserts or overwrites; returns the entry index, or -1 when out of memory. */
static int32_t strmap_put(strmap *m, const char *k, size_t n, int32_t val)
{
    int32_t e = strmap_find(m, k, n);
    if (e >= 0) {
        m->val[e] = val;
        return e;
    }
    if (m->n >= INT32_MAX - 1)
        return -1;
    if ((m->n + 1) * 2 > m->n_slots && !strmap_rehash(m, m->n_slots ? m->n_slots * 2 : 64))
        return -1;
    if (m->n == m->cap) {
        size_t cap = m->cap;
        void *a = grow_array(m->key_off, &cap, m->n + 1, sizeof(size_t));
        if (!a)
            return -1;
        m->key_off = a;
        cap = m->cap;
        if (!(a = grow_array(m->key_len, &cap, m->n + 1, sizeof(size_t))))
            return -1;
        m->key_len = a;
        cap = m->cap;
        if (!(a = grow_array(m->hash, &cap, m->n + 1, sizeof(uint64_t))))
            return -1;
        m->hash = a;
        cap = m->cap;
        if (!(a = grow_array(m->val, &cap, m->n + 1, sizeof(int32_t))))
            return -1;
        m->val = a;
        m->cap = cap;
    }
    size_t off = m->keys.len;
    if (!bb_append(&m->keys, k, n))
        return -1;
    e = (int32_t)m->n++;
    m->key_off[e] = off;
    m->key_len[e] = n;
    m->hash[e] = hash_bytes(k, n);
    m->val[e] = val;
    size_t mask = m->n_slots - 1;
    size_t s = (size_t)m->hash[e] & mask;
    while (m->slots[s] >= 0)
        s = (s + 1) & mask;
    m->slots[s] = e;
    return e;
}

static int32_t strmap_get(const strmap *m, const char *k, size_t n)
{
    int32_t e = strmap_find(m, k, n);
    return e < 0 ? -1 : m->val[e];
}

#define PAIR_EMPTY UINT64_MAX

typedef struct {
    uint64_t key; /* pair_key(left, right); PAIR_EMPTY marks an empty slot */
    int32_t rank, new_id;
} pair_slot;

typedef struct {
    pair_slot *slots;
    size_t n_slots, n;
} pairmap;

/* Members are ids or code points, where -1 stands for a stray byte; storing each plus one keeps
 * every pair in [-1, INT32_MAX) clear of PAIR_EMPTY (which only (-2, -2) would map to). */
static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)(a + 1) << 32 | (uint32_t)(b + 1);
}

static const pair_slot *pairmap_get(const pairmap *m, int32_t a, int32_t b)
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

static int pairmap_init(pairmap *m, size_t expected)
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
static int pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id)
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
 * Merge priority queues (min-heaps on key; the low 32 bits of key hold the left position so that
 * ties go to the leftmost pair, as both reference implementations do)
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
 * UTF-8 and Unicode classes
 * ---------------------------------------------------------------------------------------------- */

/* Scans one character. Valid: returns its length and sets *valid. Invalid: returns the length of
 * the maximal ill-formed subpart (what Rust's from_utf8_lossy replaces with one U+FFFD). */
static size_t utf8_scan(const unsigned char *s, size_t n, int *valid)
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
static int32_t next_char(const unsigned char *s, size_t n, size_t *clen)
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
        return (int32_t)(s[0] & 0x07) << 18 | (int32_t)(s[1] & 0x3F) << 12 | (int32_t)(s[2] & 0x3F) << 6 |
               (s[3] & 0x3F);
    }
}

static size_t encode_utf8(int32_t cp, char *out)
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

static int cp_is_letter(int32_t cp)
{
    if (cp < 0x80)
        return cp >= 0 && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO;
}

static int cp_is_number(int32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Oniguruma's Unicode \s and Rust's char::is_whitespace: the White_Space property. */
static int cp_is_space(int32_t cp)
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
static int cp_is_word(int32_t cp)
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
static int32_t last_char(const unsigned char *s, size_t n, size_t *clen)
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

#define SHOW_MAX 60 /* bytes of the string shown before "..." */

typedef struct {
    char s[4 * (SHOW_MAX + 4) + 4]; /* each byte becomes at most four characters */
} shown;

/* The string with backslashes, control characters and line separators escaped (\n, \xNN, \uXXXX)
 * and invalid UTF-8 bytes as \xNN, cut after about SHOW_MAX bytes, so that a message stays one
 * line. Use it within the call that prints it: show(s, n).s lives until the end of that statement. */
static shown show(const char *str, size_t n)
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

static shown show_z(const char *s) { return show(s, strlen(s)); }

/* ------------------------------------------------------------------------------------------------
 * The tokenizer object
 * ---------------------------------------------------------------------------------------------- */

enum { KIND_HF, KIND_LLAMA2C };
enum { NORM_PREPEND, NORM_REPLACE };
enum { PRE_BYTELEVEL, PRE_METASPACE };
enum { SCHEME_ALWAYS, SCHEME_FIRST, SCHEME_NEVER };
enum { DEC_BYTELEVEL, DEC_METASPACE, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP };

#define MAX_STEPS 16
#define MAX_SEQUENCE_DEPTH 4 /* how deeply Sequence components may nest */
/* GPT-2's bytes_to_unicode maps the 68 bytes that are not printable to 256..323, so every byte's
 * image is a code point below this. */
#define BYTE_LEVEL_CHARS 324

typedef struct {
    int kind;
    char *pattern, *content; /* Prepend uses content only */
    size_t pattern_len, content_len;
} norm_step;

typedef struct {
    int kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    char replacement[8];             /* Metaspace, UTF-8 of one character */
    size_t replacement_len;
    int scheme, split;
} pretok_step;

typedef struct {
    int kind;
    char *pattern, *content; /* Replace; Strip and Metaspace use content as the character */
    size_t pattern_len, content_len;
    int scheme;                     /* Metaspace */
    size_t strip_left, strip_right; /* Strip: how many content characters to drop at each end */
} dec_step;

typedef struct {
    char *content; /* what decoding yields */
    size_t len;
    char *match; /* what is matched: content, normalized when the token is "normalized" */
    size_t match_len;
    int32_t id;
    int single_word, lstrip, rstrip, normalized, special;
} added_token;

struct pare_tokenizer {
    int refs; /* extra owners (cloned models share their tokenizer); freed when it drops below 0 */
    int kind;
    char *source; /* the file it was loaded from, for messages */
    char description[192];
    int n_ids;
    int bos_id, eos_id;

    strmap vocab;      /* model pieces -> id */
    int32_t *id_entry; /* id -> vocab entry, -1 when the model has no such id */
    int32_t *id_added; /* id -> index into added, -1 when not an added token */

    /* Hugging Face BPE */
    pairmap merges;
    int32_t *merge_new_id; /* rank -> merged id */
    pairmap adjacent_char_pairs; /* pairs of characters that sit side by side inside some vocab piece */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;         /* -1 when there is no unk token */
    int unk_missing;        /* unk_token named but absent from the vocab: an error once needed */
    char *unk_name;
    int32_t byte_ids[256];  /* <0xXX> pieces, -1 when absent */
    added_token *added;
    size_t n_added;
    int has_normalized_added;
    unsigned char added_first_byte[2][32]; /* [normalized] bitsets of first bytes, a fast reject */
    norm_step norms[MAX_STEPS];
    size_t n_norms;
    pretok_step pretoks[MAX_STEPS];
    size_t n_pretoks;
    dec_step decs[MAX_STEPS];
    size_t n_decs;
    int has_decoder;
    idbuf prefix_ids, suffix_ids; /* what the post-processor wraps a sequence with */
    char byte_char[256][2];       /* GPT-2's bytes_to_unicode, as UTF-8 */
    unsigned char byte_char_len[256];
    int16_t char_byte[BYTE_LEVEL_CHARS]; /* the inverse, -1 where a code point is no byte's image */

    /* llama2.c */
    float *scores;
    int32_t space_id; /* the ' ' piece run.c uses as the dummy prefix, -1 when absent */
};

static void hf_free_steps(pare_tokenizer *t)
{
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].pattern);
        free(t->norms[i].content);
    }
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

static const char *piece_of(const pare_tokenizer *t, int32_t id, size_t *len)
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

static void init_byte_level_map(pare_tokenizer *t)
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
 * tokenizer.json loading
 * ---------------------------------------------------------------------------------------------- */

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int json_flag(json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A single-character string field (replacement, Strip content). */
static pare_status parse_single_char(const char *path, const char *where, json_t *obj, const char *key, char *out,
                                     size_t *out_len, pare_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no string '%s'", path, where, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), clen;
    if (n == 0 || n > 4 || next_char((const unsigned char *)s, n, &clen) < 0 || clen != n)
        return pare_fail(err, PARE_EFORMAT, "%s: %s '%s' must be exactly one character", path, where, key);
    memcpy(out, s, n);
    *out_len = n;
    return PARE_OK;
}

static pare_status parse_scheme(const char *path, const char *where, json_t *obj, int *scheme, pare_error *err)
{
    json_t *v = json_object_get(obj, "prepend_scheme");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "always"))
            *scheme = SCHEME_ALWAYS;
        else if (!strcmp(s, "first"))
            *scheme = SCHEME_FIRST;
        else if (!strcmp(s, "never"))
            *scheme = SCHEME_NEVER;
        else
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s prepend_scheme '%s' is not supported", path, where,
                             show(s, json_string_length(v)).s);
        return PARE_OK;
    }
    /* Files written before prepend_scheme existed carry add_prefix_space instead. */
    *scheme = json_flag(obj, "add_prefix_space", 1) ? SCHEME_ALWAYS : SCHEME_NEVER;
    return PARE_OK;
}

/* Reads {"String": "..."} patterns; regex patterns are not supported. */
static pare_status parse_string_pattern(const char *path, const char *where, json_t *obj, char **pat,
                                        size_t *pat_len, char **content, size_t *content_len, pare_error *err)
{
    json_t *pattern = json_object_get(obj, "pattern");
    json_t *s = json_object_get(pattern, "String");
    json_t *c = json_object_get(obj, "content");
    if (!json_is_string(s)) {
        if (json_object_get(pattern, "Regex"))
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s with a Regex pattern is not supported; supported: String",
                             path, where);
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no pattern.String", path, where);
    }
    if (!json_is_string(c))
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no string 'content'", path, where);
    if (json_string_length(s) == 0)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s with an empty pattern is not supported", path, where);
    *pat = dup_bytes(json_string_value(s), json_string_length(s));
    *content = dup_bytes(json_string_value(c), json_string_length(c));
    if (!*pat || !*content)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    *pat_len = json_string_length(s);
    *content_len = json_string_length(c);
    return PARE_OK;
}

static const char *type_of(json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "(none)";
}

typedef pare_status (*component_parser)(const char *path, pare_tokenizer *t, json_t *obj, int depth, pare_error *err);

/* A Sequence component (what: "normalizer", ...): parses each item of its list_key list in order. */
static pare_status parse_sequence(const char *path, pare_tokenizer *t, json_t *obj, int depth, const char *what,
                                  const char *list_key, component_parser parse, pare_error *err)
{
    if (depth >= MAX_SEQUENCE_DEPTH)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s Sequence is nested too deep (more than %d levels)", path,
                         what, MAX_SEQUENCE_DEPTH);
    json_t *list = json_object_get(obj, list_key);
    if (!json_is_array(list))
        return pare_fail(err, PARE_EFORMAT, "%s: %s Sequence has no '%s' list", path, what, list_key);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        pare_status st = parse(path, t, item, depth + 1, err);
        if (st)
            return st;
    }
    return PARE_OK;
}

static pare_status parse_normalizer(const char *path, pare_tokenizer *t, json_t *n, int depth, pare_error *err)
{
    if (json_is_null(n) || !n)
        return PARE_OK;
    const char *type = type_of(n);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, n, depth, "normalizer", "normalizers", parse_normalizer, err);
    if (t->n_norms == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d normalizers", path, MAX_STEPS);
    norm_step *s = &t->norms[t->n_norms];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p))
            return pare_fail(err, PARE_EFORMAT, "%s: normalizer Prepend has no string 'prepend'", path);
        s->kind = NORM_PREPEND;
        s->content = dup_bytes(json_string_value(p), json_string_length(p));
        s->content_len = json_string_length(p);
        t->n_norms++;
        if (!s->content)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        return PARE_OK;
    }
    if (!strcmp(type, "Replace")) {
        s->kind = NORM_REPLACE;
        t->n_norms++;
        return parse_string_pattern(path, "normalizer Replace", n, &s->pattern, &s->pattern_len, &s->content,
                                    &s->content_len, err);
    }
    return pare_fail(err, PARE_EUNSUPPORTED,
                     "%s: normalizer type '%s' is not supported; supported: Sequence, Prepend, Replace", path,
                     show_z(type).s);
}

static pare_status parse_pretokenizer(const char *path, pare_tokenizer *t, json_t *p, int depth, pare_error *err)
{
    if (json_is_null(p) || !p)
        return PARE_OK;
    const char *type = type_of(p);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, p, depth, "pre_tokenizer", "pretokenizers", parse_pretokenizer, err);
    if (t->n_pretoks == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d pre-tokenizers", path, MAX_STEPS);
    pretok_step *s = &t->pretoks[t->n_pretoks];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "ByteLevel")) {
        s->kind = PRE_BYTELEVEL;
        s->add_prefix_space = json_flag(p, "add_prefix_space", 1);
        s->use_regex = json_flag(p, "use_regex", 1);
        t->n_pretoks++;
        return PARE_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        s->kind = PRE_METASPACE;
        pare_status st = parse_single_char(path, "pre_tokenizer Metaspace", p, "replacement", s->replacement,
                                           &s->replacement_len, err);
        if (!st)
            st = parse_scheme(path, "pre_tokenizer Metaspace", p, &s->scheme, err);
        s->split = json_flag(p, "split", 1);
        t->n_pretoks++;
        return st;
    }
    return pare_fail(err, PARE_EUNSUPPORTED,
                     "%s: pre_tokenizer type '%s' is not supported; supported: ByteLevel, Metaspace, Sequence", path,
                     show_z(type).s);
}

static pare_status parse_decoder(const char *path, pare_tokenizer *t, json_t *d, int depth, pare_error *err)
{
    if (json_is_null(d) || !d)
        return PARE_OK;
    t->has_decoder = 1;
    const char *type = type_of(d);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, d, depth, "decoder", "decoders", parse_decoder, err);
    if (t->n_decs == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d decoders", path, MAX_STEPS);
    dec_step *s = &t->decs[t->n_decs];
    memset(s, 0, sizeof *s);
    pare_status st = PARE_OK;
    if (!strcmp(type, "ByteLevel")) {
        s->kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        s->kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        s->kind = DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        s->kind = DEC_REPLACE;
        st = parse_string_pattern(path, "decoder Replace", d, &s->pattern, &s->pattern_len, &s->content,
                                  &s->content_len, err);
    } else if (!strcmp(type, "Metaspace") || !strcmp(type, "Strip")) {
        char c[8];
        size_t clen;
        int is_strip = !strcmp(type, "Strip");
        s->kind = is_strip ? DEC_STRIP : DEC_METASPACE;
        st = parse_single_char(path, is_strip ? "decoder Strip" : "decoder Metaspace", d,
                               is_strip ? "content" : "replacement", c, &clen, err);
        if (!st) {
            s->content = dup_bytes(c, clen);
            s->content_len = clen;
            if (!s->content)
                st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        }
        if (!st && is_strip) {
            json_int_t a = json_integer_value(json_object_get(d, "start"));
            json_int_t b = json_integer_value(json_object_get(d, "stop"));
            if (a < 0 || b < 0)
                st = pare_fail(err, PARE_EFORMAT, "%s: decoder Strip has negative start/stop", path);
            s->strip_left = (size_t)a;
            s->strip_right = (size_t)b;
        } else if (!st) {
            st = parse_scheme(path, "decoder Metaspace", d, &s->scheme, err);
        }
    } else {
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: decoder type '%s' is not supported; supported: ByteLevel, Metaspace, Replace, "
                         "ByteFallback, Fuse, Strip, Sequence",
                         path, show_z(type).s);
    }
    t->n_decs++;
    return st;
}

static pare_status parse_post_processor(const char *path, pare_tokenizer *t, json_t *p, int depth, pare_error *err)
{
    if (json_is_null(p) || !p)
        return PARE_OK;
    const char *type = type_of(p);
    if (!strcmp(type, "ByteLevel"))
        return PARE_OK; /* only trims offsets */
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, p, depth, "post_processor", "processors", parse_post_processor, err);
    if (strcmp(type, "TemplateProcessing"))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: post_processor type '%s' is not supported; supported: TemplateProcessing, ByteLevel, "
                         "Sequence",
                         path, show_z(type).s);
    json_t *single = json_object_get(p, "single");
    json_t *specials = json_object_get(p, "special_tokens");
    if (!json_is_array(single))
        return pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing has no 'single' list", path);
    /* An outer template wraps what the inner ones produced. */
    idbuf before = {0}, after = {0};
    int seen_sequence_a = 0;
    pare_status st = PARE_OK;
    size_t i;
    json_t *item;
    json_array_foreach(single, i, item) {
        json_t *seq = json_object_get(item, "Sequence");
        json_t *sp = json_object_get(item, "SpecialToken");
        if (seq) {
            const char *seq_id = json_string_value(json_object_get(seq, "id"));
            if (!seq_id || strcmp(seq_id, "A") || seen_sequence_a) {
                st = pare_fail(err, PARE_EUNSUPPORTED, "%s: TemplateProcessing single template must hold sequence A once",
                               path);
                break;
            }
            seen_sequence_a = 1;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing special token '%s' has no ids", path,
                           name ? show_z(name).s : "(none)");
            break;
        }
        size_t j;
        json_t *idv;
        json_array_foreach(ids, j, idv) {
            json_int_t id = json_integer_value(idv);
            if (!json_is_integer(idv) || id < 0 || id > INT32_MAX) {
                st = pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing special token '%s' has a bad id", path,
                               show_z(name).s);
                break;
            }
            if (!ib_push(seen_sequence_a ? &after : &before, (int32_t)id)) {
                st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
                break;
            }
        }
        if (st)
            break;
    }
    if (!st && !seen_sequence_a)
        st = pare_fail(err, PARE_EUNSUPPORTED, "%s: TemplateProcessing single template has no sequence A", path);
    if (!st) {
        idbuf prefix = {0};
        if (!ib_append(&prefix, before.data, before.len) ||
            !ib_append(&prefix, t->prefix_ids.data, t->prefix_ids.len) ||
            !ib_append(&t->suffix_ids, after.data, after.len)) {
            free(prefix.data);
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        } else {
            free(t->prefix_ids.data);
            t->prefix_ids = prefix;
        }
    }
    free(before.data);
    free(after.data);
    return st;
}

/* Runs the normalizer chain on s into out (used for normalized added tokens and for each piece). */
static int apply_normalizers(const pare_tokenizer *t, const char *s, size_t n, bytebuf *out, bytebuf *tmp)
{
    out->len = 0;
    if (!bb_append(out, s, n))
        return 0;
    for (size_t k = 0; k < t->n_norms; k++) {
        const norm_step *ns = &t->norms[k];
        tmp->len = 0;
        if (!bb_reserve(tmp, 0))
            return 0;
        if (ns->kind == NORM_PREPEND) {
            if (out->len == 0)
                continue; /* the reference prepends only to non-empty strings */
            if (!bb_append(tmp, ns->content, ns->content_len) || !bb_append(tmp, out->data, out->len))
                return 0;
        } else {
            size_t i = 0;
            while (i < out->len) {
                if (out->len - i >= ns->pattern_len && memcmp(out->data + i, ns->pattern, ns->pattern_len) == 0) {
                    if (!bb_append(tmp, ns->content, ns->content_len))
                        return 0;
                    i += ns->pattern_len;
                } else {
                    if (!bb_append(tmp, out->data + i, 1))
                        return 0;
                    i++;
                }
            }
        }
        bytebuf swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return 1;
}

static pare_status parse_added_tokens(const char *path, pare_tokenizer *t, json_t *list, pare_error *err)
{
    if (!list || json_is_null(list))
        return PARE_OK;
    if (!json_is_array(list))
        return pare_fail(err, PARE_EFORMAT, "%s: 'added_tokens' is not a list", path);
    size_t n = json_array_size(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        json_t *content = json_object_get(item, "content");
        json_t *id = json_object_get(item, "id");
        if (!json_is_string(content) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24))
            return pare_fail(err, PARE_EFORMAT, "%s: added token %zu needs a string 'content' and an id in [0, 2^24)",
                             path, i);
        if (json_string_length(content) == 0)
            continue; /* nothing to match */
        added_token *a = &t->added[t->n_added++];
        a->len = json_string_length(content);
        a->content = dup_bytes(json_string_value(content), a->len);
        if (!a->content)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        a->id = (int32_t)json_integer_value(id);
        a->single_word = json_flag(item, "single_word", 0);
        a->lstrip = json_flag(item, "lstrip", 0);
        a->rstrip = json_flag(item, "rstrip", 0);
        a->normalized = json_flag(item, "normalized", 0);
        a->special = json_flag(item, "special", 0);
        if (a->id >= t->n_ids)
            t->n_ids = a->id + 1;
    }
    return PARE_OK;
}

/* Sets up the matching forms of added tokens once the normalizer is known. */
static pare_status prepare_added_tokens(const char *path, pare_tokenizer *t, pare_error *err)
{
    bytebuf out = {0}, tmp = {0};
    pare_status st = PARE_OK;
    for (size_t i = 0; i < t->n_added && !st; i++) {
        added_token *a = &t->added[i];
        if (a->normalized && t->n_norms) {
            if (!apply_normalizers(t, a->content, a->len, &out, &tmp)) {
                st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
                break;
            }
            a->match = dup_bytes(out.data, out.len);
            a->match_len = out.len;
        } else {
            a->match = dup_bytes(a->content, a->len);
            a->match_len = a->len;
        }
        if (!a->match) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
            break;
        }
        int normalized = a->normalized ? 1 : 0;
        if (a->match_len) {
            unsigned char b = (unsigned char)a->match[0];
            t->added_first_byte[normalized][b >> 3] |= (unsigned char)(1u << (b & 7));
        }
        if (a->normalized)
            t->has_normalized_added = 1;
    }
    free(out.data);
    free(tmp.data);
    return st;
}

static int32_t added_by_content(const pare_tokenizer *t, const char *s)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s))
            return t->added[i].id;
    return -1;
}

static int32_t lookup_named(const pare_tokenizer *t, const char *s)
{
    int32_t id = added_by_content(t, s);
    return id >= 0 ? id : strmap_get(&t->vocab, s, strlen(s));
}

static pare_status parse_merges(const char *path, pare_tokenizer *t, json_t *merges, pare_error *err)
{
    if (!json_is_array(merges))
        return pare_fail(err, PARE_EFORMAT, "%s: model.merges is not a list", path);
    size_t n = json_array_size(merges);
    if (n >= INT32_MAX)
        return pare_fail(err, PARE_EFORMAT, "%s: too many merges", path);
    t->merge_new_id = malloc((n ? n : 1) * sizeof(int32_t));
    if (!t->merge_new_id || !pairmap_init(&t->merges, n))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for %zu merges", path, n);
    bytebuf joined = {0};
    pare_status st = PARE_OK;
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t alen, blen;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = memchr(a, ' ', json_string_length(m));
            if (!sp || memchr(sp + 1, ' ', json_string_length(m) - (size_t)(sp + 1 - a))) {
                st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu '%s' is not two space-separated pieces", path, i,
                               show(a, json_string_length(m)).s);
                break;
            }
            alen = (size_t)(sp - a);
            b = sp + 1;
            blen = json_string_length(m) - alen - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            alen = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            blen = json_string_length(json_array_get(m, 1));
        } else {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            break;
        }
        int32_t ida = strmap_get(&t->vocab, a, alen), idb = strmap_get(&t->vocab, b, blen);
        joined.len = 0;
        if (!bb_append(&joined, a, alen) || !bb_append(&joined, b, blen)) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
            break;
        }
        int32_t idm = strmap_get(&t->vocab, joined.data, joined.len);
        if (ida < 0 || idb < 0 || idm < 0) {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu uses a piece missing from the vocab: '%s'", path, i,
                           ida < 0 ? show(a, alen).s : idb < 0 ? show(b, blen).s : show(joined.data, joined.len).s);
            break;
        }
        if (!pairmap_put(&t->merges, ida, idb, (int32_t)i, idm)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu does not fit the merge table", path, i);
            break;
        }
        t->merge_new_id[i] = idm;
    }
    free(joined.data);
    return st;
}

/* Every merge produces a vocab piece, so a merge can only join two characters that sit side by side
 * in some piece. Collecting those pairs lets a long word be cut where no merge can ever reach
 * across, which keeps the merge queue small without changing the result. */
static pare_status build_adjacent_char_pairs(const char *path, pare_tokenizer *t, pare_error *err)
{
    if (!pairmap_init(&t->adjacent_char_pairs, t->vocab.keys.len))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    for (size_t e = 0; e < t->vocab.n; e++) {
        const unsigned char *s = (const unsigned char *)t->vocab.keys.data + t->vocab.key_off[e];
        size_t n = t->vocab.key_len[e], clen;
        int32_t prev = -2;
        for (size_t i = 0; i < n; i += clen) {
            int32_t cp = next_char(s + i, n - i, &clen);
            if (prev != -2 && !pairmap_put(&t->adjacent_char_pairs, prev, cp, 0, 0))
                return pare_fail(err, PARE_EFORMAT, "%s: vocab entry %zu does not fit the character pair table", path,
                                 e);
            prev = cp;
        }
    }
    return PARE_OK;
}

static pare_status parse_bpe_model(const char *path, pare_tokenizer *t, json_t *model, pare_error *err)
{
    json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return pare_fail(err, PARE_EFORMAT, "%s: model.type is not a string", path);
    if (type && strcmp(json_string_value(type), "BPE"))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: model type '%s' is not supported; supported: BPE", path,
                         show(json_string_value(type), json_string_length(type)).s);
    if (!type && !json_object_get(model, "merges"))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: model without a type or merges is not supported; supported: BPE",
                         path);
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: BPE dropout is not supported", path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(model, affixes[k]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: BPE %s is not supported", path, affixes[k]);
    }
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return pare_fail(err, PARE_EFORMAT, "%s: model.vocab is not an object", path);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= (1 << 24))
            return pare_fail(err, PARE_EFORMAT, "%s: vocab entry '%s' has no id in [0, 2^24)", path, show_z(key).s);
        if (strmap_put(&t->vocab, key, strlen(key), (int32_t)id) < 0)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        if (id >= t->n_ids)
            t->n_ids = (int)id + 1;
    }
    t->byte_fallback = json_flag(model, "byte_fallback", 0);
    t->fuse_unk = json_flag(model, "fuse_unk", 0);
    t->ignore_merges = json_flag(model, "ignore_merges", 0);
    t->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        t->unk_name = dup_bytes(json_string_value(unk), json_string_length(unk));
        if (!t->unk_name)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        t->unk_id = strmap_get(&t->vocab, json_string_value(unk), json_string_length(unk));
        t->unk_missing = t->unk_id < 0;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = strmap_get(&t->vocab, name, 6);
    }
    pare_status st = parse_merges(path, t, json_object_get(model, "merges"), err);
    return st ? st : build_adjacent_char_pairs(path, t, err);
}

static void describe_hf(pare_tokenizer *t)
{
    size_t used = (size_t)snprintf(t->description, sizeof t->description, "BPE %d tokens", t->n_ids);
    for (size_t i = 0; i < t->n_pretoks && used < sizeof t->description; i++)
        used += (size_t)snprintf(t->description + used, sizeof t->description - used, ", %s",
                                 t->pretoks[i].kind == PRE_BYTELEVEL ? "ByteLevel" : "Metaspace");
    if (t->n_norms && used < sizeof t->description) {
        used += (size_t)snprintf(t->description + used, sizeof t->description - used, ", normalizer ");
        for (size_t i = 0; i < t->n_norms && used < sizeof t->description; i++)
            used += (size_t)snprintf(t->description + used, sizeof t->description - used, "%s%s", i ? "+" : "",
                                     t->norms[i].kind == NORM_PREPEND ? "Prepend" : "Replace");
    }
    if (t->byte_fallback && used < sizeof t->description)
        snprintf(t->description + used, sizeof t->description - used, ", byte fallback");
}

pare_status pare_tokenizer_load_hf(const char *json_path, pare_tokenizer **out, pare_error *err)
{
    *out = NULL;
    char *text;
    size_t len;
    pare_status st = pare_read_file(json_path, &text, &len, err);
    if (st)
        return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root)
        return pare_fail(err, PARE_EFORMAT, "%s: invalid JSON at line %d column %d: %s", json_path, jerr.line,
                         jerr.column, show_z(jerr.text).s);
    pare_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        json_decref(root);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
    }
    t->kind = KIND_HF;
    init_byte_level_map(t);
    if (!(t->source = dup_bytes(json_path, strlen(json_path)))) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(root) || !json_is_object(model)) {
        st = pare_fail(err, PARE_EFORMAT, "%s: no 'model' object; not a tokenizer.json", json_path);
        goto done;
    }
    if ((st = parse_bpe_model(json_path, t, model, err)))
        goto done;
    if ((st = parse_added_tokens(json_path, t, json_object_get(root, "added_tokens"), err)))
        goto done;
    if ((st = parse_normalizer(json_path, t, json_object_get(root, "normalizer"), 0, err)))
        goto done;
    if ((st = parse_pretokenizer(json_path, t, json_object_get(root, "pre_tokenizer"), 0, err)))
        goto done;
    if ((st = parse_post_processor(json_path, t, json_object_get(root, "post_processor"), 0, err)))
        goto done;
    if ((st = parse_decoder(json_path, t, json_object_get(root, "decoder"), 0, err)))
        goto done;
    if ((st = prepare_added_tokens(json_path, t, err)))
        goto done;
    if (t->n_ids == 0) {
        st = pare_fail(err, PARE_EFORMAT, "%s: the vocab is empty", json_path);
        goto done;
    }
    t->id_entry = malloc((size_t)t->n_ids * sizeof(int32_t));
    t->id_added = malloc((size_t)t->n_ids * sizeof(int32_t));
    if (!t->id_entry || !t->id_added) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
        goto done;
    }
    memset(t->id_entry, 0xff, (size_t)t->n_ids * sizeof(int32_t));
    memset(t->id_added, 0xff, (size_t)t->n_ids * sizeof(int32_t));
    for (size_t e = 0; e < t->vocab.n; e++)
        t->id_entry[t->vocab.val[e]] = (int32_t)e;
    for (size_t i = 0; i < t->n_added; i++)
        t->id_added[t->added[i].id] = (int32_t)i;
    for (size_t i = 0; i < t->prefix_ids.len + t->suffix_ids.len; i++) {
        int32_t id = i < t->prefix_ids.len ? t->prefix_ids.data[i] : t->suffix_ids.data[i - t->prefix_ids.len];
        size_t plen;
        if (id >= t->n_ids || !piece_of(t, id, &plen)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: post-processor id %d has no token in the vocab (%d ids)", json_path,
                           (int)id, t->n_ids);
            goto done;
        }
    }
    t->bos_id = t->prefix_ids.len ? t->prefix_ids.data[0] : lookup_named(t, "<s>");
    if (t->bos_id < 0)
        t->bos_id = lookup_named(t, "<|begin_of_text|>");
    t->eos_id = -1;
    const char *eos_names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>"};
    for (int k = 0; k < 3 && t->eos_id < 0; k++)
        t->eos_id = lookup_named(t, eos_names[k]);
    describe_hf(t);
done:
    json_decref(root);
    if (st) {
        pare_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PARE_OK;
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

static pare_status pretokenize(encode_ctx *c, size_t pretok_index, const char *s, size_t n, int at_origin)
{
    const pare_tokenizer *t = c->t;
    if (n == 0)
        return PARE_OK;
    if (pretok_index == t->n_pretoks)
        return encode_word(c, s, n);
    const pretok_step *p = &t->pretoks[pretok_index];
    bytebuf *a = &c->pretok_buf[pretok_index][0], *b = &c->pretok_buf[pretok_index][1];
    a->len = 0;
    if (p->kind == PRE_METASPACE) {
        int starts_with_space = s[0] == ' ' ||
                                (n >= p->replacement_len && memcmp(s, p->replacement, p->replacement_len) == 0);
        int prepend = !starts_with_space &&
                      (p->scheme == SCHEME_ALWAYS || (p->scheme == SCHEME_FIRST && at_origin));
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
        return pare_fail(c->err, PARE_EINVAL, "%s: a pre-tokenized word of %zu bytes is too long to encode",
                         t->source, n);
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
#define MIN_CHUNK 256

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
        if (!apply_normalizers(t, s, n, &c->norm, &c->norm_tmp))
            return oom(c);
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

static pare_status encode_hf(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
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

/* ------------------------------------------------------------------------------------------------
 * Hugging Face decoding: a list of token strings passed through the decoder steps
 * ---------------------------------------------------------------------------------------------- */

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
static int byte_piece(const char *s, size_t n)
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
            for (size_t k = 0; k < d->strip_right && stop >= start + cl && !memcmp(s + stop - cl, d->content, cl);
                 k++)
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

static pare_status decode_hf(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special,
                             bytebuf *result, pare_error *err)
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

static pare_status encode_llama2c(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
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
            st = pare_fail(err, PARE_EFORMAT, "%s: the llama2.c vocab has no ' ' piece for the dummy prefix",
                           t->source);
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
                    st = pare_fail(err, PARE_EFORMAT, "%s: byte fallback id %d is outside the vocab (%d)",
                                   t->source, (int)b, t->n_ids);
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

static pare_status decode_llama2c(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special,
                                  bytebuf *result, pare_error *err)
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
            return pare_fail(err, PARE_EINVAL, "%s: id %d at position %zu is not in the vocab (size %d)",
                             tok->source, (int)id, i, tok->n_ids);
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

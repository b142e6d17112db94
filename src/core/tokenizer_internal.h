/* Declarations shared by the tokenizer files, private to them: the tokenizer object, id buffers and
 * merge tables (tokenizer.c), UTF-8 and message helpers (tokenizer_text.c), and what the loaders,
 * encoders and decoders call across files (tokenizer_hf_load.c, tokenizer_hf_encode.c,
 * tokenizer_hf_decode.c, tokenizer_llama2c.c). */
#ifndef PARE_TOKENIZER_INTERNAL_H
#define PARE_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strtable.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------------------------------------
 * Id buffers and the merge table (tokenizer.c)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int32_t *data;
    size_t len, cap;
} idbuf;

int ib_reserve(idbuf *b, size_t extra);
int ib_push(idbuf *b, int32_t v);
int ib_append(idbuf *b, const int32_t *src, size_t n);

#define PAIR_EMPTY UINT64_MAX

typedef struct {
    uint64_t key; /* pair_key(left, right); PAIR_EMPTY marks an empty slot */
    int32_t rank, new_id;
} pair_slot;

typedef struct {
    pair_slot *slots;
    size_t n_slots, n;
} pairmap;

/* The merge of (a, b), or NULL. */
const pair_slot *pairmap_get(const pairmap *m, int32_t a, int32_t b);
/* A table for about expected pairs, sized once; 0 when out of memory. */
int pairmap_init(pairmap *m, size_t expected);
/* Later merges overwrite earlier ones; 0 when the table is full or the pair has no key. */
int pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id);

/* ------------------------------------------------------------------------------------------------
 * UTF-8, Unicode classes and strings in messages (tokenizer_text.c)
 * ---------------------------------------------------------------------------------------------- */

/* Scans one character: its length, *valid set when it is valid UTF-8 (else the length of the
 * invalid sequence). */
size_t utf8_scan(const unsigned char *s, size_t n, int *valid);
/* The code point of the character at s (-1 for a stray byte) and its length. */
int32_t next_char(const unsigned char *s, size_t n, size_t *clen);
size_t encode_utf8(int32_t cp, char *out);
int cp_is_letter(int32_t cp);
int cp_is_number(int32_t cp);
int cp_is_space(int32_t cp);
int cp_is_word(int32_t cp);
/* Code point and length of the last character of s[0..n); a stray byte counts as one character. */
int32_t last_char(const unsigned char *s, size_t n, size_t *clen);

#define SHOW_MAX 60 /* bytes of the string shown before "..." */

typedef struct {
    char s[4 * (SHOW_MAX + 4) + 4]; /* each byte becomes at most four characters */
} shown;

/* A file's string escaped and cut for a one-line message; show(s, n).s lives until the end of the
 * statement that prints it. */
shown show(const char *str, size_t n);
shown show_z(const char *s);

/* ------------------------------------------------------------------------------------------------
 * The tokenizer object (tokenizer.c)
 * ---------------------------------------------------------------------------------------------- */

enum { KIND_HF, KIND_LLAMA2C };
enum { NORM_PREPEND, NORM_REPLACE, NORM_NFC };
enum { PRE_BYTELEVEL, PRE_METASPACE, PRE_SPLIT };
/* Split's behavior: what becomes of the matched delimiters (tokenizers' SplitDelimiterBehavior) */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_WITH_PREVIOUS, SPLIT_MERGED_WITH_NEXT, SPLIT_CONTIGUOUS };
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

/* ------------------------------------------------------------------------------------------------
 * Split patterns (tokenizer_regex.c): PCRE2 behind these calls, so no other file sees pcre2.h
 * ---------------------------------------------------------------------------------------------- */

typedef struct split_regex split_regex;

typedef struct {
    struct {
        size_t start, end;
    } * data;
    size_t len, cap;
} split_match_list;

/* Compiles a Split pattern (an Oniguruma regex, or a literal string when literal != 0); an invalid
 * one is a PARE_EFORMAT error naming path and the pattern. */
pare_status split_regex_compile(const char *path, const char *pattern, size_t len, int literal, split_regex **out,
                                pare_error *err);
void split_regex_free(split_regex *r);
/* Scratch for matching, one per encoding call (the compiled pattern is shared between threads). */
void *split_regex_match_data(void);
void split_regex_match_data_free(void *match_data);
/* Every match in s[0..n), in order, as Hugging Face tokenizers finds them; 1 on success, 0 out of
 * memory, -1 when the matcher fails (e.g. its match limit). */
int split_regex_find_all(const split_regex *r, void *match_data, const char *s, size_t n, split_match_list *matches);

typedef struct {
    int kind;
    split_regex *regex;              /* Split */
    int behavior, invert;            /* Split */
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
    int32_t *merge_new_id;       /* rank -> merged id */
    pairmap adjacent_char_pairs; /* pairs of characters that sit side by side inside some vocab piece */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;  /* -1 when there is no unk token */
    int unk_missing; /* unk_token named but absent from the vocab: an error once needed */
    char *unk_name;
    int32_t byte_ids[256]; /* <0xXX> pieces, -1 when absent */
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

/* The piece of id (an added token's content or the vocab's key), NULL when the model has none. */
const char *piece_of(const pare_tokenizer *t, int32_t id, size_t *len);
/* GPT-2's bytes_to_unicode and its inverse. */
void init_byte_level_map(pare_tokenizer *t);

/* ------------------------------------------------------------------------------------------------
 * Across the loaders, encoders and decoders
 * ---------------------------------------------------------------------------------------------- */

/* tokenizer_hf_load.c */
char *dup_bytes(const char *s, size_t n);
pare_status build_adjacent_char_pairs(const char *path, pare_tokenizer *t, pare_error *err);

/* tokenizer_hf_encode.c */
/* Words are cut into chunks of at least this many bytes where no merge can cross (both encoders). */
#define MIN_CHUNK 256
/* Runs the normalizer chain on s into out, capped relative to n; path names the tokenizer in errors. */
pare_status apply_normalizers(const pare_tokenizer *t, const char *path, const char *s, size_t n, bytebuf *out,
                              bytebuf *tmp, pare_error *err);
pare_status encode_hf(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
                      pare_error *err);

/* tokenizer_hf_decode.c */
/* "<0xXX>" pieces; returns the byte or -1. */
int byte_piece(const char *s, size_t n);
pare_status decode_hf(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, bytebuf *result,
                      pare_error *err);

/* tokenizer_llama2c.c */
pare_status encode_llama2c(const pare_tokenizer *t, const char *text, size_t len, int add_special, idbuf *out,
                           pare_error *err);
pare_status decode_llama2c(const pare_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, bytebuf *result,
                           pare_error *err);

#endif

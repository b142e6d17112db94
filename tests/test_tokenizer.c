/* Tokenizer tests: exact agreement with the Hugging Face reference ids and llama2.c's encoder, round trips, bad input. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <utf8proc.h>

#include "core/fileio.h"
#include "core/tokenizer.h"
#include "harness.h"
#include "refdata.h"

void suite_tokenizer(void);

static pare_tokenizer *load_hf_model(const char *model)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/tokenizer.json", model);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = pare_tokenizer_load_hf(shared_path(rel), &tok, &err);
    CHECKF(st == PARE_OK, "loading %s: %s", rel, err.msg);
    return st == PARE_OK ? tok : NULL;
}

/* BOS and EOS ids, the vocabulary size (unless vocab is 0) and a word that describe() must contain
 * (unless NULL). */
static void check_info(const pare_tokenizer *tok, int bos, int eos, int vocab, const char *describes)
{
    if (!tok)
        return;
    CHECKF(pare_tokenizer_bos_id(tok) == bos, "bos id %d, want %d", pare_tokenizer_bos_id(tok), bos);
    CHECKF(pare_tokenizer_eos_id(tok) == eos, "eos id %d, want %d", pare_tokenizer_eos_id(tok), eos);
    CHECKF(!vocab || pare_tokenizer_vocab_size(tok) == vocab, "vocab size %d, want %d", pare_tokenizer_vocab_size(tok),
           vocab);
    CHECKF(!describes || strstr(pare_tokenizer_describe(tok), describes), "\"%s\" does not mention %s",
           pare_tokenizer_describe(tok), describes);
}

/* Writes json to path and loads it as a tokenizer.json. */
static pare_status load_hf_text(const char *path, const char *json, pare_tokenizer **tok, pare_error *err)
{
    CHECK(write_bytes(path, json, strlen(json)) == 0);
    return pare_tokenizer_load_hf(path, tok, err);
}

static int32_t *encode(const pare_tokenizer *tok, const char *text, size_t len, int add_special, size_t *n)
{
    int32_t *ids = NULL;
    pare_error err = {0};
    pare_status st = pare_tokenizer_encode(tok, text, len, add_special, &ids, n, &err);
    CHECKF(st == PARE_OK, "encode: %s", err.msg);
    return ids;
}

static char *decode(const pare_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, size_t *len)
{
    char *text = NULL;
    pare_error err = {0};
    pare_status st = pare_tokenizer_decode(tok, ids, n, skip_special, &text, len, &err);
    CHECKF(st == PARE_OK, "decode: %s", err.msg);
    return text;
}

static void print_ids(char *buf, size_t cap, const int32_t *ids, size_t from, size_t to)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = from; i < to && used + 12 < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%d", i > from ? " " : "", (int)ids[i]);
}

/* Compares id sequences; on a mismatch reports its position with the ids and decoded text around it. */
static void check_same_ids(const pare_tokenizer *tok, const char *what, const int32_t *want, size_t n_want,
                           const int32_t *got, size_t n_got)
{
    size_t i = 0;
    while (i < n_want && i < n_got && want[i] == got[i])
        i++;
    if (i == n_want && i == n_got)
        return;
    size_t from = i > 5 ? i - 5 : 0;
    size_t to_w = i + 6 < n_want ? i + 6 : n_want, to_g = i + 6 < n_got ? i + 6 : n_got;
    char w[160], g[160];
    print_ids(w, sizeof w, want, from, to_w);
    print_ids(g, sizeof g, got, from, to_g);
    size_t tl = 0;
    char *text = NULL;
    pare_tokenizer_decode(tok, want + from, to_w - from, 0, &text, &tl, NULL);
    CHECKF(0,
           "%s: first difference at token %zu of %zu (got %zu tokens); reference ids [%zu..]: %s; ours: %s; "
           "reference text there: \"%.60s\"",
           what, i, n_want, n_got, from, w, g, text ? text : "?");
    free(text);
}

/* Loads DIR/tokenizer.json (DIR below the shared data: models/X or tokenizers/X). */
static pare_tokenizer *load_hf_dir(const char *dir)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", dir);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = pare_tokenizer_load_hf(shared_path(rel), &tok, &err);
    CHECKF(st == PARE_OK, "loading %s: %s", rel, err.msg);
    return st == PARE_OK ? tok : NULL;
}

enum { FILES_EVAL = 0, FILES_WITH_TRICKY = 1 };
enum { ROUNDTRIP_EXACT, ROUNDTRIP_LOSES_LEADING_SPACE, ROUNDTRIP_NFC };

/* Encodes every eval file (and tokenizers/tricky.txt) and checks ids against DIR/reference_ids,
 * counts against DIR/reference.json, and that decoding gives the file back: Metaspace "first" drops
 * a leading space, and an NFC normalizer gives the file's NFC, as the reference does. */
static void check_hf_files(const char *dir, int files, int roundtrip)
{
    const ref_eval_file tricky = {"tricky.txt", "tokenizers/tricky.txt"};
    pare_tokenizer *tok = load_hf_dir(dir);
    json_t *ref = ref_json_checked(dir);
    int n_files = REF_EVAL_FILES + (files == FILES_WITH_TRICKY);
    for (int f = 0; tok && ref && f < n_files; f++) {
        const ref_eval_file *file = f < REF_EVAL_FILES ? &ref_eval_files[f] : &tricky;
        size_t len, n_ref, n_ids, back_len;
        char *text = ref_read_text(file->path, &len);
        char rel[256];
        snprintf(rel, sizeof rel, "%s/reference_ids/%s.i32", dir, file->name);
        int32_t *want = ref_read_i32_checked(rel, &n_ref);
        int32_t *ids = text ? encode(tok, text, len, 0, &n_ids) : NULL;
        if (text && want && ids) {
            char what[300];
            snprintf(what, sizeof what, "%s on %s", dir, file->name);
            check_same_ids(tok, what, want, n_ref, ids, n_ids);
            /* models' reference.json keep counts under each file, tokenizers' under "tokens" */
            json_t *count_v = json_object_get(ref, "tokens") ? ref_field(ref, dir, "tokens", file->name, NULL)
                                                             : ref_field(ref, dir, file->name, "tokens", NULL);
            json_int_t count = json_integer_value(count_v);
            CHECKF((json_int_t)n_ids == count, "%s: %zu tokens, reference.json says %lld", what, n_ids,
                   (long long)count);
            char *back = decode(tok, ids, n_ids, 0, &back_len);
            const char *expect = text;
            size_t expect_len = len;
            char *composed = roundtrip == ROUNDTRIP_NFC ? (char *)utf8proc_NFC((const utf8proc_uint8_t *)text) : NULL;
            if (composed) {
                expect = composed;
                expect_len = strlen(composed);
            } else if (roundtrip == ROUNDTRIP_LOSES_LEADING_SPACE && len > 0 && text[0] == ' ') {
                expect++;
                expect_len--;
            }
            CHECKF(back && back_len == expect_len && memcmp(back, expect, back_len) == 0,
                   "%s: decode(encode(file)) differs from the file%s (%zu vs %zu bytes)", what,
                   composed ? "'s NFC" : "", back_len, expect_len);
            free(composed);
            free(back);
        }
        free(text);
        free(want);
        free(ids);
    }
    json_decref(ref);
    pare_tokenizer_free(tok);
}

static void test_llama12m_matches_reference_ids(void)
{
    NEED_SHARED();
    check_hf_files("models/ref-llama-12m", FILES_EVAL, ROUNDTRIP_LOSES_LEADING_SPACE);
}

static void test_gpt2_matches_reference_ids(void)
{
    NEED_SHARED();
    check_hf_files("models/ref-gpt2-6m", FILES_EVAL, ROUNDTRIP_EXACT);
}

/* The prompt encodes to prompt_ids with special tokens; greedy_ids after the prompt decode to the
 * recorded continuation (special tokens kept, as the reference decoded them). */
static void check_prompt_and_greedy(const char *model)
{
    pare_tokenizer *tok = load_hf_model(model);
    json_t *ref = ref_json_checked(model);
    if (!tok || !ref)
        goto out;
    const char *prompt = json_string_value(ref_field(ref, model, "prompt", NULL));
    const char *cont = json_string_value(ref_field(ref, model, "greedy_continuation", NULL));
    if (!prompt || !cont)
        goto out;
    size_t n_prompt, n_greedy, n_ids, len;
    int32_t *want = ref_ids(ref_field(ref, model, "prompt_ids", NULL), &n_prompt);
    int32_t *greedy = ref_ids(ref_field(ref, model, "greedy_ids", NULL), &n_greedy);
    int32_t *ids = encode(tok, prompt, strlen(prompt), 1, &n_ids);
    if (ids)
        check_same_ids(tok, "prompt with special tokens", want, n_prompt, ids, n_ids);
    CHECKF(n_greedy > n_prompt && memcmp(greedy, want, n_prompt * sizeof *want) == 0,
           "%s: greedy_ids do not start with prompt_ids", model);
    if (n_greedy > n_prompt) {
        char *text = decode(tok, greedy + n_prompt, n_greedy - n_prompt, 0, &len);
        CHECKF(text && !strcmp(text, cont), "%s: decoded continuation \"%s\" != reference \"%s\"", model,
               text ? text : "", cont);
        free(text);
    }
    char *back = decode(tok, want, n_prompt, 1, &len);
    CHECKF(back && !strcmp(back, prompt), "%s: decode(prompt_ids, skip special) = \"%s\"", model, back ? back : "");
    free(back);
    int bos = pare_tokenizer_bos_id(tok);
    CHECKF(n_prompt > 0 && (bos < 0 || want[0] == bos), "%s: bos id %d vs first prompt id %d", model, bos,
           n_prompt > 0 ? (int)want[0] : -1);
    /* Without special tokens the post-processor adds nothing. */
    int32_t *plain = encode(tok, prompt, strlen(prompt), 0, &n_ids);
    size_t skip = bos >= 0 ? 1 : 0;
    if (plain && n_prompt >= skip)
        check_same_ids(tok, "prompt without special tokens", want + skip, n_prompt - skip, plain, n_ids);
    free(plain);
    free(want);
    free(greedy);
    free(ids);
out:
    json_decref(ref);
    pare_tokenizer_free(tok);
}

static void test_llama12m_prompt_and_greedy(void)
{
    NEED_SHARED();
    check_prompt_and_greedy("ref-llama-12m");
    pare_tokenizer *tok = load_hf_model("ref-llama-12m");
    check_info(tok, 1, 2, 4096, "Metaspace");
    pare_tokenizer_free(tok);
}

static void test_gpt2_prompt_and_greedy(void)
{
    NEED_SHARED();
    check_prompt_and_greedy("ref-gpt2-6m");
    pare_tokenizer *tok = load_hf_model("ref-gpt2-6m");
    check_info(tok, -1, 0 /* <|endoftext|> */, 0, "ByteLevel");
    pare_tokenizer_free(tok);
}

/* Special tokens written in the text are matched even without add_special, and split the text. */
static void test_added_tokens_in_text(void)
{
    NEED_SHARED();
    pare_tokenizer *tok = load_hf_model("ref-gpt2-6m");
    if (!tok)
        return;
    const char *text = "Hello there<|endoftext|> world";
    size_t n, na, nb;
    int32_t *ids = encode(tok, text, strlen(text), 0, &n);
    int32_t *a = encode(tok, "Hello there", 11, 0, &na);
    int32_t *b = encode(tok, " world", 6, 0, &nb);
    CHECKF(ids && a && b && n == na + 1 + nb && !memcmp(ids, a, na * 4) && ids[na] == 0 &&
               !memcmp(ids + na + 1, b, nb * 4),
           "<|endoftext|> in text is not encoded as its id between the surrounding pieces");
    size_t len;
    char *back = decode(tok, ids, n, 0, &len);
    CHECKF(back && !strcmp(back, text), "decode keeps the special token: \"%s\"", back ? back : "");
    free(back);
    back = decode(tok, ids, n, 1, &len);
    CHECKF(back && !strcmp(back, "Hello there world"), "decode skipping special: \"%s\"", back ? back : "");
    free(back);
    free(ids);
    free(a);
    free(b);
    pare_tokenizer_free(tok);

    tok = load_hf_model("ref-llama-12m");
    if (!tok)
        return;
    text = "one</s>two";
    ids = encode(tok, text, strlen(text), 0, &n);
    int found = 0;
    for (size_t i = 0; ids && i < n; i++)
        found += ids[i] == 2;
    CHECKF(found == 1, "</s> in text should give id 2 exactly once (%d)", found);
    back = ids ? decode(tok, ids, n, 0, &len) : NULL;
    CHECKF(back && !strcmp(back, text), "llama decode with </s>: \"%s\"", back ? back : "");
    free(back);
    free(ids);
    pare_tokenizer_free(tok);
}

static void test_llama2_vocab_counts_and_roundtrip(void)
{
    NEED_SHARED();
    pare_tokenizer *tok = load_hf_model("llama2-vocab-tiny");
    json_t *ref = ref_json_checked("llama2-vocab-tiny");
    for (int f = 0; tok && ref && f < REF_EVAL_FILES; f++) {
        json_t *entry = ref_field(ref, "llama2-vocab-tiny", "files", ref_eval_files[f].name, NULL);
        size_t len, n, back_len;
        char *text = ref_read_text(ref_eval_files[f].path, &len);
        int32_t *ids = text ? encode(tok, text, len, 0, &n) : NULL;
        if (ids) {
            json_int_t want = json_integer_value(json_object_get(entry, "tokens"));
            CHECKF((json_int_t)n == want, "llama2-vocab-tiny on %s: %zu tokens, reference %lld", ref_eval_files[f].name,
                   n, (long long)want);
            if (json_is_true(json_object_get(entry, "decode_roundtrip"))) {
                char *back = decode(tok, ids, n, 0, &back_len);
                CHECKF(back && back_len == len && !memcmp(back, text, len),
                       "llama2-vocab-tiny on %s: decode(encode(file)) differs from the file", ref_eval_files[f].name);
                free(back);
            }
        }
        free(text);
        free(ids);
    }
    json_decref(ref);
    pare_tokenizer_free(tok);
}

static void test_llama2_vocab_tricky_cases(void)
{
    NEED_SHARED();
    pare_tokenizer *tok = load_hf_model("llama2-vocab-tiny");
    json_t *ref = ref_json_checked("llama2-vocab-tiny");
    json_t *tricky = ref_field(ref, "llama2-vocab-tiny", "tricky", NULL);
    CHECK(json_array_size(tricky) > 0);
    size_t k;
    json_t *c;
    json_array_foreach(tricky, k, c) {
        if (!tok)
            break;
        const char *text = json_string_value(json_object_get(c, "text"));
        const char *decoded = json_string_value(json_object_get(c, "decoded"));
        size_t n_want, n, len;
        int32_t *want = ref_ids(json_object_get(c, "ids"), &n_want);
        int32_t *ids = encode(tok, text, strlen(text), 0, &n);
        char what[200];
        snprintf(what, sizeof what, "tricky case %zu \"%.40s\"", k, text);
        if (ids)
            check_same_ids(tok, what, want, n_want, ids, n);
        char *back = decode(tok, want, n_want, 0, &len);
        CHECKF(back && !strcmp(back, decoded), "%s: decoded \"%s\", reference \"%s\"", what, back ? back : "", decoded);
        /* With special tokens the only change is the BOS in front. */
        free(ids);
        ids = encode(tok, text, strlen(text), 1, &n);
        CHECKF(ids && n == n_want + 1 && ids[0] == pare_tokenizer_bos_id(tok) &&
                   !memcmp(ids + 1, want, n_want * sizeof *want),
               "%s: with special tokens should be BOS + the reference ids", what);
        free(back);
        free(want);
        free(ids);
    }
    check_info(tok, 1, 2, 32000, NULL);
    json_decref(ref);
    pare_tokenizer_free(tok);
}

/* ---- llama2.c: an independent, literal transcription of run.c's encode() for comparison ---- */

typedef struct {
    char **piece;
    float *score;
    int n;
    int *sorted; /* ids ordered by piece, for run.c's binary-search lookup */
} naive_vocab;

static const naive_vocab *sorting_vocab;

static int compare_pieces(const void *a, const void *b)
{
    return strcmp(sorting_vocab->piece[*(const int *)a], sorting_vocab->piece[*(const int *)b]);
}

static int naive_lookup(const naive_vocab *v, const char *s)
{
    int lo = 0, hi = v->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(s, v->piece[v->sorted[mid]]);
        if (c == 0)
            return v->sorted[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static int naive_load(const char *path, int n, naive_vocab *v)
{
    size_t len;
    char *data = NULL;
    if (pare_read_file(path, &data, &len, NULL) != PARE_OK)
        return 0;
    v->n = n;
    v->piece = calloc((size_t)n, sizeof *v->piece);
    v->score = calloc((size_t)n, sizeof *v->score);
    size_t pos = 4;
    for (int i = 0; i < n; i++) {
        int32_t plen;
        memcpy(&v->score[i], data + pos, 4);
        memcpy(&plen, data + pos + 4, 4);
        pos += 8;
        v->piece[i] = calloc((size_t)plen + 1, 1);
        memcpy(v->piece[i], data + pos, (size_t)plen);
        pos += (size_t)plen;
    }
    free(data);
    v->sorted = malloc((size_t)n * sizeof *v->sorted);
    for (int i = 0; i < n; i++)
        v->sorted[i] = i;
    sorting_vocab = v;
    qsort(v->sorted, (size_t)n, sizeof *v->sorted, compare_pieces);
    return 1;
}

static void naive_free(naive_vocab *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->piece[i]);
    free(v->piece);
    free(v->score);
    free(v->sorted);
}

static int naive_encode(const naive_vocab *v, const char *text, int bos, int *tokens)
{
    char buf[64];
    size_t str_len = 0;
    int n = 0;
    if (bos)
        tokens[n++] = 1;
    if (text[0] != '\0')
        tokens[n++] = naive_lookup(v, " ");
    for (const char *c = text; *c != '\0'; c++) {
        if ((*c & 0xC0) != 0x80)
            str_len = 0;
        buf[str_len++] = *c;
        buf[str_len] = '\0';
        if ((*(c + 1) & 0xC0) == 0x80 && str_len < 4)
            continue;
        int id = naive_lookup(v, buf);
        if (id != -1) {
            tokens[n++] = id;
        } else {
            for (size_t i = 0; i < str_len; i++)
                tokens[n++] = (unsigned char)buf[i] + 3;
        }
        str_len = 0;
    }
    for (;;) {
        float best_score = -1e10f;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i < n - 1; i++) {
            char joined[128];
            snprintf(joined, sizeof joined, "%s%s", v->piece[tokens[i]], v->piece[tokens[i + 1]]);
            int id = naive_lookup(v, joined);
            if (id != -1 && v->score[id] > best_score) {
                best_score = v->score[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1)
            break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i < n - 1; i++)
            tokens[i] = tokens[i + 1];
        n--;
    }
    return n;
}

static void check_llama2c(const char *rel)
{
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = pare_tokenizer_load_llama2c(shared_path(rel), 512, &tok, &err);
    CHECKF(st == PARE_OK, "%s: %s", rel, err.msg);
    naive_vocab v = {0};
    CHECK(naive_load(shared_path(rel), 512, &v));
    size_t story_len;
    char *story = ref_read_text("data/text/tinystories/tiny_test.txt", &story_len);
    if (!tok || !story || !v.piece)
        goto out;
    check_info(tok, 1, 2, 512, NULL);
    /* A slice of story text plus characters outside the 512-piece vocab (byte fallback). */
    char sample[1400];
    size_t take = story_len < 1200 ? story_len : 1200;
    memcpy(sample, story, take);
    const char extra[] = " naïve café — “quotes” 中文 😀\ttabs  double  space\n";
    memcpy(sample + take, extra, sizeof extra);
    const char *texts[] = {sample, "Once upon a time, there was a little girl named Lily.", "a", " ", "😀", ""};
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        const char *text = texts[k];
        size_t len = strlen(text);
        for (int bos = 0; bos <= 1; bos++) {
            size_t n;
            int32_t *ids = encode(tok, text, len, bos, &n);
            int *want = malloc((len * 4 + 4) * sizeof *want);
            size_t n_want = (size_t)naive_encode(&v, text, bos, want);
            int same = ids && n == n_want;
            for (size_t i = 0; same && i < n; i++)
                same = ids[i] == want[i];
            CHECKF(same, "%s: text %zu (bos=%d) differs from run.c's encode (%zu vs %zu tokens)", rel, k, bos, n,
                   n_want);
            CHECKF(!bos || (n > 0 && ids[0] == 1), "%s: BOS missing", rel);
            CHECKF(bos || n == 0 || ids[0] != 1, "%s: BOS added without add_special", rel);
            /* run.c's decode strips the dummy-prefix space only after BOS. */
            size_t back_len;
            char *back = ids ? decode(tok, ids, n, 1, &back_len) : NULL;
            if (back && bos)
                CHECKF(back_len == len && !memcmp(back, text, len), "%s: decode(encode(text, BOS)) != text (%zu)", rel,
                       k);
            if (back && !bos)
                CHECKF(len == 0 ? back_len == 0 : back_len == len + 1 && back[0] == ' ' && !memcmp(back + 1, text, len),
                       "%s: decode(encode(text)) != ' ' + text (%zu)", rel, k);
            free(back);
            free(ids);
            free(want);
        }
    }
    /* Without skip_special, BOS decodes to its own piece. */
    int32_t one[2] = {1, 2};
    size_t back_len;
    char *back = decode(tok, one, 1, 0, &back_len);
    CHECKF(back && !strcmp(back, v.piece[1]), "%s: BOS decodes to \"%s\"", rel, back ? back : "");
    free(back);
    back = decode(tok, one, 2, 1, &back_len);
    CHECKF(back && back_len == 0, "%s: BOS+EOS with skip_special should decode to nothing", rel);
    free(back);
out:
    free(story);
    naive_free(&v);
    pare_tokenizer_free(tok);
}

static void test_llama2c_stories260k_matches_run_c(void)
{
    NEED_SHARED();
    check_llama2c("models/stories260K/tok512.bin");
}

static void test_llama2c_aidreams_matches_run_c(void)
{
    NEED_SHARED();
    check_llama2c("models/aidreams260K/tok512_aidreams.bin");
}

/* ---- bad input and synthetic tokenizers (no shared data needed) ---- */

static void test_rejects_unigram_model(void)
{
    const char *json = "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}";
    const char *path = tmp_path("unigram.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = load_hf_text(path, json, &tok, &err);
    CHECKF(st == PARE_EUNSUPPORTED, "status %s", pare_status_name(st));
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "Unigram") && !strchr(err.msg, '\n'), "message: %s", err.msg);
    CHECK(tok == NULL);
}

static void test_rejects_unsupported_components(void)
{
    const char *json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                       " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}";
    const char *path = tmp_path("whitespace.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = load_hf_text(path, json, &tok, &err);
    CHECKF(st == PARE_EUNSUPPORTED && strstr(err.msg, path) && strstr(err.msg, "Whitespace"), "%s: %s",
           pare_status_name(st), err.msg);
    pare_tokenizer_free(tok);
}

static void test_rejects_invalid_json_and_missing_file(void)
{
    const char *json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {";
    const char *path = tmp_path("broken.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = load_hf_text(path, json, &tok, &err);
    CHECKF(st == PARE_EFORMAT && strstr(err.msg, path), "%s: %s", pare_status_name(st), err.msg);
    CHECK(tok == NULL);

    const char *missing = tmp_path("no-such-tokenizer.json");
    st = pare_tokenizer_load_hf(missing, &tok, &err);
    CHECKF(st == PARE_EIO && strstr(err.msg, missing), "%s: %s", pare_status_name(st), err.msg);
    st = pare_tokenizer_load_llama2c(missing, 512, &tok, &err);
    CHECKF(st == PARE_EIO && strstr(err.msg, missing), "%s: %s", pare_status_name(st), err.msg);

    /* A merge naming a piece that is not in the vocab. */
    json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}";
    st = load_hf_text(path, json, &tok, &err);
    CHECKF(st == PARE_EFORMAT && strstr(err.msg, "ab"), "%s: %s", pare_status_name(st), err.msg);
}

static void put_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }

static void test_rejects_bad_tokenizer_bin(void)
{
    /* Three pieces: "a" "b" "ab". */
    unsigned char good[4 + 3 * 8 + 4];
    size_t n = 0;
    put_i32(good, 2);
    n = 4;
    const char *pieces[3] = {"a", "b", "ab"};
    for (int i = 0; i < 3; i++) {
        float score = (float)-i;
        memcpy(good + n, &score, 4);
        put_i32(good + n + 4, (int32_t)strlen(pieces[i]));
        memcpy(good + n + 8, pieces[i], strlen(pieces[i]));
        n += 8 + strlen(pieces[i]);
    }
    const char *path = tmp_path("tok.bin");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECK(write_bytes(path, good, n) == 0);
    CHECKF(pare_tokenizer_load_llama2c(path, 3, &tok, &err) == PARE_OK, "%s", err.msg);
    pare_tokenizer_free(tok);
    tok = NULL;
    /* Every truncation is reported, naming the file. */
    for (size_t cut = 0; cut < n; cut++) {
        CHECK(write_bytes(path, good, cut) == 0);
        pare_status st = pare_tokenizer_load_llama2c(path, 3, &tok, &err);
        CHECKF(st == PARE_EFORMAT && strstr(err.msg, path), "cut at %zu: %s: %s", cut, pare_status_name(st), err.msg);
        CHECK(tok == NULL);
    }
    /* More tokens than the file holds. */
    CHECK(write_bytes(path, good, n) == 0);
    CHECK(pare_tokenizer_load_llama2c(path, 4, &tok, &err) == PARE_EFORMAT);
    /* Negative and huge lengths. */
    unsigned char bad[sizeof good];
    memcpy(bad, good, n);
    put_i32(bad + 8, -5);
    CHECK(write_bytes(path, bad, n) == 0);
    CHECKF(pare_tokenizer_load_llama2c(path, 3, &tok, &err) == PARE_EFORMAT && strstr(err.msg, "length"), "%s", err.msg);
    put_i32(bad + 8, 0x7fffffff);
    CHECK(write_bytes(path, bad, n) == 0);
    CHECK(pare_tokenizer_load_llama2c(path, 3, &tok, &err) == PARE_EFORMAT);
    CHECK(pare_tokenizer_load_llama2c(path, 0, &tok, &err) == PARE_EINVAL);
    CHECK(pare_tokenizer_load_llama2c(path, -3, &tok, &err) == PARE_EINVAL);
}

/* A hand-made Metaspace tokenizer: byte fallback for unknown characters, merges, and the decoder's
 * rule that an invalid run of byte tokens becomes one U+FFFD per byte. */
static void test_synthetic_metaspace_byte_fallback(void)
{
    char json[1 << 14];
    size_t used = (size_t)snprintf(
        json, sizeof json,
        "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}],"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\","
        " \"prepend_scheme\": \"always\", \"split\": true},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
        "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"always\"},"
        "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
        " \"merges\": [[\"\\u2581\", \"a\"], [\"\\u2581a\", \"b\"]], \"vocab\": {\"<unk>\": 0");
    for (int b = 0; b < 256; b++)
        used += (size_t)snprintf(json + used, sizeof json - used, ", \"<0x%02X>\": %d", b, b + 1);
    snprintf(json + used, sizeof json - used,
             ", \"\\u2581\": 257, \"a\": 258, \"b\": 259, \"\\u2581a\": 260,"
             " \"\\u2581ab\": 261}}}");
    const char *path = tmp_path("meta.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(path, json, &tok, &err) == PARE_OK, "%s", err.msg);
    if (!tok)
        return;
    size_t n, len;
    /* "ab a" -> ▁ab ▁a ; "é" (C3 A9) unknown -> ▁ then its two bytes. */
    int32_t *ids = encode(tok, "ab aé", strlen("ab aé"), 0, &n);
    int32_t want[] = {261, 260, 0xC3 + 1, 0xA9 + 1};
    CHECKF(ids && n == 4 && !memcmp(ids, want, sizeof want), "ids for \"ab aé\" (%zu tokens)", n);
    char *back = ids ? decode(tok, ids, n, 0, &len) : NULL;
    CHECKF(back && !strcmp(back, "ab aé"), "decoded \"%s\"", back ? back : "");
    free(back);
    free(ids);
    int32_t invalid[] = {0xE4 + 1, 0xB8 + 1, 258};
    back = decode(tok, invalid, 3, 0, &len);
    CHECKF(back && !strcmp(back, "\xEF\xBF\xBD\xEF\xBF\xBD"
                                 "a"),
           "invalid bytes decode to \"%s\"", back ? back : "");
    free(back);
    int32_t out_of_range = 9999;
    char *none = NULL;
    CHECK(pare_tokenizer_decode(tok, &out_of_range, 1, 0, &none, &len, &err) == PARE_EINVAL && none == NULL);
    pare_tokenizer_free(tok);
}

/* A hand-made ByteLevel tokenizer with only single-byte pieces: the ids spell the text's bytes, and
 * the split regex decides which spaces go with which word (checked through ids of merged pieces). */
static void test_synthetic_byte_level_split(void)
{
    /* GPT-2 maps byte b to itself when printable, else to 256+k; "Ġ" (U+0120) is the space. */
    char json[1 << 14];
    size_t used = (size_t)snprintf(json, sizeof json,
                                   "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
                                   " \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\","
                                   " \"merges\": [[\"\\u0120\", \"\\u0120\"], [\"\\u0120\", \"a\"]], \"vocab\": {");
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = printable ? b : 256 + k++;
        used += (size_t)snprintf(json + used, sizeof json - used, "%s\"\\u%04X\": %d", b ? ", " : "", cp, b);
    }
    snprintf(json + used, sizeof json - used, ", \"\\u0120\\u0120\": 256, \"\\u0120a\": 257}}}");
    const char *path = tmp_path("bytelevel.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(path, json, &tok, &err) == PARE_OK, "%s", err.msg);
    if (!tok)
        return;
    /* "   a": \s+(?!\S) keeps the last space for " a": words "  " and " a" -> [ĠĠ] [Ġa]. */
    size_t n, len;
    int32_t *ids = encode(tok, "   a", 4, 0, &n);
    int32_t want1[] = {256, 257};
    CHECKF(ids && n == 2 && !memcmp(ids, want1, sizeof want1), "\"   a\" gives %zu tokens", n);
    free(ids);
    /* Trailing spaces stay one word: "a   " -> a [ĠĠ] Ġ. */
    ids = encode(tok, "a   ", 4, 0, &n);
    int32_t want2[] = {'a', 256, ' '};
    CHECKF(ids && n == 3 && !memcmp(ids, want2, sizeof want2), "\"a   \" gives %zu tokens", n);
    char *back = ids ? decode(tok, ids, n, 0, &len) : NULL;
    CHECKF(back && !strcmp(back, "a   "), "decoded \"%s\"", back ? back : "");
    free(back);
    free(ids);
    /* "\n a": the newline alone, then " a". */
    ids = encode(tok, "\n a", 3, 0, &n);
    int32_t want3[] = {'\n', 257};
    CHECKF(ids && n == 2 && !memcmp(ids, want3, sizeof want3), "\"\\n a\" gives %zu tokens", n);
    free(ids);
    /* Invalid UTF-8 encodes byte by byte and decodes lossily, one U+FFFD per maximal bad sequence. */
    const char bad[] = "x\xE4\xB8 y";
    ids = encode(tok, bad, 5, 0, &n);
    back = ids ? decode(tok, ids, n, 0, &len) : NULL;
    CHECKF(back && !strcmp(back, "x\xEF\xBF\xBD y"), "lossy decode: \"%s\"", back ? back : "");
    free(back);
    free(ids);
    pare_tokenizer_free(tok);
}

/* ---- error messages and limits (review regressions) ---- */

/* Loads json from a fresh file and expects the given status with a one-line message naming the
 * file and containing want. */
static void check_load_error(const char *name, const char *json, pare_status want_st, const char *want)
{
    const char *path = tmp_path(name);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    pare_status st = load_hf_text(path, json, &tok, &err);
    CHECKF(st == want_st && tok == NULL, "%s: %s: %s", name, pare_status_name(st), err.msg);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, want) && !strchr(err.msg, '\n') && !strchr(err.msg, '\r'),
           "%s: message should be one line naming the file and \"%s\": %s", name, want, err.msg);
    pare_tokenizer_free(tok);
}

static void test_messages_escape_file_strings(void)
{
    check_load_error("merge-newline.json",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\\nevil\"]}}",
                     PARE_EFORMAT, "'a\\nevil'");
    check_load_error("vocab-newline.json",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"x\\ny\\u0085\": -1}, \"merges\": []}}",
                     PARE_EFORMAT, "'x\\ny\\u0085'");
    check_load_error("type-newline.json",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"decoder\": {\"type\": \"Evil\\r\\n\\u0001\"}}",
                     PARE_EUNSUPPORTED, "'Evil\\r\\n\\x01'");
    check_load_error("template-newline.json",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
                     "{\"SpecialToken\": {\"id\": \"<s>\\n\"}}, {\"Sequence\": {\"id\": \"A\"}}],"
                     " \"special_tokens\": {}}}",
                     PARE_EFORMAT, "'<s>\\n'");
    /* Long strings are cut short. */
    char json[1024], piece[301];
    memset(piece, 'z', 300);
    piece[300] = '\0';
    snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"%s\"]}}", piece);
    const char *path = tmp_path("long-merge.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECK(load_hf_text(path, json, &tok, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "zzz...") && !strstr(err.msg, piece + 200), "long merge not cut: %s", err.msg);
}

static void test_encode_errors_name_the_file(void)
{
    /* unk_token absent from the vocab is only an error once an unknown character needs it. */
    const char *json = "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<u\\nnk>\", \"vocab\": {\"a\": 0}, "
                       "\"merges\": []}}";
    const char *path = tmp_path("unk-missing.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(path, json, &tok, &err) == PARE_OK, "%s", err.msg);
    int32_t *ids = NULL;
    size_t n;
    if (tok) {
        CHECK(pare_tokenizer_encode(tok, "aa", 2, 0, &ids, &n, &err) == PARE_OK && n == 2);
        free(ids);
        ids = NULL;
        pare_status st = pare_tokenizer_encode(tok, "ab", 2, 0, &ids, &n, &err);
        CHECKF(st == PARE_EFORMAT && ids == NULL && strstr(err.msg, path) && strstr(err.msg, "<u\\nnk>") &&
                   !strchr(err.msg, '\n'),
               "%s: %s", pare_status_name(st), err.msg);
        /* Text too long for int32 positions is refused before it is read. */
        char small[4] = "abc";
        st = pare_tokenizer_encode(tok, small, (size_t)INT32_MAX + 1, 0, &ids, &n, &err);
        CHECKF(st == PARE_EINVAL && ids == NULL && strstr(err.msg, path) && strstr(err.msg, "too long"), "%s: %s",
               pare_status_name(st), err.msg);
        pare_tokenizer_free(tok);
    }

    /* A llama2.c vocab without the ' ' piece for the dummy prefix. */
    unsigned char bin[64];
    size_t used = 4;
    put_i32(bin, 2);
    const char *pieces[3] = {"a", "b", "ab"};
    for (int i = 0; i < 3; i++) {
        float score = 0.0f;
        memcpy(bin + used, &score, 4);
        put_i32(bin + used + 4, (int32_t)strlen(pieces[i]));
        memcpy(bin + used + 8, pieces[i], strlen(pieces[i]));
        used += 8 + strlen(pieces[i]);
    }
    path = tmp_path("no-space.bin");
    CHECK(write_bytes(path, bin, used) == 0);
    tok = NULL;
    CHECKF(pare_tokenizer_load_llama2c(path, 3, &tok, &err) == PARE_OK, "%s", err.msg);
    if (tok) {
        pare_status st = pare_tokenizer_encode(tok, "ab", 2, 0, &ids, &n, &err);
        CHECKF(st == PARE_EFORMAT && strstr(err.msg, path) && strstr(err.msg, "' '"), "%s: %s", pare_status_name(st),
               err.msg);
        char small[4] = "abc";
        st = pare_tokenizer_encode(tok, small, (size_t)INT32_MAX + 1, 0, &ids, &n, &err);
        CHECKF(st == PARE_EINVAL && ids == NULL && strstr(err.msg, "too long"), "%s: %s", pare_status_name(st), err.msg);
        pare_tokenizer_free(tok);
    }
}

static void test_rejects_deep_sequences_and_pieceless_special_ids(void)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": %s}",
             "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": ["
             "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": ["
             "{\"type\": \"Sequence\", \"normalizers\": []}]}]}]}]}");
    check_load_error("deep.json", json, PARE_EUNSUPPORTED, "nested too deep");
    /* Four levels are fine. */
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": %s}",
             "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Sequence\", \"pretokenizers\": ["
             "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Sequence\", \"pretokenizers\": ["
             "{\"type\": \"ByteLevel\"}]}]}]}]}");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(tmp_path("four-deep.json"), json, &tok, &err) == PARE_OK, "%s", err.msg);
    pare_tokenizer_free(tok);
    /* Id 1 is inside the id range (the vocab goes up to 2) but has no token. */
    check_load_error("pieceless.json",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"c\": 2}, \"merges\": []},"
                     " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
                     "{\"SpecialToken\": {\"id\": \"<s>\"}}, {\"Sequence\": {\"id\": \"A\"}}],"
                     " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}}}",
                     PARE_EFORMAT, "post-processor id 1");
}

/* A llama2.c vocab whose pieces hold stray bytes: the pair of two stray bytes (code point -1 each)
 * must be known to occur inside a piece, or a long run would be cut between bytes a merge joins. */
static void test_llama2c_stray_byte_pairs(void)
{
    const char *pieces[6] = {"<unk>", "<s>", "</s>", " ", "\xff", "\xff\xff"};
    unsigned char bin[128];
    size_t used = 4;
    put_i32(bin, 5);
    for (int i = 0; i < 6; i++) {
        float score = 0.0f;
        memcpy(bin + used, &score, 4);
        put_i32(bin + used + 4, (int32_t)strlen(pieces[i]));
        memcpy(bin + used + 8, pieces[i], strlen(pieces[i]));
        used += 8 + strlen(pieces[i]);
    }
    const char *path = tmp_path("stray.bin");
    CHECK(write_bytes(path, bin, used) == 0);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(pare_tokenizer_load_llama2c(path, 6, &tok, &err) == PARE_OK, "%s", err.msg);
    if (!tok)
        return;
    char text[1001];
    memset(text, 0xff, 1000);
    size_t n;
    int32_t *ids = encode(tok, text, 1000, 0, &n);
    int all_pairs = ids && n == 501 && ids[0] == 3;
    for (size_t i = 1; all_pairs && i < n; i++)
        all_pairs = ids[i] == 5;
    CHECKF(all_pairs, "1000 stray bytes should give ' ' and 500 pairs (%zu tokens)", n);
    free(ids);
    pare_tokenizer_free(tok);
}

/* A normalizer bomb (issue 19, item 8): four chained Replace("e" -> 128 "e") grow one byte to 256 MiB
 * (a 140 KB tokenizer.json reached 6.2 GB of memory). Normalizing is capped relative to the input at
 * every step: encoding "e" is refused at once, naming the file, with memory bounded. */
static void test_normalizer_expansion_bomb(void)
{
    char json[1 << 14], many_e[129];
    memset(many_e, 'e', 128);
    many_e[128] = 0;
    size_t used = (size_t)snprintf(json, sizeof json, "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [");
    for (int i = 0; i < 4; i++)
        used += (size_t)snprintf(json + used, sizeof json - used,
                                 "%s{\"type\": \"Replace\", \"pattern\": {\"String\": \"e\"}, \"content\": \"%s\"}",
                                 i ? ", " : "", many_e);
    used += (size_t)snprintf(json + used, sizeof json - used,
                             "]}, \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"merges\": [],"
                             " \"vocab\": {\"e\": 0");
    for (int b = 0; b < 256; b++)
        used += (size_t)snprintf(json + used, sizeof json - used, ", \"<0x%02X>\": %d", b, b + 1);
    snprintf(json + used, sizeof json - used, "}}}");
    const char *path = tmp_path("bomb.json");
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(path, json, &tok, &err) == PARE_OK, "%s", err.msg);
    if (!tok)
        return;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    int32_t *ids = NULL;
    size_t n = 0;
    pare_status st = pare_tokenizer_encode(tok, "e", 1, 0, &ids, &n, &err);
    getrusage(RUSAGE_SELF, &after);
    CHECKF(st == PARE_EFORMAT && strstr(err.msg, path) && strstr(err.msg, "normalizer expands input beyond"),
           "status %d: %s", st, err.msg);
    long grown_kib = after.ru_maxrss - before.ru_maxrss;
    CHECKF(grown_kib < 64 * 1024, "peak memory grew by %ld KiB", grown_kib);
    free(ids);
    /* a text the cap allows still encodes: "x" has no "e" to replace */
    CHECKF(pare_tokenizer_encode(tok, "x", 1, 0, &ids, &n, &err) == PARE_OK && n == 1 && ids[0] == 'x' + 1, "%s",
           err.msg);
    free(ids);
    pare_tokenizer_free(tok);
}


/* ---- Llama-3 and Qwen3: Split regex pre-tokenizers, ignore_merges, NFC, merges as pairs ---- */

static void test_llama3_matches_reference_ids(void)
{
    NEED_SHARED();
    check_hf_files("tokenizers/llama3", FILES_WITH_TRICKY, ROUNDTRIP_EXACT);
}

static void test_qwen3_matches_reference_ids(void)
{
    NEED_SHARED();
    check_hf_files("tokenizers/qwen3", FILES_WITH_TRICKY, ROUNDTRIP_NFC);
}

/* `pare tokenize --tokenizer FILE` with no model: the count of tricky.txt is the reference's. */
static void test_tokenize_cli_tokenizer_only(void)
{
    NEED_SHARED();
    const char *names[] = {"tokenizers/llama3", "tokenizers/qwen3"};
    for (int k = 0; k < 2; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/tokenizer.json", names[k]);
        char tokenizer[1024], file[1024];
        snprintf(tokenizer, sizeof tokenizer, "%s", shared_path(rel));
        snprintf(file, sizeof file, "%s", shared_path("tokenizers/tricky.txt"));
        json_t *ref = ref_json_checked(names[k]);
        json_int_t want = json_integer_value(ref_field(ref, names[k], "tokens", "tricky.txt", NULL));
        char *out = NULL, *errout = NULL;
        const char *args[] = {"tokenize", "--tokenizer", tokenizer, "--file", file, "--count", NULL};
        int rc = run_pare(&out, &errout, args);
        CHECKF(rc == 0 && out && atoll(out) == want, "%s: exit %d, count %s (want %lld): %s", names[k], rc,
               out ? out : "", (long long)want, errout ? errout : "");
        free(out);
        free(errout);
        json_decref(ref);
    }
}

/* A tokenizer whose vocab holds the pieces a Split may produce: with ignore_merges a pre-tokenized
 * word found in the vocab is one id, so the ids spell the pieces. pattern is the JSON of the Split's
 * pattern object. */
static pare_tokenizer *split_tokenizer(const char *name, const char *pattern, const char *behavior, int invert,
                                       const char *vocab)
{
    char json[4096];
    snprintf(json, sizeof json,
             "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": %s,"
             " \"behavior\": \"%s\", \"invert\": %s}]},"
             " \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"merges\": [], \"vocab\": {%s}}}",
             pattern, behavior, invert ? "true" : "false", vocab);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(load_hf_text(tmp_path(name), json, &tok, &err) == PARE_OK, "%s: %s", name, err.msg);
    return tok;
}

static void check_pieces(pare_tokenizer *tok, const char *what, const char *text, const int32_t *want, size_t n_want)
{
    if (!tok)
        return;
    size_t n;
    int32_t *ids = encode(tok, text, strlen(text), 0, &n);
    char got[160] = "", expected[160] = "";
    if (ids)
        print_ids(got, sizeof got, ids, 0, n);
    print_ids(expected, sizeof expected, want, 0, n_want);
    CHECKF(ids && n == n_want && !memcmp(ids, want, n * sizeof *ids), "%s on \"%s\": ids %s, want %s", what, text, got,
           expected);
    free(ids);
}

/* Every behavior of Split as tokenizers' NormalizedString::split defines it, on "a-b--c" with the
 * delimiter "-" (as a String and as a Regex), and invert. */
static void test_split_behaviors(void)
{
    const char *vocab = "\"a\": 0, \"b\": 1, \"c\": 2, \"-\": 3, \"a-\": 4, \"b-\": 5, \"-b\": 6, \"-c\": 7, \"--\": "
                        "8, \"b--\": 9";
    enum { A, B, C, DASH, A_DASH, B_DASH, DASH_B, DASH_C, DASH_DASH, B_DASH_DASH };
    static const struct {
        const char *behavior;
        int invert;
        int32_t want[6];
        size_t n;
    } cases[] = {
        {"Isolated", 0, {A, DASH, B, DASH, DASH, C}, 6},
        {"Removed", 0, {A, B, C}, 3},
        {"MergedWithPrevious", 0, {A_DASH, B_DASH, DASH, C}, 4},
        {"MergedWithNext", 0, {A, DASH_B, DASH, DASH_C}, 4},
        {"Contiguous", 0, {A, DASH, B, DASH_DASH, C}, 5},
        /* [a-c] inverted: the text between letters ("-", then "--" as one part) is the delimiter */
        {"MergedWithPrevious", 1, {A_DASH, B_DASH_DASH, C}, 3},
        {"Removed", 1, {A, B, C}, 3},
    };
    const char *patterns[] = {"{\"String\": \"-\"}", "{\"Regex\": \"-\"}"};
    for (int p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            /* inverted cases match the letters (a Regex only) */
            const char *pattern = cases[k].invert ? (p ? "{\"Regex\": \"[a-c]\"}" : NULL) : patterns[p];
            if (!pattern)
                continue;
            char name[64], what[128];
            snprintf(name, sizeof name, "split%d_%zu.json", p, k);
            snprintf(what, sizeof what, "%s %s%s", pattern, cases[k].behavior, cases[k].invert ? " inverted" : "");
            pare_tokenizer *tok = split_tokenizer(name, pattern, cases[k].behavior, cases[k].invert, vocab);
            check_pieces(tok, what, "a-b--c", cases[k].want, cases[k].n);
            pare_tokenizer_free(tok);
        }
}

/* Oniguruma (the reference's engine) against PCRE2: its \w includes marks (PCRE2 10.42's does not;
 * the pattern is translated), its \s includes U+0085 (PCRE2's does too; checked should that change);
 * and the Llama-3 pattern's case-insensitive contractions and \p{N}{1,3}. */
static void test_split_regex_oniguruma_semantics(void)
{
    pare_tokenizer *tok = split_tokenizer("nel.json", "{\"Regex\": \"\\\\s\"}", "Removed", 0,
                                          "\"x\": 0, \"y\": 1, \"x\\u0085y\": 2");
    check_pieces(tok, "\\s on NEL", "x\xC2\x85y", (const int32_t[]){0, 1}, 2);
    pare_tokenizer_free(tok);
    tok = split_tokenizer("mark.json", "{\"Regex\": \"\\\\w+\"}", "Isolated", 0,
                          "\"e\": 0, \"\\u0301\": 1, \"e\\u0301\": 2, \" \": 3");
    check_pieces(tok, "\\w with a combining mark", "e\xCC\x81 e", (const int32_t[]){2, 3, 0}, 3);
    pare_tokenizer_free(tok);
    tok = split_tokenizer("contractions.json", "{\"Regex\": \"(?i:'s|'re)|\\\\p{N}{1,3}\"}", "Isolated", 0,
                          "\"'S\": 0, \"'rE\": 1, \"123\": 2, \"45\": 3, \"'\": 4, \"S\": 5, \"r\": 6, \"E\": 7");
    check_pieces(tok, "contractions and digit groups", "'S'rE12345", (const int32_t[]){0, 1, 2, 3}, 4);
    pare_tokenizer_free(tok);
}

/* An invalid regex is refused naming the file and the pattern, in the core and by the CLI. */
static void test_split_invalid_regex(void)
{
    const char *json = "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s|\\\\p{L\"},"
                       " \"behavior\": \"Isolated\", \"invert\": false},"
                       " \"model\": {\"type\": \"BPE\", \"merges\": [], \"vocab\": {\"a\": 0}}}";
    check_load_error("bad_regex.json", json, PARE_EFORMAT, "(?i:'s|\\\\p{L");
    const char *args[] = {"tokenize", "--tokenizer", tmp_path("bad_regex.json"), "--text", "a", NULL};
    const char *needles[] = {"bad_regex.json", "(?i:'s|\\\\p{L", "invalid", NULL};
    expect_pare_error(args, needles, 1);
    check_load_error("bad_behavior.json",
                     "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": "
                     "\"Sideways\"},"
                     " \"model\": {\"type\": \"BPE\", \"merges\": [], \"vocab\": {\"a\": 0}}}",
                     PARE_EUNSUPPORTED, "Sideways");
}

/* The pare cache of `make tokenizer-refs` (PARE_CACHE, else $XDG_CACHE_HOME/pare, else ~/.cache/pare). */
static const char *pare_cache_path(const char *rel)
{
    static char path[1024];
    const char *cache = getenv("PARE_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(path, sizeof path, "%s/%s", cache, rel);
    else if (xdg && *xdg)
        snprintf(path, sizeof path, "%s/pare/%s", xdg, rel);
    else
        snprintf(path, sizeof path, "%s/.cache/pare/%s", home ? home : "", rel);
    return path;
}

/* Gemma-3 (Replace normalizer, Split " " MergedWithPrevious, byte fallback, 262k vocab, 6k added
 * tokens) against Hugging Face tokenizers' npm binding, run here by tools/tokenizer_reference.js on
 * the same five files; decoding gives each file back. */
static void test_gemma3_matches_hf_binding(void)
{
    NEED_SHARED();
    char gemma[1024], node_modules[1024];
    snprintf(gemma, sizeof gemma, "%s", pare_cache_path("tokenizers/gemma3/tokenizer.json"));
    snprintf(node_modules, sizeof node_modules, "%s", pare_cache_path("node/node_modules"));
    char binding[1100];
    snprintf(binding, sizeof binding, "%s/tokenizers/package.json", node_modules);
    if (access(gemma, R_OK) != 0 || access(binding, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0)
        SKIP("skipped: Gemma-3 tokenizer or Hugging Face tokenizers' node binding absent (make tokenizer-refs)");
    const ref_eval_file tricky = {"tricky.txt", "tokenizers/tricky.txt"};
    char cmd[8192];
    int used = snprintf(cmd, sizeof cmd, "NODE_PATH='%s' node tools/tokenizer_reference.js '%s' '%s'", node_modules,
                        gemma, tmp_path("gemma3_ids"));
    for (int f = 0; f <= REF_EVAL_FILES; f++)
        used += snprintf(cmd + used, sizeof cmd - (size_t)used, " '%s'",
                         shared_path(f < REF_EVAL_FILES ? ref_eval_files[f].path : tricky.path));
    CHECKF(system(cmd) == 0, "tools/tokenizer_reference.js failed: %s", cmd);
    pare_tokenizer *tok = NULL;
    pare_error err = {0};
    CHECKF(pare_tokenizer_load_hf(gemma, &tok, &err) == PARE_OK, "%s", err.msg);
    for (int f = 0; tok && f <= REF_EVAL_FILES; f++) {
        const ref_eval_file *file = f < REF_EVAL_FILES ? &ref_eval_files[f] : &tricky;
        char ids_path[1200];
        snprintf(ids_path, sizeof ids_path, "%s/%s.i32", tmp_path("gemma3_ids"), file->name);
        char *raw = NULL;
        size_t raw_len = 0, len, n_ids, back_len;
        CHECKF(pare_read_file(ids_path, &raw, &raw_len, &err) == PARE_OK && raw_len % 4 == 0, "%s", ids_path);
        char *text = ref_read_text(file->path, &len);
        int32_t *ids = text ? encode(tok, text, len, 0, &n_ids) : NULL;
        if (raw && ids) {
            char what[300];
            snprintf(what, sizeof what, "gemma3 on %s", file->name);
            check_same_ids(tok, what, (const int32_t *)raw, raw_len / 4, ids, n_ids);
            char *back = decode(tok, ids, n_ids, 0, &back_len);
            CHECKF(back && back_len == len && !memcmp(back, text, len), "%s: decode(encode(file)) differs", what);
            free(back);
        }
        free(raw);
        free(text);
        free(ids);
    }
    pare_tokenizer_free(tok);
}

void suite_tokenizer(void)
{
    RUN(test_llama12m_matches_reference_ids);
    RUN(test_gpt2_matches_reference_ids);
    RUN(test_llama12m_prompt_and_greedy);
    RUN(test_gpt2_prompt_and_greedy);
    RUN(test_added_tokens_in_text);
    RUN(test_llama2_vocab_counts_and_roundtrip);
    RUN(test_llama2_vocab_tricky_cases);
    RUN(test_llama2c_stories260k_matches_run_c);
    RUN(test_llama2c_aidreams_matches_run_c);
    RUN(test_rejects_unigram_model);
    RUN(test_rejects_unsupported_components);
    RUN(test_rejects_invalid_json_and_missing_file);
    RUN(test_rejects_bad_tokenizer_bin);
    RUN(test_synthetic_metaspace_byte_fallback);
    RUN(test_synthetic_byte_level_split);
    RUN(test_messages_escape_file_strings);
    RUN(test_encode_errors_name_the_file);
    RUN(test_rejects_deep_sequences_and_pieceless_special_ids);
    RUN(test_llama2c_stray_byte_pairs);
    RUN(test_normalizer_expansion_bomb);
    RUN(test_llama3_matches_reference_ids);
    RUN(test_qwen3_matches_reference_ids);
    RUN(test_tokenize_cli_tokenizer_only);
    RUN(test_split_behaviors);
    RUN(test_split_regex_oniguruma_semantics);
    RUN(test_split_invalid_regex);
    RUN(test_gemma3_matches_hf_binding);
}

/* Tests of the embedded default (`pare demo`): the byte-level BPE trainer, the Brown corpus
 * conversion, and the demo command end to end on a tiny corpus and model in a temporary cache. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "train/bpe_train.h"
#include "train/corpus.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "core/tokenizer.h"

/* English-like text: sentences of words drawn from a small list, with punctuation, digits,
 * contractions and newlines, so the pre-tokenizer sees every kind of piece. */
static char *make_text(size_t bytes, uint64_t seed, size_t *len)
{
    static const char *words[] = {"the",      "jury",       "said",   "election", "city",   "of",   "and",
                                  "a",        "in",         "was",    "Atlanta",  "county", "it's", "they'll",
                                  "report",   "1961",       "42",     "primary",  "to",     "that", "over-all",
                                  "(charge)", "\"praise\"", "thanks", "mayor"};
    size_t nw = sizeof words / sizeof words[0];
    char *t = malloc(bytes + 64);
    size_t n = 0;
    uint64_t s = seed;
    while (n < bytes) {
        int sentence = 4 + (int)(pare_splitmix64(&s) % 12);
        for (int i = 0; i < sentence && n < bytes; i++) {
            const char *w = words[pare_splitmix64(&s) % nw];
            n += (size_t)sprintf(t + n, "%s%s", i ? " " : "", w);
        }
        n += (size_t)sprintf(t + n, "%s", pare_splitmix64(&s) % 4 ? ".\n" : ", and\n\n");
    }
    t[n] = '\0';
    *len = n;
    return t;
}

/* GPT-2's bytes_to_unicode, written out from its definition: the inverse maps a byte-level
 * character back to its byte. */
static int byte_of_char(int32_t cp)
{
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int32_t c = printable ? b : 256 + extra++;
        if (c == cp)
            return b;
    }
    return -1;
}

/* Raw bytes of a byte-level vocab string (UTF-8 of code points below 324). */
static size_t raw_bytes(const char *s, unsigned char *out)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int32_t cp;
        if (*p < 0x80)
            cp = *p++;
        else {
            cp = (int32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
            p += 2;
        }
        out[n++] = (unsigned char)byte_of_char(cp);
    }
    return n;
}

typedef struct {
    int n_ids;
    char **piece; /* id -> raw bytes, NUL-terminated (pieces hold no NUL but byte 0 itself) */
    size_t *piece_len;
    size_t n_merges;
    int32_t (*merge)[3]; /* a, b, result */
} vocab_view;

/* Reads the written tokenizer.json with jansson, independently of pare's loader. */
static int read_vocab(const char *path, vocab_view *v)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return 0;
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    v->n_ids = (int)json_object_size(vocab);
    v->piece = calloc((size_t)v->n_ids, sizeof *v->piece);
    v->piece_len = calloc((size_t)v->n_ids, sizeof *v->piece_len);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        int id = (int)json_integer_value(val);
        if (id < 0 || id >= v->n_ids)
            continue;
        v->piece[id] = malloc(strlen(key) + 1);
        v->piece_len[id] = id == 0 ? strlen(key) : raw_bytes(key, (unsigned char *)v->piece[id]);
        if (id == 0)
            memcpy(v->piece[id], key, strlen(key));
    }
    v->n_merges = json_array_size(merges);
    v->merge = calloc(v->n_merges + 1, sizeof *v->merge);
    for (size_t i = 0; i < v->n_merges; i++) {
        const char *m = json_string_value(json_array_get(merges, i));
        const char *sp = m ? strchr(m, ' ') : NULL;
        char a[64] = "", b[64] = "", ab[128];
        if (sp && (size_t)(sp - m) < sizeof a && strlen(sp + 1) < sizeof b) {
            memcpy(a, m, (size_t)(sp - m));
            snprintf(b, sizeof b, "%s", sp + 1);
        }
        snprintf(ab, sizeof ab, "%s%s", a, b);
        v->merge[i][0] = (int32_t)json_integer_value(json_object_get(vocab, a));
        v->merge[i][1] = (int32_t)json_integer_value(json_object_get(vocab, b));
        v->merge[i][2] = (int32_t)json_integer_value(json_object_get(vocab, ab));
    }
    json_decref(root);
    return 1;
}

static void free_vocab(vocab_view *v)
{
    for (int i = 0; i < v->n_ids; i++)
        free(v->piece[i]);
    free(v->piece);
    free(v->piece_len);
    free(v->merge);
}

/* BPE encoding written plainly: split with the GPT-2 pre-tokenizer, start from single bytes, and
 * apply the lowest-ranked merge present until none applies (what the BPE model does). */
static size_t naive_encode(const vocab_view *v, const unsigned char *s, size_t n, int32_t *out)
{
    int32_t byte_id[256];
    for (int id = 1; id < v->n_ids; id++)
        if (v->piece_len[id] == 1)
            byte_id[(unsigned char)v->piece[id][0]] = id;
    size_t n_out = 0;
    int32_t *w = malloc((n + 1) * sizeof *w);
    for (size_t pos = 0; pos < n;) {
        size_t end = pare_gpt2_split(s, n, pos), k = 0;
        for (size_t i = pos; i < end; i++)
            w[k++] = byte_id[s[i]];
        for (;;) {
            size_t best_rank = (size_t)-1, at = 0;
            for (size_t i = 0; i + 1 < k; i++)
                for (size_t r = 0; r < v->n_merges && r < best_rank; r++)
                    if (v->merge[r][0] == w[i] && v->merge[r][1] == w[i + 1]) {
                        best_rank = r;
                        at = i;
                    }
            if (best_rank == (size_t)-1)
                break;
            w[at] = v->merge[best_rank][2];
            memmove(w + at + 1, w + at + 2, (k - at - 2) * sizeof *w);
            k--;
        }
        memcpy(out + n_out, w, k * sizeof *w);
        n_out += k;
        pos = end;
    }
    free(w);
    return n_out;
}

static void test_bpe_trainer(void)
{
    size_t len;
    char *text = make_text(40000, 1, &len);
    const char *json = tmp_path("tokenizer.json"), *json2 = tmp_path("tokenizer2.json");
    pare_bpe_opts o;
    pare_bpe_defaults(&o);
    o.vocab_size = 400;
    pare_bpe_report r;
    pare_error err = {0};
    CHECKF(pare_bpe_train(text, len, &o, json, NULL, &r, &err) == PARE_OK, "%s", err.msg);
    CHECK(r.bytes == len && r.symbols_before == len);
    CHECKF(r.merges > 50 && r.vocab_size <= 400 && r.vocab_size > 257 && r.merges >= r.vocab_size - 257,
           "%d merges, %d ids", r.merges, r.vocab_size);
    CHECKF(r.symbols_after * 2 < r.symbols_before, "merges shrink the text: %zu -> %zu symbols", r.symbols_before,
           r.symbols_after);
    /* the same text and options give the same file */
    CHECK(pare_bpe_train(text, len, &o, json2, NULL, NULL, &err) == PARE_OK);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK(pare_read_file(json, &a, &la, &err) == PARE_OK && pare_read_file(json2, &b, &lb, &err) == PARE_OK);
    CHECK(a && b && la == lb && !memcmp(a, b, la));
    free(a);
    free(b);

    pare_tokenizer *tok = NULL;
    CHECKF(pare_tokenizer_load_hf(json, &tok, &err) == PARE_OK, "%s", err.msg);
    if (!tok) {
        free(text);
        return;
    }
    CHECK(pare_tokenizer_vocab_size(tok) == r.vocab_size);
    CHECK(pare_tokenizer_eos_id(tok) == 0);
    CHECK(strstr(pare_tokenizer_describe(tok), "ByteLevel") != NULL);
    /* pare's encoder gives the trainer's own segmentation of its text, and the plain BPE above */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK(pare_tokenizer_encode(tok, text, len, 0, &ids, &n_ids, &err) == PARE_OK);
    CHECKF(n_ids == r.symbols_after, "%zu ids, trainer counted %zu", n_ids, r.symbols_after);
    vocab_view v = {0};
    CHECK(read_vocab(json, &v));
    CHECK(v.n_ids == r.vocab_size && (int)v.n_merges == r.merges);
    size_t part = 6000; /* the plain encoder is quadratic: a prefix suffices */
    int32_t *ref = malloc((part + 1) * sizeof *ref), *mine = NULL;
    size_t n_ref = naive_encode(&v, (const unsigned char *)text, part, ref), n_mine = 0;
    CHECK(pare_tokenizer_encode(tok, text, part, 0, &mine, &n_mine, &err) == PARE_OK);
    CHECKF(n_ref == n_mine && !memcmp(ref, mine, n_ref * sizeof *ref), "plain BPE %zu ids, pare %zu", n_ref, n_mine);
    free(mine);
    /* decoding gives the text back */
    char *dec = NULL;
    size_t n_dec = 0;
    CHECK(pare_tokenizer_decode(tok, ids, n_ids, 0, &dec, &n_dec, &err) == PARE_OK);
    CHECK(dec && n_dec == len && !memcmp(dec, text, len));
    free(dec);
    free(ids);
    /* arbitrary bytes (invalid UTF-8, NUL, controls) are lossless: the ids' pieces concatenate to them,
     * and valid UTF-8 decodes back exactly */
    unsigned char bytes[3000];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i < 256 ? i : pare_splitmix64(&s));
    ids = NULL;
    CHECK(pare_tokenizer_encode(tok, (const char *)bytes, sizeof bytes, 0, &ids, &n_ids, &err) == PARE_OK);
    unsigned char *back = malloc(sizeof bytes * 2);
    size_t nb = 0;
    int ok = 1;
    for (size_t i = 0; i < n_ids && ok; i++) {
        ok = ids[i] > 0 && ids[i] < v.n_ids && nb + v.piece_len[ids[i]] <= sizeof bytes * 2;
        if (ok) {
            memcpy(back + nb, v.piece[ids[i]], v.piece_len[ids[i]]);
            nb += v.piece_len[ids[i]];
        }
    }
    CHECKF(ok && nb == sizeof bytes && !memcmp(back, bytes, nb), "arbitrary bytes: %zu of %zu back", nb, sizeof bytes);
    free(back);
    free(ids);
    const char *utf8 = "Grüße, 東京 — naïve café\t\x01\n  spaces  <|endoftext|> end";
    ids = NULL;
    CHECK(pare_tokenizer_encode(tok, utf8, strlen(utf8), 0, &ids, &n_ids, &err) == PARE_OK);
    int special = 0;
    for (size_t i = 0; i < n_ids; i++)
        special += ids[i] == 0;
    CHECK(special == 1); /* the special token's text is matched as the token */
    CHECK(pare_tokenizer_decode(tok, ids, n_ids, 0, &dec, &n_dec, &err) == PARE_OK);
    CHECK(dec && n_dec == strlen(utf8) && !memcmp(dec, utf8, n_dec));
    free(dec);
    free(ids);
    free(ref);
    free_vocab(&v);
    pare_tokenizer_free(tok);
    free(text);
}

static void test_bpe_errors(void)
{
    pare_bpe_opts o;
    pare_bpe_defaults(&o);
    o.vocab_size = 100;
    pare_error err = {0};
    CHECK(pare_bpe_train("abc", 3, &o, tmp_path("t.json"), NULL, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "vocab_size 100") != NULL, "%s", err.msg);
    CHECK(!pare_file_exists(tmp_path("t.json")));
    pare_bpe_defaults(&o);
    CHECK(pare_bpe_train_file(tmp_path("missing.txt"), &o, tmp_path("t.json"), NULL, NULL, &err) == PARE_EIO);
    CHECKF(strstr(err.msg, "missing.txt") != NULL, "%s", err.msg);
    /* a text with too few pairs stops early with fewer ids, still a valid tokenizer */
    CHECK(pare_bpe_train("ab ab ab", 8, &o, tmp_path("small.json"), NULL, NULL, &err) == PARE_OK);
    pare_tokenizer *tok = NULL;
    CHECK(pare_tokenizer_load_hf(tmp_path("small.json"), &tok, &err) == PARE_OK);
    CHECK(tok && pare_tokenizer_vocab_size(tok) > 257 && pare_tokenizer_vocab_size(tok) < 2048);
    pare_tokenizer_free(tok);
}

static const char *DOC_A = "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"
                           "\n\n\tIt/pps (/( to/in the/at left/nr )/) ,/, and/or/cc last/ap ;/. :35.3/cd ?/. ?/.\n";
static const char *DOC_A_TEXT = "The Fulton jury said \" no evidence \".\n"
                                "It (to the left), and/or last;:35.3??";

static void test_brown_detag(void)
{
    char *out = NULL;
    size_t n = 0;
    pare_error err = {0};
    CHECK(pare_brown_detag(DOC_A, strlen(DOC_A), &out, &n, &err) == PARE_OK);
    CHECKF(out && n == strlen(DOC_A_TEXT) && !strcmp(out, DOC_A_TEXT), "got [%s]", out ? out : "");
    free(out);
}

static void write_file(const char *path, const char *s) { CHECK(write_bytes(path, s, strlen(s)) == 0); }

static void test_brown_convert(void)
{
    /* a tarball-like folder: package/ with documents of both sides of the split and other files */
    const char *root = tmp_path("brown"), *pkg = tmp_path("brown/package");
    mkdir(root, 0777);
    mkdir(pkg, 0777);
    char p[4200];
    const char *docs[][2] = {{"ca01", "\tHe/pps ran/vbd ./.\n"},
                             {"cn27", "\tJack/np sat/vbd ./.\n"},
                             {"cl17", DOC_A},
                             {"cp20", "\tShe/pps sang/vbd ,/, too/rb ./.\n\n\tYes/rb ./.\n"}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", pkg, docs[i][0]);
        write_file(p, docs[i][1]);
    }
    snprintf(p, sizeof p, "%s/README", pkg);
    write_file(p, "not/a document\n");
    snprintf(p, sizeof p, "%s/cats.txt", pkg);
    write_file(p, "ca01 news\n");
    pare_brown_report r;
    pare_error err = {0};
    const char *train = tmp_path("train.txt"), *val = tmp_path("val.txt");
    CHECKF(pare_brown_convert(root, train, val, NULL, &r, &err) == PARE_OK, "%s", err.msg);
    CHECK(r.docs_train == 2 && r.docs_val == 2 && r.docs_missing == PARE_BROWN_DOCS - 4);
    char *t = NULL, *v = NULL;
    size_t nt = 0, nv = 0;
    CHECK(pare_read_file(train, &t, &nt, &err) == PARE_OK && pare_read_file(val, &v, &nv, &err) == PARE_OK);
    /* the split's order: held out cl17 before cn27; training cp20 before ca01 (as ../shared's files) */
    char want[512];
    snprintf(want, sizeof want, "%s\n\nJack sat.", DOC_A_TEXT);
    CHECKF(v && !strcmp(v, want), "val [%s]", v ? v : "");
    CHECKF(t && !strcmp(t, "She sang, too.\nYes.\n\nHe ran."), "train [%s]", t ? t : "");
    CHECK(r.bytes_train == nt && r.bytes_val == nv);
    free(t);
    free(v);
    /* through the CLI, into a corpus folder */
    char *out = NULL, *errs = NULL;
    int st = run_pare(&out, &errs,
                      (const char *const[]){"demo", "--convert-brown", pkg, "--corpus", tmp_path("corpus"), NULL});
    CHECKF(st == 0, "exit %d: %s", st, errs);
    CHECK(out && strstr(out, "2 documents") != NULL);
    CHECK(pare_file_exists(tmp_path("corpus/brown_train.txt")) && pare_file_exists(tmp_path("corpus/brown_val.txt")));
    free(out);
    free(errs);
    /* a folder without documents */
    mkdir(tmp_path("empty"), 0777);
    CHECK(pare_brown_convert(tmp_path("empty"), train, val, NULL, &r, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "no Brown documents") && strstr(err.msg, "empty"), "%s", err.msg);
    expect_pare_error(
        (const char *const[]){"demo", "--convert-brown", tmp_path("nowhere"), "--corpus", tmp_path("c2"), NULL},
        (const char *const[]){"nowhere", "not a folder", NULL}, 1);
}

/* A tiny corpus folder for the demo: brown_train.txt and brown_val.txt. */
static const char *tiny_corpus(void)
{
    const char *dir = tmp_path("tiny");
    mkdir(dir, 0777);
    size_t n;
    char *t = make_text(30000, 3, &n), p[4200];
    snprintf(p, sizeof p, "%s/brown_train.txt", dir);
    CHECK(write_bytes(p, t, n) == 0);
    free(t);
    t = make_text(4000, 4, &n);
    snprintf(p, sizeof p, "%s/brown_val.txt", dir);
    CHECK(write_bytes(p, t, n) == 0);
    free(t);
    return dir;
}

#define TINY                                                                                                           \
    "--vocab", "300", "--dim", "32", "--layers", "1", "--heads", "2", "--batch", "2", "--seq", "32", "--lr-warmup",    \
        "1", "--checkpoint-every", "2"

/* The folder named on the "model" line of pare demo's stdout. */
static int model_line(const char *out, char *dir, size_t cap)
{
    const char *m = out ? strstr(out, "model         ") : NULL;
    if (!m)
        return 0;
    m += strlen("model         ");
    size_t n = strcspn(m, "\n");
    if (n >= cap)
        return 0;
    memcpy(dir, m, n);
    dir[n] = '\0';
    return 1;
}

/* Cache entries: finished folders (partial = 0) or unfinished ones (partial = 1). */
static int count_entries(const char *dir, int partial)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        int is_partial = l > 8 && !strcmp(e->d_name + l - 8, ".partial");
        if (!strncmp(e->d_name, "demo-", 5) && is_partial == partial)
            n++;
    }
    closedir(d);
    return n;
}

static double demo_json_ppl(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/demo.json", dir);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    double ppl = json_number_value(json_object_get(json_object_get(j, "eval"), "ppl"));
    json_decref(j);
    return j ? ppl : NAN;
}

static void test_demo_cli(void)
{
    const char *corpus = tiny_corpus(), *cache = tmp_path("cache");
    char *out = NULL, *err = NULL, dir[4096] = "";
    const char *args[] = {"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--steps", "6", TINY, NULL};
    int st = run_pare(&out, &err, args);
    CHECKF(st == 0, "exit %d: %s", st, err);
    CHECKF(model_line(out, dir, sizeof dir), "stdout: %s", out);
    CHECK(strstr(err, "[train] step 6/6") != NULL && strstr(err, "[demo] tokenizer: byte-level BPE") != NULL);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "demo.json", "train.jsonl"};
    char p[4200];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        CHECKF(pare_file_exists(p), "%s", p);
    }
    CHECK(strncmp(dir, cache, strlen(cache)) == 0 && count_entries(cache, 1) == 0);
    free(out);
    free(err);
    /* pare eval reads it: a finite perplexity, the one the demo recorded under the same window */
    char val[4200];
    snprintf(val, sizeof val, "%s/brown_val.txt", corpus);
    st = run_pare(&out, &err,
                  (const char *const[]){"eval", "--model", dir, "--data", val, "--window", "32", "--json", NULL});
    CHECKF(st == 0, "exit %d: %s", st, err);
    json_error_t je;
    json_t *j = out ? json_loads(out, 0, &je) : NULL;
    double ppl = json_number_value(json_object_get(j, "ppl"));
    CHECKF(isfinite(ppl) && ppl > 1 && ppl < 1e4, "ppl %g from %s", ppl, out);
    double rec = demo_json_ppl(dir);
    CHECKF(fabs(ppl - rec) <= 1e-6 * rec, "pare eval %.6f, demo.json %.6f", ppl, rec);
    json_decref(j);
    free(out);
    free(err);
    /* a second run reuses the cache: no training, the weights untouched */
    struct stat before, after;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(stat(p, &before) == 0);
    st = run_pare(&out, &err, args);
    char dir2[4096] = "";
    CHECK(st == 0 && model_line(out, dir2, sizeof dir2) && !strcmp(dir, dir2));
    CHECKF(strstr(err, "cached model") && !strstr(err, "[train]") && !strstr(err, "[bpe]"), "%s", err);
    CHECK(stat(p, &after) == 0 && after.st_ino == before.st_ino && after.st_mtime == before.st_mtime);
    free(out);
    free(err);
    /* other settings are another cache entry */
    const char *args7[] = {"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--steps", "7", TINY, NULL};
    st = run_pare(&out, &err, args7);
    CHECK(st == 0 && model_line(out, dir2, sizeof dir2) && strcmp(dir, dir2) != 0 && count_entries(cache, 0) == 2);
    free(out);
    free(err);
    /* --force trains again */
    const char *argsf[] = {"demo", "--no-tui", "--force", "--corpus", corpus, "--cache",
                           cache,  "--steps",  "6",       TINY,       NULL};
    st = run_pare(&out, &err, argsf);
    CHECKF(st == 0 && strstr(err, "[train] step 6/6") != NULL, "exit %d: %s", st, err);
    CHECK(model_line(out, dir2, sizeof dir2) && !strcmp(dir, dir2) && pare_file_exists(p));
    CHECK(count_entries(cache, 1) == 0);
    free(out);
    free(err);
}

static void test_demo_interrupted(void)
{
    const char *corpus = tiny_corpus(), *cache = tmp_path("cache");
    char *out = NULL, *err = NULL, dir[4096];
    /* stopped after the tokenizer, then after 2 of 6 steps: no final folder, the partial one kept */
    int st = run_pare(&out, &err,
                      (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--steps", "6",
                                            "--until", "tokenizer", TINY, NULL});
    CHECK(st == 0 && count_entries(cache, 1) == 1 && count_entries(cache, 0) == 0);
    free(out);
    free(err);
    st = run_pare(&out, &err,
                  (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--steps", "6",
                                        "--until", "2", TINY, NULL});
    CHECKF(st == 0 && strstr(err, "tokenizer") && strstr(err, "from an earlier run"), "exit %d: %s", st, err);
    CHECK(!model_line(out, dir, sizeof dir));
    CHECK(count_entries(cache, 1) == 1 && count_entries(cache, 0) == 0);
    free(out);
    free(err);
    /* the same command without --until continues from the checkpoint and finishes */
    st = run_pare(
        &out, &err,
        (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--steps", "6", TINY, NULL});
    CHECKF(st == 0 && strstr(err, "resumed") && strstr(err, "at step 2 of 6"), "exit %d: %s", st, err);
    CHECK(model_line(out, dir, sizeof dir) && count_entries(cache, 1) == 0 && count_entries(cache, 0) == 1);
    free(out);
    free(err);
    /* Ctrl-C during training: exit 130, no final folder */
    const char *cache2 = tmp_path("cache2");
    st = run_pare_signal(&out, &err,
                         (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache2, "--steps",
                                               "1000000", TINY, NULL},
                         2500, SIGINT);
    CHECKF(st == 130, "exit %d: %s", st, err);
    CHECKF(err && strstr(err, "interrupted") && strstr(err, "continue"), "%s", err);
    CHECK(count_entries(cache2, 0) == 0 && count_entries(cache2, 1) == 1);
    free(out);
    free(err);
}

static void test_demo_errors(void)
{
    const char *cache = tmp_path("cache");
    /* a corpus folder without the text names the file and says how to get it */
    expect_pare_error((const char *const[]){"demo", "--no-tui", "--corpus", tmp_path("nocorpus"), "--cache", cache, NULL},
                      (const char *const[]){"nocorpus/brown_train.txt", "make corpus", NULL}, 1);
    CHECK(count_entries(cache, 0) == 0 && count_entries(cache, 1) == 0);
    const char *corpus = tiny_corpus();
    expect_pare_error(
        (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--until", "soon", NULL},
        (const char *const[]){"--until 'soon'", NULL}, 1);
    expect_pare_error((const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--cache", cache, "--dim", "30",
                                            "--heads", "4", NULL},
                      (const char *const[]){"--dim 30", NULL}, 1);
    expect_pare_error((const char *const[]){"demo", "--bogus", NULL}, (const char *const[]){"--bogus", NULL}, 0);
    /* the cache folder defaults to $XDG_CACHE_HOME/pare; pare without a command points at the demo */
    char *out = NULL, *err = NULL;
    const char *old = getenv("PARE_MODEL");
    char *saved = old ? strdup(old) : NULL;
    unsetenv("PARE_MODEL");
    int st = run_pare(&out, &err, (const char *const[]){NULL});
    CHECK(st == 2 && err && strstr(err, "pare demo"));
    free(out);
    free(err);
    st = run_pare(&out, &err, (const char *const[]){"tui", NULL});
    CHECKF(st == 2 && err && strstr(err, "no model") && strstr(err, "pare demo"), "exit %d: %s", st, err);
    free(out);
    free(err);
    if (saved) {
        setenv("PARE_MODEL", saved, 1);
        free(saved);
    }
}

static void test_demo_xdg_cache(void)
{
    const char *corpus = tiny_corpus(), *xdg = tmp_path("xdg");
    char *out = NULL, *err = NULL, dir[4096] = "", want[4200];
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", xdg, 1);
    int st = run_pare(&out, &err,
                      (const char *const[]){"demo", "--no-tui", "--corpus", corpus, "--steps", "2", TINY, NULL});
    if (saved) {
        setenv("XDG_CACHE_HOME", saved, 1);
        free(saved);
    } else {
        unsetenv("XDG_CACHE_HOME");
    }
    snprintf(want, sizeof want, "%s/pare/demo-", xdg);
    CHECKF(st == 0 && model_line(out, dir, sizeof dir) && !strncmp(dir, want, strlen(want)), "exit %d, [%s]: %s", st,
           dir, err);
    free(out);
    free(err);
}

/* Without --no-tui, on a terminal, pare demo opens the workbench on the model it built: run it
 * under a pseudo-terminal, wait for the workbench's spectra line, quit with q. */
static void test_demo_opens_tui(void)
{
    const char *corpus = tiny_corpus(), *cache = tmp_path("cache"), *bin = getenv("PARE_BIN");
    bin = bin && *bin ? bin : "./pare";
    const char *argv[] = {bin, "demo", "--corpus", corpus, "--cache", cache, "--steps", "2", TINY, NULL};
    struct winsize ws = {.ws_row = 30, .ws_col = 100};
    int fd;
    fflush(stdout);
    pid_t pid = forkpty(&fd, NULL, NULL, &ws);
    if (pid < 0)
        SKIP("skipped: no pseudo-terminal");
    if (pid == 0) {
        setenv("TERM", "xterm-256color", 1);
        setenv("LC_ALL", "C.UTF-8", 1);
        setenv("PARE_RUNS", tmp_path("runs"), 1); /* the workbench's session folder, if it writes one */
        unsetenv("COLUMNS");
        unsetenv("LINES");
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t cap = 1 << 22, n = 0;
    char *buf = malloc(cap);
    int seen = 0, sent = 0, status = -1;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) > 0) {
            ssize_t r = read(fd, buf + n, cap - 1 - n);
            if (r > 0) {
                n += (size_t)r;
                buf[n] = '\0';
            }
        }
        if (!seen && strstr(buf, "matrices ready")) {
            seen = 1;
            if (write(fd, "q", 1) == 1)
                sent = 1;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 120 || n + 1 >= cap) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
    }
    CHECKF(seen && sent, "the workbench did not show its spectra; output ends: %s", n > 400 ? buf + n - 400 : buf);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    CHECK(count_entries(cache, 0) == 1);
    free(buf);
    close(fd);
}

void suite_demo(void);
void suite_demo(void)
{
    RUN(test_bpe_trainer);
    RUN(test_bpe_errors);
    RUN(test_brown_detag);
    RUN(test_brown_convert);
    RUN(test_demo_cli);
    RUN(test_demo_interrupted);
    RUN(test_demo_errors);
    RUN(test_demo_xdg_cache);
    RUN(test_demo_opens_tui);
}

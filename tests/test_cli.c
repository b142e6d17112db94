/* End to end through ./pare: the reference protocol on every evaluation file, greedy generation,
 * parameter counts, and bad input giving exit status 2 with one line naming the file. */
#include <jansson.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/matmul.h"
#include "fixture.h"
#include "harness.h"
#include "refdata.h"

static const char *const HF_MODELS[] = {"ref-llama-12m", "ref-gpt2-6m"};
static const struct {
    const char *name, *path;
} EVAL_FILES[] = {
    {"wiki.test.raw", "data/text/wikitext-2/wiki.test.raw"},
    {"ptb.test.txt", "data/text/ptb/ptb.test.txt"},
    {"brown_val.txt", "data/text/brown/brown_val.txt"},
    {"tiny_test.txt", "data/text/tinystories/tiny_test.txt"},
};

static const char *model_dir(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    return shared_path(rel);
}

static json_t *run_json(const char *const *args, int *status)
{
    char *out = NULL, *err = NULL;
    *status = run_pare(&out, &err, args);
    json_error_t je;
    json_t *j = *status == 0 ? json_loads(out, 0, &je) : NULL;
    if (*status != 0 || !j)
        printf("  pare exited %d; stderr: %.300s\n", *status, err);
    free(out);
    free(err);
    return j;
}

/* `pare eval` with default options reproduces every reference perplexity within 0.1%, with the
 * reference's token, window and target counts. PARE_TEST_QUICK keeps to the smallest file. */
static void test_eval_reference_protocol(void)
{
    NEED_SHARED();
    int quick = getenv("PARE_TEST_QUICK") != NULL;
    for (int m = 0; m < 2; m++) {
        json_t *ref = ref_json_checked(HF_MODELS[m]);
        for (int f = 0; ref && f < 4; f++) {
            if (quick && f != 3)
                continue;
            char data[1200];
            snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[f].path));
            const char *args[] = {"eval", "--model", model_dir(HF_MODELS[m]), "--data", data, "--json", NULL};
            int st;
            json_t *j = run_json(args, &st);
            json_t *r = ref_field(ref, HF_MODELS[m], EVAL_FILES[f].name, NULL);
            CHECKF(j != NULL, "%s %s: exit %d", HF_MODELS[m], EVAL_FILES[f].name, st);
            if (!j || !r) {
                json_decref(j);
                continue;
            }
            double ppl = json_real_value(json_object_get(j, "ppl")),
                   want = json_real_value(ref_field(ref, HF_MODELS[m], EVAL_FILES[f].name, "ppl", NULL));
            printf("  %s %-14s ppl %.4f (reference %.4f)  %.0f tok/s\n", HF_MODELS[m], EVAL_FILES[f].name, ppl, want,
                   json_real_value(json_object_get(j, "tokens_per_second")));
            CHECKF(fabs(ppl - want) <= 1e-3 * want, "%s %s: ppl %.5f vs %.5f", HF_MODELS[m], EVAL_FILES[f].name, ppl,
                   want);
            const char *keys[][2] = {
                {"tokens", "tokens"}, {"windows", "windows"}, {"predicted", "predicted"}, {"window", "window_len"}};
            for (int k = 0; k < 4; k++) {
                json_int_t want_k = json_integer_value(
                    ref_field(ref, HF_MODELS[m], EVAL_FILES[f].name, keys[k][1], NULL));
                CHECKF(json_integer_value(json_object_get(j, keys[k][0])) == want_k, "%s %s: %s %lld vs reference %lld",
                       HF_MODELS[m], EVAL_FILES[f].name, keys[k][0],
                       (long long)json_integer_value(json_object_get(j, keys[k][0])), (long long)want_k);
            }
            json_decref(j);
        }
        json_decref(ref);
    }
    /* Meta's 32000-piece Llama-2 vocabulary on a tiny random BF16 model: reference.json lists per file
     * the token count and perplexity from the reference libraries. */
    json_t *ref = ref_json_checked("llama2-vocab-tiny");
    for (int f = 0; f < 4 && ref; f++) {
        if (quick && f != 3)
            continue;
        json_t *r = ref_field(ref, "llama2-vocab-tiny", "files", EVAL_FILES[f].name, NULL);
        char data[1200];
        snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[f].path));
        const char *args[] = {"eval", "--model", model_dir("llama2-vocab-tiny"), "--data", data, "--json", NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j && r, "llama2-vocab-tiny %s: exit %d", EVAL_FILES[f].name, st);
        if (j && r) {
            double ppl = json_real_value(json_object_get(j, "ppl")),
                   want = json_real_value(ref_field(ref, "llama2-vocab-tiny", "files", EVAL_FILES[f].name, "ppl", NULL));
            printf("  llama2-vocab-tiny %-14s ppl %.3f (reference %.3f)\n", EVAL_FILES[f].name, ppl, want);
            CHECKF(fabs(ppl - want) <= 1e-3 * want, "llama2-vocab-tiny %s: ppl %.4f vs %.4f", EVAL_FILES[f].name, ppl,
                   want);
            for (int k = 0; k < 2; k++) {
                const char *key = k ? "windows" : "tokens";
                CHECKF(
                    json_integer_value(json_object_get(j, key)) ==
                        json_integer_value(ref_field(ref, "llama2-vocab-tiny", "files", EVAL_FILES[f].name, key, NULL)),
                    "llama2-vocab-tiny %s: %s differs from the reference", EVAL_FILES[f].name, key);
            }
        }
        json_decref(j);
    }
    json_decref(ref);
}

/* The human-readable protocol card states every choice that affects the figure. */
static void test_eval_protocol_card(void)
{
    NEED_SHARED();
    char data[1200];
    snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[3].path));
    const char *args[] = {
        "eval",  "--model", model_dir("ref-gpt2-6m"), "--data", data, "--window", "128", "--stride", "64",
        "--bos", NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    CHECKF(st == 0, "exit %d: %s", st, err);
    const char *want[] = {"file",
                          data,
                          "tokens",
                          "window      128 tokens = BOS + text",
                          "stride      64 text tokens",
                          "BOS         inserted",
                          "windows",
                          "predicted",
                          "remainder",
                          "perplexity"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECKF(strstr(out, want[i]) != NULL, "card lacks '%s':\n%s", want[i], out);
    CHECKF(strstr(err, "tok/s") != NULL, "no progress/throughput on stderr: %s", err);
    free(out);
    free(err);
}

/* --matmul and PARE_MATMUL: a wrong value is refused naming it. */
static void test_matmul_option(void)
{
    expect_pare_error((const char *const[]){"info", "--matmul", "bf17", NULL},
                      (const char *const[]){"--matmul", "bf17", "f32 or bf16", NULL}, 1);
    setenv("PARE_MATMUL", "f16", 1);
    expect_pare_error((const char *const[]){"info", NULL}, (const char *const[]){"PARE_MATMUL", "f16", NULL}, 1);
    unsetenv("PARE_MATMUL");
}

/* `pare eval --matmul bf16` on the reference models: the same perplexity to within BF16's
 * precision, not the same bits (the kernel ran), and the card and JSON say which products ran. */
static void test_eval_matmul_bf16(void)
{
    NEED_SHARED();
    if (!pare_matmul_bf16_supported())
        SKIP("this CPU has no AVX512-BF16 instructions");
    char data[1200];
    snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[2].path));
    for (size_t i = 0; i < sizeof HF_MODELS / sizeof HF_MODELS[0]; i++) {
        double ppl[2] = {0, 0};
        for (int bf16 = 0; bf16 < 2; bf16++) {
            const char *args[] = {
                "eval",   "--model",  model_dir(HF_MODELS[i]), "--data", data, "--limit-tokens", "8192",
                "--json", "--matmul", bf16 ? "bf16" : "f32",   NULL};
            int st;
            json_t *j = run_json(args, &st);
            CHECKF(j != NULL, "%s: pare eval --matmul %s failed", HF_MODELS[i], args[9]);
            if (!j)
                return;
            const char *mm = json_string_value(json_object_get(j, "matmul"));
            CHECKF(mm && !strcmp(mm, args[9]), "%s: JSON says matmul %s, not %s", HF_MODELS[i], mm ? mm : "(none)",
                   args[9]);
            ppl[bf16] = json_number_value(json_object_get(j, "ppl"));
            json_decref(j);
        }
        /* BF16 keeps 8 significant bits: a relative perplexity change of 1% would be 30 such roundings
         * all pulling one way */
        double rel = fabs(ppl[1] / ppl[0] - 1);
        CHECKF(ppl[1] != ppl[0] && rel < 1e-2, "%s: perplexity %.6f with bf16 products, %.6f with fp32 (%.3g)",
               HF_MODELS[i], ppl[1], ppl[0], rel);
    }
    const char *args[] = {
        "eval", "--model", model_dir(HF_MODELS[0]), "--data", data, "--limit-tokens", "2048", "--matmul", "bf16", NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    CHECKF(st == 0 && strstr(out, "matmul      bf16"), "exit %d; the card does not name the bf16 products:\n%s", st,
           out);
    free(out);
    free(err);
}

/* Greedy decoding of the reference prompt equals greedy_ids and decodes to greedy_continuation. */
static void test_generate_greedy_reference(void)
{
    NEED_SHARED();
    for (int m = 0; m < 2; m++) {
        json_t *ref = ref_json_checked(HF_MODELS[m]);
        const char *prompt = json_string_value(ref_field(ref, HF_MODELS[m], "prompt", NULL));
        if (!prompt) {
            json_decref(ref);
            continue;
        }
        size_t n_want = 0, n_prompt = 0;
        int32_t *want = ref_ids(ref_field(ref, HF_MODELS[m], "greedy_ids", NULL), &n_want);
        int32_t *prompt_ids = ref_ids(ref_field(ref, HF_MODELS[m], "prompt_ids", NULL), &n_prompt);
        char nbuf[16];
        snprintf(nbuf, sizeof nbuf, "%zu", n_want - n_prompt);
        const char *args[] = {"generate", "--model", model_dir(HF_MODELS[m]), "--prompt", prompt, "-n", nbuf,
                              "--json",   NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j != NULL, "%s: generate failed", HF_MODELS[m]);
        if (j) {
            size_t n_got = 0, n_gp = 0;
            int32_t *got = ref_ids(json_object_get(j, "ids"), &n_got);
            int32_t *gp = ref_ids(json_object_get(j, "prompt_ids"), &n_gp);
            CHECKF(n_gp == n_prompt && memcmp(gp, prompt_ids, n_gp * 4) == 0, "%s: prompt ids differ", HF_MODELS[m]);
            size_t first_diff = 0;
            while (first_diff < n_got && first_diff < n_want && got[first_diff] == want[first_diff])
                first_diff++;
            CHECKF(n_got == n_want && first_diff == n_want, "%s: %zu ids vs %zu, first difference at %zu", HF_MODELS[m],
                   n_got, n_want, first_diff);
            const char *cont = json_string_value(json_object_get(j, "continuation"));
            const char *want_cont = json_string_value(ref_field(ref, HF_MODELS[m], "greedy_continuation", NULL));
            CHECKF(cont && want_cont && strcmp(cont, want_cont) == 0, "%s: continuation '%s' vs '%s'", HF_MODELS[m],
                   cont ? cont : "", want_cont ? want_cont : "");
            free(got);
            free(gp);
        }
        json_decref(j);
        free(want);
        free(prompt_ids);
        json_decref(ref);
    }
}

/* llama2.c's stories260K, greedy from BOS, tells the story run.c -t 0 tells. */
static void test_generate_stories260k(void)
{
    NEED_SHARED();
    const char *args[] = {"generate", "--model", model_dir("stories260K"), "-n", "40", NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    const char *want = "Once upon a time, there was a little girl named Lily.";
    CHECKF(st == 0 && strncmp(out, want, strlen(want)) == 0, "exit %d, output: %s %s", st, out, err);
    free(out);
    free(err);
    /* perplexity on TinyStories text: better than a uniform guess over its 512 tokens */
    char data[1200];
    snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[3].path));
    const char *eargs[] = {"eval", "--model", model_dir("stories260K"), "--data", data, "--json", NULL};
    json_t *j = run_json(eargs, &st);
    CHECK(j != NULL);
    double ppl = json_real_value(json_object_get(j, "ppl"));
    CHECKF(isfinite(ppl) && ppl > 1 && ppl < 512, "stories260K ppl %g", ppl);
    json_decref(j);
}

/* Parameter counts in `pare info --json` equal what the config implies, computed here. */
static void test_info_counts(void)
{
    NEED_SHARED();
    for (int m = 0; m < 2; m++) {
        char cfgp[1200];
        snprintf(cfgp, sizeof cfgp, "%s/config.json", model_dir(HF_MODELS[m]));
        json_error_t je;
        json_t *cfg = json_load_file(cfgp, 0, &je);
        long long C, L, V, F, H, KV, hd, P = 0, tied;
        int gpt2 = m == 1;
        if (gpt2) {
            C = json_integer_value(json_object_get(cfg, "n_embd"));
            L = json_integer_value(json_object_get(cfg, "n_layer"));
            H = KV = json_integer_value(json_object_get(cfg, "n_head"));
            F = json_is_null(json_object_get(cfg, "n_inner")) ? 4 * C
                                                              : json_integer_value(json_object_get(cfg, "n_inner"));
            P = json_integer_value(json_object_get(cfg, "n_positions"));
            hd = C / H;
        } else {
            C = json_integer_value(json_object_get(cfg, "hidden_size"));
            L = json_integer_value(json_object_get(cfg, "num_hidden_layers"));
            H = json_integer_value(json_object_get(cfg, "num_attention_heads"));
            KV = json_integer_value(json_object_get(cfg, "num_key_value_heads"));
            F = json_integer_value(json_object_get(cfg, "intermediate_size"));
            hd = json_integer_value(json_object_get(cfg, "head_dim"));
        }
        V = json_integer_value(json_object_get(cfg, "vocab_size"));
        tied = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
        long long qd = H * hd, kvd = KV * hd;
        long long lin = gpt2 ? L * (C * 3 * C + 3 * C + C * C + C + 2 * C * F + F + C)
                             : L * (C * qd + 2 * C * kvd + qd * C + 3 * C * F);
        long long norms = gpt2 ? L * 4 * C + 2 * C : L * 2 * C + C;
        long long total = V * C + P * C + lin + norms + (tied ? 0 : V * C);
        const char *args[] = {"info", "--model", model_dir(HF_MODELS[m]), "--json", NULL};
        int st;
        json_t *j = run_json(args, &st);
        json_t *pj = json_object_get(j, "params");
        CHECKF(json_integer_value(json_object_get(pj, "total")) == total, "%s: total %lld vs %lld", HF_MODELS[m],
               (long long)json_integer_value(json_object_get(pj, "total")), total);
        CHECKF(json_integer_value(json_object_get(pj, "block_linear")) == lin, "%s: block linears", HF_MODELS[m]);
        CHECKF(json_array_size(json_object_get(j, "matrices")) == (size_t)(L * (gpt2 ? 6 : 7)), "%s: matrix list",
               HF_MODELS[m]);
        json_decref(j);
        json_decref(cfg);
    }
}

/* ---- bad input ---- */

/* Runs pare; expects exit 2 and exactly one stderr line containing every string in `needles`. */
static void expect_bad(const char *const *args, const char *const *needles) { expect_pare_error(args, needles, 1); }

/* Rewrites a safetensors file's header through `edit`, keeping the data area as it is. */
static void edit_header(const char *path, void (*edit)(json_t *hdr, size_t area_len))
{
    size_t len = 0;
    unsigned char *b = fixture_read(path, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | b[i];
    json_error_t je;
    json_t *h = json_loadb((const char *)b + 8, hl, 0, &je);
    edit(h, len - 8 - hl);
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t tl = strlen(text);
    unsigned char *nb = malloc(8 + tl + (len - 8 - hl));
    for (int i = 0; i < 8; i++)
        nb[i] = (unsigned char)((uint64_t)tl >> (8 * i));
    memcpy(nb + 8, text, tl);
    memcpy(nb + 8 + tl, b + 8 + hl, len - 8 - hl);
    fixture_write_raw(path, nb, 8 + tl + (len - 8 - hl));
    free(nb);
    free(text);
    json_decref(h);
    free(b);
}

static void overlap_edit(json_t *h, size_t area)
{
    json_t *a = json_object_get(h, "model.layers.0.input_layernorm.weight");
    json_t *b = json_object_get(h, "model.layers.0.post_attention_layernorm.weight");
    json_object_set(b, "data_offsets", json_object_get(a, "data_offsets"));
}

static void out_of_range_edit(json_t *h, size_t area)
{
    json_t *a = json_object_get(h, "model.norm.weight");
    json_int_t n = json_integer_value(json_array_get(json_object_get(a, "data_offsets"), 1)) -
                   json_integer_value(json_array_get(json_object_get(a, "data_offsets"), 0));
    json_object_set_new(a, "data_offsets", json_pack("[I, I]", (json_int_t)area, (json_int_t)area + n));
}

static void dtype_edit(json_t *h, size_t area)
{
    json_object_set_new(json_object_get(h, "model.norm.weight"), "dtype", json_string("F16"));
}

static void test_bad_safetensors(void)
{
    char st[1300];
    const char *d = fixture_hf_dir("trunc", 0);
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    size_t len = 0;
    unsigned char *b = fixture_read(st, &len);
    const char *args[] = {"info", "--model", d, NULL};
    fixture_write_raw(st, b, len / 2);
    expect_bad(args, (const char *const[]){"pare info: ", st, "out of range", NULL});
    fixture_write_raw(st, b, 5);
    expect_bad(args, (const char *const[]){st, "truncated", NULL});
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    c[0] = c[1] = c[2] = 0xff; /* header length past the end */
    fixture_write_raw(st, c, len);
    expect_bad(args, (const char *const[]){st, "runs past the end", NULL});
    memcpy(c, b, len);
    c[9] = '#'; /* first key's opening quote */
    fixture_write_raw(st, c, len);
    expect_bad(args, (const char *const[]){st, "invalid header JSON", NULL});
    fixture_write_raw(st, b, len);
    edit_header(st, overlap_edit);
    expect_bad(args, (const char *const[]){st, "overlap", NULL});
    fixture_write_raw(st, b, len);
    edit_header(st, out_of_range_edit);
    expect_bad(args, (const char *const[]){st, "model.norm.weight", "out of range", NULL});
    fixture_write_raw(st, b, len);
    edit_header(st, dtype_edit);
    expect_bad(args, (const char *const[]){st, "model.norm.weight", "F16", NULL});
    free(c);
    free(b);
}

static void test_bad_model_config(void)
{
    const char *d = fixture_hf_dir("cfg", 0);
    const char *args[] = {"info", "--model", d, NULL};
    char st[1300], cfg[1300];
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    snprintf(cfg, sizeof cfg, "%s/config.json", d);
    fixture_set_config(d, "num_hidden_layers", json_integer(3));
    expect_bad(args, (const char *const[]){st, "model.layers.2.", "missing", NULL});
    fixture_set_config(d, "num_hidden_layers", json_integer(2));
    fixture_set_config(d, "hidden_size", json_integer(40));
    expect_bad(args, (const char *const[]){st, "model.embed_tokens.weight", "shape", NULL});
    fixture_set_config(d, "hidden_size", json_integer(32));
    fixture_set_config(d, "architectures", json_pack("[s]", "T5ForConditionalGeneration"));
    expect_bad(args, (const char *const[]){cfg, "T5ForConditionalGeneration", "LlamaForCausalLM, Mistral", NULL});
    const char *missing[] = {"info", "--model", tmp_path("no-such-model"), NULL};
    expect_bad(missing, (const char *const[]){"no-such-model", NULL});
}

static void test_bad_tokenizer(void)
{
    const char *d = fixture_hf_dir("tok", 0);
    char tp[1300];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", d);
    json_error_t je;
    json_t *j = json_load_file(tp, 0, &je);
    json_object_set_new(json_object_get(j, "model"), "type", json_string("WordPiece"));
    json_dump_file(j, tp, 0);
    json_decref(j);
    const char *args[] = {"info", "--model", d, NULL};
    expect_bad(args, (const char *const[]){tp, "WordPiece", NULL});
}

static void test_bad_eval_data(void)
{
    const char *d = fixture_hf_dir("data", 0);
    const char *empty = tmp_path("empty.txt"), *shortf = tmp_path("short.txt"), *text = tmp_path("text.txt");
    fixture_write_raw(empty, "", 0);
    fixture_write_raw(shortf, "a few words", 11);
    fixture_write_pattern(text, "abc defg hij ", 4096);
    const char *a1[] = {"eval", "--model", d, "--data", empty, "--window", "32", NULL};
    expect_bad(a1, (const char *const[]){empty, "empty data file", NULL});
    const char *a2[] = {"eval", "--model", d, "--data", shortf, "--window", "32", NULL};
    expect_bad(a2, (const char *const[]){shortf, "shorter than one window", NULL});
    const char *a3[] = {"eval", "--model", d, "--data", text, "--window", "65", NULL};
    expect_bad(a3, (const char *const[]){"--window 65", "64 positions", NULL});
    const char *a4[] = {"eval", "--model", d, "--data", tmp_path("absent.txt"), "--window", "32", NULL};
    expect_bad(a4, (const char *const[]){"absent.txt", "cannot open", NULL});
    const char *a5[] = {"eval", "--model", d, "--data", text, "--window", "abc", NULL};
    expect_bad(a5, (const char *const[]){"--window", "abc", NULL});
    const char *a6[] = {"eval", "--model", d, "--data", text, "--window", "32", "--frobnicate", NULL};
    expect_bad(a6, (const char *const[]){"--frobnicate", NULL});
    const char *a7[] = {"eval", "--model", d, "--data", text, "--window", "32", "--stride", "40", NULL};
    expect_bad(a7, (const char *const[]){"--stride 40", NULL});
    /* and a good run on the same fixture works */
    const char *ok[] = {"eval", "--model", d, "--data", text, "--window", "32", "--json", NULL};
    int st;
    json_t *j = run_json(ok, &st);
    CHECKF(j && isfinite(json_real_value(json_object_get(j, "ppl"))), "fixture eval failed");
    json_decref(j);
}

/* Ctrl-C during an evaluation stops it cleanly: exit 130, a message saying so, no result printed. */
static void test_eval_interrupt(void)
{
    NEED_SHARED();
    char data[1200];
    snprintf(data, sizeof data, "%s", shared_path(EVAL_FILES[0].path));
    const char *args[] = {"eval", "--model", model_dir("ref-llama-12m"), "--data", data, NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare_signal(&out, &err, args, 1500, SIGINT);
    CHECKF(st == 130, "exit %d; stderr: %s", st, err);
    CHECKF(strstr(err, "interrupted") != NULL, "stderr: %s", err);
    CHECKF(strstr(out, "perplexity") == NULL, "a result was printed: %s", out);
    free(out);
    free(err);
}

/* `pare spectra` lists every block matrix with consistent statistics, plain and whitened. */
static void test_spectra_command(void)
{
    const char *d = fixture_hf_dir("spec", 0);
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "the quick brown fox jumps over a lazy dog ", 6000);
    const char *weightings[] = {"none", "act", "whiten"};
    for (int w = 0; w < 3; w++) {
        const char *args[] = {"spectra", "--model",         d,   "--weighting", weightings[w], "--calib",
                              text,      "--calib-samples", "4", "--calib-len", "32",          "--json",
                              NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j && json_array_size(j) == 14, "%s: exit %d, %zu matrices", weightings[w], st, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++) {
            json_t *o = json_array_get(j, i);
            long long r90 = json_integer_value(json_object_get(o, "rank90")),
                      r99 = json_integer_value(json_object_get(o, "rank99"));
            json_t *shape = json_object_get(o, "shape");
            long long mn = json_integer_value(json_array_get(shape, 0)) < json_integer_value(json_array_get(shape, 1))
                               ? json_integer_value(json_array_get(shape, 0))
                               : json_integer_value(json_array_get(shape, 1));
            CHECK(r90 >= 1 && r90 <= r99 && r99 <= mn);
        }
        json_decref(j);
    }
    const char *bad[] = {"spectra", "--model", d, "--weighting", "act", NULL};
    expect_bad(bad, (const char *const[]){"--weighting act needs --calib", NULL});
    const char *bad2[] = {"spectra", "--model", d, "--weighting", "fisher", NULL};
    expect_bad(bad2, (const char *const[]){"fisher", NULL});
}

/* `pare compress` removes the requested share of block parameters with every method and the
 * compressed model still evaluates; bad methods, ratios and missing calibration are refused. */
static void test_compress_command(void)
{
    const char *d = fixture_hf_dir("comp", 0);
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "she sells sea shells by the sea shore and the shells she sells are sea shells ", 8000);
    const char *methods[] = {"lorap", "lorap-magnitude", "svd", "asvd", "svdllm", "wanda", "magnitude", "global"};
    for (int i = 0; i < 8; i++) {
        const char *args[] = {"compress", "--model", d,    "--method",        methods[i], "--ratio",
                              "0.5",      "--calib", text, "--calib-samples", "4",        "--calib-len",
                              "32",       "--eval",  text, "--eval-dense",    "--window", "32",
                              "--json",   NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j != NULL, "%s: exit %d", methods[i], st);
        if (!j)
            continue;
        json_t *p = json_object_get(j, "params");
        double before = (double)json_integer_value(json_object_get(p, "block_linear_before"));
        double after = (double)json_integer_value(json_object_get(p, "block_linear_after"));
        CHECKF(after <= 0.5 * before * 1.02 && after >= 0.5 * before * 0.90, "%s: %.0f -> %.0f for ratio 0.5",
               methods[i], before, after);
        json_t *e = json_array_get(json_object_get(j, "eval"), 0);
        double ppl = json_real_value(json_object_get(e, "ppl")),
               dense = json_real_value(json_object_get(e, "ppl_dense"));
        CHECKF(isfinite(ppl) && ppl > 1 && dense > 1 && ppl != dense, "%s: ppl %g (dense %g)", methods[i], ppl, dense);
        json_decref(j);
    }
    const char *b1[] = {"compress", "--model", d, "--method", "pruneall", NULL};
    expect_bad(b1, (const char *const[]){"pruneall", NULL});
    const char *b2[] = {"compress", "--model", d, "--ratio", "1.5", "--calib", text, NULL};
    expect_bad(b2, (const char *const[]){"--ratio 1.5", NULL});
    const char *b3[] = {"compress", "--model", d, "--method", "asvd", "--ratio", "0.3", NULL};
    expect_bad(b3, (const char *const[]){"--calib", NULL});
    const char *b4[] = {"compress", "--model", d, "--keep-least", "0.9", "--ratio", "0.3", "--calib", text, NULL};
    expect_bad(b4, (const char *const[]){"--keep-least", NULL});
    const char *b5[] = {"compress", "--model", d, "--method", "svd", "--ratio", "0.99", NULL};
    expect_bad(b5, (const char *const[]){"ratio 0.99 cannot be met", "largest feasible ratio", NULL});
    const char *b6[] = {"compress", "--model", d, "--method", "lorap", "--weighting", "whiten", "--calib", text, NULL};
    expect_bad(b6, (const char *const[]){"--weighting", NULL});
    /* energy: the ratio is an outcome; more energy kept means more parameters kept */
    double kept[2] = {0, 0};
    const char *levels[] = {"0.5", "0.95"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"compress", "--model",     d,      "--method", "energy", "--energy",
                              levels[i],  "--weighting", "none", "--json",   NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j && st == 0, "energy %s: exit %d", levels[i], st);
        if (j)
            kept[i] = (double)json_integer_value(json_object_get(json_object_get(j, "params"), "block_linear_after"));
        json_decref(j);
    }
    CHECKF(kept[0] > 0 && kept[0] < kept[1], "energy 0.5 keeps %.0f, 0.95 keeps %.0f", kept[0], kept[1]);
}

static size_t dir_bytes(const char *dir)
{
    size_t total = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (size_t)st.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

/* `pare compress --out` writes a model that `pare eval` scores exactly as the compressed model in
 * memory scored, and `pare info` reports it under the three parameter conventions. */
static void test_compress_export_info(void)
{
    const char *d = fixture_hf_dir("cexp", 0);
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "a stitch in time saves nine and a penny saved is a penny earned ", 8000);
    const char *formats[] = {"pare", "hf-dense"};
    for (int f = 0; f < 2; f++) {
        const char *out = tmp_path(formats[f]);
        const char *args[] = {"compress", "--model",  d,          "--method",        "lorap", "--ratio",
                              "0.4",      "--calib",  text,       "--calib-samples", "4",     "--calib-len",
                              "32",       "--eval",   text,       "--window",        "32",    "--out",
                              out,        "--format", formats[f], "--json",          NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j && st == 0, "%s: exit %d", formats[f], st);
        if (!j)
            continue;
        double ppl = json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl"));
        json_t *p = json_object_get(j, "params");
        json_int_t block_after = json_integer_value(json_object_get(p, "block_linear_after"));
        json_int_t block_before = json_integer_value(json_object_get(p, "block_linear_before"));
        json_int_t total_after = json_integer_value(json_object_get(p, "total_after"));
        json_int_t bytes = json_integer_value(json_object_get(json_object_get(j, "export"), "bytes"));
        CHECKF((size_t)bytes == dir_bytes(out), "%s: reported %lld bytes, folder holds %zu", formats[f],
               (long long)bytes, dir_bytes(out));
        const char *ev[] = {"eval", "--model", out, "--data", text, "--window", "32", "--json", NULL};
        json_t *e = run_json(ev, &st);
        double ppl2 = e ? json_real_value(json_object_get(e, "ppl")) : 0;
        if (f == 0) /* the pare format reloads bit for bit (test_export compares logits; eval prints 10 digits) */
            CHECKF(fabs(ppl2 - ppl) <= 1e-9 * ppl, "pare format: %.17g after reload, %.17g in memory", ppl2, ppl);
        else
            CHECKF(fabs(ppl2 - ppl) <= 1e-4 * ppl, "hf-dense: %.10g after reload, %.10g in memory", ppl2, ppl);
        json_decref(e);
        const char *inf[] = {"info", "--model", out, "--json", NULL};
        json_t *i = run_json(inf, &st);
        json_t *ip = i ? json_object_get(i, "params") : NULL;
        if (f == 0) {
            CHECKF(ip && json_integer_value(json_object_get(ip, "block_linear")) == block_after &&
                       json_integer_value(json_object_get(ip, "block_linear_dense")) == block_before &&
                       json_integer_value(json_object_get(ip, "total")) == total_after,
                   "info on the pare export: block linears %lld (compress said %lld of %lld)",
                   ip ? (long long)json_integer_value(json_object_get(ip, "block_linear")) : -1LL,
                   (long long)block_after, (long long)block_before);
            /* a re-export holds the same tensors; only the manifest's "compression" record is missing */
            json_int_t own = json_integer_value(json_object_get(json_object_get(i, "export_bytes"), "pare"));
            char st_path[4096];
            struct stat sb;
            snprintf(st_path, sizeof st_path, "%s/model.safetensors", out);
            CHECKF(stat(st_path, &sb) == 0 && (size_t)own <= dir_bytes(out) && (off_t)own > sb.st_size,
                   "info predicts %lld bytes for a re-export of a %zu-byte folder", (long long)own, dir_bytes(out));
            size_t factored = 0;
            json_t *mats = json_object_get(i, "matrices");
            for (size_t k = 0; k < json_array_size(mats); k++)
                factored += strcmp(json_string_value(json_object_get(json_array_get(mats, k), "state")), "factorize"
                                                                                                         "d") == 0;
            CHECK(factored > 0);
        } else { /* an HF folder holds dense matrices: the pruned FFN channels stay removed */
            CHECK(ip && json_integer_value(json_object_get(ip, "block_linear")) > block_after &&
                  json_integer_value(json_object_get(ip, "block_linear")) < block_before);
        }
        json_decref(i);
        json_decref(j);
        /* the folder exists now: a second export there is refused unless --overwrite */
        const char *again[] = {"compress", "--model", d, "--method", "svd", "--ratio", "0.4", "--out", out, NULL};
        expect_bad(again, (const char *const[]){out, NULL});
    }
}


/* `pare compress --factor-dtype bf16|f16` reports the perplexity of the model as stored: `pare eval`
 * of the export gives the same figure to the bit; f32 (the default) and the hf-dense path (its own
 * --dtype) evaluate the unrounded model; a dtype that is not a float, or a factor dtype for hf-dense,
 * exits 2 naming the option before any work. */
static void test_compress_factor_dtype(void)
{
    const char *d = fixture_hf_dir("cfdt", 0);
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "many hands make light work and many cooks spoil the broth ", 8000);
    const char *dtypes[] = {"f32", "bf16", "f16"}, *stored[] = {"F32", "BF16", "F16"};
    double ppl[3] = {0};
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "fdt-%s", dtypes[k]);
        const char *out = tmp_path(name);
        const char *args[] = {"compress", "--model",        d,         "--method",        "svdllm", "--ratio",
                              "0.5",      "--calib",        text,      "--calib-samples", "4",      "--calib-len",
                              "32",       "--eval",         text,      "--window",        "32",     "--out",
                              out,        "--factor-dtype", dtypes[k], "--json",          NULL};
        int st;
        json_t *j = run_json(args, &st);
        CHECKF(j && st == 0, "%s: exit %d", dtypes[k], st);
        if (!j)
            continue;
        ppl[k] = json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl"));
        const char *rec = json_string_value(json_object_get(j, "factor_dtype"));
        CHECKF(rec && !strcmp(rec, stored[k]), "%s: --json factor_dtype %s", dtypes[k], rec ? rec : "missing");
        json_decref(j);
        json_t *man = fixture_read_json(out, "pare.json");
        rec = man ? json_string_value(json_object_get(man, "factor_dtype")) : NULL;
        CHECKF(rec && !strcmp(rec, stored[k]), "%s: pare.json factor_dtype %s", dtypes[k], rec ? rec : "missing");
        json_decref(man);
        const char *ev[] = {"eval", "--model", out, "--data", text, "--window", "32", "--json", NULL};
        json_t *e = run_json(ev, &st);
        double reloaded = e ? json_real_value(json_object_get(e, "ppl")) : 0;
        CHECKF(fabs(reloaded - ppl[k]) <= 1e-9 * ppl[k], "%s: %.17g after reload, %.17g reported by compress",
               dtypes[k], reloaded, ppl[k]);
        json_decref(e);
    }
    CHECKF(ppl[1] != ppl[0] && ppl[2] != ppl[0], "rounding changed nothing: f32 %.17g, bf16 %.17g, f16 %.17g", ppl[0],
           ppl[1], ppl[2]);
    /* hf-dense keeps its own --dtype: the model evaluated is the unrounded one */
    const char *hf = tmp_path("fdt-hf");
    const char *hargs[] = {"compress", "--model",         d,   "--method",    "svdllm",   "--ratio", "0.5",  "--calib",
                           text,       "--calib-samples", "4", "--calib-len", "32",       "--eval",  text,   "--window",
                           "32",       "--out",           hf,  "--format",    "hf-dense", "--dtype", "BF16", "--json",
                           NULL};
    int st;
    json_t *j = run_json(hargs, &st);
    double hf_ppl = j ? json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl")) : 0;
    CHECKF(hf_ppl == ppl[0], "hf-dense --dtype BF16 reported %.17g, the f32 model %.17g", hf_ppl, ppl[0]);
    json_decref(j);
    json_t *cfg = fixture_read_json(hf, "config.json");
    CHECK(cfg && !strcmp(json_string_value(json_object_get(cfg, "torch_dtype")), "bfloat16"));
    json_decref(cfg);
    const char *bad[] = {"compress", "--model", d, "--method", "svd", "--factor-dtype", "int8", NULL};
    expect_bad(bad, (const char *const[]){"pare compress: --factor-dtype 'int8' is not supported", "bf16", NULL});
    const char *bad_out = tmp_path("fdt-bad");
    const char *bad2[] = {"compress", "--model",        d,      "--method", "svd",   "--format",
                          "hf-dense", "--factor-dtype", "bf16", "--out",    bad_out, NULL};
    expect_bad(bad2, (const char *const[]){"--factor-dtype bf16 applies to --format pare", "--dtype", NULL});
    struct stat sb;
    CHECK(stat(bad_out, &sb) != 0);
}

/* ---- inputs that are not regular files (issue 19, item 7) ----------------------------------- */

/* A deadline for the child: an alarm armed before exec survives it, so a pare that waits forever
 * on an input is killed (exit 142) and the test fails instead of hanging the suite. */
static int arm_alarm(void *seconds)
{
    alarm(*(const unsigned *)seconds);
    return 0;
}

static char *read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    pare_error e = {0};
    return pare_read_file(path, &text, &len, &e) ? strdup("") : text;
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* args must exit 2 within a few seconds with one stderr line naming path and what it is. */
static void expect_refused_input(const char *const *args, const char *path, const char *kind)
{
    char opath[1200], epath[1200];
    snprintf(opath, sizeof opath, "%s/refused.stdout", harness_tmpdir());
    snprintf(epath, sizeof epath, "%s/refused.stderr", harness_tmpdir());
    unsigned deadline = 10;
    int st = wait_status(spawn_pare(args, opath, epath, arm_alarm, &deadline));
    char *err = read_text(epath);
    size_t len = strlen(err), lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += err[i] == '\n';
    CHECKF(st == 2, "pare %s ... %s: exit %d (want 2%s); stderr: %s", args[0], path, st,
           st == 142 ? ", it waited on the input until the test's 10 s alarm" : "", err);
    CHECKF(lines == 1, "want one stderr line, got %zu: %s", lines, err);
    CHECKF(strstr(err, path) && strstr(err, kind), "stderr lacks '%s' and '%s': %s", path, kind, err);
    free(err);
}

/* A fixture folder whose file `name` is replaced by a named pipe; returns the pipe's path. */
static const char *fifo_in_fixture(const char *dir, const char *name)
{
    static char p[4][1300];
    static int slot;
    char *out = p[slot++ % 4];
    snprintf(out, sizeof p[0], "%s/%s", dir, name);
    CHECKF(unlink(out) == 0 && mkfifo(out, 0600) == 0, "%s: cannot make the pipe", out);
    return out;
}

/* A named pipe (or a folder, or a device) given as any input is refused at once, naming it: every
 * input is opened non-blocking and checked to be a regular file (pare_open_input). It used to wait
 * in open() forever, for a writer that never comes. */
static void test_fifo_inputs(void)
{
    const char *d = fixture_hf_dir("fifo-model", 0);
    const char *text = tmp_path("fifo-text.txt"), *fifo = tmp_path("pipe");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    CHECK(mkfifo(fifo, 0600) == 0);
    const char *NP = "is a named pipe";
    expect_refused_input((const char *const[]){"eval", "--model", d, "--data", fifo, "--window", "32", NULL}, fifo, NP);
    expect_refused_input((const char *const[]){"eval", "--model", d, "--tokenizer", fifo, "--data", text, NULL}, fifo,
                         NP);
    expect_refused_input((const char *const[]){"compress", "--model", d, "--method", "wanda", "--calib", fifo, NULL},
                         fifo, NP);
    expect_refused_input((const char *const[]){"eval", "--model", d, "--task", "boolq", "--task-data", fifo, NULL},
                         fifo, NP);
    expect_refused_input((const char *const[]){"tokenize", "--model", d, "--file", fifo, NULL}, fifo, NP);
    expect_refused_input((const char *const[]){"run", fifo, "--model", d, NULL}, fifo, NP);
    expect_refused_input((const char *const[]){"info", "--model", fifo, NULL}, fifo, NP); /* a llama2.c checkpoint */
    expect_refused_input((const char *const[]){"eval", "--model", d, "--data", harness_tmpdir(), "--window", "32", NULL},
                         harness_tmpdir(), "is a directory");
    expect_refused_input((const char *const[]){"eval", "--model", d, "--data", "/dev/zero", "--window", "32", NULL},
                         "/dev/zero", "is a device");
    /* the files of a model folder, and a shard of a sharded one */
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "fifo-model-%d", i);
        const char *dir = fixture_hf_dir(name, 0);
        const char *pipe_path = fifo_in_fixture(dir, files[i]);
        expect_refused_input((const char *const[]){"info", "--model", dir, NULL}, pipe_path, NP);
    }
    fixture_spec spec;
    fixture_default(&spec, 0);
    spec.shards = 2;
    const char *sharded = tmp_path("fifo-sharded");
    CHECK(fixture_write_hf(sharded, &spec) == 0);
    const char *shard = fifo_in_fixture(sharded, "model-00002-of-00002.safetensors");
    expect_refused_input((const char *const[]){"info", "--model", sharded, NULL}, shard, NP);
    /* a recipe reading a pipe through the sandbox's io.open */
    const char *recipe = tmp_path("read-pipe.lua");
    char body[1600];
    int n = snprintf(body, sizeof body, "local f = assert(io.open(\"%s\"))\nprint(f:read(\"a\"))\n", fifo);
    fixture_write_raw(recipe, body, (size_t)n);
    char opath[1200], epath[1200];
    snprintf(opath, sizeof opath, "%s/sandbox.stdout", harness_tmpdir());
    snprintf(epath, sizeof epath, "%s/sandbox.stderr", harness_tmpdir());
    const char *args[] = {
        "run", recipe, "--model", d, "--sandbox", "--allow", harness_tmpdir(), "--out", tmp_path("fifo-run"), NULL};
    unsigned deadline = 10;
    int st = wait_status(spawn_pare(args, opath, epath, arm_alarm, &deadline));
    char *err = read_text(epath);
    CHECKF(st == 2 && strstr(err, "io.open") && strstr(err, fifo) && strstr(err, NP),
           "sandboxed io.open of a pipe: exit %d; stderr: %s", st, err);
    free(err);
}

/* Issue 19, item 11: every command that writes an output refuses the root folder and the current
 * folder (one check, pare_check_output_path) with one line naming the option and the path, before
 * writing anything. */
static void test_out_refused_everywhere(void)
{
    const char *model = fixture_hf_dir("out-check", 0);
    const char *text = tmp_path("out-check.txt");
    fixture_write_pattern(text, "the quick brown fox jumps over the lazy dog. ", 200);
    const char *recipe = tmp_path("out-check.lua");
    CHECK(write_bytes(recipe, "function run(p) end\n", 20) == 0);
    for (int k = 0; k < 2; k++) {
        const char *o = k ? "." : "/";
        const char *why = k ? "is the current folder" : "root folder";
        expect_bad((const char *const[]){"run", recipe, "--model", model, "--out", o, NULL},
                   (const char *const[]){"pare run: --out ", why, NULL});
        expect_bad((const char *const[]){"compress", "--model", model, "--method", "magnitude", "--ratio", "0.2",
                                         "--out", o, NULL},
                   (const char *const[]){"pare compress: --out ", why, NULL});
        expect_bad((const char *const[]){"finetune", "--model", model, "--data", text, "--out", o, "--steps", "1", NULL},
                   (const char *const[]){"pare finetune: --out ", why, NULL});
        expect_bad((const char *const[]){"plot", "budget", "--model", model, "--out", o, NULL},
                   (const char *const[]){"pare plot: --out ", why, NULL});
        expect_bad((const char *const[]){"tui", "--model", model, "--out", o, NULL},
                   (const char *const[]){"pare tui: --out ", why, NULL});
        expect_bad((const char *const[]){"tui", "--model", model, "--keys", "q", "--dump-screen", o, NULL},
                   (const char *const[]){"pare tui: --dump-screen ", why, NULL});
        expect_bad((const char *const[]){"eval", "--model", model, "--task", "boolq", "--task-data", text,
                                         "--dump-requests", o, NULL},
                   (const char *const[]){"pare eval: --dump-requests ", why, NULL});
    }
    /* compare's output file (a run with no results adds a line of its own, hence not one line) */
    const char *run_dir = tmp_path("out-check-run");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", recipe, "--model", model, "--out", run_dir, "--quiet", NULL});
    CHECKF(st == 0, "a run to compare: exit %d %s", st, err ? err : "");
    free(out);
    free(err);
    expect_pare_error((const char *const[]){"compare", run_dir, "--csv", "/", NULL},
                      (const char *const[]){"pare compare: output /: refusing to write into the root folder", NULL}, 0);
}

/* tools/layering.sh (run by `make layering`) on a copy of src/, lua/ and ui/: the copy as it is passes;
 * an include planted pointing upward (lua -> src/cli, src/record -> ui by a bare name, src/core ->
 * src/record or src/train, src/plot -> src/record) or sideways (src/train -> src/plot) makes it fail,
 * naming the file, its line and the include. */
static int layering_check(const char *root, char **out)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "bash tools/layering.sh '%s' 2>&1", root);
    FILE *p = popen(cmd, "r");
    size_t len = 0, cap = 65536;
    *out = calloc(cap, 1);
    if (!p || !*out) {
        if (p)
            pclose(p);
        return -1;
    }
    len = fread(*out, 1, cap - 1, p);
    (*out)[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_layering_includes(void)
{
    CHECKF(pare_file_exists("tools/layering.sh"), "tools/layering.sh not found (the tests run from the repository "
                                                  "root)");
    if (harness_failed_now())
        return;
    const char *root = tmp_path("tree");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r src lua ui '%s'/", root, root);
    CHECK(system(cmd) == 0);
    char *out = NULL;
    int rc = layering_check(root, &out);
    CHECKF(rc == 0, "the tree as it is: exit %d: %s", rc, out);
    free(out);
    static const struct {
        const char *file, *include;
    } planted[] = {
        {"lua/lsession.c", "cli/cli.h"},          /* lua/ including the CLI */
        {"src/record/runrec.c", "tui.h"},         /* a bare name found through -Iui: ui/tui.h */
        {"src/core/fileio.c", "record/runrec.h"}, /* the core including a layer above it */
        {"src/core/fileio.c", "train/optim.h"},   /* the core including the training engine */
        {"src/train/train.c", "plot/plot.h"},     /* sideways: layers of one rank stay apart */
        {"src/plot/png.c", "record/runrec.h"},    /* the plotting library including a layer above it */
    };
    for (size_t i = 0; i < sizeof planted / sizeof planted[0]; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", root, planted[i].file);
        FILE *f = fopen(path, "a");
        CHECK(f != NULL);
        if (!f)
            continue;
        fprintf(f, "\n#include \"%s\"\n", planted[i].include);
        fclose(f);
        rc = layering_check(root, &out);
        char needle[512];
        snprintf(needle, sizeof needle, "%s:", planted[i].file);
        CHECKF(rc == 1 && strstr(out, needle) && strstr(out, planted[i].include),
               "planted #include \"%s\" in %s: exit %d: %s", planted[i].include, planted[i].file, rc, out);
        free(out);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", planted[i].file, path); /* back to the original */
        CHECK(system(cmd) == 0);
    }
}

void suite_cli(void);
void suite_cli(void)
{
    RUN(test_fifo_inputs);
    RUN(test_compress_export_info);
    RUN(test_compress_factor_dtype);
    RUN(test_compress_command);
    RUN(test_spectra_command);
    RUN(test_eval_interrupt);
    RUN(test_bad_safetensors);
    RUN(test_bad_model_config);
    RUN(test_bad_tokenizer);
    RUN(test_bad_eval_data);
    RUN(test_info_counts);
    RUN(test_generate_greedy_reference);
    RUN(test_generate_stories260k);
    RUN(test_eval_protocol_card);
    RUN(test_matmul_option);
    RUN(test_eval_matmul_bf16);
    RUN(test_eval_reference_protocol);
    RUN(test_out_refused_everywhere);
    RUN(test_layering_includes);
}

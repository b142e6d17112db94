/* Numbers from hostile input (issue 19: items 5, 6, 12, 13, 14): the strict number parser, config
 * fields and weights that are not finite, losses that are not, thread counts from the environment,
 * tokenizers past the vocabulary, and what every command prints when one of them comes up. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "core/numparse.h"
#include "train/train.h"
#include "fixture.h"
#include "harness.h"

/* ---- the parser itself ---- */

static void test_parse_table(void)
{
    static const struct {
        const char *text;
        int ok;
        long long value;
    } ints[] = {{"0", 1, 0},
                {"-7", 1, -7},
                {"100", 1, 100},
                {"101", 0, 0},
                {"-8", 0, 0},
                {"", 0, 0},
                {" 5", 0, 0},
                {"5 ", 0, 0},
                {"+5", 0, 0},
                {"5x", 0, 0},
                {"0x10", 0, 0},
                {"1e2", 0, 0},
                {"99999999999999999999", 0, 0},
                {"-", 0, 0},
                {"nan", 0, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        long long v = -12345;
        pare_error err = {0};
        int ok = pare_parse_int("--opt", ints[i].text, -7, 100, &v, &err) == PARE_OK;
        CHECKF(ok == ints[i].ok, "int '%s': ok %d, want %d", ints[i].text, ok, ints[i].ok);
        if (ok)
            CHECKF(v == ints[i].value, "int '%s' gave %lld", ints[i].text, v);
        else
            CHECKF(strstr(err.msg, "--opt") && strstr(err.msg, ints[i].text) && v == -12345, "int '%s': message %s",
                   ints[i].text, err.msg);
    }
    static const struct {
        const char *text;
        int ok;
        double value;
    } dbls[] = {{"0.5", 1, 0.5}, {"1", 1, 1},      {"-0.25", 1, -0.25}, {".5", 1, 0.5}, {"1e-3", 1, 1e-3},
                {"2", 0, 0},     {"nan", 0, 0},    {"NaN", 0, 0},       {"inf", 0, 0},  {"-inf", 0, 0},
                {"1e999", 0, 0}, {"0x1p-1", 0, 0}, {"", 0, 0},          {" 0.5", 0, 0}, {"0.5 ", 0, 0},
                {"0.5.1", 0, 0}, {"+0.5", 0, 0},   {"e5", 0, 0}};
    for (size_t i = 0; i < sizeof dbls / sizeof dbls[0]; i++) {
        double v = -99;
        pare_error err = {0};
        int ok = pare_parse_double("--x", dbls[i].text, -1, 1, &v, &err) == PARE_OK;
        CHECKF(ok == dbls[i].ok, "double '%s': ok %d, want %d", dbls[i].text, ok, dbls[i].ok);
        if (ok)
            CHECKF(v == dbls[i].value, "double '%s' gave %g", dbls[i].text, v);
        else
            CHECKF(strstr(err.msg, "--x") && v == -99, "double '%s': message %s", dbls[i].text, err.msg);
    }
    static const struct {
        const char *text;
        int ok, n, m;
    } nms[] = {{"2:4", 1, 2, 4},          {"1:1024", 1, 1, 1024}, {"4:2", 0, 0, 0},  {"2:2", 0, 0, 0}, {"0:4", 0, 0, 0},
               {"2:4294967300", 0, 0, 0}, {"2:4:8", 0, 0, 0},     {"2:4x", 0, 0, 0}, {"2:", 0, 0, 0},  {":4", 0, 0, 0},
               {"2 :4", 0, 0, 0},         {"2:1025", 0, 0, 0},    {"-2:4", 0, 0, 0}, {"2", 0, 0, 0}};
    for (size_t i = 0; i < sizeof nms / sizeof nms[0]; i++) {
        int n = -1, m = -1;
        pare_error err = {0};
        int ok = pare_parse_nm("--nm", nms[i].text, &n, &m, &err) == PARE_OK;
        CHECKF(ok == nms[i].ok, "nm '%s': ok %d, want %d", nms[i].text, ok, nms[i].ok);
        if (ok)
            CHECKF(n == nms[i].n && m == nms[i].m, "nm '%s' gave %d:%d", nms[i].text, n, m);
        else
            CHECKF(strstr(err.msg, "--nm") && strstr(err.msg, nms[i].text) && n == -1 && m == -1, "nm '%s': message %s",
                   nms[i].text, err.msg);
    }
    uint64_t u = 0;
    CHECK(pare_parse_u64("--seed", "18446744073709551615", &u, NULL) == PARE_OK && u == UINT64_MAX);
    CHECK(pare_parse_u64("--seed", "18446744073709551616", &u, NULL) != PARE_OK);
    CHECK(pare_parse_u64("--seed", "-1", &u, NULL) != PARE_OK);
    int w = 0, h = 0;
    CHECK(pare_parse_int_pair("--size", "1200x800", 'x', 1, 16384, &w, &h, NULL) == PARE_OK && w == 1200 && h == 800);
    CHECK(pare_parse_int_pair("--size", "1200x800x3", 'x', 1, 16384, &w, &h, NULL) != PARE_OK);
}

/* Every bad value the hostile test found is refused with exit 2 naming the option and the value. */
static void test_bad_numeric_options(void)
{
    const char *d = fixture_hf_dir("opts", 0), *text = tmp_path("text.txt");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    const char *nm_values[] = {"2:4294967300", "2:4:8", "2:4x"};
    for (int i = 0; i < 3; i++) {
        const char *args[] = {"compress", "--model",    d,         "--method", "wanda",
                              "--nm",     nm_values[i], "--calib", text,       NULL};
        expect_pare_error(args, (const char *const[]){"--nm", nm_values[i], NULL}, 1);
    }
    const char *gen_opts[] = {"--temperature", "--top-p"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"generate", "--model", d, gen_opts[i], "nan", NULL};
        expect_pare_error(args, (const char *const[]){gen_opts[i], "'nan'", NULL}, 1);
    }
    const char *clip[] = {"finetune", "--model", d, "--data", text, "--out", tmp_path("ft"), "--clip", "nan", NULL};
    expect_pare_error(clip, (const char *const[]){"--clip", "'nan'", NULL}, 1);
}

/* ---- config fields and weights ---- */

/* Runs pare and checks exit 2 with needles on stderr and nothing on stdout (no partial output). */
static void expect_refused(const char *const *args, const char *const *needles)
{
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    CHECKF(st == 2, "%s: exit %d (want 2); stderr: %.300s", args[0], st, err);
    CHECKF(out && !*out, "%s: stdout should be empty: %.200s", args[0], out);
    for (int i = 0; needles[i]; i++)
        CHECKF(err && strstr(err, needles[i]), "%s: stderr lacks '%s': %.300s", args[0], needles[i], err);
    free(out);
    free(err);
}

/* A norm epsilon that is not positive or not finite in fp32 (1e308 rounds to inf, 1e-50 to 0) and
 * positions <= 0 are refused at load naming the field; `info --json` and `eval --json` crashed. */
static void test_bad_config_numbers(void)
{
    const char *text = tmp_path("text.txt");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        const char *eps_key = gpt2 ? "layer_norm_epsilon" : "rms_norm_eps";
        json_t *bad[] = {json_real(-1), json_real(0), json_real(1e308), json_real(1e-50), json_string("x")};
        for (int i = 0; i < 5; i++) {
            const char *d = fixture_hf_dir(gpt2 ? "eps-gpt2" : "eps-llama", gpt2);
            fixture_set_config(d, eps_key, bad[i]);
            const char *info[] = {"info", "--model", d, "--json", NULL};
            expect_refused(info, (const char *const[]){"config.json", eps_key, NULL});
            const char *ev[] = {"eval", "--model", d, "--data", text, "--window", "32", "--json", NULL};
            expect_refused(ev, (const char *const[]){"config.json", eps_key, NULL});
        }
    }
    const char *pos_key[] = {"max_position_embeddings", "n_positions"};
    for (int gpt2 = 0; gpt2 < 2; gpt2++)
        for (int v = 0; v >= -5; v -= 5) {
            const char *d = fixture_hf_dir("pos", gpt2);
            fixture_set_config(d, pos_key[gpt2], json_integer(v));
            const char *info[] = {"info", "--model", d, NULL};
            expect_refused(info, (const char *const[]){"config.json", pos_key[gpt2], NULL});
        }
}

/* `pare info --config` of the fixture's config.json with the keys of overrides (a JSON object's text)
 * set: refused with exit 2, one line naming the file and every needle. */
static void expect_config_refused(int gpt2, const char *overrides, const char *const *needles)
{
    const char *d = fixture_hf_dir(gpt2 ? "hostile-gpt2" : "hostile-llama", gpt2);
    json_error_t je;
    json_t *o = json_loads(overrides, 0, &je);
    CHECKF(o != NULL, "overrides %s: %s", overrides, je.text);
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
        fixture_set_config(d, key, json_incref(value));
    json_decref(o);
    char cfg[1300];
    snprintf(cfg, sizeof cfg, "%s/config.json", d);
    const char *args[] = {"info", "--config", cfg, NULL};
    const char *all[8] = {"config.json"};
    for (int i = 0; needles[i] && i < 6; i++)
        all[i + 1] = needles[i];
    expect_pare_error(args, all, 1);
}

/* Every family's layer count is capped at PARE_MAX_LAYERS, so the per-layer attributes fit the config
 * and PARE_MAX_LINEARS bounds every array filled by pare_model_linears (a 1024-layer LLaMA overran
 * 4096-entry arrays; GPT-2's n_layer had no cap at all and info read past layer_sliding). */
static void test_layer_cap(void)
{
    char limit[32], at_cap[32], past[32], overrides[64];
    snprintf(limit, sizeof limit, "limit of %d", PARE_MAX_LAYERS);
    snprintf(at_cap, sizeof at_cap, "%d", PARE_MAX_LAYERS);
    snprintf(past, sizeof past, "%d", PARE_MAX_LAYERS + 1);
    const char *too_many[] = {past, "1024", "100000"};
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        const char *key = gpt2 ? "n_layer" : "num_hidden_layers";
        for (int i = 0; i < 3; i++) {
            snprintf(overrides, sizeof overrides, "{\"%s\": %s}", key, too_many[i]);
            expect_config_refused(gpt2, overrides, (const char *const[]){key, too_many[i], limit, NULL});
        }
        const char *d = fixture_hf_dir("cap-ok", gpt2);
        fixture_set_config(d, key, json_integer(PARE_MAX_LAYERS));
        char cfg[1300];
        snprintf(cfg, sizeof cfg, "%s/config.json", d);
        const char *args[] = {"info", "--config", cfg, NULL};
        char *out = NULL, *errout = NULL;
        int st = run_pare(&out, &errout, args);
        CHECKF(st == 0 && out && strstr(out, at_cap), "%s %s: exit %d: %s", key, at_cap, st, errout);
        free(out);
        free(errout);
    }
}

/* Dimensions whose products overflow an int or a size_t, or give head_dim 0, are refused at parse
 * naming the fields and values (they wrapped in pare_lin_shape, the fused row sums and the parameter
 * counts: info printed garbage or crashed). */
static void test_hostile_dimensions(void)
{
    char dim_limit[32], past_dim[24];
    snprintf(dim_limit, sizeof dim_limit, "limit of %d", PARE_MAX_DIM);
    snprintf(past_dim, sizeof past_dim, "%d", PARE_MAX_DIM + 1);
    static const struct {
        int gpt2;
        const char *overrides, *needles[4];
    } cases[] = {
        {0,
         "{\"num_attention_heads\": 64, \"head_dim\": null}",
         {"hidden_size 32 / num_attention_heads 64 gives head_dim 0", "at least 2"}},
        {0, "{\"head_dim\": 1}", {"head_dim 1 must be at least 2"}},
        {1, "{\"n_head\": 32}", {"n_embd 32 / n_head 32 gives head_dim 1", "at least 2"}},
        {0,
         "{\"num_attention_heads\": 65536, \"head_dim\": 65536}",
         {"num_attention_heads 65536 x head_dim 65536 = 4294967296", "2147483647"}},
        {0,
         "{\"num_attention_heads\": 16384, \"num_key_value_heads\": 16384, \"head_dim\": 65536}",
         {"num_key_value_heads 16384", "3221225472 rows of q, k, v"}},
        {0,
         "{\"hidden_size\": 16777216, \"num_hidden_layers\": 512, \"num_attention_heads\": 16384, \"head_dim\": "
         "65536, \"intermediate_size\": 16777216, \"vocab_size\": 16777216}",
         {"512 layers of hidden_size 16777216", "more than pare can address"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_config_refused(cases[i].gpt2, cases[i].overrides, cases[i].needles);
    static const struct {
        int gpt2;
        const char *key;
    } widths[] = {{0, "hidden_size"}, {0, "intermediate_size"}, {0, "vocab_size"},
                  {1, "n_embd"},      {1, "n_inner"},           {1, "vocab_size"}};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        char overrides[64];
        snprintf(overrides, sizeof overrides, "{\"%s\": %s}", widths[i].key, past_dim);
        expect_config_refused(widths[i].gpt2, overrides,
                              (const char *const[]){widths[i].key, past_dim, dim_limit, NULL});
    }
}

/* Every id of eos_token_id must be an integer token of the vocabulary, at most PARE_MAX_EOS of them
 * (only the first of a list was read, unchecked). */
static void test_bad_eos_ids(void)
{
    char vocab[96], too_many[128] = "{\"eos_token_id\": [", at_most[32];
    snprintf(vocab, sizeof vocab, "eos_token_id[1] %d is not a token id (vocab_size %d)", fixture_tokenizer_vocab(),
             fixture_tokenizer_vocab());
    for (int i = 0; i <= PARE_MAX_EOS; i++)
        snprintf(too_many + strlen(too_many), sizeof too_many - strlen(too_many), "%s%d", i ? ", " : "", i);
    strcat(too_many, "]}");
    snprintf(at_most, sizeof at_most, "at most %d", PARE_MAX_EOS);
    char overrides[64];
    snprintf(overrides, sizeof overrides, "{\"eos_token_id\": [2, %d]}", fixture_tokenizer_vocab());
    expect_config_refused(0, overrides, (const char *const[]){vocab, NULL});
    expect_config_refused(1, "{\"eos_token_id\": [2, \"x\"]}",
                          (const char *const[]){"eos_token_id[1] must be an integer", NULL});
    expect_config_refused(0, "{\"eos_token_id\": -3}", (const char *const[]){"eos_token_id -3 is not a token id", NULL});
    expect_config_refused(0, too_many, (const char *const[]){"eos_token_id lists 9 ids", at_most, NULL});
}

/* Sets element `index` of F32 tensor `name` in DIR/model.safetensors to v (every element when index < 0). */
static void poke_tensor(const char *dir, const char *name, long index, float v)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len = 0;
    unsigned char *b = fixture_read(p, &len);
    uint64_t hlen = 0;
    memcpy(&hlen, b, 8);
    json_error_t je;
    json_t *h = json_loadb((const char *)b + 8, hlen, 0, &je);
    json_t *t = json_object_get(h, name);
    CHECKF(t && !strcmp(json_string_value(json_object_get(t, "dtype")), "F32"), "%s: no F32 tensor %s", p, name);
    if (t) {
        size_t start = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
        size_t end = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 1));
        float *x = (float *)(b + 8 + hlen + start);
        for (size_t i = 0; i < (end - start) / 4; i++)
            if (index < 0 || (size_t)index == i)
                memcpy(&x[i], &v, sizeof v);
        fixture_write_raw(p, b, len);
    }
    json_decref(h);
    free(b);
}

/* A NaN or an infinity in the weights is refused at load naming the tensor: `eval --json` crashed
 * and `eval` printed "perplexity -nan" with exit 0. */
static void test_nonfinite_weights(void)
{
    const char *text = tmp_path("text.txt");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    const struct {
        int gpt2;
        const char *tensor;
        float v;
    } cases[] = {{0, "model.layers.1.self_attn.v_proj.weight", NAN},
                 {0, "model.norm.weight", INFINITY},
                 {1, "transformer.h.0.ln_2.bias", NAN},
                 {1, "transformer.wpe.weight", -INFINITY}};
    for (int i = 0; i < 4; i++) {
        const char *d = fixture_hf_dir("nanw", cases[i].gpt2);
        poke_tensor(d, cases[i].tensor, 5, cases[i].v);
        const char *ev[] = {"eval", "--model", d, "--data", text, "--window", "32", "--json", NULL};
        expect_refused(ev, (const char *const[]){d, cases[i].tensor, "non-finite", NULL});
        const char *info[] = {"info", "--model", d, "--json", NULL};
        expect_refused(info, (const char *const[]){cases[i].tensor, NULL});
    }
}

/* Finite weights whose logits overflow (every final-norm weight 3e38): perplexity, zero-shot
 * scoring and generation stop with an error naming the model instead of reporting NaN as a result
 * (ppl -nan with exit 0; boolq acc 0.3333; generated text from NaN logits). */
static void test_overflowing_logits(void)
{
    const char *d = fixture_hf_dir("overflow", 0), *text = tmp_path("text.txt");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    poke_tensor(d, "model.norm.weight", -1, 3e38f);
    const char *ev[] = {"eval", "--model", d, "--data", text, "--window", "32", "--json", NULL};
    expect_refused(ev, (const char *const[]){d, text, "non-finite loss", NULL});
    const char *ev_text[] = {"eval", "--model", d, "--data", text, "--window", "32", NULL};
    expect_refused(ev_text, (const char *const[]){d, "non-finite loss", NULL});
    const char *boolq = tmp_path("boolq.jsonl");
    const char *items = "{\"question\": \"is water wet\", \"passage\": \"Water is wet.\", \"label\": true}\n"
                        "{\"question\": \"is fire cold\", \"passage\": \"Fire is hot.\", \"label\": false}\n"
                        "{\"question\": \"is it\", \"passage\": \"P\", \"label\": true}\n";
    fixture_write_raw(boolq, items, strlen(items));
    const char *task[] = {"eval", "--model", d, "--task", "boolq", "--task-data", boolq, NULL};
    expect_refused(task, (const char *const[]){d, boolq, "non-finite log-likelihood", NULL});
    const char *gen[] = {"generate", "--model", d, "--prompt", "abc", "-n", "4", NULL};
    expect_refused(gen, (const char *const[]){d, "non-finite logits", NULL});
    const char *comp[] = {"compress", "--model", d,          "--method", "magnitude", "--ratio", "0.2",
                          "--eval",   text,      "--window", "32",       "--json",    NULL};
    expect_refused(comp, (const char *const[]){d, "non-finite loss", NULL});
    const char *ft[] = {"finetune", "--model", d,       "--data", text,      "--out", tmp_path("ft"),
                        "--steps",  "2",       "--seq", "16",     "--batch", "1",     NULL};
    expect_refused(ft, (const char *const[]){"step 1", "loss", NULL});
}

/* A recipe evaluating that model fails naming the model (run.json said "complete" with ppl null,
 * and pare compare printed 0.0000). */
static void test_recipe_nonfinite_eval(void)
{
    const char *d = fixture_hf_dir("overflow-run", 0), *text = tmp_path("text.txt"), *out = tmp_path("run");
    fixture_write_pattern(text, "abc defg hij ", 4096);
    poke_tensor(d, "model.norm.weight", -1, 3e38f);
    char eval_set[1300];
    snprintf(eval_set, sizeof eval_set, "eval=%s", text);
    const char *args[] = {"run",   "presets/svd.lua", "--model", d,   "--set",   eval_set,
                          "--set", "window=32",       "--out",   out, "--quiet", NULL};
    char *o = NULL, *e = NULL;
    int st = run_pare(&o, &e, args);
    CHECKF(st == 2, "exit %d (want 2): %.300s", st, e);
    CHECKF(e && strstr(e, "non-finite loss") && strstr(e, d), "stderr: %.300s", e);
    char rec[1300];
    snprintf(rec, sizeof rec, "%s/run.json", out);
    json_error_t je;
    json_t *j = json_load_file(rec, 0, &je);
    const char *status = json_string_value(json_object_get(j, "status"));
    CHECKF(status && strcmp(status, "complete") != 0, "run.json status %s", status ? status : "(none)");
    json_decref(j);
    free(o);
    free(e);
}

/* The training core stops before an update from a non-finite loss, naming the step. */
static void test_train_nonfinite_loss(void)
{
    pare_model *m = fixture_model("train-nan", 0);
    if (!m)
        return;
    for (int i = 0; i < m->cfg.dim; i++)
        m->final_norm_w[i] = 3e38f;
    pare_train_opts o;
    pare_train_defaults(&o);
    o.batch = 1;
    o.seq = 16;
    pare_error err = {0};
    pare_trainer *t = NULL;
    CHECK(pare_trainer_new(m, &o, &t, &err) == PARE_OK);
    int32_t *ids = fixture_ids(m, 1, 16);
    pare_train_stats st;
    if (t && ids) {
        pare_status rc = pare_train_step(t, ids, NULL, NULL, &st, &err);
        CHECKF(rc != PARE_OK && strstr(err.msg, "step 1") && strstr(err.msg, "loss"), "rc %d: %s", rc, err.msg);
    }
    free(ids);
    pare_trainer_free(t);
    pare_model_free(m);
}

/* ---- pare compare, threads, tokenizer, data and checkpoint files ---- */

/* A metric recorded as null (not finite) or a missing parameter count prints as "-", never 0.0000. */
static void test_compare_missing_metric(void)
{
    const char *run = tmp_path("run-a");
    char p[1300];
    snprintf(p, sizeof p, "mkdir -p '%s'", run);
    CHECK(system(p) == 0);
    snprintf(p, sizeof p, "%s/run.json", run);
    const char *rec = "{\"status\": \"complete\", \"results\": [{\"method\": \"svd\", \"steps\": [],"
                      " \"params\": {\"block_linear\": 100, \"total\": 200},"
                      " \"metrics\": [{\"name\": \"ppl\", \"data\": \"t.txt\", \"value\": null}]}]}\n";
    fixture_write_raw(p, rec, strlen(rec));
    const char *args[] = {"compare", run, "--format", "csv", NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    CHECKF(st == 0, "exit %d: %s", st, err);
    CHECKF(out && !strstr(out, "0.0000"), "a missing number printed as 0: %s", out);
    CHECKF(out && strstr(out, ",-,200,-,-"), "want '-' for the missing cells: %s", out);
    free(out);
    free(err);
}

/* PARE_THREADS / OMP_NUM_THREADS of 100000 crashed inside libgomp: clamped with a warning; values
 * that are not positive integers are ignored with a warning naming the variable. */
static void test_thread_environment(void)
{
    const char *d = fixture_hf_dir("threads", 0), *text = tmp_path("text.txt");
    fixture_write_pattern(text, "abc defg hij ", 2048);
    const char *args[] = {"eval", "--model", d, "--data", text, "--window", "32", NULL};
    const struct {
        const char *var, *value, *needle;
    } cases[] = {{"PARE_THREADS", "100000", "PARE_THREADS=100000 is more than"},
                 {"OMP_NUM_THREADS", "100000", "OMP_NUM_THREADS=100000 is more than"},
                 {"PARE_THREADS", "abc", "PARE_THREADS 'abc'"},
                 {"PARE_THREADS", "0", "PARE_THREADS '0'"},
                 {"PARE_THREADS", "-4", "PARE_THREADS '-4'"}};
    for (int i = 0; i < 5; i++) {
        setenv(cases[i].var, cases[i].value, 1);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err, args);
        unsetenv(cases[i].var);
        CHECKF(st == 0, "%s=%s: exit %d: %.300s", cases[i].var, cases[i].value, st, err);
        CHECKF(err && strstr(err, cases[i].needle) && strstr(err, "warning"), "%s=%s: stderr %.300s", cases[i].var,
               cases[i].value, err);
        CHECKF(out && strstr(out, "perplexity"), "%s=%s: no result", cases[i].var, cases[i].value);
        free(out);
        free(err);
    }
}

/* A tokenizer whose ids reach past the model's vocabulary is refused at load naming the tokenizer
 * file and the id (it loaded, and failed at the first forward naming no file). */
static void test_tokenizer_past_vocab(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    s.vocab = fixture_tokenizer_vocab() - 7;
    const char *d = tmp_path("small-vocab");
    CHECK(fixture_write_hf(d, &s) == 0);
    char id[32];
    snprintf(id, sizeof id, "token id %d", fixture_tokenizer_vocab() - 1);
    const char *info[] = {"info", "--model", d, NULL};
    expect_refused(info, (const char *const[]){"tokenizer.json", id, NULL});
}

/* A text too short for one window is named in the error, and pare compress refuses it before the
 * compression runs. */
static void test_short_text_named(void)
{
    const char *d = fixture_hf_dir("short", 0), *shortf = tmp_path("short.txt");
    fixture_write_raw(shortf, "a few words", 11);
    const char *args[] = {"compress", "--model", d,      "--method", "magnitude", "--ratio",
                          "0.2",      "--eval",  shortf, "--window", "32",        NULL};
    expect_refused(args, (const char *const[]){shortf, "shorter than one window", NULL});
}

/* A llama2.c file shorter than its 28-byte header reports its real size (it said "0 bytes"). */
static void test_llama2c_tiny_file(void)
{
    const char *f = tmp_path("tiny.bin");
    unsigned char bytes[27] = {0};
    for (size_t n = 5; n <= 27; n += 11) {
        fixture_write_raw(f, bytes, n);
        char want[32];
        snprintf(want, sizeof want, "%zu bytes", n);
        const char *args[] = {"info", "--model", f, NULL};
        expect_refused(args, (const char *const[]){f, want, "28-byte header", NULL});
    }
}

void suite_numbers(void);
void suite_numbers(void)
{
    RUN(test_parse_table);
    RUN(test_bad_numeric_options);
    RUN(test_bad_config_numbers);
    RUN(test_layer_cap);
    RUN(test_hostile_dimensions);
    RUN(test_bad_eos_ids);
    RUN(test_nonfinite_weights);
    RUN(test_overflowing_logits);
    RUN(test_recipe_nonfinite_eval);
    RUN(test_train_nonfinite_loss);
    RUN(test_compare_missing_metric);
    RUN(test_thread_environment);
    RUN(test_tokenizer_past_vocab);
    RUN(test_short_text_named);
    RUN(test_llama2c_tiny_file);
}

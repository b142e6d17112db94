/* The model families of issue 16 against their reference: for each fixture under tests/data/families/
 * (tiny models of each family with the reference logits and perplexity; see its README.md: made by
 * transformers with tools/make_family_fixtures.py, or by tools/family_reference.py's independent
 * re-implementation of transformers' forward) pare's logits and perplexity, its reading of 4.x- and
 * 5.x-style configs, both exports and their reloads, and `pare info`. Refusals of what pare does not
 * compute, and Phi-3's fused layout, run on a synthetic LLaMA folder. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "core/forward.h"
#include "core/generate.h"
#include "core/model.h"
#include "core/model_pare.h"
#include "core/safetensors.h"
#include "fixture.h"
#include "harness.h"

#define FAMILIES_DIR "tests/data/families"

/* Each fixture, the family pare must recognize in it, and what `pare info` must say of it. */
static const struct {
    const char *dir;
    pare_family family;
    const char *info[3];
} fixtures[] = {
    {"llama3", PARE_FAMILY_LLAMA, {"family        Llama", "llama3 scaling", "tied embeddings"}},
    {"llama-linear",
     PARE_FAMILY_LLAMA,
     {"family        Llama", "linear scaling (factor 2)", "biases on q, k, v, o, gate"}},
    {"mistral", PARE_FAMILY_MISTRAL, {"family        Mistral", "sliding window of 16 on layers 0, 1, 2", "untied"}},
    {"qwen2", PARE_FAMILY_QWEN2, {"family        Qwen2", "biases on q, k, v;", "tied embeddings"}},
    {"qwen3", PARE_FAMILY_QWEN3, {"family        Qwen3", "q/k norms", "4 heads x 24"}},
    {"phi3", PARE_FAMILY_PHI3, {"family        Phi-3", "fused self_attn.qkv_proj, mlp.gate_up_proj", "qkv_proj.q"}},
    {"gemma3", PARE_FAMILY_GEMMA3, {"family        Gemma-3", "sliding window of 16 on layers 0, 2", "theta 10000"}},
};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

static const char *fixture_dir(int i)
{
    static char path[8][256];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, 256, "%s/%s", FAMILIES_DIR, fixtures[i].dir);
    return p;
}

/* Skips the running test while the fixtures are not in the checkout. */
#define NEED_FIXTURES()                                                                                                \
    do {                                                                                                               \
        if (!pare_is_dir(FAMILIES_DIR))                                                                                \
            SKIP("skipped: %s not present (made by tools/make_family_fixtures.py)", FAMILIES_DIR);                     \
    } while (0)

/* The logits of ids [1, n] through the core forward (malloc'd [n, V]). */
static float *logits_of(const pare_model *m, const int32_t *ids, int n)
{
    pare_acts *a = NULL;
    pare_error err = {0};
    if (pare_acts_alloc(m, 1, n, 0, &a, &err) || pare_forward(m, a, ids, 1, n, PARE_LOGITS_ALL, &err)) {
        CHECKF(0, "%s: forward: %s", m->path, err.msg);
        pare_acts_free(a);
        return NULL;
    }
    size_t sz = (size_t)n * m->cfg.vocab_size;
    float *out = malloc(sz * sizeof *out);
    if (out)
        memcpy(out, a->logits, sz * sizeof *out);
    pare_acts_free(a);
    return out;
}

/* The prompt of reference.json (malloc'd) and its length. */
static int32_t *prompt_of(json_t *ref, int *n)
{
    json_t *arr = json_object_get(ref, "prompt_ids");
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; ids && i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

static pare_model *load_model(const char *dir)
{
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s: %s", dir, err.msg);
    return m;
}

/* Logits of the prompt within 1e-4 (max abs) of the reference logits.f32, and the perplexity of
 * eval.i32 (non-overlapping windows of `window`, no BOS) within 1e-5 relative of reference.json. */
static void test_family_logits_and_ppl(void)
{
    NEED_FIXTURES();
    for (int i = 0; i < N_FIXTURES; i++) {
        const char *dir = fixture_dir(i);
        json_t *ref = fixture_read_json(dir, "reference.json");
        pare_model *m = ref ? load_model(dir) : NULL;
        if (!m) {
            json_decref(ref);
            continue;
        }
        CHECKF(m->cfg.family == fixtures[i].family, "%s: family %d, want %d", dir, (int)m->cfg.family,
               (int)fixtures[i].family);
        int n;
        int32_t *prompt = prompt_of(ref, &n);
        char path[512];
        snprintf(path, sizeof path, "%s/logits.f32", dir);
        size_t len = 0;
        float *want = (float *)(void *)fixture_read(path, &len);
        float *got = logits_of(m, prompt, n);
        CHECKF(want && len == (size_t)n * m->cfg.vocab_size * sizeof(float), "%s: %zu bytes of logits", path, len);
        double d = NAN;
        if (want && got && len == (size_t)n * m->cfg.vocab_size * sizeof(float)) {
            d = fixture_max_diff(got, want, (size_t)n * m->cfg.vocab_size);
            CHECKF(d <= 1e-4, "%s: logits differ from the reference by %.3g (max abs)", dir, d);
        }
        snprintf(path, sizeof path, "%s/eval.i32", dir);
        size_t n_ids = 0;
        int32_t *ids = (int32_t *)(void *)fixture_read(path, &n_ids);
        n_ids /= sizeof(int32_t);
        pare_eval_opts o;
        pare_eval_defaults(&o);
        o.window = (int)json_integer_value(json_object_get(ref, "window"));
        o.bos = 0;
        o.batch = 4;
        pare_eval_result r;
        pare_error err = {0};
        double ref_ppl = json_number_value(json_object_get(ref, "ppl"));
        CHECKF(ids && pare_eval_perplexity(m, ids, n_ids, &o, NULL, &r, &err) == PARE_OK, "%s: %s", dir, err.msg);
        if (ids && !err.code) {
            CHECKF(r.plan.predicted == (size_t)json_integer_value(json_object_get(ref, "predicted")),
                   "%s: %zu predicted", dir, r.plan.predicted);
            CHECKF(fabs(r.ppl / ref_ppl - 1) <= 1e-5, "%s: ppl %.8g, reference %.8g (rel %.3g)", dir, r.ppl, ref_ppl,
                   fabs(r.ppl / ref_ppl - 1));
            printf("  %-13s ppl %.6f  reference %.6f  rel diff %.2e  logits max abs diff %.2e\n", fixtures[i].dir,
                   r.ppl, ref_ppl, fabs(r.ppl / ref_ppl - 1), d);
        }
        /* what `pare eval` and calibration score is eval.txt through the folder's tokenizer: the same ids */
        snprintf(path, sizeof path, "%s/eval.txt", dir);
        int32_t *text_ids = NULL;
        size_t n_text = 0;
        pare_error terr = {0};
        CHECKF(pare_model_tokenize_file(m, path, &text_ids, &n_text, &terr) == PARE_OK, "%s: %s", path, terr.msg);
        CHECKF(ids && text_ids && n_text == n_ids && !memcmp(ids, text_ids, n_ids * sizeof *ids),
               "%s: the tokenizer gives %zu ids, not eval.i32's %zu", path, n_text, n_ids);
        free(text_ids);
        free(ids);
        free(want);
        free(got);
        free(prompt);
        pare_model_free(m);
        json_decref(ref);
    }
}

/* Rewrites a config in the style of transformers 4.x (rope_theta / rope_scaling at the top level,
 * Gemma's local base as rope_local_base_freq, torch_dtype) or 5.x (rope_parameters, per layer type
 * for Gemma-3; dtype), whichever style it is in now. */
static void restyle_config(json_t *j, int v5)
{
    json_t *rp = json_object_get(j, "rope_parameters");
    json_t *full = json_object_get(rp, "full_attention"), *sliding = json_object_get(rp, "sliding_attention");
    json_t *global = json_object(), *local = NULL;
    /* gather: the global parameters (theta + scaling) and Gemma's local theta, from either style */
    if (full || sliding) {
        json_object_update(global, full);
        local = json_deep_copy(sliding);
    } else if (rp) {
        json_object_update(global, rp);
    }
    if (json_object_get(j, "rope_theta"))
        json_object_set(global, "rope_theta", json_object_get(j, "rope_theta"));
    if (json_is_object(json_object_get(j, "rope_scaling")))
        json_object_update(global, json_object_get(j, "rope_scaling"));
    if (json_object_get(j, "rope_local_base_freq"))
        local = json_pack("{s:s, s:O}", "rope_type", "default", "rope_theta",
                          json_object_get(j, "rope_local_base_freq"));
    if (!json_object_get(global, "rope_type"))
        json_object_set_new(global, "rope_type", json_string("default"));
    json_t *dt = json_object_get(j, "dtype") ? json_object_get(j, "dtype") : json_object_get(j, "torch_dtype");
    json_incref(dt);
    for (const char *const *k = (const char *const[]){"rope_parameters", "rope_theta", "rope_scaling",
                                                      "rope_local_base_freq", "dtype", "torch_dtype", NULL};
         *k; k++)
        json_object_del(j, *k);
    if (v5) {
        json_object_set_new(j, "dtype", dt);
        if (local)
            json_object_set_new(j, "rope_parameters",
                                json_pack("{s:O, s:O}", "full_attention", global, "sliding_attention", local));
        else
            json_object_set(j, "rope_parameters", global);
    } else {
        json_object_set_new(j, "torch_dtype", dt);
        json_object_set(j, "rope_theta", json_object_get(global, "rope_theta"));
        json_object_del(global, "rope_theta");
        if (strcmp(json_string_value(json_object_get(global, "rope_type")), "default") != 0)
            json_object_set(j, "rope_scaling", global);
        else
            json_object_set_new(j, "rope_scaling", json_null());
        if (local)
            json_object_set(j, "rope_local_base_freq", json_object_get(local, "rope_theta"));
    }
    json_decref(global);
    json_decref(local);
}

/* The fixture's config rewritten in the style of transformers 4.x and of 5.x: all three load to the
 * same pare_config, byte for byte. */
static void test_family_config_styles(void)
{
    NEED_FIXTURES();
    for (int i = 0; i < N_FIXTURES; i++) {
        const char *dir = fixture_dir(i);
        char path[512];
        snprintf(path, sizeof path, "%s/config.json", dir);
        pare_config base, styled;
        pare_error err = {0};
        CHECKF(pare_config_load_hf(path, &base, &err) == PARE_OK, "%s", err.msg);
        for (int v5 = 0; v5 <= 1; v5++) {
            json_t *j = fixture_read_json(dir, "config.json");
            if (!j)
                continue;
            restyle_config(j, v5);
            const char *out = tmp_path(v5 ? "config5.json" : "config4.json");
            CHECK(json_dump_file(j, out, JSON_INDENT(1)) == 0);
            json_decref(j);
            CHECKF(pare_config_load_hf(out, &styled, &err) == PARE_OK, "%s (%s style): %s", dir, v5 ? "5.x" : "4.x",
                   err.msg);
            CHECKF(!memcmp(&base, &styled, sizeof base), "%s: the %s-style config loads differently", dir,
                   v5 ? "5.x" : "4.x");
        }
        CHECKF(base.rope_theta > 0 && (fixtures[i].family != PARE_FAMILY_GEMMA3 || base.rope_local_theta > 0),
               "%s: theta %g, local %g", dir, base.rope_theta, base.rope_local_theta);
    }
}

/* What pare does not compute is refused at load with exit 2 and one line naming the field and value. */
static void test_family_refusals(void)
{
    static const struct {
        const char *key, *json, *needle;
    } cases[] = {
        {"architectures", "[\"MixtralForCausalLM\"]", "MixtralForCausalLM"},
        {"rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type \"yarn\""},
        {"rope_scaling", "{\"type\": \"longrope\", \"short_factor\": [1], \"long_factor\": [1]}",
         "rope_scaling.type \"longrope\""},
        {"rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}", "rope_scaling.rope_type \"dynamic\""},
        {"rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 4.0}",
         "rope_parameters.rope_type \"yarn\""},
        {"final_logit_softcapping", "30.0", "final_logit_softcapping 30"},
        {"attn_logit_softcapping", "50.0", "attn_logit_softcapping 50"},
        {"partial_rotary_factor", "0.5", "partial_rotary_factor 0.5"},
        /* transformers builds model_type's class: a disagreeing architectures[0] is refused naming both */
        {"model_type", "\"mistral\"", "architectures[0] \"LlamaForCausalLM\" and model_type \"mistral\""},
        {"model_type", "\"gemma3_text\"", "(Llama, Gemma-3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = fixture_hf_dir("refused", 0);
        json_error_t je;
        fixture_set_config(dir, cases[i].key, json_loads(cases[i].json, JSON_DECODE_ANY, &je));
        const char *args[] = {"info", "--model", dir, NULL};
        const char *needles[] = {cases[i].needle, "config.json", NULL};
        expect_pare_error(args, needles, 1);
    }
}

static int same_bytes(const pare_model *a, const pare_model *b)
{
    return a && b && a->slab_floats == b->slab_floats && !memcmp(a->slab, b->slab, a->slab_floats * sizeof(float));
}

/* Phi-3's exported qkv_proj / gate_up_proj hold the source's bytes (the fixture is F32, the export F32). */
static void check_fused_bytes(const char *src_dir, const char *out_dir, int n_layers)
{
    pare_safetensors a, b;
    pare_error err = {0};
    if (pare_st_open_dir(src_dir, &a, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    if (pare_st_open_dir(out_dir, &b, &err)) {
        CHECKF(0, "%s", err.msg);
        pare_st_close(&a);
        return;
    }
    int fused = 0;
    for (size_t i = 0; i < a.n_tensors; i++) {
        const pare_st_tensor *s = &a.tensors[i], *t = pare_st_find(&b, s->name);
        if (!strstr(s->name, "qkv_proj") && !strstr(s->name, "gate_up_proj"))
            continue;
        fused++;
        CHECKF(t && t->dtype == s->dtype && t->nbytes == s->nbytes && !memcmp(t->data, s->data, s->nbytes),
               "%s: %s is not the source's bytes", out_dir, s->name);
    }
    CHECKF(fused == 2 * n_layers, "%s: %d fused tensors in the source", src_dir, fused);
    pare_st_close(&a);
    pare_st_close(&b);
}

/* The hf-dense export of each fixture reloads with identical logits (Phi-3 re-fused); the pare
 * export reloads bit for bit (every parameter, norms included). */
static void test_family_export_reload(void)
{
    NEED_FIXTURES();
    for (int i = 0; i < N_FIXTURES; i++) {
        const char *dir = fixture_dir(i);
        pare_model *m = load_model(dir);
        if (!m)
            continue;
        int32_t ids[16];
        for (int t = 0; t < 16; t++)
            ids[t] = (int32_t)((t * 37 + 11) % m->cfg.vocab_size);
        float *want = logits_of(m, ids, 16);
        for (int pare_fmt = 0; pare_fmt <= 1; pare_fmt++) {
            char name[64];
            snprintf(name, sizeof name, "%s-%s", fixtures[i].dir, pare_fmt ? "pare" : "hf");
            const char *out = tmp_path(name);
            pare_export_opts o;
            pare_export_defaults(&o);
            o.format = pare_fmt ? PARE_EXPORT_PARE : PARE_EXPORT_HF_DENSE;
            pare_error err = {0};
            CHECKF(pare_export(m, out, &o, NULL, NULL, &err) == PARE_OK, "%s: export: %s", dir, err.msg);
            pare_model *r = load_model(out);
            float *got = r ? logits_of(r, ids, 16) : NULL;
            CHECKF(want && got && fixture_max_diff(want, got, (size_t)16 * m->cfg.vocab_size) == 0,
                   "%s: the %s export's logits differ", dir, pare_fmt ? "pare" : "hf-dense");
            if (pare_fmt)
                CHECKF(same_bytes(m, r), "%s: the pare export does not reload bit for bit", dir);
            CHECKF(r && r->cfg.family == m->cfg.family, "%s: the export reloads as another family", dir);
            if (!pare_fmt && fixtures[i].family == PARE_FAMILY_PHI3)
                check_fused_bytes(dir, out, m->cfg.n_layers);
            free(got);
            pare_model_free(r);
        }
        free(want);
        pare_model_free(m);
    }
}

/* A copy of fixture i (config, single-file weights, tokenizer) under the test's temporary folder, to modify. */
static const char *copy_fixture(int i)
{
    char name[64];
    snprintf(name, sizeof name, "%s-copy", fixtures[i].dir);
    const char *copy = tmp_path(name);
    mkdir(copy, 0755);
    pare_error err = {0};
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int f = 0; f < 3; f++) {
        char a[512], b[1300];
        snprintf(a, sizeof a, "%s/%s", fixture_dir(i), files[f]);
        snprintf(b, sizeof b, "%s/%s", copy, files[f]);
        CHECKF(pare_copy_file(a, b, &err) == PARE_OK, "%s", err.msg);
    }
    return copy;
}

/* The hf-dense export writes the config read at load: with the source's config.json deleted after
 * loading, a Gemma-3 export still names Gemma3ForCausalLM with the source's keys and reloads as the
 * same model (it fell back to a synthesized LlamaForCausalLM config: a different model). */
static void test_export_without_source_config(void)
{
    NEED_FIXTURES();
    const char *src = fixture_dir(N_FIXTURES - 1), *copy = copy_fixture(N_FIXTURES - 1);
    const char *out = tmp_path("gemma3-noconf");
    CHECKF(fixtures[N_FIXTURES - 1].family == PARE_FAMILY_GEMMA3, "the last fixture is %s", src);
    pare_error err = {0};
    pare_model *m = load_model(copy);
    if (!m)
        return;
    char conf[1300];
    snprintf(conf, sizeof conf, "%s/config.json", copy);
    CHECKF(remove(conf) == 0, "cannot remove %s", conf);
    int32_t ids[12];
    for (int t = 0; t < 12; t++)
        ids[t] = (int32_t)((t * 29 + 5) % m->cfg.vocab_size);
    float *want = logits_of(m, ids, 12);
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = PARE_EXPORT_HF_DENSE;
    CHECKF(pare_export(m, out, &o, NULL, NULL, &err) == PARE_OK, "export: %s", err.msg);
    json_t *wrote = fixture_read_json(out, "config.json"), *orig = fixture_read_json(src, "config.json");
    static const char *const keys[] = {"architectures", "model_type", "query_pre_attn_scalar", "sliding_window",
                                       "layer_types"};
    for (int i = 0; wrote && orig && i < 5; i++)
        CHECKF(json_equal(json_object_get(wrote, keys[i]), json_object_get(orig, keys[i])),
               "the export's %s differs from the source's", keys[i]);
    pare_model *r = load_model(out);
    float *got = r ? logits_of(r, ids, 12) : NULL;
    CHECKF(r && r->cfg.family == PARE_FAMILY_GEMMA3, "the export reloads as another family");
    CHECKF(want && got && fixture_max_diff(want, got, (size_t)12 * m->cfg.vocab_size) == 0, "the export's logits "
                                                                                            "differ from the source's");
    free(want);
    free(got);
    json_decref(wrote);
    json_decref(orig);
    pare_model_free(r);
    pare_model_free(m);
}

/* Gemma-3 with "sliding_window": null keeps its layer types: transformers still rotates a local layer by
 * rope_local_base_freq, and only the mask goes. So null gives the logits of a window no sequence reaches
 * (the model's positions), and differs from every layer typed full_attention (pare used the global
 * RoPE table on every layer when the window was null). */
static void test_gemma_null_window_keeps_layer_types(void)
{
    NEED_FIXTURES();
    const char *copy = copy_fixture(N_FIXTURES - 1);
    CHECKF(fixtures[N_FIXTURES - 1].family == PARE_FAMILY_GEMMA3, "the last fixture is %s", copy);
    int32_t ids[24];
    for (int t = 0; t < 24; t++)
        ids[t] = (int32_t)((t * 37 + 11) % 256);
    float *logits[3] = {NULL, NULL, NULL};
    size_t n = 0;
    for (int v = 0; v < 3; v++) {
        if (v == 0)
            fixture_set_config(copy, "sliding_window", json_null());
        else if (v == 1)
            fixture_set_config(copy, "sliding_window", json_integer(128));
        else {
            json_t *full = json_array();
            for (int l = 0; l < 3; l++)
                json_array_append_new(full, json_string("full_attention"));
            fixture_set_config(copy, "layer_types", full);
        }
        pare_model *m = load_model(copy);
        if (!m)
            break;
        CHECKF(m->cfg.n_layers == 3 && m->cfg.max_pos >= 24, "%s: %d layers, %d positions", copy, m->cfg.n_layers,
               m->cfg.max_pos);
        n = (size_t)24 * m->cfg.vocab_size;
        logits[v] = logits_of(m, ids, 24);
        pare_model_free(m);
    }
    if (logits[0] && logits[1] && logits[2]) {
        double same = fixture_max_diff(logits[0], logits[1], n), other = fixture_max_diff(logits[0], logits[2], n);
        CHECKF(same == 0, "sliding_window null differs from a window of 128 by %.3g", same);
        CHECKF(other > 1e-3, "layer types made no difference (%.3g): the test cannot see the local RoPE base", other);
    }
    for (int v = 0; v < 3; v++)
        free(logits[v]);
}

/* Generation stops at any id of an eos_token_id list, not only its first: a copy of the Mistral
 * fixture lists [an id greedy decoding never emits, the first token it emits], and generation ends
 * after that first token (it ran on to max_new). */
static void test_generation_stops_at_every_eos(void)
{
    NEED_FIXTURES();
    enum { PROMPT = 4, MAX_NEW = 8 };
    const char *copy = copy_fixture(2);
    CHECKF(fixtures[2].family == PARE_FAMILY_MISTRAL, "fixture 2 is %s", fixtures[2].dir);
    pare_model *m = load_model(copy);
    if (!m)
        return;
    int32_t free_run[PROMPT + MAX_NEW] = {3, 17, 42, 99}, ids[PROMPT + MAX_NEW] = {3, 17, 42, 99};
    pare_gen_opts o;
    pare_gen_defaults(&o);
    o.max_new = MAX_NEW;
    o.temperature = 0;
    o.stop_at_eos = 0;
    pare_error err = {0};
    int n = 0;
    CHECKF(pare_generate(m, free_run, PROMPT, &o, NULL, NULL, &n, &err) == PARE_OK && n == PROMPT + MAX_NEW, "%s",
           err.msg);
    int never = 0; /* the smallest id greedy decoding does not emit */
    for (int t = 0; t < n; t++)
        if (free_run[t] == never)
            never++, t = -1;
    pare_model_free(m);
    char list[64];
    snprintf(list, sizeof list, "[%d, %d]", never, free_run[PROMPT]);
    json_error_t je;
    fixture_set_config(copy, "eos_token_id", json_loads(list, 0, &je));
    m = load_model(copy);
    if (!m)
        return;
    o.stop_at_eos = 1;
    CHECKF(pare_generate(m, ids, PROMPT, &o, NULL, NULL, &n, &err) == PARE_OK, "%s", err.msg);
    CHECKF(n == PROMPT + 1 && ids[PROMPT] == free_run[PROMPT], "eos_token_id %s: generated %d tokens, want 1", list,
           n - PROMPT);
    pare_model_free(m);
}

/* pare_embed_scale, the one factor forward and backward scale the embeddings by: sqrt(hidden) in fp32
 * for Gemma, 1 otherwise, and the forward's embedding rows are the table's rows times it. */
static void test_embed_scale(void)
{
    NEED_FIXTURES();
    const int which[] = {1, N_FIXTURES - 1}; /* llama-linear, gemma3 */
    for (int w = 0; w < 2; w++) {
        pare_model *m = load_model(fixture_dir(which[w]));
        if (!m)
            continue;
        int C = m->cfg.dim, gemma = fixtures[which[w]].family == PARE_FAMILY_GEMMA3;
        float want = gemma ? (float)sqrt((double)C) : 1.0f;
        CHECKF(pare_embed_scale(&m->cfg) == want, "%s: embed scale %g, want %g", fixtures[which[w]].dir,
               (double)pare_embed_scale(&m->cfg), (double)want);
        int32_t ids[3] = {0, 7, 5};
        pare_acts *a = NULL;
        pare_error err = {0};
        CHECKF(pare_acts_alloc(m, 1, 3, 0, &a, &err) == PARE_OK && pare_embed_forward(m, a, ids, 1, 3, &err) == PARE_OK,
               "%s", err.msg);
        for (int t = 0; a && t < 3; t++)
            for (int j = 0; j < C; j++)
                CHECKF(a->emb[(size_t)t * C + j] == m->tok_emb[(size_t)ids[t] * C + j] * want, "%s: emb[%d][%d]",
                       fixtures[which[w]].dir, t, j);
        pare_acts_free(a);
        pare_model_free(m);
    }
}

/* A LLaMA folder rewritten as Phi-3 stores it (q, k, v and gate, up fused along out, no biases) is
 * the same model: identical logits; its hf-dense export writes the fused tensors back byte for byte.
 * Runs without the family fixtures. */
static void test_phi3_fused_layout(void)
{
    const char *src = fixture_hf_dir("fused-src", 0);
    pare_model *m = load_model(src);
    if (!m)
        return;
    const pare_config *c = &m->cfg;
    int C = c->dim, F = c->ffn_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int np = pare_model_named_params(m, NULL), L = c->n_layers, n = 0;
    pare_param_ref *refs = calloc((size_t)np, sizeof *refs);
    pare_st_out *outs = calloc((size_t)(np + 4 * L), sizeof *outs);
    char(*names)[96] = calloc((size_t)(4 * L), sizeof *names);
    float **fused = calloc((size_t)(2 * L), sizeof *fused);
    CHECK(refs && outs && names && fused);
    if (!refs || !outs || !names || !fused)
        goto done;
    pare_model_named_params(m, refs);
    for (int i = 0; i < np; i++)
        outs[n++] = (pare_st_out){refs[i].name, PARE_DT_F32, refs[i].d1 ? 2 : 1, {refs[i].d0, refs[i].d1}, refs[i].p};
    for (int l = 0; l < L; l++) {
        const pare_block *b = &m->blocks[l];
        float *qkv = fused[2 * l] = malloc((size_t)(qd + 2 * kvd) * C * sizeof(float)); /* [q | k | v] rows */
        float *gu = fused[2 * l + 1] = malloc((size_t)2 * F * C * sizeof(float));       /* [gate | up] rows */
        if (!qkv || !gu)
            goto done;
        memcpy(qkv, b->q.w, (size_t)qd * C * sizeof(float));
        memcpy(qkv + (size_t)qd * C, b->k.w, (size_t)kvd * C * sizeof(float));
        memcpy(qkv + (size_t)(qd + kvd) * C, b->v.w, (size_t)kvd * C * sizeof(float));
        memcpy(gu, b->gate.w, (size_t)F * C * sizeof(float));
        memcpy(gu + (size_t)F * C, b->up.w, (size_t)F * C * sizeof(float));
        const struct {
            const char *what;
            int rows, cols;
            const float *w;
        } t[4] = {{"self_attn.qkv_proj", qd + 2 * kvd, C, qkv},
                  {"self_attn.o_proj", C, qd, b->o.w},
                  {"mlp.gate_up_proj", 2 * F, C, gu},
                  {"mlp.down_proj", C, F, b->down.w}};
        for (int j = 0; j < 4; j++) {
            snprintf(names[4 * l + j], sizeof names[0], "model.layers.%d.%s.weight", l, t[j].what);
            outs[n++] = (pare_st_out){names[4 * l + j], PARE_DT_F32, 2, {t[j].rows, t[j].cols}, t[j].w};
        }
    }
    const char *dir = tmp_path("phi3-from-llama");
    char path[1300];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pare_error err = {0};
    CHECKF(pare_st_write(path, outs, (size_t)n, NULL, &err) == PARE_OK, "%s", err.msg);
    json_t *cfg = fixture_read_json(src, "config.json");
    if (!cfg)
        goto done;
    json_object_set_new(cfg, "architectures", json_pack("[s]", "Phi3ForCausalLM"));
    json_object_set_new(cfg, "model_type", json_string("phi3"));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(json_dump_file(cfg, path, 0) == 0);
    json_decref(cfg);
    pare_model *p = load_model(dir);
    if (p) {
        CHECK(p->cfg.family == PARE_FAMILY_PHI3 && p->cfg.arch == PARE_ARCH_PHI3);
        CHECKF(!strcmp(p->blocks[0].q.name, "model.layers.0.self_attn.qkv_proj.q") &&
                   !strcmp(p->blocks[0].up.name, "model.layers.0.mlp.gate_up_proj.up"),
               "%s, %s", p->blocks[0].q.name, p->blocks[0].up.name);
        int32_t ids[12];
        for (int t = 0; t < 12; t++)
            ids[t] = (int32_t)((t * 7 + 3) % c->vocab_size);
        float *a = logits_of(m, ids, 12), *b = logits_of(p, ids, 12);
        CHECKF(a && b && fixture_max_diff(a, b, (size_t)12 * c->vocab_size) == 0, "fused Phi-3 logits differ");
        free(a);
        free(b);
        const char *out = tmp_path("phi3-export");
        pare_export_opts o;
        pare_export_defaults(&o);
        CHECKF(pare_export(p, out, &o, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
        check_fused_bytes(dir, out, L);
        pare_model_free(p);
    }
done:
    for (int i = 0; fused && i < 2 * L; i++)
        free(fused[i]);
    free(fused);
    free(names);
    free(outs);
    free(refs);
    pare_model_free(m);
}

/* `pare info` names each fixture's family and its particulars. */
static void test_family_info(void)
{
    NEED_FIXTURES();
    for (int i = 0; i < N_FIXTURES; i++) {
        const char *args[] = {"info", "--model", fixture_dir(i), NULL};
        char *out = NULL, *errout = NULL;
        int rc = run_pare(&out, &errout, args);
        CHECKF(rc == 0, "pare info %s: exit %d: %s", fixtures[i].dir, rc, errout ? errout : "");
        for (int k = 0; k < 3 && out; k++)
            CHECKF(strstr(out, fixtures[i].info[k]) != NULL, "pare info %s: no \"%s\" in:\n%s", fixtures[i].dir,
                   fixtures[i].info[k], out);
        free(out);
        free(errout);
    }
}

void suite_families(void);
void suite_families(void)
{
    RUN(test_family_logits_and_ppl);
    RUN(test_family_config_styles);
    RUN(test_family_refusals);
    RUN(test_family_export_reload);
    RUN(test_export_without_source_config);
    RUN(test_generation_stops_at_every_eos);
    RUN(test_embed_scale);
    RUN(test_gemma_null_window_keeps_layer_types);
    RUN(test_phi3_fused_layout);
    RUN(test_family_info);
}

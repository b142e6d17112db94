/* Formats: safetensors validation and dtypes, sharded folders, GPT-2 key prefixes, config variants,
 * and llama2.c checkpoints computing exactly what the equivalent HF folder computes. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/forward.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "fixture.h"
#include "harness.h"

/* Writes a safetensors file from a header text and `data_len` bytes of zeros. */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hl = strlen(header);
    unsigned char *buf = calloc(1, 8 + hl + data_len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    fixture_write_raw(path, buf, 8 + hl + data_len);
    free(buf);
}

/* Opening must fail with PARE_EFORMAT and a message naming the file and containing `what`. */
static void expect_st_error(const char *path, const char *what)
{
    pare_safetensors st;
    pare_error err = {0};
    pare_status rc = pare_st_open_file(path, &st, &err);
    CHECKF(rc == PARE_EFORMAT, "%s: expected a format error, got %s (%s)", what, pare_status_name(rc), err.msg);
    CHECKF(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    CHECKF(strstr(err.msg, what) != NULL, "message lacks '%s': %s", what, err.msg);
    CHECKF(strchr(err.msg, '\n') == NULL, "message is not one line: %s", err.msg);
}

static void test_st_valid_and_metadata(void)
{
    const char *p = tmp_path("ok.safetensors");
    write_st(p,
             "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}",
             32);
    pare_safetensors st;
    pare_error err = {0};
    CHECKF(pare_st_open_file(p, &st, &err) == PARE_OK, "%s", err.msg);
    CHECK(st.n_tensors == 2);
    const pare_st_tensor *a = pare_st_find(&st, "a");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->dtype == PARE_DT_F32);
    CHECK(pare_st_find(&st, "__metadata__") == NULL);
    pare_st_close(&st);
}

static void test_st_truncated(void)
{
    const char *p = tmp_path("short.safetensors");
    fixture_write_raw(p, "\x10\x00\x00", 3);
    expect_st_error(p, "truncated");
    /* a whole header whose data area was cut short */
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}", 40);
    expect_st_error(p, "out of range");
}

static void test_st_header_past_eof(void)
{
    const char *p = tmp_path("hdr.safetensors");
    /* under the header cap (tested in the limits suite) but longer than the file */
    unsigned char b[16] = {0x00, 0x10, 0, 0, 0, 0, 0, 0, '{', '}'};
    fixture_write_raw(p, b, 16);
    expect_st_error(p, "runs past the end of the file");
}

static void test_st_invalid_json(void)
{
    const char *p = tmp_path("json.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 4);
    expect_st_error(p, "invalid header JSON");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[0,4]}}",
             4);
    expect_st_error(p, "invalid header JSON"); /* duplicate keys are rejected */
    write_st(p, "{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_st_error(p, "unknown dtype");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    expect_st_error(p, "invalid shape");
}

static void test_st_offsets(void)
{
    const char *p = tmp_path("off.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],"
             "\"data_offsets\":[8,24]}}",
             24);
    expect_st_error(p, "overlap");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 16);
    expect_st_error(p, "out of range");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", 16);
    expect_st_error(p, "invalid data_offsets");
}

static void test_st_size_mismatch(void)
{
    const char *p = tmp_path("size.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3,3],\"data_offsets\":[0,36]}}", 36);
    expect_st_error(p, "needs 18");
}

/* Conversions follow IEEE round-to-nearest-even; the expected values are derived from the formats. */
static void test_half_conversions(void)
{
    float one = 1.0f;
    CHECK(pare_bf16_to_f32(pare_f32_to_bf16(1.5f)) == 1.5f);
    CHECK(pare_bf16_to_f32(pare_f32_to_bf16(one + ldexpf(1, -8))) == 1.0f);                    /* tie -> even */
    CHECK(pare_bf16_to_f32(pare_f32_to_bf16(one + 3 * ldexpf(1, -8))) == one + ldexpf(1, -6)); /* tie -> even (up) */
    CHECK(pare_f16_to_f32(pare_f32_to_f16(65504.0f)) == 65504.0f);                             /* largest f16 */
    CHECK(isinf(pare_f16_to_f32(pare_f32_to_f16(70000.0f))));
    CHECK(pare_f16_to_f32(pare_f32_to_f16(one + ldexpf(1, -11))) == 1.0f);
    CHECK(pare_f16_to_f32(pare_f32_to_f16(one + 3 * ldexpf(1, -11))) == one + ldexpf(1, -9));
    CHECK(pare_f16_to_f32(pare_f32_to_f16(ldexpf(1, -24))) == ldexpf(1, -24)); /* smallest subnormal */
    CHECK(pare_f16_to_f32(pare_f32_to_f16(ldexpf(3, -24))) == ldexpf(3, -24));
    CHECK(pare_f16_to_f32(pare_f32_to_f16(ldexpf(1, -25))) == 0.0f); /* tie -> even (0) */
    CHECK(pare_f16_to_f32(pare_f32_to_f16(-2.0f)) == -2.0f);
    CHECK(isnan(pare_f16_to_f32(pare_f32_to_f16(NAN))) && isnan(pare_bf16_to_f32(pare_f32_to_bf16(NAN))));
    /* every finite f16 value survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00 && pare_f32_to_f16(pare_f16_to_f32((uint16_t)h)) != h)
            bad++;
    CHECKF(bad == 0, "%d f16 values do not round-trip", bad);
}

/* Logits of a fixture folder for a fixed token sequence. */
static float *fixture_logits(const char *dir, int *n_out, int *vocab)
{
    pare_model *m = NULL;
    pare_error err = {0};
    if (pare_model_load(dir, NULL, &m, &err) != PARE_OK) {
        CHECKF(0, "loading %s: %s", dir, err.msg);
        return NULL;
    }
    int T = 20;
    int32_t ids[20];
    for (int i = 0; i < T; i++)
        ids[i] = (i * 37 + 5) % m->cfg.vocab_size;
    pare_acts *a = NULL;
    float *out = NULL;
    if (pare_acts_alloc(m, 1, T, 0, &a, &err) == PARE_OK &&
        pare_forward(m, a, ids, 1, T, PARE_LOGITS_ALL, &err) == PARE_OK) {
        size_t n = (size_t)T * m->cfg.vocab_size;
        out = malloc(n * sizeof *out);
        memcpy(out, a->logits, n * sizeof *out);
        *n_out = (int)n;
        *vocab = m->cfg.vocab_size;
    } else {
        CHECKF(0, "forward on %s: %s", dir, err.msg);
    }
    pare_acts_free(a);
    pare_model_free(m);
    return out;
}

static double max_abs_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void compare_dirs(const char *d1, const char *d2, double tol)
{
    int n1 = 0, n2 = 0, v1 = 0, v2 = 0;
    float *l1 = fixture_logits(d1, &n1, &v1), *l2 = fixture_logits(d2, &n2, &v2);
    CHECKF(l1 && l2 && n1 == n2, "%s vs %s: both must run", d1, d2);
    if (l1 && l2 && n1 == n2) {
        double d = max_abs_diff(l1, l2, n1);
        CHECKF(d <= tol, "%s vs %s: max |diff| %.3g > %.3g", d1, d2, d, tol);
    }
    free(l1);
    free(l2);
}

static void test_sharded_equals_single(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    char d1[1200], d2[1200];
    snprintf(d1, sizeof d1, "%s", tmp_path("single"));
    snprintf(d2, sizeof d2, "%s", tmp_path("sharded"));
    CHECK(fixture_write_hf(d1, &s) == 0);
    s.shards = 3;
    CHECK(fixture_write_hf(d2, &s) == 0);
    compare_dirs(d1, d2, 0.0);
    /* an index that names the wrong shard for a tensor */
    char index[1300];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", d2);
    json_error_t je;
    json_t *ij = json_load_file(index, 0, &je);
    json_t *wm = json_object_get(ij, "weight_map");
    const char *first_shard = json_string_value(json_object_get(wm, "model.embed_tokens.weight"));
    json_object_set_new(wm, "model.embed_tokens.weight",
                        json_string(strcmp(first_shard, "model-00002-of-00003.safetensors")
                                        ? "model-00002-of-00003.safetensors"
                                        : "model-00001-of-00003.safetensors"));
    json_dump_file(ij, index, 0);
    json_decref(ij);
    {
        pare_model *bad = NULL;
        pare_error e2 = {0};
        CHECK(pare_model_load(d2, NULL, &bad, &e2) == PARE_EFORMAT);
        CHECKF(strstr(e2.msg, "model.embed_tokens.weight") && strstr(e2.msg, "stored in"), "%s", e2.msg);
    }
    /* a shard the index names but that is missing */
    char path[1300];
    snprintf(path, sizeof path, "%s/model-00002-of-00003.safetensors", d2);
    remove(path);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(d2, NULL, &m, &err) != PARE_OK);
    CHECKF(strstr(err.msg, "model-00002-of-00003.safetensors") != NULL, "%s", err.msg);
}

static void test_half_precision_checkpoints(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    char d32[1200], d16[1200], dbf[1200];
    snprintf(d32, sizeof d32, "%s", tmp_path("f32"));
    snprintf(d16, sizeof d16, "%s", tmp_path("f16"));
    snprintf(dbf, sizeof dbf, "%s", tmp_path("bf16"));
    CHECK(fixture_write_hf(d32, &s) == 0);
    s.dtype = "F16";
    CHECK(fixture_write_hf(d16, &s) == 0);
    s.dtype = "BF16";
    CHECK(fixture_write_hf(dbf, &s) == 0);
    /* Rounding weights to 11 (f16) or 8 (bf16) significant bits moves logits a little, and f16's
     * three extra bits must show as a clearly smaller deviation. */
    int n32 = 0, n16 = 0, nbf = 0, v = 0;
    float *l32 = fixture_logits(d32, &n32, &v), *l16 = fixture_logits(d16, &n16, &v),
          *lbf = fixture_logits(dbf, &nbf, &v);
    if (l32 && l16 && lbf && n32 == n16 && n32 == nbf) {
        double scale = 0;
        for (int i = 0; i < n32; i++)
            scale = fmax(scale, fabs(l32[i]));
        double e16 = max_abs_diff(l32, l16, n32), ebf = max_abs_diff(l32, lbf, n32);
        CHECKF(e16 > 0 && e16 < ebf / 2, "f16 deviation %.3g vs bf16 %.3g", e16, ebf);
        CHECKF(ebf < 0.02 * scale, "bf16 deviation %.3g vs logit scale %.3g", ebf, scale);
    } else {
        CHECK(0);
    }
    free(l32);
    free(l16);
    free(lbf);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(dbf, NULL, &m, &err) == PARE_OK && m && strcmp(m->source_dtype, "BF16") == 0);
    pare_model_free(m);
}

static void test_gpt2_prefix_and_tying(void)
{
    fixture_spec s;
    fixture_default(&s, 1);
    char d1[1200], d2[1200];
    snprintf(d1, sizeof d1, "%s", tmp_path("gpt2"));
    snprintf(d2, sizeof d2, "%s", tmp_path("gpt2-noprefix"));
    CHECK(fixture_write_hf(d1, &s) == 0);
    s.no_prefix = 1;
    CHECK(fixture_write_hf(d2, &s) == 0);
    compare_dirs(d1, d2, 0.0);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(d1, NULL, &m, &err) == PARE_OK);
    if (m) {
        CHECK(m->head.w == m->tok_emb);          /* tied head shares storage */
        CHECK(m->cfg.ffn_dim == 4 * m->cfg.dim); /* n_inner null */
        CHECK(m->blocks[0].q.out == m->cfg.dim && m->blocks[0].q.b != NULL);
    }
    pare_model_free(m);
}

static void test_llama2c_matches_hf(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    char hf[1200], l2[1200];
    snprintf(hf, sizeof hf, "%s", tmp_path("hf"));
    snprintf(l2, sizeof l2, "%s", tmp_path("l2c"));
    CHECK(fixture_write_hf(hf, &s) == 0);
    CHECK(fixture_write_llama2c(l2, &s) == 0);
    /* Same weights, RoPE rows interleaved in the llama2.c file: logits must agree. */
    compare_dirs(hf, l2, 1e-5);
    s.tied = 1;
    CHECK(fixture_write_hf(hf, &s) == 0);
    CHECK(fixture_write_llama2c(l2, &s) == 0);
    compare_dirs(hf, l2, 1e-5);
    /* truncated checkpoint */
    char path[1300];
    snprintf(path, sizeof path, "%s/model.bin", l2);
    size_t len = 0;
    unsigned char *b = fixture_read(path, &len);
    fixture_write_raw(path, b, len - 64);
    free(b);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(l2, NULL, &m, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "truncated") && strstr(err.msg, path), "%s", err.msg);
}

static void test_config_variants(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    const char *dir = tmp_path("cfg");
    CHECK(fixture_write_hf(dir, &s) == 0);
    char path[1300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    pare_config c;
    pare_error err = {0};
    CHECKF(pare_config_load_hf(path, &c, &err) == PARE_OK, "%s", err.msg);
    CHECK(c.n_kv_heads == s.kv_heads && c.head_dim == s.dim / s.heads && c.rope_theta == 10000.0);
    /* rope_theta at the top level (transformers 4 style) */
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    json_object_del(j, "rope_parameters");
    json_object_set_new(j, "rope_theta", json_real(500000.0));
    json_dump_file(j, path, 0);
    CHECKF(pare_config_load_hf(path, &c, &err) == PARE_OK && c.rope_theta == 500000.0, "%s", err.msg);
    /* unsupported rope scaling is refused, not ignored */
    json_object_set_new(j, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "yarn", "factor", 4.0));
    json_dump_file(j, path, 0);
    CHECK(pare_config_load_hf(path, &c, &err) == PARE_EUNSUPPORTED && strstr(err.msg, "yarn"));
    /* rope_scaling is honoured even beside a rope_parameters object */
    json_object_set_new(j, "rope_parameters", json_pack("{s:f, s:s}", "rope_theta", 10000.0, "rope_type", "default"));
    json_dump_file(j, path, 0);
    CHECK(pare_config_load_hf(path, &c, &err) == PARE_EUNSUPPORTED && strstr(err.msg, "yarn"));
    /* unknown architecture lists the supported ones */
    json_object_del(j, "rope_scaling");
    json_object_set_new(j, "architectures", json_pack("[s]", "MambaForCausalLM"));
    json_dump_file(j, path, 0);
    CHECK(pare_config_load_hf(path, &c, &err) == PARE_EUNSUPPORTED);
    CHECKF(strstr(err.msg, "MambaForCausalLM") && strstr(err.msg, "LlamaForCausalLM") &&
               strstr(err.msg, "GPT2LMHeadModel") && strstr(err.msg, path),
           "%s", err.msg);
    json_decref(j);
}

static void test_missing_and_misshapen_tensors(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    const char *dir = tmp_path("bad");
    char cfg[1300];
    CHECK(fixture_write_hf(dir, &s) == 0);
    /* A config that needs more layers than the checkpoint has: tensor missing. */
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    json_error_t je;
    json_t *j = json_load_file(cfg, 0, &je);
    json_object_set_new(j, "num_hidden_layers", json_integer(s.layers + 1));
    json_dump_file(j, cfg, 0);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(dir, NULL, &m, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "model.layers.2.") && strstr(err.msg, "missing") && strstr(err.msg, "model.safetensors"),
           "%s", err.msg);
    /* A config with a different FFN width: wrong shape. */
    json_object_set_new(j, "num_hidden_layers", json_integer(s.layers));
    json_object_set_new(j, "intermediate_size", json_integer(s.ffn + 8));
    json_dump_file(j, cfg, 0);
    CHECK(pare_model_load(dir, NULL, &m, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "gate_proj") && strstr(err.msg, "shape") && strstr(err.msg, "config implies"), "%s", err.msg);
    json_decref(j);
}

void suite_formats(void);
void suite_formats(void)
{
    RUN(test_st_valid_and_metadata);
    RUN(test_st_truncated);
    RUN(test_st_header_past_eof);
    RUN(test_st_invalid_json);
    RUN(test_st_offsets);
    RUN(test_st_size_mismatch);
    RUN(test_half_conversions);
    RUN(test_sharded_equals_single);
    RUN(test_half_precision_checkpoints);
    RUN(test_gpt2_prefix_and_tying);
    RUN(test_llama2c_matches_hf);
    RUN(test_config_variants);
    RUN(test_missing_and_misshapen_tensors);
}

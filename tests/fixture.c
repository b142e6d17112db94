/* Synthetic model folders for tests: deterministic random weights, written with pare's own writer. */
#include "fixture.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/forward.h"
#include "core/safetensors.h"
#include "harness.h"

static const char *const PIECES[] = {"\xe2\x96\x81",
                                     "a",
                                     "b",
                                     "c",
                                     "d",
                                     "e",
                                     "f",
                                     "g",
                                     "h",
                                     "i",
                                     "j",
                                     "k",
                                     "l",
                                     "m",
                                     "n",
                                     "o",
                                     "p",
                                     "q",
                                     "r",
                                     "s",
                                     "t",
                                     "u",
                                     "v",
                                     "w",
                                     "x",
                                     "y",
                                     "z"};
#define N_PIECES ((int)(sizeof PIECES / sizeof PIECES[0]))

int fixture_tokenizer_vocab(void) { return 3 + 256 + N_PIECES; }

void fixture_default(fixture_spec *s, int gpt2)
{
    memset(s, 0, sizeof *s);
    s->gpt2 = gpt2;
    s->dim = 32;
    s->layers = 2;
    s->heads = 4;
    s->kv_heads = gpt2 ? 4 : 2;
    s->ffn = gpt2 ? 128 : 48;
    s->vocab = fixture_tokenizer_vocab();
    s->max_pos = 64;
    s->tied = gpt2;
    s->shards = 1;
    s->dtype = "F32";
    s->seed = 1234;
}

static float rnd(unsigned *st)
{
    *st = *st * 1103515245u + 12345u;
    return ((float)((*st >> 8) & 0xffff) / 65535.0f - 0.5f) * 0.4f;
}

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[2];
    float *data;
} ftensor;

typedef struct {
    ftensor t[256];
    int n;
} ftensors;

static float *add(ftensors *ts, unsigned *st, const char *name, int d0, int d1, float base)
{
    ftensor *t = &ts->t[ts->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    size_t n = (size_t)d0 * (d1 ? d1 : 1);
    t->data = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        t->data[i] = base + rnd(st);
    return t->data;
}

/* Builds the tensors of a HF checkpoint in the HF layout. */
static void build(const fixture_spec *s, ftensors *ts)
{
    unsigned st = s->seed;
    ts->n = 0;
    char nm[128];
    int C = s->dim, hd = s->dim / s->heads, qd = s->heads * hd, kvd = s->kv_heads * hd, F = s->ffn, V = s->vocab;
    if (s->gpt2) {
        const char *p = s->no_prefix ? "" : "transformer.";
        snprintf(nm, sizeof nm, "%swte.weight", p);
        add(ts, &st, nm, V, C, 0);
        snprintf(nm, sizeof nm, "%swpe.weight", p);
        add(ts, &st, nm, s->max_pos, C, 0);
        for (int l = 0; l < s->layers; l++) {
#define G(suffix, d0, d1, base) (snprintf(nm, sizeof nm, "%sh.%d." suffix, p, l), add(ts, &st, nm, d0, d1, base))
            G("ln_1.weight", C, 0, 1);
            G("ln_1.bias", C, 0, 0);
            G("attn.c_attn.weight", C, 3 * C, 0);
            G("attn.c_attn.bias", 3 * C, 0, 0);
            G("attn.c_proj.weight", C, C, 0);
            G("attn.c_proj.bias", C, 0, 0);
            G("ln_2.weight", C, 0, 1);
            G("ln_2.bias", C, 0, 0);
            G("mlp.c_fc.weight", C, F, 0);
            G("mlp.c_fc.bias", F, 0, 0);
            G("mlp.c_proj.weight", F, C, 0);
            G("mlp.c_proj.bias", C, 0, 0);
#undef G
        }
        snprintf(nm, sizeof nm, "%sln_f.weight", p);
        add(ts, &st, nm, C, 0, 1);
        snprintf(nm, sizeof nm, "%sln_f.bias", p);
        add(ts, &st, nm, C, 0, 0);
        if (!s->tied)
            add(ts, &st, "lm_head.weight", V, C, 0);
        return;
    }
    add(ts, &st, "model.embed_tokens.weight", V, C, 0);
    for (int l = 0; l < s->layers; l++) {
#define Lw(suffix, d0, d1, base) (snprintf(nm, sizeof nm, "model.layers.%d." suffix, l), add(ts, &st, nm, d0, d1, base))
        Lw("input_layernorm.weight", C, 0, 1);
        Lw("self_attn.q_proj.weight", qd, C, 0);
        Lw("self_attn.k_proj.weight", kvd, C, 0);
        Lw("self_attn.v_proj.weight", kvd, C, 0);
        Lw("self_attn.o_proj.weight", C, qd, 0);
        Lw("post_attention_layernorm.weight", C, 0, 1);
        Lw("mlp.gate_proj.weight", F, C, 0);
        Lw("mlp.up_proj.weight", F, C, 0);
        Lw("mlp.down_proj.weight", C, F, 0);
#undef Lw
    }
    add(ts, &st, "model.norm.weight", C, 0, 1);
    if (!s->tied)
        add(ts, &st, "lm_head.weight", V, C, 0);
}

static void release(ftensors *ts)
{
    for (int i = 0; i < ts->n; i++)
        free(ts->t[i].data);
}

static float *find(ftensors *ts, const char *name)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].name, name) == 0)
            return ts->t[i].data;
    return NULL;
}

static int write_json(const char *path, json_t *j)
{
    int rc = json_dump_file(j, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return rc;
}

static int write_tokenizer(const char *dir)
{
    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(0));
    json_object_set_new(vocab, "<s>", json_integer(1));
    json_object_set_new(vocab, "</s>", json_integer(2));
    char b[16];
    for (int i = 0; i < 256; i++) {
        snprintf(b, sizeof b, "<0x%02X>", i);
        json_object_set_new(vocab, b, json_integer(3 + i));
    }
    for (int i = 0; i < N_PIECES; i++)
        json_object_set_new(vocab, PIECES[i], json_integer(259 + i));
    json_t *added = json_array();
    const char *specials[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++)
        json_array_append_new(added,
                              json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i, "content", specials[i],
                                        "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1));
    json_t *tok = json_pack("{s:s, s:n, s:n, s:o, s:n, s:{s:s, s:s, s:s, s:b}, s:{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, "
                            "s:i}}], s:[], s:{s:{s:s, s:[i], s:[s]}}},"
                            " s:{s:s, s:[{s:s, s:s, s:s, s:b}, {s:s}, {s:s}]},"
                            " s:{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}}",
                            "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
                            "pre_tokenizer", "type", "Metaspace", "replacement", "\xe2\x96\x81", "prepend_scheme",
                            "first", "split", 1, "post_processor", "type", "TemplateProcessing", "single",
                            "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0, "pair",
                            "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>", "decoder", "type",
                            "Sequence", "decoders", "type", "Metaspace", "replacement", "\xe2\x96\x81", "prepend_scheme",
                            "first", "split", 1, "type", "ByteFallback", "type", "Fuse", "model", "type", "BPE",
                            "dropout", "unk_token", "<unk>", "continuing_subword_prefix", "end_of_word_suffix",
                            "fuse_unk", 1, "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges");
    if (!tok)
        return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return write_json(path, tok);
}

static int write_config(const char *dir, const fixture_spec *s)
{
    json_t *c;
    if (s->gpt2)
        c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:n, s:f, s:s, s:b, s:i, s:i}", "architectures",
                      "GPT2LMHeadModel", "model_type", "gpt2", "n_embd", s->dim, "n_layer", s->layers, "n_head",
                      s->heads, "vocab_size", s->vocab, "n_positions", s->max_pos, "n_inner", "layer_norm_epsilon",
                      1e-5, "activation_function", "gelu_new", "tie_word_embeddings", s->tied, "bos_token_id", 1,
                      "eos_token_id", 2);
    else
        c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:{s:f, s:s}, s:b, s:b, s:b, s:s, "
                      "s:i, s:i}",
                      "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", s->dim,
                      "num_hidden_layers", s->layers, "num_attention_heads", s->heads, "num_key_value_heads",
                      s->kv_heads, "head_dim", s->dim / s->heads, "intermediate_size", s->ffn, "vocab_size", s->vocab,
                      "max_position_embeddings", s->max_pos, "rms_norm_eps", 1e-5, "rope_parameters", "rope_theta",
                      10000.0, "rope_type", "default", "tie_word_embeddings", s->tied, "attention_bias", 0, "mlp_bias",
                      0, "hidden_act", "silu", "bos_token_id", 1, "eos_token_id", 2);
    if (!c)
        return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return write_json(path, c);
}

static pare_dtype dtype_of(const char *s)
{
    return !s || !strcmp(s, "F32") ? PARE_DT_F32 : !strcmp(s, "F16") ? PARE_DT_F16 : PARE_DT_BF16;
}

int fixture_write_hf(const char *dir, const fixture_spec *s)
{
    mkdir(dir, 0755);
    ftensors *ts = calloc(1, sizeof *ts);
    build(s, ts);
    int rc = 0;
    pare_error err;
    int shards = s->shards < 1 ? 1 : s->shards;
    json_t *wm = json_object();
    for (int k = 0; k < shards && rc == 0; k++) {
        pare_st_out out[256];
        int n = 0;
        for (int i = k; i < ts->n; i += shards) {
            out[n] = (pare_st_out){
                ts->t[i].name, dtype_of(s->dtype), ts->t[i].ndim, {ts->t[i].shape[0], ts->t[i].shape[1]}, ts->t[i].data};
            n++;
        }
        char file[128], path[1024];
        if (shards == 1)
            snprintf(file, sizeof file, "model.safetensors");
        else
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, shards);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        for (int i = 0; i < n; i++)
            json_object_set_new(wm, out[i].name, json_string(file));
        if (pare_st_write(path, out, (size_t)n, NULL, &err) != PARE_OK)
            rc = -1;
    }
    if (shards > 1 && rc == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc = write_json(path, json_pack("{s:{s:i}, s:O}", "metadata", "total_size", 0, "weight_map", wm));
    }
    json_decref(wm);
    if (rc == 0)
        rc = write_config(dir, s);
    if (rc == 0)
        rc = write_tokenizer(dir);
    release(ts);
    free(ts);
    return rc;
}

int fixture_write_llama2c(const char *dir, const fixture_spec *s)
{
    mkdir(dir, 0755);
    ftensors *ts = calloc(1, sizeof *ts);
    build(s, ts);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        release(ts);
        free(ts);
        return -1;
    }
    int C = s->dim, hd = s->dim / s->heads, kvd = s->kv_heads * hd, F = s->ffn, L = s->layers;
    int32_t hdr[7] = {C, F, L, s->heads, s->kv_heads, s->tied ? s->vocab : -s->vocab, s->max_pos};
    fwrite(hdr, 4, 7, f);
    char nm[128];
    fwrite(find(ts, "model.embed_tokens.weight"), 4, (size_t)s->vocab * C, f);
#define EACH(fmt, count)                                                                                               \
    for (int l = 0; l < L; l++) {                                                                                      \
        snprintf(nm, sizeof nm, fmt, l);                                                                               \
        fwrite(find(ts, nm), 4, (size_t)(count), f);                                                                   \
    }
    EACH("model.layers.%d.input_layernorm.weight", C);
    /* q and k rows go back to llama2.c's interleaved pairs: row 2i <- i, row 2i+1 <- i + hd/2 */
    const char *qk[2] = {"model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight"};
    for (int which = 0; which < 2; which++)
        for (int l = 0; l < L; l++) {
            snprintf(nm, sizeof nm, qk[which], l);
            const float *w = find(ts, nm);
            int heads = which ? s->kv_heads : s->heads;
            for (int h = 0; h < heads; h++)
                for (int r = 0; r < hd; r++) {
                    int src = r % 2 == 0 ? r / 2 : r / 2 + hd / 2;
                    fwrite(w + ((size_t)h * hd + src) * C, 4, (size_t)C, f);
                }
        }
    EACH("model.layers.%d.self_attn.v_proj.weight", (size_t)kvd * C);
    EACH("model.layers.%d.self_attn.o_proj.weight", (size_t)C * C);
    EACH("model.layers.%d.post_attention_layernorm.weight", C);
    EACH("model.layers.%d.mlp.gate_proj.weight", (size_t)F * C);
    EACH("model.layers.%d.mlp.down_proj.weight", (size_t)C * F);
    EACH("model.layers.%d.mlp.up_proj.weight", (size_t)F * C);
#undef EACH
    fwrite(find(ts, "model.norm.weight"), 4, (size_t)C, f);
    float *freq = calloc((size_t)s->max_pos * hd, sizeof(float)); /* freq_cis real + imag: unused by readers */
    fwrite(freq, 4, (size_t)s->max_pos * hd, f);
    free(freq);
    if (!s->tied)
        fwrite(find(ts, "lm_head.weight"), 4, (size_t)s->vocab * C, f);
    int rc = fclose(f) == 0 ? 0 : -1;
    /* tokenizer.bin: max_token_length, then (score, len, bytes) per id */
    snprintf(path, sizeof path, "%s/tok.bin", dir);
    f = fopen(path, "wb");
    int32_t maxlen = 8;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < s->vocab; i++) {
        char piece[16];
        if (i == 0)
            snprintf(piece, sizeof piece, "<unk>");
        else if (i == 1)
            snprintf(piece, sizeof piece, "\n<s>\n");
        else if (i == 2)
            snprintf(piece, sizeof piece, "\n</s>\n");
        else if (i < 259)
            snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        else if (i - 259 < N_PIECES)
            snprintf(piece, sizeof piece, "%s", i == 259 ? " " : PIECES[i - 259]);
        else
            snprintf(piece, sizeof piece, "x%d", i);
        float score = -(float)i;
        int32_t len = (int32_t)strlen(piece);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(piece, 1, (size_t)len, f);
    }
    if (fclose(f) != 0)
        rc = -1;
    release(ts);
    free(ts);
    return rc;
}

unsigned char *fixture_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

int fixture_write_raw(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

pare_model *fixture_model(const char *name, int gpt2)
{
    const char *dir = fixture_hf_dir(name, gpt2);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    return m;
}

pare_model *fixture_model_spec(const char *name, const fixture_spec *s)
{
    const char *dir = tmp_path(name);
    CHECKF(fixture_write_hf(dir, s) == 0, "cannot write the fixture model %s", dir);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    return m;
}

int32_t *fixture_ids(const pare_model *m, int S, int T)
{
    int32_t *ids = malloc((size_t)S * T * sizeof *ids);
    for (int i = 0; i < S * T; i++)
        ids[i] = (int32_t)((i * 2654435761u) % (unsigned)m->cfg.vocab_size);
    return ids;
}

pare_calib_stats *fixture_calibrate(pare_model *m, int S, int T, int gram)
{
    int32_t *ids = fixture_ids(m, S, T);
    pare_calib_opts o;
    pare_calib_defaults(&o);
    o.samples = S;
    o.len = T;
    o.gram = gram;
    pare_calib_stats *st = NULL;
    pare_error err = {0};
    CHECKF(pare_calibrate(m, ids, &o, NULL, NULL, NULL, &st, &err) == PARE_OK, "%s", err.msg);
    free(ids);
    return st;
}

float *fixture_logits_of(const pare_model *m)
{
    int32_t ids[FIXTURE_T];
    for (int i = 0; i < FIXTURE_T; i++)
        ids[i] = (i * 53 + 11) % m->cfg.vocab_size;
    pare_acts *a = NULL;
    pare_error err = {0};
    float *out = NULL;
    if (pare_acts_alloc(m, 2, FIXTURE_T / 2, 0, &a, &err) == PARE_OK &&
        pare_forward(m, a, ids, 2, FIXTURE_T / 2, PARE_LOGITS_ALL, &err) == PARE_OK) {
        size_t n = (size_t)FIXTURE_T * m->cfg.vocab_size;
        out = malloc(n * sizeof *out);
        memcpy(out, a->logits, n * sizeof *out);
    }
    CHECKF(out != NULL, "forward: %s", err.msg);
    pare_acts_free(a);
    return out;
}

double fixture_max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

const char *fixture_hf_dir(const char *name, int gpt2)
{
    static char dirs[4][1200];
    static int next;
    char *d = dirs[next++ % 4];
    snprintf(d, sizeof dirs[0], "%s", tmp_path(name));
    fixture_spec s;
    fixture_default(&s, gpt2);
    CHECKF(fixture_write_hf(d, &s) == 0, "cannot write the fixture model %s", d);
    return d;
}

void fixture_write_pattern(const char *path, const char *pattern, size_t bytes)
{
    size_t n = strlen(pattern);
    char *buf = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        buf[i] = pattern[i % n];
    CHECKF(fixture_write_raw(path, buf, bytes) == 0, "cannot write %s", path);
    free(buf);
}

json_t *fixture_read_json(const char *dir, const char *name)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    CHECKF(j != NULL, "%s: %s", p, je.text);
    return j;
}

void fixture_set_config(const char *dir, const char *key, json_t *value)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    json_object_set_new(j, key, value);
    json_dump_file(j, p, 0);
    json_decref(j);
}

/* The layers of a and b are in exactly the same state, byte for byte. */
void fixture_unbalanced_factors(pare_linear *l)
{
    int M = l->out, N = l->in, k = (M < N ? M : N) / 2;
    float *A = malloc((size_t)M * k * sizeof *A), *B = malloc((size_t)k * N * sizeof *B);
    pare_error err = {0};
    CHECK(A && B);
    for (int j = 0; A && B && j < k; j++) {
        for (int r = 0; r < M; r++)
            A[(size_t)r * k + j] = l->w[(size_t)r * N + j] * (float)(50 + j);
        for (int c = 0; c < N; c++)
            B[(size_t)j * N + c] = (float)((j * 7 + c * 3) % 11 - 5) / (float)(50 + j) / 8.0f;
    }
    if (A && B)
        CHECKF(pare_linear_set_factors(l, k, A, B, &err) == PARE_OK, "%s", err.msg);
    free(A);
    free(B);
}

double fixture_factor_imbalance(const pare_linear *l)
{
    double worst = 1;
    for (int j = 0; j < l->rank; j++) {
        double na = 0, nb = 0;
        for (int r = 0; r < l->out; r++)
            na += (double)l->A[(size_t)r * l->rank + j] * l->A[(size_t)r * l->rank + j];
        for (int c = 0; c < l->in; c++)
            nb += (double)l->B[(size_t)j * l->in + c] * l->B[(size_t)j * l->in + c];
        worst = fmax(worst, fmax(sqrt(na / nb), sqrt(nb / na)));
    }
    return worst;
}

void fixture_same_state(pare_model *a, pare_model *b)
{
    pare_linear *la[64], *lb[64];
    int n = pare_model_linears(a, la, 64);
    CHECK(n == pare_model_linears(b, lb, 64));
    CHECK(a->cfg.ffn_dim == b->cfg.ffn_dim && a->cfg.tied_head == b->cfg.tied_head);
    for (int i = 0; i < n && i < 64; i++) {
        const pare_linear *x = la[i], *y = lb[i];
        CHECKF(!strcmp(x->name, y->name) && x->kind == y->kind && x->out == y->out && x->in == y->in &&
                   x->orig_out == y->orig_out && x->orig_in == y->orig_in && x->rank == y->rank,
               "%s: kind/shape/rank differ after reload", x->name);
        if (harness_failed_now())
            return;
        if (x->kind == PARE_LIN_FACTORED)
            CHECKF(!memcmp(x->A, y->A, (size_t)x->out * x->rank * 4) && !memcmp(x->B, y->B, (size_t)x->rank * x->in * 4),
                   "%s: factors differ", x->name);
        else
            CHECKF(!memcmp(x->w, y->w, (size_t)x->out * x->in * 4), "%s: weights differ", x->name);
        CHECKF(!x->b == !y->b && (!x->b || !memcmp(x->b, y->b, (size_t)x->out * 4)), "%s: bias differs", x->name);
        CHECKF(!x->mask == !y->mask && (!x->mask || !memcmp(x->mask, y->mask, (size_t)x->out * x->in)),
               "%s: mask differs", x->name);
        CHECKF(!x->kept_out == !y->kept_out && (!x->kept_out || !memcmp(x->kept_out, y->kept_out, (size_t)x->out * 4)),
               "%s: kept_out differs", x->name);
        CHECKF(!x->kept_in == !y->kept_in && (!x->kept_in || !memcmp(x->kept_in, y->kept_in, (size_t)x->in * 4)),
               "%s: kept_in differs", x->name);
        CHECK(pare_linear_params(x) == pare_linear_params(y));
    }
}

/* Model loading: config parsing, the size table and single parameter slab, and the HF safetensors
 * and llama2.c checkpoint readers that fill it. */
#include "model.h"
#include "memcheck.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block_store.h"
#include "fileio.h"
#include "model_pare.h"
#include "safetensors.h"

/* clang-format off */
const pare_family_info pare_families[PARE_FAMILIES] = {
    /*                        class                 model_type     name       layout           sliding              bias qkv qk gemma theta  eps */
    [PARE_FAMILY_LLAMA]   = {"LlamaForCausalLM",   "llama",       "Llama",   PARE_ARCH_LLAMA, PARE_SLIDING_NONE,   1, 0, 0, 0, 1e4, 1e-6f},
    [PARE_FAMILY_MISTRAL] = {"MistralForCausalLM", "mistral",     "Mistral", PARE_ARCH_LLAMA, PARE_SLIDING_ALL,    0, 0, 0, 0, 1e4, 1e-6f},
    [PARE_FAMILY_QWEN2]   = {"Qwen2ForCausalLM",   "qwen2",       "Qwen2",   PARE_ARCH_LLAMA, PARE_SLIDING_QWEN,   0, 1, 0, 0, 1e4, 1e-6f},
    [PARE_FAMILY_QWEN3]   = {"Qwen3ForCausalLM",   "qwen3",       "Qwen3",   PARE_ARCH_LLAMA, PARE_SLIDING_QWEN,   1, 0, 1, 0, 1e4, 1e-6f},
    [PARE_FAMILY_PHI3]    = {"Phi3ForCausalLM",    "phi3",        "Phi-3",   PARE_ARCH_PHI3,  PARE_SLIDING_ALL,    0, 0, 0, 0, 1e4, 1e-5f},
    [PARE_FAMILY_GEMMA3]  = {"Gemma3ForCausalLM",  "gemma3_text", "Gemma-3", PARE_ARCH_LLAMA, PARE_SLIDING_LAYERS, 1, 0, 1, 1, 1e6, 1e-6f},
    [PARE_FAMILY_GPT2]    = {"GPT2LMHeadModel",    "gpt2",        "GPT-2",   PARE_ARCH_GPT2,  PARE_SLIDING_NONE,   1, 0, 0, 0, 0,   1e-5f},
};
/* clang-format on */

const char *pare_arch_name(pare_arch a)
{
    return a == PARE_ARCH_GPT2 ? "GPT2LMHeadModel" : a == PARE_ARCH_PHI3 ? "Phi3ForCausalLM" : "LlamaForCausalLM";
}

const pare_family_info *pare_config_family(const pare_config *c)
{
    /* a config built by hand (pare train --arch gpt2) sets the layout, not the family */
    return &pare_families[c->arch == PARE_ARCH_GPT2 ? PARE_FAMILY_GPT2 : c->family];
}

const char *pare_family_class(const pare_config *c) { return pare_config_family(c)->cls; }

int pare_config_is_eos(const pare_config *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return 1;
    return 0;
}

void pare_config_set_eos(pare_config *c, int id)
{
    c->n_eos = id >= 0;
    c->eos_ids[0] = id;
}

json_t *pare_config_eos_json(const pare_config *c)
{
    if (c->n_eos <= 1)
        return c->n_eos ? json_integer(c->eos_ids[0]) : NULL;
    json_t *list = json_array();
    for (int i = 0; list && i < c->n_eos; i++)
        json_array_append_new(list, json_integer(c->eos_ids[i]));
    return list;
}

int pare_config_lin_bias(const pare_config *c, pare_lin_kind k)
{
    if (pare_lin_kinds[k].ffn)
        return c->mlp_bias;
    return c->attn_bias && !(k == PARE_LIN_O && pare_config_family(c)->qkv_bias);
}

/* ---- config.json ---- */

static int get_int(json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return 0;
    json_int_t x = json_integer_value(v);
    if (x < -1 || x > (1 << 30))
        return 0;
    *out = (int)x;
    return 1;
}

static int get_bool(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static pare_status need_int(json_t *o, const char *key, int *out, const char *path, pare_error *err)
{
    if (!get_int(o, key, out) || *out <= 0)
        return pare_fail(err, PARE_EFORMAT, "%s: \"%s\" is missing or not a positive integer", path, key);
    return PARE_OK;
}

/* A positive integer at most max, pare's limit for the field (PARE_MAX_LAYERS for the layer count,
 * which sizes arrays; PARE_MAX_DIM for widths). */
static pare_status need_int_max(json_t *o, const char *key, int max, int *out, const char *path, pare_error *err)
{
    pare_status rc = need_int(o, key, out, path, err);
    if (rc == PARE_OK && *out > max)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: \"%s\" %d exceeds pare's limit of %d", path, key, *out, max);
    return rc;
}

/* An optional positive integer: absent or null keeps *out; anything else must be one. */
static pare_status optional_int(json_t *o, const char *key, int *out, const char *path, pare_error *err)
{
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? need_int(o, key, out, path, err) : PARE_OK;
}

static pare_status optional_int_max(json_t *o, const char *key, int max, int *out, const char *path, pare_error *err)
{
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? need_int_max(o, key, max, out, path, err) : PARE_OK;
}

/* An optional positive number that fp32 represents: absent or null keeps *out. where names the
 * field as the file spells it ("rope_scaling.factor"). */
static pare_status optional_pos(json_t *o, const char *key, const char *where, double *out, const char *path,
                                pare_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return PARE_OK;
    double x = json_is_number(v) ? json_number_value(v) : -1;
    if (!(x > 0) || !isfinite((float)x) || !((float)x > 0))
        return pare_fail(err, PARE_EFORMAT, "%s: \"%s\" must be a positive number that fp32 represents", path, where);
    *out = x;
    return PARE_OK;
}

/* An optional normalization epsilon: it must stay positive and finite once rounded to the fp32 the
 * forward computes in (1e308 becomes inf, 1e-50 becomes 0: both turn every norm into NaN). */
static pare_status optional_eps(json_t *o, const char *key, float *out, const char *path, pare_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return PARE_OK;
    if (!json_is_number(v))
        return pare_fail(err, PARE_EFORMAT, "%s: \"%s\" must be a positive number", path, key);
    float f = (float)json_number_value(v);
    if (!isfinite(f) || !(f > 0))
        return pare_fail(err, PARE_EFORMAT, "%s: \"%s\" must be a positive number that fp32 represents (got %.17g)",
                         path, key, json_number_value(v));
    *out = f;
    return PARE_OK;
}

/* One RoPE description: a rope_parameters object (transformers 5: rope_type, rope_theta and the
 * scaling keys together) or a 4.x rope_scaling object (rope_type or type, no theta). where names it in
 * messages. Types other than default, linear and llama3 are refused naming the field. */
static pare_status parse_rope(json_t *o, const char *where, double *theta, pare_rope_scaling *rs, const char *path,
                              pare_error *err)
{
    if (!o || json_is_null(o))
        return PARE_OK;
    if (!json_is_object(o))
        return pare_fail(err, PARE_EFORMAT, "%s: \"%s\" must be an object", path, where);
    pare_status rc;
    char field[96];
    snprintf(field, sizeof field, "%s.rope_theta", where);
    if (theta && (rc = optional_pos(o, "rope_theta", field, theta, path, err)))
        return rc;
    const char *key = json_object_get(o, "rope_type") ? "rope_type" : "type";
    json_t *t = json_object_get(o, key);
    const char *type = json_is_string(t) ? json_string_value(t) : t && !json_is_null(t) ? "?" : "default";
    if (!strcmp(type, "default")) /* keeps a scaling given elsewhere (rope_scaling beside rope_parameters) */
        return PARE_OK;
    memset(rs, 0, sizeof *rs);
    if (strcmp(type, "linear") != 0 && strcmp(type, "llama3") != 0)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s.%s \"%s\" is not supported; supported: default, linear, llama3",
                         path, where, key, type);
    rs->type = !strcmp(type, "linear") ? PARE_ROPE_LINEAR : PARE_ROPE_LLAMA3;
    rs->factor = 0;
    snprintf(field, sizeof field, "%s.factor", where);
    if ((rc = optional_pos(o, "factor", field, &rs->factor, path, err)))
        return rc;
    if (!(rs->factor > 0))
        return pare_fail(err, PARE_EFORMAT, "%s: %s.factor is missing (rope type \"%s\")", path, where, type);
    if (rs->type == PARE_ROPE_LINEAR)
        return PARE_OK;
    rs->low_freq_factor = 0, rs->high_freq_factor = 0;
    snprintf(field, sizeof field, "%s.low_freq_factor", where);
    if ((rc = optional_pos(o, "low_freq_factor", field, &rs->low_freq_factor, path, err)))
        return rc;
    snprintf(field, sizeof field, "%s.high_freq_factor", where);
    if ((rc = optional_pos(o, "high_freq_factor", field, &rs->high_freq_factor, path, err)))
        return rc;
    if (!get_int(o, "original_max_position_embeddings", &rs->original_max_pos) || rs->original_max_pos <= 0 ||
        !(rs->low_freq_factor > 0) || !(rs->high_freq_factor > rs->low_freq_factor))
        return pare_fail(err, PARE_EFORMAT,
                         "%s: %s: llama3 RoPE needs factor, low_freq_factor < high_freq_factor and a positive "
                         "original_max_position_embeddings",
                         path, where);
    return PARE_OK;
}

/* The RoPE settings: transformers 4.x writes rope_theta + rope_scaling at top level (Gemma-3 also
 * rope_local_base_freq); 5.x writes rope_parameters, flat, or per layer type for Gemma-3
 * ({"full_attention": {...}, "sliding_attention": {...}}). */
static pare_status config_rope(json_t *root, pare_config *c, const char *path, pare_error *err)
{
    const pare_family_info *f = pare_config_family(c);
    pare_status rc;
    c->rope_theta = f->default_theta;
    if ((rc = optional_pos(root, "rope_theta", "rope_theta", &c->rope_theta, path, err)) ||
        (rc = parse_rope(json_object_get(root, "rope_scaling"), "rope_scaling", NULL, &c->rope_scaling, path, err)))
        return rc;
    if (f->gemma) {
        c->rope_local_theta = 10000.0;
        if ((rc = optional_pos(root, "rope_local_base_freq", "rope_local_base_freq", &c->rope_local_theta, path, err)))
            return rc;
    }
    json_t *rp = json_object_get(root, "rope_parameters");
    json_t *full = json_object_get(rp, "full_attention"), *sliding = json_object_get(rp, "sliding_attention");
    if (full || sliding) {
        if ((rc = parse_rope(full, "rope_parameters.full_attention", &c->rope_theta, &c->rope_scaling, path, err)))
            return rc;
        pare_rope_scaling local = {0};
        double *theta = f->gemma ? &c->rope_local_theta : &c->rope_theta;
        if ((rc = parse_rope(sliding, "rope_parameters.sliding_attention", theta, &local, path, err)))
            return rc;
        /* a scaled local table is not what Gemma-3's layers compute in pare; never seen in a checkpoint */
        if (local.type != PARE_ROPE_DEFAULT && (f->gemma || local.type != c->rope_scaling.type))
            return pare_fail(err, PARE_EUNSUPPORTED,
                             "%s: rope_parameters.sliding_attention.rope_type: only \"default\" is supported", path);
    } else if ((rc = parse_rope(rp, "rope_parameters", &c->rope_theta, &c->rope_scaling, path, err))) {
        return rc;
    }
    double prf = 1.0;
    if ((rc = optional_pos(root, "partial_rotary_factor", "partial_rotary_factor", &prf, path, err)) ||
        (rc = optional_pos(rp, "partial_rotary_factor", "rope_parameters.partial_rotary_factor", &prf, path, err)))
        return rc;
    if (prf != 1.0)
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: partial_rotary_factor %g is not supported (pare rotates whole heads; supported: 1)", path,
                         prf);
    return PARE_OK;
}

/* Which layers are sliding (local) layers, per the family's rule; layer_types, when given, decides for
 * every family. A layer's type is kept even without a window (Gemma-3 with "sliding_window": null):
 * transformers still rotates a local layer by the local RoPE base; the window only masks. */
static pare_status config_sliding(json_t *root, pare_config *c, const char *path, pare_error *err)
{
    const pare_family_info *f = pare_config_family(c);
    pare_status rc;
    json_t *sw = json_object_get(root, "sliding_window");
    int window = 0;
    if (f->sliding == PARE_SLIDING_NONE)
        return PARE_OK;
    if (!sw && (c->family == PARE_FAMILY_MISTRAL || f->gemma))
        window = 4096; /* the default of MistralConfig and Gemma3TextConfig */
    else if (sw && !json_is_null(sw) && (rc = need_int(root, "sliding_window", &window, path, err)))
        return rc;
    json_t *types = json_object_get(root, "layer_types");
    if (f->sliding == PARE_SLIDING_QWEN && !get_bool(root, "use_sliding_window", 0))
        window = 0; /* Qwen2Config: sliding_window only "if use_sliding_window" */
    /* without a window only Gemma's layer types still matter (their RoPE bases) */
    if (!window && !f->gemma)
        return PARE_OK;
    c->sliding_window = window;
    if (json_is_array(types)) {
        if ((int)json_array_size(types) != c->n_layers)
            return pare_fail(err, PARE_EFORMAT, "%s: layer_types has %zu entries but num_hidden_layers is %d", path,
                             json_array_size(types), c->n_layers);
        for (int i = 0; i < c->n_layers; i++) {
            const char *t = json_string_value(json_array_get(types, (size_t)i));
            if (!t || (strcmp(t, "sliding_attention") != 0 && strcmp(t, "full_attention") != 0))
                return pare_fail(err, PARE_EUNSUPPORTED,
                                 "%s: layer_types[%d] \"%s\" is not supported; supported: full_attention, "
                                 "sliding_attention",
                                 path, i, t ? t : "?");
            c->layer_sliding[i] = !strcmp(t, "sliding_attention");
        }
        return PARE_OK;
    }
    int first = 0, pattern = 6;
    if (f->sliding == PARE_SLIDING_QWEN && (rc = optional_int(root, "max_window_layers", &first, path, err)))
        return rc;
    if (f->sliding == PARE_SLIDING_LAYERS && (rc = optional_int(root, "sliding_window_pattern", &pattern, path, err)))
        return rc;
    for (int i = 0; i < c->n_layers; i++)
        c->layer_sliding[i] = f->sliding == PARE_SLIDING_LAYERS ? (i + 1) % pattern != 0 : i >= first;
    return PARE_OK;
}

/* Settings transformers would honour and pare does not compute: refused by name, never ignored. */
static pare_status refuse_unsupported(json_t *root, const char *path, pare_error *err)
{
    static const char *const nonnull[] = {"final_logit_softcapping", "attn_logit_softcapping"};
    for (size_t i = 0; i < sizeof nonnull / sizeof *nonnull; i++) {
        json_t *v = json_object_get(root, nonnull[i]);
        if (v && !json_is_null(v))
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s %g is not supported (pare computes no soft-capping)", path,
                             nonnull[i], json_is_number(v) ? json_number_value(v) : NAN);
    }
    if (get_bool(root, "use_bidirectional_attention", 0))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: use_bidirectional_attention true is not supported", path);
    return PARE_OK;
}

/* head_dim, given or hidden / heads: at least 2 (hidden_size 64 over 100 heads gives 0, and every
 * per-head loop and the RoPE table would be empty or divide by it). */
static pare_status check_head_dim(json_t *root, const pare_config *c, const char *hidden_key, const char *heads_key,
                                  const char *path, pare_error *err)
{
    if (c->head_dim >= 2)
        return PARE_OK;
    json_t *given = json_object_get(root, "head_dim");
    if (given && !json_is_null(given))
        return pare_fail(err, PARE_EFORMAT, "%s: head_dim %d must be at least 2", path, c->head_dim);
    return pare_fail(err, PARE_EFORMAT, "%s: %s %d / %s %d gives head_dim %d; it must be at least 2", path, hidden_key,
                     c->dim, heads_key, c->n_heads, c->head_dim);
}

/* The products of the config's fields, in int64 before anything computes them in int or size_t:
 * q's rows H x hd and the fused q, k, v rows (H + 2 KV) x hd fit an int (pare_lin_shape, the fused
 * loaders and writers), and the parameter count's fp32 bytes fit a size_t. Every field is already
 * positive and within its own limit. */
static pare_status check_products(const pare_config *c, const char *path, pare_error *err)
{
    int gpt2 = c->arch == PARE_ARCH_GPT2;
    const char *heads = gpt2 ? "n_head" : "num_attention_heads", *kv_heads = gpt2 ? "n_head" : "num_key_value_heads";
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    if (q > INT_MAX)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s %d x head_dim %d = %lld exceeds pare's limit of %d", path,
                         heads, c->n_heads, c->head_dim, (long long)q, INT_MAX);
    if (q + 2 * kv > INT_MAX)
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: (%s %d + 2 x %s %d) x head_dim %d = %lld rows of q, k, v exceed pare's limit of %d", path,
                         heads, c->n_heads, kv_heads, c->n_kv_heads, c->head_dim, (long long)(q + 2 * kv), INT_MAX);
    /* an upper bound of the slab (every bias and norm counted, three FFN matrices, both RoPE tables) */
    double C = c->dim, F = c->ffn_dim, P = c->max_pos, qkv = (double)(q + 2 * kv);
    double per_layer = C * qkv + (double)q * C + 3 * F * C + qkv + 2 * C + 2 * F + 4 * C + 2.0 * c->head_dim;
    double total = c->n_layers * per_layer + 2.0 * c->vocab_size * C + P * C + 2 * P * c->head_dim + 2 * C;
    if (total > (double)(SIZE_MAX / sizeof(float)))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: %d layers of %s %d, %s %d x head_dim %d, FFN %d and vocab_size %d make %.3g parameters, "
                         "more than pare can address (%.3g)",
                         path, c->n_layers, gpt2 ? "n_embd" : "hidden_size", c->dim, heads, c->n_heads, c->head_dim,
                         c->ffn_dim, c->vocab_size, total, (double)(SIZE_MAX / sizeof(float)));
    return PARE_OK;
}

/* A decoder of the LLaMA lineage: every family of pare_families but GPT-2. */
static pare_status config_decoder(json_t *root, pare_config *c, const char *path, pare_error *err)
{
    const pare_family_info *f = pare_config_family(c);
    pare_status rc;
    c->arch = f->arch;
    if ((rc = need_int_max(root, "hidden_size", PARE_MAX_DIM, &c->dim, path, err)) ||
        (rc = need_int_max(root, "num_hidden_layers", PARE_MAX_LAYERS, &c->n_layers, path, err)) ||
        (rc = need_int(root, "num_attention_heads", &c->n_heads, path, err)) ||
        (rc = need_int_max(root, "intermediate_size", PARE_MAX_DIM, &c->ffn_dim, path, err)) ||
        (rc = need_int_max(root, "vocab_size", PARE_MAX_DIM, &c->vocab_size, path, err)))
        return rc;
    c->n_kv_heads = c->n_heads;
    if ((rc = optional_int(root, "num_key_value_heads", &c->n_kv_heads, path, err)))
        return rc;
    c->head_dim = c->dim / c->n_heads;
    c->max_pos = 2048;
    c->norm_eps = f->default_eps;
    if ((rc = optional_int(root, "head_dim", &c->head_dim, path, err)) ||
        (rc = optional_int(root, "max_position_embeddings", &c->max_pos, path, err)) ||
        (rc = optional_eps(root, "rms_norm_eps", &c->norm_eps, path, err)))
        return rc;
    if ((rc = check_head_dim(root, c, "hidden_size", "num_attention_heads", path, err)))
        return rc;
    /* Gemma reads hidden_activation (its config also carries an unused hidden_act) */
    const char *act_key = f->gemma ? "hidden_activation" : "hidden_act", *want = f->gemma ? "gelu_pytorch_tanh" : "silu";
    json_t *act = json_object_get(root, act_key);
    if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), want) != 0))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s \"%s\" is not supported; supported: %s", path, act_key,
                         json_is_string(act) ? json_string_value(act) : "?", want);
    if ((rc = refuse_unsupported(root, path, err)) || (rc = config_rope(root, c, path, err)) ||
        (rc = config_sliding(root, c, path, err)))
        return rc;
    if (f->gemma) {
        c->query_pre_attn_scalar = 256; /* Gemma3TextConfig's default */
        if ((rc = optional_pos(root, "query_pre_attn_scalar", "query_pre_attn_scalar", &c->query_pre_attn_scalar, path,
                               err)))
            return rc;
    }
    c->tied_head = get_bool(root, "tie_word_embeddings", f->gemma);
    c->attn_bias = f->qkv_bias || (f->bias_config && get_bool(root, "attention_bias", 0));
    c->mlp_bias = c->family == PARE_FAMILY_LLAMA && get_bool(root, "mlp_bias", 0);
    if (c->head_dim % 2)
        return pare_fail(err, PARE_EFORMAT, "%s: head_dim %d must be even for rotary embeddings", path, c->head_dim);
    return PARE_OK;
}

static pare_status config_gpt2(json_t *root, pare_config *c, const char *path, pare_error *err)
{
    pare_status rc;
    c->arch = PARE_ARCH_GPT2;
    if ((rc = need_int_max(root, "n_embd", PARE_MAX_DIM, &c->dim, path, err)) ||
        (rc = need_int_max(root, "n_layer", PARE_MAX_LAYERS, &c->n_layers, path, err)) ||
        (rc = need_int(root, "n_head", &c->n_heads, path, err)) ||
        (rc = need_int_max(root, "vocab_size", PARE_MAX_DIM, &c->vocab_size, path, err)) ||
        (rc = need_int(root, "n_positions", &c->max_pos, path, err)))
        return rc;
    c->n_kv_heads = c->n_heads;
    if (c->dim % c->n_heads)
        return pare_fail(err, PARE_EFORMAT, "%s: n_embd %d is not divisible by n_head %d", path, c->dim, c->n_heads);
    c->head_dim = c->dim / c->n_heads;
    c->ffn_dim = 4 * c->dim; /* n_inner: null means 4 x n_embd */
    c->norm_eps = 1e-5f;
    if ((rc = check_head_dim(root, c, "n_embd", "n_head", path, err)) ||
        (rc = optional_int_max(root, "n_inner", PARE_MAX_DIM, &c->ffn_dim, path, err)) ||
        (rc = optional_eps(root, "layer_norm_epsilon", &c->norm_eps, path, err)))
        return rc;
    json_t *act = json_object_get(root, "activation_function");
    if (act && (!json_is_string(act) || (strcmp(json_string_value(act), "gelu_new") != 0 &&
                                         strcmp(json_string_value(act), "gelu_pytorch_tanh") != 0)))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: activation_function \"%s\" is not supported; supported: gelu_new, gelu_pytorch_tanh",
                         path, json_is_string(act) ? json_string_value(act) : "?");
    if (json_is_true(json_object_get(root, "scale_attn_by_inverse_layer_idx")) ||
        json_is_true(json_object_get(root, "reorder_and_upcast_attn")) ||
        json_is_false(json_object_get(root, "scale_attn_weights")))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: non-default GPT-2 attention scaling (scale_attn_weights / "
                         "scale_attn_by_inverse_layer_idx) is not supported",
                         path);
    c->tied_head = get_bool(root, "tie_word_embeddings", 1);
    c->attn_bias = c->mlp_bias = 1;
    return PARE_OK;
}

/* eos_token_id: one id or a list of them (Llama-3, Gemma-3), each a token of the vocabulary; null
 * or [] gives none. */
static pare_status config_eos(json_t *root, pare_config *c, const char *path, pare_error *err)
{
    json_t *v = json_object_get(root, "eos_token_id");
    int list = json_is_array(v);
    size_t n = list ? json_array_size(v) : v && !json_is_null(v);
    if (n > PARE_MAX_EOS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: eos_token_id lists %zu ids; pare keeps at most %d", path, n,
                         PARE_MAX_EOS);
    char where[48] = "eos_token_id";
    for (size_t i = 0; i < n; i++) {
        json_t *e = list ? json_array_get(v, i) : v;
        if (list)
            snprintf(where, sizeof where, "eos_token_id[%zu]", i);
        if (!json_is_integer(e))
            return pare_fail(err, PARE_EFORMAT, "%s: %s must be an integer token id", path, where);
        json_int_t id = json_integer_value(e);
        if (id < 0 || id >= c->vocab_size)
            return pare_fail(err, PARE_EFORMAT, "%s: %s %lld is not a token id (vocab_size %d)", path, where,
                             (long long)id, c->vocab_size);
        c->eos_ids[i] = (int)id;
    }
    c->n_eos = (int)n;
    return PARE_OK;
}

pare_status pare_config_load_hf(const char *path, pare_config *c, pare_error *err)
{
    memset(c, 0, sizeof *c);
    if (!pare_file_exists(path))
        return pare_fail(err, PARE_EIO, "%s: not found", path);
    json_t *root;
    pare_status rc = pare_load_json(path, 0, &root, err);
    if (rc)
        return rc;
    json_t *archs = json_object_get(root, "architectures");
    const char *arch = json_string_value(json_array_get(archs, 0));
    const char *mtype = json_string_value(json_object_get(root, "model_type"));
    int by_class = -1, by_type = -1;
    for (int i = 0; i < PARE_FAMILIES; i++) {
        if (arch && !strcmp(arch, pare_families[i].cls))
            by_class = i;
        if (mtype && !strcmp(mtype, pare_families[i].model_type))
            by_type = i;
    }
    int fam = arch ? by_class : by_type;
    if (fam >= 0 && by_type >= 0 && by_type != fam) {
        /* transformers builds the class model_type names: which family the weights are is ambiguous */
        rc = pare_fail(err, PARE_EFORMAT,
                       "%s: architectures[0] \"%s\" and model_type \"%s\" name different families (%s, %s); make "
                       "them agree",
                       path, arch, mtype, pare_families[fam].name, pare_families[by_type].name);
    } else if (fam < 0) {
        char supported[512] = "";
        for (int i = 0, n = 0; i < PARE_FAMILIES; i++)
            n += snprintf(supported + n, sizeof supported - (size_t)n, "%s%s", i ? ", " : "", pare_families[i].cls);
        rc = pare_fail(err, PARE_EUNSUPPORTED, "%s: %s \"%s\" is not supported; supported: %s", path,
                       arch ? "architectures" : "model_type",
                       arch    ? arch
                       : mtype ? mtype
                               : "(none given)",
                       supported);
    } else {
        c->family = (pare_family)fam;
        rc = fam == PARE_FAMILY_GPT2 ? config_gpt2(root, c, path, err) : config_decoder(root, c, path, err);
    }
    c->bos_id = -1;
    get_int(root, "bos_token_id", &c->bos_id);
    if (rc == PARE_OK)
        rc = config_eos(root, c, path, err);
    json_decref(root);
    if (rc == PARE_OK && (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0))
        rc = pare_fail(err, PARE_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       path, c->n_heads, c->n_kv_heads);
    if (rc == PARE_OK)
        rc = check_products(c, path, err);
    return rc;
}

/* ---- size table and slab ---- */

/* One entry per parameter tensor: where its pointer lives and how many floats it takes. */
typedef struct {
    float **ptr;
    size_t n;
} slab_entry;

static void set_linear(pare_linear *l, const char *name, int out, int in)
{
    snprintf(l->name, sizeof l->name, "%s", name);
    l->kind = PARE_LIN_DENSE;
    l->out = l->orig_out = out;
    l->in = l->orig_in = in;
}

/* cos/sin [max_pos, hd/2] of RoPE with base theta and scaling rs, computed in fp32 step by step as
 * transformers' modeling_rope_utils does (its Python scalars rounded to fp32 where they meet a tensor),
 * so positions far from 0 round identically. */
static void rope_table(const pare_config *c, double theta, const pare_rope_scaling *rs, float *cos_out, float *sin_out)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv = 1.0f / powf((float)theta, (float)(2 * i) / (float)c->head_dim);
        if (rs->type == PARE_ROPE_LINEAR) {
            inv = inv / (float)rs->factor;
        } else if (rs->type == PARE_ROPE_LLAMA3) {
            float factor = (float)rs->factor, old_len = (float)rs->original_max_pos;
            float low_wavelen = (float)(rs->original_max_pos / rs->low_freq_factor);
            float high_wavelen = (float)(rs->original_max_pos / rs->high_freq_factor);
            float wavelen = (float)(2 * M_PI) / inv;
            float scaled = wavelen > low_wavelen ? inv / factor : inv; /* low frequencies: / factor */
            float smooth = (old_len / wavelen - (float)rs->low_freq_factor) /
                           (float)(rs->high_freq_factor - rs->low_freq_factor);
            float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
            int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            inv = medium ? smoothed : scaled;
        }
        for (int pos = 0; pos < c->max_pos; pos++) {
            float a = (float)pos * inv;
            cos_out[(size_t)pos * half + i] = cosf(a);
            sin_out[(size_t)pos * half + i] = sinf(a);
        }
    }
}

/* Names every linear layer and lays out the slab; the pointers are assigned in one pass. A streamed
 * model's block linear weights stay out of the slab (block_store.c holds them while acquired). */
static pare_status allocate_params(pare_model *m, int streamed, pare_error *err)
{
    const pare_config *c = &m->cfg;
    int C = c->dim, V = c->vocab_size, L = c->n_layers;
    int gpt2 = c->arch == PARE_ARCH_GPT2;
    const pare_family_info *fam = pare_config_family(c);
    m->blocks = calloc((size_t)L, sizeof *m->blocks);
    slab_entry *tab = calloc((size_t)L * 24 + 16, sizeof *tab);
    if (!m->blocks || !tab) {
        free(tab);
        return pare_fail(err, PARE_ENOMEM, "out of memory allocating the model's tables");
    }
    int n = 0;
#define ADD(p, count) (tab[n].ptr = &(p), tab[n++].n = (size_t)(count))
    ADD(m->tok_emb, (size_t)V * C);
    if (gpt2)
        ADD(m->pos_emb, (size_t)c->max_pos * C);
    char prefix[48], name[96];
    for (int i = 0; i < L; i++) {
        pare_block *b = &m->blocks[i];
        snprintf(prefix, sizeof prefix, pare_archs[c->arch].layer_prefix, i);
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            const char *hf = pare_lin_kinds[k].hf[c->arch];
            if (!hf) /* the architecture has no such matrix: out stays 0 */
                continue;
            int out, in;
            pare_lin_shape(c, (pare_lin_kind)k, &out, &in);
            snprintf(name, sizeof name, "%s%s", prefix, hf);
            set_linear(&b->lin[k], name, out, in);
            b->lin[k].layer = i;
            b->lin[k].streamed = (unsigned char)streamed;
        }
        ADD(b->norm1_w, C);
        ADD(b->norm2_w, C);
        if (gpt2) {
            ADD(b->norm1_b, C);
            ADD(b->norm2_b, C);
        }
        if (fam->qk_norm) {
            ADD(b->q_norm_w, c->head_dim);
            ADD(b->k_norm_w, c->head_dim);
        }
        if (fam->gemma) {
            ADD(b->post_attn_norm_w, C);
            ADD(b->post_ffn_norm_w, C);
        }
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            pare_linear *l = &b->lin[k];
            if (!l->out)
                continue;
            if (!streamed)
                ADD(l->w, (size_t)l->out * l->in);
            if (pare_config_lin_bias(c, (pare_lin_kind)k))
                ADD(l->b, l->out);
        }
    }
    ADD(m->final_norm_w, C);
    if (gpt2)
        ADD(m->final_norm_b, C);
    set_linear(&m->head, "lm_head", V, C);
    m->head.layer = -1;
    if (!c->tied_head)
        ADD(m->head.w, (size_t)V * C);
    if (!gpt2) {
        ADD(m->rope_cos, (size_t)c->max_pos * c->head_dim / 2);
        ADD(m->rope_sin, (size_t)c->max_pos * c->head_dim / 2);
        if (c->rope_local_theta > 0) {
            ADD(m->rope_local_cos, (size_t)c->max_pos * c->head_dim / 2);
            ADD(m->rope_local_sin, (size_t)c->max_pos * c->head_dim / 2);
        }
    }
#undef ADD
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += tab[i].n;
    char what[sizeof m->path + 96];
    snprintf(what, sizeof what, "%s: loading the parameters (%zu F32 values)", m->path, total);
    pare_status mrc = pare_memory_check((uint64_t)total * sizeof(float), what, err);
    if (mrc) {
        free(tab);
        return mrc;
    }
    m->slab = malloc(total * sizeof(float));
    if (!m->slab) {
        free(tab);
        return pare_fail(err, PARE_ENOMEM, "cannot allocate %.1f MiB for the model's parameters",
                         (double)total * 4 / (1 << 20));
    }
    m->slab_floats = total;
    float *p = m->slab;
    for (int i = 0; i < n; i++) {
        *tab[i].ptr = p;
        p += tab[i].n;
    }
    free(tab);
    if (c->tied_head)
        m->head.w = m->tok_emb;
    if (!gpt2) {
        static const pare_rope_scaling none = {PARE_ROPE_DEFAULT, 0, 0, 0, 0};
        rope_table(c, c->rope_theta, &c->rope_scaling, m->rope_cos, m->rope_sin);
        if (m->rope_local_cos)
            rope_table(c, c->rope_local_theta, &none, m->rope_local_cos, m->rope_local_sin);
    }
    return PARE_OK;
}

/* ---- HF safetensors ---- */

/* Copies tensor `name` (shape must be [d0] or [d0, d1]) into dst as fp32; transposed when asked. */
static pare_status load_tensor(const pare_safetensors *st, const char *name, int d0, int d1, int transpose, float *dst,
                               pare_error *err)
{
    const pare_st_tensor *t = pare_st_find(st, name);
    if (!t)
        return pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' needed by the config is missing", st->paths[0], name);
    int want_ndim = d1 ? 2 : 1;
    int sd0 = transpose ? d1 : d0, sd1 = transpose ? d0 : d1;
    if (t->ndim != want_ndim || t->shape[0] != sd0 || (want_ndim == 2 && t->shape[1] != sd1)) {
        char got[128] = "", want[64];
        size_t k = 0;
        for (int i = 0; i < t->ndim && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (want_ndim == 2)
            snprintf(want, sizeof want, "[%d, %d]", sd0, sd1);
        else
            snprintf(want, sizeof want, "[%d]", sd0);
        return pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' has shape [%s] but the config implies %s",
                         st->paths[t->shard], name, got, want);
    }
    if (!transpose)
        return pare_st_to_f32(st, t, dst, err);
    float *tmp = malloc((size_t)d0 * d1 * sizeof *tmp);
    if (!tmp)
        return pare_fail(err, PARE_ENOMEM, "out of memory loading '%s'", name);
    pare_status rc = pare_st_to_f32(st, t, tmp, err);
    if (rc == PARE_OK)
        for (int i = 0; i < d1; i++)
            for (int j = 0; j < d0; j++)
                dst[(size_t)j * d1 + i] = tmp[(size_t)i * d0 + j];
    free(tmp);
    return rc;
}

/* The linears of block i under the layer prefix pre ("model.layers.3.", "h.3."): their weights and
 * biases as parts asks (a streamed linear's weight, w still NULL at load, is skipped then and read by
 * pare_model_read_block). Conv1D layouts are stored [in, out] and transposed at load. Kinds sharing a fused tensor (GPT-2's c_attn: q, k, v;
 * Phi-3's qkv_proj and gate_up_proj) take consecutive row ranges of it in kind order, so the fused
 * tensor is read once, for the first of them. */
enum { LOAD_WEIGHTS = 1, LOAD_BIASES = 2, LOAD_STREAMED = 4 /* only the weights still streamed */ };
static pare_status load_block_linears(const pare_model *m, const pare_safetensors *st, const char *pre, int i,
                                      int parts, pare_error *err)
{
    pare_arch arch = m->cfg.arch;
    int transpose = pare_archs[arch].conv1d;
    pare_block *b = &m->blocks[i];
    float *fused_w = NULL, *fused_b = NULL; /* [rows, in], [rows] */
    pare_status rc = PARE_OK;
    char nm[160];
    int wants[PARE_LIN_KINDS]; /* whether kind k's weight is read now */
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        const pare_linear *l = &b->lin[k];
        wants[k] = l->out && (parts & LOAD_WEIGHTS) && l->w && (!(parts & LOAD_STREAMED) || l->streamed);
    }
    for (int k = 0; k < PARE_LIN_KINDS && rc == PARE_OK; k++) {
        pare_linear *l = &b->lin[k];
        const char *fused = pare_lin_kinds[k].fused[arch];
        if (!l->out)
            continue;
        if (!fused) {
            snprintf(nm, sizeof nm, "%s%s.weight", pre, pare_lin_kinds[k].hf[arch]);
            if (wants[k] && (rc = load_tensor(st, nm, l->out, l->in, transpose, l->w, err)))
                continue;
            if (!l->b || !(parts & LOAD_BIASES))
                continue;
            snprintf(nm, sizeof nm, "%s%s.bias", pre, pare_lin_kinds[k].hf[arch]);
            rc = load_tensor(st, nm, l->out, 0, 0, l->b, err);
            continue;
        }
        /* l's first row in the fused tensor and the tensor's rows, as stored (a part sliced since has
         * left its stored rows where they were) */
        int row = 0, rows = 0, group_wants = 0;
        for (int j = 0; j < PARE_LIN_KINDS; j++)
            if (pare_lin_same_tensor(arch, j, k)) {
                row += j < k ? b->lin[j].orig_out : 0;
                rows += b->lin[j].orig_out;
                group_wants |= wants[j];
            }
        if (row == 0) {
            free(fused_w);
            free(fused_b);
            fused_w = malloc((size_t)rows * l->orig_in * sizeof *fused_w);
            fused_b = malloc((size_t)rows * sizeof *fused_b);
            if (!fused_w || !fused_b) {
                rc = pare_fail(err, PARE_ENOMEM, "out of memory");
                break;
            }
            snprintf(nm, sizeof nm, "%s%s.weight", pre, fused);
            if (group_wants && (rc = load_tensor(st, nm, rows, l->orig_in, transpose, fused_w, err)))
                break;
            snprintf(nm, sizeof nm, "%s%s.bias", pre, fused);
            if (l->b && (parts & LOAD_BIASES) && (rc = load_tensor(st, nm, rows, 0, 0, fused_b, err)))
                break;
        }
        if (wants[k])
            memcpy(l->w, fused_w + (size_t)row * l->in, (size_t)l->out * l->in * sizeof(float));
        if (l->b && (parts & LOAD_BIASES))
            memcpy(l->b, fused_b + row, (size_t)l->out * sizeof(float));
    }
    free(fused_w);
    free(fused_b);
    return rc;
}

/* Every family with model.layers.N names: the dense parameters by the names the export writes
 * (pare_model_named_params: embeddings, every norm, an untied head), then each block's linears. */
static pare_status load_decoder_weights(pare_model *m, const pare_safetensors *st, pare_error *err)
{
    int np = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    if (!refs)
        return pare_fail(err, PARE_ENOMEM, "out of memory loading %s", m->path);
    pare_model_named_params(m, refs);
    pare_status rc = PARE_OK;
    for (int i = 0; i < np && rc == PARE_OK; i++)
        rc = load_tensor(st, refs[i].name, refs[i].d0, refs[i].d1, 0, refs[i].p, err);
    free(refs);
    char pre[48];
    for (int i = 0; i < m->cfg.n_layers && rc == PARE_OK; i++) {
        snprintf(pre, sizeof pre, pare_archs[m->cfg.arch].layer_prefix, i);
        rc = load_block_linears(m, st, pre, i, LOAD_WEIGHTS | LOAD_BIASES, err);
    }
    return rc;
}

static pare_status load_gpt2_weights(pare_model *m, const pare_safetensors *st, pare_error *err)
{
    const pare_config *c = &m->cfg;
    const char *pre = pare_st_find(st, "transformer.wte.weight") ? "transformer." : "";
    int C = c->dim;
    pare_status rc;
    char nm[160];
#define LOADT(ptr, d0, d1, tr, fmt, ...)                                                                               \
    do {                                                                                                               \
        snprintf(nm, sizeof nm, fmt, __VA_ARGS__);                                                                     \
        if ((rc = load_tensor(st, nm, d0, d1, tr, ptr, err)) != PARE_OK)                                               \
            return rc;                                                                                                 \
    } while (0)
    LOADT(m->tok_emb, c->vocab_size, C, 0, "%swte.weight", pre);
    LOADT(m->pos_emb, c->max_pos, C, 0, "%swpe.weight", pre);
    for (int i = 0; i < c->n_layers; i++) {
        pare_block *b = &m->blocks[i];
        char layer[48];
        snprintf(layer, sizeof layer, "%sh.%d.", pre, i);
        if ((rc = load_block_linears(m, st, layer, i, LOAD_WEIGHTS | LOAD_BIASES, err)))
            return rc;
        LOADT(b->norm1_w, C, 0, 0, "%sh.%d.ln_1.weight", pre, i);
        LOADT(b->norm1_b, C, 0, 0, "%sh.%d.ln_1.bias", pre, i);
        LOADT(b->norm2_w, C, 0, 0, "%sh.%d.ln_2.weight", pre, i);
        LOADT(b->norm2_b, C, 0, 0, "%sh.%d.ln_2.bias", pre, i);
    }
    LOADT(m->final_norm_w, C, 0, 0, "%sln_f.weight", pre);
    LOADT(m->final_norm_b, C, 0, 0, "%sln_f.bias", pre);
    if (!c->tied_head)
        LOADT(m->head.w, c->vocab_size, C, 0, "%s", "lm_head.weight");
#undef LOADT
    return PARE_OK;
}

/* The config of folder m came from, parsed into m->cfg and kept as text in m->config_text. */
static pare_status load_config(pare_model *m, const char *path, pare_error *err)
{
    size_t len;
    pare_status rc = pare_config_load_hf(path, &m->cfg, err);
    return rc ? rc : pare_read_file(path, &m->config_text, &len, err);
}

static pare_status check_finite(const pare_model *m, const char *tensor, const float *x, size_t n, pare_error *err);

/* The layer prefix of block l's tensors in st: GPT-2 checkpoints name them with or without
 * "transformer.". */
static void block_prefix(const pare_model *m, const pare_safetensors *st, int l, char *pre, size_t cap)
{
    if (m->cfg.arch == PARE_ARCH_GPT2)
        snprintf(pre, cap, "%sh.%d.", pare_st_find(st, "transformer.wte.weight") ? "transformer." : "", l);
    else
        snprintf(pre, cap, pare_archs[m->cfg.arch].layer_prefix, l);
}

pare_status pare_model_read_block(const pare_model *m, const pare_safetensors *st, int l, pare_error *err)
{
    char pre[64];
    block_prefix(m, st, l, pre, sizeof pre);
    pare_status rc = load_block_linears(m, st, pre, l, LOAD_WEIGHTS | LOAD_STREAMED, err);
    size_t n = strlen(pre); /* the stored block is converted: its mapped pages need not stay resident */
    for (size_t i = 0; i < st->n_tensors; i++)
        if (!strncmp(st->tensors[i].name, pre, n))
            pare_map_drop_pages(st->tensors[i].data, st->tensors[i].nbytes);
    const pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS && rc == PARE_OK; k++) { /* not checked at load: see check_finite_weights */
        const pare_linear *lin = &b->lin[k];
        char name[160];
        snprintf(name, sizeof name, "%s.weight", lin->name);
        if (lin->out && lin->streamed)
            rc = check_finite(m, name, lin->w, (size_t)lin->out * lin->in, err);
    }
    return rc;
}

static pare_status load_hf(pare_model *m, const char *dir, const char *tok_path, pare_error *err)
{
    char path[4096];
    pare_status rc = pare_path_join(path, sizeof path, dir, "config.json", err);
    if (rc || (rc = load_config(m, path, err)))
        return rc;
    pare_safetensors st;
    if ((rc = pare_st_open_dir(dir, &st, err)))
        return rc;
    size_t stored = 0;
    for (size_t i = 0; i < st.n_tensors; i++)
        stored += st.tensors[i].nbytes;
    m->stored_bytes = stored;
    pare_memory_plan plan;
    if ((rc = pare_memory_plan_make(&m->cfg, stored, &plan, err)))
        pare_wrap(err, "%s", dir);
    if (rc || (rc = allocate_params(m, plan.streamed, err))) {
        pare_st_close(&st);
        return rc;
    }
    rc = m->cfg.arch == PARE_ARCH_GPT2 ? load_gpt2_weights(m, &st, err) : load_decoder_weights(m, &st, err);
    if (rc == PARE_OK) {
        /* Report the stored dtype of the embedding table (all reference checkpoints are uniform). */
        const pare_st_tensor *t = st.n_tensors ? &st.tensors[0] : NULL;
        snprintf(m->source_dtype, sizeof m->source_dtype, "%s", t ? pare_dtype_name(t->dtype) : "?");
        for (size_t i = 1; i < st.n_tensors; i++)
            if (st.tensors[i].dtype != t->dtype)
                snprintf(m->source_dtype, sizeof m->source_dtype, "mixed");
    }
    if (rc == PARE_OK && plan.streamed)
        rc = pare_block_store_open(m, &st, plan.cache_bytes, err); /* keeps st open and mapped */
    else
        pare_st_close(&st);
    if (rc)
        return rc;
    m->format = PARE_FMT_HF;
    if (tok_path)
        return pare_model_load_hf_tokenizer(m, tok_path, err);
    if ((rc = pare_path_join(path, sizeof path, dir, "tokenizer.json", err)))
        return rc;
    if (pare_file_exists(path))
        return pare_model_load_hf_tokenizer(m, path, err);
    return PARE_OK;
}

pare_status pare_model_load_hf_tokenizer(pare_model *m, const char *json_path, pare_error *err)
{
    pare_status rc = pare_tokenizer_load_hf(json_path, &m->tok, err);
    int n_ids = rc ? 0 : pare_tokenizer_vocab_size(m->tok);
    if (rc == PARE_OK && n_ids > m->cfg.vocab_size)
        rc = pare_fail(err, PARE_EFORMAT,
                       "%s: token id %d is outside the model's vocabulary of %d ids (vocab_size in config.json); "
                       "this tokenizer does not belong to the model",
                       json_path, n_ids - 1, m->cfg.vocab_size);
    return rc;
}

/* ---- llama2.c ---- */

/* Undoes llama2.c's interleaved rotary layout: its pairs are (2i, 2i+1) within each head, HF's are
 * (i, i + hd/2). Permuting the rows of wq and wk once lets one RoPE kernel serve both formats. */
static int interleaved_to_half(float *w, int heads, int hd, int in)
{
    float *tmp = malloc((size_t)hd * in * sizeof *tmp);
    if (!tmp)
        return -1;
    for (int h = 0; h < heads; h++) {
        float *head = w + (size_t)h * hd * in;
        for (int j = 0; j < hd; j++) {
            int src = j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1;
            memcpy(tmp + (size_t)j * in, head + (size_t)src * in, (size_t)in * sizeof(float));
        }
        memcpy(head, tmp, (size_t)hd * in * sizeof(float));
    }
    free(tmp);
    return 0;
}

static pare_status find_llama2c_tokenizer(const char *dir, char *out, size_t cap, pare_error *err)
{
    if (pare_path_join(out, cap, dir, "tokenizer.bin", err))
        return err->code;
    if (pare_file_exists(out))
        return PARE_OK;
    DIR *d = opendir(dir);
    if (!d)
        return pare_fail(err, PARE_EIO, "%s: cannot list folder", dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "tok", 3) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0) {
            if (found++ == 0 && pare_path_join(out, cap, dir, e->d_name, err)) {
                closedir(d);
                return err->code;
            }
        }
    }
    closedir(d);
    if (found != 1)
        return pare_fail(err, PARE_EIO, "%s: %s llama2.c tokenizer (tokenizer.bin or tok*.bin); pass --tokenizer", dir,
                         found ? "more than one" : "no");
    return PARE_OK;
}

static pare_status load_llama2c(pare_model *m, const char *file, const char *tok_path, pare_error *err)
{
    pare_map map;
    pare_status rc = pare_map_file(file, &map, err);
    if (rc)
        return rc;
    if (map.len < 28) {
        size_t got = map.len; /* pare_unmap zeroes map.len */
        pare_unmap(&map);
        return pare_fail(err, PARE_EFORMAT,
                         "%s: truncated: %zu bytes, but a llama2.c checkpoint starts with a 28-byte header (7 int32)",
                         file, got);
    }
    int32_t h[7];
    memcpy(h, map.data, sizeof h);
    pare_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    c->arch = PARE_ARCH_LLAMA;
    c->dim = h[0];
    c->ffn_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->tied_head = h[5] > 0; /* a negative vocab size marks an untied classifier */
    c->vocab_size = h[5] == INT32_MIN ? 0 : h[5] < 0 ? -h[5] : h[5]; /* INT32_MIN has no positive; 0 is refused */
    c->max_pos = h[6];
    if (c->dim <= 0 || c->ffn_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->vocab_size <= 0 || c->max_pos <= 0 || c->dim > (1 << 16) || c->ffn_dim > (1 << 18) ||
        c->n_layers > PARE_MAX_LAYERS || c->vocab_size > (1 << 22) || c->max_pos > (1 << 20) || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2) {
        pare_unmap(&map);
        return pare_fail(err, PARE_EFORMAT,
                         "%s: not a llama2.c version-0 checkpoint: implausible header (dim %d, hidden %d, layers %d, "
                         "heads %d, kv heads %d, vocab %d, seq %d)",
                         file, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    }
    c->head_dim = c->dim / c->n_heads;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0;
    c->bos_id = 1;
    pare_config_set_eos(c, 2);
    size_t C = (size_t)c->dim, F = (size_t)c->ffn_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, hd = (size_t)c->head_dim;
    size_t want = V * C + L * C + L * C * C + 2 * L * C * kvd + L * C * C + L * C + 3 * L * F * C + C +
                  (size_t)c->max_pos * hd + (c->tied_head ? 0 : V * C);
    if (map.len != 28 + want * 4) {
        size_t got = map.len;
        pare_unmap(&map);
        return pare_fail(err, PARE_EFORMAT, "%s: %s: the header implies %zu bytes but the file has %zu", file,
                         got < 28 + want * 4 ? "truncated" : "unexpected trailing data", 28 + want * 4, got);
    }
    if ((rc = allocate_params(m, 0, err))) {
        pare_unmap(&map);
        return rc;
    }
    const float *p = (const float *)(map.data + 28);
#define TAKE(dst, count) (memcpy((dst), p, (count) * sizeof(float)), p += (count))
    TAKE(m->tok_emb, V * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].norm1_w, C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].q.w, C * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].k.w, kvd * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].v.w, kvd * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].o.w, C * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].norm2_w, C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].gate.w, F * C);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].down.w, C * F);
    for (size_t l = 0; l < L; l++)
        TAKE(m->blocks[l].up.w, F * C);
    TAKE(m->final_norm_w, C);
    p += (size_t)c->max_pos * hd; /* freq_cis_real and freq_cis_imag: recomputed instead */
    if (!c->tied_head)
        TAKE(m->head.w, V * C);
#undef TAKE
    pare_unmap(&map);
    for (size_t l = 0; l < L; l++)
        if (interleaved_to_half(m->blocks[l].q.w, c->n_heads, c->head_dim, c->dim) ||
            interleaved_to_half(m->blocks[l].k.w, c->n_kv_heads, c->head_dim, c->dim))
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory reordering the rotary rows", file);
    m->format = PARE_FMT_LLAMA2C;
    snprintf(m->source_dtype, sizeof m->source_dtype, "F32");
    char tp[4096];
    if (!tok_path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", file);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        if ((rc = find_llama2c_tokenizer(dir, tp, sizeof tp, err)))
            return rc;
        tok_path = tp;
    }
    return pare_tokenizer_load_llama2c(tok_path, c->vocab_size, &m->tok, err);
}

/* A folder without config.json may hold one llama2.c checkpoint (*.bin not named tok*). */
static pare_status find_llama2c_checkpoint(const char *dir, char *out, size_t cap, pare_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return pare_fail(err, PARE_EIO, "%s: cannot list folder", dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0 && strncmp(e->d_name, "tok", 3) != 0) {
            if (found++ == 0 && pare_path_join(out, cap, dir, e->d_name, err)) {
                closedir(d);
                return err->code;
            }
        }
    }
    closedir(d);
    if (found != 1)
        return pare_fail(err, PARE_EIO, "%s: not a model folder: no config.json, and %s llama2.c checkpoint (*.bin)",
                         dir, found ? "more than one" : "no");
    return PARE_OK;
}

/* Fails naming `tensor` when x[0..n) holds a NaN or an infinity. */
static pare_status check_finite(const pare_model *m, const char *tensor, const float *x, size_t n, pare_error *err)
{
    if (!x)
        return PARE_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return pare_fail(err, PARE_EFORMAT,
                             "%s: tensor '%s' holds a non-finite value (%g at element %zu); every output would be "
                             "NaN: the weights are corrupt",
                             m->path, tensor, (double)x[i], i);
    return PARE_OK;
}

/* One NaN or infinity in the weights makes every logit NaN, which surfaces much later as a NaN
 * perplexity or loss; checked once at load instead (one pass over the parameters, a few ms for
 * 12M), naming the first tensor that holds one, as the Hugging Face files name it. */
static pare_status check_finite_weights(pare_model *m, pare_error *err)
{
    char name[160];
    pare_status rc = PARE_OK;
    int np = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    if (!refs)
        return pare_fail(err, PARE_ENOMEM, "out of memory checking %s", m->path);
    pare_model_named_params(m, refs);
    for (int i = 0; i < np && rc == PARE_OK; i++)
        rc = check_finite(m, refs[i].name, refs[i].p, (size_t)refs[i].d0 * (size_t)(refs[i].d1 ? refs[i].d1 : 1), err);
    free(refs);
    if (rc)
        return rc;
    pare_linear *lin[PARE_MAX_LINEARS];
    int n = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    for (int i = 0; i < n; i++) { /* the head is among the named parameters */
        const pare_linear *l = lin[i];
        int factored = l->kind == PARE_LIN_FACTORED;
        const struct {
            const char *suffix;
            const float *x;
            size_t n;
        } parts[] = {{"weight", factored ? NULL : l->w, (size_t)l->out * l->in},
                     {"bias", l->b, (size_t)l->out},
                     {"A (factor [out, rank])", factored ? l->A : NULL, (size_t)l->out * l->rank},
                     {"B (factor [rank, in])", factored ? l->B : NULL, (size_t)l->rank * l->in}};
        for (int j = 0; j < 4; j++) {
            snprintf(name, sizeof name, "%s.%s", l->name, parts[j].suffix);
            if ((rc = check_finite(m, name, parts[j].x, parts[j].n, err)))
                return rc;
        }
    }
    return PARE_OK;
}

pare_status pare_model_load(const char *path, const char *tokenizer_path, pare_model **out, pare_error *err)
{
    *out = NULL;
    pare_model *m = calloc(1, sizeof *m);
    if (!m)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    snprintf(m->path, sizeof m->path, "%s", path);
    pare_status rc;
    if (pare_is_dir(path)) {
        char cfg[4096];
        if ((rc = pare_path_join(cfg, sizeof cfg, path, "config.json", err)) == PARE_OK) {
            if (pare_file_exists(cfg) && pare_export_is_pare_dir(path)) {
                /* a pare export: the dense architecture from config.json, pare.json rebuilds the rest */
                if ((rc = load_config(m, cfg, err)) == PARE_OK && (rc = allocate_params(m, 0, err)) == PARE_OK)
                    rc = pare_model_load_pare(m, path, tokenizer_path, err);
            } else if (pare_file_exists(cfg)) {
                rc = load_hf(m, path, tokenizer_path, err);
            } else {
                char ckpt[4096];
                rc = find_llama2c_checkpoint(path, ckpt, sizeof ckpt, err);
                if (rc == PARE_OK)
                    rc = load_llama2c(m, ckpt, tokenizer_path, err);
            }
        }
    } else if (pare_file_exists(path)) {
        rc = load_llama2c(m, path, tokenizer_path, err);
    } else {
        rc = pare_fail(err, PARE_EIO, "%s: no such model folder or checkpoint file", path);
    }
    if (rc == PARE_OK)
        rc = check_finite_weights(m, err);
    if (rc != PARE_OK) {
        pare_model_free(m);
        return rc;
    }
    /* the tokenizer knows its special tokens when the config does not name them */
    if (m->tok && m->cfg.bos_id < 0)
        m->cfg.bos_id = pare_tokenizer_bos_id(m->tok);
    if (m->tok && !m->cfg.n_eos)
        pare_config_set_eos(&m->cfg, pare_tokenizer_eos_id(m->tok));
    *out = m;
    return PARE_OK;
}

void pare_model_free(pare_model *m)
{
    if (!m)
        return;
    pare_linear *lin[PARE_MAX_LINEARS];
    int n = m->blocks ? pare_model_linears(m, lin, PARE_MAX_LINEARS) : 0;
    for (int i = 0; i < n; i++)
        pare_linear_release(lin[i]);
    pare_block_store_free(m);
    free(m->slab);
    free(m->blocks);
    free(m->config_text);
    pare_tokenizer_free(m->tok);
    free(m);
}

int pare_model_linears(pare_model *m, pare_linear **out, int cap)
{
    int n = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        pare_block *b = &m->blocks[i];
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            if (!b->lin[k].out)
                continue;
            if (n < cap)
                out[n] = &b->lin[k];
            n++;
        }
    }
    return n;
}

pare_status pare_model_check_shapes(const pare_model *m, pare_error *err)
{
    const pare_config *c = &m->cfg;
    int C = c->dim;
    for (int i = 0; i < c->n_layers; i++) {
        const pare_block *b = &m->blocks[i];
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            const pare_linear *l = &b->lin[k];
            if (!l->out) /* GPT-2 has no gate */
                continue;
            /* the FFN width may be sliced: it is checked across the block below */
            int out, in;
            pare_lin_shape(c, (pare_lin_kind)k, &out, &in);
            int want_out = pare_lin_kinds[k].out == PARE_DIM_FFN ? l->out : out;
            int want_in = pare_lin_kinds[k].in == PARE_DIM_FFN ? l->in : in;
            if (l->out != want_out || l->in != want_in)
                return pare_fail(err, PARE_EUNSUPPORTED, "%s: shape [%d, %d], loaded as [%d, %d]; %s", l->name, l->out,
                                 l->in, l->orig_out, l->orig_in,
                                 !pare_lin_kinds[k].ffn
                                     ? "attention matrices keep their loaded shape (the forward computes whole "
                                       "heads; only FFN channels can be sliced)"
                                     : "the hidden size cannot be sliced (only FFN channels can)");
        }
        if ((b->gate.out && b->gate.out != b->up.out) || b->down.in != b->up.out)
            return pare_fail(err, PARE_EUNSUPPORTED,
                             "layer %d: inconsistent FFN width (%s%s%d rows, %s %d rows, %s %d columns); the forward "
                             "needs gate/up rows = down columns",
                             i, b->gate.out ? b->gate.name : "", b->gate.out ? " " : "", b->gate.out, b->up.name,
                             b->up.out, b->down.name, b->down.in);
    }
    if (m->head.out != c->vocab_size || m->head.in != C)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: shape [%d, %d]; the head must be [%d, %d]", m->head.name,
                         m->head.out, m->head.in, c->vocab_size, C);
    return PARE_OK;
}

void pare_model_param_counts(const pare_model *m, pare_param_counts *pc)
{
    const pare_config *c = &m->cfg;
    memset(pc, 0, sizeof *pc);
    pc->embeddings = (size_t)c->vocab_size * c->dim + (m->pos_emb ? (size_t)c->max_pos * c->dim : 0);
    for (int i = 0; i < c->n_layers; i++) {
        const pare_block *b = &m->blocks[i];
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            if (b->lin[k].out)
                pc->block_linear += pare_linear_params(&b->lin[k]);
        pc->norms += (size_t)c->dim * (b->norm1_b ? 4 : 2) + (b->q_norm_w ? 2 * (size_t)c->head_dim : 0) +
                     (b->post_attn_norm_w ? 2 * (size_t)c->dim : 0);
    }
    pc->norms += (size_t)c->dim * (m->final_norm_b ? 2 : 1);
    pc->head = c->tied_head ? 0 : (size_t)c->vocab_size * c->dim;
    pc->total = pc->embeddings + pc->block_linear + pc->norms + pc->head;
}

double pare_model_flop_per_token(const pare_model *m, int T)
{
    const pare_config *c = &m->cfg;
    double f = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const pare_block *b = &m->blocks[i];
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            if (b->lin[k].out)
                f += 2.0 * (double)pare_linear_macs(&b->lin[k]);
        /* scores and weighted values over the full T x T block (the causal half is computed too) */
        f += 2.0 * 2.0 * T * c->n_heads * c->head_dim;
    }
    f += 2.0 * c->vocab_size * c->dim;
    return f;
}

pare_status pare_model_tokenize_file(const pare_model *m, const char *path, int32_t **ids, size_t *n, pare_error *err)
{
    *ids = NULL;
    *n = 0;
    if (!m->tok)
        return pare_fail(err, PARE_EINVAL, "%s: no tokenizer found (tokenizer.json or tok*.bin)", m->path);
    char *text = NULL;
    size_t len = 0;
    pare_status rc = pare_read_file(path, &text, &len, err);
    if (!rc && len == 0)
        rc = pare_fail(err, PARE_EINVAL, "%s: empty data file", path);
    if (!rc && (rc = pare_tokenizer_encode(m->tok, text, len, 0, ids, n, err)))
        pare_wrap(err, "%s", path);
    free(text);
    return rc;
}

/* A pointer into the old slab moved to the same offset of the new one; other pointers unchanged. */
static float *rebase(const pare_model *from, float *to_slab, float *p)
{
    if (p && p >= from->slab && p < from->slab + from->slab_floats)
        return to_slab + (p - from->slab);
    return p;
}

/* pare_linear_clone, with the weights src views in from's slab moved to the same place in to_slab
 * (what the layer owns is never in the slab, so rebase leaves it alone). */
static pare_status clone_linear(const pare_model *from, float *to_slab, const pare_linear *src, pare_linear *dst,
                                pare_error *err)
{
    pare_status st = pare_linear_clone(src, dst, err);
    if (st)
        return st;
    dst->w = rebase(from, to_slab, dst->w);
    dst->b = rebase(from, to_slab, dst->b);
    dst->A = rebase(from, to_slab, dst->A);
    dst->B = rebase(from, to_slab, dst->B);
    return PARE_OK;
}

pare_status pare_model_clone(const pare_model *src, pare_model **out, pare_error *err)
{
    *out = NULL;
    pare_model *m = calloc(1, sizeof *m);
    if (!m)
        return pare_fail(err, PARE_ENOMEM, "cloning %s: out of memory", src->path);
    *m = *src;
    m->store = NULL; /* pare_block_store_clone gives the copy its own */
    m->slab = malloc(src->slab_floats * sizeof(float));
    m->blocks = calloc((size_t)src->cfg.n_layers, sizeof *m->blocks);
    m->tok = NULL;
    m->config_text = src->config_text ? strdup(src->config_text) : NULL;
    if (!m->slab || !m->blocks || (src->config_text && !m->config_text)) {
        free(m->slab);
        free(m->blocks);
        free(m->config_text);
        free(m);
        return pare_fail(err, PARE_ENOMEM, "cloning %s: out of memory (%.1f MiB of parameters)", src->path,
                         (double)src->slab_floats * sizeof(float) / (1 << 20));
    }
    memcpy(m->slab, src->slab, src->slab_floats * sizeof(float));
    float *s = m->slab;
    m->tok_emb = rebase(src, s, src->tok_emb);
    m->pos_emb = rebase(src, s, src->pos_emb);
    m->final_norm_w = rebase(src, s, src->final_norm_w);
    m->final_norm_b = rebase(src, s, src->final_norm_b);
    m->rope_cos = rebase(src, s, src->rope_cos);
    m->rope_sin = rebase(src, s, src->rope_sin);
    m->rope_local_cos = rebase(src, s, src->rope_local_cos);
    m->rope_local_sin = rebase(src, s, src->rope_local_sin);
    pare_status st = clone_linear(src, s, &src->head, &m->head, err);
    for (int l = 0; l < src->cfg.n_layers && !st; l++) {
        const pare_block *a = &src->blocks[l];
        pare_block *b = &m->blocks[l];
        b->norm1_w = rebase(src, s, a->norm1_w);
        b->norm1_b = rebase(src, s, a->norm1_b);
        b->norm2_w = rebase(src, s, a->norm2_w);
        b->norm2_b = rebase(src, s, a->norm2_b);
        b->q_norm_w = rebase(src, s, a->q_norm_w);
        b->k_norm_w = rebase(src, s, a->k_norm_w);
        b->post_attn_norm_w = rebase(src, s, a->post_attn_norm_w);
        b->post_ffn_norm_w = rebase(src, s, a->post_ffn_norm_w);
        for (int k = 0; k < PARE_LIN_KINDS && !st; k++)
            st = clone_linear(src, s, &a->lin[k], &b->lin[k], err);
    }
    if (!st)
        st = pare_block_store_clone(src, m, err);
    if (st) {
        pare_model_free(m); /* releases the layers cloned so far; the rest are zeroed */
        return st;
    }
    m->tok = pare_tokenizer_retain(src->tok);
    *out = m;
    return PARE_OK;
}

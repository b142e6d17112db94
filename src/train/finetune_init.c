/* New models from scratch: an initialized Hugging Face model folder (config.json, model.safetensors,
 * tokenizer.json) for a LLaMA or GPT-2 configuration, its weights drawn from a seed. */
#include "finetune.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/json_number.h"
#include "core/rng.h"
#include "core/safetensors.h"

typedef struct {
    pare_st_out *t;
    char (*names)[160];
    float **data;
    int n, cap;
    pare_normal_rng rng;
    int failed;
} init_set;

/* Adds tensor `name` [d0] or [d0, d1] filled with N(0, std) (std > 0) or the constant -std (std <= 0). */
static void add_init(init_set *s, const char *name, int64_t d0, int64_t d1, double std)
{
    if (s->failed || s->n == s->cap) {
        s->failed = 1;
        return;
    }
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *p = malloc(n * sizeof *p);
    if (!p) {
        s->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = std > 0 ? (float)(std * pare_normal(&s->rng)) : (float)-std;
    snprintf(s->names[s->n], 160, "%s", name);
    s->data[s->n] = p;
    s->t[s->n] = (pare_st_out){s->names[s->n], PARE_DT_F32, d1 ? 2 : 1, {d0, d1}, p};
    s->n++;
}

pare_status pare_model_init_folder(const char *dir, const pare_config *c, const char *tokenizer_json, uint64_t seed,
                                   pare_error *err)
{
    struct stat sb;
    if (lstat(dir, &sb) == 0)
        return pare_fail(err, PARE_EINVAL, "%s: already exists; not overwriting it with a new model", dir);
    if (c->dim < 1 || c->n_layers < 1 || c->n_layers > PARE_MAX_LAYERS || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->n_heads % c->n_kv_heads || c->head_dim < 2 || c->ffn_dim < 1 || c->vocab_size < 2 || c->max_pos < 2 ||
        (c->arch == PARE_ARCH_LLAMA && c->head_dim % 2) ||
        (c->arch == PARE_ARCH_GPT2 && c->head_dim * c->n_heads != c->dim))
        return pare_fail(err, PARE_EINVAL,
                         "architecture: dim %d, %d layers, %d heads (%d KV) of %d, FFN %d, vocab %d, %d positions is "
                         "not a valid %s",
                         c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab_size,
                         c->max_pos, pare_arch_name(c->arch));
    int L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    double sd = 0.02, sres = 0.02 / sqrt(2.0 * L);
    json_t *cfg;
    if (c->arch == PARE_ARCH_LLAMA)
        cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:s, s:b, s:b, s:b, s:s}",
                        "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", C,
                        "intermediate_size", F, "num_hidden_layers", L, "num_attention_heads", c->n_heads,
                        "num_key_value_heads", c->n_kv_heads, "head_dim", c->head_dim, "vocab_size", V,
                        "max_position_embeddings", c->max_pos, "rms_norm_eps", pare_json_number((double)c->norm_eps),
                        "rope_theta", pare_json_number(c->rope_theta), "hidden_act", "silu", "tie_word_embeddings",
                        c->tied_head, "attention_bias", c->attn_bias, "mlp_bias", c->mlp_bias, "torch_dtype", "float32");
    else
        cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:s, s:b, s:s}", "architectures",
                        "GPT2LMHeadModel", "model_type", "gpt2", "n_embd", C, "n_layer", L, "n_head", c->n_heads,
                        "n_positions", c->max_pos, "vocab_size", V, "n_inner", F, "layer_norm_epsilon",
                        pare_json_number((double)c->norm_eps), "activation_function", "gelu_new", "tie_word_embeddings",
                        c->tied_head, "torch_dtype", "float32");
    if (!cfg)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    if (c->bos_id >= 0)
        json_object_set_new(cfg, "bos_token_id", json_integer(c->bos_id));
    if (c->n_eos)
        json_object_set_new(cfg, "eos_token_id", pare_config_eos_json(c));
    init_set s = {0};
    s.cap = 16 * L + 16;
    s.t = calloc((size_t)s.cap, sizeof *s.t);
    s.names = calloc((size_t)s.cap, sizeof *s.names);
    s.data = calloc((size_t)s.cap, sizeof *s.data);
    /* uniforms in (0, 1) and [0, 1) */
    s.rng = (pare_normal_rng){.state = seed, .u1_offset = 0.5, .u2_offset = 0.0};
    if (!s.t || !s.names || !s.data)
        s.failed = 1;
    char nm[160];
    int gpt2 = c->arch == PARE_ARCH_GPT2;
    add_init(&s, gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight", V, C, sd);
    if (gpt2)
        add_init(&s, "transformer.wpe.weight", c->max_pos, C, 0.01);
    for (int i = 0; i < L; i++) {
#define ADD(d0, d1, std, ...) (snprintf(nm, sizeof nm, __VA_ARGS__), add_init(&s, nm, d0, d1, std))
        if (gpt2) {
            /* Conv1D layout [in, out]; c_attn holds q, k and v side by side */
            ADD(C, 0, -1.0, "transformer.h.%d.ln_1.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.ln_1.bias", i);
            ADD(C, 3 * C, sd, "transformer.h.%d.attn.c_attn.weight", i);
            ADD(3 * C, 0, -0.0, "transformer.h.%d.attn.c_attn.bias", i);
            ADD(C, C, sres, "transformer.h.%d.attn.c_proj.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.attn.c_proj.bias", i);
            ADD(C, 0, -1.0, "transformer.h.%d.ln_2.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.ln_2.bias", i);
            ADD(C, F, sd, "transformer.h.%d.mlp.c_fc.weight", i);
            ADD(F, 0, -0.0, "transformer.h.%d.mlp.c_fc.bias", i);
            ADD(F, C, sres, "transformer.h.%d.mlp.c_proj.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.mlp.c_proj.bias", i);
        } else {
            ADD(C, 0, -1.0, "model.layers.%d.input_layernorm.weight", i);
            ADD(C, 0, -1.0, "model.layers.%d.post_attention_layernorm.weight", i);
            char prefix[48];
            snprintf(prefix, sizeof prefix, pare_archs[c->arch].layer_prefix, i);
            for (int k = 0; k < PARE_LIN_KINDS; k++) {
                const char *hf = pare_lin_kinds[k].hf[c->arch];
                int out, in;
                pare_lin_shape(c, (pare_lin_kind)k, &out, &in);
                /* the projections back into the residual stream (o, down) get the scaled init */
                double std = pare_lin_kinds[k].out == PARE_DIM_HIDDEN ? sres : sd;
                ADD(out, in, std, "%s%s.weight", prefix, hf);
                if (pare_lin_kinds[k].ffn ? c->mlp_bias : c->attn_bias)
                    ADD(out, 0, -0.0, "%s%s.bias", prefix, hf);
            }
        }
#undef ADD
    }
    add_init(&s, gpt2 ? "transformer.ln_f.weight" : "model.norm.weight", C, 0, -1.0);
    if (gpt2)
        add_init(&s, "transformer.ln_f.bias", C, 0, -0.0);
    if (!c->tied_head)
        add_init(&s, "lm_head.weight", V, C, sd);
    pare_status rc = PARE_OK;
    char tmp[4200], path[4400];
    snprintf(tmp, sizeof tmp, "%s.init-tmp", dir);
    if (s.failed)
        rc = pare_fail(err, PARE_ENOMEM, "out of memory initializing the model");
    else if ((lstat(tmp, &sb) == 0 && pare_remove_flat_dir(tmp, NULL) != 0) || mkdir(tmp, 0777) != 0)
        rc = pare_fail(err, PARE_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    if (!rc) {
        snprintf(path, sizeof path, "%s/config.json", tmp);
        rc = pare_write_json_atomic(path, cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        rc = pare_st_write(path, s.t, (size_t)s.n, NULL, err);
    }
    if (!rc && tokenizer_json) {
        snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
        rc = pare_copy_file(tokenizer_json, path, err);
    }
    if (!rc && rename(tmp, dir) != 0)
        rc = pare_fail(err, PARE_EIO, "%s: cannot rename the new model folder into place: %s", dir, strerror(errno));
    if (rc && lstat(tmp, &sb) == 0)
        pare_remove_flat_dir(tmp, NULL);
    for (int i = 0; i < s.n; i++)
        free(s.data[i]);
    free(s.t);
    free(s.names);
    free(s.data);
    json_decref(cfg);
    return rc;
}

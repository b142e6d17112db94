/* The model: architecture config, one fp32 parameter slab, linear layers, and loaders for
 * Hugging Face folders (LLaMA, GPT-2) and llama2.c checkpoints. */
#ifndef PARE_MODEL_H
#define PARE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "linear.h"
#include "linear_kind.h"
#include "tokenizer.h"

/* The model families pare computes exactly as transformers does, one row each in pare_families[]
 * (model.c): what config.json's "architectures" / "model_type" name, the weight layout, and the
 * terms the forward adds. Every family-dependent step asks the table (or the config fields it fills),
 * never the family's name. PARE_FAMILY_LLAMA is 0, so a config built by hand (pare train, llama2.c)
 * is a plain LLaMA. */
typedef enum {
    PARE_FAMILY_LLAMA,
    PARE_FAMILY_MISTRAL,
    PARE_FAMILY_QWEN2,
    PARE_FAMILY_QWEN3,
    PARE_FAMILY_PHI3,
    PARE_FAMILY_GEMMA3,
    PARE_FAMILY_GPT2,
    PARE_FAMILIES
} pare_family;

/* How a family decides which layers attend through a sliding window. */
typedef enum {
    PARE_SLIDING_NONE,   /* never (Llama, GPT-2) */
    PARE_SLIDING_ALL,    /* every layer when sliding_window is set (Mistral, Phi-3) */
    PARE_SLIDING_QWEN,   /* use_sliding_window: layers >= max_window_layers (Qwen2, Qwen3) */
    PARE_SLIDING_LAYERS, /* layer_types, else every sliding_window_pattern-th layer global (Gemma-3) */
} pare_sliding_rule;

typedef struct {
    const char *cls;        /* transformers class: "Qwen2ForCausalLM" */
    const char *model_type; /* config.json model_type: "qwen2" */
    const char *name;       /* short name pare prints: "Qwen2" */
    pare_arch arch;         /* weight layout */
    pare_sliding_rule sliding;
    int bias_config;      /* attention_bias / mlp_bias read from config.json (else no biases, or qkv_bias) */
    int qkv_bias;         /* q, k, v always biased, o never (Qwen2) */
    int qk_norm;          /* RMSNorm of each head of q and k, after the projection, before RoPE (Qwen3, Gemma-3) */
    int gemma;            /* Gemma: embeddings x sqrt(C), norms scale by (1 + w), GELU-tanh gate, post-attention
                             and post-FFN norms, query_pre_attn_scalar, local layers' own RoPE base */
    double default_theta; /* rope_theta when config.json gives none */
    float default_eps;    /* rms_norm_eps when config.json gives none */
} pare_family_info;

extern const pare_family_info pare_families[PARE_FAMILIES];

/* RoPE frequency scaling (transformers' modeling_rope_utils): default; linear (inv_freq / factor);
 * llama3 (low frequencies / factor, high kept, a smooth ramp between, computed in fp32). */
typedef enum { PARE_ROPE_DEFAULT, PARE_ROPE_LINEAR, PARE_ROPE_LLAMA3 } pare_rope_type;

typedef struct {
    pare_rope_type type;
    double factor;                            /* linear, llama3 */
    double low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_pos;                     /* llama3: original_max_position_embeddings */
} pare_rope_scaling;

/* Layers a config can describe (the per-layer attributes are held in the config by value); every
 * loader refuses more. So a model has at most PARE_MAX_LINEARS block linears, the size of any fixed
 * array filled by pare_model_linears. */
#define PARE_MAX_LAYERS 512
#define PARE_MAX_LINEARS (PARE_MAX_LAYERS * PARE_LIN_KINDS)
/* The end-of-sequence ids a config may list (Llama-3 instruct lists 3). */
#define PARE_MAX_EOS 8
/* The largest hidden size, FFN width and vocabulary a config may give: far past any released model,
 * and small enough that the loader's int shapes (3C, 2F) cannot overflow. */
#define PARE_MAX_DIM (1 << 24)

typedef struct {
    pare_arch arch; /* weight layout (naming, fused tensors, Conv1D) */
    pare_family family;
    int dim;        /* C: hidden size */
    int n_layers;   /* L */
    int n_heads;    /* H */
    int n_kv_heads; /* KV (GQA when < H) */
    int head_dim;   /* hd (may differ from C / H: Qwen3, Gemma-3) */
    int ffn_dim;    /* F: MLP intermediate size */
    int vocab_size; /* V */
    int max_pos;    /* longest sequence the model accepts */
    float norm_eps;
    double rope_theta;              /* base of the global (full-attention) layers' RoPE */
    pare_rope_scaling rope_scaling; /* of the global layers */
    double rope_local_theta;        /* Gemma-3's sliding layers: their own base, no scaling; 0 = as global */
    int sliding_window;             /* key j is visible to query i iff j <= i and i - j < sliding_window */
    unsigned char layer_sliding[PARE_MAX_LAYERS]; /* 1: layer l is a sliding (local) layer: masked by the
                                                     window when sliding_window > 0, and rotated by the
                                                     local RoPE base where the family has one (Gemma-3) */
    double query_pre_attn_scalar;                 /* attention scores x this^-0.5 (Gemma); 0: head_dim */
    int tied_head;                                /* lm_head shares the token embedding */
    int attn_bias, mlp_bias;   /* biases on q, k, v (and o unless the family's qkv_bias) / gate, up, down */
    int bos_id;                /* -1 when unknown */
    int eos_ids[PARE_MAX_EOS]; /* eos_token_id, every id of its list: generation stops at any of them */
    int n_eos;                 /* 0 when unknown or [] */
} pare_config;

/* Whether id is one of c's end-of-sequence ids. */
int pare_config_is_eos(const pare_config *c, int id);
/* c's end-of-sequence ids become the one id (none when id < 0). */
void pare_config_set_eos(pare_config *c, int id);
/* eos_token_id as config.json writes it: an integer, a list, or NULL when c has none. */
struct json_t;
struct json_t *pare_config_eos_json(const pare_config *c);
/* Whether kind k of config c carries a bias. */
int pare_config_lin_bias(const pare_config *c, pare_lin_kind k);
/* The row of pare_families that c computes (GPT-2 for any config with GPT-2's layout). */
const pare_family_info *pare_config_family(const pare_config *c);
/* The family's transformers class ("Gemma3ForCausalLM"). */
const char *pare_family_class(const pare_config *c);

/* lin[k] and the named fields are the same layers: loops walk lin[PARE_LIN_*], the forward's math names
 * them. A kind the architecture lacks has out == 0 (GPT-2 has no gate). */
/* A decoder block. Pre-norm everywhere: x += attn(norm1(x)); x += mlp(norm2(x)). Gemma-3 adds a norm
 * on each branch's output before the add: x += post_attn_norm(attn(norm1(x))), and likewise
 * post_ffn_norm for the MLP. Qwen3 and Gemma-3 normalize each head of q and k (q_norm_w, k_norm_w)
 * after the projection, before RoPE. Every weight here lives in the model's slab (so compression
 * counts the norms as norms and the pare export round-trips them); absent ones are NULL. */
typedef struct {
    float *norm1_w, *norm1_b; /* [C]; b only for LayerNorm. HF: input_layernorm / ln_1 */
    float *norm2_w, *norm2_b; /* [C]. HF: post_attention_layernorm (Gemma-3: pre_feedforward_layernorm) / ln_2 */
    float *q_norm_w;          /* [hd] Qwen3, Gemma-3: self_attn.q_norm */
    float *k_norm_w;          /* [hd] self_attn.k_norm */
    float *post_attn_norm_w;  /* [C] Gemma-3: post_attention_layernorm, on the attention output */
    float *post_ffn_norm_w;   /* [C] Gemma-3: post_feedforward_layernorm, on the MLP output */
    union {
        pare_linear lin[PARE_LIN_KINDS];
        struct {
            pare_linear q, k, v, o;     /* q [H*hd, C], k/v [KV*hd, C], o [C, H*hd] */
            pare_linear gate, up, down; /* LLaMA: gate/up [F, C], down [C, F]; GPT-2: up = c_fc, down = c_proj,
                                           no gate. After channel pruning a block's FFN width is up.out, at most F. */
        };
    };
} pare_block;
_Static_assert(sizeof(((pare_block *)0)->lin) == PARE_LIN_KINDS * sizeof(pare_linear) &&
                   offsetof(pare_block, down) == offsetof(pare_block, lin) + PARE_LIN_DOWN * sizeof(pare_linear),
               "pare_block's named linears must alias lin[] in pare_lin_kind order");

/* The kind of l in block b, or -1 when l is not one of b's linears. */
int pare_block_kind_of(const pare_block *b, const pare_linear *l);

typedef enum { PARE_FMT_HF, PARE_FMT_LLAMA2C } pare_format;

typedef struct {
    pare_config cfg;
    pare_format format;
    char path[4096];       /* folder or checkpoint file it came from */
    char source_dtype[16]; /* dtype of the stored weights, e.g. BF16 */
    float *slab;           /* every parameter, one allocation */
    size_t slab_floats;
    float *tok_emb;                     /* [V, C] */
    float *pos_emb;                     /* [max_pos, C] (GPT-2) or NULL */
    pare_block *blocks;                 /* [L] */
    float *final_norm_w, *final_norm_b; /* [C] */
    pare_linear head;                   /* [V, C]; w aliases tok_emb when tied */
    float *rope_cos, *rope_sin;         /* [max_pos, hd/2] (LLaMA-style), of the global layers */
    float *rope_local_cos;              /* [max_pos, hd/2] Gemma-3's sliding layers, else NULL */
    float *rope_local_sin;              /* [max_pos, hd/2] */
    pare_tokenizer *tok;                /* may be NULL when no tokenizer was found */
    char *config_text; /* config.json as read at load (HF and pare folders), NULL for llama2.c: the hf-dense
                          export writes it back, whatever became of the file since */
    struct pare_block_store *store; /* streamed models only (below), else NULL */
    size_t stored_bytes;            /* tensor bytes of the checkpoint as stored (HF folders), else 0 */
} pare_model;

/* Streaming. A Hugging Face model whose fp32 weights would not fit (pare_get_stream_mode, memcheck.h)
 * is loaded streamed: embeddings, head, norms and biases go to the slab as usual, but the decoder
 * blocks' linear weights stay in the mapped safetensors files, as stored, and a block is converted to
 * fp32 only while a pass holds it, in a cache bounded in bytes. Every walk over the blocks brackets
 * its use of block l's weights by pare_block_acquire / pare_block_release (no-ops for a model in
 * memory); compressing a streamed block moves its new weights to the heap, where they stay. */
int pare_model_streamed(const pare_model *m);
/* Makes block l's weights resident until the matching release. Errors: PARE_ENOMEM naming the block
 * and the cache when it cannot fit, PARE_EFORMAT for a weight that is not finite. */
pare_status pare_block_acquire(const pare_model *m, int l, pare_error *err);
void pare_block_release(const pare_model *m, int l);
/* Whether every block's stored weights fit the cache at once (always, for a model in memory):
 * evaluation runs batch-major then, layer-major otherwise. */
int pare_model_blocks_fit(const pare_model *m);
/* Drops every converted block no pass holds, giving its memory back (nothing in memory): before a
 * copy of the model, which has a cache of its own, works beside it. */
void pare_model_cache_drop(const pare_model *m);
/* Blocks converted from the files so far, and the cache's size in bytes (0 in memory). */
size_t pare_model_blocks_converted(const pare_model *m);
size_t pare_model_cache_budget(const pare_model *m);

/* What a model takes in memory before any work: shown by pare info, decided at load. */
typedef struct {
    int streamed;          /* the load would stream (or did) */
    size_t mapped_bytes;   /* the checkpoint files, mapped (0 when not streamed: they are read and closed) */
    size_t resident_bytes; /* fp32 slab: embeddings, head, norms, biases, RoPE tables (all weights in memory) */
    size_t block_bytes;    /* the largest block's linear weights in fp32 */
    size_t cache_bytes;    /* the block cache (streamed) */
    size_t limit_bytes;    /* pare_memory_available() at the decision, 0 when unknown */
} pare_memory_plan;
/* The plan for config c, whose checkpoint holds stored_bytes of tensor data (0: unknown): what the
 * load does under the memory limit and stream mode in force. Errors (PARE_ENOMEM) when not even one block fits beside the
 * resident part, naming the figures. */
pare_status pare_memory_plan_make(const pare_config *c, size_t stored_bytes, pare_memory_plan *plan, pare_error *err);
/* The plan m was loaded under (cache and residency as they are). */
void pare_model_memory_plan(const pare_model *m, pare_memory_plan *plan);

/* Parameter counts under pare's reporting convention. */
typedef struct {
    size_t embeddings;   /* token (+ position) embeddings */
    size_t block_linear; /* weights and biases of decoder-block linear layers */
    size_t norms;
    size_t head;  /* 0 when tied */
    size_t total; /* unique parameters */
} pare_param_counts;

/* Loads a model from a HF folder (config.json + safetensors + tokenizer.json), a llama2.c
 * checkpoint file, or a folder holding one llama2.c checkpoint and its tok*.bin tokenizer.
 * tokenizer_path may be NULL to find the tokenizer next to the model. */
pare_status pare_model_load(const char *path, const char *tokenizer_path, pare_model **out, pare_error *err);
/* Loads a tokenizer.json into m->tok, refusing one whose ids reach past the model's vocabulary
 * (the embedding lookup of such an id would fail much later, naming neither file). */
pare_status pare_model_load_hf_tokenizer(pare_model *m, const char *json_path, pare_error *err);
void pare_model_free(pare_model *m);
/* An independent copy of src as it is now (compressed layers included); the copy shares src's
 * tokenizer, which is immutable. Compressing one leaves the other untouched. */
pare_status pare_model_clone(const pare_model *src, pare_model **out, pare_error *err);

/* The loaded shape [out, in] of kind k under config c. */
void pare_lin_shape(const pare_config *c, pare_lin_kind k, int *out, int *in);

/* Parses a HF config.json into cfg. */
pare_status pare_config_load_hf(const char *config_path, pare_config *cfg, pare_error *err);
const char *pare_arch_name(pare_arch a);

void pare_model_param_counts(const pare_model *m, pare_param_counts *pc);
/* The linear matrices of the decoder blocks, in order (q, k, v, o, gate, up, down per layer).
 * Returns the count; fills up to cap pointers. */
int pare_model_linears(pare_model *m, pare_linear **out, int cap);
/* PARE_EUNSUPPORTED, naming the matrix, when a layer has a shape the forward cannot compute: the
 * attention matrices must keep their loaded shape (the forward computes whole heads; a sliced q, k, v
 * or o would be read at the wrong stride), no matrix may slice the hidden size, and a block's FFN
 * width must agree (gate/up rows = down columns). Only FFN channels can be sliced. The pare-format
 * reader, the exporter and pare_acts_alloc (so every forward) check it. */
pare_status pare_model_check_shapes(const pare_model *m, pare_error *err);
/* Reads and tokenizes a whole text file with the model's tokenizer, no special tokens (as pare eval
 * scores it); *ids is malloc'd. An empty file or a model without a tokenizer is an error. */
pare_status pare_model_tokenize_file(const pare_model *m, const char *path, int32_t **ids, size_t *n, pare_error *err);
/* Forward FLOPs per token for a window of T tokens (matmuls only, 2 per multiply-add), for the
 * model as it is now (factorized and sliced layers count their smaller products). */
double pare_model_flop_per_token(const pare_model *m, int T);

#endif

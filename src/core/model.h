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

typedef struct {
    pare_arch arch;
    int dim;        /* C: hidden size */
    int n_layers;   /* L */
    int n_heads;    /* H */
    int n_kv_heads; /* KV (GQA when < H) */
    int head_dim;   /* hd */
    int ffn_dim;    /* F: MLP intermediate size */
    int vocab_size; /* V */
    int max_pos;    /* longest sequence the model accepts */
    float norm_eps;
    double rope_theta;
    int tied_head; /* lm_head shares the token embedding */
    int attn_bias, mlp_bias;
    int bos_id, eos_id; /* -1 when unknown */
} pare_config;

/* lin[k] and the named fields are the same layers: loops walk lin[PARE_LIN_*], the forward's math names
 * them. A kind the architecture lacks has out == 0 (GPT-2 has no gate). */
typedef struct {
    float *norm1_w, *norm1_b; /* [C]; b only for LayerNorm */
    float *norm2_w, *norm2_b; /* [C] */
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
    float *rope_cos, *rope_sin;         /* [max_pos, hd/2] (LLaMA) */
    pare_tokenizer *tok;                /* may be NULL when no tokenizer was found */
} pare_model;

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

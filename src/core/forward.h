/* The batched forward pass over [B, T] token windows, with every layer's activations kept
 * addressable (for calibration statistics and, later, the backward pass). */
#ifndef PARE_FORWARD_H
#define PARE_FORWARD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"

/* gelu_new / GELU-tanh, h = 0.5 x (1 + tanh(u)) with u = k (x + 0.044715 x³), k = sqrt(2/π), computed
 * as x σ(2u): the same function (0.5 (1 + tanh u) = σ(2u)) through one expf instead of tanhf, whose
 * expm1f path made GELU a quarter of GPT-2's forward. With grad, *grad gets dh/dx = σ + 2 x σ (1 - σ) u'. */
static inline float pare_gelu_tanh(float x, float *grad)
{
    const float k = 0.7978845608028654f;
    float s = 1.0f / (1.0f + expf(-2.0f * k * (x + 0.044715f * x * x * x)));
    if (grad)
        *grad = s + 2.0f * x * s * (1.0f - s) * k * (1.0f + 3.0f * 0.044715f * x * x);
    return x * s;
}

/* Activations of one decoder block for N = B*T rows. */
typedef struct {
    float *ln1;      /* [N, C] normalized block input */
    float *ln1_mean; /* [N] (LayerNorm only) */
    float *ln1_rstd; /* [N] */
    float *q;        /* [N, H*hd] after RoPE (and q_norm) */
    float *k;        /* [N, KV*hd] after RoPE (and k_norm) */
    float *v;        /* [N, KV*hd] */
    float *att;      /* [B, H, T, T] attention probabilities (zero above the diagonal) */
    float *atty;     /* [N, H*hd] attention output before o */
    float *res1;     /* [N, C] block input + attention */
    float *ln2;      /* [N, C] */
    float *ln2_mean; /* [N] */
    float *ln2_rstd; /* [N] */
    float *fc1;      /* [N, F] gate (LLaMA; SiLU, Gemma: GELU-tanh) or c_fc (GPT-2) pre-activation */
    float *fc2;      /* [N, F] up (LLaMA only) */
    float *hmid;     /* [N, F] MLP hidden after activation: input of down / c_proj */
    float *res2;     /* [N, C] block output */

    /* What a backward needs of the families' extra terms; NULL where the family has none.
     * q_norm / k_norm (Qwen3, Gemma-3): the projections before the per-head norm (q, k hold the
     * normed and rotated values) and the norm's 1/rms per row and head. */
    float *q_pre, *q_rstd; /* [N, H*hd], [N, H] */
    float *k_pre, *k_rstd; /* [N, KV*hd], [N, KV] */
    /* Gemma-3's post-attention and post-FFN norms: their inputs (o's and down's outputs) and 1/rms;
     * res1 = x + norm(attn_out), res2 = res1 + norm(mlp_out). */
    float *attn_out, *attn_out_rstd; /* [N, C], [N] */
    float *mlp_out, *mlp_out_rstd;   /* [N, C], [N] */
} pare_layer_acts;

typedef struct {
    int B, T;     /* capacity this was allocated for */
    int keep_all; /* 1: one pare_layer_acts per layer; 0: all layers share one (inference) */
    int n_layer_acts;
    pare_layer_acts *layers;
    float *emb;                 /* [N, C] embeddings (block 0 input; Gemma: x sqrt(C)) */
    float *lnf;                 /* [N, C] final norm output */
    float *lnf_mean, *lnf_rstd; /* [N] */
    float *logits;              /* [N, V] */
    float *scratch;             /* [N, max(C, F, H*hd)]: the thin middle of factorized products */
    float *slab;
    size_t slab_floats;
} pare_acts;

typedef enum { PARE_LOGITS_ALL, PARE_LOGITS_LAST, PARE_LOGITS_NONE } pare_logits_mode;

/* Bytes pare_acts_alloc would take, for reporting memory before allocating. */
size_t pare_acts_bytes(const pare_model *m, int B, int T, int keep_all);
pare_status pare_acts_alloc(const pare_model *m, int B, int T, int keep_all, pare_acts **out, pare_error *err);
void pare_acts_free(pare_acts *a);
/* The activations of layer l (shared storage when keep_all is 0). */
pare_layer_acts *pare_acts_layer(pare_acts *a, int l);

/* Runs the model on ids [B, T] (B <= a->B, T <= a->T, T <= max_pos). With PARE_LOGITS_LAST only
 * row T-1 of each sequence is computed, stored at logits[b * V]. */
pare_status pare_forward(const pare_model *m, pare_acts *a, const int32_t *ids, int B, int T, pare_logits_mode mode,
                         pare_error *err);

/* Token (and position) embeddings of ids [B, T] into a->emb; ids are checked against the vocabulary. */
pare_status pare_embed_forward(const pare_model *m, pare_acts *a, const int32_t *ids, int B, int T, pare_error *err);
/* Decoder block l on x [B*T, C]; returns its output (the layer's res2). x may be the previous
 * block's output in shared storage: it is consumed before res2 is written. */
/* The choices the forward makes per layer, for the backward to make the same: the attention scale
 * (head_dim^-0.5, or Gemma's query_pre_attn_scalar^-0.5), layer l's sliding window (0: none) and the
 * RoPE table its q and k are rotated by (Gemma-3's sliding layers have their own). */
float pare_attention_scale(const pare_config *c);
/* The factor the token embeddings are multiplied by: Gemma's sqrt(C) as transformers registers it (a
 * fp32 tensor), else 1. The backward scales the embeddings' gradient by the same factor. */
float pare_embed_scale(const pare_config *c);
int pare_layer_window(const pare_config *c, int l);
void pare_layer_rope(const pare_model *m, int l, const float **cos_t, const float **sin_t);
/* Block l's weights must be acquired (pare_block_acquire) for a streamed model. */
const float *pare_block_forward(const pare_model *m, int l, pare_acts *a, const float *x, int B, int T);
/* Final norm and LM head on x [B*T, C]. */
void pare_head_forward(const pare_model *m, pare_acts *a, const float *x, int B, int T, pare_logits_mode mode);

#endif

/* The backward pass: cross-entropy loss over [B, T] targets and the gradients of every parameter
 * of a model of any family pare computes (pare_families: Llama, Mistral, Qwen2/3, Phi-3, Gemma-3,
 * GPT-2), including compressed (factorized, masked, sliced) linear layers. */
#ifndef PARE_BACKWARD_H
#define PARE_BACKWARD_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "core/forward.h"
#include "core/model.h"

/* Gradient of one linear layer, shaped as the layer is now (a sliced layer has its current shape). */
typedef struct {
    float *w;       /* DENSE, MASKED: [out, in]. MASKED: the effective gradient, zero where the mask is 0 */
    float *w_dense; /* MASKED with PARE_GRADS_DENSE_MASKED: [out, in] dL/dW of the dense weight before
                       masking (what movement pruning scores); NULL otherwise */
    float *A, *B;   /* FACTORED: [out, k], [k, in] */
    float *b;       /* [out] or NULL */
} pare_linear_grad;

typedef struct {
    float *norm1_w, *norm1_b;                  /* [C]; b only for LayerNorm */
    float *norm2_w, *norm2_b;                  /* [C] */
    float *q_norm_w, *k_norm_w;                /* [hd] Qwen3, Gemma-3, else NULL */
    float *post_attn_norm_w, *post_ffn_norm_w; /* [C] Gemma-3, else NULL */
    union {                                    /* lin[k] is the gradient of pare_block's lin[k] */
        pare_linear_grad lin[PARE_LIN_KINDS];
        struct {
            pare_linear_grad q, k, v, o, gate, up, down;
        };
    };
} pare_block_grads;

/* One trainable tensor of the model next to its gradient; the optimizer walks this table. */
typedef struct {
    char name[112];      /* the checkpoint's name: model.layers.0.mlp.up_proj.weight; factors end in .A / .B;
                            Phi-3's fused parts model.layers.0.self_attn.qkv_proj.q.weight */
    float *param;        /* the model's tensor */
    float *grad;         /* its gradient (the effective one for masked weights) */
    float *grad_dense;   /* masked weights with PARE_GRADS_DENSE_MASKED: dL/dW before masking; else NULL */
    const uint8_t *mask; /* masked weights: 1 = kept; else NULL */
    size_t n;            /* rows * cols */
    int rows, cols;      /* vectors (norms, biases) have cols = 1 */
    int decay;           /* 1 for matrices (weight decay applies), 0 for norms and biases */
} pare_param;

enum {
    PARE_GRADS_DENSE_MASKED = 1 /* also keep dL/dW before masking for masked linears (w_dense) */
};

/* Parameter gradients (one slab, one tensor per model tensor) and the backward workspace for
 * batches up to B x T. Allocate it after any compression: pare_backward refuses a model whose
 * layers changed shape or storage since. */
typedef struct {
    int B, T; /* workspace capacity */
    int flags;
    double loss_scale; /* pare_backward adds loss_scale * d(mean loss)/d(params); 1 after alloc */

    float *tok_emb;                     /* [V, C]; also the LM head's gradient when the head is tied */
    float *pos_emb;                     /* [max_pos, C] (GPT-2) or NULL */
    pare_block_grads *blocks;           /* [L] */
    float *final_norm_w, *final_norm_b; /* [C] */
    pare_linear_grad head;              /* [V, C]; w aliases tok_emb when tied */

    pare_param *params; /* [n_params]: every unique trainable tensor, tied head once */
    int n_params;
    size_t param_floats; /* gradient floats of params (they start the slab; optimizer state mirrors them) */

    /* workspace: gradients of activations, one layer at a time, N = B*T rows */
    float *d_res;  /* [N, C] dL/d(residual stream) at the current point of the sweep; after pare_backward
                       it holds dL/d(embedding output), i.e. the gradient of the network's input */
    float *d_ln;   /* [N, C] dL/d(norm output) */
    float *d_q;    /* [N, H*hd] */
    float *d_k;    /* [N, KV*hd] */
    float *d_v;    /* [N, KV*hd] */
    float *d_atty; /* [N, H*hd] */
    float *d_att;  /* [B, H, T, T] dL/d(attention scores) */
    float *d_fc1;  /* [N, F] */
    float *d_fc2;  /* [N, F] */
    float *d_hmid; /* [N, F] */
    float *thin;   /* [N, R] x B^T of a factorized layer, recomputed (R: widest layer dimension) */
    float *d_thin; /* [N, R] */
    float *d_wtmp; /* [largest masked out*in] with PARE_GRADS_DENSE_MASKED, else NULL */

    const pare_model *model; /* the model it was laid out for */
    float *slab;
    size_t slab_floats;
} pare_grads;

/* Bytes pare_grads_alloc would take. */
size_t pare_grads_bytes(const pare_model *m, int B, int T, int flags);
pare_status pare_grads_alloc(const pare_model *m, int B, int T, int flags, pare_grads **out, pare_error *err);
void pare_grads_free(pare_grads *g);
/* Zeroes every parameter gradient (and the dense gradients of masked weights). */
void pare_grads_zero(pare_grads *g);
/* The table entry of a tensor by name, or NULL. */
pare_param *pare_grads_find(pare_grads *g, const char *name);

/* targets[b, t] = ids[b, t + 1], and -1 (ignored) at each sequence's last position. */
void pare_shift_targets(const int32_t *ids, int B, int T, int32_t *targets);
/* Targets that count (0 <= target); negative targets are ignored positions. */
size_t pare_count_targets(const int32_t *targets, size_t n);

/* Mean cross-entropy over the non-ignored targets [B, T] of the logits a forward with
 * PARE_LOGITS_ALL left in a (summed in double). *n_targets (may be NULL) gets the count. A target
 * outside the vocabulary, or no target at all, is an error. */
pare_status pare_loss_forward(const pare_model *m, const pare_acts *a, const int32_t *targets, int B, int T,
                              double *loss, size_t *n_targets, pare_error *err);

/* Adds g->loss_scale * d(mean cross-entropy)/d(params) to g, for the batch that pare_forward just ran
 * on ids [B, T] with keep_all = 1 and PARE_LOGITS_ALL. Accumulates: call pare_grads_zero to start.
 * Overwrites a->logits with dL/dlogits (the logits are not needed after the loss). */
pare_status pare_backward(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, const int32_t *targets,
                          int B, int T, pare_error *err);

/* The sweep of pare_backward from the logits down, for a loss pare_backward does not compute (e.g.
 * distillation): a->logits [B*T, V] must already hold dL/dlogits, scaled as the caller wants it added
 * (loss_scale is not applied again). Same checks and accumulation as pare_backward. */
pare_status pare_backward_logits(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, int B, int T,
                                 pare_error *err);

/* Backward of y[N, out] = x[N, in] W^T + b for any kind of linear layer: adds dW (or dA, dB) and
 * db into gl, and writes dx[N, in] = dy W (added to dx when accumulate_dx; dx may be NULL).
 * thin and d_thin hold N * rank floats for factorized layers; wtmp out*in floats for masked layers
 * when gl->w_dense is set. */
void pare_linear_backward(const pare_linear *l, pare_linear_grad *gl, const float *x, const float *dy, int N, float *dx,
                          int accumulate_dx, float *thin, float *d_thin, float *wtmp);

#endif

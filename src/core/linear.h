/* Linear layers in every form compression leaves them: dense, masked (zeros kept in place, mask
 * recorded), factorized (W ~ A B) and sliced (rows or columns removed). One forward serves all. */
#ifndef PARE_LINEAR_H
#define PARE_LINEAR_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef enum { PARE_LIN_DENSE, PARE_LIN_MASKED, PARE_LIN_FACTORED } pare_linear_kind;

/* y = x W^T + b with W stored [out, in] row-major (PyTorch nn.Linear layout). GPT-2's Conv1D
 * weights are transposed into this layout at load, and its fused c_attn is split into q, k and v. */
typedef struct {
    char name[96]; /* e.g. model.layers.0.self_attn.q_proj or transformer.h.0.attn.c_attn.q */
    pare_linear_kind kind;
    int out, in;            /* current shape (after any slicing) */
    int orig_out, orig_in;  /* shape as loaded */
    float *w;               /* DENSE, MASKED: [out, in]; masked-out entries hold zero */
    float *b;               /* [out] or NULL */
    uint8_t *mask;          /* MASKED: [out, in], 1 = kept; a spilled linear's views the block cache
                               like its weights (NULL while its block is not acquired) */
    size_t mask_kept;       /* MASKED and spilled: the entries its mask keeps, counted when it was put
                               away, so that parameter counts need no acquisition */
    int rank;               /* FACTORED: k */
    float *A;               /* FACTORED: [out, k] */
    float *B;               /* FACTORED: [k, in] */
    int32_t *kept_out;      /* original row index of each current row, or NULL when none were removed */
    int32_t *kept_in;       /* original column index of each current column, or NULL */
    float *heap;            /* storage allocated after load (w, b, A, B replacing slab views); owned */
    int layer;              /* the decoder block holding it, -1 for the head */
    unsigned char streamed; /* a streamed model's (model.h): PARE_LIN_STORED or PARE_LIN_SPILLED when its
                               arrays view the block cache, valid only while the block is acquired;
                               the first change gives it arrays of its own (PARE_LIN_OWNED) */
} pare_linear;

/* Where a linear's arrays live (pare_linear.streamed). */
enum {
    PARE_LIN_OWNED,   /* its own (or the model's slab): every model in memory */
    PARE_LIN_STORED,  /* w converted from the checkpoint as stored; the rest (bias) in the slab */
    PARE_LIN_SPILLED, /* compressed, then its w (or A, B) and b written to the model's spill file */
};

/* Gives a streamed linear (acquired) arrays of its own, so that it can be changed in place and keep
 * the change (the block's buffer is dropped on release). */
pare_status pare_linear_own(pare_linear *l, pare_error *err);

/* y[N, out] = x[N, in] W^T + b. scratch holds N * rank floats for factorized layers. */
void pare_linear_forward(const pare_linear *l, const float *x, int N, float *y, float *scratch);

/* MASKED: the weights its mask keeps (counted from the mask, or as counted when it was spilled). */
size_t pare_linear_mask_kept(const pare_linear *l);
/* Parameters stored: dense out*in, masked the kept entries, factorized k*(out+in); plus bias. */
size_t pare_linear_params(const pare_linear *l);
/* Multiply-adds per input row. */
size_t pare_linear_macs(const pare_linear *l);

/* The effective dense weight [out, in] (A B for factorized layers) into dst. */
void pare_linear_dense(const pare_linear *l, float *dst);

/* Replaces the weight by factors A [out, rank], B [rank, in] (copied). */
pare_status pare_linear_set_factors(pare_linear *l, int rank, const float *A, const float *B, pare_error *err);
/* FACTORED: scales column i of A by 2^e_i and row i of B by 2^-e_i so that the two norms are within a
 * factor 2 of each other (components already within stay as they are, so balancing twice changes
 * nothing). A B, and every forward, stay the same bit for bit (powers of two scale exactly); what
 * changes is the parametrization an optimizer sees. Whitened and activation-weighted
 * factorizations put the scale in A (B carries the inverse whitening: norms ~100x apart), and Adam,
 * which steps every entry by about the learning rate, then rewrites B and barely moves A. Other kinds
 * are left alone. */
void pare_linear_balance_factors(pare_linear *l);
/* Zeroes the weights where mask is 0 and records the mask (copied); dense and masked layers only. */
pare_status pare_linear_set_mask(pare_linear *l, const uint8_t *mask, pare_error *err);
/* Keeps only the listed rows (output channels) or columns (input channels), in the given order. */
pare_status pare_linear_keep_rows(pare_linear *l, const int32_t *rows, int n, pare_error *err);
pare_status pare_linear_keep_cols(pare_linear *l, const int32_t *cols, int n, pare_error *err);

/* Frees what the layer owns (not slab views). */
void pare_linear_release(pare_linear *l);

/* dst becomes a copy of src that owns copies of all src owns (its heap block of weights or factors
 * and bias, mask, channel maps); weights src only views (a model's slab) stay views of the same
 * storage, for the caller to move. On failure dst owns nothing. */
pare_status pare_linear_clone(const pare_linear *src, pare_linear *dst, pare_error *err);

#endif

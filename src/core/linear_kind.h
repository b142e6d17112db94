/* The linear kinds of a decoder block (q, k, v, o, gate, up, down) and the one table of facts about
 * each: its short name, attention or FFN, the input it reads, its shape from the config and its
 * Hugging Face name per architecture. Every loop over a block's matrices walks this enum; adding a
 * kind or an architecture means adding a row or a column here (and the forward's math). */
#ifndef PARE_LINEAR_KIND_H
#define PARE_LINEAR_KIND_H

/* The weight layout of a checkpoint, i.e. how its block linears are named and stored: LLaMA-style
 * separate projections under model.layers.N (Llama, Mistral, Qwen2/3, Gemma-3), GPT-2's Conv1D
 * tensors under transformer.h.N, and Phi-3's fused qkv_proj / gate_up_proj under model.layers.N. The
 * model family (pare_family, model.h) says what the forward computes; this says only where the
 * weights are. */
typedef enum { PARE_ARCH_LLAMA, PARE_ARCH_GPT2, PARE_ARCH_PHI3, PARE_ARCHS } pare_arch;

/* Block order: the order of pare_model_linears, of the slab, and of every report by matrix. */
typedef enum {
    PARE_LIN_Q,
    PARE_LIN_K,
    PARE_LIN_V,
    PARE_LIN_O,
    PARE_LIN_GATE,
    PARE_LIN_UP,
    PARE_LIN_DOWN,
    PARE_LIN_KINDS
} pare_lin_kind;

/* The activation a kind reads (what calibration gathers statistics of): q/k/v the normed block
 * input, o the attention output, gate/up the normed residual, down the FFN's hidden activation. */
typedef enum { PARE_IN_ATTN, PARE_IN_O, PARE_IN_MLP, PARE_IN_DOWN, PARE_IN_COUNT } pare_input_site;

/* A dimension of a kind's shape, as a function of the config: C, H*hd, KV*hd or F. */
typedef enum { PARE_DIM_HIDDEN, PARE_DIM_QUERY, PARE_DIM_KV, PARE_DIM_FFN } pare_lin_dim;

typedef struct {
    const char *name; /* short name: "q", "gate" */
    int ffn;          /* 1: FFN (its channels can be pruned; biased per mlp_bias), 0: attention */
    pare_input_site input;
    pare_lin_dim out, in; /* loaded shape [out, in] */
    /* The layer's name after "model.layers.N." / "transformer.h.N."; NULL where the architecture has
     * no such matrix (GPT-2 has no gate). */
    const char *hf[PARE_ARCHS];
    /* The stored tensor holding it when several kinds share one, concatenated along out in kind order
     * (GPT-2's c_attn holds q, k, v; Phi-3's qkv_proj q, k, v and gate_up_proj gate, up); NULL when
     * stored alone under its own name. */
    const char *fused[PARE_ARCHS];
} pare_lin_kind_info;

extern const pare_lin_kind_info pare_lin_kinds[PARE_LIN_KINDS];

/* Per architecture: the prefix of a layer's names (a printf format taking the layer) and whether its
 * weights are stored [in, out] (GPT-2's Conv1D) rather than [out, in]. */
typedef struct {
    const char *layer_prefix;
    int conv1d;
} pare_arch_info;

extern const pare_arch_info pare_archs[PARE_ARCHS];

/* The kind called name ("q", "down"), or -1. */
int pare_lin_kind_find(const char *name);
/* The kind whose HF name is the end of name ("...self_attn.q_proj", "...attn.c_attn.q"), or -1. */
int pare_lin_kind_of_hf_name(const char *name);
/* Whether kinds j and k are stored in one tensor under arch: j == k, or both fused into the same one
 * (GPT-2's c_attn, Phi-3's qkv_proj and gate_up_proj), their rows stacked in kind order. */
int pare_lin_same_tensor(pare_arch arch, int j, int k);

#endif

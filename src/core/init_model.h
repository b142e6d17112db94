/* Random-initialized models of any supported family and shape (pare init): the tensor list a
 * config implies, as that family's checkpoints store it, its parameter counts without any weights,
 * and a writer that streams seeded values into an ordinary Hugging Face folder with memory bounded
 * by a fixed chunk, never by the model. See docs/scale.md. */
#ifndef PARE_INIT_MODEL_H
#define PARE_INIT_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"
#include "safetensors.h"

/* What a stored tensor is, which decides its initial values as transformers' _init_weights does:
 * matrices and embeddings N(0, initializer_range), biases 0, norm weights 1 (Gemma's (1 + w)
 * norms: 0), LayerNorm biases 0. */
typedef enum {
    PARE_TENSOR_EMBEDDING, /* token (and GPT-2's position) embedding */
    PARE_TENSOR_WEIGHT,    /* a block linear's weight, fused ones whole (Phi-3's qkv_proj) */
    PARE_TENSOR_BIAS,      /* a block linear's bias */
    PARE_TENSOR_NORM,      /* a norm's weight */
    PARE_TENSOR_NORM_BIAS, /* a LayerNorm's bias (GPT-2) */
    PARE_TENSOR_HEAD       /* an untied lm_head; a tied one is not stored */
} pare_tensor_role;

typedef struct {
    char name[96]; /* the checkpoint's name: "model.layers.0.self_attn.qkv_proj.weight" */
    pare_tensor_role role;
    int ndim;
    int64_t shape[2]; /* as stored: GPT-2's Conv1D weights [in, out] */
    size_t numel;
} pare_hf_tensor;

/* Every tensor a checkpoint of config c holds, once each (tied embeddings once), in state-dict
 * order: embeddings, the blocks' matrices layer by layer, the norms, the head. *out is malloc'd. */
pare_status pare_config_hf_tensors(const pare_config *c, pare_hf_tensor **out, size_t *n, pare_error *err);

/* The parameter counts pare_model_param_counts gives for a dense model of config c, from the config
 * alone (pare info --config). */
pare_status pare_config_param_counts(const pare_config *c, pare_param_counts *pc, pare_error *err);

/* transformers' save_pretrained default max_shard_size ("5GB"). */
#define PARE_INIT_DEFAULT_SHARD_BYTES 5000000000ull

typedef struct {
    pare_dtype dtype;         /* F32, F16 or BF16 (default BF16) */
    uint64_t seed;            /* the same seed gives the same bytes */
    const char *tokenizer;    /* copied into the folder under its own name; NULL: none */
    int overwrite;            /* replace an existing model folder, only once the new one is complete */
    uint64_t max_shard_bytes; /* above this, shards and an index as transformers writes them */
} pare_init_opts;

typedef struct {
    size_t bytes_on_disk; /* every file written */
    size_t tensor_bytes;  /* tensor data, headers excluded */
    size_t tensors;
    size_t params;               /* unique parameters */
    size_t largest_tensor_bytes; /* as stored */
    int shards;                  /* 1: model.safetensors alone */
} pare_init_report;

/* BF16, seed 0, no tokenizer, no overwrite, PARE_INIT_DEFAULT_SHARD_BYTES. */
void pare_init_defaults(pare_init_opts *o);

/* Writes a random-initialized model of the shape config_path describes (refused as the loader
 * refuses it: unknown family, unsupported field) into the folder dir: config.json (the given one,
 * its torch_dtype set to the dtype written), model.safetensors or shards with
 * model.safetensors.index.json, and the tokenizer when given (refused when its ids exceed the
 * config's vocabulary). Values come from seeded streams, one per fixed chunk of each tensor, and go
 * to disk chunk by chunk: memory stays a few MiB whatever the shape. The folder is built beside dir
 * and renamed into place when complete; a failure, a full disk or a cancel from p leaves nothing
 * (an existing dir is untouched). o may be NULL for the defaults, p and rep may be NULL.
 * Errors: PARE_EINVAL (dir exists, bad option), PARE_EFORMAT / PARE_EUNSUPPORTED (the config),
 * PARE_EIO (including too little free space, refused before writing), PARE_ECANCELED. */
pare_status pare_init_model(const char *config_path, const char *dir, const pare_init_opts *o, const pare_progress *p,
                            pare_init_report *rep, pare_error *err);

#endif

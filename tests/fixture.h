/* Tiny synthetic models written by the tests themselves: HF folders (LLaMA or GPT-2, optionally
 * sharded or without the transformer. prefix) and llama2.c checkpoints with matching weights. */
#ifndef PARE_TEST_FIXTURE_H
#define PARE_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int gpt2; /* 0: LLaMA, 1: GPT-2 */
    int dim, layers, heads, kv_heads, ffn, vocab, max_pos;
    int tied;
    int shards;        /* 1: model.safetensors; 2+: model-0000i-of-0000n.safetensors + index */
    int no_prefix;     /* GPT-2: keys without "transformer." */
    const char *dtype; /* "F32", "F16" or "BF16" */
    unsigned seed;
} fixture_spec;

void fixture_default(fixture_spec *s, int gpt2);
/* Writes config.json, the safetensors file(s) and a byte-fallback tokenizer.json into dir
 * (created if needed). Returns 0 on success. */
int fixture_write_hf(const char *dir, const fixture_spec *s);
/* Writes the same LLaMA weights as a llama2.c checkpoint (interleaved RoPE rows) plus tok.bin. */
int fixture_write_llama2c(const char *dir, const fixture_spec *s);
/* The fixture's vocab size as its tokenizer defines it (3 specials + 256 bytes + pieces). */
int fixture_tokenizer_vocab(void);

/* Writes a default fixture (LLaMA or GPT-2) into the test's temporary folder `name` and loads it;
 * failures are recorded as test failures and give NULL. */
#include "core/model.h"
#include "core/calib.h"
pare_model *fixture_model(const char *name, int gpt2);
/* As fixture_model, for any spec (e.g. tied or untied heads, kv_heads = heads). */
pare_model *fixture_model_spec(const char *name, const fixture_spec *s);
/* Deterministic token ids [S * T] within the model's vocabulary (malloc'd). */
int32_t *fixture_ids(const pare_model *m, int S, int T);
/* One-shot calibration statistics over fixture_ids(m, S, T), with Gram matrices when asked. */
pare_calib_stats *fixture_calibrate(pare_model *m, int S, int T, int gram);
/* Logits [FIXTURE_T, V] of a fixed 2 x FIXTURE_T/2 batch (malloc'd), or NULL on failure. */
#define FIXTURE_T 24
float *fixture_logits_of(const pare_model *m);
double fixture_max_diff(const float *a, const float *b, size_t n);
/* CHECKs that the layers of a and b are in exactly the same state, byte for byte (kind, shape, rank,
 * weights or factors, bias, mask, channel maps). */
void fixture_same_state(pare_model *a, pare_model *b);

/* Replaces l (dense) by rank min(out, in) / 2 factors whose component j carries 50 + j times more
 * scale in A than in B, as whitened factorizations do; a failure is a test failure. */
void fixture_unbalanced_factors(pare_linear *l);
/* The largest ratio, either way, between the norms of column j of A and row j of B over l's
 * components (1 when balanced exactly). */
double fixture_factor_imbalance(const pare_linear *l);

/* Writes a default fixture (LLaMA or GPT-2) into the test's temporary folder `name` and returns the
 * folder (one of 4 rotating buffers); a failure to write is a test failure. */
const char *fixture_hf_dir(const char *name, int gpt2);
/* Writes `bytes` bytes of `pattern` repeated (a calibration or evaluation text). */
void fixture_write_pattern(const char *path, const char *pattern, size_t bytes);

/* Sets key in DIR/config.json to value (consumed). */
struct json_t;
/* DIR/NAME parsed as JSON; a failed CHECK naming the file (and NULL) when it cannot be read. */
struct json_t *fixture_read_json(const char *dir, const char *name);
void fixture_set_config(const char *dir, const char *key, struct json_t *value);

/* Reads / writes whole files for corrupting fixtures. */
unsigned char *fixture_read(const char *path, size_t *len);
int fixture_write_raw(const char *path, const void *data, size_t len);

#endif

/* Calibration: random token windows from a text, and per-linear-input activation statistics
 * (channel sums of squares, optional Gram matrices), one-shot or sequentially block by block. */
#ifndef PARE_CALIB_H
#define PARE_CALIB_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"

typedef struct {
    int samples;   /* windows (default 128) */
    int len;       /* tokens per window (default 256) */
    uint64_t seed; /* window positions are a function of the seed only (default 0) */
    int batch;     /* windows per forward pass (default 8) */
    int gram;      /* 1: also accumulate X^T X for every input (whitening needs it) */
    int one_shot;  /* with a hook: the next block is calibrated on this block's dense outputs, taken
                      before the hook runs (one-shot statistics, one block's held at a time) */
} pare_calib_opts;

void pare_calib_defaults(pare_calib_opts *o);

/* Picks o->samples windows of o->len tokens at seeded random starts in ids (uniform over
 * [0, n - len]); *out is malloc'd [samples * len]. A stream shorter than one window is an error. */
pare_status pare_calib_windows(const int32_t *ids, size_t n, const pare_calib_opts *o, int32_t **out, pare_error *err);

/* pare_calib_windows over a text file tokenized with m's tokenizer (pare_model_tokenize_file);
 * *file_tokens (may be NULL) gets the file's token count. Errors name the file. */
pare_status pare_calib_windows_file(const pare_model *m, const char *path, const pare_calib_opts *o, int32_t **out,
                                    size_t *file_tokens, pare_error *err);

/* Statistics of one linear layer input X [tokens, dim]. */
typedef struct {
    int dim;
    size_t tokens;
    double *sumsq; /* [dim]: sum over tokens of x_j^2, so ||X_j|| = sqrt(sumsq[j]) */
    double *gram;  /* [dim, dim] X^T X, or NULL */
} pare_input_stats;

/* The four distinct inputs of a decoder block's linears are pare_input_site (linear_kind.h). */
typedef struct pare_calib_stats {
    int n_layers;
    pare_input_stats (*sites)[PARE_IN_COUNT]; /* [n_layers][site] */
    size_t bytes;                             /* memory the statistics take */
    size_t window_bytes;                      /* memory of the hidden states carried between blocks */
} pare_calib_stats;

/* Which input feeds a linear of block l: q/k/v read PARE_IN_ATTN, o PARE_IN_O, gate/up PARE_IN_MLP,
 * down PARE_IN_DOWN. Returns -1 for a linear that is not in the block. */
int pare_linear_site(const pare_block *b, const pare_linear *l);
/* ||X_j|| for every input channel of l (fills dst[l->in]); sliced inputs pick their kept channels. */
void pare_input_norms(const pare_input_stats *s, const pare_linear *l, float *dst);

/* Called after block `layer`'s statistics are complete; it may compress that block. The windows
 * are then run through the block as it is now to calibrate the next one (sequential mode). */
typedef pare_status (*pare_block_hook)(void *user, pare_model *m, int layer, const pare_calib_stats *stats,
                                       pare_error *err);

/* Runs ids [samples, len] through the model block by block, accumulating statistics. With a hook,
 * each block may be compressed before the next is calibrated (LoRAP / SparseGPT's sequential
 * mode; with o->one_shot the next block sees this block's outputs from before the hook instead,
 * which is the one-shot statistics block by block), and its Gram matrices are freed once the hook
 * returns (the result keeps the sums of squares of every block, the Gram matrices of none);
 * without one, all statistics come from the model as given (one-shot) and are all kept. */
pare_status pare_calibrate(pare_model *m, const int32_t *ids, const pare_calib_opts *o, pare_block_hook hook,
                           void *user, const pare_progress *progress, pare_calib_stats **out, pare_error *err);
/* Memory pare_calibrate will need, for reporting before it runs: sequential (with a hook), one
 * block's Gram matrices at a time; one-shot, every block's. */
size_t pare_calib_bytes(const pare_model *m, const pare_calib_opts *o, int sequential);
void pare_calib_free(pare_calib_stats *s);

#endif

/* Fine-tuning runs: training windows from a tokenized text (cached on disk), the training step with
 * first-order pruning, mixed-rank substitution and distillation, atomic checkpoints with exact
 * resume, and a stop on a non-finite loss. `pare train`, `pare finetune` and m:finetune drive it. */
#ifndef PARE_FINETUNE_H
#define PARE_FINETUNE_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "core/model.h"
#include "sparsify.h"
#include "train.h"

/* ---------------------------------------------------------------- data */

typedef struct {
    int32_t *ids;
    size_t n;
    char path[4096];
    char sha256[65];       /* of the text file */
    int from_cache;        /* 1: the ids were read from the cache file */
    char cache_path[4200]; /* the cache file used or written ("" without a cache folder) */
} pare_token_stream;

/* Tokenizes the text file with m's tokenizer (no special tokens, as pare eval). With cache_dir, the
 * ids are stored in cache_dir/tokens-<text sha256>-<tokenizer fingerprint>.bin (written atomically)
 * and read from there while the text and the tokenizer are the same; cache_dir is created if needed.
 * The fingerprint hashes the tokenizer's description and the ids of a fixed probe text. */
pare_status pare_tokens_open(const pare_model *m, const char *path, const char *cache_dir, pare_token_stream *out,
                             pare_error *err);
void pare_tokens_close(pare_token_stream *s);

/* The ids of step `step`: count windows of seq tokens, window i starting at a position drawn
 * uniformly from [0, n - seq] by a hash of (seed, step, i). Any step's windows follow from the seed
 * alone, which is what makes a resumed run see the data an uninterrupted one sees. */
pare_status pare_train_windows(const pare_token_stream *s, uint64_t seed, long step, int count, int seq, int32_t *out,
                               pare_error *err);

/* ---------------------------------------------------------------- the run */

typedef struct {
    pare_train_opts train; /* batch, seq, accum, AdamW, clip; lr.total is set to steps */
    long steps;            /* optimizer steps of the whole run (default 1000) */
    uint64_t seed;         /* window positions and mixed-rank draws (default 0) */
    int prune;             /* 1: first-order pruning with fop (fop.total is set to steps) */
    pare_fop_opts fop;
    /* mixed-rank fine-tuning (needs sparse) and distillation */
    pare_model *sparse;  /* frozen full-rank counterpart with the same linear names (e.g. the pruned model
                              before its sparsity-aware SVD); NULL for none */
    double mix_p0;       /* probability that a factorized linear is replaced for a step, at step 0 (0: off) */
    double mix_span;     /* fraction of the run over which it decays linearly to 0 (default 0.5) */
    double distill;      /* weight α of the distillation loss: (1 - α) CE + α τ² KL(p_sparse || p) */
    double distill_temp; /* τ (default 1) */
} pare_ft_opts;

void pare_ft_defaults(pare_ft_opts *o);

/* Probability of a mixed-rank replacement at step t: p0 (1 - t / (span T)) before span T, then 0. */
double pare_ft_mix_prob(const pare_ft_opts *o, long step);

typedef struct {
    long step;           /* 0-based index of the step just taken */
    double loss;         /* mean cross-entropy over the step's targets, before the update */
    double distill_loss; /* τ² KL(p_sparse || p) over the same targets (0 without distillation) */
    double grad_norm;    /* before clipping */
    double lr;
    double kept;     /* scheduled kept fraction of this step (1 without pruning) */
    double sparsity; /* block-linear weights masked now, as a fraction (pruning runs) */
    double mix_prob; /* mixed-rank probability of this step */
    int swapped;     /* linears that ran as their sparse counterpart this step */
    size_t tokens;   /* tokens of the step (accum x batch x seq) */
    double seconds;  /* wall time of the step */
} pare_ft_stats;

typedef struct pare_ft pare_ft;

/* Prepares a run on m as it is now (for pruning, pare_fop_prepare first turns its dense block
 * linears into all-ones masked ones). data must outlive the run. Mixed rank / distillation need
 * o->sparse with the same architecture; mixed rank needs m to have factorized linears whose names
 * match masked or dense linears of o->sparse. */
pare_status pare_ft_new(pare_model *m, const pare_token_stream *data, const pare_ft_opts *o, pare_ft **out,
                        pare_error *err);
void pare_ft_free(pare_ft *ft);
/* Steps taken so far (the next step's index). */
long pare_ft_steps_done(const pare_ft *ft);
const pare_fop_state *pare_ft_fop(const pare_ft *ft);
const pare_ft_opts *pare_ft_options(const pare_ft *ft);

/* One optimizer step. progress is told after each micro-batch; cancelling returns PARE_ECANCELED
 * before the update (the model is unchanged). A non-finite loss or gradient norm returns PARE_EINVAL
 * ("step N: the loss is nan ...") before the update, leaving the model as it was. */
pare_status pare_ft_step(pare_ft *ft, const pare_progress *progress, pare_ft_stats *st, pare_error *err);

/* Non-zero when every trainable parameter of m is finite. */
int pare_ft_params_finite(const pare_ft *ft);

/* Checkpoints. A checkpoint is a folder: the model as a pare export (F32, reloads bit for bit),
 * optimizer.safetensors (AdamW moments exp_avg.NAME / exp_avg_sq.NAME and the pruning state
 * score.NAME / ema.NAME / unc.NAME) and trainer.json (steps, AdamW step, the caller's options
 * JSON), written last. The whole folder is built as dir.next and then swapped into place, so dir
 * always holds a complete checkpoint. options_json (a JSON object, or NULL) is stored verbatim. */
pare_status pare_ft_save(pare_ft *ft, const char *dir, const char *options_json, pare_error *err);
/* Reads trainer.json of a checkpoint: *step (steps taken), *options_json (malloc'd, may be NULL). */
pare_status pare_ft_checkpoint_info(const char *dir, long *step, char **options_json, pare_error *err);
/* Restores the optimizer and pruning state and the step counter from checkpoint dir into ft, which
 * must have been made for the model loaded from dir (pare_model_load(dir)) with the same options. */
pare_status pare_ft_load_state(pare_ft *ft, const char *dir, pare_error *err);

/* The loop: steps until o->steps (or ro->until), a checkpoint every checkpoint_every steps and after the last
 * (when checkpoint_dir is set), on_step after each step (non-zero return cancels). Before a
 * checkpoint is written every parameter is checked to be finite. A non-finite loss, gradient or
 * parameter stops the run without writing a checkpoint: the error says so and names the last good
 * checkpoint (its step). A cancel writes a checkpoint of the last completed step first (when there is
 * a checkpoint folder and at least one step since the last), so the run can be resumed. */
typedef int (*pare_ft_step_fn)(void *user, const pare_ft_stats *st);
typedef struct {
    const char *checkpoint_dir; /* NULL: no checkpoints */
    long checkpoint_every;      /* 0: only after the last step */
    const char *options_json;   /* stored in every checkpoint */
    pare_ft_step_fn on_step;
    void *user;
    const pare_progress *progress; /* micro-batch progress and cancel */
    long until;                    /* > 0: stop (with a checkpoint) once this many steps are done */
} pare_ft_run_opts;
pare_status pare_ft_run(pare_ft *ft, const pare_ft_run_opts *ro, pare_error *err);

/* ---------------------------------------------------------------- models from scratch */

/* Writes an initialized Hugging Face model folder dir for cfg (LLaMA or GPT-2): config.json,
 * model.safetensors (F32) and the tokenizer file copied as tokenizer.json. Weights: normal(0, 0.02)
 * for embeddings and linears, the residual output projections (o / c_proj, down) scaled by
 * 1/sqrt(2 L) as GPT-2 does, norms 1, biases 0; the draws follow from seed. dir must not exist. */
pare_status pare_model_init_folder(const char *dir, const pare_config *cfg, const char *tokenizer_json, uint64_t seed,
                                   pare_error *err);

#endif

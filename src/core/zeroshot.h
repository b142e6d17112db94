/* Zero-shot multiple-choice scoring by log-likelihood, as lm-evaluation-harness does it: each choice's
 * continuation is scored after the context, the highest sum of log-probabilities wins (acc), or the
 * highest per character of the choice (acc_norm). */
#ifndef PARE_ZEROSHOT_H
#define PARE_ZEROSHOT_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"
#include "tasks.h"

typedef struct {
    int batch_tokens; /* tokens per forward pass, padding included (default 2048) */
    int max_len;      /* longest model input; 0: the model's positions (the harness's max_length) */
} pare_zeroshot_opts;

typedef struct {
    size_t n;               /* items scored */
    size_t n_requests;      /* (item, choice) pairs scored */
    double acc, acc_stderr; /* mean and sample standard error of the mean (ddof 1), as the harness */
    double acc_norm, acc_norm_stderr;
    size_t sequences;     /* distinct model inputs: choices whose inputs are identical (one-token
                                 continuations of one context, e.g. BoolQ's " no" / " yes") share one */
    size_t tokens;        /* input tokens through the model, padding excluded */
    size_t padded_tokens; /* the same with the padding of each batch */
    size_t forwards;      /* forward passes */
    size_t truncated;     /* requests whose input was left-truncated to max_len */
    double tokenize_seconds, forward_seconds;
    /* Per item i, its choices are requests first[i] .. first[i+1]-1 (item-major, choice order). */
    size_t *first;         /* [n + 1] */
    double *ll;            /* [n_requests] log-likelihood of each continuation, nats */
    int *cont_tokens;      /* [n_requests] continuation tokens scored */
    int *pred, *pred_norm; /* [n] chosen index under acc / acc_norm (first maximum on ties) */
} pare_zeroshot_result;

void pare_zeroshot_defaults(pare_zeroshot_opts *o);

/* Scores every item of the task on the model (which needs a tokenizer). Tokenization follows the
 * harness's _encode_pair: trailing whitespace of the context moves to the continuation; the context and
 * context + continuation are encoded whole, without special tokens; the continuation tokens are those of
 * the whole beyond the context's token count. The input is the last max_len + 1 tokens of context +
 * continuation tokens minus the final one. Inputs are sorted by length and run in batches of about
 * batch_tokens tokens; progress reports after each batch. res is filled only on success and released
 * with pare_zeroshot_result_free. */
pare_status pare_task_score(const pare_model *m, const pare_task *t, const pare_zeroshot_opts *o,
                            const pare_progress *progress, pare_zeroshot_result *res, pare_error *err);
void pare_zeroshot_result_free(pare_zeroshot_result *r);

/* One request's tokens as scored: the model input (inp, after truncation) and the continuation (the
 * last n_cont targets). For dumps and cross-checks; ids are malloc'd. */
typedef struct {
    int32_t *inp;
    int n_inp;
    int32_t *cont;
    int n_cont;
    int truncated;
} pare_zeroshot_request;

/* Tokenizes choice j of item i as pare_task_score does. */
pare_status pare_zeroshot_encode(const pare_model *m, const pare_task *t, size_t i, int j, int max_len,
                                 pare_zeroshot_request *req, pare_error *err);
void pare_zeroshot_request_free(pare_zeroshot_request *req);

#endif

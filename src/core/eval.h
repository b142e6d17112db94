/* Perplexity under a stated protocol: fixed-length windows over a token stream, optional BOS per
 * window, optional overlap (stride), each token scored at most once. */
#ifndef PARE_EVAL_H
#define PARE_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"

typedef struct {
    int window;          /* tokens per forward window, BOS included when bos is set */
    int stride;          /* text tokens between window starts; 0 means window minus BOS (no overlap) */
    int bos;             /* 1: every window starts with the BOS token */
    int batch;           /* windows per forward pass */
    size_t limit_tokens; /* 0: whole stream; else only the first limit_tokens tokens */
    const char *data;    /* the text's file, named in errors (NULL: "the text") */
} pare_eval_opts;

/* The protocol as planned for a stream of n tokens, before running anything. */
typedef struct {
    size_t tokens; /* tokens in the stream considered (after limit) */
    int window, stride, bos;
    size_t windows;   /* full windows evaluated */
    size_t predicted; /* targets scored */
    size_t dropped;   /* trailing tokens that do not fill a window and are not scored */
} pare_eval_plan;

typedef struct {
    pare_eval_plan plan;
    double nll;      /* total negative log-likelihood, nats */
    double ppl;      /* exp(nll / predicted) */
    int layer_major; /* 1: run layer-major (a streamed model whose blocks do not fit its cache together) */
} pare_eval_result;

void pare_eval_defaults(pare_eval_opts *o);
/* Checks options against the model and the stream length and fills the plan. */
pare_status pare_eval_plan_make(const pare_model *m, size_t n_tokens, const pare_eval_opts *o, pare_eval_plan *plan,
                                pare_error *err);
/* log sum exp of one row of V logits, in double after a float max shift. */
double pare_logits_lse(const float *row, int V);
/* -log softmax(row)[target] = pare_logits_lse(row) - row[target] (the term every perplexity and
 * calibration loss sums). */
double pare_logits_nll(const float *row, int V, int32_t target);
/* A non-finite loss (NaN or infinite logits) or a perplexity that overflows a double is an error
 * naming the model, the text and the window, never a NaN result. */
pare_status pare_eval_perplexity(const pare_model *m, const int32_t *ids, size_t n_ids, const pare_eval_opts *o,
                                 const pare_progress *progress, pare_eval_result *res, pare_error *err);

#endif

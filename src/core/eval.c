/* Perplexity evaluation: plans windows, runs batched forwards, sums NLL in double precision. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "memcheck.h"
#include "parallel.h"

void pare_eval_defaults(pare_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->window = 256;
    o->batch = 8;
}

/* Window k covers text [k*stride, k*stride + cap) where cap is the window minus the BOS slot.
 * A text token is scored in the first window that has it and a token before it. */
pare_status pare_eval_plan_make(const pare_model *m, size_t n_tokens, const pare_eval_opts *o, pare_eval_plan *p,
                                pare_error *err)
{
    memset(p, 0, sizeof *p);
    if (o->window < 2)
        return pare_fail(err, PARE_EINVAL, "--window %d: a window needs at least 2 tokens", o->window);
    if (o->window > m->cfg.max_pos)
        return pare_fail(err, PARE_EINVAL, "--window %d is longer than the model's %d positions", o->window,
                         m->cfg.max_pos);
    if (o->bos && m->cfg.bos_id < 0)
        return pare_fail(err, PARE_EINVAL, "--bos: the model has no BOS token");
    if (o->batch < 1)
        return pare_fail(err, PARE_EINVAL, "--batch %d must be at least 1", o->batch);
    int cap = o->window - (o->bos ? 1 : 0);
    int stride = o->stride ? o->stride : cap;
    if (stride < 1 || stride > cap)
        return pare_fail(err, PARE_EINVAL, "--stride %d must be between 1 and %d (the text tokens in a window)",
                         o->stride, cap);
    size_t n = o->limit_tokens && o->limit_tokens < n_tokens ? o->limit_tokens : n_tokens;
    if (n == 0)
        return pare_fail(err, PARE_EINVAL, "%s: no tokens to evaluate", o->data ? o->data : "the text");
    if (n < (size_t)cap)
        return pare_fail(err, PARE_EINVAL, "%s: only %zu tokens: shorter than one window of %d text tokens",
                         o->data ? o->data : "the text", n, cap);
    p->tokens = n;
    p->window = o->window;
    p->stride = stride;
    p->bos = o->bos;
    p->windows = (n - (size_t)cap) / (size_t)stride + 1;
    size_t end = (p->windows - 1) * stride + cap;
    p->dropped = n - end;
    size_t per_first = (size_t)cap - (o->bos ? 0 : 1); /* without BOS a window's first token has no context */
    size_t per_next = (size_t)stride < per_first ? (size_t)stride : per_first;
    p->predicted = per_first + (p->windows - 1) * per_next;
    return PARE_OK;
}

double pare_logits_lse(const float *row, int V)
{
    float mx = row[0];
    for (int j = 1; j < V; j++)
        mx = row[j] > mx ? row[j] : mx;
    double s = 0;
    for (int j = 0; j < V; j++)
        s += expf(row[j] - mx);
    return (double)mx + log(s);
}

double pare_logits_nll(const float *row, int V, int32_t target) { return pare_logits_lse(row, V) - row[target]; }

/* The windows of batch [w0, w0 + nb) into ids_out [nb, W], with the BOS slot when the plan has one. */
static void batch_windows(const pare_model *m, const pare_eval_plan *p, const int32_t *ids, size_t w0, int nb,
                          int32_t *ids_out)
{
    int W = p->window, cap = W - (p->bos ? 1 : 0);
    for (int b = 0; b < nb; b++) {
        size_t start = (w0 + b) * (size_t)p->stride;
        int32_t *dst = ids_out + (size_t)b * W;
        if (p->bos)
            *dst++ = m->cfg.bos_id;
        memcpy(dst, ids + start, (size_t)cap * sizeof *dst);
    }
}

/* Adds the loss of batch [w0, w0 + nb), whose logits a holds, to *nll and its targets to *scored;
 * term is [W] scratch. */
static pare_status score_batch(const pare_model *m, const pare_eval_plan *p, const int32_t *ids,
                               const pare_eval_opts *o, const pare_acts *a, size_t w0, int nb, double *term,
                               double *nll, size_t *scored, pare_error *err)
{
    int W = p->window, cap = W - (p->bos ? 1 : 0), V = m->cfg.vocab_size;
    for (int b = 0; b < nb; b++) {
        size_t k = w0 + b, start = k * (size_t)p->stride;
        /* first text index this window scores: past what earlier windows scored, and with a predecessor */
        size_t first = k == 0 ? 0 : (k - 1) * (size_t)p->stride + cap;
        size_t min_with_ctx = start + (p->bos ? 0 : 1);
        if (first < min_with_ctx)
            first = min_with_ctx;
            /* per-target terms in parallel, summed in order: the same text gives the same bits */
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
        for (size_t t = first; t < start + cap; t++) {
            int pos = (int)(t - start) + (p->bos ? 1 : 0); /* position of target in the window */
            term[t - start] = pare_logits_nll(a->logits + ((size_t)b * W + pos - 1) * V, V, ids[t]);
        }
        for (size_t t = first; t < start + cap; t++)
            *nll += term[t - start];
        *scored += start + cap > first ? start + cap - first : 0;
        if (!isfinite(*nll))
            return pare_fail(err, PARE_EFORMAT,
                             "%s: non-finite loss on %s (window %zu, text tokens %zu..%zu): the model's logits hold "
                             "NaN or infinity (check its weights and config)",
                             m->path, o->data ? o->data : "the text", k + 1, start, start + cap - 1);
    }
    return PARE_OK;
}

/* Batch-major: each batch of windows through the whole model in turn (the blocks stay resident). */
static pare_status eval_batch_major(const pare_model *m, const pare_eval_plan *p, const int32_t *ids,
                                    const pare_eval_opts *o, pare_acts *a, int B, int32_t *batch_ids, double *term,
                                    const pare_progress *progress, double *nll, size_t *scored, pare_error *err)
{
    pare_status rc = PARE_OK;
    for (size_t w0 = 0; w0 < p->windows && rc == PARE_OK; w0 += (size_t)B) {
        int nb = (int)(p->windows - w0 < (size_t)B ? p->windows - w0 : (size_t)B);
        batch_windows(m, p, ids, w0, nb, batch_ids);
        if ((rc = pare_forward(m, a, batch_ids, nb, p->window, PARE_LOGITS_ALL, err)) ||
            (rc = score_batch(m, p, ids, o, a, w0, nb, term, nll, scored, err)))
            break;
        char detail[128];
        snprintf(detail, sizeof detail, "%zu/%zu windows", w0 + nb, p->windows);
        rc = pare_report(progress, "eval", (double)(w0 + nb) / p->windows, detail, err);
    }
    return rc;
}

/* Layer-major, for a streamed model whose blocks do not fit its cache together: every window through
 * block l, then through block l + 1, so each block is converted once. The batches are those of the
 * batch-major order, so the arithmetic, and the perplexity, are the same to the bit. */
static pare_status eval_layer_major(const pare_model *m, const pare_eval_plan *p, const int32_t *ids,
                                    const pare_eval_opts *o, pare_acts *a, int B, int32_t *batch_ids, double *term,
                                    const pare_progress *progress, double *nll, size_t *scored, pare_error *err)
{
    int W = p->window, C = m->cfg.dim, L = m->cfg.n_layers;
    size_t rows = p->windows * (size_t)W;
    char what[sizeof m->path + 96];
    snprintf(what, sizeof what, "%s: layer-major evaluation's hidden states (%zu windows)", m->path, p->windows);
    pare_status rc = pare_memory_check((uint64_t)rows * C * sizeof(float), what, err);
    float *hidden = rc ? NULL : malloc(rows * C * sizeof(float)); /* [windows * W, C] residual stream */
    if (rc)
        return rc;
    if (!hidden)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", what);
    double steps = (double)L + 2, done = 0;
    for (size_t w0 = 0; w0 < p->windows && rc == PARE_OK; w0 += (size_t)B) {
        int nb = (int)(p->windows - w0 < (size_t)B ? p->windows - w0 : (size_t)B);
        batch_windows(m, p, ids, w0, nb, batch_ids);
        if ((rc = pare_embed_forward(m, a, batch_ids, nb, W, err)) == PARE_OK)
            memcpy(hidden + w0 * W * C, a->emb, (size_t)nb * W * C * sizeof(float));
    }
    if (rc == PARE_OK)
        rc = pare_report(progress, "eval", ++done / steps, "embeddings", err);
    for (int l = 0; l < L && rc == PARE_OK; l++) {
        if ((rc = pare_block_acquire(m, l, err)))
            break;
        for (size_t w0 = 0; w0 < p->windows; w0 += (size_t)B) {
            int nb = (int)(p->windows - w0 < (size_t)B ? p->windows - w0 : (size_t)B);
            float *x = hidden + w0 * W * C;
            const float *y = pare_block_forward(m, l, a, x, nb, W);
            memcpy(x, y, (size_t)nb * W * C * sizeof(float));
        }
        pare_block_release(m, l);
        char detail[96];
        snprintf(detail, sizeof detail, "block %d/%d (layer-major)", l + 1, L);
        rc = pare_report(progress, "eval", ++done / steps, detail, err);
    }
    for (size_t w0 = 0; w0 < p->windows && rc == PARE_OK; w0 += (size_t)B) {
        int nb = (int)(p->windows - w0 < (size_t)B ? p->windows - w0 : (size_t)B);
        pare_head_forward(m, a, hidden + w0 * W * C, nb, W, PARE_LOGITS_ALL);
        rc = score_batch(m, p, ids, o, a, w0, nb, term, nll, scored, err);
    }
    if (rc == PARE_OK)
        rc = pare_report(progress, "eval", 1.0, "head", err);
    free(hidden);
    return rc;
}

pare_status pare_eval_perplexity(const pare_model *m, const int32_t *ids, size_t n_ids, const pare_eval_opts *o,
                                 const pare_progress *progress, pare_eval_result *res, pare_error *err)
{
    memset(res, 0, sizeof *res);
    pare_eval_plan *p = &res->plan;
    pare_status rc = pare_eval_plan_make(m, n_ids, o, p, err);
    if (rc)
        return rc;
    int W = p->window;
    int B = o->batch < (int)p->windows ? o->batch : (int)p->windows;
    pare_acts *a;
    if ((rc = pare_acts_alloc(m, B, W, 0, &a, err)))
        return rc;
    int32_t *batch_ids = malloc((size_t)B * W * sizeof *batch_ids);
    double *term = malloc((size_t)W * sizeof *term); /* [W] one window's target terms */
    if (!batch_ids || !term) {
        free(batch_ids);
        free(term);
        pare_acts_free(a);
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    }
    double nll = 0;
    size_t scored = 0;
    res->layer_major = !pare_model_blocks_fit(m);
    rc = (res->layer_major ? eval_layer_major : eval_batch_major)(m, p, ids, o, a, B, batch_ids, term, progress, &nll,
                                                                  &scored, err);
    free(batch_ids);
    free(term);
    pare_acts_free(a);
    if (rc)
        return rc;
    if (scored != p->predicted)
        return pare_fail(err, PARE_EINVAL, "internal: scored %zu targets, planned %zu", scored, p->predicted);
    res->nll = nll;
    res->ppl = exp(nll / (double)scored);
    if (!isfinite(res->ppl))
        return pare_fail(err, PARE_EFORMAT, "%s: perplexity on %s overflows a double (mean loss %.6g nats/token)",
                         m->path, o->data ? o->data : "the text", nll / (double)scored);
    return PARE_OK;
}

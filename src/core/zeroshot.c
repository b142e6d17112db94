/* Zero-shot scoring: harness-style tokenization of (context, continuation) pairs, inputs sorted by
 * length and deduplicated, batched forwards with the LM head applied only to the rows that predict
 * continuation tokens, and acc / acc_norm with their standard errors. */
#include "zeroshot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval.h"
#include "forward.h"
#include "parallel.h"

void pare_zeroshot_defaults(pare_zeroshot_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_tokens = 2048;
}

void pare_zeroshot_result_free(pare_zeroshot_result *r)
{
    if (!r)
        return;
    free(r->first);
    free(r->ll);
    free(r->cont_tokens);
    free(r->pred);
    free(r->pred_norm);
    memset(r, 0, sizeof *r);
}

void pare_zeroshot_request_free(pare_zeroshot_request *req)
{
    if (!req)
        return;
    free(req->inp);
    free(req->cont);
    memset(req, 0, sizeof *req);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The context with its trailing whitespace split off (the harness moves it into the continuation). */
static size_t context_core_len(const char *ctx)
{
    size_t n = strlen(ctx);
    while (n && is_space(ctx[n - 1]))
        n--;
    return n;
}

/* Request (i, j) given the item's context tokens: cont = encode(context + continuation)[len(ctx_enc):],
 * inp = (ctx_enc + cont)[-(max_len + 1):][:-1]. */
static pare_status encode_choice(const pare_model *m, const pare_task *t, size_t i, int j, const int32_t *ctx_ids,
                                 size_t n_ctx, int max_len, pare_zeroshot_request *req, pare_error *err)
{
    memset(req, 0, sizeof *req);
    const pare_task_item *it = &t->items[i];
    size_t clen = strlen(it->context);
    size_t dl = strlen(t->delimiter), chl = strlen(it->choices[j]);
    char *whole = malloc(clen + dl + chl + 1);
    if (!whole)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    /* context core + its moved trailing whitespace + continuation: the original context's bytes */
    memcpy(whole, it->context, clen);
    memcpy(whole + clen, t->delimiter, dl);
    memcpy(whole + clen + dl, it->choices[j], chl);
    whole[clen + dl + chl] = '\0';
    int32_t *ids = NULL;
    size_t n = 0;
    pare_status rc = pare_tokenizer_encode(m->tok, whole, clen + dl + chl, 0, &ids, &n, err);
    free(whole);
    if (rc)
        return pare_wrap(err, "%s:%d: choice %d", t->path, it->line, j + 1);
    if (n <= n_ctx) {
        free(ids);
        return pare_fail(err, PARE_EINVAL, "%s:%d: choice %d adds no tokens beyond the context's %zu", t->path,
                         it->line, j + 1, n_ctx);
    }
    size_t n_cont = n - n_ctx, total = n_ctx + n_cont;
    size_t keep = total - 1; /* the final token is only a target */
    size_t start = 0;
    if (keep > (size_t)max_len) {
        start = keep - (size_t)max_len;
        keep = (size_t)max_len;
        req->truncated = 1;
    }
    if (n_cont > keep) {
        free(ids);
        return pare_fail(err, PARE_EINVAL,
                         "%s:%d: choice %d has %zu continuation tokens: more than the %d the model "
                         "can take",
                         t->path, it->line, j + 1, n_cont, max_len);
    }
    req->inp = malloc(keep * sizeof *req->inp);
    req->cont = malloc(n_cont * sizeof *req->cont);
    if (!req->inp || !req->cont) {
        free(ids);
        pare_zeroshot_request_free(req);
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    }
    /* sequence = ctx_ids ++ ids[n_ctx:] (the context's own tokens, not the whole's, as the harness) */
    for (size_t k = 0; k < keep; k++) {
        size_t s = start + k;
        req->inp[k] = s < n_ctx ? ctx_ids[s] : ids[s];
    }
    memcpy(req->cont, ids + n_ctx, n_cont * sizeof *req->cont);
    req->n_inp = (int)keep;
    req->n_cont = (int)n_cont;
    free(ids);
    return PARE_OK;
}

static pare_status encode_context(const pare_model *m, const pare_task *t, size_t i, int32_t **ids, size_t *n,
                                  pare_error *err)
{
    const pare_task_item *it = &t->items[i];
    pare_status rc = pare_tokenizer_encode(m->tok, it->context, context_core_len(it->context), 0, ids, n, err);
    return rc ? pare_wrap(err, "%s:%d: context", t->path, it->line) : PARE_OK;
}

static pare_status check_inputs(const pare_model *m, const pare_task *t, int max_len, pare_error *err)
{
    if (!m->tok)
        return pare_fail(err, PARE_EINVAL, "%s: the model has no tokenizer", m->path);
    if (max_len < 2 || max_len > m->cfg.max_pos)
        return pare_fail(err, PARE_EINVAL, "max length %d must be between 2 and the model's %d positions", max_len,
                         m->cfg.max_pos);
    if (!t || t->n_items == 0)
        return pare_fail(err, PARE_EINVAL, "no task items to score");
    return PARE_OK;
}

pare_status pare_zeroshot_encode(const pare_model *m, const pare_task *t, size_t i, int j, int max_len,
                                 pare_zeroshot_request *req, pare_error *err)
{
    memset(req, 0, sizeof *req);
    if (max_len == 0)
        max_len = m->cfg.max_pos;
    pare_status rc = check_inputs(m, t, max_len, err);
    if (rc)
        return rc;
    if (i >= t->n_items || j < 0 || j >= t->items[i].n_choices)
        return pare_fail(err, PARE_EINVAL, "request (%zu, %d) is outside the task", i, j);
    int32_t *ctx = NULL;
    size_t n_ctx = 0;
    if ((rc = encode_context(m, t, i, &ctx, &n_ctx, err)))
        return rc;
    rc = encode_choice(m, t, i, j, ctx, n_ctx, max_len, req, err);
    free(ctx);
    return rc;
}

/* Token sequences in lexicographic order, a prefix before its extensions (ties by request index). In this
 * order a sequence that is a prefix of any other is a prefix of the one right after it, so each chain of
 * prefixes can be run as one row: its longest member. */
static int cmp_lex(const void *pa, const void *pb, void *user)
{
    const pare_zeroshot_request *reqs = user;
    const pare_zeroshot_request *a = &reqs[*(const size_t *)pa], *b = &reqs[*(const size_t *)pb];
    int n = a->n_inp < b->n_inp ? a->n_inp : b->n_inp;
    for (int k = 0; k < n; k++)
        if (a->inp[k] != b->inp[k])
            return a->inp[k] < b->inp[k] ? -1 : 1;
    if (a->n_inp != b->n_inp)
        return a->n_inp < b->n_inp ? -1 : 1;
    size_t x = *(const size_t *)pa, y = *(const size_t *)pb;
    return x < y ? -1 : x > y;
}

static int is_prefix(const pare_zeroshot_request *a, const pare_zeroshot_request *b)
{
    return a->n_inp <= b->n_inp && memcmp(a->inp, b->inp, (size_t)a->n_inp * sizeof *a->inp) == 0;
}

/* One model input shared by the requests order[first .. first+n_req), the last of which is the longest
 * (the row's tokens); the others are prefixes of it. */
typedef struct {
    size_t first, n_req;
    int len;  /* input tokens */
    int from; /* first position whose logits a member needs: positions from .. len-1 go through the head */
} row_info;

static int cmp_row_len(const void *pa, const void *pb)
{
    const row_info *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->first < b->first ? -1 : a->first > b->first;
}

static double stderr_of_mean(const int *hit, size_t n, double mean)
{
    if (n < 2)
        return 0;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (hit[i] - mean) * (hit[i] - mean);
    return sqrt(ss / (double)(n - 1) / (double)n);
}

pare_status pare_task_score(const pare_model *m, const pare_task *t, const pare_zeroshot_opts *o,
                            const pare_progress *progress, pare_zeroshot_result *res, pare_error *err)
{
    memset(res, 0, sizeof *res);
    pare_zeroshot_opts def;
    if (!o) {
        pare_zeroshot_defaults(&def);
        o = &def;
    }
    int max_len = o->max_len ? o->max_len : m->cfg.max_pos;
    pare_status rc = check_inputs(m, t, max_len, err);
    if (rc)
        return rc;
    if (o->batch_tokens < 1)
        return pare_fail(err, PARE_EINVAL, "batch of %d tokens: must be at least 1", o->batch_tokens);
    size_t n_items = t->n_items, n_req = 0;
    pare_zeroshot_result r = {0};
    r.n = n_items;
    r.first = malloc((n_items + 1) * sizeof *r.first);
    if (!r.first)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_items; i++) {
        r.first[i] = n_req;
        n_req += (size_t)t->items[i].n_choices;
    }
    r.first[n_items] = n_req;
    r.n_requests = n_req;
    r.ll = calloc(n_req, sizeof *r.ll);
    r.cont_tokens = calloc(n_req, sizeof *r.cont_tokens);
    r.pred = calloc(n_items, sizeof *r.pred);
    r.pred_norm = calloc(n_items, sizeof *r.pred_norm);
    pare_zeroshot_request *reqs = calloc(n_req, sizeof *reqs);
    size_t *order = malloc(n_req * sizeof *order);
    row_info *rows = malloc(n_req * sizeof *rows);
    pare_acts *a = NULL;
    int32_t *batch_ids = NULL;
    float *gathered = NULL;
    double *lse = NULL;
    if (!r.ll || !r.cont_tokens || !r.pred || !r.pred_norm || !reqs || !order || !rows) {
        rc = pare_fail(err, PARE_ENOMEM, "out of memory for %zu requests", n_req);
        goto out;
    }

    /* 1. tokenize, items in parallel; the first failing item (in file order) reports */
    double t0 = now_seconds();
    size_t bad_item = n_items;
    pare_error bad_err = {0};
#pragma omp parallel for num_threads(pare_threads()) schedule(dynamic, 16)
    for (size_t i = 0; i < n_items; i++) {
        pare_error e = {0};
        int32_t *ctx = NULL;
        size_t n_ctx = 0;
        pare_status st = encode_context(m, t, i, &ctx, &n_ctx, &e);
        for (int j = 0; st == PARE_OK && j < t->items[i].n_choices; j++)
            st = encode_choice(m, t, i, j, ctx, n_ctx, max_len, &reqs[r.first[i] + j], &e);
        free(ctx);
        if (st) {
#pragma omp critical(pare_zeroshot_err)
            if (i < bad_item) {
                bad_item = i;
                bad_err = e;
            }
        }
    }
    if (bad_item < n_items) {
        if (err)
            *err = bad_err;
        rc = bad_err.code ? bad_err.code : PARE_EINVAL;
        goto out;
    }
    r.tokenize_seconds = now_seconds() - t0;

    /* 2. share inputs: a request whose input is a prefix of another's reads its logits from that row
     * (e.g. BoolQ's " no" from " yes" when " yes" is two tokens; choices with identical inputs) */
    for (size_t q = 0; q < n_req; q++) {
        order[q] = q;
        r.cont_tokens[q] = reqs[q].n_cont;
        r.truncated += (size_t)reqs[q].truncated;
    }
    qsort_r(order, n_req, sizeof *order, cmp_lex, reqs);
    size_t n_rows = 0;
    for (size_t q = 0; q < n_req;) {
        size_t e = q; /* the chain q .. e, each a prefix of the next */
        while (e + 1 < n_req && is_prefix(&reqs[order[e]], &reqs[order[e + 1]]))
            e++;
        row_info *ri = &rows[n_rows++];
        ri->first = q;
        ri->n_req = e - q + 1;
        ri->len = reqs[order[e]].n_inp;
        ri->from = ri->len;
        for (size_t k = q; k <= e; k++) {
            const pare_zeroshot_request *x = &reqs[order[k]];
            if (x->n_inp - x->n_cont < ri->from)
                ri->from = x->n_inp - x->n_cont;
        }
        r.tokens += (size_t)ri->len;
        q = e + 1;
    }
    r.sequences = n_rows;
    qsort(rows, n_rows, sizeof *rows, cmp_row_len); /* longest first: batches of similar lengths */

    /* 3. plan batches: B rows of the batch's longest length T, B * T <= batch_tokens */
    size_t padded_total = 0;
    for (size_t s = 0; s < n_rows;) {
        int T = rows[s].len, B = o->batch_tokens / T;
        B = B < 1 ? 1 : B;
        size_t nb = n_rows - s < (size_t)B ? n_rows - s : (size_t)B;
        padded_total += nb * (size_t)T;
        s += nb;
    }

    /* 4. run */
    t0 = now_seconds();
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    size_t done_padded = 0;
    for (size_t s = 0; s < n_rows && rc == PARE_OK;) {
        int T = rows[s].len, B = o->batch_tokens / T;
        B = B < 1 ? 1 : B;
        if ((size_t)B > n_rows - s)
            B = (int)(n_rows - s);
        if (!a || B > a->B || T > a->T) {
            /* Lengths fall and batches widen as the sorted rows go by: grow the batch dimension with
             * some headroom so that activations are reallocated a few times, not at every batch. */
            int Balloc = B + B / 4 + 1;
            if ((size_t)Balloc > n_rows - s)
                Balloc = (int)(n_rows - s);
            pare_acts_free(a);
            a = NULL;
            free(batch_ids);
            free(gathered);
            free(lse);
            gathered = NULL;
            lse = NULL;
            if ((rc = pare_acts_alloc(m, Balloc, T, 0, &a, err)))
                break;
            size_t N = (size_t)Balloc * T;
            batch_ids = malloc(N * sizeof *batch_ids);
            gathered = malloc(N * C * sizeof *gathered);
            lse = malloc(N * sizeof *lse);
            if (!batch_ids || !gathered || !lse) {
                rc = pare_fail(err, PARE_ENOMEM, "out of memory for a batch of %d x %d", Balloc, T);
                break;
            }
        }
        for (int b = 0; b < B; b++) {
            const row_info *ri = &rows[s + b];
            const pare_zeroshot_request *x = &reqs[order[ri->first + ri->n_req - 1]];
            int32_t *dst = batch_ids + (size_t)b * T;
            memcpy(dst, x->inp, (size_t)ri->len * sizeof *dst);
            /* right padding: with causal attention no real position sees it */
            for (int k = ri->len; k < T; k++)
                dst[k] = 0;
        }
        if ((rc = pare_embed_forward(m, a, batch_ids, B, T, err)))
            break;
        const float *x = a->emb;
        for (int l = 0; l < m->cfg.n_layers && rc == PARE_OK; l++) {
            if ((rc = pare_block_acquire(m, l, err)))
                break;
            x = pare_block_forward(m, l, a, x, B, T);
            pare_block_release(m, l);
        }
        if (rc)
            break;
        /* gather the hidden rows that predict continuation tokens; the head runs on those only */
        size_t R = 0;
        for (int b = 0; b < B; b++) {
            const row_info *ri = &rows[s + b];
            size_t from = (size_t)b * T + (size_t)ri->from, n = (size_t)(ri->len - ri->from);
            memcpy(gathered + R * C, x + from * C, n * C * sizeof *gathered);
            R += n;
        }
        pare_head_forward(m, a, gathered, 1, (int)R, PARE_LOGITS_ALL); /* R rows as one sequence: the head is per row */
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
        for (size_t g = 0; g < R; g++)
            lse[g] = pare_logits_lse(a->logits + g * V, V);
        size_t g0 = 0;
        for (int b = 0; b < B; b++) {
            const row_info *ri = &rows[s + b];
            for (size_t q = ri->first; q < ri->first + ri->n_req; q++) {
                size_t id = order[q];
                const pare_zeroshot_request *y = &reqs[id];
                /* position n_inp - n_cont + k of its own input (a prefix of the row's) predicts cont[k];
                 * gathered row g0 is the row's position from */
                size_t gb = g0 + (size_t)(y->n_inp - y->n_cont - ri->from);
                double ll = 0;
                for (int k = 0; k < y->n_cont; k++)
                    ll += (double)a->logits[(gb + k) * V + y->cont[k]] - lse[gb + k];
                r.ll[id] = ll;
            }
            g0 += (size_t)(ri->len - ri->from);
        }
        r.forwards++;
        r.padded_tokens += (size_t)B * T;
        done_padded += (size_t)B * T;
        s += (size_t)B;
        char detail[128];
        snprintf(detail, sizeof detail, "%zu/%zu sequences", s, n_rows);
        rc = pare_report(progress, "score", (double)done_padded / (double)padded_total, detail, err);
    }
    r.forward_seconds = now_seconds() - t0;
    if (rc)
        goto out;

    /* 5. decisions and metrics; a NaN log-likelihood compares false with everything, and would pick
     * choice 0 silently (an accuracy of 1/choices reported as a result) */
    for (size_t i = 0; i < n_items; i++)
        for (int j = 0; j < t->items[i].n_choices; j++)
            if (!isfinite(r.ll[r.first[i] + j])) {
                rc = pare_fail(err, PARE_EFORMAT,
                               "%s: non-finite log-likelihood on %s (item %zu, line %d, choice %d): the model's logits "
                               "hold NaN or infinity (check its weights and config)",
                               m->path, t->path, i + 1, t->items[i].line, j + 1);
                goto out;
            }
    int *hit = malloc(n_items * sizeof *hit), *hit_norm = malloc(n_items * sizeof *hit_norm);
    if (!hit || !hit_norm) {
        free(hit);
        free(hit_norm);
        rc = pare_fail(err, PARE_ENOMEM, "out of memory");
        goto out;
    }
    double sa = 0, sn = 0;
    for (size_t i = 0; i < n_items; i++) {
        const pare_task_item *it = &t->items[i];
        const double *ll = r.ll + r.first[i];
        int best = 0, best_norm = 0;
        double bn = -INFINITY;
        for (int j = 0; j < it->n_choices; j++) {
            size_t chars = pare_utf8_chars(it->choices[j]);
            double v = ll[j] / (double)(chars ? chars : 1);
            if (ll[j] > ll[best])
                best = j;
            if (j == 0 || v > bn) {
                bn = v;
                best_norm = j;
            }
        }
        r.pred[i] = best;
        r.pred_norm[i] = best_norm;
        hit[i] = best == it->gold;
        hit_norm[i] = best_norm == it->gold;
        sa += hit[i];
        sn += hit_norm[i];
    }
    r.acc = sa / (double)n_items;
    r.acc_norm = sn / (double)n_items;
    r.acc_stderr = stderr_of_mean(hit, n_items, r.acc);
    r.acc_norm_stderr = stderr_of_mean(hit_norm, n_items, r.acc_norm);
    free(hit);
    free(hit_norm);

out:
    if (reqs)
        for (size_t q = 0; q < n_req; q++)
            pare_zeroshot_request_free(&reqs[q]);
    free(reqs);
    free(order);
    free(rows);
    pare_acts_free(a);
    free(batch_ids);
    free(gathered);
    free(lse);
    if (rc) {
        pare_zeroshot_result_free(&r);
        return rc;
    }
    *res = r;
    return PARE_OK;
}

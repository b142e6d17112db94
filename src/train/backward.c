/* Backward pass: the gradient of the mean cross-entropy with respect to every parameter, swept from
 * the logits back to the embeddings over the activations pare_forward kept. Each forward op has its
 * *_backward here; matrix products (linear layers, attention) go through sgemm, the rest are row loops. */
#include "backward.h"
#include "core/memcheck.h"
#include "core/model_pare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"

/* ---- the gradient slab and the parameter table ---- */

/* Walks the model's trainable tensors in one fixed order, giving each a gradient tensor at the next
 * free place of the slab. With g == NULL it only counts; with check set it compares against the
 * table already built (the model must not have changed since). */
typedef struct {
    const pare_model *m;
    pare_grads *g;
    int check;
    int mismatch;
    size_t floats;     /* gradient floats handed out so far */
    int n;             /* table entries so far */
    size_t max_masked; /* largest masked out*in, for the dense-gradient temporary */
    int max_rank;
    /* naming pass only: the checkpoint names of the embeddings and norms (pare_model_named_params,
       the loader's and exporter's list), searched from just after the last one found */
    const pare_param_ref *refs;
    int n_refs, next_ref;
} layout;

static float *take(layout *L, const char *name, const char *suffix, float *param, int rows, int cols, int decay,
                   const uint8_t *mask)
{
    size_t n = (size_t)rows * cols;
    float *grad = L->g ? L->g->slab + L->floats : NULL;
    if (L->g && L->check) {
        const pare_param *e = L->n < L->g->n_params ? &L->g->params[L->n] : NULL;
        if (!e || e->param != param || e->n != n || e->mask != mask)
            L->mismatch = 1;
    } else if (L->g) {
        pare_param *e = &L->g->params[L->n];
        snprintf(e->name, sizeof e->name, "%.100s%s", name, suffix);
        e->param = param;
        e->grad = grad;
        e->grad_dense = NULL;
        e->mask = mask;
        e->n = n;
        e->rows = rows;
        e->cols = cols;
        e->decay = decay;
    }
    L->n++;
    L->floats += n;
    return grad;
}

/* The checkpoint name of a dense tensor, from the model's named-parameter list ("" when not naming). */
static const char *ref_name(layout *L, const float *param)
{
    for (int i = 0; i < L->n_refs; i++) {
        int j = (L->next_ref + i) % L->n_refs;
        if (L->refs[j].p == param) {
            L->next_ref = j + 1;
            return L->refs[j].name;
        }
    }
    return "";
}

/* A norm weight or bias [n] (no weight decay), or NULL when the model has none. */
static float *take_vector(layout *L, float *param, int n)
{
    return param ? take(L, ref_name(L, param), "", param, n, 1, 0, NULL) : NULL;
}

static void take_linear(layout *L, const pare_linear *l, pare_linear_grad *gl)
{
    pare_linear_grad tmp;
    if (!gl)
        gl = &tmp;
    memset(gl, 0, sizeof *gl);
    if (l->kind == PARE_LIN_FACTORED) {
        gl->A = take(L, l->name, ".A", l->A, l->out, l->rank, 1, NULL);
        gl->B = take(L, l->name, ".B", l->B, l->rank, l->in, 1, NULL);
        L->max_rank = l->rank > L->max_rank ? l->rank : L->max_rank;
    } else {
        const uint8_t *mask = l->kind == PARE_LIN_MASKED ? l->mask : NULL;
        gl->w = take(L, l->name, ".weight", l->w, l->out, l->in, 1, mask);
        if (mask && (size_t)l->out * l->in > L->max_masked)
            L->max_masked = (size_t)l->out * l->in;
    }
    if (l->b)
        gl->b = take(L, l->name, ".bias", l->b, l->out, 1, 0, NULL);
}

/* The attention (ffn 0) or FFN (ffn 1) linears of b, in kind order: HF's order, the norm between. */
static void take_block_linears(layout *L, const pare_block *b, pare_block_grads *gb, int ffn)
{
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (pare_lin_kinds[k].ffn == ffn && b->lin[k].out)
            take_linear(L, &b->lin[k], gb ? &gb->lin[k] : NULL);
}

/* Per block: norm1, the attention linears, q/k norms, the post-attention norm, norm2, the FFN
 * linears, the post-FFN norm (each only where the model has it). */
static void walk(layout *L)
{
    const pare_model *m = L->m;
    const pare_config *c = &m->cfg;
    pare_grads *g = L->check ? NULL : L->g;
    int C = c->dim, hd = c->head_dim;
    float *p = take(L, ref_name(L, m->tok_emb), "", m->tok_emb, c->vocab_size, C, 1, NULL);
    if (g)
        g->tok_emb = p;
    if (m->pos_emb) {
        p = take(L, ref_name(L, m->pos_emb), "", m->pos_emb, c->max_pos, C, 1, NULL);
        if (g)
            g->pos_emb = p;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const pare_block *b = &m->blocks[l];
        pare_block_grads tmp, *gb = g ? &g->blocks[l] : &tmp;
        gb->norm1_w = take_vector(L, b->norm1_w, C);
        gb->norm1_b = take_vector(L, b->norm1_b, C);
        take_block_linears(L, b, g ? gb : NULL, 0);
        gb->q_norm_w = take_vector(L, b->q_norm_w, hd);
        gb->k_norm_w = take_vector(L, b->k_norm_w, hd);
        gb->post_attn_norm_w = take_vector(L, b->post_attn_norm_w, C);
        gb->norm2_w = take_vector(L, b->norm2_w, C);
        gb->norm2_b = take_vector(L, b->norm2_b, C);
        take_block_linears(L, b, g ? gb : NULL, 1);
        gb->post_ffn_norm_w = take_vector(L, b->post_ffn_norm_w, C);
    }
    p = take_vector(L, m->final_norm_w, C);
    if (g)
        g->final_norm_w = p;
    p = take_vector(L, m->final_norm_b, C);
    if (g)
        g->final_norm_b = p;
    if (c->tied_head) {
        if (g) {
            memset(&g->head, 0, sizeof g->head);
            g->head.w = g->tok_emb; /* the head's dW lands on the embedding it shares */
        }
    } else {
        take_linear(L, &m->head, g ? &g->head : NULL);
    }
}

/* The masked linears, for handing out their dense gradients after the parameter gradients; *floats
 * (may be NULL) gets the sum of their sizes. */
static int masked_linears(const pare_model *m, pare_grads *g, const pare_linear **lin, pare_linear_grad **gl,
                          size_t *floats)
{
    int n = 0;
    if (floats)
        *floats = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pare_block *b = &m->blocks[l];
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            const pare_linear *ln = &b->lin[k];
            if (!ln->out || ln->kind != PARE_LIN_MASKED)
                continue;
            if (lin)
                lin[n] = ln;
            if (gl)
                gl[n] = g ? &g->blocks[l].lin[k] : NULL;
            if (floats)
                *floats += (size_t)ln->out * ln->in;
            n++;
        }
    }
    return n;
}

typedef struct {
    size_t params, dense, work, total;
    int n_params, max_rank;
    size_t max_masked;
} sizes;

static void measure(const pare_model *m, int B, int T, int flags, sizes *s)
{
    layout L = {.m = m};
    walk(&L);
    const pare_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = (size_t)c->dim, F = (size_t)c->ffn_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim;
    s->params = L.floats;
    s->n_params = L.n;
    s->max_rank = L.max_rank;
    s->max_masked = L.max_masked;
    s->dense = 0;
    if (flags & PARE_GRADS_DENSE_MASKED) {
        masked_linears(m, NULL, NULL, NULL, &s->dense);
        s->dense += L.max_masked; /* d_wtmp */
    }
    s->work = 2 * N * C + 2 * N * qd + 2 * N * kvd + (size_t)B * c->n_heads * T * T + 3 * N * F +
              2 * N * (size_t)L.max_rank;
    s->total = s->params + s->dense + s->work;
}

size_t pare_grads_bytes(const pare_model *m, int B, int T, int flags)
{
    sizes s;
    measure(m, B, T, flags, &s);
    return s.total * sizeof(float) + (size_t)s.n_params * sizeof(pare_param) +
           (size_t)m->cfg.n_layers * sizeof(pare_block_grads);
}

pare_status pare_grads_alloc(const pare_model *m, int B, int T, int flags, pare_grads **out, pare_error *err)
{
    *out = NULL;
    if (pare_model_streamed(m))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: training needs every weight and its gradient in memory, and this model is streamed (its "
                         "fp32 weights do not fit the memory limit); give more memory (--memory-limit) or --stream off",
                         m->path);
    const pare_config *c = &m->cfg;
    if (B <= 0 || T <= 0)
        return pare_fail(err, PARE_EINVAL, "gradients for batch %d x length %d: both must be positive", B, T);
    if (T > c->max_pos)
        return pare_fail(err, PARE_EINVAL, "sequence length %d exceeds the model's %d positions", T, c->max_pos);
    sizes s;
    measure(m, B, T, flags, &s);
    char what[96];
    snprintf(what, sizeof what, "gradients and backward buffers for batch %d x %d", B, T);
    pare_status mrc = pare_memory_check((uint64_t)s.total * sizeof(float), what, err);
    if (mrc)
        return mrc;
    pare_grads *g = calloc(1, sizeof *g);
    if (g) {
        g->blocks = calloc((size_t)c->n_layers, sizeof *g->blocks);
        g->params = calloc((size_t)s.n_params, sizeof *g->params);
        g->slab = malloc(s.total * sizeof(float));
    }
    if (!g || !g->blocks || !g->params || !g->slab) {
        pare_grads_free(g);
        return pare_fail(err, PARE_ENOMEM, "cannot allocate %.1f MiB of gradients for batch %d x %d",
                         (double)pare_grads_bytes(m, B, T, flags) / (1 << 20), B, T);
    }
    g->B = B;
    g->T = T;
    g->flags = flags;
    g->loss_scale = 1.0;
    g->model = m;
    g->n_params = s.n_params;
    g->param_floats = s.params;
    g->slab_floats = s.total;
    int n_refs = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)n_refs * sizeof *refs);
    if (!refs) {
        pare_grads_free(g);
        return pare_fail(err, PARE_ENOMEM, "out of memory naming the gradients");
    }
    pare_model_named_params(m, refs);
    layout L = {.m = m, .g = g, .refs = refs, .n_refs = n_refs};
    walk(&L);
    free(refs);
    float *p = g->slab + s.params;
    if (flags & PARE_GRADS_DENSE_MASKED) {
        int nm = masked_linears(m, NULL, NULL, NULL, NULL);
        const pare_linear **ls = malloc(((size_t)nm + 1) * sizeof *ls);
        pare_linear_grad **gls = malloc(((size_t)nm + 1) * sizeof *gls);
        if (!ls || !gls) {
            free(ls);
            free(gls);
            pare_grads_free(g);
            return pare_fail(err, PARE_ENOMEM, "out of memory laying out masked-layer gradients");
        }
        masked_linears(m, g, ls, gls, NULL);
        for (int i = 0; i < nm; i++) {
            gls[i]->w_dense = p;
            /* the table entry of this weight points at the same dense gradient */
            for (int e = 0; e < g->n_params; e++)
                if (g->params[e].grad == gls[i]->w)
                    g->params[e].grad_dense = p;
            p += (size_t)ls[i]->out * ls[i]->in;
        }
        g->d_wtmp = s.max_masked ? p : NULL;
        p += s.max_masked;
        free(ls);
        free(gls);
    }
    size_t N = (size_t)B * T, C = (size_t)c->dim, F = (size_t)c->ffn_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim;
#define TAKE(dst, n) ((dst) = p, p += (n))
    TAKE(g->d_res, N * C);
    TAKE(g->d_ln, N * C);
    TAKE(g->d_q, N * qd);
    TAKE(g->d_k, N * kvd);
    TAKE(g->d_v, N * kvd);
    TAKE(g->d_atty, N * qd);
    TAKE(g->d_att, (size_t)B * c->n_heads * T * T);
    TAKE(g->d_fc1, N * F);
    TAKE(g->d_fc2, N * F);
    TAKE(g->d_hmid, N * F);
    TAKE(g->thin, N * (size_t)s.max_rank);
    TAKE(g->d_thin, N * (size_t)s.max_rank);
#undef TAKE
    pare_grads_zero(g);
    *out = g;
    return PARE_OK;
}

void pare_grads_free(pare_grads *g)
{
    if (!g)
        return;
    free(g->slab);
    free(g->blocks);
    free(g->params);
    free(g);
}

void pare_grads_zero(pare_grads *g)
{
    memset(g->slab, 0, g->param_floats * sizeof(float));
    for (int e = 0; e < g->n_params; e++)
        if (g->params[e].grad_dense)
            memset(g->params[e].grad_dense, 0, g->params[e].n * sizeof(float));
}

pare_param *pare_grads_find(pare_grads *g, const char *name)
{
    for (int e = 0; e < g->n_params; e++)
        if (strcmp(g->params[e].name, name) == 0)
            return &g->params[e];
    return NULL;
}

/* ---- loss ---- */

void pare_shift_targets(const int32_t *ids, int B, int T, int32_t *targets)
{
    for (int b = 0; b < B; b++) {
        for (int t = 0; t + 1 < T; t++)
            targets[(size_t)b * T + t] = ids[(size_t)b * T + t + 1];
        targets[(size_t)b * T + T - 1] = -1;
    }
}

size_t pare_count_targets(const int32_t *targets, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += targets[i] >= 0;
    return k;
}

static pare_status check_targets(const pare_model *m, const int32_t *targets, size_t n, size_t *valid, pare_error *err)
{
    int V = m->cfg.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (targets[i] >= V)
            return pare_fail(err, PARE_EINVAL, "loss: target %d at position %zu is outside the vocabulary (0..%d)",
                             targets[i], i, V - 1);
    *valid = pare_count_targets(targets, n);
    if (*valid == 0)
        return pare_fail(err, PARE_EINVAL, "loss: all %zu targets are ignored (negative); nothing to score", n);
    return PARE_OK;
}

pare_status pare_loss_forward(const pare_model *m, const pare_acts *a, const int32_t *targets, int B, int T,
                              double *loss, size_t *n_targets, pare_error *err)
{
    if (B <= 0 || T <= 0 || B > a->B || T > a->T)
        return pare_fail(err, PARE_EINVAL, "loss: batch %d x %d exceeds the activations' %d x %d", B, T, a->B, a->T);
    int N = B * T, V = m->cfg.vocab_size;
    size_t valid = 0;
    pare_status rc = check_targets(m, targets, (size_t)N, &valid, err);
    if (rc)
        return rc;
    double nll = 0;
#pragma omp parallel for num_threads(pare_threads()) schedule(static) reduction(+ : nll)
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0)
            continue;
        const float *row = a->logits + (size_t)i * V;
        float mx = row[0];
        for (int j = 1; j < V; j++)
            mx = row[j] > mx ? row[j] : mx;
        double s = 0;
        for (int j = 0; j < V; j++)
            s += exp((double)row[j] - mx);
        nll += (double)mx + log(s) - row[targets[i]];
    }
    *loss = nll / (double)valid;
    if (n_targets)
        *n_targets = valid;
    return PARE_OK;
}

/* dlogits[N, V] = scale * (softmax(logits) - onehot(target)) in place; ignored rows become zero. */
static void crossentropy_backward(float *logits, const int32_t *targets, int N, int V, float scale)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < N; i++) {
        float *row = logits + (size_t)i * V;
        if (targets[i] < 0) {
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        float mx = row[0];
        for (int j = 1; j < V; j++)
            mx = row[j] > mx ? row[j] : mx;
        double s = 0;
        for (int j = 0; j < V; j++) {
            row[j] = expf(row[j] - mx);
            s += row[j];
        }
        float k = (float)(scale / s);
        for (int j = 0; j < V; j++)
            row[j] *= k;
        row[targets[i]] -= scale;
    }
}

/* ---- linear layers ---- */

/* db[out] += sum over rows of dy[N, out]. */
static void bias_backward(float *db, const float *dy, int N, int out)
{
    for (int i = 0; i < N; i++) {
        const float *r = dy + (size_t)i * out;
        for (int j = 0; j < out; j++)
            db[j] += r[j];
    }
}

void pare_linear_backward(const pare_linear *l, pare_linear_grad *gl, const float *x, const float *dy, int N, float *dx,
                          int accumulate_dx, float *thin, float *d_thin, float *wtmp)
{
    float bx = accumulate_dx ? 1.0f : 0.0f;
    if (l->b && gl->b)
        bias_backward(gl->b, dy, N, l->out);
    if (l->kind == PARE_LIN_FACTORED) {
        int k = l->rank;
        /* y = t A^T with t[N, k] = x B^T: recompute t rather than keep it from the forward */
        pare_sgemm(CblasNoTrans, CblasTrans, N, k, l->in, 1.0f, x, l->in, l->B, l->in, 0.0f, thin, k);
        /* dA[out, k] += dy^T t */
        pare_sgemm(CblasTrans, CblasNoTrans, l->out, k, N, 1.0f, dy, l->out, thin, k, 1.0f, gl->A, k);
        /* dt[N, k] = dy A */
        pare_sgemm(CblasNoTrans, CblasNoTrans, N, k, l->out, 1.0f, dy, l->out, l->A, k, 0.0f, d_thin, k);
        /* dB[k, in] += dt^T x */
        pare_sgemm(CblasTrans, CblasNoTrans, k, l->in, N, 1.0f, d_thin, k, x, l->in, 1.0f, gl->B, l->in);
        /* dx[N, in] = dt B */
        if (dx)
            pare_sgemm(CblasNoTrans, CblasNoTrans, N, l->in, k, 1.0f, d_thin, k, l->B, l->in, bx, dx, l->in);
        return;
    }
    size_t n = (size_t)l->out * l->in;
    if (l->kind == PARE_LIN_MASKED && gl->w_dense && wtmp) {
        /* dW of the dense weight [out, in] = dy^T x, kept whole for movement scores; the effective
         * gradient is its masked copy (masked-out weights are fixed at zero) */
        pare_sgemm(CblasTrans, CblasNoTrans, l->out, l->in, N, 1.0f, dy, l->out, x, l->in, 0.0f, wtmp, l->in);
        for (size_t i = 0; i < n; i++) {
            gl->w_dense[i] += wtmp[i];
            gl->w[i] += l->mask[i] ? wtmp[i] : 0.0f;
        }
    } else {
        /* dW[out, in] += dy^T x */
        pare_sgemm(CblasTrans, CblasNoTrans, l->out, l->in, N, 1.0f, dy, l->out, x, l->in, 1.0f, gl->w, l->in);
        /* masking the accumulated sum is the same as adding the masked increment: the earlier sum
         * is already zero where the mask is */
        if (l->kind == PARE_LIN_MASKED)
            for (size_t i = 0; i < n; i++)
                if (!l->mask[i])
                    gl->w[i] = 0.0f;
    }
    /* dx[N, in] = dy W (masked-out weights are stored as zeros, so this is the effective W) */
    if (dx)
        pare_sgemm(CblasNoTrans, CblasNoTrans, N, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, bx, dx, l->in);
}

/* ---- norms ---- */

/* RMSNorm y = x * r * w' with r = 1/sqrt(mean(x^2) + eps) and w' = w, or 1 + w for Gemma's norms
 * (plus_one): dx = r * (dy*w' - xn * mean(dy*w' * xn)) with xn = x * r, added to dx[N, C] (written
 * when !accumulate); dw[C] += sum dy * xn. dx may be dy itself (dw is summed first, and each row's
 * dy is read before it is overwritten): the per-head q/k norms run in place. */
static void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                             int N, int C, int plus_one, int accumulate)
{
    float one = plus_one ? 1.0f : 0.0f, keep = accumulate ? 1.0f : 0.0f;
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
        float r = rstd[i];
        for (int j = 0; j < C; j++)
            dw[j] += gi[j] * xi[j] * r;
    }
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
        float r = rstd[i];
        float dot = 0;
        for (int j = 0; j < C; j++)
            dot += gi[j] * (w[j] + one) * xi[j] * r;
        dot /= (float)C;
        float *o = dx + (size_t)i * C;
        for (int j = 0; j < C; j++)
            o[j] = keep * o[j] + r * (gi[j] * (w[j] + one) - xi[j] * r * dot);
    }
}

/* LayerNorm y = xh * w + b with xh = (x - mean) * r:
 * dx = r * (g - mean(g) - xh * mean(g * xh)) with g = dy * w, added to dx[N, C]; dw += sum dy * xh,
 * db += sum dy. */
static void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                               const float *rstd, const float *w, int N, int C)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
        float mu = mean[i], r = rstd[i];
        float gm = 0, gxm = 0;
        for (int j = 0; j < C; j++) {
            float g = gi[j] * w[j];
            gm += g;
            gxm += g * (xi[j] - mu) * r;
        }
        gm /= (float)C;
        gxm /= (float)C;
        float *o = dx + (size_t)i * C;
        for (int j = 0; j < C; j++)
            o[j] += r * (gi[j] * w[j] - gm - (xi[j] - mu) * r * gxm);
    }
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
        float mu = mean[i], r = rstd[i];
        for (int j = 0; j < C; j++) {
            dw[j] += gi[j] * (xi[j] - mu) * r;
            db[j] += gi[j];
        }
    }
}

static void norm_backward(const pare_model *m, float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *mean, const float *rstd, const float *w, int N)
{
    if (m->cfg.arch == PARE_ARCH_GPT2)
        layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, N, m->cfg.dim);
    else
        rmsnorm_backward(dx, dw, dy, x, rstd, w, N, m->cfg.dim, pare_config_family(&m->cfg)->gemma, 1);
}

/* ---- attention ---- */

/* The transpose of the forward's rotation: (d1, d2) -> (d1 c + d2 s, d2 c - d1 s) on pairs (i, i + hd/2),
 * with the layer's table cos_t/sin_t [max_pos, hd/2]. */
static void rope_backward(const pare_config *c, const float *cos_t, const float *sin_t, float *dx, int heads, int B,
                          int T)
{
    int hd = c->head_dim, half = hd / 2, width = heads * hd;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + (size_t)t * half, *sn = sin_t + (size_t)t * half;
            float *row = dx + ((size_t)b * T + t) * width;
            for (int h = 0; h < heads; h++) {
                float *v = row + h * hd;
                for (int i = 0; i < half; i++) {
                    float d1 = v[i], d2 = v[i + half];
                    v[i] = d1 * cs[i] + d2 * sn[i];
                    v[i + half] = d2 * cs[i] - d1 * sn[i];
                }
            }
        }
}

/* Causal attention backward per (batch, KV head); the query heads that share a KV head (GQA) run in
 * turn so their dK, dV sums need no locking. With P the probabilities and dY the output gradient:
 * dV += P^T dY, dP = dY V^T, dS = P * (dP - rowsum(dP * P)), dQ = scale dS K, dK += scale dS^T Q.
 * P is exactly zero above the diagonal and, in a sliding-window layer, left of the window, so dS is
 * too: neither mask needs extra care. scale is the forward's: query_pre_attn_scalar^-0.5 (Gemma) or
 * head_dim^-0.5. */
static void attention_backward(const pare_config *c, const pare_layer_acts *la, pare_grads *g, int B, int T)
{
    int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, qd = H * hd, kvd = KV * hd, rep = H / KV;
    float scale = pare_attention_scale(c);
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int bk = 0; bk < B * KV; bk++) {
        int b = bk / KV, kh = bk % KV;
        const float *k = la->k + (size_t)b * T * kvd + (size_t)kh * hd; /* [T, hd] stride kvd */
        const float *v = la->v + (size_t)b * T * kvd + (size_t)kh * hd;
        float *dk = g->d_k + (size_t)b * T * kvd + (size_t)kh * hd;
        float *dv = g->d_v + (size_t)b * T * kvd + (size_t)kh * hd;
        for (int r = 0; r < rep; r++) {
            int h = kh * rep + r;
            float beta = r ? 1.0f : 0.0f;
            const float *q = la->q + (size_t)b * T * qd + (size_t)h * hd;      /* [T, hd] stride qd */
            const float *dy = g->d_atty + (size_t)b * T * qd + (size_t)h * hd; /* [T, hd] stride qd */
            float *dq = g->d_q + (size_t)b * T * qd + (size_t)h * hd;
            const float *P = la->att + ((size_t)b * H + h) * T * T; /* [T, T] */
            float *dS = g->d_att + ((size_t)b * H + h) * T * T;     /* [T, T] */
            /* dV[T, hd] (+)= P^T dY */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dy, qd, beta, dv, kvd);
            /* dP[T, T] = dY V^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, qd, v, kvd, 0.0f, dS, T);
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *d = dS + (size_t)i * T;
                float dot = 0;
                for (int j = 0; j <= i; j++)
                    dot += d[j] * p[j];
                for (int j = 0; j <= i; j++)
                    d[j] = p[j] * (d[j] - dot);
                memset(d + i + 1, 0, (size_t)(T - i - 1) * sizeof(float));
            }
            /* dQ[T, hd] = scale dS K */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS, T, k, kvd, 0.0f, dq, qd);
            /* dK[T, hd] (+)= scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T, q, qd, beta, dk, kvd);
        }
    }
}

/* ---- MLP activations ---- */

/* h = silu(g) * u: dg = dh * u * s * (1 + g * (1 - s)) with s = sigmoid(g); du = dh * silu(g). */
static void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] = dh[i] * g[i] * s;
    }
}

/* GPT-2's MLP activation: dx = dh * gelu'(x). */
static void gelu_backward(float *dx, const float *dh, const float *x, size_t n)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d;
        pare_gelu_tanh(x[i], &d);
        dx[i] = dh[i] * d;
    }
}

/* Gemma's gate h = gelu_tanh(g) * u: dg = dh * u * gelu'(g); du = dh * gelu_tanh(g). */
static void gelu_gate_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d, h = pare_gelu_tanh(g[i], &d);
        dg[i] = dh[i] * u[i] * d;
        du[i] = dh[i] * h;
    }
}

/* ---- blocks, head, embeddings ---- */

/* The families whose forward terms block_backward differentiates (the flags of pare_families: biases,
 * sliding windows, q/k norms, Gemma's terms). A new family may add a term the backward does not know,
 * which would give a silently wrong gradient: check it here (and in tests/test_backward.c), then count it. */
_Static_assert(PARE_FAMILIES == 7, "a new model family: make block_backward differentiate its terms");

/* On entry g->d_res [N, C] is dL/d(block output); on return dL/d(block input x [N, C]).
 * F' = up.out is this block's FFN width (channel pruning may narrow it below F). */
static void block_backward(const pare_model *m, int l, pare_acts *a, pare_grads *g, const float *x, int B, int T)
{
    const pare_config *c = &m->cfg;
    const pare_block *blk = &m->blocks[l];
    pare_block_grads *gb = &g->blocks[l];
    const pare_layer_acts *la = pare_acts_layer(a, l);
    int N = B * T, C = c->dim, gpt2 = c->arch == PARE_ARCH_GPT2, gemma = pare_config_family(c)->gemma;
    size_t NF = (size_t)N * blk->up.out;
    float *th = g->thin, *dth = g->d_thin, *wt = g->d_wtmp;
    /* MLP: res2 = res1 + down(act(ln2)), Gemma: res1 + post_ffn_norm(down(act(ln2))) */
    const float *d_down = g->d_res; /* [N, C] dL/d(down's output) */
    if (gemma) {
        /* d_ln [N, C] = post_ffn_norm^T d_res (d_ln is free until gate's backward writes it) */
        rmsnorm_backward(g->d_ln, gb->post_ffn_norm_w, g->d_res, la->mlp_out, la->mlp_out_rstd, blk->post_ffn_norm_w, N,
                         C, 1, 0);
        d_down = g->d_ln;
    }
    /* d_hmid [N, F'] = d_down [N, C] W_down; dW_down [C, F'] += d_down^T hmid */
    pare_linear_backward(&blk->down, &gb->down, la->hmid, d_down, N, g->d_hmid, 0, th, dth, wt);
    if (!gpt2) {
        /* d_fc1, d_fc2 [N, F'] from d_hmid through act(gate) * up: SiLU, Gemma GELU-tanh */
        if (gemma)
            gelu_gate_backward(g->d_fc1, g->d_fc2, g->d_hmid, la->fc1, la->fc2, NF);
        else
            swiglu_backward(g->d_fc1, g->d_fc2, g->d_hmid, la->fc1, la->fc2, NF);
        /* d_ln [N, C] = d_fc1 W_gate + d_fc2 W_up */
        pare_linear_backward(&blk->gate, &gb->gate, la->ln2, g->d_fc1, N, g->d_ln, 0, th, dth, wt);
        pare_linear_backward(&blk->up, &gb->up, la->ln2, g->d_fc2, N, g->d_ln, 1, th, dth, wt);
    } else {
        /* d_fc1 [N, F'] from d_hmid through gelu_new; d_ln [N, C] = d_fc1 W_fc */
        gelu_backward(g->d_fc1, g->d_hmid, la->fc1, NF);
        pare_linear_backward(&blk->up, &gb->up, la->ln2, g->d_fc1, N, g->d_ln, 0, th, dth, wt);
    }
    /* d_res [N, C] += norm2^T d_ln: the residual path's gradient plus the norm's; now dL/d(res1) */
    norm_backward(m, g->d_res, gb->norm2_w, gb->norm2_b, g->d_ln, la->res1, la->ln2_mean, la->ln2_rstd, blk->norm2_w, N);
    /* attention: res1 = x + o(attn(q, k, v)), Gemma: x + post_attn_norm(o(...)) */
    const float *d_o = g->d_res; /* [N, C] dL/d(o's output) */
    if (gemma) {
        rmsnorm_backward(g->d_ln, gb->post_attn_norm_w, g->d_res, la->attn_out, la->attn_out_rstd,
                         blk->post_attn_norm_w, N, C, 1, 0);
        d_o = g->d_ln;
    }
    /* d_atty [N, H*hd] = d_o W_o */
    pare_linear_backward(&blk->o, &gb->o, la->atty, d_o, N, g->d_atty, 0, th, dth, wt);
    /* d_q [N, H*hd], d_k, d_v [N, KV*hd] (after RoPE), via d_att [B, H, T, T] */
    attention_backward(c, la, g, B, T);
    if (!gpt2) {
        /* back through the rotation (the layer's own table): gradients of q and k before RoPE */
        const float *cs, *sn;
        pare_layer_rope(m, l, &cs, &sn);
        rope_backward(c, cs, sn, g->d_q, c->n_heads, B, T);
        rope_backward(c, cs, sn, g->d_k, c->n_kv_heads, B, T);
    }
    if (blk->q_norm_w) {
        /* back through the per-head norms, in place: gradients of the projections' outputs */
        rmsnorm_backward(g->d_q, gb->q_norm_w, g->d_q, la->q_pre, la->q_rstd, blk->q_norm_w, N * c->n_heads,
                         c->head_dim, gemma, 0);
        rmsnorm_backward(g->d_k, gb->k_norm_w, g->d_k, la->k_pre, la->k_rstd, blk->k_norm_w, N * c->n_kv_heads,
                         c->head_dim, gemma, 0);
    }
    /* d_ln [N, C] = d_q W_q + d_k W_k + d_v W_v */
    pare_linear_backward(&blk->q, &gb->q, la->ln1, g->d_q, N, g->d_ln, 0, th, dth, wt);
    pare_linear_backward(&blk->k, &gb->k, la->ln1, g->d_k, N, g->d_ln, 1, th, dth, wt);
    pare_linear_backward(&blk->v, &gb->v, la->ln1, g->d_v, N, g->d_ln, 1, th, dth, wt);
    /* d_res [N, C] += norm1^T d_ln: now dL/dx */
    norm_backward(m, g->d_res, gb->norm1_w, gb->norm1_b, g->d_ln, x, la->ln1_mean, la->ln1_rstd, blk->norm1_w, N);
}

/* Scatter-adds the input gradient d_res [N, C] into the rows of the token (and position) embeddings;
 * Gemma's embeddings were scaled by sqrt(C) (the forward's fp32 factor), so their gradient is too. */
static void embed_backward(const pare_model *m, pare_grads *g, const int32_t *ids, int B, int T)
{
    int N = B * T, C = m->cfg.dim;
    float scale = pare_embed_scale(&m->cfg);
    for (int i = 0; i < N; i++) {
        const float *d = g->d_res + (size_t)i * C;
        float *te = g->tok_emb + (size_t)ids[i] * C;
        for (int j = 0; j < C; j++)
            te[j] += d[j] * scale;
        if (g->pos_emb) {
            float *pe = g->pos_emb + (size_t)(i % T) * C;
            for (int j = 0; j < C; j++)
                pe[j] += d[j];
        }
    }
}

static pare_status backward_sweep(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, int B, int T);

/* The checks both entry points make before touching the logits or the gradients. */
static pare_status check_backward(const pare_model *m, const pare_acts *a, pare_grads *g, const int32_t *ids, int B,
                                  int T, pare_error *err)
{
    const pare_config *c = &m->cfg;
    if (g->model != m)
        return pare_fail(err, PARE_EINVAL, "backward: the gradients were allocated for another model");
    if (B <= 0 || T <= 0 || B > a->B || T > a->T || B > g->B || T > g->T)
        return pare_fail(err, PARE_EINVAL,
                         "backward: batch %d x %d exceeds the activations' %d x %d or the gradients' %d x %d", B, T,
                         a->B, a->T, g->B, g->T);
    if (!a->keep_all && c->n_layers > 1)
        return pare_fail(err, PARE_EINVAL,
                         "backward: the activations were allocated without keep_all; "
                         "allocate them with keep_all = 1 for training");
    layout L = {.m = m, .g = g, .check = 1};
    walk(&L);
    if (L.mismatch || L.n != g->n_params || L.floats != g->param_floats)
        return pare_fail(err, PARE_EINVAL,
                         "backward: the model's layers changed shape or storage after the "
                         "gradients were allocated; allocate them again after compressing");
    int N = B * T, V = c->vocab_size;
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return pare_fail(err, PARE_EINVAL, "backward: token id %d at position %d is outside the vocabulary (0..%d)",
                             ids[i], i, V - 1);
    return PARE_OK;
}

pare_status pare_backward(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, const int32_t *targets,
                          int B, int T, pare_error *err)
{
    pare_status rc = check_backward(m, a, g, ids, B, T, err);
    if (rc)
        return rc;
    int N = B * T, V = m->cfg.vocab_size;
    size_t valid = 0;
    rc = check_targets(m, targets, (size_t)N, &valid, err);
    if (rc)
        return rc;
    /* logits [N, V] -> dL/dlogits [N, V] in place */
    crossentropy_backward(a->logits, targets, N, V, (float)(g->loss_scale / (double)valid));
    return backward_sweep(m, a, g, ids, B, T);
}

pare_status pare_backward_logits(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, int B, int T,
                                 pare_error *err)
{
    pare_status rc = check_backward(m, a, g, ids, B, T, err);
    if (rc)
        return rc;
    return backward_sweep(m, a, g, ids, B, T);
}

/* From dL/dlogits in a->logits down to the embeddings, adding into g. */
static pare_status backward_sweep(const pare_model *m, pare_acts *a, pare_grads *g, const int32_t *ids, int B, int T)
{
    const pare_config *c = &m->cfg;
    int N = B * T;
    /* head, logits = lnf W^T: d_ln [N, C] = dlogits W; dW [V, C] += dlogits^T lnf (the embedding's when tied) */
    pare_linear_backward(&m->head, &g->head, a->lnf, a->logits, N, g->d_ln, 0, g->thin, g->d_thin, g->d_wtmp);
    /* final norm: d_res [N, C] = dL/d(last block output) */
    const float *x_last = c->n_layers ? pare_acts_layer(a, c->n_layers - 1)->res2 : a->emb;
    memset(g->d_res, 0, (size_t)N * c->dim * sizeof(float));
    norm_backward(m, g->d_res, g->final_norm_w, g->final_norm_b, g->d_ln, x_last, a->lnf_mean, a->lnf_rstd,
                  m->final_norm_w, N);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const float *x = l ? pare_acts_layer(a, l - 1)->res2 : a->emb; /* block input [N, C] */
        block_backward(m, l, a, g, x, B, T);
    }
    /* d_res [N, C] = dL/demb, scattered into the embedding tables */
    embed_backward(m, g, ids, B, T);
    return PARE_OK;
}

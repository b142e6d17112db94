/* Forward pass: embeddings, pre-norm decoder blocks (RMSNorm or LayerNorm; causal attention with
 * RoPE, GQA, optional sliding window and q/k norms; SwiGLU, GELU-tanh gated or gelu_new MLP; Gemma's
 * post-branch norms), final norm, LM head, for every family of pare_families. Matmuls go through sgemm; the rest
 * are row loops. */
#include "forward.h"
#include "memcheck.h"

#include <cblas.h>
#include "parallel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Floats of one layer's activations; the optional ones only where the family computes them. */
static size_t layer_floats(const pare_config *c, size_t N, size_t B, size_t T)
{
    const pare_family_info *f = pare_config_family(c);
    size_t C = (size_t)c->dim, F = (size_t)c->ffn_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t n = 4 * N * C + 6 * N + 2 * N * qd + 2 * N * kvd + B * c->n_heads * T * T + 3 * N * F;
    if (f->qk_norm)
        n += N * (qd + kvd) + N * (size_t)(c->n_heads + c->n_kv_heads);
    if (f->gemma)
        n += 2 * N * C + 2 * N;
    return n;
}

static size_t scratch_width(const pare_config *c)
{
    size_t w = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim;
    w = (size_t)c->ffn_dim > w ? (size_t)c->ffn_dim : w;
    return qd > w ? qd : w;
}

size_t pare_acts_bytes(const pare_model *m, int B, int T, int keep_all)
{
    const pare_config *c = &m->cfg;
    size_t N = (size_t)B * T;
    size_t per = layer_floats(c, N, (size_t)B, (size_t)T);
    size_t nl = keep_all ? (size_t)c->n_layers : 1;
    return (per * nl + 2 * N * c->dim + 2 * N + N * c->vocab_size + N * scratch_width(c)) * sizeof(float);
}

pare_status pare_acts_alloc(const pare_model *m, int B, int T, int keep_all, pare_acts **out, pare_error *err)
{
    *out = NULL;
    const pare_config *c = &m->cfg;
    if (B <= 0 || T <= 0)
        return pare_fail(err, PARE_EINVAL, "batch %d x length %d: both must be positive", B, T);
    if (T > c->max_pos)
        return pare_fail(err, PARE_EINVAL, "sequence length %d exceeds the model's %d positions", T, c->max_pos);
    pare_status src = pare_model_check_shapes(m, err); /* a shape the forward would read at the wrong stride */
    if (src)
        return src;
    size_t bytes = pare_acts_bytes(m, B, T, keep_all);
    char what[96];
    snprintf(what, sizeof what, "activations for batch %d x %d%s", B, T, keep_all ? " (every layer kept)" : "");
    pare_status mrc = pare_memory_check(bytes, what, err);
    if (mrc)
        return mrc;
    pare_acts *a = calloc(1, sizeof *a);
    size_t nl = keep_all ? (size_t)c->n_layers : 1;
    if (a)
        a->layers = calloc(nl, sizeof *a->layers);
    if (a && a->layers)
        a->slab = malloc(bytes);
    if (!a || !a->layers || !a->slab) {
        pare_acts_free(a);
        return pare_fail(err, PARE_ENOMEM, "cannot allocate %.1f MiB of activations for batch %d x %d",
                         (double)bytes / (1 << 20), B, T);
    }
    a->B = B;
    a->T = T;
    a->keep_all = keep_all;
    a->n_layer_acts = (int)nl;
    a->slab_floats = bytes / sizeof(float);
    size_t N = (size_t)B * T, C = (size_t)c->dim, F = (size_t)c->ffn_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim;
    float *p = a->slab;
#define TAKE(dst, n) ((dst) = p, p += (n))
    const pare_family_info *fam = pare_config_family(c);
    for (size_t l = 0; l < nl; l++) {
        pare_layer_acts *la = &a->layers[l];
        TAKE(la->ln1, N * C);
        TAKE(la->ln1_mean, N);
        TAKE(la->ln1_rstd, N);
        TAKE(la->q, N * qd);
        TAKE(la->k, N * kvd);
        if (fam->qk_norm) {
            TAKE(la->q_pre, N * qd);
            TAKE(la->q_rstd, N * (size_t)c->n_heads);
            TAKE(la->k_pre, N * kvd);
            TAKE(la->k_rstd, N * (size_t)c->n_kv_heads);
        }
        if (fam->gemma) {
            TAKE(la->attn_out, N * C);
            TAKE(la->attn_out_rstd, N);
            TAKE(la->mlp_out, N * C);
            TAKE(la->mlp_out_rstd, N);
        }
        TAKE(la->v, N * kvd);
        TAKE(la->att, (size_t)B * c->n_heads * T * T);
        TAKE(la->atty, N * qd);
        TAKE(la->res1, N * C);
        TAKE(la->ln2, N * C);
        TAKE(la->ln2_mean, N);
        TAKE(la->ln2_rstd, N);
        TAKE(la->fc1, N * F);
        TAKE(la->fc2, N * F);
        TAKE(la->hmid, N * F);
        TAKE(la->res2, N * C);
    }
    TAKE(a->emb, N * C);
    TAKE(a->lnf, N * C);
    TAKE(a->lnf_mean, N);
    TAKE(a->lnf_rstd, N);
    TAKE(a->logits, N * (size_t)c->vocab_size);
    TAKE(a->scratch, N * scratch_width(c));
#undef TAKE
    *out = a;
    return PARE_OK;
}

void pare_acts_free(pare_acts *a)
{
    if (!a)
        return;
    free(a->slab);
    free(a->layers);
    free(a);
}

pare_layer_acts *pare_acts_layer(pare_acts *a, int l) { return &a->layers[a->keep_all ? l : 0]; }

/* out[N, C] = RMSNorm(x) * w, or * (1 + w) for Gemma's norms (plus_one); rstd[N] kept for the backward
 * pass. Also serves per-head norms: N rows of C = hd. */
static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps,
                            int plus_one)
{
    float one = plus_one ? 1.0f : 0.0f;
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        double ss = 0;
        for (int j = 0; j < C; j++)
            ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        rstd[i] = r;
        float *o = out + (size_t)i * C;
        for (int j = 0; j < C; j++)
            o[j] = xi[j] * r * (w[j] + one);
    }
}

/* out[N, C] = LayerNorm(x) * w + b; mean and rstd kept for the backward pass. */
static void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                              int N, int C, float eps)
{
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        double s = 0;
        for (int j = 0; j < C; j++)
            s += xi[j];
        float mu = (float)(s / C);
        double v = 0;
        for (int j = 0; j < C; j++) {
            float d = xi[j] - mu;
            v += (double)d * d;
        }
        float r = 1.0f / sqrtf((float)(v / C) + eps);
        mean[i] = mu;
        rstd[i] = r;
        float *o = out + (size_t)i * C;
        for (int j = 0; j < C; j++)
            o[j] = (xi[j] - mu) * r * w[j] + b[j];
    }
}

static void norm_forward(const pare_model *m, float *out, float *mean, float *rstd, const float *x, const float *w,
                         const float *b, int N)
{
    if (m->cfg.arch == PARE_ARCH_GPT2)
        layernorm_forward(out, mean, rstd, x, w, b, N, m->cfg.dim, m->cfg.norm_eps);
    else
        rmsnorm_forward(out, rstd, x, w, N, m->cfg.dim, m->cfg.norm_eps, pare_config_family(&m->cfg)->gemma);
}

/* Rotates pairs (i, i + hd/2) of every head by the position's angles (HF rotate_half convention);
 * cos_t/sin_t [max_pos, hd/2] are the layer's table. */
static void rope_forward(const pare_config *c, const float *cos_t, const float *sin_t, float *x, int heads, int B, int T)
{
    int hd = c->head_dim, half = hd / 2, width = heads * hd;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + (size_t)t * half, *sn = sin_t + (size_t)t * half;
            float *row = x + ((size_t)b * T + t) * width;
            for (int h = 0; h < heads; h++) {
                float *v = row + h * hd;
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half];
                    v[i] = x1 * cs[i] - x2 * sn[i];
                    v[i + half] = x2 * cs[i] + x1 * sn[i];
                }
            }
        }
}

/* Causal attention per (batch, head): scores = q k^T * scale, softmax over the visible keys, atty = P v.
 * Key j is visible to query i iff j <= i and, with a sliding window W > 0, i - j < W (transformers'
 * sliding_window_overlay); the others get probability 0. Query head h reads key/value head h / (H / KV)
 * (grouped-query attention). */
float pare_attention_scale(const pare_config *c)
{
    /* transformers: head_dim**-0.5, Gemma: query_pre_attn_scalar**-0.5 (Python floats) */
    return c->query_pre_attn_scalar > 0 ? (float)pow(c->query_pre_attn_scalar, -0.5) : 1.0f / sqrtf((float)c->head_dim);
}

float pare_embed_scale(const pare_config *c)
{
    return pare_config_family(c)->gemma ? (float)sqrt((double)c->dim) : 1.0f;
}

int pare_layer_window(const pare_config *c, int l)
{
    return c->arch != PARE_ARCH_GPT2 && c->sliding_window > 0 && c->layer_sliding[l] ? c->sliding_window : 0;
}

void pare_layer_rope(const pare_model *m, int l, const float **cos_t, const float **sin_t)
{
    /* sliding layers of a model with a local RoPE base (Gemma-3) use that table */
    int local = m->cfg.arch != PARE_ARCH_GPT2 && m->cfg.layer_sliding[l] && m->rope_local_cos;
    *cos_t = local ? m->rope_local_cos : m->rope_cos;
    *sin_t = local ? m->rope_local_sin : m->rope_sin;
}

static void attention_forward(const pare_config *c, pare_layer_acts *la, int B, int T, int window)
{
    int H = c->n_heads, hd = c->head_dim, qd = H * hd, kvd = c->n_kv_heads * hd, rep = H / c->n_kv_heads;
    float scale = pare_attention_scale(c);
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q = la->q + (size_t)b * T * qd + (size_t)h * hd;
        const float *k = la->k + (size_t)b * T * kvd + (size_t)(h / rep) * hd;
        const float *v = la->v + (size_t)b * T * kvd + (size_t)(h / rep) * hd;
        float *s = la->att + ((size_t)b * H + h) * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, qd, k, kvd, 0.0f, s, T);
        for (int i = 0; i < T; i++) {
            float *row = s + (size_t)i * T;
            int j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; /* first visible key */
            float mx = row[j0];
            for (int j = j0 + 1; j <= i; j++)
                mx = row[j] > mx ? row[j] : mx;
            float sum = 0;
            for (int j = j0; j <= i; j++) {
                row[j] = expf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = j0; j <= i; j++)
                row[j] *= inv;
            memset(row, 0, (size_t)j0 * sizeof(float));
            memset(row + i + 1, 0, (size_t)(T - i - 1) * sizeof(float));
        }
        float *y = la->atty + (size_t)b * T * qd + (size_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, s, T, v, kvd, 0.0f, y, qd);
    }
}

static void add_rows(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

pare_status pare_embed_forward(const pare_model *m, pare_acts *a, const int32_t *ids, int B, int T, pare_error *err)
{
    const pare_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || B > a->B || T > a->T)
        return pare_fail(err, PARE_EINVAL, "forward: batch %d x %d exceeds the activations' %d x %d", B, T, a->B, a->T);
    if (T > c->max_pos)
        return pare_fail(err, PARE_EINVAL, "forward: sequence length %d exceeds the model's %d positions", T,
                         c->max_pos);
    int N = B * T, C = c->dim, V = c->vocab_size;
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return pare_fail(err, PARE_EINVAL, "forward: token id %d at position %d is outside the vocabulary (0..%d)",
                             ids[i], i, V - 1);
    float embed_scale = pare_embed_scale(c);
    int scaled = embed_scale != 1.0f;
    for (int i = 0; i < N; i++) {
        float *e = a->emb + (size_t)i * C;
        memcpy(e, m->tok_emb + (size_t)ids[i] * C, (size_t)C * sizeof(float));
        for (int j = 0; scaled && j < C; j++)
            e[j] *= embed_scale;
        if (m->pos_emb) {
            const float *pe = m->pos_emb + (size_t)(i % T) * C;
            for (int j = 0; j < C; j++)
                e[j] += pe[j];
        }
    }
    return PARE_OK;
}

/* Per-head RMSNorm of x [N, heads*hd] in place (q_norm / k_norm), keeping the input in pre. */
static void head_norm_forward(const pare_model *m, const float *w, float *x, float *pre, float *rstd, int N, int heads)
{
    const pare_config *c = &m->cfg;
    memcpy(pre, x, (size_t)N * heads * c->head_dim * sizeof(float));
    rmsnorm_forward(x, rstd, pre, w, N * heads, c->head_dim, c->norm_eps, pare_config_family(c)->gemma);
}

const float *pare_block_forward(const pare_model *m, int l, pare_acts *a, const float *x, int B, int T)
{
    const pare_config *c = &m->cfg;
    const pare_block *blk = &m->blocks[l];
    pare_layer_acts *la = pare_acts_layer(a, l);
    int N = B * T, C = c->dim, gpt2 = c->arch == PARE_ARCH_GPT2, gemma = pare_config_family(c)->gemma;
    norm_forward(m, la->ln1, la->ln1_mean, la->ln1_rstd, x, blk->norm1_w, blk->norm1_b, N);
    pare_linear_forward(&blk->q, la->ln1, N, la->q, a->scratch);
    pare_linear_forward(&blk->k, la->ln1, N, la->k, a->scratch);
    pare_linear_forward(&blk->v, la->ln1, N, la->v, a->scratch);
    if (blk->q_norm_w) {
        head_norm_forward(m, blk->q_norm_w, la->q, la->q_pre, la->q_rstd, N, c->n_heads);
        head_norm_forward(m, blk->k_norm_w, la->k, la->k_pre, la->k_rstd, N, c->n_kv_heads);
    }
    if (!gpt2) {
        const float *cs, *sn;
        pare_layer_rope(m, l, &cs, &sn);
        rope_forward(c, cs, sn, la->q, c->n_heads, B, T);
        rope_forward(c, cs, sn, la->k, c->n_kv_heads, B, T);
    }
    attention_forward(c, la, B, T, pare_layer_window(c, l));
    if (gemma) {
        pare_linear_forward(&blk->o, la->atty, N, la->attn_out, a->scratch);
        rmsnorm_forward(la->res1, la->attn_out_rstd, la->attn_out, blk->post_attn_norm_w, N, C, c->norm_eps, 1);
    } else {
        pare_linear_forward(&blk->o, la->atty, N, la->res1, a->scratch);
    }
    add_rows(la->res1, la->res1, x, (size_t)N * C);
    norm_forward(m, la->ln2, la->ln2_mean, la->ln2_rstd, la->res1, blk->norm2_w, blk->norm2_b, N);
    size_t NF = (size_t)N * blk->up.out; /* this block's FFN width: channel pruning may have narrowed it */
    if (!gpt2) {
        pare_linear_forward(&blk->gate, la->ln2, N, la->fc1, a->scratch);
        pare_linear_forward(&blk->up, la->ln2, N, la->fc2, a->scratch);
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
        for (size_t i = 0; i < NF; i++) {
            float g = la->fc1[i];
            la->hmid[i] = (gemma ? pare_gelu_tanh(g, NULL) : g / (1.0f + expf(-g))) * la->fc2[i];
        }
    } else {
        pare_linear_forward(&blk->up, la->ln2, N, la->fc1, a->scratch);
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
        for (size_t i = 0; i < NF; i++)
            la->hmid[i] = pare_gelu_tanh(la->fc1[i], NULL);
    }
    if (gemma) {
        pare_linear_forward(&blk->down, la->hmid, N, la->mlp_out, a->scratch);
        rmsnorm_forward(la->res2, la->mlp_out_rstd, la->mlp_out, blk->post_ffn_norm_w, N, C, c->norm_eps, 1);
    } else {
        pare_linear_forward(&blk->down, la->hmid, N, la->res2, a->scratch);
    }
    add_rows(la->res2, la->res2, la->res1, (size_t)N * C);
    return la->res2;
}

void pare_head_forward(const pare_model *m, pare_acts *a, const float *x, int B, int T, pare_logits_mode mode)
{
    int N = B * T, C = m->cfg.dim, V = m->cfg.vocab_size;
    norm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd, x, m->final_norm_w, m->final_norm_b, N);
    if (mode == PARE_LOGITS_ALL) {
        pare_linear_forward(&m->head, a->lnf, N, a->logits, a->scratch);
    } else if (mode == PARE_LOGITS_LAST) {
        for (int b = 0; b < B; b++)
            pare_linear_forward(&m->head, a->lnf + ((size_t)b * T + T - 1) * C, 1, a->logits + (size_t)b * V,
                                a->scratch);
    }
}

pare_status pare_forward(const pare_model *m, pare_acts *a, const int32_t *ids, int B, int T, pare_logits_mode mode,
                         pare_error *err)
{
    pare_status rc = pare_embed_forward(m, a, ids, B, T, err);
    if (rc)
        return rc;
    const float *x = a->emb; /* [N, C] residual stream */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if ((rc = pare_block_acquire(m, l, err)))
            return rc;
        x = pare_block_forward(m, l, a, x, B, T);
        pare_block_release(m, l);
    }
    pare_head_forward(m, a, x, B, T, mode);
    return PARE_OK;
}

/* The backward pass: gradients against central differences of a double-precision forward on tiny
 * fixture models (every op kind, both architectures, compressed linears), and against PyTorch
 * autograd on the reference models (tests/data/grad_*.json, made by tests/gen_grad_fixture.py). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/backward.h"
#include "core/fileio.h"
#include "core/forward.h"
#include "core/linear.h"
#include "core/model.h"
#include "train/optim.h"
#include "fixture.h"
#include "harness.h"

/* ---- a double-precision forward, written plainly from the architecture's definition ----
 * It reads the model's float parameters, so perturbing one of them and re-running gives finite
 * differences with double rounding (~1e-16) instead of the float forward's (~1e-7), which would
 * swamp a difference quotient. Its agreement with pare_forward is checked below. */

/* y[N, out] = x[N, in] W^T + b with W the layer's effective weight (A B when factorized). */
static void mlin(const pare_linear *l, const double *x, int N, double *y)
{
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * l->in;
        double *yi = y + (size_t)i * l->out;
        if (l->kind == PARE_LIN_FACTORED) {
            double t[256];
            for (int r = 0; r < l->rank; r++) {
                double s = 0;
                for (int j = 0; j < l->in; j++)
                    s += (double)l->B[(size_t)r * l->in + j] * xi[j];
                t[r] = s;
            }
            for (int o = 0; o < l->out; o++) {
                double s = l->b ? l->b[o] : 0;
                for (int r = 0; r < l->rank; r++)
                    s += (double)l->A[(size_t)o * l->rank + r] * t[r];
                yi[o] = s;
            }
        } else {
            for (int o = 0; o < l->out; o++) {
                double s = l->b ? l->b[o] : 0;
                const float *w = l->w + (size_t)o * l->in;
                for (int j = 0; j < l->in; j++)
                    s += (double)w[j] * xi[j];
                yi[o] = s;
            }
        }
    }
}

/* RMSNorm of N rows of C: x r w, or x r (1 + w) for Gemma's norms. */
static void mrms(const double *x, const float *w, int N, int C, double eps, int plus_one, double *y)
{
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * C;
        double ss = 0;
        for (int j = 0; j < C; j++)
            ss += xi[j] * xi[j];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int j = 0; j < C; j++)
            y[(size_t)i * C + j] = xi[j] * r * (w[j] + (plus_one ? 1.0 : 0.0));
    }
}

static void mnorm(const pare_model *m, const double *x, const float *w, const float *b, int N, double *y)
{
    int C = m->cfg.dim;
    if (m->cfg.arch != PARE_ARCH_GPT2) {
        mrms(x, w, N, C, m->cfg.norm_eps, pare_config_family(&m->cfg)->gemma, y);
        return;
    }
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * C;
        double *yi = y + (size_t)i * C;
        double mu = 0, var = 0;
        for (int j = 0; j < C; j++)
            mu += xi[j];
        mu /= C;
        for (int j = 0; j < C; j++)
            var += (xi[j] - mu) * (xi[j] - mu);
        double r = 1.0 / sqrt(var / C + m->cfg.norm_eps);
        for (int j = 0; j < C; j++)
            yi[j] = (xi[j] - mu) * r * w[j] + (b ? b[j] : 0);
    }
}

/* Gemma-3's norm on a branch's output t [N, C] before it joins the residual stream, in place. */
static void mpost_norm(const pare_model *m, const float *w, double *t, int N)
{
    if (!w)
        return;
    size_t n = (size_t)N * m->cfg.dim;
    double *tmp = malloc(n * sizeof *tmp);
    mrms(t, w, N, m->cfg.dim, m->cfg.norm_eps, 1, tmp);
    memcpy(t, tmp, n * sizeof *tmp);
    free(tmp);
}

/* Qwen3 / Gemma-3: RMSNorm of each head of x [N, heads*hd] in place. */
static void mhead_norm(const pare_model *m, const float *w, double *x, int N, int heads)
{
    if (!w)
        return;
    int hd = m->cfg.head_dim;
    double *tmp = malloc((size_t)hd * sizeof *tmp);
    for (long r = 0; r < (long)N * heads; r++) {
        mrms(x + r * hd, w, 1, hd, m->cfg.norm_eps, pare_config_family(&m->cfg)->gemma, tmp);
        memcpy(x + r * hd, tmp, (size_t)hd * sizeof *tmp);
    }
    free(tmp);
}

static double mgelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * pow(x, 3)))); }

/* Rotates x [N, heads*hd] by the table cos_t/sin_t [max_pos, hd/2]. */
static void mrope(const pare_model *m, const float *cos_t, const float *sin_t, double *x, int heads, int B, int T)
{
    int hd = m->cfg.head_dim, half = hd / 2;
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        for (int h = 0; h < heads; h++) {
            double *v = x + ((size_t)bt * heads + h) * hd;
            for (int i = 0; i < half; i++) {
                double c = cos_t[(size_t)t * half + i], s = sin_t[(size_t)t * half + i];
                double x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

/* Mean cross-entropy of ids [B, T] over targets (negative = ignored), with emb[poke] += delta when
 * poke >= 0 (to differentiate with respect to the network's input); logits [N, V] when asked. */
static double mirror_loss(const pare_model *m, const int32_t *ids, const int32_t *targets, int B, int T, long poke,
                          double delta, double *logits_out)
{
    const pare_config *c = &m->cfg;
    int N = B * T, C = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, V = c->vocab_size;
    int qd = H * hd, kvd = KV * hd, F = c->ffn_dim;
    double *x = calloc((size_t)N * C, sizeof *x), *h = calloc((size_t)N * C, sizeof *h);
    double *q = calloc((size_t)N * qd, sizeof *q), *k = calloc((size_t)N * kvd, sizeof *k);
    double *v = calloc((size_t)N * kvd, sizeof *v), *y = calloc((size_t)N * qd, sizeof *y);
    double *t = calloc((size_t)N * C, sizeof *t), *f1 = calloc((size_t)N * F, sizeof *f1);
    double *f2 = calloc((size_t)N * F, sizeof *f2), *lg = calloc((size_t)N * V, sizeof *lg);
    double *p = calloc((size_t)T, sizeof *p);
    int gpt2 = c->arch == PARE_ARCH_GPT2, gemma = pare_config_family(c)->gemma;
    /* Gemma scales the embeddings by sqrt(C), a fp32 constant in transformers */
    double emb_scale = gemma ? (double)(float)sqrt((double)C) : 1.0;
    /* scores x query_pre_attn_scalar^-0.5 (Gemma) or head_dim^-0.5 */
    double att_scale = c->query_pre_attn_scalar > 0 ? 1.0 / sqrt(c->query_pre_attn_scalar) : 1.0 / sqrt((double)hd);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++)
            x[(size_t)i * C + j] = (double)m->tok_emb[(size_t)ids[i] * C + j] * emb_scale +
                                   (m->pos_emb ? m->pos_emb[(size_t)(i % T) * C + j] : 0.0);
    if (poke >= 0)
        x[poke] += delta;
    for (int l = 0; l < c->n_layers; l++) {
        const pare_block *b = &m->blocks[l];
        /* a sliding layer sees keys i - window < j <= i, and rotates by its own table if it has one */
        int window = !gpt2 && c->sliding_window > 0 && c->layer_sliding[l] ? c->sliding_window : 0;
        const float *cs = window && m->rope_local_cos ? m->rope_local_cos : m->rope_cos;
        const float *sn = window && m->rope_local_cos ? m->rope_local_sin : m->rope_sin;
        mnorm(m, x, b->norm1_w, b->norm1_b, N, h);
        mlin(&b->q, h, N, q);
        mlin(&b->k, h, N, k);
        mlin(&b->v, h, N, v);
        mhead_norm(m, b->q_norm_w, q, N, H);
        mhead_norm(m, b->k_norm_w, k, N, KV);
        if (!gpt2) {
            mrope(m, cs, sn, q, H, B, T);
            mrope(m, cs, sn, k, KV, B, T);
        }
        for (int bb = 0; bb < B; bb++)
            for (int hh = 0; hh < H; hh++) {
                int kh = hh / (H / KV);
                for (int i = 0; i < T; i++) {
                    const double *qi = q + ((size_t)bb * T + i) * qd + hh * hd;
                    double mx = -1e300, s = 0;
                    int j0 = window && i - window + 1 > 0 ? i - window + 1 : 0;
                    for (int j = j0; j <= i; j++) {
                        const double *kj = k + ((size_t)bb * T + j) * kvd + kh * hd;
                        double d = 0;
                        for (int e = 0; e < hd; e++)
                            d += qi[e] * kj[e];
                        p[j] = d * att_scale;
                        mx = p[j] > mx ? p[j] : mx;
                    }
                    for (int j = j0; j <= i; j++)
                        s += (p[j] = exp(p[j] - mx));
                    double *yi = y + ((size_t)bb * T + i) * qd + hh * hd;
                    for (int e = 0; e < hd; e++) {
                        double acc = 0;
                        for (int j = j0; j <= i; j++)
                            acc += p[j] / s * v[((size_t)bb * T + j) * kvd + kh * hd + e];
                        yi[e] = acc;
                    }
                }
            }
        mlin(&b->o, y, N, t);
        mpost_norm(m, b->post_attn_norm_w, t, N);
        for (size_t i = 0; i < (size_t)N * C; i++)
            x[i] += t[i];
        mnorm(m, x, b->norm2_w, b->norm2_b, N, h);
        size_t nf = (size_t)N * b->up.out;
        if (!gpt2) {
            mlin(&b->gate, h, N, f1);
            mlin(&b->up, h, N, f2);
            for (size_t i = 0; i < nf; i++)
                f1[i] = (gemma ? mgelu(f1[i]) : f1[i] / (1 + exp(-f1[i]))) * f2[i];
        } else {
            mlin(&b->up, h, N, f1);
            for (size_t i = 0; i < nf; i++)
                f1[i] = mgelu(f1[i]);
        }
        mlin(&b->down, f1, N, t);
        mpost_norm(m, b->post_ffn_norm_w, t, N);
        for (size_t i = 0; i < (size_t)N * C; i++)
            x[i] += t[i];
    }
    mnorm(m, x, m->final_norm_w, m->final_norm_b, N, h);
    mlin(&m->head, h, N, lg);
    double nll = 0;
    int count = 0;
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0)
            continue;
        const double *r = lg + (size_t)i * V;
        double mx = r[0], s = 0;
        for (int j = 1; j < V; j++)
            mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < V; j++)
            s += exp(r[j] - mx);
        nll += mx + log(s) - r[targets[i]];
        count++;
    }
    if (logits_out)
        memcpy(logits_out, lg, (size_t)N * V * sizeof *lg);
    free(x);
    free(h);
    free(q);
    free(k);
    free(v);
    free(y);
    free(t);
    free(f1);
    free(f2);
    free(lg);
    free(p);
    return nll / count;
}

/* ---- finite-difference checks ---- */

#define FD_B 2
#define FD_T 7

/* Perturbs a stored float by about +-eps and returns the central difference of the mirror loss,
 * divided by the perturbation actually stored (eps = 2^-14 is exact for |p| < 2^9, so both sides
 * match; the division by the stored step keeps it exact otherwise). Truncation error eps^2/6 f'''
 * ~ 1e-9 relative and double rounding 1e-16 / eps ~ 1e-12 are far below the 1e-4 checked. */
static double fd_param(const pare_model *m, float *p, const int32_t *ids, const int32_t *tg)
{
    const double eps = 1.0 / 16384;
    float orig = *p;
    *p = (float)(orig + eps);
    double hp = (double)*p - orig, fp = mirror_loss(m, ids, tg, FD_B, FD_T, -1, 0, NULL);
    *p = (float)(orig - eps);
    double hm = orig - (double)*p, fm = mirror_loss(m, ids, tg, FD_B, FD_T, -1, 0, NULL);
    *p = orig;
    return (fp - fm) / (hp + hm);
}

/* Relative error of an analytic gradient a against a difference quotient fd. Entries far below
 * their tensor's largest gradient (scale) are measured against 1e-2 * scale, and every entry against
 * at least 1e-3 * the largest gradient of the whole model (global): float summation error grows with
 * the terms summed, not with their possibly cancelling sum, so a tiny entry's own size is no
 * yardstick. (Some tensors are exactly zero in exact arithmetic: attention's key biases cannot change
 * a softmax over keys, so their float gradient is rounding noise of ~1e-8 * global.) */
static double rel_err(double a, double fd, double scale, double global)
{
    double den = fmax(fabs(fd), fmax(1e-2 * scale, 1e-3 * global));
    return den > 0 ? fabs(a - fd) / den : fabs(a - fd);
}

static unsigned hash_u(unsigned x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Forward + backward on a fixed batch (two ignored targets), then every tensor of the gradient
 * table: its largest entry and three spread ones, and for masked weights two masked-out entries
 * (effective gradient exactly 0, dense gradient equal to the difference quotient), plus five
 * entries of the input gradient. Returns the worst relative error. */
static double fd_check(pare_model *m, const char *label, int flags)
{
    int N = FD_B * FD_T;
    int32_t *ids = fixture_ids(m, FD_B, FD_T), tg[FD_B * FD_T];
    pare_shift_targets(ids, FD_B, FD_T, tg);
    tg[2] = -1;
    tg[FD_T + 4] = -1;
    pare_acts *a = NULL;
    pare_grads *g = NULL;
    pare_error err = {0};
    double worst = 0, loss = 0;
    const char *worst_at = "";
    char where[256] = "";
    CHECKF(pare_acts_alloc(m, FD_B, FD_T, 1, &a, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_grads_alloc(m, FD_B, FD_T, flags, &g, &err) == PARE_OK, "%s", err.msg);
    if (!a || !g)
        goto done;
    CHECKF(pare_forward(m, a, ids, FD_B, FD_T, PARE_LOGITS_ALL, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_loss_forward(m, a, tg, FD_B, FD_T, &loss, NULL, &err) == PARE_OK, "%s", err.msg);
    double ref = mirror_loss(m, ids, tg, FD_B, FD_T, -1, 0, NULL);
    CHECKF(fabs(loss - ref) <= 1e-5 * ref, "%s: float loss %.9g vs double %.9g", label, loss, ref);
    CHECKF(pare_backward(m, a, g, ids, tg, FD_B, FD_T, &err) == PARE_OK, "%s", err.msg);
    if (harness_failed_now())
        goto done;
    int checked = 0;
    double global = 0;
    for (size_t i = 0; i < g->param_floats; i++)
        global = fmax(global, fabs(g->slab[i]));
    for (int e = 0; e < g->n_params; e++) {
        pare_param *pp = &g->params[e];
        double scale = 0;
        size_t top = 0;
        for (size_t i = 0; i < pp->n; i++)
            if (fabs(pp->grad[i]) > scale) {
                scale = fabs(pp->grad[i]);
                top = i;
            }
        size_t pick[4] = {top, hash_u((unsigned)e * 7 + 1) % pp->n, hash_u((unsigned)e * 7 + 2) % pp->n,
                          hash_u((unsigned)e * 7 + 3) % pp->n};
        for (int s = 0; s < 4; s++) {
            size_t i = pick[s];
            double fd = fd_param(m, pp->param + i, ids, tg);
            double r = rel_err(pp->grad[i], fd, scale, global);
            if (pp->mask && !pp->mask[i]) /* a masked-out pick: judged below */
                r = 0;
            checked++;
            if (r > worst) {
                worst = r;
                snprintf(where, sizeof where, "%s[%zu]: %.9g vs fd %.9g", pp->name, i, pp->grad[i], fd);
                worst_at = where;
            }
        }
        if (pp->mask) {
            int found = 0;
            for (size_t i = hash_u((unsigned)e) % pp->n, n = 0; n < pp->n && found < 2; n++, i = (i + 1) % pp->n) {
                if (pp->mask[i])
                    continue;
                found++;
                double fd = fd_param(m, pp->param + i, ids, tg);
                CHECKF(pp->grad[i] == 0.0f, "%s: masked-out [%zu] has gradient %g", pp->name, i, pp->grad[i]);
                CHECKF(pp->grad_dense != NULL, "%s: no dense gradient", pp->name);
                if (pp->grad_dense) {
                    double dscale = 0;
                    for (size_t j = 0; j < pp->n; j++)
                        dscale = fmax(dscale, fabs(pp->grad_dense[j]));
                    double r = rel_err(pp->grad_dense[i], fd, dscale, global);
                    CHECKF(fabs(fd) > 0, "%s: masked-out [%zu] does not affect the loss", pp->name, i);
                    if (r > worst) {
                        worst = r;
                        snprintf(where, sizeof where, "%s dense[%zu]: %.9g vs fd %.9g", pp->name, i, pp->grad_dense[i],
                                 fd);
                        worst_at = where;
                    }
                }
            }
            CHECKF(found == 2, "%s: no masked-out entries", pp->name);
        }
    }
    /* the input: dL/d(embedding output) left in d_res */
    double iscale = 0;
    long itop = 0;
    for (long i = 0; i < (long)N * m->cfg.dim; i++)
        if (fabs(g->d_res[i]) > iscale) {
            iscale = fabs(g->d_res[i]);
            itop = i;
        }
    for (int s = 0; s < 5; s++) {
        long i = s ? (long)(hash_u(1000u + s) % (unsigned)(N * m->cfg.dim)) : itop;
        const double eps = 1e-4;
        double fd = (mirror_loss(m, ids, tg, FD_B, FD_T, i, eps, NULL) -
                     mirror_loss(m, ids, tg, FD_B, FD_T, i, -eps, NULL)) /
                    (2 * eps);
        double r = rel_err(g->d_res[i], fd, iscale, 0);
        checked++;
        if (r > worst) {
            worst = r;
            snprintf(where, sizeof where, "input[%ld]: %.9g vs fd %.9g", i, g->d_res[i], fd);
            worst_at = where;
        }
    }
    printf("  %-22s %3d tensors, %4d entries: worst relative error vs finite differences %.2e (%s)\n", label,
           g->n_params, checked, worst, worst_at);
    CHECKF(worst <= 1e-4, "%s: worst relative error %.3g at %s", label, worst, worst_at);
done:
    pare_grads_free(g);
    pare_acts_free(a);
    free(ids);
    return worst;
}

/* The mirror is the function being differentiated: it must be pare's forward, in double. */
static void check_mirror(pare_model *m, const char *label)
{
    int N = FD_B * FD_T, V = m->cfg.vocab_size;
    int32_t *ids = fixture_ids(m, FD_B, FD_T), tg[FD_B * FD_T];
    pare_shift_targets(ids, FD_B, FD_T, tg);
    double *lg = malloc((size_t)N * V * sizeof *lg);
    mirror_loss(m, ids, tg, FD_B, FD_T, -1, 0, lg);
    pare_acts *a = NULL;
    pare_error err = {0};
    CHECK(pare_acts_alloc(m, FD_B, FD_T, 1, &a, &err) == PARE_OK);
    CHECK(pare_forward(m, a, ids, FD_B, FD_T, PARE_LOGITS_ALL, &err) == PARE_OK);
    double d = 0, mag = 0;
    for (size_t i = 0; a && i < (size_t)N * V; i++) {
        d = fmax(d, fabs(a->logits[i] - lg[i]));
        mag = fmax(mag, fabs(lg[i]));
    }
    CHECKF(d <= 1e-5 * fmax(mag, 1), "%s: float forward differs from the double mirror by %.3g (logits up to %.3g)",
           label, d, mag);
    pare_acts_free(a);
    free(lg);
    free(ids);
}

static void test_mirror_matches_forward(void)
{
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        pare_model *m = fixture_model(gpt2 ? "g" : "l", gpt2);
        if (!m)
            return;
        check_mirror(m, gpt2 ? "gpt2" : "llama");
        pare_model_free(m);
    }
}

/* LLaMA: RMSNorm, RoPE, GQA (2 KV heads for 4 query heads), SwiGLU, untied head. */
static void test_fd_llama(void)
{
    pare_model *m = fixture_model("l", 0);
    if (!m)
        return;
    CHECK(m->cfg.n_kv_heads < m->cfg.n_heads && !m->cfg.tied_head);
    fd_check(m, "llama gqa untied", 0);
    pare_model_free(m);
}

/* LLaMA with full multi-head attention and a head tied to the embedding. */
static void test_fd_llama_tied(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    s.kv_heads = s.heads;
    s.tied = 1;
    pare_model *m = fixture_model_spec("lt", &s);
    if (!m)
        return;
    CHECK(m->cfg.tied_head && m->head.w == m->tok_emb);
    fd_check(m, "llama mha tied", 0);
    pare_model_free(m);
}

/* GPT-2: LayerNorm, learned positions, biases everywhere, gelu_new, tied head. */
static void test_fd_gpt2(void)
{
    pare_model *m = fixture_model("g", 1);
    if (!m)
        return;
    CHECK(m->cfg.tied_head);
    fd_check(m, "gpt2 tied", 0);
    pare_model_free(m);
}

static void test_fd_gpt2_untied(void)
{
    fixture_spec s;
    fixture_default(&s, 1);
    s.tied = 0;
    pare_model *m = fixture_model_spec("gu", &s);
    if (!m)
        return;
    CHECK(!m->cfg.tied_head);
    fd_check(m, "gpt2 untied", 0);
    pare_model_free(m);
}

/* Replaces l by random factors of rank k. */
static void factorize(pare_linear *l, int k, unsigned seed)
{
    float *A = malloc((size_t)l->out * k * sizeof *A), *B = malloc((size_t)k * l->in * sizeof *B);
    for (int i = 0; i < l->out * k; i++)
        A[i] = ((float)(hash_u(seed + i) % 2001) / 1000.0f - 1.0f) * 0.5f;
    for (int i = 0; i < k * l->in; i++)
        B[i] = ((float)(hash_u(seed * 31 + i) % 2001) / 1000.0f - 1.0f) * 0.5f;
    pare_error err = {0};
    CHECKF(pare_linear_set_factors(l, k, A, B, &err) == PARE_OK, "%s", err.msg);
    free(A);
    free(B);
}

/* Masks about half of l's weights. */
static void mask_half(pare_linear *l, unsigned seed)
{
    size_t n = (size_t)l->out * l->in;
    uint8_t *mk = malloc(n);
    for (size_t i = 0; i < n; i++)
        mk[i] = hash_u(seed + (unsigned)i) % 2;
    pare_error err = {0};
    CHECKF(pare_linear_set_mask(l, mk, &err) == PARE_OK, "%s", err.msg);
    free(mk);
}

/* Keeps every FFN channel of block b except every third (sliced gate/up rows, down columns). */
static void slice_ffn(pare_block *b)
{
    int F = b->up.out, n = 0;
    int32_t *keep = malloc((size_t)F * sizeof *keep);
    for (int i = F - 1; i >= 0; i--) /* reversed: slicing may also reorder channels */
        if (i % 3 != 1)
            keep[n++] = i;
    pare_error err = {0};
    if (b->gate.out)
        CHECKF(pare_linear_keep_rows(&b->gate, keep, n, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_linear_keep_rows(&b->up, keep, n, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_linear_keep_cols(&b->down, keep, n, &err) == PARE_OK, "%s", err.msg);
    free(keep);
}

/* Factorized, masked and sliced linears (LLaMA): block 0 has a rank-3 q, masked k, factorized o and
 * a sliced FFN; block 1 a masked up and a factorized, sliced-input down. */
static void test_fd_compressed_llama(void)
{
    pare_model *m = fixture_model("lc", 0);
    if (!m)
        return;
    factorize(&m->blocks[0].q, 3, 11);
    mask_half(&m->blocks[0].k, 12);
    factorize(&m->blocks[0].o, 5, 13);
    slice_ffn(&m->blocks[0]);
    mask_half(&m->blocks[1].up, 14);
    slice_ffn(&m->blocks[1]);
    factorize(&m->blocks[1].down, 4, 15);
    CHECK(m->blocks[0].up.out < m->cfg.ffn_dim && m->blocks[1].down.kind == PARE_LIN_FACTORED);
    fd_check(m, "llama compressed", PARE_GRADS_DENSE_MASKED);
    pare_model_free(m);
}

/* The same on GPT-2, where sliced and factorized layers carry biases. */
static void test_fd_compressed_gpt2(void)
{
    pare_model *m = fixture_model("gc", 1);
    if (!m)
        return;
    factorize(&m->blocks[0].v, 3, 21);
    slice_ffn(&m->blocks[0]);
    mask_half(&m->blocks[0].down, 22);
    mask_half(&m->blocks[1].q, 23);
    factorize(&m->blocks[1].up, 6, 24);
    fd_check(m, "gpt2 compressed", PARE_GRADS_DENSE_MASKED);
    pare_model_free(m);
}

/* ---- the families' terms on synthetic models ----
 * A LLaMA fixture with a family's terms switched on in its config and the weights they need added
 * (random, kept outside the model's slab): what the forward computes for that family, small enough
 * for finite differences. The fixtures made by transformers (tests/data/families) check the same
 * against PyTorch below. */

typedef struct {
    const char *label;
    pare_family family;
    int tied, attn_bias, mlp_bias;
    int window;                   /* sliding_window, 0: none */
    unsigned sliding_layers;      /* bit l: layer l slides */
    double query_pre_attn_scalar; /* 0: head_dim */
    double local_theta;           /* > 0: the sliding layers' own RoPE base */
} family_variant;

static const family_variant family_variants[] = {
    {"llama biases", PARE_FAMILY_LLAMA, 0, 1, 1, 0, 0, 0, 0},
    {"mistral window", PARE_FAMILY_MISTRAL, 0, 0, 0, 3, 3, 0, 0},
    {"qwen2 qkv bias tied", PARE_FAMILY_QWEN2, 1, 1, 0, 3, 2, 0, 0},
    {"qwen3 qk norms", PARE_FAMILY_QWEN3, 1, 0, 0, 0, 0, 0, 0},
    {"phi3 layout window", PARE_FAMILY_PHI3, 0, 0, 0, 4, 3, 0, 0},
    {"gemma3", PARE_FAMILY_GEMMA3, 1, 0, 0, 3, 1, 20, 100},
};
#define N_VARIANTS ((int)(sizeof family_variants / sizeof family_variants[0]))

/* n floats of base + amp * uniform(-1, 1) */
static float *fill_random(float *p, size_t n, float base, float amp, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = base + amp * ((float)(hash_u(seed + (unsigned)i) % 2001) / 1000.0f - 1.0f);
    return p + n;
}

/* The fixture model with variant v's terms; *extra (to free after the model) holds the added weights. */
static pare_model *family_model(const family_variant *v, float **extra)
{
    *extra = NULL;
    fixture_spec s;
    fixture_default(&s, 0);
    s.tied = v->tied;
    pare_model *m = fixture_model_spec("fam", &s);
    if (!m)
        return NULL;
    pare_config *c = &m->cfg;
    const pare_family_info *f = &pare_families[v->family];
    c->family = v->family;
    c->arch = f->arch; /* Phi-3's layout: the same forward as LLaMA's, under other names */
    c->attn_bias = v->attn_bias;
    c->mlp_bias = v->mlp_bias;
    c->sliding_window = v->window;
    for (int l = 0; l < c->n_layers; l++)
        c->layer_sliding[l] = (v->sliding_layers >> l) & 1;
    c->query_pre_attn_scalar = v->query_pre_attn_scalar;
    int C = c->dim, hd = c->head_dim, half = hd / 2;
    size_t n = v->local_theta > 0 ? 2 * (size_t)c->max_pos * half : 0;
    for (int l = 0; l < c->n_layers; l++) {
        n += (f->qk_norm ? 2 * (size_t)hd : 0) + (f->gemma ? 2 * (size_t)C : 0);
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            n += pare_config_lin_bias(c, (pare_lin_kind)k) ? (size_t)m->blocks[l].lin[k].out : 0;
    }
    float *p = *extra = malloc((n ? n : 1) * sizeof *p);
    unsigned seed = 100;
    /* Gemma's norms scale by 1 + w, so their weights sit around 0; the others around 1 */
    float norm_base = f->gemma ? 0.0f : 1.0f;
    for (int l = 0; l < c->n_layers; l++) {
        pare_block *b = &m->blocks[l];
        if (f->gemma) { /* the fixture's norms become (1 + w) norms */
            fill_random(b->norm1_w, (size_t)C, 0.0f, 0.3f, seed += 1000);
            fill_random(b->norm2_w, (size_t)C, 0.0f, 0.3f, seed += 1000);
            b->post_attn_norm_w = p;
            p = fill_random(p, (size_t)C, 0.0f, 0.3f, seed += 1000);
            b->post_ffn_norm_w = p;
            p = fill_random(p, (size_t)C, 0.0f, 0.3f, seed += 1000);
        }
        if (f->qk_norm) {
            b->q_norm_w = p;
            p = fill_random(p, (size_t)hd, norm_base, 0.3f, seed += 1000);
            b->k_norm_w = p;
            p = fill_random(p, (size_t)hd, norm_base, 0.3f, seed += 1000);
        }
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            if (pare_config_lin_bias(c, (pare_lin_kind)k)) {
                b->lin[k].b = p;
                p = fill_random(p, (size_t)b->lin[k].out, 0.0f, 0.2f, seed += 1000);
            }
    }
    if (f->gemma)
        fill_random(m->final_norm_w, (size_t)C, 0.0f, 0.3f, seed += 1000);
    if (v->local_theta > 0) {
        m->rope_local_cos = p;
        m->rope_local_sin = p + (size_t)c->max_pos * half;
        for (int t = 0; t < c->max_pos; t++)
            for (int i = 0; i < half; i++) {
                double a = t * pow(v->local_theta, -2.0 * i / hd);
                m->rope_local_cos[(size_t)t * half + i] = (float)cos(a);
                m->rope_local_sin[(size_t)t * half + i] = (float)sin(a);
            }
    }
    return m;
}

/* The gradient table entry of tensor p is called name. */
static void expect_param(pare_grads *g, const float *p, const char *name)
{
    pare_param *e = pare_grads_find(g, name);
    CHECKF(e && e->param == p, "%s: %s", name, e ? "names another tensor" : "not in the gradient table");
}

/* Every tensor the variants add has its gradient under the checkpoint's name (Gemma's norm2 is
 * pre_feedforward_layernorm, its post_attention_layernorm the norm on the attention output); then
 * the gradients against finite differences of the double mirror, which is checked against the
 * float forward first. */
static void test_fd_families(void)
{
    for (int i = 0; i < N_VARIANTS; i++) {
        const family_variant *v = &family_variants[i];
        float *extra = NULL;
        pare_model *m = family_model(v, &extra);
        if (!m) {
            free(extra);
            return;
        }
        pare_grads *g = NULL;
        pare_error err = {0};
        CHECKF(pare_grads_alloc(m, 1, 4, 0, &g, &err) == PARE_OK, "%s", err.msg);
        char nm[128];
        for (int l = 0; g && l < m->cfg.n_layers; l++) {
            const pare_block *b = &m->blocks[l];
            const struct {
                const float *p;
                const char *name;
            } added[] = {{b->q_norm_w, "self_attn.q_norm.weight"},
                         {b->k_norm_w, "self_attn.k_norm.weight"},
                         /* Gemma's norm on the attention output, else the pre-MLP norm */
                         {b->post_attn_norm_w ? b->post_attn_norm_w : b->norm2_w, "post_attention_layernorm.weight"},
                         {b->post_ffn_norm_w, "post_feedforward_layernorm.weight"},
                         {b->post_attn_norm_w ? b->norm2_w : NULL, "pre_feedforward_layernorm.weight"},
                         {b->q.b, "self_attn.q_proj.bias"},
                         {b->v.b, "self_attn.v_proj.bias"},
                         {b->o.b, "self_attn.o_proj.bias"},
                         {b->down.b, "mlp.down_proj.bias"}};
            for (size_t k = 0; k < sizeof added / sizeof added[0]; k++) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s", l, added[k].name);
                if (added[k].p)
                    expect_param(g, added[k].p, nm);
                else
                    CHECKF(!pare_grads_find(g, nm), "%s: %s in the gradient table", v->label, nm);
            }
        }
        pare_grads_free(g);
        check_mirror(m, v->label);
        fd_check(m, v->label, 0);
        pare_model_free(m);
        free(extra);
    }
}

/* ---- loss, accumulation, guards ---- */

/* The loss is the mean over non-ignored targets, computed here from the logits independently. */
static void test_loss_ignore(void)
{
    pare_model *m = fixture_model("l", 0);
    if (!m)
        return;
    int B = 2, T = 5, N = B * T, V = m->cfg.vocab_size;
    int32_t *ids = fixture_ids(m, B, T), tg[10];
    pare_shift_targets(ids, B, T, tg);
    CHECK(tg[4] == -1 && tg[9] == -1 && tg[0] == ids[1] && tg[5] == ids[6]);
    tg[1] = -7;
    CHECK(pare_count_targets(tg, (size_t)N) == 7);
    pare_acts *a = NULL;
    pare_error err = {0};
    CHECK(pare_acts_alloc(m, B, T, 1, &a, &err) == PARE_OK);
    CHECK(pare_forward(m, a, ids, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
    double want = 0;
    for (int i = 0; i < N; i++) {
        if (tg[i] < 0)
            continue;
        double s = 0;
        for (int j = 0; j < V; j++)
            s += exp((double)a->logits[(size_t)i * V + j]);
        want += log(s) - a->logits[(size_t)i * V + tg[i]];
    }
    want /= 7;
    double loss = 0;
    size_t n = 0;
    CHECKF(pare_loss_forward(m, a, tg, B, T, &loss, &n, &err) == PARE_OK, "%s", err.msg);
    CHECKF(n == 7 && fabs(loss - want) <= 1e-9 * want, "loss %.12g over %zu, want %.12g", loss, n, want);
    int32_t none[10];
    for (int i = 0; i < N; i++)
        none[i] = -1;
    CHECK(pare_loss_forward(m, a, none, B, T, &loss, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "ignored") != NULL, "%s", err.msg);
    tg[3] = V;
    CHECK(pare_loss_forward(m, a, tg, B, T, &loss, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "outside the vocabulary") != NULL, "%s", err.msg);
    pare_acts_free(a);
    free(ids);
    pare_model_free(m);
}

/* Two micro-batches of one sequence each, weighted by their share of the targets, sum to the
 * gradient of the two-sequence batch (whose rows have different numbers of ignored targets). */
static void test_accumulation(void)
{
    pare_model *m = fixture_model("g", 1);
    if (!m)
        return;
    int B = 2, T = 6, N = B * T;
    int32_t *ids = fixture_ids(m, B, T), tg[12];
    pare_shift_targets(ids, B, T, tg);
    tg[0] = tg[1] = tg[2] = -1; /* row 0 scores 2 targets, row 1 scores 5 */
    pare_acts *a = NULL;
    pare_grads *whole = NULL, *acc = NULL;
    pare_error err = {0};
    CHECK(pare_acts_alloc(m, B, T, 1, &a, &err) == PARE_OK);
    CHECK(pare_grads_alloc(m, B, T, 0, &whole, &err) == PARE_OK);
    CHECK(pare_grads_alloc(m, 1, T, 0, &acc, &err) == PARE_OK);
    if (harness_failed_now())
        goto done;
    CHECK(pare_forward(m, a, ids, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
    CHECK(pare_backward(m, a, whole, ids, tg, B, T, &err) == PARE_OK);
    size_t total = pare_count_targets(tg, (size_t)N);
    for (int b = 0; b < B; b++) {
        acc->loss_scale = pare_accum_weight(pare_count_targets(tg + b * T, (size_t)T), total);
        CHECK(pare_forward(m, a, ids + b * T, 1, T, PARE_LOGITS_ALL, &err) == PARE_OK);
        CHECKF(pare_backward(m, a, acc, ids + b * T, tg + b * T, 1, T, &err) == PARE_OK, "%s", err.msg);
    }
    double d = 0, s = 0;
    for (size_t i = 0; i < whole->param_floats; i++) {
        d += pow((double)whole->slab[i] - acc->slab[i], 2);
        s += pow((double)whole->slab[i], 2);
    }
    CHECKF(sqrt(d / s) <= 1e-5, "accumulated gradient differs by %.3g (relative)", sqrt(d / s));
    /* a batch larger than the workspace is refused */
    CHECK(pare_backward(m, a, acc, ids, tg, 2, T, &err) == PARE_EINVAL);
done:
    pare_grads_free(whole);
    pare_grads_free(acc);
    pare_acts_free(a);
    free(ids);
    pare_model_free(m);
}

/* Gradients laid out before a compression no longer fit the model: refused with a clear message;
 * activations without keep_all are refused too. */
static void test_guards(void)
{
    pare_model *m = fixture_model("l", 0);
    if (!m)
        return;
    int32_t *ids = fixture_ids(m, 1, 4), tg[4];
    pare_shift_targets(ids, 1, 4, tg);
    pare_acts *a = NULL, *shared = NULL;
    pare_grads *g = NULL;
    pare_error err = {0};
    CHECK(pare_acts_alloc(m, 1, 4, 1, &a, &err) == PARE_OK);
    CHECK(pare_acts_alloc(m, 1, 4, 0, &shared, &err) == PARE_OK);
    CHECK(pare_grads_alloc(m, 1, 4, 0, &g, &err) == PARE_OK);
    if (!harness_failed_now()) {
        CHECK(pare_forward(m, shared, ids, 1, 4, PARE_LOGITS_ALL, &err) == PARE_OK);
        CHECK(pare_backward(m, shared, g, ids, tg, 1, 4, &err) == PARE_EINVAL);
        CHECKF(strstr(err.msg, "keep_all") != NULL, "%s", err.msg);
        CHECK(pare_grads_find(g, "model.layers.1.mlp.down_proj.weight") != NULL);
        CHECK(pare_grads_find(g, "model.norm.weight") && !pare_grads_find(g, "model.norm.bias"));
        factorize(&m->blocks[1].down, 2, 5);
        CHECK(pare_forward(m, a, ids, 1, 4, PARE_LOGITS_ALL, &err) == PARE_OK);
        CHECK(pare_backward(m, a, g, ids, tg, 1, 4, &err) == PARE_EINVAL);
        CHECKF(strstr(err.msg, "allocate them again") != NULL, "%s", err.msg);
    }
    pare_grads_free(g);
    pare_acts_free(a);
    pare_acts_free(shared);
    free(ids);
    pare_model_free(m);
}

/* ---- against PyTorch autograd on the reference models ---- */

/* A gradient reference (tests/data/grad_MODEL.json from tests/gen_grad_fixture.py, or a family
 * fixture's grad.json from tools/make_family_fixtures.py: float64 PyTorch autograd on a fixed batch)
 * gives the loss, every tensor's gradient norm and sampled entries; pare's float gradients of the
 * model in model_dir must agree within 1e-4 relative. */
static void check_reference(const char *name, const char *path, const char *model_dir)
{
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    CHECKF(ref != NULL, "%s: %s (run the tests from the repository root)", path, jerr.text);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(model_dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    if (!ref || !m) {
        json_decref(ref);
        pare_model_free(m);
        return;
    }
    int B = (int)json_integer_value(json_object_get(ref, "batch"));
    int T = (int)json_integer_value(json_object_get(ref, "seq"));
    int N = B * T;
    json_t *jids = json_object_get(ref, "ids"), *jtg = json_object_get(ref, "targets");
    CHECKF(B > 0 && T > 0 && json_array_size(jids) == (size_t)N && json_array_size(jtg) == (size_t)N,
           "%s: batch %d x %d, %zu ids, %zu targets", path, B, T, json_array_size(jids), json_array_size(jtg));
    int32_t *ids = malloc((size_t)(N > 0 ? N : 1) * sizeof *ids), *tg = malloc((size_t)(N > 0 ? N : 1) * sizeof *tg);
    pare_acts *a = NULL;
    pare_grads *g = NULL;
    if (harness_failed_now())
        goto done;
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));
        tg[i] = (int32_t)json_integer_value(json_array_get(jtg, (size_t)i));
    }
    CHECKF(pare_acts_alloc(m, B, T, 1, &a, &err) == PARE_OK, "%s", err.msg);
    CHECKF(pare_grads_alloc(m, B, T, 0, &g, &err) == PARE_OK, "%s", err.msg);
    if (harness_failed_now())
        goto done;
    double loss = 0;
    CHECK(pare_forward(m, a, ids, B, T, PARE_LOGITS_ALL, &err) == PARE_OK);
    CHECK(pare_loss_forward(m, a, tg, B, T, &loss, NULL, &err) == PARE_OK);
    CHECKF(pare_backward(m, a, g, ids, tg, B, T, &err) == PARE_OK, "%s", err.msg);
    double want_loss = json_real_value(json_object_get(ref, "loss"));
    double loss_err = fabs(loss - want_loss) / want_loss;
    json_t *tensors = json_object_get(ref, "tensors");
    CHECKF(json_object_size(tensors) == (size_t)g->n_params, "%s: %zu tensors, pare has %d", path,
           json_object_size(tensors), g->n_params);
    double worst_norm = 0, worst_entry = 0, global_norm = json_real_value(json_object_get(ref, "global_norm"));
    char wn[160] = "", we[160] = "";
    int entries = 0, zeros = 0;
    double global_ss = 0;
    const char *key;
    json_t *t;
    json_object_foreach(tensors, key, t) {
        pare_param *pp = pare_grads_find(g, key);
        CHECKF(pp != NULL, "%s: pare has no tensor %s", path, key);
        if (!pp)
            continue;
        json_t *shape = json_object_get(t, "shape");
        CHECKF((size_t)json_integer_value(json_array_get(shape, 0)) == (size_t)pp->rows &&
                   (json_array_size(shape) == 1 ? 1 : (int)json_integer_value(json_array_get(shape, 1))) == pp->cols,
               "%s: shape differs from pare's [%d, %d]", key, pp->rows, pp->cols);
        double ss = 0;
        for (size_t i = 0; i < pp->n; i++)
            ss += (double)pp->grad[i] * pp->grad[i];
        global_ss += ss;
        double want = json_real_value(json_object_get(t, "norm"));
        if (json_is_true(json_object_get(t, "zero"))) {
            /* zero in exact arithmetic: pare's float gradient must be rounding noise, which is
             * ~1e-7 of the gradients it is computed from, so bounded by 1e-6 of the global norm */
            CHECKF(sqrt(ss) <= 1e-6 * global_norm, "%s: norm %.3g where the exact gradient is 0 (global %.3g)", key,
                   sqrt(ss), global_norm);
            zeros++;
            continue;
        }
        double r = fabs(sqrt(ss) - want) / want;
        if (r > worst_norm) {
            worst_norm = r;
            snprintf(wn, sizeof wn, "%s: %.9g vs %.9g", key, sqrt(ss), want);
        }
        size_t k;
        json_t *en;
        json_array_foreach(json_object_get(t, "entries"), k, en) {
            size_t i = (size_t)json_integer_value(json_array_get(en, 0));
            double v = json_real_value(json_array_get(en, 1));
            CHECKF(i < pp->n, "%s: entry %zu out of range", key, i);
            if (i >= pp->n)
                continue;
            double re = fabs(pp->grad[i] - v) / fabs(v);
            entries++;
            if (re > worst_entry) {
                worst_entry = re;
                snprintf(we, sizeof we, "%s[%zu]: %.9g vs %.9g", key, i, pp->grad[i], v);
            }
        }
    }
    printf("  %s: loss %.9f vs torch %.9f (rel %.1e); %d tensor norms worst rel %.2e (%s); %d entries worst rel "
           "%.2e (%s); %d exactly-zero tensors within rounding\n",
           name, loss, want_loss, loss_err, g->n_params - zeros, worst_norm, wn, entries, worst_entry, we, zeros);
    double global_err = fabs(sqrt(global_ss) - global_norm) / global_norm;
    CHECKF(global_err <= 1e-4, "%s: global gradient norm %.9g vs %.9g", name, sqrt(global_ss), global_norm);
    CHECKF(loss_err <= 1e-5, "%s: loss %.9g vs %.9g", name, loss, want_loss);
    CHECKF(worst_norm <= 1e-4, "%s: gradient norm %s", name, wn);
    CHECKF(worst_entry <= 1e-4, "%s: gradient entry %s", name, we);
done:
    pare_grads_free(g);
    pare_acts_free(a);
    free(ids);
    free(tg);
    json_decref(ref);
    pare_model_free(m);
}

static void test_reference_llama(void)
{
    NEED_SHARED();
    check_reference("ref-llama-12m", "tests/data/grad_ref-llama-12m.json", shared_path("models/ref-llama-12m"));
}
static void test_reference_gpt2(void)
{
    NEED_SHARED();
    check_reference("ref-gpt2-6m", "tests/data/grad_ref-gpt2-6m.json", shared_path("models/ref-gpt2-6m"));
}

/* ---- the family fixtures made by transformers (tests/data/families, tools/make_family_fixtures.py) ---- */

#define FAMILIES_DIR "tests/data/families"
static const char *const FAMILY_FIXTURES[] = {"llama3", "llama-linear", "mistral", "qwen2", "qwen3", "phi3", "gemma3"};
#define N_FAMILY_FIXTURES ((int)(sizeof FAMILY_FIXTURES / sizeof FAMILY_FIXTURES[0]))

#define NEED_FAMILY_FIXTURES()                                                                                         \
    do {                                                                                                               \
        if (!pare_is_dir(FAMILIES_DIR))                                                                                \
            SKIP("skipped: %s not present (made by tools/make_family_fixtures.py)", FAMILIES_DIR);                     \
    } while (0)

/* Every family against PyTorch autograd: its grad.json names every trainable tensor (Phi-3's fused
 * matrices as their q, k, v / gate, up parts), over a batch of 32 tokens (longer than the sliding
 * windows). */
static void test_reference_families(void)
{
    NEED_FAMILY_FIXTURES();
    char dir[256], path[300];
    for (int i = 0; i < N_FAMILY_FIXTURES; i++) {
        snprintf(dir, sizeof dir, "%s/%s", FAMILIES_DIR, FAMILY_FIXTURES[i]);
        snprintf(path, sizeof path, "%s/grad.json", dir);
        check_reference(FAMILY_FIXTURES[i], path, dir);
    }
}

/* Every family fixture against finite differences of the mirror (itself checked against the forward). */
static void test_fd_family_fixtures(void)
{
    NEED_FAMILY_FIXTURES();
    char dir[256];
    for (int i = 0; i < N_FAMILY_FIXTURES; i++) {
        snprintf(dir, sizeof dir, "%s/%s", FAMILIES_DIR, FAMILY_FIXTURES[i]);
        pare_model *m = NULL;
        pare_error err = {0};
        CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s: %s", dir, err.msg);
        if (!m)
            continue;
        check_mirror(m, FAMILY_FIXTURES[i]);
        fd_check(m, FAMILY_FIXTURES[i], 0);
        pare_model_free(m);
    }
}

void suite_backward(void);
void suite_backward(void)
{
    RUN(test_mirror_matches_forward);
    RUN(test_fd_llama);
    RUN(test_fd_llama_tied);
    RUN(test_fd_gpt2);
    RUN(test_fd_gpt2_untied);
    RUN(test_fd_compressed_llama);
    RUN(test_fd_compressed_gpt2);
    RUN(test_fd_families);
    RUN(test_loss_ignore);
    RUN(test_accumulation);
    RUN(test_guards);
    RUN(test_reference_llama);
    RUN(test_reference_gpt2);
    RUN(test_fd_family_fixtures);
    RUN(test_reference_families);
}

/* `auto`: the sensitivity pass (whitened error curves, FFN channel curves, loss probes), the Lagrangian
 * budget solve over every matrix's choices, and the sequential application that re-decides each block
 * on the compressed prefix's outputs. */
#include "auto_alloc.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval.h"
#include "forward.h"
#include "parallel.h"

const char *const PARE_AUTO_SENSITIVITY_NAMES[] = {"probe", "probe1", "relative", "kl", NULL};

/* Probe sizes, as the fraction of a matrix's (or an FFN's) weights the probe keeps: two points
 * spanning the choices a budget of s = 0.2 .. 0.5 makes (the solve takes single matrices well below
 * the budget's average, where a fit through milder probes would only extrapolate), or one in the
 * middle for the one-probe model. */
static const double PROBE_KEEP[2] = {0.5, 0.15};
static const double PROBE1_KEEP = 0.3;
/* A probe on a few thousand tokens does not resolve loss changes below this (nats per token); a
 * smaller or negative measured increase is read as this, so no matrix looks free to truncate. */
#define DLOSS_FLOOR 1e-5
/* The fitted exponent: at least the second-order model's 1 (a loss that grew slower than the output
 * error would make the deepest truncations look cheapest, and noise in two small increases can
 * suggest exactly that), at most 2.5. */
#define POWER_MIN 1.0
#define POWER_MAX 2.5

void pare_auto_defaults(pare_auto_opts *o)
{
    o->sensitivity = PARE_AUTO_KL;
    o->probe_samples = 4;
    o->keep_least = 0.01;
    o->channels = 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t weights(const pare_linear *l) { return (size_t)l->out * l->in; }

/* Largest rank that still saves parameters: k (m + n) < m n. */
static int max_saving_rank(int m, int n)
{
    long long k = (long long)m * n / (m + n);
    while (k >= 1 && k * (m + n) >= (long long)m * n)
        k--;
    return (int)k;
}

static int prunable_ffn(const pare_block *b) { return b->up.out > 0 && b->down.out > 0; }

/* Channels an FFN of F can lose under LoRAP's selection: keep_least's lowest-scored ones stay, the
 * fraction removed plus keep_least stays within 1 (the plan's rule), and one channel at least stays. */
static int ffn_max_removed(int F, double keep_least)
{
    int lo = (int)pare_prune_count(keep_least, (size_t)F);
    int r = (int)floor((1.0 - keep_least) * F + 1e-9);
    r = F - lo < r ? F - lo : r;
    return F - 1 < r ? F - 1 : r;
}

/* Weights one FFN channel holds: its gate and up rows and its down column. */
static size_t ffn_channel_weights(const pare_block *b)
{
    return (b->gate.out ? (size_t)b->gate.in : 0) + (size_t)b->up.in + (size_t)b->down.out;
}

/* The fewest weights blocks >= first (still dense) can keep: every matrix at rank 1, or dense where
 * rank 1 saves nothing, each FFN at that or at its narrowest when channels are a choice. */
static double smallest_kept(const pare_model *m, int first, double keep_least, int channels)
{
    double total = 0;
    for (int bi = first; bi < m->cfg.n_layers; bi++) {
        const pare_block *b = &m->blocks[bi];
        int chan = channels && prunable_ffn(b);
        double ffn = 0;
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            const pare_linear *l = &b->lin[k];
            if (!l->out)
                continue;
            double p = max_saving_rank(l->out, l->in) >= 1 ? (double)(l->out + l->in) : (double)weights(l);
            if (pare_lin_kinds[k].ffn && chan)
                ffn += p;
            else
                total += p;
        }
        if (chan) {
            double narrow = (double)(b->up.out - ffn_max_removed(b->up.out, keep_least)) * ffn_channel_weights(b);
            total += narrow < ffn ? narrow : ffn;
        }
    }
    return total;
}

/* A ratio shown as the closest feasible value must itself be feasible: round it down. */
static double feasible_floor(double x) { return floor(x * 1e4) / 1e4; }

/* The budget check, from the shapes alone, so an unreachable ratio fails before any work. */
static pare_status check_budget(const pare_model *m, double s, double keep_least, int channels, pare_error *err)
{
    if (!(s > 0.0 && s < 1.0))
        return pare_fail(err, PARE_EINVAL, "ratio %g: the fraction of parameters to remove must be in (0, 1)", s);
    double total = 0;
    for (int bi = 0; bi < m->cfg.n_layers; bi++)
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            total += (double)weights(&m->blocks[bi].lin[k]);
    double fl = smallest_kept(m, 0, keep_least, channels);
    if (fl > (1.0 - s) * total + 1e-6)
        return pare_fail(err, PARE_EINVAL,
                         "ratio %g cannot be met by the auto policy: every matrix at its smallest choice (rank 1, or "
                         "its FFN at its narrowest) keeps %.0f of %.0f block-linear weights; largest feasible ratio "
                         "%.4f",
                         s, fl, total, feasible_floor(1.0 - fl / total));
    return PARE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Curves
 * ------------------------------------------------------------------------------------------- */

/* err[k] = Σ_{i>=k} s_i² (0-based s): the energy dropped when keeping the top k values. */
static void curve_from_values(pare_auto_matrix *am, const double *s)
{
    am->err[am->r] = 0;
    for (int k = am->r - 1; k >= 0; k--)
        am->err[k] = am->err[k + 1] + s[k] * s[k];
}

/* The whitened curve of block linear l from the statistics of the model as it is now. */
static pare_status matrix_curve(const pare_model *m, const pare_calib_stats *cs, const pare_linear *l,
                                pare_auto_matrix *am, pare_error *err)
{
    double *norms = malloc((size_t)l->in * sizeof *norms), *s = malloc((size_t)am->r * sizeof *s);
    pare_status rc = PARE_OK;
    if (!norms || !s)
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for its spectrum", l->name);
    pare_spectrum_opts so;
    if (!rc)
        rc = pare_linear_spectrum_opts(m, cs, l, PARE_WEIGHT_WHITEN, norms, &so, err);
    if (!rc)
        rc = pare_linear_spectrum(l, &so, s, NULL, err);
    if (!rc)
        curve_from_values(am, s);
    free(norms);
    free(s);
    return rc;
}

typedef struct {
    double score;
    int index;
} scored_channel;

/* pare_chan_select's order: score ascending, of equal scores the higher index first. */
static int cmp_channel(const void *pa, const void *pb)
{
    const scored_channel *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return a->index > b->index ? -1 : a->index < b->index;
}

/* The FFN's channel curve: removing the channel set R leaves the down projection's output short by
 * W_down[:, R] Z_R, whose energy on the calibration tokens is Σ_{a,b∈R} (W_dᵀW_d)_ab G_ab with G the
 * Gram of down's input. R grows in LoRAP's removal order, so each channel adds one row of sums.
 * *energy gets the same sum over every channel (down's whole output energy). */
static pare_status ffn_curve(const pare_block *b, const pare_input_stats *sites, double keep_least, pare_auto_ffn *af,
                             double *energy, pare_error *err)
{
    int F = b->up.out, C = b->down.out;
    const pare_input_stats *z = &sites[PARE_IN_DOWN];
    if (z->dim != F || !z->gram)
        return pare_fail(err, PARE_EINVAL, "%s: the FFN channel curve needs the Gram of its %d inputs", b->down.name, F);
    double *scores = malloc((size_t)F * sizeof *scores), *wd = malloc((size_t)C * F * sizeof *wd);
    double *gram_w = malloc((size_t)F * F * sizeof *gram_w); /* [F, F] W_dᵀ W_d */
    float *wf = malloc((size_t)C * F * sizeof *wf);
    scored_channel *order = malloc((size_t)F * sizeof *order);
    pare_status rc = PARE_OK;
    if (!scores || !wd || !gram_w || !wf || !order)
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for the channel curve (%d channels)", b->down.name, F);
    if (!rc)
        rc = pare_ffn_channel_scores(b, sites, PARE_CHAN_LORAP, scores, err);
    if (!rc) {
        for (int i = 0; i < F; i++)
            order[i] = (scored_channel){scores[i], i};
        qsort(order, (size_t)F, sizeof *order, cmp_channel);
        pare_linear_dense(&b->down, wf);
        for (size_t i = 0; i < (size_t)C * F; i++)
            wd[i] = wf[i];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, F, F, C, 1.0, wd, F, wd, F, 0.0, gram_w, F);
        const double *G = z->gram;
        int lo = (int)pare_prune_count(keep_least, (size_t)F);
        af->width = F;
        af->max_removed = ffn_max_removed(F, keep_least);
        af->params_per_channel = ffn_channel_weights(b);
        af->err[0] = 0;
        for (int c = 1; c <= af->max_removed; c++) {
            int ch = order[lo + c - 1].index;
            double add = gram_w[(size_t)ch * F + ch] * G[(size_t)ch * F + ch];
            for (int p = 0; p < c - 1; p++) {
                int q = order[lo + p].index;
                add += 2.0 * gram_w[(size_t)ch * F + q] * G[(size_t)ch * F + q];
            }
            af->err[c] = af->err[c - 1] + add;
        }
        double total = 0;
        for (size_t i = 0; i < (size_t)F * F; i++)
            total += gram_w[i] * G[i];
        *energy = total;
    }
    free(scores), free(wd), free(gram_w), free(wf), free(order);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Loss probes
 * ------------------------------------------------------------------------------------------- */

/* KL probes keep the dense model's next-token distribution at each probe position as its KL_TOP most
 * likely tokens and the rest as one outcome: a probe's divergence from it then costs O(KL_TOP) per
 * position beyond the log-sum-exp, and the store stays small at any vocabulary. Merging outcomes can
 * only lower a divergence, and the tail's tokens, each rarely predicted, carry almost none of it. */
#define KL_TOP 256

typedef struct {
    int32_t id;
    float logp; /* the dense model's log-probability */
} kl_token;

/* The dense model's block inputs on the probe windows, so a probe of block b runs blocks b.. only,
 * and for KL probes its next-token distributions. */
typedef struct {
    pare_model *m;
    const int32_t *ids; /* [P, T] */
    int P, T, B;
    int kl;              /* measure KL from the dense model rather than the loss increase */
    int K;               /* kept tokens per position: min(KL_TOP, V) */
    int storing;         /* the dense pass, which records the distributions below */
    float *hidden;       /* [L][P*T, C] */
    double *terms;       /* [B*(T-1)] */
    kl_token *top;       /* [P*(T-1), K] the dense model's K most likely tokens, ids ascending */
    double *rest;        /* [P*(T-1)] their complement's dense probability */
    double *neg_entropy; /* [P*(T-1)] Σ p log p over the K tokens and the rest */
    pare_acts *a;
} prober;

static void prober_free(prober *pr)
{
    free(pr->hidden);
    free(pr->terms);
    free(pr->top);
    free(pr->rest);
    free(pr->neg_entropy);
    pare_acts_free(pr->a);
}

/* log Σ exp(row) and the share of that mass outside top[K] (ids ascending), summed apart rather than
 * as a difference, which would cancel when the top tokens hold nearly everything. */
static double lse_and_rest(const float *row, int V, const kl_token *top, int K, double *rest)
{
    float mx = row[0];
    for (int v = 1; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    double all = 0, tail = 0;
    for (int v = 0, j = 0; v < V; v++) {
        double e = expf(row[v] - mx);
        all += e;
        if (j < K && top[j].id == v)
            j++;
        else
            tail += e;
    }
    *rest = tail / all;
    return (double)mx + log(all);
}

static int cmp_kl_id(const void *pa, const void *pb)
{
    const kl_token *a = pa, *b = pb;
    return (a->id > b->id) - (a->id < b->id);
}

/* Sifts top[i] down the min-heap (by logp) of n. */
static void heap_down(kl_token *top, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < n && top[l].logp < top[s].logp)
            s = l;
        if (r < n && top[r].logp < top[s].logp)
            s = r;
        if (s == i)
            return;
        kl_token t = top[i];
        top[i] = top[s], top[s] = t;
        i = s;
    }
}

/* Records the dense distribution of one position: its K largest logits (a min-heap over the row),
 * their log-probabilities, the rest's probability and Σ p log p; returns the row's log-sum-exp. */
static double record_position(const float *row, int V, kl_token *top, int K, double *rest, double *neg_entropy)
{
    for (int v = 0; v < K; v++)
        top[v] = (kl_token){v, row[v]};
    for (int i = K / 2 - 1; i >= 0; i--)
        heap_down(top, K, i);
    for (int v = K; v < V; v++)
        if (row[v] > top[0].logp) {
            top[0] = (kl_token){v, row[v]};
            heap_down(top, K, 0);
        }
    qsort(top, (size_t)K, sizeof *top, cmp_kl_id);
    double lse = lse_and_rest(row, V, top, K, rest), h = 0;
    for (int j = 0; j < K; j++) {
        top[j].logp = (float)(top[j].logp - lse);
        h += exp(top[j].logp) * top[j].logp;
    }
    *neg_entropy = h + (*rest > 0 ? *rest * log(*rest) : 0);
    return lse;
}

/* KL(dense ‖ probe) at one position over the K tokens and the rest. */
static double position_kl(const float *row, int V, const kl_token *top, int K, double rest, double neg_entropy)
{
    double q_rest, lse = lse_and_rest(row, V, top, K, &q_rest), cross = 0;
    for (int j = 0; j < K; j++)
        cross += exp(top[j].logp) * (row[top[j].id] - lse);
    if (rest > 0)
        cross += rest * log(q_rest > DBL_MIN ? q_rest : DBL_MIN);
    return neg_entropy - cross;
}

/* Summed over every next-token target of the nb windows from s0, from the last block's output x: the
 * NLL, or for KL probes the divergence from the dense model (the dense pass records it and returns
 * its NLL). */
static double batch_score(prober *pr, const float *x, int s0, int nb)
{
    const pare_model *m = pr->m;
    int T = pr->T, V = m->cfg.vocab_size, K = pr->K, rows = nb * (T - 1);
    pare_head_forward(m, pr->a, x, nb, T, PARE_LOGITS_ALL);
    const float *logits = pr->a->logits;
    const int32_t *ids = pr->ids + (size_t)s0 * T;
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (int i = 0; i < rows; i++) {
        int b = i / (T - 1), t = i % (T - 1);
        const float *row = logits + ((size_t)b * T + t) * V;
        size_t at = (size_t)s0 * (T - 1) + i;
        int32_t target = ids[(size_t)b * T + t + 1];
        if (!pr->kl)
            pr->terms[i] = pare_logits_nll(row, V, target);
        else if (pr->storing) /* the dense pass's loss, from the log-sum-exp the record computes */
            pr->terms[i] = record_position(row, V, pr->top + at * K, K, &pr->rest[at], &pr->neg_entropy[at]) -
                           row[target];
        else
            pr->terms[i] = position_kl(row, V, pr->top + at * K, K, pr->rest[at], pr->neg_entropy[at]);
    }
    double sum = 0; /* summed in order: the same windows give the same bits */
    for (int i = 0; i < rows; i++)
        sum += pr->terms[i];
    return sum;
}

static pare_status loss_of(const prober *pr, double nll, double *loss, pare_error *err)
{
    *loss = nll / ((double)pr->P * (pr->T - 1));
    if (!isfinite(*loss))
        return pare_fail(err, PARE_EFORMAT, "%s: non-finite loss on the calibration windows (NaN or Inf in the model?)",
                         pr->m->path);
    return PARE_OK;
}

/* Runs the dense model once, keeping every block's input (and for KL its distributions); *base gets
 * its loss. */
static pare_status prober_init(prober *pr, pare_model *m, const int32_t *ids, int P, int T, int B, int kl, double *base,
                               pare_error *err)
{
    int L = m->cfg.n_layers, C = m->cfg.dim, V = m->cfg.vocab_size;
    B = B < P ? B : P;
    *pr = (prober){.m = m, .ids = ids, .P = P, .T = T, .B = B, .kl = kl, .K = V < KL_TOP ? V : KL_TOP, .storing = 1};
    size_t positions = (size_t)P * (T - 1);
    pr->hidden = malloc((size_t)L * P * T * C * sizeof *pr->hidden);
    pr->terms = malloc((size_t)B * T * sizeof *pr->terms);
    int kl_ok = !kl || ((pr->top = malloc(positions * pr->K * sizeof *pr->top)) &&
                        (pr->rest = malloc(positions * sizeof *pr->rest)) &&
                        (pr->neg_entropy = malloc(positions * sizeof *pr->neg_entropy)));
    pare_status rc = PARE_OK;
    if (!pr->hidden || !pr->terms || !kl_ok)
        rc = pare_fail(err, PARE_ENOMEM, "out of memory for the sensitivity probes (%d windows of %d tokens)", P, T);
    if (!rc)
        rc = pare_acts_alloc(m, B, T, 0, &pr->a, err);
    double nll = 0;
    for (int s0 = 0; !rc && s0 < P; s0 += B) {
        int nb = P - s0 < B ? P - s0 : B;
        if ((rc = pare_embed_forward(m, pr->a, ids + (size_t)s0 * T, nb, T, err)))
            break;
        const float *x = pr->a->emb;
        for (int l = 0; l < L; l++) {
            memcpy(pr->hidden + ((size_t)l * P + s0) * T * C, x, (size_t)nb * T * C * sizeof(float));
            x = pare_block_forward(m, l, pr->a, x, nb, T);
        }
        nll += batch_score(pr, x, s0, nb);
    }
    pr->storing = 0;
    if (!rc)
        rc = loss_of(pr, nll, base, err);
    if (rc)
        prober_free(pr);
    return rc;
}

/* The probe measure on the probe windows with the model as it is now, given that blocks < from are as
 * they were: the loss, or for KL probes the mean divergence from the dense model. */
static pare_status probe_loss(prober *pr, int from, double *loss, pare_error *err)
{
    const pare_model *m = pr->m;
    int C = m->cfg.dim;
    double sum = 0;
    for (int s0 = 0; s0 < pr->P; s0 += pr->B) {
        int nb = pr->P - s0 < pr->B ? pr->P - s0 : pr->B;
        const float *x = pr->hidden + ((size_t)from * pr->P + s0) * pr->T * C;
        for (int l = from; l < m->cfg.n_layers; l++)
            x = pare_block_forward(m, l, pr->a, x, nb, pr->T);
        sum += batch_score(pr, x, s0, nb);
    }
    return loss_of(pr, sum, loss, err);
}

/* The losses with block linear `kind` of `block` alone whitened to each of ranks[n] (descending); the
 * layer is restored. One factorization serves every probe: its factors A = U Σ^½, B = Σ^½ Vᵀ L⁻¹ come
 * ordered by singular value, so the first k columns of A and rows of B are the rank-k truncation. */
static pare_status probe_matrix(prober *pr, int block, int kind, const pare_input_stats *sites, const int *ranks, int n,
                                double *losses, pare_error *err)
{
    pare_block *b = &pr->m->blocks[block];
    pare_linear saved = b->lin[kind], trial;
    pare_status rc = pare_linear_clone(&saved, &trial, err);
    if (rc)
        return rc;
    pare_factor_opts fo;
    pare_factor_defaults(&fo);
    fo.weighting = PARE_WEIGHT_WHITEN;
    pare_factor_report fr;
    rc = pare_factorize_linear(&trial, ranks[0], &fo, &sites[pare_linear_site(b, &b->lin[kind])], &fr, err);
    float *a_cols = rc ? NULL : malloc((size_t)trial.out * ranks[0] * sizeof *a_cols);
    if (!rc && !a_cols)
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for its probes", saved.name);
    for (int p = 0; !rc && p < n; p++) {
        if (p > 0) { /* the leading columns of A and rows of B (B rows are contiguous already) */
            int k = ranks[p], k_now = trial.rank;
            for (int i = 0; i < trial.out; i++)
                memcpy(a_cols + (size_t)i * k, trial.A + (size_t)i * k_now, (size_t)k * sizeof *a_cols);
            rc = pare_linear_set_factors(&trial, k, a_cols, trial.B, err);
        }
        if (!rc) {
            b->lin[kind] = trial;
            rc = probe_loss(pr, block, &losses[p], err);
            b->lin[kind] = saved;
        }
    }
    free(a_cols);
    pare_linear_release(&trial);
    return rc;
}

/* The loss with block `block`'s FFN alone narrowed by `removed` channels; the block is restored. */
static pare_status probe_ffn(prober *pr, int block, const pare_input_stats *sites, double keep_least, int removed,
                             double *loss, pare_error *err)
{
    pare_block saved = pr->m->blocks[block], trial = saved;
    int cloned[PARE_LIN_KINDS] = {0};
    pare_status rc = PARE_OK;
    for (int k = 0; k < PARE_LIN_KINDS && !rc; k++)
        if (pare_lin_kinds[k].ffn && saved.lin[k].out && !(rc = pare_linear_clone(&saved.lin[k], &trial.lin[k], err)))
            cloned[k] = 1;
    pare_chan_opts co = {PARE_CHAN_LORAP, (double)removed / saved.up.out, keep_least};
    if (!rc)
        rc = pare_prune_ffn(&trial, sites, &co, NULL, err);
    if (!rc) {
        pr->m->blocks[block] = trial;
        rc = probe_loss(pr, block, loss, err);
        pr->m->blocks[block] = saved;
    }
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (cloned[k])
            pare_linear_release(&trial.lin[k]);
    return rc;
}

/* loss = coef · E^power through the probes (the geometric middle of two, so a clamped exponent
 * misses both equally). */
static void sens_fit(pare_auto_sens *s)
{
    double d0 = fmax(s->probe_dloss[0], DLOSS_FLOOR), e0 = s->probe_error[0];
    double d = d0, e = e0;
    s->power = 1;
    if (s->probes == 2) {
        double d1 = fmax(s->probe_dloss[1], DLOSS_FLOOR), e1 = s->probe_error[1];
        if (e0 > 0 && e1 > 0 && fabs(log(e1 / e0)) > 1e-6) {
            double p = log(d1 / d0) / log(e1 / e0);
            s->power = p < POWER_MIN ? POWER_MIN : p > POWER_MAX ? POWER_MAX : p;
        }
        d = sqrt(d0 * d1), e = sqrt(e0 * e1);
    }
    s->coef = e > 0 ? d / pow(e, s->power) : 0;
}

static void sens_relative(pare_auto_sens *s, double energy)
{
    memset(s, 0, sizeof *s);
    s->power = 1;
    s->coef = energy > 0 ? 1.0 / energy : 0;
}

static double sens_cost(const pare_auto_sens *s, double e) { return e > 0 ? s->coef * pow(e, s->power) : 0; }

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static pare_status measure_sensitivities(pare_model *m, pare_auto_analysis *an, const pare_calib_stats *cs,
                                         const int32_t *ids, const pare_calib_opts *co, const pare_progress *progress,
                                         pare_error *err)
{
    const pare_auto_opts *o = &an->opts;
    int probes = o->sensitivity == PARE_AUTO_PROBE1 ? 1 : 2, kl = o->sensitivity == PARE_AUTO_KL;
    const double *keep = probes == 2 ? PROBE_KEEP : &PROBE1_KEEP;
    int P = o->probe_samples < co->samples ? o->probe_samples : co->samples;
    prober pr;
    pare_status rc = prober_init(&pr, m, ids, P, co->len, co->batch, kl, &an->base_loss, err);
    double zero = kl ? 0 : an->base_loss; /* what a probe that changed nothing would measure */
    if (rc)
        return rc;
    an->probe_tokens = (size_t)P * (co->len - 1);
    int n_ffn = 0;
    for (int b = 0; b < an->n_layers; b++)
        n_ffn += an->ffn[b].width > 0;
    double total = (double)(an->count + n_ffn) * probes, done = 0;
    for (int i = 0; !rc && i < an->count; i++) {
        pare_auto_matrix *am = &an->mats[i];
        pare_auto_sens *s = &am->sens;
        s->probes = probes;
        int k_max = max_saving_rank(am->m, am->n), ranks[2];
        double losses[2] = {0, 0};
        for (int p = 0; p < probes; p++)
            ranks[p] = clamp_int((int)floor(keep[p] * (double)am->m * am->n / (am->m + am->n)), 1, k_max);
        rc = probe_matrix(&pr, am->block, am->kind, cs->sites[am->block], ranks, probes, losses, err);
        for (int p = 0; p < probes; p++) {
            s->probe_amount[p] = ranks[p];
            s->probe_error[p] = am->err[ranks[p]];
            s->probe_dloss[p] = losses[p] - zero;
            an->probe_evals++;
            done++;
        }
        if (!rc)
            rc = pare_report(progress, "sensitivity", done / total, m->blocks[am->block].lin[am->kind].name, err);
        sens_fit(s);
    }
    for (int b = 0; !rc && b < an->n_layers; b++) {
        pare_auto_ffn *af = &an->ffn[b];
        if (!af->width)
            continue;
        af->sens.probes = probes;
        for (int p = 0; !rc && p < probes; p++) {
            int r = clamp_int((int)floor((1.0 - keep[p]) * af->width), 1, af->max_removed);
            double loss = 0;
            rc = probe_ffn(&pr, b, cs->sites[b], o->keep_least, r, &loss, err);
            af->sens.probe_amount[p] = r;
            af->sens.probe_error[p] = af->err[r];
            af->sens.probe_dloss[p] = loss - zero;
            an->probe_evals++;
            char detail[64];
            snprintf(detail, sizeof detail, "block %d FFN channels", b);
            if (!rc)
                rc = pare_report(progress, "sensitivity", ++done / total, detail, err);
        }
        sens_fit(&af->sens);
    }
    prober_free(&pr);
    return rc;
}

void pare_auto_analysis_free(pare_auto_analysis *a)
{
    if (!a)
        return;
    for (int i = 0; a->mats && i < a->count; i++)
        free(a->mats[i].err);
    for (int b = 0; a->ffn && b < a->n_layers; b++)
        free(a->ffn[b].err);
    free(a->mats);
    free(a->ffn);
    free(a);
}

/* The curves of block `layer` from statistics of the model as it is now (RELATIVE re-normalizes). */
static pare_status block_curves(pare_model *m, pare_auto_analysis *an, int layer, const pare_calib_stats *cs,
                                pare_error *err)
{
    pare_status rc = PARE_OK;
    for (int i = 0; !rc && i < an->count; i++) {
        pare_auto_matrix *am = &an->mats[i];
        if (am->block != layer)
            continue;
        rc = matrix_curve(m, cs, &m->blocks[layer].lin[am->kind], am, err);
        if (!rc && an->opts.sensitivity == PARE_AUTO_RELATIVE)
            sens_relative(&am->sens, am->err[0]);
    }
    pare_auto_ffn *af = &an->ffn[layer];
    double energy = 0;
    if (!rc && af->width)
        rc = ffn_curve(&m->blocks[layer], cs->sites[layer], an->opts.keep_least, af, &energy, err);
    if (!rc && af->width && an->opts.sensitivity == PARE_AUTO_RELATIVE)
        sens_relative(&af->sens, energy);
    return rc;
}

pare_status pare_auto_analyze(pare_model *m, const int32_t *ids, const pare_calib_opts *co, const pare_auto_opts *o,
                              const pare_progress *progress, pare_auto_analysis **out, pare_error *err)
{
    *out = NULL;
    double t0 = now_seconds();
    if (!ids)
        return pare_fail(err, PARE_EINVAL, "method auto needs calibration data (--calib FILE)");
    if (pare_model_streamed(m)) /* its probes truncate every matrix of the dense model in turn */
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: method auto does not run on a streamed model yet; give more memory (--memory-limit) or "
                         "--stream off",
                         m->path);
    if (o->probe_samples < 1)
        return pare_fail(err, PARE_EINVAL, "probe_samples %d: the sensitivity probes need at least one window",
                         o->probe_samples);
    if (!(o->keep_least >= 0 && o->keep_least < 1))
        return pare_fail(err, PARE_EINVAL, "keep_least %g: must be in [0, 1)", o->keep_least);
    if ((unsigned)o->sensitivity > PARE_AUTO_KL)
        return pare_fail(err, PARE_EINVAL, "sensitivity %d: expected kl, probe, probe1 or relative",
                         (int)o->sensitivity);
    pare_linear *lin[PARE_MAX_LINEARS];
    int count = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    for (int i = 0; i < count; i++)
        if (lin[i]->kind != PARE_LIN_DENSE || lin[i]->kept_in || lin[i]->kept_out)
            return pare_fail(err, PARE_EINVAL, "%s is already compressed: method auto plans a dense model",
                             lin[i]->name);
    pare_auto_analysis *an = calloc(1, sizeof *an);
    pare_status rc = PARE_OK;
    if (!an || !(an->mats = calloc((size_t)count, sizeof *an->mats)) ||
        !(an->ffn = calloc((size_t)m->cfg.n_layers, sizeof *an->ffn))) {
        pare_auto_analysis_free(an);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the auto analysis");
    }
    an->count = count;
    an->n_layers = m->cfg.n_layers;
    an->opts = *o;
    for (int i = 0, b = 0; b < m->cfg.n_layers; b++) {
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            pare_linear *l = &m->blocks[b].lin[k];
            if (!l->out)
                continue;
            pare_auto_matrix *am = &an->mats[i++];
            *am = (pare_auto_matrix){
                .block = b, .kind = k, .m = l->out, .n = l->in, .r = l->out < l->in ? l->out : l->in};
            if (!(am->err = calloc((size_t)am->r + 1, sizeof *am->err)))
                rc = PARE_ENOMEM;
        }
        if (o->channels && prunable_ffn(&m->blocks[b]) &&
            !(an->ffn[b].err = calloc((size_t)m->blocks[b].up.out + 1, sizeof *an->ffn[b].err)))
            rc = PARE_ENOMEM;
    }
    if (rc) {
        pare_auto_analysis_free(an);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the auto analysis curves");
    }
    pare_calib_opts c = *co;
    c.gram = 1;
    pare_calib_stats *cs = NULL;
    pare_model_spectra *sp = NULL;
    rc = pare_calibrate(m, ids, &c, NULL, NULL, progress, &cs, err);
    if (!rc)
        rc = pare_model_spectra_weighted(m, cs, PARE_WEIGHT_WHITEN, progress, &sp, err);
    for (int i = 0; !rc && i < count; i++) {
        curve_from_values(&an->mats[i], sp->mats[i].s);
        sens_relative(&an->mats[i].sens, an->mats[i].err[0]);
    }
    for (int b = 0; !rc && b < an->n_layers; b++) {
        double energy = 0;
        if (an->ffn[b].err && !(rc = ffn_curve(&m->blocks[b], cs->sites[b], o->keep_least, &an->ffn[b], &energy, err)))
            sens_relative(&an->ffn[b].sens, energy);
    }
    if (!rc && o->sensitivity != PARE_AUTO_RELATIVE)
        rc = measure_sensitivities(m, an, cs, ids, &c, progress, err);
    pare_model_spectra_free(sp);
    pare_calib_free(cs);
    if (rc) {
        pare_auto_analysis_free(an);
        return rc;
    }
    an->seconds = now_seconds() - t0;
    *out = an;
    return PARE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The budget solve
 * ------------------------------------------------------------------------------------------- */

/* The choices: rank[i] -1 dense, >= 1 factorized, 0 sliced with its block's FFN; removed[b] FFN
 * channels removed (0: the FFN's matrices decide one by one). */
typedef struct {
    const pare_auto_analysis *a;
    int first; /* blocks before it are fixed elsewhere */
    int *k_max;
    double **mcost; /* [count][k_max + 1] predicted loss at each rank that saves */
    double **fcost; /* [L][max_removed + 1] */
    int *rank, *removed;
} solver;

static void solver_free(solver *sv)
{
    for (int i = 0; sv->mcost && i < sv->a->count; i++)
        free(sv->mcost[i]);
    for (int b = 0; sv->fcost && b < sv->a->n_layers; b++)
        free(sv->fcost[b]);
    free(sv->mcost), free(sv->fcost), free(sv->k_max), free(sv->rank), free(sv->removed);
}

static pare_status solver_init(solver *sv, const pare_auto_analysis *a, int first, pare_error *err)
{
    memset(sv, 0, sizeof *sv);
    sv->a = a;
    sv->first = first;
    int ok = (sv->mcost = calloc((size_t)a->count, sizeof *sv->mcost)) &&
             (sv->fcost = calloc((size_t)a->n_layers, sizeof *sv->fcost)) &&
             (sv->k_max = calloc((size_t)a->count, sizeof *sv->k_max)) &&
             (sv->rank = calloc((size_t)a->count, sizeof *sv->rank)) &&
             (sv->removed = calloc((size_t)a->n_layers, sizeof *sv->removed));
    for (int i = 0; ok && i < a->count; i++) {
        const pare_auto_matrix *am = &a->mats[i];
        sv->k_max[i] = max_saving_rank(am->m, am->n);
        if (!(ok = (sv->mcost[i] = malloc(((size_t)sv->k_max[i] + 1) * sizeof(double))) != NULL))
            break;
        for (int k = 1; k <= sv->k_max[i]; k++)
            sv->mcost[i][k] = sens_cost(&am->sens, am->err[k]);
    }
    for (int b = 0; ok && b < a->n_layers; b++) {
        const pare_auto_ffn *af = &a->ffn[b];
        if (!af->width)
            continue;
        if (!(ok = (sv->fcost[b] = malloc(((size_t)af->max_removed + 1) * sizeof(double))) != NULL))
            break;
        for (int r = 0; r <= af->max_removed; r++)
            sv->fcost[b][r] = sens_cost(&af->sens, af->err[r]);
    }
    if (!ok) {
        solver_free(sv);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the auto budget solve");
    }
    return PARE_OK;
}

static double mat_params(const pare_auto_matrix *am, int k)
{
    return k < 0 ? (double)am->m * am->n : (double)k * (am->m + am->n);
}

static double ffn_params(const pare_auto_ffn *af, int r) { return (double)(af->width - r) * af->params_per_channel; }

/* The cheapest choice of matrix i at multiplier lambda: its rank (-1 dense) and objective. */
static int best_rank(const solver *sv, int i, double lambda, double *objective)
{
    const pare_auto_matrix *am = &sv->a->mats[i];
    int best = -1;
    double obj = lambda * mat_params(am, -1);
    for (int k = 1; k <= sv->k_max[i]; k++) {
        double v = sv->mcost[i][k] + lambda * mat_params(am, k);
        if (v < obj)
            obj = v, best = k;
    }
    *objective = obj;
    return best;
}

/* Every block >= first chooses at lambda; returns the parameters they keep. */
static double choose(solver *sv, double lambda)
{
    const pare_auto_analysis *a = sv->a;
    double params = 0;
    for (int b = sv->first; b < a->n_layers; b++) {
        double ffn_obj = 0, ffn_kept = 0;
        for (int i = 0; i < a->count; i++) {
            const pare_auto_matrix *am = &a->mats[i];
            if (am->block != b)
                continue;
            double obj;
            sv->rank[i] = best_rank(sv, i, lambda, &obj);
            if (pare_lin_kinds[am->kind].ffn && a->ffn[b].width)
                ffn_obj += obj, ffn_kept += mat_params(am, sv->rank[i]);
            else
                params += mat_params(am, sv->rank[i]);
        }
        sv->removed[b] = 0;
        const pare_auto_ffn *af = &a->ffn[b];
        for (int r = 1; r <= af->max_removed && af->width; r++) {
            double v = sv->fcost[b][r] + lambda * ffn_params(af, r);
            if (v < ffn_obj)
                ffn_obj = v, sv->removed[b] = r;
        }
        params += sv->removed[b] ? ffn_params(af, sv->removed[b]) : ffn_kept;
        for (int i = 0; sv->removed[b] && i < a->count; i++)
            if (a->mats[i].block == b && pare_lin_kinds[a->mats[i].kind].ffn)
                sv->rank[i] = 0;
    }
    return params;
}

/* Spends room (parameters under the budget) on the steps back up that buy the largest predicted
 * loss decrease per parameter, until no step fits. Returns the parameters added. */
static double fill(solver *sv, double room)
{
    const pare_auto_analysis *a = sv->a;
    double added = 0;
    for (int iter = 0; iter < 1000000; iter++) {
        double best_ratio = -1, best_dp = 0;
        int best_i = -1, best_to = 0, best_b = -1;
        for (int i = 0; i < a->count; i++) {
            const pare_auto_matrix *am = &a->mats[i];
            int k = sv->rank[i];
            if (am->block < sv->first || k < 1)
                continue;
            for (int to = k + 1; to <= sv->k_max[i] + 1; to++) { /* k_max + 1 stands for dense */
                int dense = to > sv->k_max[i];
                double dp = mat_params(am, dense ? -1 : to) - mat_params(am, k);
                if (dp > room - added)
                    break;
                double gain = sv->mcost[i][k] - (dense ? 0 : sv->mcost[i][to]);
                if (gain / dp > best_ratio)
                    best_ratio = gain / dp, best_dp = dp, best_i = i, best_to = dense ? -1 : to, best_b = -1;
            }
        }
        for (int b = sv->first; b < a->n_layers; b++) {
            const pare_auto_ffn *af = &a->ffn[b];
            int r = sv->removed[b];
            for (int to = r - 1; r > 0 && to >= 0; to--) {
                double dp = ffn_params(af, to) - ffn_params(af, r);
                if (dp > room - added)
                    break;
                double gain = sv->fcost[b][r] - sv->fcost[b][to];
                if (gain / dp > best_ratio)
                    best_ratio = gain / dp, best_dp = dp, best_b = b, best_to = to, best_i = -1;
            }
        }
        if (best_i < 0 && best_b < 0)
            break;
        if (best_i >= 0) {
            sv->rank[best_i] = best_to;
        } else if ((sv->removed[best_b] = best_to) == 0) { /* the FFN back to its matrices, dense */
            for (int i = 0; i < a->count; i++)
                if (a->mats[i].block == best_b && pare_lin_kinds[a->mats[i].kind].ffn)
                    sv->rank[i] = -1;
        }
        added += best_dp;
    }
    return added;
}

/* Solves blocks >= first for target kept parameters, into a full plan of m (blocks < first dense in
 * it) and predicted[count] (may be NULL). */
static pare_status solve_blocks(pare_model *m, const pare_auto_analysis *a, int first, double target, pare_plan *plan,
                                double *predicted, pare_error *err)
{
    memset(plan, 0, sizeof *plan);
    double fl = smallest_kept(m, first, a->opts.keep_least, a->opts.channels);
    if (fl > target + 1e-6)
        return pare_fail(err, PARE_EINVAL, "auto: blocks %d.. need at least %.0f weights, %.0f are left for them",
                         first, fl, target);
    solver sv;
    pare_status rc = solver_init(&sv, a, first, err);
    if (rc)
        return rc;
    /* params(lambda) falls as lambda grows; bisect in log10 lambda for the first lambda within budget */
    double lo = -30, hi = 10;
    for (int it = 0; it < 100; it++) {
        double mid = 0.5 * (lo + hi);
        if (choose(&sv, pow(10, mid)) <= target + 1e-6)
            hi = mid;
        else
            lo = mid;
    }
    double kept = choose(&sv, pow(10, hi));
    fill(&sv, target - kept);
    pare_plan_how how;
    pare_plan_how_defaults(&how);
    how.weighting = PARE_WEIGHT_WHITEN;
    how.chan_score = PARE_CHAN_LORAP;
    how.keep_least = a->opts.keep_least;
    rc = pare_plan_dense(m, &how, plan, err);
    for (int i = 0; !rc && i < a->count; i++) {
        const pare_auto_matrix *am = &a->mats[i];
        pare_plan_item *it = &plan->items[i];
        double cost = 0;
        if (am->block < first)
            continue;
        if (sv.rank[i] >= 1) {
            rc = pare_plan_item_set(m, it, PARE_PLAN_FACTOR, sv.rank[i], NULL, err);
            cost = sv.mcost[i][sv.rank[i]];
        } else if (sv.rank[i] == 0) {
            const pare_auto_ffn *af = &a->ffn[am->block];
            rc = pare_plan_item_set(m, it, PARE_PLAN_CHANNELS, (double)sv.removed[am->block] / af->width, NULL, err);
            cost = am->kind == PARE_LIN_DOWN ? sv.fcost[am->block][sv.removed[am->block]] : 0;
        }
        if (predicted)
            predicted[i] = cost;
    }
    if (!rc)
        rc = pare_plan_recount(m, plan, err);
    if (rc)
        pare_plan_free(plan);
    solver_free(&sv);
    return rc;
}

static pare_status solve_ratio(pare_model *m, const pare_auto_analysis *a, double s, pare_plan *plan, double *predicted,
                               pare_error *err)
{
    pare_linear *lin[PARE_MAX_LINEARS];
    int count = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    if (count != a->count)
        return pare_fail(err, PARE_EINVAL, "the auto analysis covers %d matrices but the model has %d", a->count, count);
    pare_status rc = check_budget(m, s, a->opts.keep_least, a->opts.channels, err);
    double total = 0;
    for (int i = 0; i < count; i++)
        total += (double)weights(lin[i]);
    return rc ? rc : solve_blocks(m, a, 0, (1.0 - s) * total, plan, predicted, err);
}

pare_status pare_auto_solve(pare_model *m, const pare_auto_analysis *a, double s, pare_plan *plan, pare_error *err)
{
    memset(plan, 0, sizeof *plan);
    return solve_ratio(m, a, s, plan, NULL, err);
}

double pare_auto_predict(const pare_auto_analysis *a, const pare_plan *plan, double *per_item)
{
    if (plan->count != a->count)
        return NAN;
    double total = 0;
    for (int i = 0; i < plan->count; i++) {
        const pare_plan_item *it = &plan->items[i];
        const pare_auto_matrix *am = &a->mats[i];
        double cost = 0;
        if (it->action == PARE_PLAN_FACTOR && it->rank >= 0 && it->rank <= am->r)
            cost = sens_cost(&am->sens, am->err[it->rank]);
        else if (it->action == PARE_PLAN_CHANNELS && am->kind == PARE_LIN_DOWN) {
            const pare_auto_ffn *af = &a->ffn[am->block];
            int removed = (int)floor(it->channel_frac * af->width + 0.5);
            if (!af->err || removed > af->max_removed)
                return NAN;
            cost = sens_cost(&af->sens, af->err[removed]);
        } else if (it->action == PARE_PLAN_MASK || it->action == PARE_PLAN_FACTOR)
            return NAN;
        if (per_item)
            per_item[i] = cost;
        total += cost;
    }
    return total;
}

/* ---------------------------------------------------------------------------------------------
 * Sequential application
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    pare_auto_analysis *a;
    pare_plan *decided; /* items filled in block by block */
    double *predicted;
    double target, kept_before; /* kept_before: what blocks < layer keep */
    pare_apply_report *rep;
} sequential_ctx;

static pare_status decide_block(void *user, pare_model *m, int layer, const pare_calib_stats *stats, pare_error *err)
{
    sequential_ctx *c = user;
    pare_status rc = block_curves(m, c->a, layer, stats, err);
    if (rc)
        return rc;
    pare_plan plan = {0};
    double *pred = calloc((size_t)c->a->count, sizeof *pred);
    if (!pred)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    rc = solve_blocks(m, c->a, layer, c->target - c->kept_before, &plan, pred, err);
    for (int i = 0; !rc && i < plan.count; i++) {
        if (c->a->mats[i].block != layer)
            continue;
        c->decided->items[i] = plan.items[i];
        c->predicted[i] = pred[i];
        c->kept_before += (double)plan.items[i].params_after;
    }
    if (!rc)
        rc = pare_apply_block(m, &plan, layer, stats->sites[layer], c->rep, err);
    free(pred);
    pare_plan_free(&plan);
    return rc;
}

void pare_auto_record_free(pare_auto_record *r)
{
    if (!r)
        return;
    pare_auto_analysis_free(r->analysis);
    pare_plan_free(&r->plan);
    free(r->predicted);
    memset(r, 0, sizeof *r);
}

pare_status pare_auto_compress(pare_model *m, const int32_t *ids, const pare_calib_opts *co, const pare_auto_opts *o,
                               double s, const pare_progress *progress, pare_apply_report *rep, pare_auto_record *rec,
                               pare_error *err)
{
    pare_auto_record local = {0};
    pare_auto_record *r = rec ? rec : &local;
    memset(r, 0, sizeof *r);
    memset(rep, 0, sizeof *rep);
    pare_status rc = check_budget(m, s, o->keep_least, o->channels, err);
    if (!rc)
        rc = pare_auto_analyze(m, ids, co, o, progress, &r->analysis, err);
    pare_plan first = {0};
    if (!rc && !(r->predicted = calloc((size_t)r->analysis->count, sizeof *r->predicted)))
        rc = pare_fail(err, PARE_ENOMEM, "out of memory");
    if (!rc) {
        double t0 = now_seconds();
        rc = solve_ratio(m, r->analysis, s, &first, r->predicted, err);
        r->solve_ms = 1e3 * (now_seconds() - t0);
    }
    if (!rc) { /* the decided plan starts as the dense one, items replaced as blocks are decided */
        pare_plan_how how = first.items[0].how;
        rc = pare_plan_dense(m, &how, &r->plan, err);
    }
    if (!rc) {
        double t0 = now_seconds();
        pare_param_counts pc;
        pare_model_param_counts(m, &pc);
        rep->params_before = pc.block_linear;
        sequential_ctx c = {r->analysis, &r->plan, r->predicted, (1.0 - s) * (double)r->plan.params_before, 0, rep};
        pare_calib_opts opts = *co;
        opts.gram = 1;
        pare_calib_stats *st = NULL;
        rc = pare_calibrate(m, ids, &opts, decide_block, &c, progress, &st, err);
        pare_calib_free(st);
        r->plan.params_after = 0;
        for (int i = 0; i < r->plan.count; i++)
            r->plan.params_after += r->plan.items[i].params_after;
        pare_model_param_counts(m, &pc);
        rep->params_after = pc.block_linear;
        r->apply_seconds = now_seconds() - t0;
    }
    pare_plan_free(&first);
    if (rc || !rec)
        pare_auto_record_free(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Record
 * ------------------------------------------------------------------------------------------- */

static json_t *sens_json(const pare_auto_sens *s, const char *amount)
{
    json_t *probes = json_array();
    for (int p = 0; p < s->probes; p++)
        json_array_append_new(probes, json_pack("{s:i, s:f, s:f}", amount, s->probe_amount[p], "error",
                                                s->probe_error[p], "dloss", s->probe_dloss[p]));
    return json_pack("{s:f, s:f, s:o}", "coef", s->coef, "power", s->power, "probes", probes);
}

json_t *pare_auto_record_json(const pare_auto_record *r)
{
    static const char *const ACTIONS[] = {"dense", "factorize", "channels", "mask"};
    const pare_auto_analysis *a = r->analysis;
    json_t *items = json_array();
    for (int i = 0; i < r->plan.count; i++) {
        const pare_plan_item *it = &r->plan.items[i];
        const pare_auto_matrix *am = &a->mats[i];
        json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:f, s:o}", "name", it->linear->name, "action", ACTIONS[it->action],
                              "params_before", (json_int_t)it->params_before, "params_after",
                              (json_int_t)it->params_after, "predicted_dloss", r->predicted[i], "sensitivity",
                              sens_json(&am->sens, "rank"));
        if (it->action == PARE_PLAN_FACTOR)
            json_object_set_new(d, "rank", json_integer(it->rank));
        if (it->action == PARE_PLAN_CHANNELS) {
            const pare_auto_ffn *af = &a->ffn[am->block];
            json_object_set_new(d, "channels_removed",
                                json_integer((json_int_t)floor(it->channel_frac * af->width + 0.5)));
            json_object_set_new(d, "ffn_sensitivity", sens_json(&af->sens, "channels_removed"));
        }
        json_array_append_new(items, d);
    }
    return json_pack("{s:s, s:I, s:f, s:i, s:f, s:f, s:f, s:I, s:I, s:o}", "sensitivity",
                     PARE_AUTO_SENSITIVITY_NAMES[a->opts.sensitivity], "probe_tokens", (json_int_t)a->probe_tokens,
                     "base_loss", a->base_loss, "probe_evals", a->probe_evals, "sensitivity_s", a->seconds, "solve_ms",
                     r->solve_ms, "apply_s", r->apply_seconds, "params_before", (json_int_t)r->plan.params_before,
                     "params_after", (json_int_t)r->plan.params_after, "decisions", items);
}

pare_status pare_auto_check_budget(const pare_model *m, double s, const pare_auto_opts *o, pare_error *err)
{
    return check_budget(m, s, o->keep_least, o->channels, err);
}

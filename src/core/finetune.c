/* Fine-tuning runs on top of the training engine: seeded windows from a cached token stream, the step
 * (pruning scores and masks, mixed-rank substitution, distillation), atomic checkpoints and exact
 * resume. Everything random is a hash of (seed, step, index), so step N of a resumed run sees the
 * data and draws of step N of an uninterrupted one. */
#include "finetune.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backward.h"
#include "export.h"
#include "fileio.h"
#include "forward.h"
#include "parallel.h"
#include "safetensors.h"
#include "sha256.h"
#include "tokenizer.h"
#include "json_number.h"

/* ---------------------------------------------------------------- hashing */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A 64-bit hash of (a, b, c): chained splitmix64, so nearby inputs give unrelated outputs. */
static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a;
    s = splitmix64(&s) ^ b;
    s = splitmix64(&s) ^ c;
    return splitmix64(&s);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- data */

#define TOKENS_MAGIC "PARETOK1"

static void tokenizer_fingerprint(const pare_model *m, char out[17])
{
    static const char probe[] = "Once upon a time, a little girl named Lily found a shiny red ball. 0123456789 "
                                "\xc3\x9c\x6e\xc3\xaf \xe2\x80\x94 \xe6\xbc\xa2\xe5\xad\x97\n\t  The end.";
    pare_sha256 h;
    pare_sha256_init(&h);
    const char *d = pare_tokenizer_describe(m->tok);
    pare_sha256_update(&h, d, strlen(d));
    int32_t v = pare_tokenizer_vocab_size(m->tok);
    pare_sha256_update(&h, &v, sizeof v);
    int32_t *ids = NULL;
    size_t n = 0;
    pare_error e;
    if (pare_tokenizer_encode(m->tok, probe, sizeof probe - 1, 0, &ids, &n, &e) == PARE_OK)
        pare_sha256_update(&h, ids, n * sizeof *ids);
    free(ids);
    char hex[65];
    pare_sha256_final(&h, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

/* Reads a cache file written by write_cache; non-zero when it is absent or does not match. */
static int read_cache(const char *path, const char *sha, const pare_model *m, int32_t **ids, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[8], hsha[64];
    uint64_t count = 0;
    int bad = fread(magic, 1, 8, f) != 8 || memcmp(magic, TOKENS_MAGIC, 8) != 0 || fread(hsha, 1, 64, f) != 64 ||
              memcmp(hsha, sha, 64) != 0 || fread(&count, sizeof count, 1, f) != 1 || count == 0 ||
              count > ((uint64_t)1 << 36);
    int32_t *p = bad ? NULL : malloc((size_t)count * sizeof *p);
    if (!bad && (!p || fread(p, sizeof *p, (size_t)count, f) != count))
        bad = 1;
    char extra;
    if (!bad && fread(&extra, 1, 1, f) != 0)
        bad = 1; /* trailing bytes: not what write_cache writes */
    fclose(f);
    for (size_t i = 0; !bad && i < count; i++)
        if (p[i] < 0 || p[i] >= m->cfg.vocab_size)
            bad = 1;
    if (bad) {
        free(p);
        return -1;
    }
    *ids = p;
    *n = (size_t)count;
    return 0;
}

static pare_status write_cache(const char *path, const char *sha, const int32_t *ids, size_t n, pare_error *err)
{
    pare_atomic_file f;
    pare_status rc = pare_atomic_open(&f, path, err);
    if (rc)
        return rc;
    uint64_t count = n;
    fwrite(TOKENS_MAGIC, 1, 8, f.fp);
    fwrite(sha, 1, 64, f.fp);
    fwrite(&count, sizeof count, 1, f.fp);
    fwrite(ids, sizeof *ids, n, f.fp);
    return pare_atomic_commit(&f, err);
}

pare_status pare_tokens_open(const pare_model *m, const char *path, const char *cache_dir, pare_token_stream *out,
                             pare_error *err)
{
    memset(out, 0, sizeof *out);
    if (!m->tok)
        return pare_fail(err, PARE_EINVAL, "%s: the model has no tokenizer to read %s with", m->path, path);
    snprintf(out->path, sizeof out->path, "%s", path);
    pare_status rc = pare_sha256_file(path, out->sha256, err);
    if (rc)
        return rc;
    if (cache_dir) {
        char fp[17];
        tokenizer_fingerprint(m, fp);
        if (mkdir(cache_dir, 0777) != 0 && errno != EEXIST)
            return pare_fail(err, PARE_EIO, "%s: cannot create the token cache folder: %s", cache_dir, strerror(errno));
        int w = snprintf(out->cache_path, sizeof out->cache_path, "%s/tokens-%.16s-%s.bin", cache_dir, out->sha256, fp);
        if (w < 0 || (size_t)w >= sizeof out->cache_path)
            return pare_fail(err, PARE_EINVAL, "%s: token cache path too long", cache_dir);
        if (read_cache(out->cache_path, out->sha256, m, &out->ids, &out->n) == 0) {
            out->from_cache = 1;
            return PARE_OK;
        }
    }
    if ((rc = pare_model_tokenize_file(m, path, &out->ids, &out->n, err)))
        return rc;
    if (cache_dir && (rc = write_cache(out->cache_path, out->sha256, out->ids, out->n, err))) {
        pare_tokens_close(out);
        return rc;
    }
    return PARE_OK;
}

void pare_tokens_close(pare_token_stream *s)
{
    free(s->ids);
    s->ids = NULL;
    s->n = 0;
}

pare_status pare_train_windows(const pare_token_stream *s, uint64_t seed, long step, int count, int seq, int32_t *out,
                               pare_error *err)
{
    if (seq < 2 || count < 1)
        return pare_fail(err, PARE_EINVAL, "training windows: %d windows of %d tokens; need at least 1 of 2", count, seq);
    if (s->n < (size_t)seq)
        return pare_fail(err, PARE_EINVAL, "%s: %zu tokens, shorter than one training window of %d", s->path, s->n, seq);
    size_t starts = s->n - (size_t)seq + 1;
    for (int i = 0; i < count; i++) {
        size_t start = (size_t)(hash3(seed, (uint64_t)step, (uint64_t)i) % starts);
        memcpy(out + (size_t)i * seq, s->ids + start, (size_t)seq * sizeof *out);
    }
    return PARE_OK;
}

/* ---------------------------------------------------------------- the run */

void pare_ft_defaults(pare_ft_opts *o)
{
    memset(o, 0, sizeof *o);
    pare_train_defaults(&o->train);
    o->steps = 1000;
    pare_fop_defaults(&o->fop);
    o->mix_span = 0.5;
    o->distill_temp = 1.0;
}

double pare_ft_mix_prob(const pare_ft_opts *o, long step)
{
    double end = o->mix_span * (double)o->steps;
    if (!(o->mix_p0 > 0) || !(end > 0) || (double)step >= end)
        return 0.0;
    return o->mix_p0 * (1.0 - (double)step / end);
}

struct pare_ft {
    pare_model *m;
    const pare_token_stream *data;
    pare_ft_opts o;
    pare_trainer *t;
    pare_fop_state *fop;
    int32_t *ids, *targets; /* [accum * batch * seq] */
    /* mixed rank: factorized linears of m and their full-rank counterparts in o.sparse */
    int n_mix;
    pare_linear **mix_f, **mix_s;
    pare_linear *saved;
    int *swap;
    pare_acts *tacts; /* the sparse model's activations, for distillation */
};

void pare_ft_free(pare_ft *ft)
{
    if (!ft)
        return;
    pare_trainer_free(ft->t);
    pare_fop_free(ft->fop);
    pare_acts_free(ft->tacts);
    free(ft->ids);
    free(ft->targets);
    free(ft->mix_f);
    free(ft->mix_s);
    free(ft->saved);
    free(ft->swap);
    free(ft);
}

long pare_ft_steps_done(const pare_ft *ft) { return ft->t->step; }
const pare_fop_state *pare_ft_fop(const pare_ft *ft) { return ft->fop; }
const pare_ft_opts *pare_ft_options(const pare_ft *ft) { return &ft->o; }

static int same_arch(const pare_config *a, const pare_config *b)
{
    return a->arch == b->arch && a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->vocab_size == b->vocab_size;
}

pare_status pare_ft_new(pare_model *m, const pare_token_stream *data, const pare_ft_opts *oin, pare_ft **out,
                        pare_error *err)
{
    *out = NULL;
    pare_ft_opts o = *oin;
    if (o.steps < 1)
        return pare_fail(err, PARE_EINVAL, "steps %ld: a run needs at least one step", o.steps);
    o.train.lr.total = o.steps;
    pare_status rc = pare_lr_check(&o.train.lr, err);
    if (rc)
        return rc;
    if (!(o.mix_p0 >= 0 && o.mix_p0 <= 1) || !(o.mix_span > 0 && o.mix_span <= 1))
        return pare_fail(err, PARE_EINVAL, "mixed rank: p0 %g must be in [0, 1] and the decay span %g in (0, 1]",
                         o.mix_p0, o.mix_span);
    if (!(o.distill >= 0 && o.distill <= 1) || !(o.distill_temp > 0) || !isfinite(o.distill_temp))
        return pare_fail(err, PARE_EINVAL, "distillation: weight %g must be in [0, 1] and temperature %g positive",
                         o.distill, o.distill_temp);
    if ((o.mix_p0 > 0 || o.distill > 0) && !o.sparse)
        return pare_fail(err, PARE_EINVAL, "mixed-rank fine-tuning and distillation need the sparse full-rank model");
    if (o.sparse && !same_arch(&o.sparse->cfg, &m->cfg))
        return pare_fail(err, PARE_EINVAL, "%s: the sparse model's architecture differs from the model's",
                         o.sparse->path);
    if (o.prune && o.mix_p0 > 0)
        return pare_fail(err, PARE_EINVAL, "pruning and mixed-rank fine-tuning do not combine: prune first, "
                                           "factorize, then fine-tune with mixed rank");
    if (data->n < (size_t)o.train.seq)
        return pare_fail(err, PARE_EINVAL, "%s: %zu tokens, shorter than one training window of %d", data->path,
                         data->n, o.train.seq);
    if (o.prune) {
        o.fop.total = o.steps;
        if ((rc = pare_fop_check(&o.fop, err)) || (rc = pare_fop_prepare(m, err)))
            return rc;
        o.train.grad_flags |= PARE_GRADS_DENSE_MASKED;
    }
    pare_ft *ft = calloc(1, sizeof *ft);
    if (!ft)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    ft->m = m;
    ft->data = data;
    ft->o = o;
    size_t per = (size_t)o.train.accum * o.train.batch * o.train.seq;
    ft->ids = malloc(per * sizeof *ft->ids);
    ft->targets = malloc(per * sizeof *ft->targets);
    if (!ft->ids || !ft->targets) {
        pare_ft_free(ft);
        return pare_fail(err, PARE_ENOMEM, "out of memory for the training batch");
    }
    if ((rc = pare_trainer_new(m, &o.train, &ft->t, err)) || (o.prune && (rc = pare_fop_new(m, &o.fop, &ft->fop, err)))) {
        pare_ft_free(ft);
        return rc;
    }
    if (o.sparse) {
        int n = pare_model_linears(m, NULL, 0);
        ft->mix_f = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->mix_f);
        ft->mix_s = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->mix_s);
        ft->saved = malloc((size_t)(n > 0 ? n : 1) * sizeof *ft->saved);
        ft->swap = calloc((size_t)(n > 0 ? n : 1), sizeof *ft->swap);
        pare_linear **lf = malloc((size_t)(n > 0 ? n : 1) * sizeof *lf), **ls = malloc((size_t)(n > 0 ? n : 1) * sizeof *ls);
        if (!ft->mix_f || !ft->mix_s || !ft->saved || !ft->swap || !lf || !ls) {
            free(lf);
            free(ls);
            pare_ft_free(ft);
            return pare_fail(err, PARE_ENOMEM, "out of memory");
        }
        pare_model_linears(m, lf, n);
        pare_model_linears(o.sparse, ls, n);
        for (int i = 0; i < n && !rc; i++) {
            if (lf[i]->kind != PARE_LIN_FACTORED)
                continue;
            if (strcmp(lf[i]->name, ls[i]->name) != 0 || ls[i]->kind == PARE_LIN_FACTORED || ls[i]->out != lf[i]->out ||
                ls[i]->in != lf[i]->in || (ls[i]->b != NULL) != (lf[i]->b != NULL))
                rc = pare_fail(err, PARE_EINVAL, "%s: the sparse model's %s is not a full-rank matrix of the same shape",
                               lf[i]->name, ls[i]->name);
            ft->mix_f[ft->n_mix] = lf[i];
            ft->mix_s[ft->n_mix++] = ls[i];
        }
        free(lf);
        free(ls);
        if (!rc && o.mix_p0 > 0 && ft->n_mix == 0)
            rc = pare_fail(err, PARE_EINVAL, "mixed-rank fine-tuning: the model has no factorized linear to replace");
        if (!rc && o.distill > 0)
            rc = pare_acts_alloc(o.sparse, o.train.batch, o.train.seq, 0, &ft->tacts, err);
        if (rc) {
            pare_ft_free(ft);
            return rc;
        }
    }
    *out = ft;
    return PARE_OK;
}

/* dL/dlogits of (1 - α) CE + α τ² KL(p_teacher^τ || p^τ), times scale / n_valid, in place of the student's
 * logits; returns Σ over valid rows of τ² KL. Row softmaxes in double. */
static double distill_backward(float *z, const float *tl, const int32_t *targets, int N, int V, double alpha,
                               double tau, double scale)
{
    double kl_sum = 0;
#pragma omp parallel for num_threads(pare_threads()) schedule(static) reduction(+ : kl_sum)
    for (int i = 0; i < N; i++) {
        float *row = z + (size_t)i * V;
        const float *t = tl + (size_t)i * V;
        if (targets[i] < 0) {
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        double mz = row[0], mt = t[0];
        for (int j = 1; j < V; j++) {
            mz = row[j] > mz ? row[j] : mz;
            mt = t[j] > mt ? t[j] : mt;
        }
        double sz = 0, sq = 0, st = 0;
        for (int j = 0; j < V; j++) {
            sz += exp(row[j] - mz);
            sq += exp((row[j] - mz) / tau);
            st += exp((t[j] - mt) / tau);
        }
        double lsz = log(sz), lsq = log(sq), lst = log(st), kl = 0;
        for (int j = 0; j < V; j++) {
            double lq = (row[j] - mz) / tau - lsq, lpt = (t[j] - mt) / tau - lst;
            double p = exp(row[j] - mz - lsz), q = exp(lq), pt = exp(lpt);
            kl += pt * (lpt - lq);
            double d = (1.0 - alpha) * (p - (j == targets[i])) + alpha * tau * (q - pt);
            row[j] = (float)(scale * d);
        }
        kl_sum += tau * tau * kl;
    }
    return kl_sum;
}

static int params_finite(const pare_grads *g)
{
    for (int e = 0; e < g->n_params; e++) {
        const float *p = g->params[e].param;
        for (size_t i = 0; i < g->params[e].n; i++)
            if (!isfinite(p[i]))
                return 0;
    }
    return 1;
}

int pare_ft_params_finite(const pare_ft *ft) { return params_finite(ft->t->grads); }

/* Copies the gradients of gs (laid out for the model with some linears replaced) into g (the run's
 * layout) by parameter; entries gs does not have (the replaced linears' factors) are zero. */
static void copy_grads(pare_grads *g, const pare_grads *gs)
{
    for (int e = 0; e < g->n_params; e++) {
        pare_param *d = &g->params[e];
        const pare_param *src = NULL;
        for (int f = 0; f < gs->n_params && !src; f++)
            if (gs->params[f].param == d->param && gs->params[f].n == d->n)
                src = &gs->params[f];
        if (src)
            memcpy(d->grad, src->grad, d->n * sizeof(float));
        else
            memset(d->grad, 0, d->n * sizeof(float));
    }
}

/* The table entries of linear l's factors in g (for freezing them across an update). */
static void factor_entries(pare_grads *g, const pare_linear *l, pare_param **a, pare_param **b)
{
    *a = *b = NULL;
    for (int e = 0; e < g->n_params; e++) {
        if (g->params[e].param == l->A)
            *a = &g->params[e];
        if (g->params[e].param == l->B)
            *b = &g->params[e];
    }
}

pare_status pare_ft_step(pare_ft *ft, const pare_progress *progress, pare_ft_stats *st, pare_error *err)
{
    const pare_ft_opts *o = &ft->o;
    pare_trainer *t = ft->t;
    pare_model *m = ft->m;
    int B = o->train.batch, T = o->train.seq, K = o->train.accum, V = m->cfg.vocab_size;
    size_t per = (size_t)B * T;
    long s = t->step;
    double t0 = now_s();
    memset(st, 0, sizeof *st);
    if (s >= o->steps)
        return pare_fail(err, PARE_EINVAL, "the run's %ld steps are done", o->steps);
    pare_status rc;
    /* the masks this step trains with */
    if (ft->fop && (rc = pare_fop_apply(ft->fop, s, t->opt, t->grads, NULL, err)))
        return rc;
    if ((rc = pare_train_windows(ft->data, o->seed, s, K * B, T, ft->ids, err)))
        return rc;
    pare_shift_targets(ft->ids, K * B, T, ft->targets);
    size_t total = pare_count_targets(ft->targets, (size_t)K * per);
    /* mixed rank: which factorized linears run as their sparse counterpart this step */
    double p = pare_ft_mix_prob(o, s);
    int nsw = 0;
    for (int i = 0; i < ft->n_mix; i++) {
        double u = (double)(hash3(o->seed ^ 0x6d69786564ull, (uint64_t)s, (uint64_t)i) >> 11) * 0x1.0p-53;
        ft->swap[i] = p > 0 && u < p;
        nsw += ft->swap[i];
    }
    pare_grads *g = t->grads, *gs = NULL;
    double loss = 0, kl = 0;
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i]) {
                ft->saved[i] = *ft->mix_f[i];
                *ft->mix_f[i] = *ft->mix_s[i]; /* borrowed: restored below, never freed through m */
            }
        if ((rc = pare_grads_alloc(m, B, T, 0, &gs, err)))
            goto restore;
        g = gs;
    }
    pare_grads_zero(g);
    for (int k = 0; k < K && !rc; k++) {
        const int32_t *x = ft->ids + k * per, *tg = ft->targets + k * per;
        size_t n = pare_count_targets(tg, per);
        if (n == 0)
            continue;
        double l = 0;
        g->loss_scale = pare_accum_weight(n, total);
        if ((rc = pare_forward(m, t->acts, x, B, T, PARE_LOGITS_ALL, err)) ||
            (rc = pare_loss_forward(m, t->acts, tg, B, T, &l, NULL, err)))
            break;
        if (o->distill > 0) {
            if ((rc = pare_forward(o->sparse, ft->tacts, x, B, T, PARE_LOGITS_ALL, err)))
                break;
            double ks = distill_backward(t->acts->logits, ft->tacts->logits, tg, B * T, V, o->distill,
                                         o->distill_temp, g->loss_scale / (double)n);
            kl += ks / (double)n * g->loss_scale;
            rc = pare_backward_logits(m, t->acts, g, x, B, T, err);
        } else {
            rc = pare_backward(m, t->acts, g, x, tg, B, T, err);
        }
        if (rc)
            break;
        loss += l * g->loss_scale;
        char detail[96];
        snprintf(detail, sizeof detail, "step %ld: micro-batch %d/%d", s + 1, k + 1, K);
        rc = pare_report(progress, "train", (double)(k + 1) / K, detail, err);
    }
    g->loss_scale = 1.0;
restore:
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i])
                *ft->mix_f[i] = ft->saved[i];
        if (gs && !rc)
            copy_grads(t->grads, gs);
        pare_grads_free(gs);
    }
    if (rc) {
        if (rc != PARE_ECANCELED)
            pare_wrap(err, "training step %ld", s + 1);
        return rc;
    }
    if (!isfinite(loss))
        return pare_fail(err, PARE_EINVAL, "step %ld: the loss is %s; stopped before the update", s + 1,
                         isnan(loss) ? "nan" : "inf");
    double norm = pare_grads_norm(t->grads);
    if (!isfinite(norm))
        return pare_fail(err, PARE_EINVAL, "step %ld: the gradient norm is %s (loss %.6g); stopped before the update",
                         s + 1, isnan(norm) ? "nan" : "inf", loss);
    if (ft->fop && (rc = pare_fop_accumulate(ft->fop, t->grads, err)))
        return rc;
    if (o->train.clip > 0 && norm > o->train.clip)
        pare_grads_scale(t->grads, o->train.clip / norm);
    double lr = pare_lr_at(&o->train.lr, s);
    /* replaced linears sat out this step: their factors and moments stay as they were */
    size_t frozen_n = 0;
    float *frozen = NULL;
    if (nsw) {
        for (int i = 0; i < ft->n_mix; i++)
            if (ft->swap[i])
                frozen_n += 3 * ((size_t)ft->mix_f[i]->rank * (ft->mix_f[i]->out + ft->mix_f[i]->in));
        frozen = malloc((frozen_n ? frozen_n : 1) * sizeof *frozen);
        if (!frozen)
            return pare_fail(err, PARE_ENOMEM, "out of memory");
        float *q = frozen;
        for (int i = 0; i < ft->n_mix; i++) {
            if (!ft->swap[i])
                continue;
            pare_param *pa[2];
            factor_entries(t->grads, ft->mix_f[i], &pa[0], &pa[1]);
            for (int j = 0; j < 2; j++) {
                size_t off = (size_t)(pa[j]->grad - t->grads->slab);
                memcpy(q, pa[j]->param, pa[j]->n * sizeof *q), q += pa[j]->n;
                memcpy(q, t->opt->m + off, pa[j]->n * sizeof *q), q += pa[j]->n;
                memcpy(q, t->opt->v + off, pa[j]->n * sizeof *q), q += pa[j]->n;
            }
        }
    }
    rc = pare_adamw_step(t->opt, t->grads, lr, err);
    if (nsw) {
        const float *q = frozen;
        for (int i = 0; i < ft->n_mix; i++) {
            if (!ft->swap[i])
                continue;
            pare_param *pa[2];
            factor_entries(t->grads, ft->mix_f[i], &pa[0], &pa[1]);
            for (int j = 0; j < 2; j++) {
                size_t off = (size_t)(pa[j]->grad - t->grads->slab);
                memcpy(pa[j]->param, q, pa[j]->n * sizeof *q), q += pa[j]->n;
                memcpy(t->opt->m + off, q, pa[j]->n * sizeof *q), q += pa[j]->n;
                memcpy(t->opt->v + off, q, pa[j]->n * sizeof *q), q += pa[j]->n;
            }
        }
        free(frozen);
    }
    if (rc)
        return rc;
    t->step++;
    /* r_T = r_f: without a cooldown the last update point lies after the last step, so the run
     * still ends at the target sparsity */
    if (ft->fop && t->step == o->steps && (rc = pare_fop_apply(ft->fop, t->step, t->opt, t->grads, NULL, err)))
        return rc;
    st->step = s;
    st->loss = loss;
    st->distill_loss = kl;
    st->grad_norm = norm;
    st->lr = lr;
    st->kept = ft->fop ? pare_fop_kept(&ft->fop->o, s) : 1.0;
    st->sparsity = ft->fop ? pare_fop_sparsity(ft->fop) : 0.0;
    st->mix_prob = p;
    st->swapped = nsw;
    st->tokens = (size_t)K * per;
    st->seconds = now_s() - t0;
    return PARE_OK;
}

/* ---------------------------------------------------------------- checkpoints */

#define CKPT_FORMAT "pare-checkpoint"
#define CKPT_VERSION 1

/* Removes a folder that holds only regular files (a checkpoint); anything else is left and reported. */
static int remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[4400];
    int bad = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0 || S_ISDIR(st.st_mode) || unlink(p) != 0)
            bad = 1;
    }
    closedir(d);
    return bad || rmdir(dir) != 0 ? -1 : 0;
}

static pare_status write_state(pare_ft *ft, const char *path, pare_error *err)
{
    pare_grads *g = ft->t->grads;
    pare_adamw *opt = ft->t->opt;
    int nf = ft->fop ? ft->fop->count : 0;
    size_t n = 2 * (size_t)g->n_params + 3 * (size_t)nf;
    pare_st_out *ts = calloc(n ? n : 1, sizeof *ts);
    char *names = calloc(n ? n : 1, 160);
    if (!ts || !names) {
        free(ts);
        free(names);
        return pare_fail(err, PARE_ENOMEM, "out of memory writing the optimizer state");
    }
    size_t k = 0;
    for (int e = 0; e < g->n_params; e++) {
        const pare_param *p = &g->params[e];
        size_t off = (size_t)(p->grad - g->slab);
        for (int j = 0; j < 2; j++, k++) {
            snprintf(names + 160 * k, 160, "%s.%s", j ? "exp_avg_sq" : "exp_avg", p->name);
            ts[k] = (pare_st_out){names + 160 * k, PARE_DT_F32, 1, {(int64_t)p->n}, (j ? opt->v : opt->m) + off};
        }
    }
    static const char *const kinds[] = {"score", "ema", "unc"};
    for (int i = 0; i < nf; i++) {
        const pare_fop_matrix *mt = &ft->fop->mats[i];
        const float *arr[] = {mt->score, mt->ema, mt->unc};
        for (int j = 0; j < 3; j++, k++) {
            snprintf(names + 160 * k, 160, "%s.%s", kinds[j], mt->lin->name);
            ts[k] = (pare_st_out){names + 160 * k, PARE_DT_F32, 2, {mt->lin->out, mt->lin->in}, arr[j]};
        }
    }
    json_t *meta = json_pack("{s:s}", "format", "pare-optimizer");
    pare_status rc = pare_st_write(path, ts, k, meta, err);
    json_decref(meta);
    free(ts);
    free(names);
    return rc;
}

pare_status pare_ft_save(pare_ft *ft, const char *dir_in, const char *options_json, pare_error *err)
{
    char dir[4096], next[4200], path[4400];
    if (!dir_in || !*dir_in || strlen(dir_in) >= sizeof dir - 16)
        return pare_fail(err, PARE_EINVAL, "checkpoint folder name '%s' is empty or too long", dir_in ? dir_in : "");
    snprintf(dir, sizeof dir, "%s", dir_in);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    snprintf(next, sizeof next, "%s.next", dir);
    json_t *opts = NULL;
    if (options_json) {
        json_error_t je;
        opts = json_loads(options_json, 0, &je);
        if (!json_is_object(opts)) {
            json_decref(opts);
            return pare_fail(err, PARE_EINVAL, "checkpoint options are not a JSON object: %s", je.text);
        }
    }
    struct stat sb;
    if (lstat(next, &sb) == 0 && (!S_ISDIR(sb.st_mode) || remove_flat(next) != 0)) {
        json_decref(opts);
        return pare_fail(err, PARE_EIO, "%s: a stale checkpoint folder is in the way and cannot be removed", next);
    }
    pare_export_opts xo;
    pare_export_defaults(&xo);
    xo.format = PARE_EXPORT_PARE;
    xo.producer = "pare checkpoint";
    pare_status rc = pare_export(ft->m, next, &xo, NULL, NULL, err);
    if (!rc && !(rc = pare_path_join(path, sizeof path, next, "optimizer.safetensors", err)))
        rc = write_state(ft, path, err);
    if (!rc && !(rc = pare_path_join(path, sizeof path, next, "trainer.json", err))) {
        json_t *j = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "format", CKPT_FORMAT, "version", CKPT_VERSION, "step",
                              (json_int_t)ft->t->step, "steps", (json_int_t)ft->o.steps, "adam_step",
                              (json_int_t)ft->t->opt->step, "fop_updates", (json_int_t)(ft->fop ? ft->fop->updates : 0));
        json_object_set(j, "options", opts ? opts : json_null());
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
        pare_atomic_file f;
        if (!text)
            rc = pare_fail(err, PARE_ENOMEM, "out of memory");
        else if (!(rc = pare_atomic_open(&f, path, err))) {
            fputs(text, f.fp);
            fputc('\n', f.fp);
            rc = pare_atomic_commit(&f, err);
        }
        free(text);
    }
    json_decref(opts);
    if (!rc) {
        int fd = open(next, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        /* the commit point: dir changes from the old complete checkpoint to the new one in one rename */
        if (lstat(dir, &sb) != 0) {
            if (rename(next, dir) != 0)
                rc = pare_fail(err, PARE_EIO, "%s: cannot rename the checkpoint into place: %s", dir, strerror(errno));
        } else if (!S_ISDIR(sb.st_mode)) {
            rc = pare_fail(err, PARE_EINVAL, "%s: exists and is not a checkpoint folder", dir);
        } else if (renameat2(AT_FDCWD, next, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
            if (remove_flat(next) != 0)
                rc = pare_fail(err, PARE_EIO, "%s: the checkpoint is in place but the previous one (now %s) could not "
                                              "be removed", dir, next);
        } else {
            char old[4200];
            snprintf(old, sizeof old, "%s.old", dir);
            if (lstat(old, &sb) == 0)
                remove_flat(old);
            if (rename(dir, old) != 0 || rename(next, dir) != 0)
                rc = pare_fail(err, PARE_EIO, "%s: cannot swap the new checkpoint into place: %s", dir, strerror(errno));
            else
                remove_flat(old);
        }
    }
    if (rc && lstat(next, &sb) == 0)
        remove_flat(next);
    return rc;
}

static pare_status read_trainer_json(const char *dir, json_t **out, pare_error *err)
{
    char path[4400];
    pare_status rc = pare_path_join(path, sizeof path, dir, "trainer.json", err);
    if (rc)
        return rc;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        return pare_fail(err, pare_file_exists(path) ? PARE_EFORMAT : PARE_EIO, "%s: %s", path,
                         pare_file_exists(path) ? je.text : "not found (not a checkpoint folder)");
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || json_integer_value(json_object_get(j, "version")) != CKPT_VERSION ||
        !json_is_integer(json_object_get(j, "step")) || json_integer_value(json_object_get(j, "step")) < 0) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s: not a version %d pare checkpoint (format, version or step missing)",
                         path, CKPT_VERSION);
    }
    *out = j;
    return PARE_OK;
}

pare_status pare_ft_checkpoint_info(const char *dir, long *step, char **options_json, pare_error *err)
{
    json_t *j = NULL;
    pare_status rc = read_trainer_json(dir, &j, err);
    if (rc)
        return rc;
    *step = (long)json_integer_value(json_object_get(j, "step"));
    if (options_json) {
        json_t *o = json_object_get(j, "options");
        *options_json = json_is_object(o) ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    }
    json_decref(j);
    return PARE_OK;
}

/* Copies tensor `name` (F32, n entries) of st into dst. */
static pare_status restore(const pare_safetensors *st, const char *path, const char *name, float *dst, size_t n,
                           pare_error *err)
{
    const pare_st_tensor *t = pare_st_find(st, name);
    if (!t)
        return pare_fail(err, PARE_EFORMAT, "%s: no tensor '%s' (was the checkpoint made with other options?)", path,
                         name);
    if (t->dtype != PARE_DT_F32 || pare_st_numel(t) != n)
        return pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' is %s with %zu entries, expected F32 with %zu", path, name,
                         pare_dtype_name(t->dtype), pare_st_numel(t), n);
    return pare_st_to_f32(st, t, dst, err);
}

pare_status pare_ft_load_state(pare_ft *ft, const char *dir, pare_error *err)
{
    json_t *j = NULL;
    pare_status rc = read_trainer_json(dir, &j, err);
    if (rc)
        return rc;
    long step = (long)json_integer_value(json_object_get(j, "step"));
    long adam = (long)json_integer_value(json_object_get(j, "adam_step"));
    long upd = (long)json_integer_value(json_object_get(j, "fop_updates"));
    json_decref(j);
    if (step > ft->o.steps)
        return pare_fail(err, PARE_EINVAL, "%s: the checkpoint is at step %ld, beyond the run's %ld steps", dir, step,
                         ft->o.steps);
    char path[4400];
    if ((rc = pare_path_join(path, sizeof path, dir, "optimizer.safetensors", err)))
        return rc;
    pare_safetensors st;
    if ((rc = pare_st_open_file(path, &st, err)))
        return rc;
    pare_grads *g = ft->t->grads;
    char name[200];
    for (int e = 0; e < g->n_params && !rc; e++) {
        const pare_param *p = &g->params[e];
        size_t off = (size_t)(p->grad - g->slab);
        snprintf(name, sizeof name, "exp_avg.%s", p->name);
        if (!(rc = restore(&st, path, name, ft->t->opt->m + off, p->n, err))) {
            snprintf(name, sizeof name, "exp_avg_sq.%s", p->name);
            rc = restore(&st, path, name, ft->t->opt->v + off, p->n, err);
        }
    }
    static const char *const kinds[] = {"score", "ema", "unc"};
    for (int i = 0; !rc && ft->fop && i < ft->fop->count; i++) {
        pare_fop_matrix *mt = &ft->fop->mats[i];
        float *arr[] = {mt->score, mt->ema, mt->unc};
        for (int k = 0; k < 3 && !rc; k++) {
            snprintf(name, sizeof name, "%s.%s", kinds[k], mt->lin->name);
            rc = restore(&st, path, name, arr[k], mt->n, err);
        }
    }
    pare_st_close(&st);
    if (rc)
        return rc;
    ft->t->step = step;
    ft->t->opt->step = adam;
    if (ft->fop)
        ft->fop->updates = upd;
    return PARE_OK;
}

pare_status pare_ft_run(pare_ft *ft, const pare_ft_run_opts *ro, pare_error *err)
{
    long last_good = -1; /* step of the checkpoint on disk */
    const char *dir = ro->checkpoint_dir;
    if (dir) {
        long s;
        pare_error e2;
        if (pare_ft_checkpoint_info(dir, &s, NULL, &e2) == PARE_OK)
            last_good = s;
    }
    char where[4400];
    pare_status rc = PARE_OK;
    long end = ro->until > 0 && ro->until < ft->o.steps ? ro->until : ft->o.steps;
    while (ft->t->step < end) {
        pare_ft_stats st;
        rc = pare_ft_step(ft, ro->progress, &st, err);
        if (!rc && ro->on_step && ro->on_step(ro->user, &st))
            rc = pare_fail(err, PARE_ECANCELED, "cancelled after step %ld", st.step + 1);
        long done = ft->t->step;
        if (rc == PARE_ECANCELED) {
            if (dir && done > last_good && done > 0 && pare_ft_params_finite(ft)) {
                pare_error e2;
                if (pare_ft_save(ft, dir, ro->options_json, &e2) == PARE_OK)
                    pare_wrap(err, "checkpoint of step %ld saved in %s", done, dir);
            }
            return rc;
        }
        if (rc) {
            if (last_good >= 0)
                snprintf(where, sizeof where, "the last good checkpoint is %s (step %ld)", dir, last_good);
            else
                snprintf(where, sizeof where, "%s", dir ? "no checkpoint was written" : "no checkpoint folder was set");
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            pare_fail(err, rc, "%s; the run stopped: %s", msg, where);
            return rc;
        }
        int due = dir && (done == end || (ro->checkpoint_every > 0 && done % ro->checkpoint_every == 0));
        if (due) {
            if (!pare_ft_params_finite(ft)) {
                if (last_good >= 0)
                    snprintf(where, sizeof where, "the last good checkpoint is %s (step %ld)", dir, last_good);
                else
                    snprintf(where, sizeof where, "no checkpoint was written");
                return pare_fail(err, PARE_EINVAL, "step %ld left non-finite parameters (loss %.6g); the run stopped "
                                                   "without checkpointing them: %s", done, st.loss, where);
            }
            if ((rc = pare_ft_save(ft, dir, ro->options_json, err)))
                return rc;
            last_good = done;
        }
    }
    return PARE_OK;
}

/* ---------------------------------------------------------------- models from scratch */

typedef struct {
    uint64_t state;
    int have;
    double spare;
} gauss_rng;

static double gauss(gauss_rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = ((double)(splitmix64(&r->state) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(splitmix64(&r->state) >> 11) * 0x1.0p-53;
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->have = 1;
    return rad * cos(th);
}

typedef struct {
    pare_st_out *t;
    char (*names)[160];
    float **data;
    int n, cap;
    gauss_rng rng;
    int failed;
} init_set;

/* Adds tensor `name` [d0] or [d0, d1] filled with N(0, std) (std > 0) or the constant -std (std <= 0). */
static void add_init(init_set *s, const char *name, int64_t d0, int64_t d1, double std)
{
    if (s->failed || s->n == s->cap) {
        s->failed = 1;
        return;
    }
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *p = malloc(n * sizeof *p);
    if (!p) {
        s->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = std > 0 ? (float)(std * gauss(&s->rng)) : (float)-std;
    snprintf(s->names[s->n], 160, "%s", name);
    s->data[s->n] = p;
    s->t[s->n] = (pare_st_out){s->names[s->n], PARE_DT_F32, d1 ? 2 : 1, {d0, d1}, p};
    s->n++;
}

pare_status pare_model_init_folder(const char *dir, const pare_config *c, const char *tokenizer_json, uint64_t seed,
                                   pare_error *err)
{
    struct stat sb;
    if (lstat(dir, &sb) == 0)
        return pare_fail(err, PARE_EINVAL, "%s: already exists; not overwriting it with a new model", dir);
    if (c->dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads ||
        c->head_dim < 2 || c->ffn_dim < 1 || c->vocab_size < 2 || c->max_pos < 2 ||
        (c->arch == PARE_ARCH_LLAMA && c->head_dim % 2) || (c->arch == PARE_ARCH_GPT2 && c->head_dim * c->n_heads != c->dim))
        return pare_fail(err, PARE_EINVAL,
                         "architecture: dim %d, %d layers, %d heads (%d KV) of %d, FFN %d, vocab %d, %d positions is "
                         "not a valid %s", c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim,
                         c->vocab_size, c->max_pos, pare_arch_name(c->arch));
    int L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    double sd = 0.02, sres = 0.02 / sqrt(2.0 * L);
    json_t *cfg;
    if (c->arch == PARE_ARCH_LLAMA)
        cfg =
            json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:s, s:b, s:b, s:b, s:s}",
                      "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", C, "intermediate_size",
                      F, "num_hidden_layers", L, "num_attention_heads", c->n_heads, "num_key_value_heads",
                      c->n_kv_heads, "head_dim", c->head_dim, "vocab_size", V, "max_position_embeddings", c->max_pos,
                      "rms_norm_eps", pare_json_number((double)c->norm_eps), "rope_theta",
                      pare_json_number(c->rope_theta), "hidden_act", "silu", "tie_word_embeddings", c->tied_head,
                      "attention_bias", c->attn_bias, "mlp_bias", c->mlp_bias, "torch_dtype", "float32");
    else
        cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:s, s:b, s:s}", "architectures",
                        "GPT2LMHeadModel", "model_type", "gpt2", "n_embd", C, "n_layer", L, "n_head", c->n_heads,
                        "n_positions", c->max_pos, "vocab_size", V, "n_inner", F, "layer_norm_epsilon",
                        pare_json_number((double)c->norm_eps), "activation_function", "gelu_new", "tie_word_embeddings",
                        c->tied_head, "torch_dtype", "float32");
    if (!cfg)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    if (c->bos_id >= 0)
        json_object_set_new(cfg, "bos_token_id", json_integer(c->bos_id));
    if (c->eos_id >= 0)
        json_object_set_new(cfg, "eos_token_id", json_integer(c->eos_id));
    init_set s = {0};
    s.cap = 16 * L + 16;
    s.t = calloc((size_t)s.cap, sizeof *s.t);
    s.names = calloc((size_t)s.cap, sizeof *s.names);
    s.data = calloc((size_t)s.cap, sizeof *s.data);
    s.rng.state = seed;
    if (!s.t || !s.names || !s.data)
        s.failed = 1;
    char nm[160];
    int gpt2 = c->arch == PARE_ARCH_GPT2;
    add_init(&s, gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight", V, C, sd);
    if (gpt2)
        add_init(&s, "transformer.wpe.weight", c->max_pos, C, 0.01);
    for (int i = 0; i < L; i++) {
#define ADD(d0, d1, std, ...) (snprintf(nm, sizeof nm, __VA_ARGS__), add_init(&s, nm, d0, d1, std))
        if (gpt2) {
            /* Conv1D layout [in, out]; c_attn holds q, k and v side by side */
            ADD(C, 0, -1.0, "transformer.h.%d.ln_1.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.ln_1.bias", i);
            ADD(C, 3 * C, sd, "transformer.h.%d.attn.c_attn.weight", i);
            ADD(3 * C, 0, -0.0, "transformer.h.%d.attn.c_attn.bias", i);
            ADD(C, C, sres, "transformer.h.%d.attn.c_proj.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.attn.c_proj.bias", i);
            ADD(C, 0, -1.0, "transformer.h.%d.ln_2.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.ln_2.bias", i);
            ADD(C, F, sd, "transformer.h.%d.mlp.c_fc.weight", i);
            ADD(F, 0, -0.0, "transformer.h.%d.mlp.c_fc.bias", i);
            ADD(F, C, sres, "transformer.h.%d.mlp.c_proj.weight", i);
            ADD(C, 0, -0.0, "transformer.h.%d.mlp.c_proj.bias", i);
        } else {
            static const char *const an[] = {"q_proj", "k_proj", "v_proj", "o_proj"}, *const mn[] = {"gate_proj", "up_proj", "down_proj"};
            int aout[] = {qd, kvd, kvd, C}, ain[] = {C, C, C, qd}, mout[] = {F, F, C}, min_[] = {C, C, F};
            ADD(C, 0, -1.0, "model.layers.%d.input_layernorm.weight", i);
            ADD(C, 0, -1.0, "model.layers.%d.post_attention_layernorm.weight", i);
            for (int j = 0; j < 4; j++) {
                ADD(aout[j], ain[j], j == 3 ? sres : sd, "model.layers.%d.self_attn.%s.weight", i, an[j]);
                if (c->attn_bias)
                    ADD(aout[j], 0, -0.0, "model.layers.%d.self_attn.%s.bias", i, an[j]);
            }
            for (int j = 0; j < 3; j++) {
                ADD(mout[j], min_[j], j == 2 ? sres : sd, "model.layers.%d.mlp.%s.weight", i, mn[j]);
                if (c->mlp_bias)
                    ADD(mout[j], 0, -0.0, "model.layers.%d.mlp.%s.bias", i, mn[j]);
            }
        }
#undef ADD
    }
    add_init(&s, gpt2 ? "transformer.ln_f.weight" : "model.norm.weight", C, 0, -1.0);
    if (gpt2)
        add_init(&s, "transformer.ln_f.bias", C, 0, -0.0);
    if (!c->tied_head)
        add_init(&s, "lm_head.weight", V, C, sd);
    pare_status rc = PARE_OK;
    char tmp[4200], path[4400];
    snprintf(tmp, sizeof tmp, "%s.init-tmp", dir);
    if (s.failed)
        rc = pare_fail(err, PARE_ENOMEM, "out of memory initializing the model");
    else if ((lstat(tmp, &sb) == 0 && remove_flat(tmp) != 0) || mkdir(tmp, 0777) != 0)
        rc = pare_fail(err, PARE_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    if (!rc) {
        char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        pare_atomic_file f;
        snprintf(path, sizeof path, "%s/config.json", tmp);
        if (!text)
            rc = pare_fail(err, PARE_ENOMEM, "out of memory");
        else if (!(rc = pare_atomic_open(&f, path, err))) {
            fputs(text, f.fp);
            fputc('\n', f.fp);
            rc = pare_atomic_commit(&f, err);
        }
        free(text);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        rc = pare_st_write(path, s.t, (size_t)s.n, NULL, err);
    }
    if (!rc && tokenizer_json) {
        snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
        rc = pare_copy_file(tokenizer_json, path, err);
    }
    if (!rc && rename(tmp, dir) != 0)
        rc = pare_fail(err, PARE_EIO, "%s: cannot rename the new model folder into place: %s", dir, strerror(errno));
    if (rc && lstat(tmp, &sb) == 0)
        remove_flat(tmp);
    for (int i = 0; i < s.n; i++)
        free(s.data[i]);
    free(s.t);
    free(s.names);
    free(s.data);
    json_decref(cfg);
    return rc;
}

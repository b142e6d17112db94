/* Calibration windows and activation statistics, accumulated block by block over all windows so
 * that a block can be compressed before the next one is calibrated. */
#include "calib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "parallel.h"
#include "rng.h"

void pare_calib_defaults(pare_calib_opts *o)
{
    memset(o, 0, sizeof *o);
    o->samples = 128;
    o->len = 256;
    o->batch = 8;
}

pare_status pare_calib_windows(const int32_t *ids, size_t n, const pare_calib_opts *o, int32_t **out, pare_error *err)
{
    *out = NULL;
    if (o->samples < 1 || o->len < 2)
        return pare_fail(err, PARE_EINVAL, "--calib-samples %d and --calib-len %d must be at least 1 and 2", o->samples,
                         o->len);
    if (n < (size_t)o->len)
        return pare_fail(err, PARE_EINVAL, "calibration text has %zu tokens, shorter than one window of %d", n, o->len);
    int32_t *w = malloc((size_t)o->samples * o->len * sizeof *w);
    if (!w)
        return pare_fail(err, PARE_ENOMEM, "out of memory for %d calibration windows", o->samples);
    uint64_t state = o->seed;
    size_t starts = n - (size_t)o->len + 1;
    for (int s = 0; s < o->samples; s++) {
        size_t start = (size_t)(pare_splitmix64(&state) % starts);
        memcpy(w + (size_t)s * o->len, ids + start, (size_t)o->len * sizeof *w);
    }
    *out = w;
    return PARE_OK;
}

int pare_linear_site(const pare_block *b, const pare_linear *l)
{
    int k = pare_block_kind_of(b, l);
    return k < 0 ? -1 : (int)pare_lin_kinds[k].input;
}

pare_status pare_calib_windows_file(const pare_model *m, const char *path, const pare_calib_opts *o, int32_t **out,
                                    size_t *file_tokens, pare_error *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    *out = NULL;
    pare_status rc = pare_model_tokenize_file(m, path, &ids, &n, err);
    if (!rc && (rc = pare_calib_windows(ids, n, o, out, err)))
        pare_wrap(err, "%s", path);
    free(ids);
    if (file_tokens)
        *file_tokens = n;
    return rc;
}

void pare_input_norms(const pare_input_stats *s, const pare_linear *l, float *dst)
{
    /* statistics gathered before l's inputs were sliced refer to the loaded channel order */
    int mapped = s->dim != l->in && l->kept_in && s->dim == l->orig_in;
    for (int j = 0; j < l->in; j++) {
        int src = mapped ? l->kept_in[j] : j;
        dst[j] = src < s->dim ? (float)sqrt(s->sumsq[src]) : 0.0f;
    }
}

static size_t site_floats(int dim, int gram) { return (size_t)dim + (gram ? (size_t)dim * dim : 0); }

static int site_dim(const pare_model *m, int l, int site)
{
    const pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if ((int)pare_lin_kinds[k].input == site && b->lin[k].out)
            return b->lin[k].in;
    return 0;
}

size_t pare_calib_bytes(const pare_model *m, const pare_calib_opts *o, int sequential)
{
    size_t stats = 0, block_grams = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        size_t grams = 0;
        for (int s = 0; s < PARE_IN_COUNT; s++) {
            stats += site_floats(site_dim(m, l, s), 0) * sizeof(double);
            grams += (site_floats(site_dim(m, l, s), o->gram) - site_floats(site_dim(m, l, s), 0)) * sizeof(double);
        }
        if (sequential)
            block_grams = grams > block_grams ? grams : block_grams;
        else
            stats += grams;
    }
    stats += block_grams;
    int B = o->batch < o->samples ? o->batch : o->samples;
    return stats + (size_t)o->samples * o->len * m->cfg.dim * sizeof(float) + pare_acts_bytes(m, B, o->len, 0);
}

/* A block's Gram matrices once its hook has used them: they are most of the statistics (1.4 GB per
 * LLaMA-7B block, 44 GB for the model), so a sequential pass holds one block's. */
static void drop_grams(pare_calib_stats *st, int l)
{
    for (int k = 0; k < PARE_IN_COUNT; k++) {
        pare_input_stats *s = &st->sites[l][k];
        if (s->gram) {
            free(s->gram);
            s->gram = NULL;
            st->bytes -= (size_t)s->dim * s->dim * sizeof(double);
        }
    }
}

void pare_calib_free(pare_calib_stats *s)
{
    if (!s)
        return;
    for (int l = 0; l < s->n_layers && s->sites; l++)
        for (int k = 0; k < PARE_IN_COUNT; k++) {
            free(s->sites[l][k].sumsq);
            free(s->sites[l][k].gram);
        }
    free(s->sites);
    free(s);
}

/* Adds the rows of x [N, dim] to the statistics. */
static void accumulate(pare_input_stats *s, const float *x, int N)
{
    pare_gram_add(x, N, s->dim, s->gram, s->sumsq);
    s->tokens += (size_t)N;
}

static pare_status alloc_layer(pare_calib_stats *st, const pare_model *m, int l, int gram, pare_error *err)
{
    for (int k = 0; k < PARE_IN_COUNT; k++) {
        pare_input_stats *s = &st->sites[l][k];
        s->dim = site_dim(m, l, k);
        s->sumsq = calloc((size_t)s->dim, sizeof(double));
        s->gram = gram ? calloc((size_t)s->dim * s->dim, sizeof(double)) : NULL;
        if (!s->sumsq || (gram && !s->gram))
            return pare_fail(err, PARE_ENOMEM, "out of memory for calibration statistics of layer %d", l);
        st->bytes += site_floats(s->dim, gram) * sizeof(double);
    }
    return PARE_OK;
}

/* Checks a statistic for NaN/Inf, which would poison every method that uses it. */
static pare_status check_finite(const pare_model *m, int l, const pare_calib_stats *st, pare_error *err)
{
    static const char *names[] = {"attention input", "o_proj input", "MLP input", "down-projection input"};
    for (int k = 0; k < PARE_IN_COUNT; k++) {
        const pare_input_stats *s = &st->sites[l][k];
        for (int j = 0; j < s->dim; j++)
            if (!isfinite(s->sumsq[j]))
                return pare_fail(err, PARE_EINVAL,
                                 "calibration: layer %d %s channel %d has a non-finite activation statistic (NaN or "
                                 "Inf in the weights or activations?)",
                                 l, names[k], j);
    }
    (void)m;
    return PARE_OK;
}

pare_status pare_calibrate(pare_model *m, const int32_t *ids, const pare_calib_opts *o, pare_block_hook hook,
                           void *user, const pare_progress *progress, pare_calib_stats **out, pare_error *err)
{
    *out = NULL;
    const pare_config *c = &m->cfg;
    if (o->samples < 1 || o->len < 2 || o->batch < 1)
        return pare_fail(err, PARE_EINVAL, "calibration needs samples >= 1, len >= 2 and batch >= 1");
    if (o->len > c->max_pos)
        return pare_fail(err, PARE_EINVAL, "--calib-len %d is longer than the model's %d positions", o->len, c->max_pos);
    int S = o->samples, T = o->len, C = c->dim, B = o->batch < S ? o->batch : S;
    pare_calib_stats *st = calloc(1, sizeof *st);
    float *hidden = malloc((size_t)S * T * C * sizeof(float)); /* [S*T, C]: input of the current block */
    pare_acts *a = NULL;
    pare_status rc = PARE_OK;
    int held = -1; /* the block acquired, released on every way out */
    if (!st || !hidden || !(st->sites = calloc((size_t)c->n_layers, sizeof *st->sites))) {
        rc = pare_fail(err, PARE_ENOMEM, "out of memory for calibration (%.1f MiB)",
                       (double)pare_calib_bytes(m, o, hook != NULL) / (1 << 20));
        goto fail;
    }
    st->n_layers = c->n_layers;
    st->window_bytes = (size_t)S * T * C * sizeof(float);
    if ((rc = pare_acts_alloc(m, B, T, 0, &a, err)))
        goto fail;
    for (int s0 = 0; s0 < S; s0 += B) {
        int nb = S - s0 < B ? S - s0 : B;
        if ((rc = pare_embed_forward(m, a, ids + (size_t)s0 * T, nb, T, err)))
            goto fail;
        memcpy(hidden + (size_t)s0 * T * C, a->emb, (size_t)nb * T * C * sizeof(float));
    }
    int passes = hook && !o->one_shot ? 2 : 1; /* statistics, then the outputs of the hook's block */
    double total = (double)c->n_layers * passes * ((S + B - 1) / B), done = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if ((rc = alloc_layer(st, m, l, o->gram, err)) || (rc = pare_block_acquire(m, l, err)))
            goto fail;
        held = l;
        for (int pass = 0; pass < passes; pass++) {
            for (int s0 = 0; s0 < S; s0 += B) {
                int nb = S - s0 < B ? S - s0 : B, N = nb * T;
                float *x = hidden + (size_t)s0 * T * C;
                const float *y = pare_block_forward(m, l, a, x, nb, T);
                if (pass == 0) {
                    pare_layer_acts *la = pare_acts_layer(a, l);
                    accumulate(&st->sites[l][PARE_IN_ATTN], la->ln1, N);
                    accumulate(&st->sites[l][PARE_IN_O], la->atty, N);
                    accumulate(&st->sites[l][PARE_IN_MLP], la->ln2, N);
                    accumulate(&st->sites[l][PARE_IN_DOWN], la->hmid, N);
                }
                if (pass == passes - 1)
                    memcpy(x, y, (size_t)N * C * sizeof(float));
                char detail[96];
                snprintf(detail, sizeof detail, "block %d/%d%s", l + 1, c->n_layers,
                         passes == 2 ? (pass ? " (propagating)" : " (statistics)") : "");
                if ((rc = pare_report(progress, "calibrate", ++done / total, detail, err)))
                    goto fail;
            }
            if (pass == 0) {
                if ((rc = check_finite(m, l, st, err)))
                    goto fail;
                if (hook && (rc = hook(user, m, l, st, err)))
                    goto fail;
                if (hook)
                    drop_grams(st, l);
            }
        }
        pare_block_release(m, l);
        held = -1;
    }
    pare_acts_free(a);
    free(hidden);
    *out = st;
    return PARE_OK;
fail:
    if (held >= 0)
        pare_block_release(m, held);
    pare_acts_free(a);
    free(hidden);
    pare_calib_free(st);
    return rc;
}

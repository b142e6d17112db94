/* Pruning: scores, the selection of the lowest-ranked entries under one tie rule, masks for
 * unstructured and N:M sparsity, and LoRAP-style FFN channel removal. */
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const PARE_PRUNE_SCOPE_NAMES[] = {"matrix", "row", "global", NULL};

void pare_mask_defaults(pare_mask_opts *o)
{
    memset(o, 0, sizeof *o);
    o->score = PARE_SCORE_MAGNITUDE;
    o->scope = PARE_SCOPE_MATRIX;
    o->sparsity = 0.5;
}

void pare_chan_defaults(pare_chan_opts *o)
{
    memset(o, 0, sizeof *o);
    o->score = PARE_CHAN_LORAP;
    o->sparsity = 0.2;
    o->keep_least = 0.01;
}

size_t pare_prune_count(double frac, size_t n)
{
    if (!(frac > 0))
        return 0;
    double v = floor(frac * (double)n + 1e-9);
    return v >= (double)n ? n : (size_t)v;
}

static const char *nonfinite_name(double v) { return isnan(v) ? "NaN" : v < 0 ? "negative" : "Inf"; }

/* Fails unless w [rows, cols] (the effective weight of l) is finite; names the entry. */
static pare_status check_weights(const pare_linear *l, const float *w, pare_error *err)
{
    size_t n = (size_t)l->out * l->in;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) {
            int r = (int)(i / (size_t)l->in), c = (int)(i % (size_t)l->in);
            int r0 = l->kept_out ? l->kept_out[r] : r, c0 = l->kept_in ? l->kept_in[c] : c;
            if (r0 != r || c0 != c)
                return pare_fail(err, PARE_EINVAL, "%s: weight [%d, %d] (loaded [%d, %d]) is %s", l->name, r, c, r0, c0,
                                 isnan(w[i]) ? "NaN" : "Inf");
            return pare_fail(err, PARE_EINVAL, "%s: weight [%d, %d] is %s", l->name, r, c, isnan(w[i]) ? "NaN" : "Inf");
        }
    return PARE_OK;
}

/* ||X_j|| in double for the current inputs of l (dst[l->in]), from statistics of the current or
 * the loaded input order; fails on missing, mismatched or non-finite statistics. */
static pare_status input_norms(const pare_linear *l, const pare_input_stats *s, const char *purpose, double *dst,
                               pare_error *err)
{
    if (!s || !s->sumsq)
        return pare_fail(err, PARE_EINVAL, "%s: %s need calibration statistics of its %d inputs", l->name, purpose,
                         l->in);
    int mapped = s->dim != l->in && l->kept_in && s->dim == l->orig_in;
    if (s->dim != l->in && !mapped)
        return pare_fail(err, PARE_EINVAL, "%s: input statistics have %d channels but the layer has %d inputs", l->name,
                         s->dim, l->in);
    for (int j = 0; j < l->in; j++) {
        int src = mapped ? l->kept_in[j] : j;
        double v = s->sumsq[src];
        if (!isfinite(v) || v < 0)
            return pare_fail(err, PARE_EINVAL, "%s: input statistic (sum of squares) of channel %d is %s", l->name, src,
                             nonfinite_name(v));
        dst[j] = sqrt(v);
    }
    return PARE_OK;
}

/* The effective dense weight of l: l->w itself, or A B into *owned (freed by the caller). */
static const float *dense_view(const pare_linear *l, float **owned)
{
    *owned = NULL;
    if (l->kind != PARE_LIN_FACTORED)
        return l->w;
    *owned = malloc((size_t)l->out * l->in * sizeof(float));
    if (*owned)
        pare_linear_dense(l, *owned);
    return *owned;
}

static void swap_d(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* The k-th smallest (0-based) of a[0..n), reordering a; three-way partitions keep runs of equal
 * values (masked zeros, ties) linear. */
static double kth_smallest(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        double x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        double p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (a[i] < p)
                swap_d(&a[lt++], &a[i++]);
            else if (a[i] > p)
                swap_d(&a[i], &a[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return p;
    }
    return a[lo];
}

/* Among the entries of score[0..n) with keep[i] set, clears keep for the `need` lowest-ranked
 * (score ascending, then index descending: of equal scores the higher index goes first).
 * buf holds n doubles. need must not exceed the number kept. */
static void remove_lowest(const double *score, uint8_t *keep, size_t n, size_t need, double *buf)
{
    if (!need)
        return;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            buf[cnt++] = score[i];
    if (need >= cnt) {
        memset(keep, 0, n);
        return;
    }
    double t = kth_smallest(buf, cnt, need - 1);
    size_t less = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i] && score[i] < t) {
            keep[i] = 0;
            less++;
        }
    size_t eq = need - less;
    for (size_t i = n; i-- > 0 && eq;)
        if (keep[i] && score[i] == t) {
            keep[i] = 0;
            eq--;
        }
}

static size_t count_kept(const uint8_t *keep, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += keep[i] != 0;
    return c;
}

/* Scores of l's entries into score[out*in] and its current mask into keep; norms[in] for Wanda or NULL. */
static void fill_scores(const pare_linear *l, const double *norms, double *score, uint8_t *keep)
{
    size_t n = (size_t)l->out * l->in;
    for (size_t i = 0; i < n; i++) {
        double s = fabs((double)l->w[i]);
        score[i] = norms ? s * norms[i % (size_t)l->in] : s;
        keep[i] = l->mask ? l->mask[i] != 0 : 1;
    }
}

static pare_status validate_mask_opts(const pare_mask_opts *o, pare_error *err)
{
    if (o->score != PARE_SCORE_MAGNITUDE && o->score != PARE_SCORE_WANDA)
        return pare_fail(err, PARE_EINVAL, "unknown pruning score %d", (int)o->score);
    if (o->nm_m > 0) {
        if (o->nm_n < 1 || o->nm_n >= o->nm_m)
            return pare_fail(err, PARE_EINVAL, "N:M sparsity %d:%d needs 1 <= N < M", o->nm_n, o->nm_m);
        return PARE_OK;
    }
    if (o->nm_m < 0 || o->nm_n != 0)
        return pare_fail(err, PARE_EINVAL, "N:M sparsity %d:%d needs 1 <= N < M", o->nm_n, o->nm_m);
    if (o->scope != PARE_SCOPE_MATRIX && o->scope != PARE_SCOPE_ROW && o->scope != PARE_SCOPE_GLOBAL)
        return pare_fail(err, PARE_EINVAL, "unknown pruning scope %d", (int)o->scope);
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return pare_fail(err, PARE_EINVAL, "sparsity %g is outside [0, 1)", o->sparsity);
    return PARE_OK;
}

static const char *score_purpose(const pare_mask_opts *o) { return o->nm_m > 0 ? "Wanda N:M scores" : "Wanda scores"; }

/* Every check pare_prune_mask makes, before anything is modified. */
static pare_status validate_mask_layers(pare_linear *const *ls, const pare_input_stats *const *stats, int count,
                                        const pare_mask_opts *o, pare_error *err)
{
    pare_status rc = validate_mask_opts(o, err);
    if (rc)
        return rc;
    if (count < 0 || (count > 0 && !ls))
        return pare_fail(err, PARE_EINVAL, "pruning needs a list of %d layers", count);
    int wanda = o->score == PARE_SCORE_WANDA;
    for (int i = 0; i < count; i++) {
        const pare_linear *l = ls[i];
        if (!l)
            return pare_fail(err, PARE_EINVAL, "pruning: layer %d of %d is missing", i, count);
        if (l->kind == PARE_LIN_FACTORED)
            return pare_fail(err, PARE_EINVAL, "%s: cannot mask a factorized layer (prune before factorizing)", l->name);
        if (o->nm_m > 0 && l->in % o->nm_m)
            return pare_fail(err, PARE_EINVAL, "%s: %d input features are not divisible by M = %d for %d:%d sparsity",
                             l->name, l->in, o->nm_m, o->nm_n, o->nm_m);
        if ((rc = check_weights(l, l->w, err)))
            return rc;
        if (wanda) {
            double *norms = malloc((size_t)l->in * sizeof *norms);
            if (!norms)
                return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
            rc = input_norms(l, stats ? stats[i] : NULL, score_purpose(o), norms, err);
            free(norms);
            if (rc)
                return rc;
        }
    }
    return PARE_OK;
}

static pare_status oom(pare_error *err, const char *what)
{
    return pare_fail(err, PARE_ENOMEM, "%s: out of memory", what);
}

/* The new mask of one layer (scopes MATRIX and ROW, and N:M) into keep; score and buf are scratch. */
static void mask_one(const pare_linear *l, const double *norms, const pare_mask_opts *o, double *score, uint8_t *keep,
                     double *buf)
{
    size_t n = (size_t)l->out * l->in;
    fill_scores(l, norms, score, keep);
    if (o->nm_m > 0) {
        size_t m = (size_t)o->nm_m, drop = m - (size_t)o->nm_n;
        for (size_t g = 0; g < n; g += m) { /* in % m == 0, so groups never straddle rows */
            size_t gone = m - count_kept(keep + g, m);
            if (gone < drop)
                remove_lowest(score + g, keep + g, m, drop - gone, buf);
        }
    } else if (o->scope == PARE_SCOPE_ROW) {
        size_t in = (size_t)l->in, k = pare_prune_count(o->sparsity, in);
        for (size_t r = 0; r < (size_t)l->out; r++) {
            size_t gone = in - count_kept(keep + r * in, in);
            if (gone < k)
                remove_lowest(score + r * in, keep + r * in, in, k - gone, buf);
        }
    } else {
        size_t k = pare_prune_count(o->sparsity, n), gone = n - count_kept(keep, n);
        if (gone < k)
            remove_lowest(score, keep, n, k - gone, buf);
    }
}

/* Applies keep to l unless it removes nothing new; adds to the report. */
static pare_status apply_mask(pare_linear *l, const uint8_t *keep, pare_prune_report *rep, pare_error *err)
{
    size_t n = (size_t)l->out * l->in;
    size_t before = l->mask ? count_kept(l->mask, n) : n, after = count_kept(keep, n);
    if (after < before) {
        pare_status rc = pare_linear_set_mask(l, keep, err);
        if (rc)
            return rc;
    }
    rep->removed += before - after;
    rep->masked += n - after;
    return PARE_OK;
}

static pare_status prune_mask(pare_linear *const *ls, const pare_input_stats *const *stats, int count,
                              const pare_mask_opts *o, pare_prune_report *rep_out, const pare_progress *progress,
                              pare_error *err)
{
    pare_prune_report rep;
    memset(&rep, 0, sizeof rep);
    pare_status rc = validate_mask_layers(ls, stats, count, o, err);
    if (rc)
        return rc;
    size_t total = 0, widest = 0;
    int widest_in = 1;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)ls[i]->out * ls[i]->in;
        total += n;
        widest = n > widest ? n : widest;
        widest_in = ls[i]->in > widest_in ? ls[i]->in : widest_in;
        rep.params_before += pare_linear_params(ls[i]);
    }
    rep.weights = total;
    int wanda = o->score == PARE_SCORE_WANDA, global = o->nm_m <= 0 && o->scope == PARE_SCOPE_GLOBAL;
    size_t span = global ? total : widest;
    double *score = malloc((span ? span : 1) * sizeof *score), *buf = malloc((span ? span : 1) * sizeof *buf);
    uint8_t *keep = malloc(span ? span : 1);
    double *norms = malloc((size_t)widest_in * sizeof *norms);
    if (!score || !buf || !keep || !norms) {
        rc = oom(err, "pruning");
        goto done;
    }
    if (global) {
        size_t off = 0;
        for (int i = 0; i < count; i++) {
            if (wanda && (rc = input_norms(ls[i], stats[i], score_purpose(o), norms, err)))
                goto done;
            fill_scores(ls[i], wanda ? norms : NULL, score + off, keep + off);
            off += (size_t)ls[i]->out * ls[i]->in;
        }
        size_t k = pare_prune_count(o->sparsity, total), gone = total - count_kept(keep, total);
        if (gone < k)
            remove_lowest(score, keep, total, k - gone, buf);
        off = 0;
        for (int i = 0; i < count; i++) {
            if ((rc = apply_mask(ls[i], keep + off, &rep, err)))
                goto done;
            off += (size_t)ls[i]->out * ls[i]->in;
        }
    } else {
        for (int i = 0; i < count; i++) {
            if (wanda && (rc = input_norms(ls[i], stats[i], score_purpose(o), norms, err)))
                goto done;
            mask_one(ls[i], wanda ? norms : NULL, o, score, keep, buf);
            if ((rc = apply_mask(ls[i], keep, &rep, err)))
                goto done;
            if ((rc = pare_report(progress, "prune", (double)(i + 1) / count, ls[i]->name, err)))
                goto done;
        }
    }
    for (int i = 0; i < count; i++)
        rep.params_after += pare_linear_params(ls[i]);
    rep.sparsity = total ? (double)rep.masked / (double)total : 0.0;
done:
    free(score);
    free(buf);
    free(keep);
    free(norms);
    if (rep_out && rc == PARE_OK)
        *rep_out = rep;
    return rc;
}

pare_status pare_prune_mask(pare_linear *const *ls, const pare_input_stats *const *stats, int count,
                            const pare_mask_opts *o, pare_prune_report *rep, pare_error *err)
{
    return prune_mask(ls, stats, count, o, rep, NULL, err);
}

static pare_status check_stats_layers(const pare_model *m, const pare_calib_stats *st, pare_error *err)
{
    if (st && (st->n_layers != m->cfg.n_layers || !st->sites))
        return pare_fail(err, PARE_EINVAL, "calibration statistics cover %d layers but the model has %d", st->n_layers,
                         m->cfg.n_layers);
    return PARE_OK;
}

pare_status pare_prune_model_mask(pare_model *m, const pare_calib_stats *st, const pare_mask_opts *o,
                                  pare_prune_report *rep, const pare_progress *progress, pare_error *err)
{
    pare_status rc = check_stats_layers(m, st, err);
    if (rc)
        return rc;
    if (pare_model_streamed(m))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: a mask over the whole model ranks every block's weights at once, which a streamed model "
                         "never holds; prune per matrix or per row, or give more memory (--memory-limit, --stream off)",
                         m->path);
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **ls = malloc((size_t)(n ? n : 1) * sizeof *ls);
    const pare_input_stats **ss = calloc((size_t)(n ? n : 1), sizeof *ss);
    if (!ls || !ss) {
        free(ls);
        free(ss);
        return oom(err, "pruning");
    }
    pare_model_linears(m, ls, n);
    for (int i = 0; i < n && st; i++)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            int site = pare_linear_site(&m->blocks[l], ls[i]);
            if (site >= 0) {
                ss[i] = &st->sites[l][site];
                break;
            }
        }
    rc = prune_mask(ls, ss, n, o, rep, progress, err);
    free(ls);
    free(ss);
    return rc;
}

/* ---------------------------------------------------------------- FFN channels */

static pare_status check_ffn_shape(const pare_block *b, pare_error *err)
{
    int F = b->up.out;
    if (F < 1 || b->down.in != F || (b->gate.out && (b->gate.out != F || b->gate.in != b->up.in)))
        return pare_fail(err, PARE_EINVAL, "%s: inconsistent FFN (up %d rows, gate %d rows, down %d columns)",
                         b->up.name, F, b->gate.out, b->down.in);
    return PARE_OK;
}

/* Adds the row norms of (|W| ⊙ norms) (norms NULL: all 1) of l to acc[l->out]. */
static pare_status add_row_norms(const pare_linear *l, const double *norms, double *acc, pare_error *err)
{
    float *owned;
    const float *w = dense_view(l, &owned);
    if (!w)
        return oom(err, l->name);
    pare_status rc = check_weights(l, w, err);
    if (!rc)
        for (int i = 0; i < l->out; i++) {
            double s = 0;
            const float *row = w + (size_t)i * l->in;
            for (int j = 0; j < l->in; j++) {
                double v = fabs((double)row[j]) * (norms ? norms[j] : 1.0);
                s += v * v;
            }
            acc[i] += sqrt(s);
        }
    free(owned);
    return rc;
}

/* Adds ||W[:, i]|| * (norms ? norms[i] : 1) of l to acc[l->in]. */
static pare_status add_col_norms(const pare_linear *l, const double *norms, double *acc, pare_error *err)
{
    float *owned;
    const float *w = dense_view(l, &owned);
    double *ss = calloc((size_t)l->in, sizeof *ss);
    pare_status rc = !w || !ss ? oom(err, l->name) : check_weights(l, w, err);
    if (!rc) {
        for (int r = 0; r < l->out; r++) {
            const float *row = w + (size_t)r * l->in;
            for (int i = 0; i < l->in; i++)
                ss[i] += (double)row[i] * row[i];
        }
        for (int i = 0; i < l->in; i++)
            acc[i] += sqrt(ss[i]) * (norms ? norms[i] : 1.0);
    }
    free(ss);
    free(owned);
    return rc;
}

pare_status pare_ffn_channel_scores(const pare_block *b, const pare_input_stats *sites, pare_chan_score score,
                                    double *scores, pare_error *err)
{
    if (score != PARE_CHAN_LORAP && score != PARE_CHAN_MAGNITUDE)
        return pare_fail(err, PARE_EINVAL, "unknown channel score %d", (int)score);
    pare_status rc = check_ffn_shape(b, err);
    if (rc)
        return rc;
    int F = b->up.out, llama = b->gate.out > 0, lorap = score == PARE_CHAN_LORAP;
    int width = b->up.in > F ? b->up.in : F;
    width = b->gate.in > width ? b->gate.in : width;
    double *norms = malloc((size_t)width * sizeof *norms), *acc = calloc((size_t)F, sizeof *acc);
    const char *purpose = "LoRAP channel scores";
    if (!norms || !acc) {
        rc = oom(err, b->up.name);
        goto done;
    }
    if ((lorap && (rc = input_norms(&b->up, sites ? &sites[PARE_IN_MLP] : NULL, purpose, norms, err))) ||
        (rc = add_row_norms(&b->up, lorap ? norms : NULL, acc, err)))
        goto done;
    if (llama && ((lorap && (rc = input_norms(&b->gate, sites ? &sites[PARE_IN_MLP] : NULL, purpose, norms, err))) ||
                  (rc = add_row_norms(&b->gate, lorap ? norms : NULL, acc, err))))
        goto done;
    if ((lorap && (rc = input_norms(&b->down, sites ? &sites[PARE_IN_DOWN] : NULL, purpose, norms, err))) ||
        (rc = add_col_norms(&b->down, lorap ? norms : NULL, acc, err)))
        goto done;
    memcpy(scores, acc, (size_t)F * sizeof *scores);
done:
    free(norms);
    free(acc);
    return rc;
}

typedef struct {
    double s;
    int32_t i;
} ranked;

/* score ascending, then index descending: of equal scores the lower index ranks higher (is kept). */
static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    return (a->i < b->i) - (a->i > b->i);
}

static pare_status validate_chan(double sparsity, double keep_least, pare_error *err)
{
    if (!(sparsity >= 0 && sparsity < 1))
        return pare_fail(err, PARE_EINVAL, "channel sparsity %g is outside [0, 1)", sparsity);
    if (!(keep_least >= 0 && keep_least < 1))
        return pare_fail(err, PARE_EINVAL, "keep-least fraction %g is outside [0, 1)", keep_least);
    if (keep_least + sparsity > 1 + 1e-12)
        return pare_fail(err, PARE_EINVAL, "keep-least fraction %g plus sparsity %g exceeds 1", keep_least, sparsity);
    return PARE_OK;
}

pare_status pare_chan_select(const double *scores, int n, double sparsity, double keep_least, int32_t *keep,
                             int *n_keep, pare_error *err)
{
    pare_status rc = validate_chan(sparsity, keep_least, err);
    if (rc)
        return rc;
    if (n < 1)
        return pare_fail(err, PARE_EINVAL, "channel selection over %d channels", n);
    for (int i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return pare_fail(err, PARE_EINVAL, "channel score %d is %s", i, nonfinite_name(scores[i]));
    size_t lo = pare_prune_count(keep_least, (size_t)n), hi = pare_prune_count(keep_least + sparsity, (size_t)n);
    if (hi < lo)
        hi = lo;
    if (hi - lo >= (size_t)n)
        return pare_fail(err, PARE_EINVAL, "sparsity %g with keep-least %g would remove all %d channels", sparsity,
                         keep_least, n);
    ranked *r = malloc((size_t)n * sizeof *r);
    uint8_t *gone = calloc((size_t)n, 1);
    if (!r || !gone) {
        free(r);
        free(gone);
        return oom(err, "channel selection");
    }
    for (int i = 0; i < n; i++) {
        r[i].s = scores[i];
        r[i].i = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    for (size_t p = lo; p < hi; p++)
        gone[r[p].i] = 1;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!gone[i])
            keep[k++] = i;
    *n_keep = k;
    free(r);
    free(gone);
    return PARE_OK;
}

static size_t ffn_params(const pare_block *b)
{
    size_t n = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (pare_lin_kinds[k].ffn && b->lin[k].out)
            n += pare_linear_params(&b->lin[k]);
    return n;
}

/* Scores and selects the kept channels of b into *keep (malloc'd) and *n_keep; modifies nothing. */
static pare_status ffn_plan(const pare_block *b, const pare_input_stats *sites, const pare_chan_opts *o, int32_t **keep,
                            int *n_keep, pare_error *err)
{
    *keep = NULL;
    pare_status rc = validate_chan(o->sparsity, o->keep_least, err);
    if (rc || (rc = check_ffn_shape(b, err)))
        return rc;
    int F = b->up.out;
    double *scores = malloc((size_t)F * sizeof *scores);
    *keep = malloc((size_t)F * sizeof **keep);
    if (!scores || !*keep)
        rc = oom(err, b->up.name);
    else if (!(rc = pare_ffn_channel_scores(b, sites, o->score, scores, err)) &&
             (rc = pare_chan_select(scores, F, o->sparsity, o->keep_least, *keep, n_keep, err)))
        pare_wrap(err, "%s", b->up.name); /* name the block whose selection failed */
    free(scores);
    if (rc) {
        free(*keep);
        *keep = NULL;
    }
    return rc;
}

/* Slices b's FFN to the kept channels; adds to rep. */
static pare_status ffn_apply(pare_block *b, const int32_t *keep, int n_keep, pare_chan_report *rep, pare_error *err)
{
    int F = b->up.out;
    size_t before = ffn_params(b);
    pare_status rc = PARE_OK;
    if (n_keep < F) {
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            pare_linear *l = &b->lin[k];
            if (!pare_lin_kinds[k].ffn || !l->out)
                continue;
            /* the FFN width is down's input and gate's and up's output */
            if ((rc = pare_lin_kinds[k].in == PARE_DIM_FFN ? pare_linear_keep_cols(l, keep, n_keep, err)
                                                           : pare_linear_keep_rows(l, keep, n_keep, err)))
                return rc;
        }
    }
    rep->channels_before += F;
    rep->channels_after += n_keep;
    rep->removed += F - n_keep;
    rep->params_before += before;
    rep->params_after += ffn_params(b);
    return PARE_OK;
}

pare_status pare_prune_ffn(pare_block *b, const pare_input_stats *sites, const pare_chan_opts *o,
                           pare_chan_report *rep_out, pare_error *err)
{
    pare_chan_report rep;
    memset(&rep, 0, sizeof rep);
    int32_t *keep;
    int n_keep = 0;
    pare_status rc = ffn_plan(b, sites, o, &keep, &n_keep, err);
    if (rc)
        return rc;
    rc = ffn_apply(b, keep, n_keep, &rep, err);
    free(keep);
    rep.sparsity = rep.channels_before ? (double)rep.removed / rep.channels_before : 0.0;
    if (rep_out && !rc)
        *rep_out = rep;
    return rc;
}

pare_status pare_prune_model_ffn(pare_model *m, const pare_calib_stats *st, const pare_chan_opts *o,
                                 pare_chan_report *rep_out, const pare_progress *progress, pare_error *err)
{
    pare_status rc = check_stats_layers(m, st, err);
    if (rc)
        return rc;
    int L = m->cfg.n_layers;
    int32_t **keep = calloc((size_t)(L ? L : 1), sizeof *keep);
    int *n_keep = calloc((size_t)(L ? L : 1), sizeof *n_keep);
    pare_chan_report rep;
    memset(&rep, 0, sizeof rep);
    if (!keep || !n_keep) {
        rc = oom(err, "channel pruning");
        goto done;
    }
    /* every block is scored and checked before any is sliced */
    for (int l = 0; l < L && !rc; l++)
        rc = ffn_plan(&m->blocks[l], st ? st->sites[l] : NULL, o, &keep[l], &n_keep[l], err);
    for (int l = 0; l < L && !rc; l++)
        if (!(rc = ffn_apply(&m->blocks[l], keep[l], n_keep[l], &rep, err)))
            rc = pare_report(progress, "prune", (double)(l + 1) / L, m->blocks[l].up.name, err);
    rep.sparsity = rep.channels_before ? (double)rep.removed / rep.channels_before : 0.0;
done:
    for (int l = 0; keep && l < L; l++)
        free(keep[l]);
    free(keep);
    free(n_keep);
    if (rep_out && !rc)
        *rep_out = rep;
    return rc;
}

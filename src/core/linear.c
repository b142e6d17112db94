/* Compressed linear layers: storage changes and the one forward that serves every kind. */
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "parallel.h"

void pare_linear_forward(const pare_linear *l, const float *x, int N, float *y, float *scratch)
{
    int bias = l->b != NULL;
    for (int i = 0; bias && i < N; i++)
        memcpy(y + (size_t)i * l->out, l->b, (size_t)l->out * sizeof(float));
    if (l->kind == PARE_LIN_FACTORED) {
        /* two thin products: t[N, k] = x B^T, y += t A^T */
        pare_matmul_nt(N, l->rank, l->in, x, l->in, l->B, l->in, 0, scratch, l->rank);
        pare_matmul_nt(N, l->out, l->rank, scratch, l->rank, l->A, l->rank, bias, y, l->out);
        return;
    }
    pare_matmul_nt(N, l->out, l->in, x, l->in, l->w, l->in, bias, y, l->out);
}

size_t pare_linear_mask_kept(const pare_linear *l)
{
    if (!l->mask) /* spilled, its block not acquired */
        return l->mask_kept;
    size_t kept = 0, n = (size_t)l->out * l->in;
    for (size_t i = 0; i < n; i++)
        kept += l->mask[i] != 0;
    return kept;
}

size_t pare_linear_params(const pare_linear *l)
{
    size_t bias = l->b ? (size_t)l->out : 0;
    if (l->kind == PARE_LIN_FACTORED)
        return (size_t)l->rank * (l->out + l->in) + bias;
    if (l->kind == PARE_LIN_MASKED)
        return pare_linear_mask_kept(l) + bias;
    return (size_t)l->out * l->in + bias;
}

size_t pare_linear_macs(const pare_linear *l)
{
    if (l->kind == PARE_LIN_FACTORED)
        return (size_t)l->rank * (l->out + l->in);
    return (size_t)l->out * l->in; /* masked layers run dense: no sparse kernel */
}

void pare_linear_dense(const pare_linear *l, float *dst)
{
    if (l->kind == PARE_LIN_FACTORED)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->out, l->in, l->rank, 1.0f, l->A, l->rank, l->B, l->in,
                    0.0f, dst, l->in);
    else
        memcpy(dst, l->w, (size_t)l->out * l->in * sizeof(float));
}

/* The floats of l's weights (or factors), without the bias. */
static size_t weight_floats(const pare_linear *l)
{
    return l->kind == PARE_LIN_FACTORED ? (size_t)l->rank * ((size_t)l->out + l->in) : (size_t)l->out * l->in;
}

pare_status pare_linear_own(pare_linear *l, pare_error *err)
{
    if (l->streamed == PARE_LIN_OWNED)
        return PARE_OK;
    size_t wf = weight_floats(l), nb = l->b ? (size_t)l->out : 0;
    float *heap = malloc((wf + nb) * sizeof(float));
    uint8_t *mask = l->mask ? malloc((size_t)l->out * l->in) : NULL; /* a spilled mask views the cache too */
    if (!heap || (l->mask && !mask)) {
        free(heap);
        free(mask);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    }
    if (mask)
        memcpy(mask, l->mask, (size_t)l->out * l->in);
    l->mask = mask;
    memcpy(heap, l->kind == PARE_LIN_FACTORED ? l->A : l->w, wf * sizeof(float));
    if (nb)
        memcpy(heap + wf, l->b, nb * sizeof(float));
    l->heap = heap;
    if (l->kind == PARE_LIN_FACTORED) {
        l->A = heap;
        l->B = heap + (size_t)l->out * l->rank;
    } else {
        l->w = heap;
    }
    l->b = nb ? heap + wf : NULL;
    l->streamed = PARE_LIN_OWNED;
    return PARE_OK;
}

/* Moves the layer onto a new heap block holding w-or-factors and bias, freeing the old one. */
static pare_status rehome(pare_linear *l, size_t weight_floats, float **weights, pare_error *err)
{
    size_t nb = l->b ? (size_t)l->out : 0;
    float *heap = malloc((weight_floats + nb) * sizeof(float));
    if (!heap)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    if (nb)
        memcpy(heap + weight_floats, l->b, nb * sizeof(float));
    free(l->heap);
    l->heap = heap;
    if (l->b)
        l->b = heap + weight_floats;
    *weights = heap;
    return PARE_OK;
}

void pare_linear_balance_factors(pare_linear *l)
{
    if (l->kind != PARE_LIN_FACTORED)
        return;
    int k = l->rank;
    for (int i = 0; i < k; i++) {
        double na = 0, nb = 0;
        for (int r = 0; r < l->out; r++)
            na += (double)l->A[(size_t)r * k + i] * l->A[(size_t)r * k + i];
        for (int c = 0; c < l->in; c++)
            nb += (double)l->B[(size_t)i * l->in + c] * l->B[(size_t)i * l->in + c];
        if (!(na > 0) || !(nb > 0) || !isfinite(na) || !isfinite(nb))
            continue;
        /* ‖a‖ 2^e = ‖b‖ 2^-e (na, nb are squared norms). Norms within a factor 2 (|x| <= 1/2) stay:
         * rounding a tie away from zero would flip a ratio of exactly 2 to 1/2 and back on every call. */
        double x = 0.25 * log2(nb / na);
        if (fabs(x) <= 0.5)
            continue;
        int e = (int)lround(x);
        for (int r = 0; r < l->out; r++)
            l->A[(size_t)r * k + i] = ldexpf(l->A[(size_t)r * k + i], e);
        for (int c = 0; c < l->in; c++)
            l->B[(size_t)i * l->in + c] = ldexpf(l->B[(size_t)i * l->in + c], -e);
    }
}

pare_status pare_linear_set_factors(pare_linear *l, int rank, const float *A, const float *B, pare_error *err)
{
    pare_status own_rc = pare_linear_own(l, err);
    if (own_rc)
        return own_rc;
    if (rank < 1 || rank > (l->out < l->in ? l->out : l->in))
        return pare_fail(err, PARE_EINVAL, "rank %d exceeds min(%d, %d) for %s", rank, l->out, l->in, l->name);
    float *p = NULL;
    size_t na = (size_t)l->out * rank, nbb = (size_t)rank * l->in;
    /* A and B may point into the old storage: copy out first */
    float *tmp = malloc((na + nbb) * sizeof(float));
    if (!tmp)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    memcpy(tmp, A, na * sizeof(float));
    memcpy(tmp + na, B, nbb * sizeof(float));
    pare_status rc = rehome(l, na + nbb, &p, err);
    if (rc) {
        free(tmp);
        return rc;
    }
    memcpy(p, tmp, (na + nbb) * sizeof(float));
    free(tmp);
    free(l->mask);
    l->mask = NULL;
    l->w = NULL;
    l->streamed = PARE_LIN_OWNED;
    l->A = p;
    l->B = p + na;
    l->rank = rank;
    l->kind = PARE_LIN_FACTORED;
    return PARE_OK;
}

pare_status pare_linear_set_mask(pare_linear *l, const uint8_t *mask, pare_error *err)
{
    pare_status own_rc = pare_linear_own(l, err);
    if (own_rc)
        return own_rc;
    if (l->kind == PARE_LIN_FACTORED)
        return pare_fail(err, PARE_EINVAL, "%s: cannot mask a factorized layer", l->name);
    size_t n = (size_t)l->out * l->in;
    uint8_t *m = malloc(n);
    if (!m)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    for (size_t i = 0; i < n; i++) {
        m[i] = mask[i] != 0 && (!l->mask || l->mask[i]);
        if (!m[i])
            l->w[i] = 0.0f;
    }
    free(l->mask);
    l->mask = m;
    l->kind = PARE_LIN_MASKED;
    return PARE_OK;
}

static pare_status check_indices(const pare_linear *l, const int32_t *idx, int n, int limit, const char *what,
                                 pare_error *err)
{
    if (n < 1 || n > limit)
        return pare_fail(err, PARE_EINVAL, "%s: keeping %d %s of %d", l->name, n, what, limit);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= limit)
            return pare_fail(err, PARE_EINVAL, "%s: %s index %d out of range 0..%d", l->name, what, idx[i], limit - 1);
    return PARE_OK;
}

/* Composes a new selection with an existing one so kept_* always refers to the loaded shape. */
static int32_t *compose(const int32_t *old, const int32_t *sel, int n)
{
    int32_t *k = malloc((size_t)n * sizeof *k);
    if (k)
        for (int i = 0; i < n; i++)
            k[i] = old ? old[sel[i]] : sel[i];
    return k;
}

pare_status pare_linear_keep_rows(pare_linear *l, const int32_t *rows, int n, pare_error *err)
{
    pare_status own_rc = pare_linear_own(l, err);
    if (own_rc)
        return own_rc;
    pare_status rc = check_indices(l, rows, n, l->out, "rows", err);
    if (rc)
        return rc;
    int32_t *kept = compose(l->kept_out, rows, n);
    size_t per = l->kind == PARE_LIN_FACTORED ? (size_t)l->rank : (size_t)l->in;
    size_t rest = l->kind == PARE_LIN_FACTORED ? (size_t)l->rank * l->in : 0;
    float *src = l->kind == PARE_LIN_FACTORED ? l->A : l->w;
    float *oldB = l->B, *oldb = l->b;
    uint8_t *mask = l->mask ? malloc((size_t)n * l->in) : NULL;
    float *tmp = malloc(((size_t)n * per + rest + n) * sizeof(float));
    if (!kept || !tmp || (l->mask && !mask)) {
        free(kept);
        free(tmp);
        free(mask);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    }
    for (int i = 0; i < n; i++) {
        memcpy(tmp + (size_t)i * per, src + (size_t)rows[i] * per, per * sizeof(float));
        if (mask)
            memcpy(mask + (size_t)i * l->in, l->mask + (size_t)rows[i] * l->in, (size_t)l->in);
    }
    if (rest)
        memcpy(tmp + (size_t)n * per, oldB, rest * sizeof(float));
    if (oldb)
        for (int i = 0; i < n; i++)
            tmp[(size_t)n * per + rest + i] = oldb[rows[i]];
    free(l->heap);
    l->heap = tmp;
    if (l->kind == PARE_LIN_FACTORED) {
        l->A = tmp;
        l->B = tmp + (size_t)n * per;
    } else {
        l->w = tmp;
    }
    l->b = oldb ? tmp + (size_t)n * per + rest : NULL;
    free(l->mask);
    l->mask = mask;
    free(l->kept_out);
    l->kept_out = kept;
    l->out = n;
    l->streamed = PARE_LIN_OWNED;
    return PARE_OK;
}

pare_status pare_linear_keep_cols(pare_linear *l, const int32_t *cols, int n, pare_error *err)
{
    pare_status own_rc = pare_linear_own(l, err);
    if (own_rc)
        return own_rc;
    pare_status rc = check_indices(l, cols, n, l->in, "columns", err);
    if (rc)
        return rc;
    int32_t *kept = compose(l->kept_in, cols, n);
    int rows = l->kind == PARE_LIN_FACTORED ? l->rank : l->out;
    float *src = l->kind == PARE_LIN_FACTORED ? l->B : l->w;
    size_t lead = l->kind == PARE_LIN_FACTORED ? (size_t)l->out * l->rank : 0; /* A, unchanged */
    size_t nb = l->b ? (size_t)l->out : 0;
    uint8_t *mask = l->mask ? malloc((size_t)l->out * n) : NULL;
    float *tmp = malloc((lead + (size_t)rows * n + nb) * sizeof(float));
    if (!kept || !tmp || (l->mask && !mask)) {
        free(kept);
        free(tmp);
        free(mask);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", l->name);
    }
    if (lead)
        memcpy(tmp, l->A, lead * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++)
            tmp[lead + (size_t)r * n + j] = src[(size_t)r * l->in + cols[j]];
    if (mask)
        for (int r = 0; r < l->out; r++)
            for (int j = 0; j < n; j++)
                mask[(size_t)r * n + j] = l->mask[(size_t)r * l->in + cols[j]];
    if (nb)
        memcpy(tmp + lead + (size_t)rows * n, l->b, nb * sizeof(float));
    free(l->heap);
    l->heap = tmp;
    if (l->kind == PARE_LIN_FACTORED) {
        l->A = tmp;
        l->B = tmp + lead;
    } else {
        l->w = tmp;
    }
    l->b = nb ? tmp + lead + (size_t)rows * n : NULL;
    free(l->mask);
    l->mask = mask;
    free(l->kept_in);
    l->kept_in = kept;
    l->in = n;
    l->streamed = PARE_LIN_OWNED;
    return PARE_OK;
}

void pare_linear_release(pare_linear *l)
{
    if (l->streamed == PARE_LIN_SPILLED) { /* its arrays view the block cache, which frees them */
        l->heap = NULL;
        l->mask = NULL;
    }
    free(l->heap);
    free(l->mask);
    free(l->kept_out);
    free(l->kept_in);
    l->heap = NULL;
    l->mask = NULL;
    l->kept_out = l->kept_in = NULL;
}

/* A malloc'd copy of n bytes of src (NULL for a NULL src); *failed is set when the copy fails. */
static void *copy_owned(const void *src, size_t n, int *failed)
{
    if (!src)
        return NULL;
    void *p = malloc(n ? n : 1);
    if (!p)
        *failed = 1;
    else
        memcpy(p, src, n);
    return p;
}

pare_status pare_linear_clone(const pare_linear *src, pare_linear *dst, pare_error *err)
{
    *dst = *src;
    int failed = 0;
    if (src->heap) { /* rehome's layout: weights or factors, then the bias, in one block */
        size_t wf = src->kind == PARE_LIN_FACTORED ? (size_t)src->rank * ((size_t)src->out + src->in)
                                                   : (size_t)src->out * src->in;
        size_t nb = src->b ? (size_t)src->out : 0;
        if (!(dst->heap = malloc((wf + nb) * sizeof(float)))) {
            failed = 1;
        } else if (src->kind == PARE_LIN_FACTORED) {
            dst->A = dst->heap;
            dst->B = dst->heap + (size_t)src->out * src->rank;
            memcpy(dst->A, src->A, (size_t)src->out * src->rank * sizeof(float));
            memcpy(dst->B, src->B, (size_t)src->rank * src->in * sizeof(float));
        } else {
            dst->w = dst->heap;
            memcpy(dst->w, src->w, wf * sizeof(float));
        }
        if (dst->heap) {
            dst->b = nb ? dst->heap + wf : NULL;
            if (nb)
                memcpy(dst->b, src->b, nb * sizeof(float));
        }
    }
    dst->mask = copy_owned(src->mask, (size_t)src->out * src->in, &failed);
    dst->kept_out = copy_owned(src->kept_out, (size_t)src->out * sizeof(int32_t), &failed);
    dst->kept_in = copy_owned(src->kept_in, (size_t)src->in * sizeof(int32_t), &failed);
    if (failed) {
        pare_linear_release(dst);
        dst->heap = NULL;
        dst->mask = NULL;
        dst->kept_out = dst->kept_in = NULL;
        return pare_fail(err, PARE_ENOMEM, "cloning %s: out of memory", src->name);
    }
    return PARE_OK;
}

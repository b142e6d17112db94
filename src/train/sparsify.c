/* Scores for pruning during fine-tuning and the masks they choose on the cubic schedule. Masks only
 * shrink: a masked weight is stored as zero (pare's masked layers hold zeros), so it cannot grow
 * back, and the arrays are edited in place so that a trainer's gradient layout stays valid. */
#include "sparsify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/prune.h"

const char *const PARE_FOP_NAMES[] = {"movement", "sensitivity", "magnitude", NULL};
const char *const PARE_FOP_SCOPE_NAMES[] = {"matrix", "global", NULL};

void pare_fop_defaults(pare_fop_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = PARE_FOP_MOVEMENT;
    o->sparsity = 0.5;
    o->total = 1000;
    o->every = 1;
    /* PLATON's defaults for the two exponential moving averages */
    o->beta1 = 0.85;
    o->beta2 = 0.95;
}

pare_status pare_fop_check(const pare_fop_opts *o, pare_error *err)
{
    if ((int)o->method < 0 || o->method > PARE_FOP_MAGNITUDE)
        return pare_fail(err, PARE_EINVAL, "pruning method %d: expected movement, sensitivity or magnitude",
                         (int)o->method);
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return pare_fail(err, PARE_EINVAL, "sparsity %g must be in [0, 1)", o->sparsity);
    if (o->total < 1 || o->warmup < 0 || o->cooldown < 0)
        return pare_fail(err, PARE_EINVAL,
                         "pruning schedule: %ld steps, warmup %ld, cooldown %ld: need steps >= 1 and "
                         "non-negative warmup and cooldown",
                         o->total, o->warmup, o->cooldown);
    if (o->sparsity > 0 && o->warmup + o->cooldown >= o->total)
        return pare_fail(err, PARE_EINVAL,
                         "pruning schedule: warmup %ld + cooldown %ld steps leave no pruning phase "
                         "in %ld steps",
                         o->warmup, o->cooldown, o->total);
    if (o->every < 1)
        return pare_fail(err, PARE_EINVAL, "pruning: mask update interval %d must be at least 1", o->every);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return pare_fail(err, PARE_EINVAL, "sensitivity EMA rates %g, %g must be in [0, 1)", o->beta1, o->beta2);
    return PARE_OK;
}

double pare_fop_kept(const pare_fop_opts *o, long t)
{
    double rf = 1.0 - o->sparsity;
    long span = o->total - o->warmup - o->cooldown;
    if (t < o->warmup)
        return 1.0;
    if (t >= o->total - o->cooldown || span <= 0)
        return rf;
    double x = 1.0 - (double)(t - o->warmup) / (double)span;
    return rf + (1.0 - rf) * x * x * x;
}

pare_status pare_fop_prepare(pare_model *m, pare_error *err)
{
    int n = pare_model_linears(m, NULL, 0);
    pare_linear **ls = malloc((size_t)(n > 0 ? n : 1) * sizeof *ls);
    size_t big = 0;
    if (!ls)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    pare_model_linears(m, ls, n);
    for (int i = 0; i < n; i++) {
        if (ls[i]->kind == PARE_LIN_FACTORED) {
            pare_status rc = pare_fail(err, PARE_EINVAL,
                                       "%s is factorized: pruning during fine-tuning needs full "
                                       "(dense or masked) matrices",
                                       ls[i]->name);
            free(ls);
            return rc;
        }
        size_t sz = (size_t)ls[i]->out * ls[i]->in;
        big = sz > big ? sz : big;
    }
    uint8_t *ones = malloc(big ? big : 1);
    if (!ones) {
        free(ls);
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    }
    memset(ones, 1, big);
    pare_status rc = PARE_OK;
    for (int i = 0; i < n && !rc; i++)
        if (ls[i]->kind == PARE_LIN_DENSE)
            rc = pare_linear_set_mask(ls[i], ones, err);
    free(ones);
    free(ls);
    return rc;
}

void pare_fop_free(pare_fop_state *s)
{
    if (!s)
        return;
    free(s->slab);
    free(s->mats);
    free(s);
}

pare_status pare_fop_new(pare_model *m, const pare_fop_opts *o, pare_fop_state **out, pare_error *err)
{
    *out = NULL;
    pare_status rc = pare_fop_check(o, err);
    if (rc)
        return rc;
    int n = pare_model_linears(m, NULL, 0);
    pare_fop_state *s = calloc(1, sizeof *s);
    pare_linear **ls = malloc((size_t)(n > 0 ? n : 1) * sizeof *ls);
    if (s)
        s->mats = calloc((size_t)(n > 0 ? n : 1), sizeof *s->mats);
    if (!s || !ls || !s->mats) {
        free(ls);
        pare_fop_free(s);
        return pare_fail(err, PARE_ENOMEM, "out of memory for pruning state");
    }
    pare_model_linears(m, ls, n);
    s->o = *o;
    s->count = n;
    for (int i = 0; i < n; i++) {
        if (ls[i]->kind != PARE_LIN_MASKED) {
            rc = pare_fail(err, PARE_EINVAL, "%s is %s: pruning state needs masked block linears (pare_fop_prepare)",
                           ls[i]->name, ls[i]->kind == PARE_LIN_FACTORED ? "factorized" : "dense");
            free(ls);
            pare_fop_free(s);
            return rc;
        }
        s->mats[i].lin = ls[i];
        s->mats[i].n = (size_t)ls[i]->out * ls[i]->in;
        s->mats[i].offset = s->weights;
        s->weights += s->mats[i].n;
    }
    free(ls);
    s->slab = calloc(3 * (s->weights ? s->weights : 1), sizeof(float));
    if (!s->slab) {
        double mib = (double)s->weights * 12 / (1 << 20);
        pare_fop_free(s);
        return pare_fail(err, PARE_ENOMEM, "cannot allocate %.1f MiB of pruning scores", mib);
    }
    for (int i = 0; i < n; i++) {
        s->mats[i].score = s->slab + s->mats[i].offset;
        s->mats[i].ema = s->slab + s->weights + s->mats[i].offset;
        s->mats[i].unc = s->slab + 2 * s->weights + s->mats[i].offset;
    }
    *out = s;
    return PARE_OK;
}

static const pare_param *param_of(const pare_grads *g, const float *w)
{
    for (int e = 0; e < g->n_params; e++)
        if (g->params[e].param == w)
            return &g->params[e];
    return NULL;
}

pare_status pare_fop_accumulate(pare_fop_state *s, const pare_grads *g, pare_error *err)
{
    for (int i = 0; i < s->count; i++) {
        const pare_param *p = param_of(g, s->mats[i].lin->w);
        if (!p || !p->grad_dense || p->n != s->mats[i].n)
            return pare_fail(err, PARE_EINVAL,
                             "%s: no dense gradient (allocate the gradients with "
                             "PARE_GRADS_DENSE_MASKED after pare_fop_prepare)",
                             s->mats[i].lin->name);
    }
    float b1 = (float)s->o.beta1, b2 = (float)s->o.beta2;
    int movement = s->o.method == PARE_FOP_MOVEMENT, sens = s->o.method == PARE_FOP_SENSITIVITY;
    for (int i = 0; i < s->count; i++) {
        pare_fop_matrix *mt = &s->mats[i];
        const float *w = mt->lin->w, *gd = param_of(g, w)->grad_dense;
        float *sc = mt->score, *ema = mt->ema, *unc = mt->unc;
        ptrdiff_t n = (ptrdiff_t)mt->n;
#pragma omp parallel for num_threads(pare_threads()) schedule(static) if (n > 65536)
        for (ptrdiff_t j = 0; j < n; j++) {
            float wg = w[j] * gd[j];
            float imp = fabsf(wg);
            ema[j] = b1 * ema[j] + (1.0f - b1) * imp;
            unc[j] = b2 * unc[j] + (1.0f - b2) * fabsf(imp - ema[j]);
            if (movement)
                sc[j] -= wg;
            else if (sens)
                sc[j] = ema[j] * unc[j];
        }
    }
    s->updates++;
    return PARE_OK;
}

/* ---- selection: the k smallest keys of an array, keys distinct ---- */

/* A float's bits mapped so that unsigned order is numeric order. */
static uint32_t ordered(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static void swap64(uint64_t *a, uint64_t *b)
{
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges key[0..n) so that its k smallest come first (in any order): quickselect with a
 * median-of-three pivot; keys are distinct, so the partition always shrinks. */
static void select_smallest(uint64_t *key, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1 && k > lo && k < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key[mid] < key[lo])
            swap64(&key[mid], &key[lo]);
        if (key[hi - 1] < key[lo])
            swap64(&key[hi - 1], &key[lo]);
        if (key[hi - 1] < key[mid])
            swap64(&key[hi - 1], &key[mid]);
        if (hi - lo <= 3)
            break; /* those three swaps sorted it */
        uint64_t pivot = key[mid];
        size_t i = lo, j = hi - 1;
        /* Hoare partition: [lo, i) < pivot region, (j, hi) >= pivot region */
        for (;;) {
            while (key[i] < pivot)
                i++;
            while (key[j] > pivot)
                j--;
            if (i >= j)
                break;
            swap64(&key[i], &key[j]);
            i++;
            j--;
        }
        /* now [lo, j] <= pivot <= [j+1, hi) */
        if (k <= j)
            hi = j + 1;
        else
            lo = j + 1;
    }
}

/* Removes, among the kept entries of matrices [first, first + count), the `remove` lowest-ranked ones
 * (score ascending, then higher global index first). keys has room for every kept entry. */
static void prune_scope(pare_fop_state *s, int first, int count, size_t remove, uint64_t *keys, pare_adamw *opt,
                        const pare_grads *g)
{
    if (!remove)
        return;
    size_t nk = 0;
    int mag = s->o.method == PARE_FOP_MAGNITUDE;
    for (int i = first; i < first + count; i++) {
        const pare_fop_matrix *mt = &s->mats[i];
        const uint8_t *mask = mt->lin->mask;
        for (size_t j = 0; j < mt->n; j++) {
            if (!mask[j])
                continue;
            float sc = mag ? fabsf(mt->lin->w[j]) : mt->score[j];
            uint32_t gi = (uint32_t)(mt->offset + j);
            keys[nk++] = (uint64_t)ordered(sc) << 32 | (uint32_t)(0xFFFFFFFFu - gi);
        }
    }
    if (remove > nk)
        remove = nk;
    select_smallest(keys, nk, remove);
    for (size_t r = 0; r < remove; r++) {
        size_t gi = 0xFFFFFFFFu - (uint32_t)(keys[r] & 0xFFFFFFFFu);
        int i = first, hi = first + count - 1; /* the last matrix starting at or before gi */
        while (i < hi) {
            int mid = (i + hi + 1) / 2;
            if (s->mats[mid].offset <= gi)
                i = mid;
            else
                hi = mid - 1;
        }
        pare_fop_matrix *mt = &s->mats[i];
        size_t j = gi - mt->offset;
        mt->lin->mask[j] = 0;
        mt->lin->w[j] = 0.0f;
        if (opt && g) {
            const pare_param *p = param_of(g, mt->lin->w);
            if (p) {
                size_t off = (size_t)(p->grad - g->slab) + j;
                opt->m[off] = 0.0f;
                opt->v[off] = 0.0f;
            }
        }
    }
}

static size_t masked_count(const pare_fop_matrix *mt)
{
    size_t c = 0;
    for (size_t j = 0; j < mt->n; j++)
        c += mt->lin->mask[j] == 0;
    return c;
}

pare_status pare_fop_apply(pare_fop_state *s, long t, pare_adamw *opt, const pare_grads *g, size_t *changed,
                           pare_error *err)
{
    const pare_fop_opts *o = &s->o;
    if (changed)
        *changed = 0;
    long last = o->total - o->cooldown;
    if (o->sparsity <= 0 || t < o->warmup || t > last || ((t - o->warmup) % o->every != 0 && t != last))
        return PARE_OK;
    if (s->weights >= 0xFFFFFFFFull)
        return pare_fail(err, PARE_EUNSUPPORTED, "pruning: %zu weights exceed the 2^32 a ranking can index", s->weights);
    double drop = 1.0 - pare_fop_kept(o, t);
    size_t biggest = 0;
    for (int i = 0; i < s->count; i++)
        biggest = s->mats[i].n > biggest ? s->mats[i].n : biggest;
    size_t cap = o->global ? s->weights : biggest;
    uint64_t *keys = malloc((cap ? cap : 1) * sizeof *keys);
    if (!keys)
        return pare_fail(err, PARE_ENOMEM, "pruning: cannot allocate %.1f MiB for the ranking",
                         (double)cap * 8 / (1 << 20));
    size_t before = 0, after = 0;
    for (int i = 0; i < s->count; i++)
        before += masked_count(&s->mats[i]);
    if (o->global) {
        size_t want = pare_prune_count(drop, s->weights);
        prune_scope(s, 0, s->count, want > before ? want - before : 0, keys, opt, g);
    } else {
        for (int i = 0; i < s->count; i++) {
            size_t have = masked_count(&s->mats[i]), want = pare_prune_count(drop, s->mats[i].n);
            prune_scope(s, i, 1, want > have ? want - have : 0, keys, opt, g);
        }
    }
    free(keys);
    for (int i = 0; i < s->count; i++)
        after += masked_count(&s->mats[i]);
    if (changed)
        *changed = after - before;
    return PARE_OK;
}

double pare_fop_sparsity(const pare_fop_state *s)
{
    size_t c = 0;
    for (int i = 0; i < s->count; i++)
        c += masked_count(&s->mats[i]);
    return s->weights ? (double)c / (double)s->weights : 0.0;
}

const pare_fop_matrix *pare_fop_find(const pare_fop_state *s, const char *name)
{
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->mats[i].lin->name, name) == 0)
            return &s->mats[i];
    return NULL;
}

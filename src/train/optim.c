/* AdamW updates over the gradient table, learning-rate schedules and gradient clipping. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"

void pare_adamw_defaults(pare_adamw_opts *o)
{
    /* torch.optim.AdamW's defaults, so recipes from papers carry over */
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.01;
}

pare_status pare_adamw_alloc(const pare_grads *g, const pare_adamw_opts *o, pare_adamw **out, pare_error *err)
{
    *out = NULL;
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return pare_fail(err, PARE_EINVAL, "AdamW betas %g, %g must lie in [0, 1)", o->beta1, o->beta2);
    if (!(o->eps > 0) || !(o->weight_decay >= 0))
        return pare_fail(err, PARE_EINVAL, "AdamW eps %g must be positive and weight decay %g non-negative", o->eps,
                         o->weight_decay);
    pare_adamw *a = calloc(1, sizeof *a);
    if (a)
        a->m = calloc(2 * (g->param_floats ? g->param_floats : 1), sizeof(float)); /* m and v in one block */
    if (!a || !a->m) {
        free(a);
        return pare_fail(err, PARE_ENOMEM, "cannot allocate %.1f MiB of AdamW state",
                         (double)g->param_floats * 8 / (1 << 20));
    }
    a->v = a->m + g->param_floats;
    a->n = g->param_floats;
    a->o = *o;
    a->g = g;
    *out = a;
    return PARE_OK;
}

void pare_adamw_free(pare_adamw *opt)
{
    if (!opt)
        return;
    free(opt->m);
    free(opt);
}

pare_status pare_adamw_step(pare_adamw *opt, pare_grads *g, double lr, pare_error *err)
{
    if (opt->g != g || opt->n != g->param_floats)
        return pare_fail(err, PARE_EINVAL, "AdamW: the optimizer state was made for other gradients");
    if (!(lr >= 0) || !isfinite(lr))
        return pare_fail(err, PARE_EINVAL, "AdamW: learning rate %g must be finite and non-negative", lr);
    opt->step++;
    double b1 = opt->o.beta1, b2 = opt->o.beta2;
    double bc1 = 1.0 - pow(b1, (double)opt->step), bc2 = 1.0 - pow(b2, (double)opt->step);
    float fb1 = (float)b1, fb2 = (float)b2, c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)opt->o.eps;
    for (int e = 0; e < g->n_params; e++) {
        const pare_param *pp = &g->params[e];
        size_t off = (size_t)(pp->grad - g->slab);
        float *p = pp->param, *m = opt->m + off, *v = opt->v + off;
        const float *gr = pp->grad;
        float keep = pp->decay ? (float)(1.0 - lr * opt->o.weight_decay) : 1.0f;
        ptrdiff_t n = (ptrdiff_t)pp->n;
#pragma omp parallel for simd num_threads(pare_threads()) schedule(static) if (n > 65536)
        for (ptrdiff_t i = 0; i < n; i++) {
            float gi = gr[i];
            m[i] = fb1 * m[i] + c1 * gi;
            v[i] = fb2 * v[i] + c2 * gi * gi;
            p[i] = p[i] * keep - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
        }
    }
    return PARE_OK;
}

const char *const PARE_LR_DECAY_NAMES[] = {"cosine", "linear", "constant", NULL};

pare_status pare_lr_check(const pare_lr_schedule *s, pare_error *err)
{
    if (!(s->lr_max >= 0) || !(s->lr_min >= 0) || s->lr_min > s->lr_max || !isfinite(s->lr_max))
        return pare_fail(err, PARE_EINVAL, "learning rates: floor %g and peak %g must satisfy 0 <= floor <= peak",
                         s->lr_min, s->lr_max);
    if (s->total < 1 || s->warmup < 0 || s->warmup > s->total)
        return pare_fail(err, PARE_EINVAL,
                         "schedule: %ld warmup steps of %ld in all; need 0 <= warmup <= total, total >= 1", s->warmup,
                         s->total);
    if (s->decay != PARE_LR_COSINE && s->decay != PARE_LR_LINEAR && s->decay != PARE_LR_CONSTANT)
        return pare_fail(err, PARE_EINVAL, "schedule: unknown decay kind %d", (int)s->decay);
    return PARE_OK;
}

double pare_lr_at(const pare_lr_schedule *s, long step)
{
    if (step < s->warmup)
        return s->lr_max * (double)(step + 1) / (double)s->warmup;
    if (s->decay == PARE_LR_CONSTANT)
        return s->lr_max;
    double span = (double)(s->total - s->warmup);
    double p = span > 0 ? (double)(step - s->warmup) / span : 1.0;
    p = p > 1 ? 1 : p;
    if (s->decay == PARE_LR_LINEAR)
        return s->lr_max - (s->lr_max - s->lr_min) * p;
    return s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}

double pare_grads_norm(const pare_grads *g)
{
    double ss = 0;
    const float *x = g->slab;
    ptrdiff_t n = (ptrdiff_t)g->param_floats; /* the parameter gradients start the slab, contiguous */
#pragma omp parallel for num_threads(pare_threads()) schedule(static) reduction(+ : ss)
    for (ptrdiff_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    return sqrt(ss);
}

void pare_grads_scale(pare_grads *g, double s)
{
    float f = (float)s, *x = g->slab;
    ptrdiff_t n = (ptrdiff_t)g->param_floats;
#pragma omp parallel for num_threads(pare_threads()) schedule(static)
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] *= f;
}

double pare_grads_clip(pare_grads *g, double max_norm)
{
    double norm = pare_grads_norm(g);
    if (max_norm > 0 && norm > max_norm)
        pare_grads_scale(g, max_norm / norm);
    return norm;
}

double pare_accum_weight(size_t n_micro, size_t n_total) { return n_total ? (double)n_micro / (double)n_total : 0.0; }

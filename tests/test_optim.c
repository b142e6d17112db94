/* AdamW against a step computed here by hand, learning-rate schedules against their formulas,
 * gradient clipping, and training steps on tiny fixture models (overfitting one batch,
 * accumulation, determinism, cancelling). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/backward.h"
#include "train/optim.h"
#include "train/train.h"
#include "fixture.h"
#include "harness.h"

/* A deterministic gradient value for entry i of step s. */
static float fake_grad(size_t i, int s) { return (float)(0.01 * sin(0.37 * (double)i + s) * (1 + (i % 5))); }

/* Two AdamW steps equal the update rule evaluated here in double: decoupled decay on matrices only,
 * bias-corrected moments. One matrix gets zero gradient, so only its decay moves it. */
static void test_adamw_step(void)
{
    pare_model *m = fixture_model("g", 1);
    if (!m)
        return;
    pare_grads *g = NULL;
    pare_adamw *opt = NULL;
    pare_error err = {0};
    pare_adamw_opts o = {.beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
    CHECK(pare_grads_alloc(m, 1, 4, 0, &g, &err) == PARE_OK);
    CHECK(g && pare_adamw_alloc(g, &o, &opt, &err) == PARE_OK);
    if (harness_failed_now()) {
        pare_grads_free(g);
        pare_model_free(m);
        return;
    }
    /* norms and biases are the vectors, and they alone skip decay */
    int vectors = 0;
    for (int e = 0; e < g->n_params; e++) {
        CHECKF(g->params[e].decay == (g->params[e].cols > 1), "%s: decay %d", g->params[e].name, g->params[e].decay);
        vectors += g->params[e].cols == 1;
    }
    CHECK(vectors == 2 * 4 + 6 * 2 + 2); /* 2 layers: ln_1/ln_2 w+b, 6 biases (q, k, v, o, fc, proj); ln_f w+b */
    pare_param *frozen = pare_grads_find(g, "transformer.h.0.mlp.c_fc.weight");
    CHECK(frozen != NULL);
    size_t n = g->param_floats;
    double *p = malloc(n * sizeof *p), *mm = calloc(n, sizeof *mm), *vv = calloc(n, sizeof *vv);
    double lr[2] = {1e-2, 5e-3};
    /* the parameters in gradient order, as the hand computation walks them */
    for (int e = 0; e < g->n_params; e++)
        for (size_t i = 0; i < g->params[e].n; i++)
            p[(size_t)(g->params[e].grad - g->slab) + i] = g->params[e].param[i];
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < n; i++)
            g->slab[i] = fake_grad(i, s);
        if (frozen)
            memset(frozen->grad, 0, frozen->n * sizeof(float));
        CHECK(pare_adamw_step(opt, g, lr[s], &err) == PARE_OK);
        double bc1 = 1 - pow(o.beta1, s + 1), bc2 = 1 - pow(o.beta2, s + 1);
        for (int e = 0; e < g->n_params; e++) {
            const pare_param *pp = &g->params[e];
            for (size_t i = 0; i < pp->n; i++) {
                size_t k = (size_t)(pp->grad - g->slab) + i;
                double gr = pp->grad[i];
                if (pp->decay)
                    p[k] *= 1 - lr[s] * o.weight_decay;
                mm[k] = o.beta1 * mm[k] + (1 - o.beta1) * gr;
                vv[k] = o.beta2 * vv[k] + (1 - o.beta2) * gr * gr;
                p[k] -= lr[s] * (mm[k] / bc1) / (sqrt(vv[k] / bc2) + o.eps);
            }
        }
    }
    double worst = 0;
    for (int e = 0; e < g->n_params; e++) {
        const pare_param *pp = &g->params[e];
        for (size_t i = 0; i < pp->n; i++) {
            double want = p[(size_t)(pp->grad - g->slab) + i];
            worst = fmax(worst, fabs(pp->param[i] - want) / fmax(fabs(want), 1e-3));
        }
    }
    CHECKF(worst <= 1e-5, "AdamW differs from the hand-computed step by %.3g (relative)", worst);
    CHECK(opt->step == 2);
    free(p);
    free(mm);
    free(vv);
    pare_adamw_free(opt);
    pare_grads_free(g);
    pare_model_free(m);
}

/* Schedule values at the end of warmup, the middle and the end of the decay, from the formulas. */
static void test_lr_schedule(void)
{
    double mx = 1e-3, mn = 1e-4;
    pare_lr_schedule s = {PARE_LR_COSINE, mx, mn, 10, 110};
    pare_error err = {0};
    CHECK(pare_lr_check(&s, &err) == PARE_OK);
    CHECKF(fabs(pare_lr_at(&s, 0) - mx / 10) <= 1e-15, "first warmup step %g", pare_lr_at(&s, 0));
    CHECKF(fabs(pare_lr_at(&s, 4) - mx * 5 / 10) <= 1e-15, "warmup step 4 %g", pare_lr_at(&s, 4));
    CHECKF(fabs(pare_lr_at(&s, 9) - mx) <= 1e-15, "warmup end %g", pare_lr_at(&s, 9));
    CHECKF(fabs(pare_lr_at(&s, 10) - mx) <= 1e-15, "decay start %g", pare_lr_at(&s, 10));
    CHECKF(fabs(pare_lr_at(&s, 60) - (mx + mn) / 2) <= 1e-15, "cosine midpoint %g", pare_lr_at(&s, 60));
    double quarter = mn + (mx - mn) * (1 + cos(M_PI / 4)) / 2;
    CHECKF(fabs(pare_lr_at(&s, 35) - quarter) <= 1e-15, "cosine quarter %g vs %g", pare_lr_at(&s, 35), quarter);
    CHECKF(fabs(pare_lr_at(&s, 110) - mn) <= 1e-15 && fabs(pare_lr_at(&s, 500) - mn) <= 1e-15, "cosine end %g",
           pare_lr_at(&s, 110));
    s.decay = PARE_LR_LINEAR;
    CHECKF(fabs(pare_lr_at(&s, 35) - (mx - (mx - mn) * 0.25)) <= 1e-15, "linear quarter %g", pare_lr_at(&s, 35));
    CHECKF(fabs(pare_lr_at(&s, 60) - (mx + mn) / 2) <= 1e-15, "linear midpoint %g", pare_lr_at(&s, 60));
    CHECKF(fabs(pare_lr_at(&s, 110) - mn) <= 1e-15, "linear end %g", pare_lr_at(&s, 110));
    s.decay = PARE_LR_CONSTANT;
    CHECK(pare_lr_at(&s, 9) == mx && pare_lr_at(&s, 100) == mx);
    pare_lr_schedule nowarm = {PARE_LR_COSINE, mx, mn, 0, 4};
    CHECK(pare_lr_at(&nowarm, 0) == mx && fabs(pare_lr_at(&nowarm, 2) - (mx + mn) / 2) <= 1e-15);
    pare_lr_schedule bad = {PARE_LR_COSINE, mn, mx, 0, 10};
    CHECK(pare_lr_check(&bad, &err) == PARE_EINVAL && strstr(err.msg, "floor") != NULL);
    bad = (pare_lr_schedule){PARE_LR_LINEAR, mx, mn, 20, 10};
    CHECK(pare_lr_check(&bad, &err) == PARE_EINVAL && strstr(err.msg, "warmup") != NULL);
}

/* Clipping scales every gradient by one factor to the given global norm, and leaves gradients
 * already within it (and the dense gradients of masked weights) alone. */
static void test_clip(void)
{
    pare_model *m = fixture_model("l", 0);
    if (!m)
        return;
    uint8_t *mask = malloc((size_t)m->blocks[0].up.out * m->blocks[0].up.in);
    for (int i = 0; i < m->blocks[0].up.out * m->blocks[0].up.in; i++)
        mask[i] = i % 3 != 0;
    pare_error err = {0};
    CHECK(pare_linear_set_mask(&m->blocks[0].up, mask, &err) == PARE_OK);
    free(mask);
    pare_grads *g = NULL;
    CHECK(pare_grads_alloc(m, 1, 4, PARE_GRADS_DENSE_MASKED, &g, &err) == PARE_OK);
    if (!g) {
        pare_model_free(m);
        return;
    }
    pare_param *up = pare_grads_find(g, "model.layers.0.mlp.up_proj.weight");
    CHECK(up && up->grad_dense && up->mask);
    double ss = 0;
    for (size_t i = 0; i < g->param_floats; i++) {
        g->slab[i] = fake_grad(i, 3);
        ss += (double)g->slab[i] * g->slab[i];
    }
    if (up && up->grad_dense)
        for (size_t i = 0; i < up->n; i++)
            up->grad_dense[i] = 1.0f;
    double norm = sqrt(ss);
    CHECKF(fabs(pare_grads_norm(g) - norm) <= 1e-12 * norm, "norm %.15g vs %.15g", pare_grads_norm(g), norm);
    float *before = malloc(g->param_floats * sizeof *before);
    memcpy(before, g->slab, g->param_floats * sizeof *before);
    CHECK(fabs(pare_grads_clip(g, 2 * norm) - norm) <= 1e-12 * norm);
    CHECK(memcmp(before, g->slab, g->param_floats * sizeof *before) == 0);
    CHECK(pare_grads_clip(g, 0) == pare_grads_norm(g)); /* 0: off */
    double got = pare_grads_clip(g, norm / 4);
    CHECKF(fabs(got - norm) <= 1e-12 * norm, "clip returned %.9g, norm was %.9g", got, norm);
    double after = pare_grads_norm(g), worst = 0;
    CHECKF(fabs(after - norm / 4) <= 1e-6 * norm, "clipped norm %.9g, want %.9g", after, norm / 4);
    for (size_t i = 0; i < g->param_floats; i++)
        worst = fmax(worst, fabs(g->slab[i] - before[i] * 0.25));
    CHECKF(worst <= 1e-7 * norm, "clipping changed a direction: %.3g", worst);
    if (up && up->grad_dense)
        CHECK(up->grad_dense[0] == 1.0f && up->grad_dense[up->n - 1] == 1.0f);
    free(before);
    pare_grads_free(g);
    pare_model_free(m);
}

static pare_train_opts small_opts(int batch, int seq, int accum, long steps)
{
    pare_train_opts o;
    pare_train_defaults(&o);
    o.batch = batch;
    o.seq = seq;
    o.accum = accum;
    o.lr = (pare_lr_schedule){PARE_LR_COSINE, 1e-2, 1e-3, 5, steps};
    o.adamw.weight_decay = 0.0;
    return o;
}

/* Repeating one batch for 50 steps drives the loss well down (the model memorizes it); compressed
 * layers train too and masked-out weights stay exactly zero. */
static void overfit(pare_model *m, const char *label)
{
    pare_train_opts o = small_opts(2, 8, 1, 50);
    o.grad_flags = PARE_GRADS_DENSE_MASKED;
    pare_trainer *t = NULL;
    pare_error err = {0};
    CHECKF(pare_trainer_new(m, &o, &t, &err) == PARE_OK, "%s", err.msg);
    if (!t)
        return;
    int32_t *ids = fixture_ids(m, 2, 8);
    double first = 0, last = 0, early = 0, late = 0;
    for (int s = 0; s < 50; s++) {
        pare_train_stats st;
        if (pare_train_step(t, ids, NULL, NULL, &st, &err) != PARE_OK) {
            CHECKF(0, "step %d: %s", s, err.msg);
            break;
        }
        CHECK(st.step == s && st.targets == 14 && st.lr > 0);
        if (s == 0)
            first = st.loss;
        last = st.loss;
        early += s < 5 ? st.loss / 5 : 0;
        late += s >= 45 ? st.loss / 5 : 0;
    }
    printf("  %-16s loss %.4f -> %.4f over 50 steps on one batch\n", label, first, last);
    CHECKF(last < 0.25 * first && late < early, "%s: loss %.4f -> %.4f (first five %.4f, last five %.4f)", label, first,
           last, early, late);
    pare_linear *lin[64];
    int nl = pare_model_linears(m, lin, 64);
    for (int i = 0; i < nl; i++)
        if (lin[i]->kind == PARE_LIN_MASKED)
            for (size_t k = 0; k < (size_t)lin[i]->out * lin[i]->in; k++)
                if (!lin[i]->mask[k] && lin[i]->w[k] != 0.0f) {
                    CHECKF(0, "%s: masked-out weight %zu became %g", lin[i]->name, k, lin[i]->w[k]);
                    break;
                }
    free(ids);
    pare_trainer_free(t);
}

static void test_overfit_llama(void)
{
    pare_model *m = fixture_model("l", 0);
    if (m)
        overfit(m, "llama");
    pare_model_free(m);
}

static void test_overfit_gpt2(void)
{
    pare_model *m = fixture_model("g", 1);
    if (m)
        overfit(m, "gpt2");
    pare_model_free(m);
}

static void test_overfit_compressed(void)
{
    pare_model *m = fixture_model("lc", 0);
    if (!m)
        return;
    pare_linear *q = &m->blocks[0].q, *up = &m->blocks[1].up;
    int k = 4;
    float *A = calloc((size_t)q->out * k, sizeof *A), *B = calloc((size_t)k * q->in, sizeof *B);
    for (int i = 0; i < q->out * k; i++)
        A[i] = q->w[i]; /* any values: training moves them */
    for (int i = 0; i < k * q->in; i++)
        B[i] = q->w[(size_t)q->out * q->in - 1 - i];
    uint8_t *mask = malloc((size_t)up->out * up->in);
    for (int i = 0; i < up->out * up->in; i++)
        mask[i] = (i * 7) % 10 < 6;
    pare_error err = {0};
    CHECK(pare_linear_set_factors(q, k, A, B, &err) == PARE_OK);
    CHECK(pare_linear_set_mask(up, mask, &err) == PARE_OK);
    free(A);
    free(B);
    free(mask);
    overfit(m, "llama compressed");
    pare_model_free(m);
}

/* Two micro-batches of one sequence accumulate to the gradient (and loss) of one batch of two; and
 * the same steps from the same start give bit-identical models. */
static void test_train_accumulate_deterministic(void)
{
    pare_model *a = fixture_model("a", 1), *b = fixture_model("b", 1), *c = fixture_model("c", 1);
    if (!a || !b || !c) {
        pare_model_free(a);
        pare_model_free(b);
        pare_model_free(c);
        return;
    }
    pare_train_opts whole = small_opts(2, 6, 1, 10), split = small_opts(1, 6, 2, 10);
    whole.clip = split.clip = 0;
    pare_trainer *ta = NULL, *tb = NULL, *tc = NULL;
    pare_error err = {0};
    CHECK(pare_trainer_new(a, &whole, &ta, &err) == PARE_OK);
    CHECK(pare_trainer_new(b, &split, &tb, &err) == PARE_OK);
    CHECK(pare_trainer_new(c, &split, &tc, &err) == PARE_OK);
    int32_t *ids = fixture_ids(a, 2, 6), tg[12];
    pare_shift_targets(ids, 2, 6, tg);
    tg[0] = tg[1] = -1; /* unequal rows: 3 and 5 targets */
    if (!harness_failed_now()) {
        pare_train_stats sa, sb, sc;
        CHECK(pare_train_step(ta, ids, tg, NULL, &sa, &err) == PARE_OK);
        CHECK(pare_train_step(tb, ids, tg, NULL, &sb, &err) == PARE_OK);
        CHECKF(fabs(sa.loss - sb.loss) <= 1e-6 * sa.loss, "loss %.9g vs accumulated %.9g", sa.loss, sb.loss);
        CHECK(sa.targets == 8 && sb.targets == 8);
        double d = 0, s = 0;
        for (size_t i = 0; i < ta->grads->param_floats; i++) {
            d += pow((double)ta->grads->slab[i] - tb->grads->slab[i], 2);
            s += pow((double)ta->grads->slab[i], 2);
        }
        CHECKF(sqrt(d / s) <= 1e-5, "accumulated gradient differs by %.3g", sqrt(d / s));
        CHECKF(fabs(sa.grad_norm - sqrt(s)) <= 1e-9 * sa.grad_norm, "grad norm %.9g vs %.9g", sa.grad_norm, sqrt(s));
        CHECK(pare_train_step(tc, ids, tg, NULL, &sc, &err) == PARE_OK);
        for (int k = 0; k < 3; k++) {
            CHECK(pare_train_step(tb, ids, NULL, NULL, &sb, &err) == PARE_OK);
            CHECK(pare_train_step(tc, ids, NULL, NULL, &sc, &err) == PARE_OK);
        }
        CHECK(sb.loss == sc.loss && sb.step == 3);
        CHECK(memcmp(b->slab, c->slab, b->slab_floats * sizeof(float)) == 0);
    }
    free(ids);
    pare_trainer_free(ta);
    pare_trainer_free(tb);
    pare_trainer_free(tc);
    pare_model_free(a);
    pare_model_free(b);
    pare_model_free(c);
}

static int cancel_second(void *user, const char *stage, double fraction, const char *detail)
{
    int *calls = user;
    return ++*calls >= 2;
}

/* Cancelling during a step leaves the model as it was; bad options are refused with the reason. */
static void test_train_cancel_and_errors(void)
{
    pare_model *m = fixture_model("l", 0);
    if (!m)
        return;
    pare_train_opts o = small_opts(1, 5, 3, 10);
    pare_trainer *t = NULL;
    pare_error err = {0};
    CHECK(pare_trainer_new(m, &o, &t, &err) == PARE_OK);
    int32_t *ids = fixture_ids(m, 3, 5);
    float *before = malloc(m->slab_floats * sizeof *before);
    memcpy(before, m->slab, m->slab_floats * sizeof *before);
    int calls = 0;
    pare_progress p = {cancel_second, &calls};
    pare_train_stats st;
    if (t) {
        CHECK(pare_train_step(t, ids, NULL, &p, &st, &err) == PARE_ECANCELED);
        CHECK(calls == 2 && t->step == 0);
        CHECK(memcmp(before, m->slab, m->slab_floats * sizeof *before) == 0);
        int32_t none[15];
        for (int i = 0; i < 15; i++)
            none[i] = -1;
        CHECK(pare_train_step(t, ids, none, NULL, &st, &err) == PARE_EINVAL);
        CHECKF(strstr(err.msg, "ignored") != NULL, "%s", err.msg);
    }
    pare_trainer *bad = NULL;
    o.seq = 1;
    CHECK(pare_trainer_new(m, &o, &bad, &err) == PARE_EINVAL && bad == NULL);
    o = small_opts(1, 5, 1, 10);
    o.lr.warmup = 11;
    CHECK(pare_trainer_new(m, &o, &bad, &err) == PARE_EINVAL && strstr(err.msg, "warmup") != NULL);
    o = small_opts(1, 5, 1, 10);
    o.adamw.beta2 = 1.0;
    CHECK(pare_trainer_new(m, &o, &bad, &err) == PARE_EINVAL && strstr(err.msg, "betas") != NULL);
    free(before);
    free(ids);
    pare_trainer_free(t);
    pare_model_free(m);
}

void suite_optim(void);
void suite_optim(void)
{
    RUN(test_adamw_step);
    RUN(test_lr_schedule);
    RUN(test_clip);
    RUN(test_overfit_llama);
    RUN(test_overfit_gpt2);
    RUN(test_overfit_compressed);
    RUN(test_train_accumulate_deterministic);
    RUN(test_train_cancel_and_errors);
}

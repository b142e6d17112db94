/* Forward pass and perplexity against the reference implementation's logits and perplexities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "core/forward.h"
#include "core/model.h"
#include "harness.h"
#include "refdata.h"

static const char *const EVAL_FILES[] = {"wiki.test.raw", "ptb.test.txt", "brown_val.txt", "tiny_test.txt"};

static pare_model *load(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    pare_model *m = NULL;
    pare_error err = {0};
    pare_status st = pare_model_load(shared_path(rel), NULL, &m, &err);
    CHECKF(st == PARE_OK, "loading %s: %s", name, err.msg);
    return m;
}

/* Logits for prompt_ids equal reference_logits_f32.bin within 1e-3. */
static void check_logits(const char *name)
{
    pare_model *m = load(name);
    json_t *ref = ref_json_checked(name);
    if (!m || !ref) {
        pare_model_free(m);
        json_decref(ref);
        return;
    }
    size_t n = 0, nl = 0;
    int32_t *ids = ref_ids(ref_field(ref, name, "prompt_ids", NULL), &n);
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference_logits_f32.bin", name);
    float *want = ref_read_f32_checked(rel, &nl);
    json_t *shape = ref_field(ref, name, "reference_logits_shape", NULL);
    size_t rows = (size_t)json_integer_value(json_array_get(shape, 0)),
           cols = (size_t)json_integer_value(json_array_get(shape, 1));
    CHECKF(rows == n && cols == (size_t)m->cfg.vocab_size && nl == rows * cols,
           "%s: logits shape [%zu, %zu] vs %zu ids, vocab %d, %zu floats", name, rows, cols, n, m->cfg.vocab_size, nl);
    pare_acts *a = NULL;
    pare_error err = {0};
    CHECK(pare_acts_alloc(m, 1, (int)n, 0, &a, &err) == PARE_OK);
    CHECKF(pare_forward(m, a, ids, 1, (int)n, PARE_LOGITS_ALL, &err) == PARE_OK, "%s", err.msg);
    if (!harness_failed_now()) {
        double maxd = 0;
        for (size_t i = 0; i < rows * cols; i++) {
            double d = fabs((double)a->logits[i] - want[i]);
            maxd = d > maxd ? d : maxd;
        }
        printf("  %s: max |logit - reference| = %.3g over %zu x %zu\n", name, maxd, rows, cols);
        CHECKF(maxd <= 1e-3, "%s: max |diff| %.3g > 1e-3", name, maxd);
    }
    pare_acts_free(a);
    free(ids);
    free(want);
    json_decref(ref);
    pare_model_free(m);
}

static void test_logits_llama(void)
{
    NEED_SHARED();
    check_logits("ref-llama-12m");
}
static void test_logits_gpt2(void)
{
    NEED_SHARED();
    check_logits("ref-gpt2-6m");
}

/* The default protocol on the reference token ids (so independent of the tokenizer) reproduces the
 * reference perplexity of the smallest file; test_cli runs all files through ./pare. */
static void check_ppl(const char *name)
{
    pare_model *m = load(name);
    json_t *ref = ref_json_checked(name);
    if (!m || !ref) {
        pare_model_free(m);
        json_decref(ref);
        return;
    }
    for (int f = 3; f < 4; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s/reference_ids/%s.i32", name, EVAL_FILES[f]);
        size_t n = 0;
        int32_t *ids = ref_read_i32_checked(rel, &n);
        json_t *r = ref_field(ref, name, EVAL_FILES[f], NULL);
        if (!ids || !r) {
            free(ids);
            continue;
        }
        pare_eval_opts o;
        pare_eval_defaults(&o);
        o.window = (int)json_integer_value(ref_field(ref, name, EVAL_FILES[f], "window_len", NULL));
        pare_eval_result res;
        pare_error err = {0};
        pare_status st = pare_eval_perplexity(m, ids, n, &o, NULL, &res, &err);
        CHECKF(st == PARE_OK, "%s %s: %s", name, EVAL_FILES[f], err.msg);
        if (st == PARE_OK) {
            double want = json_real_value(ref_field(ref, name, EVAL_FILES[f], "ppl", NULL));
            double rel_err = fabs(res.ppl - want) / want;
            printf("  %s %-14s ppl %.4f  reference %.4f  rel diff %.2e\n", name, EVAL_FILES[f], res.ppl, want, rel_err);
            CHECKF(res.plan.windows == (size_t)json_integer_value(ref_field(ref, name, EVAL_FILES[f], "windows", NULL)),
                   "windows");
            CHECKF(res.plan.predicted ==
                       (size_t)json_integer_value(ref_field(ref, name, EVAL_FILES[f], "predicted", NULL)),
                   "predicted");
            CHECKF(rel_err <= 1e-3, "%s %s: ppl %.5f vs %.5f", name, EVAL_FILES[f], res.ppl, want);
        }
        free(ids);
    }
    json_decref(ref);
    pare_model_free(m);
}

static void test_ppl_llama(void)
{
    NEED_SHARED();
    check_ppl("ref-llama-12m");
}
static void test_ppl_gpt2(void)
{
    NEED_SHARED();
    check_ppl("ref-gpt2-6m");
}

/* Batching must not change results: windows evaluated one at a time give the same NLL. */
static void test_batch_invariance(void)
{
    NEED_SHARED();
    pare_model *m = load("ref-gpt2-6m");
    if (!m)
        return;
    size_t n = 0;
    int32_t *ids = ref_read_i32_checked("models/ref-gpt2-6m/reference_ids/tiny_test.txt.i32", &n);
    if (!ids) {
        pare_model_free(m);
        return;
    }
    pare_eval_opts o;
    pare_eval_defaults(&o);
    o.window = 64;
    o.limit_tokens = 64 * 7 + 5;
    pare_eval_result r1, r8;
    pare_error err = {0};
    o.batch = 1;
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &r1, &err) == PARE_OK);
    o.batch = 8;
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &r8, &err) == PARE_OK);
    CHECKF(fabs(r1.nll - r8.nll) <= 1e-6 * fabs(r1.nll), "nll %.9g vs %.9g", r1.nll, r8.nll);
    CHECK(r1.plan.windows == 7 && r1.plan.dropped == 5 && r1.plan.predicted == 7 * 63);
    free(ids);
    pare_model_free(m);
}

/* Overlapping windows and BOS follow the planned counts, score every token at most once, and more
 * context can only help on average (sliding-window ppl below the non-overlapping one). */
static void test_protocol_plans(void)
{
    NEED_SHARED();
    pare_model *m = load("ref-llama-12m");
    if (!m)
        return;
    size_t n = 0;
    int32_t *ids = ref_read_i32_checked("models/ref-llama-12m/reference_ids/tiny_test.txt.i32", &n);
    if (!ids) {
        pare_model_free(m);
        return;
    }
    pare_eval_opts o;
    pare_eval_defaults(&o);
    o.window = 128;
    o.limit_tokens = 1000;
    pare_eval_result base, slide, bos;
    pare_error err = {0};
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &base, &err) == PARE_OK);
    CHECK(base.plan.windows == 1000 / 128 && base.plan.predicted == base.plan.windows * 127);
    o.stride = 32;
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &slide, &err) == PARE_OK);
    /* windows start every 32 tokens while start + 128 <= 1000 */
    size_t wins = (1000 - 128) / 32 + 1;
    CHECKF(slide.plan.windows == wins, "%zu windows", slide.plan.windows);
    CHECKF(slide.plan.predicted == 127 + (wins - 1) * 32, "%zu predicted", slide.plan.predicted);
    CHECKF(slide.ppl < base.ppl, "sliding %.3f vs non-overlapping %.3f", slide.ppl, base.ppl);
    o.stride = 0;
    o.bos = 1;
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &bos, &err) == PARE_OK);
    CHECK(bos.plan.windows == 1000 / 127 && bos.plan.predicted == bos.plan.windows * 127);
    o.bos = 0;
    o.window = m->cfg.max_pos + 1;
    CHECK(pare_eval_perplexity(m, ids, n, &o, NULL, &bos, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, "positions") != NULL, "%s", err.msg);
    free(ids);
    pare_model_free(m);
}

void suite_forward(void);
void suite_forward(void)
{
    RUN(test_logits_llama);
    RUN(test_logits_gpt2);
    RUN(test_batch_invariance);
    RUN(test_protocol_plans);
    RUN(test_ppl_llama);
    RUN(test_ppl_gpt2);
}

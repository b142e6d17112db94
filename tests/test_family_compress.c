/* Compression on the model families of issue 16 (fixtures under tests/data/families/): biases kept by
 * factorized and channel-pruned layers, norms left intact and counted, Phi-3's fused matrices handled
 * as their logical parts and written back fused, tied embeddings kept tied, every method and every
 * exporting preset on every family with both exports reloading, and the family's class wherever pare
 * names the architecture (run.json, the Lua module, the TUI). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/factorize.h"
#include "core/fileio.h"
#include "core/method.h"
#include "core/model.h"
#include "core/model_pare.h"
#include "core/parallel.h"
#include "core/prune.h"
#include "core/safetensors.h"
#include "fixture.h"
#include "harness.h"

#define FAMILIES_DIR "tests/data/families"
#define MAX_FAMILIES 32
/* Small enough for a few seconds per family over every method and preset. */
#define CALIB_SAMPLES 4
#define CALIB_LEN 32
#define EVAL_WINDOW 32

/* The fixture folders (every subfolder of FAMILIES_DIR, sorted), so that a new family is covered
 * without touching this file. Returns the count; names are malloc'd. */
static int family_dirs(char *names[MAX_FAMILIES])
{
    DIR *d = opendir(FAMILIES_DIR);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < MAX_FAMILIES;) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FAMILIES_DIR, e->d_name);
        if (e->d_name[0] != '.' && pare_is_dir(path))
            names[n++] = strdup(path);
    }
    if (d)
        closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a stable order for the messages */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return n;
}

static void free_dirs(char *names[], int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
}

#define NEED_FIXTURES()                                                                                                \
    do {                                                                                                               \
        if (!pare_is_dir(FAMILIES_DIR))                                                                                \
            SKIP("skipped: %s not present (made by tools/make_family_fixtures.py)", FAMILIES_DIR);                     \
    } while (0)

static pare_model *load_model(const char *dir)
{
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s: %s", dir, err.msg);
    return m;
}

static const char *eval_text(const char *dir)
{
    static char path[4][512];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 512, "%s/eval.txt", dir);
    return p;
}

/* Perplexity of the fixture's eval.txt (window EVAL_WINDOW, no BOS); NAN (and a failed check naming
 * what) on error. */
static double ppl_of(const pare_model *m, const char *dir, const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    pare_error err = {0};
    pare_eval_opts o;
    pare_eval_defaults(&o);
    o.window = EVAL_WINDOW;
    pare_eval_result r;
    double ppl = NAN;
    if (pare_model_tokenize_file(m, eval_text(dir), &ids, &n, &err) ||
        pare_eval_perplexity(m, ids, n, &o, NULL, &r, &err))
        CHECKF(0, "%s: eval: %s", what, err.msg);
    else
        ppl = r.ppl;
    free(ids);
    return ppl;
}

/* Calibration windows [CALIB_SAMPLES * CALIB_LEN] of the fixture's eval.txt, options in *co. */
static int32_t *calib_of(const pare_model *m, const char *dir, pare_calib_opts *co)
{
    pare_calib_defaults(co);
    co->samples = CALIB_SAMPLES;
    co->len = CALIB_LEN;
    int32_t *win = NULL;
    pare_error err = {0};
    CHECKF(pare_calib_windows_file(m, eval_text(dir), co, &win, NULL, &err) == PARE_OK, "%s: %s", dir, err.msg);
    return win;
}

static pare_status export_to(const pare_model *m, const char *out, pare_export_format fmt, pare_export_report *rep,
                             pare_error *err)
{
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = fmt;
    return pare_export(m, out, &o, NULL, rep, err);
}

/* ---- biases ---------------------------------------------------------------------------------- */

/* Qwen2's biased q factorized at full rank computes B(Ax) + b: the layer's output on random inputs
 * equals the dense layer's (bias included), and the hf-dense export keeps q_proj.bias. */
static void test_factorized_q_keeps_bias(void)
{
    NEED_FIXTURES();
    pare_model *m = load_model(FAMILIES_DIR "/qwen2");
    if (!m)
        return;
    pare_linear *q = &m->blocks[0].q;
    CHECKF(q->b != NULL, "qwen2's q has no bias");
    int N = 8, out = q->out, in = q->in, full = out < in ? out : in;
    float *x = malloc((size_t)N * in * sizeof *x), *dense_y = malloc((size_t)N * out * sizeof *dense_y);
    float *y = malloc((size_t)N * out * sizeof *y), *scratch = malloc((size_t)N * full * sizeof *scratch);
    float *bias = malloc((size_t)out * sizeof *bias);
    if (!q->b || !x || !dense_y || !y || !scratch || !bias)
        goto done;
    memcpy(bias, q->b, (size_t)out * sizeof *bias);
    for (int i = 0; i < N * in; i++)
        x[i] = (float)sin(0.37 * i + 1.0);
    pare_linear_forward(q, x, N, dense_y, NULL);
    pare_factor_opts fo;
    pare_factor_defaults(&fo);
    pare_error err = {0};
    pare_factor_report rep;
    CHECKF(pare_factorize_linear(q, full, &fo, NULL, &rep, &err) == PARE_OK, "%s", err.msg);
    CHECK(q->kind == PARE_LIN_FACTORED && q->rank == full);
    CHECKF(q->b && !memcmp(q->b, bias, (size_t)out * sizeof *bias), "the factorized q lost or changed its bias");
    pare_linear_forward(q, x, N, y, scratch);
    double scale = 0, diff = 0, bias_norm = 0;
    for (int i = 0; i < N * out; i++) {
        scale = fmax(scale, fabs(dense_y[i]));
        diff = fmax(diff, fabs(y[i] - dense_y[i]));
    }
    for (int j = 0; j < out; j++)
        bias_norm = fmax(bias_norm, fabs(bias[j]));
    /* the bias must matter, else the comparison would not see it dropped */
    CHECKF(bias_norm > 1e-3 * scale, "qwen2's q bias is too small to test (%g vs outputs %g)", bias_norm, scale);
    CHECKF(diff <= 1e-4 * scale, "full-rank factorized q differs from the dense one by %g (outputs up to %g)", diff,
           scale);
    const char *dir = tmp_path("qwen2-q-factored");
    CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, NULL, &err) == PARE_OK, "%s", err.msg);
    pare_model *r = load_model(dir);
    CHECKF(r && r->blocks[0].q.b && !memcmp(r->blocks[0].q.b, bias, (size_t)out * sizeof *bias),
           "the hf-dense export of the factorized q lost its bias");
    pare_model_free(r);
done:
    free(x);
    free(dense_y);
    free(y);
    free(scratch);
    free(bias);
    pare_model_free(m);
}

/* Channel pruning of llama-linear's biased FFN (mlp_bias) keeps the rows of the gate and up biases
 * of the kept channels and down's whole bias: the pruned model's logits are those of the dense
 * model with the removed channels' columns of down zeroed (computed here). */
static void test_channel_pruning_slices_biases(void)
{
    NEED_FIXTURES();
    pare_model *m = load_model(FAMILIES_DIR "/llama-linear"), *ref = NULL;
    pare_error err = {0};
    if (!m || pare_model_clone(m, &ref, &err)) {
        CHECKF(m == NULL, "clone: %s", err.msg);
        pare_model_free(m);
        return;
    }
    pare_block *b = &m->blocks[1], *rb = &ref->blocks[1];
    CHECKF(b->gate.b && b->up.b && b->down.b, "llama-linear's FFN has no biases (mlp_bias)");
    int F = b->up.out, C = b->down.out;
    pare_chan_opts co;
    pare_chan_defaults(&co);
    co.score = PARE_CHAN_MAGNITUDE;
    co.sparsity = 0.25;
    co.keep_least = 0;
    CHECKF(pare_prune_ffn(b, NULL, &co, NULL, &err) == PARE_OK, "%s", err.msg);
    CHECK(b->up.out < F && b->up.kept_out && b->gate.kept_out && b->down.in == b->up.out);
    if (harness_failed_now())
        goto done;
    for (int r = 0; r < b->up.out; r++) {
        int src = b->up.kept_out[r];
        CHECKF(b->up.b[r] == rb->up.b[src] && b->gate.b[r] == rb->gate.b[b->gate.kept_out[r]],
               "row %d (channel %d): the bias does not follow the kept channel", r, src);
    }
    CHECKF(!memcmp(b->down.b, rb->down.b, (size_t)C * sizeof(float)), "down's bias changed");
    /* the dense reference: removed channels contribute nothing through down */
    unsigned char *kept = calloc((size_t)F, 1);
    for (int r = 0; kept && r < b->up.out; r++)
        kept[b->up.kept_out[r]] = 1;
    for (int i = 0; kept && i < C; i++)
        for (int f = 0; f < F; f++)
            if (!kept[f])
                rb->down.w[(size_t)i * F + f] = 0;
    free(kept);
    float *want = fixture_logits_of(ref), *got = fixture_logits_of(m);
    double d = want && got ? fixture_max_diff(want, got, (size_t)FIXTURE_T * m->cfg.vocab_size) : INFINITY;
    CHECKF(d <= 1e-4, "pruned logits differ from the masked dense model's by %g", d);
    free(want);
    free(got);
done:
    pare_model_free(ref);
    pare_model_free(m);
}

/* ---- norms ----------------------------------------------------------------------------------- */

/* Elements of the checkpoint's tensors named like a norm (input_layernorm, q_norm, model.norm, ...),
 * read from the safetensors header; -1 on error. */
static long long norm_elements(const char *dir)
{
    pare_safetensors st;
    pare_error err = {0};
    if (pare_st_open_dir(dir, &st, &err)) {
        CHECKF(0, "%s: %s", dir, err.msg);
        return -1;
    }
    long long n = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        if (!strstr(st.tensors[i].name, "norm"))
            continue;
        long long e = 1;
        for (int k = 0; k < st.tensors[i].ndim; k++)
            e *= st.tensors[i].shape[k];
        n += e;
    }
    pare_st_close(&st);
    return n;
}

/* The norm tensors of every fixture (q/k norms, Gemma's four per block) are what
 * pare_model_param_counts and `pare info --json` count as norms, and a compressed model's hf-dense
 * export reloads with every norm as loaded, bit for bit. */
static void test_norms_counted_and_intact(void)
{
    NEED_FIXTURES();
    char *dirs[MAX_FAMILIES];
    int n = family_dirs(dirs);
    const pare_method *lorap = pare_method_find("lorap");
    for (int i = 0; i < n; i++) {
        long long want = norm_elements(dirs[i]);
        pare_model *m = load_model(dirs[i]);
        if (!m)
            continue;
        pare_param_counts pc;
        pare_model_param_counts(m, &pc);
        CHECKF((long long)pc.norms == want, "%s: pare counts %zu norm parameters, the checkpoint holds %lld", dirs[i],
               pc.norms, want);
        const char *args[] = {"info", "--model", dirs[i], "--json", NULL};
        char *out = NULL, *errout = NULL;
        int rc = run_pare(&out, &errout, args);
        json_t *j = rc == 0 ? json_loads(out, 0, NULL) : NULL;
        json_int_t shown = json_integer_value(json_object_get(json_object_get(j, "params"), "norms"));
        CHECKF(j && shown == want, "pare info %s: norms %lld, the checkpoint holds %lld (exit %d %s)", dirs[i],
               (long long)shown, want, rc, errout ? errout : "");
        json_decref(j);
        free(out);
        free(errout);
        /* compressed, the norms are left as they were */
        pare_method_opts mo;
        pare_method_defaults(&mo);
        mo.ratio = 0.3;
        pare_calib_opts co;
        int32_t *win = calib_of(m, dirs[i], &co);
        pare_error err = {0};
        char name[64];
        snprintf(name, sizeof name, "norms-%d", i);
        const char *exp = tmp_path(name);
        CHECKF(win && pare_method_compress(m, lorap, &mo, win, &co, NULL, NULL, NULL, &err) == PARE_OK &&
                   export_to(m, exp, PARE_EXPORT_HF_DENSE, NULL, &err) == PARE_OK,
               "%s: %s", dirs[i], err.msg);
        pare_model *r = err.code ? NULL : load_model(exp);
        int np = pare_model_named_params(m, NULL);
        pare_param_ref *a = calloc((size_t)np, sizeof *a), *b = calloc((size_t)np, sizeof *b);
        if (r && a && b && pare_model_named_params(r, b) == np) {
            pare_model_named_params(m, a);
            for (int t = 0; t < np; t++)
                if (strstr(a[t].name, "norm"))
                    CHECKF(!strcmp(a[t].name, b[t].name) && a[t].d0 == b[t].d0 && a[t].d1 == b[t].d1 &&
                               !memcmp(a[t].p, b[t].p, (size_t)a[t].d0 * (a[t].d1 ? a[t].d1 : 1) * sizeof(float)),
                           "%s: %s changed by compression and export", dirs[i], a[t].name);
        } else {
            CHECKF(0, "%s: the export's parameters differ from the model's", dirs[i]);
        }
        free(a);
        free(b);
        pare_model_free(r);
        CHECKF(!err.code, "%s", err.msg);
        free(win);
        pare_model_free(m);
    }
    free_dirs(dirs, n);
}

/* ---- Phi-3's fused matrices ------------------------------------------------------------------ */

/* Whether s names every logical part of Phi-3's fused matrices of layer 0 and never the fused
 * tensor as one matrix. */
static int names_phi3_parts(const char *s, const char *quote)
{
    static const char *const parts[] = {"qkv_proj.q", "qkv_proj.k", "qkv_proj.v", "gate_up_proj.gate",
                                        "gate_up_proj.up"};
    char whole[96];
    for (int i = 0; i < 5; i++)
        if (!strstr(s, parts[i]))
            return 0;
    snprintf(whole, sizeof whole, "qkv_proj%s", quote);
    return !strstr(s, whole);
}

/* `pare spectra` and a plan list Phi-3's q, k, v, gate and up, each at its own shape. */
static void test_phi3_parts_in_spectra_and_plans(void)
{
    NEED_FIXTURES();
    const char *dir = FAMILIES_DIR "/phi3";
    const char *args[] = {"spectra", "--model", dir, "--csv", NULL};
    char *out = NULL, *errout = NULL;
    int rc = run_pare(&out, &errout, args);
    CHECKF(rc == 0 && names_phi3_parts(out, ","), "pare spectra phi3 (exit %d): %s%s", rc, out ? out : "",
           errout ? errout : "");
    free(out);
    free(errout);
    pare_model *m = load_model(dir);
    if (!m)
        return;
    pare_method_opts mo;
    pare_method_defaults(&mo);
    mo.ratio = 0.3;
    pare_calib_opts co;
    int32_t *win = calib_of(m, dir, &co);
    pare_plan plan = {0};
    pare_error err = {0};
    CHECKF(win && pare_method_plan(m, pare_method_find("lorap"), &mo, win, &co, NULL, &plan, NULL, &err) == PARE_OK,
           "%s", err.msg);
    int parts = 0;
    for (int i = 0; i < plan.count; i++) {
        const pare_linear *l = plan.items[i].linear;
        int kind = pare_lin_kind_of_hf_name(l->name);
        int o, in;
        pare_lin_shape(&m->cfg, (pare_lin_kind)kind, &o, &in);
        CHECKF(kind >= 0 && l->orig_out == o && l->orig_in == in, "plan item %s: [%d, %d]", l->name, l->orig_out,
               l->orig_in);
        parts += strstr(l->name, "qkv_proj.") || strstr(l->name, "gate_up_proj.");
    }
    CHECKF(parts == 5 * m->cfg.n_layers, "%d planned parts of fused matrices, want %d", parts, 5 * m->cfg.n_layers);
    pare_plan_free(&plan);
    free(win);
    pare_model_free(m);
}

/* Elements of the tensor called name in the safetensors folder dir, or -1 when absent. */
static long long tensor_elements(const char *dir, const char *name)
{
    pare_safetensors st;
    pare_error err = {0};
    if (pare_st_open_dir(dir, &st, &err)) {
        CHECKF(0, "%s: %s", dir, err.msg);
        return -1;
    }
    const pare_st_tensor *t = pare_st_find(&st, name);
    long long e = t ? 1 : -1;
    for (int k = 0; t && k < t->ndim; k++)
        e *= t->shape[k];
    pare_st_close(&st);
    return e;
}

/* Phi-3's FFN channel-pruned to a different width per block: the hf-dense export pads gate_up_proj
 * (gate and up each to the widest block) and down_proj with zeros, reloads in pare with the same
 * perplexity, and its fused tensor has the exported width. */
static void test_phi3_pruned_ffn_padded_export(void)
{
    NEED_FIXTURES();
    const char *dir = FAMILIES_DIR "/phi3";
    pare_model *m = load_model(dir);
    if (!m)
        return;
    pare_error err = {0};
    pare_chan_opts co;
    pare_chan_defaults(&co);
    co.score = PARE_CHAN_MAGNITUDE;
    co.keep_least = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        co.sparsity = 0.1 + 0.2 * l; /* the blocks end up at different widths */
        CHECKF(pare_prune_ffn(&m->blocks[l], NULL, &co, NULL, &err) == PARE_OK, "layer %d: %s", l, err.msg);
    }
    double before = ppl_of(m, dir, "phi3 pruned");
    const char *out = tmp_path("phi3-pruned-hf");
    pare_export_report rep = {0};
    CHECKF(export_to(m, out, PARE_EXPORT_HF_DENSE, &rep, &err) == PARE_OK, "%s", err.msg);
    CHECKF(rep.padded_blocks == m->cfg.n_layers - 1 && rep.ffn_width == m->blocks[0].up.out,
           "export report: width %d, %d padded blocks", rep.ffn_width, rep.padded_blocks);
    CHECKF(tensor_elements(out, "model.layers.2.mlp.gate_up_proj.weight") == 2LL * rep.ffn_width * m->cfg.dim &&
               tensor_elements(out, "model.layers.2.mlp.gate_proj.weight") < 0,
           "%s: gate_up_proj is not one [2 x %d, %d] tensor", out, rep.ffn_width, m->cfg.dim);
    pare_model *r = load_model(out);
    double after = r ? ppl_of(r, dir, "phi3 pruned, reloaded") : NAN;
    CHECKF(isfinite(before) && fabs(after / before - 1) <= 1e-5, "ppl %.9g, reloaded %.9g", before, after);
    pare_model_free(r);
    pare_model_free(m);
}

/* ---- every method on every family ------------------------------------------------------------ */

/* m's exports: hf-dense reloads with the same perplexity (1e-5 relative), still the same family, with
 * tied embeddings written once (no lm_head) and Phi-3's matrices fused; the pare format reloads bit
 * for bit. what names the pair in messages. */
static void check_exports(pare_model *m, const char *dir, const char *what, double ppl)
{
    char name[160];
    snprintf(name, sizeof name, "%s-hf", what);
    const char *hf = tmp_path(name);
    pare_error err = {0};
    CHECKF(export_to(m, hf, PARE_EXPORT_HF_DENSE, NULL, &err) == PARE_OK, "%s: hf-dense export: %s", what, err.msg);
    pare_model *r = err.code ? NULL : load_model(hf);
    if (r) {
        double got = ppl_of(r, dir, what);
        CHECKF(fabs(got / ppl - 1) <= 1e-5, "%s: the hf-dense export reloads at ppl %.9g, compressed %.9g", what, got,
               ppl);
        CHECKF(r->cfg.family == m->cfg.family, "%s: the hf-dense export reloads as another family", what);
        CHECKF(!m->cfg.tied_head || (r->cfg.tied_head && tensor_elements(hf, "lm_head.weight") < 0),
               "%s: tied embeddings are not tied in the export", what);
        if (m->cfg.arch == PARE_ARCH_PHI3)
            CHECKF(tensor_elements(hf, "model.layers.0.self_attn.qkv_proj.weight") > 0 &&
                       tensor_elements(hf, "model.layers.0.mlp.gate_up_proj.weight") > 0 &&
                       tensor_elements(hf, "model.layers.0.self_attn.q_proj.weight") < 0,
                   "%s: Phi-3's matrices are not written fused", what);
        pare_model_free(r);
    }
    snprintf(name, sizeof name, "%s-pare", what);
    const char *pr = tmp_path(name);
    CHECKF(export_to(m, pr, PARE_EXPORT_PARE, NULL, &err) == PARE_OK, "%s: pare export: %s", what, err.msg);
    r = err.code ? NULL : load_model(pr);
    if (r) {
        fixture_same_state(m, r);
        double got = ppl_of(r, dir, what);
        CHECKF(got == ppl, "%s: the pare export reloads at ppl %.17g, compressed %.17g", what, got, ppl);
        pare_model_free(r);
    }
}

/* Every method of pare_methods() on every family fixture, calibrated on the fixture's eval.txt:
 * a finite perplexity and exports that reload (check_exports). Each failure names its pair. */
static void test_every_method_on_every_family(void)
{
    NEED_FIXTURES();
    char *dirs[MAX_FAMILIES];
    int n = family_dirs(dirs), n_methods = 0;
    const pare_method *methods = pare_methods(&n_methods);
    for (int i = 0; i < n; i++) {
        const char *fam = strrchr(dirs[i], '/') + 1;
        pare_model *dense = load_model(dirs[i]);
        pare_calib_opts co;
        int32_t *win = dense ? calib_of(dense, dirs[i], &co) : NULL;
        for (int k = 0; win && k < n_methods; k++) {
            char what[128];
            snprintf(what, sizeof what, "%s-%s", fam, methods[k].name);
            pare_model *m = NULL;
            pare_error err = {0};
            pare_method_opts mo;
            pare_method_defaults(&mo);
            mo.ratio = 0.3;
            if (pare_model_clone(dense, &m, &err) ||
                pare_method_compress(m, &methods[k], &mo, win, &co, NULL, NULL, NULL, &err)) {
                CHECKF(0, "%s: compress: %s", what, err.msg);
                pare_model_free(m);
                continue;
            }
            double ppl = ppl_of(m, dirs[i], what);
            CHECKF(isfinite(ppl), "%s: ppl %g", what, ppl);
            if (isfinite(ppl))
                check_exports(m, dirs[i], what, ppl);
            pare_model_free(m);
        }
        free(win);
        pare_model_free(dense);
    }
    free_dirs(dirs, n);
}

/* ---- every preset on every family ------------------------------------------------------------ */

/* Values for the presets' parameters that make a run small; a preset gets those it declares. */
static const struct {
    const char *name, *value; /* value NULL: the fixture's eval.txt */
} PRESET_SETTINGS[] = {
    {"calib", NULL},    {"data", NULL},     {"calib_samples", "4"}, {"calib_len", "32"},        {"steps", "2"},
    {"seq", "32"},      {"batch", "2"},     {"svd_iters", "2"},     {"compare_plain", "false"}, {"ratio", "0.3"},
    {"export", "true"}, {"format", "pare"},
};
#define N_PRESET_SETTINGS ((int)(sizeof PRESET_SETTINGS / sizeof PRESET_SETTINGS[0]))

/* Whether the `pare run PRESET --help` text declares parameter name (a line "  name  type ..."). */
static int declares(const char *help, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = help; (p = strstr(p, name)); p += len)
        if (p >= help + 2 && p[-1] == ' ' && p[-2] == ' ' && p[len] == ' ')
            return 1;
    return 0;
}

/* The preset files (sorted), malloc'd; returns the count. */
static int preset_files(char *names[], int cap)
{
    DIR *d = opendir("presets");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < cap;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".lua")) {
            char path[300];
            snprintf(path, sizeof path, "presets/%s", e->d_name);
            names[n++] = strdup(path);
        }
    }
    if (d)
        closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return n;
}

/* One preset on one family: `pare run` exits 0 with run.json complete and naming the family's class;
 * its pare export reloads at a finite perplexity; check_exports on the reloaded model. */
static void run_preset(const char *preset, const char *help, const char *dir, const pare_model *dense)
{
    const char *fam = strrchr(dir, '/') + 1, *base = strrchr(preset, '/') + 1;
    char what[128], out[1300], model_dir[1400], sets[N_PRESET_SETTINGS][600];
    snprintf(what, sizeof what, "%s-%.*s", fam, (int)(strlen(base) - 4), base);
    snprintf(out, sizeof out, "%s", tmp_path(what));
    const char *args[8 + 2 * N_PRESET_SETTINGS] = {"run", preset, "--model", dir, "--out", out, "--quiet"};
    int k = 7;
    for (int s = 0; s < N_PRESET_SETTINGS; s++)
        if (declares(help, PRESET_SETTINGS[s].name)) {
            snprintf(sets[s], sizeof sets[s], "%s=%s", PRESET_SETTINGS[s].name,
                     PRESET_SETTINGS[s].value ? PRESET_SETTINGS[s].value : eval_text(dir));
            args[k++] = "--set";
            args[k++] = sets[s];
        }
    args[k] = NULL;
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, args);
    CHECKF(rc == 0, "%s: pare run exit %d: %s", what, rc, e ? e : "");
    free(o);
    free(e);
    if (rc)
        return;
    char path[1400];
    snprintf(path, sizeof path, "%s/run.json", out);
    json_t *run = json_load_file(path, 0, NULL);
    const char *status = json_string_value(json_object_get(run, "status"));
    const char *arch = json_string_value(json_object_get(json_array_get(json_object_get(run, "models"), 0), "arch"));
    CHECKF(status && !strcmp(status, "complete"), "%s: run.json status %s", what, status ? status : "(none)");
    CHECKF(arch && !strcmp(arch, pare_family_class(&dense->cfg)), "%s: run.json names the model %s, want %s", what,
           arch ? arch : "(none)", pare_family_class(&dense->cfg));
    if (dense->cfg.arch == PARE_ARCH_PHI3) {
        char *s = json_dumps(json_object_get(run, "results"), 0);
        CHECKF(s && names_phi3_parts(s, "\""), "%s: run.json's results do not list Phi-3's parts", what);
        free(s);
    }
    json_decref(run);
    snprintf(model_dir, sizeof model_dir, "%s/model", out);
    pare_model *m = load_model(model_dir);
    if (!m)
        return;
    double ppl = ppl_of(m, dir, what);
    CHECKF(isfinite(ppl), "%s: ppl %g", what, ppl);
    if (isfinite(ppl))
        check_exports(m, dir, what, ppl);
    pare_model_free(m);
}

/* Every preset that exports a model (it declares `export`) runs on every family fixture with a
 * small calibration and training budget; sweep.lua and lpaf_rank.lua compare runs and export none. */
static void test_every_preset_on_every_family(void)
{
    NEED_FIXTURES();
    char *dirs[MAX_FAMILIES], *presets[32];
    int n = family_dirs(dirs), np = preset_files(presets, 32), ran = 0;
    for (int p = 0; p < np; p++) {
        const char *args[] = {"run", presets[p], "--help", NULL};
        char *help = NULL, *e = NULL;
        int rc = run_pare(&help, &e, args);
        CHECKF(rc == 0, "pare run %s --help: exit %d: %s", presets[p], rc, e ? e : "");
        if (rc == 0 && declares(help, "export")) {
            ran++;
            for (int i = 0; i < n; i++) {
                pare_model *dense = load_model(dirs[i]);
                if (dense)
                    run_preset(presets[p], help, dirs[i], dense);
                pare_model_free(dense);
            }
        }
        free(help);
        free(e);
    }
    CHECKF(ran >= 8, "only %d presets export a model", ran);
    free_dirs(presets, np);
    free_dirs(dirs, n);
}

/* ---- the family's class where pare names the architecture ------------------------------------ */

/* The Lua module's m:info().arch and tostring(m), `pare eval` and the TUI's header name the family's
 * class (MistralForCausalLM), not the weight layout's (LlamaForCausalLM). */
static void test_family_class_in_lua_and_tui(void)
{
    NEED_FIXTURES();
    const char *dir = FAMILIES_DIR "/mistral";
    const char *recipe = tmp_path("arch.lua");
    const char *src = "params { model = {nil, 'model', type = 'string'} }\n"
                      "function run(p)\n"
                      "  local m = pare.load(p.model)\n"
                      "  print('arch=' .. m:info().arch .. ' ' .. tostring(m))\n"
                      "end\n";
    CHECK(write_bytes(recipe, src, strlen(src)) == 0);
    const char *args[] = {"run", recipe, "--model", dir, "--out", tmp_path("arch-run"), "--quiet", NULL};
    char *out = NULL, *e = NULL;
    int rc = run_pare(&out, &e, args);
    CHECKF(rc == 0 && strstr(out, "arch=MistralForCausalLM pare.model(") && strstr(out, ", MistralForCausalLM)"),
           "pare run (exit %d): %s%s", rc, out ? out : "", e ? e : "");
    free(out);
    free(e);
    const char *eval[] = {"eval", "--model", dir, "--data", eval_text(dir), "--window", "32", NULL};
    rc = run_pare(&out, &e, eval);
    CHECKF(rc == 0 && strstr(out, "/mistral (MistralForCausalLM)"), "pare eval (exit %d): %s%s", rc, out ? out : "",
           e ? e : "");
    free(out);
    free(e);
    char dump[1300];
    snprintf(dump, sizeof dump, "%s/screen.txt", harness_tmpdir());
    const char *tui[] = {"tui", "--model", dir,      "--out", tmp_path("arch-tui"), "--keys", "j", "--dump-screen",
                         dump,  "--size",  "120x30", NULL};
    rc = run_pare(&out, &e, tui);
    size_t len = 0;
    char *screen = rc == 0 ? (char *)fixture_read(dump, &len) : NULL;
    if (screen)
        screen[len] = 0;
    CHECKF(screen && strstr(screen, "(MistralForCausalLM, 3 layers"), "pare tui (exit %d): %s%s", rc,
           screen ? screen : "", e ? e : "");
    free(screen);
    free(out);
    free(e);
}

void suite_family_compress(void);
void suite_family_compress(void)
{
    /* The fixtures are tiny: waking a thread team for each of their small products costs more than
     * the products (several times the suite's time on a loaded machine); one thread, here and in the
     * pare processes the tests start. */
    pare_set_threads(1);
    setenv("PARE_THREADS", "1", 1);
    RUN(test_factorized_q_keeps_bias);
    RUN(test_channel_pruning_slices_biases);
    RUN(test_norms_counted_and_intact);
    RUN(test_phi3_parts_in_spectra_and_plans);
    RUN(test_phi3_pruned_ffn_padded_export);
    RUN(test_every_method_on_every_family);
    RUN(test_every_preset_on_every_family);
    RUN(test_family_class_in_lua_and_tui);
    unsetenv("PARE_THREADS");
    pare_set_threads(0);
}

/* Export: a compressed model written as hf-dense reloads within 1e-4 and as the pare format reloads
 * bit for bit (same layer state, same logits); HF names and layouts match the source files; FFN
 * widths, padding, dtypes, atomic replacement, cleanup after failures, manifest validation. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/export.h"
#include "core/factorize.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/prune.h"
#include "core/safetensors.h"
#include "fixture.h"
#include "harness.h"

/* ---------------------------------------------------------------- helpers */

/* Sum of the sizes of the regular files in dir; *files gets their count. */
static size_t dir_bytes(const char *dir, int *files)
{
    DIR *d = opendir(dir);
    size_t total = 0;
    *files = 0;
    if (!d)
        return 0;
    struct dirent *e;
    char p[2048];
    struct stat st;
    while ((e = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            total += (size_t)st.st_size;
            (*files)++;
        }
    }
    closedir(d);
    return total;
}

/* Entries of the parent of path whose names start with "<base>.tmp-" or "<base>.old-". */
static int leftovers(const char *path)
{
    char parent[1200], pre1[300], pre2[300];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    *slash = '\0';
    snprintf(pre1, sizeof pre1, "%s.tmp-", slash + 1);
    snprintf(pre2, sizeof pre2, "%s.old-", slash + 1);
    DIR *d = opendir(parent);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, pre1, strlen(pre1)) || !strncmp(e->d_name, pre2, strlen(pre2));
    if (d)
        closedir(d);
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static pare_status export_to(const pare_model *m, const char *dir, pare_export_format f, const char *dtype,
                             pare_export_report *rep, pare_error *err)
{
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = f;
    if (dtype)
        o.dtype = dtype;
    return pare_export(m, dir, &o, NULL, rep, err);
}

static pare_model *load(const char *dir)
{
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "reload %s: %s", dir, err.msg);
    return m;
}

static int min_i(int a, int b) { return a < b ? a : b; }

/* Factorizes (plain SVD) at rank max(1, min(out, in) * num / den). */
static void factorize(pare_linear *l, int num, int den)
{
    pare_factor_opts o;
    pare_factor_defaults(&o);
    o.weighting = PARE_WEIGHT_NONE;
    int r = min_i(l->out, l->in) * num / den;
    pare_error err = {0};
    pare_factor_report rep;
    CHECKF(pare_factorize_linear(l, r < 1 ? 1 : r, &o, NULL, &rep, &err) == PARE_OK, "%s", err.msg);
}

static void mask(pare_linear *l, double s)
{
    pare_mask_opts o;
    pare_mask_defaults(&o);
    o.sparsity = s;
    pare_error err = {0};
    CHECKF(pare_prune_mask(&l, NULL, 1, &o, NULL, &err) == PARE_OK, "%s", err.msg);
}

static void prune_ffn(pare_block *b, double s)
{
    pare_chan_opts o;
    pare_chan_defaults(&o);
    o.score = PARE_CHAN_MAGNITUDE;
    o.sparsity = s;
    o.keep_least = 0;
    pare_error err = {0};
    CHECKF(pare_prune_ffn(b, NULL, &o, NULL, &err) == PARE_OK, "%s", err.msg);
}

/* Every kind of state: factorized before and after channel slicing, masked before slicing and
 * after, plain dense. sparsity1 < 0 slices every block alike (0.25), else block 0 by 0.5 and the
 * others by sparsity1 (non-uniform widths). */
static void compress(pare_model *m, double sparsity1)
{
    pare_block *b0 = &m->blocks[0], *b1 = &m->blocks[m->cfg.n_layers - 1];
    int gpt2 = m->cfg.arch == PARE_ARCH_GPT2;
    factorize(&b0->q, 1, 4);
    factorize(gpt2 ? &b0->up : &b0->gate, 1, 3); /* factorized, then sliced */
    mask(&b0->o, 0.5);
    mask(&b1->up, 0.4); /* masked, then sliced */
    for (int i = 0; i < m->cfg.n_layers; i++)
        prune_ffn(&m->blocks[i], sparsity1 < 0 ? 0.25 : i == 0 ? 0.5 : sparsity1);
    factorize(&b1->down, 1, 2); /* sliced, then factorized */
    mask(&b1->k, 0.3);
    if (!gpt2)
        factorize(&b1->gate, 1, 5);
}

/* Exports m both ways into tmp folders prefix-pare / prefix-hf and checks the reloads: pare bit for
 * bit (state and logits), hf-dense within 1e-4 with the widest block as intermediate_size and the
 * narrower ones zero-padded; pare_export_size equals what was written. */
static void roundtrip(pare_model *m, const char *prefix)
{
    float *ref = fixture_logits_of(m);
    size_t nl = (size_t)FIXTURE_T * m->cfg.vocab_size;
    int F = 0, narrower = 0;
    for (int i = 0; i < m->cfg.n_layers; i++)
        F = m->blocks[i].up.out > F ? m->blocks[i].up.out : F;
    for (int i = 0; i < m->cfg.n_layers; i++)
        narrower += m->blocks[i].up.out < F;
    char dir[1200], name[256];
    pare_error err = {0};
    pare_export_report rep;
    for (int f = 0; f < 2 && ref; f++) {
        pare_export_format fmt = f ? PARE_EXPORT_HF_DENSE : PARE_EXPORT_PARE;
        snprintf(name, sizeof name, "%s-%s", prefix, pare_export_format_name(fmt));
        snprintf(dir, sizeof dir, "%s", tmp_path(name));
        pare_export_opts o;
        pare_export_defaults(&o);
        o.format = fmt;
        if (fmt == PARE_EXPORT_PARE) {
            o.manifest_extra_json = "{\"method\": \"test\", \"ratio\": 0.25}";
            o.producer = "pare tests";
        }
        size_t predicted = 0;
        CHECKF(pare_export_size(m, &o, &predicted, &err) == PARE_OK, "%s", err.msg);
        CHECKF(pare_export(m, dir, &o, NULL, &rep, &err) == PARE_OK, "%s: %s", name, err.msg);
        int files;
        size_t on_disk = dir_bytes(dir, &files);
        CHECKF(predicted == on_disk && rep.bytes_on_disk == on_disk && rep.files == files,
               "%s: predicted %zu, reported %zu (%d files), on disk %zu (%d files)", name, predicted, rep.bytes_on_disk,
               rep.files, on_disk, files);
        CHECK(leftovers(dir) == 0);
        CHECK(rep.ffn_width == F);
        /* an ordinary folder (mode from the umask), not a private temporary one */
        mode_t um = umask(0);
        umask(um);
        struct stat st;
        CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == (0777 & ~um));
        pare_model *r = load(dir);
        if (!r)
            continue;
        float *got = fixture_logits_of(r);
        if (fmt == PARE_EXPORT_PARE) {
            fixture_same_state(m, r);
            CHECKF(got && !memcmp(ref, got, nl * sizeof(float)), "%s: logits are not bit-identical", name);
            CHECK(rep.padded_blocks == 0);
            json_t *man = fixture_read_json(dir, PARE_EXPORT_MANIFEST);
            CHECK(man && !strcmp(json_string_value(json_object_get(man, "format")), "pare"));
            CHECK(man && json_integer_value(json_object_get(man, "version")) == PARE_EXPORT_VERSION);
            CHECK(man && json_real_value(json_object_get(json_object_get(man, "compression"), "ratio")) == 0.25);
            CHECK(man && json_array_size(json_object_get(man, "linears")) == (size_t)pare_model_linears(m, NULL, 0));
            json_decref(man);
        } else {
            double d = got ? fixture_max_diff(ref, got, nl) : 1e9;
            CHECKF(d <= 1e-4, "%s: max logit difference %g", name, d);
            CHECK(rep.padded_blocks == narrower);
            CHECK(r->cfg.ffn_dim == F);
            pare_linear *ls[64];
            int n = pare_model_linears(r, ls, 64);
            for (int i = 0; i < n; i++)
                CHECKF(ls[i]->kind == PARE_LIN_DENSE && ls[i]->out == ls[i]->orig_out, "%s", ls[i]->name);
            json_t *cfg = fixture_read_json(dir, "config.json");
            const char *key = m->cfg.arch == PARE_ARCH_GPT2 ? "n_inner" : "intermediate_size";
            CHECKF(cfg && json_integer_value(json_object_get(cfg, key)) == F, "config %s is not %d", key, F);
            /* transformers 5 configs say "dtype", older ones "torch_dtype" */
            const char *dk = cfg && json_object_get(cfg, "dtype") ? "dtype" : "torch_dtype";
            const char *dv = cfg ? json_string_value(json_object_get(cfg, dk)) : NULL;
            CHECKF(dv && !strcmp(dv, "float32"), "config %s is %s", dk, dv ? dv : "missing");
            json_decref(cfg);
        }
        free(got);
        pare_model_free(r);
    }
    free(ref);
}

/* ---------------------------------------------------------------- tests */

static void test_fixture_llama_uniform(void)
{
    pare_model *m = fixture_model("llama", 0);
    if (!m)
        return;
    compress(m, -1);
    CHECK(m->blocks[0].up.out == m->blocks[1].up.out && m->blocks[0].up.out < m->cfg.ffn_dim);
    roundtrip(m, "llama-uniform");
    pare_model_free(m);
}

static void test_fixture_gpt2_uniform(void)
{
    pare_model *m = fixture_model("gpt2", 1);
    if (!m)
        return;
    compress(m, -1);
    roundtrip(m, "gpt2-uniform");
    pare_model_free(m);
}

/* Block 0 narrower than block 1: block 1's width is intermediate_size, block 0 is padded. */
static void test_fixture_nonuniform(void)
{
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        pare_model *m = fixture_model(gpt2 ? "gpt2-nu" : "llama-nu", gpt2);
        if (!m)
            return;
        compress(m, 0.25);
        CHECK(m->blocks[0].up.out < m->blocks[1].up.out && m->blocks[1].up.out < m->cfg.ffn_dim);
        roundtrip(m, gpt2 ? "gpt2-nonuniform" : "llama-nonuniform");
        pare_model_free(m);
    }
}

/* A llama2.c source: config synthesized as LlamaForCausalLM, tokenizer.bin carried along. */
static void test_llama2c_source(void)
{
    fixture_spec s;
    fixture_default(&s, 0);
    char src[1200];
    snprintf(src, sizeof src, "%s", tmp_path("l2c"));
    CHECK(fixture_write_llama2c(src, &s) == 0);
    pare_model *m = load(src);
    if (!m)
        return;
    compress(m, 0.25);
    roundtrip(m, "l2c");
    char dir[1400];
    snprintf(dir, sizeof dir, "%s", tmp_path("l2c-hf-dense"));
    json_t *cfg = fixture_read_json(dir, "config.json");
    CHECK(cfg && !strcmp(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)), "LlamaForCausalL"
                                                                                                      "M"));
    CHECK(cfg && json_integer_value(json_object_get(cfg, "num_key_value_heads")) == s.kv_heads);
    json_decref(cfg);
    snprintf(dir, sizeof dir, "%s/tokenizer.bin", tmp_path("l2c-pare"));
    size_t a, b;
    unsigned char *x = fixture_read(dir, &a);
    snprintf(dir, sizeof dir, "%s/tok.bin", src);
    unsigned char *y = fixture_read(dir, &b);
    CHECK(x && y && a == b && !memcmp(x, y, a));
    free(x);
    free(y);
    pare_model *r = load(tmp_path("l2c-pare"));
    CHECK(r && r->tok != NULL && r->cfg.bos_id == m->cfg.bos_id && r->cfg.n_eos == m->cfg.n_eos &&
          !memcmp(r->cfg.eos_ids, m->cfg.eos_ids, sizeof m->cfg.eos_ids));
    pare_model_free(r);
    pare_model_free(m);
}

/* An uncompressed model exported hf-dense holds exactly the source file's tensors: same names,
 * dtypes, shapes (GPT-2 Conv1D layout, fused c_attn) and bytes; a tied head is not stored twice. */
static void test_hf_names_and_layout(void)
{
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        fixture_spec s;
        fixture_default(&s, gpt2);
        char src[1200], dir[1200], p[1300];
        snprintf(src, sizeof src, "%s", tmp_path(gpt2 ? "names-gpt2" : "names-llama"));
        snprintf(dir, sizeof dir, "%s", tmp_path(gpt2 ? "names-gpt2-out" : "names-llama-out"));
        CHECK(fixture_write_hf(src, &s) == 0);
        pare_model *m = load(src);
        if (!m)
            return;
        pare_error err = {0};
        CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
        pare_safetensors a, b;
        snprintf(p, sizeof p, "%s/model.safetensors", src);
        CHECKF(pare_st_open_file(p, &a, &err) == PARE_OK, "%s", err.msg);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        CHECKF(pare_st_open_file(p, &b, &err) == PARE_OK, "%s", err.msg);
        CHECKF(a.n_tensors == b.n_tensors, "%zu tensors in the source, %zu exported", a.n_tensors, b.n_tensors);
        for (size_t i = 0; i < a.n_tensors; i++) {
            const pare_st_tensor *x = &a.tensors[i], *y = pare_st_find(&b, x->name);
            CHECKF(y && y->dtype == x->dtype && y->ndim == x->ndim && !memcmp(y->shape, x->shape, sizeof x->shape) &&
                       y->nbytes == x->nbytes && !memcmp(y->data, x->data, x->nbytes),
                   "%s differs", x->name);
        }
        CHECK(gpt2 ? pare_st_find(&b, "lm_head.weight") == NULL : pare_st_find(&b, "lm_head.weight") != NULL);
        pare_st_close(&a);
        pare_st_close(&b);
        /* tokenizer copied verbatim */
        size_t la, lb;
        snprintf(p, sizeof p, "%s/tokenizer.json", src);
        unsigned char *x = fixture_read(p, &la);
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        unsigned char *y = fixture_read(p, &lb);
        CHECK(x && y && la == lb && !memcmp(x, y, la));
        free(x);
        free(y);
        pare_model_free(m);
    }
}

/* F16 / BF16 sources exported uncompressed in their own dtype reload bit-identically; bad dtypes
 * are refused before anything is created. */
static void test_dtypes(void)
{
    const char *dts[2] = {"BF16", "F16"};
    for (int k = 0; k < 2; k++) {
        fixture_spec s;
        fixture_default(&s, 0);
        s.dtype = dts[k];
        char src[1200], dir[1200], p[1300];
        snprintf(src, sizeof src, "%s", tmp_path(k ? "dt-f16" : "dt-bf16"));
        snprintf(dir, sizeof dir, "%s", tmp_path(k ? "dt-f16-out" : "dt-bf16-out"));
        CHECK(fixture_write_hf(src, &s) == 0);
        pare_model *m = load(src);
        if (!m)
            return;
        float *ref = fixture_logits_of(m);
        pare_error err = {0};
        CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, dts[k], NULL, &err) == PARE_OK, "%s", err.msg);
        pare_model *r = load(dir);
        float *got = r ? fixture_logits_of(r) : NULL;
        CHECKF(ref && got && !memcmp(ref, got, (size_t)FIXTURE_T * m->cfg.vocab_size * 4), "%s export is not exact",
               dts[k]);
        CHECK(r && !strcmp(r->source_dtype, dts[k]));
        json_t *cfg = fixture_read_json(dir, "config.json");
        CHECK(cfg && !strcmp(json_string_value(json_object_get(cfg, "torch_dtype")), k ? "float16" : "bfloat16"));
        json_decref(cfg);
        free(ref);
        free(got);
        pare_model_free(r);
        /* refused options leave nothing behind */
        snprintf(p, sizeof p, "%s-bad", dir);
        CHECK(export_to(m, p, PARE_EXPORT_HF_DENSE, "F8", NULL, &err) == PARE_EINVAL && strstr(err.msg, "F8"));
        CHECK(export_to(m, p, PARE_EXPORT_PARE, "BF16", NULL, &err) == PARE_EINVAL && strstr(err.msg, "F32"));
        pare_export_opts o;
        pare_export_defaults(&o);
        o.format = PARE_EXPORT_PARE;
        o.manifest_extra_json = "[1, 2";
        CHECK(pare_export(m, p, &o, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "JSON"));
        size_t bytes = 1;
        CHECK(pare_export_size(m, &o, &bytes, &err) == PARE_EINVAL && bytes == 0);
        CHECK(!exists(p) && leftovers(p) == 0);
        pare_model_free(m);
    }
    pare_export_format f;
    pare_error err = {0};
    CHECK(pare_export_format_parse("pare", &f, &err) == PARE_OK && f == PARE_EXPORT_PARE);
    CHECK(pare_export_format_parse("hf-dense", &f, &err) == PARE_OK && f == PARE_EXPORT_HF_DENSE);
    CHECK(pare_export_format_parse("onnx", &f, &err) == PARE_EINVAL && strstr(err.msg, "onnx"));
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = fixture_read(a, &la), *y = fixture_read(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static int cancel_at;
static int cancel_after(void *user, const char *stage, double fraction, const char *detail)
{
    int *calls = user;
    return ++*calls >= cancel_at;
}

/* An existing destination is refused unless overwrite is set, and is replaced only when it looks
 * like a model folder; a failed or cancelled export leaves no folder and no temporary behind. */
static void test_destination_and_cleanup(void)
{
    pare_model *m = fixture_model("dest-src", 0);
    if (!m)
        return;
    compress(m, -1);
    char dir[1200], keep[1300], p[1300];
    snprintf(dir, sizeof dir, "%s", tmp_path("dest"));
    pare_error err = {0};
    CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
    snprintf(keep, sizeof keep, "%s", tmp_path("dest-copy.safetensors"));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len;
    unsigned char *orig = fixture_read(p, &len);
    fixture_write_raw(keep, orig, len);
    free(orig);

    CHECK(export_to(m, dir, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_EINVAL);
    CHECKF(strstr(err.msg, dir) && strstr(err.msg, "exists"), "%s", err.msg);
    CHECK(same_file(p, keep) && !pare_export_is_pare_dir(dir));

    /* cancelled at each stage: nothing written, the old folder intact */
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = PARE_EXPORT_PARE;
    o.overwrite = 1;
    for (cancel_at = 1; cancel_at <= 4; cancel_at++) {
        int calls = 0;
        pare_progress prog = {cancel_after, &calls};
        CHECK(pare_export(m, dir, &o, &prog, NULL, &err) == PARE_ECANCELED);
        CHECK(same_file(p, keep) && !pare_export_is_pare_dir(dir) && leftovers(dir) == 0);
    }
    /* and into a new folder: nothing created */
    char fresh[1200];
    snprintf(fresh, sizeof fresh, "%s", tmp_path("fresh"));
    cancel_at = 3;
    int calls = 0;
    pare_progress prog = {cancel_after, &calls};
    CHECK(pare_export(m, fresh, &o, &prog, NULL, &err) == PARE_ECANCELED);
    CHECK(!exists(fresh) && leftovers(fresh) == 0);

    /* overwrite replaces it once the new export is complete */
    pare_export_report rep;
    CHECKF(pare_export(m, dir, &o, NULL, &rep, &err) == PARE_OK, "%s", err.msg);
    int files;
    CHECK(pare_export_is_pare_dir(dir) && !same_file(p, keep) && dir_bytes(dir, &files) == rep.bytes_on_disk);
    CHECK(leftovers(dir) == 0);
    pare_model *r = load(dir);
    if (r)
        fixture_same_state(m, r);
    pare_model_free(r);
    /* a trailing slash names the same folder (the temporary is a sibling, not inside it) */
    snprintf(p, sizeof p, "%s/", dir);
    CHECK(pare_export(m, p, &o, NULL, NULL, &err) == PARE_OK && leftovers(dir) == 0 && pare_export_is_pare_dir(dir));

    /* folders that do not look like model folders are never replaced */
    char other[1200];
    snprintf(other, sizeof other, "%s", tmp_path("not-a-model"));
    mkdir(other, 0755);
    snprintf(p, sizeof p, "%s/notes.txt", other);
    fixture_write_raw(p, "keep me", 7);
    CHECK(pare_export(m, other, &o, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "config.json"));
    size_t nl = 0;
    unsigned char *notes = fixture_read(p, &nl);
    CHECK(notes && nl == 7 && !memcmp(notes, "keep me", 7));
    free(notes);
    snprintf(p, sizeof p, "%s/config.json", other);
    fixture_write_raw(p, "{}", 2);
    snprintf(p, sizeof p, "%s/sub", other);
    mkdir(p, 0755);
    CHECK(pare_export(m, other, &o, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "sub"));
    CHECK(exists(p));

    /* a parent that does not exist */
    snprintf(p, sizeof p, "%s/no/such/out", harness_tmpdir());
    CHECK(pare_export(m, p, &o, NULL, NULL, &err) == PARE_EIO && strstr(err.msg, p));
    snprintf(p, sizeof p, "%s/no", harness_tmpdir());
    CHECK(!exists(p));
    /* a read-only parent (root may write anyway, so only as another user) */
    if (geteuid() != 0) {
        char ro[1200];
        snprintf(ro, sizeof ro, "%s", tmp_path("readonly"));
        mkdir(ro, 0555);
        snprintf(p, sizeof p, "%s/out", ro);
        CHECK(pare_export(m, p, &o, NULL, NULL, &err) == PARE_EIO);
        CHECK(!exists(p) && leftovers(p) == 0);
        chmod(ro, 0755);
    }
    pare_model_free(m);
}

/* Rewrites pare.json of dir through fn, expects the reload to fail with a message naming
 * pare.json and `want`, then restores the original. */
static void expect_manifest_error(const char *dir, const char *orig, void (*fn)(json_t *), const char *want)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/%s", dir, PARE_EXPORT_MANIFEST);
    json_t *j = json_loads(orig, 0, NULL);
    fn(j);
    json_dump_file(j, p, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    pare_model *m = NULL;
    pare_error err = {0};
    pare_status rc = pare_model_load(dir, NULL, &m, &err);
    CHECKF(rc == PARE_EFORMAT || rc == PARE_EUNSUPPORTED, "expected an error about %s, got %s", want,
           pare_status_name(rc));
    CHECKF(strstr(err.msg, p) && strstr(err.msg, want), "message lacks pare.json or '%s': %s", want, err.msg);
    CHECKF(strchr(err.msg, '\n') == NULL, "not one line: %s", err.msg);
    pare_model_free(m);
    fixture_write_raw(p, orig, strlen(orig));
}

/* The manifest entry of the first linear with this kind (and sliced rows when sliced). */
static json_t *entry(json_t *j, const char *kind, int sliced)
{
    json_t *lins = json_object_get(j, "linears"), *e;
    size_t i;
    json_array_foreach(lins, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "kind")), kind) &&
            (!sliced || !json_is_null(json_object_get(e, "kept_out"))))
            return e;
    return NULL;
}

static void bad_rank(json_t *j)
{
    json_t *e = entry(j, "factored", 0), *o = json_object_get(e, "orig_shape");
    json_int_t a = json_integer_value(json_array_get(o, 0)), b = json_integer_value(json_array_get(o, 1));
    json_object_set_new(e, "rank", json_integer((a < b ? a : b) + 1));
}
static void missing_tensor(json_t *j)
{
    json_object_set_new(json_object_get(entry(j, "factored", 0), "tensors"), "B", json_string("no.such.tensor"));
}
static void bad_kind(json_t *j) { json_object_set_new(entry(j, "dense", 0), "kind", json_string("sparse")); }
static void bad_version(json_t *j) { json_object_set_new(j, "version", json_integer(PARE_EXPORT_VERSION + 1)); }
static void bad_format(json_t *j) { json_object_set_new(j, "format", json_string("gguf")); }
static void bad_shape(json_t *j)
{
    json_t *s = json_object_get(entry(j, "masked", 0), "shape");
    json_array_set_new(s, 0, json_integer(json_integer_value(json_array_get(s, 0)) - 1));
}
static void bigger_than_orig(json_t *j)
{
    json_t *e = entry(j, "dense", 0), *o = json_object_get(e, "orig_shape");
    json_array_set_new(json_object_get(e, "shape"), 1, json_integer(json_integer_value(json_array_get(o, 1)) + 1));
}
static void dropped_linear(json_t *j) { json_array_remove(json_object_get(j, "linears"), 0); }
static void renamed_linear(json_t *j) { json_object_set_new(entry(j, "dense", 0), "name", json_string("model.x")); }
static void kept_count(json_t *j)
{
    json_t *e = entry(j, "factored", 1);
    json_object_set_new(e, "kept_out", json_integer(json_integer_value(json_object_get(e, "kept_out")) + 1));
}
static void kept_dropped(json_t *j) { json_object_set_new(entry(j, "factored", 1), "kept_out", json_null()); }
static void bad_bias(json_t *j) { json_object_set_new(entry(j, "dense", 0), "bias", json_true()); }
static void bad_factor_dtype(json_t *j) { json_object_set_new(j, "factor_dtype", json_string("F8")); }
static void wrong_factor_dtype(json_t *j) { json_object_set_new(j, "factor_dtype", json_string("BF16")); }

/* Overwrites the I32 element i of tensor name in dir/model.safetensors. */
static void poke_i32(const char *dir, const char *name, int i, int32_t v)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    pare_safetensors st;
    pare_error err = {0};
    if (pare_st_open_file(p, &st, &err) != PARE_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    const pare_st_tensor *t = pare_st_find(&st, name);
    size_t off = t ? (size_t)(t->data - st.maps[0].data) + (size_t)i * 4 : 0;
    pare_st_close(&st);
    CHECKF(t != NULL, "no tensor %s", name);
    size_t len;
    unsigned char *b = fixture_read(p, &len);
    if (t && b) {
        memcpy(b + off, &v, 4);
        fixture_write_raw(p, b, len);
    }
    free(b);
}

static void test_corrupt_manifest(void)
{
    pare_model *m = fixture_model("corrupt-src", 0);
    if (!m)
        return;
    compress(m, -1);
    char dir[1200], p[1300];
    snprintf(dir, sizeof dir, "%s", tmp_path("corrupt"));
    pare_error err = {0};
    CHECKF(export_to(m, dir, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s", dir, PARE_EXPORT_MANIFEST);
    size_t len;
    char *orig = (char *)fixture_read(p, &len);
    if (!orig)
        return;
    orig[len] = '\0';
    json_t *j = json_loads(orig, 0, NULL);
    json_t *fac = entry(j, "factored", 0), *sl = entry(j, "factored", 1);
    char fac_name[128], sl_name[128];
    snprintf(fac_name, sizeof fac_name, "%s", json_string_value(json_object_get(fac, "name")));
    snprintf(sl_name, sizeof sl_name, "%s", json_string_value(json_object_get(sl, "name")));
    int sl_out = (int)json_integer_value(json_object_get(sl, "kept_out"));
    int sl_orig = (int)json_integer_value(json_array_get(json_object_get(sl, "orig_shape"), 0));
    json_decref(j);

    expect_manifest_error(dir, orig, bad_rank, fac_name);
    expect_manifest_error(dir, orig, bad_rank, "rank");
    expect_manifest_error(dir, orig, missing_tensor, "no.such.tensor");
    expect_manifest_error(dir, orig, bad_kind, "unknown kind 'sparse'");
    expect_manifest_error(dir, orig, bad_version, "version");
    expect_manifest_error(dir, orig, bad_format, "format");
    expect_manifest_error(dir, orig, bad_shape, "manifest implies");
    expect_manifest_error(dir, orig, bigger_than_orig, "exceeds orig_shape");
    expect_manifest_error(dir, orig, dropped_linear, "linears");
    expect_manifest_error(dir, orig, renamed_linear, "model.x");
    expect_manifest_error(dir, orig, kept_count, "kept_out");
    expect_manifest_error(dir, orig, kept_dropped, "kept_out");
    expect_manifest_error(dir, orig, bad_bias, "bias");
    expect_manifest_error(dir, orig, bad_factor_dtype, "\"factor_dtype\" must be");
    expect_manifest_error(dir, orig, wrong_factor_dtype, "is F32 [");
    /* invalid JSON */
    fixture_write_raw(p, orig, len / 2);
    pare_model *r = NULL;
    CHECK(pare_model_load(dir, NULL, &r, &err) == PARE_EFORMAT && strstr(err.msg, p) && strstr(err.msg, "JSON"));
    fixture_write_raw(p, orig, len);

    /* indices in model.safetensors: out of range, then not increasing */
    char tname[160];
    snprintf(tname, sizeof tname, "%s.kept_out", sl_name);
    size_t sl_len;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unsigned char *st_orig = fixture_read(p, &sl_len);
    poke_i32(dir, tname, sl_out - 1, sl_orig);
    CHECK(pare_model_load(dir, NULL, &r, &err) == PARE_EFORMAT && strstr(err.msg, PARE_EXPORT_MANIFEST) &&
          strstr(err.msg, sl_name) && strstr(err.msg, "out of range"));
    fixture_write_raw(p, st_orig, sl_len);
    poke_i32(dir, tname, 1, 0);
    CHECKF(pare_model_load(dir, NULL, &r, &err) == PARE_EFORMAT && strstr(err.msg, PARE_EXPORT_MANIFEST) &&
               strstr(err.msg, "not increasing"),
           "%s", err.msg);
    fixture_write_raw(p, st_orig, sl_len);
    free(st_orig);

    /* restored: loads again, in the exported state */
    r = load(dir);
    if (r)
        fixture_same_state(m, r);
    pare_model_free(r);
    free(orig);
    pare_model_free(m);
}

/* States one format cannot express are refused with the layer's name; the pare format keeps
 * general slicing (attention rows too), which hf-dense cannot. */
static void test_unsupported_states(void)
{
    pare_model *m = fixture_model("unsup", 0);
    if (!m)
        return;
    pare_error err = {0};
    int32_t rows[8];
    for (int i = 0; i < 8; i++)
        rows[i] = 2 * i + 1;
    CHECK(pare_linear_keep_rows(&m->blocks[1].v, rows, 8, &err) == PARE_OK);
    factorize(&m->blocks[1].v, 1, 2);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", tmp_path("unsup-hf"));
    CHECK(export_to(m, dir, PARE_EXPORT_HF_DENSE, NULL, NULL, &err) == PARE_EUNSUPPORTED &&
          strstr(err.msg, m->blocks[1].v.name));
    CHECK(!exists(dir));
    /* sliced attention rows: the forward computes whole heads and would read v at the wrong stride
     * (uninitialized activations), so neither the forward nor the pare format takes this state */
    snprintf(dir, sizeof dir, "%s", tmp_path("unsup-pare"));
    CHECKF(export_to(m, dir, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_EUNSUPPORTED &&
               strstr(err.msg, m->blocks[1].v.name) && strstr(err.msg, "attention matrices keep their loaded shape"),
           "%s", err.msg);
    CHECK(!exists(dir));
    pare_acts *acts = NULL;
    CHECKF(pare_acts_alloc(m, 1, 4, 0, &acts, &err) == PARE_EUNSUPPORTED && !acts && strstr(err.msg, m->blocks[1].v.name),
           "%s", err.msg);
    pare_model *r = NULL;
    /* kept indices out of order: fine for hf-dense (it exports what the layer computes), not for pare */
    pare_model_free(m);
    m = fixture_model("unsup2", 0);
    if (!m)
        return;
    int F = m->cfg.ffn_dim;
    int32_t *perm = malloc((size_t)F * sizeof *perm);
    for (int i = 0; i < F; i++)
        perm[i] = F - 1 - i;
    pare_block *b = &m->blocks[0];
    CHECK(pare_linear_keep_rows(&b->gate, perm, F, &err) == PARE_OK &&
          pare_linear_keep_rows(&b->up, perm, F, &err) == PARE_OK &&
          pare_linear_keep_cols(&b->down, perm, F, &err) == PARE_OK);
    free(perm);
    snprintf(dir, sizeof dir, "%s", tmp_path("perm-pare"));
    CHECK(export_to(m, dir, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_EUNSUPPORTED && strstr(err.msg, b->gate.name));
    CHECK(!exists(dir));
    snprintf(dir, sizeof dir, "%s", tmp_path("perm-hf"));
    float *ref = fixture_logits_of(m);
    CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
    r = load(dir);
    float *got = r ? fixture_logits_of(r) : NULL;
    CHECK(ref && got && fixture_max_diff(ref, got, (size_t)FIXTURE_T * m->cfg.vocab_size) <= 1e-4);
    free(ref);
    free(got);
    pare_model_free(r);
    pare_model_free(m);
}

/* A reloaded pare export exported again gives the same tensors, byte for byte. */
/* x rounded to BF16 (nearest, ties to even) and back, written out here rather than taken from the
 * code under test: the top 16 bits after adding half an ulp of BF16 (less one when the kept lsb is 0). */
static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static float dtype_round(float x, pare_dtype dt)
{
    return dt == PARE_DT_BF16 ? bf16_round(x) : pare_f16_to_f32(pare_f32_to_f16(x));
}

/* values [n] equal their f32 originals rounded to dt, bit for bit */
static int all_rounded(const float *got, const float *f32, size_t n, pare_dtype dt)
{
    for (size_t i = 0; i < n; i++) {
        float want = dtype_round(f32[i], dt);
        if (memcmp(&got[i], &want, 4))
            return 0;
    }
    return 1;
}

/* A pare export with factor_dtype BF16 or F16 stores every block matrix (factors A and B, the
 * weights of dense, masked and sliced layers) in that dtype and everything else in F32; the reload
 * holds exactly the rounding of the f32 values (masks, biases, kept indices, norms unchanged), and a
 * model rounded in memory by pare_export_round_block_weights is in that same state and computes the
 * same logits to the bit. Unknown dtypes, hf-dense with a factor dtype and F16 overflow are refused. */
static void test_factor_dtype(void)
{
    pare_model *m = fixture_model("fdt-src", 0);
    if (!m)
        return;
    compress(m, 0.25);
    pare_linear *ml[64];
    int n = pare_model_linears(m, ml, 64);
    size_t block_values = 0; /* the values the factor dtype stores */
    for (int i = 0; i < n; i++)
        block_values += ml[i]->kind == PARE_LIN_FACTORED ? (size_t)ml[i]->rank * (ml[i]->out + ml[i]->in)
                                                         : (size_t)ml[i]->out * ml[i]->in;
    pare_error err = {0};
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = PARE_EXPORT_PARE;
    pare_export_report r32, rep;
    char dir[1200], p[1300];
    snprintf(dir, sizeof dir, "%s", tmp_path("fdt-f32"));
    CHECKF(pare_export(m, dir, &o, NULL, &r32, &err) == PARE_OK, "%s", err.msg);
    const pare_dtype dts[2] = {PARE_DT_BF16, PARE_DT_F16};
    const char *spelled[2] = {"bf16", "F16"}; /* any case */
    for (int k = 0; k < 2; k++) {
        pare_dtype dt = dts[k];
        o.factor_dtype = spelled[k];
        snprintf(dir, sizeof dir, "%s-%s", tmp_path("fdt"), pare_dtype_name(dt));
        CHECKF(pare_export(m, dir, &o, NULL, &rep, &err) == PARE_OK, "%s: %s", spelled[k], err.msg);
        CHECKF(r32.tensor_bytes - rep.tensor_bytes == 2 * block_values, "%s: %zu tensor bytes, F32 %zu, %zu values",
               spelled[k], rep.tensor_bytes, r32.tensor_bytes, block_values);
        json_t *man = fixture_read_json(dir, PARE_EXPORT_MANIFEST);
        const char *rec = man ? json_string_value(json_object_get(man, "factor_dtype")) : NULL;
        CHECKF(rec && !strcmp(rec, pare_dtype_name(dt)), "manifest factor_dtype %s", rec ? rec : "missing");
        json_decref(man);
        /* the stored dtypes: block matrices in dt, every other float tensor F32 */
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        pare_safetensors st;
        if (pare_st_open_file(p, &st, &err) == PARE_OK) {
            int in_dt = 0, factored = 0;
            for (int i = 0; i < n; i++)
                factored += ml[i]->kind == PARE_LIN_FACTORED;
            for (size_t i = 0; i < st.n_tensors; i++) {
                const pare_st_tensor *t = &st.tensors[i];
                size_t len = strlen(t->name);
                int block = (len > 2 && (!strcmp(t->name + len - 2, ".A") || !strcmp(t->name + len - 2, ".B"))) ||
                            (strstr(t->name, "_proj.weight") != NULL);
                if (t->dtype == PARE_DT_U8 || t->dtype == PARE_DT_I32)
                    continue;
                in_dt += block;
                CHECKF(t->dtype == (block ? dt : PARE_DT_F32), "%s: tensor %s is %s", spelled[k], t->name,
                       pare_dtype_name(t->dtype));
            }
            CHECKF(in_dt == n + factored, "%s: %d block tensors for %d linears (%d factorized)", spelled[k], in_dt, n,
                   factored);
            pare_st_close(&st);
        } else {
            CHECKF(0, "%s", err.msg);
        }
        pare_model *r = load(dir);
        if (!r)
            continue;
        CHECK(!strcmp(r->source_dtype, "mixed"));
        pare_linear *rl[64];
        CHECK(pare_model_linears(r, rl, 64) == n);
        for (int i = 0; i < n; i++) {
            pare_linear *a = ml[i], *b = rl[i];
            CHECKF(a->kind == b->kind && a->out == b->out && a->in == b->in && a->rank == b->rank, "%s: state", a->name);
            if (a->kind != b->kind || a->out != b->out || a->in != b->in || a->rank != b->rank)
                continue;
            if (a->kind == PARE_LIN_FACTORED)
                CHECKF(all_rounded(b->A, a->A, (size_t)a->out * a->rank, dt) &&
                           all_rounded(b->B, a->B, (size_t)a->rank * a->in, dt),
                       "%s: %s factors are not the rounded f32 factors", spelled[k], a->name);
            else
                CHECKF(all_rounded(b->w, a->w, (size_t)a->out * a->in, dt), "%s: %s weights are not the rounded ones",
                       spelled[k], a->name);
            CHECK(!a->b || !memcmp(a->b, b->b, (size_t)a->out * sizeof(float)));
            CHECK(!a->mask || !memcmp(a->mask, b->mask, (size_t)a->out * a->in));
        }
        CHECK(!memcmp(m->tok_emb, r->tok_emb, (size_t)m->cfg.vocab_size * m->cfg.dim * sizeof(float)));
        /* rounded in memory: the reload's state, so the same logits to the bit */
        pare_model *c = NULL;
        CHECKF(pare_model_clone(m, &c, &err) == PARE_OK, "%s", err.msg);
        CHECKF(c && pare_export_round_block_weights(c, spelled[k], &err) == PARE_OK, "%s", err.msg);
        if (c) {
            fixture_same_state(c, r);
            float *lc = fixture_logits_of(c), *lr = fixture_logits_of(r);
            CHECKF(lc && lr && !memcmp(lc, lr, (size_t)FIXTURE_T * m->cfg.vocab_size * sizeof(float)),
                   "%s: the rounded model and the reload compute different logits", spelled[k]);
            free(lc);
            free(lr);
        }
        pare_model_free(c);
        pare_model_free(r);
    }
    /* F32 changes nothing; exports of old builds (no "factor_dtype" key) read as F32 */
    pare_model *c = NULL;
    CHECKF(pare_model_clone(m, &c, &err) == PARE_OK, "%s", err.msg);
    CHECK(c && pare_export_round_block_weights(c, "F32", &err) == PARE_OK);
    if (c)
        fixture_same_state(m, c);
    pare_model_free(c);
    snprintf(dir, sizeof dir, "%s", tmp_path("fdt-f32"));
    json_t *man = fixture_read_json(dir, PARE_EXPORT_MANIFEST);
    if (man) {
        CHECK(!strcmp(json_string_value(json_object_get(man, "factor_dtype")), "F32"));
        json_object_del(man, "factor_dtype");
        char *text = pare_json_dumps_readable(man);
        snprintf(p, sizeof p, "%s/%s", dir, PARE_EXPORT_MANIFEST);
        CHECK(text && fixture_write_raw(p, text, strlen(text)) == 0);
        free(text);
        json_decref(man);
        pare_model *r = load(dir);
        if (r)
            fixture_same_state(m, r);
        pare_model_free(r);
    }
    /* refused: an unknown dtype, a factor dtype for hf-dense, a value beyond F16; nothing left behind */
    snprintf(p, sizeof p, "%s", tmp_path("fdt-bad"));
    o.factor_dtype = "int8";
    CHECKF(pare_export(m, p, &o, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "factor dtype 'int8'"), "%s",
           err.msg);
    CHECK(pare_export_round_block_weights(m, "int8", &err) == PARE_EINVAL && strstr(err.msg, "int8"));
    o.format = PARE_EXPORT_HF_DENSE;
    o.factor_dtype = "BF16";
    CHECKF(pare_export(m, p, &o, NULL, NULL, &err) == PARE_EINVAL && strstr(err.msg, "hf-dense"), "%s", err.msg);
    CHECK(!exists(p) && leftovers(p) == 0);
    pare_linear *d = NULL;
    for (int i = 0; i < n && !d; i++)
        d = ml[i]->kind == PARE_LIN_DENSE ? ml[i] : NULL;
    if (d) {
        d->w[3] = 1e6f;
        CHECKF(pare_export_round_block_weights(m, "F16", &err) == PARE_EINVAL && strstr(err.msg, d->name) &&
                   strstr(err.msg, "F16 range"),
               "%s", err.msg);
    }
    CHECK(d != NULL);
    pare_model_free(m);
}

static void test_reexport(void)
{
    pare_model *m = fixture_model("re-src", 1);
    if (!m)
        return;
    compress(m, 0.25);
    char a[1200], b[1200], pa[1300], pb[1300];
    snprintf(a, sizeof a, "%s", tmp_path("re-a"));
    snprintf(b, sizeof b, "%s", tmp_path("re-b"));
    pare_error err = {0};
    CHECKF(export_to(m, a, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
    pare_model *r = load(a);
    if (r) {
        CHECKF(export_to(r, b, PARE_EXPORT_PARE, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
        snprintf(pa, sizeof pa, "%s/model.safetensors", a);
        snprintf(pb, sizeof pb, "%s/model.safetensors", b);
        CHECK(same_file(pa, pb));
        snprintf(pa, sizeof pa, "%s/config.json", a);
        snprintf(pb, sizeof pb, "%s/config.json", b);
        CHECK(same_file(pa, pb));
    }
    pare_model_free(r);
    pare_model_free(m);
}

/* The shared reference models: compressed, both formats; their tokenizer files copied verbatim; an
 * uncompressed BF16 checkpoint exported as BF16 reloads bit-identically. */
static void test_shared_models(void)
{
    NEED_SHARED();
    const char *names[2] = {"models/ref-llama-12m", "models/ref-gpt2-6m"};
    for (int k = 0; k < 2; k++) {
        char src[1200];
        snprintf(src, sizeof src, "%s", shared_path(names[k]));
        pare_model *m = load(src);
        if (!m)
            return;
        pare_error err = {0};
        if (k == 0) {
            char dir[1200];
            snprintf(dir, sizeof dir, "%s", tmp_path("ref-llama-bf16"));
            float *ref = fixture_logits_of(m);
            CHECKF(export_to(m, dir, PARE_EXPORT_HF_DENSE, "BF16", NULL, &err) == PARE_OK, "%s", err.msg);
            pare_model *r = load(dir);
            float *got = r ? fixture_logits_of(r) : NULL;
            CHECK(ref && got && !memcmp(ref, got, (size_t)FIXTURE_T * m->cfg.vocab_size * 4));
            const char *copied[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
            for (int i = 0; i < 3; i++) {
                char pa[1300], pb[1300];
                snprintf(pa, sizeof pa, "%s/%s", src, copied[i]);
                snprintf(pb, sizeof pb, "%s/%s", dir, copied[i]);
                CHECKF(same_file(pa, pb), "%s not copied", copied[i]);
            }
            free(ref);
            free(got);
            pare_model_free(r);
        }
        compress(m, k ? 0.3 : -1);
        roundtrip(m, k ? "ref-gpt2" : "ref-llama");
        pare_model_free(m);
    }
}

void suite_export(void);
void suite_export(void)
{
    RUN(test_fixture_llama_uniform);
    RUN(test_fixture_gpt2_uniform);
    RUN(test_fixture_nonuniform);
    RUN(test_llama2c_source);
    RUN(test_hf_names_and_layout);
    RUN(test_dtypes);
    RUN(test_destination_and_cleanup);
    RUN(test_corrupt_manifest);
    RUN(test_unsupported_states);
    RUN(test_factor_dtype);
    RUN(test_reexport);
    RUN(test_shared_models);
}

/* Streamed models (issue 17 §1-2): the same results as in memory, to the bit — perplexity (layer-major
 * and batch-major), compressed and exported weights, spectra — with memory set by one block, and the
 * refusals of what a streamed model cannot do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "core/calib.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "core/memcheck.h"
#include "core/method.h"
#include "core/model.h"
#include "core/spectrum.h"
#include "fixture.h"
#include "harness.h"

#define FAMILIES "tests/data/families/"

/* Loads dir in the given stream mode (the setting is restored to auto). */
static pare_model *load_mode(const char *dir, pare_stream_mode mode)
{
    pare_model *m = NULL;
    pare_error err = {0};
    pare_set_stream_mode(mode);
    pare_status rc = pare_model_load(dir, NULL, &m, &err);
    pare_set_stream_mode(PARE_STREAM_AUTO);
    CHECKF(rc == PARE_OK, "%s (%s): %s", dir, mode == PARE_STREAM_ON ? "streamed" : "in memory", err.msg);
    CHECKF(!m || pare_model_streamed(m) == (mode == PARE_STREAM_ON), "%s: streamed %d", dir,
           m ? pare_model_streamed(m) : -1);
    return m;
}

/* The models the tests run on: the two reference models when ../shared is there, and the fixtures whose
 * storage (BF16, F16, fused Phi-3, Gemma-3's extra norms) differs. */
static int model_dirs(const char *dirs[8])
{
    int n = 0;
    if (harness_shared()) {
        static char llama[512], gpt2[512];
        snprintf(llama, sizeof llama, "%s", shared_path("models/ref-llama-12m"));
        snprintf(gpt2, sizeof gpt2, "%s", shared_path("models/ref-gpt2-6m"));
        if (pare_is_dir(llama))
            dirs[n++] = llama;
        if (pare_is_dir(gpt2))
            dirs[n++] = gpt2;
    }
    static const char *const fx[] = {FAMILIES "qwen2", FAMILIES "phi3", FAMILIES "gemma3", FAMILIES "mistral"};
    for (int i = 0; i < 4; i++)
        if (pare_is_dir(fx[i]))
            dirs[n++] = fx[i];
    return n;
}

/* Token ids of a text for m: the fixture's eval.txt or wiki.test.raw, at most cap tokens. */
static int32_t *text_ids(const pare_model *m, const char *dir, size_t cap, size_t *n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/eval.txt", dir);
    const char *text = pare_file_exists(path) ? path : shared_path("data/text/wikitext-2/wiki.test.raw");
    int32_t *ids = NULL;
    pare_error err = {0};
    CHECKF(pare_model_tokenize_file(m, text, &ids, n, &err) == PARE_OK, "%s: %s", text, err.msg);
    if (*n > cap)
        *n = cap;
    return ids;
}

static double eval_nll(const pare_model *m, const int32_t *ids, size_t n, int *layer_major)
{
    pare_eval_opts o;
    pare_eval_defaults(&o);
    o.window = 32;
    o.batch = 3; /* windows in batches of unequal count: the last one is short */
    pare_eval_result r;
    pare_error err = {0};
    CHECKF(pare_eval_perplexity(m, ids, n, &o, NULL, &r, &err) == PARE_OK, "%s: %s", m->path, err.msg);
    *layer_major = r.layer_major;
    return r.nll;
}

/* In memory (batch-major) and streamed with a one-block cache (layer-major) give the same loss to the
 * bit, and layer-major converts each block once. */
static void test_streamed_eval_is_identical(void)
{
    const char *dirs[8];
    int nd = model_dirs(dirs);
    if (nd == 0)
        SKIP("skipped: neither ../shared nor the family fixtures are present");
    for (int d = 0; d < nd; d++) {
        pare_model *a = load_mode(dirs[d], PARE_STREAM_OFF), *b = load_mode(dirs[d], PARE_STREAM_ON);
        if (!a || !b) {
            pare_model_free(a);
            pare_model_free(b);
            continue;
        }
        size_t n = 0;
        int32_t *ids = text_ids(a, dirs[d], 32 * 7, &n);
        int lm_a = -1, lm_b = -1;
        double na = ids ? eval_nll(a, ids, n, &lm_a) : NAN, nb = ids ? eval_nll(b, ids, n, &lm_b) : NAN;
        CHECKF(na == nb && isfinite(na), "%s: loss %.17g in memory, %.17g streamed", dirs[d], na, nb);
        CHECKF(lm_a == 0 && lm_b == 1, "%s: layer-major %d in memory, %d streamed", dirs[d], lm_a, lm_b);
        CHECKF(pare_model_blocks_converted(b) == (size_t)b->cfg.n_layers, "%s: %zu block conversions for %d blocks",
               dirs[d], pare_model_blocks_converted(b), b->cfg.n_layers);
        free(ids);
        pare_model_free(a);
        pare_model_free(b);
    }
}

/* The whole file's bytes equal. */
static int same_file(const char *x, const char *y)
{
    size_t nx = 0, ny = 0;
    unsigned char *a = fixture_read(x, &nx), *b = fixture_read(y, &ny);
    int same = a && b && nx == ny && memcmp(a, b, nx) == 0;
    free(a);
    free(b);
    return same;
}

/* Compressing a streamed model (sequential LoRAP with channel pruning, one-shot whitened SVD, Wanda
 * masks) gives the same exported bytes, in both formats, as compressing it in memory. */
static void test_streamed_compression_is_identical(void)
{
    const char *dirs[8];
    int nd = model_dirs(dirs);
    if (nd == 0)
        SKIP("skipped: neither ../shared nor the family fixtures are present");
    static const char *const methods[] = {"lorap", "svdllm", "wanda"};
    for (int d = 0; d < nd; d++)
        for (int k = 0; k < 3; k++) {
            char out[2][3][64];
            size_t params[2] = {0, 0};
            for (int s = 0; s < 2; s++) {
                pare_model *m = load_mode(dirs[d], s ? PARE_STREAM_ON : PARE_STREAM_OFF);
                if (!m)
                    continue;
                pare_calib_opts co;
                pare_calib_defaults(&co);
                co.samples = 4;
                co.len = 32;
                size_t n = 0;
                int32_t *ids = text_ids(m, dirs[d], 4096, &n), *win = NULL;
                pare_error err = {0};
                pare_method_opts mo;
                pare_method_defaults(&mo);
                mo.ratio = 0.3;
                pare_export_opts eo;
                pare_export_defaults(&eo);
                pare_status rc = ids ? pare_calib_windows(ids, n, &co, &win, &err) : PARE_EINVAL;
                if (!rc)
                    rc = pare_method_compress(m, pare_method_find(methods[k]), &mo, win, &co, NULL, NULL, NULL, &err);
                if (!rc) {
                    /* streamed, the masks were put away with their blocks' weights (a 13B model's take 13
                     * GB) and the counts come from what was counted when they were */
                    pare_param_counts pc;
                    pare_model_param_counts(m, &pc);
                    params[s] = pc.total;
                    int masked = 0, held = 0;
                    for (int l = 0; l < m->cfg.n_layers; l++)
                        for (int q = 0; q < PARE_LIN_KINDS; q++) {
                            masked += m->blocks[l].lin[q].kind == PARE_LIN_MASKED;
                            held += m->blocks[l].lin[q].kind == PARE_LIN_MASKED && m->blocks[l].lin[q].mask != NULL;
                        }
                    CHECKF(k != 2 || masked > 0, "%s: wanda masked no block matrix", dirs[d]);
                    CHECKF(!s || held == 0, "%s %s: %d of %d masks stay in memory after streamed compression", dirs[d],
                           methods[k], held, masked);
                }
                /* hf-dense, pare, and pare with BF16 block matrices (rounded in place first, block by block) */
                for (int f = 0; f < 3 && !rc; f++) {
                    snprintf(out[s][f], sizeof out[s][f], "stream-%d-%d-%d-%d", d, k, s, f);
                    eo.format = f ? PARE_EXPORT_PARE : PARE_EXPORT_HF_DENSE;
                    eo.factor_dtype = f == 2 ? "BF16" : "F32";
                    if (f == 2)
                        rc = pare_export_round_block_weights(m, "BF16", &err);
                    if (!rc)
                        rc = pare_export(m, tmp_path(out[s][f]), &eo, NULL, NULL, &err);
                }
                CHECKF(rc == PARE_OK, "%s %s (%s): %s", dirs[d], methods[k], s ? "streamed" : "in memory", err.msg);
                free(ids);
                free(win);
                pare_model_free(m);
            }
            if (harness_failed_now())
                return;
            CHECKF(params[0] == params[1], "%s %s: %zu parameters in memory, %zu streamed", dirs[d], methods[k],
                   params[0], params[1]);
            for (int f = 0; f < 3; f++) {
                char x[600], y[600];
                snprintf(x, sizeof x, "%s/model.safetensors", tmp_path(out[0][f]));
                snprintf(y, sizeof y, "%s/model.safetensors", tmp_path(out[1][f]));
                CHECKF(same_file(x, y), "%s %s: the %s export differs when compressed streamed", dirs[d], methods[k],
                       f == 2 ? "pare BF16"
                       : f    ? "pare"
                              : "hf-dense");
            }
        }
}

/* Plain spectra of every matrix, block by block when streamed, are the same values. */
static void test_streamed_spectra_are_identical(void)
{
    const char *dirs[8];
    int nd = model_dirs(dirs);
    if (nd == 0)
        SKIP("skipped: neither ../shared nor the family fixtures are present");
    const char *dir = dirs[nd - 1];
    pare_model *a = load_mode(dir, PARE_STREAM_OFF), *b = load_mode(dir, PARE_STREAM_ON);
    pare_model_spectra *sa = NULL, *sb = NULL;
    pare_error err = {0};
    CHECKF(a && b && pare_model_spectra_compute(a, NULL, 0, NULL, &sa, &err) == PARE_OK &&
               pare_model_spectra_compute(b, NULL, 0, NULL, &sb, &err) == PARE_OK,
           "%s: %s", dir, err.msg);
    CHECK(!sa || !sb || sa->count == sb->count);
    for (int i = 0; sa && sb && i < sa->count && i < sb->count; i++) {
        int r = sa->mats[i].m < sa->mats[i].n ? sa->mats[i].m : sa->mats[i].n;
        CHECKF(memcmp(sa->mats[i].s, sb->mats[i].s, (size_t)r * sizeof(double)) == 0, "%s: spectrum of %s differs", dir,
               sa->mats[i].name);
    }
    pare_model_spectra_free(sa);
    pare_model_spectra_free(sb);
    pare_model_free(a);
    pare_model_free(b);
}

/* Peak memory of evaluating a deep model streamed is set by one block: it stays below the in-memory
 * run's by at least half the blocks' fp32 weights (measured in children; the checkpoint is written by
 * pare init, BF16, with a fixture's tokenizer). */
static void test_streamed_memory_is_one_block(void)
{
    if (!pare_is_dir(FAMILIES "qwen2"))
        SKIP("skipped: " FAMILIES "qwen2 not present");
    json_t *c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "architectures", "LlamaForCausalLM",
                          "model_type", "llama", "hidden_size", 384, "intermediate_size", 1024, "num_hidden_layers", 24,
                          "num_attention_heads", 6, "num_key_value_heads", 6, "vocab_size", 272, "tie_word_embeddings",
                          1);
    char cfg[600], dir[600]; /* tmp_path's buffer is reused by the calls below */
    snprintf(cfg, sizeof cfg, "%s", tmp_path("deep.json"));
    snprintf(dir, sizeof dir, "%s", tmp_path("deep"));
    CHECK(c && json_dump_file(c, cfg, 0) == 0);
    json_decref(c);
    const char *init[] = {"init", "--config", cfg, "--out", dir, "--tokenizer", FAMILIES "qwen2/tokenizer.json", NULL};
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, init);
    CHECKF(rc == 0, "pare init: exit %d %s", rc, e ? e : "");
    free(o);
    free(e);
    if (rc)
        return;
    size_t blocks = (size_t)24 * (4 * 384 * 384 + 3 * 384 * 1024) * sizeof(float);
    int st_mem = -1, st_str = -1;
    const char *mem[] = {"eval",     "--model", dir,        "--data", FAMILIES "qwen2/eval.txt",
                         "--window", "32",      "--stream", "off",    NULL};
    const char *str[] = {"eval",     "--model", dir,        "--data", FAMILIES "qwen2/eval.txt",
                         "--window", "32",      "--stream", "on",     NULL};
    long k_mem = pare_peak_kib(mem, &st_mem), k_str = pare_peak_kib(str, &st_str), k_eval = k_str;
    CHECKF(WIFEXITED(st_mem) && WEXITSTATUS(st_mem) == 0 && WIFEXITED(st_str) && WEXITSTATUS(st_str) == 0,
           "pare eval exits %d / %d", st_mem, st_str);
    printf("  peak RSS: %ld KiB in memory, %ld KiB streamed (block weights %zu KiB in fp32)\n", k_mem, k_str,
           blocks / 1024);
    /* under the sanitizers (make check sets PARE_TEST_QUICK) the shadow memory and quarantine set the
     * peak, so only the outputs are compared there */
    int rss_means_something = getenv("PARE_TEST_QUICK") == NULL;
    CHECKF(!rss_means_something || (k_str > 0 && k_str + (long)(blocks / 2048) < k_mem),
           "streamed peak %ld KiB is not below the in-memory %ld KiB by half the blocks' %zu KiB", k_str, k_mem,
           blocks / 1024);
    /* compressed (LoRAP at 0.3, sequential), evaluated and exported: the compressed blocks are put away
     * as they are done, so the streamed run stays below the in-memory one by as much */
    const char *cmem[] = {"compress",
                          "--model",
                          dir,
                          "--calib",
                          FAMILIES "qwen2/eval.txt",
                          "--calib-samples",
                          "4",
                          "--calib-len",
                          "32",
                          "--method",
                          "lorap",
                          "--ratio",
                          "0.3",
                          "--eval",
                          FAMILIES "qwen2/eval.txt",
                          "--window",
                          "32",
                          "--out",
                          tmp_path("deep-mem"),
                          "--stream",
                          "off",
                          NULL};
    const char *cstr[] = {"compress",
                          "--model",
                          dir,
                          "--calib",
                          FAMILIES "qwen2/eval.txt",
                          "--calib-samples",
                          "4",
                          "--calib-len",
                          "32",
                          "--method",
                          "lorap",
                          "--ratio",
                          "0.3",
                          "--eval",
                          FAMILIES "qwen2/eval.txt",
                          "--window",
                          "32",
                          "--out",
                          tmp_path("deep-str"),
                          "--stream",
                          "on",
                          NULL};
    k_mem = pare_peak_kib(cmem, &st_mem);
    k_str = pare_peak_kib(cstr, &st_str);
    CHECKF(WIFEXITED(st_mem) && WEXITSTATUS(st_mem) == 0 && WIFEXITED(st_str) && WEXITSTATUS(st_str) == 0,
           "pare compress exits %d / %d: %s", st_mem, st_str, tmp_path("rss.err"));
    printf("  peak RSS of lorap 0.3 + eval + export: %ld KiB in memory, %ld KiB streamed\n", k_mem, k_str);
    CHECKF(!rss_means_something || (k_str > 0 && k_str + (long)(blocks / 2048) < k_mem),
           "streamed compression peak %ld KiB is not below the in-memory %ld KiB by half the blocks' %zu KiB", k_str,
           k_mem, blocks / 1024);
    char x[600], y[600];
    snprintf(x, sizeof x, "%s/model.safetensors", tmp_path("deep-mem"));
    snprintf(y, sizeof y, "%s/model.safetensors", tmp_path("deep-str"));
    CHECKF(same_file(x, y), "the streamed compression's export differs from the in-memory one");
    /* masks (magnitude at 0.5, every block matrix): a byte per weight in memory, a quarter of the blocks'
     * fp32 bytes, put away with their blocks, so the streamed run stays within half of that of the
     * streamed evaluation */
    const char *cmag[] = {"compress",
                          "--model",
                          dir,
                          "--method",
                          "magnitude",
                          "--ratio",
                          "0.5",
                          "--eval",
                          FAMILIES "qwen2/eval.txt",
                          "--window",
                          "32",
                          "--out",
                          tmp_path("deep-mag"),
                          "--format",
                          "pare",
                          "--stream",
                          "on",
                          NULL};
    int st_mag = -1;
    long k_mag = pare_peak_kib(cmag, &st_mag);
    CHECKF(WIFEXITED(st_mag) && WEXITSTATUS(st_mag) == 0, "pare compress --method magnitude exits %d", st_mag);
    size_t masks = blocks / sizeof(float);
    printf("  peak RSS of magnitude 0.5 + eval + export streamed: %ld KiB (masks %zu KiB as bytes)\n", k_mag,
           masks / 1024);
    CHECKF(!rss_means_something || (k_mag > 0 && k_mag < k_eval + (long)(masks / 2048)),
           "streamed magnitude peak %ld KiB is not within half the masks' %zu KiB of the streamed eval's %ld KiB",
           k_mag, masks / 1024, k_eval);
}

/* What a streamed model cannot do is refused naming why; a model that does not fit even streamed is
 * refused before work with the figures; a bad --stream value names the option. */
static void test_streamed_refusals(void)
{
    if (!pare_is_dir(FAMILIES "qwen2"))
        SKIP("skipped: " FAMILIES "qwen2 not present");
    const char *const train[] = {"finetune",
                                 "--model",
                                 FAMILIES "qwen2",
                                 "--data",
                                 FAMILIES "qwen2/eval.txt",
                                 "--steps",
                                 "1",
                                 "--seq",
                                 "16",
                                 "--out",
                                 tmp_path("ft"),
                                 "--stream",
                                 "on",
                                 NULL};
    const char *const needles_train[] = {"streamed", "--memory-limit", NULL};
    expect_pare_error(train, needles_train, 0);
    const char *const tiny[] = {
        "eval", "--model", FAMILIES "qwen2", "--data", FAMILIES "qwen2/eval.txt", "--memory-limit", "64K", NULL};
    const char *const needles_tiny[] = {"too large even streamed", "one decoder block", "--memory-limit", NULL};
    expect_pare_error(tiny, needles_tiny, 1);
    const char *const bad[] = {"eval", "--stream", "maybe", "--model", FAMILIES "qwen2", NULL};
    const char *const needles_bad[] = {"--stream", "maybe", NULL};
    expect_pare_error(bad, needles_bad, 1);
}

/* A truncated shard of a sharded checkpoint is named at load, streamed or not: its tensors are
 * checked against the file's length before any block is mapped. */
static void test_truncated_shard_is_named(void)
{
    const char *src = FAMILIES "llama3";
    if (!pare_is_dir(src))
        SKIP("skipped: %s not present", src);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("cut"));
    CHECK(mkdir(dir, 0777) == 0);
    DIR *d = opendir(src);
    struct dirent *e;
    pare_error err = {0};
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char from[900], to[900];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dir, e->d_name);
        CHECKF(pare_copy_file(from, to, &err) == PARE_OK, "%s", err.msg);
    }
    if (d)
        closedir(d);
    /* shard 7 of 23 holds a block matrix (model.layers.0.mlp.up_proj.weight) */
    char shard[900];
    snprintf(shard, sizeof shard, "%s/model-00007-of-00023.safetensors", dir);
    struct stat sb;
    CHECK(stat(shard, &sb) == 0 && sb.st_size > 64 && truncate(shard, sb.st_size - 64) == 0);
    static const char *const modes[] = {"on", "off"};
    for (int k = 0; k < 2; k++) {
        const char *const args[] = {"eval",     "--model", dir, "--data", FAMILIES "llama3/eval.txt",
                                    "--stream", modes[k],  NULL};
        const char *const needles[] = {"model-00007-of-00023.safetensors", NULL};
        expect_pare_error(args, needles, 0);
    }
}

void suite_stream(void);
void suite_stream(void)
{
    RUN(test_streamed_eval_is_identical);
    RUN(test_streamed_compression_is_identical);
    RUN(test_streamed_spectra_are_identical);
    RUN(test_streamed_memory_is_one_block);
    RUN(test_streamed_refusals);
    RUN(test_truncated_shard_is_named);
}

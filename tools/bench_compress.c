/* bench_compress: pare's side of the compression benchmarks in tools/bench.sh (`make bench`).
 * tools/bench_torch_compress.py (modes spectra, svd, lorap) is the independent PyTorch side.
 * Built by the Makefile's bench rule against the core objects in build/opt/src/core.
 *
 *   bench_compress spectra MODEL [ROUNDS] [VALUES_OUT]
 *       full spectra (every singular value) of every decoder-block matrix with
 *       pare_model_spectra_compute (defaults: double Gram + dsyevd, matrices in parallel over
 *       pare_threads()); best of ROUNDS; VALUES_OUT gets the values (float64, matrices in order).
 *   bench_compress svd MODEL K [ROUNDS] [ITERS_OUT]
 *       pare_svd_topk randomized (default oversampling / adaptive power iterations) against exact
 *       (opts.exact = 1), factors requested in both, top K values of every block matrix; matrices
 *       run in parallel over pare_threads() as pare_model_spectra_compute does. Max relative error
 *       of the randomized top-K values against the exact ones. ITERS_OUT gets "l q" per matrix
 *       (columns and power iterations used) so that torch.svd_lowrank can run the same ones.
 *   bench_compress lorap MODEL CALIB RATIO [ROUNDS] [IDS_OUT]
 *       LoRAP at RATIO as `pare compress --method lorap` does it (pare_allocate_lorap +
 *       pare_apply_plan: sequential calibration on 128 x 256 windows, activation-weighted SVD,
 *       LoRAP channel pruning), timed in process without model loading; the calibration text's
 *       tokenization is timed separately. A fresh model per round (loading not timed); best of
 *       ROUNDS. A last, instrumented round (not in the headline time) splits the time into
 *       statistics forward, factorization, channel pruning and propagation by running the same
 *       core calls from its own block hook. IDS_OUT gets the calibration windows (int32).
 *   bench_compress auto MODEL IDS [ROUNDS [SENSITIVITY [PROBE_SAMPLES]]]
 *       method auto's sensitivity pass (pare_auto_analyze: one-shot calibration with Gram matrices,
 *       whitened spectra, channel curves, probes; the default sensitivity and probe windows unless
 *       given) on the calibration windows IDS (int32, 128 x 256, as the lorap mode writes them), best
 *       of ROUNDS, its time per progress stage ("split"), and the mean time of one budget solve
 *       (pare_auto_solve) over s = 0.10 .. 0.60: the part the workbench reruns as the budget changes.
 *   bench_compress speed MODEL IDS TOKENS RATIO [ROUNDS]
 *       tokens/s of pare_eval_perplexity (window 256, batch 8) over the first TOKENS ids (int32
 *       file) dense and compressed in memory at RATIO with the LoRAP plan (plain SVD, magnitude
 *       channel scores: speed depends only on the shapes), alternating chunk by chunk (4 batches)
 *       so that the machine's noise falls on both; best round of each kept. Also pare_forward alone
 *       (interleaved batch by batch) and a split of the forward into block linears, the rest of the
 *       blocks and the head. The FLOP-predicted speed-up is pare_model_flop_per_token before / after.
 *   bench_compress pipeline MODEL CALIB EVAL_TEXT RATIO SAMPLES TOKENS OUT_DIR [ROUNDS]
 *       the LoRAP pipeline of tools/bench_scale.sh (issue 17 §4): SAMPLES x 256 calibration windows of
 *       CALIB (written to OUT_DIR/calib_ids.bin, int32) and the first TOKENS ids of EVAL_TEXT
 *       (OUT_DIR/eval_ids.bin), both tokenized untimed; LoRAP at RATIO timed as in the lorap mode
 *       (one round); then the evaluation of the compressed model and of the dense one (window 256,
 *       batch 8) over those ids, timed as in the speed mode (ROUNDS, default 1), with the perplexity
 *       of each and pare_model_flop_per_token before / after. PARE_THREADS sets the threads.
 *
 * Each mode prints one JSON object on stdout; errors go to stderr with exit status 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/environment.h"
#include "core/allocate.h"
#include "core/auto_alloc.h"
#include "core/calib.h"
#include "core/method.h"
#include "core/compress.h"
#include "core/eval.h"
#include "core/factorize.h"
#include "core/matmul.h"
#include "core/fileio.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/parallel.h"
#include "core/prune.h"
#include "core/spectrum.h"
#include "core/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const pare_error *err)
{
    fprintf(stderr, "bench_compress: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static pare_model *load(const char *path)
{
    pare_model *m = NULL;
    pare_error err = {0};
    if (pare_model_load(path, NULL, &m, &err))
        die(path, &err);
    return m;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_compress: out of memory\n");
        exit(1);
    }
    return p;
}

static int block_linears(pare_model *m, pare_linear ***out)
{
    int n = pare_model_linears(m, NULL, 0);
    *out = xmalloc((size_t)n * sizeof **out);
    pare_model_linears(m, *out, n);
    return n;
}

/* ---------------------------------------------------------------------------------------------- */

static int mode_spectra(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: bench_compress spectra MODEL [ROUNDS] [VALUES_OUT]\n");
        return 2;
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    rounds = rounds < 1 ? 1 : rounds;
    pare_model *m = load(argv[0]);
    pare_error err = {0};
    double best = 1e30;
    int count = 0;
    size_t nvals = 0;
    for (int r = 0; r < rounds; r++) {
        pare_model_spectra *sp = NULL;
        double t0 = now_s();
        if (pare_model_spectra_compute(m, NULL, 0, NULL, &sp, &err))
            die("spectra", &err);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
        count = sp->count;
        nvals = 0;
        for (int i = 0; i < sp->count; i++)
            nvals += (size_t)sp->mats[i].stats.r;
        if (r == rounds - 1 && argc > 2) {
            FILE *f = fopen(argv[2], "wb");
            if (!f) {
                perror(argv[2]);
                return 1;
            }
            for (int i = 0; i < sp->count; i++)
                fwrite(sp->mats[i].s, sizeof(double), (size_t)sp->mats[i].stats.r, f);
            fclose(f);
        }
        pare_model_spectra_free(sp);
    }
    printf("{\"seconds\": %.6f, \"matrices\": %d, \"values\": %zu, \"threads\": %d, \"method\": \"gram\"}\n", best,
           count, nvals, pare_threads());
    pare_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

static int mode_svd(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_compress svd MODEL K [ROUNDS] [ITERS_OUT]\n");
        return 2;
    }
    int K = atoi(argv[1]);
    int rounds = argc > 2 ? atoi(argv[2]) : 2;
    rounds = rounds < 1 ? 1 : rounds;
    pare_model *m = load(argv[0]);
    pare_linear **lin;
    int n = block_linears(m, &lin);
    int nt = pare_threads();
    pare_svd *rs = calloc((size_t)n, sizeof *rs), *ex = calloc((size_t)n, sizeof *ex);
    pare_error *errs = calloc((size_t)n, sizeof *errs);
    double best_r = 1e30, best_e = 1e30;
    pare_svd_opts ro = pare_svd_defaults(), eo = pare_svd_defaults();
    ro.want_u = ro.want_vt = 1;
    eo.want_u = eo.want_vt = 1;
    eo.exact = 1;
    for (int r = 0; r < rounds; r++) { /* exact and randomized alternate; the best round of each */
        for (int which = 0; which < 2; which++) {
            pare_svd *out = which ? ex : rs;
            const pare_svd_opts *o = which ? &eo : &ro;
            for (int i = 0; i < n; i++)
                pare_svd_free(&out[i]);
            int bad = 0;
            double t0 = now_s();
#pragma omp parallel for num_threads(nt) schedule(dynamic) reduction(| : bad)
            for (int i = 0; i < n; i++)
                bad |= pare_svd_topk(lin[i]->name, lin[i]->w, lin[i]->out, lin[i]->in, K, o, &out[i], &errs[i]) != 0;
            double dt = now_s() - t0;
            if (bad)
                for (int i = 0; i < n; i++)
                    if (errs[i].code)
                        die("svd", &errs[i]);
            if (which)
                best_e = dt < best_e ? dt : best_e;
            else
                best_r = dt < best_r ? dt : best_r;
        }
    }
    double max_rel = 0;
    int qmin = 1 << 30, qmax = 0, lmin = 1 << 30, lmax = 0;
    long qsum = 0;
    FILE *f = argc > 3 ? fopen(argv[3], "w") : NULL;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < K; j++) {
            double d = fabs(rs[i].s[j] - ex[i].s[j]) / ex[i].s[j];
            max_rel = d > max_rel ? d : max_rel;
        }
        int l = K + rs[i].oversample, q = rs[i].power_iters;
        qmin = q < qmin ? q : qmin;
        qmax = q > qmax ? q : qmax;
        lmin = l < lmin ? l : lmin;
        lmax = l > lmax ? l : lmax;
        qsum += q;
        if (f)
            fprintf(f, "%d %d\n", l, q);
    }
    if (f)
        fclose(f);
    printf("{\"k\": %d, \"matrices\": %d, \"rand_seconds\": %.6f, \"exact_seconds\": %.6f, \"max_rel_err\": %.3e, "
           "\"l_min\": %d, \"l_max\": %d, \"q_min\": %d, \"q_max\": %d, \"q_mean\": %.2f, \"threads\": %d}\n",
           K, n, best_r, best_e, max_rel, lmin, lmax, qmin, qmax, (double)qsum / n, nt);
    for (int i = 0; i < n; i++) {
        pare_svd_free(&rs[i]);
        pare_svd_free(&ex[i]);
    }
    free(rs);
    free(ex);
    free(errs);
    free(lin);
    pare_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

/* The instrumented round: the same calls compress.c makes from its block hook, timed. */
typedef struct {
    const pare_plan *plan;
    double t_factor, t_prune, t_hook_end;
    double t_stats, t_prop, t_last;
    int factorized;
    double worst_rel_error;
} split_ctx;

static pare_status split_hook(void *user, pare_model *m, int layer, const pare_calib_stats *stats, pare_error *err)
{
    split_ctx *c = user;
    pare_block *b = &m->blocks[layer];
    const pare_input_stats *sites = stats->sites[layer];
    double t0 = now_s(), frac = 0;
    int channels = 0;
    for (int i = 0; i < c->plan->count; i++) {
        const pare_plan_item *it = &c->plan->items[i];
        int site = pare_linear_site(b, it->linear);
        if (site < 0)
            continue;
        if (it->action == PARE_PLAN_CHANNELS) {
            channels = 1;
            frac = it->channel_frac;
        } else if (it->action == PARE_PLAN_FACTOR) {
            pare_factor_opts fo;
            pare_factor_defaults(&fo);
            fo.weighting = PARE_WEIGHT_ACT;
            pare_factor_report fr;
            pare_status rc = pare_factorize_linear(it->linear, it->rank, &fo, &sites[site], &fr, err);
            if (rc)
                return rc;
            c->factorized++;
            c->worst_rel_error = fr.rel_error > c->worst_rel_error ? fr.rel_error : c->worst_rel_error;
        }
    }
    double t1 = now_s();
    if (channels) {
        pare_chan_opts co = {PARE_CHAN_LORAP, frac, 0.01};
        pare_status rc = pare_prune_ffn(b, sites, &co, NULL, err);
        if (rc)
            return rc;
    }
    double t2 = now_s();
    c->t_factor += t1 - t0;
    c->t_prune += t2 - t1;
    c->t_hook_end = t2;
    return PARE_OK;
}

/* Progress after every batch: statistics batches before a block's hook, propagation after. */
static int split_progress(void *user, const char *stage, double fraction, const char *detail)
{
    split_ctx *c = user;
    double t = now_s();
    if (c->t_last > 0 && detail) {
        if (strstr(detail, "propagating")) {
            double start = c->t_hook_end > c->t_last ? c->t_hook_end : c->t_last;
            c->t_prop += t - start;
        } else if (strstr(detail, "statistics")) {
            c->t_stats += t - c->t_last;
        }
    }
    c->t_last = t;
    (void)stage;
    (void)fraction;
    return 0;
}

/* ACT weighting, LoRAP channel score, keep-least 0.01: as `pare compress --method lorap`. */
static void lorap_how(pare_plan_how *how)
{
    pare_method_opts mopts;
    pare_method_defaults(&mopts);
    pare_method_how(pare_method_find("lorap"), &mopts, how);
}

/* Progress of a long step on stderr, at most one line per ten seconds, so that a run stopped by a time
 * limit still shows how far it got (stdout holds only the JSON result). */
static int progress_to_stderr(void *user, const char *stage, double fraction, const char *detail)
{
    static double last;
    double t = now_s();
    if (t - last >= 10 || fraction >= 1) {
        last = t;
        fprintf(stderr, "bench_compress: %s %.0f%% %s\n", stage, 100 * fraction, detail ? detail : "");
    }
    (void)user;
    return 0;
}

/* LoRAP at `ratio` on m in place, as `pare compress --method lorap` does it (sequential calibration on
 * the windows win [co->samples * co->len]); returns the seconds it took (model loading excluded). */
static double lorap_compress(pare_model *m, double ratio, const int32_t *win, const pare_calib_opts *co,
                             pare_apply_report *rep)
{
    pare_error err = {0};
    pare_apply_opts ao;
    pare_apply_defaults(&ao); /* sequential */
    pare_plan_how how;
    lorap_how(&how);
    pare_plan plan;
    double t0 = now_s();
    if (pare_allocate_lorap(m, ratio, 3.0, &how, &plan, &err) ||
        pare_apply_plan(m, &plan, win, co, &ao, &(pare_progress){progress_to_stderr, NULL}, rep, &err))
        die("lorap", &err);
    double dt = now_s() - t0;
    pare_plan_free(&plan);
    return dt;
}

/* The outcome of a compression as JSON members (malloc'd), for the cross-check with torch:
 * "ranks" (every block linear in pare_model_linears order; -1: not factorized) and "kept_channels"
 * (every block's kept FFN channels, in order). */
static char *plan_outcome_json(pare_model *m)
{
    pare_linear **lin;
    int n = block_linears(m, &lin);
    char *out = xmalloc((size_t)n * 12 + (size_t)m->cfg.n_layers * ((size_t)m->cfg.ffn_dim * 8 + 4) + 64);
    size_t o = (size_t)sprintf(out, "\"ranks\": [");
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(out + o, "%s%d", i ? ", " : "", lin[i]->kind == PARE_LIN_FACTORED ? lin[i]->rank : -1);
    free(lin);
    o += (size_t)sprintf(out + o, "], \"kept_channels\": [");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pare_linear *up = &m->blocks[l].up;
        o += (size_t)sprintf(out + o, "%s[", l ? ", " : "");
        for (int j = 0; j < up->out; j++)
            o += (size_t)sprintf(out + o, "%s%d", j ? "," : "", up->kept_out ? up->kept_out[j] : j);
        out[o++] = ']';
    }
    sprintf(out + o, "]");
    return out;
}

static int mode_lorap(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_compress lorap MODEL CALIB RATIO [ROUNDS] [IDS_OUT]\n");
        return 2;
    }
    const char *model = argv[0], *calib = argv[1];
    double ratio = atof(argv[2]);
    int rounds = argc > 3 ? atoi(argv[3]) : 1;
    rounds = rounds < 1 ? 1 : rounds;
    pare_error err = {0};
    pare_model *m = load(model);
    if (!m->tok) {
        fprintf(stderr, "bench_compress: %s has no tokenizer\n", model);
        return 1;
    }
    /* tokenization of the calibration text, timed on its own */
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL, *win = NULL;
    if (pare_read_file(calib, &text, &len, &err))
        die(calib, &err);
    double t0 = now_s();
    if (pare_tokenizer_encode(m->tok, text, len, 0, &ids, &n_ids, &err))
        die(calib, &err);
    double t_tok = now_s() - t0;
    free(text);
    pare_calib_opts co;
    pare_calib_defaults(&co);
    t0 = now_s();
    if (pare_calib_windows(ids, n_ids, &co, &win, &err))
        die(calib, &err);
    double t_win = now_s() - t0;
    if (argc > 4) {
        FILE *f = fopen(argv[4], "wb");
        if (!f || fwrite(win, sizeof *win, (size_t)co.samples * co.len, f) != (size_t)co.samples * co.len) {
            perror(argv[4]);
            return 1;
        }
        fclose(f);
    }
    pare_plan_how how;
    lorap_how(&how);
    double best = 1e30;
    pare_apply_report rep = {0};
    for (int r = 0; r < rounds; r++) {
        if (r > 0) {
            pare_model_free(m);
            m = load(model);
        }
        double dt = lorap_compress(m, ratio, win, &co, &rep);
        best = dt < best ? dt : best;
    }
    /* the plan of the last headline round, for the cross-check with torch */
    char *plan_json = plan_outcome_json(m);
    /* instrumented round: where the time goes */
    pare_model_free(m);
    m = load(model);
    pare_plan plan;
    split_ctx sc = {0};
    pare_calib_stats *st = NULL;
    pare_progress pp = {split_progress, &sc};
    if (pare_allocate_lorap(m, ratio, 3.0, &how, &plan, &err))
        die("lorap", &err);
    sc.plan = &plan;
    t0 = now_s();
    sc.t_last = t0;
    if (pare_calibrate(m, win, &co, split_hook, &sc, &pp, &st, &err))
        die("lorap", &err);
    double t_split = now_s() - t0;
    pare_calib_free(st);
    pare_plan_free(&plan);

    printf("{\"ratio\": %.4f, \"samples\": %d, \"len\": %d, \"seconds\": %.6f, \"tokenize_seconds\": %.6f, "
           "\"windows_seconds\": %.6f, \"calib_tokens\": %zu, \"params_before\": %zu, \"params_after\": %zu, "
           "\"factorized\": %d, \"channel_blocks\": %d, \"worst_rel_error\": %.6f, \"split\": {\"total\": %.6f, "
           "\"stats_forward\": %.6f, \"factorize\": %.6f, \"prune\": %.6f, \"propagate\": %.6f}, \"threads\": %d, "
           "%s}\n",
           ratio, co.samples, co.len, best, t_tok, t_win, n_ids, rep.params_before, rep.params_after, rep.factorized,
           rep.channel_blocks, rep.worst_rel_error, t_split, sc.t_stats, sc.t_factor, sc.t_prune, sc.t_prop,
           pare_threads(), plan_json);
    free(plan_json);
    free(ids);
    free(win);
    pare_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

static int32_t *read_ids(const char *path, size_t limit, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    size_t total = (size_t)ftell(f) / sizeof(int32_t);
    fseek(f, 0, SEEK_SET);
    *n = limit && limit < total ? limit : total;
    int32_t *ids = xmalloc(*n * sizeof *ids);
    if (fread(ids, sizeof *ids, *n, f) != *n) {
        perror(path);
        exit(1);
    }
    fclose(f);
    return ids;
}

/* Where a forward's time goes, over the first `batches` batches: whole blocks, the block linears
 * alone (re-run on the block's own inputs right after it), and the head (final norm + LM head). */
typedef struct {
    double blocks, linears, head;
    double lin_flop, tokens;
} split_t;

static void forward_split(const pare_model *m, const int32_t *ids, size_t n, int W, int B, int batches, split_t *sp)
{
    pare_error err = {0};
    pare_acts *a = NULL;
    if (pare_acts_alloc(m, B, W, 0, &a, &err))
        die("acts", &err);
    const pare_config *c = &m->cfg;
    size_t N = (size_t)B * W;
    size_t wide = (size_t)(c->ffn_dim > c->dim ? c->ffn_dim : c->dim);
    wide = wide > (size_t)c->n_heads * c->head_dim ? wide : (size_t)c->n_heads * c->head_dim;
    float *y = xmalloc(N * wide * sizeof *y), *scr = xmalloc(N * wide * sizeof *scr);
    size_t nwin = n / (size_t)W;
    memset(sp, 0, sizeof *sp);
    for (size_t w0 = 0; w0 < nwin && batches-- > 0; w0 += (size_t)B) {
        int nb = (int)(nwin - w0 < (size_t)B ? nwin - w0 : (size_t)B);
        int rows = nb * W;
        if (pare_embed_forward(m, a, ids + w0 * W, nb, W, &err))
            die("forward", &err);
        const float *x = a->emb;
        for (int l = 0; l < c->n_layers; l++) {
            double t0 = now_s();
            x = pare_block_forward(m, l, a, x, nb, W);
            double t1 = now_s();
            const pare_block *b = &m->blocks[l];
            const pare_layer_acts *la = pare_acts_layer(a, l);
            const float *site_in[PARE_IN_COUNT] = {
                [PARE_IN_ATTN] = la->ln1, [PARE_IN_O] = la->atty, [PARE_IN_MLP] = la->ln2, [PARE_IN_DOWN] = la->hmid};
            for (int k = 0; k < PARE_LIN_KINDS; k++)
                if (b->lin[k].out) {
                    pare_linear_forward(&b->lin[k], site_in[pare_lin_kinds[k].input], rows, y, scr);
                    sp->lin_flop += 2.0 * (double)pare_linear_macs(&b->lin[k]) * rows;
                }
            sp->blocks += t1 - t0;
            sp->linears += now_s() - t1;
        }
        double t0 = now_s();
        pare_head_forward(m, a, x, nb, W, PARE_LOGITS_ALL);
        sp->head += now_s() - t0;
        sp->tokens += rows;
    }
    free(y);
    free(scr);
    pare_acts_free(a);
}

/* The perplexity evaluation (what `pare eval` runs) of a dense model and a compressed one over the
 * same ids, timed: */
typedef struct {
    double dense_s, comp_s;     /* the best round's evaluation time of each */
    double ppl_dense, ppl_comp; /* over every full window of the ids */
    size_t windows;
} eval_pair;

/* In chunks of 4 batches of windows, dense and compressed alternating chunk by chunk (the order
 * alternating too) so that the machine's noise falls on both alike; the best round total of each is
 * kept, after a warm-up batch each. Chunks hold whole windows, so the windows scored are those of one
 * evaluation over all the tokens. */
static void eval_alternating(const pare_model *md, const pare_model *mc, const int32_t *ids, size_t n,
                             const pare_eval_opts *eo, int rounds, eval_pair *out)
{
    /* Each chunk's pare_eval_perplexity allocates its activations afresh; keep freed memory in the
     * heap so that chunks reuse it instead of page-faulting ~100 MiB each time, as one `pare eval`
     * over all the tokens would (one allocation, amortized). */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    pare_error err = {0};
    const size_t W = (size_t)eo->window, whole = n / W * W;
    const size_t chunk = (size_t)4 * (size_t)eo->batch * W, nchunks = (whole + chunk - 1) / chunk;
    pare_eval_result res;
    size_t warm = whole < (size_t)eo->batch * W ? whole : (size_t)eo->batch * W;
    if (pare_eval_perplexity(md, ids, warm, eo, NULL, &res, &err) ||
        pare_eval_perplexity(mc, ids, warm, eo, NULL, &res, &err))
        die("eval", &err);
    double nll_d = 0, nll_c = 0;
    size_t pred_d = 0, pred_c = 0;
    out->dense_s = out->comp_s = 1e30;
    for (int r = 0; r < rounds; r++) {
        double td = 0, tc = 0;
        nll_d = nll_c = 0;
        pred_d = pred_c = out->windows = 0;
        for (size_t ci = 0; ci < nchunks; ci++) {
            size_t off = ci * chunk, len = whole - off < chunk ? whole - off : chunk;
            for (int k = 0; k < 2; k++) {
                int which = (int)((k + (size_t)r + ci) & 1);
                double t0 = now_s();
                if (pare_eval_perplexity(which ? mc : md, ids + off, len, eo, NULL, &res, &err))
                    die("eval", &err);
                double dt = now_s() - t0;
                if (which) {
                    tc += dt;
                    nll_c += res.nll;
                    pred_c += res.plan.predicted;
                } else {
                    td += dt;
                    nll_d += res.nll;
                    pred_d += res.plan.predicted;
                    out->windows += res.plan.windows;
                }
            }
            progress_to_stderr(NULL, "eval", (double)(ci + 1) / (double)nchunks, "");
        }
        out->dense_s = td < out->dense_s ? td : out->dense_s;
        out->comp_s = tc < out->comp_s ? tc : out->comp_s;
    }
    out->ppl_dense = exp(nll_d / (double)pred_d);
    out->ppl_comp = exp(nll_c / (double)pred_c);
}

static int mode_speed(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_compress speed MODEL IDS TOKENS RATIO [ROUNDS]\n");
        return 2;
    }
    const char *model = argv[0];
    size_t n = 0;
    int32_t *ids = read_ids(argv[1], (size_t)atol(argv[2]), &n);
    double ratio = atof(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 2;
    rounds = rounds < 1 ? 1 : rounds;
    pare_error err = {0};
    pare_model *md = load(model), *mc = load(model);
    pare_plan plan;
    pare_apply_opts ao;
    pare_apply_defaults(&ao);
    pare_plan_how how; /* plain SVD, magnitude channel score, keep-least 0.01 */
    pare_method_opts mopts;
    pare_method_defaults(&mopts);
    pare_method_how(pare_method_find("lorap-magnitude"), &mopts, &how);
    pare_apply_report rep;
    double t0 = now_s();
    if (pare_allocate_lorap(mc, ratio, 3.0, &how, &plan, &err) ||
        pare_apply_plan(mc, &plan, NULL, NULL, &ao, NULL, &rep, &err))
        die("compress", &err);
    double t_compress = now_s() - t0;
    pare_plan_free(&plan);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = 256;
    eo.batch = 8;
    const int W = eo.window, B = eo.batch;
    double fd = pare_model_flop_per_token(md, W), fc = pare_model_flop_per_token(mc, W);
    pare_acts *ad = NULL, *ac = NULL;
    if (pare_acts_alloc(md, B, W, 0, &ad, &err) || pare_acts_alloc(mc, B, W, 0, &ac, &err))
        die("acts", &err);
    /* warm-up of the forward-only activations: one batch each */
    if (pare_forward(md, ad, ids, B, W, PARE_LOGITS_ALL, &err) || pare_forward(mc, ac, ids, B, W, PARE_LOGITS_ALL, &err))
        die("forward", &err);
    eval_pair ev;
    eval_alternating(md, mc, ids, n, &eo, rounds, &ev);
    /* forward only (logits, no log-softmax), dense and compressed interleaved batch by batch so that
     * the machine's noise falls on both alike */
    size_t nwin = n / (size_t)W;
    double fwd_d = 0, fwd_c = 0;
    for (size_t w0 = 0; w0 < nwin; w0 += (size_t)B) {
        int nb = (int)(nwin - w0 < (size_t)B ? nwin - w0 : (size_t)B);
        for (int k = 0; k < 2; k++) {
            int which = (int)((k + w0 / (size_t)B) & 1);
            t0 = now_s();
            if (pare_forward(which ? mc : md, which ? ac : ad, ids + w0 * W, nb, W, PARE_LOGITS_ALL, &err))
                die("forward", &err);
            double dt = now_s() - t0;
            if (which)
                fwd_c += dt;
            else
                fwd_d += dt;
        }
    }
    pare_acts_free(ad);
    pare_acts_free(ac);
    split_t sd, sc;
    forward_split(md, ids, n, W, B, 4, &sd);
    forward_split(mc, ids, n, W, B, 4, &sc);
    double tokens = (double)ev.windows * W;
    printf("{\"ratio\": %.4f, \"tokens\": %.0f, \"windows\": %zu, \"dense_tok_s\": %.2f, \"comp_tok_s\": %.2f, "
           "\"dense_fwd_tok_s\": %.2f, \"comp_fwd_tok_s\": %.2f, \"flop_dense\": %.0f, \"flop_comp\": %.0f, "
           "\"ppl_dense\": %.6f, \"ppl_comp\": %.6f, \"params_before\": %zu, \"params_after\": %zu, "
           "\"compress_seconds\": %.4f, \"threads\": %d, ",
           ratio, tokens, ev.windows, tokens / ev.dense_s, tokens / ev.comp_s, tokens / fwd_d, tokens / fwd_c, fd, fc,
           ev.ppl_dense, ev.ppl_comp, rep.params_before, rep.params_after, t_compress, pare_threads());
    printf("\"split_tokens\": %.0f, \"split\": {\"dense\": {\"blocks\": %.6f, \"linears\": %.6f, \"head\": %.6f, "
           "\"linear_flop\": %.0f}, \"comp\": {\"blocks\": %.6f, \"linears\": %.6f, \"head\": %.6f, "
           "\"linear_flop\": %.0f}}}\n",
           sd.tokens, sd.blocks, sd.linears, sd.head, sd.lin_flop, sc.blocks, sc.linears, sc.head, sc.lin_flop);
    free(ids);
    pare_model_free(md);
    pare_model_free(mc);
    return 0;
}


/* Wall time per progress stage: each report charges the time since the previous one to its stage. */
typedef struct {
    char names[8][32];
    double seconds[8], last;
    int n;
} stage_clock;

static int stage_tick(void *user, const char *stage, double fraction, const char *detail)
{
    (void)fraction, (void)detail;
    stage_clock *c = user;
    double t = now_s();
    int i = 0;
    while (i < c->n && strcmp(c->names[i], stage))
        i++;
    if (i == c->n && c->n < 8)
        snprintf(c->names[c->n++], sizeof c->names[0], "%s", stage);
    if (i < c->n)
        c->seconds[i] += t - c->last;
    c->last = t;
    return 0;
}

static int mode_auto(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_compress auto MODEL IDS [ROUNDS [SENSITIVITY [PROBE_SAMPLES]]]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    rounds = rounds < 1 ? 1 : rounds;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    size_t n = 0;
    int32_t *win = read_ids(argv[1], (size_t)co.samples * co.len, &n);
    if (n != (size_t)co.samples * co.len) {
        fprintf(stderr, "bench_compress: %s holds %zu ids, not %d x %d\n", argv[1], n, co.samples, co.len);
        return 1;
    }
    pare_model *m = load(argv[0]);
    pare_auto_opts ao;
    pare_auto_defaults(&ao);
    for (int i = 0; argc > 3 && PARE_AUTO_SENSITIVITY_NAMES[i]; i++)
        if (!strcmp(argv[3], PARE_AUTO_SENSITIVITY_NAMES[i]))
            ao.sensitivity = (pare_auto_sensitivity)i;
    if (argc > 4)
        ao.probe_samples = atoi(argv[4]);
    pare_error err = {0};
    pare_auto_analysis *an = NULL;
    double best = 1e30;
    stage_clock best_split = {0};
    for (int r = 0; r < rounds; r++) {
        pare_auto_analysis_free(an);
        double t0 = now_s();
        stage_clock split = {.last = t0};
        pare_progress progress = {stage_tick, &split};
        if (pare_auto_analyze(m, win, &co, &ao, &progress, &an, &err))
            die("auto", &err);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt, best_split = split;
    }
    int solves = 0;
    double t0 = now_s();
    for (double s = 0.10; s < 0.605; s += 0.01, solves++) {
        pare_plan plan;
        if (pare_auto_solve(m, an, s, &plan, &err))
            die("auto solve", &err);
        pare_plan_free(&plan);
    }
    double solve_ms = 1e3 * (now_s() - t0) / solves;
    printf("{\"seconds\": %.6f, \"solve_ms\": %.4f, \"solves\": %d, \"probe_evals\": %d, \"probe_tokens\": %zu, "
           "\"threads\": %d, \"sensitivity\": \"%s\", \"split\": {",
           best, solve_ms, solves, an->probe_evals, an->probe_tokens, pare_threads(),
           PARE_AUTO_SENSITIVITY_NAMES[ao.sensitivity]);
    for (int i = 0; i < best_split.n; i++)
        printf("%s\"%s\": %.6f", i ? ", " : "", best_split.names[i], best_split.seconds[i]);
    printf("}}\n");
    pare_auto_analysis_free(an);
    free(win);
    pare_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

static void write_ids(const char *path, const int32_t *ids, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(ids, sizeof *ids, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static int mode_pipeline(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: bench_compress pipeline MODEL CALIB EVAL_TEXT RATIO SAMPLES TOKENS OUT_DIR [ROUNDS]\n");
        return 2;
    }
    const char *model = argv[0], *calib = argv[1], *eval_text = argv[2], *out_dir = argv[6];
    double ratio = atof(argv[3]);
    size_t tokens = (size_t)atol(argv[5]);
    int rounds = argc > 7 ? atoi(argv[7]) : 1;
    rounds = rounds < 1 ? 1 : rounds;
    pare_error err = {0};
    pare_model *mc = load(model);
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = atoi(argv[4]);
    if (co.samples < 1) {
        fprintf(stderr, "bench_compress: SAMPLES must be a positive number of windows, not '%s'\n", argv[4]);
        return 2;
    }
    /* both texts tokenized with the model's tokenizer (not timed: torch starts from these ids) */
    int32_t *win = NULL, *ids = NULL;
    size_t calib_tokens = 0, n = 0;
    if (pare_calib_windows_file(mc, calib, &co, &win, &calib_tokens, &err) ||
        pare_model_tokenize_file(mc, eval_text, &ids, &n, &err))
        die("tokenize", &err);
    n = tokens && tokens < n ? tokens : n;
    char path[4096];
    snprintf(path, sizeof path, "%s/calib_ids.bin", out_dir);
    write_ids(path, win, (size_t)co.samples * co.len);
    snprintf(path, sizeof path, "%s/eval_ids.bin", out_dir);
    write_ids(path, ids, n);

    pare_apply_report rep = {0};
    double t_compress = lorap_compress(mc, ratio, win, &co, &rep);
    fprintf(stderr, "bench_compress: pipeline: LoRAP took %.1f s; evaluating dense and compressed\n", t_compress);
    pare_model *md = load(model);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = 256;
    eo.batch = 8;
    if (n < (size_t)eo.window) {
        fprintf(stderr, "bench_compress: %s gives %zu tokens, fewer than one window of %d\n", eval_text, n, eo.window);
        return 1;
    }
    eval_pair ev;
    eval_alternating(md, mc, ids, n, &eo, rounds, &ev);
    double evaluated = (double)ev.windows * eo.window;
    char *plan_json = plan_outcome_json(mc);
    printf("{\"ratio\": %.4f, \"samples\": %d, \"len\": %d, \"calib_tokens\": %zu, \"compress_seconds\": %.6f, "
           "\"params_before\": %zu, \"params_after\": %zu, \"worst_rel_error\": %.6f, \"window\": %d, \"batch\": %d, "
           "\"tokens\": %.0f, \"windows\": %zu, \"eval_dense_seconds\": %.6f, \"eval_comp_seconds\": %.6f, "
           "\"dense_tok_s\": %.2f, \"comp_tok_s\": %.2f, \"ppl_dense\": %.10g, \"ppl_comp\": %.10g, "
           "\"flop_dense\": %.0f, \"flop_comp\": %.0f, \"rounds\": %d, \"threads\": %d, \"matmul\": \"%s\", %s}\n",
           ratio, co.samples, co.len, calib_tokens, t_compress, rep.params_before, rep.params_after,
           rep.worst_rel_error, eo.window, eo.batch, evaluated, ev.windows, ev.dense_s, ev.comp_s,
           evaluated / ev.dense_s, evaluated / ev.comp_s, ev.ppl_dense, ev.ppl_comp,
           pare_model_flop_per_token(md, eo.window), pare_model_flop_per_token(mc, eo.window), rounds, pare_threads(),
           PARE_MATMUL_NAMES[pare_get_matmul()], plan_json);
    free(plan_json);
    free(win);
    free(ids);
    pare_model_free(md);
    pare_model_free(mc);
    return 0;
}

/* BF16 products against sgemm: C[M, N] = A[M, K] Wᵀ at the linear shapes of TinyLlama-1.1B and
 * LLaMA-7B (M = 2048 rows, a batch of 8 x 256), best of ROUNDS each, the kernel's packing included;
 * then MODEL's perplexity over IDS in both modes (alternating, best round each). One JSON object. */
static int mode_matmul(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_compress matmul MODEL IDS TOKENS [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 3;
    pare_error err = {0};
    if (!pare_matmul_bf16_supported()) {
        printf("{\"bf16_supported\": false}\n");
        return 0;
    }
    static const int shapes[][2] = {{2048, 2048}, {5632, 2048}, {2048, 5632}, {4096, 4096}, {11008, 4096}};
    const int M = 2048;
    printf("{\"bf16_supported\": true, \"threads\": %d, \"rows\": %d, \"shapes\": [", pare_threads(), M);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], K = shapes[s][1];
        float *A = malloc((size_t)M * K * sizeof *A), *W = malloc((size_t)N * K * sizeof *W);
        float *C = malloc((size_t)M * N * sizeof *C), *C2 = malloc((size_t)M * N * sizeof *C2);
        if (!A || !W || !C || !C2) {
            fprintf(stderr, "bench_compress: matmul: out of memory\n");
            return 1;
        }
        uint64_t st = 7;
        for (size_t i = 0; i < (size_t)M * K; i++)
            st = st * 6364136223846793005ULL + 1442695040888963407ULL, A[i] = (float)((st >> 40) / 16777216.0 - 0.5);
        for (size_t i = 0; i < (size_t)N * K; i++)
            st = st * 6364136223846793005ULL + 1442695040888963407ULL, W[i] = (float)((st >> 40) / 16777216.0 - 0.5);
        double best_f = 1e30, best_b = 1e30;
        for (int r = 0; r <= rounds; r++) { /* round 0 warms up */
            double t0 = now_s();
            pare_sgemm(CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
            double t1 = now_s();
            if (pare_matmul_nt_bf16(M, N, K, A, K, W, K, 0, C2, N, &err))
                die("bf16 matmul", &err);
            double t2 = now_s();
            if (r)
                best_f = fmin(best_f, t1 - t0), best_b = fmin(best_b, t2 - t1);
        }
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)M * N; i++)
            num += ((double)C2[i] - C[i]) * ((double)C2[i] - C[i]), den += (double)C[i] * C[i];
        double flop = 2.0 * M * N * K;
        printf("%s{\"n\": %d, \"k\": %d, \"sgemm_gflops\": %.1f, \"bf16_gflops\": %.1f, \"rel_rms\": %.3g}",
               s ? ", " : "", N, K, flop / best_f * 1e-9, flop / best_b * 1e-9, sqrt(num / (den > 0 ? den : 1)));
        free(A), free(W), free(C), free(C2);
    }
    size_t n = 0;
    int32_t *ids = read_ids(argv[1], (size_t)atol(argv[2]), &n);
    pare_model *m = load(argv[0]);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = 256;
    eo.batch = 8;
    double best[2] = {1e30, 1e30}, ppl[2] = {0, 0};
    for (int r = 0; r <= rounds; r++)
        for (int k = 0; k < 2; k++) {
            int mode = (r + k) & 1;
            pare_eval_result res;
            if (pare_set_matmul(mode ? PARE_MATMUL_BF16 : PARE_MATMUL_F32, "bench", &err))
                die("matmul mode", &err);
            double t0 = now_s();
            if (pare_eval_perplexity(m, ids, n, &eo, NULL, &res, &err))
                die("eval", &err);
            if (r)
                best[mode] = fmin(best[mode], now_s() - t0);
            ppl[mode] = res.ppl;
        }
    pare_set_matmul(PARE_MATMUL_F32, "bench", &err);
    printf("], \"model\": \"%s\", \"tokens\": %zu, \"eval_f32_s\": %.3f, \"eval_bf16_s\": %.3f, \"ppl_f32\": %.6f, "
           "\"ppl_bf16\": %.6f}\n",
           argv[0], n, best[0], best[1], ppl[0], ppl[1]);
    pare_model_free(m);
    free(ids);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    cli_select_blas_kernel(argv);
    cli_apply_environment();
    if (cli_take_global_options(&argc, argv)) /* PARE_MATMUL / --matmul as ./pare takes them */
        return 2;
    pare_threads(); /* OpenBLAS single-threaded, OpenMP threads as pare uses them */
    /* PARE_THREADS as ./pare reads it: the benchmarks give pare and torch the same threads */
    const char *threads = getenv("PARE_THREADS");
    if (threads && atoi(threads) > 0)
        pare_set_threads(atoi(threads));
    if (argc >= 2 && !strcmp(argv[1], "spectra"))
        return mode_spectra(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "svd"))
        return mode_svd(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "lorap"))
        return mode_lorap(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "auto"))
        return mode_auto(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "speed"))
        return mode_speed(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "pipeline"))
        return mode_pipeline(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "matmul"))
        return mode_matmul(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench_compress spectra|svd|lorap|auto|speed|pipeline|matmul ... (see "
                    "tools/bench_compress.c)\n");
    return 2;
}

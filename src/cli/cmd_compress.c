/* `pare compress`: compress a model with LoRAP or a baseline at a target ratio and evaluate it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/compress.h"
#include "core/eval.h"

/* Each method is a plan policy plus how its factors are computed and its channels scored. */
static const struct {
    const char *name;
    int lorap_plan;        /* 1: LoRAP's split; 0: uniform */
    int ffn_channels;      /* uniform plans: prune FFN channels instead of factorizing the FFN */
    pare_weighting weighting;
    pare_chan_score chan_score;
    int sequential;
    const char *what;
} METHODS[] = {
    {"lorap", 1, 1, PARE_WEIGHT_ACT, PARE_CHAN_LORAP, 1,
     "LoRAP: activation-weighted SVD of attention (V,O : Q,K = a : 1), LoRAP channel pruning of the FFN, sequential"},
    {"lorap-magnitude", 1, 1, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, 1,
     "ablation: plain SVD attention with LoRAP's split, magnitude channel pruning"},
    {"svd", 0, 0, PARE_WEIGHT_NONE, PARE_CHAN_MAGNITUDE, 0, "plain SVD of every matrix, uniform ranks"},
    {"asvd", 0, 0, PARE_WEIGHT_ACT, PARE_CHAN_MAGNITUDE, 0, "activation-weighted SVD of every matrix, uniform ranks"},
    {"svdllm", 0, 0, PARE_WEIGHT_WHITEN, PARE_CHAN_MAGNITUDE, 0, "whitened SVD (SVD-LLM) of every matrix, uniform ranks"},
};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

int cmd_compress(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL, *method = "lorap", *calib = NULL, *evalf = NULL;
    double ratio = 0.2, split = 3.0, keep_least = 0.01;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    int json = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"method", OPT_STR, &method, "lorap | lorap-magnitude | svd | asvd | svdllm (default lorap)"},
        {"ratio", OPT_DOUBLE, &ratio, "fraction of decoder-block linear parameters to remove, in (0, 1) (default 0.2)"},
        {"split", OPT_DOUBLE, &split, "LoRAP: (V,O) : (Q,K) parameter split a (default 3)"},
        {"keep-least", OPT_DOUBLE, &keep_least, "LoRAP: lowest-scored fraction of FFN channels kept (default 0.01)"},
        {"calib", OPT_STR, &calib, "calibration text (every method but svd needs it)"},
        {"calib-samples", OPT_INT, &co.samples, "calibration windows (default 128)"},
        {"calib-len", OPT_INT, &co.len, "tokens per calibration window (default 256)"},
        {"seed", OPT_U64, &co.seed, "seed for the calibration windows (default 0)"},
        {"eval", OPT_STR, &evalf, "text to evaluate before and after (the pare eval protocol)"},
        {"window", OPT_INT, &eo.window, "evaluation window (default 256)"},
        {"json", OPT_FLAG, &json, "print JSON"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("compress", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("compress", "--model M --method lorap --ratio S --calib FILE [--eval FILE]", opts, n_opts);
        for (int i = 0; i < N_METHODS; i++)
            printf("  %-16s %s\n", METHODS[i].name, METHODS[i].what);
        return 0;
    }
    pare_error err = {0};
    int mi = -1;
    for (int i = 0; i < N_METHODS; i++)
        if (strcmp(method, METHODS[i].name) == 0)
            mi = i;
    if (mi < 0) {
        pare_fail(&err, PARE_EINVAL, "--method '%s': expected lorap, lorap-magnitude, svd, asvd or svdllm", method);
        return cli_error("compress", &err);
    }
    if (!(ratio > 0 && ratio < 1)) {
        pare_fail(&err, PARE_EINVAL, "--ratio %g: the fraction of parameters to remove must be in (0, 1)", ratio);
        return cli_error("compress", &err);
    }
    if (!(keep_least >= 0 && keep_least < 1 && keep_least + ratio <= 1)) {
        pare_fail(&err, PARE_EINVAL, "--keep-least %g: must be in [0, 1) with keep-least + ratio <= 1", keep_least);
        return cli_error("compress", &err);
    }
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("compress", &err);
    cli_install_sigint();
    int rc = 0;
    int32_t *win = NULL, *eval_ids = NULL;
    size_t n_eval = 0;
    pare_plan plan = {0};
    pare_eval_result before = {0}, after = {0};
    pare_status st = METHODS[mi].lorap_plan ? pare_allocate_lorap(m, ratio, split, &plan, &err)
                                            : pare_allocate_uniform(m, ratio, METHODS[mi].ffn_channels, &plan, &err);
    if (!st && evalf && !(st = cli_tokenize_file(m, evalf, &eval_ids, &n_eval, &err))) {
        cli_progress prog;
        cli_progress_init(&prog, "eval dense", (double)n_eval, "tok");
        pare_progress pp = {cli_progress_cb, &prog};
        st = pare_eval_perplexity(m, eval_ids, n_eval, &eo, &pp, &before, &err);
        cli_progress_done(&prog);
    }
    if (!st && calib)
        st = cli_calib_windows(m, calib, &co, &win, &err);
    pare_apply_report rep = {0};
    if (!st) {
        pare_apply_opts ao = {METHODS[mi].weighting, METHODS[mi].chan_score, keep_least, METHODS[mi].sequential};
        cli_progress prog;
        cli_progress_init(&prog, "compress", (double)co.samples * co.len * m->cfg.n_layers, "tok");
        pare_progress pp = {cli_progress_cb, &prog};
        st = pare_apply_plan(m, &plan, win, &co, &ao, &pp, &rep, &err);
        cli_progress_done(&prog);
    }
    if (!st && evalf) {
        cli_progress prog;
        cli_progress_init(&prog, "eval compressed", (double)n_eval, "tok");
        pare_progress pp = {cli_progress_cb, &prog};
        st = pare_eval_perplexity(m, eval_ids, n_eval, &eo, &pp, &after, &err);
        cli_progress_done(&prog);
    }
    if (st) {
        rc = cli_error("compress", &err);
        goto done;
    }
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    size_t total_before = pc.total - rep.params_after + rep.params_before;
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:{s:I, s:I, s:I, s:I}, s:i, s:i, s:f}", "model", m->path,
                              "method", method, "ratio", ratio, "split", split, "keep_least", keep_least, "params",
                              "block_linear_before", (json_int_t)rep.params_before, "block_linear_after",
                              (json_int_t)rep.params_after, "total_before", (json_int_t)total_before, "total_after",
                              (json_int_t)pc.total, "factorized", rep.factorized, "channel_blocks", rep.channel_blocks,
                              "worst_rel_error", rep.worst_rel_error);
        if (evalf)
            json_object_set_new(j, "eval", json_pack("{s:s, s:i, s:I, s:f, s:f}", "data", evalf, "window", eo.window,
                                                    "predicted", (json_int_t)after.plan.predicted, "ppl_dense",
                                                    before.ppl, "ppl", after.ppl));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("method        %s: %s\n", method, METHODS[mi].what);
        printf("ratio         %.3f of decoder-block linear parameters%s\n", ratio,
               METHODS[mi].lorap_plan ? "" : " (uniform ranks)");
        printf("block linears %zu -> %zu (%.1f%% removed)\n", rep.params_before, rep.params_after,
               100.0 * (1.0 - (double)rep.params_after / (double)rep.params_before));
        printf("all params    %zu -> %zu (%.1f%% removed, embeddings and head included)\n", total_before, pc.total,
               100.0 * (1.0 - (double)pc.total / (double)total_before));
        printf("matrices      %d factorized (worst relative error %.3f), %d FFNs channel-pruned\n", rep.factorized,
               rep.worst_rel_error, rep.channel_blocks);
        if (evalf)
            printf("perplexity    %.4f -> %.4f on %s (window %d, %zu targets)\n", before.ppl, after.ppl, evalf,
                   eo.window, after.plan.predicted);
    }
done:
    pare_plan_free(&plan);
    free(win);
    free(eval_ids);
    pare_model_free(m);
    return rc;
}

/* `pare eval`: perplexity of a model on a text file, with the protocol printed beside the figure. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/eval.h"
#include "core/fileio.h"
#include "core/forward.h"
#include "core/parallel.h"

static void print_card(const char *data, size_t bytes, const pare_eval_plan *p, const pare_eval_result *r,
                       size_t file_tokens, const pare_model *m)
{
    printf("protocol\n");
    printf("  model       %s (%s)\n", m->path, pare_arch_name(m->cfg.arch));
    printf("  file        %s (%zu bytes)\n", data, bytes);
    printf("  tokens      %zu%s (whole file, no special tokens)\n", p->tokens,
           p->tokens < file_tokens ? " of the file's first" : "");
    if (p->tokens < file_tokens)
        printf("              limited from %zu by --limit-tokens\n", file_tokens);
    int cap = p->window - (p->bos ? 1 : 0);
    printf("  window      %d tokens%s\n", p->window, p->bos ? " = BOS + text" : "");
    printf("  stride      %d text tokens (%s)\n", p->stride, p->stride == cap ? "non-overlapping" : "overlapping windows; each token scored once, with the longest context available");
    printf("  BOS         %s\n", p->bos ? "inserted at the start of every window and never scored" : "not inserted");
    printf("  windows     %zu\n", p->windows);
    printf("  predicted   %zu targets%s\n", p->predicted,
           !p->bos && p->stride == cap ? " (window-1 per window: a window's first token has no context)" : "");
    printf("  remainder   %zu trailing tokens do not fill a window and are not scored\n", p->dropped);
    printf("perplexity    %.4f   (%.5f nats/token)\n", r->ppl, r->nll / (double)p->predicted);
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *tok = NULL;
    pare_eval_opts o;
    pare_eval_defaults(&o);
    int json = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"data", OPT_STR, &data, "UTF-8 text file to evaluate (tokenized whole, no special tokens)"},
        {"window", OPT_INT, &o.window, "tokens per window, BOS included (default 256)"},
        {"stride", OPT_INT, &o.stride, "text tokens between window starts (default: no overlap)"},
        {"bos", OPT_FLAG, &o.bos, "start every window with BOS (default: no BOS)"},
        {"limit-tokens", OPT_SIZE, &o.limit_tokens, "evaluate only the first N tokens"},
        {"batch", OPT_INT, &o.batch, "windows per forward pass (default 8)"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"json", OPT_FLAG, &json, "print one JSON object instead of the protocol card"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("eval", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("eval", "--model M --data FILE [options]", opts, n_opts);
        return 0;
    }
    pare_error err = {0};
    if (!data) {
        pare_fail(&err, PARE_EINVAL, "--data FILE is required");
        return cli_error("eval", &err);
    }
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("eval", &err);
    int rc = 0;
    size_t n_ids = 0;
    int32_t *ids = NULL;
    pare_eval_plan plan;
    if (pare_eval_plan_make(m, SIZE_MAX, &o, &plan, &err)) { /* options checked before the slow parts */
        rc = cli_error("eval", &err);
        goto done;
    }
    cli_install_sigint();
    double t0 = cli_now();
    if (cli_tokenize_file(m, data, &ids, &n_ids, &err)) {
        rc = cli_error("eval", &err);
        goto done;
    }
    double t_tok = cli_now() - t0;
    if (pare_eval_plan_make(m, n_ids, &o, &plan, &err)) {
        pare_wrap(&err, "%s (%zu tokens)", data, n_ids);
        rc = cli_error("eval", &err);
        goto done;
    }
    cli_progress prog;
    cli_progress_init(&prog, "eval", (double)plan.windows * plan.window, "tok");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_eval_result res;
    t0 = cli_now();
    pare_status st = pare_eval_perplexity(m, ids, n_ids, &o, &pp, &res, &err);
    double t_fwd = cli_now() - t0;
    cli_progress_done(&prog);
    if (st) {
        if (st == PARE_ECANCELED)
            pare_fail(&err, PARE_ECANCELED, "interrupted after %s; no result", prog.last_detail[0] ? prog.last_detail : "0 windows");
        rc = cli_error("eval", &err);
        goto done;
    }
    double tps = t_fwd > 0 ? (double)res.plan.windows * res.plan.window / t_fwd : 0;
    if (json) {
        int B = o.batch < (int)res.plan.windows ? o.batch : (int)res.plan.windows;
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:b, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:i}",
                              "model", m->path, "data", data, "file_tokens", (json_int_t)n_ids, "tokens",
                              (json_int_t)res.plan.tokens, "window", res.plan.window, "stride", res.plan.stride, "bos",
                              res.plan.bos, "windows", (json_int_t)res.plan.windows, "predicted",
                              (json_int_t)res.plan.predicted, "dropped", (json_int_t)res.plan.dropped, "nll", res.nll,
                              "ppl", res.ppl, "tokenize_seconds", t_tok, "forward_seconds", t_fwd,
                              "tokens_per_second", tps, "flop_per_token",
                              pare_model_flop_per_token(m, res.plan.window), "peak_rss_bytes",
                              (json_int_t)cli_peak_rss(), "weight_bytes_fp32", (json_int_t)(m->slab_floats * 4),
                              "activation_bytes", (json_int_t)pare_acts_bytes(m, B, res.plan.window, 0), "batch", B,
                              "threads", pare_threads());
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        struct stat sb;
        print_card(data, stat(data, &sb) == 0 ? (size_t)sb.st_size : 0, &res.plan, &res, n_ids, m);
        fprintf(stderr, "[eval] tokenized %zu tokens in %.2fs; forward %.1fs, %.0f tok/s\n", n_ids, t_tok, t_fwd, tps);
    }
done:
    free(ids);
    pare_model_free(m);
    return rc;
}

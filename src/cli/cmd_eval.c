/* `pare eval`: perplexity of a model on a text file, with the protocol printed beside the figure, or
 * zero-shot accuracy on a multiple-choice task (--task) scored as lm-evaluation-harness does. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/eval.h"
#include "core/fileio.h"
#include "core/matmul.h"
#include "core/forward.h"
#include "core/parallel.h"
#include "core/tasks.h"
#include "core/zeroshot.h"
#include "core/json_number.h"

static void print_card(const char *data, size_t bytes, const pare_eval_plan *p, const pare_eval_result *r,
                       size_t file_tokens, const pare_model *m)
{
    printf("protocol\n");
    printf("  model       %s (%s)\n", m->path, pare_family_class(&m->cfg));
    printf("  file        %s (%zu bytes)\n", data, bytes);
    printf("  tokens      %zu%s (whole file, no special tokens)\n", p->tokens,
           p->tokens < file_tokens ? " of the file's first" : "");
    if (p->tokens < file_tokens)
        printf("              limited from %zu by --limit-tokens\n", file_tokens);
    int cap = p->window - (p->bos ? 1 : 0);
    printf("  window      %d tokens%s\n", p->window, p->bos ? " = BOS + text" : "");
    printf("  stride      %d text tokens (%s)\n", p->stride,
           p->stride == cap ? "non-overlapping"
                            : "overlapping windows; each token scored once, with the longest context available");
    printf("  BOS         %s\n", p->bos ? "inserted at the start of every window and never scored" : "not inserted");
    printf("  windows     %zu\n", p->windows);
    printf("  predicted   %zu targets%s\n", p->predicted,
           !p->bos && p->stride == cap ? " (window-1 per window: a window's first token has no context)" : "");
    printf("  remainder   %zu trailing tokens do not fill a window and are not scored\n", p->dropped);
    if (pare_model_streamed(m))
        printf("  weights     streamed from the files as stored, %s (the same result to the bit)\n",
               r->layer_major ? "layer-major: every window through a block, then the next"
                              : "batch-major: every block fits the block cache");
    if (pare_get_matmul() == PARE_MATMUL_BF16)
        printf("  matmul      bf16: linear layers' operands rounded to BF16, sums in fp32 (--matmul)\n");
    printf("perplexity    %.4f   (%.5f nats/token)\n", r->ppl, r->nll / (double)p->predicted);
}

/* One JSON line per item: every choice's model input and continuation ids as scored, its length for
 * acc_norm and its log-likelihood; for cross-checking pare against another implementation. */
static pare_status dump_requests(const char *path, const pare_model *m, const pare_task *t,
                                 const pare_zeroshot_opts *zo, const pare_zeroshot_result *r, pare_error *err)
{
    pare_atomic_file f;
    pare_status rc = pare_atomic_open(&f, path, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < t->n_items && rc == PARE_OK; i++) {
        const pare_task_item *it = &t->items[i];
        json_t *choices = json_array();
        for (int j = 0; j < it->n_choices && rc == PARE_OK; j++) {
            pare_zeroshot_request q;
            if ((rc = pare_zeroshot_encode(m, t, i, j, zo->max_len, &q, err)))
                break;
            json_t *inp = json_array(), *cont = json_array();
            for (int k = 0; k < q.n_inp; k++)
                json_array_append_new(inp, json_integer(q.inp[k]));
            for (int k = 0; k < q.n_cont; k++)
                json_array_append_new(cont, json_integer(q.cont[k]));
            json_array_append_new(choices, json_pack("{s:o, s:o, s:I, s:o}", "inp", inp, "cont", cont, "chars",
                                                     (json_int_t)pare_utf8_chars(it->choices[j]), "ll",
                                                     pare_json_number(r->ll[r->first[i] + j])));
            pare_zeroshot_request_free(&q);
        }
        if (rc) {
            json_decref(choices);
            break;
        }
        json_t *j = json_pack("{s:I, s:i, s:i, s:i, s:i, s:o}", "item", (json_int_t)i, "line", it->line, "gold",
                              it->gold, "pred", r->pred[i], "pred_norm", r->pred_norm[i], "choices", choices);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
        if (!s || fprintf(f.fp, "%s\n", s) < 0)
            rc = pare_fail(err, PARE_EIO, "%s: cannot write", path);
        free(s);
        json_decref(j);
    }
    if (rc) {
        pare_atomic_abort(&f);
        return rc;
    }
    return pare_atomic_commit(&f, err);
}

static int eval_task(const char *model, const char *tok, const char *task_name, const char *task_data, size_t limit,
                     const pare_zeroshot_opts *zo, const char *dump, int json)
{
    pare_error err = {0};
    pare_task_kind kind;
    if (pare_task_kind_parse(task_name, &kind, &err))
        return cli_error("eval", &err);
    if (!task_data) {
        pare_fail(&err, PARE_EINVAL, "--task-data PATH is required with --task (the %s file or its folder)", task_name);
        return cli_error("eval", &err);
    }
    if (zo->batch_tokens < 1) {
        pare_fail(&err, PARE_EINVAL, "--batch-tokens %d must be at least 1", zo->batch_tokens);
        return cli_error("eval", &err);
    }
    pare_task *t = NULL;
    double t0 = cli_now();
    if (pare_task_load(kind, task_data, limit, &t, &err))
        return cli_error("eval", &err);
    double t_load = cli_now() - t0;
    pare_model *m = NULL;
    int rc = 0;
    if (cli_load_model(model, tok, &m, &err)) {
        rc = cli_error("eval", &err);
        goto done;
    }
    if (!m->tok) {
        pare_fail(&err, PARE_EINVAL, "%s: no tokenizer found (tokenizer.json or tok*.bin); pass --tokenizer", m->path);
        rc = cli_error("eval", &err);
        goto done;
    }
    if (zo->max_len && (zo->max_len < 2 || zo->max_len > m->cfg.max_pos)) {
        pare_fail(&err, PARE_EINVAL, "--max-len %d must be between 2 and the model's %d positions", zo->max_len,
                  m->cfg.max_pos);
        rc = cli_error("eval", &err);
        goto done;
    }
    cli_install_sigint();
    cli_progress prog;
    cli_progress_init(&prog, "eval", (double)t->n_items, "items");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_zeroshot_result r;
    t0 = cli_now();
    pare_status st = pare_task_score(m, t, zo, &pp, &r, &err);
    double secs = cli_now() - t0;
    cli_progress_done(&prog);
    if (st) {
        if (st == PARE_ECANCELED)
            pare_fail(&err, PARE_ECANCELED, "interrupted after %s; no result",
                      prog.last_detail[0] ? prog.last_detail : "0 sequences");
        rc = cli_error("eval", &err);
        goto done;
    }
    if (dump && dump_requests(dump, m, t, zo, &r, &err)) {
        rc = cli_error("eval", &err);
        pare_zeroshot_result_free(&r);
        goto done;
    }
    double ips = secs > 0 ? (double)r.n / secs : 0;
    int max_len = zo->max_len ? zo->max_len : m->cfg.max_pos;
    if (json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, "
            "s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:i}",
            "model", m->path, "task", pare_task_kind_name(kind), "data", t->path, "labels", t->labels_path, "template",
            pare_task_template(kind), "items", (json_int_t)r.n, "items_in_file", (json_int_t)t->n_in_file, "requests",
            (json_int_t)r.n_requests, "acc", pare_json_number(r.acc), "acc_stderr", pare_json_number(r.acc_stderr),
            "acc_norm", pare_json_number(r.acc_norm), "acc_norm_stderr", pare_json_number(r.acc_norm_stderr),
            "sequences", (json_int_t)r.sequences, "tokens", (json_int_t)r.tokens, "padded_tokens",
            (json_int_t)r.padded_tokens, "forwards", (json_int_t)r.forwards, "truncated", (json_int_t)r.truncated,
            "max_len", max_len, "batch_tokens", zo->batch_tokens, "load_seconds", pare_json_number(t_load),
            "tokenize_seconds", pare_json_number(r.tokenize_seconds), "forward_seconds",
            pare_json_number(r.forward_seconds), "seconds", pare_json_number(secs), "items_per_second",
            pare_json_number(ips), "threads", pare_threads());
        rc = cli_print_json("eval", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    } else {
        printf("task          %s, 0-shot, log-likelihood of each choice (lm-evaluation-harness protocol)\n",
               pare_task_kind_name(kind));
        printf("  model       %s (%s)\n", m->path, pare_family_class(&m->cfg));
        if (t->labels_path[0])
            printf("  data        %s + %s\n", t->path, t->labels_path);
        else
            printf("  data        %s\n", t->path);
        printf("  items       %zu%s", r.n, r.n < t->n_in_file ? "" : "\n");
        if (r.n < t->n_in_file)
            printf(" (the first, of %zu: --limit)\n", t->n_in_file);
        printf("  template    %s\n", pare_task_template(kind));
        printf("  tokens      context and context+continuation encoded whole, no special tokens; continuation = "
               "the tokens beyond the context's\n");
        printf("  input       at most %d tokens (left-truncated: %zu of %zu choices)\n", max_len, r.truncated,
               r.n_requests);
        printf("  acc_norm    log-likelihood / characters of the choice text\n");
        printf("  sequences   %zu for %zu choices (an input that begins another is read from its row), %zu tokens, "
               "%zu forwards\n",
               r.sequences, r.n_requests, r.tokens, r.forwards);
        printf("acc           %.4f +- %.4f\n", r.acc, r.acc_stderr);
        printf("acc_norm      %.4f +- %.4f\n", r.acc_norm, r.acc_norm_stderr);
        fprintf(stderr, "[eval] %zu items in %.1fs (%.1f items/s): tokenize %.2fs, forward %.1fs\n", r.n, secs, ips,
                r.tokenize_seconds, r.forward_seconds);
    }
    pare_zeroshot_result_free(&r);
done:
    pare_model_free(m);
    pare_task_free(t);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *tok = NULL;
    pare_eval_opts o;
    pare_eval_defaults(&o);
    int json = 0, help = 0;
    const char *task = NULL, *task_data = NULL, *dump = NULL;
    size_t limit = 0;
    pare_zeroshot_opts zo;
    pare_zeroshot_defaults(&zo);
    pare_eval_opts defaults = o;
    pare_zeroshot_opts zdefaults = zo;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"data", OPT_STR, &data, "UTF-8 text file to evaluate (tokenized whole, no special tokens)"},
        {"window", OPT_INT, &o.window, cli_help_default("tokens per window, BOS included", o.window)},
        {"stride", OPT_INT, &o.stride, "text tokens between window starts (default: no overlap)"},
        {"bos", OPT_FLAG, &o.bos, "start every window with BOS (default: no BOS)"},
        {"limit-tokens", OPT_SIZE, &o.limit_tokens, "evaluate only the first N tokens"},
        {"batch", OPT_INT, &o.batch, cli_help_default("windows per forward pass", o.batch)},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"task", OPT_STR, &task,
         cli_help("zero-shot task instead of --data: %s", cli_names(PARE_TASK_NAMES, ", ", ", "))},
        {"task-data", OPT_STR, &task_data, "the task's file as published, or its folder"},
        {"limit", OPT_SIZE, &limit, "--task: score only the first N items"},
        {"batch-tokens", OPT_INT, &zo.batch_tokens,
         cli_help_default("--task: tokens per forward pass, padding included", zo.batch_tokens)},
        {"max-len", OPT_INT, &zo.max_len, "--task: longest model input (default: the model's positions)"},
        {"dump-requests", OPT_STR, &dump, "--task: write every choice's token ids and log-likelihood (JSON lines)"},
        {"json", OPT_FLAG, &json, "print one JSON object instead of the protocol card"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("eval", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("eval", "--model M (--data FILE | --task NAME --task-data PATH) [options]", opts, n_opts);
        return 0;
    }
    pare_error err = {0};
    if (task || task_data) {
        const char *clash = data                                      ? "--data"
                            : o.window != defaults.window             ? "--window"
                            : o.stride != defaults.stride             ? "--stride"
                            : o.bos != defaults.bos                   ? "--bos"
                            : o.limit_tokens != defaults.limit_tokens ? "--limit-tokens"
                            : o.batch != defaults.batch               ? "--batch"
                                                                      : NULL;
        if (clash) {
            pare_fail(&err, PARE_EINVAL, "%s applies to perplexity on a text file, not to --task", clash);
            return cli_error("eval", &err);
        }
        if (!task) {
            pare_fail(&err, PARE_EINVAL, "--task-data needs --task NAME (%s)", cli_names(PARE_TASK_NAMES, ", ", ", "));
            return cli_error("eval", &err);
        }
        int bad_out = dump ? cli_check_out("eval", "--dump-requests", dump) : 0;
        if (bad_out)
            return bad_out;
        return eval_task(model, tok, task, task_data, limit, &zo, dump, json);
    }
    const char *task_only = limit                                       ? "--limit"
                            : dump                                      ? "--dump-requests"
                            : zo.batch_tokens != zdefaults.batch_tokens ? "--batch-tokens"
                            : zo.max_len                                ? "--max-len"
                                                                        : NULL;
    if (task_only) {
        pare_fail(&err, PARE_EINVAL, "%s applies to --task", task_only);
        return cli_error("eval", &err);
    }
    if (!data) {
        pare_fail(&err, PARE_EINVAL, "--data FILE (perplexity) or --task NAME --task-data PATH (zero-shot) is required");
        return cli_error("eval", &err);
    }
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("eval", &err);
    int rc = 0;
    size_t n_ids = 0;
    int32_t *ids = NULL;
    pare_eval_plan plan;
    o.data = data;
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
            pare_fail(&err, PARE_ECANCELED, "interrupted after %s; no result",
                      prog.last_detail[0] ? prog.last_detail : "0 windows");
        rc = cli_error("eval", &err);
        goto done;
    }
    double tps = t_fwd > 0 ? (double)res.plan.windows * res.plan.window / t_fwd : 0;
    if (json) {
        int B = o.batch < (int)res.plan.windows ? o.batch : (int)res.plan.windows;
        json_t *j = json_pack(
            "{s:s, s:s, s:I, s:I, s:i, s:i, s:b, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:i, s:i}",
            "model", m->path, "data", data, "file_tokens", (json_int_t)n_ids, "tokens", (json_int_t)res.plan.tokens,
            "window", res.plan.window, "stride", res.plan.stride, "bos", res.plan.bos, "windows",
            (json_int_t)res.plan.windows, "predicted", (json_int_t)res.plan.predicted, "dropped",
            (json_int_t)res.plan.dropped, "nll", pare_json_number(res.nll), "ppl", pare_json_number(res.ppl),
            "tokenize_seconds", pare_json_number(t_tok), "forward_seconds", pare_json_number(t_fwd),
            "tokens_per_second", pare_json_number(tps), "flop_per_token",
            pare_json_number(pare_model_flop_per_token(m, res.plan.window)), "peak_rss_bytes",
            (json_int_t)cli_peak_rss(), "weight_bytes_fp32", (json_int_t)(m->slab_floats * 4), "activation_bytes",
            (json_int_t)pare_acts_bytes(m, B, res.plan.window, 0), "batch", B, "threads", pare_threads());
        json_object_set_new(j, "matmul", json_string(PARE_MATMUL_NAMES[pare_get_matmul()]));
        json_object_set_new(j, "weights",
                            json_string(!pare_model_streamed(m) ? "in memory"
                                        : res.layer_major       ? "streamed, layer-major"
                                                                : "streamed, batch-major"));
        rc = cli_print_json("eval", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
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

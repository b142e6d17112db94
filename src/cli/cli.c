/* Shared CLI helpers: option parsing, error exits, progress display, timing and memory figures. */
#include "cli.h"

#include "core/calib.h"
#include "core/fileio.h"
#include "core/numparse.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* VmHWM is this process's own high-water mark; ru_maxrss would start from the RSS of whatever
 * process forked it (Linux carries that across exec), so a pare run by a large parent over-reports. */
size_t cli_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    if (kib < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = ru.ru_maxrss;
    }
    return (size_t)kib * 1024;
}

static volatile sig_atomic_t interrupted; /* the first signal received, 0 before */
static void on_sigint(int sig)
{
    if (interrupted)
        _exit(128 + sig); /* a second signal does not wait */
    interrupted = sig;
}

void cli_install_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL); /* a service manager's or `kill`'s stop cancels as cleanly as Ctrl-C */
}

int cli_interrupted(void) { return interrupted != 0; }
int cli_interrupt_status(void) { return interrupted == SIGTERM ? EXIT_TERMINATED : EXIT_INTERRUPTED; }

static const cli_opt *find_opt(const char *name, const cli_opt *opts, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int parse_value(const char *cmd, const cli_opt *o, const char *v)
{
    char what[80];
    snprintf(what, sizeof what, "--%s", o->name);
    pare_error err = {0};
    long long x;
    uint64_t u;
    double d;
    switch (o->type) {
    case OPT_STR: *(const char **)o->dst = v; return 0;
    case OPT_INT:
        if (pare_parse_int(what, v, INT_MIN, INT_MAX, &x, &err))
            break;
        *(int *)o->dst = (int)x;
        return 0;
    case OPT_SIZE:
    case OPT_U64:
        if (pare_parse_u64(what, v, &u, &err)) /* size_t is 64 bits wide on every target pare builds for */
            break;
        if (o->type == OPT_SIZE)
            *(size_t *)o->dst = (size_t)u;
        else
            *(uint64_t *)o->dst = u;
        return 0;
    case OPT_DOUBLE:
        if (pare_parse_double(what, v, -HUGE_VAL, HUGE_VAL, &d, &err))
            break;
        *(double *)o->dst = d;
        return 0;
    case OPT_FLAG: return 0;
    }
    fprintf(stderr, "pare %s: %s\n", cmd, err.msg);
    return 1;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name = NULL;
        if (a[0] == '-' && a[1] == '-' && a[2])
            name = a + 2;
        else if (a[0] == '-' && a[1] && !a[2])
            name = a + 1;
        if (!name) {
            fprintf(stderr, "pare %s: unexpected argument '%s' (see pare %s --help)\n", cmd, a, cmd);
            return 1;
        }
        char key[64];
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof key)
            kl = sizeof key - 1;
        memcpy(key, name, kl);
        key[kl] = '\0';
        const cli_opt *o = find_opt(key, opts, n_opts);
        if (!o) {
            fprintf(stderr, "pare %s: unknown option '%s' (see pare %s --help)\n", cmd, a, cmd);
            return 1;
        }
        if (o->type == OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "pare %s: --%s takes no value\n", cmd, key);
                return 1;
            }
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "pare %s: --%s needs a value\n", cmd, key);
            return 1;
        }
        if (parse_value(cmd, o, v))
            return 1;
    }
    return 0;
}

/* Help texts built at run time live here for the whole process: a command builds its option table
 * once, so a fixed arena suffices and the tables can hold the texts inline. A text that would not fit
 * comes back NULL, and the callers fall back to their literal part rather than fail. */
static char help_arena[16384];
static size_t help_used;

static const char *help_vprintf(const char *fmt, va_list ap)
{
    size_t room = sizeof help_arena - help_used;
    int n = vsnprintf(help_arena + help_used, room, fmt, ap);
    if (n < 0 || (size_t)n >= room)
        return NULL;
    const char *text = help_arena + help_used;
    help_used += (size_t)n + 1;
    return text;
}

const char *cli_help(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *text = help_vprintf(fmt, ap);
    va_end(ap);
    return text ? text : fmt;
}

const char *cli_help_default(const char *text, double value)
{
    const char *built = cli_help("%s (default %g)", text, value);
    return built == text ? text : built;
}

const char *cli_help_default_str(const char *text, const char *value)
{
    const char *built = cli_help("%s (default %s)", text, value);
    return built == text ? text : built;
}

const char *cli_names(const char *const *names, const char *sep, const char *last_sep)
{
    size_t start = help_used, room = sizeof help_arena - help_used, n = 0;
    int count = 0;
    while (names[count])
        count++;
    for (int i = 0; i < count; i++) {
        int w = snprintf(help_arena + start + n, room - n, "%s%s",
                         i == 0           ? ""
                         : i == count - 1 ? last_sep
                                          : sep,
                         names[i]);
        if (w < 0 || (size_t)w >= room - n)
            return names[0] ? names[0] : "";
        n += (size_t)w;
    }
    help_used = start + n + 1;
    return help_arena + start;
}

void cli_usage(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts)
{
    printf("usage: pare %s %s\n\noptions:\n", cmd, synopsis);
    for (int i = 0; i < n_opts; i++) {
        const char *arg = opts[i].type == OPT_FLAG ? "" : opts[i].type == OPT_STR ? " VALUE" : " N";
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", strlen(opts[i].name) == 1 ? "-" : "--", opts[i].name, arg);
        printf("  %-24s %s\n", left, opts[i].help);
    }
}

int cli_print_json(const char *cmd, json_t *j, size_t flags)
{
    char *s = j ? json_dumps(j, flags) : NULL;
    json_decref(j);
    if (!s) {
        fprintf(stderr, "pare %s: out of memory building the JSON output\n", cmd);
        return EXIT_BAD_INPUT;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

int cli_error(const char *cmd, const pare_error *err)
{
    fprintf(stderr, "pare %s: %s\n", cmd, err->msg);
    /* after Ctrl-C, an error is the interruption's doing (a blocking read fails with EINTR) */
    if (err->code == PARE_ECANCELED || cli_interrupted())
        return cli_interrupt_status();
    return EXIT_BAD_INPUT;
}

int cli_check_out(const char *cmd, const char *opt, const char *path)
{
    pare_error err = {0};
    return pare_check_output_path(path, opt, &err) ? cli_error(cmd, &err) : 0;
}

void cli_progress_init(cli_progress *p, const char *label, double units_total, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->start = p->last_print = cli_now();
    p->units_total = units_total;
    p->unit = unit;
    p->tty = isatty(2);
    p->last_decile = -1;
}

int cli_progress_cb(void *user, const char *stage, double fraction, const char *detail)
{
    cli_progress *p = user;
    snprintf(p->last_detail, sizeof p->last_detail, "%s", detail ? detail : "");
    if (cli_interrupted())
        return 1;
    double now = cli_now(), el = now - p->start;
    int decile = (int)(fraction * 10);
    if (p->tty ? now - p->last_print < 0.2 && fraction < 1 : decile == p->last_decile)
        return 0;
    p->last_print = now;
    p->last_decile = decile;
    double rate = el > 0 ? fraction * p->units_total / el : 0;
    double eta = fraction > 0 ? el * (1 - fraction) / fraction : 0;
    fprintf(stderr, "%s[%s] %5.1f%%  %s  %.0f %s/s  ETA %.0fs%s", p->tty ? "\r" : "", p->label, 100 * fraction,
            detail ? detail : "", rate, p->unit, eta, p->tty ? "   " : "\n");
    p->printed = 1;
    (void)stage;
    return 0;
}

void cli_progress_done(cli_progress *p)
{
    if (p->tty && p->printed)
        fputc('\n', stderr);
}

/* The core's error, plus the option that fixes it. */
static pare_status no_tokenizer(const pare_model *m, pare_error *err)
{
    return pare_fail(err, PARE_EINVAL, "%s: no tokenizer found (tokenizer.json or tok*.bin); pass --tokenizer", m->path);
}

pare_status cli_tokenize_file(const pare_model *m, const char *path, int32_t **ids, size_t *n, pare_error *err)
{
    *ids = NULL;
    *n = 0;
    return m->tok ? pare_model_tokenize_file(m, path, ids, n, err) : no_tokenizer(m, err);
}

pare_status cli_calib_windows(const pare_model *m, const char *path, const void *calib_opts, int32_t **windows,
                              pare_error *err)
{
    const pare_calib_opts *co = calib_opts;
    size_t n = 0;
    *windows = NULL;
    if (!m->tok)
        return no_tokenizer(m, err);
    pare_status rc = pare_calib_windows_file(m, path, co, windows, &n, err);
    if (!rc) {
        pare_calib_opts plain = *co, gram = *co;
        plain.gram = 0;
        gram.gram = 1;
        fprintf(stderr,
                "[calibrate] %d windows x %d tokens from %s (%zu tokens, seed %llu); memory %.1f MiB, with the Gram "
                "matrices whitening needs %.1f MiB block by block (sequential), %.1f MiB all at once (one-shot)\n",
                co->samples, co->len, path, n, (unsigned long long)co->seed,
                (double)pare_calib_bytes(m, &plain, 1) / (1 << 20), (double)pare_calib_bytes(m, &gram, 1) / (1 << 20),
                (double)pare_calib_bytes(m, &gram, 0) / (1 << 20));
    }
    return rc;
}

pare_status cli_calibrate_file(pare_model *m, const char *path, const void *calib_opts, pare_calib_stats **st,
                               pare_error *err)
{
    const pare_calib_opts *co = calib_opts;
    int32_t *win = NULL;
    pare_status rc = cli_calib_windows(m, path, co, &win, err);
    if (!rc) {
        cli_progress prog;
        cli_progress_init(&prog, "calibrate", (double)co->samples * co->len * m->cfg.n_layers, "tok");
        pare_progress pp = {cli_progress_cb, &prog};
        rc = pare_calibrate(m, win, co, NULL, NULL, &pp, st, err);
        cli_progress_done(&prog);
    }
    free(win);
    return rc;
}

int cli_name_index(const char *const *names, const char *name)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

pare_status cli_load_model(const char *path, const char *tok, pare_model **m, pare_error *err)
{
    if (!path)
        return pare_fail(err, PARE_EINVAL, "--model is required (a Hugging Face folder or a llama2.c checkpoint)");
    return pare_model_load(path, tok, m, err);
}

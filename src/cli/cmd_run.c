/* `pare run RECIPE`: runs a Lua recipe through the session runner (lua/lsession.c) into an output
 * folder; events go to the terminal (print() to stdout, log lines and progress with ETA to stderr);
 * Ctrl-C (SIGTERM) cancels the running step, run.json then says "cancelled", and the exit status is 130 (143).
 * With --emit-jobs FILE it runs nothing: FILE gets one shell line per point of the recipe (a `pare run`
 * of that point into OUT/points/NAME) for an existing scheduler (GNU parallel, a Slurm array). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/fileio.h"
#include "lsession.h"

typedef struct {
    int quiet, tty, active, last_decile;
    char stage[64];
    double last_print;
} term_sink;

static void end_line(term_sink *t)
{
    if (t->active && t->tty && !t->quiet)
        fputc('\n', stderr);
    t->active = 0;
}

/* Progress on stderr: \r-updated on a terminal, a line every 10% otherwise. */
static void show_progress(term_sink *t, const ls_event *ev)
{
    if (t->quiet)
        return;
    double now = cli_now();
    if (!t->active || strcmp(t->stage, ev->stage)) {
        end_line(t);
        snprintf(t->stage, sizeof t->stage, "%s", ev->stage);
        t->last_print = now;
        t->last_decile = -1;
        t->active = 1;
    }
    int decile = (int)(ev->fraction * 10);
    if (t->tty ? now - t->last_print < 0.2 && ev->fraction < 1 : decile == t->last_decile)
        return;
    t->last_print = now;
    t->last_decile = decile;
    fprintf(stderr, "%s[%s] %5.1f%%  %s  ETA %.0fs%s", t->tty ? "\r" : "", t->stage, 100 * ev->fraction, ev->text,
            ev->eta_s > 0 ? ev->eta_s : 0, t->tty ? "   " : "\n");
    if (ev->fraction >= 1) {
        if (t->tty)
            fputc('\n', stderr);
        t->active = 0;
    }
}

static void on_event(void *user, const ls_event *ev)
{
    term_sink *t = user;
    switch (ev->kind) {
    case LS_PROGRESS: show_progress(t, ev); break;
    case LS_PRINT:
        end_line(t);
        printf("%s\n", ev->text);
        fflush(stdout);
        break;
    case LS_ERROR: break; /* printed once by cmd_run, after the run */
    case LS_PLOT:
        end_line(t);
        if (!t->quiet)
            fprintf(stderr, "plot: %s\n", ev->text);
        break;
    default:
        end_line(t);
        if (!t->quiet)
            fprintf(stderr, "%s\n", ev->text);
    }
}

/* Whether the run left OUT/run.json (a full disk can keep it from being written). */
static int has_record(lsession *s)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/run.json", lsession_out_dir(s));
    return access(p, F_OK) == 0;
}

static void run_usage(void)
{
    printf("usage: pare run RECIPE [--model DIR] [--set name=value ...] [--out DIR] [--overwrite] [--quiet]\n"
           "                     [--sandbox [--allow PATH ...]]\n"
           "       pare run RECIPE --emit-jobs FILE --out OUT [--set name=value ...]\n"
           "       pare run RECIPE --help     (the recipe's parameters)\n\n"
           "Runs a Lua recipe (see docs/recipes.md and presets/) into an output folder OUT (default\n"
           "$PARE_RUNS/RECIPE-YYYYmmdd-HHMMSS, PARE_RUNS defaulting to ./runs): OUT/run.json (parameters, hashes, "
           "decisions, metrics, timings,\n"
           "status, plots), OUT/log.txt, OUT/recipe.lua, the plots size_quality.png and budget.png when the run has\n"
           "results for them, and whatever the recipe writes there (pare.out).\n"
           "--model DIR is --set model=DIR. --overwrite replaces a finished run in OUT.\n"
           "--emit-jobs FILE runs nothing: it writes one self-contained shell line per point of a recipe that\n"
           "declares points (presets/sweep.lua), each a pare run into OUT/points/NAME, for `parallel < FILE` or\n"
           "a Slurm array; `pare compare OUT` then merges them (docs/sweeps.md).\n"
           "--sandbox runs a recipe you do not trust: no os.execute, io.popen, package.loadlib, C modules or\n"
           "debug library, text chunks only, files read only under the model and the paths given with --model,\n"
           "--set and --allow (and pare's Lua folders), files written only under OUT (docs/reliability.md).\n"
           "Exit status: 0 done, 2 bad input or a script/core error, 130 interrupted (Ctrl-C), 143 terminated "
           "(SIGTERM).\n");
}

/* Writes word as one shell word: in single quotes, a ' inside as '\'' , so that any path or value
 * reaches pare unchanged (a line break cannot occur: the callers refuse it, the jobs file being one per line). */
static void put_word(FILE *f, const char *word)
{
    fputc('\'', f);
    for (const char *c = word; *c; c++)
        fputs(*c == '\'' ? "'\\''" : (char[]){*c, 0}, f);
    fputc('\'', f);
}

/* The pieces of every job line that are the same for all points: absolute, so that a job means the
 * same on any host that sees the same paths, whatever folder the scheduler starts it in. */
typedef struct {
    char cwd[PATH_MAX], exe[PATH_MAX], recipe[PATH_MAX], out[PATH_MAX];
} job_paths;

static int job_paths_find(job_paths *jp, const char *recipe, const char *out)
{
    ssize_t n = readlink("/proc/self/exe", jp->exe, sizeof jp->exe - 1);
    if (!getcwd(jp->cwd, sizeof jp->cwd) || n <= 0 || !realpath(recipe, jp->recipe)) {
        fprintf(stderr, "pare run: --emit-jobs: cannot resolve the paths of the jobs (%s)\n", strerror(errno));
        return -1;
    }
    jp->exe[n] = 0;
    if (out[0] == '/')
        snprintf(jp->out, sizeof jp->out, "%s", out);
    else if (snprintf(jp->out, sizeof jp->out, "%s/%s", jp->cwd, out) >= (int)sizeof jp->out) {
        fprintf(stderr, "pare run: --out %s: the path is too long\n", out);
        return -1;
    }
    for (size_t len = strlen(jp->out); len > 1 && jp->out[len - 1] == '/';)
        jp->out[--len] = 0;
    const char *const all[] = {jp->cwd, jp->exe, jp->recipe, jp->out};
    for (int i = 0; i < 4; i++)
        if (strpbrk(all[i], "\n\r")) {
            fprintf(stderr, "pare run: --emit-jobs: the path %s holds a line break, which a jobs file cannot carry\n",
                    all[i]);
            return -1;
        }
    return 0;
}

/* --emit-jobs FILE: one line per point of the recipe, written atomically. */
static int emit_jobs(lsession *s, const char *recipe, const char *file, const char *out, int overwrite, int sandbox,
                     const char *const *allows, int n_allows, int quiet)
{
    if (!out) {
        fprintf(stderr, "pare run: --emit-jobs needs --out OUT (each point runs into OUT/points/NAME)\n");
        return EXIT_BAD_INPUT;
    }
    int rc = cli_check_out("run", "--out", out);
    if (rc || (rc = cli_check_out("run", "--emit-jobs", file)))
        return rc;
    job_paths jp;
    if (job_paths_find(&jp, recipe, out))
        return EXIT_BAD_INPUT;
    for (int i = 0; i < n_allows; i++)
        if (strpbrk(allows[i], "\n\r")) {
            fprintf(stderr, "pare run: --allow %s: a line break cannot go into a jobs file\n", allows[i]);
            return EXIT_BAD_INPUT;
        }
    char msg[8192];
    ls_point *points;
    int n;
    if (lsession_points(s, &points, &n, msg, sizeof msg)) {
        fprintf(stderr, "pare run: %s\n", msg);
        return EXIT_BAD_INPUT;
    }
    pare_atomic_file f;
    pare_error err = {0};
    if (pare_atomic_open(&f, file, &err)) {
        fprintf(stderr, "pare run: --emit-jobs %s: cannot write the jobs file (%s)\n", file, err.msg);
        lsession_free_points(points, n);
        return EXIT_BAD_INPUT;
    }
    for (int i = 0; i < n; i++) {
        char point_out[PATH_MAX + 200];
        snprintf(point_out, sizeof point_out, "%s/points/%s", jp.out, points[i].name);
        /* cd first: a relative value (a --set path) means what it meant here */
        fputs("cd ", f.fp);
        put_word(f.fp, jp.cwd);
        fputs(" && ", f.fp);
        put_word(f.fp, jp.exe);
        fputs(" run ", f.fp);
        put_word(f.fp, jp.recipe);
        fputs(" --out ", f.fp);
        put_word(f.fp, point_out);
        fputs(overwrite ? " --overwrite" : "", f.fp);
        fputs(sandbox ? " --sandbox" : "", f.fp);
        for (int k = 0; k < n_allows; k++) {
            fputs(" --allow ", f.fp);
            put_word(f.fp, allows[k]);
        }
        for (int k = 0; k < points[i].n_sets; k++) {
            fputs(" --set ", f.fp);
            put_word(f.fp, points[i].sets[k]);
        }
        fputc('\n', f.fp);
    }
    rc = pare_atomic_commit(&f, &err) ? cli_error("run", &err) : 0;
    if (!rc && !quiet)
        fprintf(stderr, "pare run: %d jobs in %s, one per line, each into %s/points/NAME; then pare compare %s\n", n,
                file, jp.out, jp.out);
    lsession_free_points(points, n);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    const char *recipe = NULL, *out = NULL, *jobs = NULL;
    int help = 0, quiet = 0, overwrite = 0, sandbox = 0;
    enum { MAX_SETS = 256 };
    const char *sets[MAX_SETS], *allows[MAX_SETS];
    int n_sets = 0, n_allows = 0;
    static char model_set[4200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            help = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            quiet = 1;
        else if (!strcmp(a, "--overwrite"))
            overwrite = 1;
        else if (!strcmp(a, "--sandbox"))
            sandbox = 1;
        else if (!strcmp(a, "--set") || !strcmp(a, "--model") || !strcmp(a, "--out") || !strcmp(a, "--allow") ||
                 !strcmp(a, "--emit-jobs")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pare run: %s needs a value\n", a);
                return EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--out")) {
                out = argv[++i];
                continue;
            }
            if (!strcmp(a, "--emit-jobs")) {
                jobs = argv[++i];
                continue;
            }
            if (!strcmp(a, "--allow")) {
                if (n_allows == MAX_SETS) {
                    fprintf(stderr, "pare run: too many --allow options\n");
                    return EXIT_BAD_INPUT;
                }
                allows[n_allows++] = argv[++i];
                continue;
            }
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "pare run: too many --set options\n");
                return EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--model")) {
                snprintf(model_set, sizeof model_set, "model=%s", argv[++i]);
                sets[n_sets++] = model_set;
            } else
                sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6) && n_sets < MAX_SETS)
            sets[n_sets++] = a + 6;
        else if (!strncmp(a, "--out=", 6))
            out = a + 6;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "pare run: unknown option '%s' (pare run --help)\n", a);
            return EXIT_BAD_INPUT;
        } else if (!recipe)
            recipe = a;
        else {
            fprintf(stderr, "pare run: one recipe at a time ('%s' and '%s')\n", recipe, a);
            return EXIT_BAD_INPUT;
        }
    }
    if (!recipe) {
        if (help) {
            run_usage();
            return 0;
        }
        fprintf(stderr, "pare run: give a recipe file, e.g. pare run presets/lorap.lua --model DIR\n");
        return EXIT_BAD_INPUT;
    }
    term_sink term = {.quiet = quiet, .tty = isatty(2)};
    ls_sink sink = {on_event, cli_interrupted, &term};
    char msg[8192];
    if (n_allows && !sandbox) {
        fprintf(stderr, "pare run: --allow only makes sense with --sandbox\n");
        return EXIT_BAD_INPUT;
    }
    for (int i = 0; i < n_allows; i++)
        if (access(allows[i], F_OK)) {
            fprintf(stderr, "pare run: --allow %s: %s\n", allows[i], strerror(errno));
            return EXIT_BAD_INPUT;
        }
    lsession *s = lsession_open(recipe, &sink, sandbox ? LS_SANDBOX : 0, allows, n_allows, msg, sizeof msg);
    if (!s) {
        fprintf(stderr, "pare run: %s\n", msg);
        return EXIT_BAD_INPUT;
    }
    int rc = 0;
    if (help) {
        lsession_help(s, stdout);
        goto done;
    }
    for (int i = 0; i < n_sets; i++) {
        if (lsession_set_arg(s, sets[i], msg, sizeof msg)) {
            fprintf(stderr, "pare run: %s\n", msg);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
    }
    if (jobs) {
        rc = emit_jobs(s, recipe, jobs, out, overwrite, sandbox, allows, n_allows, quiet);
        goto done;
    }
    cli_install_sigint();
    ls_status st = lsession_run(s, out, overwrite, msg, sizeof msg);
    end_line(&term);
    switch (st) {
    case LS_REFUSED:
        fprintf(stderr, "pare run: %s\n", msg);
        rc = EXIT_BAD_INPUT;
        break;
    case LS_COMPLETE:
        if (!quiet)
            fprintf(stderr, "run record: %s/run.json\n", lsession_out_dir(s));
        break;
    case LS_CANCELLED:
        if (has_record(s))
            fprintf(stderr, "pare run: %s\npare run: interrupted; %s/run.json says cancelled; no result\n", msg,
                    lsession_out_dir(s));
        else
            fprintf(stderr, "pare run: %s\npare run: interrupted; no run record could be written (see %s/log.txt)\n",
                    msg, lsession_out_dir(s));
        rc = cli_interrupt_status();
        break;
    case LS_FAILED:
        fprintf(stderr, "pare run: %s\n", msg);
        if (cli_interrupted()) { /* the failure came from the signal: a read the signal broke off, say */
            fprintf(stderr, "pare run: interrupted\n");
            rc = cli_interrupt_status();
            break;
        }
        if (has_record(s))
            fprintf(stderr, "pare run: failed; see %s/run.json and log.txt\n", lsession_out_dir(s));
        else /* run.json itself could not be written (full disk): do not point at a file that is not there */
            fprintf(stderr, "pare run: failed; no run record could be written (see %s/log.txt)\n", lsession_out_dir(s));
        rc = EXIT_BAD_INPUT;
        break;
    }
done:
    lsession_close(s);
    return rc;
}

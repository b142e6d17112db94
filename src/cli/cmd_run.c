/* `pare run RECIPE`: runs a Lua recipe through the session runner (lua/lsession.c) into an output
 * folder; events go to the terminal (print() to stdout, log lines and progress with ETA to stderr);
 * Ctrl-C (SIGTERM) cancels the running step, run.json then says "cancelled", and the exit status is 130 (143). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
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
           "       pare run RECIPE --help     (the recipe's parameters)\n\n"
           "Runs a Lua recipe (see docs/recipes.md and presets/) into an output folder OUT (default\n"
           "$PARE_RUNS/RECIPE-YYYYmmdd-HHMMSS, PARE_RUNS defaulting to ./runs): OUT/run.json (parameters, hashes, "
           "decisions, metrics, timings,\n"
           "status, plots), OUT/log.txt, OUT/recipe.lua, the plots size_quality.png and budget.png when the run has\n"
           "results for them, and whatever the recipe writes there (pare.out).\n"
           "--model DIR is --set model=DIR. --overwrite replaces a finished run in OUT.\n"
           "--sandbox runs a recipe you do not trust: no os.execute, io.popen, package.loadlib, C modules or\n"
           "debug library, text chunks only, files read only under the model and the paths given with --model,\n"
           "--set and --allow (and pare's Lua folders), files written only under OUT (docs/reliability.md).\n"
           "Exit status: 0 done, 2 bad input or a script/core error, 130 interrupted (Ctrl-C), 143 terminated "
           "(SIGTERM).\n");
}

int cmd_run(int argc, char **argv)
{
    const char *recipe = NULL, *out = NULL;
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
        else if (!strcmp(a, "--set") || !strcmp(a, "--model") || !strcmp(a, "--out") || !strcmp(a, "--allow")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pare run: %s needs a value\n", a);
                return EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--out")) {
                out = argv[++i];
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

/* `pare run RECIPE`: runs a Lua recipe (lua/lrecipe.c) with the `pare` module (lua/lpare.c); events
 * (log lines, progress with ETA) go to stderr, Ctrl-C cancels the running step and exits 130. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lpare.h"

typedef struct {
    int quiet, tty, active, last_decile;
    char stage[64];
    char last_detail[128]; /* where the step was, for "interrupted at ..." */
    double start, last_print;
} run_sink;

/* Progress of the running core step on stderr: \r-updated on a terminal, a line every 10% otherwise. */
static void sink_progress(void *user, const char *stage, double fraction, const char *detail)
{
    run_sink *s = user;
    snprintf(s->last_detail, sizeof s->last_detail, "%s %s", stage ? stage : "", detail ? detail : "");
    if (s->quiet)
        return;
    double now = cli_now();
    if (!s->active || strcmp(s->stage, stage ? stage : "") != 0) {
        if (s->active && s->tty)
            fputc('\n', stderr);
        snprintf(s->stage, sizeof s->stage, "%s", stage ? stage : "");
        s->start = s->last_print = now;
        s->last_decile = -1;
        s->active = 1;
    }
    int decile = (int)(fraction * 10);
    if (s->tty ? now - s->last_print < 0.2 && fraction < 1 : decile == s->last_decile)
        return;
    s->last_print = now;
    s->last_decile = decile;
    double el = now - s->start, eta = fraction > 0 ? el * (1 - fraction) / fraction : 0;
    fprintf(stderr, "%s[%s] %5.1f%%  %s  ETA %.0fs%s", s->tty ? "\r" : "", s->stage, 100 * fraction,
            detail ? detail : "", eta, s->tty ? "   " : "\n");
    if (fraction >= 1) {
        if (s->tty)
            fputc('\n', stderr);
        s->active = 0;
    }
}

static void sink_end(run_sink *s)
{
    if (s->active && s->tty && !s->quiet)
        fputc('\n', stderr);
    s->active = 0;
}

static void sink_log(void *user, const char *line)
{
    run_sink *s = user;
    sink_end(s); /* end a \r progress line first */
    if (!s->quiet)
        fprintf(stderr, "%s\n", line);
}

/* A pure-Lua loop is interrupted too: the hook raises once Ctrl-C was pressed. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (cli_interrupted())
        luaL_error(L, "interrupted");
}

static void run_usage(void)
{
    printf("usage: pare run RECIPE [--model DIR] [--set name=value ...] [--quiet]\n"
           "       pare run RECIPE --help     (the recipe's parameters)\n\n"
           "Runs a Lua recipe (see docs/recipes.md and presets/). --model DIR is --set model=DIR.\n"
           "Exit status: 0 done, 2 bad input or a script/core error, 130 interrupted (Ctrl-C).\n");
}

int cmd_run(int argc, char **argv)
{
    const char *recipe = NULL;
    int help = 0, quiet = 0;
    enum { MAX_SETS = 256 };
    const char *sets[MAX_SETS];
    int n_sets = 0;
    static char model_set[4200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            help = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            quiet = 1;
        else if (!strcmp(a, "--set") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pare run: %s needs a value\n", a);
                return EXIT_BAD_INPUT;
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
        } else if (!strncmp(a, "--set=", 6))
            sets[n_sets < MAX_SETS ? n_sets++ : n_sets - 1] = a + 6;
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
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "pare run: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    luaL_openlibs(L);
    run_sink sink = {.quiet = quiet, .tty = isatty(2)};
    lpare_host host = {cli_interrupted, sink_progress, sink_log, &sink, 0};
    lpare_set_host(L, &host);
    int rc = 0;
    if (lrecipe_load(L, recipe) != LUA_OK) {
        fprintf(stderr, "pare run: %s\n", lua_tostring(L, -1));
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (help) {
        lrecipe_help(L, recipe, stdout);
        goto done;
    }
    for (int i = 0; i < n_sets; i++) {
        char key[256], msg[1024];
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof key) {
            fprintf(stderr, "pare run: --set '%s': expected name=value\n", sets[i]);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
        memcpy(key, sets[i], (size_t)(eq - sets[i]));
        key[eq - sets[i]] = 0;
        if (lrecipe_set(L, key, eq + 1, msg, sizeof msg)) {
            fprintf(stderr, "pare run: %s\n", msg);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
    }
    cli_install_sigint();
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
    int st = lrecipe_run(L);
    sink_end(&sink);
    if (st != LUA_OK) {
        fprintf(stderr, "pare run: %s\n", lua_tostring(L, -1));
        if (host.canceled || cli_interrupted()) {
            fprintf(stderr, "pare run: interrupted%s%s; no result\n", sink.last_detail[0] ? " at " : "",
                    sink.last_detail);
            rc = EXIT_INTERRUPTED;
        } else
            rc = EXIT_BAD_INPUT;
    }
done:
    lua_close(L);
    return rc;
}

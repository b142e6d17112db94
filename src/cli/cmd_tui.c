/* `pare tui`: the workbench's options (checked here, with the model loaded as every command loads it),
 * then ui/'s entry point, tui_run. The terminal, the panes and the loop are in ui/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/tasks.h"
#include "core/fileio.h"
#include "tui.h"

int cmd_tui(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL, *calib = NULL, *eval = NULL, *out = NULL;
    const char *task = NULL, *task_data = NULL;
    const char *keys_spec = NULL, *dump = NULL, *size = NULL, *allow_usage = NULL; /* --allow: taken out below */
    tui_settings set;
    tui_settings_defaults(&set);
    size_t limit_sz = 0, task_limit = 0;
    int help = 0, sandbox = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model,
         "model folder (Hugging Face or pare export) or llama2.c checkpoint (default $PARE_MODEL)"},
        {"calib", OPT_STR, &calib, "calibration text (weighted spectra, methods that need statistics)"},
        {"calib-samples", OPT_INT, &set.calib_samples, cli_help_default("calibration windows", set.calib_samples)},
        {"calib-len", OPT_INT, &set.calib_len, cli_help_default("tokens per calibration window", set.calib_len)},
        {"seed", OPT_U64, &set.seed, cli_help_default("seed of the calibration windows", (double)set.seed)},
        {"eval", OPT_STR, &eval, "evaluation text for e / F6"},
        {"window", OPT_INT, &set.window, cli_help_default("evaluation window", set.window)},
        {"limit-tokens", OPT_SIZE, &limit_sz, "evaluate only the first N tokens (default: all)"},
        {"task", OPT_STR, &task, cli_help("zero-shot task e also scores: %s", cli_names(PARE_TASK_NAMES, " | ", " | "))},
        {"task-data", OPT_STR, &task_data, "the task's data file or folder (as pare eval --task-data)"},
        {"task-limit", OPT_SIZE, &task_limit, "score only the first N items of the task (default: all)"},
        {"out", OPT_STR, &out, "session folder for recipes, exports, plots (default $PARE_RUNS/tui-TIME)"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"sandbox", OPT_FLAG, &sandbox, "run F5's recipes in the sandbox of pare run --sandbox (F2 toggles it)"},
        {"allow", OPT_STR, &allow_usage, "a file or folder sandboxed recipes may also read (repeatable)"},
        {"keys", OPT_STR, &keys_spec, "headless: replay these keys (\"j j Right e\", 'text' typed as is)"},
        {"dump-screen", OPT_STR, &dump, "headless: write the final screen as UTF-8 text to FILE (- for stdout)"},
        {"size", OPT_STR, &size, "headless screen size COLSxROWS (default 120x40)"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    /* --allow may repeat: taken out here, the rest parsed as usual */
    const char **allow = calloc((size_t)argc + 1, sizeof *allow);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_allow = 0, n_rest = 0;
    if (!allow || !rest) {
        free(allow);
        free(rest);
        fprintf(stderr, "pare tui: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--allow")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pare tui: --allow needs a value\n");
                free(allow);
                free(rest);
                return EXIT_BAD_INPUT;
            }
            allow[n_allow++] = argv[++i];
        } else if (i > 0 && !strncmp(argv[i], "--allow=", 8))
            allow[n_allow++] = argv[i] + 8;
        else
            rest[n_rest++] = argv[i];
    }
    int bad = cli_parse("tui", n_rest, rest, opts, n_opts);
    free(rest);
    if (bad) {
        free(allow);
        return EXIT_BAD_INPUT;
    }
    if (help) {
        free(allow);
        cli_usage("tui",
                  "--model DIR [--calib TEXT] [--eval TEXT] [--out DIR] [--sandbox [--allow PATH ...]]\n"
                  "                [--keys KEYS --dump-screen FILE [--size COLSxROWS]]",
                  opts, n_opts);
        printf("\nKeys and panes: docs/tui.md (? inside the workbench). --keys and --dump-screen run without a\n"
               "terminal: the keys are replayed, each after the jobs the previous ones started have finished.\n");
        return 0;
    }
    set.limit_tokens = (long long)limit_sz;
    pare_error err = {0};
    if (!model || !*model)
        model = getenv("PARE_MODEL");
    int headless = keys_spec || dump || size;
    int cols = 120, rows = 40, n_keys = 0;
    int *keys = NULL;
    char msg[512];
    if (!model || !*model)
        pare_fail(&err, PARE_EINVAL,
                  "no model: pass --model DIR or set PARE_MODEL; without one, `pare demo` trains a "
                  "small model on the Brown corpus (make corpus) and opens the workbench on it");
    else if (size && tui_parse_size(size, &cols, &rows))
        pare_fail(&err, PARE_EINVAL, "--size %s: expected COLSxROWS, e.g. 120x40", size);
    else if (keys_spec && tui_parse_keys(keys_spec, &keys, &n_keys, msg, sizeof msg))
        pare_fail(&err, PARE_EINVAL, "--keys: %s", msg);
    else if (set.calib_samples < 1 || set.calib_len < 2 || set.window < 2)
        pare_fail(&err, PARE_EINVAL, "--calib-samples must be >= 1, --calib-len and --window >= 2");
    for (int i = 0; !err.code && i < n_allow; i++)
        if (access(allow[i], F_OK))
            pare_fail(&err, PARE_EIO, "--allow %s: %s", allow[i], strerror(errno));
    if (err.code) {
        free(keys);
        free(allow);
        return cli_error("tui", &err);
    }
    if (calib)
        snprintf(set.calib, sizeof set.calib, "%s", calib);
    if (eval)
        snprintf(set.eval, sizeof set.eval, "%s", eval);
    if ((task || task_data) && tui_settings_set_task(&set, task ? task : "", task_data, (long long)task_limit, &err)) {
        if (!task)
            pare_fail(&err, PARE_EINVAL, "--task-data without --task KIND");
        return cli_error("tui", &err);
    }
    const char *files[] = {set.calib, set.eval};
    for (int i = 0; i < 2; i++)
        if (files[i][0] && !pare_file_exists(files[i])) {
            pare_fail(&err, PARE_EIO, "%s: cannot open: No such file or directory", files[i]);
            free(keys);
            free(allow);
            return cli_error("tui", &err);
        }
    /* the same output rules as every other --out (never /, the current folder or one above it) */
    int bad_out = out ? cli_check_out("tui", "--out", out) : 0;
    if (!bad_out && dump)
        bad_out = cli_check_out("tui", "--dump-screen", dump);
    if (bad_out) {
        free(keys);
        free(allow);
        return bad_out;
    }
    if (out)
        snprintf(set.out, sizeof set.out, "%s", out);
    else {
        const char *runs = getenv("PARE_RUNS");
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(set.out, sizeof set.out, "%s/tui-%s", runs && *runs ? runs : "runs", stamp);
    }
    if (!headless && (!isatty(0) || !isatty(1))) {
        free(allow);
        pare_fail(&err, PARE_EINVAL,
                  "needs a terminal (stdin and stdout); for batch work use pare compress or pare run, for a scripted "
                  "session --keys and --dump-screen");
        return cli_error("tui", &err);
    }
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err)) {
        free(keys);
        free(allow);
        return cli_error("tui", &err);
    }
    tui_options o = {.model = m,
                     .model_path = model,
                     .set = set,
                     .sandbox = sandbox,
                     .allow = allow,
                     .n_allow = n_allow,
                     .headless = headless,
                     .cols = cols,
                     .rows = rows,
                     .keys = keys,
                     .n_keys = n_keys,
                     .dump = dump};
    int rc = tui_run(&o, &err);
    free(keys);
    if (rc < 0)
        return cli_error("tui", &err);
    return rc == TUI_INTERRUPTED ? EXIT_INTERRUPTED : 0;
}

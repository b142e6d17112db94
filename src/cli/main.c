/* pare's batch CLI: dispatches subcommands. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "environment.h"
#include "core/parallel.h"

#include "core/version.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"eval", cmd_eval, "perplexity on a text file under a stated protocol"},
    {"info", cmd_info, "architecture, parameter counts, memory, linear matrices"},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled)"},
    {"tokenize", cmd_tokenize, "show how a text tokenizes"},
    {"compress", cmd_compress, "compress with LoRAP or a baseline at a ratio, evaluate and export"},
    {"run", cmd_run, "run a Lua recipe (presets/*.lua): pare run RECIPE [--model DIR] [--set k=v]"},
    {"compare", cmd_compare, "one table of the results of several runs: pare compare OUT1 OUT2 [--markdown FILE]"},
    {"init", cmd_init, "a random-initialized model of any supported shape (tools/shapes/*.json), streamed to disk"},
    {"train", cmd_train, "train a new model from a text (architecture from flags or a config.json)"},
    {"finetune", cmd_finetune,
     "fine-tune a model on a text, optionally pruning it (movement, sensitivity, magnitude) or with mixed rank"},
    {"spectra", cmd_spectra, "singular-value statistics of every block matrix (plain, activation, whitened)"},
    {"plot", cmd_plot, "charts as PNG or in the terminal: spectra, energy ranks, masks, budgets, size vs quality"},
    {"tui", cmd_tui, "interactive workbench: spectra, rank cursor, budgets, evaluations, saved recipes"},
    {"demo", cmd_demo, "no model at hand: train a small one on the Brown corpus once (cached), open the workbench"},
};

/* The thread count from PARE_THREADS, else OMP_NUM_THREADS (the core reads no environment). A value
 * that is not a positive integer is ignored with a warning; one above pare_max_threads() is clamped. */
static void set_threads_from_env(void)
{
    const char *names[] = {"PARE_THREADS", "OMP_NUM_THREADS"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (!v || !*v)
            continue;
        long long n;
        pare_error err;
        if (pare_parse_int(names[i], v, 1, INT_MAX, &n, &err)) {
            fprintf(stderr, "pare: warning: %s; ignored\n", err.msg);
            continue;
        }
        if (n > pare_max_threads())
            fprintf(stderr, "pare: warning: %s=%lld is more than %d threads (4 x the cores); using %d\n", names[i], n,
                    pare_max_threads(), pare_max_threads());
        pare_set_threads((int)n);
        return;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "pare %s: compress transformer language models by pruning and low-rank factorization\n\n"
            "usage: pare COMMAND [options]   (pare COMMAND --help for its options)\n\ncommands:\n",
            PARE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    const char *model = getenv("PARE_MODEL");
    if (!model || !*model)
        fprintf(f, "\nNo model at hand? `make corpus && pare demo` trains a small LLaMA on the Brown corpus (about 5\n"
                   "minutes on 2 cores, cached) and opens the workbench on it (docs/demo.md).\n");
}

int main(int argc, char **argv)
{
    cli_select_blas_kernel(argv);
    set_threads_from_env();
    cli_apply_environment();
    int grc = cli_take_global_options(&argc, argv);
    if (grc)
        return grc;
    if (argc < 2) {
        usage(stderr);
        return EXIT_BAD_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pare %s\n", PARE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "pare: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_BAD_INPUT;
}

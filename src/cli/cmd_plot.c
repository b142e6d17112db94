/* `pare plot KIND`: the charts of src/plot/charts.c as a PNG or in the terminal: a matrix's spectrum,
 * the spectra of one matrix type across layers, energy ranks, a mask's density, the FFN channel
 * keep-map, the parameter budget, and size against quality across run records (run.json). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "core/calib.h"
#include "plot/charts.h"
#include "core/fileio.h"
#include "core/method.h"
#include "record/runplots.h"
#include "record/runrec.h"

enum { K_SPECTRUM, K_SPECTRA, K_ENERGY, K_MASK, K_CHANNELS, K_BUDGET, K_SQ, K_COUNT };
static const char *const KINDS[] = {"spectrum", "spectra", "energy-ranks", "mask",
                                    "channels", "budget",  "size-quality"};
static const char *const KIND_HELP[] = {
    "singular values of one matrix (plain, activation-weighted, whitened), chosen and break-even rank, energy",
    "spectra of one matrix type (--type q) across all layers, normalized",
    "rank for 90/95/99% energy of every matrix as a fraction of full rank (attention vs FFN)",
    "density of one matrix's mask per tile",
    "FFN channels kept (layers x channels as loaded)",
    "parameters kept per matrix, by how each was compressed",
    "parameters against a metric across run records: pare plot size-quality OUT1 OUT2 ...",
};
static void plot_usage(FILE *f)
{
    fprintf(f, "usage: pare plot KIND --model M [options] [--out FILE.png | --terminal [--ascii]]\n"
               "       pare plot size-quality OUT1 OUT2 ... [--convention block|total] [--metric \"ppl FILE\"] "
               "[--out FILE.png]\n"
               "       pare plot KIND --help     (the options of a kind)\n\nkinds:\n");
    for (int k = 0; k < K_COUNT; k++)
        fprintf(f, "  %-13s %s\n", KINDS[k], KIND_HELP[k]);
    fprintf(f, "\nThe PNG goes to --out (default KIND.png), 1200x800 unless --size WxH; --terminal prints the chart\n"
               "(braille, or ASCII with --ascii) at the terminal's size or --size COLSxROWS. See docs/plots.md.\n");
}

/* The terminal's size, or 100 x 30 when stdout is not one. */
static void terminal_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 100;
    *rows = 30;
    if (isatty(1) && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20 && ws.ws_row >= 8) {
        *cols = ws.ws_col;
        *rows = ws.ws_row - 1;
    }
}

/* Renders the chart where the options say; returns the exit status. */
static int emit(pare_plot *p, const char *out, int w, int h, int terminal, int ascii, const char *source)
{
    pare_error err = {0};
    if (terminal) {
        pare_term_grid *g = NULL;
        char *text = NULL;
        if (pare_plot_render_terminal(p, w, h, ascii ? PARE_TERM_ASCII : PARE_TERM_BRAILLE, &g, &err) ||
            pare_term_grid_to_text(g, &text, &err)) {
            pare_term_grid_free(g);
            return cli_error("plot", &err);
        }
        fputs(text, stdout);
        free(text);
        pare_term_grid_free(g);
        return 0;
    }
    /* a missing folder is named as such, not through the writer's temporary file */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (!pare_is_dir(dir)) {
            pare_fail(&err, PARE_EIO, "--out %s: the folder %s does not exist", out, dir);
            return cli_error("plot", &err);
        }
    }
    if (pare_plot_write_png(p, out, w, h, &(pare_png_meta){.source = source}, &err))
        return cli_error("plot", &err);
    printf("plot: %s (%d x %d)\n", out, w, h);
    return 0;
}

/* Which options each kind reads (the rest are refused, so that a misplaced one does not go unnoticed). */
enum {
    U_MODEL = 1 << 0,
    U_MATRIX = 1 << 1,
    U_TYPE = 1 << 2,
    U_WEIGHT = 1 << 3,
    U_RANK = 1 << 4,
    U_TILE = 1 << 5,
    U_RUNS = 1 << 6
};
static const int USES[K_COUNT] = {
    [K_SPECTRUM] = U_MODEL | U_MATRIX | U_WEIGHT | U_RANK,
    [K_SPECTRA] = U_MODEL | U_TYPE | U_WEIGHT,
    [K_ENERGY] = U_MODEL | U_WEIGHT,
    [K_MASK] = U_MODEL | U_MATRIX | U_TILE,
    [K_CHANNELS] = U_MODEL,
    [K_BUDGET] = U_MODEL,
    [K_SQ] = U_RUNS,
};

int cmd_plot(int argc, char **argv)
{
    if (argc < 2) {
        plot_usage(stderr);
        return EXIT_BAD_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        plot_usage(stdout);
        return 0;
    }
    int kind = -1;
    for (int k = 0; k < K_COUNT; k++)
        if (!strcmp(argv[1], KINDS[k]))
            kind = k;
    if (kind < 0) {
        fprintf(stderr,
                "pare plot: unknown kind '%s' (kinds: spectrum, spectra, energy-ranks, mask, channels, budget, "
                "size-quality)\n",
                argv[1]);
        return EXIT_BAD_INPUT;
    }
    const char *model = NULL, *tok = NULL, *matrix = NULL, *type = NULL, *weighting = NULL, *calib = NULL;
    const char *out = NULL, *size = NULL, *title = NULL, *convention = "block", *metric = NULL;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    int rank = 0, tile = 0, terminal = 0, ascii = 0, log_x = 0, log_y = 0, help = 0;
    int samples_set = -1;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face or pare export) or llama2.c checkpoint"},
        {"matrix", OPT_STR, &matrix, "spectrum, mask: the matrix, by name or LAYER.TYPE (0.q, 3.down)"},
        {"type", OPT_STR, &type, "spectra: q | k | v | o | gate | up | down"},
        {"weighting", OPT_STR, &weighting,
         cli_help("spectra, energy-ranks: %s; spectrum: %s skips the whitened curve",
                  cli_names(PARE_WEIGHTING_NAMES, " | ", " | "), PARE_WEIGHTING_NAMES[PARE_WEIGHT_ACT])},
        {"calib", OPT_STR, &calib, "calibration text for weighted spectra"},
        {"calib-samples", OPT_INT, &samples_set, cli_help_default("calibration windows", co.samples)},
        {"calib-len", OPT_INT, &co.len, cli_help_default("tokens per calibration window", co.len)},
        {"seed", OPT_U64, &co.seed, cli_help_default("seed for the calibration windows", (double)co.seed)},
        {"rank", OPT_INT, &rank, "spectrum: the rank to mark (default: the matrix's rank when factorized)"},
        {"tile", OPT_INT, &tile, "mask: tile edge in weights (default: at most 64 tiles along the longer side)"},
        {"convention", OPT_STR, &convention, "size-quality: block (decoder-block linears) | total (all parameters)"},
        {"metric", OPT_STR, &metric,
         "size-quality: \"NAME\" or \"NAME FILE\", e.g. \"ppl wiki.test.raw\" (default: the first)"},
        {"log-x", OPT_FLAG, &log_x, "size-quality: logarithmic parameter axis"},
        {"log-y", OPT_FLAG, &log_y, "size-quality: logarithmic metric axis"},
        {"title", OPT_STR, &title, "the chart's title"},
        {"out", OPT_STR, &out, "PNG file to write (default KIND.png)"},
        {"size", OPT_STR, &size, "WxH: pixels (default 1200x800), or COLSxROWS with --terminal"},
        {"terminal", OPT_FLAG, &terminal, "print the chart in the terminal (braille) instead of writing a PNG"},
        {"ascii", OPT_FLAG, &ascii, "with --terminal: ASCII characters only"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    /* size-quality takes run folders as positional arguments: keep them apart from the options */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    const char **runs = calloc((size_t)argc + 1, sizeof *runs);
    int n_args = 0, n_runs = 0, rc = 0;
    if (!args || !runs) {
        free(args), free(runs);
        fprintf(stderr, "pare plot: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    args[n_args++] = argv[0];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            args[n_args++] = argv[i];
            const char *name = a + (a[1] == '-' ? 2 : 1);
            if (strchr(name, '='))
                continue;
            for (int k = 0; k < n_opts; k++)
                if (!strcmp(opts[k].name, name) && opts[k].type != OPT_FLAG && i + 1 < argc)
                    args[n_args++] = argv[++i];
        } else if (kind == K_SQ) {
            runs[n_runs++] = a;
        } else {
            fprintf(stderr, "pare plot: unexpected argument '%s' (see pare plot %s --help)\n", a, KINDS[kind]);
            free(args), free(runs);
            return EXIT_BAD_INPUT;
        }
    }
    if (cli_parse("plot", n_args, args, opts, n_opts)) {
        free(args), free(runs);
        return EXIT_BAD_INPUT;
    }
    free(args);
    if (help) {
        char synopsis[256];
        snprintf(synopsis, sizeof synopsis, "%s %s", KINDS[kind],
                 kind == K_SQ ? "OUT1 OUT2 ... [--convention block|total] [--metric \"NAME FILE\"] [--out FILE.png]"
                              : "--model M [options] [--out FILE.png | --terminal]");
        printf("%s\n\n", KIND_HELP[kind]);
        cli_usage("plot", synopsis, opts, n_opts);
        free(runs);
        return 0;
    }
    pare_error err = {0};
    int uses = USES[kind];
    int wk = -1;
    const char *misplaced = !(uses & U_MODEL) && model                       ? "--model"
                            : !(uses & U_MATRIX) && matrix                   ? "--matrix"
                            : !(uses & U_TYPE) && type                       ? "--type"
                            : !(uses & U_WEIGHT) && (weighting || calib)     ? (weighting ? "--weighting" : "--calib")
                            : !(uses & U_RANK) && rank                       ? "--rank"
                            : !(uses & U_TILE) && tile                       ? "--tile"
                            : !(uses & U_RUNS) && (metric || log_x || log_y) ? (metric ? "--metric" : "--log-x/--log-y")
                                                                             : NULL;
    if (weighting)
        wk = cli_name_index(PARE_WEIGHTING_NAMES, weighting);
    int w = 0, h = 0;
    if (size && pare_parse_int_pair("--size", size, 'x', 1, 16384, &w, &h, &err))
        ; /* the message names --size and the value */
    else if (misplaced)
        pare_fail(&err, PARE_EINVAL, "%s is not an option of pare plot %s (see pare plot %s --help)", misplaced,
                  KINDS[kind], KINDS[kind]);
    else if (weighting && wk < 0)
        pare_fail(&err, PARE_EINVAL, "--weighting '%s': expected %s", weighting,
                  cli_names(PARE_WEIGHTING_NAMES, ", ", " or "));
    else if (wk > 0 && !calib)
        pare_fail(&err, PARE_EINVAL, "--weighting %s needs --calib FILE (e.g. brown_train.txt)", weighting);
    else if (calib && (kind == K_SPECTRUM ? wk == PARE_WEIGHT_NONE : wk <= 0))
        pare_fail(&err, PARE_EINVAL, "--calib is only used with --weighting act or whiten%s",
                  kind == K_SPECTRUM ? " (or no --weighting: every curve)" : "");
    else if (samples_set != -1 && samples_set < 1)
        pare_fail(&err, PARE_EINVAL, "--calib-samples %d: give at least 1 window", samples_set);
    else if ((uses & U_MATRIX) && !matrix)
        pare_fail(&err, PARE_EINVAL, "pare plot %s needs --matrix NAME (a full name or LAYER.TYPE such as 0.q)",
                  KINDS[kind]);
    else if ((uses & U_TYPE) && !type)
        pare_fail(&err, PARE_EINVAL, "pare plot spectra needs --type q|k|v|o|gate|up|down");
    else if (kind == K_SQ && n_runs == 0)
        pare_fail(&err, PARE_EINVAL, "give one or more run folders (pare run --out OUT) or run.json files");
    else if (kind == K_SQ && strcmp(convention, "block") && strcmp(convention, "total"))
        pare_fail(&err, PARE_EINVAL, "--convention '%s': expected block (decoder-block linears) or total", convention);
    else if (ascii && !terminal)
        pare_fail(&err, PARE_EINVAL, "--ascii goes with --terminal");
    else if (terminal && out)
        pare_fail(&err, PARE_EINVAL, "give --out FILE.png or --terminal, not both");
    else if (rank < 0 || tile < 0)
        pare_fail(&err, PARE_EINVAL, "%s %d: must be positive", rank < 0 ? "--rank" : "--tile", rank < 0 ? rank : tile);
    int bad_out = !err.msg[0] && out ? cli_check_out("plot", "--out", out) : 0;
    if (err.msg[0] || bad_out) {
        free(runs);
        return bad_out ? bad_out : cli_error("plot", &err);
    }
    if (samples_set > 0)
        co.samples = samples_set;
    if (!size) {
        if (terminal)
            terminal_size(&w, &h);
        else
            w = PARE_PLOT_DEFAULT_WIDTH, h = PARE_PLOT_DEFAULT_HEIGHT;
    }
    char default_out[64];
    snprintf(default_out, sizeof default_out, "%s.png", KINDS[kind]);
    if (!out)
        out = default_out;

    pare_plot *p = NULL;
    pare_model *m = NULL;
    pare_calib_stats *cs = NULL;
    char source[4400] = "";
    if (kind == K_SQ) {
        runplot_convention conv = strcmp(convention, "total") ? RUNPLOT_BLOCK : RUNPLOT_TOTAL;
        runplot_points pts = {0};
        char **labels = calloc((size_t)n_runs, sizeof *labels);
        pare_status st = labels ? PARE_OK : pare_fail(&err, PARE_ENOMEM, "out of memory");
        for (int r = 0; r < n_runs && !st; r++) {
            runrec rec;
            if ((st = runrec_load(runs[r], &rec, &err)))
                break;
            if (!(labels[r] = strdup(rec.name)))
                st = pare_fail(&err, PARE_ENOMEM, "out of memory");
            else if (runplot_add_results(&pts, rec.results, conv, metric, &err))
                st = pare_wrap(&err, "%s", rec.path);
            runrec_free(&rec);
            size_t sl = strlen(source);
            snprintf(source + sl, sizeof source - sl, "%s%s", r ? " " : "", runs[r]);
        }
        if (!st)
            st = runplot_separate_runs(&pts, (const char *const *)labels, &err);
        if (!st)
            st = runplot_size_quality(&pts, conv, log_x, log_y, title, &p, &err);
        for (int r = 0; labels && r < n_runs; r++)
            free(labels[r]);
        free(labels);
        runplot_points_free(&pts);
        if (st)
            rc = cli_error("plot", &err);
        goto render;
    }
    if (cli_load_model(model, tok, &m, &err)) {
        rc = cli_error("plot", &err);
        goto done;
    }
    snprintf(source, sizeof source, "%s", m->path);
    cli_install_sigint();
    if (calib) {
        co.gram = kind == K_SPECTRUM ? wk != PARE_WEIGHT_ACT : wk == PARE_WEIGHT_WHITEN;
        if (cli_calibrate_file(m, calib, &co, &cs, &err)) {
            rc = cli_error("plot", &err);
            goto done;
        }
    }
    cli_progress prog;
    cli_progress_init(&prog, "spectra", kind == K_SPECTRA ? m->cfg.n_layers : pare_model_linears(m, NULL, 0),
                      "matrices");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_chart_opts o = {.title = title,
                         .calib = cs,
                         .weighting = wk > 0 ? (pare_weighting)wk : PARE_WEIGHT_NONE,
                         .rank = rank,
                         .tile = tile,
                         .progress = &pp};
    pare_status st = PARE_OK;
    switch (kind) {
    case K_SPECTRUM: st = pare_chart_spectrum(m, matrix, &o, &p, &err); break;
    case K_SPECTRA: st = pare_chart_spectra_by_type(m, type, &o, &p, &err); break;
    case K_ENERGY: st = pare_chart_energy_ranks(m, &o, &p, &err); break;
    case K_MASK: st = pare_chart_mask_heatmap(m, matrix, &o, &p, &err); break;
    case K_CHANNELS: st = pare_chart_channel_map(m, &o, &p, &err); break;
    case K_BUDGET: st = pare_chart_budget(m, &o, &p, &err); break;
    }
    cli_progress_done(&prog);
    if (st)
        rc = cli_error("plot", &err);
render:
    if (!rc && p)
        rc = emit(p, out, w, h, terminal, ascii, source);
done:
    pare_plot_destroy(p);
    pare_calib_free(cs);
    pare_model_free(m);
    free(runs);
    return rc;
}

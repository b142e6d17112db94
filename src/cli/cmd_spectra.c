/* `pare spectra`: singular-value statistics of every decoder-block matrix, plain or weighted by
 * calibration activations (activation norms or the whitening Cholesky factor). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/calib.h"
#include "core/spectrum.h"
#include "core/json_number.h"
#include "core/method.h"

int cmd_spectra(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL, *weighting = PARE_WEIGHTING_NAMES[PARE_WEIGHT_NONE], *calib = NULL,
               *match = NULL;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    int json = 0, csv = 0, help = 0, values = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"weighting", OPT_STR, &weighting,
         cli_help("%s | %s (W diag(||X_j||), ASVD/LoRAP) | %s (W L, SVD-LLM)", PARE_WEIGHTING_NAMES[PARE_WEIGHT_NONE],
                  PARE_WEIGHTING_NAMES[PARE_WEIGHT_ACT], PARE_WEIGHTING_NAMES[PARE_WEIGHT_WHITEN])},
        {"calib", OPT_STR, &calib, "calibration text (needed for act and whiten)"},
        {"calib-samples", OPT_INT, &co.samples, cli_help_default("calibration windows", co.samples)},
        {"calib-len", OPT_INT, &co.len, cli_help_default("tokens per calibration window", co.len)},
        {"seed", OPT_U64, &co.seed, cli_help_default("seed for the calibration windows", (double)co.seed)},
        {"matrix", OPT_STR, &match, "only matrices whose name contains this text"},
        {"values", OPT_FLAG, &values, "with --csv or --json: include every singular value"},
        {"json", OPT_FLAG, &json, "print JSON"},
        {"csv", OPT_FLAG, &csv, "print CSV"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("spectra", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("spectra",
                  cli_help("--model M [--weighting %s --calib FILE] [--json|--csv]",
                           cli_names(PARE_WEIGHTING_NAMES, "|", "|")),
                  opts, n_opts);
        return 0;
    }
    pare_error err = {0};
    int wk = cli_name_index(PARE_WEIGHTING_NAMES, weighting);
    if (wk < 0)
        pare_fail(&err, PARE_EINVAL, "--weighting '%s': expected %s", weighting,
                  cli_names(PARE_WEIGHTING_NAMES, ", ", " or "));
    else if (wk > 0 && !calib)
        pare_fail(&err, PARE_EINVAL, "--weighting %s needs --calib FILE (e.g. brown_train.txt)", weighting);
    else if (json && csv)
        pare_fail(&err, PARE_EINVAL, "give at most one of --json and --csv");
    if (err.msg[0])
        return cli_error("spectra", &err);
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("spectra", &err);
    cli_install_sigint();
    int rc = 0;
    pare_calib_stats *cs = NULL;
    pare_model_spectra *sp = NULL;
    int nl = pare_model_linears(m, NULL, 0);
    co.gram = wk == PARE_WEIGHT_WHITEN;
    if (wk > 0 && cli_calibrate_file(m, calib, &co, &cs, &err)) {
        rc = cli_error("spectra", &err);
        goto done;
    }
    cli_progress prog;
    cli_progress_init(&prog, "spectra", nl, "matrices");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_status st = pare_model_spectra_weighted(m, cs, (pare_weighting)wk, &pp, &sp, &err);
    cli_progress_done(&prog);
    if (st) {
        rc = cli_error("spectra", &err);
        goto done;
    }
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < sp->count; i++) {
            const pare_matrix_spectrum *ms = &sp->mats[i];
            if (match && !strstr(ms->name, match))
                continue;
            const pare_spectrum_stats *t = &ms->stats;
            json_t *o = json_pack("{s:s, s:[i,i], s:s, s:o, s:o, s:o, s:i, s:i, s:i, s:i, s:o}", "name", ms->name,
                                  "shape", ms->m, ms->n, "weighting", weighting, "s_max", pare_json_number(t->s_max),
                                  "stable_rank", pare_json_number(t->stable_rank), "effective_rank",
                                  pare_json_number(t->effective_rank), "rank90", t->rank90, "rank95", t->rank95,
                                  "rank99", t->rank99, "break_even", t->break_even, "whiten_damping",
                                  pare_json_number(ms->info.damping));
            if (values) {
                json_t *v = json_array();
                for (int k = 0; k < t->r; k++)
                    json_array_append_new(v, pare_json_number(ms->s[k]));
                json_object_set_new(o, "values", v);
            }
            json_array_append_new(arr, o);
        }
        rc = cli_print_json("spectra", arr, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    } else if (csv) {
        printf(values ? "matrix,index,sigma,energy\n"
                      : "matrix,out,in,weighting,s_max,stable_rank,effective_rank,rank90,rank95,rank99,break_even\n");
        for (int i = 0; i < sp->count; i++) {
            const pare_matrix_spectrum *ms = &sp->mats[i];
            if (match && !strstr(ms->name, match))
                continue;
            const pare_spectrum_stats *t = &ms->stats;
            if (values) {
                double *e = malloc((size_t)t->r * sizeof *e);
                pare_spectrum_energy(ms->s, t->r, e);
                for (int k = 0; k < t->r; k++)
                    printf("%s,%d,%.9g,%.9g\n", ms->name, k + 1, ms->s[k], e[k]);
                free(e);
            } else {
                printf("%s,%d,%d,%s,%.6g,%.4f,%.4f,%d,%d,%d,%d\n", ms->name, ms->m, ms->n, weighting, t->s_max,
                       t->stable_rank, t->effective_rank, t->rank90, t->rank95, t->rank99, t->break_even);
            }
        }
    } else {
        printf("%-44s %11s %9s %8s %8s %6s %6s %6s %6s\n", "matrix", "shape", "s_max", "stable", "eff.rank", "r90",
               "r95", "r99", "b-even");
        for (int i = 0; i < sp->count; i++) {
            const pare_matrix_spectrum *ms = &sp->mats[i];
            if (match && !strstr(ms->name, match))
                continue;
            const pare_spectrum_stats *t = &ms->stats;
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%d", ms->m, ms->n);
            printf("%-44s %11s %9.4g %8.2f %8.1f %6d %6d %6d %6d%s\n", ms->name, shape, t->s_max, t->stable_rank,
                   t->effective_rank, t->rank90, t->rank95, t->rank99, t->break_even,
                   t->rank90 >= t->break_even ? "  (90% energy needs more than break-even)" : "");
        }
        printf("weighting: %s%s; r90/r95/r99: smallest rank keeping that share of the %senergy; "
               "b-even: rank above which A B has more parameters than W\n",
               weighting,
               wk == 1   ? " (W diag(||X_j||))"
               : wk == 2 ? " (W L, L L^T = X^T X + damping)"
                         : "",
               wk ? "weighted " : "");
    }
done:
    pare_model_spectra_free(sp);
    pare_calib_free(cs);
    pare_model_free(m);
    return rc;
}

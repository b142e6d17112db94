/* `pare compress`: compress a model with LoRAP or a baseline at a target ratio and evaluate it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/matmul.h"
#include "core/compress.h"
#include "core/method.h"
#include "core/spectrum.h"
#include "core/eval.h"
#include "core/export.h"
#include "core/json_number.h"
#include "core/safetensors.h"

#define MAX_EVAL 8

/* compress writes the compact pare format unless told otherwise, unlike the core's hf-dense default:
 * only it keeps the factors, so a compressed model reloads exactly and stays small. */
static const pare_export_format COMPRESS_DEFAULT_FORMAT = PARE_EXPORT_PARE;

static pare_status run_eval(pare_model *m, const char *what, const char *data, const int32_t *ids, size_t n,
                            const pare_eval_opts *eo, pare_eval_result *res, pare_error *err)
{
    pare_eval_plan plan; /* the rate counts the tokens the windows run, as pare eval's (--limit-tokens applied) */
    pare_status st = pare_eval_plan_make(m, n, eo, &plan, err);
    if (st)
        return st;
    cli_progress prog;
    cli_progress_init(&prog, what, (double)plan.windows * plan.window, "tok");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_eval_opts named = *eo;
    named.data = data;
    st = pare_eval_perplexity(m, ids, n, &named, &pp, res, err);
    cli_progress_done(&prog);
    return st;
}

/* The core's method names joined by sep, the last one by last_sep ("a | b | c", "a, b or c"). */
static void method_names(char *buf, size_t cap, const char *sep, const char *last_sep)
{
    int count = 0;
    const pare_method *me = pare_methods(&count);
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i == 0 ? "" : i == count - 1 ? last_sep : sep, me[i].name);
}

int cmd_compress(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL, *method = "lorap", *calib = NULL, *evalf = NULL, *weighting = NULL;
    pare_export_opts export_defaults;
    pare_export_defaults(&export_defaults);
    const char *out = NULL, *format = pare_export_format_name(COMPRESS_DEFAULT_FORMAT), *dtype = export_defaults.dtype;
    const char *nm = NULL, *factor_dtype = "f32", *sensitivity = NULL;
    pare_method_opts mo;
    pare_method_defaults(&mo);
    pare_calib_opts co;
    pare_calib_defaults(&co);
    pare_eval_opts eo;
    pare_eval_defaults(&eo);
    int json = 0, help = 0, eval_dense = 0, overwrite = 0;
    /* help texts quoting a default take it from the core's *_defaults() */
    char methods_help[256], ratio_help[96], split_help[96], keep_help[96], energy_help[112], samples_help[64],
        len_help[64], seed_help[64], window_help[64];
    method_names(methods_help, sizeof methods_help, " | ", " | ");
    snprintf(ratio_help, sizeof ratio_help,
             "fraction of decoder-block linear parameters to remove, in (0, 1) (default %g)", mo.ratio);
    snprintf(split_help, sizeof split_help, "LoRAP: (V,O) : (Q,K) parameter split a (default %g)", mo.split);
    snprintf(keep_help, sizeof keep_help, "LoRAP: lowest-scored fraction of FFN channels kept (default %g)",
             mo.keep_least);
    snprintf(energy_help, sizeof energy_help,
             "energy: fraction of weighted spectral energy every matrix keeps (default %g)", mo.energy);
    snprintf(samples_help, sizeof samples_help, "calibration windows (default %d)", co.samples);
    snprintf(len_help, sizeof len_help, "tokens per calibration window (default %d)", co.len);
    snprintf(seed_help, sizeof seed_help, "seed for the calibration windows (default %llu)",
             (unsigned long long)co.seed);
    snprintf(window_help, sizeof window_help, "evaluation window (default %d)", eo.window);
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"method", OPT_STR, &method, methods_help},
        {"ratio", OPT_DOUBLE, &mo.ratio, ratio_help},
        {"split", OPT_DOUBLE, &mo.split, split_help},
        {"keep-least", OPT_DOUBLE, &mo.keep_least, keep_help},
        {"energy", OPT_DOUBLE, &mo.energy, energy_help},
        {"weighting", OPT_STR, &weighting,
         cli_help("global, energy: %s (default %s)", cli_names(PARE_WEIGHTING_NAMES, " | ", " | "),
                  PARE_WEIGHTING_NAMES[pare_method_find("global")->weighting])},
        {"nm", OPT_STR, &nm, "wanda, magnitude: N:M semi-structured masks instead of --ratio, e.g. 2:4"},
        {"sensitivity", OPT_STR, &sensitivity,
         cli_help("auto: how error curves are weighted: %s (default %s)",
                  cli_names(PARE_AUTO_SENSITIVITY_NAMES, " | ", " | "), PARE_AUTO_SENSITIVITY_NAMES[mo.sensitivity])},
        {"probe-samples", OPT_INT, &mo.probe_samples,
         cli_help("auto: calibration windows the probes score (default %d)", mo.probe_samples)},
        {"calib", OPT_STR, &calib, "calibration text (every method but svd and magnitude needs it)"},
        {"calib-samples", OPT_INT, &co.samples, samples_help},
        {"calib-len", OPT_INT, &co.len, len_help},
        {"seed", OPT_U64, &co.seed, seed_help},
        {"eval", OPT_STR, &evalf, "text(s) to evaluate the compressed model on, comma-separated (pare eval's protocol)"},
        {"eval-dense", OPT_FLAG, &eval_dense, "also evaluate the dense model first, on the same texts"},
        {"window", OPT_INT, &eo.window, window_help},
        {"limit-tokens", OPT_SIZE, &eo.limit_tokens, "evaluate only the first N tokens of each text (default: all)"},
        {"out", OPT_STR, &out, "write the compressed model to this folder"},
        {"format", OPT_STR, &format,
         cli_help("--out format: %s (compact, reloads exactly; default) | %s (any HF tool)", format,
                  pare_export_format_name(PARE_EXPORT_HF_DENSE))},
        {"dtype", OPT_STR, &dtype, cli_help("hf-dense: %s (default), F16 or BF16", dtype)},
        {"factor-dtype", OPT_STR, &factor_dtype,
         "pare format: block matrices (factors, weights) stored as f32 (default: the reload is exact), bf16 or f16; "
         "the perplexity reported is that of the rounded model"},
        {"overwrite", OPT_FLAG, &overwrite, "replace an existing --out folder (once the new one is complete)"},
        {"json", OPT_FLAG, &json, "print JSON"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("compress", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("compress", "--model M --method lorap --ratio S --calib FILE [--eval FILE]", opts, n_opts);
        for (const pare_method *me = pare_methods(NULL); me->name; me++)
            printf("  %-16s %s\n", me->name, me->what);
        return 0;
    }
    pare_error err = {0};
    const pare_method *me = pare_method_find(method);
    if (!me) {
        char names[256];
        method_names(names, sizeof names, ", ", " or ");
        pare_fail(&err, PARE_EINVAL, "--method '%s': expected %s", method, names);
        return cli_error("compress", &err);
    }
    if (weighting) {
        mo.weighting = cli_name_index(PARE_WEIGHTING_NAMES, weighting);
        if (mo.weighting < 0) {
            pare_fail(&err, PARE_EINVAL, "--weighting '%s': expected %s", weighting,
                      cli_names(PARE_WEIGHTING_NAMES, ", ", " or "));
            return cli_error("compress", &err);
        }
        if (me->policy != PARE_POLICY_GLOBAL && me->policy != PARE_POLICY_ENERGY) {
            pare_fail(&err, PARE_EINVAL,
                      "--weighting %s: only the global and energy methods take a weighting (the others are defined "
                      "by theirs)",
                      weighting);
            return cli_error("compress", &err);
        }
    }
    if (sensitivity) {
        int si = cli_name_index(PARE_AUTO_SENSITIVITY_NAMES, sensitivity);
        if (si < 0) {
            pare_fail(&err, PARE_EINVAL, "--sensitivity '%s': expected %s", sensitivity,
                      cli_names(PARE_AUTO_SENSITIVITY_NAMES, ", ", " or "));
            return cli_error("compress", &err);
        }
        if (me->policy != PARE_POLICY_AUTO) {
            pare_fail(&err, PARE_EINVAL, "--sensitivity %s: only the auto method takes it", sensitivity);
            return cli_error("compress", &err);
        }
        mo.sensitivity = (pare_auto_sensitivity)si;
    }
    if (mo.probe_samples < 1) {
        pare_fail(&err, PARE_EINVAL, "--probe-samples %d: the probes need at least one window", mo.probe_samples);
        return cli_error("compress", &err);
    }
    if (nm && (pare_parse_nm("--nm", nm, &mo.nm_n, &mo.nm_m, &err) ||
               (me->policy != PARE_POLICY_MASK &&
                pare_fail(&err, PARE_EINVAL, "--nm %s: only wanda and magnitude take N:M masks", nm))))
        return cli_error("compress", &err);
    if (!(mo.ratio > 0 && mo.ratio < 1)) {
        pare_fail(&err, PARE_EINVAL, "--ratio %g: the fraction of parameters to remove must be in (0, 1)", mo.ratio);
        return cli_error("compress", &err);
    }
    /* auto chooses each FFN's width below 1 - keep_least itself: its ratio is not a channel fraction */
    if (!(mo.keep_least >= 0 && mo.keep_least < 1 && (mo.keep_least + mo.ratio <= 1 || me->policy == PARE_POLICY_AUTO))) {
        pare_fail(&err, PARE_EINVAL, "--keep-least %g: must be in [0, 1) with keep-least + ratio <= 1", mo.keep_least);
        return cli_error("compress", &err);
    }
    pare_export_opts xo;
    pare_export_defaults(&xo);
    xo.overwrite = overwrite;
    xo.dtype = dtype;
    xo.producer = "pare compress";
    if (out && pare_export_format_parse(format, &xo.format, &err))
        return cli_error("compress", &err);
    pare_dtype fdt;
    if (!pare_float_dtype_parse(factor_dtype, &fdt)) {
        pare_fail(&err, PARE_EINVAL, "--factor-dtype '%s' is not supported; supported: bf16, f16, f32", factor_dtype);
        return cli_error("compress", &err);
    }
    if (out && xo.format != PARE_EXPORT_PARE && fdt != PARE_DT_F32) {
        pare_fail(&err, PARE_EINVAL,
                  "--factor-dtype %s applies to --format pare; hf-dense stores every tensor in --dtype", factor_dtype);
        return cli_error("compress", &err);
    }
    xo.factor_dtype = pare_dtype_name(fdt);
    int bad_out = out ? cli_check_out("compress", "--out", out) : 0;
    if (bad_out)
        return bad_out;
    if (out && pare_export_check_destination(out, overwrite, &err)) /* before any work, not after it */
        return cli_error("compress", &err);
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("compress", &err);
    cli_install_sigint();
    int rc = 0;
    int32_t *win = NULL, *eval_ids[MAX_EVAL] = {0};
    size_t n_eval[MAX_EVAL] = {0};
    char eval_path[MAX_EVAL][4096];
    int n_files = 0;
    pare_eval_result before[MAX_EVAL] = {0}, after[MAX_EVAL] = {0};
    pare_status st = PARE_OK;
    if (me->policy == PARE_POLICY_AUTO) { /* an unreachable budget is refused before any long work */
        pare_auto_opts ao;
        pare_auto_defaults(&ao);
        ao.keep_least = mo.keep_least;
        st = pare_auto_check_budget(m, mo.ratio, &ao, &err);
    }
    if (calib && !st)
        st = cli_calib_windows(m, calib, &co, &win, &err);
    for (const char *p = evalf; !st && p && *p;) { /* tokenize every text before any long work */
        size_t len = strcspn(p, ",");
        if (n_files == MAX_EVAL || len == 0 || len >= sizeof eval_path[0]) {
            st = pare_fail(&err, PARE_EINVAL, "--eval '%s': give 1 to %d comma-separated files", evalf, MAX_EVAL);
            break;
        }
        memcpy(eval_path[n_files], p, len);
        eval_path[n_files][len] = 0;
        st = cli_tokenize_file(m, eval_path[n_files], &eval_ids[n_files], &n_eval[n_files], &err);
        pare_eval_opts named = eo;
        pare_eval_plan plan;
        named.data = eval_path[n_files];
        if (!st) /* a text too short for one window is refused before the compression runs */
            st = pare_eval_plan_make(m, n_eval[n_files], &named, &plan, &err);
        n_files++;
        p += len + (p[len] == ',');
    }
    for (int f = 0; !st && eval_dense && f < n_files; f++)
        st = run_eval(m, "eval dense", eval_path[f], eval_ids[f], n_eval[f], &eo, &before[f], &err);
    pare_apply_report rep = {0};
    pare_weighting wk = me->weighting;
    pare_auto_record auto_rec = {0};
    if (me->policy == PARE_POLICY_AUTO)
        mo.auto_record = &auto_rec;
    if (!st) {
        cli_progress prog;
        cli_progress_init(&prog, "compress", (double)co.samples * co.len * m->cfg.n_layers, "tok");
        pare_progress pp = {cli_progress_cb, &prog};
        st = pare_method_compress(m, me, &mo, win, &co, &pp, &rep, &wk, &err);
        cli_progress_done(&prog);
    }
    /* the model evaluated is the model stored: the same perplexity as a reload of the export */
    if (!st)
        st = pare_export_round_block_weights(m, xo.factor_dtype, &err);
    for (int f = 0; !st && f < n_files; f++)
        st = run_eval(m, "eval compressed", eval_path[f], eval_ids[f], n_eval[f], &eo, &after[f], &err);
    if (st) {
        rc = cli_error("compress", &err);
        goto done;
    }
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    size_t total_before = pc.total - rep.params_after + rep.params_before;
    if (rep.max_damping > PARE_WHITEN_DAMPING) /* the Gram was not positive definite at the usual damping */
        fprintf(stderr,
                "pare compress: warning: a whitening Cholesky needed damping %g x mean(diag G) (default %g); "
                "more calibration data (--calib-samples) makes the Gram better conditioned\n",
                rep.max_damping, PARE_WHITEN_DAMPING);
    /* one summary serves --json and the export manifest */
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:o, s:o}, s:i, s:i, s:i, s:o}", "model", m->path,
        "method", method, "weighting", PARE_WEIGHTING_NAMES[wk], "ratio", pare_json_number(mo.ratio), "split",
        pare_json_number(mo.split), "keep_least", pare_json_number(mo.keep_least), "params", "block_linear_before",
        (json_int_t)rep.params_before, "block_linear_after", (json_int_t)rep.params_after, "total_before",
        (json_int_t)total_before, "total_after", (json_int_t)pc.total, "block_linear_removed",
        pare_json_number(1.0 - (double)rep.params_after / (double)rep.params_before), "total_removed",
        pare_json_number(1.0 - (double)pc.total / (double)total_before), "factorized", rep.factorized, "channel_blocks",
        rep.channel_blocks, "masked", rep.masked, "worst_rel_error", pare_json_number(rep.worst_rel_error));
    json_object_set_new(j, "factor_dtype", json_string(xo.factor_dtype));
    json_object_set_new(j, "matmul", json_string(PARE_MATMUL_NAMES[pare_get_matmul()]));
    if (me->policy == PARE_POLICY_ENERGY)
        json_object_set_new(j, "energy", pare_json_number(mo.energy));
    if (wk == PARE_WEIGHT_WHITEN)
        json_object_set_new(j, "max_whiten_damping", pare_json_number(rep.max_damping));
    json_t *evals = json_array();
    for (int f = 0; f < n_files; f++) {
        json_t *e = json_pack("{s:s, s:i, s:i, s:I, s:o}", "data", eval_path[f], "window", after[f].plan.window,
                              "stride", after[f].plan.stride, "predicted", (json_int_t)after[f].plan.predicted, "ppl",
                              pare_json_number(after[f].ppl));
        if (eval_dense)
            json_object_set_new(e, "ppl_dense", pare_json_number(before[f].ppl));
        json_array_append_new(evals, e);
    }
    json_object_set_new(j, "eval", evals);
    if (me->policy == PARE_POLICY_AUTO)
        json_object_set_new(j, "auto", pare_auto_record_json(&auto_rec));
    pare_export_report xr = {0};
    if (out) {
        /* the pare format records how it was made; an HF folder has no place for it */
        char *extra = xo.format == PARE_EXPORT_PARE ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        xo.manifest_extra_json = extra;
        cli_progress prog;
        cli_progress_init(&prog, "export", 1.0, "");
        pare_progress pp = {cli_progress_cb, &prog};
        st = pare_export(m, out, &xo, &pp, &xr, &err);
        cli_progress_done(&prog);
        free(extra);
        if (st) {
            json_decref(j);
            rc = cli_error("compress", &err);
            goto done;
        }
        json_object_set_new(j, "export",
                            json_pack("{s:s, s:s, s:I, s:i}", "path", out, "format", pare_export_format_name(xo.format),
                                      "bytes", (json_int_t)xr.bytes_on_disk, "ffn_width", xr.ffn_width));
    }
    if (json) {
        rc = cli_print_json("compress", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        printf("method        %s: %s\n", method, me->what);
        if (me->policy == PARE_POLICY_ENERGY)
            printf("energy        %.3f of the %s spectral energy kept in every matrix\n", mo.energy,
                   wk == PARE_WEIGHT_NONE  ? "plain"
                   : wk == PARE_WEIGHT_ACT ? "activation-weighted"
                                           : "whitened");
        else
            printf("ratio         %.3f of decoder-block linear parameters (%s policy)\n", mo.ratio,
                   pare_policy_name(me->policy));
        printf("block linears %zu -> %zu (%.1f%% removed)\n", rep.params_before, rep.params_after,
               100.0 * (1.0 - (double)rep.params_after / (double)rep.params_before));
        printf("all params    %zu -> %zu (%.1f%% removed, embeddings and head included)\n", total_before, pc.total,
               100.0 * (1.0 - (double)pc.total / (double)total_before));
        printf("matrices      %d factorized (worst relative error %.3f), %d FFNs channel-pruned, %d masked\n",
               rep.factorized, rep.worst_rel_error, rep.channel_blocks, rep.masked);
        if (fdt != PARE_DT_F32)
            printf("factor dtype  %s: block matrices rounded to it before evaluation, as the pare format stores them\n",
                   xo.factor_dtype);
        if (me->policy == PARE_POLICY_AUTO)
            printf("auto          sensitivity %s: %d probes of %zu tokens in %.1fs (base loss %.4f), one budget solve "
                   "%.2f ms, sequential compression %.1fs\n",
                   PARE_AUTO_SENSITIVITY_NAMES[mo.sensitivity], auto_rec.analysis->probe_evals,
                   auto_rec.analysis->probe_tokens, auto_rec.analysis->seconds, auto_rec.analysis->base_loss,
                   auto_rec.solve_ms, auto_rec.apply_seconds);
        for (int f = 0; f < n_files; f++) {
            if (eval_dense)
                printf("perplexity    %.4f -> %.4f on %s (window %d, %zu targets)\n", before[f].ppl, after[f].ppl,
                       eval_path[f], eo.window, after[f].plan.predicted);
            else
                printf("perplexity    %.4f on %s (window %d, %zu targets)\n", after[f].ppl, eval_path[f], eo.window,
                       after[f].plan.predicted);
        }
        if (out)
            printf("exported      %s (%s, %.2f MiB)\n", out, pare_export_format_name(xo.format),
                   (double)xr.bytes_on_disk / (1 << 20));
        json_decref(j);
    }
done:
    pare_auto_record_free(&auto_rec);
    free(win);
    for (int f = 0; f < n_files; f++)
        free(eval_ids[f]);
    pare_model_free(m);
    return rc;
}

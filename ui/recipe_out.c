/* Writes the workbench's configuration as a self-contained Lua recipe (see recipe_out.h). Numbers are
 * written in their shortest form that reads back as the same double, so a reloaded ratio or rank
 * makes the same decisions bit for bit. */
#include "recipe_out.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "core/tasks.h"
#include "core/version.h"

/* The shortest %g form that strtod reads back as v. */
static void num(FILE *f, double v)
{
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

/* A Lua string literal. */
static void quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 32 || *p == 127)
            fprintf(f, "\\%03d", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A path as the recipe should name it: absolute when it exists, so the recipe runs from anywhere. */
static void path_lit(FILE *f, const char *path)
{
    char abs[PATH_MAX];
    quote(f, realpath(path, abs) ? abs : path);
}

static void declare_text(FILE *f, const char *name, const char *value, const char *desc)
{
    fprintf(f, "    %s = {", name);
    if (value && *value)
        path_lit(f, value);
    else
        fputs("nil", f);
    fprintf(f, ", \"%s\", type = \"string\"%s},\n", desc, value && *value ? "" : ", optional = true");
}

static void write_method(FILE *f, const tui_config *cfg)
{
    pare_method_opts mo;
    tui_method_opts_effective(cfg, &mo);
    const pare_method *me = cfg->method;
    fprintf(f, "    local r = m:compress{method = \"%s\", ratio = ", me->name);
    num(f, mo.ratio);
    if (me->policy == PARE_POLICY_LORAP) {
        fputs(", split = ", f);
        num(f, mo.split);
    }
    fputs(", keep_least = ", f);
    num(f, mo.keep_least);
    if (me->policy == PARE_POLICY_ENERGY) {
        fputs(", energy = ", f);
        num(f, mo.energy);
    }
    if (mo.weighting >= 0)
        fprintf(f, ", weighting = \"%s\"", PARE_WEIGHTING_NAMES[mo.weighting]);
    if (mo.nm_m > 0)
        fprintf(f, ", nm = \"%d:%d\"", mo.nm_n, mo.nm_m);
    fputs(",\n                         calib = p.calib, calib_samples = p.calib_samples, calib_len = p.calib_len, "
          "seed = p.seed}\n",
          f);
    fputs("    print(string.format(\"compressed    %s: block linears %d -> %d (%.1f%% removed), all parameters %d -> "
          "%d\",\n"
          "                        r.method, r.block_linear_before, r.block_linear_after, 100 * "
          "r.block_linear_removed,\n"
          "                        r.total_before, r.total_after))\n",
          f);
}

/* The manual configuration as m:calibrate (one-shot, on the dense model), then one m:factorize per
 * (rank, weighting), one m:prune per mask method (score, scope, sparsity or N:M) and one m:prune for
 * FFN channels (the whole model: the workbench prunes channels by type, so every block alike). Each
 * matrix is touched once and the statistics are taken before any change, so the order does not
 * matter and the model equals the workbench's plan applied by pare_apply_plan. */
static pare_status write_manual(FILE *f, const tui_state *st, const tui_config *cfg, pare_error *err)
{
    pare_plan plan;
    int needs = 0, gram = 0;
    pare_status rc = tui_config_plan(st->model, cfg, &plan, &needs, &gram, err);
    if (rc)
        return rc;
    const pare_plan_item *chan = NULL;
    int n_chan = 0, n_ffn = 0;
    for (int i = 0; i < plan.count; i++) {
        n_ffn += st->type[i] >= 4;
        if (plan.items[i].action == PARE_PLAN_CHANNELS) {
            n_chan++;
            if (chan && (chan->channel_frac != plan.items[i].channel_frac ||
                         chan->how.keep_least != plan.items[i].how.keep_least ||
                         chan->how.chan_score != plan.items[i].how.chan_score))
                rc = pare_fail(err, PARE_EINVAL,
                               "FFN channels pruned differently across blocks: m:prune prunes every block alike");
            chan = &plan.items[i];
        }
    }
    if (!rc && n_chan && n_chan != n_ffn)
        rc = pare_fail(err, PARE_EINVAL, "FFN channels pruned in some blocks only: m:prune prunes every block alike");
    if (rc) {
        pare_plan_free(&plan);
        return rc;
    }
    if (needs) {
        fputs("    if not p.calib then\n"
              "        error(\"these decisions use calibration statistics: --set calib=FILE\", 0)\n"
              "    end\n"
              "    -- one-shot statistics of the dense model, as the workbench took them\n",
              f);
        fprintf(f,
                "    local c <close> = m:calibrate{data = p.calib, samples = p.calib_samples, len = p.calib_len, "
                "seed = p.seed, gram = %s}\n",
                gram ? "true" : "false");
    }
    /* one call per group of matrices with the same decision, matrices in model order */
    unsigned char *done = calloc((size_t)(plan.count > 0 ? plan.count : 1), 1);
    for (int i = 0; done && i < plan.count; i++) {
        const pare_plan_item *a = &plan.items[i];
        if (done[i] || (a->action != PARE_PLAN_FACTOR && a->action != PARE_PLAN_MASK))
            continue;
        if (a->action == PARE_PLAN_FACTOR) {
            int w = a->how.weighting;
            fprintf(f, "    m:factorize{rank = %d, weighting = \"%s\"%s, matrices = {\n", a->rank,
                    PARE_WEIGHTING_NAMES[w], w != PARE_WEIGHT_NONE ? ", calib = c" : "");
        } else {
            int wanda = a->how.mask_score == PARE_SCORE_WANDA;
            fprintf(f, "    m:prune{method = \"%s\", ", wanda ? "wanda" : "magnitude");
            if (a->how.nm_m > 0)
                fprintf(f, "nm = \"%d:%d\"", a->how.nm_n, a->how.nm_m);
            else {
                fprintf(f, "sparsity = ");
                num(f, a->sparsity);
                fprintf(f, ", scope = \"%s\"", PARE_PRUNE_SCOPE_NAMES[a->how.mask_scope]);
            }
            fprintf(f, "%s, matrices = {\n", wanda ? ", calib = c" : "");
        }
        for (int j = i; j < plan.count; j++) {
            const pare_plan_item *b = &plan.items[j];
            int same = !done[j] && b->action == a->action &&
                       (a->action == PARE_PLAN_FACTOR
                            ? b->rank == a->rank && b->how.weighting == a->how.weighting
                            : b->how.mask_score == a->how.mask_score && b->how.nm_m == a->how.nm_m &&
                                  b->how.nm_n == a->how.nm_n &&
                                  (a->how.nm_m > 0 ||
                                   (b->sparsity == a->sparsity && b->how.mask_scope == a->how.mask_scope)));
            if (same) {
                done[j] = 1;
                fputs("        ", f);
                quote(f, st->lin[j]->name);
                fputs(",\n", f);
            }
        }
        fputs("    }}\n", f);
    }
    free(done);
    if (chan) {
        int lorap = chan->how.chan_score == PARE_CHAN_LORAP;
        fprintf(f, "    m:prune{method = \"%s\", sparsity = ", lorap ? "channels" : "channels-magnitude");
        num(f, chan->channel_frac);
        fputs(", keep_least = ", f);
        num(f, chan->how.keep_least);
        fprintf(f, "%s}\n", lorap ? ", calib = c" : "");
    }
    pare_plan_free(&plan);
    return PARE_OK;
}

pare_status tui_recipe_text(const tui_state *st, const tui_config *cfg, const tui_settings *set, const char *note,
                            char **text, pare_error *err)
{
    *text = NULL;
    if (cfg->kind == TUI_CFG_MANUAL && cfg->n != st->n)
        return pare_fail(err, PARE_EINVAL, "the configuration has %d matrices, the model %d", cfg->n, st->n);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return pare_fail(err, PARE_ENOMEM, "out of memory for the recipe");
    char label[128], stamp[32];
    tui_config_label(cfg, label, sizeof label);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M", &tm);
    const char *base = strrchr(st->model_path, '/');
    base = base && base[1] ? base + 1 : st->model_path;
    fprintf(f, "--[[ Saved by pare tui (pare %s) on %s: %s.\n", PARE_VERSION, stamp, label);
    fprintf(f, "Model: %s\n", st->model_path);
    if (note && *note)
        fprintf(f, "%s\n", note);
    fputs("Reproduce: pare run THIS.lua [--out OUT] (--set export=true also writes OUT/model).\n", f);
    if (cfg->kind == TUI_CFG_MANUAL && cfg->auto_ratio > 0)
        fputs("pare auto's plan at this ratio (its sensitivities measured once on the calibration text, the budget\n"
              "solved over whitened ranks and FFN widths), as per-matrix decisions applied with one-shot statistics\n"
              "of the dense model. pare compress --method auto re-decides each block on the compressed blocks'\n"
              "outputs instead, so its decisions may differ.\n",
              f);
    else if (cfg->kind == TUI_CFG_MANUAL)
        fputs("Per-matrix decisions from the workbench, applied with one-shot statistics of the dense model.\n", f);
    fputs("]]\n\n", f);
    fputs("description = ", f);
    char desc[512];
    snprintf(desc, sizeof desc, "pare tui session: %.120s on %.300s", label, base);
    quote(f, desc);
    fputs("\n\nparams {\n    model = {", f);
    path_lit(f, st->model_path);
    fputs(", \"model folder (Hugging Face or pare export) or llama2.c checkpoint\"},\n", f);
    declare_text(f, "calib", set->calib, "calibration text");
    fprintf(f, "    calib_samples = {%d, \"calibration windows\", min = 1},\n", set->calib_samples);
    fprintf(f, "    calib_len = {%d, \"tokens per calibration window\", min = 2},\n", set->calib_len);
    fprintf(f, "    seed = {%llu, \"seed of the calibration window positions\", min = 0},\n", set->seed);
    declare_text(f, "eval", set->eval, "evaluation text");
    fprintf(f, "    window = {%d, \"evaluation window (tokens)\", min = 2},\n", set->window);
    fprintf(f, "    limit_tokens = {%lld, \"evaluate only the first N tokens (0: all)\", min = 0},\n",
            set->limit_tokens > 0 ? set->limit_tokens : 0);
    fputs("    task = {", f);
    if (set->task[0])
        quote(f, set->task);
    else
        fputs("nil", f);
    fputs(", \"zero-shot task: ", f);
    for (int k = 0; k < PARE_TASK_KINDS; k++)
        fprintf(f, "%s%s", k == 0 ? "" : k + 1 < PARE_TASK_KINDS ? ", " : " or ", PARE_TASK_NAMES[k]);
    fprintf(f, "\", type = \"string\"%s},\n", set->task[0] ? "" : ", optional = true");
    declare_text(f, "task_data", set->task_data, "the task's data file or folder");
    fprintf(f, "    task_limit = {%lld, \"score only the first N items of the task (0: all)\", min = 0},\n",
            set->task_limit > 0 ? set->task_limit : 0);
    fputs("    export = {false, \"write the compressed model into OUT/model (pare format)\"},\n}\n\n", f);
    fputs("function run(p)\n    local m <close> = pare.load(p.model)\n", f);
    pare_status rc = PARE_OK;
    if (cfg->kind == TUI_CFG_METHOD)
        write_method(f, cfg);
    else if (cfg->kind == TUI_CFG_MANUAL)
        rc = write_manual(f, st, cfg, err);
    fputs("    if p.eval then\n"
          "        local e = m:eval(p.eval, {window = p.window, limit_tokens = p.limit_tokens})\n"
          "        print(string.format(\"perplexity    %.17g on %s (window %d, %d targets)\", e.ppl, e.data, "
          "e.window,\n"
          "                            e.predicted))\n"
          "    end\n"
          "    if p.task then\n"
          "        local t = m:eval_task(p.task, p.task_data, {limit = p.task_limit})\n"
          "        print(string.format(\"accuracy      %.17g acc_norm %.17g on %s (%d items)\", t.acc, t.acc_norm, "
          "t.task, t.n))\n"
          "    end\n"
          "    if p.export then\n"
          "        local x = m:export(pare.out(\"model\"), {format = \"pare\", overwrite = true})\n"
          "        print(string.format(\"exported      %s (%s, %.2f MiB)\", x.path, x.format, x.bytes / 2 ^ 20))\n"
          "    end\n"
          "end\n",
          f);
    if (fclose(f) || !buf || rc) {
        free(buf);
        return rc ? rc : pare_fail(err, PARE_ENOMEM, "out of memory for the recipe");
    }
    *text = buf;
    return PARE_OK;
}

pare_status tui_recipe_save(const tui_state *st, const tui_config *cfg, const tui_settings *set, const char *note,
                            const char *path, pare_error *err)
{
    char *text = NULL;
    pare_status rc = tui_recipe_text(st, cfg, set, note, &text, err);
    if (rc)
        return rc;
    pare_atomic_file f;
    if ((rc = pare_atomic_open(&f, path, err))) {
        free(text);
        return rc;
    }
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f.fp) != n) {
        pare_atomic_abort(&f);
        free(text);
        return pare_fail(err, PARE_EIO, "%s: write failed", path);
    }
    free(text);
    return pare_atomic_commit(&f, err);
}

/* What the workbench's command keys start: saving the configuration as a recipe (s), exporting it
 * (x), the current plot as PNG (p), an evaluation (e / F6) and a preset recipe (F5), with the files
 * they write numbered inside the session's output folder. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "recipe_out.h"
#include "tui_internal.h"

static int ensure_out(tui_app *a)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", a->st.set.out);
    for (char *p = buf + 1;; p++)
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) {
                tui_log(a, 1, "cannot create %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (!c)
                break;
        }
    return 0;
}

/* OUT/PREFIXN.EXT with the first N not taken. */
static void next_path(tui_app *a, const char *prefix, const char *ext, char *path, size_t cap)
{
    for (int i = 1; i < 100000; i++) {
        snprintf(path, cap, "%s/%s%d%s", a->st.set.out, prefix, i, ext);
        if (!pare_file_exists(path) && !pare_is_dir(path))
            return;
    }
}

static int save_recipe(tui_app *a, char *path, size_t cap)
{
    if (ensure_out(a))
        return -1;
    next_path(a, "session-", ".lua", path, cap);
    char note[1024] = "";
    tui_config cfg; /* auto as the decisions shown, as the evaluation applies them */
    pare_error err = {0};
    if (tui_config_resolve(&a->st, &cfg, &err)) {
        tui_log(a, 1, "save: %s", err.msg);
        return -1;
    }
    unsigned long long h = tui_config_hash(&cfg, &a->st.set);
    for (int i = a->st.n_res - 1; i >= 0; i--) { /* what the workbench measured for this configuration */
        const tui_result *r = &a->st.res[i];
        if (r->hash == h) {
            size_t o = 0;
            if (!isnan(r->ppl))
                o = (size_t)snprintf(note, sizeof note,
                                     "Measured in the workbench: perplexity %.17g on %.700s (window %d).", r->ppl,
                                     a->st.set.eval, a->st.set.window);
            if (r->task[0] && o < sizeof note) /* zero-shot accuracies of the same configuration */
                snprintf(note + o, sizeof note - o,
                         "%sMeasured in the workbench: %s acc %.17g acc_norm %.17g (%zu items).", o ? "\n" : "",
                         r->task, r->acc, r->acc_norm, r->task_items);
            break;
        }
    }
    pare_status rc = tui_recipe_save(&a->st, &cfg, &a->st.set, note, path, &err);
    tui_config_free(&cfg);
    if (rc) {
        tui_log(a, 1, "save: %s", err.msg);
        return -1;
    }
    return 0;
}

void tui_save(tui_app *a)
{
    char path[1200];
    if (!save_recipe(a, path, sizeof path))
        tui_log(a, 0, "saved %s: pare run %s reproduces this configuration", path, path);
}

void tui_export(tui_app *a)
{
    char path[1200], out[1200];
    if (save_recipe(a, path, sizeof path))
        return;
    next_path(a, "export-", "", out, sizeof out);
    const char *sets[] = {"export=true"};
    /* the workbench's own recipe: not sandboxed (the sandbox setting is for F5's recipes) */
    if (tui_submit(a, tui_job_recipe(path, out, sets, 1, 0, NULL, 0)) == 0)
        tui_log(a, 0, "exporting through %s into %s (model/, run.json)", path, out);
}

void tui_write_png(tui_app *a)
{
    pare_plot *p = NULL;
    pare_error err = {0};
    char path[1200];
    if (tui_plot_build(&a->st, a->plot, &p, &err)) {
        tui_log(a, 1, "plot: %s", err.msg);
        return;
    }
    if (!ensure_out(a)) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "plot-%s-", TUI_PLOT_NAMES[a->plot]);
        next_path(a, prefix, ".png", path, sizeof path);
        pare_png_meta meta = {.source = a->st.model_path};
        if (pare_plot_write_png(p, path, 0, 0, &meta, &err))
            tui_log(a, 1, "plot: %s", err.msg);
        else
            tui_log(a, 0, "wrote %s", path);
    }
    pare_plot_destroy(p);
}

void tui_start_eval(tui_app *a)
{
    if (!a->st.dec_ok) {
        tui_log(a, 1, "cannot evaluate: %s", a->st.dec_err);
        return;
    }
    tui_submit(a, tui_job_eval(&a->st));
}

void tui_run_preset(tui_app *a, const char *path)
{
    const tui_settings *s = &a->st.set;
    char sets[10][1200];
    int n = 0;
    snprintf(sets[n++], sizeof sets[0], "model=%.1180s", a->st.model_path);
    if (s->calib[0])
        snprintf(sets[n++], sizeof sets[0], "calib=%s", s->calib);
    snprintf(sets[n++], sizeof sets[0], "calib_samples=%d", s->calib_samples);
    snprintf(sets[n++], sizeof sets[0], "calib_len=%d", s->calib_len);
    snprintf(sets[n++], sizeof sets[0], "seed=%llu", s->seed);
    if (s->eval[0])
        snprintf(sets[n++], sizeof sets[0], "eval=%s", s->eval);
    snprintf(sets[n++], sizeof sets[0], "window=%d", s->window);
    snprintf(sets[n++], sizeof sets[0], "ratio=%.17g", a->st.mo.ratio);
    const char *ptr[10];
    for (int i = 0; i < n; i++)
        ptr[i] = sets[i];
    if (ensure_out(a))
        return;
    const char *base = strrchr(path, '/');
    char prefix[128], out[1200];
    snprintf(prefix, sizeof prefix, "run-%.*s-", (int)strcspn(base ? base + 1 : path, "."), base ? base + 1 : path);
    next_path(a, prefix, "", out, sizeof out);
    /* sandboxed: the recipe reads the model, the data and the session folder, and what --allow names */
    enum { MAX_ALLOW = 64 };
    const char *allow[MAX_ALLOW + 4];
    int n_allow = 0;
    allow[n_allow++] = a->st.model_path;
    allow[n_allow++] = s->calib;
    allow[n_allow++] = s->eval;
    allow[n_allow++] = s->out;
    for (int i = 0; i < a->n_allow && i < MAX_ALLOW; i++)
        allow[n_allow++] = a->allow[i];
    tui_submit(a, tui_job_recipe(path, out, ptr, n, a->sandbox, allow, n_allow));
}

/* The workbench's overlays, drawn over the panes and taking every key while open: help (F1 / ?),
 * setup (F2: calibration, evaluation, output folder, sandbox), the preset recipes (F5) and the method
 * per matrix type (m). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "tui_internal.h"

static void presets_dir(char *dir, size_t cap)
{
    const char *env = getenv("PARE_PRESETS");
    if (env && *env) {
        snprintf(dir, cap, "%s", env);
        return;
    }
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(dir, cap, "%.1000s/presets", exe);
            if (pare_is_dir(dir))
                return;
        }
    }
    snprintf(dir, cap, "presets");
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static void load_presets(tui_app *a)
{
    for (int i = 0; i < a->n_presets; i++)
        free(a->presets[i]);
    free(a->presets);
    a->presets = NULL;
    a->n_presets = 0;
    char dir[1024];
    presets_dir(dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".lua"))
            continue;
        char **p = realloc(a->presets, (size_t)(a->n_presets + 1) * sizeof *p);
        if (!p)
            break;
        a->presets = p;
        size_t cap = strlen(dir) + len + 2;
        if (!(a->presets[a->n_presets] = malloc(cap)))
            break;
        snprintf(a->presets[a->n_presets++], cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(a->presets, (size_t)a->n_presets, sizeof *a->presets, cmp_str);
}

enum { S_CALIB, S_SAMPLES, S_LEN, S_SEED, S_EVAL, S_WINDOW, S_LIMIT, S_OUT, S_TASK, S_SANDBOX, S_COUNT };
static const char *const SETUP_NAMES[S_COUNT] = {
    "calibration text",  "calibration windows", "tokens per window", "seed",           "evaluation text",
    "evaluation window", "limit tokens",        "output folder",     "zero-shot task", "sandbox F5 recipes"};

static void setup_text(const tui_app *a, int f, char *buf, size_t cap)
{
    const tui_settings *s = &a->st.set;
    switch (f) {
    case S_SANDBOX:
        if (a->sandbox)
            snprintf(buf, cap, "on: no processes or libraries; reads model, data, output folder%s",
                     a->n_allow ? ", --allow" : "");
        else
            snprintf(buf, cap, "off (Enter: on)");
        break;
    case S_CALIB: snprintf(buf, cap, "%s", s->calib); break;
    case S_SAMPLES: snprintf(buf, cap, "%d", s->calib_samples); break;
    case S_LEN: snprintf(buf, cap, "%d", s->calib_len); break;
    case S_SEED: snprintf(buf, cap, "%llu", s->seed); break;
    case S_EVAL: snprintf(buf, cap, "%s", s->eval); break;
    case S_WINDOW: snprintf(buf, cap, "%d", s->window); break;
    case S_LIMIT: snprintf(buf, cap, "%lld", s->limit_tokens); break;
    case S_TASK: tui_settings_task_text(s, buf, cap); break; /* KIND PATH [LIMIT] */
    default: snprintf(buf, cap, "%s", s->out);
    }
}

int tui_setup_apply(tui_app *a, int f, const char *text)
{
    tui_settings *s = &a->st.set;
    if (f == S_TASK) {
        pare_error err = {0};
        if (tui_settings_parse_task(s, text, &err)) {
            tui_log(a, 1, "%s: %s", SETUP_NAMES[f], err.msg);
            return -1;
        }
        tui_log(a, 0, "%s: %s", SETUP_NAMES[f], *text ? text : "(none)");
        return 0;
    }
    char *end;
    long long v = strtoll(text, &end, 10);
    int numeric = f != S_CALIB && f != S_EVAL && f != S_OUT;
    if (numeric && (end == text || *end ||
                    v < (f == S_LEN || f == S_WINDOW ? 2
                         : f == S_SAMPLES            ? 1
                                                     : 0) ||
                    v > (f == S_SEED || f == S_LIMIT ? (long long)1 << 62 : 1 << 24))) {
        tui_log(a, 1, "%s: '%s' is not a valid value", SETUP_NAMES[f], text);
        return -1;
    }
    if ((f == S_CALIB || f == S_EVAL) && *text && !pare_file_exists(text)) {
        tui_log(a, 1, "%s: %s: no such file", SETUP_NAMES[f], text);
        return -1;
    }
    if (f == S_OUT && !*text) {
        tui_log(a, 1, "the output folder cannot be empty");
        return -1;
    }
    switch (f) {
    case S_CALIB: snprintf(s->calib, sizeof s->calib, "%s", text); break;
    case S_SAMPLES: s->calib_samples = (int)v; break;
    case S_LEN: s->calib_len = (int)v; break;
    case S_SEED: s->seed = (unsigned long long)v; break;
    case S_EVAL: snprintf(s->eval, sizeof s->eval, "%s", text); break;
    case S_WINDOW: s->window = (int)v; break;
    case S_LIMIT: s->limit_tokens = v; break;
    default: snprintf(s->out, sizeof s->out, "%s", text);
    }
    if (f <= S_SEED) { /* the statistics and weighted spectra described another calibration */
        tui_state_drop_calib(&a->st);
        tui_state_drop_auto(&a->st);
        memset(a->auto_failed, 0, sizeof a->auto_failed);
        a->auto_analysis_failed = 0;
        tui_state_update(&a->st);
    }
    tui_log(a, 0, "%s: %s", SETUP_NAMES[f], text);
    return 0;
}

static const char *const HELP[] = {
    "pare tui: look at spectra, try ranks and budgets, evaluate, save a recipe",
    "",
    "Tab / Shift-Tab  next / previous pane        mouse  select a pane, a row, a rank",
    "j k, Up Down     move in the pane            PgUp PgDn Home End",
    "Left Right       rank cursor -1 / +1         < >    rank cursor -10 / +10",
    "Enter            tree: set the matrix to the cursor's rank (manual ranks); on a layer: fold",
    "a                every matrix of this type at the same parameter fraction",
    "d                leave the matrix as loaded  + -   unfold / fold every layer",
    "w                spectrum weighting: plain, activation, whitened (calibrates on demand)",
    "S                every matrix's spectrum (a big model computes the selected one's on demand)",
    "h g c            plot: sparsity heatmap, this type across layers, size against perplexity",
    "/  n             search matrix names, next match",
    "Budget pane      Left Right change the field, Enter or digits type a value (live totals)",
    "u                use the budget's method again after manual ranks",
    "m                method per matrix type (svd / asvd / svdllm / keep) with a uniform, energy or global policy",
    "e  F6            evaluate the configuration in the background (results pane)",
    "s                save the configuration as a Lua recipe (pare run reproduces it)",
    "x                export: run that recipe with export=true (model/ and run.json)",
    "p                write the current plot as PNG",
    "F2               setup: calibration, evaluation, output folder, sandbox for F5's recipes",
    "F5               run a preset recipe from presets/ with these settings (sandboxed if set in F2)",
    "F9  Esc          cancel the running job",
    "F10  q           quit (cancels a running job)",
    "",
    "Files go to the output folder (F2). docs/tui.md describes every pane.",
};

/* The matrix types the model has, in block order. */
static int mix_rows(const tui_app *a, int *rows)
{
    int present[TUI_TYPES] = {0}, n = 0;
    for (int i = 0; i < a->st.n; i++)
        present[a->st.type[i]] = 1;
    for (int t = 0; t < TUI_TYPES; t++)
        if (present[t])
            rows[n++] = t;
    return n;
}

void tui_mix_apply(tui_app *a)
{
    int need = -1;
    a->mix_pending = 0;
    if (tui_state_mix(&a->st, a->mix_type, (tui_mix_policy)a->mix_policy, &need) == 0) {
        if (a->overlay == OV_MIX)
            a->overlay = OV_NONE;
        tui_log(a, 0, "method per type (%s): %d matrices factorized, %d masked, %d sliced; the configuration is manual",
                TUI_MIX_POLICY_NAMES[a->mix_policy], a->st.n_factor, a->st.n_mask, a->st.n_channels);
        return;
    }
    if (need >= 0 && a->st.spectra_on_demand) { /* a big model: not a long job the user did not ask for */
        char how[160];
        tui_spectra_need_text(&a->st, need, how, sizeof how);
        tui_log(a, 1, "this policy needs the %s spectra %s", TUI_WEIGHTING_LABELS[need], how);
    } else if (need >= 0 && !a->auto_failed[need]) { /* applied by itself once the spectra are there */
        a->mix_pending = 1;
        tui_want_spectra(a, need);
        tui_log(a, 0, "computing the %s spectra first", TUI_WEIGHTING_LABELS[need]);
    } else if (need >= 0)
        tui_log(a, 1, "the %s spectra could not be computed (see the log)", TUI_WEIGHTING_LABELS[need]);
    else
        tui_log(a, 1, "%s", a->st.dec_err);
}

static tui_rect center_box(tui_app *a, int w, int h)
{
    w = w > a->cols - 2 ? a->cols - 2 : w;
    h = h > a->rows - 2 ? a->rows - 2 : h;
    return (tui_rect){(a->cols - w) / 2, (a->rows - h) / 2, w, h};
}

static void clear_rect(tui_rect r)
{
    for (int j = 0; j < r.h; j++)
        tui_fill(r.y + j, r.x, r.w, A_NORMAL);
}

void tui_overlay_draw(tui_app *a)
{
    if (a->overlay == OV_HELP) {
        int n = (int)(sizeof HELP / sizeof HELP[0]);
        tui_rect r = center_box(a, 100, n + 2);
        clear_rect(r);
        tui_box(a, r, "Help (any key closes)", 1);
        for (int i = 0; i < n && i < r.h - 2; i++)
            tui_put(r.y + 1 + i, r.x + 2, r.w - 4, HELP[i], i == 0 ? A_BOLD : A_NORMAL);
    } else if (a->overlay == OV_SETUP) {
        tui_rect r = center_box(a, 100, S_COUNT + 4);
        clear_rect(r);
        tui_box(a, r, "Setup (Enter edits or toggles, Esc closes)", 1);
        for (int f = 0; f < S_COUNT; f++) {
            char val[1100], line[1300];
            setup_text(a, f, val, sizeof val);
            snprintf(line, sizeof line, " %-21s %s", SETUP_NAMES[f], val[0] ? val : "(none)");
            int at = f == a->ov_row ? tui_attr(a, PAIR_SEL) : 0;
            tui_fill(r.y + 1 + f, r.x + 1, r.w - 2, at);
            tui_put(r.y + 1 + f, r.x + 1, r.w - 2, line, at);
        }
        tui_put(r.y + r.h - 2, r.x + 2, r.w - 4, "changing the calibration drops the weighted spectra",
                tui_attr(a, PAIR_DIM));
    } else if (a->overlay == OV_MIX) {
        int rows[TUI_TYPES], n = mix_rows(a, rows);
        tui_rect r = center_box(a, 72, n + 6);
        clear_rect(r);
        tui_box(a, r, "Method per matrix type (Enter sets the ranks, Esc closes)", 1);
        for (int i = 0; i <= n; i++) {
            char line[160];
            if (i < n)
                snprintf(line, sizeof line, " %-8s %s %s %s", TUI_TYPE_NAME(rows[i]), a->utf8 ? "◂" : "<",
                         TUI_MIX_CHOICE_NAMES[a->mix_type[rows[i]] + 1], a->utf8 ? "▸" : ">");
            else if (a->mix_policy == TUI_MIX_ENERGY)
                snprintf(line, sizeof line, " %-8s %s %s %s  energy %.3g (budget)", "policy", a->utf8 ? "◂" : "<",
                         TUI_MIX_POLICY_NAMES[a->mix_policy], a->utf8 ? "▸" : ">", a->st.mo.energy);
            else if (a->st.mo.nm_m > 0) /* masks take N:M, the rest the ratio */
                snprintf(line, sizeof line, " %-8s %s %s %s  ratio %.3g, masks %d:%d (budget)", "policy",
                         a->utf8 ? "◂" : "<", TUI_MIX_POLICY_NAMES[a->mix_policy], a->utf8 ? "▸" : ">", a->st.mo.ratio,
                         a->st.mo.nm_n, a->st.mo.nm_m);
            else
                snprintf(line, sizeof line, " %-8s %s %s %s  ratio %.3g (budget)", "policy", a->utf8 ? "◂" : "<",
                         TUI_MIX_POLICY_NAMES[a->mix_policy], a->utf8 ? "▸" : ">", a->st.mo.ratio);
            int at = i == a->ov_row ? tui_attr(a, PAIR_SEL) : 0;
            tui_fill(r.y + 1 + i, r.x + 1, r.w - 2, at);
            tui_put(r.y + 1 + i, r.x + 1, r.w - 2, line, at);
        }
        tui_put(r.y + r.h - 3, r.x + 2, r.w - 4, "becomes the manual configuration (one-shot statistics, saved by s)",
                tui_attr(a, PAIR_DIM));
        tui_put(r.y + r.h - 2, r.x + 2, r.w - 4, "global needs every type; energy leaves a matrix dense at break-even",
                tui_attr(a, PAIR_DIM));
    } else if (a->overlay == OV_PRESETS) {
        tui_rect r = center_box(a, 70, (a->n_presets ? a->n_presets : 1) + 3);
        clear_rect(r);
        tui_box(a, r, "Run a recipe (Enter runs, Esc closes)", 1);
        if (!a->n_presets)
            tui_put(r.y + 1, r.x + 2, r.w - 4, "no presets found (PARE_PRESETS or presets/ beside pare)", A_NORMAL);
        for (int i = 0; i < a->n_presets && i < r.h - 3; i++) {
            int at = i == a->ov_row ? tui_attr(a, PAIR_SEL) : 0;
            tui_fill(r.y + 1 + i, r.x + 1, r.w - 2, at);
            tui_put(r.y + 1 + i, r.x + 2, r.w - 4, a->presets[i], at);
        }
        tui_put(r.y + r.h - 2, r.x + 2, r.w - 4,
                a->sandbox ? "with the setup's calibration, evaluation and the budget's ratio; sandboxed (F2)"
                           : "with the setup's calibration, evaluation and the budget's ratio",
                tui_attr(a, PAIR_DIM));
    }
}

void tui_overlay_key(tui_app *a, int ch)
{
    if (a->overlay == OV_HELP) {
        a->overlay = OV_NONE;
        return;
    }
    int rows[TUI_TYPES], n_types = mix_rows(a, rows);
    int n = a->overlay == OV_SETUP ? S_COUNT : a->overlay == OV_MIX ? n_types + 1 : a->n_presets;
    if (a->overlay == OV_MIX && (ch == KEY_LEFT || ch == KEY_RIGHT)) {
        int d = ch == KEY_RIGHT ? 1 : -1;
        if (a->ov_row < n_types) {
            int *m = &a->mix_type[rows[a->ov_row]];
            *m = (*m + 1 + d + TUI_MIX_CHOICES + 1) % (TUI_MIX_CHOICES + 1) - 1; /* keep, svd, ..., wanda */
        } else
            a->mix_policy = (a->mix_policy + d + 3) % 3;
        return;
    }
    switch (ch) {
    case 27:
    case 'q':
    case KEY_F(2):
    case KEY_F(5): a->overlay = OV_NONE; return;
    case KEY_UP:
    case 'k': a->ov_row -= a->ov_row > 0; return;
    case KEY_DOWN:
    case 'j': a->ov_row += a->ov_row < n - 1; return;
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (a->overlay == OV_MIX) {
            memset(a->auto_failed, 0, sizeof a->auto_failed); /* asked for explicitly: try again */
            tui_mix_apply(a);
            return;
        }
        if (a->overlay == OV_SETUP && a->ov_row == S_SANDBOX) { /* a toggle; applies to the next F5 run */
            a->sandbox = !a->sandbox;
            tui_log(a, 0, "sandbox for F5 recipes: %s", a->sandbox ? "on" : "off");
            return;
        }
        if (a->overlay == OV_SETUP) {
            if (tui_worker_busy(a->worker)) {
                tui_log(a, 1, "settings cannot change while %s runs (F9 cancels it)", a->js.job);
                return;
            }
            char val[1100], prompt[64];
            setup_text(a, a->ov_row, val, sizeof val);
            snprintf(prompt, sizeof prompt, "%s: ", SETUP_NAMES[a->ov_row]);
            tui_start_edit(a, ED_SETUP, a->ov_row, prompt, val);
        } else if (a->ov_row < a->n_presets) {
            a->overlay = OV_NONE;
            tui_run_preset(a, a->presets[a->ov_row]);
        }
        return;
    default: return;
    }
}

void tui_overlay_open(tui_app *a, tui_overlay ov)
{
    if (ov == OV_PRESETS)
        load_presets(a);
    a->overlay = ov;
    a->ov_row = 0;
}

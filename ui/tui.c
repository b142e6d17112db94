/* `pare tui`'s screen manager: the log and status line, job submission, the layout and drawing of the
 * header, panes (through the TUI_PANES table), status line and function bar, key and mouse dispatch,
 * and the event loop that polls the job thread so keys are handled within 100 ms while a job runs.
 * The terminal is in term.c, overlays in overlay.c, the line editor in editor.c. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <langinfo.h>
#include <locale.h>

#include "core/fileio.h"
#include "tui_internal.h"

/* ---- log, status, jobs -------------------------------------------------------------------------- */

static void log_line(tui_app *a, int error, const char *s)
{
    if (a->log_n == a->log_cap) {
        int cap = a->log_cap ? 2 * a->log_cap : 256;
        if (cap > 4096) { /* keep the last 2048 lines */
            for (int i = 0; i < a->log_n - 2048; i++)
                free(a->log[i]);
            memmove(a->log, a->log + a->log_n - 2048, 2048 * sizeof *a->log);
            a->log_n = 2048;
        } else {
            char **p = realloc(a->log, (size_t)cap * sizeof *p);
            if (!p)
                return;
            a->log = p;
            a->log_cap = cap;
        }
    }
    size_t n = strlen(s);
    char *copy = malloc(n + 2);
    if (!copy)
        return;
    copy[0] = error ? '!' : ' ';
    memcpy(copy + 1, s, n + 1);
    a->log[a->log_n++] = copy;
    a->dirty = 1;
}

static void vlog(tui_app *a, int error, const char *text)
{
    int first = 1;
    while (*text || first) {
        size_t len = strcspn(text, "\n");
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(len < 1000 ? len : 1000), text);
        if (first && error) { /* the first line of an error goes on the status line */
            snprintf(a->status, sizeof a->status, "%.500s", line);
            a->status_err = 1;
        }
        log_line(a, error, line);
        first = 0;
        text += len + (text[len] == '\n');
    }
}

void tui_log(tui_app *a, int error, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    vlog(a, error, buf);
    if (!error) {
        snprintf(a->status, sizeof a->status, "%.500s", buf);
        a->status[strcspn(a->status, "\n")] = 0;
        a->status_err = 0;
    }
}

/* A job's outcome: errors in full to the log (first line on the status line), other lines too. */
static void job_log(void *ui, int error, const char *line)
{
    if (error)
        vlog(ui, 1, line);
    else
        tui_log(ui, 0, "%s", line);
}
static void worker_line(void *ctx, const char *line)
{
    tui_job_ctx *c = ctx;
    vlog(c->ui, 0, line);
}

int tui_submit(tui_app *a, tui_job *j)
{
    if (!j) {
        tui_log(a, 1, "out of memory for the job");
        return -1;
    }
    if (tui_worker_submit(a->worker, j)) {
        tui_log(a, 1, "busy with %s: wait or F9 to cancel it", a->js.job[0] ? a->js.job : "a job");
        if (j->destroy)
            j->destroy(j);
        else
            free(j);
        return -1;
    }
    a->js.running = 1;
    snprintf(a->js.job, sizeof a->js.job, "%s", j->name);
    a->status[0] = 0;
    return 0;
}

static int pending_w = -1;    /* weighting of the spectra job in flight */
static int pending_mat = -1;  /* its matrix (a big model's single-matrix job), -1: every matrix */
static int failed_sel = -1;   /* sel * 3 + w of a single-matrix job that failed or was cancelled: not
                                started again by itself while that matrix stays selected */
static int queued_all_w = -1; /* S asked for every spectrum of this weighting while a single one ran */

/* Weighted spectra need a calibration text: said once, then not asked for again by itself. */
static int calib_ready(tui_app *a, int w)
{
    if (w == PARE_WEIGHT_NONE || a->st.set.calib[0])
        return 1;
    a->auto_failed[w] = 1;
    tui_log(a, 1, "the %s spectra need a calibration text: F2 (setup) or --calib FILE", TUI_WEIGHTING_LABELS[w]);
    return 0;
}

/* The whole-model spectra job of weighting w, when they are missing and the worker is free. */
static void start_spectra(tui_app *a, int w)
{
    if (w < 0 || w > 2 || a->st.spectra[w] || a->auto_failed[w] || tui_worker_busy(a->worker) || !calib_ready(a, w))
        return;
    if (tui_submit(a, tui_job_spectra(&a->st, w)) == 0) {
        pending_w = w;
        pending_mat = -1;
    }
}

void tui_want_spectra(tui_app *a, int w)
{
    if (!a->st.spectra_on_demand) /* a big model's whole spectra are computed only when asked for (S) */
        start_spectra(a, w);
}

/* A big model: the selected matrix's spectrum of the weighting shown, computed alone when missing. */
static void want_selected_spectrum(tui_app *a)
{
    int w = a->st.weighting, i = a->st.sel;
    if (!a->st.spectra_on_demand || tui_state_spectrum(&a->st, w, i) || a->auto_failed[w] || failed_sel == i * 3 + w ||
        queued_all_w >= 0 || tui_worker_busy(a->worker) || !calib_ready(a, w))
        return;
    if (tui_submit(a, tui_job_spectrum(&a->st, w, i)) == 0) {
        pending_w = w;
        pending_mat = i;
    }
}

/* S: every matrix's spectrum of the weighting a plan waits for (else the one shown), on request only
 * for a big model, whose cost the log states first. A single-matrix job in the way is cancelled. */
static void want_all_spectra(tui_app *a)
{
    int w = a->st.dec_need >= 0 ? a->st.dec_need : a->st.weighting;
    if (a->st.spectra[w]) {
        tui_log(a, 0, "the %s spectra of all %d matrices are computed", TUI_WEIGHTING_LABELS[w], a->st.n);
        return;
    }
    if (tui_worker_busy(a->worker) && pending_mat < 0) {
        tui_log(a, 1, "busy with %s: wait or F9 to cancel it", a->js.job[0] ? a->js.job : "a job");
        return;
    }
    a->auto_failed[w] = 0; /* asked for explicitly: try again */
    tui_log(a, 0, "computing the %s spectra of all %d matrices (estimated %.0f s; F9 cancels)", TUI_WEIGHTING_LABELS[w],
            a->st.n, tui_spectra_cost_s(&a->st));
    if (tui_worker_busy(a->worker)) { /* a single matrix's job: it gives way */
        queued_all_w = w;
        tui_worker_cancel(a->worker);
        return;
    }
    start_spectra(a, w);
}

static int pending_auto; /* auto's sensitivity pass is in flight */

void tui_want_auto(tui_app *a)
{
    if (!a->st.auto_need || a->auto_analysis_failed || tui_worker_busy(a->worker))
        return;
    if (tui_submit(a, tui_job_auto(&a->st)) == 0)
        pending_auto = 1;
}

/* ---- drawing ------------------------------------------------------------------------------------- */

static const struct {
    int key;
    const char *name, *label;
} FKEYS[] = {{KEY_F(1), "F1", "Help"}, {KEY_F(2), "F2", "Setup"},  {KEY_F(5), "F5", "Recipe"},
             {KEY_F(6), "F6", "Eval"}, {KEY_F(9), "F9", "Cancel"}, {KEY_F(10), "F10", "Quit"}};
#define N_FKEYS (int)(sizeof FKEYS / sizeof FKEYS[0])

static void draw_fbar(tui_app *a)
{
    tui_rect r = a->lay.fbar;
    int x = 0;
    tui_fill(r.y, 0, r.w, tui_attr(a, PAIR_FLABEL));
    for (int i = 0; i < N_FKEYS && x < r.w; i++) {
        x += tui_put(r.y, x, r.w - x, FKEYS[i].name, A_NORMAL);
        char lab[16];
        snprintf(lab, sizeof lab, "%-6s", FKEYS[i].label);
        x += tui_put(r.y, x, r.w - x, lab, tui_attr(a, PAIR_FLABEL));
    }
}

/* Which function key the bar shows at column x (htop-style mouse use of the bar), or 0. */
static int fbar_key_at(int x)
{
    int pos = 0;
    for (int i = 0; i < N_FKEYS; i++) {
        int w = (int)strlen(FKEYS[i].name) + 6;
        if (x >= pos && x < pos + w)
            return FKEYS[i].key;
        pos += w;
    }
    return 0;
}

static void draw_header(tui_app *a)
{
    tui_state *st = &a->st;
    char line[1024], total[32], label[96];
    tui_human(st->total_before, total, sizeof total);
    tui_config_label(&st->cfg, label, sizeof label);
    const char *base = strrchr(st->model_path, '/');
    base = base && base[1] ? base + 1 : st->model_path;
    char have[48] = ""; /* a big model's spectra are computed matrix by matrix: how far */
    if (st->spectra_on_demand && !st->spectra[st->weighting])
        snprintf(have, sizeof have, " %d/%d on demand", tui_spectra_count(st, st->weighting), st->n);
    snprintf(line, sizeof line, " pare tui  %.300s (%s, %d layers, %s)  config: %s  spectra: %s%s", base,
             pare_family_class(&st->model->cfg), st->model->cfg.n_layers, total, label,
             TUI_WEIGHTING_LABELS[st->weighting], have);
    tui_fill(0, 0, a->cols, tui_attr(a, PAIR_HEADER));
    tui_put(0, 0, a->cols, line, tui_attr(a, PAIR_HEADER));
}

static void draw_status(tui_app *a)
{
    tui_rect r = a->lay.status;
    tui_fill(r.y, 0, r.w, A_NORMAL);
    char line[1024];
    if (a->edit != ED_NONE) {
        tui_edit_draw(a, r);
        return;
    }
    if (a->js.running) {
        int x = 0;
        snprintf(line, sizeof line, "[%s] ", a->js.stage[0] ? a->js.stage : a->js.job);
        x += tui_put(r.y, x, r.w - x, line, tui_attr(a, PAIR_TITLE));
        int bw = r.w / 5;
        tui_bar(a, r.y, x, bw, a->js.fraction, tui_attr(a, PAIR_BAR), tui_attr(a, PAIR_DIM));
        x += bw;
        char eta[32] = "";
        if (a->js.eta_s >= 0)
            snprintf(eta, sizeof eta, " ETA %.0fs", a->js.eta_s);
        snprintf(line, sizeof line, " %3.0f%%%s  %s  (%s, %.0fs%s)", 100 * a->js.fraction, eta, a->js.detail, a->js.job,
                 a->js.elapsed_s, a->js.cancelling ? ", cancelling" : "; F9 cancels");
        tui_put(r.y, x, r.w - x, line, A_NORMAL);
        return;
    }
    if (a->status[0])
        tui_put(r.y, 0, r.w, a->status, a->status_err ? tui_attr(a, PAIR_ERROR) : 0);
    else
        tui_put(r.y, 0, r.w,
                "Tab next pane  Left/Right rank  Enter set rank  e evaluate  s save recipe  w weighting  ? help",
                tui_attr(a, PAIR_DIM));
}

static void draw(tui_app *a)
{
    erase();
    getmaxyx(stdscr, a->rows, a->cols);
    tui_layout_compute(a->cols, a->rows, &a->lay);
    if (a->lay.too_small) {
        char msg[128];
        snprintf(msg, sizeof msg, "terminal too small: %dx%d, pare tui needs at least %dx%d", a->cols, a->rows,
                 TUI_MIN_COLS, TUI_MIN_ROWS);
        int y = a->rows / 2, x = (a->cols - (int)strlen(msg)) / 2;
        tui_put(y > 0 ? y : 0, x > 0 ? x : 0, a->cols, msg, A_BOLD);
        tui_put(y + 1 < a->rows ? y + 1 : 0, 0, a->cols, " enlarge the window, or q to quit", A_NORMAL);
        refresh();
        return;
    }
    draw_header(a);
    for (int p = 0; p < TUI_P_COUNT; p++)
        TUI_PANES[p].draw(a, a->lay.pane[p], a->focus == p);
    draw_status(a);
    draw_fbar(a);
    tui_overlay_draw(a);
    refresh();
}

/* ---- keys ---------------------------------------------------------------------------------------- */

static void cycle_weighting(tui_app *a)
{
    a->st.weighting = (a->st.weighting + 1) % 3;
    a->auto_failed[a->st.weighting] = 0; /* asked for explicitly: try again */
    if (!a->st.spectra[a->st.weighting] && tui_worker_busy(a->worker))
        tui_log(a, 0, "the %s spectra wait for %s to finish", TUI_WEIGHTING_LABELS[a->st.weighting], a->js.job);
    tui_want_spectra(a, a->st.weighting);
}

static void toggle_plot(tui_app *a, tui_plot_kind k) { a->plot = a->plot == k ? TUI_PLOT_SPECTRUM : k; }

static void mouse(tui_app *a)
{
    MEVENT ev;
    if (getmouse(&ev) != OK)
        return;
    if (ev.bstate & (BUTTON4_PRESSED | BUTTON5_PRESSED)) { /* the wheel scrolls the focused pane */
        const tui_pane *pane = &TUI_PANES[a->focus];
        if (pane->wheel)
            pane->key(a, ev.bstate & BUTTON4_PRESSED ? KEY_UP : KEY_DOWN);
        return;
    }
    if (a->lay.too_small || a->overlay != OV_NONE)
        return;
    if (ev.y == a->lay.fbar.y) {
        int k = fbar_key_at(ev.x);
        if (k)
            ungetch(k);
        return;
    }
    for (int p = 0; p < TUI_P_COUNT; p++) {
        tui_rect r = a->lay.pane[p];
        if (ev.x >= r.x && ev.x < r.x + r.w && ev.y >= r.y && ev.y < r.y + r.h) {
            a->focus = p;
            if (TUI_PANES[p].click)
                TUI_PANES[p].click(a, ev.x, ev.y);
        }
    }
}

static void key(tui_app *a, int ch)
{
    if (ch == KEY_RESIZE)
        return; /* draw() lays out again at the new size */
    if (ch == KEY_MOUSE) {
        mouse(a);
        return;
    }
    if (a->edit != ED_NONE) {
        tui_edit_key(a, ch);
        return;
    }
    if (a->overlay != OV_NONE) {
        tui_overlay_key(a, ch);
        return;
    }
    switch (ch) {
    case KEY_F(10):
    case 'q': a->quit = 1; return;
    case KEY_F(1):
    case '?': tui_overlay_open(a, OV_HELP); return;
    case KEY_F(2): tui_overlay_open(a, OV_SETUP); return;
    case KEY_F(5): tui_overlay_open(a, OV_PRESETS); return;
    case KEY_F(6):
    case 'e': tui_start_eval(a); return;
    case KEY_F(9):
    case 27:
        if (tui_worker_busy(a->worker)) {
            tui_worker_cancel(a->worker);
            tui_log(a, 0, "cancelling %s", a->js.job);
        }
        return;
    case '\t': a->focus = (a->focus + 1) % TUI_P_COUNT; return;
    case KEY_BTAB: a->focus = (a->focus + TUI_P_COUNT - 1) % TUI_P_COUNT; return;
    case 's': tui_save(a); return;
    case 'x': tui_export(a); return;
    case 'p': tui_write_png(a); return;
    case 'w': cycle_weighting(a); return;
    case 'S': want_all_spectra(a); return;
    case 'h': toggle_plot(a, TUI_PLOT_HEATMAP); return;
    case 'g': toggle_plot(a, TUI_PLOT_LAYERS); return;
    case 'b': toggle_plot(a, TUI_PLOT_BUDGET); return;
    case 'c': /* size against perplexity, then acc and acc_norm once a task was scored, then the spectrum */
        if (a->plot == TUI_PLOT_CHART && a->st.chart_metric < TUI_METRIC_ACC_NORM && tui_state_has_task_results(&a->st)) {
            a->st.chart_metric++;
            return;
        }
        a->st.chart_metric = TUI_METRIC_PPL;
        toggle_plot(a, TUI_PLOT_CHART);
        return;
    case '/':
        a->focus = TUI_P_TREE;
        tui_start_edit(a, ED_SEARCH, 0, "search: ", "");
        return;
    case 'n': {
        int j = tui_tree_find(&a->st, a->search, a->st.sel);
        if (j >= 0) {
            a->st.sel = j;
            tui_tree_follow(a);
        } else if (a->search[0])
            tui_log(a, 1, "no matrix name contains '%s'", a->search);
        return;
    }
    case 'm': tui_overlay_open(a, OV_MIX); return;
    case 'u':
        tui_state_use_budget(&a->st);
        if (a->st.dec_need >= 0)
            tui_want_spectra(a, a->st.dec_need);
        return;
    case 12: clearok(stdscr, TRUE); return; /* Ctrl-L */
    default: break;
    }
    TUI_PANES[a->focus].key(a, ch);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void app_free(tui_app *a)
{
    tui_free_strings(a->log, a->log_n);
    tui_free_strings(a->presets, a->n_presets);
    free(a->allow);
    tui_state_free(&a->st);
}

/* One turn of the loop without the key: the job thread's outcome and lines, captured output, and
 * the jobs the view needs next (one at a time). Returns 1 when something changed. */
static int step(tui_app *a)
{
    int changed = 0;
    tui_job_status js;
    if (tui_worker_poll(a->worker, worker_line, &a->jctx, &js)) {
        changed = 1;
        if (pending_w >= 0 && pending_mat < 0 && !a->st.spectra[pending_w])
            a->auto_failed[pending_w] = 1; /* failed or cancelled: not again by itself */
        if (pending_mat >= 0 && !tui_state_spectrum(&a->st, pending_w, pending_mat)) {
            failed_sel = pending_mat * 3 + pending_w;
            if (pending_w != PARE_WEIGHT_NONE && !a->st.calib)
                a->auto_failed[pending_w] = 1; /* the calibration failed: not again for every matrix */
        }
        pending_w = pending_mat = -1;
        if (pending_auto && a->st.auto_need)
            a->auto_analysis_failed = 1; /* failed or cancelled: not again by itself */
        pending_auto = 0;
    }
    a->js = js;
    tui_term_drain(a);
    if (failed_sel >= 0 && failed_sel / 3 != a->st.sel)
        failed_sel = -1;
    /* the selection moved away from a single matrix's job: cancel it (unless it is calibrating, which
     * the next one would need too), the selected matrix's job starts once it stopped */
    if (js.running && pending_mat >= 0 && !js.cancelling &&
        (pending_mat != a->st.sel || pending_w != a->st.weighting) && (pending_w == PARE_WEIGHT_NONE || a->st.calib))
        tui_worker_cancel(a->worker);
    if (!js.running && a->mix_pending)
        tui_mix_apply(a);
    if (!js.running && queued_all_w >= 0) {
        int w = queued_all_w;
        queued_all_w = -1;
        start_spectra(a, w);
    }
    if (!js.running) {
        tui_want_auto(a);
        if (a->st.dec_need >= 0)
            tui_want_spectra(a, a->st.dec_need);
        tui_want_spectra(a, a->st.weighting);
        want_selected_spectrum(a);
    }
    return changed;
}

/* Headless: until no job runs and none is due (a job a key started, the spectra the view asks for). */
static void wait_idle(tui_app *a)
{
    for (;;) {
        step(a);
        if (tui_term_signal() || (!tui_worker_busy(a->worker) && !a->js.running))
            return;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Replays keys as if typed, each after the jobs the previous ones started have finished, draws after
 * each, and returns the last screen as text (malloc'd) or NULL. */
static char *run_headless(tui_app *a, const int *keys, int n_keys)
{
    wait_idle(a);
    draw(a);
    for (int i = 0; i < n_keys && !a->quit && !tui_term_signal(); i++) {
        key(a, keys[i]);
        wait_idle(a);
        draw(a);
    }
    return tui_screen_text();
}

/* Writes the screen text to path ("-": stdout) atomically. */
static int write_dump(const char *path, const char *text, pare_error *err)
{
    size_t n = strlen(text);
    if (!strcmp(path, "-")) {
        fwrite(text, 1, n, stdout);
        fflush(stdout);
        return 0;
    }
    pare_atomic_file f;
    if (pare_atomic_open(&f, path, err))
        return -1;
    if (fwrite(text, 1, n, f.fp) != n) {
        pare_atomic_abort(&f);
        pare_fail(err, PARE_EIO, "%s: write failed", path);
        return -1;
    }
    return pare_atomic_commit(&f, err) ? -1 : 0;
}


int tui_run(const tui_options *o, pare_error *err)
{
    static tui_app app; /* static: the crash and exit paths may still see it */
    tui_app *a = &app;
    memset(a, 0, sizeof *a);
    a->headless = o->headless;
    a->sandbox = o->sandbox;
    a->allow = o->allow;
    a->n_allow = o->n_allow;
    if (tui_state_init(&a->st, o->model, o->model_path, &o->set, err)) {
        pare_model_free(o->model);
        free(o->allow);
        return -1;
    }
    setlocale(LC_ALL, "");
    if (a->headless && strcmp(nl_langinfo(CODESET), "UTF-8")) /* the dump is UTF-8 whatever the caller's locale */
        setlocale(LC_CTYPE, "C.UTF-8");
    a->utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
    a->worker = tui_worker_start();
    if (!a->worker) {
        app_free(a);
        pare_fail(err, PARE_ENOMEM, "cannot start the job thread");
        return -1;
    }
    a->jctx = (tui_job_ctx){&a->st, job_log, a};
    if (tui_term_start(a, o->cols, o->rows)) {
        tui_worker_stop(a->worker, 1000);
        app_free(a);
        pare_fail(err, PARE_EINVAL, "cannot start the terminal (TERM=%s)",
                  a->headless      ? "xterm-256color"
                  : getenv("TERM") ? getenv("TERM")
                                   : "");
        return -1;
    }
    if (a->st.spectra_on_demand) /* the rule and why: docs/tui.md "Big models" */
        tui_log(a, 0,
                "loaded %s: %d block matrices (%s, spectra of all estimated at %.0f s): the selected matrix's "
                "spectrum is computed on demand, S computes them all",
                o->model_path, a->st.n, pare_model_streamed(a->st.model) ? "streamed" : "in memory",
                tui_spectra_cost_s(&a->st));
    else
        tui_log(a, 0, "loaded %s: %d block matrices; spectra are computed in the background", o->model_path, a->st.n);
    if (a->sandbox)
        tui_log(a, 0, "F5 recipes run in the sandbox (F2 turns it off)");
    a->status[0] = 0;
    tui_want_spectra(a, PARE_WEIGHT_NONE);
    a->dirty = 1;
    char *screen = NULL;
    if (a->headless)
        screen = run_headless(a, o->keys, o->n_keys);
    double last_draw = 0;
    int prev_running = 0;
    while (!a->headless && !a->quit && !tui_term_signal()) {
        if (step(a))
            a->dirty = 1;
        double t = now_s();
        if (a->dirty || a->js.running != prev_running || (a->js.running && t - last_draw > 0.2)) {
            draw(a);
            last_draw = t;
            a->dirty = 0;
        }
        prev_running = a->js.running;
        int ch = getch();
        if (ch == ERR)
            continue;
        key(a, ch);
        a->dirty = 1;
    }
    /* leaving: cancel a job and wait for it briefly (the core stops at its next progress point) */
    int sig = tui_term_signal();
    int headless = a->headless;
    int joined = tui_worker_stop(a->worker, 3000) == 0;
    tui_term_finish(a);
    if (joined)
        app_free(a);
    if (sig) {
        free(screen);
        signal(sig, SIG_DFL);
        raise(sig);
        return TUI_INTERRUPTED;
    }
    if (headless && o->dump) {
        if (!screen) {
            pare_fail(err, PARE_ENOMEM, "out of memory for the screen text");
            return -1;
        }
        int rc = write_dump(o->dump, screen, err);
        free(screen);
        if (rc)
            return -1;
    } else
        free(screen);
    return TUI_DONE;
}

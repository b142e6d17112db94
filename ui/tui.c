/* `pare tui`: the terminal's life cycle (restored on every exit path: quit, errors, Ctrl-C, SIGTERM,
 * crash signals), library output on fds 1 and 2 captured into the log pane, and the screen manager: layout, focus,
 * overlays (help, setup, presets), the line editor, the function bar and the event loop that polls the
 * job thread so keys are handled within 100 ms while a job runs. The panes are in panel_*.c. */
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/fileio.h"
#include "recipe_out.h"
#include "tui.h"
#include "tui_internal.h"

/* ---- the terminal ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signal;    /* a quit signal arrived (SIGINT, SIGTERM, SIGHUP) */
static volatile sig_atomic_t g_term_up;   /* curses owns the terminal */
static int g_saved_fd[3] = {-1, -1, -1};  /* the real fds 1 and 2 while a pipe stands in for them */
static int g_pipe[3] = {-1, -1, -1};      /* read ends of those pipes */
static FILE *g_term_out;                  /* curses' own handle on the terminal (a dup of fd 1) */
static FILE *g_term_in;                   /* headless: /dev/null as curses' input */
static SCREEN *g_screen;

/* Gives the terminal back: leaves curses (normal screen, cursor, modes) and restores fds 1 and 2.
 * Safe to call more than once; called on every exit path, from atexit and from the crash handler. */
static void term_end(void)
{
    if (g_term_up) {
        g_term_up = 0;
        endwin();
    }
    for (int fd = 1; fd <= 2; fd++)
        if (g_saved_fd[fd] >= 0) {
            dup2(g_saved_fd[fd], fd);
            close(g_saved_fd[fd]);
            g_saved_fd[fd] = -1;
        }
}

static void on_quit_signal(int sig) { g_signal = sig; }

/* A crash must not leave the terminal in raw mode on the alternate screen: restore it, then die of
 * the same signal (so a core dump and the exit status stay what they would have been). */
static void on_crash(int sig)
{
    term_end();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    int crash[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof crash / sizeof crash[0]; i++)
        sigaction(crash[i], &sa, NULL);
}

/* Libraries (OpenBLAS, OpenMP, a recipe's io.write) may write to stderr or stdout; while the screen is
 * up that would scribble over it, so fds 1 and 2 become pipes the loop drains into the log pane
 * (curses writes through its own duplicate of the terminal, g_term_out). */
static void capture_output(void)
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC))
            continue;
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        fcntl(fds[1], F_SETFL, O_NONBLOCK); /* a full pipe drops text rather than blocking a job */
        g_saved_fd[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (g_saved_fd[fd] < 0 || dup2(fds[1], fd) < 0) {
            if (g_saved_fd[fd] >= 0)
                close(g_saved_fd[fd]);
            g_saved_fd[fd] = -1;
            close(fds[0]);
        } else
            g_pipe[fd] = fds[0];
        close(fds[1]);
    }
}

/* Takes the terminal (headless: curses draws into memory for a cols x rows screen, writing to
 * /dev/null and reading nothing; the keys come from --keys). */
static int term_start(tui_app *a, int cols, int rows)
{
    install_signals(); /* before curses, which otherwise installs its own SIGINT/SIGTERM handlers */
    FILE *in = stdin;
    if (a->headless) {
        g_term_out = fopen("/dev/null", "w");
        g_term_in = fopen("/dev/null", "r");
        if (!g_term_out || !g_term_in) {
            if (g_term_out)
                fclose(g_term_out);
            if (g_term_in)
                fclose(g_term_in);
            g_term_out = g_term_in = NULL;
            return -1;
        }
        in = g_term_in;
        /* a fixed terminal type: what is drawn does not depend on the caller's TERM */
        g_screen = newterm("xterm-256color", g_term_out, in);
        if (!g_screen)
            g_screen = newterm("vt100", g_term_out, in);
    } else {
        int out = fcntl(1, F_DUPFD_CLOEXEC, 3);
        if (out < 0 || !(g_term_out = fdopen(out, "w"))) {
            if (out >= 0)
                close(out);
            return -1;
        }
        g_screen = newterm(NULL, g_term_out, in);
    }
    if (!g_screen) {
        fclose(g_term_out);
        g_term_out = NULL;
        if (g_term_in)
            fclose(g_term_in);
        g_term_in = NULL;
        return -1;
    }
    g_term_up = 1;
    atexit(term_end);
    if (a->headless)
        resizeterm(rows, cols);
    capture_output();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(50); /* the loop wakes at least every 50 ms: keys, job progress, signals */
    mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    tui_colors_init(a);
    return 0;
}

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

static int pending_w = -1; /* weighting of the spectra job in flight */

void tui_want_spectra(tui_app *a, int w)
{
    if (w < 0 || w > 2 || a->st.spectra[w] || a->auto_failed[w] || tui_worker_busy(a->worker))
        return;
    if (w != PARE_WEIGHT_NONE && !a->st.set.calib[0]) {
        a->auto_failed[w] = 1;
        tui_log(a, 1, "the %s spectra need a calibration text: F2 (setup) or --calib FILE", TUI_WEIGHTING_LABELS[w]);
        return;
    }
    if (tui_submit(a, tui_job_spectra(&a->st, w)) == 0)
        pending_w = w;
}

/* Lines written to fds 1 and 2 while the screen is up, into the log. */
static void drain_output(tui_app *a)
{
    static char part[3][1024];
    static size_t plen[3];
    fflush(stdout); /* what a recipe left in stdout's buffer, into the pipe */
    for (int fd = 1; fd <= 2; fd++) {
        if (g_pipe[fd] < 0)
            continue;
        char buf[4096];
        ssize_t n;
        while ((n = read(g_pipe[fd], buf, sizeof buf)) > 0)
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == '\n' || plen[fd] == sizeof part[fd] - 1) {
                    part[fd][plen[fd]] = 0;
                    tui_log(a, 0, "%s: %s", fd == 1 ? "stdout" : "stderr", part[fd]);
                    plen[fd] = 0;
                } else
                    part[fd][plen[fd]++] = buf[i];
            }
    }
}

/* ---- files the session writes -------------------------------------------------------------------- */

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
    unsigned long long h = tui_config_hash(&a->st.cfg, &a->st.set);
    for (int i = a->st.n_res - 1; i >= 0; i--) { /* what the workbench measured for this configuration */
        const tui_result *r = &a->st.res[i];
        if (r->hash == h) {
            size_t o = 0;
            if (!isnan(r->ppl))
                o = (size_t)snprintf(note, sizeof note, "Measured in the workbench: perplexity %.17g on %.700s (window %d).",
                                     r->ppl, a->st.set.eval, a->st.set.window);
            if (r->task[0] && o < sizeof note) /* zero-shot accuracies of the same configuration */
                snprintf(note + o, sizeof note - o, "%sMeasured in the workbench: %s acc %.17g acc_norm %.17g (%zu items).",
                         o ? "\n" : "", r->task, r->acc, r->acc_norm, r->task_items);
            break;
        }
    }
    pare_error err = {0};
    if (tui_recipe_save(&a->st, &a->st.cfg, &a->st.set, note, path, &err)) {
        tui_log(a, 1, "save: %s", err.msg);
        return -1;
    }
    return 0;
}

static void do_save(tui_app *a)
{
    char path[1200];
    if (!save_recipe(a, path, sizeof path))
        tui_log(a, 0, "saved %s: pare run %s reproduces this configuration", path, path);
}

static void do_export(tui_app *a)
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

static void do_png(tui_app *a)
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

static void do_eval(tui_app *a)
{
    if (!a->st.dec_ok) {
        tui_log(a, 1, "cannot evaluate: %s", a->st.dec_err);
        return;
    }
    tui_submit(a, tui_job_eval(&a->st));
}

/* ---- presets (F5) ------------------------------------------------------------------------------- */

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

static void run_preset(tui_app *a, const char *path)
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

/* ---- setup (F2) --------------------------------------------------------------------------------- */

enum { S_CALIB, S_SAMPLES, S_LEN, S_SEED, S_EVAL, S_WINDOW, S_LIMIT, S_OUT, S_TASK, S_SANDBOX, S_COUNT };
static const char *const SETUP_NAMES[S_COUNT] = {"calibration text", "calibration windows", "tokens per window",
                                                 "seed",             "evaluation text",     "evaluation window",
                                                 "limit tokens",     "output folder",       "zero-shot task",
                                                 "sandbox F5 recipes"};

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

static int setup_apply(tui_app *a, int f, const char *text)
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
    if (numeric && (end == text || *end || v < (f == S_LEN || f == S_WINDOW ? 2 : f == S_SAMPLES ? 1 : 0) ||
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
        memset(a->auto_failed, 0, sizeof a->auto_failed);
        tui_state_update(&a->st);
    }
    tui_log(a, 0, "%s: %s", SETUP_NAMES[f], text);
    return 0;
}

/* ---- the line editor ---------------------------------------------------------------------------- */

void tui_start_edit(tui_app *a, tui_edit_target t, int field, const char *prompt, const char *text)
{
    a->edit = t;
    a->edit_field = field;
    snprintf(a->edit_prompt, sizeof a->edit_prompt, "%s", prompt);
    snprintf(a->edit_buf, sizeof a->edit_buf, "%.1000s", text);
    a->edit_pos = (int)strlen(a->edit_buf);
    if (t == ED_BUDGET) {
        tui_budget_field_text(a, field, a->edit_orig, sizeof a->edit_orig);
        tui_budget_apply_text(a, field, a->edit_buf); /* live from the first digit */
    } else
        a->edit_orig[0] = 0;
    if (t == ED_SEARCH)
        snprintf(a->edit_orig, sizeof a->edit_orig, "%d", a->st.sel);
}

static void edit_changed(tui_app *a)
{
    if (a->edit == ED_BUDGET)
        tui_budget_apply_text(a, a->edit_field, a->edit_buf);
    else if (a->edit == ED_SEARCH) {
        int j = tui_tree_find(&a->st, a->edit_buf, atoi(a->edit_orig) - 1);
        if (j >= 0) {
            a->st.sel = j;
            tui_tree_follow(a);
        }
    }
}

static void edit_key(tui_app *a, int ch)
{
    size_t len = strlen(a->edit_buf);
    switch (ch) {
    case 27: /* Esc: back to what it was */
        if (a->edit == ED_BUDGET)
            tui_budget_apply_text(a, a->edit_field, a->edit_orig);
        else if (a->edit == ED_SEARCH) {
            a->st.sel = atoi(a->edit_orig);
            tui_tree_follow(a);
        }
        a->edit = ED_NONE;
        return;
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (a->edit == ED_BUDGET && tui_budget_apply_text(a, a->edit_field, a->edit_buf)) {
            tui_log(a, 1, "'%s' is not a number", a->edit_buf);
            tui_budget_apply_text(a, a->edit_field, a->edit_orig);
        } else if (a->edit == ED_SETUP)
            setup_apply(a, a->edit_field, a->edit_buf);
        else if (a->edit == ED_SEARCH)
            snprintf(a->search, sizeof a->search, "%.120s", a->edit_buf);
        a->edit = ED_NONE;
        return;
    case KEY_BACKSPACE:
    case 127:
    case 8:
        if (a->edit_pos > 0) {
            int start = a->edit_pos - 1;
            while (start > 0 && ((unsigned char)a->edit_buf[start] & 0xC0) == 0x80)
                start--;
            memmove(a->edit_buf + start, a->edit_buf + a->edit_pos, len - (size_t)a->edit_pos + 1);
            a->edit_pos = start;
        }
        break;
    case KEY_DC:
        if ((size_t)a->edit_pos < len)
            memmove(a->edit_buf + a->edit_pos, a->edit_buf + a->edit_pos + 1, len - (size_t)a->edit_pos);
        break;
    case KEY_LEFT: a->edit_pos -= a->edit_pos > 0; return;
    case KEY_RIGHT: a->edit_pos += (size_t)a->edit_pos < len; return;
    case KEY_HOME:
    case 1: a->edit_pos = 0; return;
    case KEY_END:
    case 5: a->edit_pos = (int)len; return;
    case 21: /* Ctrl-U */
        a->edit_buf[0] = 0;
        a->edit_pos = 0;
        break;
    default:
        if (ch >= 32 && ch < 256 && ch != 127 && len + 1 < sizeof a->edit_buf) {
            memmove(a->edit_buf + a->edit_pos + 1, a->edit_buf + a->edit_pos, len - (size_t)a->edit_pos + 1);
            a->edit_buf[a->edit_pos++] = (char)ch;
        } else
            return;
    }
    edit_changed(a);
}

/* ---- drawing ------------------------------------------------------------------------------------- */

static const struct {
    int key;
    const char *name, *label;
} FKEYS[] = {{KEY_F(1), "F1", "Help"},  {KEY_F(2), "F2", "Setup"},   {KEY_F(5), "F5", "Recipe"},
             {KEY_F(6), "F6", "Eval"},  {KEY_F(9), "F9", "Cancel"}, {KEY_F(10), "F10", "Quit"}};
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
    snprintf(line, sizeof line, " pare tui  %.300s (%s, %d layers, %s)  config: %s  spectra: %s", base,
             st->model->cfg.arch == PARE_ARCH_GPT2 ? "gpt2" : "llama", st->model->cfg.n_layers, total, label,
             TUI_WEIGHTING_LABELS[st->weighting]);
    tui_fill(0, 0, a->cols, tui_attr(a, PAIR_HEADER));
    tui_put(0, 0, a->cols, line, tui_attr(a, PAIR_HEADER));
}

static void draw_status(tui_app *a)
{
    tui_rect r = a->lay.status;
    tui_fill(r.y, 0, r.w, A_NORMAL);
    char line[1024];
    if (a->edit != ED_NONE) {
        snprintf(line, sizeof line, "%.60s%.900s", a->edit_prompt, a->edit_buf);
        tui_put(r.y, 0, r.w, line, A_BOLD);
        int cx = (int)strlen(a->edit_prompt);
        for (int i = 0; i < a->edit_pos; i++)
            cx += ((unsigned char)a->edit_buf[i] & 0xC0) != 0x80;
        if (cx < r.w) { /* the cursor: a reversed cell */
            char c[8] = " ";
            if ((size_t)a->edit_pos < strlen(a->edit_buf)) {
                int l = 1;
                while (((unsigned char)a->edit_buf[a->edit_pos + l] & 0xC0) == 0x80)
                    l++;
                snprintf(c, sizeof c, "%.*s", l, a->edit_buf + a->edit_pos);
            }
            tui_put(r.y, cx, 1, c, A_REVERSE);
        }
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

static void mix_apply(tui_app *a)
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
    if (need >= 0 && !a->auto_failed[need]) { /* applied by itself once the spectra are there */
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

static void draw_overlay(tui_app *a)
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
                snprintf(line, sizeof line, " %-8s %s %s %s", TUI_TYPE_NAMES[rows[i]], a->utf8 ? "◂" : "<",
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
    tui_tree_draw(a, a->lay.pane[TUI_P_TREE], a->focus == TUI_P_TREE);
    tui_plot_draw(a, a->lay.pane[TUI_P_PLOT], a->focus == TUI_P_PLOT);
    tui_budget_draw(a, a->lay.pane[TUI_P_BUDGET], a->focus == TUI_P_BUDGET);
    tui_results_draw(a, a->lay.pane[TUI_P_RESULTS], a->focus == TUI_P_RESULTS);
    tui_log_draw(a, a->lay.pane[TUI_P_LOG], a->focus == TUI_P_LOG);
    draw_status(a);
    draw_fbar(a);
    draw_overlay(a);
    refresh();
}

/* ---- keys ---------------------------------------------------------------------------------------- */

static void overlay_key(tui_app *a, int ch)
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
            mix_apply(a);
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
            run_preset(a, a->presets[a->ov_row]);
        }
        return;
    default: return;
    }
}

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
        int ch = ev.bstate & BUTTON4_PRESSED ? KEY_UP : KEY_DOWN;
        if (a->focus == TUI_P_TREE)
            tui_tree_key(a, ch);
        else if (a->focus == TUI_P_RESULTS)
            tui_results_key(a, ch);
        else if (a->focus == TUI_P_LOG)
            tui_log_key(a, ch);
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
            switch (p) {
            case TUI_P_TREE: tui_tree_click(a, ev.x, ev.y); break;
            case TUI_P_PLOT: tui_plot_click(a, ev.x, ev.y); break;
            case TUI_P_BUDGET: tui_budget_click(a, ev.x, ev.y); break;
            case TUI_P_RESULTS: tui_results_click(a, ev.x, ev.y); break;
            default: break;
            }
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
        edit_key(a, ch);
        return;
    }
    if (a->overlay != OV_NONE) {
        overlay_key(a, ch);
        return;
    }
    switch (ch) {
    case KEY_F(10):
    case 'q': a->quit = 1; return;
    case KEY_F(1):
    case '?': a->overlay = OV_HELP; return;
    case KEY_F(2):
        a->overlay = OV_SETUP;
        a->ov_row = 0;
        return;
    case KEY_F(5):
        load_presets(a);
        a->overlay = OV_PRESETS;
        a->ov_row = 0;
        return;
    case KEY_F(6):
    case 'e': do_eval(a); return;
    case KEY_F(9):
    case 27:
        if (tui_worker_busy(a->worker)) {
            tui_worker_cancel(a->worker);
            tui_log(a, 0, "cancelling %s", a->js.job);
        }
        return;
    case '\t': a->focus = (a->focus + 1) % TUI_P_COUNT; return;
    case KEY_BTAB: a->focus = (a->focus + TUI_P_COUNT - 1) % TUI_P_COUNT; return;
    case 's': do_save(a); return;
    case 'x': do_export(a); return;
    case 'p': do_png(a); return;
    case 'w': cycle_weighting(a); return;
    case 'h': toggle_plot(a, TUI_PLOT_HEATMAP); return;
    case 'g': toggle_plot(a, TUI_PLOT_LAYERS); return;
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
    case 'm':
        a->overlay = OV_MIX;
        a->ov_row = 0;
        return;
    case 'u':
        tui_state_use_budget(&a->st);
        if (a->st.dec_need >= 0)
            tui_want_spectra(a, a->st.dec_need);
        return;
    case 12: clearok(stdscr, TRUE); return; /* Ctrl-L */
    default: break;
    }
    switch (a->focus) {
    case TUI_P_TREE:
        if (!tui_tree_key(a, ch))
            tui_rank_key(a, ch);
        break;
    case TUI_P_PLOT:
        if (!tui_plot_key(a, ch))
            tui_rank_key(a, ch);
        break;
    case TUI_P_BUDGET: tui_budget_key(a, ch); break;
    case TUI_P_RESULTS: tui_results_key(a, ch); break;
    default: tui_log_key(a, ch); break;
    }
}

/* ---- the command --------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void app_free(tui_app *a)
{
    for (int i = 0; i < a->log_n; i++)
        free(a->log[i]);
    free(a->log);
    for (int i = 0; i < a->n_presets; i++)
        free(a->presets[i]);
    free(a->presets);
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
        if (pending_w >= 0 && !a->st.spectra[pending_w])
            a->auto_failed[pending_w] = 1; /* failed or cancelled: not again by itself */
        pending_w = -1;
    }
    a->js = js;
    drain_output(a);
    if (!js.running && a->mix_pending)
        mix_apply(a);
    if (!js.running) {
        if (a->st.dec_need >= 0)
            tui_want_spectra(a, a->st.dec_need);
        tui_want_spectra(a, a->st.weighting);
    }
    return changed;
}

/* Headless: until no job runs and none is due (a job a key started, the spectra the view asks for). */
static void wait_idle(tui_app *a)
{
    for (;;) {
        step(a);
        if (g_signal || (!tui_worker_busy(a->worker) && !a->js.running))
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
    for (int i = 0; i < n_keys && !a->quit && !g_signal; i++) {
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
        {"model", OPT_STR, &model, "model folder (Hugging Face or pare export) or llama2.c checkpoint (default $PARE_MODEL)"},
        {"calib", OPT_STR, &calib, "calibration text (weighted spectra, methods that need statistics)"},
        {"calib-samples", OPT_INT, &set.calib_samples, "calibration windows (default 128)"},
        {"calib-len", OPT_INT, &set.calib_len, "tokens per calibration window (default 256)"},
        {"seed", OPT_U64, &set.seed, "seed of the calibration windows (default 0)"},
        {"eval", OPT_STR, &eval, "evaluation text for e / F6"},
        {"window", OPT_INT, &set.window, "evaluation window (default 256)"},
        {"limit-tokens", OPT_SIZE, &limit_sz, "evaluate only the first N tokens (default: all)"},
        {"task", OPT_STR, &task, "zero-shot task e also scores: piqa | arc-easy | boolq | hellaswag"},
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
        cli_usage("tui", "--model DIR [--calib TEXT] [--eval TEXT] [--out DIR] [--sandbox [--allow PATH ...]]\n"
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
        pare_fail(&err, PARE_EINVAL, "no model: pass --model DIR or set PARE_MODEL; without one, `pare demo` trains a "
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

    static tui_app app; /* static: the crash and exit paths may still see it */
    tui_app *a = &app;
    memset(a, 0, sizeof *a);
    a->headless = headless;
    a->sandbox = sandbox;
    a->allow = allow;
    a->n_allow = n_allow;
    if (tui_state_init(&a->st, m, model, &set, &err)) {
        pare_model_free(m);
        free(keys);
        free(allow);
        return cli_error("tui", &err);
    }
    setlocale(LC_ALL, "");
    if (headless && strcmp(nl_langinfo(CODESET), "UTF-8")) /* the dump is UTF-8 whatever the caller's locale */
        setlocale(LC_CTYPE, "C.UTF-8");
    a->utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
    a->worker = tui_worker_start();
    if (!a->worker) {
        app_free(a);
        free(keys);
        pare_fail(&err, PARE_ENOMEM, "cannot start the job thread");
        return cli_error("tui", &err);
    }
    a->jctx = (tui_job_ctx){&a->st, job_log, a};
    if (term_start(a, cols, rows)) {
        tui_worker_stop(a->worker, 1000);
        app_free(a);
        free(keys);
        pare_fail(&err, PARE_EINVAL, "cannot start the terminal (TERM=%s)",
                  headless ? "xterm-256color" : getenv("TERM") ? getenv("TERM") : "");
        return cli_error("tui", &err);
    }
    tui_log(a, 0, "loaded %s: %d block matrices; spectra are computed in the background", model, a->st.n);
    if (a->sandbox)
        tui_log(a, 0, "F5 recipes run in the sandbox (F2 turns it off)");
    a->status[0] = 0;
    tui_want_spectra(a, PARE_WEIGHT_NONE);
    a->dirty = 1;
    char *screen = NULL;
    if (headless)
        screen = run_headless(a, keys, n_keys);
    double last_draw = 0;
    int prev_running = 0;
    while (!headless && !a->quit && !g_signal) {
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
    free(keys);
    /* leaving: cancel a job and wait for it briefly (the core stops at its next progress point) */
    int sig = g_signal;
    int joined = tui_worker_stop(a->worker, 3000) == 0;
    fflush(stdout); /* into the pipe, not onto the restored terminal */
    term_end();
    if (g_screen) { /* curses' memory, for a leak-free exit under the sanitizers */
        delscreen(g_screen);
        g_screen = NULL;
        fclose(g_term_out);
        g_term_out = NULL;
        if (g_term_in)
            fclose(g_term_in);
        g_term_in = NULL;
    }
    drain_output(a);
    for (int fd = 1; fd <= 2; fd++)
        if (g_pipe[fd] >= 0)
            close(g_pipe[fd]);
    if (joined)
        app_free(a);
    if (sig) {
        free(screen);
        signal(sig, SIG_DFL);
        raise(sig);
        return EXIT_INTERRUPTED;
    }
    if (headless && dump) {
        if (!screen) {
            pare_fail(&err, PARE_ENOMEM, "out of memory for the screen text");
            return cli_error("tui", &err);
        }
        int rc = write_dump(dump, screen, &err);
        free(screen);
        if (rc)
            return cli_error("tui", &err);
    } else
        free(screen);
    return 0;
}

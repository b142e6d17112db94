/* `pare tui`: the workbench's logic without a terminal (budget totals against real compression, the
 * rank cursor's figures, the tree, the layout, plots, the job thread, saved recipes that `pare run`
 * reproduces to the last digit), then the real binary in a pseudo-terminal (100x30, xterm-256color)
 * read through a small VT100 screen model: it starts, shows the model tree, moves the rank cursor,
 * evaluates and cancels in the background while taking keys, saves a recipe, quits with q and F10,
 * restores the terminal on quit, Ctrl-C, SIGTERM and crash signals, and says "too small" below 80x24;
 * then the headless mode (--keys, --dump-screen: what the screen shows against the state, `pare eval`
 * and the core; the sandbox setting for F5 recipes), and once in a real terminal under tmux. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "core/fileio.h"
#include "core/memcheck.h"
#include "core/method.h"
#include "fixture.h"
#include "harness.h"
#include "plots.h"
#include "recipe_out.h"
#include "state.h"
#include "vt.h"
#include "worker.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *text_file(void)
{
    const char *p = tmp_path("text.txt");
    fixture_write_pattern(p, "the cat sat on the mat and the dog sat on the log while the bird sang a song ", 6000);
    return p;
}

/* A fixture model loaded into a fresh workbench state (calibration 4 x 32, evaluation window 32). */
static int open_state(tui_state *st, const char *name, int gpt2, const char *text)
{
    const char *dir = fixture_hf_dir(name, gpt2);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    if (!m)
        return -1;
    tui_settings set;
    tui_settings_defaults(&set);
    set.calib_samples = 4;
    set.calib_len = 32;
    set.window = 32;
    if (text) {
        snprintf(set.calib, sizeof set.calib, "%s", text);
        snprintf(set.eval, sizeof set.eval, "%s", text);
    }
    snprintf(set.out, sizeof set.out, "%s", tmp_path("session"));
    if (tui_state_init(st, m, dir, &set, &err)) {
        CHECKF(0, "%s", err.msg);
        pare_model_free(m);
        return -1;
    }
    return 0;
}

static void check_reproduces(tui_state *st, const char *tag);

static int method_index(const char *name) { return (int)(pare_method_find(name) - pare_methods(NULL)); }

static void set_method(tui_state *st, const char *name, double ratio)
{
    st->method_idx = method_index(name);
    st->mo.ratio = ratio;
    tui_state_use_budget(st);
}

/* ---- state: totals, plans, cursor, tree, layout -------------------------------------------------- */

/* The budget's totals under both conventions equal what compressing a clone with the same method
 * gives (block linears from the apply report, all parameters from the compressed model), for a
 * LoRAP plan, a uniform SVD plan, a mask plan and manual ranks; an impossible ratio names the
 * largest feasible one. */
static void test_budget_totals(void)
{
    const char *text = text_file();
    tui_state st;
    if (open_state(&st, "totals", 0, text))
        return;
    CHECK(st.cfg.kind == TUI_CFG_DENSE && st.dec_ok && st.block_after == st.block_before &&
          st.total_after == st.total_before);
    static const struct {
        const char *method;
        double ratio;
    } cases[] = {{"lorap", 0.3}, {"svd", 0.4}, {"magnitude", 0.5}};
    for (int c = 0; c < 3; c++) {
        set_method(&st, cases[c].method, cases[c].ratio);
        CHECKF(st.dec_ok, "%s: %s", cases[c].method, st.dec_err);
        pare_model *m = NULL;
        pare_error err = {0};
        CHECK(pare_model_clone(st.model, &m, &err) == PARE_OK);
        int32_t *ids = NULL;
        pare_calib_opts co;
        CHECK(tui_calib_windows(m, &st.set, &ids, &co, &err) == PARE_OK);
        pare_apply_report rep = {0};
        pare_method_opts mo;
        tui_method_opts_effective(&st.cfg, &mo);
        CHECKF(pare_method_compress(m, st.cfg.method, &mo, ids, &co, NULL, &rep, NULL, &err) == PARE_OK, "%s", err.msg);
        pare_param_counts pc;
        pare_model_param_counts(m, &pc);
        CHECKF(rep.params_after == st.block_after, "%s: block linears %zu compressed, %zu in the budget",
               cases[c].method, rep.params_after, st.block_after);
        CHECKF(pc.total == st.total_after, "%s: all parameters %zu compressed, %zu in the budget", cases[c].method,
               pc.total, st.total_after);
        CHECK(st.block_after < st.block_before && st.total_before - st.total_after == st.block_before - st.block_after);
        int want_f = rep.factorized, want_m = rep.masked;
        CHECKF(st.n_factor == want_f && st.n_mask == want_m, "%s: %d factorized, %d masked; compress: %d, %d",
               cases[c].method, st.n_factor, st.n_mask, want_f, want_m);
        free(ids);
        pare_model_free(m);
    }
    /* LoRAP prunes FFN channels and factorizes attention */
    set_method(&st, "lorap", 0.3);
    CHECK(st.n_channels > 0 && st.dec[0].action == PARE_PLAN_FACTOR);
    /* manual ranks started from the LoRAP plan keep its factorized matrices, not its channel pruning */
    int dropped = 0;
    CHECK(tui_state_set_rank(&st, 0, 3, PARE_WEIGHT_NONE, &dropped) == 0);
    CHECK(st.cfg.kind == TUI_CFG_MANUAL && st.n_channels == 0);
    int kept = 0;
    for (int i = 1; i < st.n; i++)
        kept += st.dec[i].action == PARE_PLAN_FACTOR;
    CHECKF(kept > 0 && dropped == 6, "from the LoRAP plan: %d factorized kept, %d decisions dropped", kept, dropped);
    /* an impossible budget names the largest feasible ratio */
    set_method(&st, "svd", 0.99);
    CHECKF(!st.dec_ok && strstr(st.dec_err, "largest feasible"), "ratio 0.99: %s", st.dec_err);
    /* from the dense model: one matrix at rank 3 costs 3 (m + n) */
    st.method_idx = -1;
    tui_state_use_budget(&st);
    CHECK(tui_state_set_rank(&st, 0, 3, PARE_WEIGHT_NONE, NULL) == 0);
    size_t mn = (size_t)st.lin[0]->out * st.lin[0]->in;
    CHECK(st.block_after == st.block_before - mn + (size_t)3 * (st.lin[0]->out + st.lin[0]->in));
    CHECK(st.total_after == st.total_before - mn + (size_t)3 * (st.lin[0]->out + st.lin[0]->in));
    CHECK(st.n_factor == 1);
    tui_state_free(&st);
}

/* A method per matrix type: uniform ranks for the chosen types only, energy ranks from each type's
 * weighted spectrum, a global allocation over every type in its own weighting; the result is a manual
 * configuration whose recipe reproduces it. */
static void test_method_per_type(void)
{
    const char *text = text_file();
    tui_state st;
    if (open_state(&st, "mix", 0, text))
        return;
    int tm[TUI_TYPES];
    for (int t = 0; t < TUI_TYPES; t++)
        tm[t] = TUI_MIX_KEEP;
    int need = -1;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == -1 && strstr(st.dec_err, "nothing"));
    tm[0] = tm[1] = PARE_WEIGHT_ACT; /* q, k: ASVD */
    tm[6] = PARE_WEIGHT_NONE;        /* down: plain SVD */
    st.mo.ratio = 0.4;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == 0 && st.cfg.kind == TUI_CFG_MANUAL);
    for (int i = 0; i < st.n; i++) {
        const pare_linear *l = st.lin[i];
        int want = tm[st.type[i]] < 0 ? 0 : (int)(0.6 * l->out * l->in / (l->out + l->in) + 1e-9);
        CHECKF(st.cfg.man[i].rank == want && (want == 0 || st.cfg.man[i].weighting == tm[st.type[i]]),
               "%s: rank %d, want %d", l->name, st.cfg.man[i].rank, want);
    }
    /* energy and global wait for the spectra of the weightings they use */
    CHECK(tui_state_mix(&st, tm, TUI_MIX_ENERGY, &need) == -1 && need == PARE_WEIGHT_ACT);
    pare_error err = {0};
    CHECK(tui_calibrate(st.model, &st.set, 1, NULL, &st.calib, &err) == PARE_OK);
    for (int w = 0; w < 3; w++)
        CHECK(pare_model_spectra_weighted(st.model, w ? st.calib : NULL, (pare_weighting)w, NULL, &st.spectra[w],
                                          &err) == PARE_OK);
    st.mo.energy = 0.8;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_ENERGY, &need) == 0);
    for (int i = 0; i < st.n; i++) {
        int w = tm[st.type[i]];
        if (w < 0) {
            CHECK(st.cfg.man[i].rank == 0);
            continue;
        }
        const pare_matrix_spectrum *ms = &st.spectra[w]->mats[i];
        int k = pare_spectrum_energy_rank(ms->s, ms->stats.r, 0.8);
        CHECKF(st.cfg.man[i].rank == (k < ms->stats.break_even ? k : 0), "%s: energy rank %d, want %d", ms->name,
               st.cfg.man[i].rank, k);
    }
    CHECK(tui_state_mix(&st, tm, TUI_MIX_GLOBAL, &need) == -1 && strstr(st.dec_err, "every type"));
    for (int t = 0; t < TUI_TYPES; t++)
        tm[t] = t < 4 ? PARE_WEIGHT_WHITEN : PARE_WEIGHT_ACT;
    st.mo.ratio = 0.3;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_GLOBAL, &need) == 0);
    double removed = 1.0 - (double)st.block_after / (double)st.block_before;
    CHECKF(removed >= 0.3 - 0.02 && st.n_factor > 0, "global: %.4f removed, %d factorized", removed, st.n_factor);
    check_reproduces(&st, "mixed");
    tui_state_free(&st);
}

/* Global and energy plans from the cached spectra equal pare_method_plan's (which calibrates and
 * computes the spectra itself); without the spectra the state says which weighting it waits for. */
static void test_spectral_plans(void)
{
    const char *text = text_file();
    tui_state st;
    if (open_state(&st, "spectral", 1, text))
        return;
    set_method(&st, "global", 0.3);
    CHECKF(!st.dec_ok && st.dec_need == PARE_WEIGHT_ACT, "need %d: %s", st.dec_need, st.dec_err);
    pare_error err = {0};
    CHECK(tui_calibrate(st.model, &st.set, 1, NULL, &st.calib, &err) == PARE_OK);
    CHECK(pare_model_spectra_weighted(st.model, st.calib, PARE_WEIGHT_ACT, NULL, &st.spectra[PARE_WEIGHT_ACT], &err) ==
          PARE_OK);
    const char *names[] = {"global", "energy"};
    for (int k = 0; k < 2; k++) {
        set_method(&st, names[k], 0.3);
        CHECKF(st.dec_ok, "%s: %s", names[k], st.dec_err);
        int32_t *ids = NULL;
        pare_calib_opts co;
        CHECK(tui_calib_windows(st.model, &st.set, &ids, &co, &err) == PARE_OK);
        pare_plan plan = {0};
        pare_method_opts mo;
        tui_method_opts_effective(&st.cfg, &mo);
        CHECKF(pare_method_plan(st.model, st.cfg.method, &mo, ids, &co, NULL, &plan, NULL, &err) == PARE_OK, "%s",
               err.msg);
        int same = plan.count == st.n;
        for (int i = 0; same && i < st.n; i++)
            same = plan.items[i].action == st.dec[i].action && plan.items[i].rank == st.dec[i].rank &&
                   plan.items[i].params_after == st.dec[i].after;
        CHECKF(same, "%s: the plan from cached spectra differs from pare_method_plan's", names[k]);
        pare_plan_free(&plan);
        free(ids);
    }
    tui_state_free(&st);
}

/* The rank cursor's figures: k (m + n) parameters, the truncation error and energy of the spectrum,
 * break-even; the cursor stays within 1..min(m, n). */
static void test_rank_cursor(void)
{
    tui_state st;
    if (open_state(&st, "cursor", 0, NULL))
        return;
    tui_cursor_stats cs;
    CHECK(tui_cursor_stats_at(&st, 1, PARE_WEIGHT_NONE, 4, &cs) == -1); /* spectra not computed */
    pare_error err = {0};
    CHECK(pare_model_spectra_weighted(st.model, NULL, PARE_WEIGHT_NONE, NULL, &st.spectra[0], &err) == PARE_OK);
    for (int i = 0; i < st.n; i++) {
        const pare_matrix_spectrum *ms = &st.spectra[0]->mats[i];
        int r = ms->stats.r;
        for (int k = 1; k <= r; k += r / 4 > 0 ? r / 4 : 1) {
            CHECK(tui_cursor_stats_at(&st, i, PARE_WEIGHT_NONE, k, &cs) == 0);
            double e = pare_spectrum_trunc_error(ms->s, r, k);
            CHECKF(cs.k == k && cs.params == (size_t)k * (ms->m + ms->n) && cs.trunc_error == e &&
                       fabs(cs.energy - (1 - e * e)) < 1e-15 && cs.break_even == ms->m * ms->n / (ms->m + ms->n),
                   "%s at k %d", ms->name, k);
            CHECK(fabs(cs.kept - (double)cs.params / ((double)ms->m * ms->n)) < 1e-15);
        }
        CHECK(tui_cursor_stats_at(&st, i, PARE_WEIGHT_NONE, r, &cs) == 0 && cs.trunc_error == 0 && cs.energy == 1);
    }
    int lim = st.lin[1]->out < st.lin[1]->in ? st.lin[1]->out : st.lin[1]->in;
    CHECK(tui_cursor_move(&st, 1, -1000) == 1);
    CHECK(tui_cursor_move(&st, 1, 3) == 4);
    CHECK(tui_cursor_move(&st, 1, 1000) == lim);
    /* a rank beyond min(m, n) is refused, naming the matrix */
    CHECK(tui_state_set_rank(&st, 1, lim + 1, PARE_WEIGHT_NONE, NULL) == -1 && strstr(st.dec_err, st.lin[1]->name));
    /* a whole type at the same parameter fraction */
    CHECK(tui_state_set_rank_type(&st, 0, 8, PARE_WEIGHT_NONE) == 0);
    for (int i = 0; i < st.n; i++)
        CHECKF((st.type[i] == st.type[0]) == (st.dec[i].action == PARE_PLAN_FACTOR), "%s", st.lin[i]->name);
    /* d: back to dense */
    CHECK(tui_state_set_rank(&st, 0, 0, PARE_WEIGHT_NONE, NULL) == 0 && st.dec[0].action == PARE_PLAN_DENSE);
    tui_state_free(&st);
}

/* The tree lists layers then matrices, folds, and finds names (wrapping, unfolding the layer). The
 * layout keeps the panes inside the screen without overlaps, and says too_small below 80x24. */
static void test_tree_and_layout(void)
{
    tui_state st;
    if (open_state(&st, "tree", 0, NULL))
        return;
    int L = st.model->cfg.n_layers;
    CHECK(tui_tree_rows(&st, NULL, 0) == L + st.n);
    tui_tree_row rows[64];
    int n = tui_tree_rows(&st, rows, 64);
    CHECK(rows[0].mat == -1 && rows[1].mat == 0 && rows[1 + 7].mat == -1 && rows[1 + 7].layer == 1);
    st.collapsed[0] = 1;
    CHECK(tui_tree_rows(&st, NULL, 0) == n - 7);
    int j = tui_tree_find(&st, "layers.0.mlp.down", -1);
    CHECK(j == 6 && st.collapsed[0] == 0);
    CHECK(tui_tree_find(&st, "DOWN_PROJ", j) == 13); /* case-insensitive, next after j */
    CHECK(tui_tree_find(&st, "down_proj", 13) == 6); /* wraps */
    CHECK(tui_tree_find(&st, "nothing", 0) == -1);
    CHECK(!strcmp(tui_short_name(&st, 4), "gate"));
    char detail[32];
    CHECK(!strcmp(tui_state_word(&st, 0, detail, sizeof detail), "dense"));
    tui_state_set_rank(&st, 0, 5, PARE_WEIGHT_NONE, NULL);
    CHECK(!strcmp(tui_state_word(&st, 0, detail, sizeof detail), "factorized") && !strcmp(detail, "r 5"));
    set_method(&st, "magnitude", 0.5);
    CHECK(!strcmp(tui_state_word(&st, 0, detail, sizeof detail), "masked") && !strcmp(detail, "50%"));
    set_method(&st, "lorap", 0.5);
    CHECK(!strcmp(tui_state_word(&st, 5, detail, sizeof detail), "sliced"));
    tui_state_free(&st);

    tui_layout l;
    tui_layout_compute(79, 24, &l);
    CHECK(l.too_small);
    tui_layout_compute(80, 23, &l);
    CHECK(l.too_small);
    int sizes[][2] = {{80, 24}, {100, 30}, {200, 60}};
    for (int s = 0; s < 3; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        tui_layout_compute(W, H, &l);
        CHECK(!l.too_small);
        static unsigned char used[60][200];
        memset(used, 0, sizeof used);
        int overlap = 0, cells = 0;
        for (int p = 0; p < TUI_P_COUNT; p++) {
            tui_rect r = l.pane[p];
            CHECKF(r.x >= 0 && r.y >= 1 && r.x + r.w <= W && r.y + r.h <= H - 2 && r.w >= 20 && r.h >= 5,
                   "%dx%d pane %d: %d,%d %dx%d", W, H, p, r.x, r.y, r.w, r.h);
            for (int y = r.y; y < r.y + r.h && y < H; y++)
                for (int x = r.x; x < r.x + r.w && x < W; x++)
                    overlap |= used[y][x]++, cells++;
        }
        CHECKF(!overlap && cells == W * (H - 3), "%dx%d: panes overlap or leave gaps", W, H);
        CHECK(l.status.y == H - 2 && l.fbar.y == H - 1 && l.header.y == 0);
    }
}

/* Every plot builds and renders in terminal cells; the spectrum needs its spectra, the chart results;
 * the PNG is written. */
static void test_plots(void)
{
    tui_state st;
    if (open_state(&st, "plots", 0, NULL))
        return;
    pare_plot *p = NULL;
    pare_error err = {0};
    CHECK(tui_plot_build(&st, TUI_PLOT_SPECTRUM, &p, &err) == PARE_EINVAL && strstr(err.msg, "not computed"));
    CHECK(tui_plot_build(&st, TUI_PLOT_CHART, &p, &err) == PARE_EINVAL && strstr(err.msg, "no results"));
    CHECK(pare_model_spectra_weighted(st.model, NULL, PARE_WEIGHT_NONE, NULL, &st.spectra[0], &err) == PARE_OK);
    tui_state_set_rank(&st, 2, 4, PARE_WEIGHT_NONE, NULL);
    tui_result r = {.label = "dense", .method = "dense", .ppl = 50, .total_after = 1000},
               r2 = {.label = "svd 0.3", .method = "svd", .ppl = 80, .total_after = 800};
    tui_state_add_result(&st, &r);
    tui_state_add_result(&st, &r2);
    for (int k = 0; k < TUI_PLOT_KINDS; k++) {
        if (k == TUI_PLOT_BUDGET) /* needs auto's analysis: test_auto_budget */
            continue;
        p = NULL;
        CHECKF(tui_plot_build(&st, (tui_plot_kind)k, &p, &err) == PARE_OK, "%s: %s", TUI_PLOT_NAMES[k], err.msg);
        pare_term_grid *g = NULL;
        CHECKF(p && pare_plot_render_terminal(p, 58, 14, PARE_TERM_BRAILLE, &g, &err) == PARE_OK, "%s: %s",
               TUI_PLOT_NAMES[k], err.msg);
        char *txt = NULL;
        if (g && !pare_term_grid_to_text(g, &txt, &err))
            CHECKF(k != TUI_PLOT_SPECTRUM || strstr(txt, "k 8"), "spectrum without the cursor line:\n%s", txt);
        free(txt);
        pare_term_grid_free(g);
        if (k == TUI_PLOT_SPECTRUM) {
            const char *png = tmp_path("spectrum.png");
            CHECKF(pare_plot_write_png(p, png, 0, 0, NULL, &err) == PARE_OK && pare_file_exists(png), "%s", err.msg);
        }
        pare_plot_destroy(p);
    }
    tui_state_free(&st);
}

/* ---- the job thread ------------------------------------------------------------------------------ */

typedef struct {
    tui_job job;
    int iters;
} spin_job;

static struct {
    int done_calls;
    pare_status st;
    int lines;
} SPIN;

static pare_status spin_run(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err)
{
    spin_job *s = (spin_job *)j;
    tui_worker_log(w, "spinning");
    for (int i = 0; i < s->iters; i++) {
        if (p->fn(p->user, "spin", (double)i / s->iters, "turning"))
            return pare_fail(err, PARE_ECANCELED, "cancelled at %d", i);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return PARE_OK;
}

static void spin_done(tui_job *j, pare_status st, const pare_error *err, void *ctx)
{
    (void)j, (void)err, (void)ctx;
    SPIN.done_calls++;
    SPIN.st = st;
}

static void count_line(void *ctx, const char *line)
{
    (void)ctx;
    SPIN.lines += !strcmp(line, "spinning");
}

static tui_job *spin(int iters)
{
    spin_job *s = calloc(1, sizeof *s);
    snprintf(s->job.name, sizeof s->job.name, "spin");
    s->job.run = spin_run;
    s->job.done = spin_done;
    s->iters = iters;
    return &s->job;
}

/* One job at a time; progress and log lines reach the poller; cancel stops the job at its next
 * progress point and done() runs on the polling thread; stop joins a finished or cancelled worker. */
static void test_worker(void)
{
    memset(&SPIN, 0, sizeof SPIN);
    tui_worker *w = tui_worker_start();
    CHECK(w != NULL);
    if (!w)
        return;
    tui_job *second = spin(1);
    CHECK(tui_worker_submit(w, spin(100000)) == 0);
    CHECK(tui_worker_submit(w, second) == -1); /* busy */
    free(second);
    tui_job_status js = {0};
    double t0 = now_s();
    while (now_s() - t0 < 5 && js.fraction <= 0) {
        tui_worker_poll(w, count_line, NULL, &js);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    CHECK(js.running && !strcmp(js.stage, "spin") && !strcmp(js.detail, "turning") && js.fraction > 0);
    tui_worker_cancel(w);
    double tc = now_s();
    int finished = 0;
    while (!finished && now_s() - tc < 5)
        finished = tui_worker_poll(w, count_line, NULL, &js);
    CHECKF(finished && now_s() - tc < 1.0, "cancel took %.3f s", now_s() - tc);
    CHECK(SPIN.done_calls == 1 && SPIN.st == PARE_ECANCELED && SPIN.lines == 1 && !js.running);
    CHECK(!tui_worker_busy(w));
    CHECK(tui_worker_submit(w, spin(3)) == 0);
    t0 = now_s();
    while (!tui_worker_poll(w, count_line, NULL, &js) && now_s() - t0 < 5) {
    }
    CHECK(SPIN.done_calls == 2 && SPIN.st == PARE_OK);
    CHECK(tui_worker_submit(w, spin(100000)) == 0);
    CHECK(tui_worker_stop(w, 3000) == 0); /* cancels and joins */
}

/* ---- saved recipes reproduce ---------------------------------------------------------------------- */

static double recipe_ppl(const char *out)
{
    const char *p = out ? strstr(out, "perplexity") : NULL;
    return p ? strtod(p + strlen("perplexity"), NULL) : -1;
}

/* Runs the saved recipe and compares its perplexity and per-matrix decisions (run.json) with the
 * workbench's own evaluation of the same configuration. */
static void check_reproduces(tui_state *st, const char *tag)
{
    pare_error err = {0};
    tui_result row;
    tui_config cfg; /* what e evaluates and s saves (auto: its plan as per-matrix decisions) */
    CHECKF(tui_config_resolve(st, &cfg, &err) == PARE_OK, "%s: %s", tag, err.msg);
    CHECKF(tui_run_config(st->model, &cfg, &st->set, NULL, &row, &err) == PARE_OK, "%s: %s", tag, err.msg);
    CHECKF(row.block_after == st->block_after && row.total_after == st->total_after,
           "%s: the evaluated model has %zu / %zu parameters, the budget said %zu / %zu", tag, row.block_after,
           row.total_after, st->block_after, st->total_after);
    char name[64], out_name[64];
    snprintf(name, sizeof name, "%s.lua", tag);
    snprintf(out_name, sizeof out_name, "run-%s", tag);
    char path[1300], outdir[1300];
    snprintf(path, sizeof path, "%s", tmp_path(name));
    snprintf(outdir, sizeof outdir, "%s", tmp_path(out_name));
    CHECKF(tui_recipe_save(st, &cfg, &st->set, "a note", path, &err) == PARE_OK, "%s", err.msg);
    tui_config_free(&cfg);
    char *out = NULL, *errout = NULL;
    int rc = run_pare(&out, &errout, (const char *const[]){"run", path, "--out", outdir, "--quiet", NULL});
    double got = recipe_ppl(out);
    CHECKF(rc == 0, "%s: pare run exit %d: %s", tag, rc, errout);
    CHECKF(row.ppl > 1 && got == row.ppl, "%s: recipe ppl %.17g, workbench %.17g", tag, got, row.ppl);
    free(out);
    free(errout);
    char rj[1400];
    snprintf(rj, sizeof rj, "%s/run.json", outdir);
    json_error_t je;
    json_t *j = json_load_file(rj, 0, &je);
    CHECKF(j != NULL, "%s: %s", rj, je.text);
    json_t *rows = json_object_get(j, "results"), *last = json_array_get(rows, json_array_size(rows) - 1);
    json_t *mats = json_object_get(last, "matrices"), *params = json_object_get(last, "params");
    CHECKF((size_t)json_integer_value(json_object_get(params, "block_linear")) == st->block_after &&
               (size_t)json_integer_value(json_object_get(params, "total")) == st->total_after,
           "%s: run.json parameters differ from the budget's", tag);
    int same = (int)json_array_size(mats) == st->n;
    for (int i = 0; same && i < st->n; i++) {
        json_t *mj = json_array_get(mats, (size_t)i);
        const char *kind = json_string_value(json_object_get(mj, "kind"));
        same = !strcmp(json_string_value(json_object_get(mj, "name")), st->lin[i]->name) &&
               (st->dec[i].action == PARE_PLAN_FACTOR) == (kind && !strcmp(kind, "factorized")) &&
               (st->dec[i].action != PARE_PLAN_FACTOR ||
                json_integer_value(json_object_get(mj, "rank")) == st->dec[i].rank);
        CHECKF(same, "%s: %s decided differently in the recipe run", tag, st->lin[i]->name);
    }
    json_decref(j);
}

/* The recipe the workbench saves reproduces its decisions and perplexity exactly: per-matrix ranks
 * with every weighting, LoRAP (sequential, calibrated), and a global allocation. */
static void test_recipe_reproduces(void)
{
    const char *text = text_file();
    tui_state st;
    if (open_state(&st, "repro", 0, text))
        return;
    /* manual: plain, activation-weighted and whitened factors on a few matrices */
    CHECK(tui_state_set_rank(&st, 0, 4, PARE_WEIGHT_NONE, NULL) == 0);
    CHECK(tui_state_set_rank(&st, 2, 6, PARE_WEIGHT_ACT, NULL) == 0);
    CHECK(tui_state_set_rank(&st, 9, 3, PARE_WEIGHT_ACT, NULL) == 0);
    CHECK(tui_state_set_rank(&st, 13, 5, PARE_WEIGHT_WHITEN, NULL) == 0);
    char *txt = NULL;
    pare_error err = {0};
    CHECK(tui_recipe_text(&st, &st.cfg, &st.set, NULL, &txt, &err) == PARE_OK);
    CHECKF(txt && strstr(txt, "m:factorize{rank = 6, weighting = \"act\", calib = c") && strstr(txt, "gram = true") &&
               strstr(txt, "\"model.layers.1.mlp.down_proj\""),
           "recipe:\n%s", txt);
    free(txt);
    check_reproduces(&st, "manual");
    set_method(&st, "lorap", 0.35);
    check_reproduces(&st, "lorap");
    st.method_idx = method_index("global");
    st.mo.weighting = PARE_WEIGHT_WHITEN;
    st.mo.ratio = 0.25;
    tui_state_use_budget(&st);
    CHECK(tui_calibrate(st.model, &st.set, 1, NULL, &st.calib, &err) == PARE_OK);
    CHECK(pare_model_spectra_weighted(st.model, st.calib, PARE_WEIGHT_WHITEN, NULL, &st.spectra[2], &err) == PARE_OK);
    tui_state_update(&st);
    CHECKF(st.dec_ok, "%s", st.dec_err);
    check_reproduces(&st, "global");
    tui_state_free(&st);
}

/* ---- the binary in a pseudo-terminal -------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int fd;
    vt screen;
    char *raw;
    size_t raw_n, raw_cap;
    int exited, status;
} tty_proc;

static int tty_spawn(tty_proc *p, int cols, int rows, const char *const *args, const char *const *env)
{
    memset(p, 0, sizeof *p);
    vt_init(&p->screen, cols, rows);
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    const char *bin = getenv("PARE_BIN");
    bin = bin && *bin ? bin : "./pare";
    const char *argv[40];
    int argc = 0;
    argv[argc++] = bin;
    for (int i = 0; args[i] && argc < 39; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    fflush(stdout);
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    if (p->pid < 0)
        return -1;
    if (p->pid == 0) {
        setenv("TERM", "xterm-256color", 1);
        setenv("LANG", "C.UTF-8", 1);
        setenv("LC_ALL", "C.UTF-8", 1);
        unsetenv("NO_COLOR");
        unsetenv("COLUMNS"); /* these would override the window size */
        unsetenv("LINES");
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    fcntl(p->fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Reads what the program wrote for up to ms milliseconds (less once it exited). */
static void tty_pump(tty_proc *p, int ms)
{
    double end = now_s() + ms / 1000.0;
    do {
        struct pollfd pf = {p->fd, POLLIN, 0};
        int left = (int)((end - now_s()) * 1000);
        if (poll(&pf, 1, left > 20 ? 20 : left > 0 ? left : 0) > 0) {
            char buf[65536];
            ssize_t n = read(p->fd, buf, sizeof buf);
            if (n > 0) {
                if (p->raw_n + (size_t)n + 1 > p->raw_cap) {
                    p->raw_cap = (p->raw_n + (size_t)n + 1) * 2;
                    p->raw = realloc(p->raw, p->raw_cap);
                }
                memcpy(p->raw + p->raw_n, buf, (size_t)n);
                p->raw_n += (size_t)n;
                p->raw[p->raw_n] = 0;
                vt_feed(&p->screen, buf, (size_t)n);
                continue;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { /* EIO: the terminal closed */
                if (!p->exited && waitpid(p->pid, &p->status, 0) == p->pid)
                    p->exited = 1;
                break;
            }
        }
        if (!p->exited && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
            p->exited = 1;
    } while (now_s() < end);
}

static int tty_has(tty_proc *p, const char *needle)
{
    char *s = vt_text(&p->screen);
    int found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* Waits until the screen shows needle; returns the seconds it took, or -1 after ms. */
static double tty_wait_for(tty_proc *p, const char *needle, int ms)
{
    double t0 = now_s();
    while (now_s() - t0 < ms / 1000.0) {
        if (tty_has(p, needle))
            return now_s() - t0;
        tty_pump(p, 10);
    }
    return tty_has(p, needle) ? now_s() - t0 : -1;
}

static void tty_send(tty_proc *p, const char *keys)
{
    size_t n = strlen(keys);
    if (write(p->fd, keys, n) != (ssize_t)n)
        CHECKF(0, "cannot write keys to the terminal");
}

/* Waits for the program to exit; returns its wait status, or -1 (it is then killed). */
static int tty_wait_exit(tty_proc *p, int ms)
{
    double t0 = now_s();
    while (!p->exited && now_s() - t0 < ms / 1000.0)
        tty_pump(p, 50);
    tty_pump(p, 50); /* the last bytes */
    if (!p->exited) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        return -1;
    }
    return p->status;
}

static void tty_close(tty_proc *p)
{
    if (!p->exited) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
    }
    close(p->fd);
    free(p->raw);
}

/* What a failing check shows: the screen as the test saw it. */
static void show_screen(tty_proc *p)
{
    char *s = vt_text(&p->screen);
    printf("  --- screen ---\n%s  --------------\n", s);
    free(s);
}

/* The terminal is back to normal: the last alternate-screen switch is the exit (rmcup, \E[?1049l), and
 * after it come only mode resets, no text. */
static int restored(const tty_proc *p)
{
    if (!p->raw)
        return 0;
    const char *on = NULL, *off = NULL;
    for (const char *s = p->raw; (s = strstr(s, "\033[?1049")); s++)
        if (s[7] == 'h')
            on = s;
        else if (s[7] == 'l')
            off = s;
    if (!off || (on && on > off))
        return 0;
    for (const char *s = off; *s;) {
        if (*s == 27) { /* skip one escape sequence */
            s++;
            if (*s == '[') {
                s++;
                while (*s && !(*s >= 0x40 && *s <= 0x7e))
                    s++;
            }
            s += *s != 0;
        } else if (*s == '\r' || *s == '\n')
            s++;
        else
            return 0;
    }
    return 1;
}

static int tty_start(tty_proc *p, int cols, int rows, const char *dir, const char *text, const char *const *env)
{
    const char *out = tmp_path("tui-out");
    const char *args[] = {"tui", "--model", dir,  "--calib",  text, "--calib-samples", "4", "--calib-len",
                          "32",  "--eval",  text, "--window", "32", "--out",           out, NULL};
    const char *no_text[] = {"tui", "--model", dir, "--out", out, NULL};
    int rc = tty_spawn(p, cols, rows, text ? args : no_text, env);
    CHECKF(rc == 0, "forkpty: %s", strerror(errno));
    return rc;
}

/* Starts, shows the tree and the spectrum, moves through the tree and the rank cursor, sets a rank,
 * quits with q and leaves the normal screen. */
static void test_pty_start_cursor_quit(void)
{
    const char *dir = fixture_hf_dir("pty", 0);
    tty_proc p;
    if (tty_start(&p, 100, 30, dir, NULL, NULL))
        return;
    CHECKF(tty_wait_for(&p, "plain spectra of 14 matrices ready", 20000) >= 0, "no spectra");
    CHECK(tty_has(&p, "Model 2 layers, 14 matrices") && tty_has(&p, "layer 0") && tty_has(&p, "layer 1"));
    CHECK(tty_has(&p, " q    32x32") && tty_has(&p, " down 32x48") && tty_has(&p, "Budget"));
    CHECK(tty_has(&p, "F1Help") && tty_has(&p, "F10Quit"));
    CHECK(tty_has(&p, "k 8/32")); /* q_proj [32, 32]: the cursor starts at half the break-even rank */
    tty_send(&p, "\033OB\033OB"); /* Down Down: layer 0, q, k */
    CHECKF(tty_wait_for(&p, "spectrum model.layers.0.self_attn.k_proj", 5000) >= 0, "Down did not reach k_proj");
    CHECK(tty_wait_for(&p, "k 5/16", 3000) >= 0);
    tty_send(&p, "\033OC\033OC\033OC"); /* Right x3 */
    CHECKF(tty_wait_for(&p, "k 8/16", 3000) >= 0, "Right did not move the rank cursor");
    tty_send(&p, ">");
    CHECKF(tty_wait_for(&p, "k 16/16", 3000) >= 0, "> did not move the cursor by 10 (clamped)");
    tty_send(&p, "<\033OD\r"); /* back to 5, set it */
    CHECKF(tty_wait_for(&p, "fact r 5", 3000) >= 0, "Enter did not set the rank");
    CHECK(tty_has(&p, "manual (1 rank)"));
    /* the mouse (SGR reports, which ncurses turns on): a tree row, then F1 on the function bar */
    tty_send(&p, "\033[<0;6;6M\033[<0;6;6m"); /* row 3 of the tree: v_proj */
    CHECKF(tty_wait_for(&p, "spectrum model.layers.0.self_attn.v_proj", 3000) >= 0, "a click did not select v_proj");
    tty_send(&p, "\033[<0;2;30M\033[<0;2;30m");
    CHECKF(tty_wait_for(&p, "Help (any key closes)", 3000) >= 0, "a click on F1 did not open the help");
    tty_send(&p, " ");
    CHECK(tty_wait_for(&p, "Budget", 3000) >= 0);
    if (harness_failed_now())
        show_screen(&p);
    tty_send(&p, "q");
    int st = tty_wait_exit(&p, 10000);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    CHECKF(restored(&p), "the output does not end on the normal screen");
    tty_close(&p);
}

/* F10 quits; NO_COLOR keeps colour sequences out; a terminal below 80x24 gets the message instead of
 * the layout, and growing it brings the layout back. */
static void test_pty_f10_small_nocolor(void)
{
    const char *dir = fixture_hf_dir("pty", 1);
    tty_proc p;
    const char *env[] = {"NO_COLOR=1", NULL};
    if (tty_start(&p, 70, 20, dir, NULL, env))
        return;
    CHECKF(tty_wait_for(&p, "too small", 20000) >= 0, "no too-small message at 70x20");
    CHECK(!tty_has(&p, "Budget"));
    struct winsize ws = {.ws_row = 30, .ws_col = 100};
    ioctl(p.fd, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH */
    p.screen.rows = 30, p.screen.cols = 100, p.screen.bot = 29;
    CHECKF(tty_wait_for(&p, "Budget", 10000) >= 0, "no layout after growing to 100x30");
    CHECK(tty_wait_for(&p, "F10Quit", 3000) >= 0 && !tty_has(&p, "too small"));
    if (harness_failed_now())
        show_screen(&p);
    tty_send(&p, "\033[21~"); /* F10 */
    int st = tty_wait_exit(&p, 10000);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "F10: exit status %d", st);
    CHECK(restored(&p));
    CHECKF(p.raw && !strstr(p.raw, "\033[38;5;") && !strstr(p.raw, "\033[31m") && !strstr(p.raw, "\033[32m") &&
               !strstr(p.raw, "\033[36m"),
           "colour sequences despite NO_COLOR");
    tty_close(&p);
}

/* SIGTERM, Ctrl-C and crash signals restore the terminal and end with the signal. */
static void test_pty_signals(void)
{
    const char *dir = fixture_hf_dir("pty", 0);
    static const struct {
        int sig;
        const char *how;
    } cases[] = {{SIGTERM, "kill"}, {SIGINT, "ctrl-c"}, {SIGSEGV, "kill"}, {SIGABRT, "kill"}};
    for (int c = 0; c < 4; c++) {
        tty_proc p;
        if (tty_start(&p, 100, 30, dir, NULL, NULL))
            return;
        CHECKF(tty_wait_for(&p, "Budget", 20000) >= 0, "signal %d: no screen", cases[c].sig);
        if (!strcmp(cases[c].how, "ctrl-c"))
            tty_send(&p, "\003");
        else
            kill(p.pid, cases[c].sig);
        int st = tty_wait_exit(&p, 10000);
        CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == cases[c].sig, "signal %d (%s): wait status %d",
               cases[c].sig, cases[c].how, st);
        CHECKF(restored(&p), "signal %d: the terminal was not restored", cases[c].sig);
        tty_close(&p);
    }
}

/* A signal while a job runs (an evaluation slowed by PARE_TEST_PROGRESS_DELAY_MS): the job is
 * cancelled, the terminal restored, and pare ends by that signal (a shell's 130 / 143). */
static void test_pty_signals_during_job(void)
{
    const char *dir = fixture_hf_dir("pty-job", 0), *text = text_file();
    const char *env[] = {"PARE_TEST_PROGRESS_DELAY_MS=50", NULL};
    static const int sigs[] = {SIGINT, SIGTERM};
    for (int c = 0; c < 2; c++) {
        tty_proc p;
        if (tty_start(&p, 100, 30, dir, text, env))
            return;
        CHECKF(tty_wait_for(&p, "spectra of 14 matrices ready", 30000) >= 0, "signal %d: no spectra", sigs[c]);
        tty_send(&p, "e");
        CHECKF(tty_wait_for(&p, "F9 cancels", 10000) >= 0, "signal %d: no evaluation running", sigs[c]);
        if (sigs[c] == SIGINT)
            tty_send(&p, "\003");
        else
            kill(p.pid, sigs[c]);
        int st = tty_wait_exit(&p, 10000);
        CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == sigs[c], "signal %d during a job: wait status %d (exit %d)",
               sigs[c], st, st >= 0 && WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1);
        CHECKF(restored(&p), "signal %d during a job: the terminal was not restored", sigs[c]);
        tty_close(&p);
    }
}

/* With a job running (an evaluation long enough to watch), keys still work at once: Tab moves the
 * focus while it runs, F9 cancels it and the log says so; then an evaluation that finishes lands in
 * the results, s saves a recipe, and `pare run` of that recipe gives the perplexity the workbench showed. */
static void test_pty_eval_cancel_save(void)
{
    fixture_spec spec;
    fixture_default(&spec, 0);
    spec.dim = 128, spec.heads = 4, spec.kv_heads = 4, spec.ffn = 512, spec.layers = 4, spec.max_pos = 256;
    const char *dir = tmp_path("big");
    CHECK(fixture_write_hf(dir, &spec) == 0);
    const char *text = tmp_path("long.txt");
    fixture_write_pattern(text, "a long text about cats and mats and dogs and logs, told again and again. ", 400000);
    const char *out = tmp_path("tui-out");
    const char *args[] = {"tui", "--model", dir, "--eval", text, "--window", "256", "--out", out, NULL};
    tty_proc p;
    if (tty_spawn(&p, 100, 30, args, NULL))
        return;
    CHECKF(tty_wait_for(&p, "spectra of 28 matrices ready", 30000) >= 0, "no spectra");
    tty_send(&p, "e");
    CHECKF(tty_wait_for(&p, "F9 cancels", 10000) >= 0, "no progress on the status line");
    double t0 = now_s();
    tty_send(&p, "\t"); /* the plot pane takes the focus: its frame turns heavy */
    double lat = tty_wait_for(&p, "┏━ spectrum", 5000);
    CHECKF(lat >= 0 && lat < 0.5, "Tab while evaluating took %.3f s to show", lat);
    printf("  note: Tab shown %.0f ms after the key while a job ran\n", 1000 * (now_s() - t0));
    tty_send(&p, "\033[20~"); /* F9 */
    CHECKF(tty_wait_for(&p, "eval: canceled", 10000) >= 0, "F9 did not cancel the evaluation");
    CHECK(!tty_has(&p, "F9 cancels")); /* the progress bar is gone */
    if (harness_failed_now())
        show_screen(&p);
    tty_send(&p, "q");
    int st = tty_wait_exit(&p, 10000);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    CHECK(restored(&p));
    tty_close(&p);

    /* a short evaluation to the end, then save */
    const char *small = fixture_hf_dir("pty-small", 0);
    const char *t2 = text_file();
    if (tty_start(&p, 100, 30, small, t2, NULL))
        return;
    CHECKF(tty_wait_for(&p, "spectra of 14 matrices ready", 20000) >= 0, "no spectra");
    tty_send(&p, "\033OB\033OC\033OC\r"); /* q_proj at rank 10 */
    CHECK(tty_wait_for(&p, "fact r 10", 5000) >= 0);
    tty_send(&p, "w"); /* activation spectra: calibrates */
    CHECKF(tty_wait_for(&p, "activation spectra of 14 matrices ready", 20000) >= 0, "no activation spectra");
    tty_send(&p, "\033OB\033OD\r"); /* k_proj at rank 4, activation-weighted */
    CHECK(tty_wait_for(&p, "fact r 4", 5000) >= 0);
    tty_send(&p, "e");
    CHECKF(tty_wait_for(&p, "result: manual (2 ranks): ppl", 30000) >= 0, "no result row");
    tty_send(&p, "s");
    CHECKF(tty_wait_for(&p, "saved", 5000) >= 0, "s did not save");
    tty_send(&p, "p"); /* the plot as PNG */
    CHECKF(tty_wait_for(&p, "plot-spectrum-1.png", 5000) >= 0, "p did not write the plot");
    tty_send(&p, "x"); /* export through the session runner */
    CHECKF(tty_wait_for(&p, "run complete", 30000) >= 0, "x did not finish its run");
    if (harness_failed_now())
        show_screen(&p);
    tty_send(&p, "q");
    st = tty_wait_exit(&p, 10000);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tty_close(&p);
    char recipe[1400];
    snprintf(recipe, sizeof recipe, "%s/session-1.lua", out);
    size_t len = 0;
    char *src = (char *)fixture_read(recipe, &len);
    CHECKF(src != NULL, "no %s", recipe);
    const char *m = src ? strstr(src, "Measured in the workbench: perplexity ") : NULL;
    double shown = m ? strtod(m + strlen("Measured in the workbench: perplexity "), NULL) : -1;
    CHECKF(m && strstr(src, "rank = 10, weighting = \"none\"") && strstr(src, "rank = 4, weighting = \"act\""),
           "recipe:\n%s", src);
    free(src);
    char *rout = NULL, *rerr = NULL;
    int rc = run_pare(&rout, &rerr, (const char *const[]){"run", recipe, "--out", tmp_path("rerun"), "--quiet", NULL});
    CHECKF(rc == 0 && shown > 1 && recipe_ppl(rout) == shown, "pare run: exit %d, ppl %.17g, workbench %.17g: %s", rc,
           recipe_ppl(rout), shown, rerr);
    free(rout);
    free(rerr);
    char f[1400];
    const char *want[] = {"plot-spectrum-1.png", "session-2.lua", "export-1/run.json", "export-1/model/pare.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s/%s", out, want[i]);
        CHECKF(pare_file_exists(f), "missing %s", f);
    }
}

/* F5 runs a recipe through the session runner; what it prints, and what libraries write to stderr or
 * stdout while the screen is up, land in the log pane. */
static void test_pty_preset_stderr(void)
{
    const char *presets = tmp_path("presets");
    mkdir(presets, 0777);
    char path[1300];
    snprintf(path, sizeof path, "%s/noisy.lua", presets);
    const char *src = "description = 'writes to stderr'\n"
                      "function run(p) io.stderr:write('library noise\\n') io.stderr:flush() io.write('raw "
                      "stdout\\n')\n"
                      "    print('printed line') end\n";
    CHECK(fixture_write_raw(path, src, strlen(src)) == 0);
    char env_presets[1400];
    snprintf(env_presets, sizeof env_presets, "PARE_PRESETS=%s", presets);
    const char *env[] = {env_presets, NULL};
    const char *dir = fixture_hf_dir("pty", 0);
    tty_proc p;
    if (tty_start(&p, 100, 30, dir, NULL, env))
        return;
    CHECKF(tty_wait_for(&p, "spectra of 14 matrices ready", 20000) >= 0, "no spectra");
    tty_send(&p, "\033[15~"); /* F5 */
    CHECKF(tty_wait_for(&p, "noisy.lua", 3000) >= 0, "F5 did not list the presets");
    tty_send(&p, "\r");
    CHECKF(tty_wait_for(&p, "run complete", 10000) >= 0, "the run did not complete");
    /* the log pane is 3 lines high at 30 rows: focus it and scroll back through the run's lines */
    tty_send(&p, "\t\t\t\t");
    CHECK(tty_wait_for(&p, "┏━ Log", 3000) >= 0);
    int seen[3] = {0};
    const char *lines[3] = {"printed line", "stderr: library noise", "stdout: raw stdout"};
    for (int up = 0; up < 12 && !(seen[0] && seen[1] && seen[2]); up++) {
        tty_pump(&p, 100);
        for (int i = 0; i < 3; i++)
            seen[i] |= tty_has(&p, lines[i]);
        tty_send(&p, "\033OA"); /* Up: one line back */
    }
    CHECKF(seen[0], "the recipe's print is not in the log");
    CHECKF(seen[1], "stderr did not reach the log pane");
    CHECKF(seen[2], "a stray stdout write did not reach the log pane");
    if (harness_failed_now())
        show_screen(&p);
    tty_send(&p, "q");
    int st = tty_wait_exit(&p, 10000);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    CHECK(restored(&p));
    int bare = 0, logged = 0; /* never written straight to the terminal: only as the log pane shows it */
    for (const char *q = p.raw; (q = strstr(q, "library noise")); q++)
        bare++, logged += q - p.raw >= 8 && !strncmp(q - 8, "stderr: ", 8);
    CHECKF(bare > 0 && bare == logged, "library noise: %d times on the terminal, %d in the log pane", bare, logged);
    tty_close(&p);
    char rj[1400];
    snprintf(rj, sizeof rj, "%s/run-noisy-1/run.json", tmp_path("tui-out"));
    CHECKF(pare_file_exists(rj), "no run record %s", rj);
}

/* ---- the scripted, headless mode (--keys, --dump-screen) ----------------------------------------- */

/* Runs `pare tui ... --keys KEYS --dump-screen FILE` with the common options plus extra (NULL-ended)
 * and returns the screen text (malloc'd), or NULL when the run failed (its stderr checked). */
static char *headless_screen(const char *dir, const char *text, const char *keys, const char *size,
                             const char *const *extra)
{
    char dump[1300], out[1300];
    static int n;
    snprintf(dump, sizeof dump, "%s/screen-%d.txt", harness_tmpdir(), ++n);
    snprintf(out, sizeof out, "%s/headless-out", harness_tmpdir());
    const char *args[40] = {
        "tui", "--model", dir, "--out", out, "--keys", keys, "--dump-screen", dump, "--size", size ? size : "120x40"};
    int k = 11;
    if (text) {
        const char *more[] = {"--calib", text, "--calib-samples", "4", "--calib-len", "32",
                              "--eval",  text, "--window",        "32"};
        for (int i = 0; i < 10; i++)
            args[k++] = more[i];
    }
    for (int i = 0; extra && extra[i] && k < 39; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, args);
    CHECKF(rc == 0, "pare tui --keys \"%s\": exit %d: %s", keys, rc, e);
    free(o);
    free(e);
    size_t len = 0;
    char *s = rc == 0 ? (char *)fixture_read(dump, &len) : NULL;
    CHECKF(rc != 0 || s, "no screen dump %s", dump);
    if (s)
        s[len] = 0; /* fixture_read leaves room for it */
    return s;
}

/* The number after the first occurrence of prefix on the screen, or -1. */
static double screen_number(const char *screen, const char *prefix)
{
    const char *p = screen ? strstr(screen, prefix) : NULL;
    return p ? strtod(p + strlen(prefix), NULL) : -1;
}

static void print_screen(const char *s) { printf("  --- screen ---\n%s  --------------\n", s ? s : "(none)"); }

/* ---- a big model: spectra matrix by matrix, on demand -------------------------------------------- */

/* The tiny shape `pare init` writes for the big-model tests (BF16, 3 blocks of d 128, FFN 320, 2 KV
 * heads of 32; the qwen2 fixture's byte-level tokenizer of 272 ids): 1 MB, opened with --stream on. */
enum { BIG_D = 128, BIG_F = 320, BIG_KV = 64, BIG_L = 3, BIG_V = 272 };

static int big_model(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", tmp_path("big"));
    if (pare_is_dir(dir))
        return 0;
    char cfg[1300];
    snprintf(cfg, sizeof cfg, "%s", tmp_path("big.json"));
    json_t *c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "architectures", "LlamaForCausalLM",
                          "model_type", "llama", "hidden_size", BIG_D, "intermediate_size", BIG_F, "num_hidden_layers",
                          BIG_L, "num_attention_heads", 4, "num_key_value_heads", 2, "vocab_size", BIG_V,
                          "tie_word_embeddings", 1);
    CHECK(c && json_dump_file(c, cfg, 0) == 0);
    json_decref(c);
    const char *init[] = {
        "init", "--config", cfg, "--out", dir, "--tokenizer", "tests/data/families/qwen2/tokenizer.json", NULL};
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, init);
    CHECKF(rc == 0, "pare init: exit %d %s", rc, e ? e : "");
    free(o);
    free(e);
    return rc ? -1 : 0;
}

/* The block linears' weights of the big shape, from its dimensions. */
static size_t big_block_params(void)
{
    return (size_t)BIG_L * (2 * BIG_D * BIG_D + 2 * BIG_KV * BIG_D + 3 * BIG_F * BIG_D);
}

/* `pare spectra --json --values` of one matrix of dir: its values (malloc'd, *r of them), or NULL. */
static double *cli_spectrum(const char *dir, const char *matrix, int *r)
{
    const char *args[] = {"spectra", "--model", dir, "--matrix", matrix, "--json", "--values", NULL};
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, args);
    CHECKF(rc == 0, "pare spectra: exit %d %s", rc, e ? e : "");
    json_t *j = rc == 0 ? json_loads(o, 0, NULL) : NULL;
    json_t *v = json_object_get(json_array_get(j, 0), "values");
    double *s = NULL;
    *r = (int)json_array_size(v);
    CHECKF(json_array_size(j) == 1 && *r > 0, "pare spectra --matrix %s: %zu matrices", matrix, json_array_size(j));
    if (*r > 0 && (s = malloc((size_t)*r * sizeof *s)))
        for (int i = 0; i < *r; i++)
            s[i] = json_real_value(json_array_get(v, (size_t)i));
    json_decref(j);
    free(o);
    free(e);
    return s;
}

/* A streamed model opens with nothing computed: the tree and totals come from the shapes (no block
 * converted), no whole-model spectra, global waits and says how to get them. One matrix's spectrum
 * (pare_matrix_spectrum_compute, one block converted) equals `pare spectra`'s for that matrix, the
 * cursor reads it, and once every matrix has one they are the whole-model spectra global plans. The
 * same model in memory is analyzed whole at open, as before. */
static void test_big_model_state(void)
{
    char dir[1300];
    if (big_model(dir, sizeof dir))
        return;
    tui_settings set;
    tui_settings_defaults(&set);
    pare_error err = {0};
    for (int streamed = 1; streamed >= 0; streamed--) {
        pare_set_stream_mode(streamed ? PARE_STREAM_ON : PARE_STREAM_OFF);
        pare_model *m = NULL;
        pare_status rc = pare_model_load(dir, NULL, &m, &err);
        pare_set_stream_mode(PARE_STREAM_AUTO);
        CHECKF(rc == PARE_OK, "%s", err.msg);
        tui_state st;
        if (rc || tui_state_init(&st, m, dir, &set, &err)) {
            CHECKF(0, "%s", err.msg);
            return;
        }
        CHECKF(st.spectra_on_demand == streamed, "streamed %d: spectra on demand %d", streamed, st.spectra_on_demand);
        CHECKF(st.n == 7 * BIG_L && st.block_before == big_block_params(),
               "%d matrices, %zu block parameters (want %zu)", st.n, st.block_before, big_block_params());
        if (!streamed) {
            tui_state_free(&st);
            continue;
        }
        CHECKF(pare_model_blocks_converted(st.model) == 0, "the open converted %zu blocks",
               pare_model_blocks_converted(st.model));
        CHECK(tui_spectra_count(&st, 0) == 0 && !tui_state_spectrum(&st, 0, 0));
        st.mo.weighting = PARE_WEIGHT_NONE;
        set_method(&st, "global", 0.3);
        CHECKF(!st.dec_ok && st.dec_need == 0 && strstr(st.dec_err, "S computes them all"), "global: %s", st.dec_err);

        int i = 7 + 2; /* layer 1's v_proj */
        pare_matrix_spectrum ms;
        CHECK(pare_matrix_spectrum_compute(st.model, NULL, st.lin[i], PARE_WEIGHT_NONE, NULL, &ms, &err) == PARE_OK);
        CHECKF(pare_model_blocks_converted(st.model) == 1, "%zu blocks converted for one matrix",
               pare_model_blocks_converted(st.model));
        int r = 0;
        double *want = cli_spectrum(dir, st.lin[i]->name, &r);
        CHECKF(want && ms.s && r == ms.stats.r, "%s: %d values, pare spectra %d", st.lin[i]->name, ms.stats.r, r);
        for (int j = 0; want && ms.s && j < r; j++)
            CHECKF(ms.s[j] == want[j], "%s s[%d] %.17g, pare spectra %.17g", st.lin[i]->name, j, ms.s[j], want[j]);
        free(want);
        CHECK(tui_state_put_spectrum(&st, 0, i, &ms) == 0 && !ms.s);
        tui_cursor_stats cs;
        CHECK(tui_cursor_stats_at(&st, i, 0, st.cursor[i], &cs) == 0 && tui_spectra_count(&st, 0) == 1 && !st.spectra[0]);
        CHECK(tui_cursor_stats_at(&st, 0, 0, st.cursor[0], &cs) == -1);
        for (int j = 0; j < st.n; j++)
            if (j != i) {
                CHECK(pare_matrix_spectrum_compute(st.model, NULL, st.lin[j], PARE_WEIGHT_NONE, NULL, &ms, &err) ==
                      PARE_OK);
                tui_state_put_spectrum(&st, 0, j, &ms);
            }
        CHECKF(st.spectra[0] && !st.partial[0] && st.dec_ok, "every matrix computed: global %s", st.dec_err);
        tui_state_free(&st);
    }
}

/* Counts the occurrences of needle in s. */
static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* `pare tui --stream on` on the big shape: the screen after open shows the tree and the totals from the
 * shapes and only the selected matrix's spectrum (1/21), no whole-model spectra; j j j k j visits
 * q, k, v, back to k and v: three spectra computed, each once (k's log line appears once), the cursor
 * line's error and energy are those of `pare spectra`'s values for v, and its log line's s1 too; e
 * evaluates the streamed model under --limit-tokens (equal to `pare eval`), and svd 0.2 a streamed
 * clone. */
static void test_headless_big_model(void)
{
    char dir[1300], text[1300];
    if (big_model(dir, sizeof dir))
        return;
    snprintf(text, sizeof text, "%s", text_file());
    const char *stream[] = {"--stream", "on", "--limit-tokens", "600", NULL};
    char *s = headless_screen(dir, text, "Tab", "160x50", stream);
    char want[512];
    CHECKF(s && strstr(s, "spectra: plain 1/21 on demand"), "after open: not one spectrum of 21");
    CHECKF(s && strstr(s, "q    128x128") && strstr(s, "down 128x320"), "no matrix tree");
    CHECKF(s && !strstr(s, "spectra of 21 matrices ready") && !strstr(s, "spectra of all 21 matrices ready"),
           "whole-model spectra at open");
    const char *totals = s ? strstr(s, "block lin. 5") : NULL; /* the budget's "516.1k → ...", not a header */
    double shown = screen_number(totals, "block lin. ");
    CHECKF(fabs(shown * 1e3 - (double)big_block_params()) <= 50, "block linears %g k, want %zu", shown,
           big_block_params());
    if (s && !strstr(s, "1/21"))
        print_screen(s);
    free(s);

    s = headless_screen(dir, text, "j j j k j", "160x50", stream);
    const char *v = "model.layers.0.self_attn.v_proj", *k = "model.layers.0.self_attn.k_proj";
    CHECKF(s && strstr(s, "spectra: plain 3/21 on demand"), "after j j j k j: not 3 spectra of 21");
    snprintf(want, sizeof want, "spectrum of %s ready", k);
    CHECKF(count_of(s, want) == 1, "k_proj's spectrum computed %d times", count_of(s, want));
    int r = 0;
    double *sv = cli_spectrum(dir, v, &r);
    if (sv) {
        int be = pare_break_even_rank(BIG_KV, BIG_D), kc = be / 2;
        double e = pare_spectrum_trunc_error(sv, r, kc);
        snprintf(want, sizeof want, "k %d/%d · ", kc, r);
        CHECKF(s && strstr(s, want), "no '%s' on the cursor line", want);
        snprintf(want, sizeof want, "err %.3f · energy %.1f%% · b-e %d", e, 100 * (1 - e * e), be);
        CHECKF(s && strstr(s, want), "the cursor line does not read '%s'", want);
        snprintf(want, sizeof want, "spectrum of %s ready: s1 ", v);
        double s1 = screen_number(s, want);
        CHECKF(fabs(s1 - sv[0]) <= 1e-9 * sv[0], "log s1 %.10g, pare spectra %.17g", s1, sv[0]);
    }
    free(sv);
    if (s && !strstr(s, "3/21"))
        print_screen(s);
    free(s);

    s = headless_screen(dir, text, "e Tab Tab Right Enter C-u '0.2' Enter e", "160x50", stream);
    const char *args[] = {"eval", "--model",        dir,   "--data", text, "--window",
                          "32",   "--limit-tokens", "600", "--json", NULL};
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e, args);
    json_t *j = rc == 0 ? json_loads(o, 0, NULL) : NULL;
    double ppl = json_real_value(json_object_get(j, "ppl")), got = screen_number(s, "result: dense: ppl ");
    CHECKF(rc == 0 && ppl > 0 && fabs(got - ppl) <= 1e-6 * ppl, "streamed dense ppl %.10g, pare eval %.10g", got, ppl);
    CHECKF(screen_number(s, "result: svd 0.2: ppl ") > 0, "no result for svd 0.2 on a streamed clone");
    json_decref(j);
    free(o);
    free(e);
    if (s && !strstr(s, "result: svd 0.2"))
        print_screen(s);
    free(s);
}

/* What a user sees after scripted keys: j j selects the tree's third row (layer 0's second matrix, as
 * the state's tree lists it), Right Right moves its rank cursor two past where the state starts it, e
 * evaluates (the results row and the log line equal `pare eval` of the dense model), Enter then e
 * evaluates that rank (equal to the core's evaluation of the same configuration), literal text types
 * into the search, ? shows the help, 60x20 the too-small message, an unknown key name is refused. */
static void test_headless_keys(void)
{
    char text[1300], dir[4200];
    snprintf(text, sizeof text, "%s", text_file());
    tui_state st;
    if (open_state(&st, "headless", 0, text))
        return;
    snprintf(dir, sizeof dir, "%s", st.model_path);
    /* what the state says the keys lead to */
    tui_tree_row rows[64];
    int nrows = tui_tree_rows(&st, rows, 64);
    CHECK(nrows > 2 && rows[2].mat >= 0);
    int sel = rows[2].mat;
    int k = tui_cursor_move(&st, sel, 2);
    pare_error err = {0};
    CHECK(pare_model_spectra_weighted(st.model, NULL, PARE_WEIGHT_NONE, NULL, &st.spectra[0], &err) == PARE_OK);
    tui_cursor_stats cs;
    CHECK(tui_cursor_stats_at(&st, sel, PARE_WEIGHT_NONE, k, &cs) == 0);
    int r = st.lin[sel]->out < st.lin[sel]->in ? st.lin[sel]->out : st.lin[sel]->in;

    char *s = headless_screen(dir, text, "j j Right Right e", NULL, NULL);
    char want[512];
    snprintf(want, sizeof want, "spectrum %s", st.lin[sel]->name);
    CHECKF(s && strstr(s, want), "after j j the plot does not show '%s'", want);
    snprintf(want, sizeof want, "k %d/%d ", k, r);
    CHECKF(s && strstr(s, want), "after Right Right the cursor line does not read '%s'", want);
    snprintf(want, sizeof want, "b-e %d", cs.break_even);
    CHECKF(s && strstr(s, want), "no '%s' on the cursor line", want);
    /* pare eval of the same model, text and window */
    char *o = NULL, *e = NULL;
    int rc = run_pare(&o, &e,
                      (const char *const[]){"eval", "--model", dir, "--data", text, "--window", "32", "--json", NULL});
    double ref = screen_number(o, "\"ppl\":");
    CHECKF(rc == 0 && ref > 1, "pare eval: exit %d: %s", rc, e);
    free(o);
    free(e);
    double row = screen_number(s, "│ 1  dense");
    double line = screen_number(s, "result: dense: ppl ");
    CHECKF(fabs(row - ref) <= 0.5e-4 + 1e-9 * ref, "results row ppl %.4f, pare eval %.10g", row, ref);
    CHECKF(fabs(line - ref) <= 1e-6 * ref, "log ppl %.10g, pare eval %.10g", line, ref);
    printf("  note: %s at k %d/%d; dense ppl %.10g on the screen, %.10g by pare eval\n", st.lin[sel]->name, k, r, line,
           ref);
    if (harness_failed_now())
        print_screen(s);
    free(s);

    /* Enter sets the cursor's rank: the evaluation equals the core's of the same manual configuration */
    s = headless_screen(dir, text, "j j Right Right Enter e", NULL, NULL);
    CHECK(tui_state_set_rank(&st, sel, k, PARE_WEIGHT_NONE, NULL) == 0);
    tui_result res;
    CHECKF(tui_run_config(st.model, &st.cfg, &st.set, NULL, &res, &err) == PARE_OK, "%s", err.msg);
    char label[96];
    tui_config_label(&st.cfg, label, sizeof label);
    snprintf(want, sizeof want, "fact r %d", k);
    CHECKF(s && strstr(s, want), "the tree does not show '%s'", want);
    snprintf(want, sizeof want, "│ 1  %s", label);
    row = screen_number(s, want);
    snprintf(want, sizeof want, "result: %s: ppl ", label);
    line = screen_number(s, want);
    CHECKF(fabs(row - res.ppl) <= 0.5e-4 + 1e-9 * res.ppl, "results row ppl %.4f, core %.10g", row, res.ppl);
    CHECKF(fabs(line - res.ppl) <= 1e-6 * res.ppl, "log ppl %.10g, core %.10g", line, res.ppl);
    CHECK(res.ppl != ref);
    printf("  note: %s ppl %.10g on the screen, %.10g by the core\n", label, line, res.ppl);
    if (harness_failed_now())
        print_screen(s);
    free(s);

    /* literal text typed into the search */
    int down = tui_tree_find(&st, "down_proj", -1);
    s = headless_screen(dir, NULL, "/ 'down_proj' Enter", NULL, NULL);
    snprintf(want, sizeof want, "spectrum %s", down >= 0 ? st.lin[down]->name : "?");
    CHECKF(s && strstr(s, want), "the search did not select '%s'", want);
    free(s);
    /* help, and a key closes it */
    s = headless_screen(dir, NULL, "?", NULL, NULL);
    CHECKF(s && strstr(s, "Help (any key closes)") && strstr(s, "F10  q") && strstr(s, "F9  Esc"), "no help overlay");
    free(s);
    s = headless_screen(dir, NULL, "? Space", NULL, NULL);
    CHECK(s && !strstr(s, "Help (any key closes)") && strstr(s, "Budget"));
    free(s);
    /* too small */
    s = headless_screen(dir, NULL, "j", "60x20", NULL);
    CHECKF(s && strstr(s, "terminal too small: 60x20") && !strstr(s, "Budget"), "no too-small message");
    int lines = 0;
    for (const char *c = s; c && *c; c++)
        lines += *c == '\n';
    CHECKF(lines == 20, "a 60x20 screen dumped as %d lines", lines);
    free(s);
    /* an unknown key name: refused before anything runs, no dump */
    const char *dump = tmp_path("never.txt");
    expect_pare_error((const char *const[]){"tui", "--model", dir, "--keys", "j Foo Right", "--dump-screen", dump, NULL},
                      (const char *const[]){"unknown key 'Foo'", NULL}, 1);
    CHECK(!pare_file_exists(dump));
    expect_pare_error((const char *const[]){"tui", "--model", dir, "--keys", "j", "--size", "wide", NULL},
                      (const char *const[]){"--size", NULL}, 1);
    tui_state_free(&st);
}

/* The sandbox setting: with --sandbox (or toggled on in F2) a recipe run with F5 that calls os.execute
 * fails with the sandbox's error on the screen, after reading the model it is allowed to read; a file
 * outside needs --allow; with the setting off the same recipe runs. */
static void test_headless_sandbox(void)
{
    char presets[1300], secret[1300], env_presets[1400], dir[1300], out[1300];
    snprintf(presets, sizeof presets, "%s", tmp_path("presets"));
    snprintf(secret, sizeof secret, "%s", tmp_path("secret.txt"));
    snprintf(out, sizeof out, "%s", tmp_path("headless-out"));
    mkdir(presets, 0777);
    CHECK(fixture_write_raw(secret, "a secret line\n", 14) == 0);
    char path[1400];
    snprintf(path, sizeof path, "%s/exec.lua", presets);
    const char *src = "description = 'calls os.execute'\n"
                      "params { model = {'', 'model'} }\n"
                      "function run(p)\n"
                      "    local m <close> = pare.load(p.model)\n"
                      "    print('loaded the model')\n"
                      "    print('execute returned ' .. tostring(os.execute('true')))\n"
                      "end\n";
    CHECK(fixture_write_raw(path, src, strlen(src)) == 0);
    snprintf(path, sizeof path, "%s/reads.lua", presets);
    const char *src2 = "description = 'reads a file named by PARE_TEST_SECRET'\n"
                       "function run(p)\n"
                       "    local f = assert(io.open(os.getenv('PARE_TEST_SECRET')))\n"
                       "    print('read: ' .. f:read('l'))\n"
                       "    f:close()\n"
                       "end\n";
    CHECK(fixture_write_raw(path, src2, strlen(src2)) == 0);
    snprintf(env_presets, sizeof env_presets, "%s", presets);
    setenv("PARE_PRESETS", env_presets, 1);
    setenv("PARE_TEST_SECRET", secret, 1);
    snprintf(dir, sizeof dir, "%s", fixture_hf_dir("sandbox", 0));

    char *s = headless_screen(dir, NULL, "F5 Enter", "160x40", (const char *const[]){"--sandbox", NULL});
    CHECKF(s && strstr(s, "os.execute: sandbox: not available"), "--sandbox: no sandbox error on the screen");
    CHECK(s && strstr(s, "run failed") && !strstr(s, "execute returned"));
    if (harness_failed_now())
        print_screen(s);
    free(s);
    char f[1500];
    snprintf(f, sizeof f, "%s/run-exec-1/log.txt", out);
    size_t len = 0;
    char *log = (char *)fixture_read(f, &len);
    if (log)
        log[len] = 0;
    CHECKF(log && strstr(log, "loaded the model"), "the sandboxed recipe could not read the model: %s", log);
    free(log);

    /* toggled in F2: the tenth row of the setup (after the zero-shot task) */
    s = headless_screen(dir, NULL, "F2 j j j j j j j j j Enter", "160x40", NULL);
    CHECKF(s && strstr(s, "sandbox F5 recipes    on"), "F2 does not show the sandbox on");
    free(s);
    s = headless_screen(dir, NULL, "F2 j j j j j j j j j Enter Esc F5 Enter", "160x40", NULL);
    CHECKF(s && strstr(s, "os.execute: sandbox: not available"), "F2 toggle: no sandbox error on the screen");
    if (harness_failed_now())
        print_screen(s);
    free(s);
    /* off: it runs */
    s = headless_screen(dir, NULL, "F5 Enter", "160x40", NULL);
    CHECKF(s && strstr(s, "execute returned true") && strstr(s, "run complete"), "without the sandbox the recipe "
                                                                                 "failed");
    if (harness_failed_now())
        print_screen(s);
    free(s);
    /* reading outside the allowed paths needs --allow */
    s = headless_screen(dir, NULL, "F5 j Enter", "160x40", (const char *const[]){"--sandbox", NULL});
    CHECKF(s && strstr(s, "outside the folders") && !strstr(s, "read: a secret line"), "read a file not allowed");
    free(s);
    s = headless_screen(dir, NULL, "F5 j Enter", "160x40", (const char *const[]){"--sandbox", "--allow", secret, NULL});
    CHECKF(s && strstr(s, "read: a secret line") && strstr(s, "run complete"), "--allow did not let it read");
    if (harness_failed_now())
        print_screen(s);
    free(s);
    unsetenv("PARE_PRESETS");
    unsetenv("PARE_TEST_SECRET");
}

/* ---- a real terminal: tmux ------------------------------------------------------------------------ */

/* Runs a tmux command on the private socket (SOCK; its folder holds the configuration SOCK.conf, so
 * ~/.tmux.conf is never read); returns its exit status, its stdout in *out if asked. */
static int tmux(const char *sock, const char *cmd, char **out)
{
    char line[12000];
    snprintf(line, sizeof line, "tmux -S '%s' -f '%s.conf' %s 2>/dev/null", sock, sock, cmd);
    FILE *p = popen(line, "r");
    if (!p)
        return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b)
                break;
            buf = b;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = 0;
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Polls capture-pane until the pane shows needle; returns the last capture (malloc'd) or NULL. */
static char *tmux_wait(const char *sock, const char *needle, int ms)
{
    double t0 = now_s();
    for (;;) {
        char *s = NULL;
        tmux(sock, "capture-pane -p -t pare-test", &s);
        if (s && strstr(s, needle))
            return s;
        if (now_s() - t0 > ms / 1000.0) {
            printf("  --- pane (waiting for '%s') ---\n%s  --------------\n", needle, s ? s : "(none)");
            free(s);
            return NULL;
        }
        free(s);
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The workbench in a real terminal (tmux, 120x40, on a private socket): the tree and spectrum appear,
 * j j and Right Right do what the state says, ? opens the help, F10 ends the session. */
static void test_tmux_session(void)
{
    if (system("command -v tmux >/dev/null 2>&1") != 0)
        SKIP("skipped: tmux not installed (make deps installs it)");
    tui_state st;
    if (open_state(&st, "tmux", 0, NULL))
        return;
    char sockdir[] = "/tmp/pare-tmux-XXXXXX"; /* short: a socket path has ~100 bytes */
    if (!mkdtemp(sockdir)) {
        CHECKF(0, "mkdtemp: %s", strerror(errno));
        tui_state_free(&st);
        return;
    }
    char sock[128], conf[160];
    snprintf(sock, sizeof sock, "%s/sock", sockdir);
    snprintf(conf, sizeof conf, "%s.conf", sock);
    /* a terminal type every ncurses install has (ncurses-base) */
    const char *conf_text = "set -g default-terminal screen\n";
    CHECK(fixture_write_raw(conf, conf_text, strlen(conf_text)) == 0);
    tui_tree_row rows[64];
    tui_tree_rows(&st, rows, 64);
    int sel = rows[2].mat, k = tui_cursor_move(&st, sel, 2);
    int r = st.lin[sel]->out < st.lin[sel]->in ? st.lin[sel]->out : st.lin[sel]->in;
    const char *bin = getenv("PARE_BIN");
    char exe[4200], cmd[10000];
    if (!realpath(bin && *bin ? bin : "./pare", exe))
        snprintf(exe, sizeof exe, "%s", bin && *bin ? bin : "./pare");
    snprintf(cmd, sizeof cmd, "new-session -d -s pare-test -x 120 -y 40 \"'%s' tui --model '%s' --out '%s'\"", exe,
             st.model_path, tmp_path("tmux-out"));
    CHECKF(tmux(sock, cmd, NULL) == 0, "tmux new-session failed");
    char *s = tmux_wait(sock, "plain spectra of 14 matrices ready", 30000);
    CHECKF(s && strstr(s, "Model 2 layers, 14 matrices") && strstr(s, "F10Quit"), "the workbench did not come up");
    free(s);
    tmux(sock, "send-keys -t pare-test j j", NULL);
    char want[512];
    snprintf(want, sizeof want, "spectrum %s", st.lin[sel]->name);
    s = tmux_wait(sock, want, 5000);
    CHECKF(s, "j j did not select %s", st.lin[sel]->name);
    free(s);
    tmux(sock, "send-keys -t pare-test Right Right", NULL);
    snprintf(want, sizeof want, "k %d/%d ", k, r);
    s = tmux_wait(sock, want, 5000);
    CHECKF(s, "Right Right did not show '%s'", want);
    free(s);
    tmux(sock, "send-keys -t pare-test ?", NULL);
    s = tmux_wait(sock, "Help (any key closes)", 5000);
    CHECKF(s, "? did not open the help");
    free(s);
    tmux(sock, "send-keys -t pare-test Space", NULL);
    s = tmux_wait(sock, "Budget", 5000);
    free(s);
    tmux(sock, "send-keys -t pare-test F10", NULL);
    double t0 = now_s();
    int alive = 1;
    while (alive && now_s() - t0 < 10) {
        alive = tmux(sock, "has-session -t pare-test", NULL) == 0;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    CHECKF(!alive, "the session is still there 10 s after F10");
    tmux(sock, "kill-server", NULL);
    unlink(sock);
    unlink(conf);
    rmdir(sockdir);
    tui_state_free(&st);
}

/* Without a terminal `pare tui` refuses with one line and status 2. */
static void test_needs_terminal(void)
{
    const char *dir = fixture_hf_dir("noterm", 0);
    expect_pare_error((const char *const[]){"tui", "--model", dir, NULL}, (const char *const[]){"terminal", NULL}, 1);
    expect_pare_error((const char *const[]){"tui", "--model", dir, "--eval", "/nonexistent.txt", NULL},
                      (const char *const[]){"/nonexistent.txt", NULL}, 1);
}

static void test_per_type_methods(void);
static void test_auto_budget(void);
static void test_zero_shot_task(void);

/* A metric run.json records as null (it was not finite) reads back as NaN, shown "-", not as 0. */
static void test_results_null_metric(void)
{
    tui_state st;
    if (open_state(&st, "nullmetric", 0, NULL))
        return;
    const char *run = tmp_path("run-null");
    char p[1300];
    snprintf(p, sizeof p, "%s/run.json", run);
    CHECK(mkdir(run, 0755) == 0);
    const char *rec = "{\"status\": \"complete\", \"results\": [{\"method\": \"svd\", \"params\": {},"
                      " \"metrics\": [{\"name\": \"ppl\", \"data\": \"t.txt\", \"value\": null}]}]}\n";
    fixture_write_raw(p, rec, strlen(rec));
    CHECK(tui_results_from_run(&st, run) == 1);
    CHECKF(st.n_res > 0 && isnan(st.res[st.n_res - 1].ppl), "ppl %g", st.n_res ? st.res[st.n_res - 1].ppl : 0.0);
    tui_state_free(&st);
}

void suite_tui(void);
void suite_tui(void)
{
    RUN(test_results_null_metric);
    RUN(test_budget_totals);
    RUN(test_spectral_plans);
    RUN(test_method_per_type);
    RUN(test_rank_cursor);
    RUN(test_tree_and_layout);
    RUN(test_plots);
    RUN(test_worker);
    RUN(test_recipe_reproduces);
    RUN(test_needs_terminal);
    RUN(test_pty_start_cursor_quit);
    RUN(test_pty_f10_small_nocolor);
    RUN(test_pty_signals);
    RUN(test_pty_signals_during_job);
    RUN(test_pty_eval_cancel_save);
    RUN(test_pty_preset_stderr);
    RUN(test_per_type_methods);
    RUN(test_auto_budget);
    RUN(test_zero_shot_task);
    RUN(test_headless_keys);
    RUN(test_headless_sandbox);
    RUN(test_big_model_state);
    RUN(test_headless_big_model);
    RUN(test_tmux_session);
}

/* ---- methods per matrix type: one decision mechanism for factors, masks, N:M and channels ---------- */

/* The compressed model's parameters (both conventions) equal the budget's totals. */
static void check_totals(tui_state *st, const char *tag, tui_result *row)
{
    pare_error err = {0};
    CHECKF(tui_run_config(st->model, &st->cfg, &st->set, NULL, row, &err) == PARE_OK, "%s: %s", tag, err.msg);
    CHECKF(row->block_after == st->block_after && row->total_after == st->total_after,
           "%s: compressed %zu / %zu parameters, the budget says %zu / %zu", tag, row->block_after, row->total_after,
           st->block_after, st->total_after);
    CHECKF(st->block_after < st->block_before, "%s: nothing removed", tag);
}

/* Attention by whitened SVD and the FFN by 2:4 Wanda, chosen per type: the decisions, the totals under
 * both conventions, the perplexity of the same compression done directly with the core API (one-shot
 * statistics of the dense model, pare_factorize_linear, pare_prune_mask), and the saved recipe's run.
 * Then attention by ASVD with LoRAP channel pruning of the FFN, magnitude masks at the ratio, and the
 * wanda method itself at 2:4 (m:compress{nm = "2:4"}). */
static void test_per_type_methods(void)
{
    const char *text = text_file();
    tui_state st;
    if (open_state(&st, "pertype", 0, text))
        return;
    int tm[TUI_TYPES], need = -1;
    for (int t = 0; t < TUI_TYPES; t++)
        tm[t] = t < 4 ? PARE_WEIGHT_WHITEN : TUI_MIX_WANDA;
    st.mo.ratio = 0.4;
    st.mo.nm_n = 2, st.mo.nm_m = 4;
    CHECKF(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == 0 && st.dec_ok, "%s", st.dec_err);
    for (int i = 0; i < st.n; i++) {
        const pare_linear *l = st.lin[i];
        if (st.type[i] < 4) {
            int k = (int)(0.6 * l->out * l->in / (l->out + l->in) + 1e-9);
            CHECKF(st.dec[i].action == PARE_PLAN_FACTOR && st.dec[i].rank == k &&
                       st.dec[i].weighting == PARE_WEIGHT_WHITEN,
                   "%s: %d r %d", l->name, st.dec[i].action, st.dec[i].rank);
        } else
            CHECKF(st.dec[i].action == PARE_PLAN_MASK && st.dec[i].frac == 0.5 &&
                       st.dec[i].after == (size_t)l->out * l->in / 2,
                   "%s: %d %g", l->name, st.dec[i].action, st.dec[i].frac);
    }
    char label[96];
    tui_config_label(&st.cfg, label, sizeof label);
    CHECKF(strstr(label, "masked 2:4"), "%s", label);
    tui_result row;
    check_totals(&st, "whiten + 2:4 wanda", &row);
    /* the same compression through the core API */
    pare_error err = {0};
    pare_model *m = NULL;
    CHECK(pare_model_clone(st.model, &m, &err) == PARE_OK);
    int32_t *ids = NULL;
    pare_calib_opts co;
    CHECK(tui_calib_windows(m, &st.set, &ids, &co, &err) == PARE_OK);
    co.gram = 1;
    pare_calib_stats *cs = NULL;
    CHECK(pare_calibrate(m, ids, &co, NULL, NULL, NULL, &cs, &err) == PARE_OK);
    for (int l = 0; cs && l < m->cfg.n_layers; l++) {
        pare_block *b = &m->blocks[l];
        for (int j = 0; j < PARE_LIN_KINDS; j++) {
            pare_linear *lin = &b->lin[j];
            const pare_input_stats *in = &cs->sites[l][pare_linear_site(b, lin)];
            if (!pare_lin_kinds[j].ffn) {
                pare_factor_opts fo;
                pare_factor_defaults(&fo);
                fo.weighting = PARE_WEIGHT_WHITEN;
                int k = (int)(0.6 * lin->out * lin->in / (lin->out + lin->in) + 1e-9);
                pare_factor_report fr;
                CHECK(pare_factorize_linear(lin, k, &fo, in, &fr, &err) == PARE_OK);
            } else {
                pare_mask_opts mo;
                pare_mask_defaults(&mo);
                mo.score = PARE_SCORE_WANDA;
                mo.nm_n = 2, mo.nm_m = 4;
                CHECKF(pare_prune_mask(&lin, &in, 1, &mo, NULL, &err) == PARE_OK, "%s", err.msg);
            }
        }
    }
    pare_eval_result er;
    CHECK(tui_evaluate(m, &st.set, NULL, &er, &err) == PARE_OK);
    CHECKF(er.ppl == row.ppl, "core API ppl %.17g, workbench %.17g", er.ppl, row.ppl);
    pare_calib_free(cs);
    free(ids);
    pare_model_free(m);
    check_reproduces(&st, "pertype-wanda24");
    char *txt = NULL;
    CHECK(tui_recipe_text(&st, &st.cfg, &st.set, NULL, &txt, &err) == PARE_OK);
    CHECKF(txt && strstr(txt, "m:prune{method = \"wanda\", nm = \"2:4\", calib = c") && strstr(txt, "gram = true") &&
               strstr(txt, "weighting = \"whiten\""),
           "recipe:\n%s", txt);
    free(txt);

    /* ASVD attention, LoRAP channel pruning of the FFN (keep_least from the budget) */
    for (int t = 0; t < TUI_TYPES; t++)
        tm[t] = t < 4 ? PARE_WEIGHT_ACT : TUI_MIX_CHANNELS;
    st.mo.ratio = 0.3;
    st.mo.keep_least = 0.05;
    CHECKF(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == 0 && st.n_channels == 3 * st.model->cfg.n_layers, "%s",
           st.dec_err);
    check_totals(&st, "asvd + channels", &row);
    check_reproduces(&st, "pertype-channels");
    /* channels are for the FFN only; N:M needs a width it divides (the old configuration stays) */
    tm[0] = TUI_MIX_CHANNELS;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == -1 && strstr(st.dec_err, "FFN"));
    CHECK(st.dec_ok && st.n_channels > 0);
    /* unstructured magnitude masks at the ratio on v and o, the rest as loaded */
    for (int t = 0; t < TUI_TYPES; t++)
        tm[t] = t == 2 || t == 3 ? TUI_MIX_MAGNITUDE : TUI_MIX_KEEP;
    st.mo.nm_n = st.mo.nm_m = 0;
    CHECK(tui_state_mix(&st, tm, TUI_MIX_UNIFORM, &need) == 0 && st.n_mask == 2 * st.model->cfg.n_layers);
    check_totals(&st, "magnitude v o", &row);
    check_reproduces(&st, "pertype-magnitude");
    /* the wanda method at 2:4: the budget's nm field */
    set_method(&st, "wanda", 0.3);
    st.mo.nm_n = 2, st.mo.nm_m = 4;
    tui_state_use_budget(&st);
    tui_config_label(&st.cfg, label, sizeof label);
    CHECKF(st.dec_ok && !strcmp(label, "wanda 2:4") && st.dec[0].frac == 0.5, "%s: %s", label, st.dec_err);
    check_totals(&st, "wanda 2:4", &row);
    check_reproduces(&st, "wanda24");
    tui_state_free(&st);
}

/* ---- zero-shot tasks in the evaluation ------------------------------------------------------------- */

/* Reads "accuracy      ACC acc_norm NORM" from a saved recipe's output. */
static int recipe_acc(const char *out, double *acc, double *norm)
{
    const char *p = out ? strstr(out, "accuracy") : NULL;
    return p && sscanf(p, "accuracy %lf acc_norm %lf", acc, norm) == 2;
}

/* A task set in the workbench is scored by e beside the perplexity: the dense model's acc equals `pare eval
 * --task`'s; a compressed configuration's acc and acc_norm are reproduced by its saved recipe
 * (m:eval_task), land in run.json, read back into result rows, show in `pare compare` and can be the
 * metric of `pare plot size-quality` and of the workbench's chart. */
static void test_zero_shot_task(void)
{
    const char *text = text_file();
    const char *task = tmp_path("arc.jsonl");
    {
        FILE *f = fopen(task, "w");
        const char *words[] = {"cat", "mat", "dog", "log", "bird", "song", "sat", "the"};
        for (int i = 0; f && i < 12; i++)
            fprintf(f,
                    "{\"id\": \"q%d\", \"question\": {\"stem\": \"where did the %s sit\", \"choices\": ["
                    "{\"text\": \"on the %s\", \"label\": \"A\"}, {\"text\": \"the %s sang\", \"label\": \"B\"}, "
                    "{\"text\": \"a %s and a %s\", \"label\": \"C\"}]}, \"answerKey\": \"%c\"}\n",
                    i, words[i % 8], words[(i + 1) % 8], words[(i + 2) % 8], words[(i + 3) % 8], words[(i + 5) % 8],
                    "ABC"[i % 3]);
        if (f)
            fclose(f);
    }
    tui_state st;
    if (open_state(&st, "task", 0, text))
        return;
    pare_error err = {0};
    /* the setup's one-line form */
    CHECK(tui_settings_parse_task(&st.set, "nonsense x", &err) != PARE_OK && strstr(err.msg, "piqa"));
    CHECK(tui_settings_parse_task(&st.set, "arc-easy /nonexistent/arc", &err) != PARE_OK);
    char line[1200], want[1200];
    snprintf(line, sizeof line, "arc_easy %s 5", task);
    CHECKF(tui_settings_parse_task(&st.set, line, &err) == PARE_OK && st.set.task_limit == 5 &&
               !strcmp(st.set.task, "arc-easy") && !strcmp(st.set.task_data, task),
           "%s", err.msg);
    tui_settings_task_text(&st.set, line, sizeof line);
    snprintf(want, sizeof want, "arc-easy %s 5", task);
    CHECKF(!strcmp(line, want), "%s", line);
    CHECK(tui_settings_parse_task(&st.set, "", &err) == PARE_OK && !st.set.task[0]);
    CHECK(tui_settings_set_task(&st.set, "arc-easy", task, 0, &err) == PARE_OK);

    /* the dense model: the same acc as pare eval --task */
    tui_result dense;
    CHECKF(tui_run_config(st.model, &st.cfg, &st.set, NULL, &dense, &err) == PARE_OK, "%s", err.msg);
    CHECK(!strcmp(dense.task, "arc-easy") && dense.task_items == 12 && dense.ppl > 1);
    char *out = NULL, *errout = NULL;
    int rc = run_pare(&out, &errout,
                      (const char *const[]){"eval", "--model", st.model_path, "--task", "arc-easy", "--task-data", task,
                                            "--json", NULL});
    json_error_t je;
    json_t *j = rc == 0 ? json_loads(out, 0, &je) : NULL;
    /* the JSON has 10 significant digits: compare the counts of items right */
    double n_items = (double)json_integer_value(json_object_get(j, "items"));
    CHECKF(j && n_items == 12 &&
               lround(json_number_value(json_object_get(j, "acc")) * n_items) == lround(dense.acc * 12) &&
               lround(json_number_value(json_object_get(j, "acc_norm")) * n_items) == lround(dense.acc_norm * 12) &&
               fabs(json_number_value(json_object_get(j, "acc")) - dense.acc) < 1e-9,
           "pare eval --task: exit %d: %s %s; workbench acc %.17g", rc, out, errout, dense.acc);
    json_decref(j);
    free(out);
    free(errout);
    tui_state_add_result(&st, &dense);

    /* a compressed configuration: the saved recipe gives the same acc and acc_norm */
    set_method(&st, "lorap", 0.4);
    tui_result row;
    CHECKF(tui_run_config(st.model, &st.cfg, &st.set, NULL, &row, &err) == PARE_OK, "%s", err.msg);
    tui_state_add_result(&st, &row);
    const char *recipe = tmp_path("task.lua"), *rout = tmp_path("run-task");
    CHECK(tui_recipe_save(&st, &st.cfg, &st.set, NULL, recipe, &err) == PARE_OK);
    rc = run_pare(&out, &errout, (const char *const[]){"run", recipe, "--out", rout, "--quiet", NULL});
    double acc = -1, norm = -1;
    CHECKF(rc == 0 && recipe_acc(out, &acc, &norm) && acc == row.acc && norm == row.acc_norm &&
               recipe_ppl(out) == row.ppl,
           "pare run: exit %d, acc %.17g / %.17g, workbench %.17g / %.17g: %s %s", rc, acc, norm, row.acc, row.acc_norm,
           out, errout);
    free(out);
    free(errout);
    /* run.json keeps the accuracies; read back they join the perplexity in one row */
    int before = st.n_res;
    CHECK(tui_results_from_run(&st, rout) == 1 && st.n_res == before + 1);
    const tui_result *back = &st.res[st.n_res - 1];
    CHECKF(back->ppl == row.ppl && back->acc == row.acc && back->acc_norm == row.acc_norm &&
               !strcmp(back->task, "arc-easy"),
           "from run.json: ppl %.17g acc %.17g task %s", back->ppl, back->acc, back->task);
    /* pare compare and the size-quality plot */
    rc = run_pare(&out, &errout, (const char *const[]){"compare", rout, "--format", "csv", NULL});
    char acc_txt[64];
    snprintf(acc_txt, sizeof acc_txt, "%.4f", row.acc);
    CHECKF(rc == 0 && out && strstr(out, "acc arc-easy") && strstr(out, "acc_norm arc-easy") && strstr(out, acc_txt),
           "pare compare: exit %d: %s %s", rc, out, errout);
    free(out);
    free(errout);
    const char *png = tmp_path("sq-acc.png");
    rc = run_pare(&out, &errout,
                  (const char *const[]){"plot", "size-quality", rout, "--metric", "acc arc-easy", "--out", png, NULL});
    CHECKF(rc == 0 && pare_file_exists(png), "pare plot size-quality --metric acc: exit %d: %s", rc, errout);
    free(out);
    free(errout);
    /* the workbench's chart of acc and acc_norm */
    for (int met = TUI_METRIC_PPL; met <= TUI_METRIC_ACC_NORM; met++) {
        st.chart_metric = met;
        pare_plot *p = NULL;
        CHECKF(tui_plot_build(&st, TUI_PLOT_CHART, &p, &err) == PARE_OK, "%s: %s", TUI_METRIC_NAMES[met], err.msg);
        pare_plot_destroy(p);
    }
    /* a task without an evaluation text: accuracies only */
    st.set.eval[0] = 0;
    CHECKF(tui_run_config(st.model, &st.cfg, &st.set, NULL, &row, &err) == PARE_OK && isnan(row.ppl) && row.acc >= 0,
           "%s", err.msg);
    tui_state_free(&st);
}

/* ---- auto in the budget pane ------------------------------------------------------------------- */

/* auto on ref-llama-12m with a small calibration (4 windows of 64 tokens, one probe per curve on one
 * window): choosing it asks for the
 * sensitivity pass (and refuses without a calibration text); once it is handed over, ratio changes are
 * solved from it without asking again; the plan equals pare_auto_solve's on an analysis the test computes
 * itself; the budget plot marks the ratio; e and s apply exactly the decisions shown (check_reproduces:
 * the recipe run's per-matrix ranks, parameters and perplexity). */
static void test_auto_budget(void)
{
    NEED_SHARED();
    pare_model *m = NULL;
    pare_error err = {0};
    const char *model = shared_path("models/ref-llama-12m"), *brown = shared_path("data/text/brown/brown_train.txt");
    CHECKF(pare_model_load(model, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    if (!m)
        return;
    tui_settings set;
    tui_settings_defaults(&set);
    set.calib_samples = 4;
    set.calib_len = 64;
    set.window = 64;
    set.limit_tokens = 640;
    snprintf(set.eval, sizeof set.eval, "%s", shared_path("data/text/tinystories/tiny_test.txt"));
    snprintf(set.out, sizeof set.out, "%s", tmp_path("session"));
    tui_state st;
    if (tui_state_init(&st, m, model, &set, &err)) {
        CHECKF(0, "%s", err.msg);
        pare_model_free(m);
        return;
    }
    st.mo.sensitivity = PARE_AUTO_PROBE1; /* one probe per curve on one window: seconds, not minutes */
    st.mo.probe_samples = 1;
    set_method(&st, "auto", 0.3);
    CHECKF(!st.dec_ok && !st.auto_need && strstr(st.dec_err, "--calib"), "without calibration: %s", st.dec_err);
    snprintf(st.set.calib, sizeof st.set.calib, "%s", brown);
    tui_state_use_budget(&st);
    CHECKF(!st.dec_ok && st.auto_need && st.auto_analyses == 0, "auto should wait for its analysis: %s", st.dec_err);

    /* what the job does, then hands over */
    pare_method_opts mo;
    pare_auto_opts ao;
    tui_method_opts_effective(&st.cfg, &mo);
    pare_method_auto_opts(&mo, &ao);
    pare_auto_analysis *an = NULL;
    double *curve = NULL;
    int curve_n = 0;
    double t0 = now_s();
    CHECKF(tui_auto_analyze(st.model, &st.set, &ao, NULL, &an, &curve, &curve_n, &err) == PARE_OK, "%s", err.msg);
    printf("  auto analysis %.1f s\n", now_s() - t0);
    if (!an) {
        tui_state_free(&st);
        return;
    }
    tui_state_set_auto(&st, an, curve, curve_n);
    CHECKF(st.dec_ok && !st.auto_need && st.auto_analyses == 1, "after the analysis: %s", st.dec_err);
    CHECK(curve_n > 10 && isfinite(st.auto_predicted) && isfinite(st.uniform_predicted));

    /* two ratio changes: solved at once, no second analysis asked for */
    double ratios[] = {0.35, 0.4};
    for (int k = 0; k < 2; k++) {
        t0 = now_s();
        set_method(&st, "auto", ratios[k]);
        double ms = 1e3 * (now_s() - t0);
        CHECKF(st.dec_ok && !st.auto_need && st.auto_analyses == 1, "ratio %g: %s", ratios[k], st.dec_err);
        printf("  ratio %g solved in %.1f ms\n", ratios[k], ms);
    }

    /* the test's own analysis and solve: the same plan and totals */
    pare_model *m2 = NULL;
    int32_t *ids = NULL;
    pare_calib_opts co;
    pare_calib_defaults(&co);
    co.samples = 4;
    co.len = 64;
    pare_auto_analysis *own = NULL;
    pare_plan plan = {0};
    CHECKF(pare_model_load(model, NULL, &m2, &err) == PARE_OK &&
               pare_calib_windows_file(m2, brown, &co, &ids, NULL, &err) == PARE_OK &&
               pare_auto_analyze(m2, ids, &co, &ao, NULL, &own, &err) == PARE_OK &&
               pare_auto_solve(m2, own, 0.4, &plan, &err) == PARE_OK,
           "%s", err.msg);
    if (own) {
        CHECKF(st.block_before - st.block_after == plan.params_before - plan.params_after,
               "the budget removes %zu weights, pare_auto_solve %zu", st.block_before - st.block_after,
               plan.params_before - plan.params_after);
        int same = plan.count == st.n;
        for (int i = 0; same && i < st.n; i++)
            same = plan.items[i].action == st.dec[i].action && plan.items[i].rank == st.dec[i].rank &&
                   plan.items[i].params_after == st.dec[i].after;
        CHECKF(same, "the budget's per-matrix decisions differ from pare_auto_solve's");
        /* the uniform comparison is svdllm's plan at the same ratio */
        pare_method_opts so;
        pare_method_defaults(&so);
        so.ratio = 0.4;
        pare_plan uni = {0};
        CHECKF(pare_method_plan(m2, pare_method_find("svdllm"), &so, NULL, NULL, NULL, &uni, NULL, &err) == PARE_OK,
               "%s", err.msg);
        for (int i = 0; i < st.n && i < uni.count; i++)
            CHECKF(st.dec[i].uniform_rank == uni.items[i].rank, "%s: uniform rank %d, svdllm's %d", st.lin[i]->name,
                   st.dec[i].uniform_rank, uni.items[i].rank);
        pare_plan_free(&uni);
    }
    pare_plan_free(&plan);
    pare_auto_analysis_free(own);
    free(ids);
    pare_model_free(m2);

    /* the budget plot: auto's curve, svdllm's, the ratio marked */
    pare_plot *p = NULL;
    CHECKF(tui_plot_build(&st, TUI_PLOT_BUDGET, &p, &err) == PARE_OK, "%s", err.msg);
    pare_series vl;
    int marked = 0;
    for (int i = 0; p && i < pare_plot_series_count(p); i++)
        marked |= pare_plot_series_at(p, i, &vl, &err) == PARE_OK && vl.kind == PARE_SERIES_VLINE && vl.value == 0.4;
    CHECK(marked);
    pare_plot_destroy(p);

    check_reproduces(&st, "auto");

    /* other calibration settings: the analysis is dropped and asked for again */
    tui_state_drop_auto(&st);
    tui_state_update(&st);
    CHECK(!st.dec_ok && st.auto_need);
    tui_state_free(&st);
}

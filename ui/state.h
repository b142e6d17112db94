/* The workbench state behind `pare tui`, in plain C with no terminal: the loaded model's matrices,
 * the configuration being built (dense, a named method at a budget, or per-matrix ranks), its
 * decisions and parameter totals, the rank cursor's figures, the model tree and the results so far.
 * The curses panes only draw this and turn keys into calls here, so the tests can drive it directly. */
#ifndef PARE_UI_STATE_H
#define PARE_UI_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/allocate.h"
#include "core/calib.h"
#include "plot/charts.h"
#include "core/method.h"
#include "core/model.h"
#include "core/spectrum.h"

/* Matrix types in block order (the core's table); GPT-2 has no gate (its c_fc is up, c_proj down). */
#define TUI_TYPES PARE_LIN_KINDS
#define TUI_TYPE_NAME(t) (pare_lin_kinds[t].name)
/* Plot weightings by pare_weighting: "plain", "activation", "whitened". */
extern const char *const TUI_WEIGHTING_LABELS[3];

/* What the session reads and writes: calibration and evaluation protocol, and where files go. */
typedef struct {
    char calib[1024]; /* calibration text ("" none) */
    int calib_samples, calib_len;
    unsigned long long seed;
    char eval[1024]; /* evaluation text ("" none) */
    int window;
    long long limit_tokens; /* 0: the whole file */
    char task[32];          /* zero-shot task `e` also scores: piqa, arc-easy, boolq, hellaswag ("" none) */
    char task_data[1024];   /* its data file or folder (as pare eval --task-data) */
    long long task_limit;   /* score only the first N items (0: all) */
    char out[1024];         /* session folder: saved recipes, exports, plots, preset runs */
} tui_settings;

void tui_settings_defaults(tui_settings *s);
/* Frees the n strings of v, then v (either may be NULL). */
void tui_free_strings(char **v, int n);
/* The zero-shot task e also scores: kind as `pare eval --task` takes it (NULL or "" clears the task),
 * data its file or folder (must exist), limit the first N items (0: all). */
pare_status tui_settings_set_task(tui_settings *s, const char *kind, const char *data, long long limit, pare_error *err);
/* The setup's one-line form "KIND PATH [LIMIT]" ("" clears), and back. */
pare_status tui_settings_parse_task(tui_settings *s, const char *text, pare_error *err);
void tui_settings_task_text(const tui_settings *s, char *buf, size_t cap);

typedef enum {
    TUI_CFG_DENSE,  /* the model as loaded */
    TUI_CFG_METHOD, /* a named method at the budget (pare_method_compress) */
    TUI_CFG_MANUAL  /* per-matrix decisions (ranks set with the rank cursor, a method per matrix type),
                       applied as one plan with one-shot statistics of the dense model */
} tui_cfg_kind;

/* One matrix's decision in a manual configuration. rank > 0: factorized at that rank with weighting;
 * else `action` says MASK (sparsity frac, or N:M by how) or CHANNELS (the block's FFN loses frac of its
 * channels, gate, up and down alike), or DENSE (left as loaded). how carries the method (mask score,
 * scope, N:M, channel score, keep_least), as a core plan item does. */
typedef struct {
    int rank;
    int weighting;           /* pare_weighting of the factorization */
    pare_plan_action action; /* with rank 0 */
    double frac;
    pare_plan_how how;
} tui_manual;

/* The action a manual entry takes (FACTOR whenever rank > 0). */
pare_plan_action tui_manual_action(const tui_manual *d);

/* A configuration, self-contained so that a worker job or a recipe writer can take a copy. */
typedef struct {
    tui_cfg_kind kind;
    const pare_method *method; /* METHOD */
    pare_method_opts mo;       /* METHOD */
    int n;                     /* MANUAL: one entry per block linear (pare_model_linears order) */
    tui_manual *man;
    double auto_ratio; /* MANUAL: > 0 when the entries are auto's plan at this ratio (tui_config_resolve) */
} tui_config;

/* The method options a saved recipe states for cfg (the rest at pare_method_defaults). Plans, the
 * workbench's compression and the recipe all use exactly these, so they cannot disagree about an
 * option the recipe leaves unstated. */
void tui_method_opts_effective(const tui_config *cfg, pare_method_opts *mo);
int tui_config_copy(tui_config *dst, const tui_config *src); /* -1 when out of memory */
void tui_config_free(tui_config *c);
/* A fingerprint of what the configuration and the settings decide (FNV-1a over the kind, the method and
 * its effective options, every manual rank and weighting, calibration and evaluation settings), so
 * a result is matched to the configuration it measured. */
unsigned long long tui_config_hash(const tui_config *c, const tui_settings *set);
/* "dense", "lorap 0.2", "wanda 2:4", "auto 0.3", "manual (12 ranks)", "manual (12 ranks, 6 masked 2:4, 6 sliced)" */
void tui_config_label(const tui_config *c, char *buf, size_t cap);
/* The core plan of a MANUAL configuration for model m (any clone of the loaded model: items point to
 * m's matrices), counted by pare_plan_recount; the same plan the workbench totals show and apply.c
 * applies. *needs_stats and *gram (may be NULL) say whether it needs calibration statistics and
 * Gram matrices. */
pare_status tui_config_plan(pare_model *m, const tui_config *cfg, pare_plan *plan, int *needs_stats, int *gram,
                            pare_error *err);

/* One matrix's decision under the configuration, as a plan item says it. */
typedef struct {
    pare_plan_action action;
    int rank;             /* FACTOR */
    double frac;          /* CHANNELS: fraction of the FFN channels removed; MASK: sparsity */
    int weighting;        /* FACTOR: of the factors */
    size_t before, after; /* weights only (biases are never removed) */
    /* auto only: svdllm's uniform rank at the same ratio (0 where it leaves the matrix dense), and the
     * predicted increase of auto's probe measure (KL from the dense model, or the calibration loss;
     * nats per token) for auto's choice here */
    int uniform_rank;
    double predicted;
} tui_decision;

/* One evaluated configuration. */
typedef struct {
    char label[96];       /* configuration label */
    char method[32];      /* dense, lorap, manual, ... (groups the size-quality chart) */
    char data[256];       /* evaluation file (basename) */
    double ppl;           /* NAN for a row without perplexity */
    char task[32];        /* zero-shot task scored ("" none) */
    double acc, acc_norm; /* its accuracies (NAN when no task was scored) */
    size_t task_items;
    size_t block_before, block_after, total_before, total_after;
    double wall_s;
    char source[64];         /* "tui" or the run folder it came from */
    unsigned long long hash; /* tui_config_hash of what was evaluated (0 for rows read from run.json) */
} tui_result;

/* A row of the model tree: a layer header (mat -1) or one of its matrices. */
typedef struct {
    int layer, mat;
} tui_tree_row;

typedef struct {
    pare_model *model; /* as loaded; never modified (every compression happens on a clone) */
    char model_path[4096];
    int n;                             /* block linears */
    pare_linear **lin;                 /* [n], pare_model_linears order */
    int *layer, *type;                 /* [n] */
    size_t block_before, total_before; /* parameters of the model as loaded (biases included) */

    tui_settings set;
    tui_config cfg;      /* the configuration being built */
    int method_idx;      /* budget: index in pare_methods(), -1 for dense */
    pare_method_opts mo; /* budget: ratio, split, keep_least, energy, weighting (-1: the method's) */

    /* the configuration's decisions and totals, recomputed by tui_state_update */
    tui_decision *dec;  /* [n] */
    int dec_ok;         /* decisions valid */
    int dec_need;       /* >= 0: a spectral plan waits for the spectra of this weighting */
    char dec_err[1024]; /* why the decisions are not valid (an infeasible budget, ...) */
    size_t block_after, total_after;
    int n_factor, n_channels, n_mask;
    int plan_weighting; /* weighting the method's factors use */

    /* caches of the loaded model under the settings' calibration */
    pare_calib_stats *calib;        /* one-shot statistics with Gram matrices, or NULL */
    pare_model_spectra *spectra[3]; /* by pare_weighting, or NULL */
    /* big models: single matrices' spectra by weighting, .s NULL where missing (ui/spectra.c); once
     * complete they become spectra[w] */
    pare_model_spectra *partial[3];
    int spectra_on_demand; /* tui_spectra_on_demand_for at load: no whole-model spectra unless asked */

    /* auto: the sensitivity pass (pare_auto_analyze) of the loaded model under the settings'
     * calibration and the budget's keep_least, computed once on the job thread; each ratio is then
     * solved from it (pare_auto_solve). auto_need: the plan waits for it. */
    pare_auto_analysis *auto_an;
    int auto_need;
    int auto_analyses; /* how many analyses were handed to the state (one per calibration setting) */
    /* its budget curve: ratio, auto's and uniform svdllm's predicted loss increase at each [3 * auto_curve_n] */
    double *auto_curve;
    int auto_curve_n;
    double auto_predicted, uniform_predicted; /* of the current ratio's plans */

    /* view */
    int sel;                  /* selected matrix */
    int *cursor;              /* rank cursor per matrix */
    int weighting;            /* weighting of the spectrum shown */
    unsigned char *collapsed; /* [n_layers] */

    tui_result *res;
    int n_res, cap_res;
    int chart_metric; /* what the size-quality chart plots: tui_metric */
} tui_state;

/* The quality measures of a result row, for the size-quality chart. */
typedef enum { TUI_METRIC_PPL, TUI_METRIC_ACC, TUI_METRIC_ACC_NORM } tui_metric;
extern const char *const TUI_METRIC_NAMES[3]; /* "perplexity", "acc", "acc_norm" */
/* Row r's value of metric (NAN when it was not measured). */
double tui_result_metric(const tui_result *r, tui_metric metric);
/* Whether some result row scored a zero-shot task. */
int tui_state_has_task_results(const tui_state *st);

/* Takes ownership of model. Every cursor starts at the matrix's break-even rank halved. */
int tui_state_init(tui_state *st, pare_model *model, const char *path, const tui_settings *set, pare_error *err);
void tui_state_free(tui_state *st);

/* Recomputes decisions and totals from cfg (and, for METHOD, the budget): uniform, LoRAP and mask
 * policies through pare_method_plan; global and energy from the cached spectra of their weighting
 * (the same one-shot statistics and allocation pare_method_plan runs), else dec_need says which
 * spectra to compute first. Returns dec_ok. */
int tui_state_update(tui_state *st);
/* Switches to the method at the budget (method_idx, mo); -1 method_idx gives the dense configuration. */
int tui_state_use_budget(tui_state *st);
/* Manual configuration: matrix i factorized at rank k (k <= 0: left as loaded) with weighting w.
 * Coming from a method, its factorized matrices are taken over with their ranks and weighting
 * (channel pruning and masks are not: *dropped, may be NULL, gets how many decisions were left out).
 * Fails (-1, message in dec_err) for a matrix that is not dense or a rank outside 1..min(m, n). */
int tui_state_set_rank(tui_state *st, int i, int k, int w, int *dropped);
/* Sets the rank of every matrix of i's type to keep the same fraction of parameters as k at i. */
int tui_state_set_rank_type(tui_state *st, int i, int k, int w);

/* A method per matrix type: each type is factorized with its own weighting (svd / asvd / svdllm) or
 * left as loaded, and one allocation policy turns the budget (mo.ratio, or mo.energy) into ranks:
 * uniform keeps (1 - ratio) of every chosen matrix (rank floor((1 - ratio) m n / (m + n)), at least 1),
 * energy the smallest rank keeping mo.energy of the matrix's weighted spectral energy (left as loaded
 * at or above break-even), global pare's allocation over every matrix, each measured in its own
 * type's weighting (every type must then be chosen). The ranks become the manual configuration, so the
 * saved recipe reproduces them with m:factorize. */
typedef enum { TUI_MIX_UNIFORM, TUI_MIX_ENERGY, TUI_MIX_GLOBAL } tui_mix_policy;
extern const char *const TUI_MIX_POLICY_NAMES[3];
/* type_method values: TUI_MIX_KEEP, a pare_weighting (factorized: svd, asvd, svdllm), or one of the
 * pruning choices below. Every type gets the same decision mechanism (a tui_manual per matrix):
 * CHANNELS prunes FFN channels with LoRAP's score and the budget's keep_least (gate, up and down must
 * then all choose it), MAGNITUDE masks by |W| per matrix, WANDA by |W| ||X|| per output row; masks take
 * the budget's ratio as sparsity, or N:M when the budget's nm is set (mo.nm_m > 0). Pruned types take
 * the ratio under every policy; energy and global only decide the ranks of factorized types. */
#define TUI_MIX_KEEP (-1)
enum { TUI_MIX_CHANNELS = 3, TUI_MIX_MAGNITUDE, TUI_MIX_WANDA, TUI_MIX_CHOICES };
/* "keep as loaded", "svd (plain)", ... by type_method + 1 */
extern const char *const TUI_MIX_CHOICE_NAMES[TUI_MIX_CHOICES + 1];
/* 0 on success; -1 with dec_err, and *need_w >= 0 when the spectra of that weighting are needed first.
 * global needs every type factorized. */
int tui_state_mix(tui_state *st, const int type_method[TUI_TYPES], tui_mix_policy pol, int *need_w);

/* The figures of the rank cursor at k for matrix i under weighting w (its spectrum must be cached). */
typedef struct {
    int k, r, m, n;
    size_t dense_params, params; /* m n and k (m + n) */
    double kept;                 /* params / dense_params */
    double trunc_error;          /* relative truncation error sqrt(sum_{i>k} s_i^2 / sum s_i^2) */
    double energy;               /* energy kept: 1 - trunc_error^2 */
    int break_even;              /* floor(m n / (m + n)) */
    int rank90;
} tui_cursor_stats;

int tui_cursor_stats_at(const tui_state *st, int i, int w, int k, tui_cursor_stats *cs);
/* Moves matrix i's cursor by delta, clamped to 1..min(m, n); returns the new k. */
int tui_cursor_move(tui_state *st, int i, int delta);

/* Model tree rows (layer headers, and the matrices of expanded layers). Returns the count (rows may
 * be NULL to count). */
int tui_tree_rows(const tui_state *st, tui_tree_row *rows, int cap);
/* The first matrix after `from` (wrapping) whose name contains pattern; -1 if none. Its layer is
 * expanded. */
int tui_tree_find(tui_state *st, const char *pattern, int from);
/* Short display name: "q_proj", "c_attn.q", ... (the part after the layer number). */
const char *tui_short_name(const tui_state *st, int i);
/* "dense", "factorized", "masked", "sliced" for the matrix as the configuration leaves it, with the
 * rank or sparsity in detail ("r 12", "50%", "-20%" of the FFN channels). */
const char *tui_state_word(const tui_state *st, int i, char *detail, size_t cap);

int tui_state_add_result(tui_state *st, const tui_result *r);
/* Reads the result rows of OUT/run.json into the state, one per perplexity metric, each carrying the
 * row's zero-shot acc and acc_norm (a row with accuracies only gives one row without perplexity);
 * returns how many. */
int tui_results_from_run(tui_state *st, const char *out_dir);
/* Drops the cached statistics and every weighted spectrum (settings changed). */
void tui_state_drop_calib(tui_state *st);
/* Drops auto's analysis (the calibration settings changed). */
void tui_state_drop_auto(tui_state *st);
/* Hands an analysis and its budget curve (see auto_curve) to the state, which owns them from here. */
void tui_state_set_auto(tui_state *st, pare_auto_analysis *an, double *curve, int curve_n);
/* Auto's budget curve from an analysis of st's model: ratio, auto's and uniform svdllm's predicted loss
 * at ratios 0.02, 0.04, ... up to the largest feasible one; *curve malloc'd [3 * *n]. */
pare_status tui_auto_curve(pare_model *m, const pare_auto_analysis *an, double **curve, int *n, pare_error *err);
/* The configuration the workbench evaluates and saves: a copy of st->cfg, except that auto at a ratio
 * becomes its solved plan as per-matrix decisions (whitened ranks, LoRAP channels; auto_ratio set), so
 * the evaluation and the saved recipe apply exactly the decisions shown, with one-shot statistics of the
 * dense model (pare compress --method auto re-decides block by block instead). */
pare_status tui_config_resolve(const tui_state *st, tui_config *dst, pare_error *err);

/* Spectra of a big model, matrix by matrix (ui/spectra.c). A model is analyzed whole at open (as
 * before) unless it is streamed or tui_spectra_cost_s exceeds TUI_SPECTRA_AT_OPEN_S seconds; then
 * only the selected matrix's spectrum is computed, on demand, and the whole-model spectra when asked. */
#define TUI_SPECTRA_AT_OPEN_S 60.0
/* Estimated wall seconds of every matrix's spectrum (double Gram route, one matrix per thread). */
double tui_spectra_cost_s(const tui_state *st);
int tui_spectra_on_demand_for(const tui_state *st);
/* Matrix i's spectrum of weighting w, from the whole-model spectra or the per-matrix cache; NULL
 * while missing. */
const pare_matrix_spectrum *tui_state_spectrum(const tui_state *st, int w, int i);
/* How many matrices have their spectrum of weighting w. */
int tui_spectra_count(const tui_state *st, int w);
/* Stores one matrix's spectrum (takes ms->s); the n-th makes them spectra[w] and updates the state. */
int tui_state_put_spectrum(tui_state *st, int w, int i, pare_matrix_spectrum *ms);
/* Stores the whole-model spectra of w (takes sp), replacing the per-matrix ones; updates the state. */
void tui_state_put_spectra(tui_state *st, int w, pare_model_spectra *sp);
/* Why a plan waits for the spectra of w: "computing them", or for a big model how to get them all. */
void tui_spectra_need_text(const tui_state *st, int w, char *buf, size_t cap);

/* Screen layout in character cells. too_small when below TUI_MIN_COLS x TUI_MIN_ROWS. */
#define TUI_MIN_COLS 80
#define TUI_MIN_ROWS 24
typedef struct {
    int x, y, w, h;
} tui_rect;
typedef enum { TUI_P_TREE, TUI_P_PLOT, TUI_P_BUDGET, TUI_P_RESULTS, TUI_P_LOG, TUI_P_COUNT } tui_pane_id;
typedef struct {
    int too_small;
    tui_rect header, status, fbar;
    tui_rect pane[TUI_P_COUNT];
} tui_layout;
void tui_layout_compute(int cols, int rows, tui_layout *l);

#endif

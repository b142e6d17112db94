/* Plots of run records: the size-against-quality points of the result rows of one or several
 * run.json files (loaded by runrec.h) and the budget of one result row, drawn by src/plot/charts.c.
 * Shared by `pare plot size-quality`, the Lua plots (lua/lplot.c) and the session runner
 * (lua/lsession.c), which writes the automatic plots into OUT at the end of a run. Layer: as runrec.h. */
#ifndef PARE_RECORD_RUNPLOTS_H
#define PARE_RECORD_RUNPLOTS_H

#include <jansson.h>
#include <stddef.h>

#include "plot/charts.h"

typedef enum { RUNPLOT_BLOCK = 0, RUNPLOT_TOTAL } runplot_convention;

/* The axis label of a convention: decoder-block linears (Wanda, ASVD, SVD-LLM) or all parameters
 * (LLM-Pruner, LoRAP). */
const char *runplot_convention_label(runplot_convention c);

/* The key of a metric as `pare compare` heads its column: "NAME FILE-BASENAME". */
void runplot_metric_key(const char *name, const char *data, char *buf, size_t cap);
/* Does the metric (name, data file) match want: "NAME", or "NAME FILE" with FILE compared by base name? */
int runplot_metric_matches(const char *name, const char *data, const char *want);

/* Points gathered from result rows; every string is owned. */
typedef struct {
    pare_sq_point *pts;
    char **series; /* pts[i].series points here */
    int *run;      /* which runplot_add_results call each point came from */
    int n, cap, runs;
    char metric[512]; /* the metric plotted ("ppl tiny_test.txt"): asked for, or the first one found */
} runplot_points;

/* Adds one point per row of results (run.json's "results" array) that has the metric: metric is
 * "NAME" or "NAME FILE" (FILE compared by its base name, as `pare compare` heads its columns); NULL or
 * "" takes the first metric of the first row that has one (and keeps it for later calls). The series
 * is the row's method; params are the row's block_linear or total parameters. */
pare_status runplot_add_results(runplot_points *p, json_t *results, runplot_convention conv, const char *metric,
                                pare_error *err);
/* When several runs (calls) hold rows of the same method other than "dense", their series are
 * renamed "METHOD (LABEL)" with labels[run] (e.g. the run folders), so that sweeps stay apart. */
pare_status runplot_separate_runs(runplot_points *p, const char *const *labels, pare_error *err);
void runplot_points_free(runplot_points *p);

/* The size-quality chart of the points: x the convention, y the metric, the "dense" series also as a
 * reference line. */
pare_status runplot_size_quality(const runplot_points *p, runplot_convention conv, int log_x, int log_y,
                                 const char *title, pare_plot **out, pare_error *err);

/* The budget of a result row from its "matrices" (kind, params, shapes; dense_params when recorded,
 * else orig_out·orig_in). items[i].name points into row. free(*items) when done. */
pare_status runplot_budget_items(json_t *row, pare_budget_item **items, int *n, pare_error *err);

/* Callbacks of runplot_auto; any may be NULL. */
typedef struct {
    int (*keep)(void *user, const char *path);   /* 0: leave this file alone (e.g. the recipe wrote it) */
    void (*wrote)(void *user, const char *path); /* a PNG was written */
    void (*fail)(void *user, const char *line);  /* a plot could not be made: one line saying why */
    void *user;
} runplot_sink;

/* The automatic plots of a run into out_dir: size_quality.png when at least two result rows have a
 * metric (parameters under the block-linear convention against the first metric, one series per
 * method, the dense model also as a reference line) and budget.png of the last compressed row
 * (method other than "dense"). A failure of one does not stop the other. */
void runplot_auto(json_t *results, const char *out_dir, const char *source, const runplot_sink *sink);

#endif

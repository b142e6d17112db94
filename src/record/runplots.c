/* Plots of run records (see runplots.h): run.json result rows turned into size-quality points and
 * budgets for src/plot/charts.c, and the automatic plots a run writes into its output folder. */
#include "runplots.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runrec.h"

const char *runplot_convention_label(runplot_convention c)
{
    return c == RUNPLOT_TOTAL ? "parameters (all: LLM-Pruner / LoRAP convention)"
                              : "parameters (decoder-block linears: Wanda / ASVD / SVD-LLM convention)";
}

void runplot_metric_key(const char *name, const char *data, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s %s", name ? name : "?", runrec_base_name(data));
}

int runplot_metric_matches(const char *name, const char *data, const char *want)
{
    if (!name || !want)
        return 0;
    size_t nl = strcspn(want, " ");
    if (strlen(name) != nl || strncmp(name, want, nl))
        return 0;
    if (!want[nl])
        return 1;
    return !strcmp(runrec_base_name(want + nl + 1), runrec_base_name(data));
}

static void metric_key(json_t *mt, char *buf, size_t cap)
{
    runplot_metric_key(json_string_value(json_object_get(mt, "name")), json_string_value(json_object_get(mt, "data")),
                       buf, cap);
}

static int metric_matches(json_t *mt, const char *want)
{
    return runplot_metric_matches(json_string_value(json_object_get(mt, "name")),
                                  json_string_value(json_object_get(mt, "data")), want);
}

static int grow(runplot_points *p)
{
    if (p->n < p->cap)
        return 0;
    int cap = p->cap ? 2 * p->cap : 16;
    pare_sq_point *pts = realloc(p->pts, (size_t)cap * sizeof *pts);
    if (!pts)
        return -1;
    p->pts = pts;
    char **series = realloc(p->series, (size_t)cap * sizeof *series);
    if (!series)
        return -1;
    p->series = series;
    int *run = realloc(p->run, (size_t)cap * sizeof *run);
    if (!run)
        return -1;
    p->run = run;
    p->cap = cap;
    return 0;
}

pare_status runplot_add_results(runplot_points *p, json_t *results, runplot_convention conv, const char *metric,
                                pare_error *err)
{
    if (!json_is_array(results))
        return pare_fail(err, PARE_EFORMAT, "not a pare run record (no results list)");
    if (metric && *metric && !p->metric[0])
        snprintf(p->metric, sizeof p->metric, "%s", metric);
    size_t i, k;
    json_t *row, *mt;
    json_array_foreach(results, i, row) {
        json_t *params = json_object_get(row, "params");
        json_t *pv = json_object_get(params, conv == RUNPLOT_TOTAL ? "total" : "block_linear");
        json_array_foreach(json_object_get(row, "metrics"), k, mt) {
            if (!p->metric[0])
                metric_key(mt, p->metric, sizeof p->metric);
            if (!metric_matches(mt, p->metric))
                continue;
            json_t *v = json_object_get(mt, "value");
            if (!json_is_number(pv) || !json_is_number(v))
                return pare_fail(err, PARE_EFORMAT, "result %zu (%s) has no parameter count or metric value", i + 1,
                                 json_string_value(json_object_get(row, "method")) ?: "?");
            if (grow(p))
                return pare_fail(err, PARE_ENOMEM, "out of memory reading results");
            char *name = strdup(json_string_value(json_object_get(row, "method")) ?: "?");
            if (!name)
                return pare_fail(err, PARE_ENOMEM, "out of memory reading results");
            p->series[p->n] = name;
            p->run[p->n] = p->runs;
            p->pts[p->n] = (pare_sq_point){name, json_number_value(pv), json_number_value(v)};
            p->n++;
            break; /* one point per row: the first metric that matches */
        }
    }
    p->runs++;
    return PARE_OK;
}

pare_status runplot_separate_runs(runplot_points *p, const char *const *labels, pare_error *err)
{
    int *clash = calloc((size_t)(p->n ? p->n : 1), sizeof *clash);
    if (!clash)
        return pare_fail(err, PARE_ENOMEM, "out of memory naming series");
    for (int i = 0; i < p->n; i++)
        for (int j = 0; j < p->n && !clash[i]; j++)
            clash[i] = p->run[j] != p->run[i] && strcmp(p->series[i], "dense") && !strcmp(p->series[i], p->series[j]);
    pare_status st = PARE_OK;
    for (int i = 0; i < p->n && !st; i++) {
        if (!clash[i])
            continue;
        char *name = NULL;
        if (asprintf(&name, "%s (%s)", p->series[i], labels[p->run[i]]) < 0)
            st = pare_fail(err, PARE_ENOMEM, "out of memory naming series");
        else {
            free(p->series[i]);
            p->series[i] = name;
            p->pts[i].series = name;
        }
    }
    free(clash);
    return st;
}

void runplot_points_free(runplot_points *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->series[i]);
    free(p->series);
    free(p->pts);
    free(p->run);
    memset(p, 0, sizeof *p);
}

pare_status runplot_size_quality(const runplot_points *p, runplot_convention conv, int log_x, int log_y,
                                 const char *title, pare_plot **out, pare_error *err)
{
    if (p->n < 1)
        return pare_fail(err, PARE_EINVAL, "no result has %s%s%s", p->metric[0] ? "the metric '" : "a metric",
                         p->metric, p->metric[0] ? "'" : "");
    pare_sq_opts o = {.title = title ? title : "size against quality",
                      .x_label = runplot_convention_label(conv),
                      .y_label = p->metric,
                      .log_x = log_x,
                      .log_y = log_y,
                      .reference = "dense"};
    return pare_chart_size_quality(p->pts, p->n, &o, out, err);
}

pare_status runplot_budget_items(json_t *row, pare_budget_item **items, int *n, pare_error *err)
{
    *items = NULL;
    *n = 0;
    json_t *mats = json_object_get(row, "matrices");
    size_t count = json_array_size(mats);
    if (!count)
        return pare_fail(err, PARE_EFORMAT, "result '%s' records no matrices",
                         json_string_value(json_object_get(row, "method")) ?: "?");
    pare_budget_item *it = calloc(count, sizeof *it);
    if (!it)
        return pare_fail(err, PARE_ENOMEM, "out of memory for a budget");
    size_t i;
    json_t *mt;
    json_array_foreach(mats, i, mt) {
        const char *kind = json_string_value(json_object_get(mt, "kind")) ?: "dense";
        json_int_t out = json_integer_value(json_object_get(mt, "out")),
                   in = json_integer_value(json_object_get(mt, "in"));
        json_int_t oo = json_integer_value(json_object_get(mt, "orig_out")),
                   oi = json_integer_value(json_object_get(mt, "orig_in"));
        json_t *dp = json_object_get(mt, "dense_params"), *kp = json_object_get(mt, "params");
        if (!json_is_number(kp) || oo <= 0 || oi <= 0) {
            free(it);
            return pare_fail(err, PARE_EFORMAT, "matrix %zu of result '%s' lacks params or its shape as loaded", i + 1,
                             json_string_value(json_object_get(row, "method")) ?: "?");
        }
        if (!strcmp(kind, "dense") && (out < oo || in < oi))
            kind = "sliced";
        it[i] = (pare_budget_item){.name = json_string_value(json_object_get(mt, "name")) ?: "?",
                                   .kind = kind,
                                   .dense = json_is_number(dp) ? json_number_value(dp) : (double)oo * (double)oi,
                                   .kept = json_number_value(kp)};
    }
    *items = it;
    *n = (int)count;
    return PARE_OK;
}

/* Writes p (destroyed here) to dir/name unless the sink says to leave that file; reports through the sink. */
static void write_plot(pare_plot *p, const char *dir, const char *name, const char *source, const runplot_sink *k)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pare_error err = {0};
    if (k->keep && !k->keep(k->user, path)) {
        /* the recipe made its own */
    } else if (pare_plot_write_png(p, path, 0, 0, &(pare_png_meta){.source = source}, &err)) {
        char line[1400];
        snprintf(line, sizeof line, "plot %s not written: %s", name, err.msg);
        if (k->fail)
            k->fail(k->user, line);
    } else if (k->wrote) {
        k->wrote(k->user, path);
    }
    pare_plot_destroy(p);
}

void runplot_auto(json_t *results, const char *out_dir, const char *source, const runplot_sink *sink)
{
    static const runplot_sink none = {0};
    const runplot_sink *k = sink ? sink : &none;
    pare_error err = {0};
    char line[1400];
    runplot_points pts = {0};
    pare_plot *p = NULL;
    if (runplot_add_results(&pts, results, RUNPLOT_BLOCK, NULL, &err) ||
        (pts.n >= 2 && runplot_size_quality(&pts, RUNPLOT_BLOCK, 0, 0, NULL, &p, &err))) {
        snprintf(line, sizeof line, "plot size_quality.png not written: %s", err.msg);
        if (k->fail)
            k->fail(k->user, line);
    } else if (p) {
        write_plot(p, out_dir, "size_quality.png", source, k);
    }
    runplot_points_free(&pts);
    /* the budget of the last compressed configuration */
    json_t *last = NULL, *row;
    size_t i;
    json_array_foreach(results, i, row) {
        const char *method = json_string_value(json_object_get(row, "method"));
        if (method && strcmp(method, "dense"))
            last = row;
    }
    if (!last)
        return;
    pare_budget_item *items = NULL;
    int n = 0;
    p = NULL;
    if (runplot_budget_items(last, &items, &n, &err) ||
        pare_chart_budget_items(items, n, json_string_value(json_object_get(last, "method")), &p, &err)) {
        snprintf(line, sizeof line, "plot budget.png not written: %s", err.msg);
        if (k->fail)
            k->fail(k->user, line);
    } else {
        write_plot(p, out_dir, "budget.png", source, k);
    }
    free(items);
}

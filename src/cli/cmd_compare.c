/* `pare compare OUT1 OUT2 ...`: one table of the result rows of several run records (run.json):
 * method, parameters under both conventions, every metric; printed aligned, or written as CSV or
 * Markdown (atomically) for papers and docs/results.md. An OUT of `pare run --emit-jobs` (its points in
 * OUT/points/NAME) counts as one run made of its points' rows. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fileio.h"
#include "record/runplots.h"
#include "record/runrec.h"

typedef struct {
    char **cells; /* [rows * cols] */
    int rows, cols, cap;
    char **head;
} table;

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* The column of a metric ("ppl tiny_test.txt"), added when new. */
static int metric_col(table *t, const char *key, int fixed)
{
    for (int c = fixed; c < t->cols; c++)
        if (!strcmp(t->head[c], key))
            return c;
    char **h = realloc(t->head, (size_t)(t->cols + 1) * sizeof *h);
    if (!h)
        return -1;
    t->head = h;
    t->head[t->cols] = strdup(key);
    /* widen every row already there */
    char **cells = calloc((size_t)(t->cap ? t->cap : 1) * (size_t)(t->cols + 1), sizeof *cells);
    if (!cells)
        return -1;
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->cols; c++)
            cells[(size_t)r * (t->cols + 1) + c] = t->cells[(size_t)r * t->cols + c];
    free(t->cells);
    t->cells = cells;
    return t->cols++;
}

static char **new_row(table *t)
{
    if (t->rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **cells = calloc((size_t)cap * (size_t)t->cols, sizeof *cells);
        if (!cells)
            return NULL;
        if (t->cells)
            memcpy(cells, t->cells, (size_t)t->rows * t->cols * sizeof *cells);
        free(t->cells);
        t->cells = cells;
        t->cap = cap;
    }
    return t->cells + (size_t)t->rows++ * t->cols;
}

/* The column of a metric: "NAME FILE-BASENAME" as the plots key it, "?" standing for a missing file. */
static void metric_key(json_t *mt, char *key, size_t cap)
{
    runplot_metric_key(json_string_value(json_object_get(mt, "name")),
                       json_string_value(json_object_get(mt, "data")) ?: "?", key, cap);
}

enum { C_RUN, C_STATUS, C_METHOD, C_RATIO, C_BLOCK, C_BLOCK_REMOVED, C_TOTAL, C_TOTAL_REMOVED, C_FIXED };
static const char *const FIXED_HEAD[] = {"run",          "status",        "method", "ratio",
                                         "block_linear", "block_removed", "total",  "total_removed"};

/* Cells for the numbers of a run record: counts as integers, fractions and metrics to 4 decimals, and
 * "-" for a value that is absent or null (run.json writes null for a metric that is not finite),
 * never 0. */
static char *count_cell(const json_t *v)
{
    return json_is_integer(v) ? dupf("%lld", (long long)json_integer_value(v)) : strdup("-");
}

static char *real_cell(const json_t *v) { return json_is_number(v) ? dupf("%.4f", json_number_value(v)) : strdup("-"); }

/* Adds the rows of one run record, under run_name (NULL: the record's own); returns 0 or prints the
 * problem and returns -1. */
static int add_record(table *t, const char *arg, const char *run_name)
{
    runrec rec;
    pare_error err = {0};
    if (runrec_load(arg, &rec, &err)) {
        cli_error("compare", &err);
        return -1;
    }
    json_t *results = rec.results;
    const char *status = rec.status;
    size_t i;
    json_t *row;
    json_array_foreach(results, i, row) {
        json_t *params = json_object_get(row, "params"), *metrics = json_object_get(row, "metrics");
        /* metric columns first (they may widen the table) */
        size_t k;
        json_t *mt;
        json_array_foreach(metrics, k, mt) {
            char key[512];
            metric_key(mt, key, sizeof key);
            if (metric_col(t, key, C_FIXED) < 0)
                goto oom;
        }
        char **cells = new_row(t);
        if (!cells)
            goto oom;
        cells[C_RUN] = strdup(run_name ? run_name : rec.name);
        cells[C_STATUS] = strdup(status);
        cells[C_METHOD] = strdup(json_string_value(json_object_get(row, "method")) ?: "?");
        /* the steps' ratios (or energies), joined like the method */
        char ratio[256] = "";
        json_t *step;
        json_array_foreach(json_object_get(row, "steps"), k, step) {
            json_t *v = json_object_get(step, "ratio");
            v = v ? v : json_object_get(step, "sparsity");
            v = v ? v : json_object_get(step, "energy");
            size_t used = strlen(ratio);
            if (json_is_number(v) && used < sizeof ratio - 24)
                snprintf(ratio + used, sizeof ratio - used, "%s%g", used ? "+" : "", json_number_value(v));
        }
        cells[C_RATIO] = strdup(ratio);
        cells[C_BLOCK] = count_cell(json_object_get(params, "block_linear"));
        cells[C_BLOCK_REMOVED] = real_cell(json_object_get(params, "block_linear_removed"));
        cells[C_TOTAL] = count_cell(json_object_get(params, "total"));
        cells[C_TOTAL_REMOVED] = real_cell(json_object_get(params, "total_removed"));
        json_array_foreach(metrics, k, mt) {
            char key[512];
            metric_key(mt, key, sizeof key);
            int c = metric_col(t, key, C_FIXED);
            free(cells[c]);
            cells[c] = real_cell(json_object_get(mt, "value"));
        }
    }
    if (json_array_size(results) == 0)
        fprintf(stderr, "pare compare: %s: the run has no results (status %s)\n", arg, status);
    runrec_free(&rec);
    return 0;
oom:
    runrec_free(&rec);
    fprintf(stderr, "pare compare: out of memory\n");
    return -1;
}

static int point_folder(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Adds a run: its record, or for the OUT of `pare run --emit-jobs` (no OUT/run.json, an OUT/points
 * folder) every point's record in name order, which is the recipe's order, as the rows of OUT. */
static int add_run(table *t, const char *arg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", arg);
    if (pare_file_exists(path) || !pare_is_dir(arg))
        return add_record(t, arg, NULL);
    snprintf(path, sizeof path, "%s/points", arg);
    if (!pare_is_dir(path))
        return add_record(t, arg, NULL);
    struct dirent **points;
    int n = scandir(path, &points, point_folder, alphasort);
    if (n <= 0) {
        fprintf(stderr, "pare compare: %s: no points in %s (run the jobs of pare run --emit-jobs first)\n", arg, path);
        if (n == 0)
            free(points);
        return -1;
    }
    char name[4200];
    snprintf(name, sizeof name, "%s", arg);
    for (size_t len = strlen(name); len > 1 && name[len - 1] == '/';)
        name[--len] = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char point[8400];
        snprintf(point, sizeof point, "%s/%s", path, points[i]->d_name);
        if (!rc && add_record(t, point, runrec_base_name(name)))
            rc = -1;
        free(points[i]);
    }
    free(points);
    return rc;
}

static int is_number(const char *s)
{
    double v;
    return s && pare_parse_double("cell", s, -HUGE_VAL, HUGE_VAL, &v, NULL) == PARE_OK;
}

static void write_table(const table *t, const char *format, FILE *f)
{
    if (!strcmp(format, "csv")) {
        for (int c = 0; c < t->cols; c++)
            fprintf(f, "%s%s", c ? "," : "", t->head[c]);
        fputc('\n', f);
        for (int r = 0; r < t->rows; r++) {
            for (int c = 0; c < t->cols; c++) {
                const char *v = t->cells[(size_t)r * t->cols + c] ? t->cells[(size_t)r * t->cols + c] : "";
                if (strpbrk(v, ",\"\n")) { /* RFC 4180 quoting */
                    fputs(c ? ",\"" : "\"", f);
                    for (const char *p = v; *p; p++)
                        fputs(*p == '"' ? "\"\"" : (char[]){*p, 0}, f);
                    fputc('"', f);
                } else
                    fprintf(f, "%s%s", c ? "," : "", v);
            }
            fputc('\n', f);
        }
        return;
    }
    int md = !strcmp(format, "markdown");
    int *w = calloc((size_t)t->cols, sizeof *w);
    if (!w)
        return;
    for (int c = 0; c < t->cols; c++) {
        w[c] = (int)strlen(t->head[c]);
        for (int r = 0; r < t->rows; r++) {
            const char *v = t->cells[(size_t)r * t->cols + c];
            if (v && (int)strlen(v) > w[c])
                w[c] = (int)strlen(v);
        }
    }
    for (int c = 0; c < t->cols; c++) {
        if (md)
            fprintf(f, "| %-*s ", w[c], t->head[c]);
        else
            fprintf(f, "%s%-*s", c ? "  " : "", w[c], t->head[c]);
    }
    fputs(md ? "|\n" : "\n", f);
    if (md) {
        for (int c = 0; c < t->cols; c++) {
            int num = t->rows && is_number(t->cells[c]);
            fputs("|", f);
            for (int k = 0; k < w[c] + 2; k++)
                fputc(num && k == w[c] + 1 ? ':' : '-', f);
        }
        fputs("|\n", f);
    }
    for (int r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++) {
            const char *v = t->cells[(size_t)r * t->cols + c] ? t->cells[(size_t)r * t->cols + c] : "";
            int num = is_number(v);
            if (md)
                fprintf(f, num ? "| %*s " : "| %-*s ", w[c], v);
            else
                fprintf(f, num ? "%s%*s" : "%s%-*s", c ? "  " : "", w[c], v);
        }
        fputs(md ? "|\n" : "\n", f);
    }
    free(w);
}

int cmd_compare(int argc, char **argv)
{
    const char *format = "text", *output = NULL;
    int help = 0;
    table t = {0};
    t.cols = C_FIXED;
    t.head = calloc(C_FIXED, sizeof *t.head);
    for (int c = 0; c < C_FIXED && t.head; c++)
        t.head[c] = strdup(FIXED_HEAD[c]);
    int n_runs = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            help = 1;
        else if (!strcmp(argv[i], "--csv") || !strcmp(argv[i], "--markdown")) {
            format = argv[i] + 2;
            if (i + 1 < argc && argv[i + 1][0] != '-')
                output = argv[++i];
            if (output && !strcmp(output, "-"))
                output = NULL;
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            format = argv[++i];
            if (strcmp(format, "text") && strcmp(format, "csv") && strcmp(format, "markdown")) {
                fprintf(stderr, "pare compare: --format %s: expected text, csv or markdown\n", format);
                rc = EXIT_BAD_INPUT;
            }
        } else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "pare compare: unknown option '%s' (pare compare --help)\n", argv[i]);
            rc = EXIT_BAD_INPUT;
        } else {
            n_runs++;
            if (add_run(&t, argv[i]))
                rc = EXIT_BAD_INPUT;
        }
    }
    if (help) {
        printf("usage: pare compare OUT [OUT ...] [--csv [FILE]] [--markdown [FILE]] [--format text|csv|markdown]\n"
               "                    [--output FILE]\n\n"
               "One row per result of each run record (OUT/run.json of pare run): method, block-linear and total\n"
               "parameters with the fraction removed, and a column per metric (\"ppl FILE\"). The text table goes to\n"
               "stdout; --csv / --markdown choose the format and, with FILE, write it there (atomically).\n"
               "OUT may be the --out of `pare run RECIPE --emit-jobs FILE`: its points (OUT/points/NAME) are merged\n"
               "into the rows of one run named OUT, in the recipe's order.\n");
    } else if (!rc && n_runs == 0) {
        fprintf(stderr, "pare compare: give one or more run output folders (or run.json files)\n");
        rc = EXIT_BAD_INPUT;
    } else if (!rc && output && !(rc = cli_check_out("compare", "output", output))) {
        pare_atomic_file f;
        pare_error err = {0};
        if (pare_atomic_open(&f, output, &err))
            rc = cli_error("compare", &err);
        else {
            write_table(&t, format, f.fp);
            if (pare_atomic_commit(&f, &err))
                rc = cli_error("compare", &err);
        }
    } else if (!rc)
        write_table(&t, format, stdout);
    for (int r = 0; r < t.rows; r++)
        for (int c = 0; c < t.cols; c++)
            free(t.cells[(size_t)r * t.cols + c]);
    for (int c = 0; c < t.cols && t.head; c++)
        free(t.head[c]);
    free(t.head);
    free(t.cells);
    return rc;
}

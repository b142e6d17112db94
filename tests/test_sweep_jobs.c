/* Sweeps on an existing scheduler (issue 17 §5): `pare run presets/sweep.lua --emit-jobs FILE` writes
 * one shell line per point, GNU parallel runs them, and `pare compare OUT` merges the point folders
 * into the table of the sequential sweep, to the bit; recipes without points and unwritable files are
 * refused by name. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"

/* A small sweep: 2 presets x 2 ratios (and the dense point) on the Qwen2 family fixture, its eval.txt
 * as calibration and evaluation text. Relative paths on purpose: the jobs must run them from anywhere. */
#define SWEEP_MODEL "tests/data/families/qwen2"
#define SWEEP_TEXT SWEEP_MODEL "/eval.txt"
#define SWEEP_ARGS                                                                                                     \
    "presets/sweep.lua", "--model", SWEEP_MODEL, "--set", "preset=lorap,svd", "--set", "ratios=0.2,0.4", "--set",      \
        "calib=" SWEEP_TEXT, "--set", "eval=" SWEEP_TEXT, "--set", "calib_samples=4", "--set", "calib_len=32",         \
        "--set", "window=32"

/* Whether a program is on PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096], full[4200];
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)n, p);
        snprintf(full, sizeof full, "%s/%s", n ? dir : ".", prog);
        if (access(full, X_OK) == 0)
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

/* Runs `parallel -j 2` with the jobs file as its stdin, from the temporary folder (not the checkout:
 * the jobs must not depend on where the scheduler starts them); returns its exit status. */
static int run_parallel(const char *jobs, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(jobs, O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chdir(harness_tmpdir()))
            _exit(125);
        execlp("parallel", "parallel", "--will-cite", "-j", "2", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static json_t *load_record(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/run.json", dir);
    return json_load_file(p, 0, NULL);
}

/* The result rows of the sequential run against those of the points, in order: method, parameter
 * counts and every metric value as recorded (doubles compared with ==). */
static void check_rows_equal(json_t *seq_rows, const char *out, int n_points)
{
    const char *names[] = {"1-dense", "2-lorap-0.2", "3-lorap-0.4", "4-svd-0.2", "5-svd-0.4"};
    CHECKF(n_points == 5 && json_array_size(seq_rows) == 5, "rows: %zu sequential, %d points",
           json_array_size(seq_rows), n_points);
    for (int k = 0; k < 5 && k < (int)json_array_size(seq_rows); k++) {
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/points/%s", out, names[k]);
        json_t *rec = load_record(dir);
        json_t *rows = json_object_get(rec, "results");
        CHECKF(json_array_size(rows) == 1, "%s: %zu result rows", names[k], json_array_size(rows));
        json_t *a = json_array_get(seq_rows, (size_t)k), *b = json_array_get(rows, 0);
        CHECKF(b && json_equal(json_object_get(a, "method"), json_object_get(b, "method")) &&
                   json_equal(json_object_get(a, "params"), json_object_get(b, "params")),
               "%s: method or parameter counts differ from the sequential sweep's row %d", names[k], k + 1);
        json_t *ma = json_object_get(a, "metrics"), *mb = json_object_get(b, "metrics");
        CHECKF(json_array_size(ma) == 1 && json_array_size(mb) == 1, "%s: one metric each", names[k]);
        double va = json_number_value(json_object_get(json_array_get(ma, 0), "value"));
        double vb = json_number_value(json_object_get(json_array_get(mb, 0), "value"));
        CHECKF(va == vb && va > 1, "%s: perplexity %.17g sequential, %.17g as a job", names[k], va, vb);
        json_decref(rec);
    }
}

/* The emitted jobs, run by GNU parallel at -j 2 into a folder whose path holds a space and both quotes,
 * give the sequential sweep's table: `pare compare OUT` prints what `pare compare SEQ` prints (both
 * folders named "sweep"), and every recorded perplexity and parameter count is the same. */
static void test_emit_jobs_parallel(void)
{
    if (!on_path("parallel"))
        SKIP("GNU parallel is not installed: run make deps (Debian package parallel)");
    char seq[1300], odd[1300], out[1400], jobs[1400], log[1300];
    snprintf(seq, sizeof seq, "%s", tmp_path("seq/sweep"));
    snprintf(odd, sizeof odd, "%s", tmp_path("it's a \"sweep\""));
    snprintf(out, sizeof out, "%s/sweep", odd);
    snprintf(jobs, sizeof jobs, "%s/jobs.txt", odd);
    snprintf(log, sizeof log, "%s", tmp_path("parallel.log"));
    CHECK(mkdir(odd, 0777) == 0);
    char *o = NULL, *e = NULL;
    int st = run_pare(&o, &e, (const char *const[]){"run", SWEEP_ARGS, "--out", seq, "--quiet", NULL});
    CHECKF(st == 0, "sequential sweep: exit %d: %s", st, e);
    free(o);
    free(e);
    st = run_pare(&o, &e, (const char *const[]){"run", SWEEP_ARGS, "--emit-jobs", jobs, "--out", out, NULL});
    CHECKF(st == 0, "--emit-jobs: exit %d: %s", st, e);
    free(o);
    free(e);
    size_t len = 0;
    char *text = (char *)fixture_read(jobs, &len);
    int lines = 0;
    for (size_t i = 0; text && i < len; i++)
        lines += text[i] == '\n';
    CHECKF(lines == 5 && text && !strncmp(text, "cd '/", 5), "jobs file: %d lines: %.300s", lines, text ? text : "");
    free(text);
    st = run_parallel(jobs, log);
    char *plog = (char *)fixture_read(log, &len);
    CHECKF(st == 0, "parallel -j 2 < jobs: exit %d: %.2000s", st, plog ? plog : "");
    free(plog);
    char *seq_table = NULL, *jobs_table = NULL;
    st = run_pare(&seq_table, &e, (const char *const[]){"compare", seq, NULL});
    CHECKF(st == 0, "compare SEQ: %s", e);
    free(e);
    st = run_pare(&jobs_table, &e, (const char *const[]){"compare", out, NULL});
    CHECKF(st == 0, "compare OUT: %s", e);
    free(e);
    CHECKF(seq_table && jobs_table && !strcmp(seq_table, jobs_table) && strstr(seq_table, "svd"),
           "tables differ:\n%s\nvs\n%s", seq_table ? seq_table : "", jobs_table ? jobs_table : "");
    free(seq_table);
    free(jobs_table);
    json_t *rec = load_record(seq);
    int n_points = 0;
    char pdir[1500];
    snprintf(pdir, sizeof pdir, "%s/points", out);
    DIR *d = opendir(pdir);
    for (struct dirent *ent; d && (ent = readdir(d));)
        n_points += ent->d_name[0] != '.';
    if (d)
        closedir(d);
    check_rows_equal(json_object_get(rec, "results"), out, n_points);
    json_decref(rec);
}

/* --emit-jobs refuses, with one line naming the culprit and exit 2, a recipe that declares no points,
 * points that are not folder names or whose values their declaration refuses, a missing preset, a jobs
 * file that cannot be written and a missing --out; a refused emission leaves an existing jobs file as
 * it was. */
static void test_emit_jobs_refusals(void)
{
    char jobs[1300], out[1300], recipe[1300], bad_names[1300];
    snprintf(jobs, sizeof jobs, "%s", tmp_path("jobs.txt"));
    snprintf(out, sizeof out, "%s", tmp_path("sweep"));
    snprintf(recipe, sizeof recipe, "%s", tmp_path("no_points.lua"));
    snprintf(bad_names, sizeof bad_names, "%s", tmp_path("bad_names.lua"));
    const char *plain = "params{ratio = {0.2, \"ratio\"}}\nfunction run(p) end\n";
    const char *escaping = "params{ratio = {0.2, \"ratio\"}}\nfunction run(p) end\n"
                           "function points(p) return {{name = \"../x\", set = {ratio = 0.3}}} end\n";
    CHECK(fixture_write_raw(recipe, plain, strlen(plain)) == 0);
    CHECK(fixture_write_raw(bad_names, escaping, strlen(escaping)) == 0);
    CHECK(fixture_write_raw(jobs, "old\n", 4) == 0);
    expect_pare_error(
        (const char *const[]){"run", recipe, "--model", SWEEP_MODEL, "--emit-jobs", jobs, "--out", out, NULL},
        (const char *const[]){recipe, "declares no points", NULL}, 1);
    expect_pare_error(
        (const char *const[]){"run", bad_names, "--model", SWEEP_MODEL, "--emit-jobs", jobs, "--out", out, NULL},
        (const char *const[]){bad_names, "../x", "folder name", NULL}, 1);
    size_t len = 0;
    char *kept = (char *)fixture_read(jobs, &len);
    CHECKF(kept && len == 4 && !memcmp(kept, "old\n", 4), "the jobs file changed after a refusal");
    free(kept);
    char nowhere[1400];
    snprintf(nowhere, sizeof nowhere, "%s/no-such-folder/jobs.txt", harness_tmpdir());
    expect_pare_error((const char *const[]){"run", SWEEP_ARGS, "--emit-jobs", nowhere, "--out", out, NULL},
                      (const char *const[]){"--emit-jobs", nowhere, "cannot write", NULL}, 1);
    expect_pare_error((const char *const[]){"run", SWEEP_ARGS, "--emit-jobs", jobs, NULL},
                      (const char *const[]){"--emit-jobs needs --out", NULL}, 1);
    /* a point value its declaration refuses, and a sweep over a preset that does not exist */
    const char *mistyped = "params{ratio = {0.2, \"ratio\", max = 0.9}}\nfunction run(p) end\n"
                           "function points(p) return {{name = \"a\", set = {ratio = 0.95}}} end\n";
    CHECK(fixture_write_raw(recipe, mistyped, strlen(mistyped)) == 0);
    expect_pare_error(
        (const char *const[]){"run", recipe, "--model", SWEEP_MODEL, "--emit-jobs", jobs, "--out", out, NULL},
        (const char *const[]){recipe, "point 'a'", "ratio must be at most 0.9", NULL}, 1);
    expect_pare_error((const char *const[]){"run", SWEEP_ARGS, "--set", "preset=no_such_preset", "--emit-jobs", jobs,
                                            "--out", out, NULL},
                      (const char *const[]){"sweep.lua", "points(p)", "no_such_preset", NULL}, 0);
}

/* Part of suite lua (called from test_lua.c's suite_lua). */
void suite_lua_jobs(void);
void suite_lua_jobs(void)
{
    RUN(test_emit_jobs_parallel);
    RUN(test_emit_jobs_refusals);
}

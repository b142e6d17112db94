/* `pare run`: Lua recipes through ./pare. A preset reproduces `pare compress` exactly, --set checks
 * types, ranges and choices naming the parameter, script errors carry file:line and a traceback,
 * core errors name the pare function, --help lists the declarations, Ctrl-C exits 130; hostile
 * recipes (progress hooks closing what an operation holds, unfit records, pcall loops) get errors. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/sha256.h"
#include "fixture.h"
#include "harness.h"

static const char *write_recipe(const char *name, const char *src)
{
    const char *p = tmp_path(name);
    CHECK(fixture_write_raw(p, src, strlen(src)) == 0);
    return p;
}

/* The number after "perplexity" on a recipe's stdout (presets print it with 17 digits), or -1. */
static double recipe_ppl(const char *out)
{
    const char *p = out ? strstr(out, "perplexity") : NULL;
    return p ? strtod(p + strlen("perplexity"), NULL) : -1;
}

static void expect_fail(const char *const *args, const char *const *needles) { expect_pare_error(args, needles, 0); }

/* presets/lorap.lua and presets/svd.lua give `pare compress`'s parameters and perplexity for the same
 * settings (same calibration windows, same decisions), on LLaMA and GPT-2 fixtures. */
static void test_preset_matches_compress(void)
{
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "she sells sea shells by the sea shore and the shells she sells are sea shells ", 8000);
    static const struct {
        const char *preset, *method, *ratio;
    } cases[] = {
        {"presets/lorap.lua", "lorap", "0.4"}, {"presets/svd.lua", "svd", "0.3"}, {"presets/svd.lua", "asvd", "0.5"}};
    for (int g = 0; g < 2; g++) {
        const char *d = fixture_hf_dir(g ? "lgpt2" : "lllama", g);
        for (int c = 0; c < 3; c++) {
            const char *cargs[] = {"compress", "--model",      d,          "--method", cases[c].method,
                                   "--ratio",  cases[c].ratio, "--calib",  text,       "--calib-samples",
                                   "4",        "--calib-len",  "32",       "--seed",   "7",
                                   "--eval",   text,           "--window", "32",       "--json",
                                   NULL};
            char *out = NULL, *err = NULL;
            int st = run_pare(&out, &err, cargs);
            json_error_t je;
            json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
            CHECKF(j != NULL, "compress %s: exit %d: %s", cases[c].method, st, err);
            double want = j ? json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl")) : 0;
            json_int_t after = j ? json_integer_value(json_object_get(json_object_get(j, "params"), "block_linear_"
                                                                                                    "after"))
                                 : 0;
            json_decref(j);
            free(out);
            free(err);
            char set_ratio[64], set_method[64], after_s[64];
            snprintf(set_ratio, sizeof set_ratio, "ratio=%s", cases[c].ratio);
            snprintf(set_method, sizeof set_method, "method=%s", cases[c].method);
            char set_calib[1300], set_eval[1300];
            snprintf(set_calib, sizeof set_calib, "calib=%s", text);
            snprintf(set_eval, sizeof set_eval, "eval=%s", text);
            const char *rargs[] = {"run",   cases[c].preset, "--model", d,         "--set", set_ratio,
                                   "--set", set_method,      "--set",   set_calib, "--set", "calib_samples=4",
                                   "--set", "calib_len=32",  "--set",   "seed=7",  "--set", set_eval,
                                   "--set", "window=32",     "--quiet", NULL};
            st = run_pare(&out, &err, rargs);
            double got = recipe_ppl(out);
            CHECKF(st == 0, "run %s %s: exit %d: %s", cases[c].preset, cases[c].method, st, err);
            CHECKF(want > 1 && fabs(got - want) <= 1e-12 * want, "%s %s (%s): recipe ppl %.17g, pare compress %.17g",
                   cases[c].preset, cases[c].method, g ? "gpt2" : "llama", got, want);
            snprintf(after_s, sizeof after_s, "-> %lld (", (long long)after);
            CHECKF(out && strstr(out, after_s), "block linears after (%lld) differ: %s", (long long)after, out);
            free(out);
            free(err);
        }
    }
}

/* A preset run with factor_dtype=BF16 evaluates the model as its export stores it: the perplexity of
 * `pare compress --factor-dtype bf16`, and OUT/model records BF16; hf-dense with it is refused first. */
static void test_preset_factor_dtype(void)
{
    const char *text = tmp_path("calib.txt");
    fixture_write_pattern(text, "she sells sea shells by the sea shore and the shells she sells are sea shells ", 8000);
    const char *d = fixture_hf_dir("lfdt", 0);
    const char *cargs[] = {"compress", "--model",  d,    "--method",       "svd",  "--ratio", "0.3", "--eval",
                           text,       "--window", "32", "--factor-dtype", "bf16", "--json",  NULL};
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, cargs);
    json_error_t je;
    json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
    CHECKF(j != NULL, "compress: exit %d: %s", st, err);
    double want = j ? json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl")) : 0;
    json_decref(j);
    free(out);
    free(err);
    char set_eval[1300];
    snprintf(set_eval, sizeof set_eval, "eval=%s", text);
    const char *run_out = tmp_path("fdt-run");
    const char *rargs[] = {
        "run",    "presets/svd.lua", "--model",   d,       "--set",       "ratio=0.3", "--set",
        set_eval, "--set",           "window=32", "--set", "export=true", "--set",     "factor_dtype=BF16",
        "--out",  run_out,           "--quiet",   NULL};
    st = run_pare(&out, &err, rargs);
    double got = recipe_ppl(out);
    CHECKF(st == 0, "run: exit %d: %s", st, err);
    CHECKF(want > 1 && fabs(got - want) <= 1e-12 * want, "recipe ppl %.17g, pare compress --factor-dtype bf16 %.17g",
           got, want);
    free(out);
    free(err);
    char model_dir[1300];
    snprintf(model_dir, sizeof model_dir, "%s/model", run_out);
    json_t *man = fixture_read_json(model_dir, "pare.json");
    const char *rec = man ? json_string_value(json_object_get(man, "factor_dtype")) : NULL;
    CHECKF(rec && !strcmp(rec, "BF16"), "OUT/model/pare.json factor_dtype %s", rec ? rec : "missing");
    json_decref(man);
    expect_fail((const char *const[]){"run", "presets/svd.lua", "--model", d, "--set", "export=true", "--set",
                                      "format=hf-dense", "--set", "factor_dtype=BF16", "--out", tmp_path("fdt-hf"), NULL},
                (const char *const[]){"factor_dtype BF16 applies to format pare", NULL});
}

/* --set refuses unknown names, wrong types, values out of range and outside the choices, naming the
 * parameter and the bound; --model is required. */
static void test_set_checks(void)
{
    const char *r = write_recipe("params.lua", "params {\n"
                                               "  ratio = {0.2, \"fraction to remove\", min = 0, max = 0.95},\n"
                                               "  samples = {16, \"windows\", min = 1},\n"
                                               "  mode = {\"fast\", \"how\", choices = {\"fast\", \"exact\"}},\n"
                                               "  verbose = {false, \"chatty\"},\n"
                                               "}\n"
                                               "function run(p) print(p.ratio, p.samples, p.mode, p.verbose, "
                                               "math.type(p.samples)) end\n");
    const char *d = "unused-model";
    char max_s[64];
    snprintf(max_s, sizeof max_s, "at most %g", 0.95);
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "ratio=abc", NULL},
                (const char *const[]){"ratio", "number", "abc", NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "ratio=0.99", NULL},
                (const char *const[]){"ratio", max_s, NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "ratio=-1", NULL},
                (const char *const[]){"ratio", "at least 0", NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "samples=2.5", NULL},
                (const char *const[]){"samples", "integer", NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "mode=slow", NULL},
                (const char *const[]){"mode", "fast, exact", NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "verbose=perhaps", NULL},
                (const char *const[]){"verbose", "boolean", NULL});
    expect_fail((const char *const[]){"run", r, "--model", d, "--set", "ratoi=0.1", NULL},
                (const char *const[]){"ratoi", "ratio", NULL});
    expect_fail((const char *const[]){"run", r, NULL}, (const char *const[]){"--model", NULL});
    /* good overrides arrive typed */
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", r, "--model", d, "--set", "ratio=0.5", "--set", "samples=3", "--set",
                                            "mode=exact", "--set", "verbose=yes", NULL});
    CHECKF(st == 0 && out && strstr(out, "0.5\t3\texact\ttrue\tinteger"), "exit %d, stdout %s, stderr %s", st, out, err);
    free(out);
    free(err);
    /* a bad declaration is a script error at its line */
    const char *bad = write_recipe("baddecl.lua", "params {\n  ratio = {0.2, \"x\", mx = 1},\n}\nfunction run(p) "
                                                  "end\n");
    char where[1300];
    snprintf(where, sizeof where, "%s:1:", bad);
    expect_fail((const char *const[]){"run", bad, "--model", d, NULL},
                (const char *const[]){where, "unknown field 'mx'", NULL});
    /* a type name is the whole string: "number\0" (a NUL inside a Lua string) is not "number" */
    bad = write_recipe("badtype.lua", "params {\n  ratio = {0.2, \"x\", type = \"number\\0\"},\n}\nfunction run(p) "
                                      "end\n");
    expect_fail((const char *const[]){"run", bad, "--model", d, NULL},
                (const char *const[]){"type must be number, integer, string or boolean", NULL});
}

/* A script error shows file:line and a traceback through the recipe's functions; a core error names
 * the pare function and the offending value; reading an undeclared parameter is an error. */
static void test_script_errors(void)
{
    const char *d = fixture_hf_dir("lerr", 0);
    const char *r = write_recipe("boom.lua", "local function helper(t)\n"
                                             "  return t.missing.field\n"
                                             "end\n"
                                             "function run(p)\n"
                                             "  helper({})\n"
                                             "end\n");
    char l2[1300], l5[1300];
    snprintf(l2, sizeof l2, "%s:2:", r);
    snprintf(l5, sizeof l5, "%s:5:", r);
    expect_fail((const char *const[]){"run", r, "--model", d, NULL},
                (const char *const[]){l2, "stack traceback", l5, "helper", NULL});
    const char *c = write_recipe("core.lua", "function run(p)\n"
                                             "  local m <close> = pare.load(p.model)\n"
                                             "  m:compress{method = 'svd', ratio = 0.99}\n"
                                             "end\n");
    char l3[1300];
    snprintf(l3, sizeof l3, "%s:3:", c);
    expect_fail((const char *const[]){"run", c, "--model", d, NULL},
                (const char *const[]){l3, "pare.compress: ratio 0.99 cannot be met", "largest feasible ratio", NULL});
    const char *o = write_recipe("opt.lua", "function run(p)\n  local m <close> = pare.load(p.model)\n"
                                            "  m:compress{method = 'svd', ratoi = 0.3}\nend\n");
    expect_fail((const char *const[]){"run", o, "--model", d, NULL},
                (const char *const[]){"pare.compress: unknown option 'ratoi'", NULL});
    const char *u = write_recipe("undecl.lua", "params { ratio = {0.2, \"r\"} }\nfunction run(p) return p.ratoi end\n");
    expect_fail((const char *const[]){"run", u, "--model", d, NULL},
                (const char *const[]){"p.ratoi: no such parameter", NULL});
    /* p is read-only for declared parameters too (a plain table let p.ratio = 1 through; found by fuzzing),
     * while reading, pairs(p) and a nil optional parameter work */
    const char *w = write_recipe("write.lua", "params { ratio = {0.2, \"r\"}, opt = {nil, \"o\", type = \"string\", "
                                              "optional = true} }\n"
                                              "function run(p)\n"
                                              "  local n = 0\n"
                                              "  for k, v in pairs(p) do n = n + 1 end\n"
                                              "  assert(n == 2 and p.ratio == 0.2 and p.opt == nil, 'reading p')\n"
                                              "  p.ratio = 1\n"
                                              "end\n");
    char l6[1300];
    snprintf(l6, sizeof l6, "%s:6:", w);
    expect_fail((const char *const[]){"run", w, "--model", d, NULL},
                (const char *const[]){l6, "p.ratio: parameters are read-only (use --set)", NULL});
    const char *s = write_recipe("syntax.lua", "function run(p)\n  local x = = 1\nend\n");
    char l2s[1300];
    snprintf(l2s, sizeof l2s, "%s:2:", s);
    expect_fail((const char *const[]){"run", s, "--model", d, NULL}, (const char *const[]){l2s, NULL});
    expect_fail((const char *const[]){"run", tmp_path("absent.lua"), NULL}, (const char *const[]){"absent.lua", NULL});
}

/* --help lists every declared parameter with its type, default, range and choices, and runs nothing. */
static void test_help_lists_params(void)
{
    const char *presets[] = {"presets/lorap.lua", "presets/svd.lua"};
    const char *want[2][6] = {{"ratio", "number", "0.2", "0.95", "lorap-magnitude", "calib"},
                              {"ratio", "method", "asvd", "svdllm", "eval", "model"}};
    for (int i = 0; i < 2; i++) {
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err, (const char *const[]){"run", presets[i], "--help", NULL});
        CHECKF(st == 0, "%s --help: exit %d: %s", presets[i], st, err);
        for (int k = 0; k < 6; k++)
            CHECKF(out && strstr(out, want[i][k]), "%s --help lacks '%s': %s", presets[i], want[i][k], out);
        free(out);
        free(err);
    }
    const char *r = write_recipe("help.lua", "description = 'a test recipe'\n"
                                             "params { level = {3, 'how hard', min = 1, max = 9} }\n"
                                             "function run(p) error('run must not be called by --help') end\n");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"run", r, "--help", NULL});
    CHECKF(st == 0 && out && strstr(out, "a test recipe") && strstr(out, "level") && strstr(out, "integer") &&
               strstr(out, "how hard") && strstr(out, "[1, 9]"),
           "exit %d: %s %s", st, out, err);
    free(out);
    free(err);
}

static json_t *load_run(const char *dir);

/* Ctrl-C during a long step cancels it through the core's progress callback: exit 130, no result. */
static void test_run_interrupt(void)
{
    NEED_SHARED();
    const char *r = write_recipe("long.lua", "function run(p)\n  local m <close> = pare.load(p.model)\n"
                                             "  local e = m:eval(p.data)\n  print('perplexity', e.ppl)\nend\n"
                                             "params { data = {nil, 'text', type = 'string'} }\n");
    char set[1300];
    snprintf(set, sizeof set, "data=%s", shared_path("data/text/wikitext-2/wiki.test.raw"));
    char *out = NULL, *err = NULL;
    const char *dir = tmp_path("cancelled");
    int st = run_pare_signal(&out, &err,
                             (const char *const[]){"run", r, "--model", shared_path("models/ref-llama-12m"), "--set",
                                                   set, "--out", dir, NULL},
                             1500, SIGINT);
    CHECKF(st == 130, "exit %d; stderr: %s", st, err);
    CHECKF(err && strstr(err, "interrupted"), "stderr: %s", err);
    CHECKF(!out || !strstr(out, "perplexity"), "a result was printed: %s", out);
    json_t *j = load_run(dir);
    CHECKF(j && !strcmp(json_string_value(json_object_get(j, "status")) ?: "", "cancelled"), "run.json status: %s",
           j ? json_string_value(json_object_get(j, "status")) : "(no run.json)");
    CHECK(j && json_array_size(json_object_get(j, "results")) == 0);
    json_decref(j);
    free(out);
    free(err);
}

/* ---- run records -------------------------------------------------------------------------------- */

static json_t *load_run(const char *dir)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/run.json", dir);
    json_error_t je;
    return json_load_file(path, 0, &je);
}

/* A calibration / evaluation text in the test's folder (its own buffer: tmp_path's rotate). */
static const char *text_file(void)
{
    static char text[1200];
    snprintf(text, sizeof text, "%s", tmp_path("text.txt"));
    fixture_write_pattern(text, "she sells sea shells by the sea shore and the shells she sells are sea shells ", 6000);
    return text;
}

static void set_kv(char *buf, size_t cap, const char *k, const char *v) { snprintf(buf, cap, "%s=%s", k, v); }

/* Every function of the pare module, including its error messages (tests/lua/module.lua), on a
 * LLaMA and a GPT-2 fixture; m:eval and m:generate equal `pare eval` and `pare generate`. */
static void test_module_functions(void)
{
    static const char *const groups[] = {"load",      "info",    "eval",      "plan",        "clone",
                                         "calibrate", "spectra", "factorize", "prune",       "generate",
                                         "progress",  "record",  "task",      "factor_dtype"};
    const char *text = text_file();
    for (int g = 0; g < 2; g++) {
        const char *d = fixture_hf_dir(g ? "mgpt2" : "mllama", g);
        /* the CLI's answers, for the module to match */
        char ppl[64] = "", cont[512] = "";
        char *out = NULL, *err = NULL;
        int st = run_pare(
            &out, &err, (const char *const[]){"eval", "--model", d, "--data", text, "--window", "32", "--json", NULL});
        json_error_t je;
        json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
        CHECKF(j != NULL, "pare eval: %d %s", st, err);
        snprintf(ppl, sizeof ppl, "%.17g", json_number_value(json_object_get(j, "ppl")));
        json_decref(j);
        free(out);
        free(err);
        st = run_pare(&out, &err,
                      (const char *const[]){"generate", "--model", d, "--prompt", "ab", "-n", "8", "--json", NULL});
        j = st == 0 ? json_loads(out, 0, &je) : NULL;
        CHECKF(j != NULL, "pare generate: %d %s", st, err);
        snprintf(cont, sizeof cont, "%s", json_string_value(json_object_get(j, "continuation")) ?: "");
        json_decref(j);
        free(out);
        free(err);
        /* a four-item PIQA folder and the CLI's accuracy on it, for group "task" */
        char piqa[1200], acc[64] = "";
        snprintf(piqa, sizeof piqa, "%s", tmp_path(g ? "piqa-g" : "piqa-l"));
        mkdir(piqa, 0777);
        char pf[1300];
        snprintf(pf, sizeof pf, "%s/valid.jsonl", piqa);
        static const char JSONL[] = "{\"goal\": \"ab\", \"sol1\": \"ab ab\", \"sol2\": \"cd\"}\n"
                                    "{\"goal\": \"shells\", \"sol1\": \"sea\", \"sol2\": \"she sells\"}\n"
                                    "{\"goal\": \"x\", \"sol1\": \"y\", \"sol2\": \"z z\"}\n"
                                    "{\"goal\": \"the\", \"sol1\": \"sea\", \"sol2\": \"shore\"}\n";
        fixture_write_raw(pf, JSONL, sizeof JSONL - 1);
        snprintf(pf, sizeof pf, "%s/valid-labels.lst", piqa);
        fixture_write_raw(pf, "0\n1\n1\n0\n", 8);
        st = run_pare(&out, &err,
                      (const char *const[]){"eval", "--model", d, "--task", "piqa", "--task-data", piqa, "--json", NULL});
        j = st == 0 ? json_loads(out, 0, &je) : NULL;
        CHECKF(j != NULL, "pare eval --task: %d %s", st, err);
        snprintf(acc, sizeof acc, "%.17g", json_number_value(json_object_get(j, "acc")));
        json_decref(j);
        free(out);
        free(err);
        for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
            char set_text[1300], set_group[64], set_expect[600], dir[64];
            int task = !strcmp(groups[k], "task");
            set_kv(set_text, sizeof set_text, "text", task ? piqa : text);
            set_kv(set_group, sizeof set_group, "group", groups[k]);
            set_kv(set_expect, sizeof set_expect, "expect",
                   !strcmp(groups[k], "eval")       ? ppl
                   : !strcmp(groups[k], "generate") ? cont
                   : task                           ? acc
                                                    : "");
            snprintf(dir, sizeof dir, "mod-%d-%s", g, groups[k]);
            st = run_pare(&out, &err,
                          (const char *const[]){"run", "tests/lua/module.lua", "--model", d, "--set", set_text, "--set",
                                                set_group, "--set", set_expect, "--out", tmp_path(dir), "--quiet", NULL});
            char want[64];
            snprintf(want, sizeof want, "ok %s", groups[k]);
            CHECKF(st == 0 && out && strstr(out, want), "%s group %s: exit %d\n%s%s", g ? "gpt2" : "llama", groups[k],
                   st, out ? out : "", err ? err : "");
            free(out);
            free(err);
        }
    }
}

/* OUT/run.json of a preset run: status, recipe and model hashes (checked against the files), every
 * parameter, per-matrix decisions equal to what the model reports, metrics with protocol cards,
 * steps with wall times; log.txt and recipe.lua beside it; the export in OUT/model. */
static void test_run_record(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("rllama", 0);
    const char *out_dir = tmp_path("rec");
    char set_calib[1300], set_eval[1300];
    set_kv(set_calib, sizeof set_calib, "calib", text);
    set_kv(set_eval, sizeof set_eval, "eval", text);
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"run",     "presets/lorap.lua",
                                                        "--model", d,
                                                        "--set",   "ratio=0.4",
                                                        "--set",   set_calib,
                                                        "--set",   "calib_samples=4",
                                                        "--set",   "calib_len=32",
                                                        "--set",   "seed=5",
                                                        "--set",   set_eval,
                                                        "--set",   "window=32",
                                                        "--set",   "export=true",
                                                        "--out",   out_dir,
                                                        "--quiet", NULL});
    CHECKF(st == 0, "exit %d: %s", st, err);
    json_t *j = load_run(out_dir);
    CHECKF(j != NULL, "no run.json in %s", out_dir);
    if (!j)
        goto done;
    CHECK(!strcmp(json_string_value(json_object_get(j, "status")) ?: "", "complete"));
    char sha[65];
    pare_error e;
    CHECK(pare_sha256_file("presets/lorap.lua", sha, &e) == PARE_OK);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "recipe"), "sha256")) ?: "", sha));
    char wpath[1300];
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", d);
    CHECK(pare_sha256_file(wpath, sha, &e) == PARE_OK);
    json_t *model = json_array_get(json_object_get(j, "models"), 0);
    CHECKF(!strcmp(json_string_value(json_object_get(model, "weights_sha256")) ?: "", sha), "weights hash");
    snprintf(wpath, sizeof wpath, "%s/config.json", d);
    CHECK(pare_sha256_file(wpath, sha, &e) == PARE_OK);
    CHECKF(!strcmp(json_string_value(json_object_get(model, "config_sha256")) ?: "", sha), "config hash");
    json_t *params = json_object_get(j, "params");
    CHECK(json_real_value(json_object_get(params, "ratio")) == 0.4);
    CHECK(json_integer_value(json_object_get(params, "calib_samples")) == 4);
    CHECK(json_integer_value(json_object_get(j, "seed")) == 5);
    CHECK(json_is_string(json_object_get(params, "split")) == 0 &&
          json_real_value(json_object_get(params, "split")) == 3.0);
    /* one result row: lorap, its decisions and its perplexity as printed */
    json_t *rows = json_object_get(j, "results");
    CHECKF(json_array_size(rows) == 1, "%zu rows", json_array_size(rows));
    json_t *row = json_array_get(rows, 0);
    CHECK(!strcmp(json_string_value(json_object_get(row, "method")) ?: "", "lorap"));
    json_t *mats = json_object_get(row, "matrices");
    size_t i;
    json_t *mt;
    long long sum = 0;
    int factorized = 0, sliced = 0;
    json_array_foreach(mats, i, mt) {
        sum += json_integer_value(json_object_get(mt, "params"));
        const char *kind = json_string_value(json_object_get(mt, "kind"));
        if (kind && !strcmp(kind, "factorized")) {
            long long r = json_integer_value(json_object_get(mt, "rank"));
            long long o = json_integer_value(json_object_get(mt, "out")),
                      in = json_integer_value(json_object_get(mt, "in"));
            factorized += r >= 1 && json_integer_value(json_object_get(mt, "params")) >= r * (o + in);
        }
        sliced += json_integer_value(json_object_get(mt, "out")) <
                      json_integer_value(json_object_get(mt, "orig_out")) ||
                  json_integer_value(json_object_get(mt, "in")) < json_integer_value(json_object_get(mt, "orig_in"));
    }
    /* LoRAP: attention factorized (where the rank stays below break-even), the FFN's three matrices sliced */
    CHECKF(json_array_size(mats) == 7 * 2 && factorized >= 2 && factorized <= 4 * 2 && sliced == 3 * 2,
           "%zu matrices, %d factorized, %d sliced", json_array_size(mats), factorized, sliced);
    CHECK(sum == json_integer_value(json_object_get(json_object_get(row, "params"), "block_linear")));
    json_t *metric = json_array_get(json_object_get(row, "metrics"), 0);
    double ppl = json_real_value(json_object_get(metric, "value"));
    char printed[64];
    snprintf(printed, sizeof printed, "%.17g", ppl);
    CHECKF(out && strstr(out, printed), "printed perplexity differs from run.json's %s: %s", printed, out);
    json_t *card = json_object_get(metric, "card");
    CHECK(json_integer_value(json_object_get(card, "window")) == 32 &&
          json_integer_value(json_object_get(card, "predicted")) > 0);
    CHECK(json_is_string(json_object_get(card, "protocol")) && json_is_string(json_object_get(card, "data_sha256")));
    json_t *step0 = json_array_get(json_object_get(row, "steps"), 0);
    CHECK(json_integer_value(json_object_get(json_object_get(step0, "calib"), "seed")) == 5);
    /* steps with wall times, in order */
    const char *want[] = {"load", "compress", "eval", "export"};
    json_t *steps = json_object_get(j, "steps");
    CHECKF(json_array_size(steps) == 4, "%zu steps", json_array_size(steps));
    for (int k = 0; k < 4 && k < (int)json_array_size(steps); k++) {
        json_t *s = json_array_get(steps, (size_t)k);
        CHECKF(!strcmp(json_string_value(json_object_get(s, "step")) ?: "", want[k]), "step %d", k);
        CHECK(json_real_value(json_object_get(s, "wall_s")) >= 0);
    }
    CHECK(json_real_value(json_object_get(j, "wall_s")) > 0);
    char p2[1300];
    snprintf(p2, sizeof p2, "%s/log.txt", out_dir);
    size_t len = 0;
    unsigned char *log = fixture_read(p2, &len);
    CHECKF(log && strstr((char *)log, printed), "log.txt lacks the perplexity line");
    free(log);
    snprintf(p2, sizeof p2, "%s/recipe.lua", out_dir);
    CHECK(pare_sha256_file(p2, sha, &e) == PARE_OK &&
          !strcmp(sha, json_string_value(json_object_get(json_object_get(j, "recipe"), "sha256")) ?: ""));
    snprintf(p2, sizeof p2, "%s/model/pare.json", out_dir);
    CHECKF(pare_file_exists(p2), "no export in OUT/model");
    json_decref(j);
done:
    free(out);
    free(err);
}

/* The same recipe, parameters and seed give the same decisions and metrics, bit for bit. */
static void test_run_reproducible(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("repro", 1);
    char set_calib[1300], set_eval[1300];
    set_kv(set_calib, sizeof set_calib, "calib", text);
    set_kv(set_eval, sizeof set_eval, "eval", text);
    json_t *runs[2] = {0};
    for (int k = 0; k < 2; k++) {
        char dir[32];
        snprintf(dir, sizeof dir, "repro%d", k);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err, (const char *const[]){"run",     "presets/sweep.lua",
                                                            "--model", d,
                                                            "--set",   "ratios=0.3,0.5",
                                                            "--set",   set_calib,
                                                            "--set",   "calib_samples=4",
                                                            "--set",   "calib_len=32",
                                                            "--set",   set_eval,
                                                            "--set",   "window=32",
                                                            "--out",   tmp_path(dir),
                                                            "--quiet", NULL});
        CHECKF(st == 0, "run %d: exit %d: %s", k, st, err);
        runs[k] = load_run(tmp_path(dir));
        free(out);
        free(err);
    }
    json_t *a = json_object_get(runs[0], "results"), *b = json_object_get(runs[1], "results");
    CHECKF(json_array_size(a) == 3, "sweep rows: %zu (dense + 2 ratios)", json_array_size(a));
    CHECKF(a && json_equal(a, b), "two runs of the same recipe differ in their results");
    CHECK(json_equal(json_object_get(runs[0], "params"), json_object_get(runs[1], "params")));
    /* the sweep's perplexity rises with the ratio */
    double p[3];
    for (int k = 0; k < 3; k++)
        p[k] = json_real_value(
            json_object_get(json_array_get(json_object_get(json_array_get(a, (size_t)k), "metrics"), 0), "value"));
    CHECKF(p[0] < p[2], "dense %g, ratio 0.5 %g", p[0], p[2]);
    json_decref(runs[0]);
    json_decref(runs[1]);
}

/* A finished run is not replaced without --overwrite; a folder locked by another run is refused; a
 * failed run says so in run.json with the error and traceback. */
static void test_run_refusals(void)
{
    const char *d = fixture_hf_dir("refuse", 0);
    const char *r = write_recipe("small.lua", "function run(p) local m <close> = pare.load(p.model) print('loaded') "
                                              "end\n");
    const char *dir = tmp_path("once");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"run", r, "--model", d, "--out", dir, "--quiet", NULL});
    CHECKF(st == 0, "first run: %d %s", st, err);
    free(out);
    free(err);
    expect_fail((const char *const[]){"run", r, "--model", d, "--out", dir, NULL},
                (const char *const[]){dir, "holds a finished run", "--overwrite", NULL});
    st = run_pare(&out, &err,
                  (const char *const[]){"run", r, "--model", d, "--out", dir, "--overwrite", "--quiet", NULL});
    CHECKF(st == 0, "--overwrite: %d %s", st, err);
    free(out);
    free(err);
    /* hold the lock as a running pare would */
    char lock[1300];
    snprintf(lock, sizeof lock, "%s/.pare-run.lock", dir);
    int fd = open(lock, O_RDWR | O_CREAT, 0666);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    expect_fail((const char *const[]){"run", r, "--model", d, "--out", dir, "--overwrite", NULL},
                (const char *const[]){dir, "in use by another pare process", NULL});
    if (fd >= 0)
        close(fd);
    json_t *j = load_run(dir);
    CHECKF(j && !strcmp(json_string_value(json_object_get(j, "status")) ?: "", "complete"), "the refused run touched "
                                                                                            "run.json");
    json_decref(j);
    /* failure */
    const char *bad = write_recipe("fails.lua", "function run(p)\n  local m <close> = pare.load(p.model)\n"
                                                "  m:factorize{rank = 100000, matrices = 'q'}\nend\n");
    const char *fdir = tmp_path("failed");
    expect_fail((const char *const[]){"run", bad, "--model", d, "--out", fdir, NULL},
                (const char *const[]){"pare.factorize: rank 100000 exceeds min(", "run.json", NULL});
    j = load_run(fdir);
    const char *emsg = j ? json_string_value(json_object_get(j, "error")) : NULL;
    CHECKF(j && !strcmp(json_string_value(json_object_get(j, "status")) ?: "", "failed") && emsg &&
               strstr(emsg, "fails.lua:3:") && strstr(emsg, "stack traceback"),
           "failed run.json: %s", emsg ? emsg : "(none)");
    json_decref(j);
}

/* pare run --sandbox: tests/lua/sandbox.lua tries every escape (processes, libraries, debug, binary
 * chunks, files outside what the user named, symlinks, a changed package.path) and every allowed
 * action; a preset gives the same perplexity sandboxed as not. */
static void test_run_sandbox(void)
{
    const char *d = fixture_hf_dir("sbx", 0);
    fixture_hf_dir("other", 0); /* a model beside it that the recipe was not given */
    const char *text = text_file();
    const char *outside = tmp_path("outside.txt");
    CHECK(write_bytes(outside, "return 'secret'\n", 16) == 0);
    CHECK(write_bytes(tmp_path("outside.lua"), "return 'escaped'\n", 17) == 0);
    char link[1300];
    snprintf(link, sizeof link, "%s/link", d);
    CHECK(symlink(outside, link) == 0);
    char set_text[1300];
    set_kv(set_text, sizeof set_text, "text", text);
    const char *dir = tmp_path("sandboxed");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "tests/lua/sandbox.lua", "--sandbox", "--model", d, "--set",
                                            set_text, "--out", dir, "--quiet", NULL});
    int expected = 0, unexpected = 0;
    for (const char *p = out; p && (p = strstr(p, "as-expected")); p++)
        expected++;
    for (const char *p = out; p && (p = strstr(p, "UNEXPECTED")); p++)
        unexpected++;
    CHECKF(st == 0 && out && strstr(out, "sandbox done") && unexpected == 0 && expected == 23,
           "exit %d, %d as expected, %d unexpected:\n%s%s", st, expected, unexpected, out ? out : "", err ? err : "");
    CHECKF(out && strstr(out, "io.open outside: ") && strstr(out, "sandbox: ") && strstr(out, "outside.txt is outside"),
           "the refusal names the path:\n%s", out ? out : "");
    char note[1300];
    snprintf(note, sizeof note, "%s/note.txt", dir);
    CHECK(access(note, F_OK) == 0);
    CHECK(access(tmp_path("written.txt"), F_OK) != 0 && access(tmp_path("exported"), F_OK) != 0);
    free(out);
    free(err);
    /* --allow without --sandbox, and of a missing path, are errors */
    expect_fail((const char *const[]){"run", "tests/lua/sandbox.lua", "--allow", "/tmp", "--model", d, NULL},
                (const char *const[]){"--allow only makes sense with --sandbox", NULL});
    /* a preset runs sandboxed with the same result */
    char set_eval[1300];
    set_kv(set_eval, sizeof set_eval, "eval", text);
    double ppl[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *o = tmp_path(k ? "svd-sandboxed" : "svd-plain");
        const char *args[] = {
            "run",    "presets/svd.lua", "--model",   d,       "--set", "ratio=0.3", "--set",
            set_eval, "--set",           "window=32", "--out", o,       "--quiet",   k ? "--sandbox" : NULL,
            NULL};
        st = run_pare(&out, &err, args);
        CHECKF(st == 0, "svd preset%s: exit %d %s", k ? " sandboxed" : "", st, err ? err : "");
        free(out);
        free(err);
        json_t *j = load_run(o);
        json_t *rows = json_object_get(j, "results");
        json_t *met = json_object_get(json_array_get(rows, json_array_size(rows) - 1), "metrics");
        ppl[k] = json_real_value(json_object_get(json_array_get(met, 0), "value"));
        json_decref(j);
    }
    CHECKF(ppl[0] > 0 && ppl[0] == ppl[1], "svd preset perplexity %.17g plain, %.17g sandboxed", ppl[0], ppl[1]);
}

/* Whether path holds exactly text (a file pare must not have touched). */
static int file_is(const char *path, const char *text)
{
    char *data = NULL;
    size_t len = 0;
    pare_error err = {0};
    int same = pare_read_file(path, &data, &len, &err) == PARE_OK && len == strlen(text) && !memcmp(data, text, len);
    free(data);
    return same;
}

/* Counts the lines of out that begin with prefix ("refused " / "allowed "). */
static int count_lines(const char *out, const char *prefix)
{
    int n = 0;
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

/* Issue 19, items 3 and 9: links planted in OUT do not lead a sandboxed recipe's writes out of it (a
 * dangling link, a link to an existing file, a linked folder; io.open and io.output), and m:export
 * onto OUT or a folder above it is refused, sandboxed or not, leaving the run's own files in place. */
static void test_sandbox_out_links(void)
{
    const char *d = fixture_hf_dir("sbx-links", 0);
    const char *dir = tmp_path("links-out"), *elsewhere = tmp_path("elsewhere"), *victim = tmp_path("victim.txt");
    CHECK(mkdir(elsewhere, 0777) == 0 && write_bytes(victim, "keep", 4) == 0);
    const char *empty = write_recipe("empty.lua", "function run(p) end\n");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"run", empty, "--model", d, "--out", dir, "--quiet", NULL});
    CHECKF(st == 0, "first run: exit %d %s", st, err ? err : "");
    free(out);
    free(err);
    char dangle[1300], tofile[1300], linked_dir[1300], new_file[1300];
    snprintf(dangle, sizeof dangle, "%s/dangle", dir);
    snprintf(tofile, sizeof tofile, "%s/tofile", dir);
    snprintf(linked_dir, sizeof linked_dir, "%s/dl", dir);
    snprintf(new_file, sizeof new_file, "%s/new.txt", elsewhere);
    CHECK(symlink(new_file, dangle) == 0 && symlink(victim, tofile) == 0 && symlink(elsewhere, linked_dir) == 0);
    const char *r = write_recipe(
        "links.lua",
        "local function try(what, f)\n"
        "  local ok, e = pcall(f)\n"
        "  print((ok and 'allowed ' or 'refused ') .. what .. ': ' .. tostring(e))\n"
        "end\n"
        "function run(p)\n"
        "  local function write(name) return function() assert(io.open(pare.out(name), 'w')):write('x') end end\n"
        "  if not pcall(os.execute) then -- sandboxed\n"
        "    try('dangling link', write('dangle'))\n"
        "    try('link to a file', write('tofile'))\n"
        "    try('linked folder', write('dl/x.txt'))\n"
        "    try('io.output through a link', function() io.output(pare.out('dangle')) end)\n"
        "  end\n"
        "  local m <close> = pare.load(p.model)\n"
        "  try('export onto OUT', function() m:export(pare.out(), {overwrite = true}) end)\n"
        "  try('export onto the folder above OUT', function() m:export(pare.out() .. '/..', {overwrite = true}) end)\n"
        "  try('export inside OUT', function() m:export(pare.out('model'), {overwrite = true}) end)\n"
        "end\n");
    for (int sandboxed = 0; sandboxed < 2; sandboxed++) {
        const char *args[] = {
            "run", r, "--model", d, "--out", dir, "--overwrite", "--quiet", sandboxed ? "--sandbox" : NULL, NULL};
        st = run_pare(&out, &err, args);
        CHECKF(st == 0, "%s run: exit %d %s", sandboxed ? "sandboxed" : "plain", st, err ? err : "");
        int refused = count_lines(out, "refused "), allowed = count_lines(out, "allowed ");
        CHECKF(refused == 2 + 4 * sandboxed && allowed == 1 && strstr(out, "allowed export inside OUT"),
               "%s: %d refused, %d allowed:\n%s", sandboxed ? "sandboxed" : "plain", refused, allowed, out ? out : "");
        CHECKF(out && strstr(out, "refused export onto OUT: ") && strstr(out, "run's output folder") && strstr(out, dir),
               "the export refusal names OUT:\n%s", out ? out : "");
        if (sandboxed)
            CHECKF(out && strstr(out, "refused dangling link: ") && strstr(out, dangle) &&
                       strstr(out, "refused linked folder: ") && strstr(out, "dl/x.txt is outside"),
                   "the refusals name the paths:\n%s", out ? out : "");
        char p[1300];
        snprintf(p, sizeof p, "%s/log.txt", dir);
        json_t *j = load_run(dir);
        CHECKF(pare_file_exists(p) && j && !strcmp(json_string_value(json_object_get(j, "status")) ?: "", "complete"),
               "the run's own files survive the refused exports");
        json_decref(j);
        free(out);
        free(err);
    }
    char stray[1300];
    snprintf(stray, sizeof stray, "%s.lock", dir);
    CHECKF(access(new_file, F_OK) != 0 && access(tmp_path("x.txt"), F_OK) != 0 && file_is(victim, "keep") &&
               access(stray, F_OK) != 0,
           "a write left OUT: %s exists, or %s changed, or %s was made", new_file, victim, stray);
}

/* Issue 19, item 14: a sandboxed recipe reads its own file but not the files beside it, and
 * package.searchpath reports a file outside what it may read as missing, existing or not (the
 * same recipe unsandboxed finds it, so the probe is real). */
static void test_sandbox_reads(void)
{
    const char *d = fixture_hf_dir("sbx-reads", 0);
    const char *secret = tmp_path("secret.txt");
    CHECK(write_bytes(secret, "secret", 6) == 0);
    char probe[1300];
    snprintf(probe, sizeof probe, "probe=%s/?.txt", harness_tmpdir()); /* names no existing file: grants nothing */
    const char *r = write_recipe("reads.lua",
                                 "params { probe = {'', 'DIR/?.txt, DIR being the recipe folder', type = 'string'} }\n"
                                 "function run(p)\n"
                                 "  local own = p.probe:gsub('%?%.txt$', 'reads.lua')\n"
                                 "  print('own file ' .. tostring(io.open(own) ~= nil))\n"
                                 "  local ok, e = pcall(io.open, (p.probe:gsub('%?', 'secret')))\n"
                                 "  print('sibling ' .. tostring(ok and e ~= nil) .. ' ' .. tostring(e))\n"
                                 "  print('searchpath beside ' .. tostring(package.searchpath('secret', p.probe)))\n"
                                 "  print('searchpath system ' .. tostring(package.searchpath('passwd', '/etc/?')))\n"
                                 "end\n");
    for (int sandboxed = 0; sandboxed < 2; sandboxed++) {
        char *out = NULL, *err = NULL;
        const char *o = tmp_path(sandboxed ? "reads-sandboxed" : "reads-plain");
        int st = run_pare(&out, &err,
                          (const char *const[]){"run", r, "--model", d, "--set", probe, "--out", o, "--quiet",
                                                sandboxed ? "--sandbox" : NULL, NULL});
        CHECKF(st == 0 && out && strstr(out, "own file true"), "%s: exit %d\n%s%s", o, st, out ? out : "",
               err ? err : "");
        if (sandboxed)
            CHECKF(out && strstr(out, "sibling false ") &&
                       strstr(out, "secret.txt is outside the folders this recipe may read") &&
                       strstr(out, "searchpath beside nil") && strstr(out, "searchpath system nil"),
                   "sandboxed, the sibling is refused and searchpath finds nothing outside:\n%s", out ? out : "");
        else
            CHECKF(out && strstr(out, "sibling true ") && strstr(out, "searchpath beside /") &&
                       strstr(out, "searchpath system /etc/passwd"),
                   "unsandboxed, the same probes find the files:\n%s", out ? out : "");
        free(out);
        free(err);
    }
    /* the sweep preset still loads the preset it sweeps (pare's presets folder) when sandboxed */
    char set_eval[1300];
    set_kv(set_eval, sizeof set_eval, "eval", text_file());
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "presets/sweep.lua", "--model", d, "--set", "preset=svd", "--set",
                                            "ratios=0.3", "--set", set_eval, "--set", "window=32", "--out",
                                            tmp_path("sweep-sandboxed"), "--quiet", "--sandbox", NULL});
    CHECKF(st == 0 && out && strstr(out, "svd "), "sweep sandboxed: exit %d\n%s%s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* Issue 19, item 10: pare run does not take over a folder that is not a pare run folder (user files,
 * no run.json of pare), even with --overwrite, and leaves it as it was; a run folder whose run was
 * interrupted (pare's lock, log and recipe, no run.json) is reused. */
static void test_run_out_not_ours(void)
{
    const char *d = fixture_hf_dir("notours", 0);
    const char *r = write_recipe("tiny.lua", "function run(p) print('ran') end\n");
    const char *dir = tmp_path("users-folder");
    char log[1300], recipe[1300];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(recipe, sizeof recipe, "%s/recipe.lua", dir);
    CHECK(mkdir(dir, 0777) == 0 && write_bytes(log, "my notes", 8) == 0 && write_bytes(recipe, "my code", 7) == 0);
    for (int overwrite = 0; overwrite < 2; overwrite++)
        expect_fail((const char *const[]){"run", r, "--model", d, "--out", dir, overwrite ? "--overwrite" : NULL, NULL},
                    (const char *const[]){dir, "is not a pare run folder", NULL});
    CHECKF(file_is(log, "my notes") && file_is(recipe, "my code"), "%s: the user's files were replaced", dir);
    /* an interrupted run: pare's lock and files, no run.json */
    const char *run_dir = tmp_path("interrupted");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"run", r, "--model", d, "--out", run_dir, "--quiet", NULL});
    free(out);
    free(err);
    char run_json[1300];
    snprintf(run_json, sizeof run_json, "%s/run.json", run_dir);
    CHECK(st == 0 && unlink(run_json) == 0);
    st = run_pare(&out, &err,
                  (const char *const[]){"run", r, "--model", d, "--out", run_dir, "--overwrite", "--quiet", NULL});
    CHECKF(st == 0 && out && strstr(out, "ran"), "an interrupted run's folder: exit %d %s", st, err ? err : "");
    free(out);
    free(err);
    /* a run folder of an earlier pare, whose lock held the pid alone */
    char lock[1300];
    snprintf(lock, sizeof lock, "%s/.pare-run.lock", run_dir);
    CHECK(unlink(run_json) == 0 && write_bytes(lock, "12345\n", 6) == 0);
    st = run_pare(&out, &err,
                  (const char *const[]){"run", r, "--model", d, "--out", run_dir, "--overwrite", "--quiet", NULL});
    CHECKF(st == 0, "a run folder of an earlier pare: exit %d %s", st, err ? err : "");
    free(out);
    free(err);
}

/* pare compare: one row per result of each run, metrics as columns; CSV and Markdown files agree
 * with run.json; bad folders are named. */
static void test_compare(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("cmp", 0);
    char set_eval[1300];
    set_kv(set_eval, sizeof set_eval, "eval", text);
    const char *dirs[2] = {tmp_path("cmp-svd"), tmp_path("cmp-mag")};
    const char *presets[2] = {"presets/svd.lua", "presets/magnitude.lua"};
    for (int k = 0; k < 2; k++) {
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err,
                          (const char *const[]){"run", presets[k], "--model", d, "--set", "ratio=0.3", "--set",
                                                set_eval, "--set", "window=32", "--out", dirs[k], "--quiet", NULL});
        CHECKF(st == 0, "%s: %d %s", presets[k], st, err);
        free(out);
        free(err);
    }
    const char *csv = tmp_path("cmp.csv"), *md = tmp_path("cmp.md");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, (const char *const[]){"compare", dirs[0], dirs[1], "--csv", csv, NULL});
    CHECKF(st == 0, "compare --csv: %d %s", st, err);
    free(out);
    free(err);
    size_t len = 0;
    char *c = (char *)fixture_read(csv, &len);
    CHECKF(c && !strncmp(c, "run,status,method,ratio,block_linear,block_removed,total,total_removed,ppl text.txt\n", 83),
           "csv header: %.120s", c ? c : "(none)");
    int lines = 0;
    for (size_t i = 0; c && i < len; i++)
        lines += c[i] == '\n';
    CHECKF(lines == 3, "csv lines %d (header + 2 rows)", lines);
    for (int k = 0; k < 2 && c; k++) {
        json_t *j = load_run(dirs[k]);
        json_t *row = json_array_get(json_object_get(j, "results"), 0);
        char want[256];
        snprintf(want, sizeof want, ",%s,0.3,%lld,", json_string_value(json_object_get(row, "method")),
                 (long long)json_integer_value(json_object_get(json_object_get(row, "params"), "block_linear")));
        char ppl[64];
        snprintf(ppl, sizeof ppl, ",%.4f\n",
                 json_real_value(json_object_get(json_array_get(json_object_get(row, "metrics"), 0), "value")));
        CHECKF(strstr(c, want) && strstr(c, ppl), "csv lacks %s / %s: %s", want, ppl, c);
        json_decref(j);
    }
    free(c);
    st = run_pare(&out, &err, (const char *const[]){"compare", dirs[0], dirs[1], "--markdown", md, NULL});
    c = (char *)fixture_read(md, &len);
    CHECKF(st == 0 && c && strstr(c, "| run ") && strstr(c, "|---") && strstr(c, "| magnitude"), "markdown: %s", c);
    free(c);
    free(out);
    free(err);
    st = run_pare(&out, &err, (const char *const[]){"compare", dirs[0], NULL});
    CHECKF(st == 0 && out && strstr(out, "ppl text.txt") && strstr(out, "svd"), "text table: %s", out);
    free(out);
    free(err);
    expect_pare_error((const char *const[]){"compare", tmp_path("no-such-run"), NULL},
                      (const char *const[]){"no-such-run", "no run record", NULL}, 1);
    const char *junk = tmp_path("junk.json");
    fixture_write_raw(junk, "{\"status\": ", 12);
    expect_pare_error((const char *const[]){"compare", junk, NULL},
                      (const char *const[]){"junk.json", "not valid JSON", NULL}, 1);
    expect_pare_error((const char *const[]){"compare", NULL}, (const char *const[]){"give one or more", NULL}, 1);
}

/* Every preset lists its parameters and runs on a fixture, recording one result row. */
static void test_presets_run(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("presets", 0);
    char set_calib[1300], set_eval[1300];
    set_kv(set_calib, sizeof set_calib, "calib", text);
    set_kv(set_eval, sizeof set_eval, "eval", text);
    static const struct {
        const char *preset, *extra, *method;
    } cases[] = {{"asvd", "ratio=0.3", "asvd"},
                 {"svdllm", "ratio=0.3", "svdllm"},
                 {"wanda", "ratio=0.5", "wanda"},
                 {"wanda", "nm=2:4", "wanda"},
                 {"magnitude", "scope=row", "magnitude"},
                 {"global", "weighting=whiten", "global"},
                 {"lorap", "method=lorap-magnitude", "lorap-magnitude"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char preset[64], dir[64];
        snprintf(preset, sizeof preset, "presets/%s.lua", cases[k].preset);
        snprintf(dir, sizeof dir, "preset-%zu", k);
        char *out = NULL, *err = NULL;
        int st = run_pare(&out, &err, (const char *const[]){"run", preset, "--help", NULL});
        CHECKF(st == 0 && out && strstr(out, "ratio") && strstr(out, "model"), "%s --help: %s", preset, err);
        free(out);
        free(err);
        int calib = strcmp(cases[k].preset, "magnitude") != 0; /* magnitude takes no calibration */
        st = run_pare(&out, &err,
                      (const char *const[]){"run",
                                            preset,
                                            "--model",
                                            d,
                                            "--set",
                                            cases[k].extra,
                                            "--set",
                                            set_eval,
                                            "--set",
                                            "window=32",
                                            "--out",
                                            tmp_path(dir),
                                            "--quiet",
                                            calib ? "--set" : NULL,
                                            set_calib,
                                            "--set",
                                            "calib_samples=4",
                                            "--set",
                                            "calib_len=32",
                                            NULL});
        json_t *j = load_run(tmp_path(dir));
        json_t *row = json_array_get(json_object_get(j, "results"), 0);
        const char *method = json_string_value(json_object_get(row, "method"));
        CHECKF(st == 0 && method && !strcmp(method, cases[k].method) &&
                   json_array_size(json_object_get(row, "metrics")) == 1,
               "%s %s: exit %d, method %s: %s", preset, cases[k].extra, st, method ? method : "-", err);
        json_decref(j);
        free(out);
        free(err);
    }
    expect_fail((const char *const[]){"run", "presets/sweep.lua", "--model", d, "--set", "preset=nosuch", "--out",
                                      tmp_path("sweep-bad"), NULL},
                (const char *const[]){"nosuch.lua", NULL});
    expect_fail((const char *const[]){"run", "presets/sweep.lua", "--model", d, "--set", "args=splt=2", "--set",
                                      set_calib, "--out", tmp_path("sweep-bad2"), NULL},
                (const char *const[]){"args: 'splt=2'", NULL});
}

/* Acceptance: presets/lorap.lua on ref-llama-12m at ratio 0.2 gives `pare compress --method lorap`'s
 * perplexity (same calibration, same decisions). */
static void test_lorap_preset_reference(void)
{
    NEED_SHARED();
    if (getenv("PARE_TEST_QUICK")) /* the fixture version (test_preset_matches_compress) runs under the sanitizers */
        SKIP("skipped in quick mode: ref-llama-12m compression twice");
    const char *text = tmp_path("wiki-head.txt");
    size_t len = 0;
    unsigned char *wiki = fixture_read(shared_path("data/text/wikitext-2/wiki.test.raw"), &len);
    CHECK(wiki && len > 40000);
    if (!wiki)
        return;
    fixture_write_raw(text, wiki, 40000);
    free(wiki);
    const char *model = shared_path("models/ref-llama-12m"), *calib = shared_path("data/text/brown/brown_train.txt");
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"compress", "--model", model, "--method", "lorap", "--ratio", "0.2",
                                            "--calib", calib, "--calib-samples", "16", "--eval", text, "--json", NULL});
    json_error_t je;
    json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
    CHECKF(j != NULL, "compress: %d %s", st, err);
    double want = json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl"));
    json_decref(j);
    free(out);
    free(err);
    char set_calib[1300], set_eval[1300];
    set_kv(set_calib, sizeof set_calib, "calib", calib);
    set_kv(set_eval, sizeof set_eval, "eval", text);
    const char *dir = tmp_path("lorap-ref");
    st = run_pare(&out, &err,
                  (const char *const[]){"run", "presets/lorap.lua", "--model", model, "--set", "ratio=0.2", "--set",
                                        set_calib, "--set", "calib_samples=16", "--set", set_eval, "--out", dir,
                                        "--quiet", NULL});
    j = load_run(dir);
    double got = j ? json_real_value(json_object_get(
                         json_array_get(json_object_get(json_array_get(json_object_get(j, "results"), 0), "metrics"), 0),
                         "value"))
                   : -1;
    CHECKF(st == 0 && want > 1 && fabs(got - want) <= 1e-9 * want, "recipe %.17g vs pare compress %.17g (%s)", got,
           want, err);
    json_decref(j);
    free(out);
    free(err);
}

/* ---- hostile recipes (issue 19) -------------------------------------------------------------- */

/* Names in dir that a step interrupted half-way leaves behind: an export's lock or temporary folder
 * (the run's own .pare-run.lock stays by design). Returns the first one found in buf, or NULL. */
static const char *leftover_in(const char *dir, char *buf, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    const char *found = NULL;
    while (d && !found && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp-") || (strstr(e->d_name, ".lock") && strcmp(e->d_name, ".pare-run.lock"))) {
            snprintf(buf, cap, "%s", e->d_name);
            found = buf;
        }
    if (d)
        closedir(d);
    return found;
}

/* Runs tests/lua/hostile.lua's case on the fixture d into OUT = tmp_path("hostile-CASE"); checks the
 * exit status, every needle on stderr (or "ok CASE" on stdout for a success), run.json's status and
 * that nothing was left behind. Returns run.json (or NULL). */
static json_t *run_hostile(const char *d, const char *text, const char *kase, int want_exit, const char *const *needles)
{
    char set_case[64], set_text[1300], dir[64];
    set_kv(set_case, sizeof set_case, "case", kase);
    set_kv(set_text, sizeof set_text, "text", text);
    snprintf(dir, sizeof dir, "hostile-%s", kase);
    char out_dir[1200];
    snprintf(out_dir, sizeof out_dir, "%s", tmp_path(dir));
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err,
                      (const char *const[]){"run", "tests/lua/hostile.lua", "--sandbox", "--model", d, "--set",
                                            set_case, "--set", set_text, "--out", out_dir, "--quiet", NULL});
    CHECKF(st == want_exit, "case %s: exit %d, expected %d\n%s%s", kase, st, want_exit, out ? out : "", err ? err : "");
    for (int i = 0; needles && needles[i]; i++)
        CHECKF(err && strstr(err, needles[i]), "case %s: stderr lacks '%s':\n%s", kase, needles[i], err ? err : "");
    char ok[64];
    snprintf(ok, sizeof ok, "ok %s", kase);
    if (want_exit == 0)
        CHECKF(out && strstr(out, ok), "case %s: stdout lacks '%s': %s", kase, ok, out ? out : "");
    char left[256];
    CHECKF(!leftover_in(out_dir, left, sizeof left), "case %s left %s in %s", kase, left, out_dir);
    json_t *j = load_run(out_dir);
    const char *status = j ? json_string_value(json_object_get(j, "status")) : NULL;
    CHECKF(status && !strcmp(status, want_exit ? "failed" : "complete"), "case %s: run.json status %s", kase,
           status ? status : "(no run.json)");
    free(out);
    free(err);
    return j;
}

/* A progress hook that closes and collects the model during m:export, m:compress{method = "lorap"}
 * and m:eval, closes the calibration during m:spectra, or calls m:compress during m:eval, gets a Lua
 * error naming the running operation (before: a crash, a lock and a temporary folder left behind, or
 * a wrong perplexity with exit 0); a hook that drops the option table's references and collects
 * changes nothing; a hook that raises leaves nothing behind and the model usable. Sandboxed, since
 * that is where a recipe is hostile. Under `make check` ASan sees every access. */
static void test_busy_objects(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("busy", 0);
    static const struct {
        const char *kase, *needle;
    } refused[] = {{"export", "pare.close: the model is in use by m:export"},
                   {"lorap", "pare.close: the model is in use by m:compress"},
                   {"eval", "pare.close: the model is in use by m:eval"},
                   {"compress_in_eval", "pare.compress: the model is in use by m:eval"},
                   {"calib_close", "pare.calib.close: the calibration is in use by m:spectra"}};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++)
        json_decref(run_hostile(d, text, refused[k].kase, 2,
                                (const char *const[]){refused[k].needle, "progress hook", "hostile.lua:", NULL}));
    json_decref(run_hostile(d, text, "options", 0, NULL));
    json_decref(run_hostile(d, text, "hook_error", 0, NULL));
}

/* pare.record checks and copies its value: 12 nested tables are recorded as they were at the call
 * (before: a crash while run.json was written), 40 levels, a cycle, a function, NaN and a boolean key
 * fail at the call naming the key path, with run.json written (failed); a cycle a recipe makes in the
 * result rows is cut off in run.json instead of crashing. */
static void test_record_limits(void)
{
    const char *text = text_file();
    const char *d = fixture_hf_dir("records", 0);
    json_t *j = run_hostile(d, text, "deep12", 0, NULL);
    json_t *v = json_object_get(json_object_get(j, "records"), "deep");
    int levels = 0;
    for (; json_is_object(v) && levels < 100; levels++)
        v = json_object_get(v, levels == 11 ? "leaf" : "a");
    CHECKF(levels == 12 && json_is_true(v), "records.deep: %d levels recorded", levels);
    json_decref(j);
    char deep[256] = "pare.record: table nested deeper than 16 levels at deep";
    for (int i = 0; i < 16; i++)
        strcat(deep, ".a");
    static const char *const cases[][2] = {{"cycle", "pare.record: cycle at t.self"},
                                           {"func", "pare.record: t.list[2] is a function"},
                                           {"nan", "JSON has no NaN or infinity"},
                                           {"key", "pare.record: t.sub has a key of type boolean"}};
    json_decref(run_hostile(d, text, "deep40", 2, (const char *const[]){deep, "hostile.lua:", NULL}));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        json_decref(run_hostile(d, text, cases[k][0], 2, (const char *const[]){cases[k][1], "hostile.lua:", NULL}));
    j = run_hostile(d, text, "rows_cycle", 0, NULL);
    json_t *row = json_array_get(json_object_get(j, "results"), 0);
    CHECKF(!strcmp(json_string_value(json_object_get(row, "loop")) ?: "", "(cycle)") &&
               json_array_size(json_object_get(row, "metrics")) == 1,
           "rows_cycle: the row's loop is not cut off");
    json_decref(j);
}

/* The first Ctrl-C stops a recipe that catches errors with pcall in a loop: a pure-Lua loop and a loop
 * of m:eval calls end with exit 130 and run.json "cancelled" (before: the loop went on; the recipes
 * stop by themselves after 8 s and print "survived"). */
static void test_interrupt_pcall_loop(void)
{
    const char *d = fixture_hf_dir("pcall", 0);
    const char *big = tmp_path("big.txt");
    fixture_write_pattern(big, "she sells sea shells by the sea shore and the shells she sells are sea shells ",
                          1 << 20);
    char set_data[1300];
    set_kv(set_data, sizeof set_data, "data", big);
    static const char *const bodies[] = {
        /* a pure-Lua loop inside each pcall: the interrupt raised in it is caught every time */
        "pcall(function() local t1 = os.time() while os.time() - t1 < 2 do end end)",
        /* a cancelled m:eval raises, pcall catches it, the next one starts */
        "pcall(function() m:eval(p.data, {window = 16}) end)"};
    for (int k = 0; k < 2; k++) {
        char src[1024], name[32], dir[32];
        snprintf(src, sizeof src,
                 "params { data = {nil, 'text', type = 'string'} }\n"
                 "function run(p)\n"
                 "  local m <close> = pare.load(p.model)\n"
                 "  print('looping')\n"
                 "  local t0 = os.time()\n"
                 "  while os.time() - t0 < 8 do %s end\n"
                 "  print('survived')\n"
                 "end\n",
                 bodies[k]);
        snprintf(name, sizeof name, "loop%d.lua", k);
        snprintf(dir, sizeof dir, "loop%d", k);
        const char *r = write_recipe(name, src);
        char out_dir[1200];
        snprintf(out_dir, sizeof out_dir, "%s", tmp_path(dir));
        char *out = NULL, *err = NULL;
        int st = run_pare_signal(
            &out, &err, (const char *const[]){"run", r, "--model", d, "--set", set_data, "--out", out_dir, NULL}, 1000,
            SIGINT);
        CHECKF(out && strstr(out, "looping"), "loop %d: the signal came before the loop: %s %s", k, out, err);
        CHECKF(st == 130 && !strstr(out ? out : "", "survived"), "loop %d: exit %d\n%s%s", k, st, out ? out : "",
               err ? err : "");
        json_t *j = load_run(out_dir);
        CHECKF(j && !strcmp(json_string_value(json_object_get(j, "status")) ?: "", "cancelled"), "loop %d: run.json %s",
               k, j ? json_string_value(json_object_get(j, "status")) : "(none)");
        json_decref(j);
        free(out);
        free(err);
    }
}

void suite_lua_jobs(void);
void suite_lua(void);
void suite_lua(void)
{
    RUN(test_help_lists_params);
    RUN(test_set_checks);
    RUN(test_script_errors);
    RUN(test_preset_matches_compress);
    RUN(test_preset_factor_dtype);
    RUN(test_run_interrupt);
    RUN(test_module_functions);
    RUN(test_run_record);
    RUN(test_run_reproducible);
    RUN(test_run_refusals);
    RUN(test_run_sandbox);
    RUN(test_sandbox_out_links);
    RUN(test_sandbox_reads);
    RUN(test_run_out_not_ours);
    RUN(test_compare);
    RUN(test_presets_run);
    RUN(test_lorap_preset_reference);
    RUN(test_busy_objects);
    RUN(test_record_limits);
    RUN(test_interrupt_pcall_loop);
    suite_lua_jobs(); /* tests/test_sweep_jobs.c: --emit-jobs */
}

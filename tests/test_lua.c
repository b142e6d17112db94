/* `pare run`: Lua recipes through ./pare. A preset reproduces `pare compress` exactly, --set checks
 * types, ranges and choices naming the parameter, script errors carry file:line and a traceback,
 * core errors name the pare function, --help lists the declarations, Ctrl-C exits 130. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    } cases[] = {{"presets/lorap.lua", "lorap", "0.4"}, {"presets/svd.lua", "svd", "0.3"},
                 {"presets/svd.lua", "asvd", "0.5"}};
    for (int g = 0; g < 2; g++) {
        const char *d = fixture_hf_dir(g ? "lgpt2" : "lllama", g);
        for (int c = 0; c < 3; c++) {
            const char *cargs[] = {"compress", "--model", d, "--method", cases[c].method, "--ratio", cases[c].ratio,
                                   "--calib", text, "--calib-samples", "4", "--calib-len", "32", "--seed", "7",
                                   "--eval", text, "--window", "32", "--json", NULL};
            char *out = NULL, *err = NULL;
            int st = run_pare(&out, &err, cargs);
            json_error_t je;
            json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
            CHECKF(j != NULL, "compress %s: exit %d: %s", cases[c].method, st, err);
            double want = j ? json_real_value(json_object_get(json_array_get(json_object_get(j, "eval"), 0), "ppl")) : 0;
            json_int_t after = j ? json_integer_value(json_object_get(json_object_get(j, "params"), "block_linear_after")) : 0;
            json_decref(j);
            free(out);
            free(err);
            char set_ratio[64], set_method[64], after_s[64];
            snprintf(set_ratio, sizeof set_ratio, "ratio=%s", cases[c].ratio);
            snprintf(set_method, sizeof set_method, "method=%s", cases[c].method);
            char set_calib[1300], set_eval[1300];
            snprintf(set_calib, sizeof set_calib, "calib=%s", text);
            snprintf(set_eval, sizeof set_eval, "eval=%s", text);
            const char *rargs[] = {"run", cases[c].preset, "--model", d, "--set", set_ratio, "--set", set_method,
                                   "--set", set_calib, "--set", "calib_samples=4", "--set", "calib_len=32", "--set",
                                   "seed=7", "--set", set_eval, "--set", "window=32", "--quiet", NULL};
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

/* --set refuses unknown names, wrong types, values out of range and outside the choices, naming the
 * parameter and the bound; --model is required. */
static void test_set_checks(void)
{
    const char *r = write_recipe("params.lua",
                                 "params {\n"
                                 "  ratio = {0.2, \"fraction to remove\", min = 0, max = 0.95},\n"
                                 "  samples = {16, \"windows\", min = 1},\n"
                                 "  mode = {\"fast\", \"how\", choices = {\"fast\", \"exact\"}},\n"
                                 "  verbose = {false, \"chatty\"},\n"
                                 "}\n"
                                 "function run(p) print(p.ratio, p.samples, p.mode, p.verbose, math.type(p.samples)) end\n");
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
    const char *bad = write_recipe("baddecl.lua", "params {\n  ratio = {0.2, \"x\", mx = 1},\n}\nfunction run(p) end\n");
    char where[1300];
    snprintf(where, sizeof where, "%s:1:", bad);
    expect_fail((const char *const[]){"run", bad, "--model", d, NULL},
                (const char *const[]){where, "unknown field 'mx'", NULL});
}

/* A script error shows file:line and a traceback through the recipe's functions; a core error names
 * the pare function and the offending value; reading an undeclared parameter is an error. */
static void test_script_errors(void)
{
    const char *d = fixture_hf_dir("lerr", 0);
    const char *r = write_recipe("boom.lua",
                                 "local function helper(t)\n"
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
    const char *c = write_recipe("core.lua",
                                 "function run(p)\n"
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
    int st = run_pare_signal(&out, &err,
                             (const char *const[]){"run", r, "--model", shared_path("models/ref-llama-12m"), "--set", set,
                                                   NULL},
                             1500, SIGINT);
    CHECKF(st == 130, "exit %d; stderr: %s", st, err);
    CHECKF(err && strstr(err, "interrupted"), "stderr: %s", err);
    CHECKF(!out || !strstr(out, "perplexity"), "a result was printed: %s", out);
    free(out);
    free(err);
}

void suite_lua(void);
void suite_lua(void)
{
    RUN(test_help_lists_params);
    RUN(test_set_checks);
    RUN(test_script_errors);
    RUN(test_preset_matches_compress);
    RUN(test_run_interrupt);
}

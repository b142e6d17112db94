/* The `pare` module's zero-shot tasks: m:eval_task scores PIQA, ARC-Easy, BoolQ or HellaSwag as
 * `pare eval --task` does and records acc and acc_norm in the run journal beside perplexities. */
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/sha256.h"
#include "core/tasks.h"
#include "core/zeroshot.h"
#include "lsandbox.h"
#include "lpare_internal.h"

/* Records a journal metric {name, data = task, value, card = the result table at res} for the model (argument 1). */
static void record_metric(lua_State *L, int res, const char *name, const char *task, double value)
{
    lua_createtable(L, 0, 4);
    lp_set_str(L, "name", name);
    lp_set_str(L, "data", task);
    lp_set_num(L, "value", value);
    lua_pushvalue(L, res);
    lua_setfield(L, -2, "card");
    lj_metric(L, 1);
}

/* m:eval_task(task, path, {limit = 0, batch_tokens = 2048, max_len = 0}) -> {task, n, acc, acc_stderr,
 * acc_norm, acc_norm_stderr, template, data, data_sha256, truncated}: zero-shot multiple choice by
 * log-likelihood with lm-evaluation-harness's templates (docs/formats.md, "Zero-shot tasks"). */
static int l_eval_task(lua_State *L)
{
    lp_enter(L, "m:eval_task", 4);
    pare_model *m = lp_check_model(L, 1, "eval_task");
    const char *task = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    lsandbox_check(L, path, 0, "pare.eval_task");
    static const char *const keys[] = {"limit", "batch_tokens", "max_len", NULL};
    lp_check_keys(L, 4, "eval_task", keys);
    long long limit = lp_opt_integer(L, 4, "limit", 0, 0, LLONG_MAX, "eval_task");
    pare_zeroshot_opts zo;
    pare_zeroshot_defaults(&zo);
    zo.batch_tokens = (int)lp_opt_integer(L, 4, "batch_tokens", zo.batch_tokens, 16, 1 << 24, "eval_task");
    zo.max_len = (int)lp_opt_integer(L, 4, "max_len", zo.max_len, 0, 1 << 20, "eval_task");
    pare_error err = {0};
    pare_task_kind kind;
    if (pare_task_kind_parse(task, &kind, &err))
        return lp_core_error(L, "eval_task", NULL, &err);
    double t0 = lp_now();
    pare_task *t = NULL;
    if (pare_task_load(kind, path, (size_t)limit, &t, &err))
        return lp_core_error(L, "eval_task", NULL, &err);
    char sha[65] = "";
    pare_sha256_file(path, sha, &err); /* a folder has no single hash: left empty */
    progress_ctx pc;
    pare_progress pp;
    lp_progress_begin(L, &pc, &pp);
    pare_zeroshot_result r;
    memset(&r, 0, sizeof r);
    pare_status st = pare_task_score(m, t, &zo, &pp, &r, &err);
    pare_task_free(t);
    if (st)
        return lp_core_error(L, "eval_task", &pc, &err);
    lp_progress_end(L, &pc);
    lua_createtable(L, 0, 12);
    int res = lua_gettop(L);
    lp_set_str(L, "task", pare_task_kind_name(kind));
    lp_set_str(L, "data", path);
    lp_set_str(L, "data_sha256", sha);
    lp_set_str(L, "template", pare_task_template(kind));
    lp_set_int(L, "n", (lua_Integer)r.n);
    lp_set_num(L, "acc", r.acc);
    lp_set_num(L, "acc_stderr", r.acc_stderr);
    lp_set_num(L, "acc_norm", r.acc_norm);
    lp_set_num(L, "acc_norm_stderr", r.acc_norm_stderr);
    lp_set_int(L, "truncated", (lua_Integer)r.truncated);
    lp_set_str(L, "protocol",
               "zero-shot multiple choice by continuation log-likelihood, lm-evaluation-harness "
               "templates; acc_norm normalizes by continuation characters");
    double acc = r.acc, acc_norm = r.acc_norm;
    pare_zeroshot_result_free(&r);
    record_metric(L, res, "acc", pare_task_kind_name(kind), acc);
    record_metric(L, res, "acc_norm", pare_task_kind_name(kind), acc_norm);
    char what[600];
    lua_getfield(L, res, "acc");
    snprintf(what, sizeof what, "%s on %s: acc %.4f", pare_task_kind_name(kind), path, lua_tonumber(L, -1));
    lua_pop(L, 1);
    lj_step(L, "eval_task", t0, what);
    lua_settop(L, res);
    return 1;
}

const luaL_Reg lp_task_methods[] = {{"eval_task", l_eval_task}, {NULL, NULL}};

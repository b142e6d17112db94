/* The session runner (see lsession.h): one recipe run into OUT with events for a front end, a
 * lock, log.txt, a copy of the recipe, and run.json written last and atomically. */
#include "lsession.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record/runplots.h"
#include "core/fileio.h"
#include "lsandbox.h"
#include "core/sha256.h"
#include "core/version.h"
#include "lpare.h"
#include "core/json_number.h"

struct lsession {
    lua_State *L;
    ls_sink sink;
    lpare_host host;
    char recipe[4096];
    char out[4096];
    FILE *log;
    char stage[64];
    double stage_start;
    char where[256]; /* the last progress report, for "cancelled at ..." */
    char **plots;    /* PNGs written during the run, relative to OUT when inside it (run.json "plots") */
    int n_plots;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void emit(lsession *s, ls_event_kind kind, const char *text)
{
    if (s->log && text) {
        fprintf(s->log, "%s%s\n", kind == LS_ERROR ? "error: " : kind == LS_PLOT ? "plot: " : "", text);
        fflush(s->log);
    }
    ls_event ev = {kind, text, NULL, 0, 0};
    if (s->sink.event)
        s->sink.event(s->sink.user, &ev);
}

static void host_log(void *user, const char *line) { emit(user, LS_LOG, line); }
static void host_result(void *user, const char *line) { emit(user, LS_RESULT, line); }

/* path relative to OUT when it lies inside it, else as given */
static const char *out_relative(const lsession *s, const char *path)
{
    size_t n = strlen(s->out);
    return !strncmp(path, s->out, n) && path[n] == '/' && path[n + 1] ? path + n + 1 : path;
}

static int plot_recorded(const lsession *s, const char *path)
{
    const char *rel = out_relative(s, path);
    for (int i = 0; i < s->n_plots; i++)
        if (!strcmp(s->plots[i], rel))
            return 1;
    return 0;
}

/* A PNG was written (by the recipe through the pare module, or by the automatic plots). */
static void host_plot(void *user, const char *path)
{
    lsession *s = user;
    if (!plot_recorded(s, path)) {
        char **v = realloc(s->plots, (size_t)(s->n_plots + 1) * sizeof *v);
        char *copy = strdup(out_relative(s, path));
        if (v && copy) {
            s->plots = v;
            s->plots[s->n_plots++] = copy;
        } else {
            if (v)
                s->plots = v;
            free(copy);
        }
    }
    emit(s, LS_PLOT, path);
}

static int auto_plot_keep(void *user, const char *path) { return !plot_recorded(user, path); }
static void auto_plot_failed(void *user, const char *line) { emit(user, LS_LOG, line); }

static void free_plots(lsession *s)
{
    for (int i = 0; i < s->n_plots; i++)
        free(s->plots[i]);
    free(s->plots);
    s->plots = NULL;
    s->n_plots = 0;
}

static void host_progress(void *user, const char *stage, double fraction, const char *detail)
{
    lsession *s = user;
    double t = now_s();
    if (strcmp(s->stage, stage ? stage : "")) {
        snprintf(s->stage, sizeof s->stage, "%s", stage ? stage : "");
        s->stage_start = t;
    }
    snprintf(s->where, sizeof s->where, "%s %.0f%% %s", s->stage, 100 * fraction, detail ? detail : "");
    double el = t - s->stage_start;
    ls_event ev = {LS_PROGRESS, detail ? detail : "", s->stage, fraction,
                   fraction > 0 ? el * (1 - fraction) / fraction : -1};
    if (s->sink.event)
        s->sink.event(s->sink.user, &ev);
    if (fraction >= 1 && s->log) {
        fprintf(s->log, "[%s] done in %.2f s: %s\n", s->stage, el, detail ? detail : "");
        fflush(s->log);
    }
}

static lsession *CURRENT; /* for the interrupted() trampoline: one session runs at a time per process */
static int host_interrupted(void) { return CURRENT && CURRENT->sink.interrupted && CURRENT->sink.interrupted(); }

/* print(...) in a recipe: tab-separated like Lua's, to the front end and log.txt */
static int l_print(lua_State *L)
{
    lsession *s = lua_touserdata(L, lua_upvalueindex(1));
    lpare_push_joined_args(L, '\t');
    emit(s, LS_PRINT, lua_tostring(L, -1));
    return 0;
}

/* A pure-Lua loop is interrupted too: the hook raises once the front end says so. A pcall may catch
 * that error, so from then on the hook runs at every instruction of the thread and raises again: the
 * first instruction after the pcall (or in an xpcall's handler, or after coroutine.resume) raises, up
 * to the recipe's top. The pare module refuses every later call (lp_check_interrupted), so a loop of
 * pcall(m.eval, ...) stops as quickly. Lua's own code cannot clear a hook without the debug library,
 * which --sandbox removes. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (host_interrupted()) {
        lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "interrupted");
    }
}

lsession *lsession_open(const char *recipe, const ls_sink *sink, unsigned flags, const char *const *allow, int n_allow,
                        char *msg, size_t cap)
{
    lsession *s = calloc(1, sizeof *s);
    if (!s || !(s->L = luaL_newstate())) {
        snprintf(msg, cap, "out of memory");
        free(s);
        return NULL;
    }
    if (sink)
        s->sink = *sink;
    snprintf(s->recipe, sizeof s->recipe, "%s", recipe);
    lua_State *L = s->L;
    luaL_openlibs(L);
    if (flags & LS_SANDBOX) {
        lsandbox_enable(L, NULL);
        for (int i = 0; i < n_allow; i++)
            lsandbox_allow(L, allow[i], 0);
    }
    s->host = (lpare_host){.interrupted = host_interrupted,
                           .progress = host_progress,
                           .log = host_log,
                           .result = host_result,
                           .plot = host_plot,
                           .user = s};
    lpare_set_host(L, &s->host);
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, l_print, 1);
    lua_setglobal(L, "print");
    if (lrecipe_load(L, recipe) != LUA_OK) {
        snprintf(msg, cap, "%s", lua_tostring(L, -1));
        lsession_close(s);
        return NULL;
    }
    return s;
}

void lsession_close(lsession *s)
{
    if (!s)
        return;
    if (CURRENT == s)
        CURRENT = NULL;
    if (s->L)
        lua_close(s->L);
    if (s->log)
        fclose(s->log);
    free_plots(s);
    free(s);
}

lua_State *lsession_lua(lsession *s) { return s->L; }
const char *lsession_out_dir(const lsession *s) { return s->out; }
int lsession_set(lsession *s, const char *key, const char *value, char *msg, size_t cap)
{
    int rc = lrecipe_set(s->L, key, value, msg, cap);
    if (!rc) /* what the user names on the command line, the recipe may read */
        lsandbox_allow(s->L, value, 0);
    return rc;
}
int lsession_set_arg(lsession *s, const char *arg, char *msg, size_t cap)
{
    const char *eq = strchr(arg, '=');
    int rc = lrecipe_set_arg(s->L, arg, msg, cap);
    if (!rc)
        lsandbox_allow(s->L, eq + 1, 0);
    return rc;
}
void lsession_help(lsession *s, FILE *f) { lrecipe_help(s->L, s->recipe, f); }

/* mkdir -p */
static int make_dirs(const char *path, char *msg, size_t cap)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) {
                snprintf(msg, cap, "cannot create output folder %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    if (!pare_is_dir(path)) {
        snprintf(msg, cap, "output folder %s exists and is not a folder", path);
        return -1;
    }
    return 0;
}

/* ---- Lua values to JSON ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The conversion's state: the tables on the current path (cycles) and a budget of values, because the
 * journal's rows are tables a recipe can reach (pare.results()) and change. pare.record checks and
 * copies its values (ljournal.c), so records never meet these limits. */
typedef struct {
    int on_path; /* stack index of {[table] = true} */
    long budget; /* values left to convert */
} json_walk;

#define JSON_MAX_DEPTH 32
#define JSON_MAX_VALUES 4000000L

static json_t *table_to_json(lua_State *L, int idx, int depth, json_walk *w);

static json_t *to_json(lua_State *L, int idx, int depth, json_walk *w)
{
    idx = lua_absindex(L, idx);
    if (--w->budget < 0)
        return json_string("(too large)");
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        return pare_json_number(lua_tonumber(L, idx)); /* NaN and infinities: null */
    case LUA_TSTRING: return json_stringn(lua_tostring(L, idx), lua_rawlen(L, idx));
    case LUA_TTABLE: break;
    default: return json_null();
    }
    if (depth > JSON_MAX_DEPTH || !lua_checkstack(L, 8))
        return json_string("(nested too deeply)");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, w->on_path) != LUA_TNIL) {
        lua_pop(L, 1);
        return json_string("(cycle)");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, w->on_path);
    json_t *j = table_to_json(L, idx, depth, w);
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, w->on_path);
    return j;
}

/* A table at idx: a JSON array when it is a sequence, else an object. */
static json_t *table_to_json(lua_State *L, int idx, int depth, json_walk *w)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), keys = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys == n) { /* a sequence (an empty table is an empty list) */
        json_t *a = json_array();
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_array_append_new(a, to_json(L, -1, depth + 1, w));
            lua_pop(L, 1);
        }
        return a;
    }
    /* an object, keys sorted so that the same run gives the same file */
    int nk = 0;
    const char **names = lua_newuserdatauv(L, (size_t)(keys > 0 ? keys : 1) * sizeof *names, 0);
    int hold = lua_gettop(L);
    lua_createtable(L, (int)keys, 0); /* the key strings, kept alive while sorting */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        const char *k = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
        if (k && k[0] != '_') { /* "_"-prefixed keys are the module's bookkeeping */
            names[nk++] = k;
            lua_rawseti(L, hold + 1, nk);
        } else
            lua_pop(L, 1);
    }
    qsort(names, (size_t)nk, sizeof *names, cmp_str);
    json_t *o = json_object();
    for (int i = 0; i < nk; i++) {
        /* raw reads: no metamethod runs while run.json is written (outside any protected call) */
        lua_pushstring(L, names[i]);
        if (lua_rawget(L, idx) == LUA_TNIL) { /* a number key */
            lua_pop(L, 1);
            double v = strtod(names[i], NULL);
            if (floor(v) == v && fabs(v) < 0x1p63)
                lua_pushinteger(L, (lua_Integer)v);
            else
                lua_pushnumber(L, v);
            lua_rawget(L, idx);
        }
        json_object_set_new(o, names[i], to_json(L, -1, depth + 1, w));
        lua_pop(L, 1);
    }
    lua_settop(L, hold - 1);
    return o;
}

json_t *lsession_to_json(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 8))
        return json_null();
    lua_newtable(L);
    json_walk w = {lua_gettop(L), JSON_MAX_VALUES};
    json_t *j = to_json(L, idx, 0, &w);
    lua_pop(L, 1);
    return j;
}

static void iso_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int write_json_atomic(const char *path, json_t *j, char *msg, size_t cap)
{
    pare_error err = {0};
    if (pare_write_json_atomic(path, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17), &err)) {
        snprintf(msg, cap, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* runs/NAME-YYYYmmdd-HHMMSS[-N] under $PARE_RUNS (default ./runs) */
static void default_out(const char *recipe, char *out, size_t cap)
{
    const char *base = strrchr(recipe, '/');
    base = base ? base + 1 : recipe;
    int len = (int)strcspn(base, ".");
    len = len < 100 ? len : 100;
    const char *parent = getenv("PARE_RUNS");
    parent = parent && *parent ? parent : "runs";
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, cap, "%s/%.*s-%s", parent, len, base, stamp);
    struct stat sb;
    for (int i = 2; stat(out, &sb) == 0 && i < 1000; i++)
        snprintf(out, cap, "%s/%.*s-%s-%d", parent, len, base, stamp, i);
}

/* OUT may be run into when it is empty or a pare run folder: one that holds the run lock pare leaves
 * in every run folder (an interrupted run's too) or a run.json with pare's fields. Anything else is
 * the user's, and a run would overwrite log.txt, recipe.lua, plots or a model in it. */
static int usable_out(const char *out, char *msg, size_t cap)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/.pare-run.lock", out);
    if (pare_lock_file_is_pare(p))
        return 0;
    snprintf(p, sizeof p, "%s/run.json", out);
    json_t *j = json_load_file(p, 0, NULL);
    int pare_run = json_is_object(j) && json_is_string(json_object_get(j, "pare_version")) &&
                   json_is_string(json_object_get(j, "status"));
    json_decref(j);
    if (pare_run)
        return 0;
    DIR *d = opendir(out);
    if (!d) {
        snprintf(msg, cap, "cannot read output folder %s: %s", out, strerror(errno));
        return -1;
    }
    struct dirent *e;
    const char *other = NULL;
    while (!other && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            other = e->d_name;
    if (other)
        snprintf(msg, cap,
                 "output folder %s is not empty ('%s') and is not a pare run folder (no run.json of pare); "
                 "choose a new or empty --out",
                 out, other);
    closedir(d);
    return other ? -1 : 0;
}

ls_status lsession_run(lsession *s, const char *out_dir, int overwrite, char *msg, size_t cap)
{
    lua_State *L = s->L;
    msg[0] = 0;
    if (out_dir)
        snprintf(s->out, sizeof s->out, "%s", out_dir);
    else
        default_out(s->recipe, s->out, sizeof s->out);
    size_t ol = strlen(s->out);
    while (ol > 1 && s->out[ol - 1] == '/')
        s->out[--ol] = 0;
    pare_error lerr = {0};
    if (pare_check_output_path(s->out, "--out", &lerr)) {
        snprintf(msg, cap, "%s", lerr.msg);
        return LS_REFUSED;
    }
    if (make_dirs(s->out, msg, cap) || usable_out(s->out, msg, cap))
        return LS_REFUSED;
    lsandbox_allow(s->L, s->out, 1);
    char path[4200], lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.pare-run.lock", s->out);
    /* the lock file stays after the run: it marks OUT as a pare run folder, interrupted or not */
    pare_lock lock;
    if (pare_lock_path(&lock, lockp, s->out, &lerr)) {
        snprintf(msg, cap, "%s", lerr.msg);
        return LS_REFUSED;
    }
    snprintf(path, sizeof path, "%s/run.json", s->out);
    if (pare_file_exists(path) && !overwrite) {
        snprintf(msg, cap, "%s holds a finished run (run.json); pass --overwrite to replace it or choose another --out",
                 s->out);
        pare_unlock_keep(&lock);
        return LS_REFUSED;
    }
    unlink(path); /* a replaced run never looks complete while the new one runs */
    /* log.txt is made new: a link or hard link planted under that name is replaced, not written through */
    snprintf(path, sizeof path, "%s/log.txt", s->out);
    int log_fd = -1;
    if ((unlink(path) && errno != ENOENT) || (log_fd = pare_create_new(path)) < 0 || !(s->log = fdopen(log_fd, "w"))) {
        snprintf(msg, cap, "cannot write %s: %s", path, strerror(errno));
        if (log_fd >= 0)
            close(log_fd);
        pare_unlock_keep(&lock);
        return LS_REFUSED;
    }
    snprintf(path, sizeof path, "%s/recipe.lua", s->out);
    pare_error copy_err = {0};
    if (pare_copy_file(s->recipe, path, &copy_err)) {
        snprintf(msg, cap, "%s", copy_err.msg);
        pare_unlock_keep(&lock);
        return LS_REFUSED;
    }
    char recipe_sha[65] = "";
    pare_error herr = {0};
    pare_sha256_file(s->recipe, recipe_sha, &herr);

    free_plots(s);
    time_t started = time(NULL);
    double t0 = now_s();
    s->host.out_dir = s->out;
    CURRENT = s;
    fprintf(s->log, "pare %s: run %s into %s\n", PARE_VERSION, s->recipe, s->out);
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
    int st = lrecipe_run(L);
    lua_sethook(L, NULL, 0, 0);
    ls_status status = LS_COMPLETE;
    char errmsg[8192] = "";
    if (st != LUA_OK) {
        snprintf(errmsg, sizeof errmsg, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
        status = s->host.canceled || host_interrupted() ? LS_CANCELLED : LS_FAILED;
        if (status == LS_CANCELLED && s->where[0]) {
            size_t len = strlen(errmsg);
            snprintf(errmsg + len, sizeof errmsg - len, "\ncancelled at: %s", s->where);
        }
        lua_pop(L, 1);
    }
    double wall = now_s() - t0;
    /* run.json, last */
    json_t *j = json_object();
    static const char *const STATUS[] = {"complete", "failed", "cancelled"};
    json_object_set_new(j, "status", json_string(STATUS[status]));
    if (status != LS_COMPLETE)
        json_object_set_new(j, "error", json_string(errmsg));
    json_object_set_new(j, "pare_version", json_string(PARE_VERSION));
    json_t *rec = json_object();
    json_object_set_new(rec, "path", json_string(s->recipe));
    json_object_set_new(rec, "sha256", json_string(recipe_sha));
    if (lua_getglobal(L, "description") == LUA_TSTRING)
        json_object_set_new(rec, "description", json_string(lua_tostring(L, -1)));
    lua_pop(L, 1);
    json_object_set_new(j, "recipe", rec);
    lrecipe_params_push(L);
    json_t *params = lua_istable(L, -1) ? lsession_to_json(L, -1) : json_object();
    if (json_is_array(params)) { /* a recipe with no parameters but model is impossible; keep the type stable */
        json_decref(params);
        params = json_object();
    }
    lua_pop(L, 1);
    json_object_set_new(j, "params", params);
    json_t *seed = json_object_get(params, "seed");
    json_object_set_new(j, "seed", seed ? json_incref(seed) : json_null());
    lpare_journal_push(L);
    const char *parts[] = {"models", "results", "steps"};
    const char *fields[] = {"models", "rows", "steps"};
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, fields[i]);
        json_object_set_new(j, parts[i], lsession_to_json(L, -1));
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "records");
    json_t *records = lsession_to_json(L, -1);
    if (json_is_array(records) && json_array_size(records) == 0) {
        json_decref(records);
        records = json_object();
    }
    json_object_set_new(j, "records", records);
    lua_pop(L, 2);
    /* the automatic plots, from the results as run.json records them; a plot that fails is logged */
    if (status != LS_CANCELLED) {
        runplot_sink sink = {auto_plot_keep, host_plot, auto_plot_failed, s};
        runplot_auto(json_object_get(j, "results"), s->out, s->out, &sink);
    }
    json_t *plots = json_array();
    for (int i = 0; i < s->n_plots; i++)
        json_array_append_new(plots, json_string(s->plots[i]));
    json_object_set_new(j, "plots", plots);
    char t1[32], t2[32];
    iso_time(started, t1, sizeof t1);
    iso_time(time(NULL), t2, sizeof t2);
    json_object_set_new(j, "started", json_string(t1));
    json_object_set_new(j, "finished", json_string(t2));
    json_object_set_new(j, "wall_s", pare_json_number(wall));
    if (status != LS_COMPLETE)
        emit(s, LS_ERROR, errmsg);
    snprintf(path, sizeof path, "%s/run.json", s->out);
    char werr[4400];
    if (write_json_atomic(path, j, werr, sizeof werr)) {
        emit(s, LS_ERROR, werr);
        snprintf(msg, cap, "%s", werr);
        status = status == LS_COMPLETE ? LS_FAILED : status;
    } else {
        fprintf(s->log, "run.json written: status %s, %.2f s\n", STATUS[status], wall);
        if (status != LS_COMPLETE)
            snprintf(msg, cap, "%s", errmsg);
    }
    json_decref(j);
    fclose(s->log);
    s->log = NULL;
    s->host.out_dir = NULL;
    pare_unlock_keep(&lock);
    return status;
}

/* ---- points ------------------------------------------------------------------------------------ */

/* A point's name becomes a folder name and part of a shell line: letters, digits and ._+=- only. */
static int plain_name(const char *name, size_t len)
{
    if (len == 0 || len > 100 || name[0] == '.' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || strchr("._+=-", name[i])))
            return 0;
    return 1;
}

/* "name=value" for the value at idx as --set reads it back: the same integer, the same double (the
 * shortest decimal that parses to it), true/false, the string. NULL with msg for what --set cannot carry. */
static char *set_text(lua_State *L, const char *where, const char *name, int idx, char *msg, size_t cap)
{
    char num[64];
    const char *v = num;
    size_t len;
    if (lua_isinteger(L, idx))
        snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    else if (lua_type(L, idx) == LUA_TNUMBER) {
        double x = lua_tonumber(L, idx);
        if (!isfinite(x)) {
            snprintf(msg, cap, "%s: %s = %g is not a finite number", where, name, x);
            return NULL;
        }
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(num, sizeof num, "%.*g", digits, x);
            if (strtod(num, NULL) == x)
                break;
        }
    } else if (lua_type(L, idx) == LUA_TBOOLEAN)
        v = lua_toboolean(L, idx) ? "true" : "false";
    else if (lua_type(L, idx) == LUA_TSTRING) {
        v = lua_tolstring(L, idx, &len);
        if (strlen(v) != len || strpbrk(v, "\n\r")) { /* one job per line; a NUL cannot pass through argv */
            snprintf(msg, cap, "%s: %s holds a line break or NUL byte, which a jobs file cannot carry", where, name);
            return NULL;
        }
    } else {
        snprintf(msg, cap, "%s: %s: a %s cannot be given with --set", where, name, luaL_typename(L, idx));
        return NULL;
    }
    char *text = NULL;
    if (asprintf(&text, "%s=%s", name, v) < 0) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    return text;
}

static int cmp_set(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Point i of n of the list at stack index 1 (the run's raw parameter values at 2) into *pt; leaves the
 * stack as it found it on success. */
static int read_point(lsession *s, int i, int n, ls_point *pt, char *msg, size_t cap)
{
    lua_State *L = s->L;
    int top = lua_gettop(L);
    char where[4300];
    snprintf(where, sizeof where, "%s: points(p)[%d]", s->recipe, i);
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) {
        snprintf(msg, cap, "%s is a %s, not {name = \"...\", set = {param = value, ...}}", where, luaL_typename(L, -1));
        return -1;
    }
    int entry = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, entry)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING ||
            (strcmp(lua_tostring(L, -1), "name") && strcmp(lua_tostring(L, -1), "set"))) {
            snprintf(msg, cap, "%s: unknown field '%s' (fields: name, set)", where, luaL_tolstring(L, -1, NULL));
            return -1;
        }
    }
    size_t len = 0;
    lua_pushliteral(L, "name");
    const char *name = lua_rawget(L, entry) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!name || !plain_name(name, len)) {
        snprintf(msg, cap,
                 "%s: name must be a folder name of letters, digits and ._+=- (at most 100 characters, not starting "
                 "with . or -), got %s",
                 where, name ? name : luaL_typename(L, -1));
        return -1;
    }
    snprintf(pt->name, sizeof pt->name, "%0*d-%s", snprintf(NULL, 0, "%d", n), i, name);
    snprintf(where, sizeof where, "%s: point '%s'", s->recipe, name);
    /* the point's values: the run's, then its own, each checked as --set would check it */
    lua_newtable(L);
    int merged = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, merged);
    }
    lua_pushliteral(L, "set");
    int t = lua_rawget(L, entry);
    if (t != LUA_TTABLE && t != LUA_TNIL) {
        snprintf(msg, cap, "%s: set must be a table of parameter values, got a %s", where, luaL_typename(L, -1));
        return -1;
    }
    int set = lua_gettop(L), n_sets = 0;
    lua_pushnil(L);
    while (t == LUA_TTABLE && lua_next(L, set)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(msg, cap, "%s: set's keys must be parameter names, got %s", where, luaL_tolstring(L, -2, NULL));
            return -1;
        }
        const char *bad = lrecipe_check_value(L, lua_tostring(L, -2), -1);
        if (bad) {
            snprintf(msg, cap, "%s: %s", where, bad);
            return -1;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, merged);
    }
    lua_pushnil(L);
    while (lua_next(L, merged)) {
        lua_pop(L, 1);
        n_sets++;
    }
    pt->sets = calloc((size_t)(n_sets ? n_sets : 1), sizeof *pt->sets);
    if (!pt->sets) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, merged)) {
        char *text = set_text(L, where, lua_tostring(L, -2), -1, msg, cap);
        lua_pop(L, 1);
        if (!text)
            return -1;
        pt->sets[pt->n_sets++] = text;
    }
    qsort(pt->sets, (size_t)pt->n_sets, sizeof *pt->sets, cmp_set);
    lua_settop(L, top);
    return 0;
}

void lsession_free_points(ls_point *points, int n)
{
    for (int i = 0; points && i < n; i++) {
        for (int k = 0; k < points[i].n_sets; k++)
            free(points[i].sets[k]);
        free(points[i].sets);
    }
    free(points);
}

int lsession_points(lsession *s, ls_point **points, int *n, char *msg, size_t cap)
{
    lua_State *L = s->L;
    *points = NULL;
    *n = 0;
    CURRENT = s;
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
    int st = lrecipe_points(L);
    lua_sethook(L, NULL, 0, 0);
    if (st == LRECIPE_NO_POINTS) {
        snprintf(msg, cap,
                 "%s declares no points: --emit-jobs needs a recipe with a function points(p) that lists them "
                 "(lua/README.md, \"Points\"), e.g. presets/sweep.lua",
                 s->recipe);
        return -1;
    }
    if (st != LUA_OK) {
        snprintf(msg, cap, "%s: points(p): %s", s->recipe, lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
        lua_settop(L, 0);
        return -1;
    }
    lua_Integer count = lua_istable(L, 1) ? (lua_Integer)lua_rawlen(L, 1) : 0;
    if (count < 1 || count > 100000) {
        snprintf(msg, cap, "%s: points(p) returned %s, not a list of one or more points", s->recipe,
                 lua_istable(L, 1) ? (count ? "too many points" : "an empty list") : luaL_typename(L, 1));
        lua_settop(L, 0);
        return -1;
    }
    ls_point *list = calloc((size_t)count, sizeof *list);
    if (!list) {
        snprintf(msg, cap, "out of memory");
        lua_settop(L, 0);
        return -1;
    }
    for (int i = 1; i <= (int)count; i++) {
        if (read_point(s, i, (int)count, &list[i - 1], msg, cap)) {
            lsession_free_points(list, i);
            lua_settop(L, 0);
            return -1;
        }
        for (int k = 0; k < i - 1; k++) /* the same name twice is the recipe's mistake, not two points */
            if (!strcmp(strchr(list[k].name, '-'), strchr(list[i - 1].name, '-'))) {
                snprintf(msg, cap, "%s: points(p) names two points '%s'", s->recipe, strchr(list[k].name, '-') + 1);
                lsession_free_points(list, i);
                lua_settop(L, 0);
                return -1;
            }
    }
    lua_settop(L, 0);
    *points = list;
    *n = (int)count;
    return 0;
}

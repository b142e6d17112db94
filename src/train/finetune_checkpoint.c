/* Checkpoints of a fine-tuning run: the model as a pare export, the optimizer and pruning state and
 * trainer.json, built as DIR.next and swapped into place so that DIR always holds a complete
 * checkpoint; and the exact resume from one. */
#include "finetune_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/export.h"
#include "core/fileio.h"
#include "core/safetensors.h"

#define CKPT_FORMAT "pare-checkpoint"
#define CKPT_VERSION 1

static pare_status write_state(pare_ft *ft, const char *path, pare_error *err)
{
    pare_grads *g = ft->t->grads;
    pare_adamw *opt = ft->t->opt;
    int nf = ft->fop ? ft->fop->count : 0;
    size_t n = 2 * (size_t)g->n_params + 3 * (size_t)nf;
    pare_st_out *ts = calloc(n ? n : 1, sizeof *ts);
    char *names = calloc(n ? n : 1, 160);
    if (!ts || !names) {
        free(ts);
        free(names);
        return pare_fail(err, PARE_ENOMEM, "out of memory writing the optimizer state");
    }
    size_t k = 0;
    for (int e = 0; e < g->n_params; e++) {
        const pare_param *p = &g->params[e];
        size_t off = (size_t)(p->grad - g->slab);
        for (int j = 0; j < 2; j++, k++) {
            snprintf(names + 160 * k, 160, "%s.%s", j ? "exp_avg_sq" : "exp_avg", p->name);
            ts[k] = (pare_st_out){names + 160 * k, PARE_DT_F32, 1, {(int64_t)p->n}, (j ? opt->v : opt->m) + off};
        }
    }
    static const char *const kinds[] = {"score", "ema", "unc"};
    for (int i = 0; i < nf; i++) {
        const pare_fop_matrix *mt = &ft->fop->mats[i];
        const float *arr[] = {mt->score, mt->ema, mt->unc};
        for (int j = 0; j < 3; j++, k++) {
            snprintf(names + 160 * k, 160, "%s.%s", kinds[j], mt->lin->name);
            ts[k] = (pare_st_out){names + 160 * k, PARE_DT_F32, 2, {mt->lin->out, mt->lin->in}, arr[j]};
        }
    }
    json_t *meta = json_pack("{s:s}", "format", "pare-optimizer");
    pare_status rc = pare_st_write(path, ts, k, meta, err);
    json_decref(meta);
    free(ts);
    free(names);
    return rc;
}

pare_status pare_ft_save(pare_ft *ft, const char *dir_in, const char *options_json, pare_error *err)
{
    char dir[4096], next[4200], path[4400];
    if (!dir_in || !*dir_in || strlen(dir_in) >= sizeof dir - 16)
        return pare_fail(err, PARE_EINVAL, "checkpoint folder name '%s' is empty or too long", dir_in ? dir_in : "");
    snprintf(dir, sizeof dir, "%s", dir_in);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    snprintf(next, sizeof next, "%s.next", dir);
    json_t *opts = NULL;
    if (options_json) {
        json_error_t je;
        opts = json_loads(options_json, 0, &je);
        if (!json_is_object(opts)) {
            json_decref(opts);
            return pare_fail(err, PARE_EINVAL, "checkpoint options are not a JSON object: %s", je.text);
        }
    }
    struct stat sb;
    if (lstat(next, &sb) == 0 && (!S_ISDIR(sb.st_mode) || pare_remove_flat_dir(next, NULL) != 0)) {
        json_decref(opts);
        return pare_fail(err, PARE_EIO, "%s: a stale checkpoint folder is in the way and cannot be removed", next);
    }
    pare_export_opts xo;
    pare_export_defaults(&xo);
    xo.format = PARE_EXPORT_PARE;
    xo.producer = "pare checkpoint";
    pare_status rc = pare_export(ft->m, next, &xo, NULL, NULL, err);
    if (!rc && !(rc = pare_path_join(path, sizeof path, next, "optimizer.safetensors", err)))
        rc = write_state(ft, path, err);
    if (!rc && !(rc = pare_path_join(path, sizeof path, next, "trainer.json", err))) {
        json_t *j = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "format", CKPT_FORMAT, "version", CKPT_VERSION, "step",
                              (json_int_t)ft->t->step, "steps", (json_int_t)ft->o.steps, "adam_step",
                              (json_int_t)ft->t->opt->step, "fop_updates", (json_int_t)(ft->fop ? ft->fop->updates : 0));
        json_object_set(j, "options", opts ? opts : json_null());
        rc = j ? pare_write_json_atomic(path, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err)
               : pare_fail(err, PARE_ENOMEM, "out of memory");
        json_decref(j);
    }
    json_decref(opts);
    if (!rc) {
        pare_fsync_dir(next);
        /* the commit point: dir changes from the old complete checkpoint to the new one in one rename */
        if (lstat(dir, &sb) != 0) {
            if (rename(next, dir) != 0)
                rc = pare_fail(err, PARE_EIO, "%s: cannot rename the checkpoint into place: %s", dir, strerror(errno));
        } else if (!S_ISDIR(sb.st_mode)) {
            rc = pare_fail(err, PARE_EINVAL, "%s: exists and is not a checkpoint folder", dir);
        } else if (renameat2(AT_FDCWD, next, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
            if (pare_remove_flat_dir(next, NULL) != 0)
                rc = pare_fail(err, PARE_EIO,
                               "%s: the checkpoint is in place but the previous one (now %s) could not "
                               "be removed",
                               dir, next);
        } else {
            char old[4200];
            snprintf(old, sizeof old, "%s.old", dir);
            if (lstat(old, &sb) == 0)
                pare_remove_flat_dir(old, NULL);
            if (rename(dir, old) != 0 || rename(next, dir) != 0)
                rc = pare_fail(err, PARE_EIO, "%s: cannot swap the new checkpoint into place: %s", dir, strerror(errno));
            else
                pare_remove_flat_dir(old, NULL);
        }
    }
    if (rc && lstat(next, &sb) == 0)
        pare_remove_flat_dir(next, NULL);
    return rc;
}

static pare_status read_trainer_json(const char *dir, json_t **out, pare_error *err)
{
    char path[4400];
    pare_status rc = pare_path_join(path, sizeof path, dir, "trainer.json", err);
    if (rc)
        return rc;
    if (!pare_file_exists(path))
        return pare_fail(err, PARE_EIO, "%s: not found (not a checkpoint folder)", path);
    json_t *j;
    if ((rc = pare_load_json(path, 0, &j, err)))
        return rc;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || json_integer_value(json_object_get(j, "version")) != CKPT_VERSION ||
        !json_is_integer(json_object_get(j, "step")) || json_integer_value(json_object_get(j, "step")) < 0) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s: not a version %d pare checkpoint (format, version or step missing)",
                         path, CKPT_VERSION);
    }
    *out = j;
    return PARE_OK;
}

pare_status pare_ft_checkpoint_info(const char *dir, long *step, char **options_json, pare_error *err)
{
    json_t *j = NULL;
    pare_status rc = read_trainer_json(dir, &j, err);
    if (rc)
        return rc;
    *step = (long)json_integer_value(json_object_get(j, "step"));
    if (options_json) {
        json_t *o = json_object_get(j, "options");
        *options_json = json_is_object(o) ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    }
    json_decref(j);
    return PARE_OK;
}

/* Copies tensor `name` (F32, n entries) of st into dst. */
static pare_status restore(const pare_safetensors *st, const char *path, const char *name, float *dst, size_t n,
                           pare_error *err)
{
    const pare_st_tensor *t = pare_st_find(st, name);
    if (!t)
        return pare_fail(err, PARE_EFORMAT, "%s: no tensor '%s' (was the checkpoint made with other options?)", path,
                         name);
    if (t->dtype != PARE_DT_F32 || pare_st_numel(t) != n)
        return pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' is %s with %zu entries, expected F32 with %zu", path, name,
                         pare_dtype_name(t->dtype), pare_st_numel(t), n);
    return pare_st_to_f32(st, t, dst, err);
}

pare_status pare_ft_load_state(pare_ft *ft, const char *dir, pare_error *err)
{
    json_t *j = NULL;
    pare_status rc = read_trainer_json(dir, &j, err);
    if (rc)
        return rc;
    long step = (long)json_integer_value(json_object_get(j, "step"));
    long adam = (long)json_integer_value(json_object_get(j, "adam_step"));
    long upd = (long)json_integer_value(json_object_get(j, "fop_updates"));
    json_decref(j);
    if (step > ft->o.steps)
        return pare_fail(err, PARE_EINVAL, "%s: the checkpoint is at step %ld, beyond the run's %ld steps", dir, step,
                         ft->o.steps);
    char path[4400];
    if ((rc = pare_path_join(path, sizeof path, dir, "optimizer.safetensors", err)))
        return rc;
    pare_safetensors st;
    if ((rc = pare_st_open_file(path, &st, err)))
        return rc;
    pare_grads *g = ft->t->grads;
    char name[200];
    for (int e = 0; e < g->n_params && !rc; e++) {
        const pare_param *p = &g->params[e];
        size_t off = (size_t)(p->grad - g->slab);
        snprintf(name, sizeof name, "exp_avg.%s", p->name);
        if (!(rc = restore(&st, path, name, ft->t->opt->m + off, p->n, err))) {
            snprintf(name, sizeof name, "exp_avg_sq.%s", p->name);
            rc = restore(&st, path, name, ft->t->opt->v + off, p->n, err);
        }
    }
    static const char *const kinds[] = {"score", "ema", "unc"};
    for (int i = 0; !rc && ft->fop && i < ft->fop->count; i++) {
        pare_fop_matrix *mt = &ft->fop->mats[i];
        float *arr[] = {mt->score, mt->ema, mt->unc};
        for (int k = 0; k < 3 && !rc; k++) {
            snprintf(name, sizeof name, "%s.%s", kinds[k], mt->lin->name);
            rc = restore(&st, path, name, arr[k], mt->n, err);
        }
    }
    pare_st_close(&st);
    if (rc)
        return rc;
    ft->t->step = step;
    ft->t->opt->step = adam;
    if (ft->fop)
        ft->fop->updates = upd;
    return PARE_OK;
}

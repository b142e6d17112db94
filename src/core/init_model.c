/* pare init: the checkpoint's tensor list from a config (names from the loader's own tables:
 * pare_model_named_params for embeddings, norms and head, pare_lin_kinds for the block matrices)
 * and a streamed writer of seeded random values into an atomic Hugging Face folder. */
#include "init_model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "export.h"
#include "fileio.h"
#include "model_pare.h"
#include "parallel.h"
#include "rng.h"

/* Values drawn by one thread at a time (a writer holds one such buffer per thread), and the unit of
 * the seeded streams (chunk c of tensor t has its own seed), so the bytes do not depend on how the
 * work is split. */
#define INIT_CHUNK ((size_t)1 << 20)

/* transformers' PretrainedConfig default initializer_range */
#define DEFAULT_INIT_STD 0.02

void pare_init_defaults(pare_init_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dtype = PARE_DT_BF16;
    o->max_shard_bytes = PARE_INIT_DEFAULT_SHARD_BYTES;
}

static void set_tensor(pare_hf_tensor *t, const char *name, pare_tensor_role role, int64_t d0, int64_t d1)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->role = role;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
}

/* The stored tensors of one block's linears: one per kind, or one per fused group (its rows the
 * group's rows stacked in kind order), each with its bias when the config gives one. Returns the
 * count; fills out when non-NULL. */
static size_t block_linear_tensors(const pare_config *c, int layer, pare_hf_tensor *out)
{
    size_t n = 0;
    char prefix[48], name[96];
    snprintf(prefix, sizeof prefix, pare_archs[c->arch].layer_prefix, layer);
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        const char *hf = pare_lin_kinds[k].hf[c->arch], *fused = pare_lin_kinds[k].fused[c->arch];
        if (!hf)
            continue;
        int first = 1, rows = 0, out_k, in_k;
        pare_lin_shape(c, (pare_lin_kind)k, &out_k, &in_k);
        for (int j = 0; j < PARE_LIN_KINDS; j++) {
            if (!pare_lin_same_tensor(c->arch, j, k))
                continue;
            int out_j, in_j;
            pare_lin_shape(c, (pare_lin_kind)j, &out_j, &in_j);
            rows += out_j;
            first &= j >= k;
        }
        if (!first) /* written with the first kind of its fused tensor */
            continue;
        int conv1d = pare_archs[c->arch].conv1d; /* Conv1D stores [in, out] */
        if (out) {
            snprintf(name, sizeof name, "%s%s.weight", prefix, fused ? fused : hf);
            set_tensor(&out[n], name, PARE_TENSOR_WEIGHT, conv1d ? in_k : rows, conv1d ? rows : in_k);
        }
        n++;
        if (!pare_config_lin_bias(c, (pare_lin_kind)k))
            continue;
        if (out) {
            snprintf(name, sizeof name, "%s%s.bias", prefix, fused ? fused : hf);
            set_tensor(&out[n], name, PARE_TENSOR_BIAS, rows, 0);
        }
        n++;
    }
    return n;
}

pare_status pare_config_hf_tensors(const pare_config *c, pare_hf_tensor **out, size_t *n_out, pare_error *err)
{
    *out = NULL;
    *n_out = 0;
    /* a model with only its config and zeroed blocks: pare_model_named_params lists from cfg alone */
    pare_model shell;
    memset(&shell, 0, sizeof shell);
    shell.cfg = *c;
    shell.blocks = calloc((size_t)c->n_layers, sizeof *shell.blocks);
    int np = pare_model_named_params(&shell, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    size_t per_block = block_linear_tensors(c, 0, NULL), cap = (size_t)np + per_block * (size_t)c->n_layers;
    pare_hf_tensor *t = malloc(cap * sizeof *t);
    if (!shell.blocks || !refs || !t) {
        free(shell.blocks);
        free(refs);
        free(t);
        return pare_fail(err, PARE_ENOMEM, "out of memory listing the tensors of a %d-layer model", c->n_layers);
    }
    pare_model_named_params(&shell, refs);
    free(shell.blocks);
    /* the named list ends with an untied head; its other matrices are embeddings, the rest norms */
    int head = c->tied_head ? -1 : np - 1;
    size_t n = 0;
    for (int i = 0; i < np; i++)
        if (refs[i].d1 && i != head)
            set_tensor(&t[n++], refs[i].name, PARE_TENSOR_EMBEDDING, refs[i].d0, refs[i].d1);
    for (int l = 0; l < c->n_layers; l++)
        n += block_linear_tensors(c, l, t + n);
    for (int i = 0; i < np; i++) {
        size_t len = strlen(refs[i].name);
        int bias = len > 5 && !strcmp(refs[i].name + len - 5, ".bias");
        if (!refs[i].d1)
            set_tensor(&t[n++], refs[i].name, bias ? PARE_TENSOR_NORM_BIAS : PARE_TENSOR_NORM, refs[i].d0, 0);
    }
    if (head >= 0)
        set_tensor(&t[n++], refs[head].name, PARE_TENSOR_HEAD, refs[head].d0, refs[head].d1);
    free(refs);
    *out = t;
    *n_out = n;
    return PARE_OK;
}

pare_status pare_config_param_counts(const pare_config *c, pare_param_counts *pc, pare_error *err)
{
    memset(pc, 0, sizeof *pc);
    pare_hf_tensor *t;
    size_t n;
    pare_status rc = pare_config_hf_tensors(c, &t, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        pare_tensor_role r = t[i].role;
        size_t *bucket = r == PARE_TENSOR_EMBEDDING                         ? &pc->embeddings
                         : r == PARE_TENSOR_WEIGHT || r == PARE_TENSOR_BIAS ? &pc->block_linear
                         : r == PARE_TENSOR_HEAD                            ? &pc->head
                                                                            : &pc->norms;
        *bucket += t[i].numel;
        pc->total += t[i].numel;
    }
    free(t);
    return PARE_OK;
}

/* ---------------------------------------------------------------- the writer */

typedef struct {
    const pare_config *cfg;
    const pare_init_opts *o;
    const pare_progress *prog;
    pare_hf_tensor *t;
    size_t n;
    int *shard_of; /* [n] the shard (0-based) each tensor goes to */
    int shards;
    double init_std; /* config.json's initializer_range */
    size_t tensor_bytes, done_bytes;
    int lanes;     /* chunks drawn at once, one per thread */
    float *values; /* [lanes, INIT_CHUNK] */
} init_job;

/* One chunk of tensor ti's initial values into v[0..m): seeded by (seed, tensor, chunk). */
static void fill_chunk(const init_job *job, size_t ti, size_t chunk, float *v, size_t m)
{
    const pare_hf_tensor *t = &job->t[ti];
    pare_tensor_role r = t->role;
    if (r == PARE_TENSOR_BIAS || r == PARE_TENSOR_NORM_BIAS || r == PARE_TENSOR_NORM) {
        /* Gemma's norms scale by (1 + w): its checkpoints start them at 0 */
        float value = r == PARE_TENSOR_NORM && !pare_config_family(job->cfg)->gemma ? 1.0f : 0.0f;
        for (size_t i = 0; i < m; i++)
            v[i] = value;
        return;
    }
    pare_normal_rng rng = {pare_hash3(job->o->seed, ti, chunk), 1.0, 0.0, 0, 0.0};
    for (size_t i = 0; i < m; i++)
        v[i] = (float)(job->init_std * pare_normal(&rng));
}

/* Shards as huggingface_hub splits a state dict: in order, a new shard when the next tensor would
 * take the current one past the limit (a tensor larger than the limit gets a shard of its own). */
static void plan_shards(init_job *job)
{
    size_t es = pare_dtype_size(job->o->dtype), size = 0;
    int shard = 0;
    for (size_t i = 0; i < job->n; i++) {
        size_t b = job->t[i].numel * es;
        if (i > 0 && size + b > job->o->max_shard_bytes) {
            shard++;
            size = 0;
        }
        job->shard_of[i] = shard;
        size += b;
        job->tensor_bytes += b;
    }
    job->shards = shard + 1;
}

static void shard_name(const init_job *job, int s, char *out, size_t cap)
{
    if (job->shards == 1)
        snprintf(out, cap, "model.safetensors");
    else
        snprintf(out, cap, "model-%05d-of-%05d.safetensors", s + 1, job->shards);
}

/* Writes shard s into dir, tensor by tensor, chunk by chunk. */
static pare_status write_shard(init_job *job, int s, const char *dir, pare_error *err)
{
    char name[64], path[4400];
    shard_name(job, s, name, sizeof name);
    pare_status rc = pare_path_join(path, sizeof path, dir, name, err);
    if (rc)
        return rc;
    size_t first = 0, count = 0;
    while (job->shard_of[first] != s)
        first++;
    while (first + count < job->n && job->shard_of[first + count] == s)
        count++;
    pare_st_out *outs = calloc(count, sizeof *outs);
    json_t *meta = json_pack("{s:s}", "format", "pt");
    if (!outs || !meta) {
        free(outs);
        json_decref(meta);
        return pare_fail(err, PARE_ENOMEM, "out of memory writing %s", path);
    }
    for (size_t i = 0; i < count; i++) {
        const pare_hf_tensor *t = &job->t[first + i];
        outs[i].name = t->name;
        outs[i].dtype = job->o->dtype;
        outs[i].ndim = t->ndim;
        outs[i].shape[0] = t->shape[0];
        outs[i].shape[1] = t->shape[1];
    }
    pare_st_writer w;
    rc = pare_st_writer_open(&w, path, outs, count, meta, err);
    json_decref(meta);
    free(outs);
    if (rc)
        return rc;
    size_t es = pare_dtype_size(job->o->dtype);
    for (size_t i = first; i < first + count && rc == PARE_OK; i++) {
        const pare_hf_tensor *t = &job->t[i];
        size_t chunks = (t->numel + INIT_CHUNK - 1) / INIT_CHUNK;
        /* Drawing normals is the cost (writing runs at disk speed): `lanes` chunks are drawn in
         * parallel, then written in order. Each chunk has its own stream, so the bytes are those of
         * one thread. */
        for (size_t c0 = 0; c0 < chunks && rc == PARE_OK; c0 += (size_t)job->lanes) {
            rc = pare_report(job->prog, "init", job->tensor_bytes ? (double)job->done_bytes / job->tensor_bytes : 0,
                             t->name, err);
            if (rc)
                break;
            size_t batch = chunks - c0 < (size_t)job->lanes ? chunks - c0 : (size_t)job->lanes;
#pragma omp parallel for schedule(static, 1) num_threads(job->lanes) if (batch > 1)
            for (size_t b = 0; b < batch; b++) {
                size_t at = (c0 + b) * INIT_CHUNK;
                size_t m = t->numel - at < INIT_CHUNK ? t->numel - at : INIT_CHUNK;
                fill_chunk(job, i, c0 + b, job->values + b * INIT_CHUNK, m);
            }
            size_t at = c0 * INIT_CHUNK;
            size_t m = t->numel - at < batch * INIT_CHUNK ? t->numel - at : batch * INIT_CHUNK;
            rc = pare_st_writer_put(&w, job->values, m, job->o->dtype, err);
            job->done_bytes += m * es;
        }
    }
    if (rc) {
        pare_st_writer_abort(&w);
        return rc;
    }
    return pare_st_writer_commit(&w, err);
}

/* model.safetensors.index.json as transformers writes it: total_size, total_parameters, and the
 * weight map with sorted keys. */
static pare_status write_index(const init_job *job, const char *dir, pare_error *err)
{
    size_t params = 0;
    json_t *map = json_object();
    for (size_t i = 0; i < job->n && map; i++) {
        char name[64];
        shard_name(job, job->shard_of[i], name, sizeof name);
        params += job->t[i].numel;
        if (json_object_set_new(map, job->t[i].name, json_string(name)) != 0) {
            json_decref(map);
            map = NULL;
        }
    }
    json_t *root = map ? json_pack("{s:{s:I, s:I}, s:o}", "metadata", "total_parameters", (json_int_t)params,
                                   "total_size", (json_int_t)job->tensor_bytes, "weight_map", map)
                       : NULL;
    if (!root)
        return pare_fail(err, PARE_ENOMEM, "out of memory writing the shard index");
    char path[4400];
    pare_status rc = pare_path_join(path, sizeof path, dir, "model.safetensors.index.json", err);
    if (rc == PARE_OK)
        rc = pare_write_json_atomic(path, root, JSON_INDENT(2) | JSON_SORT_KEYS, err);
    json_decref(root);
    return rc;
}

static const char *torch_dtype_name(pare_dtype dt)
{
    return dt == PARE_DT_F16 ? "float16" : dt == PARE_DT_BF16 ? "bfloat16" : "float32";
}

/* config.json: the given text with torch_dtype (and transformers 5's dtype, when present) set to
 * the dtype written; everything else as given. Also reads initializer_range. */
static pare_status write_config(const char *config_path, init_job *job, const char *dir, pare_error *err)
{
    json_t *root;
    pare_status rc = pare_load_json(config_path, 0, &root, err);
    if (rc)
        return rc;
    json_t *ir = json_object_get(root, "initializer_range");
    job->init_std = DEFAULT_INIT_STD;
    if (ir && !json_is_null(ir)) {
        double x = json_is_number(ir) ? json_number_value(ir) : -1;
        if (!(x > 0) || !isfinite(x)) {
            json_decref(root);
            return pare_fail(err, PARE_EFORMAT, "%s: \"initializer_range\" must be a positive number", config_path);
        }
        job->init_std = x;
    }
    const char *dt = torch_dtype_name(job->o->dtype);
    int has_dtype = json_object_get(root, "dtype") != NULL;
    if (has_dtype)
        json_object_set_new(root, "dtype", json_string(dt));
    if (!has_dtype || json_object_get(root, "torch_dtype"))
        json_object_set_new(root, "torch_dtype", json_string(dt));
    char *text = pare_json_dumps_readable(root);
    json_decref(root);
    if (!text)
        return pare_fail(err, PARE_ENOMEM, "out of memory writing config.json");
    char path[4400];
    pare_atomic_file f;
    if ((rc = pare_path_join(path, sizeof path, dir, "config.json", err)) == PARE_OK &&
        (rc = pare_atomic_open(&f, path, err)) == PARE_OK) {
        fputs(text, f.fp);
        fputc('\n', f.fp);
        rc = pare_atomic_commit(&f, err);
    }
    free(text);
    return rc;
}

/* The tokenizer must belong to the model (the loader's check, run before anything is written). */
static pare_status check_tokenizer(const pare_config *c, const char *tok, pare_error *err)
{
    size_t len = strlen(tok);
    if (len < 5 || strcmp(tok + len - 5, ".json") != 0)
        return pare_check_input(tok, err);
    pare_model shell;
    memset(&shell, 0, sizeof shell);
    shell.cfg = *c;
    pare_status rc = pare_model_load_hf_tokenizer(&shell, tok, err);
    pare_tokenizer_free(shell.tok);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The size of dir/name, 0 when absent. */
static size_t file_size(const char *dir, const char *name)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* The tokenizer keeps its own name (tokenizer.json, tokenizer.model), as the loader looks for it. */
static pare_status copy_tokenizer(const char *tok, const char *dir, pare_error *err)
{
    char dst[4400];
    pare_status rc = pare_path_join(dst, sizeof dst, dir, base_name(tok), err);
    return rc ? rc : pare_copy_file(tok, dst, err);
}

/* Refuses before writing when the file system holding dir has less room than the model needs. */
static pare_status check_free_space(const char *dir, size_t need, pare_error *err)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash)
        slash[slash == parent] = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    struct statvfs vfs;
    if (statvfs(parent, &vfs) != 0)
        return PARE_OK; /* the writes themselves will report what is wrong */
    size_t avail = (size_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < need)
        return pare_fail(err, PARE_EIO, "%s: the model needs %.2f GB but its file system has %.2f GB free", dir,
                         need / 1e9, avail / 1e9);
    return PARE_OK;
}

static pare_status init_locked(const char *config_path, const char *dir, init_job *job, pare_init_report *rep,
                               pare_error *err)
{
    struct stat st;
    int exists = lstat(dir, &st) == 0;
    pare_status rc;
    if (exists && !job->o->overwrite)
        return pare_fail(err, PARE_EINVAL, "%s: already exists; choose a new folder or allow overwriting", dir);
    if (exists && (rc = pare_dir_check_replaceable(dir, err)))
        return rc;
    if (job->o->tokenizer && (rc = check_tokenizer(job->cfg, job->o->tokenizer, err)))
        return rc;
    if ((rc = check_free_space(dir, job->tensor_bytes, err)))
        return rc;
    char tmp[4200];
    if (pare_make_sibling_dir(tmp, sizeof tmp, dir, "tmp") != 0)
        return pare_fail(err, PARE_EIO, "%s: cannot create the temporary folder %s: %s", dir, tmp, strerror(errno));
    rc = write_config(config_path, job, tmp, err);
    if (rc == PARE_OK && job->o->tokenizer)
        rc = copy_tokenizer(job->o->tokenizer, tmp, err);
    for (int s = 0; s < job->shards && rc == PARE_OK; s++)
        rc = write_shard(job, s, tmp, err);
    if (rc == PARE_OK && job->shards > 1)
        rc = write_index(job, tmp, err);
    if (rc == PARE_OK) {
        pare_fsync_dir(tmp);
        rc = pare_report(job->prog, "init", 1.0, "rename into place", err);
    }
    if (rc == PARE_OK)
        rc = pare_commit_dir(tmp, dir, exists, err);
    if (rc != PARE_OK) {
        if (pare_is_dir(tmp))
            pare_remove_flat_dir(tmp, NULL);
        return rc;
    }
    if (rep) {
        size_t es = pare_dtype_size(job->o->dtype);
        rep->tensor_bytes = job->tensor_bytes;
        rep->tensors = job->n;
        rep->shards = job->shards;
        for (size_t i = 0; i < job->n; i++) {
            rep->params += job->t[i].numel;
            if (job->t[i].numel * es > rep->largest_tensor_bytes)
                rep->largest_tensor_bytes = job->t[i].numel * es;
        }
        /* measured, so the report is what is on disk (headers, config, index, tokenizer) */
        rep->bytes_on_disk = file_size(dir, "config.json") + file_size(dir, "model.safetensors.index.json");
        for (int s = 0; s < job->shards; s++) {
            char name[64];
            shard_name(job, s, name, sizeof name);
            rep->bytes_on_disk += file_size(dir, name);
        }
        if (job->o->tokenizer)
            rep->bytes_on_disk += file_size(dir, base_name(job->o->tokenizer));
    }
    return PARE_OK;
}

pare_status pare_init_model(const char *config_path, const char *dir_in, const pare_init_opts *o,
                            const pare_progress *prog, pare_init_report *rep, pare_error *err)
{
    if (rep)
        memset(rep, 0, sizeof *rep);
    pare_init_opts def;
    if (!o) {
        pare_init_defaults(&def);
        o = &def;
    }
    if (o->dtype != PARE_DT_F32 && o->dtype != PARE_DT_F16 && o->dtype != PARE_DT_BF16)
        return pare_fail(err, PARE_EINVAL, "init: dtype %s is not supported; supported: F32, F16, BF16",
                         pare_dtype_name(o->dtype));
    if (o->max_shard_bytes == 0)
        return pare_fail(err, PARE_EINVAL, "init: the shard size limit must be positive");
    char dir[4096];
    pare_status rc = pare_output_folder(dir_in, dir, sizeof dir, "init", err);
    if (rc)
        return rc;
    pare_config cfg;
    if ((rc = pare_config_load_hf(config_path, &cfg, err)))
        return rc;
    init_job job = {.cfg = &cfg, .o = o, .prog = prog};
    if ((rc = pare_config_hf_tensors(&cfg, &job.t, &job.n, err)))
        return rc;
    job.shard_of = malloc(job.n * sizeof *job.shard_of);
    /* threads x 4 MiB: still far below the largest tensor of any shape worth drawing in parallel */
    job.lanes = pare_threads() < 16 ? pare_threads() : 16;
    job.values = malloc((size_t)job.lanes * INIT_CHUNK * sizeof *job.values);
    if (!job.shard_of || !job.values) {
        rc = pare_fail(err, PARE_ENOMEM, "out of memory preparing the model");
    } else {
        plan_shards(&job);
        pare_lock lk;
        /* a second writer of the same folder is refused while this one runs */
        if ((rc = pare_lock_dir(&lk, dir, err)) == PARE_OK) {
            rc = init_locked(config_path, dir, &job, rep, err);
            pare_unlock(&lk);
        }
    }
    free(job.t);
    free(job.shard_of);
    free(job.values);
    return rc;
}

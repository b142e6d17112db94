/* Export of compressed models (hf-dense and the pare format; model_pare.c reads the pare format back).
 * Both exports are described first as a plan (file texts, tensor list, files to copy) so that
 * pare_export_size can answer without writing; the writer then streams one tensor at a time, so
 * peak memory is one tensor, not a second copy of the model. */
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "safetensors.h"
#include "json_number.h"

#define WEIGHTS_FILE "model.safetensors"

/* Tokenizer and generation files copied from the source folder when present. */
static const char *const COPY_FILES[] = {"tokenizer.json",
                                         "tokenizer_config.json",
                                         "special_tokens_map.json",
                                         "generation_config.json",
                                         "vocab.json",
                                         "merges.txt",
                                         "tokenizer.model",
                                         "tokenizer.bin"};
#define N_COPY ((int)(sizeof COPY_FILES / sizeof COPY_FILES[0]))

void pare_export_defaults(pare_export_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = PARE_EXPORT_HF_DENSE;
    o->dtype = "F32";
    o->factor_dtype = "F32";
}

const char *pare_export_format_name(pare_export_format f) { return f == PARE_EXPORT_PARE ? "pare" : "hf-dense"; }

pare_status pare_export_format_parse(const char *name, pare_export_format *f, pare_error *err)
{
    if (name && strcmp(name, "hf-dense") == 0)
        *f = PARE_EXPORT_HF_DENSE;
    else if (name && strcmp(name, "pare") == 0)
        *f = PARE_EXPORT_PARE;
    else
        return pare_fail(err, PARE_EINVAL, "export format '%s' is unknown; supported: hf-dense, pare", name ? name : "");
    return PARE_OK;
}

/* ---------------------------------------------------------------- the plan */

typedef enum {
    SRC_F32,    /* p: numel floats, converted to the stored dtype */
    SRC_BYTES,  /* p: raw little-endian bytes (I32 indices) */
    SRC_DENSE,  /* effective weights of l[0..nl) stacked along out, zero-padded to [rows, cols] */
    SRC_BIAS,   /* biases of l[0..nl) stacked, zero-padded to [rows] */
    SRC_FACTOR, /* factor A (rows == l[0]->out) or B of l[0], as it is when written */
    SRC_MASK    /* l[0]'s mask as U8, as it is when written (a streamed model's spilled mask is read back then) */
} src_kind;

typedef struct {
    char name[160];
    pare_dtype dtype;
    int ndim;
    int64_t shape[2];
    size_t nbytes;
    src_kind src;
    const void *p;
    const pare_linear *l[3];
    int part_rows[3]; /* rows each of l takes in the stacked tensor: its own, or F for a narrowed FFN part */
    int nl;
    int rows, cols;
    int transpose; /* SRC_DENSE stored [cols, rows]: GPT-2's Conv1D keeps weights as [in, out] */
} tensor_plan;

typedef struct {
    tensor_plan *t;
    size_t n, cap;
    char *config;    /* config.json text */
    char *manifest;  /* pare.json text, or NULL */
    char *st_header; /* safetensors header JSON, space-padded to a multiple of 8 */
    size_t st_header_len;
    size_t tensor_bytes;
    char copy_src[N_COPY][4400];
    const char *copy_name[N_COPY];
    size_t copy_len[N_COPY];
    int n_copy;
    int ffn_width, padded_blocks;
    size_t total_bytes;
    int files;
} plan;

static void plan_free(plan *pl)
{
    free(pl->t);
    free(pl->config);
    free(pl->manifest);
    free(pl->st_header);
    memset(pl, 0, sizeof *pl);
}

static tensor_plan *plan_add(plan *pl, pare_error *err)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 64;
        tensor_plan *t = realloc(pl->t, cap * sizeof *t);
        if (!t) {
            pare_fail(err, PARE_ENOMEM, "out of memory planning the export");
            return NULL;
        }
        pl->t = t;
        pl->cap = cap;
    }
    tensor_plan *t = &pl->t[pl->n++];
    memset(t, 0, sizeof *t);
    return t;
}

static pare_status add_tensor(plan *pl, src_kind src, pare_dtype dt, int64_t d0, int64_t d1, const void *p,
                              pare_error *err, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* Adds one tensor of shape [d0] (d1 == 0) or [d0, d1]; SRC_DENSE / SRC_BIAS callers fill l/nl/rows/cols. */
static pare_status add_tensor(plan *pl, src_kind src, pare_dtype dt, int64_t d0, int64_t d1, const void *p,
                              pare_error *err, const char *fmt, ...)
{
    tensor_plan *t = plan_add(pl, err);
    if (!t)
        return PARE_ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->src = src;
    t->dtype = dt;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->nbytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * pare_dtype_size(dt);
    t->p = p;
    return PARE_OK;
}

static tensor_plan *last(plan *pl) { return &pl->t[pl->n - 1]; }

/* t takes its values from linear l when written (a streamed model's block exists only while
 * acquired): [rows, cols] of l's weight, factor or bias. */
static void of_linear(tensor_plan *t, const pare_linear *l, int rows, int cols)
{
    t->l[0] = l;
    t->part_rows[0] = t->rows = rows;
    t->cols = cols;
    t->nl = 1;
}

/* what names the option in the error ("dtype", "factor dtype"); NULL is F32. */
static pare_status parse_dtype(const char *what, const char *s, pare_dtype *dt, pare_error *err)
{
    if (!s)
        *dt = PARE_DT_F32;
    else if (!pare_float_dtype_parse(s, dt))
        return pare_fail(err, PARE_EINVAL, "export %s '%s' is not supported; supported: F32, F16, BF16", what, s);
    return PARE_OK;
}

/* v stored as dt (F16 or BF16, rounded to nearest even): its 16 bits. A finite value beyond F16's
 * range would be stored as infinity: an error naming the tensor, not a silently broken model. */
static pare_status to_half(float v, pare_dtype dt, const char *tensor, size_t at, uint16_t *h, pare_error *err)
{
    *h = dt == PARE_DT_BF16 ? pare_f32_to_bf16(v) : pare_f32_to_f16(v);
    if (dt == PARE_DT_F16 && isfinite(v) && !isfinite(pare_f16_to_f32(*h)))
        return pare_fail(err, PARE_EINVAL, "tensor '%s': value %g at %zu exceeds the F16 range", tensor, (double)v, at);
    return PARE_OK;
}

static const char *torch_dtype(pare_dtype dt)
{
    return dt == PARE_DT_F16 ? "float16" : dt == PARE_DT_BF16 ? "bfloat16" : "float32";
}

/* The source folder (for config.json and tokenizer files): the HF folder itself, or the folder of a
 * llama2.c checkpoint file. */
static void source_dir(const pare_model *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s", m->path);
    if (!pare_is_dir(out)) {
        char *slash = strrchr(out, '/');
        if (slash)
            slash[slash == out] = '\0'; /* "/x.bin" lives in "/" */
        else
            snprintf(out, cap, ".");
    }
}

/* The fewest significant digits that print every real in j exactly (jansson prints 17, turning a
 * config's 0.1 into 0.10000000000000001; the shortest exact form keeps copied configs readable). */
static int real_digits(json_t *j)
{
    int p = 1;
    if (json_is_real(j)) {
        double v = json_real_value(j);
        char buf[64];
        for (p = 1; p < 17; p++) {
            snprintf(buf, sizeof buf, "%.*g", p, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        /* enough digits for the integer part, so 10000.0 does not print as 1e4 */
        int ip = fabs(v) >= 1 && fabs(v) < 1e17 ? (int)floor(log10(fabs(v))) + 1 : 0;
        p = ip > p ? ip : p;
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            int q = real_digits(v);
            p = q > p ? q : p;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            int q = real_digits(v);
            p = q > p ? q : p;
        }
    }
    return p;
}

char *pare_json_dumps_readable(json_t *j)
{
    return json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(real_digits(j)));
}

/* config.json: the source's own config as read at load (so HF-only keys survive) when it came from a
 * folder, else (llama2.c) one synthesized from cfg; then the FFN width and dtype are set. */
static pare_status make_config(const pare_model *m, int ffn, pare_dtype dt, char **text, pare_error *err)
{
    const pare_config *c = &m->cfg;
    json_t *root = NULL;
    if (m->config_text) {
        json_error_t je;
        root = json_loads(m->config_text, 0, &je);
        if (!json_is_object(root)) {
            json_decref(root);
            return pare_fail(err, PARE_EFORMAT, "%s: the config.json read at load is not a JSON object", m->path);
        }
    } else if (c->arch != PARE_ARCH_GPT2 && c->family != PARE_FAMILY_LLAMA) {
        /* the synthesized configs below describe plain Llama and GPT-2 only */
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: no config.json was read at load, and pare writes one only for Llama and GPT-2, not %s",
                         m->path, pare_config_family(c)->name);
    } else if (c->arch == PARE_ARCH_LLAMA) {
        /* llama2.c fixes eps 1e-5 and theta 10000; written so HF reads back the same fp32 values */
        root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:s, s:b, s:b, s:b}",
                         "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", c->dim,
                         "intermediate_size", c->ffn_dim, "num_hidden_layers", c->n_layers, "num_attention_heads",
                         c->n_heads, "num_key_value_heads", c->n_kv_heads, "head_dim", c->head_dim, "vocab_size",
                         c->vocab_size, "max_position_embeddings", c->max_pos, "rms_norm_eps",
                         pare_json_number(c->norm_eps == 1e-5f ? 1e-5 : (double)c->norm_eps), "rope_theta",
                         pare_json_number(c->rope_theta), "hidden_act", "silu", "tie_word_embeddings", c->tied_head,
                         "attention_bias", c->attn_bias, "mlp_bias", c->mlp_bias);
    } else {
        root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:s, s:b}", "architectures",
                         "GPT2LMHeadModel", "model_type", "gpt2", "n_embd", c->dim, "n_layer", c->n_layers, "n_head",
                         c->n_heads, "n_positions", c->max_pos, "vocab_size", c->vocab_size, "n_inner", c->ffn_dim,
                         "layer_norm_epsilon", pare_json_number(c->norm_eps == 1e-5f ? 1e-5 : (double)c->norm_eps),
                         "activation_function", "gelu_new", "tie_word_embeddings", c->tied_head);
    }
    if (!root)
        return pare_fail(err, PARE_ENOMEM, "out of memory building config.json");
    if (c->bos_id >= 0 && !json_object_get(root, "bos_token_id"))
        json_object_set_new(root, "bos_token_id", json_integer(c->bos_id));
    if (c->n_eos && !json_object_get(root, "eos_token_id"))
        json_object_set_new(root, "eos_token_id", pare_config_eos_json(c));
    json_object_set_new(root, c->arch == PARE_ARCH_GPT2 ? "n_inner" : "intermediate_size", json_integer(ffn));
    /* transformers 5 writes "dtype" where older versions wrote "torch_dtype": update what is there */
    int has_dtype = json_object_get(root, "dtype") != NULL;
    if (has_dtype)
        json_object_set_new(root, "dtype", json_string(torch_dtype(dt)));
    if (!has_dtype || json_object_get(root, "torch_dtype"))
        json_object_set_new(root, "torch_dtype", json_string(torch_dtype(dt)));
    char *s = pare_json_dumps_readable(root);
    json_decref(root);
    if (!s)
        return pare_fail(err, PARE_ENOMEM, "out of memory writing config.json");
    *text = s;
    return PARE_OK;
}

/* hf-dense: every block's FFN must be consistent (gate/up rows = down columns) and everything else at
 * its loaded shape; the widest block sets intermediate_size and narrower ones are zero-padded. */
static pare_status plan_hf(const pare_model *m, pare_dtype dt, plan *pl, pare_error *err)
{
    const pare_config *c = &m->cfg;
    int gpt2 = c->arch == PARE_ARCH_GPT2, F = 0;
    if (m->head.kind != PARE_LIN_DENSE || m->head.out != m->head.orig_out || m->head.in != m->head.orig_in)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: only a dense, unsliced output head can be exported", m->head.name);
    for (int i = 0; i < c->n_layers; i++) {
        const pare_block *b = &m->blocks[i];
        for (int k = 0; k < PARE_LIN_KINDS; k++) {
            const pare_linear *l = &b->lin[k];
            if (!l->out || pare_lin_kinds[k].ffn)
                continue;
            if (l->out != l->orig_out || l->in != l->orig_in)
                return pare_fail(err, PARE_EUNSUPPORTED,
                                 "%s: sliced to [%d, %d] from [%d, %d]; hf-dense can only export sliced FFN channels",
                                 l->name, l->out, l->in, l->orig_out, l->orig_in);
        }
        int w = b->up.out;
        int bad = b->up.in != c->dim || b->down.out != c->dim || b->down.in != w ||
                  (!gpt2 && (b->gate.out != w || b->gate.in != c->dim));
        if (bad)
            return pare_fail(err, PARE_EUNSUPPORTED,
                             "layer %d: inconsistent FFN shapes (%s [%d, %d], %s [%d, %d]%s); hf-dense needs gate/up "
                             "rows = down columns",
                             i, b->up.name, b->up.out, b->up.in, b->down.name, b->down.out, b->down.in,
                             gpt2 ? "" : " and a matching gate");
        if (w > F)
            F = w;
    }
    pl->ffn_width = F;
    for (int i = 0; i < c->n_layers; i++)
        pl->padded_blocks += m->blocks[i].up.out < F;
    pare_status rc = make_config(m, F, dt, &pl->config, err);
    if (rc)
        return rc;

    int np = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    if (!refs)
        return pare_fail(err, PARE_ENOMEM, "out of memory planning the export");
    pare_model_named_params(m, refs);
    for (int i = 0; i < np && rc == PARE_OK; i++)
        rc = add_tensor(pl, SRC_F32, dt, refs[i].d0, refs[i].d1, refs[i].p, err, "%s", refs[i].name);
    free(refs);
    int conv1d = pare_archs[c->arch].conv1d; /* Conv1D weights are stored [in, out] */
    char prefix[48];
    for (int i = 0; i < c->n_layers && rc == PARE_OK; i++) {
        const pare_block *b = &m->blocks[i];
        snprintf(prefix, sizeof prefix, pare_archs[c->arch].layer_prefix, i);
        for (int k = 0; k < PARE_LIN_KINDS && rc == PARE_OK; k++) {
            const pare_linear *l = &b->lin[k];
            const char *fused = pare_lin_kinds[k].fused[c->arch];
            if (!l->out)
                continue;
            /* one tensor for l, or for every kind fused with it (stacked along out; written at the first) */
            const pare_linear *part[3];
            int part_rows[3], n_parts = 0, rows = 0, cols = pare_lin_kinds[k].in == PARE_DIM_FFN ? F : l->in, first = 1;
            for (int j = 0; j < PARE_LIN_KINDS; j++) {
                if (!pare_lin_same_tensor(c->arch, j, k) || !b->lin[j].out || n_parts == 3)
                    continue;
                first &= j >= k;
                part_rows[n_parts] = pare_lin_kinds[j].out == PARE_DIM_FFN ? F : b->lin[j].out;
                rows += part_rows[n_parts];
                part[n_parts++] = &b->lin[j];
            }
            if (!first)
                continue;
            char name[96];
            if (fused)
                snprintf(name, sizeof name, "%s%s", prefix, fused);
            else
                snprintf(name, sizeof name, "%s", l->name);
            if ((rc = add_tensor(pl, SRC_DENSE, dt, conv1d ? cols : rows, conv1d ? rows : cols, NULL, err, "%s.weight",
                                 name)))
                break;
            memcpy(last(pl)->l, part, (size_t)n_parts * sizeof *part);
            memcpy(last(pl)->part_rows, part_rows, (size_t)n_parts * sizeof *part_rows);
            last(pl)->nl = n_parts, last(pl)->rows = rows, last(pl)->cols = cols, last(pl)->transpose = conv1d;
            if (l->b) {
                if ((rc = add_tensor(pl, SRC_BIAS, dt, rows, 0, NULL, err, "%s.bias", name)))
                    break;
                memcpy(last(pl)->l, part, (size_t)n_parts * sizeof *part);
                memcpy(last(pl)->part_rows, part_rows, (size_t)n_parts * sizeof *part_rows);
                last(pl)->nl = n_parts, last(pl)->rows = rows;
            }
        }
    }
    return rc;
}

static const char *kind_name(pare_linear_kind k)
{
    return k == PARE_LIN_MASKED ? "masked" : k == PARE_LIN_FACTORED ? "factored" : "dense";
}

/* Kept indices must be strictly increasing within the loaded shape: what channel pruning produces,
 * and what the reader checks, so that a corrupted list cannot pass as a permutation. */
static pare_status check_kept(const pare_linear *l, const int32_t *k, int n, int limit, const char *what,
                              pare_error *err)
{
    for (int i = 0; i < n; i++)
        if (k[i] < 0 || k[i] >= limit || (i && k[i] <= k[i - 1]))
            return pare_fail(err, PARE_EUNSUPPORTED,
                             "%s: %s[%d] = %d: the pare format stores only strictly increasing indices within 0..%d",
                             l->name, what, i, k[i], limit - 1);
    return PARE_OK;
}

/* The pare format: dense parameters as they are, each linear in its own compressed form, plus the
 * manifest that says how to rebuild it. The block matrices' values (what
 * pare_export_round_block_weights rounds) are stored in fdt, everything else in F32. */
static pare_status plan_pare(const pare_model *m, const pare_export_opts *o, pare_dtype fdt, plan *pl, pare_error *err)
{
    const pare_config *c = &m->cfg;
    if (m->head.kind != PARE_LIN_DENSE || m->head.out != m->head.orig_out || m->head.in != m->head.orig_in)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: only a dense, unsliced output head can be exported", m->head.name);
    pare_status src = pare_model_check_shapes(m, err);
    if (src)
        return src;
    json_t *extra = NULL;
    if (o->manifest_extra_json) {
        json_error_t jerr;
        extra = json_loads(o->manifest_extra_json, 0, &jerr);
        if (!json_is_object(extra)) {
            json_decref(extra);
            return pare_fail(err, PARE_EINVAL, "manifest extra JSON is not a JSON object%s%s", extra ? "" : ": ",
                             extra ? "" : jerr.text);
        }
    }
    pare_status rc = make_config(m, c->ffn_dim, PARE_DT_F32, &pl->config, err);
    json_t *root = json_object(), *lins = json_array(), *widths = json_array();
    if (rc || !root || !lins || !widths) {
        json_decref(extra);
        json_decref(root);
        json_decref(lins);
        json_decref(widths);
        return rc ? rc : pare_fail(err, PARE_ENOMEM, "out of memory building %s", PARE_EXPORT_MANIFEST);
    }
    int np = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    if (!refs)
        rc = pare_fail(err, PARE_ENOMEM, "out of memory planning the export");
    else
        pare_model_named_params(m, refs);
    for (int i = 0; i < np && rc == PARE_OK; i++)
        rc = add_tensor(pl, SRC_F32, PARE_DT_F32, refs[i].d0, refs[i].d1, refs[i].p, err, "%s", refs[i].name);
    free(refs);
    pare_linear **lin = NULL;
    int nlin = pare_model_linears((pare_model *)m, NULL, 0);
    if (rc == PARE_OK && !(lin = malloc((size_t)(nlin ? nlin : 1) * sizeof *lin)))
        rc = pare_fail(err, PARE_ENOMEM, "out of memory planning the export");
    if (rc == PARE_OK)
        pare_model_linears((pare_model *)m, lin, nlin);
    for (int i = 0; i < nlin && rc == PARE_OK; i++) {
        const pare_linear *l = lin[i];
        json_t *e = json_object(), *tens = json_object();
        json_array_append_new(lins, e);
        json_object_set_new(e, "name", json_string(l->name));
        json_object_set_new(e, "kind", json_string(kind_name(l->kind)));
        json_object_set_new(e, "shape", json_pack("[i, i]", l->out, l->in));
        json_object_set_new(e, "orig_shape", json_pack("[i, i]", l->orig_out, l->orig_in));
        json_object_set_new(e, "rank", l->kind == PARE_LIN_FACTORED ? json_integer(l->rank) : json_null());
        json_object_set_new(e, "bias", json_boolean(l->b != NULL));
        json_object_set_new(e, "kept_out", l->kept_out ? json_integer(l->out) : json_null());
        json_object_set_new(e, "kept_in", l->kept_in ? json_integer(l->in) : json_null());
        json_object_set_new(e, "params", json_integer((json_int_t)pare_linear_params(l)));
        json_object_set_new(e, "tensors", tens);
        char nm[160];
#define T(key, src, dt, d0, d1, ptr)                                                                                   \
    do {                                                                                                               \
        snprintf(nm, sizeof nm, "%s." key, l->name);                                                                   \
        json_object_set_new(tens, key, json_string(nm));                                                               \
        rc = add_tensor(pl, src, dt, d0, d1, ptr, err, "%s", nm);                                                      \
    } while (0)
        if (l->kind == PARE_LIN_FACTORED) {
            if ((l->streamed != PARE_LIN_SPILLED && (!l->A || !l->B)) || l->rank < 1) /* spilled: read when written */
                rc = pare_fail(err, PARE_EINVAL, "%s: factorized without factors", l->name);
            if (rc == PARE_OK)
                T("A", SRC_FACTOR, fdt, l->out, l->rank, NULL);
            if (rc == PARE_OK)
                of_linear(last(pl), l, l->out, l->rank);
            if (rc == PARE_OK)
                T("B", SRC_FACTOR, fdt, l->rank, l->in, NULL);
            if (rc == PARE_OK)
                of_linear(last(pl), l, l->rank, l->in);
        } else {
            if (l->kind == PARE_LIN_MASKED && l->streamed != PARE_LIN_SPILLED && !l->mask)
                rc = pare_fail(err, PARE_EINVAL, "%s: masked without a mask", l->name);
            if (rc == PARE_OK)
                T("weight", SRC_DENSE, fdt, l->out, l->in, NULL);
            if (rc == PARE_OK)
                of_linear(last(pl), l, l->out, l->in);
            if (rc == PARE_OK && l->kind == PARE_LIN_MASKED)
                T("mask", SRC_MASK, PARE_DT_U8, l->out, l->in, NULL);
            if (rc == PARE_OK && l->kind == PARE_LIN_MASKED)
                of_linear(last(pl), l, l->out, l->in);
        }
        if (rc == PARE_OK && l->b)
            T("bias", SRC_BIAS, PARE_DT_F32, l->out, 0, NULL);
        if (rc == PARE_OK && l->b)
            of_linear(last(pl), l, l->out, 0);
        if (rc == PARE_OK && l->kept_out &&
            (rc = check_kept(l, l->kept_out, l->out, l->orig_out, "kept_out", err)) == PARE_OK)
            T("kept_out", SRC_BYTES, PARE_DT_I32, l->out, 0, l->kept_out);
        if (rc == PARE_OK && l->kept_in && (rc = check_kept(l, l->kept_in, l->in, l->orig_in, "kept_in", err)) == PARE_OK)
            T("kept_in", SRC_BYTES, PARE_DT_I32, l->in, 0, l->kept_in);
#undef T
    }
    free(lin);
    for (int i = 0; i < c->n_layers; i++) {
        json_array_append_new(widths, json_integer(m->blocks[i].up.out));
        if (m->blocks[i].up.out > pl->ffn_width)
            pl->ffn_width = m->blocks[i].up.out;
    }
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    json_object_set_new(root, "format", json_string("pare"));
    json_object_set_new(root, "version", json_integer(PARE_EXPORT_VERSION));
    if (o->producer)
        json_object_set_new(root, "producer", json_string(o->producer));
    json_object_set_new(root, "source", json_string(m->path));
    json_object_set_new(root, "architecture", json_string(pare_family_class(c)));
    json_object_set_new(root, "weights", json_string(WEIGHTS_FILE));
    json_object_set_new(root, "factor_dtype", json_string(pare_dtype_name(fdt)));
    json_object_set_new(root, "mask_encoding", json_string("U8 [out, in], one byte per weight, 1 = kept"));
    json_object_set_new(root, "ffn_widths", widths);
    json_object_set_new(
        root, "params",
        json_pack("{s:I, s:I}", "total", (json_int_t)pc.total, "block_linear", (json_int_t)pc.block_linear));
    json_object_set_new(root, "linears", lins);
    if (extra)
        json_object_set_new(root, "compression", extra);
    if (rc == PARE_OK && !(pl->manifest = pare_json_dumps_readable(root)))
        rc = pare_fail(err, PARE_ENOMEM, "out of memory writing %s", PARE_EXPORT_MANIFEST);
    json_decref(root);
    return rc;
}

/* Builds the whole plan: file texts, tensors, header and the exact byte count. */
static pare_status build_plan(const pare_model *m, const pare_export_opts *o, plan *pl, pare_error *err)
{
    memset(pl, 0, sizeof *pl);
    pare_export_opts def;
    if (!o) {
        pare_export_defaults(&def);
        o = &def;
    }
    if (!m || !m->blocks)
        return pare_fail(err, PARE_EINVAL, "export: no model");
    pare_dtype dt, fdt;
    pare_status rc = parse_dtype("dtype", o->dtype, &dt, err);
    if (rc || (rc = parse_dtype("factor dtype", o->factor_dtype, &fdt, err)))
        return rc;
    if (o->format == PARE_EXPORT_PARE && dt != PARE_DT_F32)
        return pare_fail(err, PARE_EINVAL,
                         "export dtype %s: the pare format takes the factor dtype instead (F32, F16 or BF16 for its "
                         "block matrices; embeddings and norms stay F32)",
                         o->dtype);
    if (o->format == PARE_EXPORT_HF_DENSE && fdt != PARE_DT_F32)
        return pare_fail(err, PARE_EINVAL,
                         "export factor dtype %s: hf-dense stores no factors; its dtype option sets the dtype of "
                         "every tensor",
                         o->factor_dtype);
    if (o->format != PARE_EXPORT_PARE && o->format != PARE_EXPORT_HF_DENSE)
        return pare_fail(err, PARE_EINVAL, "export format %d is unknown", (int)o->format);
    if (o->format != PARE_EXPORT_PARE && o->manifest_extra_json)
        return pare_fail(err, PARE_EINVAL, "manifest extra JSON applies to the pare format only");
    rc = o->format == PARE_EXPORT_PARE ? plan_pare(m, o, fdt, pl, err) : plan_hf(m, dt, pl, err);
    if (rc) {
        plan_free(pl);
        return rc;
    }
    /* safetensors header: {"__metadata__": {"format": "pt"}, name: {dtype, shape, data_offsets}};
     * transformers refuses files whose metadata format is not "pt" */
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < pl->n; i++) {
        const tensor_plan *t = &pl->t[i];
        json_t *shape = t->ndim == 2 ? json_pack("[I, I]", (json_int_t)t->shape[0], (json_int_t)t->shape[1])
                                     : json_pack("[I]", (json_int_t)t->shape[0]);
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", pare_dtype_name(t->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes));
        if (!e || json_object_get(hdr, t->name) || json_object_set_new(hdr, t->name, e)) {
            json_decref(e);
            json_decref(hdr);
            plan_free(pl);
            return pare_fail(err, PARE_EINVAL, "export: cannot add tensor '%s' to the header (duplicate name?)",
                             t->name);
        }
        off += t->nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (!text) {
        plan_free(pl);
        return pare_fail(err, PARE_ENOMEM, "out of memory writing the safetensors header");
    }
    size_t tl = strlen(text), padded = (tl + 7) & ~(size_t)7; /* 8-byte aligned data area */
    pl->st_header = realloc(text, padded + 1);
    if (!pl->st_header) {
        free(text);
        plan_free(pl);
        return pare_fail(err, PARE_ENOMEM, "out of memory writing the safetensors header");
    }
    memset(pl->st_header + tl, ' ', padded - tl);
    pl->st_header[padded] = '\0';
    pl->st_header_len = padded;
    pl->tensor_bytes = off;
    pl->total_bytes = strlen(pl->config) + 8 + padded + off + (pl->manifest ? strlen(pl->manifest) : 0);
    pl->files = 2 + (pl->manifest != NULL);
    char src[4096];
    source_dir(m, src, sizeof src);
    for (int i = 0; i < N_COPY; i++) {
        char p[4400];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", src, COPY_FILES[i]);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(pl->copy_src[pl->n_copy], sizeof pl->copy_src[0], "%s", p);
        pl->copy_name[pl->n_copy] = COPY_FILES[i];
        pl->copy_len[pl->n_copy] = (size_t)st.st_size;
        pl->total_bytes += (size_t)st.st_size;
        pl->n_copy++;
        pl->files++;
    }
    /* a llama2.c tokenizer beside its checkpoint is found as the loader finds it (single tok*.bin) */
    if (m->format == PARE_FMT_LLAMA2C && !pl->n_copy) {
        DIR *d = opendir(src);
        struct dirent *e;
        int found = 0;
        char p[4400] = "";
        while (d && (e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (strncmp(e->d_name, "tok", 3) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0 && found++ == 0)
                snprintf(p, sizeof p, "%s/%s", src, e->d_name);
        }
        if (d)
            closedir(d);
        struct stat st;
        if (found == 1 && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            snprintf(pl->copy_src[0], sizeof pl->copy_src[0], "%s", p);
            pl->copy_name[0] = "tokenizer.bin";
            pl->copy_len[0] = (size_t)st.st_size;
            pl->total_bytes += (size_t)st.st_size;
            pl->n_copy = 1;
            pl->files++;
        }
    }
    return PARE_OK;
}

pare_status pare_export_round_block_weights(pare_model *m, const char *factor_dtype, pare_error *err)
{
    pare_dtype fdt;
    pare_status rc = parse_dtype("factor dtype", factor_dtype, &fdt, err);
    if (rc || fdt == PARE_DT_F32)
        return rc;
    pare_linear *lin[PARE_MAX_LINEARS];
    int n = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    int held = -1; /* a streamed model's block, acquired and its weights made the linears' own */
    for (int i = 0; i < n && rc == PARE_OK; i++) {
        pare_linear *l = lin[i];
        if (l->layer != held) {
            if (held >= 0)
                pare_block_release(m, held);
            held = -1;
            if ((rc = pare_block_acquire(m, l->layer, err)))
                break;
            held = l->layer;
        }
        if ((rc = pare_linear_own(l, err)))
            break;
        /* exactly the values plan_pare stores in fdt: A [out, rank] and B [rank, in], else w [out, in] */
        float *v[2] = {l->kind == PARE_LIN_FACTORED ? l->A : l->w, l->kind == PARE_LIN_FACTORED ? l->B : NULL};
        size_t len[2] = {l->kind == PARE_LIN_FACTORED ? (size_t)l->out * l->rank : (size_t)l->out * l->in,
                         (size_t)l->rank * l->in};
        const char *key[2] = {l->kind == PARE_LIN_FACTORED ? "A" : "weight", "B"};
        for (int k = 0; k < 2 && v[k] && rc == PARE_OK; k++) {
            char name[200];
            snprintf(name, sizeof name, "%s.%s", l->name, key[k]);
            for (size_t j = 0; j < len[k] && rc == PARE_OK; j++) {
                uint16_t h;
                if ((rc = to_half(v[k][j], fdt, name, j, &h, err)) == PARE_OK)
                    v[k][j] = fdt == PARE_DT_BF16 ? pare_bf16_to_f32(h) : pare_f16_to_f32(h);
            }
        }
    }
    if (held >= 0)
        pare_block_release(m, held);
    return rc;
}

pare_status pare_export_size(const pare_model *m, const pare_export_opts *o, size_t *bytes, pare_error *err)
{
    plan pl;
    *bytes = 0;
    pare_status rc = build_plan(m, o, &pl, err);
    if (rc)
        return rc;
    *bytes = pl.total_bytes;
    plan_free(&pl);
    return PARE_OK;
}

/* ---------------------------------------------------------------- writing */

/* Produces one tensor's stored bytes into out (t->nbytes). */
static pare_status fill_tensor(const tensor_plan *t, unsigned char *out, pare_error *err)
{
    size_t numel = t->nbytes / pare_dtype_size(t->dtype);
    if (t->src == SRC_BYTES || t->src == SRC_MASK) {
        memcpy(out, t->src == SRC_MASK ? t->l[0]->mask : t->p, t->nbytes);
        return PARE_OK;
    }
    float *f = t->dtype == PARE_DT_F32 ? (float *)(void *)out : malloc(numel * sizeof(float));
    if (!f)
        return pare_fail(err, PARE_ENOMEM, "out of memory exporting '%s'", t->name);
    if (t->src == SRC_F32) {
        memcpy(f, t->p, numel * sizeof(float));
    } else if (t->src == SRC_FACTOR) {
        const pare_linear *l = t->l[0];
        memcpy(f, t->rows == l->out && t->cols == l->rank ? l->A : l->B, numel * sizeof(float));
    } else {
        memset(f, 0, numel * sizeof(float)); /* padding rows / columns stay zero */
        int ro = 0;
        for (int k = 0; k < t->nl; k++) {
            const pare_linear *l = t->l[k];
            if (t->src == SRC_BIAS) {
                if (l->b)
                    memcpy(f + ro, l->b, (size_t)l->out * sizeof(float));
            } else {
                float *d = malloc((size_t)l->out * l->in * sizeof *d);
                if (!d) {
                    if ((void *)f != (void *)out)
                        free(f);
                    return pare_fail(err, PARE_ENOMEM, "out of memory exporting '%s'", t->name);
                }
                pare_linear_dense(l, d); /* A B for factorized layers; masked zeros are already in w */
                for (int r = 0; r < l->out; r++)
                    for (int c = 0; c < l->in; c++) {
                        size_t at = t->transpose ? (size_t)c * t->rows + ro + r : (size_t)(ro + r) * t->cols + c;
                        f[at] = d[(size_t)r * l->in + c];
                    }
                free(d);
            }
            ro += t->part_rows[k]; /* Phi-3's gate_up_proj: up starts at row F even when gate was narrowed */
        }
    }
    if (t->dtype == PARE_DT_F32)
        return PARE_OK;
    for (size_t i = 0; i < numel; i++) {
        uint16_t h;
        pare_status rc = to_half(f[i], t->dtype, t->name, i, &h, err);
        if (rc) {
            free(f);
            return rc;
        }
        out[2 * i] = (unsigned char)(h & 0xff);
        out[2 * i + 1] = (unsigned char)(h >> 8);
    }
    free(f);
    return PARE_OK;
}

/* fflush + fsync + fclose, reporting the first failure. */
static pare_status close_file(FILE *f, const char *path, pare_error *err)
{
    int bad = ferror(f) || fflush(f) != 0;
    int e = errno;
    if (!bad && fsync(fileno(f)) != 0)
        bad = 1, e = errno;
    if (fclose(f) != 0 && !bad)
        bad = 1, e = errno;
    if (bad)
        return pare_fail(err, PARE_EIO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    return PARE_OK;
}

static pare_status write_text(const char *dir, const char *name, const char *text, size_t len, pare_error *err)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return pare_fail(err, PARE_EIO, "%s: cannot create: %s", p, strerror(errno));
    fwrite(text, 1, len, f);
    return close_file(f, p, err);
}

static pare_status write_weights(const pare_model *m, const plan *pl, const char *dir, const pare_progress *prog,
                                 pare_error *err)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, WEIGHTS_FILE);
    FILE *f = fopen(p, "wb");
    if (!f)
        return pare_fail(err, PARE_EIO, "%s: cannot create: %s", p, strerror(errno));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)pl->st_header_len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(pl->st_header, 1, pl->st_header_len, f);
    pare_status rc = PARE_OK;
    size_t done = 0;
    int held = -1; /* the block whose weights are acquired (tensors come block by block) */
    for (size_t i = 0; i < pl->n && rc == PARE_OK; i++) {
        const tensor_plan *t = &pl->t[i];
        int layer = t->src != SRC_F32 && t->src != SRC_BYTES && t->nl ? t->l[0]->layer : -1;
        if (layer >= 0 && layer != held) {
            if (held >= 0)
                pare_block_release(m, held);
            held = -1;
            if ((rc = pare_block_acquire(m, layer, err)))
                break;
            held = layer;
        }
        char detail[200];
        snprintf(detail, sizeof detail, "%s", t->name);
        if ((rc = pare_report(prog, "export", pl->tensor_bytes ? (double)done / (double)pl->tensor_bytes : 0, detail,
                              err)))
            break;
        unsigned char *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) {
            rc = pare_fail(err, PARE_ENOMEM, "out of memory exporting '%s' (%zu bytes)", t->name, t->nbytes);
            break;
        }
        if ((rc = fill_tensor(t, buf, err)) == PARE_OK && fwrite(buf, 1, t->nbytes, f) != t->nbytes)
            rc = pare_fail(err, PARE_EIO, "%s: write failed at tensor '%s': %s", p, t->name, strerror(errno));
        free(buf);
        done += t->nbytes;
    }
    if (held >= 0)
        pare_block_release(m, held);
    if (rc) {
        fclose(f);
        return rc;
    }
    return close_file(f, p, err);
}

static pare_status copy_file(const char *src, const char *dir, const char *name, pare_error *err)
{
    char *data;
    size_t len;
    pare_status rc = pare_read_file(src, &data, &len, err);
    if (rc)
        return rc;
    rc = write_text(dir, name, data, len, err);
    free(data);
    return rc;
}

/* An existing destination may only be replaced if it looks like a model folder (config.json and
 * only files or links), so a mistyped path cannot wipe out an unrelated folder. */
pare_status pare_dir_check_replaceable(const char *dir, pare_error *err)
{
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pare_fail(err, PARE_EINVAL, "%s: exists and is not a folder; not replacing it", dir);
    DIR *d = opendir(dir);
    if (!d)
        return pare_fail(err, PARE_EIO, "%s: cannot list folder: %s", dir, strerror(errno));
    struct dirent *e;
    int has_config = 0, other = 0;
    char p[4400], what[256] = "";
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
            if (!other++)
                snprintf(what, sizeof what, "%s", e->d_name);
        }
        if (!strcmp(e->d_name, "config.json"))
            has_config = 1;
    }
    closedir(d);
    if (other)
        return pare_fail(err, PARE_EINVAL, "%s: not replacing it: it contains '%s', which is not a file", dir, what);
    if (!has_config)
        return pare_fail(err, PARE_EINVAL, "%s: not replacing it: it has no config.json, so it is not a model folder",
                         dir);
    return PARE_OK;
}

/* Creates "<dir>.<tag>-xxxxxx" with mode 0777 less the umask (mkdtemp would make it private). */
int pare_make_sibling_dir(char *out, size_t cap, const char *dir, const char *tag)
{
    static unsigned counter;
    for (int attempt = 0; attempt < 64; attempt++) {
        unsigned x = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) * 40503u ^ ++counter * 69069u;
        snprintf(out, cap, "%s.%s-%06x", dir, tag, x & 0xffffffu);
        if (mkdir(out, 0777) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* Puts the complete temporary folder in place of dir: rename when dir does not exist, else an atomic
 * exchange (falling back to move-aside, move-in, remove) and the old folder is deleted. */
pare_status pare_commit_dir(const char *tmp, const char *dir, int replacing, pare_error *err)
{
    if (!replacing) {
        if (rename(tmp, dir) != 0)
            return pare_fail(err, PARE_EIO, "%s: cannot rename the finished export into place: %s", dir,
                             strerror(errno));
        return PARE_OK;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        if (pare_remove_flat_dir(tmp, NULL) != 0)
            return pare_fail(err, PARE_EIO,
                             "%s: the export is in place but the old folder (now %s) could not be removed", dir, tmp);
        return PARE_OK;
    }
    char old[4200];
    if (pare_make_sibling_dir(old, sizeof old, dir, "old") != 0)
        return pare_fail(err, PARE_EIO, "%s: cannot make room to replace it: %s", dir, strerror(errno));
    if (rename(dir, old) != 0) {
        int e = errno;
        rmdir(old);
        return pare_fail(err, PARE_EIO, "%s: cannot move the old folder aside: %s", dir, strerror(e));
    }
    if (rename(tmp, dir) != 0) {
        int e = errno;
        rename(old, dir);
        return pare_fail(err, PARE_EIO, "%s: cannot rename the finished export into place: %s", dir, strerror(e));
    }
    if (pare_remove_flat_dir(old, NULL) != 0)
        return pare_fail(err, PARE_EIO, "%s: the export is in place but the old folder (now %s) could not be removed",
                         dir, old);
    return PARE_OK;
}

static pare_status export_locked(const pare_model *m, const char *dir, const pare_export_opts *o,
                                 const pare_progress *prog, pare_export_report *rep, pare_error *err);

pare_status pare_export(const pare_model *m, const char *dir_in, const pare_export_opts *o, const pare_progress *prog,
                        pare_export_report *rep, pare_error *err)
{
    if (rep)
        memset(rep, 0, sizeof *rep);
    pare_export_opts def;
    if (!o) {
        pare_export_defaults(&def);
        o = &def;
    }
    char dir[4096];
    pare_status rc = pare_output_folder(dir_in, dir, sizeof dir, "export", err);
    if (rc)
        return rc;
    /* a second export into the same folder is refused while this one runs (nothing interleaves) */
    pare_lock lk;
    rc = pare_lock_dir(&lk, dir, err);
    if (rc)
        return rc;
    rc = export_locked(m, dir, o, prog, rep, err);
    pare_unlock(&lk);
    return rc;
}

pare_status pare_export_check_destination(const char *dir, int overwrite, pare_error *err)
{
    struct stat st;
    int exists = lstat(dir, &st) == 0;
    if (exists && !overwrite)
        return pare_fail(err, PARE_EINVAL, "%s: already exists; choose a new folder or allow overwriting", dir);
    return exists ? pare_dir_check_replaceable(dir, err) : PARE_OK;
}

/* pare_export once dir (normalized) is locked. */
static pare_status export_locked(const pare_model *m, const char *dir, const pare_export_opts *o,
                                 const pare_progress *prog, pare_export_report *rep, pare_error *err)
{
    struct stat st;
    int exists = lstat(dir, &st) == 0;
    pare_status rc = pare_export_check_destination(dir, o->overwrite, err);
    if (rc)
        return rc;
    plan pl;
    if ((rc = build_plan(m, o, &pl, err)))
        return rc;
    char tmp[4200];
    if (pare_make_sibling_dir(tmp, sizeof tmp, dir, "tmp") != 0) {
        rc = pare_fail(err, PARE_EIO, "%s: cannot create the temporary folder %s: %s", dir, tmp, strerror(errno));
        plan_free(&pl);
        return rc;
    }
    rc = pare_report(prog, "export", 0, "config.json", err);
    if (rc == PARE_OK)
        rc = write_text(tmp, "config.json", pl.config, strlen(pl.config), err);
    if (rc == PARE_OK && pl.manifest)
        rc = write_text(tmp, PARE_EXPORT_MANIFEST, pl.manifest, strlen(pl.manifest), err);
    for (int i = 0; i < pl.n_copy && rc == PARE_OK; i++)
        rc = copy_file(pl.copy_src[i], tmp, pl.copy_name[i], err);
    if (rc == PARE_OK)
        rc = write_weights(m, &pl, tmp, prog, err);
    if (rc == PARE_OK) {
        pare_fsync_dir(tmp);
        rc = pare_report(prog, "export", 1.0, "rename into place", err);
    }
    if (rc == PARE_OK)
        rc = pare_commit_dir(tmp, dir, exists, err);
    if (rc != PARE_OK) {
        if (pare_is_dir(tmp))
            pare_remove_flat_dir(tmp, NULL);
        plan_free(&pl);
        return rc;
    }
    if (rep) {
        rep->bytes_on_disk = pl.total_bytes;
        rep->tensor_bytes = pl.tensor_bytes;
        rep->files = pl.files;
        rep->ffn_width = pl.ffn_width;
        rep->padded_blocks = pl.padded_blocks;
    }
    plan_free(&pl);
    return PARE_OK;
}

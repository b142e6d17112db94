/* The loader of the pare export format (a folder with pare.json, written by export.c): the dense
 * parameters under their HF names, then every linear rebuilt in its compressed form exactly as the
 * manifest describes, each entry validated against the tensors before anything is trusted. */
#include "model_pare.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "safetensors.h"

int pare_export_is_pare_dir(const char *dir)
{
    char p[4096];
    int n = snprintf(p, sizeof p, "%s/%s", dir, PARE_EXPORT_MANIFEST);
    return n > 0 && (size_t)n < sizeof p && pare_file_exists(p);
}

int pare_model_named_params(const pare_model *m, pare_param_ref *r)
{
    const pare_config *c = &m->cfg;
    int n = 0, C = c->dim, gpt2 = c->arch == PARE_ARCH_GPT2;
#define P(ptr, a, b, ...)                                                                                              \
    do {                                                                                                               \
        if (r) {                                                                                                       \
            snprintf(r[n].name, sizeof r[n].name, __VA_ARGS__);                                                        \
            r[n].p = (ptr);                                                                                            \
            r[n].d0 = (a);                                                                                             \
            r[n].d1 = (b);                                                                                             \
        }                                                                                                              \
        n++;                                                                                                           \
    } while (0)
    if (gpt2) {
        P(m->tok_emb, c->vocab_size, C, "transformer.wte.weight");
        P(m->pos_emb, c->max_pos, C, "transformer.wpe.weight");
        for (int i = 0; i < c->n_layers; i++) {
            const pare_block *b = &m->blocks[i];
            P(b->norm1_w, C, 0, "transformer.h.%d.ln_1.weight", i);
            P(b->norm1_b, C, 0, "transformer.h.%d.ln_1.bias", i);
            P(b->norm2_w, C, 0, "transformer.h.%d.ln_2.weight", i);
            P(b->norm2_b, C, 0, "transformer.h.%d.ln_2.bias", i);
        }
        P(m->final_norm_w, C, 0, "transformer.ln_f.weight");
        P(m->final_norm_b, C, 0, "transformer.ln_f.bias");
    } else {
        /* Gemma-3's post_attention_layernorm is the norm on the attention output; its pre-MLP norm
         * (norm2 here, LLaMA's post_attention_layernorm) is pre_feedforward_layernorm */
        int hd = c->head_dim, gemma = pare_config_family(c)->gemma, qk_norm = pare_config_family(c)->qk_norm;
        P(m->tok_emb, c->vocab_size, C, "model.embed_tokens.weight");
        for (int i = 0; i < c->n_layers; i++) {
            const pare_block *b = &m->blocks[i];
            P(b->norm1_w, C, 0, "model.layers.%d.input_layernorm.weight", i);
            P(b->norm2_w, C, 0, "model.layers.%d.%s.weight", i,
              gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm");
            if (gemma) {
                P(b->post_attn_norm_w, C, 0, "model.layers.%d.post_attention_layernorm.weight", i);
                P(b->post_ffn_norm_w, C, 0, "model.layers.%d.post_feedforward_layernorm.weight", i);
            }
            if (qk_norm) {
                P(b->q_norm_w, hd, 0, "model.layers.%d.self_attn.q_norm.weight", i);
                P(b->k_norm_w, hd, 0, "model.layers.%d.self_attn.k_norm.weight", i);
            }
        }
        P(m->final_norm_w, C, 0, "model.norm.weight");
    }
    /* a tied head is the token embedding: HF ties it from the config, so it is not stored twice */
    if (!c->tied_head)
        P(m->head.w, c->vocab_size, C, "lm_head.weight");
#undef P
    return n;
}

typedef struct {
    const char *mpath; /* DIR/pare.json, for messages */
    const pare_safetensors *st;
    pare_dtype factor_dtype; /* the block matrices' stored dtype ("factor_dtype"; F32 when absent) */
} reader;

/* The named tensor with exactly this dtype and shape ([d0] when d1 == 0). what names the linear. */
static pare_status need(const reader *r, const char *what, const char *key, json_t *tensors, pare_dtype dt, int64_t d0,
                        int64_t d1, const pare_st_tensor **out, pare_error *err)
{
    json_t *jn = json_object_get(tensors, key);
    if (!json_is_string(jn))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"tensors\" has no \"%s\" name", r->mpath, what, key);
    const char *name = json_string_value(jn);
    const pare_st_tensor *t = pare_st_find(r->st, name);
    if (!t)
        return pare_fail(err, PARE_EFORMAT, "%s: %s: tensor '%s' is missing from %s", r->mpath, what, name,
                         r->st->paths[0]);
    int nd = d1 ? 2 : 1;
    if (t->dtype != dt || t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char want[64], got[64];
        snprintf(want, sizeof want, nd == 2 ? "%s [%lld, %lld]" : "%s [%lld]", pare_dtype_name(dt), (long long)d0,
                 (long long)d1);
        if (t->ndim == 2)
            snprintf(got, sizeof got, "%s [%lld, %lld]", pare_dtype_name(t->dtype), (long long)t->shape[0],
                     (long long)t->shape[1]);
        else if (t->ndim == 1)
            snprintf(got, sizeof got, "%s [%lld]", pare_dtype_name(t->dtype), (long long)t->shape[0]);
        else
            snprintf(got, sizeof got, "%s with %d dimensions", pare_dtype_name(t->dtype), t->ndim);
        return pare_fail(err, PARE_EFORMAT, "%s: %s: tensor '%s' is %s but the manifest implies %s", r->mpath, what,
                         name, got, want);
    }
    *out = t;
    return PARE_OK;
}

static int get_pair(json_t *a, int *x, int *y)
{
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(json_array_get(a, 0)) ||
        !json_is_integer(json_array_get(a, 1)))
        return 0;
    json_int_t u = json_integer_value(json_array_get(a, 0)), v = json_integer_value(json_array_get(a, 1));
    if (u < 1 || v < 1 || u > (1 << 30) || v > (1 << 30))
        return 0;
    *x = (int)u;
    *y = (int)v;
    return 1;
}

/* kept_out / kept_in: null when unsliced, else the count; the I32 list must be strictly increasing
 * within the loaded shape. *idx points into the map (may be unaligned: copied). */
static pare_status read_kept(const reader *r, const char *what, json_t *e, json_t *tensors, const char *key, int cur,
                             int orig, int32_t **idx, pare_error *err)
{
    *idx = NULL;
    json_t *v = json_object_get(e, key);
    if (!v || json_is_null(v)) {
        if (cur != orig)
            return pare_fail(err, PARE_EFORMAT, "%s: %s: shape %d differs from the original %d but \"%s\" is null",
                             r->mpath, what, cur, orig, key);
        return PARE_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) != cur)
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"%s\" must be null or the current size %d", r->mpath, what, key,
                         cur);
    const pare_st_tensor *t;
    pare_status rc = need(r, what, key, tensors, PARE_DT_I32, cur, 0, &t, err);
    if (rc)
        return rc;
    int32_t *k = malloc((size_t)cur * sizeof *k);
    if (!k)
        return pare_fail(err, PARE_ENOMEM, "%s: %s: out of memory", r->mpath, what);
    memcpy(k, t->data, (size_t)cur * sizeof *k);
    for (int i = 0; i < cur; i++)
        if (k[i] < 0 || k[i] >= orig || (i && k[i] <= k[i - 1])) {
            rc = pare_fail(err, PARE_EFORMAT,
                           "%s: %s: %s[%d] = %d (tensor '%s') is %s; indices must increase strictly within 0..%d",
                           r->mpath, what, key, i, k[i], t->name,
                           k[i] < 0 || k[i] >= orig ? "out of range" : "not increasing", orig - 1);
            free(k);
            return rc;
        }
    *idx = k;
    return PARE_OK;
}

/* A block matrix's stored values in fp32, into a fresh buffer *out the caller frees (none for t NULL). */
static pare_status values_f32(const reader *r, const char *what, const pare_st_tensor *t, float **out, pare_error *err)
{
    *out = NULL;
    if (!t)
        return PARE_OK;
    float *v = malloc(pare_st_numel(t) * sizeof *v + 1);
    if (!v)
        return pare_fail(err, PARE_ENOMEM, "%s: %s: out of memory", r->mpath, what);
    pare_status rc = pare_st_to_f32(r->st, t, v, err);
    if (rc)
        free(v);
    else
        *out = v;
    return rc;
}

/* Rebuilds one linear (loaded at its original shape in the slab) into the manifest's state through
 * the linear API, so every field matches what the exporter had: values are placed at their
 * original positions, factors set at the original shape (a rank valid before slicing may exceed
 * the sliced shape), then rows and columns are kept, then the mask is set. */
static pare_status load_linear(const reader *r, pare_linear *l, json_t *e, int idx, pare_error *err)
{
    char what[160];
    snprintf(what, sizeof what, "linears[%d] (%s)", idx, l->name);
    if (!json_is_object(e))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: entry is not an object", r->mpath, what);
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!name || strcmp(name, l->name) != 0)
        return pare_fail(err, PARE_EFORMAT, "%s: %s: entry is named '%s' but the config's linear at this position is %s",
                         r->mpath, what, name ? name : "(none)", l->name);
    const char *kind = json_string_value(json_object_get(e, "kind"));
    pare_linear_kind k;
    if (kind && !strcmp(kind, "dense"))
        k = PARE_LIN_DENSE;
    else if (kind && !strcmp(kind, "masked"))
        k = PARE_LIN_MASKED;
    else if (kind && !strcmp(kind, "factored"))
        k = PARE_LIN_FACTORED;
    else
        return pare_fail(err, PARE_EFORMAT, "%s: %s: unknown kind '%s'; supported: dense, masked, factored", r->mpath,
                         what, kind ? kind : "(none)");
    int out, in, oo, oi;
    if (!get_pair(json_object_get(e, "shape"), &out, &in))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"shape\" must be [out, in] of positive integers", r->mpath, what);
    if (!get_pair(json_object_get(e, "orig_shape"), &oo, &oi))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"orig_shape\" must be [out, in] of positive integers", r->mpath,
                         what);
    if (oo != l->orig_out || oi != l->orig_in)
        return pare_fail(err, PARE_EFORMAT, "%s: %s: orig_shape [%d, %d] but config.json implies [%d, %d]", r->mpath,
                         what, oo, oi, l->orig_out, l->orig_in);
    if (out > oo || in > oi)
        return pare_fail(err, PARE_EFORMAT, "%s: %s: shape [%d, %d] exceeds orig_shape [%d, %d]", r->mpath, what, out,
                         in, oo, oi);
    int rank = 0;
    if (k == PARE_LIN_FACTORED) {
        json_t *jr = json_object_get(e, "rank");
        json_int_t rv = json_is_integer(jr) ? json_integer_value(jr) : 0;
        int lim = oo < oi ? oo : oi;
        if (rv < 1 || rv > lim)
            return pare_fail(err, PARE_EFORMAT, "%s: %s: rank %lld must be an integer in 1..%d (min of orig_shape)",
                             r->mpath, what, (long long)rv, lim);
        rank = (int)rv;
    }
    json_t *jb = json_object_get(e, "bias");
    if (!json_is_boolean(jb) || json_is_true(jb) != (l->b != NULL))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"bias\" must be %s, as config.json implies", r->mpath, what,
                         l->b ? "true" : "false");
    json_t *tens = json_object_get(e, "tensors");
    if (!json_is_object(tens))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"tensors\" is missing or not an object", r->mpath, what);
    const pare_st_tensor *tw = NULL, *tm = NULL, *ta = NULL, *tb = NULL, *tbias = NULL;
    pare_status rc;
    if (k == PARE_LIN_FACTORED) {
        if ((rc = need(r, what, "A", tens, r->factor_dtype, out, rank, &ta, err)) ||
            (rc = need(r, what, "B", tens, r->factor_dtype, rank, in, &tb, err)))
            return rc;
    } else if ((rc = need(r, what, "weight", tens, r->factor_dtype, out, in, &tw, err))) {
        return rc;
    }
    if (k == PARE_LIN_MASKED) {
        if ((rc = need(r, what, "mask", tens, PARE_DT_U8, out, in, &tm, err)))
            return rc;
        for (size_t i = 0; i < (size_t)out * in; i++)
            if (tm->data[i] > 1)
                return pare_fail(err, PARE_EFORMAT, "%s: %s: mask '%s' holds %d at %zu; only 0 and 1 are valid",
                                 r->mpath, what, tm->name, tm->data[i], i);
    }
    if (l->b && (rc = need(r, what, "bias", tens, PARE_DT_F32, out, 0, &tbias, err)))
        return rc;
    int32_t *ko = NULL, *ki = NULL;
    if ((rc = read_kept(r, what, e, tens, "kept_out", out, oo, &ko, err)) ||
        (rc = read_kept(r, what, e, tens, "kept_in", in, oi, &ki, err))) {
        free(ko);
        return rc;
    }
    /* every check passed: rebuild from the values in fp32 (as stored when the factor dtype is F32) */
    float *A = NULL, *B = NULL, *src_w = NULL, *a = NULL, *b = NULL;
    if ((rc = values_f32(r, what, tw, &src_w, err)) || (rc = values_f32(r, what, ta, &a, err)) ||
        (rc = values_f32(r, what, tb, &b, err))) {
        free(src_w);
        free(a);
        free(ko);
        free(ki);
        return rc;
    }
#define RO(i) (ko ? ko[i] : (i))
#define CI(j) (ki ? ki[j] : (j))
    if (tbias) {
        const float *bb = (const float *)(const void *)tbias->data;
        memset(l->b, 0, (size_t)oo * sizeof(float));
        for (int i = 0; i < out; i++)
            l->b[RO(i)] = bb[i];
    }
    if (k == PARE_LIN_FACTORED) {
        A = calloc((size_t)oo * rank, sizeof *A);
        B = calloc((size_t)rank * oi, sizeof *B);
        if (!A || !B) {
            rc = pare_fail(err, PARE_ENOMEM, "%s: %s: out of memory", r->mpath, what);
        } else {
            for (int i = 0; i < out; i++)
                memcpy(A + (size_t)RO(i) * rank, a + (size_t)i * rank, (size_t)rank * sizeof(float));
            for (int q = 0; q < rank; q++)
                for (int j = 0; j < in; j++)
                    B[(size_t)q * oi + CI(j)] = b[(size_t)q * in + j];
            rc = pare_linear_set_factors(l, rank, A, B, err);
        }
    } else {
        memset(l->w, 0, (size_t)oo * oi * sizeof(float));
        for (int i = 0; i < out; i++)
            for (int j = 0; j < in; j++)
                l->w[(size_t)RO(i) * oi + CI(j)] = src_w[(size_t)i * in + j];
    }
#undef RO
#undef CI
    free(A);
    free(B);
    if (rc == PARE_OK && ko)
        rc = pare_linear_keep_rows(l, ko, out, err);
    if (rc == PARE_OK && ki)
        rc = pare_linear_keep_cols(l, ki, in, err);
    if (rc == PARE_OK && tm)
        rc = pare_linear_set_mask(l, tm->data, err);
    free(ko);
    free(ki);
    /* the stored values verbatim (identical already unless the exported state had non-zeros under
     * its mask, which this keeps too) */
    if (rc == PARE_OK && tw)
        memcpy(l->w, src_w, (size_t)out * in * sizeof(float));
    else if (rc == PARE_OK) {
        memcpy(l->A, a, (size_t)out * rank * sizeof(float));
        memcpy(l->B, b, (size_t)rank * in * sizeof(float));
    }
    free(src_w);
    free(a);
    free(b);
    if (rc)
        return pare_wrap(err, "%s: %s", r->mpath, what);
    json_t *jp = json_object_get(e, "params");
    if (jp && (!json_is_integer(jp) || (size_t)json_integer_value(jp) != pare_linear_params(l)))
        return pare_fail(err, PARE_EFORMAT, "%s: %s: \"params\" says %lld but the stored layer has %zu", r->mpath, what,
                         json_is_integer(jp) ? (long long)json_integer_value(jp) : -1LL, pare_linear_params(l));
    return PARE_OK;
}

static pare_status load_pare_weights(pare_model *m, const char *mpath, json_t *root, const pare_safetensors *st,
                                     pare_dtype factor_dtype, pare_error *err)
{
    reader r = {mpath, st, factor_dtype};
    pare_status rc = PARE_OK;
    int np = pare_model_named_params(m, NULL);
    pare_param_ref *refs = malloc((size_t)np * sizeof *refs);
    if (!refs)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    pare_model_named_params(m, refs);
    for (int i = 0; i < np && rc == PARE_OK; i++) {
        const pare_st_tensor *t = pare_st_find(st, refs[i].name);
        if (!t)
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' needed by the config is missing", st->paths[0],
                           refs[i].name);
        else if (t->dtype != PARE_DT_F32 || t->ndim != (refs[i].d1 ? 2 : 1) || t->shape[0] != refs[i].d0 ||
                 (refs[i].d1 && t->shape[1] != refs[i].d1))
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' is not F32 of the shape the config implies ([%d%s%.0d])",
                           st->paths[0], refs[i].name, refs[i].d0, refs[i].d1 ? ", " : "", refs[i].d1);
        else
            memcpy(refs[i].p, t->data, t->nbytes);
    }
    free(refs);
    if (rc)
        return rc;
    json_t *lins = json_object_get(root, "linears");
    int n = pare_model_linears(m, NULL, 0);
    if (!json_is_array(lins) || json_array_size(lins) != (size_t)n)
        return pare_fail(err, PARE_EFORMAT, "%s: \"linears\" must be an array of %d entries (one per block matrix)",
                         mpath, n);
    pare_linear **lin = malloc((size_t)n * sizeof *lin);
    if (!lin)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    pare_model_linears(m, lin, n);
    for (int i = 0; i < n && rc == PARE_OK; i++)
        rc = load_linear(&r, lin[i], json_array_get(lins, (size_t)i), i, err);
    free(lin);
    /* each linear is valid alone; together they must be a model the forward computes */
    if (rc == PARE_OK && (rc = pare_model_check_shapes(m, err)))
        rc = pare_wrap(err, "%s", mpath);
    return rc;
}

pare_status pare_model_load_pare(pare_model *m, const char *dir, const char *tokenizer_path, pare_error *err)
{
    char mpath[4096], path[4096];
    pare_status rc = pare_path_join(mpath, sizeof mpath, dir, PARE_EXPORT_MANIFEST, err);
    if (rc)
        return rc;
    json_t *root;
    if ((rc = pare_load_json(mpath, JSON_REJECT_DUPLICATES, &root, err)))
        return rc;
    const char *fmt = json_string_value(json_object_get(root, "format"));
    json_t *ver = json_object_get(root, "version");
    const char *arch = json_string_value(json_object_get(root, "architecture"));
    const char *wf = json_string_value(json_object_get(root, "weights"));
    /* absent in exports made before the key existed: those store F32 */
    json_t *jfd = json_object_get(root, "factor_dtype");
    pare_dtype factor_dtype = PARE_DT_F32;
    if (!json_is_object(root) || !fmt || strcmp(fmt, "pare") != 0)
        rc = pare_fail(err, PARE_EFORMAT, "%s: \"format\" must be \"pare\"", mpath);
    else if (!json_is_integer(ver) || json_integer_value(ver) != PARE_EXPORT_VERSION)
        rc = pare_fail(err,
                       json_is_integer(ver) && json_integer_value(ver) > PARE_EXPORT_VERSION ? PARE_EUNSUPPORTED
                                                                                             : PARE_EFORMAT,
                       "%s: \"version\" must be %d (this build reads version %d only)", mpath, PARE_EXPORT_VERSION,
                       PARE_EXPORT_VERSION);
    else if (arch && strcmp(arch, pare_family_class(&m->cfg)) != 0)
        rc = pare_fail(err, PARE_EFORMAT, "%s: architecture %s but config.json is %s", mpath, arch,
                       pare_family_class(&m->cfg));
    else if (!wf || !*wf || strchr(wf, '/') || !strcmp(wf, "..") || !strcmp(wf, "."))
        rc = pare_fail(err, PARE_EFORMAT, "%s: \"weights\" must name a file in the folder", mpath);
    else if (jfd && !(json_is_string(jfd) && pare_float_dtype_parse(json_string_value(jfd), &factor_dtype)))
        rc = pare_fail(err, PARE_EFORMAT, "%s: \"factor_dtype\" must be \"F32\", \"F16\" or \"BF16\"", mpath);
    pare_safetensors st;
    if (rc == PARE_OK && (rc = pare_path_join(path, sizeof path, dir, wf, err)) == PARE_OK &&
        (rc = pare_st_open_file(path, &st, err)) == PARE_OK) {
        rc = load_pare_weights(m, mpath, root, &st, factor_dtype, err);
        pare_st_close(&st);
    }
    json_decref(root);
    if (rc)
        return rc;
    m->format = PARE_FMT_HF;
    /* block matrices in the factor dtype, the rest F32: "mixed", as the HF loader says of such files */
    snprintf(m->source_dtype, sizeof m->source_dtype, "%s", factor_dtype == PARE_DT_F32 ? "F32" : "mixed");
    if (tokenizer_path) {
        size_t n = strlen(tokenizer_path);
        if (n > 4 && !strcmp(tokenizer_path + n - 4, ".bin"))
            return pare_tokenizer_load_llama2c(tokenizer_path, m->cfg.vocab_size, &m->tok, err);
        return pare_model_load_hf_tokenizer(m, tokenizer_path, err);
    }
    if ((rc = pare_path_join(path, sizeof path, dir, "tokenizer.json", err)))
        return rc;
    if (pare_file_exists(path))
        return pare_model_load_hf_tokenizer(m, path, err);
    if ((rc = pare_path_join(path, sizeof path, dir, "tokenizer.bin", err)))
        return rc;
    if (pare_file_exists(path))
        return pare_tokenizer_load_llama2c(path, m->cfg.vocab_size, &m->tok, err);
    return PARE_OK;
}

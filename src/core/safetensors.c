/* safetensors reading with full header validation, and atomic writing. Format:
 * u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, __metadata__},
 * then the data area; offsets are relative to the data area. */
#include "safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[PARE_DT_COUNT] = {
    [PARE_DT_F32] = {"F32", 4},   [PARE_DT_F16] = {"F16", 2},         [PARE_DT_BF16] = {"BF16", 2},
    [PARE_DT_F64] = {"F64", 8},   [PARE_DT_I64] = {"I64", 8},         [PARE_DT_I32] = {"I32", 4},
    [PARE_DT_I16] = {"I16", 2},   [PARE_DT_I8] = {"I8", 1},           [PARE_DT_U8] = {"U8", 1},
    [PARE_DT_BOOL] = {"BOOL", 1}, [PARE_DT_U16] = {"U16", 2},         [PARE_DT_U32] = {"U32", 4},
    [PARE_DT_U64] = {"U64", 8},   [PARE_DT_F8_E4M3] = {"F8_E4M3", 1}, [PARE_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *pare_dtype_name(pare_dtype dt) { return dt < PARE_DT_COUNT ? dtype_table[dt].name : "?"; }
size_t pare_dtype_size(pare_dtype dt) { return dt < PARE_DT_COUNT ? dtype_table[dt].size : 0; }

int pare_float_dtype_parse(const char *s, pare_dtype *dt)
{
    static const pare_dtype floats[] = {PARE_DT_F32, PARE_DT_F16, PARE_DT_BF16};
    for (size_t i = 0; s && i < sizeof floats / sizeof floats[0]; i++)
        if (strcasecmp(s, dtype_table[floats[i]].name) == 0) {
            *dt = floats[i];
            return 1;
        }
    return 0;
}

static int dtype_from_name(const char *s, pare_dtype *out)
{
    for (int i = 0; i < PARE_DT_COUNT; i++)
        if (strcmp(s, dtype_table[i].name) == 0) {
            *out = (pare_dtype)i;
            return 1;
        }
    return 0;
}

float pare_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float pare_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pare_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);          /* round to nearest even */
    return (uint16_t)(u >> 16);
}

uint16_t pare_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00);
    if (abs >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) { /* below the smallest normal: subnormal or zero */
        if (abs < 0x33000000u)
            return (uint16_t)sign;
        /* value = m * 2^(e-150); in units of the f16 subnormal step 2^-24 that is m >> (126 - e) */
        uint32_t e = abs >> 23, m = (abs & 0x7fffff) | 0x800000;
        uint32_t s = 126 - e; /* 14..24 */
        uint32_t q = m >> s, rem = m & ((1u << s) - 1), halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = abs + 0x0fffu + ((abs >> 13) & 1) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

size_t pare_st_numel(const pare_st_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

static int cmp_by_data(const void *a, const void *b)
{
    const pare_st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Parses and validates one file's header, appending its tensors to st (shard index `shard`). */
static pare_status parse_header(const char *path, const pare_map *map, int shard, pare_safetensors *st, pare_error *err)
{
    if (map->len < 8)
        return pare_fail(err, PARE_EFORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length", path,
                         map->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | map->data[i];
    /* the reference implementation's cap (safetensors MAX_HEADER_SIZE): a header this large is not a
     * model's table of contents but an attempt to make the reader parse gigabytes of JSON */
    if (hlen > PARE_ST_MAX_HEADER)
        return pare_fail(err, PARE_EFORMAT, "%s: header length %llu exceeds the safetensors limit of %d bytes", path,
                         (unsigned long long)hlen, PARE_ST_MAX_HEADER);
    if (hlen > map->len - 8)
        return pare_fail(err, PARE_EFORMAT,
                         "%s: header length %llu runs past the end of the file (%zu bytes); truncated or not "
                         "safetensors",
                         path, (unsigned long long)hlen, map->len);
    if (hlen < 2 || map->data[8] != '{')
        return pare_fail(err, PARE_EFORMAT, "%s: header does not start with a JSON object", path);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)map->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return pare_fail(err, PARE_EFORMAT, "%s: invalid header JSON at byte %d: %s", path, jerr.position, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return pare_fail(err, PARE_EFORMAT, "%s: header JSON is not an object", path);
    }
    const unsigned char *area = map->data + 8 + hlen;
    size_t area_len = map->len - 8 - (size_t)hlen;
    size_t first = st->n_tensors;
    size_t add = json_object_size(root);
    pare_st_tensor *grown = realloc(st->tensors, (st->n_tensors + add) * sizeof *grown);
    if (!grown && add) {
        json_decref(root);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory reading header", path);
    }
    st->tensors = grown;
    const char *key;
    json_t *val;
    pare_status rc = PARE_OK;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        pare_st_tensor t = {0};
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
            json_array_size(jo) != 2) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets [begin, end]",
                           path, key);
            break;
        }
        if (!dtype_from_name(json_string_value(jd), &t.dtype)) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", path, key, json_string_value(jd));
            break;
        }
        if (json_array_size(js) > PARE_ST_MAX_DIMS) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", path, key,
                           json_array_size(js), PARE_ST_MAX_DIMS);
            break;
        }
        t.ndim = (int)json_array_size(js);
        size_t numel = 1;
        int bad_shape = 0;
        for (int i = 0; i < t.ndim; i++) {
            json_t *d = json_array_get(js, (size_t)i);
            if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > ((int64_t)1 << 40)) {
                bad_shape = 1;
                break;
            }
            t.shape[i] = json_integer_value(d);
            if (t.shape[i] && numel > ((size_t)1 << 50) / (size_t)t.shape[i]) {
                bad_shape = 1;
                break;
            }
            numel *= (size_t)t.shape[i];
        }
        if (bad_shape) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s': invalid shape", path, key);
            break;
        }
        json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
        if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
            json_integer_value(je) < json_integer_value(jb)) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s': invalid data_offsets", path, key);
            break;
        }
        uint64_t b = (uint64_t)json_integer_value(jb), e = (uint64_t)json_integer_value(je);
        if (e > area_len) {
            rc = pare_fail(err, PARE_EFORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] out of range: data area has %zu bytes (file "
                           "truncated?)",
                           path, key, (unsigned long long)b, (unsigned long long)e, area_len);
            break;
        }
        t.nbytes = numel * pare_dtype_size(t.dtype);
        if (e - b != t.nbytes) {
            rc = pare_fail(err, PARE_EFORMAT,
                           "%s: tensor '%s': data_offsets span %llu bytes but dtype %s x shape needs %zu", path, key,
                           (unsigned long long)(e - b), pare_dtype_name(t.dtype), t.nbytes);
            break;
        }
        t.data = area + b;
        t.shard = shard;
        t.name = strdup(key);
        if (!t.name) {
            rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
            break;
        }
        st->tensors[st->n_tensors++] = t;
    }
    json_decref(root);
    if (rc != PARE_OK)
        return rc;
    /* Overlap check within this file: sort this file's tensors by start, compare neighbours. */
    size_t n = st->n_tensors - first;
    pare_st_tensor *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    memcpy(sorted, st->tensors + first, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_by_data);
    for (size_t i = 1; i < n; i++) {
        const pare_st_tensor *p = &sorted[i - 1], *q = &sorted[i];
        if (p->data + p->nbytes > q->data && q->nbytes && p->nbytes) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data area", path, p->name,
                           q->name);
            break;
        }
    }
    free(sorted);
    return rc;
}

static pare_status add_shard(pare_safetensors *st, const char *path, pare_error *err)
{
    char **paths = realloc(st->paths, (size_t)(st->n_shards + 1) * sizeof *paths);
    if (!paths)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    st->paths = paths;
    pare_map *maps = realloc(st->maps, (size_t)(st->n_shards + 1) * sizeof *maps);
    if (!maps)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    st->maps = maps;
    int k = st->n_shards;
    st->paths[k] = strdup(path);
    memset(&st->maps[k], 0, sizeof st->maps[k]);
    if (!st->paths[k])
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    st->n_shards++;
    pare_status rc = pare_map_file(path, &st->maps[k], err);
    if (rc != PARE_OK)
        return rc;
    return parse_header(path, &st->maps[k], k, st, err);
}

pare_status pare_st_open_file(const char *path, pare_safetensors *st, pare_error *err)
{
    memset(st, 0, sizeof *st);
    pare_status rc = add_shard(st, path, err);
    if (rc != PARE_OK)
        pare_st_close(st);
    return rc;
}

pare_status pare_st_open_dir(const char *dir, pare_safetensors *st, pare_error *err)
{
    memset(st, 0, sizeof *st);
    char path[4096];
    pare_status rc = pare_path_join(path, sizeof path, dir, "model.safetensors", err);
    if (rc != PARE_OK)
        return rc;
    if (pare_file_exists(path))
        return pare_st_open_file(path, st, err);
    char index[4096];
    if ((rc = pare_path_join(index, sizeof index, dir, "model.safetensors.index.json", err)) != PARE_OK)
        return rc;
    if (!pare_file_exists(index))
        return pare_fail(err, PARE_EIO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    json_t *root;
    if ((rc = pare_load_json(index, JSON_REJECT_DUPLICATES, &root, err)))
        return rc;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return pare_fail(err, PARE_EFORMAT, "%s: missing or empty \"weight_map\" object", index);
    }
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        const char *file = json_string_value(val);
        if (!file || !*file || strchr(file, '/') || strcmp(file, "..") == 0) {
            rc = pare_fail(err, PARE_EFORMAT, "%s: weight_map entry '%s' is not a plain file name", index, key);
            break;
        }
        if ((rc = pare_path_join(path, sizeof path, dir, file, err)) != PARE_OK)
            break;
        int seen = 0;
        for (int i = 0; i < st->n_shards; i++)
            seen |= strcmp(st->paths[i], path) == 0;
        if (!seen && (rc = add_shard(st, path, err)) != PARE_OK)
            break;
    }
    if (rc == PARE_OK) {
        /* Every tensor the index names must be in the shard it names, and no tensor twice. */
        json_object_foreach(wm, key, val) {
            const pare_st_tensor *t = pare_st_find(st, key);
            const char *shard = t ? strrchr(st->paths[t->shard], '/') : NULL;
            shard = shard ? shard + 1 : t ? st->paths[t->shard] : NULL;
            if (t && strcmp(shard, json_string_value(val)) != 0) {
                rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' is listed in %s but stored in %s", index, key,
                               json_string_value(val), shard);
                break;
            }
            if (!t) {
                rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' is listed but not found in %s", index, key,
                               json_string_value(val));
                break;
            }
        }
        for (size_t i = 0; rc == PARE_OK && i < st->n_tensors; i++)
            for (size_t j = i + 1; j < st->n_tensors; j++)
                if (strcmp(st->tensors[i].name, st->tensors[j].name) == 0) {
                    rc = pare_fail(err, PARE_EFORMAT, "%s: tensor '%s' appears in both %s and %s", index,
                                   st->tensors[i].name, st->paths[st->tensors[i].shard],
                                   st->paths[st->tensors[j].shard]);
                    break;
                }
    }
    json_decref(root);
    if (rc != PARE_OK)
        pare_st_close(st);
    return rc;
}

void pare_st_close(pare_safetensors *st)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_shards; i++) {
        pare_unmap(&st->maps[i]);
        free(st->paths[i]);
    }
    free(st->maps);
    free(st->paths);
    memset(st, 0, sizeof *st);
}

const pare_st_tensor *pare_st_find(const pare_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

pare_status pare_st_to_f32(const pare_safetensors *st, const pare_st_tensor *t, float *dst, pare_error *err)
{
    size_t n = pare_st_numel(t);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case PARE_DT_F32: memcpy(dst, p, n * 4); return PARE_OK;
    case PARE_DT_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = pare_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return PARE_OK;
    case PARE_DT_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = pare_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return PARE_OK;
    default:
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; supported: F32, F16, BF16",
                         st->paths[t->shard], t->name, pare_dtype_name(t->dtype));
    }
}

pare_status pare_st_writer_open(pare_st_writer *w, const char *path, const pare_st_out *tensors, size_t n,
                                const void *metadata, pare_error *err)
{
    memset(w, 0, sizeof *w);
    json_t *hdr = json_object();
    if (!hdr)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    if (metadata)
        json_object_set(hdr, "__metadata__", (json_t *)metadata);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const pare_st_out *t = &tensors[i];
        if (t->dtype != PARE_DT_F32 && t->dtype != PARE_DT_F16 && t->dtype != PARE_DT_BF16) {
            json_decref(hdr);
            return pare_fail(err, PARE_EINVAL, "%s: tensor '%s': can only write F32, F16 or BF16", path, t->name);
        }
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            numel *= (size_t)t->shape[d];
            json_array_append_new(shape, json_integer(t->shape[d]));
        }
        size_t nb = numel * pare_dtype_size(t->dtype);
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(pare_dtype_name(t->dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[I, I]", (json_int_t)off, (json_int_t)(off + nb)));
        if (json_object_set_new(hdr, t->name, e) != 0) {
            json_decref(hdr);
            return pare_fail(err, PARE_EINVAL, "%s: cannot add tensor '%s' to the header", path, t->name);
        }
        off += nb;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (!text)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    size_t tl = strlen(text), padded = (tl + 7) & ~(size_t)7; /* 8-byte aligned data area */
    pare_status rc = pare_atomic_open(&w->f, path, err);
    if (rc != PARE_OK) {
        free(text);
        return rc;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, w->f.fp);
    fwrite(text, 1, tl, w->f.fp);
    for (size_t i = tl; i < padded; i++)
        fputc(' ', w->f.fp);
    free(text);
    w->expected = off;
    return PARE_OK;
}

pare_status pare_st_writer_put(pare_st_writer *w, const float *data, size_t numel, pare_dtype dt, pare_error *err)
{
    size_t size = pare_dtype_size(dt);
    if (w->written + numel * size > w->expected)
        return pare_fail(err, PARE_EINVAL, "%s: more tensor data than the header describes (%zu bytes)", w->f.path,
                         w->expected);
    if (dt == PARE_DT_F32) {
        if (fwrite(data, 4, numel, w->f.fp) != numel)
            return pare_fail(err, PARE_EIO, "%s: write failed: %s", w->f.path, strerror(errno));
        w->written += numel * 4;
        return PARE_OK;
    }
    enum { CHUNK = 4096 };
    unsigned char buf[CHUNK * 2];
    for (size_t s = 0; s < numel; s += CHUNK) {
        size_t m = numel - s < CHUNK ? numel - s : CHUNK;
        for (size_t j = 0; j < m; j++) {
            uint16_t h = dt == PARE_DT_BF16 ? pare_f32_to_bf16(data[s + j]) : pare_f32_to_f16(data[s + j]);
            buf[2 * j] = (unsigned char)(h & 0xff);
            buf[2 * j + 1] = (unsigned char)(h >> 8);
        }
        if (fwrite(buf, 2, m, w->f.fp) != m)
            return pare_fail(err, PARE_EIO, "%s: write failed: %s", w->f.path, strerror(errno));
    }
    w->written += numel * 2;
    return PARE_OK;
}

pare_status pare_st_writer_commit(pare_st_writer *w, pare_error *err)
{
    if (w->written != w->expected) {
        pare_status rc = pare_fail(err, PARE_EINVAL, "%s: %zu bytes of tensor data written, the header describes %zu",
                                   w->f.path, w->written, w->expected);
        pare_atomic_abort(&w->f);
        return rc;
    }
    return pare_atomic_commit(&w->f, err);
}

void pare_st_writer_abort(pare_st_writer *w) { pare_atomic_abort(&w->f); }

pare_status pare_st_write(const char *path, const pare_st_out *tensors, size_t n, const void *metadata, pare_error *err)
{
    pare_st_writer w;
    pare_status rc = pare_st_writer_open(&w, path, tensors, n, metadata, err);
    for (size_t i = 0; i < n && rc == PARE_OK; i++) {
        size_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++)
            numel *= (size_t)tensors[i].shape[d];
        if ((rc = pare_st_writer_put(&w, tensors[i].data, numel, tensors[i].dtype, err)))
            pare_st_writer_abort(&w);
    }
    return rc ? rc : pare_st_writer_commit(&w, err);
}

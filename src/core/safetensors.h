/* safetensors: validated, memory-mapped reading (single file or sharded index) and atomic writing. */
#ifndef PARE_SAFETENSORS_H
#define PARE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "fileio.h"

typedef enum {
    PARE_DT_F32,
    PARE_DT_F16,
    PARE_DT_BF16,
    PARE_DT_F64,
    PARE_DT_I64,
    PARE_DT_I32,
    PARE_DT_I16,
    PARE_DT_I8,
    PARE_DT_U8,
    PARE_DT_BOOL,
    PARE_DT_U16,
    PARE_DT_U32,
    PARE_DT_U64,
    PARE_DT_F8_E4M3,
    PARE_DT_F8_E5M2,
    PARE_DT_COUNT
} pare_dtype;

#define PARE_ST_MAX_DIMS 8
#define PARE_ST_MAX_HEADER 100000000 /* bytes of header JSON, as the reference implementation */

typedef struct {
    char *name;
    pare_dtype dtype;
    int ndim;
    int64_t shape[PARE_ST_MAX_DIMS];
    size_t nbytes;
    const unsigned char *data; /* points into the shard's map */
    int shard;                 /* index into pare_safetensors.paths */
} pare_st_tensor;

typedef struct {
    int n_shards;
    char **paths;   /* [n_shards] */
    pare_map *maps; /* [n_shards] */
    pare_st_tensor *tensors;
    size_t n_tensors;
} pare_safetensors;

const char *pare_dtype_name(pare_dtype dt);
size_t pare_dtype_size(pare_dtype dt);
/* The float dtypes pare stores weights in, named in any case: "bf16" as options spell it, "BF16" as
 * safetensors does; F32, F16 or BF16 into *dt, else 0 (the caller names its option in the error). */
int pare_float_dtype_parse(const char *s, pare_dtype *dt);

/* Opens one .safetensors file, validating the header completely. */
pare_status pare_st_open_file(const char *path, pare_safetensors *st, pare_error *err);
/* Opens a model folder: model.safetensors, or the shards listed in model.safetensors.index.json. */
pare_status pare_st_open_dir(const char *dir, pare_safetensors *st, pare_error *err);
void pare_st_close(pare_safetensors *st);

const pare_st_tensor *pare_st_find(const pare_safetensors *st, const char *name);
size_t pare_st_numel(const pare_st_tensor *t);
/* Converts a F32/F16/BF16 tensor to fp32 (dst holds numel floats); other dtypes are an error. */
pare_status pare_st_to_f32(const pare_safetensors *st, const pare_st_tensor *t, float *dst, pare_error *err);

/* One tensor to write: fp32 source data, stored as dtype (F32, F16 or BF16; round to nearest even). */
typedef struct {
    const char *name;
    pare_dtype dtype;
    int ndim;
    int64_t shape[PARE_ST_MAX_DIMS];
    const float *data;
} pare_st_out;

/* Writes a safetensors file atomically; metadata is an optional JSON object of string values
 * (a jansson json_t*, passed as void* to keep jansson out of callers' headers). */
pare_status pare_st_write(const char *path, const pare_st_out *tensors, size_t n, const void *metadata, pare_error *err);

/* A safetensors file written as a stream: the header is laid out from the tensors' names, dtypes
 * and shapes (their data pointers are not read), then the values arrive in pieces of any size, in
 * the header's order, so the writer never holds more than the piece it is given. Written through
 * pare_atomic_open: the file appears at path only when commit finds every byte the header promised. */
typedef struct {
    pare_atomic_file f;
    size_t expected; /* tensor bytes the header describes */
    size_t written;
} pare_st_writer;

pare_status pare_st_writer_open(pare_st_writer *w, const char *path, const pare_st_out *tensors, size_t n,
                                const void *metadata, pare_error *err);
/* Appends numel fp32 values converted to dt (the dtype of the tensor they belong to). */
pare_status pare_st_writer_put(pare_st_writer *w, const float *data, size_t numel, pare_dtype dt, pare_error *err);
pare_status pare_st_writer_commit(pare_st_writer *w, pare_error *err);
void pare_st_writer_abort(pare_st_writer *w);

float pare_bf16_to_f32(uint16_t h);
float pare_f16_to_f32(uint16_t h);
uint16_t pare_f32_to_bf16(float f);
uint16_t pare_f32_to_f16(float f);

#endif

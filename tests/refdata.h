/* Reading reference values that ship with the shared models: reference.json and raw little-endian arrays. */
#ifndef PARE_TEST_REFDATA_H
#define PARE_TEST_REFDATA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The evaluation texts: the key reference.json uses for each, and its path below the shared data. */
typedef struct {
    const char *name, *path;
} ref_eval_file;
#define REF_EVAL_FILES 4
extern const ref_eval_file ref_eval_files[REF_EVAL_FILES];

/* Checked readers, the only way tests read reference files: paths are relative to the shared data.
 * When the shared data itself is absent they skip the running test; otherwise a missing or invalid
 * file fails the running test with one line naming the file and the problem. Either way they return
 * NULL (with *len / *n set to 0), and the caller stops using the reference. */

/* models/MODEL/reference.json (caller json_decref's), reporting a parser's message; a MODEL with a
 * '/' is a folder below the shared data (tokenizers/llama3), here and in ref_field. */
json_t *ref_json_checked(const char *model);
/* The value at a NULL-terminated path of keys in MODEL's reference.json (ref as ref_json_checked
 * returned it; NULL gives NULL without a second report), or NULL with a failed check naming the file
 * and the missing field. */
json_t *ref_field(json_t *ref, const char *model, const char *key, ...) __attribute__((sentinel));
/* A whole file as a NUL-terminated heap string (*len excludes the NUL). */
char *ref_read_text(const char *rel, size_t *len);
/* A file of little-endian int32 / float32 (malloc'd; *n elements), failing on a size that is not a
 * whole number of elements. */
int32_t *ref_read_i32_checked(const char *rel, size_t *n);
float *ref_read_f32_checked(const char *rel, size_t *n);

/* A JSON array of integers as a malloc'd int32 array (never NULL unless out of memory; empty for a
 * value that is not an array). */
int32_t *ref_ids(json_t *arr, size_t *n);

#endif

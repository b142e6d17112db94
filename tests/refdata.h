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

/* Quiet readers: they return NULL on any failure and leave reporting to the caller. */

/* Loads models/MODEL/reference.json (caller json_decref's), or NULL. */
json_t *ref_json(const char *model);
/* Reads a whole binary file (full path) of little-endian int32 / float32 (malloc'd; *n elements;
 * trailing bytes short of a whole element are ignored). */
int32_t *ref_read_i32(const char *path, size_t *n);
float *ref_read_f32(const char *path, size_t *n);
/* A JSON array of integers as a malloc'd int32 array (never NULL unless out of memory). */
int32_t *ref_ids(json_t *arr, size_t *n);

/* Checked readers: paths are relative to the shared data; on failure they fail the running test
 * with one line naming the file and the problem, and return NULL (with *len / *n set to 0). */

/* ref_json, reporting a missing or invalid reference.json with the parser's message. */
json_t *ref_json_checked(const char *model);
/* A whole file as a NUL-terminated heap string (*len excludes the NUL). */
char *ref_read_text(const char *rel, size_t *len);
/* ref_read_i32, also failing on a size that is not a whole number of int32. */
int32_t *ref_read_i32_checked(const char *rel, size_t *n);

#endif

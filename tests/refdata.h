/* Reading reference values that ship with the shared models: reference.json and raw little-endian arrays. */
#ifndef PARE_TEST_REFDATA_H
#define PARE_TEST_REFDATA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Loads models/NAME/reference.json (caller json_decref's), or NULL. */
json_t *ref_json(const char *model);
/* Reads a whole binary file of little-endian int32 / float32 (malloc'd; *n elements). */
int32_t *ref_read_i32(const char *path, size_t *n);
float *ref_read_f32(const char *path, size_t *n);
/* A JSON array of integers as a malloc'd int32 array. */
int32_t *ref_ids(json_t *arr, size_t *n);

#endif

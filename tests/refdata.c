/* Reference data readers for tests. */
#include "refdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

json_t *ref_json(const char *model)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference.json", model);
    json_error_t e;
    return json_load_file(shared_path(rel), 0, &e);
}

static void *read_all(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *bytes = n > 0 ? (size_t)n : 0;
    return buf;
}

int32_t *ref_read_i32(const char *path, size_t *n)
{
    size_t b = 0;
    int32_t *p = read_all(path, &b);
    *n = b / 4;
    return p;
}

float *ref_read_f32(const char *path, size_t *n)
{
    size_t b = 0;
    float *p = read_all(path, &b);
    *n = b / 4;
    return p;
}

int32_t *ref_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* Reference data readers for tests: every read of a reference file is checked (see refdata.h). */
#include "refdata.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "harness.h"

const ref_eval_file ref_eval_files[REF_EVAL_FILES] = {
    {"wiki.test.raw", "data/text/wikitext-2/wiki.test.raw"},
    {"ptb.test.txt", "data/text/ptb/ptb.test.txt"},
    {"brown_val.txt", "data/text/brown/brown_val.txt"},
    {"tiny_test.txt", "data/text/tinystories/tiny_test.txt"},
};

/* Whether a reference file can be read at all: without the shared data the running test skips. */
static int shared_present(void)
{
    if (harness_shared())
        return 1;
    harness_skip("skipped: PARE_SHARED not found");
    return 0;
}

/* The reference.json of a model name (under models/) or of a folder path such as tokenizers/llama3. */
static void reference_json_rel(const char *model, char *rel, size_t cap)
{
    snprintf(rel, cap, strchr(model, '/') ? "%s/reference.json" : "models/%s/reference.json", model);
}

json_t *ref_json_checked(const char *model)
{
    if (!shared_present())
        return NULL;
    char rel[256];
    reference_json_rel(model, rel, sizeof rel);
    json_error_t jerr;
    json_t *ref = json_load_file(shared_path(rel), 0, &jerr);
    CHECKF(ref != NULL, "%s: %s", rel, jerr.text);
    return ref;
}

json_t *ref_field(json_t *ref, const char *model, const char *key, ...)
{
    if (!ref)
        return NULL;
    char where[512] = "";
    size_t used = 0;
    json_t *v = ref;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k && v; k = va_arg(ap, const char *)) {
        int w = snprintf(where + used, sizeof where - used, "%s%s", used ? "/" : "", k);
        used = w > 0 && (size_t)w < sizeof where - used ? used + (size_t)w : used;
        v = json_object_get(v, k);
    }
    va_end(ap);
    char rel[256];
    reference_json_rel(model, rel, sizeof rel);
    CHECKF(v != NULL, "%s: no field %s", rel, where);
    return v;
}

/* A whole shared file (NUL-terminated), or NULL after a skip or a failed check. */
static char *read_shared(const char *rel, size_t *len)
{
    *len = 0;
    if (!shared_present())
        return NULL;
    char *data = NULL;
    pare_error err = {0};
    pare_status st = pare_read_file(shared_path(rel), &data, len, &err);
    CHECKF(st == PARE_OK, "%s", err.msg);
    return st == PARE_OK ? data : NULL;
}

char *ref_read_text(const char *rel, size_t *len) { return read_shared(rel, len); }

/* Reads a shared file of little-endian 32-bit words (what names the element type in messages) and
 * puts each into host order in place (*n words). */
static void *read_le32(const char *rel, const char *what, size_t *n)
{
    size_t bytes = 0;
    unsigned char *p = (unsigned char *)read_shared(rel, &bytes);
    *n = 0;
    if (!p)
        return NULL;
    if (bytes % 4 != 0) {
        CHECKF(0, "%s: %zu bytes is not a whole number of %s", rel, bytes, what);
        free(p);
        return NULL;
    }
    *n = bytes / 4;
    for (size_t i = 0; i < *n; i++) {
        const unsigned char *b = p + 4 * i;
        uint32_t word = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(p + 4 * i, &word, sizeof word);
    }
    return p;
}

int32_t *ref_read_i32_checked(const char *rel, size_t *n) { return read_le32(rel, "int32", n); }

float *ref_read_f32_checked(const char *rel, size_t *n) { return read_le32(rel, "float32", n); }

int32_t *ref_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    if (!ids) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

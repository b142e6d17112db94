/* Reference data readers for tests. */
#include "refdata.h"

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

/* Parses models/MODEL/reference.json; rel receives that relative path for messages. */
static json_t *load_reference(const char *model, char *rel, size_t rel_cap, json_error_t *jerr)
{
    snprintf(rel, rel_cap, "models/%s/reference.json", model);
    return json_load_file(shared_path(rel), 0, jerr);
}

json_t *ref_json(const char *model)
{
    char rel[256];
    json_error_t jerr;
    return load_reference(model, rel, sizeof rel, &jerr);
}

json_t *ref_json_checked(const char *model)
{
    char rel[256];
    json_error_t jerr;
    json_t *ref = load_reference(model, rel, sizeof rel, &jerr);
    CHECKF(ref != NULL, "%s: %s", rel, jerr.text);
    return ref;
}

/* A whole file (NUL-terminated); on failure NULL, and a failed check when report is set. */
static char *read_file(const char *path, int report, size_t *len)
{
    char *data = NULL;
    pare_error err = {0};
    pare_status st = pare_read_file(path, &data, len, &err);
    if (report)
        CHECKF(st == PARE_OK, "%s", err.msg);
    return st == PARE_OK ? data : NULL;
}

char *ref_read_text(const char *rel, size_t *len) { return read_file(shared_path(rel), 1, len); }

/* Reads a file of little-endian 32-bit words and puts each into host order in place (*n words;
 * trailing bytes short of a word are ignored). With checked_rel set, failures are reported under
 * that name, including a size that is not a whole number of words. */
static void *read_le32(const char *path, const char *checked_rel, size_t *n)
{
    size_t bytes = 0;
    unsigned char *p = (unsigned char *)read_file(path, checked_rel != NULL, &bytes);
    *n = 0;
    if (!p)
        return NULL;
    if (checked_rel)
        CHECKF(bytes % 4 == 0, "%s: %zu bytes is not a whole number of int32", checked_rel, bytes);
    *n = bytes / 4;
    for (size_t i = 0; i < *n; i++) {
        const unsigned char *b = p + 4 * i;
        uint32_t word = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(p + 4 * i, &word, sizeof word);
    }
    return p;
}

int32_t *ref_read_i32(const char *path, size_t *n) { return read_le32(path, NULL, n); }

float *ref_read_f32(const char *path, size_t *n) { return read_le32(path, NULL, n); }

int32_t *ref_read_i32_checked(const char *rel, size_t *n) { return read_le32(shared_path(rel), rel, n); }

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

/* Hostile sizes (issue 9 §2): capped headers, deep JSON, sizes beyond the file, and the memory
 * estimate that refuses a model or a batch this machine cannot hold, before anything is allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/environment.h"
#include "train/backward.h"
#include "core/forward.h"
#include "core/memcheck.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "core/tokenizer.h"
#include "fixture.h"
#include "harness.h"

/* A header length above the reference implementation's cap is refused before any JSON is read,
 * whatever the file's size; one that runs past the end of the file is refused as truncated. */
static void test_safetensors_header_cap(void)
{
    unsigned char b[16] = {0};
    uint64_t big = (uint64_t)PARE_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(big >> (8 * i));
    memcpy(b + 8, "{}      ", 8);
    const char *p = tmp_path("cap.safetensors");
    CHECK(write_bytes(p, b, sizeof b) == 0);
    pare_safetensors st = {0};
    pare_error err = {0};
    CHECK(pare_st_open_file(p, &st, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "exceeds the safetensors limit") && strstr(err.msg, "cap.safetensors"), "%s", err.msg);
    pare_st_close(&st);

    uint64_t past = 1000; /* within the cap, beyond the 16-byte file */
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(past >> (8 * i));
    CHECK(write_bytes(p, b, sizeof b) == 0);
    memset(&st, 0, sizeof st);
    CHECK(pare_st_open_file(p, &st, &err) == PARE_EFORMAT);
    CHECKF(strstr(err.msg, "runs past the end of the file"), "%s", err.msg);
    pare_st_close(&st);
}

/* A tensor whose shape claims more bytes than its data_offsets (or than the file) is refused, and a
 * shape whose product overflows is refused without arithmetic overflow (UBSan would trap in make check). */
static void test_safetensors_hostile_shapes(void)
{
    static const char *const headers[] = {
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,1600000]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}",
    };
    for (size_t k = 0; k < sizeof headers / sizeof *headers; k++) {
        size_t hl = strlen(headers[k]), n = 8 + hl + 16;
        unsigned char *b = calloc(1, n);
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
        memcpy(b + 8, headers[k], hl);
        const char *p = tmp_path("shape.safetensors");
        CHECK(write_bytes(p, b, n) == 0);
        free(b);
        pare_safetensors st = {0};
        pare_error err = {0};
        pare_status rc = pare_st_open_file(p, &st, &err);
        CHECKF(rc == PARE_EFORMAT && strstr(err.msg, "'w'"), "header %zu: status %d: %s", k, rc, err.msg);
        pare_st_close(&st);
    }
}

/* JSON nested far deeper than any real config or tokenizer: a clean error, not a stack overflow. */
static void test_deep_json(void)
{
    const char *dir = fixture_hf_dir("deep", 0);
    size_t depth = 200000;
    char *s = malloc(2 * depth + 64);
    size_t n = 0;
    n += (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < depth; i++)
        s[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    char path[1200];
    static const char *const files[] = {"config.json", "tokenizer.json"};
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        size_t len = 0;
        unsigned char *keep = fixture_read(path, &len);
        CHECK(fixture_write_raw(path, s, n) == 0);
        pare_model *m = NULL;
        pare_error err = {0};
        pare_status rc = pare_model_load(dir, NULL, &m, &err);
        CHECKF(rc != PARE_OK && strstr(err.msg, files[f]), "%s nested %zu deep: status %d: %s", files[f], depth, rc,
               err.msg);
        pare_model_free(m);
        CHECK(keep && fixture_write_raw(path, keep, len) == 0);
        free(keep);
    }
    free(s);
}

/* The memory estimate: a model held in memory (--stream off), activations or gradients larger than
 * PARE_MEMORY_LIMIT (handed to the core as ./pare does: cli_apply_environment) are refused with
 * "needs X, Y available" before allocating; within the limit they load. Under the default (auto) the
 * same model is loaded streamed instead, and refused only when not even one block fits. */
static void test_memory_estimate(void)
{
    const char *dir = fixture_hf_dir("mem", 0);
    pare_model *m = NULL;
    pare_error err = {0};
    CHECK(pare_model_load(dir, NULL, &m, &err) == PARE_OK);
    size_t params = m ? m->slab_floats * sizeof(float) : 0;
    size_t acts = m ? pare_acts_bytes(m, 4, 16, 1) : 0;
    pare_model_free(m);
    m = NULL;
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", params - 1);
    setenv("PARE_MEMORY_LIMIT", lim, 1);
    cli_apply_environment();
    CHECK(pare_memory_available() == params - 1);
    pare_status rc = pare_model_load(dir, NULL, &m, &err);
    CHECKF(rc == PARE_OK && m && pare_model_streamed(m), "auto over the limit: status %d, streamed %d: %s", rc,
           m ? pare_model_streamed(m) : -1, err.msg);
    pare_model_free(m);
    m = NULL;
    setenv("PARE_STREAM", "off", 1); /* as --stream off: kept by every cli_apply_environment below */
    cli_apply_environment();
    rc = pare_model_load(dir, NULL, &m, &err);
    CHECKF(rc == PARE_ENOMEM && strstr(err.msg, "needs") && strstr(err.msg, "available") && strstr(err.msg, dir),
           "status %d: %s", rc, err.msg);
    CHECK(m == NULL);
    snprintf(lim, sizeof lim, "%zu", params);
    setenv("PARE_MEMORY_LIMIT", lim, 1);
    cli_apply_environment();
    CHECKF(pare_model_load(dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    if (m) {
        pare_acts *a = NULL;
        rc = pare_acts_alloc(m, 4, 16, 1, &a, &err);
        CHECKF(rc == PARE_ENOMEM && strstr(err.msg, "activations for batch 4 x 16") && a == NULL, "status %d: %s", rc,
               err.msg);
        snprintf(lim, sizeof lim, "%zuK", acts / 1024 + 1);
        setenv("PARE_MEMORY_LIMIT", lim, 1);
        cli_apply_environment();
        CHECKF(pare_acts_alloc(m, 4, 16, 1, &a, &err) == PARE_OK, "%s", err.msg);
        pare_acts_free(a);
        pare_grads *g = NULL;
        setenv("PARE_MEMORY_LIMIT", "1K", 1);
        cli_apply_environment();
        rc = pare_grads_alloc(m, 4, 16, 0, &g, &err);
        CHECKF(rc == PARE_ENOMEM && strstr(err.msg, "gradients") && g == NULL, "status %d: %s", rc, err.msg);
        pare_grads_free(g);
    }
    pare_model_free(m);
    unsetenv("PARE_MEMORY_LIMIT");
    unsetenv("PARE_STREAM");
    cli_apply_environment();
    /* the CLI reports it as its one-line error, in memory and streamed */
    setenv("PARE_MEMORY_LIMIT", "1K", 1);
    expect_pare_error((const char *const[]){"info", "--model", dir, "--stream", "off", NULL},
                      (const char *const[]){"needs", "available", "PARE_MEMORY_LIMIT", NULL}, 1);
    expect_pare_error((const char *const[]){"info", "--model", dir, NULL},
                      (const char *const[]){"too large even streamed", "available", "PARE_MEMORY_LIMIT", NULL}, 1);
    unsetenv("PARE_MEMORY_LIMIT");
    /* without a limit this machine's figure is positive and the fixture loads */
    CHECK(pare_memory_available() > 0);
}

void suite_limits(void);
void suite_limits(void)
{
    RUN(test_safetensors_header_cap);
    RUN(test_safetensors_hostile_shapes);
    RUN(test_deep_json);
    RUN(test_memory_estimate);
}

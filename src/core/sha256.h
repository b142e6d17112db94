/* SHA-256 content hashes (FIPS 180-4) of buffers, files and model folders, for run records: a
 * run names exactly the recipe, weights and data it used. */
#ifndef PARE_SHA256_H
#define PARE_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t buf[64];
    size_t fill;
} pare_sha256;

void pare_sha256_init(pare_sha256 *s);
void pare_sha256_update(pare_sha256 *s, const void *data, size_t n);
/* Writes 64 lowercase hex digits and a NUL into hex. */
void pare_sha256_final(pare_sha256 *s, char hex[65]);

pare_status pare_sha256_file(const char *path, char hex[65], pare_error *err);

/* The model at path (a folder or a llama2.c checkpoint file): config_hex hashes its configuration
 * file (config.json, or pare.json for pare exports; "" for a llama2.c checkpoint, whose header is
 * part of the weights), weights_hex hashes the weight files: one file's own hash, or for several
 * (sorted by name) the hash of the lines "NAME HASH\n". */
pare_status pare_model_hashes(const char *path, char config_hex[65], char weights_hex[65], pare_error *err);

#endif

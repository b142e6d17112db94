/* SHA-256 (FIPS 180-4) and the content hashes of files and model folders that run records carry. */
#include "sha256.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void pare_sha256_init(pare_sha256 *s)
{
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->bytes = 0;
    s->fill = 0;
}

void pare_sha256_update(pare_sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->bytes += n;
    if (s->fill) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill < 64)
            return;
        compress_block(s->h, s->buf);
        s->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        compress_block(s->h, p);
    memcpy(s->buf, p, n);
    s->fill = n;
}

void pare_sha256_final(pare_sha256 *s, char hex[65])
{
    uint64_t bits = s->bytes * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    pare_sha256_update(s, pad, padlen + 8);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned)(s->h[i / 4] >> (24 - 8 * (i % 4))) & 0xff);
}

pare_status pare_sha256_file(const char *path, char hex[65], pare_error *err)
{
    FILE *f;
    pare_status rc = pare_fopen_input(path, &f, err);
    if (rc)
        return rc;
    pare_sha256 s;
    pare_sha256_init(&s);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for hashing", path);
    }
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0)
        pare_sha256_update(&s, buf, n);
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad)
        return pare_fail(err, PARE_EIO, "%s: read error while hashing", path);
    pare_sha256_final(&s, hex);
    return PARE_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

pare_status pare_model_hashes(const char *path, char config_hex[65], char weights_hex[65], pare_error *err)
{
    struct stat sb;
    config_hex[0] = weights_hex[0] = 0;
    if (stat(path, &sb))
        return pare_fail(err, PARE_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pare_sha256_file(path, weights_hex, err);
    char file[4400];
    snprintf(file, sizeof file, "%s/pare.json", path);
    if (access(file, R_OK)) {
        snprintf(file, sizeof file, "%s/config.json", path);
        if (access(file, R_OK))
            file[0] = 0;
    }
    pare_status st = file[0] ? pare_sha256_file(file, config_hex, err) : PARE_OK;
    if (st)
        return st;
    /* the weights: *.safetensors, else *.bin (a folder holding a llama2.c checkpoint) */
    DIR *d = opendir(path);
    if (!d)
        return pare_fail(err, PARE_EIO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        rewinddir(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *nm = e->d_name;
            int want = pass == 0 ? ends_with(nm, ".safetensors") : ends_with(nm, ".bin") && strncmp(nm, "tok", 3);
            if (!want)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                char **nn = realloc(names, cap * sizeof *nn);
                if (!nn)
                    goto oom;
                names = nn;
            }
            if (!(names[n] = strdup(nm)))
                goto oom;
            n++;
        }
    }
    closedir(d);
    d = NULL;
    qsort(names, n, sizeof *names, name_cmp);
    pare_sha256 all;
    pare_sha256_init(&all);
    char one[65] = "";
    for (size_t i = 0; i < n && !st; i++) {
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        if (!(st = pare_sha256_file(file, one, err))) {
            pare_sha256_update(&all, names[i], strlen(names[i]));
            pare_sha256_update(&all, " ", 1);
            pare_sha256_update(&all, one, 64);
            pare_sha256_update(&all, "\n", 1);
        }
    }
    if (!st && n == 1)
        memcpy(weights_hex, one, 65);
    else if (!st && n > 1)
        pare_sha256_final(&all, weights_hex);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
oom:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return pare_fail(err, PARE_ENOMEM, "%s: out of memory listing weight files", path);
}

/* The training text as a token stream: tokenized once and cached on disk under a name that changes
 * with the text and the tokenizer, and the seeded windows of every step, drawn from (seed, step,
 * index) alone so that a resumed run sees the data an uninterrupted one sees. */
#include "finetune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "core/tokenizer.h"

#define TOKENS_MAGIC "PARETOK1"

static void tokenizer_fingerprint(const pare_model *m, char out[17])
{
    static const char probe[] = "Once upon a time, a little girl named Lily found a shiny red ball. 0123456789 "
                                "\xc3\x9c\x6e\xc3\xaf \xe2\x80\x94 \xe6\xbc\xa2\xe5\xad\x97\n\t  The end.";
    pare_sha256 h;
    pare_sha256_init(&h);
    const char *d = pare_tokenizer_describe(m->tok);
    pare_sha256_update(&h, d, strlen(d));
    int32_t v = pare_tokenizer_vocab_size(m->tok);
    pare_sha256_update(&h, &v, sizeof v);
    int32_t *ids = NULL;
    size_t n = 0;
    pare_error e;
    if (pare_tokenizer_encode(m->tok, probe, sizeof probe - 1, 0, &ids, &n, &e) == PARE_OK)
        pare_sha256_update(&h, ids, n * sizeof *ids);
    free(ids);
    char hex[65];
    pare_sha256_final(&h, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

/* Reads a cache file written by write_cache; non-zero when it is absent or does not match. */
static int read_cache(const char *path, const char *sha, const pare_model *m, int32_t **ids, size_t *n)
{
    FILE *f;
    pare_error ignored;
    if (pare_fopen_input(path, &f, &ignored))
        return -1;
    char magic[8], hsha[64];
    uint64_t count = 0;
    int bad = fread(magic, 1, 8, f) != 8 || memcmp(magic, TOKENS_MAGIC, 8) != 0 || fread(hsha, 1, 64, f) != 64 ||
              memcmp(hsha, sha, 64) != 0 || fread(&count, sizeof count, 1, f) != 1 || count == 0 ||
              count > ((uint64_t)1 << 36);
    int32_t *p = bad ? NULL : malloc((size_t)count * sizeof *p);
    if (!bad && (!p || fread(p, sizeof *p, (size_t)count, f) != count))
        bad = 1;
    char extra;
    if (!bad && fread(&extra, 1, 1, f) != 0)
        bad = 1; /* trailing bytes: not what write_cache writes */
    fclose(f);
    for (size_t i = 0; !bad && i < count; i++)
        if (p[i] < 0 || p[i] >= m->cfg.vocab_size)
            bad = 1;
    if (bad) {
        free(p);
        return -1;
    }
    *ids = p;
    *n = (size_t)count;
    return 0;
}

static pare_status write_cache(const char *path, const char *sha, const int32_t *ids, size_t n, pare_error *err)
{
    pare_atomic_file f;
    pare_status rc = pare_atomic_open(&f, path, err);
    if (rc)
        return rc;
    uint64_t count = n;
    fwrite(TOKENS_MAGIC, 1, 8, f.fp);
    fwrite(sha, 1, 64, f.fp);
    fwrite(&count, sizeof count, 1, f.fp);
    fwrite(ids, sizeof *ids, n, f.fp);
    return pare_atomic_commit(&f, err);
}

pare_status pare_tokens_open(const pare_model *m, const char *path, const char *cache_dir, pare_token_stream *out,
                             pare_error *err)
{
    memset(out, 0, sizeof *out);
    if (!m->tok)
        return pare_fail(err, PARE_EINVAL, "%s: the model has no tokenizer to read %s with", m->path, path);
    snprintf(out->path, sizeof out->path, "%s", path);
    pare_status rc = pare_sha256_file(path, out->sha256, err);
    if (rc)
        return rc;
    if (cache_dir) {
        char fp[17];
        tokenizer_fingerprint(m, fp);
        if (mkdir(cache_dir, 0777) != 0 && errno != EEXIST)
            return pare_fail(err, PARE_EIO, "%s: cannot create the token cache folder: %s", cache_dir, strerror(errno));
        int w = snprintf(out->cache_path, sizeof out->cache_path, "%s/tokens-%.16s-%s.bin", cache_dir, out->sha256, fp);
        if (w < 0 || (size_t)w >= sizeof out->cache_path)
            return pare_fail(err, PARE_EINVAL, "%s: token cache path too long", cache_dir);
        if (read_cache(out->cache_path, out->sha256, m, &out->ids, &out->n) == 0) {
            out->from_cache = 1;
            return PARE_OK;
        }
    }
    if ((rc = pare_model_tokenize_file(m, path, &out->ids, &out->n, err)))
        return rc;
    if (cache_dir && (rc = write_cache(out->cache_path, out->sha256, out->ids, out->n, err))) {
        pare_tokens_close(out);
        return rc;
    }
    return PARE_OK;
}

void pare_tokens_close(pare_token_stream *s)
{
    free(s->ids);
    s->ids = NULL;
    s->n = 0;
}

pare_status pare_train_windows(const pare_token_stream *s, uint64_t seed, long step, int count, int seq, int32_t *out,
                               pare_error *err)
{
    if (seq < 2 || count < 1)
        return pare_fail(err, PARE_EINVAL, "training windows: %d windows of %d tokens; need at least 1 of 2", count,
                         seq);
    if (s->n < (size_t)seq)
        return pare_fail(err, PARE_EINVAL, "%s: %zu tokens, shorter than one training window of %d", s->path, s->n, seq);
    size_t starts = s->n - (size_t)seq + 1;
    for (int i = 0; i < count; i++) {
        size_t start = (size_t)(pare_hash3(seed, (uint64_t)step, (uint64_t)i) % starts);
        memcpy(out + (size_t)i * seq, s->ids + start, (size_t)seq * sizeof *out);
    }
    return PARE_OK;
}

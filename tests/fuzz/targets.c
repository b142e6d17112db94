/* The fuzz targets (see targets.h). Inputs reach the parsers through a memfd, so every parser runs
 * on its real path-based entry point without touching the disk. */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/export.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "core/tokenizer.h"

/* A path whose contents are data (a memfd), valid until fuzz_file_close. */
typedef struct {
    int fd;
    char path[64];
} fuzz_file;

static int fuzz_file_open(fuzz_file *f, const uint8_t *data, size_t size)
{
    f->fd = memfd_create("pare-fuzz", MFD_CLOEXEC);
    if (f->fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(f->fd, data + off, size - off);
        if (w <= 0) {
            close(f->fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    return 0;
}

static void fuzz_file_close(fuzz_file *f) { close(f->fd); }

/* safetensors header and data: open, then convert every small float tensor */
static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size))
        return;
    pare_safetensors st;
    pare_error err;
    if (pare_st_open_file(f.path, &st, &err) == PARE_OK) {
        for (size_t i = 0; i < st.n_tensors; i++) {
            size_t n = pare_st_numel(&st.tensors[i]);
            if (n > (1u << 20))
                continue;
            float *dst = malloc((n ? n : 1) * sizeof *dst);
            if (dst)
                pare_st_to_f32(&st, &st.tensors[i], dst, &err);
            free(dst);
        }
        pare_st_close(&st);
    }
    fuzz_file_close(&f);
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size))
        return;
    pare_config cfg;
    pare_error err;
    pare_config_load_hf(f.path, &cfg, &err);
    fuzz_file_close(&f);
}

static const char SAMPLE[] = "Hello world! The quick brown fox, 123 \xc3\xa9t\xc3\xa9 \xe2\x96\x81<s> \n\t  ok.";

static void exercise(pare_tokenizer *tok, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    pare_error err;
    for (int special = 0; special < 2; special++) {
        if (pare_tokenizer_encode(tok, text, len, special, &ids, &n, &err) == PARE_OK) {
            char *back = NULL;
            size_t blen = 0;
            if (pare_tokenizer_decode(tok, ids, n, special, &back, &blen, &err) == PARE_OK)
                free(back);
            free(ids);
        }
        ids = NULL;
    }
}

/* tokenizer.json loading, then encoding and decoding a fixed text with it */
static void fuzz_tokenizer_json(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size))
        return;
    pare_tokenizer *tok = NULL;
    pare_error err;
    if (pare_tokenizer_load_hf(f.path, &tok, &err) == PARE_OK) {
        exercise(tok, SAMPLE, sizeof SAMPLE - 1);
        pare_tokenizer_free(tok);
    }
    fuzz_file_close(&f);
}

/* encoding arbitrary bytes with a real tokenizer: $PARE_FUZZ_TOKENIZER, else a small BPE built here */
static pare_tokenizer *fixed_tokenizer(void)
{
    static pare_tokenizer *tok;
    static int tried;
    if (tried)
        return tok;
    tried = 1;
    const char *path = getenv("PARE_FUZZ_TOKENIZER");
    pare_error err;
    if (path && pare_tokenizer_load_hf(path, &tok, &err) == PARE_OK)
        return tok;
    static const char JSON[] =
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
        "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
        "\"prepend_scheme\":\"first\",\"split\":false},\"post_processor\":null,"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
        "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\\u2581\":3,\"t\":4,\"h\":5,\"e\":6,\"th\":7,\"the\":8,"
        "\"\\u2581the\":9,\"<0x41>\":10,\"<0xC3>\":11,\"<0xA9>\":12},"
        "\"merges\":[\"t h\",\"th e\",\"\\u2581 the\"]}}";
    fuzz_file f;
    if (fuzz_file_open(&f, (const uint8_t *)JSON, sizeof JSON - 1) == 0) {
        if (pare_tokenizer_load_hf(f.path, &tok, &err))
            tok = NULL;
        fuzz_file_close(&f);
    }
    return tok;
}

static void fuzz_tokenizer_encode(const uint8_t *data, size_t size)
{
    pare_tokenizer *tok = fixed_tokenizer();
    if (tok)
        exercise(tok, (const char *)data, size);
}

/* A valid llama2.c tokenizer.bin of n pieces (<unk>, <s>, </s>, 256 byte pieces, then "p1", "p2", ...),
 * kept open for the process: the checkpoint target loads models with it. */
static const char *tokenizer_bin_path(void)
{
    static fuzz_file f;
    static int made;
    if (made)
        return made > 0 ? f.path : NULL;
    enum { N = 512 };
    static uint8_t buf[4 + N * (8 + 16)];
    size_t len = 0;
    int32_t maxlen = 8;
    memcpy(buf, &maxlen, 4);
    len = 4;
    for (int i = 0; i < N; i++) {
        char piece[16];
        int pl = i < 3 ? snprintf(piece, sizeof piece, "%s", (const char *[]){"<unk>", "<s>", "</s>"}[i])
                 : i < 259 ? snprintf(piece, sizeof piece, "<0x%02X>", i - 3)
                           : snprintf(piece, sizeof piece, "p%d", i);
        float score = -(float)i;
        int32_t l = pl;
        memcpy(buf + len, &score, 4);
        memcpy(buf + len + 4, &l, 4);
        memcpy(buf + len + 8, piece, (size_t)pl);
        len += 8 + (size_t)pl;
    }
    made = fuzz_file_open(&f, buf, len) == 0 ? 1 : -1;
    return made > 0 ? f.path : NULL;
}

/* a llama2.c checkpoint (header + weights), loaded as a model with a fixed tokenizer */
static void fuzz_llama2c(const uint8_t *data, size_t size)
{
    const char *tok = tokenizer_bin_path();
    fuzz_file f;
    if (!tok || fuzz_file_open(&f, data, size))
        return;
    pare_model *m = NULL;
    pare_error err;
    if (pare_model_load(f.path, tok, &m, &err) == PARE_OK)
        pare_model_free(m);
    fuzz_file_close(&f);
}

/* a llama2.c tokenizer.bin for a 512-piece vocabulary */
static void fuzz_tokenizer_bin(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size))
        return;
    pare_tokenizer *tok = NULL;
    pare_error err;
    if (pare_tokenizer_load_llama2c(f.path, 512, &tok, &err) == PARE_OK) {
        exercise(tok, SAMPLE, sizeof SAMPLE - 1);
        pare_tokenizer_free(tok);
    }
    fuzz_file_close(&f);
}

const fuzz_target fuzz_targets[] = {
    {"safetensors", fuzz_safetensors},
    {"config", fuzz_config},
    {"tokenizer_json", fuzz_tokenizer_json},
    {"tokenizer_encode", fuzz_tokenizer_encode},
    {"llama2c", fuzz_llama2c},
    {"tokenizer_bin", fuzz_tokenizer_bin},
    {NULL, NULL},
};

const fuzz_target *fuzz_target_find(const char *name)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

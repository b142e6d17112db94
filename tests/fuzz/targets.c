/* The fuzz targets (see targets.h). Inputs reach the parsers through a memfd, so every parser runs
 * on its real path-based entry point without touching the disk. */
#include "targets.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/export.h"
#include "core/forward.h"
#include "core/memcheck.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "core/tasks.h"
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

int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max)
{
    const size_t sl = sizeof PARE_FUZZ_SEP - 1;
    int n = 0;
    while (n < max - 1) {
        const uint8_t *sep = memmem(data, size, PARE_FUZZ_SEP, sl);
        if (!sep)
            break;
        parts[n++] = (fuzz_part){data, (size_t)(sep - data)};
        size -= (size_t)(sep - data) + sl;
        data = sep + sl;
    }
    parts[n++] = (fuzz_part){data, size};
    return n;
}

static char fuzz_root[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void fuzz_dir_remove(void)
{
    if (fuzz_root[0])
        nftw(fuzz_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void)
{
    static int made;
    if (made)
        return made > 0 ? fuzz_root : NULL;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                       : getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
                                                               : "/tmp";
    snprintf(fuzz_root, sizeof fuzz_root, "%s/pare-fuzz-XXXXXX", base);
    made = mkdtemp(fuzz_root) ? 1 : -1;
    if (made < 0) {
        fuzz_root[0] = 0;
        return NULL;
    }
    static const char *const sub[] = {"task", "pare", "index", "recipe"};
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        char d[512];
        snprintf(d, sizeof d, "%s/%s", fuzz_root, sub[i]);
        mkdir(d, 0700);
    }
    atexit(fuzz_dir_remove);
    return fuzz_root;
}

int fuzz_put(const char *name, const fuzz_part *part)
{
    const char *dir = fuzz_dir();
    if (!dir)
        return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!part) {
        unlink(path);
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < part->size) {
        ssize_t w = write(fd, part->data + off, part->size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return close(fd);
}

void fuzz_note(const char *target, const char *msg)
{
    if (getenv("PARE_FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", target, msg);
}

/* A limit of the core for one call unless the user set one (the runner applies the environment at
 * start: PARE_MEMORY_LIMIT, PARE_TASK_MAX_DECOMPRESSED); returns whether it was set here, for
 * restore_limit. */
static int default_limit(void (*set)(uint64_t, const char *), const char *(*source)(void), const char *value)
{
    uint64_t bytes;
    if (source() || !pare_parse_size(value, &bytes))
        return 0;
    set(bytes, "the fuzzer's default");
    return 1;
}

static void restore_limit(void (*set)(uint64_t, const char *), int was_set_here)
{
    if (was_set_here)
        set(0, NULL);
}

/* an invariant the parser promises is broken: a finding like a crash */
#define FUZZ_ASSERT(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);                          \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* converts every small tensor of an opened file to F32, then closes it */
static void st_exercise(pare_safetensors *st)
{
    pare_error err;
    for (size_t i = 0; i < st->n_tensors; i++) {
        size_t n = pare_st_numel(&st->tensors[i]);
        if (n > (1u << 20))
            continue;
        float *dst = malloc((n ? n : 1) * sizeof *dst);
        if (dst)
            pare_st_to_f32(st, &st->tensors[i], dst, &err);
        free(dst);
    }
    pare_st_close(st);
}

/* safetensors header and data: open, then convert every small float tensor */
static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size))
        return;
    pare_safetensors st;
    pare_error err;
    if (pare_st_open_file(f.path, &st, &err) == PARE_OK)
        st_exercise(&st);
    fuzz_file_close(&f);
}

/* A sharded checkpoint: model.safetensors.index.json, then the shards model-0000i-of-0000n.safetensors
 * (the parts after it, at most 8), opened as a folder and every small tensor converted. */
static void fuzz_st_index(const uint8_t *data, size_t size)
{
    enum { MAX_SHARDS = 8 };
    static char written[MAX_SHARDS][64];
    fuzz_part parts[1 + MAX_SHARDS];
    int n = fuzz_split(data, size, parts, 1 + MAX_SHARDS);
    const char *dir = fuzz_dir();
    if (!dir)
        return;
    for (int i = 0; i < MAX_SHARDS; i++)
        if (written[i][0]) {
            fuzz_put(written[i], NULL);
            written[i][0] = 0;
        }
    if (fuzz_put("index/model.safetensors.index.json", &parts[0]))
        return;
    for (int i = 1; i < n; i++) {
        snprintf(written[i - 1], sizeof written[i - 1], "index/model-%05d-of-%05d.safetensors", i, n - 1);
        if (fuzz_put(written[i - 1], &parts[i]))
            return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/index", dir);
    pare_safetensors st;
    pare_error err;
    if (pare_st_open_dir(path, &st, &err) == PARE_OK)
        st_exercise(&st);
    else
        fuzz_note("st_index", err.msg);
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

/* A normalizer chain (the JSON value of "normalizer") and a text, split at PARE_FUZZ_SEP: the chain
 * goes into a byte-fallback BPE tokenizer and the text is encoded. Normalizing is capped at 16x the
 * text plus 256 bytes (tokenizer_hf_encode.c); every id covers at least one normalized byte, so more ids than
 * that would mean the cap was passed. */
static void fuzz_tokenizer_normalizer(const uint8_t *data, size_t size)
{
    fuzz_part parts[2];
    if (fuzz_split(data, size, parts, 2) != 2 || parts[1].size > 4096)
        return;
    static const char head[] = "{\"normalizer\": ";
    char tail[8192];
    size_t tl = (size_t)snprintf(tail, sizeof tail,
                                 ", \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                                 "\"merges\": [], \"vocab\": {\"x\": 0");
    for (int b = 0; b < 256; b++)
        tl += (size_t)snprintf(tail + tl, sizeof tail - tl, ", \"<0x%02X>\": %d", b, b + 1);
    tl += (size_t)snprintf(tail + tl, sizeof tail - tl, "}}}");
    size_t jl = sizeof head - 1 + parts[0].size + tl;
    char *json = malloc(jl);
    if (!json)
        return;
    memcpy(json, head, sizeof head - 1);
    memcpy(json + sizeof head - 1, parts[0].data, parts[0].size);
    memcpy(json + sizeof head - 1 + parts[0].size, tail, tl);
    fuzz_file f;
    int opened = fuzz_file_open(&f, (const uint8_t *)json, jl);
    free(json);
    if (opened)
        return;
    pare_tokenizer *tok = NULL;
    pare_error err;
    if (pare_tokenizer_load_hf(f.path, &tok, &err) == PARE_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (pare_tokenizer_encode(tok, (const char *)parts[1].data, parts[1].size, 0, &ids, &n, &err) == PARE_OK) {
            if (n > 16 * parts[1].size + 256)
                abort(); /* the normalized text outgrew the cap */
            free(ids);
        } else
            fuzz_note("tokenizer_normalizer", err.msg);
        pare_tokenizer_free(tok);
    } else
        fuzz_note("tokenizer_normalizer", err.msg);
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
        int pl = i < 3     ? snprintf(piece, sizeof piece, "%s", (const char *[]){"<unk>", "<s>", "</s>"}[i])
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

/* Zero-shot task files: the first byte picks the task (byte % 4: piqa, arc-easy, boolq, hellaswag) and
 * the item limit (byte / 4 % 3: none, 1, 2); the rest is the file. PIQA's rest is the JSONL, then
 * PARE_FUZZ_SEP, then the labels file. HellaSwag's may be bzip2 (decompression capped at 4 MiB
 * unless PARE_TASK_MAX_DECOMPRESSED is set, so that a bomb costs milliseconds). Every item loaded
 * must satisfy what tasks.h promises. */
static void fuzz_task(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    if (!dir || size < 1)
        return;
    pare_task_kind kind = (pare_task_kind)(data[0] % PARE_TASK_KINDS);
    size_t limit = (size_t)(data[0] / PARE_TASK_KINDS % 3);
    fuzz_part rest = {data + 1, size - 1}, parts[2];
    const char *name = kind == PARE_TASK_HELLASWAG ? "task/t.txt" : "task/t.jsonl";
    int n = kind == PARE_TASK_PIQA ? fuzz_split(rest.data, rest.size, parts, 2) : (parts[0] = rest, 1);
    if (fuzz_put(name, &parts[0]) || fuzz_put("task/t-labels.lst", n > 1 ? &parts[1] : NULL))
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int limit_here = default_limit(pare_set_task_max_decompressed, pare_task_max_decompressed_source, "4M");
    pare_task *t = NULL;
    pare_error err = {.code = PARE_OK};
    if (pare_task_load(kind, path, limit, &t, &err) == PARE_OK) {
        FUZZ_ASSERT(t->n_items >= 1 && t->n_items <= t->n_in_file && (!limit || t->n_items <= limit));
        size_t chars = 0;
        for (size_t i = 0; i < t->n_items; i++) {
            const pare_task_item *it = &t->items[i];
            FUZZ_ASSERT(it->context && it->n_choices >= 1 && it->choices && it->line >= 1);
            FUZZ_ASSERT(it->gold >= 0 && it->gold < it->n_choices);
            for (int j = 0; j < it->n_choices; j++) {
                FUZZ_ASSERT(it->choices[j]);
                chars += pare_utf8_chars(it->choices[j]);
            }
            chars += pare_utf8_chars(it->context);
        }
        (void)chars;
        pare_task_free(t);
    } else {
        FUZZ_ASSERT(!t && err.msg[0]);
        fuzz_note("task", err.msg);
    }
    restore_limit(pare_set_task_max_decompressed, limit_here);
}

/* The architecture a pare export folder states unless the input brings its own config.json: LLaMA,
 * hidden 8, FFN 16, one layer, 2 heads over 1 KV head, vocabulary 32. */
static const char MANIFEST_CONFIG[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                                      "\"hidden_size\": 8, "
                                      "\"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": "
                                      "2, "
                                      "\"num_key_value_heads\": 1, \"vocab_size\": 32, \"max_position_embeddings\": "
                                      "16, \"rms_norm_eps\": 1e-05, "
                                      "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"bos_token_id\": 1, "
                                      "\"eos_token_id\": 2}";

/* A pare-format export folder: pare.json, then (after PARE_FUZZ_SEP) model.safetensors, then
 * optionally config.json (else MANIFEST_CONFIG). A model that loads is run forward on 4 tokens and
 * sized for export (PARE_MEMORY_LIMIT is 256M for the call unless set, so a config cannot ask for
 * more memory than fuzzing allows). */
static void fuzz_manifest(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    if (!dir)
        return;
    fuzz_part parts[3], config = {(const uint8_t *)MANIFEST_CONFIG, sizeof MANIFEST_CONFIG - 1};
    int n = fuzz_split(data, size, parts, 3);
    if (fuzz_put("pare/pare.json", &parts[0]) || fuzz_put("pare/model.safetensors", n > 1 ? &parts[1] : NULL) ||
        fuzz_put("pare/config.json", n > 2 ? &parts[2] : &config))
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/pare", dir);
    int limit_here = default_limit(pare_set_memory_limit, pare_memory_limit_source, "256M");
    pare_model *m = NULL;
    pare_error err = {.code = PARE_OK};
    if (pare_model_load(path, NULL, &m, &err) == PARE_OK) {
        pare_param_counts pc;
        pare_model_param_counts(m, &pc);
        int T = m->cfg.max_pos < 4 ? m->cfg.max_pos : 4;
        int32_t ids[4];
        for (int i = 0; i < T; i++)
            ids[i] = (int32_t)((i * 7 + 1) % m->cfg.vocab_size);
        pare_acts *a = NULL;
        if (T > 0 && pare_acts_alloc(m, 1, T, 0, &a, &err) == PARE_OK) {
            pare_forward(m, a, ids, 1, T, PARE_LOGITS_ALL, &err);
            pare_acts_free(a);
        }
        pare_export_opts o;
        pare_export_defaults(&o);
        o.format = PARE_EXPORT_PARE;
        size_t bytes;
        pare_export_size(m, &o, &bytes, &err);
        pare_model_free(m);
    } else {
        FUZZ_ASSERT(!m && err.msg[0]);
        fuzz_note("manifest", err.msg);
    }
    restore_limit(pare_set_memory_limit, limit_here);
}

const fuzz_target fuzz_targets[] = {
    {"safetensors", fuzz_safetensors},
    {"config", fuzz_config},
    {"tokenizer_json", fuzz_tokenizer_json},
    {"tokenizer_encode", fuzz_tokenizer_encode},
    {"llama2c", fuzz_llama2c},
    {"tokenizer_bin", fuzz_tokenizer_bin},
    {"st_index", fuzz_st_index},
    {"task", fuzz_task},
    {"manifest", fuzz_manifest},
    {"recipe_params", fuzz_recipe_params},
    {"recipe_record", fuzz_recipe_record},
    {"tokenizer_normalizer", fuzz_tokenizer_normalizer},
    {NULL, NULL},
};

const fuzz_target *fuzz_target_find(const char *name)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

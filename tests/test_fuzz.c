/* Replays the fuzz corpus (every file under tests/fuzz/corpus/TARGET: seeds and every input a finding was fixed
 * for) through the fuzz targets: each input must be handled without a crash (and, under `make check`,
 * without a sanitizer report or leak). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/tasks.h"
#include "fixture.h"
#include "fuzz/targets.h"
#include "harness.h"

/* Replays every input of tests/fuzz/corpus/TARGET through the target; returns how many inputs it
 * replayed, or -1 when the folder cannot be opened. */
static int replay_dir(const fuzz_target *t)
{
    char dir[512];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", t->name);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        unsigned char *data = fixture_read(path, &len);
        CHECKF(data != NULL, "%s: cannot read", path);
        if (!data)
            continue;
        t->run(data, len);
        /* The targets define no expected status: an input's outcome is that the target returned (errors
         * are expected), which a crash or, under `make check`, a sanitizer report prevents. One check
         * per input, so that the harness counts what was replayed. */
        CHECKF(1, "%s: replayed through %s", path, t->name);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_corpus(void)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        int n = replay_dir(t);
        CHECKF(n >= 0, "tests/fuzz/corpus/%s: missing (run the tests from the repository root)", t->name);
        CHECKF(n != 0, "tests/fuzz/corpus/%s: no inputs (every target has seeds)", t->name);
        printf("  %-16s %d inputs\n", t->name, n > 0 ? n : 0);
    }
}

/* Runs target on the corpus file tests/fuzz/corpus/TARGET/NAME (which leaves its files in fuzz_dir()). */
static int run_corpus_file(const char *target, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "tests/fuzz/corpus/%s/%s", target, name);
    size_t len = 0;
    unsigned char *data = fixture_read(path, &len);
    CHECKF(data != NULL, "%s: cannot read", path);
    if (!data)
        return -1;
    fuzz_target_find(target)->run(data, len);
    free(data);
    return 0;
}

/* The manifest seeds load (so fuzzing starts from valid folders), and the reader refuses states that
 * every linear allows but the forward cannot compute: a sliced attention matrix, FFN widths that
 * disagree. */
static void test_manifest_seeds(void)
{
    const struct {
        const char *name, *needle; /* NULL: loads */
    } cases[] = {
        {"dense", NULL},
        {"compressed", NULL},
        {"gpt2", NULL},
        {"sliced_attention", "model.layers.0.self_attn.q_proj: shape [6, 8], loaded as [8, 8]; attention matrices keep "
                             "their loaded shape"},
        {"ffn_mismatch", "layer 0: inconsistent FFN width (model.layers.0.mlp.gate_proj 12 rows, "
                         "model.layers.0.mlp.up_proj 16 rows"},
    };
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pare", fuzz_dir());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (run_corpus_file("manifest", cases[i].name))
            continue;
        pare_model *m = NULL;
        pare_error err = {0};
        pare_status st = pare_model_load(dir, NULL, &m, &err);
        if (!cases[i].needle) {
            CHECKF(st == PARE_OK, "%s: %s", cases[i].name, err.msg);
        } else {
            CHECKF(st == PARE_EUNSUPPORTED && strstr(err.msg, "pare.json: ") && strstr(err.msg, cases[i].needle),
                   "%s: status %d, %s", cases[i].name, (int)st, err.msg);
        }
        pare_model_free(m);
    }
}

/* Every task seed loads (the fuzzer starts from valid files). */
static void test_task_seeds(void)
{
    static const char *const seeds[] = {"piqa", "piqa_limit", "arc", "boolq", "hellaswag", "hellaswag_bz2"};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char path[512];
        snprintf(path, sizeof path, "tests/fuzz/corpus/task/%s", seeds[i]);
        size_t len = 0;
        unsigned char *data = fixture_read(path, &len);
        CHECKF(data && len > 1, "%s: cannot read", path);
        if (!data)
            continue;
        pare_task_kind kind = (pare_task_kind)(data[0] % PARE_TASK_KINDS);
        fuzz_target_find("task")->run(data, len);
        free(data);
        snprintf(path, sizeof path, "%s/task/%s", fuzz_dir(), kind == PARE_TASK_HELLASWAG ? "t.txt" : "t.jsonl");
        pare_task *t = NULL;
        pare_error err = {0};
        CHECKF(pare_task_load(kind, path, 0, &t, &err) == PARE_OK && t->n_items >= 2, "%s: %s", seeds[i], err.msg);
        pare_task_free(t);
    }
}

void suite_fuzz(void);
void suite_fuzz(void)
{
    RUN(test_replay_corpus);
    RUN(test_manifest_seeds);
    RUN(test_task_seeds);
}

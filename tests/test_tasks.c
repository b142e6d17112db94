/* Zero-shot tasks: the readers of the published formats (templates, labels, bzip2), their errors, the
 * batched scorer against a plain one-request-at-a-time computation, and the per-choice log-likelihoods
 * of ref-llama-12m against the independent PyTorch fixture (tests/gen_task_fixture.py). */
#include <bzlib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/environment.h"
#include "core/forward.h"
#include "core/tasks.h"
#include "core/zeroshot.h"
#include "fixture.h"
#include "harness.h"

#define FIXTURE_FILE "tests/data/zeroshot_ref_llama_12m.json"

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][1200];
    static int k;
    char *s = buf[k++ % 4];
    snprintf(s, sizeof buf[0], "%s/%s", dir, name);
    return s;
}

static void write_text(const char *path, const char *text) { CHECK(write_bytes(path, text, strlen(text)) == 0); }

/* A folder under the test's temp dir holding the given files (name, content pairs, NULL-terminated). */
static const char *task_dir(const char *name, const char *const *files)
{
    static char dir[4][1200];
    static int k;
    char *d = dir[k++ % 4];
    snprintf(d, sizeof dir[0], "%s", tmp_path(name));
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
    CHECK(system(cmd) == 0);
    for (int i = 0; files[i]; i += 2)
        write_text(path_in(d, files[i]), files[i + 1]);
    return d;
}

static pare_task *load_ok(pare_task_kind kind, const char *path, size_t limit)
{
    pare_task *t = NULL;
    pare_error err = {0};
    pare_status st = pare_task_load(kind, path, limit, &t, &err);
    CHECKF(st == PARE_OK, "%s: %s", path, err.msg);
    return st == PARE_OK ? t : NULL;
}

static void expect_load_error(pare_task_kind kind, const char *path, const char *const *needles)
{
    pare_task *t = NULL;
    pare_error err = {0};
    pare_status st = pare_task_load(kind, path, 0, &t, &err);
    CHECKF(st != PARE_OK && t == NULL, "%s: loaded although bad", path);
    for (int i = 0; needles[i]; i++)
        CHECKF(strstr(err.msg, needles[i]) != NULL, "error lacks '%s': %s", needles[i], err.msg);
    pare_task_free(t);
}

/* ------------------------------------------------------------------------------------------------ */

/* Each published format gives the harness's context, choices and gold index. */
static void test_readers_templates(void)
{
    const char *piqa = task_dir("piqa", (const char *const[]){"valid.jsonl",
                                                              "{\"goal\": \"Open a jar\", \"sol1\": \"Twist the "
                                                              "lid.\", \"sol2\": \"Hit it.\"}\n"
                                                              "\n"
                                                              "{\"goal\": \"Dry socks\", \"sol1\": \"Use a dryer\", "
                                                              "\"sol2\": \"Use a \\u00e9t\\u00e9 oven\"}\r\n",
                                                              "valid-labels.lst", "0\n1\n", NULL});
    pare_task *t = load_ok(PARE_TASK_PIQA, piqa, 0);
    if (t) {
        CHECK(t->n_items == 2 && t->n_in_file == 2 && strcmp(t->delimiter, " ") == 0);
        CHECK(strcmp(t->items[0].context, "Question: Open a jar\nAnswer:") == 0);
        CHECK(t->items[0].n_choices == 2 && strcmp(t->items[0].choices[0], "Twist the lid.") == 0);
        CHECK(t->items[0].gold == 0 && t->items[1].gold == 1);
        CHECKF(t->items[1].line == 3, "line %d", t->items[1].line);
        CHECK(strcmp(t->items[1].choices[1], "Use a \xc3\xa9t\xc3\xa9 oven") == 0);
        CHECK(pare_utf8_chars(t->items[1].choices[1]) == 14); /* characters, not bytes (16) */
        CHECK(strstr(t->labels_path, "valid-labels.lst") != NULL);
    }
    pare_task_free(t);
    /* a file X.jsonl takes X-labels.lst; --limit keeps the first items */
    t = load_ok(PARE_TASK_PIQA, path_in(piqa, "valid.jsonl"), 1);
    CHECK(t && t->n_items == 1 && t->n_in_file == 2);
    pare_task_free(t);

    const char *arc = task_dir("arc", (const char *const[]){"ARC-Easy-Test.jsonl",
                                                            "{\"id\":\"x\",\"question\":{\"stem\":\"Which is a "
                                                            "gas?\",\"choices\":[{\"text\":\"ice\",\"label\":\"A\"},"
                                                            "{\"text\":\"steam\",\"label\":\"B\"},{\"text\":\"rock\","
                                                            "\"label\":\"C\"}]},\"answerKey\":\"B\"}\n"
                                                            "{\"id\":\"y\",\"question\":{\"stem\":\"Two?\",\"choices\":"
                                                            "[{\"text\":\"1\",\"label\":\"1\"},"
                                                            "{\"text\":\"2\",\"label\":\"2\"}]},\"answerKey\":\"2\"}\n",
                                                            NULL});
    t = load_ok(PARE_TASK_ARC_EASY, arc, 0);
    if (t) {
        CHECK(t->n_items == 2);
        CHECK(strcmp(t->items[0].context, "Question: Which is a gas?\nAnswer:") == 0);
        CHECK(t->items[0].n_choices == 3 && strcmp(t->items[0].choices[2], "rock") == 0 && t->items[0].gold == 1);
        CHECK(t->items[1].n_choices == 2 && t->items[1].gold == 1);
    }
    pare_task_free(t);

    const char *boolq = task_dir("boolq", (const char *const[]){"val.jsonl",
                                                                "{\"question\": \"is water wet\", \"passage\": \"Water "
                                                                "-- Water is wet.\", \"idx\": 0, \"label\": \"true\"}\n"
                                                                "{\"question\": \"is fire cold\", \"passage\": \"Fire "
                                                                "-- Fire is hot.\", \"label\": false}\n"
                                                                "{\"question\": \"is it\", \"passage\": \"P\", "
                                                                "\"answer\": true}\n",
                                                                NULL});
    t = load_ok(PARE_TASK_BOOLQ, boolq, 0);
    if (t) {
        CHECK(t->n_items == 3);
        CHECK(strcmp(t->items[0].context, "Water -- Water is wet.\nQuestion: is water wet?\nAnswer:") == 0);
        CHECK(strcmp(t->items[0].choices[0], "no") == 0 && strcmp(t->items[0].choices[1], "yes") == 0);
        CHECK(t->items[0].gold == 1 && t->items[1].gold == 0 && t->items[2].gold == 1);
    }
    pare_task_free(t);
}

/* The harness's HellaSwag preprocess, ctx_b capitalization, and the bzip2-compressed text form. */
static void test_hellaswag(void)
{
    const struct {
        const char *in, *out;
    } cases[] = {
        {"  How to sew [title] Thread the needle. [step] Pull. ", "How to sew. Thread the needle. Pull."},
        {"a [header] b", "a b"}, /* "[header]" goes, the double space is collapsed */
        {"a   b", "a  b"},       /* one pass: three spaces become two, as str.replace */
        {"keep [open bracket", "keep [open bracket"},
        {"x [a] [b] y", "x  y"}, /* three spaces left, collapsed once */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = NULL;
        pare_error err = {0};
        CHECK(pare_hellaswag_preprocess(cases[i].in, &s, &err) == PARE_OK);
        CHECKF(s && strcmp(s, cases[i].out) == 0, "preprocess('%s') = '%s', want '%s'", cases[i].in, s ? s : "(null)",
               cases[i].out);
        free(s);
    }
    const char *text = "Roof shingle removal: A man is sitting on a roof. he\n"
                       "3\n"
                       "is using wrap to wrap a pair of skis.\n"
                       "is ripping level tiles off.\n"
                       "is holding a rubik's cube.\n"
                       "starts pulling up roofing on a roof.\n"
                       "Family Life: How to play. Visit a site like [www.example.org] to find games.\n"
                       "0\n"
                       "Choose small games. [step] Play.\n"
                       "b\n"
                       "c\n"
                       "d\n";
    char *plain = path_in(harness_tmpdir(), "hs.txt");
    write_text(plain, text);
    pare_task *t = load_ok(PARE_TASK_HELLASWAG, plain, 0);
    if (t) {
        CHECK(t->n_items == 2 && t->items[0].gold == 3 && t->items[1].gold == 0 && t->items[1].line == 7);
        CHECKF(strcmp(t->items[0].context, "Roof shingle removal: A man is sitting on a roof. He") == 0, "'%s'",
               t->items[0].context);
        CHECKF(strcmp(t->items[1].context, "Family Life: How to play. Visit a site like to find games.") == 0, "'%s'",
               t->items[1].context);
        CHECK(strcmp(t->items[1].choices[0], "Choose small games. Play.") == 0);
        CHECK(strcmp(t->items[0].choices[3], "starts pulling up roofing on a roof.") == 0);
    }
    /* the same text bzip2-compressed, once as one stream and once split into two concatenated streams */
    size_t n = strlen(text), half = n / 2;
    unsigned cap = (unsigned)(n * 2 + 1200), l1 = cap, l2 = cap;
    char *z = malloc(2 * (size_t)cap);
    CHECK(BZ2_bzBuffToBuffCompress(z, &l1, (char *)text, (unsigned)n, 9, 0, 0) == BZ_OK);
    char *one = path_in(harness_tmpdir(), "hs1.txt.bz2");
    CHECK(write_bytes(one, z, l1) == 0);
    pare_task *t1 = load_ok(PARE_TASK_HELLASWAG, one, 0);
    CHECK(t && t1 && t1->n_items == 2 && strcmp(t1->items[1].context, t->items[1].context) == 0);
    pare_task_free(t1);
    CHECK(BZ2_bzBuffToBuffCompress(z, &l1, (char *)text, (unsigned)half, 9, 0, 0) == BZ_OK);
    CHECK(BZ2_bzBuffToBuffCompress(z + l1, &l2, (char *)text + half, (unsigned)(n - half), 9, 0, 0) == BZ_OK);
    char *two = path_in(harness_tmpdir(), "hs2.txt.bz2");
    CHECK(write_bytes(two, z, l1 + l2) == 0);
    t1 = load_ok(PARE_TASK_HELLASWAG, two, 0);
    CHECK(t && t1 && t1->n_items == 2 && strcmp(t1->items[0].choices[2], t->items[0].choices[2]) == 0);
    pare_task_free(t1);
    /* a truncated stream and corrupt data are errors naming the file */
    char *cut = path_in(harness_tmpdir(), "hs3.txt.bz2");
    CHECK(write_bytes(cut, z, l1 / 2) == 0);
    expect_load_error(PARE_TASK_HELLASWAG, cut, (const char *const[]){"hs3.txt.bz2", "bzip2", NULL});
    z[l1 / 2] ^= 0x55;
    z[l1 / 2 + 1] ^= 0x55;
    CHECK(write_bytes(cut, z, l1) == 0);
    expect_load_error(PARE_TASK_HELLASWAG, cut, (const char *const[]){"hs3.txt.bz2", "bzip2", NULL});
    free(z);
    pare_task_free(t);
}

/* A bzip2 file that expands past the limit (64 MiB, or PARE_TASK_MAX_DECOMPRESSED, which the runner hands
 * to the core as ./pare does: cli_apply_environment) is refused with an error naming the file and the
 * limit, without allocating the whole output; under the limit it loads. */
static void test_decompression_limit(void)
{
    /* 65 MiB of one repeated item: one 1 MiB stream of whole items, written 65 times (concatenated
     * streams are one file), about 3 KB in all */
    const char *item = "Bomb: a b c.\n0\nd\ne\nf\ng\n";
    size_t il = strlen(item), chunk = ((size_t)1 << 20) / il * il, copies = 65;
    char *text = malloc(chunk);
    unsigned zl = (unsigned)(chunk / 50 + 4096);
    char *z = malloc(zl);
    CHECK(text && z);
    if (!text || !z) {
        free(text);
        free(z);
        return;
    }
    for (size_t off = 0; off < chunk; off += il)
        memcpy(text + off, item, il);
    CHECK(BZ2_bzBuffToBuffCompress(z, &zl, text, (unsigned)chunk, 9, 0, 0) == BZ_OK);
    free(text);
    char *path = path_in(harness_tmpdir(), "bomb.txt.bz2");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    for (size_t i = 0; f && i < copies; i++)
        CHECK(fwrite(z, 1, zl, f) == zl);
    CHECK(f && fclose(f) == 0);
    free(z);
    size_t n = chunk * copies;
    char *saved = getenv("PARE_TASK_MAX_DECOMPRESSED") ? strdup(getenv("PARE_TASK_MAX_DECOMPRESSED")) : NULL;
    unsetenv("PARE_TASK_MAX_DECOMPRESSED");
    cli_apply_environment();
    expect_load_error(PARE_TASK_HELLASWAG, path,
                      (const char *const[]){"bomb.txt.bz2", "decompresses to more than 67108864 bytes",
                                            "default 64 MiB", "PARE_TASK_MAX_DECOMPRESSED", NULL});
    setenv("PARE_TASK_MAX_DECOMPRESSED", "1M", 1);
    cli_apply_environment();
    expect_load_error(PARE_TASK_HELLASWAG, path, (const char *const[]){"bomb.txt.bz2", "more than 1048576 bytes", NULL});
    if (!getenv("PARE_TEST_QUICK")) { /* the whole file under a raised limit (decodes 65 MiB) */
        setenv("PARE_TASK_MAX_DECOMPRESSED", "66M", 1);
        cli_apply_environment();
        pare_task *t = load_ok(PARE_TASK_HELLASWAG, path, 3);
        CHECK(t && t->n_in_file == n / il && t->n_items == 3 && t->items[2].gold == 0);
        pare_task_free(t);
    }
    if (saved)
        setenv("PARE_TASK_MAX_DECOMPRESSED", saved, 1);
    else
        unsetenv("PARE_TASK_MAX_DECOMPRESSED");
    cli_apply_environment();
    free(saved);
}

/* Malformed files: each error names the file and the line. */
static void test_reader_errors(void)
{
    const char *d = task_dir(
        "bad", (const char *const[]){"p1.jsonl",
                                     "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": "
                                     "\"a\",\n",
                                     "p1-labels.lst",
                                     "0\n1\n",
                                     "p2.jsonl",
                                     "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": "
                                     "\"a\", \"sol2\": \"b\"}\n",
                                     "p2-labels.lst",
                                     "0\n",
                                     "p3.jsonl",
                                     "{\"goal\": \"g\", \"sol1\": \"a\"}\n",
                                     "p3-labels.lst",
                                     "0\n",
                                     "p4.jsonl",
                                     "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n",
                                     "p4-labels.lst",
                                     "2\n",
                                     "a1.jsonl",
                                     "{\"question\":{\"stem\":\"s\",\"choices\":[]},\"answerKey\":\"A\"}\n",
                                     "a2.jsonl",
                                     "{\"question\":{\"stem\":\"s\",\"choices\":[{\"text\":\"t\",\"label\":\"A\"}]},"
                                     "\"answerKey\":\"E\"}\n",
                                     "a3.jsonl",
                                     "{\"question\":{\"stem\":\"s\",\"choices\":[{\"text\":\"t\",\"label\":\"A\"}]}}\n",
                                     "a4.jsonl",
                                     "{\"question\":{\"stem\":\"s\",\"choices\":{}},\"answerKey\":\"A\"}\n",
                                     "b1.jsonl",
                                     "{\"question\": \"q\", \"passage\": \"p\", \"label\": \"maybe\"}\n",
                                     "b2.jsonl",
                                     "[1, 2]\n",
                                     "h1.txt",
                                     "ctx\n0\ne1\ne2\ne3\n",
                                     "h2.txt",
                                     "ctx\n7\ne1\ne2\ne3\ne4\n",
                                     "empty.jsonl",
                                     "\n\n",
                                     NULL});
    expect_load_error(PARE_TASK_PIQA, path_in(d, "p1.jsonl"),
                      (const char *const[]){"p1.jsonl:2:", "invalid JSON", NULL});
    expect_load_error(PARE_TASK_PIQA, path_in(d, "p2.jsonl"),
                      (const char *const[]){"p2-labels.lst", "1 label for 2 items", NULL});
    expect_load_error(PARE_TASK_PIQA, path_in(d, "p3.jsonl"), (const char *const[]){"p3.jsonl:1:", "'sol2'", NULL});
    expect_load_error(PARE_TASK_PIQA, path_in(d, "p4.jsonl"),
                      (const char *const[]){"p4-labels.lst:1:", "not 0 or 1", NULL});
    expect_load_error(PARE_TASK_PIQA, path_in(d, "absent.jsonl"), (const char *const[]){"absent.jsonl", NULL});
    expect_load_error(PARE_TASK_ARC_EASY, path_in(d, "a1.jsonl"),
                      (const char *const[]){"a1.jsonl:1:", "no choices", NULL});
    expect_load_error(PARE_TASK_ARC_EASY, path_in(d, "a2.jsonl"),
                      (const char *const[]){"a2.jsonl:1:", "answerKey 'E'", "(A)", NULL});
    /* no answerKey (found by fuzzing: the message was chosen after the item was released, a use after free) */
    expect_load_error(PARE_TASK_ARC_EASY, path_in(d, "a3.jsonl"),
                      (const char *const[]){"a3.jsonl:1:", "missing field 'answerKey (a string)'", NULL});
    expect_load_error(PARE_TASK_ARC_EASY, path_in(d, "a4.jsonl"),
                      (const char *const[]){"a4.jsonl:1:", "'question.choices (a list)'", NULL});
    expect_load_error(PARE_TASK_BOOLQ, path_in(d, "b1.jsonl"), (const char *const[]){"b1.jsonl:1:", "label", NULL});
    expect_load_error(PARE_TASK_BOOLQ, path_in(d, "b2.jsonl"),
                      (const char *const[]){"b2.jsonl:1:", "JSON object", NULL});
    expect_load_error(PARE_TASK_HELLASWAG, path_in(d, "h1.txt"), (const char *const[]){"h1.txt:1:", "incomplete", NULL});
    expect_load_error(PARE_TASK_HELLASWAG, path_in(d, "h2.txt"), (const char *const[]){"h2.txt:2:", "label '7'", NULL});
    expect_load_error(PARE_TASK_BOOLQ, path_in(d, "empty.jsonl"),
                      (const char *const[]){"empty.jsonl", "no items", NULL});
    expect_load_error(PARE_TASK_BOOLQ, d, (const char *const[]){"no val.jsonl", NULL});
    pare_task_kind k;
    pare_error err = {0};
    CHECK(pare_task_kind_parse("arc_easy", &k, &err) == PARE_OK && k == PARE_TASK_ARC_EASY);
    CHECK(pare_task_kind_parse("winogrande", &k, &err) == PARE_EINVAL && strstr(err.msg, "unknown task 'winogrande'") &&
          strstr(err.msg, "piqa, arc-easy, boolq, hellaswag"));
}

/* ------------------------------------------------------------------------------------------------ */

/* The harness's log-likelihood of one request, computed the plain way: encode, truncate, one forward of
 * that single sequence with logits at every position, log-softmax in double. */
static double plain_ll(const pare_model *m, const char *context, const char *cont_text, int max_len, int *n_cont_out)
{
    pare_error err = {0};
    size_t cl = strlen(context);
    while (cl && context[cl - 1] == ' ')
        cl--;
    int32_t *ctx = NULL, *whole = NULL;
    size_t nc = 0, nw = 0;
    char *w = malloc(strlen(context) + strlen(cont_text) + 1);
    sprintf(w, "%s%s", context, cont_text);
    CHECK(pare_tokenizer_encode(m->tok, context, cl, 0, &ctx, &nc, &err) == PARE_OK);
    CHECK(pare_tokenizer_encode(m->tok, w, strlen(w), 0, &whole, &nw, &err) == PARE_OK);
    free(w);
    size_t n_cont = nw - nc, total = nc + n_cont;
    int32_t *seq = malloc(total * sizeof *seq);
    memcpy(seq, ctx, nc * sizeof *seq);
    memcpy(seq + nc, whole + nc, n_cont * sizeof *seq);
    size_t start = total - 1 > (size_t)max_len ? total - 1 - (size_t)max_len : 0, T = total - 1 - start;
    pare_acts *a = NULL;
    double ll = NAN;
    if (pare_acts_alloc(m, 1, (int)T, 0, &a, &err) == PARE_OK &&
        pare_forward(m, a, seq + start, 1, (int)T, PARE_LOGITS_ALL, &err) == PARE_OK) {
        ll = 0;
        int V = m->cfg.vocab_size;
        for (size_t k = 0; k < n_cont; k++) {
            const float *row = a->logits + (T - n_cont + k) * V;
            double mx = row[0], s = 0;
            for (int j = 1; j < V; j++)
                mx = row[j] > mx ? row[j] : mx;
            for (int j = 0; j < V; j++)
                s += exp(row[j] - mx);
            ll += row[seq[nc + k]] - mx - log(s);
        }
    }
    pare_acts_free(a);
    free(ctx);
    free(whole);
    free(seq);
    *n_cont_out = (int)n_cont;
    return ll;
}

static int cancel_at_second(void *user, const char *stage, double f, const char *detail)
{
    int *calls = user;
    return ++*calls >= 2;
}

/* pare_task_score (sorted, deduplicated, padded batches, head on the continuation rows only) gives the
 * plain per-request log-likelihoods, with and without left truncation, on a small synthetic model. */
static void test_score_matches_plain(void)
{
    pare_model *m = fixture_model("zs", 0);
    if (!m)
        return;
    const char *d = task_dir(
        "zs_arc", (const char *const[]){
                      "t.jsonl",
                      "{\"question\":{\"stem\":\"a b c\",\"choices\":[{\"text\":\"x\",\"label\":\"A\"},{\"text\":\"yy "
                      "z\",\"label\":\"B\"},"
                      "{\"text\":\"x\",\"label\":\"C\"}]},\"answerKey\":\"B\"}\n"
                      "{\"question\":{\"stem\":\"the quick brown fox\",\"choices\":[{\"text\":\"and sleeps\","
                      "\"label\":\"A\"},{\"text\":\"no\",\"label\":\"B\"}]},\"answerKey\":\"A\"}\n"
                      "{\"question\":{\"stem\":\"hi \",\"choices\":[{\"text\":\"ok\",\"label\":\"A\"},{\"text\":\"okay "
                      "then\",\"label\":\"B\"},"
                      "{\"text\":\"k\",\"label\":\"C\"},{\"text\":\"fine\",\"label\":\"D\"}]},\"answerKey\":\"D\"}\n"
                      "{\"question\":{\"stem\":\"abcdefghijklmnopqrstuvwxyz abc\","
                      "\"choices\":[{\"text\":\"long "
                      "one\",\"label\":\"A\"},{\"text\":\"b\",\"label\":\"B\"}]},\"answerKey\":\"B\"}\n",
                      NULL});
    pare_task *t = load_ok(PARE_TASK_ARC_EASY, path_in(d, "t.jsonl"), 0);
    if (!t) {
        pare_model_free(m);
        return;
    }
    const int max_lens[] = {0, 24};
    const int batches[] = {2048, 40, 1};
    for (int ml = 0; ml < 2; ml++)
        for (int bt = 0; bt < 3; bt++) {
            pare_zeroshot_opts o;
            pare_zeroshot_defaults(&o);
            o.max_len = max_lens[ml];
            o.batch_tokens = batches[bt];
            pare_zeroshot_result r;
            pare_error err = {0};
            pare_status st = pare_task_score(m, t, &o, NULL, &r, &err);
            CHECKF(st == PARE_OK, "max_len %d batch %d: %s", o.max_len, o.batch_tokens, err.msg);
            if (st)
                continue;
            int limit = o.max_len ? o.max_len : m->cfg.max_pos;
            double worst = 0;
            size_t hits = 0, hits_norm = 0;
            for (size_t i = 0; i < t->n_items; i++) {
                const pare_task_item *it = &t->items[i];
                int best = 0, best_norm = 0;
                for (int j = 0; j < it->n_choices; j++) {
                    char cont[256];
                    snprintf(cont, sizeof cont, " %s", it->choices[j]);
                    int nc = 0;
                    double want = plain_ll(m, it->context, cont, limit, &nc);
                    double got = r.ll[r.first[i] + j];
                    worst = fmax(worst, fabs(got - want));
                    CHECK(r.cont_tokens[r.first[i] + j] == nc);
                    if (got > r.ll[r.first[i] + best])
                        best = j;
                    if (got / pare_utf8_chars(it->choices[j]) >
                        r.ll[r.first[i] + best_norm] / pare_utf8_chars(it->choices[best_norm]))
                        best_norm = j;
                }
                CHECK(r.pred[i] == best && r.pred_norm[i] == best_norm);
                hits += best == it->gold;
                hits_norm += best_norm == it->gold;
            }
            CHECKF(worst < 1e-4, "max_len %d batch %d: max |ll - plain| = %g", o.max_len, o.batch_tokens, worst);
            double n = (double)t->n_items, acc = hits / n, accn = hits_norm / n;
            CHECK(fabs(r.acc - acc) < 1e-12 && fabs(r.acc_norm - accn) < 1e-12);
            CHECK(fabs(r.acc_stderr - sqrt(acc * (1 - acc) / (n - 1))) < 1e-12);
            CHECK(fabs(r.acc_norm_stderr - sqrt(accn * (1 - accn) / (n - 1))) < 1e-12);
            /* choices "x" twice in item 1 share their input; the long stem is truncated at max_len 24 */
            CHECKF(r.sequences < r.n_requests, "%zu sequences for %zu requests", r.sequences, r.n_requests);
            CHECK(o.max_len ? r.truncated > 0 : r.truncated == 0);
            CHECK(r.ll[r.first[0]] == r.ll[r.first[0] + 2]);
            pare_zeroshot_result_free(&r);
        }
    /* a progress callback that asks to stop cancels the job */
    pare_zeroshot_opts o;
    pare_zeroshot_defaults(&o);
    o.batch_tokens = 1;
    int calls = 0;
    pare_progress p = {cancel_at_second, &calls};
    pare_zeroshot_result r;
    pare_error err = {0};
    CHECK(pare_task_score(m, t, &o, &p, &r, &err) == PARE_ECANCELED && calls == 2);
    pare_task_free(t);
    pare_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */

static const char *const FIX_TASKS[] = {"piqa", "arc-easy", "boolq", "hellaswag"};

/* ref-llama-12m's per-choice log-likelihoods on the first 20 items of each task equal those of the
 * independent PyTorch script within 1e-3 nats, with the same continuation token counts and decisions. */
static void test_reference_fixture(void)
{
    NEED_SHARED();
    json_error_t je;
    json_t *fx = json_load_file(FIXTURE_FILE, 0, &je);
    CHECKF(fx != NULL, "%s: %s (run the tests from the repository root)", FIXTURE_FILE, je.text);
    if (!fx)
        return;
    char model_dir[1200];
    snprintf(model_dir, sizeof model_dir, "%s", shared_path("models/ref-llama-12m"));
    pare_model *m = NULL;
    pare_error err = {0};
    CHECKF(pare_model_load(model_dir, NULL, &m, &err) == PARE_OK, "%s", err.msg);
    json_t *tasks = json_object_get(fx, "tasks");
    for (int k = 0; m && k < 4; k++) {
        json_t *ft = json_object_get(tasks, FIX_TASKS[k]);
        json_t *items = json_object_get(ft, "items");
        CHECKF(json_array_size(items) > 0, "%s: no fixture items", FIX_TASKS[k]);
        if (!json_array_size(items))
            continue;
        pare_task_kind kind;
        CHECK(pare_task_kind_parse(FIX_TASKS[k], &kind, &err) == PARE_OK);
        pare_task *t = load_ok(kind, shared_path(json_string_value(json_object_get(ft, "data"))),
                               json_array_size(items));
        if (!t)
            continue;
        pare_zeroshot_result r;
        if (pare_task_score(m, t, NULL, NULL, &r, &err) != PARE_OK) {
            CHECKF(0, "%s: %s", FIX_TASKS[k], err.msg);
            pare_task_free(t);
            continue;
        }
        double worst = 0;
        int bad_tokens = 0, bad_gold = 0;
        for (size_t i = 0; i < t->n_items; i++) {
            json_t *fi = json_array_get(items, i);
            json_t *ll = json_object_get(fi, "ll"), *ct = json_object_get(fi, "cont_tokens");
            CHECKF((int)json_array_size(ll) == t->items[i].n_choices, "%s item %zu: %zu choices in the fixture, %d here",
                   FIX_TASKS[k], i, json_array_size(ll), t->items[i].n_choices);
            bad_gold += json_integer_value(json_object_get(fi, "gold")) != t->items[i].gold;
            for (int j = 0; j < t->items[i].n_choices && j < (int)json_array_size(ll); j++) {
                worst = fmax(worst, fabs(r.ll[r.first[i] + j] - json_real_value(json_array_get(ll, j))));
                bad_tokens += json_integer_value(json_array_get(ct, j)) != r.cont_tokens[r.first[i] + j];
            }
        }
        printf("  %-9s %zu items: max |ll pare - ll torch| = %.2e; acc %.3f (torch %.3f), acc_norm %.3f (torch %.3f); "
               "%zu sequences for %zu choices\n",
               FIX_TASKS[k], t->n_items, worst, r.acc, json_real_value(json_object_get(ft, "acc")), r.acc_norm,
               json_real_value(json_object_get(ft, "acc_norm")), r.sequences, r.n_requests);
        CHECKF(worst <= 1e-3, "%s: max |ll difference| %g > 1e-3", FIX_TASKS[k], worst);
        CHECKF(bad_tokens == 0 && bad_gold == 0, "%s: %d continuation token counts and %d gold labels differ",
               FIX_TASKS[k], bad_tokens, bad_gold);
        CHECK(fabs(r.acc - json_real_value(json_object_get(ft, "acc"))) < 1e-9);
        CHECK(fabs(r.acc_norm - json_real_value(json_object_get(ft, "acc_norm"))) < 1e-9);
        if (kind == PARE_TASK_BOOLQ) /* " no" is one token, " yes" two: the input of " no" is a prefix of the other's */
            CHECKF(r.sequences == t->n_items, "boolq: %zu sequences for %zu items", r.sequences, t->n_items);
        pare_zeroshot_result_free(&r);
        pare_task_free(t);
    }
    pare_model_free(m);
    json_decref(fx);
}

/* ------------------------------------------------------------------------------------------------ */

static json_t *run_json_ok(const char *const *args)
{
    char *out = NULL, *errout = NULL;
    int st = run_pare(&out, &errout, args);
    json_error_t je;
    json_t *j = st == 0 ? json_loads(out, 0, &je) : NULL;
    CHECKF(j != NULL, "pare exited %d; stderr: %.400s", st, errout);
    free(out);
    free(errout);
    return j;
}

/* `pare eval --task` end to end on the synthetic model: the JSON result, --limit, the card, the dump. */
static void test_cli_task(void)
{
    const char *model = fixture_hf_dir("zs_cli", 0);
    const char *d = task_dir(
        "cli_piqa", (const char *const[]){"valid.jsonl",
                                          "{\"goal\": \"open a jar\", \"sol1\": \"twist\", \"sol2\": \"hit it\"}\n"
                                          "{\"goal\": \"dry socks\", \"sol1\": \"use a dryer\", \"sol2\": \"oven\"}\n"
                                          "{\"goal\": \"cut bread\", \"sol1\": \"knife\", \"sol2\": \"spoon\"}\n",
                                          "valid-labels.lst", "0\n0\n0\n", NULL});
    json_t *j = run_json_ok(
        (const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", d, "--json", NULL});
    if (j) {
        CHECK(json_integer_value(json_object_get(j, "items")) == 3 && json_integer_value(json_object_get(j, "request"
                                                                                                            "s")) == 6);
        double acc = json_real_value(json_object_get(j, "acc"));
        CHECK(fabs(acc * 3 - round(acc * 3)) < 1e-9);
        CHECK(strcmp(json_string_value(json_object_get(j, "task")), "piqa") == 0);
        CHECK(json_object_get(j, "acc_norm_stderr") && json_object_get(j, "items_per_second"));
    }
    json_decref(j);
    char dump[1200];
    snprintf(dump, sizeof dump, "%s", tmp_path("dump.jsonl"));
    j = run_json_ok((const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", d, "--limit", "2",
                                          "--json", "--dump-requests", dump, NULL});
    CHECK(j && json_integer_value(json_object_get(j, "items")) == 2 &&
          json_integer_value(json_object_get(j, "items_in_file")) == 3);
    json_decref(j);
    size_t len = 0;
    char *text = (char *)fixture_read(dump, &len);
    int lines = 0;
    for (size_t i = 0; text && i < len; i++)
        lines += text[i] == '\n';
    CHECKF(lines == 2 && strstr(text, "\"cont\"") && strstr(text, "\"ll\""), "dump: %s", text ? text : "(none)");
    free(text);
    char *out = NULL, *errout = NULL;
    int st = run_pare(&out, &errout,
                      (const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", d, NULL});
    CHECKF(st == 0 && strstr(out, "acc_norm") && strstr(out, "Question: {goal}") && strstr(errout, "items/s"),
           "exit %d: %s %s", st, out, errout);
    free(out);
    free(errout);
}

/* Bad task input through the CLI: exit status 2, one line naming the file and line or the option. */
static void test_cli_task_errors(void)
{
    const char *model = fixture_hf_dir("zs_err", 0);
    const char *d = task_dir(
        "cli_bad",
        (const char *const[]){"valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\nnot json\n",
                              "valid-labels.lst", "0\n1\n", "short.jsonl",
                              "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": \"a\", "
                              "\"sol2\": \"b\"}\n",
                              "short-labels.lst", "0\n", "arc.jsonl",
                              "{\"question\":{\"stem\":\"s\",\"choices\":[]},\"answerKey\":\"A\"}\n", NULL});
    char valid[1200], shortf[1200], arc[1200];
    snprintf(valid, sizeof valid, "%s", path_in(d, "valid.jsonl"));
    snprintf(shortf, sizeof shortf, "%s", path_in(d, "short.jsonl"));
    snprintf(arc, sizeof arc, "%s", path_in(d, "arc.jsonl"));
    expect_pare_error((const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", d, NULL},
                      (const char *const[]){"valid.jsonl:2:", "invalid JSON", NULL}, 1);
    expect_pare_error((const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", shortf, NULL},
                      (const char *const[]){"short-labels.lst", "1 label for 2 items", NULL}, 1);
    expect_pare_error((const char *const[]){"eval", "--model", model, "--task", "arc-easy", "--task-data", arc, NULL},
                      (const char *const[]){"arc.jsonl:1:", "no choices", NULL}, 1);
    expect_pare_error((const char *const[]){"eval", "--model", model, "--task", "lambada", "--task-data", d, NULL},
                      (const char *const[]){"unknown task 'lambada'", "piqa, arc-easy, boolq, hellaswag", NULL}, 1);
    expect_pare_error((const char *const[]){"eval", "--model", model, "--task", "piqa", NULL},
                      (const char *const[]){"--task-data", NULL}, 1);
    expect_pare_error(
        (const char *const[]){"eval", "--model", model, "--task", "piqa", "--task-data", valid, "--window", "32", NULL},
        (const char *const[]){"--window", "not to --task", NULL}, 1);
    expect_pare_error((const char *const[]){"eval", "--model", model, "--data", valid, "--limit", "3", NULL},
                      (const char *const[]){"--limit applies to --task", NULL}, 1);
}

void suite_tasks(void);
void suite_tasks(void)
{
    RUN(test_readers_templates);
    RUN(test_hellaswag);
    RUN(test_reader_errors);
    RUN(test_decompression_limit);
    RUN(test_score_matches_plain);
    RUN(test_cli_task);
    RUN(test_cli_task_errors);
    RUN(test_reference_fixture);
}

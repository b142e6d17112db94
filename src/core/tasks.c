/* Zero-shot task readers: PIQA (valid.jsonl + valid-labels.lst), ARC (AI2's JSONL), BoolQ (val.jsonl)
 * and HellaSwag (the 6-lines-per-item text form, optionally bzip2-compressed, read with libbz2).
 * Every item gets the prompt template lm-evaluation-harness uses for its task, so the scores can be
 * set beside published zero-shot figures. */
#include "tasks.h"

#include <bzlib.h>
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "memcheck.h"

const char *const PARE_TASK_NAMES[PARE_TASK_KINDS + 1] = {[PARE_TASK_PIQA] = "piqa",
                                                          [PARE_TASK_ARC_EASY] = "arc-easy",
                                                          [PARE_TASK_BOOLQ] = "boolq",
                                                          [PARE_TASK_HELLASWAG] = "hellaswag",
                                                          [PARE_TASK_KINDS] = NULL};

static const struct {
    const char *alias;
    const char *template_text;
} KINDS[PARE_TASK_KINDS] = {
    [PARE_TASK_PIQA] = {NULL, "\"Question: {goal}\\nAnswer:\" + \" {sol1|sol2}\""},
    [PARE_TASK_ARC_EASY] = {"arc_easy", "\"Question: {question.stem}\\nAnswer:\" + \" {choice text}\""},
    [PARE_TASK_BOOLQ] = {NULL, "\"{passage}\\nQuestion: {question}?\\nAnswer:\" + \" no\" | \" yes\""},
    [PARE_TASK_HELLASWAG] = {NULL, "preprocess(\"{activity_label}: {ctx_a} {ctx_b.capitalize()}\") + \" \" + "
                                   "preprocess(ending)"},
};

pare_status pare_task_kind_parse(const char *name, pare_task_kind *kind, pare_error *err)
{
    for (int k = 0; k < PARE_TASK_KINDS; k++)
        if (name && (strcmp(name, PARE_TASK_NAMES[k]) == 0 || (KINDS[k].alias && strcmp(name, KINDS[k].alias) == 0))) {
            *kind = (pare_task_kind)k;
            return PARE_OK;
        }
    char known[128] = "";
    for (int k = 0; k < PARE_TASK_KINDS; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "", PARE_TASK_NAMES[k]);
    return pare_fail(err, PARE_EINVAL, "unknown task '%s'; known tasks: %s", name ? name : "", known);
}

const char *pare_task_kind_name(pare_task_kind kind)
{
    return (unsigned)kind < PARE_TASK_KINDS ? PARE_TASK_NAMES[kind] : "?";
}

const char *pare_task_template(pare_task_kind kind)
{
    return (unsigned)kind < PARE_TASK_KINDS ? KINDS[kind].template_text : "?";
}

size_t pare_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80; /* count every byte but continuation bytes */
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* bzip2 */

/* Set by the front end before any work starts; NULL source: the default. */
static uint64_t max_decompressed;
static const char *max_decompressed_from;

void pare_set_task_max_decompressed(uint64_t bytes, const char *source)
{
    int set = bytes > 0 && source;
    max_decompressed = set ? bytes : 0;
    max_decompressed_from = set ? source : NULL;
}

const char *pare_task_max_decompressed_source(void) { return max_decompressed_from; }

pare_status pare_read_maybe_bz2(const char *path, char **data, size_t *len, pare_error *err)
{
    *data = NULL;
    *len = 0;
    pare_map map;
    pare_status rc = pare_map_file(path, &map, err);
    if (rc)
        return rc;
    int is_bz2 = map.len >= 4 && memcmp(map.data, "BZh", 3) == 0 && map.data[3] >= '1' && map.data[3] <= '9';
    if (!is_bz2) {
        pare_unmap(&map);
        return pare_read_file(path, data, len, err);
    }
    /* a few hundred bytes of bzip2 can expand to gigabytes: the output is capped */
    uint64_t limit = max_decompressed_from ? max_decompressed : PARE_TASK_MAX_DECOMPRESSED_DEFAULT;
    if (limit > (uint64_t)SIZE_MAX / 2)
        limit = (uint64_t)SIZE_MAX / 2;
    size_t cap = map.len * 6 + 1024, n = 0;
    if (cap > limit + 65536 + 1)
        cap = (size_t)limit + 65536 + 1;
    char *out = malloc(cap);
    if (!out) {
        pare_unmap(&map);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory decompressing", path);
    }
    size_t in_off = 0;
    rc = PARE_OK;
    /* bzip2 files may hold several concatenated streams (pbzip2, lbzip2): decode until the input ends. */
    while (rc == PARE_OK && in_off < map.len) {
        bz_stream bz;
        memset(&bz, 0, sizeof bz);
        if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) {
            rc = pare_fail(err, PARE_ENOMEM, "%s: cannot initialise the bzip2 decoder", path);
            break;
        }
        bz.next_in = (char *)(map.data + in_off);
        size_t avail = map.len - in_off;
        bz.avail_in = avail > UINT32_MAX ? UINT32_MAX : (unsigned)avail;
        int r;
        for (;;) {
            if (cap - n < 65536) {
                size_t want = cap * 2 > (size_t)limit + 65536 + 1 ? (size_t)limit + 65536 + 1 : cap * 2;
                if (want <= cap)
                    want = cap + 65536;
                char *grown = realloc(out, want);
                if (!grown) {
                    rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory decompressing", path);
                    break;
                }
                out = grown;
                cap = want;
            }
            bz.next_out = out + n;
            size_t room = cap - n - 1;
            if (room > limit + 1 - n) /* one byte past the limit is enough to know */
                room = (size_t)(limit + 1 - n);
            bz.avail_out = room > UINT32_MAX ? UINT32_MAX : (unsigned)room;
            unsigned before_out = bz.avail_out;
            unsigned before_in = bz.avail_in;
            r = BZ2_bzDecompress(&bz);
            n += before_out - bz.avail_out;
            in_off += before_in - bz.avail_in;
            if (n > limit) {
                rc = pare_fail(err, PARE_EFORMAT,
                               "%s: decompresses to more than %llu bytes, the limit for a task file (%s; "
                               "PARE_TASK_MAX_DECOMPRESSED=BYTES[K/M/G] sets it)",
                               path, (unsigned long long)limit,
                               max_decompressed_from ? max_decompressed_from : "default 64 MiB");
                break;
            }
            if (r == BZ_STREAM_END)
                break;
            if (r != BZ_OK) {
                rc = pare_fail(err, PARE_EFORMAT, "%s: corrupt bzip2 data (%s) near compressed byte %zu", path,
                               r == BZ_DATA_ERROR_MAGIC ? "bad magic"
                               : r == BZ_DATA_ERROR     ? "data error"
                                                        : "decoder error",
                               in_off);
                break;
            }
            if (bz.avail_in == 0) {
                size_t left = map.len - in_off;
                if (left == 0) {
                    rc = pare_fail(err, PARE_EFORMAT, "%s: truncated bzip2 stream (the file ends inside it)", path);
                    break;
                }
                bz.next_in = (char *)(map.data + in_off);
                bz.avail_in = left > UINT32_MAX ? UINT32_MAX : (unsigned)left;
            }
        }
        BZ2_bzDecompressEnd(&bz);
    }
    pare_unmap(&map);
    if (rc) {
        free(out);
        return rc;
    }
    out[n] = '\0';
    *data = out;
    *len = n;
    return PARE_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* text helpers */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

pare_status pare_hellaswag_preprocess(const char *s, char **out, pare_error *err)
{
    *out = NULL;
    /* text.strip() (ASCII whitespace) */
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1]))
        n--;
    /* text.replace(" [title]", ". "): the output is never longer than the input */
    char *a = malloc(n + 1), *b = malloc(n + 1);
    if (!a || !b) {
        free(a);
        free(b);
        return pare_fail(err, PARE_ENOMEM, "out of memory preprocessing %zu bytes of HellaSwag text", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 8 && memcmp(s + i, " [title]", 8) == 0) {
            a[k++] = '.';
            a[k++] = ' ';
            i += 8;
        } else {
            a[k++] = s[i++];
        }
    }
    a[k] = '\0';
    /* re.sub("\\[.*?\\]", "", text): each '[' up to the nearest ']' on the same line goes */
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        if (a[i] == '[') {
            size_t j = i + 1;
            while (j < k && a[j] != ']' && a[j] != '\n')
                j++;
            if (j < k && a[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        b[m++] = a[i++];
    }
    b[m] = '\0';
    /* text.replace("  ", " "): one pass, non-overlapping, so three spaces become two */
    k = 0;
    for (size_t i = 0; i < m;) {
        if (b[i] == ' ' && i + 1 < m && b[i + 1] == ' ') {
            a[k++] = ' ';
            i += 2;
        } else {
            a[k++] = b[i++];
        }
    }
    a[k] = '\0';
    free(b);
    *out = a;
    return PARE_OK;
}

/* The published text form holds activity_label + ": " + ctx, where ctx = ctx_a + " " + ctx_b with ctx_b
 * as HellaSwag stores it (lower case). The harness capitalizes ctx_b; the boundary is not in the file,
 * so ctx_b is taken to be the final fragment after the last ". ", "! " or "? " when the context does not
 * itself end a sentence (ActivityNet items, whose ctx_b is such a fragment; WikiHow items have an empty
 * ctx_b and end with a full stop). Its first letter is upper-cased, as str.capitalize() does. */
static void hellaswag_capitalize_ctx_b(char *ctx)
{
    size_t n = strlen(ctx);
    while (n && is_space(ctx[n - 1]))
        n--;
    if (n == 0 || ctx[n - 1] == '.' || ctx[n - 1] == '!' || ctx[n - 1] == '?')
        return;
    const char *body = strstr(ctx, ": ");
    body = body ? body + 2 : ctx;
    char *last = NULL;
    for (char *p = (char *)body; p + 1 < ctx + n; p++)
        if ((*p == '.' || *p == '!' || *p == '?') && p[1] == ' ')
            last = p + 2;
    if (last && *last >= 'a' && *last <= 'z')
        *last = (char)(*last - 'a' + 'A');
}

/* ------------------------------------------------------------------------------------------------ */
/* items */

void pare_task_free(pare_task *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_items; i++) {
        pare_task_item *it = &t->items[i];
        free(it->context);
        for (int j = 0; j < it->n_choices; j++)
            free(it->choices[j]);
        free(it->choices);
    }
    free(t->items);
    free(t);
}

/* Growable item list while parsing. */
typedef struct {
    pare_task *t;
    size_t cap;
} builder;

static pare_task_item *add_item(builder *b, int line, int n_choices)
{
    pare_task *t = b->t;
    if (t->n_items == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        pare_task_item *grown = realloc(t->items, cap * sizeof *grown);
        if (!grown)
            return NULL;
        t->items = grown;
        b->cap = cap;
    }
    pare_task_item *it = &t->items[t->n_items];
    memset(it, 0, sizeof *it);
    it->choices = calloc((size_t)n_choices, sizeof *it->choices);
    if (!it->choices)
        return NULL;
    it->n_choices = n_choices;
    it->line = line;
    t->n_items++; /* counted now so that pare_task_free releases a half-built item */
    return it;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static char *str_concat(const char *a, const char *b, const char *c, const char *d, const char *e)
{
    const char *parts[5] = {a, b, c, d, e};
    size_t n = 1;
    for (int i = 0; i < 5; i++)
        n += parts[i] ? strlen(parts[i]) : 0;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < 5; i++)
        if (parts[i])
            strcat(s, parts[i]);
    return s;
}

/* Calls fn on every non-blank line with its 1-based number; the line is NUL-terminated in place
 * (\r\n endings tolerated). */
typedef pare_status (*line_fn)(void *user, char *line, int lineno, pare_error *err);

static pare_status each_line(char *data, size_t len, line_fn fn, void *user, pare_error *err)
{
    char *p = data, *end = data + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte-order mark is not content */
        p += 3;
    int lineno = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        lineno++;
        if (e > p && e[-1] == '\r')
            e[-1] = '\0';
        *e = '\0';
        int blank = 1;
        for (char *q = p; *q; q++)
            if (!is_space(*q)) {
                blank = 0;
                break;
            }
        if (!blank) {
            pare_status rc = fn(user, p, lineno, err);
            if (rc)
                return rc;
        }
        p = e + 1;
    }
    return PARE_OK;
}

typedef struct {
    builder b;
    const char *path;
} jsonl_ctx;

static pare_status parse_json_line(const jsonl_ctx *c, const char *line, int lineno, json_t **out, pare_error *err)
{
    json_error_t je;
    *out = json_loads(line, JSON_REJECT_DUPLICATES, &je);
    if (!*out)
        return pare_fail(err, PARE_EFORMAT, "%s:%d: invalid JSON: %s (column %d)", c->path, lineno, je.text, je.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return pare_fail(err, PARE_EFORMAT, "%s:%d: expected a JSON object per line", c->path, lineno);
    }
    return PARE_OK;
}

static const char *get_str(json_t *obj, const char *key) { return json_string_value(json_object_get(obj, key)); }

static pare_status oom(const char *path, pare_error *err)
{
    return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
}

/* PIQA: {"goal", "sol1", "sol2"}; the label comes from the labels file afterwards. */
static pare_status piqa_line(void *user, char *line, int lineno, pare_error *err)
{
    jsonl_ctx *c = user;
    json_t *j;
    pare_status rc = parse_json_line(c, line, lineno, &j, err);
    if (rc)
        return rc;
    const char *goal = get_str(j, "goal"), *s1 = get_str(j, "sol1"), *s2 = get_str(j, "sol2");
    const char *missing = !goal ? "goal" : !s1 ? "sol1" : !s2 ? "sol2" : NULL;
    if (missing) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: missing field '%s' (a string)", c->path, lineno, missing);
    }
    pare_task_item *it = add_item(&c->b, lineno, 2);
    if (it) {
        it->context = str_concat("Question: ", goal, "\nAnswer:", NULL, NULL);
        it->choices[0] = dup_or_null(s1);
        it->choices[1] = dup_or_null(s2);
    }
    json_decref(j);
    return it && it->context && it->choices[0] && it->choices[1] ? PARE_OK : oom(c->path, err);
}

/* ARC: {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}. */
static pare_status arc_line(void *user, char *line, int lineno, pare_error *err)
{
    jsonl_ctx *c = user;
    json_t *j;
    pare_status rc = parse_json_line(c, line, lineno, &j, err);
    if (rc)
        return rc;
    json_t *q = json_object_get(j, "question");
    const char *stem = get_str(q, "stem"), *key = get_str(j, "answerKey");
    json_t *choices = json_object_get(q, "choices");
    /* decided before j (and choices with it) is released */
    const char *missing = !stem                     ? "question.stem (a string)"
                          : !json_is_array(choices) ? "question.choices (a list)"
                          : !key                    ? "answerKey (a string)"
                                                    : NULL;
    if (missing) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: missing field '%s'", c->path, lineno, missing);
    }
    size_t n = json_array_size(choices);
    if (n == 0) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: item has no choices", c->path, lineno);
    }
    if (n > 64) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: %zu choices; at most 64 are supported", c->path, lineno, n);
    }
    pare_task_item *it = add_item(&c->b, lineno, (int)n);
    if (!it) {
        json_decref(j);
        return oom(c->path, err);
    }
    it->gold = -1;
    char labels[256] = "";
    for (size_t k = 0; k < n; k++) {
        json_t *ch = json_array_get(choices, k);
        const char *text = get_str(ch, "text"), *label = get_str(ch, "label");
        if (!text || !label) {
            json_decref(j);
            return pare_fail(err, PARE_EFORMAT, "%s:%d: choice %zu lacks '%s' (a string)", c->path, lineno, k + 1,
                             !text ? "text" : "label");
        }
        if (!(it->choices[k] = strdup(text))) {
            json_decref(j);
            return oom(c->path, err);
        }
        if (strcmp(label, key) == 0 && it->gold < 0)
            it->gold = (int)k;
        size_t ll = strlen(labels);
        snprintf(labels + ll, sizeof labels - ll, "%s%s", k ? ", " : "", label);
    }
    if (it->gold < 0) {
        rc = pare_fail(err, PARE_EFORMAT, "%s:%d: answerKey '%s' is not one of the choice labels (%s)", c->path, lineno,
                       key, labels);
        json_decref(j);
        return rc;
    }
    it->context = str_concat("Question: ", stem, "\nAnswer:", NULL, NULL);
    json_decref(j);
    return it->context ? PARE_OK : oom(c->path, err);
}

/* BoolQ: {"question", "passage", "label"} with label "true"/"false" (as published here), a JSON
 * boolean or 0/1; the original release's "answer" boolean is accepted too. */
static pare_status boolq_line(void *user, char *line, int lineno, pare_error *err)
{
    jsonl_ctx *c = user;
    json_t *j;
    pare_status rc = parse_json_line(c, line, lineno, &j, err);
    if (rc)
        return rc;
    const char *question = get_str(j, "question"), *passage = get_str(j, "passage");
    if (!question || !passage) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: missing field '%s' (a string)", c->path, lineno,
                         !question ? "question" : "passage");
    }
    json_t *lab = json_object_get(j, "label");
    if (!lab)
        lab = json_object_get(j, "answer");
    int gold = -1;
    if (json_is_boolean(lab))
        gold = json_is_true(lab);
    else if (json_is_string(lab) &&
             (strcmp(json_string_value(lab), "true") == 0 || strcmp(json_string_value(lab), "false") == 0))
        gold = strcmp(json_string_value(lab), "true") == 0;
    else if (json_is_integer(lab) && (json_integer_value(lab) == 0 || json_integer_value(lab) == 1))
        gold = (int)json_integer_value(lab);
    if (gold < 0) {
        json_decref(j);
        return pare_fail(err, PARE_EFORMAT, "%s:%d: 'label' must be \"true\" or \"false\" (or a boolean, or 0/1)",
                         c->path, lineno);
    }
    pare_task_item *it = add_item(&c->b, lineno, 2);
    if (it) {
        it->gold = gold;
        it->context = str_concat(passage, "\nQuestion: ", question, "?\nAnswer:", NULL);
        it->choices[0] = strdup("no");
        it->choices[1] = strdup("yes");
    }
    json_decref(j);
    return it && it->context && it->choices[0] && it->choices[1] ? PARE_OK : oom(c->path, err);
}

/* PIQA's labels: one 0 or 1 per line, as many lines as items. */
static pare_status piqa_labels(pare_task *t, pare_error *err)
{
    char *data = NULL;
    size_t len = 0;
    pare_status rc = pare_read_file(t->labels_path, &data, &len, err);
    if (rc)
        return rc;
    size_t k = 0;
    int lineno = 0, blank_line = 0;
    char *p = data, *end = data + len;
    while (p < end && rc == PARE_OK) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        lineno++;
        *e = '\0';
        if (e > p && e[-1] == '\r')
            e[-1] = '\0';
        char *s = p;
        while (is_space(*s))
            s++;
        size_t sl = strlen(s);
        while (sl && is_space(s[sl - 1]))
            s[--sl] = '\0';
        p = e + 1;
        if (!*s) {
            if (!blank_line)
                blank_line = lineno;
            continue;
        }
        if (blank_line) { /* an empty line in the middle would shift every later label */
            rc = pare_fail(err, PARE_EFORMAT, "%s:%d: empty line among the labels", t->labels_path, blank_line);
            break;
        }
        if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0) {
            rc = pare_fail(err, PARE_EFORMAT, "%s:%d: label '%.40s' is not 0 or 1", t->labels_path, lineno, s);
            break;
        }
        if (k < t->n_items)
            t->items[k].gold = s[0] - '0';
        k++;
    }
    free(data);
    if (rc == PARE_OK && k != t->n_items)
        rc = pare_fail(err, PARE_EFORMAT, "%s: %zu label%s for %zu items in %s: the files do not belong together",
                       t->labels_path, k, k == 1 ? "" : "s", t->n_items, t->path);
    return rc;
}

/* HellaSwag text form: context, label (0..3), four endings; six lines per item. */
static pare_status hellaswag_parse(pare_task *t, char *data, size_t len, pare_error *err)
{
    builder b = {t, 0};
    char *p = data, *end = data + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    char *lines[6];
    int first_line = 0, lineno = 0, k = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        lineno++;
        *e = '\0';
        if (e > p && e[-1] == '\r')
            e[-1] = '\0';
        if (k == 0)
            first_line = lineno;
        lines[k++] = p;
        p = e + 1;
        if (k < 6)
            continue;
        k = 0;
        const char *ctx = lines[0], *lab = lines[1];
        if (!*ctx)
            return pare_fail(err, PARE_EFORMAT, "%s:%d: empty context line", t->path, first_line);
        if (!(lab[0] >= '0' && lab[0] <= '3' && lab[1] == '\0'))
            return pare_fail(err, PARE_EFORMAT,
                             "%s:%d: label '%.40s' must be 0, 1, 2 or 3 (six lines per item: "
                             "context, label, four endings)",
                             t->path, first_line + 1, lab);
        pare_task_item *it = add_item(&b, first_line, 4);
        if (!it)
            return oom(t->path, err);
        it->gold = lab[0] - '0';
        char *c = strdup(ctx);
        if (!c)
            return oom(t->path, err);
        hellaswag_capitalize_ctx_b(c);
        pare_status rc = pare_hellaswag_preprocess(c, &it->context, err);
        free(c);
        if (rc)
            return rc;
        for (int j = 0; j < 4; j++) {
            if ((rc = pare_hellaswag_preprocess(lines[2 + j], &it->choices[j], err)))
                return rc;
            if (!*it->choices[j])
                return pare_fail(err, PARE_EFORMAT, "%s:%d: empty ending", t->path, first_line + 2 + j);
        }
    }
    if (k == 1 && !*lines[0])
        k = 0; /* the file's final newline */
    if (k != 0)
        return pare_fail(err, PARE_EFORMAT, "%s:%d: incomplete item: %d of its 6 lines (context, label, four endings)",
                         t->path, first_line, k);
    return PARE_OK;
}

static pare_status resolve(pare_task *t, const char *path, pare_error *err)
{
    static const char *const dir_files[PARE_TASK_KINDS][2] = {
        [PARE_TASK_PIQA] = {"valid.jsonl", NULL},
        [PARE_TASK_ARC_EASY] = {"ARC-Easy-Test.jsonl", NULL},
        [PARE_TASK_BOOLQ] = {"val.jsonl", NULL},
        [PARE_TASK_HELLASWAG] = {"hellaswag_val_full.txt.bz2", "hellaswag_val_full.txt"},
    };
    if (pare_is_dir(path)) {
        const char *const *f = dir_files[t->kind];
        pare_status rc = pare_path_join(t->path, sizeof t->path, path, f[0], err);
        if (rc)
            return rc;
        if (f[1] && !pare_file_exists(t->path) && (rc = pare_path_join(t->path, sizeof t->path, path, f[1], err)))
            return rc;
        if (!pare_file_exists(t->path))
            return pare_fail(err, PARE_EIO, "%s: no %s in this folder (the %s file as published)", path, f[0],
                             pare_task_kind_name(t->kind));
    } else {
        if (strlen(path) >= sizeof t->path)
            return pare_fail(err, PARE_EINVAL, "%s: path too long", path);
        strcpy(t->path, path);
    }
    if (t->kind == PARE_TASK_PIQA) {
        size_t n = strlen(t->path);
        if (n < 6 || strcmp(t->path + n - 6, ".jsonl") != 0)
            return pare_fail(err, PARE_EINVAL, "%s: a PIQA file is named X.jsonl, with its labels in X-labels.lst",
                             t->path);
        if (n - 6 + strlen("-labels.lst") >= sizeof t->labels_path)
            return pare_fail(err, PARE_EINVAL, "%s: path too long", t->path);
        memcpy(t->labels_path, t->path, n - 6);
        strcpy(t->labels_path + n - 6, "-labels.lst");
    }
    return PARE_OK;
}

pare_status pare_task_load(pare_task_kind kind, const char *path, size_t limit, pare_task **out, pare_error *err)
{
    *out = NULL;
    if ((unsigned)kind >= PARE_TASK_KINDS)
        return pare_fail(err, PARE_EINVAL, "unknown task kind %d", (int)kind);
    pare_task *t = calloc(1, sizeof *t);
    if (!t)
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    t->kind = kind;
    t->delimiter = " ";
    pare_status rc = resolve(t, path, err);
    char *data = NULL;
    size_t len = 0;
    if (rc == PARE_OK)
        rc = kind == PARE_TASK_HELLASWAG ? pare_read_maybe_bz2(t->path, &data, &len, err)
                                         : pare_read_file(t->path, &data, &len, err);
    if (rc == PARE_OK) {
        if (kind == PARE_TASK_HELLASWAG) {
            rc = hellaswag_parse(t, data, len, err);
        } else {
            jsonl_ctx c = {{t, 0}, t->path};
            line_fn fn = kind == PARE_TASK_PIQA ? piqa_line : kind == PARE_TASK_ARC_EASY ? arc_line : boolq_line;
            rc = each_line(data, len, fn, &c, err);
        }
    }
    free(data);
    if (rc == PARE_OK && kind == PARE_TASK_PIQA)
        rc = piqa_labels(t, err);
    if (rc == PARE_OK && t->n_items == 0)
        rc = pare_fail(err, PARE_EFORMAT, "%s: no items", t->path);
    if (rc) {
        pare_task_free(t);
        return rc;
    }
    t->n_in_file = t->n_items;
    if (limit && limit < t->n_items) {
        for (size_t i = limit; i < t->n_items; i++) {
            pare_task_item *it = &t->items[i];
            free(it->context);
            for (int j = 0; j < it->n_choices; j++)
                free(it->choices[j]);
            free(it->choices);
        }
        t->n_items = limit;
    }
    *out = t;
    return PARE_OK;
}

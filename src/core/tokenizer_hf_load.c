/* Loading a Hugging Face tokenizer.json: the BPE model (vocab, merges, byte fallback), added
 * tokens, and the normalizer, pre-tokenizer, decoder and post-processor steps pare supports. */
#include "tokenizer_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int json_flag(json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A single-character string field (replacement, Strip content). */
static pare_status parse_single_char(const char *path, const char *where, json_t *obj, const char *key, char *out,
                                     size_t *out_len, pare_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no string '%s'", path, where, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), clen;
    if (n == 0 || n > 4 || next_char((const unsigned char *)s, n, &clen) < 0 || clen != n)
        return pare_fail(err, PARE_EFORMAT, "%s: %s '%s' must be exactly one character", path, where, key);
    memcpy(out, s, n);
    *out_len = n;
    return PARE_OK;
}

static pare_status parse_scheme(const char *path, const char *where, json_t *obj, int *scheme, pare_error *err)
{
    json_t *v = json_object_get(obj, "prepend_scheme");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "always"))
            *scheme = SCHEME_ALWAYS;
        else if (!strcmp(s, "first"))
            *scheme = SCHEME_FIRST;
        else if (!strcmp(s, "never"))
            *scheme = SCHEME_NEVER;
        else
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s prepend_scheme '%s' is not supported", path, where,
                             show(s, json_string_length(v)).s);
        return PARE_OK;
    }
    /* Files written before prepend_scheme existed carry add_prefix_space instead. */
    *scheme = json_flag(obj, "add_prefix_space", 1) ? SCHEME_ALWAYS : SCHEME_NEVER;
    return PARE_OK;
}

/* Reads {"String": "..."} patterns; regex patterns are not supported. */
static pare_status parse_string_pattern(const char *path, const char *where, json_t *obj, char **pat, size_t *pat_len,
                                        char **content, size_t *content_len, pare_error *err)
{
    json_t *pattern = json_object_get(obj, "pattern");
    json_t *s = json_object_get(pattern, "String");
    json_t *c = json_object_get(obj, "content");
    if (!json_is_string(s)) {
        if (json_object_get(pattern, "Regex"))
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s with a Regex pattern is not supported; supported: String",
                             path, where);
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no pattern.String", path, where);
    }
    if (!json_is_string(c))
        return pare_fail(err, PARE_EFORMAT, "%s: %s has no string 'content'", path, where);
    if (json_string_length(s) == 0)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s with an empty pattern is not supported", path, where);
    *pat = dup_bytes(json_string_value(s), json_string_length(s));
    *content = dup_bytes(json_string_value(c), json_string_length(c));
    if (!*pat || !*content)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    *pat_len = json_string_length(s);
    *content_len = json_string_length(c);
    return PARE_OK;
}

static const char *type_of(json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "(none)";
}

typedef pare_status (*component_parser)(const char *path, pare_tokenizer *t, json_t *obj, int depth, pare_error *err);

/* A Sequence component (what: "normalizer", ...): parses each item of its list_key list in order. */
static pare_status parse_sequence(const char *path, pare_tokenizer *t, json_t *obj, int depth, const char *what,
                                  const char *list_key, component_parser parse, pare_error *err)
{
    if (depth >= MAX_SEQUENCE_DEPTH)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %s Sequence is nested too deep (more than %d levels)", path, what,
                         MAX_SEQUENCE_DEPTH);
    json_t *list = json_object_get(obj, list_key);
    if (!json_is_array(list))
        return pare_fail(err, PARE_EFORMAT, "%s: %s Sequence has no '%s' list", path, what, list_key);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        pare_status st = parse(path, t, item, depth + 1, err);
        if (st)
            return st;
    }
    return PARE_OK;
}

static pare_status parse_normalizer(const char *path, pare_tokenizer *t, json_t *n, int depth, pare_error *err)
{
    if (json_is_null(n) || !n)
        return PARE_OK;
    const char *type = type_of(n);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, n, depth, "normalizer", "normalizers", parse_normalizer, err);
    if (t->n_norms == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d normalizers", path, MAX_STEPS);
    norm_step *s = &t->norms[t->n_norms];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p))
            return pare_fail(err, PARE_EFORMAT, "%s: normalizer Prepend has no string 'prepend'", path);
        s->kind = NORM_PREPEND;
        s->content = dup_bytes(json_string_value(p), json_string_length(p));
        s->content_len = json_string_length(p);
        t->n_norms++;
        if (!s->content)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        return PARE_OK;
    }
    if (!strcmp(type, "Replace")) {
        s->kind = NORM_REPLACE;
        t->n_norms++;
        return parse_string_pattern(path, "normalizer Replace", n, &s->pattern, &s->pattern_len, &s->content,
                                    &s->content_len, err);
    }
    if (!strcmp(type, "NFC")) {
        s->kind = NORM_NFC;
        t->n_norms++;
        return PARE_OK;
    }
    return pare_fail(err, PARE_EUNSUPPORTED,
                     "%s: normalizer type '%s' is not supported; supported: Sequence, Prepend, Replace, NFC", path,
                     show_z(type).s);
}

/* Split: {"pattern": {"Regex": ...} or {"String": ...}, "behavior": ..., "invert": bool}. An empty
 * String splits nothing (the reference's whole-text non-match), so it compiles no pattern. */
static pare_status parse_split(const char *path, pretok_step *s, json_t *p, pare_error *err)
{
    static const char *const behaviors[] = {[SPLIT_REMOVED] = "Removed",
                                            [SPLIT_ISOLATED] = "Isolated",
                                            [SPLIT_MERGED_WITH_PREVIOUS] = "MergedWithPrevious",
                                            [SPLIT_MERGED_WITH_NEXT] = "MergedWithNext",
                                            [SPLIT_CONTIGUOUS] = "Contiguous"};
    const char *behavior = json_string_value(json_object_get(p, "behavior"));
    s->behavior = -1;
    for (int k = 0; behavior && k < (int)(sizeof behaviors / sizeof *behaviors); k++)
        if (!strcmp(behavior, behaviors[k]))
            s->behavior = k;
    if (s->behavior < 0)
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: pre_tokenizer Split behavior '%s' is not supported; supported: Removed, Isolated, "
                         "MergedWithPrevious, MergedWithNext, Contiguous",
                         path, behavior ? show_z(behavior).s : "(none)");
    s->invert = json_flag(p, "invert", 0);
    json_t *pattern = json_object_get(p, "pattern");
    json_t *regex = json_object_get(pattern, "Regex"), *string = json_object_get(pattern, "String");
    json_t *given = json_is_string(regex) ? regex : string;
    if (!json_is_string(given))
        return pare_fail(err, PARE_EFORMAT, "%s: pre_tokenizer Split has no pattern.Regex or pattern.String string",
                         path);
    if (given == string && json_string_length(string) == 0)
        return PARE_OK;
    return split_regex_compile(path, json_string_value(given), json_string_length(given), given == string, &s->regex,
                               err);
}

static pare_status parse_pretokenizer(const char *path, pare_tokenizer *t, json_t *p, int depth, pare_error *err)
{
    if (json_is_null(p) || !p)
        return PARE_OK;
    const char *type = type_of(p);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, p, depth, "pre_tokenizer", "pretokenizers", parse_pretokenizer, err);
    if (t->n_pretoks == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d pre-tokenizers", path, MAX_STEPS);
    pretok_step *s = &t->pretoks[t->n_pretoks];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "ByteLevel")) {
        s->kind = PRE_BYTELEVEL;
        s->add_prefix_space = json_flag(p, "add_prefix_space", 1);
        s->use_regex = json_flag(p, "use_regex", 1);
        t->n_pretoks++;
        return PARE_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        s->kind = PRE_METASPACE;
        pare_status st = parse_single_char(path, "pre_tokenizer Metaspace", p, "replacement", s->replacement,
                                           &s->replacement_len, err);
        if (!st)
            st = parse_scheme(path, "pre_tokenizer Metaspace", p, &s->scheme, err);
        s->split = json_flag(p, "split", 1);
        t->n_pretoks++;
        return st;
    }
    if (!strcmp(type, "Split")) {
        s->kind = PRE_SPLIT;
        t->n_pretoks++;
        return parse_split(path, s, p, err);
    }
    return pare_fail(err, PARE_EUNSUPPORTED,
                     "%s: pre_tokenizer type '%s' is not supported; supported: ByteLevel, Metaspace, Split, Sequence",
                     path, show_z(type).s);
}

static pare_status parse_decoder(const char *path, pare_tokenizer *t, json_t *d, int depth, pare_error *err)
{
    if (json_is_null(d) || !d)
        return PARE_OK;
    t->has_decoder = 1;
    const char *type = type_of(d);
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, d, depth, "decoder", "decoders", parse_decoder, err);
    if (t->n_decs == MAX_STEPS)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: more than %d decoders", path, MAX_STEPS);
    dec_step *s = &t->decs[t->n_decs];
    memset(s, 0, sizeof *s);
    pare_status st = PARE_OK;
    if (!strcmp(type, "ByteLevel")) {
        s->kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        s->kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        s->kind = DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        s->kind = DEC_REPLACE;
        st = parse_string_pattern(path, "decoder Replace", d, &s->pattern, &s->pattern_len, &s->content,
                                  &s->content_len, err);
    } else if (!strcmp(type, "Metaspace") || !strcmp(type, "Strip")) {
        char c[8];
        size_t clen;
        int is_strip = !strcmp(type, "Strip");
        s->kind = is_strip ? DEC_STRIP : DEC_METASPACE;
        st = parse_single_char(path, is_strip ? "decoder Strip" : "decoder Metaspace", d,
                               is_strip ? "content" : "replacement", c, &clen, err);
        if (!st) {
            s->content = dup_bytes(c, clen);
            s->content_len = clen;
            if (!s->content)
                st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        }
        if (!st && is_strip) {
            json_int_t a = json_integer_value(json_object_get(d, "start"));
            json_int_t b = json_integer_value(json_object_get(d, "stop"));
            if (a < 0 || b < 0)
                st = pare_fail(err, PARE_EFORMAT, "%s: decoder Strip has negative start/stop", path);
            s->strip_left = (size_t)a;
            s->strip_right = (size_t)b;
        } else if (!st) {
            st = parse_scheme(path, "decoder Metaspace", d, &s->scheme, err);
        }
    } else {
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: decoder type '%s' is not supported; supported: ByteLevel, Metaspace, Replace, "
                         "ByteFallback, Fuse, Strip, Sequence",
                         path, show_z(type).s);
    }
    t->n_decs++;
    return st;
}

static pare_status parse_post_processor(const char *path, pare_tokenizer *t, json_t *p, int depth, pare_error *err)
{
    if (json_is_null(p) || !p)
        return PARE_OK;
    const char *type = type_of(p);
    if (!strcmp(type, "ByteLevel"))
        return PARE_OK; /* only trims offsets */
    if (!strcmp(type, "Sequence"))
        return parse_sequence(path, t, p, depth, "post_processor", "processors", parse_post_processor, err);
    if (strcmp(type, "TemplateProcessing"))
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: post_processor type '%s' is not supported; supported: TemplateProcessing, ByteLevel, "
                         "Sequence",
                         path, show_z(type).s);
    json_t *single = json_object_get(p, "single");
    json_t *specials = json_object_get(p, "special_tokens");
    if (!json_is_array(single))
        return pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing has no 'single' list", path);
    /* An outer template wraps what the inner ones produced. */
    idbuf before = {0}, after = {0};
    int seen_sequence_a = 0;
    pare_status st = PARE_OK;
    size_t i;
    json_t *item;
    json_array_foreach(single, i, item) {
        json_t *seq = json_object_get(item, "Sequence");
        json_t *sp = json_object_get(item, "SpecialToken");
        if (seq) {
            const char *seq_id = json_string_value(json_object_get(seq, "id"));
            if (!seq_id || strcmp(seq_id, "A") || seen_sequence_a) {
                st = pare_fail(err, PARE_EUNSUPPORTED,
                               "%s: TemplateProcessing single template must hold sequence A once", path);
                break;
            }
            seen_sequence_a = 1;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing special token '%s' has no ids", path,
                           name ? show_z(name).s : "(none)");
            break;
        }
        size_t j;
        json_t *idv;
        json_array_foreach(ids, j, idv) {
            json_int_t id = json_integer_value(idv);
            if (!json_is_integer(idv) || id < 0 || id > INT32_MAX) {
                st = pare_fail(err, PARE_EFORMAT, "%s: TemplateProcessing special token '%s' has a bad id", path,
                               show_z(name).s);
                break;
            }
            if (!ib_push(seen_sequence_a ? &after : &before, (int32_t)id)) {
                st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
                break;
            }
        }
        if (st)
            break;
    }
    if (!st && !seen_sequence_a)
        st = pare_fail(err, PARE_EUNSUPPORTED, "%s: TemplateProcessing single template has no sequence A", path);
    if (!st) {
        idbuf prefix = {0};
        if (!ib_append(&prefix, before.data, before.len) || !ib_append(&prefix, t->prefix_ids.data, t->prefix_ids.len) ||
            !ib_append(&t->suffix_ids, after.data, after.len)) {
            free(prefix.data);
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        } else {
            free(t->prefix_ids.data);
            t->prefix_ids = prefix;
        }
    }
    free(before.data);
    free(after.data);
    return st;
}

static pare_status parse_added_tokens(const char *path, pare_tokenizer *t, json_t *list, pare_error *err)
{
    if (!list || json_is_null(list))
        return PARE_OK;
    if (!json_is_array(list))
        return pare_fail(err, PARE_EFORMAT, "%s: 'added_tokens' is not a list", path);
    size_t n = json_array_size(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        json_t *content = json_object_get(item, "content");
        json_t *id = json_object_get(item, "id");
        if (!json_is_string(content) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24))
            return pare_fail(err, PARE_EFORMAT, "%s: added token %zu needs a string 'content' and an id in [0, 2^24)",
                             path, i);
        if (json_string_length(content) == 0)
            continue; /* nothing to match */
        added_token *a = &t->added[t->n_added++];
        a->len = json_string_length(content);
        a->content = dup_bytes(json_string_value(content), a->len);
        if (!a->content)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        a->id = (int32_t)json_integer_value(id);
        a->single_word = json_flag(item, "single_word", 0);
        a->lstrip = json_flag(item, "lstrip", 0);
        a->rstrip = json_flag(item, "rstrip", 0);
        a->normalized = json_flag(item, "normalized", 0);
        a->special = json_flag(item, "special", 0);
        if (a->id >= t->n_ids)
            t->n_ids = a->id + 1;
    }
    return PARE_OK;
}

/* Sets up the matching forms of added tokens once the normalizer is known. */
static pare_status prepare_added_tokens(const char *path, pare_tokenizer *t, pare_error *err)
{
    bytebuf out = {0}, tmp = {0};
    pare_status st = PARE_OK;
    for (size_t i = 0; i < t->n_added && !st; i++) {
        added_token *a = &t->added[i];
        if (a->normalized && t->n_norms) {
            if ((st = apply_normalizers(t, path, a->content, a->len, &out, &tmp, err)))
                break;
            a->match = dup_bytes(out.data, out.len);
            a->match_len = out.len;
        } else {
            a->match = dup_bytes(a->content, a->len);
            a->match_len = a->len;
        }
        if (!a->match) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
            break;
        }
        int normalized = a->normalized ? 1 : 0;
        if (a->match_len) {
            unsigned char b = (unsigned char)a->match[0];
            t->added_first_byte[normalized][b >> 3] |= (unsigned char)(1u << (b & 7));
        }
        if (a->normalized)
            t->has_normalized_added = 1;
    }
    free(out.data);
    free(tmp.data);
    return st;
}

static int32_t added_by_content(const pare_tokenizer *t, const char *s)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s))
            return t->added[i].id;
    return -1;
}

static int32_t lookup_named(const pare_tokenizer *t, const char *s)
{
    int32_t id = added_by_content(t, s);
    return id >= 0 ? id : strmap_get(&t->vocab, s, strlen(s));
}

static pare_status parse_merges(const char *path, pare_tokenizer *t, json_t *merges, pare_error *err)
{
    if (!json_is_array(merges))
        return pare_fail(err, PARE_EFORMAT, "%s: model.merges is not a list", path);
    size_t n = json_array_size(merges);
    if (n >= INT32_MAX)
        return pare_fail(err, PARE_EFORMAT, "%s: too many merges", path);
    t->merge_new_id = malloc((n ? n : 1) * sizeof(int32_t));
    if (!t->merge_new_id || !pairmap_init(&t->merges, n))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for %zu merges", path, n);
    bytebuf joined = {0};
    pare_status st = PARE_OK;
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t alen, blen;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = memchr(a, ' ', json_string_length(m));
            if (!sp || memchr(sp + 1, ' ', json_string_length(m) - (size_t)(sp + 1 - a))) {
                st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu '%s' is not two space-separated pieces", path, i,
                               show(a, json_string_length(m)).s);
                break;
            }
            alen = (size_t)(sp - a);
            b = sp + 1;
            blen = json_string_length(m) - alen - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            alen = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            blen = json_string_length(json_array_get(m, 1));
        } else {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            break;
        }
        int32_t ida = strmap_get(&t->vocab, a, alen), idb = strmap_get(&t->vocab, b, blen);
        joined.len = 0;
        if (!bb_append(&joined, a, alen) || !bb_append(&joined, b, blen)) {
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
            break;
        }
        int32_t idm = strmap_get(&t->vocab, joined.data, joined.len);
        if (ida < 0 || idb < 0 || idm < 0) {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu uses a piece missing from the vocab: '%s'", path, i,
                           ida < 0   ? show(a, alen).s
                           : idb < 0 ? show(b, blen).s
                                     : show(joined.data, joined.len).s);
            break;
        }
        if (!pairmap_put(&t->merges, ida, idb, (int32_t)i, idm)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: merge %zu does not fit the merge table", path, i);
            break;
        }
        t->merge_new_id[i] = idm;
    }
    free(joined.data);
    return st;
}

/* Every merge produces a vocab piece, so a merge can only join two characters that sit side by side
 * in some piece. Collecting those pairs lets a long word be cut where no merge can ever reach
 * across, which keeps the merge queue small without changing the result. */
pare_status build_adjacent_char_pairs(const char *path, pare_tokenizer *t, pare_error *err)
{
    if (!pairmap_init(&t->adjacent_char_pairs, t->vocab.keys.len))
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
    for (size_t e = 0; e < t->vocab.n; e++) {
        const unsigned char *s = (const unsigned char *)t->vocab.keys.data + t->vocab.key_off[e];
        size_t n = t->vocab.key_len[e], clen;
        int32_t prev = -2;
        for (size_t i = 0; i < n; i += clen) {
            int32_t cp = next_char(s + i, n - i, &clen);
            if (prev != -2 && !pairmap_put(&t->adjacent_char_pairs, prev, cp, 0, 0))
                return pare_fail(err, PARE_EFORMAT, "%s: vocab entry %zu does not fit the character pair table", path,
                                 e);
            prev = cp;
        }
    }
    return PARE_OK;
}

static pare_status parse_bpe_model(const char *path, pare_tokenizer *t, json_t *model, pare_error *err)
{
    json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return pare_fail(err, PARE_EFORMAT, "%s: model.type is not a string", path);
    if (type && strcmp(json_string_value(type), "BPE"))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: model type '%s' is not supported; supported: BPE", path,
                         show(json_string_value(type), json_string_length(type)).s);
    if (!type && !json_object_get(model, "merges"))
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: model without a type or merges is not supported; supported: BPE",
                         path);
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: BPE dropout is not supported", path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(model, affixes[k]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return pare_fail(err, PARE_EUNSUPPORTED, "%s: BPE %s is not supported", path, affixes[k]);
    }
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return pare_fail(err, PARE_EFORMAT, "%s: model.vocab is not an object", path);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= (1 << 24))
            return pare_fail(err, PARE_EFORMAT, "%s: vocab entry '%s' has no id in [0, 2^24)", path, show_z(key).s);
        if (strmap_put(&t->vocab, key, strlen(key), (int32_t)id) < 0)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        if (id >= t->n_ids)
            t->n_ids = (int)id + 1;
    }
    t->byte_fallback = json_flag(model, "byte_fallback", 0);
    t->fuse_unk = json_flag(model, "fuse_unk", 0);
    t->ignore_merges = json_flag(model, "ignore_merges", 0);
    t->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        t->unk_name = dup_bytes(json_string_value(unk), json_string_length(unk));
        if (!t->unk_name)
            return pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        t->unk_id = strmap_get(&t->vocab, json_string_value(unk), json_string_length(unk));
        t->unk_missing = t->unk_id < 0;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = strmap_get(&t->vocab, name, 6);
    }
    pare_status st = parse_merges(path, t, json_object_get(model, "merges"), err);
    return st ? st : build_adjacent_char_pairs(path, t, err);
}

static void describe_hf(pare_tokenizer *t)
{
    size_t used = (size_t)snprintf(t->description, sizeof t->description, "BPE %d tokens", t->n_ids);
    for (size_t i = 0; i < t->n_pretoks && used < sizeof t->description; i++)
        used += (size_t)snprintf(t->description + used, sizeof t->description - used, ", %s",
                                 t->pretoks[i].kind == PRE_BYTELEVEL   ? "ByteLevel"
                                 : t->pretoks[i].kind == PRE_METASPACE ? "Metaspace"
                                                                       : "Split");
    if (t->n_norms && used < sizeof t->description) {
        used += (size_t)snprintf(t->description + used, sizeof t->description - used, ", normalizer ");
        for (size_t i = 0; i < t->n_norms && used < sizeof t->description; i++)
            used += (size_t)snprintf(t->description + used, sizeof t->description - used, "%s%s", i ? "+" : "",
                                     t->norms[i].kind == NORM_PREPEND   ? "Prepend"
                                     : t->norms[i].kind == NORM_REPLACE ? "Replace"
                                                                        : "NFC");
    }
    if (t->byte_fallback && used < sizeof t->description)
        snprintf(t->description + used, sizeof t->description - used, ", byte fallback");
}

pare_status pare_tokenizer_load_hf(const char *json_path, pare_tokenizer **out, pare_error *err)
{
    *out = NULL;
    char *text;
    size_t len;
    pare_status st = pare_read_file(json_path, &text, &len, err);
    if (st)
        return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root)
        return pare_fail(err, PARE_EFORMAT, "%s: invalid JSON at line %d column %d: %s", json_path, jerr.line,
                         jerr.column, show_z(jerr.text).s);
    pare_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        json_decref(root);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
    }
    t->kind = KIND_HF;
    init_byte_level_map(t);
    if (!(t->source = dup_bytes(json_path, strlen(json_path)))) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(root) || !json_is_object(model)) {
        st = pare_fail(err, PARE_EFORMAT, "%s: no 'model' object; not a tokenizer.json", json_path);
        goto done;
    }
    if ((st = parse_bpe_model(json_path, t, model, err)))
        goto done;
    if ((st = parse_added_tokens(json_path, t, json_object_get(root, "added_tokens"), err)))
        goto done;
    if ((st = parse_normalizer(json_path, t, json_object_get(root, "normalizer"), 0, err)))
        goto done;
    if ((st = parse_pretokenizer(json_path, t, json_object_get(root, "pre_tokenizer"), 0, err)))
        goto done;
    if ((st = parse_post_processor(json_path, t, json_object_get(root, "post_processor"), 0, err)))
        goto done;
    if ((st = parse_decoder(json_path, t, json_object_get(root, "decoder"), 0, err)))
        goto done;
    if ((st = prepare_added_tokens(json_path, t, err)))
        goto done;
    if (t->n_ids == 0) {
        st = pare_fail(err, PARE_EFORMAT, "%s: the vocab is empty", json_path);
        goto done;
    }
    t->id_entry = malloc((size_t)t->n_ids * sizeof(int32_t));
    t->id_added = malloc((size_t)t->n_ids * sizeof(int32_t));
    if (!t->id_entry || !t->id_added) {
        st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", json_path);
        goto done;
    }
    memset(t->id_entry, 0xff, (size_t)t->n_ids * sizeof(int32_t));
    memset(t->id_added, 0xff, (size_t)t->n_ids * sizeof(int32_t));
    for (size_t e = 0; e < t->vocab.n; e++)
        t->id_entry[t->vocab.val[e]] = (int32_t)e;
    for (size_t i = 0; i < t->n_added; i++)
        t->id_added[t->added[i].id] = (int32_t)i;
    for (size_t i = 0; i < t->prefix_ids.len + t->suffix_ids.len; i++) {
        int32_t id = i < t->prefix_ids.len ? t->prefix_ids.data[i] : t->suffix_ids.data[i - t->prefix_ids.len];
        size_t plen;
        if (id >= t->n_ids || !piece_of(t, id, &plen)) {
            st = pare_fail(err, PARE_EFORMAT, "%s: post-processor id %d has no token in the vocab (%d ids)", json_path,
                           (int)id, t->n_ids);
            goto done;
        }
    }
    t->bos_id = t->prefix_ids.len ? t->prefix_ids.data[0] : lookup_named(t, "<s>");
    if (t->bos_id < 0)
        t->bos_id = lookup_named(t, "<|begin_of_text|>");
    t->eos_id = -1;
    const char *eos_names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>"};
    for (int k = 0; k < 3 && t->eos_id < 0; k++)
        t->eos_id = lookup_named(t, eos_names[k]);
    describe_hf(t);
done:
    json_decref(root);
    if (st) {
        pare_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PARE_OK;
}
